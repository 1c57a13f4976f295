//! `kind = "deep_linear"`: deep linear networks, dense or diagonal.

use serde::{Deserialize, Serialize};

use super::{required_data, ModelKind};
use crate::config::registry::{check_name, KindTable};
use crate::config::{at_least, not_for_kind, positive, DataConfig};
use crate::error::{Error, Result};
use crate::model::{AnyModel, DeepLinear, DeepLinearStructure};

/// The structure of a deep linear network.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StructureConfig {
    /// `"dense"`: `f(x) = W_D ... W_1 x` with hidden width `width`.
    #[default]
    Dense,
    /// `"diagonal"`: `f(x) = <u_1 ⊙ ... ⊙ u_D, x>`.
    Diagonal,
}

fn default_depth() -> usize {
    3
}

fn default_width() -> usize {
    8
}

fn default_init_scale() -> f64 {
    0.5
}

/// `kind = "deep_linear"`: a deep linear network of depth `depth` on the `[data]` (required),
/// `structure = "dense"` (`W_D ... W_1 x`, hidden width `width`) or `"diagonal"`
/// (`<u_1 ⊙ ... ⊙ u_D, x>`, no width), started at random weights of scale `init_scale`
/// (dense: `N(0, init_scale^2 / fan_in)`; diagonal: `N(0, init_scale^2)`) drawn from
/// `init_seed`.
///
/// ```toml
/// [model]
/// kind = "deep_linear"
/// depth = 3
/// structure = "dense"
/// width = 8           # dense only (default 8; not written out for diagonal)
/// init_scale = 0.5
/// init_seed = 0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeepLinearConfig {
    /// Depth `D >= 2` (default 3).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// `dense` or `diagonal` (default `dense`).
    #[serde(default)]
    pub structure: StructureConfig,
    /// Dense only: hidden width `>= 1` (default 8; not written out, and not allowed with
    /// `structure = "diagonal"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// Scale of the random default start, `> 0` (default 0.5).
    #[serde(default = "default_init_scale")]
    pub init_scale: f64,
    /// Seed of the random default start (default 0).
    #[serde(default)]
    pub init_seed: u64,
}

impl Default for DeepLinearConfig {
    fn default() -> Self {
        DeepLinearConfig {
            depth: default_depth(),
            structure: StructureConfig::default(),
            width: None,
            init_scale: default_init_scale(),
            init_seed: 0,
        }
    }
}

impl KindTable for DeepLinearConfig {
    fn explain(table: &toml::Table) -> Option<Error> {
        check_name::<StructureConfig>(table, "structure", "model.structure")
    }
}

impl ModelKind for DeepLinearConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        let depth = at_least("model.depth", self.depth, 2)?;
        let structure = match self.structure {
            StructureConfig::Dense => DeepLinearStructure::Dense {
                width: at_least("model.width", self.width.unwrap_or(default_width()), 1)?,
            },
            StructureConfig::Diagonal => {
                if self.width.is_some() {
                    return Err(not_for_kind(
                        "model.width",
                        "deep_linear with structure = \"diagonal\"",
                        "`deep_linear` with structure = \"dense\"",
                    ));
                }
                DeepLinearStructure::Diagonal
            }
        };
        let scale = positive("model.init_scale", self.init_scale)?;
        let data = required_data(data, "deep_linear")?;
        let (p, d) = (data.train.p as u128, depth as u128);
        match structure {
            DeepLinearStructure::Dense { width } => {
                let w = width as u128;
                super::model_size(
                    "model.width",
                    width,
                    w * p + (d - 2) * w * w + w,
                    "width x data.dim + (depth - 2) x width^2 + width parameters",
                )?;
            }
            DeepLinearStructure::Diagonal => {
                super::model_size("model.depth", depth, d * p, "depth x data.dim parameters")?;
            }
        }
        Ok(AnyModel::DeepLinear(
            DeepLinear::new(depth, structure, data.train, data.test, data.teacher)
                .with_init(self.init_seed, scale),
        ))
    }
}
