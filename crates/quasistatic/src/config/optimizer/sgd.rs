//! `kind = "sgd"`.

use serde::{Deserialize, Serialize};

use super::{rate_methods, OptimizerKind, LR};
use crate::config::registry::KindTable;
use crate::config::ScheduleConfig;
use crate::error::Result;
use crate::optim::{AnyOptimizer, Schedule, Sgd};

/// `kind = "sgd"`: plain SGD, `theta -= lr g`.
///
/// ```toml
/// [optimizer]
/// kind = "sgd"
/// lr = 0.05
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate per step, `> 0` (required).
    pub lr: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl SgdConfig {
    /// Learning rate `lr`, the other fields at their defaults (as an `[optimizer]` table with
    /// only `kind = "sgd"` and `lr`).
    pub fn new(lr: f64) -> Self {
        SgdConfig {
            lr,
            schedule: ScheduleConfig::default(),
        }
    }
}

impl KindTable for SgdConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[LR];
}

impl OptimizerKind for SgdConfig {
    rate_methods!();

    fn build(&self, lr: Schedule) -> Result<AnyOptimizer> {
        Ok(AnyOptimizer::Sgd(Sgd { lr }))
    }
}
