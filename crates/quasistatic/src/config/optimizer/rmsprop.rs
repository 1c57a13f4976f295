//! `kind = "rmsprop"`.

use serde::{Deserialize, Serialize};

use super::{default_eps, rate_methods, OptimizerKind, LR};
use crate::config::registry::KindTable;
use crate::config::{positive, unit_interval, ScheduleConfig};
use crate::error::Result;
use crate::optim::{AnyOptimizer, RmsProp, Schedule};

fn default_alpha() -> f64 {
    0.99
}

/// `kind = "rmsprop"`: RMSProp in the PyTorch convention (no momentum, not centred):
///
/// ```text
/// v = alpha v + (1 - alpha) g*g
/// theta -= lr g / (sqrt(vhat) + eps),   vhat = v / (1 - alpha^t) if bias_correction else v
/// ```
///
/// ```toml
/// [optimizer]
/// kind = "rmsprop"
/// lr = 0.001
/// alpha = 0.99
/// eps = 1e-8
/// bias_correction = false
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RmsPropConfig {
    /// Learning rate per step, `> 0` (required).
    pub lr: f64,
    /// Second-moment decay per step, in `[0, 1)` (default 0.99).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Added to `sqrt(vhat)`, `> 0` (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Divide `v` by `1 - alpha^t`, `t` counting steps from 1 (default false, as in PyTorch).
    #[serde(default)]
    pub bias_correction: bool,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl KindTable for RmsPropConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for RmsPropConfig {
    rate_methods!();

    fn second_moment_decay(&mut self) -> Option<&mut f64> {
        Some(&mut self.alpha)
    }

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::RmsProp(RmsProp {
            lr,
            alpha: unit_interval("optimizer.alpha", self.alpha)?,
            eps: positive("optimizer.eps", self.eps)?,
            bias_correction: self.bias_correction,
        }))
    }
}
