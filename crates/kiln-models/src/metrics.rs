//! Metrics, accumulated on the device: each gives per-element values whose sum
//! is added to a device-side total every step and read once per epoch.

use kiln_graph::{BinaryOp, Graph, NodeId, Result, UnaryOp};

/// A metric reported per epoch, averaged over samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Keras' `binary_accuracy`: prediction > 0.5 agrees with target > 0.5.
    BinaryAccuracy,
    /// Keras' `categorical_accuracy` on one-hot targets: the target's class has
    /// the largest prediction (a tie counts for every tied class).
    CategoricalAccuracy,
    MeanAbsoluteError,
    MeanSquaredError,
}

impl Metric {
    /// The name in the history (`val_` prepended for validation), as Keras
    /// names `metrics=["accuracy"]` and friends.
    pub fn name(self) -> &'static str {
        match self {
            Metric::BinaryAccuracy | Metric::CategoricalAccuracy => "accuracy",
            Metric::MeanAbsoluteError => "mae",
            Metric::MeanSquaredError => "mse",
        }
    }

    /// True when larger is better (for early stopping's `auto` mode).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::BinaryAccuracy | Metric::CategoricalAccuracy)
    }

    /// Per-element values; their sum divided by elements per sample is the
    /// batch's sum of per-sample metric values.
    pub fn values(self, g: &mut Graph, pred: NodeId, target: NodeId) -> Result<NodeId> {
        match self {
            Metric::BinaryAccuracy => g.binary(BinaryOp::BinaryAccuracy, pred, target),
            Metric::CategoricalAccuracy => {
                let best = g.reduce(kiln_graph::ReduceOp::Max, pred, &[-1], true)?;
                let hit = g.binary(BinaryOp::Eq, pred, best)?;
                let on_target = g.mul(hit, target)?;
                g.sum(on_target, &[-1], false)
            }
            Metric::MeanAbsoluteError => {
                let d = g.sub(pred, target)?;
                g.unary(UnaryOp::Abs, d)
            }
            Metric::MeanSquaredError => {
                let d = g.sub(pred, target)?;
                g.unary(UnaryOp::Square, d)
            }
        }
    }
}
