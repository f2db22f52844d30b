//! Migration throughput against `qemu-img convert` of the same file, in the same run: a
//! volume on one nfs share migrates to another (`os-migrate_volume`, from the request to
//! `migration_status` `success`, so creating the copy, connecting both, copying and
//! deleting the source are all in it), and `qemu-img convert -O raw` copies the same
//! file between the same directories. Two volumes with the same data: one written in
//! full, one four times as large and a quarter written (sparse). MB/s is the volume's
//! size over the time.
//!
//! Run with `cargo bench -p ashlar --bench migrate`; `ASHLAR_BENCH_QUICK=1` uses 1 GiB
//! of data instead of 2 GiB.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "support.rs"]
mod support;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Writes `len` bytes of pseudo-random data at `offset`, 4 MiB at a time.
fn fill(path: &Path, offset: u64, len: u64, seed: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut x = seed | 1;
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut done = 0;
    while done < len {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = (len - done).min(buf.len() as u64) as usize;
        f.write_all_at(&buf[..n], offset + done).unwrap();
        done += n as u64;
    }
    f.sync_all().unwrap();
}

/// Seconds `qemu-img convert -O raw src dst` takes (dst removed after).
fn qemu_img_convert(src: &Path, dst: &Path) -> f64 {
    let started = Instant::now();
    let out = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw"])
        .arg(src)
        .arg(dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same durability as the migration's copy, which syncs its target.
    std::fs::File::open(dst).unwrap().sync_all().unwrap();
    let secs = started.elapsed().as_secs_f64();
    std::fs::remove_file(dst).unwrap();
    secs
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut req = http
        .request(method, url)
        .header("x-auth-token", "admin:bench");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

async fn volume(http: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    call(
        http,
        reqwest::Method::GET,
        format!("{base}/v3/bench/volumes/{id}"),
        None,
    )
    .await["volume"]
        .clone()
}

/// Seconds from `os-migrate_volume` to `success`.
async fn migrate(http: &reqwest::Client, base: &str, id: &str, dest: &str) -> f64 {
    let started = Instant::now();
    call(
        http,
        reqwest::Method::POST,
        format!("{base}/v3/bench/volumes/{id}/action"),
        Some(json!({"os-migrate_volume": {"host": dest}})),
    )
    .await;
    loop {
        let v = volume(http, base, id).await;
        match v["os-vol-mig-status-attr:migstat"].as_str() {
            Some("success") => return started.elapsed().as_secs_f64(),
            Some("error") => panic!("migration failed: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn main() {
    let quick = std::env::var_os("ASHLAR_BENCH_QUICK").is_some();
    let size_gib: u64 = if quick { 1 } else { 2 };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, scratch) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("scratch"),
    );
    for d in [&a, &b, &scratch] {
        std::fs::create_dir_all(d).unwrap();
    }
    let config = dir.path().join("ashlar.toml");
    let mut text =
        String::from("stats_interval_secs = 1\n[quota]\nvolumes = -1\ngigabytes = -1\n\n");
    for (name, share) in [("a", &a), ("b", &b)] {
        text.push_str(&format!(
            "[backends.{name}]\ndriver = \"nfs\"\n\
             grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\n\
             grants.block = [\"{share}\"]\nsettings.share_path = \"{share}\"\n\
             settings.max_over_subscription_ratio = \"100\"\n\n",
            share = share.display()
        ));
    }
    std::fs::File::create(&config)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let server = support::serve(&config, &dir.path().join("data"));
    let base = server.base.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();

    println!(
        "migration between two nfs shares vs qemu-img convert of the same file ({size_gib} GiB of data each, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<22} {:>14} {:>14} {:>7}",
        "volume", "migrate MB/s", "qemu-img MB/s", "ratio"
    );
    // The same bytes of data in both: a volume written in full, and one four times as
    // large with a quarter written.
    let data_gib = size_gib;
    for (label, size_gib, written) in [
        ("written in full", data_gib, data_gib * GIB),
        ("a quarter written", 4 * data_gib, data_gib * GIB),
    ] {
        let id = rt.block_on(async {
            let v = call(
                &http,
                reqwest::Method::POST,
                format!("{base}/v3/bench/volumes"),
                Some(json!({"volume": {"size": size_gib}})),
            )
            .await;
            let id = v["volume"]["id"].as_str().unwrap().to_string();
            loop {
                let v = volume(&http, &base, &id).await;
                if v["status"] == "available" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            id
        });
        let v = rt.block_on(volume(&http, &base, &id));
        let host = v["os-vol-host-attr:host"].as_str().unwrap().to_string();
        let (src_share, dest) = if host.starts_with("ashlar@a#") {
            (&a, "ashlar@b")
        } else {
            (&b, "ashlar@a")
        };
        let src = src_share.join(format!("volume-{id}"));
        // Spread over the volume: data, then a hole as long, and so on.
        let pieces = 8;
        let piece = written / pieces;
        let stride = size_gib * GIB / pieces;
        for i in 0..pieces {
            fill(&src, i * stride, piece, i + 1);
        }
        // Both copies read a source in the page cache: the baseline first, then ours.
        let baseline = qemu_img_convert(&src, &scratch.join("copy"));
        let took = rt.block_on(migrate(&http, &base, &id, dest));
        let mb = (size_gib * GIB) as f64 / 1e6;
        println!(
            "{label:<22} {:>14.0} {:>14.0} {:>7.2}",
            mb / took,
            mb / baseline,
            baseline / took
        );
        rt.block_on(call(
            &http,
            reqwest::Method::DELETE,
            format!("{base}/v3/bench/volumes/{id}"),
            None,
        ));
    }
    drop(server);
}
