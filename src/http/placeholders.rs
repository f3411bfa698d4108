//! `GET /v1/placeholder/{org}/{env}/{key}.json?timeStamp=`: what a page
//! shows before a thumbnail loads (BlurHash, ThumbHash, a tiny WebP as a
//! data URI, and the frame's size and time), for the frame the thumbnail
//! at that moment shows. The moment is read as thumbnails read it, a
//! thumbnail token opens it, and it is cached and answered with a
//! thumbnail's headers; the placeholders come from [`crate::render`].

use http::{HeaderMap, HeaderName, HeaderValue, Response};

use super::access::AccessControl;
use super::app::App;
use super::responses::{picture_response, render_problem, Body};
use crate::domain::{FieldError, Format, Problem};
use crate::request::{self, ParsedRequest};

/// `X-Thumbnail-Time`: the time of the frame the placeholders show.
const X_THUMBNAIL_TIME: HeaderName = HeaderName::from_static("x-thumbnail-time");

/// The query parameters a placeholder takes; the rest (a thumbnail's
/// `width`, `fit`, ...) do not change the frame and are ignored.
const PARAMS: [&str; 3] = ["timeStamp", "time", "token"];

/// A frame's placeholders as JSON (or `304 Not Modified`).
pub(super) async fn placeholder(
    app: &App,
    tail: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, Problem> {
    let parsed = parse(tail, query).map_err(Problem::invalid_request)?;
    // Access is settled before the cache is consulted: a cached private
    // picture is never served without a valid token.
    let access = app.env_access(&parsed.org, &parsed.env);
    let (req, expires_at) =
        app.access
            .settle(access, parsed, headers, AccessControl::signed_frame)?;
    let (served, cache) = app
        .renderer
        .placeholder(&req)
        .await
        .map_err(|e| render_problem(&e, &req.org, &req.env, &req.key))?;
    let cache_control = app.cache.until(expires_at);
    let mut response = picture_response(
        served.json.clone(),
        "application/json",
        &served.etag,
        cache,
        cache_control,
        headers,
        head,
    );
    response.headers_mut().insert(
        X_THUMBNAIL_TIME,
        HeaderValue::from_str(&served.time_text).expect("digits"),
    );
    Ok(response)
}

/// Parses `{org}/{env}/{key}.json` and the query as a thumbnail's path and
/// query: the same key rules, the same `timeStamp` (and `token`).
fn parse(tail: &str, query: Option<&str>) -> Result<ParsedRequest, Vec<FieldError>> {
    let stem = tail
        .len()
        .checked_sub(".json".len())
        .filter(|&at| tail.is_char_boundary(at) && tail[at..].eq_ignore_ascii_case(".json"))
        .map(|at| &tail[..at]);
    let Some(stem) = stem else {
        let ext = tail.rsplit_once('.').map_or("", |(_, ext)| ext);
        return Err(vec![FieldError::new(
            "path.format",
            ext,
            "the path must end in .json",
        )]);
    };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if PARAMS.contains(&name.as_ref()) {
            kept.append_pair(&name, &value);
        }
    }
    // The format stands in for the thumbnail's; the placeholder has none.
    let mut parsed = request::parse(&format!("{stem}.webp"), Some(&kept.finish()))?;
    parsed.format = Format::Webp;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TimeSpec;

    #[test]
    fn parses_the_thumbnail_way() {
        let p = parse("demo/local/clips/a.mp4.json", Some("timeStamp=2.5&width=x")).unwrap();
        assert_eq!(
            (p.org.as_str(), p.env.as_str(), p.key.as_str()),
            ("demo", "local", "clips/a.mp4")
        );
        assert_eq!(p.params.time, Some(TimeSpec::At(2_500_000)));
        assert_eq!(p.params.width, None, "a thumbnail's size is ignored");
        let p = parse("o/e/a.mp4.JSON", Some("time=auto&token=t")).unwrap();
        assert_eq!(p.params.time, Some(TimeSpec::Auto));
        assert_eq!(p.token.as_deref(), Some("t"));
        assert_eq!(parse("o/e/a.mp4.json", None).unwrap().params.time, None);
    }

    #[test]
    fn refuses_what_thumbnails_refuse() {
        let location =
            |tail: &str, query: &str| parse(tail, Some(query)).unwrap_err()[0].location.clone();
        assert_eq!(location("o/e/a.mp4.webp", ""), "path.format");
        assert_eq!(location("o/e/a.mp4", ""), "path.format");
        assert_eq!(location("o/e/json", ""), "path.format");
        assert_eq!(location("o/e/.json", ""), "path.key");
        assert_eq!(location("o/e/../a.json", ""), "path.key");
        assert_eq!(location("o//a.json", ""), "path.env");
        assert_eq!(location("o/e/a.json", "timeStamp=-1"), "query.timeStamp");
        assert_eq!(
            location("o/e/a.json", "time=1&timeStamp=2"),
            "query.timeStamp"
        );
    }
}
