//! `[data]`: the data set of the models fitted to data (`product` with data, `diagonal`,
//! `two_layer`, `linear2`, `mlp`, `deep_linear`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::registry::{kinds, KindTable, TAG};
use super::{at_least, finite, non_negative, only_for, unit_interval};
use crate::data::{self, Column, Data, SyntheticSpec, Teacher};
use crate::error::{Error, Result};

/// What a data kind does: produce the data set.
pub trait DataKind {
    /// Check the fields and generate or load the data.
    fn build(&self) -> Result<Data>;

    /// Make relative file paths relative to `dir`, the config file's folder (no files: no-op).
    fn resolve_paths(&mut self, _dir: &Path) {}
}

kinds! {
    /// `[data]`: `kind = "synthetic"` (Gaussian inputs and a teacher), `"csv"`, `"npy"` or
    /// `"npz"` (a user's files).
    pub enum DataConfig in "data" as dyn DataKind {
        /// Generated data.
        "synthetic" => Synthetic(SyntheticDataConfig),
        /// A CSV file.
        "csv" => Csv(CsvDataConfig),
        /// NumPy `.npy` files.
        "npy" => Npy(NpyDataConfig),
        /// A NumPy `.npz` archive.
        "npz" => Npz(NpzDataConfig),
    }
}

impl DataConfig {
    /// Check the fields and generate or load the data.
    pub fn build(&self) -> Result<Data> {
        self.get().build()
    }
}

/// `kind = "synthetic"`: inputs `x ~ N(0, I_dim)`, targets from a teacher, and optional fixed
/// noise on the training targets (drawn once, so that a model may not fit it: `L_min > 0`).
///
/// The teacher is chosen by `teacher` and its fields are prefixed `teacher_`:
///
/// ```toml
/// [data]
/// kind = "synthetic"
/// n = 40
/// n_test = 500
/// dim = 100
/// teacher = "sparse"   # or "linear" (teacher_weights), "tanh_network" (teacher_width, teacher_seed)
/// teacher_k = 5
/// teacher_value = 1.0
/// label_noise = 0.0
/// seed = 3
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "SyntheticFields", into = "SyntheticFields")]
pub struct SyntheticDataConfig {
    /// Training rows `n >= 1` (required).
    pub n: usize,
    /// Held-out rows, without label noise (default 0).
    pub n_test: usize,
    /// Input dimension `p >= 1` (required).
    pub dim: usize,
    /// The teacher (default `sparse`).
    pub teacher: TeacherConfig,
    /// Standard deviation of the fixed noise on the training labels, `>= 0` (default 0).
    pub label_noise: f64,
    /// Seed of the inputs and the label noise (default 0).
    pub seed: u64,
}

/// The teacher of synthetic data (`teacher = "..."` and the `teacher_*` fields).
#[derive(Clone, Debug, PartialEq)]
pub enum TeacherConfig {
    /// `teacher = "sparse"`: `y = value * sum_{j < k} x_j`.
    Sparse {
        /// `teacher_k`: number of non-zero weights, in `1..=dim` (default `min(5, dim)`).
        k: usize,
        /// `teacher_value`: their common value, finite (default 1).
        value: f64,
    },
    /// `teacher = "linear"`: `y = w . x`.
    Linear {
        /// `teacher_weights`: the weights `w`, `dim` finite numbers (required).
        weights: Vec<f64>,
    },
    /// `teacher = "tanh_network"`: `y = sum_j a_j tanh(w_j . x) / sqrt(width)`, weights
    /// standard normal.
    TanhNetwork {
        /// `teacher_width`: hidden units, `>= 1` (default 4).
        width: usize,
        /// `teacher_seed`: seed of the teacher's weights (default 1).
        seed: u64,
    },
}

/// The table of `kind = "synthetic"` as written: the teacher's fields flat and optional.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SyntheticFields {
    n: usize,
    #[serde(default)]
    n_test: usize,
    dim: usize,
    #[serde(default = "default_teacher")]
    teacher: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    teacher_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    teacher_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    teacher_weights: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    teacher_width: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    teacher_seed: Option<u64>,
    #[serde(default)]
    label_noise: f64,
    #[serde(default)]
    seed: u64,
}

fn default_teacher() -> String {
    "sparse".into()
}

impl TryFrom<SyntheticFields> for SyntheticDataConfig {
    type Error = Error;

    /// Pick the teacher, reject the fields of other teachers and fill in the defaults.
    fn try_from(f: SyntheticFields) -> Result<Self> {
        let name = f.teacher.as_str();
        let sparse = "teacher `sparse`";
        let linear = "teacher `linear`";
        let tanh = "teacher `tanh_network`";
        let teacher = match name {
            "sparse" => {
                only_for(&f.teacher_weights, "data.teacher_weights", name, linear)?;
                only_for(&f.teacher_width, "data.teacher_width", name, tanh)?;
                only_for(&f.teacher_seed, "data.teacher_seed", name, tanh)?;
                TeacherConfig::Sparse {
                    k: f.teacher_k.unwrap_or(5.min(f.dim)),
                    value: f.teacher_value.unwrap_or(1.0),
                }
            }
            "linear" => {
                only_for(&f.teacher_k, "data.teacher_k", name, sparse)?;
                only_for(&f.teacher_value, "data.teacher_value", name, sparse)?;
                only_for(&f.teacher_width, "data.teacher_width", name, tanh)?;
                only_for(&f.teacher_seed, "data.teacher_seed", name, tanh)?;
                let weights = f.teacher_weights.ok_or_else(|| {
                    Error::invalid(
                        "data.teacher_weights",
                        "missing",
                        format!("{} numbers (data.dim)", f.dim),
                    )
                })?;
                TeacherConfig::Linear { weights }
            }
            "tanh_network" => {
                only_for(&f.teacher_k, "data.teacher_k", name, sparse)?;
                only_for(&f.teacher_value, "data.teacher_value", name, sparse)?;
                only_for(&f.teacher_weights, "data.teacher_weights", name, linear)?;
                TeacherConfig::TanhNetwork {
                    width: f.teacher_width.unwrap_or(4),
                    seed: f.teacher_seed.unwrap_or(1),
                }
            }
            other => {
                return Err(Error::invalid(
                    "data.teacher",
                    other,
                    "one of `sparse`, `linear`, `tanh_network`",
                ))
            }
        };
        Ok(SyntheticDataConfig {
            n: f.n,
            n_test: f.n_test,
            dim: f.dim,
            teacher,
            label_noise: f.label_noise,
            seed: f.seed,
        })
    }
}

impl From<SyntheticDataConfig> for SyntheticFields {
    fn from(c: SyntheticDataConfig) -> Self {
        let mut f = SyntheticFields {
            n: c.n,
            n_test: c.n_test,
            dim: c.dim,
            teacher: String::new(),
            teacher_k: None,
            teacher_value: None,
            teacher_weights: None,
            teacher_width: None,
            teacher_seed: None,
            label_noise: c.label_noise,
            seed: c.seed,
        };
        match c.teacher {
            TeacherConfig::Sparse { k, value } => {
                f.teacher = "sparse".into();
                f.teacher_k = Some(k);
                f.teacher_value = Some(value);
            }
            TeacherConfig::Linear { weights } => {
                f.teacher = "linear".into();
                f.teacher_weights = Some(weights);
            }
            TeacherConfig::TanhNetwork { width, seed } => {
                f.teacher = "tanh_network".into();
                f.teacher_width = Some(width);
                f.teacher_seed = Some(seed);
            }
        }
        f
    }
}

impl KindTable for SyntheticDataConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] =
        &[("n", "an integer >= 1"), ("dim", "an integer >= 1")];

    /// The teacher's rules (see the `TryFrom`), as [`Error::InvalidConfig`].
    fn explain(table: &toml::Table) -> Option<Error> {
        let mut fields = table.clone();
        fields.remove(TAG);
        let fields: SyntheticFields = toml::Value::Table(fields).try_into().ok()?;
        SyntheticDataConfig::try_from(fields).err()
    }
}

/// The largest synthetic data set, in stored numbers (features and target of the training
/// and test rows, or a tanh teacher's weights): 2^27 numbers, 1 GiB of `f64`. Larger sizes
/// are refused before anything is allocated.
const MAX_SYNTHETIC_NUMBERS: u128 = 1 << 27;

impl DataKind for SyntheticDataConfig {
    fn build(&self) -> Result<Data> {
        let n = at_least("data.n", self.n, 1)?;
        let p = at_least("data.dim", self.dim, 1)?;
        let numbers = (n as u128 + self.n_test as u128) * (p as u128 + 1);
        if numbers > MAX_SYNTHETIC_NUMBERS {
            return Err(Error::invalid(
                "data.n",
                n,
                format!(
                    "(n + n_test) x (dim + 1) <= {MAX_SYNTHETIC_NUMBERS} numbers (1 GiB); n = {n}, \
                     n_test = {}, dim = {p} give {numbers}",
                    self.n_test
                ),
            ));
        }
        if let TeacherConfig::TanhNetwork { width, .. } = self.teacher {
            if width as u128 * (p as u128 + 1) > MAX_SYNTHETIC_NUMBERS {
                return Err(Error::invalid(
                    "data.teacher_width",
                    width,
                    format!(
                        "width x (dim + 1) <= {MAX_SYNTHETIC_NUMBERS} teacher weights (dim = {p})"
                    ),
                ));
            }
        }
        let teacher = match &self.teacher {
            &TeacherConfig::Sparse { k, value } => {
                if k == 0 || k > p {
                    return Err(Error::invalid(
                        "data.teacher_k",
                        k,
                        format!("an integer in 1..={p} (data.dim)"),
                    ));
                }
                Teacher::Sparse {
                    k,
                    value: finite("data.teacher_value", value)?,
                }
            }
            TeacherConfig::Linear { weights } => {
                if weights.len() != p || weights.iter().any(|x| !x.is_finite()) {
                    return Err(Error::invalid(
                        "data.teacher_weights",
                        format!("{} numbers", weights.len()),
                        format!("exactly {p} finite numbers (data.dim)"),
                    ));
                }
                Teacher::Linear(weights.clone())
            }
            &TeacherConfig::TanhNetwork { width, seed } => Teacher::TanhNetwork {
                width: at_least("data.teacher_width", width, 1)?,
                seed,
            },
        };
        Ok(data::generate(&SyntheticSpec {
            n,
            n_test: self.n_test,
            p,
            teacher,
            label_noise: non_negative("data.label_noise", self.label_noise)?,
            seed: self.seed,
        }))
    }
}

/// The options every file kind shares (see [`data::Prepare`] for the conventions):
///
/// - `features`: the feature columns, by name (CSV) or 0-based index (negative from the end);
///   empty (default) for every column but the target, or every input column;
/// - `standardize` (false): features to mean 0 and variance 1 on the training rows, the same
///   shift and scale applied to the held-out rows; targets are left as they are;
/// - `test_fraction` (0): the fraction of the rows held out, in `[0, 1)`;
/// - `shuffle` (false): hold out a random set of rows drawn from `split_seed` (0), else the
///   last rows. Both parts keep the file's row order.
fn prepare_options(
    features: &[Column],
    standardize: bool,
    test_fraction: f64,
    shuffle: bool,
    split_seed: u64,
) -> Result<data::Prepare> {
    Ok(data::Prepare {
        features: features.to_vec(),
        standardize,
        split: data::Split {
            test_fraction: unit_interval("data.test_fraction", test_fraction)?,
            shuffle,
            seed: split_seed,
        },
    })
}

/// Resolve `path` against the config file's folder `dir` if it is relative, and make it
/// absolute (against the working directory), so that the resolved config saved next to a
/// run's results reruns from any folder.
fn resolve(path: &mut PathBuf, dir: &Path) {
    if path.is_relative() {
        *path = dir.join(&*path);
    }
    if let Ok(abs) = std::path::absolute(&*path) {
        *path = abs;
    }
}

/// `kind = "csv"`: a CSV file with a header row; the `target` column is the label and the
/// `features` columns (default every other column) the inputs.
///
/// ```toml
/// [data]
/// kind = "csv"
/// path = "data/sparse.csv"   # relative to the config file
/// target = "y"               # a column name, or a 0-based index (-1 the last column)
/// features = ["x1", "x2"]    # default []: every column but the target
/// standardize = false
/// test_fraction = 0.25
/// shuffle = false            # true: a random held-out set drawn from split_seed
/// split_seed = 0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsvDataConfig {
    /// Path of the file; a relative path is relative to the config file (required).
    pub path: PathBuf,
    /// The target column, by name or 0-based index (required).
    pub target: Column,
    /// The feature columns (default empty: every column but the target).
    #[serde(default)]
    pub features: Vec<Column>,
    /// Standardise the features on the training rows (default false).
    #[serde(default)]
    pub standardize: bool,
    /// Fraction of the rows held out, in `[0, 1)` (default 0).
    #[serde(default)]
    pub test_fraction: f64,
    /// Hold out a random set of rows (default false: the last rows).
    #[serde(default)]
    pub shuffle: bool,
    /// Seed of the random held-out set (default 0).
    #[serde(default)]
    pub split_seed: u64,
}

impl KindTable for CsvDataConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[
        ("path", "the path of a CSV file"),
        ("target", "the target column: its name or 0-based index"),
    ];
}

impl DataKind for CsvDataConfig {
    fn build(&self) -> Result<Data> {
        let options = prepare_options(
            &self.features,
            self.standardize,
            self.test_fraction,
            self.shuffle,
            self.split_seed,
        )?;
        let table = data::read_csv(&self.path)?;
        let source = data::Source::Table {
            table,
            target: self.target.clone(),
        };
        data::prepare(source, &options, &self.path)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        resolve(&mut self.path, dir);
    }
}

/// `kind = "npy"`: NumPy `.npy` files, either one 2-D array (rows are samples) whose `target`
/// column is the label, or inputs `x` (2-D) and targets `y` (1-D, or 2-D with one column) in
/// two files, with optional held-out files `x_test` and `y_test` (then `test_fraction` must be
/// 0). Element types: float64, float32 and integers (converted to `f64`).
///
/// ```toml
/// [data]
/// kind = "npy"
/// path = "data/sparse.npy"   # one table: rows are samples ...
/// target = -1                # ... the target column's 0-based index (-1: the last)
/// # or: x = "x.npy", y = "y.npy" (and optionally x_test = "...", y_test = "...")
/// features = []              # input columns by index; default all (but the target)
/// standardize = false
/// test_fraction = 0.0
/// shuffle = false
/// split_seed = 0
/// ```
///
/// Every path is relative to the config file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NpyDataConfig {
    /// One 2-D array holding features and target (with `target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The target column of `path`, a 0-based index (negative from the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Column>,
    /// Inputs, a 2-D array (with `y`, instead of `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<PathBuf>,
    /// Targets, one per row of `x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<PathBuf>,
    /// Held-out inputs (with `y_test`; only with `x` and `y`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_test: Option<PathBuf>,
    /// Held-out targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_test: Option<PathBuf>,
    /// The feature columns by index (default empty: all but the target).
    #[serde(default)]
    pub features: Vec<Column>,
    /// Standardise the features on the training rows (default false).
    #[serde(default)]
    pub standardize: bool,
    /// Fraction of the rows held out, in `[0, 1)` (default 0).
    #[serde(default)]
    pub test_fraction: f64,
    /// Hold out a random set of rows (default false: the last rows).
    #[serde(default)]
    pub shuffle: bool,
    /// Seed of the random held-out set (default 0).
    #[serde(default)]
    pub split_seed: u64,
}

impl KindTable for NpyDataConfig {}

/// The error for a field given with another field that excludes it.
fn excludes(field: &str, other: &str, allowed: &str) -> Error {
    Error::invalid(
        format!("data.{field}"),
        format!("given with data.{other}"),
        allowed,
    )
}

fn missing(field: &str, allowed: &str) -> Error {
    Error::invalid(format!("data.{field}"), "missing", allowed)
}

/// The held-out pair, both or neither.
fn test_pair<'a, T>(
    x_test: &'a Option<T>,
    y_test: &'a Option<T>,
) -> Result<Option<(&'a T, &'a T)>> {
    match (x_test, y_test) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(missing(
            "y_test",
            "the held-out targets, given with data.x_test",
        )),
        (None, Some(_)) => Err(missing(
            "x_test",
            "the held-out inputs, given with data.y_test",
        )),
    }
}

impl DataKind for NpyDataConfig {
    fn build(&self) -> Result<Data> {
        let options = prepare_options(
            &self.features,
            self.standardize,
            self.test_fraction,
            self.shuffle,
            self.split_seed,
        )?;
        let one = "either `path` (one 2-D array) with `target`, or `x` and `y` (two files)";
        match (&self.path, &self.x, &self.y) {
            (Some(path), x, y) => {
                if x.is_some() {
                    return Err(excludes("x", "path", one));
                }
                if y.is_some() {
                    return Err(excludes("y", "path", one));
                }
                if self.x_test.is_some() || self.y_test.is_some() {
                    let field = if self.x_test.is_some() {
                        "x_test"
                    } else {
                        "y_test"
                    };
                    return Err(excludes(
                        field,
                        "path",
                        "held-out files only with `x` and `y`",
                    ));
                }
                let target = self.target.clone().ok_or_else(|| {
                    missing("target", "the target column of data.path: a 0-based index")
                })?;
                let table = data::npy_table(data::read_npy(path)?, "", path)?;
                let source = data::Source::Table { table, target };
                data::prepare(source, &options, path)
            }
            (None, Some(x), Some(y)) => {
                if self.target.is_some() {
                    return Err(excludes(
                        "target",
                        "x",
                        "`target` only with `path`; with `x` and `y` the targets are `y`",
                    ));
                }
                let x_table = npy_inputs(x, "data.x")?;
                let y_values = data::npy_targets(data::read_npy(y)?, "", y)?;
                let test = match test_pair(&self.x_test, &self.y_test)? {
                    Some((xt, yt)) => Some((
                        npy_inputs(xt, "data.x_test")?,
                        data::npy_targets(data::read_npy(yt)?, "", yt)?,
                    )),
                    None => None,
                };
                let source = data::Source::Arrays {
                    x: x_table,
                    y: y_values,
                    test,
                };
                data::prepare(source, &options, y)
            }
            (None, None, _) => Err(missing("path", one)),
            (None, Some(_), None) => Err(missing("y", "the targets file, given with data.x")),
        }
    }

    fn resolve_paths(&mut self, dir: &Path) {
        for p in [
            &mut self.path,
            &mut self.x,
            &mut self.y,
            &mut self.x_test,
            &mut self.y_test,
        ]
        .into_iter()
        .flatten()
        {
            resolve(p, dir);
        }
    }
}

/// The inputs file `path` of field `field`, labelled with both in later messages.
fn npy_inputs(path: &Path, field: &str) -> Result<data::Table> {
    let mut table = data::npy_table(data::read_npy(path)?, "", path)?;
    table.label = format!("{field} ({})", path.display());
    Ok(table)
}

fn default_x() -> String {
    "x".into()
}
fn default_y() -> String {
    "y".into()
}

/// `kind = "npz"`: a NumPy `.npz` archive (`numpy.savez` or `numpy.savez_compressed`) of named
/// arrays: inputs `x` (2-D, rows are samples), targets `y` (1-D, or 2-D with one column), and
/// optional held-out arrays `x_test` and `y_test` (then `test_fraction` must be 0). Element
/// types: float64, float32 and integers (converted to `f64`).
///
/// ```toml
/// [data]
/// kind = "npz"
/// path = "data/sparse.npz"   # relative to the config file
/// x = "x_train"              # array names (default "x" and "y")
/// y = "y_train"
/// x_test = "x_test"          # optional, both or neither
/// y_test = "y_test"
/// features = []              # input columns by 0-based index; default all
/// standardize = false
/// test_fraction = 0.0        # only without x_test / y_test
/// shuffle = false
/// split_seed = 0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NpzDataConfig {
    /// Path of the archive; a relative path is relative to the config file (required).
    pub path: PathBuf,
    /// Name of the inputs array (default `x`).
    #[serde(default = "default_x")]
    pub x: String,
    /// Name of the targets array (default `y`).
    #[serde(default = "default_y")]
    pub y: String,
    /// Name of the held-out inputs array (with `y_test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_test: Option<String>,
    /// Name of the held-out targets array (with `x_test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_test: Option<String>,
    /// The feature columns by index (default empty: all).
    #[serde(default)]
    pub features: Vec<Column>,
    /// Standardise the features on the training rows (default false).
    #[serde(default)]
    pub standardize: bool,
    /// Fraction of the rows held out, in `[0, 1)` (default 0).
    #[serde(default)]
    pub test_fraction: f64,
    /// Hold out a random set of rows (default false: the last rows).
    #[serde(default)]
    pub shuffle: bool,
    /// Seed of the random held-out set (default 0).
    #[serde(default)]
    pub split_seed: u64,
}

impl KindTable for NpzDataConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] =
        &[("path", "the path of an .npz archive")];
}

impl DataKind for NpzDataConfig {
    fn build(&self) -> Result<Data> {
        let options = prepare_options(
            &self.features,
            self.standardize,
            self.test_fraction,
            self.shuffle,
            self.split_seed,
        )?;
        let test = test_pair(&self.x_test, &self.y_test)?;
        let source = data::npz_source(
            &self.path,
            &self.x,
            &self.y,
            test.map(|(a, b)| (a.as_str(), b.as_str())),
        )?;
        data::prepare(source, &options, &self.path)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        resolve(&mut self.path, dir);
    }
}
