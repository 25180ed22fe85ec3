//! Activations, as a setting of dense layers and as layers of their own.

use kiln_graph::Var;

use crate::error::Result;
use crate::module::Module;

/// An elementwise activation (or softmax over the last axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Sigmoid,
    Tanh,
    /// Keras' `hard_sigmoid`: `clip(x/6 + 1/2, 0, 1)`.
    HardSigmoid,
    /// Softmax over the last axis.
    Softmax,
}

impl Activation {
    /// The activation applied to `x`.
    pub fn apply(self, x: &Var) -> Result<Var> {
        Ok(match self {
            Activation::None => x.clone(),
            Activation::Relu => x.relu()?,
            Activation::Sigmoid => x.sigmoid()?,
            Activation::Tanh => x.tanh()?,
            Activation::HardSigmoid => x.hard_sigmoid()?,
            Activation::Softmax => x.softmax(-1)?,
        })
    }
}

impl Module for Activation {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.apply(x)
    }

    fn kind(&self) -> String {
        format!("{self:?}")
    }
}
