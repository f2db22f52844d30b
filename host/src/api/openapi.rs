//! `GET /openapi.json`: an OpenAPI 3.1 document of the Block Storage v3 API as Ashlar
//! serves it, generated from the handlers' `#[utoipa::path]` annotations and the body types
//! below. The router is built from the same annotations (`utoipa_axum::routes!`), so a
//! route cannot be served without being documented. Ashlar's admin surface
//! (`/ashlar/v1/...`, `/metrics`) is left out: it is not Cinder's API.
//!
//! Paths are written without the project (`/v3/volumes`); `/v3/{project_id}/volumes` is
//! served too and means the same (the project must be the token's).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::views::Link;

/// The tag of the unauthenticated documents.
pub const VERSIONS: &str = "versions";

/// The security scheme's name: Cinder's noauth token in `X-Auth-Token`.
const TOKEN: &str = "X-Auth-Token";

/// The finished document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| finish(super::documented().into_openapi()))
}

fn document_json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec(document()).expect("the document serialises"))
}

/// `GET /openapi.json`, unauthenticated like the version documents.
#[utoipa::path(get, path = "/openapi.json", tag = VERSIONS,
    responses((status = 200, description = "This document.", body = Object)))]
pub async fn serve() -> Response {
    let mut resp = (StatusCode::OK, document_json()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Adds what every authenticated operation shares: the token, the microversion header,
/// the errors any of them may answer (a bad token 401, a bad microversion 400 or 406), and
/// Cinder's fault body on every 4xx and 5xx.
fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "Ashlar Block Storage API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "OpenStack Block Storage (Cinder) API v3 as Ashlar serves it, microversions 3.0 to \
         3.71. Every /v3/... path is also served as /v3/{project_id}/..., the project being \
         the token's. Fields a microversion or the caller's role adds are optional."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        TOKEN,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Auth-Token",
            "Cinder's noauth token `user:project`; the user `admin` is an administrator.",
        ))),
    );
    let fault = RefOr::Ref(Ref::from_schema_name("Fault"));
    components.schemas.insert("Fault".into(), Fault::schema());
    components
        .schemas
        .insert("FaultDetail".into(), FaultDetail::schema());
    let version_header = microversion_header();
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = path == "/" || path == "/v3" || path == "/v3/" || path == "/openapi.json";
        for (method, op) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
        ] {
            let Some(op) = op else { continue };
            if !public {
                authenticated(op, &version_header);
                refusable(op, method, path);
            }
            // Handlers in different modules share names (`show`): the method and path are
            // what is unique.
            op.operation_id = Some(operation_id(method, path));
            for (status, resp) in op.responses.responses.iter_mut() {
                let error = status.starts_with('4') || status.starts_with('5');
                if let RefOr::T(resp) = resp
                    && error
                    && resp.content.is_empty()
                {
                    resp.content.insert(
                        "application/json".into(),
                        RefOr::T(ContentBuilder::new().schema(Some(fault.clone())).build()),
                    );
                }
            }
        }
    }
    doc
}

/// `get /v3/volumes/{id}` → `get_v3_volumes_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !word.is_empty() {
            id.push('_');
            id.push_str(word);
        }
    }
    id
}

fn authenticated(op: &mut Operation, version_header: &Parameter) {
    op.security = Some(vec![SecurityRequirement::new(TOKEN, Vec::<String>::new())]);
    op.parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(version_header.clone()));
    for (status, why) in [
        ("400", "Bad input: the body, the query or the microversion."),
        ("401", "No token, or not a valid one."),
        ("406", "A microversion outside 3.0 to 3.71."),
    ] {
        op.responses
            .responses
            .entry(status.into())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(why).build()));
    }
}

/// 403 where the policy table asks more than a reader's role.
fn refusable(op: &mut Operation, method: &str, path: &str) {
    if super::policy_may_refuse(method, path) {
        op.responses
            .responses
            .entry("403".into())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description("Policy does not allow it to the caller's role.")
                        .build(),
                )
            });
    }
}

/// `OpenStack-API-Version: volume 3.N` (or `latest`); none means 3.0.
fn microversion_header() -> Parameter {
    ParameterBuilder::new()
        .name("OpenStack-API-Version")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The microversion asked for, `volume 3.N` (3.0 to 3.71) or `volume latest`; \
             3.0 without it. The response says which one answered in the same header.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^volume (latest|3\.([0-9]|[1-6][0-9]|7[01]))$")),
        ))
        .build()
}

/// Cinder's fault body: one key naming the kind of error (`badRequest`, `itemNotFound`,
/// …) over its code and message.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub bad_request: Option<FaultDetail>,
    pub unauthorized: Option<FaultDetail>,
    pub forbidden: Option<FaultDetail>,
    pub item_not_found: Option<FaultDetail>,
    pub bad_method: Option<FaultDetail>,
    pub conflicting_request: Option<FaultDetail>,
    pub over_limit: Option<FaultDetail>,
    pub bad_media_type: Option<FaultDetail>,
    pub not_implemented: Option<FaultDetail>,
    pub service_unavailable: Option<FaultDetail>,
    pub compute_fault: Option<FaultDetail>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct FaultDetail {
    pub code: u16,
    pub message: String,
    /// Over quota only: `"0"`, also in the `Retry-After` header.
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

/// Keys and values as strings: metadata, extra specs, QoS specs.
pub type StringMap = BTreeMap<String, String>;

// ---- query parameters ----

/// What a list takes besides its filters (`name`, `status`, … as Cinder's
/// `resource_filters.json` allows).
#[derive(Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (never more than 1000).
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Start after this id.
    pub marker: Option<String>,
    /// `key[:asc|desc],…`
    pub sort: Option<String>,
    pub sort_key: Option<String>,
    /// `asc` or `desc`.
    pub sort_dir: Option<String>,
    /// Administrators: every project's, or `project_id`'s.
    pub all_tenants: Option<bool>,
    pub project_id: Option<String>,
}

/// What a transfer list takes.
#[derive(Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Administrators: every project's.
    pub all_tenants: Option<bool>,
}

/// `GET /v3/scheduler-stats/get_pools`.
#[derive(Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PoolParams {
    /// With each pool's capabilities.
    pub detail: Option<bool>,
}

/// `GET /v3/os-quota-sets/{project_id}`.
#[derive(Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuotaParams {
    /// Each resource's limit, use and reservations instead of its limit.
    pub usage: Option<bool>,
}

// ---- versions ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Versions {
    pub versions: Vec<Version>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Version {
    pub id: String,
    pub status: String,
    pub version: String,
    pub min_version: String,
    pub updated: String,
    pub links: Vec<Link>,
    #[serde(rename = "media-types")]
    pub media_types: Vec<MediaType>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MediaType {
    pub base: String,
    #[serde(rename = "type")]
    pub media_type: String,
}

// ---- volumes ----

/// `POST /v3/volumes`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeCreateRequest {
    pub volume: VolumeCreate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeCreate {
    /// GiB, 1 to 2147483647; may be left out when a source gives it.
    #[schema(minimum = 1, maximum = 2147483647)]
    pub size: Option<i64>,
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    /// A Glance image (id, a URL ending in one, or a name) to make the volume from; it
    /// must be `active`. Needs `[glance]`.
    #[serde(rename = "imageRef")]
    pub image_ref: Option<String>,
    pub metadata: Option<StringMap>,
    pub multiattach: Option<bool>,
}

/// `PUT /v3/volumes/{id}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeUpdateRequest {
    pub volume: VolumeUpdate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeUpdate {
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    pub metadata: Option<StringMap>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeBody {
    #[schema(value_type = super::views::VolumeDetail)]
    pub volume: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeDetailList {
    #[schema(value_type = Vec<super::views::VolumeDetail>)]
    pub volumes: Vec<Value>,
    pub volumes_links: Option<Vec<Link>>,
    /// With `with_count=true` (3.45).
    pub count: Option<i64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeSummaryList {
    #[schema(value_type = Vec<super::views::VolumeSummary>)]
    pub volumes: Vec<Value>,
    pub volumes_links: Option<Vec<Link>>,
    pub count: Option<i64>,
}

// ---- manage ----

/// `POST /v3/manageable_volumes` (3.8) or `POST /v3/os-volume-manage`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManageRequest {
    pub volume: ManageVolume,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManageVolume {
    /// The storage on the backend, as its driver names it: `{"source-name": "…"}` or
    /// `{"source-id": "…"}`.
    #[schema(value_type = Object)]
    pub r#ref: Value,
    /// `HOST@BACKEND#POOL` holding the storage; one of `host` and `cluster`.
    pub host: Option<String>,
    /// 3.16: `CLUSTER@BACKEND#POOL` instead of `host`.
    pub cluster: Option<String>,
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    /// A type's name or id.
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: Option<StringMap>,
    pub bootable: Option<bool>,
}

/// What a manageable listing takes.
#[derive(Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ManageableParams {
    /// `HOST@BACKEND[#POOL]`; one of `host` and `cluster` (3.17).
    pub host: Option<String>,
    pub cluster: Option<String>,
    /// At most this many (never more than 1000).
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
    /// Start after this reference (JSON, as listed).
    pub marker: Option<String>,
    /// `reference` or `size`, `[:asc|desc]`; `reference:desc` by default.
    pub sort: Option<String>,
    pub sort_key: Option<String>,
    pub sort_dir: Option<String>,
}

/// `GET /v3/manageable_volumes[/detail]`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManageableList {
    #[serde(rename = "manageable-volumes")]
    pub manageable_volumes: Vec<Manageable>,
}

/// One piece of storage a backend holds. The detail list adds `reason_not_safe`,
/// `cinder_id` and `extra_info`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Manageable {
    #[schema(value_type = Object)]
    pub reference: Value,
    /// GiB, rounded up.
    pub size: i64,
    pub safe_to_manage: bool,
    pub reason_not_safe: Option<String>,
    pub cinder_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub extra_info: Option<Value>,
}

/// `GET /v3/manageable_snapshots[/detail]`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManageableSnapshotList {
    #[serde(rename = "manageable-snapshots")]
    pub manageable_snapshots: Vec<ManageableSnapshot>,
}

/// One snapshot a backend holds: as [`Manageable`], with the reference of its volume.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManageableSnapshot {
    #[schema(value_type = Object)]
    pub reference: Value,
    #[schema(value_type = Object)]
    pub source_reference: Value,
    /// GiB, rounded up.
    pub size: i64,
    pub safe_to_manage: bool,
    pub reason_not_safe: Option<String>,
    pub cinder_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub extra_info: Option<Value>,
}

/// `GET /v3/volumes/summary` (3.12).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumesSummary {
    #[serde(rename = "volume-summary")]
    pub volume_summary: VolumeSummaryCounts,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeSummaryCounts {
    pub total_count: i64,
    pub total_size: i64,
    /// 3.36: each metadata key with its distinct values.
    pub metadata: Option<BTreeMap<String, Vec<String>>>,
}

/// One action: `{"os-extend": {"new_size": 2}}`, `{"os-reset_status": {…}}`, ….
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(value_type = BTreeMap<String, Object>)]
pub struct Action(pub BTreeMap<String, Value>);

/// What an action answers, when it answers a body (connection info, image metadata, …).
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ActionResult(pub Value);

// ---- metadata ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Metadata {
    pub metadata: StringMap,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Meta {
    pub meta: StringMap,
}

// ---- snapshots ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SnapshotCreateRequest {
    pub snapshot: SnapshotCreate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SnapshotCreate {
    pub volume_id: String,
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    pub force: Option<bool>,
    pub metadata: Option<StringMap>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SnapshotUpdateRequest {
    pub snapshot: VolumeUpdate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_id: String,
    pub status: String,
    pub size: i64,
    pub metadata: StringMap,
    /// Show and the detailed list.
    #[serde(rename = "os-extended-snapshot-attributes:progress")]
    pub progress: Option<String>,
    #[serde(rename = "os-extended-snapshot-attributes:project_id")]
    pub project_id: Option<String>,
    /// 3.14.
    pub group_snapshot_id: Option<String>,
    /// 3.41.
    pub user_id: Option<String>,
    /// 3.65.
    pub consumes_quota: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SnapshotBody {
    pub snapshot: Snapshot,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SnapshotList {
    pub snapshots: Vec<Snapshot>,
    pub snapshots_links: Option<Vec<Link>>,
    pub count: Option<i64>,
}

// ---- backups ----

/// `POST /v3/backups`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupCreateRequest {
    pub backup: BackupCreate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupCreate {
    pub volume_id: String,
    #[schema(max_length = 255)]
    pub container: Option<String>,
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    /// Only the chunks changed since the volume's latest available backup.
    pub incremental: Option<bool>,
    /// Back up an in-use volume (through a temporary copy).
    pub force: Option<bool>,
    /// Back up this snapshot of the volume.
    pub snapshot_id: Option<String>,
    /// 3.43.
    pub metadata: Option<StringMap>,
    pub availability_zone: Option<String>,
}

/// `PUT /v3/backups/{id}` (3.9).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupUpdateRequest {
    pub backup: VolumeUpdate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupSummary {
    pub id: String,
    pub name: Option<String>,
    pub links: Vec<Link>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupSummaryBody {
    pub backup: BackupSummary,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Backup {
    pub id: String,
    pub status: String,
    pub size: i64,
    pub object_count: i64,
    pub availability_zone: Option<String>,
    pub container: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub fail_reason: Option<String>,
    pub volume_id: String,
    pub links: Vec<Link>,
    pub is_incremental: bool,
    pub has_dependent_backups: bool,
    pub snapshot_id: Option<String>,
    pub data_timestamp: Option<String>,
    /// 3.43.
    pub metadata: Option<StringMap>,
    /// 3.56.
    pub user_id: Option<String>,
    /// Administrators, 3.18.
    #[serde(rename = "os-backup-project-attr:project_id")]
    pub project_id: Option<String>,
}

/// `GET /v3/backups`: summaries.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupSummaryList {
    pub backups: Vec<BackupSummary>,
    pub backups_links: Option<Vec<Link>>,
    /// With `with_count=true` (3.45).
    pub count: Option<i64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupBody {
    pub backup: Backup,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupList {
    pub backups: Vec<Backup>,
    pub backups_links: Option<Vec<Link>>,
    /// With `with_count=true` (3.45).
    pub count: Option<i64>,
}

/// `POST /v3/backups/{id}/restore`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupRestoreRequest {
    pub restore: BackupRestore,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupRestore {
    /// An existing available volume at least the backup's size; none: a new volume.
    pub volume_id: Option<String>,
    /// The new volume's name.
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RestoreBody {
    pub restore: Restored,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Restored {
    pub backup_id: String,
    pub volume_id: String,
    pub volume_name: Option<String>,
}

/// An exported backup record, and what `import_record` takes.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupRecordBody {
    #[serde(rename = "backup-record")]
    pub backup_record: BackupRecord,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupRecord {
    pub backup_service: String,
    /// Base64 of the backup's record.
    pub backup_url: String,
}

/// `GET /v3/backups/{id}/progress` (Ashlar's).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupProgressBody {
    pub progress: BackupProgress,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupProgress {
    pub backup_id: String,
    pub status: String,
    pub done_bytes: i64,
    pub total_bytes: i64,
    pub percent: f64,
}

// ---- types ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeCreateRequest {
    pub volume_type: VolumeTypeCreate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeCreate {
    #[schema(max_length = 255)]
    pub name: String,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    #[serde(rename = "os-volume-type-access:is_public")]
    pub is_public: Option<bool>,
    pub extra_specs: Option<StringMap>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeUpdateRequest {
    pub volume_type: VolumeTypeUpdate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeUpdate {
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[schema(max_length = 255)]
    pub description: Option<String>,
    pub is_public: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    /// Not in update's answer.
    #[serde(rename = "os-volume-type-access:is_public")]
    pub access_is_public: Option<bool>,
    /// Administrators, create and update.
    pub extra_specs: Option<StringMap>,
    /// Administrators' show and list.
    pub qos_specs_id: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeBody {
    pub volume_type: VolumeType,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VolumeTypeList {
    pub volume_types: Vec<VolumeType>,
    pub volume_types_links: Option<Vec<Link>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExtraSpecs {
    pub extra_specs: StringMap,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TypeAccess {
    pub volume_type_access: Vec<TypeAccessEntry>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TypeAccessEntry {
    pub volume_type_id: String,
    pub project_id: String,
}

// ---- attachments ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttachmentCreateRequest {
    pub attachment: AttachmentCreate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttachmentCreate {
    pub volume_uuid: String,
    pub instance_uuid: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub connector: Option<Value>,
    /// `rw` or `ro` (3.54).
    pub mode: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttachmentUpdateRequest {
    pub attachment: AttachmentUpdate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttachmentUpdate {
    #[schema(value_type = Object)]
    pub connector: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub id: String,
    pub status: String,
    pub instance: Option<String>,
    pub volume_id: String,
    /// The detailed views.
    pub attached_at: Option<String>,
    pub detached_at: Option<String>,
    pub attach_mode: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub connection_info: Option<Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttachmentBody {
    pub attachment: Attachment,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AttachmentList {
    pub attachments: Vec<Attachment>,
    pub attachments_links: Option<Vec<Link>>,
}

// ---- messages ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub message_level: String,
    pub user_message: String,
    pub event_id: String,
    pub created_at: String,
    pub guaranteed_until: Option<String>,
    pub request_id: Option<String>,
    pub resource_type: Option<String>,
    pub resource_uuid: Option<String>,
    pub links: Vec<Link>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MessageBody {
    pub message: Message,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<Message>,
    pub messages_links: Option<Vec<Link>>,
}

// ---- pools, zones, limits, quotas ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Pools {
    pub pools: Vec<Pool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub name: String,
    /// With `detail=true`: the pool's capabilities.
    #[schema(value_type = Option<Object>)]
    pub capabilities: Option<Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AvailabilityZones {
    #[serde(rename = "availabilityZoneInfo")]
    pub availability_zone_info: Vec<AvailabilityZone>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AvailabilityZone {
    #[serde(rename = "zoneName")]
    pub zone_name: String,
    #[serde(rename = "zoneState")]
    pub zone_state: ZoneState,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ZoneState {
    pub available: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Limits {
    #[schema(value_type = Object)]
    pub limits: Value,
}

/// A project's quota set: its `id` and each resource's limit (`-1` unlimited), or with
/// `usage=true` each one's `{"limit", "in_use", "reserved", "allocated"?}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuotaSetBody {
    pub quota_set: BTreeMap<String, QuotaValue>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuotaClassSetBody {
    pub quota_class_set: BTreeMap<String, QuotaValue>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum QuotaValue {
    Limit(i64),
    Usage(QuotaUsage),
    /// The set's `id`.
    Id(String),
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuotaUsage {
    pub limit: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub allocated: Option<i64>,
}

// ---- transfers ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TransferCreateRequest {
    pub transfer: TransferCreate,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TransferCreate {
    pub volume_id: String,
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// `/volume-transfers` at 3.55 or later.
    pub no_snapshots: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TransferAcceptRequest {
    pub accept: TransferAccept,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TransferAccept {
    pub auth_key: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Transfer {
    pub id: String,
    pub name: Option<String>,
    pub volume_id: String,
    pub links: Vec<Link>,
    /// Create only: the key the receiver needs.
    pub auth_key: Option<String>,
    /// Detail and create.
    pub created_at: Option<String>,
    /// 3.55.
    pub no_snapshots: Option<bool>,
    /// 3.57.
    pub destination_project_id: Option<String>,
    pub source_project_id: Option<String>,
    pub accepted: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TransferBody {
    pub transfer: Transfer,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TransferList {
    pub transfers: Vec<Transfer>,
    pub transfers_links: Option<Vec<Link>>,
}

// ---- services ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Services {
    pub services: Vec<Service>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Service {
    pub binary: String,
    pub host: String,
    pub zone: String,
    pub status: String,
    pub state: String,
    pub updated_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// 3.7.
    pub cluster: Option<String>,
    /// 3.32.
    pub backend_state: Option<String>,
    /// Cinder's replication fields, for volume services.
    pub replication_status: Option<String>,
    pub active_backend_id: Option<String>,
    pub frozen: Option<bool>,
}

/// `PUT /v3/os-services/{action}`: `{"host": …, "binary": …, "disabled_reason"?: …}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ServiceUpdateRequest {
    pub host: String,
    pub binary: Option<String>,
    pub disabled_reason: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ServiceUpdated(pub Value);

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Capabilities(pub Value);

// ---- QoS specs ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosSpecsCreateRequest {
    /// `name`, optionally `consumer` (`front-end`, `back-end`, `both`), and the specs.
    pub qos_specs: StringMap,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosSpecs {
    pub id: String,
    pub name: String,
    pub consumer: String,
    pub specs: StringMap,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosSpecsBody {
    pub qos_specs: QosSpecs,
    pub links: Vec<Link>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosSpecsList {
    pub qos_specs: Vec<QosSpecs>,
}

/// What update answers: the keys set.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosSpecsKeys {
    pub qos_specs: StringMap,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosDeleteKeys {
    pub keys: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosAssociations {
    pub qos_associations: Vec<QosAssociation>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QosAssociation {
    pub association_type: String,
    pub name: String,
    pub id: String,
}

// ---- default types ----

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DefaultTypeSetRequest {
    pub default_type: DefaultTypeSet,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DefaultTypeSet {
    /// The type's name or id.
    pub volume_type: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DefaultType {
    pub project_id: String,
    pub volume_type_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DefaultTypeBody {
    pub default_type: DefaultType,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DefaultTypeList {
    pub default_types: Vec<DefaultType>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_authenticated_operation_names_the_token_and_the_microversion() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["X-Auth-Token"]["in"],
            "header"
        );
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() > 40, "only {} paths", paths.len());
        let params = &paths["/v3/volumes/detail"]["get"]["parameters"];
        assert!(
            params
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "limit" && p["in"] == "query"),
            "{params}"
        );
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let public = ["/", "/v3", "/v3/", "/openapi.json"].contains(&path.as_str());
                let header = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "OpenStack-API-Version");
                assert_eq!(header, !public, "{method} {path}");
                for (status, resp) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') {
                        assert_eq!(
                            resp["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/Fault",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
