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
