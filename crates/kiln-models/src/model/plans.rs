//! Compiled plans, cached per batch shape and rebuilt when a parameter is
//! frozen or unfrozen, and what they say about themselves.

use kiln_graph::{MemoryPlan, Plan, PlanStats};

use super::graphs::Graphs;
use super::Model;
use crate::error::Result;
use crate::module::{Module, ModuleExt};

impl<M: Module> Model<M> {
    /// The current trainable flags; a change means the plans are stale.
    pub(super) fn current_signature(&self) -> Vec<(u64, bool)> {
        self.module
            .named_parameters()
            .iter()
            .map(|(_, p)| (p.id(), p.is_trainable()))
            .collect()
    }

    /// Runs `use_plan` on the compiled training or evaluation plan for
    /// `batch` samples, compiling it on first use (or after a parameter was
    /// frozen or unfrozen). The cache is taken out of the model meanwhile,
    /// so compiling can read the model.
    pub(super) fn with_plan<T>(
        &mut self,
        graphs: Graphs,
        batch: usize,
        use_plan: impl FnOnce(&mut Self, &mut Plan) -> Result<T>,
    ) -> Result<T> {
        self.training_mut()?;
        let signature = self.current_signature();
        if signature != self.signature {
            self.drop_plans();
            self.signature = signature;
        }
        let shape = self.batch_shape(batch);
        let key = [("x", &shape[..])];
        let t = self.training.as_mut().expect("compiled");
        let mut cache = std::mem::take(t.plans(graphs));
        let result = cache
            .get_or_compile(&key, || match graphs {
                Graphs::Eval => self.eval_graph(batch),
                training => self.train_graph(batch, training),
            })
            .and_then(|plan| use_plan(self, plan));
        *self.training.as_mut().expect("compiled").plans(graphs) = cache;
        result
    }

    /// The device memory a training step at `batch` holds: parameters,
    /// buffers and optimizer state, intermediates (planned by liveness: the
    /// peak), inputs; computed from the plan's layout without allocating
    /// any of it.
    pub fn train_memory(&mut self, batch: usize) -> Result<MemoryPlan> {
        self.training_mut()?;
        let tape = self.train_tape(batch, Graphs::Train)?;
        Ok(Plan::memory(
            &self.device,
            &tape.graph(),
            &[],
            self.plan_options,
        )?)
    }

    /// Compiles (or reuses) the training plan for `batch` samples and returns
    /// its counters: dispatches per step and planned intermediate bytes.
    pub fn train_plan_stats(&mut self, batch: usize) -> Result<PlanStats> {
        self.with_plan(Graphs::Train, batch, |_, plan| Ok(plan.stats()))
    }

    /// The training step's kernels at `batch`, in the order they run: each
    /// one's label (its fused ops and, for a product or a reduction, the
    /// shape the kernel profile gave it: `…/tiled`, `…/wg`) and its
    /// generated WGSL (`None` for a handwritten shader, named in the label).
    pub fn train_kernels(&mut self, batch: usize) -> Result<Vec<(String, Option<String>)>> {
        self.with_plan(Graphs::Train, batch, |_, plan| {
            Ok(plan
                .kernels()
                .iter()
                .map(|k| (k.label().to_string(), k.source().map(str::to_string)))
                .collect())
        })
    }

    /// Per-kernel median times of the training step at `batch` (see [`Plan::profile`]).
    pub fn profile_train_step(&mut self, batch: usize, reps: usize) -> Result<Vec<(String, f64)>> {
        self.with_plan(Graphs::Train, batch, |_, plan| Ok(plan.profile(reps)?))
    }
}
