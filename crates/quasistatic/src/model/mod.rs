//! Models with a manifold of minima.
//!
//! Every model is a regression model: `n` samples with targets `y_i`, per-sample outputs
//! `f_i(theta)`, and the loss `L(theta) = (1/n) sum_i 1/2 (f_i(theta) - y_i)^2`.
//! (The valley is written in this form too, with one "sample" per normal direction.)
//!
//! A model writes its output and gradient **once**, generic over the scalar type
//! `D: Scalar` (any num-dual number over `f64`). Evaluated with `f64` that is the fast
//! gradient; with [`num_dual::Dual64`] at `theta + e v` the gradient's `eps` part is the
//! Hessian-vector product `H v`; with [`num_dual::HyperDual64`] at
//! `theta + e1 v + e2 w` the gradient's `eps1eps2` part is the third-order contraction
//! `D3L[v, w, .]` (see [`derivatives`]).

pub mod derivatives;
pub mod diagonal;
pub mod linear2;
pub mod product;
pub mod two_layer;
pub mod valley;

use num_dual::DualNum;

use crate::lanes::Lanes;
use crate::simulate::LANES;

pub use diagonal::DiagonalNetwork;
pub use linear2::LinearTwoLayer;
pub use product::ProductModel;
pub use two_layer::{Activation, TwoLayerNetwork};
pub use valley::{Profile, Valley};

/// The scalar types a model is evaluated with: `f64` and every num-dual number over `f64`.
pub trait Scalar: DualNum<Primitive = f64> + Copy + Send + Sync {}
impl<T: DualNum<Primitive = f64> + Copy + Send + Sync> Scalar for T {}

/// Which samples enter a gradient, and by how much their labels are shifted.
///
/// The batch gradient is `g = (1/|B|) sum_{k} (f_{i_k} - y_{i_k} - shift_k) grad f_{i_k}`,
/// and the returned loss is the clean one, `(1/|B|) sum_k 1/2 (f_{i_k} - y_{i_k})^2`.
/// `shift` models fresh label noise; `indices` a mini-batch.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Sample indices; `None` means all samples `0..n` in order.
    pub indices: Option<&'a [usize]>,
    /// Label shifts, one per batch position (`len == batch size`); `None` means zero.
    pub shift: Option<&'a [f64]>,
}

impl<'a> Batch<'a> {
    /// All samples, clean labels: the full-batch gradient of `L`.
    pub const FULL: Batch<'static> = Batch {
        indices: None,
        shift: None,
    };

    /// Number of samples in the batch, given the model's `n`.
    #[inline]
    pub fn len(&self, n: usize) -> usize {
        self.indices.map_or(n, |ix| ix.len())
    }

    /// Whether the batch has no sample.
    #[inline]
    pub fn is_empty(&self, n: usize) -> bool {
        self.len(n) == 0
    }

    /// Sample index at batch position `k`.
    #[inline]
    pub fn sample(&self, k: usize) -> usize {
        self.indices.map_or(k, |ix| ix[k])
    }

    /// Label shift at batch position `k`.
    #[inline]
    pub fn shift_at(&self, k: usize) -> f64 {
        self.shift.map_or(0.0, |s| s[k])
    }
}

/// A regression model with (typically) a manifold of minima.
///
/// Implementors write [`Model::output_and_grad`] generically; [`Model::batch_gradient`] has a
/// default built on it and may be overridden by a fused, faster version (which must agree with
/// the default; the test-suite checks this for every model).
pub trait Model: Send + Sync {
    /// Short name used in outputs (`"valley"`, `"diagonal"`, ...).
    fn name(&self) -> &'static str;

    /// Number of parameters `d`.
    fn dim(&self) -> usize;

    /// Number of training samples `n`.
    fn n_samples(&self) -> usize;

    /// Training targets `y_i` (length `n`).
    fn targets(&self) -> &[f64];

    /// Output `f_i(theta)` of sample `i`; writes `grad f_i(theta)` into `grad_f` (length `d`).
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D;

    /// Length of the scratch buffer [`Model::batch_gradient`] needs (default: `d`).
    fn scratch_len(&self) -> usize {
        self.dim()
    }

    /// Batch gradient and clean batch loss (see [`Batch`]); writes the gradient into `grad`.
    /// `scratch` has length at least [`Model::scratch_len`]. Allocates nothing.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let n = self.n_samples();
        let b = batch.len(n);
        let y = self.targets();
        let d = self.dim();
        let gf = &mut scratch[..d];
        for g in grad.iter_mut() {
            *g = D::zero();
        }
        let mut loss = D::zero();
        for k in 0..b {
            let i = batch.sample(k);
            let r = self.output_and_grad(theta, i, gf) - y[i];
            loss += r * r * 0.5;
            let w = r - batch.shift_at(k);
            for (g, &df) in grad.iter_mut().zip(gf.iter()) {
                *g += w * df;
            }
        }
        let inv = 1.0 / b as f64;
        for g in grad.iter_mut() {
            *g *= inv;
        }
        loss * inv
    }

    /// Scratch length [`Model::lane_gradients`] needs (default: `2 d + n + `
    /// [`Model::scratch_len`], what [`lane_gradients_by_lane`] uses).
    fn lane_scratch_len(&self) -> usize {
        2 * self.dim() + self.n_samples() + self.scratch_len()
    }

    /// Batch gradients of the [`LANES`] trajectories of a group at once, as the ensemble engine
    /// advances them together. Layout is coordinate-major ("structure of arrays"): coordinate
    /// `k` of lane `l` is `theta[k * LANES + l]`, and so for `grad`; lane `l`'s clean batch
    /// loss goes to `loss[l]`. Only lanes `0..batch.lanes` are in use; the others hold finite
    /// parking values, may be computed or not, and are ignored. `scratch` has length at least
    /// [`Model::lane_scratch_len`].
    ///
    /// The default ([`lane_gradients_by_lane`]) calls [`Model::batch_gradient`] lane by lane.
    /// An override that computes the lanes together (vector instructions across trajectories)
    /// must give **bit-identical** results to the default, so that a trajectory's numbers never
    /// depend on which others share its group; the test-suite checks this for every model.
    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        lane_gradients_by_lane(self, theta, batch, grad, scratch, loss);
    }

    /// Whether [`Model::small_lane_gradient`] is offered (default `false`): a model with one
    /// sample whose group gradient needs no buffers, so that the engine can keep a whole
    /// group in registers across steps.
    fn offers_small_lanes(&self) -> bool {
        false
    }

    /// [`Model::lane_gradients`] with the group held in values rather than in a buffer, for a
    /// one-sample model (full batch) offering it ([`Model::offers_small_lanes`]), where
    /// `D == self.dim()`: `theta[k]` is coordinate `k` of every lane, `shift` the label shift of
    /// the sample (zero without label noise). Writes the gradient into `grad` and returns the
    /// lanes' clean losses, bit-identical to [`Model::lane_gradients`]. Only called when
    /// [`Model::offers_small_lanes`] is `true`.
    fn small_lane_gradient<const D: usize>(
        &self,
        _theta: &[Lanes; D],
        _shift: Lanes,
        _grad: &mut [Lanes; D],
    ) -> Lanes {
        panic!("small_lane_gradient is only called when offers_small_lanes() is true")
    }

    /// A parameter vector on (or near) the manifold of minima that makes a good default start.
    fn default_start(&self) -> Vec<f64>;

    /// Mean squared test error `(1/n_test) sum (f(x) - y)^2` on the model's held-out data,
    /// where it has one.
    fn test_error(&self, _theta: &[f64]) -> Option<f64> {
        None
    }

    /// End-to-end linear weights of a linear network (product, diagonal, two-layer linear):
    /// written into `out` and `Some(len)` returned; `None` for non-linear models.
    fn end_to_end_weights(&self, _theta: &[f64]) -> Option<Vec<f64>> {
        None
    }

    /// Teacher's end-to-end weights, where the data came from a linear teacher.
    fn teacher_weights(&self) -> Option<&[f64]> {
        None
    }

    /// Manifold coordinates where the manifold is known in closed form (the valley's `y`).
    fn manifold_coordinates(&self, _theta: &[f64]) -> Option<Vec<f64>> {
        None
    }

    /// Euclidean distance to the manifold of minima where known in closed form.
    fn distance_to_manifold(&self, _theta: &[f64]) -> Option<f64> {
        None
    }

    /// The minimum of the loss, `L_min` (0 for models that interpolate), where known.
    fn loss_min(&self) -> Option<f64> {
        None
    }
}

/// The batches of a group of trajectories (see [`Model::lane_gradients`]).
#[derive(Clone, Copy, Debug)]
pub struct LaneBatch<'a> {
    /// Lanes in use (`1..=LANES`).
    pub lanes: usize,
    /// Batch size `B` (the same for every lane).
    pub size: usize,
    /// Per-lane sample indices, lane `l`'s at `indices[l * stride..l * stride + size]`;
    /// `None`: every lane uses all samples `0..n` in order.
    pub indices: Option<&'a [usize]>,
    /// Stride of `indices` between lanes.
    pub stride: usize,
    /// Label shifts, coordinate-major: batch position `k` of lane `l` at `shift[k * LANES + l]`;
    /// `None` means zero.
    pub shift: Option<&'a [f64]>,
}

impl<'a> LaneBatch<'a> {
    /// Full batches of `n` samples, clean labels, for `lanes` lanes.
    pub fn full(lanes: usize, n: usize) -> Self {
        Self {
            lanes,
            size: n,
            indices: None,
            stride: 0,
            shift: None,
        }
    }

    /// Shifts of batch position `k` for all lanes (zeros without label noise).
    #[inline(always)]
    pub fn shifts_at(&self, k: usize) -> Lanes {
        match self.shift {
            None => Lanes::ZERO,
            Some(s) => Lanes::load(&s[k * LANES..(k + 1) * LANES]),
        }
    }

    /// Lane `l`'s batch as a [`Batch`]; its shifts are copied into `shift_buf` (length `>= size`).
    pub fn lane<'b>(&self, l: usize, shift_buf: &'b mut [f64]) -> Batch<'b>
    where
        'a: 'b,
    {
        let shift = self.shift.map(|s| {
            for (k, o) in shift_buf[..self.size].iter_mut().enumerate() {
                *o = s[k * LANES + l];
            }
            &shift_buf[..self.size]
        });
        Batch {
            indices: self
                .indices
                .map(|ix| &ix[l * self.stride..l * self.stride + self.size]),
            shift,
        }
    }
}

/// Where a lane kernel reads and writes coordinate `k` of all lanes of a group: a
/// coordinate-major `[f64]` buffer (coordinate `k` of lane `l` at `k * LANES + l`) or `[Lanes]`
/// values. Lets one kernel serve [`Model::lane_gradients`] and [`Model::small_lane_gradient`].
pub trait LaneSlots {
    /// Coordinate `k` of every lane.
    fn get_lanes(&self, k: usize) -> Lanes;
    /// Set coordinate `k` of every lane.
    fn set_lanes(&mut self, k: usize, v: Lanes);
}

impl LaneSlots for [f64] {
    #[inline(always)]
    fn get_lanes(&self, k: usize) -> Lanes {
        Lanes::load(&self[k * LANES..(k + 1) * LANES])
    }
    #[inline(always)]
    fn set_lanes(&mut self, k: usize, v: Lanes) {
        v.store(&mut self[k * LANES..(k + 1) * LANES]);
    }
}

impl LaneSlots for [Lanes] {
    #[inline(always)]
    fn get_lanes(&self, k: usize) -> Lanes {
        self[k]
    }
    #[inline(always)]
    fn set_lanes(&mut self, k: usize, v: Lanes) {
        self[k] = v;
    }
}

/// Copy lane `l` of a coordinate-major group vector into `out` (length `d`).
#[inline]
pub fn gather_lane(group: &[f64], l: usize, out: &mut [f64]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = group[k * LANES + l];
    }
}

/// Write `v` (length `d`) into lane `l` of a coordinate-major group vector.
#[inline]
pub fn scatter_lane(v: &[f64], l: usize, group: &mut [f64]) {
    for (k, &x) in v.iter().enumerate() {
        group[k * LANES + l] = x;
    }
}

/// [`Model::lane_gradients`]'s default: [`Model::batch_gradient`] lane by lane (overrides use
/// it for the cases they do not vectorise). `scratch` is split into the lane's parameters
/// (`d`), its gradient (`d`), its label shifts (`n`) and the model's scratch.
pub fn lane_gradients_by_lane<M: Model + ?Sized>(
    model: &M,
    theta: &[f64],
    batch: LaneBatch<'_>,
    grad: &mut [f64],
    scratch: &mut [f64],
    loss: &mut [f64; LANES],
) {
    let d = model.dim();
    let n = model.n_samples();
    let (th, rest) = scratch.split_at_mut(d);
    let (g, rest) = rest.split_at_mut(d);
    let (shift, ms) = rest.split_at_mut(n);
    for (l, lo) in loss.iter_mut().enumerate().take(batch.lanes) {
        gather_lane(theta, l, th);
        *lo = model.batch_gradient(th, batch.lane(l, shift), g, ms);
        scatter_lane(g, l, grad);
    }
}

/// Any built-in model: the registry used by configuration-driven runs. Add a model by adding
/// a variant here and a line in [`with_model!`](crate::with_model).
#[derive(Clone, Debug)]
pub enum AnyModel {
    /// [`Valley`] (planar or N-dimensional).
    Valley(Valley),
    /// [`ProductModel`].
    Product(ProductModel),
    /// [`DiagonalNetwork`].
    Diagonal(DiagonalNetwork),
    /// [`TwoLayerNetwork`].
    TwoLayer(TwoLayerNetwork),
    /// [`LinearTwoLayer`].
    Linear2(LinearTwoLayer),
}

/// Run `$body` with `$m` bound to the concrete model inside an [`AnyModel`], so that generic
/// code is monomorphised per model (no dynamic dispatch in hot loops).
#[macro_export]
macro_rules! with_model {
    ($any:expr, $m:ident => $body:expr) => {
        match $any {
            $crate::model::AnyModel::Valley($m) => $body,
            $crate::model::AnyModel::Product($m) => $body,
            $crate::model::AnyModel::Diagonal($m) => $body,
            $crate::model::AnyModel::TwoLayer($m) => $body,
            $crate::model::AnyModel::Linear2($m) => $body,
        }
    };
}

impl AnyModel {
    /// Number of parameters.
    pub fn dim(&self) -> usize {
        with_model!(self, m => m.dim())
    }

    /// Number of training samples.
    pub fn n_samples(&self) -> usize {
        with_model!(self, m => m.n_samples())
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        with_model!(self, m => m.name())
    }

    /// Default start.
    pub fn default_start(&self) -> Vec<f64> {
        with_model!(self, m => m.default_start())
    }
}
