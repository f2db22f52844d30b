//! Cinder's default policy (the "secure RBAC" personas of cinder/policies/*.py since
//! Xena), as one table: each route and method, and each action of an `/action` route,
//! with Cinder's rule name and the weakest role that may call it. Readers read their
//! project's resources; members also write them; administrators also call the admin
//! APIs. The table is consulted in one place, [`enforce`], which runs for every routed
//! request before its handler and puts the caller ([`Ctx`]) in the request: a handler
//! gets its `Ctx` only from there, so a route without an entry has no caller and answers
//! 500 rather than run unchecked (and the unit test below fails first).
//!
//! Which project's rows a caller sees stays with the handlers (`Ctx::may_see`): another
//! project's resources are 404, as Cinder's project-scoped look-ups make them.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Ctx};
use crate::auth::Role;

/// What a route needs.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// Nothing: the version documents.
    Public,
    /// Cinder's rule and the weakest role it lets through.
    Rule(&'static str, Role),
    /// An `/action` route: by the action's name (the body's one key).
    Actions(&'static [(&'static str, &'static str, Role)]),
}

use Need::{Actions, Public, Rule};
use Role::{Admin, Member, Reader};

/// Every route with its method, as the router registers them.
pub const POLICY: &[(&str, &str, Need)] = &[
    ("GET", "/", Public),
    ("GET", "/v3", Public),
    ("GET", "/v3/", Public),
    ("GET", "/openapi.json", Public),
    // Volumes (cinder/policies/volume.py, volume_actions.py, volume_metadata.py).
    ("POST", "/v3/volumes", Rule("volume:create", Member)),
    ("GET", "/v3/volumes", Rule("volume:get_all", Reader)),
    ("GET", "/v3/volumes/detail", Rule("volume:get_all", Reader)),
    ("GET", "/v3/volumes/summary", Rule("volume:get_all", Reader)),
    ("GET", "/v3/volumes/{id}", Rule("volume:get", Reader)),
    ("PUT", "/v3/volumes/{id}", Rule("volume:update", Member)),
    ("DELETE", "/v3/volumes/{id}", Rule("volume:delete", Member)),
    ("POST", "/v3/volumes/{id}/action", Actions(VOLUME_ACTIONS)),
    (
        "GET",
        "/v3/volumes/{id}/metadata",
        Rule("volume:get_volume_metadata", Reader),
    ),
    (
        "POST",
        "/v3/volumes/{id}/metadata",
        Rule("volume:create_volume_metadata", Member),
    ),
    (
        "PUT",
        "/v3/volumes/{id}/metadata",
        Rule("volume:update_volume_metadata", Member),
    ),
    (
        "GET",
        "/v3/volumes/{id}/metadata/{key}",
        Rule("volume:get_volume_metadata", Reader),
    ),
    (
        "PUT",
        "/v3/volumes/{id}/metadata/{key}",
        Rule("volume:update_volume_metadata", Member),
    ),
    (
        "DELETE",
        "/v3/volumes/{id}/metadata/{key}",
        Rule("volume:delete_volume_metadata", Member),
    ),
    // Backups (cinder/policies/backups.py, backup_actions.py).
    ("POST", "/v3/backups", Rule("backup:create", Member)),
    ("GET", "/v3/backups", Rule("backup:get_all", Reader)),
    ("GET", "/v3/backups/detail", Rule("backup:get_all", Reader)),
    ("GET", "/v3/backups/{id}", Rule("backup:get", Reader)),
    ("PUT", "/v3/backups/{id}", Rule("backup:update", Member)),
    ("DELETE", "/v3/backups/{id}", Rule("backup:delete", Member)),
    (
        "POST",
        "/v3/backups/{id}/restore",
        Rule("backup:restore", Member),
    ),
    ("POST", "/v3/backups/{id}/action", Actions(BACKUP_ACTIONS)),
    (
        "GET",
        "/v3/backups/{id}/export_record",
        Rule("backup:backup-export", Admin),
    ),
    (
        "POST",
        "/v3/backups/import_record",
        Rule("backup:backup-import", Admin),
    ),
    // Ashlar's: a running create's or restore's progress, as visible as the backup.
    (
        "GET",
        "/v3/backups/{id}/progress",
        Rule("backup:get", Reader),
    ),
    // Snapshots (snapshots.py, snapshot_actions.py, snapshot_metadata.py).
    (
        "POST",
        "/v3/snapshots",
        Rule("volume:create_snapshot", Member),
    ),
    (
        "GET",
        "/v3/snapshots",
        Rule("volume:get_all_snapshots", Reader),
    ),
    (
        "GET",
        "/v3/snapshots/detail",
        Rule("volume:get_all_snapshots", Reader),
    ),
    (
        "GET",
        "/v3/snapshots/{id}",
        Rule("volume:get_snapshot", Reader),
    ),
    (
        "PUT",
        "/v3/snapshots/{id}",
        Rule("volume:update_snapshot", Member),
    ),
    (
        "DELETE",
        "/v3/snapshots/{id}",
        Rule("volume:delete_snapshot", Member),
    ),
    (
        "POST",
        "/v3/snapshots/{id}/action",
        Actions(SNAPSHOT_ACTIONS),
    ),
    (
        "GET",
        "/v3/snapshots/{id}/metadata",
        Rule("volume:get_snapshot_metadata", Reader),
    ),
    (
        "POST",
        "/v3/snapshots/{id}/metadata",
        Rule("volume:update_snapshot_metadata", Member),
    ),
    (
        "PUT",
        "/v3/snapshots/{id}/metadata",
        Rule("volume:update_snapshot_metadata", Member),
    ),
    (
        "GET",
        "/v3/snapshots/{id}/metadata/{key}",
        Rule("volume:get_snapshot_metadata", Reader),
    ),
    (
        "PUT",
        "/v3/snapshots/{id}/metadata/{key}",
        Rule("volume:update_snapshot_metadata", Member),
    ),
    (
        "DELETE",
        "/v3/snapshots/{id}/metadata/{key}",
        Rule("volume:delete_snapshot_metadata", Member),
    ),
    // Attachments (attachments.py; Cinder checks no rule for reading them, its look-ups
    // are scoped to the project: the read names here are this table's).
    (
        "POST",
        "/v3/attachments",
        Rule("volume:attachment_create", Member),
    ),
    (
        "GET",
        "/v3/attachments",
        Rule("volume:attachment_get_all", Reader),
    ),
    (
        "GET",
        "/v3/attachments/detail",
        Rule("volume:attachment_get_all", Reader),
    ),
    (
        "GET",
        "/v3/attachments/{id}",
        Rule("volume:attachment_get", Reader),
    ),
    (
        "PUT",
        "/v3/attachments/{id}",
        Rule("volume:attachment_update", Member),
    ),
    (
        "DELETE",
        "/v3/attachments/{id}",
        Rule("volume:attachment_delete", Member),
    ),
    (
        "POST",
        "/v3/attachments/{id}/action",
        Actions(&[("os-complete", "volume:attachment_complete", Member)]),
    ),
    // Volume types and extra specs (volume_type.py, type_extra_specs.py).
    (
        "GET",
        "/v3/types",
        Rule("volume_extension:type_get_all", Reader),
    ),
    (
        "POST",
        "/v3/types",
        Rule("volume_extension:types_manage", Admin),
    ),
    (
        "GET",
        "/v3/types/default",
        Rule("volume_extension:type_get", Reader),
    ),
    (
        "GET",
        "/v3/types/{id}",
        Rule("volume_extension:type_get", Reader),
    ),
    (
        "PUT",
        "/v3/types/{id}",
        Rule("volume_extension:types_manage", Admin),
    ),
    (
        "DELETE",
        "/v3/types/{id}",
        Rule("volume_extension:types_manage", Admin),
    ),
    (
        "GET",
        "/v3/types/{id}/extra_specs",
        Rule("volume_extension:types_extra_specs:index", Reader),
    ),
    (
        "POST",
        "/v3/types/{id}/extra_specs",
        Rule("volume_extension:types_extra_specs:create", Admin),
    ),
    (
        "GET",
        "/v3/types/{id}/extra_specs/{key}",
        Rule("volume_extension:types_extra_specs:show", Reader),
    ),
    (
        "PUT",
        "/v3/types/{id}/extra_specs/{key}",
        Rule("volume_extension:types_extra_specs:update", Admin),
    ),
    (
        "DELETE",
        "/v3/types/{id}/extra_specs/{key}",
        Rule("volume_extension:types_extra_specs:delete", Admin),
    ),
    (
        "POST",
        "/v3/types/{id}/action",
        Actions(&[
            (
                "addProjectAccess",
                "volume_extension:volume_type_access:addProjectAccess",
                Admin,
            ),
            (
                "removeProjectAccess",
                "volume_extension:volume_type_access:removeProjectAccess",
                Admin,
            ),
        ]),
    ),
    (
        "GET",
        "/v3/types/{id}/os-volume-type-access",
        Rule(
            "volume_extension:volume_type_access:get_all_for_type",
            Admin,
        ),
    ),
    // Project default types, 3.62 (default_types.py).
    (
        "GET",
        "/v3/default-types",
        Rule("volume_extension:default_get_all", Admin),
    ),
    (
        "GET",
        "/v3/default-types/{project}",
        Rule("volume_extension:default_get", Admin),
    ),
    (
        "PUT",
        "/v3/default-types/{project}",
        Rule("volume_extension:default_set_or_update", Admin),
    ),
    (
        "DELETE",
        "/v3/default-types/{project}",
        Rule("volume_extension:default_unset", Admin),
    ),
    // QoS specs, every call for administrators (qos_specs.py).
    ("GET", "/v3/qos-specs", Rule(QOS_GET_ALL, Admin)),
    ("POST", "/v3/qos-specs", Rule(QOS_CREATE, Admin)),
    ("GET", "/v3/qos-specs/{id}", Rule(QOS_GET, Admin)),
    ("PUT", "/v3/qos-specs/{id}", Rule(QOS_UPDATE, Admin)),
    ("DELETE", "/v3/qos-specs/{id}", Rule(QOS_DELETE, Admin)),
    (
        "PUT",
        "/v3/qos-specs/{id}/delete_keys",
        Rule(QOS_DELETE, Admin),
    ),
    (
        "GET",
        "/v3/qos-specs/{id}/associations",
        Rule(QOS_GET_ALL, Admin),
    ),
    (
        "GET",
        "/v3/qos-specs/{id}/associate",
        Rule(QOS_UPDATE, Admin),
    ),
    (
        "GET",
        "/v3/qos-specs/{id}/disassociate",
        Rule(QOS_UPDATE, Admin),
    ),
    (
        "GET",
        "/v3/qos-specs/{id}/disassociate_all",
        Rule(QOS_UPDATE, Admin),
    ),
    // Quotas and limits (quotas.py, quota_class.py, limits.py). Another project's quota
    // set is for administrators too: its handler checks that, by the project asked.
    (
        "GET",
        "/v3/os-quota-sets/{project_id}",
        Rule("volume_extension:quotas:show", Reader),
    ),
    (
        "GET",
        "/v3/os-quota-sets/{project_id}/defaults",
        Rule("volume_extension:quotas:show", Reader),
    ),
    (
        "PUT",
        "/v3/os-quota-sets/{project_id}",
        Rule("volume_extension:quotas:update", Admin),
    ),
    (
        "DELETE",
        "/v3/os-quota-sets/{project_id}",
        Rule("volume_extension:quotas:delete", Admin),
    ),
    (
        "GET",
        "/v3/os-quota-class-sets/{class_name}",
        Rule("volume_extension:quota_classes", Admin),
    ),
    (
        "PUT",
        "/v3/os-quota-class-sets/{class_name}",
        Rule("volume_extension:quota_classes", Admin),
    ),
    (
        "GET",
        "/v3/limits",
        Rule("limits_extension:used_limits", Reader),
    ),
    // Pools and zones (scheduler_stats.py; zones have no rule in Cinder).
    (
        "GET",
        "/v3/scheduler-stats/get_pools",
        Rule("scheduler_extension:scheduler_stats:get_pools", Admin),
    ),
    (
        "GET",
        "/v3/os-availability-zone",
        Rule("volume_extension:availability_zone_list", Reader),
    ),
    // Messages (messages.py).
    ("GET", "/v3/messages", Rule("message:get_all", Reader)),
    ("GET", "/v3/messages/{id}", Rule("message:get", Reader)),
    (
        "DELETE",
        "/v3/messages/{id}",
        Rule("message:delete", Member),
    ),
    // Transfers, both spellings (volume_transfer.py).
    (
        "POST",
        "/v3/os-volume-transfer",
        Rule("volume:create_transfer", Member),
    ),
    (
        "GET",
        "/v3/os-volume-transfer",
        Rule("volume:get_all_transfers", Reader),
    ),
    (
        "GET",
        "/v3/os-volume-transfer/detail",
        Rule("volume:get_all_transfers", Reader),
    ),
    (
        "GET",
        "/v3/os-volume-transfer/{id}",
        Rule("volume:get_transfer", Reader),
    ),
    (
        "DELETE",
        "/v3/os-volume-transfer/{id}",
        Rule("volume:delete_transfer", Member),
    ),
    (
        "POST",
        "/v3/os-volume-transfer/{id}/accept",
        Rule("volume:accept_transfer", Member),
    ),
    (
        "POST",
        "/v3/volume-transfers",
        Rule("volume:create_transfer", Member),
    ),
    (
        "GET",
        "/v3/volume-transfers",
        Rule("volume:get_all_transfers", Reader),
    ),
    (
        "GET",
        "/v3/volume-transfers/detail",
        Rule("volume:get_all_transfers", Reader),
    ),
    (
        "GET",
        "/v3/volume-transfers/{id}",
        Rule("volume:get_transfer", Reader),
    ),
    (
        "DELETE",
        "/v3/volume-transfers/{id}",
        Rule("volume:delete_transfer", Member),
    ),
    (
        "POST",
        "/v3/volume-transfers/{id}/accept",
        Rule("volume:accept_transfer", Member),
    ),
    // Services and capabilities (services.py, capabilities.py).
    (
        "GET",
        "/v3/os-services",
        Rule("volume_extension:services:index", Admin),
    ),
    (
        "PUT",
        "/v3/os-services/{action}",
        Rule("volume_extension:services:update", Admin),
    ),
    (
        "GET",
        "/v3/capabilities/{host}",
        Rule("volume_extension:capabilities", Admin),
    ),
    // Managing existing storage (volume_manage.py, manageable_volumes, snapshots).
    (
        "POST",
        "/v3/manageable_volumes",
        Rule("volume_extension:volume_manage", Admin),
    ),
    (
        "POST",
        "/v3/os-volume-manage",
        Rule("volume_extension:volume_manage", Admin),
    ),
    (
        "GET",
        "/v3/manageable_volumes",
        Rule("volume_extension:list_manageable", Admin),
    ),
    (
        "GET",
        "/v3/manageable_volumes/detail",
        Rule("volume_extension:list_manageable", Admin),
    ),
    (
        "GET",
        "/v3/os-volume-manage",
        Rule("volume_extension:list_manageable", Admin),
    ),
    (
        "GET",
        "/v3/os-volume-manage/detail",
        Rule("volume_extension:list_manageable", Admin),
    ),
    (
        "GET",
        "/v3/manageable_snapshots",
        Rule("snapshot_extension:list_manageable", Admin),
    ),
    (
        "GET",
        "/v3/manageable_snapshots/detail",
        Rule("snapshot_extension:list_manageable", Admin),
    ),
    // Ashlar's own admin surface.
    (
        "GET",
        "/ashlar/v1/messages",
        Rule("message:get_internal_detail", Admin),
    ),
    (
        "GET",
        "/ashlar/v1/messages/{id}",
        Rule("message:get_internal_detail", Admin),
    ),
    ("GET", "/ashlar/v1/plugins", Rule(PLUGINS, Admin)),
    ("GET", "/ashlar/v1/plugins/events", Rule(PLUGINS, Admin)),
    ("GET", "/ashlar/v1/workers", Rule(PLUGINS, Admin)),
    (
        "POST",
        "/ashlar/v1/backends/{name}/swap",
        Rule(PLUGINS, Admin),
    ),
    (
        "POST",
        "/ashlar/v1/backends/{name}/rollback",
        Rule(PLUGINS, Admin),
    ),
    ("GET", "/ashlar/v1/backends", Rule(PLUGINS, Admin)),
    ("POST", "/ashlar/v1/backends", Rule(PLUGINS, Admin)),
    ("GET", "/ashlar/v1/backends/{name}", Rule(PLUGINS, Admin)),
    ("DELETE", "/ashlar/v1/backends/{name}", Rule(PLUGINS, Admin)),
    (
        "POST",
        "/ashlar/v1/backends/{name}/drain",
        Rule(PLUGINS, Admin),
    ),
    // Prometheus text, unauthenticated like most scrape endpoints: figures only.
    ("GET", "/metrics", Public),
];

const PLUGINS: &str = "ashlar:plugins:manage";
const QOS_GET_ALL: &str = "volume_extension:qos_specs_manage:get_all";
const QOS_GET: &str = "volume_extension:qos_specs_manage:get";
const QOS_CREATE: &str = "volume_extension:qos_specs_manage:create";
const QOS_UPDATE: &str = "volume_extension:qos_specs_manage:update";
const QOS_DELETE: &str = "volume_extension:qos_specs_manage:delete";

/// Refusals Cinder words otherwise than `Policy doesn't allow …`.
const WORDED: &[(&str, &str)] = &[(
    "volume_extension:default_get_all",
    "You are not authorized to perform this operation.",
)];

/// `POST /volumes/{id}/action`, by action.
const VOLUME_ACTIONS: &[(&str, &str, Role)] = &[
    ("os-extend", "volume:extend", Member),
    ("os-set_bootable", "volume:update", Member),
    (
        "os-update_readonly_flag",
        "volume:update_readonly_flag",
        Member,
    ),
    (
        "os-set_image_metadata",
        "volume_extension:volume_image_metadata:set",
        Member,
    ),
    (
        "os-unset_image_metadata",
        "volume_extension:volume_image_metadata:remove",
        Member,
    ),
    (
        "os-show_image_metadata",
        "volume:get_volume_metadata",
        Reader,
    ),
    ("os-reimage", "volume:reimage", Member),
    (
        "os-extend_volume_completion",
        "volume:extend_complete",
        Admin,
    ),
    ("os-retype", "volume:retype", Member),
    (
        "os-migrate_volume",
        "volume_extension:volume_admin_actions:migrate_volume",
        Admin,
    ),
    (
        "os-migrate_volume_completion",
        "volume_extension:volume_admin_actions:migrate_volume_completion",
        Admin,
    ),
    (
        "os-volume_upload_image",
        "volume_extension:volume_actions:upload_image",
        Member,
    ),
    ("os-unmanage", "volume_extension:volume_unmanage", Admin),
    ("revert", "volume:revert_to_snapshot", Member),
    (
        "os-reset_status",
        "volume_extension:volume_admin_actions:reset_status",
        Admin,
    ),
    (
        "os-force_delete",
        "volume_extension:volume_admin_actions:force_delete",
        Admin,
    ),
    (
        "os-reserve",
        "volume_extension:volume_actions:reserve",
        Member,
    ),
    (
        "os-unreserve",
        "volume_extension:volume_actions:unreserve",
        Member,
    ),
    (
        "os-initialize_connection",
        "volume_extension:volume_actions:initialize_connection",
        Member,
    ),
    (
        "os-attach",
        "volume_extension:volume_actions:attach",
        Member,
    ),
    (
        "os-begin_detaching",
        "volume_extension:volume_actions:begin_detaching",
        Member,
    ),
    (
        "os-roll_detaching",
        "volume_extension:volume_actions:roll_detaching",
        Member,
    ),
    (
        "os-terminate_connection",
        "volume_extension:volume_actions:terminate_connection",
        Member,
    ),
    (
        "os-detach",
        "volume_extension:volume_actions:detach",
        Member,
    ),
    (
        "os-force_detach",
        "volume_extension:volume_admin_actions:force_detach",
        Admin,
    ),
];

/// `POST /snapshots/{id}/action`, by action.
const SNAPSHOT_ACTIONS: &[(&str, &str, Role)] = &[
    (
        "os-reset_status",
        "volume_extension:snapshot_admin_actions:reset_status",
        Admin,
    ),
    (
        "os-update_snapshot_status",
        "snapshot_extension:snapshot_actions:update_snapshot_status",
        Member,
    ),
    (
        "os-update_progress",
        "snapshot_extension:snapshot_actions:update_snapshot_status",
        Member,
    ),
    (
        "os-force_delete",
        "volume_extension:snapshot_admin_actions:force_delete",
        Admin,
    ),
];

/// `POST /backups/{id}/action`, by action.
const BACKUP_ACTIONS: &[(&str, &str, Role)] = &[
    (
        "os-reset_status",
        "volume_extension:backup_admin_actions:reset_status",
        Admin,
    ),
    (
        "os-force_delete",
        "volume_extension:backup_admin_actions:force_delete",
        Admin,
    ),
];

/// What a route and method need; `None` for a pair the table does not name.
pub fn need(method: &Method, path: &str) -> Option<Need> {
    POLICY
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .map(|(_, _, need)| *need)
}

/// `Policy doesn't allow {rule} to be performed.`, Cinder's 403 (or its own words for
/// the few it words otherwise).
pub fn forbidden(rule: &str) -> ApiError {
    let message = match WORDED.iter().find(|(r, _)| *r == rule) {
        Some((_, words)) => words.to_string(),
        None => format!("Policy doesn't allow {rule} to be performed."),
    };
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// Authenticates the caller, checks the table, and hands the handler its [`Ctx`].
/// Runs after routing (a route layer), so the matched route is known.
pub async fn enforce(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    let Some(need) = need(req.method(), route.as_str()) else {
        // No caller is put in the request: a handler that asks for one answers 500.
        tracing::error!(method = %req.method(), route = route.as_str(), "a route with no policy entry");
        return next.run(req).await;
    };
    if let Need::Public = need {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let ctx = match Ctx::authenticate(&state, &parts).await {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let (rule, role, body) = match need {
        Need::Public => unreachable!("answered above"),
        Need::Rule(rule, role) => (rule, role, body),
        Need::Actions(actions) => {
            // The action is the body's one key. A body that cannot be read or is not one
            // action goes on to the handler, which says what is wrong with it (or the
            // connection layer answers 413 or 408 for a body over its limits).
            let bytes = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(_) => {
                    return ApiError::bad_request("The request body could not be read.")
                        .into_response();
                }
            };
            let name = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
                .ok()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.keys().next().cloned());
            let found = name.and_then(|n| actions.iter().find(|(a, _, _)| *a == n));
            let body = axum::body::Body::from(bytes);
            match found {
                Some((_, rule, role)) => (*rule, *role, body),
                // Not an action this route answers: the handler refuses it (400).
                None => ("", Role::Reader, body),
            }
        }
    };
    if ctx.role < role {
        // Cinder looks the target up in the caller's project before it authorizes: what
        // the caller cannot see is 404, so a 403 never confirms that it exists.
        if let Err(hidden) = target_visible(&state, &ctx, route.as_str(), parts.uri.path()).await {
            return hidden.into_response();
        }
        return forbidden(rule).into_response();
    }
    parts.extensions.insert(ctx);
    next.run(Request::from_parts(parts, body)).await
}

/// For a route on one volume, snapshot or attachment (`/v3/volumes/{id}…`): 404 when the
/// caller cannot see it. Asked only when the policy refuses, so an allowed call costs no
/// look-up here.
async fn target_visible(
    state: &AppState,
    ctx: &Ctx,
    route: &str,
    path: &str,
) -> Result<(), ApiError> {
    let mut segments = route.split('/').zip(path.split('/')).skip(2);
    let (Some((kind, _)), Some(("{id}", id))) = (segments.next(), segments.next()) else {
        return Ok(());
    };
    match kind {
        "volumes" => super::visible::volume(state, ctx, id).await.map(|_| ()),
        "snapshots" => super::visible::snapshot(state, ctx, id).await.map(|_| ()),
        "backups" => super::visible::backup(state, ctx, id).await.map(|_| ()),
        "attachments" => super::visible::attachment(state, ctx, id).await.map(|_| ()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(method, route)` for every route the router serves: the OpenAPI document's
    /// operations (the router is built from the same `#[utoipa::path]` annotations), and
    /// every `.route(…)` outside it in the API's sources, read from the text so that a route
    /// added anywhere under `src/api` is seen here.
    fn routes_in_sources() -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (path, item) in &super::super::openapi::document().paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                if op.is_some() {
                    found.push((method.to_string(), path.clone()));
                }
            }
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.push(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api.rs").into());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests' own routers are not the API's.
            let text = text.split("#[cfg(test)]").next().unwrap();
            for (at, _) in text.match_indices(".route(") {
                let call = balanced(&text[at + ".route".len()..]);
                let path = call.split('"').nth(1).unwrap_or_else(|| {
                    panic!("{}: a route without a literal path: {call}", file.display())
                });
                let mut methods = methods_in(call);
                if methods.is_empty() {
                    // `.route(path, helper(…))`: the methods are in the helper's body.
                    let helper = call
                        .split_once("\",")
                        .map(|(_, rest)| rest.trim_start())
                        .and_then(|rest| rest.split('(').next())
                        .unwrap_or_default();
                    let at = text
                        .find(&format!("fn {helper}("))
                        .unwrap_or_else(|| panic!("{}: no method in {call}", file.display()));
                    let body = &text[at..];
                    let body = &body[body.find('{').unwrap()..];
                    methods = methods_in(braced(body));
                }
                assert!(
                    !methods.is_empty(),
                    "{}: no method in {call}",
                    file.display()
                );
                for m in methods {
                    found.push((m, path.to_string()));
                }
            }
        }
        found
    }

    /// The text of a parenthesised call, from its `(` to the matching `)`.
    fn balanced(text: &str) -> &str {
        let mut depth = 0;
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[..=i];
                    }
                }
                _ => {}
            }
        }
        text
    }

    /// A block's text, from its `{` to the matching `}`.
    fn braced(text: &str) -> &str {
        let mut depth = 0;
        for (i, c) in text.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[..=i];
                    }
                }
                _ => {}
            }
        }
        text
    }

    /// The axum method routers named in a route's call: `get(`, `.post(`, …
    fn methods_in(call: &str) -> Vec<String> {
        let mut out = Vec::new();
        for m in ["get", "post", "put", "delete", "patch"] {
            for (at, _) in call.match_indices(&format!("{m}(")) {
                let before = call[..at].chars().next_back();
                let word_start = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
                // A handler called inside a closure is `name(` too: only the router's
                // own calls begin the route's second argument or follow a `.`.
                let prev = call[..at].trim_end().chars().next_back();
                if word_start && matches!(prev, Some('.' | ',' | '(' | '{')) {
                    let name = m.to_ascii_uppercase();
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_route_has_a_policy_entry_and_every_entry_a_route() {
        let routes = routes_in_sources();
        assert!(routes.len() > 50, "too few routes found: {routes:?}");
        for (method, path) in &routes {
            let method: Method = method.parse().unwrap();
            assert!(
                need(&method, path).is_some(),
                "{method} {path} has no entry in api::policy::POLICY"
            );
        }
        for (method, path, _) in POLICY {
            assert!(
                routes.iter().any(|(m, p)| m == method && p == path),
                "POLICY names {method} {path}, which no router serves"
            );
        }
    }

    #[test]
    fn readers_write_nothing_and_admin_rules_are_admin_only() {
        let all = POLICY.iter().flat_map(|(m, _, need)| match need {
            Need::Public => vec![],
            Need::Rule(rule, role) => vec![(*m, *rule, *role)],
            Need::Actions(list) => list
                .iter()
                .map(|(_, r, role)| ("POST", *r, *role))
                .collect(),
        });
        for (method, rule, role) in all {
            if rule.contains("admin_actions") || rule.contains("types_manage") {
                assert_eq!(role, Role::Admin, "{rule}");
            }
            if method != "GET" && rule != "volume:get_volume_metadata" {
                assert!(role >= Role::Member, "{method} {rule} is a write");
            }
        }
    }
}
