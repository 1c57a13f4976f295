//! The closeness study's claims, from its measured data.

use super::measure::{Case, ClosenessData, SweepData};
use crate::studies::{Claim, ClaimId, Interval, Verdict};
use crate::validate::Comparison;

/// The claims of the closeness study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClosenessClaim {
    /// In one case, the derived dynamics matches the true one at the smallest eta (within the
    /// tolerance, with a Monte-Carlo floor below it) and the gap does not grow from one eta to
    /// the next smaller one (see [`non_increasing`]).
    GapShrinks {
        /// Which case.
        case: Case,
    },
    /// The median fitted slope of log gap against log eta, over the cases whose gaps are
    /// above the Monte-Carlo floor at every eta, is about 1.
    MedianSlope,
}

impl ClosenessClaim {
    /// The id's part after `closeness.`.
    pub fn key(&self) -> String {
        match self {
            ClosenessClaim::GapShrinks { case } => format!("{}.gap_shrinks", case.name()),
            ClosenessClaim::MedianSlope => "median_slope".into(),
        }
    }

    /// What is claimed.
    pub fn statement(&self) -> String {
        match self {
            ClosenessClaim::GapShrinks { case } => format!(
                "{}: derived dynamics matches the true one, gap shrinking with eta",
                case.name()
            ),
            ClosenessClaim::MedianSlope => {
                "gaps fall like eta (median slope over resolved cases)".into()
            }
        }
    }
}

impl From<ClosenessClaim> for ClaimId {
    fn from(c: ClosenessClaim) -> Self {
        ClaimId::Closeness(c)
    }
}

/// How the comparison at the smallest eta came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallestEta {
    /// The Monte-Carlo floor is below the tolerance and the gap within it.
    Agrees,
    /// The Monte-Carlo floor is below the tolerance and the gap beyond it.
    Differs,
    /// The Monte-Carlo floor is at or above the tolerance: too few trajectories to tell.
    Unresolved,
}

/// The verdict at the smallest eta of a sweep.
pub fn smallest_eta(last: &Comparison, tolerance: f64) -> SmallestEta {
    if last.max_noise_floor >= tolerance || last.max_noise_floor.is_nan() {
        SmallestEta::Unresolved
    } else if last.agrees {
        SmallestEta::Agrees
    } else {
        SmallestEta::Differs
    }
}

/// Whether the gap is above the Monte-Carlo floor at every eta (only then can it show a
/// slope).
pub fn resolved(sweep: &SweepData) -> bool {
    sweep
        .sweep
        .comparisons
        .iter()
        .all(|c| c.max_relative_gap > c.max_noise_floor)
}

/// The fitted slopes of the resolved cases, sorted.
pub fn resolved_slopes(data: &ClosenessData) -> Vec<f64> {
    let mut slopes: Vec<f64> = data
        .cases
        .iter()
        .filter_map(|c| c.outcome.as_ref().ok())
        .filter(|s| resolved(s) && s.sweep.slope.is_finite())
        .map(|s| s.sweep.slope)
        .collect();
    slopes.sort_by(f64::total_cmp);
    slopes
}

/// The median of sorted values (the upper one of an even count; NaN when empty).
pub fn median(sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        f64::NAN
    } else {
        sorted[sorted.len() / 2]
    }
}

/// Every claim of the study: one per case, then the median slope.
pub fn claims(data: &ClosenessData) -> Vec<Claim> {
    let tolerance = data.tolerance;
    let mut claims: Vec<Claim> = data
        .cases
        .iter()
        .map(|c| {
            let id = ClosenessClaim::GapShrinks { case: c.case }.into();
            match &c.outcome {
                Ok(sweep) => case_claim(id, sweep, tolerance),
                Err(e) => Claim {
                    id,
                    value: f64::NAN,
                    interval: None,
                    tolerance: None,
                    floor: None,
                    expected: "a comparison".into(),
                    verdict: Verdict::Failed,
                    detail: format!("error: {e}"),
                },
            }
        })
        .collect();
    let slopes = resolved_slopes(data);
    let median = median(&slopes);
    // With no resolved case there is no slope to judge: inconclusive (more trajectories
    // would resolve the gaps).
    let verdict = if slopes.is_empty() {
        Verdict::Inconclusive
    } else {
        Verdict::decide((0.5..=2.0).contains(&median), false)
    };
    claims.push(Claim {
        id: ClosenessClaim::MedianSlope.into(),
        value: median,
        interval: None,
        tolerance: None,
        floor: None,
        expected: "between 0.5 and 2 (about 1), over at least one resolved case".into(),
        verdict,
        detail: format!("{median:.2} over {} cases", slopes.len()),
    });
    claims
}

/// The verdict of "the gap does not grow as eta shrinks", applied to the point estimates of
/// successive learning rates: `Supported` when every gap is at most the one before it,
/// `Contradicted` when some gap exceeds the one before it by more than their combined
/// Monte-Carlo floors (`sqrt(floor_a^2 + floor_b^2)`), `Inconclusive` when every rise is
/// within that noise. Returns the verdict and the largest rise.
pub fn non_increasing(comparisons: &[Comparison]) -> (Verdict, f64) {
    let mut verdict = Verdict::Supported;
    let mut largest = 0.0f64;
    for w in comparisons.windows(2) {
        let rise = w[1].max_relative_gap - w[0].max_relative_gap;
        largest = largest.max(rise);
        if rise > 0.0 {
            let noise = w[0].max_noise_floor.hypot(w[1].max_noise_floor);
            let here = if rise > noise {
                Verdict::Contradicted
            } else {
                Verdict::Inconclusive
            };
            verdict = Verdict::all(&[verdict, here]);
        }
    }
    (verdict, largest)
}

fn case_claim(id: ClaimId, sweep: &SweepData, tolerance: f64) -> Claim {
    let comparisons = &sweep.sweep.comparisons;
    let Some(last) = comparisons.last() else {
        return Claim {
            id,
            value: f64::NAN,
            interval: None,
            tolerance: None,
            floor: None,
            expected: "a comparison".into(),
            verdict: Verdict::Failed,
            detail: "no learning rate was run".into(),
        };
    };
    let worst = last
        .gaps
        .iter()
        .max_by(|a, b| a.relative.total_cmp(&b.relative));
    let low = worst.map_or(last.max_relative_gap, |g| g.relative_low);
    let agreement = Verdict::of_gap(last.max_relative_gap, low, tolerance, last.max_noise_floor);
    let (monotone, rise) = non_increasing(comparisons);
    let gaps: Vec<String> = comparisons
        .iter()
        .map(|c| format!("{:.3}", c.max_relative_gap))
        .collect();
    Claim {
        id,
        value: last.max_relative_gap,
        interval: worst.map(|g| Interval {
            low: g.relative_low,
            high: g.relative_high,
        }),
        tolerance: Some(tolerance),
        floor: Some(last.max_noise_floor),
        expected: format!(
            "at the smallest eta MC floor < {tolerance} and gap ≤ {tolerance}; gap non-increasing \
             from each eta to the next (a rise within the MC floors: inconclusive)"
        ),
        verdict: Verdict::all(&[agreement, monotone]),
        detail: format!(
            "gap {} (MC floor {:.3} at the smallest eta; largest rise {:+.3}); slope {:.2} ± {:.2}",
            gaps.join(" → "),
            last.max_noise_floor,
            rise,
            sweep.sweep.slope,
            sweep.sweep.slope_se,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Gap;
    use crate::studies::closeness::measure::{CaseData, OptimizerKind, Setting};
    use crate::studies::find;
    use crate::validate::Sweep;

    fn comparison(eta: f64, gap: f64, floor: f64, tolerance: f64) -> Comparison {
        Comparison {
            eta,
            steps: 1000,
            h: 1,
            trajectories: 32,
            derived_trajectories: 2,
            gaps: vec![Gap {
                observable: "y0".into(),
                gap: gap * 2.0,
                at_step: 500,
                relative: gap,
                relative_low: (gap - floor).max(0.0),
                relative_high: gap + floor,
                noise_floor: floor,
                range: 2.0,
            }],
            variance_gaps: vec![],
            max_relative_gap: gap,
            max_noise_floor: floor,
            agrees: gap <= tolerance.max(floor),
            tolerance,
            true_gradient_evaluations: 0,
            derived_gradient_evaluations: 0,
            true_seconds: 0.0,
            true_observation_cpu_seconds: 0.0,
            derived_seconds: 0.0,
            divergences: (0, 0),
            separation_ratio: 0.01,
            stability: (0.1, 2.0),
            warnings: vec![],
        }
    }

    /// A case whose sweep has `(gap, floor)` at eta 0.1, 0.05, 0.025.
    fn case(setting: Setting, points: &[(f64, f64)], slope: f64) -> CaseData {
        let comparisons = points
            .iter()
            .enumerate()
            .map(|(i, &(g, f))| comparison(0.1 / 2f64.powi(i as i32), g, f, 0.1))
            .collect();
        CaseData {
            case: Case {
                setting,
                optimizer: OptimizerKind::Sgd,
            },
            outcome: Ok(SweepData {
                sweep: Sweep {
                    comparisons,
                    slope,
                    slope_se: 0.1,
                },
                runs: vec![],
            }),
        }
    }

    fn verdict(claims: &[Claim], setting: Setting) -> Verdict {
        let id = ClosenessClaim::GapShrinks {
            case: Case {
                setting,
                optimizer: OptimizerKind::Sgd,
            },
        }
        .into();
        find(claims, &id).unwrap().verdict
    }

    /// Hand-made sweeps: a shrinking gap is supported, a gap that grows beyond the floors is
    /// contradicted, a gap beyond the tolerance with a small floor is contradicted, a floor
    /// above the tolerance is inconclusive, a gap rising within the floors is inconclusive, a
    /// failed case is failed; the median slope is taken over the resolved cases only.
    #[test]
    fn claims_from_hand_made_sweeps() {
        let data = ClosenessData {
            factors: vec![1.0, 0.5, 0.25],
            tolerance: 0.1,
            cases: vec![
                // Resolved and shrinking, slope 1.
                case(
                    Setting::ValleyLabel,
                    &[(0.2, 0.02), (0.1, 0.02), (0.05, 0.02)],
                    1.0,
                ),
                // Resolved, within the tolerance, but growing: contradicted.
                case(
                    Setting::ProductLabel,
                    &[(0.03, 0.01), (0.05, 0.01), (0.08, 0.01)],
                    -0.7,
                ),
                // Beyond the tolerance at the smallest eta with a small floor.
                case(
                    Setting::DiagonalLabel,
                    &[(0.5, 0.02), (0.4, 0.02), (0.3, 0.02)],
                    0.3,
                ),
                // Floor above the tolerance: unresolved.
                case(
                    Setting::ValleyIsotropic,
                    &[(0.3, 0.2), (0.25, 0.2), (0.2, 0.15)],
                    0.6,
                ),
                // Below the floor everywhere, within the tolerance, but rising by 0.01 per
                // step, within the floors (0.05 each): inconclusive; slope not counted.
                case(
                    Setting::DiagonalMinibatch,
                    &[(0.01, 0.05), (0.02, 0.05), (0.03, 0.05)],
                    -1.0,
                ),
                CaseData {
                    case: Case {
                        setting: Setting::ProductMinibatch,
                        optimizer: OptimizerKind::Sgd,
                    },
                    outcome: Err("no stable equilibrium".into()),
                },
            ],
        };
        let claims = claims(&data);
        assert_eq!(claims.len(), 7);
        assert_eq!(verdict(&claims, Setting::ValleyLabel), Verdict::Supported);
        assert_eq!(
            verdict(&claims, Setting::ProductLabel),
            Verdict::Contradicted
        );
        assert_eq!(
            verdict(&claims, Setting::DiagonalLabel),
            Verdict::Contradicted
        );
        assert_eq!(
            verdict(&claims, Setting::ValleyIsotropic),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict(&claims, Setting::DiagonalMinibatch),
            Verdict::Inconclusive
        );
        assert_eq!(verdict(&claims, Setting::ProductMinibatch), Verdict::Failed);
        let valley = &claims[0];
        assert_eq!(valley.id.key(), "closeness.valley_label_sgd.gap_shrinks");
        assert_eq!(valley.value, 0.05);
        let iv = valley.interval.unwrap();
        assert!((iv.low - 0.03).abs() < 1e-12 && (iv.high - 0.07).abs() < 1e-12);
        // Resolved slopes: 1.0 (valley), -0.7 (product), 0.3 (diagonal) and 0.6 (unresolved
        // at the smallest eta but above its floor everywhere): median of [-0.7, 0.3, 0.6, 1.0]
        // is 0.6, inside [0.5, 2].
        assert_eq!(resolved_slopes(&data), [-0.7, 0.3, 0.6, 1.0]);
        let slope = find(&claims, &ClosenessClaim::MedianSlope.into()).unwrap();
        assert_eq!(slope.id.key(), "closeness.median_slope");
        assert_eq!(slope.value, 0.6);
        assert_eq!(slope.verdict, Verdict::Supported);
        // Without the valley and the isotropic case the median is 0.3: contradicted.
        let fewer = ClosenessData {
            cases: data.cases[1..3].to_vec(),
            ..data.clone()
        };
        let slope = claims_slope(&fewer);
        assert_eq!(slope.value, 0.3);
        assert_eq!(slope.verdict, Verdict::Contradicted);
    }

    fn claims_slope(data: &ClosenessData) -> Claim {
        find(&claims(data), &ClosenessClaim::MedianSlope.into())
            .unwrap()
            .clone()
    }
}
