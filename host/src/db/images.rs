//! Volumes and images: the status changes of a volume made from an image (`downloading`)
//! and of an upload (`uploading` and back), and the image-volume cache's entries and the
//! internal project's volumes that hold them.

use std::collections::BTreeMap;

use super::volumes::metadata_json;
use super::{Db, JobRow, Result, time};
use crate::volume::status::VolumeStatus;

/// One cached image-volume (Cinder's `image_volume_cache_entries` row).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub id: String,
    pub backend: String,
    pub image_id: String,
    pub image_updated_at: Option<String>,
    pub checksum: Option<String>,
    pub volume_id: String,
    /// GiB.
    pub size: i64,
    pub created_at: String,
    pub last_used: String,
}

type EntryTuple = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    String,
    String,
);

impl From<EntryTuple> for CacheEntry {
    fn from(t: EntryTuple) -> Self {
        CacheEntry {
            id: t.0,
            backend: t.1,
            image_id: t.2,
            image_updated_at: t.3,
            checksum: t.4,
            volume_id: t.5,
            size: t.6,
            created_at: t.7,
            last_used: t.8,
        }
    }
}

const ENTRY_COLUMNS: &str =
    "id, backend, image_id, image_updated_at, checksum, volume_id, size, created_at, last_used";

impl Db {
    /// `creating` → `downloading`: the image's data is being written onto the volume.
    pub async fn start_download(&self, id: &str) -> Result<bool> {
        self.transition_volume(
            id,
            &[VolumeStatus::Creating],
            VolumeStatus::Downloading,
            None,
        )
        .await
    }

    /// `creating` or `downloading` → `available`, bootable, with the image's metadata as
    /// the volume's `volume_image_metadata` and the driver's model update.
    pub async fn finish_create_from_image(
        &self,
        id: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
        image_metadata: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let now = time::now();
        let res = sqlx::query(
            "UPDATE volumes SET status = 'available', provider_location = $1, provider_auth = $2, \
             bootable = 1, image_metadata = $3, launched_at = $4, updated_at = $4 \
             WHERE id = $5 AND status IN ('creating', 'downloading') AND deleted = 0",
        )
        .bind(provider_location)
        .bind(provider_auth)
        .bind(metadata_json(image_metadata))
        .bind(&now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Starts an upload: the volume from one of `from` to `uploading`, remembering the
    /// status it returns to, with the job, in one transaction; false when it was in none
    /// of `from`.
    pub async fn begin_upload(
        &self,
        id: &str,
        from: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let from = serde_json::to_string(&from).expect("strings serialise");
        let res = sqlx::query(&self.dialect.sql(&format!(
            "UPDATE volumes SET previous_status = status, status = 'uploading', updated_at = $1 \
             WHERE id = $2 AND deleted = 0 AND status IN (SELECT value FROM {})",
            self.dialect.json_text_array(3)
        )))
        .bind(time::now())
        .bind(id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `uploading` → the status the upload started from (Cinder's `previous_status`),
    /// whether it succeeded or failed.
    pub async fn finish_upload(&self, id: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET status = COALESCE(previous_status, 'available'), previous_status = NULL, updated_at = $1 \
             WHERE id = $2 AND deleted = 0 AND status = 'uploading'",
        )
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// The cache entry of `image_id` on `backend`, if any.
    pub async fn cache_entry(&self, backend: &str, image_id: &str) -> Result<Option<CacheEntry>> {
        let row: Option<EntryTuple> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS} FROM image_volume_cache_entries WHERE backend = $1 AND image_id = $2"
        ))
        .bind(backend)
        .bind(image_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(CacheEntry::from))
    }

    /// Every cache entry of `backend`, least recently used first.
    pub async fn cache_entries(&self, backend: &str) -> Result<Vec<CacheEntry>> {
        let rows: Vec<EntryTuple> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS} FROM image_volume_cache_entries WHERE backend = $1 ORDER BY last_used, id"
        ))
        .bind(backend)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(CacheEntry::from).collect())
    }

    /// Marks an entry used now.
    pub async fn touch_cache_entry(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE image_volume_cache_entries SET last_used = $1 WHERE id = $2")
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a cached image-volume: its volume row (the internal project's, `creating`
    /// until the driver has made it, counted against no quota) and its entry, in one
    /// transaction. False when `backend` already caches the image (another create got
    /// there first): nothing is written.
    pub async fn insert_cache_volume(
        &self,
        volume: &super::VolumeRow,
        entry: &CacheEntry,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM image_volume_cache_entries WHERE backend = $1 AND image_id = $2",
        )
        .bind(&entry.backend)
        .bind(&entry.image_id)
        .fetch_one(&mut *tx)
        .await?;
        if exists > 0 {
            return Ok(false);
        }
        let v = volume;
        sqlx::query(
            "INSERT INTO volumes (id, project_id, user_id, name, description, size, status, attach_status, availability_zone, \
             volume_type_id, host, bootable, multiattach, created_at, updated_at, metadata, image_metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, 'creating', 'detached', $7, $8, $9, 1, 0, $10, $10, '{}', $11)",
        )
        .bind(&v.id)
        .bind(&v.project_id)
        .bind(&v.user_id)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.size)
        .bind(&v.availability_zone)
        .bind(&v.volume_type_id)
        .bind(&v.host)
        .bind(&v.created_at)
        .bind(metadata_json(&v.image_metadata))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO image_volume_cache_entries ({ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&entry.id)
        .bind(&entry.backend)
        .bind(&entry.image_id)
        .bind(&entry.image_updated_at)
        .bind(&entry.checksum)
        .bind(&entry.volume_id)
        .bind(entry.size)
        .bind(&entry.created_at)
        .bind(&entry.last_used)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A cached image-volume the driver has made: `creating` → `available`.
    pub async fn finish_cache_volume(
        &self,
        volume_id: &str,
        provider_location: Option<&str>,
    ) -> Result<bool> {
        let now = time::now();
        let res = sqlx::query(
            "UPDATE volumes SET status = 'available', provider_location = $1, launched_at = $2, updated_at = $2 \
             WHERE id = $3 AND status = 'creating' AND deleted = 0",
        )
        .bind(provider_location)
        .bind(&now)
        .bind(volume_id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Removes a cache entry and soft-deletes its volume row (no quota was charged for
    /// it, so none is given back), in one transaction. The caller has the driver delete
    /// the volume first.
    /// Removes a cache entry and leaves its volume (one that moved to a backend this host
    /// does not run).
    pub async fn forget_cache_entry(&self, entry_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM image_volume_cache_entries WHERE id = $1")
            .bind(entry_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_cache_entry(&self, entry_id: &str, volume_id: &str) -> Result<()> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM image_volume_cache_entries WHERE id = $1")
            .bind(entry_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE volumes SET status = 'deleted', deleted = 1, deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted = 0",
        )
        .bind(&now)
        .bind(volume_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cache entries whose volume never became `available` (a host stopped while making
    /// it), on `backends`.
    pub async fn unfinished_cache_entries(&self, backends: &[String]) -> Result<Vec<CacheEntry>> {
        let mut found = Vec::new();
        for b in backends {
            let rows: Vec<EntryTuple> = sqlx::query_as(&format!(
                "SELECT {} FROM image_volume_cache_entries e JOIN volumes v ON v.id = e.volume_id \
                 WHERE e.backend = $1 AND v.status != 'available'",
                ENTRY_COLUMNS
                    .split(", ")
                    .map(|c| format!("e.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .bind(b)
            .fetch_all(&self.pool)
            .await?;
            found.extend(rows.into_iter().map(CacheEntry::from));
        }
        Ok(found)
    }
}
