//! The GRU and simple RNN layers: each ONNX case (the backend suite's and
//! onnx's reference evaluator's, tests/conformance) loaded into the Keras-
//! and the PyTorch-named layer through the weight layouts gives ONNX's
//! outputs; PyTorch's gate order is its documented one; both layouts train
//! alike; and each framework's names and initialisation.

#[path = "../../../tests/common/compare.rs"]
mod compare;

use std::collections::HashMap;
use std::path::PathBuf;

use kiln_backend::Device;
use kiln_graph::{Mode, Plan, Tape};
use kiln_models::*;

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = kiln_data::SplitMix64::new(seed);
    (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect()
}

/// One ONNX case file: its f32 tensors (name → shape, values) and metadata.
struct Case {
    name: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    attrs: serde_json::Value,
}

fn cases(op: &str) -> Vec<Case> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    let mut out = Vec::new();
    for dir in ["onnx", "onnx_recurrent"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
            let meta = meta.metadata().clone().unwrap_or_default();
            if meta.get("op").map(String::as_str) != Some(op) {
                continue;
            }
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let tensors = st
                .tensors()
                .into_iter()
                .map(|(n, t)| {
                    let values = t
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    (n, (t.shape().to_vec(), values))
                })
                .collect();
            out.push(Case {
                name: path.file_stem().unwrap().to_string_lossy().into(),
                tensors,
                attrs: serde_json::from_str(&meta["attrs"]).unwrap(),
            });
        }
    }
    out
}

impl Case {
    fn get(&self, name: &str) -> Option<&(Vec<usize>, Vec<f32>)> {
        self.tensors.get(name)
    }

    /// X as `[batch, steps, input]`, whatever the case's layout.
    fn batch_first_x(&self) -> (usize, usize, usize, Vec<f32>) {
        let (shape, x) = self.get("X").unwrap();
        if self.attrs["layout"] == 1 {
            return (shape[0], shape[1], shape[2], x.clone());
        }
        let (steps, batch, input) = (shape[0], shape[1], shape[2]);
        let mut out = vec![0.0; x.len()];
        for t in 0..steps {
            for b in 0..batch {
                for k in 0..input {
                    out[(b * steps + t) * input + k] = x[(t * batch + b) * input + k];
                }
            }
        }
        (batch, steps, input, out)
    }

    /// ONNX's Y `[steps, 1, batch, u]` (or `[batch, steps, 1, u]`) as
    /// `[batch, steps, u]`.
    fn batch_first_y(&self, batch: usize, steps: usize, u: usize) -> Option<Vec<f32>> {
        let (_, y) = self.get("Y")?;
        if self.attrs["layout"] == 1 {
            return Some(y.clone());
        }
        let mut out = vec![0.0; y.len()];
        for t in 0..steps {
            for b in 0..batch {
                for j in 0..u {
                    out[(b * steps + t) * u + j] = y[(t * batch + b) * u + j];
                }
            }
        }
        Some(out)
    }
}

/// Runs `forward` (a layer's `forward_with_state` on x and the optional
/// initial h) and checks its sequence and last h against the case.
fn check_case(
    dev: &Device,
    case: &Case,
    what: &str,
    u: usize,
    forward: impl Fn(&kiln_graph::Var, Option<&kiln_graph::Var>) -> (kiln_graph::Var, kiln_graph::Var),
) {
    let (batch, steps, input, x) = case.batch_first_x();
    let h0 = case.get("initial_h").map(|(_, v)| v.clone());
    let tape = Tape::new(Mode::Eval);
    let xv = tape.input("x", &[batch, steps, input]);
    let hv = h0.as_ref().map(|_| tape.input("h", &[batch, u]));
    let (seq, last) = forward(&xv, hv.as_ref());
    let mut plan = Plan::compile(dev, &tape.graph(), &[seq.id(), last.id()]).unwrap();
    let mut feeds: Vec<(&str, &[f32])> = vec![("x", &x)];
    if let Some(h) = &h0 {
        feeds.push(("h", h));
    }
    let out = plan.run(&feeds).unwrap();
    let label = format!("{} through the {what} layer", case.name);
    if let Some(y) = case.batch_first_y(batch, steps, u) {
        compare::assert_all_close(&format!("{label}: Y"), &out[0], &y, 1e-5, 1e-4);
    }
    let (_, y_h) = case.get("Y_h").unwrap();
    compare::assert_all_close(&format!("{label}: Y_h"), &out[1], y_h, 1e-5, 1e-4);
}

/// W, R and B (zeros when the case has none) of one direction.
fn onnx_weights(case: &Case, gates: usize) -> (usize, usize, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (ws, w) = case.get("W").unwrap();
    let (_, r) = case.get("R").unwrap();
    let u = ws[1] / gates;
    let b = case
        .get("B")
        .map_or(vec![0.0; 2 * gates * u], |(_, b)| b.clone());
    (ws[2], u, w.clone(), r.clone(), b)
}

#[test]
fn gru_layers_give_onnx_outputs_in_both_layouts() {
    let dev = device();
    let cases = cases("GRU");
    // The backend suite's two (reset before) and onnx_recurrent's three.
    assert_eq!(cases.len(), 5, "GRU cases");
    let mut reset_after_cases = 0;
    for case in &cases {
        let (input, u, w, r, b) = onnx_weights(case, 3);
        let weights = GruWeights::from_onnx(input, u, &w, &r, &b).unwrap();
        let reset_after = case.attrs["linear_before_reset"] == 1;
        manual_seed(1);
        let keras = Gru::keras(&dev, input, u)
            .unwrap()
            .reset_after(reset_after)
            .unwrap()
            .return_sequences(true);
        keras.set_weights(&weights).unwrap();
        check_case(&dev, case, "Keras", u, |x, h| {
            keras.forward_with_state(x, h).unwrap()
        });
        if reset_after {
            reset_after_cases += 1;
            let torch = Gru::pytorch(&dev, input, u).unwrap().return_sequences(true);
            torch.set_weights(&weights).unwrap();
            check_case(&dev, case, "PyTorch", u, |x, h| {
                torch.forward_with_state(x, h).unwrap()
            });
            // And back out of each layout unchanged.
            assert_eq!(torch.weights().unwrap(), weights, "{}", case.name);
            assert_eq!(keras.weights().unwrap(), weights, "{}", case.name);
        }
    }
    assert_eq!(reset_after_cases, 2);
}

#[test]
fn simple_rnn_layers_give_onnx_outputs_in_both_layouts() {
    let dev = device();
    let cases = cases("RNN");
    assert_eq!(cases.len(), 3, "RNN cases");
    for case in &cases {
        let (input, u, w, r, b) = onnx_weights(case, 1);
        let weights = SimpleRnnWeights::from_onnx(input, u, &w, &r, &b).unwrap();
        let keras = SimpleRnn::keras(&dev, input, u)
            .unwrap()
            .return_sequences(true);
        keras.set_weights(&weights).unwrap();
        check_case(&dev, case, "Keras", u, |x, h| {
            keras.forward_with_state(x, h).unwrap()
        });
        let torch = SimpleRnn::pytorch(&dev, input, u)
            .unwrap()
            .return_sequences(true);
        torch.set_weights(&weights).unwrap();
        check_case(&dev, case, "PyTorch", u, |x, h| {
            torch.forward_with_state(x, h).unwrap()
        });
    }
}

/// The last h of a one-step GRU from h0 on zero input and weights, with
/// one block of `bias_ih_l0` set to +30 (that gate saturated at 1).
fn pytorch_gru_with_saturated_block(dev: &Device, block: usize, h0: &[f32]) -> Vec<f32> {
    let u = h0.len();
    let gru = Gru::pytorch(dev, 2, u).unwrap();
    for p in [&gru.kernel, &gru.recurrent_kernel, &gru.bias] {
        p.write(&vec![0.0; p.numel()]).unwrap();
    }
    let b_hh = gru.recurrent_bias.as_ref().unwrap();
    b_hh.write(&vec![0.0; b_hh.numel()]).unwrap();
    let mut bias = vec![0.0; 3 * u];
    bias[block * u..(block + 1) * u].fill(30.0);
    gru.bias.write(&bias).unwrap();
    let tape = Tape::new(Mode::Eval);
    let x = tape.input("x", &[1, 1, 2]);
    let h = tape.input("h", &[1, u]);
    let (_, last) = gru.forward_with_state(&x, Some(&h)).unwrap();
    let mut plan = Plan::compile(dev, &tape.graph(), &[last.id()]).unwrap();
    plan.run(&[("x", &[0.0, 0.0]), ("h", h0)])
        .unwrap()
        .remove(0)
}

#[test]
fn pytorch_gru_blocks_are_reset_update_new() {
    // PyTorch's documentation: h' = (1 − z)·n + z·h, blocks (r, z, n).
    // With zero weights, z = 1 keeps h; z = σ(0) = ½ with n = tanh(0) = 0
    // halves it; a saturated n block gives n = tanh(30) = 1.
    let dev = device();
    let h0 = [0.8, -0.4, 0.2];
    let keep = pytorch_gru_with_saturated_block(&dev, 1, &h0);
    compare::assert_all_close("z block saturated", &keep, &h0, 1e-5, 0.0);
    let reset = pytorch_gru_with_saturated_block(&dev, 0, &h0);
    let half: Vec<f32> = h0.iter().map(|h| h / 2.0).collect();
    compare::assert_all_close("r block saturated", &reset, &half, 1e-5, 0.0);
    let new = pytorch_gru_with_saturated_block(&dev, 2, &h0);
    let towards_one: Vec<f32> = h0.iter().map(|h| 0.5 + h / 2.0).collect();
    compare::assert_all_close("n block saturated", &new, &towards_one, 1e-5, 0.0);
}

/// Every parameter's gradient of `Σ output·seed` for `layer`.
fn gradients(dev: &Device, layer: &Gru, x: &[f32], shape: [usize; 3]) -> Vec<Vec<f32>> {
    let tape = Tape::new(Mode::Train {
        update_state: false,
    });
    let xv = tape.input("x", &shape);
    let (seq, _) = layer.forward_with_state(&xv, None).unwrap();
    let seed = tape
        .constant(&random(seq.numel(), 77), seq.shape())
        .unwrap();
    let loss = seq.binary(kiln_backend::BinaryOp::Mul, &seed).unwrap();
    let loss = loss.sum_all().unwrap();
    loss.backward().unwrap();
    let params = [
        Some(&layer.kernel),
        Some(&layer.recurrent_kernel),
        Some(&layer.bias),
        layer.recurrent_bias.as_ref(),
    ];
    let grads: Vec<_> = params
        .into_iter()
        .flatten()
        .map(|p| tape.grad(p).expect("a gradient").id())
        .collect();
    let mut plan = Plan::compile(dev, &tape.graph(), &grads).unwrap();
    plan.run(&[("x", x)]).unwrap()
}

#[test]
fn pytorch_and_keras_gru_layers_have_the_same_gradients() {
    // The PyTorch layer reaches the cell through slices that swap its gate
    // blocks; its gradients must come back in its own layout.
    let dev = device();
    let (input, u, batch, steps) = (3, 4, 2, 5);
    manual_seed(4);
    let keras = Gru::keras(&dev, input, u).unwrap().return_sequences(true);
    let w = GruWeights::from_keras(
        input,
        u,
        random(input * 3 * u, 1),
        random(u * 3 * u, 2),
        &random(6 * u, 3),
    )
    .unwrap();
    keras.set_weights(&w).unwrap();
    let torch = Gru::pytorch(&dev, input, u).unwrap().return_sequences(true);
    torch.set_weights(&w).unwrap();
    let x = random(batch * steps * input, 5);
    let k = gradients(&dev, &keras, &x, [batch, steps, input]);
    let t = gradients(&dev, &torch, &x, [batch, steps, input]);
    let from_keras = GruWeights::from_keras(input, u, k[0].clone(), k[1].clone(), &k[2]).unwrap();
    let from_torch = GruWeights::from_pytorch(input, u, &t[0], &t[1], &t[2], &t[3]).unwrap();
    let pairs = [
        ("kernel", &from_keras.kernel, &from_torch.kernel),
        ("recurrent", &from_keras.recurrent, &from_torch.recurrent),
        ("input bias", &from_keras.input_bias, &from_torch.input_bias),
        (
            "recurrent bias",
            &from_keras.recurrent_bias,
            &from_torch.recurrent_bias,
        ),
    ];
    for (what, a, b) in pairs {
        assert!(a.iter().any(|v| v.abs() > 1e-3), "{what}: a gradient");
        compare::assert_all_close(what, b, a, 1e-5, 1e-4);
    }
}

fn names(m: &impl Module) -> Vec<String> {
    m.state_dict().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn initialisation_and_names_follow_each_framework() {
    let dev = device();
    let keras = Gru::keras(&dev, 3, 4).unwrap();
    assert_eq!(
        names(&keras),
        [
            "gru_cell.kernel",
            "gru_cell.recurrent_kernel",
            "gru_cell.bias"
        ]
    );
    assert_eq!(keras.kernel.shape(), &[3, 12]);
    assert_eq!(keras.bias.shape(), &[2, 12]);
    assert!(keras.bias.values().unwrap().iter().all(|&b| b == 0.0));
    let before = keras.reset_after(false).unwrap();
    assert_eq!(before.bias.shape(), &[12]);
    // Orthonormal rows of the recurrent kernel [u, 3u].
    let r = before.recurrent_kernel.values().unwrap();
    for i in 0..4 {
        for j in 0..4 {
            let dot: f32 = (0..12).map(|k| r[i * 12 + k] * r[j * 12 + k]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-5, "rows {i}, {j}: {dot}");
        }
    }
    let torch = Gru::pytorch(&dev, 3, 4).unwrap();
    assert_eq!(
        names(&torch),
        ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    );
    assert_eq!(torch.kernel.shape(), &[12, 3]);
    assert!(torch
        .recurrent_kernel
        .values()
        .unwrap()
        .iter()
        .all(|v| v.abs() <= 0.5));
    let err = Gru::pytorch(&dev, 3, 4)
        .unwrap()
        .reset_after(false)
        .err()
        .unwrap();
    assert!(err.to_string().contains("Gru::keras"), "{err}");

    let keras = SimpleRnn::keras(&dev, 3, 5).unwrap();
    assert_eq!(
        names(&keras),
        [
            "simple_rnn_cell.kernel",
            "simple_rnn_cell.recurrent_kernel",
            "simple_rnn_cell.bias"
        ]
    );
    let r = keras.recurrent_kernel.values().unwrap();
    for i in 0..5 {
        let norm: f32 = (0..5).map(|k| r[i * 5 + k] * r[i * 5 + k]).sum();
        assert!((norm - 1.0).abs() < 1e-5, "row {i}: {norm}");
    }
    let torch = SimpleRnn::pytorch(&dev, 3, 16).unwrap();
    assert_eq!(
        names(&torch),
        ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    );
    let k = torch.kernel.values().unwrap();
    assert!(k.iter().all(|v| v.abs() <= 0.25));
    assert!(k.iter().any(|v| v.abs() > 0.2), "uniform over ±1/√16");
    assert!(Gru::keras(&dev, 0, 4).is_err());
    assert!(SimpleRnn::pytorch(&dev, 3, 0).is_err());
}

#[test]
fn sequential_gru_and_simple_rnn_learn_the_sum_of_a_sequence() {
    // Keras' builder: GRU(16) or SimpleRNN(16), then Dense(1), regress the
    // sum of five inputs, whose variance is 5/12 ≈ 0.42.
    let dev = device();
    manual_seed(3);
    let (n, steps) = (256, 5);
    let x = random(n * steps, 11);
    let y: Vec<f32> = x.chunks(steps).map(|s| s.iter().sum()).collect();
    let data = kiln_data::Dataset::with_shapes(x, &[steps, 1], y, &[1]).unwrap();
    for (what, builder) in [
        (
            "GRU",
            Sequential::new(&dev, [steps, 1]).gru(16, Activation::Tanh, false),
        ),
        (
            "SimpleRNN",
            Sequential::new(&dev, [steps, 1]).simple_rnn(16, Activation::Tanh, false),
        ),
    ] {
        let mut model = builder.dense(1, Activation::None);
        model
            .compile(Optimizer::adam(0.01), Loss::MeanSquaredError, &[])
            .unwrap();
        let history = model
            .fit(
                &data,
                Fit::epochs(20).batch_size(32).verbosity(Verbosity::Silent),
            )
            .unwrap();
        let loss = |e: &EpochLogs| e.get("loss").unwrap();
        let (first, last) = (
            loss(&history.epochs[0]),
            loss(history.epochs.last().unwrap()),
        );
        assert!(last < 0.02, "{what}: loss {first} → {last}");
    }
}
