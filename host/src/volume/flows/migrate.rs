//! Volumes that move.
//!
//! A migration (`os-migrate_volume`, a retype that needs one, a drained backend) makes
//! the volume's copy on the destination pool under a new storage id (`name_id`),
//! connects both to this host, copies the data between their local devices (sparse both
//! ways, see [`crate::device::copy`]), then points the volume at the copy in one
//! conditional update — only if nothing touched the volume meanwhile — and deletes the
//! storage it left. The volume keeps its id; a failure at any step deletes the copy and
//! leaves the source as it was, with `migration_status` `error`.
//!
//! A retype changes the type in place when the volume's pool passes the new type's
//! filters and its driver's retype says it changed the volume (or the type asks nothing
//! of the backend that the old one did not); else, with `migration_policy` `on-demand`,
//! its job is followed by a migration to a pool that suits the new type.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::super::flow::{self, BoxFuture, Task};
use super::{
    Ctx, Mark, MarkFailed, Op, check_model, connect_local, disconnect_local, driver_volume,
    record_model_extras, volume_in,
};
use crate::db::{JobRow, MigrationDone, VolumeRow};
use crate::driver::{ModelUpdate, Volume};
use crate::runtime::{CallError, DriverFailure, DriverPool};
use crate::scheduler::RequestSpec;
use crate::volume::job::{Job, MovedFrom};
use crate::volume::message_field::{Action, Detail, Resource};
use crate::volume::status::VolumeStatus;
use crate::volume::{OpError, VolumeManager, backend_key_of};

/// What a migration's tasks share.
struct Work {
    volume: VolumeRow,
    dest: String,
    name_id: String,
    held: VolumeStatus,
    back: VolumeStatus,
    from: MovedFrom,
    new_type_id: Option<String>,
    source: Option<(Arc<DriverPool>, Volume)>,
    target: Option<(Arc<DriverPool>, Volume)>,
    /// The copy exists on the destination.
    made: bool,
    devices: Option<(PathBuf, PathBuf)>,
    /// The volume's revision once the copy began.
    revision: i64,
}

type MigrateCtx<'m> = Ctx<'m, Work>;

fn refused(public: impl Into<String>, detail: impl Into<String>) -> OpError {
    OpError::Move {
        public: public.into(),
        detail: detail.into(),
    }
}

/// The volume's old storage as its driver knew it, from what the job recorded.
fn left_volume(base: &Volume, from: &MovedFrom) -> Volume {
    Volume {
        id: from.storage_id.clone(),
        provider_location: from.provider_location.clone(),
        provider_auth: from.provider_auth.clone(),
        pool: from.host.split_once('#').map(|(_, p)| p.to_string()),
        ..base.clone()
    }
}

/// The volume's copy as its destination's driver sees it: on `dest`, under `name_id`,
/// with nothing the source's driver recorded.
fn copy_row(v: &VolumeRow, dest: &str, name_id: &str) -> VolumeRow {
    VolumeRow {
        name_id: Some(name_id.to_string()),
        host: Some(dest.to_string()),
        provider_location: None,
        provider_auth: None,
        ..v.clone()
    }
}

/// Both backends, both drivers' views, and `migration_status` `migrating`.
struct Prepare;
/// The copy on the destination; reverted by deleting it.
struct MakeCopy;
/// Both local devices; reverted by ending both connections.
struct Connect;
/// The data, then both connections ended.
struct CopyData;
/// The volume points at its copy.
struct Complete;

impl<'m> Task<MigrateCtx<'m>, OpError> for Prepare {
    fn name(&self) -> &'static str {
        "prepare-migration"
    }
    fn execute<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let w = &mut ctx.it;
            let source = m
                .backend_of(w.volume.host.as_deref())
                .ok_or_else(|| OpError::Elsewhere(backend_key_of(&w.from.host).to_string()))?;
            let dest_key = backend_key_of(&w.dest).to_string();
            let dest = m.backend_of(Some(&w.dest)).ok_or_else(|| {
                refused(
                    format!(
                        "The destination backend {dest_key} is not run by the host that runs the volume's backend; migrate between backends one host runs."
                    ),
                    format!("destination {dest_key} is not run by host {}", m.host_name),
                )
            })?;
            let mut src = driver_volume(m, &w.volume).await?;
            src.id = w.from.storage_id.clone();
            // The copy: the volume as the destination sees it, under its new storage id,
            // of the new type when a retype moves it.
            let mut row = w.volume.clone();
            if let Some(t) = &w.new_type_id {
                let ty =
                    m.db.get_volume_type(t)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("volume type {t} is gone")))?;
                row.volume_type_id = Some(ty.id);
                row.volume_type_name = Some(ty.name);
            }
            let dst = driver_volume(m, &copy_row(&row, &w.dest, &w.name_id)).await?;
            w.source = Some((source.driver(), src));
            w.target = Some((dest.driver(), dst));
            w.revision =
                m.db.set_migration_status(&w.volume.id, w.held, "migrating")
                    .await?
                    .ok_or_else(|| {
                        OpError::Gone(format!(
                            "volume {} left `{}` before its migration began",
                            w.volume.id, w.held
                        ))
                    })?;
            Ok(())
        })
    }
}

impl<'m> Task<MigrateCtx<'m>, OpError> for MakeCopy {
    fn name(&self) -> &'static str {
        "make-copy"
    }
    fn execute<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let w = &mut ctx.it;
            let (driver, dst) = w.target.as_mut().expect("prepared");
            // Made, or half made: either way the revert deletes it.
            w.made = true;
            let model = driver.create_volume(dst).await?;
            check_model(&model)?;
            dst.provider_location = model.provider_location.value().map(str::to_string);
            dst.provider_auth = model.provider_auth.value().map(str::to_string);
            tracing::info!(volume_id = %w.volume.id, dest = %w.dest, name_id = %w.name_id, "migration: copy made on the destination");
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let w = &ctx.it;
            if let (true, Some((driver, dst))) = (w.made, &w.target) {
                match driver.delete_volume(dst).await {
                    Ok(()) => {
                        tracing::info!(volume_id = %w.volume.id, "migration undone: its copy on {} deleted", w.dest)
                    }
                    Err(e) => {
                        tracing::error!(volume_id = %w.volume.id, "migration undone, but its copy {} on {} is left: {e}", w.name_id, w.dest)
                    }
                }
            }
        })
    }
}

impl<'m> Task<MigrateCtx<'m>, OpError> for Connect {
    fn name(&self) -> &'static str {
        "connect-both"
    }
    fn execute<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let w = &mut ctx.it;
            let no_device = |key: &str, why: String| {
                refused(
                    format!(
                        "Migration with backend {key} is not supported: its driver does not give the host a local device to copy through."
                    ),
                    format!("backend {key}: no local connection: {why}"),
                )
            };
            let (sd, sv) = w.source.as_ref().expect("prepared");
            let src = connect_local(m, sd, sv)
                .await?
                .map_err(|why| no_device(backend_key_of(&w.from.host), why))?;
            let (td, tv) = w.target.as_ref().expect("prepared");
            let dst = match connect_local(m, td, tv).await {
                Ok(Ok(d)) => d,
                Ok(Err(why)) => {
                    disconnect_local(m, sd, sv).await;
                    return Err(no_device(backend_key_of(&w.dest), why));
                }
                Err(e) => {
                    disconnect_local(m, sd, sv).await;
                    return Err(e);
                }
            };
            w.devices = Some((src, dst));
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move { disconnect_both(ctx).await })
    }
}

async fn disconnect_both(ctx: &mut MigrateCtx<'_>) {
    let m = ctx.op.m;
    let w = &mut ctx.it;
    if w.devices.take().is_some() {
        for (driver, v) in [&w.source, &w.target].into_iter().flatten() {
            disconnect_local(m, driver, v).await;
        }
    }
}

impl<'m> Task<MigrateCtx<'m>, OpError> for CopyData {
    fn name(&self) -> &'static str {
        "copy-data"
    }
    fn execute<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let w = &ctx.it;
            let (src, dst) = w.devices.clone().expect("connected");
            let len = w.volume.size as u64 * (1 << 30);
            let id = w.volume.id.clone();
            let started = Instant::now();
            let copied = tokio::task::spawn_blocking(move || {
                let mut last = Instant::now();
                let mut progress = |done: u64| {
                    if last.elapsed() >= Duration::from_secs(5) {
                        last = Instant::now();
                        tracing::info!(volume_id = %id, "migration: {} of {} MiB copied", done >> 20, len >> 20);
                    }
                };
                crate::device::copy(&src, &dst, len, &mut progress, &AtomicBool::new(false))
            })
            .await
            .map_err(|e| OpError::Gone(format!("the copy's thread failed: {e}")))?
            .map_err(|e| {
                refused(
                    format!("Copying the volume to {} failed: {e}.", backend_key_of(&w.dest)),
                    format!("{e} ({})", e.path.display()),
                )
            })?;
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                volume_id = %w.volume.id,
                read_mib = copied.read >> 20,
                written_mib = copied.written >> 20,
                "migration: data copied in {secs:.1} s"
            );
            disconnect_both(ctx).await;
            Ok(())
        })
    }
}

impl<'m> Task<MigrateCtx<'m>, OpError> for Complete {
    fn name(&self) -> &'static str {
        "complete-migration"
    }
    fn execute<'a>(&'a self, ctx: &'a mut MigrateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let w = &ctx.it;
            let (_, dst) = w.target.as_ref().expect("prepared");
            let done = MigrationDone {
                id: &w.volume.id,
                revision: w.revision,
                held: w.held,
                back: w.back,
                host: &w.dest,
                name_id: &w.name_id,
                provider_location: dst.provider_location.as_deref(),
                provider_auth: dst.provider_auth.as_deref(),
                new_type_id: w.new_type_id.as_deref(),
            };
            if !m.db.complete_migration(&done).await? {
                return Err(refused(
                    "The volume changed while it was copied (attached, extended, snapshotted or updated); the migration was undone and the volume left where it was.",
                    format!("volume {} changed during its migration", w.volume.id),
                ));
            }
            m.adjust_pool(&w.from.host, -w.volume.size).await;
            tracing::info!(volume_id = %w.volume.id, from = %w.from.host, to = %w.dest, name_id = %w.name_id, "volume migrated");
            Ok(())
        })
    }
}

/// Deletes the storage a migrated volume left; a failure is logged (the volume already
/// points at its copy).
async fn delete_left(m: &VolumeManager, volume: &VolumeRow, from: &MovedFrom) {
    let Some(backend) = m.backend_of(Some(&from.host)) else {
        tracing::error!(volume_id = %volume.id, "the storage {} the volume left on {} is not deleted: this host does not run that backend", from.storage_id, from.host);
        return;
    };
    let base = match driver_volume(m, volume).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(volume_id = %volume.id, "the storage the volume left is not deleted: {e}");
            return;
        }
    };
    let old = left_volume(&base, from);
    match backend.driver().delete_volume(&old).await {
        Ok(()) => {
            tracing::info!(volume_id = %volume.id, "migration: the storage left on {} deleted", from.host)
        }
        Err(e) => {
            tracing::error!(volume_id = %volume.id, "migration: the storage {} left on {} could not be deleted: {e}", from.storage_id, from.host)
        }
    }
}

/// The arguments of a migration job.
pub(in crate::volume) struct Migration<'a> {
    pub dest: &'a str,
    pub name_id: &'a str,
    pub held: VolumeStatus,
    pub back: VolumeStatus,
    pub from: &'a MovedFrom,
    pub new_type_id: Option<&'a str>,
}

pub(in crate::volume) async fn migrate_volume(
    m: &VolumeManager,
    id: &str,
    args: Migration<'_>,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(volume) = m.db.get_volume(id).await? else {
        return Ok(());
    };
    let action = if args.new_type_id.is_some() {
        Action::RETYPE_VOLUME
    } else {
        Action::MIGRATE_VOLUME
    };
    let failed = MarkFailed {
        resource: Resource::Volume,
        resource_id: volume.id.clone(),
        project_id: volume.project_id.clone(),
        action,
        detail: Detail::MIGRATION_FAILED,
        marks: vec![Mark::Move {
            id: volume.id.clone(),
            held: args.held,
            back: args.back,
            retype_to: args.new_type_id.map(str::to_string),
        }],
    };
    if volume.name_id.as_deref() == Some(args.name_id) {
        // It points at its copy already (a stop came after that): what is left is the
        // storage it moved from.
        delete_left(m, &volume, args.from).await;
        m.db.end_migration(&volume.id, args.name_id).await?;
        return Ok(());
    }
    if volume.status != args.held {
        return Ok(());
    }
    let op = Op { m, request_id };
    if recovering {
        // Stopped half-way: whatever the copy became is deleted, and the volume stays
        // where it was.
        if let Some(dest) = m.backend_of(Some(args.dest)) {
            let copy = driver_volume(m, &copy_row(&volume, args.dest, args.name_id)).await?;
            disconnect_local(m, &dest.driver(), &copy).await;
            if let Some(source) = m.backend_of(volume.host.as_deref()) {
                let mut src = driver_volume(m, &volume).await?;
                src.id = args.from.storage_id.clone();
                disconnect_local(m, &source.driver(), &src).await;
            }
            if let Err(e) = dest.driver().delete_volume(&copy).await {
                tracing::error!(volume_id = %volume.id, "an interrupted migration's copy {} on {} is left: {e}", args.name_id, args.dest);
            }
        }
        m.adjust_pool(args.dest, -volume.size).await;
        failed
            .fail_as(
                &op,
                Detail::MIGRATION_FAILED,
                Some("The service stopped while the volume was being moved; it was left where it was."),
                "migration interrupted by a stop; its copy deleted",
            )
            .await;
        return Ok(());
    }
    let mut ctx = Ctx {
        op,
        it: Work {
            volume,
            dest: args.dest.to_string(),
            name_id: args.name_id.to_string(),
            held: args.held,
            back: args.back,
            from: args.from.clone(),
            new_type_id: args.new_type_id.map(str::to_string),
            source: None,
            target: None,
            made: false,
            devices: None,
            revision: 0,
        },
    };
    let moved = flow::run(
        "migrate-volume",
        &[&failed, &Prepare, &MakeCopy, &Connect, &CopyData, &Complete],
        &mut ctx,
    )
    .await;
    match moved {
        Ok(()) => {
            delete_left(m, &ctx.it.volume, &ctx.it.from).await;
            m.db.end_migration(&ctx.it.volume.id, &ctx.it.name_id)
                .await?;
            Ok(())
        }
        Err(e) => {
            m.adjust_pool(args.dest, -ctx.it.volume.size).await;
            Err(e)
        }
    }
}

/// A volume as the scheduler places it, of type `type_id`.
pub(in crate::volume) async fn spec_for(
    m: &VolumeManager,
    v: &VolumeRow,
    type_id: Option<&str>,
    tried: Vec<String>,
) -> Result<(RequestSpec, Option<String>), OpError> {
    let mut row = v.clone();
    if let Some(t) = type_id {
        let ty =
            m.db.get_volume_type(t)
                .await?
                .ok_or_else(|| OpError::Gone(format!("volume type {t} is gone")))?;
        row.volume_type_id = Some(ty.id);
        row.volume_type_name = Some(ty.name);
    }
    let dv = driver_volume(m, &row).await?;
    Ok((
        RequestSpec {
            size_gib: v.size as u64,
            availability_zone: Some(v.availability_zone.clone()),
            volume_type: row.volume_type_name.clone(),
            extra_specs: dv.extra_specs.iter().cloned().collect(),
            tried,
        },
        row.volume_type_name,
    ))
}

/// The job that moves volume `v` to `dest`.
pub(in crate::volume) fn migration_job(
    v: &VolumeRow,
    dest: &str,
    held: VolumeStatus,
    back: VolumeStatus,
    new_type_id: Option<&str>,
    request_id: Option<&str>,
) -> JobRow {
    let job = Job::MigrateVolume {
        dest: dest.to_string(),
        name_id: uuid::Uuid::new_v4().to_string(),
        held,
        back,
        from: MovedFrom {
            host: v.host.clone().unwrap_or_default(),
            storage_id: v.name_id.clone().unwrap_or_else(|| v.id.clone()),
            provider_location: v.provider_location.clone(),
            provider_auth: v.provider_auth.clone(),
        },
        new_type_id: new_type_id.map(str::to_string),
    };
    JobRow::new(job.kind(), &v.id, job.payload(request_id))
        .on(VolumeManager::route_of(v.host.as_deref()))
}

pub(in crate::volume) async fn retype_volume(
    m: &VolumeManager,
    job_row: &JobRow,
    new_type_id: &str,
    policy: &str,
    back: VolumeStatus,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = volume_in(m, &job_row.resource_id, VolumeStatus::Retyping).await? else {
        return Ok(());
    };
    let failed = MarkFailed {
        resource: Resource::Volume,
        resource_id: volume.id.clone(),
        project_id: volume.project_id.clone(),
        action: Action::RETYPE_VOLUME,
        detail: Detail::MIGRATION_FAILED,
        marks: vec![Mark::Move {
            id: volume.id.clone(),
            held: VolumeStatus::Retyping,
            back,
            retype_to: Some(new_type_id.to_string()),
        }],
    };
    let op = Op {
        m,
        request_id: request_id.clone(),
    };
    match retype_in_place(m, &volume, new_type_id).await {
        Ok(Some(model)) => {
            if let Err(e) = record_retype(m, &volume, &model).await {
                failed.fail(&op, &e).await;
                return Err(e);
            }
            if !m.db.finish_retype(&volume.id, new_type_id, back).await? {
                return Err(OpError::Gone(format!(
                    "volume {} left `retyping` while it was retyped",
                    volume.id
                )));
            }
            tracing::info!(volume_id = %volume.id, new_type_id, "volume retyped in place");
            return Ok(());
        }
        Ok(None) => {}
        Err(e) => {
            failed.fail(&op, &e).await;
            return Err(e);
        }
    }
    // The volume must move to a pool that suits the new type.
    let fail = |public: String, detail: String, d: Detail| {
        let failed = &failed;
        let op = &op;
        async move {
            let e = refused(public, detail);
            failed
                .fail_as(op, d, e.hint().as_deref(), &e.to_string())
                .await;
            Err(e)
        }
    };
    if policy != "on-demand" {
        return fail(
            "Retype requires migration but is not allowed: retype with migration_policy on-demand to move the volume.".into(),
            format!("volume {}: its backend does not retype it in place and the policy is {policy}", volume.id),
            Detail::RETYPE_NEEDS_MIGRATION,
        )
        .await;
    }
    if back != VolumeStatus::Available {
        return fail(
            "Retyping an attached volume that must move to another backend is not supported; detach it first.".into(),
            format!("volume {} is {back} and must migrate", volume.id),
            Detail::MIGRATION_FAILED,
        )
        .await;
    }
    if m.db.snapshot_count(&volume.id).await? > 0 {
        return fail(
            "A volume with snapshots cannot move to another backend; delete its snapshots first."
                .into(),
            format!("volume {} has snapshots and must migrate", volume.id),
            Detail::MIGRATION_FAILED,
        )
        .await;
    }
    let here = volume
        .host
        .as_deref()
        .map(|h| backend_key_of(h).to_string());
    let (spec, _) = spec_for(m, &volume, Some(new_type_id), here.into_iter().collect()).await?;
    let placement = match m.schedule(&spec, None, false).await {
        Ok(p) => p,
        Err(e) => {
            failed.fail(&op, &e).await;
            return Err(e);
        }
    };
    let next = migration_job(
        &volume,
        &placement.name(),
        VolumeStatus::Retyping,
        back,
        Some(new_type_id),
        request_id.as_deref(),
    );
    if m.db.follow_job(&job_row.id, &m.host_name, &next).await? {
        tracing::info!(volume_id = %volume.id, dest = %placement.name(), "retype: the volume moves to a pool that suits its new type");
        m.submit(&next.id);
    } else {
        m.adjust_pool(&placement.name(), -volume.size).await;
    }
    Ok(())
}

/// Records what a driver's in-place retype answered: its provider fields, admin metadata
/// and the pool it moved the volume to.
async fn record_retype(
    m: &VolumeManager,
    v: &VolumeRow,
    model: &ModelUpdate,
) -> Result<(), OpError> {
    check_model(model)?;
    let location = model
        .provider_location
        .apply(v.provider_location.as_deref());
    let auth = model.provider_auth.apply(v.provider_auth.as_deref());
    if location != v.provider_location || auth != v.provider_auth {
        m.db.set_volume_provider(&v.id, location.as_deref(), auth.as_deref())
            .await?;
    }
    record_model_extras(m, &v.id, model).await
}

/// Retypes `v` where it is, if it may stay: its pool passes the new type's filters, and
/// either the new type asks nothing of the backend that the old one did not, or the
/// driver's retype changed the volume (answering what to record). `None`: it must move.
async fn retype_in_place(
    m: &VolumeManager,
    v: &VolumeRow,
    new_type_id: &str,
) -> Result<Option<ModelUpdate>, OpError> {
    let Some(host) = v.host.as_deref() else {
        // Never placed (an `error` volume has no storage): nothing on a backend to change.
        return Ok(Some(ModelUpdate::default()));
    };
    let (spec, new_name) = spec_for(m, v, Some(new_type_id), Vec::new()).await?;
    if !m.fits(&spec, host).await {
        return Ok(None);
    }
    let current = driver_volume(m, v).await?;
    let mut old: Vec<(String, String)> = current.extra_specs.clone();
    let mut new: Vec<(String, String)> = spec.extra_specs.into_iter().collect();
    old.sort();
    new.sort();
    if old == new {
        return Ok(Some(ModelUpdate::default()));
    }
    let backend = m
        .backend_of(Some(host))
        .ok_or_else(|| OpError::Elsewhere(backend_key_of(host).to_string()))?;
    match backend
        .driver()
        .retype(&current, new_name.as_deref().unwrap_or(""), &new)
        .await
    {
        Ok(changed) => Ok(changed),
        Err(CallError::Driver(DriverFailure::NotSupported(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
