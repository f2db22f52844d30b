//! The host imports of an older contract version, forwarded to the latest
//! implementation. Every version's `exec`, `block`, `http`, `log`, `config` and `clock` are
//! structurally the same; a component imports them by its own version's names, so each
//! older version's bindings get these forwarding impls (see `since_v0_1_0`).

/// Implements an older version's host traits for `HostState` by forwarding to the latest
/// ones. `$v` is the path of that version's `ashlar::driver` module.
macro_rules! forward_host_calls {
    ($($v:ident)::+) => {
        const _: () = {
        use crate::runtime::host_calls::HostState;
        use crate::runtime::resources::BlockHandle;
        use wasmtime::component::Resource;
        use crate::runtime::latest::ashlar::driver as latest;
        use $($v)::+ as old;

        impl old::exec::Host for HostState {
            fn run(
                &mut self,
                program: String,
                args: Vec<String>,
                timeout_ms: Option<u32>,
            ) -> Result<old::exec::Output, old::exec::ExecError> {
                match latest::exec::Host::run(self, program, args, timeout_ms) {
                    Ok(o) => Ok(old::exec::Output {
                        status: o.status,
                        stdout: o.stdout,
                        stderr: o.stderr,
                    }),
                    Err(e) => Err(match e {
                        latest::exec::ExecError::Denied(m) => old::exec::ExecError::Denied(m),
                        latest::exec::ExecError::NotInstalled(m) => old::exec::ExecError::NotInstalled(m),
                        latest::exec::ExecError::TimedOut(m) => old::exec::ExecError::TimedOut(m),
                        latest::exec::ExecError::Failed(m) => old::exec::ExecError::Failed(m),
                    }),
                }
            }
        }

        fn io(e: latest::block::IoError) -> old::block::IoError {
            match e {
                latest::block::IoError::Denied(m) => old::block::IoError::Denied(m),
                latest::block::IoError::NotFound(m) => old::block::IoError::NotFound(m),
                latest::block::IoError::InvalidArgument(m) => old::block::IoError::InvalidArgument(m),
                latest::block::IoError::Io(m) => old::block::IoError::Io(m),
            }
        }

        impl old::block::Host for HostState {
            fn open(
                &mut self,
                path: String,
                mode: old::block::OpenMode,
            ) -> Result<Resource<BlockHandle>, old::block::IoError> {
                let mode = match mode {
                    old::block::OpenMode::ReadOnly => latest::block::OpenMode::ReadOnly,
                    old::block::OpenMode::ReadWrite => latest::block::OpenMode::ReadWrite,
                    old::block::OpenMode::Create => latest::block::OpenMode::Create,
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
            ) -> Result<u64, old::block::IoError> {
                latest::block::Host::copy(self, src, src_offset, dst, dst_offset, len).map_err(io)
            }
        }

        impl old::block::HostHandle for HostState {
            fn read_at(
                &mut self,
                h: Resource<BlockHandle>,
                offset: u64,
                len: u32,
            ) -> Result<Vec<u8>, old::block::IoError> {
                latest::block::HostHandle::read_at(self, h, offset, len).map_err(io)
            }
            fn write_at(
                &mut self,
                h: Resource<BlockHandle>,
                offset: u64,
                data: Vec<u8>,
            ) -> Result<u32, old::block::IoError> {
                latest::block::HostHandle::write_at(self, h, offset, data).map_err(io)
            }
            fn size(&mut self, h: Resource<BlockHandle>) -> Result<u64, old::block::IoError> {
                latest::block::HostHandle::size(self, h).map_err(io)
            }
            fn set_size(&mut self, h: Resource<BlockHandle>, size: u64) -> Result<(), old::block::IoError> {
                latest::block::HostHandle::set_size(self, h, size).map_err(io)
            }
            fn flush(&mut self, h: Resource<BlockHandle>) -> Result<(), old::block::IoError> {
                latest::block::HostHandle::flush(self, h).map_err(io)
            }
            fn discard(
                &mut self,
                h: Resource<BlockHandle>,
                offset: u64,
                len: u64,
            ) -> Result<(), old::block::IoError> {
                latest::block::HostHandle::discard(self, h, offset, len).map_err(io)
            }
            fn drop(&mut self, h: Resource<BlockHandle>) -> wasmtime::Result<()> {
                latest::block::HostHandle::drop(self, h)
            }
        }

        impl old::http::Host for HostState {
            fn send(&mut self, req: old::http::Request) -> Result<old::http::Response, old::http::HttpError> {
                let req = latest::http::Request {
                    method: req.method,
                    url: req.url,
                    headers: req.headers,
                    body: req.body,
                    credential: req.credential,
                    timeout_ms: req.timeout_ms,
                };
                match latest::http::Host::send(self, req) {
                    Ok(r) => Ok(old::http::Response {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                    }),
                    Err(e) => Err(match e {
                        latest::http::HttpError::Denied(m) => old::http::HttpError::Denied(m),
                        latest::http::HttpError::TimedOut(m) => old::http::HttpError::TimedOut(m),
                        latest::http::HttpError::Connection(m) => old::http::HttpError::Connection(m),
                        latest::http::HttpError::TooLarge(m) => old::http::HttpError::TooLarge(m),
                        latest::http::HttpError::InvalidRequest(m) => old::http::HttpError::InvalidRequest(m),
                    }),
                }
            }
        }

        impl old::log::Host for HostState {
            fn log(&mut self, level: old::log::Level, message: String) {
                let level = match level {
                    old::log::Level::Trace => latest::log::Level::Trace,
                    old::log::Level::Debug => latest::log::Level::Debug,
                    old::log::Level::Info => latest::log::Level::Info,
                    old::log::Level::Warn => latest::log::Level::Warn,
                    old::log::Level::Error => latest::log::Level::Error,
                };
                latest::log::Host::log(self, level, message)
            }
        }

        impl old::config::Host for HostState {
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

        impl old::clock::Host for HostState {
            fn now_ms(&mut self) -> u64 {
                latest::clock::Host::now_ms(self)
            }
            fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
                latest::clock::Host::sleep_ms(self, ms)
            }
        }
        };
    };
}

pub(super) use forward_host_calls;
