//! The whole HTTP surface in process: any method, path, query, headers and
//! body (JSON job bodies of every shape, multipart uploads, tokens) through
//! the real router and handlers. Any answer but a 500 is fine; a 500 is a
//! bug (and panics here).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: u8,
    tail: String,
    content_type: u8,
    key: bool,
    prefer: Option<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const METHODS: [&str; 5] = ["GET", "POST", "HEAD", "PUT", "DELETE"];
const PATHS: [&str; 10] = [
    "/v1/thumbnail/",
    "/v1/api/fuzz/uploads",
    "/v1/api/fuzz/edge-ids/",
    "/v1/api/fuzz/thumbnails/batch",
    "/v1/api/fuzz/thumbnails/",
    "/v1/video/thumbnail",
    "/v2/thumbnail",
    "/v2/tasks/",
    "/v1/api/fuzz/local/edge-ids/",
    "/",
];
const KEY: &str = "fuzz-api-key-0123456789";

struct World {
    runtime: tokio::runtime::Runtime,
    app: thumbd::http::App,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        thumbd::init_ffmpeg();
        let dir = tempfile::tempdir().unwrap();
        let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");
        let text = format!(
            r#"
[jobs]
db_path = "{db}"
max_wait_secs = 1
[orgs.fuzz]
api_keys = ["{KEY}"]
default_env = "local"
upload_env = "up"
webhook_secret = "fuzz-webhook-secret"
webhook_hosts = ["127.0.0.1:9"]
video_url_prefixes = ["http://127.0.0.1:9/"]
[orgs.fuzz.envs.local]
source = "file:{samples}/{{key}}"
[orgs.fuzz.envs.private]
source = "file:{samples}/{{key}}"
access = "signed"
[orgs.fuzz.envs.up]
source = "store:{store}"
[orgs.fuzz.envs.up.store]
max_upload_bytes = 1000000
"#,
            db = dir.path().join("jobs.db").display(),
            store = dir.path().join("store").display(),
        );
        let config = thumbd::Config::from_toml(&text, dir.path()).expect("fuzz config");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let resolved = thumbd::setup::resolve(&config).expect("fuzz config resolves");
        let app = runtime
            .block_on(thumbd::setup::build(&config, resolved))
            .expect("app");
        World {
            runtime,
            app,
            _dir: dir,
        }
    })
}

fuzz_target!(|input: Input| {
    let w = world();
    let path = format!(
        "{}{}",
        PATHS[input.path as usize % PATHS.len()],
        input.tail
    );
    let mut req = http::Request::builder()
        .method(METHODS[input.method as usize % METHODS.len()])
        .uri(match path.parse::<http::Uri>() {
            Ok(uri) => uri,
            Err(_) => return,
        });
    req = req.header(
        "content-type",
        match input.content_type % 4 {
            0 => "application/json",
            1 => "multipart/form-data; boundary=fuzz",
            2 => "multipart/form-data",
            _ => "text/plain",
        },
    );
    if input.key {
        req = req.header("x-api-key", KEY);
    }
    if let Some(p) = input.prefer {
        req = req.header("prefer", format!("wait={}", p % 2));
    }
    for (name, value) in input.headers.iter().take(8) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            req = req.header(n, v);
        }
    }
    let Ok(req) = req.body(Full::new(Bytes::from(input.body))) else {
        return;
    };
    let response = w.runtime.block_on(w.app.handle(req));
    assert_ne!(response.status().as_u16(), 500, "{path}");
});
