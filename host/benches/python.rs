//! A driver written in Python (plugins/py-example, built with componentize-py) against the
//! bundled Rust nfs driver, which does the same work, measured in the same run: component
//! size, compiling it with no cached artifact, loading the cached artifact, a cold start
//! (cached artifact to the first answered call), instantiating, a trivial call
//! (terminate-connection, which neither driver does anything for) and a real one
//! (get-volume-stats, which runs `df` and `du`).
//!
//! Needs componentize-py (`source scripts/setup-python-sdk.sh`, which exports
//! `ASHLAR_COMPONENTIZE_PY`). Run with `cargo bench -p ashlar --bench python`;
//! `ASHLAR_BENCH_QUICK=1` shortens it; `ASHLAR_BENCH_RUST_NFS=PATH` measures that nfs
//! component instead of the bundled one (whose contract must be one this host serves).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ashlar::capabilities::{Grants, Manifest};
use ashlar::config::Limits;
use ashlar::driver::Volume;
use ashlar::runtime::{DriverPool, DriverSpec, Runtime};

fn quick() -> bool {
    std::env::var_os("ASHLAR_BENCH_QUICK").is_some()
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Builds plugins/py-example with its build.sh; the component and the build's duration.
fn build_py_example() -> (PathBuf, Duration) {
    let cpy = std::env::var_os("ASHLAR_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("componentize-py"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-py-example.wasm");
    let started = Instant::now();
    let run = Command::new(Path::new(ROOT).join("plugins/py-example/build.sh"))
        .env("COMPONENTIZE_PY", &cpy)
        .env("ASHLAR", env!("CARGO_BIN_EXE_ashlar"))
        .env("OUT", &out)
        .output()
        .unwrap_or_else(|e| panic!("plugins/py-example/build.sh: {e}"));
    assert!(
        run.status.success(),
        "building py-example with {} (source scripts/setup-python-sdk.sh to install it): {}",
        cpy.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    (out, started.elapsed())
}

struct Driver {
    label: &'static str,
    wasm: Arc<[u8]>,
    manifest: Manifest,
}

#[derive(Default)]
struct Figures {
    size: usize,
    compile_ms: f64,
    cached_load_ms: f64,
    cold_start_ms: f64,
    instantiate_us: f64,
    trivial_us: f64,
    stats_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spec(d: &Driver, share: &Path) -> DriverSpec {
    let grants: Grants = toml::from_str(r#"exec = ["qemu-img", "df", "du", "rm"]"#).unwrap();
    DriverSpec {
        backend: "bench".into(),
        origin: d.label.into(),
        wasm: d.wasm.clone(),
        manifest: d.manifest.clone(),
        grants,
        settings: BTreeMap::from([("share_path".to_string(), share.display().to_string())]),
        credentials: BTreeMap::new(),
        limits: Limits::default(),
        host_name: "bench".into(),
        exec_dirs: ashlar::config::default_exec_dirs(),
        world: ashlar::capabilities::World::VolumeDriver,
    }
}

fn trivial(rt: &tokio::runtime::Runtime, pool: &Arc<DriverPool>, volume: &Volume) {
    rt.block_on(pool.terminate_connection(volume, None))
        .unwrap();
}

fn measure(rt: &tokio::runtime::Runtime, d: &Driver) -> Figures {
    let share = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let rounds = if quick() { 3 } else { 5 };
    let mut f = Figures {
        size: d.wasm.len(),
        ..Figures::default()
    };

    // Compiling with no artifact to take: what the first load of a new component costs.
    let mut compile = Vec::new();
    for _ in 0..rounds.min(3) {
        let runtime = Runtime::new(None).unwrap();
        let started = Instant::now();
        runtime.compile(d.label, &d.wasm).unwrap();
        compile.push(started.elapsed().as_secs_f64() * 1e3);
    }
    f.compile_ms = median(compile);

    // The cached artifact, deserialized by a runtime that has not seen it.
    Runtime::new(Some(cache.path().to_path_buf()))
        .unwrap()
        .compile(d.label, &d.wasm)
        .unwrap();
    let mut cached = Vec::new();
    let mut cold = Vec::new();
    let volume = Volume {
        id: "0b7a5d3e-0000-4000-8000-000000000001".into(),
        size_gib: 1,
        ..Volume::default()
    };
    for _ in 0..rounds {
        let runtime = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
        let started = Instant::now();
        runtime.compile(d.label, &d.wasm).unwrap();
        cached.push(started.elapsed().as_secs_f64() * 1e3);

        // Cold start: load (contract, grants, cached artifact, link), then the first
        // call on a fresh instance (which runs do-setup first).
        let runtime = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
        let started = Instant::now();
        let pool = {
            let _enter = rt.enter();
            runtime.load(spec(d, share.path())).unwrap()
        };
        trivial(rt, &pool, &volume);
        cold.push(started.elapsed().as_secs_f64() * 1e3);
    }
    f.cached_load_ms = median(cached);
    f.cold_start_ms = median(cold);

    let runtime = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let pool = {
        let _enter = rt.enter();
        runtime.load(spec(d, share.path())).unwrap()
    };
    trivial(rt, &pool, &volume);
    let k = if quick() { 4 } else { 8 };
    let started = Instant::now();
    pool.prewarm(k).unwrap();
    f.instantiate_us = started.elapsed().as_secs_f64() * 1e6 / k as f64;

    let n = if quick() { 500 } else { 5_000 };
    let started = Instant::now();
    for _ in 0..n {
        trivial(rt, &pool, &volume);
    }
    f.trivial_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let n = if quick() { 10 } else { 50 };
    rt.block_on(pool.get_volume_stats(true)).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        rt.block_on(pool.get_volume_stats(true)).unwrap();
    }
    f.stats_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(n);
    f
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (py_wasm, build) = build_py_example();
    let python = Driver {
        label: "py-example (Python)",
        wasm: std::fs::read(&py_wasm).unwrap().into(),
        manifest: Manifest::load(py_wasm.with_extension("toml")).unwrap(),
    };
    let nfs = ashlar::bundled::find("nfs").unwrap();
    let rust = Driver {
        label: "nfs (Rust)",
        wasm: match std::env::var_os("ASHLAR_BENCH_RUST_NFS") {
            Some(path) => std::fs::read(&path)
                .unwrap_or_else(|e| panic!("ASHLAR_BENCH_RUST_NFS: {e}"))
                .into(),
            None => nfs.wasm.into(),
        },
        manifest: Manifest::from_toml_str(nfs.manifest).unwrap(),
    };
    for d in [&python, &rust] {
        println!(
            "{}: contract {}",
            d.label,
            ashlar::runtime::versions::contract_of(&d.wasm)
        );
    }
    println!(
        "building py-example (componentize-py + ashlar plugin stamp): {:.1} s",
        build.as_secs_f64()
    );
    let p = measure(&rt, &python);
    let r = measure(&rt, &rust);
    let row = |what: &str, unit: &str, p: f64, r: f64| {
        println!(
            "  {what:<44} {p:>10.2} {unit:<3} {r:>10.2} {unit:<3} {:>8.1}x",
            p / r.max(1e-9)
        );
    };
    println!(
        "  {:<44} {:>14} {:>14} {:>9}",
        "", "py-example", "nfs (Rust)", "ratio"
    );
    row(
        "component size",
        "MiB",
        p.size as f64 / 1048576.0,
        r.size as f64 / 1048576.0,
    );
    row(
        "compile, no cached artifact (first load)",
        "ms",
        p.compile_ms,
        r.compile_ms,
    );
    row(
        "load the cached artifact",
        "ms",
        p.cached_load_ms,
        r.cached_load_ms,
    );
    row(
        "cold start (cached artifact → first answer)",
        "ms",
        p.cold_start_ms,
        r.cold_start_ms,
    );
    row(
        "instantiate (pooling allocator, do-setup)",
        "us",
        p.instantiate_us,
        r.instantiate_us,
    );
    row(
        "trivial call (terminate-connection, async path)",
        "us",
        p.trivial_us,
        r.trivial_us,
    );
    row(
        "get-volume-stats (runs df and du)",
        "ms",
        p.stats_ms,
        r.stats_ms,
    );
    let target_ms = 300.0;
    println!(
        "cold start of the Python driver: {:.1} ms ({} the {target_ms:.0} ms target)",
        p.cold_start_ms,
        if p.cold_start_ms < target_ms {
            "within"
        } else {
            "OVER"
        }
    );
}
