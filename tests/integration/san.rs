//! The san-rest driver through the Cinder API against a SAN array.
//!
//! The array is `ashlar-array-sim` (tests/array-sim), a stand-in speaking ONTAP's REST
//! shapes, because no SAN array can run on a test machine. Everything else is real: a real
//! `ashlar serve`, the bundled driver component, the host's http capability with its
//! credential injection. The simulator keeps LUN data in sparse files, so clones and
//! volumes from snapshots are checked byte for byte against the right parent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common::{Client, Server, read_at, write_at};
use crate::loading::serve_fails;

const GIB: u64 = 1 << 30;
pub(crate) const PASSWORD: &str = "Pa55\"w/rd s3cret";

/// The simulator's binary, built once per test process with the cargo that built the
/// tests (it is a workspace member, but not a dependency of the `ashlar` package).
fn sim_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Ok(p) = std::env::var("ASHLAR_ARRAY_SIM") {
                return PathBuf::from(p);
            }
            let exe = Path::new(env!("CARGO_BIN_EXE_ashlar"));
            let profile_dir = exe.parent().expect("profile dir");
            let target_dir = profile_dir.parent().expect("target dir");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev",
                Some(other) => other,
                None => "dev",
            };
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let binary = profile_dir.join("ashlar-array-sim");
            if is_newer_than_sources(&binary, &root.join("tests/array-sim")) {
                return binary;
            }
            let out = Command::new(env!("CARGO"))
                .current_dir(root)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "ashlar-array-sim",
                    "--profile",
                    profile,
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .output()
                .expect("run cargo to build the array simulator");
            assert!(
                out.status.success(),
                "building ashlar-array-sim failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            binary
        })
        .clone()
}

/// Whether `binary` was built after every file under `sources` last changed (then there
/// is no need to ask cargo, which may be waiting on a shared target directory's lock).
fn is_newer_than_sources(binary: &Path, sources: &Path) -> bool {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut latest = std::fs::metadata(dir).ok()?.modified().ok()?;
        for entry in std::fs::read_dir(dir).ok()? {
            let path = entry.ok()?.path();
            let t = if path.is_dir() {
                newest(&path)?
            } else {
                std::fs::metadata(&path).ok()?.modified().ok()?
            };
            latest = latest.max(t);
        }
        Some(latest)
    }
    let built = std::fs::metadata(binary).and_then(|m| m.modified());
    match (built, newest(sources)) {
        (Ok(built), Some(sources)) => built >= sources,
        _ => false,
    }
}

/// A running simulator on 127.0.0.1, killed on drop.
pub struct ArraySim {
    pub base: String,
    child: Child,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Drop for ArraySim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ArraySim {
    /// Starts the simulator with `args` (its password is [`PASSWORD`]).
    pub fn start(args: &[&str]) -> ArraySim {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(sim_binary())
            .args(["--password", PASSWORD, "--job-ms", "20", "--data-dir"])
            .arg(data.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ashlar-array-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("array-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the simulator: {line:?}"))
            .to_string();
        ArraySim {
            base,
            child,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    async fn control(&self, method: reqwest::Method, what: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/_sim/{what}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "/_sim/{what}: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    pub async fn state(&self) -> Value {
        self.control(reqwest::Method::GET, "state", None).await
    }

    pub async fn requests(&self) -> Vec<Value> {
        self.control(reqwest::Method::GET, "requests", None).await["requests"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn fault(&self, fault: Value) {
        self.control(reqwest::Method::POST, "faults", Some(fault))
            .await;
    }

    pub async fn faults_left(&self) -> u64 {
        self.control(reqwest::Method::GET, "faults", None).await["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["count"].as_u64().unwrap())
            .sum()
    }
}

/// A backend `san` on the bundled driver, with the array's origin granted and the
/// password as a named credential; `extra` adds settings lines.
pub(crate) fn san_config(sim: &ArraySim, password: &str, extra: &str) -> String {
    format!(
        r#"
[backends.san]
driver = "san-rest"
grants.http = ["{base}"]
settings.api_url = "{base}"
settings.svm = "svm0"
settings.api_retry_backoff_ms = "50"
settings.job_poll_ms = "10"
credentials.array.username = "admin"
credentials.array.password = {password:?}
{extra}
"#,
        base = sim.base,
    )
}

pub(crate) fn by_name<'a>(items: &'a Value, name: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {items}"))
}

fn flexvol(id: &str) -> String {
    format!("ashlar_{}", id.replace('-', "_"))
}

async fn action(c: &Client, vol: &str, body: Value) -> crate::common::Resp {
    c.post(&format!("volumes/{vol}/action"), body).await
}

fn connector(host: &str) -> Value {
    json!({
        "host": host,
        "ip": "127.0.0.1",
        "initiator": format!("iqn.1994-05.com.redhat:{host}"),
        "multipath": true,
        "platform": "x86_64",
        "os_type": "linux",
    })
}

#[tokio::test]
async fn a_volumes_whole_life_on_aggregate_pools() {
    // A page cap of 1 makes every listing take several pages.
    let sim = ArraySim::start(&[
        "--aggregate",
        "aggr1:100",
        "--aggregate",
        "aggr2:50",
        "--portal",
        "127.0.0.1",
        "--portal",
        "127.0.0.2",
        "--page-cap",
        "1",
    ]);
    let server = Server::start(&san_config(&sim, PASSWORD, ""));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:ops");

    // Stats: a pool per aggregate, in Cinder's keys.
    let r = admin.get("scheduler-stats/get_pools?detail=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pools = r.body["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "{}", r.body);
    let p1 = by_name(&r.body["pools"], "ashlar@san#aggr1");
    let p2 = by_name(&r.body["pools"], "ashlar@san#aggr2");
    assert_eq!(p1["capabilities"]["total_capacity_gb"], 100.0);
    assert_eq!(p2["capabilities"]["total_capacity_gb"], 50.0);
    for (k, v) in [
        ("volume_backend_name", json!("san")),
        ("vendor_name", json!("NetApp")),
        ("storage_protocol", json!("iSCSI")),
        ("driver_version", json!("0.1.0")),
        ("thin_provisioning_support", json!(true)),
        ("pool_type", json!("aggregate")),
    ] {
        assert_eq!(p1["capabilities"][k], v, "{k}: {p1}");
    }

    // Create: a FlexVol on the roomier aggregate, holding a LUN of the volume's size.
    let vol = c.create_volume(json!({"size": 1, "name": "data"})).await;
    c.wait_status("volumes", &vol, "available").await;
    let st = sim.state().await;
    let fv = by_name(&st["volumes"], &flexvol(&vol));
    assert_eq!(fv["aggregates"][0]["name"], "aggr1");
    assert_eq!(fv["guarantee"]["type"], "none", "thin by default");
    let lun_path = format!("/vol/{}/lun0", flexvol(&vol));
    let lun = by_name(&st["luns"], &lun_path);
    assert_eq!(lun["space"]["size"], GIB);
    let lun_file = PathBuf::from(lun["backing_file"].as_str().unwrap());
    write_at(&lun_file, 0, b"before-snapshot");
    write_at(&lun_file, GIB - 4096, b"last-block");

    // Snapshot: a FlexVol snapshot, made by a job the driver waited for.
    let r = c
        .post(
            "snapshots",
            json!({"snapshot": {"volume_id": vol, "name": "s1"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_status("snapshots", &snap, "available").await;
    let st = sim.state().await;
    let snaps = &by_name(&st["volumes"], &flexvol(&vol))["snapshots"];
    by_name(snaps, &format!("snapshot-{snap}"));
    write_at(&lun_file, 0, b"after--snapshot");

    // A larger volume from the snapshot: a FlexClone of the right parent at the right
    // snapshot, split, grown; it holds the bytes of the snapshot, not of now.
    let from_snap = c
        .create_volume(json!({"snapshot_id": snap, "size": 2}))
        .await;
    c.wait_status("volumes", &from_snap, "available").await;
    let st = sim.state().await;
    let fs = by_name(&st["volumes"], &flexvol(&from_snap));
    assert_eq!(fs["origin"]["parent_volume"], flexvol(&vol));
    assert_eq!(fs["origin"]["parent_snapshot"], format!("snapshot-{snap}"));
    assert_eq!(fs["origin"]["split"], true, "split from its parent");
    assert!(fs["size"].as_u64().unwrap() >= 2 * GIB, "{fs}");
    let fs_lun = by_name(&st["luns"], &format!("/vol/{}/lun0", flexvol(&from_snap)));
    assert_eq!(fs_lun["space"]["size"], 2 * GIB);
    let fs_file = PathBuf::from(fs_lun["backing_file"].as_str().unwrap());
    assert_eq!(read_at(&fs_file, 0, 15), b"before-snapshot");
    assert_eq!(read_at(&fs_file, GIB - 4096, 10), b"last-block");

    // A clone: a FlexClone of the source as it is now.
    let clone = c
        .create_volume(json!({"source_volid": vol, "size": 1}))
        .await;
    c.wait_status("volumes", &clone, "available").await;
    let st = sim.state().await;
    let cl = by_name(&st["volumes"], &flexvol(&clone));
    assert_eq!(cl["origin"]["parent_volume"], flexvol(&vol));
    assert_eq!(cl["origin"]["parent_snapshot"], Value::Null);
    let cl_lun = by_name(&st["luns"], &format!("/vol/{}/lun0", flexvol(&clone)));
    let cl_file = PathBuf::from(cl_lun["backing_file"].as_str().unwrap());
    assert_eq!(read_at(&cl_file, 0, 15), b"after--snapshot");

    // Extend: FlexVol and LUN grow, the data stays.
    let r = action(&c, &vol, json!({"os-extend": {"new_size": 2}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(c.wait_status("volumes", &vol, "available").await["size"], 2);
    let st = sim.state().await;
    assert_eq!(by_name(&st["luns"], &lun_path)["space"]["size"], 2 * GIB);
    assert!(
        by_name(&st["volumes"], &flexvol(&vol))["size"]
            .as_u64()
            .unwrap()
            >= 2 * GIB
    );
    assert_eq!(read_at(&lun_file, GIB - 4096, 10), b"last-block");

    // Attach through Cinder's legacy actions: an igroup for the initiator, the LUN mapped,
    // iSCSI connection info from the array's portals (two: the multipath lists too).
    assert_eq!(
        action(&c, &vol, json!({"os-reserve": {}})).await.status,
        202
    );
    let r = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": connector("compute-1")}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = r.body["connection_info"].clone();
    let st = sim.state().await;
    assert_eq!(info["driver_volume_type"], "iscsi", "{info}");
    let data = &info["data"];
    assert_eq!(data["target_iqn"], st["iscsi_target"], "{info}");
    assert_eq!(data["target_portal"], "127.0.0.1:3260");
    assert_eq!(data["target_lun"], 0);
    assert_eq!(data["target_discovered"], false);
    assert_eq!(data["volume_id"], vol.as_str());
    assert_eq!(
        data["target_portals"],
        json!(["127.0.0.1:3260", "127.0.0.2:3260"])
    );
    assert_eq!(data["target_iqns"].as_array().unwrap().len(), 2);
    let igroups = st["igroups"].as_array().unwrap();
    assert_eq!(igroups.len(), 1, "{igroups:?}");
    let igroup = &igroups[0];
    assert!(
        igroup["name"].as_str().unwrap().starts_with("ashlar-"),
        "{igroup}"
    );
    assert_eq!(
        igroup["initiators"],
        json!([{"name": "iqn.1994-05.com.redhat:compute-1"}])
    );
    let maps = st["lun_maps"].as_array().unwrap();
    assert_eq!(maps.len(), 1, "{maps:?}");
    assert_eq!(maps[0]["lun"]["name"], lun_path.as_str());
    assert_eq!(maps[0]["igroup"]["name"], igroup["name"]);

    // Asked again for the same host: the same map, not a second one.
    let again = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": connector("compute-1")}}),
    )
    .await;
    assert_eq!(again.body["connection_info"]["data"]["target_lun"], 0);
    // Another host, another volume: its own igroup; LUN numbers are per igroup.
    let r = action(
        &c,
        &clone,
        json!({"os-initialize_connection": {"connector": connector("compute-2")}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let st = sim.state().await;
    assert_eq!(st["igroups"].as_array().unwrap().len(), 2);
    assert_eq!(st["lun_maps"].as_array().unwrap().len(), 2);

    let r = action(
        &c,
        &vol,
        json!({"os-attach": {"instance_uuid": "9d2a7d3e-0000-4000-8000-000000000001", "mountpoint": "/dev/vdb"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(c.wait("volumes", &vol).await["status"], "in-use");
    assert_eq!(
        action(&c, &vol, json!({"os-begin_detaching": {}}))
            .await
            .status,
        202
    );
    let r = action(
        &c,
        &vol,
        json!({"os-terminate_connection": {"connector": connector("compute-1")}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = action(&c, &vol, json!({"os-detach": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");
    let r = action(
        &c,
        &clone,
        json!({"os-terminate_connection": {"connector": connector("compute-2")}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let st = sim.state().await;
    assert_eq!(st["lun_maps"], json!([]), "terminate unmaps");

    // Delete: the snapshot first (Cinder refuses the volume while it has one), then all.
    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(c.wait("snapshots", &snap).await.is_null());
    let st = sim.state().await;
    assert_eq!(
        by_name(&st["volumes"], &flexvol(&vol))["snapshots"],
        json!([])
    );
    for id in [&vol, &from_snap, &clone] {
        let r = c.delete(&format!("volumes/{id}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(
            c.wait("volumes", id).await.is_null(),
            "volume {id} still listed"
        );
    }
    let st = sim.state().await;
    assert_eq!(st["volumes"], json!([]), "FlexVols left on the array");
    assert_eq!(st["luns"], json!([]), "LUNs left on the array");

    // Every request carried the right credential, and listings followed `_links.next`.
    let requests = sim.requests().await;
    assert!(requests.iter().all(|r| r["auth"] == "ok"), "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|r| r["query"].as_str().unwrap().contains("start.uuid=")),
        "no request followed a next link"
    );
}

#[tokio::test]
async fn flexvol_pools_keep_a_lun_per_volume_and_clone_luns() {
    let sim = ArraySim::start(&[
        "--aggregate",
        "aggr1:100",
        "--flexvol",
        "vol_a:aggr1:20",
        "--flexvol",
        "vol_b:aggr1:10",
    ]);
    let server = Server::start(&san_config(
        &sim,
        PASSWORD,
        "settings.flexvol_names = \"vol_a,vol_b\"",
    ));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:ops");
    let r = admin.get("scheduler-stats/get_pools?detail=true").await;
    let a = by_name(&r.body["pools"], "ashlar@san#vol_a");
    assert_eq!(a["capabilities"]["total_capacity_gb"], 20.0);
    assert_eq!(a["capabilities"]["pool_type"], "flexvol");
    by_name(&r.body["pools"], "ashlar@san#vol_b");

    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let path = format!("/vol/vol_a/volume-{vol}");
    let st = sim.state().await;
    let file = PathBuf::from(
        by_name(&st["luns"], &path)["backing_file"]
            .as_str()
            .unwrap(),
    );
    write_at(&file, 0, b"snap-me");

    let snap = c.snapshot_available(&vol).await;
    let snap_path = format!("/vol/vol_a/snapshot-{snap}");
    let st = sim.state().await;
    assert_eq!(
        by_name(&st["luns"], &snap_path)["clone_source"],
        path.as_str()
    );
    write_at(&file, 0, b"changed");

    let from_snap = c
        .create_volume(json!({"snapshot_id": snap, "size": 2}))
        .await;
    c.wait_status("volumes", &from_snap, "available").await;
    let clone = c.create_volume(json!({"source_volid": vol})).await;
    c.wait_status("volumes", &clone, "available").await;
    let r = action(&c, &vol, json!({"os-extend": {"new_size": 3}})).await;
    assert_eq!(r.status, 202);
    c.wait_status("volumes", &vol, "available").await;

    let st = sim.state().await;
    let fs = by_name(&st["luns"], &format!("/vol/vol_a/volume-{from_snap}"));
    assert_eq!(fs["clone_source"], snap_path.as_str());
    assert_eq!(fs["space"]["size"], 2 * GIB);
    let fs_file = PathBuf::from(fs["backing_file"].as_str().unwrap());
    assert_eq!(read_at(&fs_file, 0, 7), b"snap-me");
    let cl = by_name(&st["luns"], &format!("/vol/vol_a/volume-{clone}"));
    assert_eq!(cl["clone_source"], path.as_str());
    assert_eq!(by_name(&st["luns"], &path)["space"]["size"], 3 * GIB);

    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(c.wait("snapshots", &snap).await.is_null());
    for id in [&vol, &from_snap, &clone] {
        assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
        assert!(c.wait("volumes", id).await.is_null());
    }
    let st = sim.state().await;
    assert_eq!(st["luns"], json!([]));
    assert_eq!(st["volumes"].as_array().unwrap().len(), 2, "the pools stay");
}

#[tokio::test]
async fn array_failures_are_retried_or_reported_with_the_arrays_words() {
    let sim = ArraySim::start(&["--aggregate", "aggr1:100"]);
    let server = Server::start(&san_config(
        &sim,
        PASSWORD,
        "settings.api_timeout_ms = \"1000\"",
    ));
    let c = server.client("alice:proj-a");

    // Two 503s, then the array answers: the create goes through.
    sim.fault(json!({"method": "POST", "path": "/api/storage/volumes", "status": 503, "count": 2}))
        .await;
    let ok = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &ok, "available").await;
    let statuses: Vec<u64> = sim
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/api/storage/volumes")
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 202]);

    // A 500 on every attempt: the volume errors, its message carries the array's words,
    // and the FlexVol made before the failing LUN step is cleaned up.
    sim.fault(
        json!({"method": "POST", "path": "/api/storage/luns", "status": 500, "count": 4,
                     "message": "controller failover in progress"}),
    )
    .await;
    let failed = c.create_volume(json!({"size": 1})).await;
    assert_eq!(c.wait("volumes", &failed).await["status"], "error");
    let msg = c.message_details_for(&failed).await.join(" ");
    assert!(msg.contains("controller failover in progress"), "{msg}");
    assert!(msg.contains("HTTP 500"), "{msg}");
    assert!(msg.contains("on all 4 attempts"), "{msg}");
    assert!(msg.contains("backend unavailable"), "{msg}");
    assert_eq!(sim.faults_left().await, 0);
    let st = sim.state().await;
    assert!(
        !st["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == flexvol(&failed)),
        "the half-made FlexVol is gone: {}",
        st["volumes"]
    );

    // A job poll answered slower than api_timeout_ms: timed out, tried again, done.
    sim.fault(json!({"method": "GET", "path": "/api/cluster/jobs/", "delay_ms": 2500, "count": 1}))
        .await;
    let slow = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &slow, "available").await;
    assert_eq!(sim.faults_left().await, 0);
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("GET /api/cluster/jobs/")
            && l.contains("TimedOut")
            && l.contains("retrying")),
        "the timeout and the retry are logged"
    );

    // The array does the work but answers after the driver gave up: the retry finds the
    // FlexVol (being made by the first request's job) and the LUN there, and uses them.
    sim.fault(json!([
        {"method": "POST", "path": "/api/storage/volumes", "delay_ms": 1500, "after": true},
        {"method": "POST", "path": "/api/storage/luns", "delay_ms": 1500, "after": true},
    ]))
    .await;
    let late = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &late, "available").await;
    let st = sim.state().await;
    let name = flexvol(&late);
    let made = |kind: &str, name: &str| {
        st[kind]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] == name)
            .count()
    };
    assert_eq!(made("volumes", &name), 1);
    assert_eq!(made("luns", &format!("/vol/{name}/lun0")), 1);
    let log = server.log();
    assert!(log.contains(&format!("FlexVol {name} exists already; using it")));
    assert!(log.contains(&format!("LUN /vol/{name}/lun0 exists already; using it")));

    // The array takes the request, then its job fails: the volume errors with the
    // array's message, which names the problem.
    sim.fault(json!({"method": "POST", "path": "/api/storage/volumes",
                     "job_failure": "aggregate aggr1 is offline for maintenance"}))
        .await;
    let job_failed = c.create_volume(json!({"size": 1})).await;
    assert_eq!(c.wait("volumes", &job_failed).await["status"], "error");
    let msg = c.message_details_for(&job_failed).await.join(" ");
    assert!(
        msg.contains("aggregate aggr1 is offline for maintenance"),
        "{msg}"
    );
    assert!(msg.contains("job"), "{msg}");

    // The same for a snapshot's job.
    sim.fault(json!({"method": "POST", "path": "/api/storage/volumes/",
                     "job_failure": "snapshot reserve exhausted"}))
        .await;
    let r = c
        .post("snapshots", json!({"snapshot": {"volume_id": ok}}))
        .await;
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.wait("snapshots", &snap).await["status"], "error");
    let msg = c.message_details_for(&snap).await.join(" ");
    assert!(msg.contains("snapshot reserve exhausted"), "{msg}");
}

#[tokio::test]
async fn a_wrong_password_is_named_as_the_arrays_refusal() {
    let sim = ArraySim::start(&[]);
    let server = Server::start(&san_config(&sim, "not-the-password", ""));
    let c = server.client("alice:proj-a");
    let id = c.create_volume(json!({"size": 1})).await;
    assert_eq!(c.wait("volumes", &id).await["status"], "error");
    let msg = c.message_details_for(&id).await.join(" ");
    assert!(msg.contains("backend unavailable"), "{msg}");
    assert!(msg.contains("refused credential `array`"), "{msg}");
    assert!(msg.contains("HTTP 401"), "{msg}");
    assert!(msg.contains("user is not authorized"), "{msg}");
    let log = server.log();
    assert!(
        log.contains("check_for_setup_error failed") && log.contains("HTTP 401"),
        "the start-up check says why"
    );
    let requests = sim.requests().await;
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r["auth"] == "wrong" && r["status"] == 401)
    );
}

#[tokio::test]
async fn the_array_password_never_reaches_the_guest() {
    let sim = ArraySim::start(&[]);
    let config = format!(
        r#"{}
[volume_types.san]
volume_backend_name = "san"

[volume_types.probe]
volume_backend_name = "probe"

[backends.probe]
driver = "@FIXTURES@/credential-probe.wasm"
grants.http = ["{base}"]
settings.api_url = "{base}"
credentials.array.username = "admin"
credentials.array.password = {PASSWORD:?}
"#,
        san_config(&sim, PASSWORD, ""),
        base = sim.base,
    );
    let server = Server::start(&config);
    let c = server.client("alice:proj-a");

    // The driver works with the credential it never holds.
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "san"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    let r = action(
        &c,
        &vol,
        json!({"os-initialize_connection": {"connector": connector("compute-9")}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A guest that asks an endpoint to reflect its request gets the reflection, redacted.
    let probe = c
        .create_volume(json!({"size": 1, "volume_type": "probe"}))
        .await;
    assert_eq!(c.wait("volumes", &probe).await["status"], "error");
    let msg = c.message_details_for(&probe).await.join(" ");
    assert!(msg.contains("probe saw config"), "{msg}");
    assert!(msg.contains("status 200"), "the echo answered: {msg}");
    assert!(
        msg.contains(r#"\"auth_ok\":true"#) || msg.contains(r#""auth_ok":true"#),
        "the array got the right credential: {msg}"
    );
    assert!(msg.contains("[REDACTED]"), "{msg}");
    assert!(msg.contains("x-echo-authorization"), "{msg}");
    let log = server.log();
    assert!(log.contains("config.all()"), "the probe logged its config");
    assert!(log.contains("echo answered"), "the probe logged the answer");
    assert!(log.contains("was redacted before the driver saw it"));

    // In no form: as given, JSON-escaped, percent-encoded, in the basic-auth header.
    let basic = {
        let out = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("admin:{PASSWORD}").as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(basic.len() > 20, "{basic}");
    let forms = [
        PASSWORD.to_string(),
        PASSWORD.replace('"', "\\\""),
        "Pa55%22w%2Frd%20s3cret".to_string(),
        basic.trim_end_matches('=').to_string(),
        "s3cret".to_string(),
    ];
    let mut seen = vec![("log", log), ("messages", msg)];
    for id in [&vol, &probe] {
        let v = c.get(&format!("volumes/{id}")).await;
        seen.push(("volume view", v.body.to_string()));
    }
    for (what, text) in &seen {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "{what} contains `{form}`");
        }
    }
    // The array itself got it on every request, the echo included.
    let requests = sim.requests().await;
    assert!(requests.iter().any(|r| r["path"] == "/_sim/echo"));
    assert!(requests.iter().all(|r| r["auth"] == "ok"), "{requests:?}");
}

#[test]
fn an_origin_the_operator_did_not_grant_refuses_the_load() {
    let err = serve_fails(
        r#"
[backends.san]
driver = "san-rest"
grants.http = ["http://127.0.0.1:9"]
settings.api_url = "http://127.0.0.1:8443"
settings.svm = "svm0"
"#,
    );
    assert!(err.contains("backend san: loading its driver"), "{err}");
    assert!(err.contains("plugin san-rest 0.1.0"), "{err}");
    assert!(
        err.contains("http access to `http://127.0.0.1:8443`"),
        "what it asked: {err}"
    );
    assert!(
        err.contains("grants.http = [\"http://127.0.0.1:9\"]"),
        "what was granted: {err}"
    );

    let err = serve_fails("[backends.san]\ndriver = \"san-rest\"\nsettings.svm = \"svm0\"\n");
    assert!(
        err.contains("api_url"),
        "the missing setting is named: {err}"
    );
}
