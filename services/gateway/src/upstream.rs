//! The backends: one lazily connected channel per service, picked by the
//! proto package of the method, and gRPC calls with messages known only at
//! run time (prost-reflect's `DynamicMessage`).

use std::time::Duration;

use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tenantry_kit::service::Peers;
use tenantry_kit::telemetry::spans::TracedClient;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

/// A channel to a backend: every call a client span (the parent of the
/// backend's server span).
pub type Upstream = TracedClient<Channel>;

/// A channel per backend service.
#[derive(Debug, Clone)]
pub struct Upstreams {
    identity: Upstream,
    organization: Upstream,
    rbac: Upstream,
    billing: Upstream,
    audit: Upstream,
}

impl Upstreams {
    /// Lazily connected channels to `peers`.
    pub fn new(peers: &Peers) -> anyhow::Result<Upstreams> {
        Ok(Upstreams {
            identity: channel(&peers.identity)?,
            organization: channel(&peers.organization)?,
            rbac: channel(&peers.rbac)?,
            billing: channel(&peers.billing)?,
            audit: channel(&peers.audit)?,
        })
    }

    /// The channel serving a gRPC path (`/tenantry.rbac.v1.…/Method`);
    /// `None` outside Tenantry's packages.
    pub fn for_path(&self, grpc_path: &str) -> Option<&Upstream> {
        let package = grpc_path.strip_prefix("/tenantry.")?;
        let service = package.split('.').next()?;
        match service {
            "identity" => Some(&self.identity),
            "organization" => Some(&self.organization),
            // The authorization engine lives in the rbac service.
            "rbac" | "authz" => Some(&self.rbac),
            "billing" => Some(&self.billing),
            "audit" => Some(&self.audit),
            _ => None,
        }
    }

    /// The identity service.
    pub fn identity(&self) -> Upstream {
        self.identity.clone()
    }

    /// The billing service.
    pub fn billing(&self) -> Upstream {
        self.billing.clone()
    }

    /// The audit service.
    pub fn audit(&self) -> Upstream {
        self.audit.clone()
    }
}

/// No overall timeout on the channel: each call carries its own deadline,
/// and streams (exports) may run long.
fn channel(url: &str) -> anyhow::Result<Upstream> {
    let endpoint = Endpoint::from_shared(url.to_string())?;
    let address = endpoint
        .uri()
        .authority()
        .map_or("", |a| a.as_str())
        .to_string();
    let channel = endpoint
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(TracedClient::new(channel, &address))
}

/// Encodes and decodes `DynamicMessage`s of a given output type.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec whose responses are `output` messages.
    pub fn new(output: MessageDescriptor) -> Self {
        DynamicCodec { output }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

/// The encoding half of [`DynamicCodec`].
#[derive(Debug)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("cannot encode the request: {e}")))
    }
}

/// The decoding half of [`DynamicCodec`].
#[derive(Debug)]
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("cannot decode the response: {e}")))
    }
}
