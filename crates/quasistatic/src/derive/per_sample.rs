//! Third-order contractions on an interpolating manifold from per-sample Hessian-vector
//! products of the outputs (the low-rank path's fast route; docs/theory.md section 2).
//!
//! With `L = (1/n) sum_i 1/2 (f_i - y_i)^2`, `g_i = grad f_i`, `H_i = hess f_i` and residuals
//! `r_i = 0` (an interpolating manifold),
//!
//! `D3L[a, b, .] = (1/n) sum_i [(g_i . a) H_i b + (g_i . b) H_i a + (a^T H_i b) g_i]`.
//!
//! The last term lies in `span{g_i}`, the normal space `N`, and the drift only ever uses a
//! contraction through a (preconditioned) tangent projection that annihilates `N`
//! (`P_T g_i = 0`; `D^{1/2} P~_T D^{1/2} g_i = 0` since `D^{1/2} g_i` is in `range H~`). So, up
//! to a normal vector:
//!
//! - `D3L[Z S~ Z^T] = (2/n) sum_i H_i (Z S~ Z^T g_i)`: with `W = (J Z)^T` (`r x n`, column `i`
//!   is `Z^T g_i`; `J Z = sqrt(n) U Lambda^{1/2}` from the Gram eigenvectors `U`, no product
//!   with `J`), the directions are the columns of `Z (S~ W)` (`d x n`, one GEMM for all `S~`),
//!   then one per-sample Hessian-vector product per sample and per `S~`;
//!   When `S~ = c I` (the leading-order equilibrium of noise proportional to `H`) and `r = n`,
//!   `Z Z^T g_i = D g_i` and the direction is `c D g_i`, no product at all;
//! - `sum_k w_k D3L[c_k, z_k, .] = (1/n) sum_i H_i u_i` with
//!   `u_i = Z diag(w) C^T g_i + C diag(w) Z^T g_i` (two GEMMs), one product per sample.
//!
//! Cost: `O(n r d)` in GEMMs plus `n` per-sample Hessian-vector products per contraction
//! (each about the cost of one per-sample gradient in [`num_dual::Dual64`]), against one
//! full-batch second-order dual gradient per normal direction (`O(r n d)` model evaluations)
//! on the reference route ([`super::third_order`]). Also dropped: the terms multiplied by
//! residuals, `(1/n) sum_i r_i D3 f_i[a, b, .]`, as the low-rank geometry drops `r_i H_i`
//! from `H`.
//!
//! **Determinism.** The per-sample products are summed with
//! [`super::third_order::ordered_block_sums`]: bit-identical for any number of threads.

use nalgebra::DMatrix;

use super::third_order::ordered_block_sums;
use crate::linalg;
use crate::manifold::Geometry;
use crate::model::derivatives::SampleHvpWorkspace;
use crate::model::Model;

/// Relative distance to `c I` below which an `S~` counts as the scaled identity in
/// [`contractions`] (round-off of `eta kappa lambda_i / (2 lambda_i)`).
pub const SCALED_TOLERANCE: f64 = 1e-13;

/// For each symmetric `S~` in `ss` (`r x r`), a vector equal to `D3L(phi)[Z S~ Z^T]` up to a
/// vector in `span{grad f_i}` (the normal space) and terms multiplied by the residuals; and,
/// when `pairs = Some((C, w))` (`C` `d x r`, `w` length `r`), the same for
/// `sum_k w_k D3L(phi)[c_k, z_k, .]` (see the module docs). `jt` is `J^T` (`d x n`, columns
/// `grad f_i(phi)`), `z` is `Z = D^{1/2} V` (`d x r`) for the `geometry` of the low-rank path,
/// whose sample basis gives `J Z = sqrt(n) U Lambda^{1/2}` without a product with `J`.
/// Bit-identical for any number of threads.
pub fn contractions<M: Model>(
    model: &M,
    phi: &[f64],
    jt: &DMatrix<f64>,
    geometry: &Geometry,
    z: &DMatrix<f64>,
    ss: &[&DMatrix<f64>],
    pairs: Option<(&DMatrix<f64>, &[f64])>,
) -> (Vec<Vec<f64>>, Option<Vec<f64>>) {
    let d = phi.len();
    let n = jt.ncols();
    let r = z.ncols();
    // W^T = J Z (n x r): row i is (Z^T g_i)^T.
    let jz = match &geometry.sample_basis {
        Some(u) => {
            let mut jz = u.clone();
            for (mut col, l) in jz.column_iter_mut().zip(&geometry.curvatures) {
                col *= (n as f64 * l).sqrt();
            }
            jz
        }
        None => linalg::tr_mul(jt, z),
    };
    // A multiple c I of the identity (the leading-order S~ of noise proportional to H) when
    // the normal space is spanned by the g_i (r = n): Z Z^T g_i = D g_i (D = I without a
    // metric), so the direction is c D g_i, no product with Z.
    // Recognised to round-off (entries within SCALED_TOLERANCE of c I relative to c), the
    // mean of the diagonal taken as c.
    let scaled = |s: &DMatrix<f64>| -> Option<f64> {
        if r != n || r == 0 {
            return None;
        }
        let c = s.diagonal().mean();
        let within = (0..r).all(|j| {
            (0..r).all(|i| {
                let want = if i == j { c } else { 0.0 };
                (s[(i, j)] - want).abs() <= SCALED_TOLERANCE * c.abs()
            })
        });
        (within && c != 0.0).then_some(c)
    };
    let shortcuts: Vec<Option<f64>> = ss.iter().map(|s| scaled(s)).collect();
    let general: Vec<usize> = (0..ss.len()).filter(|&k| shortcuts[k].is_none()).collect();
    // The other directions by one product: Z [S~_1 W | S~_2 W | ...] (d x (k n)).
    let mut a = DMatrix::zeros(r, general.len() * n);
    for (slot, &k) in general.iter().enumerate() {
        a.columns_mut(slot * n, n)
            .copy_from(&linalg::mul_tr(ss[k], &jz));
    }
    let stacked = linalg::mul(z, &a);
    let metric_squared: Vec<f64> = match &geometry.metric {
        None => vec![1.0; d],
        Some(m) => m.iter().map(|x| x * x).collect(),
    };
    let mut dirs = vec![stacked];
    let mut factors = vec![2.0 / n as f64; ss.len()];
    if let Some((c, w)) = pairs {
        let jc = linalg::tr_mul(jt, c); // n x r, row i = (C^T g_i)^T
        let mut wjc = jc.transpose(); // r x n
        let mut wjz = jz.transpose();
        for (k, &wk) in w.iter().enumerate() {
            wjc.row_mut(k).scale_mut(wk);
            wjz.row_mut(k).scale_mut(wk);
        }
        dirs.push(linalg::mul(z, &wjc) + linalg::mul(c, &wjz));
        factors.push(1.0 / n as f64);
    }
    // Slot of each S~ among the stacked directions (None: a scaled identity).
    let slots: Vec<Option<usize>> = (0..ss.len())
        .map(|k| general.iter().position(|&g| g == k))
        .collect();
    let terms: Vec<usize> = (0..n).collect();
    let mut sums = ordered_block_sums(
        d,
        factors.len(),
        &terms,
        || (SampleHvpWorkspace::new(model), vec![0.0; d]),
        |i, (ws, buffer), acc| {
            for (s, (a, &f)) in acc.iter_mut().zip(&factors).enumerate() {
                let direction: &[f64] = if s < ss.len() {
                    match (slots[s], shortcuts[s]) {
                        (Some(slot), _) => {
                            let k = slot * n + i;
                            &dirs[0].as_slice()[k * d..(k + 1) * d]
                        }
                        (None, c) => {
                            let c = c.expect("a scaled identity");
                            let g = &jt.as_slice()[i * d..(i + 1) * d];
                            for ((b, gk), mk) in buffer.iter_mut().zip(g).zip(&metric_squared) {
                                *b = c * mk * gk;
                            }
                            buffer
                        }
                    }
                } else {
                    &dirs[1].as_slice()[i * d..(i + 1) * d]
                };
                for (x, h) in a.iter_mut().zip(ws.apply(model, phi, i, direction)) {
                    *x += f * h;
                }
            }
        },
    );
    let cross = pairs.map(|_| sums.pop().expect("the pair sum"));
    (sums, cross)
}
