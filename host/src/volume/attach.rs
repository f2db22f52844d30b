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

use std::sync::Arc;

use super::flows::{check_model, driver_volume, record_model_extras};
use super::{OpError, VolumeManager};
use crate::db::{AttachmentRow, VolumeRow};
use crate::driver::{ConnectionInfo, Connector, ModelUpdate, Value, Volume};
use crate::runtime::{CallError, DriverFailure};
use crate::volume::status::AttachStatus;

/// Whether ending the attachments `ending` picks out leaves the volume without any other
/// connection, so its export must go too. An attachment holds a connection once a
/// connector was recorded for it (the attachments API) or once it is attached (the older
/// volume actions, which connect without recording a connector).
pub fn is_last_connection(
    attachments: &[AttachmentRow],
    ending: impl Fn(&AttachmentRow) -> bool,
) -> bool {
    !attachments
        .iter()
        .any(|a| !ending(a) && (a.connector.is_some() || a.attach_status == AttachStatus::Attached))
}

/// The device path of a `local` connection info.
fn local_device(backend: &str, info: &ConnectionInfo) -> Result<String, OpError> {
    match info.text("device_path") {
        Some(d) if info.driver_volume_type == "local" && d.starts_with('/') => Ok(d.to_string()),
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
    /// Exports `v` and answers the connection info for `connector`, with the access mode
    /// the attachment is made in added to its data (as Cinder's volume manager adds it).
    pub async fn initialize_connection(
        &self,
        v: &VolumeRow,
        connector: &Connector,
        access_mode: &str,
    ) -> Result<ConnectionInfo, OpError> {
        let backend = self
            .backend_of(v.host.as_deref())
            .ok_or_else(|| match &v.host {
                Some(host) => OpError::Elsewhere(super::backend_key_of(host).to_string()),
                None => OpError::Gone(format!("volume {} is not placed on a backend", v.id)),
            })?;
        let mut vol = driver_volume(self, v).await?;
        let driver = backend.driver();
        let mut info = match backend.target() {
            None => {
                let model = driver.create_export(&vol, Some(connector)).await?;
                self.record_export(&v.id, &mut vol, model).await?;
                driver.initialize_connection(&vol, connector).await?
            }
            Some(target) => {
                let info = driver
                    .initialize_connection(&vol, &Connector::local(&self.host_name))
                    .await?;
                let device = local_device(&backend.name, &info)?;
                let model = target.target_create_export(&vol, &device).await?;
                self.record_export(&v.id, &mut vol, model).await?;
                target.target_initialize_connection(&vol, connector).await?
            }
        };
        info.data
            .entry("access_mode".into())
            .or_insert_with(|| Value::Text(access_mode.to_string()));
        info.qos_specs = Some(self.front_end_qos(v).await?);
        Ok(info)
    }

    /// Cinder's `data.qos_specs`: the front-end (or both) QoS specs of the volume's type,
    /// per-GB keys worked out for its size; `null` when it has none.
    async fn front_end_qos(&self, v: &VolumeRow) -> Result<serde_json::Value, OpError> {
        let Some(type_id) = &v.volume_type_id else {
            return Ok(serde_json::Value::Null);
        };
        Ok(match self.db.qos_specs_of_type(type_id).await? {
            Some(qos) if qos.consumer.front_end() => {
                serde_json::Value::Object(per_gb_qos(qos.specs, v.size))
            }
            _ => serde_json::Value::Null,
        })
    }

    /// Ends `connector`'s connection (every connection when `None`: a force detach), and
    /// removes the export too when `last`.
    pub async fn terminate_connection(
        &self,
        v: &VolumeRow,
        connector: Option<&Connector>,
        last: bool,
    ) -> Result<(), OpError> {
        let Some(backend) = self.backend_of(v.host.as_deref()) else {
            // Never placed: nothing was exported. Placed on another host's backend: only
            // a host that runs it can end the connection.
            return match &v.host {
                Some(host) => Err(OpError::Elsewhere(super::backend_key_of(host).to_string())),
                None => Ok(()),
            };
        };
        let vol = driver_volume(self, v).await?;
        let driver = backend.driver();
        match backend.target() {
            None => {
                tolerate_unsupported(driver.terminate_connection(&vol, connector).await)?;
                if last {
                    tolerate_unsupported(driver.remove_export(&vol).await)?;
                }
            }
            Some(target) => {
                target.target_terminate_connection(&vol, connector).await?;
                if last {
                    target.target_remove_export(&vol).await?;
                    let local = Connector::local(&self.host_name);
                    tolerate_unsupported(driver.terminate_connection(&vol, Some(&local)).await)?;
                }
            }
        }
        Ok(())
    }

    /// Keeps what an export answered (provider location and auth, admin metadata) on volume
    /// `id`, and in `vol` (its driver's view, whose id is the storage's) for the calls that
    /// follow.
    async fn record_export(
        &self,
        id: &str,
        vol: &mut Volume,
        model: ModelUpdate,
    ) -> Result<(), OpError> {
        check_model(&model)?;
        let location = model
            .provider_location
            .apply(vol.provider_location.as_deref());
        let auth = model.provider_auth.apply(vol.provider_auth.as_deref());
        if location != vol.provider_location || auth != vol.provider_auth {
            self.db
                .set_volume_provider(id, location.as_deref(), auth.as_deref())
                .await?;
            vol.provider_location = location;
            vol.provider_auth = auth;
        }
        record_model_extras(self, id, &model).await
    }

    /// Re-makes the exports and connections of attached volumes on backends with a target
    /// driver (Cinder's `ensure_export` at start-up): a target such as tgtd keeps its state
    /// in memory only, so after a restart of either side the attachments would otherwise
    /// be cut. Returns how many attachments were restored; a failure is logged and the
    /// next goes on.
    pub async fn restore_exports(self: &Arc<Self>) -> usize {
        let attachments = match self.db.connected_attachments().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("listing attachments to restore their exports: {e}");
                return 0;
            }
        };
        let mut restored = 0;
        for a in attachments {
            let Some(connector) = &a.connector else {
                continue;
            };
            let Ok(Some(volume)) = self.db.get_volume(&a.volume_id).await else {
                continue;
            };
            if self
                .backend_of(volume.host.as_deref())
                .is_none_or(|b| b.target.is_none())
            {
                continue;
            }
            match self
                .initialize_connection(&volume, connector, &a.attach_mode)
                .await
            {
                Ok(_) => restored += 1,
                Err(e) => tracing::error!(attachment = %a.id, volume_id = %volume.id,
                    "could not restore the export of an attached volume: {e}"),
            }
        }
        restored
    }
}

/// The limits a hypervisor applies, which Cinder also accepts per GiB.
const TUNE_OPTIONS: [&str; 6] = [
    "read_iops_sec",
    "read_bytes_sec",
    "write_iops_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "total_bytes_sec",
];

/// Front-end QoS specs as Cinder's volume manager hands them to the hypervisor: for each
/// tune option `X` given as `X_per_gb`, `X` becomes that times the size in GiB, at least
/// `X_per_gb_min` and at most `X_max` (an integer); the per-GB keys go. Specs whose
/// numbers do not parse are passed on as they are.
pub fn per_gb_qos(
    specs: Vec<(String, String)>,
    size_gib: i64,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out: serde_json::Map<String, serde_json::Value> = specs
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let number = |out: &serde_json::Map<String, serde_json::Value>, key: &str| {
        out.get(key)
            .and_then(|v| v.as_str())
            .map(|s| s.trim().parse::<i64>())
    };
    for option in TUNE_OPTIONS {
        let per_gb = format!("{option}_per_gb");
        let per_gb_min = format!("{option}_per_gb_min");
        let max = format!("{option}_max");
        let Some(Ok(rate)) = number(&out, &per_gb) else {
            continue;
        };
        let minimum = match number(&out, &per_gb_min) {
            None => 0,
            Some(Ok(m)) => m,
            Some(Err(_)) => continue,
        };
        let value = rate.saturating_mul(size_gib).max(minimum);
        let value = match number(&out, &max) {
            None => value,
            Some(Ok(m)) => value.min(m),
            Some(Err(_)) => continue,
        };
        out.remove(&per_gb);
        out.remove(&per_gb_min);
        out.remove(&max);
        out.insert(option.to_string(), serde_json::Value::from(value));
    }
    out
}

/// Cinder's drivers without an export step simply pass; a driver answering "not
/// supported" for terminate or remove-export has nothing to undo.
fn tolerate_unsupported(r: Result<(), CallError>) -> Result<(), CallError> {
    match r {
        Err(CallError::Driver(DriverFailure::NotSupported(_))) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(id: &str, status: AttachStatus, connected: bool) -> AttachmentRow {
        AttachmentRow {
            id: id.into(),
            attach_status: status,
            connector: connected.then(|| Connector::local("h")),
            ..AttachmentRow::default()
        }
    }

    #[test]
    fn per_gb_qos_is_worked_out_for_the_size_within_its_bounds() {
        let specs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let out = per_gb_qos(
            specs(&[
                ("read_iops_sec_per_gb", "10"),
                ("write_iops_sec_per_gb", "10"),
                ("write_iops_sec_per_gb_min", "500"),
                ("total_bytes_sec_per_gb", "1000"),
                ("total_bytes_sec_max", "25000"),
                ("total_iops_sec", "900"),
            ]),
            30,
        );
        assert_eq!(
            serde_json::Value::Object(out),
            serde_json::json!({
                "read_iops_sec": 300,
                "write_iops_sec": 500,
                "total_bytes_sec": 25000,
                "total_iops_sec": "900",
            })
        );
        let odd = per_gb_qos(specs(&[("read_iops_sec_per_gb", "lots")]), 3);
        assert_eq!(odd["read_iops_sec_per_gb"], "lots");
    }

    #[test]
    fn the_last_connection_is_the_one_nothing_else_holds() {
        use AttachStatus as A;
        let a = attachment("a", A::Attached, true);
        let b = attachment("b", A::Reserved, false);
        let c = attachment("c", A::Attaching, true);
        // A reservation holds no connection.
        assert!(is_last_connection(&[a.clone(), b.clone()], |x| x.id == "a"));
        // Another connected attachment does.
        assert!(!is_last_connection(&[a.clone(), c.clone()], |x| x.id == "a"));
        // Ending all of them is the last.
        assert!(is_last_connection(&[a.clone(), c], |_| true));
        // An attached one made through the volume actions has no connector but holds one.
        let legacy = attachment("l", A::Attached, false);
        assert!(!is_last_connection(&[a, legacy], |x| x.id == "a"));
        assert!(is_last_connection(&[b], |_| false));
    }
}
