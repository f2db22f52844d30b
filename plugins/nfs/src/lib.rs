//! Cinder's NFS driver model as an Ashlar component: each volume is a file named
//! `volume-<id>` on a mounted share (a local directory serves for a single host), raw or
//! qcow2, made and changed with `qemu-img` through the exec capability.
//!
//! Snapshots: on qcow2 volumes they are qcow2 internal snapshots (`snapshot-<id>` inside
//! the volume file, copy-on-write); on raw volumes a sparse copy `snapshot-<id>` beside the
//! volume, since a raw file cannot carry one.
//!
//! Every operation first asks `df` about the share: a share that is missing, or not mounted
//! when `require_mount` says it must be, answers backend-unavailable before anything is
//! written, so nothing lands in the empty directory under an unmounted share and a delete
//! never "succeeds" against it. A share that cannot hold what an operation would write
//! answers capacity-exceeded, checked up front and again from `qemu-img`'s ENOSPC.
//!
//! Settings (the backend's section of the operator's config):
//! - `share_path` (required): where the share is mounted on this host.
//! - `nfs_export`: the export clients mount, `host:/path` (default `localhost:<share_path>`).
//! - `require_mount`: `true` to refuse to work unless `share_path` is itself a mount point
//!   (default `false`, so a plain local directory serves a single host).
//! - `volume_format`: `raw` (default, Cinder's) or `qcow2`.
//! - `sparse_volumes`: `true` (default) or `false` to preallocate.
//! - `mount_options`: passed to clients in the connection info.
//! - `reserved_percentage` (default 0), `max_over_subscription_ratio` (default 20.0).
//!
//! Managing existing files (Cinder's `manage_existing`): the reference names a file in the
//! share, `{"source-name": "FILE"}` (Cinder's own `EXPORT/FILE` form is read too); its
//! size is its virtual size rounded up to whole GiB, and managing it renames it to
//! `volume-<id>` with `mv` (a program the manifest asks for as optional: a backend not
//! granted it answers not-supported) and grows it to that size. Unmanaging leaves the
//! file as it is. The listing shows every file of the share but snapshots, unsafe when
//! something holds it open for writing (qemu's image lock) or it is a volume's.

use ashlar_sdk::manage::{IN_USE, Reference, gib_rounded_up};
use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, ManageableVolume, ModelUpdate, PoolStats, Result,
    Snapshot, Value, Volume, VolumeDriver, VolumeStats, check_id, config, exec, log, parse_bool,
};

const GIB: u64 = 1 << 30;

/// Below this many usable bytes a share counts as full even for a thin volume: its first
/// writes (and a qcow2 file's metadata) would fail at once.
const MIN_USABLE_BYTES: u64 = 1 << 20;

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
    pub require_mount: bool,
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
        let export = match get("nfs_export") {
            Some(e) => {
                split_export(&e).ok_or_else(|| {
                    DriverError::invalid_argument(format!(
                        "nfs_export `{e}` is not an NFS export; write it as `host:/path` \
                         (an IPv6 host in brackets: `[::1]:/path`)"
                    ))
                })?;
                e.trim_end_matches('/').to_string()
            }
            None => format!("localhost:{share_path}"),
        };
        let format = Format::parse(&get("volume_format").unwrap_or_else(|| "raw".into()))?;
        let sparse = parse_bool("sparse_volumes", get("sparse_volumes"), true)?;
        let require_mount = parse_bool("require_mount", get("require_mount"), false)?;
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
            require_mount,
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

/// `host:/path` → (host, path); `[v6]:/path` keeps the brackets on the host.
pub fn split_export(export: &str) -> Option<(&str, &str)> {
    let (host, path) = if export.starts_with('[') {
        let end = export.find("]:")?;
        (&export[..=end], &export[end + 2..])
    } else {
        export.split_once(':')?
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (!bare.is_empty() && !host.contains('/') && path.starts_with('/')).then_some((host, path))
}

/// What `df -P -B 1` says about the filesystem holding the share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareUsage {
    pub filesystem: String,
    pub total: u64,
    pub available: u64,
    /// Where that filesystem is mounted; the share itself when the share is mounted.
    pub mount_point: String,
}

/// `df -P -B 1` output → the share's filesystem, sizes and mount point (which may hold
/// spaces: it is everything after the fifth column).
pub fn parse_df(out: &str) -> Option<ShareUsage> {
    let mut rest = out.lines().nth(1)?;
    let mut fields = Vec::with_capacity(5);
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let mount_point = rest.trim();
    if mount_point.is_empty() {
        return None;
    }
    Some(ShareUsage {
        filesystem: fields[0].to_string(),
        total: fields[1].parse().ok()?,
        available: fields[3].parse().ok()?,
        mount_point: mount_point.to_string(),
    })
}

/// `du -sb` output → bytes.
pub fn parse_du(out: &str) -> Option<u64> {
    out.split_whitespace().next()?.parse().ok()
}

/// What `qemu-img info --output=json` says about an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: String,
    pub virtual_size: u64,
    /// Bytes the file takes on the share (what a copy of its data needs at most).
    pub actual_size: u64,
}

pub fn parse_info(out: &str) -> Option<ImageInfo> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    Some(ImageInfo {
        format: v.get("format")?.as_str()?.to_string(),
        virtual_size: v.get("virtual-size")?.as_u64()?,
        actual_size: v.get("actual-size").and_then(|s| s.as_u64()).unwrap_or(0),
    })
}

/// A failure of the share itself, read from a program's stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareFault {
    /// ENOSPC or EDQUOT.
    Full,
    /// EROFS: mounted (or exported) read-only.
    ReadOnly,
    /// EACCES/EPERM: root squashed, or the directory's owner or mode.
    PermissionDenied,
    /// ESTALE: the export went away under the mount.
    Stale,
    /// ENOENT on the share (the volume's file or the share directory).
    Missing,
}

pub fn classify(stderr: &str) -> Option<ShareFault> {
    let e = stderr.to_ascii_lowercase();
    if e.contains("no space left on device") || e.contains("disk quota exceeded") {
        Some(ShareFault::Full)
    } else if e.contains("read-only file system") {
        Some(ShareFault::ReadOnly)
    } else if e.contains("permission denied") || e.contains("operation not permitted") {
        Some(ShareFault::PermissionDenied)
    } else if e.contains("stale file handle") || e.contains("stale nfs file handle") {
        Some(ShareFault::Stale)
    } else if e.contains("no such file or directory") {
        Some(ShareFault::Missing)
    } else {
        None
    }
}

/// Bytes for an operator: `15.9 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The capacity-exceeded message: what is full, by how much, and what to do.
pub fn share_full_message(settings: &Settings, usage: Option<&ShareUsage>, need: &str) -> String {
    let figures = match usage {
        Some(u) => format!(
            " ({} usable of {})",
            human(usable(settings, u)),
            human(u.total)
        ),
        None => String::new(),
    };
    format!(
        "share {} ({}) is full{figures}{need}. Free space on it (delete volumes and snapshots \
         that are no longer needed), grow the export, or place volumes elsewhere",
        settings.share_path, settings.export
    )
}

/// Available bytes less the reserved percentage of the total.
pub fn usable(settings: &Settings, usage: &ShareUsage) -> u64 {
    let reserved = u128::from(usage.total) * u128::from(settings.reserved_percentage) / 100;
    usage.available.saturating_sub(reserved as u64)
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Builds Cinder's NFS connection info for a volume: a client mounts `export` (with
/// `options`) and opens `name` in it as `format`.
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

/// The host asks for the file itself (`extra` has `local = true`) when a target driver is
/// to export the volume.
pub fn wants_local(connector: &Connector) -> bool {
    connector
        .extra
        .iter()
        .any(|(k, v)| k == "local" && *v == Value::Flag(true))
}

pub struct NfsDriver {
    settings: Option<Settings>,
}

/// How long `df` may take to describe the share.
const DF_TIMEOUT_MS: u32 = 15_000;

impl NfsDriver {
    fn settings(&mut self) -> Result<&Settings> {
        if self.settings.is_none() {
            self.settings = Some(Settings::from_config(config::get)?);
        }
        Ok(self.settings.as_ref().expect("set above"))
    }

    /// Asks `df` about the share: it must exist, be mounted when `require_mount` is set,
    /// and answer. Every operation starts here.
    fn share(&mut self) -> Result<ShareUsage> {
        let s = self.settings()?.clone();
        let share = &s.share_path;
        // A hard mount whose server is gone hangs `df`; give up long before the call's
        // deadline and say the share is not answering.
        let out = exec::run_with_timeout("df", &["-P", "-B", "1", share], DF_TIMEOUT_MS).map_err(
            |e| {
                DriverError::backend_unavailable(format!(
                    "cannot check share {share}: {}",
                    error_text(&exec::from_exec_error("df", e))
                ))
            },
        )?;
        if out.status != 0 {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(DriverError::backend_unavailable(match classify(&err) {
                Some(ShareFault::Missing) => format!(
                    "share {share} does not exist on this host: mount the NFS export {} at \
                     {share} (or, for a local share, create the directory), or correct \
                     share_path",
                    s.export
                ),
                Some(ShareFault::Stale) => format!(
                    "share {share} has a stale file handle: the export {} went away under the \
                     mount; unmount and mount it again",
                    s.export
                ),
                _ => format!(
                    "share {share} cannot be checked (df: {}): make sure the export {} is \
                     mounted there and its server answers",
                    err.trim(),
                    s.export
                ),
            }));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let usage = parse_df(&stdout)
            .ok_or_else(|| DriverError::internal(format!("cannot parse df output: {stdout}")))?;
        if s.require_mount && usage.mount_point != *share {
            return Err(DriverError::backend_unavailable(format!(
                "share {share} is not mounted: it is a plain directory on {} (mounted at {}); \
                 mount the NFS export {} at {share}, or set require_mount = false if a local \
                 directory is meant",
                usage.filesystem, usage.mount_point, s.export
            )));
        }
        Ok(usage)
    }

    /// Refuses when the share cannot take `need` more bytes (0: a thin volume's first
    /// writes) beyond its reserved part.
    fn ensure_room(&mut self, usage: &ShareUsage, need: u64, what: &str) -> Result<()> {
        let s = self.settings()?;
        let have = usable(s, usage);
        if have < need.max(MIN_USABLE_BYTES) {
            let need = if need > 0 {
                format!("; {what} needs {}", human(need))
            } else {
                format!("; {what} needs room for its first writes")
            };
            return Err(DriverError::capacity_exceeded(share_full_message(
                s,
                Some(usage),
                &need,
            )));
        }
        Ok(())
    }

    /// Runs a granted program; a failure that is the share's own (full, read-only, …)
    /// becomes the error an operator can act on.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<String> {
        let out = exec::run(program, args).map_err(|e| exec::from_exec_error(program, e))?;
        if out.status == 0 {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let command = format!("{program} {}", args.join(" "));
        Err(self.share_error(&command, &err))
    }

    fn share_error(&mut self, command: &str, stderr: &str) -> DriverError {
        let s = match self.settings() {
            Ok(s) => s.clone(),
            Err(e) => return e,
        };
        let share = &s.share_path;
        match classify(stderr) {
            Some(ShareFault::Full) => {
                let usage = self.share().ok();
                DriverError::capacity_exceeded(share_full_message(
                    &s,
                    usage.as_ref(),
                    &format!("; `{command}` failed: {stderr}"),
                ))
            }
            Some(ShareFault::ReadOnly) => DriverError::backend_unavailable(format!(
                "share {share} is read-only (`{command}`: {stderr}): mount the export {} \
                 read-write, and check that the server exports it read-write",
                s.export
            )),
            Some(ShareFault::PermissionDenied) => DriverError::backend_unavailable(format!(
                "share {share} refuses writes from this host (`{command}`: {stderr}): the \
                 export {} must not squash root (no_root_squash, or Squash = No_Root_Squash \
                 in nfs-ganesha) and the directory must be writable",
                s.export
            )),
            Some(ShareFault::Stale) => DriverError::backend_unavailable(format!(
                "share {share} has a stale file handle (`{command}`): unmount and mount the \
                 export {} again",
                s.export
            )),
            Some(ShareFault::Missing) | None => {
                DriverError::internal(format!("`{command}` failed: {stderr}"))
            }
        }
    }

    fn info(&mut self, path: &str) -> Result<(Format, ImageInfo)> {
        let out = exec::run(
            "qemu-img",
            &["info", "--force-share", "--output=json", path],
        )
        .map_err(|e| exec::from_exec_error("qemu-img", e))?;
        if out.status != 0 {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if classify(&err) == Some(ShareFault::Missing) {
                return Err(DriverError::not_found(format!(
                    "{path} does not exist on the share"
                )));
            }
            return Err(self.share_error(&format!("qemu-img info {path}"), &err));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let info = parse_info(&stdout).ok_or_else(|| {
            DriverError::internal(format!("cannot parse qemu-img info: {stdout}"))
        })?;
        Ok((Format::parse(&info.format)?, info))
    }

    fn create_file(&mut self, path: &str, size_gib: u64) -> Result<()> {
        let s = self.settings()?.clone();
        let usage = self.share()?;
        let (prealloc, need) = match (s.sparse, s.format) {
            (true, _) => ("preallocation=off", 0),
            (false, Format::Raw) => ("preallocation=falloc", size_gib * GIB),
            (false, Format::Qcow2) => ("preallocation=metadata", size_gib * GIB),
        };
        let what = format!(
            "a {} {size_gib} GiB volume",
            if s.sparse { "thin" } else { "thick" }
        );
        self.ensure_room(&usage, need, &what)?;
        let size = (size_gib * GIB).to_string();
        self.run(
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
        let sparse = self.settings()?.sparse;
        if sparse {
            self.run("qemu-img", &["resize", "-f", format.as_str(), path, &size])?;
        } else {
            // A thick volume stays thick: the new tail is allocated too.
            let prealloc = match format {
                Format::Raw => "--preallocation=falloc",
                Format::Qcow2 => "--preallocation=metadata",
            };
            self.run(
                "qemu-img",
                &["resize", prealloc, "-f", format.as_str(), path, &size],
            )?;
        }
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<()> {
        self.run("rm", &["-f", path])?;
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
        let result = self
            .run(
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
                let (_, info) = self.info(&dst)?;
                if info.virtual_size < volume.size_gib * GIB {
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

    /// The file a reference names, checked: a bare name, or Cinder's `EXPORT/FILE`.
    fn managed_file(&mut self, reference: &str) -> Result<String> {
        let name = match Reference::parse(reference)? {
            Reference::Name(n) => n,
            Reference::Id(id) => {
                return Err(DriverError::invalid_argument(format!(
                    "the nfs driver names files, not ids (`source-id` {id}): give {{\"source-name\": \"FILE\"}}"
                )));
            }
        };
        let s = self.settings()?;
        let name = [&s.export, &s.share_path]
            .iter()
            .find_map(|base| name.strip_prefix(&format!("{base}/")))
            .unwrap_or(&name)
            .to_string();
        check_file_name(&name)?;
        Ok(name)
    }

    /// The share must hold a copy of an image taking `actual` bytes (and, for a thick
    /// volume, all of `size_gib`).
    fn ensure_room_for_copy(&mut self, actual: u64, size_gib: u64, what: &str) -> Result<()> {
        let sparse = self.settings()?.sparse;
        let usage = self.share()?;
        let need = if sparse {
            actual
        } else {
            actual.max(size_gib * GIB)
        };
        self.ensure_room(&usage, need, what)
    }
}

/// A file name a reference may give: one component of the share, not a snapshot.
pub fn check_file_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        DriverError::invalid_argument(format!(
            "the reference names `{name}`, which {why}: give the name of a file directly in the share (GET manageable_volumes lists them)"
        ))
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad("is not a file name"));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(bad("is not a single file name"));
    }
    if name.len() > 255 {
        return Err(bad("is longer than a file name may be"));
    }
    if name.starts_with("snapshot-") {
        return Err(bad("is a snapshot's file"));
    }
    Ok(())
}

/// `du -ab --max-depth=1 SHARE` output → the names directly in the share and their
/// apparent sizes (the share itself and anything deeper left out).
pub fn parse_du_entries(out: &str, share: &str) -> Vec<(String, u64)> {
    let prefix = format!("{share}/");
    out.lines()
        .filter_map(|line| {
            let (size, path) = line.split_once('\t')?;
            let name = path.strip_prefix(&prefix)?;
            (!name.is_empty() && !name.contains('/'))
                .then(|| Some((name.to_string(), size.trim().parse().ok()?)))?
        })
        .collect()
}

/// Whether qemu-img refused because another process holds the image's lock.
fn locked(stderr: &str) -> bool {
    let e = stderr.to_ascii_lowercase();
    e.contains("lock")
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
        self.share().map(|_| ())
    }

    fn get_volume_stats(&mut self, _refresh: bool) -> Result<VolumeStats> {
        let usage = self.share()?;
        let s = self.settings()?.clone();
        let provisioned = exec::check("du", &["-sb", "--apparent-size", &s.share_path])
            .ok()
            .and_then(|o| parse_du(&o))
            .unwrap_or(0);
        let gb = |b: u64| (b as f64 / GIB as f64 * 100.0).round() / 100.0;
        let pool = PoolStats {
            pool_name: s.export.clone(),
            total_capacity_gb: gb(usage.total),
            free_capacity_gb: gb(usage.available),
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
            if !matches!(e, DriverError::BackendUnavailable(_)) {
                let _ = self.remove(&path);
            }
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
        // An unmounted share must not make the delete look done.
        self.share()?;
        let path = self.settings()?.volume_path(&volume.id);
        self.remove(&path)
    }

    fn extend_volume(&mut self, volume: Volume, new_size_gib: u64) -> Result<()> {
        check_id("volume", &volume.id)?;
        let usage = self.share()?;
        let path = self.settings()?.volume_path(&volume.id);
        let (format, info) = self.info(&path)?;
        let new_size = new_size_gib * GIB;
        if new_size < info.virtual_size {
            return Err(DriverError::invalid_argument(format!(
                "cannot shrink volume-{} from {} to {new_size_gib} GiB",
                volume.id,
                human(info.virtual_size)
            )));
        }
        if !self.settings()?.sparse {
            let what = format!("growing thick volume-{} to {new_size_gib} GiB", volume.id);
            self.ensure_room(&usage, new_size - info.virtual_size, &what)?;
        }
        self.resize(&path, format, new_size_gib)
    }

    fn create_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<ModelUpdate> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        let usage = self.share()?;
        let s = self.settings()?.clone();
        let vol_path = s.volume_path(&volume.id);
        let (format, info) = self.info(&vol_path)?;
        match format {
            Format::Qcow2 => {
                // Copy-on-write inside the file: only new metadata up front.
                let what = format!("snapshot-{}", snapshot.id);
                self.ensure_room(&usage, 0, &what)?;
                let name = format!("snapshot-{}", snapshot.id);
                self.run("qemu-img", &["snapshot", "-c", &name, &vol_path])?;
                Ok(ModelUpdate::at(format!("{vol_path}@{name}")))
            }
            Format::Raw => {
                let what = format!(
                    "snapshot-{} (a copy of volume-{}'s data)",
                    snapshot.id, volume.id
                );
                self.ensure_room(&usage, info.actual_size, &what)?;
                let snap_path = s.snapshot_path(&snapshot.id);
                let res = self.run(
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
        self.share()?;
        let s = self.settings()?.clone();
        let vol_path = s.volume_path(&volume.id);
        match self.info(&vol_path) {
            Ok((Format::Qcow2, _)) => {
                let name = format!("snapshot-{}", snapshot.id);
                let out = exec::run("qemu-img", &["snapshot", "-d", &name, &vol_path])
                    .map_err(|e| exec::from_exec_error("qemu-img", e))?;
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                // Already gone is what a delete wants.
                if out.status != 0 && !err.contains("not found") && !err.contains("Can't find") {
                    return Err(self.share_error(&format!("qemu-img snapshot -d {name}"), &err));
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
        self.share()?;
        let s = self.settings()?.clone();
        let src_vol = s.volume_path(&snapshot.volume_id);
        let snap_path = s.snapshot_path(&snapshot.id);
        let what = format!("volume-{} from snapshot-{}", volume.id, snapshot.id);
        if let Ok((_, info)) = self.info(&snap_path) {
            self.ensure_room_for_copy(info.actual_size, volume.size_gib, &what)?;
            return self.copy_into_volume(&snap_path, Format::Raw, &volume);
        }
        // A qcow2 internal snapshot inside the source volume's file; the file's size bounds
        // what the snapshot's data can take.
        let (_, info) = self.info(&src_vol)?;
        self.ensure_room_for_copy(info.actual_size, volume.size_gib, &what)?;
        let dst = s.volume_path(&volume.id);
        let sel = format!("snapshot.name=snapshot-{}", snapshot.id);
        let res = self
            .run(
                "qemu-img",
                &[
                    "convert", "-f", "qcow2", "-l", &sel, "-O", "qcow2", &src_vol, &dst,
                ],
            )
            .and_then(|_| {
                let (_, info) = self.info(&dst)?;
                if info.virtual_size < volume.size_gib * GIB {
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
        check_id("volume", &volume.id)?;
        self.share()?;
        let src = self.settings()?.volume_path(&source.id);
        let (format, info) = self.info(&src)?;
        let what = format!("volume-{} (a clone of volume-{})", volume.id, source.id);
        self.ensure_room_for_copy(info.actual_size, volume.size_gib, &what)?;
        self.copy_into_volume(&src, format, &volume)
    }

    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo> {
        check_id("volume", &volume.id)?;
        let path = self.settings()?.volume_path(&volume.id);
        // Attaching is frequent and reads nothing but the file's format: ask the share's
        // state only when that fails, for the error an operator can act on.
        let (format, _) = match self.info(&path) {
            Ok(found) => found,
            Err(e) => {
                self.share()?;
                return Err(e);
            }
        };
        if wants_local(&connector) {
            if format != Format::Raw {
                return Err(DriverError::not_supported(format!(
                    "volume-{} is a {} file, which a target driver cannot export as a block \
                     device; pair this backend with a target only with volume_format = raw",
                    volume.id,
                    format.as_str()
                )));
            }
            return Ok(ConnectionInfo {
                driver_volume_type: "local".into(),
                data: vec![("device_path".into(), text(path))],
            });
        }
        Ok(connection_info(self.settings()?, &volume.id, format))
    }

    fn manage_existing_get_size(&mut self, volume: Volume, reference: String) -> Result<u64> {
        check_id("volume", &volume.id)?;
        self.share()?;
        let name = self.managed_file(&reference)?;
        let s = self.settings()?.clone();
        match self.info(&format!("{}/{name}", s.share_path)) {
            Ok((_, info)) => Ok(gib_rounded_up(info.virtual_size)),
            Err(DriverError::NotFound(_)) => {
                // Asked again after the rename (a manage interrupted before it was
                // recorded): the file is the volume's already.
                if let Ok((_, info)) = self.info(&s.volume_path(&volume.id)) {
                    return Ok(gib_rounded_up(info.virtual_size));
                }
                Err(DriverError::not_found(format!(
                    "the share has no file `{name}`: GET manageable_volumes lists the files it holds"
                )))
            }
            Err(e) => Err(e),
        }
    }

    fn manage_existing(&mut self, volume: Volume, reference: String) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        self.share()?;
        let name = self.managed_file(&reference)?;
        let s = self.settings()?.clone();
        let src = format!("{}/{name}", s.share_path);
        let dst = s.volume_path(&volume.id);
        if src != dst {
            let src_info = self.info(&src);
            let dst_info = self.info(&dst);
            match (src_info, dst_info) {
                (Ok(_), Ok(_)) => {
                    return Err(DriverError::invalid_argument(format!(
                        "the share already holds volume-{} beside `{name}`; nothing was renamed",
                        volume.id
                    )));
                }
                // Renamed already by a manage interrupted before it was recorded.
                (Err(DriverError::NotFound(_)), Ok(_)) => {}
                (Err(e), _) => return Err(e),
                (Ok(_), Err(_)) => {
                    let out = exec::run("mv", &["-n", "-T", &src, &dst]).map_err(|e| match e {
                        exec::ExecError::Denied(_) => DriverError::not_supported(
                            "managing existing files renames them with `mv`, which this backend is not granted: add \"mv\" to the backend's grants.exec",
                        ),
                        other => exec::from_exec_error("mv", other),
                    })?;
                    if out.status != 0 {
                        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                        return Err(self.share_error(&format!("mv {src} {dst}"), &err));
                    }
                    // `mv -n` does nothing when the target appeared meanwhile.
                    if self.info(&src).is_ok() {
                        return Err(DriverError::internal(format!(
                            "`{name}` was not renamed to volume-{}: the target exists",
                            volume.id
                        )));
                    }
                }
            }
        }
        let (format, info) = self.info(&dst)?;
        if info.virtual_size < volume.size_gib * GIB {
            // The volume is a whole number of GiB, as its size says.
            self.resize(&dst, format, volume.size_gib)?;
        }
        log::info(&format!(
            "managing `{name}` as volume-{} ({} GiB, {})",
            volume.id,
            volume.size_gib,
            format.as_str()
        ));
        Ok(ModelUpdate::at(s.export))
    }

    fn unmanage(&mut self, volume: Volume) -> Result<()> {
        // Cinder's NFS driver leaves the file where it is, under its volume name.
        check_id("volume", &volume.id)?;
        log::info(&format!(
            "volume-{} is no longer managed; its file stays on the share",
            volume.id
        ));
        Ok(())
    }

    fn get_manageable_volumes(&mut self) -> Result<Vec<ManageableVolume>> {
        self.share()?;
        let share = self.settings()?.share_path.clone();
        let out = self.run("du", &["-ab", "--max-depth=1", &share])?;
        let mut found = Vec::new();
        for (name, _) in parse_du_entries(&out, &share) {
            if check_file_name(&name).is_err() || name.starts_with('.') {
                continue;
            }
            let path = format!("{share}/{name}");
            let out = exec::run("qemu-img", &["info", "--output=json", &path])
                .map_err(|e| exec::from_exec_error("qemu-img", e))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status == 0 {
                if let Some(info) = parse_info(&stdout) {
                    found.push(ManageableVolume::named(&name, info.virtual_size));
                }
                continue;
            }
            // Held open for writing by another process (qemu's image lock): in use.
            if locked(&String::from_utf8_lossy(&out.stderr))
                && let Ok((_, info)) = self.info(&path)
            {
                found
                    .push(ManageableVolume::named(&name, info.virtual_size).unsafe_because(IN_USE));
            }
            // Anything else (a directory) is not storage a volume can be made of.
        }
        Ok(found)
    }

    /// Nothing of an nfs volume depends on its type (its format and sparseness are the
    /// backend's settings): any type whose specs the backend passes is taken in place.
    fn retype(
        &mut self,
        volume: Volume,
        new_type_name: String,
        _new_extra_specs: Vec<(String, String)>,
    ) -> Result<Option<ModelUpdate>> {
        check_id("volume", &volume.id)?;
        log::info(&format!(
            "retyped volume-{} to {new_type_name} in place",
            volume.id
        ));
        Ok(Some(ModelUpdate::default()))
    }

    fn revert_to_snapshot(&mut self, volume: Volume, snapshot: Snapshot) -> Result<()> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        self.share()?;
        let s = self.settings()?.clone();
        let vol_path = s.volume_path(&volume.id);
        match self.info(&vol_path)? {
            (Format::Qcow2, _) => {
                let name = format!("snapshot-{}", snapshot.id);
                self.run("qemu-img", &["snapshot", "-a", &name, &vol_path])?;
            }
            (Format::Raw, _) => {
                let snap_path = s.snapshot_path(&snapshot.id);
                self.run(
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
        assert!(!s.require_mount);
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
        let err = settings(&[("share_path", "/s"), ("require_mount", "maybe")]).unwrap_err();
        assert!(matches!(err, DriverError::InvalidArgument(m) if m.contains("require_mount")));
        for bad in ["server", "server:relative", ":/path", "[::1]/x", "a/b:/x"] {
            let err = settings(&[("share_path", "/s"), ("nfs_export", bad)]).unwrap_err();
            assert!(
                matches!(&err, DriverError::InvalidArgument(m) if m.contains("host:/path")),
                "{bad}: {err:?}"
            );
        }
        let s = settings(&[("share_path", "/s"), ("nfs_export", "[::1]:/srv/")]).unwrap();
        assert_eq!(s.export, "[::1]:/srv");
    }

    #[test]
    fn exports_split_into_host_and_path() {
        assert_eq!(
            split_export("127.0.0.1:/srv/nfs"),
            Some(("127.0.0.1", "/srv/nfs"))
        );
        assert_eq!(split_export("[fd00::1]:/srv"), Some(("[fd00::1]", "/srv")));
        assert_eq!(
            split_export("nas.example:/a:b"),
            Some(("nas.example", "/a:b"))
        );
        assert_eq!(split_export("[]:/srv"), None);
    }

    #[test]
    fn parses_tool_output() {
        let df = "Filesystem     1-blocks      Used  Available Capacity Mounted on\n/dev/vda 270553939968 11811160064 85899345920 13% /\n";
        let u = parse_df(df).unwrap();
        assert_eq!((u.total, u.available), (270553939968, 85899345920));
        assert_eq!(u.filesystem, "/dev/vda");
        assert_eq!(u.mount_point, "/");
        let df = "Filesystem 1-blocks Used Available Capacity Mounted on\n\
                  nas:/export 1000 10 990 1% /mnt/my share\n";
        assert_eq!(parse_df(df).unwrap().mount_point, "/mnt/my share");
        assert_eq!(parse_df("garbage"), None);
        assert_eq!(parse_df("header\n/dev/x 1 2 3 4%\n"), None);
        assert_eq!(parse_du("1073741824\t/srv/share\n"), Some(1073741824));
        let info = r#"{"virtual-size": 2147483648, "filename": "x", "format": "qcow2", "actual-size": 200704}"#;
        assert_eq!(
            parse_info(info),
            Some(ImageInfo {
                format: "qcow2".into(),
                virtual_size: 2147483648,
                actual_size: 200704
            })
        );
    }

    #[test]
    fn share_faults_are_read_from_stderr() {
        let cases = [
            (
                "qemu-img: error while writing at byte 0: No space left on device",
                Some(ShareFault::Full),
            ),
            ("Disk quota exceeded", Some(ShareFault::Full)),
            (
                "qemu-img: /s/volume-1: Could not create '/s/volume-1': Read-only file system",
                Some(ShareFault::ReadOnly),
            ),
            (
                "rm: cannot remove 'x': Permission denied",
                Some(ShareFault::PermissionDenied),
            ),
            ("df: /mnt/nfs: Stale file handle", Some(ShareFault::Stale)),
            (
                "df: /x: No such file or directory",
                Some(ShareFault::Missing),
            ),
            ("qemu-img: unknown option", None),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
        }
    }

    #[test]
    fn a_full_share_says_what_to_do() {
        let s = settings(&[
            ("share_path", "/srv"),
            ("nfs_export", "nas:/srv"),
            ("reserved_percentage", "10"),
        ])
        .unwrap();
        let u = ShareUsage {
            filesystem: "nas:/srv".into(),
            total: 100 << 20,
            available: 15 << 20,
            mount_point: "/srv".into(),
        };
        assert_eq!(usable(&s, &u), 5 << 20, "the reserved 10% is not usable");
        let m = share_full_message(&s, Some(&u), "; a copy needs 48.0 MiB");
        assert!(m.starts_with("share /srv (nas:/srv) is full (5.0 MiB usable of 100.0 MiB); a copy needs 48.0 MiB. Free space"), "{m}");
        assert!(m.contains("delete volumes and snapshots"), "{m}");
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(3 * GIB / 2), "1.5 GiB");
    }

    #[test]
    fn managed_files_are_single_names_in_the_share() {
        assert!(check_file_name("data.img").is_ok());
        for bad in ["", ".", "..", "a/b", "snapshot-1"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        let out = "4096\t/s/a b\n1073741824\t/s/vol\n8\t/s/dir/x\n2000\t/s\n";
        assert_eq!(
            parse_du_entries(out, "/s"),
            vec![("a b".to_string(), 4096), ("vol".to_string(), 1073741824)]
        );
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

    #[test]
    fn the_host_asks_for_the_local_file_with_a_flag() {
        let mut c = Connector {
            host: "h".into(),
            ip: None,
            initiator: None,
            multipath: false,
            platform: None,
            os_type: None,
            extra: vec![],
        };
        assert!(!wants_local(&c));
        c.extra.push(("local".into(), Value::Text("true".into())));
        assert!(!wants_local(&c), "only the flag counts");
        c.extra.push(("local".into(), Value::Flag(true)));
        assert!(wants_local(&c));
    }
}
