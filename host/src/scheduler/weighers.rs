//! Weighers: rank the pools that passed every filter.
//!
//! As in Cinder, each weigher produces a raw weight per pool, the raw
//! weights are normalised to `[0, 1]` over the candidates (see
//! [`normalize`]) and scaled by the weigher's multiplier, so weighers with
//! different units can be summed.

use super::{PoolState, RequestSpec};

/// One weigher; higher weights win.
pub trait Weigher {
    /// The raw, un-normalised weight. Infinite (or NaN, for unknown) means
    /// "more than any finite weight".
    fn weigh(&self, pool: &PoolState, spec: &RequestSpec) -> f64;
    /// Scales the normalised weight; negative inverts the preference.
    fn multiplier(&self) -> f64;
}

/// Prefers the pool with the most (virtual) free space, as Cinder's
/// CapacityWeigher. A positive multiplier spreads volumes across pools; a
/// negative one stacks them onto the fullest pool that still fits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CapacityWeigher {
    /// Cinder's `capacity_weight_multiplier`.
    pub multiplier: f64,
}

impl CapacityWeigher {
    pub fn new(multiplier: f64) -> Self {
        CapacityWeigher { multiplier }
    }
}

impl Default for CapacityWeigher {
    /// Spread, Cinder's default.
    fn default() -> Self {
        CapacityWeigher::new(1.0)
    }
}

impl Weigher for CapacityWeigher {
    /// Cinder's `calculate_virtual_free_capacity`, with
    /// `reserved = floor(total * (reserved_percentage / 100))`:
    ///
    /// - thin (requested and supported):
    ///   `total * max_over_subscription_ratio - provisioned - reserved`
    /// - otherwise: `free - reserved`
    ///
    /// An infinite or unknown `free` or `total` always loses, as in Cinder (a
    /// partial fix for Cinder bug #1350638, to discourage drivers from reporting
    /// such capacity): -1 when spreading, `f64::INFINITY` when stacking.
    fn weigh(&self, pool: &PoolState, spec: &RequestSpec) -> f64 {
        let total = pool.total_capacity_gb;
        let free = pool.free_capacity_gb;
        if !total.is_finite() || !free.is_finite() {
            return if self.multiplier > 0.0 {
                -1.0
            } else {
                f64::INFINITY
            };
        }
        let reserved = pool.reserved_gb();
        if pool.provisions_thin(spec) {
            total * pool.max_over_subscription_ratio - pool.provisioned_capacity_gb - reserved
        } else {
            free - reserved
        }
    }

    fn multiplier(&self) -> f64 {
        self.multiplier
    }
}

/// How far above the largest finite weight an infinite one is placed:
/// `offset = (max - min) * OFFSET_MULT`, or `OFFSET_MIN` when that is 0.
/// Cinder's values; they keep finite weights from collapsing towards 0.
const OFFSET_MULT: f64 = 100.0;
const OFFSET_MIN: f64 = 10000.0;

/// Cinder's weight normalisation: `(w - min) / (max - min)`, so the lowest
/// weight maps to 0 and the highest to 1; if all are equal, all are 0.
///
/// Infinite weights (NaN counts as infinite) are first replaced, as Cinder's
/// CapacityWeigher does, by `max_finite + offset` (see [`OFFSET_MULT`]), so
/// they normalise to 1 while finite weights keep their spread below it;
/// `-inf` mirrors that below the minimum. All infinite: all 0.
pub fn normalize(weights: &[f64]) -> Vec<f64> {
    let finite = weights.iter().copied().filter(|w| w.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), w| {
        (low.min(w), high.max(w))
    });
    let (low, high) = if low <= high { (low, high) } else { (0.0, 0.0) };
    let spread = (high - low) * OFFSET_MULT;
    let offset = if spread == 0.0 { OFFSET_MIN } else { spread };
    let replaced: Vec<f64> = weights
        .iter()
        .map(|&w| {
            if w.is_nan() || w == f64::INFINITY {
                high + offset
            } else if w == f64::NEG_INFINITY {
                low - offset
            } else {
                w
            }
        })
        .collect();
    let min = replaced.iter().copied().fold(f64::INFINITY, f64::min);
    let max = replaced.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if min == max {
        return vec![0.0; replaced.len()];
    }
    replaced.iter().map(|w| (w - min) / (max - min)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{pool, spec, spec_with, thin_pool};
    use super::*;

    #[test]
    fn thick_weight_is_free_minus_reserved() {
        let mut pool = pool("h@lvm#p", 100.0, 60.0);
        assert_eq!(CapacityWeigher::default().weigh(&pool, &spec(1)), 60.0);
        pool.reserved_percentage = 10;
        assert_eq!(CapacityWeigher::default().weigh(&pool, &spec(1)), 50.0);
    }

    #[test]
    fn thin_weight_is_virtual_free() {
        // 100 * 20 - 500 - floor(100 * 0.10) = 1490.
        let mut pool = thin_pool("h@lvm#thin", 100.0, 30.0, 500.0, 20.0);
        pool.reserved_percentage = 10;
        assert_eq!(CapacityWeigher::default().weigh(&pool, &spec(1)), 1490.0);
        // Asked for thick: back to real free space, 30 - 10.
        pool.thick_provisioning_support = true;
        let thick = spec_with(1, &[("provisioning:type", "thick")]);
        assert_eq!(CapacityWeigher::default().weigh(&pool, &thick), 20.0);
    }

    #[test]
    fn infinite_or_unknown_capacity_weighs_least() {
        let spread = CapacityWeigher::default();
        let stack = CapacityWeigher::new(-1.0);
        let infinite = pool("h@ceph#rbd", f64::INFINITY, f64::INFINITY);
        assert_eq!(spread.weigh(&infinite, &spec(1)), -1.0);
        assert_eq!(stack.weigh(&infinite, &spec(1)), f64::INFINITY);
        let unknown = pool("h@nfs#share", 100.0, f64::NAN);
        assert_eq!(spread.weigh(&unknown, &spec(1)), -1.0);
    }

    #[test]
    fn normalises_min_to_zero_and_max_to_one() {
        assert_eq!(normalize(&[10.0, 30.0, 20.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(normalize(&[-5.0, 5.0]), vec![0.0, 1.0]);
    }

    #[test]
    fn equal_weights_normalise_to_zero() {
        assert_eq!(normalize(&[7.0, 7.0, 7.0]), vec![0.0, 0.0, 0.0]);
        assert_eq!(normalize(&[7.0]), vec![0.0]);
        assert!(normalize(&[]).is_empty());
    }

    #[test]
    fn infinite_weights_normalise_to_one_with_cinders_offset() {
        // offset = (20 - 10) * 100 = 1000, so inf stands for 1020.
        assert_eq!(
            normalize(&[10.0, 20.0, f64::INFINITY]),
            vec![0.0, 10.0 / 1010.0, 1.0]
        );
        // All finite weights equal: offset is OFFSET_MIN.
        assert_eq!(normalize(&[5.0, f64::NAN]), vec![0.0, 1.0]);
        assert_eq!(normalize(&[f64::INFINITY, f64::INFINITY]), vec![0.0, 0.0]);
    }
}
