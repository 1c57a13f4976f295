//! Reproducible parallel ensembles of the true optimizer dynamics.
//!
//! `N` trajectories start from the same point (optionally perturbed per trajectory) and run
//! the optimizer on stochastic gradients for `steps` steps. Observables are recorded at steps
//! `0, K, 2K, ...` and at the last step. Trajectory `j` draws only from
//! [`crate::rng::stream`]`(seed, j, .)`, so results are bit-identical for any thread count.
//! Trajectories run in parallel over rayon's pool; each allocates its buffers once and the
//! step loop allocates nothing (except the Hessian-shaped noise, see [`NoiseModel`]).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::model::Model;
use crate::noise::NoiseModel;
use crate::observe::{Observable, Observer};
use crate::optim::Optimizer;
use crate::rng;

/// What to run (everything but the model, the noise and the optimizer).
#[derive(Clone, Debug)]
pub struct EnsembleSpec {
    /// Optimizer steps per trajectory.
    pub steps: u64,
    /// Record every `record_every` steps (`K >= 1`).
    pub record_every: u64,
    /// Number of trajectories `N`.
    pub trajectories: usize,
    /// Master seed.
    pub seed: u64,
    /// A trajectory whose loss exceeds this (or is not finite) has diverged.
    pub max_loss: f64,
    /// Common start.
    pub start: Vec<f64>,
    /// Standard deviation of an independent Gaussian perturbation of each trajectory's start
    /// (0 for none).
    pub start_noise: f64,
    /// A factor `F` (`d x r`) of a start covariance: each trajectory starts at
    /// `start + F z`, `z ~ N(0, I_r)` (e.g. the normal equilibrium `S = F F^T` around a manifold
    /// point). Drawn after `start_noise`, from the same per-trajectory stream.
    pub start_factor: Option<nalgebra::DMatrix<f64>>,
    /// What to record.
    pub observables: Vec<Observable>,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Evaluate observables at `map(theta)` instead of `theta` (e.g. the projection onto the
    /// manifold, to compare with the derived dynamics). A map that fails ends the trajectory
    /// and is reported as its divergence reason.
    pub observe_at: Option<ObservationMap>,
}

impl Default for EnsembleSpec {
    /// One trajectory of one step from an empty start, recorded every step, seed 0,
    /// `max_loss = 1e8`, no start perturbation, no progress bar, observed as is: fill in what
    /// a run needs with struct-update syntax.
    fn default() -> Self {
        Self {
            steps: 1,
            record_every: 1,
            trajectories: 1,
            seed: 0,
            max_loss: 1e8,
            start: Vec::new(),
            start_noise: 0.0,
            start_factor: None,
            observables: Vec::new(),
            progress: false,
            observe_at: None,
        }
    }
}

/// The function inside an [`ObservationMap`]: parameters in, mapped parameters or a reason out.
pub type MapFn = dyn Fn(&[f64]) -> Result<Vec<f64>, String> + Send + Sync;

/// A map applied to parameters before observing them (see [`EnsembleSpec::observe_at`]).
#[derive(Clone)]
pub struct ObservationMap(pub std::sync::Arc<MapFn>);

impl std::fmt::Debug for ObservationMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObservationMap(..)")
    }
}

/// A trajectory that diverged: which, when, why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Divergence {
    /// Trajectory index.
    pub trajectory: usize,
    /// Step at which the divergence was detected (the loss of this step was bad).
    pub step: u64,
    /// The last finite loss seen before it.
    pub last_finite_loss: f64,
    /// What happened.
    pub reason: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trajectory {} diverged at step {}: {} (last finite loss {:.6e})",
            self.trajectory, self.step, self.reason, self.last_finite_loss
        )
    }
}

/// The recorded ensemble.
#[derive(Clone, Debug)]
pub struct EnsembleResult {
    /// Observable names, in storage order.
    pub observables: Vec<String>,
    /// Steps at which records were taken.
    pub steps: Vec<u64>,
    /// Number of trajectories.
    pub trajectories: usize,
    /// `values[(j * steps.len() + c) * observables.len() + o]`: trajectory `j`, checkpoint
    /// `c`, observable `o`. Checkpoints at or after a trajectory's divergence hold NaN and are
    /// excluded everywhere (see [`EnsembleResult::valid`]).
    pub values: Vec<f64>,
    /// Per trajectory, how many checkpoints are valid (all of them unless it diverged).
    pub valid: Vec<usize>,
    /// Diverged trajectories.
    pub divergences: Vec<Divergence>,
    /// Stochastic gradients evaluated (all trajectories).
    pub gradient_evaluations: u64,
    /// Wall time of the ensemble in seconds.
    pub seconds: f64,
}

impl EnsembleResult {
    /// Value of observable `o` at checkpoint `c` of trajectory `j` (`None` after divergence).
    pub fn get(&self, j: usize, c: usize, o: usize) -> Option<f64> {
        (c < self.valid[j])
            .then(|| self.values[(j * self.steps.len() + c) * self.observables.len() + o])
    }

    /// Index of an observable by name.
    pub fn observable_index(&self, name: &str) -> Option<usize> {
        self.observables.iter().position(|n| n == name)
    }

    /// Values of observable `o` at checkpoint `c` over the trajectories still valid there.
    pub fn column(&self, c: usize, o: usize) -> Vec<f64> {
        (0..self.trajectories)
            .filter_map(|j| self.get(j, c, o))
            .collect()
    }
}

/// Checkpoint steps `0, K, 2K, ..., steps` (the last step always included).
pub fn checkpoints(steps: u64, every: u64) -> Vec<u64> {
    let mut c: Vec<u64> = (0..=steps).step_by(every.max(1) as usize).collect();
    if *c.last().unwrap() != steps {
        c.push(steps);
    }
    c
}

/// What one trajectory recorded (used by the true and the derived ensembles).
pub(crate) struct TrajectoryOutput {
    /// Records, `checkpoints x observables`.
    pub(crate) values: Vec<f64>,
    /// Valid checkpoints.
    pub(crate) valid: usize,
    /// Its divergence, if any.
    pub(crate) divergence: Option<Divergence>,
    /// Gradient evaluations (or equivalents) it used.
    pub(crate) gradients: u64,
}

impl EnsembleResult {
    /// Collect per-trajectory outputs (in trajectory order) into an ensemble result.
    pub(crate) fn assemble(
        observables: &[Observable],
        steps: Vec<u64>,
        outputs: Vec<TrajectoryOutput>,
        seconds: f64,
    ) -> Self {
        let trajectories = outputs.len();
        let mut values = Vec::with_capacity(trajectories * steps.len() * observables.len());
        let mut valid = Vec::with_capacity(trajectories);
        let mut divergences = Vec::new();
        let mut gradient_evaluations = 0;
        for out in outputs {
            values.extend_from_slice(&out.values);
            valid.push(out.valid);
            divergences.extend(out.divergence);
            gradient_evaluations += out.gradients;
        }
        EnsembleResult {
            observables: observables.iter().map(|o| o.name()).collect(),
            steps,
            trajectories,
            values,
            valid,
            divergences,
            gradient_evaluations,
            seconds,
        }
    }
}

/// Run the ensemble. Divergent trajectories are reported in the result; the others finish.
pub fn run_ensemble<M: Model, O: Optimizer>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
) -> EnsembleResult {
    let t0 = Instant::now();
    let cps = checkpoints(spec.steps, spec.record_every);
    let bar = if spec.progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(spec.trajectories as u64 * spec.steps);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent}% ({eta} left)")
                .expect("valid template"),
        );
        Some(b)
    } else {
        None
    };
    let outputs: Vec<TrajectoryOutput> = (0..spec.trajectories)
        .into_par_iter()
        .map(|j| run_trajectory(model, noise, optimizer, spec, &cps, j, bar.as_ref()))
        .collect();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    EnsembleResult::assemble(&spec.observables, cps, outputs, t0.elapsed().as_secs_f64())
}

fn run_trajectory<M: Model, O: Optimizer>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
    cps: &[u64],
    j: usize,
    bar: Option<&ProgressBar>,
) -> TrajectoryOutput {
    let d = model.dim();
    let n_obs = spec.observables.len();
    let mut values = vec![f64::NAN; cps.len() * n_obs];
    let mut theta = spec.start.clone();
    if spec.start_noise > 0.0 {
        let mut r = rng::stream(spec.seed, j as u64, 1);
        for x in theta.iter_mut() {
            let z: f64 = r.sample(StandardNormal);
            *x += spec.start_noise * z;
        }
    }
    if let Some(f) = &spec.start_factor {
        let mut r = rng::stream(spec.seed, j as u64, 3);
        let z: Vec<f64> = (0..f.ncols()).map(|_| r.sample(StandardNormal)).collect();
        for (i, x) in theta.iter_mut().enumerate() {
            *x += (0..f.ncols()).map(|k| f[(i, k)] * z[k]).sum::<f64>();
        }
    }
    let mut rng = rng::stream(spec.seed, j as u64, 0);
    let mut state = optimizer.init(d);
    let mut ws = noise.workspace(model);
    let mut grad = vec![0.0; d];
    let mut observer = Observer::new(model, spec.observables.clone());
    let mut last_loss = f64::NAN;
    let mut step = 0u64;
    let mut divergence = None;
    let mut valid = 0;
    'outer: for (c, &target) in cps.iter().enumerate() {
        while step < target {
            let loss = noise.stochastic_gradient(model, &theta, &mut rng, &mut ws, &mut grad);
            let reason = if !loss.is_finite() {
                Some(format!("loss is {loss}"))
            } else if loss > spec.max_loss {
                Some(format!(
                    "loss {loss:.6e} exceeds max_loss {:.6e}",
                    spec.max_loss
                ))
            } else if !grad.iter().all(|g| g.is_finite()) {
                Some("gradient is not finite".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                divergence = Some(Divergence {
                    trajectory: j,
                    step,
                    last_finite_loss: last_loss,
                    reason,
                });
                break 'outer;
            }
            last_loss = loss;
            optimizer.step(&mut state, &mut theta, &grad);
            step += 1;
        }
        if let Some(b) = bar {
            b.inc(target - if c == 0 { 0 } else { cps[c - 1] });
        }
        if !theta.iter().all(|x| x.is_finite()) {
            divergence = Some(Divergence {
                trajectory: j,
                step,
                last_finite_loss: last_loss,
                reason: "parameters are not finite".into(),
            });
            break;
        }
        let out = &mut values[c * n_obs..(c + 1) * n_obs];
        match &spec.observe_at {
            None => observer.observe(model, &theta, out),
            Some(map) => match (map.0)(&theta) {
                Ok(p) => observer.observe(model, &p, out),
                Err(reason) => {
                    divergence = Some(Divergence {
                        trajectory: j,
                        step,
                        last_finite_loss: last_loss,
                        reason,
                    });
                    break;
                }
            },
        }
        valid = c + 1;
    }
    TrajectoryOutput {
        values,
        valid,
        divergence,
        gradients: step,
    }
}

#[cfg(test)]
mod tests;
