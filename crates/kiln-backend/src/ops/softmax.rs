//! Softmax and log-softmax along one axis: a handwritten shader.

use crate::codegen::{HandwrittenCall, Render, Rendered};
use crate::error::{shape_error, Result};
use crate::kernel::KernelBinding;
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, KernelProfile};

/// Softmax (or log-softmax when `log`) of the contiguous tensor of `shape` in
/// `x` along `axis`, written contiguously to `out`.
#[derive(Clone, Debug)]
pub struct SoftmaxKernel {
    pub out: Buffer,
    pub x: Buffer,
    pub shape: Vec<usize>,
    pub axis: usize,
    pub log: bool,
}

impl Render for SoftmaxKernel {
    fn render(&self, _: &KernelProfile) -> Result<Rendered<'_>> {
        let (shape, axis) = (&self.shape, self.axis);
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
        Ok(Rendered::Handwritten(HandwrittenCall {
            shader: ShaderId::Softmax,
            entry: "main",
            constants: vec![("LOG", if self.log { 1.0 } else { 0.0 }), ("WG", WG as f64)],
            bindings: vec![
                KernelBinding {
                    binding: 0,
                    buffer: &self.out,
                },
                KernelBinding {
                    binding: 1,
                    buffer: &self.x,
                },
            ],
            meta_binding: 2,
            meta: vec![rows as u32, len as u32, inner as u32, 0, 0],
            workgroups: rows as u64,
        }))
    }
}
