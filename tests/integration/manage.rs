//! Managing existing storage and letting go of it (Cinder's `manageable_volumes`,
//! `os-volume-manage` and `os-unmanage`) on each kind of backend: a file on the nfs
//! driver's share, an LV in a real volume group on a loop device, a LUN on the array
//! simulator. Each is made outside the service, listed as safe to manage, managed (renamed
//! to the volume's name, sized in whole GiB, its bytes kept), listed as managed, then
//! unmanaged: the row goes, the storage stays.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Client, Server, client_program, read_at, write_at};

const GIB: u64 = 1 << 30;

/// The one pool of the server's one backend: `HOST@BACKEND#POOL`.
pub async fn only_pool(admin: &Client) -> String {
    let r = admin.get("scheduler-stats/get_pools").await;
    assert_eq!(r.status, 200, "get_pools: {}", r.body);
    let pools = r.body["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 1, "{}", r.body);
    pools[0]["name"].as_str().unwrap().to_string()
}

/// `host` for a query string (`#` starts a fragment).
pub fn q(host: &str) -> String {
    host.replace('#', "%23")
}

/// The detailed manageable listing of `host`.
pub async fn manageable(admin: &Client, host: &str) -> Vec<Value> {
    let r = admin
        .get(&format!("manageable_volumes/detail?host={}", q(host)))
        .await;
    assert_eq!(r.status, 200, "manageable_volumes/detail: {}", r.body);
    r.body["manageable-volumes"].as_array().unwrap().clone()
}

/// The listing's entry for the storage named `name`.
pub fn entry<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter()
        .find(|e| e["reference"] == json!({ "source-name": name }))
}

/// Manages `name` on `host` and waits for the volume; its view once settled.
pub async fn manage(admin: &Client, host: &str, name: &str) -> Value {
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": name}, "name": "adopted", "metadata": {"from": "legacy"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "manage {name}: {}", r.body);
    assert_eq!(r.body["volume"]["status"], "managing", "{}", r.body);
    check_tempest_schema("manage_volume", &r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    admin.wait("volumes", &id).await
}

/// Unmanages volume `id` and waits until its row is gone.
pub async fn unmanage(admin: &Client, id: &str) {
    let r = admin
        .post(&format!("volumes/{id}/action"), json!({"os-unmanage": {}}))
        .await;
    assert_eq!(r.status, 202, "os-unmanage: {}", r.body);
    assert!(r.body.is_null(), "os-unmanage answers no body: {}", r.body);
    admin.wait_gone("volumes", id).await;
}

/// Validates `body` against tempest.lib's schema `volume.<schema>` (the response schema
/// its volume clients check).
pub fn check_tempest_schema(schema: &str, body: &Value) {
    let script = format!(
        "import json, sys\n\
         from tempest.lib.api_schema.response.volume import {schema} as s\n\
         from tempest.lib.common import jsonschema_validator as v\n\
         body = json.load(sys.stdin)\n\
         v.JSONSCHEMA_VALIDATOR(s.{schema}['response_body'], format_checker=v.FORMAT_CHECKER).validate(body)\n"
    );
    let mut child = Command::new(client_program("python"))
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{schema} does not validate {body}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The project's usage of `resource`.
pub async fn in_use(admin: &Client, resource: &str) -> i64 {
    let r = admin
        .get(&format!("os-quota-sets/{}?usage=True", admin.project))
        .await;
    assert_eq!(r.status, 200, "quota usage: {}", r.body);
    r.body["quota_set"][resource]["in_use"].as_i64().unwrap()
}

const PATTERN: &[u8] = b"existing data, kept across manage and unmanage";

/// A raw file of 1 GiB and 4 KiB (a 2 GiB volume once managed) with a pattern at its start
/// and its end.
fn legacy_file(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(GIB + 4096).unwrap();
    drop(f);
    write_at(path, 0, PATTERN);
    write_at(path, GIB, PATTERN);
}

// REAL: the bundled nfs driver on its local share; the file is made outside the service.
#[tokio::test]
async fn an_nfs_file_is_managed_renamed_and_unmanaged_in_place() {
    let server = Server::start("");
    let admin = server.client("admin:proj-m").with_version("3.8");
    let host = only_pool(&admin).await;
    let share = server.share();
    legacy_file(&share.join("legacy.img"));

    // Listed as safe, with Cinder's summary and detail shapes.
    let r = admin
        .get(&format!("manageable_volumes?host={}", q(&host)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let summary = &r.body["manageable-volumes"];
    let e = entry(summary.as_array().unwrap(), "legacy.img").expect("listed");
    assert_eq!(
        *e,
        json!({"reference": {"source-name": "legacy.img"}, "size": 2, "safe_to_manage": true})
    );
    let list = manageable(&admin, &host).await;
    let e = entry(&list, "legacy.img").unwrap();
    assert_eq!(
        *e,
        json!({"reference": {"source-name": "legacy.img"}, "size": 2, "safe_to_manage": true,
               "reason_not_safe": null, "cinder_id": null, "extra_info": null})
    );

    let v = manage(&admin, &host, "legacy.img").await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["size"], 2);
    assert_eq!(v["name"], "adopted");
    assert_eq!(v["metadata"]["from"], "legacy");
    assert_eq!(v["os-vol-host-attr:host"], host.as_str());
    let id = v["id"].as_str().unwrap().to_string();
    let file = share.join(format!("volume-{id}"));
    assert!(!share.join("legacy.img").exists(), "the file was renamed");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 2 * GIB);
    assert_eq!(read_at(&file, 0, PATTERN.len()), PATTERN);
    assert_eq!(read_at(&file, GIB, PATTERN.len()), PATTERN);
    assert_eq!(in_use(&admin, "volumes").await, 1);
    assert_eq!(in_use(&admin, "gigabytes").await, 2);

    // Now the volume's, and not safe.
    let list = manageable(&admin, &host).await;
    let e = entry(&list, &format!("volume-{id}")).expect("listed under its new name");
    assert_eq!(e["safe_to_manage"], false);
    assert_eq!(e["reason_not_safe"], "already managed");
    assert_eq!(e["cinder_id"], id.as_str());
    // Managing it again is refused up front, as Cinder refuses it.
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": format!("volume-{id}")}}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("already managed"), "{}", r.body);

    // Only an administrator unmanages.
    let member = server.client("alice:proj-m");
    let r = member
        .post(&format!("volumes/{id}/action"), json!({"os-unmanage": {}}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.error_message()
            .contains("volume_extension:volume_unmanage"),
        "{}",
        r.body
    );
    unmanage(&admin, &id).await;
    assert_eq!(
        read_at(&file, GIB, PATTERN.len()),
        PATTERN,
        "the file stays"
    );
    assert_eq!(in_use(&admin, "volumes").await, 0);
    assert_eq!(in_use(&admin, "gigabytes").await, 0);
    let list = manageable(&admin, &host).await;
    let e = entry(&list, &format!("volume-{id}")).expect("still on the share");
    assert_eq!(e["safe_to_manage"], true, "{e}");
    assert_eq!(e["cinder_id"], Value::Null);

    // The legacy spelling manages it again, at 3.0.
    let legacy = admin.with_version("3.0");
    let r = legacy
        .post(
            "os-volume-manage",
            json!({"volume": {"host": host, "ref": {"source-name": format!("volume-{id}")}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    check_tempest_schema("manage_volume", &r.body);
    let again = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = legacy.wait("volumes", &again).await;
    assert_eq!(v["status"], "available", "{v}");
    assert!(share.join(format!("volume-{again}")).exists());
    assert_eq!(
        read_at(&share.join(format!("volume-{again}")), 0, PATTERN.len()),
        PATTERN
    );
}

// REAL: bad requests get Cinder's errors, before anything is recorded; a reference to
// nothing ends `error_managing` with a message.
#[tokio::test]
async fn bad_manage_requests_get_cinders_errors() {
    let server = Server::start("");
    let admin = server.client("admin:proj-b").with_version("3.8");
    let host = only_pool(&admin).await;
    let post = |body: Value| {
        let admin = admin.clone();
        async move { admin.post("manageable_volumes", body).await }
    };

    let r = post(json!({"volume": {"host": host}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("'ref' is a required property"),
        "{}",
        r.body
    );
    let r = post(json!({"volume": {"ref": {"source-name": "x"}}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("Host field is missing"),
        "{}",
        r.body
    );
    let r = admin
        .with_version("3.16")
        .post(
            "manageable_volumes",
            json!({"volume": {"ref": {"source-name": "x"}}}),
        )
        .await;
    assert!(
        r.error_message()
            .contains("One and only one of cluster and host must be set"),
        "{}",
        r.body
    );
    let r =
        post(json!({"volume": {"host": "nowhere@nothing#p", "ref": {"source-name": "x"}}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Host 'nowhere@nothing#p' not found"),
        "{}",
        r.body
    );
    let r =
        post(json!({"volume": {"host": host, "ref": {"source-name": "x"}, "volume_type": "nope"}}))
            .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Cannot find requested 'nope' volume type"),
        "{}",
        r.body
    );
    let r = post(json!({"volume": {"host": host, "ref": 7}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("field/attribute ref"),
        "{}",
        r.body
    );
    let r =
        post(json!({"volume": {"host": host, "ref": {"source-name": "x"}, "bootable": "maybe"}}))
            .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("bootable"), "{}", r.body);
    let r = post(json!({"host": host})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Missing required element 'volume'"),
        "{}",
        r.body
    );

    // Administrators only; the v3 resource from 3.8.
    let member = server.client("alice:proj-b").with_version("3.8");
    let r = member
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": "x"}}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Policy doesn't allow volume_extension:volume_manage to be performed."
    );
    let r = member
        .get(&format!("manageable_volumes?host={}", q(&host)))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = admin
        .with_version("3.7")
        .get(&format!("manageable_volumes?host={}", q(&host)))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Listing: a host is needed, sort keys are Cinder's two, a marker must be found.
    let r = admin.get("manageable_volumes").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("Host field is missing"));
    let r = admin
        .get(&format!(
            "manageable_volumes?host={}&sort=name:asc",
            q(&host)
        ))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("Invalid sort keys passed: name"));
    for name in ["a.img", "b.img", "c.img"] {
        std::fs::File::create(server.share().join(name))
            .unwrap()
            .set_len(GIB)
            .unwrap();
    }
    let r = admin
        .get(&format!(
            "manageable_volumes?host={}&sort=reference:asc&limit=1&marker={}",
            q(&host),
            r#"{"source-name":"a.img"}"#
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["manageable-volumes"],
        json!([{"reference": {"source-name": "b.img"}, "size": 1, "safe_to_manage": true}])
    );
    let r = admin
        .get(&format!(
            "manageable_volumes?host={}&marker={}",
            q(&host),
            r#"{"source-name":"gone"}"#
        ))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("marker not found"), "{}", r.body);

    // Snapshots: the nfs driver does not list them, which lists none (Cinder's base
    // driver answers an empty list too); the host and paging are checked as for volumes.
    for path in ["manageable_snapshots", "manageable_snapshots/detail"] {
        let r = admin.get(&format!("{path}?host={}", q(&host))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, json!({"manageable-snapshots": []}));
    }
    let r = admin.get("manageable_snapshots?host=nowhere@none").await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A reference to nothing: accepted (the driver is asked later, as in Cinder), then
    // `error_managing` with a message that names no path; the row can be deleted.
    let r = post(json!({"volume": {"host": host, "ref": {"source-name": "missing.img"}}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = admin.wait("volumes", &id).await;
    assert_eq!(v["status"], "error_managing", "{v}");
    let msgs = admin.messages_for(&id).await;
    assert_eq!(
        msgs,
        [
            "manage existing volume:An unknown error occurred. The backend could not find what the operation needs."
        ],
    );
    assert!(!msgs[0].contains(server.share().to_str().unwrap()));
    let details = admin.message_details_for(&id).await;
    assert!(details[0].contains("missing.img"), "{details:?}");
    // It can be unmanaged (through `error_managing_deleting`, as in Cinder).
    let r = admin
        .post(&format!("volumes/{id}/action"), json!({"os-unmanage": {}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let now = admin.get(&format!("volumes/{id}")).await;
    assert!(
        now.status == 404 || now.body["volume"]["status"] == "error_managing_deleting",
        "{}",
        now.body
    );
    admin.wait_gone("volumes", &id).await;

    // Unmanaging a volume with a snapshot is refused, as Cinder refuses it.

    let v = manage(&admin, &host, "a.img").await;
    let id = v["id"].as_str().unwrap().to_string();
    admin.snapshot_available(&id).await;
    let r = admin
        .post(&format!("volumes/{id}/action"), json!({"os-unmanage": {}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().starts_with(
            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots"
        ),
        "{}",
        r.body
    );
    assert_eq!(
        admin.get(&format!("volumes/{id}")).await.body["volume"]["status"],
        "available"
    );
}

// REAL: lvm2 on a loop device (metadata only, as in lvm.rs); the LV is made outside the
// service, 1.5 GiB, and becomes a 2 GiB volume.
#[tokio::test]
async fn an_lv_is_managed_renamed_grown_and_unmanaged_in_place() {
    use crate::lvm::{LVM_PROGRAMS, LoopVg, run};
    let vg = LoopVg::new("4G");
    run(
        "lvcreate",
        &[
            "--driverloaded",
            "n",
            "--yes",
            "-q",
            "-n",
            "legacy",
            "-L",
            "1536m",
            &vg.name,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    let mut programs = LVM_PROGRAMS.to_vec();
    programs.push("lvrename");
    let server = Server::start_in(
        dir.path(),
        &format!(
            r#"
[backends.lvm1]
driver = "lvm"
grants.exec = {programs:?}
grants.block = ["@DIR@/dev", "/dev/zero"]
settings.volume_group = "{}"
settings.device_dir = "@DIR@/dev"
settings.activation = "false"
"#,
            vg.name
        ),
    );
    let admin = server.client("admin:proj-l").with_version("3.8");
    let host = only_pool(&admin).await;
    assert_eq!(host, format!("ashlar@lvm1#{}", vg.name));

    let list = manageable(&admin, &host).await;
    assert_eq!(
        list,
        [
            json!({"reference": {"source-name": "legacy"}, "size": 2, "safe_to_manage": true,
                "reason_not_safe": null, "cinder_id": null, "extra_info": null})
        ]
    );
    let v = manage(&admin, &host, "legacy").await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["size"], 2);
    let id = v["id"].as_str().unwrap().to_string();
    let lv = format!("volume-{id}");
    assert_eq!(
        vg.lvs(),
        std::collections::BTreeMap::from([(lv.clone(), 2 * GIB)]),
        "renamed and grown to whole GiB"
    );
    let list = manageable(&admin, &host).await;
    let e = entry(&list, &lv).unwrap();
    assert_eq!(e["safe_to_manage"], false);
    assert_eq!(e["reason_not_safe"], "already managed");
    assert_eq!(e["cinder_id"], id.as_str());

    unmanage(&admin, &id).await;
    assert_eq!(
        vg.lvs(),
        std::collections::BTreeMap::from([(lv.clone(), 2 * GIB)]),
        "the LV stays"
    );
    let list = manageable(&admin, &host).await;
    assert_eq!(entry(&list, &lv).unwrap()["safe_to_manage"], true);

    // What is not there: the volume ends `error_managing`, the volume group untouched.
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": "nothing"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let bad = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = admin.wait("volumes", &bad).await;
    assert_eq!(v["status"], "error_managing", "{v}");
    let details = admin.message_details_for(&bad).await;
    assert!(
        details[0].contains("no logical volume `nothing`"),
        "{details:?}"
    );
    assert_eq!(vg.lvs().len(), 1);
}

// REAL: a backend not granted the optional rename program still serves; managing on it
// fails with a message naming the grant, and nothing on the volume group changes.
#[tokio::test]
async fn without_lvrename_managing_says_which_grant_is_missing() {
    use crate::lvm::{LVM_PROGRAMS, LoopVg, run};
    let vg = LoopVg::new("2G");
    run(
        "lvcreate",
        &[
            "--driverloaded",
            "n",
            "--yes",
            "-q",
            "-n",
            "legacy",
            "-L",
            "1g",
            &vg.name,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    let server = Server::start_in(
        dir.path(),
        &format!(
            r#"
[backends.lvm1]
driver = "lvm"
grants.exec = {LVM_PROGRAMS:?}
grants.block = ["@DIR@/dev", "/dev/zero"]
settings.volume_group = "{}"
settings.device_dir = "@DIR@/dev"
settings.activation = "false"
"#,
            vg.name
        ),
    );
    let admin = server.client("admin:proj-l").with_version("3.8");
    let host = only_pool(&admin).await;
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": "legacy"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = admin.wait("volumes", &id).await;
    assert_eq!(v["status"], "error_managing", "{v}");
    let msgs = admin.messages_for(&id).await;
    assert_eq!(
        msgs,
        [
            "manage existing volume:An unknown error occurred. The operation is not supported by the backend."
        ]
    );
    let details = admin.message_details_for(&id).await;
    assert!(details[0].contains("grants.exec"), "{details:?}");
    assert_eq!(
        vg.lvs(),
        std::collections::BTreeMap::from([("legacy".to_string(), GIB)])
    );
}

// The array simulator (tests/array-sim) with FlexVol pools: a LUN made through the array's
// own REST API, managed by its uuid, renamed within its FlexVol as Cinder's ONTAP driver
// renames it, its bytes kept.
#[tokio::test]
async fn a_lun_is_managed_by_uuid_renamed_in_its_flexvol_and_unmanaged() {
    use crate::san::{ArraySim, PASSWORD, by_name, san_config};
    let sim = ArraySim::start(&["--aggregate", "aggr1:100", "--flexvol", "vol_a:aggr1:20"]);
    let made: Value = reqwest::Client::new()
        .post(format!("{}/api/storage/luns?return_records=true", sim.base))
        .basic_auth("admin", Some(PASSWORD))
        .json(
            &json!({"svm": {"name": "svm0"}, "name": "/vol/vol_a/legacy", "os_type": "linux",
                      "space": {"size": GIB + GIB / 2}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uuid = made["records"][0]["uuid"].as_str().unwrap().to_string();
    let st = sim.state().await;
    let file = std::path::PathBuf::from(
        by_name(&st["luns"], "/vol/vol_a/legacy")["backing_file"]
            .as_str()
            .unwrap(),
    );
    write_at(&file, 0, PATTERN);
    let server = Server::start(&san_config(
        &sim,
        PASSWORD,
        "settings.flexvol_names = \"vol_a\"",
    ));
    let admin = server.client("admin:proj-s").with_version("3.8");
    let host = only_pool(&admin).await;
    assert_eq!(host, "ashlar@san#vol_a");

    let list = manageable(&admin, &host).await;
    assert_eq!(
        list,
        [
            json!({"reference": {"source-name": "/vol/vol_a/legacy"}, "size": 2, "safe_to_manage": true,
                "reason_not_safe": null, "cinder_id": null, "extra_info": null})
        ]
    );
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-id": uuid}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = admin.wait("volumes", &id).await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["size"], 2);
    let path = format!("/vol/vol_a/volume-{id}");
    let st = sim.state().await;
    let lun = by_name(&st["luns"], &path);
    assert_eq!(lun["uuid"], uuid.as_str(), "the same LUN, renamed");
    assert_eq!(lun["space"]["size"], 2 * GIB, "grown to whole GiB");
    assert_eq!(read_at(&file, 0, PATTERN.len()), PATTERN);
    assert!(
        !st["luns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "/vol/vol_a/legacy")
    );
    let list = manageable(&admin, &host).await;
    let e = entry(&list, &path).unwrap();
    assert_eq!(e["safe_to_manage"], false);
    assert_eq!(e["cinder_id"], id.as_str());

    // The managed LUN is a volume like any other: it grows through the API.
    let r = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(admin.wait("volumes", &id).await["size"], 3);

    unmanage(&admin, &id).await;
    let st = sim.state().await;
    assert_eq!(
        by_name(&st["luns"], &path)["space"]["size"],
        3 * GIB,
        "the LUN stays"
    );
    assert_eq!(read_at(&file, 0, PATTERN.len()), PATTERN);
    let list = manageable(&admin, &host).await;
    assert_eq!(entry(&list, &path).unwrap()["safe_to_manage"], true);

    // A LUN outside the backend's pools is refused with the pools named (to admins).
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": "/vol/elsewhere/x"}}}),
        )
        .await;
    let bad = r.body["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin.wait("volumes", &bad).await["status"],
        "error_managing"
    );
}

// REAL: the size is charged to the project's gigabytes (and its type's) once the driver has
// measured the storage, before anything is renamed; over the quota the volume ends
// `error_managing` with Cinder's quota words and the file keeps its name.
#[tokio::test]
async fn a_manage_over_the_gigabytes_quota_renames_nothing() {
    let server = Server::start("");
    let admin = server.client("admin:proj-q").with_version("3.8");
    let host = only_pool(&admin).await;
    let r = admin
        .post("types", json!({"volume_type": {"name": "gold"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin
        .put(
            "os-quota-sets/proj-q",
            json!({"quota_set": {"gigabytes": 3}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let share = server.share();
    legacy_file(&share.join("fits.img"));
    std::fs::File::create(share.join("big.img"))
        .unwrap()
        .set_len(2 * GIB)
        .unwrap();

    // 2 GiB of a 3 GiB quota, counted for the type too.
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": "fits.img"}, "volume_type": "gold"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["volume"]["volume_type"], "gold");
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(admin.wait("volumes", &id).await["status"], "available");
    assert_eq!(in_use(&admin, "gigabytes").await, 2);
    assert_eq!(in_use(&admin, "gigabytes_gold").await, 2);
    assert_eq!(in_use(&admin, "volumes_gold").await, 1);

    // Another 2 GiB is over: refused before the rename.
    let r = admin
        .post(
            "manageable_volumes",
            json!({"volume": {"host": host, "ref": {"source-name": "big.img"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let over = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = admin.wait("volumes", &over).await;
    assert_eq!(v["status"], "error_managing", "{v}");
    let msgs = admin.messages_for(&over).await;
    assert!(
        msgs[0].starts_with(
            "manage existing volume:Not enough quota resource for operation. VolumeSizeExceedsAvailableQuota:"
        ),
        "{msgs:?}"
    );
    assert!(share.join("big.img").exists(), "nothing was renamed");
    assert!(!share.join(format!("volume-{over}")).exists());
    assert_eq!(in_use(&admin, "gigabytes").await, 2);
    // The failed volume counts one volume until it is deleted; then nothing is left of it.
    assert_eq!(in_use(&admin, "volumes").await, 2);
    let r = admin.delete(&format!("volumes/{over}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    admin.wait_gone("volumes", &over).await;
    assert_eq!(in_use(&admin, "volumes").await, 1);
    assert!(
        share.join("big.img").exists(),
        "a delete of it touches no other file"
    );

    unmanage(&admin, &id).await;
    assert_eq!(in_use(&admin, "gigabytes").await, 0);
    assert_eq!(in_use(&admin, "gigabytes_gold").await, 0);
    assert_eq!(in_use(&admin, "volumes").await, 0);
}
