//! The backup service as the API and the volume manager see it: the requests (create,
//! restore, delete, reset-status, import) checked against Cinder's rules and written as
//! status changes plus a durable job in one transaction, and the backup store the jobs
//! write through. The jobs' flows are in `flows/backup.rs`; the bytes are moved by the
//! engine (`crate::backup::engine`).

use std::sync::Arc;

use super::OpError;
use super::VolumeManager;
use super::job::Job;
use super::requests::Refused;
use super::status::BackupStatus;
use crate::backup::ObjectStore;
use crate::backup::engine::{self, EngineSettings};
use crate::db::{
    BackupCreateRefused, BackupDeleteRefused, BackupRow, JobRow, RestoreRefused, RestoreTarget,
    VolumeRow,
};

/// Cinder's `backup_service` of an exported record when the store's driver has no name of
/// its own to give.
pub const BACKUP_SERVICE_PREFIX: &str = "ashlar.backup.";

/// A backup job, for the backend of the volume it reads or writes (placed on `host`); any
/// host with the backup store may run one that touches no volume.
fn job_row(job: &Job, resource_id: &str, request_id: &str, host: Option<&str>) -> JobRow {
    JobRow::new(job.kind(), resource_id, job.payload(Some(request_id)))
        .on(VolumeManager::route_of(host))
}

impl VolumeManager {
    /// Whether this host runs the backup service (has a backup store).
    pub fn backup_enabled(&self) -> bool {
        self.backup.is_some()
    }

    /// The name of the store's driver, as an exported record's `backup_service`.
    pub fn backup_service(&self) -> Option<String> {
        self.backup
            .as_ref()
            .map(|b| format!("{BACKUP_SERVICE_PREFIX}{}", b.config.driver))
    }

    /// The container new backups go to when the request names none.
    pub fn default_backup_container(&self) -> Option<String> {
        self.backup.as_ref().map(|b| b.config.container.clone())
    }

    /// The object store of `container` in the backup store.
    pub(super) fn backup_store(&self, container: &str) -> Result<Arc<dyn ObjectStore>, OpError> {
        let Some(backup) = &self.backup else {
            return Err(OpError::Backup {
                public: "This host runs no backup service; an administrator configures one under [backup].".into(),
                detail: "no backup store is configured ([backup])".into(),
            });
        };
        // One operation works on the driver current when it starts, as a volume call
        // does; a hot swap of the store takes effect at the next operation.
        Ok(Arc::new(crate::backup::objects::DriverObjects::fixed(
            backup.slot.driver(),
            container,
        )))
    }

    /// The engine's settings: `[backup]`'s tuning where it sets one, the engine's
    /// defaults elsewhere.
    pub(super) fn engine_settings(&self) -> EngineSettings {
        let mut s = EngineSettings::default();
        if let Some(b) = &self.backup {
            let c = &b.config;
            if let Some(mib) = c.chunk_size_mib {
                s.chunk_bytes = (mib as usize) << 20;
            }
            if let Some(level) = c.zstd_level {
                s.zstd_level = level;
            }
            if let Some(n) = c.threads {
                s.threads = n;
            }
            if let Some(n) = c.store_parallelism {
                s.store_parallelism = n;
            }
        }
        s
    }

    /// Accepts a backup (`creating`) and starts it: see `Db::insert_backup_with_job`.
    pub async fn request_backup(
        &self,
        b: &mut BackupRow,
        force: bool,
        request_id: &str,
    ) -> Result<(), Refused> {
        if !self.backup_enabled() {
            return Err(Refused::NotFound(
                "Service cinder-backup could not be found: this host runs no backup store (an administrator configures one under [backup])."
                    .into(),
            ));
        }
        let host = self.db.get_volume(&b.volume_id).await?.and_then(|v| v.host);
        let job = job_row(&Job::CreateBackup, &b.id, request_id, host.as_deref());
        match self.db.insert_backup_with_job(b, force, &job).await? {
            Ok(()) => {}
            Err(why) => {
                return Err(match why {
                    BackupCreateRefused::Quota(over) => over.into(),
                    BackupCreateRefused::Volume(None) => {
                        Refused::NotFound(format!("Volume {} could not be found.", b.volume_id))
                    }
                    BackupCreateRefused::Volume(Some(status)) => Refused::Invalid(format!(
                        "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"{status}\"."
                    )),
                    BackupCreateRefused::InUse => Refused::Invalid(
                        "Invalid volume: Backing up an in-use volume must use the force flag."
                            .into(),
                    ),
                    BackupCreateRefused::Snapshot(None) => Refused::NotFound(format!(
                        "Snapshot {} could not be found.",
                        b.snapshot_id.as_deref().unwrap_or_default()
                    )),
                    BackupCreateRefused::Snapshot(Some(status)) => Refused::Invalid(format!(
                        "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"{status}\"."
                    )),
                    BackupCreateRefused::SnapshotOfOther => Refused::Invalid(format!(
                        "Invalid snapshot: snapshot {} is not a snapshot of volume {}.",
                        b.snapshot_id.as_deref().unwrap_or_default(),
                        b.volume_id
                    )),
                    BackupCreateRefused::NoParent => Refused::Invalid(
                        "Invalid backup: No backups available to do an incremental backup.".into(),
                    ),
                });
            }
        }
        self.submit(&job.id);
        tracing::info!(backup_id = %b.id, volume_id = %b.volume_id, incremental = b.is_incremental, request_id, "backup accepted");
        Ok(())
    }

    /// Starts a restore of `b` onto an existing volume, or onto `new` (inserted
    /// `creating`, created on a backend by the scheduler first, then restored).
    pub async fn request_restore(
        &self,
        b: &BackupRow,
        existing: Option<&VolumeRow>,
        new: Option<&VolumeRow>,
        request_id: &str,
    ) -> Result<(), Refused> {
        if !self.backup_enabled() {
            return Err(Refused::NotFound(
                "Service cinder-backup could not be found: this host runs no backup store.".into(),
            ));
        }
        let (target, volume_id, new_volume) = match (existing, new) {
            (Some(v), _) => (RestoreTarget::Existing(&v.id), v.id.clone(), false),
            (None, Some(v)) => (RestoreTarget::New(v), v.id.clone(), true),
            (None, None) => {
                return Err(Refused::Invalid(
                    "a restore needs a volume to write onto".into(),
                ));
            }
        };
        let job = job_row(
            &Job::RestoreBackup {
                volume_id: volume_id.clone(),
                new_volume,
            },
            &b.id,
            request_id,
            existing.and_then(|v| v.host.as_deref()),
        );
        match self.db.begin_restore(&b.id, target, &job).await? {
            Ok(()) => {}
            Err(RestoreRefused::Quota(over)) => return Err(over.into()),
            Err(RestoreRefused::Backup(status)) => {
                return Err(Refused::Invalid(format!(
                    "Invalid backup: Backup status must be available, but it is {}.",
                    status.as_deref().unwrap_or("deleted")
                )));
            }
            Err(RestoreRefused::Volume(None)) => {
                return Err(Refused::NotFound(format!(
                    "Volume {volume_id} could not be found."
                )));
            }
            Err(RestoreRefused::Volume(Some(status))) => {
                return Err(Refused::Invalid(format!(
                    "Invalid volume: Volume to be restored to must be available, but the current status is \"{status}\"."
                )));
            }
            Err(RestoreRefused::TooSmall { volume_size, size }) => {
                return Err(Refused::Invalid(format!(
                    "Invalid volume: volume size {volume_size} is too small to restore backup of size {size}."
                )));
            }
        }
        self.submit(&job.id);
        tracing::info!(backup_id = %b.id, volume_id, new_volume, request_id, "restore accepted");
        Ok(())
    }

    /// Starts a delete from [`BackupStatus::DELETABLE`] (an administrator's force delete:
    /// [`BackupStatus::FORCE_DELETABLE`]); never while an incremental builds on it.
    pub async fn request_delete_backup(
        &self,
        b: &BackupRow,
        force: bool,
        request_id: &str,
    ) -> Result<(), Refused> {
        let allowed = if force {
            BackupStatus::FORCE_DELETABLE
        } else {
            BackupStatus::DELETABLE
        };
        let job = job_row(&Job::DeleteBackup, &b.id, request_id, None);
        match self.db.begin_delete_backup(&b.id, allowed, &job).await? {
            Ok(()) => {
                self.submit(&job.id);
                Ok(())
            }
            Err(BackupDeleteRefused::HasDependents) => Err(Refused::Invalid(
                "Invalid backup: Incremental backups exist for this backup.".into(),
            )),
            Err(BackupDeleteRefused::Status(status)) => Err(Refused::Invalid(format!(
                "Invalid backup: Backup status must be {} to delete it, but it is {status}.{}",
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                if force {
                    " Reset its status first (os-reset_status) if its operation is known to have stopped."
                } else {
                    ""
                }
            ))),
        }
    }

    /// Whether every object of backup `id` is in `container` of the store: its manifest
    /// reads back (an import checks this before it records the backup).
    pub async fn backup_objects_present(&self, container: &str, id: &str) -> Result<(), Refused> {
        let store = self
            .backup_store(container)
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        let id_owned = id.to_string();
        let read = tokio::task::spawn_blocking(move || engine::read_manifest(&*store, &id_owned))
            .await
            .map_err(|e| Refused::Invalid(format!("reading the backup's manifest: {e}")))?;
        match read {
            Ok(_) => Ok(()),
            Err(e) => Err(Refused::Invalid(format!(
                "Invalid backup: the backup store has no complete backup {id} in container {container}: {e}"
            ))),
        }
    }
}
