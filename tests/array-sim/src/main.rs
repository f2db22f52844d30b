//! `ashlar-array-sim`: a SAN array for tests, never shipped. It speaks the shapes of
//! NetApp ONTAP's REST API (`/api/storage/volumes`, `/api/storage/luns`,
//! `/api/protocols/san/igroups`, `/api/protocols/san/lun-maps`, snapshots, jobs,
//! aggregates, iSCSI services and interfaces, `max_records` paging with `_links.next`,
//! `{"error": {...}}` bodies), checks HTTP basic auth, and keeps its state in memory (with
//! LUN data in sparse files when given `--data-dir`).
//!
//! It stands in for a real array because none can run on a test machine; everything on
//! the Ashlar side of the wire is real. Plain http only, on 127.0.0.1.
//!
//! It prints `array-sim listening on http://ADDR` on stdout once it serves. Tests steer
//! it through `/_sim/`: `POST /_sim/faults` (`{"method", "path", "status" | "delay_ms" |
//! "job_failure", "message", "count"}`), `GET /_sim/state`, `GET /_sim/requests`, and
//! `/_sim/echo`, which reflects the request's headers back.

mod model;
mod query;
mod routes;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ashlar-array-sim",
    about = "A simulated SAN array (ONTAP REST shapes) for tests"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The API user.
    #[arg(long, default_value = "admin")]
    username: String,
    /// The API user's password.
    #[arg(long)]
    password: String,
    /// The SVM (vserver) that serves LUNs.
    #[arg(long, default_value = "svm0")]
    svm: String,
    /// An aggregate as NAME:GIB; repeat for several. Default: aggr1:1000.
    #[arg(long = "aggregate", value_parser = parse_aggregate)]
    aggregates: Vec<(String, u64)>,
    /// A pre-existing FlexVol as NAME:AGGREGATE:GIB (thin); repeat for several.
    #[arg(long = "flexvol", value_parser = parse_flexvol)]
    flexvols: Vec<(String, String, u64)>,
    /// An iSCSI data interface address; repeat for several. Default: 127.0.0.1.
    #[arg(long = "portal")]
    portals: Vec<String>,
    /// How long a job runs before it completes, in milliseconds.
    #[arg(long, default_value_t = 30)]
    job_ms: u64,
    /// Largest page a collection answers, whatever `max_records` asks (0: no limit).
    #[arg(long, default_value_t = 0)]
    page_cap: usize,
    /// Where LUN data lives, as sparse files; without it LUNs hold no data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn parse_aggregate(s: &str) -> Result<(String, u64), String> {
    let (name, gib) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not NAME:GIB"))?;
    let gib = gib.parse().map_err(|e| format!("`{gib}`: {e}"))?;
    Ok((name.to_string(), gib))
}

fn parse_flexvol(s: &str) -> Result<(String, String, u64), String> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [name, aggr, gib] => Ok((
            name.to_string(),
            aggr.to_string(),
            gib.parse().map_err(|e| format!("`{gib}`: {e}"))?,
        )),
        _ => Err(format!("`{s}` is not NAME:AGGREGATE:GIB")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let aggregates = if args.aggregates.is_empty() {
        vec![("aggr1".to_string(), 1000)]
    } else {
        args.aggregates
    };
    let portals = if args.portals.is_empty() {
        vec!["127.0.0.1".to_string()]
    } else {
        args.portals
    };
    if let Some(d) = &args.data_dir {
        std::fs::create_dir_all(d)?;
    }
    let mut array = model::Array::new(
        args.svm,
        aggregates,
        portals,
        args.data_dir,
        Duration::from_millis(args.job_ms),
        args.page_cap,
    );
    for (name, aggr, gib) in args.flexvols {
        if !array.aggregates.iter().any(|a| a.name == aggr) {
            return Err(format!("flexvol {name}: no aggregate {aggr}").into());
        }
        array.volumes.push(model::FlexVol {
            uuid: uuid::Uuid::new_v4().to_string(),
            name,
            aggregate: aggr,
            size: gib * model::GIB,
            guarantee: "none".into(),
            snapshots: Vec::new(),
            origin: None,
        });
    }
    let expected_auth = format!(
        "Basic {}",
        routes::base64_encode(format!("{}:{}", args.username, args.password).as_bytes())
    );
    let shared = Arc::new(routes::Shared {
        array: Mutex::new(array),
        expected_auth,
    });
    let app = axum::Router::new()
        .fallback(routes::handle)
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "array-sim listening on http://{addr}")?;
        out.flush()?;
    }
    axum::serve(listener, app).await?;
    Ok(())
}
