//! The kernels of the groups that are not one generated program: ops with
//! kernels of their own (softmax, concatenation, pooling and their
//! gradients) and optimizer steps grouped into as few dispatches as the
//! adapter allows.

use kiln_backend::codegen::{
    ConcatKernel, ConcatPart, KernelDescription, PoolIo, PoolKernel, PoolKind, SoftmaxKernel,
    UpdateKernel, UpdateSlot,
};
use kiln_backend::ops::optim::update_group_size;
use kiln_backend::{Buffer, Device, StridedLayout};

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
) -> Result<Vec<KernelDescription>> {
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
        Op::Softmax { axis, log } => vec![SoftmaxKernel {
            out: storage.buffer(s)?,
            x: storage.buffer(x(0))?,
            shape: node.shape.clone(),
            axis: *axis,
            log: *log,
        }
        .into()],
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
                    regions.push(ConcatPart {
                        source: storage.buffer(x(i))?,
                        shape,
                        region,
                    });
                }
            }
            let per_kernel = (device.kernel_profile().max_storage_buffers_per_stage as usize)
                .saturating_sub(2)
                .max(1);
            regions
                .chunks(per_kernel)
                .map(|parts| {
                    ConcatKernel {
                        out: out.clone(),
                        parts: parts.to_vec(),
                    }
                    .into()
                })
                .collect()
        }
        Op::OptimizerStep { .. } => return updates(device, graph, &[s], storage),
        Op::Pool2d { .. } | Op::Pool2dGrad { .. } => {
            let (kind, geometry) = node_pool_geometry(graph, s)?;
            let max = matches!(kind, PoolKind::Max);
            let io = match node.op {
                Op::Pool2d { .. } if max => PoolIo::Forward {
                    x: storage.buffer(x(0))?,
                    y: Some(result(0)?),
                    indices: Some(result(1)?),
                },
                Op::Pool2d { .. } => PoolIo::Forward {
                    x: storage.buffer(x(0))?,
                    y: Some(storage.buffer(s)?),
                    indices: None,
                },
                _ => PoolIo::Backward {
                    dy: storage.buffer(x(0))?,
                    indices: max.then(|| storage.buffer(x(1))).transpose()?,
                    dx: storage.buffer(s)?,
                },
            };
            vec![PoolKernel {
                label: node.op.name(),
                kind,
                geometry,
                io,
            }
            .into()]
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
) -> Result<Vec<KernelDescription>> {
    let nodes = graph.nodes();
    let Op::OptimizerStep { rule } = nodes[steps[0]].op else {
        return Err(GraphError::Internal(
            "internal: an update group without steps".into(),
        ));
    };
    let group_size = update_group_size(device.kernel_profile(), rule);
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
        let slots: Vec<UpdateSlot> = chunk
            .iter()
            .map(|&s| {
                let x = &nodes[s].inputs;
                let held = x[..x.len() - 1]
                    .iter()
                    .map(|i| storage.buffer(i.index()))
                    .collect::<Result<Vec<Buffer>>>()?;
                Ok(UpdateSlot {
                    n: nodes[s].numel(),
                    param: held[0].clone(),
                    grad: held[1].clone(),
                    states: held[2..].to_vec(),
                })
            })
            .collect::<Result<_>>()?;
        let inputs = &nodes[chunk[0]].inputs;
        let hyper = storage.buffer(inputs[inputs.len() - 1].index())?;
        kernels.push(UpdateKernel { rule, slots, hyper }.into());
    }
    Ok(kernels)
}
