//! QoS specs (Cinder's `quality_of_service_specs`): a name, who consumes them and their
//! key/value pairs, associated with volume types (one spec per type, kept on the type).

use std::collections::HashMap;

use super::DbRow;
use sqlx::Row;

use super::{Db, DbError, Result, time};

/// Who applies a QoS spec: the hypervisor (`front-end`, handed over in the connection
/// info), the driver (`back-end`, handed over with the volume), or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosConsumer {
    FrontEnd,
    BackEnd,
    Both,
}

impl QosConsumer {
    /// Cinder's spellings, in its order.
    pub const NAMES: [&'static str; 3] = ["front-end", "back-end", "both"];

    pub fn as_str(self) -> &'static str {
        match self {
            QosConsumer::FrontEnd => "front-end",
            QosConsumer::BackEnd => "back-end",
            QosConsumer::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<QosConsumer> {
        match s {
            "front-end" => Some(QosConsumer::FrontEnd),
            "back-end" => Some(QosConsumer::BackEnd),
            "both" => Some(QosConsumer::Both),
            _ => None,
        }
    }

    /// Whether the hypervisor applies the spec (Cinder adds it to the connection info).
    pub fn front_end(self) -> bool {
        matches!(self, QosConsumer::FrontEnd | QosConsumer::Both)
    }

    /// Whether the driver applies the spec.
    pub fn back_end(self) -> bool {
        matches!(self, QosConsumer::BackEnd | QosConsumer::Both)
    }
}

#[derive(Debug, Clone)]
pub struct QosSpecs {
    pub id: String,
    pub name: String,
    pub consumer: QosConsumer,
    pub specs: Vec<(String, String)>,
}

/// What deleting a QoS spec came to.
#[derive(Debug, PartialEq, Eq)]
pub enum QosDeleted {
    Deleted,
    /// Still associated with types and not forced.
    InUse,
    Gone,
}

/// What deleting keys of a QoS spec came to.
#[derive(Debug, PartialEq, Eq)]
pub enum QosKeysDeleted {
    Deleted,
    /// This key is not in the spec; nothing was deleted.
    NoKey(String),
    Gone,
}

/// What associating a QoS spec with a type came to.
#[derive(Debug, PartialEq, Eq)]
pub enum QosAssociated {
    Associated,
    /// The type has another spec (its id).
    Other(String),
    /// No such type.
    NoType,
    /// No such spec.
    Gone,
}

fn row_to_specs(r: &DbRow) -> Result<QosSpecs> {
    let consumer: String = r.try_get("consumer")?;
    let id: String = r.try_get("id")?;
    Ok(QosSpecs {
        consumer: QosConsumer::parse(&consumer).ok_or_else(|| DbError::Corrupt {
            table: "qos_specs",
            id: id.clone(),
            message: format!(
                "consumer: {consumer:?} is not one of {:?}",
                QosConsumer::NAMES
            ),
        })?,
        id,
        name: r.try_get("name")?,
        specs: Vec::new(),
    })
}

async fn insert_items(tx: &mut crate::db::Tx, id: &str, specs: &[(String, String)]) -> Result<()> {
    for (k, v) in specs {
        sqlx::query(
            "INSERT INTO qos_specs_items (qos_specs_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (qos_specs_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(k)
        .bind(v)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// Creates a QoS spec; a name already taken is a conflict, in Cinder's words.
    pub async fn create_qos_specs(
        &self,
        name: &str,
        consumer: QosConsumer,
        specs: &[(String, String)],
    ) -> Result<QosSpecs> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO qos_specs (id, name, consumer, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(name)
        .bind(consumer.as_str())
        .bind(time::now())
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                DbError::Conflict(format!("QoS Specs {name} already exists."))
            }
            _ => e.into(),
        })?;
        insert_items(&mut tx, &id, specs).await?;
        tx.commit().await?;
        Ok(self.get_qos_specs(&id).await?.expect("just inserted"))
    }

    pub async fn get_qos_specs(&self, id: &str) -> Result<Option<QosSpecs>> {
        let Some(row) = sqlx::query("SELECT * FROM qos_specs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut q = row_to_specs(&row)?;
        q.specs = self.qos_items(id).await?;
        Ok(Some(q))
    }

    async fn qos_items(&self, id: &str) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT key, value FROM qos_specs_items WHERE qos_specs_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    /// Every QoS spec, by name, in two queries.
    pub async fn list_qos_specs(&self) -> Result<Vec<QosSpecs>> {
        let rows = sqlx::query("SELECT * FROM qos_specs ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut items: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in sqlx::query("SELECT qos_specs_id, key, value FROM qos_specs_items ORDER BY key")
            .fetch_all(&self.pool)
            .await?
        {
            items
                .entry(r.try_get("qos_specs_id")?)
                .or_default()
                .push((r.try_get("key")?, r.try_get("value")?));
        }
        rows.iter()
            .map(|r| {
                let mut q = row_to_specs(r)?;
                q.specs = items.remove(&q.id).unwrap_or_default();
                Ok(q)
            })
            .collect()
    }

    /// Sets keys (and the consumer, when given) of a QoS spec; false when it is gone.
    pub async fn update_qos_specs(
        &self,
        id: &str,
        consumer: Option<QosConsumer>,
        specs: &[(String, String)],
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE qos_specs SET consumer = COALESCE($2, consumer), updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(consumer.map(QosConsumer::as_str))
        .bind(time::now())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Ok(false);
        }
        insert_items(&mut tx, id, specs).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes keys of a QoS spec: all of them, or none when one is missing.
    pub async fn delete_qos_specs_keys(&self, id: &str, keys: &[String]) -> Result<QosKeysDeleted> {
        let mut tx = self.write_tx().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM qos_specs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(QosKeysDeleted::Gone);
        }
        for key in keys {
            let res =
                sqlx::query("DELETE FROM qos_specs_items WHERE qos_specs_id = $1 AND key = $2")
                    .bind(id)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            if res.rows_affected() == 0 {
                // Dropping the transaction undoes the keys already deleted.
                return Ok(QosKeysDeleted::NoKey(key.clone()));
            }
        }
        sqlx::query("UPDATE qos_specs SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(time::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(QosKeysDeleted::Deleted)
    }

    /// Deletes a QoS spec; one still associated with types only when `force`, which
    /// disassociates them first, in the same transaction.
    pub async fn delete_qos_specs(&self, id: &str, force: bool) -> Result<QosDeleted> {
        let mut tx = self.write_tx().await?;
        let associated: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM volume_types WHERE qos_specs_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if associated > 0 && !force {
            return Ok(QosDeleted::InUse);
        }
        sqlx::query("UPDATE volume_types SET qos_specs_id = NULL WHERE qos_specs_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let res = sqlx::query("DELETE FROM qos_specs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Ok(QosDeleted::Gone);
        }
        tx.commit().await?;
        Ok(QosDeleted::Deleted)
    }

    /// The types a QoS spec is associated with: `(id, name)`, by name.
    pub async fn qos_associations(&self, id: &str) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT id, name FROM volume_types WHERE qos_specs_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    /// Associates a QoS spec with a type that has no other spec (associating it again is
    /// no change), in one conditional update.
    pub async fn associate_qos_specs(&self, id: &str, type_id: &str) -> Result<QosAssociated> {
        let mut tx = self.write_tx().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM qos_specs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(QosAssociated::Gone);
        }
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT qos_specs_id FROM volume_types WHERE id = $1")
                .bind(type_id)
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            None => return Ok(QosAssociated::NoType),
            Some(Some(other)) if other != id => return Ok(QosAssociated::Other(other)),
            _ => {}
        }
        sqlx::query(
            "UPDATE volume_types SET qos_specs_id = $1 WHERE id = $2 \
             AND (qos_specs_id IS NULL OR qos_specs_id = $1)",
        )
        .bind(id)
        .bind(type_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(QosAssociated::Associated)
    }

    /// Disassociates a QoS spec from a type (a type without it is left as it is); false
    /// when there is no such type.
    pub async fn disassociate_qos_specs(&self, id: &str, type_id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM volume_types WHERE id = $1")
                .bind(type_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE volume_types SET qos_specs_id = NULL WHERE id = $1 AND qos_specs_id = $2",
        )
        .bind(type_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Disassociates a QoS spec from every type.
    pub async fn disassociate_qos_specs_all(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE volume_types SET qos_specs_id = NULL WHERE qos_specs_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The QoS spec of a type, if it has one.
    pub async fn qos_specs_of_type(&self, type_id: &str) -> Result<Option<QosSpecs>> {
        let id: Option<Option<String>> =
            sqlx::query_scalar("SELECT qos_specs_id FROM volume_types WHERE id = $1")
                .bind(type_id)
                .fetch_optional(&self.pool)
                .await?;
        match id.flatten() {
            Some(id) => self.get_qos_specs(&id).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::db;
    use super::*;

    #[tokio::test]
    async fn one_spec_per_type_and_deletes_refused_while_associated() {
        let (db, _dir) = db().await;
        let t = db
            .create_volume_type("gold", None, true, &[])
            .await
            .unwrap();
        let specs = vec![("total_iops_sec".to_string(), "100".to_string())];
        let a = db
            .create_qos_specs("a", QosConsumer::Both, &specs)
            .await
            .unwrap();
        let b = db
            .create_qos_specs("b", QosConsumer::BackEnd, &[])
            .await
            .unwrap();
        assert!(matches!(
            db.create_qos_specs("a", QosConsumer::BackEnd, &[]).await,
            Err(DbError::Conflict(m)) if m == "QoS Specs a already exists."
        ));
        assert_eq!(
            db.associate_qos_specs(&a.id, &t.id).await.unwrap(),
            QosAssociated::Associated
        );
        assert_eq!(
            db.associate_qos_specs(&a.id, &t.id).await.unwrap(),
            QosAssociated::Associated
        );
        assert_eq!(
            db.associate_qos_specs(&b.id, &t.id).await.unwrap(),
            QosAssociated::Other(a.id.clone())
        );
        assert_eq!(
            db.associate_qos_specs(&b.id, "nope").await.unwrap(),
            QosAssociated::NoType
        );
        assert_eq!(
            db.qos_specs_of_type(&t.id).await.unwrap().unwrap().specs,
            specs
        );
        assert_eq!(
            db.delete_qos_specs(&a.id, false).await.unwrap(),
            QosDeleted::InUse
        );
        assert_eq!(
            db.delete_qos_specs_keys(&a.id, &["total_iops_sec".into(), "nope".into()])
                .await
                .unwrap(),
            QosKeysDeleted::NoKey("nope".into())
        );
        assert_eq!(db.get_qos_specs(&a.id).await.unwrap().unwrap().specs, specs);
        assert_eq!(
            db.delete_qos_specs(&a.id, true).await.unwrap(),
            QosDeleted::Deleted
        );
        assert!(db.qos_specs_of_type(&t.id).await.unwrap().is_none());
        assert_eq!(
            db.delete_qos_specs(&a.id, true).await.unwrap(),
            QosDeleted::Gone
        );
    }
}
