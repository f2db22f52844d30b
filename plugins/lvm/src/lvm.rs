//! The lvm2 command lines this driver runs, and the parsing of their JSON reports. Every
//! shape here has a matching `[[capabilities.exec]]` entry in plugin.toml.

use std::fmt;

use crate::settings::Settings;

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

/// The LV of a volume (Cinder's `volume-<id>`).
pub fn volume_lv(id: &str) -> String {
    format!("volume-{id}")
}

/// The LV of a snapshot. LVM reserves names starting with `snapshot`, so Cinder prefixes
/// an underscore.
pub fn snapshot_lv(id: &str) -> String {
    format!("_snapshot-{id}")
}

/// The temporary snapshot a thick clone copies from (Cinder's `clone-snap-<id>`).
pub fn clone_snapshot_lv(volume_id: &str) -> String {
    format!("clone-snap-{volume_id}")
}

/// One program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.program, self.args.join(" "))
    }
}

fn cmd(program: &'static str, args: &[&str]) -> Cmd {
    Cmd {
        program,
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// Builds the command lines for one backend's settings.
pub struct Commands<'a>(pub &'a Settings);

impl Commands<'_> {
    fn vg(&self) -> &str {
        &self.0.volume_group
    }

    fn lv_path(&self, lv: &str) -> String {
        format!("{}/{lv}", self.vg())
    }

    /// Metadata commands get `--driverloaded n` when the host has no device-mapper.
    fn metadata(&self, program: &'static str, args: &[&str]) -> Cmd {
        let mut all = Vec::with_capacity(args.len() + 2);
        if !self.0.activation {
            all.extend(["--driverloaded", "n"]);
        }
        all.extend_from_slice(args);
        cmd(program, &all)
    }

    pub fn vgs(&self) -> Cmd {
        cmd(
            "vgs",
            &[
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "vg_name,vg_size,vg_free,lv_count",
                self.vg(),
            ],
        )
    }

    pub fn lvs(&self) -> Cmd {
        cmd(
            "lvs",
            &[
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "lv_name,lv_size,lv_attr,pool_lv,origin,data_percent",
                self.vg(),
            ],
        )
    }

    /// A thick LV. `--yes` answers LVM's "wipe this signature?" prompt, which would
    /// otherwise fail the create with no terminal to answer it.
    pub fn create_thick(&self, lv: &str, size_gib: u64) -> Cmd {
        let size = format!("{size_gib}g");
        self.metadata("lvcreate", &["--yes", "-n", lv, "-L", &size, self.vg()])
    }

    /// A thin LV in the thin pool.
    pub fn create_thin(&self, lv: &str, size_gib: u64) -> Cmd {
        let size = format!("{size_gib}g");
        let pool = self.lv_path(&self.0.thin_pool);
        cmd("lvcreate", &["-T", "-V", &size, "-n", lv, &pool])
    }

    /// The thin pool (Cinder's `create_thin_pool`).
    pub fn create_thin_pool(&self, size_mib: u64) -> Cmd {
        let size = format!("{size_mib}m");
        let pool = self.lv_path(&self.0.thin_pool);
        cmd("lvcreate", &["-T", "-L", &size, &pool])
    }

    /// A snapshot `name` of `origin`: copy-on-write with an exception store of
    /// `size_gib` for a thick origin, a thin snapshot (no size) for a thin one.
    pub fn snapshot(&self, name: &str, origin: &str, size_gib: Option<u64>) -> Cmd {
        let origin = self.lv_path(origin);
        match size_gib {
            Some(gib) => {
                let size = format!("{gib}g");
                cmd(
                    "lvcreate",
                    &["--name", name, "--snapshot", &origin, "-L", &size],
                )
            }
            None => cmd("lvcreate", &["--name", name, "--snapshot", &origin]),
        }
    }

    /// Activates an LV even if it carries the skip-activation flag thin snapshots get.
    pub fn activate(&self, lv: &str) -> Cmd {
        cmd("lvchange", &["-a", "y", "-K", &self.lv_path(lv)])
    }

    pub fn extend(&self, lv: &str, size_gib: u64) -> Cmd {
        let size = format!("{size_gib}g");
        self.metadata("lvextend", &["-L", &size, &self.lv_path(lv)])
    }

    pub fn remove(&self, lv: &str) -> Cmd {
        self.metadata("lvremove", &["-f", &self.lv_path(lv)])
    }

    /// Renames an LV being managed to its volume's name (Cinder's `rename_volume`).
    pub fn rename(&self, from: &str, to: &str) -> Cmd {
        self.metadata("lvrename", &[self.vg(), from, to])
    }
}

/// One row of `vgs`.
#[derive(Clone, Debug, PartialEq)]
pub struct VgInfo {
    pub name: String,
    pub size: u64,
    pub free: u64,
    pub lv_count: u64,
}

/// One row of `lvs`.
#[derive(Clone, Debug, PartialEq)]
pub struct LvInfo {
    pub name: String,
    pub size: u64,
    pub attr: String,
    /// The thin pool a thin LV lives in; empty for thick LVs.
    pub pool_lv: String,
    pub origin: String,
    /// How full a thin pool or thin LV is, in percent.
    pub data_percent: Option<f64>,
}

impl LvInfo {
    pub fn is_thin_pool(&self) -> bool {
        self.attr.starts_with('t')
    }
    pub fn is_thin(&self) -> bool {
        !self.pool_lv.is_empty() || self.attr.starts_with('V')
    }
    /// The origin of thick snapshots (`o`, or `O` while merging): LVM cannot remove it.
    pub fn has_snapshots(&self) -> bool {
        self.attr.starts_with('o') || self.attr.starts_with('O')
    }
    pub fn size_gib_ceil(&self) -> u64 {
        self.size.div_ceil(GIB)
    }
    /// A snapshot, thick (`s`, `S` once invalid) or thin (a thin LV with an origin).
    pub fn is_snapshot(&self) -> bool {
        self.attr.starts_with('s')
            || self.attr.starts_with('S')
            || (self.is_thin() && !self.origin.is_empty())
    }
    /// Something has its device open (the sixth `lv_attr` character).
    pub fn is_open(&self) -> bool {
        self.attr.chars().nth(5) == Some('o')
    }
    /// LVM's own LVs (a thin pool's data and metadata, mirror legs): `[name]`, or a
    /// thin pool itself.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with('[') || self.is_thin_pool()
    }
    /// Why Cinder would not manage this LV, if it would not.
    pub fn why_not_manageable(&self) -> Option<&'static str> {
        if self.is_internal() {
            Some("it is LVM's own (a thin pool or its parts)")
        } else if self.is_snapshot() || self.name.starts_with("_snapshot-") {
            Some("it is a snapshot; manage the volume it belongs to")
        } else if self.name.starts_with("clone-snap-") {
            Some("it is a temporary snapshot of a clone")
        } else if self.is_open() {
            Some("it is in use (its device is open)")
        } else {
            None
        }
    }
}

fn rows<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a Vec<serde_json::Value>> {
    v.get("report")?.as_array()?.first()?.get(key)?.as_array()
}

fn text(row: &serde_json::Value, key: &str) -> Option<String> {
    Some(row.get(key)?.as_str()?.trim().to_string())
}

fn number(row: &serde_json::Value, key: &str) -> Option<u64> {
    text(row, key)?.parse().ok()
}

/// `vgs --reportformat json --units b --nosuffix` → rows; None if it is not that report.
pub fn parse_vgs(out: &str) -> Option<Vec<VgInfo>> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    rows(&v, "vg")?
        .iter()
        .map(|row| {
            Some(VgInfo {
                name: text(row, "vg_name")?,
                size: number(row, "vg_size")?,
                free: number(row, "vg_free")?,
                lv_count: number(row, "lv_count")?,
            })
        })
        .collect()
}

/// `lvs --reportformat json --units b --nosuffix` → rows; None if it is not that report.
pub fn parse_lvs(out: &str) -> Option<Vec<LvInfo>> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    rows(&v, "lv")?
        .iter()
        .map(|row| {
            Some(LvInfo {
                name: text(row, "lv_name")?,
                size: number(row, "lv_size")?,
                attr: text(row, "lv_attr").unwrap_or_default(),
                pool_lv: text(row, "pool_lv").unwrap_or_default(),
                origin: text(row, "origin").unwrap_or_default(),
                data_percent: text(row, "data_percent").and_then(|p| p.parse().ok()),
            })
        })
        .collect()
}

/// Bytes to zero on a deleted LV: Cinder's `volume_clear_size` (MiB, 0 = all) capped by
/// the volume's size and by the device's, so a write never runs past the end.
pub fn clear_len(volume_bytes: u64, device_bytes: u64, clear_size_mib: u64) -> u64 {
    let wanted = match clear_size_mib {
        0 => volume_bytes,
        mib => volume_bytes.min(mib.saturating_mul(MIB)),
    };
    wanted.min(device_bytes)
}

/// The thin pool Cinder makes: 95% of the free space, the rest left for metadata.
pub fn thin_pool_size_mib(vg_free: u64) -> u64 {
    (vg_free / 100 * 95) / MIB
}

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

    #[test]
    fn command_lines_are_cinders() {
        let s = settings(&[]);
        let c = Commands(&s);
        assert_eq!(
            c.create_thick("volume-a", 2).to_string(),
            "lvcreate --yes -n volume-a -L 2g vg1"
        );
        assert_eq!(
            c.create_thin("volume-a", 2).to_string(),
            "lvcreate -T -V 2g -n volume-a vg1/vg1-pool"
        );
        assert_eq!(
            c.create_thin_pool(950).to_string(),
            "lvcreate -T -L 950m vg1/vg1-pool"
        );
        assert_eq!(
            c.snapshot("_snapshot-s", "volume-a", Some(1)).to_string(),
            "lvcreate --name _snapshot-s --snapshot vg1/volume-a -L 1g"
        );
        assert_eq!(
            c.snapshot("volume-b", "_snapshot-s", None).to_string(),
            "lvcreate --name volume-b --snapshot vg1/_snapshot-s"
        );
        assert_eq!(
            c.activate("volume-b").to_string(),
            "lvchange -a y -K vg1/volume-b"
        );
        assert_eq!(
            c.extend("volume-a", 3).to_string(),
            "lvextend -L 3g vg1/volume-a"
        );
        assert_eq!(c.remove("volume-a").to_string(), "lvremove -f vg1/volume-a");
        assert_eq!(
            c.vgs().to_string(),
            "vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,lv_count vg1"
        );
    }

    #[test]
    fn metadata_only_adds_driverloaded() {
        let s = settings(&[("activation", "false")]);
        let c = Commands(&s);
        assert_eq!(
            c.create_thick("volume-a", 1).to_string(),
            "lvcreate --driverloaded n --yes -n volume-a -L 1g vg1"
        );
        assert_eq!(
            c.extend("volume-a", 2).to_string(),
            "lvextend --driverloaded n -L 2g vg1/volume-a"
        );
        assert_eq!(
            c.remove("volume-a").to_string(),
            "lvremove --driverloaded n -f vg1/volume-a"
        );
        assert!(!c.lvs().args.contains(&"--driverloaded".to_string()));
    }

    #[test]
    fn parses_reports() {
        let vgs = r#"  {
      "report": [
          {
              "vg": [
                  {"vg_name":"probevg", "vg_size":"205520896", "vg_free":"197132288", "lv_count":"1"}
              ]
          }
      ]
  }"#;
        assert_eq!(
            parse_vgs(vgs),
            Some(vec![VgInfo {
                name: "probevg".into(),
                size: 205520896,
                free: 197132288,
                lv_count: 1
            }])
        );
        let lvs = r#"{"report": [{"lv": [
            {"lv_name":"vg1-pool", "lv_size":"1073741824", "lv_attr":"twi-aotz--", "pool_lv":"", "origin":"", "data_percent":"12.50"},
            {"lv_name":"volume-a", "lv_size":"2147483648", "lv_attr":"Vwi-a-tz--", "pool_lv":"vg1-pool", "origin":"", "data_percent":"3.00"},
            {"lv_name":"volume-b", "lv_size":"1073741824", "lv_attr":"owi-a-----", "pool_lv":"", "origin":"", "data_percent":""},
            {"lv_name":"_snapshot-s", "lv_size":"1073741824", "lv_attr":"swi-a-s---", "pool_lv":"", "origin":"volume-b", "data_percent":"0.01"}
        ]}]}"#;
        let lvs = parse_lvs(lvs).unwrap();
        assert_eq!(lvs.len(), 4);
        assert!(lvs[0].is_thin_pool());
        assert_eq!(lvs[0].data_percent, Some(12.5));
        assert!(lvs[1].is_thin() && !lvs[1].has_snapshots());
        assert!(!lvs[2].is_thin() && lvs[2].has_snapshots());
        assert_eq!(lvs[2].data_percent, None);
        assert_eq!(lvs[3].origin, "volume-b");
        assert_eq!(parse_lvs(r#"{"report": [{"lv": []}]}"#), Some(vec![]));
        assert_eq!(parse_lvs("not json"), None);
        assert_eq!(parse_vgs(r#"{"report": [{"lv": []}]}"#), None);
    }

    #[test]
    fn clear_and_pool_sizes() {
        assert_eq!(clear_len(GIB, GIB, 0), GIB, "0 clears the whole volume");
        assert_eq!(clear_len(GIB, GIB, 4), 4 * MIB);
        assert_eq!(clear_len(GIB, GIB, 4096), GIB, "never past the volume");
        assert_eq!(clear_len(2 * GIB, GIB, 0), GIB, "never past the device");
        assert_eq!(thin_pool_size_mib(1000 * MIB), 950);
        assert_eq!(
            LvInfo {
                name: "x".into(),
                size: GIB + 1,
                attr: String::new(),
                pool_lv: String::new(),
                origin: String::new(),
                data_percent: None
            }
            .size_gib_ceil(),
            2
        );
    }
}
