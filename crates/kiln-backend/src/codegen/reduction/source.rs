//! The WGSL of a reduction kernel, in the order it runs: the output this
//! invocation (or workgroup) owns, where each layout starts for it, the
//! pass over its elements (twice for moments), the tree reduction of a
//! cooperative kernel, and the results.

use crate::error::{invalid, BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::{Buffer, KernelProfile, KernelStrategy};

use super::super::program::Body;
use super::super::words::Words;
use super::super::{
    check_fits, coalesce, layouts_of, linear_entry, module, row_major, Bindings, Epilogue,
    MAX_LOOP_TRIPS, WG,
};
use super::{ReduceKernel, ReduceKind, ReduceOutput};

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

/// The iteration space split into kept and reduced axes, with every
/// layout's strides along each: the operands', the stores', then the
/// row-major index (dropout's counter), last.
struct Space {
    outputs: usize,
    count: usize,
    offsets: Vec<usize>,
    kept: Part,
    red: Part,
    /// Whether the kernel makes two passes (moments: the centred squares).
    passes: usize,
}

impl Space {
    fn flat_layout(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// Checks what `kernel` asks for and splits its iteration space.
fn space(kernel: &ReduceKernel) -> Result<Space> {
    let ReduceKernel {
        label,
        shape,
        axes,
        reductions,
        epilogue: e,
    } = kernel;
    let mut results: Vec<usize> = reductions.iter().map(|r| r.expr).collect();
    results.extend(e.stores.iter().map(|s| s.expr));
    e.program.validate(e.operands.len(), false, &results)?;
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
    for o in &e.operands {
        check_fits(label, shape, &o.buffer, &o.layout)?;
    }
    for s in &e.stores {
        check_fits(label, shape, &s.buffer, &s.layout)?;
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
    check_outputs(kernel, outputs)?;
    let (mut layouts, mut offsets) = layouts_of(&e.operands, &e.stores);
    layouts.push(row_major(shape));
    offsets.push(0);
    let moments = reductions.iter().any(|r| r.kind == ReduceKind::Moments);
    Ok(Space {
        outputs,
        count,
        offsets,
        kept: part(shape, &kept_axes, &layouts),
        red: part(shape, axes, &layouts),
        passes: if moments { 2 } else { 1 },
    })
}

/// Every output fits its buffer, and moments go with moments' outputs.
fn check_outputs(kernel: &ReduceKernel, outputs: usize) -> Result<()> {
    for r in &kernel.reductions {
        let fits = |b: &Buffer, off: usize| (off + outputs) as u64 * 4 <= b.size();
        let ok = match (&r.output, r.kind) {
            (ReduceOutput::Moments { .. }, k) if k != ReduceKind::Moments => false,
            (_, ReduceKind::Moments) if !matches!(r.output, ReduceOutput::Moments { .. }) => false,
            (ReduceOutput::Write { buffer, offset }, _)
            | (ReduceOutput::Accumulate { buffer, offset, .. }, _) => fits(buffer, *offset),
            (ReduceOutput::Moments { mean, var, running }, _) => {
                fits(&mean.0, mean.1)
                    && fits(&var.0, var.1)
                    && running
                        .as_ref()
                        .is_none_or(|u| fits(&u.mean, 0) && fits(&u.var, 0))
            }
        };
        if !ok {
            return Err(invalid(
                &kernel.label,
                format!("a {:?} output does not fit its buffer or kind", r.kind),
            ));
        }
    }
    Ok(())
}

/// Whether a workgroup shares each output (a tree reduction in workgroup
/// memory) rather than one invocation looping over it: when the loop would
/// be too long for the adapter, or for few outputs over many elements
/// (fewer than a software adapter's cores, or than a GPU's lanes).
fn cooperative(profile: &KernelProfile, label: &str, space: &Space) -> Result<bool> {
    let (outputs, count, red) = (space.outputs, space.count, &space.red);
    // Loop iterations of one invocation looping over a whole output: each
    // nested loop's back-edges.
    let serial_trips = space.passes
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
        let trips = space.passes * count.div_ceil(WG as usize) + 2 * WG.ilog2() as usize;
        profile.check_loop_trips(
            label,
            trips,
            &format!("a reduction of {count} elements per output"),
        )?;
    }
    Ok(cooperative)
}

/// The binding of every reduction's outputs, after the epilogue's.
fn output_bindings<'a>(bindings: &mut Bindings<'a>, kernel: &'a ReduceKernel) -> Vec<Vec<usize>> {
    kernel
        .reductions
        .iter()
        .map(|r| match &r.output {
            ReduceOutput::Write { buffer, .. } | ReduceOutput::Accumulate { buffer, .. } => {
                vec![bindings.of(buffer, true)]
            }
            ReduceOutput::Moments { mean, var, running } => {
                let mut v = vec![bindings.of(&mean.0, true), bindings.of(&var.0, true)];
                if let Some(u) = running {
                    v.push(bindings.of(&u.mean, true));
                    v.push(bindings.of(&u.var, true));
                    if let Some(c) = &u.count {
                        v.push(bindings.of(c, true));
                    }
                }
                v
            }
        })
        .collect()
}

/// How the elements of an output are walked, and the address of each
/// layout at the current element.
struct Walk {
    cooperative: bool,
    /// Each invocation of a cooperative reduction takes a contiguous chunk
    /// (CPUs, whose lanes each run through memory) rather than every
    /// WG-th element (GPUs: neighbours read neighbouring elements at once).
    chunked: bool,
    chunk: String,
    n_red: String,
    red_shape: Vec<usize>,
    red_sizes: Vec<String>,
    red_inner: Vec<String>,
    /// Per layout, its stride words along the reduced axes (where used)
    /// and which strides are zero.
    red_strides: Vec<Vec<(String, bool)>>,
}

impl Walk {
    fn new(
        words: &mut Words,
        profile: &KernelProfile,
        space: &Space,
        used: &[usize],
        cooperative: bool,
        n_red: String,
    ) -> Self {
        let red = &space.red;
        let mut red_strides = vec![Vec::new(); red.strides.len()];
        for &l in used {
            red_strides[l] = red.strides[l]
                .iter()
                .map(|&s| (words.u(s), s == 0))
                .collect();
        }
        let chunk = words.u(space.count.div_ceil(WG as usize));
        let red_sizes = red.shape.iter().map(|&s| words.u(s)).collect();
        let red_inner = (0..red.shape.len())
            .map(|d| words.u(red.shape[d + 1..].iter().product()))
            .collect();
        Walk {
            cooperative,
            chunked: profile.is_software(),
            chunk,
            n_red,
            red_shape: red.shape.clone(),
            red_sizes,
            red_inner,
            red_strides,
        }
    }

    /// The loop over this output's elements, running `inner` at each; the
    /// reduced coordinates are `j0`, `j1`, ….
    fn element_loop(&self, inner: &str) -> String {
        let (chunk, n_red) = (&self.chunk, &self.n_red);
        let rr = self.red_shape.len();
        let mut s = String::new();
        if self.cooperative {
            s += &if self.chunked {
                format!(
                    "    for (var j = lid * {chunk}; j < min(lid * {chunk} + {chunk}, {n_red}); j++) {{\n"
                )
            } else {
                format!("    for (var j = lid; j < {n_red}; j += {WG}u) {{\n")
            };
            for (d, (size, inner)) in self.red_sizes.iter().zip(&self.red_inner).enumerate() {
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
            for (d, size) in self.red_sizes.iter().enumerate() {
                s += &format!("    for (var j{d} = 0u; j{d} < {size}; j{d}++) {{\n");
            }
        }
        s += inner;
        let closing = if self.cooperative { 1 } else { rr };
        for _ in 0..closing {
            s += "    }\n";
        }
        s
    }

    /// The index of layout `l` at the current element.
    fn at(&self, l: usize) -> String {
        let mut terms = vec![format!("base{l}")];
        for (d, (s, zero)) in self.red_strides[l].iter().enumerate() {
            if !zero {
                terms.push(format!("j{d} * {s}"));
            }
        }
        format!("({})", terms.join(" + "))
    }
}

fn identity(k: ReduceKind) -> &'static str {
    match k {
        ReduceKind::Max => "bitcast<f32>(0xff800000u)",
        ReduceKind::Min => "bitcast<f32>(0x7f800000u)",
        _ => "0.0",
    }
}

fn combine(k: ReduceKind, acc: &str, v: &str) -> String {
    match k {
        ReduceKind::Max => format!("max({acc}, {v})"),
        ReduceKind::Min => format!("min({acc}, {v})"),
        _ => format!("{acc} + {v}"),
    }
}

/// The tree reduction of reduction `r`'s per-invocation partial results.
fn tree(main: &mut Vec<String>, r: usize, kind: ReduceKind) {
    let c = combine(kind, &format!("s{r}[lid]"), &format!("s{r}[lid + s]"));
    main.push(format!(
        "    s{r}[lid] = a{r};\n    workgroupBarrier();\n    for (var s = {}u; s > 0u; s = s / 2u) {{\n        if (lid < s) {{ s{r}[lid] = {c}; }}\n        workgroupBarrier();\n    }}\n    a{r} = s{r}[0];\n    workgroupBarrier();",
        WG / 2
    ));
}

/// The kernel's code before its element loops: the output it owns, its
/// coordinates, where each used layout starts, the dropout keys and the
/// accumulators. Returns the code and the layouts used.
#[allow(clippy::too_many_arguments)] // the parts of the kernel its first lines read
fn prologue(
    words: &mut Words,
    e: &Epilogue,
    kernel: &ReduceKernel,
    space: &Space,
    body: &Body,
    op_bind: &[usize],
    cooperative: bool,
    n_out: &str,
) -> (Vec<String>, Vec<usize>) {
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
    main.extend(coordinates(words, "k", "o", &space.kept.shape));
    let mut used: Vec<usize> = body.loads.clone();
    used.extend(e.operands.len()..e.operands.len() + e.stores.len());
    used.push(space.flat_layout());
    for &l in &used {
        let mut terms = vec![words.u(space.offsets[l])];
        for (d, &s) in space.kept.strides[l].iter().enumerate() {
            if s != 0 {
                terms.push(format!("k{d} * {}", words.u(s)));
            }
        }
        main.push(format!("    let base{l} = {};", terms.join(" + ")));
    }
    for (j, (k, lo, hi)) in body.keys.iter().enumerate() {
        let off = words.u(e.operands[*k].layout.offset);
        main.push(format!(
            "    let key{j} = dropout_key({lo}, {hi}, u32(b{}[{off}]));",
            op_bind[*k]
        ));
    }
    for (r, red) in kernel.reductions.iter().enumerate() {
        main.push(format!("    var a{r} = {};", identity(red.kind)));
    }
    (main, used)
}

/// The pass over the elements (the body, each reduction's accumulation,
/// the stores met on the way), then for moments the second pass over the
/// centred squares; each followed by its tree reductions when cooperative.
fn passes(
    main: &mut Vec<String>,
    walk: &Walk,
    kernel: &ReduceKernel,
    body: &Body,
    [op_bind, st_bind]: [&[usize]; 2],
) {
    let (e, reductions, n_red) = (&kernel.epilogue, &kernel.reductions, &walk.n_red);
    let flat_layout = e.operands.len() + e.stores.len();
    let loads = || -> String {
        body.loads
            .iter()
            .map(|&k| format!("        let x{k} = b{}[{}];\n", op_bind[k], walk.at(k)))
            .collect()
    };
    let call = body.call(&walk.at(flat_layout), |k| format!("x{k}"), None);
    let mut first = loads();
    first += &format!("        let r = {call};\n");
    for (r, red) in reductions.iter().enumerate() {
        first += &format!(
            "        a{r} = {};\n",
            combine(red.kind, &format!("a{r}"), &format!("r.r{r}"))
        );
    }
    for (s, b) in st_bind.iter().enumerate() {
        let l = e.operands.len() + s;
        first += &format!(
            "        b{b}[{}] = r.r{};\n",
            walk.at(l),
            reductions.len() + s
        );
    }
    main.push(walk.element_loop(&first));
    if walk.cooperative {
        for (r, red) in reductions.iter().enumerate() {
            tree(main, r, red.kind);
        }
    }
    let moments: Vec<usize> = (0..reductions.len())
        .filter(|&r| reductions[r].kind == ReduceKind::Moments)
        .collect();
    if moments.is_empty() {
        return;
    }
    for &r in &moments {
        main.push(format!(
            "    let mean{r} = a{r} / f32({n_red});\n    var q{r} = 0.0;"
        ));
    }
    let mut second = loads();
    second += &format!("        let r = {call};\n");
    for &r in &moments {
        second += &format!("        let d{r} = r.r{r} - mean{r};\n        q{r} += d{r} * d{r};\n");
    }
    main.push(walk.element_loop(&second));
    if walk.cooperative {
        for &r in &moments {
            main.push(format!("    a{r} = q{r};"));
            tree(main, r, ReduceKind::Sum);
            main.push(format!("    q{r} = a{r};"));
        }
    }
}

/// The results, written by one invocation per output: each reduction's
/// value (a mean divided by the count), accumulated where asked, and
/// moments with the running statistics moved toward them.
fn results(
    words: &mut Words,
    kernel: &ReduceKernel,
    out_bind: &[Vec<usize>],
    n_red: &str,
) -> Vec<String> {
    let mut fin = Vec::new();
    for (r, red) in kernel.reductions.iter().enumerate() {
        let b = &out_bind[r];
        let value = || match red.kind {
            ReduceKind::Mean => format!("a{r} / f32({n_red})"),
            _ => format!("a{r}"),
        };
        match &red.output {
            ReduceOutput::Write { offset, .. } => {
                fin.push(format!(
                    "    b{}[{} + o] = {};",
                    b[0],
                    words.u(*offset),
                    value()
                ));
            }
            ReduceOutput::Accumulate {
                offset,
                keep,
                scale,
                ..
            } => {
                let at = format!("{} + o", words.u(*offset));
                fin.push(format!(
                    "    b{0}[{at}] = {1} * b{0}[{at}] + {2} * {3};",
                    b[0],
                    words.f(*keep),
                    words.f(*scale),
                    value()
                ));
            }
            ReduceOutput::Moments { mean, var, running } => {
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
    fin
}

/// The reduction kernel of `kernel` shaped for `profile` (see the module
/// docs of `reduction.rs`).
pub(super) fn generate(profile: &KernelProfile, kernel: &ReduceKernel) -> Result<Generated> {
    let e = &kernel.epilogue;
    let space = space(kernel)?;
    let cooperative = cooperative(profile, &kernel.label, &space)?;
    let (mut bindings, op_bind, st_bind) = Bindings::of_operands(&e.operands, &e.stores);
    let out_bind = output_bindings(&mut bindings, kernel);

    let mut results_of: Vec<usize> = kernel.reductions.iter().map(|r| r.expr).collect();
    results_of.extend(e.stores.iter().map(|s| s.expr));
    let mut words = Words::new();
    let body = e.program.body(&mut words, false, &results_of);
    let n_out = words.u(space.outputs);
    let n_red = words.u(space.count);
    let (mut main, used) = prologue(
        &mut words,
        e,
        kernel,
        &space,
        &body,
        &op_bind,
        cooperative,
        &n_out,
    );
    let walk = Walk::new(&mut words, profile, &space, &used, cooperative, n_red);
    passes(&mut main, &walk, kernel, &body, [&op_bind, &st_bind]);
    let fin = results(&mut words, kernel, &out_bind, &walk.n_red);
    if cooperative {
        main.push(format!("    if (lid == 0u) {{\n{}\n    }}", fin.join("\n")));
    } else {
        main.extend(fin);
    }
    let scratch: String = if cooperative {
        (0..kernel.reductions.len())
            .map(|r| format!("var<workgroup> s{r}: array<f32, {WG}>;\n"))
            .collect()
    } else {
        String::new()
    };
    let declared = [bindings.declare(&[]) + &scratch, words.declare()];
    let source = module(
        &[&declared[0], &declared[1], &body.source],
        &linear_entry(),
        &main,
    );
    let groups = match cooperative {
        true => space.outputs as u64,
        false => (space.outputs as u64).div_ceil(WG as u64),
    };
    let label = format!("{}{}", kernel.label, if cooperative { "/wg" } else { "" });
    let mut generated = bindings.generated(label, source, &words, Grid::Linear(groups));
    // Loops over runtime sizes: naga's guards stay on.
    generated.trusted = false;
    Ok(generated)
}
