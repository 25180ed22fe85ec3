//! kiln: deep-learning training on any GPU through WGSL compute shaders.
//!
//! Start with `use kiln::prelude::*;`: a Keras-style model in a few lines,
//! trained on whatever adapter is present (a GPU, else Mesa's software
//! lavapipe, `apt-get install -y libvulkan1 mesa-vulkan-drivers`).
//!
//! ```
//! use kiln::prelude::*;
//! # fn main() -> anyhow::Result<()> {
//! let device = Device::auto()?;
//! // 64 rows of 4 features; the target says whether the first is positive.
//! let x: Vec<f32> = (0..256).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
//! let y: Vec<f32> = x.chunks(4).map(|row| (row[0] > 0.0) as u8 as f32).collect();
//! let data = Dataset::new(x, y, 4, 1)?;
//! let mut model = Sequential::new(&device, 4)
//!     .seed(42)
//!     .dense(16, Activation::Relu)
//!     .dense(1, Activation::Sigmoid);
//! model.compile(Optimizer::adam(1e-2), Loss::BinaryCrossEntropy, &[Metric::BinaryAccuracy])?;
//! let fit = Fit::epochs(20).batch_size(16).verbosity(Verbosity::Silent);
//! let history = model.fit(&data, fit)?;
//! let loss = history.series("loss");
//! assert!(loss[19] < loss[0]);
//! println!("{}", model.evaluate(&data, 32)?); // loss: … - accuracy: …
//! let p = model.predict(&data, 32)?; // [64, 1] probabilities
//! assert_eq!(p.shape(), &[64, 1]);
//! # Ok(()) }
//! ```
//!
//! Write your own model as a [`Module`](models::Module) (PyTorch's way) and
//! train it with [`Model`](models::Model)'s `compile`/`fit`, or write the
//! loop by hand with [`TrainStep`](models::TrainStep). The tutorial's four
//! models are the repository's examples (`cargo run --release --example
//! mlp`, `cnn`, `resnet_transfer`, `lstm_forecast`).
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
