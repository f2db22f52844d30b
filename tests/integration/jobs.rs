//! Durable jobs seen from outside: a job the host cannot read fails loudly, and a create
//! whose backend fails is rescheduled to the next one.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use crate::common::Server;

/// Plants a pending job row while the host is down.
async fn plant_job(dir: &std::path::Path, kind: &str, resource: &str, payload: &str) -> String {
    let mut db = sqlx::SqliteConnection::connect(&Server::database_url(dir))
        .await
        .unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let now = ashlar::db::time::now();
    sqlx::query(
        "INSERT INTO jobs (id, kind, resource_id, payload, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
    )
    .bind(&id)
    .bind(kind)
    .bind(resource)
    .bind(payload)
    .bind(&now)
    .execute(&mut db)
    .await
    .unwrap();
    id
}

/// A job row's state and error, read while the host runs.
async fn job_outcome(dir: &std::path::Path, id: &str) -> (String, Option<String>) {
    let mut db = sqlx::SqliteConnection::connect(&Server::database_url(dir))
        .await
        .unwrap();
    sqlx::query_as("SELECT state, error FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_the_host_cannot_read_ends_in_error_with_a_message() {
    let config = "";
    let server = Server::start(config);
    let c = server.client("alice:proj-a");
    let unknown = c.create_volume(json!({"size": 1})).await;
    let malformed = c.create_volume(json!({"size": 1})).await;
    for v in [&unknown, &malformed] {
        c.wait_status("volumes", v, "available").await;
    }
    let dir = server.terminate().dir;
    let job_unknown = plant_job(&dir, "defragment_volume", &unknown, "{}").await;
    // A malformed extend once ran with new_size 0; now it must not run at all.
    let job_malformed =
        plant_job(&dir, "extend_volume", &malformed, r#"{"new_size": "big"}"#).await;

    let server = Server::start_in(&dir, config);
    let c = server.client("alice:proj-a");
    for (volume, job, why) in [
        (
            &unknown,
            &job_unknown,
            "unknown job kind `defragment_volume`",
        ),
        (&malformed, &job_malformed, "malformed `extend_volume` job"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let v = loop {
            let v = c.get(&format!("volumes/{volume}")).await.body["volume"].clone();
            if v["status"] != "available" {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{volume} never failed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(v["status"], "error", "{v}");
        assert_eq!(v["size"], 1, "the malformed job must not have run: {v}");
        // The tenant is told nothing was done; why is for the administrator.
        let msgs = c.messages_for(volume).await;
        assert!(
            msgs.iter()
                .any(|m| m.contains("nothing was done") && !m.contains(why)),
            "{msgs:?}"
        );
        let details = c.message_details_for(volume).await;
        assert!(details.iter().any(|m| m.contains(why)), "{details:?}");
        let (state, error) = job_outcome(&dir, job).await;
        assert_eq!(state, "error");
        assert!(
            error.as_deref().is_some_and(|e| e.contains(why)),
            "{error:?}"
        );
    }
    // The file of the malformed job's volume was never touched.
    assert_eq!(
        std::fs::metadata(server.share().join(format!("volume-{malformed}")))
            .unwrap()
            .len(),
        1 << 30
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bundled nfs driver as `local`, and the misbehaving fixture as `bad`, which reports
/// far more free space (so the capacity weigher tries it first) and fails a create for a
/// volume named `fail`. `extra` comes first in the config.
fn local_and_failing(extra: &str) -> String {
    format!(
        r#"{extra}
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
grants.block = ["@DIR@/data/volumes"]
settings.share_path = "@DIR@/data/volumes"

[backends.bad]
driver = "@FIXTURES@/misbehave.wasm"
grants.exec = ["true", "cat", "linger"]
grants.block = ["@DIR@/badshare"]
settings.share_path = "@DIR@/badshare"
settings.free_capacity_gb = "1000000"
"#
    )
}

#[tokio::test]
async fn a_create_whose_backend_fails_is_rescheduled_to_the_next() {
    let server = Server::start(&local_and_failing(""));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a");
    let id = c.create_volume(json!({"size": 1, "name": "fail"})).await;
    c.wait_status("volumes", &id, "available").await;
    let v = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
    let host = v["os-vol-host-attr:host"].as_str().unwrap();
    assert!(host.contains("@local#"), "{v}");
    assert!(server.share().join(format!("volume-{id}")).exists());
    // The tenant is told the backend (not its pool) and that the volume moved on…
    let msgs = c.messages_for(&id).await;
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("create volume from backend storage:")
                && m.contains("Attempt 1 of 3 on ashlar@bad failed")
                && m.contains("rescheduled")
                && !m.contains("asked to fail")
                && !m.contains('#')),
        "{msgs:?}"
    );
    // …the administrator the pool and the driver's words.
    let details = c.message_details_for(&id).await;
    assert!(
        details.iter().any(
            |m| m.contains("attempt 1 of 3 on ashlar@bad#fixture failed")
                && m.contains("asked to fail")
        ),
        "{details:?}"
    );
    // A volume the healthy backend takes first is not rescheduled at all.
    let fine = c.create_volume(json!({"size": 1, "name": "fine"})).await;
    c.wait_status("volumes", &fine, "available").await;
    assert!(c.messages_for(&fine).await.is_empty());
}

#[tokio::test]
async fn when_every_attempt_fails_the_message_lists_them() {
    let server = Server::start(&local_and_failing(
        "[scheduler]\nscheduler_max_attempts = 1\n",
    ));
    let c = server.client("alice:proj-a");
    let id = c.create_volume(json!({"size": 1, "name": "fail"})).await;
    let v = c.wait("volumes", &id).await;
    assert_eq!(v["status"], "error", "{v}");
    let msgs = c.messages_for(&id).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].starts_with("create volume from backend storage:"),
        "{msgs:?}"
    );
    let details = c.message_details_for(&id).await;
    assert!(details[0].contains("asked to fail"), "{details:?}");
}
