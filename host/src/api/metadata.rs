//! Metadata of volumes and snapshots, as Cinder serves both: `/{kind}/{id}/metadata` to
//! show, merge (POST) or replace (PUT) it, `/{kind}/{id}/metadata/{key}` to show, set or
//! delete one key. One set of handlers; the resource is the route's.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, check_item_count, check_key, string_map};
use super::{ApiError, AppState, Ctx, State, reply, visible};
use crate::db::MetadataOf;

/// Each path's handlers are their own functions, so each has its own entry in the
/// document.
pub fn routes() -> OpenApiRouter<std::sync::Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(volume_show, volume_create, volume_replace))
        .routes(routes!(volume_key_show, volume_key_set, volume_key_delete))
        .routes(routes!(snapshot_show, snapshot_create, snapshot_replace))
        .routes(routes!(
            snapshot_key_show,
            snapshot_key_set,
            snapshot_key_delete
        ))
}

#[utoipa::path(get, path = "/v3/volumes/{id}/metadata", tag = "volumes", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::Metadata), (status = 404, description = "No such resource visible to the caller.")))]
async fn volume_show(s: State, c: Ctx, p: Path<String>) -> Result<Response, ApiError> {
    show(s, c, p, MetadataOf::Volume).await
}

#[utoipa::path(post, path = "/v3/volumes/{id}/metadata", tag = "volumes", params(("id" = String, Path)), request_body = super::openapi::Metadata, responses((status = 200, description = "OK.", body = super::openapi::Metadata), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn volume_create(s: State, c: Ctx, p: Path<String>, b: Body) -> Result<Response, ApiError> {
    write(s, c, p, b, MetadataOf::Volume, false).await
}

#[utoipa::path(put, path = "/v3/volumes/{id}/metadata", tag = "volumes", params(("id" = String, Path)), request_body = super::openapi::Metadata, responses((status = 200, description = "OK.", body = super::openapi::Metadata), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn volume_replace(s: State, c: Ctx, p: Path<String>, b: Body) -> Result<Response, ApiError> {
    write(s, c, p, b, MetadataOf::Volume, true).await
}

#[utoipa::path(get, path = "/v3/volumes/{id}/metadata/{key}", tag = "volumes", params(("id" = String, Path), ("key" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::Meta), (status = 404, description = "No such resource visible to the caller.")))]
async fn volume_key_show(
    s: State,
    c: Ctx,
    p: Path<(String, String)>,
) -> Result<Response, ApiError> {
    key_show(s, c, p, MetadataOf::Volume).await
}

#[utoipa::path(put, path = "/v3/volumes/{id}/metadata/{key}", tag = "volumes", params(("id" = String, Path), ("key" = String, Path)), request_body = super::openapi::Meta, responses((status = 200, description = "OK.", body = super::openapi::Meta), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn volume_key_set(
    s: State,
    c: Ctx,
    p: Path<(String, String)>,
    b: Body,
) -> Result<Response, ApiError> {
    key_set(s, c, p, b, MetadataOf::Volume).await
}

#[utoipa::path(delete, path = "/v3/volumes/{id}/metadata/{key}", tag = "volumes", params(("id" = String, Path), ("key" = String, Path)), responses((status = 200, description = "OK."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn volume_key_delete(
    s: State,
    c: Ctx,
    p: Path<(String, String)>,
) -> Result<Response, ApiError> {
    key_delete(s, c, p, MetadataOf::Volume).await
}

#[utoipa::path(get, path = "/v3/snapshots/{id}/metadata", tag = "snapshots", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::Metadata), (status = 404, description = "No such resource visible to the caller.")))]
async fn snapshot_show(s: State, c: Ctx, p: Path<String>) -> Result<Response, ApiError> {
    show(s, c, p, MetadataOf::Snapshot).await
}

#[utoipa::path(post, path = "/v3/snapshots/{id}/metadata", tag = "snapshots", params(("id" = String, Path)), request_body = super::openapi::Metadata, responses((status = 200, description = "OK.", body = super::openapi::Metadata), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn snapshot_create(s: State, c: Ctx, p: Path<String>, b: Body) -> Result<Response, ApiError> {
    write(s, c, p, b, MetadataOf::Snapshot, false).await
}

#[utoipa::path(put, path = "/v3/snapshots/{id}/metadata", tag = "snapshots", params(("id" = String, Path)), request_body = super::openapi::Metadata, responses((status = 200, description = "OK.", body = super::openapi::Metadata), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn snapshot_replace(
    s: State,
    c: Ctx,
    p: Path<String>,
    b: Body,
) -> Result<Response, ApiError> {
    write(s, c, p, b, MetadataOf::Snapshot, true).await
}

#[utoipa::path(get, path = "/v3/snapshots/{id}/metadata/{key}", tag = "snapshots", params(("id" = String, Path), ("key" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::Meta), (status = 404, description = "No such resource visible to the caller.")))]
async fn snapshot_key_show(
    s: State,
    c: Ctx,
    p: Path<(String, String)>,
) -> Result<Response, ApiError> {
    key_show(s, c, p, MetadataOf::Snapshot).await
}

#[utoipa::path(put, path = "/v3/snapshots/{id}/metadata/{key}", tag = "snapshots", params(("id" = String, Path), ("key" = String, Path)), request_body = super::openapi::Meta, responses((status = 200, description = "OK.", body = super::openapi::Meta), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn snapshot_key_set(
    s: State,
    c: Ctx,
    p: Path<(String, String)>,
    b: Body,
) -> Result<Response, ApiError> {
    key_set(s, c, p, b, MetadataOf::Snapshot).await
}

#[utoipa::path(delete, path = "/v3/snapshots/{id}/metadata/{key}", tag = "snapshots", params(("id" = String, Path), ("key" = String, Path)), responses((status = 200, description = "OK."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn snapshot_key_delete(
    s: State,
    c: Ctx,
    p: Path<(String, String)>,
) -> Result<Response, ApiError> {
    key_delete(s, c, p, MetadataOf::Snapshot).await
}

/// The resource's id and metadata, if the caller may see it.
async fn current(
    state: &AppState,
    ctx: &Ctx,
    of: MetadataOf,
    id: &str,
) -> Result<(String, BTreeMap<String, String>), ApiError> {
    Ok(match of {
        MetadataOf::Volume => {
            let v = visible::volume(state, ctx, id).await?;
            (v.id, v.metadata)
        }
        MetadataOf::VolumeAdmin => {
            let v = visible::volume(state, ctx, id).await?;
            (v.id, v.admin_metadata)
        }
        MetadataOf::VolumeImage => {
            let v = visible::volume(state, ctx, id).await?;
            (v.id, v.image_metadata)
        }
        MetadataOf::Snapshot => {
            let s = visible::snapshot(state, ctx, id).await?;
            (s.id, s.metadata)
        }
    })
}

fn no_key(of: MetadataOf, id: &str, key: &str) -> ApiError {
    let what = match of {
        MetadataOf::Volume | MetadataOf::VolumeAdmin | MetadataOf::VolumeImage => "Volume",
        MetadataOf::Snapshot => "Snapshot",
    };
    ApiError::not_found(format!("{what} {id} has no metadata with key {key}."))
}

async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    of: MetadataOf,
) -> Result<Response, ApiError> {
    let (_, metadata) = current(&state, &ctx, of, &id).await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "metadata": metadata })))
}

async fn write(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
    of: MetadataOf,
    replace: bool,
) -> Result<Response, ApiError> {
    let (id, metadata) = current(&state, &ctx, of, &id).await?;
    let map = super::parse_body(&body)?;
    let max_items = state.input_limits.max_metadata_items;
    let items = string_map(
        "metadata",
        map.get("metadata").ok_or_else(|| {
            ApiError::bad_request("Missing required element 'metadata' in request body.")
        })?,
        Keys::Metadata,
        max_items,
    )?;
    if !replace {
        let added = items
            .iter()
            .filter(|(k, _)| !metadata.contains_key(k))
            .count();
        check_item_count("metadata", metadata.len() + added, max_items)?;
    }
    let all = state.db.set_metadata(of, &id, &items, replace).await?;
    Ok(reply(&ctx, StatusCode::OK, json!({ "metadata": all })))
}

async fn key_show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    of: MetadataOf,
) -> Result<Response, ApiError> {
    let (_, metadata) = current(&state, &ctx, of, &id).await?;
    match metadata.get(&key).cloned() {
        Some(val) => Ok(reply(&ctx, StatusCode::OK, json!({ "meta": { key: val } }))),
        None => Err(no_key(of, &id, &key)),
    }
}

async fn key_set(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    body: Body,
    of: MetadataOf,
) -> Result<Response, ApiError> {
    let (id, metadata) = current(&state, &ctx, of, &id).await?;
    let map = super::parse_body(&body)?;
    check_key("meta", &key, Keys::Metadata)?;
    let max_items = state.input_limits.max_metadata_items;
    let items = string_map(
        "meta",
        map.get("meta").ok_or_else(|| {
            ApiError::bad_request("Missing required element 'meta' in request body.")
        })?,
        Keys::Metadata,
        max_items,
    )?;
    if items.len() != 1 || items[0].0 != key {
        return Err(ApiError::bad_request(
            "Request body and URI mismatch: `meta` must hold exactly the key in the URL.",
        ));
    }
    if !metadata.contains_key(&key) {
        check_item_count("metadata", metadata.len() + 1, max_items)?;
    }
    state.db.set_metadata(of, &id, &items, false).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "meta": { key: items[0].1.clone() } }),
    ))
}

async fn key_delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    of: MetadataOf,
) -> Result<Response, ApiError> {
    let (id, _) = current(&state, &ctx, of, &id).await?;
    if !state.db.delete_metadata(of, &id, &key).await? {
        return Err(no_key(of, &id, &key));
    }
    Ok(reply(&ctx, StatusCode::OK, Value::Null))
}
