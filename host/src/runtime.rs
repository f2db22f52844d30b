//! The plugin runtime: one wasmtime [`Engine`] (pooling allocator, epoch interruption),
//! compiled components cached on disk, and a small pool of instances per backend.
//!
//! Lifecycle, in order: [`Runtime::new`] makes the engine and linker once; [`Runtime::load`]
//! checks a component (contract version, world, manifest against grants) and prepares it;
//! [`DriverPool::call`] runs one driver call on an instance under a deadline and a memory
//! ceiling. A trap, a missed deadline or running out of memory fails that call only: the
//! instance is thrown away and the next call gets a fresh one.

mod convert;
pub mod host_calls;
mod operations;
pub mod since_v0_1_0;
pub mod since_v0_2_0;
pub mod versions;

/// The newest contract version; the rest of the host speaks its types.
pub use since_v0_2_0 as latest;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::capabilities::{self, CapabilityError, Manifest, World};
use crate::config::{Credential, Limits};
use host_calls::{BackendContext, HostState, PluginIdentity};
use latest::ashlar::driver::types::DriverError;

/// The custom section the SDK stamps with the contract version.
pub const CONTRACT_SECTION: &str = "ashlar:contract-version";

/// How often the epoch advances; call deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest memory any backend may configure (each pool slot reserves this much address
/// space, not memory).
const MAX_MEMORY_BYTES: usize = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} carries no `{CONTRACT_SECTION}` section, so it was not built with the Ashlar SDK; rebuild it against ashlar-sdk"
    )]
    NoContractVersion { what: String },
    #[error(
        "{what} was built against contract {found}, but this host serves {served}; use a driver built for one of those or upgrade Ashlar"
    )]
    UnsupportedContract {
        what: String,
        found: String,
        served: String,
    },
    #[error("{what} is not a valid component: {message}")]
    Compile { what: String, message: String },
    #[error(
        "{what} declares world `{declared}` in its plugin.toml, but it is configured where a `{wanted}` belongs (a backend's `driver` is a volume-driver; its `target.driver` a target-driver)"
    )]
    WorldNotServed {
        what: String,
        declared: String,
        wanted: String,
    },
    #[error("{what} does not fit contract {version}: {message}")]
    Contract {
        what: String,
        version: String,
        message: String,
    },
    #[error(transparent)]
    Capability(Box<CapabilityError>),
    #[error("{0}")]
    Engine(String),
}

/// Why a call into a driver failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The driver answered with an error of its own.
    #[error("{0}")]
    Driver(DriverFailure),
    /// The sandbox stopped the driver: the instance is gone, the host is fine.
    #[error("{identity}: {operation} {kind}: {message}")]
    Sandbox {
        identity: PluginIdentity,
        operation: &'static str,
        kind: SandboxFailure,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxFailure {
    DeadlineExceeded,
    OutOfMemory,
    Trapped,
    InstantiationFailed,
    /// Not run: the backend failed in the sandbox too often lately.
    Quarantined,
}

impl std::fmt::Display for SandboxFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SandboxFailure::DeadlineExceeded => "exceeded its deadline",
            SandboxFailure::OutOfMemory => "ran out of memory",
            SandboxFailure::Trapped => "trapped",
            SandboxFailure::InstantiationFailed => "could not be instantiated",
            SandboxFailure::Quarantined => "refused: the backend is quarantined",
        })
    }
}

/// A driver's own error, independent of the contract version it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverFailure {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not supported: {0}")]
    NotSupported(String),
    #[error("capacity exceeded: {0}")]
    CapacityExceeded(String),
    #[error("backend unavailable: {0}")]
    BackendUnavailable(String),
    #[error("driver error: {0}")]
    Internal(String),
}

impl From<DriverError> for DriverFailure {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::NotFound(m) => DriverFailure::NotFound(m),
            DriverError::InvalidArgument(m) => DriverFailure::InvalidArgument(m),
            DriverError::NotSupported(m) => DriverFailure::NotSupported(m),
            DriverError::CapacityExceeded(m) => DriverFailure::CapacityExceeded(m),
            DriverError::BackendUnavailable(m) => DriverFailure::BackendUnavailable(m),
            DriverError::Internal(m) => DriverFailure::Internal(m),
        }
    }
}

/// Reads the contract version the SDK stamped into a component.
pub fn contract_version(bytes: &[u8]) -> Result<Option<semver::Version>, String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| e.to_string())?;
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == CONTRACT_SECTION
        {
            let text = std::str::from_utf8(reader.data())
                .map_err(|e| format!("{CONTRACT_SECTION}: {e}"))?;
            return semver::Version::parse(text.trim_end_matches('\0'))
                .map(Some)
                .map_err(|e| format!("{CONTRACT_SECTION} `{text}`: {e}"));
        }
    }
    Ok(None)
}

/// Everything needed to run one backend's driver.
pub struct DriverSpec {
    pub backend: String,
    /// Where the component came from, for messages.
    pub origin: String,
    pub wasm: Arc<[u8]>,
    pub manifest: Manifest,
    pub grants: capabilities::Grants,
    pub settings: BTreeMap<String, String>,
    pub credentials: BTreeMap<String, Credential>,
    pub limits: Limits,
    pub host_name: String,
    /// Where granted program names are looked up.
    pub exec_dirs: Vec<PathBuf>,
    /// The world the caller will use the component as; the manifest must declare it.
    pub world: World,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    http: reqwest::Client,
}

impl Runtime {
    /// Makes the engine, the linker with every host import, and the epoch ticker.
    /// Compiled components are cached under `cache_dir` when given.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Runtime>, LoadError> {
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(512)
            .total_tables(1024)
            .total_stacks(256)
            .max_core_instances_per_component(32)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_memory_size(MAX_MEMORY_BYTES);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config)
            .map_err(|e| LoadError::Engine(format!("cannot make the wasm engine: {e}")))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        since_v0_1_0::VolumeDriver::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| LoadError::Engine(e.to_string()))?;
        latest::VolumeDriver::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(e.to_string()))?;

        // The ticker holds the engine weakly: it stops when the last pool using it is gone.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| LoadError::Read {
                path: dir.clone(),
                source,
            })?;
        }
        let http = reqwest::Client::builder()
            // A redirect could lead to a host the operator never granted.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LoadError::Engine(format!("cannot make the HTTP client: {e}")))?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache_dir,
            http,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes`, or loads the precompiled artifact cached for the same bytes and
    /// engine.
    pub fn compile(&self, what: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let compile_err = |e: wasmtime::Error| LoadError::Compile {
            what: what.to_string(),
            message: format!("{e:#}"),
        };
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(compile_err);
        };
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut h);
            hasher.update(h.finish().to_le_bytes());
        }
        let key: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = dir.join(format!("{key}.cwasm"));
        if path.exists() {
            // SAFETY: the cache directory is the host's own, written only below from
            // `Component::serialize` by this engine configuration (the key covers it).
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(&self.engine, &path) };
            match cached {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cached component: {e}")
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(compile_err)?;
        if let Ok(serialized) = component.serialize() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, serialized)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .is_err()
            {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(path = %path.display(), "could not cache the compiled component");
            }
        }
        Ok(component)
    }

    /// Checks and prepares a backend's driver: contract version, manifest against the
    /// operator's grants, world, then one instance that must pass do-setup.
    pub fn load(self: &Arc<Self>, spec: DriverSpec) -> Result<Arc<DriverPool>, LoadError> {
        let identity = PluginIdentity {
            name: spec.manifest.name.clone(),
            version: spec.manifest.version.clone(),
            backend: spec.backend.clone(),
        };
        let what = format!(
            "plugin {} {} ({})",
            identity.name, identity.version, spec.origin
        );
        let contract = match contract_version(&spec.wasm).map_err(|m| LoadError::Compile {
            what: what.clone(),
            message: m,
        })? {
            None => return Err(LoadError::NoContractVersion { what }),
            Some(v) if versions::served(&v).is_none() => {
                return Err(LoadError::UnsupportedContract {
                    what,
                    found: v.to_string(),
                    served: versions::served_list(),
                });
            }
            Some(v) => v,
        };
        let served = versions::served(&contract).expect("checked above");
        if spec.manifest.world != spec.world {
            return Err(LoadError::WorldNotServed {
                what,
                declared: spec.manifest.world.to_string(),
                wanted: spec.world.to_string(),
            });
        }
        let settings = spec.manifest.settings_with_defaults(&spec.settings);
        // Refusals name the config section the grants live in.
        let section = match spec.world {
            World::TargetDriver => format!("{}.target", spec.backend),
            _ => spec.backend.clone(),
        };
        let capabilities = capabilities::grant(&spec.manifest, &section, &settings, &spec.grants)
            .map_err(|e| LoadError::Capability(Box::new(e)))?;
        let component = self.compile(&what, &spec.wasm)?;
        let contract_err = |e: wasmtime::Error| LoadError::Contract {
            what: what.clone(),
            version: served.to_string(),
            message: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(contract_err)?;
        let pre =
            versions::DriverPre::new(&contract, spec.world, instance_pre).map_err(contract_err)?;
        let ctx = Arc::new(BackendContext {
            identity: identity.clone(),
            capabilities,
            settings,
            credentials: spec.credentials,
            host_name: spec.host_name,
            exec_dirs: spec.exec_dirs,
            limits: spec.limits.clone(),
            http: self.http.clone(),
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| LoadError::Engine("the runtime must be loaded inside tokio".into()))?,
        });
        Ok(Arc::new(DriverPool {
            identity,
            contract,
            world: spec.manifest.world,
            origin: spec.origin,
            loaded_at: std::time::SystemTime::now(),
            engine: self.engine.clone(),
            ctx,
            pre,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(spec.limits.instances as usize)),
            metrics: PoolMetrics::default(),
            health: Mutex::new(Health::default()),
            failed: tokio::sync::Notify::new(),
        }))
    }
}

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
    health: Mutex<Health>,
    /// Woken on every sandbox failure, so a probation can act at once.
    pub failed: tokio::sync::Notify,
}

/// Recent sandbox failures, and the quarantine they may have caused.
#[derive(Default)]
struct Health {
    failures: std::collections::VecDeque<Instant>,
    quarantined_until: Option<Instant>,
}

impl DriverPool {
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
                message: format!(
                    "after {} sandbox failures within {} s it takes no calls for another {} s (limits.max_sandbox_failures)",
                    self.ctx.limits.max_sandbox_failures,
                    self.ctx.limits.failure_window_secs,
                    left.as_secs() + 1
                ),
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
            pool.call_blocking(operation, f)
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

    /// The same as [`DriverPool::call`] for callers already on a blocking thread (and for
    /// benchmarks); does not wait for a permit.
    pub fn call_blocking<R>(
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
        let mut store = Store::new(&self.engine, HostState::new(self.ctx.clone()));
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

    /// How much longer the backend is quarantined, if it is.
    pub fn quarantined_for(&self) -> Option<Duration> {
        let mut h = self.health.lock().expect("health lock");
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
    fn count_failure(&self) {
        let limits = &self.ctx.limits;
        if limits.max_sandbox_failures == 0 {
            return;
        }
        let now = Instant::now();
        let window = Duration::from_secs(limits.failure_window_secs);
        let mut h = self.health.lock().expect("health lock");
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
            tracing::error!(plugin = %self.identity.name, version = %self.identity.version,
                backend = %self.identity.backend,
                "backend quarantined for {} s after {} sandbox failures within {} s",
                limits.quarantine_secs, h.failures.len(), limits.failure_window_secs);
        }
    }

    fn sandbox_failure(&self, operation: &'static str, e: wasmtime::Error) -> CallError {
        self.metrics
            .sandbox_failures
            .fetch_add(1, Ordering::Relaxed);
        self.count_failure();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nfs_bytes() -> Vec<u8> {
        crate::bundled::find("nfs").unwrap().wasm.to_vec()
    }

    /// Rewrites `old` to `new` (same length) where it follows the section name.
    fn patch(mut bytes: Vec<u8>, at: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
        let pos = bytes
            .windows(at.len())
            .position(|w| w == at)
            .expect("section present");
        let start = pos + at.len() - old.len();
        assert_eq!(&bytes[start..start + old.len()], old);
        bytes[start..start + new.len()].copy_from_slice(new);
        bytes
    }

    fn spec(wasm: Vec<u8>) -> DriverSpec {
        let share = std::env::temp_dir();
        let b = crate::bundled::find("nfs").unwrap();
        DriverSpec {
            backend: "t".into(),
            origin: "test".into(),
            wasm: wasm.into(),
            manifest: Manifest::from_toml_str(b.manifest).unwrap(),
            grants: toml::from_str(r#"exec = ["qemu-img", "rm", "df", "du"]"#).unwrap(),
            settings: BTreeMap::from([("share_path".into(), share.display().to_string())]),
            credentials: BTreeMap::new(),
            limits: Limits::default(),
            host_name: "h".into(),
            exec_dirs: crate::config::default_exec_dirs(),
            world: World::VolumeDriver,
        }
    }

    #[test]
    fn reads_the_version_the_sdk_stamped() {
        assert_eq!(
            contract_version(&nfs_bytes()).unwrap(),
            Some(semver::Version::new(0, 2, 0))
        );
        assert_eq!(contract_version(b"\0asm\x01\0\0\0").unwrap(), None);
        assert!(contract_version(b"not wasm").is_err());
    }

    #[tokio::test]
    async fn refuses_a_component_for_another_contract_before_instantiating() {
        let runtime = Runtime::new(None).unwrap();
        let newer = patch(
            nfs_bytes(),
            b"ashlar:contract-version0.2.0",
            b"0.2.0",
            b"0.9.0",
        );
        let err = runtime
            .load(spec(newer))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("built against contract 0.9.0"), "{err}");
        assert!(err.contains("this host serves 0.1, 0.2"), "{err}");
        assert!(err.contains("plugin nfs 0.1.0"), "{err}");

        let unstamped = patch(
            nfs_bytes(),
            b"ashlar:contract-version",
            b"version",
            b"versioX",
        );
        let err = runtime
            .load(spec(unstamped))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("not built with the Ashlar SDK"), "{err}");

        // The real one loads and answers.
        let pool = runtime.load(spec(nfs_bytes())).unwrap();
        let stats = pool
            .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
            .await
            .unwrap();
        assert_eq!(stats.storage_protocol, "nfs");
        assert_eq!(stats.volume_backend_name, "t");
        assert!(stats.pools[0].total_capacity_gb > 0.0);
    }
}

#[cfg(test)]
mod contract_versions {
    use super::*;

    fn spec_for(wasm: Vec<u8>, manifest: &str, grants: &str) -> DriverSpec {
        DriverSpec {
            backend: "t".into(),
            origin: "test".into(),
            wasm: wasm.into(),
            manifest: Manifest::from_toml_str(manifest).unwrap(),
            grants: toml::from_str(grants).unwrap(),
            settings: BTreeMap::from([(
                "share_path".into(),
                std::env::temp_dir().display().to_string(),
            )]),
            credentials: BTreeMap::new(),
            limits: Limits::default(),
            host_name: "h".into(),
            exec_dirs: crate::config::default_exec_dirs(),
            world: World::VolumeDriver,
        }
    }

    #[tokio::test]
    async fn drivers_of_both_contracts_are_served_side_by_side() {
        let runtime = Runtime::new(None).unwrap();
        let dir = std::path::Path::new(crate::bundled::FIXTURES_DIR);
        let old = runtime
            .load(spec_for(
                std::fs::read(dir.join("contract-v0-1.wasm")).unwrap(),
                &std::fs::read_to_string(dir.join("contract-v0-1.toml")).unwrap(),
                "",
            ))
            .unwrap();
        let nfs = crate::bundled::find("nfs").unwrap();
        let new = runtime
            .load(spec_for(
                nfs.wasm.to_vec(),
                nfs.manifest,
                r#"exec = ["qemu-img", "rm", "df", "du"]"#,
            ))
            .unwrap();
        assert_eq!(old.contract, semver::Version::new(0, 1, 0));
        assert_eq!(new.contract, semver::Version::new(0, 2, 0));

        // The same call, the same types, through either version's bindings.
        let stats = old
            .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
            .await
            .unwrap();
        assert_eq!(stats.pools[0].pool_name, "old");
        let stats = new
            .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
            .await
            .unwrap();
        assert_eq!(stats.storage_protocol, "nfs");

        // Only the newer contract has the health export.
        let health = old
            .call("health", |s, d| Ok(Ok(d.health(s).is_some())))
            .await
            .unwrap();
        assert!(!health, "a 0.1.0 driver has no health export");
        let report = new
            .call("health", |s, d| d.health(s).expect("0.2.0 has health"))
            .await
            .unwrap();
        assert!(report.healthy, "{report:?}");
    }
}
