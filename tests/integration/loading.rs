//! Loading drivers: what a plugin asks for must be granted, and compiled components are
//! cached on disk.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{FIXTURES_DIR, Server, plugin_of};

/// Runs `ashlar serve` with `config` and returns its failure output (it must fail).
pub fn serve_fails(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = config
        .replace("@DIR@", dir.path().to_str().unwrap())
        .replace("@FIXTURES@", FIXTURES_DIR);
    std::fs::create_dir_all(dir.path().join("share")).unwrap();
    let path = dir.path().join("ashlar.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "ashlar should refuse this config");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_capability_not_granted_refuses_the_load_naming_both_sides() {
    let err = serve_fails(
        r#"
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "df", "du"]
settings.share_path = "@DIR@/share"
"#,
    );
    assert!(err.contains("backend local: loading its driver"), "{err}");
    assert!(err.contains("plugin nfs 0.1.0"), "{err}");
    assert!(err.contains("`rm`"), "names the missing program: {err}");
    assert!(
        err.contains("\"qemu-img\""),
        "names what was granted: {err}"
    );

    let err = serve_fails(
        r#"
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
"#,
    );
    assert!(
        err.contains("share_path"),
        "a template key missing from the settings is named: {err}"
    );

    let err = serve_fails(
        r#"
[backends.bad]
driver = "@FIXTURES@/misbehave.wasm"
grants.exec = ["true", "cat", "linger"]
grants.block = ["@DIR@/share/elsewhere"]
settings.share_path = "@DIR@/share"
"#,
    );
    assert!(err.contains("block"), "{err}");
    assert!(err.contains("misbehave"), "{err}");

    let err = serve_fails("[backends.x]\ndriver = \"zfs\"\n");
    assert!(
        err.contains("driver `zfs` is neither a bundled driver (nfs, ")
            && err.contains(" lvm")
            && err.contains(") nor a path to a .wasm component"),
        "names the bundled drivers: {err}"
    );
}

#[test]
fn compiled_components_are_cached_across_restarts() {
    let server = Server::start("");
    let cache = server.dir.join("data/cache");
    let entries = || -> Vec<_> {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let mut first = entries();
    first.sort();
    assert_eq!(
        first.len(),
        2,
        "one compiled artifact each for the nfs driver and the backup store's: {first:?}"
    );
    let modified = std::fs::metadata(&first[0]).unwrap().modified().unwrap();
    let dir = server.kill9();
    let server = Server::start_in(&dir, "");
    let mut again = entries();
    again.sort();
    assert_eq!(again, first, "the restart reused the artifacts");
    assert_eq!(
        std::fs::metadata(&first[0]).unwrap().modified().unwrap(),
        modified,
        "and did not rewrite it"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plugin_inspect_and_validate_answer_offline() {
    let fixtures = std::path::Path::new(FIXTURES_DIR);
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .args(["plugin", "inspect"])
        .arg(fixtures.join("misbehave.wasm"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "name:        misbehave",
        "world:       volume-driver",
        "contract:    0.3.0 (served here)",
        "exec  cat /dev/zero",
        "block {share_path}",
        "ashlar:driver/volume-driver-core@0.3.0",
        "ashlar:driver/volume-driver-health@0.3.0",
        "ashlar:driver/exec@0.3.0",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ashlar.toml");
    std::fs::write(
        &config,
        format!(
            "[backends.a]\ndriver = \"nfs\"\ngrants.exec = [\"true\"]\nsettings.share_path = \"{0}\"\n\
             [backends.b]\ndriver = \"nfs\"\ngrants.exec = [\"true\", \"cat\", \"linger\"]\ngrants.block = [\"{0}\"]\nsettings.share_path = \"{0}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let validate = |backend: &str| {
        Command::new(env!("CARGO_BIN_EXE_ashlar"))
            .args(["plugin", "validate"])
            .arg(fixtures.join("misbehave.wasm"))
            .arg("--config")
            .arg(&config)
            .args(["--backend", backend])
            .output()
            .unwrap()
    };
    let a = validate("a");
    assert!(!a.status.success());
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(text.contains("backend a: REFUSED"), "{text}");
    assert!(
        text.contains("`cat`"),
        "names the program not granted: {text}"
    );
    let b = validate("b");
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stdout));
    assert!(String::from_utf8_lossy(&b.stdout).contains("would load"));
}

#[tokio::test]
async fn a_backend_on_contract_0_1_serves_beside_one_on_0_3() {
    let server = Server::start(
        r#"
[volume_types.old]
volume_backend_name = "old"

[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
settings.share_path = "@DIR@/data/volumes"

[backends.old]
driver = "@FIXTURES@/contract-v0-1.wasm"
"#,
    );
    let admin = server.client("admin:ops");
    let r = admin.get("/ashlar/v1/plugins").await;
    let contract = |backend: &str| {
        r.body["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["backend"] == backend)
            .unwrap()["contract"]
            .clone()
    };
    assert_eq!(contract("old"), "0.1.0");
    assert_eq!(contract("local"), "0.3.0");

    let c = server.client("alice:proj-a");
    let old = c
        .create_volume(serde_json::json!({"size": 1, "volume_type": "old"}))
        .await;
    c.wait_status("volumes", &old, "available").await;
    let new = c.create_volume(serde_json::json!({"size": 1})).await;
    c.wait_status("volumes", &new, "available").await;
    let host =
        admin.get(&format!("volumes/{old}")).await.body["volume"]["os-vol-host-attr:host"].clone();
    assert_eq!(host, "ashlar@old#old");
    // What 0.1.0 cannot do is answered as such, through the same API.
    let r = c
        .post(
            "snapshots",
            serde_json::json!({"snapshot": {"volume_id": old}}),
        )
        .await;
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.wait("snapshots", &snap).await["status"], "error");
    assert!(c.messages_for(&snap).await[0].contains("not supported"));
}

#[tokio::test]
async fn drivers_on_contracts_0_2_and_0_3_serve_side_by_side_in_one_host() {
    let server = Server::start(
        r#"
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
settings.share_path = "@DIR@/data/volumes"

[backends.mid]
driver = "@FIXTURES@/contract-v0-2.wasm"
"#,
    );
    let admin = server.client("admin:ops");
    assert_eq!(plugin_of(&admin, "mid").await["contract"], "0.2.0");
    assert_eq!(plugin_of(&admin, "local").await["contract"], "0.3.0");

    // One type per backend; the 0.2.0 one with back-end QoS specs, which 0.3.0 carries
    // in a field of its own and a 0.2.0 driver finds among the extra specs.
    let on_mid = admin
        .create_type(
            "on-mid",
            json!({"volume_backend_name": "mid", "vendor:k": "v"}),
        )
        .await;
    let also_mid = admin
        .create_type(
            "also-mid",
            json!({"volume_backend_name": "mid", "vendor:k": "w"}),
        )
        .await;
    admin
        .create_type("on-local", json!({"volume_backend_name": "local"}))
        .await;
    let r = admin
        .post(
            "qos-specs",
            json!({"qos_specs": {"name": "fast", "consumer": "back-end", "iops": "500"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let qos = r.body["qos_specs"]["id"].as_str().unwrap().to_string();
    let r = admin
        .get(&format!("qos-specs/{qos}/associate?vol_type_id={on_mid}"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);

    let c = server.client("alice:proj-a");
    let mid = c
        .create_volume(json!({"size": 1, "volume_type": "on-mid"}))
        .await;
    let local = c
        .create_volume(json!({"size": 1, "volume_type": "on-local"}))
        .await;
    c.wait_status("volumes", &mid, "available").await;
    c.wait_status("volumes", &local, "available").await;
    server.wait_log(&format!("0.2.0 driver made {mid}")).await;
    let made = server
        .log()
        .lines()
        .find(|l| l.contains(&format!("0.2.0 driver made {mid}")))
        .unwrap()
        .to_string();
    assert!(made.contains(r#"("vendor:k", "v")"#), "{made}");
    assert!(made.contains(r#"("qos:iops", "500")"#), "{made}");

    // A 0.2.0 retype's `true` is "changed in place": the type changes, the volume stays.
    let r = c
        .post(
            &format!("volumes/{mid}/action"),
            json!({"os-retype": {"new_type": "also-mid"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    server
        .wait_log(&format!("0.2.0 driver retypes {mid} to also-mid"))
        .await;
    let v = c.wait_status("volumes", &mid, "available").await;
    assert_eq!(v["volume_type"], "also-mid");
    let shown = admin.get(&format!("volumes/{mid}")).await.body["volume"].clone();
    assert_eq!(shown["os-vol-host-attr:host"], "ashlar@mid#old");
    let _ = also_mid;

    // Manageable snapshots: the 0.2.0 driver cannot list them, so none are listed; the
    // 0.3.0 nfs driver answers not-supported, listed as none as well.
    for backend in ["mid", "local"] {
        let r = admin
            .with_version("3.8")
            .get(&format!("manageable_snapshots?host=ashlar@{backend}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["manageable-snapshots"], json!([]));
    }

    // Both volumes go the same way.
    for id in [&mid, &local] {
        assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
        c.wait_gone("volumes", id).await;
    }
}

/// A volume's row as the store holds it: provider location and auth, admin metadata, host.
async fn stored(
    dir: &std::path::Path,
    id: &str,
) -> (Option<String>, Option<String>, Value, String) {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&Server::database_url(dir))
        .await
        .unwrap();
    let (location, auth, metadata, host): (Option<String>, Option<String>, String, String) =
        sqlx::query_as(
            "SELECT provider_location, provider_auth, admin_metadata, host FROM volumes WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    (
        location,
        auth,
        serde_json::from_str(&metadata).unwrap(),
        host,
    )
}

#[tokio::test]
async fn a_0_3_model_update_sets_clears_removes_metadata_and_moves_pools() {
    let server = Server::start(
        r#"
[backends.mu]
driver = "@FIXTURES@/model-updates.wasm"
"#,
    );
    let admin = server.client("admin:ops");
    admin
        .create_type("one", json!({"volume_backend_name": "mu", "vendor:x": "1"}))
        .await;
    admin
        .create_type("two", json!({"volume_backend_name": "mu", "vendor:x": "2"}))
        .await;
    let c = server.client("alice:proj-a");
    let id = c
        .create_volume(json!({"size": 1, "volume_type": "one"}))
        .await;
    c.wait_status("volumes", &id, "available").await;
    let (location, auth, metadata, host) = stored(&server.dir, &id).await;
    assert_eq!(location.as_deref(), Some(format!("loc-{id}").as_str()));
    assert_eq!(auth.as_deref(), Some(format!("auth-{id}").as_str()));
    assert_eq!(metadata, json!({"made": "yes"}));
    assert_eq!(host, "ashlar@mu#p1");

    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-retype": {"new_type": "two"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c.wait_status("volumes", &id, "available").await;
    assert_eq!(v["volume_type"], "two");
    let (location, auth, metadata, host) = stored(&server.dir, &id).await;
    assert_eq!((location, auth), (None, None), "cleared");
    assert_eq!(metadata, json!({"retyped": "two"}));
    assert_eq!(host, "ashlar@mu#p2");
    let shown = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
    assert_eq!(shown["os-vol-host-attr:host"], "ashlar@mu#p2");

    // An integer list among a pool's capabilities is a JSON list of numbers.
    let r = admin.get("scheduler-stats/get_pools?detail=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pools = r.body["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "{}", r.body);
    for p in pools {
        assert_eq!(p["capabilities"]["lun_ids"], json!([0, 7]), "{p}");
    }
}

/// Runs `ashlar plugin ARGS…`; returns whether it succeeded, its stdout and its stderr.
fn plugin(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .arg("plugin")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_validate_accepts_a_driver_on_contract_0_1_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(FIXTURES_DIR).join("contract-v0-1.wasm");
    let config = dir.path().join("ashlar.toml");
    // It asks for nothing, so a backend granting nothing serves it.
    std::fs::write(
        &config,
        format!("[backends.old]\ndriver = {:?}\n", fixture.display()),
    )
    .unwrap();
    let (ok, out, err) = plugin(&[
        "validate".as_ref(),
        fixture.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    assert!(ok, "{out}{err}");
    for want in [
        "old-contract 0.1.0: contract 0.1.0 (served here)",
        "fit contract 0.1.0 as a volume-driver",
        "backend old: every requested capability is granted",
        "would load",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
}

#[test]
fn plugin_inspect_of_a_bare_component_says_what_the_component_says() {
    let dir = tempfile::tempdir().unwrap();
    let bare = |name: &str| {
        let wasm = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&wasm, ashlar::bundled::find(name).unwrap().wasm).unwrap();
        wasm
    };
    let nfs = bare("nfs");
    let (ok, out, err) = plugin(&["inspect".as_ref(), nfs.as_os_str()]);
    assert!(ok, "{out}{err}");
    let toml = dir.path().join("nfs.toml");
    for want in [
        format!("manifest:    MISSING: no plugin.toml at {}", toml.display()),
        "world:       volume-driver".into(),
        "contract:    0.3.0 (served here)".into(),
        "size:        ".into(),
        "ashlar:driver/volume-driver-core@0.3.0".into(),
        "ashlar:driver/exec@0.3.0".into(),
    ] {
        assert!(out.contains(&want), "missing `{want}` in:\n{out}");
    }
    assert!(
        !out.contains("requests:"),
        "no manifest, no requests:\n{out}"
    );

    let tgt = bare("iscsi-tgt");
    let (ok, out, err) = plugin(&["inspect".as_ref(), tgt.as_os_str()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("world:       target-driver"), "{out}");
    assert!(
        out.contains("ashlar:driver/target-driver-core@0.3.0"),
        "{out}"
    );

    // With a manifest that says otherwise, the component's own word is a warning.
    std::fs::write(
        tgt.with_extension("toml"),
        ashlar::bundled::find("nfs").unwrap().manifest,
    )
    .unwrap();
    let (ok, out, err) = plugin(&["inspect".as_ref(), tgt.as_os_str()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("world:       volume-driver"), "{out}");
    assert!(
        out.contains("warning:") && out.contains("exports make it a target-driver"),
        "{out}"
    );
}
