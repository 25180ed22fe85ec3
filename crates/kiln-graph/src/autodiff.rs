//! Reverse-mode autodiff as a graph transformation. Every op's vector-Jacobian
//! product is written once, in graph ops, so backward graphs compile, plan
//! and run like any other graph: here, and for the one-input elementwise ops
//! in `autodiff/unary.rs`.

use std::collections::HashMap;

use kiln_backend::codegen::ConvPass;
use kiln_backend::{broadcast_shapes, BinaryOp, ReduceOp, UnaryOp};

use crate::error::{shape_err, GraphError, Result};
use crate::graph::{Graph, NodeId, Op};

mod unary;
use unary::unary_vjp;

/// A slice's gradient: the axis, start and end it was taken over, and the
/// gradient node.
type SlicePiece = (usize, usize, usize, NodeId);

impl Graph {
    /// Gradients of the scalar `loss` with respect to `wrt`, appended as nodes,
    /// in the order of `wrt`. Nodes that do not lead to `wrt` get no backward
    /// nodes; frozen parameters never do.
    pub fn grad(&mut self, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
        self.check("grad", &[loss])?;
        if self.node(loss).numel() != 1 {
            return Err(shape_err(
                "grad",
                format!(
                    "the loss must be a scalar, got shape {:?}",
                    self.shape(loss)
                ),
            ));
        }
        let shape = self.shape(loss).to_vec();
        let one = self.constant(&[1.0], &shape)?;
        self.backward(&[(loss, one)], wrt)
    }

    /// Vector-Jacobian products: given upstream gradients `seeds` (output,
    /// gradient of some scalar with respect to it), the gradients with respect
    /// to `wrt`. A `wrt` node the outputs do not depend on gets zeros.
    pub fn backward(&mut self, seeds: &[(NodeId, NodeId)], wrt: &[NodeId]) -> Result<Vec<NodeId>> {
        for &(out, seed) in seeds {
            self.check("backward", &[out, seed])?;
            if self.shape(out) != self.shape(seed) {
                return Err(shape_err(
                    "backward",
                    format!(
                        "seed {:?} for output {:?}",
                        self.shape(seed),
                        self.shape(out)
                    ),
                ));
            }
        }
        self.check("backward", wrt)?;
        for &w in wrt {
            if matches!(
                self.node(w).op,
                Op::Param {
                    trainable: false,
                    ..
                }
            ) {
                return Err(GraphError::Autodiff(format!(
                    "node {} ({}) is a frozen parameter: it has no gradient",
                    w.index(),
                    self.describe(w)
                )));
            }
        }
        let last = seeds.iter().map(|s| s.0.index()).max().unwrap_or(0);
        // Which nodes depend on something in `wrt`: only they need adjoints.
        let mut needs = vec![false; last + 1];
        for i in 0..=last {
            let id = self.id_at(i);
            needs[i] = wrt.contains(&id)
                || self
                    .node(id)
                    .inputs
                    .iter()
                    .any(|x| x.index() <= last && needs[x.index()]);
        }
        let mut adjoint: HashMap<NodeId, NodeId> = HashMap::new();
        // Gradients of slices, by the sliced node: (axis, start, end, gradient).
        let mut slices: HashMap<NodeId, Vec<SlicePiece>> = HashMap::new();
        // Gradients of the results of multi-result nodes, by (node, result).
        let mut results: HashMap<(NodeId, usize), NodeId> = HashMap::new();
        for &(out, seed) in seeds {
            accumulate(self, &mut adjoint, out, seed)?;
        }
        for i in (0..=last).rev() {
            let id = self.id_at(i);
            if !needs[i] {
                continue;
            }
            let node = self.node(id).clone();
            if !node.results.is_empty() {
                let gs: Vec<Option<NodeId>> = (0..node.results.len())
                    .map(|k| results.get(&(id, k)).copied())
                    .collect();
                if gs.iter().all(Option::is_none) {
                    continue;
                }
                for (slot, input) in node.inputs.iter().enumerate() {
                    if needs[input.index()] {
                        if let Some(gi) = self.multi_vjp(id, slot, &gs)? {
                            accumulate(self, &mut adjoint, *input, gi)?;
                        }
                    }
                }
                continue;
            }
            self.join_slices(&mut adjoint, &mut slices, id)?;
            let Some(&g) = adjoint.get(&id) else { continue };
            if let Op::Output(k) = node.op {
                let sum = match results.get(&(node.inputs[0], k)) {
                    Some(&prev) => self.add(prev, g)?,
                    None => g,
                };
                results.insert((node.inputs[0], k), sum);
                continue;
            }
            for (slot, input) in node.inputs.iter().enumerate() {
                if !needs[input.index()] {
                    continue;
                }
                // Slices of one tensor hand their gradients over whole, to
                // be joined into one tensor rather than padded and summed.
                if let Op::Slice { axis, start, end } = node.op {
                    slices
                        .entry(*input)
                        .or_default()
                        .push((axis, start, end, g));
                    continue;
                }
                if let Some(gi) = self.vjp(id, slot, g)? {
                    accumulate(self, &mut adjoint, *input, gi)?;
                }
            }
        }
        for &w in wrt {
            self.join_slices(&mut adjoint, &mut slices, w)?;
        }
        wrt.iter()
            .map(|&w| match adjoint.get(&w) {
                Some(&g) => Ok(g),
                None => {
                    let zero = self.scalar(0.0);
                    let shape = self.shape(w).to_vec();
                    self.expand(zero, &shape)
                }
            })
            .collect()
    }

    /// Adds the gradients of `id`'s slices to its adjoint: slices along one
    /// axis that do not overlap are joined into one tensor, zeros filling
    /// the gaps (an LSTM's gates, its timesteps), any others padded with
    /// zeros one by one and summed.
    fn join_slices(
        &mut self,
        adjoint: &mut HashMap<NodeId, NodeId>,
        slices: &mut HashMap<NodeId, Vec<SlicePiece>>,
        id: NodeId,
    ) -> Result<()> {
        let Some(mut pieces) = slices.remove(&id) else {
            return Ok(());
        };
        let shape = self.shape(id).to_vec();
        pieces.sort_by_key(|p| (p.0, p.1));
        let one_axis = pieces.iter().all(|p| p.0 == pieces[0].0);
        let disjoint = pieces.windows(2).all(|w| w[0].2 <= w[1].1);
        let groups: Vec<Vec<SlicePiece>> = if one_axis && disjoint {
            vec![pieces]
        } else {
            pieces.into_iter().map(|p| vec![p]).collect()
        };
        for group in groups {
            let axis = group[0].0;
            let mut parts = Vec::new();
            let mut at = 0;
            for &(_, start, end, g) in &group {
                if start > at {
                    parts.push(self.zeros_along(&shape, axis, start - at)?);
                }
                parts.push(g);
                at = end;
            }
            if at < shape[axis] {
                parts.push(self.zeros_along(&shape, axis, shape[axis] - at)?);
            }
            let joined = match parts.len() {
                1 => parts[0],
                _ => self.concat(&parts, axis as i64)?,
            };
            accumulate(self, adjoint, id, joined)?;
        }
        Ok(())
    }

    /// Zeros shaped like `shape` but `len` long along `axis`.
    fn zeros_along(&mut self, shape: &[usize], axis: usize, len: usize) -> Result<NodeId> {
        let mut s = shape.to_vec();
        s[axis] = len;
        let z = self.scalar(0.0);
        self.expand(z, &s)
    }

    /// Sums `g` over the axes along which `shape` was broadcast to `g`'s shape.
    pub fn unbroadcast(&mut self, g: NodeId, shape: &[usize]) -> Result<NodeId> {
        self.check("unbroadcast", &[g])?;
        let gs = self.shape(g).to_vec();
        if gs == shape {
            return Ok(g);
        }
        if broadcast_shapes("unbroadcast", shape, &gs).ok().as_deref() != Some(&gs[..]) {
            return Err(shape_err(
                "unbroadcast",
                format!("{shape:?} does not broadcast to the gradient's {gs:?}"),
            ));
        }
        let lead = gs.len() - shape.len();
        let axes: Vec<i64> = (0..gs.len())
            .filter(|&d| d < lead || (shape[d - lead] == 1 && gs[d] != 1))
            .map(|d| d as i64)
            .collect();
        let summed = if axes.is_empty() {
            g
        } else {
            self.sum(g, &axes, true)?
        };
        let target: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
        self.reshape(summed, &target)
    }

    /// The gradient flowing into input `slot` of the multi-result node `id`,
    /// given the gradients of its results (`None` where a result has none).
    fn multi_vjp(
        &mut self,
        id: NodeId,
        slot: usize,
        gs: &[Option<NodeId>],
    ) -> Result<Option<NodeId>> {
        let node = self.node(id).clone();
        match &node.op {
            Op::Moments { axes } => {
                // d mean/dx = 1/M, d var/dx = 2(x − mean)/M, per slice.
                let x = node.inputs[0];
                let xs = self.shape(x).to_vec();
                let m = axes.iter().map(|&a| xs[a]).product::<usize>() as f32;
                let kept: Vec<i64> = xs
                    .iter()
                    .enumerate()
                    .map(|(d, &s)| if axes.contains(&d) { 1 } else { s as i64 })
                    .collect();
                let mut total: Option<NodeId> = None;
                if let Some(g_mean) = gs[0] {
                    let g = self.reshape(g_mean, &kept)?;
                    let u = self.scale(g, 1.0 / m)?;
                    total = Some(self.expand(u, &xs)?);
                }
                if let Some(g_var) = gs[1] {
                    let mean_shape = node.results[0].clone();
                    let mean = self.push(Op::Output(0), vec![id], mean_shape);
                    let mean = self.reshape(mean, &kept)?;
                    let centred = self.sub(x, mean)?;
                    let g = self.reshape(g_var, &kept)?;
                    let t = self.mul(centred, g)?;
                    let t = self.scale(t, 2.0 / m)?;
                    total = Some(match total {
                        Some(u) => self.add(u, t)?,
                        None => t,
                    });
                }
                let _ = slot;
                Ok(total)
            }
            // Max pooling's values pass their gradient to where the maxima
            // were; its indices have none.
            Op::Pool2d {
                kind,
                window,
                ceil_mode,
            } => match gs[0] {
                Some(g) => {
                    let indices = self.push(Op::Output(1), vec![id], node.results[1].clone());
                    let x_shape = self.shape(node.inputs[0]).to_vec();
                    let grad =
                        self.pool2d_grad(g, Some(indices), &x_shape, *kind, *window, *ceil_mode)?;
                    Ok(Some(grad))
                }
                None => Ok(None),
            },
            _ => Err(unsupported(&format!("gradients of {}", self.describe(id)))),
        }
    }

    /// The gradient flowing into input `slot` of node `id`, given the node's
    /// upstream gradient `g`; `None` where the input has no gradient.
    fn vjp(&mut self, id: NodeId, slot: usize, g: NodeId) -> Result<Option<NodeId>> {
        let node = self.node(id).clone();
        let x = |i: usize| node.inputs[i];
        let in_shape = self.shape(x(slot)).to_vec();
        let grad = match &node.op {
            Op::Input(_) | Op::Param { .. } | Op::Const(_) => return Ok(None),
            // Linear in x with the same mask; the step number has no gradient.
            Op::Dropout { rate, seed } if slot == 0 => self.dropout(g, *rate, *seed, x(1))?,
            Op::Dropout { .. } => return Ok(None),
            Op::Assign
            | Op::OptimizerStep { .. }
            | Op::RunningStats { .. }
            | Op::Accumulate { .. } => return Ok(None),
            Op::Moments { .. } | Op::Output(_) => {
                return Err(GraphError::Autodiff(format!(
                    "autodiff: {} is differentiated through its results",
                    self.describe(id)
                )))
            }
            Op::Unary(op) => match unary_vjp(self, *op, x(0), id, g)? {
                Some(v) => v,
                None => return Ok(None),
            },
            Op::Binary(op) => {
                let (a, b) = (x(0), x(1));
                let full = match (op, slot) {
                    (BinaryOp::Add, _) => g,
                    (BinaryOp::Sub, 0) => g,
                    (BinaryOp::Sub, _) => self.unary(UnaryOp::Neg, g)?,
                    (BinaryOp::Mul, 0) => self.mul(g, b)?,
                    (BinaryOp::Mul, _) => self.mul(g, a)?,
                    (BinaryOp::Div, 0) => self.div(g, b)?,
                    (BinaryOp::Div, _) => {
                        // -g · a / b²  =  -g · out / b
                        let t = self.mul(g, id)?;
                        let t = self.div(t, b)?;
                        self.unary(UnaryOp::Neg, t)?
                    }
                    (BinaryOp::Max | BinaryOp::Min, _) => {
                        // Ties send the gradient to `a`, like PyTorch's maximum.
                        let cmp = if *op == BinaryOp::Max {
                            BinaryOp::Ge
                        } else {
                            BinaryOp::Le
                        };
                        let take_a = self.binary(cmp, a, b)?;
                        let zero = self.scalar(0.0);
                        if slot == 0 {
                            self.select(take_a, g, zero)?
                        } else {
                            self.select(take_a, zero, g)?
                        }
                    }
                    (BinaryOp::Pow, 0) => {
                        // g · b · a^(b-1)  =  g · b · out / a
                        let t = self.mul(g, b)?;
                        let t = self.mul(t, id)?;
                        self.div(t, a)?
                    }
                    (BinaryOp::Pow, _) => {
                        let la = self.unary(UnaryOp::Log, a)?;
                        let t = self.mul(g, id)?;
                        self.mul(t, la)?
                    }
                    (BinaryOp::BceTerm, 0) => {
                        let d = self.binary(BinaryOp::BceGrad, a, b)?;
                        self.mul(g, d)?
                    }
                    (BinaryOp::BceLogitsTerm, 0) => {
                        let d = self.binary(BinaryOp::BceLogitsGrad, a, b)?;
                        self.mul(g, d)?
                    }
                    (BinaryOp::BceLogitsTerm, _) => {
                        let t = self.mul(g, a)?;
                        self.unary(UnaryOp::Neg, t)?
                    }
                    (BinaryOp::BceTerm, _) => {
                        return Err(unsupported("gradients of a cross-entropy's targets"))
                    }
                    (
                        BinaryOp::ReluGrad
                        | BinaryOp::SigmoidGrad
                        | BinaryOp::TanhGrad
                        | BinaryOp::HardSigmoidGrad
                        | BinaryOp::BceGrad
                        | BinaryOp::BceLogitsGrad,
                        _,
                    ) => return Err(unsupported(&format!("second derivatives ({op:?})"))),
                    // comparisons and accuracy are piecewise constant
                    _ => return Ok(None),
                };
                self.unbroadcast(full, &in_shape)?
            }
            Op::Select => {
                if slot == 0 {
                    return Ok(None);
                }
                let zero = self.scalar(0.0);
                let full = if slot == 1 {
                    self.select(x(0), g, zero)?
                } else {
                    self.select(x(0), zero, g)?
                };
                self.unbroadcast(full, &in_shape)?
            }
            Op::Reduce { op, axes } => {
                let kept: Vec<i64> = in_shape
                    .iter()
                    .enumerate()
                    .map(|(d, &s)| if axes.contains(&d) { 1 } else { s as i64 })
                    .collect();
                let g_kept = self.reshape(g, &kept)?;
                let count: usize = axes.iter().map(|&a| in_shape[a]).product();
                match op {
                    ReduceOp::Sum => self.expand(g_kept, &in_shape)?,
                    ReduceOp::Mean => {
                        let s = self.scale(g_kept, 1.0 / count as f32)?;
                        self.expand(s, &in_shape)?
                    }
                    ReduceOp::Max | ReduceOp::Min => {
                        // Split evenly between tied extremes.
                        let out_kept = self.reshape(id, &kept)?;
                        let hit = self.binary(BinaryOp::Eq, x(0), out_kept)?;
                        let ax: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                        let ties = self.sum(hit, &ax, true)?;
                        let share = self.div(g_kept, ties)?;
                        self.mul(hit, share)?
                    }
                }
            }
            Op::Softmax { axis, log } => {
                let ax = [*axis as i64];
                if *log {
                    // g - softmax · Σg
                    let sg = self.sum(g, &ax, true)?;
                    let p = self.unary(UnaryOp::Exp, id)?;
                    let t = self.mul(p, sg)?;
                    self.sub(g, t)?
                } else {
                    // y · (g - Σ g·y)
                    let gy = self.mul(g, id)?;
                    let s = self.sum(gy, &ax, true)?;
                    let d = self.sub(g, s)?;
                    self.mul(id, d)?
                }
            }
            Op::MatMul { trans_a, trans_b } => {
                let (a, b) = (x(0), x(1));
                let (ta, tb) = (*trans_a, *trans_b);
                // A rank-2 B shared by batches of A: its gradient is one
                // product over every batch's rows at once, not a product
                // per batch summed afterwards.
                let (ra, rb) = (self.shape(a).len(), self.shape(b).len());
                if slot == 1 && rb == 2 && ra > 2 && !ta {
                    let k = self.shape(a)[ra - 1] as i64;
                    let n = *self.shape(g).last().expect("rank ≥ 2") as i64;
                    let a2 = self.reshape(a, &[-1, k])?;
                    let g2 = self.reshape(g, &[-1, n])?;
                    let grad = if tb {
                        self.matmul(g2, a2, true, false)?
                    } else {
                        self.matmul(a2, g2, true, false)?
                    };
                    return Ok(Some(grad));
                }
                let raw = if slot == 0 {
                    if ta {
                        self.matmul(b, g, tb, true)?
                    } else {
                        self.matmul(g, b, false, !tb)?
                    }
                } else if tb {
                    self.matmul(g, a, true, ta)?
                } else {
                    self.matmul(a, g, !ta, false)?
                };
                // A rank-2 operand shared by every batch sums its per-batch gradients.
                let rs = self.shape(raw).to_vec();
                if rs.len() > in_shape.len() {
                    let lead: Vec<i64> = (0..(rs.len() - in_shape.len()) as i64).collect();
                    self.sum(raw, &lead, false)?
                } else {
                    raw
                }
            }
            Op::Conv2d {
                pass: ConvPass::Forward,
                window,
                ..
            } => {
                if slot == 0 {
                    let input = [in_shape[2], in_shape[3]];
                    self.conv2d_input_grad(g, x(1), *window, input)?
                } else {
                    self.conv2d_weight_grad(g, x(0), *window, &in_shape)?
                }
            }
            Op::Conv2d { .. } => return Err(unsupported("second derivatives of convolutions")),
            Op::Pool2d {
                kind,
                window,
                ceil_mode,
            } => self.pool2d_grad(g, None, &in_shape, *kind, *window, *ceil_mode)?,
            Op::Pool2dGrad { .. } => return Err(unsupported("second derivatives of pooling")),
            Op::Reshape => {
                let s: Vec<i64> = in_shape.iter().map(|&d| d as i64).collect();
                self.reshape(g, &s)?
            }
            Op::Permute(perm) => {
                let mut inverse = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                self.permute(g, &inverse)?
            }
            Op::Expand => self.unbroadcast(g, &in_shape)?,
            // Gathered by `backward` and joined in `join_slices`.
            Op::Slice { .. } => {
                return Err(GraphError::Internal(
                    "internal: a slice's gradient is joined by backward".into(),
                ))
            }
            Op::Concat { axis } => {
                let start: usize = node.inputs[..slot]
                    .iter()
                    .map(|&i| self.shape(i)[*axis])
                    .sum();
                self.slice(g, *axis, start, start + in_shape[*axis])?
            }
        };
        Ok(Some(grad))
    }
}

fn unsupported(what: &str) -> GraphError {
    GraphError::Autodiff(format!("autodiff: {what} are not supported"))
}

fn accumulate(
    g: &mut Graph,
    adjoint: &mut HashMap<NodeId, NodeId>,
    node: NodeId,
    grad: NodeId,
) -> Result<()> {
    let sum = match adjoint.get(&node) {
        Some(&prev) => g.add(prev, grad)?,
        None => grad,
    };
    adjoint.insert(node, sum);
    Ok(())
}
