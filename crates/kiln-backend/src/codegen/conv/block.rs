//! The source of a convolution pass's 8×8 register-blocked kernel, built
//! in named steps: how the pass's product is blocked ([`Block`]), the
//! words it reads ([`Names`]), the block's prologue, each pass's loops
//! along K, their assembly with the innermost step, and the epilogue's
//! stores. The table of passes is in the parent module.

use crate::error::{invalid, Result};
use crate::kernel::Generated;
use crate::KernelProfile;

use super::super::epilogue::epilogue_fn;
use super::super::register_block::RegisterBlock;
use super::super::words::Words;
use super::super::{fixed_grid, module, Bindings};
use super::taps::{
    gather_tap, multiply_adds, row_offsets, row_values, unrolled_taps, window_loads,
};
use super::{check_spec, Conv2dGeometry, ConvKernel, ConvPass, ConvSpec};

/// Most workgroups along x: the columns of one dispatch slice.
const MAX_COLUMN_GROUPS: usize = 32_768;

/// Marks where the kw loop goes while the kernel's text is assembled.
const KW_LOOP: &str = "    // kw loop";

pub(super) const ROWS: usize = 8;
pub(super) const COLS: usize = 8;
/// Taps per (channel, kernel row) pair in a slotted weight gradient.
const TAP_SLOTS: usize = 4;
/// Output pixels of a row a slotted weight gradient takes per K step.
const UNROLL: usize = 4;

/// The kernel of `spec` shaped for `profile`; where it
/// [shares rows across lanes](KernelProfile::shares_rows_across_lanes),
/// the lanes of a subgroup share their rows' loads.
pub(super) fn generate(profile: &KernelProfile, kernel: &ConvKernel) -> Result<Generated> {
    let (label, spec, e) = (kernel.label.as_str(), &kernel.spec, &kernel.epilogue);
    let (program, operands, stores) = (&e.program, &e.operands[..], &e.stores[..]);
    let g = &spec.geometry;
    let lanes = profile.shares_rows_across_lanes();
    let output = check_spec(profile, kernel)?;
    let (space, batch_axes) = spec.space();
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();

    let (mut bindings, op_bind, st_bind) = Bindings::of_operands(operands, stores);
    let a_bind = bindings.of(&spec.a, false);
    let b_bind = bindings.of(&spec.b, false);
    if st_bind.iter().any(|&s| s == a_bind || s == b_bind) {
        return Err(invalid(
            label,
            "a convolution may not overwrite what it reads",
        ));
    }
    let mut words = Words::new();
    let body = program.body(&mut words, true, &results);
    let epi = epilogue_fn(
        &mut words, &space, batch_axes, &body, operands, stores, &op_bind, &st_bind,
    );
    let block = Block::of(spec, output);
    let w = Names::new(&mut words, spec, &block, output, [a_bind, b_bind]);
    let mut k = KLoops {
        main: block_prologue(&w, &block, lanes),
        ..KLoops::default()
    };
    match spec.pass {
        ConvPass::Forward => forward_loops(&mut k, &w, g, lanes, block.window),
        ConvPass::InputGrad => input_grad_loops(&mut k, &w, g, lanes, block.window),
        ConvPass::WeightGrad if block.slotted => {
            slotted_weight_grad_loops(&mut k, &w, g, lanes, block.pairs)
        }
        ConvPass::WeightGrad => weight_grad_loops(&mut k, &w, lanes),
    }
    let mut main = k.assemble(spec.pass, &block, &w);
    epilogue_stores(&mut main, &w, &block, g, spec.pass);
    let grid = [
        block.columns.div_ceil(8 * COLS),
        block.rows.div_ceil(8 * ROWS),
        block.slices,
    ]
    .map(|v| v as u64);
    let grid = fixed_grid(label, grid)?;
    let declared = [bindings.declare(&[]), words.declare()];
    let parts = [&declared[0], &declared[1], &body.source, &epi];
    let source = module(
        &parts.map(String::as_str),
        RegisterBlock::entry(lanes),
        &main,
    );
    let pass = match spec.pass {
        ConvPass::Forward => "forward",
        ConvPass::InputGrad => "input_grad",
        ConvPass::WeightGrad => "weight_grad",
    };
    Ok(bindings.generated(format!("{label}/{pass}"), source, &words, grid))
}

/// How a pass's product is blocked: its rows and columns, whether it reads
/// taps through a window, and how its columns span images.
struct Block {
    /// M: the product's rows.
    rows: usize,
    /// N per image (slotted: pairs × tap slots).
    pixels: usize,
    /// Forward and input gradient, with rows of a multiple of 8 pixels: a
    /// lane's 8 columns are neighbours in one row, so their taps overlap;
    /// the distinct elements of a (channel, kernel row) are read once into
    /// a window, and the kw loop unrolls over it. Weight gradient, with
    /// kernels 3 or 4 wide and rows of a multiple of UNROLL pixels: a
    /// lane's columns are two (channel, kernel row) pairs of TAP_SLOTS taps
    /// each (slots past the kernel compute nothing stored), and UNROLL
    /// output pixels of a row share one window.
    window: bool,
    slotted: bool,
    /// (input channel, kernel row) pairs.
    pairs: usize,
    /// Forward and input gradient: the columns are the pixels of several
    /// images side by side (all of them unless the grid would be too
    /// wide), so a small late-stage feature map still fills the 8-wide
    /// blocks; `wid.z` walks groups of `per_slice` images.
    per_slice: usize,
    slices: usize,
    columns: usize,
}

impl Block {
    fn of(spec: &ConvSpec, [_, ow]: [usize; 2]) -> Self {
        let g = spec.geometry;
        let [rows, n, _] = g.gemm(spec.pass);
        let w = g.input[1];
        let window = match spec.pass {
            ConvPass::Forward => ow.is_multiple_of(COLS),
            ConvPass::InputGrad => g.stride[1] == 1 && w.is_multiple_of(COLS),
            ConvPass::WeightGrad => {
                (3..=TAP_SLOTS).contains(&g.kernel[1]) && ow.is_multiple_of(UNROLL)
            }
        };
        let slotted = window && spec.pass == ConvPass::WeightGrad;
        let pairs = g.in_channels * g.kernel[0];
        let pixels = if slotted { pairs * TAP_SLOTS } else { n };
        let per_slice = match spec.pass {
            ConvPass::WeightGrad => 1,
            _ => (MAX_COLUMN_GROUPS * 8 * COLS / pixels).clamp(1, g.batch),
        };
        let slices = match spec.pass {
            ConvPass::WeightGrad => spec.splits.max(1),
            _ => g.batch.div_ceil(per_slice),
        };
        Block {
            rows,
            pixels,
            window,
            slotted,
            pairs,
            per_slice,
            slices,
            columns: pixels * per_slice,
        }
    }
}

/// The kernel's words (`P.w…`) and its two tensors' buffers, by name.
struct Names {
    m: String,
    h: String,
    w: String,
    oh: String,
    ow: String,
    cin: String,
    cout: String,
    kh: String,
    kw: String,
    sh: String,
    sw: String,
    pt: String,
    pl: String,
    dh: String,
    dw: String,
    cols: String,
    per_slice: String,
    pixels: String,
    images: String,
    /// The weight gradient: images per split, and (again) the images,
    /// which the last split stops at.
    per_split: String,
    split_end: String,
    /// The buffers of A and B.
    a: String,
    b: String,
}

impl Names {
    fn new(
        words: &mut Words,
        spec: &ConvSpec,
        block: &Block,
        [oh, ow]: [usize; 2],
        [a, b]: [usize; 2],
    ) -> Self {
        let g = spec.geometry;
        let mut u = |v: usize| words.u(v);
        Names {
            m: u(block.rows),
            h: u(g.input[0]),
            w: u(g.input[1]),
            oh: u(oh),
            ow: u(ow),
            cin: u(g.in_channels),
            cout: u(g.out_channels),
            kh: u(g.kernel[0]),
            kw: u(g.kernel[1]),
            sh: u(g.stride[0]),
            sw: u(g.stride[1]),
            pt: u(g.pad[0]),
            pl: u(g.pad[1]),
            dh: u(g.dilation[0]),
            dw: u(g.dilation[1]),
            cols: u(block.columns),
            per_slice: u(block.per_slice),
            pixels: u(block.pixels),
            images: u(g.batch),
            per_split: match spec.pass {
                ConvPass::WeightGrad => u(g.batch.div_ceil(spec.splits.max(1))),
                _ => String::new(),
            },
            split_end: match spec.pass {
                ConvPass::WeightGrad => u(g.batch),
                _ => String::new(),
            },
            a: format!("b{a}"),
            b: format!("b{b}"),
        }
    }
}

/// The block's rows and columns (clamped), each column's image and pixel,
/// and the accumulators.
fn block_prologue(w: &Names, block: &Block, lanes: bool) -> Vec<String> {
    let (wm, wcols, wpix) = (&w.m, &w.cols, &w.pixels);
    let skeleton = RegisterBlock {
        rows: ROWS,
        cols: COLS,
        lanes,
    };
    let mut main = vec![skeleton.origin(wm, wcols) + "\n    let bt = wid.z;"];
    main.extend(skeleton.clamped_rows("r", wm));
    for c in 0..COLS {
        // Column c: image img{c} (of the slice's), pixel q{c} within it
        // (slotted: the weight gradient's column of its pair and tap).
        let q = match block.slotted {
            true => format!(
                "(cl{c} / {TAP_SLOTS}u) * {} + min(cl{c} % {TAP_SLOTS}u, {} - 1u)",
                w.kw, w.kw
            ),
            false => format!("cl{c} % {wpix}"),
        };
        main.push(format!(
            "    let cl{c} = min(col0 + {c}u, {wcols} - 1u);\n    let img{c} = min(bt * {} + cl{c} / {wpix}, {} - 1u);\n    let q{c} = {q};",
            w.per_slice, w.images
        ));
    }
    main.extend(skeleton.accumulators());
    main
}

/// A pass's loops along K, as text. A gathering K step (`inner`) loads
/// column c's value into `vb{c}`; `row_loads` are the rows' values as
/// expressions, and `after_step` what follows the step's multiply-adds.
/// Window kernels write their whole unrolled body into `unrolled` instead.
#[derive(Default)]
struct KLoops {
    main: Vec<String>,
    inner: Vec<String>,
    unrolled: Vec<String>,
    row_loads: Vec<String>,
    after_step: Vec<String>,
}

impl KLoops {
    /// The kernel's body up to the stores: the loops with their innermost
    /// step in place, closed.
    fn assemble(self, pass: ConvPass, block: &Block, w: &Names) -> Vec<String> {
        // One step of the innermost gathering loop: gather, then 64
        // multiply-adds (window kernels have none).
        let mut step = self.inner;
        if !block.window {
            let row_loads = &self.row_loads;
            multiply_adds(&mut step, |r| row_loads[r].clone(), |c| format!("vb{c}"));
        }
        step.extend(self.after_step);
        let step = step.join("\n");
        let innermost = match block.window {
            true => self.unrolled.join("\n"),
            false => format!(
                "    for (var kw = 0u; kw < {}; kw++) {{\n{step}\n    }}",
                w.kw
            ),
        };
        let main_text = self.main.join("\n");
        let mut main: Vec<String> = match pass {
            ConvPass::WeightGrad if block.slotted => {
                vec![format!("{main_text}\n{}\n    }}", self.unrolled.join("\n"))]
            }
            ConvPass::WeightGrad => vec![format!("{main_text}\n{step}\n    }}")],
            _ => vec![main_text.replace(KW_LOOP, &innermost)],
        };
        main.push("    }\n    }".into());
        main
    }
}

/// The weight offset of each of the block's rows (`wr…`, `row_stride`
/// apart), then what each column `c` needs of its pixel (`column(c)`).
fn block_starts(k: &mut KLoops, lanes: bool, row_stride: &str, column: impl Fn(usize) -> String) {
    row_offsets(&mut k.main, lanes, "wr", |row| {
        format!("{row} * {row_stride}")
    });
    k.main.extend((0..COLS).map(column));
}

/// The forward pass: rows are output channels, columns output pixels; K
/// walks input channels and the kernel's rows, then its columns.
fn forward_loops(k: &mut KLoops, w: &Names, g: &Conv2dGeometry, lanes: bool, window: bool) {
    let (wh, ww, wcin, wkh, wkw) = (&w.h, &w.w, &w.cin, &w.kh, &w.kw);
    let (xa, xb) = (&w.a, &w.b);
    block_starts(k, lanes, &format!("{wcin} * {wkh} * {wkw}"), |c| {
        format!(
            "    let ih{c} = i32((q{c} / {}) * {}) - i32({});\n    let iw{c} = i32((q{c} % {}) * {}) - i32({});\n    let xi{c} = img{c} * {wcin} * {wh} * {ww};",
            w.ow, w.sh, w.pt, w.ow, w.sw, w.pl
        )
    });
    k.main.push(format!(
        "    var kk = 0u;\n    for (var ci = 0u; ci < {wcin}; ci++) {{\n    let cbase = ci * {wh} * {ww};\n    for (var kh = 0u; kh < {wkh}; kh++) {{"
    ));
    for c in 0..COLS {
        k.main.push(format!(
            "    let hh{c} = ih{c} + i32(kh * {});\n    let hok{c} = u32(hh{c}) < {wh};\n    let hrow{c} = xi{c} + cbase + select(0u, u32(hh{c}), hok{c}) * {ww};",
            w.dh
        ));
    }
    k.main.push(KW_LOOP.to_string());
    if window {
        // Column c's tap kw reads element c·s + kw·d of the window
        // starting at column 0's first tap.
        let at = |c: usize, kw: usize| c * g.stride[1] + kw * g.dilation[1];
        unrolled_taps(
            &mut k.unrolled,
            lanes,
            xa,
            "iw0",
            ww,
            g.kernel[1],
            at,
            |off, kw| format!("{xb}[{off} + kk + {kw}u]"),
        );
        k.unrolled.push(format!("    kk += {wkw};"));
    } else {
        k.row_loads = row_values(&mut k.inner, lanes, "wr", |off| format!("{xb}[{off} + kk]"));
        for c in 0..COLS {
            k.inner.push(format!(
                "    let wc{c} = iw{c} + i32(kw * {});\n    let ok{c} = hok{c} && u32(wc{c}) < {ww};\n    let vb{c} = select(0.0, {xa}[select(0u, hrow{c} + u32(wc{c}), ok{c})], ok{c});",
                w.dw
            ));
        }
        k.after_step.push("    kk++;".into());
    }
}

/// The input gradient: rows are input channels, columns input pixels,
/// gathering the output pixels whose windows cover them; K walks output
/// channels and the kernel's rows, then its columns.
fn input_grad_loops(k: &mut KLoops, w: &Names, g: &Conv2dGeometry, lanes: bool, window: bool) {
    let (ww, woh, wow, wcin, wcout, wkh, wkw) = (&w.w, &w.oh, &w.ow, &w.cin, &w.cout, &w.kh, &w.kw);
    let (xa, xb) = (&w.a, &w.b);
    block_starts(k, lanes, &format!("{wkh} * {wkw}"), |c| {
        format!(
            "    let th{c} = i32(q{c} / {ww}) + i32({});\n    let tw{c} = i32(q{c} % {ww}) + i32({});\n    let dyi{c} = img{c} * {wcout} * {woh} * {wow};",
            w.pt, w.pl
        )
    });
    let strided_h = g.stride[0] > 1;
    let strided_w = g.stride[1] > 1;
    k.main.push(format!(
        "    for (var co = 0u; co < {wcout}; co++) {{\n    let dybase = co * {woh} * {wow};\n    let wbase = co * {wcin} * {wkh} * {wkw};\n    for (var kh = 0u; kh < {wkh}; kh++) {{"
    ));
    for c in 0..COLS {
        let (o, ok) = gather_tap(&format!("hh{c}"), &w.sh, woh, strided_h);
        k.main.push(format!(
            "    let hh{c} = th{c} - i32(kh * {});\n    let hok{c} = {ok};\n    let hrow{c} = dyi{c} + dybase + select(0u, u32({o}), hok{c}) * {wow};",
            w.dh
        ));
    }
    k.main.push(KW_LOOP.to_string());
    if window {
        // Column c's tap kw reads dy at column tw0 + c − kw·d: element
        // c + (KW − 1 − kw)·d of the window from tw0 − (KW − 1)·d.
        let last = g.kernel[1] - 1;
        let at = move |c: usize, kw: usize| c + (last - kw) * g.dilation[1];
        let start = format!("(tw0 - i32({}u))", last * g.dilation[1]);
        unrolled_taps(
            &mut k.unrolled,
            lanes,
            xa,
            &start,
            wow,
            last + 1,
            at,
            |off, kw| format!("{xb}[wbase + {off} + kh * {wkw} + {kw}u]"),
        );
    } else {
        k.row_loads = row_values(&mut k.inner, lanes, "wr", |off| {
            format!("{xb}[wbase + {off} + kh * {wkw} + kw]")
        });
        for c in 0..COLS {
            let (o, ok) = gather_tap(&format!("wc{c}"), &w.sw, wow, strided_w);
            let ok = format!("hok{c} && {ok}");
            k.inner.push(format!(
                "    let wc{c} = tw{c} - i32(kw * {});\n    let ok{c} = {ok};\n    let vb{c} = select(0.0, {xa}[select(0u, hrow{c} + u32({o}), ok{c})], ok{c});",
                w.dw
            ));
        }
    }
}

/// The weight gradient's rows are dy's channels.
fn dy_rows(k: &mut KLoops, w: &Names, lanes: bool) {
    let (woh, wow) = (&w.oh, &w.ow);
    row_offsets(&mut k.main, lanes, "dr", |row| {
        format!("{row} * {woh} * {wow}")
    });
}

/// The weight gradient's outer K loops: the images of group bt and their
/// output rows (left open).
fn image_and_row_loops(k: &mut KLoops, w: &Names) {
    let (wh, ww, woh, wow, wcin, wcout) = (&w.h, &w.w, &w.oh, &w.ow, &w.cin, &w.cout);
    k.main.push(format!(
        "    let first = bt * {};\n    let last = min(first + {}, {});\n    for (var img = first; img < last; img++) {{\n    let dyimg = img * {wcout} * {woh} * {wow};\n    let ximg = img * {wcin} * {wh} * {ww};\n    for (var oh = 0u; oh < {woh}; oh++) {{",
        w.per_split, w.per_split, w.split_end
    ));
}

/// The weight gradient, in output row oh: where x's rows for `items`
/// columns (or pairs, each with xo{i}, dh{i}) start, and the loop over
/// output pixels `step` at a time (left open).
fn x_rows(k: &mut KLoops, w: &Names, items: usize, step: usize) {
    let (wh, ww) = (&w.h, &w.w);
    for i in 0..items {
        k.main.push(format!(
            "    let hh{i} = i32(oh * {}) + dh{i};\n    let hok{i} = u32(hh{i}) < {wh};\n    let hrow{i} = ximg + xo{i} + select(0u, u32(hh{i}), hok{i}) * {ww};",
            w.sh
        ));
    }
    k.main.push(format!(
        "    let dyrow = dyimg + oh * {};\n    for (var ow = 0u; ow < {}; ow += {step}u) {{",
        w.ow, w.ow
    ));
}

/// The slotted weight gradient: columns are pairs (input channel, kh) of
/// TAP_SLOTS taps; K walks the images of group bt and their output
/// pixels, UNROLL of a row at a time.
fn slotted_weight_grad_loops(
    k: &mut KLoops,
    w: &Names,
    g: &Conv2dGeometry,
    lanes: bool,
    pairs: usize,
) {
    let (wh, ww, wkh) = (&w.h, &w.w, &w.kh);
    let (xa, xb) = (&w.a, &w.b);
    let groups = COLS / TAP_SLOTS;
    dy_rows(k, w, lanes);
    for p in 0..groups {
        k.main.push(format!(
            "    let pp{p} = min(col0 / {TAP_SLOTS}u + {p}u, {pairs}u - 1u);\n    let xo{p} = (pp{p} / {wkh}) * {wh} * {ww};\n    let dh{p} = i32((pp{p} % {wkh}) * {}) - i32({});",
            w.dh, w.pt
        ));
    }
    image_and_row_loops(k, w);
    x_rows(k, w, groups, UNROLL);
    // Output pixel ow + j, tap kw reads window element j·s + kw·d.
    let at = |j: usize, kw: usize| j * g.stride[1] + kw * g.dilation[1];
    let taps = (0..UNROLL).flat_map(|j| (0..g.kernel[1]).map(move |kw| at(j, kw)));
    let start = format!("(i32(ow * {}) - i32({}))", w.sw, w.pl);
    for p in 0..groups {
        let row = (format!("hok{p}"), format!("hrow{p}"));
        window_loads(
            &mut k.unrolled,
            xb,
            &row,
            &start,
            ww,
            &format!("xw{p}_"),
            taps.clone(),
        );
    }
    for j in 0..UNROLL {
        let a = row_values(&mut k.unrolled, lanes, "dr", |off| {
            format!("{xa}[dyrow + {off} + ow + {j}u]")
        });
        multiply_adds(
            &mut k.unrolled,
            |r| a[r].clone(),
            |c| {
                let (p, kw) = (c / TAP_SLOTS, c % TAP_SLOTS);
                match kw < g.kernel[1] {
                    true => format!("xw{p}_{}", at(j, kw)),
                    false => "0.0".to_string(),
                }
            },
        );
    }
}

/// The gathering weight gradient: columns are (input channel, kh, kw); K
/// walks the images of group bt and their output pixels.
fn weight_grad_loops(k: &mut KLoops, w: &Names, lanes: bool) {
    let (wh, ww, wkh, wkw) = (&w.h, &w.w, &w.kh, &w.kw);
    let (xa, xb) = (&w.a, &w.b);
    dy_rows(k, w, lanes);
    for c in 0..COLS {
        k.main.push(format!(
            "    let cc{c} = q{c} / ({wkh} * {wkw});\n    let kr{c} = q{c} % ({wkh} * {wkw});\n    let xo{c} = cc{c} * {wh} * {ww};\n    let dh{c} = i32((kr{c} / {wkw}) * {}) - i32({});\n    let dw{c} = i32((kr{c} % {wkw}) * {}) - i32({});",
            w.dh, w.pt, w.dw, w.pl
        ));
    }
    image_and_row_loops(k, w);
    x_rows(k, w, COLS, 1);
    k.row_loads = row_values(&mut k.inner, lanes, "dr", |off| {
        format!("{xa}[dyrow + {off} + ow]")
    });
    for c in 0..COLS {
        k.inner.push(format!(
            "    let wc{c} = i32(ow * {}) + dw{c};\n    let ok{c} = hok{c} && u32(wc{c}) < {ww};\n    let vb{c} = select(0.0, {xb}[select(0u, hrow{c} + u32(wc{c}), ok{c})], ok{c});",
            w.sw
        ));
    }
}

/// Each accumulator through the epilogue, where its row and column are
/// inside the product. The epilogue's batch index is the column's image,
/// or (weight gradient) the group of images.
fn epilogue_stores(
    main: &mut Vec<String>,
    w: &Names,
    block: &Block,
    g: &Conv2dGeometry,
    pass: ConvPass,
) {
    let (batch_of, valid) = match pass {
        ConvPass::WeightGrad => ("bt".to_string(), String::new()),
        _ => (
            "img{c}".to_string(),
            format!(
                " && bt * {} + (col0 + {{c}}u) / {} < {}",
                w.per_slice, w.pixels, w.images
            ),
        ),
    };
    // Slotted columns past the kernel's width hold nothing.
    let stored = |c: usize| !block.slotted || c % TAP_SLOTS < g.kernel[1];
    for r in 0..ROWS {
        for c in (0..COLS).filter(|&c| stored(c)) {
            let bti = batch_of.replace("{c}", &c.to_string());
            let valid = valid.replace("{c}", &c.to_string());
            let bounds = [w.m.as_str(), &w.cols];
            main.push(RegisterBlock::store(
                r,
                c,
                bounds,
                &valid,
                &bti,
                &format!("q{c}"),
            ));
        }
    }
}
