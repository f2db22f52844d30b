//! Two kinds of messages: a tenant is told what failed in Cinder's words (its
//! `message_field` actions and details, and `VOLUME_<resource>_<action>_<detail>` event
//! ids), never the driver's text, a command line, a path or a pool's directory; the
//! administrator finds all of that on Ashlar's admin surface and in the log, keyed by the
//! request id.

use serde_json::{Value, json};

use crate::common::{Client, Server};

/// The keys of Cinder's message view: tempest's schema allows no other.
const VIEW_KEYS: [&str; 10] = [
    "created_at",
    "event_id",
    "guaranteed_until",
    "id",
    "links",
    "message_level",
    "request_id",
    "resource_type",
    "resource_uuid",
    "user_message",
];

/// The messages about `id` as the v3 API shows them to `c`.
async fn messages_about(c: &Client, id: &str) -> Vec<Value> {
    let r = c
        .with_version("3.5")
        .get(&format!("messages?resource_uuid={id}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["messages"].as_array().unwrap().clone()
}

/// A message as the v3 API shows it carries Cinder's keys only, and nothing of the host.
fn assert_tells_nothing_internal(server: &Server, m: &Value) {
    let mut keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, VIEW_KEYS, "{m}");
    let mut shown = m.clone();
    shown.as_object_mut().unwrap().remove("links");
    let shown = shown.to_string();
    for internal in [
        "/",
        "qemu-img",
        "localhost:",
        "#",
        server.dir.to_str().unwrap(),
    ] {
        assert!(!shown.contains(internal), "`{internal}` shown: {shown}");
    }
}

/// What an administrator reads on Ashlar's admin surface about the messages `query` picks.
async fn internal_details(admin: &Client, query: &str) -> Vec<String> {
    let r = admin.get(&format!("/ashlar/v1/messages?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["internal_detail"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_driver_failure_is_told_in_cinders_words_and_its_text_kept_for_the_admin() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    // Underneath, the volume's file becomes something qemu-img cannot open.
    let file = server.share().join(format!("volume-{vol}"));
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let file = file.to_str().unwrap();

    let r = c
        .post("snapshots", json!({"snapshot": {"volume_id": vol}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let request_id = r.headers["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.wait("snapshots", &snap).await["status"], "error");

    let msgs = messages_about(&c, &snap).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["event_id"], "VOLUME_VOLUME_SNAPSHOT_009_013", "{m}");
    assert_eq!(m["resource_type"], "VOLUME_SNAPSHOT", "{m}");
    assert_eq!(m["request_id"], request_id.as_str(), "{m}");
    assert_eq!(m["message_level"], "ERROR", "{m}");
    let text = m["user_message"].as_str().unwrap();
    assert!(
        text.starts_with("create snapshot:Snapshot failed to create."),
        "{text}"
    );
    assert_tells_nothing_internal(&server, m);
    // An administrator's v3 view is the same Cinder view, with no key of its own.
    assert_eq!(messages_about(&admin, &snap).await, msgs);

    // The driver's own text, command line and path: on the admin surface, by request id…
    let details = internal_details(&admin, &format!("request_id={request_id}")).await;
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(
        details[0].contains("qemu-img") && details[0].contains(file),
        "{details:?}"
    );
    // …which a tenant may not read…
    assert_eq!(c.get("/ashlar/v1/messages").await.status, 403);
    let id = m["id"].as_str().unwrap();
    assert_eq!(
        c.get(&format!("/ashlar/v1/messages/{id}")).await.status,
        403
    );
    let one = admin.get(&format!("/ashlar/v1/messages/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["message"]["internal_detail"], details[0].as_str());
    // …and in the log, on a line with the request id.
    assert!(
        server.logged_with(&request_id, &["qemu-img", file]).await,
        "no log line with {request_id} and the driver's text"
    );

    // An extend of the same volume fails too: Cinder's extend action and detail.
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(c.wait("volumes", &vol).await["status"], "error_extending");
    let msgs = messages_about(&c, &vol).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["event_id"], "VOLUME_VOLUME_007_010", "{}", msgs[0]);
    assert!(
        msgs[0]["user_message"]
            .as_str()
            .unwrap()
            .starts_with("extend volume:Volume Driver failed to extend volume."),
        "{}",
        msgs[0]
    );
    assert_tells_nothing_internal(&server, &msgs[0]);
    let details = internal_details(&admin, &format!("resource_uuid={vol}")).await;
    assert!(details[0].contains(file), "{details:?}");
}

#[tokio::test]
async fn a_scheduler_refusal_names_backends_not_their_directories() {
    let server = Server::start("");
    let admin = server.client("admin:proj-a");
    admin
        .create_type(
            "iscsi",
            json!({"capabilities:storage_protocol": "<in> iSCSI"}),
        )
        .await;
    admin
        .create_type("thick", json!({"provisioning:type": "thick"}))
        .await;
    let c = server.client("alice:proj-a");
    let share = server.share();
    for (volume_type, why) in [
        ("iscsi", "storage_protocol"),
        ("thick", "thick provisioning"),
    ] {
        let vol = c
            .create_volume(json!({"size": 1, "volume_type": volume_type}))
            .await;
        assert_eq!(c.wait("volumes", &vol).await["status"], "error");
        let msgs = messages_about(&c, &vol).await;
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        let m = &msgs[0];
        assert_eq!(m["event_id"], "VOLUME_VOLUME_001_003", "{m}");
        assert_eq!(m["resource_type"], "VOLUME", "{m}");
        let text = m["user_message"].as_str().unwrap();
        assert!(
            text.starts_with(
                "schedule allocate volume:Could not find any available weighted backend."
            ),
            "{text}"
        );
        // Which backend said no, and why in words the tenant can act on.
        assert!(text.contains("ashlar@local"), "{text}");
        assert!(text.contains(why), "{text}");
        assert_tells_nothing_internal(&server, m);
        // The administrator has each pool's full name and reason.
        let details = internal_details(&admin, &format!("resource_uuid={vol}")).await;
        assert!(
            details[0].contains(&format!("ashlar@local#localhost:{}", share.display())),
            "{details:?}"
        );
    }
}
