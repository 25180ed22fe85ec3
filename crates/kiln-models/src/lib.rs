//! kiln-models: the model layer. A [`Module`] trait (PyTorch's `nn.Module`:
//! a forward pass over [`Var`](kiln_graph::Var)s and named parameters),
//! layers with PyTorch's and Keras' names, a [`Model`] wrapper with Keras'
//! `compile`/`fit`/`evaluate`/`predict` for any module, the Keras-style
//! [`Sequential`] builder, losses, metrics, optimizers, callbacks and
//! checkpoints. Losses and optimizer steps are graph ops, so they
//! differentiate, compile and run like any graph. (The `kiln` crate
//! re-exports all of it: `use kiln::prelude::*;`.)
//!
//! A custom module trained with `fit`:
//!
//! ```
//! use kiln_graph::Var;
//! use kiln_models::{Fit, Linear, Loss, Metric, Model, Module, Optimizer, Result, Verbosity, Visitor};
//! # fn main() -> anyhow::Result<()> {
//! struct Net {
//!     hidden: Linear,
//!     out: Linear,
//! }
//! impl Module for Net {
//!     fn forward(&self, x: &Var) -> Result<Var> {
//!         let h = self.hidden.forward(x)?.relu()?;
//!         Ok(self.out.forward(&h)?.sigmoid()?)
//!     }
//!     fn visit(&self, v: &mut dyn Visitor) {
//!         v.module("hidden", &self.hidden);
//!         v.module("out", &self.out);
//!     }
//! }
//! let device = kiln_backend::Device::auto()?;
//! kiln_models::manual_seed(7);
//! let net = Net { hidden: Linear::new(&device, 2, 8)?, out: Linear::new(&device, 8, 1)? };
//! let mut model = Model::new(&device, net, [2]);
//! model.compile(Optimizer::adam(0.05), Loss::BinaryCrossEntropy, &[Metric::BinaryAccuracy])?;
//! // Is x0 + x1 positive?
//! let x: Vec<f32> = (0..128).map(|i| ((i * 29 % 23) as f32 - 11.0) / 11.0).collect();
//! let y: Vec<f32> = x.chunks(2).map(|r| (r[0] + r[1] > 0.0) as u8 as f32).collect();
//! let data = kiln_data::Dataset::new(x, y, 2, 1)?;
//! let history = model.fit(&data, Fit::epochs(30).batch_size(16).verbosity(Verbosity::Silent))?;
//! assert!(history.series("accuracy")[29] > 0.8, "{:?}", history.series("accuracy"));
//! print!("{}", model.summary()?); // hidden (Linear) 24, out (Linear) 9, …
//! # Ok(()) }
//! ```

pub mod callbacks;
pub mod checkpoint;
mod error;
mod feature_cache;
mod fit;
mod history;
mod init;
mod layers;
pub mod losses;
mod lr_callbacks;
mod metrics;
mod model;
mod module;
mod optimizer;
mod optimizer_state;
mod output_path;
mod plot;
mod pth;
mod rng;
mod schedule;
mod sequential;
mod state_dict;
mod step;
mod tensorboard;
mod trainable;
mod zoo;

pub use callbacks::{
    BatchLogs, Callback, Control, CsvLogger, EarlyStopping, ModelCheckpoint, TerminateOnNaN,
};
pub use error::{ModelError, Result};
pub use fit::{Fit, Validation, Verbosity};
pub use history::{EpochLogs, History};
pub use init::Init;
pub use layers::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Dense, Dropout,
    Flatten, Gru, GruWeights, Linear, Lstm, LstmWeights, MaxPool2d, Naming, SimpleRnn,
    SimpleRnnWeights, Size2d, Stack, WindowOptions,
};
pub use losses::{Loss, Reduction};
pub use lr_callbacks::{LearningRateScheduler, ReduceLrOnPlateau};
pub use metrics::{Average, Metric, AUC_BINS};
pub use model::{IntoShape, Logs, Model, NamedTensors, Samples};
pub use module::{walk, Entry, Module, ModuleExt, Visitor};
pub use optimizer::{EpsilonConvention, Optimizer};
pub use output_path::check_writable;
pub use rng::{manual_seed, next_seed};
pub use schedule::{Every, LrSchedule};
pub use sequential::Sequential;
pub use state_dict::StateDict;
pub use step::{Optim, TrainStep};
pub use tensorboard::{EventWriter, TensorBoard};
pub use trainable::{ShapedTensors, Trainable, TrainingState};
pub use zoo::{tutorial_mlp, Block, ResNet, ResNetFeatures, Residual, SimpleCnn, TUTORIAL_DROPOUT};
