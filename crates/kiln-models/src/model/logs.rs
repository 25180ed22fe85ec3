//! Losses and metrics summed on the device over a pass, and read back as
//! per-sample averages.

use kiln_backend::Device;
use kiln_graph::Param;

use super::Model;
use crate::error::Result;
use crate::metrics::Metric;
use crate::module::Module;

/// Losses and metrics of one pass over data, as averages per sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Logs {
    pub loss: f32,
    /// (name, value) per compiled metric.
    pub metrics: Vec<(String, f32)>,
}

/// Keras' way: `loss: 0.0812 - accuracy: 0.9737`.
impl std::fmt::Display for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loss: {:.4}", self.loss)?;
        for (name, value) in &self.metrics {
            write!(f, " - {name}: {value:.4}")?;
        }
        Ok(())
    }
}

/// Device-side sums of a loss and metrics over an epoch: one total for the
/// loss, and each metric's totals ([`Metric::total_sizes`]).
pub(super) struct Accumulators {
    pub(super) loss: Param,
    pub(super) metrics: Vec<Vec<Param>>,
}

impl Accumulators {
    /// Zeroed totals for `metrics` on `classes` outputs.
    pub(super) fn new(device: &Device, metrics: &[Metric], classes: usize) -> Result<Self> {
        let sum = |name: String, size: usize| -> Result<Param> {
            let p = Param::zeros(device, &name, &[size])?;
            p.set_trainable(false);
            Ok(p)
        };
        let metrics = metrics
            .iter()
            .enumerate()
            .map(|(k, m)| {
                m.total_sizes(classes)
                    .into_iter()
                    .enumerate()
                    .map(|(j, size)| sum(format!("kiln.acc.metric{k}.{j}"), size))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            loss: sum("kiln.acc.loss".into(), 1)?,
            metrics,
        })
    }
}

impl<M: Module> Model<M> {
    /// Reads and resets the accumulated loss and metrics of a split, as
    /// averages over `samples`.
    pub(super) fn take(&mut self, train: bool, samples: usize) -> Result<Logs> {
        let t = self.training_mut()?;
        let acc = if train { &t.train } else { &t.val };
        let read = |p: &Param| -> Result<Vec<f32>> {
            let v = p.values()?;
            p.write(&vec![0.0; v.len()])?;
            Ok(v)
        };
        let loss = read(&acc.loss)?[0] / samples.max(1) as f32;
        let mut metrics = Vec::new();
        for (m, totals) in t.metrics.iter().zip(&acc.metrics) {
            let totals = totals.iter().map(read).collect::<Result<Vec<_>>>()?;
            metrics.push((m.name(), m.finish(&totals, samples)));
        }
        Ok(Logs { loss, metrics })
    }

    pub(crate) fn take_train_logs(&mut self, samples: usize) -> Result<Logs> {
        self.take(true, samples)
    }

    /// The training loss summed over the epoch so far (since `fit` began an
    /// epoch or `compile`), divided by `samples`, without resetting it. It
    /// reads the device back, so it waits for the steps in flight.
    pub fn running_loss(&mut self, samples: usize) -> Result<f32> {
        let v = self.training_mut()?.train.loss.values()?[0];
        Ok(v / samples.max(1) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::Logs;

    #[test]
    fn logs_print_as_keras_does() {
        let logs = Logs {
            loss: 0.081_23,
            metrics: vec![("accuracy".into(), 0.973_68), ("mae".into(), 1.5)],
        };
        assert_eq!(
            logs.to_string(),
            "loss: 0.0812 - accuracy: 0.9737 - mae: 1.5000"
        );
    }
}
