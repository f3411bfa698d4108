//! A real S3-compatible server for tests: `s3s-fs` (from crates.io,
//! installed by `make s3-server`, which `make test` runs) over a temporary
//! folder, checking SigV4 signatures against one key pair, behind a
//! forwarding proxy that counts requests and bytes per object and can
//! answer `503 SlowDown` (throttling) or stop answering (an outage).
//!
//! Buckets are folders of the root and objects files in them, so a test
//! puts or replaces an object by writing the file.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{free_port, Proc, Traffic};

pub const ACCESS_KEY: &str = "AKIATHUMBDTESTS00001";
pub const SECRET_KEY: &str = "thumbd-tests-secret-key-0123456789abcdef";

/// Where `make s3-server` installs the server.
fn s3s_fs() -> PathBuf {
    if let Ok(found) = which("s3s-fs") {
        return found;
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let path = home.join("bin/s3s-fs");
    assert!(
        path.exists(),
        "s3s-fs is not installed: run `make s3-server` (or `make test`)"
    );
    path
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH")
        .map_err(|_| ())?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

#[derive(Default)]
struct Faults {
    /// Answer this many more requests with 503 SlowDown.
    throttle: AtomicU32,
    /// Answer nothing (hold the connection until the client gives up).
    down: AtomicBool,
    traffic: Mutex<HashMap<String, Traffic>>,
    /// Requests refused with 503 so far.
    throttled: AtomicU32,
}

/// s3s-fs on a loopback port, behind the counting proxy at `addr`.
pub struct S3Server {
    /// The proxy: the endpoint to give thumbd.
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    faults: Arc<Faults>,
    _server: Proc,
    _stop: oneshot::Sender<()>,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = root.path().with_extension("s3s.log");
        let mut cmd = Command::new(s3s_fs());
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path());
        let server = Proc::spawn("s3s-fs", &mut cmd, log);
        let backend: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(backend).await.is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let faults = Arc::new(Faults::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let f = faults.clone();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => r.unwrap().0,
                    _ = &mut stopped => return,
                };
                let (f, client) = (f.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (f, client) = (f.clone(), client.clone());
                        async move { Ok::<_, Infallible>(forward(&f, &client, backend, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        S3Server {
            addr,
            root,
            faults,
            _server: server,
            _stop: stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The body of an `s3` table pointing thumbd here, signing with the
    /// access key and `secret`.
    pub fn table_with_secret(&self, secret: &str) -> String {
        format!(
            "endpoint = \"{}\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{secret}\"\n",
            self.endpoint()
        )
    }

    /// [`S3Server::table_with_secret`] with the right secret.
    pub fn table(&self) -> String {
        self.table_with_secret(SECRET_KEY)
    }

    /// Creates a bucket (a folder).
    pub fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name)).unwrap();
    }

    /// Puts (or replaces) an object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = self.root.path().join(bucket).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Objects under `prefix` in `bucket`, recursively.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let base = self.root.path().join(bucket);
        let mut out = Vec::new();
        walk(&base.join(prefix), &base, &mut out);
        // s3s-fs keeps its own bookkeeping beside the objects.
        out.retain(|p| !p.contains(".s3s") && !p.starts_with('.'));
        out
    }

    /// The next `n` requests are answered `503 SlowDown`.
    pub fn throttle(&self, n: u32) {
        self.faults.throttle.store(n, Ordering::SeqCst);
    }

    pub fn throttled(&self) -> u32 {
        self.faults.throttled.load(Ordering::SeqCst)
    }

    /// Stops answering (an outage) or starts again.
    pub fn set_down(&self, down: bool) {
        self.faults.down.store(down, Ordering::SeqCst);
    }

    /// Successful GETs of `bucket/key` and the bytes they carried.
    pub fn traffic(&self, path: &str) -> Traffic {
        self.faults
            .traffic
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    /// Every request the proxy forwarded, by path.
    pub fn all_traffic(&self) -> HashMap<String, Traffic> {
        self.faults.traffic.lock().unwrap().clone()
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

async fn forward(
    faults: &Faults,
    client: &reqwest::Client,
    backend: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if faults.down.load(Ordering::SeqCst) {
        // Nothing comes back: the client's own time limit must end it.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let take = faults
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if take.is_ok() {
        faults.throttled.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(503)
            .header("content-type", "application/xml")
            .body(full(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                 <Message>Please reduce your request rate.</Message></Error>",
            ))
            .unwrap();
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = format!(
        "http://{backend}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    // Headers as sent, Host included: the signature covers it.
    let mut out = client.request(parts.method.clone(), target).body(body);
    for (name, value) in &parts.headers {
        out = out.header(name, value);
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(full(format!("proxy: {e}")))
                .unwrap()
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    if parts.method == hyper::Method::GET && status.is_success() {
        let mut t = faults.traffic.lock().unwrap();
        let entry = t.entry(path).or_default();
        entry.requests += 1;
        entry.bytes += bytes.len() as u64;
    }
    let mut builder = Response::builder().status(status);
    for (name, value) in &headers {
        if name != "transfer-encoding" && name != "connection" {
            builder = builder.header(name, value);
        }
    }
    builder.body(full(bytes)).unwrap()
}
