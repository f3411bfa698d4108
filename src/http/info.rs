//! `GET /v1/info/{org}/{env}/{key}.json`: what a video is (duration, size
//! as shown, codec, colour, keyframe spacing, ...), as JSON, for pages that
//! lay out a player or choose storyboard parameters. Access and caching as
//! for pictures; the info itself comes from [`crate::render`].

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use serde_json::{json, Map, Value};

use super::app::App;
use super::responses::{picture_response, render_problem, Body};
use crate::auth::Target;
use crate::domain::{FieldError, Problem};
use crate::media::info::VideoInfo;
use crate::media::tonemap::Hdr;
use crate::request::{known_params, parse_path};

/// Audiences of a token that opens a video's info: its own (`info`), and
/// any that opens the video's pictures (a thumbnail, storyboard or
/// animation token for the key), since those show at least as much.
const INFO_AUDIENCES: [&str; 8] = [
    "info",
    "thumbnail",
    "t",
    "storyboard",
    "s",
    "animated",
    "gif",
    "g",
];

/// The info of `{org}/{env}/{key}.json` (or `304 Not Modified`).
pub(super) async fn info(
    app: &App,
    tail: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, Problem> {
    let (org, env, key, token) = parse(tail, query).map_err(Problem::invalid_request)?;
    let target = Target {
        org: &org,
        env: &env,
        key: &key,
        audiences: &INFO_AUDIENCES,
    };
    let access = app.env_access(&org, &env);
    let expires_at = app
        .access
        .picture(access, &target, token.as_deref(), headers)?;
    let answer = app
        .renderer
        .info(&org, &env, &key)
        .await
        .map_err(|e| render_problem(&e, &org, &env, &key))?;
    let body = info_json(&answer.info, answer.auto_time).to_string();
    let etag = crate::render::strong_etag(body.as_bytes());
    let growing = answer.info.streaming.as_ref().is_some_and(|s| s.growing);
    let cache_control = if growing {
        // A playlist still being written: its duration and keyframes come
        // later, so no cache keeps this answer for long.
        let left = expires_at.map_or(u64::MAX, |exp| exp.saturating_sub(crate::auth::now_secs()));
        HeaderValue::from_str(&format!(
            "public, max-age={}",
            left.min(app.error_max_age_secs)
        ))
        .expect("ascii")
    } else {
        app.cache.until(expires_at)
    };
    Ok(picture_response(
        Bytes::from(body),
        "application/json",
        &etag,
        answer.cache,
        cache_control,
        headers,
        head,
    ))
}

/// `{org}/{env}/{key}.json` (the key as thumbnails take it) and `?token=`.
fn parse(
    tail: &str,
    query: Option<&str>,
) -> Result<(String, String, String, Option<String>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let path = parse_path(tail, "json", &mut errors);
    if let Some(p) = &path {
        if !p.ext.eq_ignore_ascii_case("json") {
            errors.push(FieldError::new(
                "path.format",
                p.ext,
                "a video's info is .json",
            ));
        }
    }
    let token = known_params(query, &["token"], &mut errors)
        .into_iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned());
    match path {
        Some(p) if errors.is_empty() => Ok((p.org, p.env, p.key, token)),
        _ => Err(errors),
    }
}

/// The answer's JSON: snake_case as storyboards' JSON; a member that does
/// not apply is `null`, one the video does not state (`profile`, the
/// colour description) is left out.
fn info_json(info: &VideoInfo, auto_time: Option<f64>) -> Value {
    let mut out = Map::new();
    let mut put = |name: &str, value: Value| {
        out.insert(name.to_owned(), value);
    };
    put("duration", json!(info.duration_secs));
    put("width", json!(info.width));
    put("height", json!(info.height));
    put("coded_width", json!(info.coded_width));
    put("coded_height", json!(info.coded_height));
    put("rotation", json!(info.rotation));
    let (n, d) = info.pixel_aspect;
    put("pixel_aspect", json!(format!("{n}:{d}")));
    put("frame_rate", json!(info.frame_rate));
    put("codec", json!(info.codec));
    if let Some(profile) = info.profile {
        put("profile", json!(profile));
    }
    put("container", json!(info.container));
    put("bit_depth", json!(info.pixel_format.map(|p| p.depth)));
    put("pixel_format", json!(info.pixel_format.map(|p| p.name)));
    put(
        "hdr",
        json!(info.hdr.map(|h| match h {
            Hdr::Pq => "pq",
            Hdr::Hlg => "hlg",
        })),
    );
    for (name, value) in [
        ("color_primaries", info.colour.primaries),
        ("transfer", info.colour.transfer),
        ("matrix", info.colour.matrix),
    ] {
        if let Some(value) = value {
            put(name, json!(value));
        }
    }
    put("audio", json!(info.audio));
    put(
        "keyframe_interval",
        json!(info.keyframes.and_then(|k| k.interval_secs)),
    );
    put("keyframes", json!(info.keyframes.map(|k| k.count)));
    put("auto_time", json!(auto_time));
    put(
        "streaming",
        match &info.streaming {
            None => Value::Null,
            Some(s) => json!({
                "format": s.format.as_str(),
                "growing": s.growing,
                "renditions": s.renditions.iter().map(|r| json!({
                    "width": r.width, "height": r.height, "bandwidth": r.bandwidth,
                })).collect::<Vec<_>>(),
            }),
        },
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::AUDIENCES;
    use crate::auth::{ANIMATED_AUDIENCES, STORYBOARD_AUDIENCES};
    use crate::media::ffi::ffmpeg::pixel_format_named;
    use crate::media::info::{Colour, Keyframes, Rendition, Streaming, StreamingFormat};

    #[test]
    fn paths() {
        let (org, env, key, token) =
            parse("acme/prod/clips/a.mp4.json", Some("token=x.y")).unwrap();
        assert_eq!(
            (org.as_str(), env.as_str(), key.as_str()),
            ("acme", "prod", "clips/a.mp4")
        );
        assert_eq!(token.as_deref(), Some("x.y"));
        assert!(parse("acme/prod/a.mp4.JSON", None).is_ok());
        let e = parse("acme/prod/a.mp4.webp", None).unwrap_err();
        assert_eq!(e[0].location, "path.format");
        let e = parse("acme/prod/../a.mp4.json", None).unwrap_err();
        assert_eq!(e[0].location, "path.key");
        assert!(parse("acme/prod/a.json", Some("token=1&token=2")).is_err());
    }

    #[test]
    fn picture_tokens_open_info() {
        for aud in AUDIENCES
            .iter()
            .chain(&STORYBOARD_AUDIENCES)
            .chain(&ANIMATED_AUDIENCES)
        {
            assert!(INFO_AUDIENCES.contains(aud), "{aud}");
        }
    }

    #[test]
    fn json_members() {
        let info = VideoInfo {
            duration_secs: Some(30.0),
            width: 1280,
            height: 720,
            coded_width: 1280,
            coded_height: 720,
            rotation: 0,
            pixel_aspect: (1, 1),
            frame_rate: Some(24.0),
            codec: "h264",
            profile: Some("High"),
            container: "mpegts",
            pixel_format: pixel_format_named("yuv420p"),
            hdr: None,
            colour: Colour {
                primaries: Some("bt709"),
                transfer: None,
                matrix: Some("bt709"),
            },
            audio: true,
            keyframes: Some(Keyframes {
                count: 8,
                interval_secs: Some(4.0),
            }),
            streaming: Some(Streaming {
                format: StreamingFormat::Hls,
                growing: false,
                renditions: vec![Rendition {
                    width: Some(640),
                    height: Some(360),
                    bandwidth: None,
                }],
            }),
        };
        assert_eq!(
            info_json(&info, Some(12.5)),
            json!({
                "duration": 30.0, "width": 1280, "height": 720, "coded_width": 1280,
                "coded_height": 720, "rotation": 0, "pixel_aspect": "1:1", "frame_rate": 24.0,
                "codec": "h264", "profile": "High", "container": "mpegts", "bit_depth": 8,
                "pixel_format": "yuv420p", "hdr": null, "color_primaries": "bt709",
                "matrix": "bt709", "audio": true, "keyframe_interval": 4.0, "keyframes": 8,
                "auto_time": 12.5,
                "streaming": {"format": "hls", "growing": false,
                              "renditions": [{"width": 640, "height": 360, "bandwidth": null}]},
            })
        );
    }
}
