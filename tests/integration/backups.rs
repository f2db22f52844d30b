//! Backups through the API against the bundled nfs backend and the default posix backup
//! store under the data directory: full and incremental chains restored byte for byte
//! (sha256 of the volume files on the share), restore onto an existing volume, the rules
//! (dependents, statuses, force, in-use, quotas, bad input), the admin actions, export and
//! import of a record, and a host killed during a backup and during a restore.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Client, Server, config_with_fixture, write_at};

const MIB: u64 = 1 << 20;

/// Deterministic bytes that do not compress: xorshift64*.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_of(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}

fn volume_file(server: &Server, id: &str) -> PathBuf {
    server.share().join(format!("volume-{id}"))
}

/// Files under the backup store's directory whose path names `backup_id`.
fn objects_of(server: &Server, backup_id: &str) -> Vec<PathBuf> {
    objects_under(&server.dir.join("data/backups"), backup_id)
}

fn objects_under(root: &Path, backup_id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.to_string_lossy().contains(backup_id) {
                found.push(p.clone());
            }
            if p.is_dir() {
                dirs.push(p);
            }
        }
    }
    found
}

/// Waits until the backup leaves `creating`, `deleting` and `restoring`; its view.
async fn settle(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = c.get(&format!("backups/{id}")).await;
        if r.status == 404 {
            return Value::Null;
        }
        assert_eq!(r.status, 200, "show backup {id}: {}", r.body);
        let b = r.body["backup"].clone();
        if !["creating", "deleting", "restoring"].contains(&b["status"].as_str().unwrap()) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "backup {id} still {}",
            b["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn backup_available(c: &Client, body: Value) -> String {
    let r = c.post("backups", json!({ "backup": body })).await;
    assert_eq!(r.status, 202, "create backup: {}", r.body);
    let id = r.body["backup"]["id"].as_str().unwrap().to_string();
    let b = settle(c, &id).await;
    assert_eq!(b["status"], "available", "backup {id}: {b}");
    id
}

/// Waits until the volume leaves the statuses a restore or a backup holds it in.
async fn volume_settled(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v = c.wait("volumes", id).await;
        if !["backing-up", "restoring-backup"].contains(&v["status"].as_str().unwrap_or("")) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "volume {id} still {}",
            v["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn restore(c: &Client, backup: &str, body: Value) -> (String, Value) {
    let r = c
        .post(
            &format!("backups/{backup}/restore"),
            json!({ "restore": body }),
        )
        .await;
    assert_eq!(r.status, 202, "restore {backup}: {}", r.body);
    assert_eq!(r.body["restore"]["backup_id"], backup);
    let vid = r.body["restore"]["volume_id"].as_str().unwrap().to_string();
    let v = volume_settled(c, &vid).await;
    assert_eq!(settle(c, backup).await["status"], "available");
    (vid, v)
}

async fn available_volume(c: &Client, size: i64) -> String {
    let id = c.create_volume(json!({ "size": size })).await;
    c.wait_status("volumes", &id, "available").await;
    id
}

#[tokio::test]
async fn a_full_and_incremental_chain_restores_byte_for_byte() {
    let server = Server::start("");
    chain_through(&server, true).await;
}

/// The same chain through the S3 component, against a real S3 server that checks
/// signatures.
#[tokio::test]
async fn a_chain_restores_byte_for_byte_through_s3() {
    let weed = crate::seaweedfs::SeaweedFs::start();
    let server = Server::start(&format!(
        r#"
[backup]
driver = "backup-s3"
grants.http = ["{e}"]
settings.endpoint = "{e}"

[backup.credentials.s3]
access_key_id = "{id}"
secret_access_key = "{secret}"
"#,
        e = weed.endpoint,
        id = crate::seaweedfs::ACCESS_KEY_ID,
        secret = crate::seaweedfs::SECRET_ACCESS_KEY,
    ));
    chain_through(&server, false).await;
}

/// A full backup and three incrementals of a sparse volume holding random data, each
/// restored to a new volume byte for byte, one onto an existing volume; deleted newest
/// first (a backup others build on is refused), the quota given back; with `posix`, no
/// object is left in the store's directory.
async fn chain_through(server: &Server, posix: bool) {
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    let file = volume_file(server, &vol);
    // Sparse: data at a few places, holes elsewhere.
    write_at(&file, 0, &noise(1, 3 * MIB as usize));
    write_at(&file, 300 * MIB, &noise(2, MIB as usize + 4097));
    let full_sum = sha256_of(&file);
    let full = backup_available(&c, json!({"volume_id": vol, "name": "full"})).await;
    let shown = c.get(&format!("backups/{full}")).await.body["backup"].clone();
    assert_eq!(shown["is_incremental"], false);
    assert_eq!(shown["size"], 1);
    assert!(shown["object_count"].as_i64().unwrap() > 0, "{shown}");
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");

    // Three incrementals, each after a change.
    let mut chain = vec![(full.clone(), full_sum)];
    for (i, offset) in [(3u64, MIB), (4, 700 * MIB), (5, 1023 * MIB)] {
        write_at(&file, offset, &noise(i, 64 * 1024));
        let inc = backup_available(&c, json!({"volume_id": vol, "incremental": true})).await;
        let b = c.get(&format!("backups/{inc}")).await.body["backup"].clone();
        assert_eq!(b["is_incremental"], true, "{b}");
        chain.push((inc, sha256_of(&file)));
    }
    for (parent, _) in &chain[..chain.len() - 1] {
        let p = c.get(&format!("backups/{parent}")).await.body["backup"].clone();
        assert_eq!(p["has_dependent_backups"], true, "{p}");
    }

    // Each backup restores to a new volume holding exactly the data it was taken from.
    for (id, sum) in &chain {
        let (vid, v) = restore(&c, id, json!({})).await;
        assert_eq!(v["status"], "available", "{v}");
        assert_eq!(v["name"], format!("restore_backup_{id}"));
        assert_eq!(&sha256_of(&volume_file(server, &vid)), sum, "backup {id}");
    }
    // And onto an existing volume, named.
    let target = available_volume(&c, 1).await;
    let (vid, v) = restore(&c, &chain[1].0, json!({"volume_id": target})).await;
    assert_eq!(vid, target);
    assert_eq!(v["status"], "available");
    assert_eq!(sha256_of(&volume_file(server, &target)), chain[1].1);

    // A backup others build on is not deleted; the newest first, then each in turn.
    let r = c.delete(&format!("backups/{full}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Incremental backups exist for this backup."),
        "{}",
        r.error_message()
    );
    for (id, _) in chain.iter().rev() {
        let r = c.delete(&format!("backups/{id}")).await;
        assert_eq!(r.status, 202, "delete {id}: {}", r.body);
        assert!(settle(&c, id).await.is_null(), "backup {id} not deleted");
        assert!(
            !posix || objects_of(server, id).is_empty(),
            "{:?}",
            objects_of(server, id)
        );
    }
    let q = c.get("os-quota-sets/proj-a?usage=true").await;
    assert_eq!(q.body["quota_set"]["backups"]["in_use"], 0, "{}", q.body);
    assert_eq!(q.body["quota_set"]["backup_gigabytes"]["in_use"], 0);
}

#[tokio::test]
async fn lists_views_updates_and_the_admin_actions() {
    let server = Server::start("");
    let c = server.client("alice:proj-a").with_version("3.71");
    let admin = server.client("admin:proj-a").with_version("3.71");
    let other = server.client("bob:proj-b").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    let b1 = backup_available(
        &c,
        json!({"volume_id": vol, "name": "one", "description": "d", "metadata": {"k": "v"}}),
    )
    .await;
    let b2 = backup_available(&c, json!({"volume_id": vol, "name": "two"})).await;

    let list = c.get("backups").await.body;
    assert_eq!(list["backups"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list["backups"][0]["id"], b2, "newest first");
    let detail = c.get("backups/detail?name=one&with_count=true").await.body;
    assert_eq!(detail["count"], 1, "{detail}");
    let one = &detail["backups"][0];
    assert_eq!(one["metadata"], json!({"k": "v"}));
    assert_eq!(one["user_id"], "alice");
    assert_eq!(one["container"], "volumebackups");
    assert!(one.get("os-backup-project-attr:project_id").is_none());
    let page = c.get("backups?limit=1").await.body;
    assert!(
        page["backups_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains(&format!("marker={b2}"))
    );
    let at30 = c
        .with_version("3.0")
        .get(&format!("backups/{b1}"))
        .await
        .body;
    assert!(at30["backup"].get("metadata").is_none(), "{at30}");
    assert!(at30["backup"].get("user_id").is_none(), "{at30}");
    let seen = admin.get(&format!("backups/{b1}")).await.body;
    assert_eq!(
        seen["backup"]["os-backup-project-attr:project_id"],
        "proj-a"
    );
    assert_eq!(other.get(&format!("backups/{b1}")).await.status, 404);
    assert!(
        other.get("backups").await.body["backups"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Update: 3.9 for name and description, 3.43 for metadata.
    let r = c
        .with_version("3.8")
        .put(&format!("backups/{b1}"), json!({"backup": {"name": "x"}}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = c
        .with_version("3.9")
        .put(
            &format!("backups/{b1}"),
            json!({"backup": {"metadata": {"a": "b"}}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("3.43"), "{}", r.error_message());
    let r = c
        .put(
            &format!("backups/{b1}"),
            json!({"backup": {"name": "renamed", "metadata": {"a": "b"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["backup"]["name"], "renamed");
    let b = c.get(&format!("backups/{b1}")).await.body["backup"].clone();
    assert_eq!(b["metadata"], json!({"a": "b"}));
    assert_eq!(b["description"], "d");

    // Progress (Ashlar's): a finished backup read every byte.
    let p = c.get(&format!("backups/{b1}/progress")).await.body;
    assert_eq!(p["progress"]["status"], "available");
    assert_eq!(p["progress"]["percent"], 100.0, "{p}");

    // Admin actions: members are refused, administrators reset and force delete.
    let reset = json!({"os-reset_status": {"status": "error"}});
    let r = c.post(&format!("backups/{b1}/action"), reset.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = admin
        .post(
            &format!("backups/{b1}/action"),
            json!({"os-reset_status": {"status": "creating"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("available, error"),
        "{}",
        r.error_message()
    );
    let r = admin.post(&format!("backups/{b1}/action"), reset).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        c.get(&format!("backups/{b1}")).await.body["backup"]["status"],
        "error"
    );
    let r = c
        .post(&format!("backups/{b1}/restore"), json!({"restore": {}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Backup status must be available")
    );
    let force = json!({"os-force_delete": {}});
    assert_eq!(
        c.post(&format!("backups/{b2}/action"), force.clone())
            .await
            .status,
        403
    );
    let r = admin.post(&format!("backups/{b2}/action"), force).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(settle(&c, &b2).await.is_null());
    assert!(objects_of(&server, &b2).is_empty());
    // An errored backup is deleted by its owner.
    assert_eq!(c.delete(&format!("backups/{b1}")).await.status, 202);
    assert!(settle(&c, &b1).await.is_null());
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let server = Server::start(
        "[quota]\nbackups = 2\nbackup_gigabytes = 2\nvolumes = -1\ngigabytes = -1\nsnapshots = -1\n",
    );
    let c = server.client("alice:proj-a").with_version("3.71");
    let admin = server.client("admin:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;

    let bad = |body: Value| {
        let c = c.clone();
        async move { c.post("backups", json!({ "backup": body })).await }
    };
    let r = bad(json!({})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("volume_id"),
        "{}",
        r.error_message()
    );
    let r = bad(json!({"volume_id": vol, "colour": "red"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("'colour'"),
        "{}",
        r.error_message()
    );
    let r = bad(json!({"volume_id": vol, "force": "maybe"})).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("force"), "{}", r.error_message());
    let r = bad(json!({"volume_id": vol, "container": "a/b"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("container"),
        "{}",
        r.error_message()
    );
    let r = c
        .with_version("3.42")
        .post(
            "backups",
            json!({"backup": {"volume_id": vol, "metadata": {"a": "b"}}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("3.43"), "{}", r.error_message());
    let r = bad(json!({"volume_id": "9b3e3c6e-0000-4000-8000-000000000000"})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = bad(json!({"volume_id": vol, "incremental": true})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message()
            .contains("No backups available to do an incremental backup."),
        "{}",
        r.error_message()
    );
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");

    // In use: only with force (through a temporary clone of the volume).
    let r = admin
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-reset_status": {"status": "in-use"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = bad(json!({"volume_id": vol})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message()
            .contains("Backing up an in-use volume must use the force flag."),
        "{}",
        r.error_message()
    );
    write_at(&volume_file(&server, &vol), 0, &noise(9, 2 * MIB as usize));
    let sum = sha256_of(&volume_file(&server, &vol));
    let forced = backup_available(&c, json!({"volume_id": vol, "force": true})).await;
    assert_eq!(
        volume_settled(&c, &vol).await["status"],
        "in-use",
        "the volume returns to in-use"
    );
    let temps: Vec<_> = std::fs::read_dir(server.share())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        temps,
        vec![format!("volume-{vol}")],
        "no temporary volume left"
    );
    let (copy, _) = restore(&c, &forced, json!({"name": "copy"})).await;
    assert_eq!(sha256_of(&volume_file(&server, &copy)), sum);
    // A restore onto a volume that is not available, or too small, is refused.
    let r = c
        .post(
            &format!("backups/{forced}/restore"),
            json!({"restore": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("must be available"),
        "{}",
        r.error_message()
    );

    // Quotas: the third backup, and a backup over backup_gigabytes, are 413.
    let big = available_volume(&c, 2).await;
    let r = bad(json!({"volume_id": big})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.error_message()
            .starts_with("VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds allowed Backup gigabytes quota."),
        "{}",
        r.error_message()
    );
    assert_eq!(
        c.wait("volumes", &big).await["status"],
        "available",
        "nothing held"
    );
    let _second = backup_available(&c, json!({"volume_id": copy})).await;
    let r = bad(json!({"volume_id": copy})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.error_message()
            .starts_with("BackupLimitExceeded: Maximum number of backups allowed (2) exceeded"),
        "{}",
        r.error_message()
    );
    // Snapshots: of the volume, and available.
    let other = available_volume(&c, 1).await;
    let snap = c.snapshot_available(&other).await;
    let r = bad(json!({"volume_id": copy, "snapshot_id": snap})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("is not a snapshot of volume"));
}

#[tokio::test]
async fn a_backup_of_a_snapshot_reads_the_snapshot() {
    let server = Server::start("");
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    let file = volume_file(&server, &vol);
    write_at(&file, 5 * MIB, &noise(11, MIB as usize));
    let then = sha256_of(&file);
    let snap = c.snapshot_available(&vol).await;
    write_at(&file, 5 * MIB, &noise(12, MIB as usize));
    let b = backup_available(&c, json!({"volume_id": vol, "snapshot_id": snap})).await;
    let shown = c.get(&format!("backups/{b}")).await.body["backup"].clone();
    assert_eq!(shown["snapshot_id"], snap);
    assert_eq!(
        c.get(&format!("snapshots/{snap}")).await.body["snapshot"]["status"],
        "available"
    );
    let (copy, _) = restore(&c, &b, json!({})).await;
    assert_eq!(sha256_of(&volume_file(&server, &copy)), then);
}

#[tokio::test]
async fn a_backend_without_a_local_device_says_backups_are_not_supported() {
    let server = Server::start(&config_with_fixture(60_000, 64));
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "bad", "name": "plain"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    let r = c
        .post("backups", json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["backup"]["id"].as_str().unwrap().to_string();
    let b = settle(&c, &id).await;
    assert_eq!(b["status"], "error", "{b}");
    let reason = b["fail_reason"].as_str().unwrap();
    assert!(
        reason.contains("Backups of volumes on backend bad are not supported"),
        "{reason}"
    );
    assert!(
        !reason.contains(&server.dir.to_string_lossy().to_string()),
        "{reason}"
    );
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");
    let msgs = c.messages_for(&id).await;
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("create backup:Backup driver failed to create backup.")),
        "{msgs:?}"
    );
}

/// A store whose engine moves one 1 MiB chunk at a time, so that a backup of a few hundred
/// MiB is still running when the test looks.
const SLOW_STORE: &str = r#"
[backup]
driver = "backup-posix"
grants.directory = ["@DIR@/store"]
settings.backup_path = "@DIR@/store"
chunk_size_mib = 1
threads = 1
store_parallelism = 1
"#;

/// `mib` MiB of chunks that neither compress nor repeat: one block of noise, stamped with
/// its index.
fn fill(path: &Path, mib: u64) {
    let block = noise(77, MIB as usize);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    use std::os::unix::fs::FileExt;
    for i in 0..mib {
        let mut b = block.clone();
        b[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all_at(&b, i * MIB).unwrap();
    }
    f.sync_all().unwrap();
}

/// Waits until `backup` reports progress while still `status` (the engine is moving
/// bytes); fails if it finishes first.
async fn progress_under_way(c: &Client, backup: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = c.get(&format!("backups/{backup}/progress")).await.body["progress"].clone();
        assert_eq!(
            p["status"], status,
            "the operation ended before the test could stop the host: {p}"
        );
        let done = p["done_bytes"].as_i64().unwrap();
        if done > 0 && done < p["total_bytes"].as_i64().unwrap() {
            return;
        }
        assert!(Instant::now() < deadline, "no progress: {p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Backup ids that have objects in the store's container.
fn stored_backups(store: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(store.join("volumebackups"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Waits until the store holds objects of exactly `ids`; fails after a minute, saying
/// `what` and what it holds.
async fn store_comes_to_hold(store: &Path, ids: &[String], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = stored_backups(store);
        if held == ids {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the store still holds {held:?}, not {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigkill_during_a_backup_and_a_restore_leaves_cinders_states_and_no_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("store")).unwrap();
    let server = Server::start_in(tmp.path(), SLOW_STORE);
    let store = server.dir.join("store");
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    fill(&volume_file(&server, &vol), 384);
    let sum = sha256_of(&volume_file(&server, &vol));
    let kept = backup_available(&c, json!({"volume_id": vol, "name": "kept"})).await;
    // A backup deleted here whose objects are found again in the store (what a store
    // restored from a copy, or a delete cut short before the store synced, leaves).
    let gone = backup_available(&c, json!({"volume_id": vol, "name": "gone"})).await;
    assert_eq!(c.delete(&format!("backups/{gone}")).await.status, 202);
    assert!(settle(&c, &gone).await.is_null());

    // Killed while the engine stores the second backup's chunks.
    let r = c
        .post("backups", json!({"backup": {"volume_id": vol}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let cut = r.body["backup"]["id"].as_str().unwrap().to_string();
    progress_under_way(&c, &cut, "creating").await;
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "backing-up"
    );
    assert!(
        !objects_under(&store, &cut).is_empty(),
        "the engine had stored chunks"
    );
    let dir = server.kill9();
    // Objects the sweep finds: the deleted backup's (removed), and those of a backup this
    // database never recorded (another host's, or a record awaiting import: reported).
    let stray = "5c1e0d2a-7b7d-4f7e-9a55-0d6f3a1b2c3d";
    for id in [gone.as_str(), stray] {
        std::fs::create_dir_all(store.join("volumebackups").join(id)).unwrap();
        std::fs::write(store.join("volumebackups").join(id).join("chunk-0"), b"x").unwrap();
    }

    let server = Server::start_in(&dir, SLOW_STORE);
    let c = server.client("alice:proj-a").with_version("3.71");
    let b = settle(&c, &cut).await;
    assert_eq!(b["status"], "error", "{b}");
    assert!(
        b["fail_reason"]
            .as_str()
            .unwrap()
            .contains("The host stopped while the backup was being made"),
        "{b}"
    );
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");
    server
        .wait_log("removing the objects of a deleted backup")
        .await;
    let mut left = vec![kept.clone(), stray.to_string()];
    left.sort();
    // The sweep logs each removal as it starts it: wait for the store to get there.
    store_comes_to_hold(
        &store,
        &left,
        "the cut backup's and the deleted backup's objects are gone",
    )
    .await;
    server
        .wait_log(&format!(
            "objects of backup {stray}, which this database never recorded"
        ))
        .await;
    std::fs::remove_dir_all(store.join("volumebackups").join(stray)).unwrap();

    // Killed while the restore writes onto a new volume.
    let r = c
        .post(
            &format!("backups/{kept}/restore"),
            json!({"restore": {"name": "cut"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let target = r.body["restore"]["volume_id"].as_str().unwrap().to_string();
    progress_under_way(&c, &kept, "restoring").await;
    let dir = server.kill9();

    let server = Server::start_in(&dir, SLOW_STORE);
    let c = server.client("alice:proj-a").with_version("3.71");
    assert_eq!(settle(&c, &kept).await["status"], "available");
    let v = volume_settled(&c, &target).await;
    assert_eq!(v["status"], "error_restoring", "{v}");
    let msgs = c.messages_for(&kept).await;
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("restore backup:Backup driver failed to restore backup.")),
        "{msgs:?}"
    );
    assert_eq!(stored_backups(&store), vec![kept.clone()]);
    // The backup is whole: a restore after the restart gives back every byte.
    let (copy, v) = restore(&c, &kept, json!({})).await;
    assert_eq!(v["status"], "available");
    assert_eq!(sha256_of(&volume_file(&server, &copy)), sum);
    assert_eq!(dir, tmp.path());
}

#[tokio::test]
async fn an_exported_record_imports_on_another_host_of_the_same_store() {
    let shared = tempfile::tempdir().unwrap();
    let config = format!(
        "[backup]\ndriver = \"backup-posix\"\ngrants.directory = [\"{0}\"]\nsettings.backup_path = \"{0}\"\n",
        shared.path().display()
    );
    let a = Server::start(&config);
    let c = a.client("alice:proj-a").with_version("3.71");
    let admin = a.client("admin:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    write_at(
        &volume_file(&a, &vol),
        10 * MIB,
        &noise(21, 3 * MIB as usize),
    );
    let sum = sha256_of(&volume_file(&a, &vol));
    let b = backup_available(
        &c,
        json!({"volume_id": vol, "name": "travels", "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(
        c.get(&format!("backups/{b}/export_record")).await.status,
        403
    );
    let r = admin.get(&format!("backups/{b}/export_record")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let record = r.body["backup-record"].clone();
    assert_eq!(record["backup_service"], "ashlar.backup.backup-posix");
    let r = admin
        .post(
            "backups/import_record",
            json!({"backup-record": record.clone()}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Backup already exists in database.")
    );
    drop(a);

    // Another host, its own database, the same store.
    let b_host = Server::start(&config);
    let admin = b_host.client("admin:proj-b").with_version("3.71");
    let r = admin
        .post("backups/import_record", json!({"backup-record": {"backup_service": "ashlar.backup.backup-posix", "backup_url": "not base64!"}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("Can't parse backup record"),
        "{}",
        r.error_message()
    );
    let r = admin
        .post("backups/import_record", json!({"backup-record": {"backup_service": "cinder.backup.drivers.swift.SwiftBackupDriver", "backup_url": record["backup_url"]}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("ashlar.backup.backup-posix"),
        "{}",
        r.error_message()
    );
    let r = admin
        .post(
            "backups/import_record",
            json!({"backup-record": record.clone()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["backup"]["id"], b);
    assert_eq!(r.body["backup"]["name"], "travels");
    let shown = admin.get(&format!("backups/{b}")).await.body["backup"].clone();
    assert_eq!(shown["status"], "available", "{shown}");
    assert_eq!(shown["metadata"], json!({"k": "v"}));
    assert_eq!(shown["volume_id"], vol);
    let (copy, v) = restore(&admin, &b, json!({})).await;
    assert_eq!(v["status"], "available");
    assert_eq!(sha256_of(&volume_file(&b_host, &copy)), sum);

    // Deleted, its objects go: the record no longer imports, and says why.
    assert_eq!(admin.delete(&format!("backups/{b}")).await.status, 202);
    assert!(settle(&admin, &b).await.is_null());
    let r = admin
        .post("backups/import_record", json!({"backup-record": record}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("has no complete backup"),
        "{}",
        r.error_message()
    );
}

/// `ashlar backup create|list|restore`, an operator's scripting outside the OpenStack
/// clients: each follows its operation to the end and prints the id.
#[tokio::test]
async fn the_ashlar_backup_commands_back_up_list_and_restore() {
    let server = Server::start("");
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    write_at(
        &volume_file(&server, &vol),
        7 * MIB,
        &noise(31, 2 * MIB as usize),
    );
    let sum = sha256_of(&volume_file(&server, &vol));
    let ashlar = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ashlar"))
            .args(args)
            .args(["--url", &server.base, "--token", "alice:proj-a"])
            .output()
            .expect("run ashlar");
        assert!(
            out.status.success(),
            "ashlar {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = ashlar(&["backup", "create", &vol, "--name", "scripted"]);
    assert_eq!(
        c.get(&format!("backups/{id}")).await.body["backup"]["status"],
        "available",
        "create returns once the backup is available"
    );
    let listed = ashlar(&["backup", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("scripted"),
        "{listed}"
    );
    let restored = ashlar(&["backup", "restore", &id, "--name", "from-cli"]);
    let v = c.wait("volumes", &restored).await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["name"], "from-cli");
    assert_eq!(sha256_of(&volume_file(&server, &restored)), sum);
    let onto = available_volume(&c, 1).await;
    let again = ashlar(&["backup", "restore", &id, "--volume", &onto]);
    assert_eq!(again, onto);
    assert_eq!(sha256_of(&volume_file(&server, &onto)), sum);
}

/// A corrupted chunk object and a missing one each fail the restore loudly: the volume
/// ends `error_restoring`, the backup stays `available`, a user message says the restore
/// failed; never silently wrong data.
#[tokio::test]
async fn a_corrupt_or_missing_object_fails_the_restore_loudly() {
    let server = Server::start("");
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = available_volume(&c, 1).await;
    write_at(
        &volume_file(&server, &vol),
        0,
        &noise(11, (8 * MIB) as usize),
    );
    let backup = backup_available(&c, json!({ "volume_id": vol })).await;
    let chunks: Vec<PathBuf> = objects_of(&server, &backup)
        .into_iter()
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "manifest"))
        .collect();
    assert!(
        chunks.len() >= 2,
        "8 MiB of noise is two chunks: {chunks:?}"
    );

    // One byte flipped in a stored chunk.
    let good = std::fs::read(&chunks[0]).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&chunks[0], &bad).unwrap();
    let target = available_volume(&c, 1).await;
    let (restored, v) = restore(&c, &backup, json!({ "volume_id": target })).await;
    assert_eq!(restored, target);
    assert_eq!(v["status"], "error_restoring", "corrupt chunk: {v}");

    // The chunk mended, another one gone.
    std::fs::write(&chunks[0], &good).unwrap();
    std::fs::remove_file(&chunks[1]).unwrap();
    let (fresh, v) = restore(&c, &backup, json!({})).await;
    assert_eq!(v["status"], "error_restoring", "missing chunk: {v}");

    let r = c.get("messages").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let failed_restores = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["event_id"]
                .as_str()
                .is_some_and(|e| e.starts_with("VOLUME_VOLUME_BACKUP_015"))
        })
        .count();
    assert!(
        failed_restores >= 2,
        "one message per failed restore ({target}, {fresh}): {}",
        r.body
    );
    // The source is untouched by either.
    assert_eq!(settle(&c, &backup).await["status"], "available");
}
