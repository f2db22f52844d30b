//! `/v3/{project_id}/volumes`: create, list, show, update, delete, metadata, actions.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, body_bool, string_map};
use super::list::{ListRequest, ListSpec};
use super::visible;
use super::{ApiError, Ctx, State, body_element, opt_string, parse_bool, reply, views};
use crate::db::{MetadataOf, VolumeRow, time};
use crate::volume::{AttachStatus, SnapshotStatus, VolumeStatus};

/// Largest volume Cinder's schema accepts, in GiB.
const MAX_SIZE_GIB: i64 = i32::MAX as i64;

/// Cinder's `resource_filters.json` for volumes, as far as Ashlar keeps the fields.
const USER_FILTERS: &[&str] = &[
    "name",
    "status",
    "metadata",
    "bootable",
    "availability_zone",
    "size",
];

const LIST: ListSpec = ListSpec {
    link_path: Some("volumes"),
    collection: "volumes",
    noun: "Volume",
    user_filters: USER_FILTERS,
    listing: &crate::db::VOLUME_LIST,
    paging_since: 0,
};

const LIST_DETAIL: ListSpec = ListSpec {
    link_path: Some("volumes/detail"),
    ..LIST
};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(list_detail))
        .routes(routes!(summary))
        .routes(routes!(show, update, delete))
        .routes(routes!(action))
}

/// A size in GiB from JSON: an integer, or a string of digits as Cinder also accepts
/// (`parameter_types.volume_size`: `^[0-9]+$`, 1 to 2147483647).
fn parse_size(field: &str, v: &Value) -> Result<i64, ApiError> {
    let too_big = || {
        ApiError::invalid_field(
            field,
            v,
            format!("It is greater than the maximum of {MAX_SIZE_GIB}."),
        )
    };
    let n = match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i,
            (None, Some(_), _) => return Err(too_big()),
            // An integer too long for 64 bits arrives as a float with no fraction.
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() >= 9.2e18 => {
                return Err(if f > 0.0 {
                    too_big()
                } else {
                    ApiError::invalid_field(field, v, "It is less than the minimum of 1.")
                });
            }
            _ => {
                return Err(ApiError::invalid_field(
                    field,
                    v,
                    format!("{v} is not of type 'integer'"),
                ));
            }
        },
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().map_err(|_| too_big())?
        }
        Value::String(s) => {
            return Err(ApiError::invalid_field(
                field,
                v,
                format!(
                    "'{}' is not of type 'integer': give a whole number of GiB, e.g. 10.",
                    s.escape_debug()
                ),
            ));
        }
        other => {
            return Err(ApiError::invalid_field(
                field,
                other,
                format!("{other} is not of type 'integer'"),
            ));
        }
    };
    if n < 1 {
        return Err(ApiError::invalid_field(
            field,
            v,
            format!("{n} is less than the minimum of 1"),
        ));
    }
    if n > MAX_SIZE_GIB {
        return Err(ApiError::invalid_field(
            field,
            v,
            format!("{n} is greater than the maximum of {MAX_SIZE_GIB}"),
        ));
    }
    Ok(n)
}

/// Refuses a size no pool could ever hold, before anything is recorded: the largest
/// pool's ceiling bounds a new volume, the volume's own pool bounds an extend
/// (`host` is `host@backend#pool`). Pools of unknown or infinite capacity, or no
/// stats yet, let the request through to the scheduler. Answered 413 as Cinder answers
/// a size beyond its per-volume limit (`VolumeSizeExceedsLimit`).
fn check_fits_pools(
    state: &super::AppState,
    field: &str,
    size: i64,
    host: Option<&str>,
) -> Result<(), ApiError> {
    let Some((largest, own_pool)) = state.manager.size_ceiling(host) else {
        return Ok(());
    };
    let largest = largest.floor() as i64;
    if size <= largest {
        return Ok(());
    }
    let which = if own_pool {
        "the volume's pool"
    } else {
        "the largest pool"
    };
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Invalid input for field/attribute {field}. Value: {size}. Requested volume size {size}G is larger than {which} can ever hold ({largest}G); ask for at most {largest}G."
        ),
    ))
}

#[utoipa::path(post, path = "/v3/volumes", tag = "volumes", request_body = super::openapi::VolumeCreateRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::VolumeBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 413, description = "Over quota or over a size limit.")))]
async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let vol = body_element(&body, "volume")?;
    for unsupported in ["backup_id", "consistencygroup_id", "group_id"] {
        if vol.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {unsupported}: creating a volume from it is not supported by Ashlar yet."
            )));
        }
    }
    let (name, description) = super::name_and_description(&vol)?;
    let max_items = state.input_limits.max_metadata_items;
    let metadata = match vol.get("metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(m) => string_map("metadata", m, Keys::Metadata, max_items)?
            .into_iter()
            .collect(),
    };
    let multiattach = match vol.get("multiattach") {
        None | Some(Value::Null) => false,
        Some(v) => body_bool("multiattach", v)?,
    };

    // Source: a snapshot or a volume of the caller's project, usable right now.
    let snapshot = match opt_string(&vol, "snapshot_id")? {
        None => None,
        Some(id) => {
            let s = state
                .db
                .get_snapshot(&id)
                .await?
                .filter(|s| ctx.may_see(&s.project_id))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "snapshot_id",
                        &json!(id),
                        format!("Snapshot {id} could not be found."),
                    )
                })?;
            if s.status != SnapshotStatus::Available {
                return Err(ApiError::invalid_field(
                    "snapshot_id",
                    &json!(id),
                    format!(
                        "Snapshot {id} is {}; it must be available to create a volume from it.",
                        s.status
                    ),
                ));
            }
            Some(s)
        }
    };
    let source = match opt_string(&vol, "source_volid")? {
        None => None,
        Some(id) => {
            let v = state
                .db
                .get_volume(&id)
                .await?
                .filter(|v| ctx.may_see(&v.project_id))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "source_volid",
                        &json!(id),
                        format!("Volume {id} could not be found."),
                    )
                })?;
            if !VolumeStatus::CLONEABLE.contains(&v.status) {
                return Err(ApiError::invalid_field(
                    "source_volid",
                    &json!(id),
                    format!(
                        "Volume {id} is {}; it must be available to clone it.",
                        v.status
                    ),
                ));
            }
            Some(v)
        }
    };
    let image_ref = vol.get("imageRef").filter(|v| !v.is_null());
    let sources = [snapshot.is_some(), source.is_some(), image_ref.is_some()];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(ApiError::bad_request(
            "Give at most one of snapshot_id, source_volid and imageRef.",
        ));
    }
    let image = match image_ref {
        Some(r) => Some(super::images::resolve(&state, r).await?),
        None => None,
    };
    let source_size = snapshot
        .as_ref()
        .map(|s| s.volume_size)
        .or(source.as_ref().map(|v| v.size))
        .or(image.as_ref().map(super::images::default_size));
    let size = match vol.get("size") {
        None | Some(Value::Null) => source_size.ok_or_else(|| {
            ApiError::invalid_field(
                "size",
                &Value::Null,
                "size is required unless the volume is made from a snapshot, another volume or an image.",
            )
        })?,
        Some(v) => parse_size("size", v)?,
    };
    check_fits_pools(&state, "size", size, None)?;
    if let Some(image) = &image {
        super::images::check_size(image, size)?;
    }
    if let Some(min) = source_size
        && image.is_none()
        && size < min
    {
        return Err(ApiError::invalid_field(
            "size",
            &json!(size),
            format!("Volume size {size}GB cannot be smaller than the source's size {min}GB."),
        ));
    }

    // Type: by name or id, one the caller may see (Cinder's 404 otherwise, whether it
    // does not exist or is private to other projects); none means the project's default
    // type, else the configured one, as Cinder does.
    let type_ref = opt_string(&vol, "volume_type")?;
    let volume_type = match &type_ref {
        Some(t) => Some(
            state
                .db
                .visible_volume_type(t, ctx.type_visibility())
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(if super::types::is_uuid_like(t) {
                        format!("Volume type {t} could not be found.")
                    } else {
                        format!("Volume type with name {t} could not be found.")
                    })
                })?,
        ),
        None => match (&source, &snapshot) {
            (Some(src), _) => match &src.volume_type_id {
                Some(id) => state.db.get_volume_type(id).await?,
                None => None,
            },
            (None, Some(snap)) => match state
                .db
                .get_volume(&snap.volume_id)
                .await?
                .and_then(|v| v.volume_type_id)
            {
                Some(id) => state.db.get_volume_type(&id).await?,
                None => None,
            },
            (None, None) => super::types::effective_default(&state, &ctx).await?,
        },
    };

    // Availability zone: named, the source's, or the default.
    let known_zones = state.manager.availability_zones();
    let availability_zone = match opt_string(&vol, "availability_zone")? {
        Some(az) => {
            if !known_zones.contains(&az) {
                return Err(ApiError::invalid_field(
                    "availability_zone",
                    &json!(az),
                    format!(
                        "Availability zone '{az}' is invalid; known zones: {}.",
                        known_zones.join(", ")
                    ),
                ));
            }
            az
        }
        // The source's zone, else the configured default if a backend serves it, else
        // the first zone any backend serves.
        None => source
            .as_ref()
            .map(|v| v.availability_zone.clone())
            .or_else(|| {
                known_zones
                    .contains(&state.default_availability_zone)
                    .then(|| state.default_availability_zone.clone())
            })
            .or_else(|| known_zones.first().map(|z| z.to_string()))
            .unwrap_or_else(|| state.default_availability_zone.clone()),
    };

    let now = time::now();
    let row = VolumeRow {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        name,
        description,
        size,
        status: VolumeStatus::Creating,
        attach_status: AttachStatus::Detached,
        availability_zone,
        volume_type_id: volume_type.as_ref().map(|t| t.id.clone()),
        volume_type_name: volume_type.as_ref().map(|t| t.name.clone()),
        host: None,
        provider_location: None,
        provider_auth: None,
        snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
        source_volid: source.as_ref().map(|v| v.id.clone()),
        bootable: source.as_ref().is_some_and(|v| v.bootable),
        multiattach,
        created_at: now.clone(),
        updated_at: Some(now),
        launched_at: None,
        revision: 0,
        migration_status: None,
        name_id: None,
        metadata,
        admin_metadata: BTreeMap::new(),
        // A clone carries its source's image metadata, as Cinder copies it.
        image_metadata: source
            .as_ref()
            .map(|v| v.image_metadata.clone())
            .unwrap_or_default(),
        attachments: Vec::new(),
    };
    match &image {
        Some(image) => {
            state
                .manager
                .request_create_from_image(&row, &image.id, &ctx.request_id)
                .await?
        }
        None => state.manager.request_create(&row, &ctx.request_id).await?,
    }
    let view = views::volume_created(&ctx, &row);
    Ok(reply(&ctx, StatusCode::ACCEPTED, json!({ "volume": view })))
}

/// A page of volumes, and its "next" link when it is full. The page is read as ids and
/// revisions; only the volumes not already rendered at their revision for this kind of
/// caller are read in full and rendered, in one more query.
async fn page(
    state: &super::AppState,
    ctx: &Ctx,
    params: &[(String, String)],
    spec: &ListSpec,
    detail: bool,
) -> Result<Response, ApiError> {
    let req = ListRequest::parse(ctx, params, spec)?;
    let kind = views::VolumeViewKey::of(ctx, detail);
    let render = |v: &VolumeRow| -> super::view_cache::Rendered {
        let view: super::view_cache::Rendered = views::volume_json(ctx, v, detail).into();
        state
            .volume_views
            .put(&kind, &v.id, v.revision, view.clone());
        view
    };
    let (items, rendered) = if !state.volume_views.has_any(&kind) {
        // Nothing kept for this kind of caller yet: one query reads the page in full.
        let rows = req.rows(spec, state.db.list_volumes(&req.query).await)?;
        let rendered = rows.iter().map(|v| Some(render(v))).collect();
        (
            rows.into_iter().map(|v| (v.id, v.revision)).collect(),
            rendered,
        )
    } else {
        let items = req.rows(spec, state.db.list_volume_revisions(&req.query).await)?;
        let mut rendered = state.volume_views.get_many(&kind, &items);
        let missing: Vec<&str> = items
            .iter()
            .zip(&rendered)
            .filter(|(_, r)| r.is_none())
            .map(|((id, _), _)| id.as_str())
            .collect();
        if !missing.is_empty() {
            let mut fresh: HashMap<String, super::view_cache::Rendered> = state
                .db
                .volumes_by_ids(&missing)
                .await?
                .iter()
                .map(|v| (v.id.clone(), render(v)))
                .collect();
            for ((id, _), r) in items.iter().zip(rendered.iter_mut()) {
                if r.is_none() {
                    // A volume deleted since the page was read is left out, as a list
                    // read a moment later would leave it.
                    *r = fresh.remove(id);
                }
            }
        }
        (items, rendered)
    };
    let views: Vec<&[u8]> = rendered.iter().flatten().map(|v| &v[..]).collect();
    let mut body = Vec::with_capacity(views.iter().map(|v| v.len() + 1).sum::<usize>() + 256);
    body.extend_from_slice(b"{\"volumes\":[");
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(v);
    }
    body.push(b']');
    if let Some((key, value)) = req.links(
        ctx,
        spec,
        items.last().map(|(id, _)| id.as_str()),
        items.len(),
    ) {
        body.push(b',');
        serde_json::to_writer(&mut body, &key).expect("a string serialises");
        body.push(b':');
        serde_json::to_writer(&mut body, &value).expect("a value serialises");
    }
    body.push(b'}');
    Ok(super::reply_json_bytes(ctx, StatusCode::OK, body))
}

#[utoipa::path(get, path = "/v3/volumes", tag = "volumes", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::VolumeSummaryList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    page(&state, &ctx, &params, &LIST, false).await
}

#[utoipa::path(get, path = "/v3/volumes/detail", tag = "volumes", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::VolumeDetailList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    page(&state, &ctx, &params, &LIST_DETAIL, true).await
}

#[utoipa::path(get, path = "/v3/volumes/{id}", tag = "volumes", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::VolumeBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = visible::volume(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume": views::volume_detail(&ctx, &v) }),
    ))
}

#[utoipa::path(put, path = "/v3/volumes/{id}", tag = "volumes", params(("id" = String, Path)), request_body = super::openapi::VolumeUpdateRequest, responses((status = 200, description = "OK.", body = super::openapi::VolumeBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let v = visible::volume(&state, &ctx, &id).await?;
    let upd = body_element(&body, "volume")?;
    let (name, description) = super::name_and_description(&upd)?;
    let metadata = match upd.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m) => Some(string_map(
            "metadata",
            m,
            Keys::Metadata,
            state.input_limits.max_metadata_items,
        )?),
    };
    if name.is_none() && description.is_none() && metadata.is_none() {
        return Err(ApiError::bad_request(
            "Nothing to update: give name, description or metadata.",
        ));
    }
    state
        .db
        .update_volume_info(&v.id, name.as_deref(), description.as_deref())
        .await?;
    if let Some(m) = metadata {
        state
            .db
            .set_metadata(crate::db::MetadataOf::Volume, &v.id, &m, true)
            .await?;
    }
    let v = visible::volume(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume": views::volume_created(&ctx, &v) }),
    ))
}

#[utoipa::path(delete, path = "/v3/volumes/{id}", tag = "volumes", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let v = visible::volume(&state, &ctx, &id).await?;
    if let Some(c) = q.get("cascade")
        && parse_bool("cascade", &json!(c))?
    {
        return Err(ApiError::bad_request(
            "cascade=true is not supported yet: delete the volume's snapshots first.",
        ));
    }
    state
        .manager
        .request_delete(&v, false, &ctx.request_id)
        .await?;
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

/// `os-reset_status`: an administrator sets the status by hand.
async fn reset_status(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let status = match args.get("status") {
        Some(Value::String(s)) => s.parse::<VolumeStatus>().map_err(|_| {
            ApiError::invalid_field(
                "status",
                &json!(s),
                format!(
                    "It must be one of {}.",
                    VolumeStatus::RESETTABLE
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "status",
                other,
                "It must be a string.",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "os-reset_status needs `status`, e.g. {\"os-reset_status\": {\"status\": \"available\"}}.",
            ));
        }
    };
    let attach_status = match args.get("attach_status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "attached" => Some(AttachStatus::Attached),
        Some(Value::String(s)) if s == "detached" => Some(AttachStatus::Detached),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "attach_status",
                other,
                "It must be attached or detached.",
            ));
        }
    };
    state
        .manager
        .reset_status(v, status, attach_status, &ctx.user_id)
        .await?;
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

#[utoipa::path(post, path = "/v3/volumes/{id}/action", tag = "volumes", params(("id" = String, Path)), request_body = super::openapi::Action, responses((status = 200, description = "OK.", body = super::openapi::ActionResult), (status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 413, description = "Over quota or over a size limit."), (status = 501, description = "Not implemented.")))]
async fn action(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let v = visible::volume(&state, &ctx, &id).await?;
    let map = super::parse_body(&body)?;
    let (name, args) = super::input::one_action(&map, "{\"os-extend\": {\"new_size\": 2}}")?;
    let args = &args;
    match name.as_str() {
        "os-extend" => {
            let new_size = args.get("new_size").ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid input for field/attribute new_size. Value: None. new_size is required",
                )
            })?;
            let new_size = parse_size("new_size", new_size)?;
            check_fits_pools(&state, "new_size", new_size, v.host.as_deref())?;
            state
                .manager
                .request_extend(&v, new_size, &ctx.request_id)
                .await?;
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        "os-set_bootable" => {
            let bootable = args.get("bootable").ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid input for field/attribute bootable. Value: None. bootable is required: send {\"os-set_bootable\": {\"bootable\": true}}.",
                )
            })?;
            let bootable = parse_bool("bootable", bootable)?;
            if !state.db.set_volume_bootable(&v.id, bootable).await? {
                return Err(ApiError::bad_request(format!(
                    "Invalid volume: The volume {} cannot be updated during maintenance.",
                    v.id
                )));
            }
            Ok(reply(&ctx, StatusCode::OK, Value::Null))
        }
        "os-update_readonly_flag" => {
            let readonly = args.get("readonly").ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid input for field/attribute readonly. Value: None. readonly is required: send {\"os-update_readonly_flag\": {\"readonly\": true}}.",
                )
            })?;
            let readonly = parse_bool("readonly", readonly)?;
            if !state.db.set_volume_readonly(&v.id, readonly).await? {
                return Err(ApiError::bad_request(format!(
                    "Invalid volume: Volume {} status must be available to update readonly flag, but current status is: {}.",
                    v.id,
                    state
                        .db
                        .get_volume(&v.id)
                        .await?
                        .map_or("deleted", |v| v.status.as_str())
                )));
            }
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        "os-set_image_metadata" => {
            let items = match args.get("metadata") {
                Some(m @ Value::Object(_)) => string_map(
                    "metadata",
                    m,
                    Keys::Metadata,
                    state.input_limits.max_metadata_items,
                )?,
                _ => {
                    return Err(ApiError::bad_request(
                        "os-set_image_metadata needs `metadata`, an object: {\"os-set_image_metadata\": {\"metadata\": {\"image_name\": \"cirros\"}}}.",
                    ));
                }
            };
            refuse_in_maintenance(&v)?;
            let all = state
                .db
                .set_metadata(MetadataOf::VolumeImage, &v.id, &items, false)
                .await?;
            Ok(reply(&ctx, StatusCode::OK, json!({ "metadata": all })))
        }
        "os-unset_image_metadata" => {
            let Some(Value::String(key)) = args.get("key") else {
                return Err(ApiError::bad_request(
                    "os-unset_image_metadata needs `key`, a string: {\"os-unset_image_metadata\": {\"key\": \"image_name\"}}.",
                ));
            };
            refuse_in_maintenance(&v)?;
            if !state
                .db
                .delete_metadata(MetadataOf::VolumeImage, &v.id, key)
                .await?
            {
                return Err(ApiError::not_found(format!(
                    "Glance metadata for volume {} with key {key} cannot be found.",
                    v.id
                )));
            }
            Ok(reply(&ctx, StatusCode::OK, Value::Null))
        }
        "os-show_image_metadata" => Ok(reply(
            &ctx,
            StatusCode::OK,
            json!({ "metadata": v.image_metadata }),
        )),
        "os-reimage" | "os-extend_volume_completion" => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{name} is not supported by Ashlar yet."),
        )),
        "os-migrate_volume" | "os-migrate_volume_completion" | "os-retype" => {
            super::moves::volume_action(&state, &ctx, &v, name.as_str(), args)
                .await
                .expect("a move action")
        }
        "os-unmanage" => {
            state.manager.request_unmanage(&v, &ctx.request_id).await?;
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        "os-volume_upload_image" => super::images::upload(&state, &ctx, &v, args).await,
        "revert" => revert(&state, &ctx, &v, args).await,
        "os-reset_status" => reset_status(&state, &ctx, &v, args).await,
        "os-force_delete" => {
            state
                .manager
                .request_delete(&v, true, &ctx.request_id)
                .await?;
            Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
        }
        other => match super::attachments::volume_action(&state, &ctx, &v, other, args).await {
            Some(r) => r,
            None => Err(ApiError::bad_request(format!(
                "There is no such action: {other} (Ashlar supports os-extend, os-volume_upload_image, os-set_bootable, os-update_readonly_flag, os-set_image_metadata, os-unset_image_metadata, os-show_image_metadata, revert, os-reset_status, os-force_delete, os-unmanage, {}, {}).",
                super::moves::VOLUME_ACTIONS.join(", "),
                super::attachments::VOLUME_ACTIONS.join(", ")
            ))),
        },
    }
}

/// Cinder keeps a volume in maintenance from having its metadata changed.
fn refuse_in_maintenance(v: &VolumeRow) -> Result<(), ApiError> {
    if v.status == VolumeStatus::Maintenance {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: The volume metadata cannot be updated when the volume {} is in maintenance mode.",
            v.id
        )));
    }
    Ok(())
}

/// `GET /volumes/summary` (3.12): how many volumes the caller's listing holds and their
/// total size, and from 3.36 every metadata key with its distinct values.
#[utoipa::path(get, path = "/v3/volumes/summary", tag = "volumes", responses((status = 200, description = "OK.", body = super::openapi::VolumesSummary), (status = 404, description = "No such resource visible to the caller.")))]
async fn summary(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    if !ctx.version.at_least(12) {
        return Err(ApiError::not_found(
            "The volume summary needs microversion 3.12 or later (send `OpenStack-API-Version: volume 3.12`).",
        ));
    }
    // A value that is not a boolean is refused, naming it, as on every list.
    let mut all_projects = false;
    for (_, v) in params.iter().filter(|(k, _)| k == "all_tenants") {
        all_projects = parse_bool("all_tenants", &json!(v))?;
    }
    let all_projects = all_projects && ctx.is_admin;
    let project = (!all_projects).then_some(ctx.project_id.as_str());
    let (count, size, metadata) = state.db.volume_summary(project).await?;
    let mut body = json!({ "total_count": count, "total_size": size });
    if ctx.version.at_least(36) {
        body["metadata"] = json!(metadata);
    }
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume-summary": body }),
    ))
}

/// `revert` (3.40): back to the volume's latest snapshot.
async fn revert(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    if !ctx.version.at_least(40) {
        return Err(ApiError::bad_request(
            "There is no such action: revert needs microversion 3.40 or later (send `OpenStack-API-Version: volume 3.40`).",
        ));
    }
    let snapshot_id = match args.get("snapshot_id") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "revert needs `snapshot_id`, the volume's latest snapshot: {\"revert\": {\"snapshot_id\": \"…\"}}.",
            ));
        }
    };
    let snapshot = state
        .db
        .get_snapshot(&snapshot_id)
        .await?
        .filter(|s| ctx.may_see(&s.project_id))
        .ok_or_else(|| {
            ApiError::not_found(format!("Snapshot {snapshot_id} could not be found."))
        })?;
    state
        .manager
        .request_revert(v, &snapshot, &ctx.request_id)
        .await?;
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}
