//! The flatness study's measurements: for SGD and Adam on the diagonal network, the true
//! ensemble and the derived dynamics from the same point, the regularisers' directions at the
//! start, the final statistics and the gaps, without writing files.
//!
//! `tr(diag H)^{1/2}` and the effective support are not built-in observables: they are
//! recorded as [`CustomObservable`]s (`sqrt_diag_trace`, `effective_support`) on the plain
//! [`DiagonalNetwork`], by the true ensemble and the derived dynamics alike.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::super::{mean_ci, Scale};
use crate::compare::{gap, Gap};
use crate::validate::{paired_runs, PairedSpec};
use quasistatic::data::{generate, Dataset, SyntheticSpec, Teacher};
use quasistatic::derive::{derive, AdamOptions, DeriveOptions, Diagnostics, Regulariser};
use quasistatic::error::Result;
use quasistatic::model::{DiagonalNetwork, Model};
use quasistatic::noise::NoiseModel;
use quasistatic::observe::{CustomObservable, Observable};
use quasistatic::optim::{Adam, AnyOptimizer, Schedule, Sgd};
use quasistatic::simulate::{Divergence, EnsembleResult};

/// The optimizers of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OptimizerKind {
    /// Label-noise SGD: seeks small `tr H`.
    #[serde(rename = "SGD")]
    Sgd,
    /// Adam: seeks small `tr(diag H)^{1/2}`.
    Adam,
}

impl OptimizerKind {
    /// Both, in study order.
    pub const ALL: [OptimizerKind; 2] = [OptimizerKind::Sgd, OptimizerKind::Adam];

    /// Display name (`SGD`, `Adam`).
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "SGD",
            OptimizerKind::Adam => "Adam",
        }
    }

    /// The recorded quantity of the regulariser this optimizer descends.
    pub fn regulariser(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "trace_hessian",
            OptimizerKind::Adam => "sqrt_diag_trace",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The recorded quantities, in recording order: (column name, label).
pub const QUANTITIES: [(&str, &str); 6] = [
    ("trace_hessian", "tr H (SGD's regulariser)"),
    ("sqrt_diag_trace", "tr(diag H)^1/2 (Adam's regulariser)"),
    ("weight_l1", "||w||_1"),
    (
        "effective_support",
        "effective support ||w||_1^2 / ||w||_2^2",
    ),
    ("test_error", "test error (MSE)"),
    ("teacher_distance", "||w - w*||^2"),
];

/// The quantities of the diagonal network that are not built-in observables.
#[derive(Clone, Debug)]
pub struct NetworkQuantities {
    /// Training data.
    train: Dataset,
    /// `m_j = (1/n) sum_i x_ij^2`.
    second_moments: Vec<f64>,
}

impl NetworkQuantities {
    /// For a network trained on `train`.
    pub fn new(train: Dataset) -> Self {
        let (p, n) = (train.p, train.n);
        let second_moments = (0..p)
            .map(|j| (0..n).map(|i| train.row(i)[j].powi(2)).sum::<f64>() / n as f64)
            .collect();
        Self {
            train,
            second_moments,
        }
    }

    /// `tr(diag H)^{1/2}`: the exact Hessian diagonal (Gauss-Newton part plus the residual
    /// term `(1/n) sum_i r_i d^2 f_i`), each entry clipped at 0 before the square root.
    pub fn sqrt_diag_trace(&self, theta: &[f64]) -> f64 {
        let (p, n) = (self.train.p, self.train.n);
        let (u, v) = theta.split_at(p);
        let w: Vec<f64> = u.iter().zip(v).map(|(a, b)| a * a - b * b).collect();
        let mut rx = vec![0.0; p];
        for i in 0..n {
            let x = self.train.row(i);
            let r = w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() - self.train.y[i];
            for (acc, &xj) in rx.iter_mut().zip(x) {
                *acc += r * xj / n as f64;
            }
        }
        (0..p)
            .map(|j| {
                let m = self.second_moments[j];
                let hu = 4.0 * u[j] * u[j] * m + 2.0 * rx[j];
                let hv = 4.0 * v[j] * v[j] * m - 2.0 * rx[j];
                hu.max(0.0).sqrt() + hv.max(0.0).sqrt()
            })
            .sum()
    }

    /// Effective support size `||w||_1^2 / ||w||_2^2` of `w = u^2 - v^2`.
    pub fn effective_support(&self, theta: &[f64]) -> f64 {
        let p = self.train.p;
        let (u, v) = theta.split_at(p);
        let (mut l1, mut l2) = (0.0, 0.0);
        for (a, b) in u.iter().zip(v) {
            let w = a * a - b * b;
            l1 += w.abs();
            l2 += w * w;
        }
        l1 * l1 / l2
    }

    /// The observables of [`QUANTITIES`], in order: built-in ones and the two custom ones.
    pub fn observables(self) -> Result<Vec<Observable>> {
        let q = Arc::new(self);
        let (a, b) = (Arc::clone(&q), q);
        Ok(vec![
            Observable::TraceHessian,
            Observable::Custom(CustomObservable::new("sqrt_diag_trace", move |t| {
                a.sqrt_diag_trace(t)
            })?),
            Observable::WeightL1,
            Observable::Custom(CustomObservable::new("effective_support", move |t| {
                b.effective_support(t)
            })?),
            Observable::TestError,
            Observable::TeacherDistance,
        ])
    }
}

/// Final-time statistics of one quantity in one ensemble.
#[derive(Clone, Debug, Serialize)]
pub struct Final {
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// `true` or `derived`.
    pub dynamics: String,
    /// Quantity.
    pub quantity: String,
    /// Mean at the start (step 0).
    pub start: f64,
    /// Mean at the last step.
    pub end: f64,
    /// 95% half-width of the final mean.
    pub end_ci: f64,
    /// Mean per-trajectory change `end - start`.
    pub change: f64,
    /// Its 95% half-width.
    pub change_ci: f64,
}

fn finals(opt: OptimizerKind, dynamics: &str, r: &EnsembleResult) -> Vec<Final> {
    let last = r.steps.len() - 1;
    r.observables
        .iter()
        .enumerate()
        .map(|(o, name)| {
            let start = r.column(0, o);
            let end = r.column(last, o);
            let change: Vec<f64> = (0..r.trajectories)
                .filter_map(|j| Some(r.get(j, last, o)? - r.get(j, 0, o)?))
                .collect();
            let (e, eci) = mean_ci(&end);
            let (c, cci) = mean_ci(&change);
            Final {
                optimizer: opt,
                dynamics: dynamics.into(),
                quantity: name.clone(),
                start: start.iter().sum::<f64>() / start.len() as f64,
                end: e,
                end_ci: if eci.is_finite() { eci } else { 0.0 },
                change: c,
                change_ci: if cci.is_finite() { cci } else { 0.0 },
            }
        })
        .collect()
}

/// The study's setting.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    /// Training samples.
    pub n: usize,
    /// Features.
    pub p: usize,
    /// Teacher support.
    pub k: usize,
    /// Test samples.
    pub n_test: usize,
    /// True trajectories per optimizer.
    pub trajectories: usize,
    /// Label-noise scale.
    pub sigma: f64,
    /// SGD's learning rate.
    pub sgd_lr: f64,
    /// Adam's learning rate.
    pub adam_lr: f64,
    /// Adam's `beta2`.
    pub adam_beta2: f64,
    /// Horizon (optimizer steps).
    pub steps: u64,
}

/// What the study measured.
#[derive(Clone, Debug, Serialize)]
pub struct FlatnessData {
    /// Per optimizer, `(folder, TOML)`: the configuration whose `quasistatic compare` reruns
    /// that optimizer's true and derived ensembles (not in the JSON).
    #[serde(skip)]
    pub configs: Vec<(String, String)>,
    /// The setting.
    pub setup: Setup,
    /// SGD, then Adam.
    pub runs: Vec<OptimizerRun>,
}

/// One optimizer's measurements.
#[derive(Clone, Debug, Serialize)]
pub struct OptimizerRun {
    /// Which optimizer.
    pub optimizer: OptimizerKind,
    /// Cosine of the derived drift at the start with the direction of `-grad tr H`.
    pub cosine_trace_hessian: f64,
    /// Cosine with the (preconditioned) direction of `-grad tr(diag H)^{1/2}`.
    pub cosine_sqrt_diag: f64,
    /// Final statistics of every quantity, true then derived.
    pub finals: Vec<Final>,
    /// Gap of every quantity between the true and the derived ensemble.
    pub gaps: Vec<Gap>,
    /// Where the derived dynamics stopped (a failed derivation), per stopped trajectory.
    pub derived_stopped: Vec<Divergence>,
    /// The ensembles and what the render reports about them.
    pub record: RunRecord,
}

/// The ensembles of one optimizer and the facts the section reports about them.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Wall time of both ensembles (s).
    pub seconds: f64,
    /// SDE step (optimizer steps).
    pub h: u64,
    /// Diagnostics at the start.
    pub diagnostics: Diagnostics,
    /// Warnings of the derivation at the start.
    pub warnings: Vec<String>,
    /// The true ensemble.
    pub truth: EnsembleResult,
    /// The derived ensemble.
    pub derived: EnsembleResult,
}

impl OptimizerRun {
    /// The final statistics of `quantity` in `dynamics` (`true` or `derived`).
    pub fn last(&self, dynamics: &str, quantity: &str) -> Option<&Final> {
        self.finals
            .iter()
            .find(|f| f.dynamics == dynamics && f.quantity == quantity)
    }
}

impl FlatnessData {
    /// The run of `optimizer`.
    pub fn run(&self, optimizer: OptimizerKind) -> Option<&OptimizerRun> {
        self.runs.iter().find(|r| r.optimizer == optimizer)
    }
}

/// The seed of the synthetic regression data.
pub const DATA_SEED: u64 = 3;
/// The seed of the ensembles (true and derived).
pub const ENSEMBLE_SEED: u64 = 41;

/// The configuration of the run of `kind` (see [`FlatnessData::configs`]).
fn config_toml(setup: &Setup, kind: OptimizerKind, records: u64) -> String {
    let optimizer = match kind {
        OptimizerKind::Sgd => format!("kind = \"sgd\"\nlr = {:?}\n", setup.sgd_lr),
        OptimizerKind::Adam => format!(
            "kind = \"adam\"\nlr = {:?}\nbeta1 = 0.9\nbeta2 = {:?}\neps = 1e-8\n",
            setup.adam_lr, setup.adam_beta2
        ),
    };
    let observables: Vec<String> = QUANTITIES.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    format!(
        "# Reruns the {} run of the flatness study: quasistatic compare config.toml --out DIR\n\
         seed = {ENSEMBLE_SEED}\nsteps = {}\ntrajectories = {}\nrecord_every = {}\n\
         observables = [{}]\nsave_trajectories = false\n\n\
         [model]\nkind = \"diagonal\"\n\n\
         [data]\nkind = \"synthetic\"\nn = {}\nn_test = {}\ndim = {}\nteacher = \"sparse\"\n\
         teacher_k = {}\nteacher_value = 1.0\nlabel_noise = 0.0\nseed = {DATA_SEED}\n\n\
         [noise]\nkind = \"label\"\nsigma = {:?}\n\n[optimizer]\n{optimizer}\n\
         [derive]\nadam_max_iterations = {ADAM_MAX_ITERATIONS}\nadam_tolerance = {ADAM_TOLERANCE:?}\n",
        kind.name(),
        setup.steps,
        setup.trajectories,
        setup.steps / records,
        observables.join(", "),
        setup.n,
        setup.n_test,
        setup.p,
        setup.k,
        setup.sigma,
    )
}

/// Iterations of Adam's preconditioner fixed point: it contracts slowly once unused features
/// shrink.
pub const ADAM_MAX_ITERATIONS: usize = 5000;
/// Its relative tolerance on `sqrt(v) + eps`: far below every other error here.
pub const ADAM_TOLERANCE: f64 = 1e-7;

/// Run the study at `scale` (see the study's docs).
pub fn measure(scale: Scale) -> Result<FlatnessData> {
    let (n, p, k) = scale.pick((8, 12, 2), (16, 24, 3), (40, 100, 5));
    let setup = Setup {
        n,
        p,
        k,
        n_test: 500,
        trajectories: scale.pick(8, 24, 128),
        sigma: 0.5,
        sgd_lr: 0.05,
        adam_lr: 0.002,
        adam_beta2: 0.9999,
        steps: scale.pick(6_000, 20_000, 100_000),
    };
    let records = scale.pick(6, 20, 40);
    let data = generate(&SyntheticSpec {
        n,
        n_test: setup.n_test,
        p,
        teacher: Teacher::Sparse { k, value: 1.0 },
        label_noise: 0.0,
        seed: DATA_SEED,
    });
    let observables: Vec<Observable> = QUANTITIES
        .iter()
        .map(|(name, _)| Observable::parse(name).expect("a built-in observable"))
        .collect();
    let model = DiagonalNetwork::new(data.train, data.test, data.teacher);
    let start = model.default_start();
    let noise = NoiseModel::Label {
        sigma: setup.sigma,
        batch: None,
    };
    let spec = PairedSpec {
        steps: setup.steps,
        record_every: setup.steps / records,
        trajectories: setup.trajectories,
        seed: ENSEMBLE_SEED,
        observables,
        h: None,
        // The fixed point for v contracts slowly once unused features shrink: a relative
        // tolerance of 1e-7 on sqrt(v) + eps is far below every other error here.
        adam: Some(AdamOptions {
            max_iterations: ADAM_MAX_ITERATIONS,
            tolerance: ADAM_TOLERANCE,
            ..AdamOptions::default()
        }),
        max_loss: 1e8,
        progress: false,
    };
    let mut runs = Vec::new();
    for kind in OptimizerKind::ALL {
        let opt = match kind {
            OptimizerKind::Sgd => AnyOptimizer::Sgd(Sgd {
                lr: Schedule::Constant(setup.sgd_lr),
            }),
            OptimizerKind::Adam => AnyOptimizer::Adam(Adam {
                lr: Schedule::Constant(setup.adam_lr),
                beta1: 0.9,
                beta2: setup.adam_beta2,
                eps: 1e-8,
                weight_decay: 0.0,
            }),
        };
        let t0 = std::time::Instant::now();
        let paired = paired_runs(&model, &noise, &opt, &start, &spec)?;
        let seconds = t0.elapsed().as_secs_f64();
        let full = derive(
            &model,
            &noise,
            &opt,
            &start,
            &DeriveOptions {
                adam: spec.adam.clone().unwrap_or_default(),
                ..DeriveOptions::default()
            },
        )?;
        let cos = |r: Regulariser| {
            full.regularisers
                .iter()
                .find(|x| x.regulariser == r)
                .and_then(|x| x.cosine)
                .unwrap_or(f64::NAN)
        };
        let (truth, derived) = (paired.truth, paired.derived);
        let gaps = truth
            .observables
            .iter()
            .filter(|name| derived.observable_index(name).is_some())
            .map(|name| gap(&truth, &derived, name))
            .collect::<Result<Vec<_>>>()?;
        let mut all = finals(kind, "true", &truth);
        all.extend(finals(kind, "derived", &derived));
        runs.push(OptimizerRun {
            optimizer: kind,
            cosine_trace_hessian: cos(Regulariser::TraceHessian),
            cosine_sqrt_diag: cos(Regulariser::TraceSqrtDiagHessian),
            finals: all,
            gaps,
            derived_stopped: derived.divergences.clone(),
            record: RunRecord {
                seconds,
                h: paired.h,
                diagnostics: paired.start.diagnostics,
                warnings: paired.start.warnings,
                truth,
                derived,
            },
        });
    }
    let configs = OptimizerKind::ALL
        .iter()
        .map(|&kind| (kind.name().to_string(), config_toml(&setup, kind, records)))
        .collect();
    Ok(FlatnessData {
        configs,
        setup,
        runs,
    })
}
