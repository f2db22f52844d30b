//! The `jobs` table: durable units of work (Cinder's cleanable operations), written with
//! the status change that starts them, claimed by a runner, ended `done` or `error`. What
//! a job means is the volume manager's business ([`crate::volume::Job`]); here it is a
//! kind, a resource and a payload.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Db, Result, time};

/// `pending` → `running` → `done` or `error`.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub resource_id: String,
    pub payload: String,
    pub state: String,
    pub owner: Option<String>,
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
            attempts: 0,
            error: None,
            created_at: time::now(),
        }
    }

    fn from_row(r: &SqliteRow) -> Result<Self> {
        Ok(JobRow {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            resource_id: r.try_get("resource_id")?,
            payload: r.try_get("payload")?,
            state: r.try_get("state")?,
            owner: r.try_get("owner")?,
            attempts: r.try_get("attempts")?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// Inserts the job inside the transaction that makes its status change.
    pub(super) async fn insert(&self, tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<()> {
        sqlx::query("INSERT INTO jobs (id, kind, resource_id, payload, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(&self.id)
            .bind(&self.kind)
            .bind(&self.resource_id)
            .bind(&self.payload)
            .bind(&self.state)
            .bind(&self.created_at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Db {
    /// Inserts a job on its own (one whose status change is already made).
    pub async fn insert_job(&self, job: &JobRow) -> Result<()> {
        let mut tx = self.write_tx().await?;
        job.insert(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims a pending job for `owner`; false when someone else has it.
    pub async fn claim_job(&self, id: &str, owner: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE jobs SET state = 'running', owner = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3 AND state = 'pending'",
        )
        .bind(owner)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Ends a job: `done`, or `error` with why.
    pub async fn finish_job(&self, id: &str, error: Option<&str>) -> Result<()> {
        let state = if error.is_some() { "error" } else { "done" };
        sqlx::query("UPDATE jobs SET state = $1, error = $2, updated_at = $3 WHERE id = $4")
            .bind(state)
            .bind(error)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs not finished: pending ones to run, running ones interrupted by a crash.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE state IN ('pending', 'running') ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(JobRow::from_row).collect()
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<JobRow>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| JobRow::from_row(&r)).transpose()
    }
}
