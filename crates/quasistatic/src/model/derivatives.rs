//! Exact derivatives of the full-batch loss through the model's single generic gradient.
//!
//! - [`gradient`]: `grad L(theta)` with `f64`;
//! - [`hessian_vector_product`]: `H(theta) v`, the `eps` part of the gradient evaluated with
//!   [`Dual64`] at `theta + e v`;
//! - [`third_order`]: `D3L(theta)[v, w, .]`, the `eps1eps2` part of the gradient evaluated with
//!   [`HyperDual64`] at `theta + e1 v + e2 w`;
//! - [`third_order_diagonal`]: `D3L(theta)[v, v, .]`, the second-derivative part `v2` of the
//!   gradient evaluated with [`Dual2_64`] at `theta + e v` (one component fewer than
//!   [`HyperDual64`]: about 3/4 of the cost of [`third_order`] with `w = v`);
//! - [`hessian`]: the dense `d x d` Hessian from `d` Hessian-vector products (small models).
//!
//! The `*_with` variants and the workspaces reuse their buffers between calls (the scalar
//! vectors are `d` long: 2.4 MB of [`Dual2_64`] for `d = 10^5`).

use nalgebra::DMatrix;
use num_dual::{Dual2_64, Dual64, HyperDual64};
use rayon::prelude::*;

use super::{Batch, Model};

/// Full-batch loss `L(theta)`; writes `grad L(theta)` into `grad`.
pub fn gradient<M: Model>(model: &M, theta: &[f64], grad: &mut [f64]) -> f64 {
    let mut scratch = vec![0.0; model.scratch_len()];
    model.batch_gradient(theta, Batch::FULL, grad, &mut scratch)
}

/// Full-batch loss `L(theta)` alone.
pub fn loss<M: Model>(model: &M, theta: &[f64]) -> f64 {
    let mut grad = vec![0.0; model.dim()];
    gradient(model, theta, &mut grad)
}

/// Reusable buffers for [`hessian_vector_product`] (avoids allocating per call).
pub struct HvpWorkspace {
    theta: Vec<Dual64>,
    grad: Vec<Dual64>,
    scratch: Vec<Dual64>,
}

impl HvpWorkspace {
    /// Buffers sized for `model`.
    pub fn new<M: Model>(model: &M) -> Self {
        let d = model.dim();
        Self {
            theta: vec![Dual64::from(0.0); d],
            grad: vec![Dual64::from(0.0); d],
            scratch: vec![Dual64::from(0.0); model.scratch_len()],
        }
    }
}

/// Hessian-vector product `H(theta) v` of the full-batch loss, written into `out`.
pub fn hessian_vector_product<M: Model>(
    model: &M,
    theta: &[f64],
    v: &[f64],
    ws: &mut HvpWorkspace,
    out: &mut [f64],
) {
    for ((t, &x), &vi) in ws.theta.iter_mut().zip(theta).zip(v) {
        *t = Dual64::new(x, vi);
    }
    model.batch_gradient(&ws.theta, Batch::FULL, &mut ws.grad, &mut ws.scratch);
    for (o, g) in out.iter_mut().zip(&ws.grad) {
        *o = g.eps;
    }
}

/// Reusable buffers for per-sample Hessian-vector products `hess f_i(theta) x` of the outputs
/// ([`SampleHvpWorkspace::apply`]).
pub struct SampleHvpWorkspace {
    theta: Vec<Dual64>,
    grad: Vec<Dual64>,
    out: Vec<f64>,
}

impl SampleHvpWorkspace {
    /// Buffers sized for `model` (`2 d` [`Dual64`] and `d` `f64`).
    pub fn new<M: Model>(model: &M) -> Self {
        let d = model.dim();
        Self {
            theta: vec![Dual64::from(0.0); d],
            grad: vec![Dual64::from(0.0); d],
            out: vec![0.0; d],
        }
    }

    /// `hess f_i(theta) x` (length `d`): the `eps` part of `grad f_i` evaluated with
    /// [`Dual64`] at `theta + e x` (one per-sample gradient with dual numbers, `O(d)` for the
    /// built-in networks).
    pub fn apply<M: Model>(&mut self, model: &M, theta: &[f64], i: usize, x: &[f64]) -> &[f64] {
        for ((t, &th), &v) in self.theta.iter_mut().zip(theta).zip(x) {
            *t = Dual64::new(th, v);
        }
        model.output_and_grad(&self.theta, i, &mut self.grad);
        for (o, g) in self.out.iter_mut().zip(&self.grad) {
            *o = g.eps;
        }
        &self.out
    }
}

/// Reusable buffers for one full-batch gradient evaluated with the scalar `D` (used by
/// [`third_order_with`] with [`HyperDual64`] and [`third_order_diagonal`] with [`Dual2_64`]).
pub struct GradientWorkspace<D> {
    theta: Vec<D>,
    grad: Vec<D>,
    scratch: Vec<D>,
}

impl<D: super::Scalar> GradientWorkspace<D> {
    /// Buffers sized for `model` (`2 d + scratch_len` scalars).
    pub fn new<M: Model>(model: &M) -> Self {
        Self {
            theta: vec![D::zero(); model.dim()],
            grad: vec![D::zero(); model.dim()],
            scratch: vec![D::zero(); model.scratch_len()],
        }
    }
}

/// Third-order contraction `D3L(theta)[v, w, .]_a = sum_jk d_a d_j d_k L v_j w_k`,
/// written into `out` (allocates its buffers; see [`third_order_with`]).
pub fn third_order<M: Model>(model: &M, theta: &[f64], v: &[f64], w: &[f64], out: &mut [f64]) {
    third_order_with(model, theta, v, w, &mut GradientWorkspace::new(model), out);
}

/// [`third_order`] with caller-provided buffers: the `eps1eps2` part of `grad L` evaluated with
/// [`HyperDual64`] at `theta + e1 v + e2 w`.
pub fn third_order_with<M: Model>(
    model: &M,
    theta: &[f64],
    v: &[f64],
    w: &[f64],
    ws: &mut GradientWorkspace<HyperDual64>,
    out: &mut [f64],
) {
    for (((t, &x), &vi), &wi) in ws.theta.iter_mut().zip(theta).zip(v).zip(w) {
        *t = HyperDual64::new(x, vi, wi, 0.0);
    }
    model.batch_gradient(&ws.theta, Batch::FULL, &mut ws.grad, &mut ws.scratch);
    for (o, g) in out.iter_mut().zip(&ws.grad) {
        *o = g.eps1eps2;
    }
}

/// Diagonal third-order contraction `D3L(theta)[v, v, .]_a = sum_jk d_a d_j d_k L v_j v_k`,
/// written into `out`: the second-derivative part `v2` of `grad L` evaluated with
/// [`Dual2_64`] at `theta + e v` (`grad L(theta + e v) = grad L + e H v + e^2/2 D3L[v, v, .]
/// + ...`). Equal to [`third_order`] with `w = v` up to round-off, at about 3/4 of its cost.
pub fn third_order_diagonal<M: Model>(
    model: &M,
    theta: &[f64],
    v: &[f64],
    ws: &mut GradientWorkspace<Dual2_64>,
    out: &mut [f64],
) {
    for ((t, &x), &vi) in ws.theta.iter_mut().zip(theta).zip(v) {
        *t = Dual2_64::new(x, vi, 0.0);
    }
    model.batch_gradient(&ws.theta, Batch::FULL, &mut ws.grad, &mut ws.scratch);
    for (o, g) in out.iter_mut().zip(&ws.grad) {
        *o = g.v2;
    }
}

/// Dense Hessian `H(theta)` of the full-batch loss (symmetrised), from `d` Hessian-vector
/// products. Cost `d` gradients with dual numbers; meant for small `d`.
pub fn hessian<M: Model>(model: &M, theta: &[f64]) -> DMatrix<f64> {
    let d = model.dim();
    let mut ws = HvpWorkspace::new(model);
    let mut h = DMatrix::zeros(d, d);
    let mut e = vec![0.0; d];
    let mut col = vec![0.0; d];
    for j in 0..d {
        e[j] = 1.0;
        hessian_vector_product(model, theta, &e, &mut ws, &mut col);
        e[j] = 0.0;
        for i in 0..d {
            h[(i, j)] = col[i];
        }
    }
    (&h + h.transpose()) * 0.5
}

/// Jacobian of the per-sample outputs, `J[i, :] = grad f_i(theta)` (`n x d`), and the
/// residuals `r_i = f_i(theta) - y_i`: [`jacobian_transposed`], transposed.
pub fn jacobian<M: Model>(model: &M, theta: &[f64]) -> (DMatrix<f64>, Vec<f64>) {
    let (jt, r) = jacobian_transposed(model, theta);
    (crate::linalg::transpose(&jt), r)
}

/// The transposed Jacobian of the per-sample outputs, `J^T` (`d x n`, column `i` is
/// `grad f_i(theta)`), and the residuals `r_i = f_i(theta) - y_i`. The `n` per-sample gradients
/// run in parallel, each written straight into its column (the entries do not depend on the
/// number of threads).
pub fn jacobian_transposed<M: Model>(model: &M, theta: &[f64]) -> (DMatrix<f64>, Vec<f64>) {
    let (n, d) = (model.n_samples(), model.dim());
    let y = model.targets();
    let mut jt = DMatrix::zeros(d, n);
    let r: Vec<f64> = if d == 0 {
        vec![0.0; n]
    } else {
        jt.as_mut_slice()
            .par_chunks_mut(d)
            .enumerate()
            .map(|(i, col)| model.output_and_grad(theta, i, col) - y[i])
            .collect()
    };
    (jt, r)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Checks shared by every model's tests: the generic gradient against num-dual forward
    //! derivatives of the plain loss and against central finite differences.
    use super::*;
    use num_dual::HyperHyperDual64;

    /// Plain full-batch loss evaluated with any scalar, from per-sample outputs only (no use
    /// of the gradient code path beyond `f_i`).
    fn plain_loss<M: Model, D: crate::model::Scalar>(model: &M, theta: &[D]) -> D {
        let n = model.n_samples();
        let mut buf = vec![D::from(0.0); model.dim()];
        if !model.is_regression() {
            // The single output is the loss itself.
            return model.output_and_grad(theta, 0, &mut buf);
        }
        let mut l = D::from(0.0);
        for i in 0..n {
            let r = model.output_and_grad(theta, i, &mut buf) - model.targets()[i];
            l += r * r * 0.5;
        }
        l * (1.0 / n as f64)
    }

    fn close(a: f64, b: f64, tol: f64, what: &str) {
        let scale = 1.0 + a.abs().max(b.abs());
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}: {a} vs {b} (tol {tol} relative)"
        );
    }

    /// Check gradient, Hessian-vector product and third-order contraction of `model` at
    /// `theta` along `v`, `w`: (1) against forward-mode num-dual derivatives of the plain loss
    /// (exact, tolerance 1e-9 relative), (2) against central finite differences of the
    /// gradient / HVP (step 1e-5, tolerance 1e-5 relative), (3) the fused batch gradient
    /// against the default per-sample one.
    pub fn check_derivatives<M: Model>(model: &M, theta: &[f64], v: &[f64], w: &[f64]) {
        let d = model.dim();
        let mut g = vec![0.0; d];
        let l = gradient(model, theta, &mut g);
        close(l, plain_loss(model, theta), 1e-12, "loss");
        // A loss-only model: its one output's gradient is the loss gradient.
        if !model.is_regression() {
            let mut gf = vec![0.0; d];
            let f = model.output_and_grad(theta, 0, &mut gf);
            close(l, f, 1e-12, "loss vs output");
            for k in 0..d {
                close(g[k], gf[k], 1e-12, "gradient vs output gradient");
            }
        }
        // Default per-sample batch gradient equals the (possibly fused) override.
        if model.is_regression() {
            let n = model.n_samples();
            let y = model.targets();
            let mut gf = vec![0.0; d];
            let mut gd = vec![0.0; d];
            for (i, &yi) in y.iter().enumerate() {
                let r = model.output_and_grad(theta, i, &mut gf) - yi;
                for (g, &df) in gd.iter_mut().zip(&gf) {
                    *g += r * df / n as f64;
                }
            }
            for k in 0..d {
                close(g[k], gd[k], 1e-11, "fused vs per-sample gradient");
            }
            // Shifted subset batch.
            let idx: Vec<usize> = (0..n).step_by(2).collect();
            let shift: Vec<f64> = idx.iter().map(|&i| 0.3 - 0.1 * i as f64).collect();
            let batch = Batch {
                indices: Some(&idx),
                shift: Some(&shift),
            };
            let mut gb = vec![0.0; d];
            let mut scratch = vec![0.0; model.scratch_len()];
            let lb = model.batch_gradient(theta, batch, &mut gb, &mut scratch);
            let mut gbd = vec![0.0; d];
            let mut lbd = 0.0;
            for (k, &i) in idx.iter().enumerate() {
                let r = model.output_and_grad(theta, i, &mut gf) - y[i];
                lbd += 0.5 * r * r / idx.len() as f64;
                for c in 0..d {
                    gbd[c] += (r - shift[k]) * gf[c] / idx.len() as f64;
                }
            }
            close(lb, lbd, 1e-11, "batch loss");
            for c in 0..d {
                close(gb[c], gbd[c], 1e-11, "batch gradient");
            }
        }
        // (1) forward-mode derivatives of the plain loss.
        let mut hv = vec![0.0; d];
        let mut ws = HvpWorkspace::new(model);
        hessian_vector_product(model, theta, v, &mut ws, &mut hv);
        let mut t3 = vec![0.0; d];
        third_order(model, theta, v, w, &mut t3);
        // The Dual2 diagonal contraction equals the HyperDual one with w = v.
        {
            let (mut vv, mut vv2) = (vec![0.0; d], vec![0.0; d]);
            third_order(model, theta, v, v, &mut vv);
            third_order_diagonal(
                model,
                theta,
                v,
                &mut GradientWorkspace::new(model),
                &mut vv2,
            );
            for k in 0..d {
                close(vv2[k], vv[k], 1e-12, "D3L[v, v] Dual2 vs HyperDual");
            }
        }
        for k in 0..d {
            // dL/dtheta_k
            let th: Vec<Dual64> = (0..d)
                .map(|c| Dual64::new(theta[c], if c == k { 1.0 } else { 0.0 }))
                .collect();
            close(g[k], plain_loss(model, &th).eps, 1e-9, "gradient vs Dual64");
            // (H v)_k = d^2 L / ds dt at theta + s v + t e_k
            let th: Vec<HyperDual64> = (0..d)
                .map(|c| HyperDual64::new(theta[c], v[c], if c == k { 1.0 } else { 0.0 }, 0.0))
                .collect();
            close(
                hv[k],
                plain_loss(model, &th).eps1eps2,
                1e-9,
                "HVP vs HyperDual64",
            );
            // D3L[v, w, e_k]
            let th: Vec<HyperHyperDual64> = (0..d)
                .map(|c| {
                    HyperHyperDual64::new(
                        theta[c],
                        v[c],
                        w[c],
                        if c == k { 1.0 } else { 0.0 },
                        0.0,
                        0.0,
                        0.0,
                        0.0,
                    )
                })
                .collect();
            close(
                t3[k],
                plain_loss(model, &th).eps1eps2eps3,
                1e-9,
                "D3L vs HyperHyperDual64",
            );
        }
        // (2) finite differences: H v = (g(theta + h v) - g(theta - h v)) / 2h, and
        // D3L[v, w] = (Hw(theta + h v) - Hw(theta - h v)) / 2h.
        let h = 1e-5;
        let plus: Vec<f64> = (0..d).map(|c| theta[c] + h * v[c]).collect();
        let minus: Vec<f64> = (0..d).map(|c| theta[c] - h * v[c]).collect();
        let (mut gp, mut gm) = (vec![0.0; d], vec![0.0; d]);
        gradient(model, &plus, &mut gp);
        gradient(model, &minus, &mut gm);
        let (mut hwp, mut hwm) = (vec![0.0; d], vec![0.0; d]);
        hessian_vector_product(model, &plus, w, &mut ws, &mut hwp);
        hessian_vector_product(model, &minus, w, &mut ws, &mut hwm);
        for k in 0..d {
            close(
                hv[k],
                (gp[k] - gm[k]) / (2.0 * h),
                1e-5,
                "HVP vs finite differences",
            );
            close(
                t3[k],
                (hwp[k] - hwm[k]) / (2.0 * h),
                1e-5,
                "D3L vs finite differences",
            );
        }
        // Finite difference of the loss itself along v.
        let lp = gradient(model, &plus, &mut gp);
        let lm = gradient(model, &minus, &mut gm);
        let gv: f64 = (0..d).map(|c| g[c] * v[c]).sum();
        close(
            gv,
            (lp - lm) / (2.0 * h),
            1e-6,
            "gradient vs finite differences",
        );
    }
}
