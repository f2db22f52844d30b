//! `os-services` and `capabilities`: this host's scheduler and backends with their
//! heartbeat state, disabling a backend for scheduling (a create then finds no valid
//! backend until it is enabled again), Cinder's answers for what Ashlar does not do, and
//! a backend's capabilities from its driver's stats.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::Server;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn hosts(r: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services: {r}"))
        .iter()
        .map(|s| {
            (
                s["binary"].as_str().unwrap().to_string(),
                s["host"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn services_are_listed_filtered_disabled_and_enabled() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let alice = server.client("alice:demo");

    let r = admin.get("os-services").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        hosts(&r.body),
        vec![
            ("cinder-scheduler".into(), "ashlar".into()),
            ("cinder-volume".into(), "ashlar@local".into())
        ]
    );
    let volume = r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["binary"] == "cinder-volume")
        .unwrap()
        .clone();
    assert_eq!(
        keys(&volume),
        set(&[
            "binary",
            "host",
            "zone",
            "status",
            "state",
            "updated_at",
            "disabled_reason",
            "replication_status",
            "active_backend_id",
            "frozen"
        ])
    );
    assert_eq!(volume["zone"], "nova");
    assert_eq!(volume["status"], "enabled");
    assert_eq!(volume["state"], "up");
    assert_eq!(volume["disabled_reason"], Value::Null);
    // 3.7 adds the cluster, 3.49 the backend's state (volume services only).
    let r = admin.with_version("3.49").get("os-services").await;
    for s in r.body["services"].as_array().unwrap() {
        assert!(s.get("cluster").is_some(), "{s}");
        if s["binary"] == "cinder-volume" {
            assert_eq!(s["backend_state"], "up", "{s}");
        } else {
            assert!(s.get("backend_state").is_none(), "{s}");
            assert_eq!(
                keys(s),
                set(&[
                    "binary",
                    "host",
                    "zone",
                    "status",
                    "state",
                    "updated_at",
                    "disabled_reason",
                    "cluster"
                ])
            );
        }
    }

    // Filters: a host takes its backends too, as Cinder's.
    let only = |q: &'static str| {
        let admin = admin.clone();
        async move { hosts(&admin.get(&format!("os-services?{q}")).await.body) }
    };
    assert_eq!(
        only("binary=cinder-volume").await,
        vec![("cinder-volume".into(), "ashlar@local".into())]
    );
    assert_eq!(only("host=ashlar").await.len(), 2);
    assert_eq!(
        only("host=ashlar@local").await,
        vec![("cinder-volume".into(), "ashlar@local".into())]
    );
    assert_eq!(only("host=elsewhere").await, vec![]);

    // Administrators only.
    let r = alice.get("os-services").await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = alice
        .put(
            "os-services/disable",
            json!({"host": "ashlar@local", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Disable with a reason: the only backend is passed by, as Cinder's "No valid backend".
    let r = admin
        .put(
            "os-services/disable-log-reason",
            json!({"host": "ashlar@local", "binary": "cinder-volume", "disabled_reason": "disk swap"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"disabled": true, "disabled_reason": "disk swap", "host": "ashlar@local",
               "service": "", "binary": "cinder-volume", "status": "disabled"})
    );
    let listed = admin.get("os-services?binary=cinder-volume").await;
    assert_eq!(listed.body["services"][0]["status"], "disabled");
    assert_eq!(listed.body["services"][0]["disabled_reason"], "disk swap");
    let vol = alice.create_volume(json!({"size": 1})).await;
    assert_eq!(alice.wait("volumes", &vol).await["status"], "error");
    let msgs = alice.messages_for(&vol).await;
    assert!(msgs[0].contains("No valid backend"), "{msgs:?}");
    assert!(msgs[0].contains("ashlar@local: Disabled"), "{msgs:?}");
    assert!(!msgs[0].contains("disk swap"), "{msgs:?}");

    // Enable: the reason is cleared and creates land again.
    let r = admin
        .put(
            "os-services/enable",
            json!({"host": "ashlar@local", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"disabled": false, "disabled_reason": null, "host": "ashlar@local",
               "service": "", "binary": "cinder-volume", "status": "enabled"})
    );
    let vol = alice.create_volume(json!({"size": 1})).await;
    alice.wait_status("volumes", &vol, "available").await;

    // A plain disable has no reason in its answer, and disables as well.
    let r = admin
        .put(
            "os-services/disable",
            json!({"host": "ashlar@local", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"disabled": true, "host": "ashlar@local", "service": "",
               "binary": "cinder-volume", "status": "disabled"})
    );
    let vol = alice.create_volume(json!({"size": 1})).await;
    assert_eq!(alice.wait("volumes", &vol).await["status"], "error");
    admin
        .put(
            "os-services/enable",
            json!({"host": "ashlar@local", "binary": "cinder-volume"}),
        )
        .await;

    // What Cinder would refuse, and what Ashlar cannot do.
    let r = admin
        .put(
            "os-services/disable",
            json!({"host": "ashlar@nowhere", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = admin
        .put("os-services/disable", json!({"binary": "cinder-volume"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("Host field is missing"));
    let r = admin
        .put(
            "os-services/disable-log-reason",
            json!({"host": "ashlar@local", "binary": "cinder-volume", "disabled_reason": "  "}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Disabled reason contains invalid characters or is too long"
    );
    let r = admin
        .put("os-services/reboot", json!({"host": "ashlar@local"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("Unknown action"), "{}", r.body);
    for action in ["freeze", "thaw", "failover_host"] {
        let r = admin
            .put(
                &format!("os-services/{action}"),
                json!({"host": "ashlar@local"}),
            )
            .await;
        assert_eq!(r.status, 405, "{action}: {}", r.body);
        assert!(r.body.get("badMethod").is_some(), "{}", r.body);
        assert!(
            r.error_message()
                .starts_with(&format!("Operation not supported: {action}.")),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_service_whose_heartbeat_is_older_than_service_down_time_is_down() {
    // One heartbeat at start, none for an hour; down after a second.
    let server = Server::start("report_interval = 3600\nservice_down_time = 1\n");
    let admin = server.client("admin:admin");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = admin.get("os-services").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let states: Vec<&str> = r.body["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(states.len(), 2, "{}", r.body);
        if states.iter().all(|s| *s == "down") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {states:?} 30 s after start with service_down_time = 1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Down is a heartbeat's age, not the disable flag.
    let s = &admin.get("os-services?binary=cinder-volume").await.body["services"][0];
    assert_eq!(s["status"], "enabled");
}

#[tokio::test]
async fn a_backends_capabilities_come_from_its_driver() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let r = admin.get("capabilities/ashlar@local").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = &r.body;
    assert_eq!(
        keys(c),
        set(&[
            "namespace",
            "vendor_name",
            "volume_backend_name",
            "pool_name",
            "driver_version",
            "storage_protocol",
            "display_name",
            "description",
            "visibility",
            "replication_targets",
            "properties"
        ])
    );
    assert_eq!(c["namespace"], "OS::Storage::Capabilities::ashlar@local");
    // The same figures the scheduler sees for the backend's pool.
    let pools = admin.get("scheduler-stats/get_pools?detail=true").await;
    let pool = &pools.body["pools"][0];
    let caps = &pool["capabilities"];
    for key in [
        "vendor_name",
        "driver_version",
        "storage_protocol",
        "volume_backend_name",
    ] {
        assert_eq!(c[key], caps[key], "{key}: {c} vs {caps}");
        assert!(c[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {c}");
    }
    assert_eq!(c["pool_name"], caps["pool_name"]);
    assert_eq!(c["replication_targets"], json!([]));
    for (name, p) in c["properties"].as_object().unwrap() {
        assert_eq!(keys(p), set(&["title", "description", "type"]), "{name}");
    }
    assert!(c["properties"].get("thin_provisioning").is_some());

    let r = admin.get("capabilities/ashlar@nowhere").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.error_message(), "Can't find service: ashlar@nowhere");
    let r = server
        .client("alice:demo")
        .get("capabilities/ashlar@local")
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}
