//! What every example shares, defined once: the device, the seed, how much
//! it prints, the training flags whose defaults each model sets
//! (`--epochs`, `--batch-size`, `--lr`), the history, plot and TensorBoard
//! outputs, and the final JSON line. An example keeps only its model and
//! data, and includes this file (`#[path = "harness/mod.rs"] mod harness;`).
//!
//! An example sets its own training defaults on its command:
//! `#[command(mut_arg("epochs", |a| a.default_value("100")))]`.

#![allow(dead_code)] // each example uses what it needs

use std::path::PathBuf;

use kiln::models::{History, TensorBoard};
use kiln::prelude::*;

/// The flags every example takes, with one name, default and help each.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// gpu, software, or part of an adapter's name (default: KILN_DEVICE,
    /// else the best adapter).
    #[arg(long)]
    pub device: Option<String>,
    /// Seed of the data split, the initial weights, dropout, shuffling and
    /// augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print only the final JSON line.
    #[arg(long)]
    pub quiet: bool,
    /// Most epochs to train (early stopping may end sooner).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per training batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The optimizer's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Also write the per-epoch history to FILE as CSV.
    #[arg(long, value_name = "FILE.csv")]
    pub history: Option<PathBuf>,
    /// Also plot the loss and metric curves to FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Also write TensorBoard event files to DIR (`tensorboard --logdir DIR`).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
}

impl Common {
    /// The adapter `--device` names. Output paths are checked first: a typo
    /// in a folder name must not cost a whole run.
    pub fn start(&self) -> anyhow::Result<Device> {
        for path in self.history.iter().chain(&self.plot) {
            kiln::models::check_writable(path)?;
        }
        Ok(kiln::device_from_flag(self.device.as_deref())?)
    }

    /// Silent with `--quiet`, else a progress bar on a terminal.
    pub fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Silent
        } else {
            Verbosity::Auto
        }
    }

    /// Prints `line` unless `--quiet`.
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            println!("{line}");
        }
    }

    /// `fit` with the shared settings: the epochs, batch size, shuffle seed,
    /// verbosity and, with `--tensorboard`, its callback.
    pub fn fit(&self) -> Fit {
        let fit = Fit::epochs(self.epochs)
            .batch_size(self.batch_size)
            .shuffle(Some(self.seed))
            .verbosity(self.verbosity());
        match &self.tensorboard {
            Some(dir) => fit.callback(TensorBoard::new(dir)),
            None => fit,
        }
    }

    /// Writes the history's CSV and plot where asked, and says so.
    pub fn write_outputs(&self, history: &History) -> anyhow::Result<()> {
        if let Some(path) = &self.history {
            history.save_csv(path)?;
            self.say(format!("wrote the history to {}", path.display()));
        }
        if let Some(path) = &self.plot {
            history.plot(path)?;
            self.say(format!("wrote the plot to {}", path.display()));
        }
        if let Some(dir) = &self.tensorboard {
            self.say(format!("wrote TensorBoard events to {}", dir.display()));
        }
        Ok(())
    }
}

/// Which images of an image data set an example uses.
#[derive(clap::Args, Clone, Debug)]
pub struct ImageSubset {
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Test on the first N test images only.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
}

impl ImageSubset {
    /// The first `--limit` and `--test-limit` images of `train` and `test`.
    pub fn apply(
        &self,
        train: &mut kiln::data::Dataset,
        test: &mut kiln::data::Dataset,
    ) -> anyhow::Result<()> {
        for (data, limit) in [(train, self.limit), (test, self.test_limit)] {
            if let Some(n) = limit {
                let keep: Vec<usize> = (0..n.min(data.len())).collect();
                *data = data.subset(&keep)?;
            }
        }
        Ok(())
    }
}

/// An f32 as JSON at its own precision: `0.06`, not the f64 widening
/// `0.05999999865889549`.
pub fn num(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Seconds rounded to `digits` decimals, for the JSON line.
pub fn seconds(s: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (s * scale).round() / scale
}
