//! Video URLs named by a caller (the video-URL API): which ones thumbd may
//! read, and a client that can only ever connect where they are allowed.
//!
//! A URL must be http(s), carry no user info, and start with one of the
//! org's `video_url_prefixes` (checked on the parsed, normalised URL, so
//! `..` segments and `user@host` tricks cannot leave a prefix). Its host
//! must not be, or resolve to, a loopback, private, link-local, metadata or
//! other non-public address unless that exact host is in the org's
//! `video_url_private_hosts`. The check is made by the client's own
//! resolver on the addresses it then connects to, so there is no window
//! between checking and connecting for DNS to change its answer (DNS
//! rebinding). Redirects are followed only within the same origin and the
//! prefixes; proxies from the environment are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::config::FetchConfig;

/// Why a video URL is refused. The message is safe to show the caller
/// (it speaks only of the URL they sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Not an http(s) URL at all: a malformed request (400).
    #[error("{0}")]
    Invalid(String),
    /// A URL thumbd will not read (403).
    #[error("{0}")]
    Forbidden(String),
}

/// The error a guarded client's resolver or redirect policy raises; found
/// again in reqwest's error chain to tell a refusal from a network failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Checks a configured prefix: an http(s) URL with a host.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let url = Url::parse(prefix).map_err(|e| format!("{prefix:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{prefix:?} must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() {
        return Err(format!("{prefix:?} must name a host (and no user)"));
    }
    Ok(())
}

/// One org's rules for video URLs.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// Normalised prefixes.
    prefixes: Vec<String>,
    /// Hosts allowed to resolve to private addresses, lower-case.
    private_hosts: Arc<Vec<String>>,
}

impl UrlPolicy {
    /// Prefixes must have passed [`check_prefix`].
    pub fn new(prefixes: &[String], private_hosts: &[String]) -> UrlPolicy {
        UrlPolicy {
            prefixes: prefixes
                .iter()
                .filter_map(|p| Url::parse(p).ok())
                .map(|u| u.to_string())
                .collect(),
            private_hosts: Arc::new(
                private_hosts
                    .iter()
                    .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// Checks a URL before any request: its shape, its prefix, and a
    /// literal address (which no resolver sees). Returns it normalised.
    pub fn check(&self, raw: &str) -> Result<Url, UrlRefusal> {
        let url = Url::parse(raw.trim())
            .map_err(|e| UrlRefusal::Invalid(format!("video_url is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefusal::Invalid(
                "video_url must be an http:// or https:// URL".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Invalid(
                "video_url must not carry a user name or password".into(),
            ));
        }
        // Encoded separators and dots: an origin that decodes them could
        // resolve the path outside the prefix it was checked against.
        let path = url.path().to_ascii_lowercase();
        if ["%2f", "%5c", "%2e"].iter().any(|e| path.contains(e)) {
            return Err(UrlRefusal::Forbidden(
                "video_url's path must not percent-encode '/', '\\' or '.'".into(),
            ));
        }
        let text = url.as_str();
        if !self.prefixes.iter().any(|p| text.starts_with(p.as_str())) {
            return Err(UrlRefusal::Forbidden(
                "video_url is not under any of this org's allowed URL prefixes".into(),
            ));
        }
        let host = host_of(&url);
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            if is_forbidden(ip) && !self.allows_private(&host) {
                return Err(UrlRefusal::Forbidden(format!(
                    "video_url names a non-public address ({ip})"
                )));
            }
        }
        Ok(url)
    }

    fn allows_private(&self, host: &str) -> bool {
        self.private_hosts.iter().any(|h| h == host)
    }

    /// A client that connects only to allowed addresses and follows
    /// redirects only within the origin and the prefixes.
    pub fn client(&self, fetch: &FetchConfig) -> reqwest::Result<reqwest::Client> {
        let resolver = GuardedResolver {
            private_hosts: self.private_hosts.clone(),
        };
        let policy = self.clone();
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(fetch.connect_timeout_secs))
            .timeout(Duration::from_secs(fetch.request_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 3 {
                    return attempt.error(Refused("video_url redirects too many times".into()));
                }
                let first = &attempt.previous()[0];
                let next = attempt.url();
                let same_origin = first.scheme() == next.scheme()
                    && first.host_str() == next.host_str()
                    && first.port_or_known_default() == next.port_or_known_default();
                if !same_origin {
                    return attempt.error(Refused(
                        "video_url redirects to another host, which thumbd does not follow".into(),
                    ));
                }
                match policy.check(next.as_str()) {
                    Ok(_) => attempt.follow(),
                    Err(e) => attempt.error(Refused(format!("video_url redirects: {e}"))),
                }
            }))
            .user_agent(concat!("thumbd/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// The URL's host as written, lower-case, without IPv6 brackets.
fn host_of(url: &Url) -> String {
    url.host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase()
}

/// Resolves names and keeps only public addresses, unless the host is
/// allow-listed. reqwest connects to exactly what this returns.
struct GuardedResolver {
    private_hosts: Arc<Vec<String>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let allowed = self.private_hosts.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allowed || !is_forbidden(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(Box::new(Refused(format!(
                    "video_url's host {host:?} resolves only to non-public addresses"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Addresses a caller-named URL must never reach: loopback, private,
/// shared (CGNAT), link-local (cloud metadata), multicast, documentation,
/// benchmarking and reserved ranges, and their IPv6 counterparts
/// (including IPv4-mapped and NAT64 forms of them).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    let embedded = || {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // NAT64 (64:ff9b::/96) and IPv4-translated (::ffff:0:0:0/96) addresses
    // reach the IPv4 address they embed.
    if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
        || (s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
    {
        return forbidden_v4(embedded());
    }
    // Local-use NAT64 (64:ff9b:1::/48): some site's own translator.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return true;
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (AWS metadata fd00:ec2::254 among them)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "::ffff:0:7f00:1",
            "::127.0.0.1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn prefixes_hold_after_normalising() {
        let p = UrlPolicy::new(&["https://media.example.com/videos/".into()], &[]);
        assert!(p.check("https://media.example.com/videos/a.mp4").is_ok());
        assert!(p
            .check("HTTPS://MEDIA.example.com:443/videos/a.mp4")
            .is_ok());
        for forbidden in [
            "https://media.example.com/videos/../secret.mp4",
            "https://media.example.com/videos/..%2fsecret.mp4",
            "https://media.example.com/videos/%2E%2E/secret.mp4",
            "https://media.example.com/videos/..%5Csecret.mp4",
            "https://media.example.com/other/a.mp4",
            "https://media.example.com.evil.net/videos/a.mp4",
            "http://media.example.com/videos/a.mp4",
        ] {
            assert!(
                matches!(p.check(forbidden), Err(UrlRefusal::Forbidden(_))),
                "{forbidden}"
            );
        }
        for invalid in [
            "ftp://media.example.com/videos/a.mp4",
            "file:///etc/passwd",
            "not a url",
            "https://media.example.com@evil.net/videos/a.mp4",
        ] {
            assert!(
                matches!(p.check(invalid), Err(UrlRefusal::Invalid(_))),
                "{invalid}"
            );
        }
    }

    #[test]
    fn literal_addresses_need_the_host_allow_listed() {
        let open = UrlPolicy::new(
            &["http://127.0.0.1:8000/".into(), "http://[::1]:8000/".into()],
            &[],
        );
        assert!(matches!(
            open.check("http://127.0.0.1:8000/a.mp4"),
            Err(UrlRefusal::Forbidden(_))
        ));
        assert!(matches!(
            open.check("http://[::1]:8000/a.mp4"),
            Err(UrlRefusal::Forbidden(_))
        ));
        let allowed = UrlPolicy::new(&["http://127.0.0.1:8000/".into()], &["127.0.0.1".into()]);
        assert!(allowed.check("http://127.0.0.1:8000/a.mp4").is_ok());
    }
}
