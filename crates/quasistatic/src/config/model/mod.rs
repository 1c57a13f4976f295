//! `[model]`: the model. One file per model, like [`crate::model`].

mod deep_linear;
mod diagonal;
mod expression;
mod linear2;
mod matrix_sensing;
mod mlp;
mod product;
mod two_layer;
mod valley;

pub use deep_linear::{DeepLinearConfig, StructureConfig};
pub use diagonal::DiagonalConfig;
pub use expression::{ExpressionConfig, Named, OutputConfig, ParamsConfig, StartValue};
pub use linear2::Linear2Config;
pub use matrix_sensing::MatrixSensingConfig;
pub use mlp::{MlpActivationConfig, MlpConfig};
pub use product::ProductConfig;
pub use two_layer::{ActivationConfig, TwoLayerConfig};
pub use valley::{ProfileConfig, ValleyConfig, ValleyNdConfig};

use super::registry::kinds;
use super::DataConfig;
use crate::data::Data;
use crate::error::{Error, Result};
use crate::model::AnyModel;

/// What a model kind does: build the library model (with its data).
pub trait ModelKind {
    /// Check the fields and build the model from the `[data]` section, if any.
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel>;
}

kinds! {
    /// `[model]`: `kind` is one of `valley`, `valley_nd`, `product`, `diagonal`, `two_layer`,
    /// `linear2`, `mlp`, `deep_linear`, `matrix_sensing`, `expression`. Every built-in model is
    /// a regression with loss `L = (1/n) sum_i 1/2 (f_i - y_i)^2`; an `expression` model may
    /// instead give its loss.
    pub enum ModelConfig in "model" as dyn ModelKind {
        /// The planar valley.
        "valley" => Valley(ValleyConfig),
        /// The valley with `p` normal and `q` tangent directions.
        "valley_nd" => ValleyNd(ValleyNdConfig),
        /// The scalar factorisation `theta_1 ... theta_D`.
        "product" => Product(ProductConfig),
        /// The diagonal linear network.
        "diagonal" => Diagonal(DiagonalConfig),
        /// The two-layer network.
        "two_layer" => TwoLayer(TwoLayerConfig),
        /// The two-layer linear network.
        "linear2" => Linear2(Linear2Config),
        /// A model written as a formula.
        "expression" => Expression(ExpressionConfig),
        /// The fully connected network of any depth.
        "mlp" => Mlp(MlpConfig),
        /// The deep linear network, dense or diagonal.
        "deep_linear" => DeepLinear(DeepLinearConfig),
        /// Low-rank matrix sensing (generates its own measurements).
        "matrix_sensing" => MatrixSensing(MatrixSensingConfig),
    }
}

impl ModelConfig {
    /// Check the fields and build the model from the `[data]` section, if any.
    pub fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        self.get().build(data)
    }
}

/// The data of model kind `kind`, which needs a `[data]` section.
/// Most numbers a model may hold when built (its parameters, or a rotation's `d x d`
/// entries): 100 000 000, 800 MB of `f64`, as for the measurement matrices of matrix sensing.
/// Larger sizes are refused before anything is allocated.
const MAX_MODEL_NUMBERS: u128 = 100_000_000;

/// Refuse a size field `field` = `value` for which the model would hold `numbers` (`how`
/// says how they are counted) above [`MAX_MODEL_NUMBERS`].
fn model_size(field: &str, value: impl std::fmt::Display, numbers: u128, how: &str) -> Result<()> {
    if numbers > MAX_MODEL_NUMBERS {
        return Err(Error::invalid(
            field,
            value,
            format!(
                "a size for which the model holds at most {MAX_MODEL_NUMBERS} numbers ({how} = {numbers})"
            ),
        ));
    }
    Ok(())
}

fn required_data(data: Option<&DataConfig>, kind: &str) -> Result<Data> {
    match data {
        Some(d) => d.build(),
        None => Err(Error::invalid(
            "data",
            "missing",
            format!("model kind `{kind}` needs a [data] section (kind = \"synthetic\" or \"csv\")"),
        )),
    }
}

/// Reject a `[data]` section for model kind `kind`, which has no data.
fn no_data(data: Option<&DataConfig>, kind: &str) -> Result<()> {
    match data {
        Some(_) => Err(Error::invalid(
            "data",
            "given",
            format!("model kind `{kind}` has no data; remove the [data] section"),
        )),
        None => Ok(()),
    }
}
