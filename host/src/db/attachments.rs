//! Volume attachments (Cinder's `volume_attachment`): each moves from `reserved` through
//! `attaching` to `attached`, and is soft-deleted as `detached`. Every change that also
//! moves the volume happens in one transaction with it. The connector and the connection
//! info are stored in the host's own serde form ([`crate::driver`]).

use serde::Deserialize;

use super::list::{ListError, ListQuery, Listing, Match};
use super::{Db, DbError, Result, in_list, time};
use crate::driver::{ConnectionInfo, Connector};
use crate::volume::status::{AttachStatus, VolumeStatus, status_for_attachments};

/// An attachment as the store reads it (see [`ATTACHMENT_JSON`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "AttachmentJson")]
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

/// An attachment row as JSON: `[[columns…], connector, connection_info]`, the last two
/// as stored (the host's serde form, or `null`), spliced in unparsed.
pub(super) const ATTACHMENT_JSON: &str = attachment_json!();

/// The columns of [`ATTACHMENT_JSON`], in order.
#[derive(Deserialize)]
struct AttachmentColumns {
    id: String,
    volume_id: String,
    project_id: String,
    instance_uuid: Option<String>,
    attached_host: Option<String>,
    mountpoint: Option<String>,
    attach_mode: String,
    attach_status: AttachStatus,
    attach_time: Option<String>,
    detach_time: Option<String>,
    created_at: String,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct AttachmentJson(AttachmentColumns, Option<Connector>, Option<ConnectionInfo>);

impl From<AttachmentJson> for AttachmentRow {
    fn from(AttachmentJson(c, connector, connection_info): AttachmentJson) -> Self {
        AttachmentRow {
            id: c.id,
            volume_id: c.volume_id,
            project_id: c.project_id,
            instance_uuid: c.instance_uuid,
            attached_host: c.attached_host,
            mountpoint: c.mountpoint,
            attach_mode: c.attach_mode,
            attach_status: c.attach_status,
            connector,
            connection_info,
            attach_time: c.attach_time,
            detach_time: c.detach_time,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

fn to_json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).expect("driver types serialise"))
}

/// The attachment list (3.27).
pub const ATTACHMENT_LIST: Listing = Listing {
    from: "volume_attachments a",
    columns: ATTACHMENT_JSON,
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

/// Rows of [`ATTACHMENT_JSON`] (one, or an array of them).
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt {
        table: "volume_attachments",
        id: String::new(),
        message: e.to_string(),
    })
}

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
        let text: Option<String> = sqlx::query_scalar(&self.dialect.sql(&format!(
            "SELECT {ATTACHMENT_JSON} FROM volume_attachments a WHERE a.id = $1 AND a.deleted = 0"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        text.map(|t| from_json(&t)).transpose()
    }

    /// Attachments that meet `condition` (on `a`), oldest first, as one JSON text.
    async fn attachments_where(
        &self,
        condition: &str,
        bind: Option<&str>,
    ) -> Result<Vec<AttachmentRow>> {
        let sql = format!(
            "SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM \
             (SELECT {ATTACHMENT_JSON} AS j FROM volume_attachments a WHERE a.deleted = 0 AND {condition} \
              ORDER BY a.created_at, a.id) AS page"
        );
        let sql = self.dialect.sql(&sql);
        let mut q = sqlx::query_scalar(&sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        let text: String = q.fetch_one(&self.pool).await?;
        from_json(&text)
    }

    /// A page of attachments.
    pub async fn list_attachments(&self, q: &ListQuery) -> Result<Vec<AttachmentRow>, ListError> {
        ATTACHMENT_LIST.fetch_json(self, q).await
    }

    /// Every live attachment of every volume that has a connector: what start-up must
    /// re-export.
    pub async fn connected_attachments(&self) -> Result<Vec<AttachmentRow>> {
        self.attachments_where(
            "a.connector IS NOT NULL AND a.attach_status IN ('attaching', 'attached')",
            None,
        )
        .await
    }

    /// A volume's live attachments, oldest first.
    pub async fn attachments_of(&self, volume_id: &str) -> Result<Vec<AttachmentRow>> {
        self.attachments_where("a.volume_id = $1", Some(volume_id))
            .await
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

    /// `attaching` (or `reserved`) → `attached`, and the volume → `in-use` with the
    /// attachment's mode as its `attached_mode` admin metadata, as Cinder records it.
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
        sqlx::query(&format!(
            "UPDATE volumes SET status = 'in-use', attach_status = 'attached', updated_at = $1, \
             admin_metadata = {} WHERE id = $2 AND deleted = 0",
            self.dialect.json_set_text(
                "admin_metadata",
                "attached_mode",
                "(SELECT attach_mode FROM volume_attachments WHERE id = $3)",
            )
        ))
        .bind(&now)
        .bind(volume_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends an attachment (soft-deleted as `detached`) and sets the volume's status from
    /// what remains; the last one takes the `attached_mode` admin metadata with it.
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
        if remaining.is_empty() {
            sqlx::query(&format!(
                "UPDATE volumes SET admin_metadata = {} WHERE id = $1",
                self.dialect.json_remove("admin_metadata", "attached_mode")
            ))
            .bind(volume_id)
            .execute(&mut *tx)
            .await?;
        }
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
