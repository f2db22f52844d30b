//! The state store. SQLite (one file) is the embedded default. Queries are plain SQL with
//! `$N` parameters, except where a page or a volume is rendered as JSON text in the query
//! (`json_array`, `group_concat`, `json_each`: SQLite's spelling; PostgreSQL has
//! `json_build_array`, `string_agg` and `jsonb_each` for the same).
//!
//! One module per entity (volumes, snapshots, attachments, volume types, QoS specs, jobs,
//! messages, plugin events, transfers, services, quotas, tokens); what volumes and snapshots share —
//! conditional status changes, soft deletes, pages of a list — is written once here and in
//! [`list`].
//!
//! Status changes only by conditional update (`… WHERE id = $1 AND status IN (…)`), so two
//! racing requests cannot both win.

/// An attachment row as JSON, `[[columns…], connector, connection_info]` (the last two as
/// stored, spliced in unparsed): read alone, in a list, and inside a volume's row.
macro_rules! attachment_json {
    () => {
        "'[' || json_array(a.id, a.volume_id, a.project_id, a.instance_uuid, a.attached_host, \
         a.mountpoint, a.attach_mode, a.attach_status, a.attach_time, a.detach_time, \
         a.created_at, a.updated_at) || ',' || COALESCE(a.connector, 'null') || ',' || \
         COALESCE(a.connection_info, 'null') || ']'"
    };
}

mod attachments;
mod backend_stats;
mod backups;
mod cluster_swaps;
mod dialect;
mod images;
mod jobs;
pub mod list;
mod messages;
mod metadata;
mod moves;
mod plugin_events;
mod qos_specs;
mod quotas;
mod services;
mod snapshots;
pub mod time;
mod tokens;
mod transfers;
mod volume_types;
mod volumes;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row};

pub use dialect::{Dialect, redact};
pub use images::CacheEntry;

/// A row as either store returns it.
pub type DbRow = sqlx::any::AnyRow;
/// A connection (or a transaction, dereferenced) to either store.
pub type Conn = AnyConnection;
/// A write transaction on either store (see [`Db::write_tx`]).
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

pub use attachments::{ATTACHMENT_LIST, AttachmentRow};
pub use backend_stats::{Consumed, StoredStats};
pub use backups::{
    BACKUP_LIST, BackupCreateRefused, BackupDeleteRefused, BackupRow, RestoreRefused, RestoreTarget,
};
pub use cluster_swaps::{ClusterSwap, SwapHost};
pub use jobs::{JOBS_CHANNEL, JobRow};
pub use list::{ListError, ListQuery, Listing, Page, Scope, SortDir};
pub use messages::{MESSAGE_LIST, Message};
pub use metadata::MetadataOf;
pub use moves::{MigrationDone, MoveRefused};
pub use plugin_events::PluginEvent;
pub use qos_specs::{QosAssociated, QosConsumer, QosDeleted, QosKeysDeleted, QosSpecs};
pub use quotas::{
    BelowUsage, GLOBAL_RESOURCES, OverQuota, QuotaDefaults, QuotaKey, QuotaResource, QuotaValue,
};
pub use services::ServiceRow;
pub use snapshots::SnapshotRefused;
pub use snapshots::{SNAPSHOT_LIST, SnapshotRow};
pub use tokens::TokenRow;
pub use transfers::{AcceptRefused, OfferRefused, TransferRow};
pub use volume_types::{ProjectDefaultType, TypeVisibility, VolumeType};
pub use volumes::{
    CreateRefused, DeleteRefused, ExtendRefused, Reading, RevertRefused, SourceRefused,
    VOLUME_LIST, VolumeRow,
};

/// One migration: its name and its SQL for each store. Most are one text both accept; a
/// migration whose SQL cannot be shared (SQLite's triggers, its JSON aggregates) has its
/// PostgreSQL text under `migrations/postgres/` with the same name.
struct Migration {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            sqlite: include_str!(concat!("../migrations/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/", $name, ".sql")),
        }
    };
    ($name:literal, postgres) => {
        Migration {
            name: $name,
            sqlite: include_str!(concat!("../migrations/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

/// Migrations in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[Migration] = &[
    migration!("0001_initial"),
    migration!("0002_plugin_events"),
    migration!("0003_attachments"),
    migration!("0004_lists", postgres),
    migration!("0005_revisions", postgres),
    migration!("0006_message_details"),
    migration!("0007_quotas"),
    migration!("0008_type_access_qos"),
    migration!("0009_transfers_services"),
    migration!("0010_admin_and_image_metadata"),
    migration!("0011_tokens"),
    migration!("0012_backups"),
    migration!("0013_hosts"),
    migration!("0014_migrations"),
    migration!("0015_images"),
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(sqlx::Error),
    /// Text the store cannot hold (PostgreSQL refuses a NUL character).
    #[error("{0}")]
    Unstorable(String),
    #[error("{0}")]
    Conflict(String),
    /// A row holds a value this host cannot read (a status it does not know, say).
    #[error("database row {table}/{id}: {message}")]
    Corrupt {
        table: &'static str,
        id: String,
        message: String,
    },
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        // 22021: character not in repertoire; 22P05: untranslatable character.
        if let sqlx::Error::Database(d) = &e
            && matches!(d.code().as_deref(), Some("22021" | "22P05"))
        {
            return DbError::Unstorable(
                "Invalid input: text may not contain a NUL character (\\u0000).".into(),
            );
        }
        DbError::Sqlx(e)
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    /// The URL it was opened with, for a PostgreSQL listener's own connection.
    url: std::sync::Arc<str>,
    /// The limits of a project that neither it nor the `default` quota class sets.
    quota_defaults: std::sync::Arc<QuotaDefaults>,
}

/// `$a, $b, …` placeholders for `n` values, numbered from `first`.
fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A typed column (a status) read back from its text.
fn parse_column<T: FromStr>(r: &DbRow, table: &'static str, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = r.try_get(column)?;
    text.parse().map_err(|e: T::Err| DbError::Corrupt {
        table,
        id: r.try_get("id").unwrap_or_default(),
        message: format!("{column}: {e}"),
    })
}

/// The tables whose rows have a status, a soft delete and a job: volumes and snapshots.
#[derive(Clone, Copy, Debug)]
enum Resource {
    Volumes,
    Snapshots,
}

impl Resource {
    fn table(self) -> &'static str {
        match self {
            Resource::Volumes => "volumes",
            Resource::Snapshots => "snapshots",
        }
    }
}

/// Moves a live row of `resource` from one of `from` to `to` on `c` (the transaction that
/// records more with it); false (nothing written) when it was not in one of `from`. A
/// volume that leaves `extending` other than by its extend finishing gives back the
/// gigabytes the extend reserved, in the same transaction.
async fn move_status(
    c: &mut Conn,
    resource: Resource,
    id: &str,
    from: &[&str],
    to: &str,
) -> Result<bool> {
    // A volume that is moving (a migration or a retype under way) starts nothing else:
    // the migration ends by pointing the volume at its copy.
    let settled = match resource {
        Resource::Volumes => format!(" AND {}", moves::SETTLED_MIGRATION),
        Resource::Snapshots => String::new(),
    };
    let sql = format!(
        "UPDATE {} SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({}){settled}",
        resource.table(),
        in_list(4, from.len())
    );
    let mut q = sqlx::query(&sql).bind(to).bind(time::now()).bind(id);
    for f in from {
        q = q.bind(*f);
    }
    if q.execute(&mut *c).await?.rows_affected() != 1 {
        return Ok(false);
    }
    if matches!(resource, Resource::Volumes) && from.contains(&"extending") && to != "extending" {
        quotas::release_reservation(c, id).await?;
    }
    Ok(true)
}

/// Applies the migrations not yet recorded in `schema_migrations`, each in its own
/// write transaction. On PostgreSQL, hosts starting together take turns: the first
/// migrates under an advisory lock, the others find the work done.
async fn migrate(c: &mut Conn, dialect: Dialect) -> Result<()> {
    if dialect == Dialect::Postgres {
        c.execute(dialect::MIGRATION_LOCK).await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        .execute(&mut *c)
        .await?;
    for m in MIGRATIONS {
        let done: Option<String> =
            sqlx::query_scalar("SELECT name FROM schema_migrations WHERE name = $1")
                .bind(m.name)
                .fetch_optional(&mut *c)
                .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = c.begin_with(dialect.begin_write()).await?;
        // Each store parses the script itself: comments, and triggers whose bodies hold `;`.
        let sql = match dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)")
            .bind(m.name)
            .bind(time::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(migration = m.name, "applied database migration");
    }
    Ok(())
}

impl Db {
    /// Opens (creating if needed) and migrates the database: `sqlite://FILE` or
    /// `postgres://USER@HOST:PORT/NAME`.
    pub async fn open(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url)?;
        let url = dialect.connect_url(url);
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(
                tracing::log::LevelFilter::Warn,
                std::time::Duration::from_secs(1),
            );
        // Migrations run on a connection of their own, closed before the pool opens. A
        // pooled connection that had read the schema before a migration altered a table
        // would describe a `SELECT *` with the old columns (sqlx keeps the columns of a
        // statement's first prepare, SQLite re-prepares it with the new ones) and fail to
        // read its rows.
        let mut c = AnyConnection::connect_with(&options).await?;
        c.execute(dialect.session_setup()).await?;
        migrate(&mut c, dialect).await?;
        c.close().await?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |c, _| {
                Box::pin(async move {
                    c.execute(dialect.session_setup()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            dialect,
            url: url.into(),
            quota_defaults: Default::default(),
        })
    }

    /// The same database with the operator's quota defaults (`[quota]`) in place of
    /// Cinder's.
    pub fn with_quota_defaults(mut self, defaults: QuotaDefaults) -> Db {
        self.quota_defaults = std::sync::Arc::new(defaults);
        self
    }

    /// A write transaction. Write transactions run one at a time, on either store, so a
    /// check and the write it allows (a volume has no snapshots, then it is deleted) cannot
    /// interleave with another's. SQLite's default deferred transaction fails with
    /// "database is locked" when it upgrades from a read while another writer is active;
    /// `BEGIN IMMEDIATE` takes the write lock up front, and concurrent writers queue on the
    /// busy timeout instead. PostgreSQL's transaction takes one advisory lock, held to its
    /// commit, that every host's writers queue on.
    async fn write_tx(&self) -> Result<Tx> {
        let mut tx = self.pool.begin_with(self.dialect.begin_write()).await?;
        if let Some(lock) = self.dialect.write_lock() {
            tx.execute(lock).await?;
        }
        Ok(tx)
    }

    /// Moves a live row of `resource` from one of `from` to `to` and, when given, inserts
    /// `job` in the same transaction; false (and nothing written) when the row was not in
    /// one of `from`.
    async fn transition(
        &self,
        resource: Resource,
        id: &str,
        from: &[&str],
        to: &str,
        job: Option<&JobRow>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        if !move_status(&mut tx, resource, id, from, to).await? {
            return Ok(false);
        }
        if let Some(job) = job {
            job.insert(&mut tx, self.dialect).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Soft-deletes a row of `resource` that is `deleting` (Cinder keeps deleted rows).
    async fn finish_delete(
        &self,
        tx: &mut Tx,
        resource: Resource,
        id: &str,
        now: &str,
    ) -> Result<bool> {
        let res = sqlx::query(&format!(
            "UPDATE {} SET status = 'deleted', deleted = 1, deleted_at = $1, updated_at = $1 \
             WHERE id = $2 AND status = 'deleting'",
            resource.table()
        ))
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(res.rows_affected() == 1)
    }
}

/// Shared fixtures for the per-entity tests: a fresh database in a temp file.
#[cfg(test)]
pub(crate) mod testing {
    use sqlx::Connection;

    use crate::volume::status::{AttachStatus, VolumeStatus};

    /// A new volume row (`creating`, 1 GiB, no type, host or metadata) for the store's
    /// tests to insert; they change what they need with struct update syntax.
    pub fn volume(id: &str, project: &str) -> super::VolumeRow {
        super::VolumeRow {
            id: id.into(),
            project_id: project.into(),
            user_id: "u".into(),
            name: None,
            description: None,
            size: 1,
            status: VolumeStatus::Creating,
            attach_status: AttachStatus::Detached,
            availability_zone: "nova".into(),
            volume_type_id: None,
            volume_type_name: None,
            host: None,
            provider_location: None,
            provider_auth: None,
            snapshot_id: None,
            source_volid: None,
            bootable: false,
            multiattach: false,
            created_at: super::time::now(),
            updated_at: None,
            launched_at: None,
            revision: 0,
            migration_status: None,
            name_id: None,
            metadata: Default::default(),
            admin_metadata: Default::default(),
            image_metadata: Default::default(),
            attachments: Vec::new(),
        }
    }

    /// Inserts `v` (with a create job) and gives it `v.status`.
    pub async fn insert_volume(db: &super::Db, v: &super::VolumeRow) {
        let job = super::JobRow::new("create_volume", &v.id, "{}".into());
        db.insert_volume_with_job(v, &[], &job)
            .await
            .unwrap()
            .unwrap();
        db.reset_volume_status(&v.id, v.status, None).await.unwrap();
    }

    /// A fresh database: a SQLite file in a temp dir, or, when `ASHLAR_TEST_POSTGRES`
    /// names a PostgreSQL server (`scripts/test.sh` runs the store's tests a second time
    /// so), a new database on it.
    pub async fn db() -> (super::Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = match std::env::var("ASHLAR_TEST_POSTGRES") {
            Ok(server) => new_postgres_database(&server).await,
            Err(_) => format!("sqlite://{}", dir.path().join("t.db").display()),
        };
        (super::Db::open(&url).await.unwrap(), dir)
    }

    /// Creates a database with a new name on the PostgreSQL server `server` (a URL naming
    /// any database on it) and gives its URL.
    pub async fn new_postgres_database(server: &str) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        let (base, _) = server.rsplit_once('/').expect("a database URL has a path");
        format!("{base}/{name}")
    }

    /// A database as an earlier host left it: the migrations before `first_missing`
    /// applied and recorded. Its URL (for `Db::open`) and an open connection to plant rows.
    pub async fn earlier_database(
        dir: &std::path::Path,
        first_missing: &str,
    ) -> (String, sqlx::SqliteConnection) {
        let url = format!("sqlite://{}?mode=rwc", dir.join("old.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut c)
        .await
        .unwrap();
        let before = super::MIGRATIONS
            .iter()
            .position(|m| m.name == first_missing)
            .expect("a known migration");
        for m in &super::MIGRATIONS[..before] {
            sqlx::raw_sql(m.sqlite).execute(&mut c).await.unwrap();
            sqlx::query("INSERT INTO schema_migrations VALUES ($1, 'then')")
                .bind(m.name)
                .execute(&mut c)
                .await
                .unwrap();
        }
        (url, c)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// A database an earlier host wrote (migrations up to 0003, metadata in its own
    /// table) opens with its volumes' metadata and attachments intact.
    #[tokio::test]
    async fn an_earlier_database_migrates_with_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut c) = testing::earlier_database(dir.path(), "0004_lists").await;
        for statement in [
            "INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, created_at) \
             VALUES ('v1', 'p', 'u', 1, 'in-use', 'nova', '2026-01-01T00:00:00.000000')",
            "INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, created_at) \
             VALUES ('v2', 'p', 'u', 1, 'available', 'nova', '2026-01-02T00:00:00.000000')",
            "INSERT INTO volume_metadata VALUES ('v1', 'tier', 'gold'), ('v1', 'owner', 'o\"q')",
            "INSERT INTO volume_attachments (id, volume_id, project_id, attach_status, connector, created_at) \
             VALUES ('a1', 'v1', 'p', 'attached', '{\"host\": \"h1\", \"nqn\": null}', 't')",
        ] {
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();

        let db = Db::open(&url).await.unwrap();
        let v1 = db.get_volume("v1").await.unwrap().unwrap();
        assert_eq!(
            v1.metadata,
            std::collections::BTreeMap::from([
                ("owner".to_string(), "o\"q".to_string()),
                ("tier".to_string(), "gold".to_string())
            ])
        );
        assert_eq!(v1.attachments.len(), 1);
        assert_eq!(v1.attachments[0].connector.as_ref().unwrap().host, "h1");
        let v2 = db.get_volume("v2").await.unwrap().unwrap();
        assert!(v2.metadata.is_empty());
        let page = db.list_volumes(&ListQuery::project("p")).await.unwrap();
        assert_eq!(page.len(), 2);
    }
}
