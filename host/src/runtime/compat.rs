//! Serving drivers built for contract 0.2.0 (and 0.1.0, whose types are 0.2.0's) from the
//! latest types: the host speaks 0.3.0, and each call to an older driver converts its
//! arguments down and its answer up here (see `versions`).
//!
//! What an older driver sees and says, in 0.3.0's terms (`wit/CHANGELOG.md`):
//! - a volume's back-end QoS specs come inside `extra-specs` as `qos:KEY` entries, as
//!   before 0.3.0, replacing a type's own spec of the same key;
//! - integer lists reach it as lists of decimal texts;
//! - a model update's `option<string>` is `set` or `keep`, and it never removes metadata
//!   or moves a volume;
//! - a `retype` answer of true is "changed in place, nothing to record", false "migrate".

use super::latest::ashlar::driver::types as new;
use super::latest::backup::exports::ashlar::driver::backup_driver_core as new_backup;
use super::since_v0_2_0::ashlar::driver::types as old;
use super::since_v0_2_0::backup::exports::ashlar::driver::backup_driver_core as old_backup;
use super::since_v0_2_0::exports::ashlar::driver::volume_driver_health as old_health;

/// The answer of a call into an older driver, in the latest types.
pub(super) fn up<T: Up>(
    call: wasmtime::Result<Result<T, old::DriverError>>,
) -> wasmtime::Result<Result<T::New, new::DriverError>> {
    call.map(|r| r.map(Up::up).map_err(Up::up))
}

/// An older driver's value in the latest types.
pub(super) trait Up {
    type New;
    fn up(self) -> Self::New;
}

macro_rules! same {
    ($($t:ty),*) => {
        $(impl Up for $t {
            type New = $t;
            fn up(self) -> $t {
                self
            }
        })*
    };
}
same!((), u64);

impl<T: Up> Up for Vec<T> {
    type New = Vec<T::New>;
    fn up(self) -> Self::New {
        self.into_iter().map(Up::up).collect()
    }
}

impl Up for old::DriverError {
    type New = new::DriverError;
    fn up(self) -> new::DriverError {
        match self {
            old::DriverError::NotFound(m) => new::DriverError::NotFound(m),
            old::DriverError::InvalidArgument(m) => new::DriverError::InvalidArgument(m),
            old::DriverError::NotSupported(m) => new::DriverError::NotSupported(m),
            old::DriverError::CapacityExceeded(m) => new::DriverError::CapacityExceeded(m),
            old::DriverError::BackendUnavailable(m) => new::DriverError::BackendUnavailable(m),
            old::DriverError::Internal(m) => new::DriverError::Internal(m),
        }
    }
}

impl Up for old::Value {
    type New = new::Value;
    fn up(self) -> new::Value {
        match self {
            old::Value::Text(s) => new::Value::Text(s),
            old::Value::Integer(i) => new::Value::Integer(i),
            old::Value::Number(n) => new::Value::Number(n),
            old::Value::Flag(b) => new::Value::Flag(b),
            old::Value::Texts(t) => new::Value::Texts(t),
        }
    }
}

fn properties_up(p: Vec<(String, old::Value)>) -> Vec<(String, new::Value)> {
    p.into_iter().map(|(k, v)| (k, v.up())).collect()
}

fn field(v: Option<String>) -> new::FieldUpdate {
    v.map_or(new::FieldUpdate::Keep, new::FieldUpdate::Set)
}

impl Up for old::ModelUpdate {
    type New = new::ModelUpdate;
    fn up(self) -> new::ModelUpdate {
        new::ModelUpdate {
            provider_location: field(self.provider_location),
            provider_auth: field(self.provider_auth),
            metadata: self.metadata,
            metadata_removed: Vec::new(),
            pool: None,
        }
    }
}

impl Up for old::ConnectionInfo {
    type New = new::ConnectionInfo;
    fn up(self) -> new::ConnectionInfo {
        new::ConnectionInfo {
            driver_volume_type: self.driver_volume_type,
            data: properties_up(self.data),
        }
    }
}

impl Up for old::VolumeStats {
    type New = new::VolumeStats;
    fn up(self) -> new::VolumeStats {
        new::VolumeStats {
            volume_backend_name: self.volume_backend_name,
            vendor_name: self.vendor_name,
            driver_version: self.driver_version,
            storage_protocol: self.storage_protocol,
            pools: self
                .pools
                .into_iter()
                .map(|p| new::PoolStats {
                    pool_name: p.pool_name,
                    total_capacity_gb: p.total_capacity_gb,
                    free_capacity_gb: p.free_capacity_gb,
                    provisioned_capacity_gb: p.provisioned_capacity_gb,
                    allocated_capacity_gb: p.allocated_capacity_gb,
                    reserved_percentage: p.reserved_percentage,
                    max_over_subscription_ratio: p.max_over_subscription_ratio,
                    thin_provisioning_support: p.thin_provisioning_support,
                    thick_provisioning_support: p.thick_provisioning_support,
                    multiattach: p.multiattach,
                    capabilities: properties_up(p.capabilities),
                })
                .collect(),
        }
    }
}

impl Up for old::ManageableVolume {
    type New = new::ManageableVolume;
    fn up(self) -> new::ManageableVolume {
        new::ManageableVolume {
            reference: self.reference,
            size_gib: self.size_gib,
            safe_to_manage: self.safe_to_manage,
            reason_not_safe: self.reason_not_safe,
            cinder_id: self.cinder_id,
        }
    }
}

impl Up for old_health::HealthReport {
    type New = new::HealthReport;
    fn up(self) -> new::HealthReport {
        new::HealthReport {
            healthy: self.healthy,
            detail: self.detail,
        }
    }
}

impl Up for old_backup::ObjectInfo {
    type New = new_backup::ObjectInfo;
    fn up(self) -> new_backup::ObjectInfo {
        new_backup::ObjectInfo {
            name: self.name,
            size: self.size,
        }
    }
}

/// An older driver's `retype`: true is "changed in place, nothing to record".
pub(super) fn retype_up(
    call: wasmtime::Result<Result<bool, old::DriverError>>,
) -> wasmtime::Result<Result<Option<new::ModelUpdate>, new::DriverError>> {
    call.map(|r| {
        r.map(|in_place| {
            in_place.then_some(new::ModelUpdate {
                provider_location: new::FieldUpdate::Keep,
                provider_auth: new::FieldUpdate::Keep,
                metadata: Vec::new(),
                metadata_removed: Vec::new(),
                pool: None,
            })
        })
        .map_err(Up::up)
    })
}

fn value_down(v: &new::Value) -> old::Value {
    match v {
        new::Value::Text(s) => old::Value::Text(s.clone()),
        new::Value::Integer(i) => old::Value::Integer(*i),
        new::Value::Number(n) => old::Value::Number(*n),
        new::Value::Flag(b) => old::Value::Flag(*b),
        new::Value::Texts(t) => old::Value::Texts(t.clone()),
        new::Value::Integers(i) => old::Value::Texts(i.iter().map(i64::to_string).collect()),
    }
}

/// A volume as a driver built before 0.3.0 sees it: QoS specs inside the extra specs.
pub(super) fn volume(v: &new::Volume) -> old::Volume {
    let mut extra_specs = v.extra_specs.clone();
    for (k, value) in &v.qos_specs {
        let key = format!("qos:{k}");
        extra_specs.retain(|(existing, _)| *existing != key);
        extra_specs.push((key, value.clone()));
    }
    old::Volume {
        id: v.id.clone(),
        display_name: v.display_name.clone(),
        size_gib: v.size_gib,
        provider_location: v.provider_location.clone(),
        provider_auth: v.provider_auth.clone(),
        volume_type_name: v.volume_type_name.clone(),
        extra_specs,
        pool: v.pool.clone(),
    }
}

pub(super) fn snapshot(s: &new::Snapshot) -> old::Snapshot {
    old::Snapshot {
        id: s.id.clone(),
        volume_id: s.volume_id.clone(),
        volume_size_gib: s.volume_size_gib,
        provider_location: s.provider_location.clone(),
        display_name: s.display_name.clone(),
    }
}

pub(super) fn connector(c: &new::Connector) -> old::Connector {
    old::Connector {
        host: c.host.clone(),
        ip: c.ip.clone(),
        initiator: c.initiator.clone(),
        multipath: c.multipath,
        platform: c.platform.clone(),
        os_type: c.os_type.clone(),
        extra: c
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), value_down(v)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume_with_qos() -> new::Volume {
        new::Volume {
            id: "v".into(),
            display_name: None,
            size_gib: 1,
            provider_location: None,
            provider_auth: None,
            volume_type_name: Some("gold".into()),
            extra_specs: vec![("qos:iops".into(), "1".into()), ("k".into(), "v".into())],
            pool: None,
            qos_specs: vec![("iops".into(), "500".into())],
        }
    }

    #[test]
    fn an_older_driver_sees_qos_specs_among_the_extra_specs() {
        let old = volume(&volume_with_qos());
        assert_eq!(
            old.extra_specs,
            vec![
                ("k".to_string(), "v".to_string()),
                ("qos:iops".to_string(), "500".to_string())
            ]
        );
    }

    #[test]
    fn integer_lists_reach_an_older_driver_as_texts() {
        let mut c = new::Connector {
            host: "h".into(),
            ip: None,
            initiator: None,
            multipath: false,
            platform: None,
            os_type: None,
            extra: vec![("luns".into(), new::Value::Integers(vec![1, -2]))],
        };
        let old = connector(&c);
        assert!(
            matches!(&old.extra[..], [(k, old::Value::Texts(t))] if k == "luns" && *t == ["1", "-2"])
        );
        c.extra.clear();
        assert!(connector(&c).extra.is_empty());
    }

    #[test]
    fn an_older_model_update_sets_or_keeps() {
        let m = old::ModelUpdate {
            provider_location: Some("here".into()),
            provider_auth: None,
            metadata: vec![("a".into(), "b".into())],
        }
        .up();
        assert!(matches!(&m.provider_location, new::FieldUpdate::Set(l) if l == "here"));
        assert!(matches!(m.provider_auth, new::FieldUpdate::Keep));
        assert_eq!(m.metadata.len(), 1);
        assert!(m.pool.is_none() && m.metadata_removed.is_empty());
        assert!(retype_up(Ok(Ok(false))).unwrap().unwrap().is_none());
        assert!(retype_up(Ok(Ok(true))).unwrap().unwrap().is_some());
    }
}
