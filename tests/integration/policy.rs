//! Tokens and Cinder's default policy: servers with `[auth] strategy = "tokens"` and
//! tokens made by the real `ashlar token create`, beside the running server. A reader
//! reads and writes nothing, a member calls no admin API, another project's resources
//! are 404, and revoked, expired and unknown tokens are 401.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, Resp, Server};

const TOKENS: &str = "[auth]\nstrategy = \"tokens\"\n";

/// Asserts Cinder's 403 naming `rule`.
fn assert_forbidden(r: &Resp, what: &str, rule: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.body);
    assert_eq!(
        r.body["forbidden"]["message"],
        format!("Policy doesn't allow {rule} to be performed."),
        "{what}"
    );
}

async fn call(c: &Client, method: &str, path: &str, body: Option<Value>) -> Resp {
    let method: reqwest::Method = method.parse().unwrap();
    c.raw(method, path, body.map(|b| b.to_string().into_bytes()))
        .await
}

/// What one project holds: a volume with a snapshot and metadata, an attachment, a
/// transfer (on a second volume), a failed snapshot's message, and a private type.
struct Holdings {
    volume: String,
    snapshot: String,
    attachment: String,
    transfer: String,
    message: String,
    private_type: String,
}

async fn holdings(server: &Server, member: &Client, admin: &Client) -> Holdings {
    let volume = member.create_volume(json!({"size": 1})).await;
    member.wait_status("volumes", &volume, "available").await;
    let r = member
        .post(
            &format!("volumes/{volume}/metadata"),
            json!({"metadata": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let snapshot = member.snapshot_available(&volume).await;
    let r = member
        .post(
            &format!("snapshots/{snapshot}/metadata"),
            json!({"metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = member
        .with_version("3.27")
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": volume, "instance_uuid": uuid()}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let attachment = r.body["attachment"]["id"].as_str().unwrap().to_string();

    let second = member.create_volume(json!({"size": 1})).await;
    member.wait_status("volumes", &second, "available").await;
    let r = member
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": second, "name": "t"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let transfer = r.body["transfer"]["id"].as_str().unwrap().to_string();

    // A snapshot that fails leaves a message: its volume's file is made unreadable.
    let broken = member.create_volume(json!({"size": 1})).await;
    member.wait_status("volumes", &broken, "available").await;
    let file = server.share().join(format!("volume-{broken}"));
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let r = member
        .post("snapshots", json!({"snapshot": {"volume_id": broken}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let failed = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(member.wait("snapshots", &failed).await["status"], "error");
    let r = member
        .with_version("3.5")
        .get(&format!("messages?resource_uuid={failed}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let message = r.body["messages"][0]["id"].as_str().unwrap().to_string();

    let r = admin
        .post(
            "types",
            json!({"volume_type": {"name": "hidden", "os-volume-type-access:is_public": false}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let private_type = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    Holdings {
        volume,
        snapshot,
        attachment,
        transfer,
        message,
        private_type,
    }
}

fn uuid() -> String {
    "6a4d3a56-8f3c-4c1e-9c4e-6d2a1b0c9e11".to_string()
}

/// Every write a project's member may make, with Cinder's rule: (method, path, body, rule).
fn member_writes(h: &Holdings) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let v = &h.volume;
    let s = &h.snapshot;
    let a = &h.attachment;
    let t = &h.transfer;
    let m = &h.message;
    let action = |name: &str, args: Value| Some(json!({ name: args }));
    vec![
        (
            "POST",
            "volumes".into(),
            Some(json!({"volume": {"size": 1}})),
            "volume:create",
        ),
        (
            "PUT",
            format!("volumes/{v}"),
            Some(json!({"volume": {"name": "x"}})),
            "volume:update",
        ),
        ("DELETE", format!("volumes/{v}"), None, "volume:delete"),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-extend", json!({"new_size": 2})),
            "volume:extend",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-set_bootable", json!({"bootable": true})),
            "volume:update",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-update_readonly_flag", json!({"readonly": true})),
            "volume:update_readonly_flag",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-set_image_metadata", json!({"metadata": {"a": "b"}})),
            "volume_extension:volume_image_metadata:set",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-unset_image_metadata", json!({"key": "a"})),
            "volume_extension:volume_image_metadata:remove",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("revert", json!({"snapshot_id": s})),
            "volume:revert_to_snapshot",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-retype", json!({"new_type": "x"})),
            "volume:retype",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-volume_upload_image", json!({"image_name": "x"})),
            "volume_extension:volume_actions:upload_image",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-reserve", json!({})),
            "volume_extension:volume_actions:reserve",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-unreserve", json!({})),
            "volume_extension:volume_actions:unreserve",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-initialize_connection", json!({"connector": {}})),
            "volume_extension:volume_actions:initialize_connection",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-attach", json!({"mountpoint": "/dev/vdb"})),
            "volume_extension:volume_actions:attach",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-begin_detaching", json!({})),
            "volume_extension:volume_actions:begin_detaching",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-roll_detaching", json!({})),
            "volume_extension:volume_actions:roll_detaching",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-terminate_connection", json!({"connector": {}})),
            "volume_extension:volume_actions:terminate_connection",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-detach", json!({})),
            "volume_extension:volume_actions:detach",
        ),
        (
            "POST",
            format!("volumes/{v}/metadata"),
            Some(json!({"metadata": {"k": "v"}})),
            "volume:create_volume_metadata",
        ),
        (
            "PUT",
            format!("volumes/{v}/metadata"),
            Some(json!({"metadata": {"k": "v"}})),
            "volume:update_volume_metadata",
        ),
        (
            "PUT",
            format!("volumes/{v}/metadata/tier"),
            Some(json!({"meta": {"tier": "x"}})),
            "volume:update_volume_metadata",
        ),
        (
            "DELETE",
            format!("volumes/{v}/metadata/tier"),
            None,
            "volume:delete_volume_metadata",
        ),
        (
            "POST",
            "snapshots".into(),
            Some(json!({"snapshot": {"volume_id": v}})),
            "volume:create_snapshot",
        ),
        (
            "PUT",
            format!("snapshots/{s}"),
            Some(json!({"snapshot": {"name": "x"}})),
            "volume:update_snapshot",
        ),
        (
            "DELETE",
            format!("snapshots/{s}"),
            None,
            "volume:delete_snapshot",
        ),
        (
            "POST",
            format!("snapshots/{s}/action"),
            action("os-update_snapshot_status", json!({"status": "error"})),
            "snapshot_extension:snapshot_actions:update_snapshot_status",
        ),
        (
            "POST",
            format!("snapshots/{s}/metadata"),
            Some(json!({"metadata": {"k": "v"}})),
            "volume:update_snapshot_metadata",
        ),
        (
            "PUT",
            format!("snapshots/{s}/metadata"),
            Some(json!({"metadata": {"k": "v"}})),
            "volume:update_snapshot_metadata",
        ),
        (
            "PUT",
            format!("snapshots/{s}/metadata/k"),
            Some(json!({"meta": {"k": "x"}})),
            "volume:update_snapshot_metadata",
        ),
        (
            "DELETE",
            format!("snapshots/{s}/metadata/k"),
            None,
            "volume:delete_snapshot_metadata",
        ),
        (
            "POST",
            "attachments".into(),
            Some(json!({"attachment": {"volume_uuid": v}})),
            "volume:attachment_create",
        ),
        (
            "PUT",
            format!("attachments/{a}"),
            Some(json!({"attachment": {"connector": {"host": "h"}}})),
            "volume:attachment_update",
        ),
        (
            "DELETE",
            format!("attachments/{a}"),
            None,
            "volume:attachment_delete",
        ),
        (
            "POST",
            format!("attachments/{a}/action"),
            action("os-complete", json!({})),
            "volume:attachment_complete",
        ),
        ("DELETE", format!("messages/{m}"), None, "message:delete"),
        (
            "POST",
            "os-volume-transfer".into(),
            Some(json!({"transfer": {"volume_id": v}})),
            "volume:create_transfer",
        ),
        (
            "POST",
            "volume-transfers".into(),
            Some(json!({"transfer": {"volume_id": v}})),
            "volume:create_transfer",
        ),
        (
            "DELETE",
            format!("os-volume-transfer/{t}"),
            None,
            "volume:delete_transfer",
        ),
        (
            "DELETE",
            format!("volume-transfers/{t}"),
            None,
            "volume:delete_transfer",
        ),
        (
            "POST",
            format!("os-volume-transfer/{t}/accept"),
            Some(json!({"accept": {"auth_key": "k"}})),
            "volume:accept_transfer",
        ),
        (
            "POST",
            format!("volume-transfers/{t}/accept"),
            Some(json!({"accept": {"auth_key": "k"}})),
            "volume:accept_transfer",
        ),
    ]
}

/// Every administrator's API, with Cinder's rule.
fn admin_calls(h: &Holdings) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let v = &h.volume;
    let s = &h.snapshot;
    let ty = &h.private_type;
    let action = |name: &str, args: Value| Some(json!({ name: args }));
    vec![
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-reset_status", json!({"status": "error"})),
            "volume_extension:volume_admin_actions:reset_status",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-force_delete", json!({})),
            "volume_extension:volume_admin_actions:force_delete",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-force_detach", json!({})),
            "volume_extension:volume_admin_actions:force_detach",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-migrate_volume", json!({"host": "h"})),
            "volume_extension:volume_admin_actions:migrate_volume",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-migrate_volume_completion", json!({"new_volume": v})),
            "volume_extension:volume_admin_actions:migrate_volume_completion",
        ),
        (
            "POST",
            format!("volumes/{v}/action"),
            action("os-unmanage", json!({})),
            "volume_extension:volume_unmanage",
        ),
        (
            "POST",
            format!("snapshots/{s}/action"),
            action("os-reset_status", json!({"status": "error"})),
            "volume_extension:snapshot_admin_actions:reset_status",
        ),
        (
            "POST",
            format!("snapshots/{s}/action"),
            action("os-force_delete", json!({})),
            "volume_extension:snapshot_admin_actions:force_delete",
        ),
        (
            "POST",
            "types".into(),
            Some(json!({"volume_type": {"name": "gold"}})),
            "volume_extension:types_manage",
        ),
        (
            "PUT",
            format!("types/{ty}"),
            Some(json!({"volume_type": {"name": "x"}})),
            "volume_extension:types_manage",
        ),
        (
            "DELETE",
            format!("types/{ty}"),
            None,
            "volume_extension:types_manage",
        ),
        (
            "POST",
            format!("types/{ty}/extra_specs"),
            Some(json!({"extra_specs": {"k": "v"}})),
            "volume_extension:types_extra_specs:create",
        ),
        (
            "PUT",
            format!("types/{ty}/extra_specs/k"),
            Some(json!({"k": "v"})),
            "volume_extension:types_extra_specs:update",
        ),
        (
            "DELETE",
            format!("types/{ty}/extra_specs/k"),
            None,
            "volume_extension:types_extra_specs:delete",
        ),
        (
            "GET",
            format!("types/{ty}/os-volume-type-access"),
            None,
            "volume_extension:volume_type_access:get_all_for_type",
        ),
        (
            "POST",
            format!("types/{ty}/action"),
            action("addProjectAccess", json!({"project": "proj-b"})),
            "volume_extension:volume_type_access:addProjectAccess",
        ),
        (
            "POST",
            format!("types/{ty}/action"),
            action("removeProjectAccess", json!({"project": "proj-b"})),
            "volume_extension:volume_type_access:removeProjectAccess",
        ),
        (
            "GET",
            "default-types/proj-a".into(),
            None,
            "volume_extension:default_get",
        ),
        (
            "PUT",
            "default-types/proj-a".into(),
            Some(json!({"default_type": {"volume_type": ty}})),
            "volume_extension:default_set_or_update",
        ),
        (
            "DELETE",
            "default-types/proj-a".into(),
            None,
            "volume_extension:default_unset",
        ),
        (
            "GET",
            "qos-specs".into(),
            None,
            "volume_extension:qos_specs_manage:get_all",
        ),
        (
            "POST",
            "qos-specs".into(),
            Some(json!({"qos_specs": {"name": "fast"}})),
            "volume_extension:qos_specs_manage:create",
        ),
        (
            "PUT",
            "os-quota-sets/proj-a".into(),
            Some(json!({"quota_set": {"volumes": 100}})),
            "volume_extension:quotas:update",
        ),
        (
            "DELETE",
            "os-quota-sets/proj-a".into(),
            None,
            "volume_extension:quotas:delete",
        ),
        (
            "GET",
            "os-quota-class-sets/default".into(),
            None,
            "volume_extension:quota_classes",
        ),
        (
            "PUT",
            "os-quota-class-sets/default".into(),
            Some(json!({"quota_class_set": {"volumes": 100}})),
            "volume_extension:quota_classes",
        ),
        (
            "GET",
            "scheduler-stats/get_pools".into(),
            None,
            "scheduler_extension:scheduler_stats:get_pools",
        ),
        (
            "GET",
            "os-services".into(),
            None,
            "volume_extension:services:index",
        ),
        (
            "PUT",
            "os-services/disable".into(),
            Some(json!({"host": "ashlar", "binary": "cinder-volume"})),
            "volume_extension:services:update",
        ),
        (
            "GET",
            "capabilities/ashlar@local".into(),
            None,
            "volume_extension:capabilities",
        ),
        (
            "POST",
            "manageable_volumes".into(),
            Some(json!({"volume": {"host": "ashlar@local", "ref": {"source-name": "x"}}})),
            "volume_extension:volume_manage",
        ),
        (
            "POST",
            "os-volume-manage".into(),
            Some(json!({"volume": {"host": "ashlar@local", "ref": {"source-name": "x"}}})),
            "volume_extension:volume_manage",
        ),
        (
            "GET",
            "manageable_volumes/detail?host=ashlar@local".into(),
            None,
            "volume_extension:list_manageable",
        ),
        (
            "GET",
            "os-volume-manage?host=ashlar@local".into(),
            None,
            "volume_extension:list_manageable",
        ),
        (
            "GET",
            "manageable_snapshots".into(),
            None,
            "snapshot_extension:list_manageable",
        ),
        (
            "GET",
            "/ashlar/v1/messages".into(),
            None,
            "message:get_internal_detail",
        ),
        (
            "GET",
            "/ashlar/v1/plugins".into(),
            None,
            "ashlar:plugins:manage",
        ),
        (
            "GET",
            "/ashlar/v1/workers".into(),
            None,
            "ashlar:plugins:manage",
        ),
        (
            "POST",
            "/ashlar/v1/backends/local/rollback".into(),
            Some(json!({})),
            "ashlar:plugins:manage",
        ),
    ]
}

#[tokio::test]
async fn readers_read_and_write_nothing_members_call_no_admin_api() {
    let server = Server::start(TOKENS);
    let admin = server.client_for(&server.make_token("root", "proj-a", &["admin"]), "proj-a");
    let member = server.client_for(&server.make_token("alice", "proj-a", &["member"]), "proj-a");
    let reader = server.client_for(&server.make_token("rita", "proj-a", &["reader"]), "proj-a");
    let h = holdings(&server, &member, &admin).await;

    // A reader lists and shows everything of the project's.
    let reader_at = reader.with_version("3.55");
    for path in [
        "volumes".to_string(),
        "volumes/detail".into(),
        format!("volumes/{}", h.volume),
        format!("volumes/{}/metadata", h.volume),
        format!("volumes/{}/metadata/tier", h.volume),
        "snapshots/detail".into(),
        format!("snapshots/{}", h.snapshot),
        format!("snapshots/{}/metadata", h.snapshot),
        "attachments".into(),
        format!("attachments/{}", h.attachment),
        "messages".into(),
        format!("messages/{}", h.message),
        "os-volume-transfer/detail".into(),
        format!("volume-transfers/{}", h.transfer),
        "types".into(),
        "os-availability-zone".into(),
        "os-quota-sets/proj-a?usage=True".into(),
        "os-quota-sets/proj-a/defaults".into(),
        "limits".into(),
    ] {
        let r = reader_at.get(&path).await;
        assert_eq!(r.status, 200, "reader GET {path}: {}", r.body);
    }
    let listed = reader.get("volumes").await.body["volumes"].clone();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == h.volume.as_str()),
        "{listed}"
    );
    let r = reader
        .post(
            &format!("volumes/{}/action", h.volume),
            json!({"os-show_image_metadata": {}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // …and writes nothing, whatever the call.
    let reader_at = reader.with_version("3.62");
    for (method, path, body, rule) in member_writes(&h) {
        let r = call(&reader_at, method, &path, body).await;
        assert_forbidden(&r, &format!("reader {method} {path}"), rule);
    }
    let v = reader.get(&format!("volumes/{}", h.volume)).await.body["volume"].clone();
    assert_eq!(
        (v["status"].as_str(), v["size"].as_u64()),
        (Some("reserved"), Some(1)),
        "{v}"
    );
    assert_eq!(v["metadata"]["tier"], "gold", "{v}");

    // A member may call none of the admin APIs, nor may a reader.
    let member_at = member.with_version("3.62");
    for (method, path, body, rule) in admin_calls(&h) {
        for c in [&member_at, &reader_at] {
            let r = call(c, method, &path, body.clone()).await;
            assert_forbidden(&r, &format!("{} {method} {path}", c.token), rule);
        }
    }
    let v = member.get(&format!("volumes/{}", h.volume)).await.body["volume"].clone();
    assert_eq!(v["status"], "reserved", "{v}");

    // Cinder words the default types list's refusal its own way.
    let r = member_at.get("default-types").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "You are not authorized to perform this operation."
    );
    let r = admin
        .get(&format!("types/{}/os-volume-type-access", h.private_type))
        .await;
    assert_eq!(r.body["volume_type_access"], json!([]), "{}", r.body);

    // The administrator may.
    let r = admin
        .post(
            &format!("snapshots/{}/action", h.snapshot),
            json!({"os-reset_status": {"status": "error"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(admin.get("os-services").await.status, 200);
    // A member writes: the same calls that were refused to the reader go through.
    let r = member
        .put(
            &format!("volumes/{}", h.volume),
            json!({"volume": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn another_projects_resources_are_invisible() {
    let server = Server::start(TOKENS);
    let admin = server.client_for(&server.make_token("root", "proj-a", &["admin"]), "proj-a");
    let alice = server.client_for(&server.make_token("alice", "proj-a", &["member"]), "proj-a");
    let bob = server.client_for(&server.make_token("bob", "proj-b", &["member"]), "proj-b");
    let h = holdings(&server, &alice, &admin).await;

    let bob_at = bob.with_version("3.55");
    for path in [
        format!("volumes/{}", h.volume),
        format!("volumes/{}/metadata", h.volume),
        format!("snapshots/{}", h.snapshot),
        format!("snapshots/{}/metadata", h.snapshot),
        format!("attachments/{}", h.attachment),
        format!("messages/{}", h.message),
        format!("os-volume-transfer/{}", h.transfer),
        format!("volume-transfers/{}", h.transfer),
        format!("types/{}", h.private_type),
    ] {
        let r = bob_at.get(&path).await;
        assert_eq!(r.status, 404, "bob GET {path}: {}", r.body);
    }
    // Nor may bob write them: 404 as well, whether his role allows the call or not.
    let r = bob
        .post(
            &format!("volumes/{}/action", h.volume),
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = bob.delete(&format!("snapshots/{}", h.snapshot)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    for (path, action) in [
        (format!("volumes/{}/action", h.volume), "os-reset_status"),
        (
            format!("snapshots/{}/action", h.snapshot),
            "os-force_delete",
        ),
    ] {
        let r = bob
            .post(&path, json!({ action: {"status": "error"} }))
            .await;
        assert_eq!(r.status, 404, "{path} {action}: {}", r.body);
    }
    let bob_reader = server.client_for(&server.make_token("bo", "proj-b", &["reader"]), "proj-b");
    let r = bob_reader
        .put(
            &format!("volumes/{}", h.volume),
            json!({"volume": {"name": "x"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Another project's quotas are refused, as Cinder refuses them.
    let r = bob.get("os-quota-sets/proj-a").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Policy doesn't allow volume_extension:quotas:show to be performed."
    );
    // His lists hold none of it.
    for (path, key) in [
        ("volumes/detail", "volumes"),
        ("snapshots/detail", "snapshots"),
        ("attachments", "attachments"),
        ("messages", "messages"),
        ("volume-transfers", "transfers"),
    ] {
        let r = bob_at.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body[key], json!([]), "{path}");
    }
    let types = bob.get("types").await.body["volume_types"].clone();
    assert!(
        !types.to_string().contains(&h.private_type),
        "a private type listed: {types}"
    );
    // The administrator sees them.
    let r = admin.get(&format!("types/{}", h.private_type)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Polls `c` on `volumes` until it is answered 401; the answer and how long it took.
async fn until_refused(c: &Client, within: Duration) -> (Resp, Duration) {
    let start = Instant::now();
    loop {
        let r = c.get("volumes").await;
        if r.status == 401 {
            return (r, start.elapsed());
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            start.elapsed() < within,
            "still taken {:?} after it should have been refused",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn revoked_expired_and_unknown_tokens_are_refused_and_the_cli_works_beside_the_server() {
    let server = Server::start(TOKENS);
    // Made while the server runs and holds the data directory's lock; taken at once.
    let token = server.make_token("alice", "proj-a", &["member", "reader"]);
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let alice = server.client_for(&token, "proj-a");
    let r = alice.get("volumes").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The list names it, never shows it.
    let out = server.token_cli(&["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let line = listed
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("proj-a") && line.contains("member,reader"),
        "{line}"
    );
    assert!(
        !listed.contains(&token),
        "token list printed a token: {listed}"
    );
    let id = line.split_whitespace().next().unwrap().to_string();

    // Revoked: refused within the documented 5 seconds.
    let out = server.token_cli(&["revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (r, took) = until_refused(&alice, Duration::from_secs(6)).await;
    assert!(took <= Duration::from_secs(6), "{took:?}");
    assert_eq!(r.body["unauthorized"]["code"], 401, "{}", r.body);
    let said = r.error_message();
    assert!(said.contains("unknown or was revoked"), "{said}");
    assert!(!r.body.to_string().contains(&token), "{}", r.body);
    let listed = String::from_utf8(server.token_cli(&["list"]).stdout).unwrap();
    let line = listed.lines().find(|l| l.contains(&id)).unwrap();
    assert!(
        !line.trim_end().ends_with('-'),
        "no revocation time: {line}"
    );
    let out = server.token_cli(&["revoke", "no-such-token"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no token no-such-token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Expired: taken until its lifetime ends, then refused as expired.
    let out = server.token_cli(&[
        "create",
        "--user",
        "eve",
        "--project",
        "proj-e",
        "--role",
        "reader",
        "--expires-in",
        "3s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let eve = server.client_for(&short, "proj-e");
    let (r, _) = until_refused(&eve, Duration::from_secs(10)).await;
    assert!(r.error_message().contains("expired"), "{}", r.body);

    // Unknown tokens, and noauth's `user:project`, are not taken.
    for bad in ["0".repeat(64), "admin:admin".to_string()] {
        let r = server.client_for(&bad, "admin").get("volumes").await;
        assert_eq!(r.status, 401, "{bad}: {}", r.body);
        assert!(r.error_message().contains("unknown"), "{}", r.body);
        assert!(!r.body.to_string().contains(&bad), "{}", r.body);
    }
    // A token of one project names no other in the URL.
    let bob = server.make_token("bob", "proj-b", &["member"]);
    let r = server.client_for(&bob, "proj-a").get("volumes").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // No token: 401 saying what to send.
    let r = reqwest::get(format!("{}/v3/proj-b/volumes", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["unauthorized"]["message"]
            .as_str()
            .unwrap()
            .contains("ashlar token create"),
        "{body}"
    );
    // A role that is not Keystone's is refused by the CLI.
    let out = server.token_cli(&["create", "--user", "u", "--project", "p", "--role", "owner"]);
    assert!(!out.status.success());
}
