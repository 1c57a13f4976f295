//! `kind = "expression"`: a model written as a formula ([`crate::model::expression`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::ModelKind;
use crate::config::registry::KindTable;
use crate::config::DataConfig;
use crate::error::{Error, Result};
use crate::model::expression::{ExpressionModel, ExpressionSpec, Formula};
use crate::model::AnyModel;

/// `kind = "expression"`: parameters, and per-sample outputs or a loss, written as formulas.
///
/// ```toml
/// [model]
/// kind = "expression"
/// params = ["x", "y"]                  # scalars; or vectors: params = { u = 20, v = 20 }
/// output = "sqrt(1 + y^2) * x"         # f_i; loss = (1/n) sum_i 1/2 (f_i - y_i)^2
/// # loss = "(x^2 + y^2 - 1)^2"         # or the loss itself (no data, no labels)
/// start = { x = 0.0, y = 2.0 }         # a number per scalar; a number or a list per vector
/// constants = { c = 1.0 }              # optional named constants
/// ```
///
/// With a `[data]` section, `output` is one expression evaluated on every row: `x` is the row's
/// feature vector, `x[j]` feature `j` (from 0) and a CSV column may be used by its header name.
/// Without data, `output` may be a list of expressions, one per sample, with `targets` (default
/// 0). Functions: `exp log ln sqrt tanh sin cos sinh cosh sigmoid softplus abs` element-wise,
/// `sum mean prod` of a vector and `dot(a, b)`; operators `+ - * / ^` (`**` too) with scalars
/// broadcast over vectors; constants `pi`, `e`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpressionConfig {
    /// The parameters, in `theta` order (required).
    pub params: ParamsConfig,
    /// The per-sample output: one formula, or (without data) one per sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputConfig>,
    /// The loss formula (instead of `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    /// Without data: the targets of the outputs, one per output (default all 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<f64>>,
    /// Named constants (default none).
    #[serde(default)]
    pub constants: Named<f64>,
    /// The start per parameter (default 0 for every parameter not listed).
    #[serde(default)]
    pub start: Named<StartValue>,
}

impl Default for ExpressionConfig {
    /// The planar valley `f = sqrt(1 + y^2) x` from `(x, y) = (0, 2)`.
    fn default() -> Self {
        ExpressionConfig {
            params: ParamsConfig::Scalars(vec!["x".into(), "y".into()]),
            output: Some(OutputConfig::One("sqrt(1 + y^2) * x".into())),
            loss: None,
            targets: None,
            constants: Named::default(),
            start: Named(vec![
                ("x".into(), StartValue::Number(0.0)),
                ("y".into(), StartValue::Number(2.0)),
            ]),
        }
    }
}

impl KindTable for ExpressionConfig {
    const REQUIRED: &'static [(&'static str, &'static str)] = &[(
        "params",
        "the parameter names, e.g. [\"x\", \"y\"], or vector lengths, e.g. { u = 20, v = 20 }",
    )];
}

/// `params`: scalar names (`["x", "y"]`) or vectors with their lengths (`{ u = 20, v = 20 }`).
#[derive(Clone, Debug, PartialEq)]
pub enum ParamsConfig {
    /// Scalar parameters.
    Scalars(Vec<String>),
    /// Vector parameters, in the order written.
    Vectors(Vec<(String, usize)>),
}

/// `output`: one formula or a list of them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OutputConfig {
    /// One formula.
    One(String),
    /// One formula per sample (no data).
    Many(Vec<String>),
}

/// A start value: one number (a scalar, or every entry of a vector) or one per entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum StartValue {
    /// One number.
    Number(f64),
    /// One number per entry of a vector.
    List(Vec<f64>),
}

/// A TOML table read as a list of `(key, value)` in the order written.
#[derive(Clone, Debug, PartialEq)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct NamedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedVisitor<T> {
    type Value = Named<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Named<T>, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, T>()? {
            out.push((k, v));
        }
        Ok(Named(out))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(NamedVisitor(PhantomData))
    }
}

impl Serialize for ParamsConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ParamsConfig::Scalars(v) => v.serialize(s),
            ParamsConfig::Vectors(v) => Named(v.clone()).serialize(s),
        }
    }
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = ParamsConfig;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of names or a table of vector lengths")
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<ParamsConfig, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<String>()? {
            out.push(n);
        }
        Ok(ParamsConfig::Scalars(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<ParamsConfig, A::Error> {
        let named: Named<usize> = NamedVisitor(PhantomData).visit_map(map)?;
        Ok(ParamsConfig::Vectors(named.0))
    }
}

impl<'de> Deserialize<'de> for ParamsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

impl ParamsConfig {
    fn specs(&self) -> Vec<(String, Option<usize>)> {
        match self {
            ParamsConfig::Scalars(v) => v.iter().map(|n| (n.clone(), None)).collect(),
            ParamsConfig::Vectors(v) => v.iter().map(|(n, k)| (n.clone(), Some(*k))).collect(),
        }
    }
}

impl ExpressionConfig {
    fn formula(&self) -> Result<Formula> {
        match (&self.output, &self.loss) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "model.loss",
                "given with `output`",
                "either `output` (per-sample outputs, regression loss) or `loss`, not both",
            )),
            (None, None) => Err(Error::invalid(
                "model.output",
                "missing",
                "an `output` formula (per-sample output f_i) or a `loss` formula",
            )),
            (Some(OutputConfig::One(o)), None) => Ok(Formula::Outputs(vec![o.clone()])),
            (Some(OutputConfig::Many(o)), None) => Ok(Formula::Outputs(o.clone())),
            (None, Some(l)) => Ok(Formula::Loss(l.clone())),
        }
    }

    fn start_vector(&self, params: &[(String, Option<usize>)]) -> Result<Vec<f64>> {
        for (name, _) in &self.start.0 {
            if !params.iter().any(|(p, _)| p == name) {
                let names: Vec<&str> = params.iter().map(|(p, _)| p.as_str()).collect();
                return Err(Error::invalid(
                    format!("model.start.{name}"),
                    "given",
                    format!("a start for a parameter: {}", names.join(", ")),
                ));
            }
        }
        let mut theta = Vec::new();
        for (name, len) in params {
            let field = format!("model.start.{name}");
            let k = len.unwrap_or(1);
            match self.start.0.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
                None => theta.extend(std::iter::repeat_n(0.0, k)),
                Some(StartValue::Number(x)) => theta.extend(std::iter::repeat_n(*x, k)),
                Some(StartValue::List(v)) => {
                    if len.is_none() || v.len() != k {
                        return Err(Error::invalid(
                            field,
                            format!("{} numbers", v.len()),
                            match len {
                                None => "one number: the parameter is a scalar".to_string(),
                                Some(k) => format!("one number, or {k} numbers (one per entry)"),
                            },
                        ));
                    }
                    theta.extend_from_slice(v);
                }
            }
        }
        if let Some(j) = theta.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid("model.start", theta[j], "finite numbers"));
        }
        Ok(theta)
    }
}

impl ModelKind for ExpressionConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        let params = self.params.specs();
        if let ParamsConfig::Vectors(v) = &self.params {
            let total: u128 = v.iter().map(|(_, n)| *n as u128).sum();
            if let Some((name, n)) = v.iter().max_by_key(|(_, n)| *n) {
                super::model_size(
                    &format!("model.params.{name}"),
                    n,
                    total,
                    "the sum of the vector lengths",
                )?;
            }
        }
        let formula = self.formula()?;
        let start = self.start_vector(&params)?;
        let (data, columns) = match data {
            Some(d) => {
                let data = d.build()?;
                let columns = data.features.clone();
                (Some(data), columns)
            }
            None => (None, Vec::new()),
        };
        let model = ExpressionModel::new(ExpressionSpec {
            params,
            formula,
            constants: self.constants.0.clone(),
            data,
            columns,
            targets: self.targets.clone(),
            start,
        })?;
        Ok(AnyModel::Expression(model))
    }
}
