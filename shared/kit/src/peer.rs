//! Channels to the other services: through this process's own server when
//! the other service runs here, over the network otherwise.
//!
//! A service never knows which: its clients are the generated tonic clients
//! over a [`PeerChannel`], and both kinds carry the same HTTP/2-shaped gRPC
//! request through the same layers (telemetry, client address,
//! authentication, consistency, tenancy) to the same handlers. What the
//! in-process kind saves is the socket: no TCP connection, no HTTP/2
//! framing, no second trip through the kernel for a call that never leaves
//! the process (quickwit's clients make the same choice between a local
//! implementation and a channel). The request still authenticates with the
//! caller's own token, so every rule of the contract holds either way.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt as _};

/// The error a channel fails a call with (a transport failure; gRPC
/// failures travel in the response).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a call to another service may take, either way.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting to a remote service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A service of the suite, as a peer of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Identity,
    Organization,
    Rbac,
    Billing,
    Audit,
}

impl Peer {
    /// The peer's name, as the `--services` flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Identity => "identity",
            Peer::Organization => "organization",
            Peer::Rbac => "rbac",
            Peer::Billing => "billing",
            Peer::Audit => "audit",
        }
    }
}

/// The server type the in-process channel calls: this process's gRPC
/// routes behind the same layers its network server has.
type LocalService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

/// This process's own gRPC server, reachable without the network once the
/// process has built its services (until then calls answer UNAVAILABLE,
/// as the network port does while the process starts). Cheap to clone:
/// every clone sees the mount.
#[derive(Clone, Default)]
pub struct LocalServer(Arc<OnceLock<LocalService>>);

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("mounted", &self.0.get().is_some())
            .finish()
    }
}

impl LocalServer {
    /// Mounts the server: `server` is the process's routes with the layers
    /// its network server applies, in the same order. Only the first mount
    /// counts.
    pub fn mount<S, B>(&self, server: S)
    where
        S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let server = server
            .map_response(|response: http::Response<B>| response.map(Body::new))
            .map_err(|never: Infallible| -> BoxError { match never {} });
        let _ = self.0.set(BoxCloneSyncService::new(server));
    }

    fn call(&self, mut request: http::Request<Body>) -> BoxFuture<'static, CallResult> {
        let Some(server) = self.0.get().cloned() else {
            return Box::pin(async {
                Ok(
                    tonic::Status::unavailable("starting: the service is not serving yet")
                        .into_http(),
                )
            });
        };
        // The call comes from this process, as a loopback connection would
        // say: the client-address layer reads it like any peer's.
        request
            .extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            });
        // The caller's deadline holds as a channel's would hold it.
        let timeout = deadline(request.headers()).map_or(CALL_TIMEOUT, |d| d.min(CALL_TIMEOUT));
        Box::pin(async move {
            match tokio::time::timeout(timeout, server.oneshot(request)).await {
                Ok(answer) => answer,
                Err(_) => Err("the in-process call timed out".into()),
            }
        })
    }
}

type CallResult = Result<http::Response<Body>, BoxError>;

/// The deadline a request's `grpc-timeout` header sets (an integer of at
/// most 8 digits and a unit: `H`ours, `M`inutes, `S`econds, `m`illis,
/// `u`micros, `n`anos), as tonic's channel reads it.
fn deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A channel to another service, in this process or over the network.
#[derive(Debug, Clone)]
pub struct PeerChannel(Route);

#[derive(Debug, Clone)]
enum Route {
    Local(LocalServer),
    /// A channel and the address it reaches (`host:port`).
    Remote(Channel, std::sync::Arc<str>),
}

impl PeerChannel {
    /// A channel to the service at `url` (`http://host:port`), connected
    /// lazily, with the timeouts every service uses for its peers.
    pub fn remote(url: &str) -> anyhow::Result<PeerChannel> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())?;
        let address = endpoint.uri().authority().map_or("", |a| a.as_str()).into();
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(PeerChannel(Route::Remote(channel, address)))
    }

    /// A channel to a service of this process.
    pub fn local(server: &LocalServer) -> PeerChannel {
        PeerChannel(Route::Local(server.clone()))
    }

    /// Whether calls stay in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.0, Route::Local(_))
    }
}

impl Service<http::Request<Body>> for PeerChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, CallResult>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.0 {
            Route::Local(_) => Poll::Ready(Ok(())),
            Route::Remote(channel, _) => channel.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // Every call to a peer is a client span, the parent of the peer's.
        let mut request = request;
        match &mut self.0 {
            Route::Local(server) => {
                let span = crate::telemetry::spans::client_call(&mut request, "");
                Box::pin(crate::telemetry::spans::traced(span, server.call(request)))
            }
            Route::Remote(channel, address) => {
                let span = crate::telemetry::spans::client_call(&mut request, address);
                let call = crate::telemetry::spans::traced(span, channel.call(request));
                Box::pin(async move { call.await.map_err(Into::into) })
            }
        }
    }
}

/// Where the other services answer, and which of them run in this process.
#[derive(Debug, Clone, Default)]
pub struct PeerDirectory {
    /// Their network addresses, as `http://host:port`.
    pub urls: crate::service::Peers,
    /// The services this process runs, called in-process.
    pub local: Vec<Peer>,
    /// This process's own server.
    pub server: LocalServer,
}

impl PeerDirectory {
    /// A channel to `peer`: in-process when it runs here, over the network
    /// otherwise.
    pub fn channel(&self, peer: Peer) -> anyhow::Result<PeerChannel> {
        if self.local.contains(&peer) {
            return Ok(PeerChannel::local(&self.server));
        }
        PeerChannel::remote(self.url(peer))
    }

    /// The network address of `peer`.
    pub fn url(&self, peer: Peer) -> &str {
        let urls = &self.urls;
        match peer {
            Peer::Identity => &urls.identity,
            Peer::Organization => &urls.organization,
            Peer::Rbac => &urls.rbac,
            Peer::Billing => &urls.billing,
            Peer::Audit => &urls.audit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_proto::tenantry::identity::v1::identity_service_client::IdentityServiceClient;

    #[tokio::test]
    async fn an_unmounted_server_answers_unavailable_then_the_mounted_one_answers() {
        let server = LocalServer::default();
        let mut client = IdentityServiceClient::new(PeerChannel::local(&server));
        let before = client
            .get_jwks(tenantry_proto::tenantry::identity::v1::GetJwksRequest {})
            .await
            .unwrap_err();
        assert_eq!(before.code(), tonic::Code::Unavailable);

        // A server that answers every call NOT_FOUND, and records the
        // address the call came from.
        let seen = Arc::new(std::sync::Mutex::new(None));
        let recorded = seen.clone();
        server.mount(tower::service_fn(move |request: http::Request<Body>| {
            let peer = request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr);
            *recorded.lock().unwrap() = peer;
            async {
                Ok::<_, Infallible>(tonic::Status::not_found("nothing here").into_http::<Body>())
            }
        }));
        let after = client
            .get_jwks(tenantry_proto::tenantry::identity::v1::GetJwksRequest {})
            .await
            .unwrap_err();
        assert_eq!(after.code(), tonic::Code::NotFound);
        let peer = seen
            .lock()
            .unwrap()
            .expect("the call says where it came from");
        assert!(peer.ip().is_loopback());
    }

    #[tokio::test(start_paused = true)]
    async fn an_in_process_call_ends_at_the_callers_deadline() {
        let server = LocalServer::default();
        server.mount(tower::service_fn(|_: http::Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Infallible>(tonic::Status::ok("late").into_http::<Body>())
        }));
        let mut client = IdentityServiceClient::new(PeerChannel::local(&server));
        let mut request =
            tonic::Request::new(tenantry_proto::tenantry::identity::v1::GetJwksRequest {});
        request.set_timeout(Duration::from_millis(50));
        let started = tokio::time::Instant::now();
        assert!(client.get_jwks(request).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_request_deadline_is_read_as_grpc_spells_it() {
        let read = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            deadline(&headers)
        };
        assert_eq!(read("2000m"), Some(Duration::from_secs(2)));
        assert_eq!(read("3S"), Some(Duration::from_secs(3)));
        assert_eq!(read("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(read("5u"), Some(Duration::from_micros(5)));
        assert_eq!(read("123456789S"), None);
        assert_eq!(read("S"), None);
        assert_eq!(read("10x"), None);
        assert_eq!(deadline(&http::HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_peer_of_this_process_is_called_in_process() {
        let directory = PeerDirectory {
            urls: crate::service::Peers {
                rbac: "http://127.0.0.1:1".into(),
                ..Default::default()
            },
            local: vec![Peer::Identity],
            server: LocalServer::default(),
        };
        assert!(directory.channel(Peer::Identity).unwrap().is_local());
        assert!(!directory.channel(Peer::Rbac).unwrap().is_local());
    }
}
