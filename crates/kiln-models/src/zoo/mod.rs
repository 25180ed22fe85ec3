//! The tutorial's models, built exactly as it builds them, with PyTorch's
//! (or Keras') parameter names so their weights load from either.

mod resnet;
mod simple_cnn;
mod tutorial_mlp;

pub use resnet::{Block, ResNet, ResNetFeatures, Residual};
pub use simple_cnn::SimpleCnn;
pub use tutorial_mlp::{tutorial_mlp, TUTORIAL_DROPOUT};
