//! `kind = "isotropic"` and `kind = "hessian"`: Gaussian noise of a given shape.

use serde::{Deserialize, Serialize};

use super::{default_sigma, NoiseKind};
use crate::config::registry::KindTable;
use crate::config::{at_least, non_negative};
use crate::error::Result;
use crate::model::AnyModel;
use crate::noise::NoiseModel;

fn default_divisor() -> usize {
    1
}

/// `kind = "isotropic"`: Gaussian noise of covariance `(sigma^2 / B) I` added to every
/// gradient.
///
/// ```toml
/// [noise]
/// kind = "isotropic"
/// sigma = 0.5
/// batch = 1
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IsotropicNoiseConfig {
    /// Scale `sigma >= 0` (default 1).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Divisor `B >= 1` of the covariance (default 1).
    #[serde(default = "default_divisor")]
    pub batch: usize,
}

/// Every field at its default (as a `[noise]` table with only `kind = "isotropic"`).
impl Default for IsotropicNoiseConfig {
    fn default() -> Self {
        IsotropicNoiseConfig {
            sigma: default_sigma(),
            batch: default_divisor(),
        }
    }
}

impl KindTable for IsotropicNoiseConfig {}

impl NoiseKind for IsotropicNoiseConfig {
    fn build(&self, _model: &AnyModel) -> Result<NoiseModel> {
        let batch = at_least("noise.batch", self.batch, 1)?;
        Ok(NoiseModel::Isotropic {
            sigma: non_negative("noise.sigma", self.sigma)?,
            batch,
        })
    }
}

/// `kind = "hessian"`: Gaussian noise of covariance `(sigma^2 / B) H(theta)` (the positive
/// part of the Hessian, factorised densely every step: small models only).
///
/// ```toml
/// [noise]
/// kind = "hessian"
/// sigma = 1.0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HessianNoiseConfig {
    /// Scale `sigma >= 0` (default 1).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Divisor `B >= 1` of the covariance (default 1).
    #[serde(default = "default_divisor")]
    pub batch: usize,
}

impl KindTable for HessianNoiseConfig {}

impl NoiseKind for HessianNoiseConfig {
    fn build(&self, _model: &AnyModel) -> Result<NoiseModel> {
        let batch = at_least("noise.batch", self.batch, 1)?;
        Ok(NoiseModel::Hessian {
            sigma: non_negative("noise.sigma", self.sigma)?,
            batch,
        })
    }
}
