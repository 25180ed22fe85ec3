//! Callbacks that steer the learning rate: Keras' `ReduceLROnPlateau` and
//! `LearningRateScheduler`. The rate they set holds for the next steps and
//! after `fit` returns, as in Keras; a schedule given to `fit` sets it first
//! (at each epoch or step), and these callbacks act after it.

use crate::callbacks::{Callback, Control, Mode, Watch};
use crate::error::{ModelError, Result};
use crate::history::{EpochLogs, History};
use crate::trainable::Trainable;

/// Keras' `ReduceLROnPlateau`: multiply the learning rate by `factor` when
/// `monitor` has not improved by more than `min_delta` for `patience`
/// epochs, never below `min_lr`, then wait `cooldown` epochs before
/// counting again. Keras' defaults: `val_loss`, factor 0.1, patience 10,
/// min_delta 1e-4, cooldown 0, min_lr 0, mode from the name.
///
/// ```
/// let cb = kiln_models::ReduceLrOnPlateau::monitor("val_loss").factor(0.5).patience(3).min_lr(1e-5);
/// ```
pub struct ReduceLrOnPlateau {
    watch: Watch,
    factor: f32,
    patience: usize,
    cooldown: usize,
    min_lr: f32,
    verbose: bool,
    wait: usize,
    cooldown_left: usize,
}

impl ReduceLrOnPlateau {
    pub fn monitor(name: &str) -> Self {
        Self {
            watch: Watch {
                min_delta: 1e-4,
                ..Watch::new(name)
            },
            factor: 0.1,
            patience: 10,
            cooldown: 0,
            min_lr: 0.0,
            verbose: false,
            wait: 0,
            cooldown_left: 0,
        }
    }

    /// The factor the rate is multiplied by, in (0, 1).
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }

    pub fn patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }

    pub fn min_delta(mut self, delta: f32) -> Self {
        self.watch.min_delta = delta.abs();
        self
    }

    pub fn cooldown(mut self, epochs: usize) -> Self {
        self.cooldown = epochs;
        self
    }

    pub fn min_lr(mut self, lr: f32) -> Self {
        self.min_lr = lr;
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.watch.mode = mode;
        self
    }

    /// Prints a line each time the rate is reduced.
    pub fn verbose(mut self) -> Self {
        self.verbose = true;
        self
    }
}

impl Callback for ReduceLrOnPlateau {
    fn on_train_begin(&mut self) -> Result<()> {
        if !(self.factor > 0.0 && self.factor < 1.0) || self.min_lr.is_nan() || self.min_lr < 0.0 {
            return Err(ModelError::Settings(format!(
                "ReduceLrOnPlateau: factor {} and min_lr {}; expected a factor in (0, 1) and min_lr ≥ 0",
                self.factor, self.min_lr
            )));
        }
        (self.watch.best, self.wait, self.cooldown_left) = (None, 0, 0);
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        model: &mut dyn Trainable,
        _history: &mut History,
    ) -> Result<Control> {
        let current = self.watch.read(logs)?;
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.wait = 0;
        }
        if self.watch.improved(current) {
            self.wait = 0;
        } else if self.cooldown_left == 0 {
            self.wait += 1;
            let lr = model.learning_rate().unwrap_or(0.0);
            if self.wait >= self.patience && lr > self.min_lr {
                let reduced = (lr * self.factor).max(self.min_lr);
                model.set_learning_rate(reduced)?;
                if self.verbose {
                    println!(
                        "Epoch {}: ReduceLrOnPlateau reducing learning rate to {reduced}.",
                        logs.epoch
                    );
                }
                self.cooldown_left = self.cooldown;
                self.wait = 0;
            }
        }
        Ok(Control::Continue)
    }
}

/// Keras' `LearningRateScheduler`: before each epoch, the rate becomes
/// `schedule(epoch, rate)` (epoch 0-based, the current rate).
///
/// ```
/// // Halve the rate every 10 epochs after the 10th.
/// let cb = kiln_models::LearningRateScheduler::new(|epoch, lr| {
///     if epoch >= 10 && epoch % 10 == 0 { lr * 0.5 } else { lr }
/// });
/// ```
pub struct LearningRateScheduler {
    schedule: Box<dyn FnMut(usize, f32) -> f32>,
}

impl LearningRateScheduler {
    pub fn new(schedule: impl FnMut(usize, f32) -> f32 + 'static) -> Self {
        Self {
            schedule: Box::new(schedule),
        }
    }
}

impl Callback for LearningRateScheduler {
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut dyn Trainable) -> Result<()> {
        let lr = model.learning_rate().ok_or(ModelError::NotCompiled {
            call: "LearningRateScheduler's first epoch",
        })?;
        let next = (self.schedule)(epoch, lr);
        model.set_learning_rate(next).map_err(|e| {
            ModelError::Settings(format!(
                "LearningRateScheduler: epoch {epoch}'s schedule gave {next}: {e}"
            ))
        })
    }
}
