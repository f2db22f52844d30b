//! Builds the bundled driver components (`plugins/*`) and the test fixtures
//! (`tests/fixtures/*`) for `wasm32-wasip2` with a nested cargo, so `ashlar serve` finds its
//! drivers with no setup and the tests find their fixtures. Bundled components are embedded
//! in the binary; fixtures are only exposed to tests through `ASHLAR_FIXTURES_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, directory) of every component this build knows how to make. A directory under
/// `plugins/` or `tests/fixtures/` missing here fails the build, so none is silently skipped.
const COMPONENTS: &[(&str, &str)] = &[
    ("ashlar-plugin-nfs", "plugins/nfs"),
    ("ashlar-plugin-iscsi-tgt", "plugins/iscsi-tgt"),
    ("ashlar-plugin-lvm", "plugins/lvm"),
    ("ashlar-plugin-san-rest", "plugins/san-rest"),
    ("ashlar-plugin-backup-posix", "plugins/backup-posix"),
    ("ashlar-plugin-backup-s3", "plugins/backup-s3"),
    ("ashlar-fixture-misbehave", "tests/fixtures/misbehave"),
    ("ashlar-fixture-flaky", "tests/fixtures/flaky"),
    (
        "ashlar-fixture-contract-v0-1",
        "tests/fixtures/contract-v0-1",
    ),
    (
        "ashlar-fixture-contract-v0-2",
        "tests/fixtures/contract-v0-2",
    ),
    ("ashlar-fixture-redirect", "tests/fixtures/redirect"),
    (
        "ashlar-fixture-broken-target",
        "tests/fixtures/broken-target",
    ),
    (
        "ashlar-fixture-credential-probe",
        "tests/fixtures/credential-probe",
    ),
    ("ashlar-fixture-backup-flaky", "tests/fixtures/backup-flaky"),
    (
        "ashlar-fixture-model-updates",
        "tests/fixtures/model-updates",
    ),
];

fn main() {
    // Read at run time, not baked in with env!: a build script compiled for one checkout
    // may be reused from a shared target directory by another.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for dir in ["plugins", "tests/fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.join("Cargo.toml").exists() {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                assert!(
                    COMPONENTS.iter().any(|(_, d)| *d == rel),
                    "{rel} is a component this build script does not know; add it to COMPONENTS"
                );
            }
        }
    }
    for watched in ["wit", "sdk", "plugins", "tests/fixtures"] {
        // Relative to this package, so the paths name the checkout being built: a target
        // directory shared by several checkouts must not watch another one's files.
        println!("cargo:rerun-if-changed=../{watched}");
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // <target>/<profile>/build/ashlar-<hash>/out → <target>/wasm-components, shared by all
    // profiles so the components build once.
    let target_dir = out_dir.ancestors().nth(4).unwrap().join("wasm-components");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _) in COMPONENTS {
        cmd.args(["-p", package]);
    }
    // The outer build's flags are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("run cargo to build the wasm components");
    assert!(
        status.success(),
        "building the wasm components failed; is the target installed? `rustup target add wasm32-wasip2`"
    );

    let built = target_dir.join("wasm32-wasip2/release");
    let fixtures = out_dir.join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    for (package, dir) in COMPONENTS {
        let wasm = built.join(format!("{}.wasm", package.replace('-', "_")));
        let name = Path::new(dir).file_name().unwrap().to_str().unwrap();
        let dest = if dir.starts_with("plugins/") {
            out_dir.join(format!("{name}.wasm"))
        } else {
            fixtures.join(format!("{name}.wasm"))
        };
        std::fs::copy(&wasm, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", wasm.display()));
        let manifest = root.join(dir).join("plugin.toml");
        let dest_manifest = dest.with_extension("toml");
        std::fs::copy(&manifest, &dest_manifest)
            .unwrap_or_else(|e| panic!("copy {}: {e}", manifest.display()));
    }
    println!("cargo:rustc-env=ASHLAR_FIXTURES_DIR={}", fixtures.display());
}
