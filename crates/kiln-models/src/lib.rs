//! kiln-models: layers, a Keras-style `Sequential` model, losses, metrics,
//! optimizers, the fit loop, callbacks and checkpoints. Losses and optimizer
//! steps are graph ops, so they differentiate, compile and run like any graph.

pub mod callbacks;
pub mod checkpoint;
mod error;
mod fit;
mod history;
mod init;
mod layer;
pub mod losses;
mod metrics;
pub mod optim;
mod optimizer;
mod plot;
mod sequential;

pub use callbacks::{Callback, Control, CsvLogger, EarlyStopping, ModelCheckpoint, TerminateOnNaN};
pub use error::{ModelError, Result};
pub use fit::{Fit, Validation, Verbosity};
pub use history::{EpochLogs, History};
pub use init::Init;
pub use layer::{BatchNormConfig, Layer, Mode};
pub use losses::{Loss, Reduction};
pub use metrics::Metric;
pub use optimizer::{EpsilonConvention, LrSchedule, Optimizer};
pub use sequential::{Logs, NamedTensors, Sequential};
