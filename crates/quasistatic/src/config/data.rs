//! `[data]`: the data set of the models fitted to data (`product` with data, `diagonal`,
//! `two_layer`, `linear2`, `mlp`, `deep_linear`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::registry::{kinds, KindTable, TAG};
use super::{at_least, finite, non_negative, only_for, unit_interval};
use crate::data::{self, Data, SyntheticSpec, Teacher};
use crate::error::{Error, Result};

/// What a data kind does: produce the data set.
pub trait DataKind {
    /// Check the fields and generate or load the data.
    fn build(&self) -> Result<Data>;
}

kinds! {
    /// `[data]`: `kind = "synthetic"` (Gaussian inputs and a teacher) or `kind = "csv"`.
    pub enum DataConfig in "data" as dyn DataKind {
        /// Generated data.
        "synthetic" => Synthetic(SyntheticDataConfig),
        /// A CSV file.
        "csv" => Csv(CsvDataConfig),
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

impl DataKind for SyntheticDataConfig {
    fn build(&self) -> Result<Data> {
        let n = at_least("data.n", self.n, 1)?;
        let p = at_least("data.dim", self.dim, 1)?;
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

/// `kind = "csv"`: a CSV file with a header row; the `target` column is the label and every
/// other column a feature.
///
/// ```toml
/// [data]
/// kind = "csv"
/// path = "data/sparse.csv"
/// target = "y"
/// test_fraction = 0.25
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsvDataConfig {
    /// Path of the file; a relative path is relative to the config file (required).
    pub path: PathBuf,
    /// Name of the target column (required).
    pub target: String,
    /// Fraction of the rows (the last ones) held out, in `[0, 1)` (default 0).
    #[serde(default)]
    pub test_fraction: f64,
}

impl KindTable for CsvDataConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[
        ("path", "the path of a CSV file"),
        ("target", "the name of the target column"),
    ];
}

impl DataKind for CsvDataConfig {
    fn build(&self) -> Result<Data> {
        let frac = unit_interval("data.test_fraction", self.test_fraction)?;
        data::load_csv(&self.path, &self.target, frac)
    }
}
