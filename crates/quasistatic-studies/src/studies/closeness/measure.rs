//! The closeness study's measurements: per case (model x noise setting x optimizer) an eta
//! sweep of true against derived dynamics, without writing files.
//!
//! The cases are built as typed [`Config`]s; each learning rate of the sweep is
//! [`scaled_config`] of the case (horizon fixed in slow time) and runs
//! [`paired_runs`] on the observables [`compared`] keeps, exactly as
//! [`crate::validate::eta_sweep`] does, but returning the comparisons and the ensembles
//! instead of writing them (the render writes the same files).

use std::fmt;

use serde::Serialize;

use super::super::Scale;
use crate::compare::log_log_slope;
use crate::validate::{measure_comparison, scaled_config, Comparison, Sweep};
use quasistatic::config::{
    AdamConfig, Built, Config, DataConfig, DiagonalConfig, HeavyBallConfig, IsotropicNoiseConfig,
    LabelNoiseConfig, MinibatchNoiseConfig, ModelConfig, NoiseConfig, OptimizerConfig,
    ProductConfig, SgdConfig, StartConfig, SyntheticDataConfig, TeacherConfig, ValleyConfig,
    ValleyNdConfig,
};
use quasistatic::error::Result;
use quasistatic::model::Model;
use quasistatic::simulate::EnsembleResult;

/// A model x noise setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// The planar valley (rotated 30 degrees), label noise.
    ValleyLabel,
    /// The valley with 16 normal directions, isotropic noise.
    ValleyIsotropic,
    /// The depth-2 scalar product model, label noise.
    ProductLabel,
    /// The product model, isotropic noise.
    ProductIsotropic,
    /// The product model fitted to noisy labels, mini-batch noise.
    ProductMinibatch,
    /// The diagonal network on a sparse regression, label noise.
    DiagonalLabel,
    /// The diagonal network, isotropic noise.
    DiagonalIsotropic,
    /// The diagonal network fitted to noisy labels, mini-batch noise.
    DiagonalMinibatch,
}

/// The optimizers of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Plain SGD.
    Sgd,
    /// Heavy ball, beta 0.9.
    HeavyBall,
    /// Adam, beta1 0.9, beta2 0.99 (scaled with eta^2 in the sweep).
    Adam,
}

impl OptimizerKind {
    /// Every optimizer, in study order.
    pub const ALL: [OptimizerKind; 3] = [
        OptimizerKind::Sgd,
        OptimizerKind::HeavyBall,
        OptimizerKind::Adam,
    ];

    /// Name in case names and ids.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::HeavyBall => "heavy_ball",
            OptimizerKind::Adam => "adam",
        }
    }

    /// The `[optimizer]` section at learning rate `lr`.
    fn config(self, lr: f64) -> OptimizerConfig {
        match self {
            OptimizerKind::Sgd => SgdConfig::new(lr).into(),
            OptimizerKind::HeavyBall => HeavyBallConfig {
                beta: 0.9,
                ..HeavyBallConfig::new(lr)
            }
            .into(),
            OptimizerKind::Adam => AdamConfig {
                beta1: 0.9,
                beta2: 0.99,
                ..AdamConfig::new(lr)
            }
            .into(),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a setting runs.
struct SettingSpec {
    /// `[model]`.
    model: ModelConfig,
    /// `[data]`, for the models fitted to data.
    data: Option<DataConfig>,
    /// `[noise]`.
    noise: NoiseConfig,
    /// `[start]`.
    start: StartConfig,
    /// Base learning rates for SGD, heavy ball (beta 0.9) and Adam.
    lrs: [f64; 3],
    /// Base steps (at the base learning rate).
    steps: u64,
    /// Ensemble-size multiplier (isotropic noise diffuses along the manifold about as far as it
    /// drifts, so its mean needs more trajectories to be resolved).
    more: usize,
}

impl Setting {
    /// Every setting, in study order.
    pub const ALL: [Setting; 8] = [
        Setting::ValleyLabel,
        Setting::ValleyIsotropic,
        Setting::ProductLabel,
        Setting::ProductIsotropic,
        Setting::ProductMinibatch,
        Setting::DiagonalLabel,
        Setting::DiagonalIsotropic,
        Setting::DiagonalMinibatch,
    ];

    /// Name in case names and ids.
    pub fn name(self) -> &'static str {
        match self {
            Setting::ValleyLabel => "valley_label",
            Setting::ValleyIsotropic => "valley_isotropic",
            Setting::ProductLabel => "product_label",
            Setting::ProductIsotropic => "product_isotropic",
            Setting::ProductMinibatch => "product_minibatch",
            Setting::DiagonalLabel => "diagonal_label",
            Setting::DiagonalIsotropic => "diagonal_isotropic",
            Setting::DiagonalMinibatch => "diagonal_minibatch",
        }
    }

    fn spec(self) -> SettingSpec {
        /// The product model's start `(3, 1/3)`, on its manifold `theta_1 theta_2 = 1`.
        fn product_start() -> StartConfig {
            StartConfig {
                theta: Some(vec![3.0, 0.3333333333333333]),
                ..StartConfig::default()
            }
        }
        /// The product model fitted to 32 noisy labels of the teacher `y = x`.
        fn product_data() -> DataConfig {
            SyntheticDataConfig {
                n: 32,
                n_test: 0,
                dim: 1,
                teacher: TeacherConfig::Linear { weights: vec![1.0] },
                label_noise: 0.5,
                seed: 3,
            }
            .into()
        }
        /// The diagonal network's sparse regression (teacher `k = 2`, 200 test rows).
        fn diagonal_data(n: usize, dim: usize, label_noise: f64, seed: u64) -> DataConfig {
            SyntheticDataConfig {
                n,
                n_test: 200,
                dim,
                teacher: TeacherConfig::Sparse { k: 2, value: 1.0 },
                label_noise,
                seed,
            }
            .into()
        }
        let diagonal = || ModelConfig::from(DiagonalConfig { floor: 0.05 });
        let label = |sigma| NoiseConfig::from(LabelNoiseConfig { sigma, batch: None });
        let isotropic = |sigma| {
            NoiseConfig::from(IsotropicNoiseConfig {
                sigma,
                ..IsotropicNoiseConfig::default()
            })
        };
        let minibatch = || NoiseConfig::from(MinibatchNoiseConfig { batch: 2 });
        match self {
            Setting::ValleyLabel => SettingSpec {
                model: ValleyConfig {
                    angle: 30.0,
                    start_y: 2.0,
                    ..ValleyConfig::default()
                }
                .into(),
                data: None,
                noise: label(1.0),
                start: StartConfig::default(),
                lrs: [0.05, 0.005, 0.01],
                steps: 4000,
                more: 1,
            },
            Setting::ValleyIsotropic => SettingSpec {
                model: ValleyNdConfig {
                    normal_dim: Some(16),
                    tangent_dim: 1,
                    start_y: 2.0,
                    ..ValleyNdConfig::default()
                }
                .into(),
                data: None,
                noise: isotropic(0.5),
                start: StartConfig::default(),
                lrs: [0.05, 0.005, 0.01],
                steps: 2000,
                more: 1,
            },
            Setting::ProductLabel => SettingSpec {
                model: ProductConfig::default().into(),
                data: None,
                noise: label(0.5),
                start: product_start(),
                lrs: [0.05, 0.005, 0.02],
                steps: 8000,
                more: 1,
            },
            Setting::ProductIsotropic => SettingSpec {
                model: ProductConfig::default().into(),
                data: None,
                noise: isotropic(0.3),
                start: product_start(),
                lrs: [0.05, 0.005, 0.02],
                steps: 8000,
                more: 2,
            },
            Setting::ProductMinibatch => SettingSpec {
                model: ProductConfig::default().into(),
                data: Some(product_data()),
                noise: minibatch(),
                start: StartConfig {
                    theta: Some(vec![3.0, 0.3]),
                    gd_steps: 3000,
                    gd_lr: 0.05,
                    ..StartConfig::default()
                },
                lrs: [0.05, 0.005, 0.02],
                steps: 8000,
                more: 1,
            },
            Setting::DiagonalLabel => SettingSpec {
                model: diagonal(),
                data: Some(diagonal_data(5, 10, 0.0, 1)),
                noise: label(0.5),
                start: StartConfig::default(),
                lrs: [0.02, 0.002, 0.005],
                steps: 8000,
                more: 1,
            },
            Setting::DiagonalIsotropic => SettingSpec {
                model: diagonal(),
                data: Some(diagonal_data(5, 10, 0.0, 1)),
                noise: isotropic(0.2),
                start: StartConfig::default(),
                lrs: [0.02, 0.002, 0.005],
                steps: 8000,
                more: 2,
            },
            Setting::DiagonalMinibatch => SettingSpec {
                model: diagonal(),
                data: Some(diagonal_data(24, 4, 0.5, 2)),
                noise: minibatch(),
                start: StartConfig::default(),
                lrs: [0.02, 0.002, 0.005],
                steps: 8000,
                more: 1,
            },
        }
    }
}

/// One case: a setting run with one optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Case {
    /// Model x noise.
    pub setting: Setting,
    /// Optimizer.
    pub optimizer: OptimizerKind,
}

impl Case {
    /// `<setting>_<optimizer>`, e.g. `valley_label_sgd` (the case's folder and the middle part
    /// of its claim id).
    pub fn name(self) -> String {
        format!("{}_{}", self.setting.name(), self.optimizer.name())
    }

    /// The cases run at tiny scale.
    pub const TINY: [Case; 3] = [
        Case {
            setting: Setting::ValleyLabel,
            optimizer: OptimizerKind::Sgd,
        },
        Case {
            setting: Setting::ProductLabel,
            optimizer: OptimizerKind::Adam,
        },
        Case {
            setting: Setting::DiagonalMinibatch,
            optimizer: OptimizerKind::HeavyBall,
        },
    ];
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What the study measured.
#[derive(Clone, Debug, Serialize)]
pub struct ClosenessData {
    /// Learning-rate factors of the sweep (descending from 1).
    pub factors: Vec<f64>,
    /// Tolerance on the relative gap at the smallest eta.
    pub tolerance: f64,
    /// The cases, in study order.
    pub cases: Vec<CaseData>,
}

/// One case's sweep, or the error that stopped it.
#[derive(Clone, Debug, Serialize)]
pub struct CaseData {
    /// Which case.
    pub case: Case,
    /// The sweep, or the error.
    pub outcome: std::result::Result<SweepData, String>,
}

/// One case's sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepData {
    /// One comparison per learning rate (descending) and the fitted slope of log gap against
    /// log eta.
    pub sweep: Sweep,
    /// The runs behind each comparison, in the same order (for the render).
    pub runs: Vec<EtaRun>,
}

/// The runs behind one comparison of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct EtaRun {
    /// Title of the comparison.
    pub title: String,
    /// The resolved configuration at this learning rate.
    pub config_toml: String,
    /// The true ensemble (compared observables).
    pub truth: EnsembleResult,
    /// The derived ensemble (compared observables).
    pub derived: EnsembleResult,
}

/// The configurations of the study at `scale`: `(case, config)`.
fn cases(scale: Scale) -> Vec<(Case, Config)> {
    let (n, steps_factor) = scale.pick((32, 0.25), (128, 1.0), (1024, 1.0));
    let mut out = Vec::new();
    for setting in Setting::ALL {
        for optimizer in OptimizerKind::ALL {
            let case = Case { setting, optimizer };
            if scale == Scale::Tiny && !Case::TINY.contains(&case) {
                continue;
            }
            let s = setting.spec();
            let steps = ((s.steps as f64 * steps_factor) as u64 / 20).max(1) * 20;
            let config = Config {
                title: Some(case.name()),
                seed: 17,
                steps,
                trajectories: n * s.more,
                record_every: steps / 20,
                data: s.data,
                start: s.start,
                ..Config::new(s.model, s.noise, optimizer.config(s.lrs[optimizer.index()]))
            };
            out.push((case, config));
        }
    }
    out
}

/// Run the study at `scale` (see the module docs). A case that fails is kept with its error;
/// the others still run.
pub fn measure(scale: Scale) -> Result<ClosenessData> {
    let factors: Vec<f64> = if scale == Scale::Tiny {
        vec![1.0, 0.5]
    } else {
        vec![1.0, 0.5, 0.25]
    };
    let tolerance = 0.1;
    let cases = cases(scale)
        .into_iter()
        .map(|(case, cfg)| CaseData {
            case,
            outcome: sweep(&cfg, &factors, tolerance).map_err(|e| e.to_string()),
        })
        .collect();
    Ok(ClosenessData {
        factors,
        tolerance,
        cases,
    })
}

/// Compare at `eta0 * f` for each factor `f`, the horizon fixed in slow time.
fn sweep(config: &Config, factors: &[f64], tolerance: f64) -> Result<SweepData> {
    let eta0 = config.optimizer.lr();
    let mut comparisons = Vec::new();
    let mut runs = Vec::new();
    for &f in factors {
        let eta = eta0 * f;
        let cfg = scaled_config(config, eta0, eta);
        let built = cfg.build()?;
        let title = format!(
            "{} at eta {eta:.3e}",
            config.title.clone().unwrap_or_else(|| "comparison".into())
        );
        let (comparison, truth, derived) =
            quasistatic::with_model!(&built.model, m => compare(m, &built, tolerance))?;
        comparisons.push(comparison);
        runs.push(EtaRun {
            title,
            config_toml: cfg.to_toml(),
            truth,
            derived,
        });
    }
    let etas: Vec<f64> = comparisons.iter().map(|c| c.eta).collect();
    let gaps: Vec<f64> = comparisons.iter().map(|c| c.max_relative_gap).collect();
    let (slope, _, slope_se) = log_log_slope(&etas, &gaps);
    Ok(SweepData {
        sweep: Sweep {
            comparisons,
            slope,
            slope_se,
        },
        runs,
    })
}

/// True against derived dynamics for a built configuration (automatic SDE step): the
/// comparison and both ensembles.
fn compare<M: Model + Clone + 'static>(
    model: &M,
    built: &Built,
    tolerance: f64,
) -> Result<(Comparison, EnsembleResult, EnsembleResult)> {
    measure_comparison(model, built, None, tolerance, false)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The cases as the TOML text the study used to write.
    fn text_cases(scale: Scale) -> Vec<(Case, Config)> {
        fn optimizer_toml(optimizer: OptimizerKind) -> &'static str {
            match optimizer {
                OptimizerKind::Sgd => "kind = \"sgd\"",
                OptimizerKind::HeavyBall => "kind = \"heavy_ball\"\nbeta = 0.9",
                OptimizerKind::Adam => "kind = \"adam\"\nbeta1 = 0.9\nbeta2 = 0.99",
            }
        }
        fn body(setting: Setting) -> &'static str {
            match setting {
                Setting::ValleyLabel => "[model]\nkind = \"valley\"\nangle = 30.0\nstart_y = 2.0\n[noise]\nkind = \"label\"\nsigma = 1.0\n",
                Setting::ValleyIsotropic => "[model]\nkind = \"valley_nd\"\nnormal_dim = 16\ntangent_dim = 1\nstart_y = 2.0\n\
                       [noise]\nkind = \"isotropic\"\nsigma = 0.5\n",
                Setting::ProductLabel => "[model]\nkind = \"product\"\n[noise]\nkind = \"label\"\nsigma = 0.5\n[start]\ntheta = [3.0, 0.3333333333333333]\n",
                Setting::ProductIsotropic => "[model]\nkind = \"product\"\n[noise]\nkind = \"isotropic\"\nsigma = 0.3\n[start]\ntheta = [3.0, 0.3333333333333333]\n",
                Setting::ProductMinibatch => "[model]\nkind = \"product\"\n[data]\nkind = \"synthetic\"\nn = 32\ndim = 1\nteacher = \"linear\"\n\
                       teacher_weights = [1.0]\nlabel_noise = 0.5\nseed = 3\n[noise]\nkind = \"minibatch\"\nbatch = 2\n\
                       [start]\ntheta = [3.0, 0.3]\ngd_steps = 3000\ngd_lr = 0.05\n",
                Setting::DiagonalLabel => "[model]\nkind = \"diagonal\"\nfloor = 0.05\n[data]\nkind = \"synthetic\"\nn = 5\nn_test = 200\ndim = 10\n\
                       teacher = \"sparse\"\nteacher_k = 2\nseed = 1\n[noise]\nkind = \"label\"\nsigma = 0.5\n",
                Setting::DiagonalIsotropic => "[model]\nkind = \"diagonal\"\nfloor = 0.05\n[data]\nkind = \"synthetic\"\nn = 5\nn_test = 200\ndim = 10\n\
                       teacher = \"sparse\"\nteacher_k = 2\nseed = 1\n[noise]\nkind = \"isotropic\"\nsigma = 0.2\n",
                Setting::DiagonalMinibatch => "[model]\nkind = \"diagonal\"\nfloor = 0.05\n[data]\nkind = \"synthetic\"\nn = 24\nn_test = 200\ndim = 4\n\
                       teacher = \"sparse\"\nteacher_k = 2\nlabel_noise = 0.5\nseed = 2\n[noise]\nkind = \"minibatch\"\nbatch = 2\n",
            }
        }
        let (n, steps_factor) = scale.pick((32, 0.25), (128, 1.0), (1024, 1.0));
        let mut out = Vec::new();
        for setting in Setting::ALL {
            let s = setting.spec();
            for optimizer in OptimizerKind::ALL {
                let case = Case { setting, optimizer };
                if scale == Scale::Tiny && !Case::TINY.contains(&case) {
                    continue;
                }
                let name = case.name();
                let steps = ((s.steps as f64 * steps_factor) as u64 / 20).max(1) * 20;
                let text = format!(
                    "title = \"{name}\"\nseed = 17\nsteps = {steps}\ntrajectories = {}\nrecord_every = {}\n{}\n[optimizer]\n{}\nlr = {}\n",
                    n * s.more,
                    steps / 20,
                    body(setting),
                    optimizer_toml(optimizer),
                    s.lrs[optimizer.index()]
                );
                let config = Config::from_toml(&text, Path::new("closeness.toml")).unwrap();
                out.push((case, config));
            }
        }
        out
    }

    #[test]
    fn typed_cases_equal_the_toml_text() {
        for scale in [Scale::Tiny, Scale::Quick] {
            let typed = cases(scale);
            let text = text_cases(scale);
            assert_eq!(typed.len(), text.len(), "{scale:?}");
            assert_eq!(typed.len(), scale.pick(3, 24, 24));
            for ((case, config), (text_case, text_config)) in typed.iter().zip(&text) {
                assert_eq!(case, text_case);
                assert_eq!(config, text_config, "{case} at {scale:?}");
            }
        }
    }
}
