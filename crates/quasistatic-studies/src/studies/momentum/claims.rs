//! The momentum study's claims, from its measured data.

use super::measure::{BreakRun, MomentumData, BETA, ETA0};
use crate::studies::{Claim, ClaimId, Interval, Verdict};

/// The claims of the momentum-scaling study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MomentumClaim {
    /// Scaling eta and B by k = 2, 4, 8 collapses `tr H(t)` in rescaled time `k x step`.
    Collapse,
    /// The destination (final `tr H`, loss level) is the same for every k.
    DestinationUnchanged,
    /// Iterations to reach a given flatness shrink as `1/k`.
    IterationsShrink,
    /// The exact discrete equilibrium predicts the loss level at the flattest point for every
    /// stable k.
    ExactEquilibriumPredictsLevel,
    /// The rule breaks before the stability bound `k eta lambda_max = 2 (1 + beta)`.
    RuleBreaksBeforeBound,
}

impl MomentumClaim {
    /// The id's part after `momentum_scaling.`.
    pub fn key(&self) -> String {
        match self {
            MomentumClaim::Collapse => "collapse",
            MomentumClaim::DestinationUnchanged => "destination_unchanged",
            MomentumClaim::IterationsShrink => "iterations_shrink",
            MomentumClaim::ExactEquilibriumPredictsLevel => "exact_equilibrium_predicts_level",
            MomentumClaim::RuleBreaksBeforeBound => "rule_breaks_before_bound",
        }
        .into()
    }

    /// What is claimed.
    pub fn statement(&self) -> String {
        match self {
            MomentumClaim::Collapse => {
                "scaling eta and B by k = 2, 4, 8 collapses tr H(t) in rescaled time k x step"
            }
            MomentumClaim::DestinationUnchanged => {
                "the destination is unchanged: final tr H and loss level equal across k"
            }
            MomentumClaim::IterationsShrink => "iterations to reach a given flatness shrink as 1/k",
            MomentumClaim::ExactEquilibriumPredictsLevel => {
                "the exact discrete equilibrium predicts the loss level for every stable k"
            }
            MomentumClaim::RuleBreaksBeforeBound => {
                "the rule breaks before the stability bound k eta lambda_max = 2(1 + beta)"
            }
        }
        .into()
    }
}

impl From<MomentumClaim> for ClaimId {
    fn from(c: MomentumClaim) -> Self {
        ClaimId::Momentum(c)
    }
}

/// Tolerance on the relative collapse gap.
const COLLAPSE_TOLERANCE: f64 = 0.1;

/// Combined 95% half-width of the difference of two means with half-widths `a` and `b`.
fn combined(a: f64, b: f64) -> f64 {
    1.96 * ((a / 1.96).powi(2) + (b / 1.96).powi(2)).sqrt()
}

/// The k at which the stability bound `k eta0 lambda_max = 2 (1 + beta)` is reached.
pub fn bound_k(data: &MomentumData) -> f64 {
    2.0 * (1.0 + BETA) / (ETA0 * data.lambda_max)
}

/// The first k whose loss level departs from k = 1's by more than 10% and beyond the combined
/// 95% interval, or that diverged.
pub fn rule_break(data: &MomentumData) -> Option<usize> {
    let first = data.breaking.first()?;
    let departs = |b: &BreakRun| {
        (b.level.mean - first.level.mean).abs()
            > (0.1 * first.level.mean).max(combined(first.level.ci, b.level.ci))
    };
    data.breaking
        .iter()
        .find(|b| b.divergences > 0 || departs(b))
        .map(|b| b.k)
}

/// The part-B runs that stayed stable and have an equilibrium (the ones the exact prediction
/// is checked on).
pub fn stable(data: &MomentumData) -> impl Iterator<Item = &BreakRun> {
    data.breaking
        .iter()
        .filter(|b| b.divergences == 0 && b.exact.is_finite())
}

/// Every claim of the study.
pub fn claims(data: &MomentumData) -> Vec<Claim> {
    let Some(base) = data.collapse.first() else {
        return vec![Claim {
            id: MomentumClaim::Collapse.into(),
            value: f64::NAN,
            interval: None,
            tolerance: None,
            floor: None,
            expected: "a run at k = 1".into(),
            verdict: Verdict::Failed,
            detail: "no collapse run".into(),
        }];
    };
    let mut claims = Vec::new();

    // Part A.
    let others = &data.collapse[1..];
    let max_gap = others.iter().map(|r| r.gap.relative).fold(0.0, f64::max);
    let gap_floor = others.iter().map(|r| r.gap.noise_floor).fold(0.0, f64::max);
    let worst = others
        .iter()
        .max_by(|a, b| a.gap.relative.total_cmp(&b.gap.relative))
        .map(|r| &r.gap);
    // The largest gap against the tolerance, inconclusive when the Monte-Carlo floor is above
    // the tolerance or the worst gap's 95% interval straddles it.
    let collapse_verdict = Verdict::of_gap(
        max_gap,
        worst.map_or(max_gap, |g| g.relative_low),
        COLLAPSE_TOLERANCE,
        gap_floor,
    );
    claims.push(Claim {
        id: MomentumClaim::Collapse.into(),
        value: max_gap,
        interval: worst.map(|g| Interval {
            low: g.relative_low,
            high: g.relative_high,
        }),
        tolerance: Some(COLLAPSE_TOLERANCE),
        floor: Some(gap_floor),
        expected: format!("≤ {COLLAPSE_TOLERANCE}, MC floor < {COLLAPSE_TOLERANCE}"),
        verdict: collapse_verdict,
        detail: format!("largest relative gap {max_gap:.3} (MC floor {gap_floor:.3})"),
    });
    // Destination: final tr H equal within the CI (+ 2%); loss level equal within the CI or
    // 10% (the rule holds to leading order in eta only).
    let (base_tr, base_lv) = (base.final_trace, base.level);
    let same_destination = others.iter().all(|r| {
        let tol_tr = combined(base_tr.ci, r.final_trace.ci);
        let tol_lv = combined(base_lv.ci, r.level.ci);
        (r.final_trace.mean - base_tr.mean).abs() <= tol_tr + 0.02 * base_tr.mean.abs()
            && (r.level.mean - base_lv.mean).abs() <= tol_lv + 0.1 * base_lv.mean.abs()
    });
    claims.push(Claim {
        id: MomentumClaim::DestinationUnchanged.into(),
        value: base_tr.mean,
        interval: Some(Interval::around(base_tr.mean, base_tr.ci)),
        tolerance: None,
        floor: None,
        expected: "all k within their 95% CIs (+2% tr H, +10% loss level)".into(),
        verdict: Verdict::decide(same_destination, false),
        detail: format!(
            "k = 1: tr H {:.4} ± {:.4}, loss - L_min {:.3e} ± {:.1e}",
            base_tr.mean, base_tr.ci, base_lv.mean, base_lv.ci
        ),
    });
    let falls = base_tr.mean < base.initial_trace;
    let last_k = data.collapse.last().map_or(1, |r| r.k) as u64;
    claims.push(Claim {
        id: MomentumClaim::IterationsShrink.into(),
        value: base.initial_trace - base_tr.mean,
        interval: None,
        tolerance: None,
        floor: None,
        expected: "same fall in horizon / k steps (collapse)".into(),
        verdict: if falls {
            collapse_verdict
        } else {
            Verdict::Contradicted
        },
        detail: format!(
            "tr H falls from {:.3} to {:.3} in {} steps at k = 1 and in {} at k = {last_k}",
            base.initial_trace,
            base_tr.mean,
            data.horizon,
            data.horizon / last_k
        ),
    });

    // Part B.
    let stable: Vec<&BreakRun> = stable(data).collect();
    let exact_ok = stable
        .iter()
        .all(|b| (b.level.mean - b.exact).abs() <= b.level.ci + 0.1 * b.exact);
    let worst_exact = stable
        .iter()
        .map(|b| (b.level.mean - b.exact).abs() / b.exact)
        .fold(0.0, f64::max);
    claims.push(Claim {
        id: MomentumClaim::ExactEquilibriumPredictsLevel.into(),
        value: worst_exact,
        interval: None,
        tolerance: None,
        floor: None,
        expected: "measured within CI + 10% of 1/2 tr(H S_exact)".into(),
        verdict: Verdict::decide(exact_ok, false),
        detail: format!(
            "k = {:?}",
            stable.iter().map(|b| b.k as f64).collect::<Vec<_>>()
        ),
    });
    let bound = bound_k(data);
    let broke = rule_break(data);
    claims.push(Claim {
        id: MomentumClaim::RuleBreaksBeforeBound.into(),
        value: broke.map_or(f64::NAN, |k| k as f64),
        interval: None,
        tolerance: Some(bound * 1.05),
        floor: None,
        expected: format!(
            "a break at k ≤ 1.05 x {bound:.0} (the stability bound, with a 5% margin)"
        ),
        verdict: Verdict::decide(broke.is_some_and(|k| (k as f64) <= bound * 1.05), false),
        detail: format!(
            "first 10% departure at k = {}",
            broke.map_or("none".into(), |k| k.to_string())
        ),
    });
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Gap;
    use crate::studies::find;
    use crate::studies::momentum::measure::{CollapseRun, MeanCi, SavedRun};
    use crate::studies::Band;
    use quasistatic::simulate::EnsembleResult;

    fn gap(relative: f64, floor: f64) -> Gap {
        Gap {
            observable: "trace_hessian".into(),
            gap: relative,
            at_step: 0,
            relative,
            relative_low: (relative - floor).max(0.0),
            relative_high: relative + floor,
            noise_floor: floor,
            range: 1.0,
        }
    }

    fn collapse(k: usize, gap_rel: f64, floor: f64, tr: f64, lv: f64) -> CollapseRun {
        CollapseRun {
            k,
            gap: gap(gap_rel, floor),
            initial_trace: 10.0,
            final_trace: MeanCi { mean: tr, ci: 0.1 },
            level: MeanCi { mean: lv, ci: 1e-4 },
            divergences: 0,
            trace: Band::default(),
            run: no_run(),
        }
    }

    /// A run with no trajectory (its files are not part of the claims).
    fn no_run() -> SavedRun {
        SavedRun {
            result: EnsembleResult {
                observables: vec![],
                steps: vec![],
                trajectories: 0,
                values: vec![],
                valid: vec![],
                divergences: vec![],
                gradient_evaluations: 0,
                seconds: 0.0,
            },
            meta: Default::default(),
        }
    }

    fn breaking(k: usize, level: f64, exact: f64, divergences: usize) -> BreakRun {
        BreakRun {
            k,
            eta: ETA0 * k as f64,
            batch: 2 * k,
            k_eta_lambda: ETA0 * k as f64 * 2.0,
            level: MeanCi {
                mean: level,
                ci: 1e-4,
            },
            exact,
            leading: 5e-3,
            derive_error: None,
            divergences,
            run: no_run(),
        }
    }

    fn data(collapse: Vec<CollapseRun>, breaking: Vec<BreakRun>) -> MomentumData {
        MomentumData {
            n_data: 2048,
            trajectories: 16,
            horizon: 7680,
            least_squares_weight: 1.0,
            l_min: 0.1,
            start: [3.0, 1.0 / 3.0],
            collapse,
            flattest: [1.0, 1.0],
            window: 400,
            // Bound at k = 3.8 / (0.002 * 2) = 950.
            lambda_max: 2.0,
            breaking,
        }
    }

    fn verdict(claims: &[Claim], c: MomentumClaim) -> Verdict {
        find(claims, &c.into()).unwrap().verdict
    }

    /// A clean collapse and a break before the bound are supported; a collapse gap whose
    /// interval clears the tolerance is contradicted (and so is "iterations shrink"), one
    /// whose interval reaches the tolerance is inconclusive; a moved destination, a missed
    /// exact prediction and a rule that never breaks are contradicted.
    #[test]
    fn claims_from_hand_made_runs() {
        let good = data(
            vec![
                collapse(1, 0.0, 0.0, 6.6, 4.5e-3),
                collapse(2, 0.03, 0.05, 6.62, 4.6e-3),
                collapse(4, 0.04, 0.06, 6.58, 4.4e-3),
                collapse(8, 0.02, 0.06, 6.6, 4.5e-3),
            ],
            vec![
                breaking(1, 5.0e-3, 5.1e-3, 0),
                breaking(64, 7.0e-3, 7.2e-3, 0),
                breaking(512, 2.0e-2, 2.1e-2, 0),
            ],
        );
        let claims = claims(&good);
        assert_eq!(claims.len(), 5);
        for c in &claims {
            assert_eq!(c.verdict, Verdict::Supported, "{}: {}", c.id, c.detail);
        }
        let collapse_claim = find(&claims, &MomentumClaim::Collapse.into()).unwrap();
        assert_eq!(collapse_claim.id.key(), "momentum_scaling.collapse");
        assert_eq!(collapse_claim.value, 0.04);
        assert!((bound_k(&good) - 950.0).abs() < 1e-9);
        assert_eq!(rule_break(&good), Some(64));

        // Collapse gap 0.3 with floor 0.05: [0.25, 0.35] clears 0.1.
        let mut bad = good.clone();
        bad.collapse[2].gap = gap(0.3, 0.05);
        let c = claims_of(&bad);
        assert_eq!(verdict(&c, MomentumClaim::Collapse), Verdict::Contradicted);
        assert_eq!(
            verdict(&c, MomentumClaim::IterationsShrink),
            Verdict::Contradicted
        );
        // Gap 0.15 with floor 0.08 (interval [0.07, 0.23]): not resolved either way.
        bad.collapse[2].gap = gap(0.15, 0.08);
        let c = claims_of(&bad);
        assert_eq!(verdict(&c, MomentumClaim::Collapse), Verdict::Inconclusive);
        assert_eq!(
            verdict(&c, MomentumClaim::IterationsShrink),
            Verdict::Inconclusive
        );
        // A destination 10% lower at k = 8.
        let mut moved = good.clone();
        moved.collapse[3].final_trace.mean = 5.9;
        assert_eq!(
            verdict(&claims_of(&moved), MomentumClaim::DestinationUnchanged),
            Verdict::Contradicted
        );
        // The exact prediction 30% off at k = 64; a diverged run is not checked against it.
        let mut off = good.clone();
        off.breaking[1].exact = 1.0e-2;
        off.breaking[2] = breaking(512, 1.0, 2.1e-2, 3);
        let c = claims_of(&off);
        assert_eq!(
            verdict(&c, MomentumClaim::ExactEquilibriumPredictsLevel),
            Verdict::Contradicted
        );
        // No departure at all: the rule does not break within the range.
        let mut flat = good.clone();
        flat.breaking[1].level.mean = 5.2e-3;
        flat.breaking[2].level.mean = 4.9e-3;
        assert_eq!(rule_break(&flat), None);
        let c = claims_of(&flat);
        assert_eq!(
            verdict(&c, MomentumClaim::RuleBreaksBeforeBound),
            Verdict::Contradicted
        );
        assert!(find(&c, &MomentumClaim::RuleBreaksBeforeBound.into())
            .unwrap()
            .value
            .is_nan());
    }

    fn claims_of(d: &MomentumData) -> Vec<Claim> {
        claims(d)
    }
}
