//! Cinder's LVM driver model as an Ashlar component: each volume is a logical volume
//! `volume-<id>` in one volume group, thick (`lvm_type = default`) or thin in a thin pool
//! (`lvm_type = thin`), made and changed with lvm2's commands through the exec capability.
//! The driver has no protocol of its own: it hands the LV's device node to the target
//! driver paired with the backend (Cinder's `target_helper`), which exports it.
//!
//! - Snapshots are LVM snapshots `_snapshot-<id>` (thin snapshots in thin mode).
//! - A volume from a snapshot, or a clone: in thin mode a thin snapshot of the source,
//!   activated and grown; in thick mode a new LV filled by the host's `block.copy` from the
//!   snapshot (for a clone, from a temporary snapshot `clone-snap-<id>` of the source), so
//!   the data never passes through the driver.
//! - Delete zeroes a thick LV first (`volume_clear`), as Cinder does, so a new volume never
//!   shows a deleted one's data; thin LVs are not zeroed since thin pools zero new blocks.
//!
//! - Managing an existing LV (`{"source-name": "LV"}`): its size rounded up to whole GiB
//!   (the LV grown to it), renamed `volume-<id>` with `lvrename`, which the manifest asks
//!   for as optional; snapshots, LVM's own LVs and LVs whose device is open are refused,
//!   as Cinder refuses them. Unmanaging leaves the LV.
//!
//! Settings are described in `docs/drivers/lvm.md` and parsed in [`settings`].

pub mod lvm;
pub mod settings;

use ashlar_sdk::block::{self, Handle, OpenMode};
use ashlar_sdk::manage::{IN_USE, Reference};
use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, HealthReport, ManageableVolume, ModelUpdate, PoolStats,
    Result, Snapshot, Value, Volume, VolumeDriver, VolumeStats, check_id, config, exec, log,
};

use lvm::{Cmd, Commands, GIB, LvInfo, VgInfo, clone_snapshot_lv, snapshot_lv, volume_lv};
use settings::{LvmType, Settings, VolumeClear};

/// What volume_clear copies onto a deleted LV.
const ZERO_SOURCE: &str = "/dev/zero";

fn gb(bytes: u64) -> f64 {
    (bytes as f64 / GIB as f64 * 100.0).round() / 100.0
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Whether the connector is the host's own, asking for the local device to hand to the
/// paired target driver.
pub fn is_local(connector: &Connector) -> bool {
    connector
        .extra
        .iter()
        .any(|(k, v)| k == "local" && *v == Value::Flag(true))
}

/// Whether a line of lvm2's stderr is noise: descriptors it inherited, and, when
/// `activation` is off, its complaints about the device-mapper it was told not to use.
fn noise(line: &str, activation: bool) -> bool {
    line.is_empty()
        || line.contains("leaked on")
        || (!activation
            && (line.starts_with("WARNING: Activation disabled")
                || line.contains("device-mapper")
                || line.contains("libdevmapper")
                || line.contains("/dev/mapper/control")))
}

/// Maps a failed lvm2 command to the error an operator can act on.
pub fn command_error(cmd: &Cmd, status: i32, stderr: &str, activation: bool) -> DriverError {
    let stderr = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !noise(l, activation))
        .collect::<Vec<_>>()
        .join("; ");
    let failed = format!("`{cmd}` exited with status {status}: {stderr}");
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("insufficient free space")
        || lower.contains("free space in thin pool")
        || lower.contains("not enough free")
    {
        DriverError::capacity_exceeded(format!(
            "{failed}; the volume group has no room for it: free space in it or add a \
             physical volume (vgextend)"
        ))
    } else if lower.contains("volume group") && lower.contains("not found") {
        DriverError::backend_unavailable(format!(
            "{failed}; create the volume group (pvcreate, vgcreate) or fix the backend's \
             volume_group setting"
        ))
    } else if lower.contains("failed to find logical volume") {
        DriverError::not_found(failed)
    } else if lower.contains("already exists") {
        DriverError::internal(format!(
            "{failed}; an LV of that name is in the way: made outside Ashlar or by an earlier \
             attempt; remove it (lvremove) if it holds nothing"
        ))
    } else if activation && lower.contains("device-mapper") {
        DriverError::backend_unavailable(format!(
            "{failed}; this host's kernel has no device-mapper: load dm-mod, or set \
             activation = false (metadata only)"
        ))
    } else {
        DriverError::internal(failed)
    }
}

/// One pool for the whole volume group, in Cinder's stats keys.
pub fn pool_stats(s: &Settings, host: &str, vg: &VgInfo, lvs: &[LvInfo]) -> Result<PoolStats> {
    let is_volume = |lv: &&LvInfo| lv.name.starts_with("volume-");
    let (total, free, provisioned) = match s.lvm_type {
        LvmType::Thick => (vg.size, vg.free, vg.size - vg.free.min(vg.size)),
        LvmType::Thin => {
            let pool = lvs
                .iter()
                .find(|lv| lv.name == s.thin_pool && lv.is_thin_pool())
                .ok_or_else(|| {
                    DriverError::backend_unavailable(format!(
                        "thin pool {}/{} does not exist yet; the driver makes it when the \
                         backend starts (check_for_setup_error), or create it with lvcreate -T",
                        s.volume_group, s.thin_pool
                    ))
                })?;
            let used = pool.size as f64 * pool.data_percent.unwrap_or(0.0) / 100.0;
            let free = (pool.size as f64 - used).max(0.0) as u64;
            let provisioned = lvs
                .iter()
                .filter(|lv| lv.pool_lv == s.thin_pool)
                .map(|lv| lv.size)
                .sum();
            (pool.size, free, provisioned)
        }
    };
    let allocated: u64 = lvs.iter().filter(is_volume).map(|lv| lv.size).sum();
    let total_volumes = lvs.iter().filter(|lv| !lv.is_thin_pool()).count();
    let thin = s.lvm_type == LvmType::Thin;
    Ok(PoolStats {
        pool_name: s.volume_group.clone(),
        total_capacity_gb: gb(total),
        free_capacity_gb: gb(free),
        provisioned_capacity_gb: Some(gb(provisioned)),
        allocated_capacity_gb: Some(gb(allocated)),
        reserved_percentage: s.reserved_percentage,
        max_over_subscription_ratio: s.max_over_subscription_ratio,
        thin_provisioning_support: thin,
        thick_provisioning_support: !thin,
        multiattach: true,
        capabilities: vec![
            (
                "location_info".into(),
                text(format!(
                    "LVMVolumeDriver:{host}:{}:{}:0",
                    s.volume_group,
                    s.lvm_type.as_str()
                )),
            ),
            ("total_volumes".into(), Value::Integer(total_volumes as i64)),
            ("QoS_support".into(), Value::Flag(false)),
            ("snapshot_support".into(), Value::Flag(s.activation)),
            ("lvm_type".into(), text(s.lvm_type.as_str())),
        ],
    })
}

pub struct LvmDriver {
    settings: Option<Settings>,
}

impl LvmDriver {
    fn settings(&mut self) -> Result<Settings> {
        if self.settings.is_none() {
            self.settings = Some(Settings::from_config(config::get)?);
        }
        Ok(self.settings.clone().expect("set above"))
    }

    fn run(&self, cmd: &Cmd) -> Result<String> {
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let out =
            exec::run(cmd.program, &args).map_err(|e| exec::from_exec_error(cmd.program, e))?;
        if out.status != 0 {
            let activation = self.settings.as_ref().is_none_or(|s| s.activation);
            return Err(command_error(
                cmd,
                out.status,
                &String::from_utf8_lossy(&out.stderr),
                activation,
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn vg_info(&mut self) -> Result<VgInfo> {
        let s = self.settings()?;
        let out = self.run(&Commands(&s).vgs())?;
        lvm::parse_vgs(&out)
            .and_then(|rows| rows.into_iter().find(|vg| vg.name == s.volume_group))
            .ok_or_else(|| {
                DriverError::backend_unavailable(format!(
                    "volume group {} is not in the vgs report ({}); create it (pvcreate, \
                     vgcreate) or fix the backend's volume_group setting",
                    s.volume_group,
                    out.trim()
                ))
            })
    }

    fn lvs(&mut self) -> Result<Vec<LvInfo>> {
        let s = self.settings()?;
        let out = self.run(&Commands(&s).lvs())?;
        lvm::parse_lvs(&out).ok_or_else(|| {
            DriverError::internal(format!(
                "cannot read the lvs report for {} ({}); JSON reports need lvm2 2.02.158 or \
                 newer",
                s.volume_group,
                out.trim()
            ))
        })
    }

    fn find_lv(&mut self, name: &str) -> Result<Option<LvInfo>> {
        Ok(self.lvs()?.into_iter().find(|lv| lv.name == name))
    }

    fn require_lv(&mut self, name: &str, what: &str) -> Result<LvInfo> {
        let vg = self.settings()?.volume_group;
        self.find_lv(name)?.ok_or_else(|| {
            DriverError::not_found(format!(
                "{what} has no logical volume {vg}/{name}; it was removed outside Ashlar, or \
                 the backend's volume_group changed"
            ))
        })
    }

    /// Snapshots, clones and attaching all need LV devices, which need device-mapper.
    fn require_activation(&mut self, what: &str) -> Result<Settings> {
        let s = self.settings()?;
        if !s.activation {
            return Err(DriverError::not_supported(format!(
                "{what} needs device-mapper, and backend {} runs LVM with activation = false \
                 (metadata only); set activation = true on a host with device-mapper",
                config::backend_name()
            )));
        }
        Ok(s)
    }

    /// Creates the LV of a new volume, thick or thin as configured.
    fn create_lv(&mut self, lv: &str, size_gib: u64) -> Result<()> {
        let s = self.settings()?;
        let cmd = match s.lvm_type {
            LvmType::Thick => Commands(&s).create_thick(lv, size_gib),
            LvmType::Thin => Commands(&s).create_thin(lv, size_gib),
        };
        self.run(&cmd).map(|_| ())
    }

    fn remove_lv(&mut self, lv: &str) -> Result<()> {
        let s = self.settings()?;
        self.run(&Commands(&s).remove(lv)).map(|_| ())
    }

    /// Removes an LV made by a failed operation; the original error is what matters.
    fn discard_lv(&mut self, lv: &str) {
        if let Err(e) = self.remove_lv(lv) {
            log::warn(&format!(
                "could not remove {lv} after a failed operation: {e:?}"
            ));
        }
    }

    /// Zeroes the start of a device (`volume_clear`), `volume_bytes` long at most.
    fn clear(&mut self, path: &str, volume_bytes: u64) -> Result<()> {
        let s = self.settings()?;
        let fail = |e: block::IoError| clear_error(path, DriverError::from(e));
        // The host copies /dev/zero onto the device (Cinder's `dd if=/dev/zero`), so no
        // bytes cross into the driver.
        let zero = block::open(ZERO_SOURCE, OpenMode::ReadOnly).map_err(fail)?;
        let dev = block::open(path, OpenMode::ReadWrite).map_err(fail)?;
        let len = lvm::clear_len(
            volume_bytes,
            dev.size().map_err(fail)?,
            s.volume_clear_size_mib,
        );
        let zeroed = block::copy(&zero, 0, &dev, 0, len).map_err(fail)?;
        if zeroed != len {
            return Err(clear_error(
                path,
                DriverError::internal(format!("only {zeroed} of {len} bytes were zeroed")),
            ));
        }
        dev.flush().map_err(fail)?;
        log::info(&format!("volume_clear: zeroed {len} bytes of {path}"));
        Ok(())
    }

    /// Copies `src` (a snapshot's device) into `dst` (a new volume's) inside the host.
    fn copy(&mut self, src_lv: &str, dst_lv: &str, len: u64) -> Result<()> {
        let s = self.settings()?;
        let (src_path, dst_path) = (s.device_path(src_lv), s.device_path(dst_lv));
        let src: Handle = block::open(&src_path, OpenMode::ReadOnly)?;
        let dst: Handle = block::open(&dst_path, OpenMode::ReadWrite)?;
        let len = len.min(src.size()?).min(dst.size()?);
        let copied = block::copy(&src, 0, &dst, 0, len)?;
        if copied != len {
            return Err(DriverError::internal(format!(
                "copying {src_path} to {dst_path} stopped after {copied} of {len} bytes"
            )));
        }
        dst.flush()?;
        Ok(())
    }

    /// A new thin LV as a thin snapshot of `origin`, activated and grown to `size_gib`.
    fn thin_copy(&mut self, lv: &str, origin: &LvInfo, size_gib: u64) -> Result<()> {
        let s = self.settings()?;
        let c = Commands(&s);
        self.run(&c.snapshot(lv, &origin.name, None))?;
        let rest = self.run(&c.activate(lv)).and_then(|_| {
            if size_gib * GIB > origin.size {
                self.run(&c.extend(lv, size_gib))?;
            }
            Ok(())
        });
        if rest.is_err() {
            self.discard_lv(lv);
        }
        rest
    }

    /// A new LV of `size_gib` filled from the snapshot LV `snap` (`len` bytes).
    fn copy_into_new(&mut self, lv: &str, size_gib: u64, snap: &str, len: u64) -> Result<()> {
        self.create_lv(lv, size_gib)?;
        let copied = self.copy(snap, lv, len);
        if copied.is_err() {
            self.discard_lv(lv);
        }
        copied
    }

    /// Removes a snapshot LV, zeroing a thick one's exception store first (Cinder's
    /// `_delete_volume(is_snapshot=True)`): it holds the origin's old blocks.
    fn delete_snapshot_lv(&mut self, name: &str, size_gib: u64) -> Result<()> {
        let s = self.settings()?;
        let Some(lv) = self.find_lv(name)? else {
            log::info(&format!("{name} is already gone"));
            return Ok(());
        };
        if s.volume_clear == VolumeClear::Zero && !lv.is_thin() && s.activation {
            self.clear(&s.cow_path(name), size_gib * GIB)?;
        }
        self.remove_lv(name)
    }
}

fn clear_error(path: &str, e: DriverError) -> DriverError {
    let why = match &e {
        DriverError::NotFound(m)
        | DriverError::InvalidArgument(m)
        | DriverError::NotSupported(m)
        | DriverError::CapacityExceeded(m)
        | DriverError::BackendUnavailable(m)
        | DriverError::Internal(m) => m.clone(),
    };
    let msg = format!(
        "volume_clear could not zero {path} ({why}), so the LV was kept; check that the LV is \
         active and device_dir is right, or set volume_clear = none"
    );
    // Never not-found: that would read as "already deleted" and leave the data behind.
    match e {
        DriverError::NotFound(_) | DriverError::BackendUnavailable(_) => {
            DriverError::backend_unavailable(msg)
        }
        _ => DriverError::internal(msg),
    }
}

/// The LV a reference names, checked as an LV name.
fn managed_lv_name(reference: &str) -> Result<String> {
    let name = match Reference::parse(reference)? {
        Reference::Name(n) => n,
        Reference::Id(id) => {
            return Err(DriverError::invalid_argument(format!(
                "the lvm driver names logical volumes, not ids (`source-id` {id}): give {{\"source-name\": \"LV\"}}"
            )));
        }
    };
    let valid = !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b));
    if !valid {
        return Err(DriverError::invalid_argument(format!(
            "the reference names `{name}`, which is not a logical volume name: give an LV of the volume group (GET manageable_volumes lists them)"
        )));
    }
    Ok(name)
}

impl LvmDriver {
    /// The LV a manage names, refused as Cinder refuses one; `Ok(None)` when it is gone
    /// and the volume's own LV is there (a manage retried after its rename).
    fn manageable_lv(&mut self, volume: &Volume, reference: &str) -> Result<Option<LvInfo>> {
        let name = managed_lv_name(reference)?;
        let vg = self.settings()?.volume_group;
        let lvs = self.lvs()?;
        let Some(lv) = lvs.iter().find(|lv| lv.name == name) else {
            let own = volume_lv(&volume.id);
            if lvs.iter().any(|lv| lv.name == own) {
                return Ok(None);
            }
            return Err(DriverError::not_found(format!(
                "volume group {vg} has no logical volume `{name}`: GET manageable_volumes lists the LVs it holds"
            )));
        };
        if let Some(why) = lv.why_not_manageable() {
            return Err(DriverError::invalid_argument(format!(
                "{vg}/{name} cannot be managed: {why}"
            )));
        }
        Ok(Some(lv.clone()))
    }
}

impl VolumeDriver for LvmDriver {
    fn new() -> Self {
        LvmDriver { settings: None }
    }

    fn do_setup(&mut self) -> Result<()> {
        self.settings = Some(Settings::from_config(config::get)?);
        Ok(())
    }

    /// The volume group must exist; in thin mode the thin pool is made if missing, as
    /// Cinder does, from 95% of the free space.
    fn check_for_setup_error(&mut self) -> Result<()> {
        let s = self.settings()?;
        let vg = self.vg_info()?;
        if s.lvm_type == LvmType::Thin {
            let lvs = self.lvs()?;
            match lvs.iter().find(|lv| lv.name == s.thin_pool) {
                Some(lv) if lv.is_thin_pool() => {}
                Some(lv) => {
                    return Err(DriverError::backend_unavailable(format!(
                        "{}/{} exists but is not a thin pool (attributes {}); set \
                         thin_pool_name to a thin pool or a free name",
                        s.volume_group, s.thin_pool, lv.attr
                    )));
                }
                None => {
                    let size = lvm::thin_pool_size_mib(vg.free);
                    if size == 0 {
                        return Err(DriverError::capacity_exceeded(format!(
                            "volume group {} has no free space for the thin pool {}; add a \
                             physical volume (vgextend) or create the pool yourself",
                            s.volume_group, s.thin_pool
                        )));
                    }
                    self.run(&Commands(&s).create_thin_pool(size))?;
                    log::info(&format!(
                        "created thin pool {}/{} of {size} MiB",
                        s.volume_group, s.thin_pool
                    ));
                }
            }
        }
        Ok(())
    }

    /// Cheap: the volume group answers, and in thin mode the pool is there.
    fn health(&mut self) -> Result<HealthReport> {
        let probe = (|| {
            let s = self.settings()?;
            self.vg_info()?;
            if s.lvm_type == LvmType::Thin {
                let lvs = self.lvs()?;
                if !lvs
                    .iter()
                    .any(|lv| lv.name == s.thin_pool && lv.is_thin_pool())
                {
                    return Err(DriverError::backend_unavailable(format!(
                        "thin pool {}/{} is missing",
                        s.volume_group, s.thin_pool
                    )));
                }
            }
            Ok(())
        })();
        Ok(match probe {
            Ok(()) => HealthReport {
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
        let s = self.settings()?;
        let vg = self.vg_info()?;
        let lvs = self.lvs()?;
        let pool = pool_stats(&s, &config::host_name(), &vg, &lvs)?;
        Ok(VolumeStats {
            volume_backend_name: config::backend_name(),
            vendor_name: "Open Source".into(),
            driver_version: env!("CARGO_PKG_VERSION").into(),
            storage_protocol: s.storage_protocol.clone(),
            pools: vec![pool],
        })
    }

    fn create_volume(&mut self, volume: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let lv = volume_lv(&volume.id);
        if let Err(e) = self.create_lv(&lv, volume.size_gib) {
            // A create retried after a crash finds its own LV: take it if it is big enough.
            if matches!(&e, DriverError::Internal(m) if m.contains("already exists"))
                && let Some(found) = self.find_lv(&lv)?
                && found.size >= volume.size_gib * GIB
            {
                log::warn(&format!(
                    "{lv} already exists with the requested size; reusing it"
                ));
                return Ok(ModelUpdate::default());
            }
            return Err(e);
        }
        log::info(&format!("created {lv} ({} GiB)", volume.size_gib));
        Ok(ModelUpdate::default())
    }

    fn delete_volume(&mut self, volume: Volume) -> Result<()> {
        check_id("volume", &volume.id)?;
        let s = self.settings()?;
        let name = volume_lv(&volume.id);
        let Some(lv) = self.find_lv(&name)? else {
            log::info(&format!("{name} is already gone"));
            return Ok(());
        };
        if lv.has_snapshots() {
            return Err(DriverError::invalid_argument(format!(
                "{}/{name} still has snapshots; delete them first",
                s.volume_group
            )));
        }
        // Thin LVs are skipped as in Cinder: a thin pool zeroes blocks before reuse.
        if s.volume_clear == VolumeClear::Zero && !lv.is_thin() && s.activation {
            self.clear(&s.device_path(&name), volume.size_gib * GIB)?;
        }
        self.remove_lv(&name)?;
        log::info(&format!("removed {name}"));
        Ok(())
    }

    fn extend_volume(&mut self, volume: Volume, new_size_gib: u64) -> Result<()> {
        check_id("volume", &volume.id)?;
        let s = self.settings()?;
        let name = volume_lv(&volume.id);
        let lv = self.require_lv(&name, &format!("volume {}", volume.id))?;
        if new_size_gib * GIB < lv.size {
            return Err(DriverError::invalid_argument(format!(
                "cannot shrink {name} from {} bytes to {new_size_gib} GiB",
                lv.size
            )));
        }
        if new_size_gib * GIB == lv.size {
            return Ok(());
        }
        self.run(&Commands(&s).extend(&name, new_size_gib))?;
        Ok(())
    }

    fn manage_existing_get_size(&mut self, volume: Volume, reference: String) -> Result<u64> {
        check_id("volume", &volume.id)?;
        match self.manageable_lv(&volume, &reference)? {
            Some(lv) => Ok(lv.size_gib_ceil()),
            None => Ok(self
                .require_lv(&volume_lv(&volume.id), &format!("volume {}", volume.id))?
                .size_gib_ceil()),
        }
    }

    fn manage_existing(&mut self, volume: Volume, reference: String) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let s = self.settings()?;
        let name = volume_lv(&volume.id);
        if let Some(lv) = self.manageable_lv(&volume, &reference)?
            && lv.name != name
        {
            if self.find_lv(&name)?.is_some() {
                return Err(DriverError::invalid_argument(format!(
                    "{}/{name} exists already beside {}; nothing was renamed",
                    s.volume_group, lv.name
                )));
            }
            let cmd = Commands(&s).rename(&lv.name, &name);
            let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
            let out = exec::run(cmd.program, &args).map_err(|e| match e {
                exec::ExecError::Denied(_) => DriverError::not_supported(
                    "managing existing LVs renames them with `lvrename`, which this backend is not granted: add \"lvrename\" to the backend's grants.exec",
                ),
                other => exec::from_exec_error(cmd.program, other),
            })?;
            if out.status != 0 {
                return Err(command_error(
                    &cmd,
                    out.status,
                    &String::from_utf8_lossy(&out.stderr),
                    s.activation,
                ));
            }
        }
        let lv = self.require_lv(&name, &format!("volume {}", volume.id))?;
        if lv.size < volume.size_gib * GIB {
            // The volume is a whole number of GiB, as its size says.
            self.run(&Commands(&s).extend(&name, volume.size_gib))?;
        }
        log::info(&format!(
            "managing {}/{name} ({} GiB)",
            s.volume_group, volume.size_gib
        ));
        Ok(ModelUpdate::default())
    }

    fn unmanage(&mut self, volume: Volume) -> Result<()> {
        // Cinder's LVM driver leaves the LV, under its volume name.
        check_id("volume", &volume.id)?;
        log::info(&format!(
            "volume-{} is no longer managed; its LV stays in the volume group",
            volume.id
        ));
        Ok(())
    }

    fn get_manageable_volumes(&mut self) -> Result<Vec<ManageableVolume>> {
        let mut found = Vec::new();
        for lv in self.lvs()? {
            match lv.why_not_manageable() {
                None => found.push(ManageableVolume::named(&lv.name, lv.size)),
                // Cinder lists LVs in use, as not safe; snapshots and LVM's own not at all.
                Some(_) if lv.is_open() && !lv.is_snapshot() && !lv.is_internal() => {
                    found.push(ManageableVolume::named(&lv.name, lv.size).unsafe_because(IN_USE));
                }
                Some(_) => {}
            }
        }
        Ok(found)
    }

    fn create_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<ModelUpdate> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        let s = self.require_activation("a snapshot")?;
        let origin = self.require_lv(&volume_lv(&volume.id), &format!("volume {}", volume.id))?;
        // A thick origin needs room for the changed blocks: as much as the origin, as Cinder.
        let size = (!origin.is_thin()).then(|| origin.size_gib_ceil());
        let name = snapshot_lv(&snapshot.id);
        self.run(&Commands(&s).snapshot(&name, &origin.name, size))?;
        Ok(ModelUpdate::default())
    }

    fn delete_snapshot(&mut self, snapshot: Snapshot, _volume: Volume) -> Result<()> {
        check_id("snapshot", &snapshot.id)?;
        self.delete_snapshot_lv(&snapshot_lv(&snapshot.id), snapshot.volume_size_gib)
    }

    fn create_volume_from_snapshot(
        &mut self,
        volume: Volume,
        snapshot: Snapshot,
    ) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        check_id("snapshot", &snapshot.id)?;
        self.require_activation("a volume from a snapshot")?;
        let snap = self.require_lv(
            &snapshot_lv(&snapshot.id),
            &format!("snapshot {}", snapshot.id),
        )?;
        let lv = volume_lv(&volume.id);
        if snap.is_thin() {
            self.thin_copy(&lv, &snap, volume.size_gib)?;
        } else {
            let len = snapshot.volume_size_gib * GIB;
            self.copy_into_new(&lv, volume.size_gib, &snap.name, len)?;
        }
        log::info(&format!("created {lv} from {}", snap.name));
        Ok(ModelUpdate::default())
    }

    fn create_cloned_volume(&mut self, volume: Volume, source: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        check_id("volume", &source.id)?;
        let s = self.require_activation("a clone")?;
        let origin = self.require_lv(&volume_lv(&source.id), &format!("volume {}", source.id))?;
        let lv = volume_lv(&volume.id);
        if origin.is_thin() {
            self.thin_copy(&lv, &origin, volume.size_gib)?;
        } else {
            // Copy from a snapshot, so the source may stay in use meanwhile.
            let temp = clone_snapshot_lv(&volume.id);
            self.run(&Commands(&s).snapshot(&temp, &origin.name, Some(origin.size_gib_ceil())))?;
            let copied = self.copy_into_new(&lv, volume.size_gib, &temp, source.size_gib * GIB);
            let removed = self.delete_snapshot_lv(&temp, origin.size_gib_ceil());
            copied?;
            if let Err(e) = removed {
                log::warn(&format!("clone made, but {temp} was not removed: {e:?}"));
            }
        }
        log::info(&format!("created {lv} as a clone of {}", origin.name));
        Ok(ModelUpdate::default())
    }

    /// Only the host's own connector is served: the answer is the LV's device node, which
    /// the host hands to the paired target driver. Anyone else must go through the target.
    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo> {
        check_id("volume", &volume.id)?;
        if !is_local(&connector) {
            let backend = config::backend_name();
            return Err(DriverError::not_supported(format!(
                "the lvm driver has no export protocol of its own; pair backend {backend} with \
                 a target driver in a [backends.{backend}.target] section (Cinder's \
                 target_helper), e.g. driver = \"iscsi-tgt\""
            )));
        }
        let s = self.require_activation("attaching a volume")?;
        let name = volume_lv(&volume.id);
        self.require_lv(&name, &format!("volume {}", volume.id))?;
        Ok(ConnectionInfo {
            driver_volume_type: "local".into(),
            data: vec![("device_path".into(), text(s.device_path(&name)))],
        })
    }
}

ashlar_sdk::register_volume_driver!(LvmDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut map: BTreeMap<String, String> = [("volume_group", "vg1"), ("device_dir", "/dev")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        Settings::from_config(|k| map.get(k).cloned()).unwrap()
    }

    fn lv(name: &str, size: u64, attr: &str, pool: &str, pct: Option<f64>) -> LvInfo {
        LvInfo {
            name: name.into(),
            size,
            attr: attr.into(),
            pool_lv: pool.into(),
            origin: String::new(),
            data_percent: pct,
        }
    }

    fn cap<'a>(p: &'a PoolStats, key: &str) -> &'a Value {
        &p.capabilities.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn thick_stats_are_the_volume_groups() {
        let s = settings(&[]);
        let vg = VgInfo {
            name: "vg1".into(),
            size: 10 * GIB,
            free: 7 * GIB,
            lv_count: 2,
        };
        let lvs = [
            lv("volume-a", 2 * GIB, "-wi-a-----", "", None),
            lv("_snapshot-s", GIB, "swi-a-s---", "", Some(0.5)),
        ];
        let p = pool_stats(&s, "h1", &vg, &lvs).unwrap();
        assert_eq!(p.pool_name, "vg1");
        assert_eq!(p.total_capacity_gb, 10.0);
        assert_eq!(p.free_capacity_gb, 7.0);
        assert_eq!(p.provisioned_capacity_gb, Some(3.0));
        assert_eq!(p.allocated_capacity_gb, Some(2.0));
        assert!(p.thick_provisioning_support && !p.thin_provisioning_support);
        assert_eq!(
            cap(&p, "location_info"),
            &Value::Text("LVMVolumeDriver:h1:vg1:default:0".into())
        );
        assert_eq!(cap(&p, "total_volumes"), &Value::Integer(2));
    }

    #[test]
    fn thin_stats_are_the_pools() {
        let s = settings(&[("lvm_type", "thin"), ("max_over_subscription_ratio", "5")]);
        let vg = VgInfo {
            name: "vg1".into(),
            size: 10 * GIB,
            free: GIB,
            lv_count: 3,
        };
        let lvs = [
            lv("vg1-pool", 8 * GIB, "twi-aotz--", "", Some(25.0)),
            lv("volume-a", 20 * GIB, "Vwi-a-tz--", "vg1-pool", Some(5.0)),
            lv("volume-b", 4 * GIB, "Vwi-a-tz--", "vg1-pool", Some(0.0)),
        ];
        let p = pool_stats(&s, "h1", &vg, &lvs).unwrap();
        assert_eq!(p.total_capacity_gb, 8.0);
        assert_eq!(p.free_capacity_gb, 6.0);
        assert_eq!(p.provisioned_capacity_gb, Some(24.0));
        assert_eq!(p.max_over_subscription_ratio, 5.0);
        assert!(p.thin_provisioning_support && !p.thick_provisioning_support);
        let err = pool_stats(&s, "h1", &vg, &lvs[1..]).unwrap_err();
        assert!(matches!(err, DriverError::BackendUnavailable(m) if m.contains("vg1/vg1-pool")));
    }

    #[test]
    fn failures_map_to_what_the_operator_can_do() {
        let s = settings(&[]);
        let c = Commands(&s).create_thick("volume-a", 100);
        let e = command_error(
            &c,
            5,
            "  Volume group \"vg1\" has insufficient free space (10 extents): 25600 required.\n",
            true,
        );
        assert!(
            matches!(&e, DriverError::CapacityExceeded(m) if m.contains("vgextend") && m.contains("lvcreate --yes -n volume-a")),
            "{e:?}"
        );
        let e = command_error(
            &c,
            5,
            "  Volume group \"vg1\" not found\n  Cannot process volume group vg1\n",
            true,
        );
        assert!(
            matches!(&e, DriverError::BackendUnavailable(m) if m.contains("volume_group")),
            "{e:?}"
        );
        let e = command_error(
            &Commands(&s).remove("volume-x"),
            5,
            "File descriptor 9 (/dev/null) leaked on lvremove invocation.\n  Failed to find logical volume \"vg1/volume-x\"\n",
            true,
        );
        assert!(
            matches!(&e, DriverError::NotFound(m) if !m.contains("leaked")),
            "{e:?}"
        );
        let e = command_error(&c, 3, "something odd", true);
        assert!(matches!(&e, DriverError::Internal(m) if m.contains("status 3: something odd")));
        // Without activation, lvm2's device-mapper complaints are noise, not the cause.
        let dm = "  /dev/mapper/control: open failed: No such device\n  \
                  Failure to communicate with kernel device-mapper driver.\n";
        let exists =
            format!("{dm}  Logical Volume \"volume-a\" already exists in volume group \"vg1\"\n");
        let e = command_error(&c, 5, &exists, false);
        assert!(
            matches!(&e, DriverError::Internal(m) if m.contains("already exists") && !m.contains("mapper")),
            "{e:?}"
        );
        let e = command_error(&c, 5, dm, true);
        assert!(
            matches!(&e, DriverError::BackendUnavailable(m) if m.contains("activation = false")),
            "{e:?}"
        );
    }

    #[test]
    fn local_connector_is_recognised() {
        let mut conn = Connector {
            host: "h".into(),
            ip: None,
            initiator: None,
            multipath: false,
            platform: None,
            os_type: None,
            extra: vec![],
        };
        assert!(!is_local(&conn));
        conn.extra.push(("local".into(), Value::Flag(true)));
        assert!(is_local(&conn));
    }

    #[test]
    fn what_cinder_would_not_manage_is_refused() {
        let plain = lv("legacy", 3 * GIB / 2, "-wi-------", "", None);
        assert_eq!(plain.why_not_manageable(), None);
        assert_eq!(plain.size_gib_ceil(), 2);
        let open = lv("busy", GIB, "-wi-ao----", "", None);
        assert!(open.why_not_manageable().unwrap().contains("in use"));
        let snap = lv("s1", GIB, "swi-a-s---", "", None);
        assert!(snap.why_not_manageable().unwrap().contains("snapshot"));
        let pool = lv("pool", GIB, "twi-a-tz--", "", None);
        assert!(pool.why_not_manageable().unwrap().contains("LVM's own"));
        assert!(managed_lv_name(r#"{"source-name": "legacy"}"#).is_ok());
        for bad in [
            r#"{"source-name": "../x"}"#,
            r#"{"source-name": "-x"}"#,
            r#"{"source-id": "1"}"#,
        ] {
            assert!(managed_lv_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_cannot_leave_the_volume_group() {
        assert!(check_id("volume", "0b7a-11ee").is_ok());
        for bad in ["../x", "a/b", "", "a b"] {
            assert!(check_id("volume", bad).is_err(), "{bad}");
        }
    }
}
