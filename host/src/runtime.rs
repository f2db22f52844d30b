//! The plugin runtime: one wasmtime [`Engine`](wasmtime::Engine) (pooling allocator, epoch
//! interruption), compiled components cached on disk, and a small pool of instances per
//! backend.
//!
//! Lifecycle, in order: [`Runtime::new`] makes the engine and linker once (`engine`);
//! [`Runtime::load`] checks a component (contract version, world, manifest against grants),
//! compiles it or takes the cached artifact (`cache`) and prepares it (`load`);
//! [`DriverPool::call`] runs one driver call on an instance under a deadline and a memory
//! ceiling (`pool`). A trap, a missed deadline or running out of memory fails that call
//! only: the instance is thrown away and the next call gets a fresh one, and enough such
//! failures in a window quarantine the backend (`health`). The rest of the host calls
//! drivers through the typed methods of `operations`, in its own types (`convert`).
//!
//! The host side of every import a driver may call is in `host_calls`; the bindings of each
//! contract version in `since_v0_*`, with the host types behind the contract's resources in
//! `resources` (which uses no bindings, so bindings and host calls do not use each other).

mod cache;
mod compat;
mod component;
mod convert;
mod engine;
mod error;
mod forward;
mod health;
pub mod host_calls;
mod load;
mod operations;
mod pool;
pub mod resources;
pub mod since_v0_1_0;
pub mod since_v0_2_0;
pub mod since_v0_3_0;
pub mod versions;

/// The newest contract version; the rest of the host speaks its types.
pub use since_v0_3_0 as latest;

pub use component::{CONTRACT_SECTION, contract_version, export_names, world_of_exports};
pub use engine::Runtime;
pub use error::{CallError, DriverFailure, LoadError, SandboxFailure};
pub use load::{Admitted, DriverSpec, admit, served_contract};
pub use pool::{DriverPool, PoolMetrics};
