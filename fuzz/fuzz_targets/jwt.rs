//! Signed-URL tokens: header and claims checks over any token text, for a
//! token signed with the right key too (claims fuzzed), never a panic and
//! never a grant for another video.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thumbd::auth::{Target, Verifier};

const SECRET: &str = "fuzz-secret-0123456789-0123456789-abcdef";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let config = thumbd::Config::from_toml(
            &format!(
                "[orgs.o.envs.e]\nsource = \"file:v/{{key}}\"\naccess = \"signed\"\n\
                 [[orgs.o.signing_keys]]\nkid = \"k\"\nalg = \"HS256\"\nsecret = \"{SECRET}\"\n"
            ),
            std::path::Path::new("/"),
        )
        .expect("fuzz config");
        Verifier::new(&config).expect("verifier")
    })
}

fuzz_target!(|input: (&str, &[u8])| {
    let (token, claims) = input;
    let target = Target::thumbnail("o", "e", "a.mp4");
    let _ = verifier().verify(token, &target);
    // A genuine signature over fuzzed claims: only the claims decide.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(claims) {
        let header = jsonwebtoken::Header {
            kid: Some("k".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        };
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        if let Ok(token) = jsonwebtoken::encode(&header, &claims, &key) {
            if verifier().verify(&token, &target).is_ok() {
                assert_eq!(claims["sub"], "a.mp4", "{claims}");
            }
        }
    }
});
