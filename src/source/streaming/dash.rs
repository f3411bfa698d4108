//! DASH manifests (MPD): the video representations of a static,
//! single-period manifest, each with its segments.
//!
//! The XML is parsed with dash-mpd-core. Video adaptation sets are those
//! with `contentType="video"`, a `video/` mime type (on the set or its
//! representations) or, when neither is given, a width or height. Each
//! representation's segments come from the most specific level (the
//! representation, its adaptation set, then the period) that carries
//! segment information, with attributes inherited from the levels above:
//!
//! - `SegmentTemplate`: `$RepresentationID$`, `$Bandwidth$`, `$Number$`,
//!   `$Time$`, `$$` and `%0Nd` widths, expanded from a `SegmentTimeline`
//!   or from a fixed `duration` over the period.
//! - `SegmentList`: `SegmentURL`s with optional `mediaRange`s.
//! - `SegmentBase` with an `indexRange`: [`Segments::Indexed`], for the
//!   caller to read the `sidx` box with [`super::sidx::timeline`].
//! - None of them: the representation's file is one segment.
//!
//! `BaseURL`s (the first at each level) are resolved in turn from the
//! manifest's own URL; absolute ones are kept as written for the caller to
//! judge.
//!
//! Refused: documents that are not manifests, or whose segment timing or
//! ranges cannot be read ([`StreamError::Invalid`]); `type="dynamic"`
//! ([`StreamError::Live`]); several periods, a manifest without video,
//! a `SegmentBase` without `indexRange` or with a separate initialization
//! file ([`StreamError::Unsupported`]); `ContentProtection` on the MPD,
//! the period, a video adaptation set or representation
//! ([`StreamError::Encrypted`]); a representation with more segments than
//! [`StreamLimits::max_segments`] (counted before anything is expanded),
//! or more than [`TOTAL_FACTOR`] times that in all ([`StreamError::TooLarge`]).

use std::fmt::Write as _;

use dash_mpd_core::{AdaptationSet, Period, Representation, SegmentTimeline};
use url::Url;

use super::{Part, Rendition, Segment, Segments, StreamError, StreamLimits, Timeline};

/// All the representations of a manifest together may list this many
/// times [`StreamLimits::max_segments`] segments.
pub const TOTAL_FACTOR: usize = 8;

/// Widest `%0Nd` accepted in a template.
const MAX_WIDTH: usize = 20;

/// Parses an MPD manifest fetched from `base`: its video renditions.
pub fn parse(
    bytes: &[u8],
    base: &Url,
    limits: &StreamLimits,
) -> Result<Vec<Rendition>, StreamError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        StreamError::Invalid("the document is not a DASH manifest: it is not UTF-8 text".into())
    })?;
    if !root_element(text).is_some_and(|name| name == "MPD" || name.ends_with(":MPD")) {
        return Err(invalid("the document is not a DASH manifest"));
    }
    let mpd = dash_mpd_core::parse(text)
        .map_err(|e| StreamError::Invalid(format!("the document is not a DASH manifest: {e}")))?;
    if mpd.mpdtype.as_deref() == Some("dynamic") {
        return Err(StreamError::Live);
    }
    let period = match mpd.periods.as_slice() {
        [] => return Err(invalid("the manifest lists no period")),
        [period] => period,
        _ => {
            return Err(StreamError::Unsupported(
                "DASH manifests with several periods are not supported".into(),
            ))
        }
    };
    if !mpd.ContentProtection.is_empty() || !period.ContentProtection.is_empty() {
        return Err(StreamError::Encrypted);
    }
    let period_us = period
        .duration
        .or(mpd.mediaPresentationDuration)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let period_base = level(&level(base, mpd.base_url.first())?, period.BaseURL.first())?;

    let mut renditions = Vec::new();
    let mut total = 0usize;
    for set in period.adaptations.iter().filter(|s| is_video(s)) {
        if !set.ContentProtection.is_empty() {
            return Err(StreamError::Encrypted);
        }
        let set_base = level(&period_base, set.BaseURL.first())?;
        for rep in &set.representations {
            let mime = rep.mimeType.as_ref().or(set.mimeType.as_ref());
            if mime.is_some_and(|m| !m.starts_with("video/"))
                || rep.contentType.as_ref().is_some_and(|c| c != "video")
            {
                continue;
            }
            if !rep.ContentProtection.is_empty() {
                return Err(StreamError::Encrypted);
            }
            if renditions.len() >= limits.max_segments {
                return Err(StreamError::TooLarge(format!(
                    "the manifest lists more than {} representations",
                    limits.max_segments
                )));
            }
            let context = Context {
                limits,
                period_us,
                base: level(&set_base, rep.BaseURL.first())?,
                id: rep.id.as_deref(),
                bandwidth: rep.bandwidth.unwrap_or(0),
            };
            let segments = segments(&context, period, set, rep)?;
            if let Segments::Listed(timeline) = &segments {
                total += timeline.segments.len();
                if total > limits.max_segments.saturating_mul(TOTAL_FACTOR) {
                    return Err(StreamError::TooLarge(format!(
                        "the manifest lists more than {} segments in all",
                        limits.max_segments.saturating_mul(TOTAL_FACTOR)
                    )));
                }
            }
            renditions.push(Rendition {
                width: dimension(rep.width.or(set.width))?,
                height: dimension(rep.height.or(set.height))?,
                bandwidth: rep.bandwidth.unwrap_or(0),
                segments,
            });
        }
    }
    if renditions.is_empty() {
        return Err(StreamError::Unsupported(
            "the manifest lists no video representation".into(),
        ));
    }
    Ok(renditions)
}

/// The name of an XML document's root element.
fn root_element(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>")? + 2..];
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->")? + 3..];
        } else if let Some(r) = rest.strip_prefix("<!") {
            rest = &r[r.find('>')? + 1..];
        } else {
            let r = rest.strip_prefix('<')?;
            let end = r.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
            return Some(&r[..end]);
        }
    }
}

fn invalid(what: impl Into<String>) -> StreamError {
    StreamError::Invalid(what.into())
}

fn dimension(n: Option<u64>) -> Result<Option<u32>, StreamError> {
    n.map(|n| u32::try_from(n).map_err(|_| invalid("a width or height is out of range")))
        .transpose()
}

/// Whether an adaptation set holds video.
fn is_video(set: &AdaptationSet) -> bool {
    if let Some(kind) = &set.contentType {
        return kind == "video";
    }
    let reps = &set.representations;
    let mut mimes = set
        .mimeType
        .iter()
        .chain(reps.iter().filter_map(|r| r.mimeType.as_ref()))
        .peekable();
    if mimes.peek().is_some() {
        return mimes.any(|m| m.starts_with("video/"));
    }
    set.width.is_some()
        || set.height.is_some()
        || reps.iter().any(|r| r.width.is_some() || r.height.is_some())
}

/// `url` with the next level's `BaseURL`, if it has one, applied.
fn level(url: &Url, base: Option<&dash_mpd_core::BaseURL>) -> Result<Url, StreamError> {
    match base {
        Some(b) => resolve(url, b.base.trim()),
        None => Ok(url.clone()),
    }
}

fn resolve(base: &Url, uri: &str) -> Result<Url, StreamError> {
    base.join(uri).map_err(|e| {
        let shown: String = uri.chars().take(100).collect();
        invalid(format!("the manifest lists an invalid URL {shown:?}: {e}"))
    })
}

/// What a representation's segments are built from.
struct Context<'a> {
    limits: &'a StreamLimits,
    period_us: Option<u64>,
    base: Url,
    id: Option<&'a str>,
    bandwidth: u64,
}

impl Context<'_> {
    fn period_us(&self) -> Result<u64, StreamError> {
        self.period_us.ok_or_else(|| {
            invalid("the manifest gives neither a period nor a presentation duration")
        })
    }

    fn too_many(&self) -> StreamError {
        StreamError::TooLarge(format!(
            "the manifest lists more than {} segments for one representation",
            self.limits.max_segments
        ))
    }

    fn timeline(&self, segments: Vec<Segment>) -> Result<Timeline, StreamError> {
        if segments.is_empty() {
            return Err(invalid("a representation lists no segment"));
        }
        let sum = segments
            .iter()
            .map(|s| s.duration_us)
            .fold(0u64, u64::saturating_add);
        Ok(Timeline {
            segments,
            duration_us: self.period_us.unwrap_or(sum),
            growing: false,
        })
    }
}

/// The first of `levels` (most specific first) for which `f` gives a value.
fn pick<'a, T, R>(levels: &[&'a T], f: impl Fn(&'a T) -> Option<R>) -> Option<R> {
    levels.iter().find_map(|t| f(t))
}

fn segments(
    cx: &Context,
    period: &Period,
    set: &AdaptationSet,
    rep: &Representation,
) -> Result<Segments, StreamError> {
    let levels = [
        (&rep.SegmentTemplate, &rep.SegmentList, &rep.SegmentBase),
        (&set.SegmentTemplate, &set.SegmentList, &set.SegmentBase),
        (
            &period.SegmentTemplate,
            &period.SegmentList,
            &period.SegmentBase,
        ),
    ];
    let templates: Vec<_> = levels.iter().filter_map(|l| l.0.as_ref()).collect();
    let lists: Vec<_> = levels.iter().filter_map(|l| l.1.as_ref()).collect();
    let bases: Vec<_> = levels.iter().filter_map(|l| l.2.as_ref()).collect();
    // The kind the most specific level names.
    for (template, list, base) in levels {
        if template.is_some() {
            return template_segments(cx, &templates).map(Segments::Listed);
        }
        if list.is_some() {
            return list_segments(cx, &lists).map(Segments::Listed);
        }
        if base.is_some() {
            return indexed(cx, &bases);
        }
    }
    // No segment information: the file is one segment.
    let media = Part {
        uri: cx.base.clone(),
        range: None,
    };
    let segment = Segment {
        start_us: 0,
        duration_us: cx.period_us()?,
        media,
        init: None,
    };
    cx.timeline(vec![segment]).map(Segments::Listed)
}

fn timescale(value: Option<u64>) -> Result<u64, StreamError> {
    match value.unwrap_or(1) {
        0 => Err(invalid("a timescale is 0")),
        t => Ok(t),
    }
}

/// `units` of `timescale` after `offset`, in microseconds (0 before it).
fn to_us(units: u64, offset: u64, timescale: u64) -> u64 {
    let us = u128::from(units.saturating_sub(offset)) * 1_000_000 / u128::from(timescale);
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// A segment from `t` to `t + d` in `timescale` units.
fn timed(media: Part, init: &Option<Part>, (t, d): (u64, u64), pto: u64, ts: u64) -> Segment {
    let start_us = to_us(t, pto, ts);
    let end_us = to_us(t.saturating_add(d), pto, ts);
    Segment {
        start_us,
        duration_us: end_us - start_us,
        media,
        init: init.clone(),
    }
}

fn template_segments(
    cx: &Context,
    templates: &[&dash_mpd_core::SegmentTemplate],
) -> Result<Timeline, StreamError> {
    let media = pick(templates, |t| t.media.as_deref())
        .ok_or_else(|| invalid("a SegmentTemplate has no media attribute"))?;
    let ts = timescale(pick(templates, |t| t.timescale))?;
    let pto = pick(templates, |t| t.presentationTimeOffset).unwrap_or(0);
    let start_number = pick(templates, |t| t.startNumber).unwrap_or(1);
    let init = pick(templates, |t| {
        let element = || t.Initialization.as_ref()?.sourceURL.as_deref();
        t.initialization.as_deref().or_else(element)
    });
    let init = match init {
        Some(tpl) => Some(Part {
            uri: resolve(&cx.base, &expand(tpl, cx, None)?)?,
            range: None,
        }),
        None => None,
    };
    let media_part = |number: u64, time: u64| -> Result<Part, StreamError> {
        let uri = resolve(&cx.base, &expand(media, cx, Some((number, time)))?)?;
        Ok(Part { uri, range: None })
    };

    let mut segments = Vec::new();
    if let Some(timeline) = pick(templates, |t| t.SegmentTimeline.as_ref()) {
        let times = times(timeline, end_units(cx.period_us, pto, ts), cx)?;
        segments.reserve(times.len());
        for (i, (t, d)) in times.into_iter().enumerate() {
            let media = media_part(start_number.saturating_add(i as u64), t)?;
            segments.push(timed(media, &init, (t, d), pto, ts));
        }
        return cx.timeline(segments);
    }

    let duration = pick(templates, |t| t.duration)
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| invalid("a SegmentTemplate has neither a SegmentTimeline nor a duration"))?;
    let period_us = cx.period_us()?;
    let segment_us = duration * 1e6 / ts as f64;
    let count = (period_us as f64 / segment_us - 1e-6).ceil().max(0.0);
    if count > cx.limits.max_segments as f64 {
        return Err(cx.too_many());
    }
    let mut count = count as u64;
    if let Some(end) = pick(templates, |t| t.endNumber) {
        count = count.min(end.saturating_add(1).saturating_sub(start_number));
    }
    segments.reserve(count as usize);
    for i in 0..count {
        let start_us = (i as f64 * segment_us).round() as u64;
        let end_us = (((i + 1) as f64 * segment_us).round() as u64).min(period_us);
        let time = pto.saturating_add((i as f64 * duration).round() as u64);
        segments.push(Segment {
            start_us,
            duration_us: end_us.saturating_sub(start_us),
            media: media_part(start_number.saturating_add(i), time)?,
            init: init.clone(),
        });
    }
    cx.timeline(segments)
}

/// The end of the period in `timescale` units on the media timeline.
fn end_units(period_us: Option<u64>, pto: u64, ts: u64) -> Option<u64> {
    let units = u128::from(period_us?) * u128::from(ts) / 1_000_000;
    u64::try_from(units).ok()?.checked_add(pto)
}

/// How many segments `S` element `s` starting at `t` stands for; a
/// negative `@r` repeats until `until` (the next `S@t` or the period's end).
fn repeats(s: &dash_mpd_core::S, t: u64, until: Option<u64>) -> Result<u64, StreamError> {
    match s.r.unwrap_or(0) {
        r if r >= 0 => Ok(r as u64 + 1),
        -1 => {
            let until = until.ok_or_else(|| {
                invalid("a SegmentTimeline repeats to the period's end, but the manifest gives no duration")
            })?;
            Ok(until.saturating_sub(t).div_ceil(s.d))
        }
        _ => Err(invalid("a SegmentTimeline S@r is below -1")),
    }
}

/// The (time, duration) of every segment a `SegmentTimeline` lists,
/// counted (and bounded) before any is expanded.
fn times(
    timeline: &SegmentTimeline,
    end: Option<u64>,
    cx: &Context,
) -> Result<Vec<(u64, u64)>, StreamError> {
    let overflow = || invalid("a SegmentTimeline is out of range");
    let entries = &timeline.segments;
    let mut plan = Vec::with_capacity(entries.len().min(cx.limits.max_segments));
    let (mut t, mut count) = (0u64, 0u64);
    for (i, s) in entries.iter().enumerate() {
        if s.d == 0 {
            return Err(invalid("a SegmentTimeline S element has no duration"));
        }
        t = s.t.unwrap_or(t);
        let until = entries.get(i + 1).and_then(|next| next.t).or(end);
        let n = repeats(s, t, until)?;
        count = count.checked_add(n).ok_or_else(|| cx.too_many())?;
        if count > cx.limits.max_segments as u64 {
            return Err(cx.too_many());
        }
        plan.push((t, s.d, n));
        t = n
            .checked_mul(s.d)
            .and_then(|span| t.checked_add(span))
            .ok_or_else(overflow)?;
    }
    let mut out = Vec::with_capacity(count as usize);
    for (t, d, n) in plan {
        out.extend((0..n).map(|k| (t + k * d, d)));
    }
    Ok(out)
}

fn list_segments(
    cx: &Context,
    lists: &[&dash_mpd_core::SegmentList],
) -> Result<Timeline, StreamError> {
    let urls = lists
        .iter()
        .map(|l| &l.segment_urls)
        .find(|u| !u.is_empty())
        .ok_or_else(|| invalid("a SegmentList lists no SegmentURL"))?;
    if urls.len() > cx.limits.max_segments {
        return Err(cx.too_many());
    }
    let ts = timescale(pick(lists, |l| l.timescale))?;
    let init = pick(lists, |l| l.Initialization.as_ref())
        .map(|i| part(&cx.base, i.sourceURL.as_deref(), i.range.as_deref()))
        .transpose()?;
    let times: Vec<(u64, u64)> = if let Some(timeline) = pick(lists, |l| l.SegmentTimeline.as_ref())
    {
        let times = times(timeline, end_units(cx.period_us, 0, ts), cx)?;
        if times.len() < urls.len() {
            return Err(invalid(
                "a SegmentList has more SegmentURLs than its SegmentTimeline",
            ));
        }
        times
    } else if let Some(d) = pick(lists, |l| l.duration).filter(|d| *d > 0) {
        (0..urls.len() as u64)
            .map(|i| (i.saturating_mul(d), d))
            .collect()
    } else if urls.len() == 1 {
        let units = end_units(Some(cx.period_us()?), 0, ts)
            .ok_or_else(|| invalid("a duration is out of range"))?;
        vec![(0, units)]
    } else {
        return Err(invalid(
            "a SegmentList has neither a duration nor a SegmentTimeline",
        ));
    };
    let mut segments = Vec::with_capacity(urls.len());
    for (url, time) in urls.iter().zip(times) {
        let media = part(&cx.base, url.media.as_deref(), url.mediaRange.as_deref())?;
        segments.push(timed(media, &init, time, 0, ts));
    }
    cx.timeline(segments)
}

/// A resource (`base` itself without a URL) and its optional range.
fn part(base: &Url, url: Option<&str>, range: Option<&str>) -> Result<Part, StreamError> {
    Ok(Part {
        uri: match url {
            Some(u) => resolve(base, u.trim())?,
            None => base.clone(),
        },
        range: range.map(byte_range).transpose()?,
    })
}

fn indexed(cx: &Context, bases: &[&dash_mpd_core::SegmentBase]) -> Result<Segments, StreamError> {
    let index = pick(bases, |b| b.indexRange.as_deref()).ok_or_else(|| {
        StreamError::Unsupported("DASH SegmentBase without an indexRange is not supported".into())
    })?;
    let ts = timescale(pick(bases, |b| b.timescale))?;
    let pto = pick(bases, |b| b.presentationTimeOffset).unwrap_or(0);
    let init = match pick(bases, |b| b.Initialization.as_ref()) {
        Some(i) => {
            if let Some(source) = &i.sourceURL {
                if resolve(&cx.base, source.trim())? != cx.base {
                    return Err(StreamError::Unsupported(
                        "DASH SegmentBase with a separate initialization file is not supported"
                            .into(),
                    ));
                }
            }
            i.range.as_deref().map(byte_range).transpose()?
        }
        None => None,
    };
    Ok(Segments::Indexed {
        media: cx.base.clone(),
        init,
        index: byte_range(index)?,
        offset_us: to_us(pto, 0, ts),
    })
}

/// An MPD byte range `a-b` (inclusive) as (a, b + 1).
fn byte_range(value: &str) -> Result<(u64, u64), StreamError> {
    let bad = || {
        invalid(format!(
            "the manifest has an invalid byte range {:?}",
            value.chars().take(40).collect::<String>()
        ))
    };
    let (first, last) = value.trim().split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok((first, last.checked_add(1).ok_or_else(bad)?))
}

/// `template` with its `$...$` identifiers replaced: `$RepresentationID$`
/// and `$Bandwidth$` from `cx`, `$Number$` and `$Time$` from `segment`
/// (none in an initialization template), `%0Nd` widths, `$$`.
fn expand(
    template: &str,
    cx: &Context,
    segment: Option<(u64, u64)>,
) -> Result<String, StreamError> {
    let bad = |what: &str| invalid(format!("a SegmentTemplate {what}"));
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find('$')
            .ok_or_else(|| bad("has an unterminated $"))?;
        let (identifier, format) = match after[..end].split_once('%') {
            Some((name, format)) => (name, Some(format)),
            None => (&after[..end], None),
        };
        rest = &after[end + 1..];
        let width: usize = match format {
            None => 0,
            Some(f) => f
                .strip_suffix('d')
                .and_then(|digits| {
                    if digits.is_empty() {
                        Some(0)
                    } else {
                        digits.parse().ok()
                    }
                })
                .filter(|width| *width <= MAX_WIDTH)
                .ok_or_else(|| bad("has an invalid format"))?,
        };
        let value = match identifier {
            "" => {
                out.push('$');
                continue;
            }
            "RepresentationID" => {
                let id = cx
                    .id
                    .ok_or_else(|| bad("names the id of a representation without one"))?;
                out.push_str(id);
                continue;
            }
            "Bandwidth" => cx.bandwidth,
            "Number" | "Time" => {
                let (number, time) =
                    segment.ok_or_else(|| bad("names a $Number$ or $Time$ it has not"))?;
                if identifier == "Number" {
                    number
                } else {
                    time
                }
            }
            _ => return Err(bad("has an unknown identifier")),
        };
        let _ = write!(out, "{value:0width$}");
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StreamLimits = StreamLimits { max_segments: 100 };

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn base() -> Url {
        url("https://media.example/v/a/manifest.mpd")
    }

    /// A manifest with `attrs` on the MPD and `body` in it.
    fn mpd(attrs: &str, body: &str) -> String {
        format!("<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" {attrs}>{body}</MPD>")
    }

    /// A manifest of one period of one video adaptation set holding `set`.
    fn video(attrs: &str, set: &str) -> String {
        mpd(
            attrs,
            &format!(
                "<Period><AdaptationSet mimeType=\"video/mp4\">{set}</AdaptationSet></Period>"
            ),
        )
    }

    fn ok(text: &str) -> Vec<Rendition> {
        parse(text.as_bytes(), &base(), &LIMITS).unwrap()
    }

    fn err(text: &str) -> StreamError {
        parse(text.as_bytes(), &base(), &LIMITS).unwrap_err()
    }

    fn listed(r: &Rendition) -> &Timeline {
        match &r.segments {
            Segments::Listed(t) => t,
            other => panic!("not listed: {other:?}"),
        }
    }

    fn paths(t: &Timeline) -> Vec<&str> {
        t.segments.iter().map(|s| s.media.uri.path()).collect()
    }

    /// (start, duration) of each segment, milliseconds.
    fn timing(t: &Timeline) -> Vec<(u64, u64)> {
        t.segments
            .iter()
            .map(|s| (s.start_us / 1000, s.duration_us / 1000))
            .collect()
    }

    #[test]
    fn fixed_duration_template() {
        let text = mpd(
            "type=\"static\" mediaPresentationDuration=\"PT9S\"",
            "<Period>
              <AdaptationSet mimeType=\"audio/mp4\"><Representation id=\"aud\" bandwidth=\"64000\"/></AdaptationSet>
              <AdaptationSet mimeType=\"video/mp4\">
                <SegmentTemplate initialization=\"$RepresentationID$/init.mp4\" timescale=\"1000\"
                  media=\"$RepresentationID$/$Bandwidth$/s-$Number%05d$.m4s\" duration=\"4000\" startNumber=\"3\"/>
                <Representation id=\"v720\" bandwidth=\"3000000\" width=\"1280\" height=\"720\"/>
                <Representation id=\"v360\" bandwidth=\"800000\" width=\"640\" height=\"360\"/>
              </AdaptationSet>
            </Period>",
        );
        let renditions = ok(&text);
        assert_eq!(renditions.len(), 2);
        let r = &renditions[0];
        assert_eq!(
            (r.width, r.height, r.bandwidth),
            (Some(1280), Some(720), 3_000_000)
        );
        let t = listed(r);
        let dir = "/v/a/v720/3000000";
        let expected: Vec<_> = (3..6).map(|n| format!("{dir}/s-0000{n}.m4s")).collect();
        assert_eq!(paths(t), expected);
        assert_eq!(timing(t), [(0, 4000), (4000, 4000), (8000, 1000)]);
        assert_eq!(t.duration_us, 9_000_000);
        let init = Part {
            uri: url("https://media.example/v/a/v720/init.mp4"),
            range: None,
        };
        assert!(t.segments.iter().all(|s| s.init.as_ref() == Some(&init)));
        assert_eq!(
            paths(listed(&renditions[1]))[0],
            "/v/a/v360/800000/s-00003.m4s"
        );
    }

    #[test]
    fn timeline_template_and_base_urls() {
        // 2 s, 2 s, 1 s (repeated up to the next S@t), then 3 s segments up
        // to the period's end (10 s: 900000 + 900000 units).
        let text = mpd(
            "mediaPresentationDuration=\"PT10S\"",
            "<BaseURL>https://cdn.example/root/</BaseURL>
            <Period><BaseURL>p1/</BaseURL>
              <AdaptationSet contentType=\"video\"><BaseURL>video/</BaseURL>
                <SegmentTemplate timescale=\"90000\" presentationTimeOffset=\"900000\"
                  initialization=\"init-$RepresentationID$.mp4\" media=\"t$Time$-n$Number$-$$.m4s\">
                  <SegmentTimeline>
                    <S t=\"900000\" d=\"180000\" r=\"1\"/><S d=\"90000\" r=\"-1\"/>
                    <S t=\"1350000\" d=\"270000\" r=\"-1\"/>
                  </SegmentTimeline>
                </SegmentTemplate>
                <Representation id=\"hd\" bandwidth=\"5000000\"><BaseURL>hd/</BaseURL></Representation>
              </AdaptationSet>
            </Period>",
        );
        let renditions = ok(&text);
        let t = listed(&renditions[0]);
        assert_eq!(
            timing(t),
            [
                (0, 2000),
                (2000, 2000),
                (4000, 1000),
                (5000, 3000),
                (8000, 3000)
            ]
        );
        let first = &t.segments[0];
        assert_eq!(
            first.media.uri.as_str(),
            "https://cdn.example/root/p1/video/hd/t900000-n1-$.m4s"
        );
        assert_eq!(paths(t)[4], "/root/p1/video/hd/t1620000-n5-$.m4s");
        let init = first.init.as_ref().unwrap();
        assert_eq!(
            init.uri.as_str(),
            "https://cdn.example/root/p1/video/hd/init-hd.mp4"
        );
        assert_eq!((t.duration_us, renditions[0].width), (10_000_000, None));
        let root = root_element("\n<?xml?>\n<!-- x -->\n<!DOCTYPE m>\n<dash:MPD a=\"1\">");
        assert_eq!(root, Some("dash:MPD"));
    }

    #[test]
    fn template_inheritance() {
        let text = mpd(
            "",
            "<Period><SegmentTemplate timescale=\"10\" media=\"p-$Number$.m4s\"/>
              <AdaptationSet width=\"1920\" height=\"1080\">
                <SegmentTemplate media=\"$RepresentationID$-$Number$.m4s\" startNumber=\"0\"/>
                <Representation id=\"a\" bandwidth=\"1\">
                  <SegmentTemplate><SegmentTimeline><S d=\"20\" r=\"2\"/></SegmentTimeline></SegmentTemplate>
                </Representation>
              </AdaptationSet>
            </Period>",
        );
        let renditions = ok(&text);
        let t = listed(&renditions[0]);
        assert_eq!(paths(t), ["/v/a/a-0.m4s", "/v/a/a-1.m4s", "/v/a/a-2.m4s"]);
        assert_eq!(t.segments[2].start_us, 4_000_000);
        assert!(t.segments[0].init.is_none());
        // No duration given: the sum of the segments.
        assert_eq!(t.duration_us, 6_000_000);
        assert_eq!(
            (renditions[0].width, renditions[0].height),
            (Some(1920), Some(1080))
        );
    }

    #[test]
    fn segment_list() {
        let text = video(
            "mediaPresentationDuration=\"PT5S\"",
            "<Representation id=\"r\" bandwidth=\"9\" width=\"320\" height=\"180\"><BaseURL>all.mp4</BaseURL>
              <SegmentList timescale=\"1000\" duration=\"2000\"><Initialization range=\"0-799\"/>
                <SegmentURL mediaRange=\"800-1799\"/><SegmentURL mediaRange=\"1800-2299\"/>
                <SegmentURL media=\"other.mp4\"/>
              </SegmentList>
            </Representation>",
        );
        let t = listed(&ok(&text)[0]).clone();
        let all = url("https://media.example/v/a/all.mp4");
        assert_eq!(
            t.segments[0].media,
            Part {
                uri: all.clone(),
                range: Some((800, 1800))
            }
        );
        assert_eq!(
            t.segments[1].media,
            Part {
                uri: all.clone(),
                range: Some((1800, 2300))
            }
        );
        let other = url("https://media.example/v/a/other.mp4");
        assert_eq!(
            t.segments[2].media,
            Part {
                uri: other,
                range: None
            }
        );
        assert_eq!(timing(&t), [(0, 2000), (2000, 2000), (4000, 2000)]);
        assert_eq!(
            t.segments[1].init,
            Some(Part {
                uri: all,
                range: Some((0, 800))
            })
        );
        assert_eq!(t.duration_us, 5_000_000);
    }

    #[test]
    fn segment_base_and_single_file() {
        let text = video(
            "mediaPresentationDuration=\"PT1M\"",
            "<Representation id=\"r\" bandwidth=\"9\"><BaseURL>https://cdn.example/r.mp4</BaseURL>
              <SegmentBase indexRange=\"862-1181\" timescale=\"1000\" presentationTimeOffset=\"1500\">
                <Initialization range=\"0-861\"/>
              </SegmentBase>
            </Representation>
            <Representation id=\"whole\" bandwidth=\"8\"><BaseURL>whole.mp4</BaseURL></Representation>",
        );
        let renditions = ok(&text);
        let media = url("https://cdn.example/r.mp4");
        let (init, index, offset_us) = (Some((0, 862)), (862, 1182), 1_500_000);
        let expected = Segments::Indexed {
            media,
            init,
            index,
            offset_us,
        };
        assert_eq!(renditions[0].segments, expected);
        let t = listed(&renditions[1]);
        assert_eq!(paths(t), ["/v/a/whole.mp4"]);
        assert_eq!(
            (t.segments[0].duration_us, t.duration_us),
            (60_000_000, 60_000_000)
        );

        let no_index = video(
            "",
            "<Representation id=\"r\"><SegmentBase/></Representation>",
        );
        assert!(matches!(err(&no_index), StreamError::Unsupported(_)));
        let bad_range = no_index.replace("<SegmentBase/>", "<SegmentBase indexRange=\"9-3\"/>");
        assert!(matches!(err(&bad_range), StreamError::Invalid(_)));
        let separate =
            "<SegmentBase indexRange=\"1-2\"><Initialization sourceURL=\"i.mp4\"/></SegmentBase>";
        let separate = no_index.replace("<SegmentBase/>", separate);
        assert!(matches!(err(&separate), StreamError::Unsupported(_)));
    }

    #[test]
    fn refusals() {
        let not_xml = [
            "<html><body>no</body></html>",
            "<MPD><Period>",
            "\u{0}garbage",
            "<svg/>",
        ];
        for text in not_xml {
            let StreamError::Invalid(message) = err(text) else {
                panic!("{text:?}")
            };
            assert!(
                message.starts_with("the document is not a DASH manifest"),
                "{message}"
            );
        }
        assert!(matches!(
            parse(&[0xff, 0xfe, 0], &base(), &LIMITS),
            Err(StreamError::Invalid(_))
        ));
        let rep = "<Representation id=\"r\" bandwidth=\"1\"><SegmentTemplate media=\"$Number$\" duration=\"1\"/></Representation>";
        let set = format!("<AdaptationSet mimeType=\"video/mp4\">{rep}</AdaptationSet>");
        assert_eq!(
            err(&video(
                "type=\"dynamic\" mediaPresentationDuration=\"PT5S\"",
                rep
            )),
            StreamError::Live
        );
        let two = mpd(
            "mediaPresentationDuration=\"PT5S\"",
            &format!("<Period>{set}</Period><Period>{set}</Period>"),
        );
        let several = StreamError::Unsupported(
            "DASH manifests with several periods are not supported".into(),
        );
        assert_eq!(err(&two), several);
        assert!(matches!(err(&mpd("", "")), StreamError::Invalid(_)));
        // No duration for a fixed-duration template.
        assert!(matches!(err(&video("", rep)), StreamError::Invalid(_)));
        let empty = "<Representation id=\"r\"><SegmentTemplate media=\"$Number$\"><SegmentTimeline/></SegmentTemplate></Representation>";
        let no_segment = StreamError::Invalid("a representation lists no segment".into());
        assert_eq!(err(&video("", empty)), no_segment);
        let cenc =
            "<ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"cenc\"/>";
        assert_eq!(
            err(&video(
                "mediaPresentationDuration=\"PT5S\"",
                &format!("{cenc}{rep}")
            )),
            StreamError::Encrypted
        );
        let audio = mpd("", "<Period><AdaptationSet contentType=\"audio\"><Representation id=\"a\"/></AdaptationSet></Period>");
        let no_video =
            StreamError::Unsupported("the manifest lists no video representation".into());
        assert_eq!(err(&audio), no_video);
    }

    #[test]
    fn counts_are_bounded_before_expansion() {
        let huge_r = video(
            "mediaPresentationDuration=\"PT5S\"",
            "<Representation id=\"r\"><SegmentTemplate media=\"$Time$\">
              <SegmentTimeline><S t=\"0\" d=\"1\" r=\"1000000000000\"/></SegmentTimeline>
            </SegmentTemplate></Representation>",
        );
        assert!(matches!(err(&huge_r), StreamError::TooLarge(_)));
        let to_end = huge_r.replace("r=\"1000000000000\"", "r=\"-1\"");
        let to_end = to_end.replace(
            "<SegmentTemplate",
            "<SegmentTemplate timescale=\"1000000000\"",
        );
        assert!(matches!(err(&to_end), StreamError::TooLarge(_)));
        let tiny = video(
            "mediaPresentationDuration=\"P10000D\"",
            "<Representation id=\"r\"><SegmentTemplate media=\"$Number$\" timescale=\"1000000\" duration=\"1\"/></Representation>",
        );
        assert!(matches!(err(&tiny), StreamError::TooLarge(_)));
        // Exactly at the limit: 100 segments of 1 s.
        let at_limit = tiny
            .replace("P10000D", "PT100S")
            .replace("duration=\"1\"", "duration=\"1000000\"");
        assert_eq!(listed(&ok(&at_limit)[0]).segments.len(), 100);
        // Representations of 100 segments each: 8 pass, 9 are too many.
        let reps = |n: usize| -> String {
            let one = "<Representation><SegmentTemplate media=\"$Number$\" duration=\"1\"/></Representation>";
            video("mediaPresentationDuration=\"PT100S\"", &one.repeat(n))
        };
        assert_eq!(ok(&reps(TOTAL_FACTOR)).len(), TOTAL_FACTOR);
        assert!(matches!(
            err(&reps(TOTAL_FACTOR + 1)),
            StreamError::TooLarge(_)
        ));
    }

    #[test]
    fn templates() {
        let cx = Context {
            limits: &LIMITS,
            period_us: None,
            base: base(),
            id: Some("v1"),
            bandwidth: 42,
        };
        let tpl = "$RepresentationID$_$Number%03d$_$Time$_$Bandwidth%6d$$$.m4s";
        assert_eq!(
            expand(tpl, &cx, Some((7, 900))).unwrap(),
            "v1_007_900_000042$.m4s"
        );
        assert_eq!(expand("plain.mp4", &cx, None).unwrap(), "plain.mp4");
        for bad in [
            "$Number",
            "$Foo$",
            "$Number%099d$",
            "$Number%x$",
            "$Number%d",
        ] {
            assert!(
                matches!(expand(bad, &cx, Some((1, 1))), Err(StreamError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(expand("$Number$", &cx, None).is_err());
        let cx = Context { id: None, ..cx };
        assert!(expand("$RepresentationID$", &cx, None).is_err());
        assert_eq!(byte_range(" 0-0 ").unwrap(), (0, 1));
        assert!(byte_range("5").is_err());
    }
}
