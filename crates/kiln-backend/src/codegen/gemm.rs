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
//! [`Program`]: super::Program

use crate::error::{invalid, Result};
use crate::kernel::Generated;
use crate::ops::matmul::MatmulVariant;
use crate::{Buffer, KernelProfile};

use super::description::{Epilogue, Render, Rendered};

mod source;
use source::generate;

/// A stored matrix operand: element `(row, col)` of batch `b` of what is
/// stored is at `offset + b·batch_stride + row·row_stride + col`; with
/// `transposed` the product reads its transpose.
#[derive(Clone, Debug)]
pub struct GemmLoad {
    pub buffer: Buffer,
    pub offset: usize,
    pub row_stride: usize,
    pub batch_stride: usize,
    pub transposed: bool,
}

/// A batched product `op(A)·op(B)` of `M×K` and `K×N` matrices.
#[derive(Clone, Debug)]
pub struct GemmSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// The epilogue's iteration space: `[batch axes…, M, N]`.
    pub shape: Vec<usize>,
    pub a: GemmLoad,
    pub b: GemmLoad,
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

fn choose(profile: &KernelProfile, spec: &GemmSpec) -> Result<Shape> {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let aligned = |l: &GemmLoad| {
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

/// A GEMM kernel: the product of `spec` with `epilogue` applied to each
/// of its elements (see the module docs).
#[derive(Clone, Debug)]
pub struct GemmKernel {
    pub label: String,
    pub spec: GemmSpec,
    pub epilogue: Epilogue,
}

impl GemmKernel {
    /// The generated module, shaped for `profile`.
    pub(crate) fn generated(&self, profile: &KernelProfile) -> Result<Generated> {
        generate(profile, self)
    }
}

impl Render for GemmKernel {
    fn render(&self, profile: &KernelProfile) -> Result<Rendered<'_>> {
        Ok(Rendered::Generated(self.generated(profile)?))
    }
}

fn check_load(name: &str, l: &GemmLoad, batch: usize, rows: usize, cols: usize) -> Result<()> {
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
