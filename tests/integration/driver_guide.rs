//! `docs/driver-guide.md`, followed as a driver author would: `ashlar plugin new` for each
//! world in Rust and in Python, the project filled with the guide's own example files
//! (read from the guide, so the guide cannot drift from what works), built with the
//! guide's commands, then certified by `ashlar conformance` with exit 0 and a certificate
//! whose digest is the component's. An unfilled scaffold builds and loads, and fails the
//! required checks with exit 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::python::{assert_inspected, componentize_py, plugin_new};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const ASHLAR: &str = env!("CARGO_BIN_EXE_ashlar");

/// The guide's example files: `<!-- example WORLD/LANG: PATH -->` before a fenced block.
fn examples() -> BTreeMap<(String, String), Vec<(String, String)>> {
    let guide = std::fs::read_to_string(Path::new(ROOT).join("docs/driver-guide.md")).unwrap();
    let mut found: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .strip_prefix("<!-- example ")
            .and_then(|m| m.strip_suffix(" -->"))
        else {
            continue;
        };
        let (which, path) = marker.split_once(": ").expect("WORLD/LANG: PATH");
        let (world, lang) = which.split_once('/').expect("WORLD/LANG");
        let fence = lines.next().expect("a fenced block after the marker");
        assert!(
            fence.starts_with("```"),
            "{marker}: no fenced block but {fence}"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        found
            .entry((world.to_string(), lang.to_string()))
            .or_default()
            .push((path.to_string(), body.join("\n") + "\n"));
    }
    found
}

/// Points the guide's `/tmp/…` directories into `tmp`, making each.
fn localised(backend_toml: &str, tmp: &Path) -> String {
    let mut out = backend_toml.to_string();
    for dir in backend_toml
        .split('"')
        .filter(|s| s.starts_with("/tmp/") && !s.contains(' '))
    {
        let local = tmp.join(dir.trim_start_matches("/tmp/"));
        std::fs::create_dir_all(&local).unwrap();
        out = out.replace(&format!("\"{dir}\""), &format!("\"{}\"", local.display()));
    }
    out
}

/// The guide's build: cargo for Rust (into the test's shared target directory, then where
/// the guide's `backend.toml` expects it), `./build.sh` for Python.
fn build(lang: &str, name: &str, dir: &Path) -> PathBuf {
    if lang == "rust" {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
        let out = Command::new("cargo")
            .args(["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: cargo build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = format!("{}.wasm", name.replace('-', "_"));
        let place = dir.join("target/wasm32-wasip2/release");
        std::fs::create_dir_all(&place).unwrap();
        std::fs::copy(
            target.join("wasm32-wasip2/release").join(&file),
            place.join(&file),
        )
        .unwrap();
        PathBuf::from(format!("target/wasm32-wasip2/release/{file}"))
    } else {
        let out = Command::new(dir.join("build.sh"))
            .current_dir(dir)
            .env("COMPONENTIZE_PY", componentize_py())
            .env("ASHLAR", ASHLAR)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: build.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(format!("build/{name}.wasm"))
    }
}

/// `ashlar conformance WASM --config backend.toml --certificate certificate.json`, run in
/// the project as the guide says; its exit code and stdout.
fn conformance(dir: &Path, wasm: &Path) -> (Option<i32>, String) {
    let out = Command::new(ASHLAR)
        .arg("conformance")
        .arg(wasm)
        .args([
            "--config",
            "backend.toml",
            "--certificate",
            "certificate.json",
        ])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One world and language: scaffold, fill from the guide, build, certify.
fn certify(world: &str, lang: &str, files: &[(String, String)], tmp: &Path) -> Value {
    let name = match (world, lang) {
        ("volume", "rust") => "my-driver",
        ("volume", _) => "my-py-driver",
        ("target", "rust") => "my-target",
        ("target", _) => "my-py-target",
        ("backup", "rust") => "my-store",
        _ => "my-py-store",
    };
    let dir = tmp.join(name);
    plugin_new(name, world, lang, &dir);
    for (path, text) in files {
        let text = match path.as_str() {
            "backend.toml" => localised(text, tmp),
            _ => text.clone(),
        };
        std::fs::write(dir.join(path), text).unwrap();
    }
    let wasm = build(lang, name, &dir);
    assert_inspected(&dir.join(&wasm), &dir.join("plugin.toml"), world);
    let (code, table) = conformance(&dir, &wasm);
    assert_eq!(code, Some(0), "{world}/{lang}:\n{table}");
    assert!(table.contains("CONFORMS"), "{table}");
    let cert: Value =
        serde_json::from_slice(&std::fs::read(dir.join("certificate.json")).unwrap()).unwrap();
    let digest = format!(
        "sha256:{:x}",
        Sha256::digest(std::fs::read(dir.join(&wasm)).unwrap())
    );
    assert_eq!(
        cert["component"]["digest"],
        digest.as_str(),
        "{world}/{lang}"
    );
    assert_eq!(cert["component"]["name"], name);
    assert_eq!(cert["component"]["world"], format!("{world}-driver"));
    assert_eq!(cert["component"]["contract"], "0.3.0");
    assert_eq!(cert["summary"]["required_failed"], 0, "{table}");
    cert
}

#[test]
fn the_guides_examples_get_a_certificate_in_every_world_and_language() {
    let examples = examples();
    let tmp = tempfile::tempdir().unwrap();
    let mut wanted = Vec::new();
    for world in ["volume", "target", "backup"] {
        for lang in ["rust", "python"] {
            let files = examples
                .get(&(world.to_string(), lang.to_string()))
                .unwrap_or_else(|| panic!("the guide has no {world}/{lang} example"));
            let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
            assert!(
                paths.contains(&"plugin.toml") && paths.contains(&"backend.toml"),
                "{world}/{lang}: {paths:?}"
            );
            wanted.push((world, lang, files.clone()));
        }
    }
    // Python builds take a while each: all six at once.
    let certificates: Vec<(String, Value)> = std::thread::scope(|s| {
        let runs: Vec<_> = wanted
            .iter()
            .map(|(world, lang, files)| {
                let tmp = tmp.path();
                s.spawn(move || (format!("{world}/{lang}"), certify(world, lang, files, tmp)))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (which, cert) in &certificates {
        let checks = cert["checks"].as_array().unwrap().len();
        let least = if which.starts_with("volume") { 100 } else { 25 };
        assert!(checks >= least, "{which}: only {checks} checks");
        eprintln!(
            "{which}: {checks} checks, {} passed, {} skipped, {} warnings, {} ms",
            cert["summary"]["passed"],
            cert["summary"]["skipped"],
            cert["summary"]["warnings"],
            cert["duration_ms"]
        );
    }
}

#[test]
fn an_unfilled_scaffold_builds_loads_and_fails_its_required_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unfilled");
    plugin_new("unfilled", "volume", "rust", &dir);
    let wasm = build("rust", "unfilled", &dir);
    let (code, table) = conformance(&dir, &wasm);
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("DOES NOT CONFORM"), "{table}");
    // It loaded: what failed are the methods the guide says to write, as not supported.
    assert!(table.contains("PASS   load.component"), "{table}");
    for check in ["stats.get_volume_stats", "volume.create"] {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(check))
            .unwrap_or_else(|| panic!("no {check} in\n{table}"));
        assert!(line.starts_with("FAIL"), "{line}");
    }
    assert!(table.contains("does not implement"), "{table}");
    let cert: Value =
        serde_json::from_slice(&std::fs::read(dir.join("certificate.json")).unwrap()).unwrap();
    assert!(cert["summary"]["required_failed"].as_u64().unwrap() > 0);

    // Once made, a project is never written over.
    let out = Command::new(ASHLAR)
        .args(["plugin", "new", "again", "--world", "volume", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
