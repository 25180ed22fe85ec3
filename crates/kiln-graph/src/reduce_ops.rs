//! Reductions over axes (sums, means, extrema), batch moments and softmax.

use kiln_backend::{reduced_shape, ReduceOp};

use crate::error::{shape_err, Result};
use crate::graph::{normalize_axes, Graph, NodeId, Op};

impl Graph {
    /// Reduces over `axes` (negative axes count from the end).
    pub fn reduce(
        &mut self,
        op: ReduceOp,
        x: NodeId,
        axes: &[i64],
        keepdims: bool,
    ) -> Result<NodeId> {
        self.check("reduce", &[x])?;
        let shape = self.shape(x).to_vec();
        let axes = normalize_axes("Reduce", axes, shape.len())?;
        let out = reduced_shape(&shape, &axes, keepdims);
        Ok(self.push(Op::Reduce { op, axes }, vec![x], out))
    }

    pub fn sum(&mut self, x: NodeId, axes: &[i64], keepdims: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Sum, x, axes, keepdims)
    }

    /// The mean of every element, as a scalar.
    pub fn mean_all(&mut self, x: NodeId) -> Result<NodeId> {
        self.check("mean_all", &[x])?;
        let axes: Vec<i64> = (0..self.shape(x).len() as i64).collect();
        self.reduce(ReduceOp::Mean, x, &axes, false)
    }

    /// The sum of every element, as a scalar.
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId> {
        self.check("sum_all", &[x])?;
        let axes: Vec<i64> = (0..self.shape(x).len() as i64).collect();
        self.reduce(ReduceOp::Sum, x, &axes, false)
    }

    /// Mean and biased variance of `x` over `axes` (reduced away), each of
    /// the reduced shape: batch normalisation's statistics, two passes in
    /// one kernel.
    pub fn moments(&mut self, x: NodeId, axes: &[i64]) -> Result<(NodeId, NodeId)> {
        self.check("Moments", &[x])?;
        let shape = self.shape(x).to_vec();
        let mut axes = normalize_axes("Moments", axes, shape.len())?;
        axes.sort_unstable();
        if axes.is_empty() {
            return Err(shape_err("Moments", "needs at least one axis"));
        }
        let out = reduced_shape(&shape, &axes, false);
        let r = self.push_multi(Op::Moments { axes }, vec![x], vec![out.clone(), out]);
        Ok((r[0], r[1]))
    }

    pub fn softmax(&mut self, x: NodeId, axis: i64, log: bool) -> Result<NodeId> {
        self.check("softmax", &[x])?;
        let shape = self.shape(x).to_vec();
        let axis = normalize_axes("Softmax", &[axis], shape.len())?[0];
        Ok(self.push(Op::Softmax { axis, log }, vec![x], shape))
    }
}
