//! Two-layer linear network / matrix factorisation regression `f(x) = v^T U x`.
use super::{Model, Scalar};
use crate::data::Dataset;

/// Two-layer linear network (see module docs).
#[derive(Clone, Debug)]
pub struct LinearTwoLayer {
    width: usize,
    train: Dataset,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
    init_seed: u64,
    init_scale: f64,
}

impl LinearTwoLayer {
    /// Hidden width `width`, data, optional teacher weights.
    pub fn new(
        width: usize,
        train: Dataset,
        test: Option<Dataset>,
        teacher: Option<Vec<f64>>,
    ) -> Self {
        Self {
            width,
            train,
            test,
            teacher,
            init_seed: 0,
            init_scale: 1.0,
        }
    }
    /// Seed and scale of the default (random) start.
    pub fn with_init(mut self, seed: u64, scale: f64) -> Self {
        self.init_seed = seed;
        self.init_scale = scale;
        self
    }
}

impl Model for LinearTwoLayer {
    fn name(&self) -> &'static str {
        "linear2"
    }
    fn dim(&self) -> usize {
        self.width * (self.train.p + 1)
    }
    fn n_samples(&self) -> usize {
        self.train.n
    }
    fn targets(&self) -> &[f64] {
        &self.train.y
    }
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let _ = (
            theta,
            i,
            grad_f,
            &self.test,
            &self.teacher,
            self.init_seed,
            self.init_scale,
        );
        todo!()
    }
    fn default_start(&self) -> Vec<f64> {
        todo!()
    }
}
