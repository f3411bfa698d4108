//! The multi-frame endpoints: storyboards (a sprite and its WebVTT or JSON
//! description) and animated previews. Access, caching and headers as for
//! thumbnails; the pictures themselves come from [`crate::render`].

use std::fmt::Write as _;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};

use super::app::App;
use super::responses::{picture_response, render_problem, Body};
use crate::auth::{Target, ANIMATED_AUDIENCES, STORYBOARD_AUDIENCES};
use crate::domain::Problem;
use crate::media::storyboard::Layout;
use crate::request::animated;
use crate::request::storyboard::{self, Output, StoryboardRequest};

/// `GET /v1/storyboard/{org}/{env}/{key}.{webp|jpg|png|vtt|json}`.
pub(super) async fn storyboard(
    app: &App,
    tail: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, Problem> {
    let parsed = storyboard::parse(tail, query).map_err(Problem::invalid_request)?;
    let req = &parsed.request;
    let target = Target {
        org: &req.org,
        env: &req.env,
        key: &req.key,
        audiences: &STORYBOARD_AUDIENCES,
    };
    let access = app.env_access(&req.org, &req.env);
    let expires_at = app
        .access
        .picture(access, &target, parsed.token.as_deref(), headers)?;
    let (board, cache) = app
        .renderer
        .storyboard(req)
        .await
        .map_err(|e| render_problem(&e, &req.org, &req.env, &req.key))?;
    let (body, content_type, etag) = match parsed.output {
        Output::Sprite => (board.bytes.clone(), board.content_type, board.etag.clone()),
        Output::Vtt | Output::Json => {
            let layout = board.layout.as_ref().expect("storyboards have a layout");
            let url = sprite_url(&app.public_base_url, req, parsed.token.as_deref());
            let (text, content_type) = if parsed.output == Output::Vtt {
                (vtt(layout, &url), "text/vtt; charset=utf-8")
            } else {
                (json(layout, &url), "application/json")
            };
            // The description changes with the sprite and with its URL.
            let etag = crate::render::strong_etag(text.as_bytes());
            (Bytes::from(text), content_type, etag)
        }
    };
    let cache_control = app.cache.until(expires_at);
    Ok(picture_response(
        body,
        content_type,
        &etag,
        cache,
        cache_control,
        headers,
        head,
    ))
}

/// `GET /v1/animated/{org}/{env}/{key}.{webp|gif}`.
pub(super) async fn animated(
    app: &App,
    tail: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, Problem> {
    let (req, token) =
        animated::parse(tail, query, &app.animated_limits).map_err(Problem::invalid_request)?;
    let target = Target {
        org: &req.org,
        env: &req.env,
        key: &req.key,
        audiences: &ANIMATED_AUDIENCES,
    };
    let access = app.env_access(&req.org, &req.env);
    let expires_at = app
        .access
        .picture(access, &target, token.as_deref(), headers)?;
    let (anim, cache) = app
        .renderer
        .animated(&req)
        .await
        .map_err(|e| render_problem(&e, &req.org, &req.env, &req.key))?;
    let cache_control = app.cache.until(expires_at);
    let mut response = picture_response(
        anim.bytes.clone(),
        anim.content_type,
        &anim.etag,
        cache,
        cache_control,
        headers,
        head,
    );
    response
        .headers_mut()
        .insert(X_ANIMATION_FRAMES, HeaderValue::from(anim.frames));
    Ok(response)
}

/// Where a storyboard's sprite is, with the same parameters (and token).
fn sprite_url(public_base_url: &str, req: &StoryboardRequest, token: Option<&str>) -> String {
    let mut url = format!(
        "{}/v1/storyboard/{}/{}/{}.{}?{}",
        public_base_url.trim_end_matches('/'),
        req.org,
        req.env,
        req.key,
        req.spec.format.ext(),
        req.sprite_query()
    );
    if let Some(t) = token {
        url.push_str("&token=");
        url.extend(form_urlencoded::byte_serialize(t.as_bytes()));
    }
    url
}

/// `X-Animation-Frames`: frames in an animated preview.
const X_ANIMATION_FRAMES: http::HeaderName = http::HeaderName::from_static("x-animation-frames");

/// `HH:MM:SS.mmm`, as WebVTT writes times.
fn vtt_time(secs: f64) -> String {
    let ms = (secs * 1000.0).round().max(0.0) as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The WebVTT file players read: one cue per tile, its text the sprite's
/// URL with the tile's region (`#xywh=x,y,w,h`).
fn vtt(layout: &Layout, sprite_url: &str) -> String {
    let mut out = String::from("WEBVTT\n");
    for t in &layout.tiles {
        let _ = write!(
            out,
            "\n{} --> {}\n{sprite_url}#xywh={},{},{},{}\n",
            vtt_time(t.start),
            vtt_time(t.end),
            t.x,
            t.y,
            layout.tile_width,
            layout.tile_height
        );
    }
    out
}

/// The same as JSON.
fn json(layout: &Layout, sprite_url: &str) -> String {
    let tiles: Vec<_> = layout
        .tiles
        .iter()
        .map(|t| {
            serde_json::json!({
                "start": t.start, "end": t.end, "x": t.x, "y": t.y, "time": t.shown,
            })
        })
        .collect();
    serde_json::json!({
        "url": sprite_url,
        "tile_width": layout.tile_width,
        "tile_height": layout.tile_height,
        "columns": layout.columns,
        "rows": layout.rows,
        "duration": layout.duration,
        "tiles": tiles,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::storyboard::Tile;

    #[test]
    fn vtt_cues() {
        let layout = Layout {
            tile_width: 160,
            tile_height: 90,
            columns: 2,
            rows: 1,
            duration: 3725.5,
            tiles: vec![
                Tile {
                    start: 0.0,
                    end: 2.0,
                    x: 0,
                    y: 0,
                    shown: 0.0,
                },
                Tile {
                    start: 2.0,
                    end: 3725.5,
                    x: 160,
                    y: 0,
                    shown: 2.0,
                },
            ],
        };
        assert_eq!(
            vtt(&layout, "/s.webp?width=160"),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n/s.webp?width=160#xywh=0,0,160,90\n\n\
             00:00:02.000 --> 01:02:05.500\n/s.webp?width=160#xywh=160,0,160,90\n"
        );
    }
}
