//! The Block Storage API v3, in Cinder's wire format: version documents, microversions,
//! noauth tokens, Cinder's error bodies and `x-openstack-request-id` on every response.
//!
//! Routing is two steps: [`strip_project`] turns `/v3/{project_id}/…` into `/v3/…`
//! (checking the project against the token), then the router matches the resource.

mod admin;
mod attachments;
mod list;
mod messages;
mod pools;
mod rejections;
mod snapshots;
mod types;
mod versions;
mod view_cache;
pub use view_cache::ViewCache;
mod views;
mod visible;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::db::Db;
use crate::volume::VolumeManager;
use crate::worker::Workers;

/// The microversions served: `OpenStack-API-Version: volume 3.N`.
pub const MIN_VERSION: Microversion = Microversion(3, 0);
pub const MAX_VERSION: Microversion = Microversion(3, 67);

/// Path segments that name a resource; anything else right after `/v3/` is a project id.
const RESOURCES: &[&str] = &[
    "volumes",
    "snapshots",
    "types",
    "scheduler-stats",
    "messages",
    "attachments",
    "os-availability-zone",
    "limits",
];

pub struct AppState {
    pub db: Db,
    pub manager: Arc<VolumeManager>,
    pub plugins: Arc<crate::plugins::PluginManager>,
    pub workers: Arc<Workers>,
    pub default_availability_zone: String,
    /// Volume views rendered at their revision, for lists.
    pub volume_views: view_cache::ViewCache<views::VolumeViewKey>,
}

pub type State = axum::extract::State<Arc<AppState>>;

/// The whole API as one service.
pub fn router(state: Arc<AppState>) -> Router {
    let v3 = Router::new()
        .route("/", get(versions::root))
        .route("/v3", get(versions::v3))
        .route("/v3/", get(versions::v3))
        .merge(volumes::routes())
        .merge(attachments::routes())
        .merge(snapshots::routes())
        .merge(types::routes())
        .merge(pools::routes())
        .merge(messages::routes())
        .merge(admin::routes())
        .fallback(not_found)
        .with_state(state);
    Router::new()
        .fallback_service(v3)
        .layer(middleware::from_fn(strip_project))
        .layer(middleware::from_fn(rejections::cinder_shaped))
        .layer(middleware::from_fn(request_id))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "The resource could not be found: {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Every response carries `x-openstack-request-id`.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = RequestId(format!("req-{}", uuid::Uuid::new_v4()));
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id.0);
    let mut resp = tracing::Instrument::instrument(next.run(req), span).await;
    tracing::debug!(request_id = %id.0, %method, %path, status = resp.status().as_u16(), "handled");
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The project id a URL named, if it named one.
#[derive(Clone, Debug)]
struct UrlProject(String);

async fn strip_project(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v3/") {
        let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if !first.is_empty() && !RESOURCES.contains(&first) {
            let new_path = format!("/v3/{tail}");
            let new_uri = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            if let Ok(uri) = new_uri.parse() {
                *req.uri_mut() = uri;
                req.extensions_mut().insert(UrlProject(first.to_string()));
            }
        }
    }
    next.run(req).await
}

/// A requested microversion, `3.N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion(pub u32, pub u32);

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl Microversion {
    pub fn at_least(self, minor: u32) -> bool {
        self >= Microversion(3, minor)
    }

    /// Reads `OpenStack-API-Version: volume 3.N` (or `latest`); absent means 3.0.
    fn from_headers(headers: &HeaderMap) -> Result<Microversion, ApiError> {
        let Some(raw) = headers
            .get("openstack-api-version")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(MIN_VERSION);
        };
        let Some(value) = raw
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("volume ").map(str::trim))
        else {
            return Ok(MIN_VERSION);
        };
        if value.eq_ignore_ascii_case("latest") {
            return Ok(MAX_VERSION);
        }
        let parsed = value
            .split_once('.')
            .and_then(|(a, b)| Some(Microversion(a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| ApiError::bad_request(format!("API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum.")))?;
        if parsed < MIN_VERSION || parsed > MAX_VERSION {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {parsed} is not supported by the API. Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}."
                ),
            ));
        }
        Ok(parsed)
    }
}

/// Who is asking, from Cinder's noauth token `user:project`, and at which microversion.
/// A user named `admin` is an administrator.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub user_id: String,
    pub project_id: String,
    pub is_admin: bool,
    pub version: Microversion,
    pub request_id: String,
    /// `http://host:port`, for links.
    pub base: String,
}

impl Ctx {
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Policy doesn't allow {action} to be performed."),
            ))
        }
    }

    /// `{base}/v3/{project}/{path}`.
    pub fn link(&self, path: &str) -> String {
        format!("{}/v3/{}/{path}", self.base, self.project_id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let version = Microversion::from_headers(&parts.headers)?;
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Authentication required: send an X-Auth-Token header (noauth: `user:project`)"
                        .to_string(),
                )
            })?;
        let (user_id, project_id) = match token.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => (u.to_string(), p.to_string()),
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "X-Auth-Token must be `user:project`".to_string(),
                ));
            }
            None => (token.to_string(), token.to_string()),
        };
        if let Some(UrlProject(url_project)) = parts.extensions.get::<UrlProject>()
            && *url_project != project_id
        {
            return Err(ApiError::bad_request(format!(
                "Malformed request URL: URL's project_id '{url_project}' doesn't match Context's project_id '{project_id}'"
            )));
        }
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let host = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        Ok(Ctx {
            is_admin: user_id == "admin",
            user_id,
            project_id,
            version,
            request_id,
            base: format!("http://{host}"),
        })
    }
}

/// An API error in Cinder's body shape: `{"badRequest": {"code": 400, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// `Invalid input for field/attribute {field}. Value: {value}. {why}` as Cinder words it.
    pub fn invalid_field(field: &str, value: &Value, why: impl std::fmt::Display) -> Self {
        let shown = match value {
            Value::String(s) => s.clone(),
            Value::Null => "None".into(),
            other => other.to_string(),
        };
        Self::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {shown}. {why}"
        ))
    }
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            406 => "notAcceptable",
            409 => "conflictingRequest",
            413 => "overLimit",
            415 => "badMediaType",
            429 => "overLimit",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ self.kind(): { "code": self.status.as_u16(), "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Conflict(m) => ApiError::conflict(m),
            other => {
                tracing::error!("database error: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server has either erred or is incapable of performing the requested operation.",
                )
            }
        }
    }
}

impl From<crate::db::ListError> for ApiError {
    fn from(e: crate::db::ListError) -> Self {
        match e {
            crate::db::ListError::Invalid(m) => ApiError::bad_request(m),
            e @ crate::db::ListError::MarkerNotFound(_) => ApiError::not_found(e.to_string()),
            crate::db::ListError::Db(e) => e.into(),
        }
    }
}

impl From<crate::volume::Refused> for ApiError {
    fn from(e: crate::volume::Refused) -> Self {
        match e {
            crate::volume::Refused::Invalid(m) => ApiError::bad_request(m),
            crate::volume::Refused::Db(e) => e.into(),
        }
    }
}

/// A JSON response that also says which microversion answered.
/// A `Value::Null` body means no body at all (as Cinder's 202 for deletes and actions).
pub fn reply(ctx: &Ctx, status: StatusCode, body: Value) -> Response {
    if body.is_null() {
        return versioned(ctx, status.into_response());
    }
    reply_with(ctx, status, &body)
}

/// Says which microversion answered.
fn versioned(ctx: &Ctx, mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("volume {}", ctx.version)) {
        resp.headers_mut().insert("openstack-api-version", v);
    }
    resp.headers_mut()
        .insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    resp
}

/// [`reply`] for a body that serialises itself (a large list), with no JSON tree between.
pub fn reply_with<T: serde::Serialize>(ctx: &Ctx, status: StatusCode, body: &T) -> Response {
    reply_sized(ctx, status, body, 256)
}

/// [`reply_with`] into a buffer of about `size` bytes, so a large body is not copied as it
/// grows.
pub fn reply_sized<T: serde::Serialize>(
    ctx: &Ctx,
    status: StatusCode,
    body: &T,
    size: usize,
) -> Response {
    let mut buf = Vec::with_capacity(size);
    if let Err(e) = serde_json::to_writer(&mut buf, body) {
        tracing::error!("cannot serialise a response: {e}");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server has either erred or is incapable of performing the requested operation.",
        )
        .into_response();
    }
    reply_json_bytes(ctx, status, buf)
}

/// A response whose body is JSON text already written.
pub fn reply_json_bytes(ctx: &Ctx, status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    versioned(ctx, resp)
}

/// Parses a request body as a JSON object, with Cinder's messages for what is wrong.
pub fn parse_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; send a JSON object.",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "Malformed request body: {e}"
        ))),
    }
}

/// The object under `key` in a body, as Cinder requires (`{"volume": {…}}`).
pub fn body_element(body: &Bytes, key: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut map = parse_body(body)?;
    match map.remove(key) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(other) => Err(ApiError::invalid_field(
            key,
            &other,
            format!("{other} is not of type 'object'"),
        )),
        None => Err(ApiError::bad_request(format!(
            "Missing required element '{key}' in request body."
        ))),
    }
}

/// An optional string field of at most 255 characters.
pub fn opt_string(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(Some(s.clone())),
        Some(v @ Value::String(_)) => Err(ApiError::invalid_field(
            field,
            v,
            "It is longer than 255 characters.",
        )),
        Some(v) => Err(ApiError::invalid_field(
            field,
            v,
            format!("{v} is not of type 'string'"),
        )),
    }
}

/// `name` and `description`, or their v1 spellings `display_name` and
/// `display_description`, which Cinder still accepts.
pub fn name_and_description(
    obj: &serde_json::Map<String, Value>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let name = match opt_string(obj, "name")? {
        Some(n) => Some(n),
        None => opt_string(obj, "display_name")?,
    };
    let description = match opt_string(obj, "description")? {
        Some(d) => Some(d),
        None => opt_string(obj, "display_description")?,
    };
    Ok((name, description))
}

/// A `{"key": "value"}` map of strings (metadata, extra specs).
pub fn string_map(field: &str, v: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let Value::Object(map) = v else {
        return Err(ApiError::invalid_field(
            field,
            v,
            format!("{v} is not of type 'object'"),
        ));
    };
    map.iter()
        .map(|(k, val)| {
            if k.is_empty() || k.chars().count() > 255 {
                return Err(ApiError::invalid_field(
                    field,
                    v,
                    format!("key `{k}` must be 1 to 255 characters"),
                ));
            }
            match val {
                Value::String(s) if s.chars().count() <= 255 => Ok((k.clone(), s.clone())),
                Value::String(_) => Err(ApiError::invalid_field(
                    field,
                    val,
                    format!("the value of `{k}` is longer than 255 characters"),
                )),
                other => Err(ApiError::invalid_field(
                    field,
                    other,
                    format!("the value of `{k}` must be a string"),
                )),
            }
        })
        .collect()
}

/// Cinder's boolean parsing for query strings and bodies.
pub fn parse_bool(field: &str, v: &Value) -> Result<bool, ApiError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => crate::db::list::parse_bool(s)
            .ok_or_else(|| ApiError::invalid_field(field, v, "It must be a boolean.")),
        other => Err(ApiError::invalid_field(
            field,
            other,
            format!("{other} is not of type 'boolean'"),
        )),
    }
}
