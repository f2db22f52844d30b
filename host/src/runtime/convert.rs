//! The host's driver types ([`crate::driver`]) to and from the latest bindings' types.
//! Calls to drivers built for older contract versions convert the latest types once more
//! (`compat`), so this is the only place the host's types and the bindings meet.

use super::latest::ashlar::driver::types as wit;
use super::latest::backup::exports::ashlar::driver::backup_driver_core::ObjectInfo as WitObject;
use crate::driver;
use wit::HealthReport as WitHealth;

fn value_to_wit(v: &driver::Value) -> wit::Value {
    match v {
        driver::Value::Text(s) => wit::Value::Text(s.clone()),
        driver::Value::Integer(i) => wit::Value::Integer(*i),
        driver::Value::Number(n) => wit::Value::Number(*n),
        driver::Value::Flag(b) => wit::Value::Flag(*b),
        driver::Value::Texts(t) => wit::Value::Texts(t.clone()),
        driver::Value::Integers(i) => wit::Value::Integers(i.clone()),
    }
}

fn value_from_wit(v: wit::Value) -> driver::Value {
    match v {
        wit::Value::Text(s) => driver::Value::Text(s),
        wit::Value::Integer(i) => driver::Value::Integer(i),
        wit::Value::Number(n) => driver::Value::Number(n),
        wit::Value::Flag(b) => driver::Value::Flag(b),
        wit::Value::Texts(t) => driver::Value::Texts(t),
        wit::Value::Integers(i) => driver::Value::Integers(i),
    }
}

fn properties_to_wit(p: &driver::Properties) -> Vec<(String, wit::Value)> {
    p.iter()
        .map(|(k, v)| (k.clone(), value_to_wit(v)))
        .collect()
}

/// Later duplicates of a key win, as they would in the JSON object Cinder builds.
fn properties_from_wit(p: Vec<(String, wit::Value)>) -> driver::Properties {
    p.into_iter().map(|(k, v)| (k, value_from_wit(v))).collect()
}

pub(super) fn volume(v: &driver::Volume) -> wit::Volume {
    wit::Volume {
        id: v.id.clone(),
        display_name: v.display_name.clone(),
        size_gib: v.size_gib,
        provider_location: v.provider_location.clone(),
        provider_auth: v.provider_auth.clone(),
        volume_type_name: v.volume_type_name.clone(),
        extra_specs: v.extra_specs.clone(),
        pool: v.pool.clone(),
        qos_specs: v.qos_specs.clone(),
    }
}

pub(super) fn snapshot(s: &driver::Snapshot) -> wit::Snapshot {
    wit::Snapshot {
        id: s.id.clone(),
        volume_id: s.volume_id.clone(),
        volume_size_gib: s.volume_size_gib,
        provider_location: s.provider_location.clone(),
        display_name: s.display_name.clone(),
    }
}

pub(super) fn connector(c: &driver::Connector) -> wit::Connector {
    wit::Connector {
        host: c.host.clone(),
        ip: c.ip.clone(),
        initiator: c.initiator.clone(),
        multipath: c.multipath,
        platform: c.platform.clone(),
        os_type: c.os_type.clone(),
        extra: properties_to_wit(&c.extra),
    }
}

fn field_update(f: wit::FieldUpdate) -> driver::FieldUpdate {
    match f {
        wit::FieldUpdate::Keep => driver::FieldUpdate::Keep,
        wit::FieldUpdate::Set(v) => driver::FieldUpdate::Set(v),
        wit::FieldUpdate::Clear => driver::FieldUpdate::Clear,
    }
}

pub(super) fn model_update(m: wit::ModelUpdate) -> driver::ModelUpdate {
    driver::ModelUpdate {
        provider_location: field_update(m.provider_location),
        provider_auth: field_update(m.provider_auth),
        metadata: m.metadata,
        metadata_removed: m.metadata_removed,
        pool: m.pool,
    }
}

pub(super) fn connection_info(c: wit::ConnectionInfo) -> driver::ConnectionInfo {
    driver::ConnectionInfo {
        driver_volume_type: c.driver_volume_type,
        data: properties_from_wit(c.data),
        qos_specs: None,
    }
}

pub(super) fn volume_stats(s: wit::VolumeStats) -> driver::VolumeStats {
    driver::VolumeStats {
        volume_backend_name: s.volume_backend_name,
        vendor_name: s.vendor_name,
        driver_version: s.driver_version,
        storage_protocol: s.storage_protocol,
        pools: s
            .pools
            .into_iter()
            .map(|p| driver::PoolStats {
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
                capabilities: properties_from_wit(p.capabilities),
            })
            .collect(),
    }
}

pub(super) fn manageable_volume(m: wit::ManageableVolume) -> driver::ManageableVolume {
    driver::ManageableVolume {
        reference: m.reference,
        size_gib: m.size_gib,
        safe_to_manage: m.safe_to_manage,
        reason_not_safe: m.reason_not_safe,
        cinder_id: m.cinder_id,
    }
}

pub(super) fn manageable_snapshot(m: wit::ManageableSnapshot) -> driver::ManageableSnapshot {
    driver::ManageableSnapshot {
        reference: m.reference,
        size_gib: m.size_gib,
        safe_to_manage: m.safe_to_manage,
        reason_not_safe: m.reason_not_safe,
        cinder_id: m.cinder_id,
        source_reference: m.source_reference,
    }
}

pub(super) fn health_report(h: WitHealth) -> driver::HealthReport {
    driver::HealthReport {
        healthy: h.healthy,
        detail: h.detail,
    }
}

pub(super) fn stored_object(o: WitObject) -> driver::StoredObject {
    driver::StoredObject {
        name: o.name,
        size: o.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_round_trip() {
        for v in [
            driver::Value::Text("t".into()),
            driver::Value::Integer(-3),
            driver::Value::Number(1.5),
            driver::Value::Flag(true),
            driver::Value::Texts(vec!["a".into(), "b".into()]),
            driver::Value::Integers(vec![7, -1]),
        ] {
            assert_eq!(value_from_wit(value_to_wit(&v)), v);
        }
        let c = driver::Connector::local("h");
        let w = connector(&c);
        assert_eq!(w.extra.len(), 1);
        assert!(matches!(w.extra[0], (ref k, wit::Value::Flag(true)) if k == "local"));
        assert_eq!(properties_from_wit(w.extra), c.extra);
    }
}
