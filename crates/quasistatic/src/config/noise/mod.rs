//! `[noise]`: the gradient noise. One file per family, the covariances in
//! [`crate::noise::NoiseModel`].

mod fixed;
mod gaussian;
mod label;

pub use fixed::FixedNoiseConfig;
pub use gaussian::{HessianNoiseConfig, IsotropicNoiseConfig};
pub use label::{LabelNoiseConfig, MinibatchNoiseConfig};

use serde::{Deserialize, Serialize};

use super::registry::{kinds, KindTable};
use crate::error::Result;
use crate::model::AnyModel;
use crate::noise::NoiseModel;

/// What a noise kind does: build the library noise for a model.
pub trait NoiseKind {
    /// Check the fields against `model` (its `n` samples and `d` parameters) and build.
    fn build(&self, model: &AnyModel) -> Result<NoiseModel>;
}

kinds! {
    /// `[noise]`: `kind` is `none`, `label`, `minibatch`, `isotropic`, `hessian` or `fixed`.
    pub enum NoiseConfig in "noise" as dyn NoiseKind {
        /// No noise.
        "none" => None(NoNoiseConfig),
        /// Label noise (and optionally mini-batches).
        "label" => Label(LabelNoiseConfig),
        /// Mini-batch sampling noise.
        "minibatch" => Minibatch(MinibatchNoiseConfig),
        /// Isotropic Gaussian noise.
        "isotropic" => Isotropic(IsotropicNoiseConfig),
        /// Hessian-shaped Gaussian noise.
        "hessian" => Hessian(HessianNoiseConfig),
        /// A fixed covariance.
        "fixed" => Fixed(FixedNoiseConfig),
    }
}

impl NoiseConfig {
    /// Check the fields against `model` and build the noise.
    pub fn build(&self, model: &AnyModel) -> Result<NoiseModel> {
        self.get().build(model)
    }
}

/// `kind = "none"`: no noise, full-batch gradient descent. No fields.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoNoiseConfig {}

impl KindTable for NoNoiseConfig {}

impl NoiseKind for NoNoiseConfig {
    fn build(&self, _model: &AnyModel) -> Result<NoiseModel> {
        Ok(NoiseModel::None)
    }
}

/// The default noise scale `sigma`.
fn default_sigma() -> f64 {
    1.0
}
