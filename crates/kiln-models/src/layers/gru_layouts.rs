//! A GRU's weights between the three layouts users bring them in. Keras:
//! kernel `[in, 3u]`, recurrent kernel `[u, 3u]`, gate blocks z, r, h, and
//! a bias `[2, 3u]` (input then recurrent; `[3u]` without `reset_after`).
//! PyTorch: `weight_ih` `[3h, in]`, `weight_hh` `[3h, h]`, `bias_ih`,
//! `bias_hh`, blocks r, z, n. ONNX: `W` `[3h, in]`, `R` `[3h, h]`, `B`
//! `[6h]`, blocks z, r, h. The Keras layout is the hub.
//!
//! The two biases stay apart: where the reset gate applies after the
//! recurrent product (PyTorch, Keras' default), the recurrent bias of the
//! candidate block is scaled by the gate, so it is not the input bias' twin.

use crate::error::Result;
use crate::layers::gate_blocks::{self, reorder_blocks, transpose};

/// One GRU layer's weights in Keras' layout, both biases kept.
#[derive(Clone, Debug, PartialEq)]
pub struct GruWeights {
    pub input: usize,
    pub units: usize,
    /// `[in, 3u]`, blocks z, r, h.
    pub kernel: Vec<f32>,
    /// `[u, 3u]`.
    pub recurrent: Vec<f32>,
    /// Added to the input projection, `[3u]`.
    pub input_bias: Vec<f32>,
    /// Added to the recurrent projection, `[3u]`.
    pub recurrent_bias: Vec<f32>,
}

/// Where each PyTorch gate block is in Keras' order (r, z, n ← z, r, h);
/// the swap is its own inverse.
const PYTORCH_FROM_KERAS: [usize; 3] = [1, 0, 2];

fn check(what: &str, got: usize, want: usize) -> Result<()> {
    gate_blocks::check("GRU", what, got, want)
}

impl GruWeights {
    /// From Keras' `kernel`, `recurrent_kernel` and `bias`: `[2, 3u]` as
    /// Keras keeps it with `reset_after=True`, or `[3u]` without (then
    /// all of it is the input bias).
    pub fn from_keras(
        input: usize,
        units: usize,
        kernel: Vec<f32>,
        recurrent: Vec<f32>,
        bias: &[f32],
    ) -> Result<Self> {
        let gu = 3 * units;
        check("the kernel", kernel.len(), input * gu)?;
        check("the recurrent kernel", recurrent.len(), units * gu)?;
        let (input_bias, recurrent_bias) = if bias.len() == 2 * gu {
            (bias[..gu].to_vec(), bias[gu..].to_vec())
        } else {
            check("the bias", bias.len(), gu)?;
            (bias.to_vec(), vec![0.0; gu])
        };
        Ok(Self {
            input,
            units,
            kernel,
            recurrent,
            input_bias,
            recurrent_bias,
        })
    }

    /// From PyTorch's `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
    /// `bias_hh_l0`.
    pub fn from_pytorch(
        input: usize,
        units: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        b_ih: &[f32],
        b_hh: &[f32],
    ) -> Result<Self> {
        let gu = 3 * units;
        check("weight_ih", w_ih.len(), gu * input)?;
        check("weight_hh", w_hh.len(), gu * units)?;
        check("bias_ih", b_ih.len(), gu)?;
        check("bias_hh", b_hh.len(), gu)?;
        let order = &PYTORCH_FROM_KERAS;
        Ok(Self {
            input,
            units,
            kernel: transpose(&reorder_blocks(w_ih, units, input, order), gu, input),
            recurrent: transpose(&reorder_blocks(w_hh, units, units, order), gu, units),
            input_bias: reorder_blocks(b_ih, units, 1, order),
            recurrent_bias: reorder_blocks(b_hh, units, 1, order),
        })
    }

    /// From ONNX's `W`, `R` and `B` of one direction.
    pub fn from_onnx(input: usize, units: usize, w: &[f32], r: &[f32], b: &[f32]) -> Result<Self> {
        let gu = 3 * units;
        check("W", w.len(), gu * input)?;
        check("R", r.len(), gu * units)?;
        check("B", b.len(), 2 * gu)?;
        Ok(Self {
            input,
            units,
            kernel: transpose(w, gu, input),
            recurrent: transpose(r, gu, units),
            input_bias: b[..gu].to_vec(),
            recurrent_bias: b[gu..].to_vec(),
        })
    }

    /// Keras' bias `[2, 3u]` (input row, then recurrent row).
    pub fn keras_bias(&self) -> Vec<f32> {
        [self.input_bias.as_slice(), &self.recurrent_bias].concat()
    }

    /// PyTorch's `[weight_ih, weight_hh, bias_ih, bias_hh]`.
    pub fn to_pytorch(&self) -> [Vec<f32>; 4] {
        let (u, gu) = (self.units, 3 * self.units);
        let order = &PYTORCH_FROM_KERAS;
        [
            reorder_blocks(
                &transpose(&self.kernel, self.input, gu),
                u,
                self.input,
                order,
            ),
            reorder_blocks(&transpose(&self.recurrent, u, gu), u, u, order),
            reorder_blocks(&self.input_bias, u, 1, order),
            reorder_blocks(&self.recurrent_bias, u, 1, order),
        ]
    }

    /// ONNX's `[W, R, B]`.
    pub fn to_onnx(&self) -> [Vec<f32>; 3] {
        let gu = 3 * self.units;
        [
            transpose(&self.kernel, self.input, gu),
            transpose(&self.recurrent, self.units, gu),
            self.keras_bias(),
        ]
    }
}
