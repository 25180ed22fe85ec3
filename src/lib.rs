//! kiln: deep-learning training on any GPU through WGSL compute shaders.
//!
//! This facade re-exports the workspace crates: [`backend`] (devices, buffers,
//! kernels), [`graph`] (graph IR, autodiff, compiled plans), [`data`] and
//! [`models`].

pub use kiln_backend as backend;
pub use kiln_data as data;
pub use kiln_graph as graph;
pub use kiln_models as models;

pub use kiln_backend::{Device, Tensor};
pub mod conform;
