//! Volumes and images (Cinder's `_create_from_image`, `copy_volume_to_image` and the
//! image-volume cache).
//!
//! A volume from an image: the image's data is streamed from Glance to a temporary file
//! under the data directory, checked with `qemu-img info` (its declared format, no
//! backing or data file, a disk that fits the volume), and written with `qemu-img
//! convert` onto the volume's local device, as a backup reads it (`Connector::local`).
//! With the backend's image-volume cache enabled, the first volume from an image is made
//! at the image's size, cloned into a cached image-volume of the internal project, then
//! extended; the next one from the same unchanged image is a driver clone of that entry.
//!
//! An upload: the volume's local device is written to Glance as `raw` directly, or
//! converted to `qcow2` in a temporary file first, and streamed; the volume returns to
//! the status it had, and on failure the image is deleted.
//!
//! Temporary files are removed when their guard drops, and the whole directory at
//! start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::flow::{self, BoxFuture, Task};
use super::disconnect_local;
use super::{Ctx, OpContext, driver_volume, volume_in};
use crate::db::{CacheEntry, VolumeRow, time};
use crate::driver::Volume;
use crate::image::{self, Glance, GlanceError, Image, ImageCheck, QemuError, qemu};
use crate::runtime::DriverPool;
use crate::volume::message_field::{Action, Detail, Event, Resource};
use crate::volume::status::VolumeStatus;
use crate::volume::{Backend, ImageService, OpError, VolumeManager};

/// A file under the image directory, removed when dropped.
#[derive(Debug)]
pub(super) struct TempFile(PathBuf);

impl TempFile {
    fn new(m: &VolumeManager, volume_id: &str, what: &str) -> Result<TempFile, OpError> {
        let dir = &images(m)?.tmp_dir;
        std::fs::create_dir_all(dir).map_err(|e| OpError::Image {
            public: "The host could not prepare room for the image's data.".into(),
            detail: format!("creating {}: {e}", dir.display()),
            too_big: false,
        })?;
        Ok(TempFile(dir.join(format!(
            "{volume_id}-{what}-{}",
            uuid::Uuid::new_v4()
        ))))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("removing {}: {e}", self.0.display()),
        }
    }
}

/// Removes whatever the image flows left in the image directory (at start-up, when no
/// flow runs).
pub(in crate::volume) fn sweep_temp_files(m: &VolumeManager) -> usize {
    let Some(images) = m.images() else { return 0 };
    let Ok(entries) = std::fs::read_dir(&images.tmp_dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

fn images(m: &VolumeManager) -> Result<&ImageService, OpError> {
    m.images().ok_or_else(|| OpError::Image {
        public: "Images are not configured on this service.".into(),
        detail: "no [glance] section in the configuration".into(),
        too_big: false,
    })
}

pub(super) fn glance_error(what: &str, e: GlanceError) -> OpError {
    OpError::Image {
        public: e.public(),
        detail: format!("{what}: {e}"),
        too_big: false,
    }
}

pub(super) fn qemu_error(e: QemuError) -> OpError {
    match &e {
        QemuError::Unacceptable { .. } => OpError::Image {
            public: e.to_string(),
            detail: e.to_string(),
            too_big: false,
        },
        QemuError::TooBig { .. } => OpError::Image {
            public: e.to_string(),
            detail: e.to_string(),
            too_big: true,
        },
        QemuError::Failed { .. } => OpError::Image {
            public: "Converting the image's data failed.".into(),
            detail: e.to_string(),
            too_big: false,
        },
    }
}

/// Connects `vol` to this host and answers its local device, for an image copy.
async fn connect_local(
    m: &VolumeManager,
    driver: &Arc<DriverPool>,
    backend: &str,
    vol: &Volume,
) -> Result<PathBuf, OpError> {
    let unsupported = |why: String| OpError::Image {
        public: format!(
            "Copying images to and from volumes on backend {backend} is not supported: its driver does not give the host a local device."
        ),
        detail: format!("backend {backend}: no local connection for an image copy: {why}"),
        too_big: false,
    };
    super::connect_local(m, driver, vol)
        .await?
        .map_err(unsupported)
}

/// The image a create names, read again from Glance as the job starts: it must still be
/// there and `active`.
pub(super) async fn show_active(m: &VolumeManager, image_id: &str) -> Result<Image, OpError> {
    let glance = &images(m)?.glance;
    let image = glance
        .show(image_id)
        .await
        .map_err(|e| glance_error("reading the image", e))?
        .ok_or_else(|| OpError::Image {
            public: format!("Image {image_id} could not be found."),
            detail: format!("image {image_id} is gone from the Image service"),
            too_big: false,
        })?;
    if image.status != "active" {
        return Err(OpError::Image {
            public: format!("Image {image_id} is not active."),
            detail: format!("image {image_id} is {}", image.status),
            too_big: false,
        });
    }
    Ok(image)
}

/// The image's data downloaded and checked.
#[derive(Debug)]
pub(super) struct Fetched {
    pub file: TempFile,
    pub check: ImageCheck,
}

/// Downloads `image` for volume `volume_id` of `volume_gib` GiB and checks it.
pub(super) async fn fetch(
    m: &VolumeManager,
    image: &Image,
    volume_id: &str,
    volume_gib: u64,
) -> Result<Fetched, OpError> {
    let glance: &Glance = &images(m)?.glance;
    let file = TempFile::new(m, volume_id, "download")?;
    tracing::info!(volume_id, image_id = %image.id, bytes = image.size, "downloading image");
    let started = std::time::Instant::now();
    let bytes = glance
        .download_to(image, file.path())
        .await
        .map_err(|e| glance_error("downloading the image", e))?;
    tracing::info!(volume_id, image_id = %image.id, bytes, secs = started.elapsed().as_secs_f64(), "image downloaded");
    let check = qemu::check_image(
        &image.id,
        file.path(),
        image.disk_format.as_deref(),
        Some(volume_gib),
    )
    .await
    .map_err(qemu_error)?;
    Ok(Fetched { file, check })
}

/// Writes the fetched image onto `vol`'s local device.
pub(super) async fn write_onto(
    m: &VolumeManager,
    backend: &Backend,
    vol: &Volume,
    fetched: &Fetched,
) -> Result<(), OpError> {
    let driver = backend.driver();
    let device = connect_local(m, &driver, &backend.name, vol).await?;
    let started = std::time::Instant::now();
    let written = qemu::write_to_device(fetched.file.path(), &fetched.check.format, &device).await;
    disconnect_local(m, &driver, vol).await;
    written.map_err(qemu_error)?;
    tracing::info!(volume_id = %vol.id, format = %fetched.check.format, secs = started.elapsed().as_secs_f64(), "image written onto the volume");
    Ok(())
}

/// The backend's cache entry of `image`, when it can serve a volume of `size` GiB: an
/// entry of a changed image (another `updated_at` or checksum) is evicted and missed.
pub(super) async fn cache_lookup(
    m: &VolumeManager,
    backend: &Backend,
    image: &Image,
    size: i64,
) -> Result<Option<(CacheEntry, VolumeRow)>, OpError> {
    let key = m.backend_key(&backend.name);
    let Some(entry) = m.db.cache_entry(&key, &image.id).await? else {
        return Ok(None);
    };
    let row = m.db.get_volume(&entry.volume_id).await?;
    let fresh = entry.image_updated_at == image.updated_at && entry.checksum == image.checksum;
    let here = row
        .as_ref()
        .and_then(|r| r.host.as_deref())
        .is_some_and(|h| crate::volume::backend_key_of(h) == key);
    match row {
        // Migrated away (a drained backend): no longer a clone source here.
        Some(_) if !here => {
            tracing::info!(image_id = %image.id, backend = %key, "cached image-volume moved to another backend; evicting the entry");
            evict(m, backend, &entry).await;
            Ok(None)
        }
        Some(row) if fresh && row.status == VolumeStatus::Available => {
            if entry.size > size {
                tracing::info!(image_id = %image.id, entry = entry.size, size, "image-volume cache entry larger than the volume; downloading");
                return Ok(None);
            }
            Ok(Some((entry, row)))
        }
        // Still being made by another create: download this once.
        Some(row) if fresh && row.status == VolumeStatus::Creating => Ok(None),
        _ => {
            tracing::info!(image_id = %image.id, backend = %key, "image changed since it was cached; evicting the entry");
            evict(m, backend, &entry).await;
            Ok(None)
        }
    }
}

/// Deletes a cache entry's volume on the backend, then the entry.
pub(super) async fn evict(m: &VolumeManager, backend: &Backend, entry: &CacheEntry) {
    // Through the backend the volume lives on now (a migration may have moved it).
    if let Ok(Some(row)) = m.db.get_volume(&entry.volume_id).await {
        let driver = match row.host.as_deref() {
            None => Some(backend.driver()),
            Some(h) => m.backend_of(Some(h)).map(|b| b.driver()),
        };
        let Some(driver) = driver else {
            // On a backend this host does not run: the entry goes, the volume stays, an
            // administrator's to delete.
            if let Err(e) = m.db.forget_cache_entry(&entry.id).await {
                tracing::warn!(image_id = %entry.image_id, "removing a cache entry: {e}");
            }
            return;
        };
        if let Ok(vol) = driver_volume(m, &row).await
            && let Err(e) = driver.delete_volume(&vol).await
        {
            tracing::warn!(image_id = %entry.image_id, volume_id = %entry.volume_id, "evicting a cached image-volume: {e}");
            return;
        }
    }
    match m.db.remove_cache_entry(&entry.id, &entry.volume_id).await {
        Ok(()) => {
            tracing::info!(image_id = %entry.image_id, volume_id = %entry.volume_id, size = entry.size, "image-volume cache entry evicted")
        }
        Err(e) => tracing::warn!(image_id = %entry.image_id, "removing a cache entry: {e}"),
    }
}

/// Evicts least recently used entries until one more of `size` GiB fits the backend's
/// limits (Cinder's `ensure_space`); false when it cannot fit at all.
async fn ensure_space(m: &VolumeManager, backend: &Backend, size: i64) -> Result<bool, OpError> {
    let (max_gb, max_count) = (
        backend.config.image_volume_cache_max_size_gb as i64,
        backend.config.image_volume_cache_max_count as i64,
    );
    if max_gb > 0 && size > max_gb {
        return Ok(false);
    }
    let mut entries = m.db.cache_entries(&m.backend_key(&backend.name)).await?;
    let mut total: i64 = entries.iter().map(|e| e.size).sum();
    while !entries.is_empty()
        && ((max_count > 0 && entries.len() as i64 + 1 > max_count)
            || (max_gb > 0 && total + size > max_gb))
    {
        let lru = entries.remove(0);
        total -= lru.size;
        evict(m, backend, &lru).await;
    }
    Ok(true)
}

/// Makes the cache entry of `image` on `backend`: a clone of `source` (the new volume,
/// at the image's size, holding its data) as a volume of the internal project. A failure
/// is logged: the volume the tenant asked for does not depend on it.
pub(super) async fn add_to_cache(
    m: &VolumeManager,
    backend: &Backend,
    image: &Image,
    source_row: &VolumeRow,
    source: &Volume,
) {
    let Some(images) = m.images() else { return };
    let size = source.size_gib as i64;
    match ensure_space(m, backend, size).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(image_id = %image.id, size, "image larger than the image-volume cache may hold; not cached");
            return;
        }
        Err(e) => {
            tracing::warn!(image_id = %image.id, "image-volume cache: {e}");
            return;
        }
    }
    let now = time::now();
    let id = uuid::Uuid::new_v4().to_string();
    let row = VolumeRow {
        id: id.clone(),
        project_id: images.internal_project_id.clone(),
        user_id: "ashlar".into(),
        name: Some(format!("image-{}", image.id)),
        description: Some("Cached image-volume".into()),
        size,
        status: VolumeStatus::Creating,
        image_metadata: image.volume_image_metadata(),
        created_at: now.clone(),
        updated_at: Some(now.clone()),
        metadata: Default::default(),
        admin_metadata: Default::default(),
        attachments: Vec::new(),
        snapshot_id: None,
        source_volid: None,
        provider_location: None,
        provider_auth: None,
        launched_at: None,
        revision: 0,
        bootable: true,
        multiattach: false,
        ..source_row.clone()
    };
    let entry = CacheEntry {
        id: uuid::Uuid::new_v4().to_string(),
        backend: m.backend_key(&backend.name),
        image_id: image.id.clone(),
        image_updated_at: image.updated_at.clone(),
        checksum: image.checksum.clone(),
        volume_id: id.clone(),
        size,
        created_at: now.clone(),
        last_used: now,
    };
    match m.db.insert_cache_volume(&row, &entry).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(image_id = %image.id, "recording a cache entry: {e}");
            return;
        }
    }
    let made = async {
        let vol = driver_volume(m, &row).await?;
        let model = backend.driver().create_cloned_volume(&vol, source).await?;
        Ok::<_, OpError>(model)
    }
    .await;
    match made {
        Ok(model) => {
            if let Err(e) =
                m.db.finish_cache_volume(&id, model.provider_location.value())
                    .await
            {
                tracing::warn!(image_id = %image.id, "recording a cached image-volume: {e}");
            }
            tracing::info!(image_id = %image.id, volume_id = %id, size, backend = %backend.name, "image-volume cache entry created");
        }
        Err(e) => {
            tracing::warn!(image_id = %image.id, "making the cached image-volume: {e}");
            evict(m, backend, &entry).await;
        }
    }
}

/// Removes cache entries whose volume a stopped host left unmade.
pub(in crate::volume) async fn sweep_unfinished_cache(m: &VolumeManager) {
    // A clustered backend's entries may be another live host's work in progress.
    let keys: Vec<String> = m
        .backends
        .iter()
        .filter(|(_, b)| b.config.cluster.is_none())
        .map(|(name, _)| m.backend_key(&name))
        .collect();
    let Ok(entries) = m.db.unfinished_cache_entries(&keys).await else {
        return;
    };
    for entry in entries {
        let name = entry.backend.split_once('@').map_or("", |(_, b)| b);
        if let Some(backend) = m.backends.get(name) {
            evict(m, &backend, &entry).await;
        }
    }
}

// --- Upload ---------------------------------------------------------------------------

struct Upload {
    volume: VolumeRow,
    image_id: String,
    disk_format: String,
    driver: Option<Arc<DriverPool>>,
    vol: Option<Volume>,
    device: Option<PathBuf>,
}

type UploadCtx<'m> = Ctx<'m, Upload>;

/// The upload's failure task: on the way out it tells the user (Cinder's `copy volume
/// to image` action), deletes the image from Glance and returns the volume to the status
/// it had.
struct UploadFailed;
struct ConnectVolume;
struct SendImage;
struct FinishUpload;

impl<'m> Task<UploadCtx<'m>, OpError> for UploadFailed {
    fn name(&self) -> &'static str {
        "upload-failed"
    }
    fn execute<'a>(&'a self, _ctx: &'a mut UploadCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async { Ok(()) })
    }
    fn revert<'a>(&'a self, ctx: &'a mut UploadCtx<'m>, e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let m = ctx.op().m;
            let event = Event {
                resource: Resource::Volume,
                action: Action::COPY_VOLUME_TO_IMAGE,
                detail: e.detail_or(Detail::FAILED_TO_UPLOAD_VOLUME),
            };
            m.user_message(
                &ctx.it.volume.project_id,
                ctx.op.request_id.clone(),
                &ctx.it.volume.id,
                event,
                e.hint().as_deref(),
                &e.to_string(),
            )
            .await;
            abandon_upload(m, &ctx.it.volume.id, &ctx.it.image_id).await;
        })
    }
}

/// Deletes the image and returns the volume to its previous status.
async fn abandon_upload(m: &VolumeManager, volume_id: &str, image_id: &str) {
    if let Some(images) = m.images()
        && let Err(e) = images.glance.delete(image_id).await
    {
        tracing::warn!(
            volume_id,
            image_id,
            "deleting the image of a failed upload: {e}"
        );
    }
    if let Err(e) = m.db.finish_upload(volume_id).await {
        tracing::error!(volume_id, "cannot return the volume to its status: {e}");
    }
}

impl<'m> Task<UploadCtx<'m>, OpError> for ConnectVolume {
    fn name(&self) -> &'static str {
        "connect-volume"
    }
    fn execute<'a>(&'a self, ctx: &'a mut UploadCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let backend = m.backend_of(ctx.it.volume.host.as_deref()).ok_or_else(|| {
                OpError::Gone("the volume's backend is not configured here".into())
            })?;
            let driver = backend.driver();
            let vol = driver_volume(m, &ctx.it.volume).await?;
            let device = connect_local(m, &driver, &backend.name, &vol).await?;
            ctx.it.driver = Some(driver);
            ctx.it.vol = Some(vol);
            ctx.it.device = Some(device);
            Ok(())
        })
    }
    fn revert<'a>(&'a self, ctx: &'a mut UploadCtx<'m>, _e: &'a OpError) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let (Some(driver), Some(vol), Some(_)) =
                (&ctx.it.driver, &ctx.it.vol, ctx.it.device.take())
            {
                disconnect_local(ctx.op.m, driver, vol).await;
            }
        })
    }
}

impl<'m> Task<UploadCtx<'m>, OpError> for SendImage {
    fn name(&self) -> &'static str {
        "send-image"
    }
    fn execute<'a>(&'a self, ctx: &'a mut UploadCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            let images = images(m)?;
            let device = ctx
                .it
                .device
                .clone()
                .ok_or_else(|| OpError::Gone("no device".into()))?;
            let id = ctx.it.image_id.clone();
            tracing::info!(volume_id = %ctx.it.volume.id, image_id = %id, disk_format = %ctx.it.disk_format, "uploading volume to image");
            let started = std::time::Instant::now();
            // raw goes straight from the device; qcow2 is converted to a file first.
            let converted = if ctx.it.disk_format == "raw" {
                None
            } else {
                let file = TempFile::new(m, &ctx.it.volume.id, "upload")?;
                qemu::read_from_device(&device, &ctx.it.disk_format, file.path())
                    .await
                    .map_err(qemu_error)?;
                Some(file)
            };
            let source = converted.as_ref().map_or(device.as_path(), |f| f.path());
            let bytes = images
                .glance
                .upload_from(&id, source)
                .await
                .map_err(|e| glance_error("uploading the volume", e))?;
            drop(converted);
            let image = images
                .glance
                .show(&id)
                .await
                .map_err(|e| glance_error("reading the uploaded image", e))?;
            match image {
                Some(i) if i.status == "active" => {}
                other => {
                    return Err(OpError::Image {
                        public: format!("Image {id} did not become active after the upload."),
                        detail: format!(
                            "image {id} is {} after the upload",
                            other.map_or("gone".to_string(), |i| i.status)
                        ),
                        too_big: false,
                    });
                }
            }
            tracing::info!(volume_id = %ctx.it.volume.id, image_id = %id, bytes, disk_format = %ctx.it.disk_format, secs = started.elapsed().as_secs_f64(), "volume uploaded to image");
            Ok(())
        })
    }
}

impl<'m> Task<UploadCtx<'m>, OpError> for FinishUpload {
    fn name(&self) -> &'static str {
        "finish-upload"
    }
    fn execute<'a>(&'a self, ctx: &'a mut UploadCtx<'m>) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let m = ctx.op.m;
            if let (Some(driver), Some(vol), Some(_)) =
                (&ctx.it.driver, &ctx.it.vol, ctx.it.device.take())
            {
                disconnect_local(m, driver, vol).await;
            }
            if !m.db.finish_upload(&ctx.it.volume.id).await? {
                tracing::warn!(volume_id = %ctx.it.volume.id, "the volume left `uploading` while it was uploaded");
            }
            Ok(())
        })
    }
}

/// An upload job: see the module doc. A host that stopped during one deletes the image
/// and returns the volume to its status, with a message.
pub(in crate::volume) async fn upload_image(
    m: &VolumeManager,
    volume_id: &str,
    image_id: &str,
    disk_format: &str,
    request_id: Option<String>,
    recovering: bool,
) -> Result<(), OpError> {
    let Some(volume) = volume_in(m, volume_id, VolumeStatus::Uploading).await? else {
        return Ok(());
    };
    let op = super::Op { m, request_id };
    if recovering {
        let e = OpError::Image {
            public: "The service stopped while the volume was being uploaded; the image was deleted. Upload it again.".into(),
            detail: format!("the service stopped while volume {volume_id} was being uploaded to image {image_id}"),
            too_big: false,
        };
        let mut ctx = Ctx {
            op,
            it: Upload {
                volume,
                image_id: image_id.to_string(),
                disk_format: disk_format.to_string(),
                driver: None,
                vol: None,
                device: None,
            },
        };
        UploadFailed.revert(&mut ctx, &e).await;
        return Err(e);
    }
    let mut ctx = Ctx {
        op,
        it: Upload {
            volume,
            image_id: image_id.to_string(),
            disk_format: disk_format.to_string(),
            driver: None,
            vol: None,
            device: None,
        },
    };
    flow::run(
        "upload-image",
        &[&UploadFailed, &ConnectVolume, &SendImage, &FinishUpload],
        &mut ctx,
    )
    .await
}

/// The size in GiB a new cache entry of an image checked as `check` takes.
pub(super) fn cache_size(check: &ImageCheck, min_disk: u64) -> i64 {
    image::gib_ceil(check.virtual_size).max(min_disk).max(1) as i64
}
