//! Private volume types and the projects given them, each project's own default type
//! (3.62), and QoS specs: Cinder's calls, bodies, statuses and words, and where QoS specs
//! end up (the connection info for front-end specs, the driver for back-end ones).

use serde_json::{Value, json};

use crate::common::{Client, Server, config_with_fixture};

/// Keystone-style project ids, as Cinder's type access schema requires.
const P1: &str = "0f9e8d7c6b5a4f3e8d2c1b0a9f8e7d6c";
const P2: &str = "1a2b3c4d5e6f40718293a4b5c6d7e8f9";

fn names(r: &crate::common::Resp) -> Vec<String> {
    r.body["volume_types"]
        .as_array()
        .unwrap_or_else(|| panic!("not a type list: {}", r.body))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// A refusal: its status and its exact message.
async fn refused(r: crate::common::Resp, status: u16, message: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.error_message(), message, "{}", r.body);
}

async fn action(c: &Client, type_id: &str, body: Value) -> crate::common::Resp {
    c.post(&format!("types/{type_id}/action"), body).await
}

#[tokio::test]
async fn private_types_are_seen_and_used_only_by_the_projects_given_them() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let one = server.client(&format!("alice:{P1}"));
    let two = server.client(&format!("bob:{P2}"));

    let r = admin
        .post(
            "types",
            json!({"volume_type": {"name": "secret", "os-volume-type-access:is_public": false}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    // Cinder's create view: types_manage's fields and the access extension's flag.
    assert_eq!(
        r.body,
        json!({"volume_type": {"id": id, "name": "secret", "description": null,
            "is_public": false, "os-volume-type-access:is_public": false, "extra_specs": {}}})
    );

    // Not given to anyone: members neither list, show nor use it.
    for c in [&one, &two] {
        assert!(!names(&c.get("types").await).contains(&"secret".into()));
        refused(
            c.get(&format!("types/{id}")).await,
            404,
            &format!("Volume type {id} could not be found."),
        )
        .await;
    }
    refused(
        one.post(
            "volumes",
            json!({"volume": {"size": 1, "volume_type": "secret"}}),
        )
        .await,
        404,
        "Volume type with name secret could not be found.",
    )
    .await;
    refused(
        one.post("volumes", json!({"volume": {"size": 1, "volume_type": id}}))
            .await,
        404,
        &format!("Volume type {id} could not be found."),
    )
    .await;

    // Only administrators read and change the access list.
    refused(
        one.get(&format!("types/{id}/os-volume-type-access")).await,
        403,
        "Policy doesn't allow volume_extension:volume_type_access:get_all_for_type to be performed.",
    )
    .await;
    refused(
        action(&one, &id, json!({"addProjectAccess": {"project": P1}})).await,
        403,
        "Policy doesn't allow volume_extension:volume_type_access:addProjectAccess to be performed.",
    )
    .await;
    refused(
        action(&one, &id, json!({"removeProjectAccess": {"project": P1}})).await,
        403,
        "Policy doesn't allow volume_extension:volume_type_access:removeProjectAccess to be performed.",
    )
    .await;
    let access = format!("types/{id}/os-volume-type-access");
    let r = admin.get(&access).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"volume_type_access": []}));

    let r = action(&admin, &id, json!({"addProjectAccess": {"project": P1}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    refused(
        action(&admin, &id, json!({"addProjectAccess": {"project": P1}})).await,
        409,
        &format!("Volume type access for {id} / {P1} combination already exists."),
    )
    .await;
    refused(
        action(
            &admin,
            &id,
            json!({"addProjectAccess": {"project": "demo"}}),
        )
        .await,
        400,
        "Invalid input for field/attribute project. Value: demo. 'demo' is not a 'uuid'",
    )
    .await;
    assert_eq!(
        admin.get(&access).await.body,
        json!({"volume_type_access": [{"volume_type_id": id, "project_id": P1}]})
    );

    // Project one now lists, shows and uses it; project two still does not see it.
    assert!(names(&one.get("types").await).contains(&"secret".into()));
    let r = one.get(&format!("types/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"volume_type": {"id": id, "name": "secret", "description": null,
            "is_public": false, "os-volume-type-access:is_public": false}}),
        "a member sees neither extra specs nor qos_specs_id"
    );
    let vol = one
        .create_volume(json!({"size": 1, "volume_type": "secret"}))
        .await;
    let v = one.wait_status("volumes", &vol, "available").await;
    assert_eq!(v["volume_type"], "secret");
    assert!(!names(&two.get("types").await).contains(&"secret".into()));
    assert_eq!(two.get(&format!("types/{id}")).await.status, 404);

    // Administrators list public types (and their own project's) by default, private
    // ones with is_public=false, every type with is_public=none, as Cinder does.
    assert!(!names(&admin.get("types").await).contains(&"secret".into()));
    assert_eq!(names(&admin.get("types?is_public=false").await), ["secret"]);
    let all = names(&admin.get("types?is_public=none").await);
    assert!(
        all.contains(&"secret".into()) && all.contains(&"__DEFAULT__".into()),
        "{all:?}"
    );
    refused(
        admin.get("types?is_public=maybe").await,
        400,
        "Invalid is_public filter [maybe]: use true, false or none.",
    )
    .await;
    // A member's is_public is ignored: they see public types and their own.
    assert!(names(&two.get("types?is_public=false").await).contains(&"__DEFAULT__".into()));

    let r = action(&admin, &id, json!({"removeProjectAccess": {"project": P1}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    refused(
        action(&admin, &id, json!({"removeProjectAccess": {"project": P1}})).await,
        404,
        &format!("Volume type access not found for {id} / {P1} combination."),
    )
    .await;
    assert!(!names(&one.get("types").await).contains(&"secret".into()));
    assert_eq!(one.get(&format!("types/{id}")).await.status, 404);

    // A public type has no access list.
    let public = admin.create_type("open", json!({})).await;
    refused(
        action(
            &admin,
            &public,
            json!({"addProjectAccess": {"project": P2}}),
        )
        .await,
        400,
        "Invalid volume type: Type access modification is not applicable to public volume type.",
    )
    .await;
    refused(
        admin
            .get(&format!("types/{public}/os-volume-type-access"))
            .await,
        404,
        "Access list not available for public volume types.",
    )
    .await;

    // Made public, everyone sees it; the update view is types_manage's.
    let r = admin
        .put(
            &format!("types/{id}"),
            json!({"volume_type": {"is_public": true}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"volume_type": {"id": id, "name": "secret", "description": null,
            "is_public": true, "extra_specs": {}}})
    );
    assert!(names(&two.get("types").await).contains(&"secret".into()));
}

#[tokio::test]
async fn default_types_are_set_per_project_from_3_62() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let admin62 = admin.with_version("3.62");
    let one = server.client(&format!("alice:{P1}"));
    let two = server.client(&format!("bob:{P2}"));
    let one62 = one.with_version("3.62");
    let gold = admin.create_type("gold", json!({})).await;
    let silver = admin.create_type("silver", json!({})).await;
    let set = |t: &str| json!({"default_type": {"volume_type": t}});

    // Below 3.62 the resource does not exist.
    for c in [admin.with_version("3.61"), admin.clone()] {
        assert_eq!(c.get("default-types").await.status, 404);
        let r = c.put(&format!("default-types/{P1}"), set("gold")).await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(r.error_message().contains("3.62"), "{}", r.body);
        assert_eq!(c.delete(&format!("default-types/{P1}")).await.status, 404);
    }

    // For administrators only, in Cinder's words.
    refused(
        one62.put(&format!("default-types/{P1}"), set("gold")).await,
        403,
        "Policy doesn't allow volume_extension:default_set_or_update to be performed.",
    )
    .await;
    refused(
        one62.get(&format!("default-types/{P1}")).await,
        403,
        "Policy doesn't allow volume_extension:default_get to be performed.",
    )
    .await;
    refused(
        one62.get("default-types").await,
        403,
        "You are not authorized to perform this operation.",
    )
    .await;
    refused(
        one62.delete(&format!("default-types/{P1}")).await,
        403,
        "Policy doesn't allow volume_extension:default_unset to be performed.",
    )
    .await;

    refused(
        admin62
            .put(&format!("default-types/{P1}"), set("nope"))
            .await,
        400,
        "Volume type with name nope could not be found.",
    )
    .await;
    let r = admin62
        .put(&format!("default-types/{P1}"), set("gold"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"default_type": {"project_id": P1, "volume_type_id": gold}})
    );
    // By id too, and a second project.
    let r = admin62
        .put(&format!("default-types/{P2}"), set(&silver))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin62.get(&format!("default-types/{P1}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"default_type": {"project_id": P1, "volume_type_id": gold}})
    );
    let r = admin62.get("default-types").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut listed = r.body["default_types"].as_array().unwrap().clone();
    listed.sort_by_key(|d| d["project_id"].as_str().unwrap().to_string());
    assert_eq!(
        listed,
        vec![
            json!({"project_id": P1, "volume_type_id": gold}),
            json!({"project_id": P2, "volume_type_id": silver}),
        ]
    );

    // The effective default, at any microversion: the project's own, else the configured.
    let three = server.client("carol:c0ffee00c0ffee00c0ffee00c0ffee00");
    for (c, want) in [(&one, "gold"), (&two, "silver"), (&three, "__DEFAULT__")] {
        let r = c.get("types/default").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["volume_type"]["name"], want);
        let vol = c.create_volume(json!({"size": 1})).await;
        assert_eq!(
            c.wait_status("volumes", &vol, "available").await["volume_type"],
            want
        );
    }

    // A project's default type cannot be deleted (once no volume uses it).
    let vol = two.get("volumes").await.body["volumes"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(two.delete(&format!("volumes/{vol}")).await.status, 202);
    assert!(two.wait("volumes", &vol).await.is_null());
    refused(
        admin.delete(&format!("types/{silver}")).await,
        400,
        &format!("The volume type {silver} is a default volume type and cannot be deleted."),
    )
    .await;

    for p in [P1, P2] {
        let r = admin62.delete(&format!("default-types/{p}")).await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(r.body, Value::Null);
    }
    // Unsetting what is not set is no error, as in Cinder.
    assert_eq!(
        admin62.delete(&format!("default-types/{P1}")).await.status,
        204
    );
    refused(
        admin62.get(&format!("default-types/{P1}")).await,
        404,
        &format!("Default type for project {P1} not found."),
    )
    .await;
    assert_eq!(
        admin62.get("default-types").await.body,
        json!({"default_types": []})
    );
    assert_eq!(
        one.get("types/default").await.body["volume_type"]["name"],
        "__DEFAULT__"
    );
    assert_eq!(admin.delete(&format!("types/{silver}")).await.status, 202);
}

#[tokio::test]
async fn qos_specs_answer_every_call_as_cinder_does() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let member = server.client(&format!("alice:{P1}"));
    let type_id = admin.create_type("qt", json!({})).await;

    let r = admin
        .post(
            "qos-specs",
            json!({"qos_specs": {"name": " fast ", "consumer": "both", "total_iops_sec": "500"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fast = r.body["qos_specs"]["id"].as_str().unwrap().to_string();
    assert_eq!(keys(&r.body), ["links", "qos_specs"]);
    assert_eq!(
        r.body["qos_specs"],
        json!({"id": fast, "name": "fast", "consumer": "both",
            "specs": {"total_iops_sec": "500"}})
    );
    let links = r.body["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "{}", r.body);
    for l in links {
        assert_eq!(keys(l), ["href", "rel"]);
        assert!(
            l["href"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/qos-specs/{fast}")),
            "{l}"
        );
    }
    // The consumer is back-end unless given.
    let r = admin
        .post(
            "qos-specs",
            json!({"qos_specs": {"name": "slow", "read_iops_sec": "10"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let slow = r.body["qos_specs"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["qos_specs"]["consumer"], "back-end");

    refused(
        admin
            .post("qos-specs", json!({"qos_specs": {"name": "fast"}}))
            .await,
        409,
        "QoS Specs fast already exists.",
    )
    .await;
    refused(
        admin
            .post(
                "qos-specs",
                json!({"qos_specs": {"name": "x", "consumer": "hypervisor"}}),
            )
            .await,
        400,
        "Invalid qos specs: Valid consumer of QoS specs are: ['front-end', 'back-end', 'both'] (not 'hypervisor')",
    )
    .await;
    let r = admin
        .post("qos-specs", json!({"qos_specs": {"consumer": "both"}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("'name' is a required property"),
        "{}",
        r.body
    );
    let r = admin
        .post(
            "qos-specs",
            json!({"qos_specs": {"name": "n", "total_iops_sec": 5}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let r = admin.get("qos-specs").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"qos_specs": [
            {"id": fast, "name": "fast", "consumer": "both", "specs": {"total_iops_sec": "500"}},
            {"id": slow, "name": "slow", "consumer": "back-end", "specs": {"read_iops_sec": "10"}},
        ]})
    );

    // Setting keys answers the body it was given.
    let spec = format!("qos-specs/{fast}");
    let r = admin
        .put(
            &spec,
            json!({"qos_specs": {"total_iops_sec": "800", "read_bytes_sec": "1024"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"qos_specs": {"total_iops_sec": "800", "read_bytes_sec": "1024"}})
    );
    let r = admin.get(&spec).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["qos_specs"]["specs"],
        json!({"total_iops_sec": "800", "read_bytes_sec": "1024"})
    );
    refused(
        admin
            .put("qos-specs/nope", json!({"qos_specs": {"a": "1"}}))
            .await,
        404,
        "No such QoS spec nope.",
    )
    .await;

    let r = admin
        .put(
            &format!("{spec}/delete_keys"),
            json!({"keys": ["read_bytes_sec"]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    refused(
        admin
            .put(
                &format!("{spec}/delete_keys"),
                json!({"keys": ["read_bytes_sec"]}),
            )
            .await,
        404,
        &format!("QoS spec {fast} has no spec with key read_bytes_sec."),
    )
    .await;
    assert_eq!(
        admin.get(&spec).await.body["qos_specs"]["specs"],
        json!({"total_iops_sec": "800"})
    );

    // Associations: one QoS spec per type.
    let associations = format!("{spec}/associations");
    assert_eq!(
        admin.get(&associations).await.body,
        json!({"qos_associations": []})
    );
    refused(
        admin.get(&format!("{spec}/associate")).await,
        400,
        "Volume Type id must not be None. (Send ?vol_type_id=<volume type id>.)",
    )
    .await;
    let r = admin
        .get(&format!("{spec}/associate?vol_type_id={type_id}"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    let r = admin.get(&associations).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"qos_associations": [{"association_type": "volume_type", "name": "qt", "id": type_id}]})
    );
    // The type's view names its QoS spec, for administrators only.
    let shown = admin.get(&format!("types/{type_id}")).await.body;
    assert_eq!(shown["volume_type"]["qos_specs_id"], fast.as_str());
    let shown = member.get(&format!("types/{type_id}")).await.body;
    assert!(
        shown["volume_type"].get("qos_specs_id").is_none(),
        "{shown}"
    );
    refused(
        admin
            .get(&format!("qos-specs/{slow}/associate?vol_type_id={type_id}"))
            .await,
        400,
        &format!(
            "Invalid volume type: Type {type_id} is already associated with another qos specs: {fast}"
        ),
    )
    .await;
    refused(
        admin
            .get(&format!("{spec}/associate?vol_type_id=no-type"))
            .await,
        404,
        "Volume type no-type could not be found.",
    )
    .await;
    refused(
        admin
            .get(&format!("qos-specs/nope/associate?vol_type_id={type_id}"))
            .await,
        404,
        "No such QoS spec nope.",
    )
    .await;

    // Associated: no delete unless forced.
    let r = admin.delete(&spec).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().starts_with("Qos specs still in use."),
        "{}",
        r.body
    );
    refused(
        admin.delete(&format!("{spec}?force=maybe")).await,
        400,
        "Value 'maybe' for 'force' is not a boolean.",
    )
    .await;

    let r = admin
        .get(&format!("{spec}/disassociate?vol_type_id={type_id}"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        admin.get(&associations).await.body,
        json!({"qos_associations": []})
    );
    assert_eq!(
        admin.get(&format!("types/{type_id}")).await.body["volume_type"]["qos_specs_id"],
        Value::Null
    );
    assert_eq!(
        admin
            .get(&format!("{spec}/associate?vol_type_id={type_id}"))
            .await
            .status,
        202
    );
    let r = admin.get(&format!("{spec}/disassociate_all")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        admin.get(&associations).await.body,
        json!({"qos_associations": []})
    );

    assert_eq!(
        admin
            .get(&format!("{spec}/associate?vol_type_id={type_id}"))
            .await
            .status,
        202
    );
    let r = admin.delete(&format!("{spec}?force=true")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        admin.get(&format!("types/{type_id}")).await.body["volume_type"]["qos_specs_id"],
        Value::Null
    );
    refused(
        admin.get(&spec).await,
        404,
        &format!("No such QoS spec {fast}."),
    )
    .await;
    let r = admin.delete(&format!("qos-specs/{slow}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(admin.get("qos-specs").await.body, json!({"qos_specs": []}));

    // Every call is for administrators, refused in Cinder's words.
    let policy = |p: &str| {
        format!("Policy doesn't allow volume_extension:qos_specs_manage:{p} to be performed.")
    };
    let body = json!({"qos_specs": {"name": "m"}});
    for (r, p) in [
        (member.get("qos-specs").await, "get_all"),
        (member.post("qos-specs", body.clone()).await, "create"),
        (member.get(&format!("qos-specs/{slow}")).await, "get"),
        (
            member
                .put(
                    &format!("qos-specs/{slow}"),
                    json!({"qos_specs": {"a": "1"}}),
                )
                .await,
            "update",
        ),
        (
            member
                .put(
                    &format!("qos-specs/{slow}/delete_keys"),
                    json!({"keys": ["a"]}),
                )
                .await,
            "delete",
        ),
        (member.delete(&format!("qos-specs/{slow}")).await, "delete"),
        (
            member.get(&format!("qos-specs/{slow}/associations")).await,
            "get_all",
        ),
        (
            member
                .get(&format!("qos-specs/{slow}/associate?vol_type_id={type_id}"))
                .await,
            "update",
        ),
        (
            member
                .get(&format!(
                    "qos-specs/{slow}/disassociate?vol_type_id={type_id}"
                ))
                .await,
            "update",
        ),
        (
            member
                .get(&format!("qos-specs/{slow}/disassociate_all"))
                .await,
            "update",
        ),
    ] {
        refused(r, 403, &policy(p)).await;
    }
}

/// Creates a QoS spec (admin) and associates it with `type_id`; returns its id.
async fn qos_for(admin: &Client, type_id: &str, spec: Value) -> String {
    let r = admin.post("qos-specs", json!({ "qos_specs": spec })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["qos_specs"]["id"].as_str().unwrap().to_string();
    let r = admin
        .get(&format!("qos-specs/{id}/associate?vol_type_id={type_id}"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    id
}

#[tokio::test]
async fn front_end_qos_specs_reach_the_connection_info() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let c = server.client("alice:proj-a");
    let limited = admin.create_type("limited", json!({})).await;
    let qos = qos_for(
        &admin,
        &limited,
        json!({"name": "fe", "consumer": "front-end", "total_iops_sec": "500",
            "read_iops_sec_per_gb": "10", "write_bytes_sec_per_gb": "1000",
            "write_bytes_sec_max": "1500"}),
    )
    .await;
    let connector = json!({"host": "compute-1", "ip": "127.0.0.1",
        "initiator": "iqn.1994-05.com.redhat:compute-1", "multipath": false,
        "platform": "x86_64", "os_type": "linux"});

    let vol = c
        .create_volume(json!({"size": 2, "volume_type": "limited"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    let plain = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &plain, "available").await;

    // Per-GB limits are worked out for the volume's size, within their maximum.
    let want = json!({"total_iops_sec": "500", "read_iops_sec": 20, "write_bytes_sec": 1500});
    let init = |vol: String| {
        let c = c.clone();
        let connector = connector.clone();
        async move {
            let r = c
                .post(
                    &format!("volumes/{vol}/action"),
                    json!({"os-initialize_connection": {"connector": connector}}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["connection_info"]["data"].clone()
        }
    };
    let data = init(vol.clone()).await;
    assert_eq!(data["qos_specs"], want, "{data}");
    assert_eq!(data["access_mode"], "rw");
    // Without a QoS spec, Cinder's `qos_specs` is there and null.
    let data = init(plain.clone()).await;
    assert!(data.get("qos_specs").is_some_and(Value::is_null), "{data}");

    // The attachments API hands the same to the client, and keeps it.
    let c44 = c.with_version("3.44");
    let r = c44
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "instance_uuid": "9d2a7d3e-0000-4000-8000-000000000002",
                "connector": connector}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["attachment"]["connection_info"]["data"]["qos_specs"], want,
        "{}",
        r.body
    );
    assert_eq!(
        c44.get(&format!("attachments/{att}")).await.body["attachment"]["connection_info"]["data"]
            ["qos_specs"],
        want
    );
    assert_eq!(c44.delete(&format!("attachments/{att}")).await.status, 200);

    // A back-end spec is the driver's, not the hypervisor's.
    let r = admin
        .put(
            &format!("qos-specs/{qos}"),
            json!({"qos_specs": {"consumer": "back-end"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data = init(vol.clone()).await;
    assert!(data["qos_specs"].is_null(), "{data}");
}

#[tokio::test]
async fn back_end_qos_specs_reach_the_driver_as_its_qos_specs() {
    let server = Server::start(&config_with_fixture(30_000, 64));
    let admin = server.client("admin:admin");
    let c = server.client("alice:proj-a");
    // A contract 0.3 driver gets them beside the type's own extra specs (a 0.2 driver
    // finds them among the extra specs as `qos:KEY`, replacing a spec of the same key:
    // `loading::drivers_on_contracts_0_2_and_0_3…` and the runtime's `compat` check that).
    let be = admin
        .create_type(
            "be",
            json!({"volume_backend_name": "bad", "qos:total_iops_sec": "1"}),
        )
        .await;
    qos_for(
        &admin,
        &be,
        json!({"name": "be", "total_iops_sec": "900", "write_bytes_sec": "2048"}),
    )
    .await;
    let fe = admin
        .create_type("fe", json!({"volume_backend_name": "bad"}))
        .await;
    qos_for(
        &admin,
        &fe,
        json!({"name": "fe", "consumer": "front-end", "read_iops_sec": "7"}),
    )
    .await;

    let specs_logged = |server: &Server| -> Vec<String> {
        server
            .log()
            .lines()
            .filter_map(|l| {
                // `[extra specs] qos-seen: [qos specs]`, without what the log line adds.
                let seen = l.split("specs-seen: ").nth(1)?;
                let end = seen.match_indices(']').nth(1)?.0;
                Some(seen[..=end].to_string())
            })
            .collect()
    };
    let vol = c
        .create_volume(json!({"size": 1, "name": "specs", "volume_type": "be"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    server
        .wait_log("specs-seen: [qos:total_iops_sec=1; volume_backend_name=bad] qos-seen: [total_iops_sec=900; write_bytes_sec=2048]")
        .await;
    let vol = c
        .create_volume(json!({"size": 1, "name": "specs", "volume_type": "fe"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    server
        .wait_log("specs-seen: [volume_backend_name=bad] qos-seen: []")
        .await;
    assert_eq!(
        specs_logged(&server),
        [
            "[qos:total_iops_sec=1; volume_backend_name=bad] qos-seen: [total_iops_sec=900; write_bytes_sec=2048]",
            "[volume_backend_name=bad] qos-seen: []",
        ],
        "front-end specs are not the driver's"
    );
}
