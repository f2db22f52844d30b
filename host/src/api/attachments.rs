//! Attaching volumes, both ways Cinder offers: the volume actions older clients use
//! (`os-reserve`, `os-initialize_connection`, `os-attach`, `os-begin_detaching`,
//! `os-terminate_connection`, `os-detach`, …) and the attachments API of 3.27 on
//! (`POST /attachments`, `PUT` with a connector, `os-complete` from 3.44, `DELETE`).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::input::{Body, Text, check_text};
use super::list::{ListRequest, ListSpec};
use super::visible;
use super::{ApiError, Ctx, State, reply, views};
use crate::db::{AttachmentRow, VolumeRow, time};
use crate::driver::{Connector, Value as DriverValue};
use crate::volume::message_field::Detail;
use crate::volume::{AttachStatus, FailureKind, OpError, VolumeStatus, is_last_connection};

/// The attachment list: Cinder pages it but gives it no links.
const LIST: ListSpec = ListSpec {
    link_path: None,
    collection: "attachments",
    noun: "Volume attachment",
    user_filters: &["volume_id", "status", "instance_id", "attach_status"],
    listing: &crate::db::ATTACHMENT_LIST,
    paging_since: 27,
};

/// The volume actions this module answers.
pub const VOLUME_ACTIONS: &[&str] = &[
    "os-reserve",
    "os-unreserve",
    "os-initialize_connection",
    "os-attach",
    "os-begin_detaching",
    "os-roll_detaching",
    "os-terminate_connection",
    "os-detach",
    "os-force_detach",
];

pub fn routes() -> OpenApiRouter<std::sync::Arc<super::AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(list_detail))
        .routes(routes!(show, update, delete))
        .routes(routes!(action))
}

// ---- shared --------------------------------------------------------------------------

/// A connector as os-brick sends it, checked field by field.
fn parse_connector(v: &Value) -> Result<Connector, ApiError> {
    let Value::Object(map) = v else {
        return Err(ApiError::invalid_field(
            "connector",
            v,
            "The connector must be an object such as {\"host\": \"compute-1\", \"initiator\": \"iqn.…\"}.",
        ));
    };
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                check_text(&format!("connector.{key}"), s, Text::Line)?;
                Ok(Some(s.clone()))
            }
            Some(other) => Err(ApiError::invalid_field(
                &format!("connector.{key}"),
                other,
                "It must be a string.",
            )),
        }
    };
    let host = text("host")?.filter(|h| !h.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "The connector must name the attaching host in `host` (os-brick's connector properties carry it).",
        )
    })?;
    let multipath = match map.get("multipath") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "connector.multipath",
                other,
                "It must be a boolean.",
            ));
        }
    };
    let mut extra = std::collections::BTreeMap::new();
    for (k, v) in map {
        if matches!(
            k.as_str(),
            "host" | "ip" | "initiator" | "multipath" | "platform" | "os_type"
        ) {
            continue;
        }
        if k == Connector::LOCAL_KEY {
            // Only the host asks a driver for its local device.
            return Err(ApiError::bad_request(format!(
                "The connector key `{k}` is reserved for the service itself."
            )));
        }
        if let Some(value) = DriverValue::from_json(v.clone()) {
            extra.insert(k.clone(), value);
        }
    }
    Ok(Connector {
        host,
        ip: text("ip")?,
        initiator: text("initiator")?,
        multipath,
        platform: text("platform")?,
        os_type: text("os_type")?,
        extra,
    })
}

/// A failed connection, with the status that fits what the driver said. The answer says
/// what failed in Cinder's words (`message_field`'s details) and the host's; the driver's
/// own text, paths and command lines go to the log, on a line with the request id.
fn op_error(what: &str, e: OpError) -> ApiError {
    let e = match e {
        OpError::Db(d) => return d.into(),
        other => other,
    };
    let status = match e.kind() {
        FailureKind::NotFound => StatusCode::NOT_FOUND,
        FailureKind::Invalid => StatusCode::BAD_REQUEST,
        FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::warn!("{what} failed: {e}");
    let detail = e.detail_or(Detail::UNKNOWN_ERROR);
    let hint = e.hint().map(|h| format!(" {h}")).unwrap_or_default();
    ApiError::new(status, format!("Unable to {what}: {}{hint}", detail.text))
}

fn required_object<'a>(args: &'a Value, action: &str, key: &str) -> Result<&'a Value, ApiError> {
    args.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{action} needs `{key}` in its body, e.g. {{\"{action}\": {{\"{key}\": …}}}}."
        ))
    })
}

/// An optional string argument: at most 255 characters, no control characters.
fn opt_text(args: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_text(key, s, Text::Line)?;
            Ok(Some(s.clone()))
        }
        Some(other) => Err(ApiError::invalid_field(key, other, "It must be a string.")),
    }
}

/// The mode an attachment asks for (`mode`), checked against the volume's `readonly`
/// flag as Cinder does: a read-only volume attaches `ro` when no mode is given and refuses
/// `rw`.
fn parse_mode(args: &Value, v: &VolumeRow) -> Result<String, ApiError> {
    let readonly = is_readonly(v);
    match opt_text(args, "mode")?.as_deref() {
        None if readonly => Ok("ro".into()),
        None => Ok("rw".into()),
        Some("rw") if readonly => Err(ApiError::bad_request(format!(
            "Invalid attaching mode 'rw' for volume {}: the volume is read-only; attach it with mode `ro`, or clear the flag with os-update_readonly_flag.",
            v.id
        ))),
        Some(mode @ ("rw" | "ro")) => Ok(mode.into()),
        Some(other) => Err(ApiError::invalid_field(
            "mode",
            &json!(other),
            "It must be `rw` or `ro`.",
        )),
    }
}

fn is_readonly(v: &VolumeRow) -> bool {
    v.admin_metadata.get("readonly").map(String::as_str) == Some("True")
}

fn new_attachment(v: &VolumeRow, instance: Option<String>, mode: String) -> AttachmentRow {
    AttachmentRow {
        id: uuid::Uuid::new_v4().to_string(),
        volume_id: v.id.clone(),
        project_id: v.project_id.clone(),
        instance_uuid: instance,
        attach_mode: mode,
        attach_status: AttachStatus::Reserved,
        created_at: time::now(),
        ..AttachmentRow::default()
    }
}

fn not_attachable(v: &VolumeRow) -> ApiError {
    if !v.multiattach
        && matches!(
            v.status,
            VolumeStatus::InUse | VolumeStatus::Attaching | VolumeStatus::Reserved
        )
    {
        ApiError::bad_request(format!(
            "Invalid volume: volume {} is already attached or reserved and is not multiattach; \
             detach it first, or create it with a multiattach volume type.",
            v.id
        ))
    } else {
        ApiError::bad_request(format!(
            "Invalid volume: volume {} must be available to attach, but it is {}.",
            v.id, v.status
        ))
    }
}

fn check_connectable(v: &VolumeRow, action: &str) -> Result<(), ApiError> {
    if VolumeStatus::CONNECTABLE.contains(&v.status) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid volume: {action} needs the volume in one of {}, but it is {}.",
            VolumeStatus::CONNECTABLE
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            v.status
        )))
    }
}

/// Makes the connection for an attachment and records it.
async fn connect(
    state: &super::AppState,
    v: &VolumeRow,
    a: &mut AttachmentRow,
    connector: Connector,
) -> Result<(), ApiError> {
    a.attached_host = Some(connector.host.clone());
    // cinderclient's attachment-create sends the mountpoint inside the connector.
    if let Some(DriverValue::Text(m)) = connector.extra.get("mountpoint") {
        a.mountpoint = Some(m.clone());
    }
    let info = state
        .manager
        .initialize_connection(v, &connector, &a.attach_mode)
        .await
        .map_err(|e| op_error("initialize the connection", e))?;
    if !state.db.attachment_connected(a, &connector, &info).await? {
        return Err(ApiError::conflict(format!(
            "Attachment {} changed while it was being connected; fetch it and retry.",
            a.id
        )));
    }
    Ok(())
}

// ---- the volume actions --------------------------------------------------------------

/// Answers one of [`VOLUME_ACTIONS`], or `None` for another name.
pub async fn volume_action(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    name: &str,
    args: &Value,
) -> Option<Result<Response, ApiError>> {
    let r = match name {
        "os-reserve" => reserve(state, ctx, v).await,
        "os-unreserve" => unreserve(state, ctx, v).await,
        "os-initialize_connection" => initialize(state, ctx, v, args).await,
        "os-attach" => attach(state, ctx, v, args).await,
        "os-begin_detaching" => {
            transition(
                state,
                ctx,
                v,
                VolumeStatus::InUse,
                VolumeStatus::Detaching,
                "begin detaching",
            )
            .await
        }
        "os-roll_detaching" => {
            transition(
                state,
                ctx,
                v,
                VolumeStatus::Detaching,
                VolumeStatus::InUse,
                "roll back detaching",
            )
            .await
        }
        "os-terminate_connection" => terminate(state, ctx, v, args).await,
        "os-detach" => detach(state, ctx, v, args).await,
        "os-force_detach" => force_detach(state, ctx, v, args).await,
        _ => return None,
    };
    Some(r)
}

async fn reserve(state: &super::AppState, ctx: &Ctx, v: &VolumeRow) -> Result<Response, ApiError> {
    let a = new_attachment(v, None, "rw".into());
    if !state
        .db
        .reserve_attachment(
            &a,
            VolumeStatus::attachable(v.multiattach),
            VolumeStatus::Attaching,
        )
        .await?
    {
        return Err(not_attachable(v));
    }
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

async fn unreserve(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
) -> Result<Response, ApiError> {
    let pending: Vec<&AttachmentRow> = v
        .attachments
        .iter()
        .filter(|a| a.attach_status == AttachStatus::Reserved)
        .collect();
    if pending.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: volume {} has no reservation to release (status {}).",
            v.id, v.status
        )));
    }
    for a in pending {
        state.db.remove_attachment(&a.id, &v.id).await?;
    }
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

async fn initialize(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    check_connectable(v, "os-initialize_connection")?;
    let connector = parse_connector(required_object(
        args,
        "os-initialize_connection",
        "connector",
    )?)?;
    // Cinder's initialize_connection: the mode the volume was attached in, else what its
    // readonly flag allows.
    let mode = match v.admin_metadata.get("attached_mode") {
        Some(mode) => mode.as_str(),
        None if is_readonly(v) => "ro",
        None => "rw",
    };
    let info = state
        .manager
        .initialize_connection(v, &connector, mode)
        .await
        .map_err(|e| op_error("initialize the connection", e))?;
    Ok(reply(
        ctx,
        StatusCode::OK,
        json!({"connection_info": views::connection_info(&info)}),
    ))
}

async fn attach(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let instance = opt_text(args, "instance_uuid")?;
    let host = opt_text(args, "host_name")?;
    if instance.is_none() && host.is_none() {
        return Err(ApiError::bad_request(
            "os-attach needs `instance_uuid` or `host_name` to say what the volume is attached to.",
        ));
    }
    let mountpoint = opt_text(args, "mountpoint")?.ok_or_else(|| {
        ApiError::bad_request("os-attach needs `mountpoint` (the device the volume appears as).")
    })?;
    let mode = parse_mode(args, v)?;
    let pending = v
        .attachments
        .iter()
        .find(|a| {
            matches!(
                a.attach_status,
                AttachStatus::Reserved | AttachStatus::Attaching
            )
        })
        .cloned();
    let a = match pending {
        Some(a) => a,
        None => {
            let a = new_attachment(v, instance.clone(), mode);
            if !state
                .db
                .reserve_attachment(
                    &a,
                    VolumeStatus::attachable(v.multiattach),
                    VolumeStatus::Attaching,
                )
                .await?
            {
                return Err(not_attachable(v));
            }
            a
        }
    };
    if !state
        .db
        .complete_attachment(
            &a.id,
            &v.id,
            instance.as_deref(),
            host.as_deref(),
            Some(&mountpoint),
        )
        .await?
    {
        return Err(ApiError::conflict(format!(
            "Attachment {} changed while being completed; retry.",
            a.id
        )));
    }
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

async fn transition(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    from: VolumeStatus,
    to: VolumeStatus,
    what: &str,
) -> Result<Response, ApiError> {
    if !state.db.transition_volume(&v.id, &[from], to, None).await? {
        return Err(ApiError::bad_request(format!(
            "Invalid volume: to {what} the volume must be {from}, but it is {}.",
            v.status
        )));
    }
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

async fn terminate(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    check_connectable(v, "os-terminate_connection")?;
    let connector = parse_connector(required_object(
        args,
        "os-terminate_connection",
        "connector",
    )?)?;
    // The older actions end a host's connections: what that host holds ends with it.
    let last = is_last_connection(&v.attachments, |a| {
        a.attached_host
            .as_deref()
            .is_none_or(|h| h == connector.host)
    });
    state
        .manager
        .terminate_connection(v, Some(&connector), last)
        .await
        .map_err(|e| op_error("terminate the connection", e))?;
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

/// The attachment an action names, or the volume's only one.
fn pick_attachment<'a>(
    v: &'a VolumeRow,
    args: &Value,
    action: &str,
) -> Result<&'a AttachmentRow, ApiError> {
    if let Some(id) = opt_text(args, "attachment_id")? {
        return v.attachments.iter().find(|a| a.id == id).ok_or_else(|| {
            ApiError::not_found(format!("Volume {} has no attachment {id}.", v.id))
        });
    }
    match v.attachments.as_slice() {
        [only] => Ok(only),
        [] => Err(ApiError::bad_request(format!(
            "Invalid volume: volume {} is not attached.",
            v.id
        ))),
        many => Err(ApiError::bad_request(format!(
            "Volume {} has {} attachments; name the one to {action} in `attachment_id`.",
            v.id,
            many.len()
        ))),
    }
}

async fn detach(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let a = pick_attachment(v, args, "detach")?;
    state.db.remove_attachment(&a.id, &v.id).await?;
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

async fn force_detach(
    state: &super::AppState,
    ctx: &Ctx,
    v: &VolumeRow,
    args: &Value,
) -> Result<Response, ApiError> {
    let connector = match args.get("connector") {
        None | Some(Value::Null) => None,
        Some(c) => Some(parse_connector(c)?),
    };
    let targets: Vec<&AttachmentRow> = match opt_text(args, "attachment_id")? {
        Some(_) => vec![pick_attachment(v, args, "force-detach")?],
        None => v.attachments.iter().collect(),
    };
    let last = is_last_connection(&v.attachments, |a| targets.iter().any(|t| t.id == a.id));
    state
        .manager
        .terminate_connection(v, connector.as_ref(), last)
        .await
        .map_err(|e| op_error("terminate the connection", e))?;
    for a in targets {
        state.db.remove_attachment(&a.id, &v.id).await?;
    }
    Ok(reply(ctx, StatusCode::ACCEPTED, Value::Null))
}

// ---- the attachments API (3.27) ------------------------------------------------------

fn require_version(ctx: &Ctx, minor: u32, what: &str) -> Result<(), ApiError> {
    if ctx.version.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "{what} needs microversion 3.{minor} or later (send `OpenStack-API-Version: volume 3.{minor}`)."
        )))
    }
}

#[utoipa::path(post, path = "/v3/attachments", tag = "attachments", request_body = super::openapi::AttachmentCreateRequest, responses((status = 200, description = "OK.", body = super::openapi::AttachmentBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 503, description = "A backend is not reachable.")))]
async fn create(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body,
) -> Result<Response, ApiError> {
    require_version(&ctx, 27, "The attachments API")?;
    let body = Value::Object(super::body_element(&body, "attachment")?);
    let volume_id = opt_text(&body, "volume_uuid")?.ok_or_else(|| {
        ApiError::bad_request("An attachment needs `volume_uuid`, the volume to attach.")
    })?;
    let v = visible::volume(&state, &ctx, &volume_id).await?;
    let connector = match body.get("connector") {
        None | Some(Value::Null) => None,
        Some(c) => Some(parse_connector(c)?),
    };
    let mode = parse_mode(&body, &v)?;
    let mut a = new_attachment(&v, opt_text(&body, "instance_uuid")?, mode);
    if !state
        .db
        .reserve_attachment(
            &a,
            VolumeStatus::attachable(v.multiattach),
            VolumeStatus::Reserved,
        )
        .await?
    {
        return Err(not_attachable(&v));
    }
    if let Some(connector) = connector
        && let Err(e) = connect(&state, &v, &mut a, connector).await
    {
        // Nothing half-done: the reservation goes with the failed connection.
        state.db.remove_attachment(&a.id, &v.id).await?;
        return Err(e);
    }
    let a = state.db.get_attachment(&a.id).await?.unwrap_or(a);
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({"attachment": views::attachment_detail(&a)}),
    ))
}

#[utoipa::path(put, path = "/v3/attachments/{id}", tag = "attachments", params(("id" = String, Path)), request_body = super::openapi::AttachmentUpdateRequest, responses((status = 200, description = "OK.", body = super::openapi::AttachmentBody), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it."), (status = 503, description = "A backend is not reachable.")))]
async fn update(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    require_version(&ctx, 27, "The attachments API")?;
    let (mut a, v) = visible::attachment(&state, &ctx, &id).await?;
    let body = Value::Object(super::body_element(&body, "attachment")?);
    let connector = parse_connector(required_object(&body, "attachment update", "connector")?)?;
    if !matches!(
        a.attach_status,
        AttachStatus::Reserved | AttachStatus::Attaching
    ) {
        return Err(ApiError::bad_request(format!(
            "Invalid attachment: attachment {id} is {}; only a reserved attachment takes a connector.",
            a.attach_status
        )));
    }
    connect(&state, &v, &mut a, connector).await?;
    let a = state.db.get_attachment(&id).await?.unwrap_or(a);
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({"attachment": views::attachment_detail(&a)}),
    ))
}

#[utoipa::path(post, path = "/v3/attachments/{id}/action", tag = "attachments", params(("id" = String, Path)), request_body = super::openapi::Action, responses((status = 204, description = "Done; no body."), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn action(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    require_version(&ctx, 44, "Completing an attachment")?;
    let (a, v) = visible::attachment(&state, &ctx, &id).await?;
    let map = super::parse_body(&body)?;
    let (name, _) = super::input::one_action(&map, "{\"os-complete\": {}}")?;
    if name != "os-complete" {
        return Err(ApiError::bad_request(
            "The only attachment action is os-complete: send {\"os-complete\": {}}.",
        ));
    }
    if a.connector.is_none() {
        return Err(ApiError::bad_request(format!(
            "Invalid attachment: attachment {id} has no connection yet; update it with a connector first."
        )));
    }
    if !state
        .db
        .complete_attachment(&a.id, &v.id, None, None, None)
        .await?
    {
        return Err(ApiError::conflict(format!(
            "Attachment {id} changed while being completed; fetch it and retry."
        )));
    }
    Ok(reply(&ctx, StatusCode::NO_CONTENT, Value::Null))
}

#[utoipa::path(delete, path = "/v3/attachments/{id}", tag = "attachments", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::AttachmentList), (status = 404, description = "No such resource visible to the caller."), (status = 409, description = "The resource's state does not allow it.")))]
async fn delete(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx, 27, "The attachments API")?;
    let (a, v) = visible::attachment(&state, &ctx, &id).await?;
    if let Some(connector) = &a.connector {
        let last = is_last_connection(&v.attachments, |o| o.id == a.id);
        state
            .manager
            .terminate_connection(&v, Some(connector), last)
            .await
            .map_err(|e| op_error("terminate the connection", e))?;
    }
    state.db.remove_attachment(&a.id, &v.id).await?;
    let remaining = state.db.attachments_of(&v.id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({"attachments": remaining.iter().map(views::attachment_summary).collect::<Vec<_>>()}),
    ))
}

async fn listing(
    state: &super::AppState,
    ctx: &Ctx,
    params: &[(String, String)],
) -> Result<Vec<AttachmentRow>, ApiError> {
    require_version(ctx, 27, "The attachments API")?;
    let req = ListRequest::parse(ctx, params, &LIST)?;
    req.rows(&LIST, state.db.list_attachments(&req.query).await)
}

#[utoipa::path(get, path = "/v3/attachments", tag = "attachments", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::AttachmentList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let all = listing(&state, &ctx, &params).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({"attachments": all.iter().map(views::attachment_summary).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(get, path = "/v3/attachments/detail", tag = "attachments", params(super::openapi::ListParams), responses((status = 200, description = "OK.", body = super::openapi::AttachmentList), (status = 404, description = "No such resource visible to the caller.")))]
async fn list_detail(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let all = listing(&state, &ctx, &params).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({"attachments": all.iter().map(views::attachment_detail).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(get, path = "/v3/attachments/{id}", tag = "attachments", params(("id" = String, Path)), responses((status = 200, description = "OK.", body = super::openapi::AttachmentBody), (status = 404, description = "No such resource visible to the caller.")))]
async fn show(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_version(&ctx, 27, "The attachments API")?;
    let (a, _) = visible::attachment(&state, &ctx, &id).await?;
    Ok(reply(
        &ctx,
        StatusCode::OK,
        json!({"attachment": views::attachment_detail(&a)}),
    ))
}
