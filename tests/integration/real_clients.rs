//! The real Cinder CLI (python-cinderclient, in the virtualenv scripts/setup-clients.sh
//! makes) against a running server, with Cinder's noauth plugin: what an operator's
//! client sees.

use std::process::{Command, Output};

use serde_json::json;

use crate::common::Server;

/// Runs `cinder ARGS` as alice in project demo at microversion 3.67.
fn cinder_output(server: &Server, args: &[&str]) -> Output {
    cinder_output_as(server, "alice", "demo", args)
}

/// Runs `cinder ARGS` as `user` in `project` at microversion 3.67.
fn cinder_output_as(server: &Server, user: &str, project: &str, args: &[&str]) -> Output {
    cinder_output_at(server, user, project, "3.67", args)
}

/// Runs `cinder ARGS` as `user` in `project` at microversion `version`.
fn cinder_output_at(
    server: &Server,
    user: &str,
    project: &str,
    version: &str,
    args: &[&str],
) -> Output {
    cinder_output_via(&server.base, user, project, version, args)
}

/// [`cinder_output_at`] against the API at `base` (`http://host:port`).
pub fn cinder_output_via(
    base: &str,
    user: &str,
    project: &str,
    version: &str,
    args: &[&str],
) -> Output {
    Command::new(crate::common::client_program("cinder"))
        .args([
            "--os-auth-type",
            "noauth",
            "--os-user-id",
            user,
            "--os-project-id",
            project,
        ])
        .args([
            "--os-endpoint",
            &format!("{base}/v3"),
            "--os-volume-api-version",
            version,
        ])
        .args(args)
        .output()
        .expect("run cinder")
}

/// The same, which must succeed; returns stdout.
fn cinder(server: &Server, args: &[&str]) -> String {
    cinder_as(server, "alice", "demo", args)
}

/// [`cinder`] as `user` in `project`.
fn cinder_as(server: &Server, user: &str, project: &str, args: &[&str]) -> String {
    let out = cinder_output_as(server, user, project, args);
    assert!(
        out.status.success(),
        "cinder {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cinder ARGS` as an administrator at 3.62, which must succeed; returns stdout.
fn cinder_admin(server: &Server, args: &[&str]) -> String {
    let out = cinder_output_at(server, "admin", ADMIN_PROJECT, "3.62", args);
    assert!(
        out.status.success(),
        "cinder {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keystone-style project ids (type access wants them UUID-like, as Cinder's does).
const ADMIN_PROJECT: &str = "5d2c1b0a9f8e7d6c0f9e8d7c6b5a4f3e";
const MEMBER_PROJECT: &str = "0f9e8d7c6b5a4f3e8d2c1b0a9f8e7d6c";

/// The rows of cinder's table output (`| a | b |`) as their cells, header included.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The value of a `| property | value |` row in cinder's table output.
pub fn property(table: &str, name: &str) -> String {
    table
        .lines()
        .find_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() > 2 && cells[1] == name).then(|| cells[2].to_string())
        })
        .unwrap_or_else(|| panic!("no `{name}` in:\n{table}"))
}

#[tokio::test]
async fn the_cinder_cli_manages_a_volumes_life() {
    let server = Server::start("");
    let api = server.client("alice:demo");

    let created = cinder(
        &server,
        &[
            "create",
            "1",
            "--name",
            "from-cli",
            "--metadata",
            "tier=gold",
        ],
    );
    let id = property(&created, "id");
    api.wait_status("volumes", &id, "available").await;
    assert!(server.share().join(format!("volume-{id}")).exists());

    // Names resolve as Cinder's do, and the table shows what the API stored.
    let shown = cinder(&server, &["show", "from-cli"]);
    assert_eq!(property(&shown, "status"), "available");
    assert_eq!(property(&shown, "metadata"), "tier : gold");
    assert!(cinder(&server, &["list"]).contains("from-cli"));

    // `cinder set-bootable` is Cinder's os-set_bootable; the flag shows in the view.
    cinder(&server, &["set-bootable", "from-cli", "true"]);
    assert_eq!(
        property(&cinder(&server, &["show", "from-cli"]), "bootable"),
        "true"
    );
    cinder(&server, &["set-bootable", "from-cli", "false"]);
    assert_eq!(
        property(&cinder(&server, &["show", "from-cli"]), "bootable"),
        "false"
    );

    cinder(&server, &["extend", "from-cli", "2"]);
    assert_eq!(
        api.wait_status("volumes", &id, "available").await["size"],
        2
    );

    let snap = property(
        &cinder(
            &server,
            &["snapshot-create", "--name", "cli-snap", "from-cli"],
        ),
        "id",
    );
    api.wait_status("snapshots", &snap, "available").await;
    // Snapshot metadata through `cinder snapshot-metadata`, shown by `snapshot-show`.
    cinder(
        &server,
        &["snapshot-metadata", &snap, "set", "tier=gold", "owner=ops"],
    );
    cinder(&server, &["snapshot-metadata", &snap, "unset", "owner"]);
    let shown = cinder(&server, &["snapshot-show", &snap]);
    assert!(
        shown.contains("tier") && shown.contains("gold") && !shown.contains("owner"),
        "{shown}"
    );
    let restored = property(
        &cinder(
            &server,
            &["create", "--snapshot-id", &snap, "--name", "restored"],
        ),
        "id",
    );
    api.wait_status("volumes", &restored, "available").await;

    // A refused request comes back as Cinder's error, status and message intact.
    let out = cinder_output(&server, &["delete", "from-cli"]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("dependent snapshots"), "{said}");

    cinder(&server, &["snapshot-delete", &snap]);
    assert!(api.wait("snapshots", &snap).await.is_null());
    cinder(&server, &["delete", "from-cli", "restored"]);
    assert!(api.wait("volumes", &id).await.is_null());
    assert!(api.wait("volumes", &restored).await.is_null());
    assert_eq!(api.get("volumes").await.body["volumes"], json!([]));
}

#[tokio::test]
async fn the_cinder_cli_attaches_and_detaches_through_the_attachments_api() {
    let server = Server::start("");
    let api = server.client("alice:demo");
    let created = cinder(&server, &["create", "1", "--name", "to-attach"]);
    let id = property(&created, "id");
    api.wait_status("volumes", &id, "available").await;

    // attachment-create --connect builds the connector itself and prints the connection.
    let server_id = "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c";
    let made = cinder(
        &server,
        &[
            "attachment-create",
            "to-attach",
            server_id,
            "--connect",
            "True",
            "--initiator",
            "iqn.1994-05.com.redhat:cli-host",
            "--ip",
            "127.0.0.1",
            "--host",
            "cli-host",
            "--mountpoint",
            "/dev/vdc",
        ],
    );
    let attachment = property(&made, "id");
    assert_eq!(property(&made, "status"), "attaching");
    assert_eq!(property(&made, "driver_volume_type"), "nfs");
    assert!(
        property(&made, "data").contains(&format!("volume-{id}")),
        "{made}"
    );

    cinder(&server, &["attachment-complete", &attachment]);
    let shown = cinder(&server, &["show", "to-attach"]);
    assert_eq!(property(&shown, "status"), "in-use");
    assert!(
        property(&shown, "attached_servers").contains(server_id),
        "{shown}"
    );
    let listed = cinder(&server, &["attachment-list"]);
    assert!(
        listed.contains(&attachment) && listed.contains("attached"),
        "{listed}"
    );
    let v = api.get(&format!("volumes/{id}")).await.body["volume"].clone();
    assert_eq!(v["attachments"][0]["device"], "/dev/vdc", "{v}");
    // Cinder tells only administrators where a volume is attached.
    assert_eq!(v["attachments"][0]["host_name"], json!(null), "{v}");
    let admin = server.client("admin:demo");
    let v = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
    assert_eq!(v["attachments"][0]["host_name"], "cli-host", "{v}");

    // In use, a delete is refused, as Cinder refuses it.
    let refused = cinder_output(&server, &["delete", "to-attach"]);
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("in-use")
            || String::from_utf8_lossy(&refused.stderr).contains("in-use"),
        "{refused:?}"
    );

    cinder(&server, &["attachment-delete", &attachment]);
    let shown = cinder(&server, &["show", "to-attach"]);
    assert_eq!(property(&shown, "status"), "available");
    assert_eq!(property(&shown, "attached_servers"), "[]");
}

/// The cells of the table row whose cells include `needle`.
fn row_with(table: &str, needle: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split('|').any(|c| c.trim() == needle))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .unwrap_or_else(|| panic!("no row with `{needle}` in:\n{table}"))
}

#[tokio::test]
async fn the_cinder_cli_transfers_a_volume_to_another_project() {
    let server = Server::start("");
    let alice = server.client("alice:demo");
    let bob = server.client("bob:other");
    let id = property(&cinder(&server, &["create", "1", "--name", "gift"]), "id");
    alice.wait_status("volumes", &id, "available").await;

    let made = cinder(&server, &["transfer-create", "--name", "to-bob", "gift"]);
    let transfer = property(&made, "id");
    let key = property(&made, "auth_key");
    assert_eq!(key.len(), 16, "{made}");
    assert_eq!(property(&made, "volume_id"), id);
    assert_eq!(property(&made, "name"), "to-bob");
    assert_eq!(property(&made, "source_project_id"), "demo");
    let listed = cinder(&server, &["transfer-list"]);
    let row = row_with(&listed, &transfer);
    assert!(
        row.contains(&id) && row.contains(&"to-bob".to_string()),
        "{listed}"
    );
    assert_eq!(
        property(&cinder(&server, &["show", "gift"]), "status"),
        "awaiting-transfer"
    );

    // A wrong key is refused with Cinder's words.
    let out = cinder_output_as(
        &server,
        "bob",
        "other",
        &["transfer-accept", &transfer, "0000000000000000"],
    );
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("invalid auth key"),
        "{said}"
    );

    let accepted = cinder_as(
        &server,
        "bob",
        "other",
        &["transfer-accept", &transfer, &key],
    );
    assert_eq!(property(&accepted, "volume_id"), id);
    assert_eq!(
        bob.get(&format!("volumes/{id}")).await.body["volume"]["status"],
        "available"
    );
    assert_eq!(alice.get(&format!("volumes/{id}")).await.status, 404);
    assert!(
        cinder_as(&server, "bob", "other", &["list"]).contains(&id),
        "bob lists the volume"
    );
    assert!(!cinder(&server, &["transfer-list"]).contains(&transfer));

    // A transfer cancelled with transfer-delete gives the volume back to its owner.
    let mine = property(&cinder(&server, &["create", "1", "--name", "kept"]), "id");
    alice.wait_status("volumes", &mine, "available").await;
    let cancelled = property(&cinder(&server, &["transfer-create", "kept"]), "id");
    cinder(&server, &["transfer-delete", &cancelled]);
    assert_eq!(
        property(&cinder(&server, &["show", "kept"]), "status"),
        "available"
    );
    assert!(!cinder(&server, &["transfer-list"]).contains(&cancelled));
}

#[tokio::test]
async fn the_cinder_cli_lists_disables_and_enables_services_and_reads_capabilities() {
    let server = Server::start("");
    let admin = |args: &[&str]| cinder_as(&server, "admin", "demo", args);

    let listed = admin(&["service-list"]);
    let row = row_with(&listed, "ashlar@local");
    for cell in ["cinder-volume", "nova", "enabled", "up"] {
        assert!(row.contains(&cell.to_string()), "{cell} in {listed}");
    }
    assert!(row_with(&listed, "cinder-scheduler").contains(&"ashlar".to_string()));
    assert!(!admin(&["service-list", "--binary", "cinder-scheduler"]).contains("ashlar@local"));

    let disabled = admin(&[
        "service-disable",
        "ashlar@local",
        "cinder-volume",
        "--reason",
        "maintenance",
    ]);
    let row = row_with(&disabled, "ashlar@local");
    assert!(
        row.contains(&"disabled".to_string()) && row.contains(&"maintenance".to_string()),
        "{disabled}"
    );
    let row = row_with(&admin(&["service-list"]), "ashlar@local");
    assert!(
        row.contains(&"disabled".to_string()) && row.contains(&"maintenance".to_string()),
        "{row:?}"
    );
    let enabled = admin(&["service-enable", "ashlar@local", "cinder-volume"]);
    assert!(
        row_with(&enabled, "ashlar@local").contains(&"enabled".to_string()),
        "{enabled}"
    );
    let row = row_with(&admin(&["service-list"]), "ashlar@local");
    assert!(
        row.contains(&"enabled".to_string()) && !row.contains(&"maintenance".to_string()),
        "{row:?}"
    );

    let caps = admin(&["get-capabilities", "ashlar@local"]);
    assert_eq!(property(&caps, "volume_backend_name"), "local", "{caps}");
    assert_eq!(property(&caps, "storage_protocol"), "nfs", "{caps}");
    assert!(caps.contains("thin_provisioning"), "{caps}");

    // A tenant is refused, as Cinder's policy refuses it.
    let out = cinder_output(&server, &["service-list"]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("403"), "{said}");
}

#[tokio::test]
async fn the_cinder_cli_manages_type_access_qos_specs_and_default_types() {
    let server = Server::start("");
    let api = server.client(&format!("admin:{ADMIN_PROJECT}"));
    let member = server.client(&format!("alice:{MEMBER_PROJECT}"));
    let member_sees = |name: &'static str| {
        let member = member.clone();
        async move {
            member.get("types").await.body["volume_types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == name)
        }
    };

    // A private type, given to the member's project and taken back.
    let created = cinder_admin(
        &server,
        &["type-create", "--is-public", "false", "cli-private"],
    );
    let row = rows(&created)
        .into_iter()
        .find(|r| r.get(1).is_some_and(|n| n == "cli-private"))
        .unwrap_or_else(|| panic!("no cli-private row in:\n{created}"));
    let type_id = row[0].clone();
    assert!(!member_sees("cli-private").await);
    cinder_admin(
        &server,
        &[
            "type-access-add",
            "--volume-type",
            &type_id,
            "--project-id",
            MEMBER_PROJECT,
        ],
    );
    let listed = rows(&cinder_admin(
        &server,
        &["type-access-list", "--volume-type", &type_id],
    ));
    assert_eq!(
        listed,
        vec![
            vec!["Volume_type_ID".to_string(), "Project_ID".to_string()],
            vec![type_id.clone(), MEMBER_PROJECT.to_string()],
        ]
    );
    assert!(member_sees("cli-private").await);
    cinder_admin(
        &server,
        &[
            "type-access-remove",
            "--volume-type",
            &type_id,
            "--project-id",
            MEMBER_PROJECT,
        ],
    );
    let listed = rows(&cinder_admin(
        &server,
        &["type-access-list", "--volume-type", &type_id],
    ));
    assert_eq!(listed.len(), 1, "only the header is left: {listed:?}");
    assert!(!member_sees("cli-private").await);

    // QoS specs: create, set and unset keys, associate, look, disassociate, delete.
    let made = cinder_admin(
        &server,
        &[
            "qos-create",
            "cli-qos",
            "consumer=front-end",
            "total_iops_sec=300",
        ],
    );
    let qos = property(&made, "id");
    assert_eq!(property(&made, "name"), "cli-qos");
    assert_eq!(property(&made, "consumer"), "front-end");
    assert!(
        property(&made, "specs").contains("total_iops_sec"),
        "{made}"
    );
    cinder_admin(&server, &["qos-key", &qos, "set", "read_iops_sec=20"]);
    cinder_admin(&server, &["qos-key", &qos, "unset", "total_iops_sec"]);
    assert_eq!(
        api.get(&format!("qos-specs/{qos}")).await.body["qos_specs"]["specs"],
        json!({"read_iops_sec": "20"})
    );
    cinder_admin(&server, &["qos-associate", &qos, &type_id]);
    let associations = rows(&cinder_admin(&server, &["qos-get-association", &qos]));
    assert_eq!(
        associations,
        vec![
            vec!["Association_Type".to_string(), "Name".into(), "ID".into()],
            vec![
                "volume_type".to_string(),
                "cli-private".into(),
                type_id.clone()
            ],
        ]
    );
    assert_eq!(
        api.get(&format!("types/{type_id}")).await.body["volume_type"]["qos_specs_id"],
        qos.as_str()
    );
    cinder_admin(&server, &["qos-disassociate", &qos, &type_id]);
    assert_eq!(
        rows(&cinder_admin(&server, &["qos-get-association", &qos])).len(),
        1
    );
    cinder_admin(&server, &["qos-associate", &qos, &type_id]);
    let out = cinder_output_at(
        &server,
        "admin",
        ADMIN_PROJECT,
        "3.62",
        &["qos-delete", &qos],
    );
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("Qos specs still in use."),
        "{said}"
    );
    cinder_admin(&server, &["qos-delete", "--force", "True", &qos]);
    assert_eq!(api.get(&format!("qos-specs/{qos}")).await.status, 404);

    // Default types at 3.62.
    let gold = rows(&cinder_admin(&server, &["type-create", "cli-gold"]))
        .into_iter()
        .find(|r| r.get(1).is_some_and(|n| n == "cli-gold"))
        .expect("a cli-gold row")[0]
        .clone();
    let set = cinder_admin(&server, &["default-type-set", "cli-gold", MEMBER_PROJECT]);
    assert_eq!(property(&set, "project_id"), MEMBER_PROJECT);
    assert_eq!(property(&set, "volume_type_id"), gold);
    let listed = rows(&cinder_admin(&server, &["default-type-list"]));
    assert_eq!(
        listed,
        vec![
            vec!["Volume Type ID".to_string(), "Project ID".into()],
            vec![gold.clone(), MEMBER_PROJECT.into()],
        ]
    );
    let one = cinder_admin(
        &server,
        &["default-type-list", "--project-id", MEMBER_PROJECT],
    );
    assert_eq!(property(&one, "volume_type_id"), gold);
    assert_eq!(
        member.get("types/default").await.body["volume_type"]["name"],
        "cli-gold"
    );
    cinder_admin(&server, &["default-type-unset", MEMBER_PROJECT]);
    assert_eq!(
        rows(&cinder_admin(&server, &["default-type-list"])).len(),
        1
    );
    assert_eq!(
        member.get("types/default").await.body["volume_type"]["name"],
        "__DEFAULT__"
    );
}

/// The cells of the row of cinder's table output whose first cell is `name`.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        .find(|cells| cells.len() > 2 && cells[1] == name)
        .map(|cells| {
            cells[1..cells.len() - 1]
                .iter()
                .map(|c| c.to_string())
                .collect()
        })
        .unwrap_or_else(|| panic!("no `{name}` row in:\n{table}"))
}

#[tokio::test]
async fn the_cinder_cli_shows_and_updates_quotas_and_limits() {
    // Cinder's default quotas.
    let server = Server::start("[quota]\n");
    let api = server.client("alice:demo");
    let v = api.create_volume(json!({"size": 2})).await;
    api.wait_status("volumes", &v, "available").await;

    let shown = cinder(&server, &["quota-show", "demo"]);
    for (resource, limit) in [
        ("volumes", "10"),
        ("snapshots", "10"),
        ("gigabytes", "1000"),
        ("backups", "10"),
        ("backup_gigabytes", "1000"),
        ("groups", "10"),
        ("per_volume_gigabytes", "-1"),
        ("volumes___DEFAULT__", "-1"),
    ] {
        assert_eq!(property(&shown, resource), limit, "{resource}: {shown}");
    }

    let updated = cinder_as(
        &server,
        "admin",
        "demo",
        &["quota-update", "--volumes", "5", "demo"],
    );
    assert_eq!(property(&updated, "volumes"), "5", "{updated}");
    assert_eq!(property(&updated, "gigabytes"), "1000", "{updated}");
    assert_eq!(
        property(&cinder(&server, &["quota-show", "demo"]), "volumes"),
        "5"
    );
    // A member may not change quotas.
    let refused = cinder_output(&server, &["quota-update", "--volumes", "50", "demo"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(
            "Policy doesn't allow volume_extension:quotas:update to be performed. (HTTP 403)"
        ),
        "{err}"
    );

    let usage = cinder(&server, &["quota-usage", "demo"]);
    assert_eq!(
        row(&usage, "Type"),
        ["Type", "In_use", "Reserved", "Limit", "Allocated"]
    );
    assert_eq!(
        row(&usage, "volumes")[..4],
        ["volumes", "1", "0", "5"],
        "{usage}"
    );
    assert_eq!(
        row(&usage, "gigabytes")[..4],
        ["gigabytes", "2", "0", "1000"],
        "{usage}"
    );
    assert_eq!(
        row(&usage, "snapshots")[..4],
        ["snapshots", "0", "0", "10"],
        "{usage}"
    );

    // At the limit, a create is refused as Cinder refuses it.
    cinder_as(
        &server,
        "admin",
        "demo",
        &["quota-update", "--volumes", "1", "demo"],
    );
    let over = cinder_output(&server, &["create", "1"]);
    assert!(!over.status.success());
    let err = String::from_utf8_lossy(&over.stderr);
    assert!(
        err.contains("VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded for quota 'volumes'. (HTTP 413)"),
        "{err}"
    );
    cinder_as(
        &server,
        "admin",
        "demo",
        &["quota-update", "--volumes", "5", "demo"],
    );

    let limits = cinder(&server, &["absolute-limits"]);
    for (name, value) in [
        ("maxTotalVolumes", "5"),
        ("maxTotalVolumeGigabytes", "1000"),
        ("maxTotalSnapshots", "10"),
        ("totalVolumesUsed", "1"),
        ("totalGigabytesUsed", "2"),
        ("totalSnapshotsUsed", "0"),
    ] {
        assert_eq!(property(&limits, name), value, "{name}: {limits}");
    }
}
