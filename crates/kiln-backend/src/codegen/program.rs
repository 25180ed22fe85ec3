//! An elementwise program: what a generated kernel computes at one element
//! of its iteration space, as a list of expressions each referring to
//! earlier ones. Every kernel family wraps the same program text in its own
//! loop: the elementwise kernel per element, the reduction kernel per
//! reduced element, the GEMM kernel per product element.

use crate::error::{invalid, Result};
use crate::ops::elementwise::{BinaryOp, UnaryOp};

use super::words::Words;

/// One expression of a [`Program`]; operands are indices of earlier
/// expressions.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Operand `k` of the kernel at the current element.
    Load(usize),
    /// A constant, the same at every element.
    Scalar(f32),
    /// The value the kernel itself produces at this element (the product of
    /// a GEMM); only in epilogues.
    Anchor,
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    /// `cond != 0 ? a : b`.
    Select(usize, usize, usize),
    /// `x` times a dropout mask: `1/(1 − rate)` with probability `1 − rate`,
    /// else 0, a pure function of `seed`, the step number held by operand
    /// `step` (its first element) and the element's row-major index in the
    /// iteration space.
    Dropout {
        x: usize,
        rate: f32,
        seed: u64,
        step: usize,
    },
}

/// A list of expressions, in evaluation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub exprs: Vec<Expr>,
}

/// What the emitted body function needs from its caller.
pub(crate) struct Body {
    /// The WGSL of `struct Out` and `fn body(...)`.
    pub source: String,
    /// Operands the body reads per element, in argument order.
    pub loads: Vec<usize>,
    /// For each dropout key argument: (operand holding the step, seed words).
    pub keys: Vec<(usize, String, String)>,
}

impl Program {
    /// Appends an expression and returns its index.
    pub fn push(&mut self, e: Expr) -> usize {
        self.exprs.push(e);
        self.exprs.len() - 1
    }

    /// Checks that every reference points backwards and every operand exists.
    pub(crate) fn validate(&self, operands: usize, anchor: bool, results: &[usize]) -> Result<()> {
        let bad = |d: String| Err(invalid("generated kernel", d));
        for (i, e) in self.exprs.iter().enumerate() {
            let refs: Vec<usize> = match *e {
                Expr::Load(k) if k >= operands => {
                    return bad(format!("expression {i} loads operand {k} of {operands}"))
                }
                Expr::Anchor if !anchor => {
                    return bad(format!(
                        "expression {i} reads an anchor this kernel has not"
                    ))
                }
                Expr::Dropout { step, .. } if step >= operands => {
                    return bad(format!(
                        "dropout {i} reads its step from operand {step} of {operands}"
                    ))
                }
                Expr::Dropout { rate, .. } if !(0.0..1.0).contains(&rate) => {
                    return bad(format!("dropout {i}: rate {rate} must be in [0, 1)"))
                }
                Expr::Load(_) | Expr::Scalar(_) | Expr::Anchor => vec![],
                Expr::Unary(_, a) => vec![a],
                Expr::Binary(_, a, b) => vec![a, b],
                Expr::Select(c, a, b) => vec![c, a, b],
                Expr::Dropout { x, .. } => vec![x],
            };
            if let Some(r) = refs.into_iter().find(|&r| r >= i) {
                return bad(format!("expression {i} refers forward to {r}"));
            }
        }
        if let Some(&r) = results.iter().find(|&&r| r >= self.exprs.len()) {
            return bad(format!(
                "result {r} is not one of the {} expressions",
                self.exprs.len()
            ));
        }
        Ok(())
    }

    /// Emits `struct Out` and `fn body(P, flat, keys…, loads…, anchor) -> Out`
    /// returning the expressions `results` (fields `r0`, `r1`, …).
    pub(crate) fn body(&self, words: &mut Words, anchor: bool, results: &[usize]) -> Body {
        let mut loads: Vec<usize> = self
            .exprs
            .iter()
            .filter_map(|e| match e {
                Expr::Load(k) => Some(*k),
                _ => None,
            })
            .collect();
        loads.sort_unstable();
        loads.dedup();
        let mut keys = Vec::new();
        let mut lines = Vec::new();
        for (i, e) in self.exprs.iter().enumerate() {
            let v = |j: usize| format!("v{j}");
            let rhs = match e {
                Expr::Load(k) => format!("x{k}"),
                Expr::Scalar(c) => words.f(*c),
                Expr::Anchor => "anchor".to_string(),
                Expr::Unary(op, a) => {
                    let p = op.parameter().map(|p| words.f(p)).unwrap_or_default();
                    op.wgsl(&v(*a), &p)
                }
                Expr::Binary(op, a, b) => op.wgsl(&v(*a), &v(*b)),
                Expr::Select(c, a, b) => format!("select({}, {}, {} != 0.0)", v(*b), v(*a), v(*c)),
                Expr::Dropout {
                    x,
                    rate,
                    seed,
                    step,
                } => {
                    let keep = 1.0 - rate;
                    let key = format!("key{}", keys.len());
                    keys.push((
                        *step,
                        words.u(*seed as u32 as usize),
                        words.u((*seed >> 32) as usize),
                    ));
                    format!(
                        "select(0.0, {} * {}, dropout_unit(flat, {key}) < {})",
                        v(*x),
                        words.f(1.0 / keep),
                        words.f(keep)
                    )
                }
            };
            lines.push(format!("    let v{i} = {rhs};"));
        }
        let n_out = results.len().max(1);
        let fields: Vec<String> = (0..n_out).map(|k| format!("r{k}: f32")).collect();
        let values: Vec<String> = (0..n_out)
            .map(|k| {
                results
                    .get(k)
                    .map_or("0.0".to_string(), |r| format!("v{r}"))
            })
            .collect();
        let mut args = vec!["P: Words".to_string(), "flat: u32".to_string()];
        args.extend((0..keys.len()).map(|j| format!("key{j}: u32")));
        args.extend(loads.iter().map(|k| format!("x{k}: f32")));
        if anchor {
            args.push("anchor: f32".to_string());
        }
        let source = format!(
            "struct Out {{ {} }}\nfn body({}) -> Out {{\n{}\n    return Out({});\n}}\n",
            fields.join(", "),
            args.join(", "),
            lines.join("\n"),
            values.join(", ")
        );
        Body {
            source,
            loads,
            keys,
        }
    }

    /// A label naming the program's operations (`mul+add+relu`), so a
    /// profile reads.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self
            .exprs
            .iter()
            .filter_map(|e| match e {
                Expr::Unary(op, _) => Some(op.name()),
                Expr::Binary(op, _, _) => Some(op.name()),
                Expr::Select(..) => Some("select"),
                Expr::Dropout { .. } => Some("dropout"),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            "copy".to_string()
        } else {
            names.join("+")
        }
    }
}

impl Body {
    /// The call `body(P, flat, keys…, loads…[, anchor])`, with `load(k)`
    /// giving the expression of operand `k`'s value.
    pub fn call(&self, flat: &str, load: impl Fn(usize) -> String, anchor: Option<&str>) -> String {
        let mut args = vec!["P".to_string(), flat.to_string()];
        args.extend((0..self.keys.len()).map(|j| format!("key{j}")));
        args.extend(self.loads.iter().map(|&k| load(k)));
        if let Some(a) = anchor {
            args.push(a.to_string());
        }
        format!("body({})", args.join(", "))
    }
}
