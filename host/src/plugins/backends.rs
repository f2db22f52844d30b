//! Backends at runtime: loading a backend's drivers (at start-up and for
//! `ashlar backend add`), adding one from its config section without a restart, draining
//! one (no new placements; its volumes migrate away, a few at a time, with the progress
//! in `ashlar backend list` and the workers' list) and removing an empty one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::{Part, PluginManager};
use crate::config::{BackendConfig, Config};
use crate::runtime::{DriverPool, Runtime};
use crate::volume::services::VOLUME_BINARY;
use crate::volume::{Backend, VolumeManager, VolumeStatus};
use crate::worker::{Worker, WorkerState, WorkerStatus};

/// What `disabled_reason` says of a backend being drained.
pub const DRAINING: &str = "draining: its volumes are migrating away";

/// Loads one of a backend's drivers through the runtime (bundled, or from its files) and
/// checks it can serve; `None` for a target the backend does not have.
pub async fn load_driver(
    runtime: &Arc<Runtime>,
    cfg: &Config,
    name: &str,
    backend: &BackendConfig,
    part: Part,
) -> anyhow::Result<Option<Arc<DriverPool>>> {
    let Some(driver) = part.config(name, backend) else {
        return Ok(None);
    };
    let what = driver.what();
    let files = driver.read().with_context(|| what.clone())?;
    let which = match part {
        Part::Volume => "driver",
        Part::Target => "target driver",
        Part::Backup => "backup driver",
    };
    let pool = runtime
        .load(driver.spec(files, &cfg.host_name))
        .with_context(|| format!("{what}: loading its {which}"))?;
    check_setup(name, which, &pool).await;
    Ok(Some(pool))
}

/// Logs a driver's failed `check_for_setup_error`: the backend stays configured but
/// reports no pools, as Cinder's uninitialised drivers do.
pub async fn check_setup(name: &str, which: &str, pool: &Arc<DriverPool>) {
    if let Err(e) = pool.check_for_setup_error().await {
        tracing::error!(backend = name, "{which} check_for_setup_error failed: {e}");
    }
}

/// Loads backend `name` of `cfg`: its volume driver and, if it has one, its target
/// driver.
pub async fn load_backend(
    runtime: &Arc<Runtime>,
    cfg: &Config,
    name: &str,
    backend: &BackendConfig,
) -> anyhow::Result<Backend> {
    let driver = load_driver(runtime, cfg, name, backend, Part::Volume)
        .await?
        .expect("every backend has a volume driver");
    tracing::info!(backend = %name, plugin = %driver.identity.name, version = %driver.identity.version, "backend loaded");
    let target = load_driver(runtime, cfg, name, backend, Part::Target).await?;
    if let Some(t) = &target {
        tracing::info!(backend = %name, plugin = %t.identity.name, version = %t.identity.version, "target driver loaded");
    }
    let availability_zone = backend
        .availability_zone
        .clone()
        .unwrap_or_else(|| cfg.default_availability_zone.clone());
    Ok(Backend::new(
        name.to_string(),
        availability_zone,
        backend.clone(),
        driver,
        target,
    ))
}

/// Why a backend could not be added, drained or removed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend `{0}` is not running on this host")]
    Unknown(String),
    #[error("backend `{0}` is running already")]
    Exists(String),
    #[error("{0}")]
    Config(String),
    #[error(
        "backend `{name}` still holds {volumes} volume(s); drain it first (`ashlar backend drain {name}`)"
    )]
    NotEmpty { name: String, volumes: i64 },
    #[error("{0}")]
    Load(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// A backend as `ashlar backend list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackendView {
    pub name: String,
    /// `HOST@BACKEND` or `CLUSTER@BACKEND`.
    pub key: String,
    pub driver: String,
    /// `active`, `disabled` (by an administrator) or `draining`.
    pub state: String,
    /// Volumes placed on it.
    pub volumes: i64,
    /// Of those, how many are moving away.
    pub migrating: i64,
    /// Volumes a drain cannot move, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<Blocked>,
}

/// A volume a drain cannot move now.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    pub volume_id: String,
    pub reason: String,
}

/// Why volume `v` cannot move off its backend now, if it cannot.
fn why_stuck(v: &crate::db::VolumeRow, snapshots: i64) -> Option<String> {
    if v.status == VolumeStatus::InUse || !v.attachments.is_empty() {
        return Some("it is attached; detach it (an attached volume is not migrated)".into());
    }
    if snapshots > 0 {
        return Some(format!("it has {snapshots} snapshot(s); delete them first"));
    }
    if v.status != VolumeStatus::Available && v.status != VolumeStatus::Maintenance {
        return Some(format!("it is {}", v.status));
    }
    None
}

impl PluginManager {
    /// Every backend this host runs, with its volumes and state.
    pub async fn backends(&self) -> Result<Vec<BackendView>, BackendError> {
        let mut out = Vec::new();
        for name in self.volumes.backends.keys() {
            out.push(self.view(&name).await?);
        }
        Ok(out)
    }

    /// Backend `name` as `ashlar backend list` shows it.
    pub async fn view(&self, name: &str) -> Result<BackendView, BackendError> {
        let m = &self.volumes;
        let backend = m
            .backends
            .get(name)
            .ok_or_else(|| BackendError::Unknown(name.to_string()))?;
        let key = m.backend_key(name);
        let volumes = m.db.volumes_on(&key).await?;
        let mut blocked = Vec::new();
        let mut migrating = 0;
        for v in &volumes {
            if m.db.is_migrating(&v.id).await? {
                migrating += 1;
            } else if let Some(reason) = why_stuck(v, m.db.snapshot_count(&v.id).await?) {
                blocked.push(Blocked {
                    volume_id: v.id.clone(),
                    reason,
                });
            }
        }
        let service =
            m.db.list_services()
                .await?
                .into_iter()
                .find(|s| s.binary == VOLUME_BINARY && s.host == m.backend_host(name));
        let state = match service {
            Some(s) if s.disabled && s.disabled_reason.as_deref() == Some(DRAINING) => "draining",
            Some(s) if s.disabled => "disabled",
            _ => "active",
        };
        let driver = backend.driver();
        Ok(BackendView {
            name: name.to_string(),
            key,
            driver: format!("{} {}", driver.identity.name, driver.identity.version),
            state: state.into(),
            volumes: volumes.len() as i64,
            migrating,
            blocked: if state == "draining" {
                blocked
            } else {
                Vec::new()
            },
        })
    }

    /// Adds backend `name` from its `[backends.NAME]` section in `config` (default: the
    /// file the server started from), without a restart: its drivers are loaded and
    /// checked, its service registered and its stats polled before it takes volumes.
    pub async fn add_backend(
        &self,
        name: &str,
        config: Option<PathBuf>,
    ) -> Result<BackendView, BackendError> {
        if self.volumes.backends.contains_key(name) {
            return Err(BackendError::Exists(name.to_string()));
        }
        let path = config
            .or_else(|| self.config.source.clone())
            .ok_or_else(|| {
                BackendError::Config(
                "the server runs without a config file: name one that holds the backend's section"
                    .into(),
            )
            })?;
        let mut cfg = Config::load(Some(&path)).map_err(|e| BackendError::Config(e.to_string()))?;
        // Paths the running server resolved (its data directory, its identity) stay its own.
        cfg.data_dir = self.config.data_dir.clone();
        cfg.host_name = self.config.host_name.clone();
        cfg.default_availability_zone = self.config.default_availability_zone.clone();
        cfg.finish()
            .map_err(|e| BackendError::Config(e.to_string()))?;
        let Some(section) = cfg.backends.get(name) else {
            return Err(BackendError::Config(format!(
                "{} has no [backends.{name}] section",
                path.display()
            )));
        };
        let backend = load_backend(&self.runtime, &cfg, name, section)
            .await
            .map_err(|e| BackendError::Load(format!("{e:#}")))?;
        if !self.volumes.backends.insert(backend) {
            return Err(BackendError::Exists(name.to_string()));
        }
        let m = &self.volumes;
        m.report_services(&self.config.default_availability_zone)
            .await?;
        m.poll_stats().await;
        m.refresh_stats();
        tracing::info!(backend = name, "backend added");
        self.view(name).await
    }

    /// Starts draining backend `name`: its volume service is disabled (no new placements
    /// here or on any host once its heartbeat reads it) and a worker migrates its
    /// volumes to pools the scheduler picks, two at a time, until none is left. Asking
    /// again while it drains changes nothing.
    pub async fn drain_backend(self: &Arc<Self>, name: &str) -> Result<BackendView, BackendError> {
        let m = &self.volumes;
        if !m.backends.contains_key(name) {
            return Err(BackendError::Unknown(name.to_string()));
        }
        let before = self.view(name).await?;
        m.db.set_service_disabled(
            &m.backend_host(name),
            VOLUME_BINARY,
            true,
            Some(Some(DRAINING)),
        )
        .await?;
        m.refresh_disabled().await?;
        if before.state != "draining" {
            self.workers.spawn(Drain {
                manager: m.clone(),
                name: name.to_string(),
                key: m.backend_key(name),
                started: Instant::now(),
                moved: 0,
                failed: 0,
                left: before.volumes,
                blocked: 0,
                last: String::new(),
                next: Instant::now(),
            });
            tracing::info!(backend = name, volumes = before.volumes, "draining backend");
        }
        self.view(name).await
    }

    /// Removes backend `name`, which must hold no volume: its drivers are dropped (calls
    /// under way finish on them), its service and stats rows deleted.
    pub async fn remove_backend(&self, name: &str) -> Result<BackendView, BackendError> {
        let m = &self.volumes;
        let view = self.view(name).await?;
        if view.volumes > 0 {
            return Err(BackendError::NotEmpty {
                name: name.to_string(),
                volumes: view.volumes,
            });
        }
        m.backends.remove(name);
        m.db.forget_backend(&m.backend_host(name), &view.key)
            .await?;
        m.forget_stats(name);
        tracing::info!(backend = name, "backend removed");
        Ok(BackendView {
            state: "removed".into(),
            ..view
        })
    }
}

/// Migrates a draining backend's volumes away.
struct Drain {
    manager: Arc<VolumeManager>,
    name: String,
    key: String,
    started: Instant,
    moved: u64,
    failed: u64,
    left: i64,
    blocked: i64,
    last: String,
    next: Instant,
}

/// Migrations a drain keeps going at once.
const DRAIN_PARALLEL: i64 = 2;

impl Worker for Drain {
    fn name(&self) -> String {
        format!("drain {}", self.name)
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            detail: format!(
                "{} volume(s) left, {} moved, {} failed, {} blocked, {} s{}",
                self.left,
                self.moved,
                self.failed,
                self.blocked,
                self.started.elapsed().as_secs(),
                if self.last.is_empty() {
                    String::new()
                } else {
                    format!("; {}", self.last)
                }
            ),
            queue: Some(self.left.max(0) as u64),
        }
    }

    async fn work(&mut self) -> WorkerState {
        self.next = Instant::now() + Duration::from_secs(1);
        let m = &self.manager;
        if !m.backends.contains_key(&self.name) {
            return WorkerState::Done;
        }
        let volumes = match m.db.volumes_on(&self.key).await {
            Ok(v) => v,
            Err(e) => {
                self.last = format!("cannot list its volumes: {e}");
                return WorkerState::Idle;
            }
        };
        self.left = volumes.len() as i64;
        if volumes.is_empty() {
            tracing::info!(backend = %self.name, moved = self.moved, "backend drained");
            return WorkerState::Done;
        }
        let mut moving = 0;
        let mut candidates = Vec::new();
        let mut blocked = 0;
        for v in volumes {
            match m.db.is_migrating(&v.id).await {
                Ok(true) => moving += 1,
                Ok(false) => {
                    let snaps = m.db.snapshot_count(&v.id).await.unwrap_or(0);
                    if why_stuck(&v, snaps).is_some() {
                        blocked += 1;
                    } else if v.migration_status.as_deref() == Some("error")
                        && v.updated_at.as_deref()
                            > Some(
                                crate::db::time::format(
                                    std::time::SystemTime::now() - Duration::from_secs(30),
                                )
                                .as_str(),
                            )
                    {
                        // It failed lately: tried again after a while, not at once.
                        blocked += 1;
                    } else {
                        candidates.push(v);
                    }
                }
                Err(e) => self.last = format!("cannot read volume {}: {e}", v.id),
            }
        }
        self.blocked = blocked;
        for v in candidates
            .into_iter()
            .take((DRAIN_PARALLEL - moving).max(0) as usize)
        {
            let request_id = format!("req-{}", uuid::Uuid::new_v4());
            match m.request_evacuate(&v, &request_id).await {
                Ok(dest) => {
                    self.moved += 1;
                    self.last = format!("volume {} moving to {dest}", v.id);
                    tracing::info!(backend = %self.name, volume_id = %v.id, dest = %dest, "drain: migrating a volume away");
                }
                Err(e) => {
                    self.failed += 1;
                    self.last = format!("volume {} cannot move: {e}", v.id);
                    tracing::warn!(backend = %self.name, volume_id = %v.id, "drain: {e}");
                }
            }
        }
        WorkerState::Idle
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep_until(self.next.into()).await;
    }
}
