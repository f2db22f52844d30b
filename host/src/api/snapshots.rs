//! `/v3/{project_id}/snapshots`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{
    ApiError, Ctx, State, body_element, opt_string, page_from_query, parse_bool, reply, string_map,
    views,
};
use crate::db::{Job, SnapshotRow, time};

pub fn routes() -> Router<std::sync::Arc<super::AppState>> {
    Router::new()
        .route("/v3/snapshots", post(create).get(list))
        .route("/v3/snapshots/detail", get(list_detail))
        .route("/v3/snapshots/{id}", get(show).put(update).delete(delete))
}

async fn visible_snapshot(
    state: &super::AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<SnapshotRow, ApiError> {
    match state.db.get_snapshot(id).await? {
        Some(s) if s.project_id == ctx.project_id || ctx.is_admin => Ok(s),
        _ => Err(ApiError::not_found(format!(
            "Snapshot {id} could not be found."
        ))),
    }
}

async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Bytes,
) -> Result<Response, ApiError> {
    let snap = body_element(&body, "snapshot")?;
    let volume_id = opt_string(&snap, "volume_id")?.ok_or_else(|| {
        ApiError::invalid_field("volume_id", &Value::Null, "volume_id is required.")
    })?;
    let volume = match state.db.get_volume(&volume_id).await? {
        Some(v) if v.project_id == ctx.project_id || ctx.is_admin => v,
        _ => {
            return Err(ApiError::not_found(format!(
                "Volume {volume_id} could not be found."
            )));
        }
    };
    if let Some(force) = snap.get("force")
        && parse_bool("force", force)?
        && ctx.version.at_least(66)
    {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute force: it may not be true from microversion 3.66.",
        ));
    }
    let (name, description) = super::name_and_description(&snap)?;
    let metadata = match snap.get("metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(m) => string_map("metadata", m)?.into_iter().collect(),
    };
    let now = time::now();
    let row = SnapshotRow {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        volume_id: volume.id.clone(),
        name,
        description,
        status: "creating".into(),
        progress: "0%".into(),
        volume_size: volume.size,
        provider_location: None,
        metadata,
        created_at: now.clone(),
        updated_at: Some(now),
    };
    let job = Job::new(
        "create_snapshot",
        &row.id,
        json!({"request_id": ctx.request_id}),
    );
    if !state
        .db
        .insert_snapshot_with_job(&row, &["available"], &job)
        .await?
    {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: Volume {} status must be available to snapshot it, but current status is: {}.",
            volume.id, volume.status
        )));
    }
    state.manager.submit(&job.id);
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "snapshot": views::snapshot(&ctx, &row, true) }),
    ))
}

async fn rows(
    state: &super::AppState,
    ctx: &Ctx,
    q: &HashMap<String, String>,
) -> Result<Vec<SnapshotRow>, ApiError> {
    let all = match q.get("all_tenants") {
        Some(v) => parse_bool("all_tenants", &json!(v))? && ctx.is_admin,
        None => false,
    };
    let project = if all {
        None
    } else {
        Some(ctx.project_id.as_str())
    };
    let mut filters = Vec::new();
    for (param, col) in [
        ("name", "name"),
        ("status", "status"),
        ("volume_id", "volume_id"),
    ] {
        if let Some(v) = q.get(param) {
            filters.push((col, v.clone()));
        }
    }
    Ok(state
        .db
        .list_snapshots(project, &filters, &page_from_query(q)?)
        .await?)
}

async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let items: Vec<Value> = rows(&state, &ctx, &q)
        .await?
        .iter()
        .map(|s| views::snapshot(&ctx, s, false))
        .collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "snapshots": items })))
}

async fn list_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let items: Vec<Value> = rows(&state, &ctx, &q)
        .await?
        .iter()
        .map(|s| views::snapshot(&ctx, s, true))
        .collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "snapshots": items })))
}

async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "snapshot": views::snapshot(&ctx, &s, true) }),
    ))
}

async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &ctx, &id).await?;
    let upd = body_element(&body, "snapshot")?;
    let (name, description) = super::name_and_description(&upd)?;
    let metadata: Option<std::collections::BTreeMap<String, String>> = match upd.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m) => Some(string_map("metadata", m)?.into_iter().collect()),
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
    let s = visible_snapshot(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "snapshot": views::snapshot(&ctx, &s, true) }),
    ))
}

async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = visible_snapshot(&state, &ctx, &id).await?;
    let job = Job::new(
        "delete_snapshot",
        &s.id,
        json!({"request_id": ctx.request_id}),
    );
    if !state
        .db
        .transition_snapshot_with_job(
            &s.id,
            &["available", "error", "error_deleting"],
            "deleting",
            &job,
        )
        .await?
    {
        return Err(ApiError::bad_request(format!(
            "Invalid snapshot: Snapshot status must be available or error to delete it, but it is {}.",
            s.status
        )));
    }
    state.manager.submit(&job.id);
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}
