//! The HTTP layer: accepting connections, routing, and turning thumbnails
//! and errors into responses a CDN can cache. It calls [`crate::render`] and
//! [`crate::jobs`] and knows nothing of FFmpeg.
//!
//! Imports point one way, down this list; no handler imports another.
//!
//! - `server`: [`serve`] (accepting connections, shutting down) and
//!   [`App::handle`], what every request gets: an `X-Request-Id`, a count in
//!   [`crate::metrics`] and one access-log line (target `thumbd::access`).
//! - `conn`: clients as they are: a send timeout for those that stop
//!   reading, a lingering read (`TrackedBody`) for those that write
//!   their body first.
//! - `router`: the one `match` that names the handlers; reads JSON API
//!   bodies before a handler runs and turns problems into answers.
//! - Handlers, one file per kind of endpoint, each importing only the app,
//!   the responses, access and `job_answers`:
//!   - `thumbnails`: `/v1/thumbnail/...`.
//!   - `pictures`: storyboards (sprite, WebVTT, JSON) and animated previews.
//!   - `placeholders`: `/v1/placeholder/...`: BlurHash, ThumbHash and a
//!     tiny WebP of a thumbnail's frame.
//!   - `info`: `/v1/info/...`: what a video is (duration, size, codec, ...).
//!   - `jobs_api`: the JSON API under `/v1/api/` (jobs, batches, the best
//!     thumbnail, preview tokens).
//!   - `uploads`: multipart video uploads into a `store:` environment.
//!   - `compat`: the video-URL and conversion-task API shapes.
//!   - `demo`: the demo page at `/`.
//!   - `operations`: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//! - `app`: [`App`], the state every handler reads, built once by
//!   [`App::new`].
//! - `endpoint`: a path parsed into a typed endpoint, the methods it
//!   answers to and its metrics route. Pure.
//! - `job_answers`: what the job-submitting handlers answer alike
//!   (`Prefer: wait`, a job's status, a failed job's problem).
//! - `access`: API keys and their rate limit, tokens of signed environments.
//! - `clients`: who a request is for, behind trusted proxies.
//! - [`access_log`]: the access line, formatted by hand and written with
//!   the other log lines in batches by one logging thread.
//! - `responses`: problem+json, JSON and plain bodies, picture headers
//!   (ETag/304, `Cache-Control`, `X-Thumbnail-*`, `Server-Timing`), reading
//!   an API body within its limit.

mod access;
pub mod access_log;
mod app;
mod clients;
mod compat;
mod conn;
mod demo;
mod endpoint;
mod info;
mod job_answers;
mod jobs_api;
mod operations;
mod pictures;
mod placeholders;
mod responses;
mod router;
mod server;
mod thumbnails;
mod uploads;

pub use app::{App, Services};
pub use responses::Body;
pub use server::serve;
