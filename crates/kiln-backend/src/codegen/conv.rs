//! The generated 2-D convolution kernels, NCHW with weights `[Cout, Cin, KH,
//! KW]` (PyTorch's layouts), structured as implicit GEMMs: no im2col buffer
//! is ever written; each invocation gathers the elements of its 8×8 block's
//! rows and columns straight from the tensors, K walked as nested loops so
//! no index is divided inside them. Where rows hold a multiple of 8
//! pixels (forward; stride-1 input gradient), an invocation's 8 columns
//! are neighbours in one row: it reads each distinct element of their
//! overlapping taps once per (channel, kernel row), and the kw loop
//! unrolls over those registers (on lavapipe every divergent load is a
//! loop over lanes, so loads, not multiply-adds, set the pace). The weight
//! gradient of a 3- or 4-wide kernel does the same along its K axis: a
//! lane's columns are two (channel, kernel row) pairs of four tap slots,
//! and four output pixels of a row share one window of each pair.
//!
//! | pass | rows (M) | columns (N) | K | batch |
//! |---|---|---|---|---|
//! | forward `y = conv(x, w)` | Cout | OH·OW | Cin·KH·KW | image |
//! | input gradient `dx` | Cin | H·W | Cout·KH·KW | image |
//! | weight gradient `dw` | Cout | Cin·KH·KW | images·OH·OW | group of images |
//!
//! The input gradient gathers (for each input pixel, the output pixels
//! whose windows cover it) rather than scatters, since WGSL has no portable
//! float atomics. The weight gradient's K runs over every image and pixel;
//! with few outputs it is split over groups of images into partial sums
//! that the caller adds up. Every pass takes an epilogue program like a
//! matrix product's. Pointwise convolutions (1×1, stride 1, no padding)
//! of feature maps of 64 pixels or more run as the matrix products they
//! are; the forward and input-gradient passes put the pixels of all images
//! side by side as their columns, so small late-stage maps fill blocks.

use crate::error::{invalid, BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::layout::StridedLayout;
use crate::{Buffer, Device, Kernel, KernelProfile, MatmulVariant};

use super::epilogue::epilogue_fn;
use super::gemm::{gemm_kernel, gemm_source, GemmLoad, GemmSpec};
use super::program::Program;
use super::words::Words;
use super::{check_fits, Bindings, Operand, Store};

/// Which of a convolution's three products a kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvPass {
    /// `y[n, co, oh, ow] = Σ w[co, ci, kh, kw]·x[n, ci, oh·s − p + kh·d, …]`.
    Forward,
    /// `dx` from `dy` and `w`.
    InputGrad,
    /// `dw` from `dy` and `x`.
    WeightGrad,
}

/// The geometry of a 2-D convolution (groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
    pub dilation: [usize; 2],
}

impl Conv2dGeometry {
    /// Output height and width, or `None` when the (dilated) kernel does not
    /// fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let size = |axis: usize| -> Option<usize> {
            let padded = self.input[axis] + self.pad[axis] + self.pad[axis + 2];
            let span = self.dilation[axis] * (self.kernel[axis].checked_sub(1)?) + 1;
            if self.stride[axis] == 0 || span > padded {
                return None;
            }
            Some((padded - span) / self.stride[axis] + 1)
        };
        Some([size(0)?, size(1)?])
    }

    /// (rows, columns, K) of `pass`'s product.
    fn gemm(&self, pass: ConvPass) -> [usize; 3] {
        let [oh, ow] = self.output().unwrap_or([0, 0]);
        let [h, w] = self.input;
        let khw = self.kernel[0] * self.kernel[1];
        match pass {
            ConvPass::Forward => [self.out_channels, oh * ow, self.in_channels * khw],
            ConvPass::InputGrad => [self.in_channels, h * w, self.out_channels * khw],
            ConvPass::WeightGrad => [
                self.out_channels,
                self.in_channels * khw,
                self.batch * oh * ow,
            ],
        }
    }

    /// The shape of `pass`'s result.
    pub fn result_shape(&self, pass: ConvPass) -> Vec<usize> {
        let [oh, ow] = self.output().unwrap_or([0, 0]);
        match pass {
            ConvPass::Forward => vec![self.batch, self.out_channels, oh, ow],
            ConvPass::InputGrad => vec![self.batch, self.in_channels, self.input[0], self.input[1]],
            ConvPass::WeightGrad => vec![
                self.out_channels,
                self.in_channels,
                self.kernel[0],
                self.kernel[1],
            ],
        }
    }

    /// Groups of images the weight gradient is split over: enough 8×8
    /// blocks of outputs to fill a GPU, each group summing a share of the
    /// images (1 when the outputs alone suffice), and groups small enough
    /// that one invocation's loops stay within [`super::MAX_LOOP_TRIPS`].
    /// Fixed by the geometry, not the device, so that a graph is the same
    /// everywhere.
    pub fn weight_grad_splits(&self) -> usize {
        const BLOCKS: usize = 8192;
        let [m, n, _] = self.gemm(ConvPass::WeightGrad);
        let blocks = m.div_ceil(8) * n.div_ceil(8);
        let batch = self.batch.max(1);
        let for_blocks = BLOCKS.div_ceil(blocks.max(1));
        let per_image = self.loop_trips(ConvPass::WeightGrad, 1);
        let most_images = (super::MAX_LOOP_TRIPS / per_image.max(1)).max(1);
        for_blocks.max(batch.div_ceil(most_images)).clamp(1, batch)
    }

    /// Loop iterations of one invocation of `pass` (`splits` groups of
    /// images for the weight gradient): the nested K loops' back-edges.
    fn loop_trips(&self, pass: ConvPass, splits: usize) -> usize {
        let [oh, ow] = self.output().unwrap_or([0, 0]);
        let [kh, kw] = self.kernel;
        match pass {
            ConvPass::Forward => self.in_channels * (1 + kh * (1 + kw)),
            ConvPass::InputGrad => self.out_channels * (1 + kh * (1 + kw)),
            ConvPass::WeightGrad => self.batch.div_ceil(splits.max(1)) * (1 + oh * (1 + ow)),
        }
    }
}

/// A convolution pass: its geometry and the two tensors it reads (`x` and
/// `w` forward, `dy` and `w` for the input gradient, `dy` and `x` for the
/// weight gradient). A weight gradient with `splits` > 1 writes partial sums
/// over `[splits, Cout, Cin, KH, KW]` for the caller to add.
#[derive(Clone, Debug)]
pub struct ConvSpec<'a> {
    pub pass: ConvPass,
    pub geometry: Conv2dGeometry,
    pub a: &'a Buffer,
    pub b: &'a Buffer,
    pub splits: usize,
}

impl ConvSpec<'_> {
    /// The epilogue's iteration space and how many of its leading axes the
    /// batch index walks.
    pub fn space(&self) -> (Vec<usize>, usize) {
        let g = &self.geometry;
        match (self.pass, self.splits) {
            (ConvPass::WeightGrad, s) if s > 1 => {
                let mut space = vec![s];
                space.extend(g.result_shape(ConvPass::WeightGrad));
                (space, 1)
            }
            (ConvPass::WeightGrad, _) => (g.result_shape(ConvPass::WeightGrad), 0),
            (pass, _) => (g.result_shape(pass), 1),
        }
    }
}

/// A convolution kernel with `program` as its epilogue (see the module docs).
pub fn conv_kernel(
    device: &Device,
    label: &str,
    spec: &ConvSpec<'_>,
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<Kernel> {
    if let Some((gemm, operands, stores)) = as_gemm(spec, operands, stores) {
        return gemm_kernel(device, label, &gemm, program, &operands, &stores);
    }
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

/// The source of [`conv_kernel`]'s kernel on a device of `profile`.
pub fn conv_source(
    profile: &KernelProfile,
    spec: &ConvSpec<'_>,
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<String> {
    if let Some((gemm, operands, stores)) = as_gemm(spec, operands, stores) {
        return gemm_source(profile, &gemm, program, &operands, &stores);
    }
    Ok(generate(profile, "conv", spec, program, operands, stores)?.source)
}

/// A 1×1 convolution with stride 1 and no padding is a matrix product per
/// image, `W·X[n]` (or `Wᵀ·dY[n]` for its input gradient), which the GEMM
/// kernel runs faster than the gathering one: the product, and the
/// epilogue's layouts over `[N, C, H·W]`, when `spec` is one whose layouts
/// allow it.
#[allow(clippy::type_complexity)] // the three things a GEMM kernel takes
fn as_gemm<'a>(
    spec: &ConvSpec<'a>,
    operands: &[Operand<'a>],
    stores: &[Store<'a>],
) -> Option<(GemmSpec<'a>, Vec<Operand<'a>>, Vec<Store<'a>>)> {
    let g = &spec.geometry;
    let pointwise = g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0; 4];
    let hw = g.input[0] * g.input[1];
    // Per image, the product is HW columns wide: a feature map smaller
    // than a block of the GEMM kernel is better served by the gathering
    // kernel, which puts the images side by side.
    if !pointwise || spec.pass == ConvPass::WeightGrad || spec.splits != 1 || hw < MIN_GEMM_PIXELS {
        return None;
    }
    let (rows, inner) = match spec.pass {
        ConvPass::Forward => (g.out_channels, g.in_channels),
        _ => (g.in_channels, g.out_channels),
    };
    // Over [N, C, H, W] → over [N, C, H·W], when H and W are walked as one.
    let merge = |l: &StridedLayout| -> Option<StridedLayout> {
        let s = &l.strides;
        (s.len() == 4 && (s[2] == s[3] * g.input[1] || g.input[0] == 1)).then(|| StridedLayout {
            shape: vec![g.batch, rows, hw],
            strides: vec![s[0], s[1], s[3]],
            offset: l.offset,
        })
    };
    let operands: Vec<Operand<'a>> = operands
        .iter()
        .map(|o| {
            Some(Operand {
                buffer: o.buffer,
                layout: merge(&o.layout)?,
            })
        })
        .collect::<Option<_>>()?;
    let stores: Vec<Store<'a>> = stores
        .iter()
        .map(|st| {
            Some(Store {
                expr: st.expr,
                buffer: st.buffer,
                layout: merge(&st.layout)?,
            })
        })
        .collect::<Option<_>>()?;
    let gemm = GemmSpec {
        m: rows,
        n: hw,
        k: inner,
        shape: vec![g.batch, rows, hw],
        // W is [Cout, Cin]: read as is forward, transposed for the input gradient.
        a: GemmLoad {
            buffer: spec.b,
            offset: 0,
            row_stride: g.in_channels,
            batch_stride: 0,
            transposed: spec.pass == ConvPass::InputGrad,
        },
        b: GemmLoad {
            buffer: spec.a,
            offset: 0,
            row_stride: hw,
            batch_stride: inner * hw,
            transposed: false,
        },
        variant: MatmulVariant::Auto,
    };
    Some((gemm, operands, stores))
}

/// For the input gradient: the output coordinate whose window reaches an
/// input pixel at (padded coordinate − tap offset) `t` along one axis, and
/// whether there is one (`t` non-negative, on the stride, inside the
/// output of size `out`).
fn gather_tap(t: &str, stride: &str, out: &str, strided: bool) -> (String, String) {
    if strided {
        (
            format!("{t} / i32({stride})"),
            format!("{t} >= 0 && {t} % i32({stride}) == 0 && u32({t} / i32({stride})) < {out}"),
        )
    } else {
        (t.to_string(), format!("{t} >= 0 && u32({t}) < {out}"))
    }
}

/// Declares each row's offset `{name}{r}` (`formula` of the row's index),
/// or with `lanes` only `{name}s`, the offset of the row this lane reads.
fn row_offsets(main: &mut Vec<String>, lanes: bool, name: &str, formula: impl Fn(&str) -> String) {
    match lanes {
        true => main.push(format!("    let {name}s = {};", formula("rs"))),
        false => {
            for r in 0..ROWS {
                main.push(format!(
                    "    let {name}{r} = {};",
                    formula(&format!("r{r}"))
                ));
            }
        }
    }
}

/// The 8 rows' values of one K step, `load` at each row's offset (see
/// [`row_offsets`]); with `lanes`, one load per lane (its row, declared in
/// `lines`) that row r's value is broadcast from.
fn row_values(
    lines: &mut Vec<String>,
    lanes: bool,
    name: &str,
    load: impl Fn(&str) -> String,
) -> Vec<String> {
    match lanes {
        true => {
            let shared = format!("{name}v{}", lines.len());
            let own = load(&format!("{name}s"));
            super::lane_broadcasts(lines, &shared, &own, ROWS)
        }
        false => (0..ROWS).map(|r| load(&format!("{name}{r}"))).collect(),
    }
}

/// Reads the distinct elements `taps` of one source row into `{name}{j}`:
/// the element at column `start + j` of the row that starts at `row.1`,
/// zero where the row (`row.0` false) or the column (outside `0..width`)
/// is padding.
fn window_loads(
    lines: &mut Vec<String>,
    src: &str,
    (row_ok, row): &(String, String),
    start: &str,
    width: &str,
    name: &str,
    taps: impl Iterator<Item = usize>,
) {
    let mut taps: Vec<usize> = taps.collect();
    taps.sort_unstable();
    taps.dedup();
    for j in taps {
        lines.push(format!(
            "    let {name}c{j} = {start} + {j};\n    let {name}ok{j} = {row_ok} && u32({name}c{j}) < {width};\n    let {name}{j} = select(0.0, {src}[select(0u, {row} + u32({name}c{j}), {name}ok{j})], {name}ok{j});"
        ));
    }
}

/// A window kernel's kw loop, unrolled: the distinct elements `at(c, kw)`
/// of the source row (from column `start`, `width` wide; see
/// [`window_loads`]) read once into `xw{j}`, then for each of the `taps`
/// taps the rows' values (`row_load` at a row's offset and the tap) times
/// column c's element.
#[allow(clippy::too_many_arguments)] // the window and the tap's row load
fn unrolled_taps(
    lines: &mut Vec<String>,
    lanes: bool,
    src: &str,
    start: &str,
    width: &str,
    taps: usize,
    at: impl Fn(usize, usize) -> usize + Copy,
    row_load: impl Fn(&str, usize) -> String,
) {
    let elements = (0..COLS).flat_map(|c| (0..taps).map(move |kw| at(c, kw)));
    let row = ("hok0".to_string(), "hrow0".to_string());
    window_loads(lines, src, &row, start, width, "xw", elements);
    for kw in 0..taps {
        let a = row_values(lines, lanes, "wr", |off| row_load(off, kw));
        multiply_adds(lines, |r| a[r].clone(), |c| format!("xw{}", at(c, kw)));
    }
}

/// One step along K of the 8×8 block, in a scope of its own: row r's value
/// `a(r)` times column c's `b(c)`, added to the accumulators.
fn multiply_adds(
    lines: &mut Vec<String>,
    a: impl Fn(usize) -> String,
    b: impl Fn(usize) -> String,
) {
    lines.push("    {".into());
    for r in 0..ROWS {
        lines.push(format!("    let ta{r} = {};", a(r)));
    }
    for gq in 0..COLS / 4 {
        let lanes: Vec<String> = (4 * gq..4 * gq + 4).map(&b).collect();
        lines.push(format!("    let tb{gq} = vec4<f32>({});", lanes.join(", ")));
    }
    for r in 0..ROWS {
        for gq in 0..COLS / 4 {
            lines.push(format!("    acc{r}_{gq} += ta{r} * tb{gq};"));
        }
    }
    lines.push("    }".into());
}

/// Pointwise convolutions of feature maps at least this large run as GEMMs.
const MIN_GEMM_PIXELS: usize = 64;

/// Most workgroups along x: the columns of one dispatch slice.
const MAX_COLUMN_GROUPS: usize = 32_768;

/// Marks where the kw loop goes while the kernel's text is assembled.
const KW_LOOP: &str = "    // kw loop";

const ROWS: usize = 8;
const COLS: usize = 8;
/// Taps per (channel, kernel row) pair in a slotted weight gradient.
const TAP_SLOTS: usize = 4;
/// Output pixels of a row a slotted weight gradient takes per K step.
const UNROLL: usize = 4;

/// Errors for a pass that cannot run: a kernel that does not fit its
/// padded input, an empty product, splits of a pass other than the weight
/// gradient, too many loop trips for a software adapter, an epilogue or
/// operand that does not fit its buffer. The output's height and width
/// otherwise.
fn check_spec(
    profile: &KernelProfile,
    label: &str,
    spec: &ConvSpec<'_>,
    program: &Program,
    operands: &[Operand<'_>],
    stores: &[Store<'_>],
) -> Result<[usize; 2]> {
    let g = spec.geometry;
    let Some([oh, ow]) = g.output() else {
        return Err(invalid(
            label,
            format!(
                "a {:?} kernel (dilation {:?}) does not fit a {:?} input padded by {:?}",
                g.kernel, g.dilation, g.input, g.pad
            ),
        ));
    };
    let [m, n, k] = g.gemm(spec.pass);
    let splits = spec.splits.max(1);
    if m == 0
        || n == 0
        || k == 0
        || g.batch == 0
        || g.stride.contains(&0)
        || g.dilation.contains(&0)
    {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: vec![m, n, k],
        });
    }
    if spec.pass != ConvPass::WeightGrad && splits != 1 {
        return Err(invalid(label, "only the weight gradient is split"));
    }
    profile.check_loop_trips(
        label,
        g.loop_trips(spec.pass, splits),
        &format!("a {:?} pass of {g:?} in {splits} groups", spec.pass),
    )?;
    let (space, _) = spec.space();
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();
    program.validate(operands.len(), true, &results)?;
    for o in operands {
        check_fits(label, &space, o.buffer, &o.layout)?;
    }
    for s in stores {
        check_fits(label, &space, s.buffer, &s.layout)?;
    }
    let [h, w] = g.input;
    let x_len = g.batch * g.in_channels * h * w;
    let w_len = g.out_channels * g.in_channels * g.kernel[0] * g.kernel[1];
    let dy_len = g.batch * g.out_channels * oh * ow;
    let (a_len, b_len) = match spec.pass {
        ConvPass::Forward => (x_len, w_len),
        ConvPass::InputGrad => (dy_len, w_len),
        ConvPass::WeightGrad => (dy_len, x_len),
    };
    for (name, buf, len) in [("first", spec.a, a_len), ("second", spec.b, b_len)] {
        if (len as u64) * 4 > buf.size() {
            return Err(invalid(
                label,
                format!(
                    "the {name} operand needs {len} values; its buffer holds {}",
                    buf.size() / 4
                ),
            ));
        }
    }
    Ok([oh, ow])
}

/// The kernel of `spec` shaped for `profile`; where it
/// [shares rows across lanes](KernelProfile::shares_rows_across_lanes),
/// the lanes of a subgroup share their rows' loads.
fn generate<'a>(
    profile: &KernelProfile,
    label: &str,
    spec: &ConvSpec<'a>,
    program: &Program,
    operands: &[Operand<'a>],
    stores: &[Store<'a>],
) -> Result<Generated<'a>> {
    let g = spec.geometry;
    let lanes = profile.shares_rows_across_lanes();
    let [oh, ow] = check_spec(profile, label, spec, program, operands, stores)?;
    let [m, n, _] = g.gemm(spec.pass);
    let splits = spec.splits.max(1);
    let [h, w] = g.input;
    let (space, batch_axes) = spec.space();
    let results: Vec<usize> = stores.iter().map(|s| s.expr).collect();

    let (mut bindings, op_bind, st_bind) = Bindings::of_operands(operands, stores);
    let a_bind = bindings.of(spec.a, false);
    let b_bind = bindings.of(spec.b, false);
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
    let u = |words: &mut Words, v: usize| words.u(v);
    let wm = u(&mut words, m);
    let (wh, ww) = (u(&mut words, h), u(&mut words, w));
    let (woh, wow) = (u(&mut words, oh), u(&mut words, ow));
    let (wcin, wcout) = (u(&mut words, g.in_channels), u(&mut words, g.out_channels));
    let (wkh, wkw) = (u(&mut words, g.kernel[0]), u(&mut words, g.kernel[1]));
    let (wsh, wsw) = (u(&mut words, g.stride[0]), u(&mut words, g.stride[1]));
    let (wpt, wpl) = (u(&mut words, g.pad[0]), u(&mut words, g.pad[1]));
    let (wdh, wdw) = (u(&mut words, g.dilation[0]), u(&mut words, g.dilation[1]));
    let (xa, xb) = (format!("b{a_bind}"), format!("b{b_bind}"));
    // Forward and input gradient, with rows of a multiple of 8 pixels: a
    // lane's 8 columns are neighbours in one row, so their taps overlap;
    // the distinct elements of a (channel, kernel row) are read once into a
    // window, and the kw loop unrolls over it (`unrolled` replaces the
    // loop). Weight gradient, with kernels 3 or 4 wide and rows of a
    // multiple of UNROLL pixels: a lane's columns are two (channel, kernel
    // row) pairs of TAP_SLOTS taps each (slots past the kernel compute
    // nothing stored), and UNROLL output pixels of a row share one window.
    let window = match spec.pass {
        ConvPass::Forward => ow.is_multiple_of(COLS),
        ConvPass::InputGrad => g.stride[1] == 1 && w.is_multiple_of(COLS),
        ConvPass::WeightGrad => (3..=TAP_SLOTS).contains(&g.kernel[1]) && ow.is_multiple_of(UNROLL),
    };
    let slotted = window && spec.pass == ConvPass::WeightGrad;
    let pairs = g.in_channels * g.kernel[0];
    let n = match slotted {
        true => pairs * TAP_SLOTS,
        false => n,
    };
    // Forward and input gradient: the columns are the pixels of several
    // images side by side (all of them unless the grid would be too wide),
    // so a small late-stage feature map still fills the 8-wide blocks;
    // `wid.z` walks groups of `per_slice` images.
    let per_slice = match spec.pass {
        ConvPass::WeightGrad => 1,
        _ => (MAX_COLUMN_GROUPS * 8 * COLS / n).clamp(1, g.batch),
    };
    let slices = match spec.pass {
        ConvPass::WeightGrad => splits,
        _ => g.batch.div_ceil(per_slice),
    };
    let columns = n * per_slice;
    let (wcols, wper_slice, wpix) = (
        u(&mut words, columns),
        u(&mut words, per_slice),
        u(&mut words, n),
    );
    let wimages = u(&mut words, g.batch);
    // Sharing lanes must all stay to the end (a broadcast from a lane
    // that returned is undefined); their columns are clamped on load and
    // skipped on store anyway.
    let past_columns = match lanes {
        true => String::new(),
        false => format!(" || col0 >= {wcols}"),
    };
    let mut main = vec![format!(
        "    let row0 = (wid.y * 8u + lid.y) * {ROWS}u;\n    let col0 = (wid.x * 8u + lid.x) * {COLS}u;\n    if (row0 >= {wm}{past_columns}) {{ return; }}\n    let bt = wid.z;"
    )];
    for r in 0..ROWS {
        main.push(format!("    let r{r} = min(row0 + {r}u, {wm} - 1u);"));
    }
    if lanes {
        // The row this lane reads for its subgroup.
        main.push(format!("    let rs = min(row0 + lid.x, {wm} - 1u);"));
    }
    for c in 0..COLS {
        // Column c: image img{c} (of the slice's), pixel q{c} within it
        // (slotted: the weight gradient's column of its pair and tap).
        let q = match slotted {
            true => {
                format!("(cl{c} / {TAP_SLOTS}u) * {wkw} + min(cl{c} % {TAP_SLOTS}u, {wkw} - 1u)")
            }
            false => format!("cl{c} % {wpix}"),
        };
        main.push(format!(
            "    let cl{c} = min(col0 + {c}u, {wcols} - 1u);\n    let img{c} = min(bt * {wper_slice} + cl{c} / {wpix}, {wimages} - 1u);\n    let q{c} = {q};"
        ));
    }
    for r in 0..ROWS {
        for gq in 0..COLS / 4 {
            main.push(format!("    var acc{r}_{gq} = vec4<f32>(0.0);"));
        }
    }
    // A gathering K step (`inner`) loads column c's value into `vb{c}`;
    // `row_loads` are the rows' values as expressions, and `after_step`
    // what follows the step's multiply-adds. Window kernels write their
    // whole unrolled body into `unrolled` instead.
    let mut inner = Vec::new();
    let mut unrolled = Vec::new();
    let mut row_loads = Vec::new();
    let mut after_step = Vec::new();
    // The weight gradient, in output row oh: where x's rows for `items`
    // columns (or pairs, each with xo{i}, dh{i}) start, and the loop over
    // output pixels `step` at a time (left open).
    let x_rows = |main: &mut Vec<String>, items: usize, step: usize| {
        for i in 0..items {
            main.push(format!(
                "    let hh{i} = i32(oh * {wsh}) + dh{i};\n    let hok{i} = u32(hh{i}) < {wh};\n    let hrow{i} = ximg + xo{i} + select(0u, u32(hh{i}), hok{i}) * {ww};"
            ));
        }
        main.push(format!(
            "    let dyrow = dyimg + oh * {wow};\n    for (var ow = 0u; ow < {wow}; ow += {step}u) {{"
        ));
    };
    // The weight gradient's rows are dy's channels, and its outer K loops
    // walk the images of group bt and their output rows (left open).
    let mut image_and_row_loops = String::new();
    if spec.pass == ConvPass::WeightGrad {
        let wper = words.u(g.batch.div_ceil(splits));
        let wbatch = words.u(g.batch);
        row_offsets(&mut main, lanes, "dr", |row| {
            format!("{row} * {woh} * {wow}")
        });
        image_and_row_loops = format!(
            "    let first = bt * {wper};\n    let last = min(first + {wper}, {wbatch});\n    for (var img = first; img < last; img++) {{\n    let dyimg = img * {wcout} * {woh} * {wow};\n    let ximg = img * {wcin} * {wh} * {ww};\n    for (var oh = 0u; oh < {woh}; oh++) {{"
        );
    }
    match spec.pass {
        ConvPass::Forward => {
            // rows: output channels; columns: output pixels of image bt.
            row_offsets(&mut main, lanes, "wr", |row| {
                format!("{row} * {wcin} * {wkh} * {wkw}")
            });
            for c in 0..COLS {
                main.push(format!(
                    "    let ih{c} = i32((q{c} / {wow}) * {wsh}) - i32({wpt});\n    let iw{c} = i32((q{c} % {wow}) * {wsw}) - i32({wpl});\n    let xi{c} = img{c} * {wcin} * {wh} * {ww};"
                ));
            }
            main.push(format!(
                "    var kk = 0u;\n    for (var ci = 0u; ci < {wcin}; ci++) {{\n    let cbase = ci * {wh} * {ww};\n    for (var kh = 0u; kh < {wkh}; kh++) {{"
            ));
            for c in 0..COLS {
                main.push(format!(
                    "    let hh{c} = ih{c} + i32(kh * {wdh});\n    let hok{c} = u32(hh{c}) < {wh};\n    let hrow{c} = xi{c} + cbase + select(0u, u32(hh{c}), hok{c}) * {ww};"
                ));
            }
            main.push(KW_LOOP.to_string());
            if window {
                // Column c's tap kw reads element c·s + kw·d of the window
                // starting at column 0's first tap.
                let at = |c: usize, kw: usize| c * g.stride[1] + kw * g.dilation[1];
                unrolled_taps(
                    &mut unrolled,
                    lanes,
                    &xa,
                    "iw0",
                    &ww,
                    g.kernel[1],
                    at,
                    |off, kw| format!("{xb}[{off} + kk + {kw}u]"),
                );
                unrolled.push(format!("    kk += {wkw};"));
            } else {
                row_loads = row_values(&mut inner, lanes, "wr", |off| format!("{xb}[{off} + kk]"));
                for c in 0..COLS {
                    inner.push(format!(
                        "    let wc{c} = iw{c} + i32(kw * {wdw});\n    let ok{c} = hok{c} && u32(wc{c}) < {ww};\n    let vb{c} = select(0.0, {xa}[select(0u, hrow{c} + u32(wc{c}), ok{c})], ok{c});"
                    ));
                }
                after_step.push("    kk++;".into());
            }
        }
        ConvPass::InputGrad => {
            // rows: input channels; columns: input pixels of image bt,
            // gathering the output pixels whose windows cover them.
            row_offsets(&mut main, lanes, "wr", |row| {
                format!("{row} * {wkh} * {wkw}")
            });
            for c in 0..COLS {
                main.push(format!(
                    "    let th{c} = i32(q{c} / {ww}) + i32({wpt});\n    let tw{c} = i32(q{c} % {ww}) + i32({wpl});\n    let dyi{c} = img{c} * {wcout} * {woh} * {wow};"
                ));
            }
            let strided_h = g.stride[0] > 1;
            let strided_w = g.stride[1] > 1;
            main.push(format!(
                "    for (var co = 0u; co < {wcout}; co++) {{\n    let dybase = co * {woh} * {wow};\n    let wbase = co * {wcin} * {wkh} * {wkw};\n    for (var kh = 0u; kh < {wkh}; kh++) {{"
            ));
            for c in 0..COLS {
                let (o, ok) = gather_tap(&format!("hh{c}"), &wsh, &woh, strided_h);
                main.push(format!(
                    "    let hh{c} = th{c} - i32(kh * {wdh});\n    let hok{c} = {ok};\n    let hrow{c} = dyi{c} + dybase + select(0u, u32({o}), hok{c}) * {wow};"
                ));
            }
            main.push(KW_LOOP.to_string());
            if window {
                // Column c's tap kw reads dy at column tw0 + c − kw·d: element
                // c + (KW − 1 − kw)·d of the window from tw0 − (KW − 1)·d.
                let last = g.kernel[1] - 1;
                let at = move |c: usize, kw: usize| c + (last - kw) * g.dilation[1];
                let start = format!("(tw0 - i32({}u))", last * g.dilation[1]);
                unrolled_taps(
                    &mut unrolled,
                    lanes,
                    &xa,
                    &start,
                    &wow,
                    last + 1,
                    at,
                    |off, kw| format!("{xb}[wbase + {off} + kh * {wkw} + {kw}u]"),
                );
            } else {
                row_loads = row_values(&mut inner, lanes, "wr", |off| {
                    format!("{xb}[wbase + {off} + kh * {wkw} + kw]")
                });
                for c in 0..COLS {
                    let (o, ok) = gather_tap(&format!("wc{c}"), &wsw, &wow, strided_w);
                    let ok = format!("hok{c} && {ok}");
                    inner.push(format!(
                        "    let wc{c} = tw{c} - i32(kw * {wdw});\n    let ok{c} = {ok};\n    let vb{c} = select(0.0, {xa}[select(0u, hrow{c} + u32({o}), ok{c})], ok{c});"
                    ));
                }
            }
        }
        ConvPass::WeightGrad if slotted => {
            // rows: output channels; columns: pairs (input channel, kh)
            // of TAP_SLOTS taps; K: the images of group bt and their
            // output pixels, UNROLL of a row at a time.
            let groups = COLS / TAP_SLOTS;
            for p in 0..groups {
                main.push(format!(
                    "    let pp{p} = min(col0 / {TAP_SLOTS}u + {p}u, {pairs}u - 1u);\n    let xo{p} = (pp{p} / {wkh}) * {wh} * {ww};\n    let dh{p} = i32((pp{p} % {wkh}) * {wdh}) - i32({wpt});"
                ));
            }
            main.push(image_and_row_loops.clone());
            x_rows(&mut main, groups, UNROLL);
            // Output pixel ow + j, tap kw reads window element j·s + kw·d.
            let at = |j: usize, kw: usize| j * g.stride[1] + kw * g.dilation[1];
            let taps = (0..UNROLL).flat_map(|j| (0..g.kernel[1]).map(move |kw| at(j, kw)));
            let start = format!("(i32(ow * {wsw}) - i32({wpl}))");
            for p in 0..groups {
                let row = (format!("hok{p}"), format!("hrow{p}"));
                window_loads(
                    &mut unrolled,
                    &xb,
                    &row,
                    &start,
                    &ww,
                    &format!("xw{p}_"),
                    taps.clone(),
                );
            }
            for j in 0..UNROLL {
                let a = row_values(&mut unrolled, lanes, "dr", |off| {
                    format!("{xa}[dyrow + {off} + ow + {j}u]")
                });
                multiply_adds(
                    &mut unrolled,
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
        ConvPass::WeightGrad => {
            // rows: output channels; columns: (input channel, kh, kw); K:
            // the images of group bt and their output pixels.
            for c in 0..COLS {
                main.push(format!(
                    "    let cc{c} = q{c} / ({wkh} * {wkw});\n    let kr{c} = q{c} % ({wkh} * {wkw});\n    let xo{c} = cc{c} * {wh} * {ww};\n    let dh{c} = i32((kr{c} / {wkw}) * {wdh}) - i32({wpt});\n    let dw{c} = i32((kr{c} % {wkw}) * {wdw}) - i32({wpl});"
                ));
            }
            main.push(image_and_row_loops.clone());
            x_rows(&mut main, COLS, 1);
            row_loads = row_values(&mut inner, lanes, "dr", |off| {
                format!("{xa}[dyrow + {off} + ow]")
            });
            for c in 0..COLS {
                inner.push(format!(
                    "    let wc{c} = i32(ow * {wsw}) + dw{c};\n    let ok{c} = hok{c} && u32(wc{c}) < {ww};\n    let vb{c} = select(0.0, {xb}[select(0u, hrow{c} + u32(wc{c}), ok{c})], ok{c});"
                ));
            }
        }
    }
    // One step of the innermost gathering loop: gather, then 64
    // multiply-adds (window kernels have none).
    let mut step = inner;
    if !window {
        multiply_adds(&mut step, |r| row_loads[r].clone(), |c| format!("vb{c}"));
    }
    step.extend(after_step);
    let step = step.join("\n");
    let innermost = match window {
        true => unrolled.join("\n"),
        false => format!("    for (var kw = 0u; kw < {wkw}; kw++) {{\n{step}\n    }}"),
    };
    let main_text = main.join("\n");
    let mut main: Vec<String> = match spec.pass {
        ConvPass::WeightGrad if slotted => {
            vec![format!("{main_text}\n{}\n    }}", unrolled.join("\n"))]
        }
        ConvPass::WeightGrad => vec![format!("{main_text}\n{step}\n    }}")],
        _ => vec![main_text.replace(KW_LOOP, &innermost)],
    };
    main.push("    }\n    }".into());
    // The epilogue's batch index: the column's image, or (weight
    // gradient) the group of images.
    let (batch_of, valid) = match spec.pass {
        ConvPass::WeightGrad => ("bt".to_string(), String::new()),
        _ => (
            "img{c}".to_string(),
            format!(" && bt * {wper_slice} + (col0 + {{c}}u) / {wpix} < {wimages}"),
        ),
    };
    // Slotted columns past the kernel's width hold nothing.
    let stored = |c: usize| !slotted || c % TAP_SLOTS < g.kernel[1];
    for r in 0..ROWS {
        for c in (0..COLS).filter(|&c| stored(c)) {
            let bti = batch_of.replace("{c}", &c.to_string());
            let valid = valid.replace("{c}", &c.to_string());
            main.push(format!(
                "    if (row0 + {r}u < {wm} && col0 + {c}u < {wcols}{valid}) {{ epi(P, {bti}, row0 + {r}u, q{c}, acc{r}_{}.{}); }}",
                c / 4,
                ["x", "y", "z", "w"][c % 4]
            ));
        }
    }
    let grid = [columns.div_ceil(8 * COLS), m.div_ceil(8 * ROWS), slices];
    if grid.iter().any(|&v| v > u32::MAX as usize) {
        return Err(invalid(label, format!("grid {grid:?} is too large")));
    }
    let entry = super::block_entry(lanes);
    let source = format!(
        "{}\n{}\n{}\n{epi}\n{entry}\n    let P = load_words();\n{}\n}}\n",
        bindings.declare(&[]),
        words.declare(),
        body.source,
        main.join("\n")
    );
    let pass = match spec.pass {
        ConvPass::Forward => "forward",
        ConvPass::InputGrad => "input_grad",
        ConvPass::WeightGrad => "weight_grad",
    };
    Ok(Generated {
        label: format!("{label}/{pass}"),
        source,
        words: words.values(),
        buffers: bindings.buffers().collect(),
        grid: Grid::Fixed([grid[0] as u32, grid[1] as u32, grid[2] as u32]),
        trusted: true,
    })
}
