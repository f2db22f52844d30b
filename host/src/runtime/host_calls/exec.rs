//! `exec`: runs a granted program, looked up in the backend's `exec_dirs`, with no shell,
//! no environment but `PATH` and `LC_ALL`, a timeout and a cap on its output. Secrets after
//! password-like options are masked wherever the command line is written down.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::HostState;
use crate::runtime::latest::ashlar::driver::exec;

/// How long the output of a program that has exited may stay open.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

fn resolve_program(dirs: &[PathBuf], program: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Makes the program die with the host: killed with SIGKILL if the host process ends
/// while it runs (a crash, a kill -9), so no driver command outlives the host that
/// recorded its job — the restarted host's recovery repeats the operation, and an orphaned
/// `qemu-img` still holding a volume's lock would fail it. The calling thread waits for
/// the program, so the thread-scoped parent-death signal fires only with the process.
#[allow(unsafe_code)] // pre_exec runs between fork and exec; prctl and getppid are async-signal-safe.
fn dies_with_host(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let host = std::process::id();
    // SAFETY: the closure calls only async-signal-safe functions and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The host may have died before the signal was set up.
            if libc::getppid() as u32 != host {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
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
        let mut command = Command::new(&path);
        dies_with_host(&mut command);
        let mut child = command
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
        // An exited program has written all it will: its output closes at once unless a
        // process it started holds it. The wait is short, and ends well before the call's
        // own deadline would, so the driver is told why.
        let exited = Instant::now();
        let grace = timeout.saturating_sub(started.elapsed()).min(OUTPUT_GRACE);
        let left = || grace.saturating_sub(exited.elapsed());
        let (Ok(stdout), Ok(stderr)) = (out_rx.recv_timeout(left()), err_rx.recv_timeout(left()))
        else {
            return Err(exec::ExecError::TimedOut(format!(
                "`{program}` exited, but its output stayed open past {} ms: a process it started \
                 still holds it; the host stopped waiting",
                grace.as_millis()
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
