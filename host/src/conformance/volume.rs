//! The checks of a volume driver: Cinder's minimum features (cinder/interface/
//! volume_driver.py: setup, stats with the required keys, create/delete, snapshots, a
//! volume from a snapshot, clones, extend, exports and connections), each repeated as
//! csi-sanity repeats its calls to prove idempotency; then the optional features (revert,
//! manage, retype, health), the sandbox's rules, and two instances racing on one backend.
//!
//! Every volume and snapshot gets a fresh UUID; whatever the run made is deleted at the
//! end, also after failures, and what could not be deleted is reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::report::{ActiveActive as AaVerdict, Category, Outcome, Verdict};
use super::runner::{
    Runner, apply_to_snapshot, apply_to_volume, join_all, not_found, optional, refused,
    repeated_delete, required, retyped, sandbox_records, setup_checks, trapped, unsupported,
};
use crate::driver::{
    ConnectionInfo, Connector, ManageableVolume, ModelUpdate, Snapshot, Volume, VolumeStats,
};
use crate::runtime::{CallError, DriverPool};

use Category::*;

/// What a volume driver's run is given: the driver loaded as `serve` loads it, the
/// backend's paired target when it has one, and the extra loads the sandbox and
/// active-active checks need (each `Err` says why it could not be made).
pub struct Subject {
    pub driver: Arc<DriverPool>,
    pub target: Option<Arc<DriverPool>>,
    /// The host name the local connector carries.
    pub host_name: String,
    /// The same driver on the same backend, as a second host would load it.
    pub peer: Option<Result<Arc<DriverPool>, String>>,
    /// The same component with every capability taken away.
    pub unprivileged: Result<Arc<DriverPool>, String>,
    /// Whether a load whose grants miss what the manifest asks is refused (`None`: the
    /// manifest asks for nothing that could be withheld).
    pub ungranted_refused: Option<Result<String, String>>,
    /// Whether the manifest asks for host calls (exec, block, http) that a capability-less
    /// load must see refused.
    pub asks_host_calls: bool,
}

/// What the run made and has not deleted yet, for the cleanup.
#[derive(Default)]
struct Made {
    volumes: Mutex<Vec<Volume>>,
    snapshots: Mutex<Vec<(Snapshot, Volume)>>,
}

impl Made {
    fn volume(&self, v: &Volume) {
        let mut l = self.volumes.lock().expect("made lock");
        l.retain(|x| x.id != v.id);
        l.push(v.clone());
    }
    fn volume_gone(&self, id: &str) {
        self.volumes
            .lock()
            .expect("made lock")
            .retain(|x| x.id != id);
    }
    fn snapshot(&self, s: &Snapshot, v: &Volume) {
        let mut l = self.snapshots.lock().expect("made lock");
        l.retain(|(x, _)| x.id != s.id);
        l.push((s.clone(), v.clone()));
    }
    fn snapshot_gone(&self, id: &str) {
        self.snapshots
            .lock()
            .expect("made lock")
            .retain(|(x, _)| x.id != id);
    }
}

/// The calls every check makes, tracking what they create.
struct Ops {
    pool: Option<String>,
    made: Made,
    /// Every id the run used, for the leftovers check.
    used: Mutex<Vec<String>>,
}

impl Ops {
    fn new_volume(&self, size_gib: u64) -> Volume {
        let id = uuid::Uuid::new_v4().to_string();
        self.used.lock().expect("used lock").push(id.clone());
        Volume {
            id,
            display_name: Some("ashlar-conformance".into()),
            size_gib,
            provider_location: None,
            provider_auth: None,
            volume_type_name: None,
            extra_specs: Vec::new(),
            pool: self.pool.clone(),
            qos_specs: Vec::new(),
        }
    }

    fn new_snapshot(&self, v: &Volume) -> Snapshot {
        let id = uuid::Uuid::new_v4().to_string();
        self.used.lock().expect("used lock").push(id.clone());
        Snapshot {
            id,
            volume_id: v.id.clone(),
            volume_size_gib: v.size_gib,
            provider_location: None,
            display_name: Some("ashlar-conformance".into()),
        }
    }

    async fn create(&self, d: &Arc<DriverPool>, v: Volume) -> Result<Volume, CallError> {
        self.made_by(v, async |v| d.create_volume(v).await).await
    }

    /// Records `v` as made before `make` runs (so cleanup finds what a half-done call
    /// left), then keeps what its model update says.
    async fn made_by(
        &self,
        mut v: Volume,
        make: impl AsyncFnOnce(&Volume) -> Result<ModelUpdate, CallError>,
    ) -> Result<Volume, CallError> {
        self.made.volume(&v);
        let u = make(&v).await?;
        apply_to_volume(&mut v, &u);
        self.made.volume(&v);
        Ok(v)
    }

    async fn delete(&self, d: &Arc<DriverPool>, v: &Volume) -> Result<(), CallError> {
        let r = d.delete_volume(v).await;
        if r.is_ok() {
            self.made.volume_gone(&v.id);
        }
        r
    }

    async fn snapshot(
        &self,
        d: &Arc<DriverPool>,
        v: &Volume,
    ) -> (Snapshot, Result<Snapshot, CallError>) {
        let mut s = self.new_snapshot(v);
        self.made.snapshot(&s, v);
        let r = d.create_snapshot(&s, v).await.map(|u| {
            apply_to_snapshot(&mut s, &u);
            self.made.snapshot(&s, v);
            s.clone()
        });
        (s, r)
    }

    async fn delete_snapshot(
        &self,
        d: &Arc<DriverPool>,
        s: &Snapshot,
        v: &Volume,
    ) -> Result<(), CallError> {
        let r = d.delete_snapshot(s, v).await;
        if r.is_ok() {
            self.made.snapshot_gone(&s.id);
        }
        r
    }

    async fn volume_from_snapshot(
        &self,
        d: &Arc<DriverPool>,
        size: u64,
        s: &Snapshot,
    ) -> Result<Volume, CallError> {
        self.made_by(self.new_volume(size), async |v| {
            d.create_volume_from_snapshot(v, s).await
        })
        .await
    }

    async fn clone_of(
        &self,
        d: &Arc<DriverPool>,
        size: u64,
        source: &Volume,
    ) -> Result<Volume, CallError> {
        self.made_by(self.new_volume(size), async |v| {
            d.create_cloned_volume(v, source).await
        })
        .await
    }

    /// Deletes everything still recorded as made, snapshots first; what could not be
    /// deleted, in words.
    async fn cleanup(&self, d: &Arc<DriverPool>) -> Vec<String> {
        let mut left = Vec::new();
        let snaps: Vec<(Snapshot, Volume)> = self.made.snapshots.lock().expect("lock").clone();
        for (s, v) in snaps.iter().rev() {
            if let Err(e) = self.delete_snapshot(d, s, v).await
                && !not_found(&e)
            {
                left.push(format!("snapshot {}: {e}", s.id));
            }
        }
        let vols: Vec<Volume> = self.made.volumes.lock().expect("lock").clone();
        for v in vols.iter().rev() {
            if let Err(e) = self.delete(d, v).await
                && !not_found(&e)
            {
                left.push(format!("volume {}: {e}", v.id));
            }
        }
        left
    }
}

/// A client's connector, as os-brick sends it.
fn client_connector(host: &str) -> Connector {
    Connector {
        host: host.to_string(),
        ip: Some("127.0.0.1".into()),
        initiator: Some(format!(
            "iqn.1993-08.org.debian:01:ashlar-conformance-{host}"
        )),
        multipath: false,
        platform: Some("x86_64".into()),
        os_type: Some("linux2".into()),
        extra: BTreeMap::new(),
    }
}

/// The keys of `data` os-brick needs for each `driver_volume_type` (one of each group).
pub fn required_keys(driver_volume_type: &str) -> Option<&'static [&'static [&'static str]]> {
    Some(match driver_volume_type.to_ascii_lowercase().as_str() {
        "iscsi" => &[
            &["target_portal", "target_portals"],
            &["target_iqn", "target_iqns"],
            &["target_lun", "target_luns"],
        ],
        "nfs" | "glusterfs" => &[&["export"], &["name"]],
        "local" => &[&["device_path"]],
        "fibre_channel" => &[
            &["target_wwn", "target_wwns"],
            &["target_lun", "target_luns"],
        ],
        "rbd" => &[&["name"]],
        "nvmeof" => &[&["target_nqn", "nqn"], &["target_portal", "portals"]],
        _ => return None,
    })
}

/// Whether connection info carries its protocol's required keys.
pub fn keys_outcome(info: &ConnectionInfo) -> Outcome {
    if info.driver_volume_type.is_empty() {
        return Outcome::fail("driver_volume_type is empty");
    }
    let Some(groups) = required_keys(&info.driver_volume_type) else {
        return Outcome::warn(format!(
            "driver_volume_type {} is not one this check knows the keys of",
            info.driver_volume_type
        ));
    };
    let missing: Vec<String> = groups
        .iter()
        .filter(|g| !g.iter().any(|k| info.data.contains_key(*k)))
        .map(|g| g.join("|"))
        .collect();
    if missing.is_empty() {
        Outcome::pass(format!(
            "{} with {}",
            info.driver_volume_type,
            info.data.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    } else {
        Outcome::fail(format!(
            "{} connection info lacks {}",
            info.driver_volume_type,
            missing.join(", ")
        ))
    }
}

/// Free, provisioned and allocated GiB summed over the pools.
fn totals(s: &VolumeStats) -> (f64, Option<f64>, Option<f64>) {
    let free = s.pools.iter().map(|p| p.free_capacity_gb).sum();
    let sum = |f: fn(&crate::driver::PoolStats) -> Option<f64>| {
        s.pools.iter().map(f).try_fold(0.0, |a, b| b.map(|b| a + b))
    };
    (
        free,
        sum(|p| p.provisioned_capacity_gb),
        sum(|p| p.allocated_capacity_gb),
    )
}

/// A manageable-volumes listing entry that belongs to one of `ids`.
fn mentions(m: &ManageableVolume, ids: &[String]) -> bool {
    ids.iter()
        .any(|id| m.cinder_id.as_deref() == Some(id.as_str()) || m.reference.contains(id.as_str()))
}

/// Runs every volume-driver check; the active-active verdict.
pub async fn run(s: &Subject, r: &mut Runner) -> AaVerdict {
    let d = &s.driver;
    let started = Instant::now();
    setup_checks(r, d, started).await;

    // Stats: Cinder's required keys, per backend and per pool.
    let mut stats = None;
    r.run("stats.get_volume_stats", Capabilities, true, async {
        let got = d.get_volume_stats(true).await;
        let o = required("get_volume_stats(refresh=true)", &got);
        stats = got.ok();
        o
    })
    .await;
    r.run("stats.get_volume_stats.cached", Capabilities, true, async {
        required(
            "get_volume_stats(refresh=false)",
            &d.get_volume_stats(false).await,
        )
    })
    .await;
    stats_checks(r, d, stats.as_ref());
    let pool = stats
        .as_ref()
        .and_then(|s| s.pools.first())
        .map(|p| p.pool_name.clone());
    let ops = Ops {
        pool,
        made: Made::default(),
        used: Mutex::new(Vec::new()),
    };

    // Before anything is made: the listing and the capacity to compare with at the end.
    let listing_before = d.get_manageable_volumes().await.ok();

    let v1 = create_delete(r, d, &ops, stats.as_ref()).await;
    let v1 = snapshots_and_copies(r, d, &ops, v1).await;
    let v1 = expand(r, d, &ops, v1).await;
    publish(r, s, v1.as_ref()).await;
    optional_features(r, d, &ops, v1.as_ref()).await;

    // The sandbox, after the everyday operations: nothing they did trapped or was refused.
    sandbox_records(r, d, s.ungranted_refused.as_ref()).await;
    sandbox(r, s, &ops).await;

    let active_active = match &s.peer {
        Some(peer) => active_active(r, d, peer, &ops).await,
        None => AaVerdict::default(),
    };

    // Cleanup: everything the run made, even after failures.
    let started = Instant::now();
    let ids = ops.used.lock().expect("lock").clone();
    let left = ops.cleanup(d).await;
    r.record(
        "cleanup.deleted",
        Cleanup,
        true,
        if left.is_empty() {
            Outcome::pass(format!(
                "{} volume(s) and snapshot(s) made by the run are deleted",
                ids.len()
            ))
        } else {
            Outcome::fail(format!("could not delete: {}", left.join("; ")))
        },
        started,
    );
    r.run("cleanup.no_leftovers", Cleanup, false, async {
        match (listing_before, d.get_manageable_volumes().await) {
            (Some(before), Ok(after)) => {
                let new: Vec<String> = after
                    .iter()
                    .filter(|m| !before.iter().any(|b| b.reference == m.reference))
                    .map(|m| m.reference.clone())
                    .collect();
                let ours: Vec<String> = after
                    .iter()
                    .filter(|m| mentions(m, &ids))
                    .map(|m| m.reference.clone())
                    .collect();
                if new.is_empty() && ours.is_empty() {
                    Outcome::pass(format!(
                        "the backend lists the same {} volume(s) as before the run",
                        after.len()
                    ))
                } else {
                    Outcome::warn(format!(
                        "left on the backend: {}",
                        new.into_iter().chain(ours).collect::<Vec<_>>().join(", ")
                    ))
                }
            }
            (_, Err(e)) if unsupported(&e) => {
                Outcome::skip("the driver cannot list its backend's volumes")
            }
            (None, _) => Outcome::skip("the backend's volumes could not be listed before the run"),
            (_, Err(e)) => Outcome::fail(format!("get_manageable_volumes: {e}")),
        }
    })
    .await;
    r.run("capacity.restored", Capacity, false, async {
        let (Some(before), Ok(after)) = (stats.as_ref(), d.get_volume_stats(true).await) else {
            return Outcome::skip("no stats to compare");
        };
        let (_, pb, ab) = totals(before);
        let (_, pa, aa) = totals(&after);
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 0.5,
            _ => true,
        };
        if close(pb, pa) && close(ab, aa) {
            Outcome::pass(format!(
                "provisioned {pb:?} → {pa:?} GiB, allocated {ab:?} → {aa:?} GiB"
            ))
        } else {
            Outcome::warn(format!(
                "capacity not back to where it was: provisioned {pb:?} → {pa:?} GiB, allocated {ab:?} → {aa:?} GiB (another user of the backend, or a leak)"
            ))
        }
    })
    .await;
    active_active
}

/// Cinder's required stats keys, each its own check.
fn stats_checks(r: &mut Runner, d: &Arc<DriverPool>, stats: Option<&VolumeStats>) {
    let now = Instant::now;
    let Some(s) = stats else {
        for id in [
            "stats.volume_backend_name",
            "stats.vendor_name",
            "stats.driver_version",
            "stats.storage_protocol",
            "stats.pools",
            "stats.pool_names",
            "stats.total_capacity_gb",
            "stats.free_capacity_gb",
            "stats.reserved_percentage",
            "stats.max_over_subscription_ratio",
        ] {
            r.not_run(id, Capabilities, true, "stats.get_volume_stats failed");
        }
        for id in [
            "stats.provisioning_support",
            "stats.provisioned_capacity_gb",
            "stats.allocated_capacity_gb",
            "stats.backend_name_matches",
        ] {
            r.not_run(id, Capabilities, false, "stats.get_volume_stats failed");
        }
        return;
    };
    let text = |id: &str, v: &str, r: &mut Runner| {
        r.record(
            id,
            Capabilities,
            true,
            Outcome::check(!v.trim().is_empty(), format!("{v:?}")),
            now(),
        );
    };
    text("stats.volume_backend_name", &s.volume_backend_name, r);
    text("stats.vendor_name", &s.vendor_name, r);
    text("stats.driver_version", &s.driver_version, r);
    text("stats.storage_protocol", &s.storage_protocol, r);
    r.record(
        "stats.backend_name_matches",
        Capabilities,
        false,
        if s.volume_backend_name == d.identity.backend {
            Outcome::pass("volume_backend_name is the backend's name")
        } else {
            Outcome::warn(format!(
                "volume_backend_name {:?} is not the backend's name {:?}: volume types match on it",
                s.volume_backend_name, d.identity.backend
            ))
        },
        now(),
    );
    r.record(
        "stats.pools",
        Capabilities,
        true,
        Outcome::check(!s.pools.is_empty(), format!("{} pool(s)", s.pools.len())),
        now(),
    );
    let mut names: Vec<&str> = s.pools.iter().map(|p| p.pool_name.as_str()).collect();
    names.sort_unstable();
    let unique = names.windows(2).all(|w| w[0] != w[1]);
    r.record(
        "stats.pool_names",
        Capabilities,
        true,
        Outcome::check(
            unique && !s.pools.is_empty() && names.iter().all(|n| !n.is_empty()),
            format!("pools {names:?}: named and unique"),
        ),
        now(),
    );
    let each = |pred: &dyn Fn(&crate::driver::PoolStats) -> bool| {
        !s.pools.is_empty() && s.pools.iter().all(pred)
    };
    let list = |f: &dyn Fn(&crate::driver::PoolStats) -> String| {
        s.pools.iter().map(f).collect::<Vec<_>>().join(", ")
    };
    r.record(
        "stats.total_capacity_gb",
        Capabilities,
        true,
        Outcome::check(
            each(&|p| p.total_capacity_gb.is_finite() && p.total_capacity_gb >= 0.0),
            list(&|p| format!("{}: {} GiB", p.pool_name, p.total_capacity_gb)),
        ),
        now(),
    );
    r.record(
        "stats.free_capacity_gb",
        Capabilities,
        true,
        Outcome::check(
            each(&|p| {
                p.free_capacity_gb.is_finite()
                    && p.free_capacity_gb >= 0.0
                    && p.free_capacity_gb <= p.total_capacity_gb + 0.01
            }),
            list(&|p| {
                format!(
                    "{}: {} of {} GiB free",
                    p.pool_name, p.free_capacity_gb, p.total_capacity_gb
                )
            }),
        ),
        now(),
    );
    r.record(
        "stats.reserved_percentage",
        Capabilities,
        true,
        Outcome::check(
            each(&|p| p.reserved_percentage <= 100),
            list(&|p| format!("{}: {}%", p.pool_name, p.reserved_percentage)),
        ),
        now(),
    );
    r.record(
        "stats.max_over_subscription_ratio",
        Capabilities,
        true,
        Outcome::check(
            each(&|p| p.max_over_subscription_ratio >= 1.0),
            list(&|p| format!("{}: {}", p.pool_name, p.max_over_subscription_ratio)),
        ),
        now(),
    );
    r.record(
        "stats.provisioning_support",
        Capabilities,
        false,
        Outcome {
            verdict: if each(&|p| p.thin_provisioning_support || p.thick_provisioning_support) {
                Verdict::Pass
            } else {
                Verdict::Warn
            },
            message: list(&|p| {
                format!(
                    "{}: thin {}, thick {}",
                    p.pool_name, p.thin_provisioning_support, p.thick_provisioning_support
                )
            }),
        },
        now(),
    );
    for (id, get) in [
        (
            "stats.provisioned_capacity_gb",
            (|p: &crate::driver::PoolStats| p.provisioned_capacity_gb)
                as fn(&crate::driver::PoolStats) -> Option<f64>,
        ),
        ("stats.allocated_capacity_gb", |p| p.allocated_capacity_gb),
    ] {
        let key = id.trim_start_matches("stats.");
        r.record(
            id,
            Capabilities,
            false,
            if each(&|p| get(p).is_some()) {
                Outcome::pass(list(&|p| format!("{}: {:?}", p.pool_name, get(p))))
            } else {
                Outcome::warn(format!(
                    "not reported; the scheduler falls back on the host's own count for {key}"
                ))
            },
            now(),
        );
    }
}

async fn create_delete(
    r: &mut Runner,
    d: &Arc<DriverPool>,
    ops: &Ops,
    stats: Option<&VolumeStats>,
) -> Option<Volume> {
    // The first volume stays for the snapshots, copies and connections that follow.
    let v1 = ops.new_volume(1);
    let mut made = None;
    r.run("volume.create", CreateDelete, true, async {
        let got = ops.create(d, v1.clone()).await;
        let o = required("create_volume (1 GiB)", &got);
        made = got.ok();
        o
    })
    .await;
    match &made {
        Some(v) => {
            r.run("volume.create.idempotent", CreateDelete, true, async {
                match d.create_volume(v).await {
                    Ok(_) => Outcome::pass("a repeated create of the same id succeeds"),
                    Err(e) if trapped(&e) => Outcome::fail(format!("the driver trapped: {e}")),
                    Err(e) => Outcome::pass(format!(
                        "a repeated create of the same id is refused cleanly: {e}"
                    )),
                }
            })
            .await;
            r.run("capacity.reflects_create", Capacity, false, async {
                let (Some(before), Ok(after)) = (stats, d.get_volume_stats(true).await) else {
                    return Outcome::skip("no stats to compare");
                };
                let (fb, pb, ab) = totals(before);
                let (fa, pa, aa) = totals(&after);
                if pa > pb || aa > ab || fa < fb {
                    Outcome::pass(format!(
                        "free {fb} → {fa}, provisioned {pb:?} → {pa:?}, allocated {ab:?} → {aa:?} GiB"
                    ))
                } else {
                    Outcome::warn(format!(
                        "the stats do not show the new volume (free {fb} → {fa}, provisioned {pb:?} → {pa:?} GiB)"
                    ))
                }
            })
            .await;
            r.run("volume.create.listed", CreateDelete, false, async {
                match d.get_manageable_volumes().await {
                    Ok(l) => {
                        let ours: Vec<&ManageableVolume> = l
                            .iter()
                            .filter(|m| mentions(m, std::slice::from_ref(&v.id)))
                            .collect();
                        match ours.len() {
                            1 => Outcome::pass(format!(
                                "listed once: {} ({} GiB, safe to manage: {})",
                                ours[0].reference, ours[0].size_gib, ours[0].safe_to_manage
                            )),
                            0 => Outcome::warn("the new volume is not in get_manageable_volumes"),
                            n => Outcome::fail(format!(
                                "listed {n} times after a repeated create: it leaked"
                            )),
                        }
                    }
                    Err(e) => optional("get_manageable_volumes", &Err::<(), _>(e)),
                }
            })
            .await;
        }
        None => {
            r.not_run(
                "volume.create.idempotent",
                CreateDelete,
                true,
                "volume.create failed",
            );
            r.not_run(
                "capacity.reflects_create",
                Capacity,
                false,
                "volume.create failed",
            );
            r.not_run(
                "volume.create.listed",
                CreateDelete,
                false,
                "volume.create failed",
            );
        }
    }

    // A second size, then delete it twice.
    let mut v2 = None;
    r.run("volume.create.2gib", CreateDelete, true, async {
        let got = ops.create(d, ops.new_volume(2)).await;
        let o = required("create_volume (2 GiB)", &got);
        v2 = got.ok();
        o
    })
    .await;
    match &v2 {
        Some(v) => {
            let deleted = r
                .run("volume.delete", CreateDelete, true, async {
                    required("delete_volume", &ops.delete(d, v).await)
                })
                .await;
            if deleted {
                r.run("volume.delete.idempotent", CreateDelete, true, async {
                    repeated_delete("delete_volume", &d.delete_volume(v).await)
                })
                .await;
                r.run("volume.delete.third_time", CreateDelete, true, async {
                    repeated_delete("delete_volume", &d.delete_volume(v).await)
                })
                .await;
            } else {
                r.not_run(
                    "volume.delete.idempotent",
                    CreateDelete,
                    true,
                    "volume.delete failed",
                );
                r.not_run(
                    "volume.delete.third_time",
                    CreateDelete,
                    true,
                    "volume.delete failed",
                );
            }
        }
        None => {
            for id in [
                "volume.delete",
                "volume.delete.idempotent",
                "volume.delete.third_time",
            ] {
                r.not_run(id, CreateDelete, true, "volume.create.2gib failed");
            }
        }
    }
    r.run("volume.delete.never_created", CreateDelete, true, async {
        let v = ops.new_volume(1);
        repeated_delete(
            "delete_volume of a volume never created",
            &d.delete_volume(&v).await,
        )
    })
    .await;

    // Several at once, as the host's instance pool runs them.
    let mut many = Vec::new();
    r.run("volume.create.concurrent", CreateDelete, true, async {
        let results = join_all((0..3).map(|_| ops.create(d, ops.new_volume(1)))).await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        many = results.into_iter().filter_map(Result::ok).collect();
        Outcome::check(
            failed.is_empty(),
            if failed.is_empty() {
                "three creates at once succeed".to_string()
            } else {
                format!("concurrent creates failed: {}", failed.join("; "))
            },
        )
    })
    .await;
    r.run("volume.delete.concurrent", CreateDelete, true, async {
        if many.is_empty() {
            return Outcome::fail("not run: volume.create.concurrent made nothing");
        }
        let results = join_all(many.iter().map(|v| ops.delete(d, v))).await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        Outcome::check(
            failed.is_empty(),
            if failed.is_empty() {
                format!("{} deletes at once succeed", many.len())
            } else {
                format!("concurrent deletes failed: {}", failed.join("; "))
            },
        )
    })
    .await;
    r.run("volume.create.extra_specs", CreateDelete, true, async {
        let mut v = ops.new_volume(1);
        v.volume_type_name = Some("conformance".into());
        v.extra_specs = vec![
            ("conformance:unknown_key".into(), "value".into()),
            ("qos:total_iops_sec".into(), "500".into()),
            (
                "capabilities:storage_protocol".into(),
                "<in> iscsi nfs".into(),
            ),
        ];
        match ops.create(d, v).await {
            Ok(v) => match ops.delete(d, &v).await {
                Ok(()) => {
                    Outcome::pass("a volume of a type with unknown extra specs is made and deleted")
                }
                Err(e) => Outcome::fail(format!("delete_volume: {e}")),
            },
            Err(e) => Outcome::fail(format!(
                "create_volume with extra specs it does not know: {e}"
            )),
        }
    })
    .await;
    r.run("capacity.oversized_create", Capacity, false, async {
        let Some(s) = stats else {
            return Outcome::skip("no stats");
        };
        let most = s
            .pools
            .iter()
            .map(|p| p.total_capacity_gb * p.max_over_subscription_ratio.max(1.0))
            .fold(0.0, f64::max);
        let size = (most.ceil() as u64).saturating_mul(4).max(1 << 20);
        let v = ops.new_volume(size);
        match ops.create(d, v.clone()).await {
            Ok(v) => {
                let _ = ops.delete(d, &v).await;
                Outcome::warn(format!(
                    "a {size} GiB volume, far beyond the pool's capacity, was created (and deleted)"
                ))
            }
            Err(e) if trapped(&e) => Outcome::fail(format!("the driver trapped: {e}")),
            Err(e) => {
                ops.made.volume_gone(&v.id);
                let _ = d.delete_volume(&v).await;
                Outcome::pass(format!("a {size} GiB volume is refused: {e}"))
            }
        }
    })
    .await;
    made
}

async fn snapshots_and_copies(
    r: &mut Runner,
    d: &Arc<DriverPool>,
    ops: &Ops,
    v1: Option<Volume>,
) -> Option<Volume> {
    let Some(v1) = v1 else {
        for (id, cat, req) in [
            ("snapshot.create", Snapshots, true),
            ("snapshot.create.idempotent", Snapshots, true),
            ("snapshot.create.second", Snapshots, true),
            ("snapshot.delete", Snapshots, true),
            ("snapshot.delete.idempotent", Snapshots, true),
            ("volume.from_snapshot", Copies, true),
            ("volume.from_snapshot.larger", Copies, true),
            ("volume.from_snapshot.survives_snapshot", Copies, true),
            ("volume.clone", Copies, true),
            ("volume.clone.larger", Copies, true),
            ("volume.clone.survives_source", Copies, true),
        ] {
            r.not_run(id, cat, req, "volume.create failed");
        }
        snapshot_refusals(r, d, ops).await;
        return None;
    };
    let mut s1 = None;
    r.run("snapshot.create", Snapshots, true, async {
        let (_, got) = ops.snapshot(d, &v1).await;
        let o = required("create_snapshot", &got);
        s1 = got.ok();
        o
    })
    .await;
    match &s1 {
        Some(s) => {
            r.run("snapshot.create.idempotent", Snapshots, true, async {
                match d.create_snapshot(s, &v1).await {
                    Ok(_) => Outcome::pass("a repeated create of the same snapshot id succeeds"),
                    Err(e) if trapped(&e) => Outcome::fail(format!("the driver trapped: {e}")),
                    Err(e) => Outcome::pass(format!("a repeated create is refused cleanly: {e}")),
                }
            })
            .await;
        }
        None => r.not_run(
            "snapshot.create.idempotent",
            Snapshots,
            true,
            "snapshot.create failed",
        ),
    }
    let mut s2 = None;
    r.run("snapshot.create.second", Snapshots, true, async {
        let (_, got) = ops.snapshot(d, &v1).await;
        let o = required("a second snapshot of the same volume", &got);
        s2 = got.ok();
        o
    })
    .await;
    match &s2 {
        Some(s) => {
            let ok = r
                .run("snapshot.delete", Snapshots, true, async {
                    required("delete_snapshot", &ops.delete_snapshot(d, s, &v1).await)
                })
                .await;
            if ok {
                r.run("snapshot.delete.idempotent", Snapshots, true, async {
                    repeated_delete("delete_snapshot", &d.delete_snapshot(s, &v1).await)
                })
                .await;
            } else {
                r.not_run(
                    "snapshot.delete.idempotent",
                    Snapshots,
                    true,
                    "snapshot.delete failed",
                );
            }
        }
        None => {
            r.not_run(
                "snapshot.delete",
                Snapshots,
                true,
                "snapshot.create.second failed",
            );
            r.not_run(
                "snapshot.delete.idempotent",
                Snapshots,
                true,
                "snapshot.create.second failed",
            );
        }
    }
    snapshot_refusals(r, d, ops).await;

    // Volumes from the snapshot, then the snapshot goes and they stay.
    match &s1 {
        Some(s) => {
            let mut from = None;
            r.run("volume.from_snapshot", Copies, true, async {
                let got = ops.volume_from_snapshot(d, v1.size_gib, s).await;
                let o = required("create_volume_from_snapshot", &got);
                from = got.ok();
                o
            })
            .await;
            let mut larger = None;
            r.run("volume.from_snapshot.larger", Copies, true, async {
                let got = ops.volume_from_snapshot(d, v1.size_gib + 1, s).await;
                let o = required(
                    "create_volume_from_snapshot, one GiB larger than the snapshot",
                    &got,
                );
                larger = got.ok();
                o
            })
            .await;
            r.run("volume.from_snapshot.survives_snapshot", Copies, true, async {
                if let Err(e) = ops.delete_snapshot(d, s, &v1).await {
                    return Outcome::fail(format!("delete_snapshot under volumes made from it: {e}"));
                }
                let mut done = Vec::new();
                for v in from.iter().chain(larger.iter()) {
                    if let Err(e) = d.extend_volume(v, v.size_gib + 1).await {
                        return Outcome::fail(format!("extend after its snapshot went: {e}"));
                    }
                    let mut grown = v.clone();
                    grown.size_gib += 1;
                    if let Err(e) = ops.delete(d, &grown).await {
                        return Outcome::fail(format!("delete after its snapshot went: {e}"));
                    }
                    done.push(v.id.clone());
                }
                if done.is_empty() {
                    return Outcome::fail("no volume was made from the snapshot");
                }
                Outcome::pass(format!(
                    "the snapshot is deleted first; its {} volume(s) extend and delete on their own",
                    done.len()
                ))
            })
            .await;
        }
        None => {
            for id in [
                "volume.from_snapshot",
                "volume.from_snapshot.larger",
                "volume.from_snapshot.survives_snapshot",
            ] {
                r.not_run(id, Copies, true, "snapshot.create failed");
            }
        }
    }
    r.run("volume.from_snapshot.missing", Copies, false, async {
        let gone = ops.new_snapshot(&v1);
        let v = ops.new_volume(1);
        ops.made.volume(&v);
        let got = d.create_volume_from_snapshot(&v, &gone).await;
        if got.is_err() {
            ops.made.volume_gone(&v.id);
        }
        refused(
            "create_volume_from_snapshot of a snapshot that does not exist",
            &got,
        )
    })
    .await;

    // Clones.
    r.run("volume.clone", Copies, true, async {
        match ops.clone_of(d, v1.size_gib, &v1).await {
            Ok(c) => required("delete the clone", &ops.delete(d, &c).await)
                .with_prefix("create_cloned_volume succeeds; "),
            Err(e) => Outcome::fail(format!("create_cloned_volume: {e}")),
        }
    })
    .await;
    r.run("volume.clone.larger", Copies, true, async {
        match ops.clone_of(d, v1.size_gib + 1, &v1).await {
            Ok(c) => required("delete the clone", &ops.delete(d, &c).await)
                .with_prefix("a clone one GiB larger than its source succeeds; "),
            Err(e) => Outcome::fail(format!("create_cloned_volume, one GiB larger: {e}")),
        }
    })
    .await;
    r.run("volume.clone.survives_source", Copies, true, async {
        let source = match ops.create(d, ops.new_volume(1)).await {
            Ok(v) => v,
            Err(e) => return Outcome::fail(format!("create_volume: {e}")),
        };
        let clone = match ops.clone_of(d, 1, &source).await {
            Ok(c) => c,
            Err(e) => return Outcome::fail(format!("create_cloned_volume: {e}")),
        };
        if let Err(e) = ops.delete(d, &source).await {
            return Outcome::fail(format!("delete the source of a clone: {e}"));
        }
        if let Err(e) = d.extend_volume(&clone, 2).await {
            return Outcome::fail(format!("extend the clone after its source went: {e}"));
        }
        let mut grown = clone.clone();
        grown.size_gib = 2;
        match ops.delete(d, &grown).await {
            Ok(()) => {
                Outcome::pass("the source goes first; the clone extends and deletes on its own")
            }
            Err(e) => Outcome::fail(format!("delete the clone after its source went: {e}")),
        }
    })
    .await;
    r.run("volume.clone.missing_source", Copies, false, async {
        let missing = ops.new_volume(1);
        let v = ops.new_volume(1);
        ops.made.volume(&v);
        let got = d.create_cloned_volume(&v, &missing).await;
        if got.is_err() {
            ops.made.volume_gone(&v.id);
        }
        refused("create_cloned_volume of a volume that does not exist", &got)
    })
    .await;
    Some(v1)
}

/// Snapshot requests that must be refused or be harmless.
async fn snapshot_refusals(r: &mut Runner, d: &Arc<DriverPool>, ops: &Ops) {
    r.run("snapshot.delete.never_created", Snapshots, true, async {
        let v = ops.new_volume(1);
        let s = ops.new_snapshot(&v);
        repeated_delete(
            "delete_snapshot of a snapshot never created",
            &d.delete_snapshot(&s, &v).await,
        )
    })
    .await;
    r.run("snapshot.create.missing_volume", Snapshots, false, async {
        let v = ops.new_volume(1);
        let s = ops.new_snapshot(&v);
        ops.made.snapshot(&s, &v);
        let got = d.create_snapshot(&s, &v).await;
        if got.is_err() {
            ops.made.snapshot_gone(&s.id);
        }
        refused("create_snapshot of a volume that does not exist", &got)
    })
    .await;
}

trait Prefixed {
    fn with_prefix(self, prefix: &str) -> Self;
}

impl Prefixed for Outcome {
    fn with_prefix(mut self, prefix: &str) -> Outcome {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}

async fn expand(
    r: &mut Runner,
    d: &Arc<DriverPool>,
    ops: &Ops,
    v1: Option<Volume>,
) -> Option<Volume> {
    let Some(mut v1) = v1 else {
        for id in ["volume.extend", "volume.extend.then_snapshot"] {
            r.not_run(id, Expand, true, "volume.create failed");
        }
        r.not_run(
            "volume.extend.same_size",
            Expand,
            false,
            "volume.create failed",
        );
        r.not_run(
            "capacity.reflects_extend",
            Capacity,
            false,
            "volume.create failed",
        );
        r.run("volume.extend.missing", Expand, false, async {
            refused(
                "extend_volume of a volume that does not exist",
                &d.extend_volume(&ops.new_volume(1), 2).await,
            )
        })
        .await;
        return None;
    };
    let before = d.get_volume_stats(true).await.ok();
    let ok = r
        .run("volume.extend", Expand, true, async {
            required(
                &format!("extend_volume {} → {} GiB", v1.size_gib, v1.size_gib + 1),
                &d.extend_volume(&v1, v1.size_gib + 1).await,
            )
        })
        .await;
    if ok {
        v1.size_gib += 1;
        ops.made.volume(&v1);
        r.run("volume.extend.same_size", Expand, false, async {
            match d.extend_volume(&v1, v1.size_gib).await {
                Ok(()) => Outcome::pass("extending to the size it has succeeds"),
                Err(e) if trapped(&e) => Outcome::fail(format!("the driver trapped: {e}")),
                Err(e) => Outcome::warn(format!(
                    "extending to the size it has fails ({e}); csi-sanity expects success (Cinder's API never asks it)"
                )),
            }
        })
        .await;
        r.run("capacity.reflects_extend", Capacity, false, async {
            let (Some(b), Ok(a)) = (before, d.get_volume_stats(true).await) else {
                return Outcome::skip("no stats to compare");
            };
            let ((fb, pb, ab), (fa, pa, aa)) = (totals(&b), totals(&a));
            if pa > pb || aa > ab || fa < fb {
                Outcome::pass(format!("provisioned {pb:?} → {pa:?}, free {fb} → {fa} GiB"))
            } else {
                Outcome::warn(format!(
                    "the stats do not show the extend (provisioned {pb:?} → {pa:?}, free {fb} → {fa} GiB)"
                ))
            }
        })
        .await;
        r.run("volume.extend.then_snapshot", Expand, true, async {
            let (_, got) = ops.snapshot(d, &v1).await;
            let s = match got {
                Ok(s) => s,
                Err(e) => {
                    return Outcome::fail(format!("create_snapshot of the extended volume: {e}"));
                }
            };
            let out = match ops.volume_from_snapshot(d, v1.size_gib, &s).await {
                Ok(v) => match ops.delete(d, &v).await {
                    Ok(()) => Outcome::pass(format!(
                        "a snapshot of the extended volume gives a {} GiB volume",
                        v1.size_gib
                    )),
                    Err(e) => Outcome::fail(format!("delete_volume: {e}")),
                },
                Err(e) => {
                    Outcome::fail(format!("create_volume_from_snapshot at the new size: {e}"))
                }
            };
            if let Err(e) = ops.delete_snapshot(d, &s, &v1).await {
                return Outcome::fail(format!("delete_snapshot: {e}"));
            }
            out
        })
        .await;
    } else {
        r.not_run(
            "volume.extend.same_size",
            Expand,
            false,
            "volume.extend failed",
        );
        r.not_run(
            "capacity.reflects_extend",
            Capacity,
            false,
            "volume.extend failed",
        );
        r.not_run(
            "volume.extend.then_snapshot",
            Expand,
            true,
            "volume.extend failed",
        );
    }
    r.run("volume.extend.missing", Expand, false, async {
        refused(
            "extend_volume of a volume that does not exist",
            &d.extend_volume(&ops.new_volume(1), 2).await,
        )
    })
    .await;
    Some(v1)
}

/// Exports and connections: the volume driver's own, and through the paired target.
async fn publish(r: &mut Runner, s: &Subject, v1: Option<&Volume>) {
    let d = &s.driver;
    let Some(v1) = v1 else {
        for id in [
            "export.create",
            "export.create.idempotent",
            "connection.initialize",
            "connection.initialize.keys",
            "connection.initialize.idempotent",
            "connection.terminate",
            "connection.terminate.idempotent",
            "connection.terminate.all",
            "export.remove",
            "export.remove.idempotent",
        ] {
            r.not_run(id, PublishUnpublish, true, "volume.create failed");
        }
        for id in [
            "connection.initialize.protocol",
            "connection.initialize.second_host",
            "connection.terminate.second_host",
            "connection.terminate.unknown_host",
            "connection.local",
            "target.create_export",
            "target.initialize_connection",
            "target.initialize_connection.keys",
            "target.terminate_connection",
            "target.remove_export",
            "target.remove_export.idempotent",
        ] {
            r.not_run(id, PublishUnpublish, false, "volume.create failed");
        }
        return;
    };
    let mut v = v1.clone();
    let client = client_connector("conformance-a");
    let other = client_connector("conformance-b");
    // With a paired target, the host asks the volume driver for its local device only.
    let paired = s.target.is_some();
    let connector = if paired {
        Connector::local(&s.host_name)
    } else {
        client.clone()
    };

    let exported = r
        .run("export.create", PublishUnpublish, true, async {
            match d.create_export(&v, Some(&connector)).await {
                Ok(u) => {
                    apply_to_volume(&mut v, &u);
                    Outcome::pass("create_export")
                }
                Err(e) => Outcome::fail(format!("create_export: {e}")),
            }
        })
        .await;
    if exported {
        r.run("export.create.idempotent", PublishUnpublish, true, async {
            required(
                "a repeated create_export",
                &d.create_export(&v, Some(&connector)).await,
            )
        })
        .await;
    } else {
        r.not_run(
            "export.create.idempotent",
            PublishUnpublish,
            true,
            "export.create failed",
        );
    }
    let mut info = None;
    r.run("connection.initialize", PublishUnpublish, true, async {
        let got = d.initialize_connection(&v, &connector).await;
        let o = required(
            if paired {
                "initialize_connection with the host's local connector (the backend pairs a target)"
            } else {
                "initialize_connection"
            },
            &got,
        );
        info = got.ok();
        o
    })
    .await;
    match &info {
        Some(i) => {
            r.record(
                "connection.initialize.keys",
                PublishUnpublish,
                true,
                keys_outcome(i),
                Instant::now(),
            );
            let protocol = d
                .get_volume_stats(false)
                .await
                .map(|s| s.storage_protocol.to_ascii_lowercase())
                .unwrap_or_default();
            r.record(
                "connection.initialize.protocol",
                PublishUnpublish,
                false,
                if paired || protocol == i.driver_volume_type.to_ascii_lowercase() {
                    Outcome::pass(format!("driver_volume_type {}", i.driver_volume_type))
                } else {
                    Outcome::warn(format!(
                        "driver_volume_type {} is not the storage_protocol {protocol} the stats report",
                        i.driver_volume_type
                    ))
                },
                Instant::now(),
            );
            r.run(
                "connection.initialize.idempotent",
                PublishUnpublish,
                true,
                async {
                    match d.initialize_connection(&v, &connector).await {
                        Ok(again)
                            if again.driver_volume_type == i.driver_volume_type
                                && again.data == i.data =>
                        {
                            Outcome::pass("a repeated initialize_connection answers the same")
                        }
                        Ok(again) => Outcome::warn(format!(
                            "a repeated initialize_connection answers differently: {:?} then {:?}",
                            i.data, again.data
                        )),
                        Err(e) => Outcome::fail(format!("a repeated initialize_connection: {e}")),
                    }
                },
            )
            .await;
        }
        None => {
            r.not_run(
                "connection.initialize.keys",
                PublishUnpublish,
                true,
                "connection.initialize failed",
            );
            r.not_run(
                "connection.initialize.protocol",
                PublishUnpublish,
                false,
                "connection.initialize failed",
            );
            r.not_run(
                "connection.initialize.idempotent",
                PublishUnpublish,
                true,
                "connection.initialize failed",
            );
        }
    }
    let second = !paired;
    if second {
        r.run(
            "connection.initialize.second_host",
            PublishUnpublish,
            false,
            async {
                match d.initialize_connection(&v, &other).await {
                    Ok(i) => keys_outcome(&i).with_prefix("a second host connects: "),
                    Err(e) => optional("initialize_connection for a second host", &Err::<(), _>(e)),
                }
            },
        )
        .await;
    } else {
        r.record(
            "connection.initialize.second_host",
            PublishUnpublish,
            false,
            Outcome::skip("the paired target serves hosts"),
            Instant::now(),
        );
    }
    r.run("connection.terminate", PublishUnpublish, true, async {
        required(
            "terminate_connection",
            &d.terminate_connection(&v, Some(&connector)).await,
        )
    })
    .await;
    r.run(
        "connection.terminate.idempotent",
        PublishUnpublish,
        true,
        async {
            repeated_delete(
                "terminate_connection",
                &d.terminate_connection(&v, Some(&connector)).await,
            )
        },
    )
    .await;
    if second {
        r.run(
            "connection.terminate.second_host",
            PublishUnpublish,
            false,
            async {
                repeated_delete(
                    "terminate_connection of the second host",
                    &d.terminate_connection(&v, Some(&other)).await,
                )
            },
        )
        .await;
    } else {
        r.record(
            "connection.terminate.second_host",
            PublishUnpublish,
            false,
            Outcome::skip("the paired target serves hosts"),
            Instant::now(),
        );
    }
    r.run(
        "connection.terminate.unknown_host",
        PublishUnpublish,
        false,
        async {
            repeated_delete(
                "terminate_connection of a host that never connected",
                &d.terminate_connection(&v, Some(&client_connector("conformance-never")))
                    .await,
            )
        },
    )
    .await;
    r.run("connection.terminate.all", PublishUnpublish, true, async {
        repeated_delete(
            "terminate_connection of every host (a force detach)",
            &d.terminate_connection(&v, None).await,
        )
    })
    .await;
    r.run("export.remove", PublishUnpublish, true, async {
        required("remove_export", &d.remove_export(&v).await)
    })
    .await;
    r.run("export.remove.idempotent", PublishUnpublish, true, async {
        repeated_delete("remove_export", &d.remove_export(&v).await)
    })
    .await;

    // The local device, as the host asks for it before a target exports it.
    let mut device = None;
    r.run("connection.local", PublishUnpublish, paired, async {
        match d
            .initialize_connection(&v, &Connector::local(&s.host_name))
            .await
        {
            Ok(i) if i.driver_volume_type == "local" => match i.text("device_path") {
                Some(p) => {
                    device = Some(p.to_string());
                    Outcome::pass(format!("local device {p}"))
                }
                None => Outcome::fail("a local connection without device_path"),
            },
            Ok(i) if paired => Outcome::fail(format!(
                "asked for the local device, answered {}",
                i.driver_volume_type
            )),
            Ok(i) => Outcome::skip(format!(
                "the driver answers the host's local connector with {} (it serves hosts itself)",
                i.driver_volume_type
            )),
            Err(e) => optional(
                "initialize_connection with the local connector",
                &Err::<(), _>(e),
            ),
        }
    })
    .await;
    if device.is_some() {
        let _ = d
            .terminate_connection(&v, Some(&Connector::local(&s.host_name)))
            .await;
    }
    target_pairing(r, s, &v, device).await;
}

/// The backend's target exporting the volume's local device, as an attach does.
async fn target_pairing(r: &mut Runner, s: &Subject, v: &Volume, device: Option<String>) {
    let ids = [
        "target.create_export",
        "target.initialize_connection",
        "target.initialize_connection.keys",
        "target.terminate_connection",
        "target.remove_export",
        "target.remove_export.idempotent",
    ];
    let (Some(t), Some(device)) = (&s.target, device) else {
        let why = if s.target.is_none() {
            "the backend pairs no target driver"
        } else {
            "connection.local gave no device"
        };
        for id in ids {
            if s.target.is_none() {
                r.record(
                    id,
                    PublishUnpublish,
                    false,
                    Outcome::skip(why),
                    Instant::now(),
                );
            } else {
                r.not_run(id, PublishUnpublish, true, why);
            }
        }
        return;
    };
    let mut v = v.clone();
    let ok = r
        .run(ids[0], PublishUnpublish, true, async {
            match t.target_create_export(&v, &device).await {
                Ok(u) => {
                    apply_to_volume(&mut v, &u);
                    Outcome::pass(format!("{} exports {device}", t.identity.name))
                }
                Err(e) => Outcome::fail(format!("target create_export: {e}")),
            }
        })
        .await;
    if ok {
        let client = client_connector("conformance-a");
        let mut info = None;
        r.run(ids[1], PublishUnpublish, true, async {
            let got = t.target_initialize_connection(&v, &client).await;
            let o = required("target initialize_connection", &got);
            info = got.ok();
            o
        })
        .await;
        match info {
            Some(i) => {
                r.record(
                    ids[2],
                    PublishUnpublish,
                    true,
                    keys_outcome(&i),
                    Instant::now(),
                );
            }
            None => r.not_run(
                ids[2],
                PublishUnpublish,
                true,
                "target.initialize_connection failed",
            ),
        }
        r.run(ids[3], PublishUnpublish, true, async {
            required(
                "target terminate_connection",
                &t.target_terminate_connection(&v, Some(&client)).await,
            )
        })
        .await;
    } else {
        for id in &ids[1..4] {
            r.not_run(id, PublishUnpublish, true, "target.create_export failed");
        }
    }
    r.run(ids[4], PublishUnpublish, true, async {
        required("target remove_export", &t.target_remove_export(&v).await)
    })
    .await;
    r.run(ids[5], PublishUnpublish, true, async {
        repeated_delete("target remove_export", &t.target_remove_export(&v).await)
    })
    .await;
}

async fn optional_features(r: &mut Runner, d: &Arc<DriverPool>, ops: &Ops, v1: Option<&Volume>) {
    // Revert.
    match v1 {
        Some(v1) => {
            r.run("optional.revert_to_snapshot", Optional, false, async {
                let (_, got) = ops.snapshot(d, v1).await;
                let s = match got {
                    Ok(s) => s,
                    Err(e) => return Outcome::fail(format!("create_snapshot: {e}")),
                };
                let o = optional("revert_to_snapshot", &d.revert_to_snapshot(v1, &s).await);
                let _ = ops.delete_snapshot(d, &s, v1).await;
                o
            })
            .await;
            r.run(
                "optional.revert_to_snapshot.missing",
                Optional,
                false,
                async {
                    let gone = ops.new_snapshot(v1);
                    match d.revert_to_snapshot(v1, &gone).await {
                        Err(e) if unsupported(&e) => Outcome::skip(format!("not supported: {e}")),
                        got => {
                            refused("revert_to_snapshot to a snapshot that does not exist", &got)
                        }
                    }
                },
            )
            .await;
            r.run("optional.retype", Optional, false, async {
                let specs = vec![("conformance:key".to_string(), "value".to_string())];
                retyped(d.retype(v1, "conformance-other", &specs).await)
            })
            .await;
        }
        None => {
            for id in [
                "optional.revert_to_snapshot",
                "optional.revert_to_snapshot.missing",
                "optional.retype",
            ] {
                r.not_run(id, Optional, false, "volume.create failed");
            }
        }
    }

    // Manage: list, unmanage one, size it by its reference, manage it again under a new id.
    let mut listing = None;
    r.run("optional.get_manageable_volumes", Optional, false, async {
        let got = d.get_manageable_volumes().await;
        let o = match &got {
            Ok(l) => Outcome::pass(format!(
                "{} volume(s) listed, {} safe to manage",
                l.len(),
                l.iter().filter(|m| m.safe_to_manage).count()
            )),
            Err(e) => optional("get_manageable_volumes", &Err::<(), _>(e.to_string_error())),
        };
        listing = got.ok();
        o
    })
    .await;
    // Contract 0.3: each listed snapshot names the volume it belongs to.
    r.run(
        "optional.get_manageable_snapshots",
        Optional,
        false,
        async {
            match d.get_manageable_snapshots().await {
                Ok(l) if l.iter().any(|m| m.source_reference.is_empty()) => Outcome::fail(
                    "a listed snapshot has no source_reference (the volume it belongs to)",
                ),
                Ok(l) => Outcome::pass(format!(
                    "{} snapshot(s) listed, {} safe to manage",
                    l.len(),
                    l.iter().filter(|m| m.safe_to_manage).count()
                )),
                Err(e) => optional(
                    "get_manageable_snapshots",
                    &Err::<(), _>(e.to_string_error()),
                ),
            }
        },
    )
    .await;
    let mut unmanaged: Option<Volume> = None;
    r.run("optional.unmanage", Optional, false, async {
        let v = match ops.create(d, ops.new_volume(1)).await {
            Ok(v) => v,
            Err(e) => return Outcome::fail(format!("create_volume: {e}")),
        };
        let got = d.unmanage(&v).await;
        if got.is_ok() {
            unmanaged = Some(v);
        }
        optional("unmanage", &got)
    })
    .await;
    let reference = match (&unmanaged, &listing) {
        (Some(v), Some(_)) => d
            .get_manageable_volumes()
            .await
            .ok()
            .and_then(|l| l.into_iter().find(|m| m.reference.contains(&v.id)))
            .map(|m| m.reference),
        _ => None,
    };
    match (&unmanaged, &reference) {
        (Some(v), Some(reference)) => {
            let mut size = None;
            r.run(
                "optional.manage_existing_get_size",
                Optional,
                false,
                async {
                    let target = ops.new_volume(v.size_gib);
                    let got = d.manage_existing_get_size(&target, reference).await;
                    let o = match &got {
                        Ok(n) if *n == v.size_gib => {
                            Outcome::pass(format!("{reference} is {n} GiB"))
                        }
                        Ok(n) => Outcome::fail(format!(
                            "{reference} is {} GiB, answered {n}",
                            v.size_gib
                        )),
                        Err(e) => optional(
                            "manage_existing_get_size",
                            &Err::<(), _>(e.to_string_error()),
                        ),
                    };
                    size = got.ok();
                    o
                },
            )
            .await;
            r.run("optional.manage_existing", Optional, false, async {
                let mut target = ops.new_volume(size.unwrap_or(v.size_gib));
                ops.made.volume(&target);
                match d.manage_existing(&target, reference).await {
                    Ok(u) => {
                        apply_to_volume(&mut target, &u);
                        ops.made.volume(&target);
                        match ops.delete(d, &target).await {
                            Ok(()) => {
                                // Its storage now belongs to the managed volume, which is gone.
                                ops.made.volume_gone(&v.id);
                                Outcome::pass(format!(
                                    "{reference} is managed as a new volume and deleted"
                                ))
                            }
                            Err(e) => Outcome::fail(format!("delete the managed volume: {e}")),
                        }
                    }
                    Err(e) => {
                        ops.made.volume_gone(&target.id);
                        optional("manage_existing", &Err::<(), _>(e))
                    }
                }
            })
            .await;
        }
        _ => {
            let why = if unmanaged.is_none() {
                "optional.unmanage did not pass"
            } else {
                "the unmanaged volume is not in get_manageable_volumes"
            };
            r.record(
                "optional.manage_existing_get_size",
                Optional,
                false,
                Outcome::skip(why),
                Instant::now(),
            );
            r.record(
                "optional.manage_existing",
                Optional,
                false,
                Outcome::skip(why),
                Instant::now(),
            );
        }
    }
    r.run("optional.manage_existing.missing", Optional, false, async {
        let v = ops.new_volume(1);
        let reference = format!(
            "{{\"source-name\": \"ashlar-conformance-missing-{}\"}}",
            uuid::Uuid::new_v4().simple()
        );
        match d.manage_existing_get_size(&v, &reference).await {
            Err(e) if unsupported(&e) => Outcome::skip(format!("not supported: {e}")),
            got => refused(
                "manage_existing_get_size of a reference that names nothing",
                &got,
            ),
        }
    })
    .await;
    r.run("optional.health", Optional, false, async {
        match d.health().await {
            Ok(Some(h)) if h.healthy => Outcome::pass("healthy"),
            Ok(Some(h)) => Outcome::fail(format!("reports itself unhealthy: {}", h.detail)),
            Ok(None) => Outcome::skip("its contract predates the health export"),
            Err(e) => optional("health", &Err::<(), _>(e)),
        }
    })
    .await;
}

trait ToStringError {
    fn to_string_error(&self) -> CallError;
}

impl ToStringError for CallError {
    /// A copy of the error (a `CallError` is not `Clone`), keeping whether the driver said
    /// not-supported.
    fn to_string_error(&self) -> CallError {
        match self {
            CallError::Driver(f) => CallError::Driver(f.clone()),
            CallError::Sandbox {
                identity,
                operation,
                kind,
                message,
            } => CallError::Sandbox {
                identity: identity.clone(),
                operation,
                kind: *kind,
                message: message.clone(),
            },
        }
    }
}

/// The same component with no capability at all: every operation that needs the outside
/// world fails as a driver error, never a success and never a trap.
async fn sandbox(r: &mut Runner, s: &Subject, ops: &Ops) {
    let u = match &s.unprivileged {
        Ok(u) => u.clone(),
        Err(e) => {
            r.record(
                "sandbox.no_capabilities.loads",
                Sandbox,
                true,
                Outcome::fail(e.clone()),
                Instant::now(),
            );
            for id in [
                "sandbox.no_capabilities.stats",
                "sandbox.no_capabilities.create",
                "sandbox.no_capabilities.extend",
                "sandbox.no_capabilities.snapshot",
                "sandbox.no_capabilities.connection",
                "sandbox.no_capabilities.delete",
                "sandbox.no_capabilities.refused",
            ] {
                r.not_run(id, Sandbox, true, "sandbox.no_capabilities.loads failed");
            }
            return;
        }
    };
    r.record(
        "sandbox.no_capabilities.loads",
        Sandbox,
        true,
        Outcome::pass("loads with every capability taken away"),
        Instant::now(),
    );
    // A success while calls were refused means the driver answered without doing the work.
    async fn contained<T>(
        u: &Arc<DriverPool>,
        what: &str,
        call: impl std::future::Future<Output = Result<T, CallError>>,
        success_ok: bool,
    ) -> Outcome {
        let before = u.denials();
        let got = call.await;
        let refused_now = u.denials().saturating_sub(before);
        match got {
            Err(e) if trapped(&e) => Outcome::fail(format!(
                "{what}: the driver trapped instead of failing: {e}"
            )),
            Err(e) => Outcome::pass(format!(
                "{what} fails as a driver error ({refused_now} host call(s) refused): {e}"
            )),
            Ok(_) if refused_now == 0 || success_ok => Outcome::pass(format!(
                "{what} succeeds without any capability ({refused_now} host call(s) refused)"
            )),
            Ok(_) => Outcome::fail(format!(
                "{what} answered success although {refused_now} of its host calls were refused"
            )),
        }
    }
    let v = ops.new_volume(1);
    let snap = ops.new_snapshot(&v);
    r.run(
        "sandbox.no_capabilities.stats",
        Sandbox,
        true,
        contained(&u, "get_volume_stats", u.get_volume_stats(true), true),
    )
    .await;
    r.run("sandbox.no_capabilities.create", Sandbox, true, async {
        let o = contained(&u, "create_volume", u.create_volume(&v), false).await;
        if o.verdict != Verdict::Fail {
            // Whatever it might have made, the real driver cleans up.
            ops.made.volume(&v);
        }
        o
    })
    .await;
    r.run(
        "sandbox.no_capabilities.extend",
        Sandbox,
        true,
        contained(&u, "extend_volume", u.extend_volume(&v, 2), false),
    )
    .await;
    r.run(
        "sandbox.no_capabilities.snapshot",
        Sandbox,
        true,
        contained(&u, "create_snapshot", u.create_snapshot(&snap, &v), false),
    )
    .await;
    r.run(
        "sandbox.no_capabilities.connection",
        Sandbox,
        true,
        contained(
            &u,
            "initialize_connection",
            u.initialize_connection(&v, &client_connector("conformance-a")),
            false,
        ),
    )
    .await;
    r.run(
        "sandbox.no_capabilities.delete",
        Sandbox,
        true,
        contained(&u, "delete_volume", u.delete_volume(&v), true),
    )
    .await;
    let refused_total = u.denials();
    let traps = u
        .metrics
        .sandbox_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    r.record(
        "sandbox.no_capabilities.refused",
        Sandbox,
        true,
        if !s.asks_host_calls {
            Outcome::skip("the manifest asks for no host call that could be refused")
        } else if refused_total > 0 && traps == 0 {
            Outcome::pass(format!(
                "the host refused {refused_total} ungranted call(s); the driver did not trap"
            ))
        } else if traps > 0 {
            Outcome::fail(format!("{traps} trap(s) without capabilities"))
        } else {
            Outcome::fail(
                "no host call was refused: the driver never asked for what its manifest requests",
            )
        },
        Instant::now(),
    );
    r.run("sandbox.invalid_volume_id", Sandbox, false, async {
        let mut bad = ops.new_volume(1);
        bad.id = "../../ashlar-conformance".into();
        let got = s.driver.create_volume(&bad).await;
        if got.is_ok() {
            let _ = s.driver.delete_volume(&bad).await;
        }
        refused("create_volume with the id `../../ashlar-conformance`", &got)
    })
    .await;
}

/// Two instances (as two hosts) on one backend: what one makes the other sees, and
/// racing requests from both end consistently.
async fn active_active(
    r: &mut Runner,
    a: &Arc<DriverPool>,
    peer: &Result<Arc<DriverPool>, String>,
    ops: &Ops,
) -> AaVerdict {
    let ids = [
        "active_active.stats_agree",
        "active_active.peer_extends",
        "active_active.peer_snapshots",
        "active_active.peer_clones",
        "active_active.peer_deletes",
        "active_active.concurrent_creates",
        "active_active.concurrent_snapshots",
        "active_active.concurrent_delete_same",
    ];
    let b = match peer {
        Ok(b) => b.clone(),
        Err(e) => {
            r.record(
                "active_active.peer_loads",
                ActiveActive,
                false,
                Outcome::fail(e.clone()),
                Instant::now(),
            );
            for id in ids {
                r.not_run(id, ActiveActive, false, "active_active.peer_loads failed");
            }
            return AaVerdict {
                safe: Some(false),
                reasons: vec![format!("a second instance does not load: {e}")],
            };
        }
    };
    let first = r.checks.len();
    r.record(
        "active_active.peer_loads",
        ActiveActive,
        false,
        Outcome::pass("a second, independent instance loads on the same backend"),
        Instant::now(),
    );
    r.run(ids[0], ActiveActive, false, async {
        match (
            a.get_volume_stats(true).await,
            b.get_volume_stats(true).await,
        ) {
            (Ok(x), Ok(y)) => {
                let names = |s: &VolumeStats| {
                    s.pools
                        .iter()
                        .map(|p| p.pool_name.clone())
                        .collect::<Vec<_>>()
                };
                Outcome::check(
                    names(&x) == names(&y),
                    format!("pools {:?} and {:?}", names(&x), names(&y)),
                )
            }
            (x, y) => Outcome::fail(format!(
                "stats: {} / {}",
                x.err().map_or("ok".into(), |e| e.to_string()),
                y.err().map_or("ok".into(), |e| e.to_string())
            )),
        }
    })
    .await;
    let shared = ops.create(a, ops.new_volume(1)).await;
    match shared {
        Ok(mut v) => {
            r.run(ids[1], ActiveActive, false, async {
                match b.extend_volume(&v, 2).await {
                    Ok(()) => {
                        v.size_gib = 2;
                        ops.made.volume(&v);
                        Outcome::pass("B extends the volume A made")
                    }
                    Err(e) => Outcome::fail(format!("B cannot extend A's volume: {e}")),
                }
            })
            .await;
            r.run(ids[2], ActiveActive, false, async {
                let (_, got) = ops.snapshot(&b, &v).await;
                match got {
                    Ok(s) => match ops.delete_snapshot(a, &s, &v).await {
                        Ok(()) => Outcome::pass("B snapshots A's volume; A deletes B's snapshot"),
                        Err(e) => Outcome::fail(format!("A cannot delete B's snapshot: {e}")),
                    },
                    Err(e) => Outcome::fail(format!("B cannot snapshot A's volume: {e}")),
                }
            })
            .await;
            r.run(ids[3], ActiveActive, false, async {
                match ops.clone_of(&b, v.size_gib, &v).await {
                    Ok(c) => match ops.delete(a, &c).await {
                        Ok(()) => Outcome::pass("B clones A's volume; A deletes the clone"),
                        Err(e) => Outcome::fail(format!("A cannot delete B's clone: {e}")),
                    },
                    Err(e) => Outcome::fail(format!("B cannot clone A's volume: {e}")),
                }
            })
            .await;
            r.run(ids[4], ActiveActive, false, async {
                match ops.delete(&b, &v).await {
                    Ok(()) => match a.delete_volume(&v).await {
                        Ok(()) => {
                            Outcome::pass("B deletes A's volume; A's delete after it succeeds")
                        }
                        Err(e) if not_found(&e) => Outcome::pass(
                            "B deletes A's volume; A's delete after it says not-found",
                        ),
                        Err(e) => Outcome::fail(format!("A's delete after B's: {e}")),
                    },
                    Err(e) => Outcome::fail(format!("B cannot delete A's volume: {e}")),
                }
            })
            .await;
        }
        Err(e) => {
            for id in &ids[1..5] {
                r.record(
                    id,
                    ActiveActive,
                    false,
                    Outcome::fail(format!("A's create_volume: {e}")),
                    Instant::now(),
                );
            }
        }
    }
    r.run(ids[5], ActiveActive, false, async {
        let from_a = (0..3).map(|_| ops.create(a, ops.new_volume(1)));
        let from_b = (0..3).map(|_| ops.create(&b, ops.new_volume(1)));
        let results = join_all(from_a.chain(from_b)).await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        let made: Vec<Volume> = results.into_iter().filter_map(Result::ok).collect();
        // Each host deletes the other's.
        let deletes = join_all(made.iter().enumerate().map(|(i, v)| {
            let who = if i % 2 == 0 { a } else { &b };
            ops.delete(who, v)
        }))
        .await;
        let undeleted = deletes.iter().filter(|d| d.is_err()).count();
        if failed.is_empty() && undeleted == 0 {
            Outcome::pass(
                "three creates from each at once succeed, and each host deletes volumes of both",
            )
        } else {
            Outcome::fail(format!(
                "{} create(s) failed ({}), {undeleted} delete(s) failed",
                failed.len(),
                failed.join("; ")
            ))
        }
    })
    .await;
    r.run(ids[6], ActiveActive, false, async {
        let v = match ops.create(a, ops.new_volume(1)).await {
            Ok(v) => v,
            Err(e) => return Outcome::fail(format!("create_volume: {e}")),
        };
        let (x, y) = tokio::join!(ops.snapshot(a, &v), ops.snapshot(&b, &v));
        let mut errors = Vec::new();
        for (_, got) in [x, y] {
            match got {
                Ok(s) => {
                    if let Err(e) = ops.delete_snapshot(a, &s, &v).await {
                        errors.push(format!("delete_snapshot: {e}"));
                    }
                }
                Err(e) => errors.push(format!("create_snapshot: {e}")),
            }
        }
        if let Err(e) = ops.delete(a, &v).await {
            errors.push(format!("delete_volume: {e}"));
        }
        Outcome::check(
            errors.is_empty(),
            if errors.is_empty() {
                "both hosts snapshot one volume at once".to_string()
            } else {
                errors.join("; ")
            },
        )
    })
    .await;
    r.run(ids[7], ActiveActive, false, async {
        let v = match ops.create(a, ops.new_volume(1)).await {
            Ok(v) => v,
            Err(e) => return Outcome::fail(format!("create_volume: {e}")),
        };
        let (x, y) = tokio::join!(a.delete_volume(&v), b.delete_volume(&v));
        let bad: Vec<String> = [x, y]
            .into_iter()
            .filter_map(|r| r.err())
            .filter(|e| !not_found(e))
            .map(|e| e.to_string())
            .collect();
        if bad.is_empty() {
            ops.made.volume_gone(&v.id);
            Outcome::pass("both hosts delete one volume at once; neither fails")
        } else {
            Outcome::fail(format!("racing deletes: {}", bad.join("; ")))
        }
    })
    .await;
    let reasons: Vec<String> = r.checks[first..]
        .iter()
        .filter(|c| c.result == Verdict::Fail)
        .map(|c| format!("{}: {}", c.id, c.message))
        .collect();
    AaVerdict {
        safe: Some(reasons.is_empty()),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Value;

    fn info(kind: &str, keys: &[&str]) -> ConnectionInfo {
        ConnectionInfo {
            driver_volume_type: kind.into(),
            data: keys
                .iter()
                .map(|k| (k.to_string(), Value::Text("x".into())))
                .collect(),
            qos_specs: None,
        }
    }

    #[test]
    fn connection_info_must_carry_its_protocols_keys() {
        assert_eq!(
            keys_outcome(&info(
                "iscsi",
                &["target_portal", "target_iqn", "target_lun"]
            ))
            .verdict,
            Verdict::Pass
        );
        assert_eq!(
            keys_outcome(&info(
                "iscsi",
                &["target_portals", "target_iqns", "target_luns"]
            ))
            .verdict,
            Verdict::Pass
        );
        let o = keys_outcome(&info("iscsi", &["target_portal"]));
        assert_eq!(o.verdict, Verdict::Fail);
        assert!(
            o.message.contains("target_iqn|target_iqns"),
            "{}",
            o.message
        );
        assert_eq!(
            keys_outcome(&info("nfs", &["export", "name"])).verdict,
            Verdict::Pass
        );
        assert_eq!(keys_outcome(&info("local", &[])).verdict, Verdict::Fail);
        assert_eq!(
            keys_outcome(&info("scaleio", &["x"])).verdict,
            Verdict::Warn
        );
        assert_eq!(keys_outcome(&info("", &[])).verdict, Verdict::Fail);
    }
}
