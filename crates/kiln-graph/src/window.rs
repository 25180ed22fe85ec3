//! The window of a 2-D convolution or pooling: which input taps one output
//! reads. Its own file because both the graph's ops and the convolution
//! builders name it.

use crate::error::{shape_err, Result};

/// Where a 2-D window (a convolution's kernel, a pooling window) reads:
/// `kernel` taps `dilation` apart, placed every `stride`, over the input
/// padded by `pad` (top, left, bottom, right).
///
/// ```
/// # use kiln_graph::Window2d;
/// // PyTorch's nn.MaxPool2d(3, stride=2, padding=1)
/// let w = Window2d::new([3, 3]).stride([2, 2]).padding([1, 1]);
/// assert_eq!(w.pad, [1, 1, 1, 1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub dilation: [usize; 2],
}

impl Window2d {
    /// A window of `kernel` taps, stride 1, no padding, no dilation.
    pub fn new(kernel: [usize; 2]) -> Self {
        Self {
            kernel,
            stride: [1, 1],
            pad: [0; 4],
            dilation: [1, 1],
        }
    }

    pub fn stride(self, stride: [usize; 2]) -> Self {
        Self { stride, ..self }
    }

    /// The same padding on both sides of each axis (height, width).
    pub fn padding(self, [h, w]: [usize; 2]) -> Self {
        Self {
            pad: [h, w, h, w],
            ..self
        }
    }

    /// Padding per side: top, left, bottom, right.
    pub fn pads(self, pad: [usize; 4]) -> Self {
        Self { pad, ..self }
    }

    pub fn dilation(self, dilation: [usize; 2]) -> Self {
        Self { dilation, ..self }
    }

    pub(crate) fn check(&self, op: &str) -> Result<()> {
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(shape_err(
                op,
                format!(
                    "kernel {:?}, stride {:?} and dilation {:?} must all be positive",
                    self.kernel, self.stride, self.dilation
                ),
            ));
        }
        Ok(())
    }
}
