//! Volumes, their metadata, and the status changes of their life.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::list::{ListError, ListQuery, Listing, Match};
use super::quotas::{self, Column, OverQuota};
use super::{AttachmentRow, Db, DbError, JobRow, Resource, Result, move_status, time};
use crate::volume::status::{AttachStatus, VolumeStatus};

/// A volume as the store reads it (see [`VOLUME_JSON`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "VolumeJson")]
pub struct VolumeRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    pub status: VolumeStatus,
    pub attach_status: AttachStatus,
    pub availability_zone: String,
    pub volume_type_id: Option<String>,
    /// The name of the volume type, read with the row.
    pub volume_type_name: Option<String>,
    /// `host@backend#pool` once scheduled.
    pub host: Option<String>,
    pub provider_location: Option<String>,
    pub provider_auth: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub bootable: bool,
    pub multiattach: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub launched_at: Option<String>,
    /// Changes whenever anything the volume's view shows changes (see migration 0005);
    /// 0 for a row not yet stored.
    pub revision: i64,
    /// Cinder's `migration_status`: `None` until a migration or a retype moved it.
    pub migration_status: Option<String>,
    /// Cinder's `_name_id`: the id the volume's storage is named after when a migration
    /// moved it onto storage made for another id; `None` for its own.
    pub name_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Cinder's admin metadata: `readonly` (`True`/`False`, set by
    /// `os-update_readonly_flag`) and `attached_mode` (`rw`/`ro`, while attached).
    pub admin_metadata: BTreeMap<String, String>,
    /// The image metadata the volume carries (`volume_image_metadata`); empty for none.
    pub image_metadata: BTreeMap<String, String>,
    /// Live attachments, oldest first.
    pub attachments: Vec<AttachmentRow>,
}

/// A volume row as JSON: `[[columns…], metadata, admin metadata, image metadata,
/// [attachments…]]` — its columns and its type's name, its three metadata objects as
/// stored, and its live attachments (oldest first).
/// A page is read as one text of these: no row and no column per volume for the driver to
/// copy, and no lookup per volume for its metadata.
const VOLUME_JSON: &str = concat!(
    "'[' || json_array(v.id, v.project_id, v.user_id, v.name, v.description, v.size, \
     v.status, v.attach_status, v.availability_zone, v.volume_type_id, t.name, v.host, \
     v.provider_location, v.provider_auth, v.snapshot_id, v.source_volid, v.bootable, \
     v.multiattach, v.created_at, v.updated_at, v.launched_at, v.revision, \
     v.migration_status, v.name_id) || ',' || v.metadata || ',' || \
     v.admin_metadata || ',' || v.image_metadata || ',[' || \
     COALESCE((SELECT group_concat(j, ',') FROM (SELECT ",
    attachment_json!(),
    " AS j FROM volume_attachments a WHERE a.volume_id = v.id AND a.deleted = 0 \
     ORDER BY a.created_at, a.id) AS attached), '') || ']]'"
);

/// The columns of [`VOLUME_JSON`], in order.
#[derive(Deserialize)]
struct VolumeColumns {
    id: String,
    project_id: String,
    user_id: String,
    name: Option<String>,
    description: Option<String>,
    size: i64,
    status: VolumeStatus,
    attach_status: AttachStatus,
    availability_zone: String,
    volume_type_id: Option<String>,
    volume_type_name: Option<String>,
    host: Option<String>,
    provider_location: Option<String>,
    provider_auth: Option<String>,
    snapshot_id: Option<String>,
    source_volid: Option<String>,
    bootable: i64,
    multiattach: i64,
    created_at: String,
    updated_at: Option<String>,
    launched_at: Option<String>,
    revision: i64,
    migration_status: Option<String>,
    name_id: Option<String>,
}

#[derive(Deserialize)]
struct VolumeJson(
    VolumeColumns,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<AttachmentRow>,
);

impl From<VolumeJson> for VolumeRow {
    fn from(
        VolumeJson(c, metadata, admin_metadata, image_metadata, attachments): VolumeJson,
    ) -> Self {
        VolumeRow {
            id: c.id,
            project_id: c.project_id,
            user_id: c.user_id,
            name: c.name,
            description: c.description,
            size: c.size,
            status: c.status,
            attach_status: c.attach_status,
            availability_zone: c.availability_zone,
            volume_type_id: c.volume_type_id,
            volume_type_name: c.volume_type_name,
            host: c.host,
            provider_location: c.provider_location,
            provider_auth: c.provider_auth,
            snapshot_id: c.snapshot_id,
            source_volid: c.source_volid,
            bootable: c.bootable != 0,
            multiattach: c.multiattach != 0,
            created_at: c.created_at,
            updated_at: c.updated_at,
            launched_at: c.launched_at,
            revision: c.revision,
            migration_status: c.migration_status,
            name_id: c.name_id,
            metadata,
            admin_metadata,
            image_metadata,
            attachments,
        }
    }
}

pub(super) fn metadata_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).expect("string map serialises")
}

impl VolumeRow {
    /// A row of [`VOLUME_JSON`].
    fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| DbError::Corrupt {
            table: "volumes",
            id: String::new(),
            message: e.to_string(),
        })
    }

    /// The backend part of `host@backend#pool`.
    pub fn backend(&self) -> Option<&str> {
        let host = self.host.as_deref()?;
        let after_at = host.split_once('@')?.1;
        Some(after_at.split_once('#').map_or(after_at, |(b, _)| b))
    }

    /// The pool part of `host@backend#pool`.
    pub fn pool(&self) -> Option<&str> {
        Some(self.host.as_deref()?.split_once('#')?.1)
    }
}

/// Work under way that reads a volume's data, which an operation changing its size or
/// data must wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A snapshot of it is being created.
    Snapshot,
    /// A volume is being cloned from it.
    Clone,
}

/// Why a delete could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteRefused {
    HasSnapshots(i64),
    Status,
    Busy(Reading),
}

/// Why an extend could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendRefused {
    Status,
    /// The volume is already at least this large (GiB): an earlier extend got there first.
    NotLarger(i64),
    Busy(Reading),
    /// The new size, or the gigabytes it adds, is over the project's quota.
    Quota(OverQuota),
}

/// Why a revert could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertRefused {
    /// The volume was not in a status a revert may start from.
    Volume,
    /// The snapshot was not `available`.
    Snapshot,
    /// The volume's size is no longer the snapshot's.
    Size,
    Busy(Reading),
}

/// Why a volume made from a source could not be recorded: the source, read again when
/// the volume is written, is no longer usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRefused {
    /// The snapshot is gone or not `available` (its status, if any).
    Snapshot(Option<String>),
    /// The volume is gone or not in a status it may be cloned from (its status, if any).
    Volume(Option<String>),
    /// The source has grown beyond the new volume's size, in GiB.
    Larger(i64),
}

/// Why a volume could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefused {
    /// Its source is no longer usable.
    Source(SourceRefused),
    /// It is over the project's quota.
    Quota(OverQuota),
}

/// Counts a volume's live snapshots.
pub(super) const SNAPSHOTS_OF: &str =
    "SELECT COUNT(*) FROM snapshots WHERE volume_id = $1 AND deleted = 0";

/// How many live snapshots volume `id` has, read in the caller's transaction.
pub(super) async fn snapshots_of(tx: &mut crate::db::Tx, id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(SNAPSHOTS_OF)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?)
}

/// What of [`Reading`] is under way on volume `id`, read in the transaction that is about
/// to change it.
pub(super) async fn reading(tx: &mut crate::db::Tx, id: &str) -> Result<Option<Reading>> {
    let which: i64 = sqlx::query_scalar(
        "SELECT CASE \
           WHEN EXISTS (SELECT 1 FROM snapshots WHERE volume_id = $1 AND deleted = 0 AND status = 'creating') THEN 1 \
           WHEN EXISTS (SELECT 1 FROM volumes WHERE source_volid = $1 AND deleted = 0 AND status = 'creating') THEN 2 \
           ELSE 0 END",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(match which {
        1 => Some(Reading::Snapshot),
        2 => Some(Reading::Clone),
        _ => None,
    })
}

/// Inserts volume `v` in the caller's transaction with the project's usage (`volumes`,
/// `gigabytes` and per type, within `per_volume_gigabytes`) charged; an [`OverQuota`]
/// writes nothing the caller keeps (it rolls the transaction back).
pub(super) async fn insert_volume_row(
    tx: &mut crate::db::Tx,
    defaults: &quotas::QuotaDefaults,
    v: &VolumeRow,
) -> Result<Result<(), OverQuota>> {
    if let Err(over) = quotas::check_per_volume(&mut *tx, defaults, &v.project_id, v.size).await? {
        return Ok(Err(over));
    }
    let deltas = quotas::volume_deltas(v.volume_type_id.as_deref(), v.size, 1);
    if let Err(over) =
        quotas::charge(&mut *tx, defaults, &v.project_id, &deltas, Column::InUse).await?
    {
        return Ok(Err(over));
    }
    sqlx::query(
            "INSERT INTO volumes (id, project_id, user_id, name, description, size, status, attach_status, availability_zone, \
             volume_type_id, host, snapshot_id, source_volid, bootable, multiattach, created_at, updated_at, metadata, \
             image_metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $18)",
        )
        .bind(&v.id)
        .bind(&v.project_id)
        .bind(&v.user_id)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.size)
        .bind(v.status.as_str())
        .bind(v.attach_status.as_str())
        .bind(&v.availability_zone)
        .bind(&v.volume_type_id)
        .bind(&v.host)
        .bind(&v.snapshot_id)
        .bind(&v.source_volid)
        .bind(v.bootable as i64)
        .bind(v.multiattach as i64)
        .bind(&v.created_at)
        .bind(metadata_json(&v.metadata))
        .bind(metadata_json(&v.image_metadata))
        .execute(&mut **tx)
        .await?;
    Ok(Ok(()))
}

/// The volume list: filters and sort keys as Cinder names them.
pub const VOLUME_LIST: Listing = Listing {
    from: "volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id",
    columns: VOLUME_JSON,
    alias: "v",
    live: "v.deleted = 0",
    filters: &[
        ("name", Match::Equal("v.name")),
        ("display_name", Match::Equal("v.name")),
        ("status", Match::Equal("v.status")),
        ("availability_zone", Match::Equal("v.availability_zone")),
        ("bootable", Match::Bool("v.bootable")),
        ("size", Match::Equal("CAST(v.size AS TEXT)")),
        ("volume_type_id", Match::Equal("v.volume_type_id")),
        ("snapshot_id", Match::Equal("v.snapshot_id")),
        ("source_volid", Match::Equal("v.source_volid")),
        ("user_id", Match::Equal("v.user_id")),
        ("metadata", Match::Metadata("v.metadata")),
        ("host", Match::Equal("v.host")),
    ],
    sort_keys: &[
        ("created_at", "v.created_at"),
        ("updated_at", "COALESCE(v.updated_at, '')"),
        ("id", "v.id"),
        ("name", "COALESCE(v.name, '')"),
        ("display_name", "COALESCE(v.name, '')"),
        ("size", "v.size"),
        ("status", "v.status"),
        ("availability_zone", "v.availability_zone"),
        ("bootable", "v.bootable"),
        ("host", "COALESCE(v.host, '')"),
    ],
};

/// The same list as [`VOLUME_LIST`], read as `[id, revision]` per volume: what a list needs
/// to find the views it has already rendered.
pub const VOLUME_REVISIONS: Listing = Listing {
    columns: "json_array(v.id, v.revision)",
    ..VOLUME_LIST
};

fn names(statuses: &[VolumeStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

impl Db {
    /// Inserts a volume (status `creating`) and its job in one transaction, with the
    /// project's usage (`volumes`, `gigabytes` and per type) charged within its quotas. A
    /// volume made from a snapshot or a volume is written only if, in the same
    /// transaction, its source is still usable (`source_states` for a volume) and no
    /// larger than it.
    pub async fn insert_volume_with_job(
        &self,
        v: &VolumeRow,
        source_states: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<Result<(), CreateRefused>> {
        let mut tx = self.write_tx().await?;
        if let Some(snapshot) = &v.snapshot_id {
            let now: Option<(String, i64)> = sqlx::query_as(
                "SELECT status, volume_size FROM snapshots WHERE id = $1 AND deleted = 0",
            )
            .bind(snapshot)
            .fetch_optional(&mut *tx)
            .await?;
            match now {
                Some((status, _)) if status != "available" => {
                    return Ok(Err(CreateRefused::Source(SourceRefused::Snapshot(Some(
                        status,
                    )))));
                }
                None => return Ok(Err(CreateRefused::Source(SourceRefused::Snapshot(None)))),
                Some((_, size)) if size > v.size => {
                    return Ok(Err(CreateRefused::Source(SourceRefused::Larger(size))));
                }
                Some(_) => {}
            }
        }
        if let Some(source) = &v.source_volid {
            let now: Option<(String, i64)> =
                sqlx::query_as("SELECT status, size FROM volumes WHERE id = $1 AND deleted = 0")
                    .bind(source)
                    .fetch_optional(&mut *tx)
                    .await?;
            match now {
                Some((status, _)) if !source_states.iter().any(|s| s.as_str() == status) => {
                    return Ok(Err(CreateRefused::Source(SourceRefused::Volume(Some(
                        status,
                    )))));
                }
                None => return Ok(Err(CreateRefused::Source(SourceRefused::Volume(None)))),
                Some((_, size)) if size > v.size => {
                    return Ok(Err(CreateRefused::Source(SourceRefused::Larger(size))));
                }
                Some(_) => {}
            }
        }
        if let Err(over) = insert_volume_row(&mut tx, &self.quota_defaults, v).await? {
            return Ok(Err(CreateRefused::Quota(over)));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// A live volume with its type name, metadata and attachments.
    pub async fn get_volume(&self, id: &str) -> Result<Option<VolumeRow>> {
        let Some(text): Option<String> = sqlx::query_scalar(&self.dialect.sql(&format!(
            "SELECT {VOLUME_JSON} FROM volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id \
             WHERE v.id = $1 AND v.deleted = 0"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(VolumeRow::from_json(&text)?))
    }

    /// A page of volumes with their metadata and attachments, in one query whatever the
    /// page size (two with a marker).
    pub async fn list_volumes(&self, q: &ListQuery) -> Result<Vec<VolumeRow>, ListError> {
        VOLUME_LIST.fetch_json(self, q).await
    }

    /// The page of [`VOLUME_LIST`] as ids and revisions, in one query.
    pub async fn list_volume_revisions(
        &self,
        q: &ListQuery,
    ) -> Result<Vec<(String, i64)>, ListError> {
        VOLUME_REVISIONS.fetch_json(self, q).await
    }

    /// The live volumes among `ids`, in one query, in no particular order.
    pub async fn volumes_by_ids(&self, ids: &[&str]) -> Result<Vec<VolumeRow>> {
        let ids = serde_json::to_string(ids).expect("strings serialise");
        let text: String = sqlx::query_scalar(&self.dialect.sql(&format!(
            "SELECT '[' || COALESCE(group_concat(j, ','), '') || ']' FROM (SELECT {VOLUME_JSON} AS j \
             FROM volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id \
             WHERE v.id IN (SELECT value FROM {}) AND v.deleted = 0) AS page",
            self.dialect.json_text_array(1)
        )))
        .bind(ids)
        .fetch_one(&self.pool)
        .await?;
        serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
            table: "volumes",
            id: String::new(),
            message: e.to_string(),
        })
    }

    /// Moves a volume from one of `from` to `to` (and inserts `job` in the same
    /// transaction, when given); false when it was not in one of `from`.
    pub async fn transition_volume(
        &self,
        id: &str,
        from: &[VolumeStatus],
        to: VolumeStatus,
        job: Option<&JobRow>,
    ) -> Result<bool> {
        self.transition(Resource::Volumes, id, &names(from), to.as_str(), job)
            .await
    }

    /// Sets a volume's status (and attach status) unconditionally: an administrator's
    /// `os-reset_status`. A volume reset out of `extending` gives back what its extend
    /// reserved.
    pub async fn reset_volume_status(
        &self,
        id: &str,
        status: VolumeStatus,
        attach_status: Option<AttachStatus>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE volumes SET status = $1, attach_status = COALESCE($2, attach_status), updated_at = $3 WHERE id = $4 AND deleted = 0",
        )
        .bind(status.as_str())
        .bind(attach_status.map(|s| s.as_str()))
        .bind(time::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if status != VolumeStatus::Extending {
            quotas::release_reservation(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// Records where a volume was placed (or, `None`, that it is placed nowhere yet) while
    /// it is still `creating`.
    pub async fn set_volume_host(&self, id: &str, host: Option<&str>) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET host = $1, updated_at = $2 WHERE id = $3 AND status = 'creating'",
        )
        .bind(host)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// `creating` → `available` with the driver's model update.
    pub async fn finish_create(
        &self,
        id: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
    ) -> Result<bool> {
        self.made_available(id, "creating", provider_location, provider_auth)
            .await
    }

    /// `from` (`creating`, `managing`) → `available`, launched now, with the driver's
    /// model update.
    async fn made_available(
        &self,
        id: &str,
        from: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
    ) -> Result<bool> {
        let now = time::now();
        let res = sqlx::query(
            "UPDATE volumes SET status = 'available', provider_location = $1, provider_auth = $2, launched_at = $3, updated_at = $3 \
             WHERE id = $4 AND status = $5 AND deleted = 0",
        )
        .bind(provider_location)
        .bind(provider_auth)
        .bind(&now)
        .bind(id)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Starts an extend to `new_size`: the volume from one of `from` to `extending`, with
    /// the job and the added gigabytes reserved within the project's quotas, in one
    /// transaction, unless a snapshot or a clone is reading it or it is already that
    /// large.
    pub async fn begin_extend(
        &self,
        id: &str,
        new_size: i64,
        from: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<Result<(), ExtendRefused>> {
        let mut tx = self.write_tx().await?;
        if let Some(r) = reading(&mut tx, id).await? {
            return Ok(Err(ExtendRefused::Busy(r)));
        }
        let size: Option<i64> =
            sqlx::query_scalar("SELECT size FROM volumes WHERE id = $1 AND deleted = 0")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(size) = size.filter(|s| *s >= new_size) {
            return Ok(Err(ExtendRefused::NotLarger(size)));
        }
        if !move_status(&mut tx, Resource::Volumes, id, &names(from), "extending").await? {
            return Ok(Err(ExtendRefused::Status));
        }
        let Some((project, type_id, size)) = quotas::volume_counted(&mut tx, id).await? else {
            return Ok(Err(ExtendRefused::Status));
        };
        let defaults = &*self.quota_defaults;
        if let Err(over) = quotas::check_per_volume(&mut tx, defaults, &project, new_size).await? {
            return Ok(Err(ExtendRefused::Quota(over)));
        }
        if let Err(over) = quotas::reserve_extend(
            &mut tx,
            defaults,
            &project,
            id,
            type_id.as_deref(),
            new_size - size,
        )
        .await?
        {
            return Ok(Err(ExtendRefused::Quota(over)));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// The id volume `id`'s storage is named after: its `name_id` once a migration moved
    /// it, else its own; `None` when there is no such row.
    pub async fn storage_id_of(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(name_id, id) FROM volumes WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Marks a live volume bootable or not (Cinder's `os-set_bootable`); false when it is
    /// gone or in `maintenance`, which Cinder does not update.
    pub async fn set_volume_bootable(&self, id: &str, bootable: bool) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE volumes SET bootable = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status != 'maintenance'",
        )
        .bind(bootable as i64)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Cinder's volume summary over live volumes, of one project or of all: how many,
    /// their total size in GiB, and each metadata key with its distinct values.
    pub async fn volume_summary(
        &self,
        project: Option<&str>,
    ) -> Result<(i64, i64, BTreeMap<String, Vec<String>>)> {
        let (count, size): (i64, i64) = sqlx::query_as(&self.dialect.sql(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volumes \
             WHERE deleted = 0 AND ($1 IS NULL OR project_id = $1)",
        ))
        .bind(project)
        .fetch_one(&self.pool)
        .await?;
        let pairs: Vec<(String, String)> = sqlx::query_as(&self.dialect.sql(
            "SELECT DISTINCT m.key, m.value FROM volumes v, json_each(v.metadata) m \
             WHERE v.deleted = 0 AND ($1 IS NULL OR v.project_id = $1) ORDER BY m.key, m.value",
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let mut metadata: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in pairs {
            metadata.entry(key).or_default().push(value);
        }
        Ok((count, size, metadata))
    }

    /// Sets the `readonly` admin metadata (`True`/`False`, as Cinder writes a Python
    /// bool), only while the volume is `available`; false when it is not.
    pub async fn set_volume_readonly(&self, id: &str, readonly: bool) -> Result<bool> {
        let res = sqlx::query(&format!(
            "UPDATE volumes SET admin_metadata = {}, updated_at = $2 \
             WHERE id = $3 AND deleted = 0 AND status = 'available'",
            self.dialect
                .json_set_text("admin_metadata", "readonly", "$1")
        ))
        .bind(if readonly { "True" } else { "False" })
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// `extending` → `available` at the new size, with the extend's reservation committed:
    /// the gigabytes added move from `reserved` to `in_use`, in one transaction.
    pub async fn finish_extend(&self, id: &str, new_size: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let Some((project, type_id, size)) = quotas::volume_counted(&mut tx, id).await? else {
            return Ok(false);
        };
        let res = sqlx::query("UPDATE volumes SET status = 'available', size = $1, updated_at = $2 WHERE id = $3 AND status = 'extending'")
            .bind(new_size)
            .bind(time::now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        quotas::release_reservation(&mut tx, id).await?;
        let deltas = quotas::gigabytes_deltas(type_id.as_deref(), new_size - size);
        // Committed, not checked again: the reservation held them within the quota.
        quotas::commit(&mut tx, &project, &deltas).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `deleting` → gone (soft-deleted, as Cinder keeps the row), with its metadata and
    /// any attachments an administrator's force delete left behind; the project's usage
    /// gives the volume back in the same transaction.
    pub async fn finish_delete_volume(&self, id: &str) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let counted = quotas::volume_counted(&mut tx, id).await?;
        let done = self
            .finish_delete(&mut tx, Resource::Volumes, id, &now)
            .await?;
        if let (true, Some((project, type_id, size))) = (done, counted) {
            quotas::release_reservation(&mut tx, id).await?;
            let deltas = quotas::volume_deltas(type_id.as_deref(), size, -1);
            quotas::commit(&mut tx, &project, &deltas).await?;
        }
        sqlx::query(
            "UPDATE volume_attachments SET attach_status = 'detached', detach_time = $1, updated_at = $1, deleted = 1 \
             WHERE volume_id = $2 AND deleted = 0",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    pub async fn update_volume_info(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE volumes SET name = COALESCE($1, name), description = COALESCE($2, description), updated_at = $3 WHERE id = $4")
            .bind(name)
            .bind(description)
            .bind(time::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts a volume delete: refused while snapshots exist, checked in the same
    /// transaction as the status change so a racing snapshot create cannot slip in.
    pub async fn begin_delete_volume(
        &self,
        id: &str,
        from: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<Result<(), DeleteRefused>> {
        let mut tx = self.write_tx().await?;
        let snaps = snapshots_of(&mut tx, id).await?;
        if snaps > 0 {
            return Ok(Err(DeleteRefused::HasSnapshots(snaps)));
        }
        if let Some(r) = reading(&mut tx, id).await? {
            return Ok(Err(DeleteRefused::Busy(r)));
        }
        if !move_status(&mut tx, Resource::Volumes, id, &names(from), "deleting").await? {
            return Ok(Err(DeleteRefused::Status));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Sizes a volume being managed: in one transaction, while it is still `managing`,
    /// its `size` becomes `size` GiB and the project's `gigabytes` (and per type) take
    /// it, within the quotas and `per_volume_gigabytes`. `Ok(false)`: the volume left
    /// `managing` meanwhile.
    pub async fn size_managed_volume(
        &self,
        id: &str,
        size: i64,
    ) -> Result<Result<bool, OverQuota>> {
        let mut tx = self.write_tx().await?;
        let Some((project, type_id, charged)) = quotas::volume_counted(&mut tx, id).await? else {
            return Ok(Ok(false));
        };
        let defaults = &*self.quota_defaults;
        if let Err(over) = quotas::check_per_volume(&mut tx, defaults, &project, size).await? {
            return Ok(Err(over));
        }
        let deltas = quotas::gigabytes_deltas(type_id.as_deref(), size - charged);
        if let Err(over) =
            quotas::charge(&mut tx, defaults, &project, &deltas, Column::InUse).await?
        {
            return Ok(Err(over));
        }
        let res = sqlx::query(
            "UPDATE volumes SET size = $1, updated_at = $2 WHERE id = $3 AND deleted = 0 AND status = 'managing'",
        )
        .bind(size)
        .bind(time::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(Ok(false));
        }
        tx.commit().await?;
        Ok(Ok(true))
    }

    /// `managing` → `available` with the driver's model update.
    pub async fn finish_manage(
        &self,
        id: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
    ) -> Result<bool> {
        self.made_available(id, "managing", provider_location, provider_auth)
            .await
    }

    /// Starts an unmanage (Cinder's `delete(unmanage_only=True)`): the volume from one of
    /// `from` to `unmanaging` (from `error_managing` to `error_managing_deleting`) with its
    /// job, in one transaction; refused, as a delete is,
    /// while it has snapshots or something reads it.
    pub async fn begin_unmanage_volume(
        &self,
        id: &str,
        from: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<Result<(), DeleteRefused>> {
        let mut tx = self.write_tx().await?;
        let snaps = snapshots_of(&mut tx, id).await?;
        if snaps > 0 {
            return Ok(Err(DeleteRefused::HasSnapshots(snaps)));
        }
        if let Some(r) = reading(&mut tx, id).await? {
            return Ok(Err(DeleteRefused::Busy(r)));
        }
        let attached: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM volume_attachments WHERE volume_id = $1 AND deleted = 0",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if attached > 0 {
            return Ok(Err(DeleteRefused::Status));
        }
        // Cinder's two spellings: a volume that failed to be managed is
        // `error_managing_deleting` on its way out, any other `unmanaging`.
        let failed: Vec<&str> = names(from)
            .into_iter()
            .filter(|s| *s == "error_managing")
            .collect();
        let others: Vec<&str> = names(from)
            .into_iter()
            .filter(|s| *s != "error_managing")
            .collect();
        let moved = (!failed.is_empty()
            && move_status(
                &mut tx,
                Resource::Volumes,
                id,
                &failed,
                "error_managing_deleting",
            )
            .await?)
            || (!others.is_empty()
                && move_status(&mut tx, Resource::Volumes, id, &others, "unmanaging").await?);
        if !moved {
            return Ok(Err(DeleteRefused::Status));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// `unmanaging` or `error_managing_deleting` → gone (soft-deleted, as a delete leaves it), with the project's
    /// usage given back in the same transaction; the storage is the backend's again.
    pub async fn finish_unmanage_volume(&self, id: &str) -> Result<bool> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        let counted = quotas::volume_counted(&mut tx, id).await?;
        let res = sqlx::query(
            "UPDATE volumes SET status = 'deleted', deleted = 1, deleted_at = $1, updated_at = $1 \
             WHERE id = $2 AND status IN ('unmanaging', 'error_managing_deleting')",
        )
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let done = res.rows_affected() == 1;
        if let (true, Some((project, type_id, size))) = (done, counted) {
            let deltas = quotas::volume_deltas(type_id.as_deref(), size, -1);
            quotas::commit(&mut tx, &project, &deltas).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The live volumes whose storage is named after one of `ids` (as a backend names
    /// what it holds), for the manageable listing: `(storage id, volume id)`, the storage
    /// id a migrated volume's `name_id`.
    pub async fn live_volume_ids(&self, ids: &[String]) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let sql = format!(
                "SELECT COALESCE(name_id, id), id FROM volumes WHERE deleted = 0 AND COALESCE(name_id, id) IN ({})",
                super::in_list(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, String)>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            found.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }

    /// Which of `ids` are live snapshots.
    pub async fn live_snapshot_ids(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let sql = format!(
                "SELECT id FROM snapshots WHERE deleted = 0 AND id IN ({})",
                super::in_list(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            found.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }

    /// Starts a revert: the volume from one of `from` to `reverting` and its snapshot from
    /// `available` to `restoring`, with the job, in one transaction.
    pub async fn begin_revert(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        from: &[VolumeStatus],
        job: &JobRow,
    ) -> Result<Result<(), RevertRefused>> {
        let now = time::now();
        let mut tx = self.write_tx().await?;
        if !move_status(
            &mut tx,
            Resource::Volumes,
            volume_id,
            &names(from),
            "reverting",
        )
        .await?
        {
            return Ok(Err(RevertRefused::Volume));
        }
        if let Some(r) = reading(&mut tx, volume_id).await? {
            return Ok(Err(RevertRefused::Busy(r)));
        }
        let same_size: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM volumes v JOIN snapshots s ON s.volume_id = v.id \
             WHERE v.id = $1 AND s.id = $2 AND s.volume_size = v.size",
        )
        .bind(volume_id)
        .bind(snapshot_id)
        .fetch_one(&mut *tx)
        .await?;
        if same_size == 0 {
            return Ok(Err(RevertRefused::Size));
        }
        let snap = sqlx::query(
            "UPDATE snapshots SET status = 'restoring', updated_at = $1 WHERE id = $2 AND deleted = 0 AND status = 'available'",
        )
        .bind(&now)
        .bind(snapshot_id)
        .execute(&mut *tx)
        .await?;
        if snap.rows_affected() != 1 {
            return Ok(Err(RevertRefused::Snapshot));
        }
        job.insert(&mut tx, self.dialect).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Records a new provider location / auth from a driver's export.
    pub async fn set_volume_provider(
        &self,
        id: &str,
        provider_location: Option<&str>,
        provider_auth: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE volumes SET provider_location = $1, provider_auth = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(provider_location)
        .bind(provider_auth)
        .bind(time::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Live snapshots of volumes placed on `backend` (`host@backend`).
    pub async fn snapshots_on(&self, backend: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM snapshots s JOIN volumes v ON v.id = s.volume_id \
             WHERE s.deleted = 0 AND v.host LIKE $1",
        )
        .bind(format!("{backend}#%"))
        .fetch_one(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Page;
    use super::super::list::{Scope, SortDir};
    use super::super::testing::db;
    use super::*;

    fn volume(id: &str, project: &str, name: &str, created_at: &str) -> VolumeRow {
        VolumeRow {
            name: Some(name.into()),
            created_at: created_at.into(),
            metadata: BTreeMap::from([("k".into(), id.into())]),
            ..crate::db::testing::volume(id, project)
        }
    }

    fn job(id: &str) -> JobRow {
        JobRow::new("create_volume", id, "{}".into())
    }

    async fn ids(db: &Db, q: &ListQuery) -> Vec<String> {
        db.list_volumes(q)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect()
    }

    #[tokio::test]
    async fn pages_follow_the_marker_in_every_sort_order() {
        let (db, _dir) = db().await;
        for (i, name) in ["c", "a", "b", "a"].iter().enumerate() {
            let v = volume(
                &format!("v{i}"),
                "p",
                name,
                &format!("2026-01-0{}T00:00:00", i + 1),
            );
            db.insert_volume_with_job(&v, &[], &job(&v.id))
                .await
                .unwrap()
                .unwrap();
        }
        let other = volume("x", "q", "a", "2026-01-09T00:00:00");
        db.insert_volume_with_job(&other, &[], &job("x"))
            .await
            .unwrap()
            .unwrap();

        let mut q = ListQuery::project("p");
        assert_eq!(ids(&db, &q).await, ["v3", "v2", "v1", "v0"]);
        q.scope = Scope::All;
        assert_eq!(ids(&db, &q).await.len(), 5);

        // name ascending, ties by id; walk it two at a time with markers.
        let mut q = ListQuery::project("p");
        q.page = Page {
            limit: Some(2),
            sort: vec![("name".into(), SortDir::Asc)],
            ..Page::default()
        };
        let first = ids(&db, &q).await;
        assert_eq!(first, ["v1", "v3"]);
        q.page.marker = Some("v3".into());
        assert_eq!(ids(&db, &q).await, ["v2", "v0"]);
        q.page.marker = Some("v0".into());
        assert!(ids(&db, &q).await.is_empty());

        q.page.marker = Some("nope".into());
        assert!(matches!(
            db.list_volumes(&q).await,
            Err(ListError::MarkerNotFound(_))
        ));
        q.page.marker = None;
        q.page.sort = vec![("colour".into(), SortDir::Asc)];
        let err = db.list_volumes(&q).await.unwrap_err().to_string();
        assert!(err.contains("Invalid sort key colour"), "{err}");
    }

    #[tokio::test]
    async fn each_volume_of_a_page_carries_its_own_metadata() {
        let (db, _dir) = db().await;
        // Fifty volumes in one project: past Cinder's default quota of ten.
        let db = db.with_quota_defaults(crate::db::QuotaDefaults {
            volumes: -1,
            ..Default::default()
        });
        for i in 0..50 {
            let v = volume(
                &format!("v{i:02}"),
                "p",
                "n",
                &format!("2026-01-01T00:00:{i:02}"),
            );
            db.insert_volume_with_job(&v, &[], &job(&v.id))
                .await
                .unwrap()
                .unwrap();
        }
        let mut q = ListQuery::project("p");
        q.filters = vec![("metadata".into(), r#"{"k": "v07"}"#.into())];
        let found = db.list_volumes(&q).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].metadata,
            BTreeMap::from([("k".into(), "v07".into())])
        );
        q.filters.clear();
        let all = db.list_volumes(&q).await.unwrap();
        assert_eq!(all.len(), 50);
        assert!(all.iter().all(|v| v.metadata["k"] == v.id));
    }
}
