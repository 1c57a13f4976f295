//! `kind = "linear2"`: the two-layer linear network.

use serde::{Deserialize, Serialize};

use super::{required_data, ModelKind};
use crate::config::registry::KindTable;
use crate::config::{at_least, positive, DataConfig};
use crate::error::Result;
use crate::model::{AnyModel, LinearTwoLayer};

fn default_width() -> usize {
    8
}

fn default_init_scale() -> f64 {
    0.1
}

/// `kind = "linear2"`: `f(x) = v^T U x` (matrix factorisation regression) on the `[data]`
/// (required), started at random weights of scale `init_scale` drawn from `init_seed`.
///
/// ```toml
/// [model]
/// kind = "linear2"
/// width = 8
/// init_scale = 0.1
/// init_seed = 0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Linear2Config {
    /// Hidden width `>= 1` (default 8).
    #[serde(default = "default_width")]
    pub width: usize,
    /// Scale of the random default start, `> 0` (default 0.1).
    #[serde(default = "default_init_scale")]
    pub init_scale: f64,
    /// Seed of the random default start (default 0).
    #[serde(default)]
    pub init_seed: u64,
}

impl KindTable for Linear2Config {}

impl ModelKind for Linear2Config {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        let data = required_data(data, "linear2")?;
        let width = at_least("model.width", self.width, 1)?;
        super::model_size(
            "model.width",
            width,
            width as u128 * (data.train.p as u128 + 1),
            "width x (data.dim + 1) parameters",
        )?;
        let scale = positive("model.init_scale", self.init_scale)?;
        Ok(AnyModel::Linear2(
            LinearTwoLayer::new(width, data.train, data.test, data.teacher)
                .with_init(self.init_seed, scale),
        ))
    }
}
