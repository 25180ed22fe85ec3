//! Losses as graph ops. Integer labels enter the graph as exact f32 values;
//! a one-hot mask built by comparing them with the class indices picks each
//! sample's entry, so no gather kernel is needed and the backward is the same
//! mask.

use kiln_graph::{BinaryOp, Graph, GraphError, NodeId, Result, UnaryOp};

/// How per-element losses are combined (ONNX and PyTorch `reduction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    None,
    Sum,
    #[default]
    Mean,
}

impl Reduction {
    /// Parses `none`, `sum` or `mean`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "sum" => Ok(Self::Sum),
            "mean" => Ok(Self::Mean),
            other => Err(GraphError::Usage(format!(
                "reduction {other:?}: expected none, sum or mean"
            ))),
        }
    }
}

/// Negative log-likelihood of `log_prob` `[N, C, d..]` at the integer classes
/// `target` `[N, d..]`, with optional class weights `[C]` and an ignored class
/// (ONNX NegativeLogLikelihoodLoss, PyTorch `nll_loss`). With `Mean`, the sum
/// is divided by the total weight of the samples not ignored.
pub fn nll_loss(
    g: &mut Graph,
    log_prob: NodeId,
    target: NodeId,
    weight: Option<NodeId>,
    ignore_index: Option<i64>,
    reduction: Reduction,
) -> Result<NodeId> {
    let s = g.shape(log_prob).to_vec();
    let t = g.shape(target).to_vec();
    let mut expected = s.clone();
    if s.len() >= 2 {
        expected.remove(1);
    }
    if s.len() < 2 || t != expected {
        return Err(GraphError::Shape {
            op: "NegativeLogLikelihoodLoss".into(),
            detail: format!("input {s:?} needs targets of shape {expected:?}, got {t:?}"),
        });
    }
    let classes = s[1];
    // [N, 1, d..] against [1, C, 1..]: a one-hot mask over the class axis.
    let mut column: Vec<i64> = t.iter().map(|&d| d as i64).collect();
    column.insert(1, 1);
    let t_col = g.reshape(target, &column)?;
    let mut class_shape = vec![1usize; s.len()];
    class_shape[1] = classes;
    let ids: Vec<f32> = (0..classes).map(|c| c as f32).collect();
    let class_ids = g.constant(&ids, &class_shape)?;
    let one_hot = g.binary(BinaryOp::Eq, t_col, class_ids)?;

    let picked_all = g.mul(log_prob, one_hot)?;
    let picked = g.sum(picked_all, &[1], false)?;
    let mut sample_weight = match weight {
        Some(w) => {
            let class_shape_i: Vec<i64> = class_shape.iter().map(|&d| d as i64).collect();
            let w = g.reshape(w, &class_shape_i)?;
            let w_all = g.mul(w, one_hot)?;
            Some(g.sum(w_all, &[1], false)?)
        }
        None => None,
    };
    if let Some(ii) = ignore_index {
        let ii = g.scalar(ii as f32);
        let keep = g.binary(BinaryOp::Ne, target, ii)?;
        sample_weight = Some(match sample_weight {
            Some(w) => g.mul(w, keep)?,
            None => keep,
        });
    }
    let weighted = match sample_weight {
        Some(w) => g.mul(picked, w)?,
        None => picked,
    };
    let per_sample = g.unary(UnaryOp::Neg, weighted)?;
    match reduction {
        Reduction::None => Ok(per_sample),
        Reduction::Sum => g.sum_all(per_sample),
        Reduction::Mean => match sample_weight {
            None => g.mean_all(per_sample),
            Some(w) => {
                let total = g.sum_all(per_sample)?;
                let norm = g.sum_all(w)?;
                g.div(total, norm)
            }
        },
    }
}

/// Softmax cross-entropy of raw `scores` `[N, C, d..]` against integer classes
/// (ONNX SoftmaxCrossEntropyLoss, PyTorch `cross_entropy`); returns the loss
/// and the log-probabilities.
pub fn softmax_cross_entropy(
    g: &mut Graph,
    scores: NodeId,
    target: NodeId,
    weight: Option<NodeId>,
    ignore_index: Option<i64>,
    reduction: Reduction,
) -> Result<(NodeId, NodeId)> {
    let log_prob = g.softmax(scores, 1, true)?;
    let loss = nll_loss(g, log_prob, target, weight, ignore_index, reduction)?;
    Ok((loss, log_prob))
}

/// A training loss. [`Loss::terms`] gives a tensor whose mean is the batch
/// loss (Keras: the mean over the last axis, then over the batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Probabilities (after a sigmoid) against 0/1 targets; clipped like Keras.
    BinaryCrossEntropy,
    /// Logits against 0/1 targets, computed stably.
    BinaryCrossEntropyFromLogits,
    /// Probabilities (after a softmax) against one-hot targets; as in
    /// Keras, each row is scaled to sum 1 first.
    CategoricalCrossEntropy,
    /// Logits against one-hot targets (log-softmax inside).
    CategoricalCrossEntropyFromLogits,
    /// Probabilities against integer class indices (one per sample).
    SparseCategoricalCrossEntropy,
    /// Logits against integer class indices: PyTorch's `cross_entropy`.
    SparseCategoricalCrossEntropyFromLogits,
    MeanSquaredError,
    MeanAbsoluteError,
}

impl Loss {
    /// True for the losses whose targets are class indices.
    pub fn sparse(self) -> bool {
        matches!(
            self,
            Loss::SparseCategoricalCrossEntropy | Loss::SparseCategoricalCrossEntropyFromLogits
        )
    }

    /// The shape of one sample's targets for predictions of `pred` per sample.
    pub fn target_shape(self, pred: &[usize]) -> Vec<usize> {
        if self.sparse() {
            pred[..pred.len().saturating_sub(1)].to_vec()
        } else {
            pred.to_vec()
        }
    }

    /// Checks the targets where the loss's definition requires it: 0/1 (or
    /// in [0, 1]) for binary cross-entropy, class indices in `0..classes` for
    /// the sparse losses; every loss needs finite targets. The error names
    /// the first bad value.
    pub fn validate_targets(self, targets: &[f32], classes: usize) -> crate::error::Result<()> {
        match self.first_bad_target(targets, classes) {
            Some((i, why)) => Err(crate::error::ModelError::Values(format!(
                "{self:?}: target {i} ({}) {why}",
                targets[i]
            ))),
            None => Ok(()),
        }
    }

    /// The position of the first target [`Loss::validate_targets`] refuses,
    /// and why.
    pub fn first_bad_target(self, targets: &[f32], classes: usize) -> Option<(usize, String)> {
        targets.iter().enumerate().find_map(|(i, &t)| {
            let why = match self {
                _ if !t.is_finite() => "is not a finite number".to_string(),
                Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropyFromLogits
                    if !(0.0..=1.0).contains(&t) =>
                {
                    "is outside [0, 1], which binary cross-entropy needs".to_string()
                }
                Loss::SparseCategoricalCrossEntropy
                | Loss::SparseCategoricalCrossEntropyFromLogits
                    if t < 0.0 || t.fract() != 0.0 || t as usize >= classes =>
                {
                    format!("is not a class index in 0..{classes}")
                }
                _ => return None,
            };
            Some((i, why))
        })
    }

    /// Why this loss cannot score outputs of `per_sample` shape, if it
    /// cannot: cross-entropy over classes needs at least two of them (one
    /// class has probability 1, a loss of 0 and no gradient).
    pub fn check_outputs(self, per_sample: &[usize]) -> crate::error::Result<()> {
        let classes = per_sample.last().copied().unwrap_or(1);
        let over_classes = matches!(
            self,
            Loss::CategoricalCrossEntropy
                | Loss::CategoricalCrossEntropyFromLogits
                | Loss::SparseCategoricalCrossEntropy
                | Loss::SparseCategoricalCrossEntropyFromLogits
        );
        if over_classes && classes < 2 {
            return Err(crate::error::ModelError::Shape(format!(
                "{self:?} needs at least 2 classes, but the model's output per sample is \
                 {per_sample:?}: {classes} class; for one output of 0/1 targets use \
                 BinaryCrossEntropy (after a sigmoid) or BinaryCrossEntropyFromLogits"
            )));
        }
        Ok(())
    }

    /// The per-sample (or per-element) terms whose mean is the loss.
    pub fn terms(self, g: &mut Graph, pred: NodeId, target: NodeId) -> Result<NodeId> {
        let want = self.target_shape(g.shape(pred));
        if g.shape(target) != want.as_slice() {
            return Err(GraphError::Shape {
                op: format!("{self:?}"),
                detail: format!(
                    "predictions {:?} need targets {:?}, got {:?}",
                    g.shape(pred),
                    want,
                    g.shape(target)
                ),
            });
        }
        match self {
            Loss::BinaryCrossEntropy => g.binary(BinaryOp::BceTerm, pred, target),
            Loss::BinaryCrossEntropyFromLogits => g.binary(BinaryOp::BceLogitsTerm, pred, target),
            Loss::CategoricalCrossEntropy => {
                // Keras: each row scaled to sum 1, clipped, then −Σ t·log p
                // over the classes (a softmax's rows already sum to 1).
                let total = g.sum(pred, &[-1], true)?;
                let pred = g.div(pred, total)?;
                let lp = clipped_log(g, pred)?;
                let t = g.mul(target, lp)?;
                let s = g.sum(t, &[-1], false)?;
                g.scale(s, -1.0)
            }
            Loss::CategoricalCrossEntropyFromLogits => {
                let lp = g.softmax(pred, -1, true)?;
                let t = g.mul(target, lp)?;
                let s = g.sum(t, &[-1], false)?;
                g.scale(s, -1.0)
            }
            Loss::SparseCategoricalCrossEntropy => {
                let lp = clipped_log(g, pred)?;
                let lp = classes_second(g, lp)?;
                nll_loss(g, lp, target, None, None, Reduction::None)
            }
            Loss::SparseCategoricalCrossEntropyFromLogits => {
                let scores = classes_second(g, pred)?;
                Ok(softmax_cross_entropy(g, scores, target, None, None, Reduction::None)?.0)
            }
            Loss::MeanSquaredError => {
                let d = g.sub(pred, target)?;
                g.unary(UnaryOp::Square, d)
            }
            Loss::MeanAbsoluteError => {
                let d = g.sub(pred, target)?;
                g.unary(UnaryOp::Abs, d)
            }
        }
    }
}

/// log of probabilities clipped to [1e-7, 1 − 1e-7], as Keras does.
fn clipped_log(g: &mut Graph, p: NodeId) -> Result<NodeId> {
    let lo = g.scalar(1e-7);
    let hi = g.scalar(1.0 - 1e-7);
    let p = g.binary(BinaryOp::Max, p, lo)?;
    let p = g.binary(BinaryOp::Min, p, hi)?;
    g.unary(UnaryOp::Log, p)
}

/// `[N, d.., C]` with the classes last, as models produce them, to
/// `[N, C, d..]`, as the NLL loss (ONNX, PyTorch) takes them.
fn classes_second(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let r = g.shape(x).len();
    if r <= 2 {
        return Ok(x);
    }
    let mut perm = vec![0, r - 1];
    perm.extend(1..r - 1);
    g.permute(x, &perm)
}
