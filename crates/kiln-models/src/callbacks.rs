//! Callbacks: hooks around every epoch and batch of `fit`, and the ones
//! that watch epochs: early stopping, checkpoints of the best model, a CSV
//! log, and stopping on a NaN loss. Those that steer the learning rate are
//! in `lr_callbacks.rs`.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{ModelError, Result};
use crate::history::{EpochLogs, History};
use crate::trainable::Trainable;

/// Whether training goes on after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// One training batch as callbacks see it.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchLogs {
    /// 1-based epoch number, as in [`EpochLogs`].
    pub epoch: usize,
    /// 0-based batch number within the epoch.
    pub batch: usize,
    /// Samples in this batch.
    pub rows: usize,
    /// Optimizer steps taken before this batch (the step it is, 0-based).
    pub step: u64,
    /// Keras' per-batch `loss`, the mean over the epoch's samples so far:
    /// read back only when a callback asks ([`Callback::wants_batch_loss`]),
    /// `None` otherwise and in `on_batch_begin`.
    pub loss: Option<f32>,
}

/// Something that watches, and may steer, training: hooks before and after
/// training, every epoch and every batch. Each does nothing unless
/// overridden.
pub trait Callback {
    /// Runs before the first batch: the place to check what would
    /// otherwise fail only after training (an output path, a monitored
    /// name).
    fn on_train_begin(&mut self) -> Result<()> {
        Ok(())
    }

    /// Runs before epoch `epoch` (0-based), after the schedule set its
    /// rate: a callback may set the learning rate here.
    fn on_epoch_begin(&mut self, _epoch: usize, _model: &mut dyn Trainable) -> Result<()> {
        Ok(())
    }

    /// Runs before each training batch, after a per-step schedule set the
    /// rate.
    fn on_batch_begin(&mut self, _batch: &BatchLogs, _model: &mut dyn Trainable) -> Result<()> {
        Ok(())
    }

    /// Runs after each training batch; `Stop` ends training after it.
    fn on_batch_end(&mut self, _batch: &BatchLogs, _model: &mut dyn Trainable) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// Whether `on_batch_end` reads [`BatchLogs::loss`]: `fit` then reads the
    /// loss back after every step, which waits for the device each time.
    fn wants_batch_loss(&self) -> bool {
        false
    }

    /// Runs after each epoch (its training and validation), with the
    /// epoch's logs; `Stop` ends training.
    fn on_epoch_end(
        &mut self,
        _logs: &EpochLogs,
        _model: &mut dyn Trainable,
        _history: &mut History,
    ) -> Result<Control> {
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, _model: &mut dyn Trainable, _history: &mut History) -> Result<()> {
        Ok(())
    }
}

/// Whether a smaller or larger monitored value is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Min,
    Max,
}

/// A monitored value and its best so far: what EarlyStopping,
/// ReduceLrOnPlateau and ModelCheckpoint watch. Keras' rule: better means
/// below `best − min_delta` (mode Min) or above `best + min_delta` (Max);
/// the mode follows the name ("acc" in it: Max) unless set.
pub(crate) struct Watch {
    pub name: String,
    pub mode: Mode,
    pub min_delta: f32,
    pub best: Option<f32>,
}

impl Watch {
    pub fn new(name: &str) -> Self {
        let mode = if name.contains("acc") {
            Mode::Max
        } else {
            Mode::Min
        };
        Self {
            name: name.to_string(),
            mode,
            min_delta: 0.0,
            best: None,
        }
    }

    /// This epoch's value; an error naming what is logged when it is not.
    pub fn read(&self, logs: &EpochLogs) -> Result<f32> {
        logs.get(&self.name).ok_or_else(|| ModelError::NotFound {
            kind: "logged value",
            name: self.name.clone(),
            available: logs.values.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    /// Whether `value` beats the best; if so it becomes the best.
    pub fn improved(&mut self, value: f32) -> bool {
        let better = match (self.best, self.mode) {
            (None, _) => !value.is_nan(),
            (Some(b), Mode::Min) => value < b - self.min_delta,
            (Some(b), Mode::Max) => value > b + self.min_delta,
        };
        if better {
            self.best = Some(value);
        }
        better
    }
}

/// Keras' `EarlyStopping`: stop when `monitor` has not improved by more than
/// `min_delta` for `patience` epochs; optionally restore the best weights at
/// the end.
///
/// ```
/// let es = kiln_models::EarlyStopping::monitor("val_loss").patience(5).restore_best_weights();
/// ```
pub struct EarlyStopping {
    watch: Watch,
    patience: usize,
    restore: bool,
    best_epoch: usize,
    wait: usize,
    best_weights: Option<Vec<(String, Vec<f32>)>>,
}

impl EarlyStopping {
    pub fn monitor(name: &str) -> Self {
        Self {
            watch: Watch::new(name),
            patience: 0,
            restore: false,
            best_epoch: 0,
            wait: 0,
            best_weights: None,
        }
    }

    pub fn patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }

    pub fn min_delta(mut self, delta: f32) -> Self {
        self.watch.min_delta = delta.abs();
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.watch.mode = mode;
        self
    }

    pub fn restore_best_weights(mut self) -> Self {
        self.restore = true;
        self
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        model: &mut dyn Trainable,
        history: &mut History,
    ) -> Result<Control> {
        let value = self.watch.read(logs)?;
        if self.watch.improved(value) {
            self.best_epoch = logs.epoch;
            self.wait = 0;
            history.best_epoch = Some(logs.epoch);
            if self.restore {
                self.best_weights = Some(model.weights()?);
            }
            return Ok(Control::Continue);
        }
        self.wait += 1;
        if self.wait >= self.patience {
            history.stopped_early = true;
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, model: &mut dyn Trainable, history: &mut History) -> Result<()> {
        if let Some(weights) = self.best_weights.take() {
            model.set_weights(&weights)?;
            history.best_epoch = Some(self.best_epoch);
            history.restored_best = true;
        }
        Ok(())
    }
}

/// Keras' `ModelCheckpoint(save_best_only=True)`: writes a checkpoint (see
/// [`crate::checkpoint`]) whenever `monitor` improves.
pub struct ModelCheckpoint {
    path: PathBuf,
    watch: Watch,
}

impl ModelCheckpoint {
    pub fn best_only(path: impl Into<PathBuf>, monitor: &str) -> Self {
        Self {
            path: path.into(),
            watch: Watch::new(monitor),
        }
    }
}

impl Callback for ModelCheckpoint {
    fn on_train_begin(&mut self) -> Result<()> {
        crate::check_writable(&self.path)
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        model: &mut dyn Trainable,
        _history: &mut History,
    ) -> Result<Control> {
        let value = self.watch.read(logs)?;
        if self.watch.improved(value) {
            crate::checkpoint::save(&*model, &self.path, logs.epoch)?;
        }
        Ok(Control::Continue)
    }
}

/// Keras' `CSVLogger`: one line per epoch, flushed as it is written.
pub struct CsvLogger {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl CsvLogger {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: None,
        }
    }
}

impl Callback for CsvLogger {
    fn on_train_begin(&mut self) -> Result<()> {
        crate::check_writable(&self.path)
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        _model: &mut dyn Trainable,
        _history: &mut History,
    ) -> Result<Control> {
        let io = |e: std::io::Error| ModelError::Output {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        if self.file.is_none() {
            let mut f = std::fs::File::create(&self.path).map_err(io)?;
            let names: Vec<&str> = logs.values.iter().map(|(n, _)| n.as_str()).collect();
            writeln!(f, "epoch,{}", names.join(",")).map_err(io)?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        let row: Vec<String> = logs.values.iter().map(|(_, v)| v.to_string()).collect();
        writeln!(f, "{},{}", logs.epoch, row.join(",")).map_err(io)?;
        f.flush().map_err(io)?;
        Ok(Control::Continue)
    }
}

/// Keras' `TerminateOnNaN`: a NaN or infinite loss ends training; the
/// history's `stop_reason` (and a line on stderr) says why.
pub struct TerminateOnNaN;

impl Callback for TerminateOnNaN {
    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        _model: &mut dyn Trainable,
        history: &mut History,
    ) -> Result<Control> {
        let loss = Watch::new("loss").read(logs)?;
        if loss.is_finite() {
            return Ok(Control::Continue);
        }
        let reason = format!(
            "TerminateOnNaN: the loss is {loss} at epoch {}; training stopped",
            logs.epoch
        );
        eprintln!("{reason}");
        history.stop_reason = Some(reason);
        history.stopped_early = true;
        Ok(Control::Stop)
    }
}
