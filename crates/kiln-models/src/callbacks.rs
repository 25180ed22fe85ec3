//! Callbacks run at the end of every epoch: early stopping, checkpoints of the
//! best model, a CSV log, and stopping on a NaN loss.

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

/// Something that watches training epoch by epoch.
pub trait Callback {
    /// Runs before the first batch: the place to check what would
    /// otherwise fail only after training (an output path, a monitored
    /// name).
    fn on_train_begin(&mut self) -> Result<()> {
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        model: &mut dyn Trainable,
        history: &mut History,
    ) -> Result<Control>;

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

fn auto_mode(monitor: &str) -> Mode {
    if monitor.contains("acc") {
        Mode::Max
    } else {
        Mode::Min
    }
}

fn monitored(logs: &EpochLogs, monitor: &str) -> Result<f32> {
    logs.get(monitor).ok_or_else(|| {
        ModelError::Invalid(format!(
            "monitored value {monitor:?} is not logged; available: {:?}",
            logs.values.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ))
    })
}

/// Keras' `EarlyStopping`: stop when `monitor` has not improved by more than
/// `min_delta` for `patience` epochs; optionally restore the best weights at
/// the end.
///
/// ```
/// let es = kiln_models::EarlyStopping::monitor("val_loss").patience(5).restore_best_weights();
/// ```
pub struct EarlyStopping {
    monitor: String,
    patience: usize,
    min_delta: f32,
    mode: Mode,
    restore: bool,
    best: Option<f32>,
    best_epoch: usize,
    wait: usize,
    best_weights: Option<Vec<(String, Vec<f32>)>>,
}

impl EarlyStopping {
    pub fn monitor(name: &str) -> Self {
        Self {
            monitor: name.to_string(),
            patience: 0,
            min_delta: 0.0,
            mode: auto_mode(name),
            restore: false,
            best: None,
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
        self.min_delta = delta.abs();
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn restore_best_weights(mut self) -> Self {
        self.restore = true;
        self
    }

    fn improves(&self, value: f32) -> bool {
        match (self.best, self.mode) {
            (None, _) => !value.is_nan(),
            (Some(b), Mode::Min) => value < b - self.min_delta,
            (Some(b), Mode::Max) => value > b + self.min_delta,
        }
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        model: &mut dyn Trainable,
        history: &mut History,
    ) -> Result<Control> {
        let value = monitored(logs, &self.monitor)?;
        if self.improves(value) {
            self.best = Some(value);
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
    monitor: String,
    mode: Mode,
    best: Option<f32>,
}

impl ModelCheckpoint {
    pub fn best_only(path: impl Into<PathBuf>, monitor: &str) -> Self {
        Self {
            path: path.into(),
            monitor: monitor.to_string(),
            mode: auto_mode(monitor),
            best: None,
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
        let value = monitored(logs, &self.monitor)?;
        let better = match (self.best, self.mode) {
            (None, _) => !value.is_nan(),
            (Some(b), Mode::Min) => value < b,
            (Some(b), Mode::Max) => value > b,
        };
        if better {
            self.best = Some(value);
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
        let io = |e: std::io::Error| ModelError::Invalid(format!("{}: {e}", self.path.display()));
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
        let loss = monitored(logs, "loss")?;
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
