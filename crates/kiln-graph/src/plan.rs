//! Compiling a graph into a [`Plan`]: only the nodes the outputs and parameter
//! updates need, in topological order; every intermediate gets a slot in a
//! pool of buffers shared by liveness; every kernel (pipeline, bind group,
//! parameters) is created once. [`Plan::run`] then writes the inputs, encodes
//! every dispatch into one compute pass and submits once.

use std::collections::HashMap;

use kiln_backend::ops::batchnorm::{
    grad_gamma_beta_kernel, grad_gamma_kernel, grad_input_kernel, moments_kernel,
    moments_update_kernel, normalize_kernel, ChannelLayout,
};
use kiln_backend::ops::elementwise::{
    binary_kernel, fill_kernel, select_kernel, unary_into, unary_kernel, Operand,
};
use kiln_backend::ops::matmul::{
    matmul_dropout_kernel, MatmulBias, MatmulDropout, MatmulOperand, MatmulSpec,
};
use kiln_backend::ops::optim::{
    accumulate_sum_kernel, adam_group_size, axpby_kernel, optimizer_step_kernel,
    running_stats_kernel, UpdateRule,
};
use kiln_backend::ops::random::dropout_kernel;
use kiln_backend::ops::reduce::reduce_kernel;
use kiln_backend::ops::softmax::softmax_kernel;
use kiln_backend::{
    Activation, Buffer, DType, Device, Kernel, MatmulVariant, ReduceOp, StridedLayout, Tensor,
    UnaryOp,
};

use crate::error::{GraphError, Result};
use crate::fusion::{
    accumulate_folded, accumulate_pair, beta_sums_into_gamma, dropout_folded, flush_adam_run,
    folded_into_accumulators, folded_into_dropout, folded_into_scaling, paired_accumulators,
    running_stats_into_moments, scaled_product, scaling_folded,
};
use crate::graph::{Graph, NodeId, Op};
use crate::params::ParamStore;

/// Where a node's value lives.
#[derive(Clone)]
enum Storage {
    Param(Buffer),
    Owned(Buffer),
    Slot(usize),
}

/// Sizes and counts of a compiled plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanStats {
    /// Kernels encoded per run.
    pub dispatches: usize,
    /// Bytes of the slot buffers that hold intermediates (the planned peak).
    pub planned_bytes: u64,
    /// What the intermediates would take with a buffer each.
    pub intermediate_bytes: u64,
    /// Number of slot buffers.
    pub slots: usize,
}

/// A compiled graph, replayed by [`Plan::run`].
pub struct Plan {
    device: Device,
    kernels: Vec<Kernel>,
    inputs: Vec<(String, Buffer, Vec<usize>)>,
    outputs: Vec<(Buffer, usize)>,
    stats: PlanStats,
}

fn bytes_of(numel: usize) -> u64 {
    numel.max(1) as u64 * 4
}

impl Plan {
    /// Compiles the part of `graph` that `outputs` and every `Assign` need.
    pub fn compile(
        device: &Device,
        graph: &Graph,
        params: &ParamStore,
        outputs: &[NodeId],
    ) -> Result<Self> {
        let nodes = graph.nodes();
        for o in outputs {
            if o.0 >= nodes.len() {
                return Err(GraphError::Invalid(format!(
                    "output node {} is not in the graph",
                    o.0
                )));
            }
        }
        // Live nodes: ancestors of the outputs and of the parameter updates.
        let mut live = vec![false; nodes.len()];
        let mut stack: Vec<NodeId> = outputs.to_vec();
        stack.extend(
            (0..nodes.len())
                .filter(|&i| nodes[i].op.is_update())
                .map(NodeId),
        );
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut live[n.0], true) {
                stack.extend(nodes[n.0].inputs.iter().copied());
            }
        }
        // Views share their input's storage: `root` follows them down.
        let mut root: Vec<usize> = (0..nodes.len()).collect();
        for i in 0..nodes.len() {
            match nodes[i].op {
                Op::Reshape => root[i] = root[nodes[i].inputs[0].0],
                ref op if op.is_update() => root[i] = root[nodes[i].inputs[0].0],
                _ => {}
            }
        }
        // The last step at which each storage root is read.
        let mut last_use = vec![0usize; nodes.len()];
        for i in (0..nodes.len()).filter(|&i| live[i]) {
            last_use[root[i]] = last_use[root[i]].max(i);
            for x in &nodes[i].inputs {
                last_use[root[x.0]] = last_use[root[x.0]].max(i);
            }
        }
        for o in outputs {
            last_use[root[o.0]] = usize::MAX;
        }
        // A binary op folded into the product that scales it, or into the
        // accumulator that sums it, is computed by that node's kernel: its
        // operands must live until then.
        let scaled = folded_into_scaling(graph, &live, outputs);
        let folded = folded_into_accumulators(graph, &live, outputs);
        let normalized = folded_into_dropout(graph, &live, outputs);
        for m in (0..nodes.len()).filter(|&m| live[m]) {
            let inner = match (&nodes[m].op, scaled_product(graph, NodeId(m))) {
                (_, Some((_, inner))) if scaled[inner.0] => inner,
                (Op::Accumulate { .. }, _) if folded[nodes[m].inputs[1].0] => nodes[m].inputs[1],
                (Op::Dropout { .. }, _) if normalized[nodes[m].inputs[0].0] => nodes[m].inputs[0],
                _ => continue,
            };
            for x in &nodes[inner.0].inputs {
                let r = root[x.0];
                last_use[r] = last_use[r].max(m);
            }
        }

        let mut storage: Vec<Option<Storage>> = vec![None; nodes.len()];
        let mut slot_sizes: Vec<u64> = Vec::new();
        let mut free_slots: Vec<usize> = Vec::new();
        let mut inputs = Vec::new();
        let mut intermediate_bytes = 0;
        let mut expiring: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in (0..nodes.len()).filter(|&i| live[i]) {
            let node = &nodes[i];
            let st = match &node.op {
                Op::Param { name, .. } => Storage::Param(params.get(name)?.buffer().clone()),
                Op::Input(name) => {
                    let b = device.alloc(
                        &format!("input {name:?}"),
                        node.numel().max(1),
                        DType::F32,
                    )?;
                    inputs.push((name.clone(), b.clone(), node.shape.clone()));
                    Storage::Owned(b)
                }
                Op::Const(values) => Storage::Owned(
                    Tensor::from_f32(device, values, &[values.len()])?
                        .buffer()
                        .clone(),
                ),
                op if *op == Op::Reshape || op.is_update() => {
                    storage[root[i]].clone().expect("views follow their root")
                }
                _ => {
                    let need = bytes_of(node.numel());
                    intermediate_bytes += need;
                    // Best fit among free slots, else a new slot.
                    let pick = free_slots
                        .iter()
                        .enumerate()
                        .filter(|(_, &s)| slot_sizes[s] >= need)
                        .min_by_key(|(_, &s)| slot_sizes[s])
                        .map(|(k, _)| k);
                    let slot = match pick {
                        Some(k) => free_slots.swap_remove(k),
                        None => {
                            // Grow the largest free slot rather than add one.
                            match free_slots
                                .iter()
                                .enumerate()
                                .max_by_key(|(_, &s)| slot_sizes[s])
                                .map(|(k, _)| k)
                            {
                                Some(k) => {
                                    let s = free_slots.swap_remove(k);
                                    slot_sizes[s] = need;
                                    s
                                }
                                None => {
                                    slot_sizes.push(need);
                                    slot_sizes.len() - 1
                                }
                            }
                        }
                    };
                    if last_use[i] != usize::MAX {
                        expiring.entry(last_use[i].max(i)).or_default().push(slot);
                    }
                    Storage::Slot(slot)
                }
            };
            storage[i] = Some(st);
            // Slots whose last reader is this node become free after it.
            if let Some(done) = expiring.remove(&i) {
                free_slots.extend(done);
            }
        }
        let slot_buffers: Vec<Buffer> = slot_sizes
            .iter()
            .enumerate()
            .map(|(k, &b)| device.alloc(&format!("plan slot {k}"), (b / 4) as usize, DType::F32))
            .collect::<std::result::Result<_, _>>()?;
        let buffer = |id: NodeId| -> Buffer {
            match storage[id.0]
                .as_ref()
                .expect("inputs of live nodes are live")
            {
                Storage::Param(b) | Storage::Owned(b) => b.clone(),
                Storage::Slot(s) => slot_buffers[*s].clone(),
            }
        };

        let stats_update = running_stats_into_moments(graph, &live);
        let beta_sums = beta_sums_into_gamma(graph, &live, outputs);
        let acc_pairs = paired_accumulators(graph, &live, &folded);
        let mut kernels = Vec::new();
        // Adam steps that follow one another share dispatches (see
        // `adam_group_kernel`); anything else in between closes a group.
        let group_size = adam_group_size(device);
        let mut adam_run: Vec<NodeId> = Vec::new();
        let mut spare: Vec<Buffer> = Vec::new();
        for i in (0..nodes.len()).filter(|&i| live[i]) {
            // Leaves and views encode nothing, so they do not close a group;
            // a folded binary op is computed by its accumulator.
            let fused_update = matches!(nodes[i].op, Op::RunningStats { .. })
                && stats_update.contains(&Some(NodeId(i)));
            let beta_done = beta_sums.contains(&Some(NodeId(i)));
            let paired = acc_pairs.contains(&Some(NodeId(i)));
            if folded[i]
                || beta_done
                || paired
                || scaled[i]
                || normalized[i]
                || fused_update
                || matches!(
                    nodes[i].op,
                    Op::Param { .. } | Op::Input(_) | Op::Const(_) | Op::Reshape
                )
            {
                continue;
            }
            let adam = group_size > 1
                && nodes[i].op
                    == (Op::OptimizerStep {
                        rule: UpdateRule::Adam,
                    });
            // A run of Adam steps on one hyperparameter input is packed into
            // grouped dispatches when it ends.
            let same_run = adam_run
                .first()
                .is_none_or(|&first| nodes[first.0].inputs[4] == nodes[i].inputs[4]);
            if !adam || !same_run {
                kernels.extend(flush_adam_run(
                    device,
                    graph,
                    &mut adam_run,
                    &buffer,
                    &mut spare,
                    group_size,
                )?);
            }
            let grouped = adam;
            if grouped {
                adam_run.push(NodeId(i));
            } else if let Some(second) = acc_pairs[i] {
                kernels.push(accumulate_pair(
                    device,
                    graph,
                    [NodeId(i), second],
                    &buffer,
                )?);
            } else if let Some(k) = accumulate_folded(device, graph, NodeId(i), &folded, &buffer)? {
                kernels.push(k);
            } else if let Some(k) = scaling_folded(device, graph, NodeId(i), &scaled, &buffer)? {
                kernels.push(k);
            } else if let Some(k) = dropout_folded(device, graph, NodeId(i), &normalized, &buffer)?
            {
                kernels.push(k);
            } else if let (Op::BatchNormGradGamma { axis, eps }, Some(beta)) =
                (&nodes[i].op, beta_sums[i])
            {
                let x = &nodes[i].inputs;
                kernels.push(grad_gamma_beta_kernel(
                    device,
                    &buffer(NodeId(i)),
                    &buffer(beta),
                    &buffer(x[0]),
                    &buffer(x[1]),
                    &buffer(x[2]),
                    ChannelLayout::of(graph.shape(x[0]), *axis)?,
                    *eps,
                )?);
            } else if let (Op::Moments { axis }, Some(update)) = (&nodes[i].op, stats_update[i]) {
                let Op::RunningStats { keep, var_factor } = nodes[update.0].op else {
                    unreachable!("only running statistics are fused into moments");
                };
                let x = nodes[i].inputs[0];
                kernels.push(moments_update_kernel(
                    device,
                    &buffer(NodeId(i)),
                    &buffer(x),
                    ChannelLayout::of(graph.shape(x), *axis)?,
                    &buffer(nodes[update.0].inputs[0]),
                    keep,
                    var_factor,
                )?);
            } else {
                kernels.extend(build_kernels(device, graph, NodeId(i), &buffer)?);
            }
        }
        kernels.extend(flush_adam_run(
            device,
            graph,
            &mut adam_run,
            &buffer,
            &mut spare,
            group_size,
        )?);
        let outputs = outputs
            .iter()
            .map(|&o| (buffer(o), nodes[o.0].numel()))
            .collect();
        let stats = PlanStats {
            dispatches: kernels.len(),
            planned_bytes: slot_sizes.iter().sum(),
            intermediate_bytes,
            slots: slot_sizes.len(),
        };
        Ok(Self {
            device: device.clone(),
            kernels,
            inputs,
            outputs,
            stats,
        })
    }

    /// Times every kernel of the plan on its own: `reps` copies of it in one
    /// submission, waited for, five times; the median per copy. Returns
    /// (label, seconds) in plan order. Inputs keep whatever values they last
    /// had, and in-place updates are applied `5·reps` times: profile a
    /// throw-away model.
    pub fn profile(&self, reps: usize) -> Result<Vec<(String, f64)>> {
        let reps = reps.max(1);
        let mut out = Vec::new();
        for k in &self.kernels {
            let copies: Vec<&Kernel> = (0..reps).map(|_| k).collect();
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                self.device.run(&copies)?;
                self.device.synchronize()?;
                times.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            times.sort_by(f64::total_cmp);
            out.push((k.label().to_string(), times[2]));
        }
        Ok(out)
    }

    pub fn stats(&self) -> PlanStats {
        self.stats
    }

    /// Names and shapes of the inputs the plan expects.
    pub fn input_shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.inputs
            .iter()
            .map(|(n, _, s)| (n.as_str(), s.as_slice()))
    }

    /// Writes `feeds` (name, values), runs every kernel in one submission and
    /// returns the outputs' values in the order given at compile time.
    pub fn run(&mut self, feeds: &[(&str, &[f32])]) -> Result<Vec<Vec<f32>>> {
        for (name, buffer, shape) in &self.inputs {
            let expected: usize = shape.iter().product();
            let Some((_, values)) = feeds.iter().find(|(n, _)| n == name) else {
                return Err(GraphError::MissingInput {
                    name: name.clone(),
                    expected,
                    shape: shape.clone(),
                });
            };
            if values.len() != expected {
                return Err(GraphError::InputSize {
                    name: name.clone(),
                    got: values.len(),
                    expected,
                    shape: shape.clone(),
                });
            }
            if !values.is_empty() {
                self.device.write(buffer, 0, bytemuck::cast_slice(values))?;
            }
        }
        let kernels: Vec<&Kernel> = self.kernels.iter().collect();
        let reads: Vec<(&Buffer, u64)> = self
            .outputs
            .iter()
            .map(|(b, n)| (b, *n as u64 * 4))
            .collect();
        let raw = self.device.run_and_read(&kernels, &reads)?;
        Ok(raw
            .iter()
            .map(|bytes| {
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .collect())
    }
}

/// The kernel of a MatMul or Dense node writing into `out`, with dropout of
/// the result in the epilogue when given.
pub(crate) fn matmul_node_kernel(
    device: &Device,
    graph: &Graph,
    id: NodeId,
    out: &Buffer,
    buffer: &dyn Fn(NodeId) -> Buffer,
    dropout: Option<MatmulDropout<'_>>,
) -> Result<Kernel> {
    let node = graph.node(id);
    let x = |i: usize| node.inputs[i];
    let out = out.clone();
    Ok(match &node.op {
        Op::MatMul { trans_a, trans_b } => {
            let (a, b) = (buffer(x(0)), buffer(x(1)));
            let (sa, sb) = (graph.shape(x(0)), graph.shape(x(1)));
            let r = node.shape.len();
            let (m, n) = (node.shape[r - 2], node.shape[r - 1]);
            let k = if *trans_a {
                sa[sa.len() - 2]
            } else {
                sa[sa.len() - 1]
            };
            let batch: usize = node.shape[..r - 2].iter().product();
            // (row stride, batch stride); a rank-2 operand is shared by every batch.
            let strides = |s: &[usize]| {
                (
                    s[s.len() - 1],
                    if s.len() == 2 {
                        0
                    } else {
                        s[s.len() - 2] * s[s.len() - 1]
                    },
                )
            };
            let (lda, bsa) = strides(sa);
            let (ldb, bsb) = strides(sb);
            let spec = MatmulSpec {
                m,
                n,
                k,
                batch,
                a: MatmulOperand {
                    buffer: &a,
                    offset: 0,
                    row_stride: lda,
                    batch_stride: bsa,
                },
                b: MatmulOperand {
                    buffer: &b,
                    offset: 0,
                    row_stride: ldb,
                    batch_stride: bsb,
                },
                c: MatmulOperand {
                    buffer: &out,
                    offset: 0,
                    row_stride: n,
                    batch_stride: m * n,
                },
                trans_a: *trans_a,
                trans_b: *trans_b,
                bias: None,
                alpha: 1.0,
                beta: 0.0,
                activation: Activation::None,
                variant: MatmulVariant::Auto,
            };
            matmul_dropout_kernel(device, &spec, dropout)?
        }
        Op::Dense {
            activation,
            trans_w,
        } => {
            let (a, w) = (buffer(x(0)), buffer(x(1)));
            let bias = node.inputs.get(2).map(|&b| buffer(b));
            let (sx, sw) = (graph.shape(x(0)), graph.shape(x(1)));
            let (m, n) = (node.shape[0], node.shape[1]);
            let spec = MatmulSpec {
                m,
                n,
                k: sx[1],
                batch: 1,
                a: MatmulOperand {
                    buffer: &a,
                    offset: 0,
                    row_stride: sx[1],
                    batch_stride: 0,
                },
                b: MatmulOperand {
                    buffer: &w,
                    offset: 0,
                    row_stride: sw[1],
                    batch_stride: 0,
                },
                c: MatmulOperand {
                    buffer: &out,
                    offset: 0,
                    row_stride: n,
                    batch_stride: m * n,
                },
                trans_a: false,
                trans_b: *trans_w,
                bias: bias.as_ref().map(|b| MatmulBias {
                    buffer: b,
                    offset: 0,
                    row_stride: 0,
                    col_stride: 1,
                    batch_stride: 0,
                }),
                alpha: 1.0,
                beta: 1.0,
                activation: *activation,
                variant: MatmulVariant::Auto,
            };
            matmul_dropout_kernel(device, &spec, dropout)?
        }
        _ => {
            return Err(GraphError::Invalid(format!(
                "{} is not a matrix product",
                graph.describe(id)
            )))
        }
    })
}

/// The kernels computing node `id`: none for views and leaves, one per input
/// for a concatenation, else one.
fn build_kernels(
    device: &Device,
    graph: &Graph,
    id: NodeId,
    buffer: &dyn Fn(NodeId) -> Buffer,
) -> Result<Vec<Kernel>> {
    let node = graph.node(id);
    if node.numel() == 0 {
        return Ok(vec![]); // nothing to compute
    }
    let out = buffer(id);
    // An output computed from no elements is the operation's identity.
    let empty_input = node.inputs.iter().any(|&i| graph.node(i).numel() == 0);
    match &node.op {
        Op::Reduce { op, .. } if empty_input => {
            let identity = match op {
                ReduceOp::Sum => 0.0,
                ReduceOp::Mean => f32::NAN,
                ReduceOp::Max => f32::NEG_INFINITY,
                ReduceOp::Min => f32::INFINITY,
            };
            return Ok(vec![fill_kernel(device, &out, 0, node.numel(), identity)?]);
        }
        Op::MatMul { .. } if empty_input => {
            return Ok(vec![fill_kernel(device, &out, 0, node.numel(), 0.0)?])
        }
        _ => {}
    }
    let x = |i: usize| node.inputs[i];
    let contiguous = |i: usize| StridedLayout::contiguous(graph.shape(x(i)));
    let broadcast = |i: usize| contiguous(i).broadcast_to(&graph.describe(id), &node.shape);
    let kernel = match &node.op {
        Op::Input(_) | Op::Param { .. } | Op::Const(_) | Op::Reshape => return Ok(vec![]),
        Op::Unary(op) => {
            let b0 = buffer(x(0));
            unary_kernel(
                device,
                *op,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: contiguous(0),
                },
            )?
        }
        Op::Binary(op) => {
            let (b0, b1) = (buffer(x(0)), buffer(x(1)));
            binary_kernel(
                device,
                *op,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: broadcast(0)?,
                },
                Operand {
                    buffer: &b1,
                    layout: broadcast(1)?,
                },
            )?
        }
        Op::Select => {
            let (b0, b1, b2) = (buffer(x(0)), buffer(x(1)), buffer(x(2)));
            select_kernel(
                device,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: broadcast(0)?,
                },
                Operand {
                    buffer: &b1,
                    layout: broadcast(1)?,
                },
                Operand {
                    buffer: &b2,
                    layout: broadcast(2)?,
                },
            )?
        }
        Op::Reduce { op, axes } => {
            let b0 = buffer(x(0));
            reduce_kernel(
                device,
                *op,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: contiguous(0),
                },
                axes,
            )?
        }
        Op::Softmax { axis, log } => {
            softmax_kernel(device, &out, &buffer(x(0)), &node.shape, *axis, *log)?
        }
        Op::MatMul { .. } | Op::Dense { .. } => {
            matmul_node_kernel(device, graph, id, &out, buffer, None)?
        }
        Op::Permute(perm) => {
            let b0 = buffer(x(0));
            unary_kernel(
                device,
                UnaryOp::Identity,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: contiguous(0).permuted("Transpose", perm)?,
                },
            )?
        }
        Op::Expand => {
            let b0 = buffer(x(0));
            unary_kernel(
                device,
                UnaryOp::Identity,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: broadcast(0)?,
                },
            )?
        }
        Op::Slice { axis, start, .. } => {
            let b0 = buffer(x(0));
            let mut l = contiguous(0);
            l.offset = start * l.strides[*axis];
            l.shape = node.shape.clone();
            unary_kernel(
                device,
                UnaryOp::Identity,
                &out,
                0,
                Operand {
                    buffer: &b0,
                    layout: l,
                },
            )?
        }
        Op::Concat { axis } => {
            // One copy per input, each into its strided region of the output.
            let full = StridedLayout::contiguous(&node.shape);
            let mut at = 0;
            let mut ks = Vec::new();
            for i in 0..node.inputs.len() {
                let s = graph.shape(x(i)).to_vec();
                let region = StridedLayout {
                    offset: at * full.strides[*axis],
                    shape: s.clone(),
                    strides: full.strides.clone(),
                };
                at += s[*axis];
                let bi = buffer(x(i));
                ks.push(unary_into(
                    device,
                    UnaryOp::Identity,
                    Operand {
                        buffer: &out,
                        layout: region,
                    },
                    Operand {
                        buffer: &bi,
                        layout: contiguous(i),
                    },
                )?);
            }
            return Ok(ks);
        }
        Op::Moments { axis } => moments_kernel(
            device,
            &out,
            &buffer(x(0)),
            ChannelLayout::of(graph.shape(x(0)), *axis)?,
        )?,
        Op::BatchNorm { axis, eps, .. } => normalize_kernel(
            device,
            &out,
            &buffer(x(0)),
            &buffer(x(1)),
            &buffer(x(2)),
            &buffer(x(3)),
            ChannelLayout::of(graph.shape(x(0)), *axis)?,
            *eps,
        )?,
        Op::BatchNormGradGamma { axis, eps } => grad_gamma_kernel(
            device,
            &out,
            &buffer(x(0)),
            &buffer(x(1)),
            &buffer(x(2)),
            ChannelLayout::of(graph.shape(x(0)), *axis)?,
            *eps,
        )?,
        Op::BatchNormGradInput {
            axis,
            eps,
            batch_stats,
            relu_input,
        } => {
            let sums = batch_stats.then(|| (buffer(x(4)), buffer(x(5))));
            grad_input_kernel(
                device,
                &out,
                &buffer(x(0)),
                &buffer(x(1)),
                &buffer(x(2)),
                &buffer(x(3)),
                sums.as_ref().map(|(a, b)| (a, b)),
                ChannelLayout::of(graph.shape(x(0)), *axis)?,
                *eps,
                *relu_input,
            )?
        }
        Op::Dropout { rate, seed } => dropout_kernel(
            device,
            &out,
            &buffer(x(0)),
            node.numel(),
            *seed,
            *rate,
            &buffer(x(1)),
        )?,
        Op::OptimizerStep { rule } => {
            let n = node.inputs.len();
            let s2 = (n == 5).then(|| buffer(x(3)));
            optimizer_step_kernel(
                device,
                *rule,
                node.numel(),
                &out,
                &buffer(x(1)),
                (&buffer(x(2)), s2.as_ref()),
                &buffer(x(n - 1)),
            )?
        }
        Op::RunningStats { keep, var_factor } => running_stats_kernel(
            device,
            node.shape[1],
            &out,
            &buffer(x(1)),
            *keep,
            *var_factor,
        )?,
        Op::Accumulate { keep, scale } if node.numel() == 1 => accumulate_sum_kernel(
            device,
            graph.node(x(1)).numel(),
            &out,
            &buffer(x(1)),
            *keep,
            *scale,
        )?,
        Op::Accumulate { keep, scale } => {
            axpby_kernel(device, node.numel(), &out, &buffer(x(1)), *keep, *scale)?
        }
        Op::Assign => {
            let v = buffer(x(1));
            unary_kernel(
                device,
                UnaryOp::Identity,
                &out,
                0,
                Operand {
                    buffer: &v,
                    layout: contiguous(1),
                },
            )?
        }
    };
    Ok(vec![kernel])
}
