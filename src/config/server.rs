//! `[server]` and `[log]`: listening, HTTP limits, client addresses, logs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The address clients and the CDN reach thumbd at; used wherever thumbd
    /// hands out URLs of its own.
    pub public_base_url: String,
    /// `max-age` of successful thumbnail responses, in seconds. Thumbnails of a
    /// given URL never change, so the default is a year with `immutable`.
    pub max_age_secs: u64,
    /// `max-age` of 400, 404, 415 and 422 answers, so a CDN does not hammer the
    /// origin with requests that will fail the same way.
    pub error_max_age_secs: u64,
    /// After SIGTERM, how long `/readyz` answers 503 while connections are
    /// still accepted, so a load balancer stops sending before the
    /// listener closes, in seconds.
    pub shutdown_delay_secs: u64,
    /// Then, how long in-flight requests and running jobs get to finish
    /// before the process exits, in seconds.
    pub shutdown_grace_secs: u64,
    /// Largest request head (request line and headers) accepted, in bytes;
    /// a larger one is answered 431 and the connection closed. At least 8192.
    pub max_header_bytes: usize,
    /// How long a client may take to send its request head, in seconds.
    pub header_read_timeout_secs: u64,
    /// How long an upload's body may stall (no bytes arriving) before it is
    /// refused with 408 and its bytes removed, in seconds.
    pub body_idle_timeout_secs: u64,
    /// How long an answer may wait for the client to take more of it (the
    /// time between two writes that make progress, as nginx's
    /// `send_timeout`) before the connection is closed, in seconds: a
    /// client that stops reading does not hold its connection for ever.
    pub send_timeout_secs: u64,
    /// After answering a request without reading its whole body (a refused
    /// upload: 401, 413), how long thumbd goes on reading and discarding
    /// what the client still sends before closing, in seconds (as nginx's
    /// lingering close): a client that writes its whole body before reading
    /// the answer then gets the answer instead of a reset connection.
    pub linger_secs: u64,
    /// Serve the demo page at `/` (a gallery of the configured `file:`
    /// samples and a URL builder). On in the embedded default; off unless
    /// set, so a production config does not expose it by accident.
    pub demo_page: bool,
    /// The header in which a trusted proxy or CDN names the client it
    /// forwards for (`X-Forwarded-For`, `CF-Connecting-IP`, ...): read only
    /// on connections from `trusted_proxies`, for the render queue's
    /// per-client share (`render.per_client_queue`).
    pub client_header: Option<String>,
    /// Addresses (`10.0.0.7`) and networks (`10.0.0.0/8`, `2001:db8::/32`)
    /// of the proxies whose `client_header` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            public_base_url: "http://127.0.0.1:8080".into(),
            max_age_secs: 31_536_000,
            error_max_age_secs: 60,
            shutdown_delay_secs: 5,
            shutdown_grace_secs: 25,
            max_header_bytes: 16 * 1024,
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 30,
            send_timeout_secs: 60,
            linger_secs: 10,
            demo_page: false,
            client_header: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerConfig {
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_delay_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.body_idle_timeout_secs)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }

    pub fn linger(&self) -> Duration {
        Duration::from_secs(self.linger_secs)
    }
}

/// An address or a network of them (`10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is the network of that one address), as `trusted_proxies` lists
/// them. An IPv4 network also holds the IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.7`) of its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad =
            || format!("{text:?} is not an address or a network like 10.0.0.0/8 or 2001:db8::/32");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        // A mapped IPv4 address is the IPv4 address (so it meets peers as they are counted).
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Cidr, String> {
        text.parse()
    }
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human-readable; colour only on a terminal) or `json` (one
    /// object per line). The environment variable `THUMBD_LOG_FORMAT`
    /// overrides it; `THUMBD_LOG` sets the filter.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}
