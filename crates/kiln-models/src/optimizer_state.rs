//! Each parameter's optimizer state (Adam's moments, momentum's velocity),
//! created on its first step, and the update that steps it. `fit`,
//! `train_on_batch` and hand-written [`Optim`](crate::Optim) loops all
//! append their updates here, so a rule, its state and its names have one
//! home.

use kiln_backend::Device;
use kiln_graph::{Graph, NodeId, Param};

use crate::error::Result;
use crate::optimizer::Optimizer;

/// The state tensors of every parameter an optimizer has stepped.
pub(crate) struct OptimizerState {
    optimizer: Optimizer,
    /// Per parameter, its state tensors in `optimizer.state_names()` order:
    /// frozen parameters never get any.
    slots: Vec<(Param, Vec<Param>)>,
}

impl OptimizerState {
    pub fn new(optimizer: Optimizer) -> Self {
        Self {
            optimizer,
            slots: Vec::new(),
        }
    }

    pub fn optimizer(&self) -> Optimizer {
        self.optimizer
    }

    /// The state of `p`, created (zeros, on `device`) on first use.
    pub fn of(&mut self, device: &Device, p: &Param) -> Result<Vec<Param>> {
        if let Some((_, s)) = self.slots.iter().find(|(q, _)| q == p) {
            return Ok(s.clone());
        }
        let s: Vec<Param> = self
            .optimizer
            .state_names()
            .iter()
            .map(|name| Param::zeros(device, name, p.shape()))
            .collect::<kiln_graph::Result<_>>()?;
        self.slots.push((p.clone(), s.clone()));
        Ok(s)
    }

    /// Every stepped parameter with its state tensors, in first-step order.
    pub fn slots(&self) -> &[(Param, Vec<Param>)] {
        &self.slots
    }

    /// Appends to `graph` the in-place update of `p` (read as `node`) by
    /// `grad`, with the hyperparameters read from the node `hyper`.
    pub fn append_step(
        &mut self,
        device: &Device,
        graph: &mut Graph,
        (p, node, grad): (&Param, NodeId, NodeId),
        hyper: NodeId,
    ) -> Result<()> {
        let state = self.of(device, p)?;
        let state: Vec<NodeId> = state.iter().map(|s| graph.frozen(s)).collect();
        graph.optimizer_step(self.optimizer.rule(), node, grad, &state, hyper)?;
        Ok(())
    }
}
