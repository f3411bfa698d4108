//! Who a request is for, for the render queue's per-client share: the
//! address its connection comes from ([`PeerAddr`], put on each request as
//! it is accepted), or on a connection from a trusted proxy, the address it
//! names in `server.client_header`.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName};

use crate::config::Cidr;
use crate::pool::ClientId;

/// The address a connection comes from, put in each request's extensions
/// as it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PeerAddr(pub(super) SocketAddr);

/// How to find a request's client behind proxies.
pub(super) struct Clients {
    /// `server.client_header`: where trusted proxies name the client.
    header: Option<HeaderName>,
    /// `server.trusted_proxies`: whose header is believed.
    trusted: Vec<Cidr>,
}

impl Clients {
    pub(super) fn new(header: Option<HeaderName>, trusted: Vec<Cidr>) -> Clients {
        Clients { header, trusted }
    }

    /// Who a request is for, as the render queue's share counts it; `None`
    /// when the connection's address is unknown (a request not from
    /// [`super::serve`]).
    pub(super) fn of(&self, parts: &http::request::Parts) -> Option<ClientId> {
        let PeerAddr(peer) = parts.extensions.get::<PeerAddr>()?;
        Some(ClientId::from_ip(self.client(peer.ip(), &parts.headers)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address. The header is a list each proxy appended the
    /// address it saw to (`X-Forwarded-For: client, cdn-edge`), or one
    /// address (`CF-Connecting-IP`): read from its end, the first address
    /// that is not a trusted proxy is the client (a client cannot choose
    /// what a trusted proxy appended after what it sent). A value that is
    /// not an address stops the walk at the last trusted hop.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let Some(name) = &self.header else {
            return peer;
        };
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all(name).iter().rev() {
            let Ok(value) = value.to_str() else {
                return client;
            };
            for hop in value.rsplit(',') {
                let Some(ip) = hop_address(hop.trim()) else {
                    return client;
                };
                client = ip;
                if !self.trusts(ip) {
                    return client;
                }
            }
        }
        client
    }
}

/// An address as proxies write them: `192.0.2.1`, `2001:db8::1`, with a
/// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or in brackets.
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn clients_behind_trusted_proxies() {
        let net = |s: &str| s.parse::<Cidr>().unwrap();
        let clients = Clients::new(
            Some(HeaderName::from_static("x-forwarded-for")),
            vec![net("127.0.0.1"), net("10.0.0.0/8")],
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let client = |peer: &str, values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            }
            clients.client(ip(peer), &headers).to_string()
        };
        // An untrusted peer is the client whatever it sends.
        assert_eq!(client("192.0.2.1", &["203.0.113.7"]), "192.0.2.1");
        // A trusted one without the header is the client itself.
        assert_eq!(client("127.0.0.1", &[]), "127.0.0.1");
        assert_eq!(client("127.0.0.1", &["203.0.113.7"]), "203.0.113.7");
        // From the end: trusted hops are skipped, what the client wrote
        // before the first untrusted address is not believed.
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6, 203.0.113.7, 10.1.2.3"]),
            "203.0.113.7"
        );
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6", "203.0.113.7", "10.1.2.3"]),
            "203.0.113.7",
            "several header lines are one list"
        );
        assert_eq!(client("127.0.0.1", &["10.9.9.9, 10.1.2.3"]), "10.9.9.9");
        assert_eq!(client("127.0.0.1", &["[2001:db8::5]:4711"]), "2001:db8::5");
        assert_eq!(client("127.0.0.1", &["198.51.100.2:80"]), "198.51.100.2");
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(client("127.0.0.1", &["unknown"]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1", &["203.0.113.7, nonsense, 10.1.2.3"]),
            "10.1.2.3"
        );
        // Without a configured header, the peer.
        let none = Clients::new(None, Vec::new());
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        assert_eq!(none.client(ip("127.0.0.1"), &headers), ip("127.0.0.1"));
    }
}
