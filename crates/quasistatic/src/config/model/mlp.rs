//! `kind = "mlp"`: the fully connected network.

use serde::{Deserialize, Serialize};

use super::{required_data, ModelKind};
use crate::config::registry::{check_name, KindTable};
use crate::config::{positive, DataConfig};
use crate::error::{Error, Result};
use crate::model::{AnyModel, Mlp, MlpActivation};

/// The smooth activation of an MLP.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MlpActivationConfig {
    /// `"tanh"`.
    #[default]
    Tanh,
    /// `"gelu"` (tanh approximation).
    Gelu,
    /// `"softplus"`: `ln(1 + e^z)`.
    Softplus,
    /// `"sigmoid"`: `1 / (1 + e^-z)`.
    Sigmoid,
    /// `"linear"`: the identity.
    Linear,
}

impl From<MlpActivationConfig> for MlpActivation {
    fn from(a: MlpActivationConfig) -> Self {
        match a {
            MlpActivationConfig::Tanh => MlpActivation::Tanh,
            MlpActivationConfig::Gelu => MlpActivation::Gelu,
            MlpActivationConfig::Softplus => MlpActivation::Softplus,
            MlpActivationConfig::Sigmoid => MlpActivation::Sigmoid,
            MlpActivationConfig::Linear => MlpActivation::Linear,
        }
    }
}

/// Activations refused with the reason (rather than as unknown names): not three times
/// differentiable everywhere.
const NON_SMOOTH: &[&str] = &[
    "relu",
    "leaky_relu",
    "relu6",
    "elu",
    "selu",
    "hard_tanh",
    "hardtanh",
    "hard_sigmoid",
    "abs",
    "step",
];

fn default_widths() -> Vec<usize> {
    vec![32, 16]
}

fn default_init_scale() -> f64 {
    1.0
}

fn default_bias() -> bool {
    true
}

/// `kind = "mlp"`: a fully connected network `z_l = W_l a_{l-1} + b_l`, `a_l = s(z_l)`,
/// `f(x) = c . a_L + b_out` with hidden widths `widths` (the first nearest the input) on the
/// `[data]` (required; the input dimension is the data's), started at LeCun-scaled random
/// weights (`N(0, init_scale^2 / fan_in)`, biases 0) drawn from `init_seed`. Only smooth
/// activations: the derived dynamics needs third derivatives of the loss, so `relu` and
/// other non-smooth activations are refused.
///
/// ```toml
/// [model]
/// kind = "mlp"
/// widths = [32, 16]
/// activation = "tanh"    # gelu, softplus, sigmoid, linear
/// bias = true
/// init_scale = 1.0
/// init_seed = 0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Hidden widths, at least one, each `>= 1` (default `[32, 16]`).
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Activation `s` (default `tanh`).
    #[serde(default)]
    pub activation: MlpActivationConfig,
    /// Biases in every layer and the output (default true).
    #[serde(default = "default_bias")]
    pub bias: bool,
    /// Scale of the random default start, `> 0` (default 1).
    #[serde(default = "default_init_scale")]
    pub init_scale: f64,
    /// Seed of the random default start (default 0).
    #[serde(default)]
    pub init_seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            widths: default_widths(),
            activation: MlpActivationConfig::default(),
            bias: default_bias(),
            init_scale: default_init_scale(),
            init_seed: 0,
        }
    }
}

impl KindTable for MlpConfig {
    fn explain(table: &toml::Table) -> Option<Error> {
        if let Some(name) = table.get("activation").and_then(|v| v.as_str()) {
            if NON_SMOOTH.contains(&name) {
                return Some(Error::invalid(
                    "model.activation",
                    name,
                    "a smooth activation: `tanh`, `gelu`, `softplus`, `sigmoid` or `linear` \
                     (this one is not differentiable everywhere, and the derived dynamics \
                     needs third derivatives of the loss)",
                ));
            }
        }
        check_name::<MlpActivationConfig>(table, "activation", "model.activation")
    }
}

impl ModelKind for MlpConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        if self.widths.is_empty() {
            return Err(Error::invalid(
                "model.widths",
                "[]",
                "a non-empty list of hidden widths, each an integer >= 1",
            ));
        }
        if let Some(k) = self.widths.iter().position(|&h| h == 0) {
            return Err(Error::invalid(
                format!("model.widths[{k}]"),
                0,
                "an integer >= 1",
            ));
        }
        let scale = positive("model.init_scale", self.init_scale)?;
        let data = required_data(data, "mlp")?;
        let mut numbers = 0u128;
        let mut fan_in = data.train.p as u128;
        for &h in &self.widths {
            numbers = numbers.saturating_add((fan_in + 1).saturating_mul(h as u128));
            fan_in = h as u128;
        }
        numbers = numbers.saturating_add(fan_in + 1);
        super::model_size(
            "model.widths",
            format!("{:?}", self.widths),
            numbers,
            "weights and biases of every layer",
        )?;
        Ok(AnyModel::Mlp(
            Mlp::new(
                self.widths.clone(),
                self.activation.into(),
                self.bias,
                data.train,
                data.test,
            )
            .with_init(self.init_seed, scale),
        ))
    }
}
