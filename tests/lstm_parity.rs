//! Parity with Keras on the tutorial's LSTM forecaster
//! (tests/fixtures/lstm_forecaster_keras.safetensors, computed in float64 by
//! Keras 3; see ../shared/fixtures/README.md): predictions, the MSE loss,
//! every gradient (backpropagation through both layers' ten steps), and
//! every weight after one Adam step, through the same Model calls training
//! uses.

use kiln::models::StateDict;
use kiln::prelude::*;
use safetensors::SafeTensors;

mod common;
use common::{array, assert_close, assert_gradients, rel_norm, step_update, tensor};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lstm_forecaster_keras.safetensors"
);

const WEIGHTS: [&str; 8] = [
    "lstm/lstm_cell/kernel",
    "lstm/lstm_cell/recurrent_kernel",
    "lstm/lstm_cell/bias",
    "lstm_1/lstm_cell/kernel",
    "lstm_1/lstm_cell/recurrent_kernel",
    "lstm_1/lstm_cell/bias",
    "dense/kernel",
    "dense/bias",
];

/// The tutorial's model with the fixture's initial weights (a strict load).
fn model(device: &Device, st: &SafeTensors<'_>, fusion: bool) -> Sequential {
    let mut m = Sequential::new(device, [10, 3])
        .lstm(50, Activation::Relu, true)
        .lstm(50, Activation::Relu, false)
        .dense(1, Activation::None);
    m.compile(Optimizer::adam(1e-3), Loss::MeanSquaredError, &[])
        .unwrap();
    let mut sd = StateDict::default();
    for name in WEIGHTS {
        let shape = st.tensor(name).unwrap().shape().to_vec();
        sd.tensors
            .insert(name.replace('/', "."), (shape, tensor(st, name)));
    }
    m.load_state_dict(&sd, true).unwrap();
    m.set_plan_options(kiln::graph::PlanOptions { fusion });
    m
}

fn parity(fusion: bool) {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let device = kiln::device_from_flag(None).unwrap();
    let mut m = model(&device, &st, fusion);
    let (x, y) = (tensor(&st, "x"), tensor(&st, "y"));

    let p = m.predict(&array(&st, "x"), 8).unwrap();
    assert_eq!(p.shape(), &[8, 1]);
    let err = rel_norm(p.data(), &tensor(&st, "predictions"));
    assert!(err < 1e-4, "predictions: relative error {err:e}");

    let (loss, grads) = m.loss_and_gradients(&x, &y).unwrap();
    let want = tensor(&st, "loss")[0];
    assert!(((loss - want) / want).abs() < 1e-4, "loss {loss} vs {want}");
    assert_eq!(grads.len(), WEIGHTS.len());
    let worst = assert_gradients(
        &grads,
        |name| tensor(&st, &format!("grad.{}", name.replace('.', "/"))),
        1e-4,
    );
    eprintln!("parity: predictions rel {err:e}, worst gradient rel {worst:e}");

    // One Adam step (Keras' ε 1e-7 on √v); elementwise within lr/10.
    m.train_on_batch(&x, &y).unwrap();
    for name in WEIGHTS {
        let (got, want) = (
            m.value(&name.replace('/', ".")).unwrap(),
            tensor(&st, &format!("adam.{name}")),
        );
        assert_close(&format!("adam.{name}"), &got, &want, 1e-4);
    }
}

/// The training step's own gradients: one SGD step at learning rate 1
/// moves every weight by its Keras gradient.
#[test]
fn the_training_step_moves_each_weight_by_its_keras_gradient() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let device = kiln::device_from_flag(None).unwrap();
    let mut m = model(&device, &st, true);
    m.compile(Optimizer::sgd(1.0), Loss::MeanSquaredError, &[])
        .unwrap();
    let names: Vec<String> = WEIGHTS.iter().map(|n| n.replace('/', ".")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let moved = step_update(&mut m, &names, &tensor(&st, "x"), &tensor(&st, "y"));
    let worst = assert_gradients(
        &moved,
        |name| tensor(&st, &format!("grad.{}", name.replace('.', "/"))),
        2e-5,
    );
    eprintln!("training-step gradients: worst relative error {worst:e}");
}

#[test]
fn keras_lstm_forecaster_matches() {
    parity(true);
}

#[test]
fn keras_lstm_forecaster_matches_without_fusion() {
    parity(false);
}
