//! PyTorch's `nn.Linear`: `y = x·Wᵀ + b`, W `[out, in]`.

use kiln_backend::Device;
use kiln_graph::{Param, Var};

use crate::error::{ModelError, Result};
use crate::init::uniform;
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// A fully connected layer with PyTorch's layout, names (`weight`, `bias`)
/// and initialisation (both uniform in ±1/√in).
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    /// `in_features → out_features` with a bias, initialised from the
    /// generator (see [`crate::manual_seed`]).
    pub fn new(device: &Device, in_features: usize, out_features: usize) -> Result<Self> {
        Self::with_bias(device, in_features, out_features, true)
    }

    /// Like [`Linear::new`]; `bias` false leaves the bias out.
    pub fn with_bias(
        device: &Device,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(ModelError::Settings(format!(
                "Linear({in_features} → {out_features}) needs at least one input and one output"
            )));
        }
        let bound = 1.0 / (in_features as f64).sqrt();
        let weight = Param::new(
            device,
            "weight",
            &uniform(in_features * out_features, bound, next_seed()),
            &[out_features, in_features],
        )?;
        let bias = if bias {
            Some(Param::new(
                device,
                "bias",
                &uniform(out_features, bound, next_seed()),
                &[out_features],
            )?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Var) -> Result<Var> {
        let tape = x.tape();
        let w = tape.param(&self.weight);
        let y = x.matmul_t(&w, false, true)?;
        match &self.bias {
            Some(b) => Ok((&y + &tape.param(b))?),
            None => Ok(y),
        }
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.param("weight", &self.weight);
        if let Some(b) = &self.bias {
            v.param("bias", b);
        }
    }
}
