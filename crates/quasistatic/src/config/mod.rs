//! The TOML configuration of a run, its validation, and the objects it builds.
//!
//! A configuration has top-level run settings and four sections, `[model]`, `[data]` (for
//! models fitted to data), `[noise]`, `[optimizer]`, and an optional `[start]`. Every section
//! names its `kind`; fields that do not belong to that kind, unknown fields and invalid values
//! are rejected with the field's dotted name, the value and what is allowed. The README lists
//! every field; `examples/` has a config per model.
//!
//! ```toml
//! seed = 1
//! steps = 20000
//! trajectories = 256
//! record_every = 200
//!
//! [model]
//! kind = "valley"
//! profile = "quadratic"
//!
//! [noise]
//! kind = "label"
//! sigma = 1.0
//!
//! [optimizer]
//! kind = "sgd"
//! lr = 0.05
//! ```
//!
//! Each section is a typed enum with one struct per kind ([`ModelConfig`], [`DataConfig`],
//! [`NoiseConfig`], [`OptimizerConfig`], [`ScheduleConfig`]); each struct carries its defaults,
//! checks its values and builds its library object through its section's trait
//! ([`ModelKind`], [`DataKind`], [`NoiseKind`], [`OptimizerKind`], [`ScheduleKind`]). Adding a
//! kind means writing that struct (in the file of its family) and one line in its section's
//! `kinds!` list (see the `registry` module). [`Config::to_toml`] writes every default out,
//! except the few that depend on the rest of the run (documented as such on their fields).

mod data;
mod model;
mod noise;
mod optimizer;
mod registry;
mod schedule;
mod start;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::AnyModel;
use crate::noise::NoiseModel;
use crate::observe::{default_observables, Observable};
use crate::optim::AnyOptimizer;
use crate::simulate::EnsembleSpec;

pub use data::{
    CsvDataConfig, DataConfig, DataKind, NpyDataConfig, NpzDataConfig, SyntheticDataConfig,
    TeacherConfig,
};
pub use model::{
    ActivationConfig, DeepLinearConfig, DiagonalConfig, ExpressionConfig, Linear2Config,
    MatrixSensingConfig, MlpActivationConfig, MlpConfig, ModelConfig, ModelKind, Named,
    OutputConfig, ParamsConfig, ProductConfig, ProfileConfig, StartValue, StructureConfig,
    TwoLayerConfig, ValleyConfig, ValleyNdConfig,
};
pub use noise::{
    FixedNoiseConfig, HessianNoiseConfig, IsotropicNoiseConfig, LabelNoiseConfig,
    MinibatchNoiseConfig, NoNoiseConfig, NoiseConfig, NoiseKind,
};
pub use optimizer::{
    AdamConfig, AdamWConfig, HeavyBallConfig, LionConfig, NesterovConfig, OptimizerConfig,
    OptimizerKind, RmsPropConfig, SgdConfig,
};
pub use schedule::{
    ConstantScheduleConfig, CosineScheduleConfig, ScheduleConfig, ScheduleKind, StepScheduleConfig,
    WarmupScheduleConfig,
};
pub use start::{pretrain, StartConfig};

fn default_seed() -> u64 {
    0
}
fn default_steps() -> u64 {
    20_000
}
fn default_trajectories() -> usize {
    256
}
fn default_record_every() -> u64 {
    200
}
fn default_max_loss() -> f64 {
    1e8
}
fn default_true() -> bool {
    true
}

/// A whole run configuration (the TOML file).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Free text shown in reports (default: generated from the model, optimizer and noise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Master seed of the run (data sets have their own seeds). Default 0.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Optimizer steps per trajectory, `>= 1`. Default 20000.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Ensemble size `N >= 1`. Default 256.
    #[serde(default = "default_trajectories")]
    pub trajectories: usize,
    /// Record observables every `K` steps, `1 <= K <= steps`. Default 200.
    #[serde(default = "default_record_every")]
    pub record_every: u64,
    /// A trajectory whose loss exceeds this has diverged (`> 0`). Default `1e8`.
    #[serde(default = "default_max_loss")]
    pub max_loss: f64,
    /// Observables to record (default: all the model provides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observables: Option<Vec<String>>,
    /// Write every trajectory's records to `trajectories.csv` (else only summaries). Default
    /// true.
    #[serde(default = "default_true")]
    pub save_trajectories: bool,
    /// The model.
    pub model: ModelConfig,
    /// The data (for product, diagonal, two_layer, linear2, mlp, deep_linear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// The gradient noise.
    pub noise: NoiseConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Where trajectories start.
    #[serde(default)]
    pub start: StartConfig,
    /// Settings of the derivation (`derive`, and the derived side of `compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive: Option<DeriveConfig>,
}

/// `[derive]`: settings of the derivation. Adam's preconditioner `v` is the fixed point of
/// `v = diag(Sigma~ + H S H)` (docs/theory.md section 5), found by iteration; where it
/// contracts slowly (features that shrink under Adam) allow more iterations at a looser
/// tolerance.
///
/// ```toml
/// [derive]
/// adam_max_iterations = 5000   # default 200
/// adam_tolerance = 1e-7        # relative change of sqrt(v) + eps; default 1e-10
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeriveConfig {
    /// Iterations of Adam's preconditioner fixed point, `>= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_max_iterations: Option<usize>,
    /// Relative tolerance of that fixed point, in `(0, 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_tolerance: Option<f64>,
}

impl DeriveConfig {
    /// The Adam options these settings give (defaults for what is not set).
    pub fn adam_options(&self) -> Result<crate::derive::AdamOptions> {
        let mut o = crate::derive::AdamOptions::default();
        if let Some(n) = self.adam_max_iterations {
            o.max_iterations = at_least("derive.adam_max_iterations", n, 1)?;
        }
        if let Some(t) = self.adam_tolerance {
            if !(t > 0.0 && t < 1.0) {
                return Err(Error::invalid(
                    "derive.adam_tolerance",
                    t,
                    "a number in (0, 1)",
                ));
            }
            o.tolerance = t;
        }
        Ok(o)
    }
}

impl Config {
    /// A configuration of `model`, `noise` and `optimizer`, without `[data]`, every run
    /// setting and the start at their defaults (as a file with only those three sections).
    /// Set the other fields directly; [`Config::build`] checks them all, as for a parsed file.
    pub fn new(
        model: impl Into<ModelConfig>,
        noise: impl Into<NoiseConfig>,
        optimizer: impl Into<OptimizerConfig>,
    ) -> Self {
        Config {
            title: None,
            seed: default_seed(),
            steps: default_steps(),
            trajectories: default_trajectories(),
            record_every: default_record_every(),
            max_loss: default_max_loss(),
            observables: None,
            save_trajectories: default_true(),
            model: model.into(),
            data: None,
            noise: noise.into(),
            optimizer: optimizer.into(),
            start: StartConfig::default(),
            derive: None,
        }
    }
}

/// Everything a configuration builds.
#[derive(Clone, Debug)]
pub struct Built {
    /// The model (with its data).
    pub model: AnyModel,
    /// The noise.
    pub noise: NoiseModel,
    /// The optimizer.
    pub optimizer: AnyOptimizer,
    /// The ensemble settings (start already resolved, after any GD pre-training).
    pub spec: EnsembleSpec,
    /// Adam options of the derivation (`[derive]`; `None`: the defaults).
    pub adam_options: Option<crate::derive::AdamOptions>,
}

/// The sections with a `kind`, outer before inner.
const SECTIONS: [&registry::Section; 5] = [
    &ModelConfig::SECTION,
    &DataConfig::SECTION,
    &NoiseConfig::SECTION,
    &OptimizerConfig::SECTION,
    &ScheduleConfig::SECTION,
];

/// The error for a field given for a kind that does not use it; `kinds` lists those that do.
fn not_for_kind(field: &str, kind: &str, kinds: &str) -> Error {
    Error::invalid(
        field,
        format!("given for kind `{kind}`"),
        format!("this field belongs to kind {kinds} only; remove it"),
    )
}

/// Reject a field that the kind does not use.
fn only_for<T>(value: &Option<T>, field: &str, kind: &str, kinds: &str) -> Result<()> {
    match value {
        Some(_) => Err(not_for_kind(field, kind, kinds)),
        None => Ok(()),
    }
}

fn finite(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(field, v, "a finite number"))
    }
}

fn positive(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(field, v, "a finite number > 0"))
    }
}

fn non_negative(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(field, v, "a finite number >= 0"))
    }
}

fn unit_interval(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(field, v, "a number in [0, 1)"))
    }
}

fn at_least(field: &str, v: usize, min: usize) -> Result<usize> {
    if v >= min {
        Ok(v)
    } else {
        Err(Error::invalid(field, v, format!("an integer >= {min}")))
    }
}

impl Config {
    /// Parse a configuration from TOML text. `path` is used in messages and to resolve
    /// relative data paths.
    ///
    /// An unknown or missing `kind`, a field of another kind and a missing required field
    /// are [`Error::InvalidConfig`] naming the dotted field; other parse failures (syntax,
    /// unknown fields, wrong types) are [`Error::ConfigParse`] pointing at the line.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: Config = match toml::from_str(text) {
            Ok(cfg) => cfg,
            Err(e) => {
                if let Some(invalid) = registry::explain(text, &SECTIONS) {
                    return Err(invalid);
                }
                let e = registry::locate(text, &SECTIONS).unwrap_or(e);
                return Err(Error::ConfigParse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        if let (Some(data), Some(dir)) = (cfg.data.as_mut(), path.parent()) {
            data.get_mut().resolve_paths(dir);
        }
        Ok(cfg)
    }

    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read config {}", path.display()), e))?;
        Self::from_toml(&text, path)
    }

    /// Override the run settings that are given (command-line `--seed`, `--steps`,
    /// `--trajectories`, `--record-every`, and the Python keywords of the same names); the
    /// result is checked by [`Config::build`] like a parsed file.
    pub fn override_run(
        &mut self,
        seed: Option<u64>,
        steps: Option<u64>,
        trajectories: Option<usize>,
        record_every: Option<u64>,
    ) {
        if let Some(s) = seed {
            self.seed = s;
        }
        if let Some(s) = steps {
            self.steps = s;
        }
        if let Some(n) = trajectories {
            self.trajectories = n;
        }
        if let Some(k) = record_every {
            self.record_every = k;
        }
    }

    /// The configuration as TOML (the "resolved config" copied next to results), every
    /// default written out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Check the run settings that do not depend on the model.
    fn validate_run(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid("steps", self.steps, "an integer >= 1"));
        }
        at_least("trajectories", self.trajectories, 1)?;
        if self.record_every == 0 || self.record_every > self.steps {
            return Err(Error::invalid(
                "record_every",
                self.record_every,
                format!("an integer in 1..={} (steps)", self.steps),
            ));
        }
        positive("max_loss", self.max_loss)?;
        Ok(())
    }

    /// Validate everything and build the model, noise, optimizer and ensemble settings.
    pub fn build(&self) -> Result<Built> {
        self.validate_run()?;
        let optimizer = self.optimizer.build(self.steps)?;
        let model = self.model.build(self.data.as_ref())?;
        let noise = self.noise.build(&model)?;
        let spec = self.build_spec(&model)?;
        Ok(Built {
            model,
            noise,
            optimizer,
            spec,
            adam_options: self.derive.as_ref().map(|d| d.adam_options()).transpose()?,
        })
    }

    fn build_spec(&self, model: &AnyModel) -> Result<EnsembleSpec> {
        let start = self.start.build(model)?;
        let observables = self.build_observables(model)?;
        Ok(EnsembleSpec {
            steps: self.steps,
            record_every: self.record_every,
            trajectories: self.trajectories,
            first_trajectory: 0,
            seed: self.seed,
            max_loss: self.max_loss,
            start: start.theta,
            start_noise: start.noise,
            start_factor: None,
            observables,
            progress: None,
            observe_at: None,
        })
    }

    fn build_observables(&self, model: &AnyModel) -> Result<Vec<Observable>> {
        let Some(names) = &self.observables else {
            return Ok(crate::with_model!(model, m => default_observables(m)));
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let field = format!("observables[{i}]");
            let obs = Observable::parse(name).ok_or_else(|| {
                Error::invalid(&field, name, format!("one of {}", Observable::NAMES))
            })?;
            if !crate::with_model!(model, m => obs.available(m)) {
                return Err(Error::invalid(
                    &field,
                    name,
                    format!("an observable that model `{}` provides", model.name()),
                ));
            }
            out.push(obs);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
