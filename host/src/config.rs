//! The operator's configuration (`ashlar.toml`). Every field has a default, so
//! `ashlar serve` with no file runs one backend, `local`, on the bundled nfs driver with
//! sparse raw files under the data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::Grants;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config is not valid: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file this config was read from, if any: what `ashlar backend add` reads a new
    /// backend's section from.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Address the Block Storage API listens on. Default `127.0.0.1:8776`, Cinder's port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the database, the compiled-component cache and the default share live.
    /// Default `./ashlar-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Database URL. Default: a SQLite file `ashlar.db` in the data directory.
    #[serde(default)]
    pub database_url: Option<String>,
    /// This host's name, the `host` in `host@backend#pool`. Default `ashlar`.
    #[serde(default = "default_host_name")]
    pub host_name: String,
    /// Availability zone volumes land in when the request names none. Default `nova`.
    #[serde(default = "default_availability_zone")]
    pub default_availability_zone: String,
    /// Seconds between `get_volume_stats` polls of each backend. Default 60.
    #[serde(default = "default_stats_interval")]
    pub stats_interval_secs: u64,
    /// Seconds a swapped-in driver is watched; a trap, missed deadline or failed health
    /// probe in that time rolls the backend back to its previous driver. Default 30.
    #[serde(default = "default_probation_secs")]
    pub probation_secs: u64,
    /// Seconds a stopping host (SIGTERM or Ctrl-C) gives the requests and jobs it is
    /// running to finish, after it has stopped taking new ones; what is still running then
    /// is left for recovery on the next start (oslo.service's `graceful_shutdown_timeout`).
    /// Default 60.
    #[serde(default = "default_graceful_shutdown_timeout_secs")]
    pub graceful_shutdown_timeout_secs: u64,
    /// Seconds between this host's service heartbeats (Cinder's `report_interval`).
    /// Default 10.
    #[serde(default = "default_report_interval")]
    pub report_interval: u64,
    /// Seconds without a heartbeat after which `os-services` shows a service `down`
    /// (Cinder's `service_down_time`). Default 60.
    #[serde(default = "default_service_down_time")]
    pub service_down_time: u64,
    /// Characters in a volume transfer's generated auth key (Cinder's
    /// `volume_transfer_key_length`), 8 to 64. Default 16.
    #[serde(default = "default_volume_transfer_key_length")]
    pub volume_transfer_key_length: usize,
    /// Scheduler settings.
    #[serde(default)]
    pub scheduler: SchedulerSection,
    /// Block Storage API settings.
    #[serde(default)]
    pub api: ApiSection,
    /// Every project's default quotas (Cinder's `quota_*` options).
    #[serde(default)]
    pub quota: QuotaSection,
    /// How callers are authenticated.
    #[serde(default)]
    pub auth: AuthSection,
    /// Volume types created at start-up if missing (name → extra specs).
    #[serde(default)]
    pub volume_types: BTreeMap<String, BTreeMap<String, String>>,
    /// The storage backends, by name. Default: one backend `local` (see [`Config::default_backend`]).
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// The backup store (Cinder's `backup_driver`): a `backup-driver` component with its
    /// grants and settings. Default: the bundled posix store under the data directory.
    #[serde(default)]
    pub backup: Option<BackupConfig>,
    /// The image service volumes are made from and uploaded to (Cinder's `glance_*`
    /// options). Default: none, and a volume from `imageRef` or `os-volume_upload_image`
    /// answers that images are not configured.
    #[serde(default)]
    pub glance: Option<GlanceSection>,
}

/// `[glance]`: the Image service v2 endpoint the host downloads images from and uploads
/// volumes to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlanceSection {
    /// The Image service's base URL, e.g. `http://127.0.0.1:9292` (Cinder's
    /// `glance_api_servers`); `/v2/images` is appended. Only `http://` is served.
    pub endpoint: String,
    /// A token sent as `X-Auth-Token` with every request; none for a Glance without
    /// Keystone. Default: none.
    #[serde(default)]
    pub token: Option<String>,
    /// Seconds to wait to connect to the Image service. Default 10.
    #[serde(default = "default_glance_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds an API call (show, create, delete) may take. Default 60 (Cinder's
    /// `glance_request_timeout` has none).
    #[serde(default = "default_glance_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Seconds a download or an upload may stall without a byte moving. Default 300.
    #[serde(default = "default_glance_transfer_idle_secs")]
    pub transfer_idle_secs: u64,
    /// Whether `os-volume_upload_image` with `force` may upload an `in-use` volume
    /// (Cinder's `enable_force_upload`). Default false: `force` is ignored, as in Cinder.
    #[serde(default)]
    pub enable_force_upload: bool,
    /// The project that owns the image-volume cache's volumes (Cinder's
    /// `cinder_internal_tenant_project_id`); they count against no tenant's quota and
    /// appear in no tenant's lists. Default `ashlar-internal`.
    #[serde(default = "default_internal_project_id")]
    pub internal_project_id: String,
    /// Where images are downloaded and converted while they are copied to or from a
    /// volume (Cinder's `image_conversion_dir`); emptied at start-up, so give the host a
    /// directory of its own. A faster disk or a tmpfs large enough for the largest image
    /// speeds copies up. Default `<data_dir>/images`.
    #[serde(default)]
    pub image_conversion_dir: Option<PathBuf>,
}

fn default_glance_connect_timeout_secs() -> u64 {
    10
}
fn default_glance_request_timeout_secs() -> u64 {
    60
}
fn default_glance_transfer_idle_secs() -> u64 {
    300
}
fn default_internal_project_id() -> String {
    "ashlar-internal".into()
}

impl GlanceSection {
    fn check(&self) -> Result<(), ConfigError> {
        let rest = self.endpoint.strip_prefix("http://").ok_or_else(|| {
            ConfigError::Invalid(format!(
                "[glance] endpoint `{}` must be an http:// URL (https is not served)",
                self.endpoint
            ))
        })?;
        if rest.trim_end_matches('/').is_empty() {
            return Err(ConfigError::Invalid(
                "[glance] endpoint names no host".into(),
            ));
        }
        if self.request_timeout_secs == 0 || self.transfer_idle_secs == 0 {
            return Err(ConfigError::Invalid(
                "[glance] request_timeout_secs and transfer_idle_secs must be above 0".into(),
            ));
        }
        if self.internal_project_id.is_empty() {
            return Err(ConfigError::Invalid(
                "[glance] internal_project_id must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// The backup service's store and how the host's engine writes to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// A bundled backup driver by name (`backup-posix`, `backup-s3`), or a path to a
    /// `.wasm` component whose `plugin.toml` sits beside it or is given as `manifest`.
    pub driver: String,
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// Container new backups go to when the request names none (Cinder's
    /// `backup_container`). Default `volumebackups`.
    #[serde(default = "default_backup_container")]
    pub container: String,
    /// As a backend's `trusted_keys`: only components signed by one of these load.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    #[serde(default)]
    pub grants: Grants,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    #[serde(default = "default_exec_dirs")]
    pub exec_dirs: Vec<PathBuf>,
    /// Size of the chunks a volume is cut into, in MiB (Cinder's
    /// `backup_file_size`/`chunk_size` options). Default: the engine's own
    /// (`EngineSettings::default`). Each chunk crosses into the driver whole, so it must
    /// fit well within `limits.memory_mib` (at most a quarter of it).
    #[serde(default)]
    pub chunk_size_mib: Option<u64>,
    /// zstd level chunks are compressed at, -7 (fastest) to 22 (smallest). Default: the
    /// engine's own.
    #[serde(default)]
    pub zstd_level: Option<i32>,
    /// Threads that read, hash and compress one backup or restore. Default: the engine's
    /// own.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Store calls one backup or restore keeps in flight. Each takes one of the driver's
    /// `limits.instances` while it runs, so more than that only queues. Default: the
    /// engine's own.
    #[serde(default)]
    pub store_parallelism: Option<usize>,
}

fn default_backup_container() -> String {
    "volumebackups".into()
}

/// The name `ashlar plugin swap|rollback` and plugin events give the backup store; no
/// backend may take it.
pub const BACKUP_STORE_NAME: &str = crate::capabilities::BACKUP_STORE;

impl BackupConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("[backup] {m}")));
        let c = &self.container;
        if c.is_empty()
            || c.len() > 255
            || c.starts_with('.')
            || !c
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            return invalid(format!(
                "container `{c}` may only use letters, digits, `-`, `_` and `.` (not first), at most 255"
            ));
        }
        check_limits(BACKUP_STORE_NAME, "limits", &self.limits).map_err(|e| {
            ConfigError::Invalid(e.to_string().replace("backend backup:", "[backup]"))
        })?;
        if let Some(dir) = self.exec_dirs.iter().find(|d| d.is_relative()) {
            return invalid(format!(
                "exec_dirs entry `{}` must be an absolute directory",
                dir.display()
            ));
        }
        if let Some(mib) = self.chunk_size_mib
            && (mib == 0 || mib > self.limits.memory_mib / 4)
        {
            return invalid(format!(
                "chunk_size_mib is {mib}; it must be from 1 to a quarter of limits.memory_mib ({} MiB), since each chunk crosses into the driver whole",
                self.limits.memory_mib / 4
            ));
        }
        if let Some(level) = self.zstd_level
            && !(-7..=22).contains(&level)
        {
            return invalid(format!("zstd_level is {level}; it must be from -7 to 22"));
        }
        for (field, value) in [
            ("threads", self.threads),
            ("store_parallelism", self.store_parallelism),
        ] {
            if value == Some(0) {
                return invalid(format!("{field} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The sandbox limits every driver section shares.
fn check_limits(name: &str, section: &str, limits: &Limits) -> Result<(), ConfigError> {
    if limits.instances == 0 {
        return Err(ConfigError::Invalid(format!(
            "backend {name}: {section}.instances must be at least 1"
        )));
    }
    if limits.memory_mib == 0 || limits.call_deadline_ms == 0 {
        return Err(ConfigError::Invalid(format!(
            "backend {name}: {section}.memory_mib and {section}.call_deadline_ms must be above 0"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// Cinder's `capacity_weight_multiplier`: positive spreads volumes over the pool with
    /// most free space, negative stacks them. Default 1.0.
    #[serde(default = "default_capacity_weight_multiplier")]
    pub capacity_weight_multiplier: f64,
    /// Cinder's `scheduler_max_attempts`: a create whose driver fails is rescheduled to
    /// another backend until it has been tried on this many. 1 never reschedules.
    /// Default 3.
    #[serde(default = "default_scheduler_max_attempts")]
    pub scheduler_max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// MiB of rendered volume views kept for lists: a list renders only the volumes that
    /// changed since it last showed them to the same kind of caller (same microversion,
    /// role, project and endpoint). 0 renders every volume every time. Default 48, about
    /// 40,000 volumes' detail views.
    #[serde(default = "default_list_view_cache_mib")]
    pub list_view_cache_mib: u64,
    /// Most metadata items one volume or snapshot may carry (and extra specs one volume
    /// type); a request that would leave more is refused with 403, as Nova refuses
    /// server metadata beyond its `metadata_items` quota. Cinder itself sets no cap.
    /// Default 128, Nova's `metadata_items`.
    #[serde(default = "default_max_metadata_items")]
    pub max_metadata_items: usize,
    /// Seconds a client has to send a request's headers: counted from the connection's
    /// accept for its first request, from the request's first byte for the next ones on a
    /// kept-alive connection. A client that is late is disconnected without an answer
    /// (it may not have said enough to be answered). Default 10.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body once its headers are in; a
    /// request still waiting for its body then is answered 408 and its connection closed.
    /// Default 30.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed;
    /// also how long a response may stall with its client reading none of it. Default 60.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Largest request body taken, in bytes; a larger one is answered 413 (`overLimit`)
    /// without being read further. Default 114688, Cinder's `max_request_body_size`.
    #[serde(default = "default_max_request_body_size")]
    pub max_request_body_size: u64,
    /// Largest request line plus headers, in bytes; a larger one is answered 431 and its
    /// connection closed. Default 32768.
    #[serde(default = "default_max_header_size")]
    pub max_header_size: usize,
    /// Connections served at once. Beyond it new connections wait in the listen backlog,
    /// not refused, until one ends; meanwhile the connections idle between requests are
    /// closed to make room. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `noauth` (the default): `X-Auth-Token: user:project` is taken at its word, as
    /// Cinder's noauth middleware does; the user `admin` is an administrator, any other a
    /// member. `tokens`: `X-Auth-Token` is an opaque token made by `ashlar token create`,
    /// carrying its user, project and roles (`admin`, `member`, `reader`); a revoked
    /// token is refused within 5 seconds.
    #[serde(default)]
    pub strategy: AuthStrategy,
}

/// See [`AuthSection::strategy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthStrategy {
    #[default]
    Noauth,
    Tokens,
}

impl Default for ApiSection {
    fn default() -> Self {
        toml::from_str("").expect("an empty [api] section is valid")
    }
}

impl ApiSection {
    fn check(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("max_request_body_size", self.max_request_body_size),
            ("max_header_size", self.max_header_size as u64),
            ("max_connections", u64::from(self.max_connections)),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[api] {field} must be above 0"
                )));
            }
        }
        Ok(())
    }
}

fn default_list_view_cache_mib() -> u64 {
    48
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_body_read_timeout_secs() -> u64 {
    30
}
fn default_idle_timeout_secs() -> u64 {
    60
}
fn default_max_request_body_size() -> u64 {
    114_688
}
fn default_max_header_size() -> usize {
    32 * 1024
}
fn default_max_connections() -> u32 {
    1024
}

fn default_max_metadata_items() -> usize {
    128
}

/// The limits of a project that neither it (`PUT os-quota-sets`) nor the `default` quota
/// class (`PUT os-quota-class-sets/default`) sets. `-1` is unlimited. Per-type quotas
/// (`volumes_{type}`, …) are unlimited unless set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSection {
    /// Volumes per project (Cinder's `quota_volumes`). Default 10.
    #[serde(default = "default_volumes")]
    pub volumes: i64,
    /// Snapshots per project (`quota_snapshots`). Default 10.
    #[serde(default = "default_snapshots")]
    pub snapshots: i64,
    /// GiB of volumes and snapshots per project (`quota_gigabytes`). Default 1000.
    #[serde(default = "default_gigabytes")]
    pub gigabytes: i64,
    /// Backups per project (`quota_backups`). Default 10.
    #[serde(default = "default_backups")]
    pub backups: i64,
    /// GiB of backups per project (`quota_backup_gigabytes`). Default 1000.
    #[serde(default = "default_backup_gigabytes")]
    pub backup_gigabytes: i64,
    /// Groups per project (`quota_groups`). Default 10.
    #[serde(default = "default_groups")]
    pub groups: i64,
    /// Largest volume, in GiB (`per_volume_size_limit`). Default -1, no limit.
    #[serde(default = "default_per_volume_gigabytes")]
    pub per_volume_gigabytes: i64,
}

impl Default for QuotaSection {
    fn default() -> Self {
        toml::from_str("").expect("an empty [quota] section is valid")
    }
}

impl QuotaSection {
    fn check(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("volumes", self.volumes),
            ("snapshots", self.snapshots),
            ("gigabytes", self.gigabytes),
            ("backups", self.backups),
            ("backup_gigabytes", self.backup_gigabytes),
            ("groups", self.groups),
            ("per_volume_gigabytes", self.per_volume_gigabytes),
        ] {
            if value < -1 {
                return Err(ConfigError::Invalid(format!(
                    "[quota] {field} is {value}; a limit is -1 (unlimited) or greater"
                )));
            }
        }
        Ok(())
    }
}

fn default_volumes() -> i64 {
    10
}
fn default_snapshots() -> i64 {
    10
}
fn default_gigabytes() -> i64 {
    1000
}
fn default_backups() -> i64 {
    10
}
fn default_backup_gigabytes() -> i64 {
    1000
}
fn default_groups() -> i64 {
    10
}
fn default_per_volume_gigabytes() -> i64 {
    -1
}

impl Default for SchedulerSection {
    fn default() -> Self {
        SchedulerSection {
            capacity_weight_multiplier: default_capacity_weight_multiplier(),
            scheduler_max_attempts: default_scheduler_max_attempts(),
        }
    }
}

/// One backend: which driver component runs it, what it may touch, and its own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// A bundled driver by name (`nfs`), or a path to a `.wasm` component whose
    /// `plugin.toml` sits beside it (same stem, `.toml`) or is given as `manifest`.
    pub driver: String,
    /// The component's manifest when it is not beside the `.wasm`.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// Availability zone of this backend. Default: `default_availability_zone`.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The cluster this backend runs in (Cinder's `cluster`): every host that names the
    /// same cluster for a backend of the same name runs it together, active-active, on
    /// storage each of them reaches. Its volumes are placed on `CLUSTER@BACKEND#POOL`, and
    /// any live host of the cluster runs their jobs and takes over a dead one's. Default:
    /// none, the backend is this host's alone (`HOST@BACKEND`).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Public ed25519 keys (base64, as `ashlar plugin keygen` prints them): when given, the
    /// backend loads, and swaps to, only a component signed by one of them
    /// (`ashlar plugin sign`), its volume driver and its target's alike. A bundled driver
    /// is part of the `ashlar` binary and needs no signature. Default: none, unsigned
    /// components load.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// What the operator allows this backend's driver to touch. Default: nothing.
    #[serde(default)]
    pub grants: Grants,
    /// Sandbox limits for calls into the driver.
    #[serde(default)]
    pub limits: Limits,
    /// The driver's own settings, given to it through the `config` host call.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Named secrets the host adds to the driver's HTTP requests; the driver names one and
    /// never sees its value.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    /// Directories where the host looks up the programs granted to this backend's driver
    /// (and its target's), first match wins, as rootwrap's `exec_dirs`. Default:
    /// `/usr/local/sbin`, `/usr/local/bin`, `/usr/sbin`, `/usr/bin`, `/sbin`, `/bin`.
    #[serde(default = "default_exec_dirs")]
    pub exec_dirs: Vec<PathBuf>,
    /// The target driver that exports this backend's volumes (Cinder's `target_helper`),
    /// for volume drivers that hand over a local device rather than a protocol of their
    /// own (LVM with tgt, for one).
    #[serde(default)]
    pub target: Option<TargetConfig>,
    /// Whether volumes made from an image on this backend keep a cached image-volume, so
    /// the next volume from the same image is a driver clone instead of a download
    /// (Cinder's `image_volume_cache_enabled`). Default false.
    #[serde(default)]
    pub image_volume_cache_enabled: bool,
    /// The most GiB the backend's cached image-volumes may take; the least recently used
    /// are evicted first (Cinder's `image_volume_cache_max_size_gb`). Default 0, no limit.
    #[serde(default)]
    pub image_volume_cache_max_size_gb: u64,
    /// The most cached image-volumes the backend keeps, least recently used evicted first
    /// (Cinder's `image_volume_cache_max_count`). Default 0, no limit.
    #[serde(default)]
    pub image_volume_cache_max_count: u64,
}

/// A `target-driver` component paired with a backend. It runs in its own sandbox with its
/// own grants and settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A bundled target driver by name (`iscsi-tgt`), or a path to a `.wasm` component
    /// whose `plugin.toml` sits beside it or is given as `manifest`.
    pub driver: String,
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    #[serde(default)]
    pub grants: Grants,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
}

/// A secret for a backend's management endpoint.
#[derive(Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Credential {
    /// HTTP basic auth.
    Basic { username: String, password: String },
    /// A bearer token.
    Bearer { token: String },
    /// An S3 (or any AWS-style) access key: the host signs each request that names it with
    /// AWS Signature Version 4.
    AwsSigV4 {
        access_key_id: String,
        secret_access_key: String,
        /// The region requests are signed for. Default `us-east-1` (what S3-compatible
        /// stores such as SeaweedFS, MinIO and Ceph RGW expect unless configured otherwise).
        #[serde(default = "default_sigv4_region")]
        region: String,
        /// The service requests are signed for. Default `s3`.
        #[serde(default = "default_sigv4_service")]
        service: String,
    },
}

fn default_sigv4_region() -> String {
    "us-east-1".into()
}
fn default_sigv4_service() -> String {
    "s3".into()
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::Bearer { .. } => write!(f, "Bearer(<redacted>)"),
            Credential::AwsSigV4 {
                access_key_id,
                region,
                ..
            } => write!(f, "AwsSigV4({access_key_id}, {region}, <redacted>)"),
        }
    }
}

/// Per-backend sandbox limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline for one driver call, in milliseconds. Default 120000.
    #[serde(default = "default_call_deadline_ms")]
    pub call_deadline_ms: u64,
    /// Linear memory ceiling for one driver instance, in MiB. Default 256.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Driver instances kept per backend (calls beyond that wait). Default 4.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Longest a granted program may run, in milliseconds. Default 600000.
    #[serde(default = "default_exec_timeout_ms")]
    pub exec_timeout_ms: u64,
    /// Largest stdout or stderr kept from a granted program, in bytes. Default 1 MiB.
    #[serde(default = "default_exec_output_bytes")]
    pub exec_output_bytes: usize,
    /// Largest HTTP response body accepted, in bytes. Default 16 MiB.
    #[serde(default = "default_http_response_bytes")]
    pub http_response_bytes: usize,
    /// Sandbox failures (traps, missed deadlines, memory ceiling) within
    /// `failure_window_secs` that quarantine the backend: its calls fail fast and the
    /// scheduler passes it by for `quarantine_secs`. 0 never quarantines. Default 5.
    #[serde(default = "default_max_sandbox_failures")]
    pub max_sandbox_failures: u32,
    /// Default 60.
    #[serde(default = "default_failure_window_secs")]
    pub failure_window_secs: u64,
    /// Default 60.
    #[serde(default = "default_quarantine_secs")]
    pub quarantine_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_deadline_ms: default_call_deadline_ms(),
            memory_mib: default_memory_mib(),
            instances: default_instances(),
            exec_timeout_ms: default_exec_timeout_ms(),
            exec_output_bytes: default_exec_output_bytes(),
            http_response_bytes: default_http_response_bytes(),
            max_sandbox_failures: default_max_sandbox_failures(),
            failure_window_secs: default_failure_window_secs(),
            quarantine_secs: default_quarantine_secs(),
        }
    }
}

pub fn default_exec_dirs() -> Vec<PathBuf> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

fn default_listen() -> String {
    "127.0.0.1:8776".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("ashlar-data")
}
fn default_host_name() -> String {
    "ashlar".into()
}
fn default_availability_zone() -> String {
    "nova".into()
}
fn default_stats_interval() -> u64 {
    60
}
fn default_probation_secs() -> u64 {
    30
}
fn default_report_interval() -> u64 {
    10
}
fn default_service_down_time() -> u64 {
    60
}
fn default_volume_transfer_key_length() -> usize {
    16
}
fn default_capacity_weight_multiplier() -> f64 {
    1.0
}
fn default_scheduler_max_attempts() -> u32 {
    3
}
fn default_graceful_shutdown_timeout_secs() -> u64 {
    60
}
fn default_call_deadline_ms() -> u64 {
    120_000
}
fn default_memory_mib() -> u64 {
    256
}
fn default_instances() -> u32 {
    4
}
fn default_exec_timeout_ms() -> u64 {
    600_000
}
fn default_exec_output_bytes() -> usize {
    1 << 20
}
fn default_max_sandbox_failures() -> u32 {
    5
}
fn default_failure_window_secs() -> u64 {
    60
}
fn default_quarantine_secs() -> u64 {
    60
}
fn default_http_response_bytes() -> usize {
    16 << 20
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("an empty config is valid")
    }
}

impl Config {
    /// Reads `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Fills in what depends on the data directory, and the default backend when the
    /// config names none. Call after command-line overrides are applied.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        if self.data_dir.is_relative() {
            let cwd = std::env::current_dir().map_err(|e| {
                ConfigError::Invalid(format!("cannot read the current directory: {e}"))
            })?;
            self.data_dir = cwd.join(&self.data_dir);
        }
        self.api.check()?;
        if !(8..=64).contains(&self.volume_transfer_key_length) {
            return Err(ConfigError::Invalid(format!(
                "volume_transfer_key_length is {}; it must be from 8 to 64",
                self.volume_transfer_key_length
            )));
        }
        if self.report_interval == 0 || self.service_down_time == 0 {
            return Err(ConfigError::Invalid(
                "report_interval and service_down_time must be above 0 seconds".into(),
            ));
        }
        self.quota.check()?;
        if self.backends.is_empty() {
            self.backends
                .insert("local".into(), Config::default_backend(&self.data_dir));
        }
        for (name, backend) in &self.backends {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::Invalid(format!(
                    "backend name `{name}` may only use letters, digits, `-` and `_`"
                )));
            }
            if name == BACKUP_STORE_NAME {
                return Err(ConfigError::Invalid(format!(
                    "backend name `{name}` is reserved for the backup store ([backup]); name the backend otherwise"
                )));
            }
            let target_limits = backend.target.as_ref().map(|t| &t.limits);
            for (section, limits) in std::iter::once(("limits", &backend.limits))
                .chain(target_limits.map(|l| ("target.limits", l)))
            {
                check_limits(name, section, limits)?;
            }
            if let Some(dir) = backend.exec_dirs.iter().find(|d| d.is_relative()) {
                return Err(ConfigError::Invalid(format!(
                    "backend {name}: exec_dirs entry `{}` must be an absolute directory",
                    dir.display()
                )));
            }
        }
        let backup = self
            .backup
            .get_or_insert_with(|| Config::default_backup(&self.data_dir));
        backup.check()?;
        if let Some(glance) = &self.glance {
            glance.check()?;
        }
        Ok(())
    }

    /// The embedded backup store: the posix backup driver on `<data_dir>/backups`, with
    /// exactly the grant its manifest asks for (that directory).
    pub fn default_backup(data_dir: &Path) -> BackupConfig {
        let dir = data_dir.join("backups");
        let dir_str = dir.to_string_lossy().into_owned();
        BackupConfig {
            driver: "backup-posix".into(),
            manifest: None,
            container: default_backup_container(),
            trusted_keys: Vec::new(),
            grants: Grants {
                directory: vec![dir],
                ..Grants::default()
            },
            limits: Limits::default(),
            settings: BTreeMap::from([("backup_path".to_string(), dir_str)]),
            credentials: BTreeMap::new(),
            exec_dirs: default_exec_dirs(),
            chunk_size_mib: None,
            zstd_level: None,
            threads: None,
            store_parallelism: None,
        }
    }

    /// The embedded default: the nfs driver on a local directory, sparse raw files, with
    /// exactly the grants the driver's manifest asks for.
    pub fn default_backend(data_dir: &Path) -> BackendConfig {
        let share = data_dir.join("volumes");
        let share = share.to_string_lossy().into_owned();
        let grants: Grants = toml::from_str(&format!(
            "exec = [\"qemu-img\", \"rm\", \"df\", \"du\", \"mv\"]\nblock = [{share:?}]\n"
        ))
        .expect("default grants are valid");
        BackendConfig {
            driver: "nfs".into(),
            manifest: None,
            availability_zone: None,
            cluster: None,
            trusted_keys: Vec::new(),
            grants,
            limits: Limits::default(),
            credentials: BTreeMap::new(),
            exec_dirs: default_exec_dirs(),
            target: None,
            image_volume_cache_enabled: false,
            image_volume_cache_max_size_gb: 0,
            image_volume_cache_max_count: 0,
            settings: BTreeMap::from([
                ("share_path".to_string(), share),
                ("volume_format".to_string(), "raw".to_string()),
                ("sparse_volumes".to_string(), "true".to_string()),
            ]),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("ashlar.db").display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_the_local_backend() {
        let mut c = Config {
            data_dir: PathBuf::from("/tmp/x"),
            ..Config::default()
        };
        c.finish().unwrap();
        assert_eq!(c.listen, "127.0.0.1:8776");
        let local = &c.backends["local"];
        assert_eq!(local.driver, "nfs");
        assert_eq!(local.settings["share_path"], "/tmp/x/volumes");
        assert_eq!(c.database_url(), "sqlite:///tmp/x/ashlar.db?mode=rwc");
        let backup = c.backup.as_ref().expect("a default backup store");
        assert_eq!(backup.driver, "backup-posix");
        assert_eq!(backup.container, "volumebackups");
        assert_eq!(backup.settings["backup_path"], "/tmp/x/backups");
        assert_eq!(backup.grants.directory, [PathBuf::from("/tmp/x/backups")]);
        assert_eq!(backup.chunk_size_mib, None);
    }

    #[test]
    fn the_backup_section_is_checked_like_a_backend() {
        let finish = |text: &str| {
            let mut c: Config = toml::from_str(text).unwrap();
            c.finish().map(|_| c)
        };
        let c = finish(
            "[backup]\ndriver = \"backup-s3\"\ncontainer = \"b1\"\nchunk_size_mib = 32\nzstd_level = 3\nthreads = 2\nstore_parallelism = 8\n",
        )
        .unwrap();
        let b = c.backup.unwrap();
        assert_eq!(
            (
                b.chunk_size_mib,
                b.zstd_level,
                b.threads,
                b.store_parallelism
            ),
            (Some(32), Some(3), Some(2), Some(8))
        );
        for (text, needle) in [
            ("container = \"a/b\"", "container `a/b`"),
            ("limits.instances = 0", "limits.instances"),
            ("chunk_size_mib = 0", "chunk_size_mib"),
            (
                "chunk_size_mib = 128",
                "quarter of limits.memory_mib (64 MiB)",
            ),
            ("zstd_level = 23", "zstd_level"),
            ("threads = 0", "threads"),
            ("store_parallelism = 0", "store_parallelism"),
            ("exec_dirs = [\"bin\"]", "exec_dirs"),
        ] {
            let err = finish(&format!("[backup]\ndriver = \"backup-posix\"\n{text}\n"))
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"))
                .to_string();
            assert!(
                err.contains(needle) && err.contains("[backup]"),
                "{text}: {err}"
            );
        }
        let err = finish("[backends.backup]\ndriver = \"nfs\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("reserved for the backup store"), "{err}");
    }

    #[test]
    fn an_s3_credential_is_an_access_key_with_a_default_region() {
        let c: Config = toml::from_str(
            "[backup]\ndriver = \"backup-s3\"\n[backup.credentials.s3]\naccess_key_id = \"AK\"\nsecret_access_key = \"SECRET\"\n",
        )
        .unwrap();
        let cred = &c.backup.unwrap().credentials["s3"];
        let Credential::AwsSigV4 {
            access_key_id,
            region,
            service,
            ..
        } = cred
        else {
            panic!("{cred:?}")
        };
        assert_eq!(
            (access_key_id.as_str(), region.as_str(), service.as_str()),
            ("AK", "us-east-1", "s3")
        );
        assert!(!format!("{cred:?}").contains("SECRET"));
        assert!(
            toml::from_str::<Credential>("access_key_id = \"AK\"\nsecret = \"x\"").is_err(),
            "a misspelt field is refused"
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let err = toml::from_str::<Config>("listn = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn bad_backend_name_and_limits_refused() {
        let mut c: Config = toml::from_str("[backends.\"a b\"]\ndriver = \"nfs\"\n").unwrap();
        assert!(c.finish().unwrap_err().to_string().contains("a b"));
        let mut c: Config =
            toml::from_str("[backends.x]\ndriver = \"nfs\"\nlimits.instances = 0\n").unwrap();
        assert!(c.finish().unwrap_err().to_string().contains("instances"));
    }

    #[test]
    fn api_limits_have_their_documented_defaults_and_zero_is_refused() {
        let api = ApiSection::default();
        assert_eq!(api.header_read_timeout_secs, 10);
        assert_eq!(api.body_read_timeout_secs, 30);
        assert_eq!(api.idle_timeout_secs, 60);
        assert_eq!(api.max_request_body_size, 114_688);
        assert_eq!(api.max_header_size, 32_768);
        assert_eq!(api.max_connections, 1024);
        let mut c: Config = toml::from_str("[api]\nidle_timeout_secs = 0\n").unwrap();
        let err = c.finish().unwrap_err().to_string();
        assert!(err.contains("idle_timeout_secs"), "{err}");
    }
}

/// The operator guides' example configs (docs/drivers/*.md, README.md) stay true: every
/// complete example parses, names a bundled driver, and grants everything that driver's
/// plugin.toml requests for those settings.
#[cfg(test)]
mod documented_examples {
    use super::*;
    use crate::capabilities::{self, Manifest, World};

    /// The ```toml blocks of a markdown file that configure a backend.
    fn examples(markdown: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut block: Option<String> = None;
        for line in markdown.lines() {
            match (&mut block, line.trim_start()) {
                (None, l) if l.starts_with("```toml") => block = Some(String::new()),
                (Some(b), l) if l.starts_with("```") => {
                    if (b.contains("[backends.") || b.contains("[backup]"))
                        && b.contains("driver = ")
                    {
                        out.push(std::mem::take(b));
                    }
                    block = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                (None, _) => {}
            }
        }
        out
    }

    /// Grants `manifest` against one example's section, leaving block and directory paths
    /// out: they name devices and mounts of the example's host, which need not exist here.
    fn check(
        what: &str,
        backend: &str,
        manifest: &Manifest,
        settings: &BTreeMap<String, String>,
        grants: &Grants,
    ) {
        let mut manifest = manifest.clone();
        manifest.capabilities.block.clear();
        manifest.capabilities.directory.clear();
        let mut grants = grants.clone();
        grants.block.clear();
        grants.directory.clear();
        let settings = manifest.settings_with_defaults(settings);
        if let Err(e) = capabilities::grant(&manifest, backend, &settings, &grants) {
            panic!("{what}: the documented grants do not cover the driver: {e}");
        }
    }

    #[test]
    fn every_documented_backend_loads_its_driver_with_the_grants_shown() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs/drivers"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        files.push(root.join("README.md"));
        let mut checked = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, example) in examples(&text).iter().enumerate() {
                let at = format!("{} example {}", file.display(), i + 1);
                let cfg: Config =
                    toml::from_str(example).unwrap_or_else(|e| panic!("{at}: {e}\n{example}"));
                if let Some(backup) = &cfg.backup
                    && let Some(bundled) = crate::bundled::find(&backup.driver)
                {
                    let m = Manifest::from_toml_str(bundled.manifest).unwrap();
                    assert_eq!(m.world, World::BackupDriver, "{at}: [backup]");
                    check(&at, BACKUP_STORE_NAME, &m, &backup.settings, &backup.grants);
                    checked += 1;
                }
                for (name, backend) in &cfg.backends {
                    let Some(bundled) = crate::bundled::find(&backend.driver) else {
                        continue; // a path to the operator's own component
                    };
                    let m = Manifest::from_toml_str(bundled.manifest).unwrap();
                    assert_eq!(m.world, World::VolumeDriver, "{at}: {name}");
                    check(&at, name, &m, &backend.settings, &backend.grants);
                    checked += 1;
                    if let Some(t) = &backend.target {
                        let b = crate::bundled::find(&t.driver)
                            .unwrap_or_else(|| panic!("{at}: target {} is not bundled", t.driver));
                        let m = Manifest::from_toml_str(b.manifest).unwrap();
                        assert_eq!(m.world, World::TargetDriver, "{at}: {name} target");
                        check(&at, &format!("{name}.target"), &m, &t.settings, &t.grants);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 5, "only {checked} documented backends found");
    }
}
