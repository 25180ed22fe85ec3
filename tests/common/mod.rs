//! Helpers shared by the parity tests: fixture tensors and error measures.
#![allow(dead_code)] // each test binary uses its own subset

use safetensors::SafeTensors;

pub mod compare;

/// A fixture tensor as f32 values (I64 integers converted exactly).
pub fn tensor(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture tensor {name}"));
    match t.dtype() {
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        _ => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// A fixture tensor with the shape it was stored with.
pub fn array(st: &SafeTensors<'_>, name: &str) -> kiln::data::Array {
    let shape = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture tensor {name}"))
        .shape()
        .to_vec();
    kiln::data::Array::new(tensor(st, name), &shape).unwrap()
}

/// ‖got − want‖ / ‖want‖ in f64.
pub fn rel_norm(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

pub fn max_abs(got: &[f32], want: &[f32]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs())
        .fold(0.0, f64::max)
}

/// Asserts `got` within `tol` of `want` both in relative norm and in every
/// element: the check after an optimizer step, whose first Adam step is
/// near lr·sign(g), so elementwise error matters too.
pub fn assert_close(label: &str, got: &[f32], want: &[f32], tol: f64) {
    let rel = rel_norm(got, want);
    assert!(rel < tol, "{label}: {rel:e}");
    let abs = max_abs(got, want);
    assert!(abs < tol, "{label}: max abs {abs:e}");
}

/// Asserts every gradient within `tol` relative norm of the fixture's
/// (`want` maps a parameter name to its tensor); returns the worst error.
pub fn assert_gradients(
    grads: &[(String, Vec<f32>)],
    want: impl Fn(&str) -> Vec<f32>,
    tol: f64,
) -> f64 {
    let mut worst = 0.0f64;
    for (name, g) in grads {
        let err = rel_norm(g, &want(name));
        worst = worst.max(err);
        assert!(err < tol, "grad.{name}: relative error {err:e}");
    }
    worst
}

/// The tutorial's MLP (30 → 128 relu, batch norm, dropout 0.3 → 64 relu,
/// batch norm, dropout 0.2 → 1 sigmoid), compiled with Keras' Adam(1e-3),
/// binary cross-entropy and binary accuracy.
pub fn tutorial_mlp(device: &kiln::Device, seed: u64) -> kiln::models::Sequential {
    tutorial_mlp_with(device, seed, kiln::models::Optimizer::adam(1e-3))
}

/// The breast-cancer data's training split (80 %, seed 42), standardised
/// by its own statistics.
pub fn breast_cancer_train() -> kiln::data::Dataset {
    use kiln::data::{CsvDataset, Standardizer};
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv");
    let (mut train, _) = CsvDataset::load(csv, "target")
        .unwrap()
        .split(0.8, 42)
        .unwrap();
    Standardizer::fit(&train).transform(&mut train).unwrap();
    train
}

/// [`tutorial_mlp`] with another optimizer.
pub fn tutorial_mlp_with(
    device: &kiln::Device,
    seed: u64,
    optimizer: kiln::models::Optimizer,
) -> kiln::models::Sequential {
    use kiln::prelude::*;
    let mut m = kiln::models::tutorial_mlp(device, 30, seed, kiln::models::TUTORIAL_DROPOUT);
    m.compile(
        optimizer,
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    m
}

/// What one training step moved each of `names` by: before − after. With
/// plain SGD at learning rate 1 that is the gradient the training plan
/// itself computed (the plan `fit` runs, not `loss_and_gradients`' own).
pub fn step_update<M: kiln::models::Module>(
    m: &mut kiln::models::Model<M>,
    names: &[&str],
    x: &[f32],
    y: &[f32],
) -> Vec<(String, Vec<f32>)> {
    let before: Vec<Vec<f32>> = names.iter().map(|n| m.value(n).unwrap()).collect();
    m.train_on_batch(x, y).unwrap();
    names
        .iter()
        .zip(before)
        .map(|(n, b)| {
            let after = m.value(n).unwrap();
            assert_eq!(after.len(), b.len(), "{n}");
            let moved = b.iter().zip(&after).map(|(p, q)| p - q).collect();
            (n.to_string(), moved)
        })
        .collect()
}
