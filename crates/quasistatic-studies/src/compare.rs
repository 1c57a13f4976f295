//! Side-by-side comparison of two ensembles recorded at the same steps (typically the true
//! optimizer and its derived manifold dynamics): the gap between their means per observable,
//! with a Monte-Carlo confidence interval, overlaid plots, and log-log slope fits for
//! learning-rate sweeps.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::output::write_atomic;
use crate::plot::{band_plot, ensemble_series, Series};
use quasistatic::error::{Error, Result};
use quasistatic::simulate::EnsembleResult;
use quasistatic::stats::summarize_ensemble;

/// The gap between the means of one observable in two ensembles.
///
/// `gap = sup_t |mean_a(t) - mean_b(t)|`, `relative = gap / range`, with `range` the spread
/// (max - min) of the first ensemble's mean over time, or its largest `|mean|` when that
/// spread is below 1e-12. The interval is `gap +- 1.96 se` with
/// `se = sqrt(se_a^2 + se_b^2)` at the time of the supremum; `noise_floor` is the largest
/// `1.96 se` over time: a gap below it is indistinguishable from Monte-Carlo error.
#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    /// Observable name.
    pub observable: String,
    /// `sup_t |mean_a - mean_b|`.
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
    /// The normaliser.
    pub range: f64,
}

/// The indices of observable `name` in `a` and `b`, which must be recorded at the same steps.
pub fn observable_pair(
    a: &EnsembleResult,
    b: &EnsembleResult,
    name: &str,
) -> Result<(usize, usize)> {
    if a.steps != b.steps {
        return Err(Error::Numerical(format!(
            "cannot compare ensembles recorded at different steps ({} vs {} checkpoints)",
            a.steps.len(),
            b.steps.len()
        )));
    }
    let (oa, ob) = match (a.observable_index(name), b.observable_index(name)) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            return Err(Error::Numerical(format!(
                "observable `{name}` is not recorded in both ensembles"
            )))
        }
    };
    Ok((oa, ob))
}

/// Gap of observable `name` between `a` and `b` (same checkpoints required).
pub fn gap(a: &EnsembleResult, b: &EnsembleResult, name: &str) -> Result<Gap> {
    let (oa, ob) = observable_pair(a, b, name)?;
    let (sa, sb) = (summarize_ensemble(a), summarize_ensemble(b));
    let means: Vec<f64> = sa
        .iter()
        .map(|s| s[oa].mean)
        .filter(|m| m.is_finite())
        .collect();
    let (lo, hi) = means
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &m| {
            (l.min(m), h.max(m))
        });
    let mut range = hi - lo;
    if range.is_nan() || range <= 1e-12 {
        range = means.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    }
    let series = |s: &[Vec<quasistatic::stats::Summary>], o: usize| -> Vec<(f64, f64)> {
        s.iter().map(|row| (row[o].mean, row[o].stderr)).collect()
    };
    sup_gap(
        name,
        &a.steps,
        &series(&sa, oa),
        &series(&sb, ob),
        range,
        "both ensembles are valid",
    )
}

/// The supremum over checkpoints of `|a_c - b_c|` for two series of `(value, standard
/// error)` recorded at `steps`, as a [`Gap`] relative to `range` (see [`Gap`] for the interval
/// and the noise floor); checkpoints where either value is not finite are skipped, and none
/// left is an error naming `name` and what `valid` means.
pub(crate) fn sup_gap(
    name: &str,
    steps: &[u64],
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    range: f64,
    valid: &str,
) -> Result<Gap> {
    let mut best = (f64::NEG_INFINITY, 0usize, 0.0);
    let mut floor = 0.0f64;
    for (c, (&(x, sx), &(y, sy))) in a.iter().zip(b).enumerate() {
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        let se = (sx.powi(2) + sy.powi(2)).sqrt();
        let se = if se.is_finite() { se } else { 0.0 };
        floor = floor.max(1.96 * se);
        let g = (x - y).abs();
        if g > best.0 {
            best = (g, c, se);
        }
    }
    if best.0 == f64::NEG_INFINITY {
        return Err(Error::Numerical(format!(
            "observable `{name}` has no checkpoint where {valid}"
        )));
    }
    let (g, c, se) = best;
    Ok(Gap {
        observable: name.to_string(),
        gap: g,
        at_step: steps[c],
        relative: g / range,
        relative_low: ((g - 1.96 * se) / range).max(0.0),
        relative_high: (g + 1.96 * se) / range,
        noise_floor: floor / range,
        range,
    })
}

/// Least-squares slope and intercept of `log y` against `log x` (pairs with non-positive
/// values are skipped), and the standard error of the slope (NaN with fewer than 3 points).
pub fn log_log_slope(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| **a > 0.0 && **b > 0.0)
        .map(|(a, b)| (a.ln(), b.ln()))
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx = pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
    let sxy = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let se = if pts.len() > 2 {
        let rss = pts
            .iter()
            .map(|p| (p.1 - intercept - slope * p.0).powi(2))
            .sum::<f64>();
        (rss / (n - 2.0) / sxx).sqrt()
    } else {
        f64::NAN
    };
    (slope, intercept, se)
}

/// Write overlaid plots (`overlay_<observable>.svg`: both means with their bands) and a gap
/// table (`gaps.csv`, `gaps.md`) for every observable the two ensembles share. `x_scale`
/// multiplies the step axis (e.g. `eta^2` for slow time) and `x_label` names it.
pub fn write_comparison(
    dir: &Path,
    title: &str,
    a: (&str, &EnsembleResult),
    b: (&str, &EnsembleResult),
    x_scale: f64,
    x_label: &str,
) -> Result<(Vec<Gap>, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let (sa, sb) = (summarize_ensemble(a.1), summarize_ensemble(b.1));
    let mut gaps = Vec::new();
    let mut files = Vec::new();
    for (oa, name) in a.1.observables.iter().enumerate() {
        let Some(ob) = b.1.observable_index(name) else {
            continue;
        };
        let scale = |mut s: Series| {
            s.x.iter_mut().for_each(|x| *x *= x_scale);
            s
        };
        let series = [
            scale(ensemble_series(a.1, &sa, oa, a.0)),
            scale(ensemble_series(b.1, &sb, ob, b.0)),
        ];
        let path = dir.join(format!("overlay_{name}.svg"));
        band_plot(&path, &format!("{title}: {name}"), x_label, name, &series)?;
        files.push(path);
        gaps.push(gap(a.1, b.1, name)?);
    }
    let mut csv = String::from(
        "observable,gap,at_step,relative,relative_low,relative_high,noise_floor,range\n",
    );
    let mut md = String::from("| observable | sup gap | at step | relative gap (95% CI) | MC noise floor |\n|---|---:|---:|---|---:|\n");
    for g in &gaps {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            g.observable,
            g.gap,
            g.at_step,
            g.relative,
            g.relative_low,
            g.relative_high,
            g.noise_floor,
            g.range
        );
        let _ = writeln!(
            md,
            "| {} | {:.4e} | {} | {:.3} [{:.3}, {:.3}] | {:.3} |",
            g.observable,
            g.gap,
            g.at_step,
            g.relative,
            g.relative_low,
            g.relative_high,
            g.noise_floor
        );
    }
    let p = dir.join("gaps.csv");
    write_atomic(&p, csv.as_bytes())?;
    files.push(p);
    let p = dir.join("gaps.md");
    write_atomic(&p, md.as_bytes())?;
    files.push(p);
    Ok((gaps, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ensemble(means: &[f64], spread: f64, n: usize) -> EnsembleResult {
        let c = means.len();
        let mut values = Vec::new();
        for j in 0..n {
            let dev = if j % 2 == 0 { spread } else { -spread };
            for m in means {
                values.push(m + dev);
            }
        }
        EnsembleResult {
            observables: vec!["y0".into()],
            steps: (0..c as u64).map(|k| k * 10).collect(),
            trajectories: n,
            values,
            valid: vec![c; n],
            divergences: vec![],
            gradient_evaluations: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn gap_of_shifted_means() {
        let a = ensemble(&[2.0, 1.0, 0.0], 0.1, 100);
        let b = ensemble(&[2.0, 1.2, 0.1], 0.1, 100);
        let g = gap(&a, &b, "y0").unwrap();
        assert!((g.gap - 0.2).abs() < 1e-12 && g.at_step == 10);
        assert!((g.range - 2.0).abs() < 1e-12 && (g.relative - 0.1).abs() < 1e-12);
        // se of each mean: sample std 0.1 * sqrt(100/99) over sqrt(100).
        let se = (2.0f64).sqrt() * 0.1 * (100.0f64 / 99.0).sqrt() / 10.0;
        assert!((g.relative_high - (0.2 + 1.96 * se) / 2.0).abs() < 1e-12);
        assert!(gap(&a, &b, "loss").is_err());
    }

    #[test]
    fn slope_of_power_law() {
        let x = [0.01, 0.02, 0.04, 0.08];
        let y: Vec<f64> = x.iter().map(|v: &f64| 3.0 * v.powf(1.5)).collect();
        let (s, i, se) = log_log_slope(&x, &y);
        assert!((s - 1.5).abs() < 1e-12 && (i - 3.0f64.ln()).abs() < 1e-12 && se < 1e-10);
    }
}
