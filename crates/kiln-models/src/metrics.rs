//! Metrics, accumulated on the device and read once per epoch. Most give
//! per-sample (or per-element) values whose sum is added to a device-side
//! total every step and averaged over the samples; precision, recall and F1
//! add up counts instead (true positives, predicted and actual positives,
//! per class where averaged over classes) and are computed from the totals,
//! as scikit-learn computes them from the whole data set.

use kiln_graph::{BinaryOp, Graph, NodeId, Result, UnaryOp};

/// How precision, recall and F1 treat classes (scikit-learn's `average`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    /// One output, a probability: positive where it is above 0.5; targets
    /// 0 or 1.
    Binary,
    /// Class scores `[N, C]` (the top score is the prediction) and class
    /// indices: the mean of the per-class values (a class never predicted
    /// counts 0, scikit-learn's `zero_division=0`).
    Macro,
    /// Class scores and indices: the counts summed over classes first.
    Micro,
}

/// What a metric adds up over a pass.
pub(crate) enum Tally {
    /// Per-sample (or per-element) values, averaged over the samples.
    PerSample(NodeId),
    /// Count vectors of this batch, each added to its own total.
    Counts(Vec<NodeId>),
}

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
    /// True positives over predicted positives.
    Precision(Average),
    /// True positives over actual positives.
    Recall(Average),
    /// The harmonic mean of precision and recall, `2·TP / (2·TP + FP + FN)`.
    F1(Average),
    /// The area under the ROC curve of one probability per sample against
    /// 0/1 targets (scikit-learn's `roc_auc_score`), from per-threshold
    /// counts: positives and negatives in each of [`AUC_BINS`] score bins,
    /// totalled on the device. Scores in one bin count as tied, so the area
    /// is exact when scores are multiples of `1/AUC_BINS` (or when no bin
    /// holds both classes), and within the bins' width otherwise.
    RocAuc,
    /// The precision-recall curve's area as scikit-learn's
    /// `average_precision_score` sums it (`Σ (Rₙ − Rₙ₋₁)·Pₙ` over
    /// thresholds), from the same per-bin counts as [`Metric::RocAuc`].
    PrAuc,
}

/// Score bins of [`Metric::RocAuc`] and [`Metric::PrAuc`]: thresholds at
/// every multiple of 1/4096.
pub const AUC_BINS: usize = 4096;

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
            Metric::Precision(a) => averaged("precision", a),
            Metric::Recall(a) => averaged("recall", a),
            Metric::F1(a) => averaged("f1", a),
            Metric::RocAuc => "roc_auc".into(),
            Metric::PrAuc => "pr_auc".into(),
        }
    }

    /// `outputs` (one sample's output shape) can be scored by this metric;
    /// else what is wrong.
    pub(crate) fn check_outputs(self, outputs: &[usize]) -> crate::error::Result<()> {
        let classes = outputs.iter().product::<usize>();
        let average = match self {
            Metric::Precision(a) | Metric::Recall(a) | Metric::F1(a) => a,
            Metric::RocAuc | Metric::PrAuc => Average::Binary,
            _ => return Ok(()),
        };
        match (average, classes) {
            (Average::Binary, 1) => Ok(()),
            (Average::Macro | Average::Micro, c) if c >= 2 && outputs.len() == 1 => Ok(()),
            _ => Err(crate::error::ModelError::Shape(format!(
                "{self:?} on outputs {outputs:?}: binary averaging takes one probability per sample, macro and micro class scores [classes] with at least 2 classes"
            ))),
        }
    }

    /// The sizes of the totals this metric keeps, for `classes` outputs.
    pub(crate) fn total_sizes(self, classes: usize) -> Vec<usize> {
        match self {
            Metric::Precision(a) | Metric::Recall(a) | Metric::F1(a) => {
                let k = if a == Average::Binary { 1 } else { classes };
                vec![k; 3]
            }
            Metric::RocAuc | Metric::PrAuc => vec![AUC_BINS; 2],
            _ => vec![1],
        }
    }

    /// What this batch adds to the totals.
    pub(crate) fn tally(self, g: &mut Graph, pred: NodeId, target: NodeId) -> Result<Tally> {
        Ok(match self {
            Metric::Precision(a) | Metric::Recall(a) | Metric::F1(a) => {
                Tally::Counts(positive_counts(g, pred, target, a)?.to_vec())
            }
            Metric::RocAuc | Metric::PrAuc => Tally::Counts(score_bins(g, pred, target)?.to_vec()),
            _ => Tally::PerSample(self.values(g, pred, target)?),
        })
    }

    /// The metric from its totals over `samples` samples.
    pub(crate) fn finish(self, totals: &[Vec<f32>], samples: usize) -> f32 {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        // Per class (or the one binary count): the metric from TP, PP, AP.
        let of = |tp: f64, pp: f64, ap: f64| match self {
            Metric::Precision(_) => ratio(tp, pp),
            Metric::Recall(_) => ratio(tp, ap),
            _ => ratio(2.0 * tp, pp + ap),
        };
        match self {
            Metric::Precision(a) | Metric::Recall(a) | Metric::F1(a) => {
                let [tp, pp, ap] = [0, 1, 2].map(|k| totals[k].iter().map(|&v| v as f64));
                let value = match a {
                    Average::Macro => {
                        let per: Vec<f64> =
                            tp.zip(pp).zip(ap).map(|((t, p), a)| of(t, p, a)).collect();
                        per.iter().sum::<f64>() / per.len().max(1) as f64
                    }
                    _ => of(tp.sum(), pp.sum(), ap.sum()),
                };
                value as f32
            }
            Metric::RocAuc => roc_auc(&totals[0], &totals[1]) as f32,
            Metric::PrAuc => average_precision(&totals[0], &totals[1]) as f32,
            _ => totals[0][0] / samples.max(1) as f32,
        }
    }

    /// True when larger is better (for early stopping's `auto` mode).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::MeanAbsoluteError | Metric::MeanSquaredError)
    }

    /// Per-sample (or per-element) values; their sum divided by the values
    /// per sample is the batch's sum of per-sample metric values. Precision,
    /// recall and F1 have none: they are ratios of totals.
    pub fn values(self, g: &mut Graph, pred: NodeId, target: NodeId) -> Result<NodeId> {
        match self {
            Metric::Precision(_)
            | Metric::Recall(_)
            | Metric::F1(_)
            | Metric::RocAuc
            | Metric::PrAuc => Err(kiln_graph::GraphError::Usage(format!(
                "{self:?} is a ratio of totals over the data, not a mean of per-sample values"
            ))),
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

/// `precision`, `macro_precision`, `micro_precision`.
fn averaged(name: &str, a: Average) -> String {
    match a {
        Average::Binary => name.into(),
        Average::Macro => format!("macro_{name}"),
        Average::Micro => format!("micro_{name}"),
    }
}

/// This batch's true positives, predicted positives and actual positives:
/// one count each for `Binary`, one per class otherwise.
fn positive_counts(g: &mut Graph, pred: NodeId, target: NodeId, a: Average) -> Result<[NodeId; 3]> {
    let (predicted, actual) = match a {
        Average::Binary => {
            let half = g.scalar(0.5);
            (
                g.binary(BinaryOp::Gt, pred, half)?,
                g.binary(BinaryOp::Gt, target, half)?,
            )
        }
        Average::Macro | Average::Micro => {
            let best = g.reduce(kiln_graph::ReduceOp::Max, pred, &[-1], true)?;
            let predicted = g.binary(BinaryOp::Eq, pred, best)?;
            (predicted, one_hot(g, pred, target)?)
        }
    };
    let c = *g.shape(predicted).last().unwrap_or(&1) as i64;
    let column_sums = |g: &mut Graph, x: NodeId| -> Result<NodeId> {
        let rows = g.reshape(x, &[-1, c])?;
        g.sum(rows, &[0], false)
    };
    let both = g.mul(predicted, actual)?;
    Ok([
        column_sums(g, both)?,
        column_sums(g, predicted)?,
        column_sums(g, actual)?,
    ])
}

/// Positives and negatives per score bin: bin `⌊p·AUC_BINS⌋` (the last
/// bin takes p = 1).
fn score_bins(g: &mut Graph, pred: NodeId, target: NodeId) -> Result<[NodeId; 2]> {
    let scaled = g.scale(pred, AUC_BINS as f32)?;
    let bin = g.unary(UnaryOp::Floor, scaled)?;
    let last = g.scalar((AUC_BINS - 1) as f32);
    let bin = g.binary(BinaryOp::Min, bin, last)?;
    let bin = g.reshape(bin, &[-1, 1])?;
    let ids: Vec<f32> = (0..AUC_BINS).map(|i| i as f32).collect();
    let ids = g.constant(&ids, &[AUC_BINS])?;
    let one_hot = g.binary(BinaryOp::Eq, bin, ids)?;
    let half = g.scalar(0.5);
    let t = g.reshape(target, &[-1, 1])?;
    let positive = g.binary(BinaryOp::Gt, t, half)?;
    let negative = g.binary(BinaryOp::Le, t, half)?;
    let pos = g.mul(one_hot, positive)?;
    let neg = g.mul(one_hot, negative)?;
    Ok([g.sum(pos, &[0], false)?, g.sum(neg, &[0], false)?])
}

/// The ROC curve's area from per-bin counts, highest scores first: each
/// negative scores the positives above its bin, and half of those in it.
fn roc_auc(pos: &[f32], neg: &[f32]) -> f64 {
    let (p, n): (f64, f64) = (
        pos.iter().map(|&v| v as f64).sum(),
        neg.iter().map(|&v| v as f64).sum(),
    );
    if p == 0.0 || n == 0.0 {
        return f64::NAN;
    }
    let mut above = 0.0;
    let mut area = 0.0;
    for (&pk, &nk) in pos.iter().zip(neg).rev() {
        area += nk as f64 * (above + pk as f64 / 2.0);
        above += pk as f64;
    }
    area / (p * n)
}

/// scikit-learn's average precision from per-bin counts: at each
/// threshold (a non-empty bin, highest first) the recall gained times the
/// precision there.
fn average_precision(pos: &[f32], neg: &[f32]) -> f64 {
    let p: f64 = pos.iter().map(|&v| v as f64).sum();
    if p == 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut ap) = (0.0, 0.0, 0.0);
    for (&pk, &nk) in pos.iter().zip(neg).rev() {
        if pk == 0.0 && nk == 0.0 {
            continue;
        }
        tp += pk as f64;
        fp += nk as f64;
        ap += pk as f64 / p * (tp / (tp + fp));
    }
    ap
}

/// Class indices `target` `[N]` as one-hot rows beside `pred` `[N, C]`.
fn one_hot(g: &mut Graph, pred: NodeId, target: NodeId) -> Result<NodeId> {
    let c = *g.shape(pred).last().unwrap_or(&1);
    let ids: Vec<f32> = (0..c).map(|i| i as f32).collect();
    let ids = g.constant(&ids, &[c])?;
    let t = g.reshape(target, &[-1, 1])?;
    g.binary(BinaryOp::Eq, t, ids)
}

/// 1 per sample where fewer than `k` classes score strictly above the
/// target class (`pred` `[N, C]`, `target` `[N]` class indices).
fn above_target(g: &mut Graph, pred: NodeId, target: NodeId, k: usize) -> Result<NodeId> {
    let one_hot = one_hot(g, pred, target)?;
    let picked = g.mul(pred, one_hot)?;
    let score = g.sum(picked, &[-1], true)?;
    let above = g.binary(BinaryOp::Gt, pred, score)?;
    let count = g.sum(above, &[-1], false)?;
    let k = g.scalar(k as f32);
    g.binary(BinaryOp::Lt, count, k)
}
