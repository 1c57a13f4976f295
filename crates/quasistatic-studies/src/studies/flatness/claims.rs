//! The flatness study's claims, from its measured data.

use super::measure::{FlatnessData, OptimizerKind};
use crate::compare::Gap;
use crate::studies::{Claim, ClaimId, Interval, Verdict};

/// The claims of the flatness study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlatnessClaim {
    /// The optimizer decreases its regulariser (SGD `tr H`, Adam `tr(diag H)^{1/2}`) over
    /// time, in the true and the derived dynamics.
    RegulariserDecreases {
        /// Which optimizer.
        optimizer: OptimizerKind,
    },
    /// At the start, SGD's derived drift points along `-grad tr H`, Adam's along the
    /// preconditioned `-grad tr(diag H)^{1/2}`.
    DriftAlongRegularisers,
    /// SGD and Adam reach different solutions from the same start.
    SolutionsDiffer,
    /// Adam's solution is sparser than SGD's.
    AdamSparser,
    /// The derived dynamics of the optimizer is defined along the whole horizon.
    DerivedDefined {
        /// Which optimizer.
        optimizer: OptimizerKind,
    },
    /// True and derived dynamics of the optimizer agree on both regularisers.
    DerivedAgrees {
        /// Which optimizer.
        optimizer: OptimizerKind,
    },
    /// Relative to `tr H`, Adam reduces `tr(diag H)^{1/2}` more than SGD does.
    AdamPrefersSqrtDiag,
}

impl FlatnessClaim {
    /// The id's part after `flatness.`.
    pub fn key(&self) -> String {
        let opt = |o: &OptimizerKind| o.name().to_lowercase();
        match self {
            FlatnessClaim::RegulariserDecreases { optimizer } => {
                format!("{}.regulariser_decreases", opt(optimizer))
            }
            FlatnessClaim::DriftAlongRegularisers => "drift_along_regularisers".into(),
            FlatnessClaim::SolutionsDiffer => "solutions_differ".into(),
            FlatnessClaim::AdamSparser => "adam_sparser".into(),
            FlatnessClaim::DerivedDefined { optimizer } => {
                format!("{}.derived_defined", opt(optimizer))
            }
            FlatnessClaim::DerivedAgrees { optimizer } => {
                format!("{}.derived_agrees", opt(optimizer))
            }
            FlatnessClaim::AdamPrefersSqrtDiag => "adam_prefers_sqrt_diag".into(),
        }
    }

    /// What is claimed.
    pub fn statement(&self) -> String {
        match self {
            FlatnessClaim::RegulariserDecreases { optimizer } => format!(
                "{optimizer} decreases {} over time (true and derived)",
                match optimizer {
                    OptimizerKind::Sgd => "tr H",
                    OptimizerKind::Adam => "tr(diag H)^{1/2}",
                }
            ),
            FlatnessClaim::DriftAlongRegularisers => "At the start, SGD's derived drift points along -grad tr H, Adam's along the preconditioned -grad tr(diag H)^{1/2}".into(),
            FlatnessClaim::SolutionsDiffer => "SGD and Adam reach different solutions from the same start".into(),
            FlatnessClaim::AdamSparser => "Adam's solution is sparser than SGD's (l1/2-type vs l1-type implicit regulariser)".into(),
            FlatnessClaim::DerivedDefined { optimizer } => {
                format!("The derived {optimizer} dynamics is defined along the whole horizon")
            }
            FlatnessClaim::DerivedAgrees { optimizer } => format!(
                "True and derived {optimizer} agree on the regularisers tr H and tr(diag H)^1/2"
            ),
            FlatnessClaim::AdamPrefersSqrtDiag => {
                "Relative to tr H, Adam reduces tr(diag H)^1/2 more than SGD does".into()
            }
        }
    }
}

impl From<FlatnessClaim> for ClaimId {
    fn from(c: FlatnessClaim) -> Self {
        ClaimId::Flatness(c)
    }
}

/// Tolerance on the relative gap between true and derived regularisers.
const TOLERANCE: f64 = 0.2;

fn missing(id: FlatnessClaim, what: &str) -> Claim {
    Claim {
        id: id.into(),
        value: f64::NAN,
        interval: None,
        tolerance: None,
        floor: None,
        expected: what.into(),
        verdict: Verdict::Failed,
        detail: format!("not measured: {what}"),
    }
}

/// Every claim of the study.
pub fn claims(data: &FlatnessData) -> Vec<Claim> {
    use OptimizerKind::{Adam, Sgd};
    let mut claims = Vec::new();
    let fin = |opt: OptimizerKind, dynamics: &str, q: &str| {
        data.run(opt).and_then(|r| r.last(dynamics, q))
    };

    // Each optimizer descends its regulariser.
    for opt in OptimizerKind::ALL {
        let id = FlatnessClaim::RegulariserDecreases { optimizer: opt };
        let q = opt.regulariser();
        let (Some(t), Some(d)) = (fin(opt, "true", q), fin(opt, "derived", q)) else {
            claims.push(missing(id, &format!("{q} of {opt}, true and derived")));
            continue;
        };
        claims.push(Claim {
            id: id.into(),
            value: t.change,
            interval: Some(Interval::around(t.change, t.change_ci)),
            tolerance: None,
            floor: None,
            expected: "a decrease beyond the 95% interval, in both dynamics".into(),
            verdict: Verdict::decide(
                t.change + t.change_ci < 0.0 && d.change < 0.0,
                t.change < 0.0 && d.change < 0.0,
            ),
            detail: format!(
                "true {:.4} -> {:.4} (change {:+.4} ± {:.4}); derived {:.4} -> {:.4}",
                t.start, t.end, t.change, t.change_ci, d.start, d.end
            ),
        });
    }

    // The derived drift's direction at the start.
    match (data.run(Sgd), data.run(Adam)) {
        (Some(s), Some(a)) => {
            let (s_tr, s_sq) = (s.cosine_trace_hessian, s.cosine_sqrt_diag);
            let (a_tr, a_sq) = (a.cosine_trace_hessian, a.cosine_sqrt_diag);
            claims.push(Claim {
                id: FlatnessClaim::DriftAlongRegularisers.into(),
                value: s_tr.min(a_sq),
                interval: None,
                tolerance: None,
                floor: None,
                expected: "SGD's cosine with tr H and Adam's with tr(diag H)^1/2 near 1 and above the other regulariser's".into(),
                verdict: Verdict::decide(
                    s_tr > 0.99 && a_sq > 0.99 && s_tr > s_sq && a_sq > a_tr,
                    false,
                ),
                detail: format!(
                    "SGD cosine with tr H / tr(diag H)^1/2 directions: {s_tr:.4} / {s_sq:.4}; Adam: {a_tr:.4} / {a_sq:.4}"
                ),
            });
        }
        _ => claims.push(missing(
            FlatnessClaim::DriftAlongRegularisers,
            "derivations of SGD and Adam",
        )),
    }

    // Different solutions.
    let mut differ = Vec::new();
    let mut n_differ = 0;
    let mut compared = 0;
    for q in ["weight_l1", "effective_support", "test_error"] {
        let (Some(s), Some(a)) = (fin(Sgd, "true", q), fin(Adam, "true", q)) else {
            continue;
        };
        compared += 1;
        let sep = (s.end - a.end).abs() > s.end_ci + a.end_ci;
        n_differ += usize::from(sep);
        differ.push(format!(
            "{q}: SGD {:.4} ± {:.4}, Adam {:.4} ± {:.4}",
            s.end, s.end_ci, a.end, a.end_ci
        ));
    }
    if compared == 3 {
        claims.push(Claim {
            id: FlatnessClaim::SolutionsDiffer.into(),
            value: n_differ as f64,
            interval: None,
            tolerance: None,
            floor: None,
            expected: "final ||w||_1, effective support or test error differ beyond the CIs".into(),
            // Final values that do not separate may still differ by less than the CIs.
            verdict: Verdict::decide(n_differ >= 1, true),
            detail: format!(
                "final (true) {}; {n_differ} of 3 differ beyond their CIs",
                differ.join("; ")
            ),
        });
    } else {
        claims.push(missing(
            FlatnessClaim::SolutionsDiffer,
            "final ||w||_1, effective support and test error of both",
        ));
    }

    // Sparsity.
    match (
        fin(Sgd, "true", "effective_support"),
        fin(Adam, "true", "effective_support"),
    ) {
        (Some(s), Some(a)) => claims.push(Claim {
            id: FlatnessClaim::AdamSparser.into(),
            value: a.end - s.end,
            interval: Some(Interval::around(a.end - s.end, a.end_ci + s.end_ci)),
            tolerance: None,
            floor: None,
            expected: "Adam's below SGD's beyond the CIs".into(),
            verdict: Verdict::decide(a.end + a.end_ci < s.end - s.end_ci, a.end < s.end),
            detail: format!(
                "final effective support: Adam {:.3} ± {:.3}, SGD {:.3} ± {:.3} (start {:.3}; changes {:+.3} / {:+.3}; teacher {})",
                a.end, a.end_ci, s.end, s.end_ci, s.start, a.change, s.change, data.setup.k
            ),
        }),
        _ => claims.push(missing(
            FlatnessClaim::AdamSparser,
            "final effective support of both",
        )),
    }

    // The derived dynamics is defined along the horizon.
    for run in &data.runs {
        let stopped = &run.derived_stopped;
        let trajectories = run.record.derived.trajectories;
        claims.push(Claim {
            id: FlatnessClaim::DerivedDefined {
                optimizer: run.optimizer,
            }
            .into(),
            value: stopped.len() as f64,
            interval: None,
            tolerance: None,
            floor: None,
            expected: "no failure of the derivation (projection, rank decision, Adam fixed point)"
                .into(),
            verdict: Verdict::decide(stopped.is_empty(), false),
            detail: match stopped.first() {
                None => format!(
                    "all {trajectories} derived trajectories reached step {}",
                    data.setup.steps
                ),
                Some(d) => format!("{} of {trajectories} stopped; first: {d}", stopped.len()),
            },
        });
    }

    // True against derived on the regularisers.
    for run in &data.runs {
        let reg: Vec<&Gap> = run
            .gaps
            .iter()
            .filter(|g| g.observable == "trace_hessian" || g.observable == "sqrt_diag_trace")
            .collect();
        let worst = reg.iter().max_by(|a, b| a.relative.total_cmp(&b.relative));
        let floor = reg.iter().map(|g| g.noise_floor).fold(0.0, f64::max);
        if let Some(w) = worst {
            claims.push(Claim {
                id: FlatnessClaim::DerivedAgrees { optimizer: run.optimizer }.into(),
                value: w.relative,
                interval: Some(Interval {
                    low: w.relative_low,
                    high: w.relative_high,
                }),
                tolerance: Some(TOLERANCE),
                floor: Some(floor),
                expected: format!("≤ {TOLERANCE}, MC floor < {TOLERANCE} (sup-in-time gap relative to the range of the true mean)"),
                verdict: Verdict::of_gap(w.relative, w.relative_low, TOLERANCE, floor),
                detail: format!(
                    "largest relative gap {:.3} [{:.3}, {:.3}] ({} at step {}); MC floor {:.3} (all quantities: see the gap table)",
                    w.relative, w.relative_low, w.relative_high, w.observable, w.at_step, floor
                ),
            });
        }
    }

    // Which regulariser each optimizer prefers: relative decrease of sqrt-diag over that of tr H.
    let pref = |opt: OptimizerKind| -> Option<f64> {
        let t = fin(opt, "true", "trace_hessian")?;
        let q = fin(opt, "true", "sqrt_diag_trace")?;
        Some((q.change / q.start) / (t.change / t.start))
    };
    match (pref(Sgd), pref(Adam)) {
        (Some(ps), Some(pa)) => claims.push(Claim {
            id: FlatnessClaim::AdamPrefersSqrtDiag.into(),
            value: pa,
            interval: None,
            tolerance: None,
            floor: None,
            expected: "Adam's ratio above SGD's".into(),
            verdict: Verdict::decide(pa > ps, false),
            detail: format!(
                "(relative decrease of tr(diag H)^1/2) / (relative decrease of tr H), true: Adam {pa:.2}, SGD {ps:.2}"
            ),
        }),
        _ => claims.push(missing(
            FlatnessClaim::AdamPrefersSqrtDiag,
            "tr H and tr(diag H)^1/2 of both",
        )),
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::find;
    use crate::studies::flatness::measure::{Final, OptimizerRun, RunRecord, Setup};
    use quasistatic::derive::Diagnostics;
    use quasistatic::simulate::EnsembleResult;

    /// `(quantity, start, end, change)` with 95% half-widths of 1% of |end| and |change|.
    fn finals(opt: OptimizerKind, dynamics: &str, rows: &[(&str, f64, f64)]) -> Vec<Final> {
        rows.iter()
            .map(|&(q, start, end)| Final {
                optimizer: opt,
                dynamics: dynamics.into(),
                quantity: q.into(),
                start,
                end,
                end_ci: 0.01 * end.abs(),
                change: end - start,
                change_ci: 0.01 * (end - start).abs(),
            })
            .collect()
    }

    fn gap(observable: &str, relative: f64, floor: f64) -> Gap {
        Gap {
            observable: observable.into(),
            gap: relative,
            at_step: 100,
            relative,
            relative_low: (relative - floor).max(0.0),
            relative_high: relative + floor,
            noise_floor: floor,
            range: 1.0,
        }
    }

    fn empty_ensemble() -> EnsembleResult {
        EnsembleResult {
            observables: vec![],
            steps: vec![0],
            trajectories: 8,
            values: vec![],
            valid: vec![1; 8],
            divergences: vec![],
            gradient_evaluations: 0,
            seconds: 0.0,
        }
    }

    fn run(
        optimizer: OptimizerKind,
        cosines: (f64, f64),
        rows: &[(&str, f64, f64)],
        gaps: Vec<Gap>,
    ) -> OptimizerRun {
        let mut all = finals(optimizer, "true", rows);
        // The derived dynamics ends 1% above the truth.
        let derived: Vec<(&str, f64, f64)> = rows
            .iter()
            .map(|&(q, s, e)| (q, s, e + 0.01 * (e - s).abs()))
            .collect();
        all.extend(finals(optimizer, "derived", &derived));
        OptimizerRun {
            optimizer,
            cosine_trace_hessian: cosines.0,
            cosine_sqrt_diag: cosines.1,
            finals: all,
            gaps,
            derived_stopped: vec![],
            record: RunRecord {
                seconds: 0.0,
                h: 1,
                diagnostics: Diagnostics {
                    eta: 0.05,
                    eta_eff: 0.05,
                    lr_lambda_max: 0.5,
                    stability_bound: 2.0,
                    normal_relaxation_steps: 100.0,
                    drift_unit_steps: 1e4,
                    separation_ratio: 0.01,
                    tau_v: None,
                    tau_x_over_tau_v: None,
                },
                warnings: vec![],
                truth: empty_ensemble(),
                derived: empty_ensemble(),
            },
        }
    }

    /// SGD flattens tr H (relatively more than tr(diag H)^1/2), Adam flattens tr(diag H)^1/2
    /// (relatively more) and ends sparser; the derived dynamics agrees.
    fn data() -> FlatnessData {
        let sgd = run(
            OptimizerKind::Sgd,
            (0.999, 0.88),
            &[
                ("trace_hessian", 13.7, 9.8),
                ("sqrt_diag_trace", 13.7, 11.5),
                ("weight_l1", 2.5, 2.3),
                ("effective_support", 6.8, 3.5),
                ("test_error", 0.2, 0.09),
            ],
            vec![
                gap("trace_hessian", 0.01, 0.01),
                gap("sqrt_diag_trace", 0.02, 0.01),
            ],
        );
        let adam = run(
            OptimizerKind::Adam,
            (0.95, 0.9999),
            &[
                ("trace_hessian", 13.7, 12.5),
                ("sqrt_diag_trace", 13.7, 10.9),
                ("weight_l1", 2.5, 2.1),
                ("effective_support", 6.8, 2.4),
                ("test_error", 0.2, 0.05),
            ],
            vec![
                gap("trace_hessian", 0.05, 0.02),
                gap("sqrt_diag_trace", 0.1, 0.03),
            ],
        );
        FlatnessData {
            configs: Vec::new(),
            setup: Setup {
                n: 8,
                p: 12,
                k: 2,
                n_test: 500,
                trajectories: 8,
                sigma: 0.5,
                sgd_lr: 0.05,
                adam_lr: 0.002,
                adam_beta2: 0.9999,
                steps: 6000,
            },
            runs: vec![sgd, adam],
        }
    }

    fn verdict(claims: &[Claim], c: FlatnessClaim) -> Verdict {
        find(claims, &c.into()).unwrap().verdict
    }

    /// Hand-made finals and gaps showing every effect support all ten claims; then Adam's
    /// support above SGD's contradicts "sparser", a derived Adam 36% off contradicts the
    /// agreement, an increase of tr H contradicts SGD's descent and a derived trajectory
    /// that stopped contradicts "defined".
    #[test]
    fn claims_from_hand_made_data() {
        let good = data();
        let claims = claims(&good);
        assert_eq!(claims.len(), 10);
        for c in &claims {
            assert_eq!(c.verdict, Verdict::Supported, "{}: {}", c.id, c.detail);
        }
        let adam_agrees = FlatnessClaim::DerivedAgrees {
            optimizer: OptimizerKind::Adam,
        };
        assert_eq!(
            ClaimId::from(adam_agrees).key(),
            "flatness.adam.derived_agrees"
        );
        assert_eq!(find(&claims, &adam_agrees.into()).unwrap().value, 0.1);

        let mut dense = good.clone();
        let adam = &mut dense.runs[1];
        for f in adam.finals.iter_mut() {
            if f.quantity == "effective_support" {
                f.end = 6.6;
                f.change = 6.6 - f.start;
            }
        }
        assert_eq!(
            verdict(&super::claims(&dense), FlatnessClaim::AdamSparser),
            Verdict::Contradicted
        );

        let mut off = good.clone();
        off.runs[1].gaps = vec![
            gap("trace_hessian", 0.05, 0.02),
            gap("sqrt_diag_trace", 0.364, 0.011),
        ];
        assert_eq!(
            verdict(&super::claims(&off), adam_agrees),
            Verdict::Contradicted
        );

        let mut rising = good.clone();
        for f in rising.runs[0].finals.iter_mut() {
            if f.quantity == "trace_hessian" {
                f.change = 0.5;
            }
        }
        assert_eq!(
            verdict(
                &super::claims(&rising),
                FlatnessClaim::RegulariserDecreases {
                    optimizer: OptimizerKind::Sgd
                }
            ),
            Verdict::Contradicted
        );

        let mut stopped = good.clone();
        stopped.runs[0].derived_stopped = vec![quasistatic::simulate::Divergence {
            trajectory: 1,
            step: 3000,
            last_finite_loss: f64::NAN,
            reason: "no stable equilibrium".into(),
        }];
        let c = super::claims(&stopped);
        let defined = FlatnessClaim::DerivedDefined {
            optimizer: OptimizerKind::Sgd,
        };
        assert_eq!(verdict(&c, defined), Verdict::Contradicted);
        assert!(find(&c, &defined.into())
            .unwrap()
            .detail
            .starts_with("1 of 8 stopped"));
    }
}
