//! The reductions of a reduction group: sums, means and extrema, device
//! accumulators of sums, and batch moments with the running statistics
//! moved toward them in the same pass.

use kiln_backend::codegen::{ReduceKind, ReduceOutput, Reduction, RunningUpdate};
use kiln_backend::{Buffer, ReduceOp};

use super::Builder;
use crate::error::{GraphError, Result};
use crate::fusion::{Class, Fused};
use crate::graph::Op;

/// The reductions among a group's `roots`, their reduced values built in
/// `b`'s program.
pub(super) fn reductions(
    b: &mut Builder<'_, '_>,
    fused: &Fused,
    roots: &[usize],
) -> Result<Vec<Reduction>> {
    let (graph, storage) = (b.graph, b.storage);
    let nodes = graph.nodes();
    let mut reds: Vec<Reduction> = Vec::new();
    for &r in roots {
        let node = &nodes[r];
        match &node.op {
            Op::Reduce { op, .. } => {
                let expr = b.value(node.inputs[0].index())?;
                let kind = match op {
                    ReduceOp::Sum => ReduceKind::Sum,
                    ReduceOp::Mean => ReduceKind::Mean,
                    ReduceOp::Max => ReduceKind::Max,
                    ReduceOp::Min => ReduceKind::Min,
                };
                reds.push(Reduction {
                    kind,
                    expr,
                    output: ReduceOutput::Write {
                        buffer: storage.buffer(r)?,
                        offset: 0,
                    },
                });
            }
            Op::Accumulate { keep, scale } if fused.classes[r] == Class::Reduction => {
                let expr = b.value(node.inputs[1].index())?;
                reds.push(Reduction {
                    kind: ReduceKind::Sum,
                    expr,
                    output: ReduceOutput::Accumulate {
                        buffer: storage.buffer(node.inputs[0].index())?,
                        offset: 0,
                        keep: *keep,
                        scale: *scale,
                    },
                });
            }
            Op::Moments { .. } => {
                let expr = b.value(node.inputs[0].index())?;
                let result = |k: usize| -> Result<Buffer> {
                    match fused.result(graph, r, k) {
                        Some(o) => storage.buffer(o),
                        None => storage.scratch(node.results[k].iter().product()),
                    }
                };
                // Running statistics moved toward these moments in the same pass.
                let running = roots.iter().find_map(|&u| {
                    let un = &nodes[u];
                    let Op::RunningStats { keep, var_factor } = un.op else {
                        return None;
                    };
                    let mean = un.inputs[2].index();
                    (nodes[mean].inputs.first().map(|i| i.index()) == Some(r)).then(|| {
                        let buf = |k: usize| storage.buffer(un.inputs[k].index());
                        Ok::<_, GraphError>(RunningUpdate {
                            mean: buf(0)?,
                            var: buf(1)?,
                            keep,
                            var_factor,
                            count: un
                                .inputs
                                .get(4)
                                .map(|c| storage.buffer(c.index()))
                                .transpose()?,
                        })
                    })
                });
                reds.push(Reduction {
                    kind: ReduceKind::Moments,
                    expr,
                    output: ReduceOutput::Moments {
                        mean: (result(0)?, 0),
                        var: (result(1)?, 0),
                        running: running.transpose()?,
                    },
                });
            }
            _ => {}
        }
    }
    Ok(reds)
}
