//! `/v3/{project_id}/messages` (microversion 3.3): why asynchronous requests failed.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::list::{ListRequest, ListSpec};
use super::{ApiError, Ctx, State, reply, views};

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

pub fn routes() -> Router<std::sync::Arc<super::AppState>> {
    Router::new()
        .route("/v3/messages", get(list))
        .route("/v3/messages/{id}", get(show).delete(delete))
}

fn require_version(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.version.at_least(3) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "The messages API needs microversion 3.3 or later: send OpenStack-API-Version: volume 3.3",
        ))
    }
}

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
