//! `/v3/{project_id}/types`: volume types, their extra specs, and the projects a private
//! type is given to (Cinder's `os-volume-type-access`). Changing types is for
//! administrators. A type a caller may not see (private, and not given to their project)
//! is Cinder's 404, as if it did not exist.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Keys, Text, body_bool, check_key, opt_text, string_map};
use super::views::TypeView;
use super::{ApiError, Ctx, State, body_element, reply, views};
use crate::db::{TypeVisibility, VolumeType};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(default_type))
        .routes(routes!(show, update, delete))
        .routes(routes!(action))
        .routes(routes!(access_list))
        .routes(routes!(specs_list, specs_set))
        .routes(routes!(spec_show, spec_put, spec_delete))
}

impl Ctx {
    /// Which types the caller may see.
    pub fn type_visibility(&self) -> TypeVisibility<'_> {
        TypeVisibility {
            project_id: &self.project_id,
            is_admin: self.is_admin,
        }
    }
}

/// A type by id or name, if the caller may see it; Cinder's 404 otherwise.
pub async fn find(state: &super::AppState, ctx: &Ctx, id: &str) -> Result<VolumeType, ApiError> {
    state
        .db
        .visible_volume_type(id, ctx.type_visibility())
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume type {id} could not be found."))
}

/// The type a volume created without one takes, as Cinder's `get_default_volume_type`:
/// the project's own default (3.62) if it set one, else the configured default. `None`
/// when neither exists.
pub async fn effective_default(
    state: &super::AppState,
    ctx: &Ctx,
) -> Result<Option<VolumeType>, ApiError> {
    if let Some(d) = state.db.project_default_type(&ctx.project_id).await? {
        return find(state, ctx, &d.volume_type_id).await.map(Some);
    }
    Ok(state
        .db
        .get_volume_type(crate::volume::types::DEFAULT_VOLUME_TYPE)
        .await?)
}

/// Cinder's `_parse_is_public` for an administrator's list: absent is public types (and
/// the private ones their project was given), `none` every type, a boolean either kind.
fn is_public_filter(params: &[(String, String)]) -> Result<Option<bool>, ApiError> {
    match params.iter().rev().find(|(k, _)| k == "is_public") {
        None => Ok(Some(true)),
        Some((_, v)) if v.eq_ignore_ascii_case("none") => Ok(None),
        Some((_, v)) => crate::db::list::parse_bool(v).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid is_public filter [{v}]: use true, false or none."
            ))
        }),
    }
}

#[utoipa::path(get, path = "/v3/types", tag = "types", responses((status = 200, description = "OK.", body = super::openapi::VolumeTypeList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    // Only administrators choose; anyone else sees the public types and their own.
    let is_public = if ctx.is_admin {
        is_public_filter(&params)?
    } else {
        Some(true)
    };
    let items: Vec<Value> = state
        .db
        .list_volume_types(is_public, &ctx.project_id)
        .await?
        .iter()
        .map(|t| views::volume_type(&ctx, t, TypeView::Show))
        .collect();
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_types": items }),
    ))
}

#[utoipa::path(get, path = "/v3/types/default", tag = "types", responses((status = 200, description = "OK.", body = super::openapi::VolumeTypeBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn default_type(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    let t = effective_default(&state, &ctx)
        .await?
        .ok_or_else(|| ApiError::not_found("Default volume type can not be found."))?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type": views::volume_type(&ctx, &t, TypeView::Show) }),
    ))
}

#[utoipa::path(get, path = "/v3/types/{id}", tag = "types", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::VolumeTypeBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type": views::volume_type(&ctx, &t, TypeView::Show) }),
    ))
}

/// `is_public` as either spelling gives it (Cinder's create takes
/// `os-volume-type-access:is_public`, its update `is_public`; both take either here).
fn public_flag(t: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    for field in ["os-volume-type-access:is_public", "is_public"] {
        match t.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => return body_bool(field, v).map(Some),
        }
    }
    Ok(None)
}

#[utoipa::path(post, path = "/v3/types", tag = "types", request_body = super::openapi::VolumeTypeCreateRequest, responses((status = 200, description = "OK.", body = super::openapi::VolumeTypeBody), (status = 403, description = "Policy does not allow it to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
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
    let is_public = public_flag(&t)?.unwrap_or(true);
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
        json!({ "volume_type": views::volume_type(&ctx, &created, TypeView::Create) }),
    ))
}

#[utoipa::path(put, path = "/v3/types/{id}", tag = "types", params(("id" = String, Path)), request_body = super::openapi::VolumeTypeUpdateRequest, responses((status = 200, description = "OK.", body = super::openapi::VolumeTypeBody), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let existing = find(&state, &ctx, &id).await?;
    let t = body_element(&body, "volume_type")?;
    let name = opt_text(&t, "name", Text::Line)?;
    let description = opt_text(&t, "description", Text::Prose)?;
    let is_public = public_flag(&t)?;
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
        json!({ "volume_type": views::volume_type(&ctx, &t, TypeView::Update) }),
    ))
}

#[utoipa::path(delete, path = "/v3/types/{id}", tag = "types", params(("id" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
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

#[utoipa::path(get, path = "/v3/types/{id}/extra_specs", tag = "types", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::ExtraSpecs), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
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

#[utoipa::path(post, path = "/v3/types/{id}/extra_specs", tag = "types", params(("id" = String, Path)), request_body = super::openapi::ExtraSpecs, responses((status = 200, description = "OK.", body = super::openapi::ExtraSpecs), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn specs_set(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
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

#[utoipa::path(get, path = "/v3/types/{id}/extra_specs/{key}", tag = "types", params(("id" = String, Path), ("key" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::StringMap), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
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

#[utoipa::path(put, path = "/v3/types/{id}/extra_specs/{key}", tag = "types", params(("id" = String, Path), ("key" = String, Path)), request_body = super::openapi::StringMap, responses((status = 200, description = "OK.", body = super::openapi::StringMap), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn spec_put(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
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

#[utoipa::path(delete, path = "/v3/types/{id}/extra_specs/{key}", tag = "types", params(("id" = String, Path), ("key" = String, Path)), responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn spec_delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, &id).await?;
    if !state.db.delete_extra_spec(&t.id, &key).await? {
        return Err(ApiError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        )));
    }
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

/// Cinder's `parameter_types.uuid` (`uuidutils.is_uuid_like`): 32 hex digits, with
/// hyphens, braces or a `urn:uuid:` prefix allowed around them, as Keystone's project ids.
pub(super) fn is_uuid_like(s: &str) -> bool {
    let s = s.trim_start_matches("urn:").trim_start_matches("uuid:");
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    let hex: Vec<char> = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.iter().all(char::is_ascii_hexdigit)
}

/// `{"addProjectAccess": {"project": P}}`'s project, as Cinder's schema checks it.
fn access_project(action: &str, args: &Value) -> Result<String, ApiError> {
    let Value::Object(o) = args else {
        return Err(ApiError::invalid_field(
            action,
            args,
            format!("{args} is not of type 'object'"),
        ));
    };
    if let Some(extra) = o.keys().find(|k| *k != "project") {
        return Err(ApiError::invalid_field(
            action,
            args,
            format!("Additional properties are not allowed ('{extra}' was unexpected)"),
        ));
    }
    match o.get("project") {
        None => Err(ApiError::invalid_field(
            action,
            args,
            "'project' is a required property",
        )),
        Some(Value::String(p)) if is_uuid_like(p) => Ok(p.clone()),
        Some(v @ Value::String(p)) => Err(ApiError::invalid_field(
            "project",
            v,
            format!("'{p}' is not a 'uuid'"),
        )),
        Some(v) => Err(ApiError::invalid_field(
            "project",
            v,
            format!("{v} is not of type 'string'"),
        )),
    }
}

/// `POST /types/{id}/action`: `addProjectAccess` and `removeProjectAccess` (202).
#[utoipa::path(post, path = "/v3/types/{id}/action", tag = "types", params(("id" = String, Path)), request_body = super::openapi::Action, responses((status = 202, description = "Accepted; the work goes on in the background."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn action(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let map = super::parse_body(&body)?;
    let (name, args) = super::input::one_action(
        &map,
        "{\"addProjectAccess\": {\"project\": \"<project id>\"}}",
    )?;
    if !matches!(name.as_str(), "addProjectAccess" | "removeProjectAccess") {
        return Err(ApiError::bad_request(format!(
            "There is no such action: {name} (a volume type's actions are addProjectAccess and removeProjectAccess)."
        )));
    }
    let project = access_project(&name, &args)?;
    let t = find(&state, &ctx, &id).await?;
    if t.is_public {
        return Err(ApiError::bad_request(
            "Invalid volume type: Type access modification is not applicable to public volume type.",
        ));
    }
    if name == "addProjectAccess" {
        if !state.db.add_type_access(&t.id, &project).await? {
            return Err(ApiError::conflict(format!(
                "Volume type access for {id} / {project} combination already exists."
            )));
        }
    } else if !state.db.remove_type_access(&t.id, &project).await? {
        return Err(ApiError::not_found(format!(
            "Volume type access not found for {id} / {project} combination."
        )));
    }
    Ok(reply(&ctx, StatusCode::ACCEPTED, Value::Null))
}

/// `GET /types/{id}/os-volume-type-access`: the projects a private type is given to.
#[utoipa::path(get, path = "/v3/types/{id}/os-volume-type-access", tag = "types", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::TypeAccess), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn access_list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = find(&state, &ctx, &id).await?;
    if t.is_public {
        return Err(ApiError::not_found(
            "Access list not available for public volume types.",
        ));
    }
    let access: Vec<Value> = state
        .db
        .type_access(&t.id)
        .await?
        .into_iter()
        .map(|p| json!({"volume_type_id": t.id, "project_id": p}))
        .collect();
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "volume_type_access": access }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_are_uuid_like_as_cinder_checks_them() {
        for ok in [
            "0f9e8d7c6b5a4f3e8d2c1b0a9f8e7d6c",
            "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c",
            "{0F9E8D7C-6B5A-4F3E-8D2C-1B0A9F8E7D6C}",
            "urn:uuid:0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c",
        ] {
            assert!(is_uuid_like(ok), "{ok}");
        }
        for bad in [
            "demo",
            "",
            "0f9e8d7c6b5a4f3e8d2c1b0a9f8e7d6",
            "0f9e8d7c6b5a4f3e8d2c1b0a9f8e7d6g",
        ] {
            assert!(!is_uuid_like(bad), "{bad}");
        }
    }
}
