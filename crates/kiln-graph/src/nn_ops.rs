//! Fused ops of neural-network layers: a dense layer with its bias and
//! activation in the matmul, batch normalisation, dropout masks. Each is one
//! kernel where the primitive ops would be several, which matters on adapters
//! where every dispatch has a fixed cost.

use kiln_backend::ops::batchnorm::ChannelLayout;
use kiln_backend::Activation;

use crate::error::{shape_err, Result};
use crate::graph::{Graph, NodeId, Op};

impl Graph {
    /// `act(x · W + b)`: x `[batch, in]`, W `[in, out]` (Keras' kernel) or
    /// `[out, in]` with `trans_w` (PyTorch's weight), b `[out]`.
    ///
    /// ```
    /// # use kiln_graph::*;
    /// # use kiln_backend::Activation;
    /// let mut g = Graph::new();
    /// let x = g.input("x", &[8, 30]);
    /// let w = g.input("w", &[30, 128]);
    /// let b = g.input("b", &[128]);
    /// let h = g.dense(x, w, Some(b), Activation::Relu, false)?;
    /// assert_eq!(g.shape(h), &[8, 128]);
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn dense(
        &mut self,
        x: NodeId,
        w: NodeId,
        b: Option<NodeId>,
        activation: Activation,
        trans_w: bool,
    ) -> Result<NodeId> {
        let mut inputs = vec![x, w];
        inputs.extend(b);
        self.check("Dense", &inputs)?;
        let (sx, sw) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let bad = |detail: String| shape_err("Dense", detail);
        if sx.len() != 2 || sw.len() != 2 {
            return Err(bad(format!(
                "input {sx:?} and weight {sw:?} must both be 2-D (flatten first)"
            )));
        }
        let (w_in, w_out) = if trans_w {
            (sw[1], sw[0])
        } else {
            (sw[0], sw[1])
        };
        if sx[1] != w_in {
            return Err(bad(format!(
                "input has {} features, the weight {sw:?} expects {w_in}",
                sx[1]
            )));
        }
        if let Some(b) = b {
            if self.shape(b) != [w_out] {
                return Err(bad(format!("bias {:?} should be [{w_out}]", self.shape(b))));
            }
        }
        Ok(self.push(
            Op::Dense {
                activation,
                trans_w,
            },
            inputs,
            vec![sx[0], w_out],
        ))
    }

    /// Per-channel `[mean; biased variance]` of `x`, shape `[2, C]`, channels on `axis`.
    pub fn moments(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.check("Moments", &[x])?;
        let layout = ChannelLayout::of(self.shape(x), axis)?;
        Ok(self.push(Op::Moments { axis }, vec![x], vec![2, layout.channels]))
    }

    fn check_channels(
        &self,
        op: &str,
        x: NodeId,
        axis: usize,
        per_channel: &[NodeId],
    ) -> Result<usize> {
        let c = ChannelLayout::of(self.shape(x), axis)?.channels;
        for &p in per_channel {
            if self.shape(p) != [c] {
                return Err(shape_err(
                    op,
                    format!(
                        "a per-channel input has shape {:?}, {c} channels need [{c}]",
                        self.shape(p)
                    ),
                ));
            }
        }
        Ok(c)
    }

    /// Batch normalisation of `x` with `stats` `[mean; var]` (`[2, C]`).
    /// Training passes `stats = self.moments(x, axis)` and `batch_stats = true`;
    /// inference passes the running statistics and `false`.
    #[allow(clippy::too_many_arguments)] // the op's four inputs and three settings
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        stats: NodeId,
        gamma: NodeId,
        beta: NodeId,
        axis: usize,
        eps: f32,
        batch_stats: bool,
    ) -> Result<NodeId> {
        self.check("BatchNorm", &[x, stats, gamma, beta])?;
        let c = self.check_channels("BatchNorm", x, axis, &[gamma, beta])?;
        if self.shape(stats) != [2, c] {
            return Err(shape_err(
                "BatchNorm",
                format!("statistics {:?} should be [2, {c}]", self.shape(stats)),
            ));
        }
        let own_moments = self.node(stats).op == (Op::Moments { axis })
            && self.node(stats).inputs.first() == Some(&x);
        if batch_stats && !own_moments {
            return Err(shape_err(
                "BatchNorm",
                "batch statistics must be the moments of the normalised input itself",
            ));
        }
        if eps.is_nan() || eps <= 0.0 {
            return Err(shape_err(
                "BatchNorm",
                format!("epsilon {eps} must be positive"),
            ));
        }
        let shape = self.shape(x).to_vec();
        Ok(self.push(
            Op::BatchNorm {
                axis,
                eps,
                batch_stats,
            },
            vec![x, stats, gamma, beta],
            shape,
        ))
    }

    /// Dropout of `x` (training mode): each element is kept and scaled by
    /// `1/(1 − rate)` with probability `1 − rate`, else zeroed, by a mask drawn
    /// from `seed` and the step number in `step` (shape `[1]`).
    pub fn dropout(&mut self, x: NodeId, rate: f32, seed: u64, step: NodeId) -> Result<NodeId> {
        self.check("Dropout", &[x, step])?;
        if !(0.0..1.0).contains(&rate) {
            return Err(shape_err(
                "Dropout",
                format!("rate {rate} must be in [0, 1)"),
            ));
        }
        if self.node(step).numel() != 1 {
            return Err(shape_err(
                "Dropout",
                format!("the step input {:?} must hold one value", self.shape(step)),
            ));
        }
        let shape = self.shape(x).to_vec();
        Ok(self.push(Op::Dropout { rate, seed }, vec![x, step], shape))
    }
}
