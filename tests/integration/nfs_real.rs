//! The nfs driver against a real NFS server and against a share's real failures.
//!
//! NFS: nfs-ganesha (FSAL VFS, NFSv3, with rpcbind) serves the share, and volumes are read
//! back with `qemu-io nfs://…` (qemu-block-extra's libnfs client) at a URL built only from
//! the connection info `os-initialize_connection` returned. There is no kernel NFS client
//! on these machines, so the driver's `share_path` is the exported directory itself: the
//! host sees the share as if it were mounted there.
//!
//! rpcbind must own port 111, and this Debian's rpcbind crashes when told to bind only
//! some addresses (`-h`), so every test runs its NFS peers in private network, mount and
//! PID namespaces: rpcbind and ganesha listen on that namespace's loopback only, `/run`
//! (rpcbind's socket and lock) is private, and tests run in parallel without a test group.
//! The namespace's first process dies with the test process (parent-death signal) and
//! takes every process in the namespace with it, so even a killed run leaves no rpcbind or
//! ganesha behind, and one left over by anything else cannot get in the way.
//!
//! Share failures: a small tmpfs mounted for the test is a real filesystem that fills up;
//! a directory with nothing mounted on it is a missing mount; a bind mount remounted
//! read-only is a read-only export.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, Server, write_at};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// The programs the driver runs, granted by name.
const GRANTS: &str = r#"grants.exec = ["qemu-img", "rm", "df", "du"]"#;

// ---- peers ----------------------------------------------------------------------------

/// The namespace's init: loopback up, a private `/run`, then nothing but waiting.
const NAMESPACE_INIT: &str = "set -e
ip link set lo up
# glibc's AI_ADDRCONFIG, which ganesha uses to resolve Bind_addr, finds no IPv4 address
# at all while loopback is the only one; this one is in a namespace nothing else reaches.
ip addr add 192.0.2.1/32 dev lo
mount -t tmpfs -o size=1m,mode=755 ashlar-nfs-run /run
exec sleep infinity";

/// rpcbind and nfs-ganesha exporting one directory, in their own namespaces.
struct NfsServer {
    /// `unshare`, holding the namespaces; killing it ends everything in them.
    anchor: Child,
    /// The namespace's init, as this host's PID namespace sees it (for `nsenter`).
    init: u32,
    daemons: Vec<Child>,
    dir: tempfile::TempDir,
}

impl NfsServer {
    /// Exports `export` over NFSv3 at `127.0.0.1:<export>` (inside the namespace) and
    /// returns once a client can list it.
    fn start(export: &Path) -> NfsServer {
        let dir = tempfile::tempdir().unwrap();
        let anchor = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .args(["unshare", "--net", "--mount", "--propagation", "private"])
            .args(["--pid", "--kill-child=KILL", "sh", "-c", NAMESPACE_INIT])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start unshare (util-linux)");
        let mut server = NfsServer {
            init: 0,
            anchor,
            daemons: Vec::new(),
            dir,
        };
        let anchor_pid = server.anchor.id();
        server.init = wait_for(
            Duration::from_secs(10),
            "the namespace to be set up",
            || {
                children(anchor_pid).into_iter().find(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.starts_with(b"sleep\0"))
                })
            },
        );

        server.spawn_daemon("rpcbind", &["-f"]);
        wait_for(Duration::from_secs(10), "rpcbind to answer", || {
            server
                .client("rpcinfo", &["-p", "127.0.0.1"])
                .status
                .success()
                .then_some(())
        });

        let conf = server.dir.path().join("ganesha.conf");
        std::fs::create_dir_all(server.dir.path().join("recovery")).unwrap();
        std::fs::write(&conf, ganesha_config(export, server.dir.path())).unwrap();
        let log = server.log_path();
        let pid_file = server.dir.path().join("ganesha.pid");
        server.spawn_daemon(
            "ganesha.nfsd",
            &[
                "-F",
                "-f",
                conf.to_str().unwrap(),
                "-L",
                log.to_str().unwrap(),
                "-p",
                pid_file.to_str().unwrap(),
            ],
        );
        let listing = format!("nfs://127.0.0.1{}", export.display());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.client("nfs-ls", &[&listing]).status.success() {
            assert!(
                Instant::now() < deadline,
                "ganesha did not serve {listing} within 20 s; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("ganesha.log")
    }

    fn spawn_daemon(&mut self, program: &str, args: &[&str]) {
        let child = Command::new("nsenter")
            .args([
                "-t",
                &self.init.to_string(),
                "-p",
                "-n",
                "-m",
                "--",
                program,
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        self.daemons.push(child);
    }

    /// Runs an NFS client in the server's network namespace, the only place its loopback
    /// address reaches.
    fn client(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-n", "--", program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    /// `len` bytes at `offset` of the image at `url`, read over NFS by qemu-io.
    fn read(&self, url: &str, format: &str, offset: u64, len: usize) -> Vec<u8> {
        let cmd = format!("read -v {offset} {len}");
        let out = self.client("qemu-io", &["-r", "-f", format, "-c", &cmd, url]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("read {len}/{len} bytes")),
            "qemu-io {cmd} {url}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_hexdump(&stdout, len)
    }

    /// Seconds `qemu-img bench` takes to read `mib` MiB of `target` in 1 MiB requests.
    fn bench_read(&self, target: &str, mib: u64, over_nfs: bool) -> f64 {
        let count = mib.to_string();
        let args = [
            "bench", "-f", "raw", "-c", &count, "-s", "1M", "-d", "4", target,
        ];
        let out = if over_nfs {
            self.client("qemu-img", &args)
        } else {
            Command::new("qemu-img").args(args).output().unwrap()
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "qemu-img bench {target}: {stdout}");
        stdout
            .split("Run completed in ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no timing in: {stdout}"))
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("--- last lines of the ganesha log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        // Ending the namespace's init ends every process in its PID namespace. Its parent
        // (`unshare`) and each daemon's (`nsenter`) then reap them and exit; killing those
        // first would leave zombies for PID 1 to collect.
        let deadline = Instant::now() + Duration::from_secs(5);
        if self.init != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.init.to_string()])
                .status();
        }
        while matches!(self.anchor.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
        for daemon in &mut self.daemons {
            while matches!(daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

fn ganesha_config(export: &Path, dir: &Path) -> String {
    format!(
        r#"NFS_CORE_PARAM {{
    Bind_addr = 127.0.0.1;
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSV4 {{
    Graceless = true;
    RecoveryRoot = {recovery};
}}
EXPORT {{
    Export_Id = 1;
    Path = {export};
    Pseudo = /ashlar;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    # The host writes the files directly too: no cached attributes.
    Attr_Expiration_Time = 0;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
"#,
        recovery = dir.join("recovery").display(),
        export = export.display(),
    )
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// qemu-io's `read -v` dump (`%08x:  xx xx … ascii`) → the bytes.
fn parse_hexdump(out: &str, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    for line in out.lines() {
        let Some((addr, rest)) = line.split_once(":  ") else {
            continue;
        };
        if addr.len() < 8 || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let n = (len - bytes.len()).min(16);
        for i in 0..n {
            let hex = rest.get(i * 3..i * 3 + 2).expect("a full dump line");
            bytes.push(u8::from_str_radix(hex, 16).expect("hex byte"));
        }
    }
    assert_eq!(bytes.len(), len, "dump cut short: {out}");
    bytes
}

/// The image's `nfs://` URL and format, from Cinder's NFS connection info and nothing else.
fn nfs_location(connection_info: &Value) -> (String, String) {
    assert_eq!(
        connection_info["driver_volume_type"], "nfs",
        "{connection_info}"
    );
    let data = &connection_info["data"];
    let export = data["export"].as_str().expect("export");
    let name = data["name"].as_str().expect("name");
    let format = data["format"].as_str().expect("format").to_string();
    let (host, path) = export
        .split_once(':')
        .unwrap_or_else(|| panic!("export `{export}` is not host:/path"));
    (
        format!("nfs://{host}{}/{name}", path.trim_end_matches('/')),
        format,
    )
}

/// A connector as os-brick sends it for an NFS attach.
fn connector() -> Value {
    json!({
        "host": "compute-1",
        "ip": "127.0.0.1",
        "initiator": null,
        "multipath": false,
        "platform": "x86_64",
        "os_type": "linux2",
    })
}

async fn initialize_connection(c: &Client, volume: &str) -> Value {
    let r = c
        .post(
            &format!("volumes/{volume}/action"),
            json!({"os-initialize_connection": {"connector": connector()}}),
        )
        .await;
    assert_eq!(r.status, 200, "initialize connection: {}", r.body);
    r.body["connection_info"].clone()
}

async fn terminate_connection(c: &Client, volume: &str) {
    let r = c
        .post(
            &format!("volumes/{volume}/action"),
            json!({"os-terminate_connection": {"connector": connector()}}),
        )
        .await;
    assert_eq!(r.status, 202, "terminate connection: {}", r.body);
}

async fn action(c: &Client, volume: &str, body: Value) {
    let r = c
        .post(&format!("volumes/{volume}/action"), body.clone())
        .await;
    assert_eq!(r.status, 202, "{body}: {}", r.body);
}

/// Writes `data` at `offset` of a volume's file on the share, as the guest would see it.
fn write_volume(file: &Path, format: &str, offset: u64, data: &[u8]) {
    if format == "raw" {
        return write_at(file, offset, data);
    }
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), data).unwrap();
    let cmd = format!("write -s {} {offset} {}", src.path().display(), data.len());
    let out = Command::new("qemu-io")
        .args(["-f", format, "-c", &cmd])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("wrote"),
        "qemu-io {cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- over NFS ---------------------------------------------------------------------------

/// Marks written before the snapshot (A) and after it (B), at the start, an odd offset in
/// the middle and the last block.
const MARKS: [u64; 3] = [0, GIB / 2 + 7, GIB - 4096];

fn mark(tag: &str, at: u64) -> Vec<u8> {
    format!("{tag}@{at:010}").into_bytes()
}

async fn volumes_over_nfs(format: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let nfs = NfsServer::start(&export);
    let server = Server::start(&format!(
        r#"
[backends.nas]
driver = "nfs"
{GRANTS}
settings.share_path = "{share}"
settings.nfs_export = "127.0.0.1:{share}"
settings.volume_format = "{format}"
"#,
        share = export.display()
    ));
    let c = server.client("alice:proj-a");

    let vol = c.create_volume(json!({"size": 1, "name": "nfs-a"})).await;
    c.wait_status("volumes", &vol, "available").await;
    let file = export.join(format!("volume-{vol}"));
    for at in MARKS {
        write_volume(&file, format, at, &mark("A", at));
    }

    // Attach as Nova does: reserve, connect, attach; the client reads what was written.
    action(&c, &vol, json!({"os-reserve": {}})).await;
    let ci = initialize_connection(&c, &vol).await;
    assert_eq!(ci["data"]["access_mode"], "rw", "{ci}");
    assert_eq!(ci["data"]["name"], format!("volume-{vol}"));
    let (url, fmt) = nfs_location(&ci);
    assert_eq!(fmt, format);
    action(
        &c,
        &vol,
        json!({"os-attach": {"instance_uuid": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
                             "mountpoint": "/dev/vdb"}}),
    )
    .await;
    assert_eq!(c.wait("volumes", &vol).await["status"], "in-use");
    for at in MARKS {
        let want = mark("A", at);
        assert_eq!(nfs.read(&url, &fmt, at, want.len()), want, "at {at}");
    }
    action(&c, &vol, json!({"os-begin_detaching": {}})).await;
    terminate_connection(&c, &vol).await;
    action(&c, &vol, json!({"os-detach": {}})).await;
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");

    // Snapshot, then new bytes: a volume from the snapshot reads the old ones over NFS, a
    // clone and the volume itself the new ones.
    let snap = c.snapshot_available(&vol).await;
    for at in MARKS {
        write_volume(&file, format, at, &mark("B", at));
    }
    let from_snap = c.create_volume(json!({"snapshot_id": snap})).await;
    c.wait_status("volumes", &from_snap, "available").await;
    let clone = c.create_volume(json!({"source_volid": vol})).await;
    c.wait_status("volumes", &clone, "available").await;
    for (id, tag) in [(&from_snap, "A"), (&clone, "B"), (&vol, "B")] {
        let ci = initialize_connection(&c, id).await;
        let (url, fmt) = nfs_location(&ci);
        assert_eq!(fmt, format);
        for at in MARKS {
            let want = mark(tag, at);
            assert_eq!(
                nfs.read(&url, &fmt, at, want.len()),
                want,
                "volume {id} at {at}"
            );
        }
        terminate_connection(&c, id).await;
    }

    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(c.wait("snapshots", &snap).await.is_null());
    for id in [&vol, &from_snap, &clone] {
        assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
        assert!(c.wait("volumes", id).await.is_null());
    }
    let listing = nfs.client("nfs-ls", &[&format!("nfs://127.0.0.1{}", export.display())]);
    assert!(listing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout).trim(),
        "",
        "the export is empty again"
    );
}

#[tokio::test]
async fn raw_volumes_read_over_nfs_from_their_connection_info() {
    volumes_over_nfs("raw").await;
}

#[tokio::test]
async fn qcow2_volumes_read_over_nfs_from_their_connection_info() {
    volumes_over_nfs("qcow2").await;
}

/// 256 MiB of a volume read over NFS (ganesha on loopback) are byte for byte the file on
/// the share. The read rates of both paths are printed for the record; nothing asserts a
/// speed.
#[tokio::test]
async fn a_large_volume_reads_the_same_over_nfs_as_locally() {
    const DATA_MIB: u64 = 256;
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let nfs = NfsServer::start(&export);
    let server = Server::start(&format!(
        r#"
[backends.nas]
driver = "nfs"
{GRANTS}
settings.share_path = "{share}"
settings.nfs_export = "127.0.0.1:{share}"
"#,
        share = export.display()
    ));
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let file = export.join(format!("volume-{vol}"));
    // Incompressible-looking data, so nothing on the way can take a shortcut.
    let mut chunk = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in chunk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for i in 0..DATA_MIB {
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        write_at(&file, i * MIB, &chunk);
    }

    let ci = initialize_connection(&c, &vol).await;
    let (url, _) = nfs_location(&ci);
    // Warm both paths once (page cache, ganesha's handles), then time each.
    nfs.bench_read(&url, DATA_MIB, true);
    let over_nfs = nfs.bench_read(&url, DATA_MIB, true);
    let local = nfs.bench_read(file.to_str().unwrap(), DATA_MIB, false);
    let rate = |secs: f64| DATA_MIB as f64 / secs.max(1e-6);
    println!(
        "read {DATA_MIB} MiB in 1 MiB requests, 4 in flight: over NFS {:.0} MiB/s ({over_nfs:.3} s), \
         local file {:.0} MiB/s ({local:.3} s)",
        rate(over_nfs),
        rate(local)
    );

    // What came over NFS is the volume's data.
    let out = nfs.client(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            &url,
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "over NFS and local differ: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        nfs.read(&url, "raw", 5 * MIB, 8),
        5u64.to_le_bytes().to_vec()
    );
    terminate_connection(&c, &vol).await;
}

// ---- the share's failures ---------------------------------------------------------------

/// A filesystem mounted for one test, unmounted when it ends.
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Mount {
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "ashlar-share",
            ],
            path,
        );
        Mount {
            path: path.to_path_buf(),
        }
    }

    fn bind(source: &Path, path: &Path) -> Mount {
        mount(&["--bind", source.to_str().unwrap()], path);
        Mount {
            path: path.to_path_buf(),
        }
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,bind,{options}")], &self.path);
    }

    fn unmount(&self) {
        let out = Command::new("umount").arg(&self.path).output().unwrap();
        assert!(
            out.status.success(),
            "umount {}: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazily, so a straggling reader cannot keep it; fails harmlessly if unmounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status();
    }
}

fn mount(args: &[&str], path: &Path) {
    let out = Command::new("mount").args(args).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_says(messages: &[String], wants: &[&str]) {
    let joined = messages.join("\n");
    for want in wants {
        assert!(joined.contains(want), "no `{want}` in messages:\n{joined}");
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A 64 MiB tmpfs is the share: real ENOSPC, real df figures. Thin 1 GiB volumes fit on
/// it on paper (over-subscription 100), so the scheduler passes them and the driver is the
/// one that sees the share cannot take what an operation would write.
#[tokio::test]
async fn a_full_share_answers_capacity_exceeded_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let _mount = Mount::tmpfs(&share, "64m");
    let server = Server::start(&format!(
        r#"
[backends.nas]
driver = "nfs"
{GRANTS}
settings.share_path = "{share}"
settings.nfs_export = "nas.example:/export/ashlar"
settings.require_mount = "true"
settings.max_over_subscription_ratio = "100"
"#,
        share = share.display()
    ));
    let c = server.client("alice:proj-a");

    // 40 MiB of data in a volume leaves about 24 MiB free.
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let file = share.join(format!("volume-{vol}"));
    let chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 + 1).collect();
    for i in 0..40 {
        write_at(&file, i * MIB, &chunk);
    }

    // A clone would copy those 40 MiB: refused before a byte is written, nothing left over.
    let clone = c.create_volume(json!({"source_volid": vol})).await;
    assert_eq!(c.wait("volumes", &clone).await["status"], "error");
    assert_says(
        &c.message_details_for(&clone).await,
        &[
            "capacity exceeded",
            &format!(
                "share {} (nas.example:/export/ashlar) is full",
                share.display()
            ),
            "usable of 64.0 MiB",
            "needs 40.0 MiB",
            "Free space on it (delete volumes and snapshots that are no longer needed), grow the export",
        ],
    );
    // A raw snapshot is such a copy too.
    let r = c
        .post("snapshots", json!({"snapshot": {"volume_id": vol}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.wait("snapshots", &snap).await["status"], "error");
    assert_says(
        &c.message_details_for(&snap).await,
        &["is full", "needs 40.0 MiB"],
    );
    assert_eq!(files_in(&share), vec![format!("volume-{vol}")]);

    // Something else fills the share to the last byte (ENOSPC ends the write): even a thin
    // volume is refused, since its first writes would fail.
    let filler = share.join("other-data");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let err = loop {
            if let Err(e) = f.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
    }
    let thin = c.create_volume(json!({"size": 1})).await;
    assert_eq!(c.wait("volumes", &thin).await["status"], "error");
    assert_says(
        &c.message_details_for(&thin).await,
        &[
            "capacity exceeded",
            "is full (0 bytes usable of 64.0 MiB)",
            "a thin 1 GiB volume needs room for its first writes",
        ],
    );

    // Doing what the message says works.
    std::fs::remove_file(&filler).unwrap();
    let again = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &again, "available").await;
}

/// A share that is not mounted (or does not exist) makes its backend report no pools with
/// the reason, the scheduler passes it by, and nothing is written to or deleted from the
/// empty directory under it. A bind mount stands for the NFS mount: unmounting it keeps the
/// data where it lives, as unmounting an NFS export does.
#[tokio::test]
async fn an_unmounted_share_is_passed_by_with_a_reason_an_operator_can_act_on() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    let backing = tmp.path().join("exported");
    let nowhere = tmp.path().join("nowhere");
    std::fs::create_dir(&share).unwrap();
    std::fs::create_dir(&backing).unwrap();
    let server = Server::start(&format!(
        r#"
stats_interval_secs = 1

[volume_types.nas]
volume_backend_name = "nas"

[volume_types.gone]
volume_backend_name = "gone"

[backends.local]
driver = "nfs"
{GRANTS}
settings.share_path = "@DIR@/data/volumes"

[backends.nas]
driver = "nfs"
{GRANTS}
settings.share_path = "{share}"
settings.nfs_export = "nas.example:/export/ashlar"
settings.require_mount = "true"

[backends.gone]
driver = "nfs"
{GRANTS}
settings.share_path = "{nowhere}"
"#,
        share = share.display(),
        nowhere = nowhere.display(),
    ));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:admin");
    let pools = || async {
        let r = admin.get("scheduler-stats/get_pools").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let listed = pools().await;
    assert!(
        listed
            .iter()
            .all(|p| !p.starts_with("ashlar@nas") && !p.starts_with("ashlar@gone")),
        "{listed:?}"
    );

    let unmounted = format!(
        "share {0} is not mounted: it is a plain directory{1}; mount the NFS export \
         nas.example:/export/ashlar at {0}, or set require_mount = false",
        share.display(),
        mount_point_of(&share)
    );
    let v = c
        .create_volume(json!({"size": 1, "volume_type": "nas"}))
        .await;
    assert_eq!(c.wait("volumes", &v).await["status"], "error");
    assert_says(
        &c.message_details_for(&v).await,
        &[
            "No valid backend was found",
            "ashlar@nas: stats unavailable",
            &unmounted,
        ],
    );
    let v = c
        .create_volume(json!({"size": 1, "volume_type": "gone"}))
        .await;
    assert_eq!(c.wait("volumes", &v).await["status"], "error");
    assert_says(
        &c.message_details_for(&v).await,
        &[&format!(
            "ashlar@gone: stats unavailable (backend unavailable: share {} does not exist on this host",
            nowhere.display()
        )],
    );
    assert!(
        files_in(&share).is_empty(),
        "nothing written under the mount point"
    );
    // Volumes with no type land on the backend that works.
    let ok = c.create_volume(json!({"size": 1})).await;
    let view = c.wait_status("volumes", &ok, "available").await;
    assert_eq!(view["id"], ok.as_str());

    // The operator mounts the share: the next stats poll brings the backend up.
    let mount = Mount::bind(&backing, &share);
    wait_until_pool(&pools, "ashlar@nas").await;
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "nas"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    assert_eq!(files_in(&backing), vec![format!("volume-{vol}")]);

    // Mounted read-only: a create says so, and what to do.
    mount.remount("ro");
    let ro = c
        .create_volume(json!({"size": 1, "volume_type": "nas"}))
        .await;
    assert_eq!(c.wait("volumes", &ro).await["status"], "error");
    assert_says(
        &c.message_details_for(&ro).await,
        &[
            "backend unavailable",
            &format!("share {} is read-only", share.display()),
            "mount the export nas.example:/export/ashlar read-write",
        ],
    );
    mount.remount("rw");

    // Unmounted under a volume: its delete fails with the reason and the file stays on the
    // export, instead of `rm -f` of a path that is not there "succeeding".
    mount.unmount();
    assert_eq!(c.delete(&format!("volumes/{vol}")).await.status, 202);
    assert_eq!(c.wait("volumes", &vol).await["status"], "error_deleting");
    assert_says(
        &c.message_details_for(&vol).await,
        &["delete volume:", "backend unavailable", &unmounted],
    );
    assert_eq!(files_in(&backing), vec![format!("volume-{vol}")]);

    // Recovery, as a Cinder operator does it: a plain delete is refused from
    // error_deleting, a force delete is for administrators, and once the share is back
    // the administrator's force delete removes the volume and its file.
    let r = c.delete(&format!("volumes/{vol}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("error_deleting"),
        "{}",
        r.error_message()
    );
    let force = json!({"os-force_delete": {}});
    let r = c
        .post(&format!("volumes/{vol}/action"), force.clone())
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let admin = server.client("admin:admin");
    let r = admin
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-reset_status": {"status": "mended"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("available"),
        "{}",
        r.error_message()
    );
    let _remounted = Mount::bind(&backing, &share);
    let r = admin.post(&format!("volumes/{vol}/action"), force).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let gone = c.get(&format!("volumes/{vol}")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = gone.status;
    while status != 404 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = c.get(&format!("volumes/{vol}")).await.status;
    }
    assert_eq!(status, 404, "the force-deleted volume is gone");
    assert!(files_in(&backing).is_empty(), "{:?}", files_in(&backing));

    // os-reset_status sets what the administrator says, without calling the driver.
    let r = admin
        .post(
            &format!("volumes/{ro}/action"),
            json!({"os-reset_status": {"status": "available"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        c.get(&format!("volumes/{ro}")).await.body["volume"]["status"],
        "available"
    );
}

/// How `df` names the filesystem and mount point holding an unmounted `dir`, as the
/// driver's message words it.
fn mount_point_of(dir: &Path) -> String {
    let out = Command::new("df")
        .args(["-P", "-B", "1"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("df line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    format!(" on {} (mounted at {})", fields[0], fields[5..].join(" "))
}

async fn wait_until_pool<F, Fut>(pools: &F, prefix: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = pools().await;
        if listed.iter().any(|p| p.starts_with(prefix)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix} pool after 15 s: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn hexdumps_parse_back_to_bytes() {
    let out = "00000000:  41 2d 40 30 30 30 30 30 30 30 30 30 30 00 01 02  A.0000000000....\n\
               00000010:  ff 7e  ..\n\
               read 18/18 bytes at offset 0\n";
    let mut want = b"A-@0000000000".to_vec();
    want.extend([0, 1, 2, 0xff, 0x7e]);
    assert_eq!(parse_hexdump(out, 18), want);
    let (url, format) = nfs_location(&json!({
        "driver_volume_type": "nfs",
        "data": {"export": "127.0.0.1:/srv/nfs/", "name": "volume-1", "format": "qcow2"}
    }));
    assert_eq!(url, "nfs://127.0.0.1/srv/nfs/volume-1");
    assert_eq!(format, "qcow2");
}

/// Paired with a target driver, the host asks for the volume's file to export as a block
/// device; a qcow2 file is not one, and the driver says so rather than let the target hand
/// qcow2 metadata to the initiator as the volume's first bytes. (No tgtd runs: the volume
/// driver answers before the target is asked anything.)
#[tokio::test]
async fn a_qcow2_volume_is_not_handed_to_a_target_as_a_block_device() {
    let server = Server::start(&format!(
        r#"
[backends.q]
driver = "nfs"
{GRANTS}
settings.share_path = "@DIR@/data/volumes"
settings.volume_format = "qcow2"

[backends.q.target]
driver = "iscsi-tgt"
grants.exec = ["tgtadm"]
settings.target_ip_address = "127.0.0.1"
settings.target_port = "3260"
settings.control_port = "1"
settings.backing_store_dir = "@DIR@/data/volumes"
"#
    ));
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-initialize_connection": {"connector": connector()}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // The tenant reads Cinder's words; the operator's log has the driver's advice.
    let msg = r.error_message();
    assert!(
        msg.starts_with("Unable to initialize the connection") && !msg.contains("qcow2"),
        "{msg}"
    );
    assert!(
        server
            .logged_with(
                r.request_id(),
                &[
                    &format!("volume-{vol} is a qcow2 file"),
                    "pair this backend with a target only with volume_format = raw"
                ]
            )
            .await,
        "no log line with {} and the driver's advice",
        r.request_id()
    );
}
