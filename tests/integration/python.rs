//! Drivers written in Python: plugins/py-example built with the real componentize-py
//! (scripts/setup-python-sdk.sh installs it; `ASHLAR_COMPONENTIZE_PY` names it) and
//! stamped with `ashlar plugin stamp`, serving a volume's whole life through the API and
//! passing `ashlar conformance`; the stamp's refusals; the Python SDK's own tests. (`ashlar
//! plugin new` projects of every world and language are built and certified in
//! `driver_guide`.)
//!
//! Built components are cached under the target directory by a hash of everything that
//! goes into them, so a rerun takes a cached one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Server, read_at, virtual_size, write_at};
use crate::loading::serve_fails;

const GIB: u64 = 1 << 30;
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const ASHLAR: &str = env!("CARGO_BIN_EXE_ashlar");

/// The componentize-py to build with: `ASHLAR_COMPONENTIZE_PY`, else the one on PATH.
/// Missing, the test fails saying how to install it, rather than being skipped.
pub fn componentize_py() -> PathBuf {
    let path = std::env::var_os("ASHLAR_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("componentize-py"));
    let found = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "componentize-py ({}) is not installed: `source scripts/setup-python-sdk.sh` installs it and exports ASHLAR_COMPONENTIZE_PY",
        path.display()
    );
    path
}

/// Where built components are kept between runs.
fn cache_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-components");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A hash of the files under `paths` (recursively, in name order) and of `extra`.
pub fn inputs_hash(paths: &[PathBuf], extra: &str) -> String {
    fn walk(path: &Path, files: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name != "build" && name != "__pycache__" && name != "target"
                })
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, files);
            }
        } else if path.is_file() {
            files.push(path.to_path_buf());
        }
    }
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files);
    }
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    h.update(extra.as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

static BUILD: Mutex<()> = Mutex::new(());

/// The contract plugins/py-example is built against: `CONTRACT` in its build.sh, the one
/// place that names it.
pub fn py_example_contract() -> String {
    let script =
        std::fs::read_to_string(Path::new(ROOT).join("plugins/py-example/build.sh")).unwrap();
    script
        .lines()
        .find_map(|l| l.strip_prefix("CONTRACT=\"${CONTRACT:-"))
        .and_then(|rest| rest.strip_suffix("}\""))
        .expect("build.sh sets CONTRACT=\"${CONTRACT:-X.Y.Z}\"")
        .to_string()
}

/// plugins/py-example built and stamped (with its plugin.toml beside it, same stem).
pub fn py_example() -> PathBuf {
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let cpy = componentize_py();
    let root = Path::new(ROOT);
    let hash = inputs_hash(
        &[
            root.join("plugins/py-example"),
            root.join("sdk/python/ashlar_sdk"),
            root.join("wit"),
        ],
        &cpy.display().to_string(),
    );
    let out = cache_dir().join(format!("py-example-{hash}.wasm"));
    if out.exists() && out.with_extension("toml").exists() {
        return out;
    }
    let run = Command::new(root.join("plugins/py-example/build.sh"))
        .env("COMPONENTIZE_PY", &cpy)
        .env("ASHLAR", ASHLAR)
        .env("OUT", &out)
        .output()
        .expect("run plugins/py-example/build.sh");
    assert!(
        run.status.success(),
        "build.sh: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn inspect(wasm: &Path) -> String {
    let out = Command::new(ASHLAR)
        .args(["plugin", "inspect"])
        .arg(wasm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect {}: {}",
        wasm.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stamp(wasm: &Path, contract: &str) -> std::process::Output {
    Command::new(ASHLAR)
        .args(["plugin", "stamp"])
        .arg(wasm)
        .args(["--contract", contract])
        .output()
        .unwrap()
}

fn backend_config(wasm: &Path) -> String {
    format!(
        r#"
[backends.py]
driver = "{}"
grants.exec = ["qemu-img", "df", "du", "rm"]
settings.share_path = "@DIR@/share"
"#,
        wasm.display()
    )
}

async fn action(c: &crate::common::Client, vol: &str, body: Value) -> crate::common::Resp {
    c.post(&format!("volumes/{vol}/action"), body).await
}

#[tokio::test]
async fn a_python_driver_serves_a_volumes_whole_life() {
    let wasm = py_example();
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let server = Server::start_in(tmp.path(), &backend_config(&wasm));
    let c = server.client("alice:proj-a");

    // The pool it reports, in Cinder's words.
    let admin = server.client("admin:admin");
    let pools = admin.get("scheduler-stats/get_pools?detail=true").await;
    assert_eq!(pools.status, 200, "{}", pools.body);
    let pool = &pools.body["pools"][0];
    assert!(
        pool["name"].as_str().unwrap().contains("@py#"),
        "{}",
        pools.body
    );
    assert!(pool["capabilities"]["total_capacity_gb"].as_f64().unwrap() > 0.0);

    let vol = c.create_volume(json!({"size": 1})).await;
    let v = c.wait_status("volumes", &vol, "available").await;
    assert_eq!(v["size"], 1);
    let file = share.join(format!("volume-{vol}"));
    assert_eq!(virtual_size(&file), GIB);
    write_at(&file, 0, b"written-by-a-guest");
    write_at(&file, GIB - 4096, b"last-block");

    let r = action(&c, &vol, json!({"os-extend": {"new_size": 2}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c.wait_status("volumes", &vol, "available").await;
    assert_eq!(v["size"], 2);
    assert_eq!(virtual_size(&file), 2 * GIB);
    assert_eq!(read_at(&file, GIB - 4096, 10), b"last-block");

    // A snapshot is a copy of the data at that moment.
    let snap = c.snapshot_available(&vol).await;
    let snap_file = share.join(format!("snapshot-{snap}"));
    assert_eq!(read_at(&snap_file, 0, 18), b"written-by-a-guest");
    write_at(&file, 0, b"CHANGED-AFTER");

    let from_snap = c
        .create_volume(json!({"snapshot_id": snap, "size": 3}))
        .await;
    c.wait_status("volumes", &from_snap, "available").await;
    let from_snap_file = share.join(format!("volume-{from_snap}"));
    assert_eq!(virtual_size(&from_snap_file), 3 * GIB);
    assert_eq!(read_at(&from_snap_file, 0, 18), b"written-by-a-guest");

    let clone = c.create_volume(json!({"source_volid": vol})).await;
    c.wait_status("volumes", &clone, "available").await;
    let clone_file = share.join(format!("volume-{clone}"));
    assert_eq!(read_at(&clone_file, 0, 13), b"CHANGED-AFTER");
    assert_eq!(read_at(&clone_file, GIB - 4096, 10), b"last-block");

    // Attach and detach through the volume actions: the driver's connection info.
    let connector = json!({"host": "compute-1", "ip": "127.0.0.1", "multipath": false});
    assert_eq!(
        action(&c, &vol, json!({"os-reserve": {}})).await.status,
        202
    );
    let r = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": connector}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = &r.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "nfs", "{info}");
    assert_eq!(info["data"]["name"], format!("volume-{vol}"), "{info}");
    assert_eq!(info["data"]["format"], "raw", "{info}");
    let r = action(&c, &vol, json!({"os-attach": {"instance_uuid": "9d2a7d3e-0000-4000-8000-000000000001", "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("volumes", &vol, "in-use").await;
    for body in [
        json!({"os-begin_detaching": {}}),
        json!({"os-terminate_connection": {"connector": connector}}),
        json!({"os-detach": {}}),
    ] {
        let r = action(&c, &vol, body).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    c.wait_status("volumes", &vol, "available").await;

    // Deletes leave nothing on the share.
    for id in [&clone, &from_snap] {
        assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
        c.wait_gone("volumes", id).await;
    }
    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    c.wait_gone("snapshots", &snap).await;
    assert!(!snap_file.exists());
    assert_eq!(c.delete(&format!("volumes/{vol}")).await.status, 202);
    c.wait_gone("volumes", &vol).await;
    let left: Vec<_> = std::fs::read_dir(&share).unwrap().collect();
    assert!(left.is_empty(), "the share keeps {left:?}");
}

#[test]
fn a_python_component_is_stamped_once_and_only_with_what_it_was_built_for() {
    let built = py_example();
    let tmp = tempfile::tempdir().unwrap();
    let stamped = tmp.path().join("py.wasm");
    std::fs::copy(&built, &stamped).unwrap();
    std::fs::copy(built.with_extension("toml"), stamped.with_extension("toml")).unwrap();
    let contract = py_example_contract();
    let text = inspect(&stamped);
    assert!(
        text.contains(&format!("contract:    {contract} (served here)")),
        "{text}"
    );
    assert!(text.contains("world:       volume-driver"), "{text}");

    // What componentize-py made, before the stamp: the stamp is the last section.
    let bytes = std::fs::read(&stamped).unwrap();
    let section = format!("ashlar:contract-version{contract}");
    let section = section.as_bytes();
    assert!(bytes.ends_with(section), "the stamp is appended at the end");
    let unstamped = tmp.path().join("unstamped.wasm");
    std::fs::write(&unstamped, &bytes[..bytes.len() - section.len() - 3]).unwrap();
    std::fs::copy(
        built.with_extension("toml"),
        unstamped.with_extension("toml"),
    )
    .unwrap();

    // Unstamped, it does not load, and the refusal names the plugin and the way out.
    let err = serve_fails(&backend_config(&unstamped));
    assert!(err.contains("plugin py-example 0.1.0"), "{err}");
    assert!(err.contains("ashlar plugin stamp"), "{err}");

    // Stamped again, it is the same component as the build's.
    let out = stamp(&unstamped, &contract);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&unstamped).unwrap(), bytes);

    // Another version than its own, or one this host does not serve, is refused.
    let out = stamp(&stamped, "0.1.0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("stamped with contract {contract} already")),
        "{err}"
    );
    std::fs::write(&unstamped, &bytes[..bytes.len() - section.len() - 3]).unwrap();
    let out = stamp(&unstamped, "0.1.0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("built against contract {contract}")),
        "{err}"
    );
    let out = stamp(&unstamped, "7.0.0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not serve contract 7.0.0; it serves 0.1"),
        "{err}"
    );
    let untouched = std::fs::read(&unstamped).unwrap();
    assert_eq!(
        untouched.len(),
        bytes.len() - section.len() - 3,
        "untouched"
    );
}

/// `ashlar plugin new NAME --world WORLD --lang LANG` into `dir`.
pub fn plugin_new(name: &str, world: &str, lang: &str, dir: &Path) {
    let out = Command::new(ASHLAR)
        .args([
            "plugin", "new", name, "--world", world, "--lang", lang, "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plugin new {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `inspect` says of a scaffold's component: its world and contract.
pub fn assert_inspected(wasm: &Path, manifest: &Path, world: &str) {
    let out = Command::new(ASHLAR)
        .args(["plugin", "inspect"])
        .arg(wasm)
        .arg("--manifest")
        .arg(manifest)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("world:       {world}-driver\n")),
        "{text}"
    );
    assert!(!text.contains("warning:"), "{text}");
    assert!(text.contains("(served here)"), "{text}");
    assert!(text.contains("exports:"), "it compiles: {text}");
}

/// plugins/py-example certified by `ashlar conformance` on a directory, as `serve` runs it.
#[test]
fn the_python_example_passes_conformance() {
    let wasm = py_example();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("share")).unwrap();
    let config = tmp.path().join("backend.toml");
    std::fs::write(
        &config,
        backend_config(&wasm).replace("@DIR@", &tmp.path().display().to_string()),
    )
    .unwrap();
    let cert = tmp.path().join("certificate.json");
    let out = Command::new(ASHLAR)
        .arg("conformance")
        .arg(&wasm)
        .arg("--config")
        .arg(&config)
        .arg("--certificate")
        .arg(&cert)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    let cert: Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(
        cert["component"]["digest"],
        format!("sha256:{:x}", Sha256::digest(std::fs::read(&wasm).unwrap())).as_str()
    );
    assert_eq!(
        cert["component"]["contract"],
        py_example_contract().as_str()
    );
    assert!(cert["checks"].as_array().unwrap().len() >= 100);
    assert_eq!(cert["summary"]["required_failed"], 0, "{table}");
}

/// The Python SDK's own tests (sdk/python/tests), outside a component, against the
/// bindings of every contract folder it serves (0.2.0 on): one SDK builds drivers for each.
#[test]
fn the_python_sdk_passes_its_tests_under_every_contract() {
    let cpy = componentize_py();
    let root = Path::new(ROOT);
    let mut contracts: Vec<String> = std::fs::read_dir(root.join("wit"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("since_v").map(str::to_string)
        })
        .filter(|v| v != "0.1.0")
        .collect();
    contracts.sort();
    assert!(contracts.len() >= 2, "{contracts:?}");
    for contract in contracts {
        let bindings = tempfile::tempdir().unwrap();
        let out = Command::new(&cpy)
            .arg("-d")
            .arg(root.join(format!("wit/since_v{contract}")))
            .args(["-w", "volume-driver", "bindings"])
            .arg(bindings.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bindings of {contract}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = std::env::join_paths([
            bindings.path().to_path_buf(),
            root.join("sdk/python"),
            root.join("plugins/py-example"),
        ])
        .unwrap();
        let out = Command::new("python3")
            .arg(root.join("sdk/python/tests/test_sdk.py"))
            .env("PYTHONPATH", path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the Python SDK's tests under contract {contract}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
