//! `GET /debug/pprof/heap` on the metrics listener: the sampled heap as pprof, or
//! `?format=svg` as a flame graph; without the `profiling` feature, how to get it.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};

#[cfg(not(feature = "profiling"))]
use super::NOT_BUILT;
use crate::plain_text::plain_text;

/// The path `go tool pprof` asks a Go service for its heap profile.
const HEAP_PATH: &str = "/debug/pprof/heap";

/// How long a request may wait for its turn and its dump together. Symbolizing a first dump
/// reads the binary's debug info, which takes seconds on a busy machine.
#[cfg(feature = "profiling")]
const DUMP_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// Answers `/debug/pprof/heap` for an allowed client; `None` for every other path.
pub(crate) async fn route<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if request.uri().path() != HEAP_PATH {
        return None;
    }
    if request.method() != Method::GET {
        let mut response = plain_text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET"));
        return Some(response);
    }
    let query = request.uri().query().unwrap_or("");
    let svg = match query
        .split('&')
        .find_map(|pair| pair.strip_prefix("format="))
    {
        None | Some("pprof") => false,
        Some("svg") => true,
        Some(other) => {
            return Some(plain_text(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown format `{other}`: ask for {HEAP_PATH} (pprof) or {HEAP_PATH}?format=svg (flame graph)\n"
                ),
            ));
        }
    };
    Some(heap(svg).await)
}

#[cfg(feature = "profiling")]
async fn heap(svg: bool) -> Response<Full<Bytes>> {
    use heapscape_heartbeat::HeartbeatError;
    use heapscape_heartbeat::profile::{self, ProfileFormat};

    let (format, content_type) = if svg {
        (ProfileFormat::FlameGraph, "image/svg+xml")
    } else {
        (ProfileFormat::Pprof, "application/octet-stream")
    };
    match profile::dump(format, DUMP_BUDGET).await {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            if !svg {
                response.headers_mut().insert(
                    hyper::header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"heap.pb.gz\""),
                );
            }
            response
        }
        Err(error) => {
            let status = match error {
                HeartbeatError::SamplingOff => StatusCode::CONFLICT,
                HeartbeatError::ProfilerNotEnabled | HeartbeatError::ProfileBusy { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            plain_text(status, format!("{error}\n"))
        }
    }
}

#[cfg(not(feature = "profiling"))]
async fn heap(_svg: bool) -> Response<Full<Bytes>> {
    plain_text(StatusCode::NOT_IMPLEMENTED, format!("{NOT_BUILT}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).expect("request")
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.expect("body");
        String::from_utf8_lossy(&bytes.to_bytes()).into_owned()
    }

    #[tokio::test]
    async fn other_paths_are_left_to_the_listener() {
        for path in ["/metrics", "/debug/pprof/heapx", "/debug/pprof/profile"] {
            assert!(route(&get(path)).await.is_none(), "{path}");
        }
    }

    #[tokio::test]
    async fn unknown_formats_and_methods_are_refused() {
        let response = route(&get("/debug/pprof/heap?format=png"))
            .await
            .expect("routed");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(body(response).await.contains("format=svg"));
        let post = Request::post(HEAP_PATH).body(()).expect("request");
        let response = route(&post).await.expect("routed");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[cfg(not(feature = "profiling"))]
    #[tokio::test]
    async fn without_the_feature_the_profile_is_refused_with_the_fix() {
        for uri in [HEAP_PATH, "/debug/pprof/heap?format=svg"] {
            let response = route(&get(uri)).await.expect("routed");
            assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
            assert!(body(response).await.contains("`profiling` feature"));
        }
    }
}
