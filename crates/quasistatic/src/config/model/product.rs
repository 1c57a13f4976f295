//! `kind = "product"`: the scalar factorisation `f(x) = (theta_1 ... theta_D) x`.

use serde::{Deserialize, Serialize};

use super::{required_data, ModelKind};
use crate::config::registry::KindTable;
use crate::config::{at_least, finite, not_for_kind, DataConfig};
use crate::error::{Error, Result};
use crate::model::{AnyModel, ProductModel};

fn default_depth() -> usize {
    2
}

/// `kind = "product"`: `f(x) = (theta_1 ... theta_D) x`, on the `[data]` (scalar inputs,
/// `dim = 1`) or, without `[data]`, on the single sample `x = 1` with label `target`.
///
/// ```toml
/// [model]
/// kind = "product"
/// depth = 2
/// target = 1.0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// Depth `D >= 2` (default 2).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Without `[data]`: the label of the single sample, finite (default 1; not written
    /// out, and not allowed with `[data]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

/// Every field at its default (as a `[model]` table with only `kind = "product"`).
impl Default for ProductConfig {
    fn default() -> Self {
        ProductConfig {
            depth: default_depth(),
            target: None,
        }
    }
}

impl KindTable for ProductConfig {}

impl ModelKind for ProductConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        let depth = at_least("model.depth", self.depth, 2)?;
        super::model_size("model.depth", depth, depth as u128, "depth parameters")?;
        if data.is_none() {
            let target = finite("model.target", self.target.unwrap_or(1.0))?;
            return Ok(AnyModel::Product(ProductModel::scalar(depth, target)));
        }
        if self.target.is_some() {
            return Err(not_for_kind(
                "model.target",
                "product with [data]",
                "`product` without [data]",
            ));
        }
        let data = required_data(data, "product")?;
        if data.train.p != 1 {
            return Err(Error::invalid(
                "data.dim",
                data.train.p,
                "1: the product model takes scalar inputs",
            ));
        }
        let mut model = ProductModel::new(depth, data.train, data.test);
        if let Some(t) = data.teacher {
            model = model.with_teacher(t);
        }
        Ok(AnyModel::Product(model))
    }
}
