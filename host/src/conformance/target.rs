//! The checks of a target driver (Cinder's target helpers): it exports a device, answers
//! connection info with its protocol's keys, and every removal can be repeated. The device
//! is a volume's local device from the backend's volume driver, as an attach uses, or a
//! sparse temporary file when the volume driver cannot give one.

use std::sync::Arc;
use std::time::Instant;

use super::report::{Category, Outcome};
use super::runner::{
    Runner, apply_to_volume, changes_auth, health_check, refused, repeated_delete, required,
    sandbox_records, setup_checks, trapped,
};
use super::volume::keys_outcome;
use crate::driver::{ConnectionInfo, Connector, Volume};
use crate::runtime::{CallError, DriverPool};

use Category::{Cleanup, Sandbox, Target};

/// What a target driver's run is given.
pub struct Subject {
    pub target: Arc<DriverPool>,
    /// The backend's volume driver, which makes the volumes whose devices are exported.
    pub volume_driver: Option<Arc<DriverPool>>,
    pub host_name: String,
    pub unprivileged: Result<Arc<DriverPool>, String>,
    pub ungranted_refused: Option<Result<String, String>>,
    pub asks_host_calls: bool,
}

/// A volume and the device the target exports for it.
struct Exported {
    volume: Volume,
    device: String,
    /// Made by the volume driver (deleted through it), or a temporary file.
    made_by_driver: bool,
}

fn connector(host: &str) -> Connector {
    Connector {
        host: host.into(),
        ip: Some("127.0.0.1".into()),
        initiator: Some(format!(
            "iqn.1993-08.org.debian:01:ashlar-conformance-{host}"
        )),
        multipath: false,
        platform: Some("x86_64".into()),
        os_type: Some("linux2".into()),
        extra: Default::default(),
    }
}

fn new_volume() -> Volume {
    Volume {
        id: uuid::Uuid::new_v4().to_string(),
        display_name: Some("ashlar-conformance".into()),
        size_gib: 1,
        provider_location: None,
        provider_auth: None,
        volume_type_name: None,
        extra_specs: Vec::new(),
        pool: None,
        qos_specs: Vec::new(),
    }
}

/// A volume with a device to export: from the volume driver, else a temporary file.
async fn device(s: &Subject, tmp: &std::path::Path) -> Result<Exported, String> {
    let mut v = new_volume();
    if let Some(d) = &s.volume_driver {
        if let Ok(pool) = d.get_volume_stats(false).await {
            v.pool = pool.pools.first().map(|p| p.pool_name.clone());
        }
        let made = d
            .create_volume(&v)
            .await
            .map_err(|e| format!("the volume driver's create_volume: {e}"))?;
        apply_to_volume(&mut v, &made);
        match d
            .initialize_connection(&v, &Connector::local(&s.host_name))
            .await
        {
            Ok(i) if i.text("device_path").is_some() => {
                let device = i.text("device_path").unwrap_or_default().to_string();
                return Ok(Exported {
                    volume: v,
                    device,
                    made_by_driver: true,
                });
            }
            Ok(i) => {
                let _ = d.delete_volume(&v).await;
                return Err(format!(
                    "the volume driver answers the local connector with {} and no device_path",
                    i.driver_volume_type
                ));
            }
            Err(e) => {
                let _ = d.delete_volume(&v).await;
                return Err(format!("the volume driver gives no local device: {e}"));
            }
        }
    }
    let path = tmp.join(format!("volume-{}", v.id));
    let f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(1 << 30)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Exported {
        volume: v,
        device: path.display().to_string(),
        made_by_driver: false,
    })
}

async fn release(s: &Subject, e: &Exported) -> Result<(), String> {
    let _ = s.target.target_remove_export(&e.volume).await;
    if e.made_by_driver
        && let Some(d) = &s.volume_driver
    {
        let _ = d
            .terminate_connection(&e.volume, Some(&Connector::local(&s.host_name)))
            .await;
        d.delete_volume(&e.volume)
            .await
            .map_err(|err| format!("volume {}: {err}", e.volume.id))?;
    } else if !e.made_by_driver {
        let _ = std::fs::remove_file(&e.device);
    }
    Ok(())
}

fn same(a: &ConnectionInfo, b: &ConnectionInfo) -> bool {
    a.driver_volume_type == b.driver_volume_type && a.data == b.data
}

pub async fn run(s: &Subject, r: &mut Runner) {
    let t = &s.target;
    setup_checks(r, t, Instant::now()).await;
    health_check(r, "target.health", t).await;

    let tmp = super::runner::ScratchDir::new("devices").ok();
    let tmp_path = tmp
        .as_ref()
        .map_or_else(std::env::temp_dir, |t| t.path().to_path_buf());
    let mut made: Vec<Exported> = Vec::new();
    let mut first = None;
    r.run("target.device", Target, true, async {
        match device(s, &tmp_path).await {
            Ok(e) => {
                let o = Outcome::pass(format!(
                    "exporting {} ({})",
                    e.device,
                    if e.made_by_driver {
                        "the local device of a volume the backend's volume driver made"
                    } else {
                        "a temporary file"
                    }
                ));
                first = Some(e);
                o
            }
            Err(e) => Outcome::fail(e),
        }
    })
    .await;
    let ids_needing_device = [
        ("target.create_export", true),
        ("target.create_export.auth", false),
        ("target.create_export.idempotent", true),
        ("target.initialize_connection", true),
        ("target.initialize_connection.keys", true),
        ("target.initialize_connection.idempotent", true),
        ("target.initialize_connection.second_host", false),
        ("target.terminate_connection", true),
        ("target.terminate_connection.idempotent", true),
        ("target.terminate_connection.second_host", false),
        ("target.terminate_connection.all", true),
        ("target.remove_export", true),
        ("target.remove_export.idempotent", true),
        ("target.reexport", true),
        ("target.two_volumes", true),
    ];
    if let Some(mut e) = first {
        let c = connector("conformance-a");
        let other = connector("conformance-b");
        let exported = r
            .run("target.create_export", Target, true, async {
                match t.target_create_export(&e.volume, &e.device).await {
                    Ok(u) => {
                        apply_to_volume(&mut e.volume, &u);
                        Outcome::pass(format!("exported {}", e.device))
                    }
                    Err(err) => Outcome::fail(format!("create_export: {err}")),
                }
            })
            .await;
        r.record(
            "target.create_export.auth",
            Target,
            false,
            if !exported {
                Outcome::skip("not run: target.create_export failed")
            } else if e.volume.provider_auth.is_some() {
                Outcome::pass("the export has credentials (provider_auth)")
            } else {
                Outcome::warn("the export has no credentials: any initiator that reaches the portal may log in")
            },
            Instant::now(),
        );
        r.run("target.create_export.idempotent", Target, true, async {
            match t.target_create_export(&e.volume, &e.device).await {
                Ok(u) => {
                    let changed = changes_auth(&e.volume, &u);
                    if changed {
                        Outcome::warn("a repeated create_export succeeds but changes the credentials")
                    } else {
                        Outcome::pass("a repeated create_export succeeds (ensure_export at start-up relies on it)")
                    }
                }
                Err(err) => Outcome::fail(format!("a repeated create_export: {err}")),
            }
        })
        .await;
        let mut info = None;
        r.run("target.initialize_connection", Target, true, async {
            let got = t.target_initialize_connection(&e.volume, &c).await;
            let o = required("initialize_connection", &got);
            info = got.ok();
            o
        })
        .await;
        match &info {
            Some(i) => {
                r.record(
                    "target.initialize_connection.keys",
                    Target,
                    true,
                    keys_outcome(i),
                    Instant::now(),
                );
                r.run(
                    "target.initialize_connection.idempotent",
                    Target,
                    true,
                    async {
                        match t.target_initialize_connection(&e.volume, &c).await {
                            Ok(again) if same(i, &again) => {
                                Outcome::pass("a repeated initialize_connection answers the same")
                            }
                            Ok(again) => Outcome::warn(format!(
                                "answers differently: {:?} then {:?}",
                                i.data, again.data
                            )),
                            Err(err) => {
                                Outcome::fail(format!("a repeated initialize_connection: {err}"))
                            }
                        }
                    },
                )
                .await;
            }
            None => {
                r.not_run(
                    "target.initialize_connection.keys",
                    Target,
                    true,
                    "target.initialize_connection failed",
                );
                r.not_run(
                    "target.initialize_connection.idempotent",
                    Target,
                    true,
                    "target.initialize_connection failed",
                );
            }
        }
        r.run(
            "target.initialize_connection.second_host",
            Target,
            false,
            async {
                match t.target_initialize_connection(&e.volume, &other).await {
                    Ok(i) => keys_outcome(&i),
                    Err(err) => Outcome::fail(format!("a second host: {err}")),
                }
            },
        )
        .await;
        r.run("target.terminate_connection", Target, true, async {
            required(
                "terminate_connection",
                &t.target_terminate_connection(&e.volume, Some(&c)).await,
            )
        })
        .await;
        r.run(
            "target.terminate_connection.idempotent",
            Target,
            true,
            async {
                repeated_delete(
                    "terminate_connection",
                    &t.target_terminate_connection(&e.volume, Some(&c)).await,
                )
            },
        )
        .await;
        r.run(
            "target.terminate_connection.second_host",
            Target,
            false,
            async {
                repeated_delete(
                    "terminate_connection of the second host",
                    &t.target_terminate_connection(&e.volume, Some(&other)).await,
                )
            },
        )
        .await;
        r.run("target.terminate_connection.all", Target, true, async {
            repeated_delete(
                "terminate_connection of every host",
                &t.target_terminate_connection(&e.volume, None).await,
            )
        })
        .await;
        r.run("target.remove_export", Target, true, async {
            required("remove_export", &t.target_remove_export(&e.volume).await)
        })
        .await;
        r.run("target.remove_export.idempotent", Target, true, async {
            repeated_delete("remove_export", &t.target_remove_export(&e.volume).await)
        })
        .await;
        r.run("target.reexport", Target, true, async {
            match t.target_create_export(&e.volume, &e.device).await {
                Ok(u) => {
                    apply_to_volume(&mut e.volume, &u);
                    match t.target_initialize_connection(&e.volume, &c).await {
                        Ok(i) => {
                            let _ = t.target_terminate_connection(&e.volume, Some(&c)).await;
                            match t.target_remove_export(&e.volume).await {
                                Ok(()) => keys_outcome(&i)
                                    .prefixed("exported, connected and removed again: "),
                                Err(err) => {
                                    Outcome::fail(format!("remove_export after a re-export: {err}"))
                                }
                            }
                        }
                        Err(err) => {
                            Outcome::fail(format!("initialize_connection after a re-export: {err}"))
                        }
                    }
                }
                Err(err) => Outcome::fail(format!("create_export after remove_export: {err}")),
            }
        })
        .await;
        made.push(e);
        r.run("target.two_volumes", Target, true, async {
            let mut second = match device(s, &tmp_path).await {
                Ok(x) => x,
                Err(err) => return Outcome::fail(err),
            };
            let (mut first_volume, first_device) = (made[0].volume.clone(), made[0].device.clone());
            let a = t.target_create_export(&first_volume, &first_device).await;
            let b = t.target_create_export(&second.volume, &second.device).await;
            let out = match (a, b) {
                (Ok(ua), Ok(ub)) => {
                    apply_to_volume(&mut first_volume, &ua);
                    apply_to_volume(&mut second.volume, &ub);
                    let ia = t.target_initialize_connection(&first_volume, &c).await;
                    let ib = t.target_initialize_connection(&second.volume, &c).await;
                    match (ia, ib) {
                        (Ok(x), Ok(y)) if x.data != y.data => {
                            Outcome::pass("two volumes exported at once get distinct targets")
                        }
                        (Ok(_), Ok(_)) => {
                            Outcome::fail("two volumes answer the same connection info")
                        }
                        (x, y) => Outcome::fail(format!(
                            "initialize_connection: {:?} / {:?}",
                            x.err(),
                            y.err()
                        )),
                    }
                }
                (x, y) => Outcome::fail(format!(
                    "create_export: {} / {}",
                    x.err().map_or("ok".into(), |e| e.to_string()),
                    y.err().map_or("ok".into(), |e| e.to_string())
                )),
            };
            for v in [&first_volume, &second.volume] {
                let _ = t.target_terminate_connection(v, None).await;
                let _ = t.target_remove_export(v).await;
            }
            made.push(second);
            out
        })
        .await;
    } else {
        for (id, req) in ids_needing_device {
            r.not_run(id, Target, req, "target.device failed");
        }
    }
    r.run("target.remove_export.never_exported", Target, true, async {
        repeated_delete(
            "remove_export of a volume never exported",
            &t.target_remove_export(&new_volume()).await,
        )
    })
    .await;
    r.run(
        "target.terminate_connection.never_exported",
        Target,
        false,
        async {
            repeated_delete(
                "terminate_connection of a volume never exported",
                &t.target_terminate_connection(&new_volume(), Some(&connector("conformance-a")))
                    .await,
            )
        },
    )
    .await;
    r.run(
        "target.initialize_connection.not_exported",
        Target,
        false,
        async {
            refused(
                "initialize_connection of a volume never exported",
                &t.target_initialize_connection(&new_volume(), &connector("conformance-a"))
                    .await,
            )
        },
    )
    .await;

    // The sandbox.
    sandbox_records(r, t, s.ungranted_refused.as_ref()).await;
    match &s.unprivileged {
        Ok(u) => {
            let dev = tmp_path.join("volume-unprivileged");
            let v = new_volume();
            let got: Result<_, CallError> =
                u.target_create_export(&v, &dev.display().to_string()).await;
            let refused_now = u.denials();
            let outcome = match &got {
                Err(e) if trapped(e) => Outcome::fail(format!("the driver trapped: {e}")),
                Err(e) => Outcome::pass(format!(
                    "create_export fails as a driver error ({refused_now} host call(s) refused): {e}"
                )),
                Ok(_) if refused_now == 0 => Outcome::pass("create_export needs no capability"),
                Ok(_) => Outcome::fail(format!(
                    "create_export answered success although {refused_now} host call(s) were refused"
                )),
            };
            r.record(
                "sandbox.no_capabilities.create_export",
                Sandbox,
                true,
                outcome,
                Instant::now(),
            );
            let _ = u.target_remove_export(&v).await;
            r.record(
                "sandbox.no_capabilities.refused",
                Sandbox,
                true,
                if !s.asks_host_calls {
                    Outcome::skip("the manifest asks for no host call that could be refused")
                } else {
                    Outcome::check(
                        u.denials() > 0,
                        format!("the host refused {} ungranted call(s)", u.denials()),
                    )
                },
                Instant::now(),
            );
        }
        Err(e) => {
            r.record(
                "sandbox.no_capabilities.create_export",
                Sandbox,
                true,
                Outcome::fail(e.clone()),
                Instant::now(),
            );
            r.not_run(
                "sandbox.no_capabilities.refused",
                Sandbox,
                true,
                "the driver did not load without capabilities",
            );
        }
    }

    let started = Instant::now();
    let mut left = Vec::new();
    for e in &made {
        if let Err(err) = release(s, e).await {
            left.push(err);
        }
    }
    r.record(
        "cleanup.deleted",
        Cleanup,
        true,
        if left.is_empty() {
            Outcome::pass(format!(
                "{} export(s) removed and their devices deleted",
                made.len()
            ))
        } else {
            Outcome::fail(format!("could not delete: {}", left.join("; ")))
        },
        started,
    );
}

trait Prefixed {
    fn prefixed(self, prefix: &str) -> Self;
}

impl Prefixed for Outcome {
    fn prefixed(mut self, prefix: &str) -> Outcome {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}
