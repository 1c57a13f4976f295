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

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::data::{self, Data, SyntheticSpec, Teacher};
use crate::error::{Error, Result};
use crate::model::{
    derivatives, Activation, AnyModel, DiagonalNetwork, LinearTwoLayer, Model, ProductModel,
    Profile, TwoLayerNetwork, Valley,
};
use crate::noise::NoiseModel;
use crate::observe::{default_observables, Observable};
use crate::optim::{Adam, AnyOptimizer, HeavyBall, Nesterov, RmsProp, Schedule, Sgd};
use crate::simulate::EnsembleSpec;

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
    /// Free text shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Master seed of the run (data sets have their own seeds).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Optimizer steps per trajectory, `>= 1`.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Ensemble size `N >= 1`.
    #[serde(default = "default_trajectories")]
    pub trajectories: usize,
    /// Record observables every `K` steps, `1 <= K <= steps`.
    #[serde(default = "default_record_every")]
    pub record_every: u64,
    /// A trajectory whose loss exceeds this has diverged (`> 0`).
    #[serde(default = "default_max_loss")]
    pub max_loss: f64,
    /// Observables to record (default: all the model provides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observables: Option<Vec<String>>,
    /// Write every trajectory's records to `trajectories.csv` (else only summaries).
    #[serde(default = "default_true")]
    pub save_trajectories: bool,
    /// The model.
    pub model: ModelConfig,
    /// The data (for product, diagonal, two_layer, linear2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// The gradient noise.
    pub noise: NoiseConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Where trajectories start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartConfig>,
}

/// `[model]`: `kind` is one of `valley`, `valley_nd`, `product`, `diagonal`, `two_layer`,
/// `linear2`; the other fields belong to some kinds only (see the README).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model kind.
    pub kind: String,
    /// valley, valley_nd: flatness profile `quadratic` (`1 + c |y|^2`) or `sin2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// valley, valley_nd: profile coefficient `c >= 0` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<f64>,
    /// valley: rotation of the plane in degrees (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub angle: Option<f64>,
    /// valley, valley_nd: tangent coordinate of the default start (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_y: Option<f64>,
    /// valley_nd: number of normal directions `p >= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_dim: Option<usize>,
    /// valley_nd: number of tangent directions `q >= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tangent_dim: Option<usize>,
    /// valley_nd: normal curvature scales (length `normal_dim`, positive; default evenly
    /// spaced in `[1, 2]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambdas: Option<Vec<f64>>,
    /// valley_nd: seed of a random rotation (none: axis-aligned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_seed: Option<u64>,
    /// product: depth `D >= 2` (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// product without `[data]`: the target of the single sample `x = 1` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// diagonal: floor added to `u^2`, `v^2` in the default start (default 0.01, `> 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// two_layer, linear2: hidden width `>= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// two_layer: `tanh`, `gelu` or `softplus` (default `tanh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<String>,
    /// two_layer, linear2: scale of the random default start (default 1 / 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_scale: Option<f64>,
    /// two_layer, linear2: seed of the random default start (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_seed: Option<u64>,
}

/// `[data]`: `kind = "synthetic"` (Gaussian inputs and a teacher) or `kind = "csv"`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `synthetic` or `csv`.
    pub kind: String,
    /// synthetic: training rows `n >= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// synthetic: held-out rows (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_test: Option<usize>,
    /// synthetic: input dimension `p >= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    /// synthetic: `sparse` (first `teacher_k` weights `teacher_value`), `linear` (weights
    /// `teacher_weights`) or `tanh_network` (random tanh network of width `teacher_width`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
    /// sparse teacher: number of non-zero weights (default 5, at most `dim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_k: Option<usize>,
    /// sparse teacher: value of the non-zero weights (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_value: Option<f64>,
    /// linear teacher: the weights (length `dim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_weights: Option<Vec<f64>>,
    /// tanh_network teacher: width (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_width: Option<usize>,
    /// tanh_network teacher: seed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_seed: Option<u64>,
    /// synthetic: standard deviation of fixed noise on the training labels (default 0; `> 0`
    /// makes labels a model may not fit, `L_min > 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_noise: Option<f64>,
    /// synthetic: seed of inputs and label noise (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// csv: path of the file (relative paths are relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// csv: name of the target column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// csv: fraction of rows (the last ones) held out, in `[0, 1)` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
}

/// `[noise]`: `kind` is `none`, `label`, `minibatch`, `isotropic`, `hessian` or `fixed`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    /// Noise kind.
    pub kind: String,
    /// label, isotropic, hessian: scale `sigma >= 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// label: batch size in `1..=n` (default: full batch); minibatch: batch size in `1..n`
    /// (required); isotropic, hessian: divisor `B >= 1` of the covariance (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// fixed: the covariance, `d` rows of `d` numbers, symmetric positive semi-definite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariance: Option<Vec<Vec<f64>>>,
}

/// `[optimizer]`: `kind` is `sgd`, `heavy_ball` (alias `momentum`), `nesterov`, `adam`,
/// `adamw` or `rmsprop`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Optimizer kind.
    pub kind: String,
    /// Learning rate per step, `> 0`.
    pub lr: f64,
    /// heavy_ball, nesterov: momentum in `[0, 1)` (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// adam, adamw: first-moment decay in `[0, 1)` (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    /// adam, adamw: second-moment decay in `[0, 1)` (default 0.999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    /// rmsprop: second-moment decay in `[0, 1)` (default 0.99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// adam, adamw, rmsprop: `eps > 0` (default 1e-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// heavy_ball, nesterov (coupled L2), adamw (decoupled): weight decay `>= 0` (default 0;
    /// adamw 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// rmsprop: divide `v` by `1 - alpha^t` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_correction: Option<bool>,
    /// Learning-rate schedule (default constant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
}

/// `[optimizer.schedule]`: `kind` is `constant`, `step`, `cosine` or `warmup`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Schedule kind.
    pub kind: String,
    /// step: factor per period, in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// step: period in steps, `>= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// cosine: final rate, in `[0, lr]` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_min: Option<f64>,
    /// cosine: decay length in steps (default: the run's `steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// warmup: warm-up length in steps, `>= 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u64>,
}

/// `[start]`: the common start of every trajectory.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StartConfig {
    /// The start point (length `d`; default: the model's default start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta: Option<Vec<f64>>,
    /// Per-trajectory Gaussian perturbation of the start, standard deviation `>= 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// Plain full-batch gradient-descent steps run once before the ensemble (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gd_steps: Option<u64>,
    /// Learning rate of those steps, `> 0` (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gd_lr: Option<f64>,
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
}

/// Reject a field that the section's kind does not use.
fn only_for<T>(value: &Option<T>, field: &str, kind: &str, kinds: &str) -> Result<()> {
    if value.is_some() {
        return Err(Error::invalid(
            field,
            format!("given for kind `{kind}`"),
            format!("this field belongs to kind {kinds} only; remove it"),
        ));
    }
    Ok(())
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
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| Error::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(d) = cfg.data.as_mut() {
            if let (Some(p), Some(dir)) = (d.path.as_mut(), path.parent()) {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(cfg)
    }

    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read config {}", path.display()), e))?;
        Self::from_toml(&text, path)
    }

    /// The configuration as TOML (the "resolved config" copied next to results).
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
        let optimizer = self.build_optimizer()?;
        let model = self.build_model()?;
        let noise = self.build_noise(&model)?;
        let spec = self.build_spec(&model)?;
        Ok(Built {
            model,
            noise,
            optimizer,
            spec,
        })
    }

    fn build_data(&self, kind: &str) -> Result<Data> {
        let Some(d) = &self.data else {
            return Err(Error::invalid(
                "data",
                "missing",
                format!(
                    "model kind `{kind}` needs a [data] section (kind = \"synthetic\" or \"csv\")"
                ),
            ));
        };
        match d.kind.as_str() {
            "synthetic" => {
                only_for(&d.target, "data.target", "synthetic", "`csv`")?;
                only_for(&d.path, "data.path", "synthetic", "`csv`")?;
                only_for(&d.test_fraction, "data.test_fraction", "synthetic", "`csv`")?;
                let n = at_least(
                    "data.n",
                    d.n.ok_or_else(|| Error::invalid("data.n", "missing", "an integer >= 1"))?,
                    1,
                )?;
                let p = at_least(
                    "data.dim",
                    d.dim
                        .ok_or_else(|| Error::invalid("data.dim", "missing", "an integer >= 1"))?,
                    1,
                )?;
                let teacher_kind = d.teacher.clone().unwrap_or_else(|| "sparse".into());
                let teacher = match teacher_kind.as_str() {
                    "sparse" => {
                        only_for(
                            &d.teacher_weights,
                            "data.teacher_weights",
                            "sparse",
                            "teacher `linear`",
                        )?;
                        only_for(
                            &d.teacher_width,
                            "data.teacher_width",
                            "sparse",
                            "teacher `tanh_network`",
                        )?;
                        only_for(
                            &d.teacher_seed,
                            "data.teacher_seed",
                            "sparse",
                            "teacher `tanh_network`",
                        )?;
                        let k = d.teacher_k.unwrap_or(5.min(p));
                        if k == 0 || k > p {
                            return Err(Error::invalid(
                                "data.teacher_k",
                                k,
                                format!("an integer in 1..={p} (data.dim)"),
                            ));
                        }
                        Teacher::Sparse {
                            k,
                            value: finite("data.teacher_value", d.teacher_value.unwrap_or(1.0))?,
                        }
                    }
                    "linear" => {
                        only_for(&d.teacher_k, "data.teacher_k", "linear", "teacher `sparse`")?;
                        only_for(
                            &d.teacher_value,
                            "data.teacher_value",
                            "linear",
                            "teacher `sparse`",
                        )?;
                        only_for(
                            &d.teacher_width,
                            "data.teacher_width",
                            "linear",
                            "teacher `tanh_network`",
                        )?;
                        only_for(
                            &d.teacher_seed,
                            "data.teacher_seed",
                            "linear",
                            "teacher `tanh_network`",
                        )?;
                        let w = d.teacher_weights.clone().ok_or_else(|| {
                            Error::invalid(
                                "data.teacher_weights",
                                "missing",
                                format!("{p} numbers (data.dim)"),
                            )
                        })?;
                        if w.len() != p || w.iter().any(|x| !x.is_finite()) {
                            return Err(Error::invalid(
                                "data.teacher_weights",
                                format!("{} numbers", w.len()),
                                format!("exactly {p} finite numbers (data.dim)"),
                            ));
                        }
                        Teacher::Linear(w)
                    }
                    "tanh_network" => {
                        only_for(
                            &d.teacher_k,
                            "data.teacher_k",
                            "tanh_network",
                            "teacher `sparse`",
                        )?;
                        only_for(
                            &d.teacher_value,
                            "data.teacher_value",
                            "tanh_network",
                            "teacher `sparse`",
                        )?;
                        only_for(
                            &d.teacher_weights,
                            "data.teacher_weights",
                            "tanh_network",
                            "teacher `linear`",
                        )?;
                        Teacher::TanhNetwork {
                            width: at_least("data.teacher_width", d.teacher_width.unwrap_or(4), 1)?,
                            seed: d.teacher_seed.unwrap_or(1),
                        }
                    }
                    other => {
                        return Err(Error::invalid(
                            "data.teacher",
                            other,
                            "one of `sparse`, `linear`, `tanh_network`",
                        ))
                    }
                };
                Ok(data::generate(&SyntheticSpec {
                    n,
                    n_test: d.n_test.unwrap_or(0),
                    p,
                    teacher,
                    label_noise: non_negative("data.label_noise", d.label_noise.unwrap_or(0.0))?,
                    seed: d.seed.unwrap_or(0),
                }))
            }
            "csv" => {
                for (v, f) in [
                    (d.n.is_some(), "data.n"),
                    (d.n_test.is_some(), "data.n_test"),
                    (d.dim.is_some(), "data.dim"),
                    (d.teacher.is_some(), "data.teacher"),
                    (d.teacher_k.is_some(), "data.teacher_k"),
                    (d.teacher_value.is_some(), "data.teacher_value"),
                    (d.teacher_weights.is_some(), "data.teacher_weights"),
                    (d.teacher_width.is_some(), "data.teacher_width"),
                    (d.teacher_seed.is_some(), "data.teacher_seed"),
                    (d.label_noise.is_some(), "data.label_noise"),
                    (d.seed.is_some(), "data.seed"),
                ] {
                    only_for(&v.then_some(()), f, "csv", "`synthetic`")?;
                }
                let path = d.path.clone().ok_or_else(|| {
                    Error::invalid("data.path", "missing", "the path of a CSV file")
                })?;
                let target = d.target.clone().ok_or_else(|| {
                    Error::invalid("data.target", "missing", "the name of the target column")
                })?;
                let frac = d.test_fraction.unwrap_or(0.0);
                unit_interval("data.test_fraction", frac)?;
                data::load_csv(&path, &target, frac)
            }
            other => Err(Error::invalid("data.kind", other, "`synthetic` or `csv`")),
        }
    }

    fn build_model(&self) -> Result<AnyModel> {
        let m = &self.model;
        let kind = m.kind.as_str();
        let valley_fields = "`valley`, `valley_nd`";
        let check_unused = |used: &[&str]| -> Result<()> {
            let fields: [(&str, bool, &str); 15] = [
                ("profile", m.profile.is_some(), valley_fields),
                ("c", m.c.is_some(), valley_fields),
                ("angle", m.angle.is_some(), "`valley`"),
                ("start_y", m.start_y.is_some(), valley_fields),
                ("normal_dim", m.normal_dim.is_some(), "`valley_nd`"),
                ("tangent_dim", m.tangent_dim.is_some(), "`valley_nd`"),
                ("lambdas", m.lambdas.is_some(), "`valley_nd`"),
                ("rotation_seed", m.rotation_seed.is_some(), "`valley_nd`"),
                ("depth", m.depth.is_some(), "`product`"),
                ("target", m.target.is_some(), "`product`"),
                ("floor", m.floor.is_some(), "`diagonal`"),
                ("width", m.width.is_some(), "`two_layer`, `linear2`"),
                ("activation", m.activation.is_some(), "`two_layer`"),
                (
                    "init_scale",
                    m.init_scale.is_some(),
                    "`two_layer`, `linear2`",
                ),
                ("init_seed", m.init_seed.is_some(), "`two_layer`, `linear2`"),
            ];
            for (name, given, kinds) in fields {
                if given && !used.contains(&name) {
                    only_for(&Some(()), &format!("model.{name}"), kind, kinds)?;
                }
            }
            Ok(())
        };
        let profile = || -> Result<Profile> {
            match m.profile.as_deref().unwrap_or("quadratic") {
                "quadratic" => Ok(Profile::Quadratic),
                "sin2" => Ok(Profile::Sin2),
                other => Err(Error::invalid(
                    "model.profile",
                    other,
                    "`quadratic` or `sin2`",
                )),
            }
        };
        let needs_no_data = |kind: &str| -> Result<()> {
            if self.data.is_some() {
                return Err(Error::invalid(
                    "data",
                    "given",
                    format!("model kind `{kind}` has no data; remove the [data] section"),
                ));
            }
            Ok(())
        };
        let model =
            match kind {
                "valley" => {
                    check_unused(&["profile", "c", "angle", "start_y"])?;
                    needs_no_data(kind)?;
                    let c = non_negative("model.c", m.c.unwrap_or(1.0))?;
                    let angle = finite("model.angle", m.angle.unwrap_or(0.0))?;
                    let mut v = Valley::planar(profile()?, c)
                        .with_start_y(finite("model.start_y", m.start_y.unwrap_or(2.0))?);
                    if angle != 0.0 {
                        v = v.with_angle(angle.to_radians());
                    }
                    AnyModel::Valley(v)
                }
                "valley_nd" => {
                    check_unused(&[
                        "profile",
                        "c",
                        "start_y",
                        "normal_dim",
                        "tangent_dim",
                        "lambdas",
                        "rotation_seed",
                    ])?;
                    needs_no_data(kind)?;
                    let q = at_least("model.tangent_dim", m.tangent_dim.unwrap_or(1), 1)?;
                    let lambdas = match (&m.lambdas, m.normal_dim) {
                        (Some(l), p) => {
                            if let Some(p) = p {
                                if p != l.len() {
                                    return Err(Error::invalid(
                                        "model.lambdas",
                                        format!("{} numbers", l.len()),
                                        format!("exactly model.normal_dim = {p} numbers"),
                                    ));
                                }
                            }
                            if l.is_empty() {
                                return Err(Error::invalid(
                                    "model.lambdas",
                                    "[]",
                                    "at least one positive number",
                                ));
                            }
                            for (i, &x) in l.iter().enumerate() {
                                positive(&format!("model.lambdas[{i}]"), x)?;
                            }
                            l.clone()
                        }
                        (None, p) => {
                            let p = at_least("model.normal_dim", p.unwrap_or(1), 1)?;
                            (0..p)
                                .map(|i| 1.0 + i as f64 / (p.max(2) - 1) as f64)
                                .collect()
                        }
                    };
                    let c = non_negative("model.c", m.c.unwrap_or(1.0))?;
                    let start_y = finite("model.start_y", m.start_y.unwrap_or(2.0))?;
                    let mut v = Valley::new(lambdas, q, profile()?, c).with_start_y(start_y);
                    if let Some(seed) = m.rotation_seed {
                        v = v.with_random_rotation(seed);
                    }
                    AnyModel::Valley(v)
                }
                "product" => {
                    check_unused(&["depth", "target"])?;
                    let depth = at_least("model.depth", m.depth.unwrap_or(2), 2)?;
                    if self.data.is_some() {
                        if m.target.is_some() {
                            only_for(
                                &Some(()),
                                "model.target",
                                "product with [data]",
                                "`product` without [data]",
                            )?;
                        }
                        let data = self.build_data(kind)?;
                        if data.train.p != 1 {
                            return Err(Error::invalid(
                                "data.dim",
                                data.train.p,
                                "1: the product model takes scalar inputs",
                            ));
                        }
                        let mut pm = ProductModel::new(depth, data.train, data.test);
                        if let Some(t) = data.teacher {
                            pm = pm.with_teacher(t);
                        }
                        AnyModel::Product(pm)
                    } else {
                        AnyModel::Product(ProductModel::scalar(
                            depth,
                            finite("model.target", m.target.unwrap_or(1.0))?,
                        ))
                    }
                }
                "diagonal" => {
                    check_unused(&["floor"])?;
                    let data = self.build_data(kind)?;
                    let floor = positive("model.floor", m.floor.unwrap_or(1e-2))?;
                    AnyModel::Diagonal(
                        DiagonalNetwork::new(data.train, data.test, data.teacher).with_floor(floor),
                    )
                }
                "two_layer" => {
                    check_unused(&["width", "activation", "init_scale", "init_seed"])?;
                    let data = self.build_data(kind)?;
                    let width = at_least("model.width", m.width.unwrap_or(32), 1)?;
                    let act = match m.activation.as_deref().unwrap_or("tanh") {
                        "tanh" => Activation::Tanh,
                        "gelu" => Activation::Gelu,
                        "softplus" => Activation::Softplus,
                        other => {
                            return Err(Error::invalid(
                                "model.activation",
                                other,
                                "`tanh`, `gelu` or `softplus`",
                            ))
                        }
                    };
                    let scale = positive("model.init_scale", m.init_scale.unwrap_or(1.0))?;
                    AnyModel::TwoLayer(
                        TwoLayerNetwork::new(width, act, data.train, data.test)
                            .with_init(m.init_seed.unwrap_or(0), scale),
                    )
                }
                "linear2" => {
                    check_unused(&["width", "init_scale", "init_seed"])?;
                    let data = self.build_data(kind)?;
                    let width = at_least("model.width", m.width.unwrap_or(8), 1)?;
                    let scale = positive("model.init_scale", m.init_scale.unwrap_or(0.1))?;
                    AnyModel::Linear2(
                        LinearTwoLayer::new(width, data.train, data.test, data.teacher)
                            .with_init(m.init_seed.unwrap_or(0), scale),
                    )
                }
                other => return Err(Error::invalid(
                    "model.kind",
                    other,
                    "one of `valley`, `valley_nd`, `product`, `diagonal`, `two_layer`, `linear2`",
                )),
            };
        Ok(model)
    }

    fn build_noise(&self, model: &AnyModel) -> Result<NoiseModel> {
        let c = &self.noise;
        let kind = c.kind.as_str();
        let n = model.n_samples();
        let d = model.dim();
        let sigma = || non_negative("noise.sigma", c.sigma.unwrap_or(1.0));
        let no_cov = || only_for(&c.covariance, "noise.covariance", kind, "`fixed`");
        Ok(match kind {
            "none" => {
                only_for(
                    &c.sigma,
                    "noise.sigma",
                    kind,
                    "`label`, `isotropic`, `hessian`",
                )?;
                only_for(
                    &c.batch,
                    "noise.batch",
                    kind,
                    "`label`, `minibatch`, `isotropic`, `hessian`",
                )?;
                no_cov()?;
                NoiseModel::None
            }
            "label" => {
                no_cov()?;
                if let Some(b) = c.batch {
                    if b == 0 || b > n {
                        return Err(Error::invalid(
                            "noise.batch",
                            b,
                            format!("an integer in 1..={n} (the number of training samples n)"),
                        ));
                    }
                }
                NoiseModel::Label {
                    sigma: sigma()?,
                    batch: c.batch.filter(|&b| b < n),
                }
            }
            "minibatch" => {
                only_for(
                    &c.sigma,
                    "noise.sigma",
                    kind,
                    "`label`, `isotropic`, `hessian`",
                )?;
                no_cov()?;
                let b = c.batch.ok_or_else(|| {
                    Error::invalid(
                        "noise.batch",
                        "missing",
                        format!("an integer in 1..{n} (n = {n})"),
                    )
                })?;
                if b == 0 || b >= n {
                    return Err(Error::invalid(
                        "noise.batch",
                        b,
                        format!("an integer in 1..{n}: a batch smaller than the n = {n} training samples"),
                    ));
                }
                NoiseModel::Label {
                    sigma: 0.0,
                    batch: Some(b),
                }
            }
            "isotropic" | "hessian" => {
                no_cov()?;
                let b = at_least("noise.batch", c.batch.unwrap_or(1), 1)?;
                if kind == "isotropic" {
                    NoiseModel::Isotropic {
                        sigma: sigma()?,
                        batch: b,
                    }
                } else {
                    NoiseModel::Hessian {
                        sigma: sigma()?,
                        batch: b,
                    }
                }
            }
            "fixed" => {
                only_for(
                    &c.sigma,
                    "noise.sigma",
                    kind,
                    "`label`, `isotropic`, `hessian`",
                )?;
                only_for(
                    &c.batch,
                    "noise.batch",
                    kind,
                    "`label`, `minibatch`, `isotropic`, `hessian`",
                )?;
                let rows = c.covariance.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "noise.covariance",
                        "missing",
                        format!("{d} rows of {d} numbers"),
                    )
                })?;
                if rows.len() != d || rows.iter().any(|r| r.len() != d) {
                    return Err(Error::invalid(
                        "noise.covariance",
                        format!(
                            "{} rows of lengths {:?}",
                            rows.len(),
                            rows.iter().map(Vec::len).collect::<Vec<_>>()
                        ),
                        format!("{d} rows of {d} numbers (the model has d = {d} parameters)"),
                    ));
                }
                let m = DMatrix::from_fn(d, d, |i, j| rows[i][j]);
                if m.iter().any(|x| !x.is_finite()) {
                    return Err(Error::invalid(
                        "noise.covariance",
                        "a non-finite entry",
                        "finite numbers",
                    ));
                }
                let asym = (&m - m.transpose()).abs().max();
                if asym > 1e-12 * (1.0 + m.abs().max()) {
                    return Err(Error::invalid(
                        "noise.covariance",
                        format!("asymmetric by {asym:.3e}"),
                        "a symmetric matrix",
                    ));
                }
                let min_eig = m.clone().symmetric_eigen().eigenvalues.min();
                if min_eig < -1e-12 * (1.0 + m.abs().max()) {
                    return Err(Error::invalid(
                        "noise.covariance",
                        format!("smallest eigenvalue {min_eig:.3e}"),
                        "a positive semi-definite matrix",
                    ));
                }
                NoiseModel::fixed(m)
            }
            other => {
                return Err(Error::invalid(
                    "noise.kind",
                    other,
                    "one of `none`, `label`, `minibatch`, `isotropic`, `hessian`, `fixed`",
                ))
            }
        })
    }

    fn build_schedule(&self, lr: f64) -> Result<Schedule> {
        let Some(s) = &self.optimizer.schedule else {
            return Ok(Schedule::Constant(lr));
        };
        let f = |name: &str| format!("optimizer.schedule.{name}");
        let k = s.kind.as_str();
        let only = |given: bool, name: &str, kinds: &str| {
            only_for(&given.then_some(()), &f(name), k, kinds)
        };
        Ok(match k {
            "constant" => {
                only(s.gamma.is_some(), "gamma", "`step`")?;
                only(s.every.is_some(), "every", "`step`")?;
                only(s.eta_min.is_some(), "eta_min", "`cosine`")?;
                only(s.steps.is_some(), "steps", "`cosine`")?;
                only(s.warmup.is_some(), "warmup", "`warmup`")?;
                Schedule::Constant(lr)
            }
            "step" => {
                only(s.eta_min.is_some(), "eta_min", "`cosine`")?;
                only(s.steps.is_some(), "steps", "`cosine`")?;
                only(s.warmup.is_some(), "warmup", "`warmup`")?;
                let gamma = s
                    .gamma
                    .ok_or_else(|| Error::invalid(f("gamma"), "missing", "a number in (0, 1]"))?;
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(Error::invalid(f("gamma"), gamma, "a number in (0, 1]"));
                }
                let every = s
                    .every
                    .ok_or_else(|| Error::invalid(f("every"), "missing", "an integer >= 1"))?;
                if every == 0 {
                    return Err(Error::invalid(f("every"), every, "an integer >= 1"));
                }
                Schedule::Step {
                    eta: lr,
                    gamma,
                    every,
                }
            }
            "cosine" => {
                only(s.gamma.is_some(), "gamma", "`step`")?;
                only(s.every.is_some(), "every", "`step`")?;
                only(s.warmup.is_some(), "warmup", "`warmup`")?;
                let eta_min = s.eta_min.unwrap_or(0.0);
                if !(eta_min.is_finite() && (0.0..=lr).contains(&eta_min)) {
                    return Err(Error::invalid(
                        f("eta_min"),
                        eta_min,
                        format!("a number in [0, {lr}] (optimizer.lr)"),
                    ));
                }
                let steps = s.steps.unwrap_or(self.steps);
                if steps == 0 {
                    return Err(Error::invalid(f("steps"), steps, "an integer >= 1"));
                }
                Schedule::Cosine {
                    eta: lr,
                    eta_min,
                    steps,
                }
            }
            "warmup" => {
                only(s.gamma.is_some(), "gamma", "`step`")?;
                only(s.every.is_some(), "every", "`step`")?;
                only(s.eta_min.is_some(), "eta_min", "`cosine`")?;
                only(s.steps.is_some(), "steps", "`cosine`")?;
                let warmup = s
                    .warmup
                    .ok_or_else(|| Error::invalid(f("warmup"), "missing", "an integer >= 1"))?;
                if warmup == 0 {
                    return Err(Error::invalid(f("warmup"), warmup, "an integer >= 1"));
                }
                Schedule::Warmup { eta: lr, warmup }
            }
            other => {
                return Err(Error::invalid(
                    f("kind"),
                    other,
                    "one of `constant`, `step`, `cosine`, `warmup`",
                ))
            }
        })
    }

    fn build_optimizer(&self) -> Result<AnyOptimizer> {
        let o = &self.optimizer;
        let kind = o.kind.as_str();
        const KINDS: [&str; 7] = [
            "sgd",
            "heavy_ball",
            "momentum",
            "nesterov",
            "adam",
            "adamw",
            "rmsprop",
        ];
        if !KINDS.contains(&kind) {
            return Err(Error::invalid(
                "optimizer.kind",
                kind,
                "one of `sgd`, `heavy_ball` (or `momentum`), `nesterov`, `adam`, `adamw`, `rmsprop`",
            ));
        }
        let lr = positive("optimizer.lr", o.lr)?;
        let lr = self.build_schedule(lr)?;
        let fields: [(&str, bool, &[&str]); 7] = [
            (
                "beta",
                o.beta.is_some(),
                &["heavy_ball", "momentum", "nesterov"],
            ),
            ("beta1", o.beta1.is_some(), &["adam", "adamw"]),
            ("beta2", o.beta2.is_some(), &["adam", "adamw"]),
            ("alpha", o.alpha.is_some(), &["rmsprop"]),
            ("eps", o.eps.is_some(), &["adam", "adamw", "rmsprop"]),
            (
                "weight_decay",
                o.weight_decay.is_some(),
                &["heavy_ball", "momentum", "nesterov", "adamw"],
            ),
            ("bias_correction", o.bias_correction.is_some(), &["rmsprop"]),
        ];
        for (name, given, kinds) in fields {
            if given && !kinds.contains(&kind) {
                let list = kinds
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                only_for(&Some(()), &format!("optimizer.{name}"), kind, &list)?;
            }
        }
        let beta = || unit_interval("optimizer.beta", o.beta.unwrap_or(0.9));
        let wd = |default: f64| {
            non_negative("optimizer.weight_decay", o.weight_decay.unwrap_or(default))
        };
        let eps = || positive("optimizer.eps", o.eps.unwrap_or(1e-8));
        Ok(match kind {
            "sgd" => AnyOptimizer::Sgd(Sgd { lr }),
            "heavy_ball" | "momentum" => AnyOptimizer::HeavyBall(HeavyBall {
                lr,
                beta: beta()?,
                weight_decay: wd(0.0)?,
            }),
            "nesterov" => AnyOptimizer::Nesterov(Nesterov {
                lr,
                beta: beta()?,
                weight_decay: wd(0.0)?,
            }),
            "adam" | "adamw" => AnyOptimizer::Adam(Adam {
                lr,
                beta1: unit_interval("optimizer.beta1", o.beta1.unwrap_or(0.9))?,
                beta2: unit_interval("optimizer.beta2", o.beta2.unwrap_or(0.999))?,
                eps: eps()?,
                weight_decay: if kind == "adamw" { wd(0.01)? } else { 0.0 },
            }),
            "rmsprop" => AnyOptimizer::RmsProp(RmsProp {
                lr,
                alpha: unit_interval("optimizer.alpha", o.alpha.unwrap_or(0.99))?,
                eps: eps()?,
                bias_correction: o.bias_correction.unwrap_or(false),
            }),
            _ => unreachable!("kind checked above"),
        })
    }

    fn build_spec(&self, model: &AnyModel) -> Result<EnsembleSpec> {
        let d = model.dim();
        let st = self.start.clone().unwrap_or_default();
        let mut start = match &st.theta {
            Some(t) => {
                if t.len() != d {
                    return Err(Error::invalid(
                        "start.theta",
                        format!("{} numbers", t.len()),
                        format!("exactly {d} numbers (the model has d = {d} parameters)"),
                    ));
                }
                for (i, &x) in t.iter().enumerate() {
                    finite(&format!("start.theta[{i}]"), x)?;
                }
                t.clone()
            }
            None => model.default_start(),
        };
        let start_noise = non_negative("start.noise", st.noise.unwrap_or(0.0))?;
        let gd_lr = positive("start.gd_lr", st.gd_lr.unwrap_or(0.05))?;
        let gd_steps = st.gd_steps.unwrap_or(0);
        if gd_steps > 0 {
            start = crate::with_model!(model, m => pretrain(m, start, gd_steps, gd_lr))?;
        }
        let observables = match &self.observables {
            None => crate::with_model!(model, m => default_observables(m)),
            Some(names) => {
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
                out
            }
        };
        Ok(EnsembleSpec {
            steps: self.steps,
            record_every: self.record_every,
            trajectories: self.trajectories,
            seed: self.seed,
            max_loss: self.max_loss,
            start,
            start_noise,
            start_factor: None,
            observables,
            progress: None,
            observe_at: None,
        })
    }
}

/// Plain full-batch gradient descent from `theta` for `steps` steps at rate `lr`: brings a
/// start close to the manifold before the stochastic run. Fails if it diverges.
pub fn pretrain<M: Model>(model: &M, mut theta: Vec<f64>, steps: u64, lr: f64) -> Result<Vec<f64>> {
    let mut grad = vec![0.0; model.dim()];
    for k in 0..steps {
        let loss = derivatives::gradient(model, &theta, &mut grad);
        if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(Error::invalid(
                "start.gd_lr",
                lr,
                format!("a smaller rate: pre-training gradient descent diverged at step {k} (loss {loss})"),
            ));
        }
        for (x, g) in theta.iter_mut().zip(&grad) {
            *x -= lr * g;
        }
    }
    Ok(theta)
}

#[cfg(test)]
mod tests;
