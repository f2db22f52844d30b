//! The engine every driver runs on: one wasmtime [`Engine`] with the pooling allocator and
//! epoch interruption, the epoch ticker that makes deadlines work, and one linker with
//! every host import of every contract version served.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::{self, ComponentCache};
use super::error::LoadError;
use super::host_calls::HostState;
use super::{latest, since_v0_1_0, since_v0_2_0};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest memory any backend may configure (each pool slot reserves this much address
/// space, not memory).
const MAX_MEMORY_BYTES: usize = 4 << 30;

pub struct Runtime {
    pub(super) engine: Engine,
    pub(super) linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    pub(super) http: reqwest::Client,
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
        since_v0_2_0::VolumeDriver::add_to_linker::<HostState, HasSelf<HostState>>(
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

        let cache = cache_dir.map(ComponentCache::open).transpose()?;
        let http = reqwest::Client::builder()
            // A redirect could lead to a host the operator never granted.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LoadError::Engine(format!("cannot make the HTTP client: {e}")))?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
            http,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes`, or loads the precompiled artifact cached for the same bytes and
    /// engine.
    pub fn compile(&self, what: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        match &self.cache {
            Some(cache) => cache.compile(&self.engine, what, bytes),
            None => Component::new(&self.engine, bytes).map_err(cache::compile_error(what)),
        }
    }
}
