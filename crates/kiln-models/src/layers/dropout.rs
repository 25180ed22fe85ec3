//! Dropout: in training, zeroes a `rate` fraction of values and scales the
//! rest by `1/(1 − rate)`; the identity in inference.

use std::sync::atomic::{AtomicBool, Ordering};

use kiln_graph::Var;

use crate::error::{ModelError, Result};
use crate::module::Module;
use crate::rng::next_seed;

/// Dropout with masks drawn from its seed and the training step.
pub struct Dropout {
    rate: f32,
    seed: u64,
    /// Train or eval mode, set through `&self` (the module tree is shared
    /// while it is switched).
    training: AtomicBool,
}

impl Dropout {
    /// Dropout at `rate`, its masks seeded from the generator.
    pub fn new(rate: f32) -> Result<Self> {
        Self::with_seed(rate, next_seed())
    }

    pub fn with_seed(rate: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&rate) {
            return Err(ModelError::Settings(format!(
                "dropout rate {rate} must be in [0, 1)"
            )));
        }
        Ok(Self {
            rate,
            seed,
            training: AtomicBool::new(true),
        })
    }

    pub fn rate(&self) -> f32 {
        self.rate
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Var) -> Result<Var> {
        if self.training.load(Ordering::Relaxed) {
            Ok(x.dropout(self.rate, self.seed)?)
        } else {
            Ok(x.clone())
        }
    }

    fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }
}
