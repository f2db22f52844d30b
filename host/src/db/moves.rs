//! Volumes that move: a migration to another backend (`os-migrate_volume`, a retype that
//! needs one, a drained backend's volumes) and a retype. Each starts in one write
//! transaction with the status change, `migration_status` and the job; a migration ends
//! in one conditional update that points the volume at its copy only if nothing touched
//! the volume while it was copied.

use super::quotas::{self, Column, OverQuota, QuotaKey};
use super::volumes::{SNAPSHOTS_OF, reading, snapshots_of};
use super::{Db, JobRow, Reading, Result, time};
use crate::volume::status::VolumeStatus;

/// `migration_status` values under which a volume is not moving: another migration or a
/// retype may start, and so may any operation that changes its status.
pub const SETTLED_MIGRATION: &str =
    "(migration_status IS NULL OR migration_status IN ('success', 'error'))";

/// Why a migration or a retype could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveRefused {
    /// Gone, or not in a status it may start from (the status now, if any).
    Status(Option<String>),
    /// A migration or a retype of it is under way.
    Migrating,
    /// It has this many snapshots (a migration copies the volume alone).
    HasSnapshots(i64),
    Busy(Reading),
    /// The new type's per-type quota is exceeded.
    Quota(OverQuota),
}

/// What a migration that finished changes on the volume.
#[derive(Debug, Clone)]
pub struct MigrationDone<'a> {
    pub id: &'a str,
    /// The revision the volume had once the copy began: any change since aborts.
    pub revision: i64,
    /// The status the migration held it in, and the one it goes back to.
    pub held: VolumeStatus,
    pub back: VolumeStatus,
    pub host: &'a str,
    pub name_id: &'a str,
    pub provider_location: Option<&'a str>,
    pub provider_auth: Option<&'a str>,
    /// A retype's new type.
    pub new_type_id: Option<&'a str>,
}

impl Db {
    /// Starts a migration of volume `id`: from `available` (held in `maintenance` when
    /// `lock`, else left `available`) with `migration_status` `starting`, refused while it
    /// has snapshots, is being read or is already moving; the job in the same transaction.
    pub async fn begin_migration(
        &self,
        id: &str,
        lock: bool,
        job: &JobRow,
    ) -> Result<std::result::Result<(), MoveRefused>> {
        let mut tx = self.write_tx().await?;
        if let Some(refused) = move_blockers(&mut tx, id, true).await? {
            return Ok(Err(refused));
        }
        let held = if lock { "maintenance" } else { "available" };
        let res = sqlx::query(&format!(
            "UPDATE volumes SET status = $1, migration_status = 'starting', updated_at = $2 \
             WHERE id = $3 AND deleted = 0 AND status = 'available' AND {SETTLED_MIGRATION}"
        ))
        .bind(held)
        .bind(time::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(Err(status_now(&mut tx, id).await?));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Starts a retype of volume `id` to type `new_type_id`: from `available` or `in-use`
    /// to `retyping`, `migration_status` `starting` (a retype may migrate), the per-type
    /// usage moved from the old type to the new one (checked against the new type's
    /// limits), and the job, in one transaction.
    pub async fn begin_retype(
        &self,
        id: &str,
        new_type_id: &str,
        job: &JobRow,
    ) -> Result<std::result::Result<(), MoveRefused>> {
        let mut tx = self.write_tx().await?;
        if let Some(refused) = move_blockers(&mut tx, id, false).await? {
            return Ok(Err(refused));
        }
        let res = sqlx::query(&format!(
            "UPDATE volumes SET status = 'retyping', migration_status = 'starting', updated_at = $1 \
             WHERE id = $2 AND deleted = 0 AND status IN ('available', 'in-use') AND {SETTLED_MIGRATION}"
        ))
        .bind(time::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(Err(status_now(&mut tx, id).await?));
        }
        if let Err(over) = self.move_type_usage(&mut tx, id, Some(new_type_id)).await? {
            return Ok(Err(MoveRefused::Quota(over)));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Moves volume `id`'s per-type usage (`volumes_T`, `gigabytes_T`) from the type its
    /// row names to `to`, checking `to`'s limits; the row's type is not changed here.
    async fn move_type_usage(
        &self,
        c: &mut super::Conn,
        id: &str,
        to: Option<&str>,
    ) -> Result<std::result::Result<(), OverQuota>> {
        let Some((project, from, size)) = quotas::volume_counted(&mut *c, id).await? else {
            return Ok(Ok(()));
        };
        self.shift_type_usage(c, &project, size, from.as_deref(), to, true)
            .await
    }

    /// Moves one volume of `size` GiB in `project` from type `from` to type `to`
    /// (`volumes_T` and `gigabytes_T`), `to`'s limits checked when `checked` (a usage
    /// given back is not).
    async fn shift_type_usage(
        &self,
        c: &mut super::Conn,
        project: &str,
        size: i64,
        from: Option<&str>,
        to: Option<&str>,
        checked: bool,
    ) -> Result<std::result::Result<(), OverQuota>> {
        if from == to {
            return Ok(Ok(()));
        }
        let per_type = |t: &str, sign: i64| {
            vec![
                (QuotaKey::of_type("volumes", t), sign),
                (QuotaKey::of_type("gigabytes", t), sign * size),
            ]
        };
        if let Some(t) = to {
            if checked {
                let charged = quotas::charge(
                    &mut *c,
                    &self.quota_defaults,
                    project,
                    &per_type(t, 1),
                    Column::InUse,
                )
                .await?;
                if let Err(over) = charged {
                    return Ok(Err(over));
                }
            } else {
                quotas::commit(&mut *c, project, &per_type(t, 1)).await?;
            }
        }
        if let Some(f) = from {
            quotas::commit(&mut *c, project, &per_type(f, -1)).await?;
        }
        Ok(Ok(()))
    }

    /// Records a migration's progress (`migrating`, `completing`) while the volume is
    /// still held in `held`; answers the volume's revision after the change, `None` when
    /// it is no longer held so.
    pub async fn set_migration_status(
        &self,
        id: &str,
        held: VolumeStatus,
        status: &str,
    ) -> Result<Option<i64>> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volumes SET migration_status = $1 WHERE id = $2 AND deleted = 0 AND status = $3",
        )
        .bind(status)
        .bind(id)
        .bind(held.as_str())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(None);
        }
        let revision: i64 = sqlx::query_scalar("SELECT revision FROM volumes WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(revision))
    }

    /// Points the volume at its copy: its host, the id its storage is named after, the
    /// copy's provider fields, a retype's new type, `migration_status` `completing` (until
    /// the storage it left is deleted, see [`Db::end_migration`]) and its status back — only if nothing changed it since the copy began (its revision), it
    /// has no snapshot and nothing reads it. False when that no longer holds: the copy is
    /// not the volume's data, and the migration must be undone.
    pub async fn complete_migration(&self, d: &MigrationDone<'_>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        if reading(&mut tx, d.id).await?.is_some() {
            return Ok(false);
        }
        let res = sqlx::query(
            "UPDATE volumes SET host = $1, name_id = $2, provider_location = $3, provider_auth = $4, \
             volume_type_id = COALESCE($5, volume_type_id), migration_status = 'completing', \
             status = $6, updated_at = $7 \
             WHERE id = $8 AND deleted = 0 AND revision = $9 AND status = $10 \
             AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.volume_id = $8 AND s.deleted = 0)",
        )
        .bind(d.host)
        .bind(d.name_id)
        .bind(d.provider_location)
        .bind(d.provider_auth)
        .bind(d.new_type_id)
        .bind(d.back.as_str())
        .bind(time::now())
        .bind(d.id)
        .bind(d.revision)
        .bind(d.held.as_str())
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A migration whose volume points at its copy is over once the storage it left is
    /// deleted: `completing` → `success`.
    pub async fn end_migration(&self, id: &str, name_id: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET migration_status = 'success' \
             WHERE id = $1 AND deleted = 0 AND name_id = $2 AND migration_status = 'completing'",
        )
        .bind(id)
        .bind(name_id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// A retype done in place (the driver changed the volume, or nothing on the backend
    /// depends on the type): the new type, `migration_status` `success`, the status back.
    pub async fn finish_retype(
        &self,
        id: &str,
        new_type_id: &str,
        back: VolumeStatus,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET volume_type_id = $1, status = $2, migration_status = 'success', updated_at = $3 \
             WHERE id = $4 AND deleted = 0 AND status = 'retyping'",
        )
        .bind(new_type_id)
        .bind(back.as_str())
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// A migration or a retype failed: `migration_status` `error`, the status back from
    /// `held` to `back` (if it is still held), and a retype's per-type usage moved back
    /// to the type the row still names.
    pub async fn fail_move(
        &self,
        id: &str,
        held: VolumeStatus,
        back: VolumeStatus,
        retype_to: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volumes SET migration_status = 'error', status = $1, updated_at = $2 \
             WHERE id = $3 AND deleted = 0 AND status = $4",
        )
        .bind(back.as_str())
        .bind(time::now())
        .bind(id)
        .bind(held.as_str())
        .execute(&mut *tx)
        .await?;
        if let Some(new_type) = retype_to
            && res.rows_affected() == 1
            && let Some((project, old, size)) = quotas::volume_counted(&mut tx, id).await?
        {
            // The usage went to the new type when the retype began; the row still names
            // the old one, which takes it back.
            self.shift_type_usage(
                &mut tx,
                &project,
                size,
                Some(new_type),
                old.as_deref(),
                false,
            )
            .await?
            .ok();
        }
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// The live volumes placed on backend `key` (`HOST@BACKEND` or `CLUSTER@BACKEND`),
    /// oldest first.
    pub async fn volumes_on(&self, key: &str) -> Result<Vec<crate::db::VolumeRow>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM volumes WHERE deleted = 0 AND (host = $1 OR substr(host, 1, length($2)) = $2) \
             ORDER BY created_at, id",
        )
        .bind(key)
        .bind(format!("{key}#"))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = self.get_volume(&id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Forgets this host's service `host` (`HOST@BACKEND`) of a removed backend, and the
    /// stats it wrote for `key`.
    pub async fn forget_backend(&self, host: &str, key: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM services WHERE host = $1 AND \"binary\" = 'cinder-volume'")
            .bind(host)
            .execute(&mut *tx)
            .await?;
        let owner = host.split_once('@').map_or(host, |(h, _)| h);
        sqlx::query("DELETE FROM backend_stats WHERE backend = $1 AND host = $2")
            .bind(key)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many live snapshots volume `id` has.
    pub async fn snapshot_count(&self, id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(SNAPSHOTS_OF)
            .bind(id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Whether volume `id` is moving (a migration or a retype under way).
    pub async fn is_migrating(&self, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM volumes WHERE id = $1 AND deleted = 0 AND NOT {SETTLED_MIGRATION}"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}

/// What stops volume `id` from moving now: a migration under way, snapshots (when
/// `no_snapshots`: a migration copies the volume alone), work reading it.
async fn move_blockers(
    tx: &mut super::Tx,
    id: &str,
    no_snapshots: bool,
) -> Result<Option<MoveRefused>> {
    let moving: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT CASE WHEN {SETTLED_MIGRATION} THEN 0 ELSE 1 END FROM volumes WHERE id = $1 AND deleted = 0"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    match moving {
        None => return Ok(Some(MoveRefused::Status(None))),
        Some(1) => return Ok(Some(MoveRefused::Migrating)),
        _ => {}
    }
    if no_snapshots {
        let snaps = snapshots_of(tx, id).await?;
        if snaps > 0 {
            return Ok(Some(MoveRefused::HasSnapshots(snaps)));
        }
    }
    Ok(reading(tx, id).await?.map(MoveRefused::Busy))
}

async fn status_now(tx: &mut super::Tx, id: &str) -> Result<MoveRefused> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM volumes WHERE id = $1 AND deleted = 0")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(MoveRefused::Status(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::{db, insert_volume, volume};

    fn job(id: &str) -> JobRow {
        JobRow::new("migrate_volume", id, "{}".into())
    }

    #[tokio::test]
    async fn a_moving_volume_starts_nothing_else_until_it_has_moved() {
        let (db, _dir) = db().await;
        let v = crate::db::VolumeRow {
            status: VolumeStatus::Available,
            host: Some("h@a#p".into()),
            ..volume("v-1", "p")
        };
        insert_volume(&db, &v).await;
        // Unlocked: it stays available, but nothing else may start.
        db.begin_migration("v-1", false, &job("v-1"))
            .await
            .unwrap()
            .unwrap();
        assert!(db.is_migrating("v-1").await.unwrap());
        let delete = JobRow::new("delete_volume", "v-1", "{}".into());
        assert!(matches!(
            db.begin_delete_volume("v-1", &[VolumeStatus::Available], &delete)
                .await
                .unwrap(),
            Err(crate::db::DeleteRefused::Status)
        ));
        // Nor a second migration, nor a retype.
        assert_eq!(
            db.begin_migration("v-1", true, &job("v-1")).await.unwrap(),
            Err(MoveRefused::Migrating)
        );
        // The copy began at this revision; an update since makes the completion refuse.
        let revision = db
            .set_migration_status("v-1", VolumeStatus::Available, "migrating")
            .await
            .unwrap()
            .unwrap();
        let done = MigrationDone {
            id: "v-1",
            revision,
            held: VolumeStatus::Available,
            back: VolumeStatus::Available,
            host: "h@b#p",
            name_id: "n-1",
            provider_location: None,
            provider_auth: None,
            new_type_id: None,
        };
        db.set_volume_bootable("v-1", true).await.unwrap();
        assert!(!db.complete_migration(&done).await.unwrap());
        let now = db.get_volume("v-1").await.unwrap().unwrap();
        assert_eq!(now.host.as_deref(), Some("h@a#p"));
        // At the revision it has, it completes, and then it is settled once the storage
        // it left is gone.
        let done = MigrationDone {
            revision: now.revision,
            ..done
        };
        assert!(db.complete_migration(&done).await.unwrap());
        let moved = db.get_volume("v-1").await.unwrap().unwrap();
        assert_eq!(moved.host.as_deref(), Some("h@b#p"));
        assert_eq!(moved.name_id.as_deref(), Some("n-1"));
        assert_eq!(moved.migration_status.as_deref(), Some("completing"));
        assert!(db.is_migrating("v-1").await.unwrap());
        assert!(db.end_migration("v-1", "n-1").await.unwrap());
        assert!(!db.is_migrating("v-1").await.unwrap());
        assert_eq!(
            db.storage_id_of("v-1").await.unwrap().as_deref(),
            Some("n-1")
        );
        db.begin_delete_volume("v-1", &[VolumeStatus::Available], &delete)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_failed_move_gives_the_volume_back_as_it_was() {
        let (db, _dir) = db().await;
        let v = crate::db::VolumeRow {
            status: VolumeStatus::InUse,
            host: Some("h@a#p".into()),
            ..volume("v-2", "p")
        };
        insert_volume(&db, &v).await;
        db.begin_retype("v-2", "t-new", &job("v-2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.get_volume("v-2").await.unwrap().unwrap().status,
            VolumeStatus::Retyping
        );
        assert!(
            db.fail_move(
                "v-2",
                VolumeStatus::Retyping,
                VolumeStatus::InUse,
                Some("t-new")
            )
            .await
            .unwrap()
        );
        let back = db.get_volume("v-2").await.unwrap().unwrap();
        assert_eq!(back.status, VolumeStatus::InUse);
        assert_eq!(back.migration_status.as_deref(), Some("error"));
        assert!(!db.is_migrating("v-2").await.unwrap());
    }
}
