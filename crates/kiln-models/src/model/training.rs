//! What `compile` fixes and what training keeps: the optimizer, loss,
//! metrics, clipping and learning rate, and each parameter's optimizer state.

use kiln_graph::{Param, PlanCache};

use super::graphs::Graphs;
use super::logs::Accumulators;
use super::Model;
use crate::error::{ModelError, Result};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::module::{Module, ModuleExt};
use crate::optimizer::Optimizer;
use crate::optimizer_state::OptimizerState;

/// The settings of `compile` plus the current learning rate, handed to a
/// model that trains on another's behalf (the feature cache's head).
pub(crate) struct TrainingConfig {
    pub optimizer: Optimizer,
    pub loss: Loss,
    pub metrics: Vec<Metric>,
    pub clip_norm: Option<f32>,
    pub lr: f32,
    /// Batches per optimizer step ([`Model::accumulate_gradients`]).
    pub accumulate: usize,
}

/// What `compile` fixed, and what training keeps.
pub(super) struct Training {
    pub(super) loss: Loss,
    pub(super) metrics: Vec<Metric>,
    pub(super) clip_norm: Option<f32>,
    pub(super) lr: f32,
    /// Optimizer state of each parameter trained so far.
    pub(super) state: OptimizerState,
    pub(super) train: Accumulators,
    pub(super) val: Accumulators,
    pub(super) train_plans: PlanCache,
    pub(super) eval_plans: PlanCache,
    /// Batches whose gradients make one optimizer step (1: every batch).
    pub(super) accumulate: usize,
    /// Batches summed into `grad_sums` since the last step.
    pub(super) pending: usize,
    /// Each trained parameter's running gradient sum, when accumulating.
    pub(super) grad_sums: Vec<(Param, Param)>,
    /// The plans of batches that only add to the sums.
    pub(super) accumulate_plans: PlanCache,
    /// Whether training batches come with per-sample loss weights (`fit`
    /// with `class_weight` or `sample_weight`).
    pub(super) weighted: bool,
}

impl Training {
    /// The cache of the plans of `graphs`.
    pub(super) fn plans(&mut self, graphs: Graphs) -> &mut PlanCache {
        match graphs {
            Graphs::Train => &mut self.train_plans,
            Graphs::Accumulate => &mut self.accumulate_plans,
            Graphs::Eval => &mut self.eval_plans,
        }
    }
}

impl<M: Module> Model<M> {
    /// Fixes the optimizer, loss and metrics; training starts from step 0.
    pub fn compile(&mut self, optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Result<()> {
        optimizer.validate()?;
        // A model that does not build yet reports that when it is used.
        let outputs = self.output_shape().ok();
        if let Some(out) = &outputs {
            loss.check_outputs(out)?;
            for m in metrics {
                m.check_outputs(out)?;
            }
        }
        let classes = outputs.map_or(1, |o| o.iter().product());
        self.training = Some(Training {
            loss,
            metrics: metrics.to_vec(),
            clip_norm: None,
            lr: optimizer.learning_rate(),
            state: OptimizerState::new(optimizer),
            train: Accumulators::new(&self.device, metrics, classes)?,
            val: Accumulators::new(&self.device, metrics, classes)?,
            train_plans: PlanCache::new(),
            eval_plans: PlanCache::new(),
            accumulate: 1,
            pending: 0,
            grad_sums: Vec::new(),
            accumulate_plans: PlanCache::new(),
            weighted: false,
        });
        self.steps = 0;
        Ok(())
    }

    pub(super) fn training_mut(&mut self) -> Result<&mut Training> {
        self.training.as_mut().ok_or(ModelError::NotCompiled {
            call: "training or evaluating",
        })
    }

    /// What `compile` set and the current learning rate, for a model
    /// trained on this one's behalf.
    pub(crate) fn training_config(&self) -> Option<TrainingConfig> {
        self.training.as_ref().map(|t| TrainingConfig {
            optimizer: t.state.optimizer(),
            loss: t.loss,
            metrics: t.metrics.clone(),
            clip_norm: t.clip_norm,
            lr: t.lr,
            accumulate: t.accumulate,
        })
    }

    /// Clips gradients to a global L2 norm of at most `max_norm` before each step.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> Result<()> {
        if max_norm.is_nan() || max_norm <= 0.0 {
            return Err(ModelError::Settings(format!(
                "a clipping norm must be positive, got {max_norm}"
            )));
        }
        let t = self.training_mut()?;
        t.clip_norm = Some(max_norm);
        t.train_plans = PlanCache::new();
        Ok(())
    }

    /// Takes one optimizer step per `batches` batches, with the mean of
    /// their gradients (Keras' `gradient_accumulation_steps`): four batches
    /// of 8 step as one of 32 would, batch statistics aside. The count runs
    /// across epochs, as Keras' does; the loss and metrics still count every
    /// batch. Clipping applies to the mean.
    ///
    /// ```no_run
    /// # let device = kiln_backend::Device::auto()?;
    /// # let mut model = kiln_models::Sequential::new(&device, 4).dense(1, kiln_models::Activation::None);
    /// model.compile(kiln_models::Optimizer::sgd(0.1), kiln_models::Loss::MeanSquaredError, &[])?;
    /// model.accumulate_gradients(4)?;
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn accumulate_gradients(&mut self, batches: usize) -> Result<()> {
        if batches == 0 {
            return Err(ModelError::Settings(
                "gradient accumulation needs at least 1 batch per step, got 0".into(),
            ));
        }
        let t = self.training_mut()?;
        (t.accumulate, t.pending) = (batches, 0);
        t.train_plans = PlanCache::new();
        t.accumulate_plans = PlanCache::new();
        for (_, sum) in &t.grad_sums {
            sum.write(&vec![0.0; sum.numel()])?;
        }
        Ok(())
    }

    /// Whether training batches carry loss weights; the training plans
    /// are rebuilt when it changes.
    pub(crate) fn set_weighted(&mut self, on: bool) -> Result<()> {
        let t = self.training_mut()?;
        if t.weighted != on {
            t.weighted = on;
            t.train_plans = PlanCache::new();
            t.accumulate_plans = PlanCache::new();
        }
        Ok(())
    }

    /// The running gradient sum of `p`, created (zeros) on first use.
    pub(super) fn grad_sum_of(&mut self, p: &Param) -> Result<Param> {
        let device = self.device.clone();
        let t = self.training_mut()?;
        if let Some((_, s)) = t.grad_sums.iter().find(|(q, _)| q == p) {
            return Ok(s.clone());
        }
        let sum = Param::zeros(&device, "grad_sum", p.shape())?;
        sum.set_trainable(false);
        t.grad_sums.push((p.clone(), sum.clone()));
        Ok(sum)
    }

    /// The optimizer `compile` fixed.
    pub fn optimizer(&self) -> Option<Optimizer> {
        self.training.as_ref().map(|t| t.state.optimizer())
    }

    /// The loss `compile` fixed.
    pub fn loss(&self) -> Option<Loss> {
        self.training.as_ref().map(|t| t.loss)
    }

    /// Sets the learning rate of the next steps (no recompilation).
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        crate::optimizer::check_learning_rate(lr)?;
        self.training_mut()?.lr = lr;
        Ok(())
    }

    /// A schedule's rate, which may be 0 (the first step of a warm-up).
    pub(crate) fn set_scheduled_rate(&mut self, lr: f32) -> Result<()> {
        if !lr.is_finite() || lr < 0.0 {
            return Err(ModelError::Settings(format!(
                "the schedule gave learning rate {lr}; expected a finite rate of at least 0"
            )));
        }
        self.training_mut()?.lr = lr;
        Ok(())
    }

    pub fn learning_rate(&self) -> Option<f32> {
        self.training.as_ref().map(|t| t.lr)
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The names of the parameters that have optimizer state, with the
    /// state's names (`dense.kernel/m`, …): only trained parameters have any.
    pub fn optimizer_state_names(&self) -> Vec<String> {
        let Some(t) = self.training.as_ref() else {
            return vec![];
        };
        let names = self.module.named_parameters();
        let mut out = Vec::new();
        for (p, _) in t.state.slots() {
            if let Some((n, _)) = names.iter().find(|(_, q)| q == p) {
                for s in t.state.optimizer().state_names() {
                    out.push(format!("{n}/{s}"));
                }
            }
        }
        out
    }

    /// The optimizer state of `p`, created (zeros) on first use.
    pub(super) fn state_of(&mut self, p: &Param) -> Result<Vec<Param>> {
        let device = self.device.clone();
        self.training_mut()?.state.of(&device, p)
    }
}
