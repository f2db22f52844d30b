//! The backup engine: a volume's bytes into chunk objects and back.
//!
//! A backup cuts the volume into fixed-size chunks ([`EngineSettings::chunk_bytes`]).
//! Chunks that lie wholly in a hole of a sparse file (found with `SEEK_DATA`/`SEEK_HOLE`)
//! are never read; chunks that read as all zeros are neither hashed, compressed nor
//! stored. Every other chunk is hashed (SHA-256 of its plain bytes), compressed with zstd
//! and stored as `{backup_id}/chunk-{index}`. An incremental backup (a parent manifest
//! given) stores only the chunks whose hash differs from the parent's chunk at the same
//! index and points at the parent's object for the rest, so the newest manifest alone
//! says where every chunk lives and a restore never walks the chain. The manifest
//! (`{backup_id}/manifest`, JSON, see [`Manifest`]) is written last: it is the commit
//! point, and a backup without one is an orphan ([`orphans`]).
//!
//! Restore fetches, decompresses and verifies each chunk against its hash before writing
//! it with positioned writes; zero chunks become holes on a file and zeros on a block
//! device, so restoring onto a volume holding old data gives the backup's bytes exactly.
//!
//! The work runs as a pipeline with bounded memory ([`pipeline`] says the bound): one
//! reader, `threads` workers hashing and compressing, `store_parallelism` uploads.

mod manifest;
mod pipeline;
mod restore;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::{ObjectStore, StoreError};

pub use manifest::{CHUNK_PREFIX, ChunkRef, MANIFEST_FORMAT, Manifest, manifest_object};

/// How the engine cuts, compresses and moves a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Bytes per chunk: the unit of hashing, compression, dedup against the parent, and
    /// of one stored object. The last chunk of a volume may be shorter. An incremental
    /// backup uses its parent's chunk size, whatever this says, so its chunks line up.
    pub chunk_bytes: usize,
    /// zstd level for chunks (1 is zstd's fastest standard level).
    pub zstd_level: i32,
    /// Workers hashing and compressing (restore: decompressing and verifying) at once.
    pub threads: usize,
    /// Store calls (put on backup, get on restore, delete) running at once.
    pub store_parallelism: usize,
}

impl Default for EngineSettings {
    /// 4 MiB chunks, zstd level 1, one worker per core, four store calls at once.
    ///
    /// - 4 MiB chunks: large enough that zstd's ratio has flattened out (its window at
    ///   level 1 is 512 KiB) and a posix store's per-object file create and fsync, or an
    ///   S3 PUT's round trip, is a small share of the time; small enough that a 1%
    ///   change to a volume is a few chunks, that every core has chunks to work on, and
    ///   that the pipeline's memory stays a few dozen MiB. Cinder's posix driver uses
    ///   1.9 GiB objects, which is why its incrementals copy so much. Measured with
    ///   `benches/backup.rs` on mixed data (2 cores): 2.46 CPU-seconds per GiB with 1 MiB
    ///   chunks, 2.39 with 4 MiB, 2.73 with 16 MiB (a chunk no longer stays in cache
    ///   between the zero check, the hash and the compression); zstd -1 -T0 takes 2.35.
    /// - level 1: `zstd -1` is the speed the issue measures us against; higher levels
    ///   cost far more CPU than they save in bytes on volume data.
    /// - threads = cores: compression is CPU-bound; the reader and uploads are separate
    ///   threads that mostly wait on I/O.
    /// - four store calls: enough to hide an fsync's or a PUT's latency behind the
    ///   compression of the next chunks without piling up compressed chunks in memory.
    fn default() -> Self {
        Self {
            chunk_bytes: 4 << 20,
            zstd_level: 1,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            store_parallelism: 4,
        }
    }
}

impl EngineSettings {
    /// The settings clamped to what the engine can run: at least one thread and one
    /// store call, chunks between 64 KiB and 256 MiB.
    fn checked(&self) -> Result<Self, EngineError> {
        if !(64 << 10..=256 << 20).contains(&self.chunk_bytes) {
            return Err(EngineError::Settings(format!(
                "chunk size {} bytes is outside 64 KiB to 256 MiB; set the backup store's chunk size within that range",
                self.chunk_bytes
            )));
        }
        Ok(Self {
            chunk_bytes: self.chunk_bytes,
            zstd_level: self.zstd_level,
            threads: self.threads.max(1),
            store_parallelism: self.store_parallelism.max(1),
        })
    }
}

/// How far a backup or restore has come, in bytes of the volume (holes and zero chunks
/// count as done when they are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done_bytes: u64,
    pub total_bytes: u64,
}

impl Progress {
    /// Percent done, 0 to 100, as Cinder's `os-backup-progress` shows it.
    pub fn percent(&self) -> u8 {
        if self.total_bytes == 0 {
            return 100;
        }
        (self.done_bytes.min(self.total_bytes) * 100 / self.total_bytes) as u8
    }
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// The manifest as stored.
    pub manifest: Manifest,
    /// Bytes of objects this backup stored (chunks and the manifest).
    pub stored_bytes: u64,
    /// Objects this backup stored (chunks and the manifest).
    pub objects: u64,
    /// Bytes of the volume neither read nor stored: holes and all-zero chunks.
    pub skipped_zero_bytes: u64,
}

/// What a restore wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Bytes of the target now holding the backup (its size).
    pub bytes: u64,
}

/// Why a backup, restore or delete failed. The `Display` text is fit for a tenant: it
/// names backups and objects, never a host path; [`EngineError::internal`] adds the
/// operator's details.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A store call failed for another reason than a missing object.
    #[error(
        "the backup store failed on object `{object}`: {source}; check the backup store and retry"
    )]
    Store {
        object: String,
        #[source]
        source: StoreError,
    },
    /// A stored object does not hold what the manifest says.
    #[error(
        "object `{object}` of backup {backup_id} is corrupt ({reason}); this backup cannot be restored, restore another backup"
    )]
    Corrupt {
        backup_id: String,
        object: String,
        reason: String,
    },
    /// An object the backup needs is not in the store.
    #[error(
        "object `{object}` of backup {backup_id} is missing from the backup store; this backup cannot be restored, restore another backup"
    )]
    Missing { backup_id: String, object: String },
    /// The manifest is unreadable or of a format this host does not know.
    #[error("the manifest of backup {backup_id} is unusable: {reason}")]
    Manifest { backup_id: String, reason: String },
    /// Reading the source or writing the target failed.
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done, in words without a path ("reading the volume").
        what: &'static str,
        /// The file or device, for the operator only.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The source is shorter than the volume size it was given.
    #[error(
        "the volume's device holds {actual} bytes, fewer than its size of {expected} bytes; check the volume"
    )]
    SourceTooSmall { expected: u64, actual: u64 },
    /// The restore target cannot hold the backup.
    #[error(
        "the target volume holds {actual} bytes but backup {backup_id} needs {needed}; restore onto a volume at least as large"
    )]
    TargetTooSmall {
        backup_id: String,
        needed: u64,
        actual: u64,
    },
    /// The settings cannot be run.
    #[error("invalid backup engine settings: {0}")]
    Settings(String),
    /// The `cancel` flag was raised.
    #[error("the operation was cancelled")]
    Cancelled,
}

impl From<crate::device::DeviceError> for EngineError {
    fn from(e: crate::device::DeviceError) -> Self {
        EngineError::Io {
            what: e.what,
            path: e.path,
            source: e.source,
        }
    }
}

impl EngineError {
    /// The message with the operator's details (the host path of an I/O failure).
    pub fn internal(&self) -> String {
        match self {
            EngineError::Io { path, .. } => format!("{self} (path {})", path.display()),
            _ => self.to_string(),
        }
    }

    fn store(object: &str, backup_id: &str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => EngineError::Missing {
                backup_id: backup_id.to_string(),
                object: object.to_string(),
            },
            source => EngineError::Store {
                object: object.to_string(),
                source,
            },
        }
    }
}

/// Reads `source` (a file or block device, `size_bytes` long), writes the chunk objects
/// under `{backup_id}/` and finally the manifest `{backup_id}/manifest` (the commit point).
/// With `parent`, stores only the chunks whose hash differs from the parent's (an
/// incremental). On failure or cancel, the objects written so far are removed (best
/// effort; what a crash leaves is found by [`orphans`]).
#[allow(clippy::too_many_arguments)]
pub fn backup(
    store: &dyn ObjectStore,
    backup_id: &str,
    source: &Path,
    size_bytes: u64,
    parent: Option<&Manifest>,
    settings: &EngineSettings,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<BackupSummary, EngineError> {
    let mut settings = settings.checked()?;
    if let Some(parent) = parent {
        settings.chunk_bytes = parent.chunk_bytes as usize;
    }
    manifest::check_id(backup_id)?;
    let result = pipeline::backup(
        store, backup_id, source, size_bytes, parent, &settings, progress, cancel,
    );
    if result.is_err() {
        // Nothing committed: take back the chunks this run stored.
        let _ = remove_chunks(store, backup_id, settings.store_parallelism);
    }
    result
}

/// The manifest of `backup_id`, as stored.
pub fn read_manifest(store: &dyn ObjectStore, backup_id: &str) -> Result<Manifest, EngineError> {
    manifest::check_id(backup_id)?;
    let object = manifest_object(backup_id);
    let bytes = store
        .get(&object)
        .map_err(|e| EngineError::store(&object, backup_id, e))?;
    Manifest::decode(backup_id, &bytes)
}

/// Writes the backup onto `target` (an existing file/device at least size_bytes long),
/// verifying every chunk's hash; zero chunks are written as holes/zeros. Fails loudly on
/// a corrupt or missing object.
pub fn restore(
    store: &dyn ObjectStore,
    backup_id: &str,
    target: &Path,
    settings: &EngineSettings,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<RestoreSummary, EngineError> {
    let settings = settings.checked()?;
    let manifest = read_manifest(store, backup_id)?;
    restore::restore(store, &manifest, target, &settings, progress, cancel)
}

/// Removes every object under `{backup_id}/` (manifest first, so a half-deleted backup is
/// never restorable). Returns how many objects were removed.
pub fn delete(store: &dyn ObjectStore, backup_id: &str) -> Result<u64, EngineError> {
    manifest::check_id(backup_id)?;
    let prefix = format!("{backup_id}/");
    let object = manifest_object(backup_id);
    let objects = store
        .list(&prefix)
        .map_err(|e| EngineError::store(&prefix, backup_id, e))?;
    let had_manifest = objects.iter().any(|o| o.name == object);
    // Deleted even when absent: removing a missing object succeeds, and it lets a store
    // drop what a cut write left under the prefix that no listing shows.
    store
        .delete(&object)
        .map_err(|e| EngineError::store(&object, backup_id, e))?;
    let chunks: Vec<_> = objects.into_iter().filter(|o| o.name != object).collect();
    remove(
        store,
        backup_id,
        &chunks,
        EngineSettings::default().store_parallelism,
    )?;
    Ok(chunks.len() as u64 + u64::from(had_manifest))
}

/// Removes every object under `{backup_id}/` with `parallelism` deletes at once (after
/// a failed backup: it has no manifest).
fn remove_chunks(
    store: &dyn ObjectStore,
    backup_id: &str,
    parallelism: usize,
) -> Result<u64, EngineError> {
    let prefix = format!("{backup_id}/");
    let objects = store
        .list(&prefix)
        .map_err(|e| EngineError::store(&prefix, backup_id, e))?;
    if objects.iter().any(|o| o.name == manifest_object(backup_id)) {
        // A committed backup of that id: never take it apart here.
        return Ok(0);
    }
    remove(store, backup_id, &objects, parallelism)?;
    Ok(objects.len() as u64)
}

/// Deletes `objects`, `parallelism` at once.
fn remove(
    store: &dyn ObjectStore,
    backup_id: &str,
    objects: &[super::ObjectInfo],
    parallelism: usize,
) -> Result<(), EngineError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallelism.max(1).min(objects.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(o) = objects.get(i) else { break };
                    if let Err(e) = store.delete(&o.name) {
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(EngineError::store(&o.name, backup_id, e));
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Object prefixes (backup ids) in the store for which `known(id)` is false: what a
/// crashed backup left behind.
pub fn orphans(
    store: &dyn ObjectStore,
    known: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, EngineError> {
    let objects = store
        .list("")
        .map_err(|e| EngineError::store("(listing)", "(all)", e))?;
    let mut ids: Vec<String> = objects
        .iter()
        .map(|o| o.name.split_once('/').map_or(o.name.as_str(), |(id, _)| id))
        .filter(|id| !known(id))
        .map(str::to_string)
        .collect();
    ids.dedup();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests;
