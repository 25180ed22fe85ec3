//! Kernel launchers. Each builds a [`crate::Kernel`] from buffers and layouts;
//! the eager tensor API and the graph's compiled plans both go through them.

pub mod batchnorm;
pub mod elementwise;
pub mod matmul;
pub mod optim;
pub mod random;
pub mod reduce;
pub mod softmax;

/// Invocations per workgroup of the one-dimensional kernels.
pub(crate) const WG: u32 = 64;
