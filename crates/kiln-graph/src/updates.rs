//! In-place updates: optimizer steps, running statistics, accumulators. They
//! write parameters where they lie; a plan runs every one of them, after
//! everything that reads what they write has been computed (they are appended
//! last, and nodes run in order).

use kiln_backend::ops::optim::{UpdateRule, HYPER_WORDS};

use crate::error::{shape_err, GraphError, Result};
use crate::graph::{Graph, NodeId, Op};

impl Graph {
    fn check_param(&self, op: &str, id: NodeId) -> Result<()> {
        match self.node(id).op {
            Op::Param { .. } => Ok(()),
            _ => Err(GraphError::NotAParameter(format!(
                "{op}: node {} ({}) is not a parameter",
                id.index(),
                self.describe(id)
            ))),
        }
    }

    fn check_same_size(&self, op: &str, a: NodeId, b: NodeId) -> Result<()> {
        if self.node(a).numel() != self.node(b).numel() {
            return Err(shape_err(
                op,
                format!("{:?} and {:?} differ in size", self.shape(a), self.shape(b)),
            ));
        }
        Ok(())
    }

    /// One optimizer step on `param` with gradient `grad` and its state
    /// parameters (Adam: first and second moments; SGD: the momentum buffer),
    /// reading the step's hyperparameters from `hyper` (an input of
    /// `HYPER_WORDS` values, see `optim.wgsl`).
    pub fn optimizer_step(
        &mut self,
        rule: UpdateRule,
        param: NodeId,
        grad: NodeId,
        state: &[NodeId],
        hyper: NodeId,
    ) -> Result<NodeId> {
        let mut inputs = vec![param, grad];
        inputs.extend_from_slice(state);
        inputs.push(hyper);
        self.check("OptimizerStep", &inputs)?;
        let want = rule.states();
        if state.len() != want {
            return Err(GraphError::Usage(format!(
                "{rule:?} keeps {want} state tensors per parameter, {} given",
                state.len()
            )));
        }
        self.check_param("OptimizerStep", param)?;
        self.check_same_size("OptimizerStep", param, grad)?;
        for &s in state {
            self.check_param("OptimizerStep", s)?;
            self.check_same_size("OptimizerStep", param, s)?;
        }
        if self.node(hyper).numel() != HYPER_WORDS {
            return Err(shape_err(
                "OptimizerStep",
                format!(
                    "hyperparameters {:?} must hold {HYPER_WORDS} values",
                    self.shape(hyper)
                ),
            ));
        }
        let shape = self.shape(param).to_vec();
        Ok(self.push(Op::OptimizerStep { rule }, inputs, shape))
    }

    /// Moves the running statistics toward a batch's `mean` and `var`
    /// (see [`Op::RunningStats`]); `count`, a one-element parameter, counts
    /// the batches (PyTorch's `num_batches_tracked`).
    #[allow(clippy::too_many_arguments)] // the four statistics, the counter and two settings
    pub fn running_stats(
        &mut self,
        running_mean: NodeId,
        running_var: NodeId,
        mean: NodeId,
        var: NodeId,
        count: Option<NodeId>,
        keep: f32,
        var_factor: f32,
    ) -> Result<NodeId> {
        let mut inputs = vec![running_mean, running_var, mean, var];
        inputs.extend(count);
        self.check("RunningStats", &inputs)?;
        self.check_param("RunningStats", running_mean)?;
        self.check_param("RunningStats", running_var)?;
        let s = self.shape(running_mean).to_vec();
        if self.shape(running_var) != s || self.shape(mean) != s || self.shape(var) != s {
            return Err(shape_err(
                "RunningStats",
                format!(
                    "running {:?}/{:?} and batch {:?}/{:?} statistics must have one shape",
                    s,
                    self.shape(running_var),
                    self.shape(mean),
                    self.shape(var)
                ),
            ));
        }
        if let Some(c) = count {
            self.check_param("RunningStats", c)?;
            if self.node(c).numel() != 1 {
                return Err(shape_err(
                    "RunningStats",
                    format!("the batch counter {:?} must hold one value", self.shape(c)),
                ));
            }
        }
        if !(0.0..=1.0).contains(&keep) || var_factor.is_nan() {
            return Err(shape_err(
                "RunningStats",
                format!("momentum {keep} must be in [0, 1] and the variance factor a number"),
            ));
        }
        Ok(self.push(Op::RunningStats { keep, var_factor }, inputs, s))
    }

    /// `acc = keep·acc + scale·value`, in place: device-side metric sums.
    pub fn accumulate(
        &mut self,
        acc: NodeId,
        value: NodeId,
        keep: f32,
        scale: f32,
    ) -> Result<NodeId> {
        self.check("Accumulate", &[acc, value])?;
        self.check_param("Accumulate", acc)?;
        // A one-element accumulator adds the sum of a value of any size.
        if self.node(acc).numel() != 1 {
            self.check_same_size("Accumulate", acc, value)?;
        }
        let shape = self.shape(acc).to_vec();
        Ok(self.push(Op::Accumulate { keep, scale }, vec![acc, value], shape))
    }
}
