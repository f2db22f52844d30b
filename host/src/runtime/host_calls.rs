//! The host side of every import a driver may call. Each one asks the effective
//! capabilities first; a refusal returns the contract's `denied` error naming what was
//! refused, and is logged with the plugin's identity.
//!
//! This module keeps what every import shares: the plugin's identity, the backend's
//! context and each store's state. Each interface is a module of its own.

mod block;
mod clock;
mod config;
mod exec;
mod http;
mod log;

pub use clock::SleptPastDeadline;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::latest::ashlar::driver::types;
use crate::capabilities::EffectiveCapabilities;
use crate::config::{Credential, Limits};

/// Who is calling: attached to every log line and error.
#[derive(Debug, Clone)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    pub backend: String,
}

impl std::fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin {} {} (backend {})",
            self.name, self.version, self.backend
        )
    }
}

/// What a backend's instances share: identity, grants, settings, limits.
pub struct BackendContext {
    pub identity: PluginIdentity,
    pub capabilities: EffectiveCapabilities,
    pub settings: BTreeMap<String, String>,
    pub credentials: BTreeMap<String, Credential>,
    pub host_name: String,
    /// Where granted programs are looked up (`exec_dirs`); a driver names programs, never
    /// paths.
    pub exec_dirs: Vec<PathBuf>,
    pub limits: Limits,
    pub http: reqwest::Client,
    pub runtime: tokio::runtime::Handle,
    /// Host calls refused since the driver was loaded, on any of its instances: a driver
    /// whose everyday operations ask for what it was not granted shows here.
    pub denials: std::sync::atomic::AtomicU64,
}

/// The data of one instance's store.
pub struct HostState {
    pub ctx: Arc<BackendContext>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    /// When the current call must be over.
    pub deadline: Instant,
    /// Log lines written in the current call.
    pub log_lines: u32,
    open_handles: usize,
}

impl HostState {
    /// Fails only when a granted directory cannot be opened for the sandbox.
    pub fn new(ctx: Arc<BackendContext>) -> wasmtime::Result<Self> {
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size((ctx.limits.memory_mib as usize) << 20)
            .trap_on_grow_failure(true)
            .build();
        // No environment, no network, and no filesystem but the directories the operator
        // granted (`grants.directory`), each under the path the driver asked for: WASI here
        // carries what Rust's standard library links against, and a backup store's files.
        // Inside a preopen, cap-std refuses `..` and symlinks that lead out.
        let mut wasi = WasiCtx::builder();
        for dir in ctx.capabilities.directories() {
            wasi.preopened_dir(&dir.host, &dir.guest, FsPerms::ReadWrite)
                .map_err(|e| {
                    wasmtime::format_err!(
                        "cannot open the granted directory {} for the sandbox: {e}",
                        dir.host.display()
                    )
                })?;
        }
        Ok(HostState {
            ctx,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            deadline: Instant::now(),
            log_lines: 0,
            open_handles: 0,
        })
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn denied(&self, what: &str, message: &str) {
        self.ctx
            .denials
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(plugin = %self.ctx.identity.name, version = %self.ctx.identity.version,
            backend = %self.ctx.identity.backend, "{what} refused: {message}");
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Lets the store ask about memory growth through the configured limits.
pub fn limiter(state: &mut HostState) -> &mut dyn ResourceLimiter {
    &mut state.limits
}

/// The shared types interface has no functions.
impl types::Host for HostState {}
