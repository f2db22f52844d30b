//! Delete a volume: the driver deletes its storage, then the row is soft-deleted and the
//! pool's cached stats get the capacity back. A failure leaves `error_deleting`.

use super::super::flow::{self, BoxFuture, Task};
use super::{Ctx, MarkFailed, Op, driver_volume, volume_in};
use crate::db::VolumeRow;
use crate::volume::message_field::{Action, Detail};
use crate::volume::status::VolumeStatus;
use crate::volume::{OpError, VolumeManager};

type DeleteCtx<'m> = Ctx<'m, VolumeRow>;

/// Has the driver delete the volume's storage (nothing to do for a volume never placed).
struct DeleteOnBackend;
/// `deleting` → deleted.
struct MarkDeleted;

impl<'m> Task<DeleteCtx<'m>, OpError> for DeleteOnBackend {
    fn name(&self) -> &'static str {
        "delete-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut DeleteCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            if let Some(backend) = m.backend_of(ctx.it.host.as_deref()) {
                let v = driver_volume(m, &ctx.it).await?;
                backend.driver().delete_volume(&v).await?;
            }
            Ok(())
        })
    }
}

impl<'m> Task<DeleteCtx<'m>, OpError> for MarkDeleted {
    fn name(&self) -> &'static str {
        "mark-deleted"
    }
    fn execute<'a>(&'a self, ctx: &'a mut DeleteCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            m.db.finish_delete_volume(&ctx.it.id).await?;
            if let Some(host) = &ctx.it.host {
                m.adjust_pool(host, -ctx.it.size).await;
            }
            tracing::info!(volume_id = %ctx.it.id, "volume deleted");
            Ok(())
        })
    }
}

pub(in crate::volume) async fn delete_volume(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = volume_in(m, id, VolumeStatus::Deleting).await? else {
        return Ok(());
    };
    let failed = MarkFailed::volume(
        &volume,
        Action::DELETE_VOLUME,
        // Cinder has no detail for a driver that failed to delete a volume.
        Detail::UNKNOWN_ERROR,
        VolumeStatus::Deleting,
        VolumeStatus::ErrorDeleting,
    );
    let mut ctx = Ctx {
        op: Op { m, request_id },
        it: volume,
    };
    flow::run(
        "delete-volume",
        &[&failed, &DeleteOnBackend, &MarkDeleted],
        &mut ctx,
    )
    .await
}
