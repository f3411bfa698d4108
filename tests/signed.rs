//! Private videos: JWT-signed thumbnail URLs, checked through the real
//! server. Tokens come from two independent implementations (PyJWT through
//! tests/fixtures/jwt_tool.py, and jsonwebtoken), for RS256, ES256, EdDSA
//! and HS256.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{fixtures, get, problem, read_pattern, Thumbd};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const HS_SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
const HS_SECRET_2: &str = "the-next-test-secret-after-rotation-987654321";
const VIDEO: &str = "h264_faststart.mp4";
const API_KEY: &str = "acme-api-key-0123456789abcdef";
const OTHER_API_KEY: &str = "other-api-key-0123456789abcdef";

/// Key pairs made once by the independent implementation.
fn keys() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/jwt_tool.py"
            ))
            .arg("keys")
            .arg(&dir)
            .status()
            .expect(
                "run /usr/bin/python3 (make test installs python3-jwt and python3-cryptography)",
            )
            .success();
        assert!(ok, "key generation failed");
        dir
    })
}

fn config() -> String {
    let k = keys().display();
    format!(
        r#"
[orgs.acme]
api_keys = ["{API_KEY}"]

[[orgs.acme.signing_keys]]
kid = "rsa"
alg = "RS256"
public_key_file = "{k}/rsa.pub"

[[orgs.acme.signing_keys]]
kid = "ec"
alg = "ES256"
public_key_file = "{k}/ec.pub"

[[orgs.acme.signing_keys]]
kid = "ed"
alg = "EdDSA"
public_key_file = "{k}/ed.pub"

[[orgs.acme.signing_keys]]
kid = "hs"
alg = "HS256"
secret = "{HS_SECRET}"

[[orgs.acme.signing_keys]]
kid = "hs-2026"
alg = "HS256"
secret = "{HS_SECRET_2}"

[orgs.acme.envs.private]
source = "file:{{key}}"
access = "signed"

[orgs.acme.envs.public]
source = "file:{{key}}"
access = "public"

[orgs.other]
api_keys = ["{OTHER_API_KEY}"]

[orgs.other.envs.x]
source = "file:{{key}}"
"#
    )
}

/// What to sign and how.
#[derive(Clone)]
struct Spec {
    alg: &'static str,
    kid: Option<&'static str>,
    /// Private key file name in `keys()`, or None for the HS secret.
    pem: Option<&'static str>,
    secret: &'static str,
    claims: Value,
}

fn now() -> u64 {
    thumbd::auth::now_secs()
}

fn claims() -> Value {
    json!({"sub": VIDEO, "aud": "thumbnail", "exp": now() + 600})
}

fn spec(family: &str) -> Spec {
    let (alg, kid, pem) = match family {
        "rsa" => ("RS256", "rsa", Some("rsa.pem")),
        "ec" => ("ES256", "ec", Some("ec.pem")),
        "ed" => ("EdDSA", "ed", Some("ed.pem")),
        _ => ("HS256", "hs", None),
    };
    Spec {
        alg,
        kid: Some(kid),
        pem,
        secret: HS_SECRET,
        claims: claims(),
    }
}

fn pyjwt(specs: &[Spec]) -> Vec<String> {
    let input: Vec<Value> = specs
        .iter()
        .map(|s| {
            let mut v = json!({"alg": s.alg, "kid": s.kid, "claims": s.claims});
            match s.pem {
                Some(p) => v["key"] = keys().join(p).display().to_string().into(),
                None => v["secret"] = s.secret.into(),
            }
            v
        })
        .collect();
    run_tool(&Value::from(input))
}

fn run_tool(input: &Value) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jwt_tool.py"
        ))
        .arg("sign")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rust_jwt(s: &Spec) -> String {
    let (alg, key) = encoding_key(s);
    let mut header = Header::new(alg);
    header.kid = s.kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &s.claims, &key).unwrap()
}

fn url(thumbd: &Thumbd, query: &str, token: &str) -> String {
    thumbd.url(&format!(
        "/v1/thumbnail/acme/private/{VIDEO}.png?{query}&token={token}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_gets_its_status_for_every_algorithm_and_signer() {
    let thumbd = Thumbd::start(&config()).await;
    // (name, how to change a valid spec, query, expected status)
    type Change = fn(&mut Spec);
    let cases: Vec<(&str, Change, &str, u16)> = vec![
        ("valid", |_| {}, "timeStamp=1", 200),
        (
            "expired",
            |s| s.claims["exp"] = (now() - 120).into(),
            "",
            401,
        ),
        (
            "not yet valid",
            |s| s.claims["nbf"] = (now() + 300).into(),
            "",
            401,
        ),
        (
            "no exp",
            |s| {
                s.claims.as_object_mut().unwrap().remove("exp");
            },
            "",
            401,
        ),
        ("unknown kid", |s| s.kid = Some("nope"), "", 401),
        ("no kid", |s| s.kid = None, "", 401),
        (
            "wrong key",
            |s| match s.pem {
                Some("rsa.pem") => s.pem = Some("rsa_wrong.pem"),
                Some("ec.pem") => s.pem = Some("ec_wrong.pem"),
                Some("ed.pem") => s.pem = Some("ed_wrong.pem"),
                _ => s.secret = "not-the-configured-secret-but-long-enough",
            },
            "",
            401,
        ),
        (
            "another video",
            |s| s.claims["sub"] = "vp9.webm".into(),
            "",
            403,
        ),
        (
            "wrong audience",
            |s| s.claims["aud"] = "video".into(),
            "",
            403,
        ),
        (
            "mux-style audience",
            |s| s.claims["aud"] = "t".into(),
            "",
            200,
        ),
        ("another org", |s| s.claims["org"] = "other".into(), "", 403),
        (
            "bound width honoured",
            |s| s.claims["width"] = 80.into(),
            "timeStamp=2",
            200,
        ),
        (
            "bound width repeated",
            |s| s.claims["width"] = 80.into(),
            "width=80",
            200,
        ),
        (
            "bound width contradicted",
            |s| s.claims["width"] = 80.into(),
            "width=100",
            403,
        ),
        (
            "bound format contradicted",
            |s| s.claims["format"] = "jpg".into(),
            "",
            403,
        ),
    ];
    let mut failures = Vec::new();
    for family in ["rsa", "ec", "ed", "hs"] {
        let specs: Vec<Spec> = cases
            .iter()
            .map(|(_, change, _, _)| {
                let mut s = spec(family);
                change(&mut s);
                s
            })
            .collect();
        let from_python = pyjwt(&specs);
        for (i, (name, _, query, expected)) in cases.iter().enumerate() {
            for (signer, token) in [
                ("pyjwt", from_python[i].clone()),
                ("jsonwebtoken", rust_jwt(&specs[i])),
            ] {
                let (status, headers, body) = get(&url(&thumbd, query, &token)).await;
                if status.as_u16() != *expected {
                    failures.push(format!(
                        "{family}/{signer}/{name}: {status}, expected {expected}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                    continue;
                }
                match status.as_u16() {
                    200 => {
                        let r = read_pattern(&body);
                        if name.starts_with("bound width") && r.width != 80 {
                            failures.push(format!("{family}/{signer}/{name}: width {}", r.width));
                        }
                        if *name == "valid" && r.frame != 25 {
                            failures.push(format!("{family}/{signer}/{name}: frame {}", r.frame));
                        }
                    }
                    401 => {
                        let challenge = headers["www-authenticate"].to_str().unwrap();
                        assert!(
                            challenge.starts_with("Bearer realm=\"thumbd\""),
                            "{challenge}"
                        );
                        assert!(
                            !String::from_utf8_lossy(&body).contains(&token),
                            "the token is echoed"
                        );
                        assert_eq!(problem(&body)["status"], 401);
                        assert_eq!(headers["cache-control"], "no-store");
                    }
                    _ => assert_eq!(problem(&body)["type"], "urn:thumbd:problem:forbidden"),
                }
            }
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_tokens_are_401() {
    let thumbd = Thumbd::start(&config()).await;
    let rsa_pub = keys().join("rsa.pub").display().to_string();
    let forged = run_tool(&json!([
        {"alg": "none", "kid": "rsa", "claims": claims()},
        {"alg": "none", "kid": "hs", "claims": claims()},
        // HS256 keyed with the RSA key's public PEM, under the RSA kid.
        {"alg": "HS256", "kid": "rsa", "hmac_pem": rsa_pub, "claims": claims()},
    ]));
    let mut tokens = forged;
    tokens.extend([
        "abc".into(),
        "a.b.c".into(),
        "eyJhbGciOiJIUzI1NiJ9.e30".into(),
        String::new(),
    ]);
    for token in tokens {
        let (status, headers, body) = get(&url(&thumbd, "", &token)).await;
        assert_eq!(status, 401, "{token}: {}", String::from_utf8_lossy(&body));
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
                || token.is_empty()
        );
    }
    // No token at all.
    let (status, headers, body) =
        get(&thumbd.url(&format!("/v1/thumbnail/acme/private/{VIDEO}.png"))).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"thumbd\"");
    assert!(problem(&body)["detail"].as_str().unwrap().contains("token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_header_rotation_and_lifetime() {
    let thumbd = Thumbd::start(&config()).await;
    let client = common::client();
    let plain = thumbd.url(&format!("/v1/thumbnail/acme/private/{VIDEO}.webp?width=64"));
    let token = rust_jwt(&spec("hs"));
    let resp = client.get(&plain).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // A shared cache may keep it no longer than the token lives.
    let cc = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    let max_age: u64 = cc
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((500..=600).contains(&max_age), "{cc}");

    // Two keys valid at once, for rotation.
    let mut next = spec("hs");
    next.kid = Some("hs-2026");
    next.secret = HS_SECRET_2;
    for token in [
        rust_jwt(&spec("hs")),
        rust_jwt(&next),
        pyjwt(&[next.clone()]).remove(0),
    ] {
        assert_eq!(
            client
                .get(&plain)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_private_thumbnail_needs_a_token_every_time() {
    let thumbd = Thumbd::start(&config()).await;
    let token = rust_jwt(&spec("ed"));
    let with = url(&thumbd, "width=48&timeStamp=3", &token);
    let (status, headers, _) = get(&with).await;
    assert_eq!(
        (
            status.as_u16(),
            headers["x-thumbnail-cache"].to_str().unwrap()
        ),
        (200, "miss")
    );
    let (status, headers, _) = get(&with).await;
    assert_eq!(
        (
            status.as_u16(),
            headers["x-thumbnail-cache"].to_str().unwrap()
        ),
        (200, "hit")
    );
    let without = thumbd.url(&format!(
        "/v1/thumbnail/acme/private/{VIDEO}.png?width=48&timeStamp=3"
    ));
    let (status, _, body) = get(&without).await;
    assert_eq!(status, 401);
    assert!(!body.starts_with(b"\x89PNG"));
    let (status, _, _) = get(&format!("{without}&token=garbage")).await;
    assert_eq!(status, 401);
    // A public environment ignores tokens, even broken ones.
    let (status, _, _) = get(&thumbd.url(&format!(
        "/v1/thumbnail/acme/public/{VIDEO}.png?token=garbage"
    )))
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_tokens_for_api_key_holders() {
    let thumbd = Thumbd::start(&config()).await;
    let client = common::client();
    let endpoint = thumbd.url(&format!(
        "/v1/api/acme/private/edge-ids/{VIDEO}/preview-token"
    ));
    let resp = client
        .post(&endpoint)
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let token = body["body"]["token"].as_str().unwrap();
    let expires = humantime::parse_rfc3339(body["body"]["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((3500..=3600).contains(&left), "{left}");
    let (status, _, _) = get(&url(&thumbd, "width=32", token)).await;
    assert_eq!(status, 200);
    // For that video only.
    let (status, _, _) = get(&thumbd.url(&format!(
        "/v1/thumbnail/acme/private/vp9.webm.png?token={token}"
    )))
    .await;
    assert_eq!(status, 403);

    for (key, expected) in [
        (None, 401),
        (Some("wrong-key-0123456789"), 401),
        (Some(OTHER_API_KEY), 403),
    ] {
        let mut req = client.post(&endpoint);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), expected, "{key:?}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(
        client
            .get(&endpoint)
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    let unknown = thumbd.url(&format!("/v1/api/acme/nope/edge-ids/{VIDEO}/preview-token"));
    assert_eq!(
        client
            .post(&unknown)
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_command_makes_urls_that_work() {
    let thumbd = Thumbd::start(&config()).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("thumbd.toml");
    // The same config, with file sources resolving from the fixtures.
    let text = config().replace(
        "file:{key}",
        &format!("file:{}/{{key}}", fixtures().display()),
    );
    std::fs::write(
        &config_file,
        format!(
            "[server]\npublic_base_url = \"http://{}\"\n{text}",
            thumbd.addr
        ),
    )
    .unwrap();
    let sign = |args: &[&str]| {
        let args = [&["--org", "acme", "--env", "private", "--key", VIDEO], args].concat();
        common::sign(&config_file, &args)
    };
    let signed = sign(&[
        "--kid", "hs", "--width", "80", "--time", "2", "--format", "png", "--url",
    ]);
    assert!(
        signed.starts_with(&format!(
            "http://{}/v1/thumbnail/acme/private/{VIDEO}.png?",
            thumbd.addr
        )),
        "{signed}"
    );
    let (status, _, body) = get(&signed).await;
    assert_eq!(status, 200);
    let r = read_pattern(&body);
    assert_eq!((r.width, r.frame), (80, 50));
    // The bound width holds even if the URL is edited.
    let (status, _, _) = get(&signed.replace("width=80", "width=90")).await;
    assert_eq!(status, 403);
    // A snap to the keyframe is bound with the time (1 s GOPs).
    let snapped = sign(&[
        "--kid", "hs", "--time", "2.5", "--snap", "keyframe", "--format", "png", "--url",
    ]);
    assert!(snapped.contains("snap=keyframe"), "{snapped}");
    let (status, headers, body) = get(&snapped).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-time"], "2.000");
    assert_eq!(read_pattern(&body).frame, 50);
    // Asking for the exact frame instead is refused; leaving it out keeps
    // the token's snap.
    let (status, _, _) = get(&snapped.replace("snap=keyframe", "snap=exact")).await;
    assert_eq!(status, 403);
    let (status, headers, _) = get(&snapped.replace("&snap=keyframe", "")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-time"], "2.000");

    let rsa_private = keys().join("rsa.pem");
    let token = sign(&[
        "--kid",
        "rsa",
        "--private-key",
        rsa_private.to_str().unwrap(),
    ]);
    let (status, _, _) = get(&url(&thumbd, "", &token)).await;
    assert_eq!(status, 200);

    let out = Command::new(env!("CARGO_BIN_EXE_thumbd"))
        .args(["sign", "--config"])
        .arg(&config_file)
        .args([
            "--org", "acme", "--env", "private", "--key", VIDEO, "--kid", "rsa",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--private-key"));
}

/// Unpadded base64url, for headers jsonwebtoken's `Header` cannot carry.
fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= (b as u32) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// A token with exactly `header` (JSON), correctly signed by jsonwebtoken
/// with `key` under `alg`.
fn signed_with_header(header: &Value, claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn encoding_key(s: &Spec) -> (Algorithm, EncodingKey) {
    let alg: Algorithm = s.alg.parse().unwrap();
    let key = match s.pem {
        None => EncodingKey::from_secret(s.secret.as_bytes()),
        Some(p) => {
            let pem = std::fs::read(keys().join(p)).unwrap();
            match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
                _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
            }
        }
    };
    (alg, key)
}

/// RFC 7515 section 4.1.11: a header whose `crit` lists an extension the
/// recipient does not understand must be refused, and `crit` that is empty
/// or names a standard parameter is invalid. thumbd understands none, so
/// any `crit` is 401, whatever the signature, for every kind of token the
/// verifier checks (thumbnails, storyboards, animations, preview tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_with_crit_is_refused_whatever_its_signature() {
    let thumbd = Thumbd::start(&config()).await;
    // (extra header members, expected status, what the detail says)
    let cases: [(Value, u16, &str); 5] = [
        (json!({}), 200, ""),
        (
            json!({"crit": ["exp2"], "exp2": now() + 600}),
            401,
            "crit names an extension thumbd does not understand",
        ),
        (json!({"crit": []}), 401, "crit is empty"),
        (
            json!({"crit": ["alg"]}),
            401,
            "crit names a standard header parameter",
        ),
        (
            json!({"crit": "exp2", "exp2": 1}),
            401,
            "crit is not an array of header parameter names",
        ),
    ];
    // The preview tokens' secret: derived from the org's first API key.
    let preview_secret = thumbd::auth::keys::preview_secret(&thumbd::config::OrgConfig {
        api_keys: vec![API_KEY.into()],
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    let preview_key = EncodingKey::from_secret(&preview_secret);
    let mut failures = Vec::new();
    let mut check = |what: String,
                     status: u16,
                     headers: &reqwest::header::HeaderMap,
                     body: &[u8],
                     expected: u16,
                     detail: &str| {
        if status != expected {
            failures.push(format!(
                "{what}: {status}, expected {expected}: {}",
                String::from_utf8_lossy(body)
            ));
            return;
        }
        if expected == 401 {
            let p = problem(body);
            if p["type"] != "urn:thumbd:problem:unauthorized"
                || !p["detail"].as_str().unwrap_or("").contains(detail)
                || !headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("invalid_token")
            {
                failures.push(format!("{what}: {p}"));
            }
        }
    };
    for (extra, expected, detail) in &cases {
        // Thumbnails, under every configured algorithm.
        for family in ["rsa", "ec", "ed", "hs"] {
            let s = spec(family);
            let (alg, key) = encoding_key(&s);
            let mut header = json!({"alg": s.alg, "typ": "JWT", "kid": s.kid});
            header
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let token = signed_with_header(&header, &s.claims, alg, &key);
            let (status, headers, body) = get(&url(&thumbd, "width=32", &token)).await;
            check(
                format!("{family} thumbnail {extra}"),
                status.as_u16(),
                &headers,
                &body,
                *expected,
                detail,
            );
        }
        // A preview token (HS256 under the reserved kid), a storyboard's
        // token and an animation's.
        let mut header = json!({"alg": "HS256", "typ": "JWT", "kid": thumbd::auth::PREVIEW_KID});
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let preview = signed_with_header(
            &header,
            &json!({"sub": VIDEO, "aud": "thumbnail", "org": "acme", "env": "private", "exp": now() + 600}),
            Algorithm::HS256,
            &preview_key,
        );
        let s = spec("hs");
        let (_, hs) = encoding_key(&s);
        header["kid"] = "hs".into();
        let mut storyboard = s.claims.clone();
        storyboard["aud"] = "storyboard".into();
        let mut animated = s.claims.clone();
        animated["aud"] = "animated".into();
        for (what, path, claims_token) in [
            (
                "preview token",
                format!("/v1/thumbnail/acme/private/{VIDEO}.png?width=32&token="),
                preview,
            ),
            (
                "storyboard",
                format!("/v1/storyboard/acme/private/{VIDEO}.json?token="),
                signed_with_header(&header, &storyboard, Algorithm::HS256, &hs),
            ),
            (
                "animated",
                format!(
                    "/v1/animated/acme/private/{VIDEO}.gif?start=0&end=0.5&fps=2&width=32&token="
                ),
                signed_with_header(&header, &animated, Algorithm::HS256, &hs),
            ),
        ] {
            let (status, headers, body) = get(&thumbd.url(&format!("{path}{claims_token}"))).await;
            check(
                format!("{what} {extra}"),
                status.as_u16(),
                &headers,
                &body,
                *expected,
                detail,
            );
        }
    }
    common::assert_no_failures(&failures);
}
