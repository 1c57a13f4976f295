//! The expression language's grammar and syntax tree.
//!
//! Parsed with [pest](https://pest.rs) (a PEG grammar and its Pratt parser for operator
//! precedence), so that every syntax error carries the position in the string and the tokens
//! that were expected there. Precedence, loosest first: `+ -`, `* /`, unary `-`, `^` (right
//! associative), so `-x^2 = -(x^2)` and `2^3^2 = 2^9`.

use pest::error::{Error as PestError, ErrorVariant};
use pest::iterators::Pairs;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::{Parser, Position};
use pest_derive::Parser;

#[derive(Parser)]
#[grammar_inline = r#"
WHITESPACE = _{ " " | "\t" | "\r" | "\n" }
number     = @{ (ASCII_DIGIT+ ~ ("." ~ ASCII_DIGIT*)? | "." ~ ASCII_DIGIT+) ~ (^"e" ~ ("+" | "-")? ~ ASCII_DIGIT+)? }
name       = @{ (ASCII_ALPHA | "_") ~ (ASCII_ALPHANUMERIC | "_")* }
index      = @{ ASCII_DIGIT+ }
call       =  { name ~ "(" ~ (expr ~ ("," ~ expr)*)? ~ ")" }
indexed    =  { name ~ "[" ~ index ~ "]" }
primary    = _{ call | indexed | number | name | "(" ~ expr ~ ")" }
neg        =  { "-" }
add        =  { "+" }
sub        =  { "-" }
mul        =  { "*" }
div        =  { "/" }
pow        =  { "^" | "**" }
infix      = _{ add | sub | pow | mul | div }
atom       = _{ neg* ~ primary }
expr       =  { atom ~ (infix ~ atom)* }
formula    = _{ SOI ~ expr ~ EOI }
"#]
struct Grammar;

/// A byte range of the source string.
pub type Span = (usize, usize);

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `^` (or `**`)
    Pow,
}

/// A node of the syntax tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A number literal.
    Number(f64),
    /// A name: a parameter, a constant or a data column.
    Name(String),
    /// `name[k]`: entry `k` (from 0) of a vector.
    Index(String, usize),
    /// `name(args)`: a function call.
    Call(String, Vec<Expr>),
    /// `-a`
    Neg(Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// An expression with the part of the source it was parsed from.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub node: Node,
    /// Where it is.
    pub span: Span,
}

/// The message of a syntax or meaning error at `span` of `source`: the line, a caret under the
/// offending part and `message` (pest's format).
pub fn message_at(source: &str, span: Span, message: &str) -> String {
    let variant = ErrorVariant::<Rule>::CustomError {
        message: message.to_string(),
    };
    let error = match (Position::new(source, span.0), Position::new(source, span.1)) {
        (Some(a), Some(b)) if span.1 > span.0 => PestError::new_from_span(variant, a.span(&b)),
        (Some(a), _) => PestError::new_from_pos(variant, a),
        _ => PestError::new_from_pos(variant, Position::from_start(source)),
    };
    error.to_string()
}

/// Parse `source` into its syntax tree; the error is a positioned message.
pub fn parse(source: &str) -> Result<Expr, String> {
    let mut pairs = Grammar::parse(Rule::formula, source).map_err(|e| {
        e.renamed_rules(|rule| {
            match rule {
                Rule::number => "a number",
                Rule::name => "a name",
                Rule::index => "an integer index",
                Rule::call | Rule::indexed => "a name",
                Rule::neg => "`-`",
                Rule::expr => "an expression",
                Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::pow => "an operator",
                Rule::EOI => "the end of the expression",
                _ => "more input",
            }
            .to_string()
        })
        .to_string()
    })?;
    let expr = pairs.next().ok_or_else(|| "empty expression".to_string())?;
    build(expr.into_inner(), source)
}

fn pratt() -> PrattParser<Rule> {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::infix(Rule::pow, Assoc::Right))
}

fn build(pairs: Pairs<'_, Rule>, source: &str) -> Result<Expr, String> {
    pratt()
        .map_primary(|p| {
            let span = (p.as_span().start(), p.as_span().end());
            let node = match p.as_rule() {
                Rule::number => Node::Number(p.as_str().parse::<f64>().map_err(|_| {
                    message_at(source, span, "a number literal that does not parse")
                })?),
                Rule::name => Node::Name(p.as_str().to_string()),
                Rule::indexed => {
                    let mut inner = p.into_inner();
                    let name = inner
                        .next()
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default();
                    let k = inner.next().map(|k| (k.as_str(), k.as_span()));
                    let (text, kspan) = k.ok_or_else(|| message_at(source, span, "an index"))?;
                    let k = text.parse::<usize>().map_err(|_| {
                        message_at(
                            source,
                            (kspan.start(), kspan.end()),
                            "an index that fits in an integer",
                        )
                    })?;
                    Node::Index(name, k)
                }
                Rule::call => {
                    let mut inner = p.into_inner();
                    let name = inner
                        .next()
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default();
                    let args = inner
                        .map(|a| build(a.into_inner(), source))
                        .collect::<Result<Vec<_>, _>>()?;
                    Node::Call(name, args)
                }
                Rule::expr => return build(p.into_inner(), source),
                other => {
                    return Err(message_at(source, span, &format!("unexpected {other:?}")));
                }
            };
            Ok(Expr { node, span })
        })
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let span = (op.as_span().start(), rhs.span.1);
            Ok(Expr {
                node: Node::Neg(Box::new(rhs)),
                span,
            })
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let op = match op.as_rule() {
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                _ => BinOp::Pow,
            };
            let span = (lhs.span.0, rhs.span.1);
            Ok(Expr {
                node: Node::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            })
        })
        .parse(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(e: &Expr) -> String {
        match &e.node {
            Node::Number(x) => format!("{x}"),
            Node::Name(n) => n.clone(),
            Node::Index(n, k) => format!("{n}[{k}]"),
            Node::Call(f, a) => {
                format!("{f}({})", a.iter().map(show).collect::<Vec<_>>().join(","))
            }
            Node::Neg(a) => format!("(-{})", show(a)),
            Node::Binary(op, a, b) => {
                let o = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Pow => "^",
                };
                format!("({}{o}{})", show(a), show(b))
            }
        }
    }

    #[test]
    fn precedence_and_associativity() {
        let cases = [
            ("1 + 2 * 3", "(1+(2*3))"),
            ("1 - 2 - 3", "((1-2)-3)"),
            ("-x^2", "(-(x^2))"),
            ("2^3^2", "(2^(3^2))"),
            ("a / b * c", "((a/b)*c)"),
            ("x ** 2", "(x^2)"),
            ("sqrt(1 + y^2) * x", "(sqrt((1+(y^2)))*x)"),
            ("dot(u^2 - v^2, x)", "dot(((u^2)-(v^2)),x)"),
            ("u[3] * -2.5e-1", "(u[3]*(-0.25))"),
            ("--x", "(-(-x))"),
            ("f()", "f()"),
        ];
        for (src, want) in cases {
            assert_eq!(show(&parse(src).unwrap()), want, "{src}");
        }
    }

    #[test]
    fn spans_cover_the_source() {
        let e = parse("  x + sin(y)").unwrap();
        assert_eq!(e.span, (2, 12));
        let Node::Binary(_, a, b) = e.node else {
            panic!("binary")
        };
        assert_eq!((a.span, b.span), ((2, 3), (6, 12)));
    }

    #[test]
    fn syntax_errors_point_at_the_position_and_say_what_was_expected() {
        let e = parse("x + * y").unwrap_err();
        assert!(e.contains("1:5"), "{e}");
        assert!(e.contains("expected a number, a name"), "{e}");
        let e = parse("sqrt(1 + y").unwrap_err();
        assert!(e.contains("1:11"), "{e}");
        let e = parse("x y").unwrap_err();
        assert!(e.contains("1:3") && e.contains("operator"), "{e}");
        let e = parse("u[1.5]").unwrap_err();
        assert!(e.contains("1:2"), "{e}");
        let e = parse("").unwrap_err();
        assert!(e.contains("1:1"), "{e}");
    }
}
