//! Bindings for contract `ashlar:driver@0.1.0`. Frozen with the WIT it is generated from.
//!
//! The shared `types` interface is structurally the same in every version, so it maps to
//! the latest bindings' types and a 0.1.0 driver is called with the same values as a
//! newer one. The host interfaces keep their own 0.1.0 names (the component imports them
//! by version) and forward to the latest implementation.

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.0",
    world: "volume-driver",
    imports: {
        "ashlar:driver/clock.sleep-ms": trappable,
    },
    with: {
        "ashlar:driver/types": super::since_v0_2_0::ashlar::driver::types,
        "ashlar:driver/block.handle": crate::runtime::resources::BlockHandle,
    },
});

/// The contract version these bindings serve.
pub const VERSION: semver::Version = semver::Version::new(0, 1, 0);

use super::host_calls::HostState;
use super::resources::BlockHandle;
use super::since_v0_2_0::ashlar::driver as latest;
use ashlar::driver::{block, clock, config, exec, http, log};
use wasmtime::component::Resource;

impl exec::Host for HostState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        timeout_ms: Option<u32>,
    ) -> Result<exec::Output, exec::ExecError> {
        match latest::exec::Host::run(self, program, args, timeout_ms) {
            Ok(o) => Ok(exec::Output {
                status: o.status,
                stdout: o.stdout,
                stderr: o.stderr,
            }),
            Err(e) => Err(match e {
                latest::exec::ExecError::Denied(m) => exec::ExecError::Denied(m),
                latest::exec::ExecError::NotInstalled(m) => exec::ExecError::NotInstalled(m),
                latest::exec::ExecError::TimedOut(m) => exec::ExecError::TimedOut(m),
                latest::exec::ExecError::Failed(m) => exec::ExecError::Failed(m),
            }),
        }
    }
}

fn io(e: latest::block::IoError) -> block::IoError {
    match e {
        latest::block::IoError::Denied(m) => block::IoError::Denied(m),
        latest::block::IoError::NotFound(m) => block::IoError::NotFound(m),
        latest::block::IoError::InvalidArgument(m) => block::IoError::InvalidArgument(m),
        latest::block::IoError::Io(m) => block::IoError::Io(m),
    }
}

impl block::Host for HostState {
    fn open(
        &mut self,
        path: String,
        mode: block::OpenMode,
    ) -> Result<Resource<BlockHandle>, block::IoError> {
        let mode = match mode {
            block::OpenMode::ReadOnly => latest::block::OpenMode::ReadOnly,
            block::OpenMode::ReadWrite => latest::block::OpenMode::ReadWrite,
            block::OpenMode::Create => latest::block::OpenMode::Create,
        };
        latest::block::Host::open(self, path, mode).map_err(io)
    }
    fn copy(
        &mut self,
        src: Resource<BlockHandle>,
        src_offset: u64,
        dst: Resource<BlockHandle>,
        dst_offset: u64,
        len: u64,
    ) -> Result<u64, block::IoError> {
        latest::block::Host::copy(self, src, src_offset, dst, dst_offset, len).map_err(io)
    }
}

impl block::HostHandle for HostState {
    fn read_at(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, block::IoError> {
        latest::block::HostHandle::read_at(self, h, offset, len).map_err(io)
    }
    fn write_at(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u32, block::IoError> {
        latest::block::HostHandle::write_at(self, h, offset, data).map_err(io)
    }
    fn size(&mut self, h: Resource<BlockHandle>) -> Result<u64, block::IoError> {
        latest::block::HostHandle::size(self, h).map_err(io)
    }
    fn set_size(&mut self, h: Resource<BlockHandle>, size: u64) -> Result<(), block::IoError> {
        latest::block::HostHandle::set_size(self, h, size).map_err(io)
    }
    fn flush(&mut self, h: Resource<BlockHandle>) -> Result<(), block::IoError> {
        latest::block::HostHandle::flush(self, h).map_err(io)
    }
    fn discard(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), block::IoError> {
        latest::block::HostHandle::discard(self, h, offset, len).map_err(io)
    }
    fn drop(&mut self, h: Resource<BlockHandle>) -> wasmtime::Result<()> {
        latest::block::HostHandle::drop(self, h)
    }
}

impl http::Host for HostState {
    fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let req = latest::http::Request {
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: req.body,
            credential: req.credential,
            timeout_ms: req.timeout_ms,
        };
        match latest::http::Host::send(self, req) {
            Ok(r) => Ok(http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => Err(match e {
                latest::http::HttpError::Denied(m) => http::HttpError::Denied(m),
                latest::http::HttpError::TimedOut(m) => http::HttpError::TimedOut(m),
                latest::http::HttpError::Connection(m) => http::HttpError::Connection(m),
                latest::http::HttpError::TooLarge(m) => http::HttpError::TooLarge(m),
                latest::http::HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
            }),
        }
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => latest::log::Level::Trace,
            log::Level::Debug => latest::log::Level::Debug,
            log::Level::Info => latest::log::Level::Info,
            log::Level::Warn => latest::log::Level::Warn,
            log::Level::Error => latest::log::Level::Error,
        };
        latest::log::Host::log(self, level, message)
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        latest::config::Host::get(self, key)
    }
    fn all(&mut self) -> Vec<(String, String)> {
        latest::config::Host::all(self)
    }
    fn backend_name(&mut self) -> String {
        latest::config::Host::backend_name(self)
    }
    fn host_name(&mut self) -> String {
        latest::config::Host::host_name(self)
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        latest::clock::Host::now_ms(self)
    }
    fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
        latest::clock::Host::sleep_ms(self, ms)
    }
}
