//! Softmax and log-softmax along one axis.

use crate::error::{shape_error, Result};
use crate::kernel::{Kernel, KernelBinding};
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// Softmax (or log-softmax when `log`) of the contiguous tensor of `shape` in
/// `x` along `axis`, written contiguously to `out`.
pub fn softmax_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    shape: &[usize],
    axis: usize,
    log: bool,
) -> Result<Kernel> {
    if axis >= shape.len() {
        return Err(shape_error(
            "softmax",
            format!("axis {axis} out of range for shape {shape:?}"),
        ));
    }
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let rows: usize = shape.iter().product::<usize>() / len.max(1);
    if len == 0 || rows == 0 {
        return Err(crate::BackendError::Empty {
            op: "softmax".into(),
            shape: shape.to_vec(),
        });
    }
    device.kernel(
        ShaderId::Softmax,
        "main",
        &[("LOG", if log { 1.0 } else { 0.0 }), ("WG", WG as f64)],
        &[
            KernelBinding {
                binding: 0,
                buffer: out,
            },
            KernelBinding {
                binding: 1,
                buffer: x,
            },
        ],
        2,
        &[rows as u32, len as u32, inner as u32, 0, 0],
        device.linear_grid(rows as u64)?,
    )
}
