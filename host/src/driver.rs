//! What crosses the driver boundary, in the host's own types: the volume and snapshot a
//! driver is handed, the connector and the connection info of an attach, the model update
//! and the stats it answers.
//!
//! They mirror the contract's `types` interface field for field, but they are the host's:
//! the API parses into them, the volume manager passes them around, the database stores
//! their serde form, and only `runtime/` converts them to and from the bindings of whichever
//! contract version a driver was built against. A new contract version therefore changes
//! `runtime/` alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A loosely typed value, for the open-ended maps Cinder passes around (capabilities,
/// connection info, connector properties). In JSON it is the plain value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Flag(bool),
    Integer(i64),
    Number(f64),
    Text(String),
    Texts(Vec<String>),
    /// Contract 0.3.0 on; an older driver receives them as texts.
    Integers(Vec<i64>),
}

impl Value {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A JSON value as one of these; what has no shape here (an object, a mixed list)
    /// is kept as its JSON text, and `null` is nothing.
    pub fn from_json(v: serde_json::Value) -> Option<Value> {
        use serde_json::Value as J;
        Some(match v {
            J::Null => return None,
            J::Bool(b) => Value::Flag(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Number(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => Value::Text(s),
            J::Array(items) if !items.is_empty() && items.iter().all(J::is_i64) => {
                Value::Integers(items.iter().filter_map(J::as_i64).collect())
            }
            J::Array(items) if items.iter().all(J::is_string) => Value::Texts(
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        J::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ),
            other => Value::Text(other.to_string()),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Value::from_json(json).ok_or_else(|| serde::de::Error::custom("a value may not be null"))
    }
}

/// Open-ended properties, by key.
pub type Properties = BTreeMap<String, Value>;

/// A volume as a driver sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volume {
    /// The volume's UUID; drivers name their storage after it (`volume-<id>`).
    pub id: String,
    pub display_name: Option<String>,
    pub size_gib: u64,
    /// Where the driver said the volume lives, from an earlier model update.
    pub provider_location: Option<String>,
    /// Credentials the driver set for the volume's export (CHAP etc.).
    pub provider_auth: Option<String>,
    pub volume_type_name: Option<String>,
    pub extra_specs: Vec<(String, String)>,
    /// The pool the scheduler placed the volume in (the part after `#`).
    pub pool: Option<String>,
    /// The back-end QoS specs of its type (consumer `back-end` or `both`).
    pub qos_specs: Vec<(String, String)>,
}

/// A snapshot as a driver sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub volume_id: String,
    /// Size of the source volume when the snapshot was taken.
    pub volume_size_gib: u64,
    pub provider_location: Option<String>,
    pub display_name: Option<String>,
}

/// What a model update does to one recorded field.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum FieldUpdate {
    /// Leave it as it is.
    #[default]
    Keep,
    Set(String),
    /// Forget it.
    Clear,
}

impl FieldUpdate {
    /// The field's value after the update, given its value before.
    pub fn apply(&self, current: Option<&str>) -> Option<String> {
        match self {
            FieldUpdate::Keep => current.map(str::to_string),
            FieldUpdate::Set(v) => Some(v.clone()),
            FieldUpdate::Clear => None,
        }
    }

    /// The value set, if any.
    pub fn value(&self) -> Option<&str> {
        match self {
            FieldUpdate::Set(v) => Some(v),
            FieldUpdate::Keep | FieldUpdate::Clear => None,
        }
    }
}

/// What a driver wants recorded about a volume or snapshot after an operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelUpdate {
    pub provider_location: FieldUpdate,
    pub provider_auth: FieldUpdate,
    /// Admin metadata to merge (Cinder's `admin_metadata`).
    pub metadata: Vec<(String, String)>,
    /// Admin metadata keys to delete.
    pub metadata_removed: Vec<String>,
    /// The pool of the same backend the volume now lives in.
    pub pool: Option<String>,
}

impl ModelUpdate {
    /// A model update that records where the volume or snapshot lives.
    pub fn at(location: impl Into<String>) -> Self {
        ModelUpdate {
            provider_location: FieldUpdate::Set(location.into()),
            ..Default::default()
        }
    }

    /// Whether it changes a volume's admin metadata or pool (beyond its provider fields).
    pub fn has_extras(&self) -> bool {
        !self.metadata.is_empty() || !self.metadata_removed.is_empty() || self.pool.is_some()
    }
}

/// The host that wants to attach a volume (Cinder's connector properties). Its serde form
/// is os-brick's flat object: the named fields, and every other key beside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    #[serde(default)]
    pub multipath: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// Anything else the client sent (wwpns, nqn, mountpoint, …); `null`s are dropped.
    #[serde(flatten, deserialize_with = "properties_without_nulls")]
    pub extra: Properties,
}

fn properties_without_nulls<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Properties, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| Some((k, Value::from_json(v)?)))
        .collect())
}

impl Connector {
    /// The `extra` key of the connector the host uses to ask a volume driver for the
    /// local device behind a volume; clients may not send it.
    pub const LOCAL_KEY: &'static str = "local";

    /// The connector that asks a volume driver for the local device behind a volume.
    pub fn local(host_name: &str) -> Connector {
        Connector {
            host: host_name.to_string(),
            ip: None,
            initiator: None,
            multipath: false,
            platform: None,
            os_type: None,
            extra: BTreeMap::from([(Self::LOCAL_KEY.to_string(), Value::Flag(true))]),
        }
    }
}

/// Cinder's connection info: `{"driver_volume_type": …, "data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ConnectionInfoJson", into = "ConnectionInfoJson")]
pub struct ConnectionInfo {
    pub driver_volume_type: String,
    pub data: Properties,
    /// `data.qos_specs`, which the volume manager adds as Cinder's does: the front-end QoS
    /// specs of the volume's type (an object), or `null` when it has none. `None` (a
    /// driver's own answer) leaves the key out. It is the one entry of `data` that may be
    /// an object, so it is kept apart from the driver's properties.
    pub qos_specs: Option<serde_json::Value>,
}

/// [`ConnectionInfo`] as JSON, `qos_specs` inside `data`.
#[derive(Serialize, Deserialize)]
struct ConnectionInfoJson {
    driver_volume_type: String,
    #[serde(default)]
    data: BTreeMap<String, serde_json::Value>,
}

impl From<ConnectionInfo> for ConnectionInfoJson {
    fn from(c: ConnectionInfo) -> Self {
        let mut data: BTreeMap<String, serde_json::Value> = c
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        if let Some(q) = c.qos_specs {
            data.insert(ConnectionInfo::QOS_SPECS.into(), q);
        }
        ConnectionInfoJson {
            driver_volume_type: c.driver_volume_type,
            data,
        }
    }
}

impl From<ConnectionInfoJson> for ConnectionInfo {
    fn from(mut c: ConnectionInfoJson) -> Self {
        let qos_specs = c.data.remove(ConnectionInfo::QOS_SPECS);
        ConnectionInfo {
            driver_volume_type: c.driver_volume_type,
            // `null`s are dropped, as everywhere in these maps.
            data: c
                .data
                .into_iter()
                .filter_map(|(k, v)| Some((k, Value::from_json(v)?)))
                .collect(),
            qos_specs,
        }
    }
}

impl ConnectionInfo {
    /// The key of `data` that carries the front-end QoS specs.
    pub const QOS_SPECS: &'static str = "qos_specs";

    /// A text entry of `data`.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.data.get(key) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// One pool's report, in Cinder's stats keys.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolStats {
    pub pool_name: String,
    pub total_capacity_gb: f64,
    pub free_capacity_gb: f64,
    /// Sum of the virtual sizes of what lives in the pool (thin provisioning).
    pub provisioned_capacity_gb: Option<f64>,
    pub allocated_capacity_gb: Option<f64>,
    pub reserved_percentage: u32,
    pub max_over_subscription_ratio: f64,
    pub thin_provisioning_support: bool,
    pub thick_provisioning_support: bool,
    pub multiattach: bool,
    /// Further capabilities that volume type extra specs may match.
    pub capabilities: Properties,
}

impl PoolStats {
    /// Whether the pool reports the boolean capability `key` as true.
    pub fn has(&self, key: &str) -> bool {
        matches!(self.capabilities.get(key), Some(Value::Flag(true)))
    }
}

/// `get_volume_stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeStats {
    pub volume_backend_name: String,
    pub vendor_name: String,
    pub driver_version: String,
    pub storage_protocol: String,
    pub pools: Vec<PoolStats>,
}

/// A volume found on the backend that Ashlar does not manage yet.
#[derive(Clone, Debug, PartialEq)]
pub struct ManageableVolume {
    pub reference: String,
    pub size_gib: u64,
    pub safe_to_manage: bool,
    pub reason_not_safe: Option<String>,
    pub cinder_id: Option<String>,
}

/// A snapshot found on the backend that Ashlar does not manage yet.
#[derive(Clone, Debug, PartialEq)]
pub struct ManageableSnapshot {
    pub reference: String,
    pub size_gib: u64,
    pub safe_to_manage: bool,
    pub reason_not_safe: Option<String>,
    pub cinder_id: Option<String>,
    /// The reference of the volume it is a snapshot of.
    pub source_reference: String,
}

/// A driver's answer to the optional health probe.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    pub healthy: bool,
    pub detail: String,
}

/// One object of a backup store, as a backup driver's listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub name: String,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connector_round_trips_as_os_brick_sends_it() {
        let wire = serde_json::json!({
            "host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:abc",
            "multipath": false, "wwpns": ["50014380186af83c"], "mountpoint": "/dev/vdb",
            "do_local_attach": true, "nvme_port": 4420,
        });
        let mut with_null = wire.clone();
        with_null["nqn"] = serde_json::Value::Null;
        let c: Connector = serde_json::from_value(with_null).unwrap();
        assert!(!c.extra.contains_key("nqn"));
        let c: Connector = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(c.host, "compute-1");
        assert_eq!(
            c.initiator.as_deref(),
            Some("iqn.1993-08.org.debian:01:abc")
        );
        assert_eq!(
            c.extra.get("wwpns"),
            Some(&Value::Texts(vec!["50014380186af83c".into()]))
        );
        assert_eq!(c.extra.get("do_local_attach"), Some(&Value::Flag(true)));
        assert_eq!(c.extra.get("nvme_port"), Some(&Value::Integer(4420)));
        assert_eq!(serde_json::to_value(&c).unwrap(), wire);
    }

    #[test]
    fn connection_info_has_cinders_shape() {
        let info = ConnectionInfo {
            driver_volume_type: "iscsi".into(),
            data: BTreeMap::from([
                ("target_lun".into(), Value::Integer(1)),
                ("target_iqn".into(), Value::Text("iqn.x".into())),
            ]),
            qos_specs: None,
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"driver_volume_type": "iscsi",
                "data": {"target_lun": 1, "target_iqn": "iqn.x"}})
        );
        assert_eq!(
            serde_json::from_value::<ConnectionInfo>(json).unwrap(),
            info
        );
        assert_eq!(info.text("target_iqn"), Some("iqn.x"));
        assert_eq!(info.text("target_lun"), None);

        // The front-end QoS specs sit in `data` as an object, or `null` for none.
        for qos in [
            serde_json::json!({"total_iops_sec": "500"}),
            serde_json::Value::Null,
        ] {
            let with = ConnectionInfo {
                qos_specs: Some(qos.clone()),
                ..info.clone()
            };
            let json = serde_json::to_value(&with).unwrap();
            assert_eq!(json["data"]["qos_specs"], qos);
            assert_eq!(json["data"]["target_lun"], 1);
            assert_eq!(
                serde_json::from_value::<ConnectionInfo>(json).unwrap(),
                with
            );
        }
    }
}
