//! From numbers read out of a file to a [`Data`]: which columns are the target and the
//! features, the train/test split, and standardisation. The same for CSV and NumPy files.
//!
//! The conventions are on [`Prepare`].

use std::path::Path;

use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::{Data, Dataset};
use crate::error::Error;

/// A column of a table: by header name or by 0-based index (negative from the end, `-1` the
/// last). In TOML a string or an integer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Column {
    /// 0-based position; `-k` is the `k`-th column from the end.
    Index(i64),
    /// Header name (CSV files only: NumPy arrays have no column names).
    Name(String),
}

impl<'de> Deserialize<'de> for Column {
    /// A string or an integer; anything else is rejected saying so (rather than serde's
    /// "did not match any variant").
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ColumnVisitor;
        impl serde::de::Visitor<'_> for ColumnVisitor {
            type Value = Column;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a column name (a string) or a 0-based column index (an integer, \
                     negative from the end)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Column, E> {
                Ok(Column::Name(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Column, E> {
                Ok(Column::Index(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Column, E> {
                i64::try_from(v)
                    .map(Column::Index)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
        }
        d.deserialize_any(ColumnVisitor)
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Index(i) => write!(f, "{i}"),
            Column::Name(s) => write!(f, "`{s}`"),
        }
    }
}

/// Numbers read from a file: `rows x cols`, row-major, finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names, where the file has them (a CSV header).
    pub names: Option<Vec<String>>,
    /// Number of rows (samples).
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub values: Vec<f64>,
    /// What the table is in messages, e.g. ``array `X_train` `` (empty for a whole file).
    pub label: String,
}

impl Table {
    /// The `label`, or "the table", for messages.
    fn what(&self) -> String {
        if self.label.is_empty() {
            "the table".to_string()
        } else {
            self.label.clone()
        }
    }

    /// The column's 0-based index, or the message naming the `role` (e.g. `target`), the
    /// column and the columns there are.
    pub fn resolve(&self, column: &Column, role: &str) -> Result<usize, String> {
        let cols = self.cols;
        let range = if cols == 0 {
            "it has no columns".to_string()
        } else {
            format!(
                "{} has {cols} column(s): indices 0..={}, or -{cols}..=-1 from the end",
                self.what(),
                cols - 1
            )
        };
        match column {
            Column::Index(i) => {
                let k = if *i < 0 { cols as i64 + i } else { *i };
                if (0..cols as i64).contains(&k) {
                    Ok(k as usize)
                } else {
                    Err(format!("{role} column {i} does not exist: {range}"))
                }
            }
            Column::Name(name) => match &self.names {
                Some(names) => names.iter().position(|n| n == name).ok_or_else(|| {
                    format!(
                        "{role} column `{name}` not found; the columns are: {}",
                        names.join(", ")
                    )
                }),
                None => Err(format!(
                    "{role} column `{name}`: {} has no column names, so give an index ({range})",
                    self.what()
                )),
            },
        }
    }

    /// The message for a table whose fields disagree (a table built by hand; the readers'
    /// tables always agree).
    fn check(&self) -> Result<(), String> {
        let names_ok = self.names.as_ref().is_none_or(|n| n.len() == self.cols);
        if self.rows.checked_mul(self.cols) != Some(self.values.len()) || !names_ok {
            return Err(format!(
                "{}: {} values and {} names for {} rows of {} columns",
                self.what(),
                self.values.len(),
                self.names.as_ref().map_or(0, Vec::len),
                self.rows,
                self.cols
            ));
        }
        Ok(())
    }

    /// The name of column `k` in messages: its header name or its index.
    fn column_name(&self, k: usize) -> String {
        match &self.names {
            Some(n) => format!("`{}`", n[k]),
            None => k.to_string(),
        }
    }
}

/// The header names of the selected feature columns, where the table has names (else none).
fn header_names(table: &Table, features: &[usize]) -> Vec<String> {
    match &table.names {
        Some(n) => features.iter().map(|&k| n[k].clone()).collect(),
        None => Vec::new(),
    }
}

/// Where the data come from, read and checked to be finite.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// One table holding the targets in its `target` column (CSV, one `.npy` array).
    Table {
        /// The table.
        table: Table,
        /// The target column.
        target: Column,
    },
    /// Inputs and targets apart (two `.npy` files, arrays of an `.npz`), with the held-out
    /// rows of the file where it has them.
    Arrays {
        /// Training (or all) inputs, one row per sample.
        x: Table,
        /// Their targets, one per row of `x`.
        y: Vec<f64>,
        /// Held-out inputs and targets, if the file has them (then no rows are split off).
        test: Option<(Table, Vec<f64>)>,
    },
}

/// How rows are held out when the file has no held-out rows of its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Fraction of the rows held out, in `[0, 1)`.
    pub test_fraction: f64,
    /// Hold out a random set of rows (else the last rows).
    pub shuffle: bool,
    /// Seed of the random set: a Fisher–Yates shuffle of the row indices `0..n` driven by
    /// `Xoshiro256PlusPlus::seed_from_u64(seed)` (for `i = n-1` down to `1`, swap `i` with
    /// `floor(u * (i + 1) / 2^64)`, `u` the next 64-bit draw); the first `n_test` shuffled
    /// indices are held out.
    pub seed: u64,
}

/// Column selection, split and standardisation of a file's numbers.
///
/// Conventions, in this order:
///
/// 1. **Selection.** From one table ([`Source::Table`]) the `target` column is the label and
///    the `features` columns (default: every other column, in file order) the inputs. From
///    separate inputs and targets ([`Source::Arrays`]) `features` picks columns of the inputs
///    (default all). A column is named by its header name (CSV) or by its 0-based index, a
///    negative index counting from the end (`-1` is the last column), as in NumPy.
/// 2. **Split.** Unless the file has its own held-out rows, `ceil(test_fraction * n)` rows are
///    held out (rounding forgives `1e-9` rows of floating-point error, so `0.3` of 10 rows is
///    3): without `shuffle` the last rows; with `shuffle` a uniformly random set of rows drawn
///    from `seed` (see [`Split`]). Both parts keep the rows in file order.
/// 3. **Standardisation** (optional). Each feature is shifted and scaled to mean 0 and
///    variance 1 on the **training** rows (population variance, dividing by `n_train`); the
///    held-out rows get the same shift and scale. Targets are **not** standardised: losses and
///    label noise stay in the units of the file's targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepare {
    /// Feature columns, in the order given; empty for every column but the target (of a
    /// table) or every input column (of separate arrays).
    pub features: Vec<Column>,
    /// Standardise the features with the training rows' mean and standard deviation.
    pub standardize: bool,
    /// The split.
    pub split: Split,
}

/// Per-feature shift and scale of standardisation: `x' = (x - mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaling {
    /// Training mean of each feature.
    pub mean: Vec<f64>,
    /// Training standard deviation of each feature (population: divided by `n_train`).
    pub std: Vec<f64>,
}

/// Select, split and standardise `source` into [`Data`] (no teacher). `path` is the file named
/// in errors.
///
/// # Errors
///
/// [`Error::Data`] naming `path` and what is wrong: a target or feature column that does not
/// exist (the message lists the columns or the index range), a feature given twice or equal
/// to the target, no feature left, inputs and targets of different lengths, held-out inputs
/// with another number of columns, no rows, a `test_fraction` outside `[0, 1)` or given
/// together with the file's own held-out rows, too few rows to keep one for training, or a
/// feature constant on the training rows when standardising.
pub fn prepare(source: Source, options: &Prepare, path: &Path) -> Result<Data, Error> {
    let fail = |message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    let frac = options.split.test_fraction;
    if !(0.0..1.0).contains(&frac) {
        return Err(fail(format!("test_fraction must be in [0, 1), got {frac}")));
    }
    let (x, y, names, test) = match source {
        Source::Table { table, target } => {
            table.check().map_err(&fail)?;
            let t = table.resolve(&target, "target").map_err(&fail)?;
            let features = feature_columns(&table, &options.features, Some(t)).map_err(&fail)?;
            let y = (0..table.rows)
                .map(|i| table.values[i * table.cols + t])
                .collect();
            let names = features.iter().map(|&k| table.column_name(k)).collect();
            let headers = header_names(&table, &features);
            (select(&table, &features), y, (names, headers), None)
        }
        Source::Arrays { x, y, test } => {
            x.check().map_err(&fail)?;
            if let Some((xt, _)) = &test {
                xt.check().map_err(&fail)?;
            }
            if x.rows != y.len() {
                return Err(fail(format!(
                    "{} has {} rows but the targets have {}: one target per row is needed",
                    x.what(),
                    x.rows,
                    y.len()
                )));
            }
            let features = feature_columns(&x, &options.features, None).map_err(&fail)?;
            let test = match test {
                None => None,
                Some((xt, yt)) => {
                    if frac != 0.0 {
                        return Err(fail(format!(
                            "test_fraction {frac}: the file has its own held-out rows; \
                             give test_fraction = 0 (or leave the held-out arrays out)"
                        )));
                    }
                    if xt.cols != x.cols {
                        return Err(fail(format!(
                            "{} has {} columns but {} has {}: the same columns are needed",
                            xt.what(),
                            xt.cols,
                            x.what(),
                            x.cols
                        )));
                    }
                    if xt.rows != yt.len() {
                        return Err(fail(format!(
                            "{} (held out) has {} rows but the held-out targets have {}",
                            xt.what(),
                            xt.rows,
                            yt.len()
                        )));
                    }
                    Some(Dataset::new(select(&xt, &features), yt, features.len()))
                }
            };
            let names = features.iter().map(|&k| x.column_name(k)).collect();
            let headers = header_names(&x, &features);
            (select(&x, &features), y, (names, headers), test)
        }
    };
    let (names, features): (Vec<String>, Vec<String>) = names;
    let p = names.len();
    if y.is_empty() {
        return Err(fail("no data rows".into()));
    }
    let (mut train, mut test) = match test {
        Some(t) => (Dataset::new(x, y, p), Some(t)),
        None => split(x, y, p, &options.split).map_err(&fail)?,
    };
    if options.standardize {
        let scaling = fit_scaling(&train).map_err(|k| {
            fail(format!(
                "standardize: feature column {} is constant on the training rows (its \
                 standard deviation is 0) or too large to standardise (it overflows); drop it \
                 from the features or set standardize = false",
                names[k]
            ))
        })?;
        scaling.apply(&mut train);
        if let Some(t) = test.as_mut() {
            scaling.apply(t);
        }
    }
    Ok(Data {
        train,
        test,
        teacher: None,
        features,
    })
}

/// The feature columns of `table`: `chosen` resolved, or every column but `target`.
fn feature_columns(
    table: &Table,
    chosen: &[Column],
    target: Option<usize>,
) -> Result<Vec<usize>, String> {
    let columns: Vec<usize> = if chosen.is_empty() {
        (0..table.cols).filter(|&k| Some(k) != target).collect()
    } else {
        let mut out = Vec::with_capacity(chosen.len());
        for (i, c) in chosen.iter().enumerate() {
            let k = table.resolve(c, &format!("features[{i}]: feature"))?;
            if Some(k) == target {
                return Err(format!(
                    "features[{i}] = {c} is the target column; a target cannot be a feature"
                ));
            }
            if out.contains(&k) {
                return Err(format!(
                    "features[{i}] = {c}: column {} is already a feature",
                    table.column_name(k)
                ));
            }
            out.push(k);
        }
        out
    };
    if columns.is_empty() {
        return Err(match (target, &table.names) {
            (Some(t), _) => format!(
                "no feature columns: the only column is the target {}",
                table.column_name(t)
            ),
            (None, _) => format!("{} has no columns: no features", table.what()),
        });
    }
    Ok(columns)
}

/// The `columns` of every row of `table`, row-major.
fn select(table: &Table, columns: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(table.rows * columns.len());
    for i in 0..table.rows {
        let row = &table.values[i * table.cols..(i + 1) * table.cols];
        out.extend(columns.iter().map(|&k| row[k]));
    }
    out
}

/// Hold out rows of `(x, y)` as [`Split`] says.
fn split(
    x: Vec<f64>,
    y: Vec<f64>,
    p: usize,
    s: &Split,
) -> Result<(Dataset, Option<Dataset>), String> {
    let n_all = y.len();
    // Round up, forgiving floating-point error (0.3 * 10 must hold out 3 rows, not 4).
    let n_test = ((s.test_fraction * n_all as f64 - 1e-9).ceil().max(0.0) as usize).min(n_all);
    let n_train = n_all - n_test;
    if n_train == 0 {
        return Err(format!(
            "too few rows: {n_all} data row(s), and test_fraction {} holds out {n_test}, \
             leaving none for training",
            s.test_fraction
        ));
    }
    let held_out: Vec<bool> = if s.shuffle {
        let mut order: Vec<usize> = (0..n_all).collect();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(s.seed);
        for i in (1..n_all).rev() {
            let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        let mut held = vec![false; n_all];
        for &k in &order[..n_test] {
            held[k] = true;
        }
        held
    } else {
        (0..n_all).map(|i| i >= n_train).collect()
    };
    let (mut xa, mut ya, mut xb, mut yb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, &h) in held_out.iter().enumerate() {
        let row = &x[i * p..(i + 1) * p];
        if h {
            xb.extend_from_slice(row);
            yb.push(y[i]);
        } else {
            xa.extend_from_slice(row);
            ya.push(y[i]);
        }
    }
    Ok((
        Dataset::new(xa, ya, p),
        (n_test > 0).then(|| Dataset::new(xb, yb, p)),
    ))
}

/// The training rows' mean and population standard deviation of each feature, or the index
/// (among the features) of the first one that cannot be standardised: constant (standard
/// deviation 0, up to `1e-12` of its mean) or so large that its sums overflow.
pub fn fit_scaling(train: &Dataset) -> Result<Scaling, usize> {
    let (n, p) = (train.n, train.p);
    let mut mean = vec![0.0; p];
    for i in 0..n {
        for (m, v) in mean.iter_mut().zip(train.row(i)) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0; p];
    for i in 0..n {
        for ((s, v), m) in var.iter_mut().zip(train.row(i)).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    let std: Vec<f64> = var.iter().map(|s| (s / n as f64).sqrt()).collect();
    // Relative to the column's size, so that rounding noise on a constant column counts as 0;
    // values near f64::MAX overflow the sums.
    for (k, (s, m)) in std.iter().zip(&mean).enumerate() {
        if !s.is_finite() || !m.is_finite() || *s <= 1e-12 * m.abs().max(f64::MIN_POSITIVE) {
            return Err(k);
        }
    }
    Ok(Scaling { mean, std })
}

impl Scaling {
    /// Standardise the inputs of `data` in place: `x_ij <- (x_ij - mean_j) / std_j`.
    pub fn apply(&self, data: &mut Dataset) {
        for row in data.x.chunks_exact_mut(data.p) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}
