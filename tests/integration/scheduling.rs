//! The scheduler's decisions, seen through the API: a type whose extra specs no backend
//! satisfies leaves the volume in `error` with the reason in the messages API (each
//! backend and what it lacks; pools and their directories only for administrators).

use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn unsatisfiable_extra_spec_errors_with_a_reason() {
    let server = Server::start("");
    let admin = server.client("admin:proj-a");
    admin
        .create_type(
            "fast",
            json!({"capabilities:storage_protocol": "<in> iSCSI"}),
        )
        .await;
    admin
        .create_type("huge-thick", json!({"provisioning:type": "thick"}))
        .await;
    admin.create_type("nfs-raw", json!({"volume_backend_name": "local", "volume_format": "raw", "sparse_volumes": "<is> True"})).await;

    let c = server.client("alice:proj-a");
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "fast"}))
        .await;
    let v = c.wait("volumes", &vol).await;
    assert_eq!(v["status"], "error");
    let msgs = c.messages_for(&vol).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("No valid backend"), "{}", msgs[0]);
    assert!(
        msgs[0].contains("storage_protocol"),
        "the reason names the capability: {}",
        msgs[0]
    );
    // The backend, not its pool: the nfs driver names a pool after its export's directory.
    assert!(
        msgs[0].contains("ashlar@local") && !msgs[0].contains('#') && !msgs[0].contains('/'),
        "the reason names the backend: {}",
        msgs[0]
    );
    // Nothing was made on the share.
    assert!(!server.share().join(format!("volume-{vol}")).exists());

    // A thick request on a thin-only share is refused by the capacity filter.
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "huge-thick"}))
        .await;
    assert_eq!(c.wait("volumes", &vol).await["status"], "error");
    let msgs = c.messages_for(&vol).await;
    assert!(msgs[0].contains("thick"), "{}", msgs[0]);

    // A satisfiable type lands on the named backend.
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "nfs-raw"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    let shown = admin.get(&format!("volumes/{vol}")).await;
    assert!(
        shown.body["volume"]["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .starts_with("ashlar@local#")
    );

    // An error volume can be deleted.
    let errored = msgs_volume(&c).await;
    assert_eq!(c.delete(&format!("volumes/{errored}")).await.status, 202);
    assert!(c.wait("volumes", &errored).await.is_null());
}

async fn msgs_volume(c: &crate::common::Client) -> String {
    let r = c.get("volumes/detail?status=error").await;
    r.body["volumes"][0]["id"]
        .as_str()
        .expect("an error volume")
        .to_string()
}

#[tokio::test]
async fn placements_consume_capacity_and_deletes_give_it_back() {
    // The fixture reports a thick pool of 5 GB; stats are polled only at start here.
    let config = crate::common::config_with_fixture(10_000, 64).replace(
        "limits.instances = 2",
        "limits.instances = 2\nsettings.free_capacity_gb = \"5\"",
    );
    let server = Server::start(&config);
    let c = server.client("alice:proj-a");
    let first = c
        .create_volume(json!({"size": 3, "volume_type": "bad"}))
        .await;
    c.wait_status("volumes", &first, "available").await;
    // 5 - 3 leaves 2: a second 3 GB volume does not fit until the first is gone.
    let second = c
        .create_volume(json!({"size": 3, "volume_type": "bad"}))
        .await;
    assert_eq!(c.wait("volumes", &second).await["status"], "error");
    let msgs = c.messages_for(&second).await;
    assert!(msgs[0].contains("Insufficient free space"), "{msgs:?}");
    assert_eq!(c.delete(&format!("volumes/{first}")).await.status, 202);
    assert!(c.wait("volumes", &first).await.is_null());
    let third = c
        .create_volume(json!({"size": 3, "volume_type": "bad"}))
        .await;
    c.wait_status("volumes", &third, "available").await;
}
