//! The capabilities a model may declare so that the engine evaluates a whole group of
//! trajectories in one call. Neither is required: a model without them is evaluated lane by
//! lane through its ordinary batch gradient, with the same results, only slower.

use super::batch::LaneBatch;
use super::lanes::{Lanes, LANES};

/// Batch gradients of the [`LANES`] trajectories of a group at once.
///
/// Layout is coordinate-major ("structure of arrays"): coordinate `k` of lane `l` is
/// `theta[k * LANES + l]`, and so for `grad`; lane `l`'s clean batch loss goes to `loss[l]`.
/// Only lanes `0..batch.lanes` are in use; the others hold finite parking values, may be
/// computed or not, and are ignored. An implementation (vector instructions across
/// trajectories) must give **bit-identical** results to evaluating each lane alone with the
/// model's batch gradient, so that a trajectory's numbers never depend on which others share
/// its group (`model::lane_testing` checks this for every built-in model).
pub trait LaneKernel: Sync {
    /// Length of the scratch buffer [`LaneKernel::lane_gradients`] needs.
    fn lane_scratch_len(&self) -> usize;

    /// The group's batch gradients and clean losses (see the trait). `scratch` has length at
    /// least [`LaneKernel::lane_scratch_len`]. Allocates nothing.
    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    );
}

/// A one-sample model whose group gradient needs no buffers, so that the engine can hold a
/// whole group (parameters, gradient, optimizer buffers) in vector registers across steps.
pub trait SmallLaneKernel: Sync {
    /// Whether this instance offers it (e.g. only with one sample); when `false`,
    /// [`SmallLaneKernel::small_lane_gradient`] is never called.
    fn offers_small_lanes(&self) -> bool;

    /// The full-batch group gradient with the group held in values, where `D` is the number
    /// of parameters: `theta[k]` is coordinate `k` of every lane, `shift` the label shift of
    /// the sample (zero without label noise). Writes the gradient into `grad` and returns the
    /// lanes' clean losses, bit-identical to the model's batch gradient on each lane alone.
    fn small_lane_gradient<const D: usize>(
        &self,
        theta: &[Lanes; D],
        shift: Lanes,
        grad: &mut [Lanes; D],
    ) -> Lanes;
}
