//! The sparse (class-index) losses and top-k accuracy against f64 formulas
//! written here, with gradients checked by central differences of those
//! formulas; target validation names the first bad value.

use kiln_backend::Device;
use kiln_graph::{Graph, Plan};
use kiln_models::{Loss, Metric};

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

/// kiln's mean loss and its gradient with respect to the predictions.
fn kiln_loss(loss: Loss, pred: &[f32], shape: &[usize], targets: &[f32]) -> (f32, Vec<f32>) {
    let dev = device();
    let mut g = Graph::new();
    let p = g.input("p", shape);
    let t = g.input("t", &shape[..shape.len() - 1]);
    let terms = loss.terms(&mut g, p, t).unwrap();
    let l = g.mean_all(terms).unwrap();
    let grad = g.grad(l, &[p]).unwrap()[0];
    let mut plan = Plan::compile(&dev, &g, &[l, grad]).unwrap();
    let out = plan.run(&[("p", pred), ("t", targets)]).unwrap();
    (out[0][0], out[1].clone())
}

/// Mean over samples (and positions) of −log q[target], where q is the
/// softmax of the row (`logits`) or the row itself clipped like Keras.
fn reference(pred: &[f64], classes: usize, targets: &[f32], logits: bool) -> f64 {
    let rows = pred.len() / classes;
    let mut total = 0.0;
    for r in 0..rows {
        let row = &pred[r * classes..(r + 1) * classes];
        let t = targets[r] as usize;
        total -= if logits {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row[t] - m - z.ln()
        } else {
            row[t].clamp(1e-7, 1.0 - 1e-7).ln()
        };
    }
    total / rows as f64
}

fn check(loss: Loss, shape: &[usize], logits: bool) {
    let classes = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let rows = n / classes;
    let mut pred: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 6.0)
        .collect();
    if !logits {
        // probabilities: positive rows summing to one
        for r in 0..rows {
            let row = &mut pred[r * classes..(r + 1) * classes];
            row.iter_mut().for_each(|v| *v = v.exp());
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
    let targets: Vec<f32> = (0..rows).map(|r| ((r * 3 + 1) % classes) as f32).collect();
    let (got, grad) = kiln_loss(loss, &pred, shape, &targets);
    let mut p64: Vec<f64> = pred.iter().map(|&v| v as f64).collect();
    let want = reference(&p64, classes, &targets, logits);
    assert!(
        ((got as f64 - want) / want).abs() < 1e-5,
        "{loss:?}: {got} vs {want}"
    );
    let h = 1e-6;
    for i in 0..n {
        let base = p64[i];
        p64[i] = base + h;
        let up = reference(&p64, classes, &targets, logits);
        p64[i] = base - h;
        let down = reference(&p64, classes, &targets, logits);
        p64[i] = base;
        let fd = (up - down) / (2.0 * h);
        assert!(
            (grad[i] as f64 - fd).abs() <= 1e-3 * fd.abs() + 1e-5,
            "{loss:?} {shape:?}: d/dp[{i}] kiln {} vs {fd}",
            grad[i]
        );
    }
}

#[test]
fn sparse_cross_entropy_from_logits_and_probabilities() {
    check(Loss::SparseCategoricalCrossEntropyFromLogits, &[5, 4], true);
    check(Loss::SparseCategoricalCrossEntropy, &[5, 4], false);
    // A class per position of a sequence: [N, T, C] against [N, T].
    check(
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[2, 3, 5],
        true,
    );
}

#[test]
fn top_k_and_sparse_accuracy_count_like_keras() {
    let dev = device();
    let scores = [
        0.1f32, 0.5, 0.2, 0.9, // target 1: one class above → top-2 hit, top-1 miss
        0.8, 0.1, 0.05, 0.05, // target 0: top-1 hit
        0.1, 0.2, 0.3, 0.4, // target 0: three above → miss at k = 2 and 1
    ];
    let targets = [1.0f32, 0.0, 0.0];
    for (metric, want) in [
        (Metric::SparseCategoricalAccuracy, [0.0f32, 1.0, 0.0]),
        (Metric::SparseTopKAccuracy(2), [1.0, 1.0, 0.0]),
        (Metric::SparseTopKAccuracy(4), [1.0, 1.0, 1.0]),
    ] {
        let mut g = Graph::new();
        let p = g.input("p", &[3, 4]);
        let t = g.input("t", &[3]);
        let v = metric.values(&mut g, p, t).unwrap();
        let mut plan = Plan::compile(&dev, &g, &[v]).unwrap();
        let got = plan.run(&[("p", &scores), ("t", &targets)]).unwrap();
        assert_eq!(got[0], want, "{metric:?}");
    }
    assert_eq!(Metric::SparseTopKAccuracy(5).name(), "top5_accuracy");
}

#[test]
fn targets_are_checked_where_the_loss_needs_it() {
    let e = Loss::SparseCategoricalCrossEntropyFromLogits
        .validate_targets(&[0.0, 3.0, 10.0], 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("target 2 (10)") && e.contains("0..10"), "{e}");
    let e = Loss::SparseCategoricalCrossEntropy
        .validate_targets(&[1.5], 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1.5"), "{e}");
    let e = Loss::BinaryCrossEntropy
        .validate_targets(&[0.0, 1.0, 7.0], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("target 2 (7)") && e.contains("[0, 1]"), "{e}");
    let e = Loss::MeanSquaredError
        .validate_targets(&[f32::NAN], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN") && e.contains("finite"), "{e}");
    assert!(Loss::MeanSquaredError
        .validate_targets(&[-3.0, 1e6], 1)
        .is_ok());
    // A refused value is a typed error a caller can match on.
    assert!(matches!(
        Loss::BinaryCrossEntropy.validate_targets(&[2.0], 1),
        Err(kiln_models::ModelError::Values(_))
    ));
}
