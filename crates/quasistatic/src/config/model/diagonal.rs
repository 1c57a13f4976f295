//! `kind = "diagonal"`: the diagonal linear network.

use serde::{Deserialize, Serialize};

use super::{required_data, ModelKind};
use crate::config::registry::KindTable;
use crate::config::{positive, DataConfig};
use crate::error::Result;
use crate::model::{AnyModel, DiagonalNetwork};

fn default_floor() -> f64 {
    1e-2
}

/// `kind = "diagonal"`: `f(x) = sum_j (u_j^2 - v_j^2) x_j` on the `[data]` (required). The
/// default start is the minimum-l2 interpolator `w` split into `u`, `v` with `u^2 - v^2 = w`
/// and `floor` added to both squares.
///
/// ```toml
/// [model]
/// kind = "diagonal"
/// floor = 0.01
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiagonalConfig {
    /// Added to `u^2` and `v^2` in the default start, `> 0` (default 0.01).
    #[serde(default = "default_floor")]
    pub floor: f64,
}

/// Every field at its default (as a `[model]` table with only `kind = "diagonal"`).
impl Default for DiagonalConfig {
    fn default() -> Self {
        DiagonalConfig {
            floor: default_floor(),
        }
    }
}

impl KindTable for DiagonalConfig {}

impl ModelKind for DiagonalConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        let data = required_data(data, "diagonal")?;
        let floor = positive("model.floor", self.floor)?;
        Ok(AnyModel::Diagonal(
            DiagonalNetwork::new(data.train, data.test, data.teacher).with_floor(floor),
        ))
    }
}
