//! Where a call comes from. Behind the gateway (or any proxy), the peer of
//! a connection is the proxy; the client's address travels in
//! `X-Forwarded-For`, which is believed only from configured trusted
//! proxies — anyone else could write anything there. Per-address
//! throttles (sign-in) and the audit log's client address depend on it.

use std::net::IpAddr;

use ipnet::IpNet;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A network in CIDR form, for trusted proxies. `ipnet` does the
/// arithmetic; this adds bare addresses (one host) and IPv4-mapped IPv6
/// peers (a dual-stack socket reports `::ffff:10.0.0.1` for `10.0.0.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let trimmed = text.trim();
        if let Ok(network) = trimmed.parse::<IpNet>() {
            return Ok(Cidr(network));
        }
        match trimmed.split_once('/') {
            None => trimmed
                .parse::<IpAddr>()
                .map(|address| Cidr(IpNet::from(address)))
                .map_err(|_| format!("`{text}` is not an IP network")),
            Some((address, _)) if address.trim().parse::<IpAddr>().is_ok() => {
                Err(format!("`{text}` has a bad prefix length"))
            }
            Some(_) => Err(format!("`{text}` is not an IP network")),
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left are whatever the client wrote).
pub fn client_address(peer: IpAddr, headers: &http::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let entries: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse().ok())
        .collect();
    for ip in entries.into_iter().rev() {
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The client's address as settled by [`ClientAddressLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The address settled for a request, from its extensions; the
    /// unspecified address when none was (a request that bypassed the edge).
    pub fn of(extensions: &http::Extensions) -> IpAddr {
        extensions
            .get::<ClientAddress>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0)
    }
}

/// The client address of a gRPC call: what [`ClientAddressLayer`] settled,
/// else the connection's peer.
pub fn of_request<T>(request: &tonic::Request<T>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ClientAddress>()
        .map(|c| c.0)
        .or_else(|| request.remote_addr().map(|a| a.ip()))
}

/// A tower layer for gRPC servers that settles each call's client address
/// from its peer and, for trusted proxies, `X-Forwarded-For`.
#[derive(Debug, Clone)]
pub struct ClientAddressLayer {
    trusted: Arc<[Cidr]>,
}

impl ClientAddressLayer {
    /// A layer believing `X-Forwarded-For` from `trusted` peers only.
    pub fn new(trusted: Vec<Cidr>) -> Self {
        ClientAddressLayer {
            trusted: trusted.into(),
        }
    }
}

impl<S> tower::Layer<S> for ClientAddressLayer {
    type Service = ClientAddressService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAddressService {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

/// The service made by [`ClientAddressLayer`].
#[derive(Debug, Clone)]
pub struct ClientAddressService<S> {
    inner: S,
    trusted: Arc<[Cidr]>,
}

impl<S, B> tower::Service<http::Request<B>> for ClientAddressService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Only this layer says where a call comes from.
        request.extensions_mut().remove::<ClientAddress>();
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|addr| addr.ip());
        if let Some(peer) = peer {
            let client = client_address(peer, request.headers(), &self.trusted);
            request.extensions_mut().insert(ClientAddress(client));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let trusted = vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("::1").unwrap(),
        ];
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.1.1.1"),
        );
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        // The right-most untrusted entry: the client's own claim (6.6.6.6) is ignored.
        assert_eq!(
            client_address(proxy, &headers, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        assert_eq!(
            client_address(proxy, &http::HeaderMap::new(), &trusted),
            proxy
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/33"),
            Err("`10.0.0.0/33` has a bad prefix length".to_string())
        );
        assert_eq!(
            Cidr::parse("nope"),
            Err("`nope` is not an IP network".to_string())
        );
        let host = Cidr::parse(" ::1 ").unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("::2".parse().unwrap()));
        let everywhere = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(everywhere.contains("203.0.113.9".parse().unwrap()));
        assert!(!everywhere.contains("2001:db8::1".parse().unwrap()));
        assert!(
            Cidr::parse("127.0.0.0/8")
                .unwrap()
                .contains("::ffff:127.0.0.1".parse().unwrap())
        );
    }
}
