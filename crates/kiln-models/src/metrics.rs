//! Metrics, accumulated on the device: each gives per-sample (or
//! per-element) values whose sum is added to a device-side total every step
//! and read once per epoch.

use kiln_graph::{BinaryOp, Graph, NodeId, Result, UnaryOp};

/// A metric reported per epoch, averaged over samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Keras' `binary_accuracy`: prediction > 0.5 agrees with target > 0.5.
    BinaryAccuracy,
    /// Keras' `categorical_accuracy` on one-hot targets: the target's class has
    /// the largest prediction (a tie counts for every tied class).
    CategoricalAccuracy,
    /// Keras' `sparse_categorical_accuracy` on class indices: the target's
    /// score is the largest (ties count as hits).
    SparseCategoricalAccuracy,
    /// Keras' `sparse_top_k_categorical_accuracy`: fewer than `k` classes
    /// score above the target's.
    SparseTopKAccuracy(usize),
    MeanAbsoluteError,
    MeanSquaredError,
}

impl Metric {
    /// The name in the history (`val_` prepended for validation), as Keras
    /// names `metrics=["accuracy"]` and friends.
    pub fn name(self) -> String {
        match self {
            Metric::BinaryAccuracy
            | Metric::CategoricalAccuracy
            | Metric::SparseCategoricalAccuracy => "accuracy".into(),
            Metric::SparseTopKAccuracy(k) => format!("top{k}_accuracy"),
            Metric::MeanAbsoluteError => "mae".into(),
            Metric::MeanSquaredError => "mse".into(),
        }
    }

    /// True when larger is better (for early stopping's `auto` mode).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::MeanAbsoluteError | Metric::MeanSquaredError)
    }

    /// Per-sample (or per-element) values; their sum divided by the values
    /// per sample is the batch's sum of per-sample metric values.
    pub fn values(self, g: &mut Graph, pred: NodeId, target: NodeId) -> Result<NodeId> {
        match self {
            Metric::BinaryAccuracy => g.binary(BinaryOp::BinaryAccuracy, pred, target),
            Metric::CategoricalAccuracy => {
                let best = g.reduce(kiln_graph::ReduceOp::Max, pred, &[-1], true)?;
                let hit = g.binary(BinaryOp::Eq, pred, best)?;
                let on_target = g.mul(hit, target)?;
                g.sum(on_target, &[-1], false)
            }
            Metric::SparseCategoricalAccuracy => above_target(g, pred, target, 1),
            Metric::SparseTopKAccuracy(k) => above_target(g, pred, target, k),
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

/// 1 per sample where fewer than `k` classes score strictly above the
/// target class (`pred` `[N, C]`, `target` `[N]` class indices).
fn above_target(g: &mut Graph, pred: NodeId, target: NodeId, k: usize) -> Result<NodeId> {
    let c = *g.shape(pred).last().unwrap_or(&1);
    let ids: Vec<f32> = (0..c).map(|i| i as f32).collect();
    let ids = g.constant(&ids, &[c])?;
    let t = g.reshape(target, &[-1, 1])?;
    let one_hot = g.binary(BinaryOp::Eq, t, ids)?;
    let picked = g.mul(pred, one_hot)?;
    let score = g.sum(picked, &[-1], true)?;
    let above = g.binary(BinaryOp::Gt, pred, score)?;
    let count = g.sum(above, &[-1], false)?;
    let k = g.scalar(k as f32);
    g.binary(BinaryOp::Lt, count, k)
}
