//! The generated 2-D pooling kernels over NCHW planes, with PyTorch's
//! semantics: max pooling ignores padding and returns, beside each maximum,
//! its index within the input plane (`h·W + w`, the first maximum, NaN
//! propagating); average pooling divides by the taps inside the padded input
//! (`count_include_pad`) or inside the input itself.
//!
//! The backward passes gather: each input pixel walks the output windows
//! that cover it (at most `KH·KW`), so no two invocations write one place.
//! Max pooling's gradient reads the indices its forward pass kept: an input
//! pixel receives a window's gradient when it is that window's maximum.

use crate::error::{invalid, BackendError, Result};
use crate::kernel::{Generated, Grid};
use crate::{Buffer, KernelProfile};

use super::description::{Render, Rendered};
use super::words::Words;
use super::{linear_entry, module, Bindings, WG};

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Max,
    Average {
        /// Divide by every tap inside the padded input (PyTorch's default)
        /// rather than by the taps inside the input only.
        count_include_pad: bool,
    },
}

/// The geometry of a 2-D pooling: `planes` (batch × channels) planes of
/// `input`, windows of `kernel` taps `dilation` apart, placed every `stride`
/// over the input padded by `pad` (top, left, bottom, right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dGeometry {
    /// Batch × channels: the planes pooled independently.
    pub planes: usize,
    /// Each plane's height and width.
    pub input: [usize; 2],
    /// Window height and width, in taps.
    pub kernel: [usize; 2],
    /// How far apart windows start, down and across.
    pub stride: [usize; 2],
    /// Implicit padding: top, left, bottom, right.
    pub pad: [usize; 4],
    /// How far apart a window's taps are.
    pub dilation: [usize; 2],
    /// Round the output size up, as PyTorch's `ceil_mode`: a last window
    /// that starts inside the input or its leading padding is kept.
    pub ceil_mode: bool,
}

impl Pool2dGeometry {
    /// Output height and width, or `None` when a window does not fit.
    pub fn output(&self) -> Option<[usize; 2]> {
        let size = |axis: usize| -> Option<usize> {
            let (k, s, d) = (self.kernel[axis], self.stride[axis], self.dilation[axis]);
            if k == 0 || s == 0 || d == 0 {
                return None;
            }
            let padded = self.input[axis] + self.pad[axis] + self.pad[axis + 2];
            let span = d * (k - 1) + 1;
            if span > padded {
                return None;
            }
            let room = padded - span;
            let mut out = if self.ceil_mode {
                room.div_ceil(s) + 1
            } else {
                room / s + 1
            };
            if self.ceil_mode && (out - 1) * s >= self.input[axis] + self.pad[axis] {
                out -= 1;
            }
            Some(out)
        };
        Some([size(0)?, size(1)?])
    }
}

/// The tensors a pooling pass reads and writes.
#[derive(Clone, Debug)]
pub enum PoolIo {
    /// `y` from `x`; max pooling may also (or only) write each maximum's
    /// plane index, as an f32 (exact below 2²⁴), to `indices`.
    Forward {
        x: Buffer,
        y: Option<Buffer>,
        indices: Option<Buffer>,
    },
    /// `dx` from `dy`; max pooling also reads the forward pass's indices.
    Backward {
        dy: Buffer,
        indices: Option<Buffer>,
        dx: Buffer,
    },
}

/// A pooling pass (see the module docs).
#[derive(Clone, Debug)]
pub struct PoolKernel {
    pub label: String,
    pub kind: PoolKind,
    pub geometry: Pool2dGeometry,
    pub io: PoolIo,
}

impl Render for PoolKernel {
    fn render(&self, _: &KernelProfile) -> Result<Rendered<'_>> {
        Ok(Rendered::Generated(generate(
            &self.label,
            self.kind,
            &self.geometry,
            &self.io,
        )?))
    }
}

/// The number of taps `p0 + k·d` (`k < taps`) in `[lo, hi)`.
const TAPS_FN: &str = "fn taps_in(p0: u32, lo: u32, hi: u32, taps: u32, d: u32) -> u32 {
    if (p0 >= hi) { return 0u; }
    var first = 0u;
    if (p0 < lo) { first = (lo - p0 + d - 1u) / d; }
    let last = min(taps, (hi - p0 + d - 1u) / d);
    return select(0u, last - first, last > first);
}
";

fn generate(label: &str, kind: PoolKind, g: &Pool2dGeometry, io: &PoolIo) -> Result<Generated> {
    let Some([oh, ow]) = g.output() else {
        return Err(invalid(
            label,
            format!(
                "a {:?} window (stride {:?}, dilation {:?}) does not fit a {:?} input padded by {:?}",
                g.kernel, g.stride, g.dilation, g.input, g.pad
            ),
        ));
    };
    let [h, w] = g.input;
    if g.planes == 0 || h == 0 || w == 0 {
        return Err(BackendError::Empty {
            op: label.to_string(),
            shape: vec![g.planes, h, w],
        });
    }
    if h * w >= 1 << 24 {
        return Err(invalid(
            label,
            format!("a {h}×{w} plane has indices an f32 cannot hold exactly (limit 2^24)"),
        ));
    }
    let (bindings, bound, invocations) = bind(label, kind, g, [oh, ow], io)?;
    // The geometry is written into the source as constants, unlike most
    // kernels' sizes: every pixel divides by sizes and strides, and a CPU
    // adapter cannot vectorise a division by a value it reads at run time
    // (the SimpleCNN's first pooling gradient took 29 ms with words, 12 ms
    // with constants, on lavapipe). A model has few pooling geometries, so
    // few pipelines.
    let words = Words::new();
    let c = Constants::of(g, [oh, ow]);
    let count = format!("{invocations}u");
    let is_max = kind == PoolKind::Max;
    let divisor = divisor(kind, &c);
    let (window_fn, body) = match io {
        PoolIo::Forward { y, indices, .. } => (
            window_fn(&c, is_max, &bound[0]),
            forward_body(&c, &bound, y.is_some(), indices.is_some(), is_max, &divisor),
        ),
        PoolIo::Backward { .. } => (
            String::new(),
            backward_body(g, &c, &bound, is_max, &divisor),
        ),
    };
    let declared = [bindings.declare(&[]), words.declare()];
    let main = [
        format!("    let i = (wid.y * nwg.x + wid.x) * {WG}u + lid;\n    if (i >= {count}) {{ return; }}"),
        body,
    ];
    let parts = [&declared[0], &declared[1], TAPS_FN, &window_fn];
    let source = module(&parts, &linear_entry(), &main);
    let pass = match (kind, io) {
        (PoolKind::Max, PoolIo::Forward { .. }) => "max_pool",
        (PoolKind::Max, PoolIo::Backward { .. }) => "max_pool_grad",
        (_, PoolIo::Forward { .. }) => "avg_pool",
        (_, PoolIo::Backward { .. }) => "avg_pool_grad",
    };
    let grid = Grid::Linear((invocations as u64).div_ceil(WG as u64));
    Ok(bindings.generated(format!("{label}/{pass}"), source, &words, grid))
}

/// The bindings of a pass's tensors, in the order the code names them
/// (`bound`: input, outputs), after checking that each holds what the pass
/// reads or writes; and how many invocations the pass runs (one per
/// output, or per input pixel for a gradient).
fn bind<'a>(
    label: &str,
    kind: PoolKind,
    g: &Pool2dGeometry,
    [oh, ow]: [usize; 2],
    io: &'a PoolIo,
) -> Result<(Bindings<'a>, Vec<String>, usize)> {
    let is_max = kind == PoolKind::Max;
    let [h, w] = g.input;
    let (in_len, out_len) = (g.planes * h * w, g.planes * oh * ow);
    // (buffer, role, values it must hold, written)
    let mut io_buffers: Vec<(&Buffer, &str, usize, bool)> = Vec::new();
    let invocations = match io {
        PoolIo::Forward { x, y, indices } => {
            if y.is_none() && indices.is_none() {
                return Err(invalid(
                    label,
                    "a pooling pass writes values, indices or both",
                ));
            }
            if indices.is_some() && !is_max {
                return Err(invalid(label, "only max pooling has indices"));
            }
            io_buffers.push((x, "input", in_len, false));
            io_buffers.extend(y.as_ref().map(|b| (b, "output", out_len, true)));
            io_buffers.extend(indices.as_ref().map(|b| (b, "index", out_len, true)));
            out_len
        }
        PoolIo::Backward { dy, indices, dx } => {
            if is_max != indices.is_some() {
                return Err(invalid(
                    label,
                    "the gradient of max pooling reads its indices and average pooling's none",
                ));
            }
            io_buffers.push((dy, "upstream gradient", out_len, false));
            io_buffers.extend(indices.as_ref().map(|b| (b, "index", out_len, false)));
            io_buffers.push((dx, "input gradient", in_len, true));
            in_len
        }
    };
    let mut bindings = Bindings::default();
    let mut bound = Vec::new();
    for &(buf, role, len, writes) in &io_buffers {
        if len as u64 * 4 > buf.size() {
            return Err(invalid(
                label,
                format!(
                    "the {role} buffer holds {} values; {len} are needed",
                    buf.size() / 4
                ),
            ));
        }
        let before = bindings.len();
        let b = bindings.of(buf, writes);
        if b < before {
            return Err(invalid(label, "pooling reads and writes distinct buffers"));
        }
        bound.push(format!("b{b}"));
    }
    Ok((bindings, bound, invocations))
}

/// The geometry as WGSL constants: `plane` the input's and output's
/// height and width (h, w, oh, ow), `window` the taps, strides,
/// dilations and leading padding (kh, kw, sh, sw, dh, dw, pt, pl), and
/// `padded` the padded input's size (ph, pw).
struct Constants {
    plane: [String; 4],
    window: [String; 8],
    padded: [String; 2],
}

impl Constants {
    fn of(g: &Pool2dGeometry, [oh, ow]: [usize; 2]) -> Self {
        let u = |v: usize| format!("{v}u");
        let [h, w] = g.input;
        let ([kh, kw], [sh, sw], [dh, dw]) = (g.kernel, g.stride, g.dilation);
        Constants {
            plane: [h, w, oh, ow].map(u),
            window: [kh, kw, sh, sw, dh, dw, g.pad[0], g.pad[1]].map(u),
            padded: [h + g.pad[0] + g.pad[2], w + g.pad[1] + g.pad[3]].map(u),
        }
    }
}

/// The window of output (oh, ow) over the plane starting at `base` of
/// the input `x`: its maximum and where it is, or its sum.
fn window_fn(c: &Constants, is_max: bool, x: &str) -> String {
    let combine = if is_max {
        format!(
            "            let v = {x}[base + at];\n            if (v > best.value || (is_nan(v) && !is_nan(best.value))) {{ best = Window(v, i32(at)); }}"
        )
    } else {
        format!("            best.value += {x}[base + at];")
    };
    let init = match is_max {
        true => "Window(bitcast<f32>(0xff800000u), -1)",
        false => "Window(0.0, -1)",
    };
    let [wh, ww, _, _] = &c.plane;
    let [wkh, wkw, wsh, wsw, wdh, wdw, wpt, wpl] = &c.window;
    format!(
        "struct Window {{ value: f32, at: i32 }}
fn window(P: Words, base: u32, oh: u32, ow: u32) -> Window {{
    var best = {init};
    for (var kh = 0u; kh < {wkh}; kh++) {{
        let hh = i32(oh * {wsh} + kh * {wdh}) - i32({wpt});
        if (hh < 0 || u32(hh) >= {wh}) {{ continue; }}
        for (var kw = 0u; kw < {wkw}; kw++) {{
            let wc = i32(ow * {wsw} + kw * {wdw}) - i32({wpl});
            if (wc < 0 || u32(wc) >= {ww}) {{ continue; }}
            let at = u32(hh) * {ww} + u32(wc);
{combine}
        }}
    }}
    return best;
}}"
    )
}

/// The divisor of average window (oh, ow), whose first tap sits at
/// padded position (oh·sh, ow·sw); empty for max pooling.
fn divisor(kind: PoolKind, c: &Constants) -> String {
    let [wh, ww, _, _] = &c.plane;
    let [wkh, wkw, wsh, wsw, wdh, wdw, wpt, wpl] = &c.window;
    let [wph, wpw] = &c.padded;
    match kind {
        PoolKind::Max => String::new(),
        PoolKind::Average { count_include_pad } => {
            let (lo_h, hi_h, lo_w, hi_w) = if count_include_pad {
                ("0u".to_string(), wph.clone(), "0u".to_string(), wpw.clone())
            } else {
                (
                    wpt.clone(),
                    format!("{wpt} + {wh}"),
                    wpl.clone(),
                    format!("{wpl} + {ww}"),
                )
            };
            format!(
                "f32(taps_in(oh * {wsh}, {lo_h}, {hi_h}, {wkh}, {wdh}) * taps_in(ow * {wsw}, {lo_w}, {hi_w}, {wkw}, {wdw}))"
            )
        }
    }
}

/// Output `i`'s window, stored as a value and/or the maximum's index.
fn forward_body(
    c: &Constants,
    bound: &[String],
    values: bool,
    indices: bool,
    is_max: bool,
    divisor: &str,
) -> String {
    let [wh, ww, woh, wow] = &c.plane;
    let mut stores = Vec::new();
    let mut next = 1;
    if values {
        let value = if is_max {
            "win.value".to_string()
        } else {
            format!("win.value / {divisor}")
        };
        stores.push(format!("    {}[i] = {value};", bound[next]));
        next += 1;
    }
    if indices {
        stores.push(format!("    {}[i] = f32(win.at);", bound[next]));
    }
    format!(
        "    let plane = i / ({woh} * {wow});
    let oh = (i / {wow}) % {woh};
    let ow = i % {wow};
    let win = window(P, plane * {wh} * {ww}, oh, ow);
{}",
        stores.join("\n")
    )
}

/// Input pixel `i`'s gradient, gathered from the windows that cover it.
fn backward_body(
    g: &Pool2dGeometry,
    c: &Constants,
    bound: &[String],
    is_max: bool,
    divisor: &str,
) -> String {
    let [wh, ww, woh, wow] = &c.plane;
    let [wkh, wkw, wsh, wsw, wdh, wdw, wpt, wpl] = &c.window;
    // The taps of the windows that may cover an input pixel at padded
    // position `t` along one axis: every tap when windows overlap; when
    // they do not (stride ≥ span), only the window t / stride can, through
    // its tap (t % stride) / dilation.
    let disjoint = |axis: usize| {
        let span = g.dilation[axis] * (g.kernel[axis] - 1) + 1;
        g.stride[axis] >= span
    };
    let taps = |t: &str, axis: usize, k: &str, s: &str, d: &str| {
        if disjoint(axis) {
            let first = format!("(({t}) % {s}) / {d}");
            (first.clone(), format!("min({first} + 1u, {k})"))
        } else {
            ("0u".to_string(), k.to_string())
        }
    };
    let (kh0, kh1) = taps(&format!("hh + {wpt}"), 0, wkh, wsh, wdh);
    let (kw0, kw1) = taps(&format!("wc + {wpl}"), 1, wkw, wsw, wdw);
    let dy = &bound[0];
    let add = if is_max {
        let idx = &bound[1];
        format!("            if ({idx}[o] == f32(hh * {ww} + wc)) {{ acc += {dy}[o]; }}")
    } else {
        format!("            acc += {dy}[o] / {divisor};")
    };
    let start = format!(
        "    let plane = i / ({wh} * {ww});
    let hh = (i / {ww}) % {wh};
    let wc = i % {ww};
    let obase = plane * {woh} * {wow};"
    );
    let dx = &bound[bound.len() - 1];
    if disjoint(0) && disjoint(1) {
        // One window at most covers a pixel, through one tap per axis:
        // straight-line code, no loop or branch per lane (loads at index 0
        // where there is none, then dropped).
        let value = match is_max {
            true => format!(
                "select(0.0, {dy}[o], {}[o] == f32(hh * {ww} + wc))",
                bound[1]
            ),
            false => format!("{dy}[o] / {divisor}"),
        };
        return format!(
            "{start}
    let ph = hh + {wpt};
    let pw = wc + {wpl};
    let oh = ph / {wsh};
    let ow = pw / {wsw};
    let rh = ph % {wsh};
    let rw = pw % {wsw};
    let covered = rh % {wdh} == 0u && rh / {wdh} < {wkh} && oh < {woh} && rw % {wdw} == 0u && rw / {wdw} < {wkw} && ow < {wow};
    let o = select(0u, obase + oh * {wow} + ow, covered);
    {dx}[i] = select(0.0, {value}, covered);"
        );
    }
    format!(
        "{start}
    var acc = 0.0;
    for (var kh = {kh0}; kh < {kh1}; kh++) {{
        let th = i32(hh + {wpt}) - i32(kh * {wdh});
        if (th < 0 || u32(th) % {wsh} != 0u) {{ continue; }}
        let oh = u32(th) / {wsh};
        if (oh >= {woh}) {{ continue; }}
        for (var kw = {kw0}; kw < {kw1}; kw++) {{
            let tw = i32(wc + {wpl}) - i32(kw * {wdw});
            if (tw < 0 || u32(tw) % {wsw} != 0u) {{ continue; }}
            let ow = u32(tw) / {wsw};
            if (ow >= {wow}) {{ continue; }}
            let o = obase + oh * {wow} + ow;
{add}
        }}
    }}
    {dx}[i] = acc;"
    )
}
