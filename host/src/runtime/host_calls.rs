//! The host side of every import a driver may call. Each one asks the effective
//! capabilities first; a refusal returns the contract's `denied` error naming what was
//! refused, and is logged with the plugin's identity.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::since_v0_2_0::ashlar::driver::{block, clock, config, exec, http, log, types};
use crate::capabilities::EffectiveCapabilities;
use crate::capabilities::http::Redactor;
use crate::config::{Credential, Limits};

/// Largest single read a driver may ask for; bulk moves use `block.copy`.
const MAX_READ: u32 = 16 << 20;

/// Longest log line kept from a driver.
const MAX_LOG_LINE: usize = 4096;

/// Log lines one driver call may write; past it lines are dropped (and that is logged
/// once), so a driver cannot flood the host's log.
const LOG_LINES_PER_CALL: u32 = 1000;

/// Block handles one instance may hold open; each is a host file descriptor.
const MAX_OPEN_HANDLES: usize = 64;

/// Who is calling: attached to every log line and error.
#[derive(Debug, Clone)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    pub backend: String,
}

impl std::fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin {} {} (backend {})",
            self.name, self.version, self.backend
        )
    }
}

/// What a backend's instances share: identity, grants, settings, limits.
pub struct BackendContext {
    pub identity: PluginIdentity,
    pub capabilities: EffectiveCapabilities,
    pub settings: BTreeMap<String, String>,
    pub credentials: BTreeMap<String, Credential>,
    pub host_name: String,
    /// Where granted programs are looked up (`exec_dirs`); a driver names programs, never
    /// paths.
    pub exec_dirs: Vec<PathBuf>,
    pub limits: Limits,
    pub http: reqwest::Client,
    pub runtime: tokio::runtime::Handle,
}

/// A granted file or device, open for a driver.
pub struct BlockHandle {
    file: File,
    path: PathBuf,
    writable: bool,
}

/// The data of one instance's store.
pub struct HostState {
    pub ctx: Arc<BackendContext>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    /// When the current call must be over.
    pub deadline: Instant,
    /// Log lines written in the current call.
    pub log_lines: u32,
    open_handles: usize,
}

impl HostState {
    pub fn new(ctx: Arc<BackendContext>) -> Self {
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size((ctx.limits.memory_mib as usize) << 20)
            .trap_on_grow_failure(true)
            .build();
        HostState {
            ctx,
            // No preopens, no environment, no network: WASI here only carries what Rust's
            // standard library links against.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits,
            deadline: Instant::now(),
            log_lines: 0,
            open_handles: 0,
        }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn denied(&self, what: &str, message: &str) {
        tracing::warn!(plugin = %self.ctx.identity.name, version = %self.ctx.identity.version,
            backend = %self.ctx.identity.backend, "{what} refused: {message}");
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Lets the store ask about memory growth through the configured limits.
pub fn limiter(state: &mut HostState) -> &mut dyn ResourceLimiter {
    &mut state.limits
}

fn resolve_program(dirs: &[PathBuf], program: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Kills a program and leaves the waiting to a thread of its own: a process stuck in the
/// kernel (a hung NFS mount) dies only when its I/O returns, and the call must not wait for
/// that.
fn reap(mut child: std::process::Child) {
    let _ = child.kill();
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// Whether an option names a secret, so the argument after it (or its `=value`) is masked
/// wherever the host writes a command line down (as oslo's `mask_password`).
fn is_secret_key(key: &str) -> bool {
    let key = key.trim_start_matches('-').to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "chap"]
        .iter()
        .any(|k| key.contains(k))
}

/// `args` with the values of secret-looking options replaced by `***`.
fn masked_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for a in args {
        if mask_next {
            out.push("***".to_string());
            mask_next = false;
        } else if let Some((k, _)) = a.split_once('=')
            && is_secret_key(k)
        {
            out.push(format!("{k}=***"));
        } else {
            mask_next = a.starts_with('-') && is_secret_key(a);
            out.push(a.clone());
        }
    }
    out
}

/// `text` with every secret value of `args` (see [`masked_args`]) replaced by `***`.
fn mask_secrets(text: &str, args: &[String]) -> String {
    let mut text = text.to_string();
    for (a, m) in args.iter().zip(masked_args(args)) {
        if *a != m && !a.is_empty() {
            let secret = a
                .split_once('=')
                .filter(|(k, _)| is_secret_key(k))
                .map_or(a.as_str(), |(_, v)| v);
            if !secret.is_empty() {
                text = text.replace(secret, "***");
            }
        }
    }
    text
}

/// Reads a pipe to the end, keeping at most `cap` bytes. Past the cap it stops reading
/// and raises `over`, so the program blocks on its full pipe until the host kills it.
fn read_capped(mut r: impl Read, cap: usize, over: &AtomicBool) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if kept.len() + n > cap => {
                over.store(true, Ordering::Relaxed);
                break;
            }
            Ok(n) => kept.extend_from_slice(&buf[..n]),
        }
    }
    kept
}

/// The shared types interface has no functions.
impl types::Host for HostState {}

impl exec::Host for HostState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        timeout_ms: Option<u32>,
    ) -> Result<exec::Output, exec::ExecError> {
        if let Err(denied) = self.ctx.capabilities.exec_allows(&program, &args) {
            let msg = mask_secrets(&denied.to_string(), &args);
            self.denied("exec", &msg);
            return Err(exec::ExecError::Denied(msg));
        }
        let search_path = std::env::join_paths(&self.ctx.exec_dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(path) = resolve_program(&self.ctx.exec_dirs, &program) else {
            return Err(exec::ExecError::NotInstalled(format!(
                "`{program}` is granted but not found in {search_path} (the backend's exec_dirs)"
            )));
        };
        let mut timeout =
            Duration::from_millis(self.ctx.limits.exec_timeout_ms).min(self.remaining());
        if let Some(ms) = timeout_ms {
            timeout = timeout.min(Duration::from_millis(ms.into()));
        }
        tracing::debug!(plugin = %self.ctx.identity.name, backend = %self.ctx.identity.backend,
            program = %program, args = ?masked_args(&args), "exec");
        let mut child = Command::new(&path)
            .args(&args)
            .env_clear()
            .env("PATH", &search_path)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                exec::ExecError::Failed(format!("cannot start {}: {e}", path.display()))
            })?;
        let cap = self.ctx.limits.exec_output_bytes;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let over = Arc::new(AtomicBool::new(false));
        let (o1, o2) = (over.clone(), over.clone());
        // The readers hand their bytes over a channel, so waiting for them is bounded: a
        // process the program left behind may hold its pipes open long after it exits.
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        let (err_tx, err_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = out_tx.send(read_capped(stdout, cap, &o1));
        });
        std::thread::spawn(move || {
            let _ = err_tx.send(read_capped(stderr, cap, &o2));
        });
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        let status = loop {
            if over.load(Ordering::Relaxed) {
                reap(child);
                return Err(exec::ExecError::Failed(format!(
                    "`{program}` wrote more than the {cap}-byte output cap (limits.exec_output_bytes) and was killed"
                )));
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= timeout => {
                    reap(child);
                    return Err(exec::ExecError::TimedOut(format!(
                        "`{program}` ran longer than {} ms and was killed",
                        timeout.as_millis()
                    )));
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(exec::ExecError::Failed(format!(
                        "waiting for {program}: {e}"
                    )));
                }
            }
        };
        let left = || timeout.saturating_sub(started.elapsed());
        let (Ok(stdout), Ok(stderr)) = (out_rx.recv_timeout(left()), err_rx.recv_timeout(left()))
        else {
            return Err(exec::ExecError::TimedOut(format!(
                "`{program}` exited, but its output stayed open past {} ms: a process it started \
                 still holds it; the host stopped waiting",
                timeout.as_millis()
            )));
        };
        if over.load(Ordering::Relaxed) {
            return Err(exec::ExecError::Failed(format!(
                "`{program}` wrote more than the {cap}-byte output cap (limits.exec_output_bytes)"
            )));
        }
        Ok(exec::Output {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> block::IoError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            block::IoError::NotFound(format!("{}: {e}", path.display()))
        }
        std::io::ErrorKind::InvalidInput => {
            block::IoError::InvalidArgument(format!("{}: {e}", path.display()))
        }
        _ => block::IoError::Io(format!("{}: {e}", path.display())),
    }
}

impl HostState {
    fn handle(&self, h: &Resource<BlockHandle>) -> Result<&BlockHandle, block::IoError> {
        self.table
            .get(h)
            .map_err(|e| block::IoError::InvalidArgument(format!("stale block handle: {e}")))
    }
}

impl block::Host for HostState {
    fn open(
        &mut self,
        path: String,
        mode: block::OpenMode,
    ) -> Result<Resource<BlockHandle>, block::IoError> {
        let resolved = match self.ctx.capabilities.block_resolve(&path) {
            Ok(p) => p,
            Err(denied) => {
                let msg = denied.to_string();
                self.denied("block open", &msg);
                return Err(block::IoError::Denied(msg));
            }
        };
        if self.open_handles >= MAX_OPEN_HANDLES {
            return Err(block::IoError::Io(format!(
                "too many open block handles: an instance may hold {MAX_OPEN_HANDLES}; drop handles it no longer needs"
            )));
        }
        let writable = !matches!(mode, block::OpenMode::ReadOnly);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .create(matches!(mode, block::OpenMode::Create))
            .truncate(false)
            .open(&resolved)
            .map_err(|e| io_err(&resolved, e))?;
        let handle = self
            .table
            .push(BlockHandle {
                file,
                path: resolved,
                writable,
            })
            .map_err(|e| block::IoError::Io(format!("too many open handles: {e}")))?;
        self.open_handles += 1;
        Ok(handle)
    }

    fn copy(
        &mut self,
        src: Resource<BlockHandle>,
        src_offset: u64,
        dst: Resource<BlockHandle>,
        dst_offset: u64,
        len: u64,
    ) -> Result<u64, block::IoError> {
        let src = self.handle(&src)?;
        let dst = self.handle(&dst)?;
        if !dst.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                dst.path.display()
            )));
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        while done < len {
            if Instant::now() >= self.deadline {
                return Err(block::IoError::Io(format!(
                    "copy stopped at the call's deadline after {done} bytes"
                )));
            }
            let want = buf.len().min((len - done) as usize);
            let n = src
                .file
                .read_at(&mut buf[..want], src_offset + done)
                .map_err(|e| io_err(&src.path, e))?;
            if n == 0 {
                break;
            }
            dst.file
                .write_all_at(&buf[..n], dst_offset + done)
                .map_err(|e| io_err(&dst.path, e))?;
            done += n as u64;
        }
        Ok(done)
    }
}

impl block::HostHandle for HostState {
    fn read_at(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, block::IoError> {
        if len > MAX_READ {
            return Err(block::IoError::InvalidArgument(format!(
                "read of {len} bytes is over the {MAX_READ}-byte limit; use block.copy to move bulk data"
            )));
        }
        let h = self.handle(&h)?;
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            let n = h
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
                .map_err(|e| io_err(&h.path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn write_at(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u32, block::IoError> {
        let h = self.handle(&h)?;
        if !h.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                h.path.display()
            )));
        }
        h.file
            .write_all_at(&data, offset)
            .map_err(|e| io_err(&h.path, e))?;
        Ok(data.len() as u32)
    }

    fn size(&mut self, h: Resource<BlockHandle>) -> Result<u64, block::IoError> {
        let h = self.handle(&h)?;
        let meta = h.file.metadata().map_err(|e| io_err(&h.path, e))?;
        if meta.is_file() {
            return Ok(meta.len());
        }
        // A device: its size is where its end is.
        use std::io::Seek;
        let mut f = &h.file;
        f.seek(std::io::SeekFrom::End(0))
            .map_err(|e| io_err(&h.path, e))
    }

    fn set_size(&mut self, h: Resource<BlockHandle>, size: u64) -> Result<(), block::IoError> {
        let h = self.handle(&h)?;
        if !h.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                h.path.display()
            )));
        }
        let meta = h.file.metadata().map_err(|e| io_err(&h.path, e))?;
        if !meta.is_file() {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is a device; its size is fixed",
                h.path.display()
            )));
        }
        h.file.set_len(size).map_err(|e| io_err(&h.path, e))
    }

    fn flush(&mut self, h: Resource<BlockHandle>) -> Result<(), block::IoError> {
        let h = self.handle(&h)?;
        h.file.sync_data().map_err(|e| io_err(&h.path, e))
    }

    fn discard(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), block::IoError> {
        let h = self.handle(&h)?;
        if !h.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                h.path.display()
            )));
        }
        punch_hole(&h.file, offset, len).map_err(|e| io_err(&h.path, e))
    }

    fn drop(&mut self, h: Resource<BlockHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        self.open_handles = self.open_handles.saturating_sub(1);
        Ok(())
    }
}

/// Deallocates a byte range of a file, keeping its size (reads return zeros).
#[allow(unsafe_code)] // fallocate has no safe wrapper in std; the fd is valid for the call.
fn punch_hole(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "range too large",
        ));
    };
    // SAFETY: plain syscall on an fd we own, no pointers involved.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl http::Host for HostState {
    fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        if let Err(denied) = self.ctx.capabilities.http_allows(&req.url) {
            let msg = denied.to_string();
            self.denied("http", &msg);
            return Err(http::HttpError::Denied(msg));
        }
        // No TLS stack is compiled in yet: say so rather than fail obscurely.
        if req
            .url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        {
            return Err(http::HttpError::InvalidRequest(
                "https endpoints are not supported by this build of Ashlar yet; use an http endpoint".into(),
            ));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            http::HttpError::InvalidRequest(format!("`{}` is not an HTTP method", req.method))
        })?;
        let mut timeout = self.remaining();
        if let Some(ms) = req.timeout_ms {
            timeout = timeout.min(Duration::from_millis(ms.into()));
        }
        let mut builder = self
            .ctx
            .http
            .request(method, &req.url)
            .timeout(timeout)
            .body(req.body);
        for (k, v) in &req.headers {
            if k.eq_ignore_ascii_case("authorization") {
                return Err(http::HttpError::InvalidRequest(
                    "drivers may not set Authorization; name a credential instead".into(),
                ));
            }
            builder = builder.header(k, v);
        }
        if let Some(name) = &req.credential {
            match self.ctx.credentials.get(name) {
                Some(Credential::Basic { username, password }) => {
                    builder = builder.basic_auth(username, Some(password))
                }
                Some(Credential::Bearer { token }) => builder = builder.bearer_auth(token),
                None => {
                    return Err(http::HttpError::Denied(format!(
                        "no credential `{name}` is configured for backend {}; add [backends.{}.credentials.{name}]",
                        self.ctx.identity.backend, self.ctx.identity.backend
                    )));
                }
            }
        }
        let cap = self.ctx.limits.http_response_bytes;
        let url = req.url.clone();
        let fut = async move {
            let mut resp = builder.send().await.map_err(|e| {
                if e.is_timeout() {
                    http::HttpError::TimedOut(format!("{url}: {e}"))
                } else {
                    http::HttpError::Connection(format!("{url}: {e}"))
                }
            })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| http::HttpError::Connection(format!("{url}: {e}")))?
            {
                if body.len() + chunk.len() > cap {
                    return Err(http::HttpError::TooLarge(format!(
                        "{url}: response body over the {cap}-byte cap (limits.http_response_bytes)"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(http::Response {
                status,
                headers,
                body,
            })
        };
        let mut response = self.ctx.runtime.block_on(fut)?;
        if redact_credentials(&self.ctx.credentials, &mut response) {
            let id = &self.ctx.identity;
            tracing::warn!(plugin = %id.name, version = %id.version, backend = %id.backend,
                "the answer from {} carried a credential of the backend; it was redacted before the driver saw it",
                req.url);
        }
        Ok(response)
    }
}

/// Takes every secret of the backend's credentials out of a response's headers and body
/// (an endpoint may reflect the Authorization header it got); says whether it found one.
fn redact_credentials(
    credentials: &BTreeMap<String, Credential>,
    response: &mut http::Response,
) -> bool {
    if credentials.is_empty() {
        return false;
    }
    let mut redactor = Redactor::default();
    for credential in credentials.values() {
        match credential {
            Credential::Basic { username, password } => redactor.basic(username, password),
            Credential::Bearer { token } => redactor.secret(token),
        }
    }
    let mut found = false;
    for (_, value) in response.headers.iter_mut() {
        if let Some(clean) = redactor.redact_str(value) {
            *value = clean;
            found = true;
        }
    }
    if let Some(clean) = redactor.redact(&response.body) {
        response.body = clean;
        found = true;
        let len = response.body.len().to_string();
        for (name, value) in response.headers.iter_mut() {
            if name.eq_ignore_ascii_case("content-length") {
                value.clone_from(&len);
            }
        }
    }
    found
}

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

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.ctx.settings.get(&key).cloned()
    }
    fn all(&mut self) -> Vec<(String, String)> {
        self.ctx
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn backend_name(&mut self) -> String {
        self.ctx.identity.backend.clone()
    }
    fn host_name(&mut self) -> String {
        self.ctx.host_name.clone()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn secret_option_values_are_masked_in_command_lines() {
        let args = strings(&[
            "--lld",
            "iscsi",
            "--mode",
            "account",
            "--op",
            "new",
            "--user",
            "u1",
            "--password",
            "s3cr3t-value",
            "auth_token=abc123",
        ]);
        let masked = masked_args(&args);
        assert_eq!(masked[9], "***");
        assert_eq!(masked[10], "auth_token=***");
        assert_eq!(masked[7], "u1", "a user name is not a secret");
        let line = format!("refused: tgtadm {}", args.join(" "));
        let cleaned = mask_secrets(&line, &args);
        assert!(
            !cleaned.contains("s3cr3t-value") && !cleaned.contains("abc123"),
            "{cleaned}"
        );
        assert!(cleaned.contains("--user u1"), "{cleaned}");
    }
}
