//! The bundled iscsi-tgt target driver paired with an nfs backend on a local directory,
//! through the Cinder API, against a real tgtd and a real user-space iSCSI initiator
//! (qemu-img / qemu-io over libiscsi, with CHAP). Nothing here is recorded or mocked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::common::{Client, FIXTURES_DIR, Server, Tgtd, plugin_row, read_at, write_at};

/// qemu's `--image-opts` (and the secret object) for logging in as `initiator`.
fn login(data: &Value, initiator: &str, password: &str) -> [String; 4] {
    let s = |k: &str| data[k].as_str().unwrap_or_else(|| panic!("no {k}: {data}"));
    [
        "--object".into(),
        format!("secret,id=chap,data={password}"),
        "--image-opts".into(),
        format!(
            "driver=iscsi,transport=tcp,portal={},target={},lun={},initiator-name={initiator},\
             user={},password-secret=chap",
            s("target_portal"),
            s("target_iqn"),
            data["target_lun"],
            s("auth_username"),
        ),
    ]
}

/// Runs qemu-io commands on the LUN; Err carries what the initiator said.
fn qemu_io(login: &[String; 4], command: &str) -> Result<String, String> {
    let out = Command::new("qemu-io")
        .args(login)
        .args(["-c", command])
        .output()
        .expect("qemu-io (qemu-utils)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn refused(r: Result<String, String>, expect: &str, why: &str) {
    match r {
        Ok(out) => panic!("{why}: the initiator got in: {out}"),
        Err(e) => assert!(e.contains(expect), "{why}: expected {expect:?}, got {e}"),
    }
}

fn config(share: &Path, tgtd: &Tgtd) -> String {
    let share = share.display();
    format!(
        r#"
[volume_types.iscsi]
volume_backend_name = "tgt"

[backends.tgt]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
grants.block = ["{share}"]
settings.share_path = "{share}"

[backends.tgt.target]
driver = "iscsi-tgt"
grants.exec = ["tgtadm"]
settings.target_ip_address = "127.0.0.1"
settings.target_port = "{port}"
settings.control_port = "{control}"
settings.backing_store_dir = "{share}"
"#,
        port = tgtd.port,
        control = tgtd.control_port,
    )
}

#[tokio::test]
async fn a_volume_is_attached_over_iscsi_with_chap_and_detached_again() {
    let tgtd = Tgtd::start();
    let tmp = tempfile::tempdir().unwrap();
    let share: PathBuf = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let server = Server::start_in(tmp.path(), &config(&share, &tgtd));
    let c = server.client("alice:proj-a");

    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "iscsi"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    let file = share.join(format!("volume-{vol}"));
    write_at(&file, 0, &[0x5a; 4096]);

    let initiator = format!("iqn.2024-01.test.ashlar:api-{}", std::process::id());
    let connector = json!({
        "host": "compute-1",
        "ip": "127.0.0.1",
        "initiator": initiator,
        "multipath": false,
        "platform": "x86_64",
        "os_type": "linux",
    });
    let action = |body: Value| {
        let (c, path) = (&c, format!("volumes/{vol}/action"));
        async move { c.post(&path, body).await }
    };

    let r = action(json!({"os-reserve": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let started = Instant::now();
    let r = action(json!({"os-initialize_connection": {"connector": connector}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    eprintln!(
        "os-initialize_connection (export + ACL) took {:?}",
        started.elapsed()
    );
    let info = &r.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "iscsi", "{info}");
    let data = &info["data"];
    let iqn = format!("iqn.2010-10.org.openstack:volume-{vol}");
    assert_eq!(data["target_iqn"], iqn.as_str());
    assert_eq!(data["target_portal"], format!("127.0.0.1:{}", tgtd.port));
    assert_eq!(data["target_lun"], 1);
    assert_eq!(data["target_discovered"], false);
    assert_eq!(data["auth_method"], "CHAP");
    assert_eq!(data["volume_id"], vol.as_str());
    let user = data["auth_username"].as_str().unwrap().to_string();
    let password = data["auth_password"].as_str().unwrap().to_string();
    assert_eq!((user.len(), password.len()), (20, 16));

    // tgtd exports exactly the volume's file, to exactly this initiator, with its account.
    let targets = tgtd.targets();
    assert!(targets.contains(&format!("Target 1: {iqn}")), "{targets}");
    assert!(
        targets.contains(&format!("Backing store path: {}", file.display())),
        "{targets}"
    );
    assert!(targets.contains(&format!("        {user}\n")), "{targets}");
    assert!(
        targets.contains(&format!("        {initiator}")),
        "{targets}"
    );

    // The host's bytes come out through the initiator, and the initiator's land in the file.
    let me = login(data, &initiator, &password);
    qemu_io(&me, "read -P 0x5a 0 4096").expect("read the volume over iSCSI");
    qemu_io(&me, "read -P 0 4096 4096").expect("the rest is zeros");
    qemu_io(&me, "write -P 0xa5 1048576 4096").expect("write over iSCSI");
    assert_eq!(read_at(&file, 1 << 20, 4096), vec![0xa5; 4096]);

    // A wrong secret, and an initiator not on the ACL, are refused.
    refused(
        qemu_io(&login(data, &initiator, "WrongSecret12345"), "read 0 512"),
        "Authentication failure",
        "wrong CHAP secret",
    );
    refused(
        qemu_io(
            &login(data, "iqn.2024-01.test.ashlar:stranger", &password),
            "read 0 512",
        ),
        "Target not found",
        "initiator not on the ACL",
    );

    // Initializing again (Nova retries) answers the same credentials.
    let again = action(json!({"os-initialize_connection": {"connector": connector}})).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["connection_info"]["data"], *data);

    let r = action(json!({"os-attach": {
        "instance_uuid": "9d2a7d3e-0000-4000-8000-00000000a77a",
        "host_name": "compute-1",
        "mountpoint": "/dev/vdb",
    }}))
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // A second host connects, and its detach shuts out only that host: the export stays
    // for the first.
    let other = "iqn.2024-01.test.ashlar:compute-2";
    let connector2 = json!({"host": "compute-2", "initiator": other});
    let r = action(json!({"os-initialize_connection": {"connector": connector2}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data2 = &r.body["connection_info"]["data"];
    assert_eq!(
        data2["auth_password"],
        password.as_str(),
        "one account per volume"
    );
    let them = login(data2, other, &password);
    qemu_io(&them, "read -P 0x5a 0 4096").expect("the second host reads");
    let r = action(json!({"os-terminate_connection": {"connector": connector2}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    refused(
        qemu_io(&them, "read 0 512"),
        "Target not found",
        "the second host after its os-terminate_connection",
    );
    qemu_io(&me, "read -P 0xa5 1048576 4096").expect("the first host still reads");

    // Detaching the first host, the last, removes the export.
    for body in [
        json!({"os-begin_detaching": {}}),
        json!({"os-terminate_connection": {"connector": connector}}),
        json!({"os-detach": {}}),
    ] {
        let r = action(body.clone()).await;
        assert_eq!(r.status, 202, "{body}: {}", r.body);
    }
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "available"
    );
    // The last connection took the export with it: there is no target to log in to.
    refused(
        qemu_io(&me, "read 0 512"),
        "Failed to connect to LUN",
        "after os-terminate_connection",
    );
    let targets = tgtd.targets();
    assert!(!targets.contains(&iqn), "the export is gone: {targets}");

    // An admin's force detach (no connector) shuts every initiator out and, with no
    // attachment left, removes the export.
    let r = action(json!({"os-initialize_connection": {"connector": connector}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["connection_info"]["data"]["auth_password"],
        password.as_str(),
        "the recorded credentials are exported again"
    );
    qemu_io(&me, "read -P 0x5a 0 4096").expect("attached again");
    let admin = server.client("admin:proj-a");
    let r = admin
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-force_detach": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    refused(
        qemu_io(&me, "read 0 512"),
        "Failed to connect to LUN",
        "after os-force_detach",
    );
    assert!(!tgtd.targets().contains(&iqn));

    // The secret went to the client and to tgtadm, never into the log.
    let log = server.log();
    assert!(log.contains("tgtadm"), "exec of tgtadm is logged");
    assert!(
        !log.contains(&password),
        "the CHAP secret is in the server log"
    );

    let r = c.delete(&format!("volumes/{vol}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait("volumes", &vol).await;
    assert!(!file.exists());
}

/// tgtd keeps its targets in memory only. After tgtd and ashlar both restart (a host
/// reboot), ashlar re-makes the export and the ACL of every attached volume at start-up,
/// so the attached host logs in again with the same credentials, without a new attach.
#[tokio::test]
async fn attached_volumes_are_exported_again_after_a_restart() {
    let tgtd = Tgtd::start();
    let (port, control_port) = (tgtd.port, tgtd.control_port);
    let tmp = tempfile::tempdir().unwrap();
    let share: PathBuf = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let config = config(&share, &tgtd);
    let server = Server::start_in(tmp.path(), &config);
    let mut c = server.client("alice:proj-a");
    c.version = Some("3.44".into());
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "iscsi"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    write_at(&share.join(format!("volume-{vol}")), 0, &[0x3c; 4096]);

    let initiator = format!("iqn.2024-01.test.ashlar:reboot-{}", std::process::id());
    let r = c
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "instance_uuid": "inst-reboot",
                "connector": {"host": "compute-9", "initiator": initiator}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
    let data = r.body["attachment"]["connection_info"]["data"].clone();
    let password = data["auth_password"].as_str().unwrap().to_string();
    let r = c
        .post(
            &format!("attachments/{att}/action"),
            json!({"os-complete": {}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let me = login(&data, &initiator, &password);
    qemu_io(&me, "read -P 0x3c 0 4096").expect("attached");

    // Both go down; tgtd comes back empty on the same ports.
    let dir = server.kill9();
    drop(tgtd);
    let tgtd = Tgtd::start_on(port, control_port).expect("tgtd restarts on its ports");
    assert!(
        !tgtd.targets().contains("Target"),
        "a restarted tgtd has no targets"
    );
    refused(
        qemu_io(&me, "read 0 512"),
        "Failed to connect to LUN",
        "before ashlar restores the export",
    );

    let server = Server::start_in(&dir, &config);
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("target exports restored") && l.contains("attachments=1")),
        "{}",
        server.log()
    );
    qemu_io(&me, "read -P 0x3c 0 4096").expect("the same login works after the restart");
    refused(
        qemu_io(&login(&data, &initiator, "WrongSecret12345"), "read 0 512"),
        "Authentication failure",
        "the restored export still checks CHAP",
    );
    let c = server.client("alice:proj-a");
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "in-use"
    );
    drop(server);
    drop(tgtd);
}

/// The backend's target driver (`world = target-driver`) in `ashlar plugin list`.
async fn target_of(admin: &Client, backend: &str) -> Value {
    plugin_row(admin, backend, "target-driver").await
}

/// A target driver is hot-swapped like a volume driver: a broken release passes the
/// swap's probes, fails the attach it is given, and probation puts the old one back, which
/// serves the next attach; by hand, a swap and a rollback of the target alone.
#[tokio::test]
async fn a_target_driver_is_swapped_watched_and_rolled_back() {
    let tgtd = Tgtd::start();
    let tmp = tempfile::tempdir().unwrap();
    let share: PathBuf = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let server = Server::start_in(tmp.path(), &config(&share, &tgtd));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:admin");
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "iscsi"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    write_at(&share.join(format!("volume-{vol}")), 0, &[0x7e; 4096]);
    let initiator = format!("iqn.2024-01.test.ashlar:swap-{}", std::process::id());
    let connect = || {
        let (c, path) = (&c, format!("volumes/{vol}/action"));
        let body = json!({"os-initialize_connection": {"connector":
            {"host": "compute-s", "initiator": initiator}}});
        async move { c.post(&path, body).await }
    };
    let broken = Path::new(FIXTURES_DIR).join("broken-target.wasm");
    let swap = |body: Value| {
        let admin = &admin;
        async move { admin.post("/ashlar/v1/backends/tgt/swap", body).await }
    };

    let r = swap(json!({"wasm": broken, "target": true, "probation_secs": 30})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["swap"]["part"], "target");
    assert_eq!(r.body["swap"]["from"], "iscsi-tgt 0.1.0");
    assert_eq!(r.body["swap"]["to"], "broken-target 9.9.9");
    let t = target_of(&admin, "tgt").await;
    assert_eq!(t["plugin"], "broken-target", "{t}");
    let volume_row = &admin
        .raw(reqwest::Method::GET, "/ashlar/v1/plugins", None)
        .await
        .body["plugins"][0];
    assert_eq!(volume_row["plugin"], "nfs", "the volume driver stays");

    // The broken target traps on the attach; the request fails, in Cinder's words for the
    // tenant, naming the plugin in the log, on a line with the request id.
    let r = connect().await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.error_message()
            .starts_with("Unable to initialize the connection: An unknown error occurred.")
            && !r.error_message().contains("broken-target"),
        "{}",
        r.error_message()
    );
    let request_id = r.headers["x-openstack-request-id"].to_str().unwrap();
    assert!(
        server
            .logged_with(request_id, &["plugin broken-target 9.9.9"])
            .await,
        "no log line with {request_id} naming the plugin"
    );
    // Probation's verdict, not the clock: rolled back, never passed.
    let started = Instant::now();
    loop {
        let t = target_of(&admin, "tgt").await;
        if t["plugin"] == "iscsi-tgt" && t["last_event"]["kind"] == "rolled-back" {
            assert!(
                t["last_event"]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("trapped"),
                "{t}"
            );
            break;
        }
        assert_ne!(t["last_event"]["kind"], "probation-passed", "{t}");
        assert!(started.elapsed().as_secs() < 60, "no verdict: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = connect().await;
    assert_eq!(r.status, 200, "the old target serves again: {}", r.body);
    let data = &r.body["connection_info"]["data"];
    let password = data["auth_password"].as_str().unwrap().to_string();
    qemu_io(&login(data, &initiator, &password), "read -P 0x7e 0 4096")
        .expect("attached through the restored target");

    // By hand: swap without probation, then roll the target alone back.
    let r = swap(json!({"wasm": broken, "target": true, "probation_secs": 0})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin
        .post("/ashlar/v1/backends/tgt/rollback", json!({"target": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rollback"]["to"], "iscsi-tgt 0.1.0");
    assert_eq!(target_of(&admin, "tgt").await["plugin"], "iscsi-tgt");

    // A target component is no volume driver, and the volume driver no target.
    let r = swap(json!({"wasm": broken})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("target-driver"),
        "{}",
        r.error_message()
    );
    drop(server);
    drop(tgtd);
}

#[tokio::test]
async fn swapping_the_target_of_a_backend_without_one_is_refused() {
    let server = Server::start("");
    let admin = server.client("admin:admin");
    let broken = Path::new(FIXTURES_DIR).join("broken-target.wasm");
    let r = admin
        .post(
            "/ashlar/v1/backends/local/swap",
            json!({"wasm": broken, "target": true}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.error_message().contains("[backends.local.target]"),
        "{}",
        r.error_message()
    );
    let r = admin
        .post(
            "/ashlar/v1/backends/local/swap",
            json!({"wasm": broken, "target": "yes"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}
