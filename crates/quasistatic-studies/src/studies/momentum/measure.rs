//! The momentum study's measurements: the collapse runs (part A) and the runs at the
//! flattest point with their predicted equilibria (part B), without writing files.
//!
//! The runs are built as typed [`Config`]s.

use serde::Serialize;

use super::super::{mean_ci, Band, Scale};
use crate::compare::{gap, Gap};
use crate::output::RunMeta;
use crate::run::run_meta;
use quasistatic::config::{
    Built, Config, HeavyBallConfig, MinibatchNoiseConfig, ProductConfig, StartConfig,
    SyntheticDataConfig, TeacherConfig,
};
use quasistatic::derive::{derive, DeriveOptions};
use quasistatic::error::{Error, Result};
use quasistatic::model::{AnyModel, Model};
use quasistatic::simulate::{run_ensemble, EnsembleResult};

/// Base learning rate.
pub const ETA0: f64 = 0.002;
/// Base batch size.
pub const B0: usize = 2;
/// Heavy ball's momentum.
pub const BETA: f64 = 0.9;

/// A mean and its 95% half-width.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanCi {
    /// Mean.
    pub mean: f64,
    /// 95% half-width (1.96 standard errors).
    pub ci: f64,
}

impl MeanCi {
    /// Of a sample.
    pub fn of(v: &[f64]) -> Self {
        let (mean, ci) = mean_ci(v);
        MeanCi { mean, ci }
    }
}

/// What the study measured.
#[derive(Clone, Debug, Serialize)]
pub struct MomentumData {
    /// Training samples.
    pub n_data: usize,
    /// Trajectories per run.
    pub trajectories: usize,
    /// Part A's horizon at k = 1 (optimizer steps).
    pub horizon: u64,
    /// The least-squares weight `w` of the product model's data.
    pub least_squares_weight: f64,
    /// `L_min`.
    pub l_min: f64,
    /// Part A's start.
    pub start: [f64; 2],
    /// Part A: one run per k (k = 1 first).
    pub collapse: Vec<CollapseRun>,
    /// Part B's start, the flattest point `(sign(w) sqrt|w|, sqrt|w|)`.
    pub flattest: [f64; 2],
    /// Part B's steps per k.
    pub window: u64,
    /// `lambda_max` of the Hessian at the flattest point.
    pub lambda_max: f64,
    /// Part B: one run per k (k = 1 first).
    pub breaking: Vec<BreakRun>,
}

/// One run of part A (steps rescaled to `k x step`).
#[derive(Clone, Debug, Serialize)]
pub struct CollapseRun {
    /// The scale factor of eta and B.
    pub k: usize,
    /// Gap of `tr H` to the k = 1 run in rescaled time (zero for k = 1).
    pub gap: Gap,
    /// Mean `tr H` at the start.
    pub initial_trace: f64,
    /// Final `tr H`.
    pub final_trace: MeanCi,
    /// Loss level `L - L_min`, time-averaged over the second half of the records per
    /// trajectory.
    pub level: MeanCi,
    /// Diverged trajectories.
    pub divergences: usize,
    /// `tr H` against rescaled time.
    pub trace: Band,
    /// The run as `quasistatic simulate` writes it (not in the study's JSON).
    #[serde(skip)]
    pub run: SavedRun,
}

/// One run of part B.
#[derive(Clone, Debug, Serialize)]
pub struct BreakRun {
    /// The scale factor of eta and B.
    pub k: usize,
    /// `k eta0`.
    pub eta: f64,
    /// `k B0`.
    pub batch: usize,
    /// `k eta0 lambda_max`.
    pub k_eta_lambda: f64,
    /// Measured loss level `L - L_min` over the second half.
    pub level: MeanCi,
    /// `1/2 lambda_max tr S_exact` (infinite when there is no equilibrium).
    pub exact: f64,
    /// `1/2 lambda_max tr S_leading` (the rule's prediction; NaN without an equilibrium).
    pub leading: f64,
    /// Why there is no equilibrium, if there is none.
    pub derive_error: Option<String>,
    /// Diverged trajectories.
    pub divergences: usize,
    /// The run as `quasistatic simulate` writes it (not in the study's JSON).
    #[serde(skip)]
    pub run: SavedRun,
}

/// One run of the study as `quasistatic simulate` would write it: the ensemble (steps in
/// optimizer steps, not rescaled) and its files' description (resolved configuration).
#[derive(Clone, Debug)]
pub struct SavedRun {
    /// The recorded ensemble.
    pub result: EnsembleResult,
    /// Title, resolved configuration and description, as [`crate::run::run_meta`] gives them.
    pub meta: RunMeta,
}

/// The product model fitted to `n_data` noisy labels of `y = x`, heavy ball at `k eta0` with
/// batches of `k B0`, from `start`.
fn config(
    n_data: usize,
    k: usize,
    steps: u64,
    record_every: u64,
    trajectories: usize,
    start: [f64; 2],
) -> Config {
    let data = SyntheticDataConfig {
        n: n_data,
        n_test: 0,
        dim: 1,
        teacher: TeacherConfig::Linear { weights: vec![1.0] },
        label_noise: 0.5,
        seed: 3,
    };
    let optimizer = HeavyBallConfig {
        beta: BETA,
        ..HeavyBallConfig::new(ETA0 * k as f64)
    };
    Config {
        title: Some(format!("heavy ball, k = {k}")),
        seed: 23,
        steps,
        trajectories,
        record_every,
        max_loss: 1e6,
        observables: Some(vec!["loss".into(), "trace_hessian".into()]),
        data: Some(data.into()),
        start: StartConfig {
            theta: Some(start.to_vec()),
            ..StartConfig::default()
        },
        ..Config::new(
            ProductConfig::default(),
            MinibatchNoiseConfig { batch: B0 * k },
            optimizer,
        )
    }
}

fn least_squares(model: &AnyModel) -> Result<(f64, f64)> {
    match model {
        AnyModel::Product(p) => Ok((p.least_squares_weight(), p.loss_min().unwrap_or(0.0))),
        _ => Err(Error::Numerical(
            "the momentum study needs the product model".into(),
        )),
    }
}

/// `lambda_max` of the Hessian at the flattest point of the built model (closed form for the
/// depth-2 product: `(1/n) sum x_i^2 (theta_1^2 + theta_2^2)` on the manifold).
fn probe_lambda(built: &Built) -> Result<f64> {
    let AnyModel::Product(p) = &built.model else {
        return Err(Error::Numerical(
            "the momentum study needs the product model".into(),
        ));
    };
    let w = p.least_squares_weight();
    let phi = [w.abs().sqrt() * w.signum(), w.abs().sqrt()];
    let h = quasistatic::model::derivatives::hessian(p, &phi);
    Ok(h.symmetric_eigen().eigenvalues.max())
}

fn run(cfg: &Config) -> Result<(Built, EnsembleResult, SavedRun)> {
    let mut built = cfg.build()?;
    built.spec.progress = None;
    let r = quasistatic::with_model!(&built.model, m => run_ensemble(m, &built.noise, &built.optimizer, &built.spec));
    let saved = SavedRun {
        result: r.clone(),
        meta: run_meta(cfg, &built),
    };
    Ok((built, r, saved))
}

/// Loss level `L - L_min`: time average over the second half of the records, per
/// trajectory that did not diverge.
pub(crate) fn level(r: &EnsembleResult, l_min: f64) -> Result<MeanCi> {
    let i = observable(r, "loss")?;
    let c0 = r.steps.len() / 2;
    let per: Vec<f64> = (0..r.trajectories)
        .filter(|&j| r.valid[j] == r.steps.len())
        .map(|j| {
            (c0..r.steps.len())
                .map(|c| r.get(j, c, i).unwrap_or(f64::NAN) - l_min)
                .sum::<f64>()
                / (r.steps.len() - c0) as f64
        })
        .collect();
    Ok(MeanCi::of(&per))
}

fn observable(r: &EnsembleResult, name: &str) -> Result<usize> {
    r.observable_index(name)
        .ok_or_else(|| Error::Numerical(format!("`{name}` is not recorded")))
}

/// Run the study at `scale` (see the study's docs).
pub fn measure(scale: Scale) -> Result<MomentumData> {
    let n_data = scale.pick(2048, 16384, 16384);
    let trajectories = scale.pick(16, 128, 512);
    // Divisible by records x 8 so that every k records at the same rescaled times.
    let horizon: u64 = scale.pick(7_680, 48_000, 96_000);
    let records = 24u64;
    let probe = config(n_data, 1, 1, 1, 1, [1.0, 1.0]).build()?;
    let (w, l_min) = least_squares(&probe.model)?;
    let start = [3.0, w / 3.0];

    // Part A: collapse.
    let mut runs: Vec<(usize, EnsembleResult, SavedRun)> = Vec::new();
    for k in [1usize, 2, 4, 8] {
        let every = horizon / (records * k as u64);
        let (_, mut r, saved) = run(&config(
            n_data,
            k,
            every * records,
            every,
            trajectories,
            start,
        ))?;
        for s in r.steps.iter_mut() {
            *s *= k as u64;
        }
        runs.push((k, r, saved));
    }
    let mut collapse = Vec::new();
    for (k, r, saved) in &runs {
        let tr = observable(r, "trace_hessian")?;
        collapse.push(CollapseRun {
            k: *k,
            gap: gap(&runs[0].1, r, "trace_hessian")?,
            initial_trace: MeanCi::of(&r.column(0, tr)).mean,
            final_trace: MeanCi::of(&r.column(r.steps.len() - 1, tr)),
            level: level(r, l_min)?,
            divergences: r.divergences.len(),
            trace: Band::of(r, "trace_hessian").unwrap_or_default(),
            run: saved.clone(),
        });
    }

    // Part B: where the rule breaks, at the flattest point.
    let flattest = [w.abs().sqrt() * w.signum(), w.abs().sqrt()];
    let kb: Vec<usize> = scale.pick(
        vec![1, 64, 256, 512],
        vec![1, 16, 64, 128, 256, 384, 512, 640, 768],
        vec![1, 16, 64, 128, 256, 384, 512, 640, 768, 896],
    );
    let window: u64 = scale.pick(400, 2000, 4000);
    let mut breaking = Vec::new();
    let mut lambda_max = f64::NAN;
    for &k in &kb {
        let (built, r, saved) = run(&config(
            n_data,
            k,
            window,
            (window / 40).max(1),
            trajectories,
            flattest,
        ))?;
        let options = DeriveOptions {
            regularisers: false,
            ..DeriveOptions::default()
        };
        let pred = quasistatic::with_model!(&built.model, m => derive(m, &built.noise, &built.optimizer, &flattest, &options));
        let lambda = probe_lambda(&built)?;
        if lambda_max.is_nan() {
            lambda_max = lambda;
        }
        let (exact, leading, derive_error) = match &pred {
            Ok(p) => (
                0.5 * lambda * p.equilibrium.exact.trace,
                0.5 * lambda * p.equilibrium.leading.trace,
                None,
            ),
            Err(e) => (f64::INFINITY, f64::NAN, Some(e.to_string())),
        };
        breaking.push(BreakRun {
            k,
            eta: ETA0 * k as f64,
            batch: B0 * k,
            k_eta_lambda: ETA0 * k as f64 * lambda,
            level: level(&r, l_min)?,
            exact,
            leading,
            derive_error,
            divergences: r.divergences.len(),
            run: saved,
        });
    }
    Ok(MomentumData {
        n_data,
        trajectories,
        horizon,
        least_squares_weight: w,
        l_min,
        start,
        collapse,
        flattest,
        window,
        lambda_max,
        breaking,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// [`config`] as the TOML text the study used to write.
    fn text_config(
        n_data: usize,
        k: usize,
        steps: u64,
        record_every: u64,
        trajectories: usize,
        start: [f64; 2],
    ) -> Config {
        let text = format!(
            "title = \"heavy ball, k = {k}\"\nseed = 23\nsteps = {steps}\ntrajectories = {trajectories}\nrecord_every = {record_every}\n\
             max_loss = 1e6\nobservables = [\"loss\", \"trace_hessian\"]\n\
             [model]\nkind = \"product\"\n[data]\nkind = \"synthetic\"\nn = {n_data}\ndim = 1\nteacher = \"linear\"\n\
             teacher_weights = [1.0]\nlabel_noise = 0.5\nseed = 3\n[noise]\nkind = \"minibatch\"\nbatch = {}\n\
             [optimizer]\nkind = \"heavy_ball\"\nlr = {}\nbeta = {BETA}\n[start]\ntheta = [{}, {}]\n",
            B0 * k,
            ETA0 * k as f64,
            start[0],
            start[1]
        );
        Config::from_toml(&text, Path::new("momentum.toml")).unwrap()
    }

    /// Every configuration `measure` runs at tiny and quick scale (the arguments as in
    /// `measure`) equals the one parsed from the text.
    #[test]
    fn typed_configs_equal_the_toml_text() {
        for scale in [Scale::Tiny, Scale::Quick] {
            let n_data = scale.pick(2048, 16384, 16384);
            let trajectories = scale.pick(16, 128, 512);
            let horizon: u64 = scale.pick(7_680, 48_000, 96_000);
            let records = 24u64;
            let mut args = vec![(1, 1, 1, 1, [1.0, 1.0])];
            let probe = config(n_data, 1, 1, 1, 1, [1.0, 1.0]).build().unwrap();
            let (w, _) = least_squares(&probe.model).unwrap();
            for k in [1usize, 2, 4, 8] {
                let every = horizon / (records * k as u64);
                args.push((k, every * records, every, trajectories, [3.0, w / 3.0]));
            }
            let flattest = [w.abs().sqrt() * w.signum(), w.abs().sqrt()];
            let kb: Vec<usize> = scale.pick(
                vec![1, 64, 256, 512],
                vec![1, 16, 64, 128, 256, 384, 512, 640, 768],
                vec![],
            );
            let window: u64 = scale.pick(400, 2000, 4000);
            for k in kb {
                args.push((k, window, (window / 40).max(1), trajectories, flattest));
            }
            for (k, steps, every, trajectories, start) in args {
                assert_eq!(
                    config(n_data, k, steps, every, trajectories, start),
                    text_config(n_data, k, steps, every, trajectories, start),
                    "k = {k}, steps = {steps} at {scale:?}"
                );
            }
        }
    }
}
