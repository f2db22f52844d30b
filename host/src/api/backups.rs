//! `/v3/{project_id}/backups`: Cinder's backup API (create, list, show, update, delete,
//! restore, the admin actions, export and import of records), and Ashlar's
//! `GET /backups/{id}/progress` for a running create or restore, which Cinder's view has
//! no field for.

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, body_bool, string_map};
use super::list::{ListRequest, ListSpec};
use super::visible;
use super::{ApiError, Ctx, State, body_element, opt_string, reply, views};
use crate::db::{BackupRow, VolumeRow, time};
use crate::volume::{AttachStatus, BackupStatus, VolumeStatus};

const LIST: ListSpec = ListSpec {
    link_path: Some("backups"),
    collection: "backups",
    noun: "Backup",
    // Cinder's `resource_filters.json` for backups.
    user_filters: &["name", "status", "volume_id"],
    listing: &crate::db::BACKUP_LIST,
    paging_since: 0,
};

const LIST_DETAIL: ListSpec = ListSpec {
    link_path: Some("backups/detail"),
    ..LIST
};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(list_detail))
        .routes(routes!(show, update, delete))
        .routes(routes!(restore))
        .routes(routes!(action))
        .routes(routes!(export_record))
        .routes(routes!(import_record))
        .routes(routes!(progress))
}

/// The keys a create takes (Cinder's `backups.create` schema); metadata from 3.43.
const CREATE_KEYS: &[&str] = &[
    "volume_id",
    "container",
    "name",
    "display_name",
    "description",
    "display_description",
    "incremental",
    "force",
    "snapshot_id",
    "availability_zone",
    "metadata",
];

fn no_other_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute backup. Additional properties are not allowed ('{k}' was unexpected); it takes {}.",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `metadata` of a create or update: from 3.43 only, as Cinder's schema takes it.
fn metadata(
    state: &super::AppState,
    ctx: &Ctx,
    obj: &Map<String, Value>,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match obj.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(_) if !ctx.version.at_least(43) => Err(ApiError::bad_request(
            "Invalid input for field/attribute backup. Additional properties are not allowed ('metadata' was unexpected): backup metadata needs microversion 3.43 or later.",
        )),
        Some(m) => Ok(Some(
            string_map(
                "metadata",
                m,
                Keys::Metadata,
                state.input_limits.max_metadata_items,
            )?
            .into_iter()
            .collect(),
        )),
    }
}

fn flag(obj: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => body_bool(field, v),
    }
}

#[utoipa::path(post, path = "/v3/backups", tag = "backups", request_body = super::openapi::BackupCreateRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::BackupSummaryBody), (status = 400, description = "The request or the volume's state does not allow it."), (status = 404, description = "No such resource visible to the caller."), (status = 413, description = "Over quota.")))]
async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let obj = body_element(&body, "backup")?;
    no_other_keys(&obj, CREATE_KEYS)?;
    let volume_id = opt_string(&obj, "volume_id")?.ok_or_else(|| {
        ApiError::invalid_field(
            "volume_id",
            &Value::Null,
            "volume_id is required: the volume to back up.",
        )
    })?;
    let (name, description) = super::name_and_description(&obj)?;
    let incremental = flag(&obj, "incremental")?;
    let force = flag(&obj, "force")?;
    let metadata = metadata(&state, &ctx, &obj)?.unwrap_or_default();
    let volume = visible::volume(&state, &ctx, &volume_id).await?;
    let snapshot_id = match opt_string(&obj, "snapshot_id")? {
        Some(id) => Some(visible::snapshot(&state, &ctx, &id).await?.id),
        None => None,
    };
    let container = match opt_string(&obj, "container")? {
        Some(c) if c.is_empty() || c.contains('/') || c == "." || c == ".." => {
            return Err(ApiError::invalid_field(
                "container",
                &json!(c),
                "A container is a name without '/', not '.' or '..'.",
            ));
        }
        Some(c) => Some(c),
        None => state.manager.default_backup_container(),
    };
    let availability_zone =
        opt_string(&obj, "availability_zone")?.or_else(|| Some(volume.availability_zone.clone()));
    let now = time::now();
    let mut row = BackupRow {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        volume_id: volume.id.clone(),
        snapshot_id,
        status: BackupStatus::Creating,
        name,
        description,
        availability_zone,
        container,
        size: volume.size,
        object_count: 0,
        stored_bytes: 0,
        fail_reason: None,
        parent_id: None,
        is_incremental: incremental,
        num_dependent_backups: 0,
        data_timestamp: None,
        host: None,
        service: None,
        temp_volume_id: None,
        temp_snapshot_id: None,
        restore_volume_id: None,
        progress: 0,
        progress_total: 0,
        metadata,
        created_at: now.clone(),
        updated_at: Some(now),
    };
    state
        .manager
        .request_backup(&mut row, force, &ctx.request_id)
        .await?;
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "backup": views::backup_summary(&ctx, &row) }),
    ))
}

/// A page of backups, its "next" link when it is full, and from 3.45 the count asked
/// for with `with_count=true`.
async fn page(
    state: &super::AppState,
    ctx: &Ctx,
    params: &[(String, String)],
    spec: &ListSpec,
    detail: bool,
) -> Result<Response, ApiError> {
    let req = ListRequest::parse(ctx, params, spec)?;
    let rows = req.rows(spec, state.db.list_backups(&req.query).await)?;
    let mut body = Map::new();
    body.insert(
        "backups".into(),
        Value::Array(
            rows.iter()
                .map(|b| {
                    if detail {
                        views::backup_detail(ctx, b)
                    } else {
                        views::backup_summary(ctx, b)
                    }
                })
                .collect(),
        ),
    );
    if let Some((key, links)) = req.links(ctx, spec, rows.last().map(|b| b.id.as_str()), rows.len())
    {
        body.insert(key, links);
    }
    let with_count = params
        .iter()
        .rev()
        .find(|(k, _)| k == "with_count")
        .map(|(_, v)| {
            crate::db::list::parse_bool(v).ok_or_else(|| {
                ApiError::invalid_field("with_count", &json!(v), "It must be a boolean.")
            })
        })
        .transpose()?
        .unwrap_or(false);
    if with_count && ctx.version.at_least(45) {
        let count = state.db.count_backups(&req.query).await?;
        body.insert("count".into(), json!(count));
    }
    Ok(reply(ctx, StatusCode::OK, Value::Object(body)))
}

#[utoipa::path(get, path = "/v3/backups", tag = "backups", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::BackupSummaryList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    page(&state, &ctx, &params, &LIST, false).await
}

#[utoipa::path(get, path = "/v3/backups/detail", tag = "backups", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::BackupList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    page(&state, &ctx, &params, &LIST_DETAIL, true).await
}

#[utoipa::path(get, path = "/v3/backups/{id}", tag = "backups", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::BackupBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = visible::backup(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "backup": views::backup_detail(&ctx, &b) }),
    ))
}

#[utoipa::path(put, path = "/v3/backups/{id}", tag = "backups", params(("id" = String, Path)), request_body = super::openapi::BackupUpdateRequest, responses((status = 200, description = "OK.", body = super::openapi::BackupSummaryBody), (status = 400, description = "Nothing or something unknown to update."), (status = 404, description = "No such resource visible to the caller, or a microversion before 3.9.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    if !ctx.version.at_least(9) {
        return Err(ApiError::not_found(
            "The resource could not be found: updating a backup needs microversion 3.9 or later.",
        ));
    }
    let b = visible::backup(&state, &ctx, &id).await?;
    let obj = body_element(&body, "backup")?;
    no_other_keys(
        &obj,
        &[
            "name",
            "display_name",
            "description",
            "display_description",
            "metadata",
        ],
    )?;
    let (name, description) = super::name_and_description(&obj)?;
    let metadata = metadata(&state, &ctx, &obj)?;
    if name.is_none() && description.is_none() && metadata.is_none() {
        return Err(ApiError::bad_request(
            "Nothing to update: give name, description or (from 3.43) metadata.",
        ));
    }
    state
        .db
        .update_backup_info(
            &b.id,
            name.as_deref(),
            description.as_deref(),
            metadata.as_ref(),
        )
        .await?;
    let b = visible::backup(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "backup": views::backup_summary(&ctx, &b) }),
    ))
}

#[utoipa::path(delete, path = "/v3/backups/{id}", tag = "backups", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 400, description = "The backup's state does not allow it, or incrementals depend on it."), (status = 404, description = "No such resource visible to the caller.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = visible::backup(&state, &ctx, &id).await?;
    state
        .manager
        .request_delete_backup(&b, false, &ctx.request_id)
        .await?;
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

#[utoipa::path(post, path = "/v3/backups/{id}/restore", tag = "backups", params(("id" = String, Path)), request_body = super::openapi::BackupRestoreRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::RestoreBody), (status = 400, description = "The backup's or the volume's state does not allow it."), (status = 404, description = "No such resource visible to the caller."), (status = 413, description = "Over quota (a new volume).")))]
async fn restore(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let b = visible::backup(&state, &ctx, &id).await?;
    let obj = body_element(&body, "restore")?;
    no_other_keys(&obj, &["volume_id", "name", "description"])?;
    let volume_id = opt_string(&obj, "volume_id")?;
    let name = opt_string(&obj, "name")?;
    let (volume_id, volume_name) = match volume_id {
        Some(vid) => {
            let v = visible::volume(&state, &ctx, &vid).await?;
            state
                .manager
                .request_restore(&b, Some(&v), None, &ctx.request_id)
                .await?;
            (v.id, v.name)
        }
        None => {
            let v = new_volume(&state, &ctx, &b, name).await?;
            state
                .manager
                .request_restore(&b, None, Some(&v), &ctx.request_id)
                .await?;
            (v.id, v.name)
        }
    };
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "restore": { "backup_id": b.id, "volume_id": volume_id, "volume_name": volume_name } }),
    ))
}

/// The volume a restore without `volume_id` makes (Cinder's: the backup's size, named
/// `restore_backup_<id>` unless named, the project's default type, the backup's zone).
async fn new_volume(
    state: &super::AppState,
    ctx: &Ctx,
    b: &BackupRow,
    name: Option<String>,
) -> Result<VolumeRow, ApiError> {
    let volume_type = super::types::effective_default(state, ctx).await?;
    let zones = state.manager.availability_zones();
    let availability_zone = b
        .availability_zone
        .clone()
        .filter(|z| zones.iter().any(|k| k == z))
        .or_else(|| {
            zones
                .contains(&state.default_availability_zone)
                .then(|| state.default_availability_zone.clone())
        })
        .or_else(|| zones.first().map(|z| z.to_string()))
        .unwrap_or_else(|| state.default_availability_zone.clone());
    let now = time::now();
    Ok(VolumeRow {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        name: Some(name.unwrap_or_else(|| format!("restore_backup_{}", b.id))),
        description: Some("auto-created_from_restore_from_backup".into()),
        size: b.size,
        status: VolumeStatus::Creating,
        attach_status: AttachStatus::Detached,
        availability_zone,
        volume_type_id: volume_type.as_ref().map(|t| t.id.clone()),
        volume_type_name: volume_type.as_ref().map(|t| t.name.clone()),
        host: None,
        provider_location: None,
        provider_auth: None,
        snapshot_id: None,
        source_volid: None,
        bootable: false,
        multiattach: false,
        created_at: now.clone(),
        updated_at: Some(now),
        launched_at: None,
        revision: 0,
        migration_status: None,
        name_id: None,
        metadata: BTreeMap::new(),
        admin_metadata: BTreeMap::new(),
        image_metadata: BTreeMap::new(),
        attachments: Vec::new(),
    })
}

/// A backup's admin actions: `os-reset_status` and `os-force_delete`.
#[utoipa::path(post, path = "/v3/backups/{id}/action", tag = "backups", params(("id" = String, Path)), request_body = super::openapi::Action, responses((status = 202, description = "Accepted."), (status = 400, description = "Not an action backups take, or a status it cannot be set to."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn action(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let b = visible::backup(&state, &ctx, &id).await?;
    let map = super::parse_body(&body)?;
    let (name, args) =
        super::input::one_action(&map, "{\"os-reset_status\": {\"status\": \"available\"}}")?;
    match name.as_str() {
        "os-reset_status" => {
            let allowed = || {
                BackupStatus::RESETTABLE
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let status = match args.get("status") {
                Some(Value::String(v)) => v
                    .parse::<BackupStatus>()
                    .ok()
                    .filter(|st| BackupStatus::RESETTABLE.contains(st))
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
            state.db.reset_backup_status(&b.id, status).await?;
            tracing::warn!(backup_id = %b.id, from = %b.status, to = %status, user = %ctx.user_id, "backup status reset by an administrator");
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        "os-force_delete" => {
            state
                .manager
                .request_delete_backup(&b, true, &ctx.request_id)
                .await?;
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        other => Err(ApiError::bad_request(format!(
            "There is no such action: {other} (backups take os-reset_status and os-force_delete)."
        ))),
    }
}

/// What an exported record carries: everything an import needs to find the backup's
/// objects again and describe it.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    volume_id: String,
    #[serde(default)]
    snapshot_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    availability_zone: Option<String>,
    container: String,
    size: i64,
    #[serde(default)]
    object_count: i64,
    #[serde(default)]
    stored_bytes: i64,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    is_incremental: bool,
    #[serde(default)]
    data_timestamp: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    created_at: String,
}

#[utoipa::path(get, path = "/v3/backups/{id}/export_record", tag = "backups", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::BackupRecordBody), (status = 400, description = "The backup is not available."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn export_record(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = visible::backup(&state, &ctx, &id).await?;
    if b.status != BackupStatus::Available {
        return Err(ApiError::bad_request(format!(
            "Invalid backup: Backup status must be available and not {}.",
            b.status
        )));
    }
    let service = state.manager.backup_service().ok_or_else(no_service)?;
    let record = Record {
        id: b.id.clone(),
        volume_id: b.volume_id.clone(),
        snapshot_id: b.snapshot_id.clone(),
        name: b.name.clone(),
        description: b.description.clone(),
        availability_zone: b.availability_zone.clone(),
        container: b
            .container
            .clone()
            .or_else(|| state.manager.default_backup_container())
            .unwrap_or_default(),
        size: b.size,
        object_count: b.object_count,
        stored_bytes: b.stored_bytes,
        parent_id: b.parent_id.clone(),
        is_incremental: b.is_incremental,
        data_timestamp: b.data_timestamp.clone(),
        metadata: b.metadata.clone(),
        created_at: b.created_at.clone(),
    };
    let url = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&record).expect("a record serialises"));
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "backup-record": { "backup_service": service, "backup_url": url } }),
    ))
}

fn no_service() -> ApiError {
    ApiError::not_found(
        "Service cinder-backup could not be found: this host runs no backup store (an administrator configures one under [backup]).",
    )
}

#[utoipa::path(post, path = "/v3/backups/import_record", tag = "backups", request_body = super::openapi::BackupRecordBody, responses((status = 201, description = "Imported.", body = super::openapi::BackupSummaryBody), (status = 400, description = "The record cannot be read, names another service, its objects are not in the store, or the backup exists."), (status = 403, description = "Policy does not allow it to the caller."), (status = 413, description = "Over quota.")))]
async fn import_record(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let obj = body_element(&body, "backup-record")?;
    let service = opt_string(&obj, "backup_service")?;
    let url = match obj.get("backup_url") {
        Some(Value::String(u)) => Some(u.clone()),
        _ => None,
    };
    let (Some(service), Some(url)) = (service, url) else {
        return Err(ApiError::bad_request(
            "Incorrect request body format: backup-record needs backup_service and backup_url, as export_record gives them.",
        ));
    };
    let ours = state.manager.backup_service().ok_or_else(no_service)?;
    if service != ours {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: the record's backup_service {service} is not this host's ({ours}); import it where that service runs."
        )));
    }
    let record: Record = base64::engine::general_purpose::STANDARD
        .decode(url.trim())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input received: Can't parse backup record: backup_url must be the base64 record export_record gave.",
            )
        })?;
    if uuid::Uuid::parse_str(&record.id).is_err() || record.size < 0 {
        return Err(ApiError::bad_request(
            "Invalid input received: Can't parse backup record: its id is not a UUID or its size is negative.",
        ));
    }
    if state.db.get_backup(&record.id).await?.is_some() {
        return Err(ApiError::bad_request(
            "Invalid backup: Backup already exists in database.",
        ));
    }
    state
        .manager
        .backup_objects_present(&record.container, &record.id)
        .await?;
    let now = time::now();
    let row = BackupRow {
        id: record.id,
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        volume_id: record.volume_id,
        snapshot_id: record.snapshot_id,
        status: BackupStatus::Available,
        name: record.name,
        description: record.description,
        availability_zone: record.availability_zone,
        container: Some(record.container),
        size: record.size,
        object_count: record.object_count,
        stored_bytes: record.stored_bytes,
        fail_reason: None,
        parent_id: record.parent_id,
        is_incremental: record.is_incremental,
        num_dependent_backups: 0,
        data_timestamp: record.data_timestamp,
        host: Some(state.manager.host_name.clone()),
        service: Some(ours),
        temp_volume_id: None,
        temp_snapshot_id: None,
        restore_volume_id: None,
        progress: 0,
        progress_total: 0,
        metadata: record.metadata,
        created_at: record.created_at,
        updated_at: Some(now),
    };
    match state.db.import_backup(&row).await? {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::bad_request(
                "Invalid backup: Backup already exists in database.",
            ));
        }
        Err(over) => return Err(over.into()),
    }
    tracing::info!(backup_id = %row.id, user = %ctx.user_id, "backup record imported");
    Ok(reply(
        &ctx,
        StatusCode::CREATED,
        json!({ "backup": views::backup_summary(&ctx, &row) }),
    ))
}

/// Ashlar's: how far a running create or restore is (bytes of the volume read or
/// written), for clients that show a progress bar; Cinder's view has no such field.
#[utoipa::path(get, path = "/v3/backups/{id}/progress", tag = "backups", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::BackupProgressBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn progress(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = visible::backup(&state, &ctx, &id).await?;
    let percent = if b.progress_total > 0 {
        (b.progress as f64 * 100.0 / b.progress_total as f64).min(100.0)
    } else if b.status == BackupStatus::Available && b.progress_total == 0 {
        100.0
    } else {
        0.0
    };
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "progress": {
            "backup_id": b.id,
            "status": b.status,
            "done_bytes": b.progress,
            "total_bytes": b.progress_total,
            "percent": (percent * 10.0).round() / 10.0,
        } }),
    ))
}
