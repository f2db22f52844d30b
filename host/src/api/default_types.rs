//! `/v3/{project_id}/default-types` (3.62): a project's own default volume type, which a
//! volume created without a type takes before the configured default. For
//! administrators, as Cinder's policy says; below 3.62 the routes do not exist (404).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Text, opt_text};
use super::{ApiError, Ctx, State, body_element, reply, views};

/// The microversion that brought default types.
const SINCE: u32 = 62;

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, set, unset))
}

/// Cinder's versioned routes answer 404 below their microversion.
fn require_version(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.version.at_least(SINCE) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "The resource could not be found: default types need microversion 3.{SINCE} or later (send `OpenStack-API-Version: volume 3.{SINCE}`)."
        )))
    }
}

/// `PUT /default-types/{project}` `{"default_type": {"volume_type": NAME_OR_ID}}`.
#[utoipa::path(put, path = "/v3/default-types/{project}", tag = "default-types", params(("project" = String, Path)), request_body = super::openapi::DefaultTypeSetRequest, responses((status = 200, description = "OK.", body = super::openapi::DefaultTypeBody), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn set(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    let d = body_element(&body, "default_type")?;
    if let Some(extra) = d.keys().find(|k| *k != "volume_type") {
        return Err(ApiError::invalid_field(
            "default_type",
            &Value::Object(d.clone()),
            format!("Additional properties are not allowed ('{extra}' was unexpected)"),
        ));
    }
    let wanted = opt_text(&d, "volume_type", Text::Line)?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "volume_type",
                d.get("volume_type").unwrap_or(&Value::Null),
                "'volume_type' is a required property: the name or id of a volume type.",
            )
        })?;
    // An unknown type is the request's fault here (400), in Cinder's words.
    let t = state.db.get_volume_type(&wanted).await?.ok_or_else(|| {
        ApiError::bad_request(if super::types::is_uuid_like(&wanted) {
            format!("Volume type {wanted} could not be found.")
        } else {
            format!("Volume type with name {wanted} could not be found.")
        })
    })?;
    let set = state.db.set_project_default_type(&project, &t.id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "default_type": views::default_type(&set) }),
    ))
}

#[utoipa::path(get, path = "/v3/default-types/{project}", tag = "default-types", params(("project" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::DefaultTypeBody), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    let d = state
        .db
        .project_default_type(&project)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("Default type for project {project} not found."))
        })?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "default_type": views::default_type(&d) }),
    ))
}

#[utoipa::path(get, path = "/v3/default-types", tag = "default-types", responses((status = 200, description = "OK.", body = super::openapi::DefaultTypeList), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(axum::extract::State(state): State, ctx: Ctx) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    let all: Vec<Value> = state
        .db
        .project_default_types()
        .await?
        .iter()
        .map(views::default_type)
        .collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "default_types": all })))
}

/// `DELETE /default-types/{project}`: 204, whether or not the project had one.
#[utoipa::path(delete, path = "/v3/default-types/{project}", tag = "default-types", params(("project" = String, Path)), responses((status = 204, description = "Done; no body."), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller.")))]
async fn unset(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    state.db.unset_project_default_type(&project).await?;
    Ok(reply(&ctx, StatusCode::NO_CONTENT, Value::Null))
}
