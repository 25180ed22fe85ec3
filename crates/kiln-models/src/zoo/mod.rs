//! The tutorial's models, built exactly as it builds them, with PyTorch's
//! (or Keras') parameter names so their weights load from either.

mod resnet;
mod simple_cnn;

pub use resnet::{Block, ResNet, ResNetFeatures, Residual};
pub use simple_cnn::SimpleCnn;
