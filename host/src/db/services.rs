//! Cinder's `services` table: every host's scheduler and volume backends, the heartbeat
//! each host writes for its own, and the administrator's disable flag.

use super::DbRow;
use sqlx::Row;

use super::{Db, Result, time};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// `host` for the scheduler, `host@backend` for a volume backend.
    pub host: String,
    /// `cinder-scheduler` or `cinder-volume`.
    pub binary: String,
    pub availability_zone: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    /// `CLUSTER@BACKEND` for a backend run in a cluster.
    pub cluster: Option<String>,
    pub created_at: String,
    /// The last heartbeat.
    pub updated_at: Option<String>,
}

impl ServiceRow {
    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(ServiceRow {
            host: r.try_get("host")?,
            binary: r.try_get("binary")?,
            availability_zone: r.try_get("availability_zone")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            disabled_reason: r.try_get("disabled_reason")?,
            cluster: r.try_get("cluster")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl Db {
    /// A heartbeat: registers the service if it is new, else stamps it now (keeping
    /// whether it is disabled).
    pub async fn report_service(
        &self,
        host: &str,
        binary: &str,
        zone: &str,
        cluster: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO services (host, \"binary\", availability_zone, cluster, created_at, updated_at) \
             VALUES ($1, $2, $3, $5, $4, $4) ON CONFLICT (host, \"binary\") DO UPDATE SET \
             availability_zone = excluded.availability_zone, cluster = excluded.cluster, \
             updated_at = excluded.updated_at",
        )
        .bind(host)
        .bind(binary)
        .bind(zone)
        .bind(time::now())
        .bind(cluster)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The volume services (`HOST@BACKEND`) of `clusters` (`CLUSTER@BACKEND`) whose last
    /// heartbeat is older than `down_before`.
    pub async fn silent_cluster_services(
        &self,
        clusters: &[String],
        down_before: &str,
    ) -> Result<Vec<String>> {
        if clusters.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT host FROM services WHERE \"binary\" = 'cinder-volume' AND updated_at < $1 \
             AND cluster IN ({}) ORDER BY host",
            super::in_list(2, clusters.len())
        );
        let mut q = sqlx::query_as::<_, (String,)>(&sql).bind(down_before);
        for c in clusters {
            q = q.bind(c);
        }
        Ok(q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(h,)| h)
            .collect())
    }

    /// Every service, ordered by host then binary.
    pub async fn list_services(&self) -> Result<Vec<ServiceRow>> {
        let rows = sqlx::query("SELECT * FROM services ORDER BY host, \"binary\"")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ServiceRow::from_row).collect()
    }

    /// Disables or enables a service; `reason` `Some` also sets (or, with `Some(None)`,
    /// clears) its reason. The service as it now reads, `None` when there is none.
    pub async fn set_service_disabled(
        &self,
        host: &str,
        binary: &str,
        disabled: bool,
        reason: Option<Option<&str>>,
    ) -> Result<Option<ServiceRow>> {
        let row = sqlx::query(
            "UPDATE services SET disabled = $1, \
             disabled_reason = CASE WHEN $2 THEN $3 ELSE disabled_reason END \
             WHERE host = $4 AND \"binary\" = $5 RETURNING *",
        )
        .bind(disabled as i64)
        .bind(reason.is_some())
        .bind(reason.flatten())
        .bind(host)
        .bind(binary)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| ServiceRow::from_row(&r)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::db::testing;

    #[tokio::test]
    async fn a_heartbeat_keeps_the_disable_flag() {
        let (db, _dir) = testing::db().await;
        db.report_service("h@b", "cinder-volume", "nova", None)
            .await
            .unwrap();
        let s = db
            .set_service_disabled("h@b", "cinder-volume", true, Some(Some("maintenance")))
            .await
            .unwrap()
            .unwrap();
        assert!(s.disabled);
        db.report_service("h@b", "cinder-volume", "zone2", Some("c@b"))
            .await
            .unwrap();
        let all = db.list_services().await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].disabled);
        assert_eq!(all[0].disabled_reason.as_deref(), Some("maintenance"));
        assert_eq!(all[0].availability_zone, "zone2");
        assert_eq!(all[0].cluster.as_deref(), Some("c@b"));
        // Disable without a reason leaves the reason; enable clears it when told to.
        let s = db
            .set_service_disabled("h@b", "cinder-volume", false, Some(None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((s.disabled, s.disabled_reason), (false, None));
        assert!(
            db.set_service_disabled("h@x", "cinder-volume", true, None)
                .await
                .unwrap()
                .is_none()
        );
    }
}
