//! Resource views: exactly the fields of the requested microversion.

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::db::{AttachmentRow, Message, SnapshotRow, VolumeRow, VolumeType};
use crate::driver::ConnectionInfo;
use crate::volume::AttachStatus;

fn links(ctx: &Ctx, kind: &str, id: &str) -> Value {
    json!([
        {"href": ctx.link(&format!("{kind}/{id}")), "rel": "self"},
        {"href": format!("{}/{}/{kind}/{id}", ctx.base, ctx.project_id), "rel": "bookmark"},
    ])
}

fn metadata_object(items: &[(String, String)]) -> Value {
    Value::Object(
        items
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A volume in a plain list: id, name, links.
pub fn volume_summary(ctx: &Ctx, v: &VolumeRow) -> Value {
    json!({"id": v.id, "name": v.name, "links": links(ctx, "volumes", &v.id)})
}

/// A volume in full.
pub fn volume_detail(ctx: &Ctx, v: &VolumeRow) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(v.id));
    o.insert("name".into(), json!(v.name));
    o.insert("description".into(), json!(v.description));
    o.insert("status".into(), json!(v.status));
    o.insert("size".into(), json!(v.size));
    o.insert("availability_zone".into(), json!(v.availability_zone));
    o.insert("created_at".into(), json!(v.created_at));
    o.insert("updated_at".into(), json!(v.updated_at));
    o.insert("attachments".into(), volume_attachments(v));
    o.insert(
        "bootable".into(),
        json!(if v.bootable { "true" } else { "false" }),
    );
    o.insert("encrypted".into(), json!(false));
    o.insert("multiattach".into(), json!(v.multiattach));
    o.insert("metadata".into(), metadata_object(&v.metadata));
    o.insert("snapshot_id".into(), json!(v.snapshot_id));
    o.insert("source_volid".into(), json!(v.source_volid));
    o.insert("consistencygroup_id".into(), Value::Null);
    o.insert("replication_status".into(), Value::Null);
    o.insert("user_id".into(), json!(v.user_id));
    o.insert("volume_type".into(), json!(v.volume_type_name));
    o.insert("links".into(), links(ctx, "volumes", &v.id));
    o.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
    if ctx.is_admin {
        o.insert("os-vol-host-attr:host".into(), json!(v.host));
        o.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
        o.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    }
    if ctx.version.at_least(13) {
        o.insert("group_id".into(), Value::Null);
    }
    if ctx.version.at_least(21) && ctx.is_admin {
        o.insert("provider_id".into(), Value::Null);
    }
    if ctx.version.at_least(48) {
        o.insert("shared_targets".into(), json!(false));
        o.insert("service_uuid".into(), Value::Null);
    }
    if ctx.version.at_least(61) && ctx.is_admin {
        o.insert("cluster_name".into(), Value::Null);
    }
    if ctx.version.at_least(63) {
        o.insert("volume_type_id".into(), json!(v.volume_type_id));
    }
    if ctx.version.at_least(65) {
        o.insert("consumes_quota".into(), json!(true));
    }
    Value::Object(o)
}

pub fn snapshot(ctx: &Ctx, s: &SnapshotRow, detail: bool) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(s.id));
    o.insert("created_at".into(), json!(s.created_at));
    o.insert("updated_at".into(), json!(s.updated_at));
    o.insert("name".into(), json!(s.name));
    o.insert("description".into(), json!(s.description));
    o.insert("volume_id".into(), json!(s.volume_id));
    o.insert("status".into(), json!(s.status));
    o.insert("size".into(), json!(s.volume_size));
    o.insert("metadata".into(), json!(s.metadata));
    if detail {
        o.insert(
            "os-extended-snapshot-attributes:progress".into(),
            json!(s.progress),
        );
        o.insert(
            "os-extended-snapshot-attributes:project_id".into(),
            json!(s.project_id),
        );
    }
    if ctx.version.at_least(14) {
        o.insert("group_snapshot_id".into(), Value::Null);
    }
    if ctx.version.at_least(41) {
        o.insert("user_id".into(), json!(s.user_id));
    }
    if ctx.version.at_least(65) {
        o.insert("consumes_quota".into(), json!(true));
    }
    Value::Object(o)
}

pub fn volume_type(ctx: &Ctx, t: &VolumeType) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(t.id));
    o.insert("name".into(), json!(t.name));
    o.insert("description".into(), json!(t.description));
    o.insert("is_public".into(), json!(t.is_public));
    o.insert("os-volume-type-access:is_public".into(), json!(t.is_public));
    o.insert("qos_specs_id".into(), Value::Null);
    // Cinder shows extra specs to administrators only.
    if ctx.is_admin {
        o.insert("extra_specs".into(), metadata_object(&t.extra_specs));
    }
    Value::Object(o)
}

pub fn message(ctx: &Ctx, m: &Message) -> Value {
    json!({
        "id": m.id,
        "message_level": m.message_level,
        "user_message": m.user_message,
        "event_id": m.event_id,
        "created_at": m.created_at,
        "guaranteed_until": m.expires_at,
        "request_id": m.request_id,
        "resource_type": m.resource_type,
        "resource_uuid": m.resource_uuid,
        "links": links(ctx, "messages", &m.id),
    })
}

pub fn metadata(items: &[(String, String)]) -> Value {
    metadata_object(items)
}

/// The `attachments` of a volume view: the attached ones, in Cinder's shape.
fn volume_attachments(v: &VolumeRow) -> Value {
    Value::Array(
        v.attachments
            .iter()
            .filter(|a| a.attach_status == AttachStatus::Attached)
            .map(|a| {
                json!({
                    "id": v.id,
                    "attachment_id": a.id,
                    "volume_id": v.id,
                    "server_id": a.instance_uuid,
                    "host_name": a.attached_host,
                    "device": a.mountpoint,
                    "attached_at": a.attach_time,
                })
            })
            .collect(),
    )
}

/// An attachment in a plain list (Cinder 3.27).
pub fn attachment_summary(a: &AttachmentRow) -> Value {
    json!({
        "id": a.id,
        "status": a.attach_status,
        "instance": a.instance_uuid,
        "volume_id": a.volume_id,
    })
}

/// Connection info as Cinder answers it: `{"driver_volume_type": …, "data": {…}}`.
pub fn connection_info(info: &ConnectionInfo) -> Value {
    serde_json::to_value(info).unwrap_or(Value::Null)
}

/// An attachment in full, with the connection info the client was handed (and the
/// attachment's id in it, as Cinder adds).
pub fn attachment_detail(a: &AttachmentRow) -> Value {
    let connection_info = match &a.connection_info {
        Some(info) => {
            let mut v = connection_info(info);
            v["attachment_id"] = json!(a.id);
            v
        }
        None => Value::Null,
    };
    json!({
        "id": a.id,
        "status": a.attach_status,
        "instance": a.instance_uuid,
        "volume_id": a.volume_id,
        "attached_at": a.attach_time,
        "detached_at": a.detach_time,
        "attach_mode": a.attach_mode,
        "connection_info": connection_info,
    })
}
