//! The restore pipeline: fetch, decompress and verify, write.
//!
//! The zero chunks go first, from the calling thread: each run of them becomes one hole
//! (a file) or one zero-out (a device). Then `store_parallelism` **fetchers** get the
//! stored chunks (in index order, claimed one at a time) and hand them through a channel
//! of `threads` places to `threads` **writers**, which decompress each into their own
//! buffer, check its length and SHA-256 against the manifest, and write it at its offset.
//! At most `store_parallelism + threads` compressed chunks (fetching, queued) and
//! `threads` plain ones exist at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel};

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, hex};
use super::pipeline::{Failure, Reporter, recv};
use super::{EngineError, EngineSettings, Progress, RestoreSummary};
use crate::backup::ObjectStore;
use crate::device::Volume;

pub(super) fn restore(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    target: &std::path::Path,
    settings: &EngineSettings,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<RestoreSummary, EngineError> {
    let backup_id = manifest.backup_id.as_str();
    let volume = Volume::target(target)?;
    if volume.size() < manifest.size_bytes {
        return Err(EngineError::TargetTooSmall {
            backup_id: backup_id.to_string(),
            needed: manifest.size_bytes,
            actual: volume.size(),
        });
    }
    let mut reporter = Reporter::new(progress, manifest.size_bytes);
    let failure = Failure::default();

    // Zero runs: the gaps between stored chunks, and after the last one.
    let chunk = manifest.chunk_bytes;
    let mut next = 0;
    let ends = manifest
        .chunks
        .iter()
        .map(|c| c.index)
        .chain([manifest.chunk_count()]);
    for index in ends {
        if index > next {
            if cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let start = next * chunk;
            let len = (index * chunk).min(manifest.size_bytes) - start;
            volume.zero(start, len)?;
            reporter.add(len);
        }
        next = index + 1;
    }

    let claimed = AtomicUsize::new(0);
    let (fetched_tx, fetched_rx) = sync_channel::<(usize, Vec<u8>)>(settings.threads);
    let fetched_rx = Mutex::new(fetched_rx);
    let (done_tx, done_rx) = channel::<u64>();
    std::thread::scope(|s| {
        for _ in 0..settings.store_parallelism.min(manifest.chunks.len()) {
            let fetched_tx = fetched_tx.clone();
            let (claimed, failure) = (&claimed, &failure);
            s.spawn(move || {
                while !failure.check(cancel) {
                    let i = claimed.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = manifest.chunks.get(i) else {
                        return;
                    };
                    match store.get(&c.object) {
                        Ok(data) => {
                            if fetched_tx.send((i, data)).is_err() {
                                return;
                            }
                        }
                        Err(e) => failure.set(EngineError::store(&c.object, backup_id, e)),
                    }
                }
            });
        }
        for _ in 0..settings.threads {
            let done_tx = done_tx.clone();
            let (fetched_rx, failure, volume) = (&fetched_rx, &failure, &volume);
            s.spawn(move || {
                let mut zstd = zstd::bulk::Decompressor::new().ok();
                let mut plain = Vec::new();
                while let Some((i, data)) = recv(fetched_rx) {
                    if failure.aborted() {
                        continue;
                    }
                    let c = &manifest.chunks[i];
                    let len = manifest.chunk_len(c.index);
                    let corrupt = |reason: String| EngineError::Corrupt {
                        backup_id: backup_id.to_string(),
                        object: c.object.clone(),
                        reason,
                    };
                    let Some(zstd) = zstd.as_mut() else {
                        failure.set(EngineError::Settings("zstd could not start".into()));
                        continue;
                    };
                    // One byte of room beyond the chunk, so a longer object is caught.
                    plain.resize(len as usize + 1, 0);
                    let checked = match zstd.decompress_to_buffer(&data, &mut plain[..]) {
                        Err(e) => Err(corrupt(format!("it does not decompress: {e}"))),
                        Ok(n) if n as u64 != len => Err(corrupt(format!(
                            "it holds {n} bytes where the chunk has {len}"
                        ))),
                        Ok(n) if hex(&Sha256::digest(&plain[..n])) != c.sha256 => {
                            Err(corrupt("its SHA-256 does not match the manifest".into()))
                        }
                        Ok(n) => volume
                            .write_at(&plain[..n], c.index * chunk)
                            .map_err(Into::into),
                    };
                    match checked {
                        Ok(()) => {
                            let _ = done_tx.send(len);
                        }
                        Err(e) => failure.set(e),
                    }
                }
            });
        }
        drop((fetched_tx, done_tx));
        for bytes in done_rx {
            reporter.add(bytes);
        }
    });
    failure.into_result()?;
    volume.sync()?;
    reporter.finish();
    Ok(RestoreSummary {
        bytes: manifest.size_bytes,
    })
}
