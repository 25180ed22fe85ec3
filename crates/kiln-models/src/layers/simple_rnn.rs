//! The simple (Elman) RNN layer over `[batch, timesteps, features]`,
//! `h = act(x_t·W + h·R + b)`, with Keras' or PyTorch's weights (names,
//! layout and initialisation), and its weights between the layouts; the
//! cell is `kiln_graph`'s unrolled RNN (`Graph::simple_rnn`).

use kiln_backend::Device;
use kiln_graph::{Param, RecurrentWeights, Var};

use crate::error::Result;
use crate::init::{orthogonal, Init};
use crate::layers::gate_blocks::{self, transpose};
use crate::layers::{recurrent, Activation, Naming};
use crate::module::{Module, Visitor};
use crate::rng::next_seed;

/// One simple RNN layer's weights in Keras' layout: kernel `[in, u]`,
/// recurrent kernel `[u, u]`, bias `[u]` (PyTorch's and ONNX's two biases
/// summed: both are added before the activation).
#[derive(Clone, Debug, PartialEq)]
pub struct SimpleRnnWeights {
    pub input: usize,
    pub units: usize,
    pub kernel: Vec<f32>,
    pub recurrent: Vec<f32>,
    pub bias: Vec<f32>,
}

fn check(what: &str, got: usize, want: usize) -> Result<()> {
    gate_blocks::check("simple RNN", what, got, want)
}

fn sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

impl SimpleRnnWeights {
    pub fn from_keras(
        input: usize,
        units: usize,
        kernel: Vec<f32>,
        recurrent: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self> {
        check("the kernel", kernel.len(), input * units)?;
        check("the recurrent kernel", recurrent.len(), units * units)?;
        check("the bias", bias.len(), units)?;
        Ok(Self {
            input,
            units,
            kernel,
            recurrent,
            bias,
        })
    }

    /// From PyTorch's `weight_ih_l0` `[h, in]`, `weight_hh_l0` `[h, h]`,
    /// `bias_ih_l0` and `bias_hh_l0`.
    pub fn from_pytorch(
        input: usize,
        units: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        b_ih: &[f32],
        b_hh: &[f32],
    ) -> Result<Self> {
        check("weight_ih", w_ih.len(), units * input)?;
        check("weight_hh", w_hh.len(), units * units)?;
        check("bias_ih", b_ih.len(), units)?;
        check("bias_hh", b_hh.len(), units)?;
        Ok(Self {
            input,
            units,
            kernel: transpose(w_ih, units, input),
            recurrent: transpose(w_hh, units, units),
            bias: sum(b_ih, b_hh),
        })
    }

    /// From ONNX's `W` `[u, in]`, `R` `[u, u]` and `B` `[2u]` of one
    /// direction.
    pub fn from_onnx(input: usize, units: usize, w: &[f32], r: &[f32], b: &[f32]) -> Result<Self> {
        check("B", b.len(), 2 * units)?;
        Self::from_pytorch(input, units, w, r, &b[..units], &b[units..])
    }

    /// PyTorch's `[weight_ih, weight_hh, bias_ih, bias_hh]` (all the bias
    /// in `bias_ih`).
    pub fn to_pytorch(&self) -> [Vec<f32>; 4] {
        let u = self.units;
        [
            transpose(&self.kernel, self.input, u),
            transpose(&self.recurrent, u, u),
            self.bias.clone(),
            vec![0.0; u],
        ]
    }
}

/// A simple RNN layer. Keras' (`SimpleRnn::keras`): `simple_rnn_cell.kernel`
/// `[in, u]`, `simple_rnn_cell.recurrent_kernel` `[u, u]`,
/// `simple_rnn_cell.bias` `[u]`; Glorot-uniform kernel, orthogonal
/// recurrent kernel, zero bias. PyTorch's (`SimpleRnn::pytorch`, `nn.RNN`
/// with one layer, `batch_first`): `weight_ih_l0` `[h, in]`, `weight_hh_l0`
/// `[h, h]`, `bias_ih_l0`, `bias_hh_l0`, all uniform in ±1/√h. Tanh unless
/// set (PyTorch's `nonlinearity='relu'` is `.activation(Activation::Relu)`).
///
/// ```no_run
/// # use kiln_models::{SimpleRnn, Activation};
/// # let device = kiln_backend::Device::auto()?;
/// // PyTorch: nn.RNN(3, 16, nonlinearity='relu', batch_first=True)
/// let rnn = SimpleRnn::pytorch(&device, 3, 16)?.activation(Activation::Relu);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleRnn {
    pub kernel: Param,
    pub recurrent_kernel: Param,
    pub bias: Param,
    /// PyTorch's second bias (`bias_hh_l0`).
    pub recurrent_bias: Option<Param>,
    naming: Naming,
    activation: Activation,
    return_sequences: bool,
}

impl SimpleRnn {
    /// Keras' `SimpleRNN(units)` on `input_size` features.
    pub fn keras(device: &Device, input_size: usize, units: usize) -> Result<Self> {
        recurrent::check_sizes("simple RNN", input_size, units)?;
        let (kernel, _) = Init::GlorotUniform.values(input_size, units, next_seed());
        let recurrent = orthogonal(units, units, next_seed());
        Ok(Self {
            kernel: Param::new(device, "kernel", &kernel, &[input_size, units])?,
            recurrent_kernel: Param::new(device, "recurrent_kernel", &recurrent, &[units, units])?,
            bias: Param::zeros(device, "bias", &[units])?,
            recurrent_bias: None,
            naming: Naming::Keras,
            activation: Activation::Tanh,
            return_sequences: false,
        })
    }

    /// PyTorch's `nn.RNN(input_size, hidden_size, batch_first=True)`.
    pub fn pytorch(device: &Device, input_size: usize, hidden_size: usize) -> Result<Self> {
        recurrent::check_sizes("simple RNN", input_size, hidden_size)?;
        let h = hidden_size;
        let p = |name: &str, shape: &[usize]| recurrent::pytorch_uniform(device, name, shape, h);
        Ok(Self {
            kernel: p("weight_ih_l0", &[h, input_size])?,
            recurrent_kernel: p("weight_hh_l0", &[h, h])?,
            bias: p("bias_ih_l0", &[h])?,
            recurrent_bias: Some(p("bias_hh_l0", &[h])?),
            naming: Naming::PyTorch,
            activation: Activation::Tanh,
            return_sequences: false,
        })
    }

    /// Of the new state (tanh by default).
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Return every step's hidden state (`[B, T, u]`), not only the last.
    pub fn return_sequences(mut self, on: bool) -> Self {
        self.return_sequences = on;
        self
    }

    pub fn units(&self) -> usize {
        self.recurrent_kernel.shape()[0]
    }

    /// The number of features per timestep.
    pub fn input_size(&self) -> usize {
        self.kernel.numel() / self.units()
    }

    /// The layer's weights in Keras' layout, whatever its own.
    pub fn weights(&self) -> Result<SimpleRnnWeights> {
        let (input, u) = (self.input_size(), self.units());
        let (kernel, recurrent) = (self.kernel.values()?, self.recurrent_kernel.values()?);
        match &self.recurrent_bias {
            None => SimpleRnnWeights::from_keras(input, u, kernel, recurrent, self.bias.values()?),
            Some(b_hh) => SimpleRnnWeights::from_pytorch(
                input,
                u,
                &kernel,
                &recurrent,
                &self.bias.values()?,
                &b_hh.values()?,
            ),
        }
    }

    /// Loads weights given in Keras' layout into this layer's own layout.
    pub fn set_weights(&self, w: &SimpleRnnWeights) -> Result<()> {
        let (u, input) = (self.units(), self.input_size());
        recurrent::check_fit("simple RNN", (w.units, w.input), (u, input))?;
        let values = match &self.recurrent_bias {
            None => [
                w.kernel.clone(),
                w.recurrent.clone(),
                w.bias.clone(),
                Vec::new(),
            ],
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

    /// The output (every step's `h`, or the last) and the last `h`, from
    /// the initial `h` (zeros when `None`).
    pub fn forward_with_state(&self, x: &Var, initial: Option<&Var>) -> Result<(Var, Var)> {
        recurrent::check_input("simple RNN", self.input_size(), x.shape())?;
        let activation = recurrent::elementwise("simple RNN", self.activation, "activation")?;
        if let Some(h) = initial {
            x.same_tape(h)?;
        }
        let tape = x.tape();
        let vars = (
            tape.param(&self.kernel),
            tape.param(&self.recurrent_kernel),
            tape.param(&self.bias),
            self.recurrent_bias.as_ref().map(|b| tape.param(b)),
        );
        let weights = RecurrentWeights {
            kernel: vars.0.id(),
            recurrent: vars.1.id(),
            transposed: self.naming == Naming::PyTorch,
            input_bias: Some(vars.2.id()),
            recurrent_bias: vars.3.as_ref().map(Var::id),
        };
        let out = tape.with_graph(|g| {
            g.simple_rnn(
                x.id(),
                &weights,
                initial.map(Var::id),
                activation,
                self.return_sequences,
            )
        })?;
        let output = out.sequence.unwrap_or(out.h);
        Ok((tape.var(output)?, tape.var(out.h)?))
    }
}

impl Module for SimpleRnn {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        recurrent::visit_weights(v, self.naming, "simple_rnn_cell", self.params());
    }
}
