//! The graph IR: nodes are appended in topological order, each with its op, its
//! inputs and its output shape, inferred and checked when the node is added.
//! All values are f32; integer data (labels, indices) enter as exact floats.
//! The ops are primitives (maps, reductions, products, views, updates):
//! layers compose them, and the plan compiler fuses them back into few
//! kernels by rule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_backend::codegen::{ConvPass, PoolKind};
use kiln_backend::ops::optim::UpdateRule;
use kiln_backend::{broadcast_shapes, BinaryOp, ReduceOp, UnaryOp};

use crate::error::{shape_err, GraphError, Result};
use crate::params::{Param, ParamStore};
use crate::window::Window2d;

static NEXT_GRAPH: AtomicU64 = AtomicU64::new(1);

/// A node of a [`Graph`]: its position, and which graph it belongs to, so an
/// id from another graph is an error rather than silently another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    graph: u64,
    index: usize,
}

impl NodeId {
    /// The node's position in its graph (nodes are in topological order).
    pub fn index(self) -> usize {
        self.index
    }
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A value fed at every run, by name.
    Input(String),
    /// A persistent tensor; only trainable ones get gradients.
    Param {
        param: Param,
        trainable: bool,
    },
    /// Values fixed when the graph is built.
    Const(Vec<f32>),
    Unary(UnaryOp),
    /// NumPy-broadcasting binary op.
    Binary(BinaryOp),
    /// `inputs[0] != 0 ? inputs[1] : inputs[2]`, broadcasting.
    Select,
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// Mean and biased variance over `axes`: a node with two results
    /// ([`Op::Output`] 0 and 1), each of the reduced shape.
    Moments {
        axes: Vec<usize>,
    },
    Softmax {
        axis: usize,
        log: bool,
    },
    /// `op(a) · op(b)` over the last two axes, batched over the leading ones; a
    /// rank-2 operand is shared by every batch.
    MatMul {
        trans_a: bool,
        trans_b: bool,
    },
    /// A pass of a 2-D convolution (see `conv_ops.rs`): the product
    /// `[x, w]`, its input gradient `[dy, w]` (the node's shape is the
    /// input's), or its weight gradient `[dy, x]`, as partial sums over
    /// `splits` groups of images (shape `[splits, Cout, Cin, KH, KW]`) when
    /// `splits` > 1.
    Conv2d {
        pass: ConvPass,
        window: Window2d,
        splits: usize,
    },
    /// Pooling of `[x]`. Average pooling has one result; max pooling two
    /// ([`Op::Output`] 0 and 1): the maxima, and their indices `h·W + w`
    /// within each input plane, kept for the gradient.
    Pool2d {
        kind: PoolKind,
        window: Window2d,
        ceil_mode: bool,
    },
    /// The gradient of a pooling: `[dy, indices]` (max) or `[dy]`
    /// (average); the node's shape is the input's.
    Pool2dGrad {
        kind: PoolKind,
        window: Window2d,
        ceil_mode: bool,
    },
    /// Same elements, the node's shape (a view: no kernel).
    Reshape,
    /// Axis `i` of the output is axis `perm[i]` of the input.
    Permute(Vec<usize>),
    /// NumPy broadcast of the input to the node's shape.
    Expand,
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    Concat {
        axis: usize,
    },
    /// Result `k` of a node with several results.
    Output(usize),
    /// Dropout of `[x, step]`: x times a mask (`1/(1 − rate)` or 0) drawn
    /// under `seed` and the step number held by `step` (shape `[1]`). The mask
    /// is recomputed, not stored: the backward pass is the same op on the
    /// upstream gradient.
    Dropout {
        rate: f32,
        seed: u64,
    },
    /// Writes `inputs[1]` into the parameter `inputs[0]` (an in-place update).
    Assign,
    /// An optimizer step on `[param, grad, state1, (state2,) hyper]`: writes the
    /// parameter and its state in place.
    OptimizerStep {
        rule: UpdateRule,
    },
    /// `[running_mean, running_var, mean, var (, count)]`: the running
    /// statistics move toward the batch's, `keep·running + (1 − keep)·batch`,
    /// the variance times `var_factor`; `count` (PyTorch's
    /// `num_batches_tracked`) goes up by one. In place.
    RunningStats {
        keep: f32,
        var_factor: f32,
    },
    /// `[acc, value]`: `acc = keep·acc + scale·value`, in place; a
    /// one-element accumulator adds the sum of a value of any shape.
    Accumulate {
        keep: f32,
        scale: f32,
    },
}

impl Op {
    /// True for the ops that write a parameter in place; they run whether or
    /// not an output needs them.
    pub fn is_update(&self) -> bool {
        matches!(
            self,
            Op::Assign | Op::OptimizerStep { .. } | Op::RunningStats { .. } | Op::Accumulate { .. }
        )
    }

    /// The inputs (by position) an update writes in place.
    pub fn written_inputs(&self, inputs: usize) -> Vec<usize> {
        match self {
            Op::Assign | Op::Accumulate { .. } => vec![0],
            Op::OptimizerStep { .. } => (0..inputs - 1).filter(|&i| i != 1).collect(),
            Op::RunningStats { .. } if inputs == 5 => vec![0, 1, 4],
            Op::RunningStats { .. } => vec![0, 1],
            _ => vec![],
        }
    }

    /// A short name for messages and kernel labels.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => u.name().to_string(),
            Op::Binary(b) => b.name().to_string(),
            other => format!("{other:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("op")
                .to_lowercase(),
        }
    }
}

/// One node: its op, inputs and output shape. A node with several results
/// has shape `[]` and lists their shapes in `results`; [`Op::Output`] nodes
/// read them.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Vec<usize>,
    pub results: Vec<Vec<usize>>,
}

impl Node {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A computation graph under construction.
#[derive(Clone, Debug)]
pub struct Graph {
    id: u64,
    nodes: Vec<Node>,
    /// Nodes by (inputs, shape): the candidates `push` compares an op with,
    /// so finding a common subexpression does not scan the whole graph.
    by_inputs: HashMap<(Vec<NodeId>, Vec<usize>), Vec<usize>>,
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph {
    pub fn new() -> Self {
        Self {
            id: NEXT_GRAPH.fetch_add(1, Ordering::Relaxed),
            nodes: Vec::new(),
            by_inputs: HashMap::new(),
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The id of the node at `index` (nodes are in topological order).
    pub fn id_at(&self, index: usize) -> NodeId {
        NodeId {
            graph: self.id,
            index,
        }
    }

    /// The node `id` names. Panics on an id of another graph: public
    /// builders check ids with [`Graph::check`] first.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index]
    }

    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id.index].shape
    }

    /// True when `id` names a node of this graph.
    pub fn contains(&self, id: NodeId) -> bool {
        id.graph == self.id && id.index < self.nodes.len()
    }

    /// Appends a node, or returns the existing node that computes the same
    /// thing (common-subexpression elimination: backward formulas that share
    /// a term, such as a dense layer's activation gradient, compute it once).
    pub(crate) fn push(&mut self, op: Op, inputs: Vec<NodeId>, shape: Vec<usize>) -> NodeId {
        self.push_node(op, inputs, shape, vec![])
    }

    fn push_node(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Vec<usize>,
        results: Vec<Vec<usize>>,
    ) -> NodeId {
        if let Some(values) = self.fold_constants(&op, &inputs, &shape) {
            return self.push(Op::Const(values), vec![], shape);
        }
        let key = (inputs, shape);
        if !op.is_update() {
            if let Some(same) = self.by_inputs.get(&key) {
                if let Some(&i) = same.iter().rev().find(|&&i| self.nodes[i].op == op) {
                    return self.id_at(i);
                }
            }
        }
        let id = self.nodes.len();
        self.by_inputs.entry(key.clone()).or_default().push(id);
        let (inputs, shape) = key;
        self.nodes.push(Node {
            op,
            inputs,
            shape,
            results,
        });
        self.id_at(id)
    }

    /// A node with several results, and one [`Op::Output`] node per result.
    pub(crate) fn push_multi(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        results: Vec<Vec<usize>>,
    ) -> Vec<NodeId> {
        let node = self.push_node(op, inputs, vec![], results.clone());
        results
            .into_iter()
            .enumerate()
            .map(|(k, shape)| self.push(Op::Output(k), vec![node], shape))
            .collect()
    }

    /// Elementwise ops, broadcasts and reshapes of small constants are
    /// computed here, once, rather than by a kernel every step (the backward
    /// seed of a mean, for one, becomes a constant).
    fn fold_constants(&self, op: &Op, inputs: &[NodeId], shape: &[usize]) -> Option<Vec<f32>> {
        const MAX_FOLDED: usize = 1 << 16;
        let n: usize = shape.iter().product();
        if inputs.is_empty() || n == 0 || n > MAX_FOLDED {
            return None;
        }
        let values: Vec<&[f32]> = inputs
            .iter()
            .map(|&i| match &self.nodes[i.index].op {
                Op::Const(v) => Some(v.as_slice()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        // Element `i` of the output read from input `k` under NumPy broadcasting.
        let read = |k: usize, i: usize| -> f64 {
            let s = &self.nodes[inputs[k].index].shape;
            let lead = shape.len() - s.len();
            let (mut rest, mut at, mut stride) = (i, 0, 1);
            for d in (0..shape.len()).rev() {
                let coord = rest % shape[d];
                rest /= shape[d];
                if d >= lead {
                    let size = s[d - lead];
                    if size != 1 {
                        at += coord * stride;
                    }
                    stride *= size;
                }
            }
            values[k][at] as f64
        };
        let out: Vec<f32> = match op {
            Op::Unary(u) => (0..n).map(|i| u.reference(read(0, i)) as f32).collect(),
            Op::Binary(b) => (0..n)
                .map(|i| b.reference(read(0, i), read(1, i)) as f32)
                .collect(),
            Op::Expand => (0..n).map(|i| read(0, i) as f32).collect(),
            Op::Reshape => values[0].to_vec(),
            _ => return None,
        };
        Some(out)
    }

    /// An error unless every id names a node of this graph.
    pub fn check(&self, op: &str, ids: &[NodeId]) -> Result<()> {
        match ids.iter().find(|&&id| !self.contains(id)) {
            Some(id) if id.graph != self.id => Err(GraphError::WrongGraph(format!(
                "{op}: node {} belongs to another graph",
                id.index
            ))),
            Some(id) => Err(GraphError::WrongGraph(format!(
                "{op}: node {} is not in this graph (it has {} nodes)",
                id.index,
                self.nodes.len()
            ))),
            None => Ok(()),
        }
    }

    /// A per-run input.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> NodeId {
        self.push(Op::Input(name.to_string()), vec![], shape.to_vec())
    }

    /// Parameter `name` of `store`, trainable unless it was frozen.
    pub fn param(&mut self, store: &ParamStore, name: &str) -> Result<NodeId> {
        let p = store.get(name)?.clone();
        Ok(self.param_node(&p))
    }

    /// Parameter `name` of `store`, read and never differentiated.
    pub fn frozen_param(&mut self, store: &ParamStore, name: &str) -> Result<NodeId> {
        let p = store.get(name)?.clone();
        Ok(self.frozen(&p))
    }

    /// A parameter, differentiated when it is trainable.
    pub fn param_node(&mut self, param: &Param) -> NodeId {
        let trainable = param.is_trainable();
        self.push(
            Op::Param {
                param: param.clone(),
                trainable,
            },
            vec![],
            param.shape().to_vec(),
        )
    }

    /// A parameter read and never differentiated (optimizer state, running
    /// statistics, frozen weights).
    pub fn frozen(&mut self, param: &Param) -> NodeId {
        self.push(
            Op::Param {
                param: param.clone(),
                trainable: false,
            },
            vec![],
            param.shape().to_vec(),
        )
    }

    /// A constant tensor.
    pub fn constant(&mut self, values: &[f32], shape: &[usize]) -> Result<NodeId> {
        let n: usize = shape.iter().product();
        if n != values.len() || n == 0 {
            return Err(shape_err(
                "Const",
                format!("{} values for shape {shape:?}", values.len()),
            ));
        }
        Ok(self.push(Op::Const(values.to_vec()), vec![], shape.to_vec()))
    }

    /// A scalar constant (shape `[]`).
    pub fn scalar(&mut self, value: f32) -> NodeId {
        self.push(Op::Const(vec![value]), vec![], vec![])
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        self.check("unary", &[x])?;
        let shape = self.shape(x).to_vec();
        Ok(self.push(Op::Unary(op), vec![x], shape))
    }

    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.check("binary", &[a, b])?;
        let shape = broadcast_shapes(&format!("{op:?}"), self.shape(a), self.shape(b))?;
        Ok(self.push(Op::Binary(op), vec![a, b], shape))
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn scale(&mut self, x: NodeId, s: f32) -> Result<NodeId> {
        self.unary(UnaryOp::Scale(s), x)
    }

    /// `cond != 0 ? a : b` with broadcasting.
    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.check("select", &[cond, a, b])?;
        let s = broadcast_shapes("Select", self.shape(a), self.shape(b))?;
        let s = broadcast_shapes("Select", self.shape(cond), &s)?;
        Ok(self.push(Op::Select, vec![cond, a, b], s))
    }

    /// `op(a) · op(b)` with NumPy matmul semantics: shapes `[.., M, K]` and
    /// `[.., K, N]` after the optional transposes of the last two axes, batch
    /// axes broadcast; a 1-D operand is a row (a) or column (b) vector whose
    /// axis is dropped from the result.
    pub fn matmul(&mut self, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool) -> Result<NodeId> {
        self.check("matmul", &[a, b])?;
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        let bad = || {
            shape_err(
                "MatMul",
                format!(
                    "cannot multiply {sa:?}{} by {sb:?}{}",
                    if trans_a { "ᵀ" } else { "" },
                    if trans_b { "ᵀ" } else { "" }
                ),
            )
        };
        if sa.is_empty() || sb.is_empty() {
            return Err(bad());
        }
        let (a_vec, b_vec) = (sa.len() == 1, sb.len() == 1);
        let a2 = if a_vec {
            self.reshape(a, &[1, sa[0] as i64])?
        } else {
            a
        };
        let b2 = if b_vec {
            self.reshape(b, &[sb[0] as i64, 1])?
        } else {
            b
        };
        let (sa2, sb2) = (self.shape(a2).to_vec(), self.shape(b2).to_vec());
        let (ra, rb) = (sa2.len(), sb2.len());
        let ka = if trans_a { sa2[ra - 2] } else { sa2[ra - 1] };
        let kb = if trans_b { sb2[rb - 1] } else { sb2[rb - 2] };
        if ka != kb {
            return Err(bad());
        }
        // Batch axes broadcast; a rank-2 operand is read by every batch as is.
        let batch =
            broadcast_shapes("MatMul", &sa2[..ra - 2], &sb2[..rb - 2]).map_err(|_| bad())?;
        let widen = |g: &mut Self, x: NodeId, s: &[usize]| -> Result<NodeId> {
            let r = s.len();
            if r == 2 || s[..r - 2] == batch[..] {
                return Ok(x);
            }
            let mut full = batch.clone();
            full.extend_from_slice(&s[r - 2..]);
            g.expand(x, &full)
        };
        let a3 = widen(self, a2, &sa2)?;
        let b3 = widen(self, b2, &sb2)?;
        let m = if trans_a { sa2[ra - 1] } else { sa2[ra - 2] };
        let n = if trans_b { sb2[rb - 2] } else { sb2[rb - 1] };
        let mut shape = batch.clone();
        shape.extend([m, n]);
        let y = self.push(Op::MatMul { trans_a, trans_b }, vec![a3, b3], shape);
        if !a_vec && !b_vec {
            return Ok(y);
        }
        let mut out: Vec<i64> = batch.iter().map(|&d| d as i64).collect();
        if !a_vec {
            out.push(m as i64);
        }
        if !b_vec {
            out.push(n as i64);
        }
        self.reshape(y, &out)
    }

    /// Writes `value` into parameter `param` when the plan runs.
    pub fn assign(&mut self, param: NodeId, value: NodeId) -> Result<NodeId> {
        self.check("assign", &[param, value])?;
        if !matches!(self.node(param).op, Op::Param { .. }) {
            return Err(GraphError::NotAParameter(format!(
                "Assign: node {} ({}) is not a parameter",
                param.index,
                self.describe(param)
            )));
        }
        if self.shape(param) != self.shape(value) {
            return Err(shape_err(
                "Assign",
                format!(
                    "parameter {:?} vs value {:?}",
                    self.shape(param),
                    self.shape(value)
                ),
            ));
        }
        let shape = self.shape(param).to_vec();
        Ok(self.push(Op::Assign, vec![param, value], shape))
    }

    /// The op and shape of a node, for messages.
    pub fn describe(&self, id: NodeId) -> String {
        let n = self.node(id);
        format!("{} {:?}", n.op.name(), n.shape)
    }
}

/// Maps possibly negative axes into `0..rank`, rejecting repeats.
pub(crate) fn normalize_axes(op: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let b = if a < 0 { a + rank as i64 } else { a };
        if b < 0 || b as usize >= rank.max(1) || out.contains(&(b as usize)) {
            return Err(shape_err(
                op,
                format!("axis {a} invalid or repeated for rank {rank}"),
            ));
        }
        out.push(b as usize);
    }
    Ok(out)
}
