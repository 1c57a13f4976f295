//! `kind = "two_layer"`: the two-layer network.

use serde::{Deserialize, Serialize};

use super::{required_data, ModelKind};
use crate::config::registry::{check_name, KindTable};
use crate::config::{at_least, positive, DataConfig};
use crate::error::{Error, Result};
use crate::model::{Activation, AnyModel, TwoLayerNetwork};

/// The activation `s` of a two-layer network.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActivationConfig {
    /// `"tanh"`.
    #[default]
    Tanh,
    /// `"gelu"` (tanh approximation).
    Gelu,
    /// `"softplus"`: `ln(1 + e^z)`.
    Softplus,
}

impl From<ActivationConfig> for Activation {
    fn from(a: ActivationConfig) -> Self {
        match a {
            ActivationConfig::Tanh => Activation::Tanh,
            ActivationConfig::Gelu => Activation::Gelu,
            ActivationConfig::Softplus => Activation::Softplus,
        }
    }
}

fn default_width() -> usize {
    32
}

fn default_init_scale() -> f64 {
    1.0
}

/// `kind = "two_layer"`: `f(x) = sum_j a_j s(w_j . x) / sqrt(width)` on the `[data]`
/// (required), started at random weights of scale `init_scale` drawn from `init_seed`.
///
/// ```toml
/// [model]
/// kind = "two_layer"
/// width = 32
/// activation = "tanh"
/// init_scale = 1.0
/// init_seed = 2
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TwoLayerConfig {
    /// Hidden width `>= 1` (default 32).
    #[serde(default = "default_width")]
    pub width: usize,
    /// Activation `s` (default `tanh`).
    #[serde(default)]
    pub activation: ActivationConfig,
    /// Scale of the random default start, `> 0` (default 1).
    #[serde(default = "default_init_scale")]
    pub init_scale: f64,
    /// Seed of the random default start (default 0).
    #[serde(default)]
    pub init_seed: u64,
}

impl KindTable for TwoLayerConfig {
    fn explain(table: &toml::Table) -> Option<Error> {
        check_name::<ActivationConfig>(table, "activation", "model.activation")
    }
}

impl ModelKind for TwoLayerConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        let data = required_data(data, "two_layer")?;
        let width = at_least("model.width", self.width, 1)?;
        super::model_size(
            "model.width",
            width,
            width as u128 * (data.train.p as u128 + 2),
            "width x (data.dim + 2) parameters",
        )?;
        let scale = positive("model.init_scale", self.init_scale)?;
        Ok(AnyModel::TwoLayer(
            TwoLayerNetwork::new(width, self.activation.into(), data.train, data.test)
                .with_init(self.init_seed, scale),
        ))
    }
}
