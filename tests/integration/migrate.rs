//! Volumes that move: `os-migrate_volume` between two nfs backends (the data copied by the
//! host between their local devices, sparse both ways), a migration that fails half-way
//! (the destination fills up), `os-retype` in place and with a migration, and the
//! refusals of each in Cinder's words.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, Server, read_at, write_at};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Two nfs backends, `a` and `b`, each on a directory of its own, with a type for each.
fn two_backends(share_a: &Path, share_b: &Path) -> String {
    let mut config = String::from(
        "stats_interval_secs = 1\n\n\
         [volume_types.on-a]\nvolume_backend_name = \"a\"\n\n\
         [volume_types.fast-a]\nvolume_backend_name = \"a\"\n\"ashlar:tier\" = \"fast\"\n\n\
         [volume_types.on-b]\nvolume_backend_name = \"b\"\n\n\
         [volume_types.anywhere]\n\"ashlar:tier\" = \"any\"\n\n",
    );
    for (name, share) in [("a", share_a), ("b", share_b)] {
        config.push_str(&format!(
            "[backends.{name}]\ndriver = \"nfs\"\n\
             grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\n\
             grants.block = [\"{share}\"]\n\
             settings.share_path = \"{share}\"\n\
             settings.max_over_subscription_ratio = \"100\"\n\n",
            share = share.display()
        ));
    }
    config
}

/// A temporary directory holding the two backends' shares, `a` and `b`.
fn shares() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    (dir, a, b)
}

/// Waits until a migration or a retype of `id` settles (`migration_status` `success` or
/// `error`, the volume out of `maintenance` and `retyping`); the admin view.
async fn settled(admin: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = admin.get(&format!("volumes/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.body["volume"].clone();
        let mig = v["os-vol-mig-status-attr:migstat"].as_str().unwrap_or("");
        let status = v["status"].as_str().unwrap();
        if ["success", "error"].contains(&mig) && !["maintenance", "retyping"].contains(&status) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "volume {id} still {status}, migration {mig}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bytes on disk (allocated blocks) of a file.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// A pattern that differs at every offset, so a misplaced block shows.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

/// The shares and names of the backend volume `id` is on and of the other one.
async fn placed(
    admin: &Client,
    id: &str,
    share_a: &Path,
    share_b: &Path,
) -> (PathBuf, PathBuf, &'static str, &'static str) {
    let v = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
    let host = v["os-vol-host-attr:host"].as_str().unwrap();
    if host.starts_with("ashlar@a#") {
        (share_a.to_path_buf(), share_b.to_path_buf(), "a", "b")
    } else {
        assert!(host.starts_with("ashlar@b#"), "{host}");
        (share_b.to_path_buf(), share_a.to_path_buf(), "b", "a")
    }
}

fn volume_file(share: &Path, storage_id: &str) -> PathBuf {
    share.join(format!("volume-{storage_id}"))
}

#[tokio::test]
async fn a_volume_migrates_to_another_backend_keeping_its_id_its_bytes_and_its_holes() {
    let (_shares, share_a, share_b) = shares();
    let server = Server::start(&two_backends(&share_a, &share_b));
    let admin = server.client("admin:proj-a");
    let c = server.client("alice:proj-a");

    // Untyped: a type naming its backend would keep it there (the destination must pass
    // the volume's filters, as Cinder's).
    let id = c.create_volume(json!({"size": 2, "name": "mover"})).await;
    c.wait_status("volumes", &id, "available").await;
    let (share_a, share_b, a, b) = placed(&admin, &id, &share_a, &share_b).await;
    let src = volume_file(&share_a, &id);
    // Data at the start, in the middle and at the very end; holes between.
    let (head, middle, tail) = (
        pattern(1, 64 * 1024),
        pattern(2, 3 * MIB as usize),
        pattern(3, 4096),
    );
    write_at(&src, 0, &head);
    write_at(&src, GIB + 12345, &middle);
    write_at(&src, 2 * GIB - 4096, &tail);
    let source_bytes = std::fs::read(&src).unwrap();

    // Only an administrator migrates.
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {"host": format!("ashlar@{b}")}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The destination must be another backend that exists.
    let here = format!("ashlar@{a}");
    for (dest, words) in [
        (here.as_str(), "must be different than the current host"),
        (
            "ashlar@nowhere#p",
            "No available service named ashlar@nowhere",
        ),
        ("nowhere", "HOST@BACKEND"),
    ] {
        let r = admin
            .post(
                &format!("volumes/{id}/action"),
                json!({"os-migrate_volume": {"host": dest}}),
            )
            .await;
        assert_eq!(r.status, 400, "{dest}: {}", r.body);
        assert!(r.error_message().contains(words), "{dest}: {}", r.body);
    }
    let r = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("`host`"), "{}", r.body);

    // The pool named as get_pools names it.
    let pools = admin.get("scheduler-stats/get_pools").await;
    let dest = pools.body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .find(|n| n.starts_with(&format!("ashlar@{b}#")))
        .expect("a pool of the other backend");
    let r = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {"host": dest, "force_host_copy": false, "lock_volume": true}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // A second migration while the first runs is refused.
    let again = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {"host": here}}),
        )
        .await;
    let v = settled(&admin, &id).await;
    if again.status != 400 {
        // The first had already finished: then it was a migration back, which is fine,
        // but this test wants the volume on b.
        panic!(
            "a second migration was accepted while the first ran: {}",
            again.body
        );
    }
    assert_eq!(v["os-vol-mig-status-attr:migstat"], "success", "{v}");
    assert_eq!(v["status"], "available");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "mover");
    assert_eq!(v["os-vol-host-attr:host"], dest.as_str());
    let name_id = v["os-vol-mig-status-attr:name_id"]
        .as_str()
        .expect("a name_id once moved")
        .to_string();
    assert_ne!(name_id, id);
    // A tenant does not see where it is or how it moved.
    let seen = c.get(&format!("volumes/{id}")).await;
    assert!(
        seen.body["volume"]
            .get("os-vol-mig-status-attr:migstat")
            .is_none()
    );
    assert!(seen.body["volume"].get("migration_status").is_none());

    // The copy holds the same bytes, as sparse as the source; the source is gone.
    let dst = volume_file(&share_b, &name_id);
    assert!(!src.exists(), "the storage the volume left is deleted");
    assert_eq!(std::fs::read(&dst).unwrap(), source_bytes);
    assert!(
        allocated(&dst) < 16 * MIB,
        "the copy stays sparse: {} bytes allocated",
        allocated(&dst)
    );
    assert!(server.log().contains("migration: data copied"));

    // The moved volume lives on: extended, snapshotted, cloned, deleted, through its new
    // storage.
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("volumes", &id, "available").await;
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), 3 * GIB);
    let snap = c.snapshot_available(&id).await;
    let clone = c.create_volume(json!({"source_volid": id})).await;
    c.wait_status("volumes", &clone, "available").await;
    assert_eq!(
        read_at(&volume_file(&share_b, &clone), GIB + 12345, middle.len()),
        middle
    );
    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    c.wait_gone("snapshots", &snap).await;
    assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
    c.wait_gone("volumes", &id).await;
    assert!(
        !dst.exists(),
        "deleting the volume deletes its moved storage"
    );
}

#[tokio::test]
async fn a_migration_that_fails_half_way_leaves_the_source_available_and_intact() {
    let (_shares, share_a, share_b) = shares();
    // The destination is a 32 MiB file system: the copy fills it up.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(&share_b)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mounting a tmpfs for the destination");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(share_b.clone());
    let server = Server::start(&two_backends(&share_a, &share_b));
    let admin = server.client("admin:proj-a");
    let c = server.client("alice:proj-a");
    let id = c
        .create_volume(json!({"size": 1, "volume_type": "anywhere"}))
        .await;
    c.wait_status("volumes", &id, "available").await;
    // The scheduler weighs free space: the small destination is not where it lands.
    assert_eq!(placed(&admin, &id, &share_a, &share_b).await.2, "a");
    let src = volume_file(&share_a, &id);
    let data = pattern(7, 64 * MIB as usize);
    write_at(&src, 100 * MIB, &data);
    let before = std::fs::read(&src).unwrap();

    let r = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {"host": "ashlar@b"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = settled(&admin, &id).await;
    assert_eq!(v["os-vol-mig-status-attr:migstat"], "error", "{v}");
    assert_eq!(v["status"], "available");
    assert!(
        v["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .starts_with("ashlar@a#")
    );
    assert!(v["os-vol-mig-status-attr:name_id"].is_null());
    assert_eq!(
        std::fs::read(&src).unwrap(),
        before,
        "the source is untouched"
    );
    // Nothing is left on the destination.
    let left: Vec<_> = std::fs::read_dir(&share_b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the copy was deleted: {left:?}");
    // The administrator is told why, without a host path.
    let msgs = admin.messages_for(&id).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("migrate volume"), "{}", msgs[0]);
    assert!(
        msgs[0].contains("No space left on device")
            && !msgs[0].contains(&*share_b.to_string_lossy()),
        "{}",
        msgs[0]
    );
    // The volume is as usable as before: it migrates again, to a place with room.
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("volumes", &id, "available").await;
}

#[tokio::test]
async fn retype_changes_the_type_in_place_or_by_a_migration_and_moves_the_quota() {
    let (_shares, share_a, share_b) = shares();
    let server = Server::start(&two_backends(&share_a, &share_b));
    let admin = server.client("admin:proj-a");
    let c = server.client("alice:proj-a");
    let id = c
        .create_volume(json!({"size": 1, "volume_type": "on-a"}))
        .await;
    c.wait_status("volumes", &id, "available").await;
    let data = pattern(9, 2 * MIB as usize);
    write_at(&volume_file(&share_a, &id), 5 * MIB, &data);
    let usage = |resource: &'static str| {
        let admin = admin.clone();
        async move {
            let r = admin.get("os-quota-sets/proj-a?usage=True").await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["quota_set"][resource]["in_use"]
                .as_i64()
                .unwrap_or(0)
        }
    };
    assert_eq!(usage("volumes_on-a").await, 1);

    // Bad requests.
    for (body, status, words) in [
        (json!({"os-retype": {}}), 400, "new_type is required"),
        (
            json!({"os-retype": {"new_type": "on-a"}}),
            400,
            "same as original",
        ),
        (
            json!({"os-retype": {"new_type": "gold-z"}}),
            404,
            "gold-z could not be found",
        ),
        (
            json!({"os-retype": {"new_type": "on-b", "migration_policy": "sometimes"}}),
            400,
            "never or on-demand",
        ),
    ] {
        let r = c.post(&format!("volumes/{id}/action"), body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.error_message().contains(words), "{body}: {}", r.body);
    }

    // In place: the backend still suits the new type, and the driver retypes it.
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-retype": {"new_type": "fast-a"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = settled(&admin, &id).await;
    assert_eq!(v["volume_type"], "fast-a", "{v}");
    assert_eq!(v["status"], "available");
    assert!(
        v["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .starts_with("ashlar@a#")
    );
    assert!(
        server
            .log()
            .contains(&format!("retyped volume-{id} to fast-a in place"))
    );
    assert_eq!(usage("volumes_on-a").await, 0);
    assert_eq!(usage("volumes_fast-a").await, 1);
    assert_eq!(usage("gigabytes_fast-a").await, 1);

    // A type only another backend suits, with the default policy: refused, nothing moved.
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-retype": {"new_type": "on-b"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = settled(&admin, &id).await;
    assert_eq!(v["os-vol-mig-status-attr:migstat"], "error", "{v}");
    assert_eq!(v["volume_type"], "fast-a");
    assert_eq!(v["status"], "available");
    assert_eq!(usage("volumes_fast-a").await, 1);
    assert_eq!(usage("volumes_on-b").await, 0);
    let msgs = c.messages_for(&id).await;
    assert!(
        msgs.iter()
            .any(|m| m.contains("Retype requires migration but is not allowed")),
        "{msgs:?}"
    );

    // on-demand: it moves to b, keeps its id and its bytes, and takes the new type.
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-retype": {"new_type": "on-b", "migration_policy": "on-demand"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = settled(&admin, &id).await;
    assert_eq!(v["os-vol-mig-status-attr:migstat"], "success", "{v}");
    assert_eq!(v["volume_type"], "on-b");
    assert_eq!(v["status"], "available");
    assert!(
        v["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .starts_with("ashlar@b#")
    );
    let name_id = v["os-vol-mig-status-attr:name_id"].as_str().unwrap();
    assert_eq!(
        read_at(&volume_file(&share_b, name_id), 5 * MIB, data.len()),
        data
    );
    assert!(!volume_file(&share_a, &id).exists());
    assert_eq!(usage("volumes_fast-a").await, 0);
    assert_eq!(usage("volumes_on-b").await, 1);
    assert_eq!(usage("volumes").await, 1);
}

/// A host killed while it copies: on restart it finds the migration half done and undoes
/// it (the copy deleted, the volume where it was, `migration_status` `error`) — or, if
/// the kill came after the volume pointed at its copy, finishes it. Either way one copy
/// of the data is left, whole, and the volume is available.
#[tokio::test]
async fn a_host_killed_during_a_migration_undoes_or_finishes_it_on_restart() {
    let (_shares, share_a, share_b) = shares();
    let config = two_backends(&share_a, &share_b);
    let server = Server::start(&config);
    let admin = server.client("admin:proj-a");
    let id = admin
        .create_volume(json!({"size": 1, "volume_type": "anywhere"}))
        .await;
    admin.wait_status("volumes", &id, "available").await;
    let (src_share, dst_share, _, b) = placed(&admin, &id, &share_a, &share_b).await;
    let src = volume_file(&src_share, &id);
    // Dense data, so the copy takes a while.
    let data = pattern(5, 512 * MIB as usize);
    write_at(&src, 0, &data);
    write_at(&src, 512 * MIB, &data);
    let r = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {"host": format!("ashlar@{b}")}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    server
        .wait_log("migration: copy made on the destination")
        .await;
    let dir = server.kill9();

    let server = Server::start_in(&dir, &config);
    let admin = server.client("admin:proj-a");
    let v = settled(&admin, &id).await;
    assert_eq!(v["status"], "available", "{v}");
    let files = |share: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(share)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let (on_src, on_dst) = (files(&src_share), files(&dst_share));
    let file = match v["os-vol-mig-status-attr:migstat"].as_str() {
        Some("error") => {
            assert!(
                server.log().contains("interrupted")
                    || admin
                        .messages_for(&id)
                        .await
                        .iter()
                        .any(|m| m.contains("stopped"))
            );
            assert!(on_dst.is_empty(), "the copy is deleted: {on_dst:?}");
            assert_eq!(on_src, vec![src.clone()]);
            src
        }
        Some("success") => {
            let name_id = v["os-vol-mig-status-attr:name_id"].as_str().unwrap();
            assert!(
                on_src.is_empty(),
                "the storage it left is deleted: {on_src:?}"
            );
            assert_eq!(on_dst, vec![volume_file(&dst_share, name_id)]);
            on_dst[0].clone()
        }
        other => panic!("migration ended {other:?}: {v}"),
    };
    assert_eq!(read_at(&file, 0, data.len()), data);
    assert_eq!(read_at(&file, 512 * MIB, data.len()), data);
}
