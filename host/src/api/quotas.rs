//! Cinder's quotas and limits: `/v3/{project}/os-quota-sets/{project_id}` (show, with
//! `?usage=True` each resource's `{limit, in_use, reserved}`; update and delete for
//! administrators; `/defaults`), `/v3/{project}/os-quota-class-sets/{class}` (the
//! `default` class supplies every project's defaults) and `/v3/{project}/limits`
//! (Cinder's absolute limits with what is used). The views are tempest's schemas
//! (`quotas.py`, `quota_classes.py`, `limits.py`). Enforcement is in the transactions
//! that record volumes and snapshots (`db/quotas.rs`).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, parse_body};
use super::{ApiError, Ctx, State, reply};
use crate::db::{QuotaResource, QuotaValue};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(show, update, delete))
        .routes(routes!(defaults))
        .routes(routes!(class_show, class_update))
        .routes(routes!(limits))
}

const SHOW: &str = "volume_extension:quotas:show";

/// Cinder's `db.MAX_INT`, the largest limit a column holds.
const MAX_INT: i64 = 0x7FFF_FFFF;

/// Keys of a quota set that are not resources (Cinder's `NON_QUOTA_KEYS`).
const NON_QUOTA_KEYS: &[&str] = &["tenant_id", "id"];

/// Cinder's policy for reading quotas: an administrator, or the project's own members.
fn may_read(ctx: &Ctx, project_id: &str) -> Result<(), ApiError> {
    if ctx.project_id == project_id {
        Ok(())
    } else {
        ctx.require_admin(SHOW)
    }
}

/// Cinder's `validate_string_length` of a name in a URL: 1 to 255 characters.
fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    let n = id.chars().count();
    let why = if n < 1 {
        format!("{what} has {n} characters, less than 1.")
    } else if n > 255 {
        format!("{what} has {n} characters, more than 255.")
    } else {
        return Ok(());
    };
    Err(ApiError::bad_request(format!(
        "Invalid input received: {why}"
    )))
}

/// `{name: limit}` with `id` when given.
fn limits_view(id: Option<&str>, limits: Vec<(String, i64)>) -> Value {
    let mut set: Map<String, Value> = limits.into_iter().map(|(k, v)| (k, json!(v))).collect();
    if let Some(id) = id {
        set.insert("id".into(), json!(id));
    }
    Value::Object(set)
}

fn usage_view(id: &str, values: Vec<QuotaValue>) -> Value {
    let mut set: Map<String, Value> = values
        .into_iter()
        .map(|v| {
            (
                v.name,
                json!({ "limit": v.limit, "in_use": v.in_use, "reserved": v.reserved }),
            )
        })
        .collect();
    set.insert("id".into(), json!(id));
    Value::Object(set)
}

fn limits_of(values: Vec<QuotaValue>) -> Vec<(String, i64)> {
    values.into_iter().map(|v| (v.name, v.limit)).collect()
}

#[utoipa::path(get, path = "/v3/os-quota-sets/{project_id}", tag = "quotas", params(("project_id" = String, Path), super::openapi::QuotaParams), responses((status = 200, description = "OK.", body = super::openapi::QuotaSetBody), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    may_read(&ctx, &project_id)?;
    let usage = match params.iter().rev().find(|(k, _)| k == "usage") {
        Some((_, v)) => super::parse_bool("usage", &Value::String(v.clone()))?,
        None => false,
    };
    let values = state.db.project_quotas(&project_id).await?;
    let set = if usage {
        usage_view(&project_id, values)
    } else {
        limits_view(Some(&project_id), limits_of(values))
    };
    Ok(reply(&ctx, StatusCode::OK, json!({ "quota_set": set })))
}

#[utoipa::path(get, path = "/v3/os-quota-sets/{project_id}/defaults", tag = "quotas", params(("project_id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::QuotaSetBody), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn defaults(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project_id): Path<String>,
) -> Result<Response, ApiError> {
    may_read(&ctx, &project_id)?;
    let limits = state.db.default_quotas().await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "quota_set": limits_view(Some(&project_id), limits) }),
    ))
}

/// Reads a limit as Cinder's `validate_integer` does (`int(str(value))`, -1 to MAX_INT).
fn limit_value(key: &str, v: &Value) -> Result<i64, ApiError> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(n) = parsed else {
        return Err(ApiError::bad_request(format!("{key} must be an integer")));
    };
    if n < -1 {
        return Err(ApiError::bad_request(format!("{key} must be >= -1")));
    }
    if n > MAX_INT {
        return Err(ApiError::bad_request(format!("{key} must be <= {MAX_INT}")));
    }
    Ok(n)
}

/// The body's `element` (`quota_set`, `quota_class_set`) as `(resource, limit)`s: every
/// key a resource (`noun` names the set in the message) and every value a limit.
async fn read_limits(
    state: &super::AppState,
    body: &Body,
    element: &str,
    noun: &str,
    skip: &[&str],
) -> Result<Vec<(QuotaResource, i64)>, ApiError> {
    let mut top = parse_body(body)?;
    let set = match top.remove(element) {
        Some(Value::Object(set)) => set,
        Some(other) => {
            return Err(ApiError::invalid_field(
                element,
                &other,
                format!("{other} is not of type 'object'"),
            ));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {element}. Value: None. '{element}' is a required property"
            )));
        }
    };
    if let Some(extra) = top.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    if set.is_empty() {
        return Err(ApiError::invalid_field(
            element,
            &Value::Object(set),
            "{} does not have enough properties",
        ));
    }
    let resources = state.db.quota_resources().await?;
    let mut bad = Vec::new();
    let mut limits = Vec::new();
    for (key, value) in &set {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let Some(r) = resources.iter().find(|r| r.name == *key) else {
            bad.push(key.as_str());
            continue;
        };
        limits.push((r.clone(), limit_value(key, value)?));
    }
    if !bad.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: Bad key(s) in {noun}: {}",
            bad.join(", ")
        )));
    }
    Ok(limits)
}

#[utoipa::path(put, path = "/v3/os-quota-sets/{project_id}", tag = "quotas", params(("project_id" = String, Path)), request_body = super::openapi::QuotaSetBody, responses((status = 200, description = "OK.", body = super::openapi::QuotaSetBody), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project_id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    check_id("quota_set_name", &project_id)?;
    let limits = read_limits(&state, &body, "quota_set", "quota set", NON_QUOTA_KEYS).await?;
    if let Err(below) = state.db.update_project_quotas(&project_id, &limits).await? {
        return Err(ApiError::bad_request(below.to_string()));
    }
    let values = state.db.project_quotas(&project_id).await?;
    tracing::info!(project_id, by = %ctx.user_id, "project quotas updated");
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "quota_set": limits_view(None, limits_of(values)) }),
    ))
}

#[utoipa::path(delete, path = "/v3/os-quota-sets/{project_id}", tag = "quotas", params(("project_id" = String, Path)), responses((status = 200, description = "OK."), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project_id): Path<String>,
) -> Result<Response, ApiError> {
    state.db.delete_project_quotas(&project_id).await?;
    tracing::info!(project_id, by = %ctx.user_id, "project quotas back to the defaults");
    Ok(reply(&ctx, StatusCode::OK, Value::Null))
}

#[utoipa::path(get, path = "/v3/os-quota-class-sets/{class_name}", tag = "quotas", params(("class_name" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::QuotaClassSetBody), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn class_show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(class_name): Path<String>,
) -> Result<Response, ApiError> {
    let limits = state.db.class_quotas(&class_name).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "quota_class_set": limits_view(Some(&class_name), limits) }),
    ))
}

#[utoipa::path(put, path = "/v3/os-quota-class-sets/{class_name}", tag = "quotas", params(("class_name" = String, Path)), request_body = super::openapi::QuotaClassSetBody, responses((status = 200, description = "OK.", body = super::openapi::QuotaClassSetBody), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn class_update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(class_name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    check_id("quota_class_name", &class_name)?;
    let limits = read_limits(&state, &body, "quota_class_set", "quota class set", &[]).await?;
    state.db.update_class_quotas(&class_name, &limits).await?;
    tracing::info!(class_name, by = %ctx.user_id, "quota class updated");
    let limits = state.db.class_quotas(&class_name).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "quota_class_set": limits_view(None, limits) }),
    ))
}

/// Cinder's absolute limits and, from its `used_limits` extension, what is used. An
/// administrator may name another project with `project_id` from 3.39.
#[utoipa::path(get, path = "/v3/limits", tag = "limits", responses((status = 200, description = "OK.", body = super::openapi::Limits)))]
async fn limits(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let named = params
        .iter()
        .rev()
        .find(|(k, _)| k == "project_id")
        .or_else(|| params.iter().rev().find(|(k, _)| k == "tenant_id"))
        .map(|(_, v)| v.clone());
    let project_id = match named {
        Some(p) if ctx.is_admin && ctx.version.at_least(39) => p,
        _ => ctx.project_id.clone(),
    };
    let values = state.db.project_quotas(&project_id).await?;
    let of = |name: &str| values.iter().find(|v| v.name == name);
    let limit = |name: &str| of(name).map_or(-1, |v| v.limit);
    let used = |name: &str| of(name).map_or(0, |v| v.in_use);
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "limits": {
            "rate": [],
            "absolute": {
                "maxTotalVolumes": limit("volumes"),
                "maxTotalSnapshots": limit("snapshots"),
                "maxTotalVolumeGigabytes": limit("gigabytes"),
                "maxTotalBackups": limit("backups"),
                "maxTotalBackupGigabytes": limit("backup_gigabytes"),
                "totalVolumesUsed": used("volumes"),
                "totalGigabytesUsed": used("gigabytes"),
                "totalSnapshotsUsed": used("snapshots"),
                "totalBackupsUsed": used("backups"),
                "totalBackupGigabytesUsed": used("backup_gigabytes"),
            }
        }}),
    ))
}
