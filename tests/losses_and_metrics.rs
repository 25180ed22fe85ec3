//! Every loss and every metric on what it produces: `evaluate` (the
//! device-side sums that `fit` reports too) over fixed predictions and
//! targets, in batches that do not divide the data, against f64 formulas
//! written here from Keras' definitions. The model is one dense layer set
//! to the identity, so its predictions are the features, exactly.

mod common;

use kiln::models::Logs;
use kiln::prelude::*;

const ROWS: usize = 37;
const COLS: usize = 4;
/// 37 rows in batches of 8: the last batch holds 5, and must weigh 5/37.
const BATCH: usize = 8;
const EPS: f64 = 1e-7;

fn rng(seed: u64) -> impl FnMut() -> f64 {
    let mut r = kiln::data::SplitMix64::new(seed);
    move || r.next_f64()
}

/// Predictions in (0, 1) that do not sum to 1 per row, logits, 0/1
/// targets, one-hot targets and real targets.
struct Data {
    probs: Vec<f32>,
    logits: Vec<f32>,
    binary: Vec<f32>,
    one_hot: Vec<f32>,
    real: Vec<f32>,
}

fn data() -> Data {
    let mut u = rng(21);
    let n = ROWS * COLS;
    let probs = (0..n).map(|_| (0.02 + 0.96 * u()) as f32).collect();
    let logits = (0..n).map(|_| (6.0 * u() - 3.0) as f32).collect();
    let binary = (0..n).map(|_| (u() < 0.5) as u8 as f32).collect();
    let mut one_hot = vec![0.0; n];
    for r in 0..ROWS {
        one_hot[r * COLS + (u() * COLS as f64) as usize] = 1.0;
    }
    let real = (0..n).map(|_| (4.0 * u() - 2.0) as f32).collect();
    Data {
        probs,
        logits,
        binary,
        one_hot,
        real,
    }
}

/// kiln's evaluation of `loss` and `metrics` with predictions `pred`.
fn evaluate(loss: Loss, metrics: &[Metric], pred: &[f32], targets: &[f32]) -> Logs {
    evaluate_with(loss, metrics, pred, targets, COLS, COLS)
}

/// One dense layer of `cols` units set to the identity, compiled with
/// `loss` and `metrics`: its predictions are its inputs, exactly.
fn identity_model(device: &Device, cols: usize, loss: Loss, metrics: &[Metric]) -> Sequential {
    let mut model = Sequential::new(device, cols).dense(cols, Activation::None);
    model.compile(Optimizer::sgd(0.1), loss, metrics).unwrap();
    let identity: Vec<f32> = (0..cols * cols)
        .map(|i| (i / cols == i % cols) as u8 as f32)
        .collect();
    for (name, _) in model.weights().unwrap() {
        match name.ends_with("kernel") {
            true => model.set_weight(&name, &identity).unwrap(),
            false => model.set_weight(&name, &vec![0.0; cols]).unwrap(),
        }
    }
    model
}

/// [`evaluate`] of `cols` predictions and `target_cols` targets per row.
fn evaluate_with(
    loss: Loss,
    metrics: &[Metric],
    pred: &[f32],
    targets: &[f32],
    cols: usize,
    target_cols: usize,
) -> Logs {
    let device = kiln::device_from_flag(None).expect("an adapter");
    let mut model = identity_model(&device, cols, loss, metrics);
    let data = Dataset::new(pred.to_vec(), targets.to_vec(), cols, target_cols).unwrap();
    model.evaluate(&data, BATCH).unwrap()
}

/// The mean of `f` over rows, each row's value from its predictions and
/// targets (Keras: a per-sample value, then the mean over samples).
fn per_row(pred: &[f32], t: &[f32], f: impl Fn(&[f64], &[f64]) -> f64) -> f64 {
    (0..ROWS)
        .map(|r| {
            let p: Vec<f64> = pred[r * COLS..(r + 1) * COLS]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let t: Vec<f64> = t[r * COLS..(r + 1) * COLS]
                .iter()
                .map(|&v| v as f64)
                .collect();
            f(&p, &t)
        })
        .sum::<f64>()
        / ROWS as f64
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let all: Vec<f64> = v.collect();
    all.iter().sum::<f64>() / all.len() as f64
}

fn bce(p: &[f64], t: &[f64]) -> f64 {
    mean(p.iter().zip(t).map(|(&p, &t)| {
        let p = p.clamp(EPS, 1.0 - EPS);
        -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
    }))
}

fn bce_logits(z: &[f64], t: &[f64]) -> f64 {
    mean(
        z.iter()
            .zip(t)
            .map(|(&z, &t)| z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()),
    )
}

/// Keras' categorical cross-entropy on probabilities: each row scaled to
/// sum 1, clipped, then −Σ t·log p.
fn cce(p: &[f64], t: &[f64]) -> f64 {
    let s: f64 = p.iter().sum();
    -p.iter()
        .zip(t)
        .map(|(&p, &t)| t * (p / s).clamp(EPS, 1.0 - EPS).ln())
        .sum::<f64>()
}

fn cce_logits(z: &[f64], t: &[f64]) -> f64 {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    -z.iter().zip(t).map(|(&z, &t)| t * (z - lse)).sum::<f64>()
}

fn mse(p: &[f64], t: &[f64]) -> f64 {
    mean(p.iter().zip(t).map(|(a, b)| (a - b).powi(2)))
}

fn mae(p: &[f64], t: &[f64]) -> f64 {
    mean(p.iter().zip(t).map(|(a, b)| (a - b).abs()))
}

fn binary_accuracy(p: &[f64], t: &[f64]) -> f64 {
    mean(
        p.iter()
            .zip(t)
            .map(|(&p, &t)| ((p > 0.5) == (t > 0.5)) as u8 as f64),
    )
}

/// The target's class holds the row's largest prediction (no ties here).
fn categorical_accuracy(p: &[f64], t: &[f64]) -> f64 {
    let class = t.iter().position(|&v| v == 1.0).unwrap();
    (p.iter().all(|&v| v <= p[class])) as u8 as f64
}

/// A per-row value from a row's predictions and targets.
type Formula = fn(&[f64], &[f64]) -> f64;

fn assert_near(what: &str, got: f32, want: f64) {
    let err = (got as f64 - want).abs();
    assert!(
        err <= 2e-6 * want.abs().max(1.0),
        "{what}: kiln {got}, reference {want} (error {err:e})"
    );
}

#[test]
fn every_loss_matches_its_formula() {
    let d = data();
    let cases: [(Loss, &[f32], &[f32], Formula); 6] = [
        (Loss::BinaryCrossEntropy, &d.probs, &d.binary, bce),
        (
            Loss::BinaryCrossEntropyFromLogits,
            &d.logits,
            &d.binary,
            bce_logits,
        ),
        (Loss::CategoricalCrossEntropy, &d.probs, &d.one_hot, cce),
        (
            Loss::CategoricalCrossEntropyFromLogits,
            &d.logits,
            &d.one_hot,
            cce_logits,
        ),
        (Loss::MeanSquaredError, &d.real, &d.logits, mse),
        (Loss::MeanAbsoluteError, &d.real, &d.logits, mae),
    ];
    for (loss, pred, targets, formula) in cases {
        let logs = evaluate(loss, &[], pred, targets);
        assert_near(
            &format!("{loss:?}"),
            logs.loss,
            per_row(pred, targets, formula),
        );
    }
}

#[test]
fn every_dense_metric_matches_its_formula() {
    let d = data();
    let named = |logs: &Logs, name: &str| -> f32 {
        let (_, v) = logs
            .metrics
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no metric {name:?} in {:?}", logs.metrics));
        *v
    };
    let logs = evaluate(
        Loss::MeanSquaredError,
        &[Metric::MeanSquaredError, Metric::MeanAbsoluteError],
        &d.real,
        &d.logits,
    );
    assert_eq!(logs.metrics.len(), 2);
    assert_near("mse", named(&logs, "mse"), per_row(&d.real, &d.logits, mse));
    assert_near("mae", named(&logs, "mae"), per_row(&d.real, &d.logits, mae));

    let logs = evaluate(
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
        &d.probs,
        &d.binary,
    );
    let want = per_row(&d.probs, &d.binary, binary_accuracy);
    assert!(want > 0.3 && want < 0.7, "a data set both ways: {want}");
    assert_near("binary accuracy", named(&logs, "accuracy"), want);

    let logs = evaluate(
        Loss::CategoricalCrossEntropyFromLogits,
        &[Metric::CategoricalAccuracy],
        &d.logits,
        &d.one_hot,
    );
    let want = per_row(&d.logits, &d.one_hot, categorical_accuracy);
    assert!(want > 0.1 && want < 0.6, "hits and misses: {want}");
    assert_near("categorical accuracy", named(&logs, "accuracy"), want);
}

/// The bytes of scripts/sklearn/metrics_fixture.py's fixture.
fn sklearn_fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sklearn_metrics.safetensors"
    ))
    .unwrap()
}

/// Its tensors and its metadata (scikit-learn's values).
fn read_fixture(
    bytes: &[u8],
) -> (
    safetensors::SafeTensors<'_>,
    std::collections::HashMap<String, String>,
) {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    (safetensors::SafeTensors::deserialize(bytes).unwrap(), meta)
}

/// Precision, recall and F1, binary and averaged over classes, against
/// scikit-learn's on fixed predictions (tests/fixtures/sklearn_metrics.safetensors,
/// scripts/sklearn/metrics_fixture.py): 203 rows in batches of 8, so the
/// totals cross batches; one class is never predicted (macro's zero division).
#[test]
fn precision_recall_and_f1_match_scikit_learn() {
    let bytes = sklearn_fixture();
    let (st, meta) = read_fixture(&bytes);
    let want: std::collections::HashMap<String, String> =
        serde_json::from_str(&meta["metrics"]).unwrap();
    let want = |name: &str| want[name].parse::<f64>().unwrap();
    use kiln::models::Average::{Binary, Macro, Micro};
    let kinds = |a| [Metric::Precision(a), Metric::Recall(a), Metric::F1(a)];
    let check = |logs: &Logs| {
        for (name, value) in &logs.metrics {
            assert!(
                (*value as f64 - want(name)).abs() <= 1e-6,
                "{name}: kiln {value}, scikit-learn {}",
                want(name)
            );
        }
    };
    let binary = evaluate_with(
        Loss::BinaryCrossEntropy,
        &kinds(Binary),
        &common::tensor(&st, "bin_pred"),
        &common::tensor(&st, "bin_target"),
        1,
        1,
    );
    assert_eq!(binary.metrics.len(), 3);
    check(&binary);
    let classes = evaluate_with(
        Loss::SparseCategoricalCrossEntropy,
        &[kinds(Macro), kinds(Micro)].concat(),
        &common::tensor(&st, "mc_pred"),
        &common::tensor(&st, "mc_target"),
        5,
        1,
    );
    let names: Vec<&str> = classes.metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "macro_precision",
            "macro_recall",
            "macro_f1",
            "micro_precision",
            "micro_recall",
            "micro_f1"
        ]
    );
    check(&classes);
    // ROC AUC and average precision, over scores with ties across classes.
    let auc = evaluate_with(
        Loss::BinaryCrossEntropy,
        &[Metric::RocAuc, Metric::PrAuc],
        &common::tensor(&st, "auc_pred"),
        &common::tensor(&st, "auc_target"),
        1,
        1,
    );
    assert_eq!(auc.metrics.len(), 2);
    check(&auc);
}

#[test]
fn precision_on_outputs_it_cannot_score_is_refused_at_compile() {
    let device = kiln::device_from_flag(None).unwrap();
    let mut m = Sequential::new(&device, 3).dense(4, Activation::None);
    let e = m
        .compile(
            Optimizer::sgd(0.1),
            Loss::SparseCategoricalCrossEntropyFromLogits,
            &[Metric::Precision(kiln::models::Average::Binary)],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("binary averaging takes one probability"), "{e}");
}

/// The confusion matrix (rows true, columns predicted) against
/// scikit-learn's `confusion_matrix` on the same fixture.
#[test]
fn the_confusion_matrix_matches_scikit_learn() {
    let bytes = sklearn_fixture();
    let (st, meta) = read_fixture(&bytes);
    let want: serde_json::Value = serde_json::from_str(&meta["confusion"]).unwrap();
    let want = |k: &str| -> Vec<Vec<u64>> { serde_json::from_value(want[k].clone()).unwrap() };
    let device = kiln::device_from_flag(None).unwrap();
    for (key, pred, target, cols, loss) in [
        (
            "binary",
            "bin_pred",
            "bin_target",
            1,
            Loss::BinaryCrossEntropy,
        ),
        (
            "classes",
            "mc_pred",
            "mc_target",
            5,
            Loss::SparseCategoricalCrossEntropy,
        ),
    ] {
        let mut model = identity_model(&device, cols, loss, &[]);
        let data = Dataset::new(
            common::tensor(&st, pred),
            common::tensor(&st, target),
            cols,
            1,
        )
        .unwrap();
        assert_eq!(
            model.confusion_matrix(&data, BATCH).unwrap(),
            want(key),
            "{key}"
        );
    }
}
