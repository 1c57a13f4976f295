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
//! `||w||_1^2 / ||w||_2^2` (a sparsity measure: `k` for the teacher) over time, all built-in
//! observables (the last two are checked against the network's closed forms,
//! [`measure::NetworkQuantities`]). Each optimizer's folder holds the `config.toml` whose
//! `quasistatic compare` reruns its ensembles bit for bit.
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

    fn configs(data: &FlatnessData) -> Vec<(String, String)> {
        data.configs
            .iter()
            .map(|(name, toml)| (format!("{}/config.toml", name.to_lowercase()), toml.clone()))
            .collect()
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

    /// End to end: each optimizer's saved `config.toml`, loaded from disk and compared by the
    /// library's `compare` path, records the study's true and derived ensembles bit for bit
    /// (every quantity, every checkpoint); and the built-in observables `sqrt_diag_trace` and
    /// `effective_support` agree with the network's closed forms ([`NetworkQuantities`]) to
    /// 1e-12 relative.
    #[test]
    fn saved_configs_rerun_the_study() {
        let dir =
            std::env::temp_dir().join(format!("quasistatic-flatness-rerun-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = measure::measure(Scale::Tiny).unwrap();
        render::render(&data, &claims::claims(&data), &dir, "flatness").unwrap();
        for run in &data.runs {
            let path = dir
                .join(run.optimizer.name().to_lowercase())
                .join("config.toml");
            let cfg = quasistatic::config::Config::load(&path).unwrap();
            let built = cfg.build().unwrap();
            let (_, truth, derived) = quasistatic::with_model!(&built.model, m =>
                crate::validate::measure_comparison(m, &built, None, 0.1, false))
            .unwrap();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(truth.observables, run.record.truth.observables);
            assert_eq!(
                bits(&truth.values),
                bits(&run.record.truth.values),
                "{}",
                path.display()
            );
            assert_eq!(
                bits(&derived.values),
                bits(&run.record.derived.values),
                "{}",
                path.display()
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The built-in observables `sqrt_diag_trace` (from Hessian-vector products) and
    /// `effective_support` (from the end-to-end weights) against the diagonal network's closed
    /// forms, off the manifold (residual terms present), to 1e-12 relative.
    #[test]
    fn built_in_flatness_observables_match_the_closed_forms() {
        use quasistatic::data::{generate, SyntheticSpec, Teacher};
        use quasistatic::model::{DiagonalNetwork, Model};
        use quasistatic::observe::{Observable, Observer};
        let data = generate(&SyntheticSpec {
            n: 10,
            n_test: 0,
            p: 7,
            teacher: Teacher::Sparse { k: 2, value: 1.0 },
            label_noise: 0.0,
            seed: 5,
        });
        let q = NetworkQuantities::new(data.train.clone());
        let net = DiagonalNetwork::new(data.train, None, data.teacher);
        let obs = vec![Observable::SqrtDiagTrace, Observable::EffectiveSupport];
        let mut observer = Observer::new(&net, obs);
        let theta: Vec<f64> = (0..net.dim()).map(|i| 0.3 + 0.11 * i as f64).collect();
        let mut out = [0.0; 2];
        observer.observe(&net, &theta, &mut out);
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(
            rel(out[0], q.sqrt_diag_trace(&theta)) < 1e-12,
            "{} {}",
            out[0],
            q.sqrt_diag_trace(&theta)
        );
        assert!(
            rel(out[1], q.effective_support(&theta)) < 1e-12,
            "{} {}",
            out[1],
            q.effective_support(&theta)
        );
    }
}
