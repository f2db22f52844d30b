//! Several hosts on one PostgreSQL: `host-a` and `host-b` run backend `shared` as cluster
//! `c1` over one directory, `host-c` runs only a backend of its own. Any host serves the
//! API and schedules; a create placed on the cluster is run by whichever cluster host
//! claims its job first; a cluster host that dies has its running jobs taken over by the
//! other once its heartbeat is `service_down_time` old.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::{Client, PgServer, Server, Tgtd, nfs_as_version, plugin_of, psql};

/// The kill test's `service_down_time`: short, so the survivor takes over soon.
const DOWN_TIME: u64 = 4;
/// Everyone else's: long enough that a host slowed by a loaded machine is never taken
/// for dead.
const LIVE_DOWN_TIME: u64 = 30;

/// A host of the test: `shared` (cluster `c1`, over `share`) when `share` is given, else
/// the embedded default backend `local` only.
fn host_config(name: &str, database: &str, share: Option<&Path>) -> String {
    host_opts(name, database, share, None, &[], LIVE_DOWN_TIME)
}

/// [`host_config`], with `shared` granted `extra` programs besides the nfs driver's,
/// `slow_bin` (a `qemu-img` and `rm` that take their time) first in its program path
/// when given, and `down_time` as `service_down_time`.
fn host_opts(
    name: &str,
    database: &str,
    share: Option<&Path>,
    slow_bin: Option<&Path>,
    extra: &[&str],
    down_time: u64,
) -> String {
    let mut config = format!(
        "host_name = \"{name}\"\ndatabase_url = \"{database}\"\nreport_interval = 1\n\
         service_down_time = {down_time}\nstats_interval_secs = 1\n\n\
         [volume_types.shared]\nvolume_backend_name = \"shared\"\n\n"
    );
    if let Some(share) = share {
        let share = share.display();
        let mut programs = vec!["qemu-img", "rm", "df", "du"];
        programs.extend(extra);
        config.push_str(&format!(
            "[backends.shared]\ndriver = \"nfs\"\ncluster = \"c1\"\n\
             grants.exec = {programs:?}\n\
             grants.block = [\"{share}\"]\nsettings.share_path = \"{share}\"\n"
        ));
        if let Some(bin) = slow_bin {
            config.push_str(&format!(
                "exec_dirs = [\"{}\", \"/usr/bin\", \"/bin\"]\n",
                bin.display()
            ));
        }
    }
    config
}

/// `qemu-img` and `rm` that wait `secs` before doing their work, so a create or a delete
/// is still running when its host is killed.
fn slow_programs(dir: &Path, secs: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, real) in [("qemu-img", "/usr/bin/qemu-img"), ("rm", "/bin/rm")] {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nsleep {secs}\nexec {real} \"$@\"\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Each `created volume-ID` line of the nfs driver in `log`, counted by volume id.
fn creates_in(log: &str, into: &mut BTreeMap<String, usize>) {
    for line in log.lines() {
        if let Some(rest) = line.split("created volume-").nth(1) {
            let id: String = rest.chars().take(36).collect();
            *into.entry(id).or_default() += 1;
        }
    }
}

/// Each `HOST@BACKEND` of `os-services` with its state.
async fn service_states(admin: &Client) -> BTreeMap<String, String> {
    let r = admin.get("os-services?binary=cinder-volume").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until `host` shows `state` in `os-services`.
async fn wait_service(admin: &Client, host: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let states = service_states(admin).await;
        if states.get(host).map(String::as_str) == Some(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} not {state} after {within:?}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn unfinished_jobs(database: &str) -> String {
    psql(
        database,
        "SELECT COALESCE(string_agg(kind || ' ' || state || ' ' || COALESCE(owner, '-'), '; '), '') \
         FROM jobs WHERE state IN ('pending', 'running')",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_share_creates_and_the_cluster_runs_each_once() {
    let pg = PgServer::get();
    let database = pg.database();
    let share = tempfile::tempdir().unwrap();
    let a = Server::start(&host_config("host-a", &database, Some(share.path())));
    let b = Server::start(&host_config("host-b", &database, Some(share.path())));
    let c = Server::start(&host_config("host-c", &database, None));
    let clients: Vec<Client> = [&a, &b, &c]
        .iter()
        .map(|s| s.client("alice:proj-a"))
        .collect();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = clients[i % 3].clone();
        tasks.spawn(async move {
            client
                .create_volume(json!({"size": 1, "volume_type": "shared", "name": format!("v{i}")}))
                .await
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    for id in &ids {
        let v = clients[0].wait_status("volumes", id, "available").await;
        let admin_view = a.client("admin:proj-a").get(&format!("volumes/{id}")).await;
        let host = admin_view.body["volume"]["os-vol-host-attr:host"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(host.starts_with("c1@shared#"), "{id} on {host}: {v}");
    }
    assert_eq!(unfinished_jobs(&database), "", "jobs left unfinished");

    // Every driver create ran once, on a host of the cluster; both did some.
    let (mut on_a, mut on_b, mut on_c) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    creates_in(&a.log(), &mut on_a);
    creates_in(&b.log(), &mut on_b);
    creates_in(&c.log(), &mut on_c);
    assert!(on_c.is_empty(), "host-c runs no shared backend: {on_c:?}");
    for id in &ids {
        let n = on_a.get(id).unwrap_or(&0) + on_b.get(id).unwrap_or(&0);
        assert_eq!(n, 1, "volume {id} was created {n} times");
    }
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "both cluster hosts ran creates: {} on host-a, {} on host-b",
        on_a.len(),
        on_b.len()
    );
    // Host-c handed its creates on: it scheduled them from the stats the others wrote.
    assert!(
        c.log().contains("create handed on"),
        "host-c handed nothing on"
    );

    // A connection is made by a host that runs the volume's backend; host-c says so.
    let connector = json!({"host": "compute-1", "ip": "127.0.0.1", "initiator": "iqn.1994-05.com.redhat:compute-1", "multipath": false, "platform": "x86_64", "os_type": "linux"});
    let body = json!({"os-initialize_connection": {"connector": connector}});
    let r = clients[2]
        .post(&format!("volumes/{}/action", ids[0]), body.clone())
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body
            .to_string()
            .contains("c1@shared is not run by this host"),
        "{}",
        r.body
    );
    let r = clients[0]
        .post(&format!("volumes/{}/action", ids[0]), body)
        .await;
    assert_eq!(r.status, 200, "host-a runs it: {}", r.body);

    let admin = c.client("admin:proj-a");
    let states = service_states(&admin).await;
    for host in ["host-a@shared", "host-b@shared", "host-c@local"] {
        assert_eq!(
            states.get(host).map(String::as_str),
            Some("up"),
            "{states:?}"
        );
    }
    // From 3.7 each volume service names its cluster, as Cinder's `cluster_name`.
    let r = admin
        .with_version("3.7")
        .get("os-services?binary=cinder-volume")
        .await;
    let clusters: BTreeMap<String, Value> = r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["cluster"].clone(),
            )
        })
        .collect();
    assert_eq!(clusters["host-a@shared"], "c1@shared", "{clusters:?}");
    assert_eq!(clusters["host-b@shared"], "c1@shared", "{clusters:?}");
    assert_eq!(clusters["host-c@local"], Value::Null, "{clusters:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_cluster_host_has_its_jobs_finished_by_the_other_and_rejoins() {
    let pg = PgServer::get();
    let database = pg.database();
    let share = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    slow_programs(bin.path(), "0.5");
    let config_a = host_opts(
        "host-a",
        &database,
        Some(share.path()),
        Some(bin.path()),
        &[],
        DOWN_TIME,
    );
    let config_b = host_opts(
        "host-b",
        &database,
        Some(share.path()),
        Some(bin.path()),
        &[],
        DOWN_TIME,
    );
    let a = Server::start(&config_a);
    let b = Server::start(&config_b);
    let via_a = a.client("alice:proj-a");
    let via_b = b.client("alice:proj-a");
    let admin = b.client("admin:proj-a");

    // Volumes to delete, made first.
    let mut doomed = Vec::new();
    for _ in 0..20 {
        doomed.push(
            via_b
                .create_volume(json!({"size": 1, "volume_type": "shared"}))
                .await,
        );
    }
    for id in &doomed {
        via_b.wait_status("volumes", id, "available").await;
    }

    // Creates and deletes through host-a, then host-a dies while it runs some of them.
    let mut made = Vec::new();
    for _ in 0..20 {
        made.push(
            via_a
                .create_volume(json!({"size": 1, "volume_type": "shared"}))
                .await,
        );
    }
    for id in &doomed {
        let r = via_a.delete(&format!("volumes/{id}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    a.wait_log("scheduled").await;
    let log_a = a.log();
    let dir_a = a.kill9();
    let killed = Instant::now();

    // Everything ends, on host-b, within the down time and a few seconds.
    let mut created = BTreeMap::new();
    for id in &doomed {
        via_b.wait_gone("volumes", id).await;
        assert!(!share.path().join(format!("volume-{id}")).exists());
    }
    let mut finals = BTreeMap::new();
    for id in &made {
        let v: Value = via_b.wait("volumes", id).await;
        let status = v["status"].as_str().unwrap().to_string();
        let file = share.path().join(format!("volume-{id}"));
        match status.as_str() {
            "available" => assert!(file.exists(), "{id} available without its file"),
            "error" => {
                assert!(!file.exists(), "{id} failed but left its file");
                let msgs = via_b.messages_for(id).await;
                assert!(
                    msgs.iter()
                        .any(|m| m.contains("stopped while the volume was being created")),
                    "{id}: {msgs:?}"
                );
            }
            other => panic!("{id} ended {other}"),
        }
        *finals.entry(status).or_insert(0) += 1;
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(DOWN_TIME + 15),
        "host-b took {took:?} to finish host-a's work"
    );
    assert_eq!(unfinished_jobs(&database), "", "jobs left unfinished");
    creates_in(&log_a, &mut created);
    creates_in(&b.log(), &mut created);
    for id in &made {
        let n = created.get(id).copied().unwrap_or(0);
        assert!(n <= 1, "volume {id} was created {n} times");
    }
    assert!(
        b.log()
            .contains("taking over a job of a host that stopped heartbeating"),
        "host-b took nothing over; final statuses {finals:?}"
    );
    wait_service(
        &admin,
        "host-a@shared",
        "down",
        Duration::from_secs(DOWN_TIME + 5),
    )
    .await;

    // Restarted, host-a rejoins and runs the cluster's work again.
    let a = Server::start_in(&dir_a, &config_a);
    wait_service(&admin, "host-a@shared", "up", Duration::from_secs(10)).await;
    let via_a = a.client("alice:proj-a");
    let id = via_a
        .create_volume(json!({"size": 1, "volume_type": "shared"}))
        .await;
    via_a.wait_status("volumes", &id, "available").await;
}

/// One create → available → delete → gone cycle; false (with why in `failures`) when a
/// step failed.
async fn cycle(c: &Client, failures: &tokio::sync::Mutex<Vec<String>>) -> bool {
    let r = c
        .post(
            "volumes",
            json!({"volume": {"size": 1, "volume_type": "shared"}}),
        )
        .await;
    if r.status != 202 {
        failures
            .lock()
            .await
            .push(format!("create: {} {}", r.status, r.body));
        return false;
    }
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    let v = c.wait("volumes", &id).await;
    if v["status"] != "available" {
        let msgs = c.messages_for(&id).await;
        failures
            .lock()
            .await
            .push(format!("{id} {}: {msgs:?}", v["status"]));
        return false;
    }
    let r = c.delete(&format!("volumes/{id}")).await;
    if r.status != 202 {
        failures
            .lock()
            .await
            .push(format!("delete {id}: {} {}", r.status, r.body));
        return false;
    }
    let v = c.wait("volumes", &id).await;
    if !v.is_null() {
        let msgs = c.messages_for(&id).await;
        failures
            .lock()
            .await
            .push(format!("{id} not deleted: {}; {msgs:?}", v["status"]));
        return false;
    }
    true
}

async fn swap(admin: &Client, body: Value) -> crate::common::Resp {
    admin
        .raw(
            reqwest::Method::POST,
            "/ashlar/v1/backends/shared/swap",
            Some(body.to_string().into_bytes()),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_swaps_as_one_under_load_and_rolls_back_as_one() {
    let pg = PgServer::get();
    let database = pg.database();
    let share = tempfile::tempdir().unwrap();
    let parts = tempfile::tempdir().unwrap();
    let next = nfs_as_version(parts.path(), "0.1.1");
    // A version that asks for one more program: host-a grants it, host-b does not, so
    // host-a loads it and host-b refuses it.
    let greedy = nfs_as_version(parts.path(), "0.1.2");
    let manifest = greedy.with_extension("toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[[capabilities.exec]]\nprogram = \"true\"\nargs = []\n");
    std::fs::write(&manifest, text).unwrap();
    let a = Server::start(&host_opts(
        "host-a",
        &database,
        Some(share.path()),
        None,
        &["true"],
        LIVE_DOWN_TIME,
    ));
    let b = Server::start(&host_config("host-b", &database, Some(share.path())));
    let (admin_a, admin_b) = (a.client("admin:ops"), b.client("admin:ops"));

    // A steady load through both hosts while the cluster swaps.
    let failures = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let c = server.client(&format!("u{i}:proj-a"));
        let (failures, done, stop) = (failures.clone(), done.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if cycle(&c, &failures).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    while done.load(Ordering::Relaxed) < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every live host of the cluster switches, or none does.
    let r = swap(&admin_a, json!({"wasm": next, "probation_secs": 1})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["swap"]["hosts"],
        json!(["host-a", "host-b"]),
        "{}",
        r.body
    );
    for admin in [&admin_a, &admin_b] {
        assert_eq!(plugin_of(admin, "shared").await["version"], "0.1.1");
    }
    let at_swap = done.load(Ordering::Relaxed);
    while done.load(Ordering::Relaxed) < at_swap + 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A driver one host refuses is rolled back on the host that took it: host-a, asked,
    // switches first; host-b refuses it.
    let r = swap(&admin_a, json!({"wasm": greedy, "probation_secs": 1})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let text = r.body.to_string();
    assert!(text.contains("host host-b refused"), "{text}");
    for admin in [&admin_a, &admin_b] {
        assert_eq!(
            plugin_of(admin, "shared").await["version"],
            "0.1.1",
            "every host keeps the driver it had"
        );
    }
    let r = admin_a
        .raw(
            reqwest::Method::GET,
            "/ashlar/v1/plugins/events?backend=shared",
            None,
        )
        .await;
    let events: Vec<(String, String)> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap_or_default().to_string(),
                e["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for want in [
        ("host-a", "swapped"),
        ("host-b", "swapped"),
        ("host-b", "refused"),
        ("host-a", "rolled-back"),
    ] {
        assert!(
            events.contains(&(want.0.to_string(), want.1.to_string())),
            "no {want:?} among {events:?}"
        );
    }

    let at_rollback = done.load(Ordering::Relaxed);
    while done.load(Ordering::Relaxed) < at_rollback + 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let failures = failures.lock().await;
    assert!(
        failures.is_empty(),
        "failed requests under the swaps: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_remakes_the_exports_of_a_dead_hosts_attached_volumes() {
    let pg = PgServer::get();
    let database = pg.database();
    let share = tempfile::tempdir().unwrap();
    let (tgtd_a, tgtd_b) = (Tgtd::start(), Tgtd::start());
    // Each host exports the cluster's volumes through its own tgtd.
    let with_target = |name: &str, tgtd: &Tgtd| {
        let mut config = host_opts(name, &database, Some(share.path()), None, &[], DOWN_TIME);
        config.push_str(&format!(
            "\n[backends.shared.target]\ndriver = \"iscsi-tgt\"\ngrants.exec = [\"tgtadm\"]\n\
             settings.target_ip_address = \"127.0.0.1\"\nsettings.target_port = \"{}\"\n\
             settings.control_port = \"{}\"\nsettings.backing_store_dir = \"{}\"\n",
            tgtd.port,
            tgtd.control_port,
            share.path().display()
        ));
        config
    };
    let a = Server::start(&with_target("host-a", &tgtd_a));
    let b = Server::start(&with_target("host-b", &tgtd_b));
    let mut via_a = a.client("alice:proj-a");
    via_a.version = Some("3.44".into());
    let vol = via_a
        .create_volume(json!({"size": 1, "volume_type": "shared"}))
        .await;
    via_a.wait_status("volumes", &vol, "available").await;

    // Attached through host-a: its tgtd exports the volume, host-b's does not.
    let r = via_a
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "instance_uuid": "inst-1", "connector": {
                "host": "compute-1", "ip": "127.0.0.1",
                "initiator": "iqn.1994-05.com.redhat:compute-1", "multipath": false,
                "platform": "x86_64", "os_type": "linux"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["attachment"]["connection_info"]["data"]["target_portal"],
        format!("127.0.0.1:{}", tgtd_a.port),
        "{}",
        r.body
    );
    assert!(tgtd_a.targets().contains(&vol), "{}", tgtd_a.targets());
    assert!(!tgtd_b.targets().contains(&vol), "{}", tgtd_b.targets());

    // Host-a dies with its target; host-b exports the volume once host-a is silent.
    drop(a.kill9());
    drop(tgtd_a);
    let deadline = Instant::now() + Duration::from_secs(DOWN_TIME + 20);
    while !tgtd_b.targets().contains(&vol) {
        assert!(
            Instant::now() < deadline,
            "host-b did not export the volume of its dead peer: {}",
            tgtd_b.targets()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        b.log()
            .contains("re-making the exports of attached volumes here"),
        "host-b's log does not say why it exported"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_probation_on_one_host_rolls_the_cluster_back() {
    let pg = PgServer::get();
    let database = pg.database();
    let share = tempfile::tempdir().unwrap();
    let a = Server::start(&host_config("host-a", &database, Some(share.path())));
    let b = Server::start(&host_config("host-b", &database, Some(share.path())));
    let (admin_a, admin_b) = (a.client("admin:ops"), b.client("admin:ops"));
    let before = plugin_of(&admin_a, "shared").await["version"].clone();

    // A version that passes every check a swap runs, then traps on every create.
    let flaky = format!("{}/flaky.wasm", crate::common::FIXTURES_DIR);
    let r = swap(&admin_a, json!({"wasm": flaky, "probation_secs": 60})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for admin in [&admin_a, &admin_b] {
        assert_eq!(plugin_of(admin, "shared").await["version"], "9.9.9");
    }

    // One create traps on whichever host runs it; that host's probation fails, and the
    // other host, whose probation saw nothing wrong, goes back too.
    let c = a.client("alice:proj-a");
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "shared"}))
        .await;
    assert_eq!(c.wait("volumes", &vol).await["status"], "error");
    let deadline = Instant::now() + Duration::from_secs(20);
    for admin in [&admin_a, &admin_b] {
        while plugin_of(admin, "shared").await["version"] != before {
            assert!(
                Instant::now() < deadline,
                "a host kept the driver that failed elsewhere"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let r = admin_b
        .raw(
            reqwest::Method::GET,
            "/ashlar/v1/plugins/events?backend=shared",
            None,
        )
        .await;
    let rollbacks: Vec<String> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rolled-back")
        .map(|e| format!("{} {}", e["host"], e["reason"]))
        .collect();
    assert_eq!(
        rollbacks.len(),
        2,
        "one rollback on each host: {rollbacks:?}"
    );
    assert!(
        rollbacks
            .iter()
            .any(|r| r.contains("probation failed on host")),
        "the other host says why it went back: {rollbacks:?}"
    );
    // The backend works again on both hosts.
    let vol = c
        .create_volume(json!({"size": 1, "volume_type": "shared"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
}
