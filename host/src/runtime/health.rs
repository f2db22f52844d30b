//! A backend's health: the sandbox failures of a recent window, and the quarantine enough
//! of them cause. A quarantined backend's calls fail fast until it has served its time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::host_calls::PluginIdentity;
use crate::config::Limits;

/// Recent sandbox failures, and the quarantine they may have caused.
#[derive(Default)]
pub(super) struct Health {
    state: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    failures: VecDeque<Instant>,
    quarantined_until: Option<Instant>,
}

impl Health {
    /// How much longer the backend is quarantined, if it is.
    pub(super) fn quarantined_for(&self) -> Option<Duration> {
        let mut h = self.state.lock().expect("health lock");
        let until = h.quarantined_until?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Served its time: calls are tried again, with a clean slate.
            h.quarantined_until = None;
            h.failures.clear();
            return None;
        }
        Some(left)
    }

    /// Counts a sandbox failure against the backend's health; enough of them in the
    /// window quarantine it.
    pub(super) fn count_failure(&self, limits: &Limits, identity: &PluginIdentity) {
        if limits.max_sandbox_failures == 0 {
            return;
        }
        let now = Instant::now();
        let window = Duration::from_secs(limits.failure_window_secs);
        let mut h = self.state.lock().expect("health lock");
        h.failures.push_back(now);
        while h
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            h.failures.pop_front();
        }
        if h.failures.len() >= limits.max_sandbox_failures as usize && h.quarantined_until.is_none()
        {
            h.quarantined_until = Some(now + Duration::from_secs(limits.quarantine_secs));
            tracing::error!(plugin = %identity.name, version = %identity.version,
                backend = %identity.backend,
                "backend quarantined for {} s after {} sandbox failures within {} s",
                limits.quarantine_secs, h.failures.len(), limits.failure_window_secs);
        }
    }
}

/// Why a quarantined backend's call was refused, `left` before it is tried again.
pub(super) fn quarantine_message(limits: &Limits, left: Duration) -> String {
    format!(
        "after {} sandbox failures within {} s it takes no calls for another {} s (limits.max_sandbox_failures)",
        limits.max_sandbox_failures,
        limits.failure_window_secs,
        left.as_secs() + 1
    )
}
