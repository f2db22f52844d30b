//! `/v3/{project_id}/messages` (microversion 3.3): why asynchronous requests failed.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::{ApiError, Ctx, State, reply, views};

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
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    let project = if ctx.is_admin && q.contains_key("all_tenants") {
        None
    } else {
        Some(ctx.project_id.as_str())
    };
    let items: Vec<Value> = state
        .db
        .list_messages(project, q.get("resource_uuid").map(String::as_str))
        .await?
        .iter()
        .map(|m| views::message(&ctx, m))
        .collect();
    Ok(reply(&ctx, StatusCode::OK, json!({ "messages": items })))
}

async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx)?;
    match state.db.get_message(&id).await? {
        Some(m) if m.project_id == ctx.project_id || ctx.is_admin => Ok(reply(
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
        Some(m) if m.project_id == ctx.project_id || ctx.is_admin => {
            state.db.delete_message(&id).await?;
            Ok(reply(&ctx, StatusCode::NO_CONTENT, Value::Null))
        }
        _ => Err(ApiError::not_found(format!(
            "Message {id} could not be found."
        ))),
    }
}
