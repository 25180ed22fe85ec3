//! kiln-models: the model layer. A [`Module`] trait (PyTorch's `nn.Module`:
//! a forward pass over [`Var`](kiln_graph::Var)s and named parameters),
//! layers with PyTorch's and Keras' names, a [`Model`] wrapper with Keras'
//! `compile`/`fit`/`evaluate`/`predict` for any module, the Keras-style
//! [`Sequential`] builder, losses, metrics, optimizers, callbacks and
//! checkpoints. Losses and optimizer steps are graph ops, so they
//! differentiate, compile and run like any graph.

pub mod callbacks;
pub mod checkpoint;
mod error;
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
    Flatten, Linear, Lstm, LstmWeights, MaxPool2d, Naming, Size2d, Stack, WindowOptions,
};
pub use losses::{Loss, Reduction};
pub use lr_callbacks::{LearningRateScheduler, ReduceLrOnPlateau};
pub use metrics::{Average, Metric};
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
