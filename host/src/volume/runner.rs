//! The job runner: claims each submitted job, decodes it, and runs its flow on a task of
//! its own; at start-up, recovery finishes or reverts what a previous run left. A job
//! that does not decode (a kind this host does not know, arguments that do not fit) is not
//! run: its resource goes to `error` with a user message saying why, and the job ends
//! `error`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::flows;
use super::job::{Job, JobError, ResourceKind};
use super::message_field::{Action, Detail, Event, Resource};
use super::status::{SnapshotStatus, VolumeStatus};
use super::{OpError, VolumeManager};
use crate::db::{DbError, JobRow, time};
use crate::worker::{Worker, WorkerState, WorkerStatus};

/// Runs the jobs this host may run; see the module doc.
pub struct JobRunner {
    manager: Arc<VolumeManager>,
    /// Woken when a job was committed on this host.
    submitted: Arc<Notify>,
    /// Woken by other hosts' jobs (PostgreSQL's `NOTIFY`); `None` on SQLite, or until
    /// the first wait connects it.
    listener: Option<PgListener>,
    /// When to try connecting the listener again after it failed.
    listen_again: Instant,
    /// Whether the database may hold a job to claim.
    wanted: bool,
    /// When to look for unclaimed work regardless (a fallback for a lost notification).
    next_poll: Instant,
    /// When to look for jobs of hosts that stopped heartbeating.
    next_reclaim: Instant,
    /// The cluster peers' volume services last seen silent.
    silent_peers: std::collections::BTreeSet<String>,
    running: JoinSet<()>,
    counts: Arc<Counts>,
}

/// How often the runner looks for unclaimed jobs without being told of one.
const POLL_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counts {
    done: AtomicU64,
    failed: AtomicU64,
    reclaimed: AtomicU64,
}

impl JobRunner {
    pub(super) fn new(manager: Arc<VolumeManager>, submitted: Arc<Notify>) -> Self {
        JobRunner {
            manager,
            submitted,
            listener: None,
            listen_again: Instant::now(),
            wanted: true,
            next_poll: Instant::now() + POLL_EVERY,
            next_reclaim: Instant::now(),
            silent_peers: Default::default(),
            running: JoinSet::new(),
            counts: Arc::default(),
        }
    }

    fn start(&mut self, row: JobRow, recovering: bool) {
        let (m, counts) = (self.manager.clone(), self.counts.clone());
        self.running.spawn(async move {
            match m.execute(&row, recovering).await {
                true => counts.done.fetch_add(1, Ordering::Relaxed),
                false => counts.failed.fetch_add(1, Ordering::Relaxed),
            };
        });
    }

    /// How long a host may be silent before its running jobs are taken over, and how
    /// often to look: a quarter of that, between 1 and 10 s.
    fn reclaim_every(&self) -> Duration {
        (self.manager.scheduler.service_down_time / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// Takes over the running jobs of silent hosts among the backends this host runs,
    /// and recovers each as this host's own start-up would.
    async fn reclaim(&mut self) {
        let m = self.manager.clone();
        let down_before = time::format(SystemTime::now() - m.scheduler.service_down_time);
        match m
            .db
            .reclaim_jobs(&m.host_name, &m.local_keys(), &down_before)
            .await
        {
            Ok(rows) => {
                for row in rows {
                    tracing::warn!(job = %row.id, kind = %row.kind, resource = %row.resource_id,
                        "taking over a job of a host that stopped heartbeating");
                    self.counts.reclaimed.fetch_add(1, Ordering::Relaxed);
                    self.start(row, true);
                }
            }
            Err(e) => tracing::error!("cannot look for jobs of silent hosts: {e}"),
        }
        // A cluster peer that went silent took its targets' exports with it (a target
        // such as tgtd keeps them in memory): this host re-makes those of the attached
        // volumes of its backends, as a restart does.
        let clusters: Vec<String> = m
            .backends
            .iter()
            .filter(|(_, b)| b.config.cluster.is_some())
            .map(|(name, _)| m.backend_key(&name))
            .collect();
        match m.db.silent_cluster_services(&clusters, &down_before).await {
            Ok(silent) => {
                let silent: std::collections::BTreeSet<String> = silent.into_iter().collect();
                let newly: Vec<&String> = silent.difference(&self.silent_peers).collect();
                if !newly.is_empty() {
                    tracing::warn!(peers = ?newly, "cluster peers stopped heartbeating; re-making the exports of attached volumes here");
                    let m = m.clone();
                    self.running.spawn(async move {
                        let n = m.restore_exports().await;
                        tracing::info!(
                            attachments = n,
                            "exports of attached volumes re-made for silent cluster peers"
                        );
                    });
                }
                self.silent_peers = silent;
            }
            Err(e) => tracing::error!("cannot look for silent cluster peers: {e}"),
        }
        match m.db.reroute_orphaned_creates(&down_before).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(jobs = ?ids, "creates handed on to a backend no live host runs are scheduled again");
                self.wanted = true;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot look for creates handed on to silent hosts: {e}"),
        }
    }
}

impl Worker for JobRunner {
    fn name(&self) -> String {
        "job-runner".into()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            detail: format!(
                "{} running, {} done, {} failed, {} taken over from silent hosts",
                self.running.len(),
                self.counts.done.load(Ordering::Relaxed),
                self.counts.failed.load(Ordering::Relaxed),
                self.counts.reclaimed.load(Ordering::Relaxed)
            ),
            queue: Some(self.running.len() as u64),
        }
    }

    async fn work(&mut self) -> WorkerState {
        while self.running.try_join_next().is_some() {}
        let now = Instant::now();
        if now >= self.next_reclaim {
            self.next_reclaim = now + self.reclaim_every();
            self.reclaim().await;
        }
        if now >= self.next_poll {
            self.next_poll = now + POLL_EVERY;
            self.wanted = true;
        }
        if !self.wanted {
            return WorkerState::Idle;
        }
        let m = &self.manager;
        match m.db.claim_next_job(&m.host_name, &m.local_keys()).await {
            Ok(Some(row)) => {
                self.start(row, false);
                WorkerState::Busy
            }
            Ok(None) => {
                self.wanted = false;
                WorkerState::Idle
            }
            Err(e) => {
                tracing::error!("cannot claim a job: {e}");
                self.wanted = false;
                WorkerState::Idle
            }
        }
    }

    async fn wait_for_work(&mut self) {
        if self.listener.is_none() && Instant::now() >= self.listen_again {
            // At most one attempt per poll interval: a database that refuses it is polled.
            self.listen_again = Instant::now() + POLL_EVERY;
            match self.manager.db.job_listener().await {
                Ok(l) => self.listener = l,
                Err(e) => tracing::warn!(
                    "cannot listen for jobs; polling every {} s: {e}",
                    POLL_EVERY.as_secs()
                ),
            }
        }
        let listener = self.listener.as_mut();
        let local = self.manager.local_keys();
        // A job for another host's backend wakes nobody here.
        let notified = async move {
            match listener {
                Some(l) => loop {
                    let n = l.recv().await?;
                    if n.payload().is_empty() || local.iter().any(|k| k == n.payload()) {
                        return Ok::<(), sqlx::Error>(());
                    }
                },
                None => std::future::pending().await,
            }
        };
        let wake = self.next_poll.min(self.next_reclaim);
        tokio::select! {
            _ = self.submitted.notified() => self.wanted = true,
            got = notified => match got {
                Ok(()) => self.wanted = true,
                Err(e) => {
                    tracing::warn!("lost the job listener; reconnecting: {e}");
                    self.listener = None;
                    self.wanted = true;
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
            Some(_) = self.running.join_next(), if !self.running.is_empty() => {}
        }
    }

    /// Lets running jobs finish until the deadline; those still running are left
    /// `running` in the database, for recovery on the next start (or by a peer).
    async fn drain(&mut self, deadline: Instant) {
        let n = self.running.len();
        if n == 0 {
            return;
        }
        tracing::info!(jobs = n, "waiting for running jobs to finish");
        let finished = tokio::time::timeout_at(deadline.into(), async {
            while self.running.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                jobs = self.running.len(),
                "jobs still running at the end of the grace period are left for recovery"
            );
            self.running.detach_all();
        }
    }
}

impl VolumeManager {
    /// Finds the work this host left when it stopped: jobs it was running are finished
    /// (deletes, extends, reverts) or reverted (creates). Pending jobs are claimed by the
    /// job runner as any host's are.
    pub async fn recover(&self) -> Result<usize, DbError> {
        // No image flow runs yet: whatever they left in the image directory goes.
        let swept = flows::sweep_temp_files(self);
        if swept > 0 {
            tracing::info!(files = swept, "removed temporary image files");
        }
        let jobs = self.db.interrupted_jobs(&self.host_name).await?;
        let n = jobs.len();
        for row in jobs {
            tracing::warn!(job = %row.id, kind = %row.kind, resource = %row.resource_id, "recovering job interrupted by a stop");
            self.execute(&row, true).await;
        }
        self.jobs_waiting.notify_one();
        flows::sweep_unfinished_cache(self).await;
        // Objects in the backup store that no live backup owns: removed when this
        // database deleted their backup, reported otherwise (see `sweep_orphans`).
        if self.backup.is_some() {
            match flows::sweep_orphans(self).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    backups = n,
                    "removed objects of backups the database does not know"
                ),
                Err(e) => tracing::error!("checking the backup store for orphaned objects: {e}"),
            }
        }
        Ok(n)
    }

    /// Decodes and runs a claimed job, records how it ended; true when it succeeded.
    pub(super) async fn execute(&self, row: &JobRow, recovering: bool) -> bool {
        let outcome = match Job::decode(&row.kind, &row.payload) {
            Ok((job, request_id)) => {
                let span = tracing::info_span!(
                    "job",
                    kind = %row.kind,
                    resource = %row.resource_id,
                    request_id = request_id.as_deref().unwrap_or("")
                );
                let run = self.dispatch(&job, row, request_id, recovering);
                tracing::Instrument::instrument(run, span)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => {
                self.refuse(row, &e).await;
                Err(e.to_string())
            }
        };
        match self
            .db
            .finish_job(
                &row.id,
                &self.host_name,
                outcome.as_ref().err().map(String::as_str),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(job = %row.id, "the job is no longer this host's: handed on to another host's backend, or taken over")
            }
            Err(e) => tracing::error!(job = %row.id, "cannot record job outcome: {e}"),
        }
        outcome.is_ok()
    }

    async fn dispatch(
        &self,
        job: &Job,
        job_row: &JobRow,
        request_id: Option<String>,
        recovering: bool,
    ) -> Result<(), OpError> {
        let id = job_row.resource_id.as_str();
        match job {
            Job::CreateVolume { attempts, image_id } => {
                flows::create_volume_job(
                    self,
                    job_row,
                    attempts,
                    image_id.as_deref(),
                    request_id,
                    recovering,
                )
                .await
            }
            Job::DeleteVolume => flows::delete_volume(self, id, request_id).await,
            Job::ExtendVolume { new_size } => {
                flows::extend_volume(self, id, *new_size, request_id).await
            }
            Job::CreateSnapshot => flows::create_snapshot(self, id, request_id, recovering).await,
            Job::DeleteSnapshot => flows::delete_snapshot(self, id, request_id).await,
            Job::RevertToSnapshot { snapshot_id } => {
                flows::revert_to_snapshot(self, id, snapshot_id, request_id).await
            }
            Job::CreateBackup => flows::create_backup(self, id, request_id, recovering).await,
            Job::RestoreBackup {
                volume_id,
                new_volume,
            } => {
                flows::restore_backup(self, id, volume_id, *new_volume, request_id, recovering)
                    .await
            }
            Job::DeleteBackup => flows::delete_backup(self, id, request_id).await,
            Job::MigrateVolume {
                dest,
                name_id,
                held,
                back,
                from,
                new_type_id,
            } => {
                let args = flows::Migration {
                    dest,
                    name_id,
                    held: *held,
                    back: *back,
                    from,
                    new_type_id: new_type_id.as_deref(),
                };
                flows::migrate_volume(self, id, args, request_id, recovering).await
            }
            Job::RetypeVolume {
                new_type_id,
                migration_policy,
                back,
            } => {
                flows::retype_volume(
                    self,
                    job_row,
                    new_type_id,
                    migration_policy,
                    *back,
                    request_id,
                )
                .await
            }
            Job::ManageExisting { reference } => {
                flows::manage_existing(self, id, reference, request_id).await
            }
            Job::UnmanageVolume => flows::unmanage_volume(self, id, request_id).await,
            Job::UploadImage {
                image_id,
                disk_format,
            } => flows::upload_image(self, id, image_id, disk_format, request_id, recovering).await,
        }
    }

    /// A job that cannot run: its resource (a volume or a snapshot, whichever the id
    /// names) goes to `error` from whatever transient status the job held it in, and the
    /// owner is told, in Cinder's words, that nothing was done; why (the job's kind and
    /// arguments) is for the log and administrators.
    async fn refuse(&self, row: &JobRow, e: &JobError) {
        tracing::error!(job = %row.id, kind = %row.kind, resource = %row.resource_id, "job not run: {e}");
        let kind = Job::resource_kind_of(&row.kind);
        // The request the job came from, when its payload still says.
        let request_id = serde_json::from_str::<serde_json::Value>(&row.payload)
            .ok()
            .and_then(|p| p.get("request_id")?.as_str().map(str::to_string));
        let hint = "The service could not run this request; nothing was done. An administrator can reset the status.";
        let internal = format!(
            "job {} not run: {e}; an administrator can reset the status once the service runs a version that knows it",
            row.id
        );
        // The message first, then the status: a client that sees `error` finds why.
        if kind == Some(ResourceKind::Backup) {
            let Ok(Some(b)) = self.db.get_backup(&row.resource_id).await else {
                return;
            };
            let event = Event {
                resource: Resource::VolumeBackup,
                action: action_of_job(&row.kind),
                detail: Detail::UNKNOWN_ERROR,
            };
            self.user_message(
                &b.project_id,
                request_id,
                &b.id,
                event,
                Some(hint),
                &internal,
            )
            .await;
            let reason = event.user_message(Some(hint));
            let moved = match row.kind.as_str() {
                "create_backup" => self.db.fail_create_backup(&b.id, &reason).await,
                "delete_backup" => self.db.fail_delete_backup(&b.id, &reason).await,
                _ => self.db.release_restoring_backup(&b.id).await,
            };
            if let Err(err) = moved {
                tracing::error!(backup_id = %b.id, "cannot mark the backup failed: {err}");
            }
            return;
        }
        let volume = match kind {
            Some(ResourceKind::Snapshot) => None,
            _ => self.db.get_volume(&row.resource_id).await.ok().flatten(),
        };
        let snapshot = match volume {
            Some(_) => None,
            None => self.db.get_snapshot(&row.resource_id).await.ok().flatten(),
        };
        let (project_id, resource) = match (&volume, &snapshot) {
            (Some(v), _) => (v.project_id.clone(), Resource::Volume),
            (None, Some(s)) => (s.project_id.clone(), Resource::VolumeSnapshot),
            (None, None) => return,
        };
        // Cinder has no detail for a request the service cannot run.
        let event = Event {
            resource,
            action: action_of_job(&row.kind),
            detail: Detail::UNKNOWN_ERROR,
        };
        self.user_message(
            &project_id,
            request_id,
            &row.resource_id,
            event,
            Some(hint),
            &internal,
        )
        .await;
        if let Some(v) = volume
            && let Err(err) = self
                .db
                .reset_volume_status(&v.id, VolumeStatus::Error, None)
                .await
        {
            tracing::error!(volume_id = %v.id, "cannot mark the volume failed: {err}");
        }
        if let Some(s) = snapshot {
            let all: Vec<SnapshotStatus> = SnapshotStatus::ALL.to_vec();
            if let Err(err) = self
                .db
                .transition_snapshot(&s.id, &all, SnapshotStatus::Error, None)
                .await
            {
                tracing::error!(snapshot_id = %s.id, "cannot mark the snapshot failed: {err}");
            }
        }
    }
}

/// The action a job of `kind` carries out, in Cinder's words.
fn action_of_job(kind: &str) -> Action {
    match kind {
        "create_volume" => Action::CREATE_VOLUME_FROM_BACKEND,
        "delete_volume" => Action::DELETE_VOLUME,
        "extend_volume" => Action::EXTEND_VOLUME,
        "create_snapshot" => Action::SNAPSHOT_CREATE,
        "delete_snapshot" => Action::SNAPSHOT_DELETE,
        "revert_to_snapshot" => Action::REVERT_TO_SNAPSHOT,
        "create_backup" => Action::BACKUP_CREATE,
        "restore_backup" => Action::BACKUP_RESTORE,
        "delete_backup" => Action::BACKUP_DELETE,
        "manage_existing" => Action::MANAGE_EXISTING,
        "unmanage_volume" => Action::UNMANAGE_VOLUME,
        "upload_image" => Action::COPY_VOLUME_TO_IMAGE,
        _ => Action::UNKNOWN,
    }
}
