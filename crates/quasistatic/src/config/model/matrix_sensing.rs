//! `kind = "matrix_sensing"`: low-rank matrix sensing through a factorisation.

use serde::{Deserialize, Serialize};

use super::{no_data, ModelKind};
use crate::config::registry::KindTable;
use crate::config::{at_least, positive, DataConfig};
use crate::error::{Error, Result};
use crate::model::{AnyModel, MatrixSensing, MatrixSensingSpec};

/// Most numbers the measurement matrices may hold (800 MB of `f64`).
const MAX_ENTRIES: usize = 100_000_000;

fn default_rows() -> usize {
    8
}

fn default_cols() -> usize {
    8
}

fn default_rank() -> usize {
    8
}

fn default_true_rank() -> usize {
    2
}

fn default_measurements() -> usize {
    48
}

fn default_init_scale() -> f64 {
    0.01
}

/// `kind = "matrix_sensing"`: `f_i = <A_i, U V^T>` (`U` is `rows x rank`, `V` is
/// `cols x rank`) or, with `symmetric = true` (`rows = cols`), `<A_i, U U^T>`. The model
/// generates its own data from `seed` (no `[data]` section): `measurements` matrices `A_i`
/// with standard normal entries (so the expected loss is `1/2 ||U V^T - M*||_F^2`) and the
/// ground truth `M*` of rank `true_rank` (factors with entries `N(0, 1/rows)`,
/// `N(0, 1/cols)`), `y_i = <A_i, M*>`. Started at small random factors (entries
/// `N(0, init_scale^2)`) drawn from `init_seed`.
///
/// ```toml
/// [model]
/// kind = "matrix_sensing"
/// rows = 8
/// cols = 8
/// rank = 8
/// true_rank = 2
/// measurements = 48
/// symmetric = false
/// seed = 0
/// init_scale = 0.01
/// init_seed = 0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatrixSensingConfig {
    /// Rows `m >= 1` (default 8).
    #[serde(default = "default_rows")]
    pub rows: usize,
    /// Columns `n >= 1`, equal to `rows` when symmetric (default 8).
    #[serde(default = "default_cols")]
    pub cols: usize,
    /// Rank `r` of the factors, in `1..=min(rows, cols)` (default 8).
    #[serde(default = "default_rank")]
    pub rank: usize,
    /// Rank of the ground truth, in `1..=min(rows, cols)` (default 2).
    #[serde(default = "default_true_rank")]
    pub true_rank: usize,
    /// Number of measurements `N >= 1` (default 48).
    #[serde(default = "default_measurements")]
    pub measurements: usize,
    /// `<A_i, U U^T>` instead of `<A_i, U V^T>` (default false).
    #[serde(default)]
    pub symmetric: bool,
    /// Seed of the measurements and the ground truth (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Scale of the small random default start, `> 0` (default 0.01).
    #[serde(default = "default_init_scale")]
    pub init_scale: f64,
    /// Seed of the random default start (default 0).
    #[serde(default)]
    pub init_seed: u64,
}

impl Default for MatrixSensingConfig {
    fn default() -> Self {
        MatrixSensingConfig {
            rows: default_rows(),
            cols: default_cols(),
            rank: default_rank(),
            true_rank: default_true_rank(),
            measurements: default_measurements(),
            symmetric: false,
            seed: 0,
            init_scale: default_init_scale(),
            init_seed: 0,
        }
    }
}

impl KindTable for MatrixSensingConfig {}

impl ModelKind for MatrixSensingConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        no_data(data, "matrix_sensing")?;
        let rows = at_least("model.rows", self.rows, 1)?;
        let cols = at_least("model.cols", self.cols, 1)?;
        if self.symmetric && cols != rows {
            return Err(Error::invalid(
                "model.cols",
                cols,
                format!("{rows} (model.rows): symmetric sensing needs a square matrix"),
            ));
        }
        let max_rank = rows.min(cols);
        for (field, rank) in [
            ("model.rank", self.rank),
            ("model.true_rank", self.true_rank),
        ] {
            if !(1..=max_rank).contains(&rank) {
                return Err(Error::invalid(
                    field,
                    rank,
                    format!("an integer in 1..={max_rank} (min(rows, cols))"),
                ));
            }
        }
        let measurements = at_least("model.measurements", self.measurements, 1)?;
        // The measurement matrices are stored: `measurements x rows x cols` numbers.
        let entries = measurements
            .checked_mul(rows)
            .and_then(|x| x.checked_mul(cols));
        if entries.is_none_or(|e| e > MAX_ENTRIES) {
            return Err(Error::invalid(
                "model.measurements",
                measurements,
                format!(
                    "at most {} for a {rows} x {cols} matrix (the measurements hold \
                     measurements x rows x cols <= {MAX_ENTRIES} numbers)",
                    MAX_ENTRIES / (rows * cols).max(1)
                ),
            ));
        }
        let scale = positive("model.init_scale", self.init_scale)?;
        let spec = MatrixSensingSpec {
            rows,
            cols,
            rank: self.rank,
            true_rank: self.true_rank,
            measurements,
            symmetric: self.symmetric,
            seed: self.seed,
        };
        Ok(AnyModel::MatrixSensing(
            MatrixSensing::generate(spec).with_init(self.init_seed, scale),
        ))
    }
}
