//! `log`: a driver's lines go to the host's log under its identity, bounded in length and
//! in number per call.

use super::HostState;
use crate::runtime::latest::ashlar::driver::log;

/// Longest log line kept from a driver.
const MAX_LOG_LINE: usize = 4096;

/// Log lines one driver call may write; past it lines are dropped (and that is logged
/// once), so a driver cannot flood the host's log.
const LOG_LINES_PER_CALL: u32 = 1000;

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > LOG_LINES_PER_CALL {
            if self.log_lines == LOG_LINES_PER_CALL + 1 {
                let id = &self.ctx.identity;
                tracing::warn!(plugin = %id.name, version = %id.version, backend = %id.backend,
                    "driver log budget of {LOG_LINES_PER_CALL} lines per call exceeded; dropping the rest of this call's lines");
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" […]");
        }
        let id = &self.ctx.identity;
        match level {
            log::Level::Trace => {
                tracing::trace!(plugin = %id.name, version = %id.version, backend = %id.backend, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(plugin = %id.name, version = %id.version, backend = %id.backend, "{message}")
            }
            log::Level::Info => {
                tracing::info!(plugin = %id.name, version = %id.version, backend = %id.backend, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(plugin = %id.name, version = %id.version, backend = %id.backend, "{message}")
            }
            log::Level::Error => {
                tracing::error!(plugin = %id.name, version = %id.version, backend = %id.backend, "{message}")
            }
        }
    }
}
