//! Driver swaps of a backend several hosts run: one row per swap, one per host's part in
//! it. Every host of the cluster reads the open swaps of its backends and takes part; the
//! first failure anywhere rolls the swap back for all.

use super::DbRow;
use sqlx::Row;

use super::{Db, Result, time};

/// A swap asked of a whole cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSwap {
    pub id: String,
    /// `CLUSTER@BACKEND`.
    pub backend: String,
    /// `volume` or `target`.
    pub part: String,
    pub wasm: String,
    pub manifest: Option<String>,
    pub probation_ms: i64,
    /// `open`, `rolled-back` or `committed`.
    pub state: String,
    /// Why it was rolled back: which host failed, and how.
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl ClusterSwap {
    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(ClusterSwap {
            id: r.try_get("id")?,
            backend: r.try_get("backend")?,
            part: r.try_get("part")?,
            wasm: r.try_get("wasm")?,
            manifest: r.try_get("manifest")?,
            probation_ms: r.try_get("probation_ms")?,
            state: r.try_get("state")?,
            reason: r.try_get("reason")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// One host's part in a cluster swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapHost {
    pub host: String,
    /// `swapped`, `refused`, `passed` or `rolled-back`.
    pub state: String,
    pub reason: Option<String>,
}

impl Db {
    /// Records a new open swap.
    pub async fn open_cluster_swap(&self, s: &ClusterSwap) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_swaps (id, backend, part, wasm, manifest, probation_ms, state, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $8)",
        )
        .bind(&s.id)
        .bind(&s.backend)
        .bind(&s.part)
        .bind(&s.wasm)
        .bind(&s.manifest)
        .bind(s.probation_ms)
        .bind(&s.created_by)
        .bind(&s.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The swaps of `backends` made since `since` and not committed, oldest first: open
    /// ones to take part in, rolled-back ones to follow.
    pub async fn live_cluster_swaps(
        &self,
        backends: &[String],
        since: &str,
    ) -> Result<Vec<ClusterSwap>> {
        if backends.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM cluster_swaps WHERE state IN ('open', 'rolled-back') AND created_at >= $1 \
             AND backend IN ({}) ORDER BY created_at, id",
            super::in_list(2, backends.len())
        );
        let mut q = sqlx::query(&sql).bind(since);
        for b in backends {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(ClusterSwap::from_row).collect()
    }

    /// Moves an open swap to `state` (`rolled-back` with why, or `committed`); false when
    /// it was no longer open.
    pub async fn close_cluster_swap(
        &self,
        id: &str,
        state: &str,
        reason: Option<&str>,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE cluster_swaps SET state = $1, reason = $2, updated_at = $3 WHERE id = $4 AND state = 'open'",
        )
        .bind(state)
        .bind(reason)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Records `host`'s part in a swap.
    pub async fn set_swap_host(
        &self,
        id: &str,
        host: &str,
        state: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_swap_hosts (swap_id, host, state, reason, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (swap_id, host) DO UPDATE SET state = excluded.state, reason = excluded.reason, \
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(host)
        .bind(state)
        .bind(reason)
        .bind(time::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every host's part in a swap, by host.
    pub async fn swap_hosts(&self, id: &str) -> Result<Vec<SwapHost>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT host, state, reason FROM cluster_swap_hosts WHERE swap_id = $1 ORDER BY host",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(host, state, reason)| SwapHost {
                host,
                state,
                reason,
            })
            .collect())
    }

    /// The hosts whose volume service runs `cluster_backend` (`CLUSTER@BACKEND`) and
    /// heartbeated at or after `up_since`.
    pub async fn live_cluster_hosts(
        &self,
        cluster_backend: &str,
        up_since: &str,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT host FROM services WHERE cluster = $1 AND \"binary\" = 'cinder-volume' AND updated_at >= $2 ORDER BY host",
        )
        .bind(cluster_backend)
        .bind(up_since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(h,)| {
                h.split_once('@')
                    .map_or(h.clone(), |(host, _)| host.to_string())
            })
            .collect())
    }
}
