//! The volume scheduler: picks the pool a new volume lands on.
//!
//! It mirrors Cinder's FilterScheduler so that operators' volume types and
//! expectations carry over: every pool runs through the filters
//! ([`AvailabilityZoneFilter`], [`CapacityFilter`], [`CapabilitiesFilter`]),
//! the survivors are weighed ([`CapacityWeigher`]) and the heaviest wins.
//! Every rejection is kept so a failed request can say why each pool said no:
//! in full to the log and administrators, and to the tenant naming only backends
//! (a pool's name may be the directory it lives in) and what the request lacked.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod filters;
pub mod weighers;

pub use filters::{
    AvailabilityZoneFilter, BackendFilter, CapabilitiesFilter, CapacityFilter, ExtraSpecError,
    RetryFilter, match_extra_spec,
};
pub use weighers::{CapacityWeigher, Weigher, normalize};

/// A capability value as a driver reports it.
///
/// Cinder's capabilities are untyped Python values; this keeps the shapes
/// drivers actually send, and [`CapValue::to_python_str`] renders them the
/// way Cinder's string comparisons see them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CapValue {
    Text(String),
    Integer(i64),
    Number(f64),
    Flag(bool),
    Texts(Vec<String>),
    Integers(Vec<i64>),
}

impl CapValue {
    /// The value as Python's `str()` would print it (`True`, `100.0`,
    /// `['a', 'b']`), because extra specs are written against that form.
    pub fn to_python_str(&self) -> String {
        match self {
            CapValue::Text(text) => text.clone(),
            CapValue::Integer(n) => n.to_string(),
            CapValue::Number(x) => python_float(*x),
            CapValue::Flag(true) => "True".to_owned(),
            CapValue::Flag(false) => "False".to_owned(),
            CapValue::Texts(items) => {
                let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
                format!("[{}]", quoted.join(", "))
            }
            CapValue::Integers(items) => {
                let items: Vec<String> = items.iter().map(i64::to_string).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }

    /// Capacity figures as Cinder reports them: a number, or the strings
    /// `infinite` / `unknown` that the f64 conventions stand for.
    fn capacity(gb: f64) -> CapValue {
        if gb.is_nan() {
            CapValue::Text("unknown".to_owned())
        } else if gb.is_infinite() {
            CapValue::Text("infinite".to_owned())
        } else {
            CapValue::Number(gb)
        }
    }
}

impl fmt::Display for CapValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_python_str())
    }
}

/// Formats a float as Python's `repr()`/`str()` does, so messages and string
/// comparisons read exactly as they would in Cinder (`2000.0`, `1e+16`).
pub(crate) fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits, like Python's repr.
    let scientific = format!("{x:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    if (-4..16).contains(&exponent) {
        let positional = format!("{x}");
        if positional.contains('.') {
            positional
        } else {
            positional + ".0"
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// What one pool last reported, as the scheduler sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolState {
    /// `host@backend`.
    pub backend: String,
    /// Pool name; the full name is `host@backend#pool`.
    pub pool: String,
    pub availability_zone: String,
    /// `f64::INFINITY` is Cinder's `infinite`, `f64::NAN` its `unknown`.
    #[serde(with = "capacity")]
    pub total_capacity_gb: f64,
    /// Same conventions as `total_capacity_gb`.
    #[serde(with = "capacity")]
    pub free_capacity_gb: f64,
    pub provisioned_capacity_gb: f64,
    pub allocated_capacity_gb: f64,
    pub reserved_percentage: u32,
    pub max_over_subscription_ratio: f64,
    pub thin_provisioning_support: bool,
    pub thick_provisioning_support: bool,
    pub multiattach: bool,
    /// Extra capabilities the driver reported, plus the standard ones
    /// (`volume_backend_name`, `vendor_name`, `storage_protocol`,
    /// `driver_version`).
    pub capabilities: BTreeMap<String, CapValue>,
}

/// A capacity as stored for other hosts' schedulers: a number, or Cinder's `infinite`
/// and `unknown` (JSON has no infinity and no NaN).
mod capacity {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Gb(f64),
        Word(String),
    }

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            Stored::Gb(*v)
        } else if v.is_nan() {
            Stored::Word("unknown".into())
        } else {
            Stored::Word("infinite".into())
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::Gb(v) => v,
            Stored::Word(w) if w == "infinite" => f64::INFINITY,
            Stored::Word(_) => f64::NAN,
        })
    }
}

impl PoolState {
    /// The most this pool could ever hold, in GB: its total less the reservation, times
    /// the over-subscription ratio where it provisions thin (the bounds of Cinder's
    /// CapacityFilter for an empty pool). `None` when it reports `infinite` or `unknown`.
    pub fn ceiling_gb(&self) -> Option<f64> {
        if !self.total_capacity_gb.is_finite() || !self.free_capacity_gb.is_finite() {
            return None;
        }
        let usable = (self.total_capacity_gb - self.reserved_gb()).max(0.0);
        let ratio = self.max_over_subscription_ratio;
        Some(if self.thin_provisioning_support && ratio >= 1.0 {
            usable * ratio
        } else {
            usable
        })
    }

    /// `host@backend#pool`, the name Cinder puts in a volume's `host` field.
    pub fn name(&self) -> String {
        format!("{}#{}", self.backend, self.pool)
    }

    /// Space held back from scheduling, in GB, exactly as Cinder computes it:
    ///
    /// `reserved = floor(total_capacity_gb * (reserved_percentage / 100))`
    ///
    /// The percentage is divided first, as in Cinder, so float rounding
    /// matches too (29% of 100 GB reserves 28 GB there, and here).
    /// Infinite or unknown totals have no computable reservation: callers
    /// must handle those before asking.
    pub fn reserved_gb(&self) -> f64 {
        (self.total_capacity_gb * (f64::from(self.reserved_percentage) / 100.0)).floor()
    }

    /// Looks a capability up the way the CapabilitiesFilter sees it.
    ///
    /// The standard stats are exposed as capabilities from the typed fields
    /// (these win over a same-named entry in `capabilities`, since they are
    /// what the filters use). `volume_backend_name` falls back to the part of
    /// `backend` after `@` when the driver did not report one.
    pub fn capability(&self, key: &str) -> Option<CapValue> {
        let standard = match key {
            "pool_name" => CapValue::Text(self.pool.clone()),
            "thin_provisioning_support" => CapValue::Flag(self.thin_provisioning_support),
            "thick_provisioning_support" => CapValue::Flag(self.thick_provisioning_support),
            "multiattach" => CapValue::Flag(self.multiattach),
            "total_capacity_gb" => CapValue::capacity(self.total_capacity_gb),
            "free_capacity_gb" => CapValue::capacity(self.free_capacity_gb),
            "provisioned_capacity_gb" => CapValue::capacity(self.provisioned_capacity_gb),
            "allocated_capacity_gb" => CapValue::capacity(self.allocated_capacity_gb),
            "reserved_percentage" => CapValue::Integer(i64::from(self.reserved_percentage)),
            "max_over_subscription_ratio" => CapValue::Number(self.max_over_subscription_ratio),
            "volume_backend_name" => match self.capabilities.get(key) {
                Some(reported) => reported.clone(),
                None => {
                    let name = self.backend.split_once('@').map_or("", |(_, name)| name);
                    CapValue::Text(name.to_owned())
                }
            },
            _ => return self.capabilities.get(key).cloned(),
        };
        Some(standard)
    }

    /// Whether a request is placed thin on this pool: thin was not ruled out
    /// by the volume type and the pool can do it. Both the CapacityFilter and
    /// the CapacityWeigher decide on this.
    pub fn provisions_thin(&self, spec: &RequestSpec) -> bool {
        spec.wants_thin() && self.thin_provisioning_support
    }
}

/// One volume creation request, reduced to what scheduling needs.
#[derive(Clone, Debug, Default)]
pub struct RequestSpec {
    pub size_gib: u64,
    pub availability_zone: Option<String>,
    pub volume_type: Option<String>,
    /// The volume type's extra specs, keys possibly scoped (`scope:key`).
    pub extra_specs: BTreeMap<String, String>,
    /// Backends (`host@backend`) an earlier attempt of this request failed on; a
    /// rescheduled create does not go back to them (Cinder's retry hosts).
    pub tried: Vec<String>,
}

impl RequestSpec {
    /// The requested `provisioning:type`, also accepted under the
    /// `capabilities:` scope since operators write it both ways.
    pub fn provisioning_type(&self) -> Option<&str> {
        self.extra_specs
            .get("provisioning:type")
            .or_else(|| self.extra_specs.get("capabilities:provisioning:type"))
            .map(String::as_str)
    }

    /// Cinder defaults to thin; only an explicit `thick` opts out.
    pub fn wants_thin(&self) -> bool {
        self.provisioning_type() != Some("thick")
    }
}

/// Scheduler tuning, named after Cinder's options.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Cinder's `capacity_weight_multiplier`: positive spreads volumes over
    /// the emptiest pools, negative stacks them onto the fullest.
    pub capacity_weight_multiplier: f64,
    /// Cinder's `scheduler_max_attempts`: how many backends a create may be tried on
    /// before it fails.
    pub max_attempts: u32,
    /// Cinder's `service_down_time`: another host's backend whose stats are older than
    /// this is passed by (its hosts are down), and a host silent this long has its
    /// running jobs taken over by a peer.
    pub service_down_time: std::time::Duration,
    /// How often each host polls its backends' stats (`stats_interval_secs`): another
    /// host's stats count as live for `service_down_time` past their next poll.
    pub stats_interval: std::time::Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            capacity_weight_multiplier: 1.0,
            max_attempts: 3,
            service_down_time: std::time::Duration::from_secs(60),
            stats_interval: std::time::Duration::from_secs(60),
        }
    }
}

/// Where a volume goes, and the weight that won it the spot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    pub backend: String,
    pub pool: String,
    pub weight: f64,
}

impl Placement {
    /// `host@backend#pool`.
    pub fn name(&self) -> String {
        format!("{}#{}", self.backend, self.pool)
    }
}

/// Why one pool was filtered out: the first filter that said no.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejection {
    /// `host@backend#pool`.
    pub pool: String,
    /// `host@backend`.
    pub backend: String,
    pub filter: &'static str,
    /// The filter's reason, naming the pool: for the log and administrators.
    pub reason: String,
    /// The filter's reason in a tenant's words ([`BackendFilter::public_reason`]).
    pub public: String,
}

/// No pool passed every filter; carries each pool's reason so the user is
/// not left guessing, unlike Cinder's bare "No valid backend was found".
/// Its text names every pool and is for the log; [`NoValidBackend::public`]
/// is what a tenant is told.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("No valid backend was found. {}", describe_rejections(.reasons))]
pub struct NoValidBackend {
    pub reasons: Vec<Rejection>,
}

impl NoValidBackend {
    /// Each backend (`host@backend`, never its pools) and why it could not take
    /// the volume, once per backend and reason.
    pub fn public(&self) -> String {
        if self.reasons.is_empty() {
            return "No valid backend was found. No backend has reported its capacity yet."
                .to_owned();
        }
        let mut parts: Vec<String> = Vec::new();
        for rejection in &self.reasons {
            let part = format!("{}: {}", rejection.backend, rejection.public);
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        format!("No valid backend was found. {}.", parts.join("; "))
    }
}

fn describe_rejections(reasons: &[Rejection]) -> String {
    if reasons.is_empty() {
        return "No pools have reported stats yet".to_owned();
    }
    let parts: Vec<String> = reasons
        .iter()
        .map(|rejection| format!("{}: {}", rejection.pool, rejection.reason))
        .collect();
    parts.join("; ")
}

/// Runs every pool through `filters` in order; a pool stops at the first
/// filter that rejects it, and that rejection is recorded.
pub fn filter_backends<'a>(
    pools: &'a [PoolState],
    spec: &RequestSpec,
    filters: &[&dyn BackendFilter],
) -> (Vec<&'a PoolState>, Vec<Rejection>) {
    let mut passed = Vec::new();
    let mut rejections = Vec::new();
    'pools: for pool in pools {
        for filter in filters {
            if let Err(reason) = filter.backend_passes(pool, spec) {
                rejections.push(Rejection {
                    pool: pool.name(),
                    backend: pool.backend.clone(),
                    filter: filter.name(),
                    reason,
                    public: filter.public_reason(pool, spec),
                });
                continue 'pools;
            }
        }
        passed.push(pool);
    }
    (passed, rejections)
}

/// Weighs candidates as Cinder does and returns them best first.
///
/// For each weigher the raw weights are normalised over the candidates
/// (see [`normalize`]), multiplied by the weigher's multiplier and summed:
///
/// `weight(pool) = Σ multiplier_w * normalize(raw_w)(pool)`
///
/// Ties go to the lexicographically smallest pool name so that the same
/// stats always give the same answer.
pub fn weigh_backends(
    candidates: &[&PoolState],
    spec: &RequestSpec,
    weighers: &[&dyn Weigher],
) -> Vec<Placement> {
    let mut totals = vec![0.0_f64; candidates.len()];
    for weigher in weighers {
        let raw: Vec<f64> = candidates
            .iter()
            .map(|pool| weigher.weigh(pool, spec))
            .collect();
        let multiplier = weigher.multiplier();
        for (total, weight) in totals.iter_mut().zip(normalize(&raw)) {
            *total += multiplier * weight;
        }
    }
    let mut ranked: Vec<(String, Placement)> = candidates
        .iter()
        .zip(totals)
        .map(|(pool, weight)| {
            let placement = Placement {
                backend: pool.backend.clone(),
                pool: pool.pool.clone(),
                weight,
            };
            (pool.name(), placement)
        })
        .collect();
    ranked.sort_by(|(a_name, a), (b_name, b)| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a_name.cmp(b_name))
    });
    ranked.into_iter().map(|(_, placement)| placement).collect()
}

/// Picks the pool for a new volume: the RetryFilter (a rescheduled request skips the
/// backends it failed on), then Cinder's default filters in order
/// (AvailabilityZoneFilter, CapacityFilter, CapabilitiesFilter), then the
/// CapacityWeigher with the configured multiplier.
pub fn schedule(
    pools: &[PoolState],
    spec: &RequestSpec,
    config: &SchedulerConfig,
) -> Result<Placement, NoValidBackend> {
    let filters: [&dyn BackendFilter; 4] = [
        &RetryFilter,
        &AvailabilityZoneFilter,
        &CapacityFilter,
        &CapabilitiesFilter,
    ];
    let (candidates, reasons) = filter_backends(pools, spec, &filters);
    let capacity = CapacityWeigher::new(config.capacity_weight_multiplier);
    let weighers: [&dyn Weigher; 1] = [&capacity];
    weigh_backends(&candidates, spec, &weighers)
        .into_iter()
        .next()
        .ok_or(NoValidBackend { reasons })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A thick-only pool in zone `nova` with the given total and free GB.
    pub(crate) fn pool(name: &str, total: f64, free: f64) -> PoolState {
        let (backend, pool) = name.split_once('#').unwrap_or((name, "pool"));
        PoolState {
            backend: backend.to_owned(),
            pool: pool.to_owned(),
            availability_zone: "nova".to_owned(),
            total_capacity_gb: total,
            free_capacity_gb: free,
            provisioned_capacity_gb: total - free,
            allocated_capacity_gb: total - free,
            reserved_percentage: 0,
            max_over_subscription_ratio: 1.0,
            thin_provisioning_support: false,
            thick_provisioning_support: true,
            multiattach: false,
            capabilities: BTreeMap::new(),
        }
    }

    /// A thin-only pool with the given over-subscription figures.
    pub(crate) fn thin_pool(
        name: &str,
        total: f64,
        free: f64,
        provisioned: f64,
        ratio: f64,
    ) -> PoolState {
        PoolState {
            provisioned_capacity_gb: provisioned,
            max_over_subscription_ratio: ratio,
            thin_provisioning_support: true,
            thick_provisioning_support: false,
            ..pool(name, total, free)
        }
    }

    pub(crate) fn spec(size_gib: u64) -> RequestSpec {
        RequestSpec {
            size_gib,
            ..RequestSpec::default()
        }
    }

    pub(crate) fn spec_with(size_gib: u64, extra_specs: &[(&str, &str)]) -> RequestSpec {
        RequestSpec {
            extra_specs: extra_specs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..spec(size_gib)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{pool, spec, spec_with, thin_pool};
    use super::*;

    fn config(multiplier: f64) -> SchedulerConfig {
        SchedulerConfig {
            capacity_weight_multiplier: multiplier,
            ..SchedulerConfig::default()
        }
    }

    fn three_pools() -> Vec<PoolState> {
        vec![
            pool("a@lvm#p", 1000.0, 100.0),
            pool("b@lvm#p", 1000.0, 700.0),
            pool("c@lvm#p", 1000.0, 400.0),
        ]
    }

    #[test]
    fn spreads_to_most_free_space_by_default() {
        let placement = schedule(&three_pools(), &spec(10), &SchedulerConfig::default()).unwrap();
        assert_eq!(placement.name(), "b@lvm#p");
        assert_eq!(placement.weight, 1.0);
    }

    #[test]
    fn negative_multiplier_stacks_onto_least_free_space() {
        let placement = schedule(&three_pools(), &spec(10), &config(-1.0)).unwrap();
        assert_eq!(placement.name(), "a@lvm#p");
        assert_eq!(placement.weight, 0.0);
    }

    #[test]
    fn weights_are_normalised_and_ranked() {
        let pools = three_pools();
        let candidates: Vec<&PoolState> = pools.iter().collect();
        let weigher = CapacityWeigher::new(2.0);
        let ranked = weigh_backends(&candidates, &spec(10), &[&weigher]);
        let summary: Vec<(String, f64)> = ranked.iter().map(|p| (p.name(), p.weight)).collect();
        assert_eq!(
            summary,
            vec![
                ("b@lvm#p".to_owned(), 2.0),
                ("c@lvm#p".to_owned(), 1.0),
                ("a@lvm#p".to_owned(), 0.0),
            ]
        );
    }

    #[test]
    fn ties_go_to_the_smallest_name() {
        let pools = vec![
            pool("z@lvm#p", 1000.0, 500.0),
            pool("m@lvm#p", 1000.0, 500.0),
        ];
        let placement = schedule(&pools, &spec(10), &SchedulerConfig::default()).unwrap();
        assert_eq!(placement.name(), "m@lvm#p");
        assert_eq!(placement.weight, 0.0);
    }

    #[test]
    fn filtered_pools_are_never_chosen() {
        // Stacking would prefer the fuller pool, but it cannot hold 800 GB.
        let pools = vec![
            pool("a@lvm#p", 1000.0, 100.0),
            pool("b@lvm#p", 1000.0, 900.0),
        ];
        let placement = schedule(&pools, &spec(800), &config(-1.0)).unwrap();
        assert_eq!(placement.name(), "b@lvm#p");
    }

    #[test]
    fn no_valid_backend_lists_every_pools_reason() {
        let mut elsewhere = pool("a@lvm#p", 1000.0, 900.0);
        elsewhere.availability_zone = "az2".to_owned();
        let pools = vec![
            elsewhere,
            pool("b@lvm#p", 100.0, 20.0),
            thin_pool("c@nfs#share", 100.0, 50.0, 2050.0, 20.0),
        ];
        let request = RequestSpec {
            availability_zone: Some("nova".to_owned()),
            ..spec(50)
        };
        let err = schedule(&pools, &request, &SchedulerConfig::default()).unwrap_err();
        let filters: Vec<&str> = err.reasons.iter().map(|r| r.filter).collect();
        assert_eq!(
            filters,
            vec!["AvailabilityZoneFilter", "CapacityFilter", "CapacityFilter"]
        );
        assert_eq!(
            err.to_string(),
            "No valid backend was found. \
             a@lvm#p: availability zone nova does not match pool's az2; \
             b@lvm#p: Insufficient free space for volume creation on pool b@lvm#p \
             (requested / avail): 50/20.0; \
             c@nfs#share: Insufficient free space for thin provisioning. The ratio of \
             provisioned capacity over total capacity 21.00 has exceeded the maximum over \
             subscription ratio 20.00 on pool c@nfs#share."
        );
    }

    #[test]
    fn a_tenant_is_told_backends_and_reasons_not_pools() {
        let mut elsewhere = pool("h@nfs#localhost:/srv/a", 1000.0, 900.0);
        elsewhere.availability_zone = "az2".to_owned();
        let pools = vec![
            elsewhere,
            pool("h@lvm#/dev/vg0", 100.0, 20.0),
            pool("h@lvm#/dev/vg1", 100.0, 10.0),
            pool("h@acme#/srv/b", 100.0, 90.0),
        ];
        let request = RequestSpec {
            availability_zone: Some("nova".to_owned()),
            ..spec_with(
                50,
                &[("vendor_name", "Acme"), ("provisioning:type", "thick")],
            )
        };
        let err = schedule(&pools, &request, &SchedulerConfig::default()).unwrap_err();
        assert!(err.to_string().contains("h@lvm#/dev/vg0"), "{err}");
        assert_eq!(
            err.public(),
            "No valid backend was found. h@nfs: Not in availability zone nova; \
             h@lvm: Insufficient free space for a 50 GB volume; \
             h@acme: Capability `vendor_name` does not satisfy the volume type."
        );
        let mut thin_only = pool("h@nfs#/srv/c", 100.0, 90.0);
        thin_only.thick_provisioning_support = false;
        let err = schedule(&[thin_only], &request, &SchedulerConfig::default()).unwrap_err();
        assert_eq!(
            err.public(),
            "No valid backend was found. h@nfs: Does not support thick provisioning."
        );
        let err = schedule(&[], &request, &SchedulerConfig::default()).unwrap_err();
        assert!(!err.public().contains('#'));
    }

    #[test]
    fn first_failing_filter_is_the_one_recorded() {
        // Fails all three filters; only the AZ one is reported.
        let mut pool = pool("a@lvm#p", 10.0, 1.0);
        pool.availability_zone = "az2".to_owned();
        let request = RequestSpec {
            availability_zone: Some("nova".to_owned()),
            ..spec_with(50, &[("vendor_name", "Acme")])
        };
        let err = schedule(&[pool], &request, &SchedulerConfig::default()).unwrap_err();
        assert_eq!(err.reasons.len(), 1);
        assert_eq!(err.reasons[0].filter, "AvailabilityZoneFilter");
    }

    #[test]
    fn no_pools_at_all() {
        let err = schedule(&[], &spec(1), &SchedulerConfig::default()).unwrap_err();
        assert!(err.reasons.is_empty());
        assert_eq!(
            err.to_string(),
            "No valid backend was found. No pools have reported stats yet"
        );
    }

    #[test]
    fn infinite_pool_always_loses_as_in_cinder() {
        let pools = vec![
            pool("a@lvm#p", 1000.0, 900.0),
            pool("b@ceph#rbd", f64::INFINITY, f64::INFINITY),
        ];
        let spread = schedule(&pools, &spec(10), &SchedulerConfig::default()).unwrap();
        assert_eq!(spread.name(), "a@lvm#p");
        let stacked = schedule(&pools, &spec(10), &config(-1.0)).unwrap();
        assert_eq!(stacked.name(), "a@lvm#p");
    }

    #[test]
    fn reserved_is_floored_after_dividing_the_percentage() {
        let mut pool = pool("a@lvm#p", 100.0, 100.0);
        pool.reserved_percentage = 29;
        // 100 * 0.29 == 28.999999999999996 in IEEE doubles, as in Python.
        assert_eq!(pool.reserved_gb(), 28.0);
        pool.reserved_percentage = 10;
        pool.total_capacity_gb = 1234.0;
        assert_eq!(pool.reserved_gb(), 123.0);
    }

    #[test]
    fn standard_stats_are_capabilities() {
        let mut pool = thin_pool("host@lvm#fast", f64::INFINITY, f64::NAN, 5.0, 20.0);
        pool.reserved_percentage = 5;
        assert_eq!(
            pool.capability("pool_name"),
            Some(CapValue::Text("fast".into()))
        );
        assert_eq!(
            pool.capability("volume_backend_name"),
            Some(CapValue::Text("lvm".into()))
        );
        assert_eq!(
            pool.capability("total_capacity_gb"),
            Some(CapValue::Text("infinite".into()))
        );
        assert_eq!(
            pool.capability("free_capacity_gb"),
            Some(CapValue::Text("unknown".into()))
        );
        assert_eq!(
            pool.capability("thin_provisioning_support"),
            Some(CapValue::Flag(true))
        );
        assert_eq!(
            pool.capability("reserved_percentage"),
            Some(CapValue::Integer(5))
        );
        assert_eq!(pool.capability("vendor_name"), None);
        pool.capabilities.insert(
            "volume_backend_name".into(),
            CapValue::Text("LVM_iSCSI".into()),
        );
        assert_eq!(
            pool.capability("volume_backend_name"),
            Some(CapValue::Text("LVM_iSCSI".into()))
        );
    }

    #[test]
    fn values_render_as_python_would() {
        assert_eq!(CapValue::Flag(true).to_python_str(), "True");
        assert_eq!(CapValue::Flag(false).to_python_str(), "False");
        assert_eq!(CapValue::Number(100.0).to_python_str(), "100.0");
        assert_eq!(CapValue::Number(0.1).to_python_str(), "0.1");
        assert_eq!(CapValue::Number(1e16).to_python_str(), "1e+16");
        assert_eq!(CapValue::Number(1.5e-5).to_python_str(), "1.5e-05");
        assert_eq!(CapValue::Number(0.0001).to_python_str(), "0.0001");
        assert_eq!(CapValue::Number(-2.5).to_python_str(), "-2.5");
        assert_eq!(CapValue::Integer(-7).to_python_str(), "-7");
        assert_eq!(CapValue::Integers(vec![1, -2]).to_python_str(), "[1, -2]");
        assert_eq!(
            CapValue::Texts(vec!["a".into(), "b".into()]).to_python_str(),
            "['a', 'b']"
        );
    }

    #[test]
    fn provisioning_type_is_read_under_either_key() {
        assert!(spec(1).wants_thin());
        assert!(!spec_with(1, &[("provisioning:type", "thick")]).wants_thin());
        assert!(!spec_with(1, &[("capabilities:provisioning:type", "thick")]).wants_thin());
        assert!(spec_with(1, &[("provisioning:type", "thin")]).wants_thin());
    }
}
