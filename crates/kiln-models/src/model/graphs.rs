//! The graphs a model compiles: the training step (forward, loss and
//! metrics, backward, clipping, optimizer steps) and evaluation.

use kiln_graph::{Mode, NodeId, Param, Plan, Tape, Var, HYPER_WORDS};

use super::Model;
use crate::error::{ModelError, Result};
use crate::metrics::Tally;
use crate::module::Module;

/// The input naming the hyperparameters of an optimizer step.
pub(super) const HYPER_INPUT: &str = "kiln.hyper";

/// The input of per-sample loss weights, when training is weighted.
pub(super) const WEIGHT_INPUT: &str = "kiln.weight";

/// Which compiled graphs a plan cache holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Graphs {
    /// Training batches that take an optimizer step.
    Train,
    /// Training batches that only add their gradients to the sums.
    Accumulate,
    Eval,
}

impl<M: Module> Model<M> {
    /// The training graph of a batch of `batch` samples, uncompiled, to
    /// inspect (what is differentiated, which steps are taken).
    pub fn training_graph(&mut self, batch: usize) -> Result<kiln_graph::Graph> {
        self.training_mut()?;
        let tape = self.train_tape(batch, Graphs::Train)?;
        Ok(tape.graph())
    }

    /// The forward graph of a batch, in `mode`.
    pub(super) fn forward(&self, tape: &Tape, batch: usize) -> Result<Var> {
        let x = tape.input("x", &self.batch_shape(batch));
        self.module.forward(&x)
    }

    /// The loss's per-sample terms and this batch's accumulators of `split`.
    pub(super) fn loss_and_metrics(
        &self,
        tape: &Tape,
        pred: &Var,
        split: Graphs,
    ) -> Result<NodeId> {
        let t = self.training.as_ref().expect("compiled");
        let batch = pred.shape().first().copied().unwrap_or(1);
        let mut y_shape = vec![batch];
        y_shape.extend(t.loss.target_shape(&pred.shape()[1..]));
        let y = tape.input("y", &y_shape);
        let acc = match split {
            Graphs::Train | Graphs::Accumulate => &t.train,
            Graphs::Eval => &t.val,
        };
        let weights =
            (t.weighted && split != Graphs::Eval).then(|| tape.input(WEIGHT_INPUT, &[batch]));
        tape.with_graph(|g| {
            let mut terms = t.loss.terms(g, pred.id(), y.id())?;
            if let Some(w) = &weights {
                // Keras' sum_over_batch_size: Σ wᵢ·lᵢ / N.
                let rank = g.shape(terms).len();
                let mut shape = vec![batch as i64];
                shape.extend(std::iter::repeat_n(1, rank - 1));
                let w = g.reshape(w.id(), &shape)?;
                terms = g.mul(terms, w)?;
            }
            let loss = g.mean_all(terms)?;
            let per_sample = |g: &kiln_graph::Graph, v: NodeId| (g.node(v).numel() / batch) as f32;
            let a = g.frozen(&acc.loss);
            let scale = 1.0 / per_sample(g, terms);
            g.accumulate(a, terms, 1.0, scale)?;
            for (m, totals) in t.metrics.iter().zip(&acc.metrics) {
                match m.tally(g, pred.id(), y.id())? {
                    Tally::PerSample(v) => {
                        let a = g.frozen(&totals[0]);
                        let scale = 1.0 / per_sample(g, v);
                        g.accumulate(a, v, 1.0, scale)?;
                    }
                    Tally::Counts(counts) => {
                        for (count, total) in counts.into_iter().zip(totals) {
                            let a = g.frozen(total);
                            let sum = g.add(a, count)?;
                            g.assign(a, sum)?;
                        }
                    }
                }
            }
            Ok::<_, kiln_graph::GraphError>(loss)
        })
        .map_err(ModelError::from)
    }

    /// The training step (or, for `Graphs::Accumulate`, a batch that only
    /// adds its gradients to the sums): forward, loss, metrics, backward,
    /// optimizer steps.
    pub(super) fn train_graph(&mut self, batch: usize, graphs: Graphs) -> Result<Plan> {
        let tape = self.train_tape(batch, graphs)?;
        self.compile_tape(&tape, &[])
    }

    /// `tape`'s graph compiled with the model's plan options, returning
    /// `outputs` (updates and accumulators run whatever is returned).
    pub(super) fn compile_tape(&self, tape: &Tape, outputs: &[NodeId]) -> Result<Plan> {
        Ok(Plan::compile_with(
            &self.device,
            &tape.graph(),
            outputs,
            self.plan_options,
        )?)
    }

    pub(super) fn train_tape(&mut self, batch: usize, graphs: Graphs) -> Result<Tape> {
        let tape = Tape::new(Mode::Train { update_state: true });
        let pred = self.forward(&tape, batch)?;
        let loss = self.loss_and_metrics(&tape, &pred, Graphs::Train)?;
        let trainable = tape.trainable_params();
        let nodes: Vec<NodeId> = trainable.iter().map(|(_, n)| *n).collect();
        let (clip, accumulate) = {
            let t = self.training.as_ref().expect("compiled");
            (t.clip_norm, t.accumulate)
        };
        let mut grads = tape.with_graph(|g| g.grad(loss, &nodes))?;
        let mut sums = Vec::new();
        if accumulate > 1 {
            sums = trainable
                .iter()
                .map(|(p, _)| self.grad_sum_of(p))
                .collect::<Result<Vec<_>>>()?;
            let Some(mean) =
                tape.with_graph(|g| add_to_sums(g, &sums, &grads, graphs, accumulate))?
            else {
                return Ok(tape);
            };
            grads = mean;
        }
        if let Some(max_norm) = clip {
            grads = tape.with_graph(|g| clip_by_global_norm(g, &grads, max_norm))?;
        }
        let hyper = tape.input(HYPER_INPUT, &[HYPER_WORDS]);
        let device = self.device.clone();
        let state = &mut self.training.as_mut().expect("compiled").state;
        for ((p, node), grad) in trainable.iter().zip(grads) {
            tape.with_graph(|g| state.append_step(&device, g, (p, *node, grad), hyper.id()))?;
        }
        tape.with_graph(|g| zero_sums(g, &sums))?;
        Ok(tape)
    }

    pub(super) fn eval_graph(&self, batch: usize) -> Result<Plan> {
        let tape = Tape::new(Mode::Eval);
        let pred = self.forward(&tape, batch)?;
        self.loss_and_metrics(&tape, &pred, Graphs::Eval)?;
        self.compile_tape(&tape, &[])
    }

    /// The prediction graph of a batch: the module's outputs alone.
    pub(super) fn predict_graph(&self, batch: usize) -> Result<Plan> {
        let tape = Tape::new(Mode::Eval);
        let pred = self.forward(&tape, batch)?;
        self.compile_tape(&tape, &[pred.id()])
    }
}

/// Adds this batch's `grads` to their running `sums`. For a batch that only
/// accumulates, the sums are written back and there is nothing to step
/// (`None`); for the batch that steps, the mean over `batches` is returned
/// (the caller zeroes the sums after the step).
fn add_to_sums(
    g: &mut kiln_graph::Graph,
    sums: &[Param],
    grads: &[NodeId],
    graphs: Graphs,
    batches: usize,
) -> kiln_graph::Result<Option<Vec<NodeId>>> {
    let mut means = Vec::new();
    for (sum, &grad) in sums.iter().zip(grads) {
        let s = g.frozen(sum);
        let total = g.add(s, grad)?;
        match graphs {
            Graphs::Accumulate => {
                g.assign(s, total)?;
            }
            _ => means.push((s, g.scale(total, 1.0 / batches as f32)?)),
        }
    }
    if graphs == Graphs::Accumulate {
        return Ok(None);
    }
    Ok(Some(means.into_iter().map(|(_, m)| m).collect()))
}

/// Zeroes the gradient sums, after the step that read them.
fn zero_sums(g: &mut kiln_graph::Graph, sums: &[Param]) -> kiln_graph::Result<()> {
    let zero = g.scalar(0.0);
    for sum in sums {
        let s = g.frozen(sum);
        let zeros = g.expand(zero, sum.shape())?;
        g.assign(s, zeros)?;
    }
    Ok(())
}

/// Scales every gradient by `min(1, max_norm / ‖g‖)`, ‖g‖ over all of them.
fn clip_by_global_norm(
    g: &mut kiln_graph::Graph,
    grads: &[NodeId],
    max_norm: f32,
) -> kiln_graph::Result<Vec<NodeId>> {
    let mut total: Option<NodeId> = None;
    for &gr in grads {
        let sq = g.unary(kiln_graph::UnaryOp::Square, gr)?;
        let s = g.sum_all(sq)?;
        total = Some(match total {
            Some(t) => g.add(t, s)?,
            None => s,
        });
    }
    let Some(total) = total else {
        return Ok(vec![]);
    };
    let norm = g.unary(kiln_graph::UnaryOp::Sqrt, total)?;
    let norm = g.unary(kiln_graph::UnaryOp::AddScalar(1e-6), norm)?;
    let limit = g.scalar(max_norm);
    let ratio = g.div(limit, norm)?;
    let one = g.scalar(1.0);
    let factor = g.binary(kiln_graph::BinaryOp::Min, ratio, one)?;
    grads.iter().map(|&gr| g.mul(gr, factor)).collect()
}
