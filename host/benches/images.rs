//! Image → volume throughput against a plain `qemu-img convert` of the same image file in
//! the same run, and volume → image for reference.
//!
//! Starts a real Glance (from scripts/setup-glance.sh's virtualenv) and the release
//! `ashlar serve` with the bundled nfs driver on a local share, uploads an image of
//! `ASHLAR_BENCH_IMAGE_MIB` MiB of incompressible data (default 1024) as `raw`, creates
//! a volume from it (download, `qemu-img info`, `qemu-img convert` onto the volume) and
//! prints the MB/s of image data from the request to `available`; then the baseline, a
//! `qemu-img convert -n` of the image file onto an existing file of the volume's size;
//! then the download from Glance alone (to a file, as the host fetches it), to show where
//! the time goes; then the volume uploaded back as `raw` (request to the image `active`). The volume is
//! checked to hold the image's bytes. Files go under `ASHLAR_BENCH_DIR` (default the
//! system temp dir) and are removed at the end.
//!
//! Run with `cargo bench -p ashlar --bench images`.

// The tests' Glance helper; the bench uses part of it.
#[allow(dead_code)]
#[path = "../../tests/integration/glance.rs"]
mod glance;
#[path = "support.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const MB: f64 = 1e6;

/// Incompressible bytes: xorshift64*, one MiB at a time.
fn write_noise(path: &Path, bytes: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..bytes / MIB {
        for chunk in buf.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    f.get_ref().sync_all().unwrap();
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}/v3/bench/{path}", self.base))
            .header("X-Auth-Token", "admin:bench")
            .header("OpenStack-API-Version", "volume 3.71");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn wait_volume(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let (_, body) = self
                .call(reqwest::Method::GET, &format!("volumes/{id}"), None)
                .await;
            let status = body["volume"]["status"].as_str().unwrap_or("").to_string();
            if status == want {
                return body["volume"].clone();
            }
            assert!(
                !status.starts_with("error") && Instant::now() < deadline,
                "volume {id} is {status}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn qemu_img(args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn same_disk(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap()
        .status
        .success()
}

async fn bench(dir: &Path, image_bytes: u64) {
    let image_file = dir.join("image.raw");
    write_noise(&image_file, image_bytes);
    let mb = image_bytes as f64 / MB;

    let glance = glance::Glance::start();
    let data = dir.join("data");
    let config = dir.join("ashlar.toml");
    let share = data.join("volumes");
    std::fs::write(
        &config,
        format!(
            "[glance]\nendpoint = \"{}\"\n\n[backends.local]\ndriver = \"nfs\"\n\
             grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\ngrants.block = [{share:?}]\n\
             settings.share_path = {share:?}\nsettings.volume_format = \"raw\"\nsettings.sparse_volumes = \"true\"\n\n\
             [quota]\nvolumes = -1\ngigabytes = -1\n",
            glance.url,
            share = share.to_string_lossy()
        ),
    )
    .unwrap();
    let server = support::serve(&config, &data);
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };

    let started = Instant::now();
    let image_id = glance
        .image_of(&image_file, json!({"name": "bench", "disk_format": "raw"}))
        .await;
    let into_glance = started.elapsed();

    // Image → volume through Ashlar.
    let size_gib = image_bytes.div_ceil(GIB);
    let started = Instant::now();
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "volumes",
            Some(json!({"volume": {"imageRef": image_id, "size": size_gib}})),
        )
        .await;
    assert_eq!(status, 202, "create: {body}");
    let vol = body["volume"]["id"].as_str().unwrap().to_string();
    api.wait_volume(&vol, "available").await;
    let ashlar = started.elapsed();
    let vol_file = share.join(format!("volume-{vol}"));
    assert!(
        same_disk(&vol_file, &image_file),
        "the volume is not the image"
    );

    // The baseline: the same conversion onto an existing file of the volume's size.
    let target = dir.join("baseline.raw");
    std::fs::File::create(&target)
        .unwrap()
        .set_len(size_gib * GIB)
        .unwrap();
    let baseline = qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        "-n",
        image_file.to_str().unwrap(),
        target.to_str().unwrap(),
    ]);
    std::fs::remove_file(&target).unwrap();

    // The download alone, to a file, as the host fetches it (for where the time goes).
    let fetched = dir.join("fetched.raw");
    let started = Instant::now();
    {
        use tokio::io::AsyncWriteExt;
        let mut resp = api
            .http
            .get(format!("{}/v2/images/{image_id}/file", glance.url))
            .send()
            .await
            .unwrap();
        let mut out = tokio::io::BufWriter::with_capacity(
            4 << 20,
            tokio::fs::File::create(&fetched).await.unwrap(),
        );
        while let Some(chunk) = resp.chunk().await.unwrap() {
            out.write_all(&chunk).await.unwrap();
        }
        out.flush().await.unwrap();
    }
    let download = started.elapsed();
    std::fs::remove_file(&fetched).unwrap();

    // Volume → image, for reference.
    let started = Instant::now();
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("volumes/{vol}/action"),
            Some(json!({"os-volume_upload_image": {"image_name": "bench-upload", "disk_format": "raw"}})),
        )
        .await;
    assert_eq!(status, 202, "upload: {body}");
    let uploaded = body["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_volume(&vol, "available").await;
    glance.wait_status(&uploaded, "active").await;
    let upload = started.elapsed();
    let volume_mb = (size_gib * GIB) as f64 / MB;

    let rate = |mb: f64, d: Duration| mb / d.as_secs_f64();
    println!(
        "images bench: {:.0} MiB raw image, {} GiB volume, {} cores",
        image_bytes as f64 / MIB as f64,
        size_gib,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  image into Glance (setup, for reference): {:.2} s, {:.0} MB/s",
        into_glance.as_secs_f64(),
        rate(mb, into_glance)
    );
    println!(
        "  image → volume through ashlar: {:.2} s, {:.0} MB/s of image data",
        ashlar.as_secs_f64(),
        rate(mb, ashlar)
    );
    println!(
        "  plain qemu-img convert of the same file: {:.2} s, {:.0} MB/s",
        baseline.as_secs_f64(),
        rate(mb, baseline)
    );
    println!(
        "  ratio (ashlar MB/s ÷ qemu-img MB/s): {:.2}",
        baseline.as_secs_f64() / ashlar.as_secs_f64()
    );
    println!(
        "  the download from Glance alone, to a file: {:.2} s, {:.0} MB/s",
        download.as_secs_f64(),
        rate(mb, download)
    );
    println!(
        "  volume → image (raw) through ashlar: {:.2} s, {:.0} MB/s of volume",
        upload.as_secs_f64(),
        rate(volume_mb, upload)
    );
    drop(server);
    drop(glance);
}

fn main() {
    let base = std::env::var_os("ASHLAR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mib: u64 = std::env::var("ASHLAR_BENCH_IMAGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(dir.path(), mib.max(1) * MIB));
}
