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
use crate::{Buffer, Device, Kernel};

use super::words::Words;
use super::{Bindings, WG};

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
    pub planes: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
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
#[derive(Clone, Copy, Debug)]
pub enum PoolIo<'a> {
    /// `y` from `x`; max pooling may also (or only) write each maximum's
    /// plane index, as an f32 (exact below 2²⁴), to `indices`.
    Forward {
        x: &'a Buffer,
        y: Option<&'a Buffer>,
        indices: Option<&'a Buffer>,
    },
    /// `dx` from `dy`; max pooling also reads the forward pass's indices.
    Backward {
        dy: &'a Buffer,
        indices: Option<&'a Buffer>,
        dx: &'a Buffer,
    },
}

/// A pooling kernel (see the module docs).
pub fn pool_kernel(
    device: &Device,
    label: &str,
    kind: PoolKind,
    geometry: &Pool2dGeometry,
    io: PoolIo<'_>,
) -> Result<Kernel> {
    device.generated_kernel(generate(label, kind, geometry, io)?)
}

/// The source of [`pool_kernel`]'s kernel.
pub fn pool_source(kind: PoolKind, geometry: &Pool2dGeometry, io: PoolIo<'_>) -> Result<String> {
    Ok(generate("pool", kind, geometry, io)?.source)
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

fn generate<'a>(
    label: &str,
    kind: PoolKind,
    g: &Pool2dGeometry,
    io: PoolIo<'a>,
) -> Result<Generated<'a>> {
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
    let is_max = kind == PoolKind::Max;
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
            io_buffers.extend(y.map(|b| (b, "output", out_len, true)));
            io_buffers.extend(indices.map(|b| (b, "index", out_len, true)));
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
            io_buffers.extend(indices.map(|b| (b, "index", out_len, false)));
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
    // The geometry is written into the source as constants, unlike most
    // kernels' sizes: every pixel divides by sizes and strides, and a CPU
    // adapter cannot vectorise a division by a value it reads at run time
    // (the SimpleCNN's first pooling gradient took 29 ms with words, 12 ms
    // with constants, on lavapipe). A model has few pooling geometries, so
    // few pipelines.
    let words = Words::new();
    let u = |v: usize| format!("{v}u");
    let (wh, ww, woh, wow) = (u(h), u(w), u(oh), u(ow));
    let (wkh, wkw) = (u(g.kernel[0]), u(g.kernel[1]));
    let (wsh, wsw) = (u(g.stride[0]), u(g.stride[1]));
    let (wdh, wdw) = (u(g.dilation[0]), u(g.dilation[1]));
    let (wpt, wpl) = (u(g.pad[0]), u(g.pad[1]));
    let (wph, wpw) = (u(h + g.pad[0] + g.pad[2]), u(w + g.pad[1] + g.pad[3]));
    let count = u(invocations);
    // The window of output (oh, ow) over the plane starting at `base` of
    // the input `x`: its maximum and where it is, or its sum.
    let x = &bound[0];
    let (combine, init, result) = if is_max {
        (
            format!(
                "            let v = {x}[base + at];\n            if (v > best.value || (is_nan(v) && !is_nan(best.value))) {{ best = Window(v, i32(at)); }}"
            ),
            "Window(bitcast<f32>(0xff800000u), -1)",
            "struct Window { value: f32, at: i32 }",
        )
    } else {
        (
            format!("            best.value += {x}[base + at];"),
            "Window(0.0, -1)",
            "struct Window { value: f32, at: i32 }",
        )
    };
    let forward = matches!(io, PoolIo::Forward { .. });
    let window_fn = if !forward {
        String::new()
    } else {
        format!(
            "{result}
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
    };
    // The divisor of average window (oh, ow), whose first tap sits at
    // padded position (oh·sh, ow·sw).
    let divisor = match kind {
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
    };
    let body = match io {
        PoolIo::Forward { y, indices, .. } => {
            let mut stores = Vec::new();
            let mut next = 1;
            if y.is_some() {
                let value = if is_max {
                    "win.value".to_string()
                } else {
                    format!("win.value / {divisor}")
                };
                stores.push(format!("    {}[i] = {value};", bound[next]));
                next += 1;
            }
            if indices.is_some() {
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
        PoolIo::Backward { .. } => {
            // The taps of the windows that may cover an input pixel at
            // padded position `t` along one axis: every tap when windows
            // overlap; when they do not (stride ≥ span), only the window
            // t / stride can, through its tap (t % stride) / dilation.
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
            let (kh0, kh1) = taps(&format!("hh + {wpt}"), 0, &wkh, &wsh, &wdh);
            let (kw0, kw1) = taps(&format!("wc + {wpl}"), 1, &wkw, &wsw, &wdw);
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
                // One window at most covers a pixel, through one tap per
                // axis: straight-line code, no loop or branch per lane
                // (loads at index 0 where there is none, then dropped).
                let value = match is_max {
                    true => format!(
                        "select(0.0, {dy}[o], {}[o] == f32(hh * {ww} + wc))",
                        bound[1]
                    ),
                    false => format!("{dy}[o] / {divisor}"),
                };
                format!(
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
                )
            } else {
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
        }
    };
    let source = format!(
        "{}\n{}\n{TAPS_FN}\n{window_fn}\n@compute @workgroup_size({WG})\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n        @builtin(local_invocation_index) lid: u32) {{\n    let P = load_words();\n    let i = (wid.y * nwg.x + wid.x) * {WG}u + lid;\n    if (i >= {count}) {{ return; }}\n{body}\n}}\n",
        bindings.declare(&[]),
        words.declare(),
    );
    let pass = match (kind, io) {
        (PoolKind::Max, PoolIo::Forward { .. }) => "max_pool",
        (PoolKind::Max, PoolIo::Backward { .. }) => "max_pool_grad",
        (_, PoolIo::Forward { .. }) => "avg_pool",
        (_, PoolIo::Backward { .. }) => "avg_pool_grad",
    };
    Ok(Generated {
        label: format!("{label}/{pass}"),
        source,
        words: words.values(),
        buffers: bindings.buffers().collect(),
        grid: Grid::Linear((invocations as u64).div_ceil(WG as u64)),
        trusted: true,
    })
}
