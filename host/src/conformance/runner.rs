//! Running checks one after another: each is timed and recorded with its id, category and
//! whether Cinder requires it; a check whose prerequisite failed is recorded as not run
//! (a failure when it is required, so a broken driver cannot pass by skipping).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::report::{Category, CheckResult, Outcome, Verdict};
use crate::driver::{ModelUpdate, Snapshot, Volume};
use crate::runtime::{CallError, DriverFailure, DriverPool, SandboxFailure};

/// The checks recorded so far.
#[derive(Default)]
pub struct Runner {
    pub checks: Vec<CheckResult>,
}

impl Runner {
    /// Runs one check and records it; whether it passed (or warned).
    pub async fn run(
        &mut self,
        id: &str,
        category: Category,
        required: bool,
        check: impl Future<Output = Outcome>,
    ) -> bool {
        let started = Instant::now();
        let outcome = check.await;
        self.record(id, category, required, outcome, started)
    }

    /// Records an outcome worked out already, timed from `started`.
    pub fn record(
        &mut self,
        id: &str,
        category: Category,
        required: bool,
        outcome: Outcome,
        started: Instant,
    ) -> bool {
        let passed = outcome.passed();
        tracing::debug!(
            check = id,
            result = outcome.verdict.as_str(),
            "{}",
            outcome.message
        );
        self.checks.push(CheckResult {
            id: id.to_string(),
            category,
            required,
            result: outcome.verdict,
            message: outcome.message,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        passed
    }

    /// Records a check that could not run because `because` failed.
    pub fn not_run(&mut self, id: &str, category: Category, required: bool, because: &str) {
        let message = format!("not run: {because}");
        let outcome = if required {
            Outcome::fail(message)
        } else {
            Outcome::skip(message)
        };
        self.record(id, category, required, outcome, Instant::now());
    }

    /// Whether check `id` ran and passed (or warned).
    pub fn passed(&self, id: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.id == id && matches!(c.result, Verdict::Pass | Verdict::Warn))
    }
}

/// A directory of the run's own under the system's temporary directory, removed with
/// everything in it when dropped.
pub struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    pub fn new(what: &str) -> std::io::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "ashlar-conformance-{what}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir(path))
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `futures` at once (on this task) and answers their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Whether the driver said it does not support the operation.
pub fn unsupported(e: &CallError) -> bool {
    matches!(e, CallError::Driver(DriverFailure::NotSupported(_)))
}

/// Whether the driver said what it was asked about is not there.
pub fn not_found(e: &CallError) -> bool {
    matches!(e, CallError::Driver(DriverFailure::NotFound(_)))
}

/// Whether the sandbox stopped the driver (a trap, a deadline, memory), as opposed to
/// the driver answering with an error of its own.
pub fn sandboxed(e: &CallError) -> bool {
    matches!(e, CallError::Sandbox { .. })
}

/// Whether the sandbox stopped the driver for a reason other than a quarantine that
/// earlier failures caused.
pub fn trapped(e: &CallError) -> bool {
    matches!(e, CallError::Sandbox { kind, .. } if *kind != SandboxFailure::Quarantined)
}

/// The outcome of a required operation: pass, or fail with the error.
pub fn required<T>(what: &str, r: &Result<T, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::pass(what.to_string()),
        Err(e) => Outcome::fail(format!("{what}: {e}")),
    }
}

/// The outcome of an optional feature: pass, skip when the driver does not support it,
/// fail otherwise.
pub fn optional<T>(what: &str, r: &Result<T, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::pass(what.to_string()),
        Err(e) if unsupported(e) => Outcome::skip(format!("not supported: {e}")),
        Err(e) => Outcome::fail(format!("{what}: {e}")),
    }
}

/// The outcome of repeating a delete (of a volume, a snapshot, an export, a connection)
/// that is already done: success is what Cinder expects (a delete of what is gone
/// succeeds); a not-found is accepted with a warning, because the host's delete flow
/// treats any driver error as a failed delete; anything else fails.
pub fn repeated_delete(what: &str, r: &Result<(), CallError>) -> Outcome {
    match r {
        Ok(()) => Outcome::pass(format!("{what} again succeeds")),
        Err(e) if not_found(e) => Outcome::warn(format!(
            "{what} again answers not-found ({e}); Cinder treats that as deleted, but the host's delete flow marks the volume error_deleting: answer success"
        )),
        Err(e) => Outcome::fail(format!("{what} again fails: {e}")),
    }
}

/// The outcome of an operation that must fail cleanly (a driver error, not a trap, and
/// not a success): `what` names the request.
pub fn refused<T>(what: &str, r: &Result<T, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::fail(format!("{what} succeeded; it must fail")),
        Err(e) if trapped(e) => Outcome::fail(format!("{what}: the driver trapped: {e}")),
        Err(e) => Outcome::pass(format!("{what} is refused: {e}")),
    }
}

/// The checks every world starts with: the component loaded (at `started`), its setup
/// check, and two more instances set up as a pool makes them.
pub async fn setup_checks(r: &mut Runner, d: &Arc<DriverPool>, started: Instant) {
    use Category::Capabilities;
    r.record(
        "load.component",
        Capabilities,
        true,
        Outcome::pass(format!(
            "{} {} loaded as {} (contract {}), grants admitted",
            d.identity.name, d.identity.version, d.world, d.contract
        )),
        started,
    );
    r.run("setup.check_for_setup_error", Capabilities, true, async {
        required("check_for_setup_error", &d.check_for_setup_error().await)
    })
    .await;
    r.run("setup.instances", Capabilities, true, async {
        let pool = d.clone();
        match tokio::task::spawn_blocking(move || pool.prewarm(2)).await {
            Ok(Ok(())) => Outcome::pass("two more instances made, do_setup ran on each"),
            Ok(Err(e)) => Outcome::fail(format!("do_setup on a new instance: {e}")),
            Err(e) => Outcome::fail(format!("prewarm: {e}")),
        }
    })
    .await;
}

/// A target's or a backup store's health probe (check `id`), skipped when the contract
/// the component was built for has none (before 0.3).
pub async fn health_check(r: &mut Runner, id: &str, d: &Arc<DriverPool>) {
    r.run(id, Category::Capabilities, false, async {
        match d.health().await {
            Ok(Some(h)) if h.healthy => Outcome::pass("healthy"),
            Ok(Some(h)) => Outcome::fail(format!("reports itself unhealthy: {}", h.detail)),
            Ok(None) => Outcome::skip(format!(
                "contract {} has no health export for a {}",
                d.contract, d.world
            )),
            Err(e) => Outcome::fail(format!("health: {e}")),
        }
    })
    .await;
}

/// The sandbox checks every world ends with: nothing the run did trapped (or missed its
/// deadline, or ran out of memory), no host call of its everyday operations was refused,
/// and a load granting nothing of what the manifest asks was refused (`ungranted`: the
/// load's verdict, none when the manifest asks for nothing).
pub async fn sandbox_records(
    r: &mut Runner,
    d: &Arc<DriverPool>,
    ungranted: Option<&Result<String, String>>,
) {
    use Category::Sandbox;
    let traps = d
        .metrics
        .sandbox_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    r.record(
        "sandbox.no_traps",
        Sandbox,
        true,
        Outcome::check(
            traps == 0,
            format!("{traps} trap(s), deadline(s) or out-of-memory in the run's operations"),
        ),
        Instant::now(),
    );
    let denials = d.denials();
    r.record(
        "sandbox.no_denials",
        Sandbox,
        false,
        if denials == 0 {
            Outcome::pass("every host call the driver made was granted")
        } else {
            Outcome::warn(format!(
                "{denials} host call(s) of the driver's everyday operations were refused (see the log): it asks for what the operator did not grant (an optional capability left out, or more than its manifest requests)"
            ))
        },
        Instant::now(),
    );
    r.record(
        "sandbox.ungranted_load_refused",
        Sandbox,
        true,
        match ungranted {
            Some(Ok(m)) => Outcome::pass(m.clone()),
            Some(Err(m)) => Outcome::fail(m.clone()),
            None => Outcome::skip("the manifest asks for no capability"),
        },
        Instant::now(),
    );
}

/// Records what a model update asks the host to keep about a volume or snapshot. These
/// three functions are the only readers of a `ModelUpdate`'s fields.
pub fn apply_to_volume(v: &mut Volume, update: &ModelUpdate) {
    v.provider_location = update
        .provider_location
        .apply(v.provider_location.as_deref());
    v.provider_auth = update.provider_auth.apply(v.provider_auth.as_deref());
    if let Some(pool) = &update.pool {
        v.pool = Some(pool.clone());
    }
}

/// Whether `update` would replace the credentials `v` has.
pub fn changes_auth(v: &Volume, update: &ModelUpdate) -> bool {
    update.provider_auth.apply(v.provider_auth.as_deref()) != v.provider_auth
}

/// As [`apply_to_volume`], for a snapshot.
pub fn apply_to_snapshot(s: &mut Snapshot, update: &ModelUpdate) {
    s.provider_location = update
        .provider_location
        .apply(s.provider_location.as_deref());
}

/// The outcome of a retype: done in place, or left to the host to migrate. The one place
/// that reads the driver's answer to a retype.
pub fn retyped(r: Result<Option<ModelUpdate>, CallError>) -> Outcome {
    match r {
        Ok(Some(_)) => Outcome::pass("retyped in place"),
        Ok(None) => Outcome::pass("asks the host to migrate (not in place)"),
        Err(e) => optional("retype", &Err::<(), _>(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_check_that_could_not_run_fails_and_an_optional_one_is_skipped() {
        let mut r = Runner::default();
        r.not_run(
            "volume.clone",
            Category::Copies,
            true,
            "volume.create failed",
        );
        r.not_run(
            "volume.revert",
            Category::Optional,
            false,
            "snapshot.create failed",
        );
        assert_eq!(r.checks[0].result, Verdict::Fail);
        assert_eq!(r.checks[1].result, Verdict::Skip);
        assert!(
            r.checks[0]
                .message
                .starts_with("not run: volume.create failed")
        );
        assert!(!r.passed("volume.clone"));
    }

    #[test]
    fn a_repeated_delete_may_succeed_or_say_not_found_but_nothing_else() {
        let nf = Err(CallError::Driver(DriverFailure::NotFound("gone".into())));
        let internal = Err(CallError::Driver(DriverFailure::Internal("boom".into())));
        assert_eq!(repeated_delete("delete", &Ok(())).verdict, Verdict::Pass);
        assert_eq!(repeated_delete("delete", &nf).verdict, Verdict::Warn);
        assert_eq!(repeated_delete("delete", &internal).verdict, Verdict::Fail);
        let ns: Result<(), CallError> =
            Err(CallError::Driver(DriverFailure::NotSupported("no".into())));
        assert_eq!(optional("revert", &ns).verdict, Verdict::Skip);
        assert_eq!(required("revert", &ns).verdict, Verdict::Fail);
        assert_eq!(refused("create", &ns).verdict, Verdict::Pass);
        assert_eq!(refused("create", &Ok(())).verdict, Verdict::Fail);
    }
}
