//! Hot swap under load: a good new version takes over with no failed request; a broken
//! one is rolled back within its probation window, failing only the requests it answered
//! itself; a component the backend's grants do not cover is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use crate::common::{Client, FIXTURES_DIR, Server, nfs_as_version, plugin_of};

#[derive(Default)]
struct Load {
    done: AtomicUsize,
    /// (volume id, why) of every failed cycle.
    failures: Mutex<Vec<(String, String)>>,
}

/// One create → available → delete → gone cycle; a failure is recorded, not panicked.
async fn cycle(c: &Client, load: &Load) {
    let r = c.post("volumes", json!({"volume": {"size": 1}})).await;
    if r.status != 202 {
        load.failures.lock().await.push((
            String::new(),
            format!("create answered {}: {}", r.status, r.body),
        ));
        return;
    }
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = c.wait("volumes", &id).await;
    if v["status"] != "available" {
        // Which plugin failed it is the administrator's detail, not the tenant's.
        let why = c.message_details_for(&id).await.join("; ");
        load.failures.lock().await.push((id.clone(), why));
        let _ = c.delete(&format!("volumes/{id}")).await;
        return;
    }
    let r = c.delete(&format!("volumes/{id}")).await;
    if r.status != 202 || !c.wait("volumes", &id).await.is_null() {
        load.failures
            .lock()
            .await
            .push((id, format!("delete answered {}", r.status)));
        return;
    }
    load.done.fetch_add(1, Ordering::Relaxed);
}

/// Waits until the load has completed `more` cycles beyond `from`.
async fn load_progresses(load: &Load, from: usize, more: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.done.load(Ordering::Relaxed) < from + more {
        assert!(
            Instant::now() < deadline,
            "the load made no progress for 60 s: {} cycles, failures {:?}",
            load.done.load(Ordering::Relaxed),
            load.failures.lock().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn swap_under_load_then_roll_back_a_broken_version() {
    let server = Server::start("probation_secs = 4\n");
    let admin = server.client("admin:ops");
    let swap = |wasm: std::path::PathBuf| {
        let admin = &admin;
        async move {
            admin
                .raw(
                    reqwest::Method::POST,
                    "/ashlar/v1/backends/local/swap",
                    Some(json!({"wasm": wasm}).to_string().into_bytes()),
                )
                .await
        }
    };
    let v2 = nfs_as_version(&server.dir, "0.2.0");

    // A steady load: three workers cycling volumes, bounded in time.
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..3 {
        let (load, stop, c) = (
            load.clone(),
            stop.clone(),
            server.client(&format!("load{w}:load")),
        );
        workers.push(tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                cycle(&c, &load).await;
            }
        }));
    }
    load_progresses(&load, 0, 3).await;

    // 1. A good new version: zero failed requests, while cycles go on across the swap.
    let r = swap(v2.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["swap"]["from"], "nfs 0.1.0");
    assert_eq!(r.body["swap"]["to"], "nfs 0.2.0");
    load_progresses(&load, load.done.load(Ordering::Relaxed), 6).await;
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.2.0");
    assert!(
        load.failures.lock().await.is_empty(),
        "failures after a good swap: {:?}",
        load.failures.lock().await
    );
    let before_broken = load.done.load(Ordering::Relaxed);
    assert!(before_broken > 0, "the load made progress");

    // 2. A component the backend's grants do not cover is refused; nothing changes.
    let r = swap(std::path::Path::new(FIXTURES_DIR).join("misbehave.wasm")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("exec of `true`"),
        "{}",
        r.error_message()
    );
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.2.0");

    // 3. A broken version passes the swap's probes, traps in use, and is rolled back.
    let r = swap(std::path::Path::new(FIXTURES_DIR).join("flaky.wasm")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let swapped_at = Instant::now();
    let rolled_back = loop {
        let p = plugin_of(&admin, "local").await;
        if p["version"] == "0.2.0" && p["last_event"]["kind"] == "rolled-back" {
            break p;
        }
        // The verdict, not the clock: a broken version that outlived its probation
        // would be recorded as having passed it.
        assert_ne!(
            p["last_event"]["kind"], "probation-passed",
            "the broken version passed its probation: {p}"
        );
        assert!(
            swapped_at.elapsed() < Duration::from_secs(60),
            "no verdict on the broken version after a minute: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = rolled_back["last_event"]["reason"].as_str().unwrap();
    assert!(reason.contains("trapped"), "{reason}");
    let done_at_rollback = load.done.load(Ordering::Relaxed);

    // The old version serves again: the load goes on, and every failure of the whole run
    // was answered by the broken version (cycles still waiting when it was rolled back
    // report a little later, so failures are judged by who failed them, not when).
    load_progresses(&load, done_at_rollback, 6).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = load.failures.lock().await;
    assert!(
        !failures.is_empty(),
        "the rollback was caused by a trapped call, which failed its request"
    );
    for (id, why) in failures.iter() {
        assert!(
            why.contains("plugin flaky 9.9.9"),
            "volume {id} failed, but not on the broken version: {why}"
        );
    }
    assert!(
        load.done.load(Ordering::Relaxed) > done_at_rollback,
        "the load went on after the rollback"
    );

    // Events, list, metrics, manual rollback.
    let r = admin
        .raw(
            reqwest::Method::GET,
            "/ashlar/v1/plugins/events?backend=local",
            None,
        )
        .await;
    let kinds: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // The good version's probation was cut short by the next swap, so it never passed.
    assert_eq!(
        kinds,
        ["rolled-back", "swapped", "refused", "swapped"],
        "{}",
        r.body
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "ashlar_plugin_calls_total{backend=\"local\",plugin=\"nfs\",version=\"0.2.0\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("quantile=\"0.99\""), "{metrics}");

    let r = admin
        .raw(
            reqwest::Method::POST,
            "/ashlar/v1/backends/local/rollback",
            None,
        )
        .await;
    assert_eq!(
        r.status, 409,
        "the automatic rollback used up the previous version: {}",
        r.body
    );
    let v3 = nfs_as_version(&server.dir, "0.3.0");
    assert_eq!(swap(v3).await.status, 200);
    let r = admin
        .raw(
            reqwest::Method::POST,
            "/ashlar/v1/backends/local/rollback",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rollback"]["to"], "nfs 0.2.0");
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.2.0");

    // Non-admins may not swap.
    let r = server
        .client("alice:p")
        .raw(
            reqwest::Method::POST,
            "/ashlar/v1/backends/local/swap",
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_swap_that_would_drop_a_feature_in_use_is_refused() {
    let server = Server::start("");
    let admin = server.client("admin:ops");
    let c = server.client("alice:p");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let snap = c.snapshot_available(&vol).await;

    let flaky = json!({"wasm": std::path::Path::new(FIXTURES_DIR).join("flaky.wasm")});
    let r = admin
        .post("/ashlar/v1/backends/local/swap", flaky.clone())
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("1 snapshot(s)"),
        "{}",
        r.error_message()
    );
    assert!(
        r.error_message().contains("snapshot_support"),
        "{}",
        r.error_message()
    );
    assert_eq!(plugin_of(&admin, "local").await["plugin"], "nfs");

    // Unknown backends and missing files are named.
    let r = admin
        .post("/ashlar/v1/backends/nope/swap", flaky.clone())
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = admin
        .post(
            "/ashlar/v1/backends/local/swap",
            json!({"wasm": "/no/such.wasm"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("/no/such.wasm"),
        "{}",
        r.error_message()
    );

    // Without snapshots the same swap goes through.
    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(c.wait("snapshots", &snap).await.is_null());
    // This time through the CLI, as an operator would.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ashlar"))
            .args(["plugin"])
            .args(args)
            .args(["--url", &server.base, "--token", "admin:ops"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let flaky_path = std::path::Path::new(FIXTURES_DIR).join("flaky.wasm");
    let (ok, out, err) = cli(&[
        "swap",
        "local",
        flaky_path.to_str().unwrap(),
        "--probation-secs",
        "60",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("backend local: nfs 0.1.0 -> flaky 9.9.9"),
        "{out}"
    );
    let (ok, out, err) = cli(&["list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("BACKEND") && out.contains("flaky") && out.contains("swapped"),
        "{out}"
    );
    // The workers section: the swap's probation watches the new driver.
    let probation = out
        .lines()
        .find(|l| l.starts_with("probation local flaky 9.9.9"))
        .unwrap_or_else(|| panic!("no probation worker in:\n{out}"));
    assert!(probation.contains("ms of probation left"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("job-runner") && l.contains("done")),
        "{out}"
    );
    let (ok, out, err) = cli(&["rollback", "local"]);
    assert!(ok, "{err}");
    assert!(out.contains("flaky 9.9.9 -> nfs 0.1.0"), "{out}");
    let (ok, _, err) = cli(&["rollback", "local"]);
    assert!(!ok);
    assert!(err.contains("no previous driver"), "{err}");
}

/// The crash matrix's swap: a host killed while a swapped-in version is on probation starts
/// again on the driver its config names, serving, with its volumes intact — no half-made
/// swap survives the restart.
#[tokio::test]
async fn sigkill_during_a_swaps_probation_restarts_on_the_configured_driver() {
    let server = Server::start("probation_secs = 600\n");
    let admin = server.client("admin:ops");
    let c = server.client("alice:proj-a");
    let kept = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &kept, "available").await;
    let v2 = nfs_as_version(&server.dir, "0.2.0");
    let r = admin
        .raw(
            reqwest::Method::POST,
            "/ashlar/v1/backends/local/swap",
            Some(json!({"wasm": v2}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.2.0");
    let dir = server.kill9();

    let server = Server::start_in(&dir, "probation_secs = 600\n");
    let admin = server.client("admin:ops");
    let c = server.client("alice:proj-a");
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.1.0");
    assert_eq!(c.wait("volumes", &kept).await["status"], "available");
    assert!(server.share().join(format!("volume-{kept}")).exists());
    let again = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &again, "available").await;
    assert_eq!(c.delete(&format!("volumes/{kept}")).await.status, 202);
    assert!(c.wait("volumes", &kept).await.is_null());
    assert!(!server.share().join(format!("volume-{kept}")).exists());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
