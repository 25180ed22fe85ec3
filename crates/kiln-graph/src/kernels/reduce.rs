//! The reductions of a reduction group: sums, means and extrema, device
//! accumulators of sums, and batch moments with the running statistics
//! moved toward them in the same pass.

use kiln_backend::codegen::{ReduceKind, ReduceOutput, Reduction, RunningUpdate};
use kiln_backend::{Buffer, ReduceOp};

use super::Builder;
use crate::error::{GraphError, Result};
use crate::fusion::{Class, Fused};
use crate::graph::Op;

/// One reduction of a group: its kind, the program value it reduces, where
/// it writes, and for accumulators and moments what they fold in.
pub(super) struct Red {
    kind: ReduceKind,
    expr: usize,
    out: Vec<Buffer>,
    /// An accumulator's `(keep, scale)`: `out = keep·out + scale·Σ`.
    acc: Option<(f32, f32)>,
    /// Running mean and variance, their `keep` and variance factor, and
    /// the batch counter, moved toward batch moments.
    running: Option<(Buffer, Buffer, f32, f32, Option<Buffer>)>,
}

impl Red {
    /// The reduction as the generator takes it.
    pub(super) fn output(&self) -> Reduction<'_> {
        let output = match (self.kind, &self.acc) {
            (ReduceKind::Moments, _) => ReduceOutput::Moments {
                mean: (&self.out[0], 0),
                var: (&self.out[1], 0),
                running: self
                    .running
                    .as_ref()
                    .map(|(m, v, keep, f, c)| RunningUpdate {
                        mean: m,
                        var: v,
                        keep: *keep,
                        var_factor: *f,
                        count: c.as_ref(),
                    }),
            },
            (_, Some((keep, scale))) => ReduceOutput::Accumulate {
                buffer: &self.out[0],
                offset: 0,
                keep: *keep,
                scale: *scale,
            },
            _ => ReduceOutput::Write {
                buffer: &self.out[0],
                offset: 0,
            },
        };
        Reduction {
            kind: self.kind,
            expr: self.expr,
            output,
        }
    }
}

/// The reductions among a group's `roots`, their reduced values built in
/// `b`'s program.
pub(super) fn reductions(
    b: &mut Builder<'_, '_>,
    fused: &Fused,
    roots: &[usize],
) -> Result<Vec<Red>> {
    let (graph, storage) = (b.graph, b.storage);
    let nodes = graph.nodes();
    let mut reds: Vec<Red> = Vec::new();
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
                reds.push(Red {
                    kind,
                    expr,
                    out: vec![storage.buffer(r)?],
                    acc: None,
                    running: None,
                });
            }
            Op::Accumulate { keep, scale } if fused.classes[r] == Class::Reduction => {
                let expr = b.value(node.inputs[1].index())?;
                reds.push(Red {
                    kind: ReduceKind::Sum,
                    expr,
                    out: vec![storage.buffer(node.inputs[0].index())?],
                    acc: Some((*keep, *scale)),
                    running: None,
                });
            }
            Op::Moments { .. } => {
                let expr = b.value(node.inputs[0].index())?;
                let results: Vec<Buffer> = (0..2)
                    .map(|k| match fused.result(graph, r, k) {
                        Some(o) => storage.buffer(o),
                        None => storage.scratch(node.results[k].iter().product()),
                    })
                    .collect::<Result<_>>()?;
                // Running statistics moved toward these moments in the same pass.
                let running = roots.iter().find_map(|&u| {
                    let un = &nodes[u];
                    let Op::RunningStats { keep, var_factor } = un.op else {
                        return None;
                    };
                    let mean = un.inputs[2].index();
                    (nodes[mean].inputs.first().map(|i| i.index()) == Some(r)).then(|| {
                        let buf = |k: usize| storage.buffer(un.inputs[k].index());
                        Ok::<_, GraphError>((
                            buf(0)?,
                            buf(1)?,
                            keep,
                            var_factor,
                            un.inputs
                                .get(4)
                                .map(|c| storage.buffer(c.index()))
                                .transpose()?,
                        ))
                    })
                });
                reds.push(Red {
                    kind: ReduceKind::Moments,
                    expr,
                    out: results,
                    acc: None,
                    running: running.transpose()?,
                });
            }
            _ => {}
        }
    }
    Ok(reds)
}
