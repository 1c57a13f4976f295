//! From syntax trees to a [`Program`]: names resolved, shapes checked, constants folded,
//! instructions split into the parameter and the sample stage.

use super::eval::{Binary, Ins, Op, Program, Reg, Unary};
use super::parse::{message_at, BinOp, Expr, Node, Span};

/// A parameter: a scalar (`len = None`) or a vector of `len` entries, at `theta[offset..]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Its name.
    pub name: String,
    /// `None` for a scalar, `Some(k)` for a vector of `k` entries.
    pub len: Option<usize>,
    /// Its first coordinate in `theta`.
    pub offset: usize,
}

/// The names an expression may use besides the functions.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The parameters, in `theta` order.
    pub params: Vec<ParamSpec>,
    /// Named constants (user constants, then `pi` and `e`).
    pub constants: Vec<(String, f64)>,
    /// With data: the number `p` of features and their column names (may be empty).
    pub data: Option<(usize, Vec<String>)>,
}

/// The data's feature vector is called `x`.
pub const FEATURES: &str = "x";

/// The functions of the language: name, arity, description.
pub const FUNCTIONS: &[(&str, usize, &str)] = &[
    ("exp", 1, "e^a"),
    ("log", 1, "natural logarithm"),
    ("ln", 1, "natural logarithm"),
    ("sqrt", 1, "square root"),
    ("tanh", 1, "hyperbolic tangent"),
    ("sin", 1, "sine"),
    ("cos", 1, "cosine"),
    ("sinh", 1, "hyperbolic sine"),
    ("cosh", 1, "hyperbolic cosine"),
    ("sigmoid", 1, "1 / (1 + e^-a)"),
    ("softplus", 1, "ln(1 + e^a)"),
    ("abs", 1, "|a|, smooth away from 0"),
    ("sum", 1, "sum of a vector's entries"),
    ("mean", 1, "mean of a vector's entries"),
    ("prod", 1, "product of a vector's entries"),
    ("dot", 2, "sum_j a_j b_j of two vectors of one length"),
];

#[derive(Clone, Copy, Debug)]
enum Val {
    Const(f64),
    Reg {
        reg: Reg,
        sample: bool,
    },
    /// The data's feature vector, materialised only where it is not fused into `dot`.
    Features(usize),
}

impl Val {
    fn len(&self) -> usize {
        match self {
            Val::Const(_) => 1,
            Val::Reg { reg, .. } => reg.len,
            Val::Features(p) => *p,
        }
    }
    fn sample(&self) -> bool {
        matches!(self, Val::Reg { sample: true, .. } | Val::Features(_))
    }
}

struct Builder<'a> {
    scope: &'a Scope,
    src: &'a str,
    param_ins: Vec<Ins>,
    sample_ins: Vec<Ins>,
    slots: usize,
    params: Vec<Option<Val>>,
    features: Option<Val>,
    used: Vec<bool>,
}

/// Compile the output (or loss) expressions `sources` in `scope` into one program. Returns the
/// program and, per parameter, whether some expression uses it; an error is a positioned
/// message and the index of the source it is about.
pub fn compile(sources: &[&str], scope: &Scope) -> Result<(Program, Vec<bool>), (usize, String)> {
    let mut b = Builder {
        scope,
        src: "",
        param_ins: Vec::new(),
        sample_ins: Vec::new(),
        slots: 0,
        params: vec![None; scope.params.len()],
        features: None,
        used: vec![false; scope.params.len()],
    };
    let mut outputs = Vec::new();
    for (k, src) in sources.iter().enumerate() {
        let expr = super::parse::parse(src).map_err(|e| (k, e))?;
        b.src = src;
        let v = b.expr(&expr).map_err(|e| (k, e))?;
        if v.len() != 1 {
            return Err((
                k,
                message_at(
                    src,
                    expr.span,
                    &format!(
                        "a scalar, but this is a vector of {} entries; reduce it with sum(...), \
                         mean(...), prod(...) or dot(..., ...)",
                        v.len()
                    ),
                ),
            ));
        }
        let reg = match v {
            Val::Reg { reg, .. } => reg,
            other => b.reg(other).0,
        };
        outputs.push(reg);
    }
    Ok((
        Program {
            param_ins: b.param_ins,
            sample_ins: b.sample_ins,
            slots: b.slots,
            outputs,
        },
        b.used,
    ))
}

impl Builder<'_> {
    fn err(&self, span: Span, msg: &str) -> String {
        message_at(self.src, span, msg)
    }

    fn emit(&mut self, op: Op, len: usize, sample: bool) -> Val {
        let reg = Reg {
            at: self.slots,
            len,
        };
        self.slots += len;
        let ins = Ins { op, out: reg };
        if sample {
            self.sample_ins.push(ins);
        } else {
            self.param_ins.push(ins);
        }
        Val::Reg { reg, sample }
    }

    fn reg(&mut self, v: Val) -> (Reg, bool) {
        match v {
            Val::Reg { reg, sample } => (reg, sample),
            Val::Const(c) => match self.emit(Op::Const(c), 1, false) {
                Val::Reg { reg, sample } => (reg, sample),
                _ => unreachable!("emit returns a register"),
            },
            Val::Features(_) => match self.features() {
                Val::Reg { reg, sample } => (reg, sample),
                _ => unreachable!("features() returns a register"),
            },
        }
    }

    fn names_in_scope(&self) -> String {
        let mut names: Vec<String> = self
            .scope
            .params
            .iter()
            .map(|p| match p.len {
                None => format!("`{}`", p.name),
                Some(k) => format!("`{}` (vector of {k})", p.name),
            })
            .collect();
        names.extend(self.scope.constants.iter().map(|(n, _)| format!("`{n}`")));
        if let Some((p, cols)) = &self.scope.data {
            names.push(format!("`{FEATURES}` (the data's {p} features)"));
            names.extend(cols.iter().map(|c| format!("`{c}`")));
        }
        names.join(", ")
    }

    fn param(&mut self, k: usize) -> Val {
        self.used[k] = true;
        if let Some(v) = self.params[k] {
            return v;
        }
        let spec = &self.scope.params[k];
        let v = self.emit(Op::Param(spec.offset), spec.len.unwrap_or(1), false);
        self.params[k] = Some(v);
        v
    }

    fn features(&mut self) -> Val {
        if let Some(v) = self.features {
            return v;
        }
        let p = self.scope.data.as_ref().map_or(0, |d| d.0);
        let v = self.emit(Op::Features, p, true);
        self.features = Some(v);
        v
    }

    fn name(&mut self, name: &str, span: Span) -> Result<Val, String> {
        if let Some(k) = self.scope.params.iter().position(|p| p.name == name) {
            return Ok(self.param(k));
        }
        if let Some((_, c)) = self.scope.constants.iter().find(|(n, _)| n == name) {
            return Ok(Val::Const(*c));
        }
        if let Some((_, cols)) = &self.scope.data {
            if name == FEATURES {
                return Ok(Val::Features(self.scope.data.as_ref().map_or(0, |d| d.0)));
            }
            if let Some(j) = cols.iter().position(|c| c == name) {
                return Ok(self.emit(Op::Feature(j), 1, true));
            }
        }
        if FUNCTIONS.iter().any(|(f, _, _)| *f == name) {
            return Err(self.err(
                span,
                &format!("`{name}` is a function: call it as {name}(...)"),
            ));
        }
        Err(self.err(
            span,
            &format!(
                "unknown name `{name}`; the names in scope are {}",
                self.names_in_scope()
            ),
        ))
    }

    fn index(&mut self, name: &str, k: usize, span: Span) -> Result<Val, String> {
        if let Some(i) = self.scope.params.iter().position(|p| p.name == name) {
            let spec = self.scope.params[i].clone();
            let Some(len) = spec.len else {
                return Err(self.err(
                    span,
                    &format!("`{name}` is a scalar parameter: write `{name}`, not `{name}[{k}]`"),
                ));
            };
            if k >= len {
                return Err(self.err(
                    span,
                    &format!("an index in 0..{len} (`{name}` has {len} entries)"),
                ));
            }
            self.used[i] = true;
            // One entry of a parameter vector is the parameter itself, not a copy of the vector.
            return Ok(self.emit(Op::Param(spec.offset + k), 1, false));
        }
        if let Some((p, _)) = &self.scope.data {
            if name == FEATURES {
                if k >= *p {
                    return Err(self.err(
                        span,
                        &format!("an index in 0..{p} (the data has {p} features)"),
                    ));
                }
                return Ok(self.emit(Op::Feature(k), 1, true));
            }
        }
        Err(self.err(
            span,
            &format!(
                "a vector to index; `{name}` is not one (the names in scope are {})",
                self.names_in_scope()
            ),
        ))
    }

    fn unary(&mut self, f: Unary, a: Val) -> Val {
        if let Val::Const(c) = a {
            return Val::Const(super::eval::Num::apply(c, f));
        }
        let (ra, s) = self.reg(a);
        self.emit(Op::Unary(f, ra), ra.len, s)
    }

    fn binary(&mut self, op: BinOp, a: Val, b: Val, span: Span) -> Result<Val, String> {
        let (la, lb) = (a.len(), b.len());
        if la != lb && la != 1 && lb != 1 {
            return Err(self.err(
                span,
                &format!("operands of one length or a scalar, but the lengths are {la} and {lb}"),
            ));
        }
        Ok(match (op, a, b) {
            (BinOp::Add, Val::Const(x), Val::Const(y)) => Val::Const(x + y),
            (BinOp::Sub, Val::Const(x), Val::Const(y)) => Val::Const(x - y),
            (BinOp::Mul, Val::Const(x), Val::Const(y)) => Val::Const(x * y),
            (BinOp::Div, Val::Const(x), Val::Const(y)) => Val::Const(x / y),
            (BinOp::Pow, Val::Const(x), Val::Const(y)) => Val::Const(x.powf(y)),
            (BinOp::Add | BinOp::Sub, v, Val::Const(0.0)) => v,
            (BinOp::Add, Val::Const(0.0), v) => v,
            (BinOp::Mul | BinOp::Div, v, Val::Const(1.0)) => v,
            (BinOp::Mul, Val::Const(1.0), v) => v,
            (BinOp::Add, v, Val::Const(c)) | (BinOp::Add, Val::Const(c), v) => {
                self.unary(Unary::AddC(c), v)
            }
            (BinOp::Sub, v, Val::Const(c)) => self.unary(Unary::AddC(-c), v),
            (BinOp::Sub, Val::Const(c), v) => self.unary(Unary::RSubC(c), v),
            (BinOp::Mul, v, Val::Const(c)) | (BinOp::Mul, Val::Const(c), v) => {
                self.unary(Unary::MulC(c), v)
            }
            (BinOp::Div, v, Val::Const(c)) => self.unary(Unary::DivC(c), v),
            (BinOp::Div, Val::Const(c), v) => self.unary(Unary::RDivC(c), v),
            (BinOp::Pow, v, Val::Const(c)) => {
                if c == 1.0 {
                    v
                } else if c == 0.5 {
                    self.unary(Unary::Sqrt, v)
                } else if c.fract() == 0.0 && c.abs() <= 64.0 {
                    self.unary(Unary::PowI(c as i32), v)
                } else {
                    self.unary(Unary::PowF(c), v)
                }
            }
            // c^a = exp(a ln c)
            (BinOp::Pow, Val::Const(c), v) => {
                if c <= 0.0 {
                    return Err(self.err(span, "a positive base for a variable exponent"));
                }
                let t = self.unary(Unary::MulC(c.ln()), v);
                self.unary(Unary::Exp, t)
            }
            // a^b = exp(b ln a)
            (BinOp::Pow, a, b) => {
                let l = self.unary(Unary::Ln, a);
                let t = self.binary(BinOp::Mul, b, l, span)?;
                self.unary(Unary::Exp, t)
            }
            (op, a, b) => {
                let (ra, sa) = self.reg(a);
                let (rb, sb) = self.reg(b);
                let op = match op {
                    BinOp::Add => Binary::Add,
                    BinOp::Sub => Binary::Sub,
                    BinOp::Mul => Binary::Mul,
                    _ => Binary::Div,
                };
                self.emit(Op::Binary(op, ra, rb), la.max(lb), sa || sb)
            }
        })
    }

    fn call(&mut self, f: &str, args: &[Expr], span: Span) -> Result<Val, String> {
        let Some(&(_, arity, _)) = FUNCTIONS.iter().find(|(n, _, _)| *n == f) else {
            let known: Vec<&str> = FUNCTIONS.iter().map(|(n, _, _)| *n).collect();
            return Err(self.err(
                span,
                &format!(
                    "unknown function `{f}`; the functions are {}",
                    known.join(", ")
                ),
            ));
        };
        if args.len() != arity {
            return Err(self.err(
                span,
                &format!(
                    "`{f}` takes {arity} argument{}, found {}",
                    if arity == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        let vals = args
            .iter()
            .map(|a| self.expr(a))
            .collect::<Result<Vec<_>, _>>()?;
        let a = vals[0];
        Ok(match f {
            "exp" => self.unary(Unary::Exp, a),
            "log" | "ln" => self.unary(Unary::Ln, a),
            "sqrt" => self.unary(Unary::Sqrt, a),
            "tanh" => self.unary(Unary::Tanh, a),
            "sin" => self.unary(Unary::Sin, a),
            "cos" => self.unary(Unary::Cos, a),
            "sinh" => self.unary(Unary::Sinh, a),
            "cosh" => self.unary(Unary::Cosh, a),
            "sigmoid" => self.unary(Unary::Sigmoid, a),
            "softplus" => self.unary(Unary::Softplus, a),
            "abs" => self.unary(Unary::Abs, a),
            "sum" | "mean" | "prod" => {
                let k = a.len();
                let v = if k == 1 {
                    a
                } else {
                    let (ra, s) = self.reg(a);
                    let op = if f == "prod" {
                        Op::Prod(ra)
                    } else {
                        Op::Sum(ra)
                    };
                    self.emit(op, 1, s)
                };
                if f == "mean" && k > 1 {
                    self.unary(Unary::DivC(k as f64), v)
                } else {
                    v
                }
            }
            _ => {
                // dot
                let b = vals[1];
                if a.len() != b.len() {
                    return Err(self.err(
                        span,
                        &format!(
                            "two vectors of one length, but the lengths are {} and {}",
                            a.len(),
                            b.len()
                        ),
                    ));
                }
                if a.len() == 1 {
                    return self.binary(BinOp::Mul, a, b, span);
                }
                // dot(w, x) with parameter-stage w: one fused pass over the data row.
                match (a, b) {
                    (w, Val::Features(_)) | (Val::Features(_), w) if !w.sample() => {
                        let (rw, _) = self.reg(w);
                        return Ok(self.emit(Op::DotFeatures(rw), 1, true));
                    }
                    _ => {}
                }
                let (ra, sa) = self.reg(a);
                let (rb, sb) = self.reg(b);
                self.emit(Op::Dot(ra, rb), 1, sa || sb)
            }
        })
    }

    fn expr(&mut self, e: &Expr) -> Result<Val, String> {
        match &e.node {
            Node::Number(x) => Ok(Val::Const(*x)),
            Node::Name(n) => self.name(n, e.span),
            Node::Index(n, k) => self.index(n, *k, e.span),
            Node::Neg(a) => {
                let a = self.expr(a)?;
                Ok(self.unary(Unary::Neg, a))
            }
            Node::Binary(op, a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                self.binary(*op, a, b, e.span)
            }
            Node::Call(f, args) => self.call(f, args, e.span),
        }
    }
}
