//! Every list — volumes, snapshots, attachments, messages — reads `all_tenants` and
//! `project_id` the same way: an administrator's `all_tenants` lists every project (or the
//! one `project_id` names); without it, and for everyone else, a list is the caller's own
//! project's.

use serde_json::{Value, json};

use crate::common::{Client, Server};

/// Ids in a list response, whatever the collection.
fn ids(body: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn list_ok(c: &Client, url: &str) -> Value {
    let r = c.get(url).await;
    assert_eq!(r.status, 200, "{url}: {}", r.body);
    r.body
}

/// One project's resources of every listed kind.
struct Owned {
    volume: String,
    snapshot: String,
    attachment: String,
    /// The user message of a create that found no backend.
    message: String,
}

/// A volume type that names a backend the server does not have.
const NOWHERE: &str = "[volume_types.nowhere]\nvolume_backend_name = \"nowhere\"\n";

async fn populate(c: &Client) -> Owned {
    let volume = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &volume, "available").await;
    let r = c
        .post("snapshots", json!({"snapshot": {"volume_id": volume}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snapshot = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_status("snapshots", &snapshot, "available").await;
    let mut c27 = c.with_version("3.27");
    let r = c27
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": volume}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let attachment = r.body["attachment"]["id"].as_str().unwrap().to_string();
    c27.version = Some("3.5".into());
    // A type no backend serves (see [`NOWHERE`]): the create fails and leaves a user
    // message. (A size beyond every pool is refused at the API, before any message.)
    let unplaced = c
        .create_volume(json!({"size": 1, "volume_type": "nowhere"}))
        .await;
    assert_eq!(c.wait("volumes", &unplaced).await["status"], "error");
    let r = c27.get(&format!("messages?resource_uuid={unplaced}")).await;
    let message = r.body["messages"][0]["id"].as_str().unwrap().to_string();
    Owned {
        volume,
        snapshot,
        attachment,
        message,
    }
}

#[tokio::test]
async fn all_tenants_and_project_id_mean_the_same_on_every_list() {
    let server = Server::start(NOWHERE);
    let alice = server.client("alice:proj-a");
    let bob = server.client("bob:proj-b");
    let a = populate(&alice).await;
    let b = populate(&bob).await;
    let admin = server.client("admin:ops");

    // (list path, response key, what each project owns in it); all at 3.31, where a
    // user's `project_id` becomes an invalid filter.
    let version = "3.31";
    let lists = [
        ("volumes", "volumes", [&a.volume, &b.volume]),
        ("volumes/detail", "volumes", [&a.volume, &b.volume]),
        ("snapshots", "snapshots", [&a.snapshot, &b.snapshot]),
        ("snapshots/detail", "snapshots", [&a.snapshot, &b.snapshot]),
        ("attachments", "attachments", [&a.attachment, &b.attachment]),
        (
            "attachments/detail",
            "attachments",
            [&a.attachment, &b.attachment],
        ),
        ("messages", "messages", [&a.message, &b.message]),
    ];
    for (path, key, [mine, theirs]) in lists {
        let (mine, theirs) = (&vec![mine.clone()], &vec![theirs.clone()]);
        let alice = alice.with_version(version);
        let admin = admin.with_version(version);
        // Volumes also hold the failed create; compare on the resources populate made.
        let seen = |body: &Value, want: &[String]| {
            let got = ids(body, key);
            want.iter().all(|w| got.contains(w))
        };
        let none_of = |body: &Value, other: &[String]| {
            let got = ids(body, key);
            other.iter().all(|o| !got.contains(o))
        };
        let both = [mine.clone(), theirs.clone()].concat();

        // A user sees their own project, whatever they ask.
        for q in ["", "?all_tenants=1", "?all_tenants=true"] {
            let body = list_ok(&alice, &format!("{path}{q}")).await;
            assert!(
                seen(&body, mine) && none_of(&body, theirs),
                "{path}{q}: {body}"
            );
        }
        // From 3.31 a user's project_id is an invalid filter.
        let r = alice.get(&format!("{path}?project_id=proj-b")).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.error_message().contains("Invalid filters project_id"),
            "{path}: {}",
            r.body
        );

        // An administrator: own project only, unless all_tenants.
        for q in [
            "",
            "?all_tenants=0",
            "?all_tenants=false",
            "?project_id=proj-b",
        ] {
            let body = list_ok(&admin, &format!("{path}{q}")).await;
            assert!(none_of(&body, &both), "{path}{q}: {body}");
        }
        for q in ["?all_tenants=1", "?all_tenants=True"] {
            let body = list_ok(&admin, &format!("{path}{q}")).await;
            assert!(seen(&body, &both), "{path}{q}: {body}");
        }
        let body = list_ok(&admin, &format!("{path}?all_tenants=1&project_id=proj-b")).await;
        assert!(
            seen(&body, theirs) && none_of(&body, mine),
            "{path}: {body}"
        );
        let r = admin.get(&format!("{path}?all_tenants=perhaps")).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(
            r.error_message(),
            "Value 'perhaps' for 'all_tenants' is not a boolean."
        );
    }
}

/// A list keeps volumes' rendered views between requests; whatever changes a volume's view
/// — its row, its metadata, its attachments, its type's name — shows in the next list as
/// it does in a show, for each kind of caller.
#[tokio::test]
async fn a_list_shows_every_change_as_a_show_does() {
    let server = Server::start("");
    let alice = server.client("alice:proj-a").with_version("3.44");
    let admin = server.client("admin:proj-a").with_version("3.65");
    let type_id = admin.create_type("gold", json!({})).await;
    let vol = alice
        .create_volume(
            json!({"size": 1, "name": "one", "volume_type": type_id, "multiattach": true}),
        )
        .await;
    alice.wait_status("volumes", &vol, "available").await;
    let other = alice.create_volume(json!({"size": 1})).await;
    alice.wait_status("volumes", &other, "available").await;

    // Each listed entry equals the volume's show, for a user's and an admin's lists.
    let agree = |step: &'static str| {
        let (alice, admin, vol) = (&alice, &admin, vol.clone());
        async move {
            for c in [alice, admin] {
                let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
                for _ in 0..2 {
                    let listed = list_ok(c, "volumes/detail").await;
                    let entry = listed["volumes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|v| v["id"] == vol.as_str())
                        .unwrap_or_else(|| panic!("{step}: {vol} not listed: {listed}"))
                        .clone();
                    assert_eq!(entry, shown, "{step}: list and show differ");
                    let plain = list_ok(c, "volumes").await;
                    assert!(
                        plain["volumes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|v| v["id"] == vol.as_str() && v["name"] == shown["name"]),
                        "{step}: {plain}"
                    );
                }
            }
        }
    };
    agree("created").await;

    let r = alice
        .put(
            &format!("volumes/{vol}"),
            json!({"volume": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    agree("renamed").await;

    let r = alice
        .post(
            &format!("volumes/{vol}/metadata"),
            json!({"metadata": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    agree("metadata set").await;
    assert_eq!(
        alice
            .delete(&format!("volumes/{vol}/metadata/tier"))
            .await
            .status,
        200
    );
    agree("metadata key deleted").await;

    let r = alice
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    alice.wait_status("volumes", &vol, "available").await;
    agree("extended").await;

    // Two servers attach it; while it stays in-use only its attachments change.
    let mut attachments = Vec::new();
    for (server_id, host) in [
        ("0c5d0f6d-8e8f-4e55-9a25-4e6f0d1f0a11", "compute-1"),
        ("5b0e3c7a-1f2d-4c3b-8a9e-7d6c5b4a3f21", "compute-2"),
    ] {
        let r = alice
            .post(
                "attachments",
                json!({"attachment": {"volume_uuid": vol, "instance_uuid": server_id,
                       "connector": {"host": host, "initiator": format!("iqn.1993-08.org.debian:01:{host}")}}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
        agree("attaching").await;
        let r = alice
            .post(
                &format!("attachments/{att}/action"),
                json!({"os-complete": {}}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        agree("attached").await;
        attachments.push(att);
    }
    for att in attachments {
        assert_eq!(
            alice.delete(&format!("attachments/{att}")).await.status,
            200
        );
        agree("detached").await;
    }

    let r = admin
        .put(
            &format!("types/{type_id}"),
            json!({"volume_type": {"name": "platinum"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    agree("type renamed").await;
    let listed = list_ok(&alice, "volumes/detail").await;
    assert!(listed.to_string().contains("platinum"), "{listed}");

    assert_eq!(alice.delete(&format!("volumes/{vol}")).await.status, 202);
    alice.wait("volumes", &vol).await;
    for c in [&alice, &admin] {
        let listed = list_ok(c, "volumes/detail").await;
        let ids = ids(&listed, "volumes");
        assert_eq!(
            ids,
            vec![other.clone()],
            "a deleted volume is no longer listed"
        );
    }
}
