//! `/v3/{project_id}/snapshots`.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, body_bool, string_map};
use super::list::{ListRequest, ListSpec};
use super::visible;
use super::{ApiError, Ctx, State, body_element, opt_string, reply, views};
use crate::db::{SnapshotRow, time};
use crate::volume::SnapshotStatus;

const LIST: ListSpec = ListSpec {
    link_path: Some("snapshots"),
    collection: "snapshots",
    noun: "Snapshot",
    // Cinder's `resource_filters.json` for snapshots, as far as Ashlar keeps the fields.
    user_filters: &["name", "status", "volume_id"],
    listing: &crate::db::SNAPSHOT_LIST,
    paging_since: 0,
};

const LIST_DETAIL: ListSpec = ListSpec {
    link_path: Some("snapshots/detail"),
    ..LIST
};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(list_detail))
        .routes(routes!(show, update, delete))
        .routes(routes!(action))
}

#[utoipa::path(post, path = "/v3/snapshots", tag = "snapshots", request_body = super::openapi::SnapshotCreateRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::SnapshotBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 413, description = "Over quota or over a size limit.")))]
async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let snap = body_element(&body, "snapshot")?;
    let volume_id = opt_string(&snap, "volume_id")?.ok_or_else(|| {
        ApiError::invalid_field("volume_id", &Value::Null, "volume_id is required.")
    })?;
    if let Some(force) = snap.get("force")
        && body_bool("force", force)?
        && ctx.version.at_least(66)
    {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute force: it may not be true from microversion 3.66.",
        ));
    }
    let (name, description) = super::name_and_description(&snap)?;
    let metadata = match snap.get("metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(m) => string_map(
            "metadata",
            m,
            Keys::Metadata,
            state.input_limits.max_metadata_items,
        )?
        .into_iter()
        .collect(),
    };
    let volume = visible::volume(&state, &ctx, &volume_id).await?;
    let now = time::now();
    let mut row = SnapshotRow {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        volume_id: volume.id.clone(),
        name,
        description,
        status: SnapshotStatus::Creating,
        progress: "0%".into(),
        volume_size: volume.size,
        provider_location: None,
        metadata,
        created_at: now.clone(),
        updated_at: Some(now),
    };
    state
        .manager
        .request_snapshot(&mut row, &volume, &ctx.request_id)
        .await?;
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "snapshot": views::snapshot(&ctx, &row, false) }),
    ))
}

/// A page of snapshots, and its "next" link when it is full.
async fn page(
    state: &super::AppState,
    ctx: &Ctx,
    params: &[(String, String)],
    spec: &ListSpec,
    detail: bool,
) -> Result<Response, ApiError> {
    let req = ListRequest::parse(ctx, params, spec)?;
    let rows = req.rows(spec, state.db.list_snapshots(&req.query).await)?;
    let mut body = serde_json::Map::new();
    if let Some((key, links)) = req.links(ctx, spec, rows.last().map(|s| s.id.as_str()), rows.len())
    {
        body.insert(key, links);
    }
    body.insert(
        "snapshots".into(),
        Value::Array(
            rows.iter()
                .map(|s| views::snapshot(ctx, s, detail))
                .collect(),
        ),
    );
    Ok(reply(ctx, StatusCode::OK, Value::Object(body)))
}

#[utoipa::path(get, path = "/v3/snapshots", tag = "snapshots", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::SnapshotList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    page(&state, &ctx, &params, &LIST, false).await
}

#[utoipa::path(get, path = "/v3/snapshots/detail", tag = "snapshots", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::SnapshotList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    page(&state, &ctx, &params, &LIST_DETAIL, true).await
}

#[utoipa::path(get, path = "/v3/snapshots/{id}", tag = "snapshots", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::SnapshotBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible::snapshot(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "snapshot": views::snapshot(&ctx, &s, true) }),
    ))
}

#[utoipa::path(put, path = "/v3/snapshots/{id}", tag = "snapshots", params(("id" = String, Path)), request_body = super::openapi::SnapshotUpdateRequest, responses((status = 200, description = "OK.", body = super::openapi::SnapshotBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let s = visible::snapshot(&state, &ctx, &id).await?;
    let upd = body_element(&body, "snapshot")?;
    let (name, description) = super::name_and_description(&upd)?;
    let metadata: Option<std::collections::BTreeMap<String, String>> = match upd.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m) => Some(
            string_map(
                "metadata",
                m,
                Keys::Metadata,
                state.input_limits.max_metadata_items,
            )?
            .into_iter()
            .collect(),
        ),
    };
    if name.is_none() && description.is_none() && metadata.is_none() {
        return Err(ApiError::bad_request(
            "Nothing to update: give name, description or metadata.",
        ));
    }
    state
        .db
        .update_snapshot_info(
            &s.id,
            name.as_deref(),
            description.as_deref(),
            metadata.as_ref(),
        )
        .await?;
    let s = visible::snapshot(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "snapshot": views::snapshot(&ctx, &s, false) }),
    ))
}

#[utoipa::path(delete, path = "/v3/snapshots/{id}", tag = "snapshots", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible::snapshot(&state, &ctx, &id).await?;
    state
        .manager
        .request_delete_snapshot(&s, false, &ctx.request_id)
        .await?;
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

/// Cinder's `progress`: an integer percentage, `0%` to `100%`.
fn parse_progress(value: &Value) -> Result<String, ApiError> {
    let text = value.as_str().unwrap_or_default();
    match text.strip_suffix('%').map(str::parse::<u8>) {
        Some(Ok(n)) if n <= 100 => Ok(text.to_string()),
        _ => Err(ApiError::invalid_field(
            "progress",
            value,
            "progress must be an integer percentage, e.g. \"73%\".",
        )),
    }
}

/// `os-update_snapshot_status`, as Cinder's snapshot actions allow it (for a service that
/// makes the snapshot itself): `creating` → creating/available/error, `deleting` →
/// deleting/error_deleting, with an optional progress.
async fn update_snapshot_status(
    state: &super::AppState,
    ctx: &Ctx,
    s: &SnapshotRow,
    args: &Value,
) -> Result<Response, ApiError> {
    use SnapshotStatus::{Available, Creating, Deleting, Error, ErrorDeleting};
    let Some(wanted) = args.get("status") else {
        return Err(ApiError::bad_request(
            "'status' must be specified: {\"os-update_snapshot_status\": {\"status\": \"available\"}}.",
        ));
    };
    let allowed: &[SnapshotStatus] = match s.status {
        Creating => &[Creating, Available, Error],
        Deleting => &[Deleting, ErrorDeleting],
        other => {
            return Err(ApiError::bad_request(format!(
                "Snapshot status {other} not allowed for update_snapshot_status"
            )));
        }
    };
    let status = wanted
        .as_str()
        .and_then(|w| w.parse::<SnapshotStatus>().ok())
        .filter(|st| allowed.contains(st))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Provided snapshot status {} not allowed for snapshot with status {}.",
                wanted
                    .as_str()
                    .map_or_else(|| wanted.to_string(), str::to_string),
                s.status
            ))
        })?;
    let progress = match args.get("progress") {
        None | Some(Value::Null) => None,
        Some(p) => Some(parse_progress(p)?),
    };
    if !state
        .db
        .update_snapshot_status(&s.id, s.status, status, progress.as_deref())
        .await?
    {
        return Err(ApiError::conflict(format!(
            "Snapshot {} changed status while it was being updated; fetch it and retry.",
            s.id
        )));
    }
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

/// A snapshot's actions: `os-update_snapshot_status` and `os-update_progress`, and for
/// administrators `os-reset_status` and `os-force_delete`.
#[utoipa::path(post, path = "/v3/snapshots/{id}/action", tag = "snapshots", params(("id" = String, Path)), request_body = super::openapi::Action, responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn action(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: super::input::Body,
) -> Result<Response, ApiError> {
    let s = visible::snapshot(&state, &ctx, &id).await?;
    let map = super::parse_body(&body)?;
    let (name, args) =
        super::input::one_action(&map, "{\"os-reset_status\": {\"status\": \"available\"}}")?;
    match name.as_str() {
        "os-reset_status" => {
            let allowed = || {
                SnapshotStatus::RESETTABLE
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let status = match args.get("status") {
                Some(Value::String(v)) => v
                    .parse::<SnapshotStatus>()
                    .ok()
                    .filter(|st| SnapshotStatus::RESETTABLE.contains(st))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            "status",
                            &json!(v),
                            format!("It must be one of {}.", allowed()),
                        )
                    })?,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "os-reset_status needs `status`, one of {}: {{\"os-reset_status\": {{\"status\": \"available\"}}}}.",
                        allowed()
                    )));
                }
            };
            state
                .db
                .transition_snapshot(&s.id, SnapshotStatus::ALL, status, None)
                .await?;
            tracing::warn!(snapshot_id = %s.id, from = %s.status, to = %status, user = %ctx.user_id, "snapshot status reset by an administrator");
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        "os-update_snapshot_status" => update_snapshot_status(&state, &ctx, &s, &args).await,
        "os-update_progress" => {
            let progress = parse_progress(&args)?;
            if !state.db.update_snapshot_progress(&s.id, &progress).await? {
                return Err(ApiError::not_found(format!(
                    "Snapshot {} could not be found.",
                    s.id
                )));
            }
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        "os-force_delete" => {
            state
                .manager
                .request_delete_snapshot(&s, true, &ctx.request_id)
                .await?;
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        other => Err(ApiError::bad_request(format!(
            "There is no such action: {other} (snapshots take os-update_snapshot_status, os-update_progress, os-reset_status and os-force_delete)."
        ))),
    }
}
