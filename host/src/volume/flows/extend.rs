//! Extend a volume: the driver grows it, then the row takes the new size and the pool's
//! cached stats the difference. A failure leaves `error_extending`.

use super::super::flow::{self, BoxFuture, Task};
use super::{Mark, MarkFailed, Op, OpContext, driver_volume, event, volume_in};
use crate::db::VolumeRow;
use crate::volume::status::VolumeStatus;
use crate::volume::{OpError, VolumeManager};

struct ExtendCtx<'m> {
    op: Op<'m>,
    volume: VolumeRow,
    new_size: i64,
}

impl<'m> OpContext<'m> for ExtendCtx<'m> {
    fn op(&self) -> &Op<'m> {
        &self.op
    }
}

struct ExtendOnBackend;
/// `extending` → `available` at the new size.
struct MarkExtended;

impl<'m> Task<ExtendCtx<'m>, OpError> for ExtendOnBackend {
    fn name(&self) -> &'static str {
        "extend-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut ExtendCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let backend = m.backend_of(ctx.volume.host.as_deref()).ok_or_else(|| {
                OpError::Gone(format!(
                    "volume {} has no backend on this host",
                    ctx.volume.id
                ))
            })?;
            let v = driver_volume(m, &ctx.volume).await?;
            backend
                .driver()
                .extend_volume(&v, ctx.new_size as u64)
                .await?;
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
            let (m, v) = (ctx.op.m, &ctx.volume);
            if !m.db.finish_extend(&v.id, ctx.new_size).await? {
                return Err(OpError::Gone(format!(
                    "volume {} left `extending` while the driver worked",
                    v.id
                )));
            }
            if let Some(host) = &v.host {
                m.adjust_pool(host, ctx.new_size - v.size);
            }
            tracing::info!(volume_id = %v.id, new_size = ctx.new_size, "volume extended");
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
    let failed = MarkFailed {
        resource_type: "VOLUME",
        resource_id: id.to_string(),
        project_id: volume.project_id.clone(),
        event: event::EXTEND_FAILED,
        action: "extend volume",
        marks: vec![Mark::Volume {
            id: id.to_string(),
            from: VolumeStatus::Extending,
            to: VolumeStatus::ErrorExtending,
        }],
    };
    let mut ctx = ExtendCtx {
        op: Op { m, request_id },
        volume,
        new_size,
    };
    flow::run(
        "extend-volume",
        &[&failed, &ExtendOnBackend, &MarkExtended],
        &mut ctx,
    )
    .await
}
