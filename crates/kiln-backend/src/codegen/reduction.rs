//! The generated reduction kernel: sums, means, extrema and batch moments of
//! a program's values over some axes of its iteration space. The program is
//! the prologue (what is reduced is computed as it is read, never stored);
//! elementwise results of the same iteration space can be stored on the way,
//! since each element is visited exactly once. Several reductions over the
//! same axes share the pass.
//!
//! Two strategies, chosen by shape: one invocation per output looping over
//! its elements (no barriers: CPU adapters run a workgroup's invocations in
//! turn, so tree reductions cost more than loops there), or one workgroup per
//! output with a tree reduction in workgroup memory (few outputs over many
//! elements, and GPUs).

use crate::error::{invalid, BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::{Buffer, Device, Kernel, KernelProfile, KernelStrategy};

use super::program::Program;
use super::words::Words;
use super::{check_fits, coalesce, row_major, Bindings, Operand, Store, MAX_LOOP_TRIPS, WG};

/// What a [`Reduction`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    /// Mean and biased variance (two passes: the centred sum of squares does
    /// not cancel catastrophically).
    Moments,
}

/// Where a reduction's results go; output `o` is the row-major index over
/// the kept axes.
#[derive(Clone, Debug)]
pub enum ReduceOutput<'a> {
    /// `buffer[offset + o] = result`.
    Write { buffer: &'a Buffer, offset: usize },
    /// `buffer[offset + o] = keep·buffer[offset + o] + scale·result`, in place.
    Accumulate {
        buffer: &'a Buffer,
        offset: usize,
        keep: f32,
        scale: f32,
    },
    /// Moments only: the mean and the variance, each at `offset + o` of its
    /// buffer, and optionally running statistics moved toward them.
    Moments {
        mean: (&'a Buffer, usize),
        var: (&'a Buffer, usize),
        running: Option<RunningUpdate<'a>>,
    },
}

/// `running_mean = keep·running_mean + (1 − keep)·mean`, likewise the
/// variance times `var_factor` (PyTorch's unbiased correction), in place;
/// `count[0]` (PyTorch's `num_batches_tracked`) goes up by one.
#[derive(Clone, Debug)]
pub struct RunningUpdate<'a> {
    pub mean: &'a Buffer,
    pub var: &'a Buffer,
    pub keep: f32,
    pub var_factor: f32,
    pub count: Option<&'a Buffer>,
}

/// One reduction of expression `expr`.
#[derive(Clone, Debug)]
pub struct Reduction<'a> {
    pub kind: ReduceKind,
    pub expr: usize,
    pub output: ReduceOutput<'a>,
}

/// The source of the kernel [`reduction_kernel`] builds on a device of
/// `profile`.
pub fn reduction_source(
    profile: &KernelProfile,
    shape: &[usize],
    axes: &[usize],
    program: &Program,
    operands: &[Operand<'_>],
    reductions: &[Reduction<'_>],
    stores: &[Store<'_>],
) -> Result<String> {
    let g = generate(
        profile, "reduce", shape, axes, program, operands, reductions, stores,
    )?;
    Ok(g.source)
}

/// A kernel reducing `program`'s values over `axes` of `shape`: each of
/// `reductions` reduces one expression; `stores` write elementwise results.
#[allow(clippy::too_many_arguments)] // the iteration space, the program and three lists of what it reads and writes
pub fn reduction_kernel(
    device: &Device,
    label: &str,
    shape: &[usize],
    axes: &[usize],
    program: &Program,
    operands: &[Operand<'_>],
    reductions: &[Reduction<'_>],
    stores: &[Store<'_>],
) -> Result<Kernel> {
    let g = generate(
        device.kernel_profile(),
        label,
        shape,
        axes,
        program,
        operands,
        reductions,
        stores,
    )?;
    device.generated_kernel(g)
}

/// Coalesced axes of one part (kept or reduced) of the iteration space, and
/// every layout's strides along them.
struct Part {
    shape: Vec<usize>,
    strides: Vec<Vec<usize>>,
}

fn part(shape: &[usize], axes: &[usize], layouts: &[Vec<usize>]) -> Part {
    let sub: Vec<usize> = axes.iter().map(|&d| shape[d]).collect();
    let mut strides: Vec<Vec<usize>> = layouts
        .iter()
        .map(|s| axes.iter().map(|&d| s[d]).collect())
        .collect();
    let mut shape = coalesce(&sub, &mut strides);
    if shape.is_empty() {
        shape = vec![1];
        strides.iter_mut().for_each(|s| *s = vec![0]);
    }
    Part { shape, strides }
}

/// `let c{d} = …` for the coordinates of `index` over `shape` (prefix `p`).
fn coordinates(words: &mut Words, p: &str, index: &str, shape: &[usize]) -> Vec<String> {
    let rank = shape.len();
    (0..rank)
        .map(|d| {
            let inner: usize = shape[d + 1..].iter().product();
            let c = if rank == 1 {
                index.to_string()
            } else if d == rank - 1 {
                format!("{index} % {}", words.u(shape[d]))
            } else if d == 0 {
                format!("{index} / {}", words.u(inner))
            } else {
                format!("({index} / {}) % {}", words.u(inner), words.u(shape[d]))
            };
            format!("    let {p}{d} = {c};")
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn generate<'a>(
    profile: &KernelProfile,
    label: &str,
    shape: &[usize],
    axes: &[usize],
    program: &Program,
    operands: &[Operand<'a>],
    reductions: &[Reduction<'a>],
    stores: &[Store<'a>],
) -> Result<Generated<'a>> {
    let mut results: Vec<usize> = reductions.iter().map(|r| r.expr).collect();
    results.extend(stores.iter().map(|s| s.expr));
    program.validate(operands.len(), false, &results)?;
    if reductions.is_empty() {
        return Err(invalid(
            label,
            "a reduction kernel needs at least one reduction",
        ));
    }
    let rank = shape.len();
    if axes.iter().any(|&a| a >= rank) || (1..axes.len()).any(|i| axes[i] <= axes[i - 1]) {
        return Err(invalid(
            label,
            format!("axes {axes:?} must be increasing axes of {shape:?}"),
        ));
    }
    for o in operands {
        check_fits(label, shape, o.buffer, &o.layout)?;
    }
    for s in stores {
        check_fits(label, shape, s.buffer, &s.layout)?;
    }
    let kept_axes: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    let outputs: usize = kept_axes.iter().map(|&d| shape[d]).product();
    let count: usize = axes.iter().map(|&d| shape[d]).product();
    if outputs == 0 {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: shape.to_vec(),
        });
    }
    for r in reductions {
        let fits = |b: &Buffer, off: usize| (off + outputs) as u64 * 4 <= b.size();
        let ok = match (&r.output, r.kind) {
            (ReduceOutput::Moments { .. }, k) if k != ReduceKind::Moments => false,
            (_, ReduceKind::Moments) if !matches!(r.output, ReduceOutput::Moments { .. }) => false,
            (ReduceOutput::Write { buffer, offset }, _)
            | (ReduceOutput::Accumulate { buffer, offset, .. }, _) => fits(buffer, *offset),
            (ReduceOutput::Moments { mean, var, running }, _) => {
                fits(mean.0, mean.1)
                    && fits(var.0, var.1)
                    && running
                        .as_ref()
                        .is_none_or(|u| fits(u.mean, 0) && fits(u.var, 0))
            }
        };
        if !ok {
            return Err(invalid(
                label,
                format!("a {:?} output does not fit its buffer or kind", r.kind),
            ));
        }
    }
    // Layouts: operands, stores, then the row-major index (dropout's counter).
    let mut layouts: Vec<Vec<usize>> = operands
        .iter()
        .map(|o| o.layout.strides.clone())
        .chain(stores.iter().map(|s| s.layout.strides.clone()))
        .collect();
    layouts.push(row_major(shape));
    let offsets: Vec<usize> = operands
        .iter()
        .map(|o| o.layout.offset)
        .chain(stores.iter().map(|s| s.layout.offset))
        .chain([0])
        .collect();
    let kept = part(shape, &kept_axes, &layouts);
    let red = part(shape, axes, &layouts);
    let flat_layout = layouts.len() - 1;
    let passes = if reductions.iter().any(|r| r.kind == ReduceKind::Moments) {
        2
    } else {
        1
    };
    // Loop iterations of one invocation looping over a whole output: each
    // nested loop's back-edges.
    let serial_trips = passes
        * (1..=red.shape.len())
            .map(|d| red.shape[..d].iter().product::<usize>())
            .sum::<usize>();
    let cooperative = serial_trips > MAX_LOOP_TRIPS
        || count >= 512
            && match profile.strategy {
                KernelStrategy::Software => outputs < 32,
                KernelStrategy::Hardware => outputs < 65536,
            };
    if cooperative {
        let trips = passes * count.div_ceil(WG as usize) + 2 * WG.ilog2() as usize;
        profile.check_loop_trips(
            label,
            trips,
            &format!("a reduction of {count} elements per output"),
        )?;
    }

    let (mut bindings, op_bind, st_bind) = Bindings::of_operands(operands, stores);
    let mut out_bind = Vec::new();
    for r in reductions {
        out_bind.push(match &r.output {
            ReduceOutput::Write { buffer, .. } | ReduceOutput::Accumulate { buffer, .. } => {
                vec![bindings.of(buffer, true)]
            }
            ReduceOutput::Moments { mean, var, running } => {
                let mut v = vec![bindings.of(mean.0, true), bindings.of(var.0, true)];
                if let Some(u) = running {
                    v.push(bindings.of(u.mean, true));
                    v.push(bindings.of(u.var, true));
                    if let Some(c) = u.count {
                        v.push(bindings.of(c, true));
                    }
                }
                v
            }
        });
    }

    let mut words = Words::new();
    let body = program.body(&mut words, false, &results);
    let n_out = words.u(outputs);
    let n_red = words.u(count);
    let mut main = Vec::new();
    if cooperative {
        main.push(format!(
            "    let o = wid.y * nwg.x + wid.x;\n    if (o >= {n_out}) {{ return; }}"
        ));
    } else {
        main.push(format!(
            "    let o = (wid.y * nwg.x + wid.x) * {WG}u + lid;\n    if (o >= {n_out}) {{ return; }}"
        ));
    }
    main.extend(coordinates(&mut words, "k", "o", &kept.shape));
    // Where each layout starts for this output.
    let mut used: Vec<usize> = body.loads.clone();
    used.extend(operands.len()..operands.len() + stores.len());
    used.push(flat_layout);
    for &l in &used {
        let mut terms = vec![words.u(offsets[l])];
        for (d, &s) in kept.strides[l].iter().enumerate() {
            if s != 0 {
                terms.push(format!("k{d} * {}", words.u(s)));
            }
        }
        main.push(format!("    let base{l} = {};", terms.join(" + ")));
    }
    for (j, (k, lo, hi)) in body.keys.iter().enumerate() {
        let off = words.u(operands[*k].layout.offset);
        main.push(format!(
            "    let key{j} = dropout_key({lo}, {hi}, u32(b{}[{off}]));",
            op_bind[*k]
        ));
    }
    let identity = |k: ReduceKind| match k {
        ReduceKind::Max => "bitcast<f32>(0xff800000u)",
        ReduceKind::Min => "bitcast<f32>(0x7f800000u)",
        _ => "0.0",
    };
    let combine = |k: ReduceKind, acc: &str, v: &str| match k {
        ReduceKind::Max => format!("max({acc}, {v})"),
        ReduceKind::Min => format!("min({acc}, {v})"),
        _ => format!("{acc} + {v}"),
    };
    for (r, red_) in reductions.iter().enumerate() {
        main.push(format!("    var a{r} = {};", identity(red_.kind)));
    }
    let red_strides: Vec<Vec<String>> = {
        let mut v = vec![Vec::new(); layouts.len()];
        for &l in &used {
            v[l] = red.strides[l].iter().map(|&s| words.u(s)).collect();
        }
        v
    };
    // Which elements each invocation of a cooperative reduction takes: on
    // a GPU, every WG-th (neighbours read neighbouring elements at once);
    // on a CPU, whose lanes each run through memory, a contiguous chunk.
    let chunked = profile.is_software();
    let chunk = words.u(count.div_ceil(WG as usize));
    let red_sizes: Vec<String> = red.shape.iter().map(|&s| words.u(s)).collect();
    let red_inner: Vec<String> = (0..red.shape.len())
        .map(|d| words.u(red.shape[d + 1..].iter().product()))
        .collect();
    // The loop over this output's elements, running `inner` at each; the
    // reduced coordinates are `j0`, `j1`, ….
    let element_loop = |inner: &str| -> String {
        let rr = red.shape.len();
        let mut s = String::new();
        if cooperative {
            s += &if chunked {
                format!(
                    "    for (var j = lid * {chunk}; j < min(lid * {chunk} + {chunk}, {n_red}); j++) {{\n"
                )
            } else {
                format!("    for (var j = lid; j < {n_red}; j += {WG}u) {{\n")
            };
            for (d, (size, inner)) in red_sizes.iter().zip(&red_inner).enumerate() {
                let c = if rr == 1 {
                    "j".to_string()
                } else if d == rr - 1 {
                    format!("j % {size}")
                } else if d == 0 {
                    format!("j / {inner}")
                } else {
                    format!("(j / {inner}) % {size}")
                };
                s += &format!("        let j{d} = {c};\n");
            }
        } else {
            for (d, size) in red_sizes.iter().enumerate() {
                s += &format!("    for (var j{d} = 0u; j{d} < {size}; j{d}++) {{\n");
            }
        }
        s += inner;
        let closing = if cooperative { 1 } else { rr };
        for _ in 0..closing {
            s += "    }\n";
        }
        s
    };
    let at = |l: usize| -> String {
        let mut terms = vec![format!("base{l}")];
        for (d, s) in red_strides[l].iter().enumerate() {
            if red.strides[l][d] != 0 {
                terms.push(format!("j{d} * {s}"));
            }
        }
        format!("({})", terms.join(" + "))
    };
    let mut first = String::new();
    for &k in &body.loads {
        first += &format!("        let x{k} = b{}[{}];\n", op_bind[k], at(k));
    }
    let call = body.call(&at(flat_layout), |k| format!("x{k}"), None);
    first += &format!("        let r = {call};\n");
    for (r, red_) in reductions.iter().enumerate() {
        first += &format!(
            "        a{r} = {};\n",
            combine(red_.kind, &format!("a{r}"), &format!("r.r{r}"))
        );
    }
    for (s, b) in st_bind.iter().enumerate() {
        let l = operands.len() + s;
        first += &format!("        b{b}[{}] = r.r{};\n", at(l), reductions.len() + s);
    }
    main.push(element_loop(&first));
    // Tree reductions of the per-invocation partial results.
    let tree = |main: &mut Vec<String>, r: usize, combine_op: ReduceKind| {
        let c = combine(combine_op, &format!("s{r}[lid]"), &format!("s{r}[lid + s]"));
        main.push(format!(
            "    s{r}[lid] = a{r};\n    workgroupBarrier();\n    for (var s = {}u; s > 0u; s = s / 2u) {{\n        if (lid < s) {{ s{r}[lid] = {c}; }}\n        workgroupBarrier();\n    }}\n    a{r} = s{r}[0];\n    workgroupBarrier();",
            WG / 2
        ));
    };
    if cooperative {
        for (r, red_) in reductions.iter().enumerate() {
            tree(&mut main, r, red_.kind);
        }
    }
    // The second pass of moments: centred squares around the mean.
    let moments: Vec<usize> = (0..reductions.len())
        .filter(|&r| reductions[r].kind == ReduceKind::Moments)
        .collect();
    if !moments.is_empty() {
        for &r in &moments {
            main.push(format!(
                "    let mean{r} = a{r} / f32({n_red});\n    var q{r} = 0.0;"
            ));
        }
        let mut second = String::new();
        for &k in &body.loads {
            second += &format!("        let x{k} = b{}[{}];\n", op_bind[k], at(k));
        }
        second += &format!("        let r = {call};\n");
        for &r in &moments {
            second +=
                &format!("        let d{r} = r.r{r} - mean{r};\n        q{r} += d{r} * d{r};\n");
        }
        main.push(element_loop(&second));
        if cooperative {
            for &r in &moments {
                main.push(format!("    a{r} = q{r};"));
                tree(&mut main, r, ReduceKind::Sum);
                main.push(format!("    q{r} = a{r};"));
            }
        }
    }
    // Results, written by one invocation per output.
    let mut fin = Vec::new();
    for (r, red_) in reductions.iter().enumerate() {
        let b = &out_bind[r];
        match (&red_.output, red_.kind) {
            (ReduceOutput::Write { offset, .. }, kind) => {
                let v = if kind == ReduceKind::Mean {
                    format!("a{r} / f32({n_red})")
                } else {
                    format!("a{r}")
                };
                fin.push(format!("    b{}[{} + o] = {v};", b[0], words.u(*offset)));
            }
            (
                ReduceOutput::Accumulate {
                    offset,
                    keep,
                    scale,
                    ..
                },
                kind,
            ) => {
                let v = if kind == ReduceKind::Mean {
                    format!("a{r} / f32({n_red})")
                } else {
                    format!("a{r}")
                };
                let at = format!("{} + o", words.u(*offset));
                fin.push(format!(
                    "    b{0}[{at}] = {1} * b{0}[{at}] + {2} * {v};",
                    b[0],
                    words.f(*keep),
                    words.f(*scale)
                ));
            }
            (ReduceOutput::Moments { mean, var, running }, _) => {
                fin.push(format!("    let var{r} = q{r} / f32({n_red});"));
                fin.push(format!("    b{}[{} + o] = mean{r};", b[0], words.u(mean.1)));
                fin.push(format!("    b{}[{} + o] = var{r};", b[1], words.u(var.1)));
                if let Some(u) = running {
                    let keep = words.f(u.keep);
                    let factor = words.f(u.var_factor);
                    fin.push(format!(
                        "    b{0}[o] = {keep} * b{0}[o] + (1.0 - {keep}) * mean{r};",
                        b[2]
                    ));
                    fin.push(format!(
                        "    b{0}[o] = {keep} * b{0}[o] + (1.0 - {keep}) * {factor} * var{r};",
                        b[3]
                    ));
                    if u.count.is_some() {
                        fin.push(format!(
                            "    if (o == 0u) {{ b{0}[0] = b{0}[0] + 1.0; }}",
                            b[4]
                        ));
                    }
                }
            }
        }
    }
    if cooperative {
        main.push(format!("    if (lid == 0u) {{\n{}\n    }}", fin.join("\n")));
    } else {
        main.extend(fin);
    }
    let scratch: String = if cooperative {
        (0..reductions.len())
            .map(|r| format!("var<workgroup> s{r}: array<f32, {WG}>;\n"))
            .collect()
    } else {
        String::new()
    };
    let source = format!(
        "{}{scratch}\n{}\n{}\n@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n        @builtin(local_invocation_index) lid: u32) {{\n    let P = load_words();\n{}\n}}\n",
        bindings.declare(&[]),
        words.declare(),
        body.source,
        main.join("\n")
    );
    let groups = if cooperative {
        outputs as u64
    } else {
        (outputs as u64).div_ceil(WG as u64)
    };
    let buffers: Vec<&'a Buffer> = bindings.buffers().collect();
    Ok(Generated {
        label: format!("{label}{}", if cooperative { "/wg" } else { "" }),
        source,
        words: words.values(),
        buffers,
        grid: Grid::Linear(groups),
        trusted: false,
    })
}
