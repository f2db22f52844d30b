//! Unauthenticated version documents: `GET /`, `/v3`, `/v3/`.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{MAX_VERSION, MIN_VERSION};

fn v3_doc(headers: &HeaderMap) -> Value {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    json!({
        "id": "v3.0",
        "status": "CURRENT",
        "version": MAX_VERSION.to_string(),
        "min_version": MIN_VERSION.to_string(),
        "updated": "2026-11-01T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("http://{host}/v3/")},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    })
}

/// `GET /`: Cinder answers 300 Multiple Choices with every version.
#[utoipa::path(get, path = "/", tag = super::openapi::VERSIONS,
    responses((status = 300, description = "Every version.", body = super::openapi::Versions)))]
pub async fn root(headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({ "versions": [v3_doc(&headers)] })),
    )
        .into_response()
}

/// `GET /v3`.
#[utoipa::path(get, path = "/v3", tag = super::openapi::VERSIONS,
    responses((status = 200, description = "Version 3.", body = super::openapi::Versions)))]
pub async fn v3(headers: HeaderMap) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "versions": [v3_doc(&headers)] })),
    )
        .into_response()
}

/// `GET /v3/`, the same.
#[utoipa::path(get, path = "/v3/", tag = super::openapi::VERSIONS,
    responses((status = 200, description = "Version 3.", body = super::openapi::Versions)))]
pub async fn v3_slash(headers: HeaderMap) -> Response {
    v3(headers).await
}
