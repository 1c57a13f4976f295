//! The valley: a manifold of minima `{x = 0}` whose flatness changes along it.
//!
//! Coordinates `z = (x, y)`, normal `x` in `R^p`, tangent `y` in `R^q`; parameters
//! `theta = R z` for an orthogonal `R` (identity, a plane rotation by an angle, or a random
//! rotation from a seed). The loss is
//!
//! `L = 1/2 sum_i a_i(y) x_i^2`, `a_i(y) = lambda_i s(y)`,
//!
//! with the flatness profile `s(y) = 1 + c |y|^2` ([`Profile::Quadratic`]) or
//! `s(y) = 1 + c sum_j sin^2(y_j)` ([`Profile::Sin2`]). The manifold is `G = {x = 0}` and the
//! Hessian on it is `R diag(a(y), 0) R^T`. The two-dimensional valley of docs/theory.md section 7 is
//! `p = q = 1`, `lambda = 1`, quadratic profile with `c = 1`: `f = sqrt(1 + y^2) x`.
//!
//! As a regression model it has `n = p` samples with target 0 and outputs
//! `f_i = sqrt(p a_i(y)) x_i`, so that `(1/n) sum_i 1/2 f_i^2` is the loss above and label noise
//! of size `sigma` on the full batch has covariance `(sigma^2 / p) H` on `G` (for `p = 1`:
//! `sigma^2 H`, as in docs/theory.md).

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::{
    by_lane_scratch_len, lane_gradients_by_lane, Batch, LaneBatch, LaneKernel, LaneSlots, Model,
    ModelVisitor, Scalar, SmallLaneKernel,
};
use crate::engine::lanes::Lanes;
use crate::engine::LANES;

/// Flatness profile `s(y)` along the valley.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Profile {
    /// `s(y) = 1 + c |y|^2`: flattest at `y = 0`.
    Quadratic,
    /// `s(y) = 1 + c sum_j sin^2(y_j)`: periodic, flattest at `y_j = k pi`.
    Sin2,
}

/// The valley model (see the module docs).
#[derive(Clone, Debug)]
pub struct Valley {
    p: usize,
    q: usize,
    lambdas: Vec<f64>,
    sqrt_p_lambdas: Vec<f64>,
    profile: Profile,
    c: f64,
    /// Row-major `d x d` orthogonal matrix `R` (`theta = R z`), or `None` for the identity.
    rotation: Option<Vec<f64>>,
    targets: Vec<f64>,
    start_y: f64,
}

impl Valley {
    /// A valley with `p` normal and `q` tangent directions, normal curvature scales `lambdas`
    /// (length `p`, all positive), profile `s` with coefficient `c >= 0`.
    pub fn new(lambdas: Vec<f64>, q: usize, profile: Profile, c: f64) -> Self {
        let p = lambdas.len();
        assert!(p >= 1 && q >= 1, "valley needs p >= 1 and q >= 1");
        let sqrt_p_lambdas = lambdas.iter().map(|l| (p as f64 * l).sqrt()).collect();
        Self {
            p,
            q,
            lambdas,
            sqrt_p_lambdas,
            profile,
            c,
            rotation: None,
            targets: vec![0.0; p],
            start_y: 2.0,
        }
    }

    /// The two-dimensional valley `f = sqrt(1 + c y^2) x` (or the `sin^2` profile).
    pub fn planar(profile: Profile, c: f64) -> Self {
        Self::new(vec![1.0], 1, profile, c)
    }

    /// Rotate a planar valley (`p = q = 1`) by `angle` radians: `theta = R(angle) (x, y)`.
    pub fn with_angle(mut self, angle: f64) -> Self {
        assert_eq!(self.dim(), 2, "an angle rotates only the planar valley");
        let (s, c) = angle.sin_cos();
        self.rotation = Some(vec![c, -s, s, c]);
        self
    }

    /// Rotate by a random orthogonal matrix (Haar-distributed, from a QR factorisation of a
    /// Gaussian matrix with sign correction) drawn from `seed`.
    pub fn with_random_rotation(mut self, seed: u64) -> Self {
        let d = self.dim();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let g = DMatrix::<f64>::from_fn(d, d, |_, _| StandardNormal.sample(&mut rng));
        let qr = g.qr();
        let (mut q, r) = (qr.q(), qr.r());
        for j in 0..d {
            if r[(j, j)] < 0.0 {
                for i in 0..d {
                    q[(i, j)] = -q[(i, j)];
                }
            }
        }
        self.rotation = Some((0..d * d).map(|k| q[(k / d, k % d)]).collect());
        self
    }

    /// Set the tangent coordinate of the default start (every `y_j` equals it).
    pub fn with_start_y(mut self, y: f64) -> Self {
        self.start_y = y;
        self
    }

    /// Number of normal directions `p`.
    pub fn normal_dim(&self) -> usize {
        self.p
    }

    /// Number of tangent directions `q`.
    pub fn tangent_dim(&self) -> usize {
        self.q
    }

    /// The rotation `R` as a dense matrix (identity when unrotated).
    pub fn rotation_matrix(&self) -> DMatrix<f64> {
        let d = self.dim();
        match &self.rotation {
            None => DMatrix::identity(d, d),
            Some(r) => DMatrix::from_row_slice(d, d, r),
        }
    }

    /// Parameters `theta = R z` of the point with valley coordinates `z = (x, y)`.
    pub fn to_theta(&self, z: &[f64]) -> Vec<f64> {
        let mut th = vec![0.0; self.dim()];
        self.rotate(z, &mut th);
        th
    }

    /// Valley coordinates `z = R^T theta`.
    pub fn to_coordinates(&self, theta: &[f64]) -> Vec<f64> {
        let mut z = vec![0.0; self.dim()];
        self.unrotate(theta, &mut z);
        z
    }

    /// `out = R z`.
    #[inline]
    fn rotate<D: Scalar>(&self, z: &[D], out: &mut [D]) {
        let d = self.dim();
        match &self.rotation {
            None => out[..d].copy_from_slice(&z[..d]),
            Some(r) => {
                for (i, o) in out[..d].iter_mut().enumerate() {
                    let row = &r[i * d..(i + 1) * d];
                    let mut acc = D::zero();
                    for (&rij, &zj) in row.iter().zip(z) {
                        acc += zj * rij;
                    }
                    *o = acc;
                }
            }
        }
    }

    /// `out = R^T theta`.
    #[inline]
    fn unrotate<D: Scalar>(&self, theta: &[D], out: &mut [D]) {
        let d = self.dim();
        match &self.rotation {
            None => out[..d].copy_from_slice(&theta[..d]),
            Some(r) => {
                for o in out[..d].iter_mut() {
                    *o = D::zero();
                }
                for (i, &ti) in theta[..d].iter().enumerate() {
                    let row = &r[i * d..(i + 1) * d];
                    for (o, &rij) in out[..d].iter_mut().zip(row) {
                        *o += ti * rij;
                    }
                }
            }
        }
    }

    /// `s(y)`.
    #[inline(always)]
    fn profile_value<D: Scalar>(&self, y: &[D]) -> D {
        let mut acc = D::zero();
        match self.profile {
            Profile::Quadratic => {
                for &yj in y {
                    acc += yj * yj;
                }
            }
            Profile::Sin2 => {
                for &yj in y {
                    let s = yj.sin();
                    acc += s * s;
                }
            }
        }
        acc * self.c + 1.0
    }

    /// `d s / d y_j`.
    #[inline]
    fn profile_derivative<D: Scalar>(&self, yj: D) -> D {
        match self.profile {
            Profile::Quadratic => yj * (2.0 * self.c),
            Profile::Sin2 => (yj * 2.0).sin() * self.c,
        }
    }

    /// Gradient in valley coordinates of the batch loss; `z` are the coordinates, result in
    /// `gz`. Returns the clean batch loss.
    #[inline(always)]
    fn coordinate_gradient<D: Scalar>(&self, z: &[D], batch: Batch<'_>, gz: &mut [D]) -> D {
        let (p, b) = (self.p, batch.len(self.p));
        let y = &z[p..];
        let s = self.profile_value(y);
        let sqrt_s = s.sqrt();
        for g in gz.iter_mut() {
            *g = D::zero();
        }
        let mut loss = D::zero();
        // accum = sum_i w_i x_i sqrt(p lambda_i), so that d/dy_j = accum s'_j / (2 sqrt s).
        let mut accum = D::zero();
        for k in 0..b {
            let i = batch.sample(k);
            let sp = self.sqrt_p_lambdas[i];
            let xi = z[i];
            let r = sqrt_s * xi * sp;
            loss += r * r * 0.5;
            let w = r - batch.shift_at(k);
            gz[i] += w * sqrt_s * sp;
            accum += w * xi * sp;
        }
        let inv = 1.0 / b as f64;
        let factor = accum / (sqrt_s * 2.0);
        for (j, &yj) in y.iter().enumerate() {
            gz[p + j] = factor * self.profile_derivative(yj);
        }
        for g in gz.iter_mut() {
            *g *= inv;
        }
        loss * inv
    }
}

impl Model for Valley {
    fn lane_kernel(&self) -> Option<&dyn LaneKernel> {
        Some(self)
    }

    fn visit<V: ModelVisitor>(&self, visitor: V) -> V::Output {
        visitor.small(self)
    }

    fn name(&self) -> &'static str {
        "valley"
    }

    fn dim(&self) -> usize {
        self.p + self.q
    }

    fn n_samples(&self) -> usize {
        self.p
    }

    fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// Allocates two buffers of length `d` (not on the hot path, which uses the fused
    /// [`Model::batch_gradient`]).
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let d = self.dim();
        let mut z = vec![D::zero(); d];
        self.unrotate(theta, &mut z);
        let y = &z[self.p..];
        let s = self.profile_value(y);
        let sqrt_s = s.sqrt();
        let sp = self.sqrt_p_lambdas[i];
        let mut gz = vec![D::zero(); d];
        gz[i] = sqrt_s * sp;
        let factor = z[i] * sp / (sqrt_s * 2.0);
        for j in 0..self.q {
            gz[self.p + j] = factor * self.profile_derivative(z[self.p + j]);
        }
        self.rotate(&gz, grad_f);
        sqrt_s * z[i] * sp
    }

    fn scratch_len(&self) -> usize {
        2 * self.dim()
    }

    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        if self.rotation.is_none() {
            // Unrotated: the coordinates are the parameters; no copies.
            return self.coordinate_gradient(theta, batch, grad);
        }
        let d = self.dim();
        let (z, gz) = scratch[..2 * d].split_at_mut(d);
        self.unrotate(theta, z);
        let loss = self.coordinate_gradient(z, batch, gz);
        self.rotate(gz, grad);
        loss
    }

    fn default_start(&self) -> Vec<f64> {
        let mut z = vec![0.0; self.dim()];
        for v in z[self.p..].iter_mut() {
            *v = self.start_y;
        }
        self.to_theta(&z)
    }

    fn manifold_coordinates(&self, theta: &[f64]) -> Option<Vec<f64>> {
        Some(self.to_coordinates(theta)[self.p..].to_vec())
    }

    fn distance_to_manifold(&self, theta: &[f64]) -> Option<f64> {
        let z = self.to_coordinates(theta);
        Some(z[..self.p].iter().map(|x| x * x).sum::<f64>().sqrt())
    }

    fn loss_min(&self) -> Option<f64> {
        Some(0.0)
    }
}

impl LaneKernel for Valley {
    fn lane_scratch_len(&self) -> usize {
        by_lane_scratch_len(self)
    }

    /// The planar unrotated valley with full batches (T1's case) runs all lanes in one
    /// vectorised pass: the arithmetic of [`Valley::batch_gradient`] for `p = q = 1`, operation
    /// by operation (including its additions to zero), so results are bit-identical. Every
    /// other case goes lane by lane.
    #[inline(always)]
    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        if !self.is_planar() || batch.indices.is_some() {
            return lane_gradients_by_lane(self, theta, batch, grad, scratch, loss);
        }
        *loss = self.planar_lanes(theta, batch.shifts_at(0), grad).0;
    }
}

impl SmallLaneKernel for Valley {
    /// The planar unrotated valley (see [`Valley::planar_lanes`]).
    fn offers_small_lanes(&self) -> bool {
        self.is_planar()
    }

    #[inline(always)]
    fn small_lane_gradient<const D: usize>(
        &self,
        theta: &[Lanes; D],
        shift: Lanes,
        grad: &mut [Lanes; D],
    ) -> Lanes {
        self.planar_lanes(&theta[..], shift, &mut grad[..])
    }
}

impl Valley {
    /// Whether this is the planar unrotated valley (`p = q = 1`, no rotation), T1's case.
    fn is_planar(&self) -> bool {
        self.p == 1 && self.q == 1 && self.rotation.is_none()
    }

    /// The planar unrotated valley's full-batch gradient for all lanes (coordinates `x`, `y`
    /// of every lane in `theta`, label shifts `shift`): the arithmetic of
    /// [`Valley::batch_gradient`] for `p = q = 1`, operation by operation (including its
    /// additions to zero), so bit-identical to it. Writes the gradient, returns the losses.
    #[inline(always)]
    fn planar_lanes<T: LaneSlots + ?Sized, G: LaneSlots + ?Sized>(
        &self,
        theta: &T,
        shift: Lanes,
        grad: &mut G,
    ) -> Lanes {
        let (x, y) = (theta.get_lanes(0), theta.get_lanes(1));
        let (sp, c) = (self.sqrt_p_lambdas[0], self.c);
        // profile_value and profile_derivative; libm's sin only for Sin2.
        let (s, dprofile) = match self.profile {
            Profile::Quadratic => ((0.0 + y * y) * c + 1.0, y * (2.0 * c)),
            Profile::Sin2 => {
                let sn = y.map(f64::sin);
                ((0.0 + sn * sn) * c + 1.0, (y * 2.0).map(f64::sin) * c)
            }
        };
        let sqrt_s = s.sqrt();
        let r = sqrt_s * x * sp;
        let w = r - shift;
        grad.set_lanes(0, 0.0 + w * sqrt_s * sp);
        let factor = (0.0 + w * x * sp) / (sqrt_s * 2.0);
        grad.set_lanes(1, factor * dprofile);
        0.0 + r * r * 0.5
    }

    /// Normal curvature scales `lambda_i`.
    pub fn lambdas(&self) -> &[f64] {
        &self.lambdas
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::derivatives::{self, testing::check_derivatives};

    #[test]
    fn planar_valley_derivatives() {
        for profile in [Profile::Quadratic, Profile::Sin2] {
            for angle in [0.0, 0.4, 1.3] {
                let m = Valley::planar(profile, 1.0).with_angle(angle);
                check_derivatives(&m, &[0.3, -0.7], &[0.2, 1.1], &[-0.5, 0.8]);
            }
        }
    }

    #[test]
    fn nd_valley_derivatives() {
        let m =
            Valley::new(vec![1.0, 2.0, 0.5], 2, Profile::Quadratic, 0.7).with_random_rotation(3);
        let th = [0.1, -0.2, 0.3, 0.5, -1.0];
        let v = [0.3, 0.1, -0.4, 0.2, 0.9];
        let w = [-0.2, 0.5, 0.1, 0.7, -0.3];
        check_derivatives(&m, &th, &v, &w);
        let m = Valley::new(vec![1.0, 3.0], 3, Profile::Sin2, 0.5).with_random_rotation(9);
        check_derivatives(&m, &th, &v, &w);
    }

    /// docs/theory.md section 7: `L = 1/2 (1 + y^2) x^2`, `H = diag(a, 0)` on `x = 0`.
    #[test]
    fn planar_closed_form() {
        let m = Valley::planar(Profile::Quadratic, 1.0);
        let (x, y) = (0.4, 1.5);
        let mut g = [0.0; 2];
        let l = derivatives::gradient(&m, &[x, y], &mut g);
        assert!((l - 0.5 * (1.0 + y * y) * x * x).abs() < 1e-14);
        assert!((g[0] - (1.0 + y * y) * x).abs() < 1e-14);
        assert!((g[1] - y * x * x).abs() < 1e-14);
        let h = derivatives::hessian(&m, &[0.0, y]);
        assert!((h[(0, 0)] - (1.0 + y * y)).abs() < 1e-14);
        assert!(h[(1, 1)].abs() < 1e-14 && h[(0, 1)].abs() < 1e-14);
    }

    /// Rotation is orthogonal and the rotated loss is the unrotated loss of `R^T theta`.
    #[test]
    fn rotation_is_consistent() {
        let m = Valley::new(vec![1.0, 2.0], 2, Profile::Quadratic, 1.0).with_random_rotation(5);
        let r = m.rotation_matrix();
        let err = (&r.transpose() * &r - DMatrix::identity(4, 4)).abs().max();
        assert!(err < 1e-12);
        let flat = Valley::new(vec![1.0, 2.0], 2, Profile::Quadratic, 1.0);
        let z = [0.3, -0.2, 1.0, 0.5];
        let th = m.to_theta(&z);
        let l1 = derivatives::loss(&m, &th);
        let l0 = derivatives::loss(&flat, &z);
        assert!((l1 - l0).abs() < 1e-13);
        assert_eq!(m.manifold_coordinates(&th).unwrap().len(), 2);
        let dist = m.distance_to_manifold(&th).unwrap();
        assert!((dist - (0.09f64 + 0.04).sqrt()).abs() < 1e-12);
    }
}
