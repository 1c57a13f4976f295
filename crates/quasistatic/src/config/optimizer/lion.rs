//! `kind = "lion"`: Lion, the sign of an interpolated momentum (Chen et al. 2023).

use serde::{Deserialize, Serialize};

use super::{default_beta, rate_methods, OptimizerKind, LR};
use crate::config::registry::KindTable;
use crate::config::{non_negative, unit_interval, ScheduleConfig};
use crate::error::Result;
use crate::optim::{AnyOptimizer, Lion, Schedule};

/// `beta2` of Lion (the paper's default).
fn default_beta2() -> f64 {
    0.99
}

/// `kind = "lion"`: `theta *= 1 - lr weight_decay; theta -= lr sign(beta1 m + (1 - beta1) g);
/// m = beta2 m + (1 - beta2) g`, every coordinate moving by exactly `lr` (or 0) per step.
/// Simulation only: the quasistatic derivation refuses it (the sign is not differentiable).
///
/// ```toml
/// [optimizer]
/// kind = "lion"
/// lr = 0.0001
/// beta1 = 0.9
/// beta2 = 0.99
/// weight_decay = 0.0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LionConfig {
    /// Learning rate per step, `> 0` (required): the size of every coordinate's move.
    pub lr: f64,
    /// Interpolation between momentum and gradient inside the sign, in `[0, 1)` (default 0.9).
    #[serde(default = "default_beta")]
    pub beta1: f64,
    /// Momentum decay per step, in `[0, 1)` (default 0.99).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Decoupled weight decay, `>= 0` (default 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl KindTable for LionConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for LionConfig {
    rate_methods!();

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::Lion(Lion {
            lr,
            beta1: unit_interval("optimizer.beta1", self.beta1)?,
            beta2: unit_interval("optimizer.beta2", self.beta2)?,
            weight_decay: non_negative("optimizer.weight_decay", self.weight_decay)?,
        }))
    }
}
