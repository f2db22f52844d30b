//! Every backend's pool stats, as the scheduler sees them: polled from the drivers by the
//! stats worker, consumed by placements in between (Cinder's `consume_from_volume`) so a
//! burst of creates spreads as the weigher intends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Backend, OpError, VolumeManager};
use crate::db::{Consumed, DbError, time};
use crate::driver::{self, VolumeStats};
use crate::scheduler::{self, CapValue, PoolState};
use crate::worker::{Worker, WorkerState, WorkerStatus};

/// The last stats a backend reported, or why it could not.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
            let name = name.as_str();
            let entry = match backend.driver().get_volume_stats(true).await {
                Ok(stats) => self.to_backend_stats(&backend, stats),
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
            // Every host's scheduler reads it from the database.
            let key = self.backend_key(name);
            let json = serde_json::to_string(&entry).expect("stats serialise");
            if let Err(e) = self
                .db
                .write_backend_stats(&key, &self.host_name, &json)
                .await
            {
                tracing::warn!(backend = %name, "cannot share the backend's stats: {e}");
            }
            self.stats
                .write()
                .expect("stats lock")
                .insert(name.to_string(), entry);
        }
        // Other hosts' backends, for get_pools and the API's size checks.
        if let Err(e) = self.shared_view(false).await {
            tracing::warn!("cannot read other hosts' backend stats: {e}");
        }
    }

    fn to_backend_stats(&self, backend: &Backend, stats: VolumeStats) -> BackendStats {
        let host = self.backend_key(&backend.name);
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

    /// Drops a removed backend's stats.
    pub fn forget_stats(&self, name: &str) {
        self.stats.write().expect("stats lock").remove(name);
    }

    /// This host's backends' last stats, by backend name.
    pub fn stats(&self) -> BTreeMap<String, BackendStats> {
        self.stats.read().expect("stats lock").clone()
    }

    /// Every backend's last stats, this host's and (as the scheduler last read them)
    /// other hosts': for `scheduler-stats/get_pools`.
    pub fn all_stats(&self) -> Vec<BackendStats> {
        let mut all: Vec<BackendStats> = self.stats().into_values().collect();
        all.extend(
            self.remote_stats
                .read()
                .expect("stats lock")
                .values()
                .cloned(),
        );
        all
    }

    /// The largest size, in GB, a volume could ever have: on its own pool when `host`
    /// (`host@backend#pool`) names one whose stats are known (`true`), else on the
    /// largest pool (`false`). `None` when no stats are known yet or a pool's capacity is
    /// infinite or unknown: then only the scheduler can say. Read under the stats lock,
    /// nothing copied.
    pub fn size_ceiling(&self, host: Option<&str>) -> Option<(f64, bool)> {
        let stats = self.stats.read().expect("stats lock");
        let remote = self.remote_stats.read().expect("stats lock");
        let all = || {
            stats
                .values()
                .chain(remote.values())
                .flat_map(|s| s.pools.iter())
        };
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

    /// Picks a pool among every host's backends (only this host's with `local_only`),
    /// restricted to `only_backend` (`HOST@BACKEND`) when the volume must live beside its
    /// source, and records the capacity it takes in the database, where every host's
    /// scheduler counts it until the backend's next poll (Cinder's
    /// `consume_from_volume`), so a burst of creates through several hosts spreads as the
    /// weigher intends. A refusal is [`OpError::NoValidBackend`]: every pool's reason for
    /// the log, and for the tenant only backends and what they lack.
    pub async fn schedule(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
        local_only: bool,
    ) -> Result<scheduler::Placement, OpError> {
        let shared = self.shared_view(local_only).await?;
        let (placement, thick) = self.place(spec, only_backend, None, &shared)?;
        self.take_pool(spec, &placement, thick).await?;
        Ok(placement)
    }

    /// Places `spec` on `dest` (`HOST@BACKEND` or `HOST@BACKEND#POOL`) if its pools pass
    /// the filters, and takes the capacity there: a migration's destination, which the
    /// administrator named.
    pub async fn schedule_to(
        &self,
        spec: &scheduler::RequestSpec,
        dest: &str,
    ) -> Result<scheduler::Placement, OpError> {
        let (backend, pool) = match dest.split_once('#') {
            Some((b, p)) => (b, Some(p)),
            None => (dest, None),
        };
        let shared = self.shared_view(false).await?;
        let (placement, thick) = self.place(spec, Some(backend), pool, &shared)?;
        self.take_pool(spec, &placement, thick).await?;
        Ok(placement)
    }

    /// Whether the pool a volume is on (`HOST@BACKEND#POOL`) passes the filters for
    /// `spec` now (a retype that may stay where it is), without taking capacity.
    pub async fn fits(&self, spec: &scheduler::RequestSpec, host: &str) -> bool {
        let (backend, pool) = match host.split_once('#') {
            Some((b, p)) => (b, Some(p)),
            None => (host, None),
        };
        match self.shared_view(false).await {
            Ok(shared) => self.place(spec, Some(backend), pool, &shared).is_ok(),
            Err(_) => false,
        }
    }

    async fn take_pool(
        &self,
        spec: &scheduler::RequestSpec,
        placement: &scheduler::Placement,
        thick: bool,
    ) -> Result<(), DbError> {
        let size = spec.size_gib as i64;
        self.db
            .consume_pool(
                &placement.backend,
                &placement.pool,
                Consumed {
                    provisioned_gb: size,
                    free_gb: if thick { size } else { 0 },
                },
            )
            .await?;
        Ok(())
    }

    /// Whether [`VolumeManager::schedule`] would find a pool now, without taking one.
    pub async fn could_schedule(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
        local_only: bool,
    ) -> bool {
        match self.shared_view(local_only).await {
            Ok(shared) => self.place(spec, only_backend, None, &shared).is_ok(),
            Err(_) => false,
        }
    }

    /// Other hosts' live backends (unless `local_only`) and what placements took from
    /// every pool, as the database holds them now.
    async fn shared_view(&self, local_only: bool) -> Result<SharedView, DbError> {
        let consumed = self
            .db
            .pool_consumption()
            .await?
            .into_iter()
            .map(|(b, p, c)| ((b, p), c))
            .collect();
        let mut remote = Vec::new();
        if !local_only {
            let local = self.local_keys();
            // Stats no live host has written lately are a down backend's.
            let fresh_since = time::format(
                SystemTime::now()
                    - self.scheduler.service_down_time
                    - self.scheduler.stats_interval,
            );
            let disabled: std::collections::BTreeSet<String> = self
                .db
                .list_services()
                .await?
                .into_iter()
                .filter(|s| s.disabled && s.binary == super::services::VOLUME_BINARY)
                .map(|s| s.host)
                .collect();
            let mut cache = BTreeMap::new();
            for row in self.db.backend_stats().await? {
                if local.contains(&row.backend) || row.updated_at < fresh_since {
                    continue;
                }
                let stats: BackendStats = match serde_json::from_str(&row.stats) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(backend = %row.backend, "unreadable stats of another host's backend: {e}");
                        continue;
                    }
                };
                let name = row.backend.split_once('@').map_or("", |(_, n)| n);
                let off = disabled.contains(&format!("{}@{name}", row.host));
                cache.insert(row.backend.clone(), stats.clone());
                remote.push((row.backend, stats, off));
            }
            *self.remote_stats.write().expect("stats lock") = cache;
        }
        Ok(SharedView { remote, consumed })
    }

    /// The pool for `spec` and whether the volume takes free space there (thick).
    fn place(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
        only_pool: Option<&str>,
        shared: &SharedView,
    ) -> Result<(scheduler::Placement, bool), OpError> {
        let stats = self.stats.read().expect("stats lock");
        let mut pools = Vec::new();
        // Backends passed by: what the log says, and what a tenant is told.
        let mut unavailable = Vec::new();
        let mut unavailable_public = Vec::new();
        for (name, s) in stats.iter() {
            let key = self.backend_key(name);
            if only_backend.is_some_and(|b| b != key) {
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
        for (key, s, disabled) in &shared.remote {
            if only_backend.is_some_and(|b| b != key) {
                continue;
            }
            if *disabled {
                unavailable.push(format!("{key}: its cinder-volume service is disabled"));
                unavailable_public.push(format!("{key}: Disabled by the administrator"));
                continue;
            }
            if let Some(err) = &s.error {
                unavailable.push(format!("{key}: stats unavailable ({err})"));
                unavailable_public.push(format!("{key}: Unavailable at present"));
            }
            pools.extend(s.pools.iter().cloned());
        }
        if let Some(pool) = only_pool {
            pools.retain(|p| p.pool == pool);
        }
        for p in &mut pools {
            if let Some(c) = shared.consumed.get(&(p.backend.clone(), p.pool.clone())) {
                consume(p, c);
            }
        }
        match scheduler::schedule(&pools, spec, &self.scheduler) {
            Ok(placement) => {
                let thick = pools
                    .iter()
                    .find(|p| p.backend == placement.backend && p.pool == placement.pool)
                    .is_some_and(|p| !p.provisions_thin(spec));
                Ok((placement, thick))
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

    /// Gives back (negative `size_gib`) or takes capacity of the pool a volume placed on
    /// `host` (`HOST@BACKEND#POOL`) lives on, as [`VolumeManager::schedule`] takes it on
    /// placement, until the backend's next poll replaces its stats with the driver's own
    /// figures. Volumes on a pool without thick support are taken to be thin.
    pub async fn adjust_pool(&self, host: &str, size_gib: i64) {
        let Some((backend, pool)) = host.split_once('#') else {
            return;
        };
        let thick = {
            let stats = self.stats.read().expect("stats lock");
            let remote = self.remote_stats.read().expect("stats lock");
            stats
                .values()
                .chain(remote.values())
                .flat_map(|s| s.pools.iter())
                .find(|p| p.backend == backend && p.pool == pool)
                .is_some_and(|p| p.thick_provisioning_support)
        };
        let by = Consumed {
            provisioned_gb: size_gib,
            free_gb: if thick { size_gib } else { 0 },
        };
        if let Err(e) = self.db.consume_pool(backend, pool, by).await {
            tracing::warn!(
                host,
                "cannot record the capacity a volume took or gave back: {e}"
            );
        }
    }
}

/// What the scheduler reads from the database besides this host's own stats.
struct SharedView {
    /// Other hosts' backends: key, stats, whether an administrator disabled it.
    remote: Vec<(String, BackendStats, bool)>,
    /// What placements took from each pool (`backend`, `pool`) since its last poll.
    consumed: BTreeMap<(String, String), Consumed>,
}

/// Counts what placements took against a pool's polled stats. Every volume adds to
/// provisioned and allocated capacity; only a thick one also takes free space, since a
/// thin volume takes none until written (Cinder takes it for both, so a burst of thin
/// creates there can exhaust a pool on paper that has room on disk).
fn consume(p: &mut PoolState, c: &Consumed) {
    if p.free_capacity_gb.is_finite() {
        p.free_capacity_gb = (p.free_capacity_gb - c.free_gb as f64).min(p.total_capacity_gb);
    }
    let size = c.provisioned_gb as f64;
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
        driver::Value::Integers(i) => CapValue::Integers(i),
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
