//! A SAN array driven through its REST management API, in the shapes of NetApp ONTAP's
//! (`/api/storage/volumes`, `/api/storage/luns`, `/api/protocols/san/igroups`,
//! `/api/protocols/san/lun-maps`, snapshots, async jobs), attached over iSCSI. The driver
//! touches nothing but HTTP to the granted management endpoint; the array's password is
//! a named credential that the host adds to each request, so the driver never holds it.
//!
//! Two pool layouts, as Cinder's ONTAP driver knows them:
//! - aggregate pools (the default): each pool is an aggregate and each volume gets its
//!   own FlexVol `ashlar_<id>` holding one LUN `lun0`. Snapshots are FlexVol snapshots;
//!   a volume from a snapshot or a clone is a FlexClone, split from its parent at once so
//!   the parent and the snapshot can go their own way.
//! - FlexVol pools (`flexvol_names`): each pool is an existing FlexVol and each volume is
//!   a LUN `volume-<id>` in it; snapshots, clones and volumes from snapshots are LUN
//!   clones `snapshot-<id>` / `volume-<id>` in the same FlexVol.
//!
//! A clone or a volume from a snapshot shares blocks with its source, so it lives where
//! its source lives (the source's aggregate or FlexVol), whatever pool the scheduler named.
//!
//! `provider_location` is the LUN's path (`/vol/<flexvol>/<lun>`); a snapshot's is where
//! its data is (`/vol/<flexvol>/.snapshot/<snapshot>/lun0`, or a LUN clone's path).
//!
//! Settings are listed on [`Settings::from_config`].

pub mod rest;

use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, HealthReport, ModelUpdate, PoolStats, Result, Snapshot,
    Value, Volume, VolumeDriver, VolumeStats, check_id, config, log, parse_bool,
};
use serde_json::{Value as Json, json};

use rest::{Client, HostTransport, RestConfig, RestError, q};

const GIB: u64 = 1 << 30;
/// The LUN inside a per-volume FlexVol.
const LUN_IN_FLEXVOL: &str = "lun0";
/// A per-volume FlexVol is this much larger than its LUN, for the array's metadata.
const FLEXVOL_HEADROOM_PERCENT: u64 = 5;

/// How pools map onto the array.
#[derive(Clone, Debug, PartialEq)]
pub enum Pools {
    /// One pool per aggregate (all of them when the list is empty), a FlexVol per volume.
    Aggregates(Vec<String>),
    /// One pool per listed FlexVol, a LUN per volume.
    FlexVols(Vec<String>),
}

/// The backend's settings, read in `do_setup`.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub rest: RestConfig,
    pub svm: String,
    pub pools: Pools,
    pub thin: bool,
    pub os_type: String,
    pub igroup_prefix: String,
    pub iscsi_port: u16,
    pub reserved_percentage: u32,
    pub max_over_subscription_ratio: f64,
    pub vendor_name: String,
}

fn parse_num<N: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: N,
    valid: impl Fn(&N) -> bool,
    expect: &str,
) -> Result<N> {
    match get(key) {
        None => Ok(default),
        Some(v) => {
            v.trim().parse::<N>().ok().filter(valid).ok_or_else(|| {
                DriverError::invalid_argument(format!("{key} `{v}` must be {expect}"))
            })
        }
    }
}

fn parse_list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// ONTAP object names: letters, digits and `_` (FlexVols and aggregates), no separators
/// that could change a path or a query.
fn check_object_name(key: &str, name: &str) -> Result<()> {
    if !name.is_empty()
        && name.len() <= 203
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(DriverError::invalid_argument(format!(
            "{key}: `{name}` is not an array object name (letters, digits and `_`)"
        )))
    }
}

impl Settings {
    /// Parses the backend's settings, naming the bad key on error:
    /// - `api_url` (required): the management endpoint, `http://host:port`; the same
    ///   origin must be granted in `grants.http`.
    /// - `svm` (required): the SVM (vserver) that owns the volumes and serves iSCSI.
    /// - `credential` (default `array`): the credential the host adds to requests.
    /// - `aggregate_names`: comma-separated aggregates to use as pools (default: all).
    /// - `flexvol_names`: comma-separated FlexVols to use as pools instead.
    /// - `thin_provisioning` (default true), `lun_os_type` (default `linux`),
    ///   `igroup_prefix` (default `ashlar-`), `iscsi_port` (default 3260).
    /// - `api_timeout_ms` (10000), `api_retries` (3), `api_retry_backoff_ms` (250),
    ///   `job_timeout_ms` (60000), `job_poll_ms` (100).
    /// - `reserved_percentage` (0), `max_over_subscription_ratio` (20.0),
    ///   `vendor_name` (`NetApp`).
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let api_url = get("api_url").ok_or_else(|| {
            DriverError::invalid_argument(
                "the san-rest driver needs `api_url`: the array's management endpoint, http://host:port",
            )
        })?;
        let api_url = api_url.trim().trim_end_matches('/').to_string();
        let rest_of = api_url
            .strip_prefix("http://")
            .or_else(|| api_url.strip_prefix("https://"));
        match rest_of {
            Some(authority)
                if !authority.is_empty() && !authority.contains(['/', '?', '#', '@']) => {}
            _ => {
                return Err(DriverError::invalid_argument(format!(
                    "api_url `{api_url}` must be an origin, http://host[:port], with no path"
                )));
            }
        }
        let svm = get("svm").ok_or_else(|| {
            DriverError::invalid_argument(
                "the san-rest driver needs `svm`: the SVM (vserver) that owns the LUNs and serves iSCSI",
            )
        })?;
        check_object_name("svm", &svm)?;
        let aggregates = parse_list(get("aggregate_names"));
        let flexvols = parse_list(get("flexvol_names"));
        let pools = match (aggregates.is_empty(), flexvols.is_empty()) {
            (_, true) => Pools::Aggregates(aggregates),
            (true, false) => Pools::FlexVols(flexvols),
            (false, false) => {
                return Err(DriverError::invalid_argument(
                    "set aggregate_names or flexvol_names, not both: pools are either aggregates (a FlexVol per volume) or FlexVols (a LUN per volume)",
                ));
            }
        };
        match &pools {
            Pools::Aggregates(names) => {
                for n in names {
                    check_object_name("aggregate_names", n)?;
                }
            }
            Pools::FlexVols(names) => {
                for n in names {
                    check_object_name("flexvol_names", n)?;
                }
            }
        }
        let os_type = get("lun_os_type").unwrap_or_else(|| "linux".into());
        check_object_name("lun_os_type", &os_type)?;
        let igroup_prefix = get("igroup_prefix").unwrap_or_else(|| "ashlar-".into());
        if igroup_prefix.len() > 64
            || !igroup_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        {
            return Err(DriverError::invalid_argument(format!(
                "igroup_prefix `{igroup_prefix}` may use letters, digits and `_-.:`, at most 64 of them"
            )));
        }
        let credential = get("credential").unwrap_or_else(|| "array".into());
        let rest = RestConfig {
            base: api_url,
            credential,
            timeout_ms: parse_num(
                &get,
                "api_timeout_ms",
                10_000u32,
                |v| *v >= 1,
                "a number of milliseconds above 0",
            )?,
            retries: parse_num(&get, "api_retries", 3u32, |v| *v <= 10, "from 0 to 10")?,
            backoff_ms: parse_num(
                &get,
                "api_retry_backoff_ms",
                250u32,
                |v| *v >= 1 && *v <= 60_000,
                "a number of milliseconds from 1 to 60000",
            )?,
            job_timeout_ms: parse_num(
                &get,
                "job_timeout_ms",
                60_000u64,
                |v| *v >= 1,
                "a number of milliseconds above 0",
            )?,
            job_poll_ms: parse_num(
                &get,
                "job_poll_ms",
                100u32,
                |v| *v >= 1 && *v <= 60_000,
                "a number of milliseconds from 1 to 60000",
            )?,
        };
        Ok(Settings {
            rest,
            svm,
            pools,
            thin: parse_bool("thin_provisioning", get("thin_provisioning"), true)?,
            os_type,
            igroup_prefix,
            iscsi_port: parse_num(&get, "iscsi_port", 3260u16, |p| *p > 0, "a port number")?,
            reserved_percentage: parse_num(
                &get,
                "reserved_percentage",
                0u32,
                |p| *p <= 100,
                "a whole number from 0 to 100",
            )?,
            max_over_subscription_ratio: parse_num(
                &get,
                "max_over_subscription_ratio",
                20.0f64,
                |r| *r >= 1.0,
                "a number of at least 1.0",
            )?,
            vendor_name: get("vendor_name").unwrap_or_else(|| "NetApp".into()),
        })
    }
}

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

fn flexvol_size(lun_bytes: u64) -> u64 {
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

fn str_at<'a>(v: &'a Json, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Json::as_str)
}

pub struct SanRest {
    settings: Option<Settings>,
    api: Option<Client<HostTransport>>,
}

impl SanRest {
    fn settings(&mut self) -> Result<&Settings> {
        if self.settings.is_none() {
            self.settings = Some(Settings::from_config(config::get)?);
        }
        Ok(self.settings.as_ref().expect("set above"))
    }

    fn api(&mut self) -> Result<&mut Client<HostTransport>> {
        if self.api.is_none() {
            let cfg = self.settings()?.rest.clone();
            self.api = Some(Client::new(cfg, HostTransport));
        }
        Ok(self.api.as_mut().expect("set above"))
    }

    fn fail(&self, e: RestError) -> DriverError {
        match (&self.api, e) {
            (_, RestError::NotSent(e)) => e,
            (Some(api), e) => e.into_driver(&api.cfg),
            (None, e) => DriverError::internal(format!("{e:?}")),
        }
    }

    fn get(&mut self, path: &str) -> Result<Json> {
        self.api()?.get(path).map_err(|e| self.fail(e))
    }

    fn get_all(&mut self, path: &str) -> Result<Vec<Json>> {
        self.api()?.get_all(path).map_err(|e| self.fail(e))
    }

    /// A change; 202 answers are waited for. Keeps the array's error for the caller.
    fn run(&mut self, method: &str, path: &str, body: Option<&Json>) -> Result<Json, RestError> {
        match self.api() {
            Ok(api) => api.run(method, path, body),
            Err(e) => Err(RestError::NotSent(e)),
        }
    }

    fn svm(&mut self) -> Result<String> {
        Ok(self.settings()?.svm.clone())
    }

    // ---- lookups ------------------------------------------------------------------

    fn find_flexvol(&mut self, name: &str) -> Result<Option<Json>> {
        let svm = self.svm()?;
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
            let r = &self.settings()?.rest;
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

    fn find_lun(&mut self, path: &str) -> Result<Option<Json>> {
        let svm = self.svm()?;
        let found = self.get_all(&format!(
            "/api/storage/luns?svm.name={}&name={}&fields=name,space.size,location",
            q(&svm),
            q(path)
        ))?;
        Ok(found.into_iter().next())
    }

    fn uuid(what: &str, record: &Json) -> Result<String> {
        record
            .get("uuid")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                DriverError::internal(format!("the array's {what} has no uuid: {record}"))
            })
    }

    /// Where a volume's LUN is: its provider_location, else where this driver puts it.
    fn lun_path(&mut self, volume: &Volume) -> Result<String> {
        check_id("volume", &volume.id)?;
        if let Some(p) = volume.provider_location.as_deref()
            && split_path(p).is_some()
        {
            return Ok(p.to_string());
        }
        match self.settings()?.pools.clone() {
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
                let svm = self.svm()?;
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
    fn pool_for(&mut self, volume: &Volume) -> Result<String> {
        let names = match self.settings()?.pools.clone() {
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

    fn create_flexvol(&mut self, name: &str, aggregate: &str, size: u64) -> Result<Json> {
        let s = self.settings()?.clone();
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
    fn clone_flexvol(&mut self, name: &str, parent: &str, snapshot: Option<&str>) -> Result<Json> {
        let svm = self.svm()?;
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
    fn delete_flexvol(&mut self, name: &str) -> Result<()> {
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
            Err(e) => Err(self.fail(e)),
        }
    }

    // ---- LUNs ---------------------------------------------------------------------

    fn create_lun(
        &mut self,
        path: &str,
        size: Option<u64>,
        clone_of: Option<&str>,
    ) -> Result<Json> {
        let s = self.settings()?.clone();
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

    fn delete_lun(&mut self, path: &str) -> Result<()> {
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
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Removes every map of the LUNs whose path matches `pattern`.
    fn unmap_all(&mut self, pattern: &str) -> Result<()> {
        let svm = self.svm()?;
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
            let path = format!("/api/protocols/san/lun-maps/{lun}/{ig}");
            match self.run("DELETE", &path, None) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    /// Grows a volume's storage to `size_gib` (FlexVol first, then its LUN).
    fn grow(&mut self, lun_path: &str, size_gib: u64) -> Result<()> {
        let bytes = size_gib * GIB;
        if let Pools::Aggregates(_) = self.settings()?.pools
            && let Some((fv, _)) = split_path(lun_path)
        {
            let fv = fv.to_string();
            self.resize_flexvol(&fv, flexvol_size(bytes))?;
        }
        self.resize_lun(lun_path, bytes)
    }

    // ---- iSCSI --------------------------------------------------------------------

    fn iscsi_target(&mut self) -> Result<String> {
        let svm = self.svm()?;
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

    fn iscsi_portals(&mut self) -> Result<Vec<String>> {
        let (svm, port) = {
            let s = self.settings()?;
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
    fn igroups_with(&mut self, initiator: &str) -> Result<Vec<Json>> {
        let (svm, prefix) = {
            let s = self.settings()?;
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

    fn igroup_for(&mut self, initiator: &str) -> Result<Json> {
        if let Some(g) = self.igroups_with(initiator)?.into_iter().next() {
            return Ok(g);
        }
        let s = self.settings()?.clone();
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
    fn map_lun(&mut self, lun_uuid: &str, igroup_uuid: &str) -> Result<u32> {
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
        let svm = self.svm()?;
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

    // ---- stats --------------------------------------------------------------------

    fn pool_stats(&mut self) -> Result<Vec<PoolStats>> {
        let s = self.settings()?.clone();
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

impl VolumeDriver for SanRest {
    fn new() -> Self {
        SanRest {
            settings: None,
            api: None,
        }
    }

    fn do_setup(&mut self) -> Result<()> {
        self.settings = Some(Settings::from_config(config::get)?);
        self.api = None;
        Ok(())
    }

    fn check_for_setup_error(&mut self) -> Result<()> {
        let cluster = self.get("/api/cluster?fields=name,version")?;
        let name = str_at(&cluster, "/name").unwrap_or("?").to_string();
        let version = str_at(&cluster, "/version/full").unwrap_or("?").to_string();
        self.iscsi_target()?;
        let pools = self.pool_stats()?;
        log::info(&format!(
            "array {name} ({version}) serves pools {}",
            pools
                .iter()
                .map(|p| p.pool_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }

    fn health(&mut self) -> Result<HealthReport> {
        Ok(match self.get("/api/cluster?fields=name") {
            Ok(_) => HealthReport {
                healthy: true,
                detail: String::new(),
            },
            Err(e) => HealthReport {
                healthy: false,
                detail: format!("{e:?}"),
            },
        })
    }

    fn get_volume_stats(&mut self, _refresh: bool) -> Result<VolumeStats> {
        let pools = self.pool_stats()?;
        let vendor = self.settings()?.vendor_name.clone();
        Ok(VolumeStats {
            volume_backend_name: config::backend_name(),
            vendor_name: vendor,
            driver_version: env!("CARGO_PKG_VERSION").into(),
            storage_protocol: "iSCSI".into(),
            pools,
        })
    }

    fn create_volume(&mut self, volume: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let pool = self.pool_for(&volume)?;
        let bytes = volume.size_gib * GIB;
        let path = match self.settings()?.pools {
            Pools::Aggregates(_) => {
                let fv = flexvol_name(&volume.id);
                self.create_flexvol(&fv, &pool, flexvol_size(bytes))?;
                let path = format!("/vol/{fv}/{LUN_IN_FLEXVOL}");
                if let Err(e) = self.create_lun(&path, Some(bytes), None) {
                    let _ = self.delete_flexvol(&fv);
                    return Err(e);
                }
                path
            }
            Pools::FlexVols(_) => {
                let path = format!("/vol/{pool}/volume-{}", volume.id);
                self.create_lun(&path, Some(bytes), None)?;
                path
            }
        };
        log::info(&format!("created LUN {path} ({} GiB)", volume.size_gib));
        Ok(ModelUpdate::at(path))
    }

    fn delete_volume(&mut self, volume: Volume) -> Result<()> {
        let path = self.lun_path(&volume)?;
        match self.settings()?.pools {
            Pools::Aggregates(_) => {
                let fv = split_path(&path)
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_default();
                self.delete_flexvol(&fv)?;
            }
            Pools::FlexVols(_) => self.delete_lun(&path)?,
        }
        log::info(&format!("deleted LUN {path}"));
        Ok(())
    }

    fn extend_volume(&mut self, volume: Volume, new_size_gib: u64) -> Result<()> {
        let path = self.lun_path(&volume)?;
        self.grow(&path, new_size_gib)?;
        log::info(&format!("extended LUN {path} to {new_size_gib} GiB"));
        Ok(())
    }

    fn create_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<ModelUpdate> {
        check_id("snapshot", &snapshot.id)?;
        let src = self.lun_path(&volume)?;
        let (fv, lun) = split_path(&src)
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .ok_or_else(|| DriverError::internal(format!("`{src}` is not a LUN path")))?;
        let name = format!("snapshot-{}", snapshot.id);
        let location = match self.settings()?.pools {
            Pools::Aggregates(_) => {
                let vol = self.find_flexvol(&fv)?.ok_or_else(|| {
                    DriverError::not_found(format!(
                        "FlexVol {fv} of volume {} is not on the array",
                        volume.id
                    ))
                })?;
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
                format!("/vol/{fv}/.snapshot/{name}/{lun}")
            }
            Pools::FlexVols(_) => {
                let path = format!("/vol/{fv}/{name}");
                self.create_lun(&path, None, Some(&src))?;
                path
            }
        };
        log::info(&format!("created snapshot {location} of {src}"));
        Ok(ModelUpdate::at(location))
    }

    fn delete_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<()> {
        check_id("snapshot", &snapshot.id)?;
        let name = format!("snapshot-{}", snapshot.id);
        match self.settings()?.pools {
            Pools::Aggregates(_) => {
                let fv = match snapshot
                    .provider_location
                    .as_deref()
                    .and_then(split_snapshot_path)
                {
                    Some((fv, _)) => fv.to_string(),
                    None => {
                        let src = self.lun_path(&volume)?;
                        split_path(&src)
                            .map(|(v, _)| v.to_string())
                            .unwrap_or_default()
                    }
                };
                let Some(vol) = self.find_flexvol(&fv)? else {
                    return Ok(());
                };
                let uuid = Self::uuid("FlexVol", &vol)?;
                let snaps = self.get_all(&format!(
                    "/api/storage/volumes/{uuid}/snapshots?name={}",
                    q(&name)
                ))?;
                let Some(snap) = snaps.first() else {
                    log::info(&format!(
                        "snapshot {name} of {fv} is not on the array; nothing to delete"
                    ));
                    return Ok(());
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
            }
            Pools::FlexVols(_) => {
                let path = match snapshot
                    .provider_location
                    .as_deref()
                    .filter(|p| split_path(p).is_some())
                {
                    Some(p) => p.to_string(),
                    None => {
                        let src = self.lun_path(&volume)?;
                        let fv = split_path(&src)
                            .map(|(v, _)| v.to_string())
                            .unwrap_or_default();
                        format!("/vol/{fv}/{name}")
                    }
                };
                self.delete_lun(&path)?;
            }
        }
        log::info(&format!("deleted snapshot {name}"));
        Ok(())
    }

    fn create_volume_from_snapshot(
        &mut self,
        volume: Volume,
        snapshot: Snapshot,
    ) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &snapshot.volume_id)?;
        let name = format!("snapshot-{}", snapshot.id);
        let path = match self.settings()?.pools {
            Pools::Aggregates(_) => {
                let parent = match snapshot
                    .provider_location
                    .as_deref()
                    .and_then(split_snapshot_path)
                {
                    Some((fv, _)) => fv.to_string(),
                    None => flexvol_name(&snapshot.volume_id),
                };
                let fv = flexvol_name(&volume.id);
                self.clone_flexvol(&fv, &parent, Some(&name))?;
                format!("/vol/{fv}/{LUN_IN_FLEXVOL}")
            }
            Pools::FlexVols(_) => {
                let src = match snapshot
                    .provider_location
                    .as_deref()
                    .filter(|p| split_path(p).is_some())
                {
                    Some(p) => p.to_string(),
                    None => {
                        return Err(DriverError::not_found(format!(
                            "snapshot {} has no LUN recorded (provider_location)",
                            snapshot.id
                        )));
                    }
                };
                let pool = split_path(&src)
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_default();
                let path = format!("/vol/{pool}/volume-{}", volume.id);
                self.create_lun(&path, None, Some(&src))?;
                path
            }
        };
        if volume.size_gib > snapshot.volume_size_gib
            && let Err(e) = self.grow(&path, volume.size_gib)
        {
            let _ = self.delete_volume(Volume {
                provider_location: Some(path.clone()),
                ..volume
            });
            return Err(e);
        }
        log::info(&format!("created LUN {path} from snapshot {name}"));
        Ok(ModelUpdate::at(path))
    }

    fn create_cloned_volume(&mut self, volume: Volume, source: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let src = self.lun_path(&source)?;
        let (src_fv, _) = split_path(&src)
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .ok_or_else(|| DriverError::internal(format!("`{src}` is not a LUN path")))?;
        let path = match self.settings()?.pools {
            Pools::Aggregates(_) => {
                let fv = flexvol_name(&volume.id);
                self.clone_flexvol(&fv, &src_fv, None)?;
                format!("/vol/{fv}/{LUN_IN_FLEXVOL}")
            }
            Pools::FlexVols(_) => {
                let path = format!("/vol/{src_fv}/volume-{}", volume.id);
                self.create_lun(&path, None, Some(&src))?;
                path
            }
        };
        if volume.size_gib > source.size_gib
            && let Err(e) = self.grow(&path, volume.size_gib)
        {
            let _ = self.delete_volume(Volume {
                provider_location: Some(path.clone()),
                ..volume
            });
            return Err(e);
        }
        log::info(&format!("cloned LUN {src} to {path}"));
        Ok(ModelUpdate::at(path))
    }

    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo> {
        if connector
            .extra
            .iter()
            .any(|(k, v)| k == "local" && *v == Value::Flag(true))
        {
            return Err(DriverError::not_supported(
                "the array exports its LUNs over iSCSI itself; there is no local device to pair with a target driver (remove the backend's target section)",
            ));
        }
        let initiator = connector.initiator.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
            DriverError::invalid_argument(format!(
                "connector from {} has no iSCSI initiator name (`initiator`); this backend attaches over iSCSI",
                connector.host
            ))
        })?;
        let path = self.lun_path(&volume)?;
        let lun = self.find_lun(&path)?.ok_or_else(|| {
            DriverError::not_found(format!(
                "LUN {path} of volume {} is not on the array",
                volume.id
            ))
        })?;
        let lun_uuid = Self::uuid("LUN", &lun)?;
        let igroup = self.igroup_for(&initiator)?;
        let igroup_uuid = Self::uuid("igroup", &igroup)?;
        let number = self.map_lun(&lun_uuid, &igroup_uuid)?;
        let target = self.iscsi_target()?;
        let portals = self.iscsi_portals()?;
        let thin = self.settings()?.thin;
        log::info(&format!(
            "mapped LUN {path} to igroup {} as LUN {number} for {initiator}",
            str_at(&igroup, "/name").unwrap_or("?")
        ));
        Ok(iscsi_connection_info(
            &volume.id, &target, &portals, number, thin,
        ))
    }

    fn terminate_connection(&mut self, volume: Volume, connector: Option<Connector>) -> Result<()> {
        let path = self.lun_path(&volume)?;
        let Some(lun) = self.find_lun(&path)? else {
            return Ok(());
        };
        let lun_uuid = Self::uuid("LUN", &lun)?;
        let initiator = connector.as_ref().and_then(|c| c.initiator.clone());
        let Some(initiator) = initiator else {
            // No connector: detach from everyone (Cinder's force detach).
            return self.unmap_all(&path);
        };
        for g in self.igroups_with(&initiator)? {
            let ig = Self::uuid("igroup", &g)?;
            match self.run(
                "DELETE",
                &format!("/api/protocols/san/lun-maps/{lun_uuid}/{ig}"),
                None,
            ) {
                Ok(_) => log::info(&format!("unmapped LUN {path} from {initiator}")),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }
}

ashlar_sdk::register_volume_driver!(SanRest);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_config(|k| map.get(k).cloned())
    }

    const BASE: &[(&str, &str)] = &[("api_url", "http://10.0.0.5:8080/"), ("svm", "svm0")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    fn invalid(pairs: &[(&str, &str)], word: &str) {
        match settings(pairs) {
            Err(DriverError::InvalidArgument(m)) => assert!(m.contains(word), "{m}"),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn settings_defaults() {
        let s = settings(BASE).unwrap();
        assert_eq!(s.rest.base, "http://10.0.0.5:8080");
        assert_eq!(s.rest.credential, "array");
        assert_eq!(s.rest.retries, 3);
        assert_eq!(s.pools, Pools::Aggregates(vec![]));
        assert!(s.thin);
        assert_eq!(s.iscsi_port, 3260);
        let s = settings(&with(&[
            ("flexvol_names", "vol_a, vol_b"),
            ("thin_provisioning", "no"),
        ]))
        .unwrap();
        assert_eq!(
            s.pools,
            Pools::FlexVols(vec!["vol_a".into(), "vol_b".into()])
        );
        assert!(!s.thin);
    }

    #[test]
    fn settings_errors_name_the_key() {
        invalid(&[("svm", "s")], "api_url");
        invalid(&[("api_url", "http://a:1")], "svm");
        invalid(&[("api_url", "http://a:1/api"), ("svm", "s")], "origin");
        invalid(&[("api_url", "ftp://a"), ("svm", "s")], "origin");
        invalid(&[("api_url", "http://u@a"), ("svm", "s")], "origin");
        invalid(
            &with(&[("aggregate_names", "a"), ("flexvol_names", "b")]),
            "not both",
        );
        invalid(&with(&[("flexvol_names", "vol/../x")]), "flexvol_names");
        invalid(&with(&[("api_retries", "many")]), "api_retries");
        invalid(
            &with(&[("reserved_percentage", "101")]),
            "reserved_percentage",
        );
        invalid(&with(&[("igroup_prefix", "a b")]), "igroup_prefix");
    }

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
    fn a_local_device_is_refused_before_anything_is_asked_of_the_array() {
        let volume = Volume {
            id: "v1".into(),
            display_name: None,
            size_gib: 1,
            provider_location: None,
            provider_auth: None,
            volume_type_name: None,
            extra_specs: vec![],
            pool: None,
        };
        let local = Connector {
            host: "ashlar".into(),
            ip: None,
            initiator: None,
            multipath: false,
            platform: None,
            os_type: None,
            extra: vec![("local".into(), Value::Flag(true))],
        };
        match SanRest::new().initialize_connection(volume, local) {
            Err(DriverError::NotSupported(m)) => assert!(m.contains("target"), "{m}"),
            other => panic!("{other:?}"),
        }
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
