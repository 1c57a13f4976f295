//! Two-layer network `f(x) = sum_j a_j s(w_j . x) / sqrt(width)`.
use super::{Model, Scalar};
use crate::data::Dataset;

/// Activation `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `tanh`.
    Tanh,
    /// GELU, tanh approximation.
    Gelu,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// Two-layer network (see module docs).
#[derive(Clone, Debug)]
pub struct TwoLayerNetwork {
    width: usize,
    activation: Activation,
    train: Dataset,
    test: Option<Dataset>,
    init_seed: u64,
    init_scale: f64,
}

impl TwoLayerNetwork {
    /// Width `width`, activation, data.
    pub fn new(
        width: usize,
        activation: Activation,
        train: Dataset,
        test: Option<Dataset>,
    ) -> Self {
        Self {
            width,
            activation,
            train,
            test,
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

impl Model for TwoLayerNetwork {
    fn name(&self) -> &'static str {
        "two_layer"
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
            self.activation,
            self.init_seed,
            self.init_scale,
        );
        todo!()
    }
    fn default_start(&self) -> Vec<f64> {
        todo!()
    }
}
