//! Extend a volume: the driver grows it, then the row takes the new size and the pool's
//! cached stats the difference. A failure leaves `error_extending`.

use super::super::flow::{self, BoxFuture, Task};
use super::{Ctx, MarkFailed, Op, driver_volume, volume_in};
use crate::db::VolumeRow;
use crate::volume::message_field::{Action, Detail};
use crate::volume::status::VolumeStatus;
use crate::volume::{OpError, VolumeManager};

/// The volume and the size it grows to, in GiB.
type ExtendCtx<'m> = Ctx<'m, (VolumeRow, i64)>;

struct ExtendOnBackend;
/// `extending` → `available` at the new size.
struct MarkExtended;

impl<'m> Task<ExtendCtx<'m>, OpError> for ExtendOnBackend {
    fn name(&self) -> &'static str {
        "extend-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut ExtendCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (m, (volume, new_size)) = (ctx.op.m, &ctx.it);
            let backend = m.backend_of(volume.host.as_deref()).ok_or_else(|| {
                OpError::Gone(format!("volume {} has no backend on this host", volume.id))
            })?;
            let v = driver_volume(m, volume).await?;
            backend.driver().extend_volume(&v, *new_size as u64).await?;
            Ok(())
        })
    }
}

impl<'m> Task<ExtendCtx<'m>, OpError> for MarkExtended {
    fn name(&self) -> &'static str {
        "mark-extended"
    }
    fn execute<'a>(&'a self, ctx: &'a mut ExtendCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (m, (v, new_size)) = (ctx.op.m, &ctx.it);
            let new_size = *new_size;
            if !m.db.finish_extend(&v.id, new_size).await? {
                return Err(OpError::Gone(format!(
                    "volume {} left `extending` while the driver worked",
                    v.id
                )));
            }
            if let Some(host) = &v.host {
                m.adjust_pool(host, new_size - v.size).await;
            }
            tracing::info!(volume_id = %v.id, new_size, "volume extended");
            Ok(())
        })
    }
}

pub(in crate::volume) async fn extend_volume(
    m: &VolumeManager,
    id: &str,
    new_size: i64,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = volume_in(m, id, VolumeStatus::Extending).await? else {
        return Ok(());
    };
    let failed = MarkFailed::volume(
        &volume,
        Action::EXTEND_VOLUME,
        Detail::DRIVER_FAILED_EXTEND,
        VolumeStatus::Extending,
        VolumeStatus::ErrorExtending,
    );
    let mut ctx = Ctx {
        op: Op { m, request_id },
        it: (volume, new_size),
    };
    flow::run(
        "extend-volume",
        &[&failed, &ExtendOnBackend, &MarkExtended],
        &mut ctx,
    )
    .await
}
