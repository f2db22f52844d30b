//! A real Image service for the image tests (and the image bench, which includes this
//! file): Glance 33 from the virtualenv scripts/setup-glance.sh makes, without Keystone,
//! its SQLite database and file store in a temp dir, served by gunicorn on a free port of
//! 127.0.0.1. gunicorn renames its processes, so it is stopped by the PID it was started
//! with: SIGTERM (its workers go with it), then SIGKILL if it lingers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The virtualenv: `$ASHLAR_GLANCE_VENV`, by default ~/.cache/ashlar-glance.
fn venv() -> PathBuf {
    std::env::var_os("ASHLAR_GLANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/ashlar-glance")
        })
}

pub struct Glance {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Glance {
    /// Writes the config, syncs the database and serves the API; returns once it answers.
    pub fn start() -> Glance {
        let venv = venv();
        let gunicorn = venv.join("bin/gunicorn");
        assert!(
            gunicorn.exists(),
            "{} is missing: scripts/setup-glance.sh (run by scripts/test.sh) installs Glance and gunicorn there",
            gunicorn.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["images", "staging", "tasks"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let paste = venv.join("etc/glance/glance-api-paste.ini");
        std::fs::copy(&paste, d.join("glance-api-paste.ini"))
            .unwrap_or_else(|e| panic!("{}: {e}", paste.display()));
        // The unauthenticated context has no roles: the deprecated (pre-RBAC) defaults
        // let it use the API, and `is_admin` covers the admin-only rules.
        std::fs::write(
            d.join("policy.yaml"),
            "\"context_is_admin\": \"is_admin:True or role:admin\"\n",
        )
        .unwrap();
        let s = |p: &str| d.join(p).to_string_lossy().into_owned();
        std::fs::write(
            d.join("glance-api.conf"),
            format!(
                "[DEFAULT]\nenabled_backends = fs:file\n\
                 [database]\nconnection = sqlite:///{db}\n\
                 [paste_deploy]\nconfig_file = {paste}\nflavor =\n\
                 [glance_store]\ndefault_backend = fs\n\
                 [fs]\nfilesystem_store_datadir = {images}\n\
                 [os_glance_staging_store]\nfilesystem_store_datadir = {staging}\n\
                 [os_glance_tasks_store]\nfilesystem_store_datadir = {tasks}\n\
                 [oslo_policy]\npolicy_file = {policy}\nenforce_new_defaults = False\nenforce_scope = False\n",
                db = s("glance.db"),
                paste = s("glance-api-paste.ini"),
                images = s("images"),
                staging = s("staging"),
                tasks = s("tasks"),
                policy = s("policy.yaml"),
            ),
        )
        .unwrap();
        let out = Command::new(venv.join("bin/glance-manage"))
            .arg("--config-file")
            .arg(d.join("glance-api.conf"))
            .arg("db_sync")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "glance-manage db_sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(d.join("gunicorn.log")).unwrap();
        let child = Command::new(&gunicorn)
            .args([
                "-b",
                &format!("127.0.0.1:{port}"),
                "-w",
                "1",
                "--timeout",
                "600",
            ])
            .arg("glance.wsgi.api:application")
            .env("OS_GLANCE_CONFIG_DIR", d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start gunicorn");
        let g = Glance {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
            http: reqwest::Client::new(),
        };
        g.wait_ready();
        g
    }

    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(90);
        let addr = self.url.trim_start_matches("http://").to_string();
        let answers = || -> bool {
            let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!("GET /v2/images HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut reply = String::new();
            s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut reply).is_ok()
                && reply.starts_with("HTTP/1.")
                && reply.contains(" 200 ")
        };
        loop {
            if answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Glance did not answer in 90 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gunicorn.log")).unwrap_or_default()
    }

    /// Creates an image record with `attributes` (Glance v2 names); its id.
    pub async fn create(&self, attributes: Value) -> String {
        let r = self
            .http
            .post(format!("{}/v2/images", self.url))
            .json(&attributes)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "create image: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Uploads the file at `path` as image `id`'s data.
    pub async fn upload(&self, id: &str, path: &Path) {
        let file = tokio::fs::File::open(path).await.unwrap();
        let len = file.metadata().await.unwrap().len();
        let r = self
            .http
            .put(format!("{}/v2/images/{id}/file", self.url))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len)
            .body(std::fs::read(path).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "upload image: {}", r.text().await.unwrap());
    }

    /// An image made of the file at `path`: created with `attributes`, uploaded, active.
    pub async fn image_of(&self, path: &Path, mut attributes: Value) -> String {
        if attributes.get("container_format").is_none() {
            attributes["container_format"] = json!("bare");
        }
        let id = self.create(attributes).await;
        self.upload(&id, path).await;
        id
    }

    /// Sets image `id`'s property `key` (a JSON patch), which moves its `updated_at`.
    pub async fn set_property(&self, id: &str, key: &str, value: &str) {
        let r = self
            .http
            .patch(format!("{}/v2/images/{id}", self.url))
            .header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(json!([{"op": "add", "path": format!("/{key}"), "value": value}]).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "update image: {}", r.text().await.unwrap());
    }

    pub async fn show(&self, id: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/v2/images/{id}", self.url))
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            return None;
        }
        assert!(r.status().is_success(), "show image {id}: {}", r.status());
        Some(r.json().await.unwrap())
    }

    /// Waits until image `id` is `want` (or gone, for `deleted`); its view.
    pub async fn wait_status(&self, id: &str, want: &str) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let image = self.show(id).await;
            let status = image
                .as_ref()
                .map_or("deleted", |i| i["status"].as_str().unwrap_or(""));
            if status == want {
                return image;
            }
            assert!(
                Instant::now() < deadline,
                "image {id} is still {status}, not {want}, after 180 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Downloads image `id`'s data to `dest`.
    pub async fn download(&self, id: &str, dest: &Path) {
        let r = self
            .http
            .get(format!("{}/v2/images/{id}/file", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "download image {id}");
        std::fs::write(dest, r.bytes().await.unwrap()).unwrap();
    }
}

impl Drop for Glance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("--- last lines of the Glance log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
