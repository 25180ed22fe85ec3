//! Recurrent layers written in primitive ops, unrolled over the sequence:
//! LSTM, GRU and the simple RNN. The input projection of every timestep is
//! one matrix product; each step is the recurrent product (its epilogue adds
//! the step's projection) and one elementwise group for the gates and the
//! state update, which the plan compiler fuses into one kernel. Autodiff
//! runs the same pieces backwards through time, and a whole sequence,
//! forward and backward, is one plan: one submission, no read-back between
//! steps.
//!
//! Gate blocks are in Keras' order: LSTM i, f, c, o (PyTorch's i, f, g, o
//! is the same); GRU z, r, h. Converting ONNX's orders (LSTM i, o, f, c) or
//! PyTorch's GRU (r, z, n) is the importer's job.

use kiln_backend::UnaryOp;

use crate::error::{shape_err, Result};
use crate::graph::{Graph, NodeId};

/// The weights of a recurrent layer of `G` gate blocks of `units` columns:
/// `kernel` `[in, G·u]` and `recurrent` `[u, G·u]` (Keras' layout), or
/// `[G·u, in]` and `[G·u, u]` when `transposed` (PyTorch's and ONNX's),
/// read through strides either way.
#[derive(Clone, Debug)]
pub struct RecurrentWeights {
    pub kernel: NodeId,
    pub recurrent: NodeId,
    pub transposed: bool,
    /// Added to the input projection, `[G·u]`.
    pub input_bias: Option<NodeId>,
    /// Added to the recurrent projection, `[G·u]` (PyTorch's `bias_hh`; a
    /// GRU with `reset_after` applies the reset gate after adding it).
    pub recurrent_bias: Option<NodeId>,
}

/// What a recurrent layer returns: every step's hidden state when asked for
/// (`[B, T, u]`), the last hidden state (`[B, u]`), and an LSTM's last cell
/// state.
#[derive(Clone, Copy, Debug)]
pub struct RecurrentOutput {
    pub sequence: Option<NodeId>,
    pub h: NodeId,
    pub c: Option<NodeId>,
}

/// An LSTM's activations and optional peephole weights.
#[derive(Clone, Copy, Debug)]
pub struct LstmOptions {
    /// Of the candidate cell and of the cell state on output (tanh; the
    /// tutorial's forecaster uses relu).
    pub activation: UnaryOp,
    /// Of the input, forget and output gates (sigmoid, or hard sigmoid).
    pub recurrent_activation: UnaryOp,
    /// ONNX's peepholes `[3u]`, in the order i, f, o.
    pub peepholes: Option<NodeId>,
    pub return_sequences: bool,
}

impl Default for LstmOptions {
    fn default() -> Self {
        Self {
            activation: UnaryOp::Tanh,
            recurrent_activation: UnaryOp::Sigmoid,
            peepholes: None,
            return_sequences: false,
        }
    }
}

/// A GRU's activations and where its reset gate applies.
#[derive(Clone, Copy, Debug)]
pub struct GruOptions {
    pub activation: UnaryOp,
    pub recurrent_activation: UnaryOp,
    /// Apply the reset gate after the recurrent product (Keras' default and
    /// PyTorch's; ONNX's `linear_before_reset = 1`) rather than before.
    pub reset_after: bool,
    pub return_sequences: bool,
}

impl Default for GruOptions {
    fn default() -> Self {
        Self {
            activation: UnaryOp::Tanh,
            recurrent_activation: UnaryOp::Sigmoid,
            reset_after: true,
            return_sequences: false,
        }
    }
}

/// The sizes of a recurrent layer's input, checked against its weights.
struct Dims {
    batch: usize,
    steps: usize,
    units: usize,
}

impl Graph {
    /// An LSTM over `x` (`[B, T, in]`) from the initial `(h, c)` (zeros when
    /// `None`): per step `z = x_t·W + h·R + b`, `i, f, o = σ(z…)`, `c̃ =
    /// act(z_c)`, `c = f·c + i·c̃`, `h = o·act(c)`.
    ///
    /// ```
    /// # use kiln_graph::*;
    /// let mut g = Graph::new();
    /// let x = g.input("x", &[8, 10, 3]);
    /// let w = RecurrentWeights {
    ///     kernel: g.input("kernel", &[3, 200]),
    ///     recurrent: g.input("recurrent", &[50, 200]),
    ///     transposed: false,
    ///     input_bias: Some(g.input("bias", &[200])),
    ///     recurrent_bias: None,
    /// };
    /// let opts = LstmOptions { return_sequences: true, ..LstmOptions::default() };
    /// let out = g.lstm(x, &w, None, &opts)?;
    /// assert_eq!(g.shape(out.sequence.unwrap()), &[8, 10, 50]);
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn lstm(
        &mut self,
        x: NodeId,
        w: &RecurrentWeights,
        initial: Option<(NodeId, NodeId)>,
        opts: &LstmOptions,
    ) -> Result<RecurrentOutput> {
        let dims = self.recurrent_dims("LSTM", x, w, 4)?;
        let u = dims.units;
        let state_shape = [dims.batch, u];
        if let Some((h, c)) = initial {
            self.check_state("LSTM", &[h, c], &state_shape)?;
        }
        if let Some(p) = opts.peepholes {
            self.check("LSTM", &[p])?;
            if self.shape(p) != [3 * u] {
                return Err(shape_err(
                    "LSTM",
                    format!("peepholes {:?}; expected [{}]", self.shape(p), 3 * u),
                ));
            }
        }
        let peep = match opts.peepholes {
            Some(p) => Some([
                self.slice(p, 0, 0, u)?,
                self.slice(p, 0, u, 2 * u)?,
                self.slice(p, 0, 2 * u, 3 * u)?,
            ]),
            None => None,
        };
        let xw = self.input_projection(x, w, 4)?;
        let (mut h, mut c) = match initial {
            Some((h, c)) => (Some(h), Some(c)),
            None => (None, None),
        };
        let mut sequence = Vec::new();
        for t in 0..dims.steps {
            let z = self.step_projection(xw, t, h, w, &dims, 4)?;
            let gate = |g: &mut Graph, k: usize| g.slice(z, 1, k * u, (k + 1) * u);
            let (zi, zf, zc, zo) = (
                gate(self, 0)?,
                gate(self, 1)?,
                gate(self, 2)?,
                gate(self, 3)?,
            );
            // Peepholes look at the previous cell state (input and forget
            // gates) and the new one (output gate).
            let peek = |g: &mut Graph, z: NodeId, k: usize, cell: Option<NodeId>| match (peep, cell)
            {
                (Some(p), Some(cell)) => {
                    let v = g.mul(p[k], cell)?;
                    g.add(z, v)
                }
                _ => Ok(z),
            };
            let zi = peek(self, zi, 0, c)?;
            let zf = peek(self, zf, 1, c)?;
            let i = self.unary(opts.recurrent_activation, zi)?;
            let candidate = self.unary(opts.activation, zc)?;
            let kept = self.mul(i, candidate)?;
            let new_c = match c {
                Some(c) => {
                    let f = self.unary(opts.recurrent_activation, zf)?;
                    let old = self.mul(f, c)?;
                    self.add(old, kept)?
                }
                None => kept,
            };
            let zo = peek(self, zo, 2, Some(new_c))?;
            let o = self.unary(opts.recurrent_activation, zo)?;
            let out = self.unary(opts.activation, new_c)?;
            let new_h = self.mul(o, out)?;
            if opts.return_sequences {
                sequence.push(new_h);
            }
            h = Some(new_h);
            c = Some(new_c);
        }
        Ok(RecurrentOutput {
            sequence: self.stack_steps(&sequence, &dims)?,
            h: h.expect("at least one step"),
            c,
        })
    }

    /// A GRU over `x` (`[B, T, in]`) from the initial `h` (zeros when
    /// `None`): `z, r = σ(…)`, `h̃ = act(x_t·W_h + r·(h·R_h + b_rh))` (or,
    /// without `reset_after`, `act(x_t·W_h + (r·h)·R_h)`), `h = z·h + (1 −
    /// z)·h̃`.
    pub fn gru(
        &mut self,
        x: NodeId,
        w: &RecurrentWeights,
        initial: Option<NodeId>,
        opts: &GruOptions,
    ) -> Result<RecurrentOutput> {
        let dims = self.recurrent_dims("GRU", x, w, 3)?;
        let u = dims.units;
        if let Some(h) = initial {
            self.check_state("GRU", &[h], &[dims.batch, u])?;
        }
        let xw = self.input_projection(x, w, 3)?;
        self.unroll(&dims, initial, opts.return_sequences, |g, t, h| {
            let zx = g.step_input(xw, t, &dims, 3)?;
            let gate = |g: &mut Graph, v: NodeId, k: usize| g.slice(v, 1, k * u, (k + 1) * u);
            match h {
                None => {
                    // h = 0: the recurrent products are their biases.
                    let zr = match w.recurrent_bias {
                        Some(b) => g.add(zx, b)?,
                        None => zx,
                    };
                    let zz = gate(g, zr, 0)?;
                    let z = g.unary(opts.recurrent_activation, zz)?;
                    let hx = gate(g, zx, 2)?;
                    let hx = match (w.recurrent_bias, opts.reset_after) {
                        (Some(b), true) => {
                            let zr_r = gate(g, zr, 1)?;
                            let r = g.unary(opts.recurrent_activation, zr_r)?;
                            let bh = g.slice(b, 0, 2 * u, 3 * u)?;
                            let rb = g.mul(r, bh)?;
                            g.add(hx, rb)?
                        }
                        (Some(b), false) => {
                            let bh = g.slice(b, 0, 2 * u, 3 * u)?;
                            g.add(hx, bh)?
                        }
                        _ => hx,
                    };
                    let cand = g.unary(opts.activation, hx)?;
                    let one_minus = g.unary(UnaryOp::Scale(-1.0), z)?;
                    let one_minus = g.unary(UnaryOp::AddScalar(1.0), one_minus)?;
                    g.mul(one_minus, cand)
                }
                Some(prev) => {
                    let r_all = g.recurrent_product(prev, w)?;
                    let r_all = match w.recurrent_bias {
                        Some(b) => g.add(r_all, b)?,
                        None => r_all,
                    };
                    let (xz, xr, xh) = (gate(g, zx, 0)?, gate(g, zx, 1)?, gate(g, zx, 2)?);
                    let (rz, rr) = (gate(g, r_all, 0)?, gate(g, r_all, 1)?);
                    let zz = g.add(xz, rz)?;
                    let z = g.unary(opts.recurrent_activation, zz)?;
                    let zrr = g.add(xr, rr)?;
                    let r = g.unary(opts.recurrent_activation, zrr)?;
                    let hh = if opts.reset_after {
                        let rh = gate(g, r_all, 2)?;
                        let gated = g.mul(r, rh)?;
                        g.add(xh, gated)?
                    } else {
                        // (r·h)·R_h, plus R_h's bias block.
                        let rhp = g.mul(r, prev)?;
                        let rh_w = g.recurrent_block(w, &dims, 2)?;
                        let prod = g.matmul(rhp, rh_w, false, w.transposed)?;
                        let prod = match w.recurrent_bias {
                            Some(b) => {
                                let bh = g.slice(b, 0, 2 * u, 3 * u)?;
                                g.add(prod, bh)?
                            }
                            None => prod,
                        };
                        g.add(xh, prod)?
                    };
                    let cand = g.unary(opts.activation, hh)?;
                    // z·h + (1 − z)·h̃ = h̃ + z·(h − h̃)
                    let diff = g.sub(prev, cand)?;
                    let kept = g.mul(z, diff)?;
                    g.add(cand, kept)
                }
            }
        })
    }

    /// A simple RNN over `x` (`[B, T, in]`): `h = act(x_t·W + h·R + b)`.
    pub fn simple_rnn(
        &mut self,
        x: NodeId,
        w: &RecurrentWeights,
        initial: Option<NodeId>,
        activation: UnaryOp,
        return_sequences: bool,
    ) -> Result<RecurrentOutput> {
        let dims = self.recurrent_dims("RNN", x, w, 1)?;
        if let Some(h) = initial {
            self.check_state("RNN", &[h], &[dims.batch, dims.units])?;
        }
        let xw = self.input_projection(x, w, 1)?;
        self.unroll(&dims, initial, return_sequences, |g, t, h| {
            let z = g.step_projection(xw, t, h, w, &dims, 1)?;
            g.unary(activation, z)
        })
    }

    /// Runs `step` (step `t` from the previous hidden state, `None` at the
    /// zero initial state) over the sequence from `initial`.
    fn unroll(
        &mut self,
        dims: &Dims,
        initial: Option<NodeId>,
        return_sequences: bool,
        mut step: impl FnMut(&mut Graph, usize, Option<NodeId>) -> Result<NodeId>,
    ) -> Result<RecurrentOutput> {
        let mut h = initial;
        let mut sequence = Vec::new();
        for t in 0..dims.steps {
            let new_h = step(self, t, h)?;
            if return_sequences {
                sequence.push(new_h);
            }
            h = Some(new_h);
        }
        Ok(RecurrentOutput {
            sequence: self.stack_steps(&sequence, dims)?,
            h: h.expect("at least one step"),
            c: None,
        })
    }

    /// Checks `x` and the weights of a layer of `gates` blocks.
    fn recurrent_dims(
        &self,
        op: &str,
        x: NodeId,
        w: &RecurrentWeights,
        gates: usize,
    ) -> Result<Dims> {
        let mut all = vec![x, w.kernel, w.recurrent];
        all.extend(w.input_bias);
        all.extend(w.recurrent_bias);
        self.check(op, &all)?;
        let xs = self.shape(x).to_vec();
        if xs.len() != 3 || xs.contains(&0) {
            return Err(shape_err(
                op,
                format!("input {xs:?}; expected [batch, timesteps, features], none empty"),
            ));
        }
        let (ks, rs) = (
            self.shape(w.kernel).to_vec(),
            self.shape(w.recurrent).to_vec(),
        );
        let orient = |s: &[usize]| -> Option<(usize, usize)> {
            match (s.len(), w.transposed) {
                (2, false) => Some((s[0], s[1])),
                (2, true) => Some((s[1], s[0])),
                _ => None,
            }
        };
        let layout = if w.transposed {
            "[G·u, in] and [G·u, u]"
        } else {
            "[in, G·u] and [u, G·u]"
        };
        let bad = || {
            shape_err(
                op,
                format!(
                    "kernel {ks:?} and recurrent kernel {rs:?} for input {xs:?}: expected {layout} with G = {gates} gate blocks"
                ),
            )
        };
        let ((k_in, k_cols), (r_in, r_cols)) =
            (orient(&ks).ok_or_else(bad)?, orient(&rs).ok_or_else(bad)?);
        let units = r_in;
        if k_in != xs[2] || k_cols != gates * units || r_cols != gates * units || units == 0 {
            return Err(bad());
        }
        for b in w.input_bias.iter().chain(&w.recurrent_bias) {
            if self.shape(*b) != [gates * units] {
                return Err(shape_err(
                    op,
                    format!("bias {:?}; expected [{}]", self.shape(*b), gates * units),
                ));
            }
        }
        Ok(Dims {
            batch: xs[0],
            steps: xs[1],
            units,
        })
    }

    fn check_state(&self, op: &str, states: &[NodeId], shape: &[usize]) -> Result<()> {
        self.check(op, states)?;
        for &s in states {
            if self.shape(s) != shape {
                return Err(shape_err(
                    op,
                    format!("initial state {:?}; expected {shape:?}", self.shape(s)),
                ));
            }
        }
        Ok(())
    }

    /// Every step's input projection at once: `x·W (+ b)`, `[B, T, G·u]`;
    /// the recurrent bias joins it too unless a GRU applies it itself.
    fn input_projection(
        &mut self,
        x: NodeId,
        w: &RecurrentWeights,
        gates: usize,
    ) -> Result<NodeId> {
        let xw = self.matmul(x, w.kernel, false, w.transposed)?;
        let mut biases: Vec<NodeId> = w.input_bias.into_iter().collect();
        if gates != 3 {
            biases.extend(w.recurrent_bias);
        }
        let mut out = xw;
        for b in biases {
            out = self.add(out, b)?;
        }
        Ok(out)
    }

    /// Step `t` of the input projection, `[B, G·u]`.
    fn step_input(&mut self, xw: NodeId, t: usize, dims: &Dims, gates: usize) -> Result<NodeId> {
        let s = self.slice(xw, 1, t, t + 1)?;
        self.reshape_to(s, &[dims.batch, gates * dims.units])
    }

    /// `h·R`, `[B, G·u]`.
    fn recurrent_product(&mut self, h: NodeId, w: &RecurrentWeights) -> Result<NodeId> {
        self.matmul(h, w.recurrent, false, w.transposed)
    }

    /// Gate block `k` of the recurrent kernel (`[u, u]`, or its transpose).
    fn recurrent_block(&mut self, w: &RecurrentWeights, dims: &Dims, k: usize) -> Result<NodeId> {
        let u = dims.units;
        let axis = if w.transposed { 0 } else { 1 };
        self.slice(w.recurrent, axis, k * u, (k + 1) * u)
    }

    /// Step `t`'s pre-activations: its input projection plus `h·R` (the
    /// latter left out while `h` is the zero initial state).
    fn step_projection(
        &mut self,
        xw: NodeId,
        t: usize,
        h: Option<NodeId>,
        w: &RecurrentWeights,
        dims: &Dims,
        gates: usize,
    ) -> Result<NodeId> {
        let zx = self.step_input(xw, t, dims, gates)?;
        match h {
            Some(h) => {
                let zr = self.recurrent_product(h, w)?;
                self.add(zr, zx)
            }
            None => Ok(zx),
        }
    }

    /// The hidden states `[B, u]` of every step as `[B, T, u]`, or `None`
    /// when they were not kept.
    fn stack_steps(&mut self, steps: &[NodeId], dims: &Dims) -> Result<Option<NodeId>> {
        if steps.is_empty() {
            return Ok(None);
        }
        let rows: Vec<NodeId> = steps
            .iter()
            .map(|&h| self.reshape_to(h, &[dims.batch, 1, dims.units]))
            .collect::<Result<_>>()?;
        Ok(Some(match rows.len() {
            1 => rows[0],
            _ => self.concat(&rows, 1)?,
        }))
    }
}
