//! Study 3: Adam is not rotation invariant, SGD is (docs/theory.md section 5).
//!
//! On the valley `f = sqrt(1 + y^2) x` with label noise `sigma = 1`, rotated in the plane by
//! an angle, the manifold `{x = 0}` points along the tangent `R (0, 1)`. The study measures the
//! *manifold speed*: from the fixed manifold point `y = 2`, the mean displacement of the
//! manifold coordinate toward the flat point per optimizer step over a window,
//! `speed = (y(0) - E y(T)) / T`, for
//!
//! - the true optimizer (an ensemble started in the normal equilibrium around the point and
//!   observed at its projection `Phi(theta)`, as in [`crate::validate`]), with a 95% interval
//!   from the ensemble, and
//! - the derived manifold dynamics of [`quasistatic::derive`] integrated over the same window
//!   ([`quasistatic::sde::run_sde`] with [`crate::validate::DerivedDynamics`]);
//!
//! for SGD and Adam at each angle. The window of each (optimizer, angle) is chosen so that the
//! derived dynamics moves `y` by about a quarter of its start value. Then the same on the
//! `d`-dimensional valley (`p = d - 1` normal directions, one tangent direction), axis-aligned
//! and under random rotations, against `d`.
//!
//! Adam runs with `1 - beta2 = 1e-3`, so that `tau_x / tau_v` (normal relaxation time over the
//! averaging time of `v`) stays below 0.05 at every angle (docs/theory.md section 9); the study
//! reports it per angle.
//!
//! - [`measure`]: the speeds;
//! - [`claims`]: invariance of SGD, angle dependence of Adam, derived against true by
//!   orientation, dimension and rotation;
//! - [`render`]: `speeds.csv`, `speeds.json`, the plots and the section's tables.

pub mod claims;
pub mod measure;
pub mod render;

use std::path::Path;

pub use claims::RotationClaim;
pub use measure::{RotationData, SpeedPoint};

use super::{Claim, Scale, Study, StudyParts};
use quasistatic::error::Result;

/// The rotation study.
pub struct Rotation;

impl StudyParts for Rotation {
    const STUDY: Study = Study::AdamRotation;
    const TITLE: &'static str = "Adam is not rotation invariant";
    type Data = RotationData;

    fn measure(scale: Scale) -> Result<RotationData> {
        measure::measure(scale)
    }

    fn claims(data: &RotationData) -> Vec<Claim> {
        claims::claims(data)
    }

    fn render(data: &RotationData, claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
        render::render(data, claims, dir, link)
    }

    fn seeds(data: &RotationData) -> Vec<u64> {
        let mut seeds = vec![measure::ENSEMBLE_SEED];
        seeds.extend(&data.seeds);
        seeds
    }

    fn configs(data: &RotationData) -> Vec<(String, String)> {
        render::configs(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::{find, Verdict};

    /// Tiny scale: Adam's true speed at 0 degrees exceeds that at 45 degrees by a factor > 1.5,
    /// SGD's true speeds at 0, 45, 90 degrees agree within 10%, the study writes its tables
    /// and plots, and every claim holds (or, for a gap claim whose Monte-Carlo floor is above
    /// its tolerance, is inconclusive).
    #[test]
    fn tiny_rotation_study_shows_the_effects() {
        let dir = std::env::temp_dir().join(format!(
            "quasistatic-rotation-study-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let t0 = std::time::Instant::now();
        let data = measure::measure(Scale::Tiny).unwrap();
        eprintln!("rotation study (tiny): {:.2} s", t0.elapsed().as_secs_f64());
        let speed = |opt: &str, x: f64| {
            data.planar
                .iter()
                .find(|p| p.optimizer == opt && p.x == x)
                .map(|p| p.true_speed)
                .unwrap()
        };
        assert!(speed("adam", 0.0) > 1.5 * speed("adam", 45.0));
        let s: Vec<f64> = [0.0, 45.0, 90.0].iter().map(|&a| speed("sgd", a)).collect();
        assert!(claims::spread(&s) < 1.1, "SGD speeds {s:?}");
        let claims = claims::claims(&data);
        for id in [
            RotationClaim::SgdAngleInvariant,
            RotationClaim::AdamAngleDependent,
            RotationClaim::AdamAgreesGeneric,
            RotationClaim::AdamAgreesAxisAligned,
            RotationClaim::SgdAgrees,
            RotationClaim::SgdDimensionInvariant,
            RotationClaim::AdamRotatedSlower,
        ] {
            assert!(find(&claims, &id.into()).is_some(), "{id:?} missing");
        }
        // Every claim holds, except that a gap claim may be inconclusive when its
        // Monte-Carlo floor is at or above its tolerance (32 trajectories: SGD's relative
        // half-width is about 0.05, its tolerance 0.05).
        for c in &claims {
            let unresolved = matches!((c.tolerance, c.floor), (Some(t), Some(f)) if f >= t);
            if unresolved {
                assert_eq!(c.verdict, Verdict::Inconclusive, "{}: {}", c.id, c.detail);
            } else {
                assert_eq!(c.verdict, Verdict::Supported, "{}: {}", c.id, c.detail);
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        let body = render::render(&data, &claims, &dir, "adam_rotation").unwrap();
        assert!(body.contains("adam_rotation/speed_vs_angle.svg"));
        for f in ["speed_vs_angle.svg", "speed_vs_dimension.svg", "speeds.csv"] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// End to end: a point's saved `config.toml` (the planar valley at 45 degrees under Adam,
    /// and the rotated 4-dimensional valley under SGD), loaded from disk and compared by the
    /// library's `compare` path, gives the study's true and derived speeds bit for bit.
    #[test]
    fn saved_point_configs_rerun_the_study() {
        use crate::studies::mean_ci;
        let dir =
            std::env::temp_dir().join(format!("quasistatic-rotation-rerun-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = measure::measure(Scale::Tiny).unwrap();
        render::render(&data, &claims::claims(&data), &dir, "adam_rotation").unwrap();
        let planar = data
            .planar
            .iter()
            .find(|p| p.x == 45.0 && p.optimizer == "adam")
            .unwrap();
        let nd = data
            .nd
            .iter()
            .find(|p| p.x == 4.0 && p.seed.is_some() && p.optimizer == "sgd")
            .unwrap();
        for (part, point) in [("angle", planar), ("dimension", nd)] {
            let path = dir
                .join(render::point_name(part, point))
                .join("config.toml");
            let cfg = quasistatic::config::Config::load(&path).unwrap();
            let built = cfg.build().unwrap();
            let (_, truth, derived) = quasistatic::with_model!(&built.model, m =>
                crate::validate::measure_comparison(m, &built, None, 0.1, false))
            .unwrap();
            let last = truth.steps.len() - 1;
            let window = point.window as f64;
            let per_traj: Vec<f64> = (0..truth.trajectories)
                .filter_map(|j| Some((truth.get(j, 0, 0)? - truth.get(j, last, 0)?) / window))
                .collect();
            let (speed, ci) = mean_ci(&per_traj);
            assert_eq!(
                speed.to_bits(),
                point.true_speed.to_bits(),
                "{}",
                path.display()
            );
            assert_eq!(ci.to_bits(), point.true_ci.to_bits());
            let dy = derived.column(last, 0);
            let derived_speed = (data.y0 - dy.iter().sum::<f64>() / dy.len() as f64) / window;
            assert_eq!(derived_speed.to_bits(), point.derived_speed.to_bits());
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
