//! The backup engine's figures, each against a baseline measured in the same run:
//!
//! 1. a full backup of mixed compressible data (MB/s of volume) against `zstd -1 -T0`
//!    over the same bytes (goal: at least 0.8 of its speed);
//! 2. a 1 TiB-virtual sparse file holding some data against a dense file of the same
//!    data (goal: at most 1.2× its time);
//! 3. an incremental after 1% of the chunks changed against the full (goal: at most
//!    0.05×, in bytes stored; its time is printed too);
//! 4. a restore (MB/s), checked byte-identical.
//!
//! Scale (this disk is small and shared): `ASHLAR_BENCH_BACKUP_GIB` (mixed data, default
//! 4), `ASHLAR_BENCH_SPARSE_GIB` (data in the sparse and dense files, default 20) and
//! `ASHLAR_BENCH_VIRTUAL_GIB` (the sparse file's size, default 1024). Files go under
//! `ASHLAR_BENCH_DIR` (default the system temp dir) and are removed at the end.
//!
//! The store is pluggable: `ASHLAR_BENCH_BACKUP_STORE=dir` (default: objects as files,
//! written to a temporary name, fsynced, renamed and the directory fsynced, as the
//! `backup-posix` component does), `posix` (the bundled `backup-posix` component itself,
//! loaded through the runtime as `serve` loads it, each object crossing into the sandbox)
//! or `null` (discards, to see the engine alone). Engine
//! settings: `ASHLAR_BENCH_CHUNK_MIB`, `ASHLAR_BENCH_THREADS`, `ASHLAR_BENCH_LEVEL`,
//! `ASHLAR_BENCH_STORE_PARALLELISM` (defaults: `EngineSettings::default()`).
//! `ASHLAR_BENCH_ONLY=mixed,sparse` runs only those parts.
//!
//! Run with `cargo bench -p ashlar --bench backup`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ashlar::backup::engine::{self, EngineSettings, Progress};
use ashlar::backup::{ObjectInfo, ObjectStore, StoreError};
use sha2::{Digest, Sha256};

const GIB: u64 = 1 << 30;
const MB: f64 = 1e6;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn runs(part: &str) -> bool {
    std::env::var("ASHLAR_BENCH_ONLY")
        .ok()
        .is_none_or(|o| o.split(',').any(|w| w.trim() == part))
}

/// Objects as files under a directory, durable as the `backup-posix` component makes
/// them: a temporary file, fsynced, renamed over the name, the directory fsynced.
struct DirStore {
    root: PathBuf,
    seq: AtomicU64,
}

impl DirStore {
    fn new(root: PathBuf) -> Self {
        std::fs::create_dir_all(&root).unwrap();
        Self {
            root,
            seq: AtomicU64::new(0),
        }
    }
}

fn failed(e: std::io::Error) -> StoreError {
    StoreError::Failed(e.to_string())
}

impl ObjectStore for DirStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(name);
        let dir = path.parent().unwrap();
        std::fs::create_dir_all(dir).map_err(failed)?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".tmp-{n}"));
        let mut f = File::create(&temp).map_err(failed)?;
        f.write_all(data).map_err(failed)?;
        f.sync_all().map_err(failed)?;
        std::fs::rename(&temp, &path).map_err(failed)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(failed)
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        std::fs::read(self.root.join(name)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(name.to_string()),
            _ => failed(e),
        })
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.root.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(e)),
            _ => Ok(()),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(&self.root).map_err(failed)? {
            let dir = dir.map_err(failed)?;
            for f in std::fs::read_dir(dir.path()).map_err(failed)? {
                let f = f.map_err(failed)?;
                let name = format!(
                    "{}/{}",
                    dir.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                );
                if name.starts_with(prefix) && !name.contains("/.tmp-") {
                    let size = f.metadata().map_err(failed)?.len();
                    out.push(ObjectInfo { name, size });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Keeps the manifests (a restore needs them) and only the size of everything else.
#[derive(Default)]
struct NullStore {
    manifests: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl ObjectStore for NullStore {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        if name.ends_with("/manifest") {
            self.manifests
                .lock()
                .unwrap()
                .insert(name.into(), data.to_vec());
        }
        Ok(())
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let m = self.manifests.lock().unwrap();
        m.get(name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(name.into()))
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.manifests.lock().unwrap().remove(name);
        Ok(())
    }
    fn list(&self, _: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        Ok(Vec::new())
    }
}

/// Which store the figures go through.
/// The bundled `backup-posix` component on `dir`, loaded as `serve` loads the embedded
/// default store.
fn posix_component(dir: &Path) -> Box<dyn ObjectStore> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let backup = ashlar::config::Config::default_backup(dir);
    std::fs::create_dir_all(dir.join("backups")).unwrap();
    let container = backup.container.clone();
    let cfg = ashlar::config::Config {
        data_dir: dir.to_path_buf(),
        backup: Some(backup),
        ..Default::default()
    };
    let store = rt.block_on(async {
        let runtime = ashlar::runtime::Runtime::new(None).unwrap();
        ashlar::server::load_backup_store(&runtime, &cfg)
            .await
            .unwrap()
            .expect("a backup store")
    });
    let pool = store.slot.driver();
    // The runtime's blocking calls need no reactor, but keep it for the pool's lifetime.
    std::mem::forget(rt);
    Box::new(ashlar::backup::objects::DriverObjects::fixed(
        pool, container,
    ))
}

fn make_store(dir: &Path) -> (Box<dyn ObjectStore>, &'static str) {
    match std::env::var("ASHLAR_BENCH_BACKUP_STORE").as_deref() {
        Ok("null") => (Box::new(NullStore::default()), "null (discards chunks)"),
        Ok("posix") => (
            posix_component(dir),
            "posix (the bundled backup-posix component, through the runtime)",
        ),
        _ => (
            Box::new(DirStore::new(dir.join("store"))),
            "dir (fsynced files, as backup-posix)",
        ),
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "volume",
    "backup",
    "snapshot",
    "the",
    "of",
    "and",
    "a",
    "to",
    "in",
    "is",
    "block",
    "storage",
    "driver",
    "host",
    "error",
    "available",
    "in-use",
    "attach",
    "detach",
    "qos",
    "2026-12-01",
    "INFO",
    "DEBUG",
    "request",
    "id",
    "project",
    "tenant",
    "GET",
    "POST",
    "200",
    "404",
    "ashlar",
    "cinder",
    "chunk",
    "zstd",
    "manifest",
    "restore",
    "object",
];

/// One MiB of volume-like data: a quarter random (media, ciphertext, compressed files),
/// half text (logs, documents), a quarter fixed-width records (databases).
fn mixed_block(buf: &mut [u8], rng: &mut Rng, n: u64) {
    match n % 4 {
        0 => rng.fill(buf),
        1 | 2 => {
            let mut i = 0;
            while i < buf.len() {
                let r = rng.next();
                let w = WORDS[(r % WORDS.len() as u64) as usize].as_bytes();
                let sep: &[u8] = if r >> 60 == 0 { b"\n" } else { b" " };
                for &b in w.iter().chain(sep) {
                    if i < buf.len() {
                        buf[i] = b;
                        i += 1;
                    }
                }
            }
        }
        _ => {
            for (k, rec) in buf.chunks_mut(64).enumerate() {
                let r = rng.next();
                let line = format!(
                    "{:016x}|{:08}|{:>10}|{:<20}|",
                    n * 16384 + k as u64,
                    r % 100_000_000,
                    (r >> 20) % 1000,
                    WORDS[(r >> 40) as usize % WORDS.len()]
                );
                let l = line.len().min(rec.len());
                rec[..l].copy_from_slice(&line.as_bytes()[..l]);
                rec[l..].fill(b' ');
            }
        }
    }
}

/// Writes `bytes` of mixed data at `offset` of `file`.
fn write_mixed(file: &File, offset: u64, bytes: u64, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < bytes {
        let n = (bytes - done).min(buf.len() as u64) as usize;
        mixed_block(&mut buf[..n], &mut rng, (offset + done) >> 20);
        file.write_all_at(&buf[..n], offset + done).unwrap();
        done += n as u64;
    }
}

fn sha(path: &Path, len: u64) -> String {
    let f = File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], off).unwrap();
        h.update(&buf[..n]);
        off += n as u64;
    }
    format!("{:x}", h.finalize())
}

/// CPU seconds used so far by this process, and by its children waited for (zstd), from
/// `/proc/self/stat` (in USER_HZ, always 100 on Linux). On a machine other work shares,
/// CPU time per byte is steadier than wall time.
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest
        .split(' ')
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    ((f[0] + f[1]) / 100.0, (f[2] + f[3]) / 100.0)
}

fn settings() -> EngineSettings {
    let mut s = EngineSettings::default();
    if let Some(mib) = env_usize("ASHLAR_BENCH_CHUNK_MIB") {
        s.chunk_bytes = mib << 20;
    }
    if let Some(n) = env_usize("ASHLAR_BENCH_THREADS") {
        s.threads = n;
    }
    if let Some(n) = env_usize("ASHLAR_BENCH_LEVEL") {
        s.zstd_level = n as i32;
    }
    if let Some(n) = env_usize("ASHLAR_BENCH_STORE_PARALLELISM") {
        s.store_parallelism = n;
    }
    s
}

fn no_progress(_: Progress) {}

/// Seconds a backup of `path` takes, and its summary.
fn time_backup(
    store: &dyn ObjectStore,
    id: &str,
    path: &Path,
    size: u64,
    parent: Option<&engine::Manifest>,
) -> (f64, engine::BackupSummary) {
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let s = engine::backup(
        store,
        id,
        path,
        size,
        parent,
        &settings(),
        &no_progress,
        &cancel,
    )
    .unwrap_or_else(|e| panic!("backup {id}: {}", e.internal()));
    (t.elapsed().as_secs_f64(), s)
}

fn main() {
    let base = std::env::var_os("ASHLAR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mixed_gib = env_f64("ASHLAR_BENCH_BACKUP_GIB", 4.0);
    let sparse_gib = env_f64("ASHLAR_BENCH_SPARSE_GIB", 20.0);
    let virtual_gib = env_f64("ASHLAR_BENCH_VIRTUAL_GIB", 1024.0);
    let (store, store_name) = make_store(dir.path());
    let s = settings();
    println!(
        "backup bench: mixed {mixed_gib} GiB, sparse {sparse_gib} GiB of data in {virtual_gib} GiB virtual; store {store_name}; \
         chunk {} MiB, zstd level {}, {} threads, {} store calls; {} cores",
        s.chunk_bytes >> 20,
        s.zstd_level,
        s.threads,
        s.store_parallelism,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if runs("mixed") {
        mixed(dir.path(), &*store, (mixed_gib * GIB as f64) as u64);
    }
    if runs("sparse") {
        sparse(
            dir.path(),
            &*store,
            (sparse_gib * GIB as f64) as u64,
            (virtual_gib * GIB as f64) as u64,
        );
    }
}

fn mixed(dir: &Path, store: &dyn ObjectStore, size: u64) {
    let src = dir.join("mixed");
    let file = File::create(&src).unwrap();
    write_mixed(&file, 0, size, 42);
    file.sync_all().unwrap();

    // The baselines: zstd's own multithreaded compression over the same (cached) bytes,
    // into nothing, and into a file made durable as a store makes its objects.
    let zstd = |out: &Path| {
        let t = Instant::now();
        let status = Command::new("zstd")
            .args(["-1", "-T0", "-q", "-f"])
            .arg(&src)
            .arg("-o")
            .arg(out)
            .stdout(Stdio::null())
            .status()
            .expect("zstd runs");
        assert!(status.success());
        if out != Path::new("/dev/null") {
            File::open(out).unwrap().sync_all().unwrap();
            std::fs::remove_file(out).unwrap();
        }
        size as f64 / MB / t.elapsed().as_secs_f64()
    };
    let before = cpu().1;
    let zstd_null = zstd(Path::new("/dev/null"));
    let zstd_cpu = cpu().1 - before;
    let before = cpu().0;
    let (alone_secs, _) = time_backup(&NullStore::default(), "alone", &src, size, None);
    let alone_cpu = cpu().0 - before;
    let alone = size as f64 / MB / alone_secs;
    println!(
        "full backup, {:.2} GiB mixed, engine alone (chunks discarded): {alone:.0} MB/s vs zstd -1 -T0 to /dev/null {zstd_null:.0} MB/s: {:.2} of zstd (goal >= 0.8)",
        size as f64 / GIB as f64,
        alone / zstd_null
    );
    println!(
        "  CPU: engine {:.2} s per GiB vs zstd {:.2} s per GiB: the engine's speed when it has the cores to itself is {:.2} of zstd's",
        alone_cpu * GIB as f64 / size as f64,
        zstd_cpu * GIB as f64 / size as f64,
        zstd_cpu / alone_cpu
    );
    let zstd_file = zstd(&dir.join("zstd.out"));
    let (full_secs, full) = time_backup(store, "full", &src, size, None);
    let full_mbs = size as f64 / MB / full_secs;
    println!(
        "full backup into the store: {full_mbs:.0} MB/s ({full_secs:.2} s, stored {:.2} GiB, ratio {:.2}) vs zstd -1 -T0 to an fsynced file {zstd_file:.0} MB/s: {:.2} of zstd",
        full.stored_bytes as f64 / GIB as f64,
        size as f64 / full.stored_bytes as f64,
        full_mbs / zstd_file
    );

    // 1% of the chunks each get a 4 KiB write.
    let chunk = full.manifest.chunk_bytes;
    let chunks = size.div_ceil(chunk);
    let changed = (chunks / 100).max(1);
    let mut rng = Rng(7);
    let mut block = vec![0u8; 4096];
    for k in 0..changed {
        rng.fill(&mut block);
        let index = k * chunks / changed;
        let off = (index * chunk + rng.next() % (chunk - 4096).max(1)).min(size - 4096);
        file.write_all_at(&block, off).unwrap();
    }
    file.sync_all().unwrap();
    let (inc_secs, inc) = time_backup(store, "inc", &src, size, Some(&full.manifest));
    println!(
        "incremental, {changed} of {chunks} chunks changed: stored {:.1} MiB in {} objects = {:.4}x the full's bytes (goal <= 0.05); time {inc_secs:.2} s = {:.2}x the full's",
        inc.stored_bytes as f64 / (1 << 20) as f64,
        inc.objects,
        inc.stored_bytes as f64 / full.stored_bytes as f64,
        inc_secs / full_secs
    );

    let dst = dir.join("restored");
    File::create(&dst).unwrap().set_len(size).unwrap();
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let restored = engine::restore(store, "inc", &dst, &settings(), &no_progress, &cancel);
    let restore_secs = t.elapsed().as_secs_f64();
    match restored {
        Ok(_) => {
            let same = sha(&dst, size) == sha(&src, size);
            println!(
                "restore of the incremental: {:.0} MB/s ({restore_secs:.2} s), byte-identical: {same}",
                size as f64 / MB / restore_secs
            );
            assert!(same, "the restore differs from the source");
        }
        Err(e) => println!("restore: not measured with this store ({e})"),
    }
    std::fs::remove_file(&dst).unwrap();
    std::fs::remove_file(&src).unwrap();
    for id in ["inc", "full"] {
        engine::delete(store, id).unwrap();
    }
}

fn sparse(dir: &Path, store: &dyn ObjectStore, data: u64, virt: u64) {
    let dense = dir.join("dense");
    let f = File::create(&dense).unwrap();
    write_mixed(&f, 0, data, 99);
    f.sync_all().unwrap();
    let (dense_secs, _) = time_backup(store, "dense", &dense, data, None);
    std::fs::remove_file(&dense).unwrap();
    engine::delete(store, "dense").unwrap();

    // The same amount of data in 64 MiB runs spread evenly over the virtual size.
    let sparse = dir.join("sparse");
    let f = File::create(&sparse).unwrap();
    f.set_len(virt).unwrap();
    let run = 64 << 20;
    let runs = data.div_ceil(run);
    for k in 0..runs {
        let len = run.min(data - k * run);
        write_mixed(&f, k * (virt / runs) / run * run, len, 99 + k);
    }
    f.sync_all().unwrap();
    let (sparse_secs, s) = time_backup(store, "sparse", &sparse, virt, None);
    println!(
        "sparse: {:.0} GiB virtual holding {:.2} GiB backed up in {sparse_secs:.2} s vs the dense {:.2} GiB in {dense_secs:.2} s: {:.2}x (goal <= 1.2); {:.0} GiB skipped",
        virt as f64 / GIB as f64,
        data as f64 / GIB as f64,
        data as f64 / GIB as f64,
        sparse_secs / dense_secs,
        s.skipped_zero_bytes as f64 / GIB as f64
    );
    std::fs::remove_file(&sparse).unwrap();
    engine::delete(store, "sparse").unwrap();
}
