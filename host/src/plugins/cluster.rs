//! Swaps of a backend several hosts run as one cluster, coordinated through the database:
//! the host asked records an open swap and takes its part; every other live host of the
//! cluster finds the swap ([`ClusterSwaps`], a worker on each host) and takes its own:
//! load, probe, switch, probation, exactly as a swap on one host. A host that refuses the
//! driver, or whose probation fails, rolls the swap back for all: the others see it and
//! return to the driver they had. The host asked answers once every live host switched, or
//! with the first host's refusal. Each host records its own plugin events, with its name.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Part, PluginManager, SwapError, SwapOutcome};
use crate::db::{ClusterSwap, PluginEvent, time};
use crate::worker::{Worker, WorkerState, WorkerStatus};

/// How long the host asked waits for the others to take their part.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);
/// How often each host looks for swaps of its clusters.
const LOOK_EVERY: Duration = Duration::from_millis(200);

fn part_name(part: Part) -> &'static str {
    match part {
        Part::Target => "target",
        _ => "volume",
    }
}

fn part_of(name: &str) -> Part {
    if name == "target" {
        Part::Target
    } else {
        Part::Volume
    }
}

impl PluginManager {
    pub(super) async fn swap_cluster(
        self: &Arc<Self>,
        backend_name: &str,
        part: Part,
        wasm_path: PathBuf,
        manifest_path: Option<PathBuf>,
        probation: Option<Duration>,
    ) -> Result<SwapOutcome, SwapError> {
        let db = &self.volumes.db;
        let key = self.volumes.backend_key(backend_name);
        let up_since = time::format(SystemTime::now() - self.volumes.service_down_time());
        let mut hosts = db
            .live_cluster_hosts(&key, &up_since)
            .await
            .map_err(|e| SwapError::Cluster(format!("cannot read the cluster's hosts: {e}")))?;
        if !hosts.contains(&self.host_name) {
            hosts.push(self.host_name.clone());
        }
        let swap = ClusterSwap {
            id: uuid::Uuid::new_v4().to_string(),
            backend: key.clone(),
            part: part_name(part).into(),
            wasm: wasm_path.display().to_string(),
            manifest: manifest_path.as_ref().map(|p| p.display().to_string()),
            probation_ms: probation.unwrap_or(self.default_probation).as_millis() as i64,
            state: "open".into(),
            reason: None,
            created_by: self.host_name.clone(),
            created_at: time::now(),
        };
        db.open_cluster_swap(&swap)
            .await
            .map_err(|e| SwapError::Cluster(format!("cannot record the swap: {e}")))?;
        tracing::info!(backend = %key, swap = %swap.id, hosts = ?hosts, "swapping the driver on every host of the cluster");
        let mine = self.take_part(&swap).await;
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            let rows = db.swap_hosts(&swap.id).await.unwrap_or_default();
            let failed = rows
                .iter()
                .find(|r| r.state == "refused" || r.state == "rolled-back");
            if let Some(f) = failed {
                let why = format!(
                    "host {} {}: {}; every host of cluster {key} keeps (or went back to) the driver it had",
                    f.host,
                    f.state,
                    f.reason.as_deref().unwrap_or("no reason given")
                );
                let _ = db
                    .close_cluster_swap(&swap.id, "rolled-back", Some(&why))
                    .await;
                self.follow_rollback(&swap, &why).await;
                self.wait_rolled_back(&swap.id, &hosts, deadline).await;
                return Err(SwapError::Cluster(format!(
                    "the swap was rolled back: {why}"
                )));
            }
            let switched = |h: &String| {
                rows.iter()
                    .any(|r| &r.host == h && (r.state == "swapped" || r.state == "passed"))
            };
            if hosts.iter().all(switched) {
                let mut outcome = mine?;
                outcome.hosts = hosts;
                return Ok(outcome);
            }
            if Instant::now() > deadline {
                let late: Vec<&String> = hosts.iter().filter(|h| !switched(h)).collect();
                let why = format!(
                    "host(s) {late:?} did not take their part within {} s",
                    ANSWER_WITHIN.as_secs()
                );
                let _ = db
                    .close_cluster_swap(&swap.id, "rolled-back", Some(&why))
                    .await;
                self.follow_rollback(&swap, &why).await;
                return Err(SwapError::Cluster(format!(
                    "the swap was rolled back: {why}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (until `deadline`) for every host of a rolled-back swap to have refused it or
    /// gone back to its driver, so the answer describes the cluster as it is.
    async fn wait_rolled_back(&self, id: &str, hosts: &[String], deadline: Instant) {
        while Instant::now() < deadline {
            let rows = self.volumes.db.swap_hosts(id).await.unwrap_or_default();
            let settled = |h: &String| {
                rows.iter()
                    .any(|r| &r.host == h && (r.state == "refused" || r.state == "rolled-back"))
            };
            if hosts.iter().all(settled) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// This host's part in a cluster swap: the swap, then its record.
    async fn take_part(self: &Arc<Self>, swap: &ClusterSwap) -> Result<SwapOutcome, SwapError> {
        let Some(name) = swap.backend.split_once('@').map(|(_, n)| n.to_string()) else {
            return Err(SwapError::UnknownBackend(swap.backend.clone()));
        };
        let result = self
            .swap_here(
                &name,
                part_of(&swap.part),
                PathBuf::from(&swap.wasm),
                swap.manifest.as_ref().map(PathBuf::from),
                Some(Duration::from_millis(swap.probation_ms.max(0) as u64)),
                Some(swap.id.clone()),
            )
            .await;
        let (state, reason) = match &result {
            Ok(_) => ("swapped", None),
            Err(e) => ("refused", Some(e.to_string())),
        };
        if let Err(e) = self
            .volumes
            .db
            .set_swap_host(&swap.id, &self.host_name, state, reason.as_deref())
            .await
        {
            tracing::error!(swap = %swap.id, "cannot record this host's part in the swap: {e}");
        }
        result
    }

    /// Goes back to the driver this host had before a cluster swap that was rolled back
    /// elsewhere, if it switched.
    async fn follow_rollback(&self, swap: &ClusterSwap, why: &str) {
        let db = &self.volumes.db;
        let rows = db.swap_hosts(&swap.id).await.unwrap_or_default();
        let mine = rows.iter().find(|r| r.host == self.host_name);
        if !mine.is_some_and(|r| r.state == "swapped" || r.state == "passed") {
            return;
        }
        let Some(name) = swap.backend.split_once('@').map(|(_, n)| n) else {
            return;
        };
        let part = part_of(&swap.part);
        if let Ok(slot) = self.slot(name, part) {
            let current = slot.driver();
            if let Some(broken) = slot.roll_back_from(&current) {
                let restored = slot.driver();
                tracing::warn!(backend = name, swap = %swap.id, from = %super::label(&broken), to = %super::label(&restored), "rolled back with the cluster: {why}");
                self.record(PluginEvent::new(
                    &part.event_name(name),
                    "rolled-back",
                    Some(&super::label(&broken)),
                    Some(&super::label(&restored)),
                    Some(format!("with cluster {}: {why}", swap.backend)),
                    None,
                ))
                .await;
                self.volumes.refresh_stats();
            }
        }
        let _ = db
            .set_swap_host(&swap.id, &self.host_name, "rolled-back", Some(why))
            .await;
    }

    /// This host's probation of a cluster swap failed (it has rolled back itself): the
    /// swap is rolled back for every host.
    pub(super) async fn probation_failed(&self, swap_id: &str, reason: &str) {
        let db = &self.volumes.db;
        let why = format!("probation failed on host {}: {reason}", self.host_name);
        let _ = db
            .set_swap_host(swap_id, &self.host_name, "rolled-back", Some(&why))
            .await;
        let _ = db
            .close_cluster_swap(swap_id, "rolled-back", Some(&why))
            .await;
    }

    /// This host's probation of a cluster swap passed; once every host's has, the swap is
    /// committed.
    pub(super) async fn probation_passed(&self, swap_id: &str) {
        let db = &self.volumes.db;
        let _ = db
            .set_swap_host(swap_id, &self.host_name, "passed", None)
            .await;
        if let Ok(rows) = db.swap_hosts(swap_id).await
            && rows.iter().all(|r| r.state == "passed")
        {
            let _ = db.close_cluster_swap(swap_id, "committed", None).await;
        }
    }
}

/// Each host's watch on the swaps of its clusters: takes its part in a new one, and
/// follows one rolled back elsewhere.
pub struct ClusterSwaps {
    plugins: Arc<PluginManager>,
    /// `CLUSTER@BACKEND` of every backend this host runs in a cluster.
    keys: Vec<String>,
    joined: u64,
}

impl ClusterSwaps {
    pub fn new(plugins: Arc<PluginManager>) -> ClusterSwaps {
        let keys = plugins
            .volumes
            .backends
            .iter()
            .filter(|(_, b)| b.config.cluster.is_some())
            .map(|(name, _)| plugins.volumes.backend_key(&name))
            .collect();
        ClusterSwaps {
            plugins,
            keys,
            joined: 0,
        }
    }
}

impl Worker for ClusterSwaps {
    fn name(&self) -> String {
        "cluster-swaps".into()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            detail: format!("{} cluster swaps joined", self.joined),
            ..WorkerStatus::default()
        }
    }

    async fn work(&mut self) -> WorkerState {
        if self.keys.is_empty() {
            return WorkerState::Done;
        }
        let db = &self.plugins.volumes.db;
        // Swaps older than an hour are history: their probations are long over.
        let since = time::format(SystemTime::now() - Duration::from_secs(3600));
        let swaps = match db.live_cluster_swaps(&self.keys, &since).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot read the cluster swaps: {e}");
                return WorkerState::Idle;
            }
        };
        let me = &self.plugins.host_name;
        for swap in swaps {
            let rows = db.swap_hosts(&swap.id).await.unwrap_or_default();
            let mine = rows.iter().find(|r| &r.host == me);
            match (swap.state.as_str(), mine) {
                ("open", None) if &swap.created_by != me => {
                    self.joined += 1;
                    let _ = self.plugins.take_part(&swap).await;
                }
                ("rolled-back", Some(r)) if r.state == "swapped" || r.state == "passed" => {
                    let why = swap.reason.clone().unwrap_or_default();
                    self.plugins.follow_rollback(&swap, &why).await;
                }
                ("rolled-back", None) => {
                    // Rolled back before this host took part: it keeps its driver.
                    let _ = db
                        .set_swap_host(
                            &swap.id,
                            me,
                            "rolled-back",
                            Some("the swap was rolled back before this host took part"),
                        )
                        .await;
                }
                _ => {}
            }
        }
        WorkerState::Idle
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
