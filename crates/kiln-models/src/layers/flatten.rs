//! Flatten: every axis after the batch axis collapsed into one.

use kiln_graph::Var;

use crate::error::Result;
use crate::module::Module;

/// `[N, d1, d2, …] → [N, d1·d2·…]` (PyTorch's `nn.Flatten()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.flatten(1)?)
    }
}
