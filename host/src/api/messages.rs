//! `/v3/{project_id}/messages` (microversion 3.3): why asynchronous requests failed, in
//! Cinder's words and Cinder's view, which tempest's schema allows no key beyond — for
//! administrators too.
//!
//! What the host knows behind a message (the driver's text, command lines, paths, each
//! pool's reason) is on Ashlar's admin surface instead, as `internal_detail`, for
//! administrators only: `/ashlar/v1/messages` (filtered by `request_id`, `resource_uuid`,
//! `event_id`, `project_id`) and `/ashlar/v1/messages/{id}`. The log has the same text on
//! a line with the request id.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::list::{ListRequest, ListSpec};
use super::{ApiError, Ctx, State, reply, views};
use crate::db::{ListQuery, Page, Scope};

/// Filters, sorting and paging from 3.5, as in Cinder.
const LIST: ListSpec = ListSpec {
    link_path: Some("messages"),
    collection: "messages",
    noun: "Message",
    user_filters: &[
        "resource_uuid",
        "resource_type",
        "event_id",
        "request_id",
        "message_level",
    ],
    listing: &crate::db::MESSAGE_LIST,
    paging_since: 5,
};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    // Ashlar's own views for administrators stay out of the document.
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, delete))
        .route("/ashlar/v1/messages", get(list_internal))
        .route("/ashlar/v1/messages/{id}", get(show_internal))
}

/// The filters the admin surface takes; `project_id` narrows to one project.
const INTERNAL_FILTERS: &[&str] = &["request_id", "resource_uuid", "event_id", "resource_type"];

/// At most this many messages in one answer of the admin surface, newest first.
const INTERNAL_LIMIT: i64 = 1000;

fn require_version(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.version.at_least(3) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "The messages API needs microversion 3.3 or later: send OpenStack-API-Version: volume 3.3",
        ))
    }
}

#[utoipa::path(get, path = "/v3/messages", tag = "messages", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::MessageList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    let req = ListRequest::parse(&ctx, &params, &LIST)?;
    let rows = req.rows(&LIST, state.db.list_messages(&req.query).await)?;
    let mut body = serde_json::Map::new();
    if let Some((key, links)) =
        req.links(&ctx, &LIST, rows.last().map(|m| m.id.as_str()), rows.len())
    {
        body.insert(key, links);
    }
    body.insert(
        "messages".into(),
        Value::Array(rows.iter().map(|m| views::message(&ctx, m)).collect()),
    );
    Ok(reply(&ctx, StatusCode::OK, Value::Object(body)))
}

#[utoipa::path(get, path = "/v3/messages/{id}", tag = "messages", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::MessageBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    match state.db.get_message(&id).await? {
        Some(m) if ctx.may_see(&m.project_id) => Ok(reply(
            &ctx,
            StatusCode::OK,
            json!({ "message": views::message(&ctx, &m) }),
        )),
        _ => Err(ApiError::not_found(format!(
            "Message {id} could not be found."
        ))),
    }
}

#[utoipa::path(delete, path = "/v3/messages/{id}", tag = "messages", params(("id" = String, Path)), responses((status = 204, description = "Done; no body."), (status = 404, description = "No such resource visible to the caller.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    match state.db.get_message(&id).await? {
        Some(m) if ctx.may_see(&m.project_id) => {
            state.db.delete_message(&id).await?;
            Ok(reply(&ctx, StatusCode::NO_CONTENT, Value::Null))
        }
        _ => Err(ApiError::not_found(format!(
            "Message {id} could not be found."
        ))),
    }
}

/// A message as the admin surface shows it: Cinder's view plus `internal_detail`.
fn internal_view(ctx: &Ctx, m: &crate::db::Message) -> Value {
    let mut view = views::message(ctx, m);
    view["internal_detail"] = json!(m.internal_detail);
    view
}

async fn list_internal(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut query = ListQuery {
        scope: Scope::All,
        filters: Vec::new(),
        page: Page {
            limit: Some(INTERNAL_LIMIT),
            ..Page::default()
        },
    };
    for (name, value) in params {
        if name == "project_id" {
            query.scope = Scope::Project(value);
        } else if INTERNAL_FILTERS.contains(&name.as_str()) {
            query.filters.push((name, value));
        } else {
            return Err(ApiError::bad_request(format!(
                "Invalid filter {name}: the admin message list takes project_id, {}.",
                INTERNAL_FILTERS.join(", ")
            )));
        }
    }
    let rows = state.db.list_messages(&query).await?;
    let messages: Vec<Value> = rows.iter().map(|m| internal_view(&ctx, m)).collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "messages": messages })))
}

async fn show_internal(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.db.get_message(&id).await? {
        Some(m) => Ok(reply(
            &ctx,
            StatusCode::OK,
            json!({ "message": internal_view(&ctx, &m) }),
        )),
        None => Err(ApiError::not_found(format!(
            "Message {id} could not be found."
        ))),
    }
}
