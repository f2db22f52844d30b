//! Start-up, top to bottom, one log line per step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::{BACKUP_STORE_NAME, Config};
use crate::data_dir::DataDirLock;
use crate::db::{Db, QuotaDefaults};
use crate::http::HttpLimits;
use crate::plugins::backends::{check_setup, load_backend};
use crate::plugins::source::DriverConfig;
use crate::runtime::Runtime;
use crate::scheduler::SchedulerConfig;
use crate::volume::{
    self, BackupBackend, DriverSlot, ServiceHeartbeat, StatsPoller, VolumeManager,
};
use crate::worker::Workers;

/// Loads the backup store's driver (`[backup]`, the embedded posix store by default)
/// through the same path as a backend's, and checks it can serve; `None` when the config
/// has no backup store.
pub async fn load_backup_store(
    runtime: &Arc<Runtime>,
    cfg: &Config,
) -> anyhow::Result<Option<BackupBackend>> {
    let Some(backup) = &cfg.backup else {
        return Ok(None);
    };
    let driver = DriverConfig::backup(backup);
    let what = driver.what();
    let files = driver.read().with_context(|| what.clone())?;
    let pool = runtime
        .load(driver.spec(files, &cfg.host_name))
        .with_context(|| format!("{what}: loading its backup driver"))?;
    check_setup(BACKUP_STORE_NAME, "backup driver", &pool).await;
    Ok(Some(BackupBackend {
        config: backup.clone(),
        slot: DriverSlot::new(pool),
    }))
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    // The data directory's lock, then the listening socket, before anything is read or
    // written: a second host, or one whose address is taken, leaves a running one alone.
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
    let _owner = DataDirLock::acquire(&cfg.data_dir)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    for sub in ["volumes", "backups"] {
        std::fs::create_dir_all(cfg.data_dir.join(sub))
            .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
    }
    tracing::info!(data_dir = %cfg.data_dir.display(), "data directory locked and ready");

    let q = &cfg.quota;
    let db = Db::open(&cfg.database_url())
        .await
        .context("opening the database")?
        .with_quota_defaults(QuotaDefaults {
            volumes: q.volumes,
            snapshots: q.snapshots,
            gigabytes: q.gigabytes,
            backups: q.backups,
            backup_gigabytes: q.backup_gigabytes,
            groups: q.groups,
            per_volume_gigabytes: q.per_volume_gigabytes,
        });
    tracing::info!(url = %crate::db::redact(&cfg.database_url()), "database open");
    let stale = db
        .rollback_stale_reservations()
        .await
        .context("rolling back stale quota reservations")?;
    for (project_id, resource, stored, counted) in db.quota_usage_drift().await? {
        tracing::warn!(
            project_id,
            resource,
            stored,
            counted,
            "quota usage disagrees with the rows"
        );
    }
    tracing::info!(rolled_back = stale, "quota usage checked");

    let runtime =
        Runtime::new(Some(cfg.data_dir.join("cache"))).context("starting the plugin runtime")?;
    tracing::info!("plugin runtime ready");

    let mut backends = BTreeMap::new();
    for (name, backend) in &cfg.backends {
        backends.insert(
            name.clone(),
            load_backend(&runtime, &cfg, name, backend).await?,
        );
    }

    let backup = load_backup_store(&runtime, &cfg).await?;
    if let Some(b) = &backup {
        let driver = b.slot.driver();
        tracing::info!(plugin = %driver.identity.name, version = %driver.identity.version,
            container = %b.config.container, "backup store loaded");
    }

    let types = volume::types::ensure(&db, &cfg.volume_types).await?;
    tracing::info!(types, "volume types ready");

    let scheduler = SchedulerConfig {
        capacity_weight_multiplier: cfg.scheduler.capacity_weight_multiplier,
        max_attempts: cfg.scheduler.scheduler_max_attempts,
        service_down_time: Duration::from_secs(cfg.service_down_time),
        stats_interval: Duration::from_secs(cfg.stats_interval_secs.max(1)),
    };
    let (manager, job_runner) = VolumeManager::new(
        db.clone(),
        cfg.host_name.clone(),
        backends,
        backup,
        scheduler,
    );
    if let Some(glance) = &cfg.glance {
        let client =
            crate::image::Glance::new(glance).context("making the Image service client")?;
        manager.set_images(volume::ImageService {
            glance: client,
            tmp_dir: glance
                .image_conversion_dir
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join("images")),
            enable_force_upload: glance.enable_force_upload,
            internal_project_id: glance.internal_project_id.clone(),
        });
        tracing::info!(endpoint = %glance.endpoint, "image service configured");
    }
    manager.poll_stats().await;
    tracing::info!("backend stats collected");
    // A heartbeat before recovery: a peer must not take this host's interrupted jobs
    // over while it recovers them itself.
    manager
        .report_services(&cfg.default_availability_zone)
        .await
        .context("registering this host's services")?;
    let workers = Workers::new();
    workers.spawn(job_runner);
    let recovered = manager
        .recover()
        .await
        .context("recovering unfinished jobs")?;
    tracing::info!(jobs = recovered, "unfinished jobs recovered");
    let restored = manager.restore_exports().await;
    tracing::info!(attachments = restored, "target exports restored");
    workers.spawn(StatsPoller::new(
        manager.clone(),
        Duration::from_secs(cfg.stats_interval_secs.max(1)),
    ));
    workers.spawn(ServiceHeartbeat::new(
        manager.clone(),
        cfg.default_availability_zone.clone(),
        Duration::from_secs(cfg.report_interval.max(1)),
    ));
    tracing::info!(
        report_interval_secs = cfg.report_interval,
        "services registered"
    );

    let plugins = crate::plugins::PluginManager::new(
        runtime.clone(),
        manager.clone(),
        workers.clone(),
        cfg.host_name.clone(),
        Duration::from_secs(cfg.probation_secs),
        cfg.clone(),
    );
    workers.spawn(crate::plugins::ClusterSwaps::new(plugins.clone()));
    let auth = crate::auth::Authenticator::new(cfg.auth.strategy, &db);
    tracing::info!(strategy = ?cfg.auth.strategy, "authentication");
    let state = Arc::new(AppState {
        auth,
        plugins,
        db,
        manager,
        workers: workers.clone(),
        default_availability_zone: cfg.default_availability_zone.clone(),
        volume_views: crate::api::ViewCache::new((cfg.api.list_view_cache_mib as usize) << 20),
        input_limits: (&cfg.api).into(),
        service_down_time: Duration::from_secs(cfg.service_down_time),
        transfer_key_length: cfg.volume_transfer_key_length,
    });
    let addr = listener.local_addr()?;
    tracing::info!("ashlar listening on http://{addr}");

    // SIGTERM or Ctrl-C: stop taking requests, give what runs the grace period, stop the
    // workers; jobs still running then are left for the next start's recovery.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut http = tokio::spawn(crate::http::serve(
        listener,
        api::router(state),
        HttpLimits::from(&cfg.api),
        stopped(stop_rx.clone()),
    ));
    tokio::select! {
        _ = shutdown_signal() => {}
        ended = &mut http => {
            ended.context("the HTTP server task failed")??;
            anyhow::bail!("the HTTP server stopped by itself");
        }
    }
    let grace = Duration::from_secs(cfg.graceful_shutdown_timeout_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "stopping: no new requests; running work has the grace period to finish"
    );
    let deadline = Instant::now() + grace;
    let _ = stop_tx.send(true);
    let (left, served) = tokio::join!(
        workers.stop(deadline),
        tokio::time::timeout_at(deadline.into(), &mut http)
    );
    if served.is_err() {
        tracing::warn!("requests still running at the end of the grace period were cut off");
        http.abort();
    }
    if left > 0 {
        tracing::warn!(
            workers = left,
            "workers still running at the end of the grace period were stopped"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
