//! The LSTM layer over `[batch, timesteps, features]`, with Keras' or
//! PyTorch's weights (names, layout and initialisation); the cell is
//! `kiln_graph`'s unrolled LSTM (`Graph::lstm`).

use kiln_backend::Device;
use kiln_graph::{LstmOptions, Param, RecurrentWeights, Var};

use crate::error::{ModelError, Result};
use crate::init::{orthogonal, Init};
use crate::layers::{recurrent, Activation, LstmWeights, Naming};
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// An LSTM layer. Keras' (`Lstm::keras`): `lstm_cell.kernel` `[in, 4u]`,
/// `lstm_cell.recurrent_kernel` `[u, 4u]`, `lstm_cell.bias` `[4u]`, gates i,
/// f, c, o; Glorot-uniform kernel, orthogonal recurrent kernel, zero bias
/// but for the forget block's ones. PyTorch's (`Lstm::pytorch`, one layer,
/// `batch_first`): `weight_ih_l0` `[4h, in]`, `weight_hh_l0` `[4h, h]`,
/// `bias_ih_l0`, `bias_hh_l0`, gates i, f, g, o, all uniform in ±1/√h.
///
/// ```no_run
/// # use kiln_models::{Lstm, Activation};
/// # let device = kiln_backend::Device::auto()?;
/// // Keras: LSTM(50, activation='relu', return_sequences=True) on 3 features
/// let lstm = Lstm::keras(&device, 3, 50)?.activation(Activation::Relu).return_sequences(true);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lstm {
    pub kernel: Param,
    pub recurrent_kernel: Param,
    pub bias: Option<Param>,
    /// PyTorch's second bias (`bias_hh_l0`).
    pub recurrent_bias: Option<Param>,
    naming: Naming,
    activation: Activation,
    recurrent_activation: Activation,
    return_sequences: bool,
}

impl Lstm {
    /// Keras' `LSTM(units)` on `input_size` features.
    pub fn keras(device: &Device, input_size: usize, units: usize) -> Result<Self> {
        recurrent::check_sizes("LSTM", input_size, units)?;
        let (kernel, _) = Init::GlorotUniform.values(input_size, 4 * units, next_seed());
        let recurrent = orthogonal(units, 4 * units, next_seed());
        let mut bias = vec![0.0; 4 * units];
        bias[units..2 * units].fill(1.0);
        Ok(Self {
            kernel: Param::new(device, "kernel", &kernel, &[input_size, 4 * units])?,
            recurrent_kernel: Param::new(
                device,
                "recurrent_kernel",
                &recurrent,
                &[units, 4 * units],
            )?,
            bias: Some(Param::new(device, "bias", &bias, &[4 * units])?),
            recurrent_bias: None,
            naming: Naming::Keras,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: false,
        })
    }

    /// PyTorch's `nn.LSTM(input_size, hidden_size, batch_first=True)`.
    pub fn pytorch(device: &Device, input_size: usize, hidden_size: usize) -> Result<Self> {
        recurrent::check_sizes("LSTM", input_size, hidden_size)?;
        let h = hidden_size;
        let p = |name: &str, shape: &[usize]| recurrent::pytorch_uniform(device, name, shape, h);
        Ok(Self {
            kernel: p("weight_ih_l0", &[4 * h, input_size])?,
            recurrent_kernel: p("weight_hh_l0", &[4 * h, h])?,
            bias: Some(p("bias_ih_l0", &[4 * h])?),
            recurrent_bias: Some(p("bias_hh_l0", &[4 * h])?),
            naming: Naming::PyTorch,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: false,
        })
    }

    /// Of the candidate cell and the cell state on output (tanh by default).
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Of the gates (sigmoid by default; Keras 2 used hard sigmoid).
    pub fn recurrent_activation(mut self, a: Activation) -> Self {
        self.recurrent_activation = a;
        self
    }

    /// Return every step's hidden state (`[B, T, u]`), not only the last.
    pub fn return_sequences(mut self, on: bool) -> Self {
        self.return_sequences = on;
        self
    }

    pub fn units(&self) -> usize {
        match self.naming {
            Naming::Keras => self.recurrent_kernel.shape()[0],
            Naming::PyTorch => self.recurrent_kernel.shape()[1],
        }
    }

    /// The layer's weights in Keras' layout, whatever its own (PyTorch's two
    /// biases summed): convert them with [`LstmWeights`]' methods.
    pub fn weights(&self) -> Result<LstmWeights> {
        let u = self.units();
        let input = self.kernel.numel() / (4 * u);
        let values = |p: &Param| p.values();
        match self.naming {
            Naming::Keras => LstmWeights::from_keras(
                input,
                u,
                values(&self.kernel)?,
                values(&self.recurrent_kernel)?,
                match &self.bias {
                    Some(b) => values(b)?,
                    None => vec![0.0; 4 * u],
                },
            ),
            Naming::PyTorch => {
                let zero = vec![0.0; 4 * u];
                let bias = |b: &Option<Param>| b.as_ref().map_or(Ok(zero.clone()), values);
                LstmWeights::from_pytorch(
                    input,
                    u,
                    &values(&self.kernel)?,
                    &values(&self.recurrent_kernel)?,
                    &bias(&self.bias)?,
                    &bias(&self.recurrent_bias)?,
                )
            }
        }
    }

    /// Loads weights given in Keras' layout (from any framework's through
    /// [`LstmWeights`]) into this layer's own layout.
    pub fn set_weights(&self, w: &LstmWeights) -> Result<()> {
        let (u, input) = (self.units(), self.kernel.numel() / (4 * self.units()));
        if (w.units, w.input) != (u, input) {
            return Err(ModelError::Weights(format!(
                "weights of an LSTM({} units) on {} features for an LSTM({u}) on {input}",
                w.units, w.input
            )));
        }
        let no_bias =
            || ModelError::Weights("this LSTM has no bias to load the weights' bias into".into());
        match self.naming {
            Naming::Keras => {
                self.kernel.write(&w.kernel)?;
                self.recurrent_kernel.write(&w.recurrent)?;
                self.bias.as_ref().ok_or_else(no_bias)?.write(&w.bias)?;
            }
            Naming::PyTorch => {
                let [ih, hh, b_ih, b_hh] = w.to_pytorch();
                self.kernel.write(&ih)?;
                self.recurrent_kernel.write(&hh)?;
                self.bias.as_ref().ok_or_else(no_bias)?.write(&b_ih)?;
                if let Some(b) = &self.recurrent_bias {
                    b.write(&b_hh)?;
                }
            }
        }
        Ok(())
    }

    /// The output (every step's `h`, or the last), the last `h` and the last
    /// `c` (Keras' `return_state`, PyTorch's `(h_n, c_n)`), from the
    /// initial `(h, c)` (zeros when `None`).
    pub fn forward_with_state(
        &self,
        x: &Var,
        initial: Option<(&Var, &Var)>,
    ) -> Result<(Var, Var, Var)> {
        recurrent::check_input("LSTM", self.kernel.numel() / (4 * self.units()), x.shape())?;
        let opts = LstmOptions {
            activation: recurrent::elementwise("LSTM", self.activation, "activation")?,
            recurrent_activation: recurrent::elementwise(
                "LSTM",
                self.recurrent_activation,
                "recurrent activation",
            )?,
            peepholes: None,
            return_sequences: self.return_sequences,
        };
        let tape = x.tape();
        let vars: Vec<Var> = [
            Some(&self.kernel),
            Some(&self.recurrent_kernel),
            self.bias.as_ref(),
            self.recurrent_bias.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| tape.param(p))
        .collect();
        let id = |v: &Var| v.id();
        let weights = RecurrentWeights {
            kernel: id(&vars[0]),
            recurrent: id(&vars[1]),
            transposed: self.naming == Naming::PyTorch,
            input_bias: self.bias.as_ref().map(|_| id(&vars[2])),
            recurrent_bias: self
                .recurrent_bias
                .as_ref()
                .map(|_| id(&vars[vars.len() - 1])),
        };
        if let Some((h, c)) = initial {
            x.same_tape(h)?;
            x.same_tape(c)?;
        }
        let state = initial.map(|(h, c)| (h.id(), c.id()));
        let out = tape.with_graph(|g| g.lstm(x.id(), &weights, state, &opts))?;
        let output = out.sequence.unwrap_or(out.h);
        let c = out.c.expect("an LSTM has a cell state");
        Ok((tape.var(output)?, tape.var(out.h)?, tape.var(c)?))
    }
}

impl Module for Lstm {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        recurrent::visit_weights(
            v,
            self.naming,
            "lstm_cell",
            [
                Some(&self.kernel),
                Some(&self.recurrent_kernel),
                self.bias.as_ref(),
                self.recurrent_bias.as_ref(),
            ],
        );
    }
}
