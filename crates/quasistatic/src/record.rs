//! What an ensemble records, for the true dynamics (`simulate`) and the derived one (`sde`)
//! alike: observables at checkpoints per trajectory, the divergences, the cost.

use crate::observe::Observable;

/// A trajectory that diverged: which, when, why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// The recorded ensemble (serialised with its fields as they are; non-finite values become
/// `null` in JSON).
#[derive(Clone, Debug, serde::Serialize)]
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

/// How many checkpoints [`checkpoints`]`(steps, every)` has, without listing them.
pub fn checkpoint_count(steps: u64, every: u64) -> u64 {
    let every = every.max(1);
    steps / every + 1 + u64::from(!steps.is_multiple_of(every))
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
pub struct TrajectoryOutput {
    /// Records, `checkpoints x observables`.
    pub values: Vec<f64>,
    /// Valid checkpoints.
    pub valid: usize,
    /// Its divergence, if any.
    pub divergence: Option<Divergence>,
    /// Gradient evaluations (or equivalents) it used.
    pub gradients: u64,
}

impl EnsembleResult {
    /// Collect per-trajectory outputs (in trajectory order) into an ensemble result.
    pub fn assemble(
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
