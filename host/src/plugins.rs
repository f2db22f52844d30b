//! The operator's plugin surface: hot swap with probation and rollback, per-plugin
//! figures, and the checks `ashlar plugin inspect` / `validate` run offline. Every driver
//! is read and specified through [`source`], whichever of these loads it.
//!
//! A swap: load the new component (contract version, world, manifest against the
//! backend's grants, compile or take the cached artifact), probe it (do-setup on a fresh
//! instance, check-for-setup-error, get-volume-stats), warm its instances, then switch the
//! backend atomically. Calls already running finish on the old driver; new calls go to the
//! new one. A probation window then watches the new driver: a trap, a missed deadline or a
//! failing health probe switches back to the old one and records why.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

pub mod backends;
mod cluster;
pub mod offline;
pub mod scaffold;
pub mod signature;
pub mod source;
pub mod stamp;

pub use cluster::ClusterSwaps;

use crate::config::BACKUP_STORE_NAME;
use crate::db::PluginEvent;
use crate::runtime::{DriverPool, DriverSpec, LoadError, Runtime};
use crate::volume::{Backend, DriverSlot, VolumeManager};
use crate::worker::{Worker, WorkerState, WorkerStatus, Workers};
use source::{DriverConfig, DriverSource, SourceError};

/// How often probation looks at the new driver, and how often it probes its health.
const PROBATION_TICK: Duration = Duration::from_millis(100);
const HEALTH_PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("there is no backend `{0}`; see `ashlar plugin list`")]
    UnknownBackend(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the new driver was refused: {0}")]
    Load(#[from] Box<LoadError>),
    #[error(
        "the new driver failed its {step} probe, so the backend keeps its current driver: {message}"
    )]
    Probe { step: &'static str, message: String },
    #[error("backend `{0}` has no previous driver to roll back to")]
    NothingToRollBack(String),
    #[error("backend `{0}` has no target driver; give it a [backends.{0}.target] section first")]
    NoTarget(String),
    #[error("this host runs no backup store")]
    NoBackupStore,
    /// A host of the backend's cluster refused or failed the new driver, so every host
    /// went back to the driver it had.
    #[error("{0}")]
    Cluster(String),
}

/// Which of a backend's drivers an operation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// The volume driver (`driver`).
    #[default]
    Volume,
    /// The paired target driver (`[backends.NAME.target]`).
    Target,
    /// The backup store's driver (`[backup]`), named `backup` where a backend's name goes.
    Backup,
}

impl Part {
    /// The part a name and a request's part mean: the reserved name `backup` is the
    /// backup store, whatever part was asked for.
    pub fn of(name: &str, part: Part) -> Part {
        if name == BACKUP_STORE_NAME {
            Part::Backup
        } else {
            part
        }
    }

    /// The name events are recorded under: the backend's, `NAME.target`, or `backup`.
    fn event_name(self, backend: &str) -> String {
        match self {
            Part::Volume => backend.to_string(),
            Part::Target => format!("{backend}.target"),
            Part::Backup => BACKUP_STORE_NAME.to_string(),
        }
    }
}

/// What a swap did.
#[derive(Debug, Serialize)]
pub struct SwapOutcome {
    pub backend: String,
    /// Which of the backend's drivers changed.
    pub part: Part,
    pub from: String,
    pub to: String,
    /// From the request to the switch, including compile (or cache load) and probes.
    pub took_ms: u64,
    pub probation_ms: u64,
    /// For a backend run in a cluster: every host that switched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// One backend's driver, as `ashlar plugin list` shows it.
#[derive(Debug, Serialize)]
pub struct PluginStatus {
    pub backend: String,
    pub plugin: String,
    pub version: String,
    pub contract: String,
    pub world: String,
    pub origin: String,
    pub since: String,
    pub calls: u64,
    pub traps: u64,
    pub driver_errors: u64,
    pub instances_created: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub previous: Option<String>,
    /// Seconds left of a quarantine after repeated sandbox failures, if any.
    pub quarantined_for_secs: Option<u64>,
    pub last_event: Option<PluginEvent>,
}

pub struct PluginManager {
    runtime: Arc<Runtime>,
    volumes: Arc<VolumeManager>,
    workers: Arc<Workers>,
    host_name: String,
    default_probation: Duration,
    /// The config the server started with.
    config: crate::config::Config,
}

/// Makes up to two instances ahead of the switch, so the first calls after it do not
/// pay for instantiation.
async fn prewarm(pool: &Arc<DriverPool>, instances: u32) -> Result<(), SwapError> {
    let warm = (instances as usize).min(2);
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || pool.prewarm(warm))
        .await
        .map_err(|e| SwapError::Probe {
            step: "prewarm",
            message: e.to_string(),
        })?
        .map_err(|e| SwapError::Probe {
            step: "prewarm",
            message: e.to_string(),
        })
}

fn label(pool: &DriverPool) -> String {
    format!("{} {}", pool.identity.name, pool.identity.version)
}

/// A driver slot and what owns it: a backend (held while the slot is used, even if the
/// backend is removed meanwhile) or the backup store.
enum Slot<'a> {
    Backend(Arc<Backend>, Part),
    Backup(&'a DriverSlot),
}

impl std::ops::Deref for Slot<'_> {
    type Target = DriverSlot;
    fn deref(&self) -> &DriverSlot {
        match self {
            Slot::Backend(b, Part::Target) => b.target.as_ref().expect("checked when taken"),
            Slot::Backend(b, _) => &b.volume,
            Slot::Backup(s) => s,
        }
    }
}

impl PluginManager {
    pub fn new(
        runtime: Arc<Runtime>,
        volumes: Arc<VolumeManager>,
        workers: Arc<Workers>,
        host_name: String,
        default_probation: Duration,
        config: crate::config::Config,
    ) -> Arc<Self> {
        Arc::new(PluginManager {
            runtime,
            volumes,
            workers,
            host_name,
            default_probation,
            config,
        })
    }

    fn backend(&self, name: &str) -> Result<Arc<Backend>, SwapError> {
        self.volumes
            .backends
            .get(name)
            .ok_or_else(|| SwapError::UnknownBackend(name.to_string()))
    }

    /// The slot of `part` of backend `name` (the backup store's for [`Part::Backup`]),
    /// held with its backend for as long as the caller uses it.
    fn slot(&self, name: &str, part: Part) -> Result<Slot<'_>, SwapError> {
        match part {
            Part::Volume => Ok(Slot::Backend(self.backend(name)?, part)),
            Part::Target => {
                let backend = self.backend(name)?;
                if backend.target.is_none() {
                    return Err(SwapError::NoTarget(name.to_string()));
                }
                Ok(Slot::Backend(backend, part))
            }
            Part::Backup => self
                .volumes
                .backup
                .as_ref()
                .map(|b| Slot::Backup(&b.slot))
                .ok_or(SwapError::NoBackupStore),
        }
    }

    async fn record(&self, mut event: PluginEvent) {
        event.host = Some(self.host_name.clone());
        if let Err(e) = self.volumes.db.insert_plugin_event(&event).await {
            tracing::error!(backend = %event.backend, "cannot record plugin event: {e}");
        }
    }

    /// Replaces `backend`'s volume or target driver with the component at `wasm_path`
    /// (manifest beside it unless given), then watches it for `probation` (the configured
    /// default if `None`). A backend run in a cluster is swapped on every live host of the
    /// cluster, or on none ([`cluster`]).
    pub async fn swap(
        self: &Arc<Self>,
        backend_name: &str,
        part: Part,
        wasm_path: PathBuf,
        manifest_path: Option<PathBuf>,
        probation: Option<Duration>,
    ) -> Result<SwapOutcome, SwapError> {
        let part = Part::of(backend_name, part);
        if part != Part::Backup && self.backend(backend_name)?.config.cluster.is_some() {
            return self
                .swap_cluster(backend_name, part, wasm_path, manifest_path, probation)
                .await;
        }
        self.swap_here(
            backend_name,
            part,
            wasm_path,
            manifest_path,
            probation,
            None,
        )
        .await
    }

    /// [`PluginManager::swap`] on this host alone; `cluster_swap` names the cluster swap
    /// it is this host's part of, which its probation reports to.
    async fn swap_here(
        self: &Arc<Self>,
        backend_name: &str,
        part: Part,
        wasm_path: PathBuf,
        manifest_path: Option<PathBuf>,
        probation: Option<Duration>,
        cluster_swap: Option<String>,
    ) -> Result<SwapOutcome, SwapError> {
        let started = Instant::now();
        let part = Part::of(backend_name, part);
        let slot = self.slot(backend_name, part)?;
        let event_name = part.event_name(backend_name);
        let source = DriverSource::file(wasm_path, manifest_path);
        let result = match part {
            Part::Backup => self.prepare_backup_store(&source).await,
            _ => {
                self.prepare(&*self.backend(backend_name)?, part, &source)
                    .await
            }
        };
        let current = slot.driver();
        let next = match result {
            Ok(next) => next,
            Err(e) => {
                self.record(PluginEvent::new(
                    &event_name,
                    "refused",
                    Some(&label(&current)),
                    None,
                    Some(e.to_string()),
                    None,
                ))
                .await;
                return Err(e);
            }
        };
        let old = slot.switch_to(next.clone());
        let took_ms = started.elapsed().as_millis() as u64;
        let probation = probation.unwrap_or(self.default_probation);
        tracing::info!(backend = backend_name, ?part, from = %label(&old), to = %label(&next), took_ms, "driver swapped");
        self.record(PluginEvent::new(
            &event_name,
            "swapped",
            Some(&label(&old)),
            Some(&label(&next)),
            None,
            Some(took_ms as i64),
        ))
        .await;
        // The scheduler should see the new driver's own figures, not the old one's.
        self.volumes.refresh_stats();
        self.workers.spawn(Probation {
            plugins: self.clone(),
            backend: backend_name.to_string(),
            part,
            failures_before: next.metrics.sandbox_failures.load(Ordering::Relaxed),
            watched: next.clone(),
            started: Instant::now(),
            window: probation,
            last_probe: Instant::now(),
            cluster_swap,
        });
        Ok(SwapOutcome {
            backend: backend_name.to_string(),
            part,
            from: label(&old),
            to: label(&next),
            took_ms,
            probation_ms: probation.as_millis() as u64,
            hosts: Vec::new(),
        })
    }

    /// Loads and probes a new volume or target driver for `backend` without switching to
    /// it.
    async fn prepare(
        &self,
        backend: &Backend,
        part: Part,
        source: &DriverSource,
    ) -> Result<Arc<DriverPool>, SwapError> {
        let config = part
            .config(&backend.name, &backend.config)
            .ok_or_else(|| SwapError::NoTarget(backend.name.clone()))?;
        let files = source.read()?;
        config.check_signature(&files)?;
        let next = self
            .load_checked(config.spec(files, &self.host_name))
            .await?;
        if part == Part::Volume {
            self.probe_volume_driver(backend, &next).await?;
        }
        prewarm(&next, config.limits.instances).await?;
        Ok(next)
    }

    /// Loads and probes a new backup store driver without switching to it: on top of its
    /// setup check, it must create the configured container (which proves it can write to
    /// its store).
    async fn prepare_backup_store(
        &self,
        source: &DriverSource,
    ) -> Result<Arc<DriverPool>, SwapError> {
        let backup = self
            .volumes
            .backup
            .as_ref()
            .ok_or(SwapError::NoBackupStore)?;
        let config = DriverConfig::backup(&backup.config);
        let files = source.read()?;
        config.check_signature(&files)?;
        let next = self
            .load_checked(config.spec(files, &self.host_name))
            .await?;
        let (pool, container) = (next.clone(), backup.config.container.clone());
        tokio::task::spawn_blocking(move || pool.put_container(&container))
            .await
            .map_err(|e| SwapError::Probe {
                step: "put-container",
                message: e.to_string(),
            })?
            .map_err(|e| SwapError::Probe {
                step: "put-container",
                message: e.to_string(),
            })?;
        prewarm(&next, config.limits.instances).await?;
        Ok(next)
    }

    /// Whether a new volume driver can take over the backend's volumes: it reports pools,
    /// the pools the volumes live in, and the features they use.
    async fn probe_volume_driver(
        &self,
        backend: &Backend,
        next: &Arc<DriverPool>,
    ) -> Result<(), SwapError> {
        let stats = next
            .get_volume_stats(true)
            .await
            .map_err(|e| SwapError::Probe {
                step: "get-volume-stats",
                message: e.to_string(),
            })?;
        if stats.pools.is_empty() {
            return Err(SwapError::Probe {
                step: "get-volume-stats",
                message: "the driver reports no pools".into(),
            });
        }
        // Volumes already placed must still find their pool.
        let old_pools = self.volumes.pools_of(&backend.name);
        for pool in &old_pools {
            if !stats.pools.iter().any(|p| &p.pool_name == pool) {
                return Err(SwapError::Probe {
                    step: "get-volume-stats",
                    message: format!(
                        "the backend's volumes live in pool `{pool}`, which the new driver does not report (it reports {})",
                        stats
                            .pools
                            .iter()
                            .map(|p| format!("`{}`", p.pool_name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        // Features the backend's volumes use must still be there.
        let snapshots = self
            .volumes
            .db
            .snapshots_on(&self.volumes.backend_host(&backend.name))
            .await
            .map_err(|e| SwapError::Probe {
                step: "compatibility",
                message: e.to_string(),
            })?;
        let supports_snapshots = stats.pools.iter().all(|p| p.has("snapshot_support"));
        if snapshots > 0 && !supports_snapshots {
            return Err(SwapError::Probe {
                step: "compatibility",
                message: format!(
                    "the backend holds {snapshots} snapshot(s), and the new driver does not report `snapshot_support`; delete the snapshots or use a driver that supports them"
                ),
            });
        }
        Ok(())
    }

    /// Loads a component off the async threads (compiling is CPU work) and runs its
    /// setup check.
    async fn load_checked(&self, spec: DriverSpec) -> Result<Arc<DriverPool>, SwapError> {
        let runtime = self.runtime.clone();
        let next = tokio::task::spawn_blocking(move || runtime.load(spec))
            .await
            .map_err(|e| SwapError::Probe {
                step: "load",
                message: e.to_string(),
            })?
            .map_err(|e| SwapError::Load(Box::new(e)))?;
        next.check_for_setup_error()
            .await
            .map_err(|e| SwapError::Probe {
                step: "check-for-setup-error",
                message: e.to_string(),
            })?;
        Ok(next)
    }

    /// Returns `backend`'s volume or target driver to the previous one by hand.
    pub async fn rollback(&self, backend_name: &str, part: Part) -> Result<SwapOutcome, SwapError> {
        let started = Instant::now();
        let part = Part::of(backend_name, part);
        let slot = self.slot(backend_name, part)?;
        let current = slot.driver();
        let broken = slot
            .roll_back_from(&current)
            .ok_or_else(|| SwapError::NothingToRollBack(backend_name.to_string()))?;
        let restored = slot.driver();
        let took_ms = started.elapsed().as_millis() as u64;
        self.volumes.refresh_stats();
        self.record(PluginEvent::new(
            &part.event_name(backend_name),
            "rolled-back",
            Some(&label(&broken)),
            Some(&label(&restored)),
            Some("by the operator".into()),
            Some(took_ms as i64),
        ))
        .await;
        Ok(SwapOutcome {
            backend: backend_name.to_string(),
            part,
            from: label(&broken),
            to: label(&restored),
            took_ms,
            probation_ms: 0,
            hosts: Vec::new(),
        })
    }

    /// Every backend's driver with its figures and last event.
    pub async fn list(&self) -> Vec<PluginStatus> {
        let mut out = Vec::new();
        for (name, backend) in &self.volumes.backends {
            let name = name.as_str();
            let last_event = self
                .volumes
                .db
                .plugin_events(Some(name), 1)
                .await
                .ok()
                .and_then(|mut v| v.pop());
            let previous = backend.volume.previous().map(|p| label(&p));
            out.push(status_of(name, &backend.driver(), previous, last_event));
            // A paired target driver is listed under the same backend, with its world.
            if let Some(target) = &backend.target {
                let last_event = self
                    .volumes
                    .db
                    .plugin_events(Some(&Part::Target.event_name(name)), 1)
                    .await
                    .ok()
                    .and_then(|mut v| v.pop());
                let previous = target.previous().map(|p| label(&p));
                out.push(status_of(name, &target.driver(), previous, last_event));
            }
        }
        // The backup store, under its reserved name.
        if let Some(backup) = &self.volumes.backup {
            let last_event = self
                .volumes
                .db
                .plugin_events(Some(BACKUP_STORE_NAME), 1)
                .await
                .ok()
                .and_then(|mut v| v.pop());
            let previous = backup.slot.previous().map(|p| label(&p));
            out.push(status_of(
                BACKUP_STORE_NAME,
                &backup.slot.driver(),
                previous,
                last_event,
            ));
        }
        out
    }

    /// The same figures in Prometheus' text format.
    pub async fn metrics_text(&self) -> String {
        let mut out = String::new();
        let statuses = self.list().await;
        let families: [(&str, &str, &str); 5] = [
            (
                "ashlar_plugin_calls_total",
                "counter",
                "Calls into the backend's current driver.",
            ),
            (
                "ashlar_plugin_traps_total",
                "counter",
                "Calls the sandbox stopped: trap, deadline or memory ceiling.",
            ),
            (
                "ashlar_plugin_driver_errors_total",
                "counter",
                "Calls the driver answered with an error.",
            ),
            (
                "ashlar_plugin_instances_created_total",
                "counter",
                "Driver instances created.",
            ),
            (
                "ashlar_plugin_call_latency_microseconds",
                "summary",
                "Recent driver call latency.",
            ),
        ];
        for (name, kind, help) in families {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for s in &statuses {
                let labels = format!(
                    "backend=\"{}\",plugin=\"{}\",version=\"{}\"",
                    s.backend, s.plugin, s.version
                );
                match name {
                    "ashlar_plugin_calls_total" => {
                        out.push_str(&format!("{name}{{{labels}}} {}\n", s.calls))
                    }
                    "ashlar_plugin_traps_total" => {
                        out.push_str(&format!("{name}{{{labels}}} {}\n", s.traps))
                    }
                    "ashlar_plugin_driver_errors_total" => {
                        out.push_str(&format!("{name}{{{labels}}} {}\n", s.driver_errors))
                    }
                    "ashlar_plugin_instances_created_total" => {
                        out.push_str(&format!("{name}{{{labels}}} {}\n", s.instances_created))
                    }
                    _ => {
                        if let (Some(p50), Some(p99)) = (s.p50_us, s.p99_us) {
                            out.push_str(&format!("{name}{{{labels},quantile=\"0.5\"}} {p50}\n"));
                            out.push_str(&format!("{name}{{{labels},quantile=\"0.99\"}} {p99}\n"));
                        }
                    }
                }
            }
        }
        out
    }
}

fn status_of(
    backend: &str,
    pool: &DriverPool,
    previous: Option<String>,
    last_event: Option<PluginEvent>,
) -> PluginStatus {
    let m = &pool.metrics;
    let (p50, p99) = m
        .latency_percentiles_us()
        .map_or((None, None), |(a, b)| (Some(a), Some(b)));
    PluginStatus {
        backend: backend.to_string(),
        plugin: pool.identity.name.clone(),
        version: pool.identity.version.clone(),
        contract: pool.contract.to_string(),
        world: pool.world.to_string(),
        origin: pool.origin.clone(),
        since: crate::db::time::format(pool.loaded_at),
        calls: m.calls.load(Ordering::Relaxed),
        traps: m.sandbox_failures.load(Ordering::Relaxed),
        driver_errors: m.driver_errors.load(Ordering::Relaxed),
        instances_created: m.instances_created.load(Ordering::Relaxed),
        p50_us: p50,
        p99_us: p99,
        previous,
        quarantined_for_secs: pool.quarantined_for().map(|d| d.as_secs() + 1),
        last_event,
    }
}

/// Watches a freshly swapped driver for its probation window: the first sandbox failure,
/// or a failed health probe, switches the backend back to the driver it replaced and
/// records why; a clean window records that it passed.
struct Probation {
    plugins: Arc<PluginManager>,
    backend: String,
    part: Part,
    watched: Arc<DriverPool>,
    failures_before: u64,
    started: Instant,
    window: Duration,
    last_probe: Instant,
    /// The cluster swap this is this host's part of.
    cluster_swap: Option<String>,
}

impl Probation {
    /// Why the watched driver must go, if it must.
    async fn verdict(&mut self) -> Option<String> {
        let failures = self
            .watched
            .metrics
            .sandbox_failures
            .load(Ordering::Relaxed)
            - self.failures_before;
        if failures > 0 {
            return Some(format!(
                "{failures} call(s) trapped, ran out of memory or missed their deadline during probation"
            ));
        }
        if self.last_probe.elapsed() >= HEALTH_PROBE_EVERY {
            self.last_probe = Instant::now();
            if let Err(e) = self.watched.probe().await {
                return Some(format!("health probe failed: {e}"));
            }
        }
        None
    }
}

impl Worker for Probation {
    fn name(&self) -> String {
        format!(
            "probation {} {}",
            self.part.event_name(&self.backend),
            label(&self.watched)
        )
    }

    fn status(&self) -> WorkerStatus {
        let left = self.window.saturating_sub(self.started.elapsed());
        WorkerStatus {
            detail: format!("{} ms of probation left", left.as_millis()),
            queue: None,
        }
    }

    async fn work(&mut self) -> WorkerState {
        let plugins = self.plugins.clone();
        let Ok(slot) = plugins.slot(&self.backend, self.part) else {
            return WorkerState::Done;
        };
        if !Arc::ptr_eq(&slot.driver(), &self.watched) {
            return WorkerState::Done; // swapped again, or rolled back by hand
        }
        let event_name = self.part.event_name(&self.backend);
        if let Some(reason) = self.verdict().await {
            if let Some(broken) = slot.roll_back_from(&self.watched) {
                let restored = slot.driver();
                tracing::warn!(backend = %self.backend, part = ?self.part, from = %label(&broken), to = %label(&restored), "rolled back: {reason}");
                plugins
                    .record(PluginEvent::new(
                        &event_name,
                        "rolled-back",
                        Some(&label(&broken)),
                        Some(&label(&restored)),
                        Some(reason.clone()),
                        None,
                    ))
                    .await;
                plugins.volumes.refresh_stats();
                if let Some(id) = &self.cluster_swap {
                    plugins.probation_failed(id, &reason).await;
                }
            }
            return WorkerState::Done;
        }
        if self.started.elapsed() >= self.window {
            tracing::info!(backend = %self.backend, part = ?self.part, plugin = %label(&self.watched), "probation passed");
            plugins
                .record(PluginEvent::new(
                    &event_name,
                    "probation-passed",
                    None,
                    Some(&label(&self.watched)),
                    None,
                    None,
                ))
                .await;
            if let Some(id) = &self.cluster_swap {
                plugins.probation_passed(id).await;
            }
            return WorkerState::Done;
        }
        WorkerState::Idle
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(PROBATION_TICK) => {}
            _ = self.watched.failed.notified() => {}
        }
    }
}
