//! `scheduler-stats/get_pools` (administrators) and `os-availability-zone`.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, Ctx, State, parse_bool, reply};

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(get_pools))
        .routes(routes!(availability_zones))
}

#[utoipa::path(get, path = "/v3/scheduler-stats/get_pools", tag = "pools", params(super::openapi::PoolParams), responses((status = 200, description = "OK.", body = super::openapi::Pools), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn get_pools(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let detail = match q.get("detail") {
        Some(d) => parse_bool("detail", &json!(d))?,
        None => false,
    };
    let mut pools = Vec::new();
    for stats in state.manager.all_stats() {
        for p in &stats.pools {
            let mut entry = Map::new();
            entry.insert("name".into(), json!(p.name()));
            if detail {
                let mut caps: Map<String, Value> = p
                    .capabilities
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
                    .collect();
                caps.insert("pool_name".into(), json!(p.pool));
                caps.insert("total_capacity_gb".into(), json!(p.total_capacity_gb));
                caps.insert("free_capacity_gb".into(), json!(p.free_capacity_gb));
                caps.insert(
                    "provisioned_capacity_gb".into(),
                    json!(p.provisioned_capacity_gb),
                );
                caps.insert(
                    "allocated_capacity_gb".into(),
                    json!(p.allocated_capacity_gb),
                );
                caps.insert("reserved_percentage".into(), json!(p.reserved_percentage));
                caps.insert(
                    "max_over_subscription_ratio".into(),
                    json!(p.max_over_subscription_ratio),
                );
                caps.insert(
                    "thin_provisioning_support".into(),
                    json!(p.thin_provisioning_support),
                );
                caps.insert(
                    "thick_provisioning_support".into(),
                    json!(p.thick_provisioning_support),
                );
                caps.insert("multiattach".into(), json!(p.multiattach));
                caps.insert(
                    "timestamp".into(),
                    json!(crate::db::time::format(stats.updated_at)),
                );
                caps.insert(
                    "backend_state".into(),
                    json!(if stats.error.is_some() { "down" } else { "up" }),
                );
                entry.insert("capabilities".into(), Value::Object(caps));
            }
            pools.push(Value::Object(entry));
        }
    }
    Ok(reply(&ctx, StatusCode::OK, json!({ "pools": pools })))
}

#[utoipa::path(get, path = "/v3/os-availability-zone", tag = "pools", responses((status = 200, description = "OK.", body = super::openapi::AvailabilityZones)))]
async fn availability_zones(
    axum::extract::State(state): State,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let info: Vec<Value> = state
        .manager
        .availability_zones()
        .iter()
        .map(|z| json!({"zoneName": z, "zoneState": {"available": true}}))
        .collect();
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({ "availabilityZoneInfo": info }),
    ))
}
