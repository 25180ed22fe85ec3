//! Reading and writing a model's tensors by name: weights, optimizer
//! state and step counters, for users and for checkpoints.

use kiln_graph::Param;

use super::{Model, NamedTensors};
use crate::error::{ModelError, Result};
use crate::module::{Module, ModuleExt};

impl<M: Module> Model<M> {
    /// Every parameter's and buffer's current values, by dotted name.
    pub fn weights(&self) -> Result<NamedTensors> {
        self.module
            .state_dict()
            .into_iter()
            .map(|(n, p)| Ok((n, p.values()?)))
            .collect()
    }

    /// The parameter or buffer `name`.
    pub fn tensor(&self, name: &str) -> Result<Param> {
        let all = self.module.state_dict();
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| ModelError::NotFound {
                kind: "tensor",
                name: name.to_string(),
                available: all.iter().map(|(n, _)| n.clone()).collect(),
            })
    }

    /// Reads a parameter's or buffer's values by name.
    pub fn value(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.values()?)
    }

    /// Overwrites a parameter or buffer by name; the size must match.
    pub fn set_weight(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let p = self.tensor(name)?;
        if values.len() != p.numel() {
            return Err(ModelError::Weights(format!(
                "{name}: {} values given, shape {:?} holds {}",
                values.len(),
                p.shape(),
                p.numel()
            )));
        }
        Ok(p.write(values)?)
    }

    /// Optimizer steps and dropout draws, for checkpoints.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (self.steps, self.draws)
    }

    pub(crate) fn set_counters(&mut self, steps: u64, draws: u64) {
        self.steps = steps;
        self.draws = draws;
    }

    /// Every optimizer state tensor, by `parameter name/state name`.
    pub(crate) fn optimizer_state(&self) -> Result<NamedTensors> {
        let Some(t) = self.training.as_ref() else {
            return Ok(vec![]);
        };
        let names = self.module.named_parameters();
        let mut out = Vec::new();
        for (p, states) in t.state.slots() {
            let Some((n, _)) = names.iter().find(|(_, q)| q == p) else {
                continue;
            };
            for (s, name) in states.iter().zip(t.state.optimizer().state_names()) {
                out.push((format!("{n}/{name}"), s.values()?));
            }
        }
        Ok(out)
    }

    /// Restores optimizer state written by [`Model::optimizer_state`].
    pub(crate) fn set_optimizer_state(&mut self, state: &NamedTensors) -> Result<()> {
        let optimizer = self.training_mut()?.state.optimizer();
        let names = self.module.named_parameters();
        for (n, p) in &names {
            let values: Vec<Option<&Vec<f32>>> = optimizer
                .state_names()
                .iter()
                .map(|s| {
                    state
                        .iter()
                        .find(|(k, _)| *k == format!("{n}/{s}"))
                        .map(|(_, v)| v)
                })
                .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let params = self.state_of(p)?;
            for (param, v) in params.iter().zip(values) {
                match v {
                    Some(v) => param.write(v)?,
                    None => {
                        return Err(ModelError::Weights(format!(
                            "optimizer state of {n:?} is incomplete"
                        )))
                    }
                }
            }
        }
        Ok(())
    }
}
