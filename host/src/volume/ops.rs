//! Each volume operation as a flow of tasks.

use super::flow::{self, BoxFuture, Task};
use super::{OpError, VolumeManager};
use crate::db::{SnapshotRow, VolumeRow};
use crate::runtime::latest::ashlar::driver::types as wit;
use crate::scheduler::RequestSpec;

/// Cinder-style event ids for user messages: VOLUME_<resource>_<action>_<detail>.
mod event {
    pub const SCHEDULE_NO_BACKEND: &str = "VOLUME_VOLUME_001_003";
    pub const CREATE_DRIVER_FAILED: &str = "VOLUME_VOLUME_002_001";
    pub const CREATE_INTERRUPTED: &str = "VOLUME_VOLUME_002_008";
    pub const DELETE_FAILED: &str = "VOLUME_VOLUME_003_001";
    pub const EXTEND_FAILED: &str = "VOLUME_VOLUME_006_001";
    pub const SNAPSHOT_CREATE_FAILED: &str = "VOLUME_SNAPSHOT_004_001";
    pub const SNAPSHOT_DELETE_FAILED: &str = "VOLUME_SNAPSHOT_005_001";
}

pub(super) async fn driver_volume(
    m: &VolumeManager,
    v: &VolumeRow,
) -> Result<wit::Volume, OpError> {
    let (type_name, extra_specs) = match &v.volume_type_id {
        Some(id) => match m.db.get_volume_type(id).await? {
            Some(t) => (Some(t.name), t.extra_specs),
            None => (None, Vec::new()),
        },
        None => (None, Vec::new()),
    };
    Ok(wit::Volume {
        id: v.id.clone(),
        display_name: v.name.clone(),
        size_gib: v.size as u64,
        provider_location: v.provider_location.clone(),
        provider_auth: v.provider_auth.clone(),
        volume_type_name: type_name,
        extra_specs,
        pool: v.pool().map(str::to_string),
    })
}

/// Cinder's columns hold 255 characters; a driver answering more is refused, not stored.
pub(super) fn check_model(model: &wit::ModelUpdate) -> Result<(), OpError> {
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

fn driver_snapshot(s: &SnapshotRow) -> wit::Snapshot {
    wit::Snapshot {
        id: s.id.clone(),
        volume_id: s.volume_id.clone(),
        volume_size_gib: s.volume_size as u64,
        provider_location: s.provider_location.clone(),
        display_name: s.name.clone(),
    }
}

// ---- create volume ----------------------------------------------------------------------

struct CreateCtx<'m> {
    m: &'m VolumeManager,
    volume: VolumeRow,
    model: Option<wit::ModelUpdate>,
}

/// Picks `host@backend#pool`; a volume made from a snapshot or a clone stays on its
/// source's backend.
struct Schedule;
/// Has the driver make the volume (empty, from a snapshot, or a clone).
struct CreateOnBackend;
/// `creating` → `available`.
struct MarkAvailable;

impl<'m> Task<CreateCtx<'m>, OpError> for Schedule {
    fn name(&self) -> &'static str {
        "schedule"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.m;
            let v = &ctx.volume;
            let source_host = if let Some(snap_id) = &v.snapshot_id {
                let snap =
                    m.db.get_snapshot(snap_id)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("snapshot {snap_id} is gone")))?;
                m.db.get_volume(&snap.volume_id)
                    .await?
                    .and_then(|sv| sv.host)
            } else if let Some(src) = &v.source_volid {
                m.db.get_volume(src).await?.and_then(|sv| sv.host)
            } else {
                None
            };
            let only_backend = source_host
                .as_deref()
                .and_then(|h| m.backend_of(Some(h)))
                .map(|b| b.name.clone());
            let extra_specs = match &v.volume_type_id {
                Some(id) => {
                    m.db.get_volume_type(id)
                        .await?
                        .map(|t| t.extra_specs)
                        .unwrap_or_default()
                }
                None => Vec::new(),
            };
            let spec = RequestSpec {
                size_gib: v.size as u64,
                availability_zone: Some(v.availability_zone.clone()),
                volume_type: v.volume_type_id.clone(),
                extra_specs: extra_specs.into_iter().collect(),
            };
            let placement = m
                .schedule(&spec, only_backend.as_deref())
                .map_err(OpError::NoValidBackend)?;
            let host = format!("{}#{}", placement.backend, placement.pool);
            if !m.db.set_volume_host(&v.id, &host).await? {
                return Err(OpError::Gone(format!(
                    "volume {} is no longer creating",
                    v.id
                )));
            }
            tracing::info!(volume_id = %v.id, host = %host, weight = placement.weight, "scheduled");
            ctx.volume.host = Some(host);
            Ok(())
        })
    }
}

impl<'m> Task<CreateCtx<'m>, OpError> for CreateOnBackend {
    fn name(&self) -> &'static str {
        "create-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.m;
            let backend = m
                .backend_of(ctx.volume.host.as_deref())
                .ok_or_else(|| OpError::Gone("backend is not configured here".into()))?;
            let volume = driver_volume(m, &ctx.volume).await?;
            let model = if let Some(snap_id) = &ctx.volume.snapshot_id {
                let snap =
                    m.db.get_snapshot(snap_id)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("snapshot {snap_id} is gone")))?;
                let snapshot = driver_snapshot(&snap);
                backend
                    .driver()
                    .call("create-volume-from-snapshot", move |s, d| {
                        d.create_volume_from_snapshot(s, &volume, &snapshot)
                    })
                    .await?
            } else if let Some(src_id) = &ctx.volume.source_volid {
                let src =
                    m.db.get_volume(src_id)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("volume {src_id} is gone")))?;
                let source = driver_volume(m, &src).await?;
                backend
                    .driver()
                    .call("create-cloned-volume", move |s, d| {
                        d.create_cloned_volume(s, &volume, &source)
                    })
                    .await?
            } else {
                backend
                    .driver()
                    .call("create-volume", move |s, d| d.create_volume(s, &volume))
                    .await?
            };
            ctx.model = Some(model);
            check_model(ctx.model.as_ref().expect("just set"))
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let m = ctx.m;
            let Some(backend) = m.backend_of(ctx.volume.host.as_deref()) else {
                return;
            };
            let Ok(volume) = driver_volume(m, &ctx.volume).await else {
                return;
            };
            let res = backend
                .driver()
                .call("delete-volume", move |s, d| d.delete_volume(s, &volume))
                .await;
            if let Err(e) = res {
                tracing::warn!(volume_id = %ctx.volume.id, "revert of create left something behind: {e}");
            }
        })
    }
}

impl<'m> Task<CreateCtx<'m>, OpError> for MarkAvailable {
    fn name(&self) -> &'static str {
        "mark-available"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let model = ctx.model.take().unwrap_or(wit::ModelUpdate {
                provider_location: None,
                provider_auth: None,
                metadata: Vec::new(),
            });
            let done = ctx
                .m
                .db
                .finish_create(
                    &ctx.volume.id,
                    model.provider_location.as_deref(),
                    model.provider_auth.as_deref(),
                )
                .await?;
            if !done {
                return Err(OpError::Gone(format!(
                    "volume {} left `creating` while the driver worked",
                    ctx.volume.id
                )));
            }
            tracing::info!(volume_id = %ctx.volume.id, "volume available");
            Ok(())
        })
    }
}

pub async fn create_volume(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(volume) = m.db.get_volume(id).await? else {
        return Ok(());
    };
    if volume.status != "creating" {
        return Ok(());
    }
    let project = volume.project_id.clone();
    if recovering {
        // The host died mid-create: undo whatever the driver may have made, then error.
        let mut ctx = CreateCtx {
            m,
            volume,
            model: None,
        };
        CreateOnBackend.revert(&mut ctx).await;
        m.db.transition_volume(id, &["creating"], "error").await?;
        let text = "create volume: the service stopped while the volume was being created; it was cleaned up. Create it again.".to_string();
        m.user_message(
            &project,
            request_id,
            "VOLUME",
            id,
            event::CREATE_INTERRUPTED,
            text.clone(),
        )
        .await;
        return Err(OpError::Gone(text));
    }
    let mut ctx = CreateCtx {
        m,
        volume,
        model: None,
    };
    let result = flow::run(
        "create-volume",
        &[&Schedule, &CreateOnBackend, &MarkAvailable],
        &mut ctx,
    )
    .await;
    if let Err(e) = &result {
        if let Some(host) = &ctx.volume.host {
            m.adjust_pool(host, -ctx.volume.size);
        }
        m.db.transition_volume(id, &["creating"], "error").await?;
        let (event, text) = match e {
            OpError::NoValidBackend(msg) => (
                event::SCHEDULE_NO_BACKEND,
                format!("schedule allocate volume: {msg}"),
            ),
            other => (
                event::CREATE_DRIVER_FAILED,
                format!("create volume: {other}"),
            ),
        };
        tracing::warn!(volume_id = id, "create failed: {text}");
        m.user_message(&project, request_id, "VOLUME", id, event, text)
            .await;
    }
    result
}

// ---- delete / extend --------------------------------------------------------------------

pub async fn delete_volume(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = m.db.get_volume(id).await? else {
        return Ok(());
    };
    if volume.status != "deleting" {
        return Ok(());
    }
    if let Some(backend) = m.backend_of(volume.host.as_deref()) {
        let v = driver_volume(m, &volume).await?;
        let res = backend
            .driver()
            .call("delete-volume", move |s, d| d.delete_volume(s, &v))
            .await;
        if let Err(e) = res {
            m.db.transition_volume(id, &["deleting"], "error_deleting")
                .await?;
            m.user_message(
                &volume.project_id,
                request_id,
                "VOLUME",
                id,
                event::DELETE_FAILED,
                format!("delete volume: {e}"),
            )
            .await;
            return Err(e.into());
        }
    }
    m.db.finish_delete_volume(id).await?;
    if let Some(host) = &volume.host {
        m.adjust_pool(host, -volume.size);
    }
    tracing::info!(volume_id = id, "volume deleted");
    Ok(())
}

pub async fn extend_volume(
    m: &VolumeManager,
    id: &str,
    new_size: i64,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(volume) = m.db.get_volume(id).await? else {
        return Ok(());
    };
    if volume.status != "extending" {
        return Ok(());
    }
    let backend = m.backend_of(volume.host.as_deref());
    let res = match backend {
        None => Err(OpError::Gone(format!(
            "volume {id} has no backend on this host"
        ))),
        Some(backend) => {
            let v = driver_volume(m, &volume).await?;
            backend
                .driver()
                .call("extend-volume", move |s, d| {
                    d.extend_volume(s, &v, new_size as u64)
                })
                .await
                .map_err(OpError::from)
        }
    };
    match res {
        Ok(()) => {
            m.db.finish_extend(id, new_size).await?;
            if let Some(host) = &volume.host {
                m.adjust_pool(host, new_size - volume.size);
            }
            tracing::info!(volume_id = id, new_size, "volume extended");
            Ok(())
        }
        Err(e) => {
            m.db.transition_volume(id, &["extending"], "error_extending")
                .await?;
            m.user_message(
                &volume.project_id,
                request_id,
                "VOLUME",
                id,
                event::EXTEND_FAILED,
                format!("extend volume: {e}"),
            )
            .await;
            Err(e)
        }
    }
}

// ---- snapshots --------------------------------------------------------------------------

pub async fn create_snapshot(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(snap) = m.db.get_snapshot(id).await? else {
        return Ok(());
    };
    if snap.status != "creating" {
        return Ok(());
    }
    let Some(volume) = m.db.get_volume(&snap.volume_id).await? else {
        m.db.transition_snapshot(id, &["creating"], "error").await?;
        return Err(OpError::Gone(format!("volume {} is gone", snap.volume_id)));
    };
    let Some(backend) = m.backend_of(volume.host.as_deref()) else {
        m.db.transition_snapshot(id, &["creating"], "error").await?;
        return Err(OpError::Gone(format!(
            "volume {} has no backend on this host",
            volume.id
        )));
    };
    let v = driver_volume(m, &volume).await?;
    let s = driver_snapshot(&snap);
    if recovering {
        let (v2, s2) = (v.clone(), s.clone());
        let _ = backend
            .driver()
            .call("delete-snapshot", move |st, d| {
                d.delete_snapshot(st, &s2, &v2)
            })
            .await;
        m.db.transition_snapshot(id, &["creating"], "error").await?;
        let text = "create snapshot: the service stopped while the snapshot was being made; it was cleaned up.".to_string();
        m.user_message(
            &snap.project_id,
            request_id,
            "SNAPSHOT",
            id,
            event::SNAPSHOT_CREATE_FAILED,
            text.clone(),
        )
        .await;
        return Err(OpError::Gone(text));
    }
    let res = backend
        .driver()
        .call("create-snapshot", move |st, d| {
            d.create_snapshot(st, &s, &v)
        })
        .await;
    let res = res
        .map_err(OpError::from)
        .and_then(|model| check_model(&model).map(|()| model));
    match res {
        Ok(model) => {
            m.db.finish_create_snapshot(id, model.provider_location.as_deref())
                .await?;
            tracing::info!(snapshot_id = id, "snapshot available");
            Ok(())
        }
        Err(e) => {
            m.db.transition_snapshot(id, &["creating"], "error").await?;
            m.user_message(
                &snap.project_id,
                request_id,
                "SNAPSHOT",
                id,
                event::SNAPSHOT_CREATE_FAILED,
                format!("create snapshot: {e}"),
            )
            .await;
            Err(e)
        }
    }
}

pub async fn delete_snapshot(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
) -> Result<(), OpError> {
    let Some(snap) = m.db.get_snapshot(id).await? else {
        return Ok(());
    };
    if snap.status != "deleting" {
        return Ok(());
    }
    if let Some(volume) = m.db.get_volume(&snap.volume_id).await?
        && let Some(backend) = m.backend_of(volume.host.as_deref())
    {
        let v = driver_volume(m, &volume).await?;
        let s = driver_snapshot(&snap);
        let res = backend
            .driver()
            .call("delete-snapshot", move |st, d| {
                d.delete_snapshot(st, &s, &v)
            })
            .await;
        if let Err(e) = res {
            m.db.transition_snapshot(id, &["deleting"], "error_deleting")
                .await?;
            m.user_message(
                &snap.project_id,
                request_id,
                "SNAPSHOT",
                id,
                event::SNAPSHOT_DELETE_FAILED,
                format!("delete snapshot: {e}"),
            )
            .await;
            return Err(e.into());
        }
    }
    m.db.finish_delete_snapshot(id).await?;
    tracing::info!(snapshot_id = id, "snapshot deleted");
    Ok(())
}
