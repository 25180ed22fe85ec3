//! kiln-backend: wgpu device selection, pooled buffers, a pipeline cache and the
//! launchers of kiln's WGSL kernels.
//!
//! Everything GPU-specific lives here; the graph above sees devices, buffers,
//! tensors and [`Kernel`]s, never a raw wgpu type.
//!
//! ```no_run
//! use kiln_backend::{Device, Tensor, BinaryOp};
//! let device = Device::auto()?;
//! let a = Tensor::from_f32(&device, &[1.0, 2.0, 3.0], &[3])?;
//! let b = Tensor::from_f32(&device, &[10.0], &[1])?;
//! let c = device.binary(BinaryOp::Add, &a, &b)?;
//! assert_eq!(c.to_vec_f32()?, vec![11.0, 12.0, 13.0]);
//! # Ok::<(), kiln_backend::BackendError>(())
//! ```

pub mod codegen;
mod device;
mod eager;
pub use eager::{reduced_shape, MatmulOptions};
mod error;
#[cfg(test)]
mod faults;
mod kernel;
mod layout;
pub mod ops;
mod pipeline;
mod pool;
mod profile;
mod runtime_dir;
pub mod shaders;
mod tensor;

pub use device::{
    default_max_in_flight, list_adapters, AdapterSummary, Device, DeviceKind, DEFAULT_MAX_IN_FLIGHT,
};
pub use error::{BackendError, Result};
pub use kernel::{Kernel, KernelBinding};
pub use layout::{broadcast_shapes, contiguous_strides, StridedLayout};
pub use ops::elementwise::{BinaryOp, UnaryOp};
pub use ops::matmul::MatmulVariant;
pub use ops::reduce::ReduceOp;
pub use pool::{Buffer, PoolCounters};
pub use profile::{KernelProfile, KernelStrategy, StrategySource, KERNELS_ENV, MAX_LOOP_TRIPS};
pub use tensor::{DType, Tensor};
