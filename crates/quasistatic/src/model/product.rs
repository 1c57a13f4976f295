//! Scalar factorisation `f(x) = (theta_1 ... theta_D) x`, depth `D >= 2`.
use super::{Model, Scalar};
use crate::data::Dataset;

/// Product model (see module docs).
#[derive(Clone, Debug)]
pub struct ProductModel {
    depth: usize,
    train: Dataset,
    test: Option<Dataset>,
}

impl ProductModel {
    /// Depth `depth >= 2` on scalar-input data (`train.p == 1`).
    pub fn new(depth: usize, train: Dataset, test: Option<Dataset>) -> Self {
        Self { depth, train, test }
    }
    /// Attach teacher weights (for the teacher-distance observable).
    pub fn with_teacher(self, teacher: Vec<f64>) -> Self {
        let _ = teacher;
        self
    }
    /// THEORY.md's product model: one sample `x = 1`, target `target` (usually 1).
    pub fn scalar(depth: usize, target: f64) -> Self {
        Self::new(depth, Dataset::new(vec![1.0], vec![target], 1), None)
    }
}

impl Model for ProductModel {
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
        let _ = (theta, i, grad_f, &self.test);
        todo!()
    }
    fn default_start(&self) -> Vec<f64> {
        todo!()
    }
}
