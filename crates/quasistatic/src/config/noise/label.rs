//! `kind = "label"` and `kind = "minibatch"`: noise from the data, fresh labels and batches
//! every step.

use serde::{Deserialize, Serialize};

use super::{default_sigma, NoiseKind};
use crate::config::non_negative;
use crate::config::registry::KindTable;
use crate::error::{Error, Result};
use crate::model::AnyModel;
use crate::noise::NoiseModel;

/// `kind = "label"`: every step draws fresh labels `y_i + sigma z_i` and a batch of `batch`
/// samples without replacement. On an interpolating manifold the gradient covariance is
/// `(sigma^2 / B) H`.
///
/// ```toml
/// [noise]
/// kind = "label"
/// sigma = 1.0
/// batch = 8   # default: the full batch
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelNoiseConfig {
    /// Standard deviation of the label noise, `>= 0` (default 1).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Batch size `B` in `1..=n`, `n` the number of training samples (default: the full
    /// batch `B = n`, not written out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
}

/// Every field at its default (as a `[noise]` table with only `kind = "label"`).
impl Default for LabelNoiseConfig {
    fn default() -> Self {
        LabelNoiseConfig {
            sigma: default_sigma(),
            batch: None,
        }
    }
}

impl KindTable for LabelNoiseConfig {}

/// Label and mini-batch noise need per-sample outputs (not a model given by its loss alone).
fn needs_samples(model: &AnyModel, kind: &str) -> Result<()> {
    if model.is_regression() {
        return Ok(());
    }
    Err(Error::invalid(
        "noise.kind",
        kind,
        "none, isotropic, hessian or fixed: this model is given by its loss alone, without \
         samples or labels; write its per-sample `output` instead of `loss` for label or \
         mini-batch noise",
    ))
}

impl NoiseKind for LabelNoiseConfig {
    fn build(&self, model: &AnyModel) -> Result<NoiseModel> {
        needs_samples(model, "label")?;
        let n = model.n_samples();
        if let Some(b) = self.batch {
            if b == 0 || b > n {
                return Err(Error::invalid(
                    "noise.batch",
                    b,
                    format!("an integer in 1..={n} (the number of training samples n)"),
                ));
            }
        }
        Ok(NoiseModel::Label {
            sigma: non_negative("noise.sigma", self.sigma)?,
            batch: self.batch.filter(|&b| b < n),
        })
    }
}

/// `kind = "minibatch"`: batches of `batch` samples drawn without replacement every step, the
/// labels fixed. The gradient covariance is `(n - B) / (B (n - 1)) C`, `C` the per-sample
/// gradient covariance.
///
/// ```toml
/// [noise]
/// kind = "minibatch"
/// batch = 4
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MinibatchNoiseConfig {
    /// Batch size `B` in `1..n`, smaller than the number `n` of training samples (required).
    pub batch: usize,
}

impl KindTable for MinibatchNoiseConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[(
        "batch",
        "an integer in 1..n, smaller than the number n of training samples",
    )];
}

impl NoiseKind for MinibatchNoiseConfig {
    fn build(&self, model: &AnyModel) -> Result<NoiseModel> {
        needs_samples(model, "minibatch")?;
        let n = model.n_samples();
        let b = self.batch;
        if b == 0 || b >= n {
            return Err(Error::invalid(
                "noise.batch",
                b,
                format!("an integer in 1..{n}: a batch smaller than the n = {n} training samples"),
            ));
        }
        Ok(NoiseModel::Label {
            sigma: 0.0,
            batch: Some(b),
        })
    }
}
