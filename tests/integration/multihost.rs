//! Several hosts on one PostgreSQL: `host-a` and `host-b` run backend `shared` as cluster
//! `c1` over one directory, `host-c` runs only a backend of its own. Any host serves the
//! API and schedules; a create placed on the cluster is run by whichever cluster host
//! claims its job first; a cluster host that dies has its running jobs taken over by the
//! other once its heartbeat is `service_down_time` old.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, PgServer, Server, psql};

const DOWN_TIME: u64 = 4;

/// A host of the test: `shared` (cluster `c1`, over `share`) when `share` is given, else
/// the embedded default backend `local` only. `slow_bin`, when given, is put first in the
/// backend's program path (a `qemu-img` and `rm` that take their time).
fn host_config(
    name: &str,
    database: &str,
    share: Option<&Path>,
    slow_bin: Option<&Path>,
) -> String {
    let mut config = format!(
        "host_name = \"{name}\"\ndatabase_url = \"{database}\"\nreport_interval = 1\n\
         service_down_time = {DOWN_TIME}\nstats_interval_secs = 1\n\n\
         [volume_types.shared]\nvolume_backend_name = \"shared\"\n\n"
    );
    if let Some(share) = share {
        let share = share.display();
        config.push_str(&format!(
            "[backends.shared]\ndriver = \"nfs\"\ncluster = \"c1\"\n\
             grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\n\
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
    let a = Server::start(&host_config("host-a", &database, Some(share.path()), None));
    let b = Server::start(&host_config("host-b", &database, Some(share.path()), None));
    let c = Server::start(&host_config("host-c", &database, None, None));
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

    let admin = c.client("admin:proj-a");
    let states = service_states(&admin).await;
    for host in ["host-a@shared", "host-b@shared", "host-c@local"] {
        assert_eq!(
            states.get(host).map(String::as_str),
            Some("up"),
            "{states:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_cluster_host_has_its_jobs_finished_by_the_other_and_rejoins() {
    let pg = PgServer::get();
    let database = pg.database();
    let share = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    slow_programs(bin.path(), "0.5");
    let config_a = host_config("host-a", &database, Some(share.path()), Some(bin.path()));
    let config_b = host_config("host-b", &database, Some(share.path()), Some(bin.path()));
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
