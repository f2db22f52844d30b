//! Cinder's quotas: quota sets, quota classes and limits with exact values; usage that
//! follows every create, extend, snapshot and delete; 413 `overLimit` in Cinder's words;
//! concurrent creates that cannot overshoot; a host killed mid-create or mid-delete that
//! leaks nothing; and Cinder's policy for who may read or change them.

use serde_json::{Value, json};

use crate::common::{Client, Server, config_with_fixture};

/// Cinder's defaults: an empty `[quota]` section.
const CINDER_DEFAULTS: &str = "[quota]\n";

/// Every resource's limit as a quota set shows it, for a host whose only volume type is
/// the default one.
fn default_set() -> Value {
    json!({
        "volumes": 10,
        "snapshots": 10,
        "gigabytes": 1000,
        "backups": 10,
        "backup_gigabytes": 1000,
        "groups": 10,
        "per_volume_gigabytes": -1,
        "volumes___DEFAULT__": -1,
        "gigabytes___DEFAULT__": -1,
        "snapshots___DEFAULT__": -1,
    })
}

fn with_id(mut set: Value, id: &str) -> Value {
    set["id"] = json!(id);
    set
}

/// `{in_use, reserved, limit}` of `resource` from `?usage=True`, read by `admin`.
async fn usage(admin: &Client, project: &str, resource: &str) -> (i64, i64, i64) {
    let r = admin
        .get(&format!("os-quota-sets/{project}?usage=True"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.body["quota_set"][resource];
    let keys: Vec<&String> = u.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["in_use", "limit", "reserved"], "{u}");
    (
        u["in_use"].as_i64().unwrap(),
        u["reserved"].as_i64().unwrap(),
        u["limit"].as_i64().unwrap(),
    )
}

async fn in_use(admin: &Client, project: &str, resource: &str) -> i64 {
    usage(admin, project, resource).await.0
}

async fn set_quota(admin: &Client, project: &str, set: Value) {
    let r = admin
        .put(
            &format!("os-quota-sets/{project}"),
            json!({ "quota_set": set }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Waits until `kind/id` is gone (404).
async fn wait_gone(c: &Client, kind: &str, id: &str) {
    let v = c.wait(kind, id).await;
    assert!(v.is_null(), "{kind}/{id} is still there: {v}");
}

#[tokio::test]
async fn quota_sets_show_update_delete_and_defaults() {
    let server = Server::start(CINDER_DEFAULTS);
    let alice = server.client("alice:proj-q");
    let admin = server.client("admin:admin");

    let r = alice.get("os-quota-sets/proj-q").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({ "quota_set": with_id(default_set(), "proj-q") })
    );
    let r = alice.get("os-quota-sets/proj-q/defaults").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({ "quota_set": with_id(default_set(), "proj-q") })
    );

    // An administrator sets some; the answer is the whole set, without an id.
    let r = admin
        .put(
            "os-quota-sets/proj-q",
            json!({"quota_set": {"volumes": 5, "gigabytes": "20", "tenant_id": "proj-q"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut changed = default_set();
    changed["volumes"] = json!(5);
    changed["gigabytes"] = json!(20);
    assert_eq!(r.body, json!({ "quota_set": changed.clone() }));
    let r = alice.get("os-quota-sets/proj-q").await;
    assert_eq!(r.body, json!({ "quota_set": with_id(changed, "proj-q") }));
    // The defaults did not move, nor did another project's quotas.
    let r = alice.get("os-quota-sets/proj-q/defaults").await;
    assert_eq!(r.body["quota_set"]["volumes"], 10);
    let r = admin.get("os-quota-sets/other").await;
    assert_eq!(
        r.body,
        json!({ "quota_set": with_id(default_set(), "other") })
    );

    // Cinder's validation, each refusal writing nothing.
    for (body, message) in [
        (
            json!({"quota_set": {"volumes": 3, "bogus": 1, "worse": 2}}),
            "Invalid input received: Bad key(s) in quota set: bogus, worse",
        ),
        (
            json!({"quota_set": {"volumes": "many"}}),
            "volumes must be an integer",
        ),
        (
            json!({"quota_set": {"volumes": 1.5}}),
            "volumes must be an integer",
        ),
        (
            json!({"quota_set": {"volumes": true}}),
            "volumes must be an integer",
        ),
        (
            json!({"quota_set": {"volumes": -2}}),
            "volumes must be >= -1",
        ),
        (
            json!({"quota_set": {"volumes": 2147483648_i64}}),
            "volumes must be <= 2147483647",
        ),
        (
            json!({"quota_set": {}}),
            "Invalid input for field/attribute quota_set. Value: {}. {} does not have enough properties",
        ),
        (
            json!({"quota": {"volumes": 1}}),
            "Invalid input for field/attribute quota_set. Value: None. 'quota_set' is a required property",
        ),
    ] {
        let r = admin.put("os-quota-sets/proj-q", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.error_message(), message, "{body}");
    }
    assert_eq!(
        alice.get("os-quota-sets/proj-q").await.body["quota_set"]["volumes"],
        5
    );

    // Cinder's policy: only an administrator changes quotas; a member reads only its own.
    let r = alice
        .put(
            "os-quota-sets/proj-q",
            json!({"quota_set": {"volumes": 100}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Policy doesn't allow volume_extension:quotas:update to be performed."
    );
    let r = alice.delete("os-quota-sets/proj-q").await;
    assert_eq!(r.status, 403, "{}", r.body);
    for path in ["os-quota-sets/other", "os-quota-sets/other/defaults"] {
        let r = alice.get(path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert_eq!(
            r.error_message(),
            "Policy doesn't allow volume_extension:quotas:show to be performed."
        );
    }

    // Delete: back to the defaults.
    let r = admin.delete("os-quota-sets/proj-q").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.is_null(), "{}", r.body);
    let r = alice.get("os-quota-sets/proj-q").await;
    assert_eq!(
        r.body,
        json!({ "quota_set": with_id(default_set(), "proj-q") })
    );
}

#[tokio::test]
async fn the_default_quota_class_supplies_the_defaults() {
    let server = Server::start(CINDER_DEFAULTS);
    let alice = server.client("alice:proj-c");
    let admin = server.client("admin:admin");

    let r = admin.get("os-quota-class-sets/default").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({ "quota_class_set": with_id(default_set(), "default") })
    );
    let r = alice.get("os-quota-class-sets/default").await;
    assert_eq!(r.status, 403, "{}", r.body);

    let r = admin
        .put(
            "os-quota-class-sets/default",
            json!({"quota_class_set": {"volumes": 2, "snapshots": 1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut changed = default_set();
    changed["volumes"] = json!(2);
    changed["snapshots"] = json!(1);
    assert_eq!(r.body, json!({ "quota_class_set": changed.clone() }));
    let r = alice
        .put(
            "os-quota-class-sets/default",
            json!({"quota_class_set": {"volumes": 100}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = admin
        .put(
            "os-quota-class-sets/default",
            json!({"quota_class_set": {"nope": 1}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Invalid input received: Bad key(s) in quota class set: nope"
    );
    // Another class takes the default class's values for what it does not set.
    let r = admin.get("os-quota-class-sets/gold").await;
    assert_eq!(
        r.body,
        json!({ "quota_class_set": with_id(changed.clone(), "gold") })
    );

    // Every project without its own limits has the class's, and is held to them.
    let r = alice.get("os-quota-sets/proj-c").await;
    assert_eq!(
        r.body,
        json!({ "quota_set": with_id(changed.clone(), "proj-c") })
    );
    let r = alice.get("os-quota-sets/proj-c/defaults").await;
    assert_eq!(r.body, json!({ "quota_set": with_id(changed, "proj-c") }));
    for _ in 0..2 {
        alice.create_volume(json!({"size": 1})).await;
    }
    let r = alice.post("volumes", json!({"volume": {"size": 1}})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"overLimit": {
            "code": 413,
            "message": "VolumeLimitExceeded: Maximum number of volumes allowed (2) exceeded for quota 'volumes'.",
            "retryAfter": "0",
        }})
    );
    assert_eq!(r.headers["retry-after"], "0");
}

#[tokio::test]
async fn limits_show_the_absolute_limits_and_what_is_used() {
    let server = Server::start(CINDER_DEFAULTS);
    let alice = server.client("alice:proj-l");
    let admin = server.client("admin:admin");
    let v = alice.create_volume(json!({"size": 2})).await;
    alice.wait_status("volumes", &v, "available").await;
    alice.snapshot_available(&v).await;
    set_quota(&admin, "proj-l", json!({"volumes": 7})).await;

    let want = json!({"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": 7,
        "maxTotalSnapshots": 10,
        "maxTotalVolumeGigabytes": 1000,
        "maxTotalBackups": 10,
        "maxTotalBackupGigabytes": 1000,
        "totalVolumesUsed": 1,
        "totalGigabytesUsed": 4,
        "totalSnapshotsUsed": 1,
        "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0,
    }}});
    let r = alice.get("limits").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, want);
    // A member cannot read another project's limits: `project_id` is an administrator's,
    // from 3.39.
    let other = server.client("bob:proj-other");
    let r = other
        .with_version("3.39")
        .get("limits?project_id=proj-l")
        .await;
    assert_eq!(r.body["limits"]["absolute"]["totalVolumesUsed"], 0);
    let r = admin
        .with_version("3.39")
        .get("limits?project_id=proj-l")
        .await;
    assert_eq!(r.body, want);
    let r = admin.get("limits?project_id=proj-l").await;
    assert_eq!(r.body["limits"]["absolute"]["totalVolumesUsed"], 0);
}

#[tokio::test]
async fn usage_follows_create_extend_snapshot_and_delete() {
    let server = Server::start(CINDER_DEFAULTS);
    let alice = server.client("alice:proj-u");
    let admin = server.client("admin:admin");
    admin.create_type("gold", json!({})).await;

    let v = alice
        .create_volume(json!({"size": 2, "volume_type": "gold"}))
        .await;
    // Counted from the moment it is accepted.
    assert_eq!(in_use(&admin, "proj-u", "volumes").await, 1);
    alice.wait_status("volumes", &v, "available").await;
    for (resource, n) in [
        ("volumes", 1),
        ("gigabytes", 2),
        ("volumes_gold", 1),
        ("gigabytes_gold", 2),
        ("volumes___DEFAULT__", 0),
        ("snapshots", 0),
    ] {
        assert_eq!(usage(&admin, "proj-u", resource).await.0, n, "{resource}");
    }

    let r = alice
        .post(
            &format!("volumes/{v}/action"),
            json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    alice.wait_status("volumes", &v, "available").await;
    assert_eq!(usage(&admin, "proj-u", "gigabytes").await, (3, 0, 1000));
    assert_eq!(usage(&admin, "proj-u", "gigabytes_gold").await, (3, 0, -1));

    let s = alice.snapshot_available(&v).await;
    assert_eq!(in_use(&admin, "proj-u", "snapshots").await, 1);
    assert_eq!(in_use(&admin, "proj-u", "snapshots_gold").await, 1);
    assert_eq!(in_use(&admin, "proj-u", "gigabytes").await, 6);

    let from_snapshot = alice
        .create_volume(json!({"size": 3, "snapshot_id": s, "volume_type": "gold"}))
        .await;
    alice
        .wait_status("volumes", &from_snapshot, "available")
        .await;
    assert_eq!(in_use(&admin, "proj-u", "volumes").await, 2);
    assert_eq!(in_use(&admin, "proj-u", "gigabytes").await, 9);
    let clone = alice
        .create_volume(json!({"size": 3, "source_volid": v, "volume_type": "gold"}))
        .await;
    alice.wait_status("volumes", &clone, "available").await;
    assert_eq!(in_use(&admin, "proj-u", "volumes").await, 3);
    assert_eq!(in_use(&admin, "proj-u", "gigabytes").await, 12);

    // Over each quota: 413 in Cinder's words, and nothing written.
    set_quota(&admin, "proj-u", json!({"gigabytes": 14})).await;
    let r = alice.post("volumes", json!({"volume": {"size": 5}})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 5G, quota is 14G and 12G has been consumed."
    );
    let r = alice
        .post(
            &format!("volumes/{v}/action"),
            json!({"os-extend": {"new_size": 6}}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 14G and 12G has been consumed."
    );
    assert_eq!(
        alice.get(&format!("volumes/{v}")).await.body["volume"]["status"],
        "available"
    );
    let r = alice
        .post("snapshots", json!({"snapshot": {"volume_id": v}}))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 14G and 12G has been consumed."
    );
    set_quota(
        &admin,
        "proj-u",
        json!({"gigabytes": -1, "per_volume_gigabytes": 4}),
    )
    .await;
    let r = alice.post("volumes", json!({"volume": {"size": 5}})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "VolumeSizeExceedsLimit: Requested volume size 5G is larger than maximum allowed limit 4G."
    );
    let r = alice
        .post(
            &format!("volumes/{v}/action"),
            json!({"os-extend": {"new_size": 5}}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "VolumeSizeExceedsLimit: Requested volume size 5G is larger than maximum allowed limit 4G."
    );
    set_quota(&admin, "proj-u", json!({"volumes_gold": 3, "snapshots": 1})).await;
    let r = alice
        .post(
            "volumes",
            json!({"volume": {"size": 1, "volume_type": "gold"}}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "VolumeLimitExceeded: Maximum number of volumes allowed (3) exceeded for quota 'volumes_gold'."
    );
    let r = alice
        .post("snapshots", json!({"snapshot": {"volume_id": v}}))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "SnapshotLimitExceeded: Maximum number of snapshots allowed (1) exceeded"
    );
    // A limit below what is held is refused, as Cinder words it.
    let r = admin
        .put("os-quota-sets/proj-u", json!({"quota_set": {"volumes": 2}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Quota volumes limit must be equal or greater than existing resources. Current usage is 3 and the requested limit is 2."
    );
    assert_eq!(usage(&admin, "proj-u", "volumes").await, (3, 0, 10));
    assert_eq!(in_use(&admin, "proj-u", "gigabytes").await, 12);

    // Deletes give everything back once they finish.
    let r = alice.delete(&format!("snapshots/{s}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_gone(&alice, "snapshots", &s).await;
    assert_eq!(in_use(&admin, "proj-u", "snapshots").await, 0);
    assert_eq!(in_use(&admin, "proj-u", "gigabytes").await, 9);
    for id in [&v, &from_snapshot, &clone] {
        let r = alice.delete(&format!("volumes/{id}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        wait_gone(&alice, "volumes", id).await;
    }
    for resource in [
        "volumes",
        "gigabytes",
        "snapshots",
        "volumes_gold",
        "gigabytes_gold",
        "snapshots_gold",
    ] {
        assert_eq!(usage(&admin, "proj-u", resource).await.0, 0, "{resource}");
    }
}

#[tokio::test]
async fn concurrent_creates_cannot_overshoot_the_quota() {
    let server = Server::start("[quota]\nvolumes = 10\n");
    let alice = server.client("alice:proj-race");
    let admin = server.client("admin:admin");
    let racing: Vec<_> = (0..50)
        .map(|i| {
            let c = alice.clone();
            tokio::spawn(async move {
                c.post(
                    "volumes",
                    json!({"volume": {"size": 1, "name": format!("race-{i}")}}),
                )
                .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for r in racing {
        answers.push(r.await.unwrap());
    }
    let accepted: Vec<String> = answers
        .iter()
        .filter(|r| r.status == 202)
        .map(|r| r.body["volume"]["id"].as_str().unwrap().to_string())
        .collect();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 413).collect();
    assert_eq!(accepted.len(), 10, "accepted");
    assert_eq!(refused.len(), 40, "refused");
    for r in &refused {
        assert_eq!(
            r.error_message(),
            "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'."
        );
    }
    for id in &accepted {
        alice.wait_status("volumes", id, "available").await;
    }
    let listed = alice.get("volumes").await;
    assert_eq!(listed.body["volumes"].as_array().unwrap().len(), 10);
    assert_eq!(usage(&admin, "proj-race", "volumes").await, (10, 0, 10));
    assert_eq!(in_use(&admin, "proj-race", "gigabytes").await, 10);
}

#[tokio::test]
async fn a_host_killed_mid_create_or_mid_delete_leaks_no_usage() {
    let config = format!("{}{CINDER_DEFAULTS}", config_with_fixture(60_000, 64));
    let server = Server::start(&config);
    let alice = server.client("alice:proj-k");
    let slow = alice
        .create_volume(json!({"size": 2, "name": "slow-30", "volume_type": "bad"}))
        .await;
    server.wait_log("slow-30: started").await;
    let dir = server.kill9();

    // The interrupted create is reverted to `error`, which still counts until deleted.
    let server = Server::start_in(&dir, &config);
    assert!(
        !server.log().contains("quota usage disagrees"),
        "{}",
        server.log()
    );
    let admin = server.client("admin:admin");
    let alice = server.client("alice:proj-k");
    assert_eq!(alice.wait("volumes", &slow).await["status"], "error");
    assert_eq!(usage(&admin, "proj-k", "volumes").await, (1, 0, 10));
    assert_eq!(in_use(&admin, "proj-k", "gigabytes").await, 2);

    let doomed = alice
        .create_volume(json!({"size": 3, "name": "delete-slow-8", "volume_type": "bad"}))
        .await;
    alice.wait_status("volumes", &doomed, "available").await;
    assert_eq!(in_use(&admin, "proj-k", "gigabytes").await, 5);
    let r = alice.delete(&format!("volumes/{doomed}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    server.wait_log("slow-8: started").await;
    // Still counted while the delete runs.
    assert_eq!(in_use(&admin, "proj-k", "volumes").await, 2);
    let dir = server.kill9();

    // Recovery finishes the delete and gives its usage back, once.
    let server = Server::start_in(&dir, &config);
    assert!(
        !server.log().contains("quota usage disagrees"),
        "{}",
        server.log()
    );
    let admin = server.client("admin:admin");
    let alice = server.client("alice:proj-k");
    wait_gone(&alice, "volumes", &doomed).await;
    assert_eq!(usage(&admin, "proj-k", "volumes").await, (1, 0, 10));
    assert_eq!(in_use(&admin, "proj-k", "gigabytes").await, 2);
    let r = alice.delete(&format!("volumes/{slow}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_gone(&alice, "volumes", &slow).await;
    assert_eq!(usage(&admin, "proj-k", "volumes").await, (0, 0, 10));
    assert_eq!(in_use(&admin, "proj-k", "gigabytes").await, 0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_host_killed_mid_extend_commits_its_reservation_once() {
    let config = format!("{}{CINDER_DEFAULTS}", config_with_fixture(60_000, 64));
    let server = Server::start(&config);
    let alice = server.client("alice:proj-e");
    let admin = server.client("admin:admin");
    let v = alice
        .create_volume(json!({"size": 1, "name": "extend-slow-8", "volume_type": "bad"}))
        .await;
    alice.wait_status("volumes", &v, "available").await;
    let r = alice
        .post(
            &format!("volumes/{v}/action"),
            json!({"os-extend": {"new_size": 4}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    server.wait_log("slow-8: started").await;
    // Held as reserved while the driver works.
    assert_eq!(usage(&admin, "proj-e", "gigabytes").await, (1, 3, 1000));
    let dir = server.kill9();

    // Recovery finishes the extend: the reservation becomes usage, once.
    let server = Server::start_in(&dir, &config);
    let alice = server.client("alice:proj-e");
    let admin = server.client("admin:admin");
    let after = alice.wait_status("volumes", &v, "available").await;
    assert_eq!(after["size"], 4, "{after}");
    assert_eq!(usage(&admin, "proj-e", "gigabytes").await, (4, 0, 1000));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_accepted_transfer_moves_usage_within_the_receivers_quota() {
    let server = Server::start(CINDER_DEFAULTS);
    let giver = server.client("alice:giver");
    let taker = server.client("bob:taker");
    let admin = server.client("admin:admin");
    let vol = giver.create_volume(json!({"size": 2})).await;
    giver.wait_status("volumes", &vol, "available").await;
    giver.snapshot_available(&vol).await;
    let r = giver
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["transfer"]["id"].as_str().unwrap().to_string();
    let key = r.body["transfer"]["auth_key"].as_str().unwrap().to_string();
    let accept = json!({"accept": {"auth_key": key}});

    // No room for the snapshot: refused, and nothing moves.
    set_quota(&admin, "taker", json!({"snapshots": 0})).await;
    let r = taker
        .post(&format!("os-volume-transfer/{id}/accept"), accept.clone())
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "SnapshotLimitExceeded: Maximum number of snapshots allowed (0) exceeded"
    );
    for (project, n, gb) in [("giver", 1, 4), ("taker", 0, 0)] {
        assert_eq!(in_use(&admin, project, "volumes").await, n, "{project}");
        assert_eq!(in_use(&admin, project, "snapshots").await, n, "{project}");
        assert_eq!(in_use(&admin, project, "gigabytes").await, gb, "{project}");
    }

    set_quota(&admin, "taker", json!({"snapshots": 1})).await;
    let r = taker
        .post(&format!("os-volume-transfer/{id}/accept"), accept)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for (project, n, gb) in [("giver", 0, 0), ("taker", 1, 4)] {
        assert_eq!(in_use(&admin, project, "volumes").await, n, "{project}");
        assert_eq!(in_use(&admin, project, "snapshots").await, n, "{project}");
        assert_eq!(in_use(&admin, project, "gigabytes").await, gb, "{project}");
        assert_eq!(
            in_use(&admin, project, "volumes___DEFAULT__").await,
            n,
            "{project}"
        );
    }
}
