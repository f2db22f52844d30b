//! The array's state: aggregates, FlexVols with their snapshots, LUNs, igroups, LUN maps
//! and the jobs that change FlexVols. Operations that ONTAP runs as jobs are checked when
//! asked for and applied when their job completes, so a client that does not wait for the
//! job does not see their result.
//!
//! With a data directory every LUN is backed by a sparse file, snapshots freeze copies of
//! their volume's LUN files, and clones copy from the right parent: tests can check data,
//! not only names. Error codes are in ONTAP's style but illustrative.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};

pub const GIB: u64 = 1 << 30;
/// ONTAP refuses FlexVols smaller than 20 MiB.
const MIN_VOLUME: u64 = 20 << 20;

/// An error as ONTAP answers it: a status and `{"error": {"message", "code", "target"}}`.
#[derive(Debug, Clone)]
pub struct SimError {
    pub status: u16,
    pub message: String,
    pub code: String,
    pub target: Option<String>,
}

impl SimError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        SimError {
            status,
            message: message.into(),
            code: code.to_string(),
            target: None,
        }
    }
    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_string());
        self
    }
    pub fn body(&self) -> Value {
        let mut e = json!({"message": self.message, "code": self.code});
        if let Some(t) = &self.target {
            e["target"] = json!(t);
        }
        json!({ "error": e })
    }
}

pub type SimResult<T> = Result<T, SimError>;

fn not_found(what: &str, name: &str) -> SimError {
    SimError::new(404, "4", format!("{what} \"{name}\" does not exist")).target(what)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("@{secs}")
}

pub struct Aggregate {
    pub uuid: String,
    pub name: String,
    pub size: u64,
}

/// Where a FlexClone came from; kept after the split (the API forgets, the test may not).
#[derive(Clone)]
pub struct CloneOrigin {
    pub parent_volume: String,
    pub parent_uuid: String,
    pub parent_snapshot: Option<String>,
    pub split: bool,
}

pub struct FlexVol {
    pub uuid: String,
    pub name: String,
    pub aggregate: String,
    pub size: u64,
    /// `none` (thin) or `volume` (thick).
    pub guarantee: String,
    pub snapshots: Vec<Snapshot>,
    pub origin: Option<CloneOrigin>,
}

pub struct Snapshot {
    pub uuid: String,
    pub name: String,
    pub create_time: String,
    /// The volume's LUNs as they were: (name within the volume, size, frozen copy).
    pub luns: Vec<(String, u64, Option<PathBuf>)>,
}

pub struct Lun {
    pub uuid: String,
    /// `/vol/<volume>/<name>`.
    pub path: String,
    pub volume: String,
    pub size: u64,
    pub os_type: String,
    pub reserved: bool,
    pub serial: String,
    /// Where a LUN clone or a FlexClone'd LUN was copied from.
    pub clone_source: Option<String>,
    pub file: Option<PathBuf>,
}

impl Lun {
    fn relative(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

pub struct Igroup {
    pub uuid: String,
    pub name: String,
    pub protocol: String,
    pub os_type: String,
    pub initiators: Vec<String>,
}

pub struct LunMap {
    pub lun_uuid: String,
    pub igroup_uuid: String,
    pub number: u32,
}

/// What a job does when it completes.
pub enum Action {
    CreateVolume(FlexVol),
    CloneVolume {
        name: String,
        parent_uuid: String,
        parent_snapshot: Option<String>,
    },
    ResizeVolume {
        uuid: String,
        size: u64,
    },
    SplitClone {
        uuid: String,
    },
    DeleteVolume {
        uuid: String,
    },
    CreateSnapshot {
        volume_uuid: String,
        name: String,
    },
    DeleteSnapshot {
        volume_uuid: String,
        snapshot_uuid: String,
    },
}

pub struct Job {
    pub uuid: String,
    pub description: String,
    pub state: String,
    pub message: String,
    pub code: String,
    pub ready_at: Instant,
    pub action: Option<Action>,
    /// An injected failure: the job fails with this (message, code), changing nothing.
    pub fail: Option<(String, String)>,
}

/// An injected fault, set by the test through `/_sim/faults`. It applies to the next
/// `count` requests whose method and path (a prefix) match.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Answer with this status and an error body instead of doing the request.
    #[serde(default)]
    pub status: Option<u16>,
    /// Hold the request this long before doing it (or, with `after`, before answering
    /// once it is done: the array did the work but its answer comes late).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub after: bool,
    /// The job this request starts fails with this message.
    #[serde(default)]
    pub job_failure: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    pub fn applies(&self, method: &str, path: &str) -> bool {
        self.count > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| path.starts_with(p))
    }
}

/// One request as the array saw it.
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// `ok`, `missing` or `wrong`.
    pub auth: String,
}

pub struct Array {
    pub cluster_name: String,
    pub cluster_uuid: String,
    pub svm_name: String,
    pub svm_uuid: String,
    pub target_iqn: String,
    pub portals: Vec<String>,
    pub aggregates: Vec<Aggregate>,
    pub volumes: Vec<FlexVol>,
    pub luns: Vec<Lun>,
    pub igroups: Vec<Igroup>,
    pub maps: Vec<LunMap>,
    pub jobs: Vec<Job>,
    pub faults: Vec<Fault>,
    pub requests: Vec<RequestRecord>,
    pub data_dir: Option<PathBuf>,
    pub job_time: Duration,
    pub page_cap: usize,
}

impl Array {
    pub fn new(
        svm_name: String,
        aggregates: Vec<(String, u64)>,
        portals: Vec<String>,
        data_dir: Option<PathBuf>,
        job_time: Duration,
        page_cap: usize,
    ) -> Array {
        let svm_uuid = new_uuid();
        Array {
            cluster_name: "sim-cluster".into(),
            cluster_uuid: new_uuid(),
            target_iqn: format!(
                "iqn.1992-08.com.netapp:sn.{}:vs.3",
                svm_uuid.replace('-', "")
            ),
            svm_name,
            svm_uuid,
            portals,
            aggregates: aggregates
                .into_iter()
                .map(|(name, gib)| Aggregate {
                    uuid: new_uuid(),
                    name,
                    size: gib * GIB,
                })
                .collect(),
            volumes: Vec::new(),
            luns: Vec::new(),
            igroups: Vec::new(),
            maps: Vec::new(),
            jobs: Vec::new(),
            faults: Vec::new(),
            requests: Vec::new(),
            data_dir,
            job_time,
            page_cap,
        }
    }

    // ---- space ----------------------------------------------------------------------

    /// Bytes a LUN's file really holds (thin LUNs take only what was written).
    fn allocated(file: &Option<PathBuf>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        file.as_ref()
            .and_then(|f| std::fs::metadata(f).ok())
            .map(|m| m.blocks() * 512)
            .unwrap_or(0)
    }

    /// Space used inside a FlexVol: reserved LUNs whole, thin LUNs what they hold.
    fn volume_used(&self, name: &str) -> u64 {
        self.luns
            .iter()
            .filter(|l| l.volume == name)
            .map(|l| {
                if l.reserved {
                    l.size
                } else {
                    Self::allocated(&l.file)
                }
            })
            .sum()
    }

    /// Space a FlexVol takes from its aggregate: its size when thick, its use when thin.
    fn volume_footprint(&self, v: &FlexVol) -> u64 {
        if v.guarantee == "volume" {
            v.size
        } else {
            self.volume_used(&v.name)
        }
    }

    fn aggregate_used(&self, name: &str) -> u64 {
        self.volumes
            .iter()
            .filter(|v| v.aggregate == name)
            .map(|v| self.volume_footprint(v))
            .sum()
    }

    fn aggregate_available(&self, name: &str) -> u64 {
        let size = self
            .aggregates
            .iter()
            .find(|a| a.name == name)
            .map_or(0, |a| a.size);
        size.saturating_sub(self.aggregate_used(name))
    }

    // ---- views ----------------------------------------------------------------------

    fn svm_ref(&self) -> Value {
        json!({"name": self.svm_name, "uuid": self.svm_uuid})
    }

    pub fn cluster_json(&self) -> Value {
        json!({
            "name": self.cluster_name,
            "uuid": self.cluster_uuid,
            "version": {"full": "NetApp Release 9.14.1 (simulated)", "generation": 9, "major": 14, "minor": 1},
        })
    }

    pub fn aggregate_json(&self, a: &Aggregate) -> Value {
        let used = self.aggregate_used(&a.name);
        json!({
            "uuid": a.uuid,
            "name": a.name,
            "state": "online",
            "space": {"block_storage": {
                "size": a.size,
                "used": used,
                "available": a.size.saturating_sub(used),
            }},
            "_links": {"self": {"href": format!("/api/storage/aggregates/{}", a.uuid)}},
        })
    }

    pub fn volume_json(&self, v: &FlexVol) -> Value {
        let used = self.volume_used(&v.name);
        let aggr_uuid = self
            .aggregates
            .iter()
            .find(|a| a.name == v.aggregate)
            .map(|a| a.uuid.clone());
        let mut clone = json!({"is_flexclone": false});
        if let Some(o) = v.origin.as_ref().filter(|o| !o.split) {
            clone = json!({
                "is_flexclone": true,
                "parent_volume": {"name": o.parent_volume, "uuid": o.parent_uuid},
            });
            if let Some(s) = &o.parent_snapshot {
                clone["parent_snapshot"] = json!({ "name": s });
            }
        }
        json!({
            "uuid": v.uuid,
            "name": v.name,
            "svm": self.svm_ref(),
            "aggregates": [{"name": v.aggregate, "uuid": aggr_uuid}],
            "size": v.size,
            "state": "online",
            "type": "rw",
            "guarantee": {"type": v.guarantee},
            "space": {"size": v.size, "used": used, "available": v.size.saturating_sub(used)},
            "clone": clone,
            "_links": {"self": {"href": format!("/api/storage/volumes/{}", v.uuid)}},
        })
    }

    pub fn snapshot_json(&self, v: &FlexVol, s: &Snapshot) -> Value {
        json!({
            "uuid": s.uuid,
            "name": s.name,
            "create_time": s.create_time,
            "volume": {"name": v.name, "uuid": v.uuid},
            "_links": {"self": {"href": format!("/api/storage/volumes/{}/snapshots/{}", v.uuid, s.uuid)}},
        })
    }

    pub fn lun_json(&self, l: &Lun) -> Value {
        let mapped = self.maps.iter().any(|m| m.lun_uuid == l.uuid);
        let vol_uuid = self
            .volumes
            .iter()
            .find(|v| v.name == l.volume)
            .map(|v| v.uuid.clone());
        json!({
            "uuid": l.uuid,
            "name": l.path,
            "svm": self.svm_ref(),
            "location": {
                "logical_unit": l.relative(),
                "volume": {"name": l.volume, "uuid": vol_uuid},
            },
            "os_type": l.os_type,
            "serial_number": l.serial,
            "space": {
                "size": l.size,
                "used": Self::allocated(&l.file),
                "guarantee": {"requested": l.reserved, "reserved": l.reserved},
            },
            "status": {"state": "online", "mapped": mapped},
            "enabled": true,
            "_links": {"self": {"href": format!("/api/storage/luns/{}", l.uuid)}},
        })
    }

    pub fn igroup_json(&self, g: &Igroup) -> Value {
        let initiators: Vec<Value> = g.initiators.iter().map(|i| json!({ "name": i })).collect();
        json!({
            "uuid": g.uuid,
            "name": g.name,
            "svm": self.svm_ref(),
            "protocol": g.protocol,
            "os_type": g.os_type,
            "initiators": initiators,
            "_links": {"self": {"href": format!("/api/protocols/san/igroups/{}", g.uuid)}},
        })
    }

    pub fn map_json(&self, m: &LunMap) -> Value {
        let lun = self.luns.iter().find(|l| l.uuid == m.lun_uuid);
        let ig = self.igroups.iter().find(|g| g.uuid == m.igroup_uuid);
        json!({
            "svm": self.svm_ref(),
            "lun": {"uuid": m.lun_uuid, "name": lun.map(|l| l.path.clone())},
            "igroup": {"uuid": m.igroup_uuid, "name": ig.map(|g| g.name.clone())},
            "logical_unit_number": m.number,
            "_links": {"self": {"href": format!("/api/protocols/san/lun-maps/{}/{}", m.lun_uuid, m.igroup_uuid)}},
        })
    }

    pub fn job_json(&self, j: &Job) -> Value {
        json!({
            "uuid": j.uuid,
            "description": j.description,
            "state": j.state,
            "message": j.message,
            "code": j.code.parse::<u64>().unwrap_or(0),
            "_links": {"self": {"href": format!("/api/cluster/jobs/{}", j.uuid)}},
        })
    }

    /// Everything, for tests (not part of the array's API): including what the API does
    /// not show, such as where a split clone came from and the files behind LUNs.
    pub fn dump(&self) -> Value {
        let volumes: Vec<Value> = self
            .volumes
            .iter()
            .map(|v| {
                let mut j = self.volume_json(v);
                j["snapshots"] = json!(
                    v.snapshots
                        .iter()
                        .map(|s| json!({"uuid": s.uuid, "name": s.name}))
                        .collect::<Vec<_>>()
                );
                if let Some(o) = &v.origin {
                    j["origin"] = json!({
                        "parent_volume": o.parent_volume,
                        "parent_snapshot": o.parent_snapshot,
                        "split": o.split,
                    });
                }
                j
            })
            .collect();
        let luns: Vec<Value> = self
            .luns
            .iter()
            .map(|l| {
                let mut j = self.lun_json(l);
                j["clone_source"] = json!(l.clone_source);
                j["backing_file"] = json!(l.file);
                j
            })
            .collect();
        json!({
            "iscsi_target": self.target_iqn,
            "aggregates": self.aggregates.iter().map(|a| self.aggregate_json(a)).collect::<Vec<_>>(),
            "volumes": volumes,
            "luns": luns,
            "igroups": self.igroups.iter().map(|g| self.igroup_json(g)).collect::<Vec<_>>(),
            "lun_maps": self.maps.iter().map(|m| self.map_json(m)).collect::<Vec<_>>(),
            "jobs": self.jobs.iter().map(|j| self.job_json(j)).collect::<Vec<_>>(),
        })
    }

    // ---- files ----------------------------------------------------------------------

    fn new_file(&self, kind: &str, uuid: &str) -> Option<PathBuf> {
        let dir = self.data_dir.as_ref()?.join(kind);
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir.join(format!("{uuid}.img")))
    }

    fn make_file(path: &Option<PathBuf>, size: u64) -> SimResult<()> {
        if let Some(p) = path {
            let f = std::fs::File::create(p).map_err(|e| io_error(p, e))?;
            f.set_len(size).map_err(|e| io_error(p, e))?;
        }
        Ok(())
    }

    /// A sparse copy (holes stay holes), then the size the copy must have.
    fn copy_file(src: &Option<PathBuf>, dst: &Option<PathBuf>, size: u64) -> SimResult<()> {
        let (Some(src), Some(dst)) = (src, dst) else {
            return Self::make_file(dst, size);
        };
        let out = std::process::Command::new("cp")
            .arg("--sparse=always")
            .arg(src)
            .arg(dst)
            .output()
            .map_err(|e| io_error(dst, e))?;
        if !out.status.success() {
            return Err(SimError::new(
                500,
                "2",
                format!(
                    "copying {} failed: {}",
                    src.display(),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(dst)
            .and_then(|f| f.set_len(size))
            .map_err(|e| io_error(dst, e))
    }

    fn remove_file(path: &Option<PathBuf>) {
        if let Some(p) = path {
            let _ = std::fs::remove_file(p);
        }
    }

    // ---- lookups --------------------------------------------------------------------

    pub fn volume_by_uuid(&self, uuid: &str) -> SimResult<&FlexVol> {
        self.volumes
            .iter()
            .find(|v| v.uuid == uuid)
            .ok_or_else(|| not_found("volume", uuid))
    }

    fn volume_index(&self, uuid: &str) -> SimResult<usize> {
        self.volumes
            .iter()
            .position(|v| v.uuid == uuid)
            .ok_or_else(|| not_found("volume", uuid))
    }

    fn lun_index(&self, uuid: &str) -> SimResult<usize> {
        self.luns
            .iter()
            .position(|l| l.uuid == uuid)
            .ok_or_else(|| not_found("lun", uuid))
    }

    /// Names taken now or by a job that has not finished.
    fn volume_name_taken(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v.name == name)
            || self.jobs.iter().any(|j| {
                j.state == "running"
                    && match &j.action {
                        Some(Action::CreateVolume(v)) => v.name == name,
                        Some(Action::CloneVolume { name: n, .. }) => n == name,
                        _ => false,
                    }
            })
    }

    // ---- jobs -----------------------------------------------------------------------

    /// Starts a job; `fail` (from an injected fault) makes it fail instead of acting.
    pub fn start_job(
        &mut self,
        description: String,
        action: Action,
        fail: Option<String>,
    ) -> Value {
        let uuid = new_uuid();
        self.jobs.push(Job {
            uuid: uuid.clone(),
            description,
            state: "running".into(),
            message: String::new(),
            code: "0".into(),
            ready_at: Instant::now() + self.job_time,
            action: Some(action),
            fail: fail.map(|m| (m, "9999999".to_string())),
        });
        json!({"job": {"uuid": uuid, "_links": {"self": {"href": format!("/api/cluster/jobs/{uuid}")}}}})
    }

    /// Completes the jobs whose time has come.
    pub fn settle(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].state == "running" && self.jobs[i].ready_at <= now)
            .collect();
        for i in due {
            let action = self.jobs[i].action.take();
            let outcome = match self.jobs[i].fail.clone() {
                Some((message, code)) => Err(SimError::new(500, &code, message)),
                None => match action {
                    Some(a) => self.apply(a),
                    None => Ok(()),
                },
            };
            let job = &mut self.jobs[i];
            match outcome {
                Ok(()) => {
                    job.state = "success".into();
                    job.message = "success".into();
                }
                Err(e) => {
                    job.state = "failure".into();
                    job.message = e.message;
                    job.code = e.code;
                }
            }
        }
    }

    fn apply(&mut self, action: Action) -> SimResult<()> {
        match action {
            Action::CreateVolume(v) => {
                if self.volumes.iter().any(|x| x.name == v.name) {
                    return Err(duplicate_volume(&v.name));
                }
                self.volumes.push(v);
                Ok(())
            }
            Action::CloneVolume {
                name,
                parent_uuid,
                parent_snapshot,
            } => self.apply_clone(name, &parent_uuid, parent_snapshot),
            Action::ResizeVolume { uuid, size } => {
                let i = self.volume_index(&uuid)?;
                let v = &self.volumes[i];
                let used = self.volume_used(&v.name);
                if size < used {
                    return Err(SimError::new(
                        400,
                        "917544",
                        format!(
                            "cannot shrink volume {} below the {used} bytes it uses",
                            v.name
                        ),
                    ));
                }
                if v.guarantee == "volume" && size > v.size {
                    let avail = self.aggregate_available(&v.aggregate);
                    if size - v.size > avail {
                        return Err(no_space_in_aggregate(&v.aggregate, size - v.size, avail));
                    }
                }
                self.volumes[i].size = size;
                Ok(())
            }
            Action::SplitClone { uuid } => {
                let i = self.volume_index(&uuid)?;
                match self.volumes[i].origin.as_mut() {
                    Some(o) if !o.split => {
                        o.split = true;
                        Ok(())
                    }
                    _ => Err(SimError::new(
                        400,
                        "13107",
                        format!("volume {} is not a FlexClone", self.volumes[i].name),
                    )),
                }
            }
            Action::DeleteVolume { uuid } => {
                let i = self.volume_index(&uuid)?;
                self.check_volume_deletable(i)?;
                let v = self.volumes.remove(i);
                let (gone, kept): (Vec<Lun>, Vec<Lun>) =
                    self.luns.drain(..).partition(|l| l.volume == v.name);
                self.luns = kept;
                for l in gone {
                    Self::remove_file(&l.file);
                }
                for s in v.snapshots {
                    for (_, _, f) in s.luns {
                        Self::remove_file(&f);
                    }
                }
                Ok(())
            }
            Action::CreateSnapshot { volume_uuid, name } => {
                let i = self.volume_index(&volume_uuid)?;
                if self.volumes[i].snapshots.iter().any(|s| s.name == name) {
                    return Err(duplicate_snapshot(&name));
                }
                let uuid = new_uuid();
                let mut frozen = Vec::new();
                let vol_name = self.volumes[i].name.clone();
                for l in self.luns.iter().filter(|l| l.volume == vol_name) {
                    let copy = self.new_file("snapshots", &format!("{uuid}-{}", l.uuid));
                    Self::copy_file(&l.file, &copy, l.size)?;
                    frozen.push((l.relative().to_string(), l.size, copy));
                }
                self.volumes[i].snapshots.push(Snapshot {
                    uuid,
                    name,
                    create_time: timestamp(),
                    luns: frozen,
                });
                Ok(())
            }
            Action::DeleteSnapshot {
                volume_uuid,
                snapshot_uuid,
            } => {
                let i = self.volume_index(&volume_uuid)?;
                let Some(si) = self.volumes[i]
                    .snapshots
                    .iter()
                    .position(|s| s.uuid == snapshot_uuid)
                else {
                    return Err(not_found("snapshot", &snapshot_uuid));
                };
                self.check_snapshot_not_busy(i, si)?;
                let s = self.volumes[i].snapshots.remove(si);
                for (_, _, f) in s.luns {
                    Self::remove_file(&f);
                }
                Ok(())
            }
        }
    }

    fn apply_clone(
        &mut self,
        name: String,
        parent_uuid: &str,
        parent_snapshot: Option<String>,
    ) -> SimResult<()> {
        if self.volumes.iter().any(|x| x.name == name) {
            return Err(duplicate_volume(&name));
        }
        let p = self.volume_by_uuid(parent_uuid)?;
        // (name within the volume, size, file to copy, what it was copied from)
        let sources: Vec<(String, u64, Option<PathBuf>, String, String, bool)> =
            match &parent_snapshot {
                Some(sn) => {
                    let s = p
                        .snapshots
                        .iter()
                        .find(|s| &s.name == sn)
                        .ok_or_else(|| not_found("snapshot", sn))?;
                    s.luns
                        .iter()
                        .map(|(rel, size, f)| {
                            let os = self
                                .luns
                                .iter()
                                .find(|l| l.volume == p.name && l.relative() == rel);
                            (
                                rel.clone(),
                                *size,
                                f.clone(),
                                format!("/vol/{}/{rel}@{sn}", p.name),
                                os.map_or("linux".into(), |l| l.os_type.clone()),
                                os.is_some_and(|l| l.reserved),
                            )
                        })
                        .collect()
                }
                None => self
                    .luns
                    .iter()
                    .filter(|l| l.volume == p.name)
                    .map(|l| {
                        (
                            l.relative().to_string(),
                            l.size,
                            l.file.clone(),
                            l.path.clone(),
                            l.os_type.clone(),
                            l.reserved,
                        )
                    })
                    .collect(),
            };
        let vol = FlexVol {
            uuid: new_uuid(),
            name: name.clone(),
            aggregate: p.aggregate.clone(),
            size: p.size,
            guarantee: p.guarantee.clone(),
            snapshots: Vec::new(),
            origin: Some(CloneOrigin {
                parent_volume: p.name.clone(),
                parent_uuid: p.uuid.clone(),
                parent_snapshot,
                split: false,
            }),
        };
        let mut luns = Vec::new();
        for (rel, size, src, from, os_type, reserved) in sources {
            let uuid = new_uuid();
            let file = self.new_file("luns", &uuid);
            Self::copy_file(&src, &file, size)?;
            luns.push(Lun {
                serial: serial(&uuid),
                uuid,
                path: format!("/vol/{name}/{rel}"),
                volume: name.clone(),
                size,
                os_type,
                reserved,
                clone_source: Some(from),
                file,
            });
        }
        self.volumes.push(vol);
        self.luns.extend(luns);
        Ok(())
    }

    fn check_volume_deletable(&self, i: usize) -> SimResult<()> {
        let v = &self.volumes[i];
        if let Some(child) = self.volumes.iter().find(|c| {
            c.origin
                .as_ref()
                .is_some_and(|o| o.parent_uuid == v.uuid && !o.split)
        }) {
            return Err(SimError::new(
                409,
                "917536",
                format!(
                    "volume {} has FlexClone {} depending on it; split or delete the clone first",
                    v.name, child.name
                ),
            ));
        }
        let mapped: Vec<&str> = self
            .luns
            .iter()
            .filter(|l| l.volume == v.name && self.maps.iter().any(|m| m.lun_uuid == l.uuid))
            .map(|l| l.path.as_str())
            .collect();
        if !mapped.is_empty() {
            return Err(SimError::new(
                400,
                "917729",
                format!(
                    "volume {} has mapped LUNs ({}); unmap them first",
                    v.name,
                    mapped.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn check_snapshot_not_busy(&self, vi: usize, si: usize) -> SimResult<()> {
        let v = &self.volumes[vi];
        let s = &v.snapshots[si];
        if let Some(child) = self.volumes.iter().find(|c| {
            c.origin.as_ref().is_some_and(|o| {
                o.parent_uuid == v.uuid
                    && !o.split
                    && o.parent_snapshot.as_deref() == Some(s.name.as_str())
            })
        }) {
            return Err(SimError::new(
                409,
                "1638555",
                format!(
                    "snapshot copy {} of volume {} is busy: FlexClone {} depends on it",
                    s.name, v.name, child.name
                ),
            ));
        }
        Ok(())
    }

    // ---- requests -------------------------------------------------------------------

    pub fn create_volume(&mut self, body: &Value, fail: Option<String>) -> SimResult<Value> {
        let name = str_field(body, "name")?;
        check_volume_name(&name)?;
        if self.volume_name_taken(&name) {
            return Err(duplicate_volume(&name));
        }
        self.check_svm(body)?;
        if let Some(clone) = body.get("clone").filter(|c| !c.is_null()) {
            let parent = clone
                .pointer("/parent_volume/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    SimError::new(400, "262179", "clone.parent_volume.name is required")
                        .target("clone.parent_volume.name")
                })?;
            let p = self
                .volumes
                .iter()
                .find(|v| v.name == parent)
                .ok_or_else(|| not_found("volume", parent))?;
            let snap = clone
                .pointer("/parent_snapshot/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(s) = &snap
                && !p.snapshots.iter().any(|x| &x.name == s)
            {
                return Err(not_found("snapshot", s));
            }
            let action = Action::CloneVolume {
                name: name.clone(),
                parent_uuid: p.uuid.clone(),
                parent_snapshot: snap,
            };
            return Ok(self.start_job(format!("POST /api/storage/volumes/{name}"), action, fail));
        }
        let aggregate = body
            .pointer("/aggregates/0/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SimError::new(400, "917927", "aggregates[0].name is required").target("aggregates")
            })?
            .to_string();
        if !self.aggregates.iter().any(|a| a.name == aggregate) {
            return Err(not_found("aggregate", &aggregate));
        }
        let size = body
            .get("size")
            .and_then(Value::as_u64)
            .unwrap_or(MIN_VOLUME);
        if size < MIN_VOLUME {
            return Err(SimError::new(
                400,
                "917534",
                format!("volume size {size} is below the 20 MiB minimum"),
            )
            .target("size"));
        }
        let guarantee = body
            .pointer("/guarantee/type")
            .and_then(Value::as_str)
            .unwrap_or("volume")
            .to_string();
        if !["none", "volume"].contains(&guarantee.as_str()) {
            return Err(SimError::new(
                400,
                "917535",
                format!("guarantee.type `{guarantee}` is not one of none, volume"),
            )
            .target("guarantee.type"));
        }
        if guarantee == "volume" {
            let avail = self.aggregate_available(&aggregate);
            if size > avail {
                return Err(no_space_in_aggregate(&aggregate, size, avail));
            }
        }
        let vol = FlexVol {
            uuid: new_uuid(),
            name: name.clone(),
            aggregate,
            size,
            guarantee,
            snapshots: Vec::new(),
            origin: None,
        };
        Ok(self.start_job(
            format!("POST /api/storage/volumes/{name}"),
            Action::CreateVolume(vol),
            fail,
        ))
    }

    pub fn patch_volume(
        &mut self,
        uuid: &str,
        body: &Value,
        fail: Option<String>,
    ) -> SimResult<Value> {
        let v = self.volume_by_uuid(uuid)?;
        let name = v.name.clone();
        if body
            .pointer("/clone/split_initiated")
            .and_then(Value::as_bool)
            == Some(true)
        {
            if v.origin.as_ref().is_none_or(|o| o.split) {
                return Err(SimError::new(
                    400,
                    "13107",
                    format!("volume {name} is not a FlexClone"),
                ));
            }
            return Ok(self.start_job(
                format!("PATCH /api/storage/volumes/{name} (clone split)"),
                Action::SplitClone {
                    uuid: uuid.to_string(),
                },
                fail,
            ));
        }
        if let Some(size) = body.get("size").and_then(Value::as_u64) {
            if size < MIN_VOLUME {
                return Err(SimError::new(
                    400,
                    "917534",
                    format!("volume size {size} is below the 20 MiB minimum"),
                )
                .target("size"));
            }
            return Ok(self.start_job(
                format!("PATCH /api/storage/volumes/{name}"),
                Action::ResizeVolume {
                    uuid: uuid.to_string(),
                    size,
                },
                fail,
            ));
        }
        Err(SimError::new(
            400,
            "262179",
            "nothing to change: this array changes `size` and `clone.split_initiated`",
        ))
    }

    pub fn delete_volume(&mut self, uuid: &str, fail: Option<String>) -> SimResult<Value> {
        let i = self.volume_index(uuid)?;
        self.check_volume_deletable(i)?;
        let name = self.volumes[i].name.clone();
        Ok(self.start_job(
            format!("DELETE /api/storage/volumes/{name}"),
            Action::DeleteVolume {
                uuid: uuid.to_string(),
            },
            fail,
        ))
    }

    pub fn create_snapshot(
        &mut self,
        volume_uuid: &str,
        body: &Value,
        fail: Option<String>,
    ) -> SimResult<Value> {
        let v = self.volume_by_uuid(volume_uuid)?;
        let name = str_field(body, "name")?;
        let pending = self.jobs.iter().any(|j| {
            j.state == "running"
                && matches!(&j.action, Some(Action::CreateSnapshot { volume_uuid: u, name: n }) if u == volume_uuid && *n == name)
        });
        if pending || v.snapshots.iter().any(|s| s.name == name) {
            return Err(duplicate_snapshot(&name));
        }
        let vname = v.name.clone();
        Ok(self.start_job(
            format!("POST /api/storage/volumes/{vname}/snapshots/{name}"),
            Action::CreateSnapshot {
                volume_uuid: volume_uuid.to_string(),
                name,
            },
            fail,
        ))
    }

    pub fn delete_snapshot(
        &mut self,
        volume_uuid: &str,
        snapshot_uuid: &str,
        fail: Option<String>,
    ) -> SimResult<Value> {
        let vi = self.volume_index(volume_uuid)?;
        let si = self.volumes[vi]
            .snapshots
            .iter()
            .position(|s| s.uuid == snapshot_uuid)
            .ok_or_else(|| not_found("snapshot", snapshot_uuid))?;
        self.check_snapshot_not_busy(vi, si)?;
        let desc = format!(
            "DELETE /api/storage/volumes/{}/snapshots/{}",
            self.volumes[vi].name, self.volumes[vi].snapshots[si].name
        );
        Ok(self.start_job(
            desc,
            Action::DeleteSnapshot {
                volume_uuid: volume_uuid.to_string(),
                snapshot_uuid: snapshot_uuid.to_string(),
            },
            fail,
        ))
    }

    pub fn create_lun(&mut self, body: &Value) -> SimResult<Value> {
        self.check_svm(body)?;
        let path = match body.get("name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                let vol = body
                    .pointer("/location/volume/name")
                    .and_then(Value::as_str);
                let unit = body
                    .pointer("/location/logical_unit")
                    .and_then(Value::as_str);
                match (vol, unit) {
                    (Some(v), Some(u)) => format!("/vol/{v}/{u}"),
                    _ => {
                        return Err(SimError::new(
                            400,
                            "5374868",
                            "name, or location.volume.name and location.logical_unit, is required",
                        )
                        .target("name"));
                    }
                }
            }
        };
        let (volume, _) = split_lun_path(&path)?;
        let vol = self
            .volumes
            .iter()
            .find(|v| v.name == volume)
            .ok_or_else(|| not_found("volume", &volume))?;
        if self.luns.iter().any(|l| l.path == path) {
            return Err(
                SimError::new(409, "5374920", format!("LUN {path} already exists")).target("name"),
            );
        }
        let os_type = body
            .get("os_type")
            .and_then(Value::as_str)
            .unwrap_or("linux")
            .to_string();
        let reserved = body
            .pointer("/space/guarantee/requested")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let clone_src = body
            .pointer("/clone/source/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut size = body.pointer("/space/size").and_then(Value::as_u64);
        let mut src_file = None;
        if let Some(src) = &clone_src {
            let s = self
                .luns
                .iter()
                .find(|l| &l.path == src)
                .ok_or_else(|| not_found("lun", src))?;
            if s.volume != volume {
                return Err(SimError::new(
                    400,
                    "5374884",
                    format!(
                        "clone source {src} is in volume {}, but a LUN clone must be in the same volume ({volume})",
                        s.volume
                    ),
                )
                .target("clone.source.name"));
            }
            size = Some(size.unwrap_or(s.size).max(s.size));
            src_file = s.file.clone();
        }
        let size = size.ok_or_else(|| {
            SimError::new(400, "5374868", "space.size is required").target("space.size")
        })?;
        if size == 0 {
            return Err(SimError::new(400, "5374868", "space.size must be above 0"));
        }
        if reserved {
            let avail = vol.size.saturating_sub(self.volume_used(&volume));
            if size > avail {
                return Err(no_space_in_volume(&volume, size, avail));
            }
        }
        let uuid = new_uuid();
        let file = self.new_file("luns", &uuid);
        match &clone_src {
            Some(_) => Self::copy_file(&src_file, &file, size)?,
            None => Self::make_file(&file, size)?,
        }
        let lun = Lun {
            serial: serial(&uuid),
            uuid,
            path,
            volume,
            size,
            os_type,
            reserved,
            clone_source: clone_src,
            file,
        };
        let j = self.lun_json(&lun);
        self.luns.push(lun);
        Ok(json!({"num_records": 1, "records": [j]}))
    }

    pub fn patch_lun(&mut self, uuid: &str, body: &Value) -> SimResult<Value> {
        let i = self.lun_index(uuid)?;
        if let Some(size) = body.pointer("/space/size").and_then(Value::as_u64) {
            let l = &self.luns[i];
            if size < l.size {
                return Err(SimError::new(
                    400,
                    "5374855",
                    format!(
                        "LUN {} cannot shrink from {} to {size} bytes",
                        l.path, l.size
                    ),
                )
                .target("space.size"));
            }
            if l.reserved {
                let vol = self.volumes.iter().find(|v| v.name == l.volume);
                let avail = vol.map_or(0, |v| v.size.saturating_sub(self.volume_used(&v.name)));
                if size - l.size > avail {
                    return Err(no_space_in_volume(&l.volume, size - l.size, avail));
                }
            }
            if let Some(f) = &self.luns[i].file {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(f)
                    .and_then(|h| h.set_len(size))
                    .map_err(|e| io_error(f, e))?;
            }
            self.luns[i].size = size;
        }
        if let Some(name) = body.get("name").and_then(Value::as_str) {
            let (volume, _) = split_lun_path(name)?;
            if volume != self.luns[i].volume {
                return Err(SimError::new(
                    400,
                    "5374884",
                    "a LUN can only be renamed within its volume",
                ));
            }
            if self.luns.iter().any(|l| l.path == name) {
                return Err(SimError::new(
                    409,
                    "5374920",
                    format!("LUN {name} already exists"),
                ));
            }
            self.luns[i].path = name.to_string();
        }
        Ok(json!({}))
    }

    pub fn delete_lun(&mut self, uuid: &str) -> SimResult<Value> {
        let i = self.lun_index(uuid)?;
        if self.maps.iter().any(|m| m.lun_uuid == uuid) {
            return Err(SimError::new(
                400,
                "5374877",
                format!("LUN {} is mapped; unmap it first", self.luns[i].path),
            ));
        }
        let l = self.luns.remove(i);
        Self::remove_file(&l.file);
        Ok(json!({}))
    }

    pub fn create_igroup(&mut self, body: &Value) -> SimResult<Value> {
        self.check_svm(body)?;
        let name = str_field(body, "name")?;
        if name.len() > 96
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        {
            return Err(SimError::new(
                400,
                "5374747",
                format!("igroup name `{name}` is not valid"),
            )
            .target("name"));
        }
        if self.igroups.iter().any(|g| g.name == name) {
            return Err(SimError::new(
                409,
                "5374734",
                format!("igroup {name} already exists"),
            ));
        }
        let protocol = body
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("mixed")
            .to_string();
        let os_type = body
            .get("os_type")
            .and_then(Value::as_str)
            .unwrap_or("linux")
            .to_string();
        let initiators = body
            .get("initiators")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let g = Igroup {
            uuid: new_uuid(),
            name,
            protocol,
            os_type,
            initiators,
        };
        let j = self.igroup_json(&g);
        self.igroups.push(g);
        Ok(json!({"num_records": 1, "records": [j]}))
    }

    pub fn delete_igroup(&mut self, uuid: &str) -> SimResult<Value> {
        let i = self
            .igroups
            .iter()
            .position(|g| g.uuid == uuid)
            .ok_or_else(|| not_found("igroup", uuid))?;
        if self.maps.iter().any(|m| m.igroup_uuid == uuid) {
            return Err(SimError::new(
                400,
                "5374743",
                format!("igroup {} has LUNs mapped to it", self.igroups[i].name),
            ));
        }
        self.igroups.remove(i);
        Ok(json!({}))
    }

    pub fn create_map(&mut self, body: &Value) -> SimResult<Value> {
        self.check_svm(body)?;
        let lun = match (
            body.pointer("/lun/uuid").and_then(Value::as_str),
            body.pointer("/lun/name").and_then(Value::as_str),
        ) {
            (Some(u), _) => self.luns.iter().find(|l| l.uuid == u),
            (None, Some(n)) => self.luns.iter().find(|l| l.path == n),
            _ => None,
        }
        .ok_or_else(|| {
            SimError::new(404, "5374875", "the specified LUN does not exist").target("lun")
        })?;
        let ig = match (
            body.pointer("/igroup/uuid").and_then(Value::as_str),
            body.pointer("/igroup/name").and_then(Value::as_str),
        ) {
            (Some(u), _) => self.igroups.iter().find(|g| g.uuid == u),
            (None, Some(n)) => self.igroups.iter().find(|g| g.name == n),
            _ => None,
        }
        .ok_or_else(|| {
            SimError::new(
                404,
                "5374878",
                "the specified initiator group does not exist",
            )
            .target("igroup")
        })?;
        if self
            .maps
            .iter()
            .any(|m| m.lun_uuid == lun.uuid && m.igroup_uuid == ig.uuid)
        {
            return Err(SimError::new(
                409,
                "5374922",
                format!("LUN {} is already mapped to igroup {}", lun.path, ig.name),
            ));
        }
        let used: Vec<u32> = self
            .maps
            .iter()
            .filter(|m| m.igroup_uuid == ig.uuid)
            .map(|m| m.number)
            .collect();
        let number = match body.get("logical_unit_number").and_then(Value::as_u64) {
            Some(n) if used.contains(&(n as u32)) => {
                return Err(SimError::new(
                    409,
                    "5374909",
                    format!("LUN number {n} is in use in igroup {}", ig.name),
                ));
            }
            Some(n) => n as u32,
            None => (0..).find(|n| !used.contains(n)).expect("a free number"),
        };
        let m = LunMap {
            lun_uuid: lun.uuid.clone(),
            igroup_uuid: ig.uuid.clone(),
            number,
        };
        let j = self.map_json(&m);
        self.maps.push(m);
        Ok(json!({"num_records": 1, "records": [j]}))
    }

    pub fn delete_map(&mut self, lun_uuid: &str, igroup_uuid: &str) -> SimResult<Value> {
        let i = self
            .maps
            .iter()
            .position(|m| m.lun_uuid == lun_uuid && m.igroup_uuid == igroup_uuid)
            .ok_or_else(|| SimError::new(404, "5374922", "the specified LUN map does not exist"))?;
        self.maps.remove(i);
        Ok(json!({}))
    }

    fn check_svm(&self, body: &Value) -> SimResult<()> {
        match body.pointer("/svm/name").and_then(Value::as_str) {
            Some(n) if n != self.svm_name => Err(not_found("svm", n).target("svm.name")),
            _ => Ok(()),
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> SimError {
    SimError::new(500, "2", format!("{}: {e}", path.display()))
}

fn serial(uuid: &str) -> String {
    uuid.replace('-', "")[..12].to_string()
}

fn str_field(body: &Value, key: &str) -> SimResult<String> {
    body.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SimError::new(400, "262179", format!("`{key}` is required")).target(key))
}

fn check_volume_name(name: &str) -> SimResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 203
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SimError::new(
            400,
            "917888",
            format!(
                "volume name `{name}` is not valid: use letters, digits and `_`, starting with a letter or `_`"
            ),
        )
        .target("name"))
    }
}

fn split_lun_path(path: &str) -> SimResult<(String, String)> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "vol", vol, lun] if !vol.is_empty() && !lun.is_empty() => {
            Ok((vol.to_string(), lun.to_string()))
        }
        _ => Err(SimError::new(
            400,
            "5374868",
            format!("LUN path `{path}` is not of the form /vol/<volume>/<lun>"),
        )
        .target("name")),
    }
}

fn duplicate_volume(name: &str) -> SimError {
    SimError::new(409, "917835", format!("duplicate volume name {name}")).target("name")
}

fn duplicate_snapshot(name: &str) -> SimError {
    SimError::new(
        409,
        "1638402",
        format!("snapshot copy {name} already exists"),
    )
    .target("name")
}

fn no_space_in_aggregate(aggr: &str, want: u64, avail: u64) -> SimError {
    SimError::new(
        400,
        "918232",
        format!(
            "insufficient space in aggregate {aggr}: {want} bytes requested, {avail} available"
        ),
    )
}

fn no_space_in_volume(vol: &str, want: u64, avail: u64) -> SimError {
    SimError::new(
        400,
        "5374863",
        format!("not enough space in volume {vol}: {want} bytes requested, {avail} available"),
    )
}
