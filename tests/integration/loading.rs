//! Loading drivers: what a plugin asks for must be granted, and compiled components are
//! cached on disk.

use std::process::Command;

use crate::common::{FIXTURES_DIR, Server};

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
async fn a_backend_on_contract_0_1_serves_beside_one_on_0_2() {
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
