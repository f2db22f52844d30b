//! The volume manager: the domain rules of volumes and snapshots, the durable jobs that
//! carry out their asynchronous operations against the backends' drivers (each operation
//! a flow of tasks that revert in reverse order on failure), and the pool stats the
//! scheduler places new volumes with.
//!
//! The API asks for operations through [`requests`]; nothing under `api/` decides which
//! status an operation may start from.

mod attach;
mod backend;
mod backups;
pub mod flow;
mod flows;
pub mod job;
pub mod message_field;
mod requests;
mod runner;
pub mod services;
mod stats;
pub mod status;
mod transfers;
pub mod types;

pub use attach::is_last_connection;
pub use backend::{Backend, Backends, BackupBackend, DriverSlot};
pub use job::Job;
pub use requests::{ALREADY_MANAGED, Refused};
pub use runner::JobRunner;
pub use services::ServiceHeartbeat;
pub use stats::{BackendStats, StatsPoller};
pub use status::{AttachStatus, BackupStatus, SnapshotStatus, VolumeStatus};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::{Db, DbError, Message, time};
use crate::runtime::{CallError, DriverFailure, SandboxFailure};
use crate::scheduler::SchedulerConfig;
use message_field::{Detail, Event};

/// Why an operation failed. Its text is for the log and administrators: it may carry the
/// driver's words, command lines and paths. A tenant is told [`OpError::detail_or`] and
/// [`OpError::hint`] instead.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// No pool could take the volume: `detail` names every pool and its reason, `public`
    /// only backends (`host@backend`) and reasons a tenant can act on.
    #[error("{detail}")]
    NoValidBackend { public: String, detail: String },
    #[error("{0}")]
    Driver(#[from] CallError),
    #[error("{0}")]
    Db(#[from] DbError),
    /// The resource went away or changed under the operation, or the backend answered
    /// something the host cannot keep.
    #[error("{0}")]
    Gone(String),
    /// The backup store or the engine failed: `public` is what a tenant may read (it
    /// names a backup's object or what to do, never a host path), `detail` the whole story.
    #[error("{detail}")]
    Backup { public: String, detail: String },
    /// The Image service or an image failed a copy between an image and a volume:
    /// `public` is what a tenant may read (Cinder's wording, never a host path or an
    /// endpoint), `detail` the whole story; `too_big` when the image does not fit the
    /// volume (Cinder's `ImageTooBig`).
    #[error("{detail}")]
    Image {
        public: String,
        detail: String,
        too_big: bool,
    },
    /// The volume is on a backend this host does not run (`HOST@BACKEND` or
    /// `CLUSTER@BACKEND`): a create placed there is handed on (nothing failed); a
    /// connection asked of this host is refused.
    #[error("on backend {0}, which this host does not run")]
    Elsewhere(String),
    /// A migration or a retype could not be done: `public` is what its requester may read
    /// (never a host path), `detail` the whole story.
    #[error("{detail}")]
    Move { public: String, detail: String },
    /// Over the project's quota, in Cinder's words (which a tenant may read).
    #[error("{0}")]
    OverQuota(String),
}

/// What kind of failure an operation met, for the status an API answer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The backend does not have the thing asked about.
    NotFound,
    /// The request cannot be done as asked (a bad argument, a feature the driver lacks).
    Invalid,
    /// The backend cannot be reached or is not serving.
    Unavailable,
    /// Anything else: the service's or the driver's fault.
    Internal,
}

impl OpError {
    pub fn kind(&self) -> FailureKind {
        match self {
            OpError::Driver(CallError::Driver(f)) => match f {
                DriverFailure::NotFound(_) => FailureKind::NotFound,
                DriverFailure::InvalidArgument(_) | DriverFailure::NotSupported(_) => {
                    FailureKind::Invalid
                }
                DriverFailure::BackendUnavailable(_) => FailureKind::Unavailable,
                DriverFailure::CapacityExceeded(_) | DriverFailure::Internal(_) => {
                    FailureKind::Internal
                }
            },
            OpError::Elsewhere(_) => FailureKind::Unavailable,
            _ => FailureKind::Internal,
        }
    }

    /// The Cinder detail a user message gives for this error: the one the error maps to
    /// (as Cinder's `EXCEPTION_DETAIL_MAPPINGS`), else `default` for a driver's failure,
    /// else `UNKNOWN_ERROR`.
    pub fn detail_or(&self, default: Detail) -> Detail {
        match self {
            OpError::NoValidBackend { .. } => Detail::NO_BACKEND_AVAILABLE,
            OpError::Driver(
                CallError::Driver(DriverFailure::BackendUnavailable(_))
                | CallError::Sandbox {
                    kind: SandboxFailure::Quarantined,
                    ..
                },
            ) => Detail::DRIVER_NOT_INITIALIZED,
            OpError::Driver(_) => default,
            OpError::Db(_) | OpError::Gone(_) | OpError::Elsewhere(_) => Detail::UNKNOWN_ERROR,
            OpError::OverQuota(_) => Detail::QUOTA_EXCEED,
            OpError::Backup { .. } | OpError::Move { .. } => default,
            OpError::Image { too_big: true, .. } => Detail::NOT_ENOUGH_SPACE_FOR_IMAGE,
            OpError::Image { .. } => default,
        }
    }

    /// What a tenant may read after Cinder's words: the host's own sentence for the kind
    /// of failure, never the driver's text.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            OpError::NoValidBackend { public, .. } => return Some(public.clone()),
            OpError::Driver(CallError::Driver(f)) => match f {
                DriverFailure::NotFound(_) => {
                    "The backend could not find what the operation needs."
                }
                DriverFailure::InvalidArgument(_) => {
                    "The backend refused the request as it was made."
                }
                DriverFailure::NotSupported(_) => "The operation is not supported by the backend.",
                DriverFailure::CapacityExceeded(_) => "The backend has not enough free space.",
                DriverFailure::BackendUnavailable(_) => {
                    "The backend is unavailable at present; try again later."
                }
                DriverFailure::Internal(_) => return None,
            },
            OpError::Driver(CallError::Sandbox { kind, .. }) => match kind {
                SandboxFailure::Quarantined => {
                    "The backend is unavailable at present after repeated failures; try again later."
                }
                SandboxFailure::DeadlineExceeded => "The backend did not answer in time.",
                SandboxFailure::OutOfMemory
                | SandboxFailure::Trapped
                | SandboxFailure::InstantiationFailed => {
                    "The backend's driver stopped unexpectedly."
                }
            },
            OpError::Elsewhere(backend) => {
                return Some(format!(
                    "The volume's backend {backend} is not run by this host: send the \
                     request to a host that runs it."
                ));
            }
            OpError::Db(_) | OpError::Gone(_) => return None,
            OpError::Backup { public, .. }
            | OpError::Move { public, .. }
            | OpError::Image { public, .. } => {
                return Some(public.clone());
            }
            OpError::OverQuota(why) => return Some(why.clone()),
        };
        Some(hint.to_string())
    }
}

/// The manager of every backend configured on this host.
pub struct VolumeManager {
    pub db: Db,
    pub host_name: String,
    pub backends: Backends,
    /// The backup store, when the host runs the backup service.
    pub backup: Option<BackupBackend>,
    stats: RwLock<BTreeMap<String, BackendStats>>,
    /// Backends whose volume service an administrator disabled (`os-services`), by name.
    disabled: RwLock<BTreeSet<String>>,
    /// Woken to poll the stats now rather than at the next interval.
    stats_wanted: Notify,
    scheduler: SchedulerConfig,
    /// Other hosts' backends as the scheduler last read them from the database, by
    /// `HOST@BACKEND` or `CLUSTER@BACKEND`.
    remote_stats: RwLock<BTreeMap<String, BackendStats>>,
    /// Woken when a job this host may run was committed here.
    jobs_waiting: std::sync::Arc<Notify>,
    /// The Image service and what the image flows need, when `[glance]` is configured.
    images: std::sync::OnceLock<ImageService>,
}

/// What volumes made from images and uploads to images need (`[glance]`).
#[derive(Debug)]
pub struct ImageService {
    pub glance: crate::image::Glance,
    /// Where downloaded and converted images are kept while they are copied (under the
    /// data directory); emptied at start-up.
    pub tmp_dir: std::path::PathBuf,
    /// Cinder's `enable_force_upload`.
    pub enable_force_upload: bool,
    /// The project that owns cached image-volumes.
    pub internal_project_id: String,
}

/// The backend part of a volume's host: `HOST@BACKEND#POOL` → `HOST@BACKEND` (or
/// `CLUSTER@BACKEND`), the name its jobs are routed by.
pub fn backend_key_of(host: &str) -> &str {
    host.split_once('#').map_or(host, |(b, _)| b)
}

impl VolumeManager {
    /// Makes the manager and the job runner that reads what it submits.
    pub fn new(
        db: Db,
        host_name: String,
        backends: BTreeMap<String, Backend>,
        backup: Option<BackupBackend>,
        scheduler: SchedulerConfig,
    ) -> (std::sync::Arc<VolumeManager>, JobRunner) {
        let jobs_waiting = std::sync::Arc::new(Notify::new());
        let m = std::sync::Arc::new(VolumeManager {
            db,
            host_name,
            backends: Backends::new(backends),
            backup,
            stats: RwLock::new(BTreeMap::new()),
            disabled: RwLock::new(BTreeSet::new()),
            stats_wanted: Notify::new(),
            scheduler,
            remote_stats: RwLock::new(BTreeMap::new()),
            jobs_waiting: jobs_waiting.clone(),
            images: std::sync::OnceLock::new(),
        });
        let runner = JobRunner::new(m.clone(), jobs_waiting);
        (m, runner)
    }

    /// Gives the manager the Image service (at start-up, once).
    pub fn set_images(&self, images: ImageService) {
        if self.images.set(images).is_err() {
            tracing::warn!("the Image service was already set; keeping the first");
        }
    }

    /// The Image service, when `[glance]` is configured.
    pub fn images(&self) -> Option<&ImageService> {
        self.images.get()
    }

    /// Cinder's `service_down_time`: how long a host may be silent before it is down.
    pub fn service_down_time(&self) -> Duration {
        self.scheduler.service_down_time
    }

    /// `host@backend`: this host's service of backend `backend`.
    pub fn backend_host(&self, backend: &str) -> String {
        format!("{}@{backend}", self.host_name)
    }

    /// Where backend `name`'s volumes are placed and its jobs routed: `CLUSTER@BACKEND`
    /// when it runs in a cluster, else `HOST@BACKEND`.
    pub fn backend_key(&self, name: &str) -> String {
        let owner = self
            .backends
            .get(name)
            .and_then(|b| b.config.cluster.clone())
            .unwrap_or_else(|| self.host_name.clone());
        format!("{owner}@{name}")
    }

    /// The keys ([`VolumeManager::backend_key`]) of every backend this host runs.
    pub fn local_keys(&self) -> Vec<String> {
        self.backends.keys().map(|n| self.backend_key(&n)).collect()
    }

    /// The routing key of a job on a volume placed on `host`; `None` for one not placed.
    pub fn route_of(host: Option<&str>) -> Option<String> {
        host.map(|h| backend_key_of(h).to_string())
    }

    /// Tells the job runner that a job it may run was committed (it claims the oldest).
    pub fn submit(&self, _job_id: &str) {
        self.jobs_waiting.notify_one();
    }

    /// Asks the stats poller for a poll now (after a swap or a rollback).
    pub fn refresh_stats(&self) {
        self.stats_wanted.notify_one();
    }

    /// The backend a placed volume lives on, when this host runs it.
    pub fn backend_of(&self, host: Option<&str>) -> Option<std::sync::Arc<Backend>> {
        let key = backend_key_of(host?);
        let name = key.split_once('@')?.1;
        let backend = self.backends.get(name)?;
        (self.backend_key(name) == key).then_some(backend)
    }

    /// The availability zones the backends serve, sorted, without repeats.
    pub fn availability_zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = self
            .backends
            .values()
            .map(|b| b.availability_zone.clone())
            .collect();
        zones.sort();
        zones.dedup();
        zones
    }

    /// Records a user message (Cinder's messages API) about an operation: the tenant reads
    /// `event`'s words and the host's `hint`; `internal`, the whole story (the driver's
    /// text, paths, command lines), goes to the log with the request id and to the
    /// message's internal detail, which only administrators read. A message with no
    /// request (a job that did not say which) gets an id of its own, so it can be found.
    pub async fn user_message(
        &self,
        project_id: &str,
        request_id: Option<String>,
        resource_uuid: &str,
        event: Event,
        hint: Option<&str>,
        internal: &str,
    ) {
        let request_id = request_id.unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
        let event_id = event.id();
        tracing::warn!(
            request_id = %request_id,
            resource_uuid,
            event_id = %event_id,
            "{}: {internal}",
            event.action.text
        );
        let m = Message {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_string(),
            request_id: Some(request_id),
            resource_type: event.resource.as_str().to_string(),
            resource_uuid: Some(resource_uuid.to_string()),
            event_id,
            message_level: "ERROR".into(),
            user_message: event.user_message(hint),
            internal_detail: Some(internal.to_string()),
            created_at: time::now(),
            expires_at: time::after(Duration::from_secs(30 * 86_400)),
        };
        if let Err(e) = self.db.insert_message(&m).await {
            tracing::error!("cannot record user message: {e}");
        }
    }
}
