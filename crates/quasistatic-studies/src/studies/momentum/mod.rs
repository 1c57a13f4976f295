//! Study 2: the momentum scaling rule (docs/theory.md section 4).
//!
//! Heavy ball (beta 0.9) with mini-batch noise on a depth-2 product model fitted to noisy
//! labels it cannot fit (`L_min > 0`, so mini-batch sampling drives the exploration), with
//! `n` large so that the finite-population factor `(n - B) / (n - 1)` stays close to 1.
//! With `Sigma = Sigma_1 / B`, the normal equilibrium is `S ~ eta / ((1 - beta) B)` and the drift
//! per step `b ~ eta^2 / ((1 - beta)^2 B)`: scaling `eta -> k eta`, `B -> k B` keeps `S` and
//! multiplies the drift per step by `k`.
//!
//! Part A (collapse): `k = 1, 2, 4, 8` from the same unbalanced start; curves of `tr H` (at the
//! iterate) against `k x step` collapse, and the destination (final `tr H`, final loss level)
//! is the same within confidence intervals.
//!
//! Part B (break): at the flattest point (the destination, where the drift vanishes) the
//! stationary loss excess `E L - L_min = 1/2 tr(H S)` is measured for growing `k` up to and
//! beyond the stability bound `k eta lambda_max = 2 (1 + beta)`. The rule predicts a constant;
//! the exact discrete equilibrium predicts the growth and the break.
//!
//! - [`measure`]: both parts' runs and predictions;
//! - [`claims`]: collapse, destination, iterations, exact prediction, break;
//! - [`render`]: the two plots and the section's tables.

pub mod claims;
pub mod measure;
pub mod render;

use std::path::Path;

pub use claims::MomentumClaim;
pub use measure::{BreakRun, CollapseRun, MeanCi, MomentumData};

use super::{Claim, Scale, Study, StudyParts};
use quasistatic::error::Result;

/// The momentum-scaling study.
pub struct Momentum;

impl StudyParts for Momentum {
    const STUDY: Study = Study::MomentumScaling;
    const TITLE: &'static str = "2. Momentum scaling rule";
    type Data = MomentumData;

    fn measure(scale: Scale) -> Result<MomentumData> {
        measure::measure(scale)
    }

    fn claims(data: &MomentumData) -> Vec<Claim> {
        claims::claims(data)
    }

    fn render(data: &MomentumData, claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
        render::render(data, claims, dir, link)
    }

    fn configs(data: &MomentumData) -> Vec<(String, String)> {
        render::configs(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::{find, Verdict};

    /// Tiny scale (16 trajectories, n = 2048): the collapse, destination and iteration claims
    /// hold (the largest rescaled-time gap to k = 1 within 0.1 or the Monte-Carlo floor, tr H
    /// falling), and the study writes its plots.
    #[test]
    fn tiny_momentum_scaling() {
        let dir = std::env::temp_dir().join(format!("quasistatic-momentum-{}", std::process::id()));
        let data = measure::measure(Scale::Tiny).unwrap();
        let claims = claims::claims(&data);
        assert_eq!(claims.len(), 5);
        for id in [
            MomentumClaim::Collapse,
            MomentumClaim::DestinationUnchanged,
            MomentumClaim::IterationsShrink,
        ] {
            let c = find(&claims, &id.into()).unwrap();
            assert_eq!(c.verdict, Verdict::Supported, "{}: {}", c.id, c.detail);
        }
        let ks: Vec<usize> = data.collapse.iter().map(|r| r.k).collect();
        assert_eq!(ks, [1, 2, 4, 8]);
        let others = &data.collapse[1..];
        let max_gap = others.iter().map(|r| r.gap.relative).fold(0.0, f64::max);
        let floor = others.iter().map(|r| r.gap.noise_floor).fold(0.0, f64::max);
        assert!(
            max_gap <= 0.1_f64.max(floor),
            "gap {max_gap}, floor {floor}"
        );
        assert_eq!(
            find(&claims, &MomentumClaim::Collapse.into())
                .unwrap()
                .value,
            max_gap
        );
        assert!(data.collapse[0].final_trace.mean < data.collapse[0].initial_trace);
        std::fs::create_dir_all(&dir).unwrap();
        render::render(&data, &claims, &dir, "momentum").unwrap();
        for f in [
            "collapse_trace_hessian.svg",
            "break_loss_level.svg",
            "collapse.csv",
            "break.csv",
            "momentum.json",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        for (name, _) in render::configs(&data) {
            assert!(dir.join(&name).is_file(), "{name}");
        }
        rerun_reproduces_the_study(&data, &dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// End to end: the saved `collapse/k_2/config.toml`, loaded from disk and run with the
    /// library's `simulate` (what `quasistatic simulate` calls), writes a `summary.csv`
    /// identical byte for byte to the study's, and its ensemble gives exactly the study's final
    /// `tr H` (mean and 95% half-width) and loss level, as stored in `momentum.json` and
    /// `collapse.csv`.
    fn rerun_reproduces_the_study(data: &MomentumData, dir: &Path) {
        let run_dir = dir.join("collapse").join("k_2");
        let cfg = quasistatic::config::Config::load(&run_dir.join("config.toml")).unwrap();
        let out = dir.join("rerun_k_2");
        crate::run::simulate(&cfg, &out, crate::run::SimulateOptions::default()).unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(&out.join("summary.csv")),
            read(&run_dir.join("summary.csv"))
        );
        // The same config's ensemble, run by the library.
        let built = cfg.build().unwrap();
        let r = &quasistatic::with_model!(&built.model, m => quasistatic::simulate::run_ensemble(
            m, &built.noise, &built.optimizer, &built.spec));
        let tr = r.observable_index("trace_hessian").unwrap();
        let final_trace = MeanCi::of(&r.column(r.steps.len() - 1, tr));
        let run = data.collapse.iter().find(|c| c.k == 2).unwrap();
        assert_eq!(final_trace.mean.to_bits(), run.final_trace.mean.to_bits());
        assert_eq!(final_trace.ci.to_bits(), run.final_trace.ci.to_bits());
        // The same numbers in the study's JSON and CSV, as written (shortest round-trip
        // decimal form).
        let json: serde_json::Value =
            serde_json::from_str(&read(&dir.join("momentum.json"))).unwrap();
        let stored = json["collapse"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["k"] == 2)
            .unwrap();
        assert_eq!(
            stored["final_trace"]["mean"].to_string(),
            serde_json::Value::from(final_trace.mean).to_string()
        );
        let csv = read(&dir.join("collapse.csv"));
        let row = csv.lines().find(|l| l.starts_with("2,")).unwrap();
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[8], final_trace.mean.to_string());
        assert_eq!(fields[9], final_trace.ci.to_string());
        let level = measure::level(r, data.l_min).unwrap();
        assert_eq!(fields[10], level.mean.to_string());
        assert_eq!(level.mean.to_bits(), run.level.mean.to_bits());
    }
}
