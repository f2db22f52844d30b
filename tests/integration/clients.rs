//! An operator's everyday commands through the clients they already use — the openstack
//! CLI, cinderclient and openstacksdk, from the virtualenv the tests own — against a
//! running server on its embedded default, every command's exit status and output
//! asserted. The clients reach the server through tests/clients/tempest_proxy.py, which
//! holds every response to tempest.lib's schema for its route, microversion and role
//! (fidelity.rs does the same for every call family at 3.0 and 3.71).
//!
//! Without Keystone the openstack CLI cannot turn a project into an id for `quota show`,
//! `quota set` or `volume type set --project`, nor find a server for `volume attachment
//! create`: those go through cinderclient and openstacksdk here, as they would for an
//! operator without Keystone.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::{Client, Server, client_program};
use crate::real_clients::{cinder_output_via, property};

/// Projects and users, UUID-shaped as Keystone's are.
const PROJECT: &str = "2f6c9a1e4b7d4c3a9e8f1a2b3c4d5e6f";
const OTHER_PROJECT: &str = "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a";
const ALICE: &str = "a1a1a1a1b2b24c3c8d4d5e5e6f6f7a7a";
const BOB: &str = "b0b0b0b0c1c14d2d9e3e4f4f5a5a6b6b";

/// Every client command run, to count them.
static COMMANDS: AtomicUsize = AtomicUsize::new(0);

struct Who<'a> {
    server: &'a Server,
    /// Where the clients send their requests: the validating proxy.
    base: &'a str,
    user: &'a str,
    project: &'a str,
}

impl Who<'_> {
    /// `openstack ARGS` at 3.71; returns stdout, asserting success.
    fn openstack(&self, args: &[&str]) -> String {
        let token = format!("{}:{}", self.user, self.project);
        let endpoint = format!("{}/v3/{}", self.base, self.project);
        let out = Command::new(client_program("openstack"))
            .args(["--os-auth-type", "admin_token", "--os-token", &token])
            .args([
                "--os-endpoint",
                &endpoint,
                "--os-volume-api-version",
                "3.71",
            ])
            .args(args)
            .output()
            .expect("run openstack");
        COMMANDS.fetch_add(1, Ordering::Relaxed);
        assert!(
            out.status.success(),
            "openstack {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `openstack ARGS -f json`, parsed.
    fn openstack_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.openstack(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("openstack {args:?}: {e}: {out}"))
    }

    /// `cinder ARGS` at 3.71 with Cinder's noauth plugin; returns stdout, asserting success.
    fn cinder(&self, args: &[&str]) -> String {
        let out = cinder_output_via(self.base, self.user, self.project, "3.71", args);
        COMMANDS.fetch_add(1, Ordering::Relaxed);
        assert!(
            out.status.success(),
            "cinder {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn api(&self) -> Client {
        self.server
            .client(&format!("{}:{}", self.user, self.project))
            .with_version("3.71")
    }
}

/// The names in a list's JSON output.
fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|row| row["Name"].as_str().or(row["name"].as_str()))
        .collect()
}

/// Runs tests/clients/sdk_steps.py and returns each step's value by name, asserting that
/// every step succeeded.
fn sdk_steps(base: &str, user: &str, project: &str) -> serde_json::Map<String, Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/clients/sdk_steps.py");
    let out = Command::new(client_program("python"))
        .args([script, base, user, project, project, "unused"])
        .output()
        .expect("run sdk_steps.py");
    let mut steps = serde_json::Map::new();
    let mut failed = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let step: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        COMMANDS.fetch_add(1, Ordering::Relaxed);
        let name = step["step"].as_str().unwrap().to_string();
        if step["ok"] != true {
            failed.push(format!("{name}: {}", step["error"]));
        }
        steps.insert(name, step["value"].clone());
    }
    assert!(
        out.status.success() && failed.is_empty(),
        "openstacksdk steps failed:\n{}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    steps
}

/// tests/clients/tempest_proxy.py in front of `server`, writing its report to `report`;
/// stopped by PID when dropped.
struct TempestProxy {
    child: Child,
    base: String,
}

impl TempestProxy {
    fn start(server: &Server, report: &std::path::Path) -> TempestProxy {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/clients/tempest_proxy.py"
        );
        let mut child = Command::new(client_program("python"))
            .arg(script)
            .arg(&server.base)
            .arg(report)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tempest_proxy.py");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let port: u16 = port.trim().parse().expect("the proxy prints its port");
        TempestProxy {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for TempestProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_day_through_the_openstack_cli_cinderclient_and_openstacksdk() {
    // The embedded default, Cinder's quota defaults included (an empty `[quota]` keeps the
    // harness from lifting them).
    let server = Server::start("[quota]\n");
    let report = server.dir.join("tempest-report.jsonl");
    let proxy = TempestProxy::start(&server, &report);
    let alice = Who {
        server: &server,
        base: &proxy.base,
        user: ALICE,
        project: PROJECT,
    };
    let bob = Who {
        server: &server,
        base: &proxy.base,
        user: BOB,
        project: OTHER_PROJECT,
    };
    let admin = Who {
        server: &server,
        base: &proxy.base,
        user: "admin",
        project: PROJECT,
    };
    let api = alice.api();

    // ---- volumes --------------------------------------------------------------------
    let created = alice.openstack_json(&[
        "volume",
        "create",
        "--size",
        "1",
        "--property",
        "tier=gold",
        "data",
    ]);
    assert_eq!(created["name"], "data");
    assert_eq!(created["size"], 1);
    let data = created["id"].as_str().unwrap().to_string();
    api.wait_status("volumes", &data, "available").await;
    let listed = alice.openstack_json(&["volume", "list"]);
    assert_eq!(names(&listed), ["data"], "{listed}");
    let shown = alice.openstack_json(&["volume", "show", "data"]);
    assert_eq!(shown["status"], "available");
    assert_eq!(shown["properties"], json!({"tier": "gold"}));
    alice.openstack(&[
        "volume",
        "set",
        "--name",
        "db",
        "--description",
        "primary",
        "--property",
        "app=pg",
        "data",
    ]);
    alice.openstack(&["volume", "set", "--bootable", "db"]);
    alice.openstack(&["volume", "set", "--read-only", "db"]);
    let shown = alice.openstack_json(&["volume", "show", "db"]);
    assert_eq!(shown["description"], "primary");
    assert_eq!(shown["bootable"], true);
    assert_eq!(
        shown["properties"],
        json!({"tier": "gold", "app": "pg", "readonly": "True"})
    );
    alice.openstack(&["volume", "set", "--read-write", "db"]);
    alice.openstack(&["volume", "unset", "--property", "tier", "db"]);
    alice.openstack(&["volume", "set", "--size", "2", "db"]);
    let v = api.wait_status("volumes", &data, "available").await;
    assert_eq!(v["size"], 2);
    assert_eq!(v["metadata"], json!({"app": "pg", "readonly": "False"}));

    // ---- snapshots, and volumes made from them ----------------------------------------
    let snap = alice.openstack_json(&["volume", "snapshot", "create", "--volume", "db", "nightly"]);
    let snap_id = snap["id"].as_str().unwrap().to_string();
    api.wait_status("snapshots", &snap_id, "available").await;
    alice.openstack(&[
        "volume",
        "snapshot",
        "set",
        "--name",
        "nightly-1",
        "--property",
        "kept=yes",
        "nightly",
    ]);
    let shown = alice.openstack_json(&["volume", "snapshot", "show", "nightly-1"]);
    assert_eq!(shown["status"], "available");
    assert_eq!(shown["properties"], json!({"kept": "yes"}));
    alice.openstack(&[
        "volume",
        "snapshot",
        "unset",
        "--property",
        "kept",
        "nightly-1",
    ]);
    let snaps = alice.openstack_json(&["volume", "snapshot", "list"]);
    assert_eq!(names(&snaps), ["nightly-1"]);
    alice.openstack(&["volume", "revert", "nightly-1"]);
    api.wait_status("volumes", &data, "available").await;
    let restored = alice.openstack_json(&[
        "volume",
        "create",
        "--snapshot",
        "nightly-1",
        "--size",
        "2",
        "restored",
    ]);
    let clone =
        alice.openstack_json(&["volume", "create", "--source", "db", "--size", "2", "copy"]);
    for v in [&restored, &clone] {
        api.wait_status("volumes", v["id"].as_str().unwrap(), "available")
            .await;
    }
    let summary = alice.openstack_json(&["volume", "summary"]);
    assert_eq!(summary["Total Count"], 3, "{summary}");
    assert_eq!(summary["Total Size"], 6, "{summary}");

    // ---- attachments (cinderclient: the openstack CLI would look the server up in Nova)
    let attached = alice.cinder(&[
        "attachment-create",
        "--connect",
        "True",
        "--initiator",
        "iqn.1993-08.org.debian:01:cafe",
        "--ip",
        "127.0.0.1",
        "--host",
        "compute-1",
        "--mode",
        "rw",
        "copy",
        "6f1c9e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
    ]);
    let attachment = property(&attached, "id");
    let listed = alice.openstack_json(&["volume", "attachment", "list"]);
    assert_eq!(listed[0]["ID"], attachment.as_str(), "{listed}");
    let shown = alice.openstack_json(&["volume", "attachment", "show", &attachment]);
    assert_eq!(shown["Volume ID"], clone["id"], "{shown}");
    alice.openstack(&["volume", "attachment", "complete", &attachment]);
    api.wait_status("volumes", clone["id"].as_str().unwrap(), "in-use")
        .await;
    alice.openstack(&["volume", "attachment", "delete", &attachment]);
    api.wait_status("volumes", clone["id"].as_str().unwrap(), "available")
        .await;

    // ---- transfer across two projects ------------------------------------------------
    let offer = alice.openstack_json(&[
        "volume", "transfer", "request", "create", "--name", "handover", "copy",
    ]);
    let transfer = offer["id"].as_str().unwrap().to_string();
    let key = offer["auth_key"].as_str().unwrap().to_string();
    let listed = alice.openstack_json(&["volume", "transfer", "request", "list"]);
    assert_eq!(names(&listed), ["handover"]);
    let shown = alice.openstack_json(&["volume", "transfer", "request", "show", &transfer]);
    assert_eq!(shown["volume_id"], clone["id"]);
    let accepted = bob.openstack_json(&[
        "volume",
        "transfer",
        "request",
        "accept",
        "--auth-key",
        &key,
        &transfer,
    ]);
    assert_eq!(accepted["volume_id"], clone["id"]);
    assert_eq!(names(&bob.openstack_json(&["volume", "list"])), ["copy"]);
    assert!(
        !names(&alice.openstack_json(&["volume", "list"])).contains(&"copy"),
        "the giver no longer sees it"
    );

    // ---- volume types, access and QoS (administrator) ----------------------------------
    let gold = admin.openstack_json(&[
        "volume",
        "type",
        "create",
        "--private",
        "--property",
        "volume_backend_name=local",
        "gold",
    ]);
    assert_eq!(gold["is_public"], false, "{gold}");
    admin.openstack(&["volume", "type", "set", "--property", "tier=1", "gold"]);
    admin.openstack(&["volume", "type", "unset", "--property", "tier", "gold"]);
    let shown = admin.openstack_json(&["volume", "type", "show", "gold"]);
    assert_eq!(shown["properties"], json!({"volume_backend_name": "local"}));
    assert!(
        !names(&alice.openstack_json(&["volume", "type", "list"])).contains(&"gold"),
        "a private type is hidden until its project is given access"
    );
    admin.cinder(&[
        "type-access-add",
        "--volume-type",
        "gold",
        "--project-id",
        PROJECT,
    ]);
    assert!(
        admin
            .cinder(&["type-access-list", "--volume-type", "gold"])
            .contains(PROJECT)
    );
    assert!(names(&alice.openstack_json(&["volume", "type", "list"])).contains(&"gold"));
    let qos = admin.openstack_json(&[
        "volume",
        "qos",
        "create",
        "--consumer",
        "front-end",
        "--property",
        "total_iops_sec=500",
        "limited",
    ]);
    assert_eq!(qos["consumer"], "front-end");
    admin.openstack(&["volume", "qos", "associate", "limited", "gold"]);
    admin.openstack(&[
        "volume",
        "qos",
        "set",
        "--property",
        "read_bytes_sec=1048576",
        "limited",
    ]);
    admin.openstack(&[
        "volume",
        "qos",
        "unset",
        "--property",
        "read_bytes_sec",
        "limited",
    ]);
    let shown = admin.openstack_json(&["volume", "qos", "show", "limited"]);
    assert_eq!(
        shown["properties"],
        json!({"total_iops_sec": "500"}),
        "{shown}"
    );
    assert_eq!(shown["associations"], json!(["gold"]), "{shown}");
    assert_eq!(
        names(&admin.openstack_json(&["volume", "qos", "list"])),
        ["limited"]
    );
    // A gold volume's connection carries the front-end limits.
    let fast = alice.openstack_json(&["volume", "create", "--size", "1", "--type", "gold", "fast"]);
    let fast_id = fast["id"].as_str().unwrap().to_string();
    api.wait_status("volumes", &fast_id, "available").await;
    let attached = alice.cinder(&[
        "attachment-create",
        "--connect",
        "True",
        "--initiator",
        "iqn.1993-08.org.debian:01:cafe",
        "--ip",
        "127.0.0.1",
        "--host",
        "compute-1",
        "fast",
        "6f1c9e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
    ]);
    let a = api
        .get(&format!("attachments/{}", property(&attached, "id")))
        .await;
    assert_eq!(
        a.body["attachment"]["connection_info"]["data"]["qos_specs"]["total_iops_sec"], "500",
        "{}",
        a.body
    );
    alice.cinder(&["attachment-delete", &property(&attached, "id")]);
    admin.openstack(&[
        "volume",
        "qos",
        "disassociate",
        "--volume-type",
        "gold",
        "limited",
    ]);
    admin.openstack(&["volume", "qos", "delete", "limited"]);
    admin.cinder(&["default-type-set", "gold", PROJECT]);
    assert!(admin.cinder(&["default-type-list"]).contains(PROJECT));
    admin.cinder(&["default-type-unset", PROJECT]);

    // ---- quotas and limits (cinderclient and openstacksdk: no Keystone to resolve names)
    let quota = admin.cinder(&["quota-show", PROJECT]);
    assert_eq!(property(&quota, "volumes"), "10");
    admin.cinder(&[
        "quota-update",
        "--volumes",
        "20",
        "--gigabytes",
        "500",
        PROJECT,
    ]);
    let quota = alice.cinder(&["quota-show", PROJECT]);
    assert_eq!(property(&quota, "volumes"), "20");
    assert_eq!(property(&quota, "gigabytes"), "500");
    let usage = alice.cinder(&["quota-usage", PROJECT]);
    assert!(
        usage.lines().any(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells.len() > 3 && cells[1] == "volumes" && cells[2] == "3"
        }),
        "{usage}"
    );
    let limits = alice.cinder(&["absolute-limits"]);
    assert!(
        limits.contains("maxTotalVolumes") && limits.contains("20"),
        "{limits}"
    );

    // ---- services, pools, zones, messages (administrator) ------------------------------
    let services = admin.openstack_json(&["volume", "service", "list"]);
    let volume_host = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Binary"] == "cinder-volume")
        .and_then(|s| s["Host"].as_str())
        .expect("a cinder-volume service")
        .to_string();
    admin.openstack(&[
        "volume",
        "service",
        "set",
        "--disable",
        "--disable-reason",
        "maintenance",
        &volume_host,
        "cinder-volume",
    ]);
    let services = admin.openstack_json(&["volume", "service", "list", "--long"]);
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Status"] == "disabled" && s["Disabled Reason"] == "maintenance"),
        "{services}"
    );
    admin.openstack(&[
        "volume",
        "service",
        "set",
        "--enable",
        &volume_host,
        "cinder-volume",
    ]);
    let pools = admin.openstack_json(&["volume", "backend", "pool", "list", "--long"]);
    assert!(
        pools[0]["Name"].as_str().unwrap().starts_with(&volume_host),
        "{pools}"
    );
    let caps = admin.openstack_json(&["volume", "backend", "capability", "show", &volume_host]);
    assert!(caps.as_array().is_some_and(|c| !c.is_empty()), "{caps}");
    let zones = alice.openstack_json(&["availability", "zone", "list", "--volume"]);
    assert_eq!(zones[0]["Zone Name"], "nova", "{zones}");
    alice.openstack(&["volume", "message", "list"]);

    // ---- openstacksdk ---------------------------------------------------------------
    let sdk = sdk_steps(&proxy.base, BOB, OTHER_PROJECT);
    assert_eq!(sdk["get_volume"], json!({"name": "sdk-vol", "size": 1}));
    assert_eq!(sdk["volumes"], json!(["copy", "sdk-vol"]));
    assert_eq!(sdk["wait_for_extended"], 2);
    assert_eq!(sdk["set_volume_metadata"], json!({"tier": "gold"}));
    assert_eq!(sdk["readonly_shown"], "True");
    assert_eq!(sdk["summary"], json!({"total_count": 2, "total_size": 4}));
    assert_eq!(sdk["availability_zones"], json!(["nova"]));
    assert_eq!(sdk["get_limits"], 10);
    assert_eq!(
        sdk["get_quota_set"], 2,
        "volumes in use, as the SDK reads the usage"
    );
    assert_eq!(sdk["quota_after_update"], 30);
    assert_eq!(
        sdk["services"],
        json!(["cinder-scheduler", "cinder-volume"])
    );

    // ---- backups: the openstack CLI, then cinderclient -------------------------------
    let backup = alice.openstack_json(&["volume", "backup", "create", "--name", "weekly", "db"]);
    let backup_id = backup["id"].as_str().unwrap().to_string();
    api.wait_status("backups", &backup_id, "available").await;
    alice.openstack(&[
        "volume",
        "backup",
        "set",
        "--name",
        "weekly-1",
        "--description",
        "first",
        "weekly",
    ]);
    let shown = alice.openstack_json(&["volume", "backup", "show", "weekly-1"]);
    assert_eq!(shown["status"], "available", "{shown}");
    assert_eq!(shown["description"], "first");
    assert_eq!(shown["volume_id"], data.as_str());
    assert_eq!(
        names(&alice.openstack_json(&["volume", "backup", "list"])),
        ["weekly-1"]
    );
    let restored_b =
        alice.openstack_json(&["volume", "backup", "restore", "weekly-1", "from-backup"]);
    let from_backup = restored_b["volume_id"].as_str().unwrap().to_string();
    assert_eq!(restored_b["volume_name"], "from-backup", "{restored_b}");
    api.wait_status("volumes", &from_backup, "available").await;
    api.wait_status("backups", &backup_id, "available").await;
    let made = alice.cinder(&["backup-create", "--name", "nightly-b", "db"]);
    let cinder_backup = property(&made, "id");
    api.wait_status("backups", &cinder_backup, "available")
        .await;
    assert!(alice.cinder(&["backup-list"]).contains("nightly-b"));
    assert_eq!(
        property(&alice.cinder(&["backup-show", "nightly-b"]), "status"),
        "available"
    );
    alice.cinder(&["backup-restore", "--volume", &from_backup, "nightly-b"]);
    api.wait_status("volumes", &from_backup, "available").await;
    api.wait_status("backups", &cinder_backup, "available")
        .await;
    alice.cinder(&["backup-delete", "nightly-b"]);
    api.wait_gone("backups", &cinder_backup).await;
    alice.openstack(&["volume", "backup", "delete", "weekly-1"]);
    api.wait_gone("backups", &backup_id).await;
    alice.openstack(&["volume", "delete", "from-backup"]);
    api.wait_gone("volumes", &from_backup).await;

    // ---- and away --------------------------------------------------------------------
    alice.openstack(&["volume", "delete", "restored", "fast"]);
    alice.openstack(&["volume", "snapshot", "delete", "nightly-1"]);
    api.wait_gone("snapshots", &snap_id).await;
    alice.openstack(&["volume", "delete", "db"]);
    api.wait_gone("volumes", &data).await;
    api.wait_gone("volumes", &fast_id).await;
    admin.openstack(&["volume", "type", "delete", "gold"]);
    assert!(names(&alice.openstack_json(&["volume", "list"])).is_empty());

    let run = COMMANDS.load(Ordering::Relaxed);
    assert!(run >= 45, "only {run} client commands ran");

    // Every response the clients were given, held to tempest's schema.
    drop(proxy);
    let lines: Vec<Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| l["ok"] != true)
        .map(|l| {
            format!(
                "{} {} as {} at {}: {}",
                l["method"], l["path"], l["role"], l["version"], l["error"]
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "responses tempest's schemas reject:\n{}",
        failed.join("\n")
    );
    let checked = lines.iter().filter(|l| l["schema"].is_string()).count();
    for role in ["member", "admin"] {
        assert!(
            lines
                .iter()
                .any(|l| l["schema"].is_string() && l["role"] == role),
            "no {role} response was checked"
        );
    }
    let unchecked: std::collections::BTreeSet<String> = lines
        .iter()
        .filter(|l| l["schema"].is_null())
        .map(|l| format!("{} {}", l["method"], l["path"]))
        .collect();
    println!(
        "{checked} of {} responses checked against tempest's schemas; tempest has none for: {unchecked:?}",
        lines.len()
    );
    assert!(checked >= 100, "only {checked} responses were checked");
}
