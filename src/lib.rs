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
pub mod fuzz;
pub mod infer;

/// What a model script needs, in one import: `use kiln::prelude::*;`.
pub mod prelude {
    pub use kiln_backend::Device;
    pub use kiln_data::{Array, CsvDataset, Dataset, Standardizer};
    pub use kiln_graph::{Tape, Var, Window2d};
    pub use kiln_models::{
        manual_seed, tutorial_mlp, Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm,
        BatchNormConfig, Conv2d, CsvLogger, Dense, Dropout, EarlyStopping, Every, Fit, Flatten,
        History, Init, LearningRateScheduler, Linear, Loss, LrSchedule, MaxPool2d, Metric, Model,
        ModelCheckpoint, Module, ModuleExt, Optimizer, ReduceLrOnPlateau, ResNet, Samples,
        Sequential, SimpleCnn, Stack, TensorBoard, TerminateOnNaN, Trainable, Verbosity, Visitor,
        WindowOptions, TUTORIAL_DROPOUT,
    };
}

/// The adapter a `--device` flag names: `gpu`, `software`, part of an
/// adapter's name, or `None` for [`Device::auto`] (which reads `KILN_DEVICE`).
pub fn device_from_flag(flag: Option<&str>) -> Result<Device, backend::BackendError> {
    match flag {
        None => Device::auto(),
        Some("gpu") => Device::gpu(),
        Some("software") => Device::software(),
        Some(name) => Device::matching(name),
    }
}
