//! Volume transfers: the offer (the volume `awaiting-transfer`), its cancellation and its
//! acceptance, each one transaction with the volume's status change.

use super::DbRow;
use sqlx::Row;

use super::volumes::reading;
use super::{Db, OverQuota, Reading, Resource, Result, move_status, time};
use crate::volume::status::VolumeStatus;

/// A transfer as stored. The key itself is never stored: only `salt` and `crypt_hash`.
#[derive(Debug, Clone)]
pub struct TransferRow {
    pub id: String,
    pub volume_id: String,
    pub display_name: Option<String>,
    pub salt: String,
    pub crypt_hash: String,
    pub no_snapshots: bool,
    pub source_project_id: String,
    pub destination_project_id: Option<String>,
    pub accepted: bool,
    pub created_at: String,
}

impl TransferRow {
    fn from_row(r: &DbRow) -> Result<Self> {
        Ok(TransferRow {
            id: r.try_get("id")?,
            volume_id: r.try_get("volume_id")?,
            display_name: r.try_get("display_name")?,
            salt: r.try_get("salt")?,
            crypt_hash: r.try_get("crypt_hash")?,
            no_snapshots: r.try_get::<i64, _>("no_snapshots")? != 0,
            source_project_id: r.try_get("source_project_id")?,
            destination_project_id: r.try_get("destination_project_id")?,
            accepted: r.try_get::<i64, _>("accepted")? != 0,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// Why a transfer could not be offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferRefused {
    /// The volume is gone, or not in a status a transfer starts from (its status).
    Volume(Option<String>),
    /// A snapshot of it (id, status) is not `available`, and the snapshots go with it.
    Snapshot(String, String),
    /// Something is reading it.
    Busy(Reading),
}

/// Why an accept did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptRefused {
    /// The transfer is gone: accepted or cancelled in the meantime.
    Gone,
    /// The volume is no longer `awaiting-transfer` (its status, if it is still there).
    Volume(Option<String>),
    /// The receiving project has no room for the volume (and its snapshots).
    Quota(OverQuota),
}

impl Db {
    /// Records `t` and moves its volume from one of `from` to `awaiting-transfer`, in one
    /// transaction; nothing is written when the volume is not in one of `from`, something
    /// reads it, or (unless `no_snapshots`) one of its snapshots is not `available`.
    pub async fn offer_transfer(
        &self,
        t: &TransferRow,
        from: &[VolumeStatus],
    ) -> Result<Result<(), OfferRefused>> {
        let mut tx = self.write_tx().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM volumes WHERE id = $1 AND deleted = 0")
                .bind(&t.volume_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(Err(OfferRefused::Volume(None)));
        };
        if let Some(r) = reading(&mut tx, &t.volume_id).await? {
            return Ok(Err(OfferRefused::Busy(r)));
        }
        if !t.no_snapshots {
            let unready: Option<(String, String)> = sqlx::query_as(
                "SELECT id, status FROM snapshots WHERE volume_id = $1 AND deleted = 0 \
                 AND status <> 'available' ORDER BY created_at, id LIMIT 1",
            )
            .bind(&t.volume_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((id, status)) = unready {
                return Ok(Err(OfferRefused::Snapshot(id, status)));
            }
        }
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        if !move_status(
            &mut tx,
            Resource::Volumes,
            &t.volume_id,
            &from,
            VolumeStatus::AwaitingTransfer.as_str(),
        )
        .await?
        {
            return Ok(Err(OfferRefused::Volume(Some(status))));
        }
        sqlx::query(
            "INSERT INTO transfers (id, volume_id, display_name, salt, crypt_hash, no_snapshots, \
             source_project_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&t.id)
        .bind(&t.volume_id)
        .bind(&t.display_name)
        .bind(&t.salt)
        .bind(&t.crypt_hash)
        .bind(t.no_snapshots as i64)
        .bind(&t.source_project_id)
        .bind(&t.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// A live (neither accepted nor cancelled) transfer.
    pub async fn get_transfer(&self, id: &str) -> Result<Option<TransferRow>> {
        let row = sqlx::query("SELECT * FROM transfers WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| TransferRow::from_row(&r)).transpose()
    }

    /// Live transfers offered by `project` (every project's with `None`), newest first.
    pub async fn list_transfers(&self, project: Option<&str>) -> Result<Vec<TransferRow>> {
        let rows = sqlx::query(
            "SELECT * FROM transfers WHERE deleted = 0 AND ($1 IS NULL OR source_project_id = $1) \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TransferRow::from_row).collect()
    }

    /// Cancels a live transfer and returns its volume from `awaiting-transfer` to
    /// `available`, in one transaction. `None` when there was no such live transfer; else
    /// whether the volume was returned (it was not if something moved it meanwhile, which
    /// only an administrator's reset can).
    pub async fn cancel_transfer(&self, id: &str) -> Result<Option<bool>> {
        let mut tx = self.write_tx().await?;
        let now = time::now();
        let volume: Option<String> = sqlx::query_scalar(
            "UPDATE transfers SET deleted = 1, deleted_at = $1, updated_at = $1 \
             WHERE id = $2 AND deleted = 0 RETURNING volume_id",
        )
        .bind(&now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(volume) = volume else {
            return Ok(None);
        };
        let returned = move_status(
            &mut tx,
            Resource::Volumes,
            &volume,
            &[VolumeStatus::AwaitingTransfer.as_str()],
            VolumeStatus::Available.as_str(),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(returned))
    }

    /// Accepts a live transfer for `user_id` in `project_id`, in one transaction: the
    /// transfer is marked accepted (and no longer live), the volume moves to the new
    /// owner and from `awaiting-transfer` to `available`, and its snapshots move with it
    /// unless the offer said `no_snapshots`. Of two racing accepts, the second finds the
    /// transfer gone. The accepted transfer, as it now reads.
    pub async fn accept_transfer(
        &self,
        id: &str,
        user_id: &str,
        project_id: &str,
    ) -> Result<Result<TransferRow, AcceptRefused>> {
        let mut tx = self.write_tx().await?;
        let now = time::now();
        let row = sqlx::query(
            "UPDATE transfers SET deleted = 1, deleted_at = $1, updated_at = $1, accepted = 1, \
             destination_project_id = $2 WHERE id = $3 AND deleted = 0 RETURNING *",
        )
        .bind(&now)
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Err(AcceptRefused::Gone));
        };
        let transfer = TransferRow::from_row(&row)?;
        let moved = sqlx::query(
            "UPDATE volumes SET project_id = $1, user_id = $2, status = 'available', updated_at = $3 \
             WHERE id = $4 AND deleted = 0 AND status = 'awaiting-transfer'",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(&now)
        .bind(&transfer.volume_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM volumes WHERE id = $1 AND deleted = 0")
                    .bind(&transfer.volume_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Ok(Err(AcceptRefused::Volume(status)));
        }
        if !transfer.no_snapshots {
            sqlx::query(
                "UPDATE snapshots SET project_id = $1, user_id = $2, updated_at = $3 \
                 WHERE volume_id = $4 AND deleted = 0",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(&now)
            .bind(&transfer.volume_id)
            .execute(&mut *tx)
            .await?;
        }
        // The usage moves with the rows, in this transaction: the receiver's quotas are
        // checked as for a create (Cinder reserves for it and gives the donor back).
        if let Err(over) = self
            .move_volume_usage(
                &mut tx,
                &transfer.volume_id,
                &transfer.source_project_id,
                project_id,
                !transfer.no_snapshots,
            )
            .await?
        {
            return Ok(Err(AcceptRefused::Quota(over)));
        }
        tx.commit().await?;
        Ok(Ok(transfer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    async fn volume(db: &Db, id: &str, status: &str) {
        sqlx::query(
            "INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, created_at) \
             VALUES ($1, 'giver', 'u1', 1, $2, 'nova', 't')",
        )
        .bind(id)
        .bind(status)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    fn offer(id: &str, volume: &str, no_snapshots: bool) -> TransferRow {
        TransferRow {
            id: id.into(),
            volume_id: volume.into(),
            display_name: None,
            salt: "s".into(),
            crypt_hash: "h".into(),
            no_snapshots,
            source_project_id: "giver".into(),
            destination_project_id: None,
            accepted: false,
            created_at: time::now(),
        }
    }

    #[tokio::test]
    async fn an_offer_waits_and_its_accept_moves_the_volume_once() {
        let (db, _dir) = testing::db().await;
        volume(&db, "v1", "available").await;
        let avail = [VolumeStatus::Available];
        db.offer_transfer(&offer("t1", "v1", false), &avail)
            .await
            .unwrap()
            .unwrap();
        let v = db.get_volume("v1").await.unwrap().unwrap();
        assert_eq!(v.status, VolumeStatus::AwaitingTransfer);
        // A second offer of the same volume finds it awaiting transfer.
        assert_eq!(
            db.offer_transfer(&offer("t2", "v1", false), &avail)
                .await
                .unwrap(),
            Err(OfferRefused::Volume(Some("awaiting-transfer".into())))
        );
        let t = db
            .accept_transfer("t1", "u2", "taker")
            .await
            .unwrap()
            .unwrap();
        assert!(t.accepted);
        assert_eq!(t.destination_project_id.as_deref(), Some("taker"));
        let v = db.get_volume("v1").await.unwrap().unwrap();
        assert_eq!(
            (v.status, v.project_id.as_str(), v.user_id.as_str()),
            (VolumeStatus::Available, "taker", "u2")
        );
        assert!(db.get_transfer("t1").await.unwrap().is_none());
        assert_eq!(
            db.accept_transfer("t1", "u3", "other")
                .await
                .unwrap()
                .unwrap_err(),
            AcceptRefused::Gone
        );
        assert_eq!(db.cancel_transfer("t1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_cancel_returns_the_volume() {
        let (db, _dir) = testing::db().await;
        volume(&db, "v1", "available").await;
        db.offer_transfer(&offer("t1", "v1", true), &[VolumeStatus::Available])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.cancel_transfer("t1").await.unwrap(), Some(true));
        let v = db.get_volume("v1").await.unwrap().unwrap();
        assert_eq!(v.status, VolumeStatus::Available);
        assert_eq!(v.project_id, "giver");
    }
}
