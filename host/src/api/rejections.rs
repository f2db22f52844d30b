//! The answers the framework gives on its own — a method a route does not take (405), an
//! extractor's rejection (a path or query string it cannot read), a body over the limit
//! (413) or not in time (408) — in Cinder's error body, as the handlers' own errors are.
//! A handler that panics answers 500 (`computeFault`) rather than dropping the connection.
//! One layer for all of them, inside `request_id`, so they carry the request id too.
//!
//! Unknown routes are the router's fallback (`not_found`), already Cinder's.

use axum::extract::Request;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::http::{BodyFailure, BodyWatch};

/// A framework rejection's text is short; more is not worth reading.
const MAX_REJECTION_TEXT: usize = 4096;

pub async fn cinder_shaped(req: Request, next: Next) -> Response {
    let watch = req.extensions().get::<BodyWatch>().cloned();
    if let Some(watch) = &watch
        && content_length(req.headers()).is_some_and(|n| n > watch.max_size)
    {
        // Refused before the handler, which may not read its body at all.
        return closing(too_large(watch).into_response());
    }
    let method = req.method().clone();
    let Some(resp) = CatchPanic(Box::pin(next.run(req))).await else {
        // The panic itself is on stderr through the panic hook.
        tracing::error!("a handler panicked");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server has either erred or is incapable of performing the requested operation.",
        )
        .into_response();
    };
    // A broken body is the client's error whatever the handler made of it.
    match watch.as_ref().and_then(|w| Some((w, w.failure()?))) {
        Some((watch, BodyFailure::TooLarge)) => return closing(too_large(watch).into_response()),
        Some((watch, BodyFailure::TimedOut)) => return closing(timed_out(watch).into_response()),
        None => {}
    }
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    reshape(resp, &method).await
}

/// A framework answer (plain text, or no body) rewritten as Cinder's error body; its
/// other headers (`Allow` on a 405) are kept.
async fn reshape(resp: Response, method: &Method) -> Response {
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let status = match parts.status {
        // Cinder answers a body it cannot take with 400; it never says 422.
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(|a| format!(" Allowed: {a}."))
            .unwrap_or_default();
        format!("The method {method} is not allowed for this resource.{allowed}")
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    let (fresh, body) = ApiError::new(status, message).into_response().into_parts();
    parts.status = fresh.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(fresh.headers);
    Response::from_parts(parts, body)
}

/// An answer given before the request's body was read in full: the connection cannot
/// carry another request, and says so, or a client would send its next one on a
/// connection the server is closing.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

fn too_large(watch: &BodyWatch) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Request is too large: its body is larger than max_request_body_size ({} bytes).",
            watch.max_size
        ),
    )
}

fn timed_out(watch: &BodyWatch) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "The request body was not received in full within {} s (body_read_timeout_secs).",
            watch.read_timeout.as_secs()
        ),
    )
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"))
}

/// A future that completes with `None` if it panics.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Some(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::{Path, Query};
    use axum::http::Request;
    use axum::middleware::from_fn;
    use axum::routing::get;
    use serde_json::Value;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Limit {
        #[allow(dead_code)]
        limit: u32,
    }

    #[derive(serde::Deserialize)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    async fn handler_bug() -> &'static str {
        panic!("a handler bug")
    }

    fn app() -> Router {
        Router::new()
            .route("/only-get", get(|| async { "ok" }))
            .route("/path/{n}", get(|Path(_n): Path<u32>| async { "ok" }))
            .route("/query", get(|Query(_q): Query<Limit>| async { "ok" }))
            .route(
                "/json",
                axum::routing::post(|axum::Json(_b): axum::Json<Named>| async { "ok" }),
            )
            .route("/panic", get(handler_bug))
            .layer(from_fn(cinder_shaped))
    }

    async fn call(
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let resp = tower_service::Service::call(&mut app(), req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {uri}: not JSON ({e}): {bytes:?}"));
        (parts.status, parts.headers, json)
    }

    /// The one error kind of a Cinder error body, with its code and message.
    fn fault(body: &Value) -> (&str, u64, &str) {
        let (kind, inner) = body.as_object().unwrap().iter().next().unwrap();
        (
            kind,
            inner["code"].as_u64().unwrap(),
            inner["message"].as_str().unwrap(),
        )
    }

    #[tokio::test]
    async fn method_not_allowed_keeps_allow_and_names_the_method() {
        let (status, headers, body) = call("DELETE", "/only-get", None, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (kind, code, message) = fault(&body);
        assert_eq!((kind, code), ("badMethod", 405));
        assert!(message.contains("DELETE"), "{message}");
        assert!(headers[header::ALLOW].to_str().unwrap().contains("GET"));
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn extractor_rejections_keep_their_status_and_say_why() {
        let (status, _, body) = call("GET", "/path/abc", None, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (kind, _, message) = fault(&body);
        assert_eq!(kind, "badRequest");
        assert!(message.contains("abc"), "{message}");

        let (status, _, body) = call("GET", "/query?limit=many", None, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(fault(&body).2.contains("query string"), "{body}");

        let (status, _, body) = call("POST", "/json", None, "{}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(fault(&body).0, "badMediaType");

        // axum says 422 for a body of the wrong shape; Cinder says 400.
        let (status, _, body) = call("POST", "/json", Some("application/json"), "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (kind, code, message) = fault(&body);
        assert_eq!((kind, code), ("badRequest", 400));
        assert!(message.contains("name"), "{message}");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        let (status, _, body) = call("GET", "/panic", None, "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(fault(&body).0, "computeFault");
    }
}
