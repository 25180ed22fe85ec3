//! An LSTM's weights between the three layouts users bring them in. Keras:
//! kernel `[in, 4u]`, recurrent kernel `[u, 4u]`, bias `[4u]`, gate blocks
//! i, f, c, o. PyTorch: `weight_ih` `[4h, in]`, `weight_hh` `[4h, h]`,
//! `bias_ih` and `bias_hh`, blocks i, f, g, o (the same order). ONNX: `W`
//! `[4h, in]`, `R` `[4h, h]`, `B` `[8h]` (input then recurrent biases),
//! blocks i, o, f, c. The Keras layout is the hub.

use crate::error::Result;
use crate::layers::gate_blocks::{self, inverse, reorder_blocks, transpose};

/// One LSTM layer's weights in Keras' layout.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmWeights {
    pub input: usize,
    pub units: usize,
    pub kernel: Vec<f32>,
    pub recurrent: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Where each ONNX gate block is in Keras' order (i, o, f, c ← i, f, c, o).
const ONNX_FROM_KERAS: [usize; 4] = [0, 3, 1, 2];

fn check(what: &str, got: usize, want: usize) -> Result<()> {
    gate_blocks::check("LSTM", what, got, want)
}

impl LstmWeights {
    pub fn from_keras(
        input: usize,
        units: usize,
        kernel: Vec<f32>,
        recurrent: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self> {
        check("the kernel", kernel.len(), input * 4 * units)?;
        check("the recurrent kernel", recurrent.len(), units * 4 * units)?;
        check("the bias", bias.len(), 4 * units)?;
        Ok(Self {
            input,
            units,
            kernel,
            recurrent,
            bias,
        })
    }

    /// From PyTorch's `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
    /// `bias_hh_l0` (the two biases are summed).
    pub fn from_pytorch(
        input: usize,
        units: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        b_ih: &[f32],
        b_hh: &[f32],
    ) -> Result<Self> {
        check("weight_ih", w_ih.len(), 4 * units * input)?;
        check("weight_hh", w_hh.len(), 4 * units * units)?;
        check("bias_ih", b_ih.len(), 4 * units)?;
        check("bias_hh", b_hh.len(), 4 * units)?;
        Ok(Self {
            input,
            units,
            kernel: transpose(w_ih, 4 * units, input),
            recurrent: transpose(w_hh, 4 * units, units),
            bias: b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect(),
        })
    }

    /// From ONNX's `W`, `R` and `B` of one direction.
    pub fn from_onnx(input: usize, units: usize, w: &[f32], r: &[f32], b: &[f32]) -> Result<Self> {
        check("W", w.len(), 4 * units * input)?;
        check("R", r.len(), 4 * units * units)?;
        check("B", b.len(), 8 * units)?;
        let keras = inverse(&ONNX_FROM_KERAS);
        let w = reorder_blocks(w, units, input, &keras);
        let r = reorder_blocks(r, units, units, &keras);
        let bias: Vec<f32> = b[..4 * units]
            .iter()
            .zip(&b[4 * units..])
            .map(|(x, y)| x + y)
            .collect();
        let bias = reorder_blocks(&bias, units, 1, &keras);
        Ok(Self {
            input,
            units,
            kernel: transpose(&w, 4 * units, input),
            recurrent: transpose(&r, 4 * units, units),
            bias,
        })
    }

    /// PyTorch's `[weight_ih, weight_hh, bias_ih, bias_hh]` (all the bias
    /// in `bias_ih`).
    pub fn to_pytorch(&self) -> [Vec<f32>; 4] {
        let u = self.units;
        [
            transpose(&self.kernel, self.input, 4 * u),
            transpose(&self.recurrent, u, 4 * u),
            self.bias.clone(),
            vec![0.0; 4 * u],
        ]
    }

    /// ONNX's `[W, R, B]` (all the bias in the input half of `B`).
    pub fn to_onnx(&self) -> [Vec<f32>; 3] {
        let u = self.units;
        let w = reorder_blocks(
            &transpose(&self.kernel, self.input, 4 * u),
            u,
            self.input,
            &ONNX_FROM_KERAS,
        );
        let r = reorder_blocks(
            &transpose(&self.recurrent, u, 4 * u),
            u,
            u,
            &ONNX_FROM_KERAS,
        );
        let mut b = reorder_blocks(&self.bias, u, 1, &ONNX_FROM_KERAS);
        b.extend(std::iter::repeat_n(0.0, 4 * u));
        [w, r, b]
    }
}
