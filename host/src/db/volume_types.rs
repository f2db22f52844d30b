//! Volume types and their extra specs.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Db, DbError, Result, time};

#[derive(Debug, Clone)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: Vec<(String, String)>,
}

impl VolumeType {
    fn from_row(r: &SqliteRow) -> Result<Self> {
        Ok(VolumeType {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            is_public: r.try_get::<i64, _>("is_public")? != 0,
            extra_specs: Vec::new(),
        })
    }
}

fn conflict_if_unique(e: sqlx::Error, name: &str) -> DbError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            DbError::Conflict(format!("Volume Type {name} already exists."))
        }
        _ => e.into(),
    }
}

impl Db {
    pub async fn create_volume_type(
        &self,
        name: &str,
        description: Option<&str>,
        is_public: bool,
        extra_specs: &[(String, String)],
    ) -> Result<VolumeType> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(description)
            .bind(is_public as i64)
            .bind(time::now())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_if_unique(e, name))?;
        for (k, v) in extra_specs {
            sqlx::query("INSERT INTO volume_type_extra_specs (volume_type_id, key, value) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self.get_volume_type(&id).await?.expect("just inserted"))
    }

    /// A type by id or by name.
    pub async fn get_volume_type(&self, id_or_name: &str) -> Result<Option<VolumeType>> {
        let row = sqlx::query(
            "SELECT * FROM volume_types WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut t = VolumeType::from_row(&row)?;
                t.extra_specs = self.extra_specs(&t.id).await?;
                Ok(Some(t))
            }
        }
    }

    /// Every type (public ones only unless `include_private`), with their extra specs, in
    /// two queries.
    pub async fn list_volume_types(&self, include_private: bool) -> Result<Vec<VolumeType>> {
        let rows =
            sqlx::query("SELECT * FROM volume_types WHERE is_public = 1 OR $1 = 1 ORDER BY name")
                .bind(include_private as i64)
                .fetch_all(&self.pool)
                .await?;
        let mut specs: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in sqlx::query(
            "SELECT volume_type_id, key, value FROM volume_type_extra_specs ORDER BY volume_type_id, key",
        )
        .fetch_all(&self.pool)
        .await?
        {
            specs
                .entry(r.try_get("volume_type_id")?)
                .or_default()
                .push((r.try_get("key")?, r.try_get("value")?));
        }
        rows.iter()
            .map(|row| {
                let mut t = VolumeType::from_row(row)?;
                t.extra_specs = specs.remove(&t.id).unwrap_or_default();
                Ok(t)
            })
            .collect()
    }

    pub async fn update_volume_type(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        is_public: Option<bool>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE volume_types SET name = COALESCE($2, name), description = COALESCE($3, description), is_public = COALESCE($4, is_public) WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(is_public.map(|b| b as i64))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_if_unique(e, name.unwrap_or_default()))?;
        Ok(())
    }

    /// Deletes a type unless a volume still uses it.
    pub async fn delete_volume_type(&self, id: &str) -> Result<bool> {
        let in_use = self.volumes_of_type(id).await?;
        if in_use > 0 {
            return Err(DbError::Conflict(format!(
                "Target volume type is still in use: {in_use} volume(s) have type {id}; delete or retype them first."
            )));
        }
        let res = sqlx::query("DELETE FROM volume_types WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn extra_specs(&self, type_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT key, value FROM volume_type_extra_specs WHERE volume_type_id = $1 ORDER BY key",
        )
        .bind(type_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    pub async fn set_extra_specs(&self, type_id: &str, specs: &[(String, String)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for (k, v) in specs {
            sqlx::query(
                "INSERT INTO volume_type_extra_specs (volume_type_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (volume_type_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(type_id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_extra_spec(&self, type_id: &str, key: &str) -> Result<bool> {
        let res = sqlx::query(
            "DELETE FROM volume_type_extra_specs WHERE volume_type_id = $1 AND key = $2",
        )
        .bind(type_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }
}
