//! The generated GEMM kernel: `C[b] = op(A[b])·op(B[b])`, every element of C
//! passed through an epilogue [`Program`] (where [`Expr::Anchor`] is the
//! product) before it is stored. One template yields every variant:
//!
//! - register-blocked, for software adapters: each invocation keeps an
//!   `RM×RN` block of C in registers (8×8, or 1×4 strips for narrow
//!   outputs) and reads A and B either element by element through strides
//!   (any transpose, any alignment) or four at a time along whichever axis
//!   is contiguous (K, or M for a transposed A and N for B) when the sizes
//!   and strides allow;
//! - workgroup-tiled, for hardware GPUs: a 16×16 workgroup computes a 64×64
//!   block, staging 64×16 slices of A and B in workgroup memory.
//!
//! Rows and columns past the matrix are clamped on load (loads never branch)
//! and skipped on store, and the launcher checks on the host that every
//! operand's last element lies inside its buffer, so the module is built
//! without per-access bounds checks.
//!
//! [`Expr::Anchor`]: super::Expr::Anchor

use crate::error::{invalid, BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::ops::matmul::MatmulVariant;
use crate::{Buffer, Device, Kernel, KernelProfile};

use super::epilogue::epilogue_fn;
use super::program::Program;
use super::words::Words;
use super::{check_fits, Bindings, Operand, Store};

/// A stored matrix operand: element `(row, col)` of batch `b` of what is
/// stored is at `offset + b·batch_stride + row·row_stride + col`; with
/// `transposed` the product reads its transpose.
#[derive(Clone, Debug)]
pub struct GemmLoad<'a> {
    pub buffer: &'a Buffer,
    pub offset: usize,
    pub row_stride: usize,
    pub batch_stride: usize,
    pub transposed: bool,
}

/// A batched product `op(A)·op(B)` of `M×K` and `K×N` matrices.
#[derive(Clone, Debug)]
pub struct GemmSpec<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// The epilogue's iteration space: `[batch axes…, M, N]`.
    pub shape: Vec<usize>,
    pub a: GemmLoad<'a>,
    pub b: GemmLoad<'a>,
    pub variant: MatmulVariant,
}

/// How an operand is read inside the K loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One element at a time through strides.
    Scalar,
    /// Four consecutive elements along K.
    Vec4K,
    /// Four consecutive elements along the output axis (M for A, N for B).
    Vec4Out,
}

/// The kernel shape a variant gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One invocation per `rm×rn` block, `wg_x×wg_y` invocations per workgroup.
    Blocked {
        rm: usize,
        rn: usize,
        a: Mode,
        b: Mode,
    },
    Tiled,
}

/// Software adapters take 1×4 strips for outputs this narrow, where the 8×8
/// block would be mostly empty (measured 2–4× slower at 64×128 otherwise).
const SMALL_MAX_N: usize = 4;

fn choose(profile: &KernelProfile, spec: &GemmSpec<'_>) -> Result<Shape> {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let aligned = |l: &GemmLoad<'_>| {
        l.offset.is_multiple_of(4)
            && l.row_stride.is_multiple_of(4)
            && l.batch_stride.is_multiple_of(4)
    };
    let (a_al, b_al) = (aligned(&spec.a), aligned(&spec.b));
    let a_mode = match spec.a.transposed {
        false if a_al && k.is_multiple_of(4) => Mode::Vec4K,
        true if a_al && m.is_multiple_of(4) => Mode::Vec4Out,
        _ => Mode::Scalar,
    };
    let b_mode = match spec.b.transposed {
        false if b_al && n.is_multiple_of(4) => Mode::Vec4Out,
        true if b_al && k.is_multiple_of(4) => Mode::Vec4K,
        _ => Mode::Scalar,
    };
    let scalar = Shape::Blocked {
        rm: 8,
        rn: 8,
        a: Mode::Scalar,
        b: Mode::Scalar,
    };
    let small = Shape::Blocked {
        rm: 1,
        rn: 4,
        a: Mode::Scalar,
        b: Mode::Scalar,
    };
    let vec4 = Shape::Blocked {
        rm: 8,
        rn: 8,
        a: a_mode,
        b: b_mode,
    };
    // The vec4 paths that were measured to pay: both operands vectorised, or
    // A·Bᵀ with both along K.
    let vec4_ok = a_mode != Mode::Scalar && b_mode != Mode::Scalar;
    Ok(match spec.variant {
        MatmulVariant::Small => small,
        MatmulVariant::Blocked => scalar,
        MatmulVariant::Tiled => Shape::Tiled,
        MatmulVariant::Vec4 if vec4_ok => vec4,
        MatmulVariant::Vec4 => return Err(invalid(
            "matmul",
            "the vec4 variant needs 4-aligned strides and offsets, with K and N (A·B), K (A·Bᵀ) \
                 or M and N (Aᵀ·B) multiples of 4; Aᵀ·Bᵀ has none",
        )),
        MatmulVariant::Auto if !profile.is_software() => Shape::Tiled,
        MatmulVariant::Auto if n <= SMALL_MAX_N => small,
        MatmulVariant::Auto if vec4_ok => vec4,
        MatmulVariant::Auto => scalar,
    })
}

/// The source of the kernel [`gemm_kernel`] builds on a device of `profile`.
pub fn gemm_source(
    profile: &KernelProfile,
    spec: &GemmSpec<'_>,
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<String> {
    Ok(generate(profile, "gemm", spec, program, operands, stores)?.source)
}

/// A GEMM kernel with `program` as its epilogue (see the module docs).
pub fn gemm_kernel(
    device: &Device,
    label: &str,
    spec: &GemmSpec<'_>,
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<Kernel> {
    let g = generate(
        device.kernel_profile(),
        label,
        spec,
        program,
        operands,
        stores,
    )?;
    device.generated_kernel(g)
}

const LANES: [&str; 4] = ["x", "y", "z", "w"];

fn check_load(name: &str, l: &GemmLoad<'_>, batch: usize, rows: usize, cols: usize) -> Result<()> {
    let (rows, cols) = if l.transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    if l.row_stride < cols {
        return Err(invalid(
            "matmul",
            format!(
                "{name}: row stride {} is below its {cols} columns",
                l.row_stride
            ),
        ));
    }
    let last = l.offset + (batch - 1) * l.batch_stride + (rows - 1) * l.row_stride + cols;
    if last as u64 * 4 > l.buffer.size() {
        return Err(invalid(
            "matmul",
            format!(
                "{name} reaches byte {} of a {}-byte buffer",
                last * 4,
                l.buffer.size()
            ),
        ));
    }
    Ok(())
}

/// The kernel of `spec` shaped for `profile`; where it
/// [shares rows across lanes](KernelProfile::shares_rows_across_lanes),
/// the lanes of a subgroup share the loads of A's rows in 8×8 blocks.
fn generate<'a>(
    profile: &KernelProfile,
    label: &str,
    spec: &GemmSpec<'a>,
    program: &Program,
    operands: &[Operand<'a>],
    stores: &[Store<'a>],
) -> Result<Generated<'a>> {
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
        check_fits(label, &spec.shape, o.buffer, &o.layout)?;
    }
    for s in stores {
        check_fits(label, &spec.shape, s.buffer, &s.layout)?;
    }
    let lanes = profile.shares_rows_across_lanes();
    let mut shape = choose(profile, spec)?;
    // An epilogue operand in A's or B's buffer is read as f32: keep them scalar too.
    let shared = operands
        .iter()
        .any(|o| o.buffer.same(spec.a.buffer) || o.buffer.same(spec.b.buffer))
        || spec.a.buffer.same(spec.b.buffer);
    if let (true, Shape::Blocked { rm, rn, .. }) = (shared, shape) {
        shape = Shape::Blocked {
            rm,
            rn,
            a: Mode::Scalar,
            b: Mode::Scalar,
        };
    }

    // The K loop: one trip per step of `ks` (blocked), or per 16-deep tile
    // with its loads and products (tiled).
    let trips = match shape {
        Shape::Blocked { .. } => k,
        Shape::Tiled => k.div_ceil(16) * 90,
    };
    profile.check_loop_trips(label, trips, &format!("a product with K = {k}"))?;

    let mut bindings = Bindings::default();
    let a_bind = bindings.of(spec.a.buffer, false);
    let b_bind = bindings.of(spec.b.buffer, false);
    let op_bind: Vec<usize> = operands
        .iter()
        .map(|o| bindings.of(o.buffer, false))
        .collect();
    let st_bind: Vec<usize> = stores.iter().map(|s| bindings.of(s.buffer, true)).collect();
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
    let (wm, wn, wk) = (words.u(m), words.u(n), words.u(k));
    let a_off = words.u(spec.a.offset);
    let a_bs = words.u(spec.a.batch_stride);
    let lda = words.u(spec.a.row_stride);
    let b_off = words.u(spec.b.offset);
    let b_bs = words.u(spec.b.batch_stride);
    let ldb = words.u(spec.b.row_stride);

    let epi = epilogue_fn(
        &mut words,
        &spec.shape,
        r - 2,
        &body,
        operands,
        stores,
        &op_bind,
        &st_bind,
    );

    let a_load = |mrow: &str, kk: &str| -> String {
        if spec.a.transposed {
            format!("b{a_bind}[a_base + ({kk}) * {lda} + ({mrow})]")
        } else {
            format!("b{a_bind}[a_base + ({mrow}) * {lda} + ({kk})]")
        }
    };
    let b_load = |kk: &str, ncol: &str| -> String {
        if spec.b.transposed {
            format!("b{b_bind}[b_base + ({ncol}) * {ldb} + ({kk})]")
        } else {
            format!("b{b_bind}[b_base + ({kk}) * {ldb} + ({ncol})]")
        }
    };

    let mut main = Vec::new();
    let (source_main, grid) = match shape {
        Shape::Blocked { rm, rn, a, b } => {
            let small = rm == 1;
            let lanes = lanes && !small;
            if small {
                main.push(format!(
                    "    let strips = ({wn} + 3u) / 4u;\n    let t = wid.x * 64u + lid;\n    if (t >= {wm} * strips) {{ return; }}\n    let row0 = t / strips;\n    let col0 = (t % strips) * 4u;"
                ));
            } else {
                // Sharing lanes all stay to the end: a broadcast from a
                // lane that returned is undefined.
                let past_columns = match lanes {
                    true => String::new(),
                    false => format!(" || col0 >= {wn}"),
                };
                main.push(format!(
                    "    let row0 = (wid.y * 8u + lid.y) * 8u;\n    let col0 = (wid.x * 8u + lid.x) * 8u;\n    if (row0 >= {wm}{past_columns}) {{ return; }}"
                ));
            }
            main.push(format!(
                "    let bt = wid.z;\n    let a_base = {a_off} + bt * {a_bs};\n    let b_base = {b_off} + bt * {b_bs};"
            ));
            for i in 0..rm {
                main.push(format!("    let m{i} = min(row0 + {i}u, {wm} - 1u);"));
            }
            if lanes {
                // The row this lane loads for its subgroup.
                main.push(format!("    let rs = min(row0 + lid.x, {wm} - 1u);"));
            }
            for c in 0..rn {
                main.push(format!("    let n{c} = min(col0 + {c}u, {wn} - 1u);"));
            }
            let ks = if a == Mode::Vec4K || b == Mode::Vec4K {
                4
            } else {
                1
            };
            match a {
                Mode::Vec4K if lanes => {
                    main.push(format!("    let ars = (a_base + rs * {lda}) / 4u;"));
                }
                Mode::Vec4K => {
                    for i in 0..rm {
                        main.push(format!("    let ar{i} = (a_base + m{i} * {lda}) / 4u;"));
                    }
                }
                Mode::Vec4Out => {
                    for g in 0..rm / 4 {
                        main.push(format!(
                            "    let ag{g} = min(row0 / 4u + {g}u, {wm} / 4u - 1u);"
                        ));
                    }
                }
                Mode::Scalar => {}
            }
            match b {
                Mode::Vec4K => {
                    for c in 0..rn {
                        main.push(format!("    let bc{c} = (b_base + n{c} * {ldb}) / 4u;"));
                    }
                }
                Mode::Vec4Out => {
                    for g in 0..rn / 4 {
                        main.push(format!(
                            "    let bg{g} = min(col0 / 4u + {g}u, {wn} / 4u - 1u);"
                        ));
                    }
                }
                Mode::Scalar => {}
            }
            for i in 0..rm {
                for g in 0..rn / 4 {
                    main.push(format!("    var acc{i}_{g} = vec4<f32>(0.0);"));
                }
            }
            main.push(format!("    for (var k = 0u; k < {wk}; k += {ks}u) {{"));
            // A's values a(i, dk) as expressions.
            let mut a_val: Vec<Vec<String>> = vec![vec![String::new(); ks]; rm];
            // With lanes, lane l loads what row l (or item l) needs and the
            // others take it by broadcast.
            let share = |main: &mut Vec<String>, name: &str, load: String, items: usize| {
                super::lane_broadcasts(main, &format!("{name}s"), &load, items)
            };
            match a {
                Mode::Vec4K if lanes => {
                    let rows = share(&mut main, "av", format!("b{a_bind}[ars + k / 4u]"), rm);
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
                        "b{a_bind}[(a_base + (k + (lid.x / {groups}u) % {ks}u) * {lda}) / 4u + min(row0 / 4u + lid.x % {groups}u, {wm} / 4u - 1u)]"
                    );
                    let items = share(&mut main, "am", load, ks * groups);
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
                        let load = a_load("rs", &format!("k + {dk}u"));
                        let rows = share(&mut main, &format!("as{dk}_"), load, rm);
                        for (i, row) in a_val.iter_mut().enumerate() {
                            main.push(format!("        let as{i}_{dk} = {};", rows[i]));
                            row[dk] = format!("as{i}_{dk}");
                        }
                    }
                }
                Mode::Vec4K => {
                    for (i, row) in a_val.iter_mut().enumerate() {
                        main.push(format!("        let av{i} = b{a_bind}[ar{i} + k / 4u];"));
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
                            main.push(format!(
                                "        let am{dk}_{g} = b{a_bind}[ak{dk} + ag{g}];"
                            ));
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
                                a_load(&format!("m{i}"), &format!("k + {dk}u"))
                            ));
                            *v = format!("as{i}_{dk}");
                        }
                    }
                }
            }
            if a == Mode::Vec4K && b == Mode::Vec4K {
                for c in 0..rn {
                    main.push(format!("        let bw{c} = b{b_bind}[bc{c} + k / 4u];"));
                }
                for i in 0..rm {
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
                // B's rows of four columns, br{dk}_{g}.
                for (dk, lane) in LANES.iter().enumerate().take(ks) {
                    match b {
                        Mode::Vec4Out => {
                            main.push(format!(
                                "        let bk{dk} = (b_base + (k + {dk}u) * {ldb}) / 4u;"
                            ));
                            for g in 0..rn / 4 {
                                main.push(format!(
                                    "        let br{dk}_{g} = b{b_bind}[bk{dk} + bg{g}];"
                                ));
                            }
                        }
                        Mode::Vec4K => {
                            if dk == 0 {
                                for c in 0..rn {
                                    main.push(format!(
                                        "        let bw{c} = b{b_bind}[bc{c} + k / 4u];"
                                    ));
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
                                    .map(|j| {
                                        b_load(&format!("k + {dk}u"), &format!("n{}", 4 * g + j))
                                    })
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
            for i in 0..rm {
                for c in 0..rn {
                    main.push(format!(
                        "    if (row0 + {i}u < {wm} && col0 + {c}u < {wn}) {{ epi(P, bt, row0 + {i}u, col0 + {c}u, acc{i}_{}.{}); }}",
                        c / 4,
                        LANES[c % 4]
                    ));
                }
            }
            let (decl, grid) = if small {
                let strips = n.div_ceil(4);
                (
                    "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
                    [((m * strips) as u64).div_ceil(64), 1, batch as u64],
                )
            } else {
                (
                    super::block_entry(lanes),
                    [
                        (n as u64).div_ceil(64),
                        (m as u64).div_ceil(64),
                        batch as u64,
                    ],
                )
            };
            (decl.to_string(), grid)
        }
        Shape::Tiled => {
            main.push(format!(
                "    let bt = wid.z;\n    let a_base = {a_off} + bt * {a_bs};\n    let b_base = {b_off} + bt * {b_bs};\n    let block_m = wid.y * 64u;\n    let block_n = wid.x * 64u;\n    var acc: array<vec4<f32>, 4>;\n    for (var i = 0u; i < 4u; i++) {{ acc[i] = vec4<f32>(0.0); }}"
            ));
            main.push(format!("    for (var k0 = 0u; k0 < {wk}; k0 += 16u) {{"));
            main.push(format!(
                "        for (var r = 0u; r < 4u; r++) {{\n            let e = flat + r * 256u;\n            let kk = e / 64u;\n            let mm = e % 64u;\n            let gk = k0 + kk;\n            var va = 0.0;\n            if (gk < {wk} && block_m + mm < {wm}) {{ va = {}; }}\n            tile_a[kk][mm] = va;\n            var vb = 0.0;\n            if (gk < {wk} && block_n + mm < {wn}) {{ vb = {}; }}\n            tile_b[kk][mm] = vb;\n        }}\n        workgroupBarrier();",
                a_load("block_m + mm", "gk"),
                b_load("gk", "block_n + mm")
            ));
            main.push("        for (var kk = 0u; kk < 16u; kk++) {\n            let bv = vec4<f32>(tile_b[kk][lid.x * 4u], tile_b[kk][lid.x * 4u + 1u],\n                               tile_b[kk][lid.x * 4u + 2u], tile_b[kk][lid.x * 4u + 3u]);\n            for (var i = 0u; i < 4u; i++) {\n                acc[i] += tile_a[kk][lid.y * 4u + i] * bv;\n            }\n        }\n        workgroupBarrier();\n    }".to_string());
            main.push(format!(
                "    for (var i = 0u; i < 4u; i++) {{\n        let mr = block_m + lid.y * 4u + i;\n        for (var j = 0u; j < 4u; j++) {{\n            let nc = block_n + lid.x * 4u + j;\n            if (mr < {wm} && nc < {wn}) {{ epi(P, bt, mr, nc, acc[i][j]); }}\n        }}\n    }}"
            ));
            (
                "var<workgroup> tile_a: array<array<f32, 64>, 16>;\nvar<workgroup> tile_b: array<array<f32, 64>, 16>;\n@compute @workgroup_size(16, 16, 1)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,\n        @builtin(local_invocation_index) flat: u32) {".to_string(),
                [(n as u64).div_ceil(64), (m as u64).div_ceil(64), batch as u64],
            )
        }
    };
    let source = format!(
        "{}\n{}\n{}\n{}\n{}\n    let P = load_words();\n{}\n}}\n",
        bindings.declare(&vec4),
        words.declare(),
        body.source,
        epi,
        source_main,
        main.join("\n")
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
    if grid.iter().any(|&g| g > u32::MAX as u64) {
        return Err(invalid(label, format!("grid {grid:?} is too large")));
    }
    Ok(Generated {
        label: format!("{label}/{name}"),
        source,
        words: words.values(),
        buffers: bindings.buffers().collect(),
        grid: Grid::Fixed([grid[0] as u32, grid[1] as u32, grid[2] as u32]),
        trusted: true,
    })
}
