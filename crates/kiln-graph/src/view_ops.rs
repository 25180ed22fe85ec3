//! Views and reshapes: the same elements with another shape or order
//! (reshape, flatten, permute, broadcast, slice) and concatenation. The plan
//! compiler reads most of them through strided layouts instead of copying.

use kiln_backend::broadcast_shapes;

use crate::error::{shape_err, Result};
use crate::graph::{normalize_axes, Graph, NodeId, Op};

impl Graph {
    /// The same elements with another shape; one `-1` is inferred, `0` copies
    /// the input's size at that axis (ONNX Reshape).
    pub fn reshape(&mut self, x: NodeId, shape: &[i64]) -> Result<NodeId> {
        self.check("reshape", &[x])?;
        let input = self.shape(x).to_vec();
        let total: usize = input.iter().product();
        let mut out: Vec<usize> = Vec::with_capacity(shape.len());
        let mut infer = None;
        for (i, &s) in shape.iter().enumerate() {
            match s {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                0 if i < input.len() => out.push(input[i]),
                s if s > 0 => out.push(s as usize),
                _ => {
                    return Err(shape_err(
                        "Reshape",
                        format!("invalid target {shape:?} for {input:?}"),
                    ))
                }
            }
        }
        let known: usize = out.iter().product();
        if let Some(i) = infer {
            if known == 0 || !total.is_multiple_of(known) {
                return Err(shape_err(
                    "Reshape",
                    format!("cannot infer -1 in {shape:?} for {input:?}"),
                ));
            }
            out[i] = total / known;
        }
        if out.iter().product::<usize>() != total {
            return Err(shape_err(
                "Reshape",
                format!("{input:?} ({total} elements) cannot become {shape:?}"),
            ));
        }
        Ok(self.push(Op::Reshape, vec![x], out))
    }

    /// The same elements with exactly `shape` (no `-1` or `0` conventions).
    pub fn reshape_to(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId> {
        self.check("reshape", &[x])?;
        let (from, to) = (self.node(x).numel(), shape.iter().product::<usize>());
        if from != to {
            return Err(shape_err(
                "Reshape",
                format!(
                    "{:?} ({from} elements) cannot become {shape:?} ({to})",
                    self.shape(x)
                ),
            ));
        }
        Ok(self.push(Op::Reshape, vec![x], shape.to_vec()))
    }

    /// Collapses axes `..axis` and `axis..` into a 2-D tensor (ONNX Flatten).
    pub fn flatten(&mut self, x: NodeId, axis: i64) -> Result<NodeId> {
        self.check("flatten", &[x])?;
        let s = self.shape(x).to_vec();
        let axis = if axis < 0 {
            axis + s.len() as i64
        } else {
            axis
        };
        if axis < 0 || axis as usize > s.len() {
            return Err(shape_err(
                "Flatten",
                format!("axis {axis} out of range for {s:?}"),
            ));
        }
        let outer: usize = s[..axis as usize].iter().product();
        let inner: usize = s[axis as usize..].iter().product();
        self.reshape(x, &[outer as i64, inner as i64])
    }

    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        self.check("permute", &[x])?;
        let s = self.shape(x).to_vec();
        let mut seen = vec![false; s.len()];
        if perm.len() != s.len()
            || perm
                .iter()
                .any(|&p| p >= s.len() || std::mem::replace(&mut seen[p], true))
        {
            return Err(shape_err(
                "Transpose",
                format!("{perm:?} is not a permutation of the axes of {s:?}"),
            ));
        }
        let out = perm.iter().map(|&p| s[p]).collect();
        Ok(self.push(Op::Permute(perm.to_vec()), vec![x], out))
    }

    /// Broadcasts `x` to `shape` (NumPy rules).
    pub fn expand(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId> {
        self.check("expand", &[x])?;
        let b = broadcast_shapes("Expand", self.shape(x), shape)?;
        if b != shape {
            return Err(shape_err(
                "Expand",
                format!("{:?} does not broadcast to {shape:?}", self.shape(x)),
            ));
        }
        if self.shape(x) == shape {
            return Ok(x);
        }
        Ok(self.push(Op::Expand, vec![x], shape.to_vec()))
    }

    /// Elements `start..end` along `axis`.
    pub fn slice(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> Result<NodeId> {
        self.check("slice", &[x])?;
        let mut s = self.shape(x).to_vec();
        if axis >= s.len() || start >= end || end > s[axis] {
            return Err(shape_err(
                "Slice",
                format!("{start}..{end} on axis {axis} of {s:?}"),
            ));
        }
        s[axis] = end - start;
        Ok(self.push(Op::Slice { axis, start, end }, vec![x], s))
    }

    /// Joins tensors along `axis` (negative counts from the end).
    pub fn concat(&mut self, xs: &[NodeId], axis: i64) -> Result<NodeId> {
        self.check("concat", xs)?;
        let Some(&first) = xs.first() else {
            return Err(shape_err("Concat", "needs at least one input"));
        };
        let mut out = self.shape(first).to_vec();
        let axis = normalize_axes("Concat", &[axis], out.len())?[0];
        for &x in &xs[1..] {
            let s = self.shape(x);
            let compatible = s.len() == out.len()
                && s.iter()
                    .zip(&out)
                    .enumerate()
                    .all(|(d, (a, b))| d == axis || a == b);
            if !compatible {
                return Err(shape_err(
                    "Concat",
                    format!(
                        "{s:?} does not match {:?} off axis {axis}",
                        self.shape(first)
                    ),
                ));
            }
            out[axis] += s[axis];
        }
        Ok(self.push(Op::Concat { axis }, xs.to_vec(), out))
    }
}
