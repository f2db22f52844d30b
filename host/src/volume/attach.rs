//! Making a volume reachable by a host: the export and the connection (Cinder's
//! `initialize_connection` / `terminate_connection`). A backend whose volume driver hands
//! over a local device is exported by its paired target driver, as Cinder pairs LVM with
//! a `target_helper`:
//!
//! 1. the volume driver's `initialize-connection` with the host's own connector, whose
//!    `extra` carries `local = true`, answers `local` with the `device_path`;
//! 2. the target driver's `create-export(volume, device_path)` makes (or finds) the export
//!    and its model update (CHAP credentials in `provider_auth`) is recorded;
//! 3. the target driver's `initialize-connection` answers the client's connection info.
//!
//! Without a target, the volume driver's own `create-export` and `initialize-connection`
//! do it all.

use super::ops::{check_model, driver_volume};
use super::{OpError, VolumeManager};
use crate::db::VolumeRow;
use crate::runtime::latest::ashlar::driver::types as wit;
use crate::runtime::{CallError, DriverFailure};

/// The `extra` key of the connector the host uses to ask a volume driver for its device.
pub const LOCAL_CONNECTOR_KEY: &str = "local";

/// The connector that asks a volume driver for the local device behind a volume.
pub fn local_connector(host_name: &str) -> wit::Connector {
    wit::Connector {
        host: host_name.to_string(),
        ip: None,
        initiator: None,
        multipath: false,
        platform: None,
        os_type: None,
        extra: vec![(LOCAL_CONNECTOR_KEY.to_string(), wit::Value::Flag(true))],
    }
}

/// The device path of a `local` connection info.
fn local_device(backend: &str, info: &wit::ConnectionInfo) -> Result<String, OpError> {
    let device = info.data.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("device_path", wit::Value::Text(p)) => Some(p.clone()),
        _ => None,
    });
    match device {
        Some(d) if info.driver_volume_type == "local" && d.starts_with('/') => Ok(d),
        _ => Err(OpError::Gone(format!(
            "backend {backend} pairs its volume driver with a target, but the volume driver \
             answered a `{}` connection for the host's local connector instead of `local` with \
             an absolute `device_path`; this volume driver cannot be exported through a target \
             (remove `[backends.{backend}.target]`)",
            info.driver_volume_type
        ))),
    }
}

impl VolumeManager {
    /// Exports `v` and answers the connection info for `connector`.
    pub async fn initialize_connection(
        &self,
        v: &VolumeRow,
        connector: wit::Connector,
    ) -> Result<wit::ConnectionInfo, OpError> {
        let backend = self.backend_of(v.host.as_deref()).ok_or_else(|| {
            OpError::Gone(format!(
                "volume {} is not on a backend of this host (host {:?})",
                v.id, v.host
            ))
        })?;
        let mut vol = driver_volume(self, v).await?;
        let driver = backend.driver();
        let Some(target) = backend.target() else {
            let (vv, c) = (vol.clone(), connector.clone());
            let model = driver
                .call("create-export", move |s, d| {
                    d.create_export(s, &vv, Some(&c))
                })
                .await?;
            self.record_export(&mut vol, model).await?;
            return Ok(driver
                .call("initialize-connection", move |s, d| {
                    d.initialize_connection(s, &vol, &connector)
                })
                .await?);
        };
        let (vv, local) = (vol.clone(), local_connector(&self.host_name));
        let info = driver
            .call("initialize-connection", move |s, d| {
                d.initialize_connection(s, &vv, &local)
            })
            .await?;
        let device = local_device(&backend.name, &info)?;
        let vv = vol.clone();
        let model = target
            .call("create-export", move |s, d| {
                d.target_create_export(s, &vv, &device)
            })
            .await?;
        self.record_export(&mut vol, model).await?;
        Ok(target
            .call("initialize-connection", move |s, d| {
                d.target_initialize_connection(s, &vol, &connector)
            })
            .await?)
    }

    /// Ends `connector`'s connection (every connection when `None`: a force detach), and
    /// removes the export too when `last`.
    pub async fn terminate_connection(
        &self,
        v: &VolumeRow,
        connector: Option<wit::Connector>,
        last: bool,
    ) -> Result<(), OpError> {
        let Some(backend) = self.backend_of(v.host.as_deref()) else {
            return Ok(());
        };
        let vol = driver_volume(self, v).await?;
        let driver = backend.driver();
        match backend.target() {
            None => {
                let vv = vol.clone();
                tolerate_unsupported(
                    driver
                        .call("terminate-connection", move |s, d| {
                            d.terminate_connection(s, &vv, connector.as_ref())
                        })
                        .await,
                )?;
                if last {
                    tolerate_unsupported(
                        driver
                            .call("remove-export", move |s, d| d.remove_export(s, &vol))
                            .await,
                    )?;
                }
            }
            Some(target) => {
                let vv = vol.clone();
                target
                    .call("terminate-connection", move |s, d| {
                        d.target_terminate_connection(s, &vv, connector.as_ref())
                    })
                    .await?;
                if last {
                    let vv = vol.clone();
                    target
                        .call("remove-export", move |s, d| d.target_remove_export(s, &vv))
                        .await?;
                    let local = local_connector(&self.host_name);
                    tolerate_unsupported(
                        driver
                            .call("terminate-connection", move |s, d| {
                                d.terminate_connection(s, &vol, Some(&local))
                            })
                            .await,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Keeps what an export answered (provider location and auth) on the volume, and in
    /// `vol` for the calls that follow.
    async fn record_export(
        &self,
        vol: &mut wit::Volume,
        model: wit::ModelUpdate,
    ) -> Result<(), OpError> {
        check_model(&model)?;
        let location = model.provider_location.or(vol.provider_location.clone());
        let auth = model.provider_auth.or(vol.provider_auth.clone());
        if location != vol.provider_location || auth != vol.provider_auth {
            self.db
                .set_volume_provider(&vol.id, location.as_deref(), auth.as_deref())
                .await?;
            vol.provider_location = location;
            vol.provider_auth = auth;
        }
        Ok(())
    }
}

/// Cinder's drivers without an export step simply pass; a driver answering "not
/// supported" for terminate or remove-export has nothing to undo.
fn tolerate_unsupported(r: Result<(), CallError>) -> Result<(), CallError> {
    match r {
        Err(CallError::Driver(DriverFailure::NotSupported(_))) => Ok(()),
        other => other,
    }
}
