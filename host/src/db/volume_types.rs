//! Volume types, their extra specs, the projects a private type is given to, and each
//! project's default type (Cinder 3.62).

use std::collections::HashMap;

use super::DbRow;
use sqlx::Row;

use super::{Db, DbError, Result, time};

#[derive(Debug, Clone)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: Vec<(String, String)>,
    /// The QoS spec associated with the type, if any (one at most, as in Cinder).
    pub qos_specs_id: Option<String>,
}

/// Which types a caller may see, as Cinder's type queries filter them: an administrator
/// sees every type; anyone else the public types and the private ones their project was
/// given.
#[derive(Clone, Copy, Debug)]
pub struct TypeVisibility<'a> {
    pub project_id: &'a str,
    pub is_admin: bool,
}

/// Whether type `t` is visible to a caller: `$2` is 1 for an administrator, `$3` their
/// project.
const VISIBLE: &str = "($2 = 1 OR t.is_public = 1 OR EXISTS (SELECT 1 FROM volume_type_projects p \
     WHERE p.volume_type_id = t.id AND p.project_id = $3))";

/// A project's default type.
#[derive(Debug, Clone)]
pub struct ProjectDefaultType {
    pub project_id: String,
    pub volume_type_id: String,
}

impl VolumeType {
    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(VolumeType {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            is_public: r.try_get::<i64, _>("is_public")? != 0,
            extra_specs: Vec::new(),
            qos_specs_id: r.try_get("qos_specs_id")?,
        })
    }
}

fn default_from_row(r: &DbRow) -> Result<ProjectDefaultType> {
    Ok(ProjectDefaultType {
        project_id: r.try_get("project_id")?,
        volume_type_id: r.try_get("volume_type_id")?,
    })
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

    /// A type by id or by name, whoever asks (the host's own lookups).
    pub async fn get_volume_type(&self, id_or_name: &str) -> Result<Option<VolumeType>> {
        let row = sqlx::query(
            "SELECT * FROM volume_types WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        self.with_specs(row).await
    }

    /// A type by id or by name, if `who` may see it.
    pub async fn visible_volume_type(
        &self,
        id_or_name: &str,
        who: TypeVisibility<'_>,
    ) -> Result<Option<VolumeType>> {
        let row = sqlx::query(&format!(
            "SELECT t.* FROM volume_types t WHERE (t.id = $1 OR t.name = $1) AND {VISIBLE} \
             ORDER BY (t.id = $1) DESC LIMIT 1"
        ))
        .bind(id_or_name)
        .bind(who.is_admin as i64)
        .bind(who.project_id)
        .fetch_optional(&self.pool)
        .await?;
        self.with_specs(row).await
    }

    async fn with_specs(&self, row: Option<DbRow>) -> Result<Option<VolumeType>> {
        match row {
            None => Ok(None),
            Some(row) => {
                let mut t = VolumeType::from_row(&row)?;
                t.extra_specs = self.extra_specs(&t.id).await?;
                Ok(Some(t))
            }
        }
    }

    /// The types a list shows, with their extra specs, in two queries, as Cinder filters
    /// them by `is_public`: `Some(true)` the public types and the private ones `project`
    /// was given, `Some(false)` the private types only, `None` every type.
    pub async fn list_volume_types(
        &self,
        is_public: Option<bool>,
        project: &str,
    ) -> Result<Vec<VolumeType>> {
        let rows = sqlx::query(
            "SELECT t.* FROM volume_types t WHERE $1 IS NULL \
             OR ($1 = 1 AND (t.is_public = 1 OR EXISTS (SELECT 1 FROM volume_type_projects p \
                 WHERE p.volume_type_id = t.id AND p.project_id = $2))) \
             OR ($1 = 0 AND t.is_public = 0) \
             ORDER BY t.name",
        )
        .bind(is_public.map(|b| b as i64))
        .bind(project)
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

    /// Deletes a type unless a volume still uses it or it is a project's default type
    /// (Cinder's `VolumeTypeDefaultDeletionError`), checked in the transaction that
    /// deletes it.
    pub async fn delete_volume_type(&self, id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM volumes WHERE volume_type_id = $1 AND deleted = 0",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if in_use > 0 {
            return Err(DbError::Conflict(format!(
                "Target volume type is still in use: {in_use} volume(s) have type {id}; delete or retype them first."
            )));
        }
        let defaults: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM project_default_volume_types WHERE volume_type_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if defaults > 0 {
            return Err(DbError::Conflict(format!(
                "The volume type {id} is a default volume type and cannot be deleted."
            )));
        }
        // Deleted volumes keep their rows; they let go of the type rather than hold it.
        sqlx::query(
            "UPDATE volumes SET volume_type_id = NULL WHERE volume_type_id = $1 AND deleted = 1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let res = sqlx::query("DELETE FROM volume_types WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    /// The projects a type was given, in the order they were given it.
    pub async fn type_access(&self, type_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT project_id FROM volume_type_projects WHERE volume_type_id = $1 \
             ORDER BY created_at, project_id",
        )
        .bind(type_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Gives `project` a type; false when it already had it.
    pub async fn add_type_access(&self, type_id: &str, project: &str) -> Result<bool> {
        let res = sqlx::query(
            "INSERT INTO volume_type_projects (volume_type_id, project_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (volume_type_id, project_id) DO NOTHING",
        )
        .bind(type_id)
        .bind(project)
        .bind(time::now())
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Takes a type from `project`; false when it did not have it.
    pub async fn remove_type_access(&self, type_id: &str, project: &str) -> Result<bool> {
        let res = sqlx::query(
            "DELETE FROM volume_type_projects WHERE volume_type_id = $1 AND project_id = $2",
        )
        .bind(type_id)
        .bind(project)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Sets (or replaces) a project's default type.
    pub async fn set_project_default_type(
        &self,
        project: &str,
        type_id: &str,
    ) -> Result<ProjectDefaultType> {
        let now = time::now();
        sqlx::query(
            "INSERT INTO project_default_volume_types (project_id, volume_type_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (project_id) \
             DO UPDATE SET volume_type_id = excluded.volume_type_id, updated_at = excluded.created_at",
        )
        .bind(project)
        .bind(type_id)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(ProjectDefaultType {
            project_id: project.to_string(),
            volume_type_id: type_id.to_string(),
        })
    }

    /// A project's default type, if it has one.
    pub async fn project_default_type(&self, project: &str) -> Result<Option<ProjectDefaultType>> {
        let row = sqlx::query(
            "SELECT project_id, volume_type_id FROM project_default_volume_types WHERE project_id = $1",
        )
        .bind(project)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| default_from_row(&r)).transpose()
    }

    /// Every project's default type.
    pub async fn project_default_types(&self) -> Result<Vec<ProjectDefaultType>> {
        sqlx::query(
            "SELECT project_id, volume_type_id FROM project_default_volume_types ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(default_from_row)
        .collect()
    }

    /// Removes a project's default type (nothing to remove is no error, as in Cinder).
    pub async fn unset_project_default_type(&self, project: &str) -> Result<()> {
        sqlx::query("DELETE FROM project_default_volume_types WHERE project_id = $1")
            .bind(project)
            .execute(&self.pool)
            .await?;
        Ok(())
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
