//! Parity with PyTorch on the tutorial's SimpleCNN
//! (tests/fixtures/simple_cnn_torch.safetensors, computed in float64 by
//! PyTorch; see ../shared/fixtures/README.md): logits, the cross-entropy
//! loss, every gradient, and the parameters after one Adam step and after
//! one SGD-momentum step, all in eval mode (dropout inactive) as the
//! fixture is, through the same Model calls training uses.

use kiln::models::StateDict;
use kiln::prelude::*;
use safetensors::SafeTensors;

mod common;
use common::{array, assert_close, assert_gradients, rel_norm, step_update, tensor};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/simple_cnn_torch.safetensors"
);

const PARAMS: [&str; 8] = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
];

/// SimpleCNN with the fixture's initial weights (a strict load: every
/// parameter, nothing else), dropout off, compiled with `optimizer`.
fn model(
    device: &Device,
    st: &SafeTensors<'_>,
    optimizer: Optimizer,
    fusion: bool,
) -> Model<SimpleCnn> {
    let mut sd = StateDict::default();
    for name in PARAMS {
        let shape = st.tensor(name).unwrap().shape().to_vec();
        sd.tensors
            .insert(name.to_string(), (shape, tensor(st, name)));
    }
    let cnn = SimpleCnn::new(device, 10).unwrap();
    cnn.load_state_dict(&sd, true).unwrap();
    cnn.eval();
    let mut m = Model::new(device, cnn, [3, 32, 32]);
    m.compile(
        optimizer,
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )
    .unwrap();
    m.set_plan_options(kiln::graph::PlanOptions { fusion });
    m
}

fn parity(fusion: bool) {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let device = kiln::device_from_flag(None).unwrap();
    let (x, labels) = (tensor(&st, "input"), tensor(&st, "labels"));
    assert_eq!(labels, vec![5.0, 8.0, 0.0, 8.0]);

    let mut m = model(&device, &st, Optimizer::adam_torch(1e-3), fusion);
    let logits = m.predict(&array(&st, "input"), 4).unwrap();
    assert_eq!(logits.shape(), &[4, 10]);
    let err = rel_norm(logits.data(), &tensor(&st, "logits"));
    assert!(err < 1e-4, "logits: relative error {err:e}");

    let (loss, grads) = m.loss_and_gradients(&x, &labels).unwrap();
    let want = tensor(&st, "loss")[0];
    assert!(((loss - want) / want).abs() < 1e-4, "loss {loss} vs {want}");
    assert_eq!(grads.len(), PARAMS.len());
    let worst = assert_gradients(&grads, |name| tensor(&st, &format!("grad.{name}")), 1e-4);
    eprintln!(
        "parity: logits rel {err:e}, loss rel {:e}, worst gradient rel {worst:e}",
        ((loss - want) / want).abs()
    );

    // One Adam step. Its first step is about lr·sign(g), so elementwise the
    // tolerance is lr/10 (the fixture README explains why).
    m.train_on_batch(&x, &labels).unwrap();
    for name in PARAMS {
        let (got, want) = (m.value(name).unwrap(), tensor(&st, &format!("adam.{name}")));
        assert_close(&format!("adam.{name}"), &got, &want, 1e-4);
    }

    // One SGD step with momentum 0.9 (the buffer starts as the gradient).
    let mut m = model(
        &device,
        &st,
        Optimizer::sgd(0.01).with_momentum(0.9, false),
        fusion,
    );
    m.train_on_batch(&x, &labels).unwrap();
    for name in PARAMS {
        let got = m.value(name).unwrap();
        let want = tensor(&st, &format!("sgd.{name}"));
        // The fixture keeps rows 0–63 of fc1.weight only (file size).
        let got = &got[..want.len()];
        assert!(
            rel_norm(got, &want) < 1e-4,
            "sgd.{name}: {:e}",
            rel_norm(got, &want)
        );
    }
}

/// The training step's own gradients: one SGD step at learning rate 1
/// moves every parameter by its PyTorch gradient.
#[test]
fn the_training_step_moves_each_parameter_by_its_pytorch_gradient() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let device = kiln::device_from_flag(None).unwrap();
    let mut m = model(&device, &st, Optimizer::sgd(1.0), true);
    let (x, labels) = (tensor(&st, "input"), tensor(&st, "labels"));
    let moved = step_update(&mut m, &PARAMS, &x, &labels);
    let worst = assert_gradients(&moved, |name| tensor(&st, &format!("grad.{name}")), 2e-5);
    eprintln!("training-step gradients: worst relative error {worst:e}");
}

#[test]
fn simple_cnn_matches_pytorch() {
    parity(true);
}

#[test]
fn simple_cnn_matches_pytorch_without_fusion() {
    parity(false);
}

#[test]
fn simple_cnn_is_built_as_the_tutorial_builds_it() {
    let device = kiln::device_from_flag(None).unwrap();
    let cnn = SimpleCnn::new(&device, 10).unwrap();
    let names: Vec<String> = cnn.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, PARAMS);
    assert_eq!(cnn.flatten_size(), 64 * 8 * 8);
    assert_eq!(cnn.num_parameters(), 896 + 18_496 + 2_097_664 + 5_130);
    // Other inputs: one channel, 28×28 (Fashion-MNIST unpadded): 64·7·7.
    let small = SimpleCnn::with_input(&device, 1, [28, 28], 10).unwrap();
    assert_eq!(small.flatten_size(), 64 * 7 * 7);
    assert_eq!(small.conv1.weight.shape(), &[32, 1, 3, 3]);
    // PyTorch's initialisation: uniform in ±1/√fan_in.
    let w = cnn.conv2.weight.values().unwrap();
    let bound = 1.0 / (32.0f32 * 9.0).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    let spread = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
    assert!(
        (spread / (bound * bound / 3.0) - 1.0).abs() < 0.05,
        "variance {spread}"
    );
}
