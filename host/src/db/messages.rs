//! Cinder's user messages: why an asynchronous request failed. `user_message` is what the
//! tenant reads (Cinder's words); `internal_detail` the driver's text, paths and command
//! lines behind it, for administrators only.

use super::DbRow;
use sqlx::Row;

use super::list::{ListError, ListQuery, Listing, Match};
use super::{Db, Result};

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub project_id: String,
    pub request_id: Option<String>,
    pub resource_type: String,
    pub resource_uuid: Option<String>,
    pub event_id: String,
    pub message_level: String,
    pub user_message: String,
    /// What the log says about the failure; never shown in the v3 API.
    pub internal_detail: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

impl Message {
    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(Message {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            request_id: r.try_get("request_id")?,
            resource_type: r.try_get("resource_type")?,
            resource_uuid: r.try_get("resource_uuid")?,
            event_id: r.try_get("event_id")?,
            message_level: r.try_get("message_level")?,
            user_message: r.try_get("user_message")?,
            internal_detail: r.try_get("internal_detail")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    }
}

/// The columns a [`Message`] is read from, named: a `SELECT *` prepared on a pooled
/// connection that has not yet seen a migration's new column would step with one column
/// more than it was prepared with.
const COLUMNS: &str = "id, project_id, request_id, resource_type, resource_uuid, event_id, \
     message_level, user_message, internal_detail, created_at, expires_at";

/// The message list (filters, sorting and paging from 3.5).
pub const MESSAGE_LIST: Listing = Listing {
    from: "messages msg",
    columns: "msg.id, msg.project_id, msg.request_id, msg.resource_type, msg.resource_uuid, \
        msg.event_id, msg.message_level, msg.user_message, msg.internal_detail, \
        msg.created_at, msg.expires_at",
    alias: "msg",
    live: "1 = 1",
    filters: &[
        ("resource_uuid", Match::Equal("msg.resource_uuid")),
        ("resource_type", Match::Equal("msg.resource_type")),
        ("event_id", Match::Equal("msg.event_id")),
        ("message_level", Match::Equal("msg.message_level")),
        ("request_id", Match::Equal("msg.request_id")),
    ],
    sort_keys: &[
        ("created_at", "msg.created_at"),
        ("id", "msg.id"),
        ("resource_uuid", "COALESCE(msg.resource_uuid, '')"),
        ("resource_type", "msg.resource_type"),
        ("event_id", "msg.event_id"),
        ("message_level", "msg.message_level"),
        ("request_id", "COALESCE(msg.request_id, '')"),
        ("guaranteed_until", "msg.expires_at"),
    ],
};

impl Db {
    pub async fn insert_message(&self, m: &Message) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO messages ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&m.id)
        .bind(&m.project_id)
        .bind(&m.request_id)
        .bind(&m.resource_type)
        .bind(&m.resource_uuid)
        .bind(&m.event_id)
        .bind(&m.message_level)
        .bind(&m.user_message)
        .bind(&m.internal_detail)
        .bind(&m.created_at)
        .bind(&m.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_messages(&self, q: &ListQuery) -> Result<Vec<Message>, ListError> {
        let rows = MESSAGE_LIST.fetch(self, q).await?;
        Ok(rows.iter().map(Message::from_row).collect::<Result<_>>()?)
    }

    pub async fn get_message(&self, id: &str) -> Result<Option<Message>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM messages WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Message::from_row(&r)).transpose()
    }

    pub async fn delete_message(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM messages WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// Messages an earlier host wrote told tenants the driver's words: after the migration
    /// they tell Cinder's, under Cinder's event ids, and keep the old words for
    /// administrators.
    #[tokio::test]
    async fn earlier_messages_are_reworded_and_their_text_kept_for_administrators() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut c) =
            super::super::testing::earlier_database(dir.path(), "0006_message_details").await;
        let leaky = "create snapshot: driver error: `qemu-img convert -f raw -O raw /srv/share/volume-v /srv/share/snapshot-s` failed";
        for (id, resource_type, event_id, text) in [
            ("m1", "SNAPSHOT", "VOLUME_SNAPSHOT_004_001", leaky),
            (
                "m2",
                "VOLUME",
                "VOLUME_VOLUME_001_003",
                "schedule allocate volume: No valid backend was found. h@nfs#localhost:/srv/share: …",
            ),
            ("m3", "VOLUME", "VOLUME_VOLUME_006_001", "extend volume: …"),
            (
                "m4",
                "SNAPSHOT",
                "VOLUME_VOLUME_008_001",
                "the service could not run …",
            ),
        ] {
            sqlx::query(
                "INSERT INTO messages (id, project_id, request_id, resource_type, resource_uuid, \
                 event_id, message_level, user_message, created_at, expires_at) \
                 VALUES ($1, 'p', 'req-1', $2, 'r', $3, 'ERROR', $4, 't', 'u')",
            )
            .bind(id)
            .bind(resource_type)
            .bind(event_id)
            .bind(text)
            .execute(&mut c)
            .await
            .unwrap();
        }
        c.close().await.unwrap();

        let db = Db::open(&url).await.unwrap();
        let m1 = db.get_message("m1").await.unwrap().unwrap();
        assert_eq!(m1.resource_type, "VOLUME_SNAPSHOT");
        assert_eq!(m1.event_id, "VOLUME_VOLUME_SNAPSHOT_009_013");
        assert_eq!(
            m1.user_message,
            "create snapshot:Snapshot failed to create."
        );
        assert_eq!(m1.internal_detail.as_deref(), Some(leaky));
        let m2 = db.get_message("m2").await.unwrap().unwrap();
        assert_eq!(m2.event_id, "VOLUME_VOLUME_001_003");
        assert_eq!(
            m2.user_message,
            "schedule allocate volume:Could not find any available weighted backend."
        );
        let m3 = db.get_message("m3").await.unwrap().unwrap();
        assert_eq!(m3.event_id, "VOLUME_VOLUME_007_010");
        assert_eq!(
            m3.user_message,
            "extend volume:Volume Driver failed to extend volume."
        );
        let m4 = db.get_message("m4").await.unwrap().unwrap();
        assert_eq!(m4.event_id, "VOLUME_VOLUME_SNAPSHOT_900_001");
        assert_eq!(m4.user_message, "unknown action:An unknown error occurred.");
    }
}
