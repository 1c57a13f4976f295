//! `[optimizer]`: the optimizer, its learning rate per step and its schedule.
//!
//! Every kind has `lr` (required, the rate per step, `> 0`) and `[optimizer.schedule]`
//! (default constant); the other fields belong to some kinds only. One file per family, like
//! [`crate::optim`].

mod adam;
mod lion;
mod momentum;
mod rmsprop;
mod sgd;

pub use adam::{AdamConfig, AdamWConfig};
pub use lion::LionConfig;
pub use momentum::{HeavyBallConfig, NesterovConfig};
pub use rmsprop::RmsPropConfig;
pub use sgd::SgdConfig;

use super::positive;
use super::registry::kinds;
use super::schedule::ScheduleConfig;
use crate::error::Result;
use crate::optim::{AnyOptimizer, Schedule};

/// What an optimizer kind does: hold its rate and schedule, build the library optimizer.
pub trait OptimizerKind {
    /// The learning rate per step, `lr` (before the schedule).
    fn lr(&self) -> f64;
    /// Set `lr`.
    fn set_lr(&mut self, lr: f64);
    /// The learning-rate schedule.
    fn schedule(&self) -> &ScheduleConfig;
    /// Check the kind's own fields and build the optimizer with the (checked) schedule `lr`.
    fn build(&self, lr: Schedule) -> Result<AnyOptimizer>;
    /// The decay of a second-moment average (Adam's `beta2`, RMSProp's `alpha`), whose
    /// `1 - decay` an eta sweep scales with `eta^2` (docs/theory.md section 9); `None` (the
    /// default) for optimizers without one.
    fn second_moment_decay(&mut self) -> Option<&mut f64> {
        None
    }
}

/// The `lr` and `schedule` methods of [`OptimizerKind`] for a struct with those fields.
macro_rules! rate_methods {
    () => {
        fn lr(&self) -> f64 {
            self.lr
        }
        fn set_lr(&mut self, lr: f64) {
            self.lr = lr;
        }
        fn schedule(&self) -> &$crate::config::ScheduleConfig {
            &self.schedule
        }
    };
}
use rate_methods;

/// `beta` of the momentum methods and `beta1` of Adam.
fn default_beta() -> f64 {
    0.9
}

/// `eps` of Adam and RMSProp.
fn default_eps() -> f64 {
    1e-8
}

kinds! {
    /// `[optimizer]`: `kind` is `sgd`, `heavy_ball` (alias `momentum`), `nesterov`, `adam`,
    /// `adamw`, `rmsprop` or `lion`.
    pub enum OptimizerConfig in "optimizer" as dyn OptimizerKind {
        /// Plain SGD.
        "sgd" => Sgd(SgdConfig),
        /// Heavy-ball momentum.
        "heavy_ball" | "momentum" => HeavyBall(HeavyBallConfig),
        /// Nesterov momentum.
        "nesterov" => Nesterov(NesterovConfig),
        /// Adam.
        "adam" => Adam(AdamConfig),
        /// AdamW (decoupled weight decay).
        "adamw" => AdamW(AdamWConfig),
        /// RMSProp.
        "rmsprop" => RmsProp(RmsPropConfig),
        /// Lion.
        "lion" => Lion(LionConfig),
    }
}

impl OptimizerConfig {
    /// The learning rate per step, `lr` (before the schedule).
    pub fn lr(&self) -> f64 {
        self.get().lr()
    }

    /// Set `lr`.
    pub fn set_lr(&mut self, lr: f64) {
        self.get_mut().set_lr(lr);
    }

    /// Check every field and build the optimizer; `steps` is the run's number of steps (the
    /// default length of a cosine schedule).
    pub fn build(&self, steps: u64) -> Result<AnyOptimizer> {
        let kind = self.get();
        let lr = positive("optimizer.lr", kind.lr())?;
        let lr = kind.schedule().build(lr, steps)?;
        kind.build(lr)
    }
}

/// What `lr` must hold, for the message when it is missing.
const LR: (&str, &str) = ("lr", "a finite number > 0, the learning rate per step");
