//! The backend's settings, in Cinder's option names where Cinder has one.

use ashlar_sdk::{DriverError, Result, parse_bool};

/// Cinder's `lvm_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LvmType {
    /// `default`: thick LVs, space taken at creation.
    Thick,
    /// `thin`: thin LVs in a thin pool, space taken as written.
    Thin,
}

impl LvmType {
    pub fn as_str(self) -> &'static str {
        match self {
            LvmType::Thick => "default",
            LvmType::Thin => "thin",
        }
    }
}

/// Cinder's `volume_clear`: what happens to a deleted LV's blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeClear {
    Zero,
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub volume_group: String,
    /// Where LVM makes device nodes: an LV's is `<device_dir>/<vg>/<lv>`.
    pub device_dir: String,
    pub lvm_type: LvmType,
    pub thin_pool: String,
    pub max_over_subscription_ratio: f64,
    pub reserved_percentage: u32,
    pub volume_clear: VolumeClear,
    /// MiB zeroed at the start of a deleted LV; 0 means all of it.
    pub volume_clear_size_mib: u64,
    /// False passes `--driverloaded n`: metadata only, for hosts without device-mapper.
    pub activation: bool,
    /// `storage_protocol` in the stats: the paired target's protocol.
    pub storage_protocol: String,
}

/// LVM's rule for VG and LV names (a subset: no leading `-`, no `.`/`..`).
pub fn valid_lvm_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'_' | b'.' | b'-'))
}

impl Settings {
    /// Parses the settings from `get` (the backend config), naming the bad key on error.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let volume_group = get("volume_group").ok_or_else(|| {
            DriverError::invalid_argument(
                "the lvm driver needs `volume_group`: the LVM volume group its volumes live in \
                 (Cinder's default is `cinder-volumes`)",
            )
        })?;
        if !valid_lvm_name(&volume_group) {
            return Err(DriverError::invalid_argument(format!(
                "volume_group `{volume_group}` is not a valid LVM volume group name \
                 (letters, digits, `+_.-`, not starting with `-`)"
            )));
        }
        let device_dir = get("device_dir").ok_or_else(|| {
            DriverError::invalid_argument(
                "the lvm driver needs `device_dir`: the directory under which LVM makes device \
                 nodes (`/dev` on a normal host)",
            )
        })?;
        let device_dir = match device_dir.trim_end_matches('/') {
            "" => "/".to_string(),
            d => d.to_string(),
        };
        if !device_dir.starts_with('/') {
            return Err(DriverError::invalid_argument(format!(
                "device_dir `{device_dir}` must be an absolute path (normally `/dev`)"
            )));
        }
        let lvm_type = match get("lvm_type").as_deref().unwrap_or("default") {
            "default" | "thick" => LvmType::Thick,
            "thin" => LvmType::Thin,
            other => {
                return Err(DriverError::invalid_argument(format!(
                    "lvm_type `{other}` is not supported; use `default` (thick) or `thin`"
                )));
            }
        };
        let thin_pool = get("thin_pool_name").unwrap_or_else(|| format!("{volume_group}-pool"));
        if !valid_lvm_name(&thin_pool) {
            return Err(DriverError::invalid_argument(format!(
                "thin_pool_name `{thin_pool}` is not a valid LVM logical volume name"
            )));
        }
        // Cinder's older option name wins when both are set.
        let ratio_key = if get("lvm_max_over_subscription_ratio").is_some() {
            "lvm_max_over_subscription_ratio"
        } else {
            "max_over_subscription_ratio"
        };
        let max_over_subscription_ratio = match get(ratio_key) {
            None => 20.0,
            Some(v) => v.parse::<f64>().ok().filter(|r| *r >= 1.0).ok_or_else(|| {
                DriverError::invalid_argument(format!(
                    "{ratio_key} `{v}` must be a number of at least 1.0"
                ))
            })?,
        };
        let reserved_percentage = match get("reserved_percentage") {
            None => 0,
            Some(v) => v.parse::<u32>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                DriverError::invalid_argument(format!(
                    "reserved_percentage `{v}` must be a whole number from 0 to 100"
                ))
            })?,
        };
        let volume_clear = match get("volume_clear").as_deref().unwrap_or("zero") {
            "zero" => VolumeClear::Zero,
            "none" => VolumeClear::None,
            other => {
                return Err(DriverError::invalid_argument(format!(
                    "volume_clear `{other}` is not supported; use `zero` or `none`"
                )));
            }
        };
        let volume_clear_size_mib = match get("volume_clear_size") {
            None => 0,
            Some(v) => v.parse::<u64>().map_err(|_| {
                DriverError::invalid_argument(format!(
                    "volume_clear_size `{v}` must be a whole number of MiB (0 clears all of it)"
                ))
            })?,
        };
        let activation = parse_bool("activation", get("activation"), true)?;
        if !activation && lvm_type == LvmType::Thin {
            return Err(DriverError::invalid_argument(
                "lvm_type = thin needs device-mapper, but activation = false says this host has \
                 none; use lvm_type = default, or activation = true on a host with device-mapper",
            ));
        }
        let storage_protocol = match get("target_protocol").as_deref().unwrap_or("iscsi") {
            "iscsi" => "iSCSI",
            "iser" => "iSER",
            "nvmet_rdma" | "nvmet_tcp" => "NVMe-oF",
            "fc" => "FC",
            other => {
                return Err(DriverError::invalid_argument(format!(
                    "target_protocol `{other}` is not known; use iscsi, iser, nvmet_rdma, \
                     nvmet_tcp or fc (the protocol of the paired target driver)"
                )));
            }
        }
        .to_string();
        Ok(Settings {
            volume_group,
            device_dir,
            lvm_type,
            thin_pool,
            max_over_subscription_ratio,
            reserved_percentage,
            volume_clear,
            volume_clear_size_mib,
            activation,
            storage_protocol,
        })
    }

    /// The device node of an LV, as LVM makes it (`/dev/<vg>/<lv>`).
    pub fn device_path(&self, lv: &str) -> String {
        format!("{}/{}/{lv}", self.dir_prefix(), self.volume_group)
    }

    /// The device-mapper node of a thick snapshot's exception store, which holds the
    /// origin's old blocks (`/dev/mapper/<vg>-<lv>-cow`, dashes doubled).
    pub fn cow_path(&self, lv: &str) -> String {
        format!(
            "{}/mapper/{}-{}-cow",
            self.dir_prefix(),
            self.volume_group.replace('-', "--"),
            lv.replace('-', "--")
        )
    }

    fn dir_prefix(&self) -> &str {
        if self.device_dir == "/" {
            ""
        } else {
            &self.device_dir
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_config(|k| map.get(k).cloned())
    }

    fn invalid(pairs: &[(&str, &str)]) -> String {
        match settings(pairs).unwrap_err() {
            DriverError::InvalidArgument(m) => m,
            other => panic!("expected invalid-argument, got {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_cinder() {
        let s = settings(&[("volume_group", "cinder-volumes"), ("device_dir", "/dev/")]).unwrap();
        assert_eq!(s.device_dir, "/dev");
        assert_eq!(s.lvm_type, LvmType::Thick);
        assert_eq!(s.thin_pool, "cinder-volumes-pool");
        assert_eq!(s.max_over_subscription_ratio, 20.0);
        assert_eq!(s.volume_clear, VolumeClear::Zero);
        assert_eq!(s.volume_clear_size_mib, 0);
        assert!(s.activation);
        assert_eq!(s.storage_protocol, "iSCSI");
        assert_eq!(s.device_path("volume-1"), "/dev/cinder-volumes/volume-1");
        assert_eq!(
            s.cow_path("_snapshot-a-b"),
            "/dev/mapper/cinder--volumes-_snapshot--a--b-cow"
        );
    }

    #[test]
    fn every_setting_is_read() {
        let s = settings(&[
            ("volume_group", "vg0"),
            ("device_dir", "/srv/devs"),
            ("lvm_type", "thin"),
            ("thin_pool_name", "tp"),
            ("lvm_max_over_subscription_ratio", "4"),
            ("max_over_subscription_ratio", "8"),
            ("reserved_percentage", "10"),
            ("volume_clear", "none"),
            ("volume_clear_size", "16"),
            ("target_protocol", "nvmet_tcp"),
        ])
        .unwrap();
        assert_eq!(s.lvm_type, LvmType::Thin);
        assert_eq!(s.thin_pool, "tp");
        assert_eq!(s.max_over_subscription_ratio, 4.0);
        assert_eq!(s.reserved_percentage, 10);
        assert_eq!(s.volume_clear, VolumeClear::None);
        assert_eq!(s.volume_clear_size_mib, 16);
        assert_eq!(s.storage_protocol, "NVMe-oF");
        assert_eq!(s.device_path("volume-x"), "/srv/devs/vg0/volume-x");
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert!(invalid(&[("device_dir", "/dev")]).contains("volume_group"));
        assert!(invalid(&[("volume_group", "vg")]).contains("device_dir"));
        let base = [("volume_group", "vg"), ("device_dir", "/dev")];
        let with = |k: &'static str, v: &'static str| {
            let mut p = base.to_vec();
            p.push((k, v));
            invalid(&p)
        };
        assert!(with("lvm_type", "auto").contains("lvm_type `auto`"));
        assert!(with("volume_clear", "shred").contains("volume_clear `shred`"));
        assert!(with("volume_clear_size", "-1").contains("volume_clear_size"));
        assert!(with("max_over_subscription_ratio", "0.5").contains("at least 1.0"));
        assert!(with("reserved_percentage", "101").contains("reserved_percentage"));
        assert!(with("activation", "maybe").contains("activation"));
        assert!(with("target_protocol", "smoke").contains("target_protocol"));
        assert!(with("thin_pool_name", "a/b").contains("thin_pool_name"));
        assert!(invalid(&[("volume_group", "-vg"), ("device_dir", "/dev")]).contains("-vg"));
        assert!(invalid(&[("volume_group", "vg"), ("device_dir", "dev")]).contains("absolute"));
        let mut thin_no_dm = base.to_vec();
        thin_no_dm.extend([("lvm_type", "thin"), ("activation", "false")]);
        assert!(invalid(&thin_no_dm).contains("device-mapper"));
    }

    #[test]
    fn lvm_names() {
        for ok in ["vg", "cinder-volumes", "a.b+c_d"] {
            assert!(valid_lvm_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".", "..", "a/b", "a b", "a\0"] {
            assert!(!valid_lvm_name(bad), "{bad:?}");
        }
    }
}
