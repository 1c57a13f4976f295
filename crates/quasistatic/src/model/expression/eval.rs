//! The compiled program of an expression model and its interpreter.
//!
//! A [`Program`] is a flat list of instructions over a register file of slots. Each register is
//! a scalar (one slot) or a vector (`len` slots) and belongs to one of two stages: the
//! **parameter stage** depends on the parameters only and is evaluated once per gradient, the
//! **sample stage** reads the sample's data row and is evaluated once per sample of the batch.
//! Registers are written once (single assignment) and every instruction's inputs lie below its
//! output in the register file, which lets one mutable buffer hold them all.
//!
//! The gradient is reverse mode over the same program: per sample, the residual weight seeds
//! the output's adjoint and the sample stage is swept backwards, accumulating into the
//! adjoints of the parameter-stage registers; after the batch one backward sweep of the
//! parameter stage gives `grad L`. The interpreter is generic over [`Num`], which both every
//! num-dual scalar and [`Lanes`] implement: over `Dual64`, `HyperDual64`, ... the backward
//! sweep is itself differentiated (forward over reverse), so Hessian-vector products and third
//! derivatives are exact; over [`Lanes`] one sweep advances the [`LANES`] trajectories of a
//! group, each lane with exactly the `f64` operations of the scalar sweep (elementary
//! functions call the `f64` implementation lane by lane), so that results are bit-identical.

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use crate::engine::lanes::Lanes;
use crate::engine::LANES;
use crate::model::Scalar;

/// Where a register lives: slots `at..at + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    /// First slot.
    pub at: usize,
    /// Number of slots (1 for a scalar).
    pub len: usize,
}

/// An element-wise function of one register.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `-a`
    Neg,
    /// `a + c`
    AddC(f64),
    /// `c - a`
    RSubC(f64),
    /// `a * c`
    MulC(f64),
    /// `a / c`
    DivC(f64),
    /// `c / a`
    RDivC(f64),
    /// `a^n`, integer `n`
    PowI(i32),
    /// `a^c`, real `c`
    PowF(f64),
    /// `exp a`
    Exp,
    /// `ln a`
    Ln,
    /// `sqrt a`
    Sqrt,
    /// `tanh a`
    Tanh,
    /// `sin a`
    Sin,
    /// `cos a`
    Cos,
    /// `sinh a`
    Sinh,
    /// `cosh a`
    Cosh,
    /// `1 / (1 + exp(-a))`
    Sigmoid,
    /// `ln(1 + exp a)`
    Softplus,
    /// `|a|` (smooth away from 0)
    Abs,
}

/// An element-wise operator of two registers; a scalar operand is broadcast over a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

/// One instruction; its output register is [`Ins::out`].
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Parameters `theta[offset..offset + out.len]`.
    Param(usize),
    /// A constant scalar.
    Const(f64),
    /// Feature `j` of the sample's data row (sample stage).
    Feature(usize),
    /// The sample's whole feature vector (sample stage).
    Features,
    /// Element-wise function.
    Unary(Unary, Reg),
    /// Element-wise operator, broadcasting scalars.
    Binary(Binary, Reg, Reg),
    /// `sum_j a_j`
    Sum(Reg),
    /// `prod_j a_j`
    Prod(Reg),
    /// `sum_j a_j b_j`
    Dot(Reg, Reg),
    /// `sum_j a_j x_j` with the sample's feature vector `x` (fused, sample stage).
    DotFeatures(Reg),
    /// Entry `k` of a vector.
    Index(Reg, usize),
}

/// An instruction and its output register.
#[derive(Clone, Debug, PartialEq)]
pub struct Ins {
    /// What it computes.
    pub op: Op,
    /// Where it goes.
    pub out: Reg,
}

/// A compiled expression model: the parameter stage, the sample stage and the outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Instructions that depend on the parameters only, in order.
    pub param_ins: Vec<Ins>,
    /// Instructions that read the sample's data row, in order.
    pub sample_ins: Vec<Ins>,
    /// Total slots of the register file.
    pub slots: usize,
    /// The scalar output register of each program output (one per output expression).
    pub outputs: Vec<Reg>,
}

/// The arithmetic the interpreter needs: implemented by every num-dual scalar and by [`Lanes`].
pub trait Num:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// The constant `c`.
    fn cst(c: f64) -> Self;
    /// `self * c`
    fn mulc(self, c: f64) -> Self;
    /// `self / c`
    fn divc(self, c: f64) -> Self;
    /// `self + c`
    fn addc(self, c: f64) -> Self;
    /// `c - self`
    fn rsubc(self, c: f64) -> Self;
    /// `c / self`
    fn rdivc(self, c: f64) -> Self;
    /// An element-wise elementary function (not the operators).
    fn apply(self, f: Unary) -> Self;
    /// The sign (`-1`, `0`, `1`) of the real part, as a constant.
    fn sign(self) -> Self;
    /// Called after each entry of a vector loop is written: nothing for scalars; for
    /// [`Lanes`] an optimisation barrier that keeps the compiler from vectorising the loop
    /// across entries (transposed gathers and scatters, measured 3x slower on a dot product's
    /// gradient) instead of across the lanes. It changes no value.
    #[inline(always)]
    fn written(&self) {}
}

/// `f(a)` for a num-dual scalar (used for [`Lanes`] lane by lane with `D = f64`).
#[inline(always)]
fn elementary<D: Scalar>(a: D, f: Unary) -> D {
    match f {
        Unary::Neg => -a,
        Unary::AddC(c) => a + c,
        Unary::RSubC(c) => -a + c,
        Unary::MulC(c) => a * c,
        Unary::DivC(c) => a / c,
        Unary::RDivC(c) => a.recip() * c,
        // Squares and cubes as products (what `powi` computes, without its library call).
        Unary::PowI(2) => a * a,
        Unary::PowI(3) => a * a * a,
        Unary::PowI(n) => a.powi(n),
        Unary::PowF(c) => a.powf(c),
        Unary::Exp => a.exp(),
        Unary::Ln => a.ln(),
        Unary::Sqrt => a.sqrt(),
        Unary::Tanh => a.tanh(),
        Unary::Sin => a.sin(),
        Unary::Cos => a.cos(),
        Unary::Sinh => a.sinh(),
        Unary::Cosh => a.cosh(),
        Unary::Sigmoid => ((-a).exp() + 1.0).recip(),
        // ln(1 + e^a) = max(a, 0) + ln(1 + e^{-|a|}): finite for every finite a.
        Unary::Softplus => {
            if a.re() > 0.0 {
                a + (-a).exp().ln_1p()
            } else {
                a.exp().ln_1p()
            }
        }
        Unary::Abs => {
            if a.re() < 0.0 {
                -a
            } else {
                a
            }
        }
    }
}

impl<D: Scalar> Num for D {
    #[inline(always)]
    fn cst(c: f64) -> Self {
        D::from(c)
    }
    #[inline(always)]
    fn mulc(self, c: f64) -> Self {
        self * c
    }
    #[inline(always)]
    fn divc(self, c: f64) -> Self {
        self / c
    }
    #[inline(always)]
    fn addc(self, c: f64) -> Self {
        self + c
    }
    #[inline(always)]
    fn rsubc(self, c: f64) -> Self {
        -self + c
    }
    #[inline(always)]
    fn rdivc(self, c: f64) -> Self {
        self.recip() * c
    }
    #[inline(always)]
    fn apply(self, f: Unary) -> Self {
        elementary(self, f)
    }
    #[inline(always)]
    fn sign(self) -> Self {
        let r = self.re();
        D::from(if r > 0.0 {
            1.0
        } else if r < 0.0 {
            -1.0
        } else {
            0.0
        })
    }
}

impl Num for Lanes {
    #[inline(always)]
    fn cst(c: f64) -> Self {
        Lanes::splat(c)
    }
    #[inline(always)]
    fn mulc(self, c: f64) -> Self {
        self * c
    }
    #[inline(always)]
    fn divc(self, c: f64) -> Self {
        self / c
    }
    #[inline(always)]
    fn addc(self, c: f64) -> Self {
        self + c
    }
    #[inline(always)]
    fn rsubc(self, c: f64) -> Self {
        self.map(|a| a.rsubc(c))
    }
    #[inline(always)]
    fn rdivc(self, c: f64) -> Self {
        self.map(|a| a.rdivc(c))
    }
    #[inline(always)]
    fn apply(self, f: Unary) -> Self {
        match f {
            Unary::AddC(c) => self + c,
            Unary::MulC(c) => self * c,
            Unary::DivC(c) => self / c,
            Unary::Neg => -self,
            Unary::Sqrt => self.sqrt(),
            Unary::PowI(2) => self * self,
            Unary::PowI(3) => self * self * self,
            _ => self.map(|a| elementary(a, f)),
        }
    }
    #[inline(always)]
    fn sign(self) -> Self {
        self.map(|a| a.sign())
    }
    #[inline(always)]
    fn written(&self) {
        std::hint::black_box(self);
    }
}

/// `sum_j term(j)` for `j < len` in four interleaved partial sums, `s_r = sum_{j = r mod 4}`,
/// added as `(s_0 + s_1) + (s_2 + s_3)`: four independent chains of additions instead of one,
/// in an order that is part of the definition (every evaluation, scalar or lanes, uses it).
#[inline(always)]
pub fn sum4<V: Num>(len: usize, term: impl Fn(usize) -> V) -> V {
    let zero = V::cst(0.0);
    let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
    let mut j = 0;
    while j + 4 <= len {
        s0 += term(j);
        s1 += term(j + 1);
        s2 += term(j + 2);
        s3 += term(j + 3);
        j += 4;
    }
    if j < len {
        s0 += term(j);
    }
    if j + 1 < len {
        s1 += term(j + 1);
    }
    if j + 2 < len {
        s2 += term(j + 2);
    }
    (s0 + s1) + (s2 + s3)
}

/// The data row(s) the sample stage reads: one row for a scalar evaluation, one row per lane
/// for a group.
pub trait Rows<V: Num> {
    /// Feature `j`.
    fn feature(&self, j: usize) -> V;
    /// `sum_j a_j x_j`, summed by [`sum4`].
    fn dot(&self, a: &[V]) -> V;
    /// `out_j += g x_j`.
    fn axpy(&self, g: V, out: &mut [V]);
}

/// One data row (empty for a model without data).
pub struct Row<'a>(pub &'a [f64]);

impl<D: Scalar> Rows<D> for Row<'_> {
    #[inline(always)]
    fn feature(&self, j: usize) -> D {
        D::from(self.0[j])
    }
    #[inline(always)]
    fn dot(&self, a: &[D]) -> D {
        let x = &self.0[..a.len()];
        sum4(a.len(), |j| a[j] * x[j])
    }
    #[inline(always)]
    fn axpy(&self, g: D, out: &mut [D]) {
        for (o, &x) in out.iter_mut().zip(self.0) {
            *o += g * x;
        }
    }
}

/// The data rows of a group's lanes (unused lanes repeat a valid row).
pub enum LaneRows<'a> {
    /// Every lane reads the same row (full batches).
    Shared(&'a [f64]),
    /// Lane `l` reads row `l`.
    PerLane([&'a [f64]; LANES]),
}

impl LaneRows<'_> {
    #[inline(always)]
    fn column(&self, j: usize) -> Lanes {
        match self {
            LaneRows::Shared(row) => Lanes::splat(row[j]),
            LaneRows::PerLane(rows) => Lanes(std::array::from_fn(|l| rows[l][j])),
        }
    }
}

impl Rows<Lanes> for LaneRows<'_> {
    #[inline(always)]
    fn feature(&self, j: usize) -> Lanes {
        self.column(j)
    }
    #[inline(always)]
    fn dot(&self, a: &[Lanes]) -> Lanes {
        match self {
            LaneRows::Shared(row) => {
                let row = &row[..a.len()];
                sum4(a.len(), |j| a[j] * Lanes::splat(row[j]))
            }
            LaneRows::PerLane(_) => sum4(a.len(), |j| a[j] * self.column(j)),
        }
    }
    #[inline(always)]
    fn axpy(&self, g: Lanes, out: &mut [Lanes]) {
        match self {
            LaneRows::Shared(row) => {
                for (o, &x) in out.iter_mut().zip(*row) {
                    *o += g * Lanes::splat(x);
                    o.written();
                }
            }
            LaneRows::PerLane(_) => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o += g * self.column(j);
                    o.written();
                }
            }
        }
    }
}

/// Split the register file below `out` (the inputs) from `out`'s own slots.
#[inline(always)]
fn split<V>(v: &mut [V], out: Reg) -> (&mut [V], &mut [V]) {
    let (lo, hi) = v.split_at_mut(out.at);
    (lo, &mut hi[..out.len])
}

#[inline(always)]
fn slots<V>(v: &[V], r: Reg) -> &[V] {
    &v[r.at..r.at + r.len]
}

/// Run `ins` forwards: parameters come from `theta(k)`, data from `rows`. (Inlined into each
/// instruction-set version of the lane kernel.)
#[inline(always)]
pub fn forward<V: Num, R: Rows<V>>(ins: &[Ins], v: &mut [V], theta: impl Fn(usize) -> V, rows: &R) {
    for i in ins {
        let (lo, out) = split(v, i.out);
        match i.op {
            Op::Param(k) => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = theta(k + j);
                    o.written();
                }
            }
            Op::Const(c) => out[0] = V::cst(c),
            Op::Feature(j) => out[0] = rows.feature(j),
            Op::Features => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = rows.feature(j);
                }
            }
            Op::Unary(f, a) => {
                for (o, &x) in out.iter_mut().zip(slots(lo, a)) {
                    *o = x.apply(f);
                    o.written();
                }
            }
            Op::Binary(op, a, b) => {
                let (a, b) = (slots(lo, a), slots(lo, b));
                for (j, o) in out.iter_mut().enumerate() {
                    let x = a[if a.len() == 1 { 0 } else { j }];
                    let y = b[if b.len() == 1 { 0 } else { j }];
                    *o = match op {
                        Binary::Add => x + y,
                        Binary::Sub => x - y,
                        Binary::Mul => x * y,
                        Binary::Div => x / y,
                    };
                    o.written();
                }
            }
            Op::Sum(a) => {
                let a = slots(lo, a);
                out[0] = sum4(a.len(), |j| a[j]);
            }
            Op::Prod(a) => {
                let a = slots(lo, a);
                let mut p = a[0];
                for &x in &a[1..] {
                    p = p * x;
                }
                out[0] = p;
            }
            Op::Dot(a, b) => {
                let (a, b) = (slots(lo, a), slots(lo, b));
                out[0] = sum4(a.len(), |j| a[j] * b[j]);
            }
            Op::DotFeatures(a) => out[0] = rows.dot(slots(lo, a)),
            Op::Index(a, k) => out[0] = lo[a.at + k],
        }
    }
}

/// Run `ins` backwards: adds each instruction's contribution to the adjoints `w` of its
/// inputs, given the values `v` of the forward sweep and the adjoints of its output (already
/// complete, since every register is used only by later instructions).
#[inline(always)]
pub fn backward<V: Num, R: Rows<V>>(ins: &[Ins], v: &[V], w: &mut [V], rows: &R) {
    for i in ins.iter().rev() {
        let (lo, out) = split(w, i.out);
        let y = slots(v, i.out);
        match i.op {
            Op::Param(_) | Op::Const(_) | Op::Feature(_) | Op::Features => {}
            Op::Unary(f, a) => {
                let x = slots(v, a);
                for j in 0..out.len() {
                    let g = out[j];
                    let (x, y) = (x[j], y[j]);
                    let d = match f {
                        Unary::Neg => -g,
                        Unary::AddC(_) => g,
                        Unary::RSubC(_) => -g,
                        Unary::MulC(c) => g.mulc(c),
                        Unary::DivC(c) => g.divc(c),
                        Unary::RDivC(_) => -(g * (y / x)),
                        Unary::PowI(2) => g * x.mulc(2.0),
                        Unary::PowI(n) => g * x.apply(Unary::PowI(n - 1)).mulc(n as f64),
                        Unary::PowF(c) => g * x.apply(Unary::PowF(c - 1.0)).mulc(c),
                        Unary::Exp => g * y,
                        Unary::Ln => g / x,
                        Unary::Sqrt => (g / y).mulc(0.5),
                        Unary::Tanh => g * (y * y).rsubc(1.0),
                        Unary::Sin => g * x.apply(Unary::Cos),
                        Unary::Cos => -(g * x.apply(Unary::Sin)),
                        Unary::Sinh => g * x.apply(Unary::Cosh),
                        Unary::Cosh => g * x.apply(Unary::Sinh),
                        Unary::Sigmoid => g * (y * y.rsubc(1.0)),
                        Unary::Softplus => g * x.apply(Unary::Sigmoid),
                        Unary::Abs => g * x.sign(),
                    };
                    let s = &mut lo[a.at + if a.len == 1 { 0 } else { j }];
                    *s += d;
                    s.written();
                }
            }
            Op::Binary(op, a, b) => {
                for j in 0..out.len() {
                    let g = out[j];
                    let ja = a.at + if a.len == 1 { 0 } else { j };
                    let jb = b.at + if b.len == 1 { 0 } else { j };
                    match op {
                        Binary::Add => {
                            lo[ja] += g;
                            lo[jb] += g;
                        }
                        Binary::Sub => {
                            lo[ja] += g;
                            lo[jb] += -g;
                        }
                        Binary::Mul => {
                            let (x, z) = (v[ja], v[jb]);
                            lo[ja] += g * z;
                            lo[jb] += g * x;
                        }
                        Binary::Div => {
                            let z = v[jb];
                            let q = g / z;
                            lo[ja] += q;
                            lo[jb] += -(q * y[j]);
                        }
                    }
                    lo[ja].written();
                }
            }
            Op::Sum(a) => {
                let g = out[0];
                for s in &mut lo[a.at..a.at + a.len] {
                    *s += g;
                    s.written();
                }
            }
            Op::Prod(a) => {
                // d/da_j prod = prod_{i != j} a_i, without dividing (a factor may be zero):
                // O(len^2), for the short vectors a product is written over.
                let g = out[0];
                let x = slots(v, a);
                for j in 0..a.len {
                    let mut p = g;
                    for (i, &xi) in x.iter().enumerate() {
                        if i != j {
                            p = p * xi;
                        }
                    }
                    lo[a.at + j] += p;
                }
            }
            Op::Dot(a, b) => {
                let g = out[0];
                for j in 0..a.len {
                    let (x, z) = (v[a.at + j], v[b.at + j]);
                    lo[a.at + j] += g * z;
                    lo[b.at + j] += g * x;
                    lo[b.at + j].written();
                }
            }
            Op::DotFeatures(a) => rows.axpy(out[0], &mut lo[a.at..a.at + a.len]),
            Op::Index(a, k) => lo[a.at + k] += out[0],
        }
    }
}

/// Set the adjoints of the output registers of `ins` to zero.
#[inline(always)]
pub fn clear<V: Num>(ins: &[Ins], w: &mut [V]) {
    for i in ins {
        for s in &mut w[i.out.at..i.out.at + i.out.len] {
            *s = V::cst(0.0);
        }
    }
}

/// Add the parameter adjoints into the gradient: `grad(k) += w` for every [`Op::Param`].
#[inline(always)]
pub fn gather_gradient<V: Num>(ins: &[Ins], w: &[V], mut grad: impl FnMut(usize, V)) {
    for i in ins {
        if let Op::Param(k) = i.op {
            for j in 0..i.out.len {
                grad(k + j, w[i.out.at + j]);
            }
        }
    }
}
