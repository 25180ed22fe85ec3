"""Writes tests/fixtures/sklearn_metrics.safetensors: fixed predictions and
targets, with scikit-learn's precision, recall and F1 of them (binary, and
macro and micro over classes), ROC AUC and average precision, in the
metadata as decimal strings.

    python -m venv .venv && .venv/bin/pip install -r scripts/sklearn/requirements.txt
    .venv/bin/python scripts/sklearn/metrics_fixture.py

Predictions are rounded to float32 first, and scored by scikit-learn as
those float32 values: binary positives are probabilities above 0.5, class
predictions the top score (the generator avoids ties). One class is never
predicted, so macro averages meet scikit-learn's zero_division=0. The AUC
scores are multiples of 1/4096 below 1 (kiln's score bins), many of them
tied, positives and negatives among the ties.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import sklearn
from safetensors.numpy import save_file
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/sklearn_metrics.safetensors"


def main() -> None:
    rng = np.random.default_rng(20261203)
    n, classes = 203, 5
    # Binary: probabilities loosely following the labels.
    bin_target = (rng.random(n) < 0.4).astype(np.float32)
    logit = 1.5 * (bin_target - 0.5) + rng.normal(0, 1.2, n)
    bin_pred = (1 / (1 + np.exp(-logit))).astype(np.float32)
    assert not np.any(bin_pred == np.float32(0.5))
    # Classes: scores whose top is the label 60 % of the time; class 4 never wins.
    mc_target = rng.integers(0, classes, n)
    scores = rng.random((n, classes))
    hit = rng.random(n) < 0.6
    scores[np.arange(n)[hit], mc_target[hit]] += 1.0
    scores[:, 4] -= 2.0
    mc_pred = (np.exp(scores) / np.exp(scores).sum(1, keepdims=True)).astype(np.float32)
    top = np.argsort(mc_pred, axis=1)
    assert np.all(mc_pred[np.arange(n), top[:, -1]] > mc_pred[np.arange(n), top[:, -2]])
    predicted = mc_pred.argmax(1)
    assert 4 not in predicted

    # AUC: scores on kiln's grid of 4096 bins, below 1, with ties.
    auc_target = (rng.random(n) < 0.45).astype(np.float32)
    raw = 1 / (1 + np.exp(-(1.2 * (auc_target - 0.5) + rng.normal(0, 1.0, n))))
    auc_pred = (np.minimum(np.round(raw * 64), 63) / 64).astype(np.float32)
    assert len(np.unique(auc_pred)) < n // 2, "ties across classes"
    b = (bin_pred > 0.5).astype(int)
    want = {}
    for name, f in [("precision", precision_score), ("recall", recall_score), ("f1", f1_score)]:
        want[name] = f(bin_target.astype(int), b, zero_division=0)
        for avg in ["macro", "micro"]:
            want[f"{avg}_{name}"] = f(
                mc_target, predicted, average=avg, labels=list(range(classes)), zero_division=0
            )
    want["roc_auc"] = roc_auc_score(auc_target.astype(int), auc_pred)
    want["pr_auc"] = average_precision_score(auc_target.astype(int), auc_pred)
    confusion = {
        "binary": confusion_matrix(bin_target.astype(int), b).tolist(),
        "classes": confusion_matrix(mc_target, predicted, labels=list(range(classes))).tolist(),
    }
    meta = {
        "source": f"scikit-learn {sklearn.__version__} sklearn.metrics, written by scripts/sklearn/metrics_fixture.py",
        "metrics": json.dumps({k: repr(float(v)) for k, v in want.items()}),
        "confusion": json.dumps(confusion),
    }
    save_file(
        {
            "bin_pred": bin_pred.reshape(n, 1),
            "bin_target": bin_target.reshape(n, 1),
            "mc_pred": mc_pred,
            "mc_target": mc_target.astype(np.int64),
            "auc_pred": auc_pred.reshape(n, 1),
            "auc_target": auc_target.reshape(n, 1),
        },
        OUT,
        meta,
    )
    print(json.dumps(want, indent=1))


if __name__ == "__main__":
    main()
