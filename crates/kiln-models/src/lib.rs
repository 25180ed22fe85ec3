//! kiln-models: losses and optimizer steps written in graph ops (so they
//! differentiate, compile and run like any graph), and, with the next issues,
//! layers, the four models, the fit loop, callbacks and checkpoints.

pub mod losses;
pub mod optim;

pub use losses::Reduction;
