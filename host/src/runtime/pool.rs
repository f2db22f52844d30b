//! A backend's pool of driver instances. A component instance is not re-entrant, so each
//! call takes one from the pool (or makes one, running do-setup), arms its deadline, runs
//! and gives it back; an instance that trapped is dropped with its store instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, Trap};

use super::engine::EPOCH_TICK;
use super::error::{CallError, DriverFailure, SandboxFailure};
use super::health::{self, Health};
use super::host_calls::{self, BackendContext, HostState, PluginIdentity};
use super::latest::ashlar::driver::types::DriverError;
use super::versions;
use crate::capabilities::World;

/// One live instance with its store.
struct Instance {
    store: Store<HostState>,
    driver: versions::Driver,
}

/// How many recent call latencies a pool keeps for its percentiles.
const LATENCY_WINDOW: usize = 4096;

/// Counters per backend driver.
#[derive(Default, Debug)]
pub struct PoolMetrics {
    pub calls: AtomicU64,
    pub driver_errors: AtomicU64,
    pub sandbox_failures: AtomicU64,
    pub instances_created: AtomicU64,
    /// The last [`LATENCY_WINDOW`] call latencies, in microseconds.
    latencies_us: Mutex<std::collections::VecDeque<u64>>,
}

impl PoolMetrics {
    fn record(&self, took: Duration) {
        let mut l = self.latencies_us.lock().expect("latency lock");
        if l.len() == LATENCY_WINDOW {
            l.pop_front();
        }
        l.push_back(took.as_micros() as u64);
    }

    /// (p50, p99) of recent call latencies in microseconds, if any calls were made.
    pub fn latency_percentiles_us(&self) -> Option<(u64, u64)> {
        let mut l: Vec<u64> = self
            .latencies_us
            .lock()
            .expect("latency lock")
            .iter()
            .copied()
            .collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
        Some((at(0.50), at(0.99)))
    }
}

/// A backend's driver: a bounded pool of instances of one component.
pub struct DriverPool {
    pub identity: PluginIdentity,
    /// The contract version the component was built against.
    pub contract: semver::Version,
    pub world: World,
    /// Where the component came from (bundled, or a path).
    pub origin: String,
    pub loaded_at: std::time::SystemTime,
    engine: Engine,
    ctx: Arc<BackendContext>,
    pre: versions::DriverPre,
    idle: Mutex<Vec<Instance>>,
    permits: Arc<tokio::sync::Semaphore>,
    pub metrics: PoolMetrics,
    health: Health,
    /// Woken on every sandbox failure, so a probation can act at once.
    pub failed: tokio::sync::Notify,
}

impl DriverPool {
    /// An empty pool of at most `limits.instances` instances of `pre`.
    pub(super) fn new(
        ctx: Arc<BackendContext>,
        contract: semver::Version,
        world: World,
        origin: String,
        engine: Engine,
        pre: versions::DriverPre,
    ) -> DriverPool {
        DriverPool {
            identity: ctx.identity.clone(),
            contract,
            world,
            origin,
            loaded_at: std::time::SystemTime::now(),
            engine,
            permits: Arc::new(tokio::sync::Semaphore::new(ctx.limits.instances as usize)),
            ctx,
            pre,
            idle: Mutex::new(Vec::new()),
            metrics: PoolMetrics::default(),
            health: Health::default(),
            failed: tokio::sync::Notify::new(),
        }
    }

    /// Runs one driver call on a pooled instance, on a blocking thread, waiting for a free
    /// instance first when all are busy.
    pub async fn call<R: Send + 'static>(
        self: &Arc<Self>,
        operation: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &versions::Driver,
        ) -> wasmtime::Result<Result<R, DriverError>>
        + Send
        + 'static,
    ) -> Result<R, CallError> {
        if let Some(left) = self.quarantined_for() {
            return Err(CallError::Sandbox {
                identity: self.identity.clone(),
                operation,
                kind: SandboxFailure::Quarantined,
                message: health::quarantine_message(&self.ctx.limits, left),
            });
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let pool = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.run(operation, f)
        })
        .await;
        joined.unwrap_or_else(|e| {
            Err(CallError::Sandbox {
                identity: self.identity.clone(),
                operation,
                kind: SandboxFailure::Trapped,
                message: format!("host thread failed: {e}"),
            })
        })
    }

    /// The same as [`DriverPool::call`] for callers already on a blocking thread (the
    /// backup engine's workers, benchmarks): waits for one of the pool's `limits.instances`
    /// permits as an async call does, so callers on many threads share the same bounded
    /// set of instances. Must not be called from an async task (it blocks its thread).
    pub fn call_blocking<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &versions::Driver,
        ) -> wasmtime::Result<Result<R, DriverError>>,
    ) -> Result<R, CallError> {
        if let Some(left) = self.quarantined_for() {
            return Err(CallError::Sandbox {
                identity: self.identity.clone(),
                operation,
                kind: SandboxFailure::Quarantined,
                message: health::quarantine_message(&self.ctx.limits, left),
            });
        }
        // A free permit is taken at once; otherwise this thread waits for one.
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => self
                .ctx
                .runtime
                .block_on(self.permits.acquire())
                .expect("the pool's semaphore is never closed"),
        };
        self.run(operation, f)
    }

    /// Runs one call on an idle instance (or a new one); the caller holds a permit.
    fn run<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &versions::Driver,
        ) -> wasmtime::Result<Result<R, DriverError>>,
    ) -> Result<R, CallError> {
        self.metrics.calls.fetch_add(1, Ordering::Relaxed);
        let idle = self.idle.lock().expect("idle list lock").pop();
        let mut instance = match idle {
            Some(i) => i,
            None => self.instantiate(operation)?,
        };
        self.arm(&mut instance.store);
        let started = Instant::now();
        let result = f(&mut instance.store, &instance.driver);
        self.metrics.record(started.elapsed());
        match result {
            Ok(Ok(r)) => {
                self.idle.lock().expect("idle list lock").push(instance);
                Ok(r)
            }
            Ok(Err(e)) => {
                self.idle.lock().expect("idle list lock").push(instance);
                self.metrics.driver_errors.fetch_add(1, Ordering::Relaxed);
                Err(CallError::Driver(e.into()))
            }
            // The instance may be in any state after a trap: drop it with its store.
            Err(e) => Err(self.sandbox_failure(operation, e)),
        }
    }

    /// Makes `n` instances ahead of need (each runs do-setup), so the first calls after
    /// a load or a swap do not pay for instantiation.
    pub fn prewarm(&self, n: usize) -> Result<(), CallError> {
        let mut made = Vec::with_capacity(n);
        for _ in 0..n {
            made.push(self.instantiate("prewarm")?);
        }
        self.idle.lock().expect("idle list lock").extend(made);
        Ok(())
    }

    /// Gives the store a fresh deadline for one call.
    fn arm(&self, store: &mut Store<HostState>) {
        let deadline = Duration::from_millis(self.ctx.limits.call_deadline_ms);
        store.data_mut().deadline = Instant::now() + deadline;
        store.data_mut().log_lines = 0;
        let ticks = deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
    }

    fn instantiate(&self, operation: &'static str) -> Result<Instance, CallError> {
        let state = HostState::new(self.ctx.clone()).map_err(|e| CallError::Sandbox {
            identity: self.identity.clone(),
            operation,
            kind: SandboxFailure::InstantiationFailed,
            message: format!("{e:#}"),
        })?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(host_calls::limiter);
        store.epoch_deadline_trap();
        self.arm(&mut store);
        let driver = self.pre.instantiate(&mut store).map_err(|e| {
            let mut err = self.sandbox_failure(operation, e);
            if let CallError::Sandbox { kind, .. } = &mut err
                && *kind == SandboxFailure::Trapped
            {
                *kind = SandboxFailure::InstantiationFailed;
            }
            err
        })?;
        self.metrics
            .instances_created
            .fetch_add(1, Ordering::Relaxed);
        let mut instance = Instance { store, driver };
        // Cinder calls do_setup once per driver object; here, once per instance.
        match instance.driver.do_setup(&mut instance.store) {
            Ok(Ok(())) => Ok(instance),
            Ok(Err(e)) => Err(CallError::Driver(DriverFailure::from(e))),
            Err(e) => Err(self.sandbox_failure("do-setup", e)),
        }
    }

    /// Host calls this driver's instances were refused since it was loaded.
    pub fn denials(&self) -> u64 {
        self.ctx.denials.load(Ordering::Relaxed)
    }

    /// How much longer the backend is quarantined, if it is.
    pub fn quarantined_for(&self) -> Option<Duration> {
        self.health.quarantined_for()
    }

    fn sandbox_failure(&self, operation: &'static str, e: wasmtime::Error) -> CallError {
        self.metrics
            .sandbox_failures
            .fetch_add(1, Ordering::Relaxed);
        self.health.count_failure(&self.ctx.limits, &self.identity);
        self.failed.notify_waiters();
        let grew_too_far = e
            .chain()
            .any(|c| c.to_string().contains("forcing trap when growing memory"));
        let (kind, message) = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
            || e.downcast_ref::<host_calls::SleptPastDeadline>().is_some()
        {
            (
                SandboxFailure::DeadlineExceeded,
                format!(
                    "stopped after {} ms (limits.call_deadline_ms)",
                    self.ctx.limits.call_deadline_ms
                ),
            )
        } else if grew_too_far {
            (
                SandboxFailure::OutOfMemory,
                format!(
                    "tried to grow past its {} MiB memory ceiling (limits.memory_mib)",
                    self.ctx.limits.memory_mib
                ),
            )
        } else if let Some(trap) = e.downcast_ref::<Trap>() {
            (SandboxFailure::Trapped, trap.to_string())
        } else {
            (SandboxFailure::Trapped, e.root_cause().to_string())
        };
        tracing::error!(plugin = %self.identity.name, version = %self.identity.version,
            backend = %self.identity.backend, operation, "driver {kind}: {message}; instance replaced");
        CallError::Sandbox {
            identity: self.identity.clone(),
            operation,
            kind,
            message,
        }
    }
}
