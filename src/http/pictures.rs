//! The multi-frame endpoints: storyboards (sprite sheets and their WebVTT
//! or JSON description) and animated previews. Access, caching and headers
//! as for thumbnails; the pictures themselves come from [`crate::render`].

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::app::App;
use super::responses::{picture_response, render_problem, sequence_timing, Body, SERVER_TIMING};
use crate::auth::{Target, ANIMATED_AUDIENCES, STORYBOARD_AUDIENCES};
use crate::domain::{FieldError, Problem};
use crate::media::storyboard::Layout;
use crate::render::RenderError;
use crate::request::animated;
use crate::request::storyboard::{self, Output, StoryboardRequest};

/// `GET /v1/storyboard/{org}/{env}/{key}.{webp|jpg|png|vtt|json}`: a
/// sprite sheet (`sheet=`, the first by default), or the description of
/// every sheet. The first sheet is made first whatever is asked: its
/// layout lists every tile; the description is made from it, and a later
/// sheet too.
pub(super) async fn storyboard(
    app: &App,
    tail: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, Problem> {
    let parsed = storyboard::parse(tail, query).map_err(Problem::invalid_request)?;
    let req = &parsed.request;
    req.check_limits(app.renderer.storyboard_max_tiles())
        .map_err(too_many_tiles)?;
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
    let failed = |e: Arc<RenderError>| render_problem(&e, &req.org, &req.env, &req.key);
    let (first, first_cache) = app.renderer.storyboard(req).await.map_err(failed)?;
    let whole = first.layout.as_ref().expect("storyboards have a layout");
    let (body, content_type, etag, cache, made_in) = match parsed.output {
        Output::Sprite if req.sheet == 0 => (
            first.bytes.clone(),
            first.content_type,
            first.etag.clone(),
            first_cache,
            first.made_in,
        ),
        Output::Sprite => {
            let sheets = whole.sheets();
            if req.sheet >= sheets {
                return Err(Problem::not_found(format!(
                    "this storyboard has {sheets} sprite sheet{}: sheet=0 to {}",
                    if sheets == 1 { "" } else { "s" },
                    sheets - 1
                )));
            }
            let (sheet, cache) = app
                .renderer
                .storyboard_later_sheet(req, whole.clone())
                .await
                .map_err(failed)?;
            (
                sheet.bytes.clone(),
                sheet.content_type,
                sheet.etag.clone(),
                cache,
                sheet.made_in,
            )
        }
        Output::Vtt | Output::Json => {
            let token = parsed.token.as_deref();
            let urls: Vec<String> = (0..whole.sheets())
                .map(|n| sprite_url(&app.public_base_url, &req.on_sheet(n), token))
                .collect();
            let (text, content_type) = if parsed.output == Output::Vtt {
                (vtt(whole, &urls), "text/vtt; charset=utf-8")
            } else {
                (json(whole, &urls), "application/json")
            };
            // The description changes with the sprites and with their URLs.
            let etag = crate::render::strong_etag(text.as_bytes());
            (
                Bytes::from(text),
                content_type,
                etag,
                first_cache,
                first.made_in,
            )
        }
    };
    let cache_control = app.cache.until(expires_at);
    let mut response = picture_response(
        body,
        content_type,
        &etag,
        cache,
        cache_control,
        headers,
        head,
    );
    // (For a description: how its first sheet, which it is made from, was found.)
    response
        .headers_mut()
        .insert(SERVER_TIMING, sequence_timing(cache, made_in));
    Ok(response)
}

/// 422 for a well-formed `tiles` past what this server makes
/// (`pictures.storyboard_max_tiles`), naming the parameter in `errors`
/// as a 400 does.
fn too_many_tiles(e: FieldError) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "too-many-tiles",
        "Too many tiles",
        format!("{}: {}", e.location, e.message),
    )
    .with_member("errors", serde_json::json!([e]))
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
    let h = response.headers_mut();
    h.insert(X_ANIMATION_FRAMES, HeaderValue::from(anim.frames));
    h.insert(SERVER_TIMING, sequence_timing(cache, anim.made_in));
    Ok(response)
}

/// Where a storyboard's sprite sheet is, with the same parameters (and
/// token).
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

/// The WebVTT file players read: one cue per tile, its text its sheet's
/// URL (from `sheets`) with the tile's region (`#xywh=x,y,w,h`).
fn vtt(layout: &Layout, sheets: &[String]) -> String {
    let mut out = String::from("WEBVTT\n");
    for (i, t) in layout.tiles.iter().enumerate() {
        let _ = write!(
            out,
            "\n{} --> {}\n{}#xywh={},{},{},{}\n",
            vtt_time(t.start),
            vtt_time(t.end),
            sheets[layout.sheet_of(i) as usize],
            t.x,
            t.y,
            layout.tile_width,
            layout.tile_height
        );
    }
    out
}

/// The same as JSON: `url` is the first sheet (the whole storyboard when
/// it has one), `sheets` each sheet's URL and size, and each tile its
/// `sheet`.
fn json(layout: &Layout, sheets: &[String]) -> String {
    let tiles: Vec<_> = layout
        .tiles
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // (A NaN time, not known before its sheet is made, is null.)
            serde_json::json!({
                "start": t.start, "end": t.end, "x": t.x, "y": t.y, "time": t.shown,
                "sheet": layout.sheet_of(i),
            })
        })
        .collect();
    let sheet_list: Vec<_> = sheets
        .iter()
        .enumerate()
        .map(|(n, url)| {
            let (width, height) = layout.sheet_size(n as u32);
            serde_json::json!({"url": url, "width": width, "height": height})
        })
        .collect();
    serde_json::json!({
        "url": sheets[0],
        "tile_width": layout.tile_width,
        "tile_height": layout.tile_height,
        "columns": layout.columns,
        "rows": layout.rows,
        "duration": layout.duration,
        "sheets": sheet_list,
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
            vtt(&layout, &["/s.webp?width=160".to_owned()]),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n/s.webp?width=160#xywh=0,0,160,90\n\n\
             00:00:02.000 --> 01:02:05.500\n/s.webp?width=160#xywh=160,0,160,90\n"
        );
    }

    #[test]
    fn each_tile_names_its_sheet() {
        // Two sheets of 2x1 tiles: the third tile is on the second, whose
        // frame is not known until it is made (`time` null).
        let tile = |start: f64, x: u32, shown: f64| Tile {
            start,
            end: start + 1.0,
            x,
            y: 0,
            shown,
        };
        let layout = Layout {
            tile_width: 160,
            tile_height: 90,
            columns: 2,
            rows: 1,
            duration: 3.0,
            tiles: vec![
                tile(0.0, 0, 0.0),
                tile(1.0, 160, 1.0),
                tile(2.0, 0, f64::NAN),
            ],
        };
        let sheets = ["/s.webp?w=1".to_owned(), "/s.webp?w=1&sheet=1".to_owned()];
        let text = vtt(&layout, &sheets);
        assert!(
            text.ends_with("00:00:02.000 --> 00:00:03.000\n/s.webp?w=1&sheet=1#xywh=0,0,160,90\n")
        );
        let doc: serde_json::Value = serde_json::from_str(&json(&layout, &sheets)).unwrap();
        assert_eq!(doc["url"], "/s.webp?w=1");
        assert_eq!(
            doc["sheets"],
            serde_json::json!([
                {"url": "/s.webp?w=1", "width": 320, "height": 90},
                {"url": "/s.webp?w=1&sheet=1", "width": 160, "height": 90},
            ])
        );
        assert_eq!(doc["tiles"][1]["sheet"], 0);
        assert_eq!(doc["tiles"][2]["sheet"], 1);
        assert!(doc["tiles"][2]["time"].is_null());
    }
}
