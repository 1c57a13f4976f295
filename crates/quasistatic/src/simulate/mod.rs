//! Reproducible parallel ensembles of the true optimizer dynamics.
//!
//! `N` trajectories start from the same point (optionally perturbed per trajectory) and run
//! the optimizer on stochastic gradients for `steps` steps. Observables are recorded at steps
//! `0, K, 2K, ...` and at the last step. Trajectory `j` draws only from
//! [`crate::rng::stream`]`(seed, j, .)`, so results are bit-identical for any thread count.
//! Trajectories are advanced in groups of [`LANES`] (one model call and one optimizer step per
//! group and step, vectorised across trajectories where the model provides it); groups run in
//! parallel over rayon's pool, each allocates its buffers once and the step loop allocates
//! nothing (except the Hessian-shaped noise, see [`NoiseModel`]). Small one-sample models
//! (the valley, the scalar product model) under full-batch label noise take a faster step that
//! keeps several groups in registers (`registers.rs`); the results are the same, bit for bit.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::lanes::Lanes;
use crate::model::{gather_lane, scatter_lane, Model};
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

/// Trajectories the engine advances together in one group ("lanes").
///
/// Trajectories `8g .. 8g + 8` form group `g` whatever the thread count. A group's
/// parameters are stored coordinate-major (coordinate `k` of lane `l` at `k * LANES + l`), the
/// model evaluates all lanes in one call ([`Model::lane_gradients`], vectorised across
/// trajectories where the model provides it) and a coordinatewise optimizer steps them in one
/// call, so that independent trajectories fill the processor's vector units and pipeline
/// instead of one trajectory's serial chain of dependent operations. Every lane draws only
/// from its own streams and its arithmetic is that of the trajectory run alone: results are
/// bit-identical to running each trajectory by itself.
pub const LANES: usize = 8;

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
    let in_registers = (model.dim() == 2
        && model.n_samples() == 1
        && model.offers_small_lanes()
        && optimizer.offers_coordinate_update())
    .then(|| noise.full_batch_label_sigma(1))
    .flatten();
    let n_groups = spec.trajectories.div_ceil(LANES);
    // Group `g`: its first trajectory and the lanes in use (0: padding).
    let group = |g: usize| {
        let first = g * LANES;
        (first, LANES.min(spec.trajectories.saturating_sub(first)))
    };
    // Two-parameter one-sample models (T1, T2) under full-batch label noise run with the
    // groups in registers, `INTERLEAVED` of them per task.
    let outputs: Vec<TrajectoryOutput> = if let Some(sigma) = in_registers {
        (0..n_groups.div_ceil(registers::INTERLEAVED))
            .into_par_iter()
            .flat_map_iter(|t| {
                registers::run_groups_in_registers::<M, O, 2>(&registers::RegisterTask {
                    model,
                    sigma,
                    optimizer,
                    spec,
                    cps: &cps,
                    groups: std::array::from_fn(|i| group(t * registers::INTERLEAVED + i)),
                    bar: bar.as_ref(),
                })
            })
            .collect()
    } else {
        (0..n_groups)
            .into_par_iter()
            .flat_map_iter(|g| {
                let (first, count) = group(g);
                // Two-parameter models get a copy of the group step with the group's length known
                // at compile time.
                if model.dim() == 2 {
                    run_group::<M, O, 2>(
                        model,
                        noise,
                        optimizer,
                        spec,
                        &cps,
                        first,
                        count,
                        bar.as_ref(),
                    )
                } else {
                    run_group::<M, O, 0>(
                        model,
                        noise,
                        optimizer,
                        spec,
                        &cps,
                        first,
                        count,
                        bar.as_ref(),
                    )
                }
            })
            .collect()
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    EnsembleResult::assemble(&spec.observables, cps, outputs, t0.elapsed().as_secs_f64())
}

/// Start of trajectory `j`: the common start, perturbed as the spec says.
fn start_of(spec: &EnsembleSpec, j: usize) -> Vec<f64> {
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
    theta
}

/// Whether every lane's loss is finite and at most `max_loss` and every gradient entry is
/// finite, for a group's losses and its gradient coordinates (each the values of all lanes).
/// Branch-free (vectorised): `x * 0` is `0` for finite `x` and NaN otherwise, and
/// `NaN <= max_loss` is false. Shared by both group steps.
#[inline(always)]
fn group_is_fine(loss: Lanes, grad: impl IntoIterator<Item = Lanes>, max_loss: f64) -> bool {
    let mut poison = loss;
    for g in grad {
        poison += g * 0.0;
    }
    poison.0.iter().fold(true, |a, &p| a & (p <= max_loss))
}

/// Why a step's loss and gradient end a trajectory, if they do.
#[inline]
fn divergence_reason(loss: f64, grad: &[f64], max_loss: f64) -> Option<String> {
    if loss.is_finite() && loss <= max_loss && grad.iter().all(|g| g.is_finite()) {
        return None;
    }
    Some(if !loss.is_finite() {
        format!("loss is {loss}")
    } else if loss > max_loss {
        format!("loss {loss:.6e} exceeds max_loss {max_loss:.6e}")
    } else {
        "gradient is not finite".to_string()
    })
}

/// What a group of trajectories records and how far each has come: the per-lane outputs,
/// which lanes are parked (not in use, or ended), the last finite losses. Shared by the two
/// group steps ([`run_group`] and [`registers::run_groups_in_registers`]).
struct GroupBook<'a, M: Model> {
    model: &'a M,
    spec: &'a EnsembleSpec,
    first: usize,
    outs: Vec<TrajectoryOutput>,
    /// `parked[l]`: lane `l` is not (or no longer) a running trajectory.
    parked: [bool; LANES],
    any_parked: bool,
    alive: usize,
    /// Each lane's last finite loss (one aligned vector: the group steps store it every step).
    last_loss: Lanes,
    observer: Observer,
    lane_theta: Vec<f64>,
}

impl<'a, M: Model> GroupBook<'a, M> {
    /// Lanes `0..count` run trajectories `first..first + count`; the others are parked.
    fn new(model: &'a M, spec: &'a EnsembleSpec, cps: &[u64], first: usize, count: usize) -> Self {
        let n_obs = spec.observables.len();
        let mut parked = [true; LANES];
        parked[..count].fill(false);
        GroupBook {
            model,
            spec,
            first,
            outs: (0..count)
                .map(|_| TrajectoryOutput {
                    values: vec![f64::NAN; cps.len() * n_obs],
                    valid: 0,
                    divergence: None,
                    gradients: 0,
                })
                .collect(),
            parked,
            any_parked: count < LANES,
            alive: count,
            last_loss: Lanes::splat(f64::NAN),
            observer: Observer::new(model, spec.observables.clone()),
            lane_theta: vec![0.0; model.dim()],
        }
    }

    /// End lane `l`'s trajectory at `step` for `reason` and park the lane.
    fn end(&mut self, l: usize, step: u64, reason: String) {
        self.outs[l].divergence = Some(Divergence {
            trajectory: self.first + l,
            step,
            last_finite_loss: self.last_loss.0[l],
            reason,
        });
        self.outs[l].gradients = step;
        self.parked[l] = true;
        self.any_parked = true;
        self.alive -= 1;
    }

    /// Check the running lanes' losses and gradients of `step` one by one (the slow path,
    /// taken when the group check failed or some lanes are parked): a lane whose step is bad
    /// ends there; the others' losses become their last finite ones. `grad_of(l, out)` writes
    /// lane `l`'s gradient into `out`.
    fn check_lanes(
        &mut self,
        step: u64,
        loss: &[f64; LANES],
        grad: &mut [f64],
        grad_of: impl Fn(usize, &mut [f64]),
    ) {
        for (l, &lane_loss) in loss.iter().enumerate() {
            if self.parked[l] {
                continue;
            }
            grad_of(l, grad);
            match divergence_reason(lane_loss, grad, self.spec.max_loss) {
                None => self.last_loss.0[l] = lane_loss,
                Some(reason) => self.end(l, step, reason),
            }
        }
    }

    /// Record checkpoint `c` (at `step`) of every running lane; `theta_of(l, out)` writes lane
    /// `l`'s parameters into `out`. A lane whose parameters are not finite or whose
    /// observation map fails ends here. Returns a bit set of the lanes that ended (their
    /// parameters must be parked by the caller).
    fn record(&mut self, c: usize, step: u64, theta_of: impl Fn(usize, &mut [f64])) -> u32 {
        let n_obs = self.spec.observables.len();
        let mut ended = 0;
        for l in 0..self.outs.len() {
            if self.parked[l] {
                continue;
            }
            theta_of(l, &mut self.lane_theta);
            let mut failure = None;
            if !self.lane_theta.iter().all(|x| x.is_finite()) {
                failure = Some("parameters are not finite".to_string());
            } else {
                let rec = &mut self.outs[l].values[c * n_obs..(c + 1) * n_obs];
                match &self.spec.observe_at {
                    None => self.observer.observe(self.model, &self.lane_theta, rec),
                    Some(map) => match (map.0)(&self.lane_theta) {
                        Ok(p) => self.observer.observe(self.model, &p, rec),
                        Err(reason) => failure = Some(reason),
                    },
                }
            }
            match failure {
                Some(reason) => {
                    self.end(l, step, reason);
                    ended |= 1 << l;
                }
                None => self.outs[l].valid = c + 1,
            }
        }
        ended
    }

    /// The outputs, once the group has run `step` steps.
    fn finish(mut self, step: u64) -> Vec<TrajectoryOutput> {
        for out in self.outs.iter_mut() {
            if out.divergence.is_none() {
                out.gradients = step;
            }
        }
        self.outs
    }
}

/// `optimizer.step` on a whole group, compiled for the widest vector unit the CPU has
/// (AVX-512F, AVX2, else the baseline) and picked at run time: for larger models the update of
/// `8 d` coordinates is a long vectorisable loop (Adam: a square root and a division per
/// coordinate), which the baseline runs two values at a time. Results do not depend on the
/// version (element-wise IEEE arithmetic, no contraction into fused multiply-adds).
#[inline(always)]
fn step_widest<O: Optimizer>(optimizer: &O, state: &mut O::State, theta: &mut [f64], grad: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        /// The step compiled with AVX-512F enabled.
        #[target_feature(enable = "avx512f")]
        fn avx512<O: Optimizer>(o: &O, s: &mut O::State, theta: &mut [f64], grad: &[f64]) {
            o.step(s, theta, grad)
        }
        /// The step compiled with AVX2 enabled.
        #[target_feature(enable = "avx2")]
        fn avx2<O: Optimizer>(o: &O, s: &mut O::State, theta: &mut [f64], grad: &[f64]) {
            o.step(s, theta, grad)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(optimizer, state, theta, grad) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2(optimizer, state, theta, grad) };
        }
    }
    optimizer.step(state, theta, grad)
}

/// Run trajectories `first .. first + count` together (`count <= LANES`).
///
/// The group's state is coordinate-major: coordinate `k` of lane `l` at `k * LANES + l`. Lanes
/// that are not in use, or whose trajectory has ended (diverged), are parked: put back at the
/// common start after every step with a zero gradient, so that they stay finite and cheap;
/// nothing of theirs is recorded. `DIM > 0` promises `model.dim() == DIM`: the group's length is
/// then a compile-time constant in the step loop (measured +5-20% on the two-parameter T1/T2
/// with SGD); `DIM = 0` is the general case.
#[allow(clippy::too_many_arguments)]
fn run_group<M: Model, O: Optimizer, const DIM: usize>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
    cps: &[u64],
    first: usize,
    count: usize,
    bar: Option<&ProgressBar>,
) -> Vec<TrajectoryOutput> {
    let d = model.dim();
    // Every lane starts parked at the common start; the lanes in use get their own starts.
    let mut theta: Vec<f64> = spec.start.iter().flat_map(|&x| [x; LANES]).collect();
    for l in 0..count {
        scatter_lane(&start_of(spec, first + l), l, &mut theta);
    }
    // Unused lanes get the streams of the trajectory numbers after the last (never recorded).
    let mut rngs: [rng::TrajectoryRng; LANES] =
        std::array::from_fn(|l| rng::stream(spec.seed, (first + l) as u64, 0));
    let mut ws = noise.lane_workspace(model);
    // A coordinatewise optimizer steps the whole group at once; any other one lane by lane.
    let together = optimizer.coordinatewise();
    let mut state = optimizer.init(if together { d * LANES } else { 0 });
    let mut lane_states: Vec<O::State> = if together {
        Vec::new()
    } else {
        (0..count).map(|_| optimizer.init(d)).collect()
    };
    let mut lane_grad = vec![0.0; d];
    let mut grad = vec![0.0; d * LANES];
    let mut scratch = vec![0.0; model.lane_scratch_len()];
    let mut loss = [0.0; LANES];
    let mut lane_theta = vec![0.0; d];
    let mut book = GroupBook::new(model, spec, cps, first, count);
    let mut step = 0u64;
    // The group's length, a compile-time constant when `DIM > 0`.
    let dl = if DIM > 0 { DIM * LANES } else { d * LANES };
    assert_eq!(dl, d * LANES, "group length");
    for (c, &target) in cps.iter().enumerate() {
        while step < target {
            noise.lane_stochastic_gradients(
                model,
                &theta[..dl],
                count,
                &mut rngs,
                &mut ws,
                &mut grad[..dl],
                &mut scratch,
                &mut loss,
            );
            let coordinates = grad[..dl].chunks_exact(LANES).map(Lanes::load);
            if group_is_fine(Lanes(loss), coordinates, spec.max_loss) && !book.any_parked {
                book.last_loss = Lanes(loss);
            } else {
                book.check_lanes(step, &loss, &mut lane_grad, |l, g| gather_lane(&grad, l, g));
                for l in (0..LANES).filter(|&l| book.parked[l]) {
                    for k in 0..d {
                        grad[k * LANES + l] = 0.0;
                    }
                }
            }
            if together {
                step_widest(optimizer, &mut state, &mut theta[..dl], &grad[..dl]);
            } else {
                for (l, st) in lane_states.iter_mut().enumerate() {
                    gather_lane(&theta, l, &mut lane_theta);
                    gather_lane(&grad, l, &mut lane_grad);
                    optimizer.step(st, &mut lane_theta, &lane_grad);
                    scatter_lane(&lane_theta, l, &mut theta);
                }
            }
            if book.any_parked {
                for l in (0..LANES).filter(|&l| book.parked[l]) {
                    scatter_lane(&spec.start, l, &mut theta);
                }
            }
            step += 1;
            if book.alive == 0 {
                break;
            }
        }
        if let Some(b) = bar {
            b.inc((target - if c == 0 { 0 } else { cps[c - 1] }) * count as u64);
        }
        let ended = book.record(c, step, |l, out| gather_lane(&theta, l, out));
        for l in (0..LANES).filter(|&l| ended & (1 << l) != 0) {
            scatter_lane(&spec.start, l, &mut theta);
        }
        if book.alive == 0 {
            break;
        }
    }
    book.finish(step)
}

mod registers;

#[cfg(test)]
mod tests;
