//! The engine against an in-memory object store (a test double; the real stores are the
//! `backup-driver` components behind `backup::objects`).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use super::*;
use crate::backup::{ObjectInfo, ObjectStore, StoreError};

/// Objects in a map; counts puts so tests can say what a backup stored.
#[derive(Default)]
pub(crate) struct MemStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    puts: AtomicUsize,
}

impl MemStore {
    fn names(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
    fn under(&self, id: &str) -> usize {
        self.names()
            .iter()
            .filter(|n| n.starts_with(&format!("{id}/")))
            .count()
    }
    fn set(&self, name: &str, data: Vec<u8>) {
        self.objects.lock().unwrap().insert(name.to_string(), data);
    }
    fn object(&self, name: &str) -> Vec<u8> {
        self.objects.lock().unwrap()[name].clone()
    }
}

impl ObjectStore for MemStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.set(name, data.to_vec());
        Ok(())
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let objects = self.objects.lock().unwrap();
        objects
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(name);
        Ok(())
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, d)| ObjectInfo {
                name: n.clone(),
                size: d.len() as u64,
            })
            .collect())
    }
}

const CHUNK: usize = 64 << 10;

fn settings() -> EngineSettings {
    EngineSettings {
        chunk_bytes: CHUNK,
        zstd_level: 1,
        threads: 3,
        store_parallelism: 2,
    }
}

/// Deterministic bytes: half random, half repetitive text, like a volume's.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for (i, b) in buf.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = if (i / 4096) % 2 == 0 {
            x as u8
        } else {
            b"ashlar volume "[i % 14]
        };
    }
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(&mut v, seed);
    v
}

fn sha(path: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut h).unwrap();
    format!("{:x}", h.finalize())
}

fn no_progress(_: Progress) {}

fn run_backup(store: &MemStore, id: &str, src: &Path, parent: Option<&Manifest>) -> BackupSummary {
    let size = std::fs::metadata(src).unwrap().len();
    let cancel = AtomicBool::new(false);
    backup(
        store,
        id,
        src,
        size,
        parent,
        &settings(),
        &no_progress,
        &cancel,
    )
    .unwrap()
}

fn run_restore(store: &MemStore, id: &str, dst: &Path) -> Result<RestoreSummary, EngineError> {
    let cancel = AtomicBool::new(false);
    restore(store, id, dst, &settings(), &no_progress, &cancel)
}

/// A fresh sparse file of `len` bytes.
fn sparse(path: &Path, len: u64) {
    File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn random_data_restores_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    // Not a whole number of chunks: the last one is short.
    std::fs::write(&src, bytes(20 * CHUNK + 12_345, 1)).unwrap();
    let store = MemStore::default();
    let reports = Mutex::new(Vec::new());
    let cancel = AtomicBool::new(false);
    let size = std::fs::metadata(&src).unwrap().len();
    let summary = backup(
        &store,
        "b1",
        &src,
        size,
        None,
        &settings(),
        &|p| reports.lock().unwrap().push(p),
        &cancel,
    )
    .unwrap();
    assert_eq!(summary.objects, 22, "21 chunks and the manifest");
    assert_eq!(store.under("b1"), 22);
    assert_eq!(summary.skipped_zero_bytes, 0);
    assert!(summary.stored_bytes < size, "half the data compresses");
    let m = read_manifest(&store, "b1").unwrap();
    assert_eq!(m, summary.manifest);
    assert_eq!(
        (m.format, m.size_bytes, m.chunks.len()),
        (MANIFEST_FORMAT, size, 21)
    );
    let reports = reports.into_inner().unwrap();
    assert_eq!(reports.first().unwrap().done_bytes, 0);
    assert_eq!(reports.last().unwrap().done_bytes, size);
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].done_bytes <= w[1].done_bytes)
    );

    sparse(&dst, size);
    let restored = run_restore(&store, "b1", &dst).unwrap();
    assert_eq!(restored.bytes, size);
    assert_eq!(sha(&dst), sha(&src));
}

#[test]
fn a_sparse_file_is_read_and_restored_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let size = 4096 * CHUNK as u64; // 256 MiB virtual
    sparse(&src, size);
    let f = File::options().write(true).open(&src).unwrap();
    let data = bytes(3 * CHUNK, 2);
    f.write_all_at(&data, 100 * CHUNK as u64 + 777).unwrap(); // spans 4 chunks
    f.write_all_at(&data[..1000], size - 1000).unwrap(); // the last chunk
    // A chunk that is allocated but holds zeros: read, found zero, not stored.
    f.write_all_at(&vec![0; CHUNK], 2000 * CHUNK as u64)
        .unwrap();
    f.sync_all().unwrap();
    drop(f);

    let store = MemStore::default();
    let summary = run_backup(&store, "s1", &src, None);
    assert_eq!(summary.manifest.chunks.len(), 5);
    assert_eq!(summary.objects, 6);
    assert_eq!(summary.skipped_zero_bytes, size - 5 * CHUNK as u64);

    sparse(&dst, size);
    run_restore(&store, "s1", &dst).unwrap();
    assert_eq!(sha(&dst), sha(&src));
    let blocks = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
    // Five chunks of data at most, not the file's 256 MiB.
    assert!(
        blocks(&dst) <= 5 * CHUNK as u64 + 65536,
        "restored file allocates {} bytes",
        blocks(&dst)
    );
    assert!(blocks(&dst) <= blocks(&src) + 5 * CHUNK as u64);
}

#[test]
fn a_chain_of_incrementals_stores_only_changed_chunks_and_restores_each_link() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let chunks = 40;
    let size = (chunks * CHUNK) as u64;
    sparse(&src, size);
    let f = File::options().write(true).open(&src).unwrap();
    f.write_all_at(&bytes(30 * CHUNK, 3), 0).unwrap(); // chunks 30..40 are a hole
    let store = MemStore::default();
    let mut links = vec![("full".to_string(), sha(&src))];
    let full = run_backup(&store, "full", &src, None);
    assert_eq!(full.objects, 31);
    let mut parent = full.manifest;
    // Each change: (offset, bytes), and how many chunks it touches.
    type Writes<'a> = &'a [(usize, Vec<u8>)];
    let changes: [(Writes, u64); 3] = [
        // one byte in chunk 5, and chunk 35 (a hole) gets data
        (
            &[(5 * CHUNK + 9, vec![0xAB]), (35 * CHUNK, bytes(100, 4))],
            2,
        ),
        // chunks 10 and 11 rewritten; chunk 12 zeroed (stored nowhere now)
        (
            &[
                (10 * CHUNK, bytes(2 * CHUNK, 5)),
                (12 * CHUNK, vec![0; CHUNK]),
            ],
            2,
        ),
        // chunk 5 again, and the last byte of the volume
        (
            &[(5 * CHUNK, bytes(10, 6)), (chunks * CHUNK - 1, vec![1])],
            2,
        ),
    ];
    for (n, (writes, changed)) in changes.iter().enumerate() {
        for (off, data) in writes.iter() {
            f.write_all_at(data, *off as u64).unwrap();
        }
        let id = format!("inc{n}");
        let s = run_backup(&store, &id, &src, Some(&parent));
        assert_eq!(
            s.objects,
            changed + 1,
            "{id} stores only its changed chunks"
        );
        assert_eq!(store.under(&id) as u64, changed + 1);
        assert_eq!(
            s.manifest.parent_id.as_deref(),
            Some(parent.backup_id.as_str())
        );
        links.push((id, sha(&src)));
        parent = s.manifest;
    }
    // The newest manifest names objects of every link that still holds a current chunk.
    let referenced = parent.referenced_backups();
    assert!(referenced.contains("full") && referenced.contains("inc2"));
    assert!(
        parent.chunk(12).is_none(),
        "a zeroed chunk is stored nowhere"
    );

    for (id, want) in &links {
        let dst = dir.path().join(format!("restored-{id}"));
        sparse(&dst, size);
        run_restore(&store, id, &dst).unwrap();
        assert_eq!(&sha(&dst), want, "restore of {id}");
    }
}

#[test]
fn restoring_onto_old_data_gives_the_backups_bytes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let size = 16 * CHUNK as u64;
    sparse(&src, size);
    File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .write_all_at(&bytes(3 * CHUNK, 7), 4 * CHUNK as u64)
        .unwrap();
    let store = MemStore::default();
    run_backup(&store, "b", &src, None);
    // The target is larger and full of other data: the backup's bytes over its first
    // `size` bytes, zeros where the backup has holes, the rest left alone.
    let old = bytes(20 * CHUNK, 8);
    std::fs::write(&dst, &old).unwrap();
    run_restore(&store, "b", &dst).unwrap();
    let got = std::fs::read(&dst).unwrap();
    assert_eq!(got[..size as usize], std::fs::read(&src).unwrap()[..]);
    assert_eq!(got[size as usize..], old[size as usize..]);
}

#[test]
fn a_target_smaller_than_the_backup_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::write(&src, bytes(4 * CHUNK, 9)).unwrap();
    let store = MemStore::default();
    run_backup(&store, "b", &src, None);
    sparse(&dst, 4 * CHUNK as u64 - 1);
    let err = run_restore(&store, "b", &dst).unwrap_err();
    assert!(matches!(err, EngineError::TargetTooSmall { .. }), "{err}");
    assert!(err.to_string().contains("at least as large"), "{err}");
}

#[test]
fn a_corrupt_object_fails_the_restore_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::write(&src, bytes(8 * CHUNK, 10)).unwrap();
    let store = MemStore::default();
    let m = run_backup(&store, "b", &src, None).manifest;
    sparse(&dst, 8 * CHUNK as u64);

    // Garbage: it does not decompress.
    let victim = m.chunks[3].object.clone();
    let good = store.object(&victim);
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xFF;
    bad.truncate(bad.len() - 3);
    store.set(&victim, bad);
    let err = run_restore(&store, "b", &dst).unwrap_err();
    assert!(
        matches!(&err, EngineError::Corrupt { object, .. } if *object == victim),
        "{err}"
    );
    assert!(err.to_string().contains(&victim) && err.to_string().contains("backup b"));

    // Valid zstd of other bytes: only the hash tells.
    let other = zstd::bulk::compress(&bytes(CHUNK, 11), 1).unwrap();
    store.set(&victim, other);
    let err = run_restore(&store, "b", &dst).unwrap_err();
    assert!(
        matches!(&err, EngineError::Corrupt { object, reason, .. } if *object == victim && reason.contains("SHA-256")),
        "{err}"
    );

    store.set(&victim, good);
    run_restore(&store, "b", &dst).unwrap();
    assert_eq!(sha(&dst), sha(&src));
}

#[test]
fn a_missing_object_fails_the_restore_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::write(&src, bytes(8 * CHUNK, 12)).unwrap();
    let store = MemStore::default();
    let m = run_backup(&store, "b", &src, None).manifest;
    let victim = m.chunks[6].object.clone();
    store.delete(&victim).unwrap();
    sparse(&dst, 8 * CHUNK as u64);
    let err = run_restore(&store, "b", &dst).unwrap_err();
    assert!(
        matches!(&err, EngineError::Missing { object, .. } if *object == victim),
        "{err}"
    );
    assert!(err.to_string().contains(&victim), "{err}");

    // No manifest: the backup is missing as a whole.
    store.delete("b/manifest").unwrap();
    let err = run_restore(&store, "b", &dst).unwrap_err();
    assert!(
        matches!(&err, EngineError::Missing { object, .. } if object == "b/manifest"),
        "{err}"
    );
}

#[test]
fn cancel_stops_a_backup_and_leaves_no_objects() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, bytes(200 * CHUNK, 13)).unwrap();
    let store = MemStore::default();
    let cancel = AtomicBool::new(false);
    // Cancel once the first chunks are done: the event, not a timer.
    let err = backup(
        &store,
        "c",
        &src,
        200 * CHUNK as u64,
        None,
        &settings(),
        &|p| {
            if p.done_bytes > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Cancelled), "{err}");
    assert!(store.puts.load(Ordering::Relaxed) < 200, "it stopped early");
    assert!(store.names().is_empty(), "left {:?}", store.names());

    // A restore too.
    cancel.store(false, Ordering::Relaxed);
    run_backup(&store, "b", &src, None);
    let dst = dir.path().join("dst");
    sparse(&dst, 200 * CHUNK as u64);
    let err = restore(
        &store,
        "b",
        &dst,
        &settings(),
        &|p| {
            if p.done_bytes > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Cancelled), "{err}");
}

#[test]
fn delete_leaves_nothing_and_spares_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, bytes(6 * CHUNK, 14)).unwrap();
    let store = MemStore::default();
    let full = run_backup(&store, "full", &src, None).manifest;
    File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .write_all_at(b"changed", 0)
        .unwrap();
    run_backup(&store, "inc", &src, Some(&full));
    assert_eq!(delete(&store, "inc").unwrap(), 2);
    assert_eq!(store.under("inc"), 0);
    assert_eq!(store.under("full"), 7);
    assert_eq!(delete(&store, "full").unwrap(), 7);
    assert!(store.names().is_empty(), "left {:?}", store.names());
    assert_eq!(delete(&store, "full").unwrap(), 0, "deleting again is fine");
}

#[test]
fn orphans_are_the_prefixes_no_backup_owns() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, bytes(3 * CHUNK, 15)).unwrap();
    let store = MemStore::default();
    run_backup(&store, "kept", &src, None);
    // What a crash leaves: chunks, no manifest.
    store.set("crashed/chunk-0000000000", vec![1]);
    store.set("crashed/chunk-0000000001", vec![2]);
    store.set("gone/manifest", vec![3]);
    let found = orphans(&store, &|id| id == "kept").unwrap();
    assert_eq!(found, ["crashed", "gone"]);
    for id in found {
        delete(&store, &id).unwrap();
    }
    assert_eq!(store.names().len(), 4);
    assert!(orphans(&store, &|id| id == "kept").unwrap().is_empty());
}

#[test]
fn a_manifest_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, bytes(CHUNK, 16)).unwrap();
    let store = MemStore::default();
    let mut m = run_backup(&store, "b", &src, None).manifest;
    m.format = MANIFEST_FORMAT + 1;
    store.set("b/manifest", serde_json::to_vec(&m).unwrap());
    let err = read_manifest(&store, "b").unwrap_err();
    assert!(err.to_string().contains("newer release"), "{err}");
    store.set("b/manifest", b"{not json".to_vec());
    assert!(matches!(
        read_manifest(&store, "b"),
        Err(EngineError::Manifest { .. })
    ));
}

#[test]
fn errors_never_show_a_host_path_to_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-volume");
    let store = MemStore::default();
    let cancel = AtomicBool::new(false);
    let err = backup(
        &store,
        "b",
        &missing,
        1,
        None,
        &settings(),
        &no_progress,
        &cancel,
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(!shown.contains(dir.path().to_str().unwrap()), "{shown}");
    assert!(shown.contains("opening the volume"), "{shown}");
    assert!(
        err.internal().contains("no-such-volume"),
        "{}",
        err.internal()
    );

    let src = dir.path().join("short");
    std::fs::write(&src, [1; 10]).unwrap();
    let err = backup(
        &store,
        "b",
        &src,
        11,
        None,
        &settings(),
        &no_progress,
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::SourceTooSmall { .. }), "{err}");
    let err = backup(
        &store,
        "../x",
        &src,
        10,
        None,
        &settings(),
        &no_progress,
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Settings(_)), "{err}");
}

#[test]
fn a_store_failure_names_the_object_and_takes_back_the_chunks() {
    struct Flaky(MemStore);
    impl ObjectStore for Flaky {
        fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
            if name.ends_with("chunk-0000000004") {
                return Err(StoreError::Failed("disk full".into()));
            }
            self.0.put(name, data)
        }
        fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
            self.0.get(name)
        }
        fn delete(&self, name: &str) -> Result<(), StoreError> {
            self.0.delete(name)
        }
        fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
            self.0.list(prefix)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, bytes(30 * CHUNK, 17)).unwrap();
    let store = Flaky(MemStore::default());
    let cancel = AtomicBool::new(false);
    let err = backup(
        &store,
        "f",
        &src,
        30 * CHUNK as u64,
        None,
        &settings(),
        &no_progress,
        &cancel,
    )
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Store { object, .. } if object == "f/chunk-0000000004"),
        "{err}"
    );
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(store.0.names().is_empty(), "left {:?}", store.0.names());
}
