//! Ashlar's own admin surface beside the v3 API: plugins, swap, rollback, metrics.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::input::Body;
use super::{ApiError, Ctx, State, parse_body, reply};
use crate::plugins::backends::BackendError;
use crate::plugins::{Part, SwapError};

pub fn routes() -> Router<std::sync::Arc<super::AppState>> {
    Router::new()
        .route("/ashlar/v1/plugins", get(list))
        .route("/ashlar/v1/plugins/events", get(events))
        .route("/ashlar/v1/workers", get(workers))
        .route("/ashlar/v1/backends/{name}/swap", post(swap))
        .route("/ashlar/v1/backends/{name}/rollback", post(rollback))
        .route("/ashlar/v1/backends", get(backends).post(add_backend))
        .route(
            "/ashlar/v1/backends/{name}",
            get(show_backend).delete(remove_backend),
        )
        .route("/ashlar/v1/backends/{name}/drain", post(drain_backend))
        .route("/metrics", get(metrics))
}

impl From<SwapError> for ApiError {
    fn from(e: SwapError) -> Self {
        match e {
            SwapError::UnknownBackend(_) => ApiError::not_found(e.to_string()),
            SwapError::NothingToRollBack(_) => ApiError::conflict(e.to_string()),
            SwapError::NoTarget(_) => ApiError::conflict(e.to_string()),
            SwapError::NoBackupStore => ApiError::not_found(e.to_string()),
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

async fn list(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "plugins": state.plugins.list().await }),
    ))
}

/// The host's background workers: job runner, stats poller, probation watchers.
async fn workers(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "workers": state.workers.list() }),
    ))
}

async fn events(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let events = state
        .db
        .plugin_events(q.get("backend").map(String::as_str), 100)
        .await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "events": events })))
}

/// `{"wasm": "/path/driver.wasm", "manifest": "/path/plugin.toml", "probation_secs": 30,
/// "target": false}`; the paths are on the server's host. `"target": true` swaps the
/// backend's target driver instead of its volume driver.
async fn swap(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let wasm = match body.get("wasm") {
        Some(Value::String(p)) if !p.is_empty() => std::path::PathBuf::from(p),
        other => {
            return Err(ApiError::invalid_field(
                "wasm",
                other.unwrap_or(&Value::Null),
                "give the path of the new .wasm component",
            ));
        }
    };
    let manifest = match body.get("manifest") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(std::path::PathBuf::from(p)),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "manifest",
                other,
                "it must be a path",
            ));
        }
    };
    let probation = match body.get("probation_secs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(std::time::Duration::from_secs_f64(
            v.as_f64()
                .filter(|s| *s >= 0.0 && *s <= 86_400.0)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "probation_secs",
                        v,
                        "it must be a number of seconds from 0 to 86400",
                    )
                })?,
        )),
    };
    let part = part_of(&body)?;
    let outcome = state
        .plugins
        .swap(&name, part, wasm, manifest, probation)
        .await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "swap": outcome })))
}

/// `"target": true` in the body picks the backend's target driver.
fn part_of(body: &serde_json::Map<String, Value>) -> Result<Part, ApiError> {
    match body.get("target") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(Part::Volume),
        Some(Value::Bool(true)) => Ok(Part::Target),
        Some(other) => Err(ApiError::invalid_field(
            "target",
            other,
            "it must be true (the target driver) or false (the volume driver)",
        )),
    }
}

/// An empty body, or `{"target": true}` for the backend's target driver.
async fn rollback(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let part = if body.is_empty() {
        Part::Volume
    } else {
        part_of(&parse_body(&body)?)?
    };
    let outcome = state.plugins.rollback(&name, part).await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "rollback": outcome })))
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unknown(_) => ApiError::not_found(e.to_string()),
            BackendError::Exists(_) | BackendError::NotEmpty { .. } => {
                ApiError::conflict(e.to_string())
            }
            BackendError::Config(_) | BackendError::Load(_) => ApiError::bad_request(e.to_string()),
            BackendError::Db(d) => d.into(),
        }
    }
}

/// Every backend this host runs: its driver, state, volumes, and what a drain cannot move.
async fn backends(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    let list = state.plugins.backends().await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "backends": list })))
}

async fn show_backend(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.plugins.view(&name).await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "backend": view })))
}

/// `{"name": "NAME", "config": "/path/ashlar.toml"}`: adds backend NAME from its section
/// in `config` (a path on the server's host; default: the server's own config file).
async fn add_backend(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        other => {
            return Err(ApiError::invalid_field(
                "name",
                other.unwrap_or(&Value::Null),
                "give the name of a [backends.NAME] section",
            ));
        }
    };
    let config = match body.get("config") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(std::path::PathBuf::from(p)),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "config",
                other,
                "it must be a path",
            ));
        }
    };
    let view = state.plugins.add_backend(&name, config).await?;
    Ok(reply(&ctx, StatusCode::CREATED, json!({ "backend": view })))
}

async fn drain_backend(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.plugins.drain_backend(&name).await?;
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "backend": view }),
    ))
}

async fn remove_backend(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.plugins.remove_backend(&name).await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "backend": view })))
}

/// Prometheus text format; unauthenticated like most scrape endpoints, figures only.
async fn metrics(axum::extract::State(state): State) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.plugins.metrics_text().await,
    )
        .into_response()
}
