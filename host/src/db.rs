//! The state store. SQLite (one file) is the embedded default. Queries are plain SQL with
//! `$N` parameters so the same text serves PostgreSQL later.
//!
//! Status changes only by conditional update (`… WHERE id = $1 AND status IN (…)`), so two
//! racing requests cannot both win.

mod attachments;
pub mod rows;
pub mod time;

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use attachments::AttachmentRow;
pub use rows::{Job, Message, PluginEvent, SnapshotRow, VolumeRow, VolumeType};

/// Migrations in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        "0002_plugin_events",
        include_str!("../migrations/0002_plugin_events.sql"),
    ),
    (
        "0003_attachments",
        include_str!("../migrations/0003_attachments.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
}

/// `status IN ($a, $b, …)` placeholders starting at parameter `first`.
fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sort keys a client may name (Cinder's `sort_key`), mapped to columns.
fn sort_column(key: &str) -> Option<&'static str> {
    Some(match key {
        "created_at" => "created_at",
        "updated_at" => "updated_at",
        "id" => "id",
        "name" | "display_name" => "name",
        "size" => "size",
        "status" => "status",
        _ => return None,
    })
}

/// A page of a list: Cinder's `limit`, `marker`, `sort_key`, `sort_dir`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: Option<i64>,
    pub marker: Option<String>,
    pub sort_key: Option<String>,
    pub sort_desc: bool,
}

impl Page {
    /// Validates the sort key, naming the bad one.
    pub fn order_by(&self) -> Result<String, String> {
        let key = self.sort_key.as_deref().unwrap_or("created_at");
        let col = sort_column(key).ok_or_else(|| {
            format!("sort_key `{key}` is not one of created_at, updated_at, id, name, size, status")
        })?;
        let dir = if self.sort_desc { "DESC" } else { "ASC" };
        Ok(format!("{col} {dir}, id {dir}"))
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(url: &str) -> Result<Db> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let db = Db { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// A write transaction. SQLite's default deferred transaction fails with "database
    /// is locked" when it upgrades from a read while another writer is active; taking the
    /// write lock up front makes concurrent writers queue on the busy timeout instead.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            .execute(&self.pool)
            .await?;
        for (name, sql) in MIGRATIONS {
            let done: Option<String> =
                sqlx::query_scalar("SELECT name FROM schema_migrations WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.write_tx().await?;
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let statement: String = statement
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                if !statement.trim().is_empty() {
                    sqlx::query(&statement).execute(&mut *tx).await?;
                }
            }
            sqlx::query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)")
                .bind(name)
                .bind(time::now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(migration = name, "applied database migration");
        }
        Ok(())
    }

    // ---- volume types -------------------------------------------------------------

    pub async fn create_volume_type(
        &self,
        name: &str,
        description: Option<&str>,
        is_public: bool,
        extra_specs: &[(String, String)],
    ) -> Result<VolumeType> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query("INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(description)
            .bind(is_public as i64)
            .bind(time::now())
            .execute(&mut *tx)
            .await;
        if let Err(sqlx::Error::Database(e)) = &inserted
            && e.is_unique_violation()
        {
            return Err(DbError::Conflict(format!(
                "Volume Type {name} already exists."
            )));
        }
        inserted?;
        for (k, v) in extra_specs {
            sqlx::query("INSERT INTO volume_type_extra_specs (volume_type_id, key, value) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self.get_volume_type(&id).await?.expect("just inserted"))
    }

    /// A type by id or by name.
    pub async fn get_volume_type(&self, id_or_name: &str) -> Result<Option<VolumeType>> {
        let row = sqlx::query(
            "SELECT * FROM volume_types WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut t = VolumeType::from_row(&row)?;
                t.extra_specs = self.extra_specs(&t.id).await?;
                Ok(Some(t))
            }
        }
    }

    pub async fn list_volume_types(&self, include_private: bool) -> Result<Vec<VolumeType>> {
        let rows =
            sqlx::query("SELECT * FROM volume_types WHERE is_public = 1 OR $1 = 1 ORDER BY name")
                .bind(include_private as i64)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut t = VolumeType::from_row(&row)?;
            t.extra_specs = self.extra_specs(&t.id).await?;
            out.push(t);
        }
        Ok(out)
    }

    pub async fn update_volume_type(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        is_public: Option<bool>,
    ) -> Result<()> {
        let res = sqlx::query(
            "UPDATE volume_types SET name = COALESCE($2, name), description = COALESCE($3, description), is_public = COALESCE($4, is_public) WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(is_public.map(|b| b as i64))
        .execute(&self.pool)
        .await;
        if let Err(sqlx::Error::Database(e)) = &res
            && e.is_unique_violation()
        {
            return Err(DbError::Conflict(format!(
                "Volume Type {} already exists.",
                name.unwrap_or_default()
            )));
        }
        res?;
        Ok(())
    }

    /// Deletes a type unless a volume still uses it.
    pub async fn delete_volume_type(&self, id: &str) -> Result<bool> {
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM volumes WHERE volume_type_id = $1 AND deleted = 0",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        if in_use > 0 {
            return Err(DbError::Conflict(format!(
                "Target volume type is still in use: {in_use} volume(s) have type {id}; delete or retype them first."
            )));
        }
        let res = sqlx::query("DELETE FROM volume_types WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn extra_specs(&self, type_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT key, value FROM volume_type_extra_specs WHERE volume_type_id = $1 ORDER BY key",
        )
        .bind(type_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    pub async fn set_extra_specs(&self, type_id: &str, specs: &[(String, String)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for (k, v) in specs {
            sqlx::query(
                "INSERT INTO volume_type_extra_specs (volume_type_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (volume_type_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(type_id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_extra_spec(&self, type_id: &str, key: &str) -> Result<bool> {
        let res = sqlx::query(
            "DELETE FROM volume_type_extra_specs WHERE volume_type_id = $1 AND key = $2",
        )
        .bind(type_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    // ---- volumes ------------------------------------------------------------------

    /// Inserts a volume (status `creating`) and its job in one transaction.
    pub async fn insert_volume_with_job(
        &self,
        v: &VolumeRow,
        metadata: &[(String, String)],
        job: &Job,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO volumes (id, project_id, user_id, name, description, size, status, attach_status, availability_zone, \
             volume_type_id, host, snapshot_id, source_volid, bootable, multiattach, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
        )
        .bind(&v.id)
        .bind(&v.project_id)
        .bind(&v.user_id)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.size)
        .bind(&v.status)
        .bind(&v.attach_status)
        .bind(&v.availability_zone)
        .bind(&v.volume_type_id)
        .bind(&v.host)
        .bind(&v.snapshot_id)
        .bind(&v.source_volid)
        .bind(v.bootable as i64)
        .bind(v.multiattach as i64)
        .bind(&v.created_at)
        .execute(&mut *tx)
        .await?;
        for (k, val) in metadata {
            sqlx::query("INSERT INTO volume_metadata (volume_id, key, value) VALUES ($1, $2, $3)")
                .bind(&v.id)
                .bind(k)
                .bind(val)
                .execute(&mut *tx)
                .await?;
        }
        insert_job(&mut tx, job).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_volume(&self, id: &str) -> Result<Option<VolumeRow>> {
        let row = sqlx::query("SELECT * FROM volumes WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut v = VolumeRow::from_row(&row)?;
                v.metadata = self.volume_metadata(id).await?;
                v.attachments = self.list_attachments(None, Some(id)).await?;
                Ok(Some(v))
            }
        }
    }

    /// Rows of `table` (volumes or snapshots) of `project` (all projects when `None`),
    /// filtered by column equality and paged by Cinder's marker: rows after the marker
    /// in the same order.
    async fn page_rows(
        &self,
        table: &str,
        project: Option<&str>,
        filters: &[(&str, String)],
        page: &Page,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, ListError> {
        let order = page.order_by().map_err(ListError::Invalid)?;
        let mut sql = format!("SELECT * FROM {table} WHERE deleted = 0");
        let mut binds: Vec<String> = Vec::new();
        if let Some(p) = project {
            binds.push(p.to_string());
            sql.push_str(&format!(" AND project_id = ${}", binds.len()));
        }
        for (col, val) in filters {
            binds.push(val.clone());
            sql.push_str(&format!(" AND {col} = ${}", binds.len()));
        }
        if let Some(marker) = &page.marker {
            if page.sort_key.as_deref().is_some_and(|k| k != "created_at") {
                return Err(ListError::Invalid(
                    "marker can only be combined with sort_key=created_at".into(),
                ));
            }
            let at: Option<String> = sqlx::query_scalar(&format!(
                "SELECT created_at FROM {table} WHERE id = $1 AND deleted = 0"
            ))
            .bind(marker)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| ListError::Db(e.into()))?;
            let Some(at) = at else {
                return Err(ListError::Invalid(format!("marker {marker} not found")));
            };
            let op = if page.sort_desc { "<" } else { ">" };
            binds.push(at);
            binds.push(marker.clone());
            sql.push_str(&format!(
                " AND (created_at {op} ${a} OR (created_at = ${a} AND id {op} ${b}))",
                a = binds.len() - 1,
                b = binds.len()
            ));
        }
        sql.push_str(&format!(" ORDER BY {order}"));
        if let Some(limit) = page.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(|e| ListError::Db(e.into()))
    }

    /// Volumes of `project` (all projects when `None`), filtered and paged.
    pub async fn list_volumes(
        &self,
        project: Option<&str>,
        filters: &[(&str, String)],
        page: &Page,
    ) -> Result<Vec<VolumeRow>, ListError> {
        let rows = self.page_rows("volumes", project, filters, page).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut v = VolumeRow::from_row(&row).map_err(|e| ListError::Db(e.into()))?;
            v.metadata = self.volume_metadata(&v.id).await.map_err(ListError::Db)?;
            v.attachments = self
                .list_attachments(None, Some(&v.id))
                .await
                .map_err(ListError::Db)?;
            out.push(v);
        }
        Ok(out)
    }

    /// Moves a volume from one of `from` to `to`; false when it was not in one of `from`.
    pub async fn transition_volume(&self, id: &str, from: &[&str], to: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE volumes SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({})",
            in_list(4, from.len())
        );
        let mut q = sqlx::query(&sql).bind(to).bind(time::now()).bind(id);
        for f in from {
            q = q.bind(*f);
        }
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Sets a volume's status (and attach status) unconditionally: an administrator's
    /// `os-reset_status`.
    pub async fn reset_volume_status(
        &self,
        id: &str,
        status: &str,
        attach_status: Option<&str>,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET status = $1, attach_status = COALESCE($2, attach_status), updated_at = $3 WHERE id = $4 AND deleted = 0",
        )
        .bind(status)
        .bind(attach_status)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Records where a volume was placed while it is still `creating`.
    pub async fn set_volume_host(&self, id: &str, host: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET host = $1, updated_at = $2 WHERE id = $3 AND status = 'creating'",
        )
        .bind(host)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// `creating` → `available` with the driver's model update.
    pub async fn finish_create(
        &self,
        id: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
    ) -> Result<bool> {
        let now = time::now();
        let res = sqlx::query(
            "UPDATE volumes SET status = 'available', provider_location = $1, provider_auth = $2, launched_at = $3, updated_at = $3 \
             WHERE id = $4 AND status = 'creating' AND deleted = 0",
        )
        .bind(provider_location)
        .bind(provider_auth)
        .bind(&now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// `extending` → `available` at the new size.
    pub async fn finish_extend(&self, id: &str, new_size: i64) -> Result<bool> {
        let res = sqlx::query("UPDATE volumes SET status = 'available', size = $1, updated_at = $2 WHERE id = $3 AND status = 'extending'")
            .bind(new_size)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// `deleting` → gone (soft-deleted, as Cinder keeps the row).
    pub async fn finish_delete_volume(&self, id: &str) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volumes SET status = 'deleted', deleted = 1, deleted_at = $1, updated_at = $1 WHERE id = $2 AND status = 'deleting'",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM volume_metadata WHERE volume_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // An administrator may force-delete a volume whose attachments were left behind.
        sqlx::query(
            "UPDATE volume_attachments SET attach_status = 'detached', detach_time = $1, updated_at = $1, deleted = 1 \
             WHERE volume_id = $2 AND deleted = 0",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn update_volume_info(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE volumes SET name = COALESCE($1, name), description = COALESCE($2, description), updated_at = $3 WHERE id = $4")
            .bind(name)
            .bind(description)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts a volume operation: status `from` → `to` and the job, atomically.
    pub async fn transition_volume_with_job(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        job: &Job,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "UPDATE volumes SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({})",
            in_list(4, from.len())
        );
        let mut q = sqlx::query(&sql).bind(to).bind(time::now()).bind(id);
        for f in from {
            q = q.bind(*f);
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        insert_job(&mut tx, job).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts a volume delete: refused while snapshots exist, checked in the same
    /// transaction as the status change so a racing snapshot create cannot slip in.
    pub async fn begin_delete_volume(
        &self,
        id: &str,
        from: &[&str],
        job: &Job,
    ) -> Result<Result<(), DeleteRefused>> {
        let mut tx = self.write_tx().await?;
        let snaps: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM snapshots WHERE volume_id = $1 AND deleted = 0",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if snaps > 0 {
            return Ok(Err(DeleteRefused::HasSnapshots(snaps)));
        }
        let sql = format!(
            "UPDATE volumes SET status = 'deleting', updated_at = $1 WHERE id = $2 AND deleted = 0 AND status IN ({})",
            in_list(3, from.len())
        );
        let mut q = sqlx::query(&sql).bind(time::now()).bind(id);
        for f in from {
            q = q.bind(*f);
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(Err(DeleteRefused::Status));
        }
        insert_job(&mut tx, job).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub async fn volume_metadata(&self, id: &str) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT key, value FROM volume_metadata WHERE volume_id = $1 ORDER BY key")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    /// Merges (or, with `replace`, replaces) a volume's metadata.
    pub async fn set_volume_metadata(
        &self,
        id: &str,
        items: &[(String, String)],
        replace: bool,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        if replace {
            sqlx::query("DELETE FROM volume_metadata WHERE volume_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (k, v) in items {
            sqlx::query(
                "INSERT INTO volume_metadata (volume_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (volume_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE volumes SET updated_at = $1 WHERE id = $2")
            .bind(time::now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_volume_metadata(&self, id: &str, key: &str) -> Result<bool> {
        let res = sqlx::query("DELETE FROM volume_metadata WHERE volume_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Live snapshots of volumes placed on `backend` (`host@backend`).
    pub async fn snapshots_on(&self, backend: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM snapshots s JOIN volumes v ON v.id = s.volume_id \
             WHERE s.deleted = 0 AND v.host LIKE $1",
        )
        .bind(format!("{backend}#%"))
        .fetch_one(&self.pool)
        .await?)
    }

    // ---- snapshots ----------------------------------------------------------------

    /// Inserts a snapshot (status `creating`) with its job, if the volume is in one of
    /// `volume_states`.
    pub async fn insert_snapshot_with_job(
        &self,
        s: &SnapshotRow,
        volume_states: &[&str],
        job: &Job,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT COUNT(*) FROM volumes WHERE id = $1 AND deleted = 0 AND status IN ({})",
            in_list(2, volume_states.len())
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(&s.volume_id);
        for st in volume_states {
            q = q.bind(*st);
        }
        if q.fetch_one(&mut *tx).await? != 1 {
            return Ok(false);
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
        .bind(&s.status)
        .bind(&s.progress)
        .bind(s.volume_size)
        .bind(serde_json::to_string(&s.metadata).expect("string map serialises"))
        .bind(&s.created_at)
        .execute(&mut *tx)
        .await?;
        insert_job(&mut tx, job).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_snapshot(&self, id: &str) -> Result<Option<SnapshotRow>> {
        let row = sqlx::query("SELECT * FROM snapshots WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| SnapshotRow::from_row(&r)).transpose()?)
    }

    pub async fn list_snapshots(
        &self,
        project: Option<&str>,
        filters: &[(&str, String)],
        page: &Page,
    ) -> Result<Vec<SnapshotRow>, ListError> {
        let rows = self.page_rows("snapshots", project, filters, page).await?;
        rows.iter()
            .map(|r| SnapshotRow::from_row(r).map_err(|e| ListError::Db(e.into())))
            .collect()
    }

    pub async fn transition_snapshot(&self, id: &str, from: &[&str], to: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE snapshots SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({})",
            in_list(4, from.len())
        );
        let mut q = sqlx::query(&sql).bind(to).bind(time::now()).bind(id);
        for f in from {
            q = q.bind(*f);
        }
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    pub async fn transition_snapshot_with_job(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        job: &Job,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "UPDATE snapshots SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({})",
            in_list(4, from.len())
        );
        let mut q = sqlx::query(&sql).bind(to).bind(time::now()).bind(id);
        for f in from {
            q = q.bind(*f);
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        insert_job(&mut tx, job).await?;
        tx.commit().await?;
        Ok(true)
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

    pub async fn finish_delete_snapshot(&self, id: &str) -> Result<bool> {
        let now = time::now();
        let res = sqlx::query(
            "UPDATE snapshots SET status = 'deleted', deleted = 1, deleted_at = $1, updated_at = $1 WHERE id = $2 AND status = 'deleting'",
        )
        .bind(&now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn update_snapshot_info(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        metadata: Option<&std::collections::BTreeMap<String, String>>,
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

    // ---- jobs ---------------------------------------------------------------------

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

    pub async fn finish_job(&self, id: &str, state: &str, error: Option<&str>) -> Result<()> {
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
    pub async fn unfinished_jobs(&self) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE state IN ('pending', 'running') ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Job::from_row(r).map_err(Into::into))
            .collect()
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Job::from_row(&r)).transpose()?)
    }

    // ---- messages -----------------------------------------------------------------

    pub async fn insert_message(&self, m: &Message) -> Result<()> {
        sqlx::query(
            "INSERT INTO messages (id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, user_message, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&m.id)
        .bind(&m.project_id)
        .bind(&m.request_id)
        .bind(&m.resource_type)
        .bind(&m.resource_uuid)
        .bind(&m.event_id)
        .bind(&m.message_level)
        .bind(&m.user_message)
        .bind(&m.created_at)
        .bind(&m.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_messages(
        &self,
        project: Option<&str>,
        resource_uuid: Option<&str>,
    ) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR resource_uuid = $2) ORDER BY created_at, id",
        )
        .bind(project)
        .bind(resource_uuid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Message::from_row(r).map_err(Into::into))
            .collect()
    }

    pub async fn get_message(&self, id: &str) -> Result<Option<Message>> {
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Message::from_row(&r)).transpose()?)
    }

    pub async fn delete_message(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM messages WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    // ---- plugin events ------------------------------------------------------------

    pub async fn insert_plugin_event(&self, e: &PluginEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_events (id, backend, kind, from_version, to_version, reason, took_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.id)
        .bind(&e.backend)
        .bind(&e.kind)
        .bind(&e.from_version)
        .bind(&e.to_version)
        .bind(&e.reason)
        .bind(e.took_ms)
        .bind(&e.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn plugin_events(
        &self,
        backend: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PluginEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM plugin_events WHERE ($1 IS NULL OR backend = $1) ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(backend)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| PluginEvent::from_row(r).map_err(Into::into))
            .collect()
    }
}

async fn insert_job(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, job: &Job) -> Result<()> {
    sqlx::query("INSERT INTO jobs (id, kind, resource_id, payload, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(&job.id)
        .bind(&job.kind)
        .bind(&job.resource_id)
        .bind(&job.payload)
        .bind(&job.state)
        .bind(&job.created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(DbError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteRefused {
    HasSnapshots(i64),
    Status,
}
