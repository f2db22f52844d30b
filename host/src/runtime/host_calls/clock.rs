//! `clock`: the time, and sleeps that end the call when they would outlast its deadline.

use std::time::Duration;

use super::HostState;
use crate::runtime::latest::ashlar::driver::clock;

/// Raised when a driver sleeps past its call's deadline.
#[derive(Debug, thiserror::Error)]
#[error("the driver slept past its call deadline")]
pub struct SleptPastDeadline;

impl clock::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
        let want = Duration::from_millis(ms.into());
        let left = self.remaining();
        if want > left {
            std::thread::sleep(left);
            return Err(wasmtime::Error::new(SleptPastDeadline));
        }
        std::thread::sleep(want);
        Ok(())
    }
}
