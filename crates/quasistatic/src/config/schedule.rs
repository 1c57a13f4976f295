//! `[optimizer.schedule]`: the learning rate as a function of the step.
//!
//! Every kind starts from the optimizer's `lr` (the rate per step); steps count optimizer steps
//! from 0.

use serde::{Deserialize, Serialize};

use super::registry::{kinds, KindTable};
use crate::error::{Error, Result};
use crate::optim::Schedule;

/// What a schedule kind does: build the library schedule.
pub trait ScheduleKind {
    /// Check the fields and build the schedule from the optimizer's rate `lr` per step; `steps`
    /// is the run's number of steps.
    fn build(&self, lr: f64, steps: u64) -> Result<Schedule>;
}

kinds! {
    /// `[optimizer.schedule]` (default `constant`): `kind` is `constant`, `step`, `cosine` or
    /// `warmup`.
    pub enum ScheduleConfig in "optimizer.schedule" as dyn ScheduleKind {
        /// `lr` at every step.
        "constant" => Constant(ConstantScheduleConfig),
        /// `lr * gamma^(t / every)`.
        "step" => Step(StepScheduleConfig),
        /// Cosine decay from `lr` to `eta_min`.
        "cosine" => Cosine(CosineScheduleConfig),
        /// Linear warm-up to `lr`.
        "warmup" => Warmup(WarmupScheduleConfig),
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig::Constant(ConstantScheduleConfig {})
    }
}

impl ScheduleConfig {
    /// Check the fields and build the schedule (see [`ScheduleKind::build`]).
    pub fn build(&self, lr: f64, steps: u64) -> Result<Schedule> {
        self.get().build(lr, steps)
    }
}

/// `kind = "constant"`: the rate is `lr` at every step. No fields.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConstantScheduleConfig {}

impl KindTable for ConstantScheduleConfig {}

impl ScheduleKind for ConstantScheduleConfig {
    fn build(&self, lr: f64, _steps: u64) -> Result<Schedule> {
        Ok(Schedule::Constant(lr))
    }
}

/// `kind = "step"`: the rate at step `t` is `lr * gamma^floor(t / every)`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepScheduleConfig {
    /// Factor applied every period, in `(0, 1]` (required).
    pub gamma: f64,
    /// The period in steps, `>= 1` (required).
    pub every: u64,
}

impl KindTable for StepScheduleConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[
        ("gamma", "a number in (0, 1]"),
        ("every", "an integer >= 1"),
    ];
}

impl ScheduleKind for StepScheduleConfig {
    fn build(&self, lr: f64, _steps: u64) -> Result<Schedule> {
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::invalid(
                "optimizer.schedule.gamma",
                self.gamma,
                "a number in (0, 1]",
            ));
        }
        if self.every == 0 {
            return Err(Error::invalid(
                "optimizer.schedule.every",
                self.every,
                "an integer >= 1",
            ));
        }
        Ok(Schedule::Step {
            eta: lr,
            gamma: self.gamma,
            every: self.every,
        })
    }
}

/// `kind = "cosine"`: the rate decays from `lr` to `eta_min` along half a cosine over `steps`
/// steps, then stays at `eta_min`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CosineScheduleConfig {
    /// The final rate per step, in `[0, lr]` (default 0).
    #[serde(default)]
    pub eta_min: f64,
    /// Length of the decay in steps, `>= 1` (default: the run's `steps`, resolved when the
    /// config is built, so it follows a `--steps` override and is not written out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
}

impl KindTable for CosineScheduleConfig {}

impl ScheduleKind for CosineScheduleConfig {
    fn build(&self, lr: f64, run_steps: u64) -> Result<Schedule> {
        let eta_min = self.eta_min;
        if !(eta_min.is_finite() && (0.0..=lr).contains(&eta_min)) {
            return Err(Error::invalid(
                "optimizer.schedule.eta_min",
                eta_min,
                format!("a number in [0, {lr}] (optimizer.lr)"),
            ));
        }
        let steps = self.steps.unwrap_or(run_steps);
        if steps == 0 {
            return Err(Error::invalid(
                "optimizer.schedule.steps",
                steps,
                "an integer >= 1",
            ));
        }
        Ok(Schedule::Cosine {
            eta: lr,
            eta_min,
            steps,
        })
    }
}

/// `kind = "warmup"`: the rate rises linearly, `lr * (t + 1) / warmup` at step `t`, then stays
/// at `lr` from step `warmup` on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WarmupScheduleConfig {
    /// Warm-up length in steps, `>= 1` (required).
    pub warmup: u64,
}

impl KindTable for WarmupScheduleConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[("warmup", "an integer >= 1")];
}

impl ScheduleKind for WarmupScheduleConfig {
    fn build(&self, lr: f64, _steps: u64) -> Result<Schedule> {
        if self.warmup == 0 {
            return Err(Error::invalid(
                "optimizer.schedule.warmup",
                self.warmup,
                "an integer >= 1",
            ));
        }
        Ok(Schedule::Warmup {
            eta: lr,
            warmup: self.warmup,
        })
    }
}
