//! A host killed with SIGKILL mid-operation finds the work on restart and finishes or
//! reverts it: no volume stays `creating`.

use serde_json::json;

use crate::common::{Server, config_with_fixture};

#[tokio::test]
async fn sigkill_during_create_leaves_no_volume_creating() {
    let config = config_with_fixture(60_000, 64);
    let server = Server::start(&config);
    let c = server.client("alice:proj-a");
    let done = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &done, "available").await;

    // The fixture sleeps 30 s inside create-volume; it logs when it starts.
    let slow = c
        .create_volume(json!({"size": 1, "name": "slow-30", "volume_type": "bad"}))
        .await;
    server.wait_log("slow-30: started").await;
    assert_eq!(
        c.get(&format!("volumes/{slow}")).await.body["volume"]["status"],
        "creating"
    );
    let dir = server.kill9();

    let server = Server::start_in(&dir, &config);
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
    // The restarted host serves new work.
    let again = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &again, "available").await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
