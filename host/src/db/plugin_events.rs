//! What happened to each backend's driver: swaps, rollbacks, refusals, probations passed.

use super::DbRow;
use sqlx::Row;

use super::{Db, Result, time};

/// Something that happened to a backend's driver.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginEvent {
    pub id: String,
    pub backend: String,
    /// `swapped`, `rolled-back`, `refused`, `probation-passed`.
    pub kind: String,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    pub reason: Option<String>,
    pub took_ms: Option<i64>,
    /// The host it happened on.
    pub host: Option<String>,
    pub created_at: String,
}

impl PluginEvent {
    pub fn new(
        backend: &str,
        kind: &str,
        from: Option<&str>,
        to: Option<&str>,
        reason: Option<String>,
        took_ms: Option<i64>,
    ) -> Self {
        PluginEvent {
            id: uuid::Uuid::new_v4().to_string(),
            backend: backend.to_string(),
            kind: kind.to_string(),
            from_version: from.map(str::to_string),
            to_version: to.map(str::to_string),
            reason,
            took_ms,
            host: None,
            created_at: time::now(),
        }
    }

    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(PluginEvent {
            id: r.try_get("id")?,
            backend: r.try_get("backend")?,
            kind: r.try_get("kind")?,
            from_version: r.try_get("from_version")?,
            to_version: r.try_get("to_version")?,
            reason: r.try_get("reason")?,
            took_ms: r.try_get("took_ms")?,
            host: r.try_get("host")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

impl Db {
    pub async fn insert_plugin_event(&self, e: &PluginEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_events (id, backend, kind, from_version, to_version, reason, took_ms, created_at, host) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.id)
        .bind(&e.backend)
        .bind(&e.kind)
        .bind(&e.from_version)
        .bind(&e.to_version)
        .bind(&e.reason)
        .bind(e.took_ms)
        .bind(&e.created_at)
        .bind(&e.host)
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
        rows.iter().map(PluginEvent::from_row).collect()
    }
}
