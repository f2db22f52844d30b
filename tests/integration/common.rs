//! A real `ashlar serve` in a temp dir, and a small Cinder API client.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// When `ASHLAR_TEST_POSTGRES` names a PostgreSQL server (`scripts/test.sh` runs the API
/// test modules a second time so), the database on it for the server in `dir`: made on
/// the first start, found again on a restart.
pub fn postgres_database_for(dir: &Path) -> Option<String> {
    let server = std::env::var("ASHLAR_TEST_POSTGRES").ok()?;
    let remembered = dir.join("postgres_url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return Some(url);
    }
    let url = create_database(&server);
    std::fs::write(&remembered, &url).unwrap();
    Some(url)
}

/// A new database with a name of its own on the PostgreSQL server `server` (a URL naming
/// any database on it); its URL.
pub fn create_database(server: &str) -> String {
    let name = format!("it_{}", uuid::Uuid::new_v4().simple());
    psql(server, &format!("CREATE DATABASE {name}"));
    let (base, _) = server.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
}

/// Runs one SQL statement on `database` with psql; its output, unaligned.
pub fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([database, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A PostgreSQL server for tests that need one: the run's (`ASHLAR_TEST_POSTGRES_SERVER`,
/// which scripts/test.sh starts), else one started for this test by scripts/postgres.sh
/// and stopped with it.
pub struct PgServer {
    pub url: String,
    own: Option<tempfile::TempDir>,
}

const POSTGRES_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");

impl PgServer {
    pub fn get() -> PgServer {
        if let Ok(url) = std::env::var("ASHLAR_TEST_POSTGRES_SERVER") {
            return PgServer { url, own: None };
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {POSTGRES_SH} && postgres_start {} {port}",
                dir.path().display()
            ))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "starting PostgreSQL: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PgServer {
            url: format!("postgres://ashlar@127.0.0.1:{port}/postgres"),
            own: Some(dir),
        }
    }

    /// A new, empty database on this server.
    pub fn database(&self) -> String {
        create_database(&self.url)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let _ = Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "source {POSTGRES_SH} && postgres_stop {}",
                    dir.path().display()
                ))
                .status();
        }
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the bundled nfs driver to `dir` as a different version of itself.
pub fn nfs_as_version(dir: &std::path::Path, version: &str) -> std::path::PathBuf {
    let nfs = ashlar::bundled::find("nfs").unwrap();
    let wasm = dir.join(format!("nfs-{version}.wasm"));
    std::fs::write(&wasm, nfs.wasm).unwrap();
    let manifest = nfs
        .manifest
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    assert!(manifest.contains(version));
    std::fs::write(wasm.with_extension("toml"), manifest).unwrap();
    wasm
}

/// Where the build script put the fixture components.
pub const FIXTURES_DIR: &str = ashlar::bundled::FIXTURES_DIR;

/// The quota every test server has unless its config sets its own: tests create far more
/// volumes in one project than Cinder's defaults allow (conflicts.rs makes 20 × 100), and
/// only the quota tests (quotas.rs, which set their own `[quota]`) are about quotas.
pub const UNLIMITED_QUOTA: &str = "
[quota]
volumes = -1
snapshots = -1
gigabytes = -1
backups = -1
backup_gigabytes = -1
groups = -1
";

pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- server process: {:?}; last lines of its log ---",
                self.child.try_wait()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server with `config` (TOML, may be empty) in a fresh temp dir.
    pub fn start(config: &str) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, config);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data dir (to restart after a crash). A config
    /// without a `[quota]` section gets [`UNLIMITED_QUOTA`].
    pub fn start_in(dir: &Path, config: &str) -> Server {
        let mut config = config
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@FIXTURES@", FIXTURES_DIR);
        if !config.contains("[quota]") {
            config.push_str(UNLIMITED_QUOTA);
        }
        if !config.contains("database_url")
            && let Some(url) = postgres_database_for(dir)
        {
            config = format!("database_url = \"{url}\"\n{config}");
        }
        std::fs::create_dir_all(dir.join("badshare")).unwrap();
        let config_path = dir.join("ashlar.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ashlar"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("ASHLAR_LOG", "info,ashlar=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ashlar");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("ashlar listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ashlar did not start; its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            base,
            dir: dir.to_path_buf(),
            child,
            log,
            _tmp: None,
        }
    }

    /// The server process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn share(&self) -> PathBuf {
        self.dir.join("data/volumes")
    }

    /// Whether a line of the log carries the request id and every one of `words`, waiting
    /// for it a while: the server's log reaches the test through a reader thread, and may
    /// trail the response it belongs to.
    pub async fn logged_with(&self, request_id: &str, words: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(request_id) && words.iter().all(|w| l.contains(w)));
            if found || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = self.dir.clone();
        // Keep the temp dir alive for the restart: leak it deliberately.
        if let Some(tmp) = self._tmp.take() {
            let _ = tmp.keep();
        }
        dir
    }

    /// Waits until the server's log has a line containing `needle` (an event the test
    /// waits for, such as a driver call having started).
    pub async fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no log line with `{needle}` after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit, keeping the data directory for a
    /// restart.
    pub fn terminate(mut self) -> Stopped {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = started + Duration::from_secs(180);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "ashlar did not exit within 180 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = started.elapsed();
        if let Some(tmp) = self._tmp.take() {
            let _ = tmp.keep();
        }
        // The reader thread may still hold the last lines: it ends with the pipe.
        std::thread::sleep(Duration::from_millis(50));
        Stopped {
            dir: self.dir.clone(),
            took,
            clean: status.success(),
            log: self.log(),
        }
    }

    /// The server's SQLite database, for tests that look at or plant rows directly (such
    /// tests run on SQLite only).
    pub fn database_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("data/ashlar.db").display())
    }

    /// A client with an opaque token (`[auth] strategy = "tokens"`) scoped to `project`.
    pub fn client_for(&self, token: &str, project: &str) -> Client {
        Client {
            project: project.to_string(),
            ..self.client(token)
        }
    }

    /// `ashlar token ARGS` on this server's config and data directory, as an operator
    /// runs it beside the running server.
    pub fn token_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_ashlar"))
            .arg("token")
            .args(args)
            .arg("--config")
            .arg(self.dir.join("ashlar.toml"))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("ASHLAR_LOG", "warn")
            .output()
            .expect("run ashlar token")
    }

    /// A new token from `ashlar token create`: what it printed on stdout.
    pub fn make_token(&self, user: &str, project: &str, roles: &[&str]) -> String {
        let mut args = vec!["create", "--user", user, "--project", project];
        for r in roles {
            args.extend(["--role", r]);
        }
        let out = self.token_cli(&args);
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn client(&self, token: &str) -> Client {
        let project = token.split(':').nth(1).unwrap_or(token).to_string();
        Client {
            base: self.base.clone(),
            token: token.to_string(),
            project,
            http: reqwest::Client::new(),
            version: None,
        }
    }
}

/// A server stopped with SIGTERM.
pub struct Stopped {
    pub dir: PathBuf,
    /// From the signal to the exit.
    pub took: Duration,
    /// Whether it exited with status 0.
    pub clean: bool,
    pub log: String,
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: String,
    pub project: String,
    http: reqwest::Client,
    pub version: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The request id the server answered with.
    pub fn request_id(&self) -> &str {
        self.headers["x-openstack-request-id"].to_str().unwrap()
    }

    /// The message of a Cinder error body, whatever its kind key.
    pub fn error_message(&self) -> String {
        self.body
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or_else(|| panic!("not a Cinder error body: {}", self.body))
            .to_string()
    }
}

impl Client {
    /// The same client asking for microversion `v`.
    pub fn with_version(&self, v: &str) -> Client {
        Client {
            base: self.base.clone(),
            token: self.token.clone(),
            project: self.project.clone(),
            http: self.http.clone(),
            version: Some(v.to_string()),
        }
    }

    /// `path` under the project's v3 URL, or from the root when it starts with `/`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v3/{}/{path}", self.base, self.project)
        }
    }

    pub async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Resp {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("X-Auth-Token", &self.token);
        if let Some(v) = &self.version {
            req = req.header("OpenStack-API-Version", format!("volume {v}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.raw(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.raw(
            reqwest::Method::PUT,
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.raw(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a volume and returns its id (the request must be accepted).
    pub async fn create_volume(&self, body: Value) -> String {
        let r = self.post("volumes", json!({ "volume": body })).await;
        assert_eq!(r.status, 202, "create volume: {}", r.body);
        r.body["volume"]["id"].as_str().unwrap().to_string()
    }

    /// Waits until the resource's status is not a transient one; returns its view.
    pub async fn wait(&self, kind: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        let singular = kind.trim_end_matches('s');
        loop {
            let r = self.get(&format!("{kind}/{id}")).await;
            if r.status == 404 {
                return Value::Null;
            }
            assert_eq!(r.status, 200, "show {kind}/{id}: {}", r.body);
            let status = r.body[singular]["status"].as_str().unwrap().to_string();
            const TRANSIENT: &[&str] = &[
                "creating",
                "deleting",
                "extending",
                "reverting",
                "attaching",
                "detaching",
                "backing-up",
                "restoring-backup",
                "restoring",
                "managing",
                "unmanaging",
                "error_managing_deleting",
                "downloading",
                "uploading",
                "retyping",
            ];
            if !TRANSIENT.contains(&status.as_str()) {
                return r.body[singular].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{kind}/{id} still {status} after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the resource is gone (404), failing if it settles in another status.
    pub async fn wait_gone(&self, kind: &str, id: &str) {
        let v = self.wait(kind, id).await;
        assert!(v.is_null(), "{kind}/{id} was not deleted: {v}");
    }

    /// Takes a snapshot of `volume` and waits until it is available; its id.
    pub async fn snapshot_available(&self, volume: &str) -> String {
        let r = self
            .post("snapshots", json!({"snapshot": {"volume_id": volume}}))
            .await;
        assert_eq!(r.status, 202, "snapshot of {volume}: {}", r.body);
        let id = r.body["snapshot"]["id"].as_str().unwrap().to_string();
        self.wait_status("snapshots", &id, "available").await;
        id
    }

    /// Waits for a resource to reach `want`, failing with its messages if it does not.
    pub async fn wait_status(&self, kind: &str, id: &str, want: &str) -> Value {
        let v = self.wait(kind, id).await;
        if v["status"] != want {
            let msgs = self.messages_for(id).await;
            panic!(
                "{kind}/{id} is {} not {want}; messages: {msgs:?}",
                v["status"]
            );
        }
        v
    }

    /// User messages about a resource (messages API; filters from microversion 3.5).
    pub async fn messages_for(&self, id: &str) -> Vec<String> {
        let r = self
            .with_version("3.5")
            .get(&format!("messages?resource_uuid={id}"))
            .await;
        assert_eq!(r.status, 200, "messages: {}", r.body);
        r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user_message"].as_str().unwrap().to_string())
            .collect()
    }

    /// What an administrator reads about a resource's messages on Ashlar's admin surface:
    /// each message's user text, then ` | ` and its internal detail (the driver's text,
    /// paths, command lines), which tenants are never shown.
    pub async fn message_details_for(&self, id: &str) -> Vec<String> {
        let admin = Client {
            token: format!("admin:{}", self.project),
            version: None,
            ..self.with_version("3.0")
        };
        let r = admin
            .get(&format!("/ashlar/v1/messages?resource_uuid={id}"))
            .await;
        assert_eq!(r.status, 200, "messages: {}", r.body);
        r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} | {}",
                    m["user_message"].as_str().unwrap(),
                    m["internal_detail"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Creates a public volume type (admin) and returns its id.
    pub async fn create_type(&self, name: &str, specs: Value) -> String {
        let r = self
            .post(
                "types",
                json!({"volume_type": {"name": name, "extra_specs": specs}}),
            )
            .await;
        assert_eq!(r.status, 200, "create type: {}", r.body);
        r.body["volume_type"]["id"].as_str().unwrap().to_string()
    }
}

/// A backend's row of `GET /ashlar/v1/plugins` for the driver of `world`
/// (`volume-driver`, or `target-driver` for its paired target); `admin` must be an
/// administrator.
pub async fn plugin_row(admin: &Client, backend: &str, world: &str) -> Value {
    let r = admin
        .raw(reqwest::Method::GET, "/ashlar/v1/plugins", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["backend"] == backend && p["world"] == world)
        .unwrap_or_else(|| panic!("no {world} row for {backend}: {}", r.body))
        .clone()
}

/// A backend's volume-driver row of `GET /ashlar/v1/plugins`.
pub async fn plugin_of(admin: &Client, backend: &str) -> Value {
    plugin_row(admin, backend, "volume-driver").await
}

/// Config with the default local nfs backend plus the misbehaving fixture as backend `bad`,
/// reachable through volume type `bad`.
pub fn config_with_fixture(deadline_ms: u64, memory_mib: u64) -> String {
    format!(
        r#"
[volume_types.bad]
volume_backend_name = "bad"

[volume_types.local]
volume_backend_name = "local"

[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
grants.block = ["@DIR@/data/volumes"]
settings.share_path = "@DIR@/data/volumes"

[backends.bad]
driver = "@FIXTURES@/misbehave.wasm"
grants.exec = ["true", "cat", "linger"]
exec_dirs = ["@DIR@/bin", "/usr/bin", "/bin"]
grants.block = ["@DIR@/badshare"]
settings.share_path = "@DIR@/badshare"
limits.call_deadline_ms = {deadline_ms}
limits.memory_mib = {memory_mib}
limits.instances = 2
"#
    )
}

/// File length and the first bytes at `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
}

/// The virtual size `qemu-img info` reports for an image.
pub fn virtual_size(path: &Path) -> u64 {
    let out = Command::new("qemu-img")
        .args(["info", "--force-share", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "qemu-img info {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

/// A tgtd of the test's own on a free loopback port and control port; stopped on drop
/// (it ignores SIGTERM).
pub struct Tgtd {
    child: Child,
    /// The iSCSI portal's port on 127.0.0.1.
    pub port: u16,
    /// tgtd's management socket number (`tgtadm -C`).
    pub control_port: u16,
    serving: bool,
}

static NEXT_TGTD: AtomicU32 = AtomicU32::new(0);

pub fn tgtadm(control_port: u16, args: &[&str]) -> std::process::Output {
    Command::new("tgtadm")
        .arg("-C")
        .arg(control_port.to_string())
        .args(args)
        .output()
        .expect("run tgtadm (scripts/setup-peers.sh installs tgt)")
}

impl Tgtd {
    pub fn start() -> Tgtd {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // tgtadm takes control ports up to 32767; ephemeral ports lie above, so this
            // range is not another suite's portal-numbered control port.
            let mixed = std::process::id()
                .wrapping_mul(2_654_435_761)
                .wrapping_add(NEXT_TGTD.fetch_add(1, Ordering::Relaxed) * 7919)
                .wrapping_add(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos(),
                );
            let control_port = 8_000 + (mixed % 12_000) as u16;
            if tgtadm(control_port, &["--op", "show", "--mode", "system"])
                .status
                .success()
            {
                continue;
            }
            if let Some(tgtd) = Tgtd::start_on(port, control_port) {
                return tgtd;
            }
        }
        panic!("could not start tgtd on a free port in 10 tries");
    }

    /// A tgtd on the given portal and control ports (a restart of one that was stopped),
    /// once it serves; `None` if it could not take them.
    pub fn start_on(port: u16, control_port: u16) -> Option<Tgtd> {
        let child = Command::new("tgtd")
            .args(["--iscsi", &format!("portal=127.0.0.1:{port}"), "-f", "-C"])
            .arg(control_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tgtd (scripts/setup-peers.sh installs tgt)");
        let mut tgtd = Tgtd {
            child,
            port,
            control_port,
            serving: false,
        };
        tgtd.serving = tgtd.wait_serving();
        tgtd.serving.then_some(tgtd)
    }

    fn wait_serving(&mut self) -> bool {
        let want = format!("Portal: 127.0.0.1:{},1", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
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

    /// `tgtadm --op show --mode target`.
    pub fn targets(&self) -> String {
        let out = tgtadm(
            self.control_port,
            &["--lld", "iscsi", "--op", "show", "--mode", "target"],
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        if self.serving {
            let _ = tgtadm(self.control_port, &["--op", "delete", "--mode", "system"]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.serving {
            for suffix in ["", ".lock"] {
                let _ = std::fs::remove_file(format!(
                    "/var/run/tgtd/socket.{}{suffix}",
                    self.control_port
                ));
            }
        }
    }
}

/// A program of the virtualenv the tests own (the OpenStack clients and tempest), made by
/// scripts/setup-clients.sh: `$ASHLAR_VENV/bin/NAME`, by default under ~/.cache.
pub fn client_program(name: &str) -> PathBuf {
    let venv = std::env::var_os("ASHLAR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/ashlar-venv")
        });
    let program = venv.join("bin").join(name);
    assert!(
        program.exists(),
        "{} is missing: scripts/setup-clients.sh (run by scripts/test.sh) installs the OpenStack clients and tempest there",
        program.display()
    );
    program
}
