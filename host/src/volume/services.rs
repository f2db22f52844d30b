//! This host's services as Cinder's `os-services` lists them: its scheduler
//! (`cinder-scheduler`, host `HOST`) and one `cinder-volume` per backend (host
//! `HOST@BACKEND`). A heartbeat stamps their rows every `report_interval`; a backend an
//! administrator disabled is passed by when placing volumes, on every host that shares
//! the database once its next heartbeat reads the flag (at once on the host that set it).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::VolumeManager;
use crate::db::DbError;
use crate::worker::{Worker, WorkerState, WorkerStatus};

/// Cinder's `constants.SCHEDULER_BINARY`.
pub const SCHEDULER_BINARY: &str = "cinder-scheduler";
/// Cinder's `constants.VOLUME_BINARY`.
pub const VOLUME_BINARY: &str = "cinder-volume";

impl VolumeManager {
    /// Stamps this host's services (registering any that are new), then reads which of its
    /// backends are disabled.
    pub async fn report_services(&self, scheduler_zone: &str) -> Result<(), DbError> {
        self.db
            .report_service(&self.host_name, SCHEDULER_BINARY, scheduler_zone, None)
            .await?;
        for (name, backend) in &self.backends {
            let name = name.as_str();
            let cluster = backend
                .config
                .cluster
                .as_ref()
                .map(|_| self.backend_key(name));
            self.db
                .report_service(
                    &self.backend_host(name),
                    VOLUME_BINARY,
                    &backend.availability_zone,
                    cluster.as_deref(),
                )
                .await?;
        }
        self.refresh_disabled().await
    }

    /// Reads which of this host's backends an administrator disabled.
    pub async fn refresh_disabled(&self) -> Result<(), DbError> {
        let disabled: BTreeSet<String> = self
            .db
            .list_services()
            .await?
            .into_iter()
            .filter(|s| s.disabled && s.binary == VOLUME_BINARY)
            .filter_map(|s| {
                self.backends
                    .keys()
                    .find(|name| self.backend_host(name) == s.host)
            })
            .collect();
        *self.disabled.write().expect("disabled lock") = disabled;
        Ok(())
    }

    /// Whether backend `name`'s volume service is disabled, so the scheduler passes it by.
    pub fn is_disabled(&self, name: &str) -> bool {
        self.disabled.read().expect("disabled lock").contains(name)
    }
}

/// Writes this host's heartbeat every `interval` (Cinder's `report_interval`).
pub struct ServiceHeartbeat {
    manager: Arc<VolumeManager>,
    zone: String,
    interval: Duration,
    next: Instant,
    beats: u64,
    failing: Option<String>,
}

impl ServiceHeartbeat {
    /// The first beat is due one interval from now: start-up reports once itself.
    pub fn new(manager: Arc<VolumeManager>, zone: String, interval: Duration) -> Self {
        ServiceHeartbeat {
            manager,
            zone,
            interval,
            next: Instant::now() + interval,
            beats: 0,
            failing: None,
        }
    }
}

impl Worker for ServiceHeartbeat {
    fn name(&self) -> String {
        "service-heartbeat".into()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            detail: format!(
                "{} heartbeats, every {} s{}",
                self.beats,
                self.interval.as_secs(),
                self.failing
                    .as_ref()
                    .map(|e| format!("; the last failed: {e}"))
                    .unwrap_or_default()
            ),
            ..WorkerStatus::default()
        }
    }

    async fn work(&mut self) -> WorkerState {
        if Instant::now() < self.next {
            return WorkerState::Idle;
        }
        match self.manager.report_services(&self.zone).await {
            Ok(()) => self.failing = None,
            Err(e) => {
                tracing::warn!("service heartbeat failed: {e}");
                self.failing = Some(e.to_string());
            }
        }
        self.beats += 1;
        self.next = Instant::now() + self.interval;
        WorkerState::Idle
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep_until(self.next.into()).await;
    }
}
