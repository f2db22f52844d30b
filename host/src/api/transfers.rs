//! Volume transfers: `/v3/{project_id}/os-volume-transfer` (Cinder's extension) and
//! `/v3/{project_id}/volume-transfers` (its v3 resource, which takes `no_snapshots` from
//! 3.55). Both serve the same transfers with Cinder's views: 3.55 adds `no_snapshots`,
//! 3.57 `source_project_id`, `destination_project_id` and `accepted`.
//!
//! The owner project sees and cancels its transfers (an administrator any, and lists
//! them all with `all_tenants`); any project that knows a transfer's id and key may
//! accept it, which is what a transfer is for.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Text, body_bool, check_text};
use super::{ApiError, Ctx, State, body_element, reply, visible};
use crate::db::TransferRow;

/// Which of the two collections a request came through.
#[derive(Clone, Copy)]
enum Collection {
    /// `os-volume-transfer`: no `no_snapshots` in a create.
    Extension,
    /// `volume-transfers`: `no_snapshots` in a create from 3.55.
    V3,
}

/// Cinder serves transfers twice: the old extension and `/volume-transfers` (3.55).
pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_ext, list_ext))
        .routes(routes!(detail_ext))
        .routes(routes!(show, delete))
        .routes(routes!(accept))
        .routes(routes!(create_v3, list_v3))
        .routes(routes!(detail_v3))
        .routes(routes!(show_v3, delete_v3))
        .routes(routes!(accept_v3))
}

/// `self` and `bookmark` links, under `os-volume-transfer` whichever collection was
/// asked (Cinder's view builder names that one).
fn links(ctx: &Ctx, id: &str) -> Value {
    json!([
        {"href": format!("{}/v3/{}/os-volume-transfer/{id}", ctx.base, ctx.project_id), "rel": "self"},
        {"href": format!("{}/{}/os-volume-transfer/{id}", ctx.base, ctx.project_id), "rel": "bookmark"},
    ])
}

/// The summary view (lists, and the answer to an accept).
fn summary(ctx: &Ctx, t: &TransferRow) -> Value {
    json!({
        "id": t.id,
        "volume_id": t.volume_id,
        "name": t.display_name,
        "links": links(ctx, &t.id),
    })
}

/// The detail view (show, detailed lists), and with the key the create view.
fn detail(ctx: &Ctx, t: &TransferRow, auth_key: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(t.id));
    o.insert("created_at".into(), json!(t.created_at));
    o.insert("name".into(), json!(t.display_name));
    o.insert("volume_id".into(), json!(t.volume_id));
    if let Some(key) = auth_key {
        o.insert("auth_key".into(), json!(key));
    }
    o.insert("links".into(), links(ctx, &t.id));
    if ctx.version.at_least(55) {
        o.insert("no_snapshots".into(), json!(t.no_snapshots));
    }
    if ctx.version.at_least(57) {
        o.insert(
            "destination_project_id".into(),
            json!(t.destination_project_id),
        );
        o.insert("source_project_id".into(), json!(t.source_project_id));
        o.insert("accepted".into(), json!(t.accepted));
    }
    Value::Object(o)
}

/// Cinder's schema refuses properties it does not name.
fn only(obj: &Map<String, Value>, element: &str, allowed: &[&str]) -> Result<(), ApiError> {
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        element,
        &Value::Object(obj.clone()),
        format!(
            "Additional properties are not allowed ({} {} unexpected); it takes only {}.",
            extra.join(", "),
            if extra.len() == 1 { "was" } else { "were" },
            allowed.join(", ")
        ),
    ))
}

#[utoipa::path(get, path = "/v3/os-volume-transfer", tag = "transfers", params(super::openapi::PageParams), responses((status = 200, description = "OK.", body = super::openapi::TransferList)))]
async fn list_ext(s: State, c: Ctx, q: Query<Vec<(String, String)>>) -> Result<Response, ApiError> {
    list(s, c, q, false).await
}

#[utoipa::path(get, path = "/v3/os-volume-transfer/detail", tag = "transfers", params(super::openapi::PageParams), responses((status = 200, description = "OK.", body = super::openapi::TransferList)))]
async fn detail_ext(
    s: State,
    c: Ctx,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    list(s, c, q, true).await
}

#[utoipa::path(get, path = "/v3/volume-transfers", tag = "transfers", params(super::openapi::PageParams), responses((status = 200, description = "OK.", body = super::openapi::TransferList)))]
async fn list_v3(s: State, c: Ctx, q: Query<Vec<(String, String)>>) -> Result<Response, ApiError> {
    list(s, c, q, false).await
}

#[utoipa::path(get, path = "/v3/volume-transfers/detail", tag = "transfers", params(super::openapi::PageParams), responses((status = 200, description = "OK.", body = super::openapi::TransferList)))]
async fn detail_v3(
    s: State,
    c: Ctx,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    list(s, c, q, true).await
}

#[utoipa::path(get, path = "/v3/volume-transfers/{id}", tag = "transfers", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::TransferBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show_v3(s: State, c: Ctx, p: Path<String>) -> Result<Response, ApiError> {
    show(s, c, p).await
}

#[utoipa::path(delete, path = "/v3/volume-transfers/{id}", tag = "transfers", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete_v3(s: State, c: Ctx, p: Path<String>) -> Result<Response, ApiError> {
    delete(s, c, p).await
}

#[utoipa::path(post, path = "/v3/volume-transfers/{id}/accept", tag = "transfers", params(("id" = String, Path)), request_body = super::openapi::TransferAcceptRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::TransferBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 413, description = "Over quota or over a size limit.")))]
async fn accept_v3(s: State, c: Ctx, p: Path<String>, b: Body) -> Result<Response, ApiError> {
    accept(s, c, p, b).await
}

#[utoipa::path(post, path = "/v3/os-volume-transfer", tag = "transfers", request_body = super::openapi::TransferCreateRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::TransferBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn create_ext(state: State, ctx: Ctx, body: Body) -> Result<Response, ApiError> {
    create(state, ctx, body, Collection::Extension).await
}

#[utoipa::path(post, path = "/v3/volume-transfers", tag = "transfers", request_body = super::openapi::TransferCreateRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::TransferBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn create_v3(state: State, ctx: Ctx, body: Body) -> Result<Response, ApiError> {
    create(state, ctx, body, Collection::V3).await
}

async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
    collection: Collection,
) -> Result<Response, ApiError> {
    let t = body_element(&body, "transfer")?;
    let takes_no_snapshots = matches!(collection, Collection::V3) && ctx.version.at_least(55);
    if takes_no_snapshots {
        only(&t, "transfer", &["volume_id", "name", "no_snapshots"])?;
    } else {
        only(&t, "transfer", &["volume_id", "name"])?;
    }
    let volume_id = match t.get("volume_id") {
        None => {
            return Err(ApiError::invalid_field(
                "transfer",
                &Value::Object(t.clone()),
                "'volume_id' is a required property",
            ));
        }
        Some(Value::String(id)) if uuid::Uuid::parse_str(id).is_ok() => id.clone(),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "volume_id",
                other,
                format!("{other} is not a 'uuid'; give the id of the volume to transfer."),
            ));
        }
    };
    let name = match t.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => {
            check_text("name", n, Text::Line)?;
            let trimmed = n.trim();
            if trimmed.is_empty() || trimmed.len() != n.len() {
                return Err(ApiError::invalid_field(
                    "name",
                    &json!(n),
                    "It may not be empty nor start or end with spaces.",
                ));
            }
            Some(trimmed.to_string())
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                "name",
                other,
                format!("{other} is not of type 'string', 'null'"),
            ));
        }
    };
    let no_snapshots = match t.get("no_snapshots") {
        Some(v) => body_bool("no_snapshots", v)?,
        None => false,
    };
    let volume = visible::volume(&state, &ctx, &volume_id).await?;
    let (transfer, auth_key) = state
        .manager
        .request_transfer(&volume, name, no_snapshots, state.transfer_key_length)
        .await?;
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "transfer": detail(&ctx, &transfer, Some(&auth_key)) }),
    ))
}

/// Cinder's `common.limited`: `offset` and `limit`, each a non-negative integer.
fn window(params: &[(String, String)]) -> Result<(usize, Option<usize>), ApiError> {
    let mut offset = 0;
    let mut limit = None;
    for (k, v) in params {
        let n = || {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{k} param must be an integer")))
                .and_then(|n| {
                    usize::try_from(n)
                        .map_err(|_| ApiError::bad_request(format!("{k} param must be positive")))
                })
        };
        match k.as_str() {
            "offset" => offset = n()?,
            "limit" => limit = Some(n()?),
            _ => {}
        }
    }
    Ok((offset, limit))
}

async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
    detailed: bool,
) -> Result<Response, ApiError> {
    let (offset, limit) = window(&params)?;
    let all = ctx.is_admin && params.iter().any(|(k, _)| k == "all_tenants");
    let rows = state
        .db
        .list_transfers((!all).then_some(ctx.project_id.as_str()))
        .await?;
    let views: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|t| {
            if detailed {
                detail(&ctx, t, None)
            } else {
                summary(&ctx, t)
            }
        })
        .collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "transfers": views })))
}

/// A live transfer the caller owns (or any, for an administrator).
async fn owned(state: &super::AppState, ctx: &Ctx, id: &str) -> Result<TransferRow, ApiError> {
    match state.db.get_transfer(id).await? {
        Some(t) if ctx.may_see(&t.source_project_id) => Ok(t),
        _ => Err(ApiError::not_found(format!(
            "Transfer {id} could not be found."
        ))),
    }
}

#[utoipa::path(get, path = "/v3/os-volume-transfer/{id}", tag = "transfers", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::TransferBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = owned(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "transfer": detail(&ctx, &t, None) }),
    ))
}

#[utoipa::path(delete, path = "/v3/os-volume-transfer/{id}", tag = "transfers", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = owned(&state, &ctx, &id).await?;
    state.manager.cancel_transfer(&t).await?;
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

#[utoipa::path(post, path = "/v3/os-volume-transfer/{id}/accept", tag = "transfers", params(("id" = String, Path)), request_body = super::openapi::TransferAcceptRequest, responses((status = 202, description = "Accepted; the work goes on in the background.", body = super::openapi::TransferBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 413, description = "Over quota or over a size limit.")))]
async fn accept(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let a = body_element(&body, "accept")?;
    only(&a, "accept", &["auth_key"])?;
    let auth_key = match a.get("auth_key") {
        Some(Value::String(k)) => k.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "auth_key",
                other,
                format!("{other} is not of type 'string', 'integer'"),
            ));
        }
        None => {
            return Err(ApiError::invalid_field(
                "accept",
                &Value::Object(a.clone()),
                "'auth_key' is a required property",
            ));
        }
    };
    // Any project may accept: the transfer is found whoever owns it, and the key decides.
    let t = state
        .db
        .get_transfer(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Transfer {id} could not be found.")))?;
    let accepted = state
        .manager
        .accept_transfer(&t, &auth_key, &ctx.user_id, &ctx.project_id)
        .await?;
    Ok(reply(
        &ctx,
        StatusCode::ACCEPTED,
        json!({ "transfer": summary(&ctx, &accepted) }),
    ))
}
