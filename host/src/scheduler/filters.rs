//! Backend filters: each one can veto a pool for a request, with a reason.
//!
//! They reproduce Cinder's `AvailabilityZoneFilter`, `CapacityFilter` and
//! `CapabilitiesFilter` (with `extra_specs_ops`), so that volume types
//! written for Cinder schedule the same way here.

use super::{CapValue, PoolState, RequestSpec, python_float};

/// One step of the filter chain, named as in Cinder's `scheduler_default_filters`.
pub trait BackendFilter {
    fn name(&self) -> &'static str;
    /// `Err` carries a human-readable reason for the log and administrators,
    /// naming the pool (whose name may be a directory) and what it reported.
    fn backend_passes(&self, pool: &PoolState, spec: &RequestSpec) -> Result<(), String>;
    /// Why this filter refused `pool`, in words a tenant may read: no pool name,
    /// no value the driver reported, only what the request asked for.
    fn public_reason(&self, pool: &PoolState, spec: &RequestSpec) -> String;
}

/// Passes over the backends a rescheduled request already failed on (Cinder's
/// RetryFilter).
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryFilter;

impl BackendFilter for RetryFilter {
    fn name(&self) -> &'static str {
        "RetryFilter"
    }

    fn backend_passes(&self, pool: &PoolState, spec: &RequestSpec) -> Result<(), String> {
        if spec.tried.contains(&pool.backend) {
            Err(format!(
                "backend {} already failed this request",
                pool.backend
            ))
        } else {
            Ok(())
        }
    }

    fn public_reason(&self, _pool: &PoolState, _spec: &RequestSpec) -> String {
        "Already failed this request".to_owned()
    }
}

/// Keeps volumes in the zone the user asked for; no zone asked, any will do.
#[derive(Clone, Copy, Debug, Default)]
pub struct AvailabilityZoneFilter;

impl BackendFilter for AvailabilityZoneFilter {
    fn name(&self) -> &'static str {
        "AvailabilityZoneFilter"
    }

    fn backend_passes(&self, pool: &PoolState, spec: &RequestSpec) -> Result<(), String> {
        match &spec.availability_zone {
            Some(wanted) if *wanted != pool.availability_zone => Err(format!(
                "availability zone {wanted} does not match pool's {}",
                pool.availability_zone
            )),
            _ => Ok(()),
        }
    }

    fn public_reason(&self, _pool: &PoolState, spec: &RequestSpec) -> String {
        match &spec.availability_zone {
            Some(wanted) => format!("Not in availability zone {wanted}"),
            None => "Not in the availability zone asked for".to_owned(),
        }
    }
}

/// Rejects pools that cannot hold the volume, as Cinder's CapacityFilter.
///
/// With `total`, `free`, `provisioned` in GB, `requested` the volume size and
/// `ratio` the pool's `max_over_subscription_ratio`:
///
/// - `free` infinite or unknown: pass (the driver cannot tell; a failed
///   create is rescheduled). `total` infinite or unknown: pass only when
///   `reserved_percentage` is 0, since the reservation cannot be computed.
/// - `total <= 0`: fail.
/// - `free' = free - floor(total * (reserved_percentage / 100))`
/// - Thin (not `provisioning:type=thick`, and the pool supports thin):
///   `(provisioned + requested) / total <= ratio` and
///   `free' * ratio >= requested`; a ratio below 1 fails outright.
/// - Otherwise (thick, or the pool cannot do thin): `free' >= requested`,
///   and a thick request needs `thick_provisioning_support`.
///
/// A zero-sized request is Cinder's "manage existing" and always passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct CapacityFilter;

impl BackendFilter for CapacityFilter {
    fn name(&self) -> &'static str {
        "CapacityFilter"
    }

    fn backend_passes(&self, pool: &PoolState, spec: &RequestSpec) -> Result<(), String> {
        if spec.size_gib == 0 {
            return Ok(());
        }
        let name = pool.name();
        let requested = spec.size_gib as f64;
        let total = pool.total_capacity_gb;
        if !pool.free_capacity_gb.is_finite() {
            return Ok(());
        }
        if !total.is_finite() {
            if pool.reserved_percentage == 0 {
                return Ok(());
            }
            let reported = if total.is_nan() {
                "unknown"
            } else {
                "infinite"
            };
            return Err(format!(
                "Cannot honour reserved percentage {}% with {reported} total capacity on pool {name}.",
                pool.reserved_percentage
            ));
        }
        if total <= 0.0 {
            return Err(format!(
                "Insufficient free space for volume creation. Total capacity is {total:.2} on pool {name}."
            ));
        }
        let free = pool.free_capacity_gb - pool.reserved_gb();

        if pool.provisions_thin(spec) {
            let ratio = pool.max_over_subscription_ratio;
            // A NaN ratio fails too, as it should.
            if ratio.is_nan() || ratio < 1.0 {
                return Err(format!(
                    "Filtering out pool {name} with an invalid maximum over subscription ratio \
                     of {ratio:.2}. The ratio should be a minimum of 1.0."
                ));
            }
            let provisioned_ratio = (pool.provisioned_capacity_gb + requested) / total;
            if provisioned_ratio > ratio {
                return Err(format!(
                    "Insufficient free space for thin provisioning. The ratio of provisioned \
                     capacity over total capacity {provisioned_ratio:.2} has exceeded the maximum \
                     over subscription ratio {ratio:.2} on pool {name}."
                ));
            }
            // The free space left after reservation, over-subscribed.
            let adjusted_free_virtual = free * ratio;
            if adjusted_free_virtual >= requested {
                return Ok(());
            }
            return Err(format!(
                "Insufficient free virtual space ({}GB) to accommodate thin provisioned {}GB \
                 volume on pool {name}.",
                python_float(adjusted_free_virtual),
                spec.size_gib
            ));
        }

        // Not thin here: either thick was asked for, or the pool cannot do
        // thin (then it is placed thick if the pool can, as Cinder does).
        if !spec.wants_thin() && !pool.thick_provisioning_support {
            return Err(format!("Pool {name} does not support thick provisioning."));
        }
        if free < requested {
            return Err(format!(
                "Insufficient free space for volume creation on pool {name} \
                 (requested / avail): {}/{}",
                spec.size_gib,
                python_float(free)
            ));
        }
        Ok(())
    }

    fn public_reason(&self, pool: &PoolState, spec: &RequestSpec) -> String {
        if !spec.wants_thin() && !pool.thick_provisioning_support {
            "Does not support thick provisioning".to_owned()
        } else {
            format!("Insufficient free space for a {} GB volume", spec.size_gib)
        }
    }
}

/// Matches the volume type's extra specs against the pool's capabilities,
/// as Cinder's CapabilitiesFilter.
///
/// A key `scope:rest` is only checked when the scope is `capabilities`
/// (then `rest` is looked up); every other scope (`qos:`, `provisioning:`,
/// vendor scopes) belongs to someone else and is skipped. Unscoped keys such
/// as `multiattach` or `volume_backend_name` are checked. The requirement is
/// evaluated with [`match_extra_spec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CapabilitiesFilter;

impl BackendFilter for CapabilitiesFilter {
    fn name(&self) -> &'static str {
        "CapabilitiesFilter"
    }

    fn backend_passes(&self, pool: &PoolState, spec: &RequestSpec) -> Result<(), String> {
        self.first_unmet(pool, spec)
            .map_or(Ok(()), |(_, reason)| Err(reason))
    }

    fn public_reason(&self, pool: &PoolState, spec: &RequestSpec) -> String {
        match self.first_unmet(pool, spec) {
            Some((capability, _)) => {
                format!("Capability `{capability}` does not satisfy the volume type")
            }
            None => "Does not satisfy the volume type".to_owned(),
        }
    }
}

impl CapabilitiesFilter {
    /// The first capability the pool does not satisfy, and why.
    fn first_unmet(&self, pool: &PoolState, spec: &RequestSpec) -> Option<(String, String)> {
        for (key, requirement) in &spec.extra_specs {
            let capability = match key.split_once(':') {
                None => key.as_str(),
                Some(("capabilities", rest)) => rest,
                Some(_) => continue,
            };
            // The CapacityFilter owns provisioning:type, whichever way it is
            // scoped; no driver reports it as a capability.
            if capability == "provisioning:type" {
                continue;
            }
            let reason = match pool.capability(capability) {
                None => format!(
                    "capability `{capability}` not reported by pool {}",
                    pool.name()
                ),
                Some(value) => match match_extra_spec(&value, requirement) {
                    Ok(true) => continue,
                    Ok(false) => format!(
                        "capability `{capability}` is '{value}' on pool {}, which does not \
                         satisfy '{requirement}'",
                        pool.name()
                    ),
                    Err(err) => format!(
                        "extra spec `{key}` = '{requirement}' cannot be evaluated on pool {}: {err}",
                        pool.name()
                    ),
                },
            };
            return Some((capability.to_owned(), reason));
        }
        None
    }
}

/// Why an extra spec could not be evaluated at all (Cinder would swallow a
/// `ValueError` or crash; here the pool fails with this as the reason).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExtraSpecError {
    #[error("operator `{operator}` needs an operand")]
    MissingOperand { operator: String },
    #[error("operator `{operator}` compares numbers, but `{value}` is not one")]
    NotANumber { operator: String, value: String },
}

/// Evaluates one extra-spec requirement against a capability value, with
/// Cinder's `extra_specs_ops` operators. The first word is the operator:
///
/// - `=` is numeric `>=` (Cinder's "at least"); `==`, `!=`, `>=`, `<=` numeric.
/// - `s==`, `s!=`, `s<`, `s<=`, `s>`, `s>=` compare strings (code points).
/// - `<in> x`: `x` is a substring, or a member of a list capability.
/// - `<all-in> x y ...`: every word is, in the same sense.
/// - `<is> x`: both sides read as oslo booleans (`1 t true on y yes`).
/// - `<or> a <or> b ...`: equal to any alternative.
///
/// Anything else compares the whole requirement for equality with the value
/// as Python prints it (booleans case-insensitively, `True`/`False`).
/// Operators use their first operand only, as in Cinder, except `<all-in>`.
pub fn match_extra_spec(value: &CapValue, requirement: &str) -> Result<bool, ExtraSpecError> {
    let mut words = requirement.split_whitespace();
    let Some(operator) = words.next() else {
        return Ok(equals(value, requirement));
    };
    let operands: Vec<&str> = words.collect();
    let missing = || ExtraSpecError::MissingOperand {
        operator: operator.to_owned(),
    };
    let first = operands.first().copied();
    match operator {
        "<or>" => {
            if operands.is_empty() {
                return Err(missing());
            }
            // Alternatives sit at even positions; the odd ones are `<or>`.
            Ok(operands.iter().step_by(2).any(|alt| equals(value, alt)))
        }
        "<in>" => Ok(contains(value, first.ok_or_else(missing)?)),
        "<all-in>" => {
            if operands.is_empty() {
                return Err(missing());
            }
            Ok(operands.iter().all(|word| contains(value, word)))
        }
        "<is>" => {
            let wanted = bool_from_string(first.ok_or_else(missing)?);
            let actual = match value {
                CapValue::Flag(flag) => *flag,
                other => bool_from_string(&other.to_python_str()),
            };
            Ok(actual == wanted)
        }
        "=" | "==" | "!=" | ">=" | "<=" => {
            let operand = first.ok_or_else(missing)?;
            let not_a_number = |value: String| ExtraSpecError::NotANumber {
                operator: operator.to_owned(),
                value,
            };
            let actual = match value {
                CapValue::Integer(n) => *n as f64,
                CapValue::Number(x) => *x,
                CapValue::Text(text) => {
                    parse_float(text).ok_or_else(|| not_a_number(text.clone()))?
                }
                other => return Err(not_a_number(other.to_python_str())),
            };
            let wanted = parse_float(operand).ok_or_else(|| not_a_number(operand.to_owned()))?;
            Ok(match operator {
                "==" => actual == wanted,
                "!=" => actual != wanted,
                "<=" => actual <= wanted,
                _ => actual >= wanted,
            })
        }
        "s==" | "s!=" | "s<" | "s<=" | "s>" | "s>=" => {
            let wanted = first.ok_or_else(missing)?;
            let actual = value.to_python_str();
            let actual = actual.as_str();
            Ok(match operator {
                "s==" => actual == wanted,
                "s!=" => actual != wanted,
                "s<" => actual < wanted,
                "s<=" => actual <= wanted,
                "s>" => actual > wanted,
                _ => actual >= wanted,
            })
        }
        _ => Ok(equals(value, requirement)),
    }
}

/// Plain equality against the Python rendering; booleans ignore case so
/// that `true` and `True` both match a reported `True`.
fn equals(value: &CapValue, wanted: &str) -> bool {
    match value {
        CapValue::Flag(_) => value.to_python_str().eq_ignore_ascii_case(wanted),
        other => other.to_python_str() == wanted,
    }
}

/// Python's `needle in value`: membership for lists, substring otherwise.
fn contains(value: &CapValue, needle: &str) -> bool {
    match value {
        CapValue::Texts(items) => items.iter().any(|item| item == needle),
        CapValue::Integers(items) => items.iter().any(|item| item.to_string() == needle),
        other => other.to_python_str().contains(needle),
    }
}

/// oslo's `strutils.bool_from_string` (non-strict): unknown strings are false.
fn bool_from_string(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

/// Python's `float()` on a string, near enough: surrounding whitespace is
/// allowed, `inf`/`nan` are accepted.
fn parse_float(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{pool, spec, spec_with, thin_pool};
    use super::*;

    fn texts(items: &[&str]) -> CapValue {
        CapValue::Texts(items.iter().map(|s| (*s).to_owned()).collect())
    }

    // --- RetryFilter ---

    #[test]
    fn a_retry_skips_the_backends_that_failed_it() {
        let mut request = spec(1);
        let p = pool("h@b#p", 10.0, 10.0);
        assert_eq!(RetryFilter.backend_passes(&p, &request), Ok(()));
        request.tried = vec!["h@other".into()];
        assert_eq!(RetryFilter.backend_passes(&p, &request), Ok(()));
        request.tried.push("h@b".into());
        assert_eq!(
            RetryFilter.backend_passes(&p, &request),
            Err("backend h@b already failed this request".into())
        );
    }

    // --- AvailabilityZoneFilter ---

    #[test]
    fn any_zone_when_none_requested() {
        assert_eq!(
            AvailabilityZoneFilter.backend_passes(&pool("h@b#p", 10.0, 10.0), &spec(1)),
            Ok(())
        );
    }

    #[test]
    fn zone_must_match() {
        let mut request = spec(1);
        request.availability_zone = Some("nova".into());
        let mut other = pool("h@b#p", 10.0, 10.0);
        assert_eq!(
            AvailabilityZoneFilter.backend_passes(&other, &request),
            Ok(())
        );
        other.availability_zone = "az2".into();
        assert_eq!(
            AvailabilityZoneFilter.backend_passes(&other, &request),
            Err("availability zone nova does not match pool's az2".into())
        );
    }

    // --- CapacityFilter ---

    #[test]
    fn thin_within_over_subscription_passes() {
        // (1900 + 50) / 100 = 19.5 <= 20; adjusted free 10 * 20 = 200 >= 50.
        let pool = thin_pool("h@lvm#thin", 100.0, 10.0, 1900.0, 20.0);
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(50)), Ok(()));
    }

    #[test]
    fn thin_exactly_at_the_ratio_passes() {
        // (1950 + 50) / 100 = 20.0, not above 20.
        let pool = thin_pool("h@lvm#thin", 100.0, 10.0, 1950.0, 20.0);
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(50)), Ok(()));
    }

    #[test]
    fn thin_over_the_ratio_fails_with_figures() {
        let pool = thin_pool("h@lvm#thin", 100.0, 50.0, 2050.0, 20.0);
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &spec(50)),
            Err(
                "Insufficient free space for thin provisioning. The ratio of provisioned \
                 capacity over total capacity 21.00 has exceeded the maximum over subscription \
                 ratio 20.00 on pool h@lvm#thin."
                    .into()
            )
        );
    }

    #[test]
    fn thin_short_of_virtual_space_fails_with_figures() {
        // Ratio is fine (50 / 100 = 0.5) but 2 free * 20 = 40 < 50.
        let pool = thin_pool("h@lvm#thin", 100.0, 2.0, 0.0, 20.0);
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &spec(50)),
            Err(
                "Insufficient free virtual space (40.0GB) to accommodate thin provisioned \
                 50GB volume on pool h@lvm#thin."
                    .into()
            )
        );
    }

    #[test]
    fn thin_honours_reserved_percentage() {
        // Without reservation: 12 * 20 = 240 >= 50.
        let mut pool = thin_pool("h@lvm#thin", 100.0, 12.0, 0.0, 20.0);
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(50)), Ok(()));
        // 10% of 100 reserved: (12 - 10) * 20 = 40 < 50.
        pool.reserved_percentage = 10;
        let err = CapacityFilter.backend_passes(&pool, &spec(50)).unwrap_err();
        assert!(err.contains("(40.0GB)"), "{err}");
    }

    #[test]
    fn thin_ratio_below_one_fails() {
        let pool = thin_pool("h@lvm#thin", 100.0, 100.0, 0.0, 0.5);
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &spec(1)),
            Err(
                "Filtering out pool h@lvm#thin with an invalid maximum over subscription \
                 ratio of 0.50. The ratio should be a minimum of 1.0."
                    .into()
            )
        );
    }

    #[test]
    fn thick_uses_free_space_minus_reserved() {
        let mut pool = pool("h@lvm#p", 100.0, 55.0);
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(50)), Ok(()));
        pool.reserved_percentage = 10;
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &spec(50)),
            Err(
                "Insufficient free space for volume creation on pool h@lvm#p \
                 (requested / avail): 50/45.0"
                    .into()
            )
        );
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(45)), Ok(()));
    }

    #[test]
    fn reserved_percentage_rounds_like_cinder() {
        // floor(100 * 0.29) is 28 in doubles, so 78 - 28 = 50 fits 50 GB.
        let mut pool = pool("h@lvm#p", 100.0, 78.0);
        pool.reserved_percentage = 29;
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(50)), Ok(()));
        assert!(CapacityFilter.backend_passes(&pool, &spec(51)).is_err());
    }

    #[test]
    fn thick_request_on_thin_only_pool_fails() {
        let pool = thin_pool("h@lvm#thin", 100.0, 100.0, 0.0, 20.0);
        let request = spec_with(10, &[("provisioning:type", "thick")]);
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &request),
            Err("Pool h@lvm#thin does not support thick provisioning.".into())
        );
        let scoped = spec_with(10, &[("capabilities:provisioning:type", "thick")]);
        assert!(CapacityFilter.backend_passes(&pool, &scoped).is_err());
    }

    #[test]
    fn thick_request_ignores_over_subscription() {
        // Thin would allow 10 * 20 = 200 GB; thick only has 10.
        let mut pool = thin_pool("h@lvm#both", 100.0, 10.0, 0.0, 20.0);
        pool.thick_provisioning_support = true;
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(50)), Ok(()));
        let request = spec_with(50, &[("provisioning:type", "thick")]);
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &request),
            Err(
                "Insufficient free space for volume creation on pool h@lvm#both \
                 (requested / avail): 50/10.0"
                    .into()
            )
        );
    }

    #[test]
    fn thin_request_on_thick_only_pool_is_placed_thick() {
        // Huge ratio and provisioned figures must not matter here.
        let mut pool = pool("h@lvm#thick", 100.0, 60.0);
        pool.max_over_subscription_ratio = 0.1;
        pool.provisioned_capacity_gb = 1e6;
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(60)), Ok(()));
        assert!(CapacityFilter.backend_passes(&pool, &spec(61)).is_err());
    }

    #[test]
    fn infinite_or_unknown_free_always_passes() {
        let infinite = pool("h@ceph#rbd", f64::INFINITY, f64::INFINITY);
        assert_eq!(
            CapacityFilter.backend_passes(&infinite, &spec(1 << 40)),
            Ok(())
        );
        let mut unknown = pool("h@nfs#share", 100.0, f64::NAN);
        unknown.reserved_percentage = 50;
        assert_eq!(CapacityFilter.backend_passes(&unknown, &spec(500)), Ok(()));
    }

    #[test]
    fn infinite_total_passes_only_without_reservation() {
        let mut pool = pool("h@ceph#rbd", f64::INFINITY, 10.0);
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(500)), Ok(()));
        pool.reserved_percentage = 5;
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &spec(1)),
            Err(
                "Cannot honour reserved percentage 5% with infinite total capacity on pool \
                 h@ceph#rbd."
                    .into()
            )
        );
        pool.total_capacity_gb = f64::NAN;
        let err = CapacityFilter.backend_passes(&pool, &spec(1)).unwrap_err();
        assert!(err.contains("unknown total capacity"), "{err}");
    }

    #[test]
    fn zero_total_fails() {
        let pool = pool("h@lvm#p", 0.0, 0.0);
        assert_eq!(
            CapacityFilter.backend_passes(&pool, &spec(1)),
            Err(
                "Insufficient free space for volume creation. Total capacity is 0.00 on pool \
                 h@lvm#p."
                    .into()
            )
        );
    }

    #[test]
    fn zero_size_is_a_manage_request() {
        let pool = pool("h@lvm#p", 0.0, 0.0);
        assert_eq!(CapacityFilter.backend_passes(&pool, &spec(0)), Ok(()));
    }

    // --- extra-spec operators ---

    #[test]
    fn every_operator_has_a_true_and_a_false_case() {
        let int = CapValue::Integer(100);
        let ten = CapValue::Integer(10);
        let number = CapValue::Number(1.5);
        let abc = CapValue::Text("abc".into());
        let protocols = CapValue::Text("iSCSI FC".into());
        let features = texts(&["aes", "vmx"]);
        let yes = CapValue::Flag(true);
        let no = CapValue::Flag(false);
        let cases: &[(&CapValue, &str, bool)] = &[
            (&int, "= 50", true),
            (&int, "= 100", true),
            (&int, "= 150", false),
            (&int, "== 100", true),
            (&int, "== 100.0", true),
            (&int, "== 99", false),
            (&number, "!= 2", true),
            (&number, "!= 1.5", false),
            (&ten, ">= 10", true),
            (&ten, ">= 11", false),
            (&ten, "<= 10", true),
            (&ten, "<= 9", false),
            (&CapValue::Text("12.5".into()), ">= 12", true),
            (&abc, "s== abc", true),
            (&abc, "s== abd", false),
            (&abc, "s!= abd", true),
            (&abc, "s!= abc", false),
            (&abc, "s< abd", true),
            (&abc, "s< abc", false),
            (&abc, "s<= abc", true),
            (&abc, "s<= abb", false),
            (&abc, "s> abb", true),
            (&abc, "s> abc", false),
            (&abc, "s>= abc", true),
            (&abc, "s>= abd", false),
            // Strings compare as strings, not numbers: "9" > "10".
            (&CapValue::Integer(9), "s> 10", true),
            (&protocols, "<in> FC", true),
            (&protocols, "<in> NFS", false),
            (&features, "<in> aes", true),
            (&features, "<in> ae", false),
            (&features, "<all-in> aes vmx", true),
            (&features, "<all-in> aes sse", false),
            (&protocols, "<all-in> FC iSCSI", true),
            (&protocols, "<all-in> FC NFS", false),
            (&yes, "<is> True", true),
            (&yes, "<is> true", true),
            (&yes, "<is> False", false),
            (&no, "<is> False", true),
            (&no, "<is> True", false),
            (&CapValue::Text("yes".into()), "<is> True", true),
            (&abc, "<or> xyz <or> abc", true),
            (&abc, "<or> xyz <or> abd", false),
            (&yes, "<or> false <or> true", true),
            (&abc, "abc", true),
            (&abc, "ABC", false),
            (&yes, "True", true),
            (&yes, "true", true),
            (&yes, "False", false),
            (&no, "false", true),
            (&CapValue::Number(100.0), "100.0", true),
            (&CapValue::Number(100.0), "100", false),
            (
                &CapValue::Text("Fibre Channel".into()),
                "Fibre Channel",
                true,
            ),
            (&CapValue::Text(String::new()), "", true),
        ];
        for (value, requirement, expected) in cases {
            assert_eq!(
                match_extra_spec(value, requirement),
                Ok(*expected),
                "{value:?} against {requirement:?}"
            );
        }
    }

    #[test]
    fn bad_operands_are_errors_not_panics() {
        assert_eq!(
            match_extra_spec(&CapValue::Integer(5), ">= lots"),
            Err(ExtraSpecError::NotANumber {
                operator: ">=".into(),
                value: "lots".into()
            })
        );
        assert_eq!(
            match_extra_spec(&CapValue::Text("fast".into()), "= 5"),
            Err(ExtraSpecError::NotANumber {
                operator: "=".into(),
                value: "fast".into()
            })
        );
        assert!(match_extra_spec(&CapValue::Flag(true), "== 1").is_err());
        for requirement in ["<is>", "<or>", "<in>", "<all-in>", "==", "s<"] {
            assert_eq!(
                match_extra_spec(&CapValue::Integer(5), requirement),
                Err(ExtraSpecError::MissingOperand {
                    operator: requirement.into()
                })
            );
        }
    }

    // --- CapabilitiesFilter ---

    fn acme_pool() -> PoolState {
        let mut pool = pool("h@acme#gold", 100.0, 100.0);
        pool.capabilities
            .insert("vendor_name".into(), CapValue::Text("Acme".into()));
        pool.capabilities
            .insert("storage_protocol".into(), CapValue::Text("iSCSI".into()));
        pool.capabilities
            .insert("compression".into(), CapValue::Flag(true));
        pool
    }

    #[test]
    fn capabilities_that_match_pass() {
        let request = spec_with(
            1,
            &[
                ("vendor_name", "Acme"),
                ("capabilities:storage_protocol", "<or> FC <or> iSCSI"),
                ("compression", "<is> True"),
                ("volume_backend_name", "acme"),
                ("pool_name", "gold"),
                ("free_capacity_gb", ">= 50"),
            ],
        );
        assert_eq!(
            CapabilitiesFilter.backend_passes(&acme_pool(), &request),
            Ok(())
        );
    }

    #[test]
    fn mismatching_capability_fails() {
        let request = spec_with(1, &[("capabilities:storage_protocol", "s== FC")]);
        assert_eq!(
            CapabilitiesFilter.backend_passes(&acme_pool(), &request),
            Err(
                "capability `storage_protocol` is 'iSCSI' on pool h@acme#gold, which does \
                 not satisfy 's== FC'"
                    .into()
            )
        );
    }

    #[test]
    fn other_scopes_are_ignored() {
        let request = spec_with(
            1,
            &[
                ("qos:maxIOPS", "5000"),
                ("hw:cpu_policy", "dedicated"),
                ("provisioning:type", "thick"),
                ("capabilities:provisioning:type", "thick"),
                ("acme:dedup", "<is> True"),
            ],
        );
        assert_eq!(
            CapabilitiesFilter.backend_passes(&acme_pool(), &request),
            Ok(())
        );
    }

    #[test]
    fn unscoped_multiattach_is_checked() {
        let request = spec_with(1, &[("multiattach", "<is> True")]);
        let err = CapabilitiesFilter
            .backend_passes(&acme_pool(), &request)
            .unwrap_err();
        assert!(err.contains("`multiattach` is 'False'"), "{err}");
        let mut pool = acme_pool();
        pool.multiattach = true;
        assert_eq!(CapabilitiesFilter.backend_passes(&pool, &request), Ok(()));
    }

    #[test]
    fn missing_capability_fails() {
        let request = spec_with(1, &[("capabilities:dedup", "<is> True")]);
        assert_eq!(
            CapabilitiesFilter.backend_passes(&acme_pool(), &request),
            Err("capability `dedup` not reported by pool h@acme#gold".into())
        );
    }

    #[test]
    fn unevaluable_spec_fails_with_the_reason() {
        let request = spec_with(1, &[("vendor_name", ">= 3")]);
        assert_eq!(
            CapabilitiesFilter.backend_passes(&acme_pool(), &request),
            Err(
                "extra spec `vendor_name` = '>= 3' cannot be evaluated on pool h@acme#gold: \
                 operator `>=` compares numbers, but `Acme` is not one"
                    .into()
            )
        );
    }
}
