//! Study 1: closeness of the derived and the true dynamics (docs/theory.md section 8).
//!
//! For SGD, heavy ball (beta 0.9) and Adam, each under label noise, isotropic noise and
//! mini-batch noise (the latter on models that cannot fit their noisy labels, `L_min > 0`,
//! where it is the driver), on the valley, the product model and the diagonal network: an
//! eta sweep (eta, eta/2, eta/4 at a fixed horizon in slow time `eta^2 k`; Adam's `1 - beta2`
//! scaled with `eta^2`) comparing the true ensemble (started in its normal equilibrium,
//! observed at its projection onto the manifold) with the derived SDE. Reported per case: the
//! largest relative gap of the ensemble means at each eta and the fitted slope of log gap
//! against log eta (1 expected: the leading order has an `O(eta)` error).
//!
//! - [`measure`]: the cases, their sweeps and the ensembles behind them;
//! - [`claims`]: per case "matches, gap shrinking" and the median slope;
//! - [`render`]: per case and eta the ensembles, overlays, gap tables, then the sweep files
//!   and the section's table.

pub mod claims;
pub mod measure;
pub mod render;

use std::path::Path;

pub use claims::ClosenessClaim;
pub use measure::{Case, CaseData, ClosenessData, EtaRun, OptimizerKind, Setting, SweepData};

use super::{Claim, Scale, Study, StudyParts};
use quasistatic::error::Result;

/// The closeness study.
pub struct Closeness;

impl StudyParts for Closeness {
    const STUDY: Study = Study::Closeness;
    const TITLE: &'static str = "1. Closeness: derived vs true dynamics";
    type Data = ClosenessData;

    fn measure(scale: Scale) -> Result<ClosenessData> {
        measure::measure(scale)
    }

    fn claims(data: &ClosenessData) -> Vec<Claim> {
        claims::claims(data)
    }

    fn render(data: &ClosenessData, claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
        render::render(data, claims, dir, link)
    }

    fn configs(data: &ClosenessData) -> Vec<(String, String)> {
        render::configs(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::{find, ClaimId, Verdict};

    /// Tiny scale (3 cases, 32 trajectories, 2 learning rates): every comparison runs and
    /// agrees at the smallest eta within 10% (or the Monte-Carlo floor), its gap does not
    /// grow where it is resolved, and the median slope claim holds.
    #[test]
    fn tiny_closeness() {
        let dir =
            std::env::temp_dir().join(format!("quasistatic-closeness-{}", std::process::id()));
        let data = measure::measure(Scale::Tiny).unwrap();
        let claims = claims::claims(&data);
        assert_eq!(data.cases.len(), 3);
        assert_eq!(claims.len(), 4);
        for case in &data.cases {
            let sweep = case.outcome.as_ref().unwrap();
            assert_eq!(sweep.sweep.comparisons.len(), 2);
            let last = sweep.sweep.comparisons.last().unwrap();
            assert!(last.max_noise_floor < data.tolerance, "{}", case.case);
            assert!(last.agrees, "{}", case.case);
            let id = ClaimId::Closeness(ClosenessClaim::GapShrinks { case: case.case });
            let c = find(&claims, &id).unwrap();
            assert_eq!(c.verdict, Verdict::Supported, "{id}: {}", c.detail);
            assert_eq!(c.value, last.max_relative_gap);
        }
        let slope = find(&claims, &ClaimId::Closeness(ClosenessClaim::MedianSlope)).unwrap();
        assert_eq!(slope.verdict, Verdict::Supported, "{}", slope.detail);
        // The render writes each case's sweep and every comparison's files.
        let body = render::render(&data, &claims, &dir, "closeness").unwrap();
        for case in &data.cases {
            let sub = dir.join(case.case.name());
            assert!(sub.join("sweep.md").exists() && sub.join("sweep.json").exists());
            assert!(body.contains(&format!("[{}]", case.case.name())));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
