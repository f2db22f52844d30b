//! Rows as the rest of the host sees them.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

#[derive(Debug, Clone)]
pub struct VolumeRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    pub status: String,
    pub attach_status: String,
    pub availability_zone: String,
    pub volume_type_id: Option<String>,
    /// `host@backend#pool` once scheduled.
    pub host: Option<String>,
    pub provider_location: Option<String>,
    pub provider_auth: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub bootable: bool,
    pub multiattach: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub launched_at: Option<String>,
    pub metadata: Vec<(String, String)>,
    /// Live attachments, oldest first.
    pub attachments: Vec<super::AttachmentRow>,
}

impl VolumeRow {
    pub fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(VolumeRow {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            user_id: r.try_get("user_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            size: r.try_get("size")?,
            status: r.try_get("status")?,
            attach_status: r.try_get("attach_status")?,
            availability_zone: r.try_get("availability_zone")?,
            volume_type_id: r.try_get("volume_type_id")?,
            host: r.try_get("host")?,
            provider_location: r.try_get("provider_location")?,
            provider_auth: r.try_get("provider_auth")?,
            snapshot_id: r.try_get("snapshot_id")?,
            source_volid: r.try_get("source_volid")?,
            bootable: r.try_get::<i64, _>("bootable")? != 0,
            multiattach: r.try_get::<i64, _>("multiattach")? != 0,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            launched_at: r.try_get("launched_at")?,
            metadata: Vec::new(),
            attachments: Vec::new(),
        })
    }

    /// The backend part of `host@backend#pool`.
    pub fn backend(&self) -> Option<&str> {
        let host = self.host.as_deref()?;
        let after_at = host.split_once('@')?.1;
        Some(after_at.split_once('#').map_or(after_at, |(b, _)| b))
    }

    /// The pool part of `host@backend#pool`.
    pub fn pool(&self) -> Option<&str> {
        Some(self.host.as_deref()?.split_once('#')?.1)
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub progress: String,
    pub volume_size: i64,
    pub provider_location: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl SnapshotRow {
    pub fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        let metadata: String = r.try_get("metadata")?;
        Ok(SnapshotRow {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            user_id: r.try_get("user_id")?,
            volume_id: r.try_get("volume_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            status: r.try_get("status")?,
            progress: r.try_get("progress")?,
            volume_size: r.try_get("volume_size")?,
            provider_location: r.try_get("provider_location")?,
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: Vec<(String, String)>,
}

impl VolumeType {
    pub fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(VolumeType {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            is_public: r.try_get::<i64, _>("is_public")? != 0,
            extra_specs: Vec::new(),
        })
    }
}

/// A durable unit of work (Cinder's cleanable operations).
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub resource_id: String,
    pub payload: String,
    pub state: String,
    pub owner: Option<String>,
    pub attempts: i64,
    pub created_at: String,
}

impl Job {
    pub fn new(kind: &str, resource_id: &str, payload: serde_json::Value) -> Job {
        Job {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_string(),
            resource_id: resource_id.to_string(),
            payload: payload.to_string(),
            state: "pending".into(),
            owner: None,
            attempts: 0,
            created_at: super::time::now(),
        }
    }

    pub fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(Job {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            resource_id: r.try_get("resource_id")?,
            payload: r.try_get("payload")?,
            state: r.try_get("state")?,
            owner: r.try_get("owner")?,
            attempts: r.try_get("attempts")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// Cinder's user message: why an asynchronous request failed.
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
    pub fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
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
            created_at: super::time::now(),
        }
    }

    pub fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(PluginEvent {
            id: r.try_get("id")?,
            backend: r.try_get("backend")?,
            kind: r.try_get("kind")?,
            from_version: r.try_get("from_version")?,
            to_version: r.try_get("to_version")?,
            reason: r.try_get("reason")?,
            took_ms: r.try_get("took_ms")?,
            created_at: r.try_get("created_at")?,
        })
    }
}
