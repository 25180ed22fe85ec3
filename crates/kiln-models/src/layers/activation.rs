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
    /// `x · sigmoid(x)`: Keras' `silu` (`swish`), PyTorch's `nn.SiLU`.
    Silu,
    /// Softmax over the last axis.
    Softmax,
}

impl Activation {
    /// The elementwise op this activation is (`None` for softmax, which is
    /// not elementwise).
    pub fn unary(self) -> Option<kiln_graph::UnaryOp> {
        use kiln_graph::UnaryOp;
        match self {
            Activation::None => Some(UnaryOp::Identity),
            Activation::Relu => Some(UnaryOp::Relu),
            Activation::Sigmoid => Some(UnaryOp::Sigmoid),
            Activation::Tanh => Some(UnaryOp::Tanh),
            Activation::HardSigmoid => Some(UnaryOp::HardSigmoid),
            Activation::Silu => Some(UnaryOp::Silu),
            Activation::Softmax => None,
        }
    }

    /// The activation applied to `x`.
    pub fn apply(self, x: &Var) -> Result<Var> {
        Ok(match self {
            Activation::None => x.clone(),
            Activation::Relu => x.relu()?,
            Activation::Sigmoid => x.sigmoid()?,
            Activation::Tanh => x.tanh()?,
            Activation::HardSigmoid => x.hard_sigmoid()?,
            Activation::Silu => x.silu()?,
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
