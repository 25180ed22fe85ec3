//! Keras' `Dense`: `act(x·kernel + bias)`, kernel `[in, units]`.

use kiln_backend::Device;
use kiln_graph::{Param, Var};

use crate::error::{ModelError, Result};
use crate::init::Init;
use crate::layers::Activation;
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// A fully connected layer with Keras' layout, names (`kernel`, `bias`),
/// Glorot-uniform kernel and zero bias, and its activation.
pub struct Dense {
    pub kernel: Param,
    pub bias: Param,
    pub activation: Activation,
}

impl Dense {
    /// `in_features → units` with Keras' Glorot-uniform kernel drawn from
    /// the generator (see [`crate::manual_seed`]) and a zero bias.
    pub fn new(
        device: &Device,
        in_features: usize,
        units: usize,
        activation: Activation,
    ) -> Result<Self> {
        Self::with_init(
            device,
            in_features,
            units,
            activation,
            Init::GlorotUniform,
            next_seed(),
        )
    }

    /// `in_features → units` with the kernel drawn by `init` under `seed`.
    pub fn with_init(
        device: &Device,
        in_features: usize,
        units: usize,
        activation: Activation,
        init: Init,
        seed: u64,
    ) -> Result<Self> {
        if in_features == 0 || units == 0 {
            return Err(ModelError::Settings(format!(
                "Dense({in_features} → {units}) needs at least one input and one unit"
            )));
        }
        let (w, b) = init.values(in_features, units, seed);
        Ok(Self {
            kernel: Param::new(device, "kernel", &w, &[in_features, units])?,
            bias: Param::new(device, "bias", &b, &[units])?,
            activation,
        })
    }
}

impl Module for Dense {
    fn forward(&self, x: &Var) -> Result<Var> {
        let tape = x.tape();
        let y = x.matmul(&tape.param(&self.kernel))?;
        let y = (&y + &tape.param(&self.bias))?;
        self.activation.apply(&y)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.param("kernel", &self.kernel);
        v.param("bias", &self.bias);
    }
}
