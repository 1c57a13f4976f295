//! `kind = "fixed"`: a covariance given by the user.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::NoiseKind;
use crate::config::registry::KindTable;
use crate::error::{Error, Result};
use crate::model::AnyModel;
use crate::noise::NoiseModel;

/// `kind = "fixed"`: Gaussian noise of a fixed covariance `Sigma`.
///
/// ```toml
/// [noise]
/// kind = "fixed"
/// covariance = [[1.0, 0.5], [0.5, 1.0]]
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FixedNoiseConfig {
    /// The covariance: `d` rows of `d` finite numbers (`d` the number of model parameters),
    /// symmetric positive semi-definite (required).
    pub covariance: Vec<Vec<f64>>,
}

impl KindTable for FixedNoiseConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[(
        "covariance",
        "d rows of d numbers (d the number of model parameters)",
    )];
}

impl NoiseKind for FixedNoiseConfig {
    fn build(&self, model: &AnyModel) -> Result<NoiseModel> {
        let d = model.dim();
        let rows = &self.covariance;
        if rows.len() != d || rows.iter().any(|r| r.len() != d) {
            return Err(Error::invalid(
                "noise.covariance",
                format!(
                    "{} rows of lengths {:?}",
                    rows.len(),
                    rows.iter().map(Vec::len).collect::<Vec<_>>()
                ),
                format!("{d} rows of {d} numbers (the model has d = {d} parameters)"),
            ));
        }
        let m = DMatrix::from_fn(d, d, |i, j| rows[i][j]);
        if m.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "noise.covariance",
                "a non-finite entry",
                "finite numbers",
            ));
        }
        let asym = (&m - m.transpose()).abs().max();
        if asym > 1e-12 * (1.0 + m.abs().max()) {
            return Err(Error::invalid(
                "noise.covariance",
                format!("asymmetric by {asym:.3e}"),
                "a symmetric matrix",
            ));
        }
        let min_eig = m.clone().symmetric_eigen().eigenvalues.min();
        if min_eig < -1e-12 * (1.0 + m.abs().max()) {
            return Err(Error::invalid(
                "noise.covariance",
                format!("smallest eigenvalue {min_eig:.3e}"),
                "a positive semi-definite matrix",
            ));
        }
        Ok(NoiseModel::fixed(m))
    }
}
