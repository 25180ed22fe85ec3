//! The graphs a model compiles: the training step (forward, loss and
//! metrics, backward, clipping, optimizer steps) and evaluation.

use kiln_graph::{Mode, NodeId, Plan, Tape, Var, HYPER_WORDS};

use super::Model;
use crate::error::{ModelError, Result};
use crate::module::Module;

/// The input naming the hyperparameters of an optimizer step.
pub(super) const HYPER_INPUT: &str = "kiln.hyper";

/// Which compiled graphs a plan cache holds.
#[derive(Clone, Copy)]
pub(super) enum Graphs {
    Train,
    Eval,
}

impl<M: Module> Model<M> {
    /// The training graph of a batch of `batch` samples, uncompiled, to
    /// inspect (what is differentiated, which steps are taken).
    pub fn training_graph(&mut self, batch: usize) -> Result<kiln_graph::Graph> {
        self.training_mut()?;
        let tape = self.train_tape(batch)?;
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
            Graphs::Train => &t.train,
            Graphs::Eval => &t.val,
        };
        tape.with_graph(|g| {
            let terms = t.loss.terms(g, pred.id(), y.id())?;
            let loss = g.mean_all(terms)?;
            let per_sample = |g: &kiln_graph::Graph, v: NodeId| (g.node(v).numel() / batch) as f32;
            let a = g.frozen(&acc.loss);
            let scale = 1.0 / per_sample(g, terms);
            g.accumulate(a, terms, 1.0, scale)?;
            for (m, p) in t.metrics.iter().zip(&acc.metrics) {
                let v = m.values(g, pred.id(), y.id())?;
                let a = g.frozen(p);
                let scale = 1.0 / per_sample(g, v);
                g.accumulate(a, v, 1.0, scale)?;
            }
            Ok::<_, kiln_graph::GraphError>(loss)
        })
        .map_err(ModelError::from)
    }

    /// The training step: forward, loss, metrics, backward, optimizer steps.
    pub(super) fn train_graph(&mut self, batch: usize) -> Result<Plan> {
        let tape = self.train_tape(batch)?;
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

    pub(super) fn train_tape(&mut self, batch: usize) -> Result<Tape> {
        let tape = Tape::new(Mode::Train { update_state: true });
        let pred = self.forward(&tape, batch)?;
        let loss = self.loss_and_metrics(&tape, &pred, Graphs::Train)?;
        let trainable = tape.trainable_params();
        let nodes: Vec<NodeId> = trainable.iter().map(|(_, n)| *n).collect();
        let (optimizer, clip) = {
            let t = self.training.as_ref().expect("compiled");
            (t.optimizer, t.clip_norm)
        };
        let mut grads = tape.with_graph(|g| g.grad(loss, &nodes))?;
        if let Some(max_norm) = clip {
            grads = tape.with_graph(|g| clip_by_global_norm(g, &grads, max_norm))?;
        }
        let hyper = tape.input(HYPER_INPUT, &[HYPER_WORDS]);
        for ((p, node), grad) in trainable.iter().zip(grads) {
            let state = self.state_of(p)?;
            tape.with_graph(|g| {
                let state: Vec<NodeId> = state.iter().map(|s| g.frozen(s)).collect();
                g.optimizer_step(optimizer.rule(), *node, grad, &state, hyper.id())
            })?;
        }
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
