//! Hostile driver behaviour is contained: each misbehaviour fails its one operation with
//! a clear reason while the host goes on serving other backends and the same backend.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::common::{Server, config_with_fixture, plugin_of};

#[tokio::test]
async fn misbehaving_driver_fails_one_operation_never_the_host() {
    let server = Server::start(&config_with_fixture(2_000, 64));
    std::os::unix::fs::symlink("/etc/passwd", server.dir.join("badshare/link")).unwrap();
    // Exits at once, but the sleep it leaves behind holds its stdout for a minute.
    let bin = server.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("linger"), "#!/bin/sh\nsleep 60 &\necho started\n").unwrap();
    std::fs::set_permissions(
        bin.join("linger"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let c = server.client("alice:proj-a");

    // (display name, what the message's internal detail must say)
    let cases = [
        ("loop", "exceeded its deadline"),
        ("hog", "ran out of memory"),
        ("exec", "exec of cat refused"),
        ("escape", "etc/passwd"),
        ("symlink", "outside the granted paths"),
        ("trap", "trapped"),
        ("fail", "asked to fail"),
        ("bigexec", "output cap"),
        ("linger", "its output stayed open"),
        ("handles", "too many open block handles"),
        ("bigret", "provider_location of 16777216 bytes"),
    ];
    let mut ids = Vec::new();
    for (name, _) in &cases {
        ids.push(
            c.create_volume(json!({"size": 1, "name": name, "volume_type": "bad"}))
                .await,
        );
    }
    // While those run (the loop takes the full deadline), the local backend serves.
    let good = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &good, "available").await;

    for ((name, want), id) in cases.iter().zip(&ids) {
        let v = c.wait("volumes", id).await;
        assert_eq!(v["status"], "error", "{name}: {v}");
        // The tenant reads Cinder's words, the administrator the sandbox's.
        let told = c.messages_for(id).await;
        assert!(
            told.iter()
                .all(|m| !m.contains("misbehave") && !m.contains('/')),
            "{name}: {told:?}"
        );
        let msgs = c.message_details_for(id).await;
        assert_eq!(msgs.len(), 1, "{name}: {msgs:?}");
        assert!(
            msgs[0].contains(want),
            "{name}: expected `{want}` in {:?}",
            msgs[0]
        );
        if ["loop", "hog", "trap"].contains(name) {
            assert!(
                msgs[0].contains("plugin misbehave 0.1.0"),
                "{name}: names the plugin: {}",
                msgs[0]
            );
        }
    }
    assert!(
        msgs_mention(&c, &ids[3], "refused").await,
        "escape is refused, not merely missing"
    );

    // A driver that floods the log gets its call's budget, and its call still succeeds.
    let flood = c
        .create_volume(json!({"size": 1, "name": "flood", "volume_type": "bad"}))
        .await;
    c.wait_status("volumes", &flood, "available").await;
    let log = server.log();
    let kept = log.lines().filter(|l| l.contains("flood line")).count();
    assert!(kept <= 1000, "{kept} flood lines reached the log");
    assert!(
        log.contains("log budget of 1000 lines per call exceeded"),
        "the drop is logged once"
    );

    // The same backend still works: trapped instances were replaced.
    let after = c
        .create_volume(json!({"size": 1, "name": "fine", "volume_type": "bad"}))
        .await;
    c.wait_status("volumes", &after, "available").await;
    // And the host still answers the API.
    assert_eq!(c.get("volumes").await.status, 200);
    let log = server.log();
    assert!(
        log.contains("instance replaced"),
        "sandbox failures are logged"
    );
    assert!(
        log.contains("plugin=misbehave"),
        "log lines carry the plugin's name"
    );
}

async fn msgs_mention(c: &crate::common::Client, id: &str, word: &str) -> bool {
    c.message_details_for(id)
        .await
        .iter()
        .any(|m| m.contains(word))
}

/// A loopback HTTP server that answers every request with `response`, counting them.
fn http_server(response: String) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, hits)
}

#[tokio::test]
async fn a_redirect_cannot_take_a_driver_to_a_host_it_was_not_granted() {
    let (secret_port, secret_hits) =
        http_server("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret".into());
    let (granted_port, granted_hits) = http_server(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{secret_port}/loot\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let server = Server::start(&format!(
        r#"
[volume_types.r]
volume_backend_name = "r"

[backends.r]
driver = "@FIXTURES@/redirect.wasm"
grants.http = ["http://127.0.0.1:{granted_port}"]
settings.http_origin = "http://127.0.0.1:{granted_port}"
"#
    ));
    let c = server.client("alice:p");
    let direct = format!("http://127.0.0.1:{secret_port}/loot");
    let id = c
        .create_volume(json!({"size": 1, "name": direct, "volume_type": "r"}))
        .await;
    assert_eq!(c.wait("volumes", &id).await["status"], "error");
    let msg = c.message_details_for(&id).await.join(" ");
    // The granted origin answered its redirect; the host handed it back rather than follow.
    assert!(msg.contains("via redirect: status 302"), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{secret_port}/loot")),
        "{msg}"
    );
    // Asked directly, the other origin is refused by name.
    assert!(msg.contains("direct: error HttpError::Denied"), "{msg}");
    assert!(
        msg.contains("is not allowed; allowed origins"),
        "the refusal names what is allowed: {msg}"
    );
    assert_eq!(granted_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        secret_hits.load(Ordering::SeqCst),
        0,
        "the ungranted host was never reached"
    );
}

#[tokio::test]
async fn a_backend_that_keeps_failing_is_quarantined_then_tried_again() {
    let config = config_with_fixture(2_000, 64).replace(
        "limits.instances = 2",
        "limits.instances = 2\nlimits.max_sandbox_failures = 2\nlimits.quarantine_secs = 3",
    );
    let server = Server::start(&config);
    let c = server.client("alice:proj-a");
    for _ in 0..2 {
        let id = c
            .create_volume(json!({"size": 1, "name": "trap", "volume_type": "bad"}))
            .await;
        assert_eq!(c.wait("volumes", &id).await["status"], "error");
    }
    // Quarantined: the scheduler passes the backend by, saying why; others serve.
    let id = c
        .create_volume(json!({"size": 1, "name": "fine", "volume_type": "bad"}))
        .await;
    assert_eq!(c.wait("volumes", &id).await["status"], "error");
    let msg = c.messages_for(&id).await.join(" ");
    assert!(
        msg.contains("ashlar@bad: Unavailable at present after repeated failures"),
        "{msg}"
    );
    let msg = c.message_details_for(&id).await.join(" ");
    assert!(
        msg.contains("ashlar@bad: plugin misbehave 0.1.0 is quarantined"),
        "{msg}"
    );
    let admin = server.client("admin:ops");
    let bad = plugin_of(&admin, "bad").await;
    assert!(
        bad["quarantined_for_secs"].as_u64().is_some_and(|s| s <= 3),
        "{bad}"
    );
    let good = c
        .create_volume(json!({"size": 1, "volume_type": "local"}))
        .await;
    c.wait_status("volumes", &good, "available").await;
    assert!(
        server
            .log()
            .contains("backend quarantined for 3 s after 2 sandbox failures")
    );

    // Served its time, it is tried again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let bad = plugin_of(&admin, "bad").await;
        if bad["quarantined_for_secs"].is_null() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still quarantined after 30 s: {bad}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = c
        .create_volume(json!({"size": 1, "name": "fine", "volume_type": "bad"}))
        .await;
    c.wait_status("volumes", &id, "available").await;
}
