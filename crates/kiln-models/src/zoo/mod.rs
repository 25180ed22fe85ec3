//! The tutorial's models, built exactly as it builds them, with PyTorch's
//! (or Keras') parameter names so their weights load from either.

mod simple_cnn;

pub use simple_cnn::SimpleCnn;
