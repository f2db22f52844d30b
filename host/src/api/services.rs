//! `os-services` and `capabilities` (administrators): the services every host reports,
//! their state from the heartbeat, disabling a backend's volume service for scheduling,
//! and a backend's capabilities from its driver's stats.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Text, check_text, parse_body};
use super::{ApiError, Ctx, State, reply};
use crate::db::{ServiceRow, time};
use crate::volume::services::VOLUME_BINARY;

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(update))
        .routes(routes!(capabilities))
}

/// Cinder's host filter: `host` itself, or any backend or pool on it (`host@…`, `host#…`).
fn host_matches(service_host: &str, wanted: &str) -> bool {
    service_host == wanted
        || service_host
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('@') || rest.starts_with('#'))
}

#[utoipa::path(get, path = "/v3/os-services", tag = "services", responses((status = 200, description = "OK.", body = super::openapi::Services), (status = 403, description = "Policy does not allow it to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let host = param("host");
    let binary = param("binary");
    // A heartbeat at or after this instant is recent enough for `up`; the stamps are
    // fixed-width UTC text, so they compare as text.
    let up_since = time::format(std::time::SystemTime::now() - state.service_down_time);
    let stats = state.manager.stats();
    let mut services = Vec::new();
    for s in state.db.list_services().await? {
        if host.is_some_and(|h| !host_matches(&s.host, h)) || binary.is_some_and(|b| s.binary != b)
        {
            continue;
        }
        services.push(service_view(&ctx, &s, &up_since, &state, &stats));
    }
    Ok(reply(&ctx, StatusCode::OK, json!({ "services": services })))
}

fn service_view(
    ctx: &Ctx,
    s: &ServiceRow,
    up_since: &str,
    state: &super::AppState,
    stats: &std::collections::BTreeMap<String, crate::volume::BackendStats>,
) -> Value {
    let heartbeat = s.updated_at.as_deref().unwrap_or(&s.created_at);
    let mut o = Map::new();
    o.insert("binary".into(), json!(s.binary));
    o.insert("host".into(), json!(s.host));
    o.insert("zone".into(), json!(s.availability_zone));
    o.insert(
        "status".into(),
        json!(if s.disabled { "disabled" } else { "enabled" }),
    );
    o.insert(
        "state".into(),
        json!(if heartbeat >= up_since { "up" } else { "down" }),
    );
    o.insert("updated_at".into(), json!(s.updated_at));
    let volume = s.binary == VOLUME_BINARY;
    if ctx.version.at_least(49) && volume {
        // As Cinder's scheduler reports it: `down` when the backend's driver could not
        // give its stats. A backend of another host shows what that host last wrote.
        let backend = s.host.split_once('@').map(|(_, b)| b);
        let down = s.host.split_once('@').map(|(h, _)| h) == Some(state.manager.host_name.as_str())
            && backend
                .and_then(|b| stats.get(b))
                .is_none_or(|st| st.error.is_some());
        o.insert(
            "backend_state".into(),
            json!(if down { "down" } else { "up" }),
        );
    }
    if ctx.version.at_least(7) {
        o.insert("cluster".into(), json!(s.cluster));
    }
    o.insert("disabled_reason".into(), json!(s.disabled_reason));
    if volume {
        o.insert("replication_status".into(), json!("not-capable"));
        o.insert("active_backend_id".into(), Value::Null);
        o.insert("frozen".into(), json!(false));
    }
    Value::Object(o)
}

/// Actions Cinder's `os-services` has that need replication or Python's logging, which
/// Ashlar's backends and host do not have.
const NOT_SUPPORTED: &[&str] = &[
    "freeze",
    "thaw",
    "failover_host",
    "failover",
    "set-log",
    "get-log",
];

#[utoipa::path(put, path = "/v3/os-services/{action}", tag = "services", params(("action" = String, Path)), request_body = super::openapi::ServiceUpdateRequest, responses((status = 200, description = "OK.", body = super::openapi::ServiceUpdated), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 405, description = "Not allowed here.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(action): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let disabled = match action.as_str() {
        "enable" => false,
        "disable" | "disable-log-reason" => true,
        a if NOT_SUPPORTED.contains(&a) => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "Operation not supported: {a}. Ashlar's backends have no replication to \
                     freeze, thaw or fail over, and its log levels are set at start-up \
                     (ASHLAR_LOG)."
                ),
            ));
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "Invalid input received: Unknown action {}. Use enable, disable or disable-log-reason.",
                action.escape_debug()
            )));
        }
    };
    let body = parse_body(&body)?;
    let host = match body.get("host") {
        Some(Value::String(h)) if !h.is_empty() => h.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "Invalid input received: Host field is missing. Give the service's host, e.g. {\"host\": \"HOST@BACKEND\", \"binary\": \"cinder-volume\"}.",
            ));
        }
    };
    let text = |k: &str| match body.get(k) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let service = text("service");
    let binary = text("binary");
    let binary_key = if binary.is_empty() { &service } else { &binary };
    if binary_key.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid input received: binary is missing: give cinder-volume or cinder-scheduler.",
        ));
    }
    let reason = if action == "disable-log-reason" {
        let reason = match body.get("disabled_reason") {
            Some(Value::String(r)) => r.trim().to_string(),
            _ => String::new(),
        };
        if reason.is_empty()
            || reason.chars().count() > 255
            || check_text("disabled_reason", &reason, Text::Line).is_err()
        {
            return Err(ApiError::bad_request(
                "Disabled reason contains invalid characters or is too long",
            ));
        }
        Some(Some(reason))
    } else if action == "enable" {
        Some(None)
    } else {
        None
    };
    let updated = state
        .db
        .set_service_disabled(
            &host,
            binary_key,
            disabled,
            reason.as_ref().map(|r| r.as_deref()),
        )
        .await?;
    if updated.is_none() {
        return Err(ApiError::not_found(format!(
            "Service {binary_key} could not be found on host {host}."
        )));
    }
    state.manager.refresh_disabled().await?;
    tracing::info!(%host, binary = %binary_key, disabled, "service updated");
    let mut out = Map::new();
    out.insert("disabled".into(), json!(disabled));
    if let Some(r) = reason {
        out.insert("disabled_reason".into(), json!(r));
    }
    out.insert("host".into(), json!(host));
    out.insert("service".into(), json!(service));
    out.insert("binary".into(), json!(binary));
    out.insert(
        "status".into(),
        json!(if disabled { "disabled" } else { "enabled" }),
    );
    Ok(reply(&ctx, StatusCode::OK, Value::Object(out)))
}

/// Cinder's standard capability properties (`_init_standard_capabilities`): what a
/// volume type may set on any backend.
fn standard_properties() -> Value {
    let p = |title: &str, description: &str| json!({"title": title, "description": description, "type": "boolean"});
    json!({
        "thin_provisioning": p("Thin Provisioning", "Sets thin provisioning."),
        "compression": p("Compression", "Enables compression."),
        "qos": p("QoS", "Enables QoS."),
        "replication_enabled": p("Replication", "Enables replication."),
    })
}

#[utoipa::path(get, path = "/v3/capabilities/{host}", tag = "services", params(("host" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::Capabilities), (status = 403, description = "Policy does not allow it to the caller."), (status = 404, description = "No such resource visible to the caller."), (status = 503, description = "A backend is not reachable.")))]
async fn capabilities(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(host): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("Can't find service: {host}"));
    let backend = state
        .manager
        .backends
        .keys()
        .find(|name| state.manager.backend_host(name) == host)
        .ok_or_else(not_found)?;
    let stats = state.manager.stats();
    let s = stats.get(&backend).ok_or_else(not_found)?;
    if let Some(err) = &s.error {
        tracing::warn!(backend = %backend, "capabilities asked of a backend without stats: {err}");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "The backend {host} has not reported its capabilities: its driver's last get_volume_stats failed. Try again later."
            ),
        ));
    }
    let pool = s.pools.first();
    let text = |key: &str| -> Value {
        match pool.and_then(|p| p.capabilities.get(key)) {
            Some(crate::scheduler::CapValue::Text(t)) => json!(t),
            _ => Value::Null,
        }
    };
    let backend_name = if s.volume_backend_name.is_empty() {
        backend.clone()
    } else {
        s.volume_backend_name.clone()
    };
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({
            "namespace": format!("OS::Storage::Capabilities::{host}"),
            "vendor_name": s.vendor_name,
            "volume_backend_name": backend_name,
            "pool_name": pool.map(|p| p.pool.clone()),
            "driver_version": s.driver_version,
            "storage_protocol": s.storage_protocol,
            "display_name": text("display_name"),
            "description": text("description"),
            "visibility": text("visibility"),
            "replication_targets": [],
            "properties": standard_properties(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_filter_takes_a_host_and_its_backends() {
        assert!(host_matches("ashlar", "ashlar"));
        assert!(host_matches("ashlar@lvm", "ashlar"));
        assert!(host_matches("ashlar@lvm", "ashlar@lvm"));
        assert!(!host_matches("ashlar2@lvm", "ashlar"));
        assert!(!host_matches("ashlar", "ashlar@lvm"));
    }
}
