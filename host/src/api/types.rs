//! `/v3/{project_id}/types` and their extra specs. Changing types is for administrators.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::input::{Body, Keys, Text, body_bool, check_key, opt_text, string_map};
use super::{ApiError, Ctx, State, body_element, reply, views};
use crate::db::VolumeType;

const MANAGE: &str = "volume_extension:types_manage";
const SPECS_MANAGE: &str = "volume_extension:types_extra_specs:create";

pub fn routes() -> Router<std::sync::Arc<super::AppState>> {
    Router::new()
        .route("/v3/types", get(list).post(create))
        .route("/v3/types/default", get(default_type))
        .route("/v3/types/{id}", get(show).put(update).delete(delete))
        .route(
            "/v3/types/{id}/extra_specs",
            get(specs_list).post(specs_set),
        )
        .route(
            "/v3/types/{id}/extra_specs/{key}",
            get(spec_show).put(spec_put).delete(spec_delete),
        )
}

async fn find(state: &super::AppState, ctx: &Ctx, id: &str) -> Result<VolumeType, ApiError> {
    match state.db.get_volume_type(id).await? {
        Some(t) if t.is_public || ctx.is_admin => Ok(t),
        _ => Err(ApiError::not_found(format!(
            "Volume type {id} could not be found."
        ))),
    }
}

async fn list(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    let items: Vec<Value> = state
        .db
        .list_volume_types(ctx.is_admin)
        .await?
        .iter()
        .map(|t| views::volume_type(&ctx, t))
        .collect();
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_types": items }),
    ))
}

async fn default_type(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, crate::volume::types::DEFAULT_VOLUME_TYPE).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type": views::volume_type(&ctx, &t) }),
    ))
}

async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type": views::volume_type(&ctx, &t) }),
    ))
}

async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.require_admin(MANAGE)?;
    let t = body_element(&body, "volume_type")?;
    let name = opt_text(&t, "name", Text::Line)?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "name",
                t.get("name").unwrap_or(&Value::Null),
                "A volume type needs a non-empty name.",
            )
        })?;
    let description = opt_text(&t, "description", Text::Prose)?;
    let is_public = match t
        .get("os-volume-type-access:is_public")
        .or(t.get("is_public"))
    {
        None | Some(Value::Null) => true,
        Some(v) => body_bool("os-volume-type-access:is_public", v)?,
    };
    let specs = match t.get("extra_specs") {
        None | Some(Value::Null) => Vec::new(),
        // A type's extra specs given at creation may have spaces in their keys, as
        // Cinder's `extra_specs_with_null` allows.
        Some(v) => string_map(
            "extra_specs",
            v,
            Keys::Metadata,
            state.input_limits.max_metadata_items,
        )?,
    };
    let created = state
        .db
        .create_volume_type(&name, description.as_deref(), is_public, &specs)
        .await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type": views::volume_type(&ctx, &created) }),
    ))
}

async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.require_admin(MANAGE)?;
    let existing = find(&state, &ctx, &id).await?;
    let t = body_element(&body, "volume_type")?;
    let name = opt_text(&t, "name", Text::Line)?;
    let description = opt_text(&t, "description", Text::Prose)?;
    let is_public = match t.get("is_public") {
        None | Some(Value::Null) => None,
        Some(v) => Some(body_bool("is_public", v)?),
    };
    state
        .db
        .update_volume_type(
            &existing.id,
            name.as_deref(),
            description.as_deref(),
            is_public,
        )
        .await?;
    let t = find(&state, &ctx, &existing.id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type": views::volume_type(&ctx, &t) }),
    ))
}

async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_admin(MANAGE)?;
    let t = find(&state, &ctx, &id).await?;
    if t.name == crate::volume::types::DEFAULT_VOLUME_TYPE {
        return Err(ApiError::bad_request(
            "The default volume type cannot be deleted.",
        ));
    }
    match state.db.delete_volume_type(&t.id).await {
        Ok(_) => Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null)),
        Err(crate::db::DbError::Conflict(m)) => Err(ApiError::bad_request(m)),
        Err(e) => Err(e.into()),
    }
}

async fn specs_list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "extra_specs": views::metadata(&t.extra_specs) }),
    ))
}

async fn specs_set(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.require_admin(SPECS_MANAGE)?;
    let t = find(&state, &ctx, &id).await?;
    let map = super::parse_body(&body)?;
    let max_items = state.input_limits.max_metadata_items;
    let specs = string_map(
        "extra_specs",
        map.get("extra_specs").ok_or_else(|| {
            ApiError::bad_request("Missing required element 'extra_specs' in request body.")
        })?,
        Keys::ExtraSpecs,
        max_items,
    )?;
    let added = specs
        .iter()
        .filter(|(k, _)| !t.extra_specs.iter().any(|(e, _)| e == k))
        .count();
    super::input::check_item_count("extra_specs", t.extra_specs.len() + added, max_items)?;
    state.db.set_extra_specs(&t.id, &specs).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "extra_specs": views::metadata(&specs) }),
    ))
}

async fn spec_show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, &id).await?;
    match t.extra_specs.iter().find(|(k, _)| *k == key) {
        Some((k, v)) => Ok(reply(&ctx, StatusCode::OK, json!({ k: v }))),
        None => Err(ApiError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        ))),
    }
}

async fn spec_put(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.require_admin(SPECS_MANAGE)?;
    let t = find(&state, &ctx, &id).await?;
    let map = super::parse_body(&body)?;
    check_key("extra_specs", &key, Keys::ExtraSpecs)?;
    let max_items = state.input_limits.max_metadata_items;
    let specs = string_map(
        "extra_specs",
        &Value::Object(map),
        Keys::ExtraSpecs,
        max_items,
    )?;
    if specs.len() != 1 || specs[0].0 != key {
        return Err(ApiError::bad_request(
            "Request body and URI mismatch: the body must hold exactly the key in the URL.",
        ));
    }
    if !t.extra_specs.iter().any(|(k, _)| *k == key) {
        super::input::check_item_count("extra_specs", t.extra_specs.len() + 1, max_items)?;
    }
    state.db.set_extra_specs(&t.id, &specs).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ key: specs[0].1.clone() }),
    ))
}

async fn spec_delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.require_admin(SPECS_MANAGE)?;
    let t = find(&state, &ctx, &id).await?;
    if !state.db.delete_extra_spec(&t.id, &key).await? {
        return Err(ApiError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        )));
    }
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}
