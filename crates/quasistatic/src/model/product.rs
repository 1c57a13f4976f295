//! Scalar factorisation `f(x) = (theta_1 ... theta_D) x`, depth `D >= 2`.
//!
//! Scalar inputs `x_i` (`p = 1`), targets `y_i`, parameters `theta` in `R^D`; the end-to-end
//! weight is `w = prod_k theta_k` and the loss `L = (1/n) sum_i 1/2 (w x_i - y_i)^2`. Its
//! minima form the manifold `{prod_k theta_k = w_ls}`, with the least-squares weight
//! `w_ls = sum_i x_i y_i / sum_i x_i^2` and `L_min = (1/n) sum_i 1/2 (y_i - w_ls x_i)^2`
//! (positive when the labels are noisy). docs/theory.md section 7 is depth 2 with the single sample
//! `x = 1`, `y = 1` ([`ProductModel::scalar`]): `L = 1/2 (theta_1 theta_2 - 1)^2`.
//!
//! Gradients `d f / d theta_k = x prod_{j != k} theta_j` use prefix and suffix products: no
//! division, so `theta_k = 0` is fine, and no allocation.
use super::{
    by_lane_scratch_len, lane_gradients_by_lane, Batch, LaneBatch, LaneKernel, LaneSlots, Model,
    ModelVisitor, Scalar, SmallLaneKernel,
};
use crate::data::Dataset;
use crate::engine::lanes::Lanes;
use crate::engine::LANES;

/// Product model (see module docs).
#[derive(Clone, Debug)]
pub struct ProductModel {
    depth: usize,
    train: Dataset,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
}

impl ProductModel {
    /// Depth `depth >= 2` on scalar-input data (`train.p == 1`, and the same for `test`).
    ///
    /// # Panics
    ///
    /// If `depth < 2`, the data have `p != 1`, or there is no training sample.
    pub fn new(depth: usize, train: Dataset, test: Option<Dataset>) -> Self {
        assert!(depth >= 2, "product model needs depth >= 2, got {depth}");
        assert_eq!(train.p, 1, "product model needs scalar inputs (p = 1)");
        assert!(
            train.n >= 1,
            "product model needs at least one training sample"
        );
        if let Some(t) = &test {
            assert_eq!(t.p, 1, "product model needs scalar test inputs (p = 1)");
        }
        Self {
            depth,
            train,
            test,
            teacher: None,
        }
    }

    /// docs/theory.md's product model: one sample `x = 1`, target `target` (usually 1).
    pub fn scalar(depth: usize, target: f64) -> Self {
        Self::new(depth, Dataset::new(vec![1.0], vec![target], 1), None)
    }

    /// Record the teacher's end-to-end weight (data from the linear teacher `y = w x`):
    /// `teacher` has length 1.
    pub fn with_teacher(mut self, teacher: Vec<f64>) -> Self {
        assert_eq!(teacher.len(), 1, "product model's teacher has one weight");
        self.teacher = Some(teacher);
        self
    }

    /// Depth `D`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Least-squares end-to-end weight `w_ls = sum_i x_i y_i / sum_i x_i^2` (0 if every
    /// `x_i = 0`).
    pub fn least_squares_weight(&self) -> f64 {
        let (mut xy, mut xx) = (0.0, 0.0);
        for (&x, &y) in self.train.x.iter().zip(&self.train.y) {
            xy += x * y;
            xx += x * x;
        }
        if xx > 0.0 {
            xy / xx
        } else {
            0.0
        }
    }

    /// Writes `scale * prod_{j != k} theta_j` into `out[k]` for every `k`, by a prefix pass
    /// and a suffix pass; returns `prod_k theta_k`.
    #[inline]
    fn leave_one_out_products<D: Scalar>(theta: &[D], scale: D, out: &mut [D]) -> D {
        let mut prefix = scale;
        for (o, &t) in out.iter_mut().zip(theta) {
            *o = prefix;
            prefix *= t;
        }
        let mut suffix = D::one();
        for (o, &t) in out.iter_mut().zip(theta).rev() {
            *o *= suffix;
            suffix *= t;
        }
        suffix
    }
}

impl ProductModel {
    /// Full-batch gradient of all lanes (`depth` factors of every lane in `theta`, label shifts
    /// of sample `i` from `shifts(i)`) with the arithmetic of [`ProductModel::batch_gradient`]
    /// operation by operation, so bit-identical to it. Writes the gradient, returns the losses.
    #[inline(always)]
    fn full_batch_lanes<T: LaneSlots + ?Sized, G: LaneSlots + ?Sized>(
        &self,
        depth: usize,
        theta: &T,
        shifts: impl Fn(usize) -> Lanes,
        grad: &mut G,
    ) -> Lanes {
        let mut w = Lanes::splat(1.0);
        for k in 0..depth {
            w *= theta.get_lanes(k);
        }
        let (mut lo, mut c) = (Lanes::ZERO, Lanes::ZERO);
        for i in 0..self.train.n {
            let (x, y) = (self.train.x[i], self.train.y[i]);
            let r = w * x - y;
            lo += r * r * 0.5;
            c += (r - shifts(i)) * x;
        }
        let inv = 1.0 / self.train.n as f64;
        // leave_one_out_products, all lanes at once.
        let mut prefix = c * inv;
        for k in 0..depth {
            grad.set_lanes(k, prefix);
            prefix *= theta.get_lanes(k);
        }
        let mut suffix = Lanes::splat(1.0);
        for k in (0..depth).rev() {
            grad.set_lanes(k, grad.get_lanes(k) * suffix);
            suffix *= theta.get_lanes(k);
        }
        lo * inv
    }
}

impl Model for ProductModel {
    fn lane_kernel(&self) -> Option<&dyn LaneKernel> {
        Some(self)
    }

    fn visit<V: ModelVisitor>(&self, visitor: V) -> V::Output {
        visitor.small(self)
    }

    fn name(&self) -> &'static str {
        "product"
    }

    fn dim(&self) -> usize {
        self.depth
    }

    fn n_samples(&self) -> usize {
        self.train.n
    }

    fn targets(&self) -> &[f64] {
        &self.train.y
    }

    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let x = self.train.x[i];
        let w = Self::leave_one_out_products(theta, D::from(x), grad_f);
        w * x
    }

    /// Fused: `f_i = w x_i` with `w = prod_k theta_k`, so the gradient is
    /// `c prod_{j != k} theta_j` with `c = (1/|B|) sum_k (w x_i - y_i - shift_k) x_i`;
    /// cost `O(|B| + D)`, no scratch.
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        _scratch: &mut [D],
    ) -> D {
        let w = theta.iter().fold(D::one(), |acc, &t| acc * t);
        let b = batch.len(self.train.n);
        let (mut loss, mut c) = (D::zero(), D::zero());
        for k in 0..b {
            let i = batch.sample(k);
            let x = self.train.x[i];
            let r = w * x - self.train.y[i];
            loss += r * r * 0.5;
            c += (r - batch.shift_at(k)) * x;
        }
        let inv = 1.0 / b as f64;
        Self::leave_one_out_products(theta, c * inv, grad);
        loss * inv
    }

    /// `c (4, 1/4, 1, ..., 1)`, with the first entry's sign flipped when `w_ls < 0`, and
    /// `c = |w_ls|^{1/D}`: on the manifold, product `w_ls` (for docs/theory.md's depth 2, target 1:
    /// `(4, 0.25)`). When `w_ls = 0` the start is `(4, 0, 1, ..., 1)`, also on the manifold.
    fn default_start(&self) -> Vec<f64> {
        let w = self.least_squares_weight();
        let mut theta = vec![1.0; self.depth];
        if w == 0.0 {
            theta[0] = 4.0;
            theta[1] = 0.0;
            return theta;
        }
        let c = w.abs().powf(1.0 / self.depth as f64);
        for t in theta.iter_mut() {
            *t = c;
        }
        theta[0] *= 4.0 * w.signum();
        theta[1] *= 0.25;
        theta
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let w = theta.iter().product::<f64>();
        self.test.as_ref().map(|t| t.linear_mse(&[w]))
    }

    fn end_to_end_weights(&self, theta: &[f64]) -> Option<Vec<f64>> {
        Some(vec![theta.iter().product()])
    }

    fn teacher_weights(&self) -> Option<&[f64]> {
        self.teacher.as_deref()
    }

    /// `(1/n) sum_i 1/2 (y_i - w_ls x_i)^2`.
    fn loss_min(&self) -> Option<f64> {
        Some(0.5 * self.train.linear_mse(&[self.least_squares_weight()]))
    }
}

impl LaneKernel for ProductModel {
    fn lane_scratch_len(&self) -> usize {
        by_lane_scratch_len(self)
    }

    /// Full batches (T2's case) run all lanes in one vectorised pass with the arithmetic of
    /// [`ProductModel::batch_gradient`] operation by operation (bit-identical); mini-batches go
    /// lane by lane.
    #[inline(always)]
    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        if batch.indices.is_some() {
            return lane_gradients_by_lane(self, theta, batch, grad, scratch, loss);
        }
        *loss = self
            .full_batch_lanes(self.depth, theta, |i| batch.shifts_at(i), grad)
            .0;
    }
}

impl SmallLaneKernel for ProductModel {
    /// One-sample data (T2's case).
    fn offers_small_lanes(&self) -> bool {
        self.train.n == 1
    }

    #[inline(always)]
    fn small_lane_gradient<const D: usize>(
        &self,
        theta: &[Lanes; D],
        shift: Lanes,
        grad: &mut [Lanes; D],
    ) -> Lanes {
        // `D == depth`, known at compile time here.
        self.full_batch_lanes(D, &theta[..], |_| shift, &mut grad[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::derivatives::{self, testing::check_derivatives};

    fn noisy_data(n: usize) -> Dataset {
        let x: Vec<f64> = (0..n).map(|i| 0.4 + 0.3 * i as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, x)| 1.5 * x + if i % 2 == 0 { 0.1 } else { -0.2 })
            .collect();
        Dataset::new(x, y, 1)
    }

    #[test]
    fn product_derivatives() {
        let m = ProductModel::scalar(2, 1.0);
        check_derivatives(&m, &[0.7, -1.3], &[0.4, 0.9], &[-0.6, 0.2]);
        let m = ProductModel::new(3, noisy_data(3), None);
        let (v, w) = ([0.3, -0.5, 0.8], [0.6, 0.1, -0.4]);
        check_derivatives(&m, &[0.9, -0.6, 1.2], &v, &w);
        // A zero factor: no division anywhere.
        check_derivatives(&m, &[0.9, 0.0, 1.2], &v, &w);
        let m = ProductModel::new(5, noisy_data(4), None);
        let v = [0.3, -0.5, 0.8, 0.1, 0.2];
        let w = [0.6, 0.1, -0.4, 0.5, -0.3];
        check_derivatives(&m, &[0.9, -0.6, 1.2, 1.1, 0.7], &v, &w);
    }

    /// docs/theory.md section 7: `L = 1/2 (ab - 1)^2`, `grad L = (ab - 1) (b, a)`.
    #[test]
    fn depth_two_closed_form() {
        let m = ProductModel::scalar(2, 1.0);
        let (a, b) = (0.8, 1.7);
        let mut g = [0.0; 2];
        let l = derivatives::gradient(&m, &[a, b], &mut g);
        let r = a * b - 1.0;
        assert!((l - 0.5 * r * r).abs() < 1e-15);
        assert!((g[0] - r * b).abs() < 1e-15 && (g[1] - r * a).abs() < 1e-15);
        // On the manifold tr H = a^2 + b^2.
        let h = derivatives::hessian(&m, &[2.0, 0.5]);
        assert!((h.trace() - 4.25).abs() < 1e-14);
    }

    #[test]
    fn default_start_is_on_the_manifold() {
        let m = ProductModel::scalar(2, 1.0);
        assert_eq!(m.default_start(), vec![4.0, 0.25]);
        assert_eq!(m.loss_min(), Some(0.0));
        for depth in [2, 3, 4] {
            for target in [2.5, -0.7] {
                let m = ProductModel::new(depth, Dataset::new(vec![2.0], vec![target], 1), None);
                let th = m.default_start();
                let w = m.end_to_end_weights(&th).unwrap()[0];
                assert!((w - target / 2.0).abs() < 1e-14, "depth {depth}: {w}");
                let mut g = vec![0.0; depth];
                assert!(derivatives::gradient(&m, &th, &mut g) < 1e-28);
            }
        }
        // Noisy labels: the start minimises the loss, which is L_min > 0.
        let m = ProductModel::new(3, noisy_data(5), None);
        let th = m.default_start();
        let mut g = [0.0; 3];
        let l = derivatives::gradient(&m, &th, &mut g);
        let l_min = m.loss_min().unwrap();
        assert!(l_min > 1e-3 && (l - l_min).abs() < 1e-14);
        assert!(g.iter().all(|gk| gk.abs() < 1e-13), "{g:?}");
        let zero = ProductModel::scalar(3, 0.0);
        assert_eq!(zero.default_start(), vec![4.0, 0.0, 1.0]);
    }

    #[test]
    fn test_error_and_teacher() {
        let test = Dataset::new(vec![1.0, -2.0], vec![1.5, -3.0], 1);
        let m = ProductModel::new(2, noisy_data(3), Some(test)).with_teacher(vec![1.5]);
        assert_eq!(m.teacher_weights(), Some(&[1.5][..]));
        assert!(m.test_error(&[3.0, 0.5]).unwrap().abs() < 1e-15);
        let e = m.test_error(&[1.0, 1.0]).unwrap();
        assert!((e - 0.5 * (0.25 + 1.0)).abs() < 1e-14);
        assert!(ProductModel::scalar(2, 1.0)
            .test_error(&[1.0, 1.0])
            .is_none());
    }
}
