//! What a reduction computes, and argmax over a set of axes. (Sums, means
//! and extrema are generated kernels: see `codegen::ReduceKernel`.)

use crate::codegen::Operand;
use crate::error::{shape_error, Result};
use crate::kernel::{Kernel, KernelBinding};
use crate::layout::{check_rank, padded, StridedLayout};
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// What a reduction computes.
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

/// Index of the first maximum over `axes` (row-major over the reduced axes),
/// written as i32 to `out`.
pub fn argmax_kernel(
    device: &Device,
    out: &Buffer,
    out_offset: usize,
    x: Operand,
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
                buffer: &x.buffer,
            },
        ],
        2,
        &words,
        device.linear_grid(n_out as u64)?,
    )
}
