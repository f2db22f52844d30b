//! The runtime's errors: why a driver would not load, and why a call into one failed.

use std::path::PathBuf;

use super::component::CONTRACT_SECTION;
use super::host_calls::PluginIdentity;
use super::latest::ashlar::driver::types::DriverError;
use crate::capabilities::CapabilityError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} carries no `{CONTRACT_SECTION}` section, so it was not built with the Ashlar SDK; rebuild it against ashlar-sdk, or, built by another toolchain (componentize-py), stamp it with `ashlar plugin stamp DRIVER.wasm --contract X.Y.Z`"
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
