//! Every asynchronous operation as a flow of tasks with `execute` and `revert` (see
//! [`super::flow`]): create (empty, from a snapshot, a clone, an image; rescheduled on
//! failure), delete, extend, snapshot create and delete, revert to a snapshot, backups,
//! uploads to images, manage existing storage and unmanage, migrate and retype.
//!
//! Each flow starts with [`MarkFailed`], the one shared failure task: it does nothing on
//! the way in and, when a later task fails, reverts last — after the others have undone
//! what they did — by moving the resource to its error status and telling the user what
//! failed in Cinder's words (see [`super::message_field`]), and the log and administrators
//! why in the error's own.

mod backup;
mod create;
mod delete;
mod extend;
mod image;
mod manage;
mod migrate;
mod revert;
mod snapshot;

pub(super) use backup::{create_backup, delete_backup, restore_backup, sweep_orphans};
pub(super) use create::{create_volume, create_volume_job};
pub(super) use delete::delete_volume;
pub(super) use extend::extend_volume;
pub(super) use image::{sweep_temp_files, sweep_unfinished_cache, upload_image};
pub(super) use manage::{manage_existing, unmanage_volume};
pub(super) use migrate::{Migration, migrate_volume, migration_job, retype_volume, spec_for};
pub(super) use revert::revert_to_snapshot;
pub(super) use snapshot::{create_snapshot, delete_snapshot};

use super::flow::{BoxFuture, Task};
use super::message_field::{Action, Detail, Event, Resource};
use super::status::{SnapshotStatus, VolumeStatus};
use super::{OpError, VolumeManager};
use crate::db::{SnapshotRow, VolumeRow};
use crate::driver::{Connector, ModelUpdate, Snapshot, Volume};
use std::sync::Arc;

use crate::runtime::{CallError, DriverFailure, DriverPool};

/// What every flow's context carries: the manager and the request the job came from.
pub(super) struct Op<'m> {
    pub m: &'m VolumeManager,
    pub request_id: Option<String>,
}

/// A flow context gives the shared tasks its [`Op`].
pub(super) trait OpContext<'m>: Send {
    fn op(&self) -> &Op<'m>;
}

/// The context of a flow: the [`Op`] and what the flow's tasks share.
pub(super) struct Ctx<'m, T> {
    pub op: Op<'m>,
    pub it: T,
}

impl<'m, T: Send> OpContext<'m> for Ctx<'m, T> {
    fn op(&self) -> &Op<'m> {
        &self.op
    }
}

/// A status the failure task moves a resource to, from the status the operation holds it in.
#[derive(Clone, Debug)]
pub(super) enum Mark {
    Volume {
        id: String,
        from: VolumeStatus,
        to: VolumeStatus,
    },
    Snapshot {
        id: String,
        from: SnapshotStatus,
        to: SnapshotStatus,
    },
    /// A backup's create failed: `creating` → `error` with the user's message as its
    /// `fail_reason`, and its volume (or snapshot) released.
    BackupCreate { id: String },
    /// A restore failed: the backup back to `available`, the volume to `error_restoring`.
    BackupRestore { id: String, volume_id: String },
    /// A backup's delete failed: `deleting` → `error_deleting` with its `fail_reason`.
    BackupDelete { id: String },
    /// A migration or a retype failed: `migration_status` `error`, the volume from `held`
    /// back to `back`, a retype's per-type usage back to the old type.
    Move {
        id: String,
        held: VolumeStatus,
        back: VolumeStatus,
        retype_to: Option<String>,
    },
}

/// The shared failure task.
pub(super) struct MarkFailed {
    /// The resource the user message is about, and its id.
    pub resource: Resource,
    pub resource_id: String,
    pub project_id: String,
    /// The operation, in Cinder's words.
    pub action: Action,
    /// What a driver's failure is called, unless the error maps to a detail of its own.
    pub detail: Detail,
    pub marks: Vec<Mark>,
}

impl MarkFailed {
    /// Failing `v` moves it from `from` to `to`.
    pub(super) fn volume(
        v: &VolumeRow,
        action: Action,
        detail: Detail,
        from: VolumeStatus,
        to: VolumeStatus,
    ) -> MarkFailed {
        MarkFailed {
            resource: Resource::Volume,
            resource_id: v.id.clone(),
            project_id: v.project_id.clone(),
            action,
            detail,
            marks: vec![Mark::Volume {
                id: v.id.clone(),
                from,
                to,
            }],
        }
    }

    /// Failing `s` moves it from `from` to `to`.
    pub(super) fn snapshot(
        s: &SnapshotRow,
        action: Action,
        detail: Detail,
        from: SnapshotStatus,
        to: SnapshotStatus,
    ) -> MarkFailed {
        MarkFailed {
            resource: Resource::VolumeSnapshot,
            resource_id: s.id.clone(),
            project_id: s.project_id.clone(),
            action,
            detail,
            marks: vec![Mark::Snapshot {
                id: s.id.clone(),
                from,
                to,
            }],
        }
    }

    /// Moves the resources to their error statuses and tells the user of `e`.
    pub(super) async fn fail(&self, op: &Op<'_>, e: &OpError) {
        self.fail_as(
            op,
            e.detail_or(self.detail),
            e.hint().as_deref(),
            &e.to_string(),
        )
        .await
    }

    /// Moves the resources to their error statuses and records a user message: `detail`
    /// and the host's `hint` for the tenant, `internal` for the log and administrators.
    pub(super) async fn fail_as(
        &self,
        op: &Op<'_>,
        detail: Detail,
        hint: Option<&str>,
        internal: &str,
    ) {
        // The message first: a client that sees the error status finds why.
        let event = Event {
            resource: self.resource,
            action: self.action,
            detail,
        };
        let public = event.user_message(hint);
        op.m.user_message(
            &self.project_id,
            op.request_id.clone(),
            &self.resource_id,
            event,
            hint,
            internal,
        )
        .await;
        for mark in &self.marks {
            let moved = match mark {
                Mark::Volume { id, from, to } => {
                    op.m.db.transition_volume(id, &[*from], *to, None).await
                }
                Mark::Snapshot { id, from, to } => {
                    op.m.db.transition_snapshot(id, &[*from], *to, None).await
                }
                Mark::BackupCreate { id } => op.m.db.fail_create_backup(id, &public).await,
                Mark::BackupRestore { id, volume_id } => {
                    op.m.db
                        .finish_restore(id, volume_id, VolumeStatus::ErrorRestoring)
                        .await
                        .map(|()| true)
                }
                Mark::BackupDelete { id } => op.m.db.fail_delete_backup(id, &public).await,
                Mark::Move {
                    id,
                    held,
                    back,
                    retype_to,
                } => {
                    op.m.db
                        .fail_move(id, *held, *back, retype_to.as_deref())
                        .await
                }
            };
            if let Err(e) = moved {
                tracing::error!(resource = %self.resource_id, "cannot record the failure: {e}");
            }
        }
    }
}

impl<'m, C: OpContext<'m>> Task<C, OpError> for MarkFailed {
    fn name(&self) -> &'static str {
        "mark-failed"
    }
    fn execute<'a>(&'a self, _ctx: &'a mut C) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async { Ok(()) })
    }
    fn revert<'a>(&'a self, ctx: &'a mut C, error: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.fail(ctx.op(), error).await })
    }
}

/// A volume as its driver sees it: the row plus its type's name, extra specs and back-end
/// (or both) QoS specs. A driver built before contract 0.3 gets the QoS specs among the
/// extra specs as `qos:KEY` entries, the scope Cinder's drivers read them from (the
/// runtime's `compat` does that).
pub(super) async fn driver_volume(m: &VolumeManager, v: &VolumeRow) -> Result<Volume, OpError> {
    let (extra_specs, qos_specs) = match &v.volume_type_id {
        Some(id) => {
            let qos = match m.db.qos_specs_of_type(id).await? {
                Some(qos) if qos.consumer.back_end() => qos.specs.into_iter().collect(),
                _ => Vec::new(),
            };
            (m.db.extra_specs(id).await?, qos)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Volume {
        id: v.name_id.clone().unwrap_or_else(|| v.id.clone()),
        display_name: v.name.clone(),
        size_gib: v.size as u64,
        provider_location: v.provider_location.clone(),
        provider_auth: v.provider_auth.clone(),
        volume_type_name: v.volume_type_name.clone(),
        extra_specs,
        pool: v.pool().map(str::to_string),
        qos_specs,
    })
}

/// A snapshot as its driver sees it: its `volume_id` is the id its volume's storage is
/// named after (the volume's `name_id` once a migration moved it).
pub(super) async fn driver_snapshot(
    m: &VolumeManager,
    s: &SnapshotRow,
) -> Result<Snapshot, OpError> {
    let volume_id =
        m.db.storage_id_of(&s.volume_id)
            .await?
            .unwrap_or_else(|| s.volume_id.clone());
    Ok(Snapshot {
        id: s.id.clone(),
        volume_id,
        volume_size_gib: s.volume_size as u64,
        provider_location: s.provider_location.clone(),
        display_name: s.name.clone(),
    })
}

/// Cinder's columns hold 255 characters; a driver answering more is refused, not stored.
pub(super) fn check_model(model: &ModelUpdate) -> Result<(), OpError> {
    for (field, value) in [
        ("provider_location", &model.provider_location),
        ("provider_auth", &model.provider_auth),
    ] {
        if let Some(v) = value.value()
            && v.len() > 255
        {
            return Err(OpError::Gone(format!(
                "the driver answered a {field} of {} bytes; at most 255 are kept",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Records what a volume's model update asks beyond its provider fields: admin metadata
/// merged and removed, and the pool of the same backend it now lives in.
pub(super) async fn record_model_extras(
    m: &VolumeManager,
    volume_id: &str,
    model: &ModelUpdate,
) -> Result<(), OpError> {
    if !model.has_extras() {
        return Ok(());
    }
    if let Some(pool) = &model.pool
        && (pool.is_empty() || pool.contains(['#', '@']))
    {
        return Err(OpError::Gone(format!(
            "the driver moved volume {volume_id} to pool `{pool}`, which is not a pool name"
        )));
    }
    m.db.record_model_extras(
        volume_id,
        &model.metadata,
        &model.metadata_removed,
        model.pool.as_deref(),
    )
    .await?;
    Ok(())
}

/// The volume a job names, if it still exists and holds `status`; a job whose resource
/// moved on has nothing to do.
pub(super) async fn volume_in(
    m: &VolumeManager,
    id: &str,
    status: VolumeStatus,
) -> Result<Option<VolumeRow>, OpError> {
    Ok(m.db.get_volume(id).await?.filter(|v| v.status == status))
}

/// The snapshot a job names, if it still exists and holds `status`.
pub(super) async fn snapshot_in(
    m: &VolumeManager,
    id: &str,
    status: SnapshotStatus,
) -> Result<Option<SnapshotRow>, OpError> {
    Ok(m.db.get_snapshot(id).await?.filter(|s| s.status == status))
}

/// Connects `vol` to this host (the local connector, as a target driver or the backup
/// engine uses it) and answers its local device; the inner error says why the driver
/// gives the host no local device.
pub(super) async fn connect_local(
    m: &VolumeManager,
    driver: &Arc<DriverPool>,
    vol: &Volume,
) -> Result<Result<std::path::PathBuf, String>, OpError> {
    let info = match driver
        .initialize_connection(vol, &Connector::local(&m.host_name))
        .await
    {
        Ok(info) => info,
        Err(CallError::Driver(DriverFailure::NotSupported(why))) => return Ok(Err(why)),
        Err(e) => return Err(e.into()),
    };
    Ok(match info.text("device_path") {
        Some(d) if info.driver_volume_type == "local" && d.starts_with('/') => {
            Ok(std::path::PathBuf::from(d))
        }
        _ => Err(format!(
            "the driver answered a `{}` connection for the local connector",
            info.driver_volume_type
        )),
    })
}

/// Ends the host's local connection to `vol`; a failure is logged, not raised.
pub(super) async fn disconnect_local(m: &VolumeManager, driver: &Arc<DriverPool>, vol: &Volume) {
    let local = Connector::local(&m.host_name);
    match driver.terminate_connection(vol, Some(&local)).await {
        Ok(()) | Err(CallError::Driver(DriverFailure::NotSupported(_))) => {}
        Err(e) => tracing::warn!(volume_id = %vol.id, "ending the host's local connection: {e}"),
    }
}
