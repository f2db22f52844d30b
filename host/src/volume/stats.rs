//! Every backend's pool stats, as the scheduler sees them: polled from the drivers by the
//! stats worker, consumed by placements in between (Cinder's `consume_from_volume`) so a
//! burst of creates spreads as the weigher intends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Backend, OpError, VolumeManager};
use crate::driver::{self, VolumeStats};
use crate::scheduler::{self, CapValue, PoolState};
use crate::worker::{Worker, WorkerState, WorkerStatus};

/// The last stats a backend reported, or why it could not.
#[derive(Clone, Debug)]
pub struct BackendStats {
    pub pools: Vec<PoolState>,
    pub updated_at: SystemTime,
    pub error: Option<String>,
    pub volume_backend_name: String,
    pub vendor_name: String,
    pub driver_version: String,
    pub storage_protocol: String,
}

impl VolumeManager {
    /// Asks every backend for its stats once.
    pub async fn poll_stats(&self) {
        for (name, backend) in &self.backends {
            let entry = match backend.driver().get_volume_stats(true).await {
                Ok(stats) => self.to_backend_stats(backend, stats),
                Err(e) => {
                    tracing::warn!(backend = %name, "get_volume_stats failed: {e}");
                    BackendStats {
                        pools: Vec::new(),
                        updated_at: SystemTime::now(),
                        error: Some(e.to_string()),
                        volume_backend_name: String::new(),
                        vendor_name: String::new(),
                        driver_version: String::new(),
                        storage_protocol: String::new(),
                    }
                }
            };
            self.stats
                .write()
                .expect("stats lock")
                .insert(name.clone(), entry);
        }
    }

    fn to_backend_stats(&self, backend: &Backend, stats: VolumeStats) -> BackendStats {
        let host = self.backend_host(&backend.name);
        let standard = [
            ("volume_backend_name", &stats.volume_backend_name),
            ("vendor_name", &stats.vendor_name),
            ("driver_version", &stats.driver_version),
            ("storage_protocol", &stats.storage_protocol),
        ];
        let pools = stats
            .pools
            .into_iter()
            .map(|p| {
                let mut capabilities: BTreeMap<String, CapValue> = standard
                    .iter()
                    .map(|(k, v)| (k.to_string(), CapValue::Text((*v).clone())))
                    .collect();
                for (k, v) in p.capabilities {
                    capabilities.insert(k, cap_value(v));
                }
                PoolState {
                    backend: host.clone(),
                    pool: p.pool_name,
                    availability_zone: backend.availability_zone.clone(),
                    total_capacity_gb: p.total_capacity_gb,
                    free_capacity_gb: p.free_capacity_gb,
                    provisioned_capacity_gb: p
                        .provisioned_capacity_gb
                        .or(p.allocated_capacity_gb)
                        .unwrap_or(0.0),
                    allocated_capacity_gb: p.allocated_capacity_gb.unwrap_or(0.0),
                    reserved_percentage: p.reserved_percentage,
                    max_over_subscription_ratio: p.max_over_subscription_ratio,
                    thin_provisioning_support: p.thin_provisioning_support,
                    thick_provisioning_support: p.thick_provisioning_support,
                    multiattach: p.multiattach,
                    capabilities,
                }
            })
            .collect();
        BackendStats {
            pools,
            updated_at: SystemTime::now(),
            error: None,
            volume_backend_name: stats.volume_backend_name,
            vendor_name: stats.vendor_name,
            driver_version: stats.driver_version,
            storage_protocol: stats.storage_protocol,
        }
    }

    /// Every backend's last stats, for `scheduler-stats/get_pools`.
    pub fn stats(&self) -> BTreeMap<String, BackendStats> {
        self.stats.read().expect("stats lock").clone()
    }

    /// The largest size, in GB, a volume could ever have: on its own pool when `host`
    /// (`host@backend#pool`) names one whose stats are known (`true`), else on the
    /// largest pool (`false`). `None` when no stats are known yet or a pool's capacity is
    /// infinite or unknown: then only the scheduler can say. Read under the stats lock,
    /// nothing copied.
    pub fn size_ceiling(&self, host: Option<&str>) -> Option<(f64, bool)> {
        let stats = self.stats.read().expect("stats lock");
        let all = || stats.values().flat_map(|s| s.pools.iter());
        let own = host
            .and_then(|h| h.split_once('#'))
            .and_then(|(b, pool)| all().find(|p| p.backend == b && p.pool == pool));
        if let Some(p) = own {
            return p.ceiling_gb().map(|c| (c, true));
        }
        let mut largest = None;
        for p in all() {
            let c = p.ceiling_gb()?;
            largest = Some(largest.map_or(c, |l: f64| l.max(c)));
        }
        largest.map(|l| (l, false))
    }

    /// The pools a backend last reported.
    pub fn pools_of(&self, backend: &str) -> Vec<String> {
        self.stats
            .read()
            .expect("stats lock")
            .get(backend)
            .map(|s| s.pools.iter().map(|p| p.pool.clone()).collect())
            .unwrap_or_default()
    }

    /// Picks a pool, restricted to `only_backend` when the volume must live beside its
    /// source; consumes the size from the chosen pool's cached stats so a burst of
    /// creates spreads as the weigher intends (Cinder's `consume_from_volume`). A refusal
    /// is [`OpError::NoValidBackend`]: every pool's reason for the log, and for the tenant
    /// only backends and what they lack.
    pub fn schedule(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
    ) -> Result<scheduler::Placement, OpError> {
        self.place(spec, only_backend, true)
    }

    /// Whether [`VolumeManager::schedule`] would find a pool now, without taking one.
    pub fn could_schedule(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
    ) -> bool {
        self.place(spec, only_backend, false).is_ok()
    }

    fn place(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
        consume_it: bool,
    ) -> Result<scheduler::Placement, OpError> {
        let mut stats = self.stats.write().expect("stats lock");
        let mut pools = Vec::new();
        // Backends passed by: what the log says, and what a tenant is told.
        let mut unavailable = Vec::new();
        let mut unavailable_public = Vec::new();
        for (name, s) in stats.iter() {
            if only_backend.is_some_and(|b| b != name) {
                continue;
            }
            if self.is_disabled(name) {
                // Cinder's host manager leaves a disabled service's pools out altogether.
                unavailable.push(format!(
                    "{}: its cinder-volume service is disabled",
                    self.backend_host(name)
                ));
                unavailable_public.push(format!(
                    "{}: Disabled by the administrator",
                    self.backend_host(name)
                ));
                continue;
            }
            let driver = self.backends.get(name).map(|b| b.driver());
            if let Some((driver, left)) = driver.and_then(|d| d.quarantined_for().map(|l| (d, l))) {
                unavailable.push(format!(
                    "{}: plugin {} {} is quarantined for {} s after repeated sandbox failures",
                    self.backend_host(name),
                    driver.identity.name,
                    driver.identity.version,
                    left.as_secs() + 1
                ));
                unavailable_public.push(format!(
                    "{}: Unavailable at present after repeated failures",
                    self.backend_host(name)
                ));
                continue;
            }
            if let Some(err) = &s.error {
                unavailable.push(format!(
                    "{}: stats unavailable ({err})",
                    self.backend_host(name)
                ));
                unavailable_public.push(format!(
                    "{}: Unavailable at present",
                    self.backend_host(name)
                ));
            }
            pools.extend(s.pools.iter().cloned());
        }
        match scheduler::schedule(&pools, spec, &self.scheduler) {
            Ok(placement) => {
                if consume_it
                    && let Some(p) = stats
                        .values_mut()
                        .flat_map(|s| s.pools.iter_mut())
                        .find(|p| p.backend == placement.backend && p.pool == placement.pool)
                {
                    consume(p, spec.size_gib as f64, !p.provisions_thin(spec));
                }
                Ok(placement)
            }
            Err(e) => {
                let mut detail = e.to_string();
                let mut public = e.public();
                if !unavailable.is_empty() {
                    detail.push_str(&format!(" Backends passed by: {}.", unavailable.join("; ")));
                    public.push_str(&format!(
                        " Backends passed by: {}.",
                        unavailable_public.join("; ")
                    ));
                }
                Err(OpError::NoValidBackend { public, detail })
            }
        }
    }

    /// Changes a pool's cached stats by `size_gib` (positive consumes, negative gives
    /// back: a deleted or never-made volume), as [`VolumeManager::schedule`] consumes on
    /// placement, until the next poll replaces them with the driver's own figures.
    /// Volumes on a pool without thick support are taken to be thin.
    pub fn adjust_pool(&self, host: &str, size_gib: i64) {
        let Some((backend, pool)) = host.split_once('#') else {
            return;
        };
        let mut stats = self.stats.write().expect("stats lock");
        if let Some(p) = stats
            .values_mut()
            .flat_map(|s| s.pools.iter_mut())
            .find(|p| p.backend == backend && p.pool == pool)
        {
            let thick = p.thick_provisioning_support;
            consume(p, size_gib as f64, thick);
        }
    }
}

/// Counts `size` GB against a pool's cached stats (negative gives it back). Every volume
/// adds to provisioned and allocated capacity; only a thick one also takes free space,
/// since a thin volume takes none until written (Cinder takes it for both, so a burst
/// of thin creates there can exhaust a pool on paper that has room on disk).
fn consume(p: &mut PoolState, size: f64, thick: bool) {
    if thick && p.free_capacity_gb.is_finite() {
        p.free_capacity_gb = (p.free_capacity_gb - size).min(p.total_capacity_gb);
    }
    p.provisioned_capacity_gb = (p.provisioned_capacity_gb + size).max(0.0);
    p.allocated_capacity_gb = (p.allocated_capacity_gb + size).max(0.0);
}

fn cap_value(v: driver::Value) -> CapValue {
    match v {
        driver::Value::Text(s) => CapValue::Text(s),
        driver::Value::Integer(i) => CapValue::Integer(i),
        driver::Value::Number(n) => CapValue::Number(n),
        driver::Value::Flag(b) => CapValue::Flag(b),
        driver::Value::Texts(t) => CapValue::Texts(t),
    }
}

/// Polls every backend's stats each `interval`, and at once when asked (after a swap or
/// a rollback, so the scheduler sees the new driver's own figures).
pub struct StatsPoller {
    manager: Arc<VolumeManager>,
    interval: Duration,
    next: Instant,
    polls: u64,
}

impl StatsPoller {
    /// The first poll is due one interval from now: start-up polls once itself.
    pub fn new(manager: Arc<VolumeManager>, interval: Duration) -> StatsPoller {
        StatsPoller {
            manager,
            interval,
            next: Instant::now() + interval,
            polls: 0,
        }
    }
}

impl Worker for StatsPoller {
    fn name(&self) -> String {
        "stats-poller".into()
    }

    fn status(&self) -> WorkerStatus {
        let failing: Vec<String> = self
            .manager
            .stats()
            .into_iter()
            .filter(|(_, s)| s.error.is_some())
            .map(|(name, _)| name)
            .collect();
        WorkerStatus {
            detail: format!(
                "{} polls, every {} s{}",
                self.polls,
                self.interval.as_secs(),
                if failing.is_empty() {
                    String::new()
                } else {
                    format!("; no stats from {}", failing.join(", "))
                }
            ),
            ..WorkerStatus::default()
        }
    }

    async fn work(&mut self) -> WorkerState {
        if Instant::now() < self.next {
            return WorkerState::Idle;
        }
        self.manager.poll_stats().await;
        self.polls += 1;
        self.next = Instant::now() + self.interval;
        WorkerState::Idle
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep_until(self.next.into()) => {}
            _ = self.manager.stats_wanted.notified() => self.next = Instant::now(),
        }
    }
}
