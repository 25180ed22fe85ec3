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
use crate::{Device, Kernel};

use super::program::{Body, Program};
use super::words::Words;
use super::{check_fits, coalesce, row_major, Bindings, Operand, Store, WG};

/// One iteration space of a segmented kernel, with what it reads and writes.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    pub shape: Vec<usize>,
    pub operands: Vec<Operand<'a>>,
    pub stores: Vec<Store<'a>>,
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

fn analyse(label: &str, program: &Program, seg: &Segment<'_>) -> Result<Plan> {
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
        check_fits(label, &seg.shape, o.buffer, &o.layout)?;
    }
    for s in &seg.stores {
        check_fits(label, &seg.shape, s.buffer, &s.layout)?;
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
    let mut strides: Vec<Vec<usize>> = seg
        .operands
        .iter()
        .map(|o| o.layout.strides.clone())
        .chain(seg.stores.iter().map(|s| s.layout.strides.clone()))
        .collect();
    let mut shape = coalesce(&seg.shape, &mut strides);
    if shape.is_empty() {
        shape = vec![1];
        strides.iter_mut().for_each(|s| *s = vec![0]);
    }
    let offsets: Vec<usize> = seg
        .operands
        .iter()
        .map(|o| o.layout.offset)
        .chain(seg.stores.iter().map(|s| s.layout.offset))
        .collect();
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

/// The source of the kernel [`elementwise_kernel`] builds.
pub fn elementwise_source(
    shape: &[usize],
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<String> {
    let seg = Segment {
        shape: shape.to_vec(),
        operands: operands.to_vec(),
        stores: stores.to_vec(),
    };
    Ok(generate("elementwise", program, &[seg])?.source)
}

/// A kernel computing `program` at every element of `shape`, reading
/// `operands` and writing `stores`.
///
/// ```no_run
/// # use kiln_backend::*;
/// # use kiln_backend::codegen::*;
/// let device = Device::auto()?;
/// let x = Tensor::from_f32(&device, &[-1.0, 2.0, -3.0, 4.0], &[2, 2])?;
/// let b = Tensor::from_f32(&device, &[10.0, 20.0], &[2])?;
/// let out = Tensor::empty(&device, &[2, 2], DType::F32)?;
/// let mut p = Program::default();
/// let (x0, b0) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
/// let s = p.push(Expr::Binary(BinaryOp::Add, x0, b0));
/// let r = p.push(Expr::Unary(UnaryOp::Relu, s));
/// let k = elementwise_kernel(&device, "add+relu", &[2, 2], &p,
///     &[Operand { buffer: x.buffer(), layout: StridedLayout::contiguous(&[2, 2]) },
///       Operand { buffer: b.buffer(), layout: StridedLayout::contiguous(&[2]).broadcast_to("bias", &[2, 2])? }],
///     &[Store { expr: r, buffer: out.buffer(), layout: StridedLayout::contiguous(&[2, 2]) }])?;
/// device.run(&[&k])?;
/// assert_eq!(out.to_vec_f32()?, vec![9.0, 22.0, 7.0, 24.0]);
/// # Ok::<(), BackendError>(())
/// ```
pub fn elementwise_kernel(
    device: &Device,
    label: &str,
    shape: &[usize],
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<Kernel> {
    let seg = Segment {
        shape: shape.to_vec(),
        operands: operands.to_vec(),
        stores: stores.to_vec(),
    };
    segmented_kernel(device, label, program, &[seg])
}

/// One kernel evaluating `program` over every segment in turn: segment `s`
/// reads its own operands and writes its own stores (operand `k` of the
/// program is each segment's `operands[k]`).
pub fn segmented_kernel(
    device: &Device,
    label: &str,
    program: &Program,
    segments: &[Segment<'_>],
) -> Result<Kernel> {
    let g = generate(label, program, segments)?;
    device.generated_kernel(g)
}

/// The WGSL of one segment's elements, `i` its first element's row-major
/// index: coordinates, loads, the body, stores.
#[allow(clippy::too_many_arguments)] // the pieces of one segment's code, built once
fn segment_code(
    seg: &Segment<'_>,
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

fn generate<'a>(label: &str, program: &Program, segments: &[Segment<'a>]) -> Result<Generated<'a>> {
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
                .map(|o| bindings.of(o.buffer, false))
                .collect();
            let st: Vec<usize> = seg
                .stores
                .iter()
                .map(|s| bindings.of(s.buffer, true))
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
    let source = format!(
        "{}\n{}\n{}\n@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n        @builtin(local_invocation_index) lid: u32) {{\n    let P = load_words();\n{}\n}}\n",
        bindings.declare(&vec4_binding),
        words.declare(),
        body.source,
        main.join("\n")
    );
    let invocations: usize = counts.iter().sum();
    Ok(Generated {
        label: format!("{label}{}", if vec4 { "/vec4" } else { "" }),
        source,
        words: words.values(),
        buffers: bindings.buffers().collect(),
        grid: Grid::Linear((invocations as u64).div_ceil(WG as u64)),
        trusted: true,
    })
}
