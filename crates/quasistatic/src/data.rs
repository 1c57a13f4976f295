//! Data sets: synthetic generators with fixed seeds, and a user's CSV or NumPy files.
//!
//! Inputs are stored row-major (`n x p`); targets one per row. A user's file is read into a
//! [`Table`] ([`read_csv`], [`read_npy`] with [`npy_table`], [`npz_source`]) and turned into
//! [`Data`] by [`prepare`]: target and feature columns, train/test split, standardisation
//! (the conventions are on [`Prepare`]).

mod npy;
mod prepare;

use std::path::Path;

pub use npy::{
    npy_bytes, parse_npy, read_npy, read_npz, write_npy, write_npz, NpyArray, DTYPES_ALLOWED,
};
pub use prepare::{fit_scaling, prepare, Column, Prepare, Scaling, Source, Split, Table};

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

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

    /// `L_min` of a model that can realise every linear map `x -> w . x` (diagonal and
    /// two-layer linear networks): exactly 0 when the inputs have full row rank (interpolation),
    /// the linear least-squares residual loss otherwise.
    pub fn linear_loss_min(&self) -> f64 {
        let ls = self.least_squares();
        if ls.rank == self.n {
            0.0
        } else {
            ls.loss
        }
    }

    /// Panics unless held-out data have this set's `p` features and teacher weights have `p`
    /// entries (the consistency every model constructor needs).
    pub fn assert_companions(&self, test: Option<&Dataset>, teacher: Option<&[f64]>) {
        if let Some(t) = test {
            assert_eq!(t.p, self.p, "test data need p = {} features", self.p);
        }
        if let Some(w) = teacher {
            assert_eq!(w.len(), self.p, "teacher needs p = {} weights", self.p);
        }
    }

    /// Input row `i` (length `p`).
    #[inline]
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.p..(i + 1) * self.p]
    }

    /// Mean squared error `(1/n) sum_i (w . x_i - y_i)^2` of the linear predictor `w`
    /// (length `p`); `NaN` for an empty data set.
    pub fn linear_mse(&self, w: &[f64]) -> f64 {
        assert_eq!(w.len(), self.p, "linear predictor needs p weights");
        let sum: f64 = (0..self.n)
            .map(|i| {
                let r = dot(self.row(i), w) - self.y[i];
                r * r
            })
            .sum();
        sum / self.n as f64
    }

    /// Minimum-norm least-squares fit of a linear predictor, `w = X^+ y` (SVD pseudo-inverse;
    /// singular values below `max(n, p) * eps * sigma_max` count as zero). For `n <= p` and
    /// full row rank this is the minimum-l2-norm interpolator `X^T (X X^T)^{-1} y`.
    pub fn least_squares(&self) -> LeastSquares {
        let (n, p) = (self.n, self.p);
        if n == 0 || p == 0 {
            return LeastSquares {
                weights: vec![0.0; p],
                rank: 0,
                loss: 0.0,
            };
        }
        let x = DMatrix::from_row_slice(n, p, &self.x);
        let y = DVector::from_column_slice(&self.y);
        let svd = x.svd(true, true);
        let sigma_max = svd.singular_values.max();
        let eps = n.max(p) as f64 * f64::EPSILON * sigma_max;
        let rank = svd.rank(eps);
        let weights: Vec<f64> = match svd.solve(&y, eps) {
            Ok(w) => w.iter().copied().collect(),
            // Unreachable: U and V were requested above.
            Err(_) => vec![0.0; p],
        };
        let loss = 0.5 * self.linear_mse(&weights);
        LeastSquares {
            weights,
            rank,
            loss,
        }
    }
}

/// The least-squares fit of a [`Dataset`] by a linear predictor (see
/// [`Dataset::least_squares`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LeastSquares {
    /// Minimum-norm least-squares weights (length `p`).
    pub weights: Vec<f64>,
    /// Numerical rank of the `n x p` input matrix.
    pub rank: usize,
    /// Residual loss `(1/n) sum_i 1/2 (w . x_i - y_i)^2`: the least value any linear
    /// predictor reaches on these rows.
    pub loss: f64,
}

/// How synthetic targets are produced from inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Teacher {
    /// `y = w . x` with the given weights.
    Linear(Vec<f64>),
    /// `y = value * sum_{j < k} x_j`: the first `k` weights equal `value`, the rest 0.
    Sparse {
        /// Number of non-zero weights (`k <= p`).
        k: usize,
        /// Their common value.
        value: f64,
    },
    /// `y = sum_j a_j tanh(w_j . x) / sqrt(width)` with `a_j, w_jk ~ N(0, 1)` drawn from `seed`.
    TanhNetwork {
        /// Number of hidden units (`>= 1`).
        width: usize,
        /// Seed of the teacher's weights (independent of the data seed).
        seed: u64,
    },
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
    /// Names of the feature columns, in order (a CSV header's; empty where the source has none).
    pub features: Vec<String>,
}

/// Generate a synthetic data set (deterministic in `spec.seed`).
///
/// Draw order, from `Xoshiro256PlusPlus::seed_from_u64(spec.seed)`: the `n` training input
/// rows, then the `n_test` test input rows (each row `p` standard normals), then `n` standard
/// normals `z_i` for the fixed label noise: training targets are `teacher(x_i) +
/// label_noise * z_i`, test targets are clean. A [`Teacher::TanhNetwork`] draws its weights
/// from its own seed: first `a_1..a_width`, then `W` row-major (`width x p`).
///
/// # Panics
///
/// If `p == 0` or the teacher does not fit `p` (a linear teacher with `w.len() != p`, a sparse
/// teacher with `k > p`, a network of width 0): programming errors, to be caught earlier by
/// configuration validation.
pub fn generate(spec: &SyntheticSpec) -> Data {
    let (n, n_test, p) = (spec.n, spec.n_test, spec.p);
    assert!(p >= 1, "synthetic data needs p >= 1 features");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(spec.seed);
    let mut draw = |len: usize| -> Vec<f64> {
        (0..len)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect()
    };
    let x_train = draw(n * p);
    let x_test = draw(n_test * p);
    let noise = draw(n);

    let rule = TeacherRule::new(&spec.teacher, p);
    let mut y_train = rule.targets(&x_train, p);
    for (y, z) in y_train.iter_mut().zip(&noise) {
        *y += spec.label_noise * z;
    }
    let y_test = rule.targets(&x_test, p);
    Data {
        train: Dataset::new(x_train, y_train, p),
        test: (n_test > 0).then(|| Dataset::new(x_test, y_test, p)),
        teacher: match rule {
            TeacherRule::Linear(w) => Some(w),
            TeacherRule::Tanh { .. } => None,
        },
        features: Vec::new(),
    }
}

/// A [`Teacher`] with its weights drawn: what maps an input row to its clean target.
enum TeacherRule {
    /// `y = w . x` (linear and sparse teachers).
    Linear(Vec<f64>),
    /// `y = sum_j a_j tanh(w_j . x) / sqrt(width)`, `w` row-major `width x p`.
    Tanh { a: Vec<f64>, w: Vec<f64> },
}

impl TeacherRule {
    fn new(teacher: &Teacher, p: usize) -> Self {
        match teacher {
            Teacher::Linear(w) => {
                assert_eq!(
                    w.len(),
                    p,
                    "linear teacher needs p = {p} weights, got {}",
                    w.len()
                );
                Self::Linear(w.clone())
            }
            Teacher::Sparse { k, value } => {
                assert!(*k <= p, "sparse teacher needs k <= p, got k = {k}, p = {p}");
                Self::Linear((0..p).map(|j| if j < *k { *value } else { 0.0 }).collect())
            }
            Teacher::TanhNetwork { width, seed } => {
                assert!(*width >= 1, "tanh teacher needs width >= 1");
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(*seed);
                let mut draw = |len: usize| -> Vec<f64> {
                    (0..len)
                        .map(|_| rng.sample::<f64, _>(StandardNormal))
                        .collect()
                };
                let a = draw(*width);
                let w = draw(width * p);
                Self::Tanh { a, w }
            }
        }
    }

    /// Clean targets of the row-major inputs `x` (`p` features per row).
    fn targets(&self, x: &[f64], p: usize) -> Vec<f64> {
        x.chunks_exact(p)
            .map(|row| match self {
                Self::Linear(w) => dot(row, w),
                Self::Tanh { a, w } => {
                    let s: f64 = a
                        .iter()
                        .zip(w.chunks_exact(p))
                        .map(|(aj, wj)| aj * dot(wj, row).tanh())
                        .sum();
                    s / (a.len() as f64).sqrt()
                }
            })
            .collect()
    }
}

/// `a . b`.
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Read a CSV file with a header row into a [`Table`] (column names from the header).
///
/// Format: cells separated by commas, surrounding whitespace trimmed, a leading byte-order mark
/// and Windows line endings accepted, blank lines skipped. Quoting is **not** supported: a cell
/// may not contain a comma or quote marks. Every cell must parse as a finite `f64`.
///
/// # Errors
///
/// [`crate::Error::Data`] naming the file and the problem: the file is missing or unreadable,
/// empty, has an empty or repeated column name, has a row with the wrong number of cells (line
/// number, count found and expected), or has a cell that is not a finite number (line number,
/// column name, the text).
pub fn read_csv(path: &Path) -> Result<Table, crate::Error> {
    let fail = |message: String| crate::Error::Data {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            std::io::ErrorKind::InvalidData => "cannot read file: it is not UTF-8 text".to_string(),
            _ => format!("cannot read file: {e}"),
        })
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // (1-based line number, line) of every non-blank line.
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(k, l)| (k + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());

    let Some((_, header)) = lines.next() else {
        return Err(fail(
            "file is empty (expected a header row naming the columns)".into(),
        ));
    };
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    for (k, name) in columns.iter().enumerate() {
        if name.is_empty() {
            return Err(fail(format!("header: column {} has an empty name", k + 1)));
        }
        if columns[..k].contains(name) {
            return Err(fail(format!("header: column name `{name}` appears twice")));
        }
    }

    let mut values = Vec::new();
    let mut rows = 0;
    for (line_no, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(fail(format!(
                "line {line_no} has {} cells, expected {} (one per header column)",
                cells.len(),
                columns.len()
            )));
        }
        for (k, cell) in cells.iter().enumerate() {
            let value = match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                Ok(_) => {
                    return Err(fail(format!(
                        "line {line_no}, column `{}`: `{cell}` is not a finite number",
                        columns[k]
                    )))
                }
                Err(_) if cell.is_empty() => {
                    return Err(fail(format!(
                        "line {line_no}, column `{}`: empty cell",
                        columns[k]
                    )))
                }
                Err(_) => {
                    return Err(fail(format!(
                        "line {line_no}, column `{}`: cannot parse `{cell}` as a number",
                        columns[k]
                    )))
                }
            };
            values.push(value);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(fail("no data rows after the header".into()));
    }
    Ok(Table {
        cols: columns.len(),
        names: Some(columns),
        rows,
        values,
        label: String::new(),
    })
}

/// Load a CSV file with a header row; `target` names the target column, every other column is
/// a feature (in file order). `test_fraction` of the rows are held out: the last
/// `ceil(test_fraction * n)` ones (rounding forgives `1e-9` rows of floating-point error, so
/// `0.3` of 10 rows is 3), and `test` is `None` when that is 0. [`read_csv`] and [`prepare`]
/// with more options.
///
/// # Errors
///
/// Those of [`read_csv`] and [`prepare`]: among them no column named `target` (the message
/// lists the columns), no feature column, too few rows to keep one for training, a
/// `test_fraction` outside `[0, 1)`.
pub fn load_csv(path: &Path, target: &str, test_fraction: f64) -> Result<Data, crate::Error> {
    let options = Prepare {
        features: Vec::new(),
        standardize: false,
        split: Split {
            test_fraction,
            shuffle: false,
            seed: 0,
        },
    };
    if !(0.0..1.0).contains(&test_fraction) {
        // Checked before reading, as `prepare` would after.
        return Err(crate::Error::Data {
            path: path.to_path_buf(),
            message: format!("test_fraction must be in [0, 1), got {test_fraction}"),
        });
    }
    let table = read_csv(path)?;
    let source = Source::Table {
        table,
        target: Column::Name(target.to_string()),
    };
    prepare(source, &options, path)
}

/// A 2-D NumPy array as a [`Table`] (rows are samples), checked to be finite; `label` names it
/// in messages (e.g. ``array `X_train` ``, or empty for a whole `.npy` file).
///
/// # Errors
///
/// [`crate::Error::Data`] naming `path`: the array is not 2-D (its shape and how to fix it), or
/// holds a NaN or infinite value (its row and column, 0-based as in NumPy).
pub fn npy_table(array: NpyArray, label: &str, path: &Path) -> Result<Table, crate::Error> {
    let fail = |message: String| crate::Error::Data {
        path: path.to_path_buf(),
        message: prefixed(label, message),
    };
    let &[rows, cols] = array.shape.as_slice() else {
        return Err(fail(format!(
            "a {}-D array (shape {}) where a 2-D one is needed: rows are samples, columns \
             features (for one feature save `a.reshape(-1, 1)`)",
            array.shape.len(),
            shape_text(&array.shape)
        )));
    };
    if let Some(k) = array.values.iter().position(|v| !v.is_finite()) {
        return Err(fail(format!(
            "row {}, column {}: {} (every value must be finite)",
            k / cols,
            k % cols,
            array.values[k]
        )));
    }
    Ok(Table {
        names: None,
        rows,
        cols,
        values: array.values,
        label: label.to_string(),
    })
}

/// NumPy targets: a 1-D array, or a 2-D array of one column, checked to be finite.
///
/// # Errors
///
/// [`crate::Error::Data`] naming `path`: another shape, or a NaN or infinite value (its
/// 0-based row).
pub fn npy_targets(array: NpyArray, label: &str, path: &Path) -> Result<Vec<f64>, crate::Error> {
    let fail = |message: String| crate::Error::Data {
        path: path.to_path_buf(),
        message: prefixed(label, message),
    };
    match array.shape.as_slice() {
        [_] | [_, 1] => {}
        other => {
            return Err(fail(format!(
                "targets of shape {} where a 1-D array (n,) or a column (n, 1) is needed",
                shape_text(other)
            )))
        }
    }
    if let Some(k) = array.values.iter().position(|v| !v.is_finite()) {
        return Err(fail(format!(
            "row {k}: {} (every value must be finite)",
            array.values[k]
        )));
    }
    Ok(array.values)
}

fn prefixed(label: &str, message: String) -> String {
    if label.is_empty() {
        message
    } else {
        format!("{label}: {message}")
    }
}

/// `(3,)`, `(3, 4)`, `()`: a shape as NumPy prints it.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

/// The arrays of an `.npz` archive as a [`Source::Arrays`]: inputs `x` (2-D) and targets `y`
/// (1-D or one column), and the held-out pair `test = (x_test, y_test)` where given.
///
/// # Errors
///
/// Those of [`read_npz`], [`npy_table`] and [`npy_targets`], each naming the array.
pub fn npz_source(
    path: &Path,
    x: &str,
    y: &str,
    test: Option<(&str, &str)>,
) -> Result<Source, crate::Error> {
    let mut names = vec![x, y];
    if let Some((xt, yt)) = test {
        names.extend([xt, yt]);
    }
    let mut arrays = read_npz(path, &names)?.into_iter();
    let mut next = || arrays.next().expect("read_npz returns one array per name");
    let label = |name: &str| format!("array `{name}`");
    let x_table = npy_table(next(), &label(x), path)?;
    let y_values = npy_targets(next(), &label(y), path)?;
    let test = match test {
        Some((xt, yt)) => Some((
            npy_table(next(), &label(xt), path)?,
            npy_targets(next(), &label(yt), path)?,
        )),
        None => None,
    };
    Ok(Source::Arrays {
        x: x_table,
        y: y_values,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(teacher: Teacher, label_noise: f64, seed: u64) -> SyntheticSpec {
        SyntheticSpec {
            n: 5,
            n_test: 3,
            p: 4,
            teacher,
            label_noise,
            seed,
        }
    }

    #[test]
    fn generation_is_deterministic_in_the_seed() {
        for teacher in [
            Teacher::Linear(vec![1.0, -2.0, 0.5, 0.0]),
            Teacher::Sparse { k: 2, value: 1.5 },
            Teacher::TanhNetwork { width: 3, seed: 11 },
        ] {
            let a = generate(&spec(teacher.clone(), 0.1, 7));
            let b = generate(&spec(teacher.clone(), 0.1, 7));
            assert_eq!(a.train, b.train);
            assert_eq!(a.test, b.test);
            assert_eq!(a.teacher, b.teacher);
            let c = generate(&spec(teacher, 0.1, 8));
            assert_ne!(a.train.x, c.train.x);
            assert_ne!(a.train.y, c.train.y);
            assert_eq!((a.train.n, a.train.p), (5, 4));
            let test = a.test.expect("n_test > 0 gives a test set");
            assert_eq!((test.n, test.p), (3, 4));
        }
    }

    #[test]
    fn sparse_teacher_without_noise_sums_the_first_k_features() {
        let data = generate(&spec(Teacher::Sparse { k: 2, value: 1.0 }, 0.0, 3));
        assert_eq!(data.teacher, Some(vec![1.0, 1.0, 0.0, 0.0]));
        for ds in [&data.train, data.test.as_ref().unwrap()] {
            for i in 0..ds.n {
                let row = ds.row(i);
                assert_eq!(ds.y[i], row[0] + row[1]);
            }
        }
    }

    /// Label noise shifts training targets only, by the same draws whatever its size.
    #[test]
    fn label_noise_is_fixed_and_train_only() {
        let teacher = Teacher::Linear(vec![0.3, 0.1, -0.2, 1.0]);
        let clean = generate(&spec(teacher.clone(), 0.0, 5));
        let noisy = generate(&spec(teacher.clone(), 0.5, 5));
        let louder = generate(&spec(teacher, 1.0, 5));
        assert_eq!(clean.train.x, noisy.train.x);
        assert_eq!(clean.test, noisy.test);
        for i in 0..5 {
            let d1 = noisy.train.y[i] - clean.train.y[i];
            let d2 = louder.train.y[i] - clean.train.y[i];
            assert!(d1 != 0.0 && (d2 - 2.0 * d1).abs() < 1e-12);
        }
    }

    #[test]
    fn tanh_teacher_has_no_weights_and_bounded_outputs() {
        let data = generate(&spec(Teacher::TanhNetwork { width: 4, seed: 2 }, 0.0, 1));
        assert!(data.teacher.is_none());
        // |y| <= sum |a_j| / sqrt(width); just check finiteness and variation.
        assert!(data.train.y.iter().all(|y| y.is_finite()));
        assert!(data.train.y.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn least_squares_interpolates_with_min_norm_and_fits_overdetermined() {
        let data = generate(&SyntheticSpec {
            n: 3,
            n_test: 0,
            p: 5,
            teacher: Teacher::Sparse { k: 1, value: 1.0 },
            label_noise: 0.2,
            seed: 4,
        });
        let ls = data.train.least_squares();
        assert_eq!(ls.rank, 3);
        assert!(ls.loss < 1e-25, "{}", ls.loss);
        // Minimum norm: w lies in the row space, w = X^T c.
        let x = DMatrix::from_row_slice(3, 5, &data.train.x);
        let w = DVector::from_column_slice(&ls.weights);
        let c = (&x * x.transpose()).lu().solve(&(&x * &w)).unwrap();
        assert!((x.transpose() * c - &w).norm() < 1e-10);
        let over = generate(&SyntheticSpec {
            n: 20,
            n_test: 0,
            p: 2,
            teacher: Teacher::Linear(vec![1.0, -1.0]),
            label_noise: 0.3,
            seed: 4,
        });
        let ls = over.train.least_squares();
        // Normal equations X^T (X w - y) = 0, and a positive residual.
        let x = DMatrix::from_row_slice(20, 2, &over.train.x);
        let r = &x * DVector::from_column_slice(&ls.weights)
            - DVector::from_column_slice(&over.train.y);
        assert!((x.transpose() * &r).norm() < 1e-10);
        assert!((ls.loss - 0.5 * r.norm_squared() / 20.0).abs() < 1e-14 && ls.loss > 0.0);
    }

    /// A file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, contents: &str) -> Self {
            let name = format!("quasistatic-data-{}-{tag}.csv", std::process::id());
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn message(result: Result<Data, crate::Error>) -> String {
        match result {
            Err(crate::Error::Data { message, .. }) => message,
            Err(other) => panic!("expected a data error, got {other}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn csv_round_trip() {
        let mut text = String::from("a, y ,b\r\n");
        for i in 0..10 {
            let (a, b) = (i as f64 * 0.5, -(i as f64));
            text += &format!("{a},{},{b}\n", a + 2.0 * b);
        }
        text += "\n";
        let file = TempFile::new("roundtrip", &format!("\u{feff}{text}"));
        let data = load_csv(&file.0, "y", 0.3).unwrap();
        assert_eq!((data.train.n, data.train.p), (7, 2));
        let test = data.test.unwrap();
        assert_eq!(test.n, 3);
        assert_eq!(data.train.row(2), &[1.0, -2.0]);
        assert_eq!(data.train.y[2], -3.0);
        assert_eq!(test.row(0), &[3.5, -7.0]);
        assert!(data.teacher.is_none());
        let all = load_csv(&file.0, "y", 0.0).unwrap();
        assert_eq!(all.train.n, 10);
        assert!(all.test.is_none());
        // Target in the first column.
        let first = load_csv(&file.0, "a", 0.0).unwrap();
        assert_eq!(first.train.row(1), &[-1.5, -1.0]);
        assert_eq!(first.train.y[1], 0.5);
    }

    #[test]
    fn csv_errors_name_the_problem() {
        let missing = std::env::temp_dir().join("quasistatic-data-no-such-file.csv");
        assert!(message(load_csv(&missing, "y", 0.0)).contains("not found"));

        let empty = TempFile::new("empty", " \n\n");
        assert!(message(load_csv(&empty.0, "y", 0.0)).contains("empty"));

        let ok = TempFile::new("ok", "x1,x2,y\n1,2,3\n4,5,6\n");
        let m = message(load_csv(&ok.0, "target", 0.0));
        assert!(
            m.contains("`target` not found") && m.contains("x1, x2, y"),
            "{m}"
        );
        for bad in [-0.1, 1.0, f64::NAN] {
            assert!(message(load_csv(&ok.0, "y", bad)).contains("test_fraction"));
        }
        let m = message(load_csv(&ok.0, "y", 0.9));
        assert!(
            m.contains("too few rows") && m.contains("2 data row(s)"),
            "{m}"
        );

        let cell = TempFile::new("cell", "x1,x2,y\n1,2,3\n4,abc,6\n");
        let m = message(load_csv(&cell.0, "y", 0.0));
        assert!(
            m.contains("line 3") && m.contains("`x2`") && m.contains("`abc`"),
            "{m}"
        );
        let blank = TempFile::new("blank", "x1,x2,y\n1,,3\n");
        let m = message(load_csv(&blank.0, "y", 0.0));
        assert!(
            m.contains("line 2") && m.contains("`x2`") && m.contains("empty cell"),
            "{m}"
        );
        let inf = TempFile::new("inf", "x1,x2,y\n1,2,inf\n");
        let m = message(load_csv(&inf.0, "y", 0.0));
        assert!(
            m.contains("`y`") && m.contains("not a finite number"),
            "{m}"
        );

        let short = TempFile::new("short", "x1,x2,y\n1,2,3\n4,5\n");
        let m = message(load_csv(&short.0, "y", 0.0));
        assert!(m.contains("line 3 has 2 cells, expected 3"), "{m}");

        let header_only = TempFile::new("header", "x1,x2,y\n");
        assert!(message(load_csv(&header_only.0, "y", 0.0)).contains("no data rows"));
        let only_target = TempFile::new("target", "y\n1\n");
        assert!(message(load_csv(&only_target.0, "y", 0.0)).contains("no feature columns"));
        let twice = TempFile::new("twice", "x,x,y\n1,2,3\n");
        assert!(message(load_csv(&twice.0, "y", 0.0)).contains("`x` appears twice"));
    }
}
