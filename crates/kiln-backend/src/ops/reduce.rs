//! Reductions over a set of axes, and argmax.

use crate::error::{shape_error, Result};
use crate::kernel::{Kernel, KernelBinding};
use crate::layout::{check_rank, padded, StridedLayout};
use crate::ops::elementwise::Operand;
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// What a reduction computes. The codes match `reduce.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

/// A layout split into the axes a reduction keeps and those it reduces.
pub struct AxisSplit {
    pub kept_shape: Vec<usize>,
    pub kept_strides: Vec<usize>,
    pub reduced_shape: Vec<usize>,
    pub reduced_strides: Vec<usize>,
}

/// Splits `layout` into kept and reduced axes. Axes must be distinct and in range.
pub fn split_axes(op: &str, layout: &StridedLayout, axes: &[usize]) -> Result<AxisSplit> {
    let rank = layout.shape.len();
    let mut reduced = vec![false; rank];
    for &a in axes {
        if a >= rank || reduced[a] {
            return Err(shape_error(
                op,
                format!(
                    "axes {axes:?} must be distinct axes of a rank-{rank} tensor {:?}",
                    layout.shape
                ),
            ));
        }
        reduced[a] = true;
    }
    let (mut ks, mut kst, mut rs, mut rst) = (vec![], vec![], vec![], vec![]);
    for (d, &is_reduced) in reduced.iter().enumerate() {
        if is_reduced {
            rs.push(layout.shape[d]);
            rst.push(layout.strides[d]);
        } else {
            ks.push(layout.shape[d]);
            kst.push(layout.strides[d]);
        }
    }
    Ok(AxisSplit {
        kept_shape: ks,
        kept_strides: kst,
        reduced_shape: rs,
        reduced_strides: rst,
    })
}

fn reduce_meta(
    op: &str,
    x: &StridedLayout,
    axes: &[usize],
    out_offset: usize,
) -> Result<(Vec<u32>, usize)> {
    check_rank(op, &x.shape)?;
    let AxisSplit {
        kept_shape: ks,
        kept_strides: kst,
        reduced_shape: rs,
        reduced_strides: rst,
    } = split_axes(op, x, axes)?;
    let n_out: usize = ks.iter().product();
    let count: usize = rs.iter().product();
    if count == 0 || n_out == 0 {
        return Err(crate::BackendError::Empty {
            op: op.to_string(),
            shape: x.shape.clone(),
        });
    }
    let mut words = vec![
        n_out as u32,
        ks.len() as u32,
        rs.len() as u32,
        count as u32,
        x.offset as u32,
        out_offset as u32,
    ];
    words.extend(padded(&ks, 1));
    words.extend(padded(&kst, 0));
    words.extend(padded(&rs, 1));
    words.extend(padded(&rst, 0));
    Ok((words, n_out))
}

/// Reduces `x` over `axes`; the output (kept axes, row-major) goes to `out`.
pub fn reduce_kernel(
    device: &Device,
    op: ReduceOp,
    out: &Buffer,
    out_offset: usize,
    x: Operand<'_>,
    axes: &[usize],
) -> Result<Kernel> {
    let (words, n_out) = reduce_meta("reduce", &x.layout, axes, out_offset)?;
    let count = words[3] as usize;
    // Sums down the rows of a row-major matrix (bias gradients) go four columns at a time.
    let l = &x.layout;
    let row_major_2d = l.shape.len() == 2 && l.strides == [l.shape[1], 1];
    if axes == [0] && row_major_2d && matches!(op, ReduceOp::Sum | ReduceOp::Mean) {
        if let Some(k) = crate::ops::elementwise::column_sum_kernel(
            device,
            op == ReduceOp::Mean,
            (out, out_offset),
            (x.buffer, l.offset),
            l.shape[0],
            l.shape[1],
        ) {
            return k;
        }
    }
    // Few elements per output, or outputs enough to fill the device: one
    // invocation per output. Else a workgroup per output with a tree.
    let serial = count <= 1024 || n_out >= 2048;
    let grid = if serial {
        device.linear_grid((n_out as u64).div_ceil(WG as u64))?
    } else {
        device.linear_grid(n_out as u64)?
    };
    device.kernel(
        ShaderId::Reduce,
        if serial { "serial" } else { "main" },
        &[("OP", op as u32 as f64), ("WG", WG as f64)],
        &[
            KernelBinding {
                binding: 0,
                buffer: out,
            },
            KernelBinding {
                binding: 1,
                buffer: x.buffer,
            },
        ],
        2,
        &words,
        grid,
    )
}

/// Index of the first maximum over `axes` (row-major over the reduced axes),
/// written as i32 to `out`.
pub fn argmax_kernel(
    device: &Device,
    out: &Buffer,
    out_offset: usize,
    x: Operand<'_>,
    axes: &[usize],
) -> Result<Kernel> {
    let (words, n_out) = reduce_meta("argmax", &x.layout, axes, out_offset)?;
    device.kernel(
        ShaderId::Reduce,
        "argmax",
        &[("WG", WG as f64)],
        &[
            KernelBinding {
                binding: 3,
                buffer: out,
            },
            KernelBinding {
                binding: 1,
                buffer: x.buffer,
            },
        ],
        2,
        &words,
        device.linear_grid(n_out as u64)?,
    )
}
