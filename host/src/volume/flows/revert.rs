//! Revert a volume to its latest snapshot (Cinder's `revert`, 3.40): the volume is
//! `reverting` and the snapshot `restoring` while the driver works; both end `available`,
//! or, on failure, the volume `error` and the snapshot `available` again, as in Cinder.

use super::super::flow::{self, BoxFuture, Task};
use super::{Ctx, Mark, MarkFailed, Op, driver_snapshot, driver_volume, volume_in};
use crate::db::{SnapshotRow, VolumeRow};
use crate::volume::message_field::{Action, Detail};
use crate::volume::status::{SnapshotStatus, VolumeStatus};
use crate::volume::{OpError, VolumeManager};

/// The volume and the snapshot it goes back to.
type RevertCtx<'m> = Ctx<'m, (VolumeRow, SnapshotRow)>;

struct RevertOnBackend;
/// `reverting` / `restoring` → `available`.
struct MarkReverted;

impl<'m> Task<RevertCtx<'m>, OpError> for RevertOnBackend {
    fn name(&self) -> &'static str {
        "revert-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut RevertCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (m, (volume, snapshot)) = (ctx.op.m, &ctx.it);
            let backend = m.backend_of(volume.host.as_deref()).ok_or_else(|| {
                OpError::Gone(format!("volume {} has no backend on this host", volume.id))
            })?;
            let v = driver_volume(m, volume).await?;
            backend
                .driver()
                .revert_to_snapshot(&v, &driver_snapshot(m, snapshot).await?)
                .await?;
            Ok(())
        })
    }
}

impl<'m> Task<RevertCtx<'m>, OpError> for MarkReverted {
    fn name(&self) -> &'static str {
        "mark-reverted"
    }
    fn execute<'a>(&'a self, ctx: &'a mut RevertCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let db = &ctx.op.m.db;
            let (v, s) = (&ctx.it.0.id, &ctx.it.1.id);
            let volume_done = db
                .transition_volume(v, &[VolumeStatus::Reverting], VolumeStatus::Available, None)
                .await?;
            let snapshot_done = db
                .transition_snapshot(
                    s,
                    &[SnapshotStatus::Restoring],
                    SnapshotStatus::Available,
                    None,
                )
                .await?;
            if !(volume_done && snapshot_done) {
                return Err(OpError::Gone(format!(
                    "the revert of volume {v} to snapshot {s} finished, but one of them changed status meanwhile; check both and reset their status"
                )));
            }
            tracing::info!(volume_id = %v, snapshot_id = %s, "volume reverted to its snapshot");
            Ok(())
        })
    }
}

pub(in crate::volume) async fn revert_to_snapshot(
    m: &VolumeManager,
    id: &str,
    snapshot_id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = volume_in(m, id, VolumeStatus::Reverting).await? else {
        return Ok(());
    };
    let mut failed = MarkFailed::volume(
        &volume,
        Action::REVERT_TO_SNAPSHOT,
        // Cinder has no detail for a driver that failed to revert a volume.
        Detail::UNKNOWN_ERROR,
        VolumeStatus::Reverting,
        VolumeStatus::Error,
    );
    failed.marks.push(Mark::Snapshot {
        id: snapshot_id.to_string(),
        from: SnapshotStatus::Restoring,
        to: SnapshotStatus::Available,
    });
    let op = Op { m, request_id };
    let Some(snapshot) = m.db.get_snapshot(snapshot_id).await? else {
        let e = OpError::Gone(format!("snapshot {snapshot_id} is gone"));
        failed.fail(&op, &e).await;
        return Err(e);
    };
    let mut ctx = Ctx {
        op,
        it: (volume, snapshot),
    };
    flow::run(
        "revert-to-snapshot",
        &[&failed, &RevertOnBackend, &MarkReverted],
        &mut ctx,
    )
    .await
}
