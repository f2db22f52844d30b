//! Manage existing storage and let go of it (Cinder's `manage_existing` flow and
//! `delete(unmanage_only=True)`).
//!
//! Manage: the driver sizes what the reference names, the project's gigabytes take that
//! size (within its quotas, before anything on the backend changes), the driver renames
//! the storage to the volume's own name and answers its model update, and the volume ends
//! `available`. A failure anywhere leaves `error_managing` with a user message; the
//! storage is renamed only by the last driver call, so a refusal before it leaves the
//! backend as it was.
//!
//! Unmanage: the driver lets go (its storage stays), then the row goes and its usage is
//! given back. A failure leaves `error_unmanaging`.

use super::super::flow::{self, BoxFuture, Task};
use super::{Ctx, MarkFailed, Op, check_model, driver_volume, record_model_extras, volume_in};
use crate::db::VolumeRow;
use crate::volume::message_field::{Action, Detail};
use crate::volume::status::VolumeStatus;
use crate::volume::{OpError, VolumeManager};

/// The volume and the reference (Cinder's `ref`, as JSON text).
type ManageCtx<'m> = Ctx<'m, (VolumeRow, String)>;

/// Asks the driver for the size, and charges it to the project.
struct SizeOnBackend;
/// Has the driver take the storage over (rename it) and records its model update.
struct ManageOnBackend;

impl<'m> Task<ManageCtx<'m>, OpError> for SizeOnBackend {
    fn name(&self) -> &'static str {
        "manage-existing-get-size"
    }
    fn execute<'a>(&'a self, ctx: &'a mut ManageCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (m, (volume, reference)) = (ctx.op.m, &mut ctx.it);
            let backend = m.backend_of(volume.host.as_deref()).ok_or_else(|| {
                OpError::Gone(format!("volume {} has no backend on this host", volume.id))
            })?;
            let v = driver_volume(m, volume).await?;
            let size = backend
                .driver()
                .manage_existing_get_size(&v, reference)
                .await?;
            // A file or LV smaller than 1 GiB still makes a 1 GiB volume, as Cinder's
            // drivers round up.
            let size = i64::try_from(size.max(1))
                .map_err(|_| OpError::Gone(format!("the driver answered a size of {size} GiB")))?;
            match m.db.size_managed_volume(&volume.id, size).await? {
                Ok(true) => {}
                Ok(false) => {
                    return Err(OpError::Gone(format!(
                        "volume {} left `managing` while the driver worked",
                        volume.id
                    )));
                }
                Err(over) => {
                    return Err(OpError::OverQuota(format!(
                        "{}: {over}",
                        over.exception_name()
                    )));
                }
            }
            volume.size = size;
            tracing::info!(volume_id = %volume.id, size, "existing storage sized for manage");
            Ok(())
        })
    }
}

impl<'m> Task<ManageCtx<'m>, OpError> for ManageOnBackend {
    fn name(&self) -> &'static str {
        "manage-existing"
    }
    fn execute<'a>(&'a self, ctx: &'a mut ManageCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (m, (volume, reference)) = (ctx.op.m, &ctx.it);
            let backend = m.backend_of(volume.host.as_deref()).ok_or_else(|| {
                OpError::Gone(format!("volume {} has no backend on this host", volume.id))
            })?;
            let v = driver_volume(m, volume).await?;
            let model = backend.driver().manage_existing(&v, reference).await?;
            check_model(&model)?;
            if !m
                .db
                .finish_manage(
                    &volume.id,
                    model.provider_location.value(),
                    model.provider_auth.value(),
                )
                .await?
            {
                return Err(OpError::Gone(format!(
                    "volume {} left `managing` while the driver worked",
                    volume.id
                )));
            }
            record_model_extras(m, &volume.id, &model).await?;
            if let Some(host) = &volume.host {
                m.adjust_pool(host, volume.size).await;
            }
            tracing::info!(volume_id = %volume.id, size = volume.size, "existing storage managed");
            Ok(())
        })
    }
}

pub(in crate::volume) async fn manage_existing(
    m: &VolumeManager,
    id: &str,
    reference: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = volume_in(m, id, VolumeStatus::Managing).await? else {
        return Ok(());
    };
    let failed = MarkFailed::volume(
        &volume,
        Action::MANAGE_EXISTING,
        // Cinder has no detail for a driver that failed to manage a volume.
        Detail::UNKNOWN_ERROR,
        VolumeStatus::Managing,
        VolumeStatus::ErrorManaging,
    );
    let mut ctx = Ctx {
        op: Op { m, request_id },
        it: (volume, reference.to_string()),
    };
    flow::run(
        "manage-existing",
        &[&failed, &SizeOnBackend, &ManageOnBackend],
        &mut ctx,
    )
    .await
}

type UnmanageCtx<'m> = Ctx<'m, VolumeRow>;

/// Has the driver let go of the volume; its storage stays.
struct UnmanageOnBackend;
/// `unmanaging` (or `error_managing_deleting`) → gone, the usage given back.
struct MarkUnmanaged;

impl<'m> Task<UnmanageCtx<'m>, OpError> for UnmanageOnBackend {
    fn name(&self) -> &'static str {
        "unmanage-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut UnmanageCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            // A volume never placed has nothing on any backend to let go of.
            if let Some(backend) = m.backend_of(ctx.it.host.as_deref()) {
                let v = driver_volume(m, &ctx.it).await?;
                backend.driver().unmanage(&v).await?;
            } else if ctx.it.host.is_some() {
                return Err(OpError::Gone(format!(
                    "volume {} has no backend on this host",
                    ctx.it.id
                )));
            }
            Ok(())
        })
    }
}

impl<'m> Task<UnmanageCtx<'m>, OpError> for MarkUnmanaged {
    fn name(&self) -> &'static str {
        "mark-unmanaged"
    }
    fn execute<'a>(&'a self, ctx: &'a mut UnmanageCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            if !m.db.finish_unmanage_volume(&ctx.it.id).await? {
                return Err(OpError::Gone(format!(
                    "volume {} left `unmanaging` while the driver worked",
                    ctx.it.id
                )));
            }
            if let Some(host) = &ctx.it.host {
                m.adjust_pool(host, -ctx.it.size).await;
            }
            tracing::info!(volume_id = %ctx.it.id, "volume unmanaged; its storage stays on the backend");
            Ok(())
        })
    }
}

pub(in crate::volume) async fn unmanage_volume(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = m.db.get_volume(id).await?.filter(|v| {
        matches!(
            v.status,
            VolumeStatus::Unmanaging | VolumeStatus::ErrorManagingDeleting
        )
    }) else {
        return Ok(());
    };
    let failed = MarkFailed::volume(
        &volume,
        Action::UNMANAGE_VOLUME,
        Detail::UNKNOWN_ERROR,
        volume.status,
        VolumeStatus::ErrorUnmanaging,
    );
    let mut ctx = Ctx {
        op: Op { m, request_id },
        it: volume,
    };
    flow::run(
        "unmanage-volume",
        &[&failed, &UnmanageOnBackend, &MarkUnmanaged],
        &mut ctx,
    )
    .await
}
