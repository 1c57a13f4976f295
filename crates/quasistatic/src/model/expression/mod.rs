//! Expression models: a landscape written as a formula in the configuration.
//!
//! A model is given by its parameters (scalars and vectors) and either
//!
//! - **per-sample outputs** `f_i(theta)`, with the regression loss
//!   `L = (1/n) sum_i 1/2 (f_i - y_i)^2` of every model ([`crate::model`]): one expression
//!   evaluated on each row of the data (features by name, `x` the feature vector, `x[j]` one
//!   feature), or, without data, a list of expressions, one per sample, with targets (default
//!   0); or
//! - **a loss** `L(theta)` written out, without data: one "sample" whose output is the loss
//!   itself ([`Model::is_regression`] is `false`), so label and mini-batch noise do not apply.
//!
//! The formula is parsed once ([`parse`]), compiled into a flat program ([`eval::Program`]) that
//! evaluates the parameter-only part once per gradient and the data-dependent part once per
//! sample, and run by one interpreter generic over the scalar: `f64` for the gradient, num-dual
//! numbers for every derivative the derivation needs (reverse mode differentiated forwards), and
//! [`Lanes`] for the engine's groups of trajectories, bit-identical to `f64` lane by lane.
//!
//! ```text
//! valley           output = "sqrt(1 + y^2) * x"                params = ["x", "y"]
//! product model    output = "a * b * x[0]"                     params = ["a", "b"]  (with data)
//! diagonal network output = "dot(u^2 - v^2, x)"                params = { u = p, v = p }
//! ring of minima   loss   = "(x^2 + y^2 - 1)^2"               params = ["x", "y"]
//! ```

pub mod compile;
pub mod eval;
pub mod parse;

use crate::data::{Data, Dataset};
use crate::engine::lanes::Lanes;
use crate::engine::LANES;
use crate::error::{Error, Result};

use super::{Batch, LaneBatch, LaneKernel, Model, ModelVisitor, Scalar, SmallLaneKernel};
pub use compile::{ParamSpec, Scope, FUNCTIONS};
use eval::{backward, clear, forward, gather_gradient, LaneRows, Program, Row};

/// What the expression gives.
#[derive(Clone, Debug, PartialEq)]
pub enum Formula {
    /// Per-sample outputs: one expression (evaluated on every data row) or, without data, one
    /// expression per sample.
    Outputs(Vec<String>),
    /// The loss itself (no data).
    Loss(String),
}

/// Everything an [`ExpressionModel`] is built from (the `[model]` section, resolved).
#[derive(Clone, Debug)]
pub struct ExpressionSpec {
    /// Parameters in `theta` order: name and `None` (scalar) or `Some(len)` (vector).
    pub params: Vec<(String, Option<usize>)>,
    /// The formula.
    pub formula: Formula,
    /// Named constants.
    pub constants: Vec<(String, f64)>,
    /// The data (outputs only); its feature names are `columns` (may be empty).
    pub data: Option<Data>,
    /// Names of the data's features, in column order (empty: only `x` and `x[j]`).
    pub columns: Vec<String>,
    /// Without data: the targets of the outputs (default all 0).
    pub targets: Option<Vec<f64>>,
    /// The start, `d` numbers.
    pub start: Vec<f64>,
}

/// A model written as a formula (see the module docs).
#[derive(Clone, Debug)]
pub struct ExpressionModel {
    program: Program,
    params: Vec<ParamSpec>,
    dim: usize,
    regression: bool,
    train: Option<Dataset>,
    test: Option<Dataset>,
    teacher: Option<Vec<f64>>,
    targets: Vec<f64>,
    n: usize,
    start: Vec<f64>,
}

const RESERVED: &[&str] = &["pi", "e"];

fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::invalid(
            field,
            format!("`{name}`"),
            "a name of letters, digits and `_`, not starting with a digit",
        ));
    }
    if RESERVED.contains(&name) || FUNCTIONS.iter().any(|(f, _, _)| *f == name) {
        return Err(Error::invalid(
            field,
            format!("`{name}`"),
            "a name that is not a function or a built-in constant (pi, e)",
        ));
    }
    Ok(())
}

impl ExpressionModel {
    /// Compile and check a model: names, shapes, every parameter used, a finite loss at the
    /// start. Errors name the `model.*` field and, for a formula, the position in it.
    pub fn new(spec: ExpressionSpec) -> Result<Self> {
        if spec.params.is_empty() {
            return Err(Error::invalid(
                "model.params",
                "[]",
                "at least one parameter",
            ));
        }
        let mut params = Vec::new();
        let mut offset = 0;
        for (name, len) in &spec.params {
            check_name("model.params", name)?;
            if params.iter().any(|p: &ParamSpec| &p.name == name) {
                return Err(Error::invalid(
                    "model.params",
                    format!("`{name}` twice"),
                    "distinct names",
                ));
            }
            if *len == Some(0) {
                return Err(Error::invalid(
                    format!("model.params.{name}"),
                    0,
                    "a vector length >= 1",
                ));
            }
            params.push(ParamSpec {
                name: name.clone(),
                len: *len,
                offset,
            });
            offset += len.unwrap_or(1);
        }
        let dim = offset;
        let mut constants = Vec::new();
        for (name, value) in &spec.constants {
            check_name("model.constants", name)?;
            if params.iter().any(|p| &p.name == name) {
                return Err(Error::invalid(
                    "model.constants",
                    format!("`{name}`"),
                    "a name that is not also a parameter",
                ));
            }
            if !value.is_finite() {
                return Err(Error::invalid(
                    format!("model.constants.{name}"),
                    value,
                    "a finite number",
                ));
            }
            constants.push((name.clone(), *value));
        }
        constants.push(("pi".to_string(), std::f64::consts::PI));
        constants.push(("e".to_string(), std::f64::consts::E));

        let (field, sources): (&str, Vec<&str>) = match &spec.formula {
            Formula::Outputs(o) => ("model.output", o.iter().map(String::as_str).collect()),
            Formula::Loss(l) => ("model.loss", vec![l.as_str()]),
        };
        if sources.is_empty() {
            return Err(Error::invalid(
                field,
                "[]",
                "at least one output expression",
            ));
        }
        let regression = matches!(spec.formula, Formula::Outputs(_));
        let data_scope =
            match (&spec.data, regression) {
                (Some(_), false) => return Err(Error::invalid(
                    "data",
                    "given",
                    "no [data] with `loss`: a loss formula is the whole loss; write a per-sample \
                     `output` to fit data",
                )),
                (Some(d), true) => {
                    if sources.len() != 1 {
                        return Err(Error::invalid(
                            field,
                            format!("{} expressions", sources.len()),
                            "one expression with [data]: it is evaluated on every row",
                        ));
                    }
                    let p = d.train.p;
                    let columns = if spec.columns.len() == p {
                        spec.columns.clone()
                    } else {
                        Vec::new()
                    };
                    if params.iter().any(|q| q.name == compile::FEATURES) {
                        return Err(Error::invalid(
                            "model.params",
                            "`x`",
                            "another name: with [data], `x` is the feature vector",
                        ));
                    }
                    Some((p, columns))
                }
                (None, _) => None,
            };
        let scope = Scope {
            params: params.clone(),
            constants,
            data: data_scope,
        };
        let (program, used) = compile::compile(&sources, &scope).map_err(|(k, msg)| {
            let f = if sources.len() > 1 {
                format!("{field}[{k}]")
            } else {
                field.to_string()
            };
            Error::invalid(f, format!("\"{}\"", sources[k]), format!("\n{msg}"))
        })?;
        if let Some(k) = used.iter().position(|u| !u) {
            return Err(Error::invalid(
                "model.params",
                format!("`{}`", params[k].name),
                format!(
                    "parameters the {} uses: `{}` appears in no expression",
                    if regression { "output" } else { "loss" },
                    params[k].name
                ),
            ));
        }

        let (train, test, teacher) = match spec.data {
            Some(d) => (Some(d.train), d.test, d.teacher),
            None => (None, None, None),
        };
        let n = match (&train, regression) {
            (Some(t), _) => t.n,
            (None, true) => sources.len(),
            (None, false) => 1,
        };
        let targets = match (&train, &spec.targets) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "model.targets",
                    "given",
                    "no targets with [data]: the data has them",
                ))
            }
            (Some(t), None) => t.y.clone(),
            (None, Some(_)) if !regression => {
                return Err(Error::invalid(
                    "model.targets",
                    "given",
                    "no targets with `loss`",
                ))
            }
            (None, Some(y)) => {
                if y.len() != n {
                    return Err(Error::invalid(
                        "model.targets",
                        format!("{} numbers", y.len()),
                        format!("one target per output expression: {n} numbers"),
                    ));
                }
                if let Some(j) = y.iter().position(|v| !v.is_finite()) {
                    return Err(Error::invalid(
                        format!("model.targets[{j}]"),
                        y[j],
                        "a finite number",
                    ));
                }
                y.clone()
            }
            (None, None) => vec![0.0; n],
        };
        if spec.start.len() != dim {
            return Err(Error::invalid(
                "model.start",
                format!("{} numbers", spec.start.len()),
                format!("{dim} numbers, one per parameter coordinate"),
            ));
        }
        let model = ExpressionModel {
            program,
            params,
            dim,
            regression,
            train,
            test,
            teacher,
            targets,
            n,
            start: spec.start,
        };
        let mut g = vec![0.0; dim];
        let mut scratch = vec![0.0; model.scratch_len()];
        let loss = model.batch_gradient(&model.start, Batch::FULL, &mut g, &mut scratch);
        if !loss.is_finite() || g.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "model.start",
                format!("{:?}", model.start),
                format!(
                    "a start where the loss and its gradient are finite (the loss there is {loss}{})",
                    if loss.is_finite() { ", its gradient is not" } else { "" }
                ),
            ));
        }
        Ok(model)
    }

    /// The parameters, in `theta` order.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The output register of sample `i`.
    #[inline(always)]
    fn output(&self, i: usize) -> usize {
        let k = if self.program.outputs.len() == 1 {
            0
        } else {
            i
        };
        self.program.outputs[k].at
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &[f64] {
        match &self.train {
            Some(t) => t.row(i),
            None => &[],
        }
    }

    /// Slots of the lane kernel's scratch: values and adjoints of every register for every
    /// lane, plus room to align them to [`Lanes`].
    fn lane_slots(&self) -> usize {
        2 * self.program.slots * LANES + LANES
    }
}

impl Model for ExpressionModel {
    fn name(&self) -> &'static str {
        "expression"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn n_samples(&self) -> usize {
        self.n
    }

    fn targets(&self) -> &[f64] {
        &self.targets
    }

    fn is_regression(&self) -> bool {
        self.regression
    }

    /// One reverse sweep for sample `i` (allocates its register file).
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        let p = &self.program;
        let mut v = vec![D::from(0.0); p.slots];
        let mut w = vec![D::from(0.0); p.slots];
        let row = Row(self.row(i));
        forward(&p.param_ins, &mut v, |k| theta[k], &row);
        forward(&p.sample_ins, &mut v, |k| theta[k], &row);
        let out = self.output(i);
        w[out] = D::from(1.0);
        backward(&p.sample_ins, &v, &mut w, &row);
        backward(&p.param_ins, &v, &mut w, &row);
        for g in grad_f.iter_mut() {
            *g = D::from(0.0);
        }
        gather_gradient(&p.param_ins, &w, |k, g| grad_f[k] += g);
        v[out]
    }

    fn scratch_len(&self) -> usize {
        2 * self.program.slots
    }

    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        let p = &self.program;
        let (v, rest) = scratch.split_at_mut(p.slots);
        let w = &mut rest[..p.slots];
        let b = batch.len(self.n);
        forward(&p.param_ins, v, |k| theta[k], &Row(&[]));
        clear(&p.param_ins, w);
        let mut loss = D::from(0.0);
        for k in 0..b {
            let i = batch.sample(k);
            let row = Row(self.row(i));
            forward(&p.sample_ins, v, |k| theta[k], &row);
            clear(&p.sample_ins, w);
            let out = self.output(i);
            let f = v[out];
            if self.regression {
                let r = f - self.targets[i];
                loss += r * r * 0.5;
                w[out] += r - batch.shift_at(k);
            } else {
                loss += f;
                w[out] += D::from(1.0);
            }
            backward(&p.sample_ins, v, w, &row);
        }
        for g in grad.iter_mut() {
            *g = D::from(0.0);
        }
        backward(&p.param_ins, v, w, &Row(&[]));
        gather_gradient(&p.param_ins, w, |k, g| grad[k] += g);
        let inv = 1.0 / b as f64;
        for g in grad.iter_mut() {
            *g *= inv;
        }
        loss * inv
    }

    fn lane_kernel(&self) -> Option<&dyn LaneKernel> {
        Some(self)
    }

    /// Offers the register step (see [`SmallLaneKernel`]) when it applies.
    fn visit<V: ModelVisitor>(&self, visitor: V) -> V::Output {
        if self.offers_small_lanes() {
            visitor.small(self)
        } else {
            visitor.general(self)
        }
    }

    fn default_start(&self) -> Vec<f64> {
        self.start.clone()
    }

    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        let test = self.test.as_ref()?;
        let p = &self.program;
        let mut v = vec![0.0; p.slots];
        forward(&p.param_ins, &mut v, |k| theta[k], &Row(&[]));
        let mut acc = 0.0;
        for i in 0..test.n {
            forward(&p.sample_ins, &mut v, |k| theta[k], &Row(test.row(i)));
            let r = v[p.outputs[0].at] - test.y[i];
            acc += r * r;
        }
        Some(acc / test.n as f64)
    }

    fn teacher_weights(&self) -> Option<&[f64]> {
        self.teacher.as_deref()
    }
}

impl LaneKernel for ExpressionModel {
    fn lane_scratch_len(&self) -> usize {
        self.lane_slots()
    }

    fn lane_gradients(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        self.lane_kernel_widest(theta, batch, grad, scratch, loss)
    }
}

/// Register files of at most this many slots run the register step (values and adjoints on
/// the stack).
const SMALL_SLOTS: usize = 24;

impl SmallLaneKernel for ExpressionModel {
    /// One sample, no data, a small program.
    fn offers_small_lanes(&self) -> bool {
        self.n == 1 && self.train.is_none() && self.program.slots <= SMALL_SLOTS
    }

    /// The sweeps of [`Model::batch_gradient`] for the one sample over [`Lanes`] held in a
    /// stack register file: bit-identical to it lane by lane.
    #[inline(always)]
    fn small_lane_gradient<const D: usize>(
        &self,
        theta: &[Lanes; D],
        shift: Lanes,
        grad: &mut [Lanes; D],
    ) -> Lanes {
        let p = &self.program;
        let slots = p.slots.min(SMALL_SLOTS);
        let mut buf = [std::mem::MaybeUninit::<Lanes>::uninit(); 2 * SMALL_SLOTS];
        for b in &mut buf[..2 * slots] {
            b.write(Lanes::ZERO);
        }
        // SAFETY: the first `2 * slots` entries were just initialised.
        let file =
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<Lanes>(), 2 * slots) };
        let (v, w) = file.split_at_mut(slots);
        let none = LaneRows::Shared(&[]);
        forward(&p.param_ins, v, |k| theta[k], &none);
        forward(&p.sample_ins, v, |k| theta[k], &none);
        let out = self.output(0);
        let f = v[out];
        let (loss, seed) = if self.regression {
            let r = f - Lanes::splat(self.targets[0]);
            (Lanes::ZERO + r * r * 0.5, r - shift)
        } else {
            (Lanes::ZERO + f, Lanes::splat(1.0))
        };
        w[out] += seed;
        backward(&p.sample_ins, v, w, &none);
        for g in grad.iter_mut() {
            *g = Lanes::ZERO;
        }
        backward(&p.param_ins, v, w, &none);
        gather_gradient(&p.param_ins, w, |k, g| grad[k] += g);
        // The batch mean over one sample (`* 1.0` in the scalar sweep) changes no bit.
        loss
    }
}

impl ExpressionModel {
    crate::engine::lanes::lane_kernel_versions!(
        lane_kernel,
        lane_kernel_avx512,
        lane_kernel_avx2,
        lane_kernel_widest
    );

    /// The same sweeps as [`Model::batch_gradient`] over [`Lanes`]: each lane's arithmetic is
    /// the `f64` one, so the results are bit-identical (in every instruction-set version).
    #[inline(always)]
    fn lane_kernel(
        &self,
        theta: &[f64],
        batch: LaneBatch<'_>,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let p = &self.program;
        // SAFETY: `Lanes` is `repr(C)` over `[f64; LANES]`: every bit pattern of the `f64`s is a
        // valid `Lanes`, and `align_to_mut` hands out only the correctly aligned middle part.
        let (_, lanes, _) = unsafe { scratch[..self.lane_slots()].align_to_mut::<Lanes>() };
        let (v, rest) = lanes.split_at_mut(p.slots);
        let w = &mut rest[..p.slots];
        let theta_at = |k: usize| Lanes::load(&theta[k * LANES..(k + 1) * LANES]);
        let used = batch.lanes;
        forward(&p.param_ins, v, theta_at, &LaneRows::Shared(&[]));
        clear(&p.param_ins, w);
        let mut sum = Lanes::ZERO;
        let sample = |k: usize, l: usize| match batch.indices {
            Some(ix) => ix[l.min(used - 1) * batch.stride + k],
            None => k,
        };
        for k in 0..batch.size {
            // Lanes on one row (full batches, or mini-batches that agree) read it once.
            let first = sample(k, 0);
            let shared = (1..used).all(|l| sample(k, l) == first);
            let rows = if shared {
                LaneRows::Shared(self.row(first))
            } else {
                LaneRows::PerLane(std::array::from_fn(|l| self.row(sample(k, l))))
            };
            forward(&p.sample_ins, v, theta_at, &rows);
            clear(&p.sample_ins, w);
            // Every lane on one sample (full batches): its output and target as vectors, the
            // same operations lane by lane as below (measured 5-7% on T3x).
            if shared {
                let out = self.output(first);
                let seed = if self.regression {
                    let r = v[out] - Lanes::splat(self.targets[first]);
                    sum += r * r * 0.5;
                    r - batch.shifts_at(k)
                } else {
                    sum += v[out];
                    Lanes::splat(1.0)
                };
                w[out] += seed;
                backward(&p.sample_ins, v, w, &rows);
                continue;
            }
            let outs: [usize; LANES] = std::array::from_fn(|l| self.output(sample(k, l)));
            let f = Lanes(std::array::from_fn(|l| v[outs[l]].0[l]));
            let seed = if self.regression {
                let y = Lanes(std::array::from_fn(|l| self.targets[sample(k, l)]));
                let r = f - y;
                sum += r * r * 0.5;
                r - batch.shifts_at(k)
            } else {
                sum += f;
                Lanes::splat(1.0)
            };
            for l in 0..LANES {
                w[outs[l]].0[l] += seed.0[l];
            }
            backward(&p.sample_ins, v, w, &rows);
        }
        for g in grad[..self.dim * LANES].iter_mut() {
            *g = 0.0;
        }
        backward(&p.param_ins, v, w, &LaneRows::Shared(&[]));
        gather_gradient(&p.param_ins, w, |k, g| {
            let at = &mut grad[k * LANES..(k + 1) * LANES];
            (Lanes::load(at) + g).store(at);
        });
        let inv = 1.0 / batch.size as f64;
        for g in grad[..self.dim * LANES].iter_mut() {
            *g *= inv;
        }
        *loss = (sum * inv).0;
    }
}

#[cfg(test)]
mod tests;
