//! The Block Storage API v3, in Cinder's wire format: version documents, microversions,
//! authentication ([`crate::auth`]), Cinder's default policy ([`policy`]), Cinder's error
//! bodies and `x-openstack-request-id` on every response.
//!
//! Routing is two steps: [`strip_project`] turns `/v3/{project_id}/…` into `/v3/…`
//! (checking the project against the token), then the router matches the resource; the
//! policy layer then authenticates the caller and checks the route's rule before any
//! handler runs.

mod admin;
mod attachments;
mod backups;
mod default_types;
mod images;
mod input;
pub use input::InputLimits;
mod list;
mod manage;
mod messages;
mod metadata;
mod moves;
mod openapi;
mod policy;
mod pools;
mod qos_specs;
mod quotas;
mod rejections;
mod services;
mod snapshots;
mod transfers;
mod types;
mod versions;
mod view_cache;
pub use view_cache::ViewCache;
mod views;
mod visible;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Refused, Role};
use crate::db::Db;
use crate::volume::VolumeManager;
use crate::worker::Workers;
use input::{Body, Text, parse_body};

/// The microversions served: `OpenStack-API-Version: volume 3.N`.
pub const MIN_VERSION: Microversion = Microversion(3, 0);
pub const MAX_VERSION: Microversion = Microversion(3, 71);

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
    "os-volume-transfer",
    "volume-transfers",
    "os-services",
    "capabilities",
    "default-types",
    "qos-specs",
    "os-quota-sets",
    "os-quota-class-sets",
    "backups",
    "manageable_volumes",
    "manageable_snapshots",
    "os-volume-manage",
];

pub struct AppState {
    pub db: Db,
    pub manager: Arc<VolumeManager>,
    pub plugins: Arc<crate::plugins::PluginManager>,
    pub workers: Arc<Workers>,
    pub default_availability_zone: String,
    /// Volume views rendered at their revision, for lists.
    pub volume_views: view_cache::ViewCache<views::VolumeViewKey>,
    /// What one request may carry (`[api]` settings).
    pub input_limits: InputLimits,
    /// A service whose last heartbeat is older is `down` (Cinder's `service_down_time`).
    pub service_down_time: std::time::Duration,
    /// Characters in a generated transfer key (`volume_transfer_key_length`).
    pub transfer_key_length: usize,
    /// Who a request is from (`[auth] strategy`).
    pub auth: crate::auth::Authenticator,
}

pub type State = axum::extract::State<Arc<AppState>>;

/// Every route of the Block Storage API, each from its handler's `#[utoipa::path]`, so the
/// router and `/openapi.json` are built from the same list.
fn documented() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(versions::root))
        .routes(routes!(versions::v3))
        .routes(routes!(versions::v3_slash))
        .routes(routes!(openapi::serve))
        .merge(volumes::routes())
        .merge(metadata::routes())
        .merge(attachments::routes())
        .merge(snapshots::routes())
        .merge(types::routes())
        .merge(default_types::routes())
        .merge(qos_specs::routes())
        .merge(pools::routes())
        .merge(messages::routes())
        .merge(transfers::routes())
        .merge(services::routes())
        .merge(quotas::routes())
        .merge(backups::routes())
        .merge(manage::routes())
}

/// Whether the policy table may refuse `method path` to an authenticated caller: a rule
/// above the reader's role, or an action route (by the action's name). For the document.
fn policy_may_refuse(method: &str, path: &str) -> bool {
    let Ok(method) = method.to_ascii_uppercase().parse() else {
        return false;
    };
    match policy::need(&method, path) {
        Some(policy::Need::Rule(_, role)) => role > Role::Reader,
        Some(policy::Need::Actions(_)) => true,
        Some(policy::Need::Public) | None => false,
    }
}

/// The whole API as one service.
pub fn router(state: Arc<AppState>) -> Router {
    let (documented, _) = documented().split_for_parts();
    let v3 = documented
        .merge(admin::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            policy::enforce,
        ))
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

    /// Reads `OpenStack-API-Version: volume 3.N` (or `latest`) as Cinder does with
    /// microversion_parse: the header may name several services (`volume 3.5, compute
    /// 2.1`); none for `volume` means 3.0. A version not of the form `MajorNum.MinorNum`
    /// is 400, one outside what is served 406, with Cinder's messages.
    fn from_headers(headers: &HeaderMap) -> Result<Microversion, ApiError> {
        let Some(raw) = headers.get("openstack-api-version") else {
            return Ok(MIN_VERSION);
        };
        let Ok(raw) = raw.to_str() else {
            return Err(ApiError::bad_request(
                "OpenStack-API-Version must be ASCII, e.g. `volume 3.71`.",
            ));
        };
        let Some(value) = raw.split(',').find_map(|part| {
            let mut words = part.split_whitespace();
            let service = words.next()?;
            service
                .eq_ignore_ascii_case("volume")
                .then(|| words.collect::<Vec<_>>().join(" "))
        }) else {
            return Ok(MIN_VERSION);
        };
        if value.eq_ignore_ascii_case("latest") {
            return Ok(MAX_VERSION);
        }
        // Cinder's APIVersionRequest: `^([1-9]\d*)\.([1-9]\d*|0)$`.
        let number = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'))
        };
        let Some((major, minor)) = value
            .split_once('.')
            .filter(|(a, b)| number(a) && *a != "0" && number(b))
        else {
            return Err(ApiError::bad_request(format!(
                "API Version String {} is of invalid format. Must be of format MajorNum.MinorNum.",
                value.escape_debug()
            )));
        };
        let not_served = || {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {value} is not supported by the API. Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}."
                ),
            )
        };
        // Well formed but too large for a number is simply not served.
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            return Err(not_served());
        };
        let parsed = Microversion(major, minor);
        if parsed < MIN_VERSION || parsed > MAX_VERSION {
            return Err(not_served());
        }
        Ok(parsed)
    }
}

/// Who is asking, with which role, and at which microversion. Put in each request by the
/// policy layer ([`policy::enforce`]) once the caller is authenticated and the route's
/// rule allows them; handlers take it from there.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub user_id: String,
    pub project_id: String,
    /// The strongest role held (`admin` implies `member`, which implies `reader`).
    pub role: Role,
    /// `role` is `admin`: sees every project's resources.
    pub is_admin: bool,
    pub version: Microversion,
    pub request_id: String,
    /// `http://host:port`, for links.
    pub base: String,
}

impl Ctx {
    /// For checks that depend on what is asked, beyond the route's own rule (another
    /// project's quotas, say): the route's rule is checked by the policy table.
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(policy::forbidden(action))
        }
    }

    /// `{base}/v3/{project}/{path}`.
    pub fn link(&self, path: &str) -> String {
        format!("{}/v3/{}/{path}", self.base, self.project_id)
    }

    /// The caller of a request: its token (401 when missing or not taken), the
    /// microversion it asks for, and the URL's project checked against the token's.
    async fn authenticate(state: &AppState, parts: &Parts) -> Result<Ctx, ApiError> {
        let unauthorized = |m: String| ApiError::new(StatusCode::UNAUTHORIZED, m);
        // Authentication first, as Cinder's auth middleware runs before the API sees
        // the microversion.
        let token = match parts.headers.get("x-auth-token") {
            None => {
                return Err(unauthorized(format!(
                    "Authentication required: send an X-Auth-Token header ({})",
                    state.auth.hint()
                )));
            }
            Some(t) => t.to_str().map_err(|_| {
                unauthorized(format!(
                    "X-Auth-Token is not a valid token: it has characters outside visible ASCII; send {}.",
                    state.auth.hint()
                ))
            })?,
        };
        let who = state.auth.authenticate(token).await.map_err(|e| match e {
            Refused::Db(e) => ApiError::from(e),
            other => unauthorized(other.to_string()),
        })?;
        let version = Microversion::from_headers(&parts.headers)?;
        if let Some(UrlProject(url_project)) = parts.extensions.get::<UrlProject>()
            && *url_project != who.project_id
        {
            return Err(ApiError::bad_request(format!(
                "Malformed request URL: URL's project_id '{url_project}' doesn't match Context's project_id '{}'",
                who.project_id
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
            is_admin: who.role == Role::Admin,
            role: who.role,
            user_id: who.user_id,
            project_id: who.project_id,
            version,
            request_id,
            base: format!("http://{host}"),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Ctx>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a handler asked for its caller on a route without a policy entry");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server has either erred or is incapable of performing the requested operation.",
            )
        })
    }
}

/// An API error in Cinder's body shape: `{"badRequest": {"code": 400, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Cinder's `Retry-After` of a `QuotaError`, also `retryAfter` in the body.
    pub retry_after: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
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
    /// The body's key, as Cinder's `Fault` names it; any status it does not name (406
    /// among them) is a `computeFault` there too.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
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
        let mut fault = json!({ "code": self.status.as_u16(), "message": self.message });
        if let Some(retry) = self.retry_after {
            fault["retryAfter"] = json!(retry);
        }
        let body = json!({ self.kind(): fault });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(retry) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static(retry));
        }
        resp
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Conflict(m) => ApiError::conflict(m),
            crate::db::DbError::Unstorable(m) => ApiError::bad_request(m),
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

/// Over quota: 413 `overLimit` as Cinder's fault middleware answers a `QuotaError` (a
/// "safe" exception): the exception's name before its message, and `Retry-After: 0`
/// (also `retryAfter` in the body).
impl From<crate::db::OverQuota> for ApiError {
    fn from(e: crate::db::OverQuota) -> Self {
        ApiError {
            retry_after: Some("0"),
            ..ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{}: {e}", e.exception_name()),
            )
        }
    }
}

impl From<crate::volume::Refused> for ApiError {
    fn from(e: crate::volume::Refused) -> Self {
        match e {
            crate::volume::Refused::Invalid(m) => ApiError::bad_request(m),
            crate::volume::Refused::NotFound(m) => ApiError::not_found(m),
            crate::volume::Refused::OverQuota(over) => over.into(),
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

/// The object under `key` in a body, as Cinder requires (`{"volume": {…}}`).
pub fn body_element(body: &Body, key: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
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

/// An optional string field of at most 255 characters without control characters (an
/// id, a zone, a type's name or id).
pub fn opt_string(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    input::opt_text(obj, field, Text::Line)
}

/// `name` and `description`, or their v1 spellings `display_name` and
/// `display_description`, which Cinder still accepts: at most 255 characters each, no
/// control characters in a name, none but tabs and line breaks in a description.
pub fn name_and_description(
    obj: &serde_json::Map<String, Value>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let name = match input::opt_text(obj, "name", Text::Line)? {
        Some(n) => Some(n),
        None => input::opt_text(obj, "display_name", Text::Line)?,
    };
    let description = match input::opt_text(obj, "description", Text::Prose)? {
        Some(d) => Some(d),
        None => input::opt_text(obj, "display_description", Text::Prose)?,
    };
    Ok((name, description))
}

/// Cinder's boolean parsing for query strings (`strutils.bool_from_string`); bodies use
/// [`input::body_bool`], as strict as Cinder's schema.
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
