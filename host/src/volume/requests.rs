//! The operations the API asks for: each checks the domain rules (which status an
//! operation may start from, what a snapshot or a revert needs), then writes the status
//! change and the durable job in one transaction and hands the job to the runner. A
//! request the rules refuse answers [`Refused`] with Cinder's words; the API turns it
//! into a 400, or a 413 when it is over the project's quota (the usage is charged in the
//! same transaction as the row, see `db/quotas.rs`).

use super::job::Job;
use super::status::{SnapshotStatus, VolumeStatus};
use super::{OpError, VolumeManager, backend_key_of, flows};
use crate::db::{
    CreateRefused, DbError, DeleteRefused, ExtendRefused, JobRow, MoveRefused, OverQuota, Reading,
    RevertRefused, SnapshotRefused, SnapshotRow, SourceRefused, VolumeRow, VolumeType,
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

/// Cinder's reason for storage that is already a volume (its LVM driver's words); a
/// driver says it of storage named `volume-<id>`, and the host keeps it only when the
/// volume exists.
pub const ALREADY_MANAGED: &str = "already managed";

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
    async fn status_now(&self, id: &str) -> Result<String, DbError> {
        let Some(v) = self.db.get_volume(id).await? else {
            return Ok("deleted".into());
        };
        Ok(if self.db.is_migrating(id).await? {
            format!(
                "{} and migrating (a volume that is moving starts nothing else until it has moved)",
                v.status
            )
        } else {
            v.status.to_string()
        })
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

    /// Accepts existing storage for management (Cinder's `manage_existing`): volume `v`
    /// (status `managing`, placed on its backend, size 0 until the driver sizes it) is
    /// recorded with the project's `volumes` charged, and its job is routed to the
    /// backend that holds the storage `reference` names.
    pub async fn request_manage(
        &self,
        v: &VolumeRow,
        reference: &str,
        request_id: &str,
    ) -> Result<(), Refused> {
        let job = Self::job_row(
            &Job::ManageExisting {
                reference: reference.to_string(),
            },
            &v.id,
            request_id,
            v.host.as_deref(),
        );
        match self.db.insert_volume_with_job(v, &[], &job).await? {
            Ok(()) => {}
            Err(CreateRefused::Quota(over)) => return Err(over.into()),
            Err(CreateRefused::Source(_)) => {
                return Err(Refused::Invalid(
                    "Invalid volume: a managed volume has no source.".into(),
                ));
            }
        }
        self.submit(&job.id);
        tracing::info!(volume_id = %v.id, host = ?v.host, request_id, "manage of existing storage accepted");
        Ok(())
    }

    /// Starts an unmanage (Cinder's `os-unmanage`): from [`VolumeStatus::UNMANAGEABLE`],
    /// never attached, never with snapshots; the volume is `unmanaging` until its driver
    /// lets go and the row goes.
    pub async fn request_unmanage(&self, v: &VolumeRow, request_id: &str) -> Result<(), Refused> {
        let allowed = VolumeStatus::UNMANAGEABLE;
        let job = Self::job_row(&Job::UnmanageVolume, &v.id, request_id, v.host.as_deref());
        match self.db.begin_unmanage_volume(&v.id, allowed, &job).await? {
            Ok(()) => {
                self.submit(&job.id);
                tracing::info!(volume_id = %v.id, request_id, "unmanage accepted");
                Ok(())
            }
            Err(DeleteRefused::Busy(r)) => Err(busy(&v.id, "unmanage", r)),
            Err(DeleteRefused::HasSnapshots(_) | DeleteRefused::Status) => {
                Err(Refused::Invalid(format!(
                    "Invalid volume: Volume status must be {} and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.",
                    joined(allowed)
                )))
            }
        }
    }

    /// What backend `name` (one this host runs) holds that could be managed, as its
    /// driver lists it, with Cinder's verdicts: storage named for a volume this service
    /// knows is not safe ("already managed", with its `cinder_id`); storage named like a
    /// volume this service does not know (any more) is safe unless the driver says
    /// otherwise for another reason.
    pub async fn manageable_volumes(
        &self,
        name: &str,
    ) -> Result<Vec<crate::driver::ManageableVolume>, super::OpError> {
        let backend = self
            .backends
            .get(name)
            .ok_or_else(|| super::OpError::Elsewhere(self.backend_key(name)))?;
        let mut found = backend.driver().get_manageable_volumes().await?;
        let named: Vec<String> = found.iter().filter_map(|m| m.cinder_id.clone()).collect();
        let known: std::collections::BTreeMap<String, String> =
            self.db.live_volume_ids(&named).await?.into_iter().collect();
        for m in &mut found {
            let Some(storage) = &m.cinder_id else {
                continue;
            };
            if let Some(id) = known.get(storage) {
                // The volume's own id, also when a migration named its storage otherwise.
                m.cinder_id = Some(id.clone());
                m.safe_to_manage = false;
                m.reason_not_safe = Some(ALREADY_MANAGED.into());
            } else {
                m.cinder_id = None;
                if m.reason_not_safe.as_deref() == Some(ALREADY_MANAGED) {
                    m.safe_to_manage = true;
                    m.reason_not_safe = None;
                }
            }
        }
        Ok(found)
    }

    /// What snapshots backend `name` holds that could be managed (contract 0.3), with the
    /// same verdicts as [`Self::manageable_volumes`]. A driver that does not list its
    /// snapshots (one built for an older contract among them) lists none, as Cinder's
    /// base driver does.
    pub async fn manageable_snapshots(
        &self,
        name: &str,
    ) -> Result<Vec<crate::driver::ManageableSnapshot>, super::OpError> {
        let backend = self
            .backends
            .get(name)
            .ok_or_else(|| super::OpError::Elsewhere(self.backend_key(name)))?;
        let mut found = match backend.driver().get_manageable_snapshots().await {
            Ok(found) => found,
            Err(crate::runtime::CallError::Driver(
                crate::runtime::DriverFailure::NotSupported(_),
            )) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let named: Vec<String> = found.iter().filter_map(|m| m.cinder_id.clone()).collect();
        let known: std::collections::BTreeSet<String> = self
            .db
            .live_snapshot_ids(&named)
            .await?
            .into_iter()
            .collect();
        for m in &mut found {
            let Some(id) = &m.cinder_id else {
                continue;
            };
            if known.contains(id) {
                m.safe_to_manage = false;
                m.reason_not_safe = Some(ALREADY_MANAGED.into());
            } else {
                m.cinder_id = None;
                if m.reason_not_safe.as_deref() == Some(ALREADY_MANAGED) {
                    m.safe_to_manage = true;
                    m.reason_not_safe = None;
                }
            }
        }
        Ok(found)
    }

    /// An administrator's `os-migrate_volume`: moves available volume `v` to `dest`
    /// (`HOST@BACKEND#POOL`, or `HOST@BACKEND` for the scheduler to pick the pool), held
    /// in `maintenance` when `lock`. The destination must exist, be up and pass the
    /// volume's filters now; its capacity is taken until the migration ends.
    pub async fn request_migrate(
        &self,
        v: &VolumeRow,
        dest: &str,
        lock: bool,
        request_id: &str,
    ) -> Result<(), Refused> {
        let cannot = || {
            format!(
                "Invalid volume: Volume {} status must be available or in-use, must not be migrating, have snapshots, be replicated, be part of a group and destination host must be different than the current host",
                v.id
            )
        };
        let Some(host) = v.host.as_deref() else {
            return Err(Refused::Invalid(format!(
                "Invalid volume: volume {} is not placed on any backend; nothing to migrate.",
                v.id
            )));
        };
        let same = match dest.split_once('#') {
            Some(_) => dest == host,
            None => dest == backend_key_of(host),
        };
        if same {
            return Err(Refused::Invalid(cannot()));
        }
        if v.status == VolumeStatus::InUse {
            return Err(Refused::Invalid(format!(
                "{}. Ashlar migrates available volumes: migrating an attached volume needs the compute service to swap it, which is not supported; detach it first.",
                cannot()
            )));
        }
        let key = backend_key_of(dest);
        if !self.service_known(key).await? {
            return Err(Refused::Invalid(format!(
                "Invalid host: No available service named {key}."
            )));
        }
        let (spec, _) = flows::spec_for(self, v, None, Vec::new())
            .await
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        let placement = match self.schedule_to(&spec, dest).await {
            Ok(p) => p,
            Err(OpError::NoValidBackend { public, .. }) => {
                return Err(Refused::Invalid(format!(
                    "No valid host was found. Cannot place volume {} on {dest}: {public}",
                    v.id
                )));
            }
            Err(OpError::Db(e)) => return Err(e.into()),
            Err(e) => return Err(Refused::Invalid(e.to_string())),
        };
        let held = if lock {
            VolumeStatus::Maintenance
        } else {
            VolumeStatus::Available
        };
        let job = flows::migration_job(
            v,
            &placement.name(),
            held,
            VolumeStatus::Available,
            None,
            Some(request_id),
        );
        let refused = match self.db.begin_migration(&v.id, lock, &job).await? {
            Ok(()) => {
                self.submit(&job.id);
                return Ok(());
            }
            Err(r) => r,
        };
        self.adjust_pool(&placement.name(), -v.size).await;
        Err(match refused {
            MoveRefused::Busy(r) => busy(&v.id, "migrate", r),
            MoveRefused::Quota(over) => over.into(),
            MoveRefused::Status(None) => {
                Refused::NotFound(format!("Volume {} could not be found.", v.id))
            }
            _ => Refused::Invalid(cannot()),
        })
    }

    /// Moves available volume `v` off its backend to a pool the scheduler picks among the
    /// others (a drained backend is disabled, so passed by); answers where it goes.
    pub async fn request_evacuate(
        &self,
        v: &VolumeRow,
        request_id: &str,
    ) -> Result<String, Refused> {
        let here: Vec<String> = v
            .host
            .as_deref()
            .map(|h| backend_key_of(h).to_string())
            .into_iter()
            .collect();
        let (spec, _) = flows::spec_for(self, v, None, here)
            .await
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        let placement = match self.schedule(&spec, None, false).await {
            Ok(p) => p,
            Err(OpError::NoValidBackend { public, .. }) => {
                return Err(Refused::Invalid(format!(
                    "No valid host was found for volume {}: {public}",
                    v.id
                )));
            }
            Err(OpError::Db(e)) => return Err(e.into()),
            Err(e) => return Err(Refused::Invalid(e.to_string())),
        };
        let dest = placement.name();
        let job = flows::migration_job(
            v,
            &dest,
            VolumeStatus::Available,
            VolumeStatus::Available,
            None,
            Some(request_id),
        );
        match self.db.begin_migration(&v.id, false, &job).await? {
            Ok(()) => {
                self.submit(&job.id);
                Ok(dest)
            }
            Err(r) => {
                self.adjust_pool(&dest, -v.size).await;
                let why = match r {
                    MoveRefused::Status(Some(s)) => format!("it is {s}"),
                    MoveRefused::Status(None) => "it is gone".into(),
                    MoveRefused::Migrating => "it is moving already".into(),
                    MoveRefused::HasSnapshots(n) => format!("it has {n} snapshot(s)"),
                    MoveRefused::Busy(r) => return Err(busy(&v.id, "migrate", r)),
                    MoveRefused::Quota(over) => return Err(over.into()),
                };
                Err(Refused::Invalid(format!(
                    "Invalid volume: volume {} cannot move now: {why}.",
                    v.id
                )))
            }
        }
    }

    /// `os-retype`: volume `v` (available or in-use) to type `new_type`, in place when its
    /// backend suits it, else — `migration_policy` `on-demand` — by a migration.
    pub async fn request_retype(
        &self,
        v: &VolumeRow,
        new_type: &VolumeType,
        policy: &str,
        request_id: &str,
    ) -> Result<(), Refused> {
        if v.volume_type_id.as_deref() == Some(new_type.id.as_str()) {
            return Err(Refused::Invalid(format!(
                "Invalid input received: New volume_type same as original: {}.",
                new_type.name
            )));
        }
        let cannot = "Invalid volume: Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change.";
        let back = match v.status {
            VolumeStatus::Available | VolumeStatus::InUse => v.status,
            _ => return Err(Refused::Invalid(cannot.into())),
        };
        let job = Self::job_row(
            &Job::RetypeVolume {
                new_type_id: new_type.id.clone(),
                migration_policy: policy.to_string(),
                back,
            },
            &v.id,
            request_id,
            v.host.as_deref(),
        );
        match self.db.begin_retype(&v.id, &new_type.id, &job).await? {
            Ok(()) => {
                self.submit(&job.id);
                Ok(())
            }
            Err(MoveRefused::Busy(r)) => Err(busy(&v.id, "retype", r)),
            Err(MoveRefused::Quota(over)) => Err(over.into()),
            Err(MoveRefused::Status(None)) => Err(Refused::NotFound(format!(
                "Volume {} could not be found.",
                v.id
            ))),
            Err(_) => Err(Refused::Invalid(cannot.into())),
        }
    }

    /// Whether a `cinder-volume` service named `key` (`HOST@BACKEND` or
    /// `CLUSTER@BACKEND`) is known to any host.
    async fn service_known(&self, key: &str) -> Result<bool, DbError> {
        if self.local_keys().iter().any(|k| k == key) {
            return Ok(true);
        }
        Ok(self.db.list_services().await?.into_iter().any(|s| {
            s.binary == super::services::VOLUME_BINARY
                && (s.host == key || s.cluster.as_deref() == Some(key))
        }))
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
