//! [`Trainable`]: what callbacks and checkpoints need from a model, as a
//! trait object, so they work on any [`Model`] whatever its module.

use crate::error::Result;
use crate::model::{Model, NamedTensors};
use crate::module::{Module, ModuleExt};

/// A tensor with its shape, by name.
pub type ShapedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Everything needed to resume training exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingState {
    /// Parameters and buffers (the state dict).
    pub weights: ShapedTensors,
    /// Optimizer state, by `parameter/state`.
    pub optimizer: ShapedTensors,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Training batches run (the dropout masks' counter).
    pub draws: u64,
}

/// A model as callbacks and checkpoints see it.
pub trait Trainable {
    /// Every parameter's and buffer's current values, by dotted name.
    fn weights(&self) -> Result<NamedTensors>;
    /// Overwrites the named parameters and buffers.
    fn set_weights(&mut self, weights: &NamedTensors) -> Result<()>;
    /// Weights, optimizer state and counters.
    fn training_state(&self) -> Result<TrainingState>;
    /// Restores what [`Trainable::training_state`] returned; every tensor of
    /// the model must be present with its shape.
    fn restore(&mut self, state: &TrainingState) -> Result<()>;
    /// The learning rate of the next steps (`None` before `compile`).
    fn learning_rate(&self) -> Option<f32>;
    /// Sets the learning rate of the next steps; it must be positive.
    fn set_learning_rate(&mut self, lr: f32) -> Result<()>;
}

impl<M: Module> Trainable for Model<M> {
    fn weights(&self) -> Result<NamedTensors> {
        Model::weights(self)
    }

    fn set_weights(&mut self, weights: &NamedTensors) -> Result<()> {
        for (name, values) in weights {
            self.set_weight(name, values)?;
        }
        Ok(())
    }

    fn training_state(&self) -> Result<TrainingState> {
        let weights = self
            .module()
            .state_dict()
            .into_iter()
            .map(|(n, p)| Ok((n, p.shape().to_vec(), p.values()?)))
            .collect::<Result<_>>()?;
        let params = self.module().named_parameters();
        let optimizer = self
            .optimizer_state()?
            .into_iter()
            .map(|(n, v)| {
                let base = n.rsplit_once('/').map_or(n.as_str(), |(b, _)| b);
                let shape = params
                    .iter()
                    .find(|(p, _)| p == base)
                    .map_or(vec![v.len()], |(_, p)| p.shape().to_vec());
                (n, shape, v)
            })
            .collect();
        let (steps, draws) = self.counters();
        Ok(TrainingState {
            weights,
            optimizer,
            steps,
            draws,
        })
    }

    fn restore(&mut self, state: &TrainingState) -> Result<()> {
        let mut sd = crate::StateDict::default();
        for (n, s, v) in &state.weights {
            sd.tensors.insert(n.clone(), (s.clone(), v.clone()));
        }
        self.module().load_state_dict(&sd, true)?;
        let opt: NamedTensors = state
            .optimizer
            .iter()
            .map(|(n, _, v)| (n.clone(), v.clone()))
            .collect();
        self.set_optimizer_state(&opt)?;
        self.set_counters(state.steps, state.draws);
        Ok(())
    }

    fn learning_rate(&self) -> Option<f32> {
        Model::learning_rate(self)
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        Model::set_learning_rate(self, lr)
    }
}

impl Trainable for crate::Sequential {
    fn weights(&self) -> Result<NamedTensors> {
        (**self).weights()
    }
    fn set_weights(&mut self, weights: &NamedTensors) -> Result<()> {
        Trainable::set_weights(&mut **self, weights)
    }
    fn training_state(&self) -> Result<TrainingState> {
        (**self).training_state()
    }
    fn restore(&mut self, state: &TrainingState) -> Result<()> {
        (**self).restore(state)
    }
    fn learning_rate(&self) -> Option<f32> {
        (**self).learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        (**self).set_learning_rate(lr)
    }
}
