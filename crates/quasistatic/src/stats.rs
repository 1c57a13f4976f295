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

/// How many recorded values a [`SummaryAccumulator`] keeps for the quantiles before it keeps
/// only the first trajectories' values (2^24 values, 128 MiB).
pub const RETAINED_VALUES: usize = 1 << 24;

/// The fewest trajectories a [`SummaryAccumulator`] keeps for the quantiles (all of them in a
/// smaller ensemble).
pub const MIN_RETAINED_TRAJECTORIES: usize = 1000;

/// Summaries of an ensemble accumulated trajectory by trajectory, in trajectory order, so that
/// an ensemble can be run and written in blocks without holding all its records.
///
/// - `count`, `mean`, `min`, `max` are exact and streaming (`mean` is the sequential sum in
///   trajectory order over the count, the same bits as [`summarize`]);
/// - the records of the first [`SummaryAccumulator::retained`] trajectories are kept: when
///   that is every trajectory the summaries are exactly [`summarize_ensemble`]'s; otherwise
///   `std` and `stderr` come from Welford's streaming sum of squared deviations and the
///   quantiles from the kept trajectories (an i.i.d. sample of the ensemble, since trajectories
///   are independent and identically distributed; their number is reported next to them).
///
/// Memory: `retained x checkpoints x observables` values plus five numbers per checkpoint and
/// observable, whatever the ensemble size.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryAccumulator {
    checkpoints: usize,
    observables: usize,
    retain: usize,
    seen: usize,
    count: Vec<u64>,
    sum: Vec<f64>,
    welford_mean: Vec<f64>,
    m2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    /// Kept records, trajectory-major (`(j * checkpoints + c) * observables + o`).
    kept: Vec<f64>,
    /// Valid checkpoints of each kept trajectory.
    kept_valid: Vec<usize>,
}

impl SummaryAccumulator {
    /// An accumulator for an ensemble of `trajectories` trajectories with `checkpoints`
    /// checkpoints and `observables` observables. It keeps the records of
    /// `max(MIN_RETAINED_TRAJECTORIES, RETAINED_VALUES / (checkpoints x observables))`
    /// trajectories (at most all of them) for the quantiles.
    pub fn new(trajectories: usize, checkpoints: usize, observables: usize) -> Self {
        let cells = checkpoints * observables;
        let retain =
            trajectories.min(MIN_RETAINED_TRAJECTORIES.max(RETAINED_VALUES / cells.max(1)));
        SummaryAccumulator {
            checkpoints,
            observables,
            retain,
            seen: 0,
            count: vec![0; cells],
            sum: vec![0.0; cells],
            welford_mean: vec![0.0; cells],
            m2: vec![0.0; cells],
            min: vec![f64::INFINITY; cells],
            max: vec![f64::NEG_INFINITY; cells],
            kept: Vec::new(),
            kept_valid: Vec::new(),
        }
    }

    /// Trajectories whose records are kept for the quantiles (see the type's documentation).
    pub fn retained(&self) -> usize {
        self.retain
    }

    /// Trajectories added so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Bytes of memory the accumulator holds once full, for `trajectories`, `checkpoints`
    /// and `observables` (for resource estimates before a run).
    pub fn memory_bytes(trajectories: usize, checkpoints: usize, observables: usize) -> u64 {
        let cells = (checkpoints as u64).saturating_mul(observables as u64);
        let retain = (trajectories as u64)
            .min((MIN_RETAINED_TRAJECTORIES as u64).max(RETAINED_VALUES as u64 / cells.max(1)));
        cells
            .saturating_mul(6 + retain)
            .saturating_add(retain)
            .saturating_mul(8)
    }

    /// Add the next trajectory: its records (`checkpoints x observables`, checkpoint-major)
    /// of which the first `valid` checkpoints count.
    pub fn push(&mut self, values: &[f64], valid: usize) {
        let cells = self.checkpoints * self.observables;
        debug_assert_eq!(values.len(), cells);
        let valid = valid.min(self.checkpoints);
        for (i, &x) in values[..valid * self.observables].iter().enumerate() {
            self.count[i] += 1;
            let n = self.count[i] as f64;
            self.sum[i] += x;
            let delta = x - self.welford_mean[i];
            self.welford_mean[i] += delta / n;
            self.m2[i] += delta * (x - self.welford_mean[i]);
            if x < self.min[i] {
                self.min[i] = x;
            }
            if x > self.max[i] {
                self.max[i] = x;
            }
        }
        if self.seen < self.retain {
            self.kept.extend_from_slice(values);
            self.kept_valid.push(valid);
        }
        self.seen += 1;
    }

    /// Add every trajectory of `result` in order (its checkpoints and observables must match).
    pub fn push_ensemble(&mut self, result: &EnsembleResult) {
        let cells = self.checkpoints * self.observables;
        for j in 0..result.trajectories {
            self.push(&result.values[j * cells..(j + 1) * cells], result.valid[j]);
        }
    }

    /// The summaries, indexed `[checkpoint][observable]`.
    pub fn finish(&self) -> Vec<Vec<Summary>> {
        let all_kept = self.kept_valid.len() == self.seen;
        (0..self.checkpoints)
            .map(|c| {
                (0..self.observables)
                    .map(|o| {
                        let column: Vec<f64> = self
                            .kept_valid
                            .iter()
                            .enumerate()
                            .filter(|&(_, &v)| c < v)
                            .map(|(j, _)| {
                                self.kept[(j * self.checkpoints + c) * self.observables + o]
                            })
                            .collect();
                        let sample = summarize(&column);
                        if all_kept {
                            return sample;
                        }
                        let i = c * self.observables + o;
                        let n = self.count[i] as usize;
                        if n == 0 {
                            return Summary::EMPTY;
                        }
                        let nf = n as f64;
                        let (std, stderr) = if n < 2 {
                            (f64::NAN, f64::NAN)
                        } else {
                            let std = (self.m2[i] / (nf - 1.0)).sqrt();
                            (std, std / nf.sqrt())
                        };
                        Summary {
                            count: n,
                            mean: self.sum[i] / nf,
                            std,
                            stderr,
                            min: self.min[i],
                            max: self.max[i],
                            ..sample
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The accumulator's state as little-endian words (for checkpoints of a run): sizes,
    /// then every array. [`SummaryAccumulator::from_bytes`] reads it back bit for bit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut word = |w: u64| out.extend_from_slice(&w.to_le_bytes());
        for n in [
            self.checkpoints,
            self.observables,
            self.retain,
            self.seen,
            self.kept_valid.len(),
        ] {
            word(n as u64);
        }
        for &c in &self.count {
            word(c);
        }
        for a in [
            &self.sum,
            &self.welford_mean,
            &self.m2,
            &self.min,
            &self.max,
            &self.kept,
        ] {
            for x in a.iter() {
                word(x.to_bits());
            }
        }
        for &v in &self.kept_valid {
            word(v as u64);
        }
        out
    }

    /// Read [`SummaryAccumulator::to_bytes`]; `None` if the bytes are not such a state.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut words = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        let mut size = || words.next().and_then(|w| usize::try_from(w).ok());
        let (checkpoints, observables, retain, seen, kept_n) =
            (size()?, size()?, size()?, size()?, size()?);
        let cells = checkpoints.checked_mul(observables)?;
        let expected = 5usize
            .checked_add(cells.checked_mul(6)?)?
            .checked_add(kept_n.checked_mul(cells)?)?
            .checked_add(kept_n)?;
        if bytes.len() / 8 != expected || kept_n > retain || kept_n > seen {
            return None;
        }
        let mut words = bytes[40..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        let mut take = |n: usize| -> Vec<u64> { (&mut words).take(n).collect() };
        let count = take(cells);
        let floats = |w: Vec<u64>| w.into_iter().map(f64::from_bits).collect::<Vec<f64>>();
        let sum = floats(take(cells));
        let welford_mean = floats(take(cells));
        let m2 = floats(take(cells));
        let min = floats(take(cells));
        let max = floats(take(cells));
        let kept = floats(take(kept_n * cells));
        let kept_valid = take(kept_n).into_iter().map(|v| v as usize).collect();
        Some(SummaryAccumulator {
            checkpoints,
            observables,
            retain,
            seen,
            count,
            sum,
            welford_mean,
            m2,
            min,
            max,
            kept,
            kept_valid,
        })
    }
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

    /// Fed trajectory by trajectory with every record kept, the accumulator gives exactly
    /// `summarize_ensemble`'s summaries; with only some kept, count, mean, min and max are
    /// still exact, std is within rounding of the two-pass value, and the bytes round-trip.
    #[test]
    fn accumulator_matches_the_two_pass_summaries() {
        let steps = vec![0, 10, 20];
        let n = 2500;
        let mut values = Vec::new();
        let mut valid = Vec::new();
        for j in 0..n {
            for c in 0..3 {
                for o in 0..2 {
                    values.push(((j * 7919 + c * 104729 + o * 13) % 1009) as f64 / 17.0 - 20.0);
                }
            }
            valid.push(if j % 97 == 5 { 1 } else { 3 });
        }
        let result = EnsembleResult {
            observables: vec!["a".into(), "b".into()],
            steps,
            trajectories: n,
            values,
            valid,
            divergences: vec![],
            gradient_evaluations: 0,
            seconds: 0.0,
        };
        let exact = summarize_ensemble(&result);
        let mut all = SummaryAccumulator::new(n, 3, 2);
        assert_eq!(all.retained(), n);
        all.push_ensemble(&result);
        assert_eq!(all.finish(), exact);
        // Keep only 1000 of 2500 (a budget below the ensemble).
        let mut some = SummaryAccumulator::new(n, 3, 2);
        some.retain = 1000;
        some.push_ensemble(&result);
        let back = SummaryAccumulator::from_bytes(&some.to_bytes()).unwrap();
        assert_eq!(back, some);
        assert!(SummaryAccumulator::from_bytes(&some.to_bytes()[8..]).is_none());
        for (row_e, row_s) in exact.iter().zip(back.finish()) {
            for (e, s) in row_e.iter().zip(row_s) {
                assert_eq!(
                    (s.count, s.mean, s.min, s.max),
                    (e.count, e.mean, e.min, e.max)
                );
                assert!(
                    (s.std - e.std).abs() <= 1e-12 * e.std,
                    "{} {}",
                    s.std,
                    e.std
                );
                // Quantiles of 1000 of the values: within a few percent of the range.
                assert!((s.q50 - e.q50).abs() < 0.05 * (e.max - e.min));
            }
        }
    }
}
