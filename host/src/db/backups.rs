//! Backups (Cinder's `backups` table): the row, its list, and the transactions that start
//! and end a backup's create, restore and delete, each with the statuses of the volume
//! (and snapshot) it reads or writes, the job and the project's `backups` /
//! `backup_gigabytes` usage in the same transaction.
//!
//! An incremental is counted in its parent's `num_dependent_backups` from the moment it is
//! accepted (not only once it is made), so its parent cannot be deleted while it is being
//! made; deleting the incremental, in whatever status, gives the count back.

use std::collections::BTreeMap;

use super::DbRow;
use sqlx::Row;

use super::list::{ListError, ListQuery, Listing, Match, Page};
use super::quotas::{self, Column, OverQuota};
use super::volumes::insert_volume_row;
use super::{Db, DbError, JobRow, Result, VolumeRow, in_list, parse_column, time};
use crate::volume::status::{BackupStatus, VolumeStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct BackupRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub snapshot_id: Option<String>,
    pub status: BackupStatus,
    pub name: Option<String>,
    pub description: Option<String>,
    pub availability_zone: Option<String>,
    pub container: Option<String>,
    /// GiB: the size of the volume backed up.
    pub size: i64,
    pub object_count: i64,
    /// Bytes the backup's objects take in the store.
    pub stored_bytes: i64,
    pub fail_reason: Option<String>,
    pub parent_id: Option<String>,
    pub is_incremental: bool,
    pub num_dependent_backups: i64,
    /// When the data backed up was taken: the snapshot's creation, or the backup's.
    pub data_timestamp: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    pub temp_volume_id: Option<String>,
    pub temp_snapshot_id: Option<String>,
    pub restore_volume_id: Option<String>,
    /// Bytes done of `progress_total` by the running create or restore.
    pub progress: i64,
    pub progress_total: i64,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl BackupRow {
    fn from_row(r: &DbRow) -> Result<Self> {
        let metadata: String = r.try_get("metadata")?;
        let id: String = r.try_get("id")?;
        Ok(BackupRow {
            metadata: serde_json::from_str(&metadata).map_err(|e| DbError::Corrupt {
                table: "backups",
                id: id.clone(),
                message: format!("metadata: {e}"),
            })?,
            id,
            project_id: r.try_get("project_id")?,
            user_id: r.try_get("user_id")?,
            volume_id: r.try_get("volume_id")?,
            snapshot_id: r.try_get("snapshot_id")?,
            status: parse_column(r, "backups", "status")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            availability_zone: r.try_get("availability_zone")?,
            container: r.try_get("container")?,
            size: r.try_get("size")?,
            object_count: r.try_get("object_count")?,
            stored_bytes: r.try_get("stored_bytes")?,
            fail_reason: r.try_get("fail_reason")?,
            parent_id: r.try_get("parent_id")?,
            is_incremental: r.try_get::<i64, _>("is_incremental")? != 0,
            num_dependent_backups: r.try_get("num_dependent_backups")?,
            data_timestamp: r.try_get("data_timestamp")?,
            host: r.try_get("host")?,
            service: r.try_get("service")?,
            temp_volume_id: r.try_get("temp_volume_id")?,
            temp_snapshot_id: r.try_get("temp_snapshot_id")?,
            restore_volume_id: r.try_get("restore_volume_id")?,
            progress: r.try_get("progress")?,
            progress_total: r.try_get("progress_total")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// Cinder's `has_dependent_backups`.
    pub fn has_dependent_backups(&self) -> bool {
        self.num_dependent_backups > 0
    }
}

/// The backup list: Cinder's `resource_filters.json` for backups (name, status,
/// volume_id) and its sort keys.
pub const BACKUP_LIST: Listing = Listing {
    from: "backups b",
    columns: "b.*",
    alias: "b",
    live: "b.deleted = 0",
    filters: &[
        ("name", Match::Equal("b.name")),
        ("display_name", Match::Equal("b.name")),
        ("status", Match::Equal("b.status")),
        ("volume_id", Match::Equal("b.volume_id")),
    ],
    sort_keys: &[
        ("created_at", "b.created_at"),
        ("updated_at", "COALESCE(b.updated_at, '')"),
        ("id", "b.id"),
        ("name", "COALESCE(b.name, '')"),
        ("display_name", "COALESCE(b.name, '')"),
        ("size", "b.size"),
        ("status", "b.status"),
        ("volume_id", "b.volume_id"),
        ("data_timestamp", "COALESCE(b.data_timestamp, '')"),
        ("container", "COALESCE(b.container, '')"),
    ],
};

/// Why a backup could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupCreateRefused {
    /// The volume is gone (`None`) or not in a status it may be backed up from.
    Volume(Option<String>),
    /// The volume is in use and the request did not say `force`.
    InUse,
    /// The snapshot is gone (`None`) or not `available`.
    Snapshot(Option<String>),
    /// The snapshot is not one of the volume's.
    SnapshotOfOther,
    /// `incremental` with no available backup of the volume to build on.
    NoParent,
    Quota(OverQuota),
}

/// Why a restore could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreRefused {
    /// The backup is not `available` (its status, `None` when gone).
    Backup(Option<String>),
    /// The target volume is gone or not `available`.
    Volume(Option<String>),
    /// The target volume (GiB) is smaller than the backup (GiB).
    TooSmall {
        volume_size: i64,
        size: i64,
    },
    Quota(OverQuota),
}

/// Why a backup delete could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupDeleteRefused {
    /// Incremental backups build on it.
    HasDependents,
    /// It is not in a status the delete may start from (its status).
    Status(String),
}

/// What a restore writes onto.
pub enum RestoreTarget<'a> {
    /// An existing volume, which goes `available` → `restoring-backup`.
    Existing(&'a str),
    /// A volume made for it, inserted (`creating`) with its job.
    New(&'a VolumeRow),
}

fn names(statuses: &[VolumeStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

impl Db {
    /// Accepts a backup (status `creating`): the volume (from `available`, or `in-use`
    /// with `force`) goes `backing-up` remembering its status, or, for a backup of a
    /// snapshot, the snapshot goes `backing-up`; an incremental names the volume's latest
    /// available backup (by `data_timestamp`) as its parent and is counted in it; the
    /// project's `backups` and `backup_gigabytes` are charged; all in one transaction
    /// with the job. Fills in the row's size, parent and data timestamp.
    pub async fn insert_backup_with_job(
        &self,
        b: &mut BackupRow,
        force: bool,
        job: &JobRow,
    ) -> Result<Result<(), BackupCreateRefused>> {
        let mut tx = self.write_tx().await?;
        let volume: Option<(String, i64)> =
            sqlx::query_as("SELECT status, size FROM volumes WHERE id = $1 AND deleted = 0")
                .bind(&b.volume_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, size)) = volume else {
            return Ok(Err(BackupCreateRefused::Volume(None)));
        };
        if !names(VolumeStatus::BACKUPABLE).contains(&status.as_str()) {
            return Ok(Err(BackupCreateRefused::Volume(Some(status))));
        }
        b.size = size;
        b.data_timestamp = Some(b.created_at.clone());
        if let Some(snapshot_id) = &b.snapshot_id {
            let snap: Option<(String, String, String)> = sqlx::query_as(
                "SELECT status, volume_id, created_at FROM snapshots WHERE id = $1 AND deleted = 0",
            )
            .bind(snapshot_id)
            .fetch_optional(&mut *tx)
            .await?;
            match snap {
                None => return Ok(Err(BackupCreateRefused::Snapshot(None))),
                Some((_, vol, _)) if vol != b.volume_id => {
                    return Ok(Err(BackupCreateRefused::SnapshotOfOther));
                }
                Some((st, _, _)) if st != "available" => {
                    return Ok(Err(BackupCreateRefused::Snapshot(Some(st))));
                }
                Some((_, _, created)) => b.data_timestamp = Some(created),
            }
            sqlx::query(
                "UPDATE snapshots SET status = 'backing-up', updated_at = $1 WHERE id = $2 AND status = 'available'",
            )
            .bind(time::now())
            .bind(snapshot_id)
            .execute(&mut *tx)
            .await?;
        } else {
            if status == "in-use" && !force {
                return Ok(Err(BackupCreateRefused::InUse));
            }
            sqlx::query(
                "UPDATE volumes SET previous_status = status, status = 'backing-up', updated_at = $1 \
                 WHERE id = $2 AND deleted = 0 AND status = $3",
            )
            .bind(time::now())
            .bind(&b.volume_id)
            .bind(&status)
            .execute(&mut *tx)
            .await?;
        }
        if b.is_incremental {
            let parent: Option<String> = sqlx::query_scalar(
                "SELECT id FROM backups WHERE volume_id = $1 AND deleted = 0 AND status = 'available' \
                 ORDER BY COALESCE(data_timestamp, created_at) DESC, created_at DESC, id DESC LIMIT 1",
            )
            .bind(&b.volume_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(parent) = parent else {
                return Ok(Err(BackupCreateRefused::NoParent));
            };
            sqlx::query(
                "UPDATE backups SET num_dependent_backups = num_dependent_backups + 1, updated_at = $1 WHERE id = $2",
            )
            .bind(time::now())
            .bind(&parent)
            .execute(&mut *tx)
            .await?;
            b.parent_id = Some(parent);
        }
        let deltas = quotas::backup_deltas(b.size, 1);
        if let Err(over) = quotas::charge(
            &mut tx,
            &self.quota_defaults,
            &b.project_id,
            &deltas,
            Column::InUse,
        )
        .await?
        {
            return Ok(Err(BackupCreateRefused::Quota(over)));
        }
        insert_row(&mut tx, b).await?;
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Records an imported backup (`available`), its usage charged within the project's
    /// quotas; a live backup of the same id is a conflict.
    pub async fn import_backup(&self, b: &BackupRow) -> Result<Result<bool, OverQuota>> {
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM backups WHERE id = $1")
            .bind(&b.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            // A soft-deleted row keeps its id: it is taken back by the import.
            let live: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM backups WHERE id = $1 AND deleted = 0")
                    .bind(&b.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if live.is_some() {
                return Ok(Ok(false));
            }
            sqlx::query("DELETE FROM backups WHERE id = $1 AND deleted = 1")
                .bind(&b.id)
                .execute(&mut *tx)
                .await?;
        }
        let deltas = quotas::backup_deltas(b.size, 1);
        if let Err(over) = quotas::charge(
            &mut tx,
            &self.quota_defaults,
            &b.project_id,
            &deltas,
            Column::InUse,
        )
        .await?
        {
            return Ok(Err(over));
        }
        insert_row(&mut tx, b).await?;
        if let Some(parent) = &b.parent_id {
            sqlx::query(
                "UPDATE backups SET num_dependent_backups = num_dependent_backups + 1 WHERE id = $1 AND deleted = 0",
            )
            .bind(parent)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(true))
    }

    pub async fn get_backup(&self, id: &str) -> Result<Option<BackupRow>> {
        let row = sqlx::query("SELECT * FROM backups WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| BackupRow::from_row(&r)).transpose()
    }

    /// A page of backups, in one query (two with a marker).
    pub async fn list_backups(&self, q: &ListQuery) -> Result<Vec<BackupRow>, ListError> {
        let rows = BACKUP_LIST.fetch(self, q).await?;
        Ok(rows
            .iter()
            .map(BackupRow::from_row)
            .collect::<Result<_>>()?)
    }

    /// How many backups the list's scope and filters hold, whatever the page (3.45's
    /// `count`).
    pub async fn count_backups(&self, q: &ListQuery) -> Result<usize, ListError> {
        let all = ListQuery {
            page: Page::default(),
            ..q.clone()
        };
        Ok(BACKUP_LIST.fetch(self, &all).await?.len())
    }

    /// Every live backup's id: what the store's objects are checked against.
    pub async fn live_backup_ids(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM backups WHERE deleted = 0")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The status a volume returns to when the backup holding it ends.
    pub async fn volume_previous_status(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT previous_status FROM volumes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Whether the database ever recorded backup `id` and deleted it.
    pub async fn backup_was_deleted(&self, id: &str) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM backups WHERE id = $1 AND deleted = 1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Writes the running operation's progress (bytes done of total).
    pub async fn set_backup_progress(&self, id: &str, done: i64, total: i64) -> Result<()> {
        sqlx::query("UPDATE backups SET progress = $1, progress_total = $2, updated_at = $3 WHERE id = $4 AND deleted = 0")
            .bind(done)
            .bind(total)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the temporary volume or snapshot a backup reads from (before it is made,
    /// so recovery finds it after a crash), or clears them (`None`).
    pub async fn set_backup_temp(
        &self,
        id: &str,
        temp_volume_id: Option<&str>,
        temp_snapshot_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE backups SET temp_volume_id = $1, temp_snapshot_id = $2, updated_at = $3 WHERE id = $4")
            .bind(temp_volume_id)
            .bind(temp_snapshot_id)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Where a backup is being made: the host and the store.
    pub async fn set_backup_service(&self, id: &str, host: &str, service: &str) -> Result<()> {
        sqlx::query("UPDATE backups SET host = $1, service = $2, updated_at = $3 WHERE id = $4")
            .bind(host)
            .bind(service)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `creating` → `available` with what the store holds; the volume returns to the
    /// status it had (or the snapshot to `available`); one transaction. False when the
    /// backup had left `creating`.
    pub async fn finish_create_backup(
        &self,
        id: &str,
        object_count: i64,
        stored_bytes: i64,
    ) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE backups SET status = 'available', object_count = $1, stored_bytes = $2, \
             progress = progress_total, fail_reason = NULL, updated_at = $3 \
             WHERE id = $4 AND deleted = 0 AND status = 'creating'",
        )
        .bind(object_count)
        .bind(stored_bytes)
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        release_source(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A create that failed: `creating` → `error` with `fail_reason`, the volume back to
    /// the status it had (or the snapshot to `available`); one transaction. False when
    /// the backup had left `creating` (its source is released all the same).
    pub async fn fail_create_backup(&self, id: &str, fail_reason: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE backups SET status = 'error', fail_reason = $1, updated_at = $2 \
             WHERE id = $3 AND deleted = 0 AND status = 'creating'",
        )
        .bind(fail_reason)
        .bind(time::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        release_source(&mut tx, id).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// Starts a restore: the backup `available` → `restoring` (naming the volume), and
    /// either the existing volume `available` → `restoring-backup` (if it is at least the
    /// backup's size) or the new volume inserted `creating` with its usage charged; with
    /// the job; one transaction.
    pub async fn begin_restore(
        &self,
        backup_id: &str,
        target: RestoreTarget<'_>,
        job: &JobRow,
    ) -> Result<Result<(), RestoreRefused>> {
        let mut tx = self.write_tx().await?;
        let backup: Option<(String, i64)> =
            sqlx::query_as("SELECT status, size FROM backups WHERE id = $1 AND deleted = 0")
                .bind(backup_id)
                .fetch_optional(&mut *tx)
                .await?;
        let size = match backup {
            None => return Ok(Err(RestoreRefused::Backup(None))),
            Some((status, _)) if status != "available" => {
                return Ok(Err(RestoreRefused::Backup(Some(status))));
            }
            Some((_, size)) => size,
        };
        let volume_id = match target {
            RestoreTarget::Existing(volume_id) => {
                let volume: Option<(String, i64)> = sqlx::query_as(
                    "SELECT status, size FROM volumes WHERE id = $1 AND deleted = 0",
                )
                .bind(volume_id)
                .fetch_optional(&mut *tx)
                .await?;
                match volume {
                    None => return Ok(Err(RestoreRefused::Volume(None))),
                    Some((status, _))
                        if !names(VolumeStatus::RESTORABLE_ONTO).contains(&status.as_str()) =>
                    {
                        return Ok(Err(RestoreRefused::Volume(Some(status))));
                    }
                    Some((_, volume_size)) if volume_size < size => {
                        return Ok(Err(RestoreRefused::TooSmall { volume_size, size }));
                    }
                    Some(_) => {}
                }
                let sql = format!(
                    "UPDATE volumes SET status = 'restoring-backup', updated_at = $1 \
                     WHERE id = $2 AND deleted = 0 AND status IN ({})",
                    in_list(3, VolumeStatus::RESTORABLE_ONTO.len())
                );
                let mut q = sqlx::query(&sql).bind(time::now()).bind(volume_id);
                for s in VolumeStatus::RESTORABLE_ONTO {
                    q = q.bind(s.as_str());
                }
                q.execute(&mut *tx).await?;
                volume_id.to_string()
            }
            RestoreTarget::New(v) => {
                if let Err(over) = insert_volume_row(&mut tx, &self.quota_defaults, v).await? {
                    return Ok(Err(RestoreRefused::Quota(over)));
                }
                v.id.clone()
            }
        };
        sqlx::query(
            "UPDATE backups SET status = 'restoring', restore_volume_id = $1, progress = 0, updated_at = $2 \
             WHERE id = $3 AND status = 'available'",
        )
        .bind(&volume_id)
        .bind(time::now())
        .bind(backup_id)
        .execute(&mut *tx)
        .await?;
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// A restore's end: the backup `restoring` → `available`, and the volume from
    /// `restoring-backup` to `volume_to` (`available`, or `error_restoring` when the data
    /// could not be written); one transaction.
    pub async fn finish_restore(
        &self,
        backup_id: &str,
        volume_id: &str,
        volume_to: VolumeStatus,
    ) -> Result<()> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE backups SET status = 'available', updated_at = $1 WHERE id = $2 AND deleted = 0 AND status = 'restoring'",
        )
        .bind(&now)
        .bind(backup_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE volumes SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status = 'restoring-backup'",
        )
        .bind(volume_to.as_str())
        .bind(&now)
        .bind(volume_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The backup `restoring` → `available` alone (the volume made for a restore failed
    /// to be created, and is `error` already).
    pub async fn release_restoring_backup(&self, backup_id: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE backups SET status = 'available', updated_at = $1 WHERE id = $2 AND deleted = 0 AND status = 'restoring'",
        )
        .bind(time::now())
        .bind(backup_id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Starts a delete: refused while incremental backups build on it; the backup from
    /// one of `from` to `deleting` with the job; one transaction.
    pub async fn begin_delete_backup(
        &self,
        id: &str,
        from: &[BackupStatus],
        job: &JobRow,
    ) -> Result<Result<(), BackupDeleteRefused>> {
        let mut tx = self.write_tx().await?;
        let dependents: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM backups WHERE parent_id = $1 AND deleted = 0")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if dependents > 0 {
            return Ok(Err(BackupDeleteRefused::HasDependents));
        }
        let sql = format!(
            "UPDATE backups SET status = 'deleting', updated_at = $1 WHERE id = $2 AND deleted = 0 AND status IN ({})",
            in_list(3, from.len())
        );
        let mut q = sqlx::query(&sql).bind(time::now()).bind(id);
        for s in from {
            q = q.bind(s.as_str());
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM backups WHERE id = $1 AND deleted = 0")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Ok(Err(BackupDeleteRefused::Status(
                status.unwrap_or_else(|| "deleted".into()),
            )));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// `deleting` → gone (soft-deleted), its parent's count of dependents and the
    /// project's usage given back; one transaction.
    pub async fn finish_delete_backup(&self, id: &str) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let row: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT project_id, size, parent_id FROM backups WHERE id = $1 AND deleted = 0 AND status = 'deleting'",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((project, size, parent)) = row else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE backups SET status = 'deleted', deleted = 1, deleted_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(parent) = parent {
            sqlx::query(
                "UPDATE backups SET num_dependent_backups = num_dependent_backups - 1, updated_at = $1 \
                 WHERE id = $2 AND num_dependent_backups > 0",
            )
            .bind(&now)
            .bind(parent)
            .execute(&mut *tx)
            .await?;
        }
        quotas::commit(&mut tx, &project, &quotas::backup_deltas(size, -1)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A delete that failed: `deleting` → `error_deleting` with why.
    pub async fn fail_delete_backup(&self, id: &str, fail_reason: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE backups SET status = 'error_deleting', fail_reason = $1, updated_at = $2 \
             WHERE id = $3 AND deleted = 0 AND status = 'deleting'",
        )
        .bind(fail_reason)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// An administrator's `os-reset_status`: sets the status whatever it was.
    pub async fn reset_backup_status(&self, id: &str, status: BackupStatus) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE backups SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0",
        )
        .bind(status.as_str())
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn update_backup_info(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE backups SET name = COALESCE($1, name), description = COALESCE($2, description), \
             metadata = COALESCE($3, metadata), updated_at = $4 WHERE id = $5 AND deleted = 0",
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

/// Inserts `b` in the caller's transaction.
async fn insert_row(tx: &mut crate::db::Tx, b: &BackupRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO backups (id, project_id, user_id, volume_id, snapshot_id, status, name, description, \
         availability_zone, container, size, object_count, stored_bytes, fail_reason, parent_id, is_incremental, \
         num_dependent_backups, data_timestamp, host, service, metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22)",
    )
    .bind(&b.id)
    .bind(&b.project_id)
    .bind(&b.user_id)
    .bind(&b.volume_id)
    .bind(&b.snapshot_id)
    .bind(b.status.as_str())
    .bind(&b.name)
    .bind(&b.description)
    .bind(&b.availability_zone)
    .bind(&b.container)
    .bind(b.size)
    .bind(b.object_count)
    .bind(b.stored_bytes)
    .bind(&b.fail_reason)
    .bind(&b.parent_id)
    .bind(b.is_incremental as i64)
    .bind(b.num_dependent_backups)
    .bind(&b.data_timestamp)
    .bind(&b.host)
    .bind(&b.service)
    .bind(serde_json::to_string(&b.metadata).expect("string map serialises"))
    .bind(&b.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a backup being made held, given back: its volume from `backing-up` to the status
/// it had (`available` if none was kept), or its snapshot from `backing-up` to
/// `available`.
async fn release_source(tx: &mut crate::db::Tx, id: &str) -> Result<()> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT volume_id, snapshot_id FROM backups WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((volume_id, snapshot_id)) = row else {
        return Ok(());
    };
    let now = time::now();
    match snapshot_id {
        Some(snapshot_id) => {
            sqlx::query(
                "UPDATE snapshots SET status = 'available', updated_at = $1 WHERE id = $2 AND deleted = 0 AND status = 'backing-up'",
            )
            .bind(&now)
            .bind(snapshot_id)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query(
                "UPDATE volumes SET status = COALESCE(previous_status, 'available'), previous_status = NULL, updated_at = $1 \
                 WHERE id = $2 AND deleted = 0 AND status = 'backing-up'",
            )
            .bind(&now)
            .bind(volume_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    fn backup(id: &str, volume: &str, incremental: bool) -> BackupRow {
        BackupRow {
            id: id.into(),
            project_id: "p".into(),
            user_id: "u".into(),
            volume_id: volume.into(),
            snapshot_id: None,
            status: BackupStatus::Creating,
            name: None,
            description: None,
            availability_zone: None,
            container: Some("volumebackups".into()),
            size: 0,
            object_count: 0,
            stored_bytes: 0,
            fail_reason: None,
            parent_id: None,
            is_incremental: incremental,
            num_dependent_backups: 0,
            data_timestamp: None,
            host: None,
            service: None,
            temp_volume_id: None,
            temp_snapshot_id: None,
            restore_volume_id: None,
            progress: 0,
            progress_total: 0,
            metadata: BTreeMap::new(),
            created_at: time::now(),
            updated_at: None,
        }
    }

    fn job(id: &str) -> JobRow {
        JobRow::new("create_backup", id, "{}".into())
    }

    async fn volume_status(db: &Db, id: &str) -> VolumeStatus {
        db.get_volume(id).await.unwrap().unwrap().status
    }

    #[tokio::test]
    async fn a_backup_holds_its_volume_and_returns_it_to_its_status() {
        let (db, _dir) = testing::db().await;
        let v = VolumeRow {
            status: VolumeStatus::InUse,
            ..testing::volume("v", "p")
        };
        testing::insert_volume(&db, &v).await;
        let mut b = backup("b1", "v", false);
        assert_eq!(
            db.insert_backup_with_job(&mut b, false, &job("b1"))
                .await
                .unwrap(),
            Err(BackupCreateRefused::InUse)
        );
        db.insert_backup_with_job(&mut b, true, &job("b1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(volume_status(&db, "v").await, VolumeStatus::BackingUp);
        assert!(db.finish_create_backup("b1", 3, 100).await.unwrap());
        assert_eq!(volume_status(&db, "v").await, VolumeStatus::InUse);

        // An incremental builds on b1 and holds it until it is deleted.
        let mut inc = backup("b2", "v", true);
        db.insert_backup_with_job(&mut inc, true, &job("b2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(inc.parent_id.as_deref(), Some("b1"));
        assert!(db.fail_create_backup("b2", "stopped").await.unwrap());
        assert_eq!(volume_status(&db, "v").await, VolumeStatus::InUse);
        let del = JobRow::new("delete_backup", "b1", "{}".into());
        assert_eq!(
            db.begin_delete_backup("b1", BackupStatus::DELETABLE, &del)
                .await
                .unwrap(),
            Err(BackupDeleteRefused::HasDependents)
        );
        db.begin_delete_backup("b2", BackupStatus::DELETABLE, &del)
            .await
            .unwrap()
            .unwrap();
        assert!(db.finish_delete_backup("b2").await.unwrap());
        let parent = db.get_backup("b1").await.unwrap().unwrap();
        assert_eq!(parent.num_dependent_backups, 0);
        let del = JobRow::new("delete_backup", "b1", "{}".into());
        db.begin_delete_backup("b1", BackupStatus::DELETABLE, &del)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn an_incremental_needs_an_available_backup_of_its_volume() {
        let (db, _dir) = testing::db().await;
        let v = VolumeRow {
            status: VolumeStatus::Available,
            ..testing::volume("v", "p")
        };
        testing::insert_volume(&db, &v).await;
        let mut b = backup("b1", "v", true);
        assert_eq!(
            db.insert_backup_with_job(&mut b, false, &job("b1"))
                .await
                .unwrap(),
            Err(BackupCreateRefused::NoParent)
        );
        assert_eq!(volume_status(&db, "v").await, VolumeStatus::Available);
    }
}
