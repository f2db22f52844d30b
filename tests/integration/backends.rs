//! Backends at runtime: `ashlar backend add` starts a backend from a config section on a
//! running server, volumes are placed on it, `ashlar backend drain` moves them away (each
//! keeps its id and its bytes) and `ashlar backend remove` stops it once it is empty —
//! with no restart, while a parallel load of creates and deletes on the other backend
//! sees no failed request.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, Server, read_at, write_at};

const MIB: u64 = 1 << 20;

fn nfs_section(name: &str, share: &Path) -> String {
    format!(
        "[backends.{name}]\ndriver = \"nfs\"\n\
         grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\n\
         grants.block = [\"{share}\"]\n\
         settings.share_path = \"{share}\"\n\
         settings.max_over_subscription_ratio = \"100\"\n\n",
        share = share.display()
    )
}

/// Runs `ashlar backend ARGS` against `server` as an administrator.
fn backend_cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .arg("backend")
        .args(args)
        .args(["--url", &server.base, "--token", "admin:admin"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run ashlar backend")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn host_of(admin: &Client, id: &str) -> String {
    admin.get(&format!("volumes/{id}")).await.body["volume"]["os-vol-host-attr:host"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn storage_of(admin: &Client, id: &str) -> String {
    let v = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
    v["os-vol-mig-status-attr:name_id"]
        .as_str()
        .unwrap_or(id)
        .to_string()
}

#[tokio::test]
async fn a_backend_is_added_filled_drained_and_removed_without_a_restart_or_a_failed_request() {
    let shares = tempfile::tempdir().unwrap();
    let (share_a, share_b) = (shares.path().join("a"), shares.path().join("b"));
    std::fs::create_dir_all(&share_a).unwrap();
    std::fs::create_dir_all(&share_b).unwrap();
    let server = Server::start(&format!(
        "stats_interval_secs = 1\nreport_interval = 1\n\n\
         [volume_types.on-a]\nvolume_backend_name = \"a\"\n\n{}",
        nfs_section("a", &share_a)
    ));
    let admin = server.client("admin:proj-a");
    let c = server.client("alice:proj-a");

    // A parallel load on backend a: create, wait, delete, wait, over and over.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (c, stop, done) = (c.clone(), stop.clone(), done.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .post(
                        "volumes",
                        json!({"volume": {"size": 1, "volume_type": "on-a"}}),
                    )
                    .await;
                if r.status != 202 {
                    failures.push(format!("create: {} {}", r.status, r.body));
                    continue;
                }
                let id = r.body["volume"]["id"].as_str().unwrap().to_string();
                let v = c.wait("volumes", &id).await;
                if v["status"] != "available" {
                    failures.push(format!("volume {id} ended {}", v["status"]));
                }
                let r = c.delete(&format!("volumes/{id}")).await;
                if r.status != 202 {
                    failures.push(format!("delete {id}: {} {}", r.status, r.body));
                    continue;
                }
                if !c.wait("volumes", &id).await.is_null() {
                    failures.push(format!("volume {id} was not deleted"));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }

    // A section another file holds, and mistakes.
    let extra = shares.path().join("more.toml");
    std::fs::write(&extra, nfs_section("b", &share_b)).unwrap();
    let extra_path = extra.to_str().unwrap();
    let out = backend_cli(&server, &["add", "nope", "--config", extra_path]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no [backends.nope] section"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = backend_cli(&server, &["add", "a", "--config", extra_path]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("running already"));

    // Added: listed, serviced, and it takes volumes.
    let listed = ok(&backend_cli(&server, &["add", "b", "--config", extra_path]));
    assert!(
        listed.contains("ashlar@b") && listed.contains("active"),
        "{listed}"
    );
    let services = admin.get("os-services?binary=cinder-volume").await;
    assert!(
        services.body["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["host"] == "ashlar@b" && s["state"] == "up"),
        "{}",
        services.body
    );
    let mut on_b = Vec::new();
    for i in 0..3u8 {
        let id = c
            .create_volume(json!({"size": 1, "name": format!("mover-{i}")}))
            .await;
        c.wait_status("volumes", &id, "available").await;
        if !host_of(&admin, &id).await.starts_with("ashlar@b#") {
            let r = admin
                .post(
                    &format!("volumes/{id}/action"),
                    json!({"os-migrate_volume": {"host": "ashlar@b"}}),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !host_of(&admin, &id).await.starts_with("ashlar@b#") {
                assert!(Instant::now() < deadline, "volume {id} did not reach b");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            c.wait_status("volumes", &id, "available").await;
        }
        let data = vec![i + 1; MIB as usize];
        let storage = storage_of(&admin, &id).await;
        write_at(&share_b.join(format!("volume-{storage}")), 7 * MIB, &data);
        on_b.push((id, data));
    }

    // Not removable while it holds volumes.
    let out = backend_cli(&server, &["remove", "b"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("drain it first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Drained: every volume moves to a, with its id and its bytes.
    let drained = ok(&backend_cli(&server, &["drain", "b", "--wait"]));
    assert!(drained.contains("0 volume(s)"), "{drained}");
    for (id, data) in &on_b {
        let v: Value = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
        assert_eq!(v["status"], "available", "{v}");
        assert!(
            v["os-vol-host-attr:host"]
                .as_str()
                .unwrap()
                .starts_with("ashlar@a#"),
            "{v}"
        );
        let storage = storage_of(&admin, id).await;
        assert_eq!(
            read_at(
                &share_a.join(format!("volume-{storage}")),
                7 * MIB,
                data.len()
            ),
            *data
        );
    }

    // Removed: gone from the list and from os-services; nothing left on its share.
    let removed = ok(&backend_cli(&server, &["remove", "b"]));
    assert!(removed.contains("removed"), "{removed}");
    let listed = ok(&backend_cli(&server, &["list"]));
    assert!(
        !listed.contains("ashlar@b") && listed.contains("ashlar@a"),
        "{listed}"
    );
    let services = admin.get("os-services?binary=cinder-volume").await;
    assert!(
        !services.body["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["host"] == "ashlar@b"),
        "{}",
        services.body
    );
    let left: Vec<_> = std::fs::read_dir(&share_b).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // The load saw no failure, and the server never restarted.
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for l in load {
        failures.extend(l.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "the parallel load failed: {failures:?}"
    );
    assert!(done.load(Ordering::Relaxed) > 0, "the load ran");
    assert_eq!(server.log().matches("ashlar listening on").count(), 1);
    for (id, _) in &on_b {
        assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
        c.wait_gone("volumes", id).await;
    }
}
