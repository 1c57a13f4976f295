//! Reproducible parallel ensembles of the true optimizer dynamics.
//!
//! `N` trajectories start from the same point (optionally perturbed per trajectory) and run
//! the optimizer on stochastic gradients for `steps` steps. Observables are recorded at steps
//! `0, K, 2K, ...` and at the last step. Trajectory `j` draws only from
//! [`crate::engine::rng::stream`]`(seed, j, .)`, so results are bit-identical for any thread count.
//! Trajectories are advanced in groups of [`LANES`] (one model call and one optimizer step per
//! group and step, vectorised across trajectories where the model provides it); groups run in
//! parallel over rayon's pool, each allocates its buffers once and the step loop allocates
//! nothing (except the Hessian-shaped noise, see [`NoiseModel`]). Small one-sample models
//! (the valley, the scalar product model) under full-batch label noise take a faster step that
//! keeps several groups in registers (`engine::registers`); the results are the same, bit for bit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::engine::registers::{self, group_is_fine, GroupRecorder, RegisterTask, STOP_EVERY};
use crate::engine::rng;
use crate::engine::{gather_lane, scatter_lane, Lanes, SmallLaneKernel, LANES};
use crate::error::{Error, Result};
use crate::model::{lane_scratch_len, Model, ModelVisitor};
use crate::noise::NoiseModel;
use crate::observe::{Observable, Observer};
use crate::optim::{CoordinateRule, Optimizer, RuleState, RuleVisitor};
pub use crate::record::{checkpoints, Divergence, EnsembleResult, TrajectoryOutput};

/// What to run (everything but the model, the noise and the optimizer).
#[derive(Clone, Debug)]
pub struct EnsembleSpec {
    /// Optimizer steps per trajectory.
    pub steps: u64,
    /// Record every `record_every` steps (`K >= 1`).
    pub record_every: u64,
    /// Number of trajectories `N`.
    pub trajectories: usize,
    /// Number of the first trajectory: the run is trajectories `first_trajectory ..
    /// first_trajectory + trajectories` of the ensemble keyed by `seed` (0 for a whole
    /// ensemble). Running an ensemble in consecutive blocks of trajectories gives the same
    /// trajectories, bit for bit, as one run.
    pub first_trajectory: usize,
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
    /// Told how many trajectory-steps were completed, from any thread, as the run goes (the
    /// total is `trajectories * steps` unless trajectories diverge).
    pub progress: Option<Progress>,
    /// Evaluate observables at `map(theta)` instead of `theta` (e.g. the projection onto the
    /// manifold, to compare with the derived dynamics). A map that fails ends the trajectory
    /// and is reported as its divergence reason.
    pub observe_at: Option<ObservationMap>,
}

impl Default for EnsembleSpec {
    /// One trajectory (number 0) of one step from an empty start, recorded every step, seed 0,
    /// `max_loss = 1e8`, no start perturbation, no progress reports, observed as is: fill in what
    /// a run needs with struct-update syntax.
    fn default() -> Self {
        Self {
            steps: 1,
            record_every: 1,
            trajectories: 1,
            first_trajectory: 0,
            seed: 0,
            max_loss: 1e8,
            start: Vec::new(),
            start_noise: 0.0,
            start_factor: None,
            observables: Vec::new(),
            progress: None,
            observe_at: None,
        }
    }
}

/// The function inside a [`Progress`]: the number of trajectory-steps just completed.
pub type ProgressFn = dyn Fn(u64) + Send + Sync;

/// Progress reports of a run (see [`EnsembleSpec::progress`]); a front end draws a bar.
#[derive(Clone)]
pub struct Progress(pub Arc<ProgressFn>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// The function inside an [`ObservationMap`]: parameters in, mapped parameters or a reason out.
pub type MapFn = dyn Fn(&[f64]) -> Result<Vec<f64>, String> + Send + Sync;

/// A map applied to parameters before observing them (see [`EnsembleSpec::observe_at`]).
#[derive(Clone)]
pub struct ObservationMap(pub Arc<MapFn>);

impl std::fmt::Debug for ObservationMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObservationMap(..)")
    }
}

/// Run the ensemble. Divergent trajectories are reported in the result; the others finish.
///
/// The engine picks its path by the capabilities the model and the optimizer declare, never by
/// their types: a model that offers a register step ([`SmallLaneKernel`], two parameters, one
/// sample) under full-batch label noise with a [`CoordinateRule`] optimizer runs with its
/// groups in registers; every other case runs the general group step, where the model
/// evaluates a group with its [`LaneKernel`](crate::engine::LaneKernel) (or lane by lane) and a
/// [`CoordinateRule`] steps the whole group at once (any other [`Optimizer`] lane by lane).
/// All paths give the same numbers, bit for bit.
pub fn run_ensemble<M: Model, O: Optimizer>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
) -> EnsembleResult {
    run_with(model, noise, optimizer, spec, None)
}

/// [`run_ensemble`] that ends early when `stop` is set (from any thread, e.g. by an interrupt
/// handler): every group checks it every [`STOP_EVERY`] steps and at each of its checkpoints
/// and ends there, and the run returns [`Error::Interrupted`] instead of a partial result. A run
/// that finishes before `stop` is set returns its result, the same bits as [`run_ensemble`].
pub fn run_ensemble_until<M: Model, O: Optimizer>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
    stop: &AtomicBool,
) -> Result<EnsembleResult> {
    let result = run_with(model, noise, optimizer, spec, Some(stop));
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(result)
}

fn run_with<M: Model, O: Optimizer>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &O,
    spec: &EnsembleSpec,
    stop: Option<&AtomicBool>,
) -> EnsembleResult {
    let t0 = Instant::now();
    let cps = checkpoints(spec.steps, spec.record_every);
    let run = Run {
        noise,
        spec,
        cps: &cps,
        stop,
    };
    let outputs = model.visit(ByModel { run, optimizer });
    EnsembleResult::assemble(&spec.observables, cps, outputs, t0.elapsed().as_secs_f64())
}

/// What every path of one run shares.
#[derive(Clone, Copy)]
struct Run<'a> {
    noise: &'a NoiseModel,
    spec: &'a EnsembleSpec,
    cps: &'a [u64],
    /// Set when the run should end early (see [`run_ensemble_until`]).
    stop: Option<&'a AtomicBool>,
}

impl Run<'_> {
    /// Whether the run was asked to stop.
    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Group `g`: its first trajectory and the lanes in use (0: padding).
    fn group(&self, g: usize) -> (usize, usize) {
        let local = g * LANES;
        (
            self.spec.first_trajectory + local,
            LANES.min(self.spec.trajectories.saturating_sub(local)),
        )
    }

    /// Report `steps` steps of `running` trajectories as done.
    fn advanced(&self, steps: u64, running: usize) {
        if let Some(p) = &self.spec.progress {
            (p.0)(steps * running as u64);
        }
    }

    /// The general path: every group with the general group step, in parallel.
    fn general<M: Model, O: Optimizer>(&self, model: &M, optimizer: &O) -> Vec<TrajectoryOutput> {
        (0..self.spec.trajectories.div_ceil(LANES))
            .into_par_iter()
            .flat_map_iter(|g| {
                let (first, count) = self.group(g);
                let mut stepper = optimizer.visit(MakeStepper {
                    dim: model.dim(),
                    count,
                });
                run_group(model, self, &mut *stepper, first, count)
            })
            .collect()
    }
}

/// [`run_ensemble`]'s choice by the model's capability.
struct ByModel<'a, O> {
    run: Run<'a>,
    optimizer: &'a O,
}

impl<O: Optimizer> ModelVisitor for ByModel<'_, O> {
    type Output = Vec<TrajectoryOutput>;

    fn general<M: Model>(self, model: &M) -> Vec<TrajectoryOutput> {
        self.run.general(model, self.optimizer)
    }

    fn small<M: Model + SmallLaneKernel>(self, model: &M) -> Vec<TrajectoryOutput> {
        let sigma = (model.dim() == 2 && model.n_samples() == 1 && model.offers_small_lanes())
            .then(|| self.run.noise.full_batch_label_sigma(1))
            .flatten();
        match sigma {
            Some(sigma) => self.optimizer.visit(InRegisters {
                run: self.run,
                model,
                sigma,
                optimizer: self.optimizer,
            }),
            None => self.run.general(model, self.optimizer),
        }
    }
}

/// The register step for a two-parameter one-sample model under full-batch label noise of
/// `sigma`, if the optimizer is a [`CoordinateRule`].
struct InRegisters<'a, M, O> {
    run: Run<'a>,
    model: &'a M,
    sigma: f64,
    optimizer: &'a O,
}

impl<'o, M: Model + SmallLaneKernel, O: Optimizer> RuleVisitor<'o> for InRegisters<'_, M, O> {
    type Output = Vec<TrajectoryOutput>;

    fn general<P: Optimizer>(self, _: &'o P) -> Vec<TrajectoryOutput> {
        self.run.general(self.model, self.optimizer)
    }

    fn rule<R: CoordinateRule>(self, rule: &'o R) -> Vec<TrajectoryOutput> {
        let run = self.run;
        let n_groups = run.spec.trajectories.div_ceil(LANES);
        // `INTERLEAVED` groups per task.
        (0..n_groups.div_ceil(registers::INTERLEAVED))
            .into_par_iter()
            .flat_map_iter(|t| {
                let groups = std::array::from_fn(|i| run.group(t * registers::INTERLEAVED + i));
                in_registers::<M, R, 2>(
                    self.model,
                    self.sigma,
                    rule,
                    &run,
                    groups,
                    |task, books| registers::run_groups_in_registers(task, books),
                )
            })
            .collect()
    }
}

/// One task of the register step (see [`registers::run_groups_in_registers`]) of a model with
/// `D` parameters and one sample: its starts, its books, and the outputs once `step` (called
/// with the task and the books, returning the steps run) has run it.
fn in_registers<M: Model + SmallLaneKernel, R: CoordinateRule, const D: usize>(
    model: &M,
    sigma: f64,
    rule: &R,
    run: &Run<'_>,
    groups: [(usize, usize); registers::INTERLEAVED],
    step: impl FnOnce(
        &RegisterTask<'_, M, R, D>,
        &mut [GroupBook<'_, M>; registers::INTERLEAVED],
    ) -> u64,
) -> Vec<TrajectoryOutput> {
    let Run { spec, cps, .. } = *run;
    assert_eq!(
        model.dim(),
        D,
        "register group step for the wrong dimension"
    );
    assert_eq!(model.n_samples(), 1, "register group step needs one sample");
    let start: [f64; D] = std::array::from_fn(|k| spec.start[k]);
    // Every lane starts parked at the common start; the lanes in use get their own starts.
    let mut theta = [start.map(Lanes::splat); registers::INTERLEAVED];
    for (th, &(first, count)) in theta.iter_mut().zip(&groups) {
        for l in 0..count {
            for (t, s) in th.iter_mut().zip(start_of(spec, first + l)) {
                t.0[l] = s;
            }
        }
    }
    let task = RegisterTask {
        kernel: model,
        sigma,
        rule,
        seed: spec.seed,
        max_loss: spec.max_loss,
        start,
        theta,
        cps,
        groups,
        progress: &|steps, running| run.advanced(steps, running),
    };
    let mut books = std::array::from_fn(|g| GroupBook::new(run, model, groups[g].0, groups[g].1));
    let steps = step(&task, &mut books);
    books.into_iter().flat_map(|b| b.finish(steps)).collect()
}

/// Steps a group's trajectories (coordinate-major parameters and gradients) by one optimizer
/// step. The general group step holds it as a trait object: one call per group step, so the
/// step loop is compiled once per model, not once per model and optimizer.
trait GroupStepper {
    /// One step of the group.
    fn step(&mut self, theta: &mut [f64], grad: &[f64]);
}

/// A [`CoordinateRule`]: the group's `d * LANES` coordinates stepped as one vector.
struct WholeGroup<'a, R: CoordinateRule> {
    rule: &'a R,
    state: RuleState<R>,
}

impl<R: CoordinateRule> GroupStepper for WholeGroup<'_, R> {
    fn step(&mut self, theta: &mut [f64], grad: &[f64]) {
        step_widest(self.rule, &mut self.state, theta, grad);
    }
}

/// Any other optimizer: lane by lane, each lane in use with its own state.
struct LaneByLane<'a, O: Optimizer> {
    optimizer: &'a O,
    states: Vec<O::State>,
    theta: Vec<f64>,
    grad: Vec<f64>,
}

impl<O: Optimizer> GroupStepper for LaneByLane<'_, O> {
    fn step(&mut self, theta: &mut [f64], grad: &[f64]) {
        for (l, st) in self.states.iter_mut().enumerate() {
            gather_lane(theta, l, &mut self.theta);
            gather_lane(grad, l, &mut self.grad);
            self.optimizer.step(st, &mut self.theta, &self.grad);
            scatter_lane(&self.theta, l, theta);
        }
    }
}

/// Builds the [`GroupStepper`] of a group of `count` lanes in use, `dim` parameters each.
struct MakeStepper {
    dim: usize,
    count: usize,
}

impl<'a> RuleVisitor<'a> for MakeStepper {
    type Output = Box<dyn GroupStepper + 'a>;

    fn general<O: Optimizer>(self, optimizer: &'a O) -> Box<dyn GroupStepper + 'a> {
        Box::new(LaneByLane {
            optimizer,
            states: (0..self.count).map(|_| optimizer.init(self.dim)).collect(),
            theta: vec![0.0; self.dim],
            grad: vec![0.0; self.dim],
        })
    }

    fn rule<R: CoordinateRule>(self, rule: &'a R) -> Box<dyn GroupStepper + 'a> {
        Box::new(WholeGroup {
            rule,
            state: rule.init(self.dim * LANES),
        })
    }
}

/// Start of trajectory `j`: the common start, perturbed as the spec says.
fn start_of(spec: &EnsembleSpec, j: usize) -> Vec<f64> {
    let mut theta = spec.start.clone();
    if spec.start_noise > 0.0 {
        let mut r = rng::stream(spec.seed, j as u64, rng::START_NOISE);
        for x in theta.iter_mut() {
            let z: f64 = r.sample(StandardNormal);
            *x += spec.start_noise * z;
        }
    }
    if let Some(f) = &spec.start_factor {
        let mut r = rng::stream(spec.seed, j as u64, rng::START_FACTOR);
        let z: Vec<f64> = (0..f.ncols()).map(|_| r.sample(StandardNormal)).collect();
        for (i, x) in theta.iter_mut().enumerate() {
            *x += (0..f.ncols()).map(|k| f[(i, k)] * z[k]).sum::<f64>();
        }
    }
    theta
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
    /// One lane's gradient, for the slow checks.
    lane_grad: Vec<f64>,
    /// The run's stop flag (see [`run_ensemble_until`]).
    stop: Option<&'a AtomicBool>,
}

impl<'a, M: Model> GroupBook<'a, M> {
    /// Lanes `0..count` run trajectories `first..first + count`; the others are parked.
    fn new(run: &Run<'a>, model: &'a M, first: usize, count: usize) -> Self {
        let (spec, cps) = (run.spec, run.cps);
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
            lane_grad: vec![0.0; model.dim()],
            stop: run.stop,
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

impl<M: Model> GroupRecorder for GroupBook<'_, M> {
    #[inline(always)]
    fn parked(&self) -> &[bool; LANES] {
        &self.parked
    }
    #[inline(always)]
    fn any_parked(&self) -> bool {
        self.any_parked
    }
    #[inline(always)]
    fn alive(&self) -> usize {
        self.alive
    }
    #[inline(always)]
    fn set_last_loss(&mut self, loss: Lanes) {
        self.last_loss = loss;
    }
    fn check_lanes(&mut self, step: u64, loss: &[f64; LANES], grad_of: impl Fn(usize, &mut [f64])) {
        let mut grad = std::mem::take(&mut self.lane_grad);
        GroupBook::check_lanes(self, step, loss, &mut grad, grad_of);
        self.lane_grad = grad;
    }
    fn record(&mut self, c: usize, step: u64, theta_of: impl Fn(usize, &mut [f64])) -> u32 {
        GroupBook::record(self, c, step, theta_of)
    }
    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
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
/// nothing of theirs is recorded. The optimizer is behind `stepper` (one call per step).
fn run_group<M: Model>(
    model: &M,
    run: &Run<'_>,
    stepper: &mut dyn GroupStepper,
    first: usize,
    count: usize,
) -> Vec<TrajectoryOutput> {
    let Run {
        noise, spec, cps, ..
    } = *run;
    let d = model.dim();
    // Every lane starts parked at the common start; the lanes in use get their own starts.
    let mut theta: Vec<f64> = spec.start.iter().flat_map(|&x| [x; LANES]).collect();
    for l in 0..count {
        scatter_lane(&start_of(spec, first + l), l, &mut theta);
    }
    // Unused lanes get the streams of the trajectory numbers after the last (never recorded).
    let mut rngs: [rng::TrajectoryRng; LANES] =
        std::array::from_fn(|l| rng::stream(spec.seed, (first + l) as u64, rng::GRADIENT_NOISE));
    let mut ws = noise.lane_workspace(model);
    let mut lane_grad = vec![0.0; d];
    let mut grad = vec![0.0; d * LANES];
    let mut scratch = vec![0.0; lane_scratch_len(model)];
    let mut loss = [0.0; LANES];
    let mut book = GroupBook::new(run, model, first, count);
    let mut step = 0u64;
    'checkpoints: for (c, &target) in cps.iter().enumerate() {
        while step < target {
            if step.is_multiple_of(STOP_EVERY) && run.stopped() {
                break 'checkpoints;
            }
            noise.lane_stochastic_gradients(
                model,
                &theta,
                count,
                &mut rngs,
                &mut ws,
                &mut grad,
                &mut scratch,
                &mut loss,
            );
            let coordinates = grad.chunks_exact(LANES).map(Lanes::load);
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
            stepper.step(&mut theta, &grad);
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
        run.advanced(target - if c == 0 { 0 } else { cps[c - 1] }, count);
        let ended = book.record(c, step, |l, out| gather_lane(&theta, l, out));
        for l in (0..LANES).filter(|&l| ended & (1 << l) != 0) {
            scatter_lane(&spec.start, l, &mut theta);
        }
        if book.alive == 0 || run.stopped() {
            break;
        }
    }
    book.finish(step)
}

#[cfg(test)]
mod tests;
