//! Snapshots: create (the driver snapshots the volume; undone on failure or after a crash)
//! and delete.

use super::super::flow::{self, BoxFuture, Task};
use super::{Ctx, MarkFailed, Op, check_model, driver_snapshot, driver_volume, snapshot_in};
use crate::db::SnapshotRow;
use crate::driver::{Snapshot, Volume};
use crate::runtime::DriverPool;
use crate::volume::message_field::{Action, Detail};
use crate::volume::status::SnapshotStatus;
use crate::volume::{OpError, VolumeManager};

/// The snapshot, and where the driver said it lives once made.
struct Snap {
    row: SnapshotRow,
    provider_location: Option<String>,
}

type SnapshotCtx<'m> = Ctx<'m, Snap>;

/// The snapshot's volume, its backend's driver, and both as the driver sees them.
async fn on_backend(
    m: &VolumeManager,
    snap: &SnapshotRow,
) -> Result<(std::sync::Arc<DriverPool>, Volume, Snapshot), OpError> {
    let volume =
        m.db.get_volume(&snap.volume_id)
            .await?
            .ok_or_else(|| OpError::Gone(format!("volume {} is gone", snap.volume_id)))?;
    let backend = m.backend_of(volume.host.as_deref()).ok_or_else(|| {
        OpError::Gone(format!("volume {} has no backend on this host", volume.id))
    })?;
    Ok((
        backend.driver(),
        driver_volume(m, &volume).await?,
        driver_snapshot(m, snap).await?,
    ))
}

struct CreateSnapshotOnBackend;
/// `creating` → `available`.
struct MarkSnapshotAvailable;
struct DeleteSnapshotOnBackend;
/// `deleting` → deleted.
struct MarkSnapshotDeleted;

impl<'m> Task<SnapshotCtx<'m>, OpError> for CreateSnapshotOnBackend {
    fn name(&self) -> &'static str {
        "create-snapshot-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut SnapshotCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (driver, v, s) = on_backend(ctx.op.m, &ctx.it.row).await?;
            let model = driver.create_snapshot(&s, &v).await?;
            check_model(&model)?;
            ctx.it.provider_location = model.provider_location.value().map(str::to_string);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut SnapshotCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move { undo_snapshot(ctx.op.m, &ctx.it.row).await })
    }
}

/// Asks the backend to delete whatever a snapshot create may have left.
async fn undo_snapshot(m: &VolumeManager, snap: &SnapshotRow) {
    let Ok((driver, v, s)) = on_backend(m, snap).await else {
        return;
    };
    if let Err(e) = driver.delete_snapshot(&s, &v).await {
        tracing::warn!(snapshot_id = %snap.id, "revert of a snapshot create left something behind: {e}");
    }
}

impl<'m> Task<SnapshotCtx<'m>, OpError> for MarkSnapshotAvailable {
    fn name(&self) -> &'static str {
        "mark-snapshot-available"
    }
    fn execute<'a>(&'a self, ctx: &'a mut SnapshotCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let id = &ctx.it.row.id;
            if !ctx
                .op
                .m
                .db
                .finish_create_snapshot(id, ctx.it.provider_location.as_deref())
                .await?
            {
                return Err(OpError::Gone(format!(
                    "snapshot {id} left `creating` while the driver worked"
                )));
            }
            tracing::info!(snapshot_id = %id, "snapshot available");
            Ok(())
        })
    }
}

impl<'m> Task<SnapshotCtx<'m>, OpError> for DeleteSnapshotOnBackend {
    fn name(&self) -> &'static str {
        "delete-snapshot-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut SnapshotCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            // A snapshot whose volume or backend is gone has no storage left to delete.
            match on_backend(ctx.op.m, &ctx.it.row).await {
                Ok((driver, v, s)) => Ok(driver.delete_snapshot(&s, &v).await?),
                Err(OpError::Gone(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

impl<'m> Task<SnapshotCtx<'m>, OpError> for MarkSnapshotDeleted {
    fn name(&self) -> &'static str {
        "mark-snapshot-deleted"
    }
    fn execute<'a>(&'a self, ctx: &'a mut SnapshotCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            ctx.op.m.db.finish_delete_snapshot(&ctx.it.row.id).await?;
            tracing::info!(snapshot_id = %ctx.it.row.id, "snapshot deleted");
            Ok(())
        })
    }
}

pub(in crate::volume) async fn create_snapshot(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(snapshot) = snapshot_in(m, id, SnapshotStatus::Creating).await? else {
        return Ok(());
    };
    let failed = MarkFailed::snapshot(
        &snapshot,
        Action::SNAPSHOT_CREATE,
        Detail::SNAPSHOT_CREATE_ERROR,
        SnapshotStatus::Creating,
        SnapshotStatus::Error,
    );
    let op = Op { m, request_id };
    if recovering {
        undo_snapshot(m, &snapshot).await;
        let text = "the service stopped while the snapshot was being made; it was cleaned up";
        failed
            .fail_as(
                &op,
                Detail::SNAPSHOT_CREATE_ERROR,
                Some(
                    "The service stopped while the snapshot was being made; it was cleaned up. Create it again.",
                ),
                text,
            )
            .await;
        return Err(OpError::Gone(format!("create snapshot: {text}")));
    }
    let mut ctx = Ctx {
        op,
        it: Snap {
            row: snapshot,
            provider_location: None,
        },
    };
    flow::run(
        "create-snapshot",
        &[&failed, &CreateSnapshotOnBackend, &MarkSnapshotAvailable],
        &mut ctx,
    )
    .await
}

pub(in crate::volume) async fn delete_snapshot(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(snapshot) = snapshot_in(m, id, SnapshotStatus::Deleting).await? else {
        return Ok(());
    };
    let failed = MarkFailed::snapshot(
        &snapshot,
        Action::SNAPSHOT_DELETE,
        Detail::SNAPSHOT_DELETE_ERROR,
        SnapshotStatus::Deleting,
        SnapshotStatus::ErrorDeleting,
    );
    let mut ctx = Ctx {
        op: Op { m, request_id },
        it: Snap {
            row: snapshot,
            provider_location: None,
        },
    };
    flow::run(
        "delete-snapshot",
        &[&failed, &DeleteSnapshotOnBackend, &MarkSnapshotDeleted],
        &mut ctx,
    )
    .await
}
