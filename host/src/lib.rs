//! Ashlar: a block-storage service in the mould of OpenStack Cinder whose vendor drivers
//! are sandboxed WebAssembly components.

pub mod api;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod backup;
pub mod bundled;
pub mod client;
pub use ashlar_capabilities as capabilities;
pub mod config;
pub mod conformance;
pub mod data_dir;
pub mod db;
pub mod device;
pub mod driver;
pub mod http;
pub mod image;
pub mod plugins;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod volume;
pub mod worker;
