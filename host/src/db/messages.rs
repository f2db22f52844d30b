//! Cinder's user messages: why an asynchronous request failed.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

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
    pub created_at: String,
    pub expires_at: String,
}

impl Message {
    fn from_row(r: &SqliteRow) -> Result<Self> {
        Ok(Message {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            request_id: r.try_get("request_id")?,
            resource_type: r.try_get("resource_type")?,
            resource_uuid: r.try_get("resource_uuid")?,
            event_id: r.try_get("event_id")?,
            message_level: r.try_get("message_level")?,
            user_message: r.try_get("user_message")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    }
}

/// The message list (filters, sorting and paging from 3.5).
pub const MESSAGE_LIST: Listing = Listing {
    from: "messages msg",
    columns: "msg.*",
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

    pub async fn list_messages(&self, q: &ListQuery) -> Result<Vec<Message>, ListError> {
        let rows = MESSAGE_LIST.fetch(self, q).await?;
        Ok(rows.iter().map(Message::from_row).collect::<Result<_>>()?)
    }

    pub async fn get_message(&self, id: &str) -> Result<Option<Message>> {
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1")
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
