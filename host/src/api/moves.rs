//! The volume actions that move a volume: `os-migrate_volume` and
//! `os-migrate_volume_completion` (administrators) and `os-retype` (the owner).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::input::body_bool;
use super::visible;
use super::{ApiError, Ctx, reply};
use crate::db::VolumeRow;

/// The actions served here.
pub const VOLUME_ACTIONS: &[&str] = &[
    "os-migrate_volume",
    "os-migrate_volume_completion",
    "os-retype",
];

fn args_object<'a>(
    action: &str,
    args: &'a Value,
    example: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    args.as_object().ok_or_else(|| {
        ApiError::bad_request(format!(
            "{action} takes an object of arguments, e.g. {example}."
        ))
    })
}

fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => body_bool(field, v),
    }
}

/// Serves `action` on volume `v`, or `None` when it is not one of [`VOLUME_ACTIONS`].
pub async fn volume_action(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    action: &str,
    args: &Value,
) -> Option<Result<Response, ApiError>> {
    Some(match action {
        "os-migrate_volume" => migrate(state, ctx, v, args).await,
        "os-migrate_volume_completion" => completion(state, ctx, v, args).await,
        "os-retype" => retype(state, ctx, v, args).await,
        _ => return None,
    })
}

/// `os-migrate_volume`: `host` (`HOST@BACKEND#POOL`, or without the pool for the
/// scheduler to pick it) or, from 3.16, `cluster`; `lock_volume` holds the volume in
/// `maintenance` meanwhile. Every migration copies through this host
/// (`force_host_copy` is accepted and changes nothing).
async fn migrate(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let example = "{\"os-migrate_volume\": {\"host\": \"host@backend#pool\"}}";
    let obj = args_object("os-migrate_volume", args, example)?;
    let host = super::opt_string(obj, "host")?;
    let cluster = if ctx.version.at_least(16) {
        super::opt_string(obj, "cluster")?
    } else {
        None
    };
    let dest = match (host, cluster) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Invalid input received: host and cluster are mutually exclusive; give one.",
            ));
        }
        (Some(d), None) | (None, Some(d)) => d,
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input received: os-migrate_volume needs the destination `host` (or, from 3.16, `cluster`), e.g. {example}."
            )));
        }
    };
    if !dest.contains('@') || dest.ends_with('#') || dest.starts_with('@') {
        return Err(ApiError::invalid_field(
            "host",
            &json!(dest),
            "It must name a backend as HOST@BACKEND or a pool as HOST@BACKEND#POOL (see `os-services` or `scheduler-stats/get_pools`).",
        ));
    }
    opt_bool(obj, "force_host_copy")?;
    let lock = opt_bool(obj, "lock_volume")?;
    state
        .manager
        .request_migrate(v, &dest, lock, &ctx.request_id)
        .await?;
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

/// `os-migrate_volume_completion`, which the compute service sends after it swapped an
/// attached volume onto a migration's destination volume. Ashlar's own migrations
/// complete themselves and make no destination row; as Cinder, a destination that is not
/// `target:ID` of this volume is refused, and a swap between two volumes that are not
/// migrating answers the new volume's id.
async fn completion(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let example = "{\"os-migrate_volume_completion\": {\"new_volume\": \"ID\"}}";
    let obj = args_object("os-migrate_volume_completion", args, example)?;
    let Some(new_id) = super::opt_string(obj, "new_volume")? else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute new_volume. Value: None. new_volume is required, e.g. {example}."
        )));
    };
    let error = opt_bool(obj, "error")?;
    let new = visible::volume(state, ctx, &new_id).await?;
    let moving = |s: &Option<String>| s.as_deref().is_some_and(|m| m != "success" && m != "error");
    if v.migration_status.is_none() && new.migration_status.is_none() {
        if !error && !v.attachments.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: volume {} is attached; moving its attachments to volume {} is not supported.",
                v.id, new.id
            )));
        }
        return Ok(reply(
            ctx,
            StatusCode::OK,
            json!({ "save_volume_id": new.id }),
        ));
    }
    if !moving(&v.migration_status) {
        return Err(ApiError::bad_request(
            "Invalid volume: Source volume not mid-migration.",
        ));
    }
    let Some(status) = new.migration_status.as_deref() else {
        return Err(ApiError::bad_request(
            "Invalid volume: Destination volume not mid-migration.",
        ));
    };
    Err(ApiError::bad_request(format!(
        "Invalid volume: Destination has migration_status {status}, expected target:{}.",
        v.id
    )))
}

/// `os-retype`: `new_type` (a name or an id the caller may use), `migration_policy`
/// `never` (the default) or `on-demand`.
async fn retype(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let example = "{\"os-retype\": {\"new_type\": \"gold\", \"migration_policy\": \"on-demand\"}}";
    let obj = args_object("os-retype", args, example)?;
    let Some(type_ref) = super::opt_string(obj, "new_type")? else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute new_type. Value: None. new_type is required, e.g. {example}."
        )));
    };
    let policy = match super::opt_string(obj, "migration_policy")? {
        None => "never".to_string(),
        Some(p) if p == "never" || p == "on-demand" => p,
        Some(p) => {
            return Err(ApiError::invalid_field(
                "migration_policy",
                &json!(p),
                "It must be never or on-demand.",
            ));
        }
    };
    let new_type = state
        .db
        .visible_volume_type(&type_ref, ctx.type_visibility())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(if super::types::is_uuid_like(&type_ref) {
                format!("Volume type {type_ref} could not be found.")
            } else {
                format!("Volume type with name {type_ref} could not be found.")
            })
        })?;
    state
        .manager
        .request_retype(v, &new_type, &policy, &ctx.request_id)
        .await?;
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}
