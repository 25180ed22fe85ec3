//! Handwritten kernel launchers and the operations they and the generated
//! kernels share: elementwise operations (with their WGSL), matmul variants,
//! optimizer steps, random numbers, softmax and argmax.

pub mod elementwise;
pub mod matmul;
pub mod optim;
pub mod random;
pub mod reduce;
pub mod softmax;

/// Invocations per workgroup of the one-dimensional kernels.
pub(crate) const WG: u32 = 64;
