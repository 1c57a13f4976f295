//! The diffusion check of a comparison: does the derived dynamics spread its trajectories
//! along the manifold as the true optimizer does? Means check the drift; this checks the
//! tangent noise `Q` (docs/theory.md section 2) through the growth of each observable's
//! variance over the ensemble.
//!
//! For an observable `phi` and checkpoint `t`, the variance growth of an ensemble is
//! `G(t) = s^2(t) - s^2(0)` with `s^2` the sample variance (divisor `n - 1`). Its standard
//! error is estimated from the fourth central moment `m4`:
//! `se(s^2)^2 = (m4 - s^4 (n - 3) / (n - 1)) / n` (exact for the variance of the sample
//! variance to leading order in `1/n`, any distribution), and
//! `se(G(t))^2 = se(s^2(t))^2 + se(s^2(0))^2`, which ignores the positive correlation between
//! a trajectory's values at `0` and `t` and so errs on the wide side. The gap is
//! `sup_t |G_a(t) - G_b(t)|`, relative to the largest `|G_a|` (the true growth); the noise
//! floor is the largest `1.96 se` of the difference over time, relative to the same range.
//!
//! Only per-observable variances are checked (not the full covariance of manifold
//! coordinates), and the two ensembles are independent: the Monte-Carlo floor of a variance
//! is larger than that of a mean of the same ensemble by about `sqrt(kurtosis - 1)` times
//! the observable's spread over its drift.

use serde::Serialize;

use quasistatic::error::Result;
use quasistatic::simulate::EnsembleResult;

/// The gap between the variance growth of one observable in two ensembles.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VarianceGap {
    /// Observable name.
    pub observable: String,
    /// `sup_t |G_a(t) - G_b(t)|`.
    pub gap: f64,
    /// Step of the supremum.
    pub at_step: u64,
    /// `gap / range`.
    pub relative: f64,
    /// Lower end of the 95% interval of `relative`.
    pub relative_low: f64,
    /// Upper end of the 95% interval of `relative`.
    pub relative_high: f64,
    /// Largest `1.96 se / range` over time.
    pub noise_floor: f64,
    /// The normaliser: the largest `|G_a(t)|`.
    pub range: f64,
    /// The first ensemble's variance growth at the last checkpoint.
    pub final_growth_a: f64,
    /// The second ensemble's variance growth at the last checkpoint.
    pub final_growth_b: f64,
}

/// Sample variance and its standard error (see the module documentation) of `x`: zero for at
/// least two equal values, NaN for fewer than 4 values otherwise.
pub fn variance_with_se(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    if n >= 2 && x.iter().all(|&v| v == x[0]) {
        // A deterministic ensemble (e.g. derived dynamics without tangent noise).
        return (0.0, 0.0);
    }
    if n < 4 {
        return (f64::NAN, f64::NAN);
    }
    let nf = n as f64;
    let mean = x.iter().sum::<f64>() / nf;
    let (mut m2, mut m4) = (0.0, 0.0);
    for &v in x {
        let d = (v - mean) * (v - mean);
        m2 += d;
        m4 += d * d;
    }
    let s2 = m2 / (nf - 1.0);
    let m4 = m4 / nf;
    let var_s2 = ((m4 - s2 * s2 * (nf - 3.0) / (nf - 1.0)) / nf).max(0.0);
    (s2, var_s2.sqrt())
}

/// The variance-growth gap of observable `name` between `a` and `b` (same checkpoints).
pub fn variance_gap(a: &EnsembleResult, b: &EnsembleResult, name: &str) -> Result<VarianceGap> {
    let (oa, ob) = crate::compare::observable_pair(a, b, name)?;
    let va: Vec<(f64, f64)> = (0..a.steps.len())
        .map(|c| variance_with_se(&a.column(c, oa)))
        .collect();
    let vb: Vec<(f64, f64)> = (0..b.steps.len())
        .map(|c| variance_with_se(&b.column(c, ob)))
        .collect();
    let (a0, b0) = (va[0], vb[0]);
    let growth = |v: (f64, f64), v0: (f64, f64)| (v.0 - v0.0, (v.1 * v.1 + v0.1 * v0.1).sqrt());
    let ga: Vec<(f64, f64)> = va.iter().map(|&v| growth(v, a0)).collect();
    let gb: Vec<(f64, f64)> = vb.iter().map(|&v| growth(v, b0)).collect();
    let mut range = ga
        .iter()
        .map(|g| g.0)
        .filter(|g| g.is_finite())
        .fold(0.0f64, |m, g| m.max(g.abs()));
    if range <= 1e-300 {
        range = va
            .iter()
            .map(|v| v.0)
            .filter(|v| v.is_finite())
            .fold(1e-300, f64::max);
    }
    let g = crate::compare::sup_gap(
        name,
        &a.steps,
        &ga,
        &gb,
        range,
        "both ensembles have 4 valid trajectories",
    )?;
    let last = a.steps.len() - 1;
    Ok(VarianceGap {
        observable: g.observable,
        gap: g.gap,
        at_step: g.at_step,
        relative: g.relative,
        relative_low: g.relative_low,
        relative_high: g.relative_high,
        noise_floor: g.noise_floor,
        range: g.range,
        final_growth_a: ga[last].0,
        final_growth_b: gb[last].0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quasistatic::engine::rng;
    use rand::Rng;
    use rand_distr::StandardNormal;

    /// Brownian paths `x_t = sqrt(q t) z_t` (independent increments), `n` trajectories at
    /// steps 0..=10, from stream `seed`.
    fn brownian(n: usize, q: f64, seed: u64) -> EnsembleResult {
        let steps: Vec<u64> = (0..=10).collect();
        let mut values = Vec::with_capacity(n * steps.len());
        for j in 0..n {
            let mut r = rng::stream(seed, j as u64, rng::SDE_INCREMENTS);
            let mut x = 0.0;
            values.push(x);
            for _ in 1..steps.len() {
                let z: f64 = r.sample(StandardNormal);
                x += q.sqrt() * z;
                values.push(x);
            }
        }
        EnsembleResult {
            observables: vec!["y".into()],
            steps,
            trajectories: n,
            values,
            valid: vec![11; n],
            divergences: vec![],
            gradient_evaluations: 0,
            seconds: 0.0,
        }
    }

    /// The standard error of the sample variance of `N(0, 1)` is `sqrt(2 / n)` to leading
    /// order (m4 = 3): the estimate on 20 000 draws is within 3% of it (its own relative error
    /// is about `sqrt(96 / (4 n))`-ish, under 4% at this n).
    #[test]
    fn se_of_the_variance_matches_the_gaussian_value() {
        let mut r = rng::stream(5, 0, rng::SDE_INCREMENTS);
        let x: Vec<f64> = (0..20_000).map(|_| r.sample(StandardNormal)).collect();
        let (s2, se) = variance_with_se(&x);
        assert!((s2 - 1.0).abs() < 4.0 * (2.0f64 / 20_000.0).sqrt(), "{s2}");
        assert!((se / (2.0f64 / 20_000.0).sqrt() - 1.0).abs() < 0.03, "{se}");
    }

    /// Same diffusion (q = 1, 2000 trajectories each, independent seeds): the gap lies within
    /// the noise floor. Double the diffusion: the growth differs by the whole true range, far
    /// beyond the floor (about 0.09 at this size: se of a variance of 10 is 10 sqrt(2/2000)).
    #[test]
    fn equal_diffusion_agrees_and_double_diffusion_is_found() {
        let a = brownian(2000, 1.0, 1);
        let same = variance_gap(&a, &brownian(2000, 1.0, 2), "y").unwrap();
        assert!(same.relative <= same.noise_floor, "{same:?}");
        assert!(same.noise_floor < 0.15, "{same:?}");
        let double = variance_gap(&a, &brownian(2000, 2.0, 2), "y").unwrap();
        assert!(
            double.relative_low > 0.6 && double.relative_high < 1.4,
            "{double:?}"
        );
        assert!(double.relative > 3.0 * double.noise_floor, "{double:?}");
        assert_eq!(double.at_step, 10);
        assert!((double.final_growth_b / double.final_growth_a - 2.0).abs() < 0.3);
    }
}
