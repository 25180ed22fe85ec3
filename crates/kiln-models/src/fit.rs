//! The fit loop: epochs of shuffled batches, validation, callbacks, progress.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::sync::Arc;

use kiln_data::{batch_order, Augment, Dataset, Prefetch};

use crate::callbacks::{BatchLogs, Callback, Control};
use crate::error::{ModelError, Result};
use crate::history::{EpochLogs, History};
use crate::model::Model;
use crate::module::Module;
use crate::schedule::{Every, LrSchedule};

/// Where validation data comes from.
#[derive(Clone, Debug, Default)]
pub enum Validation {
    #[default]
    None,
    /// Keras' `validation_split`: the last fraction of the data, before shuffling.
    Split(f64),
    /// Keras' `validation_data`.
    Data(Dataset),
}

/// How much a fit prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// A progress bar on a terminal, else one line per epoch.
    #[default]
    Auto,
    /// One plain line per epoch.
    Lines,
    Silent,
}

/// Settings of [`Model::fit`](crate::Model::fit), Keras' `fit` arguments as a builder.
///
/// ```
/// use kiln_models::{Fit, EarlyStopping};
/// let cfg = Fit::epochs(100)
///     .validation_split(0.2)
///     .callback(EarlyStopping::monitor("val_loss").patience(5).restore_best_weights());
/// ```
pub struct Fit {
    pub epochs: usize,
    pub batch_size: usize,
    pub validation: Validation,
    /// Seed of the per-epoch shuffle; `None` keeps the data's order.
    pub shuffle: Option<u64>,
    pub verbosity: Verbosity,
    pub schedule: LrSchedule,
    pub callbacks: Vec<Box<dyn Callback>>,
    /// Steps between progress-bar refreshes (each reads the running loss back).
    pub refresh_every: usize,
    /// Augmentation of each training batch (image data), drawn under the
    /// shuffle seed.
    pub augment: Option<Augment>,
    /// Keras' `class_weight`: each training sample's loss term is scaled
    /// by the weight of its class (its target, a class index or 0/1).
    pub class_weight: Option<Vec<f32>>,
    /// Keras' `sample_weight`: one weight per row of the data `fit` is
    /// given (before a validation split), scaling its loss term.
    pub sample_weight: Option<Vec<f32>>,
}

impl Fit {
    /// `epochs` epochs of batch 32 (Keras' default), shuffled with seed 0.
    pub fn epochs(epochs: usize) -> Self {
        Self {
            epochs,
            batch_size: 32,
            validation: Validation::None,
            shuffle: Some(0),
            verbosity: Verbosity::Auto,
            schedule: LrSchedule::Constant,
            callbacks: Vec::new(),
            refresh_every: 10,
            augment: None,
            class_weight: None,
            sample_weight: None,
        }
    }

    /// Augments every training batch (random crops, flips) on the loader
    /// thread; validation and test data are never augmented.
    pub fn augment(mut self, a: Augment) -> Self {
        self.augment = Some(a);
        self
    }

    pub fn batch_size(mut self, b: usize) -> Self {
        self.batch_size = b;
        self
    }

    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.validation = Validation::Split(fraction);
        self
    }

    pub fn validation_data(mut self, data: Dataset) -> Self {
        self.validation = Validation::Data(data);
        self
    }

    pub fn shuffle(mut self, seed: Option<u64>) -> Self {
        self.shuffle = seed;
        self
    }

    pub fn verbosity(mut self, v: Verbosity) -> Self {
        self.verbosity = v;
        self
    }

    pub fn schedule(mut self, s: LrSchedule) -> Self {
        self.schedule = s;
        self
    }

    /// Keras' `class_weight`: `weights[c]` scales the loss of samples of
    /// class `c`. As in Keras the loss stays a mean over the batch
    /// (`Σ wᵢ·lᵢ / N`), and metrics are not weighted.
    ///
    /// ```
    /// // Positives (class 1) count three times as much as negatives.
    /// let cfg = kiln_models::Fit::epochs(10).class_weight(vec![1.0, 3.0]);
    /// ```
    pub fn class_weight(mut self, weights: Vec<f32>) -> Self {
        self.class_weight = Some(weights);
        self
    }

    /// Keras' `sample_weight`: `weights[r]` scales the loss of row `r` of
    /// the data given to `fit` (with `class_weight`, the two multiply).
    pub fn sample_weight(mut self, weights: Vec<f32>) -> Self {
        self.sample_weight = Some(weights);
        self
    }

    pub fn callback(mut self, cb: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(cb));
        self
    }
}

/// Each row's loss weight under `cfg`'s `sample_weight` and
/// `class_weight` (their product), or `None` when neither is set.
fn row_weights(data: &Dataset, cfg: &Fit) -> Result<Option<Vec<f32>>> {
    if cfg.sample_weight.is_none() && cfg.class_weight.is_none() {
        return Ok(None);
    }
    let mut w = match &cfg.sample_weight {
        Some(w) if w.len() != data.len() => {
            return Err(ModelError::Shape(format!(
                "sample_weight has {} weights for {} rows; expected one per row",
                w.len(),
                data.len()
            )))
        }
        Some(w) => w.clone(),
        None => vec![1.0; data.len()],
    };
    if let Some(classes) = &cfg.class_weight {
        if data.n_targets() != 1 {
            return Err(ModelError::Shape(format!(
                "class_weight needs one class index per row; the data has {} targets per row",
                data.n_targets()
            )));
        }
        for (row, (weight, &t)) in w.iter_mut().zip(data.targets()).enumerate() {
            let Some(&cw) = (t.fract() == 0.0 && t >= 0.0)
                .then(|| classes.get(t as usize))
                .flatten()
            else {
                return Err(ModelError::Values(format!(
                    "row {row} has target {t}, which class_weight ({} classes) has no weight for",
                    classes.len()
                )));
            };
            *weight *= cw;
        }
    }
    if let Some(bad) = w.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(ModelError::Values(format!(
            "row {bad} has loss weight {}; weights must be finite and at least 0",
            w[bad]
        )));
    }
    Ok(Some(w))
}

/// Keras' progress line: `Epoch 3/10 12/36 [=====>......] - ETA: 3s -
/// 4ms/step - loss: …`.
fn epoch_bar(epoch: usize, epochs: usize, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let template = format!(
        "Epoch {}/{epochs} {{pos}}/{{len}} [{{bar:30}}] - ETA: {{eta}} - {{step_time}} - {{msg}}",
        epoch + 1
    );
    let style = ProgressStyle::with_template(&template)
        .expect("a valid template")
        .progress_chars("=>.")
        .with_key(
            "step_time",
            |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&per_step(s.elapsed(), s.pos() as usize));
            },
        );
    bar.set_style(style);
    bar
}

/// `4ms/step`: the mean time of `steps` steps that took `elapsed`.
fn per_step(elapsed: std::time::Duration, steps: usize) -> String {
    format!(
        "{:.0}ms/step",
        elapsed.as_secs_f64() * 1e3 / steps.max(1) as f64
    )
}

/// A plain epoch line's `12 steps - 0.4s - 35ms/step - loss: …`.
fn timed(steps: usize, elapsed: std::time::Duration, logs: &str) -> String {
    format!(
        "{steps} steps - {:.1}s - {} - {logs}",
        elapsed.as_secs_f64(),
        per_step(elapsed, steps)
    )
}

fn format_logs(logs: &EpochLogs) -> String {
    logs.values
        .iter()
        .map(|(n, v)| format!("{n}: {v:.4}"))
        .collect::<Vec<_>>()
        .join(" - ")
}

impl<M: Module> Model<M> {
    /// The feature cache: when the module is a head on a backbone
    /// ([`Module::split_head`]) whose features are a fixed function of the
    /// input, they are computed once per sample and only the head trains,
    /// every epoch, on them. `None` when the module does not allow it.
    fn fit_on_cached_features(
        &mut self,
        train: &Dataset,
        val: Option<&Dataset>,
        cfg: &mut Fit,
    ) -> Result<Option<History>> {
        let Some(config) = self.training_config() else {
            return Ok(None);
        };
        if !self.caches_features(train.sample_shape())? {
            return Ok(None);
        }
        let show = cfg.verbosity != Verbosity::Silent;
        if show {
            println!(
                "feature cache: the backbone is frozen and in eval mode; computing its features of {} samples once",
                train.len() + val.map_or(0, Dataset::len)
            );
        }
        let with = self.features(cfg.batch_size.max(1), show)?;
        let cached_train = self.cached_features(&with, train)?;
        let cached_val = val.map(|v| self.cached_features(&with, v)).transpose()?;
        let mut head_model = self.head_model(&config, cached_train.sample_shape())?;
        // Every setting carries over (callbacks too); only the validation
        // data are the cached features.
        let head_cfg = Fit {
            validation: match cached_val {
                Some(v) => Validation::Data(v),
                None => Validation::None,
            },
            ..std::mem::replace(cfg, Fit::epochs(cfg.epochs))
        };
        Ok(Some(head_model.fit(&cached_train, head_cfg)?))
    }

    /// Trains on `data` (a [`Dataset`]: features and targets by row) as
    /// Keras' `fit` does, with the settings of `cfg` ([`Fit`]), and returns
    /// the [`History`].
    pub fn fit(&mut self, data: &Dataset, mut cfg: Fit) -> Result<History> {
        let base_lr = self
            .learning_rate()
            .ok_or(ModelError::NotCompiled { call: "fit()" })?;
        if cfg.batch_size == 0 || cfg.epochs == 0 {
            return Err(ModelError::Settings(format!(
                "fit needs at least one epoch and a positive batch size (got {} epochs, batch {})",
                cfg.epochs, cfg.batch_size
            )));
        }
        self.check_data(data)?;
        // Every row before the first step, so that a bad one trains nothing.
        let refused = |what: &'static str, e: ModelError| ModelError::FitRefused {
            what,
            error: Box::new(e),
        };
        self.check_rows(data).map_err(|e| refused("", e))?;
        if let Validation::Data(v) = &cfg.validation {
            self.check_data(v)?;
            self.check_rows(v)
                .map_err(|e| refused("validation data: ", e))?;
        }
        let weights = row_weights(data, &cfg)?;
        for cb in cfg.callbacks.iter_mut() {
            cb.on_train_begin()?;
        }
        let (train, val) = match std::mem::take(&mut cfg.validation) {
            Validation::None => (data.clone(), None),
            Validation::Split(f) => {
                let (t, v) = data.split_tail(f)?;
                (t, Some(v))
            }
            Validation::Data(v) => (data.clone(), Some(v)),
        };
        // The training rows' weights: the head of the data, before a split.
        cfg.class_weight = None;
        cfg.sample_weight = weights.map(|mut w| {
            w.truncate(train.len());
            w
        });
        if train.is_empty() {
            return Err(ModelError::Values(
                "fit needs at least one training row".into(),
            ));
        }
        let verbosity = match cfg.verbosity {
            Verbosity::Auto if std::io::stdout().is_terminal() => Verbosity::Auto,
            Verbosity::Auto => Verbosity::Lines,
            v => v,
        };
        if cfg.augment.is_none() {
            if let Some(history) = self.fit_on_cached_features(&train, val.as_ref(), &mut cfg)? {
                return Ok(history);
            }
        }
        cfg.schedule.validate()?;
        let train = Arc::new(train);
        let mut history = History::default();
        self.set_weighted(cfg.sample_weight.is_some())?;
        self.take_train_logs(1)?; // start from zero
        for epoch in 0..cfg.epochs {
            if cfg.schedule != LrSchedule::Constant && cfg.schedule.every() == Every::Epoch {
                self.set_scheduled_rate(cfg.schedule.rate(base_lr, epoch))?;
            }
            for cb in cfg.callbacks.iter_mut() {
                cb.on_epoch_begin(epoch, self)?;
            }
            let started = std::time::Instant::now();
            let (mut control, bar, steps) =
                self.train_epoch(&train, epoch, &mut cfg, base_lr, verbosity)?;
            let t = self.take_train_logs(train.len())?;
            let mut values = vec![("loss".to_string(), t.loss)];
            values.extend(t.metrics);
            if let Some(v) = &val {
                let e = self.evaluate(v, cfg.batch_size)?;
                values.push(("val_loss".to_string(), e.loss));
                values.extend(e.metrics.into_iter().map(|(n, x)| (format!("val_{n}"), x)));
            }
            let logs = EpochLogs {
                epoch: epoch + 1,
                values,
            };
            match (bar, verbosity) {
                (Some(bar), _) => bar.finish_with_message(format_logs(&logs)),
                (None, Verbosity::Lines) => println!(
                    "Epoch {}/{} - {}",
                    epoch + 1,
                    cfg.epochs,
                    timed(steps, started.elapsed(), &format_logs(&logs))
                ),
                _ => {}
            }
            history.epochs.push(logs.clone());
            history
                .learning_rates
                .push(self.learning_rate().unwrap_or(base_lr));
            for cb in cfg.callbacks.iter_mut() {
                if cb.on_epoch_end(&logs, self, &mut history)? == Control::Stop {
                    control = Control::Stop;
                }
            }
            if control == Control::Stop {
                break;
            }
        }
        for cb in cfg.callbacks.iter_mut() {
            cb.on_train_end(self, &mut history)?;
        }
        self.set_weighted(false)?;
        Ok(history)
    }

    /// One epoch's batches: a per-step schedule's rate and the batch hooks
    /// around each step, and the progress bar. `Stop` when a batch hook
    /// asked for it.
    fn train_epoch(
        &mut self,
        train: &Arc<Dataset>,
        epoch: usize,
        cfg: &mut Fit,
        base_lr: f32,
        verbosity: Verbosity,
    ) -> Result<(Control, Option<ProgressBar>, usize)> {
        let batches = batch_order(train.len(), cfg.batch_size, cfg.shuffle, epoch as u64);
        let bar =
            (verbosity == Verbosity::Auto).then(|| epoch_bar(epoch, cfg.epochs, batches.len()));
        let steps = batches.len();
        let per_step = cfg.schedule != LrSchedule::Constant && cfg.schedule.every() == Every::Step;
        let read_loss = cfg.callbacks.iter().any(|cb| cb.wants_batch_loss());
        let seed = cfg.shuffle.unwrap_or(0) ^ (epoch as u64).wrapping_mul(0xa076_1d64_78bd_642f);
        // Batches are gathered (and augmented) on a loader thread, two ahead.
        // Each batch's loss weights, gathered here by its rows: the loader
        // takes the order, so only a weighted fit keeps a copy.
        let weights: Option<Vec<Vec<f32>>> = cfg.sample_weight.as_ref().map(|w| {
            batches
                .iter()
                .map(|rows| rows.iter().map(|&r| w[r]).collect())
                .collect()
        });
        let loader = Prefetch::new(train.clone(), batches, cfg.augment, seed, 2);
        let mut seen = 0;
        let mut control = Control::Continue;
        for (k, batch) in loader.enumerate() {
            let batch = batch?;
            if per_step {
                self.set_scheduled_rate(cfg.schedule.rate(base_lr, self.steps() as usize))?;
            }
            let mut logs = BatchLogs {
                epoch: epoch + 1,
                batch: k,
                rows: batch.rows,
                step: self.steps(),
                loss: None,
            };
            for cb in cfg.callbacks.iter_mut() {
                cb.on_batch_begin(&logs, self)?;
            }
            let w = weights.as_ref().map(|w| w[k].as_slice());
            self.train_weighted(&batch.x, &batch.y, w)?;
            seen += batch.rows;
            if read_loss {
                logs.loss = Some(self.running_loss(seen)?);
            }
            for cb in cfg.callbacks.iter_mut() {
                if cb.on_batch_end(&logs, self)? == Control::Stop {
                    control = Control::Stop;
                }
            }
            if let Some(bar) = &bar {
                bar.inc(1);
                if k % cfg.refresh_every.max(1) == 0 {
                    bar.set_message(format!("loss: {:.4}", self.running_loss(seen)?));
                }
            }
            if control == Control::Stop {
                break;
            }
        }
        Ok((control, bar, steps))
    }
}
