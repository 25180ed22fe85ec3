//! The generated elementwise kernel: one invocation per element (or per four
//! consecutive elements, when every operand allows vec4 access), loading each
//! operand through its strides, evaluating the program, storing the results.

use crate::error::{BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::{Device, Kernel};

use super::program::Program;
use super::words::Words;
use super::{check_fits, coalesce, row_major, Bindings, Operand, Store, WG};

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

/// The source of the kernel [`elementwise_kernel`] builds.
pub fn elementwise_source(
    shape: &[usize],
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<String> {
    Ok(generate("elementwise", shape, program, operands, stores)?.source)
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
    let g = generate(label, shape, program, operands, stores)?;
    device.generated_kernel(g)
}

fn generate<'a>(
    label: &str,
    shape: &[usize],
    program: &Program,
    operands: &[Operand<'a>],
    stores: &[Store<'a>],
) -> Result<Generated<'a>> {
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();
    program.validate(operands.len(), false, &results)?;
    let n: usize = shape.iter().product();
    if n == 0 || stores.is_empty() {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: shape.to_vec(),
        });
    }
    for o in operands {
        check_fits(label, shape, o.buffer, &o.layout)?;
    }
    for s in stores {
        check_fits(label, shape, s.buffer, &s.layout)?;
        if shape
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
    // Coalesce over every layout at once.
    let mut strides: Vec<Vec<usize>> = operands
        .iter()
        .map(|o| o.layout.strides.clone())
        .chain(stores.iter().map(|s| s.layout.strides.clone()))
        .collect();
    let mut cshape = coalesce(shape, &mut strides);
    if cshape.is_empty() {
        cshape = vec![1];
        strides.iter_mut().for_each(|s| *s = vec![0]);
    }
    let offsets: Vec<usize> = operands
        .iter()
        .map(|o| o.layout.offset)
        .chain(stores.iter().map(|s| s.layout.offset))
        .collect();
    let rank = cshape.len();
    let flat_strides = row_major(&cshape);
    let last = cshape[rank - 1];
    let access: Vec<Access> = strides
        .iter()
        .map(|s| {
            if *s == flat_strides {
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
    let vec4 = last.is_multiple_of(4)
        && (0..strides.len()).all(|k| match access[k] {
            Access::Flat => offsets[k].is_multiple_of(4),
            Access::Strided => strides[k][rank - 1] == 1 && aligned(k),
            Access::Splat => k < operands.len(),
        });

    let (bindings, op_bind, st_bind) = Bindings::of_operands(operands, stores);
    let binding_of = |k: usize| {
        if k < operands.len() {
            op_bind[k]
        } else {
            st_bind[k - operands.len()]
        }
    };
    // A binding is an array of vec4 when every access to it is a vec4 or a splat.
    let vec4_binding: Vec<bool> = (0..bindings.len())
        .map(|b| {
            vec4 && (0..strides.len())
                .filter(|&k| binding_of(k) == b)
                .all(|k| access[k] != Access::Splat || k < operands.len())
        })
        .collect();

    let mut words = Words::new();
    let body = program.body(&mut words, false, &results);
    let count = words.u(if vec4 { n / 4 } else { n });
    let mut main = Vec::new();
    main.push(format!(
        "    let g = (wid.y * nwg.x + wid.x) * {WG}u + lid;\n    if (g >= {count}) {{ return; }}"
    ));
    main.push(if vec4 {
        "    let i = g * 4u;".to_string()
    } else {
        "    let i = g;".to_string()
    });
    // Coordinates of the axes some strided access needs.
    let needed: Vec<bool> = (0..rank)
        .map(|d| (0..strides.len()).any(|k| access[k] != Access::Flat && strides[k][d] != 0))
        .collect();
    for d in (0..rank).filter(|&d| needed[d]) {
        let inner: usize = cshape[d + 1..].iter().product();
        let c = if rank == 1 {
            "i".to_string()
        } else if d == rank - 1 {
            format!("i % {}", words.u(cshape[d]))
        } else if d == 0 {
            format!("i / {}", words.u(inner))
        } else {
            format!("(i / {}) % {}", words.u(inner), words.u(cshape[d]))
        };
        main.push(format!("    let c{d} = {c};"));
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
        let off = words.u(operands[*k].layout.offset);
        let step = if vec4_binding[b] {
            format!("b{b}[{off} / 4u][{off} % 4u]")
        } else {
            format!("b{b}[{off}]")
        };
        main.push(format!(
            "    let key{j} = dropout_key({lo}, {hi}, u32({step}));"
        ));
    }
    for &k in &body.loads {
        let b = op_bind[k];
        let o = offset_expr(k, &mut words);
        let load = match (vec4, access[k], vec4_binding[b]) {
            (false, _, _) => format!("b{b}[{o}]"),
            (true, Access::Splat, true) => format!("b{b}[{o} / 4u][{o} % 4u]"),
            (true, Access::Splat, false) => format!("b{b}[{o}]"),
            (true, _, true) => format!("b{b}[{o} / 4u]"),
            (true, _, false) => {
                format!("vec4<f32>(b{b}[{o}], b{b}[{o} + 1u], b{b}[{o} + 2u], b{b}[{o} + 3u])")
            }
        };
        main.push(format!("    let l{k} = {load};"));
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
        main.push(format!("    let r{j} = {call};"));
    }
    for (s, &b) in st_bind.iter().enumerate() {
        let k = operands.len() + s;
        let o = offset_expr(k, &mut words);
        if !vec4 {
            main.push(format!("    b{b}[{o}] = r0.r{s};"));
        } else if vec4_binding[b] {
            main.push(format!(
                "    b{b}[{o} / 4u] = vec4<f32>(r0.r{s}, r1.r{s}, r2.r{s}, r3.r{s});"
            ));
        } else {
            main.push(format!("    let o{s} = {o};"));
            for j in 0..4 {
                main.push(format!("    b{b}[o{s} + {j}u] = r{j}.r{s};"));
            }
        }
    }
    let source = format!(
        "{}\n{}\n{}\n@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n        @builtin(local_invocation_index) lid: u32) {{\n    let P = load_words();\n{}\n}}\n",
        bindings.declare(&vec4_binding),
        words.declare(),
        body.source,
        main.join("\n")
    );
    let invocations = if vec4 { n / 4 } else { n };
    Ok(Generated {
        label: format!("{label}{}", if vec4 { "/vec4" } else { "" }),
        source,
        words: words.values(),
        buffers: bindings.buffers().collect(),
        grid: Grid::Linear((invocations as u64).div_ceil(WG as u64)),
        trusted: true,
    })
}
