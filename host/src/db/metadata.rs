//! Metadata kept on a row as a JSON object: a volume's, its admin metadata and image
//! metadata, and a snapshot's, read and written the same way.

use std::collections::BTreeMap;

use super::{Db, DbError, Resource, Result, time};

/// Whose metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataOf {
    Volume,
    /// Cinder's volume admin metadata (`readonly`, `attached_mode`).
    VolumeAdmin,
    /// The image metadata a volume carries (`volume_image_metadata`).
    VolumeImage,
    Snapshot,
}

impl MetadataOf {
    fn resource(self) -> Resource {
        match self {
            MetadataOf::Volume | MetadataOf::VolumeAdmin | MetadataOf::VolumeImage => {
                Resource::Volumes
            }
            MetadataOf::Snapshot => Resource::Snapshots,
        }
    }

    fn column(self) -> &'static str {
        match self {
            MetadataOf::Volume | MetadataOf::Snapshot => "metadata",
            MetadataOf::VolumeAdmin => "admin_metadata",
            MetadataOf::VolumeImage => "image_metadata",
        }
    }
}

use crate::db::Tx;

impl Db {
    /// A live row's metadata, `None` when there is no such row.
    async fn metadata_in(
        &self,
        tx: &mut Tx,
        of: MetadataOf,
        id: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let table = of.resource().table();
        let column = of.column();
        let text: Option<String> = sqlx::query_scalar(&format!(
            "SELECT {column} FROM {table} WHERE id = $1 AND deleted = 0"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| DbError::Corrupt {
                table,
                id: id.to_string(),
                message: format!("{column}: {e}"),
            })
        })
        .transpose()
    }

    /// Writes a row's metadata whole.
    async fn write_metadata(
        &self,
        tx: &mut Tx,
        of: MetadataOf,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE {} SET {} = $1, updated_at = $2 WHERE id = $3",
            of.resource().table(),
            of.column()
        ))
        .bind(serde_json::to_string(metadata).expect("string map serialises"))
        .bind(time::now())
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Merges (or, with `replace`, replaces) a row's metadata; returns what it holds after.
    pub async fn set_metadata(
        &self,
        of: MetadataOf,
        id: &str,
        items: &[(String, String)],
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let mut tx = self.write_tx().await?;
        let mut metadata = match replace {
            true => BTreeMap::new(),
            false => self.metadata_in(&mut tx, of, id).await?.unwrap_or_default(),
        };
        metadata.extend(items.iter().cloned());
        self.write_metadata(&mut tx, of, id, &metadata).await?;
        tx.commit().await?;
        Ok(metadata)
    }

    /// What a driver's model update asks of a volume beyond its provider fields: admin
    /// metadata merged and removed, and a new pool of the same backend (the part of its
    /// host after `#`).
    pub async fn record_model_extras(
        &self,
        id: &str,
        set: &[(String, String)],
        removed: &[String],
        pool: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        if !set.is_empty() || !removed.is_empty() {
            let of = MetadataOf::VolumeAdmin;
            let mut metadata = self.metadata_in(&mut tx, of, id).await?.unwrap_or_default();
            metadata.extend(set.iter().cloned());
            for key in removed {
                metadata.remove(key);
            }
            self.write_metadata(&mut tx, of, id, &metadata).await?;
        }
        if let Some(pool) = pool {
            let host: Option<Option<String>> =
                sqlx::query_scalar("SELECT host FROM volumes WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(Some(host)) = host {
                let backend = host.split('#').next().unwrap_or(&host);
                sqlx::query("UPDATE volumes SET host = $1, updated_at = $2 WHERE id = $3")
                    .bind(format!("{backend}#{pool}"))
                    .bind(time::now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes one key; false when the row had no such key.
    pub async fn delete_metadata(&self, of: MetadataOf, id: &str, key: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let mut metadata = self.metadata_in(&mut tx, of, id).await?.unwrap_or_default();
        if metadata.remove(key).is_none() {
            return Ok(false);
        }
        self.write_metadata(&mut tx, of, id, &metadata).await?;
        tx.commit().await?;
        Ok(true)
    }
}
