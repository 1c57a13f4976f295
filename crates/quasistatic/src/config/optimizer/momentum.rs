//! `kind = "heavy_ball"` (alias `momentum`) and `kind = "nesterov"`: momentum in the PyTorch
//! convention (dampening 0), the velocity `buf` starting at 0.

use serde::{Deserialize, Serialize};

use super::{default_beta, rate_methods, OptimizerKind, LR};
use crate::config::registry::KindTable;
use crate::config::{non_negative, unit_interval, ScheduleConfig};
use crate::error::Result;
use crate::optim::{AnyOptimizer, HeavyBall, Nesterov, Schedule};

/// `kind = "heavy_ball"` (alias `"momentum"`): `buf = beta buf + g; theta -= lr buf`, with
/// `g` the stochastic gradient plus `weight_decay * theta`. With `beta = 0` it is SGD.
///
/// ```toml
/// [optimizer]
/// kind = "heavy_ball"
/// lr = 0.005
/// beta = 0.9
/// weight_decay = 0.0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeavyBallConfig {
    /// Learning rate per step, `> 0` (required).
    pub lr: f64,
    /// Momentum `beta` per step, in `[0, 1)` (default 0.9).
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Coupled L2 weight decay, added to the gradient, `>= 0` (default 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl HeavyBallConfig {
    /// Learning rate `lr`, the other fields at their defaults (as an `[optimizer]` table with
    /// only `kind = "heavy_ball"` and `lr`).
    pub fn new(lr: f64) -> Self {
        HeavyBallConfig {
            lr,
            beta: default_beta(),
            weight_decay: 0.0,
            schedule: ScheduleConfig::default(),
        }
    }
}

impl KindTable for HeavyBallConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for HeavyBallConfig {
    rate_methods!();

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::HeavyBall(HeavyBall {
            lr,
            beta: unit_interval("optimizer.beta", self.beta)?,
            weight_decay: non_negative("optimizer.weight_decay", self.weight_decay)?,
        }))
    }
}

/// `kind = "nesterov"`: `buf = beta buf + g; theta -= lr (g + beta buf)`, with `g` the
/// stochastic gradient plus `weight_decay * theta`.
///
/// ```toml
/// [optimizer]
/// kind = "nesterov"
/// lr = 0.005
/// beta = 0.9
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NesterovConfig {
    /// Learning rate per step, `> 0` (required).
    pub lr: f64,
    /// Momentum `beta` per step, in `[0, 1)` (default 0.9).
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Coupled L2 weight decay, added to the gradient, `>= 0` (default 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl KindTable for NesterovConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for NesterovConfig {
    rate_methods!();

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::Nesterov(Nesterov {
            lr,
            beta: unit_interval("optimizer.beta", self.beta)?,
            weight_decay: non_negative("optimizer.weight_decay", self.weight_decay)?,
        }))
    }
}
