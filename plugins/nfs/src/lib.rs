//! Cinder's NFS driver model as an Ashlar component: each volume is a file named
//! `volume-<id>` on a mounted share (a local directory serves for a single host), raw or
//! qcow2, made and changed with `qemu-img` through the exec capability.
//!
//! Snapshots: on qcow2 volumes they are qcow2 internal snapshots (`snapshot-<id>` inside
//! the volume file, copy-on-write); on raw volumes a sparse copy `snapshot-<id>` beside the
//! volume, since a raw file cannot carry one.
//!
//! Settings (the backend's section of the operator's config):
//! - `share_path` (required): where the share is mounted on this host.
//! - `nfs_export`: the export clients mount, `host:/path` (default `localhost:<share_path>`).
//! - `volume_format`: `raw` (default, Cinder's) or `qcow2`.
//! - `sparse_volumes`: `true` (default) or `false` to preallocate.
//! - `mount_options`: passed to clients in the connection info.
//! - `reserved_percentage` (default 0), `max_over_subscription_ratio` (default 20.0).

use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, ModelUpdate, PoolStats, Result, Snapshot, Value,
    Volume, VolumeDriver, VolumeStats, config, exec, log,
};

const GIB: u64 = 1 << 30;

/// Which on-disk format a volume file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            other => Err(DriverError::invalid_argument(format!(
                "volume_format `{other}` is not supported; use `raw` or `qcow2`"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// The backend's settings, read in `do_setup`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub share_path: String,
    pub export: String,
    pub format: Format,
    pub sparse: bool,
    pub mount_options: Option<String>,
    pub reserved_percentage: u32,
    pub max_over_subscription_ratio: f64,
}

impl Settings {
    /// Parses the settings from `get` (the backend config), naming the bad key on error.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let share_path = get("share_path").ok_or_else(|| {
            DriverError::invalid_argument(
                "the nfs driver needs `share_path`: the directory where the share is mounted",
            )
        })?;
        let share_path = share_path.trim_end_matches('/').to_string();
        if !share_path.starts_with('/') {
            return Err(DriverError::invalid_argument(format!(
                "share_path `{share_path}` must be an absolute path"
            )));
        }
        let export = get("nfs_export").unwrap_or_else(|| format!("localhost:{share_path}"));
        let format = Format::parse(&get("volume_format").unwrap_or_else(|| "raw".into()))?;
        let sparse = parse_bool("sparse_volumes", get("sparse_volumes"), true)?;
        let reserved_percentage = match get("reserved_percentage") {
            None => 0,
            Some(v) => v.parse::<u32>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                DriverError::invalid_argument(format!(
                    "reserved_percentage `{v}` must be a whole number from 0 to 100"
                ))
            })?,
        };
        let max_over_subscription_ratio = match get("max_over_subscription_ratio") {
            None => 20.0,
            Some(v) => v.parse::<f64>().ok().filter(|r| *r >= 1.0).ok_or_else(|| {
                DriverError::invalid_argument(format!(
                    "max_over_subscription_ratio `{v}` must be a number of at least 1.0"
                ))
            })?,
        };
        Ok(Settings {
            share_path,
            export,
            format,
            sparse,
            mount_options: get("mount_options"),
            reserved_percentage,
            max_over_subscription_ratio,
        })
    }

    pub fn volume_path(&self, volume_id: &str) -> String {
        format!("{}/volume-{volume_id}", self.share_path)
    }
    pub fn snapshot_path(&self, snapshot_id: &str) -> String {
        format!("{}/snapshot-{snapshot_id}", self.share_path)
    }
}

fn parse_bool(key: &str, value: Option<String>, default: bool) -> Result<bool> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "yes" | "1") => Ok(true),
        Some("false" | "no" | "0") => Ok(false),
        Some(other) => Err(DriverError::invalid_argument(format!(
            "{key} `{other}` must be true or false"
        ))),
    }
}

/// Ids become file names: refuse anything that is not a plain UUID-like token.
fn check_id(kind: &str, id: &str) -> Result<()> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(DriverError::invalid_argument(format!(
            "{kind} id `{id}` is not a valid id"
        )))
    }
}

/// `df -P -B 1` output → (total bytes, available bytes).
pub fn parse_df(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// `du -sb` output → bytes.
pub fn parse_du(out: &str) -> Option<u64> {
    out.split_whitespace().next()?.parse().ok()
}

/// `qemu-img info --output=json` → (format, virtual size in bytes).
pub fn parse_info(out: &str) -> Option<(String, u64)> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    Some((
        v.get("format")?.as_str()?.to_string(),
        v.get("virtual-size")?.as_u64()?,
    ))
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Builds Cinder's NFS connection info for a volume.
pub fn connection_info(settings: &Settings, volume_id: &str, format: Format) -> ConnectionInfo {
    let mut data = vec![
        ("export".to_string(), text(settings.export.clone())),
        ("name".to_string(), text(format!("volume-{volume_id}"))),
        ("format".to_string(), text(format.as_str())),
        ("volume_id".to_string(), text(volume_id)),
    ];
    if let Some(opts) = &settings.mount_options {
        data.push(("options".to_string(), text(opts.clone())));
    }
    ConnectionInfo {
        driver_volume_type: "nfs".into(),
        data,
    }
}

pub struct NfsDriver {
    settings: Option<Settings>,
}

impl NfsDriver {
    fn settings(&mut self) -> Result<&Settings> {
        if self.settings.is_none() {
            self.settings = Some(Settings::from_config(config::get)?);
        }
        Ok(self.settings.as_ref().expect("set above"))
    }

    /// The share must be there and mounted; `df` tells both.
    fn capacity(&mut self) -> Result<(u64, u64)> {
        let share = self.settings()?.share_path.clone();
        let out = exec::check("df", &["-P", "-B", "1", &share]).map_err(|e| {
            DriverError::backend_unavailable(format!(
                "share {share} is not reachable (is it mounted?): {}",
                error_text(&e)
            ))
        })?;
        parse_df(&out)
            .ok_or_else(|| DriverError::internal(format!("cannot parse df output: {out}")))
    }

    fn info(&mut self, path: &str) -> Result<(Format, u64)> {
        let out = exec::run(
            "qemu-img",
            &["info", "--force-share", "--output=json", path],
        )
        .map_err(|e| exec::from_exec_error("qemu-img", e))?;
        if out.status != 0 {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file") {
                return Err(DriverError::not_found(format!(
                    "{path} does not exist on the share"
                )));
            }
            return Err(DriverError::internal(format!(
                "qemu-img info {path}: {}",
                err.trim()
            )));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (fmt, size) = parse_info(&stdout).ok_or_else(|| {
            DriverError::internal(format!("cannot parse qemu-img info: {stdout}"))
        })?;
        Ok((Format::parse(&fmt)?, size))
    }

    fn create_file(&mut self, path: &str, size_gib: u64) -> Result<()> {
        let s = self.settings()?.clone();
        let prealloc = match (s.sparse, s.format) {
            (true, _) => "preallocation=off",
            (false, Format::Raw) => "preallocation=falloc",
            (false, Format::Qcow2) => "preallocation=metadata",
        };
        let (_, avail) = self.capacity()?;
        if !s.sparse && avail < size_gib * GIB {
            return Err(DriverError::capacity_exceeded(format!(
                "share {} has {} bytes free, a thick {size_gib} GiB volume needs {}",
                s.share_path,
                avail,
                size_gib * GIB
            )));
        }
        let size = (size_gib * GIB).to_string();
        exec::check(
            "qemu-img",
            &[
                "create",
                "-f",
                s.format.as_str(),
                "-o",
                prealloc,
                path,
                &size,
            ],
        )?;
        Ok(())
    }

    fn resize(&mut self, path: &str, format: Format, size_gib: u64) -> Result<()> {
        let size = (size_gib * GIB).to_string();
        exec::check("qemu-img", &["resize", "-f", format.as_str(), path, &size])?;
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        exec::check("rm", &["-f", path])?;
        Ok(())
    }

    /// Copies `src` into a new volume file, then grows it to `size_gib` if larger.
    fn copy_into_volume(
        &mut self,
        src: &str,
        src_format: Format,
        volume: &Volume,
    ) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let s = self.settings()?.clone();
        let dst = s.volume_path(&volume.id);
        let result = exec::check(
            "qemu-img",
            &[
                "convert",
                "-f",
                src_format.as_str(),
                "-O",
                s.format.as_str(),
                src,
                &dst,
            ],
        )
        .and_then(|_| {
            let (_, size) = self.info(&dst)?;
            if size < volume.size_gib * GIB {
                self.resize(&dst, s.format, volume.size_gib)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            // Leave nothing half-made behind.
            let _ = self.remove(&dst);
            return Err(e);
        }
        Ok(ModelUpdate::at(s.export))
    }
}

fn error_text(e: &DriverError) -> String {
    match e {
        DriverError::NotFound(m)
        | DriverError::InvalidArgument(m)
        | DriverError::NotSupported(m)
        | DriverError::CapacityExceeded(m)
        | DriverError::BackendUnavailable(m)
        | DriverError::Internal(m) => m.clone(),
    }
}

impl VolumeDriver for NfsDriver {
    fn new() -> Self {
        NfsDriver { settings: None }
    }

    fn do_setup(&mut self) -> Result<()> {
        self.settings = Some(Settings::from_config(config::get)?);
        Ok(())
    }

    fn check_for_setup_error(&mut self) -> Result<()> {
        self.capacity().map(|_| ())
    }

    fn get_volume_stats(&mut self, _refresh: bool) -> Result<VolumeStats> {
        let (total, avail) = self.capacity()?;
        let s = self.settings()?.clone();
        let provisioned = exec::check("du", &["-sb", "--apparent-size", &s.share_path])
            .ok()
            .and_then(|o| parse_du(&o))
            .unwrap_or(0);
        let gb = |b: u64| (b as f64 / GIB as f64 * 100.0).round() / 100.0;
        let pool = PoolStats {
            pool_name: s.export.clone(),
            total_capacity_gb: gb(total),
            free_capacity_gb: gb(avail),
            provisioned_capacity_gb: Some(gb(provisioned)),
            allocated_capacity_gb: Some(gb(provisioned)),
            reserved_percentage: s.reserved_percentage,
            max_over_subscription_ratio: s.max_over_subscription_ratio,
            thin_provisioning_support: s.sparse,
            thick_provisioning_support: !s.sparse,
            multiattach: false,
            capabilities: vec![
                ("volume_format".into(), text(s.format.as_str())),
                ("sparse_volumes".into(), Value::Flag(s.sparse)),
                ("snapshot_support".into(), Value::Flag(true)),
            ],
        };
        Ok(VolumeStats {
            volume_backend_name: config::backend_name(),
            vendor_name: "Open Source".into(),
            driver_version: env!("CARGO_PKG_VERSION").into(),
            storage_protocol: "nfs".into(),
            pools: vec![pool],
        })
    }

    fn create_volume(&mut self, volume: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let path = self.settings()?.volume_path(&volume.id);
        if let Err(e) = self.create_file(&path, volume.size_gib) {
            let _ = self.remove(&path);
            return Err(e);
        }
        log::info(&format!(
            "created volume-{} ({} GiB)",
            volume.id, volume.size_gib
        ));
        Ok(ModelUpdate::at(self.settings()?.export.clone()))
    }

    fn delete_volume(&mut self, volume: Volume) -> Result<()> {
        check_id("volume", &volume.id)?;
        let path = self.settings()?.volume_path(&volume.id);
        self.remove(&path)
    }

    fn extend_volume(&mut self, volume: Volume, new_size_gib: u64) -> Result<()> {
        check_id("volume", &volume.id)?;
        let path = self.settings()?.volume_path(&volume.id);
        let (format, size) = self.info(&path)?;
        if new_size_gib * GIB < size {
            return Err(DriverError::invalid_argument(format!(
                "cannot shrink volume-{} from {size} bytes to {new_size_gib} GiB",
                volume.id
            )));
        }
        self.resize(&path, format, new_size_gib)
    }

    fn create_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<ModelUpdate> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        let s = self.settings()?.clone();
        let vol_path = s.volume_path(&volume.id);
        let (format, _) = self.info(&vol_path)?;
        match format {
            Format::Qcow2 => {
                let name = format!("snapshot-{}", snapshot.id);
                exec::check("qemu-img", &["snapshot", "-c", &name, &vol_path])?;
                Ok(ModelUpdate::at(format!("{vol_path}@{name}")))
            }
            Format::Raw => {
                let snap_path = s.snapshot_path(&snapshot.id);
                let res = exec::check(
                    "qemu-img",
                    &["convert", "-f", "raw", "-O", "raw", &vol_path, &snap_path],
                );
                if let Err(e) = res {
                    let _ = self.remove(&snap_path);
                    return Err(e);
                }
                Ok(ModelUpdate::at(snap_path))
            }
        }
    }

    fn delete_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<()> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        let s = self.settings()?.clone();
        let vol_path = s.volume_path(&volume.id);
        match self.info(&vol_path) {
            Ok((Format::Qcow2, _)) => {
                let name = format!("snapshot-{}", snapshot.id);
                let out = exec::run("qemu-img", &["snapshot", "-d", &name, &vol_path])
                    .map_err(|e| exec::from_exec_error("qemu-img", e))?;
                let err = String::from_utf8_lossy(&out.stderr);
                // Already gone is what a delete wants.
                if out.status != 0 && !err.contains("not found") && !err.contains("Can't find") {
                    return Err(DriverError::internal(format!(
                        "qemu-img snapshot -d: {}",
                        err.trim()
                    )));
                }
                Ok(())
            }
            _ => self.remove(&s.snapshot_path(&snapshot.id)),
        }
    }

    fn create_volume_from_snapshot(
        &mut self,
        volume: Volume,
        snapshot: Snapshot,
    ) -> Result<ModelUpdate> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &snapshot.volume_id)?;
        check_id("volume", &volume.id)?;
        let s = self.settings()?.clone();
        let src_vol = s.volume_path(&snapshot.volume_id);
        let snap_path = s.snapshot_path(&snapshot.id);
        if self.info(&snap_path).is_ok() {
            return self.copy_into_volume(&snap_path, Format::Raw, &volume);
        }
        // A qcow2 internal snapshot inside the source volume's file.
        let dst = s.volume_path(&volume.id);
        let sel = format!("snapshot.name=snapshot-{}", snapshot.id);
        let res = exec::check(
            "qemu-img",
            &[
                "convert", "-f", "qcow2", "-l", &sel, "-O", "qcow2", &src_vol, &dst,
            ],
        )
        .and_then(|_| {
            let (_, size) = self.info(&dst)?;
            if size < volume.size_gib * GIB {
                self.resize(&dst, Format::Qcow2, volume.size_gib)?;
            }
            Ok(())
        });
        if let Err(e) = res {
            let _ = self.remove(&dst);
            return Err(e);
        }
        Ok(ModelUpdate::at(s.export))
    }

    fn create_cloned_volume(&mut self, volume: Volume, source: Volume) -> Result<ModelUpdate> {
        check_id("volume", &source.id)?;
        let src = self.settings()?.volume_path(&source.id);
        let (format, _) = self.info(&src)?;
        self.copy_into_volume(&src, format, &volume)
    }

    fn initialize_connection(
        &mut self,
        volume: Volume,
        _connector: Connector,
    ) -> Result<ConnectionInfo> {
        check_id("volume", &volume.id)?;
        let path = self.settings()?.volume_path(&volume.id);
        let (format, _) = self.info(&path)?;
        Ok(connection_info(self.settings()?, &volume.id, format))
    }

    fn revert_to_snapshot(&mut self, volume: Volume, snapshot: Snapshot) -> Result<()> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        let s = self.settings()?.clone();
        let vol_path = s.volume_path(&volume.id);
        match self.info(&vol_path)? {
            (Format::Qcow2, _) => {
                let name = format!("snapshot-{}", snapshot.id);
                exec::check("qemu-img", &["snapshot", "-a", &name, &vol_path])?;
            }
            (Format::Raw, _) => {
                let snap_path = s.snapshot_path(&snapshot.id);
                exec::check(
                    "qemu-img",
                    &["convert", "-f", "raw", "-O", "raw", &snap_path, &vol_path],
                )?;
            }
        }
        Ok(())
    }
}

ashlar_sdk::register_volume_driver!(NfsDriver);

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

    #[test]
    fn settings_defaults_and_errors() {
        let s = settings(&[("share_path", "/srv/share/")]).unwrap();
        assert_eq!(s.share_path, "/srv/share");
        assert_eq!(s.export, "localhost:/srv/share");
        assert_eq!(s.format, Format::Raw);
        assert!(s.sparse);
        assert_eq!(s.volume_path("abc"), "/srv/share/volume-abc");

        let err = settings(&[]).unwrap_err();
        assert!(matches!(err, DriverError::InvalidArgument(m) if m.contains("share_path")));
        let err = settings(&[("share_path", "/s"), ("volume_format", "vmdk")]).unwrap_err();
        assert!(matches!(err, DriverError::InvalidArgument(m) if m.contains("vmdk")));
        let err = settings(&[("share_path", "relative")]).unwrap_err();
        assert!(matches!(err, DriverError::InvalidArgument(m) if m.contains("absolute")));
        let err = settings(&[("share_path", "/s"), ("reserved_percentage", "101")]).unwrap_err();
        assert!(
            matches!(err, DriverError::InvalidArgument(m) if m.contains("reserved_percentage"))
        );
    }

    #[test]
    fn parses_tool_output() {
        let df = "Filesystem     1-blocks      Used  Available Capacity Mounted on\n/dev/vda 270553939968 11811160064 85899345920 13% /\n";
        assert_eq!(parse_df(df), Some((270553939968, 85899345920)));
        assert_eq!(parse_df("garbage"), None);
        assert_eq!(parse_du("1073741824\t/srv/share\n"), Some(1073741824));
        let info = r#"{"virtual-size": 2147483648, "filename": "x", "format": "qcow2"}"#;
        assert_eq!(parse_info(info), Some(("qcow2".into(), 2147483648)));
    }

    #[test]
    fn ids_cannot_escape_the_share() {
        assert!(check_id("volume", "0b7a-11ee").is_ok());
        assert!(check_id("volume", "../etc").is_err());
        assert!(check_id("volume", "a/b").is_err());
        assert!(check_id("volume", "").is_err());
    }

    #[test]
    fn connection_info_is_cinders_shape() {
        let s = settings(&[
            ("share_path", "/srv"),
            ("nfs_export", "10.0.0.1:/srv"),
            ("mount_options", "vers=3"),
        ])
        .unwrap();
        let ci = connection_info(&s, "v1", Format::Qcow2);
        assert_eq!(ci.driver_volume_type, "nfs");
        let get = |k: &str| {
            ci.data
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("export"), Some(Value::Text("10.0.0.1:/srv".into())));
        assert_eq!(get("name"), Some(Value::Text("volume-v1".into())));
        assert_eq!(get("format"), Some(Value::Text("qcow2".into())));
        assert_eq!(get("options"), Some(Value::Text("vers=3".into())));
    }
}
