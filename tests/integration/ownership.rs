//! One host per data directory: a second `ashlar serve` on a live one refuses to start,
//! naming the first one's PID, and changes nothing in it — not even the first one's
//! running jobs, which it would otherwise recover as interrupted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::common::{Server, config_with_fixture};

/// What a host could have changed in `dir`: its rows, its jobs, its messages, its files.
async fn state_of(
    dir: &Path,
) -> (
    Vec<(String, String, i64, i64)>,
    Vec<(String, String)>,
    i64,
    Vec<String>,
) {
    let url = format!("{}?mode=ro", Server::database_url(dir));
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let volumes = sqlx::query_as("SELECT id, status, size, revision FROM volumes ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let jobs = sqlx::query_as("SELECT id, state FROM jobs ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let messages = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let mut files: Vec<String> = walk(&dir.join("data"));
    files.sort();
    (volumes, jobs, messages, files)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// Runs a second `ashlar serve` on `dir` and returns how it ended and what it said.
fn second_host(dir: &Path, listen: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .args(["serve", "--listen", listen, "--config"])
        .arg(dir.join("ashlar.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a second host on a live data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.success(), err)
}

#[tokio::test]
async fn a_second_host_on_a_live_data_directory_refuses_and_changes_nothing() {
    let server = Server::start(&config_with_fixture(60_000, 64));
    let c = server.client("alice:proj-a");
    let done = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &done, "available").await;
    // A create the driver holds for 30 s: a second host's recovery would revert it.
    let slow = c
        .create_volume(json!({"size": 1, "name": "slow-30", "volume_type": "bad"}))
        .await;
    server.wait_log("slow-30: started").await;
    let before = state_of(&server.dir).await;
    let lock = std::fs::read_to_string(server.dir.join("data/ashlar.lock")).unwrap();
    assert_eq!(lock.trim(), server.pid().to_string());

    // On a free port, and on the first host's own address.
    let own = server.base.trim_start_matches("http://").to_string();
    for listen in ["127.0.0.1:0", own.as_str()] {
        let (ok, said) = second_host(&server.dir, listen);
        assert!(!ok, "a second host started on {listen}:\n{said}");
        assert!(
            said.contains(&format!("PID {}", server.pid())) && said.contains("in use"),
            "the refusal names the holder: {said}"
        );
    }

    assert_eq!(
        state_of(&server.dir).await,
        before,
        "the second host changed the data directory"
    );
    assert_eq!(
        std::fs::read_to_string(server.dir.join("data/ashlar.lock")).unwrap(),
        lock
    );
    assert_eq!(
        c.get(&format!("volumes/{slow}")).await.body["volume"]["status"],
        "creating",
        "the first host's running create was left alone"
    );
    let again = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &again, "available").await;
}
