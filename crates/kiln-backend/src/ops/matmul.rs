//! Batched matmul with transposes through strides and a fused bias +
//! activation epilogue, in two variants: register-blocked (software adapters)
//! and workgroup-memory tiled (hardware GPUs).

use crate::error::{invalid, Result};
use crate::kernel::{Kernel, KernelBinding};
use crate::shaders::ShaderId;
use crate::{Buffer, Device, DeviceKind};

/// The activation fused into the matmul epilogue. Codes match `matmul_common.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Sigmoid,
    Tanh,
}

/// Software adapters take the small-product kernel for outputs this narrow
/// (a dense layer with one or a few units), where the 8×8-blocked kernel
/// would leave most of its block empty; for wider outputs its extra loads per
/// output make it slower on lavapipe (measured 2–4× at 64×128).
const SMALL_MAX_N: usize = 4;

/// Which matmul kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulVariant {
    /// On software adapters: `Small` for small outputs, else register-blocked
    /// (vec4 loads when the operands allow); tiled on hardware GPUs.
    #[default]
    Auto,
    /// One invocation per 1×4 strip of C, scalar loads: for small outputs.
    Small,
    /// 8×8 outputs per invocation in registers, scalar loads, no workgroup memory.
    Blocked,
    /// Like `Blocked` with vec4 loads along each operand's contiguous axis:
    /// needs 4-aligned strides and offsets, and K and N (A·B), K (A·Bᵀ) or M
    /// and N (Aᵀ·B) multiples of 4. Aᵀ·Bᵀ has no vec4 kernel.
    Vec4,
    /// 64×64 blocks staged through workgroup memory.
    Tiled,
}

/// One matrix operand: where its batch starts and how rows and batches are
/// spaced, in elements. `row_stride` is the stride of the stored matrix's rows
/// (for a transposed operand, the rows of what is stored, not of op(X)).
#[derive(Clone, Debug)]
pub struct MatmulOperand<'a> {
    pub buffer: &'a Buffer,
    pub offset: usize,
    pub row_stride: usize,
    pub batch_stride: usize,
}

/// A bias read through row and column strides (0 broadcasts).
#[derive(Clone, Debug)]
pub struct MatmulBias<'a> {
    pub buffer: &'a Buffer,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub batch_stride: usize,
}

/// `C[b] = act(alpha · op(A[b]) · op(B[b]) + beta · bias)` for b in 0..batch,
/// with op(A) M×K, op(B) K×N and C M×N (row stride `c.row_stride`).
#[derive(Clone, Debug)]
pub struct MatmulSpec<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub a: MatmulOperand<'a>,
    pub b: MatmulOperand<'a>,
    pub c: MatmulOperand<'a>,
    pub trans_a: bool,
    pub trans_b: bool,
    pub bias: Option<MatmulBias<'a>>,
    pub alpha: f32,
    pub beta: f32,
    pub activation: Activation,
    pub variant: MatmulVariant,
}

fn last_element(op: &MatmulOperand<'_>, batch: usize, rows: usize, cols: usize) -> u64 {
    (op.offset + (batch - 1) * op.batch_stride + (rows - 1) * op.row_stride + cols) as u64
}

/// The vec4 kernel that can read `spec`'s operands, if any: each reads both
/// operands four elements at a time along their contiguous axis, so those
/// axes, the row strides, offsets and batch strides must be multiples of 4.
fn vec4_shader(spec: &MatmulSpec<'_>) -> Option<ShaderId> {
    let aligned = |op: &MatmulOperand<'_>| {
        op.offset.is_multiple_of(4)
            && op.row_stride.is_multiple_of(4)
            && op.batch_stride.is_multiple_of(4)
    };
    if !aligned(&spec.a) || !aligned(&spec.b) {
        return None;
    }
    let (m4, n4, k4) = (
        spec.m.is_multiple_of(4),
        spec.n.is_multiple_of(4),
        spec.k.is_multiple_of(4),
    );
    match (spec.trans_a, spec.trans_b) {
        (false, false) if k4 && n4 => Some(ShaderId::MatmulVec4),
        (false, true) if k4 => Some(ShaderId::MatmulVec4Nt),
        (true, false) if m4 && n4 => Some(ShaderId::MatmulVec4Tn),
        _ => None,
    }
}

/// Dropout applied to a matmul's result in its epilogue: element i of C
/// (flat, C contiguous) is kept with the mask of `random::dropout_kernel` for
/// the same seed, rate and step.
#[derive(Clone, Copy, Debug)]
pub struct MatmulDropout<'a> {
    pub step: &'a Buffer,
    pub seed: u64,
    pub rate: f32,
}

/// Builds the matmul kernel for `spec`.
pub fn matmul_kernel(device: &Device, spec: &MatmulSpec<'_>) -> Result<Kernel> {
    matmul_dropout_kernel(device, spec, None)
}

/// [`matmul_kernel`] with dropout of the result in the same pass (C must be
/// contiguous: the mask is indexed by C's flat element index).
pub fn matmul_dropout_kernel(
    device: &Device,
    spec: &MatmulSpec<'_>,
    dropout: Option<MatmulDropout<'_>>,
) -> Result<Kernel> {
    let MatmulSpec { m, n, k, batch, .. } = *spec;
    if m == 0 || n == 0 || k == 0 || batch == 0 {
        return Err(crate::BackendError::Empty {
            op: "matmul".into(),
            shape: vec![batch, m, k, n],
        });
    }
    let (a_rows, a_cols) = if spec.trans_a { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if spec.trans_b { (n, k) } else { (k, n) };
    for (name, op, rows, cols) in [
        ("A", &spec.a, a_rows, a_cols),
        ("B", &spec.b, b_rows, b_cols),
        ("C", &spec.c, m, n),
    ] {
        if op.row_stride < cols {
            return Err(invalid(
                "matmul",
                format!(
                    "{name}: row stride {} is below its {cols} columns",
                    op.row_stride
                ),
            ));
        }
        let need = last_element(op, batch, rows, cols) * 4;
        if need > op.buffer.size() {
            return Err(invalid(
                "matmul",
                format!(
                    "{name} reaches byte {need} of a {}-byte buffer",
                    op.buffer.size()
                ),
            ));
        }
    }
    // Small outputs spread over 1×4 strips (see matmul_small.wgsl).
    let strips = m as u64 * n.div_ceil(4) as u64;
    let small = n <= SMALL_MAX_N && strips.div_ceil(64) <= device.max_workgroups() as u64;
    let shader = match (spec.variant, vec4_shader(spec)) {
        (MatmulVariant::Small, _) if strips.div_ceil(64) <= device.max_workgroups() as u64 => {
            ShaderId::MatmulSmall
        }
        (MatmulVariant::Small, _) => {
            return Err(invalid(
                "matmul",
                format!("{m}×{n} is too large for the small-product kernel"),
            ))
        }
        (MatmulVariant::Auto, _) if small && device.kind() == DeviceKind::Software => {
            ShaderId::MatmulSmall
        }
        (MatmulVariant::Auto, _) if device.kind() != DeviceKind::Software => ShaderId::MatmulTiled,
        (MatmulVariant::Auto | MatmulVariant::Vec4, Some(vec4)) => vec4,
        (MatmulVariant::Vec4, None) => {
            return Err(invalid(
                "matmul",
                "the vec4 variant needs 4-aligned strides and offsets, with K and N (A·B), K (A·Bᵀ) \
                 or M and N (Aᵀ·B) multiples of 4; Aᵀ·Bᵀ has none",
            ));
        }
        (MatmulVariant::Tiled, _) => ShaderId::MatmulTiled,
        _ => ShaderId::MatmulBlocked,
    };
    // The small kernel covers 64 strips of 1×4 per workgroup; the others a
    // 64×64 block of C.
    let grid = if shader == ShaderId::MatmulSmall {
        [strips.div_ceil(64) as u32, 1, batch as u32]
    } else {
        [n.div_ceil(64) as u32, m.div_ceil(64) as u32, batch as u32]
    };
    let bias = spec.bias.as_ref();
    let bias_buffer = bias.map(|b| b.buffer).unwrap_or(spec.a.buffer);
    let words: Vec<u32> = vec![
        m as u32,
        n as u32,
        k as u32,
        batch as u32,
        spec.a.offset as u32,
        spec.a.batch_stride as u32,
        spec.a.row_stride as u32,
        spec.b.offset as u32,
        spec.b.batch_stride as u32,
        spec.b.row_stride as u32,
        spec.c.offset as u32,
        spec.c.batch_stride as u32,
        spec.c.row_stride as u32,
        bias.map_or(0, |b| b.offset as u32),
        bias.is_some() as u32,
        bias.map_or(0, |b| b.row_stride as u32),
        bias.map_or(0, |b| b.col_stride as u32),
        spec.alpha.to_bits(),
        spec.beta.to_bits(),
        bias.map_or(0, |b| b.batch_stride as u32),
    ];
    let mut words = words;
    if let Some(d) = dropout {
        if !(0.0..1.0).contains(&d.rate) {
            return Err(invalid(
                "matmul",
                format!("dropout rate {} must be in [0, 1)", d.rate),
            ));
        }
        if spec.c.row_stride != n || (batch > 1 && spec.c.batch_stride != m * n) {
            return Err(invalid(
                "matmul",
                "dropout in the epilogue needs a contiguous C",
            ));
        }
        let keep = 1.0 - d.rate;
        words.extend([
            d.seed as u32,
            (d.seed >> 32) as u32,
            keep.to_bits(),
            (1.0 / keep).to_bits(),
        ]);
    }
    // Without dropout the step binding is never read; any read-only buffer fills it.
    let step = dropout.map_or(bias_buffer, |d| d.step);
    device.kernel(
        shader,
        "main",
        &[
            ("TRANS_A", spec.trans_a as u8 as f64),
            ("TRANS_B", spec.trans_b as u8 as f64),
            ("ACT", spec.activation as u32 as f64),
            ("DROPOUT", dropout.is_some() as u8 as f64),
        ],
        &[
            KernelBinding {
                binding: 0,
                buffer: spec.c.buffer,
            },
            KernelBinding {
                binding: 1,
                buffer: spec.a.buffer,
            },
            KernelBinding {
                binding: 2,
                buffer: spec.b.buffer,
            },
            KernelBinding {
                binding: 3,
                buffer: bias_buffer,
            },
            KernelBinding {
                binding: 5,
                buffer: step,
            },
        ],
        4,
        &words,
        grid,
    )
}
