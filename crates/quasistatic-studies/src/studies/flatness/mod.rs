//! Study 4: which flatness each optimizer seeks (docs/theory.md sections 5, 7).
//!
//! A diagonal linear network `f(x) = sum_j (u_j^2 - v_j^2) x_j` fitted to a sparse regression
//! with fewer samples than features (`n < p`, teacher `w* = 1` on the first `k` features),
//! started at the default minimum-l2 interpolator, with label noise. Label-noise SGD descends
//! `tr H = 4 sum_j m_j (u_j^2 + v_j^2)` (`m_j = mean_i x_ij^2`), an l1-type norm of
//! `w = u^2 - v^2`; Adam descends `tr(diag H)^{1/2} = 2 sum_j sqrt(m_j) (|u_j| + |v_j|)`, an
//! l1/2-type one.
//!
//! For SGD and Adam the study runs the true optimizer (ensemble started in the normal
//! equilibrium, observed at its projection onto the manifold) and the derived manifold
//! dynamics from the same point ([`crate::validate::paired_runs`]), and records test error,
//! `||w||_1`, `||w - w*||^2`, `tr H`, `tr(diag H)^{1/2}` and the effective support size
//! `||w||_1^2 / ||w||_2^2` (a sparsity measure: `k` for the teacher) over time. The last two
//! are custom observables of the plain network ([`measure::NetworkQuantities`]).
//!
//! - [`measure`]: both optimizers' ensembles, final statistics, gaps and drift directions;
//! - [`claims`]: descent of each regulariser, drift directions, different and sparser
//!   solutions, derived dynamics defined and agreeing, preference;
//! - [`render`]: overlays, one plot per quantity, `finals.csv`/`finals.json` and the section.

pub mod claims;
pub mod measure;
pub mod render;

use std::path::Path;

pub use claims::FlatnessClaim;
pub use measure::{Final, FlatnessData, NetworkQuantities, OptimizerKind, OptimizerRun};

use super::{Claim, Scale, Study, StudyParts};
use quasistatic::error::Result;

/// The flatness study.
pub struct Flatness;

impl StudyParts for Flatness {
    const STUDY: Study = Study::Flatness;
    const TITLE: &'static str = "Which flatness each optimizer seeks";
    type Data = FlatnessData;

    fn measure(scale: Scale) -> Result<FlatnessData> {
        measure::measure(scale)
    }

    fn claims(data: &FlatnessData) -> Vec<Claim> {
        claims::claims(data)
    }

    fn render(data: &FlatnessData, claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
        render::render(data, claims, dir, link)
    }

    fn seeds(_data: &FlatnessData) -> Vec<u64> {
        vec![measure::ENSEMBLE_SEED, measure::DATA_SEED]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::{find, ClaimId, Verdict};

    /// Tiny scale: SGD's final tr H is below its start, Adam's final tr(diag H)^{1/2} below its
    /// start (true ensembles, beyond the 95% interval), SGD's and Adam's final ||w||_1 differ
    /// by more than 1% of SGD's, both dynamics record the custom observables, and every claim
    /// holds but two known limits (see below).
    #[test]
    fn tiny_flatness_study_shows_the_effects() {
        let dir = std::env::temp_dir().join(format!(
            "quasistatic-flatness-study-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let t0 = std::time::Instant::now();
        let data = measure::measure(Scale::Tiny).unwrap();
        eprintln!("flatness study (tiny): {:.2} s", t0.elapsed().as_secs_f64());
        let get = |opt: OptimizerKind, q: &str| data.run(opt).unwrap().last("true", q).unwrap();
        let sgd_tr = get(OptimizerKind::Sgd, "trace_hessian");
        assert!(sgd_tr.change + sgd_tr.change_ci < 0.0);
        let adam_sq = get(OptimizerKind::Adam, "sqrt_diag_trace");
        assert!(adam_sq.change + adam_sq.change_ci < 0.0);
        let (s, a) = (
            get(OptimizerKind::Sgd, "weight_l1").end,
            get(OptimizerKind::Adam, "weight_l1").end,
        );
        assert!((s - a).abs() > 0.01 * s, "final ||w||_1: SGD {s}, Adam {a}");
        for run in &data.runs {
            for r in [&run.record.truth, &run.record.derived] {
                let names: Vec<&str> = r.observables.iter().map(String::as_str).collect();
                assert_eq!(
                    names,
                    measure::QUANTITIES.map(|q| q.0),
                    "{} records",
                    run.optimizer
                );
                // Every valid record of the custom observables is a number.
                for q in ["sqrt_diag_trace", "effective_support"] {
                    let o = r.observable_index(q).unwrap();
                    for c in 0..r.steps.len() {
                        assert!(r.column(c, o).iter().all(|v| v.is_finite()), "{q}");
                    }
                }
            }
        }
        // Every claim holds except, possibly, two that the report states as measured:
        // "Adam's solution is sparser" (at these horizons Adam first shrinks the balanced
        // (u, v) pairs of unused features, |u| + |v| at fixed w, and has barely moved w), and
        // "true and derived Adam agree" (here tau_x ~ 500 steps and the drift time ~ 8500 steps
        // leave no room for a quasistatic v: with tau_v = 1e4 the true v lags, docs/theory.md
        // section 9).
        let claims = claims::claims(&data);
        assert_eq!(claims.len(), 10);
        let known_limits: [ClaimId; 2] = [
            FlatnessClaim::AdamSparser.into(),
            FlatnessClaim::DerivedAgrees {
                optimizer: OptimizerKind::Adam,
            }
            .into(),
        ];
        for c in claims.iter().filter(|c| !known_limits.contains(&c.id)) {
            assert_eq!(c.verdict, Verdict::Supported, "{}: {}", c.id, c.detail);
        }
        for id in &known_limits {
            assert!(find(&claims, id).is_some(), "{id}");
        }
        std::fs::create_dir_all(&dir).unwrap();
        render::render(&data, &claims, &dir, "flatness").unwrap();
        for f in [
            "finals.json",
            "finals.csv",
            "sqrt_diag_trace.svg",
            "effective_support.svg",
            "sgd/gaps.csv",
            "adam/overlay_sqrt_diag_trace.svg",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
