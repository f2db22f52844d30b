//! Every asynchronous operation as a flow of tasks with `execute` and `revert` (see
//! [`super::flow`]): create (empty, from a snapshot, a clone; rescheduled on failure),
//! delete, extend, snapshot create and delete, revert to a snapshot.
//!
//! Each flow starts with [`MarkFailed`], the one shared failure task: it does nothing on
//! the way in and, when a later task fails, reverts last — after the others have undone
//! what they did — by moving the resource to its error status and telling the user why.

mod create;
mod delete;
mod extend;
mod revert;
mod snapshot;

pub(super) use create::create_volume;
pub(super) use delete::delete_volume;
pub(super) use extend::extend_volume;
pub(super) use revert::revert_to_snapshot;
pub(super) use snapshot::{create_snapshot, delete_snapshot};

use super::flow::{BoxFuture, Task};
use super::status::{SnapshotStatus, VolumeStatus};
use super::{OpError, VolumeManager};
use crate::db::{SnapshotRow, VolumeRow};
use crate::driver::{ModelUpdate, Snapshot, Volume};

/// Cinder-style event ids for user messages: VOLUME_<resource>_<action>_<detail>.
pub(super) mod event {
    pub const SCHEDULE_NO_BACKEND: &str = "VOLUME_VOLUME_001_003";
    pub const CREATE_RESCHEDULED: &str = "VOLUME_VOLUME_001_009";
    pub const CREATE_DRIVER_FAILED: &str = "VOLUME_VOLUME_002_001";
    pub const CREATE_INTERRUPTED: &str = "VOLUME_VOLUME_002_008";
    pub const DELETE_FAILED: &str = "VOLUME_VOLUME_003_001";
    pub const EXTEND_FAILED: &str = "VOLUME_VOLUME_006_001";
    pub const REVERT_FAILED: &str = "VOLUME_VOLUME_007_001";
    pub const JOB_UNREADABLE: &str = "VOLUME_VOLUME_008_001";
    pub const SNAPSHOT_CREATE_FAILED: &str = "VOLUME_SNAPSHOT_004_001";
    pub const SNAPSHOT_DELETE_FAILED: &str = "VOLUME_SNAPSHOT_005_001";
}

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
}

/// The shared failure task.
pub(super) struct MarkFailed {
    /// `VOLUME` or `SNAPSHOT`, and its id, for the user message.
    pub resource_type: &'static str,
    pub resource_id: String,
    pub project_id: String,
    pub event: &'static str,
    /// The operation in a user's words (`create volume`), the message's prefix.
    pub action: &'static str,
    pub marks: Vec<Mark>,
}

impl MarkFailed {
    /// Failing `v` moves it from `from` to `to`.
    pub(super) fn volume(
        v: &VolumeRow,
        event: &'static str,
        action: &'static str,
        from: VolumeStatus,
        to: VolumeStatus,
    ) -> MarkFailed {
        MarkFailed {
            resource_type: "VOLUME",
            resource_id: v.id.clone(),
            project_id: v.project_id.clone(),
            event,
            action,
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
        event: &'static str,
        action: &'static str,
        from: SnapshotStatus,
        to: SnapshotStatus,
    ) -> MarkFailed {
        MarkFailed {
            resource_type: "SNAPSHOT",
            resource_id: s.id.clone(),
            project_id: s.project_id.clone(),
            event,
            action,
            marks: vec![Mark::Snapshot {
                id: s.id.clone(),
                from,
                to,
            }],
        }
    }

    /// Moves the resources to their error statuses and records `text` for the user.
    pub(super) async fn fail(&self, op: &Op<'_>, text: &str) {
        for mark in &self.marks {
            let moved = match mark {
                Mark::Volume { id, from, to } => {
                    op.m.db.transition_volume(id, &[*from], *to, None).await
                }
                Mark::Snapshot { id, from, to } => {
                    op.m.db.transition_snapshot(id, &[*from], *to, None).await
                }
            };
            if let Err(e) = moved {
                tracing::error!(resource = %self.resource_id, "cannot record the failure: {e}");
            }
        }
        tracing::warn!(resource = %self.resource_id, "{}: {text}", self.action);
        op.m.user_message(
            &self.project_id,
            op.request_id.clone(),
            self.resource_type,
            &self.resource_id,
            self.event,
            format!("{}: {text}", self.action),
        )
        .await;
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
        Box::pin(async move { self.fail(ctx.op(), &error.to_string()).await })
    }
}

/// A volume as its driver sees it: the row plus its type's name and extra specs.
pub(super) async fn driver_volume(m: &VolumeManager, v: &VolumeRow) -> Result<Volume, OpError> {
    let extra_specs = match &v.volume_type_id {
        Some(id) => m.db.extra_specs(id).await?,
        None => Vec::new(),
    };
    Ok(Volume {
        id: v.id.clone(),
        display_name: v.name.clone(),
        size_gib: v.size as u64,
        provider_location: v.provider_location.clone(),
        provider_auth: v.provider_auth.clone(),
        volume_type_name: v.volume_type_name.clone(),
        extra_specs,
        pool: v.pool().map(str::to_string),
    })
}

pub(super) fn driver_snapshot(s: &SnapshotRow) -> Snapshot {
    Snapshot {
        id: s.id.clone(),
        volume_id: s.volume_id.clone(),
        volume_size_gib: s.volume_size as u64,
        provider_location: s.provider_location.clone(),
        display_name: s.name.clone(),
    }
}

/// Cinder's columns hold 255 characters; a driver answering more is refused, not stored.
pub(super) fn check_model(model: &ModelUpdate) -> Result<(), OpError> {
    for (field, value) in [
        ("provider_location", &model.provider_location),
        ("provider_auth", &model.provider_auth),
    ] {
        if let Some(v) = value
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
