//! The generated elementwise kernel: one invocation per element (or per four
//! consecutive elements, when every operand allows vec4 access), loading each
//! operand through its strides, evaluating the program, storing the results.
//!
//! A kernel may cover several *segments*: iteration spaces with operands
//! and stores of their own, one after another in the invocation range, all
//! evaluating the same program. Updates of several parameters (an
//! optimizer's step) then share one dispatch, as PyTorch's `foreach`
//! optimizers do.

use crate::error::{BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::{Buffer, KernelProfile, StridedLayout};

use super::description::{Epilogue, Render, Rendered};
use super::program::{Body, Expr, Program};
use super::words::Words;
use super::{
    check_fits, coalesce, layouts_of, linear_entry, module, row_major, Bindings, Operand, Store, WG,
};

/// One iteration space of a segmented kernel, with what it reads and writes.
#[derive(Clone, Debug)]
pub struct Segment {
    pub shape: Vec<usize>,
    pub operands: Vec<Operand>,
    pub stores: Vec<Store>,
}

/// How one operand or store is addressed in the vec4 form.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// Row-major over the iteration space: `offset + i`.
    Flat,
    /// Through strides.
    Strided,
    /// Constant along the last axis: one scalar serves four elements.
    Splat,
}

/// A segment's layouts after coalescing, and how each is read.
struct Plan {
    shape: Vec<usize>,
    numel: usize,
    strides: Vec<Vec<usize>>,
    offsets: Vec<usize>,
    access: Vec<Access>,
    /// Whether every access allows the vec4 form.
    vec4: bool,
}

fn analyse(label: &str, program: &Program, seg: &Segment) -> Result<Plan> {
    let results: Vec<usize> = seg.stores.iter().map(|s| s.expr).collect();
    program.validate(seg.operands.len(), false, &results)?;
    let n: usize = seg.shape.iter().product();
    if n == 0 || seg.stores.is_empty() {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: seg.shape.clone(),
        });
    }
    for o in &seg.operands {
        check_fits(label, &seg.shape, &o.buffer, &o.layout)?;
    }
    for s in &seg.stores {
        check_fits(label, &seg.shape, &s.buffer, &s.layout)?;
        if seg
            .shape
            .iter()
            .zip(&s.layout.strides)
            .any(|(&d, &st)| d > 1 && st == 0)
        {
            return Err(crate::error::invalid(
                label,
                "a store may not write one element from several invocations (a zero stride)",
            ));
        }
    }
    let (mut strides, offsets) = layouts_of(&seg.operands, &seg.stores);
    let mut shape = coalesce(&seg.shape, &mut strides);
    if shape.is_empty() {
        shape = vec![1];
        strides.iter_mut().for_each(|s| *s = vec![0]);
    }
    let rank = shape.len();
    let flat = row_major(&shape);
    let access: Vec<Access> = strides
        .iter()
        .map(|s| {
            if *s == flat {
                Access::Flat
            } else if s[rank - 1] == 0 {
                Access::Splat
            } else {
                Access::Strided
            }
        })
        .collect();
    let aligned = |k: usize| {
        offsets[k].is_multiple_of(4) && strides[k][..rank - 1].iter().all(|s| s.is_multiple_of(4))
    };
    let vec4 = shape[rank - 1].is_multiple_of(4)
        && (0..strides.len()).all(|k| match access[k] {
            Access::Flat => offsets[k].is_multiple_of(4),
            Access::Strided => strides[k][rank - 1] == 1 && aligned(k),
            Access::Splat => k < seg.operands.len(),
        });
    Ok(Plan {
        shape,
        numel: n,
        strides,
        offsets,
        access,
        vec4,
    })
}

/// Elementwise programs over one or more segments, each with its own
/// iteration space, operands and stores, all evaluating the same program
/// (operand `k` of the program is each segment's `operands[k]`).
#[derive(Clone, Debug)]
pub struct MapKernel {
    pub label: String,
    pub program: Program,
    pub segments: Vec<Segment>,
}

impl MapKernel {
    /// `epilogue`'s program at every element of `shape`.
    pub fn over(label: &str, shape: &[usize], epilogue: Epilogue) -> Self {
        MapKernel {
            label: label.to_string(),
            program: epilogue.program,
            segments: vec![Segment {
                shape: shape.to_vec(),
                operands: epilogue.operands,
                stores: epilogue.stores,
            }],
        }
    }

    /// The generated module (the same on every profile).
    pub(crate) fn generated(&self) -> Result<Generated> {
        generate(&self.label, &self.program, &self.segments)
    }
}

impl Render for MapKernel {
    fn render(&self, _: &KernelProfile) -> Result<Rendered<'_>> {
        Ok(Rendered::Generated(self.generated()?))
    }
}

/// One input of a concatenation: its buffer, its shape and the region of
/// the output it is copied into.
#[derive(Clone, Debug)]
pub struct ConcatPart {
    pub source: Buffer,
    pub shape: Vec<usize>,
    pub region: StridedLayout,
}

/// Inputs copied into their regions of `out`, one segment each.
#[derive(Clone, Debug)]
pub struct ConcatKernel {
    pub out: Buffer,
    pub parts: Vec<ConcatPart>,
}

impl Render for ConcatKernel {
    fn render(&self, _: &KernelProfile) -> Result<Rendered<'_>> {
        let mut program = Program::default();
        let copy = program.push(Expr::Load(0));
        let segments: Vec<Segment> = self
            .parts
            .iter()
            .map(|part| Segment {
                shape: part.shape.clone(),
                operands: vec![Operand {
                    buffer: part.source.clone(),
                    layout: StridedLayout::contiguous(&part.shape),
                }],
                stores: vec![Store {
                    expr: copy,
                    buffer: self.out.clone(),
                    layout: part.region.clone(),
                }],
            })
            .collect();
        Ok(Rendered::Generated(generate(
            "concat", &program, &segments,
        )?))
    }
}

/// The WGSL of one segment's elements, `i` its first element's row-major
/// index: coordinates, loads, the body, stores.
#[allow(clippy::too_many_arguments)] // the pieces of one segment's code, built once
fn segment_code(
    seg: &Segment,
    plan: &Plan,
    vec4: bool,
    body: &Body,
    op_bind: &[usize],
    st_bind: &[usize],
    vec4_binding: &[bool],
    words: &mut Words,
) -> Vec<String> {
    let rank = plan.shape.len();
    let (access, strides, offsets) = (&plan.access, &plan.strides, &plan.offsets);
    let mut code = Vec::new();
    // Coordinates of the axes some strided access needs.
    for d in 0..rank {
        let needed = (0..strides.len()).any(|k| access[k] != Access::Flat && strides[k][d] != 0);
        if !needed {
            continue;
        }
        let inner: usize = plan.shape[d + 1..].iter().product();
        let c = if rank == 1 {
            "i".to_string()
        } else if d == rank - 1 {
            format!("i % {}", words.u(plan.shape[d]))
        } else if d == 0 {
            format!("i / {}", words.u(inner))
        } else {
            format!("(i / {}) % {}", words.u(inner), words.u(plan.shape[d]))
        };
        code.push(format!("    let c{d} = {c};"));
    }
    let offset_expr = |k: usize, words: &mut Words| -> String {
        let off = words.u(offsets[k]);
        if access[k] == Access::Flat {
            return format!("({off} + i)");
        }
        let mut terms = vec![off];
        for (d, &st) in strides[k].iter().enumerate() {
            if st != 0 {
                terms.push(format!("c{d} * {}", words.u(st)));
            }
        }
        format!("({})", terms.join(" + "))
    };
    // The step values of dropout keys.
    for (j, (k, lo, hi)) in body.keys.iter().enumerate() {
        let b = op_bind[*k];
        let off = words.u(seg.operands[*k].layout.offset);
        let step = if vec4_binding[b] {
            format!("b{b}[{off} / 4u][{off} % 4u]")
        } else {
            format!("b{b}[{off}]")
        };
        code.push(format!(
            "    let key{j} = dropout_key({lo}, {hi}, u32({step}));"
        ));
    }
    for &k in &body.loads {
        let b = op_bind[k];
        let o = offset_expr(k, words);
        let load = match (vec4, access[k], vec4_binding[b]) {
            (false, _, _) => format!("b{b}[{o}]"),
            (true, Access::Splat, true) => format!("b{b}[{o} / 4u][{o} % 4u]"),
            (true, Access::Splat, false) => format!("b{b}[{o}]"),
            (true, _, true) => format!("b{b}[{o} / 4u]"),
            (true, _, false) => {
                format!("vec4<f32>(b{b}[{o}], b{b}[{o} + 1u], b{b}[{o} + 2u], b{b}[{o} + 3u])")
            }
        };
        code.push(format!("    let l{k} = {load};"));
    }
    let lanes: &[&str] = if vec4 { &["x", "y", "z", "w"] } else { &[""] };
    for (j, lane) in lanes.iter().enumerate() {
        let flat = if vec4 {
            format!("i + {j}u")
        } else {
            "i".to_string()
        };
        let call = body.call(
            &flat,
            |k| {
                if vec4 && access[k] != Access::Splat {
                    format!("l{k}.{lane}")
                } else {
                    format!("l{k}")
                }
            },
            None,
        );
        code.push(format!("    let r{j} = {call};"));
    }
    for (s, &b) in st_bind.iter().enumerate() {
        let o = offset_expr(seg.operands.len() + s, words);
        if !vec4 {
            code.push(format!("    b{b}[{o}] = r0.r{s};"));
        } else if vec4_binding[b] {
            code.push(format!(
                "    b{b}[{o} / 4u] = vec4<f32>(r0.r{s}, r1.r{s}, r2.r{s}, r3.r{s});"
            ));
        } else {
            code.push(format!("    let o{s} = {o};"));
            for j in 0..4 {
                code.push(format!("    b{b}[o{s} + {j}u] = r{j}.r{s};"));
            }
        }
    }
    code
}

fn generate(label: &str, program: &Program, segments: &[Segment]) -> Result<Generated> {
    if segments.is_empty() {
        return Err(crate::error::invalid(label, "a kernel needs a segment"));
    }
    let plans: Vec<Plan> = segments
        .iter()
        .map(|s| analyse(label, program, s))
        .collect::<Result<_>>()?;
    let n_stores = segments[0].stores.len();
    if segments.iter().any(|s| s.stores.len() != n_stores) {
        return Err(crate::error::invalid(
            label,
            "every segment stores the same results of the program",
        ));
    }
    let vec4 = plans.iter().all(|p| p.vec4);

    let mut bindings = Bindings::default();
    let binds: Vec<(Vec<usize>, Vec<usize>)> = segments
        .iter()
        .map(|seg| {
            let op: Vec<usize> = seg
                .operands
                .iter()
                .map(|o| bindings.of(&o.buffer, false))
                .collect();
            let st: Vec<usize> = seg
                .stores
                .iter()
                .map(|s| bindings.of(&s.buffer, true))
                .collect();
            (op, st)
        })
        .collect();
    // A binding is an array of vec4 when every access to it is a vec4 or a
    // splat (a store never splats).
    let mut vec4_binding = vec![vec4; bindings.len()];
    for ((op, st), plan) in binds.iter().zip(&plans) {
        for (k, &b) in op.iter().chain(st).enumerate() {
            if k >= op.len() && plan.access[k] == Access::Splat {
                vec4_binding[b] = false;
            }
        }
    }

    let results: Vec<usize> = segments[0].stores.iter().map(|s| s.expr).collect();
    let mut words = Words::new();
    let body = program.body(&mut words, false, &results);
    let counts: Vec<usize> = plans
        .iter()
        .map(|p| if vec4 { p.numel / 4 } else { p.numel })
        .collect();
    let mut main = vec![format!(
        "    let g = (wid.y * nwg.x + wid.x) * {WG}u + lid;"
    )];
    for (s, (seg, plan)) in segments.iter().zip(&plans).enumerate() {
        let count = words.u(counts[s]);
        let first = words.u(counts[..s].iter().sum());
        let code = segment_code(
            seg,
            plan,
            vec4,
            &body,
            &binds[s].0,
            &binds[s].1,
            &vec4_binding,
            &mut words,
        );
        let index = if vec4 {
            "(g - {first}) * 4u"
        } else {
            "g - {first}"
        }
        .replace("{first}", &first);
        main.push(format!(
            "    if (g >= {first} && g - {first} < {count}) {{\n    let i = {index};\n{}\n    return;\n    }}",
            code.join("\n")
        ));
    }
    let declared = [bindings.declare(&vec4_binding), words.declare()];
    let source = module(
        &[&declared[0], &declared[1], &body.source],
        &linear_entry(),
        &main,
    );
    let invocations: usize = counts.iter().sum();
    let grid = Grid::Linear((invocations as u64).div_ceil(WG as u64));
    let label = format!("{label}{}", if vec4 { "/vec4" } else { "" });
    Ok(bindings.generated(label, source, &words, grid))
}
