//! Cinder's quotas: limits per project (and per quota class), and what each project holds.
//!
//! Usage is kept exact without Cinder's reservations for the common case: a request's
//! usage change is written in the same write transaction as the row or job the request
//! writes, so it commits or rolls back with it. A volume counts from the transaction that
//! records it (`creating`) to the one that finishes its delete (Cinder commits its
//! reservation once the row is made and gives it back after the driver deleted the
//! volume); a volume in `error` still counts. A snapshot counts `snapshots` and, as
//! Cinder does by default (`no_snapshot_gb_quota = false`), `gigabytes`. A host killed at
//! any point leaves usage that the rows agree with: there is nothing to redo.
//!
//! The one change that is not final when accepted is an extend: its gigabytes are held in
//! `reserved` with a row in `quota_reservations` (Cinder's reservation, keyed by the
//! volume) and committed into `in_use` in the transaction that records the new size. Any
//! other way out of `extending` (the driver failed, an administrator reset the status, a
//! job that could not run) gives the reservation back in the transaction that moves the
//! status ([`super::move_status`] and `reset_volume_status`). At start-up a reservation
//! whose volume is no longer `extending` is rolled back ([`Db::rollback_stale_reservations`]),
//! which only an older host or a hand-edited database could leave.
//!
//! Over-commit cannot happen under concurrency: the check and the increment are one
//! conditional statement, `UPDATE quota_usages SET in_use = in_use + n WHERE … AND
//! in_use + reserved + n <= limit`, inside the request's write transaction. SQLite runs
//! write transactions one at a time (`BEGIN IMMEDIATE`); PostgreSQL takes the row lock for
//! the update and re-evaluates the condition on the newest row version, so the same SQL
//! holds there. A missing usage row is made first with `INSERT … ON CONFLICT DO NOTHING`,
//! valid on both.
//!
//! Limits: a project's own (`quotas`), else the `default` quota class's
//! (`quota_classes`), else the operator's `[quota]` defaults ([`QuotaDefaults`]); `-1`
//! is unlimited. Per-type resources (`volumes_{type}`, `gigabytes_{type}`,
//! `snapshots_{type}`) are keyed by the type's id, so a renamed type keeps its quotas, and
//! are unlimited by default as in Cinder.

use std::collections::BTreeMap;

use super::Conn;

use super::{Db, Result, time};

/// The global resources, in the order Cinder lists them.
pub const GLOBAL_RESOURCES: [&str; 7] = [
    "volumes",
    "snapshots",
    "gigabytes",
    "backups",
    "backup_gigabytes",
    "groups",
    "per_volume_gigabytes",
];

/// The resources kept per volume type, as `{resource}_{type name}`.
pub const PER_TYPE_RESOURCES: [&str; 3] = ["volumes", "gigabytes", "snapshots"];

/// The quota class whose limits are every project's defaults.
pub const DEFAULT_CLASS: &str = "default";

/// The limits a project has when neither it nor the `default` class sets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub volumes: i64,
    pub snapshots: i64,
    pub gigabytes: i64,
    pub backups: i64,
    pub backup_gigabytes: i64,
    pub groups: i64,
    pub per_volume_gigabytes: i64,
}

impl Default for QuotaDefaults {
    /// Cinder's: `quota_volumes` 10, `quota_snapshots` 10, `quota_gigabytes` 1000,
    /// `quota_backups` 10, `quota_backup_gigabytes` 1000, `quota_groups` 10,
    /// `per_volume_size_limit` -1.
    fn default() -> Self {
        QuotaDefaults {
            volumes: 10,
            snapshots: 10,
            gigabytes: 1000,
            backups: 10,
            backup_gigabytes: 1000,
            groups: 10,
            per_volume_gigabytes: -1,
        }
    }
}

impl QuotaDefaults {
    /// The default limit of `key`; per-type resources are unlimited.
    fn of(&self, key: &QuotaKey) -> i64 {
        if !key.type_id.is_empty() {
            return -1;
        }
        match key.resource.as_str() {
            "volumes" => self.volumes,
            "snapshots" => self.snapshots,
            "gigabytes" => self.gigabytes,
            "backups" => self.backups,
            "backup_gigabytes" => self.backup_gigabytes,
            "groups" => self.groups,
            "per_volume_gigabytes" => self.per_volume_gigabytes,
            _ => -1,
        }
    }
}

/// A resource as stored: its base name and, for a per-type one, the type's id ('' else).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaKey {
    pub resource: String,
    pub type_id: String,
}

impl QuotaKey {
    pub fn global(resource: &str) -> QuotaKey {
        QuotaKey {
            resource: resource.to_string(),
            type_id: String::new(),
        }
    }

    pub(super) fn of_type(resource: &str, type_id: &str) -> QuotaKey {
        QuotaKey {
            resource: resource.to_string(),
            type_id: type_id.to_string(),
        }
    }
}

/// A resource as the API names it (`volumes`, `gigabytes_gold`) with its key.
#[derive(Debug, Clone)]
pub struct QuotaResource {
    pub name: String,
    pub key: QuotaKey,
}

/// One resource of a project's quota set: its limit and what the project holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaValue {
    pub name: String,
    pub limit: i64,
    pub in_use: i64,
    pub reserved: i64,
}

/// A request over a quota, in Cinder's words (`cinder/exception.py`); the API answers
/// 413 `overLimit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverQuota {
    /// `VolumeLimitExceeded`, for `volumes` or `volumes_{type}`.
    #[error("Maximum number of volumes allowed ({allowed}) exceeded for quota '{name}'.")]
    Volumes { name: String, allowed: i64 },
    /// `SnapshotLimitExceeded`, for `snapshots` or `snapshots_{type}`.
    #[error("Maximum number of snapshots allowed ({allowed}) exceeded")]
    Snapshots { allowed: i64 },
    /// `VolumeSizeExceedsAvailableQuota`, for `gigabytes` or `gigabytes_{type}`.
    #[error(
        "Requested volume or snapshot exceeds allowed {name} quota. Requested {requested}G, quota is {quota}G and {consumed}G has been consumed."
    )]
    Gigabytes {
        name: String,
        requested: i64,
        quota: i64,
        consumed: i64,
    },
    /// `BackupLimitExceeded`: `backups`.
    #[error("Maximum number of backups allowed ({allowed}) exceeded")]
    Backups { allowed: i64 },
    /// `VolumeBackupSizeExceedsAvailableQuota`: `backup_gigabytes`.
    #[error(
        "Requested backup exceeds allowed Backup gigabytes quota. Requested {requested}G, quota is {quota}G and {consumed}G has been consumed."
    )]
    BackupGigabytes {
        requested: i64,
        quota: i64,
        consumed: i64,
    },
    /// `VolumeSizeExceedsLimit`: `per_volume_gigabytes`.
    #[error("Requested volume size {size}G is larger than maximum allowed limit {limit}G.")]
    PerVolume { size: i64, limit: i64 },
}

impl OverQuota {
    /// The name of Cinder's exception, which its API puts before the message.
    pub fn exception_name(&self) -> &'static str {
        match self {
            OverQuota::Volumes { .. } => "VolumeLimitExceeded",
            OverQuota::Snapshots { .. } => "SnapshotLimitExceeded",
            OverQuota::Gigabytes { .. } => "VolumeSizeExceedsAvailableQuota",
            OverQuota::PerVolume { .. } => "VolumeSizeExceedsLimit",
            OverQuota::Backups { .. } => "BackupLimitExceeded",
            OverQuota::BackupGigabytes { .. } => "VolumeBackupSizeExceedsAvailableQuota",
        }
    }
}

/// A limit set below what the project already holds (Cinder refuses it with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Quota {name} limit must be equal or greater than existing resources. Current usage is {usage} and the requested limit is {limit}."
)]
pub struct BelowUsage {
    pub name: String,
    pub usage: i64,
    pub limit: i64,
}

/// The usage a volume of `type_id` and `size` GiB counts, `sign` 1 to charge, -1 to give
/// back: `volumes`, `gigabytes`, then per type (Cinder's order of reservation).
pub(super) fn volume_deltas(type_id: Option<&str>, size: i64, sign: i64) -> Vec<(QuotaKey, i64)> {
    counted("volumes", type_id, size, sign)
}

/// The usage a snapshot of a volume of `type_id` and `size` GiB counts.
pub(super) fn snapshot_deltas(type_id: Option<&str>, size: i64, sign: i64) -> Vec<(QuotaKey, i64)> {
    counted("snapshots", type_id, size, sign)
}

fn counted(what: &str, type_id: Option<&str>, size: i64, sign: i64) -> Vec<(QuotaKey, i64)> {
    let mut d = vec![
        (QuotaKey::global(what), sign),
        (QuotaKey::global("gigabytes"), sign * size),
    ];
    if let Some(t) = type_id {
        d.push((QuotaKey::of_type(what, t), sign));
        d.push((QuotaKey::of_type("gigabytes", t), sign * size));
    }
    d
}

/// The usage a backup of `size` GiB counts: `backups` and `backup_gigabytes`.
pub(super) fn backup_deltas(size: i64, sign: i64) -> Vec<(QuotaKey, i64)> {
    vec![
        (QuotaKey::global("backups"), sign),
        (QuotaKey::global("backup_gigabytes"), sign * size),
    ]
}

/// `gigabytes` (and per type) changed by `n`.
pub(super) fn gigabytes_deltas(type_id: Option<&str>, n: i64) -> Vec<(QuotaKey, i64)> {
    let mut d = vec![(QuotaKey::global("gigabytes"), n)];
    if let Some(t) = type_id {
        d.push((QuotaKey::of_type("gigabytes", t), n));
    }
    d
}

/// Changes `project`'s `in_use` by `deltas` without a check: what a reservation already
/// held, or what a finished delete gives back.
pub(super) async fn commit(c: &mut Conn, project: &str, deltas: &[(QuotaKey, i64)]) -> Result<()> {
    for (key, n) in deltas {
        sqlx::query(
            "INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved) \
             VALUES ($1, $2, $3, 0, 0) ON CONFLICT (project_id, resource, volume_type_id) DO NOTHING",
        )
        .bind(project)
        .bind(&key.resource)
        .bind(&key.type_id)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "UPDATE quota_usages SET in_use = in_use + $4 \
             WHERE project_id = $1 AND resource = $2 AND volume_type_id = $3",
        )
        .bind(project)
        .bind(&key.resource)
        .bind(&key.type_id)
        .bind(n)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Which usage column a change goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    InUse,
    Reserved,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::InUse => "in_use",
            Column::Reserved => "reserved",
        }
    }
}

/// The limit of `key` for `project`: its own, the `default` class's, or the default.
async fn limit_of(
    c: &mut Conn,
    defaults: &QuotaDefaults,
    project: &str,
    key: &QuotaKey,
) -> Result<i64> {
    let set: Option<i64> = sqlx::query_scalar(
        "SELECT COALESCE(\
           (SELECT hard_limit FROM quotas WHERE project_id = $1 AND resource = $2 AND volume_type_id = $3), \
           (SELECT hard_limit FROM quota_classes WHERE class_name = $4 AND resource = $2 AND volume_type_id = $3))",
    )
    .bind(project)
    .bind(&key.resource)
    .bind(&key.type_id)
    .bind(DEFAULT_CLASS)
    .fetch_one(&mut *c)
    .await?;
    Ok(set.unwrap_or_else(|| defaults.of(key)))
}

/// `key` as the API names it: `volumes`, or `volumes_{type name}`.
async fn name_of(c: &mut Conn, key: &QuotaKey) -> Result<String> {
    if key.type_id.is_empty() {
        return Ok(key.resource.clone());
    }
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM volume_types WHERE id = $1")
        .bind(&key.type_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(format!(
        "{}_{}",
        key.resource,
        name.as_deref().unwrap_or(&key.type_id)
    ))
}

/// Changes `project`'s usage by `deltas`, in order, on `c` (the request's transaction).
/// An increase is made only if it keeps the resource within its limit, checked and
/// written in one statement; the first that would not answers [`OverQuota`], and the
/// caller rolls the transaction back (the increases before it included). A decrease is
/// always made.
pub(super) async fn charge(
    c: &mut Conn,
    defaults: &QuotaDefaults,
    project: &str,
    deltas: &[(QuotaKey, i64)],
    column: Column,
) -> Result<Result<(), OverQuota>> {
    let col = column.name();
    for (key, n) in deltas {
        if *n == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO quota_usages (project_id, resource, volume_type_id, in_use, reserved) \
             VALUES ($1, $2, $3, 0, 0) ON CONFLICT (project_id, resource, volume_type_id) DO NOTHING",
        )
        .bind(project)
        .bind(&key.resource)
        .bind(&key.type_id)
        .execute(&mut *c)
        .await?;
        let limit = if *n > 0 {
            limit_of(c, defaults, project, key).await?
        } else {
            -1
        };
        let done = sqlx::query(&format!(
            "UPDATE quota_usages SET {col} = {col} + $4 \
             WHERE project_id = $1 AND resource = $2 AND volume_type_id = $3 \
             AND ($5 < 0 OR in_use + reserved + $4 <= $5)"
        ))
        .bind(project)
        .bind(&key.resource)
        .bind(&key.type_id)
        .bind(n)
        .bind(limit)
        .execute(&mut *c)
        .await?
        .rows_affected()
            == 1;
        if done {
            continue;
        }
        let name = name_of(c, key).await?;
        let over = match key.resource.as_str() {
            "volumes" => OverQuota::Volumes {
                name,
                allowed: limit,
            },
            "snapshots" => OverQuota::Snapshots { allowed: limit },
            "backups" => OverQuota::Backups { allowed: limit },
            _ => {
                let consumed: i64 = sqlx::query_scalar(
                    "SELECT in_use + reserved FROM quota_usages \
                     WHERE project_id = $1 AND resource = $2 AND volume_type_id = $3",
                )
                .bind(project)
                .bind(&key.resource)
                .bind(&key.type_id)
                .fetch_one(&mut *c)
                .await?;
                if key.resource == "backup_gigabytes" {
                    OverQuota::BackupGigabytes {
                        requested: *n,
                        quota: limit,
                        consumed,
                    }
                } else {
                    OverQuota::Gigabytes {
                        name,
                        requested: *n,
                        quota: limit,
                        consumed,
                    }
                }
            }
        };
        return Ok(Err(over));
    }
    Ok(Ok(()))
}

/// Cinder's `per_volume_gigabytes` check of a volume of `size` GiB.
pub(super) async fn check_per_volume(
    c: &mut Conn,
    defaults: &QuotaDefaults,
    project: &str,
    size: i64,
) -> Result<Result<(), OverQuota>> {
    let limit = limit_of(
        c,
        defaults,
        project,
        &QuotaKey::global("per_volume_gigabytes"),
    )
    .await?;
    if limit >= 0 && size > limit {
        return Ok(Err(OverQuota::PerVolume { size, limit }));
    }
    Ok(Ok(()))
}

/// Holds `delta` GiB for the extend of volume `volume_id` (of `project` and `type_id`):
/// `reserved` of `gigabytes` (and per type) within the limits, and the reservation row.
pub(super) async fn reserve_extend(
    c: &mut Conn,
    defaults: &QuotaDefaults,
    project: &str,
    volume_id: &str,
    type_id: Option<&str>,
    delta: i64,
) -> Result<Result<(), OverQuota>> {
    let deltas = gigabytes_deltas(type_id, delta);
    if let Err(over) = charge(c, defaults, project, &deltas, Column::Reserved).await? {
        return Ok(Err(over));
    }
    // A reservation left by an extend that never finished (a status reset in between)
    // is replaced, having been given back first.
    release_reservation(c, volume_id).await?;
    sqlx::query(
        "INSERT INTO quota_reservations (volume_id, project_id, volume_type_id, gigabytes, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(volume_id)
    .bind(project)
    .bind(type_id.unwrap_or(""))
    .bind(delta)
    .bind(time::now())
    .execute(&mut *c)
    .await?;
    Ok(Ok(()))
}

/// Gives back the reservation of volume `volume_id`'s extend, if it has one: its
/// gigabytes leave `reserved`. The gigabytes it held, or 0.
pub(super) async fn release_reservation(c: &mut Conn, volume_id: &str) -> Result<i64> {
    let held: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT project_id, volume_type_id, gigabytes FROM quota_reservations WHERE volume_id = $1",
    )
    .bind(volume_id)
    .fetch_optional(&mut *c)
    .await?;
    let Some((project, type_id, gigabytes)) = held else {
        return Ok(0);
    };
    let type_id = Some(type_id.as_str()).filter(|t| !t.is_empty());
    for (key, n) in gigabytes_deltas(type_id, -gigabytes) {
        sqlx::query(
            "UPDATE quota_usages SET reserved = reserved + $4 \
             WHERE project_id = $1 AND resource = $2 AND volume_type_id = $3",
        )
        .bind(&project)
        .bind(&key.resource)
        .bind(&key.type_id)
        .bind(n)
        .execute(&mut *c)
        .await?;
    }
    sqlx::query("DELETE FROM quota_reservations WHERE volume_id = $1")
        .bind(volume_id)
        .execute(&mut *c)
        .await?;
    Ok(gigabytes)
}

/// The type and size of a live volume and its project, read in the caller's transaction.
pub(super) async fn volume_counted(
    c: &mut Conn,
    volume_id: &str,
) -> Result<Option<(String, Option<String>, i64)>> {
    Ok(sqlx::query_as(
        "SELECT project_id, volume_type_id, size FROM volumes WHERE id = $1 AND deleted = 0",
    )
    .bind(volume_id)
    .fetch_optional(&mut *c)
    .await?)
}

impl Db {
    /// Every quota resource, as the API names them: the global ones, then `volumes_`,
    /// `gigabytes_` and `snapshots_` of each volume type (Cinder shows them for every
    /// existing type).
    pub async fn quota_resources(&self) -> Result<Vec<QuotaResource>> {
        let types: Vec<(String, String)> =
            sqlx::query_as("SELECT id, name FROM volume_types ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        let mut out: Vec<QuotaResource> = GLOBAL_RESOURCES
            .iter()
            .map(|r| QuotaResource {
                name: r.to_string(),
                key: QuotaKey::global(r),
            })
            .collect();
        for (id, name) in &types {
            for r in PER_TYPE_RESOURCES {
                out.push(QuotaResource {
                    name: format!("{r}_{name}"),
                    key: QuotaKey::of_type(r, id),
                });
            }
        }
        Ok(out)
    }

    /// Limits of `table` rows matching `owner_column = owner`, by key.
    async fn limits_in(
        &self,
        table: &str,
        owner_column: &str,
        owner: &str,
    ) -> Result<BTreeMap<QuotaKey, i64>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
            "SELECT resource, volume_type_id, hard_limit FROM {table} WHERE {owner_column} = $1"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(r, t, l)| (QuotaKey::of_type(&r, &t), l))
            .collect())
    }

    /// The default limits: the `default` class's, else the operator's defaults.
    pub async fn default_quotas(&self) -> Result<Vec<(String, i64)>> {
        self.class_quotas(DEFAULT_CLASS).await
    }

    /// A quota class's limits: its own, else the `default` class's, else the operator's
    /// defaults (Cinder's `get_class_quotas` with defaults).
    pub async fn class_quotas(&self, class: &str) -> Result<Vec<(String, i64)>> {
        let own = self.limits_in("quota_classes", "class_name", class).await?;
        let default = self
            .limits_in("quota_classes", "class_name", DEFAULT_CLASS)
            .await?;
        Ok(self
            .quota_resources()
            .await?
            .into_iter()
            .map(|r| {
                let limit = own
                    .get(&r.key)
                    .or_else(|| default.get(&r.key))
                    .copied()
                    .unwrap_or_else(|| self.quota_defaults.of(&r.key));
                (r.name, limit)
            })
            .collect())
    }

    /// A project's quota set: each resource's limit (its own, the `default` class's, or
    /// the default) and what it holds.
    pub async fn project_quotas(&self, project: &str) -> Result<Vec<QuotaValue>> {
        let own = self.limits_in("quotas", "project_id", project).await?;
        let default = self
            .limits_in("quota_classes", "class_name", DEFAULT_CLASS)
            .await?;
        let usages: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT resource, volume_type_id, in_use, reserved FROM quota_usages WHERE project_id = $1",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        let usages: BTreeMap<QuotaKey, (i64, i64)> = usages
            .into_iter()
            .map(|(r, t, u, res)| (QuotaKey::of_type(&r, &t), (u, res)))
            .collect();
        Ok(self
            .quota_resources()
            .await?
            .into_iter()
            .map(|r| {
                let limit = own
                    .get(&r.key)
                    .or_else(|| default.get(&r.key))
                    .copied()
                    .unwrap_or_else(|| self.quota_defaults.of(&r.key));
                let (in_use, reserved) = usages.get(&r.key).copied().unwrap_or((0, 0));
                QuotaValue {
                    name: r.name,
                    limit,
                    in_use,
                    reserved,
                }
            })
            .collect())
    }

    /// Sets `project`'s own limits, all or none: refused (nothing written) when a limit
    /// other than `-1` or of `per_volume_gigabytes` is below what the project holds
    /// (in use and reserved), read in the same transaction.
    pub async fn update_project_quotas(
        &self,
        project: &str,
        limits: &[(QuotaResource, i64)],
    ) -> Result<Result<(), BelowUsage>> {
        let mut tx = self.write_tx().await?;
        for (r, limit) in limits {
            if *limit != -1 && r.key.resource != "per_volume_gigabytes" {
                let usage: Option<i64> = sqlx::query_scalar(
                    "SELECT in_use + reserved FROM quota_usages \
                     WHERE project_id = $1 AND resource = $2 AND volume_type_id = $3",
                )
                .bind(project)
                .bind(&r.key.resource)
                .bind(&r.key.type_id)
                .fetch_optional(&mut *tx)
                .await?;
                let usage = usage.unwrap_or(0);
                if *limit < usage {
                    return Ok(Err(BelowUsage {
                        name: r.name.clone(),
                        usage,
                        limit: *limit,
                    }));
                }
            }
            sqlx::query(
                "INSERT INTO quotas (project_id, resource, volume_type_id, hard_limit) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (project_id, resource, volume_type_id) DO UPDATE SET hard_limit = excluded.hard_limit",
            )
            .bind(project)
            .bind(&r.key.resource)
            .bind(&r.key.type_id)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Drops `project`'s own limits: it has the defaults again. Its usage stays.
    pub async fn delete_project_quotas(&self, project: &str) -> Result<()> {
        sqlx::query("DELETE FROM quotas WHERE project_id = $1")
            .bind(project)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets a quota class's limits, all in one transaction.
    pub async fn update_class_quotas(
        &self,
        class: &str,
        limits: &[(QuotaResource, i64)],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for (r, limit) in limits {
            sqlx::query(
                "INSERT INTO quota_classes (class_name, resource, volume_type_id, hard_limit) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (class_name, resource, volume_type_id) DO UPDATE SET hard_limit = excluded.hard_limit",
            )
            .bind(class)
            .bind(&r.key.resource)
            .bind(&r.key.type_id)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves the usage of volume `volume_id` and, with `with_snapshots`, of its live
    /// snapshots from project `from` to project `to`, inside the caller's transaction
    /// `c`: a transfer's accept, which in the same transaction sets `project_id` to `to`
    /// on the volume and on the snapshots that go with it (a snapshot's usage is given
    /// back under its row's project when it is deleted). The receiving project's limits
    /// are checked as a create's would be (`volumes`, `gigabytes`, then per type, then
    /// `snapshots`, `gigabytes` and per type for the snapshots): an [`OverQuota`] means
    /// the caller must roll back. A volume with an extend under way moves its reservation
    /// too. Nothing is moved for a volume that is gone.
    pub async fn move_volume_usage(
        &self,
        c: &mut Conn,
        volume_id: &str,
        from: &str,
        to: &str,
        with_snapshots: bool,
    ) -> Result<Result<(), OverQuota>> {
        let Some((_, type_id, size)) = volume_counted(c, volume_id).await? else {
            return Ok(Ok(()));
        };
        let (snapshots, snapshot_gb): (i64, i64) = if with_snapshots {
            sqlx::query_as(&self.dialect.sql(
                "SELECT COUNT(*), COALESCE(SUM(volume_size), 0) FROM snapshots WHERE volume_id = $1 AND deleted = 0",
            ))
            .bind(volume_id)
            .fetch_one(&mut *c)
            .await?
        } else {
            (0, 0)
        };
        let t = type_id.as_deref();
        let mut charged = volume_deltas(t, size, 1);
        let mut snaps = vec![
            (QuotaKey::global("snapshots"), snapshots),
            (QuotaKey::global("gigabytes"), snapshot_gb),
        ];
        if let Some(t) = t {
            snaps.push((QuotaKey::of_type("snapshots", t), snapshots));
            snaps.push((QuotaKey::of_type("gigabytes", t), snapshot_gb));
        }
        charged.extend(snaps);
        let defaults = &*self.quota_defaults;
        if let Err(over) = charge(c, defaults, to, &charged, Column::InUse).await? {
            return Ok(Err(over));
        }
        let released: Vec<(QuotaKey, i64)> = charged.into_iter().map(|(k, n)| (k, -n)).collect();
        commit(c, from, &released).await?;
        let held: Option<i64> =
            sqlx::query_scalar("SELECT gigabytes FROM quota_reservations WHERE volume_id = $1")
                .bind(volume_id)
                .fetch_optional(&mut *c)
                .await?;
        if let Some(gb) = held {
            release_reservation(c, volume_id).await?;
            if let Err(over) = reserve_extend(c, defaults, to, volume_id, t, gb).await? {
                return Ok(Err(over));
            }
        }
        Ok(Ok(()))
    }

    /// Rolls back the reservations of extends whose volume is no longer `extending`
    /// (only an older host or a hand-edited database leaves one); how many.
    pub async fn rollback_stale_reservations(&self) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT r.volume_id FROM quota_reservations r WHERE NOT EXISTS \
             (SELECT 1 FROM volumes v WHERE v.id = r.volume_id AND v.deleted = 0 AND v.status = 'extending')",
        )
        .fetch_all(&mut *tx)
        .await?;
        for id in &stale {
            release_reservation(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(stale.len() as u64)
    }

    /// Where stored usage disagrees with the rows: `(project, resource, stored in_use,
    /// counted)` for each global `volumes`, `snapshots` and `gigabytes` that differs.
    /// Empty on a consistent database; the start-up check logs what it finds.
    pub async fn quota_usage_drift(&self) -> Result<Vec<(String, String, i64, i64)>> {
        // Each stored usage is listed once more with 0, so that a project with no rows
        // left still shows; the sum of the counted values is the count.
        let counted: Vec<(String, String, i64, i64)> = sqlx::query_as(&self.dialect.sql(
            "SELECT c.project_id, c.resource, COALESCE(MAX(u.in_use), 0), SUM(c.n) FROM ( \
               SELECT project_id, 'volumes' AS resource, COUNT(*) AS n FROM volumes WHERE deleted = 0 GROUP BY project_id \
               UNION ALL \
               SELECT project_id, 'snapshots' AS resource, COUNT(*) AS n FROM snapshots WHERE deleted = 0 GROUP BY project_id \
               UNION ALL \
               SELECT g.project_id, 'gigabytes' AS resource, SUM(g.gb) AS n FROM ( \
                 SELECT project_id, size AS gb FROM volumes WHERE deleted = 0 \
                 UNION ALL SELECT project_id, volume_size AS gb FROM snapshots WHERE deleted = 0) g \
               GROUP BY g.project_id \
               UNION ALL \
               SELECT project_id, resource, 0 AS n FROM quota_usages WHERE volume_type_id = '' \
                 AND resource IN ('volumes', 'snapshots', 'gigabytes') \
             ) c LEFT JOIN quota_usages u ON u.project_id = c.project_id AND u.resource = c.resource AND u.volume_type_id = '' \
             GROUP BY c.project_id, c.resource",
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(counted.into_iter().filter(|(_, _, s, n)| s != n).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sqlx::Connection;

    use super::super::testing::{db, earlier_database};
    use super::super::{CreateRefused, JobRow, VolumeRow};
    use super::*;
    use crate::volume::status::VolumeStatus;

    fn volume(id: &str, project: &str, size: i64) -> VolumeRow {
        VolumeRow {
            size,
            ..crate::db::testing::volume(id, project)
        }
    }

    fn job(id: &str) -> JobRow {
        JobRow::new("create_volume", id, "{}".into())
    }

    async fn used(db: &Db, project: &str, name: &str) -> (i64, i64) {
        let v = db.project_quotas(project).await.unwrap();
        let v = v.iter().find(|v| v.name == name).unwrap();
        (v.in_use, v.reserved)
    }

    /// Thirty creates at once against a quota of ten: exactly ten are recorded, and the
    /// usage is theirs.
    #[tokio::test]
    async fn concurrent_creates_stop_at_the_limit() {
        let (db, _dir) = db().await;
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let v = volume(&format!("v{i}"), "p", 2);
                    db.insert_volume_with_job(&v, &[], &job(&v.id))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(CreateRefused::Quota(OverQuota::Volumes { name, allowed })) => {
                    assert_eq!((name.as_str(), allowed), ("volumes", 10));
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(ok, 10);
        assert_eq!(used(&db, "p", "volumes").await, (10, 0));
        assert_eq!(used(&db, "p", "gigabytes").await, (20, 0));
        assert!(db.quota_usage_drift().await.unwrap().is_empty());
    }

    /// A managed volume counts one volume when accepted and its gigabytes once sized;
    /// a size over the quota writes nothing; unmanaging gives everything back, and the
    /// stored usage always equals the rows.
    #[tokio::test]
    async fn a_managed_volume_is_charged_when_sized_and_released_when_unmanaged() {
        let (db, _dir) = db().await;
        let db = db.with_quota_defaults(QuotaDefaults {
            gigabytes: 5,
            ..QuotaDefaults::default()
        });
        let managing = |id: &str| VolumeRow {
            status: VolumeStatus::Managing,
            ..volume(id, "p", 0)
        };
        for id in ["m1", "m2"] {
            db.insert_volume_with_job(&managing(id), &[], &job(id))
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(used(&db, "p", "volumes").await, (2, 0));
        assert_eq!(used(&db, "p", "gigabytes").await, (0, 0));
        assert_eq!(db.size_managed_volume("m1", 3).await.unwrap(), Ok(true));
        // Sized again (a job run again after a crash): only the difference is charged.
        assert_eq!(db.size_managed_volume("m1", 3).await.unwrap(), Ok(true));
        assert_eq!(used(&db, "p", "gigabytes").await, (3, 0));
        let over = db.size_managed_volume("m2", 3).await.unwrap();
        assert!(
            matches!(
                over,
                Err(OverQuota::Gigabytes {
                    requested: 3,
                    quota: 5,
                    consumed: 3,
                    ..
                })
            ),
            "{over:?}"
        );
        assert_eq!(db.get_volume("m2").await.unwrap().unwrap().size, 0);
        assert!(db.quota_usage_drift().await.unwrap().is_empty());

        assert!(db.finish_manage("m1", Some("here"), None).await.unwrap());
        assert!(!db.finish_manage("m1", None, None).await.unwrap(), "once");
        let unmanage = JobRow::new("unmanage_volume", "m1", "{}".into());
        db.begin_unmanage_volume("m1", VolumeStatus::UNMANAGEABLE, &unmanage)
            .await
            .unwrap()
            .unwrap();
        assert!(db.finish_unmanage_volume("m1").await.unwrap());
        assert!(db.get_volume("m1").await.unwrap().is_none());
        assert_eq!(used(&db, "p", "volumes").await, (1, 0));
        assert_eq!(used(&db, "p", "gigabytes").await, (0, 0));
        assert!(db.quota_usage_drift().await.unwrap().is_empty());
        // Nothing to size once it left `managing`.
        db.transition_volume(
            "m2",
            &[VolumeStatus::Managing],
            VolumeStatus::ErrorManaging,
            None,
        )
        .await
        .unwrap();
        assert_eq!(db.size_managed_volume("m2", 1).await.unwrap(), Ok(false));
        assert_eq!(used(&db, "p", "gigabytes").await, (0, 0));
    }

    /// An extend holds its gigabytes in `reserved`; finishing commits them, failing (or
    /// a status reset) gives them back, and a refused extend writes nothing.
    #[tokio::test]
    async fn an_extend_reserves_then_commits_or_gives_back() {
        let (db, _dir) = db().await;
        let db = db.with_quota_defaults(QuotaDefaults {
            gigabytes: 10,
            ..QuotaDefaults::default()
        });
        let v = volume("v", "p", 2);
        db.insert_volume_with_job(&v, &[], &job("v"))
            .await
            .unwrap()
            .unwrap();
        db.finish_create("v", None, None).await.unwrap();
        let ext = |n| JobRow::new("extend_volume", "v", format!("{{\"new_size\": {n}}}"));
        db.begin_extend("v", 5, &[VolumeStatus::Available], &ext(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used(&db, "p", "gigabytes").await, (2, 3));
        assert!(db.finish_extend("v", 5).await.unwrap());
        assert_eq!(used(&db, "p", "gigabytes").await, (5, 0));

        db.begin_extend("v", 9, &[VolumeStatus::Available], &ext(9))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used(&db, "p", "gigabytes").await, (5, 4));
        let refused = db
            .begin_extend("v", 12, &[VolumeStatus::Extending], &ext(12))
            .await
            .unwrap();
        assert_eq!(
            refused,
            Err(crate::db::ExtendRefused::Quota(OverQuota::Gigabytes {
                name: "gigabytes".into(),
                requested: 7,
                quota: 10,
                consumed: 9
            }))
        );
        assert_eq!(used(&db, "p", "gigabytes").await, (5, 4));
        assert!(
            db.transition_volume(
                "v",
                &[VolumeStatus::Extending],
                VolumeStatus::ErrorExtending,
                None
            )
            .await
            .unwrap()
        );
        assert_eq!(used(&db, "p", "gigabytes").await, (5, 0));

        db.reset_volume_status("v", VolumeStatus::Available, None)
            .await
            .unwrap();
        db.begin_extend("v", 6, &[VolumeStatus::Available], &ext(6))
            .await
            .unwrap()
            .unwrap();
        db.reset_volume_status("v", VolumeStatus::Available, None)
            .await
            .unwrap();
        assert_eq!(used(&db, "p", "gigabytes").await, (5, 0));
        assert_eq!(db.rollback_stale_reservations().await.unwrap(), 0);
    }

    /// Moving a volume between projects moves its usage and its snapshots', refused
    /// when the receiving project has no room.
    #[tokio::test]
    async fn a_volumes_usage_moves_between_projects() {
        let (db, _dir) = db().await;
        let v = volume("v", "a", 4);
        db.insert_volume_with_job(&v, &[], &job("v"))
            .await
            .unwrap()
            .unwrap();
        db.finish_create("v", None, None).await.unwrap();
        let mut s = crate::db::SnapshotRow {
            id: "s".into(),
            project_id: "a".into(),
            user_id: "u".into(),
            volume_id: "v".into(),
            name: None,
            description: None,
            status: crate::volume::status::SnapshotStatus::Creating,
            progress: "0%".into(),
            volume_size: 0,
            provider_location: None,
            metadata: BTreeMap::new(),
            created_at: time::now(),
            updated_at: None,
        };
        db.insert_snapshot_with_job(&mut s, &[VolumeStatus::Available], &job("s"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used(&db, "a", "gigabytes").await, (8, 0));

        let snapshots = |limit| {
            [(
                QuotaResource {
                    name: "snapshots".into(),
                    key: QuotaKey::global("snapshots"),
                },
                limit,
            )]
        };
        db.update_project_quotas("b", &snapshots(0))
            .await
            .unwrap()
            .unwrap();
        let mut tx = db.write_tx().await.unwrap();
        let over = db
            .move_volume_usage(&mut tx, "v", "a", "b", true)
            .await
            .unwrap();
        assert_eq!(over, Err(OverQuota::Snapshots { allowed: 0 }));
        drop(tx);
        assert_eq!(used(&db, "a", "volumes").await, (1, 0));
        assert_eq!(used(&db, "b", "volumes").await, (0, 0));

        db.update_project_quotas("b", &snapshots(1))
            .await
            .unwrap()
            .unwrap();
        let mut tx = db.write_tx().await.unwrap();
        db.move_volume_usage(&mut tx, "v", "a", "b", true)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        for (project, n, gb) in [("a", 0, 0), ("b", 1, 8)] {
            assert_eq!(used(&db, project, "volumes").await, (n, 0));
            assert_eq!(used(&db, project, "snapshots").await, (n, 0));
            assert_eq!(used(&db, project, "gigabytes").await, (gb, 0));
        }
    }

    /// What an earlier host stored counts from the migration on.
    #[tokio::test]
    async fn the_migration_counts_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut c) = earlier_database(dir.path(), "0007_quotas").await;
        for statement in [
            "INSERT INTO volume_types (id, name, created_at) VALUES ('t1', 'gold', 't')",
            "INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, created_at, volume_type_id) \
             VALUES ('v1', 'p', 'u', 3, 'available', 'nova', 't', 't1')",
            "INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, created_at) \
             VALUES ('v2', 'p', 'u', 5, 'error', 'nova', 't')",
            "INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, created_at, deleted) \
             VALUES ('v3', 'p', 'u', 7, 'deleted', 'nova', 't', 1)",
            "INSERT INTO snapshots (id, project_id, user_id, volume_id, status, volume_size, created_at) \
             VALUES ('s1', 'p', 'u', 'v1', 'available', 3, 't')",
        ] {
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
        let db = Db::open(&url).await.unwrap();
        for (name, n) in [
            ("volumes", 2),
            ("snapshots", 1),
            ("gigabytes", 11),
            ("volumes_gold", 1),
            ("snapshots_gold", 1),
            ("gigabytes_gold", 6),
        ] {
            assert_eq!(used(&db, "p", name).await, (n, 0), "{name}");
        }
        assert!(db.quota_usage_drift().await.unwrap().is_empty());
    }
}
