//! The performance tier of a window: `excellent`, `good`, `acceptable` or
//! `needs_optimization`, from four figures of the window. Pure: no clock, no I/O.
//!
//! The rule: a tier's four limits must all hold; the window gets the best tier whose limits
//! hold, else `needs_optimization`.
//!
//! | tier         | mean latency | p95 latency | cache hit rate | error rate (5xx) |
//! |--------------|--------------|-------------|----------------|------------------|
//! | `excellent`  | ≤ 10 ms      | ≤ 25 ms     | ≥ 0.95         | ≤ 0.001          |
//! | `good`       | ≤ 25 ms      | ≤ 50 ms     | ≥ 0.90         | ≤ 0.005          |
//! | `acceptable` | ≤ 75 ms      | ≤ 100 ms    | ≥ 0.80         | ≤ 0.02           |
//!
//! `acceptable` is the deployment guide's success criteria (mean under 75 ms, p95 under
//! 100 ms, error rate under 2 %) with the hit-rate floor of `performance_thresholds`'s critical
//! `cache_hit_rate` (0.80); the two tiers above tighten each limit. A window without decisions
//! has no tier (`None`, JSON null): a tier without evidence would be a guess. A window with
//! decisions but no error responses has error rate 0.

use serde::Serialize;

/// A performance tier, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceTier {
    /// Every limit of the first row.
    Excellent,
    /// Every limit of the second row.
    Good,
    /// Every limit of the third row: the guide's targets.
    Acceptable,
    /// Some limit of `acceptable` is not met.
    NeedsOptimization,
}

impl PerformanceTier {
    /// The tier's name in JSON and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Excellent => "excellent",
            Self::Good => "good",
            Self::Acceptable => "acceptable",
            Self::NeedsOptimization => "needs_optimization",
        }
    }

    /// Every tier, best first.
    pub const ALL: [Self; 4] = [
        Self::Excellent,
        Self::Good,
        Self::Acceptable,
        Self::NeedsOptimization,
    ];

    /// Whether the tier meets the guide's targets (`acceptable` or better).
    pub fn is_acceptable(self) -> bool {
        self <= Self::Acceptable
    }
}

/// The figures the rule reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierInputs {
    /// Mean decision latency.
    pub avg_ms: f64,
    /// 95th percentile decision latency.
    pub p95_ms: f64,
    /// Share of decisions answered by L1 or Redis.
    pub cache_hit_rate: f64,
    /// Share of requests answered with a 5xx.
    pub error_rate: f64,
}

/// `(tier, max mean ms, max p95 ms, min hit rate, max error rate)`, best first.
const LIMITS: [(PerformanceTier, f64, f64, f64, f64); 3] = [
    (PerformanceTier::Excellent, 10.0, 25.0, 0.95, 0.001),
    (PerformanceTier::Good, 25.0, 50.0, 0.90, 0.005),
    (PerformanceTier::Acceptable, 75.0, 100.0, 0.80, 0.02),
];

/// The tier of a window with these figures.
pub fn tier(inputs: TierInputs) -> PerformanceTier {
    LIMITS
        .iter()
        .find(|(_, avg, p95, hit, errors)| {
            inputs.avg_ms <= *avg
                && inputs.p95_ms <= *p95
                && inputs.cache_hit_rate >= *hit
                && inputs.error_rate <= *errors
        })
        .map_or(PerformanceTier::NeedsOptimization, |(tier, ..)| *tier)
}

/// The tier of a window's figures, `None` without decisions.
pub fn tier_of(summary: &crate::monitoring::measure::window::Summary) -> Option<PerformanceTier> {
    Some(tier(TierInputs {
        avg_ms: summary.avg_ms?,
        p95_ms: summary.p95_ms?,
        cache_hit_rate: summary.cache_hit_rate?,
        error_rate: summary.error_rate.unwrap_or(0.0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(avg_ms: f64, p95_ms: f64, cache_hit_rate: f64, error_rate: f64, expected: &str) {
        let inputs = TierInputs {
            avg_ms,
            p95_ms,
            cache_hit_rate,
            error_rate,
        };
        assert_eq!(tier(inputs).as_str(), expected, "{inputs:?}");
    }

    #[test]
    fn each_tier_and_its_edges() {
        check(0.2, 1.0, 0.99, 0.0, "excellent");
        check(10.0, 25.0, 0.95, 0.001, "excellent");
        check(10.1, 25.0, 0.95, 0.001, "good");
        check(10.0, 25.1, 0.95, 0.001, "good");
        check(10.0, 25.0, 0.949, 0.001, "good");
        check(10.0, 25.0, 0.95, 0.0011, "good");
        check(25.0, 50.0, 0.90, 0.005, "good");
        check(75.0, 100.0, 0.80, 0.02, "acceptable");
        check(75.1, 1.0, 1.0, 0.0, "needs_optimization");
        check(1.0, 100.1, 1.0, 0.0, "needs_optimization");
        check(1.0, 1.0, 0.79, 0.0, "needs_optimization");
        check(1.0, 1.0, 1.0, 0.021, "needs_optimization");
    }

    #[test]
    fn one_bad_figure_decides() {
        // Fast and error-free, but nothing cached: every decision went to Postgres.
        check(2.0, 4.0, 0.0, 0.0, "needs_optimization");
    }

    #[test]
    fn acceptable_or_better() {
        let acceptable: Vec<bool> = PerformanceTier::ALL
            .iter()
            .map(|tier| tier.is_acceptable())
            .collect();
        assert_eq!(acceptable, [true, true, true, false]);
    }

    #[test]
    fn no_decisions_no_tier() {
        let empty = crate::monitoring::measure::window::Summary::default();
        assert_eq!(tier_of(&empty), None);
    }
}
