//! Where a driver comes from, and how a backend's config makes it a [`DriverSpec`]: the one
//! path every load takes, whether `ashlar serve` starts a backend, a swap replaces one of
//! its drivers, or `ashlar plugin validate` / `inspect` look at a component offline.
//!
//! A driver is bundled in the binary (by name), or a `.wasm` component on disk whose
//! `plugin.toml` sits beside it (same stem) unless its path is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Part;
use crate::bundled::{self, Bundled};
use crate::capabilities::{CapabilityError, Grants, Manifest, World};
use crate::config::{BACKUP_STORE_NAME, BackendConfig, BackupConfig, Credential, Limits};
use crate::runtime::DriverSpec;

/// Why a driver's files could not be read. The messages carry their cause (not as an
/// error source), so an error chain names it once.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "driver `{driver}` is neither a bundled driver ({}) nor a path to a .wasm component",
        bundled_names()
    )]
    Unknown { driver: String },
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the component's plugin.toml is expected at {}: {error}", path.display())]
    Manifest {
        path: PathBuf,
        error: Box<CapabilityError>,
    },
    #[error("bundled driver {name}: {error}")]
    BundledManifest {
        name: &'static str,
        error: Box<CapabilityError>,
    },
    #[error("component {} is refused: {refusal}", path.display())]
    Signature {
        path: PathBuf,
        refusal: super::signature::Refusal,
    },
}

fn bundled_names() -> String {
    bundled::BUNDLED
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A driver's component and manifest.
pub enum DriverSource {
    /// Shipped inside the `ashlar` binary.
    Bundled(&'static Bundled),
    /// A component on disk, with its manifest beside it (`x.wasm`, `x.toml`) unless given.
    File {
        wasm: PathBuf,
        manifest: Option<PathBuf>,
    },
}

/// A driver's component and manifest, read.
#[derive(Clone)]
pub struct DriverFiles {
    /// Where they came from, for messages and `ashlar plugin list`.
    pub origin: String,
    pub wasm: Arc<[u8]>,
    pub manifest: Manifest,
    /// A component on disk: its path, and its detached signature when it has one.
    pub file: Option<(PathBuf, Option<super::signature::Signature>)>,
}

impl DriverSource {
    /// What a config's `driver` names: a bundled driver, or a path to a `.wasm` component
    /// (with `manifest` if the config gives one).
    pub fn configured(driver: &str, manifest: Option<&Path>) -> Result<Self, SourceError> {
        if let Some(b) = bundled::find(driver) {
            return Ok(DriverSource::Bundled(b));
        }
        let wasm = PathBuf::from(driver);
        if wasm.extension().is_none_or(|e| e != "wasm") {
            return Err(SourceError::Unknown {
                driver: driver.to_string(),
            });
        }
        Ok(DriverSource::file(wasm, manifest.map(Path::to_path_buf)))
    }

    /// A component on disk, its manifest beside it unless given (a swap names one so).
    pub fn file(wasm: impl Into<PathBuf>, manifest: Option<PathBuf>) -> Self {
        DriverSource::File {
            wasm: wasm.into(),
            manifest,
        }
    }

    /// What an operator names on the command line: a component on disk, or a bundled
    /// driver when no such file exists and no manifest is given.
    pub fn named(arg: &Path, manifest: Option<PathBuf>) -> Self {
        if manifest.is_none()
            && !arg.exists()
            && let Some(b) = arg.to_str().and_then(bundled::find)
        {
            return DriverSource::Bundled(b);
        }
        DriverSource::file(arg, manifest)
    }

    /// Where it comes from, in words: `bundled driver nfs`, or the component's path.
    pub fn origin(&self) -> String {
        match self {
            DriverSource::Bundled(b) => format!("bundled driver {}", b.name),
            DriverSource::File { wasm, .. } => wasm.display().to_string(),
        }
    }

    /// Where the manifest is read from; `None` for a bundled driver.
    pub fn manifest_path(&self) -> Option<PathBuf> {
        match self {
            DriverSource::Bundled(_) => None,
            DriverSource::File { wasm, manifest } => Some(
                manifest
                    .clone()
                    .unwrap_or_else(|| wasm.with_extension("toml")),
            ),
        }
    }

    pub fn read_wasm(&self) -> Result<Arc<[u8]>, SourceError> {
        match self {
            DriverSource::Bundled(b) => Ok(Arc::from(b.wasm)),
            DriverSource::File { wasm, .. } => {
                std::fs::read(wasm)
                    .map(Arc::from)
                    .map_err(|error| SourceError::Read {
                        path: wasm.clone(),
                        error,
                    })
            }
        }
    }

    pub fn read_manifest(&self) -> Result<Manifest, SourceError> {
        let DriverSource::Bundled(b) = self else {
            let path = self.manifest_path().expect("a file's manifest has a path");
            return Manifest::load(&path).map_err(|e| SourceError::Manifest {
                path,
                error: Box::new(e),
            });
        };
        Manifest::from_toml_str(b.manifest).map_err(|e| SourceError::BundledManifest {
            name: b.name,
            error: Box::new(e),
        })
    }

    /// Reads the component and its manifest.
    pub fn read(&self) -> Result<DriverFiles, SourceError> {
        Ok(DriverFiles {
            origin: self.origin(),
            wasm: self.read_wasm()?,
            manifest: self.read_manifest()?,
            file: match self {
                DriverSource::Bundled(_) => None,
                DriverSource::File { wasm, .. } => Some((wasm.clone(), self.read_signature()?)),
            },
        })
    }

    /// A component's detached signature (`DRIVER.wasm.sig`), when it has one.
    pub fn read_signature(&self) -> Result<Option<super::signature::Signature>, SourceError> {
        let DriverSource::File { wasm, .. } = self else {
            return Ok(None);
        };
        let path = super::signature::signature_path(wasm);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(SourceError::Read { path, error }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SourceError::Signature {
                path: wasm.clone(),
                refusal: super::signature::Refusal::Malformed(e.to_string()),
            })
    }
}

/// One of a backend's drivers as its config describes it: the volume driver
/// (`[backends.NAME]`) or its target (`[backends.NAME.target]`).
pub struct DriverConfig<'a> {
    pub part: Part,
    /// The backend's name.
    pub backend: &'a str,
    pub driver: &'a str,
    pub manifest: Option<&'a Path>,
    pub grants: &'a Grants,
    pub settings: &'a BTreeMap<String, String>,
    pub credentials: &'a BTreeMap<String, Credential>,
    pub limits: &'a Limits,
    /// The backend's, for its target too.
    pub exec_dirs: &'a [PathBuf],
    /// The keys a component must be signed by; none: any component loads.
    pub trusted_keys: &'a [String],
}

impl Part {
    /// The world a driver in this part must implement.
    pub fn world(self) -> World {
        match self {
            Part::Volume => World::VolumeDriver,
            Part::Target => World::TargetDriver,
            Part::Backup => World::BackupDriver,
        }
    }

    /// The config of this driver of backend `name`; `None` for a target the backend does
    /// not have, and for the backup store (see [`DriverConfig::backup`]).
    pub fn config<'a>(self, name: &'a str, backend: &'a BackendConfig) -> Option<DriverConfig<'a>> {
        let b = backend;
        let (driver, manifest, grants, settings, credentials, limits) = match self {
            Part::Volume => (
                &b.driver,
                &b.manifest,
                &b.grants,
                &b.settings,
                &b.credentials,
                &b.limits,
            ),
            Part::Backup => return None,
            Part::Target => {
                let t = b.target.as_ref()?;
                (
                    &t.driver,
                    &t.manifest,
                    &t.grants,
                    &t.settings,
                    &t.credentials,
                    &t.limits,
                )
            }
        };
        Some(DriverConfig {
            part: self,
            backend: name,
            driver,
            manifest: manifest.as_deref(),
            grants,
            settings,
            credentials,
            limits,
            exec_dirs: &b.exec_dirs,
            trusted_keys: &b.trusted_keys,
        })
    }
}

impl<'a> DriverConfig<'a> {
    /// The backup store's driver as `[backup]` describes it, under the reserved name
    /// `backup`.
    pub fn backup(b: &'a BackupConfig) -> DriverConfig<'a> {
        DriverConfig {
            part: Part::Backup,
            backend: BACKUP_STORE_NAME,
            driver: &b.driver,
            manifest: b.manifest.as_deref(),
            grants: &b.grants,
            settings: &b.settings,
            credentials: &b.credentials,
            limits: &b.limits,
            exec_dirs: &b.exec_dirs,
            trusted_keys: &b.trusted_keys,
        }
    }
}

impl DriverConfig<'_> {
    /// How messages name this driver's config entry: `backend NAME`, `backend NAME target`
    /// or `backup store`.
    pub fn what(&self) -> String {
        match self.part {
            Part::Volume => format!("backend {}", self.backend),
            Part::Target => format!("backend {} target", self.backend),
            Part::Backup => "backup store".to_string(),
        }
    }

    /// The driver the config names.
    pub fn source(&self) -> Result<DriverSource, SourceError> {
        DriverSource::configured(self.driver, self.manifest)
    }

    /// Refuses `files` when this config trusts only some keys and the component is not
    /// signed by one of them, unchanged since (checked before anything compiles it). The
    /// signer's key when it was checked.
    pub fn check_signature(&self, files: &DriverFiles) -> Result<Option<String>, SourceError> {
        if self.trusted_keys.is_empty() {
            return Ok(None);
        }
        let Some((path, signature)) = &files.file else {
            return Ok(None); // bundled: part of the binary
        };
        super::signature::check(&files.wasm, path, signature.as_ref(), self.trusted_keys)
            .map(Some)
            .map_err(|refusal| SourceError::Signature {
                path: path.clone(),
                refusal,
            })
    }

    /// The driver the config names, read and, when it trusts only some keys, checked.
    pub fn read(&self) -> Result<DriverFiles, SourceError> {
        let files = self.source()?.read()?;
        self.check_signature(&files)?;
        Ok(files)
    }

    /// The spec that runs `files` as this driver, on host `host_name`.
    pub fn spec(&self, files: DriverFiles, host_name: &str) -> DriverSpec {
        DriverSpec {
            backend: self.backend.to_string(),
            origin: files.origin,
            wasm: files.wasm,
            manifest: files.manifest,
            grants: self.grants.clone(),
            settings: self.settings.clone(),
            credentials: self.credentials.clone(),
            limits: self.limits.clone(),
            host_name: host_name.to_string(),
            exec_dirs: self.exec_dirs.to_vec(),
            world: self.part.world(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(toml: &str) -> BackendConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_config_names_a_bundled_driver_or_a_component_file() {
        let source = DriverSource::configured("nfs", None).unwrap();
        assert_eq!(source.origin(), "bundled driver nfs");
        assert_eq!(source.manifest_path(), None);
        assert_eq!(source.read().unwrap().manifest.name, "nfs");

        let source = DriverSource::configured("/opt/x/driver.wasm", None).unwrap();
        assert_eq!(source.origin(), "/opt/x/driver.wasm");
        assert_eq!(
            source.manifest_path(),
            Some(PathBuf::from("/opt/x/driver.toml"))
        );
        let given = Path::new("/etc/ashlar/driver.toml");
        let source = DriverSource::configured("/opt/x/driver.wasm", Some(given)).unwrap();
        assert_eq!(source.manifest_path().as_deref(), Some(given));

        let err = DriverSource::configured("zfs", None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("driver `zfs` is neither a bundled driver (nfs, ")
                && err.ends_with(") nor a path to a .wasm component"),
            "{err}"
        );
    }

    #[test]
    fn what_cannot_be_read_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("driver.wasm");
        let err = DriverSource::file(&wasm, None).read().err().unwrap();
        assert!(matches!(err, SourceError::Read { .. }), "{err}");
        assert!(err.to_string().contains(&wasm.display().to_string()));
        assert!(std::error::Error::source(&err).is_none());

        std::fs::write(&wasm, crate::bundled::find("nfs").unwrap().wasm).unwrap();
        let err = DriverSource::file(&wasm, None).read().err().unwrap();
        let toml = dir.path().join("driver.toml");
        assert!(
            err.to_string().starts_with(&format!(
                "the component's plugin.toml is expected at {}: ",
                toml.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_bundled_name_on_the_command_line_is_the_bundled_driver_unless_a_file_has_it() {
        assert!(matches!(
            DriverSource::named(Path::new("lvm"), None),
            DriverSource::Bundled(b) if b.name == "lvm"
        ));
        let manifest = Some(PathBuf::from("lvm.toml"));
        assert!(matches!(
            DriverSource::named(Path::new("lvm"), manifest),
            DriverSource::File { .. }
        ));
    }

    #[test]
    fn a_backend_config_gives_the_spec_of_its_volume_driver_and_of_its_target() {
        let b = backend(
            r#"
driver = "lvm"
grants.exec = ["vgs"]
settings.volume_group = "vg0"
exec_dirs = ["/opt/sbin"]
limits.instances = 3

[target]
driver = "iscsi-tgt"
grants.exec = ["tgtadm"]
settings.backing_store_dir = "/dev/vg0"
"#,
        );
        let volume = Part::Volume.config("lvm1", &b).unwrap();
        assert_eq!(volume.what(), "backend lvm1");
        let spec = volume.spec(volume.source().unwrap().read().unwrap(), "h1");
        assert_eq!(
            (spec.backend.as_str(), spec.world, spec.host_name.as_str()),
            ("lvm1", World::VolumeDriver, "h1")
        );
        assert_eq!(spec.manifest.name, "lvm");
        assert_eq!(spec.origin, "bundled driver lvm");
        assert_eq!(spec.settings["volume_group"], "vg0");
        assert_eq!(spec.limits.instances, 3);

        let target = Part::Target.config("lvm1", &b).unwrap();
        assert_eq!(target.what(), "backend lvm1 target");
        let spec = target.spec(target.source().unwrap().read().unwrap(), "h1");
        assert_eq!(spec.world, World::TargetDriver);
        assert_eq!(spec.manifest.name, "iscsi-tgt");
        assert_eq!(spec.settings["backing_store_dir"], "/dev/vg0");
        assert!(!spec.settings.contains_key("volume_group"));
        assert_eq!(
            spec.exec_dirs,
            [PathBuf::from("/opt/sbin")],
            "a target runs programs from its backend's exec_dirs"
        );

        assert!(
            Part::Target
                .config("nfs1", &backend("driver = \"nfs\""))
                .is_none()
        );
    }
}
