//! The `tokens` table: who a token stands for, found by the token's SHA-256.

use super::DbRow;
use sqlx::Row;

use super::{Db, Result, time};

/// One token, without the token itself (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    /// Role names as they were given (`admin`, `member`, `reader`).
    pub roles: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl TokenRow {
    fn from_row(r: &DbRow) -> Result<Self> {
        let roles: String = r.try_get("roles")?;
        Ok(TokenRow {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            project_id: r.try_get("project_id")?,
            roles: roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }

    /// Whether it has expired by `now` (a [`time::format`] timestamp: they compare as text).
    pub fn expired_at(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_some_and(|e| e <= now)
    }
}

impl Db {
    /// Stores a new token under its hash.
    pub async fn insert_token(&self, row: &TokenRow, hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, hash, user_id, project_id, roles, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(hash)
        .bind(&row.user_id)
        .bind(&row.project_id)
        .bind(row.roles.join(","))
        .bind(&row.created_at)
        .bind(&row.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token whose SHA-256 is `hash`, revoked or expired ones included.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(TokenRow::from_row).transpose()
    }

    /// Every token, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(TokenRow::from_row).collect()
    }

    /// Revokes a token: `None` when there is no such token, `Some(false)` when it was
    /// revoked already (its first revocation time is kept).
    pub async fn revoke_token(&self, id: &str) -> Result<Option<bool>> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(time::now())
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if done == 1 {
            return Ok(Some(true));
        }
        let known: Option<String> = sqlx::query_scalar("SELECT id FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(known.map(|_| false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stored_found_by_hash_and_revoked_once() {
        let (db, _dir) = crate::db::testing::db().await;
        let row = TokenRow {
            id: "t1".into(),
            user_id: "u".into(),
            project_id: "p".into(),
            roles: vec!["member".into(), "reader".into()],
            created_at: time::now(),
            expires_at: Some("2000-01-01T00:00:00.000000".into()),
            revoked_at: None,
        };
        db.insert_token(&row, "abc").await.unwrap();
        let found = db.token_by_hash("abc").await.unwrap().unwrap();
        assert_eq!(found, row);
        assert!(found.expired_at(&time::now()));
        assert!(db.token_by_hash("abd").await.unwrap().is_none());
        assert_eq!(db.revoke_token("t1").await.unwrap(), Some(true));
        assert_eq!(db.revoke_token("t1").await.unwrap(), Some(false));
        assert_eq!(db.revoke_token("t2").await.unwrap(), None);
        let listed = db.list_tokens().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some());
    }
}
