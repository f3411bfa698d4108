//! What a request asks for: its path parsed into an [`Endpoint`] (with the
//! methods it answers to), and the [`Route`] its metrics count it under.
//! Pure: no state, no I/O, no handler.

use http::Method;

/// What a request asks for. The arguments are the path's, unchecked:
/// handlers parse them further.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Endpoint<'a> {
    /// `/v1/thumbnail/{org}/{env}/{key}.{ext}`: the raw tail after the prefix.
    Thumbnail(&'a str),
    /// `/v1/storyboard/{org}/{env}/{key}.{ext}`: the raw tail.
    Storyboard(&'a str),
    /// `/v1/animated/{org}/{env}/{key}.{ext}`: the raw tail.
    Animated(&'a str),
    /// `/v1/placeholder/{org}/{env}/{key}.json`: the raw tail.
    Placeholder(&'a str),
    /// `/v1/info/{org}/{env}/{key}.json`: the raw tail.
    Info(&'a str),
    /// `POST /v1/api/{org}/{env}/edge-ids/{key}/preview-token`
    PreviewToken {
        org: &'a str,
        env: &'a str,
        key: &'a str,
    },
    /// `POST /v1/api/{org}/edge-ids/{key}/thumbnails`: a job.
    SubmitJob {
        org: &'a str,
        key: &'a str,
    },
    /// `GET /v1/api/{org}/edge-ids/{key}/thumbnail`: the best thumbnail so far.
    BestThumbnail {
        org: &'a str,
        key: &'a str,
    },
    /// `POST /v1/api/{org}/thumbnails/batch`
    Batch {
        org: &'a str,
    },
    /// `GET /v1/api/{org}/thumbnails/{jobId}`
    Job {
        org: &'a str,
        id: &'a str,
    },
    /// `POST /v1/api/{org}/uploads`: a multipart upload (its body is streamed).
    Upload {
        org: &'a str,
    },
    /// `/v1/video/thumbnail`: the video-URL API.
    VideoUrl,
    /// `/v1/video/thumbnail/{job_id}`: a video-URL job's result.
    VideoUrlStatus(&'a str),
    /// `/v2/thumbnail`: the conversion-task API.
    Task,
    /// `/v2/tasks/{id}`: a task.
    TaskStatus(&'a str),
    /// `/healthz`: liveness (the process answers).
    Health,
    /// `/readyz`: readiness (serving, not shutting down).
    Ready,
    /// `/metrics`: Prometheus exposition.
    Metrics,
    /// `/openapi.json`: the API description.
    OpenApi,
    /// `/`: the demo page.
    Demo,
    Unknown,
}

/// The methods an endpoint answers to; any other is 405 with `Allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Methods {
    GetHead,
    Get,
    Post,
}

impl Methods {
    pub(super) fn allows(self, method: &Method) -> bool {
        match self {
            Methods::GetHead => matches!(*method, Method::GET | Method::HEAD),
            Methods::Get => *method == Method::GET,
            Methods::Post => *method == Method::POST,
        }
    }

    /// The `Allow` header of a 405.
    pub(super) fn allow(self) -> &'static str {
        match self {
            Methods::GetHead => "GET, HEAD",
            Methods::Get => "GET",
            Methods::Post => "POST",
        }
    }
}

const THUMBNAIL_PREFIX: &str = "/v1/thumbnail/";
const API_PREFIX: &str = "/v1/api/";

impl<'a> Endpoint<'a> {
    /// The endpoint of a request's path.
    pub(super) fn parse(path: &'a str) -> Endpoint<'a> {
        if let Some(tail) = path.strip_prefix(THUMBNAIL_PREFIX) {
            Endpoint::Thumbnail(tail)
        } else if let Some(tail) = path.strip_prefix("/v1/storyboard/") {
            Endpoint::Storyboard(tail)
        } else if let Some(tail) = path.strip_prefix("/v1/animated/") {
            Endpoint::Animated(tail)
        } else if let Some(tail) = path.strip_prefix("/v1/placeholder/") {
            Endpoint::Placeholder(tail)
        } else if let Some(tail) = path.strip_prefix("/v1/info/") {
            Endpoint::Info(tail)
        } else if let Some(call) = path.strip_prefix(API_PREFIX).and_then(api_call) {
            call
        } else if let Some(id) = path
            .strip_prefix("/v1/video/thumbnail/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
        {
            Endpoint::VideoUrlStatus(id)
        } else if let Some(id) = path
            .strip_prefix("/v2/tasks/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
        {
            Endpoint::TaskStatus(id)
        } else {
            match path {
                "/v1/video/thumbnail" => Endpoint::VideoUrl,
                "/v2/thumbnail" => Endpoint::Task,
                "/healthz" => Endpoint::Health,
                "/readyz" => Endpoint::Ready,
                "/metrics" => Endpoint::Metrics,
                "/openapi.json" => Endpoint::OpenApi,
                "/" => Endpoint::Demo,
                _ => Endpoint::Unknown,
            }
        }
    }

    /// The methods the endpoint answers to (an unknown path too: 405 before
    /// 404 for what no path answers).
    pub(super) fn methods(&self) -> Methods {
        match self {
            Endpoint::PreviewToken { .. }
            | Endpoint::SubmitJob { .. }
            | Endpoint::Batch { .. }
            | Endpoint::Upload { .. }
            | Endpoint::VideoUrl
            | Endpoint::Task => Methods::Post,
            Endpoint::BestThumbnail { .. }
            | Endpoint::Job { .. }
            | Endpoint::VideoUrlStatus(_)
            | Endpoint::TaskStatus(_) => Methods::Get,
            Endpoint::Thumbnail(_)
            | Endpoint::Storyboard(_)
            | Endpoint::Animated(_)
            | Endpoint::Placeholder(_)
            | Endpoint::Info(_)
            | Endpoint::Health
            | Endpoint::Ready
            | Endpoint::Metrics
            | Endpoint::OpenApi
            | Endpoint::Demo
            | Endpoint::Unknown => Methods::GetHead,
        }
    }

    /// The endpoint without its arguments, as metrics count it.
    pub(super) fn route(&self) -> Route {
        match self {
            Endpoint::Thumbnail(_) => Route::Thumbnail,
            Endpoint::Storyboard(_) => Route::Storyboard,
            Endpoint::Animated(_) => Route::Animated,
            Endpoint::Placeholder(_) => Route::Placeholder,
            Endpoint::Info(_) => Route::Info,
            Endpoint::PreviewToken { .. }
            | Endpoint::SubmitJob { .. }
            | Endpoint::BestThumbnail { .. }
            | Endpoint::Batch { .. }
            | Endpoint::Job { .. }
            | Endpoint::Upload { .. }
            | Endpoint::VideoUrl
            | Endpoint::VideoUrlStatus(_)
            | Endpoint::Task
            | Endpoint::TaskStatus(_) => Route::Api,
            Endpoint::Health => Route::Health,
            Endpoint::Ready => Route::Ready,
            Endpoint::Metrics => Route::Metrics,
            Endpoint::OpenApi => Route::OpenApi,
            Endpoint::Demo => Route::Demo,
            Endpoint::Unknown => Route::Unknown,
        }
    }
}

/// Parses the path after `/v1/api/`; `None` for no such endpoint.
fn api_call(tail: &str) -> Option<Endpoint<'_>> {
    let (org, rest) = tail.split_once('/')?;
    if rest == "uploads" {
        return Some(Endpoint::Upload { org });
    }
    if let Some(inner) = rest.strip_suffix("/preview-token") {
        let (env, rest) = inner.split_once('/')?;
        let key = rest.strip_prefix("edge-ids/")?;
        return Some(Endpoint::PreviewToken { org, env, key });
    }
    if let Some(inner) = rest.strip_prefix("edge-ids/") {
        if let Some(key) = inner.strip_suffix("/thumbnails") {
            return Some(Endpoint::SubmitJob { org, key });
        }
        if let Some(key) = inner.strip_suffix("/thumbnail") {
            return Some(Endpoint::BestThumbnail { org, key });
        }
        return None;
    }
    match rest.strip_prefix("thumbnails/")? {
        "batch" => Some(Endpoint::Batch { org }),
        id if !id.is_empty() && !id.contains('/') => Some(Endpoint::Job { org, id }),
        _ => None,
    }
}

/// An endpoint without its arguments: the `route` label of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Thumbnail,
    Storyboard,
    Animated,
    Placeholder,
    Info,
    Api,
    Health,
    Ready,
    Metrics,
    OpenApi,
    Demo,
    Unknown,
}

impl Route {
    pub(super) const ALL: [Route; 12] = [
        Route::Thumbnail,
        Route::Storyboard,
        Route::Animated,
        Route::Placeholder,
        Route::Info,
        Route::Api,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::OpenApi,
        Route::Demo,
        Route::Unknown,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Route::Thumbnail => "thumbnail",
            Route::Storyboard => "storyboard",
            Route::Placeholder => "placeholder",
            Route::Info => "info",
            Route::Animated => "animated",
            Route::Api => "api",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Demo => "demo",
            Route::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Endpoint<'_> {
        Endpoint::parse(path)
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("/v1/thumbnail/a/b/c.webp"),
            Endpoint::Thumbnail("a/b/c.webp")
        );
        assert_eq!(route("/healthz"), Endpoint::Health);
        assert_eq!(route("/readyz"), Endpoint::Ready);
        assert_eq!(route("/metrics"), Endpoint::Metrics);
        assert_eq!(route("/openapi.json"), Endpoint::OpenApi);
        assert_eq!(route("/"), Endpoint::Demo);
        assert_eq!(
            route("/v1/api/o/thumbnails/batch"),
            Endpoint::Batch { org: "o" }
        );
        assert_eq!(route("/v1/api/o/nothing"), Endpoint::Unknown);
        assert_eq!(route("/v1/thumbnails/a"), Endpoint::Unknown);
    }

    #[test]
    fn api_paths() {
        let api = api_call;
        assert_eq!(
            api("acme/prod/edge-ids/a/b.mp4/preview-token"),
            Some(Endpoint::PreviewToken {
                org: "acme",
                env: "prod",
                key: "a/b.mp4"
            })
        );
        assert_eq!(
            api("acme/edge-ids/a/b.mp4/thumbnails"),
            Some(Endpoint::SubmitJob {
                org: "acme",
                key: "a/b.mp4"
            })
        );
        assert_eq!(
            api("acme/edge-ids/a.mp4/thumbnail"),
            Some(Endpoint::BestThumbnail {
                org: "acme",
                key: "a.mp4"
            })
        );
        assert_eq!(
            api("acme/thumbnails/batch"),
            Some(Endpoint::Batch { org: "acme" })
        );
        assert_eq!(
            api("acme/thumbnails/thumb_job_1"),
            Some(Endpoint::Job {
                org: "acme",
                id: "thumb_job_1"
            })
        );
        assert_eq!(api("acme/uploads"), Some(Endpoint::Upload { org: "acme" }));
        for bad in [
            "acme",
            "acme/",
            "acme/edge-ids/a.mp4",
            "acme/thumbnails/",
            "acme/other/x",
        ] {
            assert_eq!(api(bad), None, "{bad}");
        }
    }

    #[test]
    fn methods() {
        let allows = |path: &str, method: Method| route(path).methods().allows(&method);
        assert!(allows("/v1/thumbnail/a/b/c.webp", Method::HEAD));
        assert!(!allows("/v1/thumbnail/a/b/c.webp", Method::POST));
        assert!(allows("/v1/api/o/uploads", Method::POST));
        assert!(!allows("/v1/api/o/thumbnails/j1", Method::HEAD));
        assert!(!allows("/v2/tasks/t1", Method::HEAD));
        assert!(!allows("/nope", Method::DELETE), "405 before 404");
        assert_eq!(route("/v1/api/o/thumbnails/j1").methods().allow(), "GET");
    }

    #[test]
    fn route_metrics_are_indexed_by_route() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        assert_eq!(route("/v1/thumbnail/a/b/c.webp").route(), Route::Thumbnail);
        assert_eq!(route("/v2/tasks/t1").route(), Route::Api);
        assert_eq!(route("/nope").route(), Route::Unknown);
    }
}
