//! The GRU layer over `[batch, timesteps, features]`, with Keras' or
//! PyTorch's weights (names, layout and initialisation); the cell is
//! `kiln_graph`'s unrolled GRU (`Graph::gru`), whose gate blocks are in
//! Keras' order.

use kiln_backend::Device;
use kiln_graph::{GruOptions, Param, RecurrentWeights, Var};

use crate::error::{ModelError, Result};
use crate::init::{orthogonal, Init};
use crate::layers::{recurrent, Activation, GruWeights, Naming};
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// A GRU layer. Keras' (`Gru::keras`): `gru_cell.kernel` `[in, 3u]`,
/// `gru_cell.recurrent_kernel` `[u, 3u]`, `gru_cell.bias` `[2, 3u]` (input
/// and recurrent rows; `[3u]` after `reset_after(false)`), gates z, r, h;
/// Glorot-uniform kernel, orthogonal recurrent kernel, zero bias.
/// PyTorch's (`Gru::pytorch`, one layer, `batch_first`): `weight_ih_l0`
/// `[3h, in]`, `weight_hh_l0` `[3h, h]`, `bias_ih_l0`, `bias_hh_l0`, gates
/// r, z, n, all uniform in ±1/√h. Both apply the reset gate after the
/// recurrent product by default, as both frameworks do.
///
/// ```no_run
/// # use kiln_models::Gru;
/// # let device = kiln_backend::Device::auto()?;
/// // PyTorch: nn.GRU(3, 32, batch_first=True)
/// let gru = Gru::pytorch(&device, 3, 32)?;
/// // Keras: GRU(32, reset_after=False, return_sequences=True)
/// let keras = Gru::keras(&device, 3, 32)?.reset_after(false)?.return_sequences(true);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Gru {
    pub kernel: Param,
    pub recurrent_kernel: Param,
    /// Keras' `[2, 3u]` (or `[3u]`), PyTorch's `bias_ih_l0`.
    pub bias: Param,
    /// PyTorch's `bias_hh_l0`.
    pub recurrent_bias: Option<Param>,
    naming: Naming,
    activation: Activation,
    recurrent_activation: Activation,
    reset_after: bool,
    return_sequences: bool,
}

impl Gru {
    /// Keras' `GRU(units)` on `input_size` features.
    pub fn keras(device: &Device, input_size: usize, units: usize) -> Result<Self> {
        recurrent::check_sizes("GRU", input_size, units)?;
        let gu = 3 * units;
        let (kernel, _) = Init::GlorotUniform.values(input_size, gu, next_seed());
        let recurrent = orthogonal(units, gu, next_seed());
        Ok(Self {
            kernel: Param::new(device, "kernel", &kernel, &[input_size, gu])?,
            recurrent_kernel: Param::new(device, "recurrent_kernel", &recurrent, &[units, gu])?,
            bias: Param::zeros(device, "bias", &[2, gu])?,
            recurrent_bias: None,
            naming: Naming::Keras,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            reset_after: true,
            return_sequences: false,
        })
    }

    /// PyTorch's `nn.GRU(input_size, hidden_size, batch_first=True)`.
    pub fn pytorch(device: &Device, input_size: usize, hidden_size: usize) -> Result<Self> {
        recurrent::check_sizes("GRU", input_size, hidden_size)?;
        let gh = 3 * hidden_size;
        let p = |name: &str, shape: &[usize]| {
            recurrent::pytorch_uniform(device, name, shape, hidden_size)
        };
        Ok(Self {
            kernel: p("weight_ih_l0", &[gh, input_size])?,
            recurrent_kernel: p("weight_hh_l0", &[gh, hidden_size])?,
            bias: p("bias_ih_l0", &[gh])?,
            recurrent_bias: Some(p("bias_hh_l0", &[gh])?),
            naming: Naming::PyTorch,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            reset_after: true,
            return_sequences: false,
        })
    }

    /// Of the candidate state (tanh by default).
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Of the update and reset gates (sigmoid by default).
    pub fn recurrent_activation(mut self, a: Activation) -> Self {
        self.recurrent_activation = a;
        self
    }

    /// Return every step's hidden state (`[B, T, u]`), not only the last.
    pub fn return_sequences(mut self, on: bool) -> Self {
        self.return_sequences = on;
        self
    }

    /// Keras' `reset_after`: with `false` the reset gate scales the
    /// previous state before the recurrent product (Keras 1's and ONNX's
    /// default), and the bias becomes one `[3u]` row, zeroed again. PyTorch
    /// has only the reset-after form, so a PyTorch-named layer refuses it.
    pub fn reset_after(mut self, on: bool) -> Result<Self> {
        if self.naming == Naming::PyTorch && !on {
            return Err(ModelError::Settings(
                "PyTorch's GRU always applies the reset gate after the recurrent product; reset_after(false) is for Gru::keras".into(),
            ));
        }
        if on != self.reset_after {
            let gu = 3 * self.units();
            let shape: &[usize] = if on { &[2, gu] } else { &[gu] };
            self.bias = Param::zeros(self.bias.device(), "bias", shape)?;
            self.reset_after = on;
        }
        Ok(self)
    }

    pub fn units(&self) -> usize {
        match self.naming {
            Naming::Keras => self.recurrent_kernel.shape()[0],
            Naming::PyTorch => self.recurrent_kernel.shape()[1],
        }
    }

    /// The number of features per timestep.
    pub fn input_size(&self) -> usize {
        self.kernel.numel() / (3 * self.units())
    }

    /// The layer's weights in Keras' layout, whatever its own: convert them
    /// with [`GruWeights`]' methods.
    pub fn weights(&self) -> Result<GruWeights> {
        let (input, u) = (self.input_size(), self.units());
        let kernel = self.kernel.values()?;
        let recurrent = self.recurrent_kernel.values()?;
        let bias = self.bias.values()?;
        match &self.recurrent_bias {
            None => GruWeights::from_keras(input, u, kernel, recurrent, &bias),
            Some(b_hh) => {
                GruWeights::from_pytorch(input, u, &kernel, &recurrent, &bias, &b_hh.values()?)
            }
        }
    }

    /// Loads weights given in Keras' layout (from any framework's through
    /// [`GruWeights`]) into this layer's own layout. A layer that resets
    /// before the product adds both biases into its one row, as that form
    /// does in its sums.
    pub fn set_weights(&self, w: &GruWeights) -> Result<()> {
        let (u, input) = (self.units(), self.input_size());
        recurrent::check_fit("GRU", (w.units, w.input), (u, input))?;
        let values = match &self.recurrent_bias {
            None => {
                let bias: Vec<f32> = if self.reset_after {
                    w.keras_bias()
                } else {
                    w.input_bias
                        .iter()
                        .zip(&w.recurrent_bias)
                        .map(|(a, b)| a + b)
                        .collect()
                };
                [w.kernel.clone(), w.recurrent.clone(), bias, Vec::new()]
            }
            Some(_) => w.to_pytorch(),
        };
        recurrent::write_weights(self.params(), values)
    }

    fn params(&self) -> [Option<&Param>; 4] {
        [
            Some(&self.kernel),
            Some(&self.recurrent_kernel),
            Some(&self.bias),
            self.recurrent_bias.as_ref(),
        ]
    }

    /// The output (every step's `h`, or the last) and the last `h` (Keras'
    /// `return_state`, PyTorch's `h_n`), from the initial `h` (zeros when
    /// `None`).
    pub fn forward_with_state(&self, x: &Var, initial: Option<&Var>) -> Result<(Var, Var)> {
        recurrent::check_input("GRU", self.input_size(), x.shape())?;
        let opts = GruOptions {
            activation: recurrent::elementwise("GRU", self.activation, "activation")?,
            recurrent_activation: recurrent::elementwise(
                "GRU",
                self.recurrent_activation,
                "recurrent activation",
            )?,
            reset_after: self.reset_after,
            return_sequences: self.return_sequences,
        };
        if let Some(h) = initial {
            x.same_tape(h)?;
        }
        let tape = x.tape();
        let (kernel, recurrent, input_bias, recurrent_bias) = self.keras_order(x)?;
        let weights = RecurrentWeights {
            kernel: kernel.id(),
            recurrent: recurrent.id(),
            transposed: self.naming == Naming::PyTorch,
            input_bias: Some(input_bias.id()),
            recurrent_bias: recurrent_bias.as_ref().map(Var::id),
        };
        let out = tape.with_graph(|g| g.gru(x.id(), &weights, initial.map(Var::id), &opts))?;
        let output = out.sequence.unwrap_or(out.h);
        Ok((tape.var(output)?, tape.var(out.h)?))
    }

    /// The parameters on `x`'s tape as the cell takes them, gate blocks z,
    /// r, h: Keras' bias split into its rows, PyTorch's r, z, n blocks
    /// swapped (slices the gradients flow back through).
    fn keras_order(&self, x: &Var) -> Result<(Var, Var, Var, Option<Var>)> {
        let tape = x.tape();
        let u = self.units();
        let (kernel, recurrent, bias) = (
            tape.param(&self.kernel),
            tape.param(&self.recurrent_kernel),
            tape.param(&self.bias),
        );
        let out = match &self.recurrent_bias {
            None if self.reset_after => {
                let row = |k: usize| bias.slice(0, k, k + 1)?.reshape(&[3 * u as i64]);
                (kernel, recurrent, row(0)?, Some(row(1)?))
            }
            None => (kernel, recurrent, bias, None),
            Some(b_hh) => {
                let swap = |v: &Var| -> Result<Var> {
                    let (r, z, n) = (
                        v.slice(0, 0, u)?,
                        v.slice(0, u, 2 * u)?,
                        v.slice(0, 2 * u, 3 * u)?,
                    );
                    Ok(Var::concat(&[&z, &r, &n], 0)?)
                };
                (
                    swap(&kernel)?,
                    swap(&recurrent)?,
                    swap(&bias)?,
                    Some(swap(&tape.param(b_hh))?),
                )
            }
        };
        Ok(out)
    }
}

impl Module for Gru {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        recurrent::visit_weights(v, self.naming, "gru_cell", self.params());
    }
}
