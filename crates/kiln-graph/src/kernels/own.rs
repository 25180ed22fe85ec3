//! The kernels of the groups that are not one generated program: ops with
//! kernels of their own (softmax, concatenation, pooling and their
//! gradients) and optimizer steps grouped into as few dispatches as the
//! adapter allows.

use kiln_backend::codegen::{
    pool_kernel, segmented_kernel, Expr, Operand, PoolIo, PoolKind, Program, Segment, Store,
};
use kiln_backend::ops::optim::{update_group_size, update_kernel, UpdateSlot};
use kiln_backend::ops::softmax::softmax_kernel;
use kiln_backend::{Buffer, Device, Kernel, StridedLayout};

use super::Storage;
use crate::conv_ops::node_pool_geometry;
use crate::error::{GraphError, Result};
use crate::fusion::Fused;
use crate::graph::{Graph, Op};

/// The kernels of an op that has its own: softmax, concatenation,
/// pooling, an optimizer step. `stored` lists the values the group stores.
pub(super) fn single(
    device: &Device,
    graph: &Graph,
    fused: &Fused,
    s: usize,
    storage: &Storage<'_>,
) -> Result<Vec<Kernel>> {
    let node = &graph.nodes()[s];
    let x = |k: usize| node.inputs[k].index();
    let numel = |shape: &[usize]| shape.iter().product::<usize>();
    if numel(&node.shape) == 0 || node.results.iter().any(|r| numel(r) == 0) {
        return Ok(vec![]);
    }
    // The buffer of result `k` of a multi-result node, or scratch where
    // nothing reads it.
    let result = |k: usize| -> Result<Buffer> {
        match fused.result(graph, s, k) {
            Some(o) => storage.buffer(o),
            None => storage.scratch(numel(&node.results[k])),
        }
    };
    Ok(match &node.op {
        Op::Softmax { axis, log } => vec![softmax_kernel(
            device,
            &storage.buffer(s)?,
            &storage.buffer(x(0))?,
            &node.shape,
            *axis,
            *log,
        )?],
        Op::Concat { axis } => {
            // Every input copied into its strided region of the output, as
            // the segments of one kernel (as many as the adapter can bind).
            let out = storage.buffer(s)?;
            let full = StridedLayout::contiguous(&node.shape);
            let mut regions = Vec::new();
            let mut at = 0;
            for i in 0..node.inputs.len() {
                let shape = graph.shape(node.inputs[i]).to_vec();
                let region = StridedLayout {
                    offset: at * full.strides[*axis],
                    shape: shape.clone(),
                    strides: full.strides.clone(),
                };
                at += shape[*axis];
                if shape.iter().product::<usize>() > 0 {
                    regions.push((storage.buffer(x(i))?, shape, region));
                }
            }
            let per_kernel = (device.summary().max_storage_buffers_per_stage as usize)
                .saturating_sub(2)
                .max(1);
            let mut p = Program::default();
            let l = p.push(Expr::Load(0));
            let mut ks = Vec::new();
            for chunk in regions.chunks(per_kernel) {
                let segments: Vec<Segment<'_>> = chunk
                    .iter()
                    .map(|(src, shape, region)| Segment {
                        shape: shape.clone(),
                        operands: vec![Operand {
                            buffer: src,
                            layout: StridedLayout::contiguous(shape),
                        }],
                        stores: vec![Store {
                            expr: l,
                            buffer: &out,
                            layout: region.clone(),
                        }],
                    })
                    .collect();
                ks.push(segmented_kernel(device, "concat", &p, &segments)?);
            }
            ks
        }
        Op::OptimizerStep { .. } => return updates(device, graph, &[s], storage),
        Op::Pool2d { .. } => {
            let (kind, geometry) = node_pool_geometry(graph, s)?;
            let x_buf = storage.buffer(x(0))?;
            let (values, indices) = match kind {
                PoolKind::Max => (result(0)?, Some(result(1)?)),
                PoolKind::Average { .. } => (storage.buffer(s)?, None),
            };
            let io = PoolIo::Forward {
                x: &x_buf,
                y: Some(&values),
                indices: indices.as_ref(),
            };
            vec![pool_kernel(device, &node.op.name(), kind, &geometry, io)?]
        }
        Op::Pool2dGrad { .. } => {
            let (kind, geometry) = node_pool_geometry(graph, s)?;
            let (dy, dx) = (storage.buffer(x(0))?, storage.buffer(s)?);
            let indices = match kind {
                PoolKind::Max => Some(storage.buffer(x(1))?),
                PoolKind::Average { .. } => None,
            };
            let io = PoolIo::Backward {
                dy: &dy,
                indices: indices.as_ref(),
                dx: &dx,
            };
            vec![pool_kernel(device, &node.op.name(), kind, &geometry, io)?]
        }
        other => {
            return Err(GraphError::Internal(format!(
                "internal: {} has no kernel of its own",
                other.name()
            )))
        }
    })
}

/// Optimizer steps on one hyperparameter input, as few dispatches as the
/// adapter's storage-buffer limit allows: parameters whose sizes are
/// multiples of 4 share vec4 dispatches, the rest scalar ones.
pub(super) fn updates(
    device: &Device,
    graph: &Graph,
    steps: &[usize],
    storage: &Storage<'_>,
) -> Result<Vec<Kernel>> {
    let nodes = graph.nodes();
    let Op::OptimizerStep { rule } = nodes[steps[0]].op else {
        return Err(GraphError::Internal(
            "internal: an update group without steps".into(),
        ));
    };
    let group_size = update_group_size(device, rule);
    let (aligned, mut rest): (Vec<usize>, Vec<usize>) = steps
        .iter()
        .filter(|&&s| nodes[s].numel() > 0)
        .partition(|&&s| nodes[s].numel().is_multiple_of(4));
    let whole = aligned.len() - aligned.len() % group_size;
    rest.extend_from_slice(&aligned[whole..]);
    let mut kernels = Vec::new();
    for chunk in aligned[..whole]
        .chunks(group_size)
        .chain(rest.chunks(group_size))
    {
        let held: Vec<Vec<Buffer>> = chunk
            .iter()
            .map(|&s| {
                let x = &nodes[s].inputs;
                x[..x.len() - 1]
                    .iter()
                    .map(|i| storage.buffer(i.index()))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        let slots: Vec<UpdateSlot<'_>> = chunk
            .iter()
            .zip(&held)
            .map(|(&s, b)| UpdateSlot {
                n: nodes[s].numel(),
                param: &b[0],
                grad: &b[1],
                states: b[2..].iter().collect(),
            })
            .collect();
        let inputs = &nodes[chunk[0]].inputs;
        let hyper = storage.buffer(inputs[inputs.len() - 1].index())?;
        kernels.push(update_kernel(device, rule, &slots, &hyper)?);
    }
    Ok(kernels)
}
