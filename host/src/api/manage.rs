//! Managing existing storage (Cinder's `volume_manage` extension and its v3 resource):
//! `POST /manageable_volumes` (3.8) and the older `POST /os-volume-manage` take storage a
//! backend already holds into a new volume; `GET /manageable_volumes[/detail]` (3.8) and
//! `GET /os-volume-manage[/detail]` list what a backend holds, and `GET
//! /manageable_snapshots[/detail]` (3.8) the snapshots it holds (none from a driver that
//! does not list them, as in Cinder). Unmanage is
//! the `os-unmanage` volume action (`api/volumes.rs`). Administrators only, by Cinder's
//! default policy.
//!
//! A reference (Cinder's `ref`) reaches the driver as JSON text, exactly as the request
//! gave it (`{"source-name": "…"}` or `{"source-id": "…"}`); a driver's listing answers
//! its references in the same form.

use std::collections::BTreeMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, string_map};
use super::list::{MAX_LIMIT, integer, sort_keys};
use super::{ApiError, Ctx, State, body_element, opt_string, parse_bool, reply};
use crate::db::{SortDir, VolumeRow, time};
use crate::driver::{ManageableSnapshot, ManageableVolume};
use crate::volume::{AttachStatus, OpError, VolumeStatus};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(manage, list))
        .routes(routes!(list_detail))
        .routes(routes!(manage_legacy, list_legacy))
        .routes(routes!(list_detail_legacy))
        .routes(routes!(snapshots))
        .routes(routes!(snapshots_detail))
}

/// Cinder's `MANAGE_EXISTING_LIST`: the v3 resources start here.
const SINCE: u32 = 8;
/// `cluster` in a manage request (`VOLUME_MIGRATE_CLUSTER`).
const CLUSTER_IN_MANAGE: u32 = 16;
/// `cluster` in a listing (`MANAGE_EXISTING_CLUSTER`).
const CLUSTER_IN_LIST: u32 = 17;

fn before_v3_resource(ctx: &Ctx, what: &str) -> Result<(), ApiError> {
    if ctx.version.at_least(SINCE) {
        return Ok(());
    }
    Err(ApiError::not_found(format!(
        "{what} needs microversion 3.{SINCE} or later (send `OpenStack-API-Version: volume 3.{SINCE}`), or use os-volume-manage."
    )))
}

#[utoipa::path(post, path = "/v3/manageable_volumes", tag = "manage", request_body = super::openapi::ManageRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::VolumeBody), (status = 400, description = "Bad input: no reference, an unknown host or type."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "Below microversion 3.8."), (status = 413, description = "Over quota or over a size limit.")))]
async fn manage(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    before_v3_resource(&ctx, "POST manageable_volumes")?;
    manage_existing(&state, &ctx, &body).await
}

#[utoipa::path(post, path = "/v3/os-volume-manage", tag = "manage", request_body = super::openapi::ManageRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::VolumeBody), (status = 400, description = "Bad input: no reference, an unknown host or type."), (status = 403, description = "Policy does not allow it to the caller."), (status = 413, description = "Over quota or over a size limit.")))]
async fn manage_legacy(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    manage_existing(&state, &ctx, &body).await
}

/// Where the storage is: a backend this service knows, its key (`HOST@BACKEND` or
/// `CLUSTER@BACKEND`), the pool, and its availability zone.
struct Target {
    key: String,
    pool: Option<String>,
    zone: String,
}

/// Cinder's `get_cluster_host`: one and only one of `cluster` (from `since`) and `host`.
fn cluster_or_host(
    ctx: &Ctx,
    cluster: Option<String>,
    host: Option<String>,
    since: u32,
) -> Result<(bool, String), ApiError> {
    let clusters = ctx.version.at_least(since);
    let cluster = if clusters { cluster } else { None };
    let cluster = cluster.filter(|c| !c.is_empty());
    let host = host.filter(|h| !h.is_empty());
    match (cluster, host) {
        (Some(c), None) => Ok((true, c)),
        (None, Some(h)) => Ok((false, h)),
        _ if clusters => Err(ApiError::bad_request(
            "Invalid input received: One and only one of cluster and host must be set: give the backend as \"host\": \"HOST@BACKEND#POOL\" (or \"cluster\": \"CLUSTER@BACKEND#POOL\").",
        )),
        _ => Err(ApiError::bad_request(
            "Invalid input received: Host field is missing: give the backend as \"host\": \"HOST@BACKEND#POOL\".",
        )),
    }
}

/// The backend `name` names (`HOST@BACKEND[#POOL]`, or a cluster's), among this host's
/// backends and those other hosts report; Cinder's 400 when no service has it.
async fn find_target(
    state: &super::AppState,
    is_cluster: bool,
    name: &str,
) -> Result<Target, ApiError> {
    let (key, pool) = match name.split_once('#') {
        Some((k, p)) => (k.to_string(), Some(p.to_string()).filter(|p| !p.is_empty())),
        None => (name.to_string(), None),
    };
    let not_found = || {
        ApiError::bad_request(format!(
            "{} '{name}' not found: name a backend as {} (see GET /scheduler-stats/get_pools or os-services).",
            if is_cluster { "Cluster" } else { "Host" },
            if is_cluster {
                "CLUSTER@BACKEND#POOL"
            } else {
                "HOST@BACKEND#POOL"
            }
        ))
    };
    let m = &state.manager;
    let local = m.backends.iter().find(|(n, b)| {
        if is_cluster {
            b.config.cluster.is_some() && m.backend_key(n) == key
        } else {
            m.backend_host(n) == key
        }
    });
    let services = state.db.list_services().await?;
    let service = services.iter().find(|s| {
        s.binary == "cinder-volume"
            && if is_cluster {
                s.cluster.as_deref() == Some(key.as_str())
            } else {
                s.host == key
            }
    });
    if let Some(s) = service
        && s.disabled
    {
        return Err(ApiError::bad_request(format!(
            "Service is unavailable at this time: the volume service of {key} is disabled ({}); enable it with os-services first.",
            s.disabled_reason.as_deref().unwrap_or("no reason given")
        )));
    }
    let (key, zone) = match (local, service) {
        (Some((n, b)), _) => (m.backend_key(&n), b.availability_zone.clone()),
        (None, Some(s)) => (
            s.cluster.clone().unwrap_or_else(|| s.host.clone()),
            s.availability_zone.clone(),
        ),
        (None, None) => return Err(not_found()),
    };
    Ok(Target { key, pool, zone })
}

/// The pool a volume goes in when the request named none: the backend's only (or first)
/// pool, as its last stats report.
fn default_pool(state: &super::AppState, key: &str) -> Option<String> {
    state
        .manager
        .all_stats()
        .iter()
        .flat_map(|s| s.pools.iter())
        .find(|p| p.backend == key)
        .map(|p| p.pool.clone())
}

/// A `volume-<uuid>` name's uuid, as Cinder's `extract_id_from_volume_name`.
fn id_in_volume_name(name: &str) -> Option<&str> {
    let id = name.strip_prefix("volume-")?;
    super::types::is_uuid_like(id).then_some(id)
}

async fn manage_existing(
    state: &super::AppState,
    ctx: &Ctx,
    body: &Body,
) -> Result<Response, ApiError> {
    let vol = body_element(body, "volume")?;
    let reference = match vol.get("ref") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_field(
                "volume",
                &Value::Object(vol.clone()),
                "'ref' is a required property: name the storage to manage, e.g. \"ref\": {\"source-name\": \"NAME\"} (GET manageable_volumes lists what a backend holds).",
            ));
        }
        Some(r @ (Value::Object(_) | Value::String(_))) => r.clone(),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "ref",
                other,
                format!(
                    "{other} is not of type 'object', 'string': give e.g. {{\"source-name\": \"NAME\"}}."
                ),
            ));
        }
    };
    if let Value::Object(r) = &reference
        && r.is_empty()
    {
        return Err(ApiError::invalid_field(
            "ref",
            &reference,
            "It names nothing: give e.g. {\"source-name\": \"NAME\"} or {\"source-id\": \"ID\"}.",
        ));
    }
    let (is_cluster, name) = cluster_or_host(
        ctx,
        opt_string(&vol, "cluster")?,
        opt_string(&vol, "host")?,
        CLUSTER_IN_MANAGE,
    )?;
    let target = find_target(state, is_cluster, &name).await?;

    // Cinder refuses storage named for a volume it already has.
    if let Some(id) = reference
        .get("source-name")
        .and_then(Value::as_str)
        .and_then(id_in_volume_name)
        && state.db.get_volume(id).await?.is_some()
    {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: Unable to manage existing volume. The volume is already managed (it is volume {id})."
        )));
    }

    let type_ref = opt_string(&vol, "volume_type")?;
    let volume_type = match &type_ref {
        Some(t) => Some(
            state
                .db
                .visible_volume_type(t, ctx.type_visibility())
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid volume type: Cannot find requested '{t}' volume type (see GET /types)."
                    ))
                })?,
        ),
        None => super::types::effective_default(state, ctx).await?,
    };
    let (name, description) = super::name_and_description(&vol)?;
    let metadata = match vol.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(m) => string_map(
            "metadata",
            m,
            Keys::Metadata,
            state.input_limits.max_metadata_items,
        )?
        .into_iter()
        .collect(),
    };
    let bootable = match vol.get("bootable") {
        None | Some(Value::Null) => false,
        Some(b) => parse_bool("bootable", b)?,
    };
    let known_zones = state.manager.availability_zones();
    let availability_zone = match opt_string(&vol, "availability_zone")? {
        Some(az) if az != target.zone && !known_zones.contains(&az) => {
            return Err(ApiError::invalid_field(
                "availability_zone",
                &json!(az),
                format!(
                    "Availability zone '{az}' is invalid; the backend {} is in '{}'.",
                    target.key, target.zone
                ),
            ));
        }
        Some(az) => az,
        None => target.zone.clone(),
    };
    let pool = target
        .pool
        .clone()
        .or_else(|| default_pool(state, &target.key));
    let host = match &pool {
        Some(p) => format!("{}#{p}", target.key),
        None => target.key.clone(),
    };

    let now = time::now();
    let row = VolumeRow {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        name,
        description,
        size: 0,
        status: VolumeStatus::Managing,
        attach_status: AttachStatus::Detached,
        availability_zone,
        volume_type_id: volume_type.as_ref().map(|t| t.id.clone()),
        volume_type_name: volume_type.as_ref().map(|t| t.name.clone()),
        host: Some(host),
        provider_location: None,
        provider_auth: None,
        snapshot_id: None,
        source_volid: None,
        bootable,
        multiattach: false,
        created_at: now.clone(),
        updated_at: Some(now),
        launched_at: None,
        revision: 0,
        migration_status: None,
        name_id: None,
        metadata,
        admin_metadata: BTreeMap::new(),
        image_metadata: BTreeMap::new(),
        attachments: Vec::new(),
    };
    let reference = reference.to_string();
    state
        .manager
        .request_manage(&row, &reference, &ctx.request_id)
        .await?;
    // Cinder answers with the detail view (tempest's `manage_volume` schema).
    Ok(reply(
        ctx,
        StatusCode::ACCEPTED,
        json!({ "volume": super::views::volume_detail(ctx, &row) }),
    ))
}

#[utoipa::path(get, path = "/v3/manageable_volumes", tag = "manage", params(super::openapi::ManageableParams), responses((status = 200, description = "OK.", body = super::openapi::ManageableList), (status = 400, description = "Bad input: no host, an unknown host, a bad sort or page."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "Below microversion 3.8."), (status = 503, description = "The backend is unavailable.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    before_v3_resource(&ctx, "GET manageable_volumes")?;
    listing(&state, &ctx, &params, Of::Volumes, false).await
}

#[utoipa::path(get, path = "/v3/manageable_volumes/detail", tag = "manage", params(super::openapi::ManageableParams), responses((status = 200, description = "OK.", body = super::openapi::ManageableList), (status = 400, description = "Bad input: no host, an unknown host, a bad sort or page."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "Below microversion 3.8."), (status = 503, description = "The backend is unavailable.")))]
async fn list_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    before_v3_resource(&ctx, "GET manageable_volumes/detail")?;
    listing(&state, &ctx, &params, Of::Volumes, true).await
}

#[utoipa::path(get, path = "/v3/os-volume-manage", tag = "manage", params(super::openapi::ManageableParams), responses((status = 200, description = "OK.", body = super::openapi::ManageableList), (status = 400, description = "Bad input: no host, an unknown host, a bad sort or page."), (status = 403, description = "Policy does not allow it to the caller."), (status = 503, description = "The backend is unavailable.")))]
async fn list_legacy(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    listing(&state, &ctx, &params, Of::Volumes, false).await
}

#[utoipa::path(get, path = "/v3/os-volume-manage/detail", tag = "manage", params(super::openapi::ManageableParams), responses((status = 200, description = "OK.", body = super::openapi::ManageableList), (status = 400, description = "Bad input: no host, an unknown host, a bad sort or page."), (status = 403, description = "Policy does not allow it to the caller."), (status = 503, description = "The backend is unavailable.")))]
async fn list_detail_legacy(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    listing(&state, &ctx, &params, Of::Volumes, true).await
}

/// A driver's reference as the view shows it: the JSON object it wrote (Cinder's
/// `reference` dict), or, for a driver that answered plain text, that text as the
/// `source-name`.
fn reference_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "source-name": text }),
    }
}

/// What a listing lists.
#[derive(Clone, Copy, PartialEq)]
enum Of {
    Volumes,
    Snapshots,
}

/// One entry of either listing.
struct Entry {
    reference: String,
    size_gib: u64,
    safe_to_manage: bool,
    reason_not_safe: Option<String>,
    cinder_id: Option<String>,
    /// A snapshot's volume.
    source_reference: Option<String>,
}

impl From<ManageableVolume> for Entry {
    fn from(m: ManageableVolume) -> Entry {
        Entry {
            reference: m.reference,
            size_gib: m.size_gib,
            safe_to_manage: m.safe_to_manage,
            reason_not_safe: m.reason_not_safe,
            cinder_id: m.cinder_id,
            source_reference: None,
        }
    }
}

impl From<ManageableSnapshot> for Entry {
    fn from(m: ManageableSnapshot) -> Entry {
        Entry {
            reference: m.reference,
            size_gib: m.size_gib,
            safe_to_manage: m.safe_to_manage,
            reason_not_safe: m.reason_not_safe,
            cinder_id: m.cinder_id,
            source_reference: Some(m.source_reference),
        }
    }
}

/// Cinder's `get_manageable_resources` with its `paginate_entries_list`: sorted by
/// `reference` or `size` (default `reference`, descending), then `marker` (a reference,
/// as JSON), `offset` and `limit`.
async fn listing(
    state: &super::AppState,
    ctx: &Ctx,
    params: &[(String, String)],
    of: Of,
    detail: bool,
) -> Result<Response, ApiError> {
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v);
    let (is_cluster, name) = cluster_or_host(
        ctx,
        get("cluster").cloned(),
        get("host").cloned(),
        CLUSTER_IN_LIST,
    )?;
    let limit = match get("limit") {
        None => MAX_LIMIT,
        Some(l) => {
            let l = integer("limit", l)?;
            if l < 0 {
                return Err(ApiError::bad_request("limit param must be positive"));
            }
            l.min(MAX_LIMIT)
        }
    };
    let offset = match get("offset") {
        None => 0,
        Some(o) => {
            let o = integer("offset", o)?;
            if o < 0 {
                return Err(ApiError::bad_request("offset must be >= 0"));
            }
            o
        }
    };
    let mut sort = sort_keys(get("sort"), get("sort_key"), get("sort_dir"))?;
    if sort.is_empty() {
        sort.push(("reference".into(), SortDir::Desc));
    }
    let invalid: Vec<&str> = sort
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !matches!(*k, "reference" | "size"))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid sort keys passed: {}; sort by reference or size.",
            invalid.join(", ")
        )));
    }
    let marker = match get("marker") {
        None => None,
        Some(m) => Some(serde_json::from_str::<Value>(m).map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid input received: marker {m} can not be analysed, please use json like format: give a reference as listed, e.g. {{\"source-name\": \"NAME\"}}."
            ))
        })?),
    };

    let target = find_target(state, is_cluster, &name).await?;
    let Some(backend) = state
        .manager
        .backends
        .keys()
        .find(|n| state.manager.backend_key(n) == target.key)
    else {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: backend {} is not run by the host that answered; ask a host that runs it for what it holds.",
            target.key
        )));
    };
    let found: Vec<Entry> = match of {
        Of::Volumes => state
            .manager
            .manageable_volumes(&backend)
            .await
            .map(|f| f.into_iter().map(Entry::from).collect()),
        Of::Snapshots => state
            .manager
            .manageable_snapshots(&backend)
            .await
            .map(|f| f.into_iter().map(Entry::from).collect()),
    }
    .map_err(|e| listing_error(&target.key, e))?;

    let mut entries: Vec<(Value, String, Entry)> = found
        .into_iter()
        .map(|m| {
            let reference = reference_value(&m.reference);
            let text = reference.to_string();
            (reference, text, m)
        })
        .collect();
    entries.sort_by(|a, b| {
        for (key, dir) in &sort {
            let o = match key.as_str() {
                "size" => a.2.size_gib.cmp(&b.2.size_gib),
                _ => a.1.cmp(&b.1),
            };
            let o = if *dir == SortDir::Desc {
                o.reverse()
            } else {
                o
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let start = match &marker {
        None => 0,
        Some(m) => {
            entries.iter().position(|(r, _, _)| r == m).ok_or_else(|| {
                ApiError::bad_request(format!("Invalid input received: marker not found: {m}."))
            })? + 1
        }
    };
    let views: Vec<Value> = entries
        .into_iter()
        .skip(start + offset as usize)
        .take(limit as usize)
        .map(|(reference, _, m)| {
            let mut view = Map::new();
            view.insert("reference".into(), reference);
            view.insert("size".into(), json!(m.size_gib));
            view.insert("safe_to_manage".into(), json!(m.safe_to_manage));
            if let Some(source) = &m.source_reference {
                view.insert("source_reference".into(), reference_value(source));
            }
            if detail {
                view.insert("reason_not_safe".into(), json!(m.reason_not_safe));
                view.insert("cinder_id".into(), json!(m.cinder_id));
                view.insert("extra_info".into(), Value::Null);
            }
            Value::Object(view)
        })
        .collect();
    let key = match of {
        Of::Volumes => "manageable-volumes",
        Of::Snapshots => "manageable-snapshots",
    };
    Ok(reply(ctx, StatusCode::OK, json!({ key: views })))
}

/// A listing the backend could not give: 400 when its driver does not list, else what
/// kind of failure it was (the driver's words go to the log).
fn listing_error(backend: &str, e: OpError) -> ApiError {
    use crate::volume::FailureKind;
    tracing::warn!(backend, "listing manageable volumes failed: {e}");
    match e.kind() {
        FailureKind::Invalid => ApiError::bad_request(format!(
            "Invalid input received: the driver of backend {backend} does not list the storage it holds (get-manageable-volumes is not supported); manage storage by its reference instead."
        )),
        FailureKind::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Backend {backend} is unavailable at present: {}",
                e.hint().unwrap_or_else(|| "try again later.".into())
            ),
        ),
        FailureKind::NotFound | FailureKind::Internal => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Backend {backend} could not list the storage it holds{}; the service's log has the driver's answer.",
                e.hint().map(|h| format!(" ({h})")).unwrap_or_default()
            ),
        ),
    }
}

#[utoipa::path(get, path = "/v3/manageable_snapshots", tag = "manage", params(super::openapi::ManageableParams), responses((status = 200, description = "OK.", body = super::openapi::ManageableSnapshotList), (status = 400, description = "Bad input: no host, an unknown host, a bad sort or page."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "Below microversion 3.8."), (status = 503, description = "The backend is unavailable.")))]
async fn snapshots(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    before_v3_resource(&ctx, "GET manageable_snapshots")?;
    listing(&state, &ctx, &params, Of::Snapshots, false).await
}

#[utoipa::path(get, path = "/v3/manageable_snapshots/detail", tag = "manage", params(super::openapi::ManageableParams), responses((status = 200, description = "OK.", body = super::openapi::ManageableSnapshotList), (status = 400, description = "Bad input: no host, an unknown host, a bad sort or page."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "Below microversion 3.8."), (status = 503, description = "The backend is unavailable.")))]
async fn snapshots_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    before_v3_resource(&ctx, "GET manageable_snapshots/detail")?;
    listing(&state, &ctx, &params, Of::Snapshots, true).await
}

#[cfg(test)]
mod tests {
    use super::super::Microversion;
    use super::*;

    #[test]
    fn references_read_as_objects() {
        assert_eq!(
            reference_value(r#"{"source-name":"a"}"#),
            json!({"source-name": "a"})
        );
        assert_eq!(reference_value("plain"), json!({"source-name": "plain"}));
        assert_eq!(
            id_in_volume_name("volume-0b7a4e4e-1c1d-4bb1-8f33-5d0f3d1f2a11"),
            Some("0b7a4e4e-1c1d-4bb1-8f33-5d0f3d1f2a11")
        );
        assert_eq!(id_in_volume_name("volume-x"), None);
        assert_eq!(id_in_volume_name("data"), None);
    }

    #[test]
    fn one_of_cluster_and_host() {
        let ctx = |minor| Ctx {
            user_id: "admin".into(),
            project_id: "p".into(),
            role: crate::auth::Role::Admin,
            is_admin: true,
            version: Microversion(3, minor),
            request_id: "r".into(),
            base: "http://h".into(),
        };
        let e = cluster_or_host(&ctx(8), None, None, 16).unwrap_err();
        assert!(e.message.contains("Host field is missing"), "{}", e.message);
        let e = cluster_or_host(&ctx(16), Some("c@b".into()), Some("h@b".into()), 16).unwrap_err();
        assert!(e.message.contains("One and only one"), "{}", e.message);
        // Before 3.16 a cluster is not read at all.
        assert_eq!(
            cluster_or_host(&ctx(8), Some("c@b".into()), Some("h@b".into()), 16).unwrap(),
            (false, "h@b".into())
        );
        assert_eq!(
            cluster_or_host(&ctx(16), Some("c@b".into()), None, 16).unwrap(),
            (true, "c@b".into())
        );
    }
}
