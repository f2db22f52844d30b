//! Every backend's pool stats and what placements took from its pools since, shared by
//! every host's scheduler: the host that polls a backend writes its stats, and any host
//! that places a volume records the capacity it took, so a burst of creates through
//! several hosts spreads as one scheduler would spread it (Cinder's
//! `consume_from_volume`, kept in the database instead of one process).

use super::{Db, Result, time};

/// A backend's stats as its host last wrote them.
#[derive(Debug, Clone)]
pub struct StoredStats {
    /// `HOST@BACKEND` or `CLUSTER@BACKEND`.
    pub backend: String,
    /// The host that polled them.
    pub host: String,
    /// The stats, as JSON.
    pub stats: String,
    pub updated_at: String,
}

/// Capacity placements took from one pool since its backend's stats were written.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Consumed {
    pub provisioned_gb: i64,
    pub free_gb: i64,
}

impl Db {
    /// Writes a backend's freshly polled stats and clears what placements took from its
    /// pools (the driver's figures now count those volumes).
    pub async fn write_backend_stats(&self, backend: &str, host: &str, stats: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO backend_stats (backend, host, stats, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (backend) DO UPDATE SET host = excluded.host, stats = excluded.stats, \
             updated_at = excluded.updated_at",
        )
        .bind(backend)
        .bind(host)
        .bind(stats)
        .bind(time::now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pool_consumption WHERE backend = $1")
            .bind(backend)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every backend's stored stats.
    pub async fn backend_stats(&self) -> Result<Vec<StoredStats>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT backend, host, stats, updated_at FROM backend_stats ORDER BY backend",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(backend, host, stats, updated_at)| StoredStats {
                backend,
                host,
                stats,
                updated_at,
            })
            .collect())
    }

    /// What placements took from each pool (`backend`, `pool`) since its stats were
    /// written.
    pub async fn pool_consumption(&self) -> Result<Vec<(String, String, Consumed)>> {
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT backend, pool, provisioned_gb, free_gb FROM pool_consumption")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(b, p, provisioned_gb, free_gb)| {
                (
                    b,
                    p,
                    Consumed {
                        provisioned_gb,
                        free_gb,
                    },
                )
            })
            .collect())
    }

    /// Records that a placement took (or, negative, gave back) capacity from a pool.
    pub async fn consume_pool(&self, backend: &str, pool: &str, by: Consumed) -> Result<()> {
        sqlx::query(
            "INSERT INTO pool_consumption (backend, pool, provisioned_gb, free_gb) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (backend, pool) DO UPDATE SET \
             provisioned_gb = pool_consumption.provisioned_gb + excluded.provisioned_gb, \
             free_gb = pool_consumption.free_gb + excluded.free_gb",
        )
        .bind(backend)
        .bind(pool)
        .bind(by.provisioned_gb)
        .bind(by.free_gb)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Consumed;
    use crate::db::testing;

    #[tokio::test]
    async fn placements_add_up_until_the_next_poll_clears_them() {
        let (db, _dir) = testing::db().await;
        db.write_backend_stats("c@shared", "a", "{}").await.unwrap();
        let take = Consumed {
            provisioned_gb: 5,
            free_gb: 5,
        };
        db.consume_pool("c@shared", "p", take).await.unwrap();
        db.consume_pool("c@shared", "p", take).await.unwrap();
        db.consume_pool(
            "c@shared",
            "p",
            Consumed {
                provisioned_gb: -3,
                free_gb: 0,
            },
        )
        .await
        .unwrap();
        let used = db.pool_consumption().await.unwrap();
        assert_eq!(
            used,
            vec![(
                "c@shared".to_string(),
                "p".to_string(),
                Consumed {
                    provisioned_gb: 7,
                    free_gb: 10
                }
            )]
        );
        db.write_backend_stats("c@shared", "b", "{\"x\":1}")
            .await
            .unwrap();
        assert!(db.pool_consumption().await.unwrap().is_empty());
        let stored = db.backend_stats().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].host.as_str(), stored[0].stats.as_str()),
            ("b", "{\"x\":1}")
        );
    }
}
