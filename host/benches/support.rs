//! What the bench binaries share: an `ashlar serve` process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `ashlar serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release `ashlar serve` with `config` on `data_dir`, logging warnings only
/// (or, with `ASHLAR_BENCH_LOG` set, at that filter — which must keep `ashlar::server`'s
/// info line — its lines passed on to stderr), and waits until it listens.
pub fn serve(config: &Path, data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env(
            "ASHLAR_LOG",
            std::env::var("ASHLAR_BENCH_LOG").unwrap_or_else(|_| "warn,ashlar::server=info".into()),
        )
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("ashlar exited").unwrap();
        if let Some(addr) = line.split("ashlar listening on ").nth(1) {
            break addr.trim().to_string();
        }
    };
    let echo = std::env::var_os("ASHLAR_BENCH_LOG").is_some();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
        }
    });
    Server { child, base }
}
