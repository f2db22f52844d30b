//! Volume attachments (Cinder's `volume_attachment`): each moves from `reserved` through
//! `attaching` to `attached`, and is soft-deleted as `detached`. Every change that also
//! moves the volume happens in one transaction with it. The connector and the connection
//! info are stored in the host's own serde form ([`crate::driver`]).

use std::collections::HashMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::list::{ListError, ListQuery, Listing, Match};
use super::{Db, DbError, Result, in_list, parse_column, time};
use crate::driver::{ConnectionInfo, Connector};
use crate::volume::status::{AttachStatus, VolumeStatus, status_for_attachments};

#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub id: String,
    pub volume_id: String,
    pub project_id: String,
    pub instance_uuid: Option<String>,
    pub attached_host: Option<String>,
    pub mountpoint: Option<String>,
    /// `rw` or `ro`.
    pub attach_mode: String,
    pub attach_status: AttachStatus,
    /// The connector the connection was made for.
    pub connector: Option<Connector>,
    /// The connection info the client was handed.
    pub connection_info: Option<ConnectionInfo>,
    pub attach_time: Option<String>,
    pub detach_time: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Default for AttachmentRow {
    fn default() -> Self {
        AttachmentRow {
            id: String::new(),
            volume_id: String::new(),
            project_id: String::new(),
            instance_uuid: None,
            attached_host: None,
            mountpoint: None,
            attach_mode: "rw".into(),
            attach_status: AttachStatus::Reserved,
            connector: None,
            connection_info: None,
            attach_time: None,
            detach_time: None,
            created_at: String::new(),
            updated_at: None,
        }
    }
}

/// A JSON column read into a host type; a row written by an older host that does not
/// read is reported, not silently dropped.
fn json_column<T: serde::de::DeserializeOwned>(r: &SqliteRow, column: &str) -> Result<Option<T>> {
    let Some(text): Option<String> = r.try_get(column)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DbError::Corrupt {
            table: "volume_attachments",
            id: r.try_get("id").unwrap_or_default(),
            message: format!("{column}: {e}"),
        })
}

fn to_json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).expect("driver types serialise"))
}

impl AttachmentRow {
    fn from_row(r: &SqliteRow) -> Result<Self> {
        Ok(AttachmentRow {
            id: r.try_get("id")?,
            volume_id: r.try_get("volume_id")?,
            project_id: r.try_get("project_id")?,
            instance_uuid: r.try_get("instance_uuid")?,
            attached_host: r.try_get("attached_host")?,
            mountpoint: r.try_get("mountpoint")?,
            attach_mode: r.try_get("attach_mode")?,
            attach_status: parse_column(r, "volume_attachments", "attach_status")?,
            connector: json_column(r, "connector")?,
            connection_info: json_column(r, "connection_info")?,
            attach_time: r.try_get("attach_time")?,
            detach_time: r.try_get("detach_time")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// The attachment list (3.27).
pub const ATTACHMENT_LIST: Listing = Listing {
    from: "volume_attachments a",
    columns: "a.*",
    alias: "a",
    live: "a.deleted = 0",
    filters: &[
        ("volume_id", Match::Equal("a.volume_id")),
        ("instance_id", Match::Equal("a.instance_uuid")),
        ("instance_uuid", Match::Equal("a.instance_uuid")),
        ("attach_status", Match::Equal("a.attach_status")),
        ("status", Match::Equal("a.attach_status")),
    ],
    sort_keys: &[
        ("created_at", "a.created_at"),
        ("updated_at", "COALESCE(a.updated_at, '')"),
        ("id", "a.id"),
        ("volume_id", "a.volume_id"),
        ("attach_status", "a.attach_status"),
    ],
};

impl Db {
    /// Inserts `a` and moves its volume from one of `from` to `to`, atomically; false
    /// (and nothing written) when the volume was not in one of `from`.
    pub async fn reserve_attachment(
        &self,
        a: &AttachmentRow,
        from: &[VolumeStatus],
        to: VolumeStatus,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "UPDATE volumes SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({})",
            in_list(4, from.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(time::now())
            .bind(&a.volume_id);
        for f in from {
            q = q.bind(f.as_str());
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO volume_attachments (id, volume_id, project_id, instance_uuid, attached_host, mountpoint, \
             attach_mode, attach_status, connector, connection_info, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&a.id)
        .bind(&a.volume_id)
        .bind(&a.project_id)
        .bind(&a.instance_uuid)
        .bind(&a.attached_host)
        .bind(&a.mountpoint)
        .bind(&a.attach_mode)
        .bind(a.attach_status.as_str())
        .bind(to_json(&a.connector))
        .bind(to_json(&a.connection_info))
        .bind(&a.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_attachment(&self, id: &str) -> Result<Option<AttachmentRow>> {
        let row = sqlx::query("SELECT * FROM volume_attachments WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| AttachmentRow::from_row(&r)).transpose()
    }

    /// A page of attachments.
    pub async fn list_attachments(&self, q: &ListQuery) -> Result<Vec<AttachmentRow>, ListError> {
        let rows = ATTACHMENT_LIST.fetch(self, q).await?;
        Ok(rows
            .iter()
            .map(AttachmentRow::from_row)
            .collect::<Result<_>>()?)
    }

    /// Every live attachment of every volume that has a connector: what start-up must
    /// re-export.
    pub async fn connected_attachments(&self) -> Result<Vec<AttachmentRow>> {
        let rows = sqlx::query(
            "SELECT * FROM volume_attachments WHERE deleted = 0 AND connector IS NOT NULL \
             AND attach_status IN ('attaching', 'attached') ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AttachmentRow::from_row).collect()
    }

    /// A volume's live attachments, oldest first.
    pub async fn attachments_of(&self, volume_id: &str) -> Result<Vec<AttachmentRow>> {
        let rows = sqlx::query(
            "SELECT * FROM volume_attachments WHERE deleted = 0 AND volume_id = $1 ORDER BY created_at, id",
        )
        .bind(volume_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AttachmentRow::from_row).collect()
    }

    /// The live attachments of many volumes, in one query (the ids go as one JSON array,
    /// whatever their number).
    pub(super) async fn attachments_of_all(
        &self,
        volume_ids: &[&str],
    ) -> Result<HashMap<String, Vec<AttachmentRow>>> {
        let q = sqlx::query(
            "SELECT * FROM volume_attachments WHERE deleted = 0 \
             AND volume_id IN (SELECT value FROM json_each($1)) ORDER BY created_at, id",
        )
        .bind(serde_json::to_string(volume_ids).expect("ids serialise"));
        let mut out: HashMap<String, Vec<AttachmentRow>> = HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            let a = AttachmentRow::from_row(&r)?;
            out.entry(a.volume_id.clone()).or_default().push(a);
        }
        Ok(out)
    }

    /// Records a connection made for an attachment: its connector, the info handed out,
    /// and `attaching`; the volume goes to `attaching` unless it is already in use.
    pub async fn attachment_connected(
        &self,
        a: &AttachmentRow,
        connector: &Connector,
        connection_info: &ConnectionInfo,
    ) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volume_attachments SET connector = $1, connection_info = $2, attached_host = COALESCE($3, attached_host), \
             mountpoint = COALESCE($4, mountpoint), attach_status = 'attaching', updated_at = $5 \
             WHERE id = $6 AND deleted = 0 AND attach_status IN ('reserved', 'attaching')",
        )
        .bind(to_json(&Some(connector)))
        .bind(to_json(&Some(connection_info)))
        .bind(&a.attached_host)
        .bind(&a.mountpoint)
        .bind(&now)
        .bind(&a.id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE volumes SET status = 'attaching', attach_status = 'attaching', updated_at = $1 \
             WHERE id = $2 AND status IN ('available', 'reserved', 'attaching')",
        )
        .bind(&now)
        .bind(&a.volume_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `attaching` (or `reserved`) → `attached`, and the volume → `in-use`.
    pub async fn complete_attachment(
        &self,
        id: &str,
        volume_id: &str,
        instance_uuid: Option<&str>,
        host: Option<&str>,
        mountpoint: Option<&str>,
    ) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volume_attachments SET attach_status = 'attached', attach_time = $1, updated_at = $1, \
             instance_uuid = COALESCE($2, instance_uuid), attached_host = COALESCE($3, attached_host), \
             mountpoint = COALESCE($4, mountpoint) \
             WHERE id = $5 AND deleted = 0 AND attach_status IN ('reserved', 'attaching', 'attached')",
        )
        .bind(&now)
        .bind(instance_uuid)
        .bind(host)
        .bind(mountpoint)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE volumes SET status = 'in-use', attach_status = 'attached', updated_at = $1 WHERE id = $2 AND deleted = 0",
        )
        .bind(&now)
        .bind(volume_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends an attachment (soft-deleted as `detached`) and sets the volume's status from
    /// what remains.
    pub async fn remove_attachment(&self, id: &str, volume_id: &str) -> Result<()> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE volume_attachments SET attach_status = 'detached', detach_time = $1, updated_at = $1, deleted = 1 \
             WHERE id = $2 AND deleted = 0",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let remaining: Vec<String> = sqlx::query_scalar(
            "SELECT attach_status FROM volume_attachments WHERE volume_id = $1 AND deleted = 0",
        )
        .bind(volume_id)
        .fetch_all(&mut *tx)
        .await?;
        let remaining = remaining
            .iter()
            .map(|s| {
                s.parse::<AttachStatus>().map_err(|e| DbError::Corrupt {
                    table: "volume_attachments",
                    id: volume_id.to_string(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (status, attach_status) = status_for_attachments(&remaining);
        let sql = format!(
            "UPDATE volumes SET status = $1, attach_status = $2, updated_at = $3 WHERE id = $4 AND deleted = 0 \
             AND status IN ({})",
            in_list(5, VolumeStatus::DETACHABLE.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(attach_status.as_str())
            .bind(&now)
            .bind(volume_id);
        for s in VolumeStatus::DETACHABLE {
            q = q.bind(s.as_str());
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
