//! Moments named through the video (`timeStamp=25%`, `f1234`, and
//! `snap=keyframe`), settled into the moment a decode is asked for before
//! the render cache is: a share of the duration becomes its time in
//! microseconds, a frame number that frame's own presentation time, and a
//! snapped time the keyframe form of it. So `50%` of a 10 s video and
//! `timeStamp=5` are one cache entry, as are `f125` at 25 fps and `5`.
//!
//! Settling a share needs the duration (the kept video info `/v1/info`
//! reads: the container's header, or a playlist); settling a frame number
//! needs the frames' times (an MP4's index; elsewhere the packets up to
//! it). Both are kept per video and moment, like the info, for
//! `cache.source_ttl_secs`.

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;

use super::{RenderError, Renderer};
use crate::domain::{Problem, RenderSpec, TimeSpec, WHOLE};
use crate::media::frame_number::{self, FrameTime};
use crate::media::MediaError;
use crate::request::ThumbnailRequest;
use crate::source::segments::Scope;
use crate::source::streaming::StreamError;
use crate::source::{SourceError, SourceLocation};

/// Settled moments: (org, env, key, moment as asked) to microseconds.
pub(super) type MomentCache = moka::sync::Cache<(String, String, String, TimeSpec), u64>;

/// Videos and moments kept settled.
const MOMENTS_KEPT: u64 = 100_000;

pub(super) fn moment_cache(ttl: Duration) -> MomentCache {
    moka::sync::Cache::builder()
        .max_capacity(MOMENTS_KEPT)
        .time_to_live(ttl)
        .build()
}

/// Why a moment could not be settled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MomentError {
    #[error("timeStamp={0} needs the video's duration, which its container does not state")]
    UnknownDuration(String),
    #[error("frame f{frame} is past the video's last frame (it has {frames} frames, f0 to f{})", frames.saturating_sub(1))]
    FramePastEnd { frame: u64, frames: u64 },
    #[error(
        "frame numbers are not supported for HLS and DASH sources: give seconds or a percentage"
    )]
    FrameOfStream,
}

impl From<&MomentError> for Problem {
    fn from(e: &MomentError) -> Problem {
        let unprocessable = |kind, title| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, e.to_string())
        };
        match e {
            MomentError::UnknownDuration(_) => {
                unprocessable("unknown-duration", "Duration unknown")
            }
            MomentError::FramePastEnd { frames, .. } => {
                unprocessable("past-end", "Time past the end").with_member("frames", *frames)
            }
            MomentError::FrameOfStream => unprocessable("unsupported-time", "Unsupported time"),
        }
    }
}

impl Renderer {
    /// `req` with its moment as a decode is asked for it: shares and frame
    /// numbers as times, snapped times as keyframe times; borrowed when
    /// nothing changes (a time, the middle, `auto`). What it reads is kept.
    pub(super) async fn settle<'a>(
        &self,
        req: Cow<'a, ThumbnailRequest>,
    ) -> Result<Cow<'a, ThumbnailRequest>, RenderError> {
        let form = match unsettled(req.spec.time, req.spec.snap) {
            None => return Ok(req),
            Some(Asked::At(us)) => return Ok(at_moment(req, us)),
            Some(Asked::Read(form)) => form,
        };
        let key = moment_key(&req, form);
        let us = match self.moments.get(&key) {
            Some(us) => us,
            None => {
                // Boxed: a read is rare and its state large; a hit should
                // not carry room for it.
                let us = Box::pin(self.read_kept_moment(&req, form)).await?;
                self.moments.insert(key, us);
                us
            }
        };
        Ok(at_moment(req, us))
    }

    /// `req` settled from what is kept, without reading the video: `None`
    /// when that would take a read (the job engine's check of the cache).
    pub(super) fn settled_now<'a>(
        &self,
        req: Cow<'a, ThumbnailRequest>,
    ) -> Option<Cow<'a, ThumbnailRequest>> {
        let us = match unsettled(req.spec.time, req.spec.snap) {
            None => return Some(req),
            Some(Asked::At(us)) => us,
            Some(Asked::Read(form)) => self.moments.get(&moment_key(&req, form))?,
        };
        Some(at_moment(req, us))
    }

    /// Reads what settling `form` of an environment's video needs.
    async fn read_kept_moment(
        &self,
        req: &ThumbnailRequest,
        form: TimeSpec,
    ) -> Result<u64, RenderError> {
        let location = self.locate(&req.org, &req.env, &req.key).await?;
        let scope = self.scope(&req.org, &req.env, &location);
        let kept = Some((req.org.as_str(), req.env.as_str()));
        self.read_moment(&location, &scope, form, kept).await
    }

    /// `spec` settled for a render outside any environment (`thumbd
    /// render`): nothing kept.
    pub(super) async fn settle_spec(
        &self,
        location: &SourceLocation,
        scope: &Scope,
        mut spec: RenderSpec,
    ) -> Result<RenderSpec, RenderError> {
        let us = match unsettled(spec.time, spec.snap) {
            None => return Ok(spec),
            Some(Asked::At(us)) => us,
            Some(Asked::Read(form)) => self.read_moment(location, scope, form, None).await?,
        };
        spec.time = moment(us, spec.snap);
        Ok(spec)
    }

    /// Reads what settling `form` needs: the duration (kept with the
    /// video's info when the video is an environment's, `kept`), or the
    /// frames' times.
    async fn read_moment(
        &self,
        location: &SourceLocation,
        scope: &Scope,
        form: TimeSpec,
        kept: Option<(&str, &str)>,
    ) -> Result<u64, RenderError> {
        match form {
            TimeSpec::Fraction(share) => {
                let duration = match kept {
                    Some((org, env)) => {
                        let (kept, _) = self
                            .kept_info(org, env, location)
                            .await
                            .map_err(|e| (*e).clone())?;
                        kept.info.duration_secs
                    }
                    None => self.read_info_in(location, scope).await?.duration_secs,
                };
                let Some(secs) = duration else {
                    if location.stream_kind().is_some() {
                        // (The one stream without a duration: one still growing.)
                        return Err(SourceError::from(StreamError::Growing).into());
                    }
                    let asked = form.as_param().unwrap_or_default();
                    return Err(MomentError::UnknownDuration(asked).into());
                };
                Ok((secs * 1e6 * f64::from(share) / f64::from(WHOLE)).round() as u64)
            }
            TimeSpec::Frame(n) => {
                if location.stream_kind().is_some() {
                    return Err(MomentError::FrameOfStream.into());
                }
                let reader = self.sources.open(location).await?;
                let found = self
                    .on_pool(move |limits| frame_number::frame_time(reader, n, limits))
                    .await?;
                match found {
                    FrameTime::At(us) => Ok(us),
                    FrameTime::PastEnd { frames } => {
                        Err(MomentError::FramePastEnd { frame: n, frames }.into())
                    }
                }
            }
            _ => Err(RenderError::Media(MediaError::Internal(format!(
                "{form:?} is not read"
            )))),
        }
    }
}

/// What settling a moment takes.
enum Asked {
    /// Nothing read: the time is known.
    At(u64),
    /// A read of the video, kept under this form.
    Read(TimeSpec),
}

/// What `time` (with `snap`) needs to be settled; `None` when it already is.
fn unsettled(time: TimeSpec, snap: bool) -> Option<Asked> {
    match time {
        // The first frame is the one shown from the start (even where its
        // own time is later: an AVI's first frame at 80 ms): `timeStamp=0`.
        TimeSpec::Frame(0) => Some(Asked::At(0)),
        TimeSpec::Fraction(_) | TimeSpec::Frame(_) => Some(Asked::Read(time)),
        TimeSpec::At(us) if snap => Some(Asked::At(us)),
        // The keyframe before the middle: the middle is half the duration.
        TimeSpec::Middle if snap => Some(Asked::Read(TimeSpec::Fraction(WHOLE / 2))),
        _ => None,
    }
}

/// Where a settled moment of `req`'s video is kept.
fn moment_key(req: &ThumbnailRequest, form: TimeSpec) -> (String, String, String, TimeSpec) {
    (req.org.clone(), req.env.clone(), req.key.clone(), form)
}

/// `req` asking for the moment at `us` (see [`moment`]).
fn at_moment(req: Cow<'_, ThumbnailRequest>, us: u64) -> Cow<'_, ThumbnailRequest> {
    let mut settled = req.into_owned();
    settled.spec.time = moment(us, settled.spec.snap);
    Cow::Owned(settled)
}

/// The moment a decode is asked for at `us`.
fn moment(us: u64, snap: bool) -> TimeSpec {
    if snap {
        TimeSpec::Keyframe(us)
    } else {
        TimeSpec::At(us)
    }
}
