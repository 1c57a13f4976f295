//! Deep linear networks of depth `D >= 2`, in two structures.
//!
//! **Dense**, hidden width `h`: `f(x) = W_D W_{D-1} ... W_1 x` with `W_1` an `h x p` matrix,
//! `W_2, ..., W_{D-1}` `h x h` matrices and `W_D` a `1 x h` row. Parameter layout
//! (`d = h p + (D - 2) h^2 + h`): the matrices in order `W_1, ..., W_D`, each row-major
//! (`(W_l)_ij = theta[o_l + i cols_l + j]` with `o_l` the entries of the layers before it).
//! End-to-end weights `w^T = W_D ... W_1` (so `f(x) = w . x`). With the row vectors
//! `u_l = W_D ... W_{l+1}` (`u_D = 1`) and the vectors `z_{l-1} = W_{l-1} ... W_1 x`
//! (`z_0 = x`), `d f / d (W_l)_ij = (u_l)_i (z_{l-1})_j`.
//!
//! **Diagonal** (the depth-`D` diagonal network): `f(x) = <u_1 ⊙ u_2 ⊙ ... ⊙ u_D, x>` with
//! `u_k in R^p`. Parameter layout (`d = D p`): `theta = (u_1, ..., u_D)`,
//! `(u_k)_j = theta[k p + j]` (`k` from 0). End-to-end weights `w = u_1 ⊙ ... ⊙ u_D`;
//! `d f / d (u_k)_j = x_j prod_{l != k} (u_l)_j` (leave-one-out products from prefix and
//! suffix products, no division, so exact at zero weights).
//!
//! Both structures realise every linear map `x -> w . x`, so the minima are the least-squares
//! solutions (for `n <= p` with full row rank the model interpolates) and the loss depends on
//! `theta` only through `w`: `L = (1/n) sum_i 1/2 (w . x_i - y_i)^2`.
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Batch, Model, Scalar};
use crate::data::Dataset;

/// The structure of a [`DeepLinear`] network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeepLinearStructure {
    /// `f(x) = W_D ... W_1 x` with hidden width `width` (see the module docs).
    Dense {
        /// Hidden width `h >= 1`.
        width: usize,
    },
    /// `f(x) = <u_1 ⊙ ... ⊙ u_D, x>`.
    Diagonal,
}

/// Deep linear network (see the module docs for both parameter layouts).
#[derive(Clone, Debug)]
pub struct DeepLinear {
    depth: usize,
    structure: DeepLinearStructure,
    train: Dataset,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
    init_seed: u64,
    init_scale: f64,
}

impl DeepLinear {
    /// Depth `depth`, structure, data, optional teacher weights.
    ///
    /// # Panics
    ///
    /// If `depth < 2`, a dense width is 0, there are no features or no training sample, or
    /// `test` / `teacher` do not have `p` features / weights (configuration checks these
    /// first).
    pub fn new(
        depth: usize,
        structure: DeepLinearStructure,
        train: Dataset,
        test: Option<Dataset>,
        teacher: Option<Vec<f64>>,
    ) -> Self {
        assert!(depth >= 2, "deep linear network needs depth >= 2");
        if let DeepLinearStructure::Dense { width } = structure {
            assert!(width >= 1, "dense deep linear network needs width >= 1");
        }
        assert!(
            train.p >= 1 && train.n >= 1,
            "deep linear network needs p >= 1 and n >= 1"
        );
        train.assert_companions(test.as_ref(), teacher.as_deref());
        Self {
            depth,
            structure,
            train,
            test,
            teacher,
            init_seed: 0,
            init_scale: 0.5,
        }
    }

    /// Seed and scale of the default (random) start.
    pub fn with_init(mut self, seed: u64, scale: f64) -> Self {
        self.init_seed = seed;
        self.init_scale = scale;
        self
    }

    /// Depth `D`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The structure.
    pub fn structure(&self) -> DeepLinearStructure {
        self.structure
    }

    /// `(rows, cols)` of the dense layer `l` (0-based: `l = 0` is `W_1`).
    fn layer_shape(&self, width: usize, l: usize) -> (usize, usize) {
        let p = self.train.p;
        let rows = if l + 1 == self.depth { 1 } else { width };
        let cols = if l == 0 { p } else { width };
        (rows, cols)
    }

    /// Scratch of [`DeepLinear::dense_gradient`]: `2 (D - 1) h + 2 p` scalars.
    fn dense_scratch_len(&self, width: usize) -> usize {
        2 * (self.depth - 1) * width + 2 * self.train.p
    }

    /// The dense network's row vectors `u_l = W_D ... W_{l+1}` (for `l = 1..D-1`, stored at
    /// `left[(l - 1) h..l h]`) and the end-to-end weights `w^T = u_1 W_1` (into `w`).
    fn dense_left<D: Scalar>(&self, width: usize, theta: &[D], left: &mut [D], w: &mut [D]) {
        let h = width;
        // u_{D-1} = W_D (a row of h).
        let total_before_last = theta.len() - h;
        left[(self.depth - 2) * h..(self.depth - 1) * h]
            .copy_from_slice(&theta[total_before_last..]);
        // u_{l} = u_{l+1} W_{l+1} for l = D-2 down to 1 (W_{l+1} is h x h, at index l).
        let mut offset = total_before_last;
        for l in (1..self.depth - 1).rev() {
            offset -= h * h;
            let wl = &theta[offset..offset + h * h];
            let (lo, hi) = left.split_at_mut(l * h);
            let src = &hi[..h];
            let dst = &mut lo[(l - 1) * h..];
            for (j, dj) in dst.iter_mut().take(h).enumerate() {
                let mut s = D::zero();
                for (i, &si) in src.iter().enumerate() {
                    s += si * wl[i * h + j];
                }
                *dj = s;
            }
        }
        // w = u_1 W_1 (W_1 is h x p at the start).
        let p = self.train.p;
        let u1 = &left[..h];
        for (k, wk) in w.iter_mut().take(p).enumerate() {
            let mut s = D::zero();
            for (i, &ui) in u1.iter().enumerate() {
                s += ui * theta[i * p + k];
            }
            *wk = s;
        }
    }

    /// Given the row vectors `left` of [`DeepLinear::dense_left`] and a vector `c` (length
    /// `p`), writes `out = grad_theta (w(theta) . c)`: `(u_l)_i (z_{l-1})_j` at `(W_l)_ij`
    /// with `z_0 = c`, `z_l = W_l z_{l-1}` (kept in `z`, `(D - 1) h` scalars).
    fn dense_outer<D: Scalar>(
        &self,
        width: usize,
        theta: &[D],
        left: &[D],
        c: &[D],
        z: &mut [D],
        out: &mut [D],
    ) {
        let h = width;
        let mut offset = 0;
        for l in 0..self.depth {
            let (rows, cols) = self.layer_shape(width, l);
            let size = rows * cols;
            let (before, current) = z.split_at_mut(l * h);
            let input: &[D] = if l == 0 { c } else { &before[(l - 1) * h..] };
            // Gradient of this layer: u_{l+1} (1-based) outer z_{l}.
            for i in 0..rows {
                let ui = if l + 1 == self.depth {
                    D::one()
                } else {
                    left[l * h + i]
                };
                for j in 0..cols {
                    out[offset + i * cols + j] = ui * input[j];
                }
            }
            // z_{l+1} = W_{l+1} z_l, for the next layer (not needed after the last hidden one).
            if l + 1 < self.depth {
                let wl = &theta[offset..offset + size];
                for (i, zi) in current.iter_mut().take(h).enumerate() {
                    let mut s = D::zero();
                    for (j, &ij) in input.iter().take(cols).enumerate() {
                        s += wl[i * cols + j] * ij;
                    }
                    *zi = s;
                }
            }
            offset += size;
        }
    }

    /// Loss and gradient of the dense network on `batch`, fused: the row vectors `u_l` and
    /// `w` once (`O(D h^2 + h p)`), the outputs `w . x_i` and
    /// `c = (1/|B|) sum_k (f_i - y_i - shift_k) x_i` (`O(|B| p)`), then the outer products
    /// `(u_l)_i (z_{l-1})_j` with `z_0 = c`. `scratch` holds `2 (D - 1) h + 2 p` scalars.
    fn dense_gradient<D: Scalar>(
        &self,
        width: usize,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let (h, p) = (width, self.train.p);
        let (left, rest) = scratch.split_at_mut((self.depth - 1) * h);
        let (w, rest) = rest.split_at_mut(p);
        let (c, rest) = rest.split_at_mut(p);
        let z = &mut rest[..(self.depth - 1) * h];
        self.dense_left(width, theta, left, w);
        let loss = self.accumulate_c(w, batch, c);
        self.dense_outer(width, theta, left, c, z, grad);
        loss
    }

    /// `f_i = w . x_i` over the batch: writes `c = (1/|B|) sum_k (f_i - y_i - shift_k) x_i`
    /// and returns the batch loss `(1/|B|) sum_k 1/2 (f_i - y_i)^2`.
    fn accumulate_c<D: Scalar>(&self, w: &[D], batch: Batch<'_>, c: &mut [D]) -> D {
        super::linear_readout(&self.train, w, batch, c)
    }

    /// The diagonal network's leave-one-out products for coordinate `j`:
    /// `out[k p + j] = coef prod_{l != k} (u_l)_j` for every `k`; returns `w_j = prod_l (u_l)_j`.
    #[inline]
    fn leave_one_out<D: Scalar>(&self, theta: &[D], j: usize, coef: D, out: &mut [D]) -> D {
        let p = self.train.p;
        let mut prefix = D::one();
        for k in 0..self.depth {
            out[k * p + j] = prefix;
            prefix *= theta[k * p + j];
        }
        let mut suffix = coef;
        for k in (0..self.depth).rev() {
            out[k * p + j] *= suffix;
            suffix *= theta[k * p + j];
        }
        prefix
    }

    /// `w` (length `p`) of either structure, generic over the scalar (allocates for the dense
    /// structure).
    fn end_to_end<D: Scalar>(&self, theta: &[D]) -> Vec<D> {
        let p = self.train.p;
        match self.structure {
            DeepLinearStructure::Dense { width } => {
                let mut left = vec![D::zero(); (self.depth - 1) * width];
                let mut w = vec![D::zero(); p];
                self.dense_left(width, theta, &mut left, &mut w);
                w
            }
            DeepLinearStructure::Diagonal => (0..p)
                .map(|j| (0..self.depth).fold(D::one(), |acc, k| acc * theta[k * p + j]))
                .collect(),
        }
    }
}

impl Model for DeepLinear {
    fn name(&self) -> &'static str {
        "deep_linear"
    }

    fn dim(&self) -> usize {
        let p = self.train.p;
        match self.structure {
            DeepLinearStructure::Dense { width } => {
                width * p + (self.depth - 2) * width * width + width
            }
            DeepLinearStructure::Diagonal => self.depth * p,
        }
    }

    fn n_samples(&self) -> usize {
        self.train.n
    }

    fn targets(&self) -> &[f64] {
        &self.train.y
    }

    /// Dense: `w`, then the outer products with `z_0 = x` (allocates `2 (D - 1) h + 2 p`
    /// scalars; the fused [`Model::batch_gradient`] does not). Diagonal: the leave-one-out
    /// products, in place in `grad_f`.
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let x = self.train.row(i);
        match self.structure {
            DeepLinearStructure::Dense { width } => {
                let mut buf = vec![D::zero(); self.dense_scratch_len(width)];
                let (left, rest) = buf.split_at_mut((self.depth - 1) * width);
                let (w, rest) = rest.split_at_mut(x.len());
                let (c, z) = rest.split_at_mut(x.len());
                self.dense_left(width, theta, left, w);
                let mut f = D::zero();
                for ((cj, &xj), &wj) in c.iter_mut().zip(x).zip(w.iter()) {
                    *cj = D::from(xj);
                    f += wj * xj;
                }
                self.dense_outer(width, theta, left, c, z, grad_f);
                f
            }
            DeepLinearStructure::Diagonal => {
                let mut f = D::zero();
                for (j, &xj) in x.iter().enumerate() {
                    f += self.leave_one_out(theta, j, D::from(xj), grad_f) * xj;
                }
                f
            }
        }
    }

    /// Dense: `2 (D - 1) h + 2 p`; diagonal: `2 p` (`w` and `c`); at least `d`.
    fn scratch_len(&self) -> usize {
        let own = match self.structure {
            DeepLinearStructure::Dense { width } => self.dense_scratch_len(width),
            DeepLinearStructure::Diagonal => 2 * self.train.p,
        };
        own.max(self.dim())
    }

    /// Fused, `O(|B| p)` for the data plus `O(d)` for the layers (the default is
    /// `O(|B| d)`): `w` once, `c = (1/|B|) sum_k (f_i - y_i - shift_k) x_i`, then the gradient
    /// of `w . c` (dense: outer products with `z_0 = c`; diagonal: leave-one-out products
    /// times `c_j`).
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let p = self.train.p;
        match self.structure {
            DeepLinearStructure::Dense { width } => {
                self.dense_gradient(width, theta, batch, grad, scratch)
            }
            DeepLinearStructure::Diagonal => {
                let (w, rest) = scratch.split_at_mut(p);
                let c = &mut rest[..p];
                for (j, wj) in w.iter_mut().enumerate() {
                    *wj = (0..self.depth).fold(D::one(), |acc, k| acc * theta[k * p + j]);
                }
                let loss = self.accumulate_c(w, batch, c);
                for (j, &cj) in c.iter().enumerate() {
                    self.leave_one_out(theta, j, cj, grad);
                }
                loss
            }
        }
    }

    /// Random start from `init_seed`, entries drawn in parameter order. Dense: `(W_l)_ij ~
    /// N(0, init_scale^2 / cols_l)` (fan-in, LeCun-style: `cols_1 = p`, else `h`). Diagonal:
    /// `(u_k)_j ~ N(0, init_scale^2)` (so `|w_j| ~ init_scale^D`: a small `init_scale` is the
    /// small initialisation of the rich regime; random signs let `w_j` take either sign).
    fn default_start(&self) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.init_seed);
        let mut draw = |sd: f64| sd * rng.sample::<f64, _>(StandardNormal);
        match self.structure {
            DeepLinearStructure::Dense { width } => {
                let mut out = Vec::with_capacity(self.dim());
                for l in 0..self.depth {
                    let (r, c) = self.layer_shape(width, l);
                    let sd = self.init_scale / (c as f64).sqrt();
                    out.extend((0..r * c).map(|_| draw(sd)));
                }
                out
            }
            DeepLinearStructure::Diagonal => {
                (0..self.dim()).map(|_| draw(self.init_scale)).collect()
            }
        }
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let test = self.test.as_ref()?;
        let w = self.end_to_end_weights(theta)?;
        Some(test.linear_mse(&w))
    }

    /// `w^T = W_D ... W_1` (dense) or `w = u_1 ⊙ ... ⊙ u_D` (diagonal).
    fn end_to_end_weights(&self, theta: &[f64]) -> Option<Vec<f64>> {
        Some(self.end_to_end(theta))
    }

    fn teacher_weights(&self) -> Option<&[f64]> {
        self.teacher.as_deref()
    }

    /// Every `w` is reachable, so `L_min` is the linear least-squares residual: exactly 0 when
    /// `n <= p` and the inputs have full row rank (interpolation), the residual otherwise.
    fn loss_min(&self) -> Option<f64> {
        Some(self.train.linear_loss_min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{generate, SyntheticSpec, Teacher};
    use crate::model::derivatives::{self, testing::check_derivatives};

    const TEACHER: [f64; 4] = [1.0, -0.5, 0.0, 2.0];

    fn model(n: usize, depth: usize, structure: DeepLinearStructure, noise: f64) -> DeepLinear {
        let data = generate(&SyntheticSpec {
            n,
            n_test: 3,
            p: 4,
            teacher: Teacher::Linear(TEACHER.to_vec()),
            label_noise: noise,
            seed: 11,
        });
        DeepLinear::new(depth, structure, data.train, data.test, data.teacher).with_init(3, 0.9)
    }

    fn structures() -> Vec<(usize, DeepLinearStructure)> {
        vec![
            (2, DeepLinearStructure::Dense { width: 3 }),
            (3, DeepLinearStructure::Dense { width: 2 }),
            (4, DeepLinearStructure::Dense { width: 3 }),
            (2, DeepLinearStructure::Diagonal),
            (3, DeepLinearStructure::Diagonal),
            (5, DeepLinearStructure::Diagonal),
        ]
    }

    #[test]
    fn deep_linear_derivatives() {
        for (depth, s) in structures() {
            let m = model(5, depth, s, 0.2);
            let d = m.dim();
            let th: Vec<f64> = (0..d).map(|c| 0.8 * (1.1 * c as f64 + 0.3).sin()).collect();
            let v: Vec<f64> = (0..d).map(|c| (0.9 * c as f64 + 0.5).cos()).collect();
            let w: Vec<f64> = (0..d).map(|c| (1.7 * c as f64 - 0.2).sin()).collect();
            check_derivatives(&m, &th, &v, &w);
            check_derivatives(&m, &m.default_start(), &v, &w);
            // A zero weight (the leave-one-out products need no division).
            let mut z = th.clone();
            z[1] = 0.0;
            check_derivatives(&m, &z, &v, &w);
        }
    }

    #[test]
    fn dimensions_follow_the_layouts() {
        let dense = model(5, 4, DeepLinearStructure::Dense { width: 3 }, 0.0);
        assert_eq!(dense.dim(), 3 * 4 + 2 * 9 + 3);
        let diag = model(5, 3, DeepLinearStructure::Diagonal, 0.0);
        assert_eq!(diag.dim(), 12);
    }

    /// End-to-end weights against an independent matrix product (nalgebra), and the loss is
    /// that of the linear predictor `w`.
    #[test]
    fn end_to_end_weights_are_the_layer_product() {
        let m = model(5, 3, DeepLinearStructure::Dense { width: 2 }, 0.1);
        let th = m.default_start();
        let w1 = nalgebra::DMatrix::from_row_slice(2, 4, &th[..8]);
        let w2 = nalgebra::DMatrix::from_row_slice(2, 2, &th[8..12]);
        let w3 = nalgebra::DMatrix::from_row_slice(1, 2, &th[12..14]);
        let expected = w3 * w2 * w1;
        let w = m.end_to_end_weights(&th).unwrap();
        for k in 0..4 {
            assert!((w[k] - expected[k]).abs() < 1e-15);
        }
        let l = derivatives::loss(&m, &th);
        assert!((l - 0.5 * m.train.linear_mse(&w)).abs() < 1e-14);
        assert!(
            (m.test_error(&th).unwrap() - m.test.as_ref().unwrap().linear_mse(&w)).abs() < 1e-14
        );
        let diag = model(5, 3, DeepLinearStructure::Diagonal, 0.1);
        let th = diag.default_start();
        let w = diag.end_to_end_weights(&th).unwrap();
        for j in 0..4 {
            assert!((w[j] - th[j] * th[4 + j] * th[8 + j]).abs() < 1e-15);
        }
        assert_eq!(diag.teacher_weights(), Some(&TEACHER[..]));
    }

    /// At a factorisation of the (noiseless) teacher the loss is zero and so is the gradient.
    #[test]
    fn loss_is_zero_at_a_factorisation_of_the_teacher() {
        // Dense, depth 3, width 2: W_1 = (w*^T; 0), W_2 = diag(1, 0), W_3 = (1, 0).
        let m = model(3, 3, DeepLinearStructure::Dense { width: 2 }, 0.0);
        let mut th = vec![0.0; m.dim()];
        th[..4].copy_from_slice(&TEACHER);
        th[8] = 1.0;
        th[12] = 1.0;
        assert_eq!(m.end_to_end_weights(&th).unwrap(), TEACHER.to_vec());
        let mut g = vec![0.0; m.dim()];
        let l = derivatives::gradient(&m, &th, &mut g);
        assert!(l < 1e-28, "loss {l}");
        assert!(g.iter().all(|x| x.abs() < 1e-13), "{g:?}");
        assert_eq!(m.loss_min(), Some(0.0));
        // Diagonal, depth 3: u_1 = w*, u_2 = u_3 = 1.
        let m = model(3, 3, DeepLinearStructure::Diagonal, 0.0);
        let mut th = vec![1.0; m.dim()];
        th[..4].copy_from_slice(&TEACHER);
        let l = derivatives::gradient(&m, &th, &mut g[..12]);
        assert!(l < 1e-28, "loss {l}");
        // With more samples than features and label noise, L_min is the least-squares loss,
        // reached at a factorisation of the least-squares weights.
        let m = model(9, 2, DeepLinearStructure::Diagonal, 0.3);
        let ls = m.train.least_squares().weights;
        let mut th = vec![1.0; m.dim()];
        th[..4].copy_from_slice(&ls);
        let l_min = m.loss_min().unwrap();
        assert!(l_min > 1e-3 && (derivatives::loss(&m, &th) - l_min).abs() < 1e-14);
    }

    #[test]
    fn default_start_is_seeded_and_scaled() {
        for (depth, s) in structures() {
            let m = model(5, depth, s, 0.0);
            let a = m.default_start();
            assert_eq!(a.len(), m.dim());
            assert_eq!(a, m.default_start());
            assert_ne!(a, m.clone().with_init(4, 0.9).default_start());
            let b = m.clone().with_init(3, 0.09).default_start();
            for (x, y) in a.iter().zip(&b) {
                assert!((0.1 * x - y).abs() < 1e-15);
            }
        }
    }
}
