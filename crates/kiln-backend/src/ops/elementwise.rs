//! Unary, binary (broadcasting), select and fill kernels over strided views.

use crate::error::Result;
use crate::kernel::{Kernel, KernelBinding};
use crate::layout::{check_rank, padded, StridedLayout};
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// One-input elementwise operations. The codes match `elementwise.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Identity,
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Recip,
    Square,
    Sign,
    /// 1 where x > 0, else 0 (the derivative of relu).
    Step,
    Scale(f32),
    AddScalar(f32),
    PowScalar(f32),
    Rsqrt,
}

impl UnaryOp {
    pub(crate) fn code_and_param(self) -> (u32, f32) {
        match self {
            UnaryOp::Identity => (0, 0.0),
            UnaryOp::Neg => (1, 0.0),
            UnaryOp::Exp => (2, 0.0),
            UnaryOp::Log => (3, 0.0),
            UnaryOp::Sqrt => (4, 0.0),
            UnaryOp::Abs => (5, 0.0),
            UnaryOp::Relu => (6, 0.0),
            UnaryOp::LeakyRelu(a) => (7, a),
            UnaryOp::Sigmoid => (8, 0.0),
            UnaryOp::Tanh => (9, 0.0),
            UnaryOp::Recip => (10, 0.0),
            UnaryOp::Square => (11, 0.0),
            UnaryOp::Sign => (12, 0.0),
            UnaryOp::Step => (13, 0.0),
            UnaryOp::Scale(s) => (14, s),
            UnaryOp::AddScalar(s) => (15, s),
            UnaryOp::PowScalar(p) => (16, p),
            UnaryOp::Rsqrt => (17, 0.0),
        }
    }

    /// The f64 value this op computes, the reference the tests hold kernels to.
    pub fn reference(self, x: f64) -> f64 {
        match self {
            UnaryOp::Identity => x,
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Relu => {
                if x.is_nan() {
                    x
                } else {
                    x.max(0.0)
                }
            }
            UnaryOp::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a as f64 * x
                }
            }
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Square => x * x,
            UnaryOp::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Step => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Scale(s) => x * s as f64,
            UnaryOp::AddScalar(s) => x + s as f64,
            UnaryOp::PowScalar(p) => real_pow(x, p as f64),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        }
    }
}

/// Two-input elementwise operations with NumPy broadcasting. Comparisons give
/// 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `b · (a > 0)`: relu's backward from its output `a` and upstream `b`.
    ReluGrad,
    /// `b · a · (1 − a)`: sigmoid's backward from its output.
    SigmoidGrad,
    /// `b · (1 − a²)`: tanh's backward from its output.
    TanhGrad,
    /// Binary cross-entropy of probability `a` against target `b`, with `a`
    /// clipped to `[1e-7, 1 − 1e-7]` as Keras does.
    BceTerm,
    /// d [`BinaryOp::BceTerm`] / d`a` (zero where the clip is active).
    BceGrad,
    /// Binary cross-entropy of logit `a` against target `b`, computed stably.
    BceLogitsTerm,
    /// d [`BinaryOp::BceLogitsTerm`] / d`a` = sigmoid(a) − b.
    BceLogitsGrad,
    /// 1 where `a > 0.5` agrees with `b > 0.5` (Keras' binary accuracy).
    BinaryAccuracy,
    /// `a − b` for a sigmoid output `a` and target `b` (zero where the clip of
    /// [`BinaryOp::BceTerm`] is active): that loss's gradient through the
    /// sigmoid, `BceGrad(a, b)·a·(1 − a)`, without its cancellation.
    SigmoidBceGrad,
}

/// The probability clip of Keras' binary cross-entropy (its backend epsilon).
pub const BCE_EPSILON: f64 = 1e-7;

impl BinaryOp {
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The f64 value this op computes.
    pub fn reference(self, x: f64, y: f64) -> f64 {
        let b = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
            BinaryOp::Max => x.max(y),
            BinaryOp::Min => x.min(y),
            BinaryOp::Pow => real_pow(x, y),
            BinaryOp::Eq => b(x == y),
            BinaryOp::Ne => b(x != y),
            BinaryOp::Lt => b(x < y),
            BinaryOp::Le => b(x <= y),
            BinaryOp::Gt => b(x > y),
            BinaryOp::Ge => b(x >= y),
            BinaryOp::ReluGrad => y * b(x > 0.0),
            BinaryOp::SigmoidGrad => y * x * (1.0 - x),
            BinaryOp::TanhGrad => y * (1.0 - x * x),
            BinaryOp::BceTerm => {
                let p = x.clamp(BCE_EPSILON, 1.0 - BCE_EPSILON);
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            }
            BinaryOp::BceGrad => {
                if (BCE_EPSILON..=1.0 - BCE_EPSILON).contains(&x) {
                    -y / x + (1.0 - y) / (1.0 - x)
                } else {
                    0.0
                }
            }
            BinaryOp::BceLogitsTerm => x.max(0.0) - x * y + (-x.abs()).exp().ln_1p(),
            BinaryOp::BceLogitsGrad => 1.0 / (1.0 + (-x).exp()) - y,
            BinaryOp::BinaryAccuracy => b((x > 0.5) == (y > 0.5)),
            BinaryOp::SigmoidBceGrad => {
                if (BCE_EPSILON..=1.0 - BCE_EPSILON).contains(&x) {
                    x - y
                } else {
                    0.0
                }
            }
        }
    }
}

fn real_pow(x: f64, y: f64) -> f64 {
    if x < 0.0 && y == y.floor() {
        let r = (-x).powf(y);
        if (y % 2.0).abs() == 1.0 {
            -r
        } else {
            r
        }
    } else {
        x.powf(y)
    }
}

/// An operand of an elementwise kernel: its buffer and how to read it.
pub struct Operand<'a> {
    pub buffer: &'a Buffer,
    pub layout: StridedLayout,
}

fn meta(
    op: &str,
    out_offset: usize,
    shape: &[usize],
    param: f32,
    operands: &[&StridedLayout],
) -> Result<Vec<u32>> {
    let out = StridedLayout {
        offset: out_offset,
        ..StridedLayout::contiguous(shape)
    };
    meta_out(op, &out, param, operands)
}

fn meta_out(
    op: &str,
    out: &StridedLayout,
    param: f32,
    operands: &[&StridedLayout],
) -> Result<Vec<u32>> {
    let shape = &out.shape;
    check_rank(op, shape)?;
    let n: usize = shape.iter().product();
    // Bit k: operand k (then the output, bit 3) walks the output in row-major order.
    let row_major = |l: &StridedLayout| {
        let want = crate::layout::contiguous_strides(shape);
        l.shape.len() == shape.len()
            && shape
                .iter()
                .zip(l.strides.iter().zip(&want))
                .all(|(&d, (s, w))| d == 1 || s == w)
    };
    let mut bits = 0u32;
    for (k, l) in operands.iter().enumerate() {
        if row_major(l) {
            bits |= 1 << k;
        }
    }
    if row_major(out) {
        bits |= 1 << 3;
    }
    let mut words = vec![n as u32, shape.len() as u32, param.to_bits(), bits];
    words.extend(padded(shape, 1));
    for slot in 0..3 {
        match operands.get(slot) {
            Some(l) => {
                words.push(l.offset as u32);
                words.extend(padded(&l.strides, 0));
            }
            None => words.extend([0u32; 9]),
        }
    }
    words.push(out.offset as u32);
    words.extend(padded(&out.strides, 0));
    Ok(words)
}

/// The parameter words of the accumulate entries: count, scale and keep in
/// words 0, 2 and 3, the operands' offsets where the strided kernels keep
/// them. Both operands must be contiguous and of one shape.
fn accumulate_words(a: &Operand<'_>, b: &Operand<'_>, scale: f32, keep: f32) -> Result<Vec<u32>> {
    let shape = a.layout.shape.clone();
    let contiguous = StridedLayout::contiguous(&shape);
    if b.layout.shape != shape
        || a.layout.strides != contiguous.strides
        || b.layout.strides != contiguous.strides
    {
        return Err(crate::error::shape_error(
            "accumulate",
            format!(
                "operands {:?} and {:?} must be contiguous and of one shape",
                a.layout.shape, b.layout.shape
            ),
        ));
    }
    check_fits("accumulate", "a", a.buffer, &a.layout)?;
    check_fits("accumulate", "b", b.buffer, &b.layout)?;
    let mut words = meta("accumulate", 0, &[1], scale, &[&a.layout, &b.layout])?;
    words[0] = a.layout.numel() as u32;
    words[3] = keep.to_bits();
    Ok(words)
}

/// `acc[0] = keep·acc[0] + scale·Σ op(a, b)` over two contiguous operands of
/// the same shape, in one invocation: a batch's loss or metric summed into its
/// accumulator without materialising the per-element values.
pub fn accumulate_binary_kernel(
    device: &Device,
    op: BinaryOp,
    acc: &Buffer,
    a: Operand<'_>,
    b: Operand<'_>,
    keep: f32,
    scale: f32,
) -> Result<Kernel> {
    let words = accumulate_words(&a, &b, scale, keep)?;
    device.kernel(
        ShaderId::Elementwise,
        "accumulate_binary",
        &[("OP", op.code() as f64)],
        &[
            KernelBinding {
                binding: 0,
                buffer: acc,
            },
            KernelBinding {
                binding: 1,
                buffer: a.buffer,
            },
            KernelBinding {
                binding: 2,
                buffer: b.buffer,
            },
        ],
        4,
        &words,
        [1, 1, 1],
    )
}

/// Two accumulators from one pass over the same operands:
/// `accs[k][0] = keep_k·accs[k][0] + scale_k·Σ ops[k](a, b)` (a batch's loss
/// and a metric of the same predictions and targets).
pub fn accumulate_binary_pair_kernel(
    device: &Device,
    ops: [BinaryOp; 2],
    accs: [&Buffer; 2],
    a: Operand<'_>,
    b: Operand<'_>,
    keep: [f32; 2],
    scale: [f32; 2],
) -> Result<Kernel> {
    let mut words = accumulate_words(&a, &b, scale[0], keep[0])?;
    words[4] = ops[0].code();
    words[5] = ops[1].code();
    words[6] = scale[1].to_bits();
    words[7] = keep[1].to_bits();
    device.kernel(
        ShaderId::Elementwise,
        "accumulate_binary2",
        &[],
        &[
            KernelBinding {
                binding: 0,
                buffer: accs[0],
            },
            KernelBinding {
                binding: 1,
                buffer: a.buffer,
            },
            KernelBinding {
                binding: 2,
                buffer: b.buffer,
            },
            KernelBinding {
                binding: 5,
                buffer: accs[1],
            },
        ],
        4,
        &words,
        [1, 1, 1],
    )
}

/// Contiguity bits of the parameter words (see `elementwise.wgsl`).
const FLAT_A: u32 = 1;
const FLAT_B: u32 = 2;
const FLAT_OUT: u32 = 8;

/// The vec4 form of a row-major map, where the count and every offset are
/// multiples of 4; `None` where they are not.
fn vec4_kernel(
    device: &Device,
    entry: &str,
    code: u32,
    param: f32,
    n: usize,
    out: (&Buffer, usize),
    inputs: &[(&Buffer, usize)],
) -> Option<Result<Kernel>> {
    let aligned =
        n.is_multiple_of(4) && out.1.is_multiple_of(4) && inputs.iter().all(|(_, o)| o % 4 == 0);
    if !aligned {
        return None;
    }
    let offset = |k: usize| inputs.get(k).map_or(0, |(_, o)| (o / 4) as u32);
    let words = [
        (n / 4) as u32,
        0,
        param.to_bits(),
        0,
        offset(0),
        offset(1),
        (out.1 / 4) as u32,
        0,
    ];
    let mut bindings = vec![KernelBinding {
        binding: 0,
        buffer: out.0,
    }];
    for (k, (buffer, _)) in inputs.iter().enumerate() {
        bindings.push(KernelBinding {
            binding: k as u32 + 1,
            buffer,
        });
    }
    Some(grid(device, n / 4).and_then(|g| {
        device.kernel(
            ShaderId::ElementwiseVec4,
            entry,
            &[("OP", code as f64), ("WG", WG as f64)],
            &bindings,
            4,
            &words,
            g,
        )
    }))
}

/// Column sums (or means) of a row-major `[rows, cols]` matrix at `offset`
/// in vec4s, where cols and both offsets are multiples of 4; `None` otherwise.
pub(crate) fn column_sum_kernel(
    device: &Device,
    mean: bool,
    out: (&Buffer, usize),
    x: (&Buffer, usize),
    rows: usize,
    cols: usize,
) -> Option<Result<Kernel>> {
    if !cols.is_multiple_of(4) || !out.1.is_multiple_of(4) || !x.1.is_multiple_of(4) {
        return None;
    }
    let words = [
        (cols / 4) as u32,
        rows as u32,
        0,
        0,
        (x.1 / 4) as u32,
        0,
        (out.1 / 4) as u32,
        0,
    ];
    Some(grid(device, cols / 4).and_then(|g| {
        device.kernel(
            ShaderId::ElementwiseVec4,
            "column_sum",
            &[("OP", mean as u8 as f64), ("WG", WG as f64)],
            &[
                KernelBinding {
                    binding: 0,
                    buffer: out.0,
                },
                KernelBinding {
                    binding: 1,
                    buffer: x.0,
                },
            ],
            4,
            &words,
            g,
        )
    }))
}

fn grid(device: &Device, n: usize) -> Result<[u32; 3]> {
    device.linear_grid((n as u64).div_ceil(WG as u64))
}

fn check_fits(op: &str, what: &str, buffer: &Buffer, layout: &StridedLayout) -> Result<()> {
    let need = layout.extent() as u64 * 4;
    if need > buffer.size() {
        return Err(crate::error::invalid(
            op,
            format!(
                "{what} reads {need} bytes but its buffer holds {}",
                buffer.size()
            ),
        ));
    }
    Ok(())
}

/// `out[offset + i] = op(a[i])` over `a.layout.shape`, row-major.
pub fn unary_kernel(
    device: &Device,
    op: UnaryOp,
    out: &Buffer,
    out_offset: usize,
    a: Operand<'_>,
) -> Result<Kernel> {
    let layout = StridedLayout {
        offset: out_offset,
        ..StridedLayout::contiguous(&a.layout.shape)
    };
    unary_into(
        device,
        op,
        Operand {
            buffer: out,
            layout,
        },
        a,
    )
}

/// `op(a)` written through the output's own layout (same shape as `a`'s), so
/// the result can land in a strided region of a larger tensor.
pub fn unary_into(
    device: &Device,
    op: UnaryOp,
    out: Operand<'_>,
    a: Operand<'_>,
) -> Result<Kernel> {
    if out.layout.shape != a.layout.shape {
        return Err(crate::error::shape_error(
            "unary",
            format!(
                "output laid out as {:?}, input as {:?}",
                out.layout.shape, a.layout.shape
            ),
        ));
    }
    check_fits("unary", "input", a.buffer, &a.layout)?;
    check_fits("unary", "output", out.buffer, &out.layout)?;
    let (code, param) = op.code_and_param();
    let words = meta_out("unary", &out.layout, param, &[&a.layout])?;
    if words[3] == FLAT_A | FLAT_OUT {
        if let Some(k) = vec4_kernel(
            device,
            "unary",
            code,
            param,
            a.layout.numel(),
            (out.buffer, out.layout.offset),
            &[(a.buffer, a.layout.offset)],
        ) {
            return k;
        }
    }
    device.kernel(
        ShaderId::Elementwise,
        if words[3] == FLAT_A | FLAT_OUT {
            "unary_flat"
        } else {
            "unary"
        },
        &[("OP", code as f64), ("WG", WG as f64)],
        &[
            KernelBinding {
                binding: 0,
                buffer: out.buffer,
            },
            KernelBinding {
                binding: 1,
                buffer: a.buffer,
            },
        ],
        4,
        &words,
        grid(device, a.layout.numel())?,
    )
}

/// `out = op(a, b)`; both operands must already be laid out with the output's
/// shape (use [`StridedLayout::broadcast_to`]).
pub fn binary_kernel(
    device: &Device,
    op: BinaryOp,
    out: &Buffer,
    out_offset: usize,
    a: Operand<'_>,
    b: Operand<'_>,
) -> Result<Kernel> {
    scaled_binary_kernel(device, op, 1.0, out, out_offset, a, b)
}

/// `out = scale · op(a, b)`: a constant factor folded into the op's pass.
pub fn scaled_binary_kernel(
    device: &Device,
    op: BinaryOp,
    scale: f32,
    out: &Buffer,
    out_offset: usize,
    a: Operand<'_>,
    b: Operand<'_>,
) -> Result<Kernel> {
    let shape = a.layout.shape.clone();
    if b.layout.shape != shape {
        return Err(crate::error::shape_error(
            "binary",
            format!(
                "operands laid out as {:?} and {:?}; broadcast them first",
                shape, b.layout.shape
            ),
        ));
    }
    check_fits("binary", "a", a.buffer, &a.layout)?;
    check_fits("binary", "b", b.buffer, &b.layout)?;
    let n: usize = shape.iter().product();
    let words = meta("binary", out_offset, &shape, scale, &[&a.layout, &b.layout])?;
    if words[3] == FLAT_A | FLAT_B | FLAT_OUT {
        if let Some(k) = vec4_kernel(
            device,
            "binary",
            op.code(),
            scale,
            words[0] as usize,
            (out, out_offset),
            &[(a.buffer, a.layout.offset), (b.buffer, b.layout.offset)],
        ) {
            return k;
        }
    }
    device.kernel(
        ShaderId::Elementwise,
        if words[3] == FLAT_A | FLAT_B | FLAT_OUT {
            "binary_flat"
        } else {
            "binary"
        },
        &[("OP", op.code() as f64), ("WG", WG as f64)],
        &[
            KernelBinding {
                binding: 0,
                buffer: out,
            },
            KernelBinding {
                binding: 1,
                buffer: a.buffer,
            },
            KernelBinding {
                binding: 2,
                buffer: b.buffer,
            },
        ],
        4,
        &words,
        grid(device, n)?,
    )
}

/// `out = cond != 0 ? a : b`, all three laid out with the output's shape.
pub fn select_kernel(
    device: &Device,
    out: &Buffer,
    out_offset: usize,
    cond: Operand<'_>,
    a: Operand<'_>,
    b: Operand<'_>,
) -> Result<Kernel> {
    let shape = a.layout.shape.clone();
    if b.layout.shape != shape || cond.layout.shape != shape {
        return Err(crate::error::shape_error(
            "select",
            format!(
                "operands laid out as {:?}, {:?}, {:?}; broadcast them first",
                cond.layout.shape, shape, b.layout.shape
            ),
        ));
    }
    let n: usize = shape.iter().product();
    let words = meta(
        "select",
        out_offset,
        &shape,
        0.0,
        &[&a.layout, &b.layout, &cond.layout],
    )?;
    device.kernel(
        ShaderId::Elementwise,
        "select_where",
        &[("WG", WG as f64)],
        &[
            KernelBinding {
                binding: 0,
                buffer: out,
            },
            KernelBinding {
                binding: 1,
                buffer: a.buffer,
            },
            KernelBinding {
                binding: 2,
                buffer: b.buffer,
            },
            KernelBinding {
                binding: 3,
                buffer: cond.buffer,
            },
        ],
        4,
        &words,
        grid(device, n)?,
    )
}

/// Writes `value` to `n` elements of `out` from `out_offset`.
pub fn fill_kernel(
    device: &Device,
    out: &Buffer,
    out_offset: usize,
    n: usize,
    value: f32,
) -> Result<Kernel> {
    let words = meta("fill", out_offset, &[n], value, &[])?;
    device.kernel(
        ShaderId::Elementwise,
        "fill",
        &[("WG", WG as f64)],
        &[KernelBinding {
            binding: 0,
            buffer: out,
        }],
        4,
        &words,
        grid(device, n)?,
    )
}
