//! `/v3/{project_id}/qos-specs`: QoS specs and their association with volume types, for
//! administrators (Cinder's `qos_specs_manage`). Front-end specs reach the hypervisor in
//! an attachment's connection info (`data.qos_specs`), back-end specs the driver with the
//! volume (`volume/attach.rs`, `volume/flows.rs`).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, string_map};
use super::{ApiError, Ctx, State, body_element, reply, views};
use crate::db::{QosConsumer, QosSpecs};

/// At most this many keys in one request (the body limit bounds it too).
const MAX_KEYS: usize = 1024;

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(delete_keys))
        .routes(routes!(associations))
        .routes(routes!(associate))
        .routes(routes!(disassociate))
        .routes(routes!(disassociate_all))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No such QoS spec {id}."))
}

async fn find(state: &super::AppState, id: &str) -> Result<QosSpecs, ApiError> {
    state
        .db
        .get_qos_specs(id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// A body's key/value pairs, and its `consumer` apart (`None`: not given).
type SpecsAndConsumer = (Vec<(String, String)>, Option<QosConsumer>);

/// The key/value pairs of a body, `consumer` apart and checked.
fn specs_and_consumer(obj: &Map<String, Value>) -> Result<SpecsAndConsumer, ApiError> {
    let mut specs = string_map(
        "qos_specs",
        &Value::Object(obj.clone()),
        Keys::Metadata,
        MAX_KEYS,
    )?;
    let consumer = match specs.iter().position(|(k, _)| k == "consumer") {
        None => None,
        Some(i) => {
            let (_, c) = specs.remove(i);
            Some(QosConsumer::parse(&c).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid qos specs: Valid consumer of QoS specs are: ['front-end', 'back-end', 'both'] (not '{c}')"
                ))
            })?)
        }
    };
    Ok((specs, consumer))
}

#[utoipa::path(get, path = "/v3/qos-specs", tag = "qos-specs", responses((status = 200, description = "OK.", body = super::openapi::QosSpecsList), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn list(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    let all: Vec<Value> = state
        .db
        .list_qos_specs()
        .await?
        .iter()
        .map(views::qos_specs)
        .collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "qos_specs": all })))
}

/// `POST /qos-specs` `{"qos_specs": {"name": N, "consumer"?: C, KEY: VALUE…}}`; the consumer
/// is `back-end` unless given.
#[utoipa::path(post, path = "/v3/qos-specs", tag = "qos-specs", request_body = super::openapi::QosSpecsCreateRequest, responses((status = 200, description = "OK.", body = super::openapi::QosSpecsBody), (status = 403, description = "Policy does not allow it to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    let mut q = body_element(&body, "qos_specs")?;
    let name = match q.remove("name") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_field(
                "qos_specs",
                &Value::Object(q),
                "'name' is a required property",
            ));
        }
        Some(Value::String(n)) => n.trim().to_string(),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "name",
                &other,
                format!("{other} is not of type 'string'"),
            ));
        }
    };
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "An invalid 'name' value was provided. The 'name' can not be empty.",
        ));
    }
    super::input::check_text("name", &name, super::input::Text::Line)?;
    let (specs, consumer) = specs_and_consumer(&q)?;
    let created = state
        .db
        .create_qos_specs(&name, consumer.unwrap_or(QosConsumer::BackEnd), &specs)
        .await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        views::qos_specs_detail(&ctx, &created),
    ))
}

#[utoipa::path(get, path = "/v3/qos-specs/{id}", tag = "qos-specs", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::QosSpecsBody), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let q = find(&state, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        views::qos_specs_detail(&ctx, &q),
    ))
}

/// `PUT /qos-specs/{id}` `{"qos_specs": {KEY: VALUE…}}` sets keys (and the consumer) and
/// answers the body it was given, as Cinder does.
#[utoipa::path(put, path = "/v3/qos-specs/{id}", tag = "qos-specs", params(("id" = String, Path)), request_body = super::openapi::QosSpecsKeys, responses((status = 200, description = "OK.", body = super::openapi::QosSpecsKeys), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let q = body_element(&body, "qos_specs")?;
    let (specs, consumer) = specs_and_consumer(&q)?;
    if !state.db.update_qos_specs(&id, consumer, &specs).await? {
        return Err(not_found(&id));
    }
    Ok(reply(&ctx, StatusCode::OK, json!({ "qos_specs": q })))
}

/// `PUT /qos-specs/{id}/delete_keys` `{"keys": [KEY…]}`: all of them, or none if one is
/// missing (404 naming it).
#[utoipa::path(put, path = "/v3/qos-specs/{id}/delete_keys", tag = "qos-specs", params(("id" = String, Path)), request_body = super::openapi::QosDeleteKeys, responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn delete_keys(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let map = super::parse_body(&body)?;
    if let Some(extra) = map.keys().find(|k| *k != "keys") {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute keys. Additional properties are not allowed ('{extra}' was unexpected): send {{\"keys\": [\"key\", …]}}."
        )));
    }
    let keys = match map.get("keys") {
        None => {
            return Err(ApiError::bad_request(
                "Missing required element 'keys' in request body.",
            ));
        }
        Some(Value::Array(items)) => {
            let mut keys: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(k) = item else {
                    return Err(ApiError::invalid_field(
                        "keys",
                        item,
                        format!("{item} is not of type 'string'"),
                    ));
                };
                let len = k.chars().count();
                if len == 0 || len > 255 {
                    return Err(ApiError::invalid_field(
                        "keys",
                        item,
                        "A key must be 1 to 255 characters long.",
                    ));
                }
                if keys.contains(k) {
                    return Err(ApiError::invalid_field(
                        "keys",
                        &Value::Array(items.clone()),
                        "has non-unique elements",
                    ));
                }
                keys.push(k.clone());
            }
            keys
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                "keys",
                other,
                format!("{other} is not of type 'array'"),
            ));
        }
    };
    match state.db.delete_qos_specs_keys(&id, &keys).await? {
        crate::db::QosKeysDeleted::Deleted => Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null)),
        crate::db::QosKeysDeleted::NoKey(k) => Err(ApiError::not_found(format!(
            "QoS spec {id} has no spec with key {k}."
        ))),
        crate::db::QosKeysDeleted::Gone => Err(not_found(&id)),
    }
}

/// `DELETE /qos-specs/{id}[?force=BOOL]`: refused while associated with types unless
/// forced, in Cinder's words.
#[utoipa::path(delete, path = "/v3/qos-specs/{id}", tag = "qos-specs", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let force = match params.iter().rev().find(|(k, _)| k == "force") {
        None => false,
        Some((_, v)) => crate::db::list::parse_bool(v).ok_or_else(|| {
            ApiError::bad_request(format!("Value '{v}' for 'force' is not a boolean."))
        })?,
    };
    match state.db.delete_qos_specs(&id, force).await? {
        crate::db::QosDeleted::Deleted => Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null)),
        crate::db::QosDeleted::InUse => Err(ApiError::bad_request(format!(
            "Qos specs still in use. (QoS Specs {id} is still associated with entities: disassociate them, or delete with force=true.)"
        ))),
        crate::db::QosDeleted::Gone => Err(not_found(&id)),
    }
}

#[utoipa::path(get, path = "/v3/qos-specs/{id}/associations", tag = "qos-specs", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::QosAssociations), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn associations(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let q = find(&state, &id).await?;
    let types: Vec<Value> = state
        .db
        .qos_associations(&q.id)
        .await?
        .into_iter()
        .map(|(id, name)| json!({"association_type": "volume_type", "name": name, "id": id}))
        .collect();
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "qos_associations": types }),
    ))
}

/// The `vol_type_id` query parameter, which associate and disassociate require.
fn vol_type_id(params: &[(String, String)]) -> Result<String, ApiError> {
    params
        .iter()
        .rev()
        .find(|(k, v)| k == "vol_type_id" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Volume Type id must not be None. (Send ?vol_type_id=<volume type id>.)",
            )
        })
}

/// `GET /qos-specs/{id}/associate?vol_type_id=T`: a type has at most one QoS spec.
#[utoipa::path(get, path = "/v3/qos-specs/{id}/associate", tag = "qos-specs", params(("id" = String, Path), ("vol_type_id" = String, Query, description = "The volume type.")), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn associate(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let type_id = vol_type_id(&params)?;
    match state.db.associate_qos_specs(&id, &type_id).await? {
        crate::db::QosAssociated::Associated => Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null)),
        crate::db::QosAssociated::Other(other) => Err(ApiError::bad_request(format!(
            "Invalid volume type: Type {type_id} is already associated with another qos specs: {other}"
        ))),
        crate::db::QosAssociated::NoType => Err(ApiError::not_found(format!(
            "Volume type {type_id} could not be found."
        ))),
        crate::db::QosAssociated::Gone => Err(not_found(&id)),
    }
}

/// `GET /qos-specs/{id}/disassociate?vol_type_id=T`.
#[utoipa::path(get, path = "/v3/qos-specs/{id}/disassociate", tag = "qos-specs", params(("id" = String, Path), ("vol_type_id" = String, Query, description = "The volume type.")), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn disassociate(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let type_id = vol_type_id(&params)?;
    find(&state, &id).await?;
    if !state.db.disassociate_qos_specs(&id, &type_id).await? {
        return Err(ApiError::not_found(format!(
            "Volume type {type_id} could not be found."
        )));
    }
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

/// `GET /qos-specs/{id}/disassociate_all`.
#[utoipa::path(get, path = "/v3/qos-specs/{id}/disassociate_all", tag = "qos-specs", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn disassociate_all(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find(&state, &id).await?;
    state.db.disassociate_qos_specs_all(&id).await?;
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}
