//! Typed helpers over the host calls. Every call is checked by the host against the
//! operator's grant; a refusal comes back as an error naming what was refused.

/// Run granted programs, without a shell.
pub mod exec {
    use crate::DriverError;
    pub use crate::bindings::ashlar::driver::exec::{ExecError, Output};

    /// Runs `program` with `args`; the host's timeout applies.
    pub fn run(program: &str, args: &[&str]) -> Result<Output, ExecError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        crate::bindings::ashlar::driver::exec::run(program, &args, None)
    }

    /// Runs `program` with `args`, killed after `timeout_ms` (or the host's own limit,
    /// whichever is shorter): for probes that must answer quickly or not at all, such as
    /// `df` on a share whose server may have gone away.
    pub fn run_with_timeout(
        program: &str,
        args: &[&str],
        timeout_ms: u32,
    ) -> Result<Output, ExecError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        crate::bindings::ashlar::driver::exec::run(program, &args, Some(timeout_ms))
    }

    /// Runs `program` and returns its stdout when it exits 0; otherwise a driver error
    /// carrying the command and its stderr.
    pub fn check(program: &str, args: &[&str]) -> Result<String, DriverError> {
        let out = run(program, args).map_err(|e| from_exec_error(program, e))?;
        if out.status != 0 {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(DriverError::Internal(format!(
                "`{program} {}` exited with status {}: {}",
                args.join(" "),
                out.status,
                stderr.trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Maps a refused or failed exec to the driver error an operator should see.
    pub fn from_exec_error(program: &str, e: ExecError) -> DriverError {
        match e {
            ExecError::Denied(m) => {
                DriverError::BackendUnavailable(format!("exec of {program} refused: {m}"))
            }
            ExecError::NotInstalled(m) => {
                DriverError::BackendUnavailable(format!("{program} is not installed: {m}"))
            }
            ExecError::TimedOut(m) => {
                DriverError::BackendUnavailable(format!("{program} timed out: {m}"))
            }
            ExecError::Failed(m) => DriverError::Internal(format!("{program} failed: {m}")),
        }
    }
}

/// Byte access to granted devices and files.
pub mod block {
    use crate::DriverError;
    pub use crate::bindings::ashlar::driver::block::{Handle, IoError, OpenMode, copy, open};

    impl From<IoError> for DriverError {
        fn from(e: IoError) -> Self {
            match e {
                IoError::Denied(m) => {
                    DriverError::BackendUnavailable(format!("block access refused: {m}"))
                }
                IoError::NotFound(m) => DriverError::NotFound(m),
                IoError::InvalidArgument(m) => DriverError::InvalidArgument(m),
                IoError::Io(m) => DriverError::Internal(m),
            }
        }
    }
}

/// HTTP to granted endpoints.
pub mod http {
    pub use crate::bindings::ashlar::driver::http::{HttpError, Request, Response, send};
}

/// Logging through the host, tagged with the plugin and backend.
pub mod log {
    pub use crate::bindings::ashlar::driver::log::Level;
    use crate::bindings::ashlar::driver::log::log;

    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The backend's settings from the operator's config.
pub mod config {
    use crate::DriverError;
    pub use crate::bindings::ashlar::driver::config::{all, backend_name, get, host_name};

    /// A setting that must be present; the error names the key.
    pub fn require(key: &str) -> Result<String, DriverError> {
        get(key).ok_or_else(|| {
            DriverError::InvalidArgument(format!(
                "backend {} has no `{key}` setting; add it to the backend's section of the config",
                backend_name()
            ))
        })
    }

    /// A setting with a default.
    pub fn get_or(key: &str, default: &str) -> String {
        get(key).unwrap_or_else(|| default.to_string())
    }
}

/// Wall-clock time and sleeping (which counts against the call's deadline).
pub mod clock {
    pub use crate::bindings::ashlar::driver::clock::{now_ms, sleep_ms};
}
