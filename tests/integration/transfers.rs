//! Volume transfers through the API: the owner offers a volume and gets a one-time key;
//! another project accepts it with the key and the volume (and its snapshots, unless
//! `no_snapshots`) becomes theirs; a wrong key, a cancelled transfer and a volume in use
//! are refused as Cinder refuses them; of racing accepts exactly one wins.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{Client, Server};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn available_volume(c: &Client) -> String {
    let id = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &id, "available").await;
    id
}

/// Offers `volume` through `collection`; the transfer's create view.
async fn offer(c: &Client, collection: &str, body: Value) -> Value {
    let r = c.post(collection, json!({ "transfer": body })).await;
    assert_eq!(r.status, 202, "create transfer: {}", r.body);
    r.body["transfer"].clone()
}

#[tokio::test]
async fn an_accepted_transfer_moves_the_volume_and_its_snapshots() {
    let server = Server::start("");
    let giver = server.client("alice:giver").with_version("3.57");
    let taker = server.client("bob:taker");
    let vol = available_volume(&giver).await;
    let snap = giver.snapshot_available(&vol).await;

    let t = offer(
        &giver,
        "volume-transfers",
        json!({"volume_id": vol, "name": "gift"}),
    )
    .await;
    assert_eq!(
        keys(&t),
        set(&[
            "id",
            "created_at",
            "name",
            "volume_id",
            "auth_key",
            "links",
            "no_snapshots",
            "destination_project_id",
            "source_project_id",
            "accepted"
        ])
    );
    let id = t["id"].as_str().unwrap().to_string();
    let key = t["auth_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 16, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert_eq!(t["name"], "gift");
    assert_eq!(t["volume_id"], vol.as_str());
    assert_eq!(t["source_project_id"], "giver");
    assert_eq!(t["destination_project_id"], Value::Null);
    assert_eq!(t["accepted"], false);
    assert_eq!(t["no_snapshots"], false);
    assert!(
        t["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v3/giver/os-volume-transfer/{id}")),
        "{t}"
    );
    assert_eq!(
        giver.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "awaiting-transfer"
    );
    // While it waits, nothing else may start on it.
    let r = giver.delete(&format!("volumes/{vol}")).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The owner lists and shows it with Cinder's fields per microversion.
    let old = giver.with_version("3.0");
    let list = old.get("os-volume-transfer").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(
        keys(&list.body["transfers"][0]),
        set(&["id", "volume_id", "name", "links"])
    );
    let detail = old.get("os-volume-transfer/detail").await;
    assert_eq!(
        keys(&detail.body["transfers"][0]),
        set(&["id", "created_at", "name", "volume_id", "links"])
    );
    let shown = giver
        .with_version("3.55")
        .get(&format!("volume-transfers/{id}"))
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(
        keys(&shown.body["transfer"]),
        set(&[
            "id",
            "created_at",
            "name",
            "volume_id",
            "links",
            "no_snapshots"
        ])
    );
    assert_eq!(shown.body["transfer"]["created_at"], t["created_at"]);

    // Another project neither sees it nor its volume, nor may cancel it.
    assert_eq!(
        taker.get(&format!("os-volume-transfer/{id}")).await.status,
        404
    );
    assert_eq!(
        taker.get("os-volume-transfer").await.body["transfers"],
        json!([])
    );
    assert_eq!(
        taker
            .delete(&format!("os-volume-transfer/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(taker.get(&format!("volumes/{vol}")).await.status, 404);

    // A wrong key is Cinder's 400 and changes nothing.
    let wrong = taker
        .post(
            &format!("os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": "0123456789abcdef"}}),
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(
        wrong.error_message(),
        format!("Invalid auth key: Attempt to transfer {id} with invalid auth key.")
    );
    assert_eq!(
        giver.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "awaiting-transfer"
    );

    // The key is kept only as a salted hash.
    let url = format!("{}?mode=ro", Server::database_url(&server.dir));
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (salt, hash): (String, String) =
        sqlx::query_as("SELECT salt, crypt_hash FROM transfers WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    db.close().await.unwrap();
    assert!(!salt.is_empty() && hash.len() == 64, "{salt} {hash}");
    assert!(!hash.contains(&key) && !salt.contains(&key));

    let accepted = taker
        .post(
            &format!("os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": key}}),
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(
        keys(&accepted.body["transfer"]),
        set(&["id", "volume_id", "name", "links"])
    );
    assert_eq!(accepted.body["transfer"]["volume_id"], vol.as_str());

    // The volume and its snapshot are the taker's now, available, and gone for the giver.
    let v = taker
        .with_version("3.57")
        .get(&format!("volumes/{vol}"))
        .await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.body["volume"]["status"], "available");
    assert_eq!(v.body["volume"]["user_id"], "bob");
    assert_eq!(giver.get(&format!("volumes/{vol}")).await.status, 404);
    let s = taker.get(&format!("snapshots/{snap}")).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(giver.get(&format!("snapshots/{snap}")).await.status, 404);
    assert_eq!(
        taker.get("volumes").await.body["volumes"][0]["id"],
        vol.as_str()
    );
    assert_eq!(giver.get("volumes").await.body["volumes"], json!([]));

    // The transfer is over: gone for the giver, and its key opens nothing again.
    assert_eq!(
        giver.get(&format!("volume-transfers/{id}")).await.status,
        404
    );
    let again = server
        .client("carol:third")
        .post(
            &format!("os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": key}}),
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.body);

    // The new owner may use it as their own: delete the snapshot, then the volume.
    assert_eq!(taker.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(taker.wait("snapshots", &snap).await.is_null());
    assert_eq!(taker.delete(&format!("volumes/{vol}")).await.status, 202);
    assert!(taker.wait("volumes", &vol).await.is_null());
}

#[tokio::test]
async fn no_snapshots_leaves_the_snapshots_with_the_giver() {
    let server = Server::start("");
    let giver = server.client("alice:giver").with_version("3.55");
    let taker = server.client("bob:taker").with_version("3.55");
    let vol = available_volume(&giver).await;
    let snap = giver.snapshot_available(&vol).await;

    // The extension collection does not take no_snapshots, as Cinder's schema.
    let r = giver
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": vol, "no_snapshots": true}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("no_snapshots"), "{}", r.body);
    // Nor does the v3 one before 3.55.
    let r = giver
        .with_version("3.54")
        .post(
            "volume-transfers",
            json!({"transfer": {"volume_id": vol, "no_snapshots": true}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let t = offer(
        &giver,
        "volume-transfers",
        json!({"volume_id": vol, "no_snapshots": true}),
    )
    .await;
    assert_eq!(t["no_snapshots"], true);
    assert_eq!(t["name"], Value::Null);
    let r = taker
        .post(
            &format!("volume-transfers/{}/accept", t["id"].as_str().unwrap()),
            json!({"accept": {"auth_key": t["auth_key"]}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(taker.get(&format!("volumes/{vol}")).await.status, 200);
    assert_eq!(giver.get(&format!("volumes/{vol}")).await.status, 404);
    // The snapshot stayed with the giver.
    let s = giver.get(&format!("snapshots/{snap}")).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.body["snapshot"]["volume_id"], vol.as_str());
    assert_eq!(taker.get(&format!("snapshots/{snap}")).await.status, 404);
}

#[tokio::test]
async fn a_cancelled_transfer_returns_the_volume() {
    let server = Server::start("");
    let giver = server.client("alice:giver");
    let taker = server.client("bob:taker");
    let vol = available_volume(&giver).await;
    let t = offer(&giver, "os-volume-transfer", json!({"volume_id": vol})).await;
    // Below 3.55 the create view has no later fields.
    assert_eq!(
        keys(&t),
        set(&["id", "created_at", "name", "volume_id", "auth_key", "links"])
    );
    let id = t["id"].as_str().unwrap();
    let r = giver.delete(&format!("os-volume-transfer/{id}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    assert_eq!(
        giver.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "available"
    );
    assert_eq!(
        giver.get(&format!("os-volume-transfer/{id}")).await.status,
        404
    );
    assert_eq!(
        giver.get("os-volume-transfer").await.body["transfers"],
        json!([])
    );
    let r = taker
        .post(
            &format!("os-volume-transfer/{id}/accept"),
            json!({"accept": {"auth_key": t["auth_key"]}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.error_message(),
        format!("Transfer {id} could not be found.")
    );
    assert_eq!(giver.get(&format!("volumes/{vol}")).await.status, 200);
    // A second cancel finds nothing.
    assert_eq!(
        giver
            .delete(&format!("os-volume-transfer/{id}"))
            .await
            .status,
        404
    );
    // The volume may be offered again.
    offer(&giver, "os-volume-transfer", json!({"volume_id": vol})).await;
}

#[tokio::test]
async fn a_volume_in_use_or_busy_or_with_unready_snapshots_is_not_transferred() {
    let server = Server::start("");
    let alice = server.client("alice:giver");
    let admin = server.client("admin:giver");
    let vol = available_volume(&alice).await;

    // In use (set by an administrator, as an attach would leave it).
    let r = admin
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-reset_status": {"status": "in-use"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = alice
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .starts_with("Invalid volume: Volume's status must be available"),
        "{}",
        r.body
    );
    assert_eq!(
        alice.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "in-use"
    );
    admin
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-reset_status": {"status": "available"}}),
        )
        .await;

    // A snapshot in error goes with the volume, so the transfer is refused...
    let snap = alice.snapshot_available(&vol).await;
    let r = admin
        .post(
            &format!("snapshots/{snap}/action"),
            json!({"os-reset_status": {"status": "error"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = alice
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains(&format!("Snapshot: {snap} status must be available")),
        "{}",
        r.body
    );
    assert_eq!(
        alice.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "available"
    );
    // ...unless the snapshots stay behind.
    let t = offer(
        &alice.with_version("3.55"),
        "volume-transfers",
        json!({"volume_id": vol, "no_snapshots": true}),
    )
    .await;
    assert_eq!(
        alice
            .delete(&format!("volume-transfers/{}", t["id"].as_str().unwrap()))
            .await
            .status,
        202
    );

    // A snapshot being created reads the volume: no transfer, snapshots or not.
    let r = admin
        .post(
            &format!("snapshots/{snap}/action"),
            json!({"os-reset_status": {"status": "creating"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = alice
        .with_version("3.55")
        .post(
            "volume-transfers",
            json!({"transfer": {"volume_id": vol, "no_snapshots": true}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("being created"), "{}", r.body);
    assert_eq!(
        alice.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "available"
    );
}

#[tokio::test]
async fn of_racing_accepts_exactly_one_wins() {
    let server = Server::start("");
    let giver = server.client("alice:giver");
    let vol = available_volume(&giver).await;
    let t = offer(&giver, "os-volume-transfer", json!({"volume_id": vol})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let key = t["auth_key"].as_str().unwrap().to_string();

    let mut racers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let c = server.client(&format!("user{n}:project{n}"));
        let (id, key) = (id.clone(), key.clone());
        racers.spawn(async move {
            let r = c
                .post(
                    &format!("os-volume-transfer/{id}/accept"),
                    json!({"accept": {"auth_key": key}}),
                )
                .await;
            (n, r.status)
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(done) = racers.join_next().await {
        let (n, status) = done.unwrap();
        match status {
            202 => winners.push(n),
            404 => losers += 1,
            other => panic!("accept by project{n} answered {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(losers, 7);
    let owner = server.client(&format!("user{0}:project{0}", winners[0]));
    let v = owner.get(&format!("volumes/{vol}")).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.body["volume"]["status"], "available");
    for n in (0..8).filter(|n| *n != winners[0]) {
        let other = server.client(&format!("user{n}:project{n}"));
        assert_eq!(other.get(&format!("volumes/{vol}")).await.status, 404);
    }
}

#[tokio::test]
async fn a_transfer_request_is_checked_as_cinder_checks_it() {
    let server = Server::start("");
    let alice = server.client("alice:giver");
    let bob = server.client("bob:taker");
    let vol = available_volume(&alice).await;

    let r = alice
        .post("os-volume-transfer", json!({"transfer": {"name": "x"}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("'volume_id' is a required property")
    );
    let r = alice
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": "not-a-uuid"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("volume_id"), "{}", r.body);
    let r = alice
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": vol, "name": " padded "}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = alice
        .post("os-volume-transfer", json!({"volume_id": vol}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Missing required element 'transfer' in request body."
    );
    // Another project's volume is not found, as Cinder hides it.
    let r = bob
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.error_message(),
        format!("Volume {vol} could not be found.")
    );
    // An accept without its key, or of an unknown transfer.
    let t = offer(&alice, "os-volume-transfer", json!({"volume_id": vol})).await;
    let id = t["id"].as_str().unwrap();
    let r = bob
        .post(
            &format!("os-volume-transfer/{id}/accept"),
            json!({"accept": {}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("'auth_key' is a required property")
    );
    let r = bob
        .post(
            "os-volume-transfer/8f14e45f-ceea-467f-a0e6-1b1b0e7a3c11/accept",
            json!({"accept": {"auth_key": "x"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // An administrator sees every project's transfers with all_tenants.
    let admin = server.client("admin:admin");
    assert_eq!(
        admin.get("os-volume-transfer").await.body["transfers"],
        json!([])
    );
    let all = admin.get("os-volume-transfer?all_tenants=1").await;
    assert_eq!(all.body["transfers"][0]["id"], id, "{}", all.body);
}
