//! Third-order contractions `D3L[A]_a = sum_jk d_a d_j d_k L A_jk` for low-rank symmetric `A`
//! (docs/theory.md section 2), one full-batch gradient with dual numbers per rank-one term, in
//! parallel over the terms (rayon).
//!
//! - `D3L[Z S Z^T]` with `S` symmetric (`k x k`): eigen-decompose `S = U diag(s) U^T`, then
//!   `D3L[Z S Z^T] = sum_k s_k D3L[z_k, z_k, .]` with `z_k = Z u_k`; each term is one
//!   [`Dual2_64`](num_dual::Dual2_64) gradient ([`derivatives::third_order_diagonal`]).
//!   When several `S` are diagonal in the columns of `Z` (label, Hessian-shaped and isotropic
//!   noise make the exact and leading-order equilibria diagonal in the normal eigenbasis),
//!   [`contract_symmetric_set`] evaluates each `D3L[z_k, z_k, .]` once for all of them;
//! - `D3L[sym(sum_k w_k a_k b_k^T)] = sum_k w_k D3L[a_k, b_k, .]` (the form is symmetric in
//!   its first two slots), one [`HyperDual64`](num_dual::HyperDual64) gradient per term.
//!
//! **Determinism.** The terms are split into blocks of [`BLOCK`] consecutive terms; each block
//! is summed in term order by one task, and the block sums are added in block order. The
//! result is therefore bit-identical for any number of threads.

use std::sync::Mutex;

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::model::derivatives::{self, GradientWorkspace};
use crate::model::Model;

/// Number of consecutive terms summed by one parallel task. A constant, so that the order of
/// the floating-point additions, hence the result, does not depend on the number of threads.
pub const BLOCK: usize = 4;

/// Relative size below which an off-diagonal entry of `S` counts as round-off in
/// [`contract_symmetric_set`]: `|S_jk| <= DIAGONAL_TOLERANCE * sqrt(|S_jj S_kk|)`.
pub const DIAGONAL_TOLERANCE: f64 = 1e-12;

/// `sums` vectors of length `d`, each a sum over `terms`: `add_term(k, workspace, acc)` adds
/// term `k`'s contributions into the `sums` accumulators `acc`. Runs in parallel over blocks of
/// [`BLOCK`] consecutive terms, with one `init()` workspace per worker thread, created on first
/// use and reused across blocks; each block is accumulated in term order from zero and the
/// block sums are added in block order, so the result does not depend on the number of threads
/// (nor on which thread ran which block).
pub(crate) fn ordered_block_sums<W, I, F>(
    d: usize,
    sums: usize,
    terms: &[usize],
    init: I,
    add_term: F,
) -> Vec<Vec<f64>>
where
    W: Send,
    I: Fn() -> W + Sync + Send,
    F: Fn(usize, &mut W, &mut [Vec<f64>]) + Sync + Send,
{
    let blocks: Vec<&[usize]> = terms.chunks(BLOCK).collect();
    let workspaces: Vec<Mutex<Option<W>>> = (0..rayon::current_num_threads())
        .map(|_| Mutex::new(None))
        .collect();
    let partials: Vec<Vec<Vec<f64>>> = blocks
        .par_iter()
        .map(|block| {
            let slot = rayon::current_thread_index().unwrap_or(0) % workspaces.len();
            let mut guard = workspaces[slot].lock().unwrap_or_else(|e| e.into_inner());
            let ws = guard.get_or_insert_with(&init);
            let mut acc = vec![vec![0.0; d]; sums];
            for &k in *block {
                add_term(k, ws, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![vec![0.0; d]; sums];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(&partial) {
            for (x, y) in t.iter_mut().zip(p) {
                *x += y;
            }
        }
    }
    total
}

/// `acc += w * x`.
#[inline]
fn axpy(acc: &mut [f64], w: f64, x: &[f64]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += w * b;
    }
}

/// Column `k` of a column-major `d x r` matrix as a slice.
#[inline]
fn column(m: &DMatrix<f64>, k: usize) -> &[f64] {
    let d = m.nrows();
    &m.as_slice()[k * d..(k + 1) * d]
}

/// `sum_k w_k D3L(theta)[a_k, b_k, .]` over the columns `a_k`, `b_k` of `a`, `b` (`d x k`);
/// terms with `w_k = 0` are skipped. One [`HyperDual64`](num_dual::HyperDual64) gradient per
/// term; bit-identical for any number of threads (see the module docs).
pub fn contract_pairs<M: Model>(
    model: &M,
    theta: &[f64],
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    w: &[f64],
) -> Vec<f64> {
    let d = model.dim();
    let terms: Vec<usize> = (0..w.len()).filter(|&k| w[k] != 0.0).collect();
    ordered_block_sums(
        d,
        1,
        &terms,
        || (GradientWorkspace::new(model), vec![0.0; d]),
        |k, (ws, out), acc| {
            derivatives::third_order_with(model, theta, column(a, k), column(b, k), ws, out);
            axpy(&mut acc[0], w[k], out);
        },
    )
    .pop()
    .expect("one sum")
}

/// `sum_k w[s]_k D3L(theta)[v_k, v_k, .]` for every weight set `w[s]`, over the columns `v_k`
/// of `v` (`d x k`): one [`Dual2_64`](num_dual::Dual2_64) gradient per column whose weight is
/// nonzero in some set, shared by all sets. Bit-identical for any number of threads.
pub fn contract_diagonal<M: Model>(
    model: &M,
    theta: &[f64],
    v: &DMatrix<f64>,
    weights: &[&[f64]],
) -> Vec<Vec<f64>> {
    let d = model.dim();
    let terms: Vec<usize> = (0..v.ncols())
        .filter(|&k| weights.iter().any(|w| w[k] != 0.0))
        .collect();
    ordered_block_sums(
        d,
        weights.len(),
        &terms,
        || (GradientWorkspace::new(model), vec![0.0; d]),
        |k, (ws, out), acc| {
            derivatives::third_order_diagonal(model, theta, column(v, k), ws, out);
            for (a, w) in acc.iter_mut().zip(weights) {
                if w[k] != 0.0 {
                    axpy(a, w[k], out);
                }
            }
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
    let out = contract_diagonal(model, theta, &dirs, &[&w])
        .pop()
        .expect("one sum");
    (out, w, dirs)
}

/// Whether every off-diagonal entry of the square matrix `s` is round-off relative to its
/// diagonal: `|S_jk| <= DIAGONAL_TOLERANCE * sqrt(|S_jj S_kk|)`.
pub fn is_diagonal(s: &DMatrix<f64>) -> bool {
    let k = s.nrows();
    (0..k).all(|j| {
        (0..k).all(|i| {
            i == j || s[(i, j)].abs() <= DIAGONAL_TOLERANCE * (s[(i, i)] * s[(j, j)]).abs().sqrt()
        })
    })
}

/// `D3L(theta)[Z S Z^T]` for each symmetric `S` in `ss` (all `k x k`, `Z` is `d x k`).
///
/// If every `S` is diagonal up to round-off ([`is_diagonal`]), `D3L[Z S Z^T] = sum_k S_kk
/// D3L[z_k, z_k, .]` with the columns `z_k` of `Z` evaluated once for all `S` (`k` gradients
/// in total; the dropped off-diagonal entries are below [`DIAGONAL_TOLERANCE`] relative);
/// otherwise each `S` goes through [`contract_symmetric`] (`k` gradients each).
pub fn contract_symmetric_set<M: Model>(
    model: &M,
    theta: &[f64],
    z: &DMatrix<f64>,
    ss: &[&DMatrix<f64>],
) -> Vec<Vec<f64>> {
    if ss.iter().all(|s| is_diagonal(s)) {
        let diagonals: Vec<Vec<f64>> = ss
            .iter()
            .map(|s| s.diagonal().iter().copied().collect())
            .collect();
        let weights: Vec<&[f64]> = diagonals.iter().map(|w| w.as_slice()).collect();
        contract_diagonal(model, theta, z, &weights)
    } else {
        ss.iter()
            .map(|s| contract_symmetric(model, theta, z, s).0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::{Activation, Profile, TwoLayerNetwork, Valley};

    /// A small two-layer tanh network (`d = 6 (4 + 1) = 30`) and a point, directions `Z`
    /// (`d x 11`, more than [`BLOCK`] columns), a diagonal and a full symmetric `S`.
    #[allow(clippy::type_complexity)]
    fn small_problem() -> (
        TwoLayerNetwork,
        Vec<f64>,
        DMatrix<f64>,
        DMatrix<f64>,
        DMatrix<f64>,
    ) {
        let data = generate(&SyntheticSpec {
            n: 7,
            n_test: 0,
            p: 4,
            teacher: Teacher::TanhNetwork { width: 2, seed: 4 },
            label_noise: 0.0,
            seed: 9,
        });
        let m = TwoLayerNetwork::new(6, Activation::Tanh, data.train, None).with_init(3, 0.9);
        let theta = m.default_start();
        let d = m.dim();
        let k = 11;
        let z = DMatrix::from_fn(d, k, |i, j| {
            ((1.7 * i as f64 + 0.9 * j as f64) * 0.61).sin()
        });
        let diag = DMatrix::from_fn(k, k, |i, j| {
            if i == j {
                0.3 + 0.1 * i as f64 - 0.05 * (i % 3) as f64
            } else {
                0.0
            }
        });
        let full = DMatrix::from_fn(k, k, |i, j| {
            ((i + j) as f64 * 0.37).cos() * 0.2 + if i == j { 0.5 } else { 0.0 }
        });
        (m, theta, z, diag, full)
    }

    /// The previous implementation: eigen-decompose `S`, one `HyperDual64` gradient per
    /// eigen-direction, summed sequentially.
    fn hyperdual_reference<M: Model>(
        model: &M,
        theta: &[f64],
        z: &DMatrix<f64>,
        s: &DMatrix<f64>,
    ) -> Vec<f64> {
        let d = model.dim();
        let eig = ((s + s.transpose()) * 0.5).symmetric_eigen();
        let dirs = z * &eig.eigenvectors;
        let mut acc = vec![0.0; d];
        let mut out = vec![0.0; d];
        for (k, &w) in eig.eigenvalues.iter().enumerate() {
            let v = column(&dirs, k);
            derivatives::third_order(model, theta, v, v, &mut out);
            axpy(&mut acc, w, &out);
        }
        acc
    }

    fn assert_close(got: &[f64], want: &[f64], what: &str) {
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (a, b) in got.iter().zip(want) {
            assert!(
                (a - b).abs() <= 1e-12 * scale,
                "{what}: {a} vs {b} (scale {scale})"
            );
        }
    }

    /// The Dual2, parallel, shared-direction contractions equal the previous sequential
    /// HyperDual64 ones to 1e-12 relative: the eigen route for a full `S`, and the shared
    /// diagonal route for a set of diagonal `S` (and the eigen fallback for a mixed set).
    #[test]
    fn contractions_match_hyperdual_reference() {
        let (m, theta, z, diag, full) = small_problem();
        let want_full = hyperdual_reference(&m, &theta, &z, &full);
        let want_diag = hyperdual_reference(&m, &theta, &z, &diag);
        let (got, _, _) = contract_symmetric(&m, &theta, &z, &full);
        assert_close(&got, &want_full, "eigen route");
        let diag2 = &diag * 2.5;
        assert!(is_diagonal(&diag) && !is_diagonal(&full));
        let got = contract_symmetric_set(&m, &theta, &z, &[&diag, &diag2]);
        assert_close(&got[0], &want_diag, "shared diagonal route");
        let want2: Vec<f64> = want_diag.iter().map(|x| 2.5 * x).collect();
        assert_close(&got[1], &want2, "shared diagonal route, second S");
        let got = contract_symmetric_set(&m, &theta, &z, &[&diag, &full]);
        assert_close(&got[0], &want_diag, "mixed set, diagonal");
        assert_close(&got[1], &want_full, "mixed set, full");
        // Pairs: sum_k w_k D3L[a_k, b_k] against sequential HyperDual64 gradients.
        let b = DMatrix::from_fn(z.nrows(), z.ncols(), |i, j| ((i * j) as f64 * 0.13).cos());
        let w: Vec<f64> = (0..z.ncols()).map(|k| 0.4 - 0.1 * k as f64).collect();
        let mut want = vec![0.0; m.dim()];
        let mut out = vec![0.0; m.dim()];
        for (k, &wk) in w.iter().enumerate() {
            derivatives::third_order(&m, &theta, column(&z, k), column(&b, k), &mut out);
            axpy(&mut want, wk, &out);
        }
        assert_close(&contract_pairs(&m, &theta, &z, &b, &w), &want, "pairs");
    }

    /// Every parallel contraction is bit-identical with 1 and 2 rayon threads.
    #[test]
    fn contractions_are_bit_identical_across_thread_counts() {
        let (m, theta, z, diag, full) = small_problem();
        let b = DMatrix::from_fn(z.nrows(), z.ncols(), |i, j| ((i * j) as f64 * 0.13).cos());
        let w: Vec<f64> = (0..z.ncols()).map(|k| 0.4 - 0.1 * k as f64).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    (
                        contract_symmetric(&m, &theta, &z, &full).0,
                        contract_symmetric_set(&m, &theta, &z, &[&diag, &full]),
                        contract_symmetric_set(&m, &theta, &z, &[&diag, &(&diag * 0.5)]),
                        contract_pairs(&m, &theta, &z, &b, &w),
                    )
                })
        };
        assert_eq!(run(1), run(2));
    }

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
