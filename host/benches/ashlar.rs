//! Figures for the README and the release notes, each against a baseline measured in the
//! same run (these machines are noisy, ratios travel better than absolute numbers):
//!
//! 1. a trivial driver call through the sandbox versus the same driver code compiled
//!    natively;
//! 2. volume lists (`detail?limit=1000`, `?limit=100`) against one volume's show, through
//!    the HTTP API on 1,000 volumes;
//! 3. volume create+delete per second through the HTTP API on the bundled nfs driver,
//!    versus running the same `qemu-img create` + `rm` directly; and `POST /volumes`
//!    accepted per second, four clients at once, against a show on the same host;
//! 4. an attach round trip, swap latency, and one backend's latency while another spins.
//!
//! Run with `cargo bench -p ashlar`; `ASHLAR_BENCH_QUICK=1` shortens it, and
//! `ASHLAR_BENCH_ONLY=list,create` runs only the named ones (call, list, create, accept,
//! attach, swap, isolation).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ashlar::capabilities::{Grants, Manifest};
use ashlar::config::Limits;
use ashlar::runtime::{DriverSpec, Runtime};
use ashlar_sdk::VolumeDriver;

#[path = "support.rs"]
mod support;
use support::Server;

fn quick() -> bool {
    std::env::var_os("ASHLAR_BENCH_QUICK").is_some()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    type Bench = fn(&tokio::runtime::Runtime);
    let benches: [(&str, Bench); 7] = [
        ("call", trivial_call),
        ("list", list_against_show),
        ("create", api_create_delete),
        ("accept", creates_accepted),
        ("attach", attach_round_trip),
        ("swap", swap_latency),
        ("isolation", isolation),
    ];
    // `ASHLAR_BENCH_ONLY=list,swap` runs only those.
    let only = std::env::var("ASHLAR_BENCH_ONLY").ok();
    for (name, bench) in benches {
        if only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|w| w.trim() == name))
        {
            bench(&rt);
        }
    }
}

fn trivial_call(rt: &tokio::runtime::Runtime) {
    let share = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(ashlar::bundled::FIXTURES_DIR);
    let wasm: Arc<[u8]> = std::fs::read(fixtures.join("misbehave.wasm"))
        .unwrap()
        .into();
    let manifest = Manifest::load(fixtures.join("misbehave.toml")).unwrap();
    let grants: Grants = toml::from_str(&format!(
        "exec = [\"true\", \"cat\", \"linger\"]\nblock = [{:?}]",
        share.path()
    ))
    .unwrap();
    let settings = BTreeMap::from([("share_path".to_string(), share.path().display().to_string())]);
    let runtime = Runtime::new(None).unwrap();
    let pool = {
        let _enter = rt.enter();
        let spec = DriverSpec {
            backend: "bench".into(),
            origin: "fixture".into(),
            wasm,
            manifest,
            grants,
            settings,
            credentials: BTreeMap::new(),
            limits: Limits::default(),
            host_name: "bench".into(),
            exec_dirs: ashlar::config::default_exec_dirs(),
            world: ashlar::capabilities::World::VolumeDriver,
        };
        runtime.load(spec).unwrap()
    };
    let call = || {
        pool.call_blocking("check-for-setup-error", |s, d| d.check_for_setup_error(s))
            .unwrap()
    };
    call(); // instantiate and warm up
    let n: u32 = if quick() { 20_000 } else { 200_000 };

    let mut native = ashlar_fixture_misbehave::Misbehave::new();
    let started = Instant::now();
    for _ in 0..n {
        black_box(&mut native).check_for_setup_error().unwrap();
    }
    let native_ns = started.elapsed().as_nanos() as f64 / f64::from(n);

    let started = Instant::now();
    for _ in 0..n {
        call();
    }
    let sandboxed_ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    // Instance creation with the pooling allocator (each runs the driver's do-setup).
    let k = if quick() { 50 } else { 200 }; // the engine pools 256 instances in all
    let started = Instant::now();
    pool.prewarm(k).unwrap();
    let instantiate_us = started.elapsed().as_secs_f64() * 1e6 / k as f64;
    println!("instance creation (pooling allocator, InstancePre, do-setup), {k} instances:");
    println!("  {instantiate_us:>10.1} us/instance");

    println!("trivial driver call (check-for-setup-error), {n} calls:");
    println!("  native:    {native_ns:>10.1} ns/call");
    println!("  sandboxed: {sandboxed_ns:>10.1} ns/call  (pool checkout, deadline, call, return)");
    println!(
        "  ratio sandboxed/native: {:.0}x",
        sandboxed_ns / native_ns.max(0.001)
    );
}

fn start_server(dir: &std::path::Path) -> Server {
    start_server_with(dir, None)
}

/// Every bench host's quotas: the benches create 1000 volumes in one project, far past
/// Cinder's default of 10 (and 1000 GiB), and measure the API, not quotas.
const UNLIMITED_QUOTA: &str = "
[quota]
volumes = -1
snapshots = -1
gigabytes = -1
backups = -1
backup_gigabytes = -1
groups = -1
";

fn start_server_with(dir: &std::path::Path, config: Option<&std::path::Path>) -> Server {
    // The bench's own settings, if any, with the unlimited quota after them.
    let text = config
        .map(|c| std::fs::read_to_string(c).unwrap())
        .unwrap_or_default();
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("bench.toml");
    std::fs::write(&config, format!("{text}{UNLIMITED_QUOTA}")).unwrap();
    support::serve(&config, dir)
}

async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http
            .get(url)
            .header("X-Auth-Token", "bench:bench")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if done(status, &body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {url}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn one_create_delete(http: &reqwest::Client, base: &str) {
    let r = http
        .post(format!("{base}/v3/bench/volumes"))
        .header("X-Auth-Token", "bench:bench")
        .json(&serde_json::json!({"volume": {"size": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["volume"]["id"].as_str().unwrap().to_string();
    let url = format!("{base}/v3/bench/volumes/{id}");
    wait_for(http, &url, |_, b| b["volume"]["status"] == "available").await;
    let r = http
        .delete(&url)
        .header("X-Auth-Token", "bench:bench")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for(http, &url, |s, _| s == 404).await;
}

/// Volume lists against a single volume's show, through the API on the embedded SQLite:
/// `GET /volumes/detail?limit=1000` and `?limit=100` against `GET /volumes/{id}`, four
/// clients at once, on 1,000 volumes with three metadata keys each. A list costs a fixed
/// number of queries, so its ratio to a show is what serialising the page costs.
fn list_against_show(rt: &tokio::runtime::Runtime) {
    const VOLUMES: usize = 1000;
    const CLIENTS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ids = rt.block_on(plant_volumes(&data, VOLUMES));
    let server = start_server(&data);
    let http = reqwest::Client::new();
    let seconds = if quick() { 2.0 } else { 6.0 };
    let rate = |base: &str, path_of: Box<dyn Fn(usize) -> String + Send + Sync>| {
        let base = base.to_string();
        let path_of = Arc::new(path_of);
        rt.block_on(async {
            let until = Instant::now() + Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let (http, base, path_of) = (http.clone(), base.clone(), path_of.clone());
                    tokio::spawn(async move {
                        let mut n = 0usize;
                        while Instant::now() < until {
                            let r = http
                                .get(format!("{base}{}", path_of(c * 7919 + n)))
                                .header("X-Auth-Token", "bench:bench")
                                .send()
                                .await
                                .unwrap();
                            assert!(r.status().is_success(), "{}", r.status());
                            let body = r.bytes().await.unwrap();
                            assert!(!body.is_empty());
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            total as f64 / started.elapsed().as_secs_f64()
        })
    };
    let show = {
        let ids = ids.clone();
        rate(
            &server.base,
            Box::new(move |i| format!("/v3/bench/volumes/{}", ids[i % ids.len()])),
        )
    };
    let detail = |base: &str, limit: usize| {
        rate(
            base,
            Box::new(move |_| format!("/v3/bench/volumes/detail?limit={limit}")),
        )
    };
    let detail_100 = detail(&server.base, 100);
    let detail_1000 = detail(&server.base, 1000);
    // The same lists from a host that keeps no rendered views: every volume read in full
    // and rendered on every request, as after every volume has changed.
    drop(server);
    let config = dir.path().join("no-view-cache.toml");
    std::fs::write(&config, "[api]\nlist_view_cache_mib = 0\n").unwrap();
    let server = start_server_with(&data, Some(&config));
    let cold_1000 = detail(&server.base, 1000);
    println!(
        "volume list against show through the API ({VOLUMES} volumes, 3 metadata keys each; {CLIENTS} clients, {seconds} s each):"
    );
    println!("  GET /volumes/{{id}}:                {show:>9.1} req/s");
    println!(
        "  GET /volumes/detail?limit=100:     {detail_100:>9.1} req/s  (show/list ratio {:.1})",
        show / detail_100.max(0.001)
    );
    println!(
        "  GET /volumes/detail?limit=1000:    {detail_1000:>9.1} req/s  (show/list ratio {:.1}; at most 40 wanted)",
        show / detail_1000.max(0.001)
    );
    println!(
        "  … every view rendered again:       {cold_1000:>9.1} req/s  (show/list ratio {:.1})",
        show / cold_1000.max(0.001)
    );
}

/// Writes `n` available volumes with three metadata keys each straight into a fresh
/// database in `data` (as if made through the API), and returns their ids.
async fn plant_volumes(data: &std::path::Path, n: usize) -> Vec<String> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=rwc", data.join("ashlar.db").display());
    // Opening through the host's own store creates the schema.
    drop(ashlar::db::Db::open(&url).await.unwrap());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let at = ashlar::db::time::now();
        let metadata =
            serde_json::json!({"tier": "gold", "owner": "bench", "index": i.to_string()});
        sqlx::query(
            "INSERT INTO volumes (id, project_id, user_id, name, description, size, status, attach_status, \
             availability_zone, host, provider_location, created_at, updated_at, launched_at, metadata) \
             VALUES ($1, 'bench', 'bench', $2, 'planted for the list benchmark', 1, 'available', 'detached', \
             'nova', 'ashlar@local#local', $3, $4, $4, $4, $5)",
        )
        .bind(&id)
        .bind(format!("volume-{i}"))
        .bind(format!("volume-{id}"))
        .bind(&at)
        .bind(metadata.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

/// Connecting and disconnecting a volume through the API (os-initialize_connection then
/// os-terminate_connection: two calls into the nfs driver each, create/remove-export and
/// initialize/terminate), against a baseline of the same number of API requests that call
/// no driver (GET of the volume), so the ratio is what the sandboxed driver calls add.
fn attach_round_trip(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let n: usize = if quick() { 50 } else { 300 };
    let server = start_server(dir.path());
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let (attach_rate, get_rate) = rt.block_on(async {
        let r = http
            .post(format!("{base}/v3/bench/volumes"))
            .header("X-Auth-Token", "bench:bench")
            .json(&serde_json::json!({"volume": {"size": 1}}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        let id = body["volume"]["id"].as_str().unwrap().to_string();
        let url = format!("{base}/v3/bench/volumes/{id}");
        wait_for(&http, &url, |_, b| b["volume"]["status"] == "available").await;
        let connector =
            serde_json::json!({"host": "bench-host", "initiator": "iqn.2024-01.bench:h"});
        let action = format!("{url}/action");
        let started = Instant::now();
        for _ in 0..n {
            for body in [
                serde_json::json!({"os-initialize_connection": {"connector": connector}}),
                serde_json::json!({"os-terminate_connection": {"connector": connector}}),
            ] {
                let r = http
                    .post(&action)
                    .header("X-Auth-Token", "bench:bench")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }
        let attach = n as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..n * 2 {
            let r = http
                .get(&url)
                .header("X-Auth-Token", "bench:bench")
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        let gets = n as f64 / started.elapsed().as_secs_f64();
        (attach, gets)
    });
    println!("attach round trip through the API (nfs driver; initialize + terminate), {n} each:");
    println!("  baseline: two GETs of the volume (no driver call): {get_rate:>8.1} /s");
    println!(
        "  initialize + terminate connection:                {attach_rate:>8.1} /s  ({:.2} of baseline)",
        attach_rate / get_rate.max(0.001)
    );
}

fn api_create_delete(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let n: usize = if quick() { 20 } else { 100 };

    // Baseline: the same storage work without the service.
    let share = dir.path().join("baseline");
    std::fs::create_dir_all(&share).unwrap();
    let started = Instant::now();
    for i in 0..n {
        let f = share.join(format!("volume-{i}"));
        let ok = Command::new("qemu-img")
            .args(["create", "-f", "raw"])
            .arg(&f)
            .arg("1073741824")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new("rm").arg("-f").arg(&f).status().unwrap();
        assert!(ok.success());
    }
    let baseline = n as f64 / started.elapsed().as_secs_f64();

    let server = start_server(&dir.path().join("data"));
    let http = reqwest::Client::new();
    let (sequential, concurrent) = rt.block_on(async {
        one_create_delete(&http, &server.base).await; // warm up
        let started = Instant::now();
        for _ in 0..n {
            one_create_delete(&http, &server.base).await;
        }
        let sequential = n as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (http, base) = (http.clone(), server.base.clone());
                tokio::spawn(async move { one_create_delete(&http, &base).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (sequential, n as f64 / started.elapsed().as_secs_f64())
    });
    println!("volume create+delete through the API (nfs driver, 1 GiB sparse raw), {n} each:");
    println!("  baseline qemu-img create + rm directly:  {baseline:>8.1} /s");
    println!(
        "  API, one at a time:                      {sequential:>8.1} /s  ({:.2} of baseline)",
        sequential / baseline
    );
    println!(
        "  API, {n} at once:                        {concurrent:>8.1} /s  ({:.2} of baseline)",
        concurrent / baseline
    );
}

/// Requests of one kind answered per second by `CLIENTS` clients at once for `seconds`;
/// each request must answer `want`.
fn requests_per_second(
    rt: &tokio::runtime::Runtime,
    seconds: f64,
    request: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>,
    want: u16,
) -> f64 {
    const CLIENTS: usize = 4;
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let request = request.clone();
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while Instant::now() < until {
                        let r = request(c * 7919 + n).send().await.unwrap();
                        assert_eq!(r.status().as_u16(), want);
                        assert!(!r.bytes().await.unwrap().is_empty());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total as f64 / started.elapsed().as_secs_f64()
    })
}

/// `POST /volumes` accepted per second (202 with the volume's view; the creates then run
/// in the background on the nfs driver, competing for the same cores), four clients at
/// once, against `GET /volumes/{id}` on the same host and the same volumes.
fn creates_accepted(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"));
    let http = reqwest::Client::new();
    let seconds = if quick() { 2.0 } else { 6.0 };
    let base = server.base.clone();
    let create: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync> = {
        let http = http.clone();
        Arc::new(move |_| {
            http.post(format!("{base}/v3/bench/volumes"))
                .header("X-Auth-Token", "bench:bench")
                .json(&serde_json::json!({"volume": {"size": 1}}))
        })
    };
    let accepted = requests_per_second(rt, seconds, create, 202);
    let ids: Vec<String> = rt.block_on(async {
        let r = http
            .get(format!("{}/v3/bench/volumes?limit=100", server.base))
            .header("X-Auth-Token", "bench:bench")
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    });
    let base = server.base.clone();
    let show: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync> = Arc::new(move |i| {
        http.get(format!("{base}/v3/bench/volumes/{}", ids[i % ids.len()]))
            .header("X-Auth-Token", "bench:bench")
    });
    let shown = requests_per_second(rt, seconds, show, 200);
    println!(
        "POST /volumes accepted through the API (4 clients, {seconds} s; nfs driver creating behind):"
    );
    println!("  GET /volumes/{{id}} on the same host:   {shown:>9.1} req/s");
    println!(
        "  POST /volumes answered 202:           {accepted:>9.1} /s  (show/create ratio {:.1})",
        shown / accepted.max(0.001)
    );
}

/// Swap latency, request to switched, with the compiled artifact cached and without.
fn swap_latency(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data);
    let nfs = ashlar::bundled::find("nfs").unwrap();
    let rounds = if quick() { 3 } else { 10 };
    let http = reqwest::Client::new();
    let (mut cached, mut fresh) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for i in 0..rounds * 2 {
            let version = format!("0.{}.0", i + 2);
            let wasm = dir.path().join(format!("nfs-{version}.wasm"));
            std::fs::write(&wasm, nfs.wasm).unwrap();
            let manifest = nfs
                .manifest
                .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
            std::fs::write(wasm.with_extension("toml"), manifest).unwrap();
            let is_fresh = i % 2 == 1;
            if is_fresh {
                for e in std::fs::read_dir(data.join("cache")).unwrap() {
                    std::fs::remove_file(e.unwrap().path()).unwrap();
                }
            }
            let started = Instant::now();
            let r = http
                .post(format!("{}/ashlar/v1/backends/local/swap", server.base))
                .header("X-Auth-Token", "admin:admin")
                .json(&serde_json::json!({"wasm": wasm, "probation_secs": 0}))
                .send()
                .await
                .unwrap();
            let took = started.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            if is_fresh {
                fresh.push(took)
            } else {
                cached.push(took)
            }
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (c, f) = (median(&mut cached), median(&mut fresh));
    println!(
        "driver swap, request to switched (nfs driver; load, probes, prewarm), median of {rounds}:"
    );
    println!("  precompiled (cached artifact): {c:>8.1} ms");
    println!(
        "  fresh (compiled during swap):  {f:>8.1} ms  ({:.1}x the precompiled swap)",
        f / c
    );
}

/// Create+delete latency on one backend while another backend's driver spins in
/// infinite loops until its deadline, against the same with the other backend idle, and
/// once the spinning backend has been quarantined for its sandbox failures.
fn isolation(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let share = dir.path().join("badshare");
    std::fs::create_dir_all(&share).unwrap();
    let fixtures = std::path::Path::new(ashlar::bundled::FIXTURES_DIR);
    let config = dir.path().join("ashlar.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[volume_types.bad]
volume_backend_name = "bad"
[volume_types.local]
volume_backend_name = "local"
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
settings.share_path = "{vols}"
[backends.bad]
driver = "{fixture}"
grants.exec = ["true", "cat", "linger"]
grants.block = ["{share}"]
settings.share_path = "{share}"
limits.call_deadline_ms = 1500
limits.instances = 2
limits.max_sandbox_failures = 4
limits.quarantine_secs = 600
"#,
            vols = data.join("volumes").display(),
            fixture = fixtures.join("misbehave.wasm").display(),
            share = share.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(data.join("volumes")).unwrap();
    let server = start_server_with(&data, Some(&config));
    let http = reqwest::Client::new();
    let n = if quick() { 10 } else { 30 };
    let measure = |label: &'static str| {
        let (http, base) = (http.clone(), server.base.clone());
        async move {
            let mut took = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                one_create_delete(&http, &base).await;
                took.push(started.elapsed().as_secs_f64() * 1e3);
            }
            took.sort_by(f64::total_cmp);
            let (p50, p99) = (took[took.len() / 2], took[(took.len() - 1) * 99 / 100]);
            println!("  {label:<44} p50 {p50:>7.1} ms   p99 {p99:>7.1} ms");
            p50
        }
    };
    println!(
        "isolation: create+delete on backend `local` ({n} each) beside backend `bad` (2 instances):"
    );
    rt.block_on(async {
        let idle = measure("`bad` idle:").await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut spinners = Vec::new();
        for _ in 0..2 {
            let (http, base, stop) = (http.clone(), server.base.clone(), stop.clone());
            spinners.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/v3/bench/volumes"))
                        .header("X-Auth-Token", "bench:bench")
                        .json(&serde_json::json!({"volume": {"size": 1, "name": "loop", "volume_type": "bad"}}))
                        .send()
                        .await
                        .unwrap();
                    let id = r.json::<serde_json::Value>().await.unwrap()["volume"]["id"].as_str().unwrap().to_string();
                    let url = format!("{base}/v3/bench/volumes/{id}");
                    wait_for(&http, &url, |_, b| b["volume"]["status"] == "error").await;
                    // A client retrying at a human pace, not a flood of the API itself.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let busy = measure("`bad` spinning both instances:").await;
        // Wait for the quarantine the failures earn.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = http
                .get(format!("{}/ashlar/v1/plugins", server.base))
                .header("X-Auth-Token", "admin:admin")
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            let bad = body["plugins"].as_array().unwrap().iter().find(|p| p["backend"] == "bad").cloned().unwrap();
            if bad["quarantined_for_secs"].is_u64() {
                break;
            }
            assert!(Instant::now() < deadline, "`bad` never quarantined: {bad}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let quarantined = measure("`bad` quarantined (its requests refused):").await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            s.await.unwrap();
        }
        println!(
            "  p50 ratio to idle: spinning {:.2}, quarantined {:.2}",
            busy / idle,
            quarantined / idle
        );
    });
}
