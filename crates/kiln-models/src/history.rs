//! The record of a fit: per-epoch losses and metrics, train and validation.

use std::io::Write;
use std::path::Path;

use crate::error::{ModelError, Result};

/// One epoch's values, in the order Keras logs them
/// (`loss`, metrics, `val_loss`, `val_` metrics).
#[derive(Clone, Debug, PartialEq)]
pub struct EpochLogs {
    /// 1-based epoch number.
    pub epoch: usize,
    pub values: Vec<(String, f32)>,
}

impl EpochLogs {
    pub fn get(&self, name: &str) -> Option<f32> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Per-epoch logs of a fit, plus what early stopping decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<EpochLogs>,
    /// The learning rate of each epoch's last step, one per epoch (after a
    /// schedule or a callback changed it).
    pub learning_rates: Vec<f32>,
    /// The epoch whose weights the model holds after a best-weights restore.
    pub best_epoch: Option<usize>,
    /// Set when a callback stopped training before the last epoch.
    pub stopped_early: bool,
    /// Whether early stopping restored the best epoch's weights.
    pub restored_best: bool,
    /// Why a callback stopped training, where it says (a NaN loss).
    pub stop_reason: Option<String>,
}

impl History {
    /// The series of one logged value (e.g. `"val_loss"`).
    pub fn series(&self, name: &str) -> Vec<f32> {
        self.epochs.iter().filter_map(|e| e.get(name)).collect()
    }

    /// Names logged each epoch.
    pub fn names(&self) -> Vec<String> {
        self.epochs
            .first()
            .map(|e| e.values.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// `epoch,loss,...` lines, one per epoch.
    pub fn to_csv(&self) -> String {
        let names = self.names();
        let mut out = format!("epoch,{}\n", names.join(","));
        for e in &self.epochs {
            let row: Vec<String> = names
                .iter()
                .map(|n| e.get(n).map_or(String::new(), |v| v.to_string()))
                .collect();
            out.push_str(&format!("{},{}\n", e.epoch, row.join(",")));
        }
        out
    }

    pub fn save_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(self.to_csv().as_bytes()))
            .map_err(|e| ModelError::Output {
                path: path.display().to_string(),
                detail: format!("writing the history: {e}"),
            })
    }

    /// One line per logged value: first, best and last.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!("{} epochs", self.epochs.len())];
        for n in self.names() {
            let s = self.series(&n);
            let (Some(first), Some(last)) = (s.first(), s.last()) else {
                continue;
            };
            let best = if n.ends_with("loss") || n.ends_with("mae") || n.ends_with("mse") {
                s.iter().cloned().fold(f32::INFINITY, f32::min)
            } else {
                s.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
            };
            lines.push(format!(
                "  {n:<14} first {first:.4}  best {best:.4}  last {last:.4}"
            ));
        }
        if let Some(b) = self.best_epoch {
            lines.push(format!(
                "  best epoch {b}{}",
                if self.restored_best {
                    " (weights restored)"
                } else {
                    ""
                }
            ));
        }
        lines.join("\n")
    }
}
