//! Creates through one, two and three hosts on one PostgreSQL, against one host on SQLite
//! measured in the same run: API creates accepted per second and each create's time from
//! its request to `available` (p50, p99). Hosts `h1` and `h2` run backend `shared` as
//! cluster `c1` over one directory; `h3` runs only a backend of its own and hands its
//! creates on. Every host gets the same share of the clients.
//!
//! Run with `cargo bench -p ashlar --bench hosts`; `ASHLAR_BENCH_QUICK=1` shortens it,
//! `ASHLAR_BENCH_CREATES=N` sets the creates per setup (default 600).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "support.rs"]
mod support;
use support::Server;

const POSTGRES_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
/// Clients creating at once, spread over the hosts.
const CLIENTS: usize = 12;

fn start_host(dir: &Path, config: &str) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("ashlar.toml");
    std::fs::write(
        &path,
        format!(
            "{config}\n[quota]\nvolumes = -1\nsnapshots = -1\ngigabytes = -1\n\n\
             [volume_types.shared]\nvolume_backend_name = \"shared\"\n"
        ),
    )
    .unwrap();
    support::serve(&path, &dir.join("data"))
}

fn host_config(name: &str, database: &str, share: Option<&Path>) -> String {
    let mut c = format!(
        "host_name = \"{name}\"\ndatabase_url = \"{database}\"\nreport_interval = 2\n\
         stats_interval_secs = 2\n"
    );
    if let Some(share) = share {
        let share = share.display();
        c.push_str(&format!(
            "[backends.shared]\ndriver = \"nfs\"\ncluster = \"c1\"\n\
             grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\n\
             grants.block = [\"{share}\"]\nsettings.share_path = \"{share}\"\n"
        ));
    }
    c
}

/// `CLIENTS` clients, round-robin over `bases`, make `n` volumes; creates accepted per
/// second, and each create's seconds from request to `available`, sorted.
async fn creates(bases: &[String], n: usize) -> (f64, Vec<f64>) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (http, base) = (http.clone(), bases[c % bases.len()].clone());
        let mine = n / CLIENTS + usize::from(c < n % CLIENTS);
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..mine {
                let sent = Instant::now();
                let r = http
                    .post(format!("{base}/v3/bench/volumes"))
                    .header("x-auth-token", "admin:bench")
                    .json(&json!({"volume": {"size": 1, "volume_type": "shared"}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
                let body: serde_json::Value = r.json().await.unwrap();
                ids.push((body["volume"]["id"].as_str().unwrap().to_string(), sent));
            }
            let accepted = Instant::now();
            let mut latencies = Vec::new();
            for (id, sent) in ids {
                loop {
                    let r = http
                        .get(format!("{base}/v3/bench/volumes/{id}"))
                        .header("x-auth-token", "admin:bench")
                        .send()
                        .await
                        .unwrap();
                    let body: serde_json::Value = r.json().await.unwrap();
                    match body["volume"]["status"].as_str() {
                        Some("available") => break,
                        Some("creating") => tokio::time::sleep(Duration::from_millis(5)).await,
                        other => panic!("volume {id} is {other:?}"),
                    }
                }
                latencies.push(sent.elapsed().as_secs_f64());
            }
            (accepted, latencies)
        });
    }
    let mut last_accepted = started;
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (accepted, l) = done.unwrap();
        last_accepted = last_accepted.max(accepted);
        latencies.extend(l);
    }
    latencies.sort_by(f64::total_cmp);
    (
        n as f64 / (last_accepted - started).as_secs_f64(),
        latencies,
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] * 1000.0
}

fn main() {
    let quick = std::env::var_os("ASHLAR_BENCH_QUICK").is_some();
    let n: usize = std::env::var("ASHLAR_BENCH_CREATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 120 } else { 600 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pg_dir = dir.path().join("pg");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {POSTGRES_SH} && postgres_start {} {port}",
            pg_dir.display()
        ))
        .status()
        .unwrap();
    assert!(started.success(), "PostgreSQL did not start");
    let server = format!("postgres://ashlar@127.0.0.1:{port}");
    let new_database = |name: &str| {
        let ok = Command::new("psql")
            .args([&format!("{server}/postgres"), "-qc"])
            .arg(format!("CREATE DATABASE {name}"))
            .status()
            .unwrap();
        assert!(ok.success());
        format!("{server}/{name}")
    };

    println!("{n} creates (1 GiB, nfs driver) by {CLIENTS} clients, spread over the hosts' APIs:");
    println!(
        "  {:<34} {:>10} {:>10} {:>10}",
        "setup", "creates/s", "p50 ms", "p99 ms"
    );
    let mut baseline = None;
    let setups: [(&str, usize); 4] = [
        ("SQLite, one host", 1),
        ("PostgreSQL, one host", 1),
        ("PostgreSQL, two hosts (one cluster)", 2),
        ("PostgreSQL, three hosts", 3),
    ];
    for (i, (label, hosts)) in setups.into_iter().enumerate() {
        let run = dir.path().join(format!("run{i}"));
        let share = run.join("share");
        std::fs::create_dir_all(&share).unwrap();
        let database = if i == 0 {
            format!("sqlite://{}", run.join("ashlar.db").display())
        } else {
            new_database(&format!("bench{i}"))
        };
        let running: Vec<Server> = (1..=hosts)
            .map(|h| {
                let share = (h <= 2).then_some(share.as_path());
                start_host(
                    &run.join(format!("h{h}")),
                    &host_config(&format!("h{h}"), &database, share),
                )
            })
            .collect();
        let bases: Vec<String> = running.iter().map(|h| h.base.clone()).collect();
        rt.block_on(creates(&bases, CLIENTS)); // warm up
        let (rate, latencies) = rt.block_on(creates(&bases, n));
        let ratio = match baseline {
            None => {
                baseline = Some(rate);
                String::new()
            }
            Some(b) => format!("  ({:.2} of SQLite's)", rate / b),
        };
        println!(
            "  {label:<34} {rate:>10.1} {:>10.1} {:>10.1}{ratio}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        drop(running);
    }
    let _ = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {POSTGRES_SH} && postgres_stop {}",
            pg_dir.display()
        ))
        .status();
}
