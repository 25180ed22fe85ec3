//! The source of a GEMM kernel, built in named steps: the spec's checks,
//! the kernel shape and bindings, the words, then the register-blocked
//! body (prologue, A's values of a K step, B's and the multiply-adds, the
//! stores) or the workgroup-tiled one, and their assembly. The variants
//! are described in the parent module.

use crate::error::{invalid, BackendError, Result};
use crate::kernel::Generated;
use crate::KernelProfile;

use super::super::epilogue::epilogue_fn;
use super::super::register_block::{RegisterBlock, LANES};
use super::super::words::Words;
use super::super::{check_fits, fixed_grid, module, Bindings, Operand};
use super::{check_load, choose, GemmKernel, GemmLoad, GemmSpec, Mode, Shape};

/// The kernel of `spec` shaped for `profile`; where it
/// [shares rows across lanes](KernelProfile::shares_rows_across_lanes),
/// the lanes of a subgroup share the loads of A's rows in 8×8 blocks.
pub(super) fn generate(profile: &KernelProfile, kernel: &GemmKernel) -> Result<Generated> {
    let (label, spec, e) = (kernel.label.as_str(), &kernel.spec, &kernel.epilogue);
    let (program, operands, stores) = (&e.program, &e.operands[..], &e.stores[..]);
    let batch = check_spec(kernel)?;
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();
    let lanes = profile.shares_rows_across_lanes();
    let shape = shape_for(profile, spec, operands)?;
    // The K loop: one trip per step of `ks` (blocked), or per 16-deep tile
    // with its loads and products (tiled).
    let trips = match shape {
        Shape::Blocked { .. } => spec.k,
        Shape::Tiled => spec.k.div_ceil(16) * 90,
    };
    let what = format!("a product with K = {}", spec.k);
    profile.check_loop_trips(label, trips, &what)?;

    let mut bindings = Bindings::default();
    let a_bind = bindings.of(&spec.a.buffer, false);
    let b_bind = bindings.of(&spec.b.buffer, false);
    let op_bind: Vec<usize> = operands
        .iter()
        .map(|o| bindings.of(&o.buffer, false))
        .collect();
    let st_bind: Vec<usize> = stores
        .iter()
        .map(|s| bindings.of(&s.buffer, true))
        .collect();
    if st_bind.iter().any(|&s| s == a_bind || s == b_bind) {
        return Err(invalid(
            label,
            "the product may not overwrite its own operands",
        ));
    }
    let (a_mode, b_mode) = match shape {
        Shape::Blocked { a, b, .. } => (a, b),
        Shape::Tiled => (Mode::Scalar, Mode::Scalar),
    };
    // A and B are read as vec4 arrays only when their mode says so, and only
    // through their own bindings (operands of the epilogue are separate).
    let mut vec4 = vec![false; bindings.len()];
    vec4[a_bind] = a_mode != Mode::Scalar;
    vec4[b_bind] = b_mode != Mode::Scalar;

    let mut words = Words::new();
    let body = program.body(&mut words, true, &results);
    let w = Names::new(&mut words, spec, [a_bind, b_bind]);
    let epi = epilogue_fn(
        &mut words,
        &spec.shape,
        spec.shape.len() - 2,
        &body,
        operands,
        stores,
        &op_bind,
        &st_bind,
    );
    let (m, n) = (spec.m as u64, spec.n as u64);
    let (decl, main, grid) = match shape {
        Shape::Blocked { rm, rn, a, b } => {
            let lanes = lanes && rm != 1;
            let mut main = blocked_prologue(&w, rm, rn, a, b, lanes);
            let a_val = a_values(&mut main, &w, rm, a, b, lanes);
            multiply_adds(&mut main, &w, &a_val, rn, a, b);
            blocked_stores(&mut main, &w, rm, rn);
            let (decl, grid) = match rm {
                1 => (
                    "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {".to_string(),
                    [(m * n.div_ceil(4)).div_ceil(64), 1, batch as u64],
                ),
                _ => (
                    RegisterBlock::entry(lanes).to_string(),
                    [n.div_ceil(64), m.div_ceil(64), batch as u64],
                ),
            };
            (decl, main, grid)
        }
        Shape::Tiled => (
            "var<workgroup> tile_a: array<array<f32, 64>, 16>;\nvar<workgroup> tile_b: array<array<f32, 64>, 16>;\n@compute @workgroup_size(16, 16, 1)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,\n        @builtin(local_invocation_index) flat: u32) {".to_string(),
            tiled_body(&w),
            [n.div_ceil(64), m.div_ceil(64), batch as u64],
        ),
    };
    let declared = [bindings.declare(&vec4), words.declare()];
    let source = module(
        &[&declared[0], &declared[1], &body.source, &epi],
        &decl,
        &main,
    );
    let name = match shape {
        Shape::Blocked { rm: 1, .. } => "small",
        Shape::Blocked {
            a: Mode::Scalar,
            b: Mode::Scalar,
            ..
        } => "blocked",
        Shape::Blocked { .. } => "vec4",
        Shape::Tiled => "tiled",
    };
    let grid = fixed_grid(label, grid)?;
    Ok(bindings.generated(format!("{label}/{name}"), source, &words, grid))
}

/// Fails unless the epilogue's space ends in `[M, N]`, the product is not
/// empty, the program is sound and every load and store fits its buffer;
/// returns the batch.
fn check_spec(kernel: &GemmKernel) -> Result<usize> {
    let (label, spec, e) = (kernel.label.as_str(), &kernel.spec, &kernel.epilogue);
    let (program, operands, stores) = (&e.program, &e.operands[..], &e.stores[..]);
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let r = spec.shape.len();
    let batch: usize = if r >= 2 {
        spec.shape[..r - 2].iter().product()
    } else {
        0
    };
    if r < 2 || spec.shape[r - 2] != m || spec.shape[r - 1] != n {
        return Err(invalid(
            label,
            format!("the epilogue space {:?} must end in [{m}, {n}]", spec.shape),
        ));
    }
    if m == 0 || n == 0 || k == 0 || batch == 0 {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: vec![batch, m, k, n],
        });
    }
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();
    program.validate(operands.len(), true, &results)?;
    check_load("A", &spec.a, batch, m, k)?;
    check_load("B", &spec.b, batch, k, n)?;
    for o in operands {
        check_fits(label, &spec.shape, &o.buffer, &o.layout)?;
    }
    for s in stores {
        check_fits(label, &spec.shape, &s.buffer, &s.layout)?;
    }
    Ok(batch)
}

/// The variant's kernel shape; an epilogue operand in A's or B's buffer is
/// read as f32, so A and B are kept scalar too.
fn shape_for(profile: &KernelProfile, spec: &GemmSpec, operands: &[Operand]) -> Result<Shape> {
    let shape = choose(profile, spec)?;
    let shared = operands
        .iter()
        .any(|o| o.buffer.same(&spec.a.buffer) || o.buffer.same(&spec.b.buffer))
        || spec.a.buffer.same(&spec.b.buffer);
    Ok(match (shared, shape) {
        (true, Shape::Blocked { rm, rn, .. }) => Shape::Blocked {
            rm,
            rn,
            a: Mode::Scalar,
            b: Mode::Scalar,
        },
        _ => shape,
    })
}

/// The kernel's words (`P.w…`) and how it reads A and B.
struct Names<'s> {
    m: String,
    n: String,
    k: String,
    a_off: String,
    a_bs: String,
    lda: String,
    b_off: String,
    b_bs: String,
    ldb: String,
    /// A's and B's buffers, as `b{binding}`.
    a: String,
    b: String,
    spec: &'s GemmSpec,
}

impl<'s> Names<'s> {
    fn new(words: &mut Words, spec: &'s GemmSpec, [a, b]: [usize; 2]) -> Self {
        let (m, n, k) = (words.u(spec.m), words.u(spec.n), words.u(spec.k));
        let load = |words: &mut Words, l: &GemmLoad| {
            (
                words.u(l.offset),
                words.u(l.batch_stride),
                words.u(l.row_stride),
            )
        };
        let (a_off, a_bs, lda) = load(words, &spec.a);
        let (b_off, b_bs, ldb) = load(words, &spec.b);
        Names {
            m,
            n,
            k,
            a_off,
            a_bs,
            lda,
            b_off,
            b_bs,
            ldb,
            a: format!("b{a}"),
            b: format!("b{b}"),
            spec,
        }
    }

    /// A's element at row `mrow`, depth `kk`, through its strides.
    fn a_load(&self, mrow: &str, kk: &str) -> String {
        let (a, lda) = (&self.a, &self.lda);
        match self.spec.a.transposed {
            true => format!("{a}[a_base + ({kk}) * {lda} + ({mrow})]"),
            false => format!("{a}[a_base + ({mrow}) * {lda} + ({kk})]"),
        }
    }

    /// B's element at depth `kk`, column `ncol`, through its strides.
    fn b_load(&self, kk: &str, ncol: &str) -> String {
        let (b, ldb) = (&self.b, &self.ldb);
        match self.spec.b.transposed {
            true => format!("{b}[b_base + ({ncol}) * {ldb} + ({kk})]"),
            false => format!("{b}[b_base + ({kk}) * {ldb} + ({ncol})]"),
        }
    }

    /// The batch's bases of A and B.
    fn bases(&self) -> String {
        format!(
            "    let bt = wid.z;\n    let a_base = {} + bt * {};\n    let b_base = {} + bt * {};",
            self.a_off, self.a_bs, self.b_off, self.b_bs
        )
    }
}

/// The K step of a blocked kernel: 4 with a vec4 read along K, else 1.
fn k_step(a: Mode, b: Mode) -> usize {
    if a == Mode::Vec4K || b == Mode::Vec4K {
        4
    } else {
        1
    }
}

/// A blocked kernel up to its K loop (opened): the block's rows and
/// columns (clamped), the rows' and columns' bases for vec4 reads, and the
/// accumulators.
fn blocked_prologue(
    w: &Names<'_>,
    rm: usize,
    rn: usize,
    a: Mode,
    b: Mode,
    lanes: bool,
) -> Vec<String> {
    let (wm, wn, lda, ldb) = (&w.m, &w.n, &w.lda, &w.ldb);
    let block = RegisterBlock {
        rows: rm,
        cols: rn,
        lanes,
    };
    let mut main = Vec::new();
    if rm == 1 {
        // 1×4 strips, one invocation each over a one-dimensional grid.
        main.push(format!(
            "    let strips = ({wn} + 3u) / 4u;\n    let t = wid.x * 64u + lid;\n    if (t >= {wm} * strips) {{ return; }}\n    let row0 = t / strips;\n    let col0 = (t % strips) * 4u;"
        ));
    } else {
        main.push(block.origin(wm, wn));
    }
    main.push(w.bases());
    main.extend(block.clamped_rows("m", wm));
    for c in 0..rn {
        main.push(format!("    let n{c} = min(col0 + {c}u, {wn} - 1u);"));
    }
    if a == Mode::Vec4K && lanes {
        main.push(format!("    let ars = (a_base + rs * {lda}) / 4u;"));
    } else {
        let rows = VectorIndices {
            base: ["ar", "a_base", "m"],
            group: ["ag", "row0"],
        };
        rows.push(&mut main, a, rm, lda, wm);
    }
    let columns = VectorIndices {
        base: ["bc", "b_base", "n"],
        group: ["bg", "col0"],
    };
    columns.push(&mut main, b, rn, ldb, wn);
    main.extend(block.accumulators());
    main.push(format!(
        "    for (var k = 0u; k < {}; k += {}u) {{",
        w.k,
        k_step(a, b)
    ));
    main
}

/// The indices through which one operand's vec4 loads address it, along
/// the `count` rows (A) or columns (B) of a block: along K, where each row
/// (column) starts (`ar{i}`, `bc{c}`); along the output axis, each group of
/// four (`ag{g}`, `bg{g}`), clamped to the matrix.
struct VectorIndices {
    /// The names of the index, the operand's base and the row (column).
    base: [&'static str; 3],
    /// The names of the group index and the block's first row (column).
    group: [&'static str; 2],
}

impl VectorIndices {
    fn push(&self, main: &mut Vec<String>, mode: Mode, count: usize, ld: &str, extent: &str) {
        let ([index, base, line], [group, first]) = (self.base, self.group);
        match mode {
            Mode::Vec4K => main.extend(
                (0..count)
                    .map(|i| format!("    let {index}{i} = ({base} + {line}{i} * {ld}) / 4u;")),
            ),
            Mode::Vec4Out => main.extend((0..count / 4).map(|g| {
                format!("    let {group}{g} = min({first} / 4u + {g}u, {extent} / 4u - 1u);")
            })),
            Mode::Scalar => {}
        }
    }
}

/// Loads A's values of one K step and returns them as expressions,
/// `a_val[i][dk]` for row i at depth k + dk. With lanes, lane l loads what
/// row l (or item l) needs and the others take it by broadcast.
fn a_values(
    main: &mut Vec<String>,
    w: &Names<'_>,
    rm: usize,
    a: Mode,
    b: Mode,
    lanes: bool,
) -> Vec<Vec<String>> {
    let (wm, lda, xa) = (&w.m, &w.lda, &w.a);
    let ks = k_step(a, b);
    let mut a_val: Vec<Vec<String>> = vec![vec![String::new(); ks]; rm];
    let share = |main: &mut Vec<String>, name: &str, load: String, items: usize| {
        super::super::lane_broadcasts(main, &format!("{name}s"), &load, items)
    };
    match a {
        Mode::Vec4K if lanes => {
            let rows = share(main, "av", format!("{xa}[ars + k / 4u]"), rm);
            for (i, row) in a_val.iter_mut().enumerate() {
                main.push(format!("        let av{i} = {};", rows[i]));
                for (dk, v) in row.iter_mut().enumerate() {
                    *v = format!("av{i}.{}", LANES[dk]);
                }
            }
        }
        Mode::Vec4Out if lanes => {
            // Item j = dk·(rm/4) + g: the g-th four rows at k + dk.
            let groups = rm / 4;
            let load = format!(
                "{xa}[(a_base + (k + (lid.x / {groups}u) % {ks}u) * {lda}) / 4u + min(row0 / 4u + lid.x % {groups}u, {wm} / 4u - 1u)]"
            );
            let items = share(main, "am", load, ks * groups);
            for dk in 0..ks {
                for g in 0..groups {
                    main.push(format!(
                        "        let am{dk}_{g} = {};",
                        items[dk * groups + g]
                    ));
                }
                for (i, row) in a_val.iter_mut().enumerate() {
                    row[dk] = format!("am{dk}_{}.{}", i / 4, LANES[i % 4]);
                }
            }
        }
        Mode::Scalar if lanes => {
            for dk in 0..ks {
                let load = w.a_load("rs", &format!("k + {dk}u"));
                let rows = share(main, &format!("as{dk}_"), load, rm);
                for (i, row) in a_val.iter_mut().enumerate() {
                    main.push(format!("        let as{i}_{dk} = {};", rows[i]));
                    row[dk] = format!("as{i}_{dk}");
                }
            }
        }
        Mode::Vec4K => {
            for (i, row) in a_val.iter_mut().enumerate() {
                main.push(format!("        let av{i} = {xa}[ar{i} + k / 4u];"));
                for (dk, v) in row.iter_mut().enumerate() {
                    *v = format!("av{i}.{}", LANES[dk]);
                }
            }
        }
        Mode::Vec4Out => {
            for dk in 0..ks {
                main.push(format!(
                    "        let ak{dk} = (a_base + (k + {dk}u) * {lda}) / 4u;"
                ));
                for g in 0..rm / 4 {
                    main.push(format!("        let am{dk}_{g} = {xa}[ak{dk} + ag{g}];"));
                }
                for (i, row) in a_val.iter_mut().enumerate() {
                    row[dk] = format!("am{dk}_{}.{}", i / 4, LANES[i % 4]);
                }
            }
        }
        Mode::Scalar => {
            for (i, row) in a_val.iter_mut().enumerate() {
                for (dk, v) in row.iter_mut().enumerate() {
                    main.push(format!(
                        "        let as{i}_{dk} = {};",
                        w.a_load(&format!("m{i}"), &format!("k + {dk}u"))
                    ));
                    *v = format!("as{i}_{dk}");
                }
            }
        }
    }
    a_val
}

/// B's values of one K step and the multiply-adds into the accumulators:
/// dot products where both are read along K, else B's rows of four
/// columns `br{dk}_{g}` times A's values. Closes the K loop.
fn multiply_adds(
    main: &mut Vec<String>,
    w: &Names<'_>,
    a_val: &[Vec<String>],
    rn: usize,
    a: Mode,
    b: Mode,
) {
    let (ldb, xb) = (&w.ldb, &w.b);
    let ks = k_step(a, b);
    if a == Mode::Vec4K && b == Mode::Vec4K {
        for c in 0..rn {
            main.push(format!("        let bw{c} = {xb}[bc{c} + k / 4u];"));
        }
        for i in 0..a_val.len() {
            for g in 0..rn / 4 {
                let dots: Vec<String> = (0..4)
                    .map(|j| format!("dot(av{i}, bw{})", 4 * g + j))
                    .collect();
                main.push(format!(
                    "        acc{i}_{g} += vec4<f32>({});",
                    dots.join(", ")
                ));
            }
        }
    } else {
        for (dk, lane) in LANES.iter().enumerate().take(ks) {
            match b {
                Mode::Vec4Out => {
                    main.push(format!(
                        "        let bk{dk} = (b_base + (k + {dk}u) * {ldb}) / 4u;"
                    ));
                    for g in 0..rn / 4 {
                        main.push(format!("        let br{dk}_{g} = {xb}[bk{dk} + bg{g}];"));
                    }
                }
                Mode::Vec4K => {
                    if dk == 0 {
                        for c in 0..rn {
                            main.push(format!("        let bw{c} = {xb}[bc{c} + k / 4u];"));
                        }
                    }
                    for g in 0..rn / 4 {
                        let lanes: Vec<String> =
                            (0..4).map(|j| format!("bw{}.{lane}", 4 * g + j)).collect();
                        main.push(format!(
                            "        let br{dk}_{g} = vec4<f32>({});",
                            lanes.join(", ")
                        ));
                    }
                }
                Mode::Scalar => {
                    for g in 0..rn / 4 {
                        let lanes: Vec<String> = (0..4)
                            .map(|j| w.b_load(&format!("k + {dk}u"), &format!("n{}", 4 * g + j)))
                            .collect();
                        main.push(format!(
                            "        let br{dk}_{g} = vec4<f32>({});",
                            lanes.join(", ")
                        ));
                    }
                }
            }
        }
        for (i, row) in a_val.iter().enumerate() {
            for g in 0..rn / 4 {
                let terms: Vec<String> = (0..ks)
                    .map(|dk| format!("{} * br{dk}_{g}", row[dk]))
                    .collect();
                main.push(format!("        acc{i}_{g} += {};", terms.join(" + ")));
            }
        }
    }
    main.push("    }".to_string());
}

/// Each accumulator through the epilogue where its row and column are
/// inside the product.
fn blocked_stores(main: &mut Vec<String>, w: &Names<'_>, rm: usize, rn: usize) {
    for i in 0..rm {
        for c in 0..rn {
            let column = format!("col0 + {c}u");
            main.push(RegisterBlock::store(i, c, [&w.m, &w.n], "", "bt", &column));
        }
    }
}

/// The tiled kernel's body: a 16×16 workgroup stages 64×16 slices of A
/// and B in workgroup memory per K tile, each invocation computing 4×4.
fn tiled_body(w: &Names<'_>) -> Vec<String> {
    let (wm, wn, wk) = (&w.m, &w.n, &w.k);
    vec![
        format!(
            "{}\n    let block_m = wid.y * 64u;\n    let block_n = wid.x * 64u;\n    var acc: array<vec4<f32>, 4>;\n    for (var i = 0u; i < 4u; i++) {{ acc[i] = vec4<f32>(0.0); }}",
            w.bases()
        ),
        format!("    for (var k0 = 0u; k0 < {wk}; k0 += 16u) {{"),
        format!(
            "        for (var r = 0u; r < 4u; r++) {{\n            let e = flat + r * 256u;\n            let kk = e / 64u;\n            let mm = e % 64u;\n            let gk = k0 + kk;\n            var va = 0.0;\n            if (gk < {wk} && block_m + mm < {wm}) {{ va = {}; }}\n            tile_a[kk][mm] = va;\n            var vb = 0.0;\n            if (gk < {wk} && block_n + mm < {wn}) {{ vb = {}; }}\n            tile_b[kk][mm] = vb;\n        }}\n        workgroupBarrier();",
            w.a_load("block_m + mm", "gk"),
            w.b_load("gk", "block_n + mm")
        ),
        "        for (var kk = 0u; kk < 16u; kk++) {\n            let bv = vec4<f32>(tile_b[kk][lid.x * 4u], tile_b[kk][lid.x * 4u + 1u],\n                               tile_b[kk][lid.x * 4u + 2u], tile_b[kk][lid.x * 4u + 3u]);\n            for (var i = 0u; i < 4u; i++) {\n                acc[i] += tile_a[kk][lid.y * 4u + i] * bv;\n            }\n        }\n        workgroupBarrier();\n    }".to_string(),
        format!(
            "    for (var i = 0u; i < 4u; i++) {{\n        let mr = block_m + lid.y * 4u + i;\n        for (var j = 0u; j < 4u; j++) {{\n            let nc = block_n + lid.x * 4u + j;\n            if (mr < {wm} && nc < {wn}) {{ epi(P, bt, mr, nc, acc[i][j]); }}\n        }}\n    }}"
        ),
    ]
}
