//! Resource views: exactly the fields of the requested microversion.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::db::{
    AttachmentRow, Message, ProjectDefaultType, QosSpecs, SnapshotRow, VolumeRow, VolumeType,
};
use crate::driver::ConnectionInfo;
use crate::volume::{AttachStatus, VolumeStatus};

fn links(ctx: &Ctx, kind: &'static str, id: &str) -> Value {
    json!(resource_links(ctx, kind, id))
}

fn metadata_object(items: &[(String, String)]) -> Value {
    Value::Object(
        items
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A link as the document describes one: `{"href": …, "rel": …}` (and a `type` in the
/// version documents).
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Link {
    pub href: String,
    pub rel: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// `self` and `bookmark` links to `{kind}/{id}`, as Cinder lists them; written straight
/// into the response (a page of a thousand volumes makes no strings for them).
pub struct Links<'a> {
    base: &'a str,
    project: &'a str,
    kind: &'static str,
    id: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Href<'b>(&'b Links<'b>, &'static str);
        impl Serialize for Href<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let Links {
                    base,
                    project,
                    kind,
                    id,
                } = self.0;
                s.collect_str(&format_args!("{base}{}/{project}/{kind}/{id}", self.1))
            }
        }
        let mut seq = s.serialize_seq(Some(2))?;
        for (prefix, rel) in [("/v3", "self"), ("", "bookmark")] {
            struct One<'b>(Href<'b>, &'static str);
            impl Serialize for One<'_> {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let mut m = s.serialize_map(Some(2))?;
                    m.serialize_entry("href", &self.0)?;
                    m.serialize_entry("rel", self.1)?;
                    m.end()
                }
            }
            seq.serialize_element(&One(Href(self, prefix), rel))?;
        }
        seq.end()
    }
}

fn resource_links<'a>(ctx: &'a Ctx, kind: &'static str, id: &'a str) -> Links<'a> {
    Links {
        base: &ctx.base,
        project: &ctx.project_id,
        kind,
        id,
    }
}

/// Everything of the caller a volume's view depends on: two callers with the same key are
/// shown the same bytes for the same volume revision (see [`super::view_cache`]). A view
/// that comes to read more of [`Ctx`] must add it here.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VolumeViewKey {
    detail: bool,
    version: super::Microversion,
    admin: bool,
    base: String,
    project: String,
}

impl VolumeViewKey {
    pub fn of(ctx: &Ctx, detail: bool) -> Self {
        VolumeViewKey {
            detail,
            version: ctx.version,
            admin: ctx.is_admin,
            base: ctx.base.clone(),
            project: ctx.project_id.clone(),
        }
    }
}

/// A volume's view as JSON text: in full (`detail`) or as a plain list shows it.
pub fn volume_json(ctx: &Ctx, v: &VolumeRow, detail: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(if detail { 1024 } else { 256 });
    let written = if detail {
        serde_json::to_writer(&mut buf, &volume_detail(ctx, v))
    } else {
        serde_json::to_writer(&mut buf, &volume_summary(ctx, v))
    };
    written.expect("a view of strings and numbers serialises");
    buf
}

/// A volume in a plain list: id, name, links.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VolumeSummary<'a> {
    id: &'a str,
    name: Option<&'a str>,
    #[schema(value_type = Vec<Link>)]
    links: Links<'a>,
}

pub fn volume_summary<'a>(ctx: &'a Ctx, v: &'a VolumeRow) -> VolumeSummary<'a> {
    VolumeSummary {
        id: &v.id,
        name: v.name.as_deref(),
        links: resource_links(ctx, "volumes", &v.id),
    }
}

/// An attachment as a volume's view lists it.
#[derive(Serialize, utoipa::ToSchema)]
struct VolumeAttachment<'a> {
    id: &'a str,
    attachment_id: &'a str,
    volume_id: &'a str,
    server_id: Option<&'a str>,
    host_name: Option<&'a str>,
    device: Option<&'a str>,
    attached_at: Option<&'a str>,
}

/// A volume in full. Serialised straight from the row (a page of a thousand volumes is no
/// tree of JSON values first); `()` is JSON `null`, and a `None` field is absent at the
/// caller's microversion or role.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VolumeDetail<'a> {
    id: &'a str,
    name: Option<&'a str>,
    description: Option<&'a str>,
    #[schema(value_type = String)]
    status: VolumeStatus,
    size: i64,
    availability_zone: &'a str,
    created_at: &'a str,
    updated_at: Option<&'a str>,
    attachments: Vec<VolumeAttachment<'a>>,
    bootable: &'static str,
    encrypted: bool,
    multiattach: bool,
    #[schema(value_type = BTreeMap<String, String>)]
    metadata: Cow<'a, BTreeMap<String, String>>,
    snapshot_id: Option<&'a str>,
    source_volid: Option<&'a str>,
    #[schema(value_type = Option<String>)]
    consistencygroup_id: (),
    #[schema(value_type = Option<String>)]
    replication_status: (),
    user_id: &'a str,
    volume_type: Option<&'a str>,
    #[schema(value_type = Vec<Link>)]
    links: Links<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    migration_status: Option<Option<&'a str>>,
    #[serde(
        rename = "os-vol-tenant-attr:tenant_id",
        skip_serializing_if = "Option::is_none"
    )]
    tenant_id: Option<&'a str>,
    #[serde(
        rename = "os-vol-host-attr:host",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    host: Option<Option<&'a str>>,
    #[serde(
        rename = "os-vol-mig-status-attr:migstat",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    migstat: Option<Option<&'a str>>,
    #[serde(
        rename = "os-vol-mig-status-attr:name_id",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    name_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    volume_image_metadata: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    group_id: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    provider_id: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_targets: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    service_uuid: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    cluster_name: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    volume_type_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumes_quota: Option<bool>,
}

/// The admin metadata a volume's view shows in its `metadata`, as Cinder's
/// `add_visible_admin_metadata` merges them.
const VISIBLE_ADMIN_METADATA: [&str; 2] = ["readonly", "attached_mode"];

/// A volume as show and the detailed list answer: Cinder's view builder plus what its API
/// extensions add there (the owner's project; for administrators the host and migration
/// attributes; the image metadata when the volume has some).
pub fn volume_detail<'a>(ctx: &'a Ctx, v: &'a VolumeRow) -> VolumeDetail<'a> {
    volume_view(ctx, v, true)
}

/// A volume as create and update answer: Cinder's view builder alone, without what its
/// extensions add to show and list (tempest's create and update schemas allow none of it).
pub fn volume_created<'a>(ctx: &'a Ctx, v: &'a VolumeRow) -> VolumeDetail<'a> {
    volume_view(ctx, v, false)
}

fn volume_view<'a>(ctx: &'a Ctx, v: &'a VolumeRow, extended: bool) -> VolumeDetail<'a> {
    let at = |minor: u32| ctx.version.at_least(minor);
    let admin = ctx.is_admin;
    let metadata = if VISIBLE_ADMIN_METADATA
        .iter()
        .any(|k| v.admin_metadata.contains_key(*k))
    {
        let mut merged = v.metadata.clone();
        for key in VISIBLE_ADMIN_METADATA {
            if let Some(value) = v.admin_metadata.get(key) {
                merged.insert(key.to_string(), value.clone());
            }
        }
        Cow::Owned(merged)
    } else {
        Cow::Borrowed(&v.metadata)
    };
    VolumeDetail {
        id: &v.id,
        name: v.name.as_deref(),
        description: v.description.as_deref(),
        status: v.status,
        size: v.size,
        availability_zone: &v.availability_zone,
        created_at: &v.created_at,
        updated_at: v.updated_at.as_deref(),
        attachments: v
            .attachments
            .iter()
            .filter(|a| a.attach_status == AttachStatus::Attached)
            .map(|a| VolumeAttachment {
                id: &v.id,
                attachment_id: &a.id,
                volume_id: &v.id,
                server_id: a.instance_uuid.as_deref(),
                // Cinder tells only administrators (and services) where it is attached.
                host_name: a.attached_host.as_deref().filter(|_| admin),
                device: a.mountpoint.as_deref(),
                attached_at: a.attach_time.as_deref(),
            })
            .collect(),
        bootable: if v.bootable { "true" } else { "false" },
        encrypted: false,
        multiattach: v.multiattach,
        metadata,
        snapshot_id: v.snapshot_id.as_deref(),
        source_volid: v.source_volid.as_deref(),
        consistencygroup_id: (),
        replication_status: (),
        user_id: &v.user_id,
        // From 3.63 the name or nothing; before, the name or else the type's id.
        volume_type: if at(63) {
            v.volume_type_name.as_deref()
        } else {
            v.volume_type_name
                .as_deref()
                .or(v.volume_type_id.as_deref())
        },
        links: resource_links(ctx, "volumes", &v.id),
        migration_status: admin.then_some(v.migration_status.as_deref()),
        tenant_id: extended.then_some(v.project_id.as_str()),
        host: (extended && admin).then_some(v.host.as_deref()),
        migstat: (extended && admin).then_some(v.migration_status.as_deref()),
        name_id: (extended && admin).then_some(v.name_id.as_deref()),
        volume_image_metadata: (extended && !v.image_metadata.is_empty())
            .then_some(&v.image_metadata),
        group_id: at(13).then_some(()),
        provider_id: (at(21) && admin).then_some(()),
        shared_targets: at(48).then_some(false),
        service_uuid: at(48).then_some(()),
        cluster_name: (at(61) && admin).then_some(()),
        volume_type_id: at(63).then_some(v.volume_type_id.as_deref()),
        consumes_quota: at(65).then_some(true),
    }
}

/// A snapshot; `extended` (show and the detailed list) adds what Cinder's
/// extended-snapshot-attributes extension adds there, which create and update do not show.
pub fn snapshot(ctx: &Ctx, s: &SnapshotRow, extended: bool) -> Value {
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
    if extended {
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

/// A backup's summary (create, update, import, the plain list): id, name, links.
pub fn backup_summary(ctx: &Ctx, b: &crate::db::BackupRow) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "links": links(ctx, "backups", &b.id),
    })
}

/// A backup's detail, as Cinder's v3 view builder (`cinder/api/v3/views/backups.py`)
/// shows it: metadata from 3.43, user_id from 3.56, and the project to administrators
/// from 3.18 (`os-backup-project-attr:project_id`, the `backup_project_attribute` policy).
pub fn backup_detail(ctx: &Ctx, b: &crate::db::BackupRow) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(b.id));
    o.insert("status".into(), json!(b.status));
    o.insert("size".into(), json!(b.size));
    o.insert("object_count".into(), json!(b.object_count));
    o.insert("availability_zone".into(), json!(b.availability_zone));
    o.insert("container".into(), json!(b.container));
    o.insert("created_at".into(), json!(b.created_at));
    o.insert("updated_at".into(), json!(b.updated_at));
    o.insert("name".into(), json!(b.name));
    o.insert("description".into(), json!(b.description));
    o.insert("fail_reason".into(), json!(b.fail_reason));
    o.insert("volume_id".into(), json!(b.volume_id));
    o.insert("links".into(), links(ctx, "backups", &b.id));
    o.insert("is_incremental".into(), json!(b.is_incremental));
    o.insert(
        "has_dependent_backups".into(),
        json!(b.has_dependent_backups()),
    );
    o.insert("snapshot_id".into(), json!(b.snapshot_id));
    o.insert("data_timestamp".into(), json!(b.data_timestamp));
    if ctx.version.at_least(18) && ctx.is_admin {
        o.insert(
            "os-backup-project-attr:project_id".into(),
            json!(b.project_id),
        );
    }
    if ctx.version.at_least(43) {
        o.insert("metadata".into(), json!(b.metadata));
    }
    if ctx.version.at_least(56) {
        o.insert("user_id".into(), json!(b.user_id));
    }
    Value::Object(o)
}

/// Which of Cinder's volume type views a response carries; each is what tempest's schema
/// for it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeView {
    /// Show and list: the v3 view (extra specs and `qos_specs_id` for administrators)
    /// with the access extension's `os-volume-type-access:is_public`.
    Show,
    /// Create: types_manage's view (with extra specs) and the access extension's field.
    Create,
    /// Update: types_manage's view alone.
    Update,
}

pub fn volume_type(ctx: &Ctx, t: &VolumeType, view: TypeView) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(t.id));
    o.insert("name".into(), json!(t.name));
    o.insert("description".into(), json!(t.description));
    o.insert("is_public".into(), json!(t.is_public));
    if view != TypeView::Update {
        o.insert("os-volume-type-access:is_public".into(), json!(t.is_public));
    }
    // Cinder shows extra specs and the QoS spec's id to administrators only; creating and
    // updating a type is theirs alone.
    if ctx.is_admin || view != TypeView::Show {
        o.insert("extra_specs".into(), metadata_object(&t.extra_specs));
    }
    if ctx.is_admin && view == TypeView::Show {
        o.insert("qos_specs_id".into(), json!(t.qos_specs_id));
    }
    Value::Object(o)
}

/// A QoS spec as Cinder's view shows it: its keys under `specs`, the consumer apart.
pub fn qos_specs(q: &QosSpecs) -> Value {
    json!({
        "id": q.id,
        "name": q.name,
        "consumer": q.consumer.as_str(),
        "specs": metadata_object(&q.specs),
    })
}

/// A QoS spec with its links (show and create).
pub fn qos_specs_detail(ctx: &Ctx, q: &QosSpecs) -> Value {
    json!({
        "qos_specs": qos_specs(q),
        "links": links(ctx, "qos-specs", &q.id),
    })
}

/// A project's default type (Cinder 3.62).
pub fn default_type(d: &ProjectDefaultType) -> Value {
    json!({
        "project_id": d.project_id,
        "volume_type_id": d.volume_type_id,
    })
}

/// Cinder's message view, the same for administrators: tempest's schema allows no other
/// key, so what tenants are not told (`internal_detail`) is on Ashlar's admin surface.
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
