//! Attaching volumes through both of Cinder's APIs (the volume actions and the
//! attachments API), on the default nfs backend: statuses, attachments in the volume view,
//! the connection info handed out, and the refusals.

use serde_json::{Value, json};

use crate::common::{Client, Server};
use crate::loading::serve_fails;

fn connector(host: &str) -> Value {
    json!({
        "host": host,
        "ip": "127.0.0.1",
        "initiator": format!("iqn.1994-05.com.redhat:{host}"),
        "multipath": false,
        "platform": "x86_64",
        "os_type": "linux",
    })
}

async fn action(c: &Client, vol: &str, body: Value) -> crate::common::Resp {
    c.post(&format!("volumes/{vol}/action"), body).await
}

#[tokio::test]
async fn legacy_attach_and_detach_move_the_volume_through_cinders_statuses() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;

    let r = action(&c, &vol, json!({"os-reserve": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "attaching"
    );

    let r = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": connector("compute-1")}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = &r.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "nfs", "{info}");
    assert_eq!(info["data"]["access_mode"], "rw");
    assert_eq!(info["data"]["name"], format!("volume-{vol}"), "{info}");

    let r = action(&c, &vol, json!({"os-attach": {"instance_uuid": "9d2a7d3e-0000-4000-8000-000000000001", "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(v["status"], "in-use");
    let atts = v["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1, "{v}");
    assert_eq!(atts[0]["server_id"], "9d2a7d3e-0000-4000-8000-000000000001");
    assert_eq!(atts[0]["device"], "/dev/vdb");
    assert_eq!(atts[0]["volume_id"], vol.as_str());

    // In use: no delete, no second reservation (not multiattach).
    let r = c.delete(&format!("volumes/{vol}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = action(&c, &vol, json!({"os-reserve": {}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("multiattach"),
        "{}",
        r.error_message()
    );

    for (body, status) in [
        (json!({"os-begin_detaching": {}}), "detaching"),
        (json!({"os-roll_detaching": {}}), "in-use"),
        (json!({"os-begin_detaching": {}}), "detaching"),
    ] {
        let r = action(&c, &vol, body).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(
            c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
            status
        );
    }
    let r = action(
        &c,
        &vol,
        json!({"os-terminate_connection": {"connector": connector("compute-1")}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = action(&c, &vol, json!({"os-detach": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(v["status"], "available");
    assert_eq!(v["attachments"], json!([]));
    let r = c.delete(&format!("volumes/{vol}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
}

#[tokio::test]
async fn the_attachments_api_reserves_connects_completes_and_deletes() {
    let server = Server::start("");
    let mut c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;

    // Before 3.27 the resource does not exist, and the answer says which version to ask for.
    let r = c
        .post("attachments", json!({"attachment": {"volume_uuid": vol}}))
        .await;
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("3.27"), "{}", r.error_message());

    c.version = Some("3.44".into());
    let r = c
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "instance_uuid": "inst-1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["attachment"]["status"], "reserved");
    assert_eq!(r.body["attachment"]["connection_info"], Value::Null);
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "reserved"
    );

    // Completing before a connector is refused with the step that is missing.
    let r = c
        .post(
            &format!("attachments/{att}/action"),
            json!({"os-complete": {}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("connector"),
        "{}",
        r.error_message()
    );

    let r = c
        .put(
            &format!("attachments/{att}"),
            json!({"attachment": {"connector": connector("compute-2")}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = &r.body["attachment"]["connection_info"];
    assert_eq!(info["driver_volume_type"], "nfs", "{info}");
    assert_eq!(info["attachment_id"], att.as_str());
    assert_eq!(r.body["attachment"]["status"], "attaching");

    let r = c
        .post(
            &format!("attachments/{att}/action"),
            json!({"os-complete": {}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let v = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["attachments"][0]["attachment_id"], att.as_str());

    // Another project sees neither the attachment nor its list entry.
    let mut bob = server.client("bob:proj-b");
    bob.version = Some("3.44".into());
    assert_eq!(bob.get(&format!("attachments/{att}")).await.status, 404);
    assert_eq!(bob.get("attachments").await.body["attachments"], json!([]));
    let listed = c.get("attachments/detail").await;
    assert_eq!(
        listed.body["attachments"][0]["id"],
        att.as_str(),
        "{}",
        listed.body
    );
    assert_eq!(listed.body["attachments"][0]["attach_mode"], "rw");

    // A second attachment of a volume that is not multiattach is refused.
    let r = c
        .post("attachments", json!({"attachment": {"volume_uuid": vol}}))
        .await;
    assert_eq!(r.status, 400);

    let r = c.delete(&format!("attachments/{att}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["attachments"], json!([]));
    let v = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(v["status"], "available");
    assert_eq!(c.get(&format!("attachments/{att}")).await.status, 404);
}

#[tokio::test]
async fn bad_connectors_and_missing_fields_are_named() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;

    let r = action(&c, &vol, json!({"os-initialize_connection": {}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("connector"),
        "{}",
        r.error_message()
    );
    let r = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": {"initiator": "iqn.x"}}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("`host`"),
        "{}",
        r.error_message()
    );
    let r = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": {"host": "h", "local": true}}}),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "the host's own local connector cannot be forged"
    );
    let r = action(&c, &vol, json!({"os-attach": {"instance_uuid": "i"}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("mountpoint"),
        "{}",
        r.error_message()
    );
    let r = action(&c, &vol, json!({"os-detach": {}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("not attached"),
        "{}",
        r.error_message()
    );
    let r = action(&c, &vol, json!({"os-force_detach": {}})).await;
    assert_eq!(r.status, 403, "force detach is for administrators");
    let r = action(&c, &vol, json!({"os-frobnicate": {}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("os-initialize_connection"),
        "{}",
        r.error_message()
    );
    // Nothing above changed the volume.
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "available"
    );
}

#[test]
fn a_volume_driver_configured_as_a_target_is_refused_naming_the_worlds() {
    let err = serve_fails(
        r#"
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
settings.share_path = "@DIR@/share"
[backends.local.target]
driver = "nfs"
"#,
    );
    assert!(
        err.contains("volume-driver") && err.contains("target-driver"),
        "{err}"
    );
    assert!(err.contains("backend local target"), "{err}");
}

#[test]
fn a_target_asking_for_an_ungranted_program_is_refused_naming_its_section() {
    let err = serve_fails(
        r#"
[backends.tgt]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
settings.share_path = "@DIR@/share"
[backends.tgt.target]
driver = "iscsi-tgt"
grants.exec = ["tgt-admin"]
settings.backing_store_dir = "@DIR@/share"
"#,
    );
    assert!(err.contains("backend tgt target"), "{err}");
    assert!(err.contains("plugin iscsi-tgt"), "{err}");
    assert!(err.contains("exec of `tgtadm`"), "the capability: {err}");
    assert!(
        err.contains(r#"grants.exec = ["tgt-admin"]"#),
        "the grant: {err}"
    );
    assert!(
        err.contains("[backends.tgt.target.grants]"),
        "where to fix it: {err}"
    );
}
