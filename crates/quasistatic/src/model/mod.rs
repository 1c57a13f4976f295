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

pub mod deep_linear;
pub mod derivatives;
pub mod diagonal;
pub mod expression;
#[cfg(test)]
pub(crate) mod lane_testing;
pub mod linear2;
pub mod matrix_sensing;
pub mod mlp;
pub mod product;
pub mod two_layer;
pub mod valley;

use num_dual::DualNum;

use crate::engine::LANES;
pub use crate::engine::{gather_lane, scatter_lane, Batch, LaneBatch, LaneSlots};
pub use crate::engine::{LaneKernel, SmallLaneKernel};

pub use deep_linear::{DeepLinear, DeepLinearStructure};
pub use diagonal::DiagonalNetwork;
pub use expression::ExpressionModel;
pub use linear2::LinearTwoLayer;
pub use matrix_sensing::{MatrixSensing, MatrixSensingSpec};
pub use mlp::{Mlp, MlpActivation};
pub use product::ProductModel;
pub use two_layer::{Activation, TwoLayerNetwork};
pub use valley::{Profile, Valley};

/// The scalar types a model is evaluated with: `f64` and every num-dual number over `f64`.
pub trait Scalar: DualNum<Primitive = f64> + Copy + Send + Sync {}
impl<T: DualNum<Primitive = f64> + Copy + Send + Sync> Scalar for T {}

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

    /// Whether the loss is the regression loss `(1/n) sum_i 1/2 (f_i - y_i)^2` of per-sample
    /// outputs (default `true`: every built-in model). `false` for a model given by its loss
    /// alone ([`ExpressionModel`] with a `loss` formula): it has one "sample" whose output is
    /// the loss itself and whose [`Model::batch_gradient`] is `grad L`, so label and mini-batch
    /// noise, the per-sample read-outs and the low-rank (Jacobian) geometry do not apply.
    fn is_regression(&self) -> bool {
        true
    }

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

    /// The engine's group kernel, where the model has one (see [`LaneKernel`]); default
    /// `None`: the engine evaluates a group lane by lane with [`Model::batch_gradient`]
    /// ([`lane_gradients_by_lane`]), with the same results. A wrapper whose gradient is its
    /// inner model's forwards the inner model's kernel.
    fn lane_kernel(&self) -> Option<&dyn LaneKernel> {
        None
    }

    /// Call `visitor` with the model's capability: [`ModelVisitor::small`] for a model whose
    /// groups can be held in registers ([`SmallLaneKernel`]; the valley and the scalar product
    /// model override this), else [`ModelVisitor::general`] (the default). This is how the
    /// engine picks its register step without knowing the model's type.
    fn visit<V: ModelVisitor>(&self, visitor: V) -> V::Output
    where
        Self: Sized,
    {
        visitor.general(self)
    }

    /// A parameter vector on (or near) the manifold of minima that makes a good default start.
    fn default_start(&self) -> Vec<f64>;

    /// Mean squared test error `(1/n_test) sum (f(x) - y)^2` on the model's held-out data,
    /// where it has one.
    fn test_error(&self, _theta: &[f64]) -> Option<f64> {
        None
    }

    /// End-to-end linear weights of a linear network (product, diagonal, two-layer linear,
    /// deep linear; the entries of `U V^T` for matrix sensing):
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

/// What the engine does with a model, by capability (see [`Model::visit`]).
pub trait ModelVisitor {
    /// The result.
    type Output;
    /// A model with no register step.
    fn general<M: Model>(self, model: &M) -> Self::Output;
    /// A model that offers a register step (when [`SmallLaneKernel::offers_small_lanes`]).
    fn small<M: Model + SmallLaneKernel>(self, model: &M) -> Self::Output;
}

/// A group's batch gradients: the model's [`LaneKernel`] where it has one, else
/// [`lane_gradients_by_lane`]. `scratch` has length at least [`lane_scratch_len`].
#[inline]
pub fn lane_gradients<M: Model + ?Sized>(
    model: &M,
    theta: &[f64],
    batch: LaneBatch<'_>,
    grad: &mut [f64],
    scratch: &mut [f64],
    loss: &mut [f64; LANES],
) {
    match model.lane_kernel() {
        Some(k) => k.lane_gradients(theta, batch, grad, scratch, loss),
        None => lane_gradients_by_lane(model, theta, batch, grad, scratch, loss),
    }
}

/// Scratch length of [`lane_gradients`]: the kernel's, else [`by_lane_scratch_len`].
pub fn lane_scratch_len<M: Model + ?Sized>(model: &M) -> usize {
    model
        .lane_kernel()
        .map_or_else(|| by_lane_scratch_len(model), |k| k.lane_scratch_len())
}

/// Scratch length of [`lane_gradients_by_lane`]: `2 d + n + ` [`Model::scratch_len`].
pub fn by_lane_scratch_len<M: Model + ?Sized>(model: &M) -> usize {
    2 * model.dim() + model.n_samples() + model.scratch_len()
}

/// A group's batch gradients lane by lane with [`Model::batch_gradient`]: the reference every
/// [`LaneKernel`] must equal bit for bit, and the engine's path for models without one
/// (kernels also use it for the cases they do not vectorise). `scratch` is split into the lane's parameters
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

/// The batch of a model whose output is linear in its data, `f_i = w . x_i` for end-to-end
/// weights `w` (the linear networks, matrix sensing with `x_i` the measurement `A_i`): writes
/// `c = (1/|B|) sum_k (f_i - y_i - shift_k) x_i` (so that `grad L = (dw/dtheta)^T c`) and returns
/// the clean batch loss `(1/|B|) sum_k 1/2 (f_i - y_i)^2`.
pub(crate) fn linear_readout<D: Scalar>(
    train: &crate::data::Dataset,
    w: &[D],
    batch: Batch<'_>,
    c: &mut [D],
) -> D {
    for cj in c.iter_mut() {
        *cj = D::zero();
    }
    let b = batch.len(train.n);
    let mut loss = D::zero();
    for k in 0..b {
        let i = batch.sample(k);
        let x = train.row(i);
        let mut f = D::zero();
        for (&wj, &xj) in w.iter().zip(x) {
            f += wj * xj;
        }
        let r = f - train.y[i];
        loss += r * r * 0.5;
        let weight = r - batch.shift_at(k);
        for (cj, &xj) in c.iter_mut().zip(x) {
            *cj += weight * xj;
        }
    }
    let inv = 1.0 / b as f64;
    for cj in c.iter_mut() {
        *cj *= inv;
    }
    loss * inv
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
    /// [`ExpressionModel`].
    Expression(ExpressionModel),
    /// [`Mlp`].
    Mlp(Mlp),
    /// [`DeepLinear`] (dense or diagonal).
    DeepLinear(DeepLinear),
    /// [`MatrixSensing`].
    MatrixSensing(MatrixSensing),
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
            $crate::model::AnyModel::Expression($m) => $body,
            $crate::model::AnyModel::Mlp($m) => $body,
            $crate::model::AnyModel::DeepLinear($m) => $body,
            $crate::model::AnyModel::MatrixSensing($m) => $body,
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

    /// See [`Model::is_regression`].
    pub fn is_regression(&self) -> bool {
        with_model!(self, m => m.is_regression())
    }

    /// Default start.
    pub fn default_start(&self) -> Vec<f64> {
        with_model!(self, m => m.default_start())
    }
}
