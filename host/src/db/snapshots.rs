//! Snapshots.

use std::collections::BTreeMap;

use super::DbRow;
use sqlx::Row;

use super::list::{ListError, ListQuery, Listing, Match};
use super::quotas::{self, Column, OverQuota};
use super::{Db, DbError, JobRow, Resource, Result, in_list, move_status, parse_column, time};
use crate::volume::status::{SnapshotStatus, VolumeStatus};

#[derive(Debug, Clone)]
pub struct SnapshotRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: SnapshotStatus,
    pub progress: String,
    pub volume_size: i64,
    pub provider_location: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl SnapshotRow {
    fn from_row(r: &DbRow) -> Result<Self> {
        let metadata: String = r.try_get("metadata")?;
        let id: String = r.try_get("id")?;
        Ok(SnapshotRow {
            metadata: serde_json::from_str(&metadata).map_err(|e| DbError::Corrupt {
                table: "snapshots",
                id: id.clone(),
                message: format!("metadata: {e}"),
            })?,
            id,
            project_id: r.try_get("project_id")?,
            user_id: r.try_get("user_id")?,
            volume_id: r.try_get("volume_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            status: parse_column(r, "snapshots", "status")?,
            progress: r.try_get("progress")?,
            volume_size: r.try_get("volume_size")?,
            provider_location: r.try_get("provider_location")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

pub const SNAPSHOT_LIST: Listing = Listing {
    from: "snapshots s",
    columns: "s.*",
    alias: "s",
    live: "s.deleted = 0",
    filters: &[
        ("name", Match::Equal("s.name")),
        ("display_name", Match::Equal("s.name")),
        ("status", Match::Equal("s.status")),
        ("volume_id", Match::Equal("s.volume_id")),
        ("user_id", Match::Equal("s.user_id")),
    ],
    sort_keys: &[
        ("created_at", "s.created_at"),
        ("updated_at", "COALESCE(s.updated_at, '')"),
        ("id", "s.id"),
        ("name", "COALESCE(s.name, '')"),
        ("display_name", "COALESCE(s.name, '')"),
        ("size", "s.volume_size"),
        ("status", "s.status"),
        ("volume_id", "s.volume_id"),
    ],
};

/// Why a snapshot could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRefused {
    /// Its volume is gone or not in a status it may be snapshotted from.
    Status,
    /// It is over the project's quota.
    Quota(OverQuota),
}

impl Db {
    /// Inserts a snapshot (status `creating`) with its job, if the volume is in one of
    /// `volume_states`, with the project's usage (`snapshots`, `gigabytes` and per type)
    /// charged within its quotas, in one transaction.
    pub async fn insert_snapshot_with_job(
        &self,
        s: &mut SnapshotRow,
        volume_states: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<Result<(), SnapshotRefused>> {
        let mut tx = self.write_tx().await?;
        // The volume's size as the snapshot starts: read with the status check, in the
        // transaction that records the snapshot, so no extend can come between.
        let sql = format!(
            "SELECT size, volume_type_id FROM volumes WHERE id = $1 AND deleted = 0 AND status IN ({})",
            in_list(2, volume_states.len())
        );
        let mut q = sqlx::query_as::<_, (i64, Option<String>)>(&sql).bind(&s.volume_id);
        for st in volume_states {
            q = q.bind(st.as_str());
        }
        let Some((size, type_id)) = q.fetch_optional(&mut *tx).await? else {
            return Ok(Err(SnapshotRefused::Status));
        };
        s.volume_size = size;
        let deltas = quotas::snapshot_deltas(type_id.as_deref(), size, 1);
        if let Err(over) = quotas::charge(
            &mut tx,
            &self.quota_defaults,
            &s.project_id,
            &deltas,
            Column::InUse,
        )
        .await?
        {
            return Ok(Err(SnapshotRefused::Quota(over)));
        }
        sqlx::query(
            "INSERT INTO snapshots (id, project_id, user_id, volume_id, name, description, status, progress, volume_size, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.user_id)
        .bind(&s.volume_id)
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.status.as_str())
        .bind(&s.progress)
        .bind(s.volume_size)
        .bind(serde_json::to_string(&s.metadata).expect("string map serialises"))
        .bind(&s.created_at)
        .execute(&mut *tx)
        .await?;
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub async fn get_snapshot(&self, id: &str) -> Result<Option<SnapshotRow>> {
        let row = sqlx::query("SELECT * FROM snapshots WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| SnapshotRow::from_row(&r)).transpose()
    }

    /// A page of snapshots, in one query (two with a marker).
    pub async fn list_snapshots(&self, q: &ListQuery) -> Result<Vec<SnapshotRow>, ListError> {
        let rows = SNAPSHOT_LIST.fetch(self, q).await?;
        Ok(rows
            .iter()
            .map(SnapshotRow::from_row)
            .collect::<Result<_>>()?)
    }

    /// The newest live snapshot of a volume (what `revert` may go back to).
    pub async fn latest_snapshot_of(&self, volume_id: &str) -> Result<Option<SnapshotRow>> {
        let row = sqlx::query(
            "SELECT * FROM snapshots WHERE volume_id = $1 AND deleted = 0 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(volume_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| SnapshotRow::from_row(&r)).transpose()
    }

    /// Starts a snapshot delete: from one of `from` to `deleting`, with the job, in one
    /// transaction; false (nothing written) when it was not in one of `from`, and the
    /// number of volumes being created from it when there are any.
    pub async fn begin_delete_snapshot(
        &self,
        id: &str,
        from: &[SnapshotStatus],
        job: &JobRow,
    ) -> Result<std::result::Result<bool, i64>> {
        let mut tx = self.write_tx().await?;
        let readers: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM volumes WHERE snapshot_id = $1 AND deleted = 0 AND status = 'creating'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if readers > 0 {
            return Ok(Err(readers));
        }
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        if !move_status(&mut tx, Resource::Snapshots, id, &from, "deleting").await? {
            return Ok(Ok(false));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(true))
    }

    /// Moves a snapshot from one of `from` to `to` (with `job`, when given, in the same
    /// transaction); false when it was not in one of `from`.
    pub async fn transition_snapshot(
        &self,
        id: &str,
        from: &[SnapshotStatus],
        to: SnapshotStatus,
        job: Option<&JobRow>,
    ) -> Result<bool> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        self.transition(Resource::Snapshots, id, &from, to.as_str(), job)
            .await
    }

    /// Sets a snapshot's status (from `from` only) and, when given, its progress, in one
    /// conditional update; false when it was not in `from`.
    pub async fn update_snapshot_status(
        &self,
        id: &str,
        from: SnapshotStatus,
        to: SnapshotStatus,
        progress: Option<&str>,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE snapshots SET status = $1, progress = COALESCE($2, progress), updated_at = $3 \
             WHERE id = $4 AND deleted = 0 AND status = $5",
        )
        .bind(to.as_str())
        .bind(progress)
        .bind(time::now())
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Sets a live snapshot's progress; false when there is no such snapshot.
    pub async fn update_snapshot_progress(&self, id: &str, progress: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE snapshots SET progress = $1, updated_at = $2 WHERE id = $3 AND deleted = 0",
        )
        .bind(progress)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn finish_create_snapshot(
        &self,
        id: &str,
        provider_location: Option<&str>,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE snapshots SET status = 'available', progress = '100%', provider_location = $1, updated_at = $2 WHERE id = $3 AND status = 'creating'",
        )
        .bind(provider_location)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// `deleting` → gone, with the project's usage given the snapshot back in the same
    /// transaction.
    pub async fn finish_delete_snapshot(&self, id: &str) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let counted: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT s.project_id, s.volume_size, v.volume_type_id FROM snapshots s \
             JOIN volumes v ON v.id = s.volume_id WHERE s.id = $1 AND s.deleted = 0",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let done = self
            .finish_delete(&mut tx, Resource::Snapshots, id, &now)
            .await?;
        if let (true, Some((project, size, type_id))) = (done, counted) {
            let deltas = quotas::snapshot_deltas(type_id.as_deref(), size, -1);
            quotas::commit(&mut tx, &project, &deltas).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    pub async fn update_snapshot_info(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE snapshots SET name = COALESCE($1, name), description = COALESCE($2, description), metadata = COALESCE($3, metadata), updated_at = $4 WHERE id = $5",
        )
        .bind(name)
        .bind(description)
        .bind(metadata.map(|m| serde_json::to_string(m).expect("string map serialises")))
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
