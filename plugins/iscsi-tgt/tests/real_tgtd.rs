//! The driver's logic against a real tgtd, natively: the same tgtadm command lines the
//! component sends through the exec host call, run here as processes, and a real
//! user-space iSCSI initiator (qemu-img / qemu-io over libiscsi) logging in with CHAP.
//!
//! Each test starts its own tgtd on a free loopback port with a control port of its own,
//! so tests run in parallel.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ashlar_plugin_iscsi_tgt::tgtadm::{TargetInfo, parse_show};
use ashlar_plugin_iscsi_tgt::{Chap, Settings, System, Target};
use ashlar_sdk::exec::{ExecError, Output};
use ashlar_sdk::log::Level;
use ashlar_sdk::{Connector, DriverError, Value, Volume};

/// A tgtd of the test's own, stopped on drop.
struct Tgtd {
    child: Child,
    port: u16,
    control_port: u16,
    /// Serving with our portal: the control port is ours to stop and clean up.
    serving: bool,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A control port no other tgtd on this machine uses (tgtd refuses one that is taken).
fn control_port_candidate() -> u16 {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mixed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos)
        .wrapping_add(n * 7919);
    // tgtadm takes control ports up to 32767.
    20_000 + (mixed % 12_000) as u16
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tgtadm(control_port: u16, args: &[&str]) -> std::process::Output {
    Command::new("tgtadm")
        .arg("-C")
        .arg(control_port.to_string())
        .args(args)
        .output()
        .expect("run tgtadm (install tgt)")
}

impl Tgtd {
    fn start() -> Tgtd {
        for _ in 0..10 {
            let (port, control_port) = (free_port(), control_port_candidate());
            if Path::new(&format!("/var/run/tgtd/socket.{control_port}.lock")).exists()
                && tgtadm(control_port, &["--op", "show", "--mode", "system"])
                    .status
                    .success()
            {
                continue;
            }
            let child = Command::new("tgtd")
                .args(["--iscsi", &format!("portal=127.0.0.1:{port}"), "-f", "-C"])
                .arg(control_port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tgtd (install tgt)");
            let mut tgtd = Tgtd {
                child,
                port,
                control_port,
                serving: false,
            };
            tgtd.serving = tgtd.wait_serving();
            if tgtd.serving {
                return tgtd;
            }
            // Port or control port taken by someone else between our look and tgtd's bind.
            drop(tgtd);
        }
        panic!("could not start a tgtd on a free port in 10 tries");
    }

    /// True once tgtd answers on its control port with our portal bound.
    fn wait_serving(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = format!("Portal: 127.0.0.1:{},1", self.port);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let out = tgtadm(
                self.control_port,
                &["--lld", "iscsi", "--op", "show", "--mode", "portal"],
            );
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).contains(&want);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn targets(&self) -> Vec<TargetInfo> {
        let out = tgtadm(
            self.control_port,
            &["--lld", "iscsi", "--op", "show", "--mode", "target"],
        );
        assert!(out.status.success(), "{out:?}");
        parse_show(&String::from_utf8_lossy(&out.stdout)).unwrap()
    }

    fn accounts(&self) -> Vec<String> {
        let out = tgtadm(
            self.control_port,
            &["--lld", "iscsi", "--op", "show", "--mode", "account"],
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1) // "Account list:"
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        if !self.serving {
            // It never served: the control port may be another tgtd's; leave that alone.
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        // tgtd ignores SIGTERM: ask it to stop, then make sure.
        let _ = tgtadm(self.control_port, &["--op", "delete", "--mode", "system"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
        // tgtd leaves its control socket and lock file behind.
        for suffix in ["", ".lock"] {
            let _ = std::fs::remove_file(format!(
                "/var/run/tgtd/socket.{}{suffix}",
                self.control_port
            ));
        }
    }
}

/// Runs the real tgtadm; keeps every log line for the secrecy checks.
#[derive(Clone, Default)]
struct Processes {
    logs: Arc<Mutex<Vec<String>>>,
}

impl System for Processes {
    fn tgtadm(&mut self, args: &[String]) -> Result<Output, ExecError> {
        let out = Command::new("tgtadm")
            .args(args)
            .output()
            .map_err(|e| ExecError::NotInstalled(e.to_string()))?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
    fn log(&mut self, _level: Level, message: &str) {
        self.logs.lock().unwrap().push(message.to_string());
    }
}

struct Setup {
    tgtd: Tgtd,
    dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            tgtd: Tgtd::start(),
            dir: tempfile::tempdir().unwrap(),
            logs: Arc::default(),
        }
    }

    fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let port = self.tgtd.port.to_string();
        let control = self.tgtd.control_port.to_string();
        let dir = self.dir.path().to_str().unwrap().to_string();
        let mut pairs = vec![
            ("target_ip_address", "127.0.0.1"),
            ("target_port", port.as_str()),
            ("control_port", control.as_str()),
            ("backing_store_dir", dir.as_str()),
        ];
        pairs.extend_from_slice(extra);
        Settings::from_config(|k| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn target(&self, extra: &[(&str, &str)]) -> Target<Processes> {
        Target::new(
            self.settings(extra),
            Processes {
                logs: self.logs.clone(),
            },
        )
    }

    /// A 1 MiB volume file whose first 4 KiB are 0x5a.
    fn volume_file(&self, id: &str) -> PathBuf {
        let path = self.dir.path().join(format!("volume-{id}"));
        let mut data = vec![0u8; 1 << 20];
        data[..4096].fill(0x5a);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn portal(&self) -> String {
        format!("127.0.0.1:{}", self.tgtd.port)
    }

    fn assert_no_secret_logged(&self, secret: &str) {
        let logs = self.logs.lock().unwrap();
        assert!(!logs.is_empty(), "the driver logged nothing");
        for line in logs.iter() {
            assert!(!line.contains(secret), "the CHAP secret was logged: {line}");
        }
    }
}

fn volume(id: &str, provider_auth: Option<String>) -> Volume {
    Volume {
        id: id.to_string(),
        display_name: None,
        size_gib: 1,
        provider_location: None,
        provider_auth,
        volume_type_name: None,
        extra_specs: vec![],
        pool: None,
        qos_specs: vec![],
    }
}

fn connector(initiator: &str) -> Connector {
    Connector {
        host: "compute-1".into(),
        ip: Some("127.0.0.1".into()),
        initiator: Some(initiator.into()),
        multipath: false,
        platform: None,
        os_type: None,
        extra: vec![],
    }
}

fn unique_id(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn text<'a>(data: &'a [(String, Value)], key: &str) -> &'a Value {
    &data
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("connection info has no {key}: {data:?}"))
        .1
}

/// How the initiator logs in: its name, and CHAP credentials if any.
struct Login<'a> {
    portal: &'a str,
    iqn: &'a str,
    initiator: &'a str,
    chap: Option<(&'a str, &'a str)>,
}

impl Login<'_> {
    fn image_opts(&self) -> (Vec<String>, String) {
        let mut opts = format!(
            "driver=iscsi,transport=tcp,portal={},target={},lun=1,initiator-name={}",
            self.portal, self.iqn, self.initiator
        );
        let mut object = Vec::new();
        if let Some((user, secret)) = self.chap {
            opts.push_str(&format!(",user={user},password-secret=chap"));
            object = vec![
                "--object".to_string(),
                format!("secret,id=chap,data={secret}"),
            ];
        }
        (object, opts)
    }

    /// Reads the whole LUN through the initiator.
    fn read(&self, out: &Path) -> Result<Vec<u8>, String> {
        let (object, opts) = self.image_opts();
        let res = Command::new("qemu-img")
            .arg("convert")
            .args(&object)
            .args(["--image-opts", &opts, "-O", "raw"])
            .arg(out)
            .output()
            .expect("qemu-img");
        if !res.status.success() {
            return Err(String::from_utf8_lossy(&res.stderr).into_owned());
        }
        Ok(std::fs::read(out).unwrap())
    }

    /// Writes 4 KiB of `byte` at `offset` through the initiator.
    fn write(&self, offset: u64, byte: u8) -> Result<(), String> {
        let (object, opts) = self.image_opts();
        let res = Command::new("qemu-io")
            .args(&object)
            .args(["--image-opts", &opts, "-c"])
            .arg(format!("write -P {byte:#x} {offset} 4096"))
            .output()
            .expect("qemu-io");
        let stdout = String::from_utf8_lossy(&res.stdout);
        if !res.status.success() || !stdout.contains("wrote 4096/4096 bytes") {
            return Err(format!(
                "{}{}",
                stdout,
                String::from_utf8_lossy(&res.stderr)
            ));
        }
        Ok(())
    }
}

fn refused(r: Result<Vec<u8>, String>, why: &str) {
    match r {
        Ok(_) => panic!("the initiator got in ({why})"),
        Err(e) => assert!(
            e.contains("Authentication failure") || e.contains("Target not found"),
            "{why}: unexpected error {e}"
        ),
    }
}

#[test]
fn export_attach_read_write_detach_remove_through_a_real_initiator() {
    let s = Setup::new();
    let mut t = s.target(&[]);
    let id = unique_id("life");
    let path = s.volume_file(&id);
    let mut vol = volume(&id, None);

    let auth = t
        .create_export(&vol, path.to_str().unwrap())
        .unwrap()
        .expect("CHAP credentials");
    let chap = Chap::parse(&auth).expect("provider_auth is `CHAP user secret`");
    vol.provider_auth = Some(auth.clone());
    let iqn = format!("iqn.2010-10.org.openstack:volume-{id}");
    let targets = s.tgtd.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].iqn, iqn);
    assert_eq!(
        targets[0].backing_store(1),
        Some(Some(path.to_str().unwrap()))
    );
    assert_eq!(targets[0].accounts, [chap.user.as_str()]);
    assert!(targets[0].acl.is_empty(), "a fresh export admits nobody");

    // Nobody is on the ACL yet: even the right secret is refused.
    let portal = s.portal();
    let host_a = "iqn.2024-01.test.ashlar:host-a";
    let login = Login {
        portal: &portal,
        iqn: &iqn,
        initiator: host_a,
        chap: Some((&chap.user, &chap.secret)),
    };
    let out = s.dir.path().join("read.raw");
    refused(login.read(&out), "no ACL entry yet");

    let info = t.initialize_connection(&vol, &connector(host_a)).unwrap();
    assert_eq!(info.driver_volume_type, "iscsi");
    let mut keys: Vec<&str> = info.data.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "auth_method",
            "auth_password",
            "auth_username",
            "target_discovered",
            "target_iqn",
            "target_lun",
            "target_portal",
            "volume_id"
        ]
    );
    assert_eq!(text(&info.data, "target_iqn"), &Value::Text(iqn.clone()));
    assert_eq!(
        text(&info.data, "target_portal"),
        &Value::Text(portal.clone())
    );
    assert_eq!(text(&info.data, "target_lun"), &Value::Integer(1));
    assert_eq!(text(&info.data, "target_discovered"), &Value::Flag(false));
    assert_eq!(text(&info.data, "auth_method"), &Value::Text("CHAP".into()));
    assert_eq!(
        text(&info.data, "auth_username"),
        &Value::Text(chap.user.clone())
    );
    assert_eq!(
        text(&info.data, "auth_password"),
        &Value::Text(chap.secret.clone())
    );
    assert_eq!(text(&info.data, "volume_id"), &Value::Text(id.clone()));

    // The host's bytes come out of the LUN, and the initiator's land in the file.
    let lun = login.read(&out).expect("read the LUN with CHAP");
    assert_eq!(lun.len(), 1 << 20);
    assert!(lun[..4096].iter().all(|b| *b == 0x5a));
    assert!(lun[4096..].iter().all(|b| *b == 0));
    login.write(8192, 0xa5).expect("write through the LUN");
    let file = std::fs::read(&path).unwrap();
    assert!(file[8192..12288].iter().all(|b| *b == 0xa5));
    assert!(file[..4096].iter().all(|b| *b == 0x5a));

    // A wrong secret, an unknown user, and another initiator are all refused.
    let wrong = Login {
        chap: Some((&chap.user, "WrongSecret12345")),
        ..login
    };
    refused(wrong.read(&out), "wrong CHAP secret");
    let nochap = Login {
        chap: None,
        ..login
    };
    refused(nochap.read(&out), "no CHAP at all");
    let host_b = "iqn.2024-01.test.ashlar:host-b";
    let other = Login {
        initiator: host_b,
        ..login
    };
    refused(other.read(&out), "initiator not on the ACL");

    // Attaching twice is harmless; a second host may attach too.
    t.initialize_connection(&vol, &connector(host_a)).unwrap();
    t.initialize_connection(&vol, &connector(host_b)).unwrap();
    other.read(&out).expect("host-b attached");
    assert_eq!(s.tgtd.targets()[0].acl, [host_a, host_b]);

    // Detaching host-a shuts it out and leaves host-b in.
    t.terminate_connection(&vol, Some(&connector(host_a)))
        .unwrap();
    refused(login.read(&out), "after terminate_connection");
    other.read(&out).expect("host-b still attached");
    t.terminate_connection(&vol, Some(&connector(host_a)))
        .unwrap();

    // Force detach (no connector) shuts everyone out.
    t.initialize_connection(&vol, &connector(host_a)).unwrap();
    t.terminate_connection(&vol, None).unwrap();
    assert!(s.tgtd.targets()[0].acl.is_empty());
    refused(login.read(&out), "after force detach");
    refused(other.read(&out), "after force detach");

    t.remove_export(&vol).unwrap();
    assert!(s.tgtd.targets().is_empty());
    assert!(s.tgtd.accounts().is_empty(), "the CHAP account is gone");
    t.remove_export(&vol).unwrap();
    t.terminate_connection(&vol, None).unwrap();
    match t.initialize_connection(&vol, &connector(host_a)) {
        Err(DriverError::NotFound(m)) => {
            assert!(
                m.contains(&iqn) && m.contains("create its export again"),
                "{m}"
            )
        }
        other => panic!("expected not-found, got {other:?}"),
    }
    assert!(
        std::fs::read(&path).unwrap()[8192] == 0xa5,
        "the data stays"
    );
    s.assert_no_secret_logged(&chap.secret);
}

#[test]
fn exporting_again_is_idempotent_and_repairs_a_lost_or_tampered_target() {
    let s = Setup::new();
    let mut t = s.target(&[]);
    let id = unique_id("again");
    let path = s.volume_file(&id);
    let path = path.to_str().unwrap();
    let mut vol = volume(&id, None);
    let auth = t.create_export(&vol, path).unwrap().unwrap();
    vol.provider_auth = Some(auth.clone());
    let before = s.tgtd.targets();

    // Same volume, same credentials: nothing changes.
    assert_eq!(t.create_export(&vol, path).unwrap(), Some(auth.clone()));
    assert_eq!(s.tgtd.targets(), before);

    // A stale account on the target is dropped (it would let its holder in).
    let c = s.tgtd.control_port;
    let tid = before[0].tid.to_string();
    for args in [
        &[
            "--lld",
            "iscsi",
            "--mode",
            "account",
            "--op",
            "new",
            "--user",
            "intruder",
            "--password",
            "Intruder12345",
        ][..],
        &[
            "--lld", "iscsi", "--mode", "account", "--op", "bind", "--tid", &tid, "--user",
            "intruder",
        ],
    ] {
        assert!(tgtadm(c, args).status.success());
    }
    assert_eq!(t.create_export(&vol, path).unwrap(), Some(auth.clone()));
    assert_eq!(s.tgtd.targets(), before);
    assert!(!s.tgtd.accounts().contains(&"intruder".to_string()));

    // tgtd forgot everything (as after a restart): exporting again brings back the target
    // with the credentials the volume already has, and they work.
    let chap = Chap::parse(&auth).unwrap();
    assert!(
        tgtadm(
            c,
            &[
                "--lld", "iscsi", "--mode", "target", "--op", "delete", "--force", "--tid", &tid
            ]
        )
        .status
        .success()
    );
    assert!(
        tgtadm(
            c,
            &[
                "--lld", "iscsi", "--mode", "account", "--op", "delete", "--user", &chap.user
            ]
        )
        .status
        .success()
    );
    assert_eq!(t.create_export(&vol, path).unwrap(), Some(auth.clone()));
    let iqn = format!("iqn.2010-10.org.openstack:volume-{id}");
    let initiator = "iqn.2024-01.test.ashlar:again";
    t.initialize_connection(&vol, &connector(initiator))
        .unwrap();
    let portal = s.portal();
    let login = Login {
        portal: &portal,
        iqn: &iqn,
        initiator,
        chap: Some((&chap.user, &chap.secret)),
    };
    login
        .read(&s.dir.path().join("out.raw"))
        .expect("the recorded credentials work on the recreated target");

    // Half an export (target without LUN or account, as after a crash mid-way) is completed.
    t.remove_export(&vol).unwrap();
    assert!(
        tgtadm(
            c,
            &[
                "--lld",
                "iscsi",
                "--mode",
                "target",
                "--op",
                "new",
                "--tid",
                "9",
                "--targetname",
                &iqn
            ]
        )
        .status
        .success()
    );
    assert_eq!(t.create_export(&vol, path).unwrap(), Some(auth.clone()));
    let now = s.tgtd.targets();
    assert_eq!(now[0].tid, 9);
    assert_eq!(now[0].backing_store(1), Some(Some(path)));
    assert_eq!(now[0].accounts, [chap.user.as_str()]);

    // Exporting the volume from another file while it is exported is refused.
    let other = s.volume_file(&format!("{id}-b"));
    match t.create_export(&vol, other.to_str().unwrap()) {
        Err(DriverError::InvalidArgument(m)) => {
            assert!(m.contains("remove the export first"), "{m}")
        }
        r => panic!("expected invalid-argument, got {r:?}"),
    }
    t.remove_export(&vol).unwrap();
    s.assert_no_secret_logged(&chap.secret);
}

#[test]
fn concurrent_exports_get_targets_of_their_own() {
    let s = Setup::new();
    let ids: Vec<String> = (0..6).map(|_| unique_id("par")).collect();
    for id in &ids {
        s.volume_file(id);
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        for id in &ids {
            let mut t = s.target(&[]);
            let path = s.dir.path().join(format!("volume-{id}"));
            scope.spawn(move || {
                t.create_export(&volume(id, None), path.to_str().unwrap())
                    .unwrap()
            });
        }
    });
    eprintln!("6 concurrent exports took {:?}", started.elapsed());
    let targets = s.tgtd.targets();
    assert_eq!(targets.len(), 6);
    let mut tids: Vec<u32> = targets.iter().map(|t| t.tid).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), 6);
    for t in &targets {
        assert_eq!(t.accounts.len(), 1, "{t:?}");
        assert!(matches!(t.backing_store(1), Some(Some(_))), "{t:?}");
    }
    assert_eq!(s.tgtd.accounts().len(), 6);
    std::thread::scope(|scope| {
        for id in &ids {
            let mut t = s.target(&[]);
            scope.spawn(move || t.remove_export(&volume(id, None)).unwrap());
        }
    });
    assert!(s.tgtd.targets().is_empty());
    assert!(s.tgtd.accounts().is_empty());
}

#[test]
fn without_chap_the_acl_alone_guards_the_target() {
    let s = Setup::new();
    let mut t = s.target(&[("use_chap_auth", "false")]);
    let id = unique_id("nochap");
    let path = s.volume_file(&id);
    let vol = volume(&id, None);
    assert_eq!(t.create_export(&vol, path.to_str().unwrap()).unwrap(), None);
    assert!(s.tgtd.targets()[0].accounts.is_empty());
    let initiator = "iqn.2024-01.test.ashlar:nochap";
    let info = t
        .initialize_connection(&vol, &connector(initiator))
        .unwrap();
    assert!(info.data.iter().all(|(k, _)| !k.starts_with("auth_")));
    let (portal, iqn) = (s.portal(), format!("iqn.2010-10.org.openstack:volume-{id}"));
    let login = Login {
        portal: &portal,
        iqn: &iqn,
        initiator,
        chap: None,
    };
    let out = s.dir.path().join("out.raw");
    assert!(login.read(&out).unwrap()[..4096].iter().all(|b| *b == 0x5a));
    t.terminate_connection(&vol, Some(&connector(initiator)))
        .unwrap();
    refused(login.read(&out), "after terminate_connection");
    t.remove_export(&vol).unwrap();
}

#[test]
fn failures_say_what_went_wrong_and_leave_nothing_behind() {
    let s = Setup::new();
    let mut t = s.target(&[]);
    let id = unique_id("fail");
    let vol = volume(&id, None);

    // Outside backing_store_dir: refused before tgtd is asked.
    match t.create_export(&vol, "/etc/shadow") {
        Err(DriverError::InvalidArgument(m)) => assert!(m.contains("backing_store_dir"), "{m}"),
        r => panic!("expected invalid-argument, got {r:?}"),
    }
    // A file tgtd cannot open: the target made for it is taken down again.
    let missing = s.dir.path().join(format!("volume-{id}"));
    match t.create_export(&vol, missing.to_str().unwrap()) {
        Err(DriverError::Internal(m)) => assert!(m.contains("does it exist"), "{m}"),
        r => panic!("expected internal, got {r:?}"),
    }
    assert!(s.tgtd.targets().is_empty());
    assert!(s.tgtd.accounts().is_empty());

    match t.initialize_connection(&vol, &connector("iqn.2024-01.test.ashlar:x")) {
        Err(DriverError::NotFound(_)) => {}
        r => panic!("expected not-found, got {r:?}"),
    }
    let mut nameless = connector("x");
    nameless.initiator = None;
    match t.initialize_connection(&vol, &nameless) {
        Err(DriverError::InvalidArgument(m)) => assert!(m.contains("initiator"), "{m}"),
        r => panic!("expected invalid-argument, got {r:?}"),
    }
    // An export whose volume lost its recorded credentials cannot hand them out.
    let path = s.volume_file(&id);
    t.create_export(&vol, path.to_str().unwrap()).unwrap();
    match t.initialize_connection(&vol, &connector("iqn.2024-01.test.ashlar:x")) {
        Err(DriverError::Internal(m)) => assert!(m.contains("provider_auth"), "{m}"),
        r => panic!("expected internal, got {r:?}"),
    }
    t.remove_export(&vol).unwrap();
}

#[test]
fn a_tgtd_that_is_not_running_is_backend_unavailable() {
    // A control port nobody serves (no tgtd needed for this one).
    let port = (0..100)
        .map(|_| control_port_candidate())
        .find(|p| !Path::new(&format!("/var/run/tgtd/socket.{p}")).exists())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_config(|k| match k {
        "target_ip_address" => Some("127.0.0.1".into()),
        "control_port" => Some(port.to_string()),
        "backing_store_dir" => Some(dir.path().to_str().unwrap().into()),
        _ => None,
    })
    .unwrap();
    let mut t = Target::new(settings, Processes::default());
    match t.check() {
        Err(DriverError::BackendUnavailable(m)) => {
            assert!(m.contains(&format!("control port {port}")), "{m}");
            assert!(m.contains("start it"), "{m}");
        }
        r => panic!("expected backend-unavailable, got {r:?}"),
    }
}
