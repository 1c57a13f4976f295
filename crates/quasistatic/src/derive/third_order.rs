//! Third-order contractions `D3L[A]_a = sum_jk d_a d_j d_k L A_jk` for low-rank symmetric `A`
//! (THEORY.md section 2), one [`HyperDual64`](num_dual::HyperDual64) gradient per rank-one term,
//! in parallel over the terms (rayon).
//!
//! - `D3L[Z S Z^T]` with `S` symmetric (`k x k`): eigen-decompose `S = U diag(s) U^T`, then
//!   `D3L[Z S Z^T] = sum_k s_k D3L[z_k, z_k, .]` with `z_k = Z u_k`;
//! - `D3L[sym(sum_k w_k a_k b_k^T)] = sum_k w_k D3L[a_k, b_k, .]` (the form is symmetric in
//!   its first two slots).

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::model::{derivatives, Model};

/// `sum_k w_k D3L(theta)[a_k, b_k, .]` over the columns `a_k`, `b_k` of `a`, `b` (`d x k`);
/// terms with `w_k = 0` are skipped.
pub fn contract_pairs<M: Model>(
    model: &M,
    theta: &[f64],
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    w: &[f64],
) -> Vec<f64> {
    let d = model.dim();
    (0..w.len())
        .into_par_iter()
        .filter(|&k| w[k] != 0.0)
        .fold(
            || (vec![0.0; d], vec![0.0; d]),
            |(mut acc, mut out), k| {
                let ak: Vec<f64> = a.column(k).iter().copied().collect();
                let bk: Vec<f64> = b.column(k).iter().copied().collect();
                derivatives::third_order(model, theta, &ak, &bk, &mut out);
                for (s, o) in acc.iter_mut().zip(&out) {
                    *s += w[k] * o;
                }
                (acc, out)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(
            || vec![0.0; d],
            |mut x, y| {
                for (a, b) in x.iter_mut().zip(&y) {
                    *a += b;
                }
                x
            },
        )
}

/// `D3L(theta)[Z S Z^T]` for symmetric `S` (`k x k`) and `Z` (`d x k`), through the eigen-
/// decomposition of `S` (`k` third-order gradients). Returns the contraction and the pair
/// `(s, Z U)` of eigenvalues and parameter-space eigen-directions used.
pub fn contract_symmetric<M: Model>(
    model: &M,
    theta: &[f64],
    z: &DMatrix<f64>,
    s: &DMatrix<f64>,
) -> (Vec<f64>, Vec<f64>, DMatrix<f64>) {
    let eig = ((s + s.transpose()) * 0.5).symmetric_eigen();
    let dirs = z * &eig.eigenvectors;
    let w: Vec<f64> = eig.eigenvalues.iter().copied().collect();
    let out = contract_pairs(model, theta, &dirs, &dirs, &w);
    (out, w, dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Profile, Valley};

    /// `D3L[Z S Z^T]` by the eigen route equals the sum over all entries
    /// `sum_ij (Z S Z^T)_ij D3L[e_i, e_j]` (1e-12).
    #[test]
    fn symmetric_contraction_matches_entrywise_sum() {
        let m = Valley::new(vec![1.0, 2.0], 2, Profile::Sin2, 0.8).with_random_rotation(8);
        let theta = [0.1, 0.2, -0.3, 0.4];
        let z = DMatrix::from_fn(4, 2, |i, j| (i as f64 - 1.5) * 0.4 + j as f64 * 0.3);
        let s = DMatrix::from_row_slice(2, 2, &[0.5, 0.2, 0.2, -0.1]);
        let (got, _, _) = contract_symmetric(&m, &theta, &z, &s);
        let a = &z * &s * z.transpose();
        let mut want = [0.0; 4];
        let mut out = [0.0; 4];
        for i in 0..4 {
            for j in 0..4 {
                let mut ei = [0.0; 4];
                let mut ej = [0.0; 4];
                ei[i] = 1.0;
                ej[j] = 1.0;
                derivatives::third_order(&m, &theta, &ei, &ej, &mut out);
                for k in 0..4 {
                    want[k] += a[(i, j)] * out[k];
                }
            }
        }
        for k in 0..4 {
            assert!((got[k] - want[k]).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }
}
