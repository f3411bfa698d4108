//! Configuration: the TOML file, its defaults, and validation.
//!
//! Every section is a typed struct with `deny_unknown_fields`, so a typo in a
//! key is an error at start-up rather than a setting silently ignored. All
//! defaults live in the `Default` impls below; `config/thumbd.toml` is the
//! commented sample and the embedded default.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The embedded default configuration: org `demo`, env `local`, sample videos
/// from the repository. Used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/thumbd.toml");

/// Where relative `file:` sources of the embedded default resolve from.
pub const EMBEDDED_DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

/// Errors found while loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    // Not `#[from]`: the message already holds the parse error, and a
    // source would print it twice in an error chain.
    #[error("invalid config: {0}")]
    Parse(toml::de::Error),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub render: RenderConfig,
    /// Storyboards and animated previews.
    #[serde(default)]
    pub pictures: PicturesConfig,
    #[serde(default)]
    pub fetch: FetchConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Organisations by id; each owns environments.
    #[serde(default)]
    pub orgs: BTreeMap<String, OrgConfig>,
    /// The folder the config file was read from: relative `file:` sources
    /// resolve against it. Not part of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of rendered thumbnails kept in memory.
    pub max_bytes: u64,
    /// Bytes of fetched source ranges kept in memory, so several thumbnails of
    /// one video do not fetch its index and packets again.
    pub source_max_bytes: u64,
    /// How long a source's size and validator (ETag / Last-Modified) are
    /// trusted before the next render asks the source again, in seconds.
    pub source_ttl_secs: u64,
    /// Bytes of decoded frames kept, so other sizes of a frame skip decoding.
    pub frame_max_bytes: u64,
    /// A decoded frame unused this long is dropped, seconds.
    pub frame_ttl_secs: u64,
    /// A second tier below memory, shared by every node (a bucket) or kept
    /// across restarts (a folder): `[cache.shared]`.
    pub shared: Option<SharedCacheConfig>,
}

/// The shared render cache: looked in on a memory miss before rendering,
/// written after every render (after the answer has left).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedCacheConfig {
    /// `s3://bucket/prefix/` (with the `[cache.shared.s3]` table) or
    /// `file:dir` (relative to the config's folder).
    pub url: String,
    /// The bucket's endpoint, region and credentials, as an environment's.
    #[serde(default)]
    pub s3: S3Config,
    /// Longest wait for a lookup before rendering instead, milliseconds.
    #[serde(default = "default_shared_timeout_ms")]
    pub timeout_ms: u64,
    /// Writes waiting at most; a render finding the queue full is not
    /// written (and counted), so a slow bucket never holds memory.
    #[serde(default = "default_shared_pending_writes")]
    pub max_pending_writes: usize,
    /// After a failed lookup or write, the shared cache is left alone this
    /// long (renders go straight to the pipeline), seconds.
    #[serde(default = "default_shared_backoff_secs")]
    pub failure_backoff_secs: u64,
}

fn default_shared_timeout_ms() -> u64 {
    1000
}

fn default_shared_pending_writes() -> usize {
    64
}

fn default_shared_backoff_secs() -> u64 {
    5
}

/// An S3-compatible bucket's settings: an environment's `s3` table (for a
/// `source = "s3://bucket/{key}"`) or the shared cache's. Credentials are the
/// table's (each as a value, an `_env` variable or a `_file`), else the
/// standard AWS environment variables and provider chain (web identity,
/// ECS task roles, EC2 instance metadata).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The service's URL, e.g. `https://s3.eu-central-1.example.com` or
    /// `http://127.0.0.1:9000`; default AWS for the region.
    pub endpoint: Option<String>,
    /// Default `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The bucket in the path (`endpoint/bucket/key`) instead of the host
    /// name. Default: true when an endpoint is given (what self-hosted
    /// servers expect), false for AWS.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

impl S3Config {
    /// The configured key pair, if any (a half-given pair is an error).
    pub fn credentials(
        &self,
        base_dir: &Path,
        at: &str,
    ) -> Result<Option<(String, String)>, String> {
        let id = read_secret(
            (
                &self.access_key_id,
                &self.access_key_id_env,
                &self.access_key_id_file,
            ),
            base_dir,
            &format!("{at}.access_key_id"),
        )?;
        let secret = read_secret(
            (
                &self.secret_access_key,
                &self.secret_access_key_env,
                &self.secret_access_key_file,
            ),
            base_dir,
            &format!("{at}.secret_access_key"),
        )?;
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some((id, secret))),
            (None, None) => Ok(None),
            _ => Err(format!(
                "{at}: give both access_key_id and secret_access_key (or neither, for the AWS environment variables)"
            )),
        }
    }
}

/// A setting given as a value, an environment variable's name (`_env`) or
/// a file (`_file`: its contents, less a trailing newline); at most one of
/// them. Secrets of every kind (signing keys, S3 keys, database URLs) are
/// read through this.
pub fn read_secret(
    (value, var, file): (&Option<String>, &Option<String>, &Option<PathBuf>),
    base_dir: &Path,
    at: &str,
) -> Result<Option<String>, String> {
    match (value, var, file) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(v.clone())),
        (None, Some(var), None) => std::env::var(var)
            .map(Some)
            .map_err(|_| format!("{at}_env: environment variable {var} is not set")),
        (None, None, Some(file)) => {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{at}_file: cannot read {}: {e}", path.display()))?;
            Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
        }
        _ => Err(format!(
            "{at}: give at most one of the value, _env and _file"
        )),
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 512 * 1024 * 1024,
            source_max_bytes: 256 * 1024 * 1024,
            source_ttl_secs: 300,
            frame_max_bytes: 128 * 1024 * 1024,
            frame_ttl_secs: 60,
            shared: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderConfig {
    /// Renders running at once; 0 means the number of CPUs.
    pub concurrency: usize,
    /// Renders allowed to wait for a slot; beyond that, 503 with Retry-After.
    pub queue: usize,
    /// Places of `queue` one client (a peer address, or the address a
    /// trusted proxy names: `server.client_header`) may hold; past them,
    /// that client's new renders are refused with 503 while others' are
    /// still admitted. Default: a quarter of `queue`, at least 1.
    pub per_client_queue: Option<usize>,
    /// Wall-clock limit of one render (fetching, decoding, encoding), seconds.
    pub timeout_secs: u64,
    /// Bytes one render may read from its source; past it, 413.
    pub max_source_bytes: u64,
    /// Largest decoded frame accepted, in pixels (width x height); refused
    /// with 422 before decoding.
    pub max_frame_pixels: u64,
    /// Decoder threads per render; 0 = automatic: FFmpeg's frame threads for
    /// a render running alone, one thread while other renders run.
    pub decoder_threads: usize,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            concurrency: 0,
            queue: 256,
            per_client_queue: None,
            timeout_secs: 20,
            max_source_bytes: 512 * 1024 * 1024,
            max_frame_pixels: 40_000_000,
            decoder_threads: 0,
        }
    }
}

/// Bounds of the multi-frame pictures: storyboards and animated previews.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PicturesConfig {
    /// Largest storyboard sprite, in pixels (width x height).
    pub storyboard_max_pixels: u64,
    /// Longest animated preview (`end - start`), seconds.
    pub animated_max_secs: f64,
    /// Highest `fps` of an animated preview.
    pub animated_max_fps: u32,
    /// Widest animated preview, pixels.
    pub animated_max_width: u32,
    /// Memory for cached storyboards and animations (apart from
    /// `cache.max_bytes`), bytes.
    pub cache_max_bytes: u64,
    /// Frames `timeStamp=auto` may decode beyond keyframes when those are
    /// few or all dark or flat; 0: keyframes only.
    pub best_frame_scan_frames: u32,
}

impl Default for PicturesConfig {
    fn default() -> Self {
        PicturesConfig {
            storyboard_max_pixels: 16 * 1024 * 1024,
            animated_max_secs: 10.0,
            animated_max_fps: 30,
            animated_max_width: 640,
            cache_max_bytes: 64 * 1024 * 1024,
            best_frame_scan_frames: crate::domain::DEFAULT_SCAN_FRAMES,
        }
    }
}

impl PicturesConfig {
    pub fn animated_limits(&self) -> crate::domain::animated::AnimatedLimits {
        crate::domain::animated::AnimatedLimits {
            max_secs: self.animated_max_secs,
            max_fps: self.animated_max_fps,
            max_width: self.animated_max_width,
        }
    }
}

impl RenderConfig {
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            self.concurrency
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Places of the wait queue one client may hold: `per_client_queue`, or
    /// a quarter of `queue` (at least 1).
    pub fn per_client_queue(&self) -> usize {
        self.per_client_queue.unwrap_or((self.queue / 4).max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Time to establish a connection to an HTTP source, seconds.
    pub connect_timeout_secs: u64,
    /// Time for one range request to complete, seconds; past it, 504.
    pub request_timeout_secs: u64,
    /// Size of the first range request, and of a read-ahead run's first
    /// request. Small: an MP4's index is then fetched exactly (one request
    /// however large), a WebM header is a few hundred bytes, and bytes past
    /// what a render needs are bytes billed by object storage.
    pub initial_read_bytes: u64,
    /// Largest single range request; sequential reads double up to this.
    pub max_read_bytes: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout_secs: 5,
            request_timeout_secs: 10,
            initial_read_bytes: 16 * 1024,
            max_read_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// Lifetime of preview tokens issued by the API, seconds.
    pub preview_token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            leeway_secs: 30,
            preview_token_ttl_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// SQLite database of jobs; relative paths resolve from the config's
    /// folder. Default: `data/thumbd.db` there.
    pub db_path: Option<PathBuf>,
    /// Jobs pending or running at most; past it, submissions get 429.
    pub max_queue: usize,
    /// Jobs of one org running at once; orgs take turns.
    pub per_org_concurrency: usize,
    /// Items in one batch call.
    pub max_batch: usize,
    /// Tries of a job failing on a transient source error (502/504 class).
    pub max_attempts: u32,
    /// Wait before the first retry, doubled each time, milliseconds.
    pub retry_backoff_ms: u64,
    /// Tries of a webhook delivery.
    pub webhook_attempts: u32,
    /// Wait before the first webhook retry, doubled each time, milliseconds.
    pub webhook_backoff_ms: u64,
    /// Time limit of one webhook call, seconds.
    pub webhook_timeout_secs: u64,
    /// API calls per minute per API key; 0 turns rate limiting off.
    pub rate_limit_per_minute: u32,
    /// Longest `Prefer: wait=N` honoured, seconds: a client that asks to
    /// wait gets the finished job (200) if it finishes within this, else
    /// the usual 202. The video-URL route without a webhook always waits.
    pub max_wait_secs: u64,
    /// Calls an API key may make at once above the steady rate.
    pub rate_limit_burst: u32,
    /// PostgreSQL shared by several nodes
    /// (`postgres://user:password@host:port/database`) instead of SQLite
    /// (`db_path` is then unused). At most one of this, `database_url_env`
    /// (the name of an environment variable holding it) and
    /// `database_url_file` (a file holding it).
    pub database_url: Option<String>,
    pub database_url_env: Option<String>,
    pub database_url_file: Option<PathBuf>,
    /// PostgreSQL: how long a node's claim on a job holds without a
    /// heartbeat (sent every third of it) before another node may take the
    /// job over, seconds.
    pub lease_secs: u64,
    /// PostgreSQL: how often an idle node looks for claimable jobs,
    /// milliseconds (a submission to the node itself starts at once).
    pub poll_ms: u64,
    /// PostgreSQL: this node's id, written on its claims; unique per node.
    /// Default: host name and process id.
    pub node_id: Option<String>,
    /// The video-URL book: entries kept at most; past it the least recently
    /// used go. 0: no bound.
    pub url_book_max_entries: u64,
    /// The video-URL book: an entry not used (registered again, or looked
    /// up for a thumbnail) for this many days is removed. 0: kept forever.
    pub url_book_max_age_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            db_path: None,
            max_queue: 1000,
            per_org_concurrency: 5,
            max_batch: 100,
            max_attempts: 4,
            retry_backoff_ms: 500,
            webhook_attempts: 6,
            webhook_backoff_ms: 1000,
            webhook_timeout_secs: 10,
            rate_limit_per_minute: 0,
            rate_limit_burst: 10,
            max_wait_secs: 30,
            database_url: None,
            database_url_env: None,
            database_url_file: None,
            lease_secs: 30,
            poll_ms: 500,
            node_id: None,
            url_book_max_entries: 100_000,
            url_book_max_age_days: 30,
        }
    }
}

impl Config {
    /// Where the job database lives.
    pub fn jobs_db_path(&self) -> PathBuf {
        match &self.jobs.db_path {
            Some(p) => self.base_dir.join(p),
            None => self.base_dir.join("data/thumbd.db"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// Environment jobs use when a submission names none.
    #[serde(default)]
    pub default_env: Option<String>,
    /// Secret that signs this org's webhooks (`Thumbd-Signature`).
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Hosts (`host` or `host:port`) webhooks may be sent to; nothing else is called.
    #[serde(default)]
    pub webhook_hosts: Vec<String>,
    /// Environments of this org by id (for example `prod`, `staging`).
    #[serde(default)]
    pub envs: BTreeMap<String, EnvConfig>,
    /// Keys that verify tokens of this org's signed environments; several at
    /// once so keys can be rotated.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
    /// API keys for this org's calls to `/v1/api/...` (`X-Api-Key`).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Secret of the preview tokens thumbd issues (at least 32 bytes). Without
    /// it, one is derived from the org's first API key.
    #[serde(default)]
    pub preview_secret: Option<String>,
    /// The `store:` environment uploads go to when a call names none.
    /// Default: the org's only `store:` environment.
    #[serde(default)]
    pub upload_env: Option<String>,
    /// URL prefixes the video-URL API may read videos from
    /// (`https://media.example.com/`). Empty: that API is off for the org.
    #[serde(default)]
    pub video_url_prefixes: Vec<String>,
    /// Hosts (exactly as written in the URL) a video URL may name even
    /// though they resolve to a loopback, private or link-local address.
    #[serde(default)]
    pub video_url_private_hosts: Vec<String>,
    /// The environment id under which video-URL thumbnails are served:
    /// `/v1/thumbnail/{org}/{video_url_env}/{key}.webp`.
    #[serde(default = "default_video_url_env")]
    pub video_url_env: String,
}

fn default_video_url_env() -> String {
    "url".into()
}

impl OrgConfig {
    /// The `store:` environment uploads go to when a call names none.
    pub fn upload_env(&self) -> Option<&str> {
        if let Some(env) = &self.upload_env {
            return Some(env);
        }
        let mut stores = self.envs.iter().filter(|(_, e)| e.is_store());
        match (stores.next(), stores.next()) {
            (Some((id, _)), None) => Some(id),
            _ => None,
        }
    }

    /// Whether the video-URL API is on for this org.
    pub fn takes_video_urls(&self) -> bool {
        !self.video_url_prefixes.is_empty()
    }
}

/// One key that verifies signed URLs. Exactly one source of key material:
/// `public_key` / `public_key_file` (PEM) for RS*, PS*, ES* and EdDSA;
/// `secret` / `secret_env` / `secret_file` for HS*.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The `kid` tokens name in their header.
    pub kid: String,
    /// The only algorithm accepted for this key.
    pub alg: String,
    pub public_key: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// Where videos come from: `http(s)://host/path/{key}`, `file:dir/{key}`,
    /// or `store:dir` (thumbd's own store of uploaded videos).
    pub source: String,
    /// Who may fetch thumbnails.
    #[serde(default)]
    pub access: Access,
    /// Limits of a `store:` environment.
    #[serde(default)]
    pub store: StoreConfig,
    /// The bucket of an `s3://` source: endpoint, region, credentials.
    #[serde(default)]
    pub s3: S3Config,
    /// Thumbnail widths served (1-4096): a requested width becomes the
    /// nearest of them (the larger on a tie), so widths a client makes up
    /// share a few cache entries. Empty: any width.
    #[serde(default)]
    pub allowed_widths: Vec<u32>,
    /// The same for heights.
    #[serde(default)]
    pub allowed_heights: Vec<u32>,
}

impl EnvConfig {
    pub fn is_store(&self) -> bool {
        self.source.starts_with("store:")
    }
}

/// Limits of a `store:` environment (uploaded videos on local disk).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Largest upload, bytes; a larger one is cut off while it streams (413).
    pub max_upload_bytes: u64,
    /// Bytes all stored videos may take; an upload past it is refused (507).
    pub quota_bytes: u64,
    /// Days a video is kept after its last upload with `?persistent=true`;
    /// 0 keeps it forever.
    pub retention_days: u64,
    /// Hours a video uploaded without `?persistent=true` is kept after its
    /// last upload (never longer than `retention_days`); 0: as long as a
    /// persistent one.
    pub temporary_hours: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_upload_bytes: 1024 * 1024 * 1024,
            quota_bytes: 20 * 1024 * 1024 * 1024,
            retention_days: 30,
            temporary_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone with the URL.
    #[default]
    Public,
    /// Only requests with a valid signed token.
    Signed,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_toml(&text, &base)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Config {
        Config::from_toml(EMBEDDED_DEFAULT, Path::new(EMBEDDED_DEFAULT_DIR))
            .expect("the embedded default config is valid")
    }

    /// Parses and validates TOML; relative `file:` sources resolve from `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(ConfigError::Parse)?;
        config.base_dir = base_dir.to_owned();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.render.queue == 0 {
            return invalid("render.queue must be at least 1".into());
        }
        if let Some(share) = self.render.per_client_queue {
            if share == 0 || share > self.render.queue {
                return invalid(format!(
                    "render.per_client_queue must be between 1 and render.queue ({})",
                    self.render.queue
                ));
            }
        }
        match &self.server.client_header {
            Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_err() => {
                return invalid(format!(
                    "server.client_header {name:?} is not a header name"
                ));
            }
            Some(_) if self.server.trusted_proxies.is_empty() => {
                return invalid(
                    "server.client_header is read only from trusted_proxies: list them".into(),
                );
            }
            None if !self.server.trusted_proxies.is_empty() => {
                return invalid(
                    "server.trusted_proxies needs server.client_header (the header they name the client in)"
                        .into(),
                );
            }
            _ => {}
        }
        let p = &self.pictures;
        let pictures_ok = p.animated_max_secs > 0.0
            && p.animated_max_secs <= 60.0
            && (1..=60).contains(&p.animated_max_fps)
            && (1..=crate::domain::MAX_DIMENSION).contains(&p.animated_max_width);
        if !pictures_ok {
            return invalid(
                "pictures.animated_max_secs must be in (0, 60], animated_max_fps in 1-60 and \
                 animated_max_width in 1-4096"
                    .into(),
            );
        }
        if !(8192..=1024 * 1024).contains(&self.server.max_header_bytes) {
            return invalid(
                "server.max_header_bytes must be between 8192 and 1048576 (bytes)".into(),
            );
        }
        if self.server.header_read_timeout_secs == 0 || self.server.body_idle_timeout_secs == 0 {
            return invalid(
                "server.header_read_timeout_secs and server.body_idle_timeout_secs must be at least 1"
                    .into(),
            );
        }
        if self.server.send_timeout_secs == 0 {
            return invalid("server.send_timeout_secs must be at least 1".into());
        }
        if self.render.timeout_secs == 0 {
            return invalid("render.timeout_secs must be at least 1".into());
        }
        if let Some(shared) = &self.cache.shared {
            let url = &shared.url;
            let ok = match url.strip_prefix("file:") {
                Some(dir) => !dir.trim_start_matches("//").is_empty(),
                None => crate::objects::split_s3_url(url).is_ok(),
            };
            if !ok {
                return invalid(format!(
                    "cache.shared.url {url:?} must be s3://bucket/prefix/ or file:folder"
                ));
            }
            if shared.timeout_ms == 0 || shared.max_pending_writes == 0 {
                return invalid(
                    "cache.shared.timeout_ms and max_pending_writes must be at least 1".into(),
                );
            }
            if shared.failure_backoff_secs > 3600 {
                return invalid("cache.shared.failure_backoff_secs must be at most 3600".into());
            }
            if url.starts_with("s3://") {
                crate::objects::check_s3(&shared.s3, &self.base_dir, "cache.shared.s3")
                    .map_err(ConfigError::Invalid)?;
            }
        }
        if self.fetch.initial_read_bytes == 0 || self.fetch.max_read_bytes == 0 {
            return invalid(
                "fetch.initial_read_bytes and fetch.max_read_bytes must be positive".into(),
            );
        }
        if self.jobs.per_org_concurrency == 0
            || self.jobs.max_queue == 0
            || self.jobs.max_attempts == 0
        {
            return invalid(
                "jobs.per_org_concurrency, jobs.max_queue and jobs.max_attempts must be at least 1"
                    .into(),
            );
        }
        let j = &self.jobs;
        let urls = [
            j.database_url.is_some(),
            j.database_url_env.is_some(),
            j.database_url_file.is_some(),
        ];
        if urls.iter().filter(|given| **given).count() > 1 {
            return invalid(
                "jobs: give at most one of database_url, database_url_env and database_url_file"
                    .into(),
            );
        }
        if let Some(url) = &j.database_url {
            crate::jobs::postgres::check_url(url).map_err(ConfigError::Invalid)?;
        }
        if j.lease_secs == 0 || j.poll_ms == 0 {
            return invalid("jobs.lease_secs and jobs.poll_ms must be at least 1".into());
        }
        if j.node_id.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return invalid("jobs.node_id must not be empty".into());
        }
        for (org_id, org) in &self.orgs {
            check_id("org", org_id)?;
            if let Some(env) = &org.default_env {
                if !org.envs.contains_key(env) {
                    return invalid(format!(
                        "orgs.{org_id}.default_env {env:?} is not one of its envs"
                    ));
                }
            }
            if let Some(env) = &org.upload_env {
                if !org.envs.get(env).is_some_and(EnvConfig::is_store) {
                    return invalid(format!(
                        "orgs.{org_id}.upload_env {env:?} is not one of its store: envs"
                    ));
                }
            }
            if org.takes_video_urls() {
                check_id("video_url_env", &org.video_url_env)?;
                if org.envs.contains_key(&org.video_url_env) {
                    return invalid(format!(
                        "orgs.{org_id}.video_url_env {:?} is also a configured env; name one of them differently",
                        org.video_url_env
                    ));
                }
                for prefix in &org.video_url_prefixes {
                    crate::source::guard::check_prefix(prefix).map_err(|e| {
                        ConfigError::Invalid(format!("orgs.{org_id}.video_url_prefixes: {e}"))
                    })?;
                }
            }
            for (env_id, env) in &org.envs {
                check_id("env", env_id)?;
                let at = format!("orgs.{org_id}.envs.{env_id}");
                for (name, sizes) in [
                    ("allowed_widths", &env.allowed_widths),
                    ("allowed_heights", &env.allowed_heights),
                ] {
                    if let Some(bad) = sizes
                        .iter()
                        .find(|s| !(1..=crate::domain::MAX_DIMENSION).contains(*s))
                    {
                        return invalid(format!(
                            "{at}.{name}: {bad} is not between 1 and {}",
                            crate::domain::MAX_DIMENSION
                        ));
                    }
                }
                if env.is_store() && (env.store.max_upload_bytes == 0 || env.store.quota_bytes == 0)
                {
                    return invalid(format!(
                        "{at}.store.max_upload_bytes and quota_bytes must be positive"
                    ));
                }
                let template = crate::source::SourceTemplate::parse(&env.source, &self.base_dir)
                    .map_err(|e| ConfigError::Invalid(format!("{at}.source: {e}")))?;
                if matches!(template, crate::source::SourceTemplate::S3 { .. }) {
                    crate::objects::check_s3(&env.s3, &self.base_dir, &format!("{at}.s3"))
                        .map_err(ConfigError::Invalid)?;
                }
                if env.access == Access::Signed
                    && org.signing_keys.is_empty()
                    && org.api_keys.is_empty()
                {
                    return invalid(format!(
                        "{at}.access = \"signed\" but org {org_id:?} has no signing_keys (nor api_keys for \
                         preview tokens): nothing could ever open it"
                    ));
                }
            }
        }
        // An API key names its org (routes without an org in the path), and
        // a store folder belongs to one environment (its quota, its files).
        let mut keys = std::collections::HashMap::new();
        let mut folders = std::collections::HashMap::new();
        for (org_id, org) in &self.orgs {
            for key in &org.api_keys {
                if let Some(other) = keys.insert(key.as_str(), org_id.as_str()) {
                    if other != org_id {
                        return invalid(format!(
                            "orgs {other:?} and {org_id:?} share an API key; each key must belong to one org"
                        ));
                    }
                }
            }
            for (env_id, env) in &org.envs {
                if let Ok(crate::source::SourceTemplate::Store(dir)) =
                    crate::source::SourceTemplate::parse(&env.source, &self.base_dir)
                {
                    let at = format!("orgs.{org_id}.envs.{env_id}");
                    if let Some(other) = folders.insert(dir.clone(), at.clone()) {
                        return invalid(format!(
                            "{other} and {at} use the same store folder {}; give each its own",
                            dir.display()
                        ));
                    }
                }
            }
        }
        // Key material is read and checked here, so a bad key fails start-up.
        crate::auth::Verifier::new(self).map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The environment `org`/`env`, if configured.
    pub fn env(&self, org: &str, env: &str) -> Option<&EnvConfig> {
        self.orgs.get(org)?.envs.get(env)
    }
}

fn check_id(what: &str, id: &str) -> Result<(), ConfigError> {
    if crate::domain::is_valid_id(id) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{what} id {id:?} must be 1-64 letters, digits, '-' or '_'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert!(c.env("demo", "local").is_some());
    }

    #[test]
    fn accepts_the_documented_shape() {
        let text = r#"
            [server]
            listen = "127.0.0.1:8080"
            public_base_url = "http://127.0.0.1:8080"

            [cache]
            max_bytes = 536870912

            [orgs.demo.envs.local]
            source = "file:../samples/{key}"
            access = "public"

            [orgs.acme.envs.prod]
            source = "https://videos.example.com/{key}"
            access = "public"
        "#;
        let c = Config::from_toml(text, Path::new("/etc/thumbd")).unwrap();
        assert_eq!(c.cache.max_bytes, 536870912);
        assert_eq!(c.orgs.len(), 2);
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = Config::from_toml("[server]\nlisten_addr = \"x\"\n", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        let err = Config::from_toml(
            "[orgs.a.envs.b]\nsource = \"file:x/{key}\"\nsorce = 1\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sorce"), "{err}");
    }

    #[test]
    fn http_limits_and_log_format_are_checked() {
        let load = |text: &str| Config::from_toml(text, Path::new("."));
        for bad in [
            "[server]\nmax_header_bytes = 4096\n",
            "[server]\nmax_header_bytes = 2000000\n",
            "[server]\nheader_read_timeout_secs = 0\n",
        ] {
            let err = load(bad).unwrap_err().to_string();
            assert!(err.contains("server."), "{bad}: {err}");
        }
        let c = load("[server]\nmax_header_bytes = 8192\n[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(c.server.max_header_bytes, 8192);
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(load("[log]\nformat = \"yaml\"\n").is_err());
        // The grace that used to be the jobs' own is the server's now.
        assert!(load("[jobs]\nshutdown_grace_secs = 3\n").is_err());
        assert_eq!(LogFormat::parse(" JSON "), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("xml"), None);
    }

    #[test]
    fn keys_and_store_folders_belong_to_one_org() {
        let load = |text: &str| Config::from_toml(text, Path::new("/srv"));
        let shared_key = "[orgs.a]\napi_keys = [\"k-0123456789abcdef\"]\n\
                          [orgs.b]\napi_keys = [\"k-0123456789abcdef\"]\n";
        assert!(load(shared_key)
            .unwrap_err()
            .to_string()
            .contains("share an API key"));
        let shared_store = "[orgs.a.envs.up]\nsource = \"store:data/up\"\n\
                            [orgs.b.envs.up]\nsource = \"store:data/up\"\n";
        assert!(load(shared_store)
            .unwrap_err()
            .to_string()
            .contains("same store folder"));
        let c = load(
            "[orgs.a]\nupload_env = \"up\"\n[orgs.a.envs.up]\nsource = \"store:data/a\"\n\
             [orgs.a.envs.up.store]\nmax_upload_bytes = 10\n\
             [orgs.b.envs.up]\nsource = \"store:data/b\"\n",
        )
        .unwrap();
        assert_eq!(c.orgs["a"].upload_env(), Some("up"));
        assert_eq!(c.orgs["b"].upload_env(), Some("up"), "the only store env");
        assert_eq!(c.orgs["a"].envs["up"].store.max_upload_bytes, 10);
        assert!(load("[orgs.a]\nupload_env = \"x\"\n").is_err());
        assert!(load("[orgs.a.envs.up]\nsource = \"store:{key}\"\n").is_err());
        let urls = "[orgs.a]\nvideo_url_prefixes = [\"ftp://x/\"]\n";
        assert!(load(urls).is_err());
        let clash = "[orgs.a]\nvideo_url_prefixes = [\"https://m.example.com/\"]\n\
                     [orgs.a.envs.url]\nsource = \"file:v/{key}\"\n";
        assert!(load(clash)
            .unwrap_err()
            .to_string()
            .contains("video_url_env"));
    }

    #[test]
    fn client_shares_and_trusted_proxies() {
        let load = |text: &str| Config::from_toml(text, Path::new("."));
        let c = load("[render]\nqueue = 8\n").unwrap();
        assert_eq!(c.render.per_client_queue(), 2);
        assert_eq!(
            load("[render]\nqueue = 3\n")
                .unwrap()
                .render
                .per_client_queue(),
            1
        );
        let c = load("[render]\nqueue = 8\nper_client_queue = 8\n").unwrap();
        assert_eq!(c.render.per_client_queue(), 8);
        for bad in [
            "[render]\nqueue = 8\nper_client_queue = 0\n",
            "[render]\nqueue = 8\nper_client_queue = 9\n",
            "[server]\nclient_header = \"X-Forwarded-For\"\n",
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
            "[server]\nclient_header = \"bad header\"\ntrusted_proxies = [\"10.0.0.1\"]\n",
            "[server]\nclient_header = \"X-Real-IP\"\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            "[server]\nclient_header = \"X-Real-IP\"\ntrusted_proxies = [\"example.com\"]\n",
            "[orgs.a.envs.b]\nsource = \"file:x/{key}\"\nallowed_widths = [0, 320]\n",
            "[orgs.a.envs.b]\nsource = \"file:x/{key}\"\nallowed_heights = [5000]\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
        let c = load(
            "[server]\nclient_header = \"CF-Connecting-IP\"\n\
             trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        let [net, one, v6] = c.server.trusted_proxies[..] else {
            panic!("three")
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net.contains(ip("10.200.3.4")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::5")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(mapped.contains(ip("10.9.9.9")));
    }

    #[test]
    fn rejects_bad_sources_and_ids() {
        for bad in ["ftp://x/{key}", "https://x/video.mp4", "file:videos"] {
            let text = format!("[orgs.a.envs.b]\nsource = \"{bad}\"\n");
            assert!(Config::from_toml(&text, Path::new(".")).is_err(), "{bad}");
        }
        let text = "[orgs.\"a b\".envs.b]\nsource = \"file:x/{key}\"\n";
        assert!(Config::from_toml(text, Path::new(".")).is_err());
    }

    #[test]
    fn a_private_bucket_in_three_lines() {
        // As README's "Running several nodes" shows it.
        let text = "[orgs.acme.envs.prod]\nsource = \"s3://acme-videos/uploads/{key}\"\n\
                    s3 = { region = \"eu-west-1\" }\n";
        let c = Config::from_toml(text, Path::new(".")).unwrap();
        let env = &c.orgs["acme"].envs["prod"];
        assert_eq!(env.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(env.s3.credentials(Path::new("."), "x").unwrap(), None);
        // Half a key pair, two sources of one key, or an unknown key: refused.
        let half = S3Config {
            access_key_id: Some("AK".into()),
            ..S3Config::default()
        };
        assert!(half
            .credentials(Path::new("."), "x")
            .unwrap_err()
            .contains("both"));
        let two = S3Config {
            access_key_id: Some("AK".into()),
            access_key_id_env: Some("AK_VAR".into()),
            secret_access_key: Some("SK".into()),
            ..S3Config::default()
        };
        assert!(two
            .credentials(Path::new("."), "x")
            .unwrap_err()
            .contains("at most one"));
        assert!(Config::from_toml(&text.replace("region", "regoin"), Path::new(".")).is_err());
        // check-config reads the credentials and the endpoint as start-up would.
        for bad in [
            "s3 = { access_key_id = \"AK\" }",
            "s3 = { access_key_id = \"AK\", secret_access_key_env = \"THUMBD_TEST_UNSET_VAR\" }",
            "s3 = { endpoint = \"ftp://x\" }",
        ] {
            let text = text.replace("s3 = { region = \"eu-west-1\" }", bad);
            assert!(Config::from_toml(&text, Path::new(".")).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_come_from_a_value_a_variable_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "s3cr et\n").unwrap();
        std::env::set_var("THUMBD_TEST_SECRET_VAR", "from-env");
        let read = |v: Option<&str>, e: Option<&str>, f: Option<&str>| {
            read_secret(
                (
                    &v.map(Into::into),
                    &e.map(Into::into),
                    &f.map(PathBuf::from),
                ),
                dir.path(),
                "x",
            )
        };
        assert_eq!(read(None, None, None), Ok(None));
        assert_eq!(read(Some("v"), None, None), Ok(Some("v".into())));
        assert_eq!(
            read(None, Some("THUMBD_TEST_SECRET_VAR"), None),
            Ok(Some("from-env".into()))
        );
        assert_eq!(
            read(None, None, Some("key")),
            Ok(Some("s3cr et".into())),
            "less the newline only"
        );
        assert!(read(None, Some("THUMBD_TEST_UNSET_VAR"), None)
            .unwrap_err()
            .contains("not set"));
        assert!(read(None, None, Some("missing"))
            .unwrap_err()
            .contains("cannot read"));
        assert!(read(Some("v"), None, Some("key"))
            .unwrap_err()
            .contains("at most one"));
    }

    #[test]
    fn a_shared_cache_is_a_bucket_or_a_folder() {
        let text = "[cache.shared]\nurl = \"file:data/renders\"\n[orgs.a.envs.b]\nsource = \"file:x/{key}\"\n";
        let c = Config::from_toml(text, Path::new(".")).unwrap();
        let shared = c.cache.shared.unwrap();
        assert_eq!((shared.timeout_ms, shared.max_pending_writes), (1000, 64));
        for bad in ["ftp://x/", "file:", "s3://A/"] {
            let text = text.replace("file:data/renders", bad);
            assert!(Config::from_toml(&text, Path::new(".")).is_err(), "{bad}");
        }
    }
}
