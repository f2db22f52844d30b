//! The real Cinder CLI (python-cinderclient, installed by scripts/setup.sh) against a
//! running server, with Cinder's noauth plugin: what an operator's client sees.

use std::process::{Command, Output};

use serde_json::json;

use crate::common::Server;

/// Runs `cinder ARGS` as alice in project demo at microversion 3.67.
fn cinder_output(server: &Server, args: &[&str]) -> Output {
    Command::new("cinder")
        .args([
            "--os-auth-type",
            "noauth",
            "--os-user-id",
            "alice",
            "--os-project-id",
            "demo",
        ])
        .args([
            "--os-endpoint",
            &format!("{}/v3", server.base),
            "--os-volume-api-version",
            "3.67",
        ])
        .args(args)
        .output()
        .expect(
            "the `cinder` CLI is installed by scripts/setup.sh (pip install python-cinderclient)",
        )
}

/// The same, which must succeed; returns stdout.
fn cinder(server: &Server, args: &[&str]) -> String {
    let out = cinder_output(server, args);
    assert!(
        out.status.success(),
        "cinder {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of a `| property | value |` row in cinder's table output.
fn property(table: &str, name: &str) -> String {
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
