//! Parity with Keras on the tutorial's MLP (tests/fixtures/mlp_keras.safetensors,
//! computed in float64 by Keras 3; see ../shared/fixtures/README.md): eval
//! outputs, the training loss, every gradient, and every variable after one
//! Adam step, BN moving statistics included. Dropout rates are 0, as in the
//! fixture.

use kiln::models::StateDict;
use kiln::prelude::*;
use safetensors::SafeTensors;

mod common;
use common::{array, assert_close, assert_gradients, max_abs, rel_norm, step_update, tensor};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/mlp_keras.safetensors"
);

/// The fixture's Keras weights under kiln's names: Keras' variable paths
/// with dots (`dense/kernel` → `dense.kernel`), the names Sequential's
/// state dict uses.
fn keras_weights(st: &SafeTensors<'_>) -> StateDict {
    let mut sd = StateDict::default();
    for (name, view) in st.tensors() {
        if name.contains('/') && !name.contains('.') {
            sd.tensors.insert(
                name.replace('/', "."),
                (view.shape().to_vec(), tensor(st, &name)),
            );
        }
    }
    sd
}

fn model(device: &Device, st: &SafeTensors<'_>) -> Sequential {
    let mut m = tutorial_mlp(device, 30, 0, [0.0, 0.0]);
    m.compile(
        Optimizer::adam(1e-3),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    // Every tensor of the model, and nothing else: a strict load.
    m.load_state_dict(&keras_weights(st), true).unwrap();
    m
}

#[test]
fn standardisation_matches_the_fixture_scaler() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let data = CsvDataset::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv"),
        "target",
    )
    .unwrap();
    let s = Standardizer::fit(&data);
    assert!(rel_norm(&s.mean, &tensor(&st, "scaler.mean")) < 1e-6);
    assert!(rel_norm(&s.scale, &tensor(&st, "scaler.scale")) < 1e-6);
    // and the fixture's x is rows 0–31 of the data, standardised
    let mut rows = data.subset(&(0..32).collect::<Vec<_>>()).unwrap();
    s.transform(&mut rows).unwrap();
    assert!(max_abs(rows.features(), &tensor(&st, "x")) < 1e-5);
}

/// The training step's own gradients: one SGD step at learning rate 1
/// moves every trainable variable by its Keras gradient.
#[test]
fn the_training_step_moves_each_variable_by_its_keras_gradient() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let device = kiln::device_from_flag(None).unwrap();
    let mut m = model(&device, &st);
    m.compile(Optimizer::sgd(1.0), Loss::BinaryCrossEntropy, &[])
        .unwrap();
    m.load_state_dict(&keras_weights(&st), true).unwrap();
    let names = [
        "dense.kernel",
        "dense.bias",
        "batch_normalization.gamma",
        "batch_normalization.beta",
        "dense_1.kernel",
        "dense_1.bias",
        "batch_normalization_1.gamma",
        "batch_normalization_1.beta",
        "dense_2.kernel",
        "dense_2.bias",
    ];
    let moved = step_update(&mut m, &names, &tensor(&st, "x"), &tensor(&st, "y"));
    let worst = assert_gradients(
        &moved,
        |name| tensor(&st, &format!("grad.{}", name.replace('.', "/"))),
        2e-5,
    );
    eprintln!("training-step gradients: worst relative error {worst:e}");
}

#[test]
fn keras_mlp_forward_gradients_and_one_adam_step() {
    parity(true);
}

#[test]
fn keras_mlp_parity_holds_without_fusion() {
    parity(false);
}

fn parity(fusion: bool) {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let device = kiln::device_from_flag(None).unwrap();
    let mut m = model(&device, &st);
    m.set_plan_options(kiln::graph::PlanOptions { fusion });
    let (x, y) = (tensor(&st, "x"), tensor(&st, "y"));

    // Inference: moving statistics, dropout off.
    let p = m.predict(&array(&st, "x"), 32).unwrap();
    assert_eq!(p.shape(), &[32, 1]);
    let p = p.into_data();
    let want = tensor(&st, "eval.probabilities");
    assert!(
        rel_norm(&p, &want) < 1e-4,
        "eval probabilities: {}",
        rel_norm(&p, &want)
    );

    // evaluate(): loss and accuracy summed on the device, against the
    // fixture's inference probabilities through the Keras formulas on the host.
    let data = Dataset::new(x.clone(), y.clone(), 30, 1).unwrap();
    let logs = m.evaluate(&data, 32).unwrap();
    let (mut bce, mut hits) = (0.0f64, 0usize);
    for (&p, &t) in want.iter().zip(&y) {
        let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
        bce -= t as f64 * p.ln() + (1.0 - t as f64) * (1.0 - p).ln();
        hits += usize::from((p > 0.5) == (t > 0.5));
    }
    bce /= 32.0;
    assert!(
        ((logs.loss as f64 - bce) / bce).abs() < 1e-5,
        "evaluate loss {} vs {bce}",
        logs.loss
    );
    assert_eq!(logs.metrics[0].1, hits as f32 / 32.0);

    // Training-mode loss and the gradient of every trainable variable.
    let (loss, grads) = m.loss_and_gradients(&x, &y).unwrap();
    let want_loss = tensor(&st, "train.loss")[0];
    assert!(
        ((loss - want_loss) / want_loss).abs() < 1e-4,
        "loss {loss} vs {want_loss}"
    );
    assert_eq!(grads.len(), 10);
    let worst_grad = assert_gradients(
        &grads,
        |name| tensor(&st, &format!("grad.{}", name.replace('.', "/"))),
        1e-4,
    );
    eprintln!(
        "parity: eval rel {:e}, loss rel {:e}, worst gradient rel {worst_grad:e}",
        rel_norm(&p, &tensor(&st, "eval.probabilities")),
        ((loss - want_loss) / want_loss).abs()
    );

    // One Adam step: trainable variables and BN moving statistics. Adam's
    // first step is near lr·sign(g), so elementwise the tolerance is lr/10
    // (the fixture README explains why).
    m.train_on_batch(&x, &y).unwrap();
    for name in ["dense", "dense_1", "dense_2"] {
        for p in ["kernel", "bias"] {
            let n = format!("{name}.{p}");
            let (got, want) = (
                m.value(&n).unwrap(),
                tensor(&st, &format!("adam.{name}/{p}")),
            );
            assert_close(&format!("adam.{n}"), &got, &want, 1e-4);
        }
    }
    for name in ["batch_normalization", "batch_normalization_1"] {
        for p in ["gamma", "beta", "moving_mean", "moving_variance"] {
            let n = format!("{name}.{p}");
            let (got, want) = (
                m.value(&n).unwrap(),
                tensor(&st, &format!("adam.{name}/{p}")),
            );
            assert_close(&format!("adam.{n}"), &got, &want, 1e-4);
        }
    }
}
