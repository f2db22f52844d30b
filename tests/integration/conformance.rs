//! `ashlar conformance` against every bundled driver on real peers: nfs on a local
//! directory, lvm on the recording lvm2 stand-ins (lvm.rs) paired with iscsi-tgt on a real
//! tgtd, san-rest against the array simulator (san.rs), iscsi-tgt as a target driver on a
//! real tgtd, backup-posix on a directory and backup-s3 on SeaweedFS. Each run must exit 0
//! with a certificate whose digest is the component's; broken fixtures must exit 1 naming
//! the required check they fail, and a config it cannot run on exits 2.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{FIXTURES_DIR, Tgtd};
use crate::lvm::{LVM_PROGRAMS, STANDIN};
use crate::san::{ArraySim, PASSWORD, san_config};
use crate::seaweedfs::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SeaweedFs};

/// What one `ashlar conformance` run gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    certificate: Option<Value>,
}

impl Run {
    fn cert(&self) -> &Value {
        self.certificate.as_ref().unwrap_or_else(|| {
            panic!(
                "no certificate; stdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn check(&self, id: &str) -> &Value {
        self.cert()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}:\n{}", self.stdout))
    }

    /// Exit 0, every required check passed, and the certificate names the component by
    /// the digest of `wasm`.
    fn assert_certified(&self, wasm: &[u8], name: &str, world: &str, min_checks: usize) {
        assert_eq!(
            self.code,
            0,
            "conformance of {name} failed:\n{}\nstderr (tail):\n{}",
            self.stdout,
            tail(&self.stderr)
        );
        let cert = self.cert();
        let hex: String = Sha256::digest(wasm)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(cert["component"]["digest"], format!("sha256:{hex}"));
        assert_eq!(cert["component"]["size"], wasm.len());
        assert_eq!(cert["component"]["name"], name);
        assert_eq!(cert["component"]["world"], world);
        assert!(
            cert["component"]["contract"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        );
        assert_eq!(cert["summary"]["required_failed"], 0, "{}", self.stdout);
        let checks = cert["checks"].as_array().unwrap();
        assert!(
            checks.len() >= min_checks,
            "{} checks, expected at least {min_checks}:\n{}",
            checks.len(),
            self.stdout
        );
        for c in checks {
            for key in [
                "id",
                "category",
                "required",
                "result",
                "message",
                "duration_ms",
            ] {
                assert!(c.get(key).is_some(), "check without {key}: {c}");
            }
        }
        // One table line per check, then the summary.
        assert!(
            self.stdout
                .lines()
                .filter(|l| l.starts_with("PASS "))
                .count()
                == cert["summary"]["passed"].as_u64().unwrap() as usize,
            "{}",
            self.stdout
        );
        assert!(
            self.stdout
                .contains("CONFORMS: every required check passed"),
            "{}",
            self.stdout
        );
        let mut slowest: Vec<(u64, &str)> = checks
            .iter()
            .map(|c| {
                (
                    c["duration_ms"].as_u64().unwrap(),
                    c["id"].as_str().unwrap(),
                )
            })
            .collect();
        slowest.sort_unstable_by(|a, b| b.cmp(a));
        println!(
            "{name}: {} checks, {} ms, active-active {}; slowest {:?}",
            checks.len(),
            cert["duration_ms"],
            cert["active_active"],
            &slowest[..3]
        );
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs `ashlar conformance DRIVER --config DIR/ashlar.toml` with `config` written there.
fn conformance(dir: &Path, driver: &str, config: &str, extra: &[&str]) -> Run {
    let config_path = dir.join("ashlar.toml");
    std::fs::write(&config_path, config).unwrap();
    let cert_path = dir.join("certificate.json");
    let _ = std::fs::remove_file(&cert_path);
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .arg("conformance")
        .arg(driver)
        .arg("--config")
        .arg(&config_path)
        .arg("--certificate")
        .arg(&cert_path)
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ashlar conformance");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        certificate: std::fs::read(&cert_path)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("the certificate is JSON")),
    }
}

fn bundled(name: &str) -> &'static [u8] {
    ashlar::bundled::find(name).unwrap().wasm
}

fn nfs_config(share: &Path) -> String {
    let share = share.display();
    format!(
        r#"
[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du", "mv"]
grants.block = ["{share}"]
settings.share_path = "{share}"
"#
    )
}

#[test]
fn nfs_on_a_local_share_conforms_and_is_safe_active_active() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let run = conformance(tmp.path(), "nfs", &nfs_config(&share), &[]);
    run.assert_certified(bundled("nfs"), "nfs", "volume-driver", 90);
    let cert = run.cert();
    assert_eq!(cert["backend"], "backend local");
    assert_eq!(cert["summary"]["failed"], 0, "{}", run.stdout);
    assert_eq!(cert["active_active"]["safe"], true, "{}", run.stdout);
    assert!(run.stdout.contains("active-active: safe"));
    // Cinder's minimum features are required, and passed.
    for id in [
        "stats.get_volume_stats",
        "volume.create",
        "volume.delete.idempotent",
        "snapshot.create",
        "snapshot.delete.idempotent",
        "volume.from_snapshot",
        "volume.clone",
        "volume.extend",
        "connection.initialize",
        "connection.terminate.idempotent",
        "export.remove.idempotent",
        "sandbox.no_capabilities.refused",
        "cleanup.deleted",
    ] {
        let c = run.check(id);
        assert_eq!(c["required"], true, "{c}");
        assert_eq!(c["result"], "pass", "{c}");
    }
    for id in [
        "optional.revert_to_snapshot",
        "optional.manage_existing",
        "optional.health",
    ] {
        assert_eq!(run.check(id)["result"], "pass", "{}", run.check(id));
    }
    // Nothing is left on the share.
    let left: Vec<_> = std::fs::read_dir(&share)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left on the share: {left:?}");

    // --json prints the same certificate. Without the optional `mv` granted, managing is
    // not supported, and the call the driver tried is refused and reported.
    let without_mv = nfs_config(&share).replace(", \"mv\"", "");
    assert_ne!(without_mv, nfs_config(&share));
    let json = conformance(
        tmp.path(),
        "nfs",
        &without_mv,
        &["--json", "--no-active-active"],
    );
    assert_eq!(json.code, 0, "{}", json.stderr);
    let printed: Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(printed["component"]["digest"], cert["component"]["digest"]);
    assert!(printed["active_active"]["safe"].is_null());
    assert_eq!(printed, json.certificate.unwrap());
    let check = |id: &str| {
        printed["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(check("optional.manage_existing")["result"], "skip");
    let denials = check("sandbox.no_denials");
    assert_eq!(denials["result"], "warn", "{denials}");
    assert!(
        denials["message"]
            .as_str()
            .unwrap()
            .contains("did not grant"),
        "{denials}"
    );
}

#[test]
fn lvm_on_the_stand_ins_paired_with_iscsi_tgt_conforms() {
    let tgtd = Tgtd::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for sub in ["bin", "dev", "state"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("bin/standin.env"),
        format!(
            "VG=vgrec\nDEVDIR={}\nSTATE={}\nVG_SIZE={}\n",
            dir.join("dev").display(),
            dir.join("state").display(),
            100u64 << 30
        ),
    )
    .unwrap();
    // A removed LV's data goes at once (the recording tests keep it to look at).
    let standin = STANDIN.replace(
        r#"mv "$(dev "$name")" "$STATE/removed/$name""#,
        r#"rm -f "$(dev "$name")""#,
    );
    assert_ne!(standin, STANDIN);
    for program in LVM_PROGRAMS {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("bin").join(program);
        std::fs::write(&path, &standin).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let d = dir.display();
    let config = format!(
        r#"
[backends.lvm1]
driver = "lvm"
exec_dirs = ["{d}/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
grants.exec = {LVM_PROGRAMS:?}
grants.block = ["{d}/dev", "/dev/zero"]
settings.volume_group = "vgrec"
settings.device_dir = "{d}/dev"
settings.volume_clear = "none"

[backends.lvm1.target]
driver = "iscsi-tgt"
grants.exec = ["tgtadm"]
settings.target_ip_address = "127.0.0.1"
settings.target_port = "{port}"
settings.control_port = "{control}"
settings.backing_store_dir = "{d}/dev/vgrec"
"#,
        port = tgtd.port,
        control = tgtd.control_port,
    );
    let run = conformance(dir, "lvm", &config, &[]);
    run.assert_certified(bundled("lvm"), "lvm", "volume-driver", 90);
    assert_eq!(run.cert()["summary"]["failed"], 0, "{}", run.stdout);
    // The paired target exported the LV's device and answered iSCSI's keys.
    for id in [
        "connection.local",
        "target.create_export",
        "target.initialize_connection.keys",
    ] {
        assert_eq!(run.check(id)["result"], "pass", "{}", run.check(id));
    }
    assert!(!tgtd.targets().contains("volume-"), "{}", tgtd.targets());

    // The same backend certifies its target driver: iscsi-tgt exporting the lvm
    // driver's devices on the real tgtd.
    let run = conformance(dir, "iscsi-tgt", &config, &[]);
    run.assert_certified(bundled("iscsi-tgt"), "iscsi-tgt", "target-driver", 25);
    assert_eq!(run.cert()["backend"], "backend lvm1 target");
    assert!(
        run.check("target.device")["message"]
            .as_str()
            .unwrap()
            .contains("volume driver")
    );
    assert!(!tgtd.targets().contains("volume-"), "{}", tgtd.targets());
    let lvs: Vec<_> = std::fs::read_dir(dir.join("state/lvs")).unwrap().collect();
    assert!(lvs.is_empty(), "LVs left: {lvs:?}");
}

#[test]
fn san_rest_against_the_array_simulator_conforms() {
    let sim = ArraySim::start(&["--aggregate", "aggr1:100", "--portal", "127.0.0.1"]);
    let tmp = tempfile::tempdir().unwrap();
    let run = conformance(tmp.path(), "san-rest", &san_config(&sim, PASSWORD, ""), &[]);
    run.assert_certified(bundled("san-rest"), "san-rest", "volume-driver", 90);
    // Two hosts deleting one LUN at once: the loser's array job fails, and the driver
    // finds the LUN gone, so both deletes succeed.
    assert_eq!(run.cert()["summary"]["failed"], 0, "{}", run.stdout);
    assert_eq!(run.cert()["active_active"]["safe"], true, "{}", run.stdout);
    assert_eq!(run.check("connection.initialize.keys")["result"], "pass");
    assert!(
        run.check("connection.initialize.keys")["message"]
            .as_str()
            .unwrap()
            .starts_with("iscsi")
    );
}

#[test]
fn iscsi_tgt_on_a_real_tgtd_exporting_files_conforms() {
    let tgtd = Tgtd::start();
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let config = format!(
        "{}\n[backends.local.target]\ndriver = \"iscsi-tgt\"\ngrants.exec = [\"tgtadm\"]\n\
         settings.target_ip_address = \"127.0.0.1\"\nsettings.target_port = \"{}\"\n\
         settings.control_port = \"{}\"\nsettings.backing_store_dir = \"{}\"\n",
        nfs_config(&share),
        tgtd.port,
        tgtd.control_port,
        share.display()
    );
    let run = conformance(tmp.path(), "iscsi-tgt", &config, &[]);
    run.assert_certified(bundled("iscsi-tgt"), "iscsi-tgt", "target-driver", 25);
    for id in [
        "target.create_export.idempotent",
        "target.initialize_connection.keys",
        "target.terminate_connection.idempotent",
        "target.remove_export.idempotent",
        "target.reexport",
        "target.two_volumes",
    ] {
        assert_eq!(run.check(id)["result"], "pass", "{}", run.check(id));
    }
    assert_eq!(run.check("target.create_export.auth")["result"], "pass");
    assert!(!tgtd.targets().contains("volume-"), "{}", tgtd.targets());

    // The nfs driver paired with it certifies too, through the target.
    let run = conformance(tmp.path(), "nfs", &config, &["--no-active-active"]);
    run.assert_certified(bundled("nfs"), "nfs", "volume-driver", 80);
    assert_eq!(
        run.check("target.initialize_connection.keys")["result"],
        "pass"
    );
    let left: Vec<_> = std::fs::read_dir(&share)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left on the share: {left:?}");
}

#[test]
fn backup_posix_on_a_directory_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("backups");
    std::fs::create_dir(&store).unwrap();
    let config = format!(
        "[backup]\ndriver = \"backup-posix\"\ngrants.directory = [\"{s}\"]\nsettings.backup_path = \"{s}\"\n",
        s = store.display()
    );
    let run = conformance(tmp.path(), "backup-posix", &config, &[]);
    run.assert_certified(bundled("backup-posix"), "backup-posix", "backup-driver", 30);
    assert_eq!(run.cert()["backend"], "backup store");
    for id in [
        "objects.round_trip.large",
        "objects.list.paging",
        "objects.get.missing",
    ] {
        assert_eq!(run.check(id)["result"], "pass", "{}", run.check(id));
    }
}

#[test]
fn backup_s3_on_seaweedfs_conforms() {
    let weed = SeaweedFs::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[backup]\ndriver = \"backup-s3\"\ngrants.http = [\"{e}\"]\nsettings.endpoint = \"{e}\"\n\
         credentials.s3.access_key_id = \"{ACCESS_KEY_ID}\"\ncredentials.s3.secret_access_key = \"{SECRET_ACCESS_KEY}\"\n",
        e = weed.endpoint
    );
    let run = conformance(tmp.path(), "backup-s3", &config, &[]);
    if run.code != 0 {
        eprintln!("seaweedfs log:\n{}", weed.log());
    }
    run.assert_certified(bundled("backup-s3"), "backup-s3", "backup-driver", 30);
}

#[test]
fn a_driver_that_traps_fails_naming_its_required_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let flaky = Path::new(FIXTURES_DIR).join("flaky.wasm");
    let run = conformance(
        tmp.path(),
        flaky.to_str().unwrap(),
        &nfs_config(&share),
        &[],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, tail(&run.stderr));
    let create = run.check("volume.create");
    assert_eq!(create["result"], "fail");
    assert_eq!(create["required"], true);
    assert!(
        create["message"].as_str().unwrap().contains("trapped"),
        "{create}"
    );
    assert_eq!(run.check("sandbox.no_traps")["result"], "fail");
    assert!(run.cert()["summary"]["required_failed"].as_u64().unwrap() > 0);
    assert_eq!(run.cert()["active_active"]["safe"], false);
    let verdict = run.stdout.lines().last().unwrap();
    assert!(
        verdict.starts_with("DOES NOT CONFORM: required checks failed: volume.create,"),
        "{verdict}"
    );
    assert_eq!(
        run.cert()["component"]["digest"],
        format!(
            "sha256:{}",
            Sha256::digest(std::fs::read(&flaky).unwrap())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    );

    // A target driver that traps on every export.
    let config = format!(
        "{}\n[backends.local.target]\ndriver = \"iscsi-tgt\"\ngrants.exec = [\"tgtadm\"]\n",
        nfs_config(&share)
    );
    let broken = Path::new(FIXTURES_DIR).join("broken-target.wasm");
    let run = conformance(tmp.path(), broken.to_str().unwrap(), &config, &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, tail(&run.stderr));
    let export = run.check("target.create_export");
    assert_eq!(
        (export["result"].as_str(), export["required"].as_bool()),
        (Some("fail"), Some(true))
    );
    assert!(
        run.stdout.contains("target.create_export"),
        "{}",
        run.stdout
    );
}

#[test]
fn what_cannot_run_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path();
    // No backend pairs a target for a target driver to run on.
    let run = conformance(tmp.path(), "iscsi-tgt", &nfs_config(share), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no backend with a [backends.NAME.target] section"),
        "{}",
        run.stderr
    );
    assert!(run.certificate.is_none());
    // A backup driver runs on [backup], not on a backend.
    let run = conformance(
        tmp.path(),
        "backup-posix",
        &nfs_config(share),
        &["--backend", "local"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // Several, and none chosen.
    let two = format!(
        "{}{}",
        nfs_config(share),
        nfs_config(share).replace("backends.local", "backends.other")
    );
    let run = conformance(tmp.path(), "nfs", &two, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("choose one with --backend"),
        "{}",
        run.stderr
    );
    // A driver that is not there.
    let run = conformance(
        tmp.path(),
        "/nonexistent/driver.wasm",
        &nfs_config(share),
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}
