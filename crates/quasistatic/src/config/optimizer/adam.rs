//! `kind = "adam"` and `kind = "adamw"`.

use serde::{Deserialize, Serialize};

use super::{default_beta, default_eps, rate_methods, OptimizerKind, LR};
use crate::config::registry::KindTable;
use crate::config::{non_negative, positive, unit_interval, ScheduleConfig};
use crate::error::Result;
use crate::optim::{Adam, AnyOptimizer, Schedule};

fn default_beta2() -> f64 {
    0.999
}

fn default_adamw_weight_decay() -> f64 {
    0.01
}

/// `kind = "adam"`: Adam with bias correction, `eps` outside the square root:
///
/// ```text
/// m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g*g
/// theta -= lr mhat / (sqrt(vhat) + eps),   mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t)
/// ```
///
/// ```toml
/// [optimizer]
/// kind = "adam"
/// lr = 0.001
/// beta1 = 0.9
/// beta2 = 0.999
/// eps = 1e-8
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate per step, `> 0` (required).
    pub lr: f64,
    /// First-moment decay per step, in `[0, 1)` (default 0.9).
    #[serde(default = "default_beta")]
    pub beta1: f64,
    /// Second-moment decay per step, in `[0, 1)` (default 0.999).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Added to `sqrt(vhat)`, `> 0` (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl AdamConfig {
    /// Learning rate `lr`, the other fields at their defaults (as an `[optimizer]` table with
    /// only `kind = "adam"` and `lr`).
    pub fn new(lr: f64) -> Self {
        AdamConfig {
            lr,
            beta1: default_beta(),
            beta2: default_beta2(),
            eps: default_eps(),
            schedule: ScheduleConfig::default(),
        }
    }
}

impl KindTable for AdamConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for AdamConfig {
    rate_methods!();

    fn second_moment_decay(&mut self) -> Option<&mut f64> {
        Some(&mut self.beta2)
    }

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::Adam(Adam {
            lr,
            beta1: unit_interval("optimizer.beta1", self.beta1)?,
            beta2: unit_interval("optimizer.beta2", self.beta2)?,
            eps: positive("optimizer.eps", self.eps)?,
            weight_decay: 0.0,
        }))
    }
}

/// `kind = "adamw"`: Adam with decoupled weight decay, `theta *= 1 - lr weight_decay` before
/// each Adam step (PyTorch convention).
///
/// ```toml
/// [optimizer]
/// kind = "adamw"
/// lr = 0.001
/// weight_decay = 0.01
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate per step, `> 0` (required).
    pub lr: f64,
    /// First-moment decay per step, in `[0, 1)` (default 0.9).
    #[serde(default = "default_beta")]
    pub beta1: f64,
    /// Second-moment decay per step, in `[0, 1)` (default 0.999).
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Added to `sqrt(vhat)`, `> 0` (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay per unit of `lr`, `>= 0` (default 0.01).
    #[serde(default = "default_adamw_weight_decay")]
    pub weight_decay: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl KindTable for AdamWConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for AdamWConfig {
    rate_methods!();

    fn second_moment_decay(&mut self) -> Option<&mut f64> {
        Some(&mut self.beta2)
    }

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::Adam(Adam {
            lr,
            beta1: unit_interval("optimizer.beta1", self.beta1)?,
            beta2: unit_interval("optimizer.beta2", self.beta2)?,
            eps: positive("optimizer.eps", self.eps)?,
            weight_decay: non_negative("optimizer.weight_decay", self.weight_decay)?,
        }))
    }
}
