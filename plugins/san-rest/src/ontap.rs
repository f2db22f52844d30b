//! The array in ONTAP's shapes, on top of the [`rest`](crate::rest) transport: FlexVols,
//! LUNs, igroups, LUN maps and snapshots, the pools' capacity, and where this driver puts
//! a volume's data among them.
//!
//! Creates take an object that an earlier attempt made (its answer may have been lost),
//! and deletes count an object already gone as done, so every call can be tried again.

use ashlar_sdk::{ConnectionInfo, DriverError, PoolStats, Result, Value, Volume, check_id, log};
use serde_json::{Value as Json, json};

use crate::rest::{Client, HostTransport, RestError, q};
use crate::settings::{Pools, Settings, check_object_name};

pub const GIB: u64 = 1 << 30;
/// The LUN inside a per-volume FlexVol.
pub const LUN_IN_FLEXVOL: &str = "lun0";
/// A per-volume FlexVol is this much larger than its LUN, for the array's metadata.
const FLEXVOL_HEADROOM_PERCENT: u64 = 5;

/// The FlexVol of a volume in aggregate pools.
pub fn flexvol_name(volume_id: &str) -> String {
    format!("ashlar_{}", volume_id.replace('-', "_"))
}

/// `/vol/<flexvol>/<lun>` → (flexvol, lun).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/vol/")?;
    let (vol, lun) = rest.split_once('/')?;
    (!vol.is_empty() && !lun.is_empty() && !lun.contains('/')).then_some((vol, lun))
}

/// `/vol/<flexvol>/.snapshot/<snapshot>/<lun>` → (flexvol, snapshot).
pub fn split_snapshot_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/vol/")?;
    let mut parts = rest.split('/');
    let (vol, dot, snap) = (parts.next()?, parts.next()?, parts.next()?);
    (dot == ".snapshot" && !vol.is_empty() && !snap.is_empty()).then_some((vol, snap))
}

fn gib(bytes: u64) -> f64 {
    (bytes as f64 / GIB as f64 * 100.0).round() / 100.0
}

pub fn flexvol_size(lun_bytes: u64) -> u64 {
    lun_bytes + lun_bytes * FLEXVOL_HEADROOM_PERCENT / 100
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// A stable igroup name for an initiator: the prefix and a hash of the IQN (igroup names
/// are short and cannot hold every character an IQN may).
pub fn igroup_name(prefix: &str, initiator: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in initiator.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}{h:016x}")
}

/// Cinder's iSCSI connection info; the multipath lists when the array has several portals.
pub fn iscsi_connection_info(
    volume_id: &str,
    target_iqn: &str,
    portals: &[String],
    lun: u32,
    discard: bool,
) -> ConnectionInfo {
    let mut data = vec![
        ("target_discovered".to_string(), Value::Flag(false)),
        ("target_iqn".to_string(), text(target_iqn)),
        ("target_portal".to_string(), text(portals[0].clone())),
        ("target_lun".to_string(), Value::Integer(i64::from(lun))),
        ("volume_id".to_string(), text(volume_id)),
        ("discard".to_string(), Value::Flag(discard)),
    ];
    if portals.len() > 1 {
        data.push(("target_portals".into(), Value::Texts(portals.to_vec())));
        data.push((
            "target_iqns".into(),
            Value::Texts(vec![target_iqn.to_string(); portals.len()]),
        ));
        data.push((
            "target_luns".into(),
            Value::Texts(vec![lun.to_string(); portals.len()]),
        ));
    }
    ConnectionInfo {
        driver_volume_type: "iscsi".into(),
        data,
    }
}

pub fn str_at<'a>(v: &'a Json, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Json::as_str)
}

/// The array of one backend, reached with its settings.
pub struct Array {
    settings: Settings,
    api: Client<HostTransport>,
}

impl Array {
    pub fn new(settings: Settings) -> Self {
        let api = Client::new(settings.rest.clone(), HostTransport);
        Array { settings, api }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn fail(&self, e: RestError) -> DriverError {
        e.into_driver(&self.api.cfg)
    }

    fn get(&mut self, path: &str) -> Result<Json> {
        self.api.get(path).map_err(|e| self.fail(e))
    }

    fn get_all(&mut self, path: &str) -> Result<Vec<Json>> {
        self.api.get_all(path).map_err(|e| self.fail(e))
    }

    /// A change; 202 answers are waited for. Keeps the array's error for the caller.
    fn run(&mut self, method: &str, path: &str, body: Option<&Json>) -> Result<Json, RestError> {
        self.api.run(method, path, body)
    }

    /// The cluster's record, with `fields`; answering at all shows the array is reachable.
    pub fn cluster(&mut self, fields: &str) -> Result<Json> {
        self.get(&format!("/api/cluster?fields={fields}"))
    }

    // ---- lookups ------------------------------------------------------------------

    fn find_flexvol(&mut self, name: &str) -> Result<Option<Json>> {
        let svm = self.settings.svm.clone();
        let found = self.get_all(&format!(
            "/api/storage/volumes?svm.name={}&name={}&fields=name,size,aggregates,clone,space",
            q(&svm),
            q(name)
        ))?;
        Ok(found.into_iter().next())
    }

    /// A FlexVol that a job of ours may still be making: polled until it shows.
    fn await_flexvol(&mut self, name: &str) -> Result<Json> {
        let (timeout, poll) = {
            let r = &self.settings.rest;
            (r.job_timeout_ms, r.job_poll_ms)
        };
        let started = ashlar_sdk::clock::now_ms();
        loop {
            if let Some(v) = self.find_flexvol(name)? {
                return Ok(v);
            }
            if ashlar_sdk::clock::now_ms().saturating_sub(started) >= timeout {
                return Err(DriverError::backend_unavailable(format!(
                    "FlexVol {name} was being made but did not appear within {timeout} ms (job_timeout_ms)"
                )));
            }
            ashlar_sdk::clock::sleep_ms(poll);
        }
    }

    pub fn find_lun(&mut self, path: &str) -> Result<Option<Json>> {
        let svm = self.settings.svm.clone();
        let found = self.get_all(&format!(
            "/api/storage/luns?svm.name={}&name={}&fields=name,space.size,location",
            q(&svm),
            q(path)
        ))?;
        Ok(found.into_iter().next())
    }

    /// A LUN by its uuid, `None` when the array has none such.
    pub fn lun_by_uuid(&mut self, uuid: &str) -> Result<Option<Json>> {
        if uuid.is_empty() || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(DriverError::invalid_argument(format!(
                "`{uuid}` is not a LUN uuid: give the uuid the array shows for the LUN, or {{\"source-name\": \"/vol/FLEXVOL/LUN\"}}"
            )));
        }
        match self.api.get(&format!(
            "/api/storage/luns/{uuid}?fields=name,space.size,location,status"
        )) {
            Ok(lun) => Ok(Some(lun)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Every LUN of the SVM, with its size and whether it is mapped.
    pub fn all_luns(&mut self) -> Result<Vec<Json>> {
        let svm = self.settings.svm.clone();
        self.get_all(&format!(
            "/api/storage/luns?svm.name={}&fields=name,space.size,status",
            q(&svm)
        ))
    }

    /// Renames a LUN within its FlexVol (ONTAP's `PATCH … {"name": …}`, Cinder's
    /// `move_lun`).
    pub fn rename_lun(&mut self, uuid: &str, new_path: &str) -> Result<()> {
        self.run(
            "PATCH",
            &format!("/api/storage/luns/{uuid}"),
            Some(&json!({ "name": new_path })),
        )
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn uuid(what: &str, record: &Json) -> Result<String> {
        record
            .get("uuid")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                DriverError::internal(format!("the array's {what} has no uuid: {record}"))
            })
    }

    /// Where a volume's LUN is: its provider_location, else where this driver puts it.
    pub fn lun_path(&mut self, volume: &Volume) -> Result<String> {
        check_id("volume", &volume.id)?;
        if let Some(p) = volume.provider_location.as_deref()
            && split_path(p).is_some()
        {
            return Ok(p.to_string());
        }
        match self.settings.pools.clone() {
            Pools::Aggregates(_) => Ok(format!(
                "/vol/{}/{LUN_IN_FLEXVOL}",
                flexvol_name(&volume.id)
            )),
            Pools::FlexVols(names) => {
                if let Some(pool) = volume.pool.as_deref()
                    && names.iter().any(|n| n == pool)
                {
                    return Ok(format!("/vol/{pool}/volume-{}", volume.id));
                }
                let svm = self.settings.svm.clone();
                let found = self.get_all(&format!(
                    "/api/storage/luns?svm.name={}&name={}&fields=name",
                    q(&svm),
                    q(&format!("/vol/*/volume-{}", volume.id))
                ))?;
                Ok(found
                    .first()
                    .and_then(|l| str_at(l, "/name"))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("/vol/{}/volume-{}", names[0], volume.id)))
            }
        }
    }

    /// The pool a new volume goes to: the scheduler's choice, checked.
    pub fn pool_for(&mut self, volume: &Volume) -> Result<String> {
        let names = match self.settings.pools.clone() {
            Pools::Aggregates(n) | Pools::FlexVols(n) => n,
        };
        match volume.pool.as_deref() {
            Some(p) if names.is_empty() || names.iter().any(|n| n == p) => {
                check_object_name("pool", p)?;
                Ok(p.to_string())
            }
            Some(p) => Err(DriverError::invalid_argument(format!(
                "pool `{p}` is not one of this backend's pools ({})",
                names.join(", ")
            ))),
            None if !names.is_empty() => Ok(names[0].clone()),
            None => {
                let aggrs = self.get_all("/api/storage/aggregates?fields=name")?;
                aggrs
                    .first()
                    .and_then(|a| str_at(a, "/name"))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        DriverError::backend_unavailable("the array reports no aggregates")
                    })
            }
        }
    }

    // ---- FlexVols -----------------------------------------------------------------

    pub fn create_flexvol(&mut self, name: &str, aggregate: &str, size: u64) -> Result<Json> {
        let s = self.settings.clone();
        let body = json!({
            "name": name,
            "svm": {"name": s.svm},
            "aggregates": [{"name": aggregate}],
            "size": size,
            "guarantee": {"type": if s.thin { "none" } else { "volume" }},
        });
        match self.run("POST", "/api/storage/volumes", Some(&body)) {
            Ok(_) => {}
            // Ours already: an earlier attempt whose answer was lost got there first.
            Err(e) if e.is_conflict() => {
                log::info(&format!("FlexVol {name} exists already; using it"));
            }
            Err(e) => return Err(self.fail(e)),
        }
        self.await_flexvol(name)
    }

    /// A FlexClone of `parent` (at `snapshot`, or now), split from it.
    pub fn clone_flexvol(
        &mut self,
        name: &str,
        parent: &str,
        snapshot: Option<&str>,
    ) -> Result<Json> {
        let svm = self.settings.svm.clone();
        let mut clone = json!({"parent_volume": {"name": parent}, "is_flexclone": true});
        if let Some(s) = snapshot {
            clone["parent_snapshot"] = json!({ "name": s });
        }
        let body = json!({"name": name, "svm": {"name": svm}, "clone": clone});
        match self.run("POST", "/api/storage/volumes", Some(&body)) {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {
                log::info(&format!("FlexVol {name} exists already; using it"));
            }
            Err(e) => return Err(self.fail(e)),
        }
        let vol = self.await_flexvol(name)?;
        if vol.pointer("/clone/is_flexclone").and_then(Json::as_bool) == Some(true) {
            let uuid = Self::uuid("FlexVol", &vol)?;
            let split = json!({"clone": {"split_initiated": true}});
            if let Err(e) = self.run(
                "PATCH",
                &format!("/api/storage/volumes/{uuid}"),
                Some(&split),
            ) {
                let err = self.fail(e);
                let _ = self.delete_flexvol(name);
                return Err(err);
            }
        }
        Ok(vol)
    }

    fn resize_flexvol(&mut self, name: &str, size: u64) -> Result<()> {
        let vol = self
            .find_flexvol(name)?
            .ok_or_else(|| DriverError::not_found(format!("FlexVol {name} is not on the array")))?;
        if vol.get("size").and_then(Json::as_u64).unwrap_or(0) >= size {
            return Ok(());
        }
        let uuid = Self::uuid("FlexVol", &vol)?;
        self.run(
            "PATCH",
            &format!("/api/storage/volumes/{uuid}"),
            Some(&json!({ "size": size })),
        )
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Unmaps the FlexVol's LUNs and deletes it; gone already is what a delete wants.
    pub fn delete_flexvol(&mut self, name: &str) -> Result<()> {
        let Some(vol) = self.find_flexvol(name)? else {
            log::info(&format!(
                "FlexVol {name} is not on the array; nothing to delete"
            ));
            return Ok(());
        };
        self.unmap_all(&format!("/vol/{name}/*"))?;
        let uuid = Self::uuid("FlexVol", &vol)?;
        match self.run("DELETE", &format!("/api/storage/volumes/{uuid}"), None) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            // Another host running the backend may have deleted it since the lookup: its
            // job fails, and the FlexVol is gone all the same.
            Err(e @ RestError::JobFailed { .. }) if self.find_flexvol(name)?.is_none() => {
                log::info(&format!(
                    "FlexVol {name} went while it was being deleted ({e:?})"
                ));
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    // ---- snapshots ----------------------------------------------------------------

    /// Takes snapshot `name` of FlexVol `fv`; answers false when the FlexVol is not on
    /// the array.
    pub fn create_flexvol_snapshot(&mut self, fv: &str, name: &str) -> Result<bool> {
        let Some(vol) = self.find_flexvol(fv)? else {
            return Ok(false);
        };
        let uuid = Self::uuid("FlexVol", &vol)?;
        match self.run(
            "POST",
            &format!("/api/storage/volumes/{uuid}/snapshots"),
            Some(&json!({ "name": name })),
        ) {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {
                log::info(&format!("snapshot {name} of {fv} exists already; using it"));
            }
            Err(e) => return Err(self.fail(e)),
        }
        Ok(true)
    }

    /// Deletes snapshot `name` of FlexVol `fv`; answers false when the FlexVol or the
    /// snapshot is not on the array, so there was nothing to delete.
    pub fn delete_flexvol_snapshot(&mut self, fv: &str, name: &str) -> Result<bool> {
        let Some(vol) = self.find_flexvol(fv)? else {
            return Ok(false);
        };
        let uuid = Self::uuid("FlexVol", &vol)?;
        let snaps = self.get_all(&format!(
            "/api/storage/volumes/{uuid}/snapshots?name={}",
            q(name)
        ))?;
        let Some(snap) = snaps.first() else {
            log::info(&format!(
                "snapshot {name} of {fv} is not on the array; nothing to delete"
            ));
            return Ok(false);
        };
        let suuid = Self::uuid("snapshot", snap)?;
        match self.run(
            "DELETE",
            &format!("/api/storage/volumes/{uuid}/snapshots/{suuid}"),
            None,
        ) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(self.fail(e)),
        }
        Ok(true)
    }

    // ---- LUNs ---------------------------------------------------------------------

    pub fn create_lun(
        &mut self,
        path: &str,
        size: Option<u64>,
        clone_of: Option<&str>,
    ) -> Result<Json> {
        let s = self.settings.clone();
        let mut space = json!({"guarantee": {"requested": !s.thin}});
        if let Some(size) = size {
            space["size"] = json!(size);
        }
        let mut body = json!({
            "svm": {"name": s.svm},
            "name": path,
            "os_type": s.os_type,
            "space": space,
        });
        if let Some(src) = clone_of {
            body["clone"] = json!({"source": {"name": src}});
        }
        match self.run("POST", "/api/storage/luns?return_records=true", Some(&body)) {
            Ok(answer) => {
                if let Some(r) = answer
                    .pointer("/records/0")
                    .filter(|r| r.get("uuid").is_some())
                {
                    return Ok(r.clone());
                }
            }
            Err(e) if e.is_conflict() => {
                log::info(&format!("LUN {path} exists already; using it"));
            }
            Err(e) => return Err(self.fail(e)),
        }
        self.find_lun(path)?.ok_or_else(|| {
            DriverError::internal(format!("the array made LUN {path} but does not list it"))
        })
    }

    fn resize_lun(&mut self, path: &str, size: u64) -> Result<()> {
        let lun = self
            .find_lun(path)?
            .ok_or_else(|| DriverError::not_found(format!("LUN {path} is not on the array")))?;
        let current = lun
            .pointer("/space/size")
            .and_then(Json::as_u64)
            .unwrap_or(0);
        if current > size {
            return Err(DriverError::invalid_argument(format!(
                "LUN {path} is {current} bytes; it cannot shrink to {size}"
            )));
        }
        if current == size {
            return Ok(());
        }
        let uuid = Self::uuid("LUN", &lun)?;
        self.run(
            "PATCH",
            &format!("/api/storage/luns/{uuid}"),
            Some(&json!({"space": {"size": size}})),
        )
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn delete_lun(&mut self, path: &str) -> Result<()> {
        let Some(lun) = self.find_lun(path)? else {
            log::info(&format!(
                "LUN {path} is not on the array; nothing to delete"
            ));
            return Ok(());
        };
        self.unmap_all(path)?;
        let uuid = Self::uuid("LUN", &lun)?;
        match self.run("DELETE", &format!("/api/storage/luns/{uuid}"), None) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            // As for a FlexVol: another host may have deleted it since the lookup.
            Err(e @ RestError::JobFailed { .. }) if self.find_lun(path)?.is_none() => {
                log::info(&format!(
                    "LUN {path} went while it was being deleted ({e:?})"
                ));
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Removes every map of the LUNs whose path matches `pattern`.
    pub fn unmap_all(&mut self, pattern: &str) -> Result<()> {
        let svm = self.settings.svm.clone();
        let maps = self.get_all(&format!(
            "/api/protocols/san/lun-maps?svm.name={}&lun.name={}",
            q(&svm),
            q(pattern)
        ))?;
        for m in maps {
            let (Some(lun), Some(ig)) = (str_at(&m, "/lun/uuid"), str_at(&m, "/igroup/uuid"))
            else {
                continue;
            };
            self.unmap_lun(lun, ig)?;
        }
        Ok(())
    }

    /// Grows a volume's storage to `size_gib` (FlexVol first, then its LUN).
    pub fn grow(&mut self, lun_path: &str, size_gib: u64) -> Result<()> {
        let bytes = size_gib * GIB;
        if let Pools::Aggregates(_) = self.settings.pools
            && let Some((fv, _)) = split_path(lun_path)
        {
            let fv = fv.to_string();
            self.resize_flexvol(&fv, flexvol_size(bytes))?;
        }
        self.resize_lun(lun_path, bytes)
    }

    // ---- iSCSI --------------------------------------------------------------------

    pub fn iscsi_target(&mut self) -> Result<String> {
        let svm = self.settings.svm.clone();
        let services = self.get_all(&format!(
            "/api/protocols/san/iscsi/services?svm.name={}&fields=enabled,target",
            q(&svm)
        ))?;
        services
            .iter()
            .find(|s| s.get("enabled").and_then(Json::as_bool) != Some(false))
            .and_then(|s| str_at(s, "/target/name"))
            .map(str::to_string)
            .ok_or_else(|| {
                DriverError::backend_unavailable(format!(
                    "SVM {svm} has no iSCSI service enabled on the array; enable iSCSI on the SVM"
                ))
            })
    }

    pub fn iscsi_portals(&mut self) -> Result<Vec<String>> {
        let (svm, port) = {
            let s = &self.settings;
            (s.svm.clone(), s.iscsi_port)
        };
        let lifs = self.get_all(&format!(
            "/api/network/ip/interfaces?svm.name={}&services=data_iscsi&fields=ip,enabled,state",
            q(&svm)
        ))?;
        let portals: Vec<String> = lifs
            .iter()
            .filter(|l| l.get("enabled").and_then(Json::as_bool) != Some(false))
            .filter(|l| l.get("state").and_then(Json::as_str) != Some("down"))
            .filter_map(|l| str_at(l, "/ip/address"))
            .map(|ip| {
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            })
            .collect();
        if portals.is_empty() {
            return Err(DriverError::backend_unavailable(format!(
                "SVM {svm} has no iSCSI data interface up; add one with the data_iscsi service"
            )));
        }
        Ok(portals)
    }

    /// The igroups that hold `initiator`, ours first.
    pub fn igroups_with(&mut self, initiator: &str) -> Result<Vec<Json>> {
        let (svm, prefix) = {
            let s = &self.settings;
            (s.svm.clone(), s.igroup_prefix.clone())
        };
        let mut groups = self.get_all(&format!(
            "/api/protocols/san/igroups?svm.name={}&initiators.name={}&fields=name,protocol,initiators",
            q(&svm),
            q(initiator)
        ))?;
        groups.sort_by_key(|g| !str_at(g, "/name").is_some_and(|n| n.starts_with(&prefix)));
        Ok(groups)
    }

    pub fn igroup_for(&mut self, initiator: &str) -> Result<Json> {
        if let Some(g) = self.igroups_with(initiator)?.into_iter().next() {
            return Ok(g);
        }
        let s = self.settings.clone();
        let name = igroup_name(&s.igroup_prefix, initiator);
        let body = json!({
            "svm": {"name": s.svm},
            "name": name,
            "protocol": "iscsi",
            "os_type": s.os_type,
            "initiators": [{"name": initiator}],
        });
        match self.run(
            "POST",
            "/api/protocols/san/igroups?return_records=true",
            Some(&body),
        ) {
            Ok(answer) => {
                if let Some(r) = answer
                    .pointer("/records/0")
                    .filter(|r| r.get("uuid").is_some())
                {
                    log::info(&format!("created igroup {name} for {initiator}"));
                    return Ok(r.clone());
                }
            }
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(self.fail(e)),
        }
        let found = self.get_all(&format!(
            "/api/protocols/san/igroups?svm.name={}&name={}",
            q(&s.svm),
            q(&name)
        ))?;
        found.into_iter().next().ok_or_else(|| {
            DriverError::internal(format!(
                "igroup {name} was made but the array does not list it"
            ))
        })
    }

    /// Maps the LUN to the igroup (or finds the map) and answers its LUN number.
    pub fn map_lun(&mut self, lun_uuid: &str, igroup_uuid: &str) -> Result<u32> {
        let find = |me: &mut Self| -> Result<Option<u32>> {
            let maps = me.get_all(&format!(
                "/api/protocols/san/lun-maps?lun.uuid={}&igroup.uuid={}&fields=logical_unit_number",
                q(lun_uuid),
                q(igroup_uuid)
            ))?;
            Ok(maps
                .first()
                .and_then(|m| m.get("logical_unit_number"))
                .and_then(Json::as_u64)
                .map(|n| n as u32))
        };
        if let Some(n) = find(self)? {
            return Ok(n);
        }
        let svm = self.settings.svm.clone();
        let body = json!({
            "svm": {"name": svm},
            "lun": {"uuid": lun_uuid},
            "igroup": {"uuid": igroup_uuid},
        });
        match self.run(
            "POST",
            "/api/protocols/san/lun-maps?return_records=true",
            Some(&body),
        ) {
            Ok(answer) => {
                if let Some(n) = answer
                    .pointer("/records/0/logical_unit_number")
                    .and_then(Json::as_u64)
                {
                    return Ok(n as u32);
                }
            }
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(self.fail(e)),
        }
        find(self)?.ok_or_else(|| {
            DriverError::internal("the array mapped the LUN but does not list the map")
        })
    }

    /// Removes one LUN map; answers false when it was not there.
    pub fn unmap_lun(&mut self, lun_uuid: &str, igroup_uuid: &str) -> Result<bool> {
        match self.run(
            "DELETE",
            &format!("/api/protocols/san/lun-maps/{lun_uuid}/{igroup_uuid}"),
            None,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    // ---- stats --------------------------------------------------------------------

    pub fn pool_stats(&mut self) -> Result<Vec<PoolStats>> {
        let s = self.settings.clone();
        let pool = |name: &str, total: u64, free: u64, provisioned: u64, kind: &str| PoolStats {
            pool_name: name.to_string(),
            total_capacity_gb: gib(total),
            free_capacity_gb: gib(free),
            provisioned_capacity_gb: Some(gib(provisioned)),
            allocated_capacity_gb: Some(gib(provisioned)),
            reserved_percentage: s.reserved_percentage,
            max_over_subscription_ratio: s.max_over_subscription_ratio,
            thin_provisioning_support: s.thin,
            thick_provisioning_support: !s.thin,
            multiattach: false,
            capabilities: vec![
                ("snapshot_support".into(), Value::Flag(true)),
                ("pool_type".into(), text(kind)),
                ("svm".into(), text(s.svm.clone())),
            ],
        };
        let mut pools = Vec::new();
        match &s.pools {
            Pools::Aggregates(wanted) => {
                let aggrs =
                    self.get_all("/api/storage/aggregates?fields=name,space.block_storage")?;
                let vols = self.get_all(&format!(
                    "/api/storage/volumes?svm.name={}&name=ashlar_*&fields=name,size,aggregates",
                    q(&s.svm)
                ))?;
                for a in &aggrs {
                    let Some(name) = str_at(a, "/name") else {
                        continue;
                    };
                    if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
                        continue;
                    }
                    let size = a
                        .pointer("/space/block_storage/size")
                        .and_then(Json::as_u64);
                    let avail = a
                        .pointer("/space/block_storage/available")
                        .and_then(Json::as_u64);
                    let provisioned: u64 = vols
                        .iter()
                        .filter(|v| str_at(v, "/aggregates/0/name") == Some(name))
                        .filter_map(|v| v.get("size").and_then(Json::as_u64))
                        .sum();
                    pools.push(pool(
                        name,
                        size.unwrap_or(0),
                        avail.unwrap_or(0),
                        provisioned,
                        "aggregate",
                    ));
                }
                for w in wanted {
                    if !pools.iter().any(|p| &p.pool_name == w) {
                        log::warn(&format!(
                            "aggregate {w} (aggregate_names) is not on the array"
                        ));
                    }
                }
            }
            Pools::FlexVols(wanted) => {
                let names = wanted.join("|");
                let vols = self.get_all(&format!(
                    "/api/storage/volumes?svm.name={}&name={}&fields=name,space",
                    q(&s.svm),
                    q(&names)
                ))?;
                let luns = self.get_all(&format!(
                    "/api/storage/luns?svm.name={}&location.volume.name={}&fields=space.size,location.volume.name",
                    q(&s.svm),
                    q(&names)
                ))?;
                for w in wanted {
                    let Some(v) = vols.iter().find(|v| str_at(v, "/name") == Some(w)) else {
                        log::warn(&format!(
                            "FlexVol {w} (flexvol_names) is not on the array in SVM {}",
                            s.svm
                        ));
                        continue;
                    };
                    let provisioned: u64 = luns
                        .iter()
                        .filter(|l| str_at(l, "/location/volume/name") == Some(w))
                        .filter_map(|l| l.pointer("/space/size").and_then(Json::as_u64))
                        .sum();
                    pools.push(pool(
                        w,
                        v.pointer("/space/size").and_then(Json::as_u64).unwrap_or(0),
                        v.pointer("/space/available")
                            .and_then(Json::as_u64)
                            .unwrap_or(0),
                        provisioned,
                        "flexvol",
                    ));
                }
            }
        }
        if pools.is_empty() {
            return Err(DriverError::backend_unavailable(format!(
                "none of this backend's pools is on the array at {} ({:?}); check aggregate_names / flexvol_names and svm",
                s.rest.base, s.pools
            )));
        }
        Ok(pools)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(flexvol_name("0b7a-11ee"), "ashlar_0b7a_11ee");
        assert_eq!(split_path("/vol/v1/lun0"), Some(("v1", "lun0")));
        assert_eq!(split_path("/vol/v1/.snapshot/s/lun0"), None);
        assert_eq!(split_path("vol/v1/lun0"), None);
        assert_eq!(
            split_snapshot_path("/vol/v1/.snapshot/snapshot-1/lun0"),
            Some(("v1", "snapshot-1"))
        );
        assert!(check_id("volume", "../x").is_err());
        let a = igroup_name("ashlar-", "iqn.1994-05.com.redhat:a");
        assert_eq!(a, igroup_name("ashlar-", "iqn.1994-05.com.redhat:a"));
        assert_ne!(a, igroup_name("ashlar-", "iqn.1994-05.com.redhat:b"));
        assert_eq!(a.len(), "ashlar-".len() + 16);
    }

    #[test]
    fn connection_info_is_cinders_iscsi_shape() {
        let get = |ci: &ConnectionInfo, k: &str| {
            ci.data
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let one = iscsi_connection_info("v1", "iqn.t", &["10.0.0.1:3260".into()], 3, true);
        assert_eq!(one.driver_volume_type, "iscsi");
        assert_eq!(get(&one, "target_portal"), Some(text("10.0.0.1:3260")));
        assert_eq!(get(&one, "target_lun"), Some(Value::Integer(3)));
        assert_eq!(get(&one, "target_discovered"), Some(Value::Flag(false)));
        assert_eq!(get(&one, "target_portals"), None);
        let two = iscsi_connection_info(
            "v1",
            "iqn.t",
            &["10.0.0.1:3260".into(), "10.0.0.2:3260".into()],
            0,
            false,
        );
        assert_eq!(
            get(&two, "target_portals"),
            Some(Value::Texts(vec![
                "10.0.0.1:3260".into(),
                "10.0.0.2:3260".into()
            ]))
        );
        assert_eq!(
            get(&two, "target_iqns"),
            Some(Value::Texts(vec!["iqn.t".into(), "iqn.t".into()]))
        );
        assert_eq!(
            get(&two, "target_luns"),
            Some(Value::Texts(vec!["0".into(), "0".into()]))
        );
    }
}
