//! Neural-network building blocks written in primitive ops: batch
//! normalisation's formula, dropout masks. The plan compiler fuses what they
//! expand to (a normalisation and the dropout after it run as one kernel).

use kiln_backend::UnaryOp;

use crate::error::{shape_err, Result};
use crate::graph::{Graph, NodeId, Op};

impl Graph {
    /// Batch normalisation of `x` with per-channel statistics on `axis`:
    /// `(x − mean)·rsqrt(var + eps)·γ + β`, each of `mean`, `var`, `γ`, `β`
    /// of shape `[C]` (`γ` and `β` optional). Training passes the batch's
    /// [`Graph::moments`], inference the running statistics; autodiff
    /// differentiates through either.
    ///
    /// ```
    /// # use kiln_graph::*;
    /// let mut g = Graph::new();
    /// let x = g.input("x", &[8, 3, 4, 4]);
    /// let (mean, var) = g.moments(x, &[0, 2, 3])?;
    /// let y = g.batch_norm(x, mean, var, None, None, 1, 1e-5)?;
    /// assert_eq!(g.shape(y), &[8, 3, 4, 4]);
    /// # Ok::<(), GraphError>(())
    /// ```
    #[allow(clippy::too_many_arguments)] // the formula's five tensors and two settings
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        mean: NodeId,
        var: NodeId,
        gamma: Option<NodeId>,
        beta: Option<NodeId>,
        axis: usize,
        eps: f32,
    ) -> Result<NodeId> {
        let mut all = vec![x, mean, var];
        all.extend(gamma);
        all.extend(beta);
        self.check("BatchNorm", &all)?;
        let shape = self.shape(x).to_vec();
        if axis >= shape.len() {
            return Err(shape_err(
                "BatchNorm",
                format!("channel axis {axis} is out of range for {shape:?}"),
            ));
        }
        let c = shape[axis];
        for &p in &all[1..] {
            if self.shape(p) != [c] {
                return Err(shape_err(
                    "BatchNorm",
                    format!(
                        "a per-channel input has shape {:?}; {c} channels need [{c}]",
                        self.shape(p)
                    ),
                ));
            }
        }
        if eps.is_nan() || eps <= 0.0 {
            return Err(shape_err(
                "BatchNorm",
                format!("epsilon {eps} must be positive"),
            ));
        }
        // [C] broadcast along `axis`: C followed by ones.
        let mut column = vec![c];
        column.extend(std::iter::repeat_n(1, shape.len() - axis - 1));
        let per_channel = |g: &mut Graph, p: NodeId| g.reshape_to(p, &column);
        let m = per_channel(self, mean)?;
        let v = per_channel(self, var)?;
        let v = self.unary(UnaryOp::AddScalar(eps), v)?;
        let rstd = self.unary(UnaryOp::Rsqrt, v)?;
        let centred = self.sub(x, m)?;
        let mut y = self.mul(centred, rstd)?;
        if let Some(gamma) = gamma {
            let g = per_channel(self, gamma)?;
            y = self.mul(y, g)?;
        }
        if let Some(beta) = beta {
            let b = per_channel(self, beta)?;
            y = self.add(y, b)?;
        }
        Ok(y)
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
