//! Layers: each a [`Module`](crate::Module) with PyTorch's (or, for the
//! Keras-style builder's, Keras') parameter names and initialisation.

mod activation;
mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod gate_blocks;
mod gru;
mod gru_layouts;
mod linear;
mod lstm;
mod lstm_layouts;
mod pool;
mod recurrent;
mod simple_rnn;
mod stack;

pub use activation::Activation;
pub use batch_norm::{BatchNorm, BatchNormConfig, Naming};
pub use conv2d::{Conv2d, Size2d, WindowOptions};
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use gru::Gru;
pub use gru_layouts::GruWeights;
pub use linear::Linear;
pub use lstm::Lstm;
pub use lstm_layouts::LstmWeights;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use simple_rnn::{SimpleRnn, SimpleRnnWeights};
pub use stack::Stack;
