//! The operations the API asks for: each checks the domain rules (which status an
//! operation may start from, what a snapshot or a revert needs), then writes the status
//! change and the durable job in one transaction and hands the job to the runner. A
//! request the rules refuse answers [`Refused`] with Cinder's words; the API turns it
//! into a 400, or a 413 when it is over the project's quota (the usage is charged in the
//! same transaction as the row, see `db/quotas.rs`).

use super::VolumeManager;
use super::job::Job;
use super::status::{SnapshotStatus, VolumeStatus};
use crate::db::{
    CreateRefused, DbError, DeleteRefused, ExtendRefused, JobRow, OverQuota, Reading,
    RevertRefused, SnapshotRefused, SnapshotRow, SourceRefused, VolumeRow,
};

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The rules say no; the message says why and what would make it possible.
    #[error("{0}")]
    Invalid(String),
    /// What the request names is not there (any more): Cinder's 404.
    #[error("{0}")]
    NotFound(String),
    /// Over the project's quota, in Cinder's words; the API answers 413.
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why volume `id` cannot change now: something is reading it.
pub(super) fn busy(id: &str, what: &str, r: Reading) -> Refused {
    Refused::Invalid(match r {
        Reading::Snapshot => format!(
            "Invalid volume: a snapshot of volume {id} is being created; {what} it once the snapshot is available."
        ),
        Reading::Clone => format!(
            "Invalid volume: a volume is being cloned from volume {id}; {what} it once the clone is available."
        ),
    })
}

fn joined(statuses: &[VolumeStatus]) -> String {
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

impl VolumeManager {
    /// A volume's status as a refusal reports it: read again, since the request saw an
    /// older one.
    async fn status_now(&self, id: &str) -> Result<&'static str, DbError> {
        Ok(self
            .db
            .get_volume(id)
            .await?
            .map_or("deleted", |v| v.status.as_str()))
    }

    /// A job on `resource_id` for the backend a volume placed on `host` lives on (any
    /// host's, for a volume not placed yet).
    fn job_row(job: &Job, resource_id: &str, request_id: &str, host: Option<&str>) -> JobRow {
        JobRow::new(job.kind(), resource_id, job.payload(Some(request_id)))
            .on(VolumeManager::route_of(host))
    }

    /// Accepts a new volume (status `creating`) and starts its create. A volume made from
    /// a snapshot or a volume is accepted only if its source, read again as the volume is
    /// recorded, is still usable and no larger.
    pub async fn request_create(&self, v: &VolumeRow, request_id: &str) -> Result<(), Refused> {
        self.request_create_from(v, None, request_id).await
    }

    /// Accepts a new volume made from Glance image `image_id` (checked by the caller to
    /// be `active` and to fit) and starts its create.
    pub async fn request_create_from_image(
        &self,
        v: &VolumeRow,
        image_id: &str,
        request_id: &str,
    ) -> Result<(), Refused> {
        self.request_create_from(v, Some(image_id), request_id)
            .await
    }

    async fn request_create_from(
        &self,
        v: &VolumeRow,
        image_id: Option<&str>,
        request_id: &str,
    ) -> Result<(), Refused> {
        let job = Self::job_row(
            &Job::CreateVolume {
                attempts: Vec::new(),
                image_id: image_id.map(str::to_string),
            },
            &v.id,
            request_id,
            None,
        );
        if let Err(why) = self
            .db
            .insert_volume_with_job(v, VolumeStatus::CLONEABLE, &job)
            .await?
        {
            let why = match why {
                CreateRefused::Quota(over) => return Err(over.into()),
                CreateRefused::Source(why) => why,
            };
            return Err(Refused::Invalid(match why {
                SourceRefused::Snapshot(status) => format!(
                    "Invalid snapshot: Snapshot {} is {}; it must be available to create a volume from it.",
                    v.snapshot_id.as_deref().unwrap_or_default(),
                    status.as_deref().unwrap_or("deleted")
                ),
                SourceRefused::Volume(status) => format!(
                    "Invalid volume: Volume {} is {}; it must be {} to clone it.",
                    v.source_volid.as_deref().unwrap_or_default(),
                    status.as_deref().unwrap_or("deleted"),
                    joined(VolumeStatus::CLONEABLE)
                ),
                SourceRefused::Larger(min) => format!(
                    "Volume size {}GB cannot be smaller than the source's size {min}GB.",
                    v.size
                ),
            }));
        }
        self.submit(&job.id);
        tracing::info!(volume_id = %v.id, size = v.size, request_id, "volume create accepted");
        Ok(())
    }

    /// Starts a delete: from [`VolumeStatus::DELETABLE`], or for an administrator's force
    /// delete from [`VolumeStatus::FORCE_DELETABLE`]; never while snapshots remain.
    pub async fn request_delete(
        &self,
        v: &VolumeRow,
        force: bool,
        request_id: &str,
    ) -> Result<(), Refused> {
        let allowed = if force {
            VolumeStatus::FORCE_DELETABLE
        } else {
            VolumeStatus::DELETABLE
        };
        let job = Self::job_row(&Job::DeleteVolume, &v.id, request_id, v.host.as_deref());
        match self.db.begin_delete_volume(&v.id, allowed, &job).await? {
            Ok(()) => {
                self.submit(&job.id);
                Ok(())
            }
            Err(DeleteRefused::Busy(r)) => Err(busy(&v.id, "delete", r)),
            Err(DeleteRefused::HasSnapshots(n)) => Err(Refused::Invalid(format!(
                "Invalid volume: Volume still has {n} dependent snapshots. Delete the snapshots first."
            ))),
            Err(DeleteRefused::Status) => Err(Refused::Invalid(format!(
                "Invalid volume: Volume status must be {} to delete it, but it is {}.",
                joined(allowed),
                self.status_now(&v.id).await?
            ))),
        }
    }

    /// Starts an extend to `new_size` GiB (larger than the volume is).
    pub async fn request_extend(
        &self,
        v: &VolumeRow,
        new_size: i64,
        request_id: &str,
    ) -> Result<(), Refused> {
        if new_size <= v.size {
            return Err(Refused::Invalid(format!(
                "New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
                v.size
            )));
        }
        let job = Self::job_row(
            &Job::ExtendVolume { new_size },
            &v.id,
            request_id,
            v.host.as_deref(),
        );
        match self
            .db
            .begin_extend(&v.id, new_size, VolumeStatus::EXTENDABLE, &job)
            .await?
        {
            Ok(()) => {
                self.submit(&job.id);
                Ok(())
            }
            Err(ExtendRefused::Busy(r)) => Err(busy(&v.id, "extend", r)),
            Err(ExtendRefused::Quota(over)) => Err(over.into()),
            Err(ExtendRefused::NotLarger(size)) => Err(Refused::Invalid(format!(
                "New size for extend must be greater than current size. (current: {size}, extended: {new_size})."
            ))),
            Err(ExtendRefused::Status) => Err(Refused::Invalid(format!(
                "Invalid volume: Volume status must be available to extend, but current status is: {}.",
                self.status_now(&v.id).await?
            ))),
        }
    }

    /// Accepts a new snapshot (status `creating`) of a volume in
    /// [`VolumeStatus::SNAPSHOTTABLE`] and starts its create.
    pub async fn request_snapshot(
        &self,
        s: &mut SnapshotRow,
        volume: &VolumeRow,
        request_id: &str,
    ) -> Result<(), Refused> {
        let job = Self::job_row(
            &Job::CreateSnapshot,
            &s.id,
            request_id,
            volume.host.as_deref(),
        );
        match self
            .db
            .insert_snapshot_with_job(s, VolumeStatus::SNAPSHOTTABLE, &job)
            .await?
        {
            Ok(()) => {}
            Err(SnapshotRefused::Quota(over)) => return Err(over.into()),
            Err(SnapshotRefused::Status) => {
                return Err(Refused::Invalid(format!(
                    "Invalid volume: Volume {} status must be available to snapshot it, but current status is: {}.",
                    volume.id, volume.status
                )));
            }
        }
        self.submit(&job.id);
        Ok(())
    }

    /// Starts a snapshot delete from [`SnapshotStatus::DELETABLE`].
    pub async fn request_delete_snapshot(
        &self,
        s: &SnapshotRow,
        force: bool,
        request_id: &str,
    ) -> Result<(), Refused> {
        let allowed = if force {
            SnapshotStatus::FORCE_DELETABLE
        } else {
            SnapshotStatus::DELETABLE
        };
        let host = self.db.get_volume(&s.volume_id).await?.and_then(|v| v.host);
        let job = Self::job_row(&Job::DeleteSnapshot, &s.id, request_id, host.as_deref());
        match self.db.begin_delete_snapshot(&s.id, allowed, &job).await? {
            Ok(true) => {
                self.submit(&job.id);
                Ok(())
            }
            Ok(false) => Err(Refused::Invalid(format!(
                "Invalid snapshot: Snapshot status must be {} to delete it, but it is {}.",
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                s.status
            ))),
            Err(n) => Err(Refused::Invalid(format!(
                "Invalid snapshot: {n} volume(s) are being created from snapshot {}; delete it once they are available.",
                s.id
            ))),
        }
    }

    /// Starts a revert of `v` to `snapshot`, which must be the volume's latest snapshot,
    /// `available`, and of the volume's size (Cinder's rules for `revert`).
    pub async fn request_revert(
        &self,
        v: &VolumeRow,
        snapshot: &SnapshotRow,
        request_id: &str,
    ) -> Result<(), Refused> {
        if snapshot.volume_id != v.id {
            return Err(Refused::Invalid(format!(
                "Invalid snapshot: snapshot {} is not a snapshot of volume {}.",
                snapshot.id, v.id
            )));
        }
        let latest = self.db.latest_snapshot_of(&v.id).await?;
        if latest.as_ref().is_none_or(|l| l.id != snapshot.id) {
            return Err(Refused::Invalid(format!(
                "Specified snapshot {} is not the latest one of volume {}.",
                snapshot.id, v.id
            )));
        }
        if snapshot.volume_size != v.size {
            return Err(Refused::Invalid(format!(
                "Volume {} size {} GiB must be equal to snapshot {} size {} GiB to revert it.",
                v.id, v.size, snapshot.id, snapshot.volume_size
            )));
        }
        let job = Self::job_row(
            &Job::RevertToSnapshot {
                snapshot_id: snapshot.id.clone(),
            },
            &v.id,
            request_id,
            v.host.as_deref(),
        );
        match self
            .db
            .begin_revert(&v.id, &snapshot.id, VolumeStatus::REVERTIBLE, &job)
            .await?
        {
            Ok(()) => {
                self.submit(&job.id);
                Ok(())
            }
            Err(RevertRefused::Busy(r)) => Err(busy(&v.id, "revert", r)),
            Err(RevertRefused::Size) => Err(Refused::Invalid(format!(
                "Volume {} size must be equal to snapshot {} size {} GiB to revert it; the volume has been extended since.",
                v.id, snapshot.id, snapshot.volume_size
            ))),
            Err(RevertRefused::Volume) => Err(Refused::Invalid(format!(
                "Can't revert volume {} to its latest snapshot {}. The volume's status must be 'available' but is {}.",
                v.id, snapshot.id, v.status
            ))),
            Err(RevertRefused::Snapshot) => Err(Refused::Invalid(format!(
                "Can't revert volume {} to its latest snapshot {}. The snapshot's status must be 'available' but is {}.",
                v.id, snapshot.id, snapshot.status
            ))),
        }
    }

    /// Starts an upload of `v` into Glance image `image_id` (created by the caller,
    /// `queued`): the volume from `available` (or, when `force` is honoured, `in-use`) to
    /// `uploading` with the job, in one transaction. Cinder's words when it cannot.
    pub async fn request_upload(
        &self,
        v: &VolumeRow,
        image_id: &str,
        disk_format: &str,
        force: bool,
        request_id: &str,
    ) -> Result<(), Refused> {
        let allowed = Self::uploadable(force);
        let job = Self::job_row(
            &Job::UploadImage {
                image_id: image_id.to_string(),
                disk_format: disk_format.to_string(),
            },
            &v.id,
            request_id,
            v.host.as_deref(),
        );
        if !self.db.begin_upload(&v.id, allowed, &job).await? {
            return Err(Refused::Invalid(format!(
                "Invalid volume: Volume {} status must be {}, but current status is: {}.",
                v.id,
                joined(allowed),
                self.status_now(&v.id).await?
            )));
        }
        self.submit(&job.id);
        tracing::info!(volume_id = %v.id, image_id, disk_format, request_id, "upload to image accepted");
        Ok(())
    }

    /// The statuses an upload may start from: `in-use` only with `force`, and only when
    /// the operator allows forced uploads (Cinder ignores `force` otherwise).
    pub fn uploadable(force: bool) -> &'static [VolumeStatus] {
        if force {
            VolumeStatus::UPLOADABLE_FORCED
        } else {
            VolumeStatus::UPLOADABLE
        }
    }

    /// An administrator's `os-reset_status`: sets the status by hand (after fixing the
    /// backend), as in Cinder; no driver is called.
    pub async fn reset_status(
        &self,
        v: &VolumeRow,
        status: VolumeStatus,
        attach_status: Option<super::AttachStatus>,
        by: &str,
    ) -> Result<(), Refused> {
        if !VolumeStatus::RESETTABLE.contains(&status) {
            return Err(Refused::Invalid(format!(
                "Invalid input for field/attribute status. Value: {status}. It must be one of {}.",
                VolumeStatus::RESETTABLE
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.db
            .reset_volume_status(&v.id, status, attach_status)
            .await?;
        tracing::warn!(volume_id = %v.id, from = %v.status, to = %status, user = by, "volume status reset by an administrator");
        Ok(())
    }
}
