//! The epilogue of the GEMM-shaped kernels (matrix products, convolutions):
//! `fn epi(P, bt, m, n, anchor)` evaluates the program at output element
//! `(bt, m, n)` — `anchor` the kernel's value there — and stores its results.
//!
//! The epilogue's iteration space is `[batch axes…, M, column axes…]`: the
//! kernel's batch index `bt` walks the batch axes, `m` the row axis and `n`
//! the column axes together (a convolution's `H×W`). Coordinates are split
//! out only where some layout needs them.

use super::program::Body;
use super::words::Words;
use super::{row_major, Operand, Store};

/// The WGSL of `fn epi(…)` over `shape`, whose first `batch_axes` axes the
/// batch index walks; the next is the row axis, the rest the column axes.
#[allow(clippy::too_many_arguments)] // the epilogue's inputs, gathered once by each kernel generator
pub(crate) fn epilogue_fn(
    words: &mut Words,
    shape: &[usize],
    batch_axes: usize,
    body: &Body,
    operands: &[Operand],
    stores: &[Store],
    op_bind: &[usize],
    st_bind: &[usize],
) -> String {
    let mut layouts: Vec<(usize, Vec<usize>)> = operands
        .iter()
        .map(|o| (o.layout.offset, o.layout.strides.clone()))
        .chain(
            stores
                .iter()
                .map(|s| (s.layout.offset, s.layout.strides.clone())),
        )
        .collect();
    layouts.push((0, row_major(shape)));
    let flat = layouts.len() - 1;
    let row = batch_axes;
    let cols = row + 1..shape.len();
    // Coordinates of a group of axes from its flat index `var`, named `{p}{d}`.
    let split =
        |words: &mut Words, var: &str, first: usize, axes_: std::ops::Range<usize>, p: &str| {
            let mut lines = Vec::new();
            let count = axes_.len();
            for d in axes_.clone() {
                let needed = layouts.iter().any(|(_, s)| s[d] != 0);
                if !needed || count == 1 {
                    continue;
                }
                let inner: usize = shape[d + 1..axes_.end].iter().product();
                let c = if d == first {
                    format!("{var} / {}", words.u(inner))
                } else if d + 1 == axes_.end {
                    format!("{var} % {}", words.u(shape[d]))
                } else {
                    format!("({var} / {}) % {}", words.u(inner), words.u(shape[d]))
                };
                lines.push(format!("    let {p}{d} = {c};"));
            }
            lines
        };
    let mut epi = vec!["fn epi(P: Words, bt: u32, m: u32, n: u32, anchor: f32) {".to_string()];
    epi.extend(split(words, "bt", 0, 0..row, "c"));
    // Column axes walked as one where a layout allows (row-major among them).
    let mergeable = |s: &[usize]| {
        cols.clone()
            .zip(cols.clone().skip(1))
            .all(|(d, e)| s[d] == s[e] * shape[e])
    };
    let must_split = layouts.iter().any(|(_, s)| !mergeable(s));
    if must_split {
        epi.extend(split(words, "n", row + 1, cols.clone(), "c"));
    }
    let offset_of = |l: usize, words: &mut Words| -> String {
        let (off, strides) = &layouts[l];
        let mut terms = vec![words.u(*off)];
        let merged = mergeable(strides);
        for (d, &s) in strides.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let coord = if d == row {
                "m".to_string()
            } else if d < row {
                if batch_axes == 1 {
                    "bt".to_string()
                } else {
                    format!("c{d}")
                }
            } else if cols.len() == 1 {
                "n".to_string()
            } else if merged {
                // Only the last column axis contributes: n times its stride.
                if d + 1 == shape.len() {
                    "n".to_string()
                } else {
                    continue;
                }
            } else {
                format!("c{d}")
            };
            terms.push(format!("{coord} * {}", words.u(s)));
        }
        // A merged column group whose last stride is 0 but earlier ones not
        // cannot happen: mergeable strides are all zero or all non-zero.
        terms.join(" + ")
    };
    let flat_expr = offset_of(flat, words);
    epi.push(format!("    let flat = {flat_expr};"));
    for &k in &body.loads {
        let o = offset_of(k, words);
        epi.push(format!("    let x{k} = b{}[{o}];", op_bind[k]));
    }
    for (j, (k, lo, hi)) in body.keys.iter().enumerate() {
        let off = words.u(operands[*k].layout.offset);
        epi.push(format!(
            "    let key{j} = dropout_key({lo}, {hi}, u32(b{}[{off}]));",
            op_bind[*k]
        ));
    }
    epi.push(format!(
        "    let r = {};",
        body.call("flat", |k| format!("x{k}"), Some("anchor"))
    ));
    for (s, b) in st_bind.iter().enumerate() {
        let o = offset_of(operands.len() + s, words);
        epi.push(format!("    b{b}[{o}] = r.r{s};"));
    }
    epi.push("}".to_string());
    epi.join("\n")
}
