//! Start-up, top to bottom, one log line per step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::bundled;
use crate::capabilities::{Manifest, World};
use crate::config::{BackendConfig, Config};
use crate::db::Db;
use crate::runtime::{DriverPool, DriverSpec, Runtime};
use crate::scheduler::SchedulerConfig;
use crate::volume::{Backend, VolumeManager};

/// Cinder's default volume type, given to volumes created without one.
pub const DEFAULT_VOLUME_TYPE: &str = "__DEFAULT__";

/// Reads a driver's component and manifest: bundled by name, or from files. `what` names
/// the config entry in messages (`backend lvm1`, `backend lvm1 target`).
pub fn driver_source(
    what: &str,
    driver: &str,
    manifest: Option<&std::path::Path>,
) -> anyhow::Result<(String, Arc<[u8]>, Manifest)> {
    if let Some(b) = bundled::find(driver) {
        let manifest = Manifest::from_toml_str(b.manifest).context("bundled manifest")?;
        return Ok((
            format!("bundled driver {}", b.name),
            Arc::from(b.wasm),
            manifest,
        ));
    }
    let path = std::path::PathBuf::from(driver);
    if path.extension().is_none_or(|e| e != "wasm") {
        anyhow::bail!(
            "{what}: driver `{driver}` is neither a bundled driver ({}) nor a path to a .wasm component",
            bundled::BUNDLED
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let wasm =
        std::fs::read(&path).with_context(|| format!("{what}: reading {}", path.display()))?;
    let manifest_path = manifest
        .map(|m| m.to_path_buf())
        .unwrap_or_else(|| path.with_extension("toml"));
    let manifest = Manifest::load(&manifest_path).with_context(|| {
        format!(
            "{what}: the component's plugin.toml is expected at {}",
            manifest_path.display()
        )
    })?;
    Ok((path.display().to_string(), Arc::from(wasm), manifest))
}

/// Loads one backend's driver through the runtime and checks it can serve.
pub async fn load_backend(
    runtime: &Arc<Runtime>,
    cfg: &Config,
    name: &str,
    backend: &BackendConfig,
) -> anyhow::Result<Arc<DriverPool>> {
    let (origin, wasm, manifest) = driver_source(
        &format!("backend {name}"),
        &backend.driver,
        backend.manifest.as_deref(),
    )?;
    let spec = DriverSpec {
        backend: name.to_string(),
        origin,
        wasm,
        manifest,
        grants: backend.grants.clone(),
        settings: backend.settings.clone(),
        credentials: backend.credentials.clone(),
        limits: backend.limits.clone(),
        host_name: cfg.host_name.clone(),
        exec_dirs: backend.exec_dirs.clone(),
        world: World::VolumeDriver,
    };
    let pool = runtime
        .load(spec)
        .with_context(|| format!("backend {name}: loading its driver"))?;
    check_setup(name, "driver", &pool).await;
    Ok(pool)
}

/// Loads the target driver paired with a backend, if it has one.
pub async fn load_target(
    runtime: &Arc<Runtime>,
    cfg: &Config,
    name: &str,
    backend: &BackendConfig,
) -> anyhow::Result<Option<Arc<DriverPool>>> {
    let Some(target) = &backend.target else {
        return Ok(None);
    };
    let what = format!("backend {name} target");
    let (origin, wasm, manifest) =
        driver_source(&what, &target.driver, target.manifest.as_deref())?;
    let spec = DriverSpec {
        backend: name.to_string(),
        origin,
        wasm,
        manifest,
        grants: target.grants.clone(),
        settings: target.settings.clone(),
        credentials: target.credentials.clone(),
        limits: target.limits.clone(),
        host_name: cfg.host_name.clone(),
        exec_dirs: backend.exec_dirs.clone(),
        world: World::TargetDriver,
    };
    let pool = runtime
        .load(spec)
        .with_context(|| format!("{what}: loading its target driver"))?;
    check_setup(name, "target driver", &pool).await;
    Ok(Some(pool))
}

async fn check_setup(name: &str, which: &str, pool: &Arc<DriverPool>) {
    let check = pool
        .call("check-for-setup-error", |s, d| d.check_for_setup_error(s))
        .await;
    if let Err(e) = check {
        // A backend that fails its check stays configured but reports no pools, as
        // Cinder's uninitialised drivers do; the log says why.
        tracing::error!(backend = name, "{which} check_for_setup_error failed: {e}");
    }
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(cfg.data_dir.join("volumes"))
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
    tracing::info!(data_dir = %cfg.data_dir.display(), "data directory ready");

    let db = Db::open(&cfg.database_url())
        .await
        .context("opening the database")?;
    tracing::info!(url = %cfg.database_url(), "database open");

    let runtime =
        Runtime::new(Some(cfg.data_dir.join("cache"))).context("starting the plugin runtime")?;
    tracing::info!("plugin runtime ready");

    let mut backends = BTreeMap::new();
    for (name, backend) in &cfg.backends {
        let driver = load_backend(&runtime, &cfg, name, backend).await?;
        tracing::info!(backend = %name, plugin = %driver.identity.name, version = %driver.identity.version, "backend loaded");
        let target = load_target(&runtime, &cfg, name, backend).await?;
        if let Some(t) = &target {
            tracing::info!(backend = %name, plugin = %t.identity.name, version = %t.identity.version, "target driver loaded");
        }
        let availability_zone = backend
            .availability_zone
            .clone()
            .unwrap_or_else(|| cfg.default_availability_zone.clone());
        backends.insert(
            name.clone(),
            Backend::new(
                name.clone(),
                availability_zone,
                backend.clone(),
                driver,
                target,
            ),
        );
    }

    if db.get_volume_type(DEFAULT_VOLUME_TYPE).await?.is_none() {
        db.create_volume_type(DEFAULT_VOLUME_TYPE, Some("Default Volume Type"), true, &[])
            .await?;
    }
    for (name, specs) in &cfg.volume_types {
        let specs: Vec<(String, String)> =
            specs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match db.get_volume_type(name).await? {
            Some(t) => db.set_extra_specs(&t.id, &specs).await?,
            None => {
                db.create_volume_type(name, None, true, &specs).await?;
            }
        }
    }
    tracing::info!(types = cfg.volume_types.len() + 1, "volume types ready");

    let scheduler = SchedulerConfig {
        capacity_weight_multiplier: cfg.scheduler.capacity_weight_multiplier,
    };
    let (manager, jobs) =
        VolumeManager::new(db.clone(), cfg.host_name.clone(), backends, scheduler);
    manager.poll_stats().await;
    tracing::info!("backend stats collected");
    tokio::spawn(manager.clone().run_jobs(jobs));
    let recovered = manager
        .recover()
        .await
        .context("recovering unfinished jobs")?;
    tracing::info!(jobs = recovered, "unfinished jobs recovered");
    let restored = restore_exports(&db, &manager).await;
    tracing::info!(attachments = restored, "target exports restored");
    tokio::spawn(
        manager
            .clone()
            .run_stats(Duration::from_secs(cfg.stats_interval_secs.max(1))),
    );

    let plugins = crate::plugins::PluginManager::new(
        runtime.clone(),
        manager.clone(),
        cfg.host_name.clone(),
        Duration::from_secs(cfg.probation_secs),
    );
    let state = Arc::new(AppState {
        plugins,
        db,
        manager,
        default_availability_zone: cfg.default_availability_zone.clone(),
    });
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("ashlar listening on http://{addr}");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Re-makes the exports and connections of attached volumes on backends with a target
/// driver (Cinder's `ensure_export` at start-up): a target such as tgtd keeps its state in
/// memory only, so after a restart of either side the attachments would otherwise be cut.
/// Returns how many attachments were restored; a failure is logged and the next goes on.
async fn restore_exports(db: &Db, manager: &Arc<VolumeManager>) -> usize {
    let attachments = match db.list_attachments(None, None).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("listing attachments to restore their exports: {e}");
            return 0;
        }
    };
    let mut restored = 0;
    for a in attachments {
        let (Some(connector), "attaching" | "attached") = (&a.connector, a.attach_status.as_str())
        else {
            continue;
        };
        let Ok(Some(volume)) = db.get_volume(&a.volume_id).await else {
            continue;
        };
        if manager
            .backend_of(volume.host.as_deref())
            .is_none_or(|b| b.target.is_none())
        {
            continue;
        }
        let connector = match serde_json::from_str(connector)
            .map_err(|e| e.to_string())
            .and_then(|c| api::parse_connector(&c).map_err(|e| e.message))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(attachment = %a.id, "cannot restore: its connector is unreadable: {e}");
                continue;
            }
        };
        match manager.initialize_connection(&volume, connector).await {
            Ok(_) => restored += 1,
            Err(e) => tracing::error!(attachment = %a.id, volume_id = %volume.id,
                "could not restore the export of an attached volume: {e}"),
        }
    }
    restored
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
