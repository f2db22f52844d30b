//! The backup pipeline, and what the restore one shares with it.
//!
//! Four stages joined by bounded channels, each stage on its own threads:
//!
//! 1. one **reader** walks the volume in order (sequential reads suit a device's
//!    read-ahead), jumping over holes with `SEEK_DATA`, and reads each chunk that may hold
//!    data into a buffer from a fixed pool;
//! 2. `threads` **workers** drop zero chunks, hash the rest, drop those the parent
//!    already holds, and compress what is left with zstd;
//! 3. `store_parallelism` **uploads** put the compressed chunks;
//! 4. the calling thread **collects** what each chunk became, reports progress and
//!    finally writes the manifest.
//!
//! Memory is bounded: at most `threads + 2` plain chunks exist (the reader's buffer pool:
//! one being read, the rest queued for or held by a worker) and at most
//! `threads + 2 × store_parallelism` compressed ones (one per worker waiting to hand it
//! on, `store_parallelism` queued, `store_parallelism` uploading), so about
//! `(2 × threads + 2 + 2 × store_parallelism) × chunk_bytes` in all: 56 MiB with the
//! defaults on two cores.
//!
//! On a failure or cancel, the first error is kept and every stage drains its input
//! without working on it, so the threads end in order (reader, workers, uploads) and no
//! stage ever waits on one that has gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::manifest::{ChunkRef, Manifest, chunk_object, hex, manifest_object};
use super::{BackupSummary, EngineError, EngineSettings, Progress};
use crate::backup::ObjectStore;
use crate::device::{Volume, is_zero};

/// The first failure of a pipeline, and the flag that tells every stage to stop working.
#[derive(Default)]
pub(super) struct Failure {
    abort: AtomicBool,
    first: Mutex<Option<EngineError>>,
}

impl Failure {
    pub(super) fn set(&self, e: EngineError) {
        lock(&self.first).get_or_insert(e);
        self.abort.store(true, Ordering::Relaxed);
    }

    pub(super) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Raises `Cancelled` if `cancel` is set; true when the pipeline should stop.
    pub(super) fn check(&self, cancel: &AtomicBool) -> bool {
        if cancel.load(Ordering::Relaxed) {
            self.set(EngineError::Cancelled);
        }
        self.aborted()
    }

    pub(super) fn into_result(self) -> Result<(), EngineError> {
        match self.first.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A mutex's guard even if a panicking thread poisoned it (the data are plain values).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Receives from a channel shared by several threads.
pub(super) fn recv<T>(rx: &Mutex<Receiver<T>>) -> Option<T> {
    lock(rx).recv().ok()
}

/// Calls the progress callback when the percentage moves or a second has passed, and at
/// the end: often enough for a progress bar, rarely enough for a database row.
pub(super) struct Reporter<'a> {
    callback: &'a (dyn Fn(Progress) + Sync),
    progress: Progress,
    last: (u8, Instant),
}

impl<'a> Reporter<'a> {
    pub(super) fn new(callback: &'a (dyn Fn(Progress) + Sync), total_bytes: u64) -> Self {
        let progress = Progress {
            done_bytes: 0,
            total_bytes,
        };
        callback(progress);
        Self {
            callback,
            progress,
            last: (0, Instant::now()),
        }
    }

    pub(super) fn add(&mut self, bytes: u64) {
        self.progress.done_bytes += bytes;
        let percent = self.progress.percent();
        if percent != self.last.0 || self.last.1.elapsed() >= Duration::from_secs(1) {
            (self.callback)(self.progress);
            self.last = (percent, Instant::now());
        }
    }

    pub(super) fn finish(&mut self) {
        if self.progress.done_bytes != self.progress.total_bytes || self.last.0 != 100 {
            self.progress.done_bytes = self.progress.total_bytes;
            (self.callback)(self.progress);
        }
    }
}

/// What became of a run of the volume.
enum Done {
    /// Holes: never read.
    Hole(u64),
    /// A chunk that read as zeros.
    Zero(u64),
    /// A chunk the parent already holds.
    Unchanged(ChunkRef, u64),
    /// A chunk stored by this backup.
    Stored(ChunkRef, u64),
}

/// A chunk read from the volume.
struct Plain {
    index: u64,
    data: Vec<u8>,
}

/// A chunk compressed, ready to store.
struct Packed {
    index: u64,
    len: u64,
    sha256: String,
    data: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn backup(
    store: &dyn ObjectStore,
    backup_id: &str,
    source: &std::path::Path,
    size: u64,
    parent: Option<&Manifest>,
    settings: &EngineSettings,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<BackupSummary, EngineError> {
    let volume = Volume::source(source)?;
    if volume.size() < size {
        return Err(EngineError::SourceTooSmall {
            expected: size,
            actual: volume.size(),
        });
    }
    let chunk = settings.chunk_bytes as u64;
    let mut manifest = Manifest::new(backup_id, parent.map(|p| p.backup_id.as_str()), size, chunk);
    let failure = Failure::default();
    let buffers = settings.threads + 2;
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        free_tx.send(Vec::new()).expect("the pool has room");
    }
    let (plain_tx, plain_rx) = sync_channel::<Plain>(settings.threads);
    let (packed_tx, packed_rx) = sync_channel::<Packed>(settings.store_parallelism);
    let (done_tx, done_rx) = channel::<Done>();
    let (plain_rx, packed_rx) = (Mutex::new(plain_rx), Mutex::new(packed_rx));

    let mut reporter = Reporter::new(progress, size);
    let (mut chunks, mut stored_bytes, mut data_bytes, mut skipped) = (Vec::new(), 0, 0, 0);
    std::thread::scope(|s| {
        {
            let done_tx = done_tx.clone();
            let (volume, failure) = (&volume, &failure);
            s.spawn(move || {
                read(
                    volume, size, chunk, free_rx, plain_tx, done_tx, failure, cancel,
                )
            });
        }
        for _ in 0..settings.threads {
            let (free_tx, packed_tx, done_tx) =
                (free_tx.clone(), packed_tx.clone(), done_tx.clone());
            let (plain_rx, failure) = (&plain_rx, &failure);
            s.spawn(move || {
                let mut zstd = match zstd::bulk::Compressor::new(settings.zstd_level) {
                    Ok(z) => Some(z),
                    Err(e) => {
                        failure.set(EngineError::Settings(format!(
                            "zstd level {}: {e}",
                            settings.zstd_level
                        )));
                        None
                    }
                };
                while let Some(Plain { index, data }) = recv(plain_rx) {
                    let Some(zstd) = zstd.as_mut().filter(|_| !failure.aborted()) else {
                        let _ = free_tx.send(data);
                        continue;
                    };
                    let len = data.len() as u64;
                    if is_zero(&data) {
                        let _ = free_tx.send(data);
                        let _ = done_tx.send(Done::Zero(len));
                        continue;
                    }
                    let sha256 = hex(&Sha256::digest(&data));
                    let held = parent.and_then(|p| {
                        p.chunk(index)
                            .filter(|c| c.sha256 == sha256 && p.chunk_len(index) == len)
                    });
                    if let Some(held) = held {
                        let _ = free_tx.send(data);
                        let _ = done_tx.send(Done::Unchanged(held.clone(), len));
                        continue;
                    }
                    let packed = zstd.compress(&data);
                    let _ = free_tx.send(data);
                    match packed {
                        Ok(data) => {
                            let _ = packed_tx.send(Packed {
                                index,
                                len,
                                sha256,
                                data,
                            });
                        }
                        Err(e) => failure.set(EngineError::Settings(format!(
                            "zstd failed to compress chunk {index}: {e}"
                        ))),
                    }
                }
            });
        }
        for _ in 0..settings.store_parallelism {
            let done_tx = done_tx.clone();
            let (packed_rx, failure) = (&packed_rx, &failure);
            s.spawn(move || {
                while let Some(p) = recv(packed_rx) {
                    if failure.aborted() {
                        continue;
                    }
                    let object = chunk_object(backup_id, p.index);
                    match store.put(&object, &p.data) {
                        Ok(()) => {
                            let stored = ChunkRef {
                                index: p.index,
                                sha256: p.sha256,
                                object,
                                stored_bytes: p.data.len() as u64,
                            };
                            let _ = done_tx.send(Done::Stored(stored, p.len));
                        }
                        Err(e) => failure.set(EngineError::store(&object, backup_id, e)),
                    }
                }
            });
        }
        // Only the stages hold the channels now, so each ends when the one before it has.
        drop((free_tx, packed_tx, done_tx));
        for done in done_rx {
            let bytes = match done {
                Done::Hole(n) | Done::Zero(n) => {
                    skipped += n;
                    n
                }
                Done::Unchanged(c, n) => {
                    chunks.push(c);
                    data_bytes += n;
                    n
                }
                Done::Stored(c, n) => {
                    stored_bytes += c.stored_bytes;
                    chunks.push(c);
                    data_bytes += n;
                    n
                }
            };
            reporter.add(bytes);
        }
    });
    failure.into_result()?;
    if cancel.load(Ordering::Relaxed) {
        return Err(EngineError::Cancelled);
    }
    let objects = chunks
        .iter()
        .filter(|c| c.object.starts_with(&format!("{backup_id}/")))
        .count() as u64;
    chunks.sort_unstable_by_key(|c| c.index);
    manifest.chunks = chunks;
    manifest.data_bytes = data_bytes;
    manifest.stored_bytes = stored_bytes;
    let encoded = manifest.encode();
    let object = manifest_object(backup_id);
    store
        .put(&object, &encoded)
        .map_err(|e| EngineError::store(&object, backup_id, e))?;
    reporter.finish();
    Ok(BackupSummary {
        manifest,
        stored_bytes: stored_bytes + encoded.len() as u64,
        objects: objects + 1,
        skipped_zero_bytes: skipped,
    })
}

/// The reader: every chunk that may hold data, in order, into `plain`.
#[allow(clippy::too_many_arguments)]
fn read(
    volume: &Volume,
    size: u64,
    chunk: u64,
    free: Receiver<Vec<u8>>,
    plain: SyncSender<Plain>,
    done: std::sync::mpsc::Sender<Done>,
    failure: &Failure,
    cancel: &AtomicBool,
) {
    let mut pos = 0;
    while pos < size {
        if failure.check(cancel) {
            return;
        }
        let start = match volume.next_data(pos) {
            Ok(Some(off)) if off < size => off / chunk * chunk,
            Ok(_) => size,
            Err(e) => return failure.set(e.into()),
        };
        if start > pos {
            let _ = done.send(Done::Hole(start - pos));
        }
        if start >= size {
            return;
        }
        let len = chunk.min(size - start);
        let Ok(mut data) = free.recv() else { return };
        data.resize(len as usize, 0);
        if let Err(e) = volume.read_at(&mut data, start) {
            return failure.set(e.into());
        }
        if plain
            .send(Plain {
                index: start / chunk,
                data,
            })
            .is_err()
        {
            return;
        }
        pos = start + len;
    }
}
