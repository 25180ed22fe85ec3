//! Plan-level fusions: patterns in a compiled graph that one kernel can
//! compute where the graph says two (a batch norm and the dropout of its
//! output, a binary op and the accumulator that sums it, Adam steps on
//! several parameters, …). Each detector returns which nodes it folds; the
//! plan skips those and has the surviving node's kernel compute them, after
//! extending the folded operands' lifetimes to that kernel.
//! On CPU adapters every dispatch has a fixed cost, so these matter there most.

use kiln_backend::ops::batchnorm::{normalize_dropout_kernel, ChannelLayout};
use kiln_backend::ops::elementwise::{
    accumulate_binary_kernel, accumulate_binary_pair_kernel, scaled_binary_kernel, Operand,
};
use kiln_backend::ops::matmul::MatmulDropout;
use kiln_backend::ops::optim::{adam_group_kernel, AdamSlot};
use kiln_backend::{BinaryOp, Buffer, DType, Device, Kernel, ReduceOp, StridedLayout};

use crate::error::Result;
use crate::graph::{Graph, NodeId, Op};
use crate::plan::matmul_node_kernel;

/// How many live nodes (and outputs) read each node.
fn reader_counts(graph: &Graph, live: &[bool], outputs: &[NodeId]) -> Vec<usize> {
    let nodes = graph.nodes();
    let mut readers = vec![0usize; nodes.len()];
    for i in (0..nodes.len()).filter(|&i| live[i]) {
        for x in &nodes[i].inputs {
            readers[x.0] += 1;
        }
    }
    for o in outputs {
        readers[o.0] += 1;
    }
    readers
}

/// Binary ops read only by a one-element accumulator, with operands of the
/// op's own shape: the accumulator computes them as it sums
/// (`accumulate_binary_kernel`), so their values never need a pass or a buffer.
pub(crate) fn folded_into_accumulators(
    graph: &Graph,
    live: &[bool],
    outputs: &[NodeId],
) -> Vec<bool> {
    let nodes = graph.nodes();
    let mut readers = vec![0usize; nodes.len()];
    let mut reader = vec![None; nodes.len()];
    for i in (0..nodes.len()).filter(|&i| live[i]) {
        for x in &nodes[i].inputs {
            readers[x.0] += 1;
            reader[x.0] = Some(i);
        }
    }
    for o in outputs {
        readers[o.0] += 1;
    }
    (0..nodes.len())
        .map(|v| {
            let node = &nodes[v];
            let same_shapes = node.inputs.iter().all(|x| graph.shape(*x) == node.shape);
            live[v]
                && matches!(node.op, Op::Binary(_))
                && same_shapes
                && readers[v] == 1
                && reader[v].is_some_and(|r| {
                    matches!(nodes[r].op, Op::Accumulate { .. })
                        && nodes[r].numel() == 1
                        && nodes[r].inputs[1] == NodeId(v)
                })
        })
        .collect()
}

/// Batch norms and matrix products read only by a dropout of their output:
/// the dropout's kernel normalises (or multiplies) and drops in one pass.
pub(crate) fn folded_into_dropout(graph: &Graph, live: &[bool], outputs: &[NodeId]) -> Vec<bool> {
    let nodes = graph.nodes();
    let readers = reader_counts(graph, live, outputs);
    let mut folded = vec![false; nodes.len()];
    for d in (0..nodes.len()).filter(|&d| live[d]) {
        if matches!(nodes[d].op, Op::Dropout { .. }) {
            let b = nodes[d].inputs[0];
            let producer = matches!(
                nodes[b.0].op,
                Op::BatchNorm { .. } | Op::MatMul { .. } | Op::Dense { .. }
            );
            if producer && readers[b.0] == 1 && nodes[b.0].shape == nodes[d].shape {
                folded[b.0] = true;
            }
        }
    }
    folded
}

/// A dropout of a folded batch norm or matrix product, as one kernel; `None`
/// for any other node.
pub(crate) fn dropout_folded(
    device: &Device,
    graph: &Graph,
    id: NodeId,
    folded: &[bool],
    buffer: &dyn Fn(NodeId) -> Buffer,
) -> Result<Option<Kernel>> {
    let node = graph.node(id);
    let Op::Dropout { rate, seed } = node.op else {
        return Ok(None);
    };
    let bn = node.inputs[0];
    if !folded[bn.0] {
        return Ok(None);
    }
    let Op::BatchNorm { axis, eps, .. } = graph.node(bn).op else {
        let step = buffer(node.inputs[1]);
        let dropout = MatmulDropout {
            step: &step,
            seed,
            rate,
        };
        return Ok(Some(matmul_node_kernel(
            device,
            graph,
            bn,
            &buffer(id),
            buffer,
            Some(dropout),
        )?));
    };
    let x = &graph.node(bn).inputs;
    Ok(Some(normalize_dropout_kernel(
        device,
        &buffer(id),
        &buffer(x[0]),
        &buffer(x[1]),
        &buffer(x[2]),
        &buffer(x[3]),
        ChannelLayout::of(graph.shape(x[0]), axis)?,
        eps,
        &buffer(node.inputs[1]),
        seed,
        rate,
    )?))
}

/// The uniform value of a constant whose elements are all equal.
pub(crate) fn uniform_constant(graph: &Graph, id: NodeId) -> Option<f32> {
    match &graph.node(id).op {
        Op::Const(v) if v.iter().all(|&x| x.to_bits() == v[0].to_bits()) => Some(v[0]),
        _ => None,
    }
}

/// The binary op of `c · op(a, b)` (a product with a uniform constant), when
/// `op(a, b)` is read by nothing else and has the product's shape: the
/// product's kernel computes it with the factor applied.
pub(crate) fn folded_into_scaling(graph: &Graph, live: &[bool], outputs: &[NodeId]) -> Vec<bool> {
    let nodes = graph.nodes();
    let readers = reader_counts(graph, live, outputs);
    let mut folded = vec![false; nodes.len()];
    for m in (0..nodes.len()).filter(|&m| live[m]) {
        if let Some((_, inner)) = scaled_product(graph, NodeId(m)) {
            if readers[inner.0] == 1 && graph.shape(inner) == nodes[m].shape.as_slice() {
                folded[inner.0] = true;
            }
        }
    }
    folded
}

/// (factor, binary node) when `id` is a product of a uniform constant and a
/// binary op.
pub(crate) fn scaled_product(graph: &Graph, id: NodeId) -> Option<(f32, NodeId)> {
    let node = graph.node(id);
    if node.op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    let (a, b) = (node.inputs[0], node.inputs[1]);
    let is_binary = |x: NodeId| matches!(graph.node(x).op, Op::Binary(_));
    match (uniform_constant(graph, a), uniform_constant(graph, b)) {
        (Some(c), _) if is_binary(b) => Some((c, b)),
        (_, Some(c)) if is_binary(a) => Some((c, a)),
        _ => None,
    }
}

/// The product of a folded binary op and its constant, as one kernel.
pub(crate) fn scaling_folded(
    device: &Device,
    graph: &Graph,
    id: NodeId,
    folded: &[bool],
    buffer: &dyn Fn(NodeId) -> Buffer,
) -> Result<Option<Kernel>> {
    let Some((c, inner)) = scaled_product(graph, id) else {
        return Ok(None);
    };
    if !folded[inner.0] {
        return Ok(None);
    }
    let v = graph.node(inner);
    let Op::Binary(op) = v.op else {
        return Ok(None);
    };
    let what = graph.describe(inner);
    let layout =
        |x: NodeId| StridedLayout::contiguous(graph.shape(x)).broadcast_to(&what, &v.shape);
    let (a, b) = (buffer(v.inputs[0]), buffer(v.inputs[1]));
    Ok(Some(scaled_binary_kernel(
        device,
        op,
        c,
        &buffer(id),
        0,
        Operand {
            buffer: &a,
            layout: layout(v.inputs[0])?,
        },
        Operand {
            buffer: &b,
            layout: layout(v.inputs[1])?,
        },
    )?))
}

/// For a one-element accumulator of a folded binary op, the next such
/// accumulator over the same two operands (the loss and a metric of the same
/// predictions): both are fed from one pass.
pub(crate) fn paired_accumulators(
    graph: &Graph,
    live: &[bool],
    folded: &[bool],
) -> Vec<Option<NodeId>> {
    let nodes = graph.nodes();
    let operands = |i: usize| -> Option<&[NodeId]> {
        let n = &nodes[i];
        match n.op {
            Op::Accumulate { .. } if n.numel() == 1 && folded[n.inputs[1].0] => {
                Some(nodes[n.inputs[1].0].inputs.as_slice())
            }
            _ => None,
        }
    };
    let mut pairs = vec![None; nodes.len()];
    let mut taken = vec![false; nodes.len()];
    for i in (0..nodes.len()).filter(|&i| live[i]) {
        let Some(ops) = operands(i) else { continue };
        if taken[i] {
            continue;
        }
        let partner = (i + 1..nodes.len())
            .filter(|&j| live[j] && !taken[j])
            .find(|&j| operands(j) == Some(ops));
        if let Some(j) = partner {
            pairs[i] = Some(NodeId(j));
            taken[i] = true;
            taken[j] = true;
        }
    }
    pairs
}

/// Two paired accumulators as one kernel.
pub(crate) fn accumulate_pair(
    device: &Device,
    graph: &Graph,
    accs: [NodeId; 2],
    buffer: &dyn Fn(NodeId) -> Buffer,
) -> Result<Kernel> {
    let parts = accs.map(|id| {
        let node = graph.node(id);
        let (Op::Accumulate { keep, scale }, Op::Binary(op)) =
            (&node.op, &graph.node(node.inputs[1]).op)
        else {
            unreachable!("paired accumulators sum folded binary ops");
        };
        (*keep, *scale, *op, node.inputs[1])
    });
    let v = graph.node(parts[0].3);
    let (a, b) = (buffer(v.inputs[0]), buffer(v.inputs[1]));
    let layout = StridedLayout::contiguous(&v.shape);
    let (acc0, acc1) = (buffer(accs[0]), buffer(accs[1]));
    Ok(accumulate_binary_pair_kernel(
        device,
        [parts[0].2, parts[1].2],
        [&acc0, &acc1],
        Operand {
            buffer: &a,
            layout: layout.clone(),
        },
        Operand { buffer: &b, layout },
        [parts[0].0, parts[1].0],
        [parts[0].1, parts[1].1],
    )?)
}

/// The accumulator of a folded binary op, as one kernel; `None` for any other node.
pub(crate) fn accumulate_folded(
    device: &Device,
    graph: &Graph,
    id: NodeId,
    folded: &[bool],
    buffer: &dyn Fn(NodeId) -> Buffer,
) -> Result<Option<Kernel>> {
    let node = graph.node(id);
    let Op::Accumulate { keep, scale } = node.op else {
        return Ok(None);
    };
    let value = node.inputs[1];
    if !folded[value.0] {
        return Ok(None);
    }
    let v = graph.node(value);
    let Op::Binary(op) = v.op else {
        return Ok(None);
    };
    let (a, b) = (buffer(v.inputs[0]), buffer(v.inputs[1]));
    let layout = StridedLayout::contiguous(&v.shape);
    Ok(Some(accumulate_binary_kernel(
        device,
        op,
        &buffer(id),
        Operand {
            buffer: &a,
            layout: layout.clone(),
        },
        Operand { buffer: &b, layout },
        keep,
        scale,
    )?))
}

/// For each BatchNormGradGamma node, the earlier sum of the same upstream
/// gradient over every axis but the channel one (the gradient of beta), when
/// nothing reads that sum before the gamma gradient: both come from one pass.
pub(crate) fn beta_sums_into_gamma(
    graph: &Graph,
    live: &[bool],
    outputs: &[NodeId],
) -> Vec<Option<NodeId>> {
    let nodes = graph.nodes();
    let mut first_reader = vec![usize::MAX; nodes.len()];
    for i in (0..nodes.len()).filter(|&i| live[i]) {
        for x in &nodes[i].inputs {
            first_reader[x.0] = first_reader[x.0].min(i);
        }
    }
    for o in outputs {
        first_reader[o.0] = 0;
    }
    let mut fused = vec![None; nodes.len()];
    for g in (0..nodes.len()).filter(|&g| live[g]) {
        let Op::BatchNormGradGamma { axis, .. } = nodes[g].op else {
            continue;
        };
        let dy = nodes[g].inputs[2];
        let rank = graph.shape(dy).len();
        let others: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
        let sum = (0..g).filter(|&r| live[r]).find(|&r| {
            nodes[r].inputs.first() == Some(&dy)
                && nodes[r].op
                    == (Op::Reduce {
                        op: ReduceOp::Sum,
                        axes: others.clone(),
                    })
                && nodes[r].shape == nodes[g].shape
                && first_reader[r] > g
                && !fused.contains(&Some(NodeId(r)))
        });
        fused[g] = sum.map(NodeId);
    }
    fused
}

/// For each Moments node, the running-statistics update that reads it, when
/// the two can be one kernel: nothing between them reads the running
/// statistics (the update moves earlier, to the moments' place).
pub(crate) fn running_stats_into_moments(graph: &Graph, live: &[bool]) -> Vec<Option<NodeId>> {
    let nodes = graph.nodes();
    let mut fused = vec![None; nodes.len()];
    for r in (0..nodes.len()).filter(|&r| live[r]) {
        if !matches!(nodes[r].op, Op::RunningStats { .. }) {
            continue;
        }
        let (running, moments) = (nodes[r].inputs[0], nodes[r].inputs[1]);
        if !matches!(nodes[moments.0].op, Op::Moments { .. }) || fused[moments.0].is_some() {
            continue;
        }
        let Op::Param { name, .. } = &nodes[running.0].op else {
            continue;
        };
        let read_between = (moments.0 + 1..r).filter(|&j| live[j]).any(|j| {
            nodes[j]
                .inputs
                .iter()
                .any(|x| matches!(&nodes[x.0].op, Op::Param { name: n, .. } if n == name))
        });
        if !read_between {
            fused[moments.0] = Some(NodeId(r));
        }
    }
    fused
}

/// Grouped Adam kernels for a run of steps (emptied): parameters whose sizes
/// are multiples of 4 go four to a vec4 dispatch; the rest, with any aligned
/// ones left over, four to a scalar dispatch.
pub(crate) fn flush_adam_run(
    device: &Device,
    graph: &Graph,
    run: &mut Vec<NodeId>,
    buffer: &dyn Fn(NodeId) -> Buffer,
    spare: &mut Vec<Buffer>,
    group_size: usize,
) -> Result<Vec<Kernel>> {
    let (aligned, mut rest): (Vec<NodeId>, Vec<NodeId>) = run
        .drain(..)
        .partition(|&id| graph.node(id).numel().is_multiple_of(4));
    let whole = aligned.len() - aligned.len() % group_size.max(1);
    rest.extend_from_slice(&aligned[whole..]);
    let mut kernels = Vec::new();
    for chunk in aligned[..whole]
        .chunks(group_size.max(1))
        .chain(rest.chunks(group_size.max(1)))
    {
        let mut group = chunk.to_vec();
        kernels.extend(flush_adam_group(device, graph, &mut group, buffer, spare)?);
    }
    Ok(kernels)
}

/// One grouped Adam kernel for the steps in `group` (emptied).
pub(crate) fn flush_adam_group(
    device: &Device,
    graph: &Graph,
    group: &mut Vec<NodeId>,
    buffer: &dyn Fn(NodeId) -> Buffer,
    spare: &mut Vec<Buffer>,
) -> Result<Option<Kernel>> {
    if group.is_empty() {
        return Ok(None);
    }
    if spare.is_empty() {
        for k in 0..4 {
            spare.push(device.alloc(&format!("adam spare {k}"), 4, DType::F32)?);
        }
    }
    let held: Vec<[Buffer; 4]> = group
        .iter()
        .map(|&id| {
            let x = &graph.node(id).inputs;
            [buffer(x[0]), buffer(x[1]), buffer(x[2]), buffer(x[3])]
        })
        .collect();
    let slots: Vec<AdamSlot<'_>> = group
        .iter()
        .zip(&held)
        .map(|(&id, b)| AdamSlot {
            n: graph.node(id).numel(),
            param: &b[0],
            grad: &b[1],
            m: &b[2],
            v: &b[3],
        })
        .collect();
    let hyper = buffer(graph.node(group[0]).inputs[4]);
    let k = adam_group_kernel(
        device,
        &slots,
        &hyper,
        [&spare[0], &spare[1], &spare[2], &spare[3]],
    )?;
    group.clear();
    Ok(Some(k))
}
