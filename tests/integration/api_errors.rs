//! Bad input answers with Cinder's error bodies, the right status and a message that
//! names what was wrong.

use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn bad_volume_requests_name_the_field() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");

    let cases = [
        (
            json!({"volume": {"size": 0}}),
            "size",
            "0 is less than the minimum of 1",
        ),
        (
            json!({"volume": {"size": -5}}),
            "size",
            "-5 is less than the minimum of 1",
        ),
        (
            json!({"volume": {"size": "abc"}}),
            "size",
            "'abc' is not of type 'integer'",
        ),
        (
            json!({"volume": {"size": 1.5}}),
            "size",
            "is not of type 'integer'",
        ),
        (json!({"volume": {}}), "size", "size is required"),
        (
            json!({"volume": {"snapshot_id": "8d2b0e6e-0000-4000-8000-000000000000"}}),
            "snapshot_id",
            "could not be found",
        ),
        (
            json!({"volume": {"size": 1, "availability_zone": "mars"}}),
            "availability_zone",
            "mars",
        ),
        (
            json!({"volume": {"size": 1, "name": 7}}),
            "name",
            "is not of type 'string'",
        ),
        (
            json!({"volume": {"size": 1, "metadata": {"k": 1}}}),
            "metadata",
            "must be a string",
        ),
        (json!({"volume": "x"}), "volume", "is not of type 'object'"),
    ];
    for (body, field, why) in cases {
        let r = c.post("volumes", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let msg = r.error_message();
        assert!(r.body.get("badRequest").is_some(), "{}", r.body);
        assert!(
            msg.contains(&format!("field/attribute {field}")),
            "{body}: {msg}"
        );
        assert!(msg.contains(why), "{body}: {msg}");
    }

    // A type the caller cannot find is Cinder's 404, as a missing resource is.
    let r = c
        .post(
            "volumes",
            json!({"volume": {"size": 1, "volume_type": "no-such-type"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Volume type with name no-such-type could not be found."
    );

    // No body at all, a body that is not JSON, and one without the `volume` element.
    let r = c.raw(reqwest::Method::POST, "volumes", None).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("body is empty"),
        "{}",
        r.error_message()
    );
    let r = c
        .raw(
            reqwest::Method::POST,
            "volumes",
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("Malformed request body"),
        "{}",
        r.error_message()
    );
    let r = c.post("volumes", json!({"size": 1})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_message(),
        "Missing required element 'volume' in request body."
    );

    // Extend must grow the volume; unknown actions are named.
    let vol = c.create_volume(json!({"size": 2})).await;
    c.wait_status("volumes", &vol, "available").await;
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-extend": {"new_size": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("greater than current size"),
        "{}",
        r.error_message()
    );
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-frobnicate": {}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("os-frobnicate"),
        "{}",
        r.error_message()
    );

    // Nothing was created by the refused requests.
    let r = c.get("volumes").await;
    assert_eq!(r.body["volumes"].as_array().unwrap().len(), 1, "{}", r.body);
}

#[tokio::test]
async fn projects_are_isolated_and_admin_actions_are_admin_only() {
    let server = Server::start("");
    let alice = server.client("alice:proj-a");
    let mallory = server.client("mallory:proj-m");
    let vol = alice.create_volume(json!({"size": 1})).await;
    alice.wait_status("volumes", &vol, "available").await;

    for r in [
        mallory.get(&format!("volumes/{vol}")).await,
        mallory.delete(&format!("volumes/{vol}")).await,
        mallory
            .post(
                &format!("volumes/{vol}/action"),
                json!({"os-extend": {"new_size": 3}}),
            )
            .await,
        mallory
            .post("snapshots", json!({"snapshot": {"volume_id": vol}}))
            .await,
    ] {
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(r.body.get("itemNotFound").is_some(), "{}", r.body);
    }
    assert_eq!(
        mallory.get("volumes/detail").await.body["volumes"],
        json!([])
    );
    // A clone of another project's volume is refused as an unknown source.
    let r = mallory
        .post("volumes", json!({"volume": {"source_volid": vol}}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("source_volid"),
        "{}",
        r.error_message()
    );
    // The volume is untouched.
    assert_eq!(alice.wait("volumes", &vol).await["status"], "available");

    // The token's project must match the URL's.
    let r = reqwest::Client::new()
        .get(format!("{}/v3/proj-a/volumes", server.base))
        .header("X-Auth-Token", "mallory:proj-m")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Types and pools are for administrators.
    let r = alice
        .post("types", json!({"volume_type": {"name": "gold"}}))
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.error_message().contains("types_manage"),
        "{}",
        r.error_message()
    );
    assert_eq!(alice.get("scheduler-stats/get_pools").await.status, 403);
    let admin = server.client("admin:proj-a");
    let r = admin.get("scheduler-stats/get_pools?detail=true").await;
    assert_eq!(r.status, 200);
    let pool = &r.body["pools"][0];
    assert!(
        pool["name"].as_str().unwrap().starts_with("ashlar@local#"),
        "{}",
        r.body
    );
    assert!(pool["capabilities"]["total_capacity_gb"].as_f64().unwrap() > 0.0);
    assert_eq!(pool["capabilities"]["storage_protocol"], "nfs");
}

#[tokio::test]
async fn versions_auth_and_request_ids() {
    let server = Server::start("");
    let http = reqwest::Client::new();
    for path in ["/", "/v3", "/v3/"] {
        let r = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("x-openstack-request-id"));
        let body: serde_json::Value = r.json().await.unwrap();
        let v = &body["versions"][0];
        assert_eq!(v["id"], "v3.0", "{path}: {body}");
        assert_eq!(v["min_version"], "3.0");
        assert_eq!(v["status"], "CURRENT");
        assert!(v["links"].as_array().is_some_and(|l| !l.is_empty()));
    }
    let r = http
        .get(format!("{}/v3/p/volumes", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let id = r.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("req-"), "{id}");

    let mut c = server.client("u:p");
    c.version = Some("3.999".into());
    let r = c.get("volumes").await;
    assert_eq!(r.status, 406);
    assert!(
        r.error_message().contains("maximum is 3.71"),
        "{}",
        r.error_message()
    );
    c.version = Some("latest".into());
    let r = c.get("volumes").await;
    assert_eq!(r.headers["openstack-api-version"], "volume 3.71");
    // Microversion 3.67: the project id may be left out of the URL.
    let r = http
        .get(format!("{}/v3/volumes", server.base))
        .header("X-Auth-Token", "u:p")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = server
        .client("u:p")
        .get("volumes/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.error_message(),
        "Volume 00000000-0000-0000-0000-000000000000 could not be found."
    );
}
