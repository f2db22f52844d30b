//! Backups: create (read the volume, or a temporary volume made from it or from its
//! snapshot, into the backup store), restore (write a backup onto a volume, made first
//! when the restore asked for a new one) and delete (the objects, then the row).
//!
//! The volume is read and written through the host's local connection to it, as a target
//! driver exports it (`initialize_connection` with the local connector answers `local`
//! with a `device_path`); a backend whose driver cannot answer one cannot be backed up,
//! and the backup says so in its `fail_reason`. Cinder's temporary volume approach serves
//! `force` on an in-use volume (a clone) and `snapshot_id` (a volume from the snapshot):
//! the temporary volume is named on the backup before it is made, and removed afterwards
//! even on failure (or, after a crash, by recovery).
//!
//! The engine runs on a blocking thread; its progress is written to the backup row at
//! most about once a second.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::super::flow::{self, BoxFuture, Task};
use super::{Ctx, Mark, MarkFailed, Op, disconnect_local, driver_snapshot, driver_volume};
use crate::backup::ObjectStore;
use crate::backup::engine::{self, EngineError, Progress};
use crate::db::{BackupRow, VolumeRow};
use crate::driver::Volume;
use crate::runtime::DriverPool;
use crate::volume::message_field::{Action, Detail, Resource};
use crate::volume::status::{BackupStatus, VolumeStatus};
use crate::volume::{OpError, VolumeManager};

/// What a backup's tasks share.
struct Work {
    backup: BackupRow,
    store: Arc<dyn ObjectStore>,
    /// The volume backed up or restored onto.
    volume: VolumeRow,
    driver: Option<Arc<DriverPool>>,
    backend: String,
    /// The temporary volume read instead of the volume itself, once made.
    temp: Option<Volume>,
    /// The volume (or temporary volume) connected locally, and its device.
    connected: Option<Volume>,
    device: Option<PathBuf>,
    objects: u64,
    stored_bytes: u64,
}

type BackupCtx<'m> = Ctx<'m, Work>;

fn unsupported(backend: &str, why: &str) -> OpError {
    OpError::Backup {
        public: format!(
            "Backups of volumes on backend {backend} are not supported: its driver does not give the host a local device to read or write."
        ),
        detail: format!("backend {backend}: no local connection for backups: {why}"),
    }
}

/// An engine failure: what it names (an object, a count) is for the tenant too; a host
/// path never is.
fn engine_error(what: &str, e: EngineError) -> OpError {
    OpError::Backup {
        public: format!("The backup service could not {what}: {e}."),
        detail: format!("{what}: {}", e.internal()),
    }
}

fn joined(e: tokio::task::JoinError) -> OpError {
    OpError::Backup {
        public: "The backup service stopped unexpectedly while it worked.".into(),
        detail: format!("the engine's thread failed: {e}"),
    }
}

/// Connects `vol` to this host and answers its local device.
async fn connect_local(
    m: &VolumeManager,
    driver: &Arc<DriverPool>,
    backend: &str,
    vol: &Volume,
) -> Result<PathBuf, OpError> {
    super::connect_local(m, driver, vol)
        .await?
        .map_err(|why| unsupported(backend, &why))
}

/// Ends the local connection a task made, if it made one (a connect task's revert).
async fn release_device(ctx: &mut BackupCtx<'_>) {
    if let (Some(driver), Some(vol), Some(_)) =
        (&ctx.it.driver, &ctx.it.connected, ctx.it.device.take())
    {
        disconnect_local(ctx.op.m, driver, vol).await;
    }
}

/// Writes progress to the row at most once a second while `run` goes on.
async fn with_progress<T: Send + 'static>(
    m: &VolumeManager,
    backup_id: &str,
    run: impl FnOnce(&(dyn Fn(Progress) + Sync)) -> T + Send + 'static,
) -> Result<T, OpError> {
    let (tx, mut rx) = tokio::sync::watch::channel((0u64, 0u64));
    let mut work = tokio::task::spawn_blocking(move || {
        let report = move |p: Progress| {
            tx.send_replace((p.done_bytes, p.total_bytes));
        };
        run(&report)
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut written = (0u64, 0u64);
    loop {
        tokio::select! {
            done = &mut work => return done.map_err(joined),
            _ = tick.tick() => {
                let now = *rx.borrow_and_update();
                if now != written {
                    written = now;
                    if let Err(e) = m.db.set_backup_progress(backup_id, now.0 as i64, now.1 as i64).await {
                        tracing::warn!(backup_id, "cannot record progress: {e}");
                    }
                }
            }
        }
    }
}

/// Removes a temporary volume a backup read from.
async fn remove_temp(m: &VolumeManager, driver: &Arc<DriverPool>, backup_id: &str, temp: &Volume) {
    if let Err(e) = driver.delete_volume(temp).await {
        tracing::warn!(backup_id, temp_volume_id = %temp.id, "removing the temporary volume: {e}");
        return;
    }
    if let Err(e) = m.db.set_backup_temp(backup_id, None, None).await {
        tracing::warn!(backup_id, "cannot clear the temporary volume: {e}");
    }
}

/// The driver of the backend `v` lives on.
fn backend_of(m: &VolumeManager, v: &VolumeRow) -> Result<(Arc<DriverPool>, String), OpError> {
    let backend = m
        .backend_of(v.host.as_deref())
        .ok_or_else(|| OpError::Gone(format!("volume {} has no backend on this host", v.id)))?;
    Ok((backend.driver(), backend.name.clone()))
}

/// A temporary volume standing in for `v` (same size, type and pool).
fn temp_volume(base: &Volume, id: &str) -> Volume {
    Volume {
        id: id.to_string(),
        display_name: Some(format!("backup-temp-{id}")),
        provider_location: None,
        provider_auth: None,
        ..base.clone()
    }
}

struct PrepareSource;
struct ConnectSource;
struct StoreData;
struct ReleaseSource;
struct MarkBackupAvailable;

impl<'m> Task<BackupCtx<'m>, OpError> for PrepareSource {
    fn name(&self) -> &'static str {
        "prepare-backup-source"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let (driver, backend) = backend_of(m, &ctx.it.volume)?;
            ctx.it.driver = Some(driver.clone());
            ctx.it.backend = backend;
            let base = driver_volume(m, &ctx.it.volume).await?;
            let in_use =
                m.db.volume_previous_status(&ctx.it.volume.id)
                    .await?
                    .as_deref()
                    == Some(VolumeStatus::InUse.as_str());
            let snapshot = match &ctx.it.backup.snapshot_id {
                Some(id) => Some(
                    m.db.get_snapshot(id)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("snapshot {id} is gone")))?,
                ),
                None => None,
            };
            if snapshot.is_none() && !in_use {
                ctx.it.connected = Some(base);
                return Ok(());
            }
            // Named on the backup before it is made, so a crash leaves it findable.
            let temp_id = uuid::Uuid::new_v4().to_string();
            m.db.set_backup_temp(&ctx.it.backup.id, Some(&temp_id), None)
                .await?;
            let mut temp = temp_volume(&base, &temp_id);
            ctx.it.temp = Some(temp.clone());
            let model = match &snapshot {
                Some(s) => {
                    driver
                        .create_volume_from_snapshot(&temp, &driver_snapshot(m, s).await?)
                        .await?
                }
                None => driver.create_cloned_volume(&temp, &base).await?,
            };
            temp.provider_location = model.provider_location.value().map(str::to_string);
            temp.provider_auth = model.provider_auth.value().map(str::to_string);
            ctx.it.temp = Some(temp.clone());
            ctx.it.connected = Some(temp);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut BackupCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let (Some(temp), Some(driver)) = (ctx.it.temp.take(), &ctx.it.driver) {
                remove_temp(ctx.op.m, driver, &ctx.it.backup.id, &temp).await;
            }
        })
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for ConnectSource {
    fn name(&self) -> &'static str {
        "connect-backup-source"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (Some(driver), Some(vol)) = (&ctx.it.driver, &ctx.it.connected) else {
                return Err(OpError::Gone("no volume to read".into()));
            };
            ctx.it.device = Some(connect_local(ctx.op.m, driver, &ctx.it.backend, vol).await?);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut BackupCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(release_device(ctx))
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for StoreData {
    fn name(&self) -> &'static str {
        "store-backup-data"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let device = ctx
                .it
                .device
                .clone()
                .ok_or_else(|| OpError::Gone("no device".into()))?;
            let store = ctx.it.store.clone();
            let parent = match &ctx.it.backup.parent_id {
                Some(parent_id) => {
                    let (store, parent_id) = (store.clone(), parent_id.clone());
                    let read = tokio::task::spawn_blocking(move || {
                        engine::read_manifest(&*store, &parent_id)
                    })
                    .await
                    .map_err(joined)?;
                    Some(read.map_err(|e| engine_error("read the parent backup", e))?)
                }
                None => None,
            };
            let id = ctx.it.backup.id.clone();
            let size_bytes = ctx.it.backup.size as u64 * (1 << 30);
            let settings = m.engine_settings();
            let summary = with_progress(m, &id.clone(), move |progress| {
                let cancel = AtomicBool::new(false);
                engine::backup(
                    &*store,
                    &id,
                    &device,
                    size_bytes,
                    parent.as_ref(),
                    &settings,
                    progress,
                    &cancel,
                )
            })
            .await?
            .map_err(|e| engine_error("store the backup", e))?;
            ctx.it.objects = summary.objects;
            ctx.it.stored_bytes = summary.stored_bytes;
            tracing::info!(backup_id = %ctx.it.backup.id, objects = summary.objects, stored_bytes = summary.stored_bytes, skipped_zero_bytes = summary.skipped_zero_bytes, "backup data stored");
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut BackupCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move { remove_objects(&ctx.it.store, &ctx.it.backup.id).await })
    }
}

/// Removes whatever objects backup `id` has in `store` (a failed or interrupted create).
async fn remove_objects(store: &Arc<dyn ObjectStore>, id: &str) {
    let (store, owned) = (store.clone(), id.to_string());
    match tokio::task::spawn_blocking(move || engine::delete(&*store, &owned)).await {
        Ok(Ok(n)) => tracing::info!(
            backup_id = id,
            objects = n,
            "removed the objects of an unfinished backup"
        ),
        Ok(Err(e)) => tracing::warn!(
            backup_id = id,
            "removing the objects of an unfinished backup: {e}"
        ),
        Err(e) => tracing::warn!(
            backup_id = id,
            "removing the objects of an unfinished backup: {e}"
        ),
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for ReleaseSource {
    fn name(&self) -> &'static str {
        "release-backup-source"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let Some(driver) = ctx.it.driver.clone() else {
                return Ok(());
            };
            if let (Some(vol), Some(_)) = (&ctx.it.connected, ctx.it.device.take()) {
                disconnect_local(m, &driver, vol).await;
            }
            // The data is stored: a temporary volume that cannot be removed is logged
            // (Cinder's "Cleanup of temporary volume/snapshot failed."), not a failure.
            if let Some(temp) = ctx.it.temp.take() {
                remove_temp(m, &driver, &ctx.it.backup.id, &temp).await;
            }
            Ok(())
        })
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for MarkBackupAvailable {
    fn name(&self) -> &'static str {
        "mark-backup-available"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let id = &ctx.it.backup.id;
            if !ctx
                .op
                .m
                .db
                .finish_create_backup(id, ctx.it.objects as i64, ctx.it.stored_bytes as i64)
                .await?
            {
                return Err(OpError::Gone(format!(
                    "backup {id} left `creating` while it was being made"
                )));
            }
            tracing::info!(backup_id = %id, "backup available");
            Ok(())
        })
    }
}

fn failure(b: &BackupRow, action: Action, detail: Detail, mark: Mark) -> MarkFailed {
    MarkFailed {
        resource: Resource::VolumeBackup,
        resource_id: b.id.clone(),
        project_id: b.project_id.clone(),
        action,
        detail,
        marks: vec![mark],
    }
}

async fn backup_in(
    m: &VolumeManager,
    id: &str,
    status: BackupStatus,
) -> Result<Option<BackupRow>, OpError> {
    Ok(m.db.get_backup(id).await?.filter(|b| b.status == status))
}

fn container_of(m: &VolumeManager, b: &BackupRow) -> String {
    b.container
        .clone()
        .or_else(|| m.default_backup_container())
        .unwrap_or_else(|| "volumebackups".into())
}

pub(in crate::volume) async fn create_backup(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(backup) = backup_in(m, id, BackupStatus::Creating).await? else {
        return Ok(());
    };
    let failed = failure(
        &backup,
        Action::BACKUP_CREATE,
        Detail::BACKUP_CREATE_DRIVER_ERROR,
        Mark::BackupCreate { id: id.to_string() },
    );
    let op = Op { m, request_id };
    let volume = m.db.get_volume(&backup.volume_id).await?;
    let store = match m.backup_store(&container_of(m, &backup)) {
        Ok(s) => s,
        Err(e) => {
            failed
                .fail(
                    &op,
                    &OpError::Backup {
                        public: e.hint().unwrap_or_default(),
                        detail: e.to_string(),
                    },
                )
                .await;
            return Err(e);
        }
    };
    if recovering {
        // The host stopped mid-backup: what it made goes, the volume is given back.
        if let (Some(temp_id), Some(v)) = (&backup.temp_volume_id, &volume)
            && let Ok((driver, _)) = backend_of(m, v)
        {
            let base = driver_volume(m, v).await?;
            let temp = temp_volume(&base, temp_id);
            disconnect_local(m, &driver, &temp).await;
            remove_temp(m, &driver, id, &temp).await;
        }
        if let Some(v) = &volume
            && backup.temp_volume_id.is_none()
            && let Ok((driver, _)) = backend_of(m, v)
        {
            let base = driver_volume(m, v).await?;
            disconnect_local(m, &driver, &base).await;
        }
        remove_objects(&store, id).await;
        let text =
            "the service stopped while the backup was being made; what it had stored was removed";
        failed
            .fail_as(
                &op,
                Detail::BACKUP_CREATE_DRIVER_ERROR,
                Some("The host stopped while the backup was being made; it was cleaned up. Create it again."),
                text,
            )
            .await;
        return Err(OpError::Gone(format!("create backup: {text}")));
    }
    let Some(volume) = volume else {
        let e = OpError::Gone(format!("volume {} is gone", backup.volume_id));
        failed.fail(&op, &e).await;
        return Err(e);
    };
    if let Err(e) =
        m.db.set_backup_service(id, &m.host_name, &m.backup_service().unwrap_or_default())
            .await
    {
        tracing::warn!(backup_id = id, "cannot record the backup's host: {e}");
    }
    let mut ctx = Ctx {
        op,
        it: Work {
            backup,
            store,
            volume,
            driver: None,
            backend: String::new(),
            temp: None,
            connected: None,
            device: None,
            objects: 0,
            stored_bytes: 0,
        },
    };
    flow::run(
        "create-backup",
        &[
            &failed,
            &PrepareSource,
            &ConnectSource,
            &StoreData,
            &ReleaseSource,
            &MarkBackupAvailable,
        ],
        &mut ctx,
    )
    .await
}

struct ConnectTarget;
struct WriteData;
struct MarkRestored;

impl<'m> Task<BackupCtx<'m>, OpError> for ConnectTarget {
    fn name(&self) -> &'static str {
        "connect-restore-target"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let (driver, backend) = backend_of(m, &ctx.it.volume)?;
            let vol = driver_volume(m, &ctx.it.volume).await?;
            ctx.it.driver = Some(driver.clone());
            ctx.it.backend = backend;
            ctx.it.device = Some(connect_local(m, &driver, &ctx.it.backend, &vol).await?);
            ctx.it.connected = Some(vol);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut BackupCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(release_device(ctx))
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for WriteData {
    fn name(&self) -> &'static str {
        "write-backup-data"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let device = ctx
                .it
                .device
                .clone()
                .ok_or_else(|| OpError::Gone("no device".into()))?;
            let store = ctx.it.store.clone();
            let id = ctx.it.backup.id.clone();
            let settings = m.engine_settings();
            let summary = with_progress(m, &id.clone(), move |progress| {
                let cancel = AtomicBool::new(false);
                engine::restore(&*store, &id, &device, &settings, progress, &cancel)
            })
            .await?
            .map_err(|e| engine_error("restore the backup", e))?;
            tracing::info!(backup_id = %ctx.it.backup.id, volume_id = %ctx.it.volume.id, bytes = summary.bytes, "backup restored");
            if let (Some(driver), Some(vol), Some(_)) =
                (&ctx.it.driver, &ctx.it.connected, ctx.it.device.take())
            {
                disconnect_local(m, driver, vol).await;
            }
            Ok(())
        })
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for MarkRestored {
    fn name(&self) -> &'static str {
        "mark-restored"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            ctx.op
                .m
                .db
                .finish_restore(
                    &ctx.it.backup.id,
                    &ctx.it.volume.id,
                    VolumeStatus::Available,
                )
                .await?;
            Ok(())
        })
    }
}

pub(in crate::volume) async fn restore_backup(
    m: &VolumeManager,
    id: &str,
    volume_id: &str,
    new_volume: bool,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(backup) = backup_in(m, id, BackupStatus::Restoring).await? else {
        return Ok(());
    };
    let failed = failure(
        &backup,
        Action::BACKUP_RESTORE,
        Detail::BACKUP_RESTORE_ERROR,
        Mark::BackupRestore {
            id: id.to_string(),
            volume_id: volume_id.to_string(),
        },
    );
    let op = Op {
        m,
        request_id: request_id.clone(),
    };
    if recovering {
        // The volume may hold part of the backup: never left looking whole.
        if new_volume
            && m.db
                .get_volume(volume_id)
                .await?
                .is_some_and(|v| v.status == VolumeStatus::Creating)
        {
            let _ = super::create_volume(m, volume_id, request_id, true).await;
        }
        let text =
            "the service stopped while the backup was being restored; the volume holds part of it";
        failed
            .fail_as(
                &op,
                Detail::BACKUP_RESTORE_ERROR,
                Some("The host stopped while the backup was being restored; the volume is incomplete. Restore it again."),
                text,
            )
            .await;
        m.db.release_restoring_backup(id).await?;
        return Err(OpError::Gone(format!("restore backup: {text}")));
    }
    if new_volume
        && m.db
            .get_volume(volume_id)
            .await?
            .is_some_and(|v| v.status == VolumeStatus::Creating)
    {
        // Cinder creates the volume on a backend the scheduler picks, then restores it.
        if let Err(e) = super::create_volume(m, volume_id, request_id, false).await {
            m.db.release_restoring_backup(id).await?;
            return Err(e);
        }
        if !m
            .db
            .transition_volume(
                volume_id,
                &[VolumeStatus::Available],
                VolumeStatus::RestoringBackup,
                None,
            )
            .await?
        {
            m.db.release_restoring_backup(id).await?;
            return Err(OpError::Gone(format!(
                "volume {volume_id} left `available` before the restore began"
            )));
        }
    }
    let volume =
        m.db.get_volume(volume_id)
            .await?
            .filter(|v| v.status == VolumeStatus::RestoringBackup);
    let store = m.backup_store(&container_of(m, &backup));
    let (volume, store) = match (volume, store) {
        (Some(v), Ok(s)) => (v, s),
        (None, _) => {
            let e = OpError::Gone(format!("volume {volume_id} left `restoring-backup`"));
            failed.fail(&op, &e).await;
            return Err(e);
        }
        (_, Err(e)) => {
            failed.fail(&op, &e).await;
            return Err(e);
        }
    };
    let mut ctx = Ctx {
        op,
        it: Work {
            backup,
            store,
            volume,
            driver: None,
            backend: String::new(),
            temp: None,
            connected: None,
            device: None,
            objects: 0,
            stored_bytes: 0,
        },
    };
    flow::run(
        "restore-backup",
        &[&failed, &ConnectTarget, &WriteData, &MarkRestored],
        &mut ctx,
    )
    .await
}

struct DeleteObjects;
struct MarkBackupDeleted;

impl<'m> Task<BackupCtx<'m>, OpError> for DeleteObjects {
    fn name(&self) -> &'static str {
        "delete-backup-objects"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let (store, id) = (ctx.it.store.clone(), ctx.it.backup.id.clone());
            let n = tokio::task::spawn_blocking(move || engine::delete(&*store, &id))
                .await
                .map_err(joined)?
                .map_err(|e| engine_error("delete the backup's objects", e))?;
            tracing::info!(backup_id = %ctx.it.backup.id, objects = n, "backup objects deleted");
            Ok(())
        })
    }
}

impl<'m> Task<BackupCtx<'m>, OpError> for MarkBackupDeleted {
    fn name(&self) -> &'static str {
        "mark-backup-deleted"
    }
    fn execute<'a>(&'a self, ctx: &'a mut BackupCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            ctx.op.m.db.finish_delete_backup(&ctx.it.backup.id).await?;
            tracing::info!(backup_id = %ctx.it.backup.id, "backup deleted");
            Ok(())
        })
    }
}

/// A delete is finished whether it was interrupted or not: removing objects again is
/// harmless.
pub(in crate::volume) async fn delete_backup(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(backup) = backup_in(m, id, BackupStatus::Deleting).await? else {
        return Ok(());
    };
    let failed = failure(
        &backup,
        Action::BACKUP_DELETE,
        Detail::BACKUP_DELETE_DRIVER_ERROR,
        Mark::BackupDelete { id: id.to_string() },
    );
    let op = Op { m, request_id };
    let store = match m.backup_store(&container_of(m, &backup)) {
        Ok(s) => s,
        Err(e) => {
            failed.fail(&op, &e).await;
            return Err(e);
        }
    };
    let volume =
        m.db.get_volume(&backup.volume_id)
            .await?
            // The volume may be gone: the delete needs only the backup.
            .unwrap_or_else(|| placeholder_volume(&backup));
    let mut ctx = Ctx {
        op,
        it: Work {
            backup,
            store,
            volume,
            driver: None,
            backend: String::new(),
            temp: None,
            connected: None,
            device: None,
            objects: 0,
            stored_bytes: 0,
        },
    };
    flow::run(
        "delete-backup",
        &[&failed, &DeleteObjects, &MarkBackupDeleted],
        &mut ctx,
    )
    .await
}

/// A row standing for a backup's volume when it is gone: a backup's delete reads
/// nothing of its volume, but the flow's context holds one.
fn placeholder_volume(b: &BackupRow) -> VolumeRow {
    VolumeRow {
        id: b.volume_id.clone(),
        project_id: b.project_id.clone(),
        user_id: b.user_id.clone(),
        name: None,
        description: None,
        size: b.size,
        status: VolumeStatus::Deleted,
        attach_status: crate::volume::AttachStatus::Detached,
        availability_zone: b.availability_zone.clone().unwrap_or_default(),
        volume_type_id: None,
        volume_type_name: None,
        host: None,
        provider_location: None,
        provider_auth: None,
        snapshot_id: None,
        source_volid: None,
        bootable: false,
        multiattach: false,
        created_at: b.created_at.clone(),
        updated_at: None,
        launched_at: None,
        revision: 0,
        migration_status: None,
        name_id: None,
        metadata: Default::default(),
        admin_metadata: Default::default(),
        image_metadata: Default::default(),
        attachments: Vec::new(),
    }
}

/// Checks the backup store's default container for objects no live backup owns, after
/// the interrupted jobs were recovered: those of a backup this database deleted are
/// removed (logged); those of an id it never recorded are reported, not removed, since a
/// store may be shared with other hosts and an exported record may be waiting for its
/// import. Returns how many backups' objects were removed.
pub(in crate::volume) async fn sweep_orphans(m: &VolumeManager) -> Result<usize, OpError> {
    let Some(container) = m.default_backup_container() else {
        return Ok(0);
    };
    let store = m.backup_store(&container)?;
    let known: std::collections::BTreeSet<String> =
        m.db.live_backup_ids().await?.into_iter().collect();
    let found = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            engine::orphans(&*store, &|id: &str| known.contains(id))
        })
        .await
        .map_err(joined)?
        .map_err(|e| engine_error("list the backup store", e))?
    };
    let mut removed = 0;
    for id in &found {
        if m.db.backup_was_deleted(id).await? {
            tracing::warn!(backup_id = %id, container = %container, "removing the objects of a deleted backup (left by a stopped host)");
            remove_objects(&store, id).await;
            removed += 1;
        } else {
            tracing::warn!(backup_id = %id, container = %container,
                "the backup store holds objects of backup {id}, which this database never recorded: \
                 another host's, or an exported backup not yet imported; import its record \
                 (POST /v3/backups/import_record) or remove the objects from the store");
        }
    }
    Ok(removed)
}
