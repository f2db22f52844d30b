//! Volume attachments (Cinder's `volume_attachment`): each moves from `reserved` through
//! `attaching` to `attached`, and is soft-deleted as `detached`. Every change that also
//! moves the volume happens in one transaction with it.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Db, Result, in_list, time};

#[derive(Debug, Clone, Default)]
pub struct AttachmentRow {
    pub id: String,
    pub volume_id: String,
    pub project_id: String,
    pub instance_uuid: Option<String>,
    pub attached_host: Option<String>,
    pub mountpoint: Option<String>,
    pub attach_mode: String,
    pub attach_status: String,
    /// The connector the client sent, as JSON.
    pub connector: Option<String>,
    /// The connection info it was handed, as JSON.
    pub connection_info: Option<String>,
    pub attach_time: Option<String>,
    pub detach_time: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl AttachmentRow {
    fn from_row(r: &SqliteRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(AttachmentRow {
            id: r.try_get("id")?,
            volume_id: r.try_get("volume_id")?,
            project_id: r.try_get("project_id")?,
            instance_uuid: r.try_get("instance_uuid")?,
            attached_host: r.try_get("attached_host")?,
            mountpoint: r.try_get("mountpoint")?,
            attach_mode: r.try_get("attach_mode")?,
            attach_status: r.try_get("attach_status")?,
            connector: r.try_get("connector")?,
            connection_info: r.try_get("connection_info")?,
            attach_time: r.try_get("attach_time")?,
            detach_time: r.try_get("detach_time")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// What the volume's status becomes given the attachments it still has.
fn volume_status_for(remaining: &[String]) -> (&'static str, &'static str) {
    if remaining
        .iter()
        .any(|s| s == "attached" || s == "detaching")
    {
        ("in-use", "attached")
    } else if remaining.iter().any(|s| s == "attaching") {
        ("attaching", "attaching")
    } else if remaining.is_empty() {
        ("available", "detached")
    } else {
        ("reserved", "detached")
    }
}

impl Db {
    /// Inserts `a` and moves its volume from one of `from` to `to`, atomically; false
    /// (and nothing written) when the volume was not in one of `from`.
    pub async fn reserve_attachment(
        &self,
        a: &AttachmentRow,
        from: &[&str],
        to: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "UPDATE volumes SET status = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status IN ({})",
            in_list(4, from.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(to)
            .bind(time::now())
            .bind(&a.volume_id);
        for f in from {
            q = q.bind(*f);
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
        .bind(&a.attach_status)
        .bind(&a.connector)
        .bind(&a.connection_info)
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
        Ok(row.map(|r| AttachmentRow::from_row(&r)).transpose()?)
    }

    /// Live attachments, of one project (or all, for `None`) and optionally one volume,
    /// oldest first.
    pub async fn list_attachments(
        &self,
        project_id: Option<&str>,
        volume_id: Option<&str>,
    ) -> Result<Vec<AttachmentRow>> {
        let rows = sqlx::query(
            "SELECT * FROM volume_attachments WHERE deleted = 0 \
             AND ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR volume_id = $2) \
             ORDER BY created_at, id",
        )
        .bind(project_id)
        .bind(volume_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(AttachmentRow::from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Records a connection made for an attachment: its connector, the info handed out,
    /// and `attaching`; the volume goes to `attaching` unless it is already in use.
    pub async fn attachment_connected(
        &self,
        a: &AttachmentRow,
        connector: &str,
        connection_info: &str,
    ) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volume_attachments SET connector = $1, connection_info = $2, attached_host = COALESCE($3, attached_host), \
             mountpoint = COALESCE($4, mountpoint), attach_status = 'attaching', updated_at = $5 \
             WHERE id = $6 AND deleted = 0 AND attach_status IN ('reserved', 'attaching')",
        )
        .bind(connector)
        .bind(connection_info)
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
    /// what remains. Returns the attachments that remain live.
    pub async fn remove_attachment(&self, id: &str, volume_id: &str) -> Result<Vec<String>> {
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
        let (status, attach_status) = volume_status_for(&remaining);
        sqlx::query(
            "UPDATE volumes SET status = $1, attach_status = $2, updated_at = $3 WHERE id = $4 AND deleted = 0 \
             AND status IN ('reserved', 'attaching', 'in-use', 'detaching', 'error_attaching', 'error_detaching')",
        )
        .bind(status)
        .bind(attach_status)
        .bind(&now)
        .bind(volume_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(remaining)
    }

    /// Records a new provider location / auth from a driver's export.
    pub async fn set_volume_provider(
        &self,
        id: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE volumes SET provider_location = $1, provider_auth = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(provider_location)
        .bind(provider_auth)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_status_follows_what_remains() {
        let s =
            |v: &[&str]| volume_status_for(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), ("available", "detached"));
        assert_eq!(s(&["reserved"]), ("reserved", "detached"));
        assert_eq!(s(&["reserved", "attaching"]), ("attaching", "attaching"));
        assert_eq!(s(&["attaching", "attached"]), ("in-use", "attached"));
    }
}
