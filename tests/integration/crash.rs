//! A host stopped mid-operation finds the work on its next start and finishes or reverts
//! it: no volume stays `creating`. Killed with SIGKILL, it had no say; stopped with SIGTERM,
//! it lets running work finish within its grace period and leaves the rest.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::common::{Server, config_with_fixture};

/// Starts a create the fixture holds for 30 s, stops the host with `stop` once that
/// driver call is under way (the fixture logs when it starts), starts the host again and
/// checks the create was reverted with a message, the finished volume kept, and new work
/// served.
async fn stopped_during_a_create(config: &str, stop: impl FnOnce(Server) -> PathBuf) {
    let server = Server::start(config);
    let c = server.client("alice:proj-a");
    let done = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &done, "available").await;
    let slow = c
        .create_volume(json!({"size": 1, "name": "slow-30", "volume_type": "bad"}))
        .await;
    server.wait_log("slow-30: started").await;
    assert_eq!(
        c.get(&format!("volumes/{slow}")).await.body["volume"]["status"],
        "creating"
    );
    let dir = stop(server);

    let server = Server::start_in(&dir, config);
    let c = server.client("alice:proj-a");
    let v = c.wait("volumes", &slow).await;
    assert_eq!(v["status"], "error", "{v}");
    let msgs = c.messages_for(&slow).await;
    assert!(
        msgs.iter()
            .any(|m| m.contains("stopped while the volume was being created")),
        "{msgs:?}"
    );
    assert_eq!(c.wait("volumes", &done).await["status"], "available");
    assert!(server.share().join(format!("volume-{done}")).exists());
    let again = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &again, "available").await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigkill_during_create_leaves_no_volume_creating() {
    stopped_during_a_create(&config_with_fixture(60_000, 64), Server::kill9).await;
}

#[tokio::test]
async fn sigterm_during_a_slow_create_stops_within_the_grace_period() {
    let config = format!(
        "graceful_shutdown_timeout_secs = 2\n{}",
        config_with_fixture(60_000, 64)
    );
    stopped_during_a_create(&config, |server| {
        let stopped = server.terminate();
        // The grace period is 2 s; the driver call alone would take 30.
        assert!(
            stopped.took < Duration::from_secs(12),
            "exit took {:?} with a 2 s grace period",
            stopped.took
        );
        assert!(stopped.clean, "a SIGTERM exit is a clean exit");
        for line in [
            "stopping: no new requests",
            "jobs still running at the end of the grace period are left for recovery",
            "stopped",
        ] {
            assert!(
                stopped.log.contains(line),
                "no `{line}` in:\n{}",
                stopped.log
            );
        }
        stopped.dir
    })
    .await;
}

/// One transitional operation of the crash matrix: how to start it on a volume of the
/// fixture backend named `{prefix}slow-8` (so the driver holds that call for 8 s), and where the
/// restarted host leaves the volume and the snapshot.
struct Case {
    prefix: &'static str,
    /// The volume's status once the restarted host has recovered the job (`None`: gone).
    volume_after: Option<&'static str>,
}

/// For each operation: kill the host (SIGKILL) once the driver call has started (the
/// fixture logs it), start it again, and check that nothing is left transitional and each
/// resource ends where recovery promises (docs/operations.md): a repeatable operation is
/// finished, a create is reverted to `error`.
#[tokio::test]
async fn sigkill_during_each_operation_leaves_nothing_transitional() {
    let config = config_with_fixture(60_000, 64);
    for case in [
        Case {
            prefix: "extend-",
            volume_after: Some("available"),
        },
        Case {
            prefix: "delete-",
            volume_after: None,
        },
        Case {
            prefix: "snapshot-",
            volume_after: Some("available"),
        },
        Case {
            prefix: "unsnapshot-",
            volume_after: Some("available"),
        },
        Case {
            prefix: "clone-",
            volume_after: Some("available"),
        },
        Case {
            prefix: "restore-",
            volume_after: Some("available"),
        },
    ] {
        let server = Server::start(&config);
        let c = server.client("alice:proj-a");
        let name = format!("{}slow-8", case.prefix);
        let vol = c
            .create_volume(json!({"size": 1, "name": name, "volume_type": "bad"}))
            .await;
        c.wait_status("volumes", &vol, "available").await;
        // What the case needs before its slow call: a snapshot to delete or restore.
        let mut snapshot = None;
        if ["unsnapshot-", "restore-"].contains(&case.prefix) {
            let s = c.snapshot_available(&vol).await;
            snapshot = Some(s);
        }
        let mut made = None;
        let r = match case.prefix {
            "extend-" => {
                c.post(&format!("volumes/{vol}/action"), json!({"os-extend": {"new_size": 2}}))
                    .await
            }
            "delete-" => c.delete(&format!("volumes/{vol}")).await,
            "snapshot-" => c.post("snapshots", json!({"snapshot": {"volume_id": vol}})).await,
            "unsnapshot-" => {
                c.delete(&format!("snapshots/{}", snapshot.as_deref().unwrap()))
                    .await
            }
            "clone-" => {
                c.post(
                    "volumes",
                    json!({"volume": {"size": 1, "source_volid": vol, "volume_type": "bad"}}),
                )
                .await
            }
            _ => {
                c.post(
                    "volumes",
                    json!({"volume": {"size": 1, "name": name, "snapshot_id": snapshot, "volume_type": "bad"}}),
                )
                .await
            }
        };
        assert_eq!(r.status, 202, "{}: {}", case.prefix, r.body);
        if let Some(id) = r.body["volume"]["id"].as_str() {
            made = Some(("volumes", id.to_string()));
        }
        if let Some(id) = r.body["snapshot"]["id"].as_str() {
            made = Some(("snapshots", id.to_string()));
        }
        server.wait_log("slow-8: started").await;
        let dir = server.kill9();

        let server = Server::start_in(&dir, &config);
        let c = server.client("alice:proj-a");
        let v = c.wait("volumes", &vol).await;
        match case.volume_after {
            None => assert!(v.is_null(), "{}: {v}", case.prefix),
            Some(status) => assert_eq!(v["status"], status, "{}: {v}", case.prefix),
        }
        if case.prefix == "extend-" {
            assert_eq!(v["size"], 2, "the recovered extend is finished: {v}");
        }
        // What the interrupted call was making ends finished or reverted, never midway.
        if let Some((kind, id)) = &made {
            let it = c.wait(kind, id).await;
            let status = it["status"].as_str().unwrap_or("gone");
            assert!(
                ["available", "error"].contains(&status),
                "{}: {kind}/{id} ended {status}",
                case.prefix
            );
            if status == "error" {
                assert!(
                    !c.messages_for(id).await.is_empty(),
                    "{}: no message",
                    case.prefix
                );
            }
        }
        if case.prefix == "unsnapshot-" {
            let s = c.wait("snapshots", snapshot.as_deref().unwrap()).await;
            assert!(
                s.is_null(),
                "the recovered snapshot delete is finished: {s}"
            );
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A host killed while the real nfs driver extends a volume: whenever the kill lands (the
/// API shows `extending`, the job queued or `qemu-img resize` running or done), the
/// restarted host finishes the extend, and the row and the file agree on the new size.
#[tokio::test]
async fn sigkill_during_a_real_extend_ends_with_row_and_file_agreeing() {
    let mut server = Server::start("");
    for round in 0..5u64 {
        let c = server.client("alice:proj-a");
        let vol = c.create_volume(json!({"size": 1})).await;
        c.wait_status("volumes", &vol, "available").await;
        let new_size = 2 + round;
        let r = c
            .post(
                &format!("volumes/{vol}/action"),
                json!({"os-extend": {"new_size": new_size}}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let dir = server.kill9();

        server = Server::start_in(&dir, "");
        let c = server.client("alice:proj-a");
        let v = c.wait("volumes", &vol).await;
        assert_eq!(v["status"], "available", "round {round}: {v}");
        assert_eq!(v["size"], new_size, "round {round}: {v}");
        assert_eq!(
            crate::common::virtual_size(&server.share().join(format!("volume-{vol}"))),
            new_size << 30,
            "round {round}: the file's size is the row's"
        );
    }
    let dir = server.dir.clone();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connections are made and ended in the request, as Cinder's are: a host killed inside
/// the driver's `initialize_connection` or `terminate_connection` leaves the attachment
/// where the client can take it up again after the restart — the same update or delete
/// once more — and nothing is left that only an administrator could clear.
#[tokio::test]
async fn sigkill_during_attach_or_detach_leaves_a_retryable_attachment() {
    let config = config_with_fixture(60_000, 64);
    let connector = json!({"host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:c1"});
    for prefix in ["attach-", "detach-"] {
        let server = Server::start(&config);
        let c = server.client("alice:proj-a").with_version("3.44");
        let vol = c
            .create_volume(
                json!({"size": 1, "name": format!("{prefix}slow-8"), "volume_type": "bad"}),
            )
            .await;
        c.wait_status("volumes", &vol, "available").await;
        let r = c
            .post("attachments", json!({"attachment": {"volume_uuid": vol}}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
        let update = json!({"attachment": {"connector": connector}});
        let stopped = if prefix == "attach-" {
            let url = format!("attachments/{att}");
            let (c2, body) = (c.clone(), update.clone());
            // The request never gets its answer: the host dies inside the driver call.
            let pending = tokio::spawn(async move { c2.put(&url, body).await });
            server.wait_log("slow-8: started").await;
            let dir = server.kill9();
            pending.abort();
            dir
        } else {
            assert_eq!(
                c.put(&format!("attachments/{att}"), update.clone())
                    .await
                    .status,
                200
            );
            let r = c
                .post(
                    &format!("attachments/{att}/action"),
                    json!({"os-complete": {}}),
                )
                .await;
            assert_eq!(r.status, 204, "{}", r.body);
            let url = format!("attachments/{att}");
            let c2 = c.clone();
            let pending = tokio::spawn(async move { c2.delete(&url).await });
            server.wait_log("slow-8: started").await;
            let dir = server.kill9();
            pending.abort();
            dir
        };

        let server = Server::start_in(&stopped, &config);
        let c = server.client("alice:proj-a").with_version("3.44");
        if prefix == "attach-" {
            // The same update again connects, and the attachment completes.
            let r = c.put(&format!("attachments/{att}"), update).await;
            assert_eq!(r.status, 200, "{prefix}: {}", r.body);
            let r = c
                .post(
                    &format!("attachments/{att}/action"),
                    json!({"os-complete": {}}),
                )
                .await;
            assert_eq!(r.status, 204, "{prefix}: {}", r.body);
            assert_eq!(c.wait("volumes", &vol).await["status"], "in-use");
        }
        // The same delete again ends it, and the volume is free.
        let r = c.delete(&format!("attachments/{att}")).await;
        assert_eq!(r.status, 200, "{prefix}: {}", r.body);
        let v = c.wait("volumes", &vol).await;
        assert_eq!(v["status"], "available", "{prefix}: {v}");
        assert_eq!(v["attachments"], json!([]), "{prefix}: {v}");
        drop(server);
        let _ = std::fs::remove_dir_all(&stopped);
    }
}

/// The nfs backend with `qemu-img` and `rm` behind wrappers that hold the first call
/// matching the pattern in `DIR/hold` (an extended regex over the command line): it records
/// its PID in `DIR/held` and sleeps, so a test knows the driver's command is under way.
/// Later calls run the real programs.
struct Held {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

const HELD_CONFIG: &str = r#"
[backends.local]
driver = "nfs"
exec_dirs = ["@DIR@/bin", "/usr/local/bin", "/usr/bin", "/bin"]
grants.exec = ["qemu-img", "rm", "df", "du"]
grants.block = ["@DIR@/data/volumes"]
settings.share_path = "@DIR@/data/volumes"
"#;

impl Held {
    fn new() -> Held {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for program in ["qemu-img", "rm"] {
            let real = std::process::Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .output()
                .unwrap()
                .stdout;
            let real = String::from_utf8(real).unwrap();
            let wrapper = bin.join(program);
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nd={dir}\nif [ -s $d/hold ] && [ ! -e $d/held ] && echo \"{program} $*\" | grep -Eq -- \"$(cat $d/hold)\"; then\n  echo $$ > $d/held.tmp; mv $d/held.tmp $d/held; exec sleep 60\nfi\nexec {real} \"$@\"\n",
                    dir = dir.display(),
                    real = real.trim()
                ),
            )
            .unwrap();
            let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
            std::fs::set_permissions(&wrapper, perms).unwrap();
        }
        Held { dir, _tmp: tmp }
    }

    /// Holds the next command matching `pattern`.
    fn hold(&self, pattern: &str) {
        std::fs::write(self.dir.join("hold"), pattern).unwrap();
    }

    /// Waits until a command is held, and returns its PID.
    async fn held(&self) -> String {
        let path = self.dir.join("held");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "no command was held");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::read_to_string(&path).unwrap().trim().to_string()
    }
}

/// Every volume and snapshot of the project, once none is transitional: each one available
/// has its file at its recorded size, a failed create has none, and the share holds no
/// file that is not one of them.
async fn files_agree_with_rows(c: &crate::common::Client, share: &std::path::Path, case: &str) {
    const GIB: u64 = 1 << 30;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (volumes, snapshots) = loop {
        let v = c.get("volumes/detail").await.body["volumes"].clone();
        let s = c.get("snapshots/detail").await.body["snapshots"].clone();
        let moving = v
            .as_array()
            .unwrap()
            .iter()
            .chain(s.as_array().unwrap())
            .any(|x| {
                ["creating", "deleting", "extending", "reverting"]
                    .contains(&x["status"].as_str().unwrap())
            });
        if !moving {
            break (v, s);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{case}: still transitional: {v} {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut expected = std::collections::BTreeSet::new();
    for (kind, items) in [("volume", &volumes), ("snapshot", &snapshots)] {
        for x in items.as_array().unwrap() {
            let file = share.join(format!("{kind}-{}", x["id"].as_str().unwrap()));
            // A create the restart reverted: failed, with no file.
            if x["status"] == "error" {
                assert!(
                    !file.exists(),
                    "{case}: a failed create left {}",
                    file.display()
                );
                continue;
            }
            assert_eq!(x["status"], "available", "{case}: {x}");
            assert_eq!(
                crate::common::virtual_size(&file),
                x["size"].as_u64().unwrap() * GIB,
                "{case}: {kind} {} records {} GiB",
                x["id"],
                x["size"]
            );
            expected.insert(file.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    let found: std::collections::BTreeSet<String> = std::fs::read_dir(share)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("volume-") || n.starts_with("snapshot-"))
        .collect();
    assert_eq!(
        found, expected,
        "{case}: files on the share and rows disagree"
    );
}

/// The crash matrix on the real nfs driver: for each operation, the host is killed while
/// the driver's `qemu-img` or `rm` for it runs; that command dies with the host; the
/// restarted host leaves nothing transitional, every live volume and snapshot with its
/// file at its recorded size, and no file that belongs to nothing.
#[tokio::test]
async fn sigkill_inside_each_real_driver_command_leaves_rows_and_files_agreeing() {
    for (case, pattern) in [
        ("create", "qemu-img create"),
        ("delete", "^rm .*volume-"),
        ("extend", "qemu-img resize"),
        ("snapshot", "qemu-img convert .*snapshot-"),
        ("unsnapshot", "^rm .*snapshot-"),
        ("clone", "qemu-img convert .*volume-.*volume-"),
        ("restore", "qemu-img convert .*snapshot-.*volume-"),
    ] {
        let held = Held::new();
        let server = Server::start_in(&held.dir, HELD_CONFIG);
        let c = server.client("alice:proj-a");
        let vol = c.create_volume(json!({"size": 1})).await;
        c.wait_status("volumes", &vol, "available").await;
        let mut snapshot = None;
        if ["unsnapshot", "restore"].contains(&case) {
            let s = c.snapshot_available(&vol).await;
            snapshot = Some(s);
        }
        held.hold(pattern);
        let r = match case {
            "create" => c.post("volumes", json!({"volume": {"size": 2}})).await,
            "delete" => c.delete(&format!("volumes/{vol}")).await,
            "extend" => {
                c.post(
                    &format!("volumes/{vol}/action"),
                    json!({"os-extend": {"new_size": 3}}),
                )
                .await
            }
            "snapshot" => {
                c.post("snapshots", json!({"snapshot": {"volume_id": vol}}))
                    .await
            }
            "unsnapshot" => {
                c.delete(&format!("snapshots/{}", snapshot.as_deref().unwrap()))
                    .await
            }
            "clone" => {
                c.post(
                    "volumes",
                    json!({"volume": {"size": 1, "source_volid": vol}}),
                )
                .await
            }
            _ => {
                c.post(
                    "volumes",
                    json!({"volume": {"size": 1, "snapshot_id": snapshot}}),
                )
                .await
            }
        };
        assert_eq!(r.status, 202, "{case}: {}", r.body);
        let pid = held.held().await;
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let dir = server.kill9();
        // The driver's command dies with its host (the kernel's parent-death signal).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proc_dir.exists()
            && !std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| s.contains(") Z "))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{case}: the driver's command outlived its host"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let server = Server::start_in(&dir, HELD_CONFIG);
        let c = server.client("alice:proj-a");
        files_agree_with_rows(&c, &server.share(), case).await;
        if case == "extend" {
            assert_eq!(
                c.wait("volumes", &vol).await["size"],
                3,
                "the extend is finished"
            );
        }
        drop(server);
    }
}
