//! Create a volume: schedule it, have the driver make it (empty, from a snapshot, or a
//! clone), mark it available. When the driver fails and another backend could take the
//! volume, it is rescheduled there (each backend tried is passed by, Cinder's RetryFilter),
//! up to `scheduler_max_attempts` in all, and the user is told which backend failed (its
//! `host@backend`, never its pool, whose name may be a directory) while the log and the
//! message's internal detail say why; a volume made from a snapshot or another volume must
//! stay beside its source and is not rescheduled. The shared failure task runs once the
//! create gives up, with every attempt in its message.
//!
//! A volume from an image adds two tasks (see [`super::image`]): `FetchImage` after the
//! placement (the backend's image-volume cache entry, or the image downloaded and
//! checked while the volume is `downloading`) and `CopyImage` after the driver's create
//! (the image written onto the volume, the cache entry made, the volume extended to its
//! size); an image that cannot be used fails with Cinder's `copy image to volume` action
//! and is not rescheduled.

use super::super::flow::{self, BoxFuture, Task};
use super::image;
use super::{
    MarkFailed, Op, OpContext, check_model, driver_snapshot, driver_volume, record_model_extras,
    volume_in,
};
use crate::db::{CacheEntry, JobRow, VolumeRow};
use crate::driver::ModelUpdate;
use crate::image::Image;
use crate::runtime::CallError;
use crate::scheduler::RequestSpec;
use crate::volume::job::{Job, PriorAttempt};
use crate::volume::message_field::{Action, Detail, Event, Resource};
use crate::volume::status::VolumeStatus;
use crate::volume::{OpError, VolumeManager};

struct CreateCtx<'m> {
    op: Op<'m>,
    volume: VolumeRow,
    /// Backends (`host@backend`) earlier attempts failed on.
    tried: Vec<String>,
    /// Where this attempt was placed (`host@backend#pool`), kept after a revert clears
    /// the volume's host so the failure can say where it happened.
    placed: Option<String>,
    /// A placement another host made and handed on here: the first attempt keeps it.
    handed_on: Option<String>,
    /// Place only on this host's backends (a create no job can hand on: a restore's new
    /// volume).
    local_only: bool,
    model: Option<ModelUpdate>,
    /// The Glance image the volume is made from, by id, and as Glance showed it when the
    /// job read it.
    image_id: Option<String>,
    image: Option<Image>,
    /// The image's data, downloaded and checked (not when the volume is a cache clone).
    fetched: Option<image::Fetched>,
    /// The cache entry (and its volume) the volume is cloned from.
    cache_hit: Option<(CacheEntry, VolumeRow)>,
    /// Whether this volume's data also makes the backend's cache entry of the image.
    cache_new: bool,
    /// GiB the driver makes the volume at before the image is written, when below the
    /// volume's size: the image's, so that the cache entry cloned from it is no larger.
    initial_size: Option<i64>,
}

impl<'m> OpContext<'m> for CreateCtx<'m> {
    fn op(&self) -> &Op<'m> {
        &self.op
    }
}

/// Picks `host@backend#pool`; a volume made from a snapshot or a clone stays on its
/// source's backend.
struct Schedule;
/// Has the driver make the volume (empty, from a snapshot, or a clone).
struct CreateOnBackend;
/// `creating` → `available`.
struct MarkAvailable;
/// A volume from an image: reads the image from Glance, and finds the backend's cached
/// image-volume of it or downloads and checks its data (`downloading`).
struct FetchImage;
/// Writes the downloaded image onto the volume, makes the cache entry, extends the
/// volume to its size.
struct CopyImage;

/// What scheduling the volume asks for, and the backend it must stay on when it is made
/// from a snapshot or another volume.
async fn request_spec(
    m: &VolumeManager,
    v: &VolumeRow,
    tried: &[String],
) -> Result<(RequestSpec, Option<String>), OpError> {
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
    // The source's backend as the scheduler names it (`HOST@BACKEND`, `CLUSTER@BACKEND`).
    let only_backend = source_host
        .as_deref()
        .map(|h| crate::volume::backend_key_of(h).to_string());
    let extra_specs = match &v.volume_type_id {
        Some(id) => m.db.extra_specs(id).await?,
        None => Vec::new(),
    };
    let spec = RequestSpec {
        size_gib: v.size as u64,
        availability_zone: Some(v.availability_zone.clone()),
        volume_type: v.volume_type_id.clone(),
        extra_specs: extra_specs.into_iter().collect(),
        tried: tried.to_vec(),
    };
    Ok((spec, only_backend))
}

impl<'m> Task<CreateCtx<'m>, OpError> for Schedule {
    fn name(&self) -> &'static str {
        "schedule"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            if let Some(host) = ctx.handed_on.take() {
                tracing::info!(volume_id = %ctx.volume.id, host = %host, "placed by another host");
                ctx.placed = Some(host.clone());
                ctx.volume.host = Some(host);
                return Ok(());
            }
            let (spec, only_backend) = request_spec(m, &ctx.volume, &ctx.tried).await?;
            let v = &ctx.volume;
            let (id, size) = (v.id.clone(), v.size);
            ctx.volume.host = None;
            let placement = m
                .schedule(&spec, only_backend.as_deref(), ctx.local_only)
                .await?;
            let host = placement.name();
            ctx.placed = Some(host.clone());
            ctx.volume.host = Some(host.clone());
            if !m.db.set_volume_host(&id, Some(&host)).await? {
                return Err(OpError::Gone(format!("volume {id} is no longer creating")));
            }
            tracing::info!(volume_id = %id, host = %host, size, weight = placement.weight, "scheduled");
            if m.backend_of(Some(&host)).is_none() {
                return Err(OpError::Elsewhere(placement.backend));
            }
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut CreateCtx<'m>, e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // The placement took capacity from the pool's stats: give it back, unless the
            // create goes on on another host. The volume keeps its host, so a later delete
            // of a failed volume still asks that backend to clean up; a reschedule places
            // it anew.
            if matches!(e, OpError::Elsewhere(_)) {
                return;
            }
            if let Some(host) = &ctx.volume.host {
                ctx.op.m.adjust_pool(host, -ctx.volume.size).await;
            }
        })
    }
}

impl<'m> Task<CreateCtx<'m>, OpError> for CreateOnBackend {
    fn name(&self) -> &'static str {
        "create-on-backend"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let backend = m
                .backend_of(ctx.volume.host.as_deref())
                .ok_or_else(|| OpError::Gone("backend is not configured here".into()))?;
            let mut volume = driver_volume(m, &ctx.volume).await?;
            let driver = backend.driver();
            let model = if let Some((entry, cached)) = &ctx.cache_hit {
                let source = driver_volume(m, cached).await?;
                let model = driver.create_cloned_volume(&volume, &source).await?;
                tracing::info!(volume_id = %volume.id, image_id = %entry.image_id, cache_volume_id = %cached.id,
                    "image-volume cache hit: volume cloned from the cached image-volume");
                model
            } else if let Some(snap_id) = &ctx.volume.snapshot_id {
                let snap =
                    m.db.get_snapshot(snap_id)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("snapshot {snap_id} is gone")))?;
                driver
                    .create_volume_from_snapshot(&volume, &driver_snapshot(m, &snap).await?)
                    .await?
            } else if let Some(src_id) = &ctx.volume.source_volid {
                let src =
                    m.db.get_volume(src_id)
                        .await?
                        .ok_or_else(|| OpError::Gone(format!("volume {src_id} is gone")))?;
                let source = driver_volume(m, &src).await?;
                driver.create_cloned_volume(&volume, &source).await?
            } else {
                if let Some(initial) = ctx.initial_size {
                    volume.size_gib = initial as u64;
                }
                driver.create_volume(&volume).await?
            };
            check_model(&model)?;
            ctx.model = Some(model);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut CreateCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move { undo_create(ctx.op.m, &ctx.volume).await })
    }
}

/// Asks the volume's backend to delete whatever a create may have left.
async fn undo_create(m: &VolumeManager, v: &VolumeRow) {
    let Some(backend) = m.backend_of(v.host.as_deref()) else {
        return;
    };
    let Ok(volume) = driver_volume(m, v).await else {
        return;
    };
    if let Err(e) = backend.driver().delete_volume(&volume).await {
        tracing::warn!(volume_id = %v.id, "revert of create left something behind: {e}");
    }
}

impl<'m> Task<CreateCtx<'m>, OpError> for MarkAvailable {
    fn name(&self) -> &'static str {
        "mark-available"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let model = ctx.model.take().unwrap_or_default();
            let db = &ctx.op.m.db;
            let done = match &ctx.image {
                Some(image) => {
                    db.finish_create_from_image(
                        &ctx.volume.id,
                        model.provider_location.value(),
                        model.provider_auth.value(),
                        &image.volume_image_metadata(),
                    )
                    .await?
                }
                None => {
                    db.finish_create(
                        &ctx.volume.id,
                        model.provider_location.value(),
                        model.provider_auth.value(),
                    )
                    .await?
                }
            };
            if !done {
                return Err(OpError::Gone(format!(
                    "volume {} left `creating` while the driver worked",
                    ctx.volume.id
                )));
            }
            record_model_extras(ctx.op.m, &ctx.volume.id, &model).await?;
            tracing::info!(volume_id = %ctx.volume.id, "volume available");
            Ok(())
        })
    }
}

impl<'m> Task<CreateCtx<'m>, OpError> for FetchImage {
    fn name(&self) -> &'static str {
        "fetch-image"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let Some(image_id) = ctx.image_id.clone() else {
                return Ok(());
            };
            let m = ctx.op.m;
            let image = image::show_active(m, &image_id).await?;
            let backend = m
                .backend_of(ctx.volume.host.as_deref())
                .ok_or_else(|| OpError::Gone("backend is not configured here".into()))?;
            let size = ctx.volume.size;
            let caching = backend.config.image_volume_cache_enabled;
            if caching && let Some(hit) = image::cache_lookup(m, &backend, &image, size).await? {
                ctx.cache_hit = Some(hit);
                ctx.image = Some(image);
                return Ok(());
            }
            if !m.db.start_download(&ctx.volume.id).await? {
                return Err(OpError::Gone(format!(
                    "volume {} left `creating` before its image was downloaded",
                    ctx.volume.id
                )));
            }
            let fetched = image::fetch(m, &image, &ctx.volume.id, size as u64).await?;
            if caching {
                ctx.cache_new = true;
                let cache_size = image::cache_size(&fetched.check, image.min_disk);
                if cache_size < size {
                    ctx.initial_size = Some(cache_size);
                }
            }
            ctx.fetched = Some(fetched);
            ctx.image = Some(image);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut CreateCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // The temporary file goes with its guard; the volume back to `creating`, for
            // a reschedule or the failure task.
            ctx.fetched = None;
            ctx.cache_hit = None;
            ctx.cache_new = false;
            ctx.initial_size = None;
            let m = ctx.op.m;
            if let Err(e) =
                m.db.transition_volume(
                    &ctx.volume.id,
                    &[VolumeStatus::Downloading],
                    VolumeStatus::Creating,
                    None,
                )
                .await
            {
                tracing::warn!(volume_id = %ctx.volume.id, "cannot leave `downloading`: {e}");
            }
        })
    }
}

impl<'m> Task<CreateCtx<'m>, OpError> for CopyImage {
    fn name(&self) -> &'static str {
        "copy-image"
    }
    fn execute<'a>(&'a self, ctx: &'a mut CreateCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            if let Some((entry, _)) = &ctx.cache_hit {
                m.db.touch_cache_entry(&entry.id).await?;
                return Ok(());
            }
            let (Some(fetched), Some(image)) = (ctx.fetched.take(), ctx.image.clone()) else {
                return Ok(());
            };
            let backend = m
                .backend_of(ctx.volume.host.as_deref())
                .ok_or_else(|| OpError::Gone("backend is not configured here".into()))?;
            let mut vol = driver_volume(m, &ctx.volume).await?;
            if let Some(model) = &ctx.model {
                vol.provider_location = model.provider_location.value().map(str::to_string);
                vol.provider_auth = model.provider_auth.value().map(str::to_string);
            }
            if let Some(initial) = ctx.initial_size {
                vol.size_gib = initial as u64;
            }
            image::write_onto(m, &backend, &vol, &fetched).await?;
            drop(fetched);
            if ctx.cache_new {
                image::add_to_cache(m, &backend, &image, &ctx.volume, &vol).await;
            }
            if ctx.initial_size.is_some() {
                backend
                    .driver()
                    .extend_volume(&vol, ctx.volume.size as u64)
                    .await?;
            }
            Ok(())
        })
    }
}

/// Whether another backend might succeed where this failure happened: the driver's or the
/// sandbox's failures, not a volume that went away.
fn reschedulable(e: &OpError) -> bool {
    matches!(
        e,
        OpError::Driver(CallError::Driver(_) | CallError::Sandbox { .. })
    )
}

/// One failed attempt, here or on a host that handed the create on.
type Attempt = PriorAttempt;

/// A create job: placed on any host's backend; when the placement is another host's
/// backend, the job is handed on to it (pending, for that backend, with the attempts so
/// far) and this host is done with it.
pub(in crate::volume) async fn create_volume_job(
    m: &VolumeManager,
    job: &JobRow,
    prior: &[PriorAttempt],
    image_id: Option<&str>,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    create(
        m,
        &job.resource_id,
        Some(job),
        prior,
        image_id.map(str::to_string),
        request_id,
        recovering,
    )
    .await
}

/// Creates a volume on one of this host's backends (a restore's new volume).
pub(in crate::volume) async fn create_volume(
    m: &VolumeManager,
    id: &str,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    create(m, id, None, &[], None, request_id, recovering).await
}

async fn create(
    m: &VolumeManager,
    id: &str,
    job: Option<&JobRow>,
    prior: &[PriorAttempt],
    image_id: Option<String>,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    if recovering {
        // A volume left `downloading` is a create that was writing its image.
        m.db.transition_volume(
            id,
            &[VolumeStatus::Downloading],
            VolumeStatus::Creating,
            None,
        )
        .await?;
    }
    let Some(volume) = volume_in(m, id, VolumeStatus::Creating).await? else {
        return Ok(());
    };
    let failed = |action: Action, detail: Detail| {
        MarkFailed::volume(
            &volume,
            action,
            detail,
            VolumeStatus::Creating,
            VolumeStatus::Error,
        )
    };
    let op = Op { m, request_id };
    if recovering {
        // The host died mid-create: undo whatever the driver may have made, then error.
        undo_create(m, &volume).await;
        let text = "the service stopped while the volume was being created; it was cleaned up";
        // Cinder has no detail for an interrupted create.
        failed(Action::CREATE_VOLUME_FROM_BACKEND, Detail::UNKNOWN_ERROR)
            .fail_as(
                &op,
                Detail::UNKNOWN_ERROR,
                Some(
                    "The service stopped while the volume was being created; it was cleaned up. Create it again.",
                ),
                text,
            )
            .await;
        return Err(OpError::Gone(format!("create volume: {text}")));
    }
    let source_bound = volume.snapshot_id.is_some() || volume.source_volid.is_some();
    let max_attempts = if source_bound {
        1
    } else {
        m.scheduler.max_attempts.max(1) as usize
    };
    // A volume that already has a host on this host's backend was placed by the host
    // that handed the create on; its capacity is already counted.
    let handed_on = volume
        .host
        .clone()
        .filter(|h| job.is_some() && m.backend_of(Some(h)).is_some());
    let mut attempts: Vec<Attempt> = prior.to_vec();
    let mut ctx = CreateCtx {
        op,
        volume: VolumeRow {
            host: None,
            ..volume.clone()
        },
        tried: attempts.iter().map(|a| a.backend.clone()).collect(),
        placed: None,
        handed_on,
        local_only: job.is_none(),
        model: None,
        image_id: image_id.clone(),
        image: None,
        fetched: None,
        cache_hit: None,
        cache_new: false,
        initial_size: None,
    };
    loop {
        let tasks: &[&dyn Task<CreateCtx<'_>, OpError>] = if image_id.is_some() {
            &[
                &Schedule,
                &FetchImage,
                &CreateOnBackend,
                &CopyImage,
                &MarkAvailable,
            ]
        } else {
            &[&Schedule, &CreateOnBackend, &MarkAvailable]
        };
        let result = flow::run("create-volume", tasks, &mut ctx).await;
        let e = match result {
            Ok(()) => return Ok(()),
            Err(OpError::Elsewhere(backend)) => {
                let job = job.expect("only a job's create places on other hosts");
                let payload = Job::CreateVolume {
                    attempts,
                    image_id: image_id.clone(),
                }
                .payload(ctx.op.request_id.as_deref());
                if m.db
                    .hand_off_job(&job.id, &m.host_name, &backend, &payload)
                    .await?
                {
                    tracing::info!(volume_id = %id, backend = %backend, "create handed on to the host that runs its backend");
                    return Ok(());
                }
                return Err(OpError::Gone(format!(
                    "job {} is no longer this host's to hand on",
                    job.id
                )));
            }
            Err(e) => e,
        };
        let Some(placed) = ctx.placed.take() else {
            let failed = if matches!(e, OpError::NoValidBackend { .. }) {
                failed(
                    Action::SCHEDULE_ALLOCATE_VOLUME,
                    Detail::NO_BACKEND_AVAILABLE,
                )
            } else {
                failed(
                    Action::CREATE_VOLUME_FROM_BACKEND,
                    Detail::DRIVER_FAILED_CREATE,
                )
            };
            if attempts.is_empty() || !matches!(e, OpError::NoValidBackend { .. }) {
                failed.fail(&ctx.op, &e).await;
            } else {
                // A reschedule that another create raced out of its pool.
                let hint = join_hints(
                    format!(
                        "{} Then no other backend could take it.",
                        tried_public(&attempts)
                    ),
                    e.hint(),
                );
                let internal = format!(
                    "{}; then no other backend could take it: {e}",
                    tried_internal(&attempts)
                );
                failed
                    .fail_as(
                        &ctx.op,
                        Detail::NO_BACKEND_AVAILABLE,
                        Some(&hint),
                        &internal,
                    )
                    .await;
            }
            return Err(e);
        };
        let backend = placed
            .split_once('#')
            .map_or(placed.as_str(), |(b, _)| b)
            .to_string();
        attempts.push(Attempt {
            backend: backend.clone(),
            placed,
            error: e.to_string(),
        });
        let mut tried = ctx.tried.clone();
        tried.push(backend.clone());
        let elsewhere = reschedulable(&e)
            && attempts.len() < max_attempts
            && match request_spec(m, &ctx.volume, &tried).await {
                Ok((spec, only)) => {
                    m.could_schedule(&spec, only.as_deref(), ctx.local_only)
                        .await
                }
                Err(_) => false,
            };
        let detail = e.detail_or(Detail::DRIVER_FAILED_CREATE);
        if elsewhere {
            let n = attempts.len();
            let hint = format!(
                "Attempt {n} of {max_attempts} on {backend} failed; rescheduled to another backend."
            );
            let internal = format!(
                "attempt {n} of {max_attempts} on {} failed: {e}; rescheduled to another backend",
                attempts[n - 1].placed
            );
            let event = Event {
                resource: Resource::Volume,
                action: Action::CREATE_VOLUME_FROM_BACKEND,
                detail,
            };
            m.user_message(
                &volume.project_id,
                ctx.op.request_id.clone(),
                id,
                event,
                Some(&hint),
                &internal,
            )
            .await;
            ctx.tried = tried;
            continue;
        }
        let action = if matches!(e, OpError::Image { .. }) {
            Action::COPY_IMAGE_TO_VOLUME
        } else {
            Action::CREATE_VOLUME_FROM_BACKEND
        };
        let failed = failed(action, Detail::DRIVER_FAILED_CREATE);
        if attempts.len() == 1 {
            failed.fail(&ctx.op, &e).await;
        } else {
            let hint = join_hints(tried_public(&attempts), e.hint());
            failed
                .fail_as(&ctx.op, detail, Some(&hint), &tried_internal(&attempts))
                .await;
        }
        return Err(e);
    }
}

/// `Attempt 1 on host@a failed; attempt 2 on host@b failed.`, for the tenant.
fn tried_public(attempts: &[Attempt]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("attempt {} on {} failed", i + 1, a.backend))
        .collect();
    let text = parts.join("; ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}

/// Every attempt's pool and error, for the log and administrators.
fn tried_internal(attempts: &[Attempt]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("attempt {} on {} failed: {}", i + 1, a.placed, a.error))
        .collect();
    parts.join("; ")
}

fn join_hints(first: String, then: Option<String>) -> String {
    match then {
        Some(then) => format!("{first} {then}"),
        None => first,
    }
}
