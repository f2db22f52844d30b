//! The volume manager: runs durable jobs against backend drivers, each operation a flow of
//! tasks that revert in reverse order on failure, and keeps every backend's pool stats
//! fresh for the scheduler.

mod attach;
pub mod flow;
mod ops;

pub use attach::{LOCAL_CONNECTOR_KEY, local_connector};

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::config::BackendConfig;
use crate::db::{Db, Job, Message, time};
use crate::runtime::{CallError, DriverPool, latest};
use crate::scheduler::{self, CapValue, PoolState, SchedulerConfig};

/// A driver that can be swapped while calls run: a call takes the current pool once and
/// finishes on it; the one it replaced is kept for a rollback.
pub struct DriverSlot {
    current: RwLock<Arc<DriverPool>>,
    previous: RwLock<Option<Arc<DriverPool>>>,
}

impl DriverSlot {
    pub fn new(driver: Arc<DriverPool>) -> DriverSlot {
        DriverSlot {
            current: RwLock::new(driver),
            previous: RwLock::new(None),
        }
    }

    /// The driver new calls go to.
    pub fn driver(&self) -> Arc<DriverPool> {
        self.current.read().expect("driver lock").clone()
    }

    /// The driver a rollback would return to.
    pub fn previous(&self) -> Option<Arc<DriverPool>> {
        self.previous.read().expect("driver lock").clone()
    }

    /// Makes `next` current; the old one becomes what a rollback returns to.
    pub fn switch_to(&self, next: Arc<DriverPool>) -> Arc<DriverPool> {
        let mut current = self.current.write().expect("driver lock");
        let old = std::mem::replace(&mut *current, next);
        *self.previous.write().expect("driver lock") = Some(old.clone());
        old
    }

    /// Returns to the previous driver, if `expected` is still current (a probation that
    /// lost a race with a newer swap must not undo it).
    pub fn roll_back_from(&self, expected: &Arc<DriverPool>) -> Option<Arc<DriverPool>> {
        let mut current = self.current.write().expect("driver lock");
        if !Arc::ptr_eq(&current, expected) {
            return None;
        }
        let prev = self.previous.write().expect("driver lock").take()?;
        let broken = std::mem::replace(&mut *current, prev);
        Some(broken)
    }
}

/// One configured backend: its volume driver and, when it exports through one, its
/// target driver; each can be swapped on its own.
pub struct Backend {
    pub name: String,
    pub availability_zone: String,
    pub config: BackendConfig,
    pub volume: DriverSlot,
    /// The target driver that exports this backend's volumes, when the volume driver hands
    /// over a local device (`[backends.NAME.target]`).
    pub target: Option<DriverSlot>,
}

impl Backend {
    pub fn new(
        name: String,
        availability_zone: String,
        config: BackendConfig,
        driver: Arc<DriverPool>,
        target: Option<Arc<DriverPool>>,
    ) -> Backend {
        Backend {
            name,
            availability_zone,
            config,
            volume: DriverSlot::new(driver),
            target: target.map(DriverSlot::new),
        }
    }

    /// The volume driver new calls go to.
    pub fn driver(&self) -> Arc<DriverPool> {
        self.volume.driver()
    }

    /// The target driver new calls go to, if the backend has one.
    pub fn target(&self) -> Option<Arc<DriverPool>> {
        self.target.as_ref().map(DriverSlot::driver)
    }
}

/// The last stats a backend reported, or why it could not.
#[derive(Clone, Debug)]
pub struct BackendStats {
    pub pools: Vec<PoolState>,
    pub updated_at: SystemTime,
    pub error: Option<String>,
    pub vendor_name: String,
    pub driver_version: String,
    pub storage_protocol: String,
}

pub struct VolumeManager {
    pub db: Db,
    pub host_name: String,
    pub backends: BTreeMap<String, Backend>,
    stats: RwLock<BTreeMap<String, BackendStats>>,
    scheduler: SchedulerConfig,
    jobs: mpsc::UnboundedSender<String>,
}

/// Why an operation failed, in words a user of the API can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NoValidBackend(String),
    #[error("{0}")]
    Driver(#[from] CallError),
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    #[error("{0}")]
    Gone(String),
}

impl VolumeManager {
    /// Makes the manager and the receiver its job loop reads from.
    pub fn new(
        db: Db,
        host_name: String,
        backends: BTreeMap<String, Backend>,
        scheduler: SchedulerConfig,
    ) -> (Arc<VolumeManager>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let m = VolumeManager {
            db,
            host_name,
            backends,
            stats: RwLock::new(BTreeMap::new()),
            scheduler,
            jobs: tx,
        };
        (Arc::new(m), rx)
    }

    /// `host@backend`.
    pub fn backend_host(&self, backend: &str) -> String {
        format!("{}@{backend}", self.host_name)
    }

    /// Hands a committed job to the job loop.
    pub fn submit(&self, job_id: &str) {
        let _ = self.jobs.send(job_id.to_string());
    }

    /// Runs submitted jobs, each on its own task, until the channel closes.
    pub async fn run_jobs(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<String>) {
        while let Some(id) = rx.recv().await {
            let me = self.clone();
            tokio::spawn(async move { me.run_job(&id).await });
        }
    }

    async fn run_job(&self, id: &str) {
        match self.db.claim_job(id, &self.host_name).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(job = id, "cannot claim job: {e}");
                return;
            }
        }
        let job = match self.db.get_job(id).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(job = id, "cannot read job: {e}");
                return;
            }
        };
        let result = self.execute(&job, false).await;
        let (state, error) = match &result {
            Ok(()) => ("done", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        if let Err(e) = self.db.finish_job(&job.id, state, error.as_deref()).await {
            tracing::error!(job = id, "cannot record job outcome: {e}");
        }
    }

    /// Finds the work a previous run left: pending jobs run now; jobs that were running
    /// when the host died are finished (deletes, extends) or reverted (creates).
    pub async fn recover(&self) -> Result<usize, crate::db::DbError> {
        let jobs = self.db.unfinished_jobs().await?;
        let n = jobs.len();
        for job in jobs {
            if job.state == "pending" {
                self.submit(&job.id);
                continue;
            }
            tracing::warn!(job = %job.id, kind = %job.kind, resource = %job.resource_id, "recovering job interrupted by a restart");
            let result = self.execute(&job, true).await;
            let (state, error) = match &result {
                Ok(()) => ("done", None),
                Err(e) => ("failed", Some(e.to_string())),
            };
            self.db.finish_job(&job.id, state, error.as_deref()).await?;
        }
        Ok(n)
    }

    async fn execute(&self, job: &Job, recovering: bool) -> Result<(), OpError> {
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or_default();
        let request_id = payload
            .get("request_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let span = tracing::info_span!(
            "job",
            kind = %job.kind,
            resource = %job.resource_id,
            request_id = request_id.as_deref().unwrap_or("")
        );
        tracing::Instrument::instrument(self.dispatch(job, &payload, request_id, recovering), span)
            .await
    }

    async fn dispatch(
        &self,
        job: &Job,
        payload: &serde_json::Value,
        request_id: Option<String>,
        recovering: bool,
    ) -> Result<(), OpError> {
        match job.kind.as_str() {
            "create_volume" => {
                ops::create_volume(self, &job.resource_id, request_id, recovering).await
            }
            "delete_volume" => ops::delete_volume(self, &job.resource_id, request_id).await,
            "extend_volume" => {
                let new_size = payload
                    .get("new_size")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0);
                ops::extend_volume(self, &job.resource_id, new_size, request_id).await
            }
            "create_snapshot" => {
                ops::create_snapshot(self, &job.resource_id, request_id, recovering).await
            }
            "delete_snapshot" => ops::delete_snapshot(self, &job.resource_id, request_id).await,
            other => {
                tracing::error!("unknown job kind {other}");
                Err(OpError::Gone(format!("unknown job kind {other}")))
            }
        }
    }

    /// Records a user message (Cinder's messages API) about a failed operation.
    pub async fn user_message(
        &self,
        project_id: &str,
        request_id: Option<String>,
        resource_type: &str,
        resource_uuid: &str,
        event_id: &str,
        text: String,
    ) {
        let m = Message {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_string(),
            request_id,
            resource_type: resource_type.to_string(),
            resource_uuid: Some(resource_uuid.to_string()),
            event_id: event_id.to_string(),
            message_level: "ERROR".into(),
            user_message: text,
            created_at: time::now(),
            expires_at: time::after(Duration::from_secs(30 * 86_400)),
        };
        if let Err(e) = self.db.insert_message(&m).await {
            tracing::error!("cannot record user message: {e}");
        }
    }

    // ---- stats --------------------------------------------------------------------

    /// Asks every backend for its stats once.
    pub async fn poll_stats(&self) {
        for (name, backend) in &self.backends {
            let result = backend
                .driver()
                .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
                .await;
            let entry = match result {
                Ok(stats) => self.to_backend_stats(backend, stats),
                Err(e) => {
                    tracing::warn!(backend = %name, "get_volume_stats failed: {e}");
                    BackendStats {
                        pools: Vec::new(),
                        updated_at: SystemTime::now(),
                        error: Some(e.to_string()),
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

    /// Polls stats every `interval` forever.
    pub async fn run_stats(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.poll_stats().await;
        }
    }

    fn to_backend_stats(
        &self,
        backend: &Backend,
        stats: latest::ashlar::driver::types::VolumeStats,
    ) -> BackendStats {
        let host = self.backend_host(&backend.name);
        let standard = [
            (
                "volume_backend_name",
                CapValue::Text(stats.volume_backend_name.clone()),
            ),
            ("vendor_name", CapValue::Text(stats.vendor_name.clone())),
            (
                "driver_version",
                CapValue::Text(stats.driver_version.clone()),
            ),
            (
                "storage_protocol",
                CapValue::Text(stats.storage_protocol.clone()),
            ),
        ];
        let pools = stats
            .pools
            .into_iter()
            .map(|p| {
                let mut capabilities: BTreeMap<String, CapValue> = standard
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
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
            vendor_name: stats.vendor_name,
            driver_version: stats.driver_version,
            storage_protocol: stats.storage_protocol,
        }
    }

    /// Every backend's last stats, for `scheduler-stats/get_pools`.
    pub fn stats(&self) -> BTreeMap<String, BackendStats> {
        self.stats.read().expect("stats lock").clone()
    }

    /// Picks a pool, restricted to `only_backend` when the volume must live beside its
    /// source; consumes the size from the chosen pool's cached stats so a burst of
    /// creates spreads as the weigher intends (Cinder's `consume_from_volume`).
    pub fn schedule(
        &self,
        spec: &scheduler::RequestSpec,
        only_backend: Option<&str>,
    ) -> Result<scheduler::Placement, String> {
        let mut stats = self.stats.write().expect("stats lock");
        let mut pools = Vec::new();
        let mut unavailable = Vec::new();
        for (name, s) in stats.iter() {
            if only_backend.is_some_and(|b| b != name) {
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
                continue;
            }
            if let Some(err) = &s.error {
                unavailable.push(format!(
                    "{}: stats unavailable ({err})",
                    self.backend_host(name)
                ));
            }
            pools.extend(s.pools.iter().cloned());
        }
        match scheduler::schedule(&pools, spec, &self.scheduler) {
            Ok(placement) => {
                if let Some(p) = stats
                    .values_mut()
                    .flat_map(|s| s.pools.iter_mut())
                    .find(|p| p.backend == placement.backend && p.pool == placement.pool)
                {
                    consume(p, spec.size_gib as f64, !p.provisions_thin(spec));
                }
                Ok(placement)
            }
            Err(e) => {
                let mut msg = e.to_string();
                if !unavailable.is_empty() {
                    msg.push_str(&format!(" Backends passed by: {}.", unavailable.join("; ")));
                }
                Err(msg)
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

    /// The backend a placed volume lives on.
    pub fn backend_of(&self, host: Option<&str>) -> Option<&Backend> {
        let host = host?;
        let backend = host.split_once('@')?.1;
        let backend = backend.split_once('#').map_or(backend, |(b, _)| b);
        self.backends.get(backend)
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

fn cap_value(v: latest::ashlar::driver::types::Value) -> CapValue {
    use latest::ashlar::driver::types::Value;
    match v {
        Value::Text(s) => CapValue::Text(s),
        Value::Integer(i) => CapValue::Integer(i),
        Value::Number(n) => CapValue::Number(n),
        Value::Flag(b) => CapValue::Flag(b),
        Value::Texts(t) => CapValue::Texts(t),
    }
}
