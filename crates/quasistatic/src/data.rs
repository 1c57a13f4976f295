//! Data sets: synthetic generators with fixed seeds and a user's CSV file.
//!
//! Inputs are stored row-major (`n x p`); targets one per row.

use std::path::Path;

/// A regression data set: `n` rows of `p` features and one target each.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Row-major inputs, length `n * p`.
    pub x: Vec<f64>,
    /// Targets, length `n`.
    pub y: Vec<f64>,
    /// Number of rows.
    pub n: usize,
    /// Number of features.
    pub p: usize,
}

impl Dataset {
    /// Build from row-major inputs and targets; panics if the lengths disagree.
    pub fn new(x: Vec<f64>, y: Vec<f64>, p: usize) -> Self {
        let n = y.len();
        assert_eq!(x.len(), n * p, "inputs must have n * p entries");
        Self { x, y, n, p }
    }

    /// Input row `i` (length `p`).
    #[inline]
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.p..(i + 1) * self.p]
    }
}

/// How synthetic targets are produced from inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Teacher {
    /// `y = w . x` with the given weights.
    Linear(Vec<f64>),
    /// `y = value * sum_{j < k} x_j`: the first `k` weights equal `value`, the rest 0.
    Sparse { k: usize, value: f64 },
    /// `y = sum_j a_j tanh(w_j . x) / sqrt(width)` with `a_j, w_jk ~ N(0, 1)` drawn from `seed`.
    TanhNetwork { width: usize, seed: u64 },
}

/// A synthetic data set: Gaussian inputs `x ~ N(0, I_p)`, targets from a teacher, plus
/// optional fixed label noise of standard deviation `label_noise` (drawn once, so that a model
/// may be unable to fit it: `L_min > 0`).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// Training rows.
    pub n: usize,
    /// Held-out rows (0 for none); test targets carry no label noise.
    pub n_test: usize,
    /// Features.
    pub p: usize,
    /// Target rule.
    pub teacher: Teacher,
    /// Standard deviation of fixed noise added to training targets.
    pub label_noise: f64,
    /// Seed of inputs and noise.
    pub seed: u64,
}

/// A generated or loaded data set with its held-out part and, for linear teachers, the
/// teacher's weights.
#[derive(Clone, Debug)]
pub struct Data {
    /// Training rows.
    pub train: Dataset,
    /// Held-out rows, where there are any.
    pub test: Option<Dataset>,
    /// Teacher weights of a linear or sparse teacher.
    pub teacher: Option<Vec<f64>>,
}

/// Generate a synthetic data set (deterministic in `spec.seed`).
pub fn generate(spec: &SyntheticSpec) -> Data {
    let _ = spec;
    todo!("data generators")
}

/// Load a CSV file with a header row; `target` names the target column, every other column is
/// a feature. `test_fraction` of the rows (the last ones) are held out.
pub fn load_csv(path: &Path, target: &str, test_fraction: f64) -> Result<Data, crate::Error> {
    let _ = (path, target, test_fraction);
    todo!("csv loader")
}
