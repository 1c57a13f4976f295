//! Summary statistics of an ensemble: mean, sample standard deviation, standard error and
//! quantiles, per checkpoint and observable.
//!
//! Conventions:
//! - `std` is the sample standard deviation `sqrt(sum (x_i - mean)^2 / (n - 1))` (NaN for
//!   `n < 2`), `stderr = std / sqrt(n)`;
//! - quantiles interpolate linearly between order statistics (Hyndman and Fan type 7, numpy's
//!   default): for sorted `x_0 <= ... <= x_{n-1}` and probability `p`, with `h = (n - 1) p`,
//!   `Q(p) = x_floor(h) + (h - floor(h)) (x_floor(h)+1 - x_floor(h))`.
//!
//! ```
//! use quasistatic::stats::summarize;
//! let s = summarize(&[4.0, 1.0, 3.0, 2.0]);
//! assert_eq!(s.mean, 2.5);
//! assert_eq!(s.q25, 1.75);
//! assert!((s.std - 1.2909944487358056).abs() < 1e-15);
//! ```

use crate::record::EnsembleResult;

/// Summary statistics of a sample (see the [module docs](self) for the conventions).
///
/// An empty sample has `count = 0` and every other field NaN.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Sample size `n`.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`; NaN for `n < 2`).
    pub std: f64,
    /// Standard error of the mean, `std / sqrt(n)` (NaN for `n < 2`).
    pub stderr: f64,
    /// 5% quantile.
    pub q05: f64,
    /// 25% quantile (first quartile).
    pub q25: f64,
    /// Median.
    pub q50: f64,
    /// 75% quantile (third quartile).
    pub q75: f64,
    /// 95% quantile.
    pub q95: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// The summary of an empty sample: count 0, everything else NaN.
    pub const EMPTY: Summary = Summary {
        count: 0,
        mean: f64::NAN,
        std: f64::NAN,
        stderr: f64::NAN,
        q05: f64::NAN,
        q25: f64::NAN,
        q50: f64::NAN,
        q75: f64::NAN,
        q95: f64::NAN,
        min: f64::NAN,
        max: f64::NAN,
    };
}

/// Summarize a sample (the order of `values` does not matter).
///
/// Values are expected to be finite; a NaN propagates into `mean`, `std` and `stderr`, and
/// sorts after `+inf` for the quantiles ([`f64::total_cmp`]).
pub fn summarize(values: &[f64]) -> Summary {
    let n = values.len();
    if n == 0 {
        return Summary::EMPTY;
    }
    let nf = n as f64;
    let mean = values.iter().sum::<f64>() / nf;
    let (std, stderr) = if n < 2 {
        (f64::NAN, f64::NAN)
    } else {
        let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
        let std = (ss / (nf - 1.0)).sqrt();
        (std, std / nf.sqrt())
    };
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Summary {
        count: n,
        mean,
        std,
        stderr,
        q05: quantile_sorted(&sorted, 0.05),
        q25: quantile_sorted(&sorted, 0.25),
        q50: quantile_sorted(&sorted, 0.50),
        q75: quantile_sorted(&sorted, 0.75),
        q95: quantile_sorted(&sorted, 0.95),
        min: sorted[0],
        max: sorted[n - 1],
    }
}

/// Quantile `p` in `[0, 1]` of an ascending sample, by linear interpolation (type 7, numpy's
/// default). NaN for an empty sample; `p` is clamped to `[0, 1]`.
///
/// ```
/// use quasistatic::stats::quantile_sorted;
/// assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.75), 3.25);
/// ```
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    if frac == 0.0 {
        sorted[lo]
    } else {
        sorted[lo] + frac * (sorted[hi] - sorted[lo])
    }
}

/// Summaries of an ensemble, indexed `[checkpoint][observable]`, each over the trajectories
/// still valid at that checkpoint (see [`EnsembleResult::column`]).
pub fn summarize_ensemble(result: &EnsembleResult) -> Vec<Vec<Summary>> {
    (0..result.steps.len())
        .map(|c| {
            (0..result.observables.len())
                .map(|o| summarize(&result.column(c, o)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-14 * (1.0 + b.abs())
    }

    #[test]
    fn four_values_match_hand_computation() {
        let s = summarize(&[3.0, 1.0, 4.0, 2.0]);
        assert_eq!(s.count, 4);
        assert_eq!(s.mean, 2.5);
        assert!(close(s.std, 1.2909944487358056));
        assert!(close(s.stderr, 1.2909944487358056 / 2.0));
        // h = 3 p: q05 = 1 + 0.15, q25 = 1 + 0.75, q50 = 2.5, q75 = 3.25, q95 = 3.85.
        assert!(close(s.q05, 1.15));
        assert_eq!(s.q25, 1.75);
        assert_eq!(s.q50, 2.5);
        assert_eq!(s.q75, 3.25);
        assert!(close(s.q95, 3.85));
        assert_eq!((s.min, s.max), (1.0, 4.0));
    }

    #[test]
    fn odd_sample_median_is_middle_value() {
        // numpy: quantile([10, -2, 7, 0, 5], [.05, .25, .5, .75, .95])
        //   = [-1.6, 0, 5, 7, 9.4]; mean 4.
        let x = [10.0, -2.0, 7.0, 0.0, 5.0];
        let s = summarize(&x);
        assert_eq!(s.mean, 4.0);
        // squared deviations 36 + 36 + 9 + 16 + 1 = 98, / 4 = 24.5.
        assert!(close(s.std, 24.5f64.sqrt()));
        assert!(close(s.q05, -1.6));
        assert_eq!(s.q25, 0.0);
        assert_eq!(s.q50, 5.0);
        assert_eq!(s.q75, 7.0);
        assert!(close(s.q95, 9.4));
    }

    #[test]
    fn empty_sample_is_count_zero_and_nan() {
        let s = summarize(&[]);
        assert_eq!(s.count, 0);
        for v in [
            s.mean, s.std, s.stderr, s.q05, s.q25, s.q50, s.q75, s.q95, s.min, s.max,
        ] {
            assert!(v.is_nan());
        }
    }

    #[test]
    fn single_value_has_no_spread_estimate() {
        let s = summarize(&[7.5]);
        assert_eq!(s.count, 1);
        assert_eq!(s.mean, 7.5);
        assert!(s.std.is_nan() && s.stderr.is_nan());
        assert_eq!(
            (s.q05, s.q50, s.q95, s.min, s.max),
            (7.5, 7.5, 7.5, 7.5, 7.5)
        );
    }

    #[test]
    fn constant_sample_has_zero_std() {
        let s = summarize(&[0.1; 7]);
        assert!(close(s.mean, 0.1));
        assert!(s.std.abs() < 1e-16);
        assert_eq!(s.q05, 0.1);
    }

    #[test]
    fn quantile_endpoints_are_min_and_max() {
        let x = [1.0, 5.0, 9.0];
        assert_eq!(quantile_sorted(&x, 0.0), 1.0);
        assert_eq!(quantile_sorted(&x, 1.0), 9.0);
        assert_eq!(quantile_sorted(&x, 0.5), 5.0);
        assert_eq!(quantile_sorted(&x, 0.75), 7.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn ensemble_summaries_skip_diverged_trajectories() {
        // 3 trajectories, 2 checkpoints, 1 observable; trajectory 2 is valid only at c = 0.
        let result = EnsembleResult {
            observables: vec!["loss".into()],
            steps: vec![0, 10],
            trajectories: 3,
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN],
            valid: vec![2, 2, 1],
            divergences: vec![],
            gradient_evaluations: 25,
            seconds: 0.0,
        };
        let s = summarize_ensemble(&result);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].len(), 1);
        assert_eq!(s[0][0].count, 3);
        assert_eq!(s[0][0].mean, 3.0); // 1, 3, 5
        assert_eq!(s[1][0].count, 2);
        assert_eq!(s[1][0].mean, 3.0); // 2, 4
        assert!(close(s[1][0].std, 2.0f64.sqrt()));
    }
}
