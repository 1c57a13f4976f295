//! Diagonal linear network `f(x) = sum_j (u_j^2 - v_j^2) x_j`, `theta = (u, v)`.
use super::{Model, Scalar};
use crate::data::Dataset;

/// Diagonal linear network (see module docs).
#[derive(Clone, Debug)]
pub struct DiagonalNetwork {
    train: Dataset,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
    floor: f64,
}

impl DiagonalNetwork {
    /// On `train` (`p` features, so `d = 2p`), with optional held-out data and teacher weights.
    pub fn new(train: Dataset, test: Option<Dataset>, teacher: Option<Vec<f64>>) -> Self {
        Self {
            train,
            test,
            teacher,
            floor: 1e-2,
        }
    }
    /// Floor added to `u^2` and `v^2` when splitting the minimum-l2 interpolator for the
    /// default start.
    pub fn with_floor(mut self, floor: f64) -> Self {
        self.floor = floor;
        self
    }
}

impl Model for DiagonalNetwork {
    fn name(&self) -> &'static str {
        "diagonal"
    }
    fn dim(&self) -> usize {
        2 * self.train.p
    }
    fn n_samples(&self) -> usize {
        self.train.n
    }
    fn targets(&self) -> &[f64] {
        &self.train.y
    }
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let _ = (theta, i, grad_f, &self.test, &self.teacher, self.floor);
        todo!()
    }
    fn default_start(&self) -> Vec<f64> {
        todo!()
    }
}
