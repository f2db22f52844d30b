//! `ashlar conformance`: certifies a driver component on a real backend. The component is
//! loaded exactly as `ashlar serve` would load it in the config's place (the same source,
//! signature, contract, world and grant checks, through `plugins::backends::load_driver`
//! or `server::load_backup_store`), then run through the checks of its world: Cinder's
//! minimum driver features, repeated as csi-sanity repeats its calls, the optional
//! features, the sandbox's rules and, for a volume driver, two instances racing on the
//! same backend (`volume`, `target`, `backup`). The result is a table and a certificate
//! (`report`).

pub mod backup;
pub mod report;
pub mod runner;
pub mod target;
pub mod volume;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::{Grants, RequestedCapabilities, World};
use crate::config::Config;
use crate::plugins::Part;
use crate::plugins::backends::load_driver;
use crate::plugins::source::{DriverConfig, DriverFiles, DriverSource};
use crate::runtime::{DriverPool, LoadError, Runtime};

pub use report::{Certificate, Summary};

/// What `ashlar conformance` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// A `.wasm` component, or a bundled driver's name.
    pub wasm: PathBuf,
    pub manifest: Option<PathBuf>,
    /// An `ashlar.toml` with the backend (or `[backup]` store) to run on.
    pub config: PathBuf,
    /// The backend, when the config has several.
    pub backend: Option<String>,
    /// Whether to load a second instance and race it against the first (volume drivers).
    pub active_active: bool,
}

/// Why no check could run: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Usage(String),
    #[error("{0:#}")]
    Load(anyhow::Error),
}

/// Runs every check of the component's world; the certificate.
pub async fn certify(opts: &Options) -> Result<Certificate, SetupError> {
    let started_at = crate::db::time::now();
    let started = Instant::now();
    let mut cfg = Config::load(Some(&opts.config))
        .map_err(|e| SetupError::Usage(format!("{}: {e}", opts.config.display())))?;
    cfg.finish()
        .map_err(|e| SetupError::Usage(format!("{}: {e}", opts.config.display())))?;
    // As `serve` reads it: the manifest a section of the config gives this component, if
    // the command line names none.
    let manifest = opts
        .manifest
        .clone()
        .or_else(|| manifest_in_config(&cfg, &opts.wasm));
    let source = DriverSource::named(&opts.wasm, manifest);
    let files = source.read().map_err(|e| SetupError::Load(e.into()))?;
    let (driver, manifest) = match &source {
        DriverSource::Bundled(b) => (b.name.to_string(), None),
        DriverSource::File { wasm, .. } => (
            std::path::absolute(wasm)
                .unwrap_or_else(|_| wasm.clone())
                .display()
                .to_string(),
            source
                .manifest_path()
                .map(|p| std::path::absolute(&p).unwrap_or(p)),
        ),
    };
    // Compiled once, then taken from this run's own cache by every further load.
    let cache = runner::ScratchDir::new("cache").map_err(|e| SetupError::Load(e.into()))?;
    let runtime =
        Runtime::new(Some(cache.path().to_path_buf())).map_err(|e| SetupError::Load(e.into()))?;
    let world = files.manifest.world;
    let mut runner = runner::Runner::default();
    let (section, active_active, contract) = match world {
        World::VolumeDriver => {
            let name = backend_for(
                &cfg,
                opts.backend.as_deref(),
                |_| true,
                |b| b.driver == driver,
                "backend",
            )?;
            set_driver(&mut cfg, &name, Part::Volume, &driver, manifest.as_deref());
            let backend = cfg.backends[&name].clone();
            let pool = load_driver(&runtime, &cfg, &name, &backend, Part::Volume)
                .await
                .map_err(SetupError::Load)?
                .expect("a backend has a volume driver");
            let target = load_driver(&runtime, &cfg, &name, &backend, Part::Target)
                .await
                .map_err(|e| SetupError::Load(e.context("the backend's target driver")))?;
            let peer = if opts.active_active {
                let mut other = cfg.clone();
                other.host_name = format!("{}-peer", cfg.host_name);
                Some(
                    load_driver(&runtime, &other, &name, &backend, Part::Volume)
                        .await
                        .map_err(|e| format!("{e:#}"))
                        .map(|p| p.expect("a backend has a volume driver")),
                )
            } else {
                None
            };
            let config = Part::Volume
                .config(&name, &backend)
                .expect("a backend has a volume driver");
            let subject = volume::Subject {
                host_name: cfg.host_name.clone(),
                unprivileged: unprivileged(&runtime, &config, &files, &cfg.host_name),
                ungranted_refused: ungranted(&runtime, &config, &files, &cfg.host_name),
                asks_host_calls: asks_host_calls(&files.manifest.capabilities),
                driver: pool,
                target,
                peer,
            };
            let contract = subject.driver.contract.to_string();
            let aa = volume::run(&subject, &mut runner).await;
            (format!("backend {name}"), aa, contract)
        }
        World::TargetDriver => {
            let name = backend_for(
                &cfg,
                opts.backend.as_deref(),
                |b| b.target.is_some(),
                |b| b.target.as_ref().is_some_and(|t| t.driver == driver),
                "backend with a [backends.NAME.target] section",
            )?;
            set_driver(&mut cfg, &name, Part::Target, &driver, manifest.as_deref());
            let backend = cfg.backends[&name].clone();
            let pool = load_driver(&runtime, &cfg, &name, &backend, Part::Target)
                .await
                .map_err(SetupError::Load)?
                .expect("the backend has a target");
            let volume_driver = match load_driver(&runtime, &cfg, &name, &backend, Part::Volume)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(
                        "the backend's volume driver does not load ({e:#}); exporting a temporary file"
                    );
                    None
                }
            };
            let config = Part::Target
                .config(&name, &backend)
                .expect("the backend has a target");
            let subject = target::Subject {
                unprivileged: unprivileged(&runtime, &config, &files, &cfg.host_name),
                ungranted_refused: ungranted(&runtime, &config, &files, &cfg.host_name),
                asks_host_calls: asks_host_calls(&files.manifest.capabilities),
                host_name: cfg.host_name.clone(),
                target: pool,
                volume_driver,
            };
            let contract = subject.target.contract.to_string();
            target::run(&subject, &mut runner).await;
            (
                format!("backend {name} target"),
                Default::default(),
                contract,
            )
        }
        World::BackupDriver => {
            if opts
                .backend
                .as_deref()
                .is_some_and(|b| b != crate::config::BACKUP_STORE_NAME)
            {
                return Err(SetupError::Usage(
                    "a backup driver runs on the config's [backup] store; use --backend backup or none".into(),
                ));
            }
            let Some(b) = cfg.backup.as_mut() else {
                return Err(SetupError::Usage(format!(
                    "{} has no [backup] section for a backup driver to run on",
                    opts.config.display()
                )));
            };
            b.driver = driver.clone();
            b.manifest = manifest.clone();
            let store = crate::server::load_backup_store(&runtime, &cfg)
                .await
                .map_err(SetupError::Load)?
                .expect("the config has a backup store");
            let config = DriverConfig::backup(&store.config);
            let subject = backup::Subject {
                driver: store.slot.driver(),
                container: store.config.container.clone(),
                unprivileged: unprivileged(&runtime, &config, &files, &cfg.host_name),
                ungranted_refused: ungranted(&runtime, &config, &files, &cfg.host_name),
            };
            let contract = subject.driver.contract.to_string();
            backup::run(&subject, &mut runner).await;
            ("backup store".to_string(), Default::default(), contract)
        }
    };
    let checks = runner.checks;
    Ok(Certificate {
        component: report::Component {
            name: files.manifest.name.clone(),
            version: files.manifest.version.clone(),
            world: world.to_string(),
            contract,
            digest: report::digest(&files.wasm),
            size: files.wasm.len(),
            origin: files.origin.clone(),
        },
        backend: section,
        host: cfg.host_name.clone(),
        ashlar_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        summary: Summary::of(&checks),
        active_active,
        checks,
    })
}

/// The backend to run on: the one named, or the config's only one that fits, or among
/// several the only one that runs this very driver (`runs`).
fn backend_for(
    cfg: &Config,
    named: Option<&str>,
    fits: impl Fn(&crate::config::BackendConfig) -> bool,
    runs: impl Fn(&crate::config::BackendConfig) -> bool,
    what: &str,
) -> Result<String, SetupError> {
    if let Some(n) = named {
        return match cfg.backends.get(n) {
            Some(b) if fits(b) => Ok(n.to_string()),
            Some(_) => Err(SetupError::Usage(format!("backend `{n}` is not a {what}"))),
            None => Err(SetupError::Usage(format!(
                "the config has no backend `{n}`"
            ))),
        };
    }
    let fitting: Vec<&String> = cfg
        .backends
        .iter()
        .filter(|(_, b)| fits(b))
        .map(|(n, _)| n)
        .collect();
    let running: Vec<&String> = fitting
        .iter()
        .copied()
        .filter(|n| runs(&cfg.backends[n.as_str()]))
        .collect();
    if let [one] = running.as_slice() {
        return Ok(one.to_string());
    }
    match fitting.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(SetupError::Usage(format!("the config has no {what}"))),
        many => Err(SetupError::Usage(format!(
            "the config has several: {}; choose one with --backend",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The `manifest` of a section of `cfg` whose `driver` is the component at `wasm`.
fn manifest_in_config(cfg: &Config, wasm: &Path) -> Option<PathBuf> {
    let wanted = std::fs::canonicalize(wasm).ok()?;
    let sections = cfg
        .backends
        .values()
        .flat_map(|b| {
            std::iter::once((&b.driver, &b.manifest))
                .chain(b.target.iter().map(|t| (&t.driver, &t.manifest)))
        })
        .chain(cfg.backup.iter().map(|b| (&b.driver, &b.manifest)));
    sections
        .filter(|(driver, _)| std::fs::canonicalize(driver).ok().as_ref() == Some(&wanted))
        .find_map(|(_, manifest)| manifest.clone())
}

/// Puts the component under test in the config's place for backend `name`.
fn set_driver(cfg: &mut Config, name: &str, part: Part, driver: &str, manifest: Option<&Path>) {
    let b = cfg.backends.get_mut(name).expect("the backend exists");
    match part {
        Part::Volume => {
            b.driver = driver.to_string();
            b.manifest = manifest.map(Path::to_path_buf);
        }
        Part::Target => {
            let t = b.target.as_mut().expect("the backend has a target");
            t.driver = driver.to_string();
            t.manifest = manifest.map(Path::to_path_buf);
        }
        Part::Backup => {}
    }
}

/// Whether the manifest asks for host calls the host can refuse (exec, block, http; a
/// directory is the filesystem's, not a host call).
fn asks_host_calls(c: &RequestedCapabilities) -> bool {
    !c.exec.is_empty() || !c.block.is_empty() || !c.http.is_empty()
}

/// The component loaded with every capability taken away: its manifest asks for nothing
/// and nothing is granted.
fn unprivileged(
    runtime: &Arc<Runtime>,
    config: &DriverConfig<'_>,
    files: &DriverFiles,
    host_name: &str,
) -> Result<Arc<DriverPool>, String> {
    let mut spec = config.spec(files.clone(), host_name);
    spec.manifest.capabilities = RequestedCapabilities::default();
    spec.grants = Grants::default();
    spec.backend = format!("{}-unprivileged", spec.backend);
    runtime
        .load(spec)
        .map_err(|e| format!("loading without capabilities: {e}"))
}

/// Whether a load whose operator grants nothing is refused for what the manifest asks;
/// `None` when the manifest asks for nothing it needs.
fn ungranted(
    runtime: &Arc<Runtime>,
    config: &DriverConfig<'_>,
    files: &DriverFiles,
    host_name: &str,
) -> Option<Result<String, String>> {
    let c = &files.manifest.capabilities;
    let needs = c.exec.iter().any(|e| !e.optional)
        || !c.block.is_empty()
        || !c.http.is_empty()
        || !c.directory.is_empty();
    if !needs {
        return None;
    }
    let mut spec = config.spec(files.clone(), host_name);
    spec.grants = Grants::default();
    Some(match runtime.load(spec) {
        Err(e @ LoadError::Capability(_)) => Ok(format!("refused at load: {e}")),
        Err(e) => Err(format!("refused, but not for its grants: {e}")),
        Ok(_) => Err("loaded although the operator granted nothing it asks for".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        let mut cfg: Config = toml::from_str(toml).unwrap();
        cfg.finish().unwrap();
        cfg
    }

    #[test]
    fn the_backend_is_the_one_named_or_the_only_one_that_fits() {
        let cfg = config(
            r#"
[backends.a]
driver = "nfs"
settings.share_path = "/tmp"

[backends.b]
driver = "lvm"
[backends.b.target]
driver = "iscsi-tgt"
"#,
        );
        let any = |_: &crate::config::BackendConfig| true;
        let none = |_: &crate::config::BackendConfig| false;
        let target = |b: &crate::config::BackendConfig| b.target.is_some();
        let lvm = |b: &crate::config::BackendConfig| b.driver == "lvm";
        assert_eq!(
            backend_for(&cfg, Some("a"), any, none, "backend").unwrap(),
            "a"
        );
        assert_eq!(
            backend_for(&cfg, None, target, none, "target").unwrap(),
            "b"
        );
        // Among several, the one that runs the driver under test.
        assert_eq!(backend_for(&cfg, None, any, lvm, "backend").unwrap(), "b");
        let err = backend_for(&cfg, None, any, none, "backend")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the config has several: a, b; choose one with --backend"
        );
        let err = backend_for(&cfg, Some("a"), target, none, "backend with a target")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "backend `a` is not a backend with a target");
        let err = backend_for(&cfg, Some("z"), any, none, "backend")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "the config has no backend `z`");
    }

    #[test]
    fn the_component_takes_the_configs_place() {
        let mut cfg = config(
            r#"
[backends.b]
driver = "lvm"
[backends.b.target]
driver = "iscsi-tgt"
"#,
        );
        set_driver(
            &mut cfg,
            "b",
            Part::Target,
            "/x/t.wasm",
            Some(Path::new("/x/t.toml")),
        );
        let t = cfg.backends["b"].target.as_ref().unwrap();
        assert_eq!(t.driver, "/x/t.wasm");
        assert_eq!(t.manifest.as_deref(), Some(Path::new("/x/t.toml")));
        assert_eq!(cfg.backends["b"].driver, "lvm");
        set_driver(&mut cfg, "b", Part::Volume, "nfs", None);
        assert_eq!(cfg.backends["b"].driver, "nfs");
        assert!(cfg.backends["b"].manifest.is_none());
    }
}
