//! The `jobs` table: durable units of work (Cinder's cleanable operations), written with
//! the status change that starts them, claimed by a runner, ended `done` or `error`. What
//! a job means is the volume manager's business ([`crate::volume::Job`]); here it is a
//! kind, a resource and a payload.

use super::DbRow;
use sqlx::Row;

use super::{Conn, Db, Dialect, Result, time};

/// `pending` → `running` → `done` or `error`.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub resource_id: String,
    pub payload: String,
    pub state: String,
    pub owner: Option<String>,
    /// The backend that must run it (`HOST@BACKEND` or `CLUSTER@BACKEND`); `None`: any
    /// host may.
    pub backend: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: String,
}

impl JobRow {
    /// A new pending job.
    pub fn new(kind: &str, resource_id: &str, payload: String) -> JobRow {
        JobRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_string(),
            resource_id: resource_id.to_string(),
            payload,
            state: "pending".into(),
            owner: None,
            backend: None,
            attempts: 0,
            error: None,
            created_at: time::now(),
        }
    }

    /// The same job, for backend `backend` (the part of a volume's host before `#`) to run.
    pub fn on(mut self, backend: Option<String>) -> JobRow {
        self.backend = backend;
        self
    }

    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(JobRow {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            resource_id: r.try_get("resource_id")?,
            payload: r.try_get("payload")?,
            state: r.try_get("state")?,
            owner: r.try_get("owner")?,
            backend: r.try_get("backend")?,
            attempts: r.try_get("attempts")?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// Inserts the job inside the transaction that makes its status change. On
    /// PostgreSQL every host listening is woken when the transaction commits.
    pub(super) async fn insert(&self, tx: &mut crate::db::Tx, dialect: Dialect) -> Result<()> {
        sqlx::query("INSERT INTO jobs (id, kind, resource_id, payload, state, backend, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $7, $6, $6)")
            .bind(&self.id)
            .bind(&self.kind)
            .bind(&self.resource_id)
            .bind(&self.payload)
            .bind(&self.state)
            .bind(&self.created_at)
            .bind(&self.backend)
            .execute(&mut **tx)
            .await?;
        notify(tx, dialect, self.backend.as_deref()).await
    }
}

/// `backend IS NULL OR backend IN ($first, …)` for `n` backends.
fn runnable_by(first: usize, n: usize) -> String {
    if n == 0 {
        "backend IS NULL".into()
    } else {
        format!(
            "(backend IS NULL OR backend IN ({}))",
            super::in_list(first, n)
        )
    }
}

/// The channel a host listens on for new jobs; the payload is the job's backend (empty
/// for any host's).
pub const JOBS_CHANNEL: &str = "ashlar_jobs";

/// Tells every listening host (PostgreSQL; on commit) that a job for `backend` waits.
async fn notify(c: &mut Conn, dialect: Dialect, backend: Option<&str>) -> Result<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(JOBS_CHANNEL)
            .bind(backend.unwrap_or(""))
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

impl Db {
    /// Inserts a job on its own (one whose status change is already made).
    pub async fn insert_job(&self, job: &JobRow) -> Result<()> {
        let mut tx = self.write_tx().await?;
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the oldest pending job that one of `backends`, or any host, may run, for
    /// `owner`. On PostgreSQL a row another host is claiming is skipped, not waited for.
    pub async fn claim_next_job(&self, owner: &str, backends: &[String]) -> Result<Option<JobRow>> {
        let skip = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', owner = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'pending' AND {} \
             ORDER BY created_at, id LIMIT 1{skip}) AND state = 'pending' RETURNING *",
            runnable_by(3, backends.len())
        );
        let mut q = sqlx::query(&sql).bind(owner).bind(time::now());
        for b in backends {
            q = q.bind(b);
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.map(|r| JobRow::from_row(&r)).transpose()
    }

    /// Takes over, for `owner`, the running jobs of hosts whose last heartbeat is older
    /// than `down_before`, among those that one of `backends` or any host may run. Two
    /// hosts reclaiming at once cannot both take a job: the second finds its owner alive.
    pub async fn reclaim_jobs(
        &self,
        owner: &str,
        backends: &[String],
        down_before: &str,
    ) -> Result<Vec<JobRow>> {
        let sql = format!(
            "UPDATE jobs SET owner = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE state = 'running' AND owner <> $1 AND {} AND owner IN \
             (SELECT host FROM services WHERE \"binary\" = 'cinder-scheduler' AND updated_at < $3) \
             RETURNING *",
            runnable_by(4, backends.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(owner)
            .bind(time::now())
            .bind(down_before);
        for b in backends {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(JobRow::from_row).collect()
    }

    /// Puts back to any host's scheduling the pending creates handed on to a backend no
    /// live host runs (no volume service of it, or of its cluster, heartbeated at or after
    /// `up_since`): the host it went to died before claiming it. Their ids.
    pub async fn reroute_orphaned_creates(&self, up_since: &str) -> Result<Vec<String>> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "UPDATE jobs SET backend = NULL, updated_at = $2 \
             WHERE state = 'pending' AND kind = 'create_volume' AND backend IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM services s WHERE s.\"binary\" = 'cinder-volume' \
               AND s.updated_at >= $1 AND (s.cluster = jobs.backend OR (s.cluster IS NULL AND s.host = jobs.backend))) \
             RETURNING id",
        )
        .bind(up_since)
        .bind(time::now())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Gives a running job of `owner` back as pending for `backend` to run, with its
    /// payload now `payload` (a create scheduled onto another host's backend); false when
    /// `owner` no longer holds it.
    pub async fn hand_off_job(
        &self,
        id: &str,
        owner: &str,
        backend: &str,
        payload: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "UPDATE jobs SET state = 'pending', owner = NULL, backend = $1, payload = $2, updated_at = $3 \
             WHERE id = $4 AND owner = $5 AND state = 'running'",
        )
        .bind(backend)
        .bind(payload)
        .bind(time::now())
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        notify(&mut tx, self.dialect, Some(backend)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends `owner`'s running job: `done`, or `error` with why. False when the job is no
    /// longer `owner`'s to end (handed on to another host's backend, or taken over by a
    /// peer while this host was thought down): nothing written.
    pub async fn finish_job(&self, id: &str, owner: &str, error: Option<&str>) -> Result<bool> {
        let state = if error.is_some() { "error" } else { "done" };
        let res = sqlx::query(
            "UPDATE jobs SET state = $1, error = $2, updated_at = $3 \
             WHERE id = $4 AND owner = $5 AND state = 'running'",
        )
        .bind(state)
        .bind(error)
        .bind(time::now())
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Ends `owner`'s running job `id` as done and inserts `next`, which carries its work
    /// on, in one transaction (a retype that turned into a migration); false, with
    /// nothing written, when the job is no longer `owner`'s.
    pub async fn follow_job(&self, id: &str, owner: &str, next: &JobRow) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE jobs SET state = 'done', updated_at = $1 WHERE id = $2 AND owner = $3 AND state = 'running'",
        )
        .bind(time::now())
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        next.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The jobs `owner` was running when it stopped.
    pub async fn interrupted_jobs(&self, owner: &str) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE state = 'running' AND owner = $1 ORDER BY created_at",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(JobRow::from_row).collect()
    }

    /// A connection listening for new jobs (PostgreSQL's `LISTEN`); `None` on SQLite,
    /// where one host's jobs are submitted in-process.
    pub async fn job_listener(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(JOBS_CHANNEL).await?;
        Ok(Some(listener))
    }
}

#[cfg(test)]
mod tests {
    use crate::db::{JobRow, testing, time};

    #[tokio::test]
    async fn jobs_go_to_hosts_that_run_their_backend_and_back_from_dead_ones() {
        let (db, _dir) = testing::db().await;
        let mine = JobRow::new("delete_volume", "v1", "{}".into()).on(Some("a@nfs".into()));
        let theirs = JobRow::new("create_volume", "v2", "{}".into()).on(Some("b@nfs".into()));
        let anyone = JobRow::new("create_volume", "v3", "{}".into());
        for j in [&mine, &theirs, &anyone] {
            db.insert_job(j).await.unwrap();
        }
        let keys = vec!["a@nfs".to_string()];
        let first = db.claim_next_job("a", &keys).await.unwrap().unwrap();
        let second = db.claim_next_job("a", &keys).await.unwrap().unwrap();
        assert!(db.claim_next_job("a", &keys).await.unwrap().is_none());
        let mut got = vec![first.resource_id, second.resource_id];
        got.sort();
        assert_eq!(got, ["v1", "v3"], "host a never claims backend b@nfs's job");
        // Only the owner ends a job.
        assert!(!db.finish_job(&mine.id, "b", None).await.unwrap());
        assert!(db.finish_job(&mine.id, "a", None).await.unwrap());

        // Host b heartbeated once, long ago: its create goes back to any host.
        db.report_service("b@nfs", "cinder-volume", "nova", None)
            .await
            .unwrap();
        assert!(
            db.reroute_orphaned_creates("2000-01-01T00:00:00.000000")
                .await
                .unwrap()
                .is_empty()
        );
        let rerouted = db.reroute_orphaned_creates(&time::now()).await.unwrap();
        assert_eq!(rerouted, [theirs.id.as_str()]);
        let claimed = db.claim_next_job("a", &keys).await.unwrap().unwrap();
        assert_eq!(claimed.resource_id, "v2");

        // A host silent since before `down_before` has its running jobs taken over.
        db.report_service("a", "cinder-scheduler", "nova", None)
            .await
            .unwrap();
        let later = time::format(std::time::SystemTime::now() + std::time::Duration::from_secs(1));
        let taken = db.reclaim_jobs("c", &keys, &later).await.unwrap();
        let mut taken: Vec<String> = taken.into_iter().map(|j| j.resource_id).collect();
        taken.sort();
        assert_eq!(taken, ["v2", "v3"]);
        assert!(
            db.reclaim_jobs("d", &keys, &later)
                .await
                .unwrap()
                .is_empty(),
            "c never went silent"
        );
    }
}
