//! The LSTM layer's three weight layouts: conversions round-trip, a
//! PyTorch-layout layer given a Keras layer's weights computes the same
//! outputs and states, and each framework's initialisation and names.

#[path = "../../../tests/common/compare.rs"]
mod compare;

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

#[test]
fn layouts_round_trip() {
    let (input, u) = (3, 5);
    let w = LstmWeights::from_keras(
        input,
        u,
        random(input * 4 * u, 1),
        random(u * 4 * u, 2),
        random(4 * u, 3),
    )
    .unwrap();
    let [ih, hh, bi, bh] = w.to_pytorch();
    assert_eq!(
        LstmWeights::from_pytorch(input, u, &ih, &hh, &bi, &bh).unwrap(),
        w
    );
    let [ow, or, ob] = w.to_onnx();
    assert_eq!(LstmWeights::from_onnx(input, u, &ow, &or, &ob).unwrap(), w);
    // ONNX's blocks are i, o, f, c: its second block is Keras' fourth (o),
    // transposed: W[u + j, k] = kernel[k, 3u + j].
    assert_eq!(ow[(u + 2) * input + 1], w.kernel[4 * u + 3 * u + 2]);
    // PyTorch's weight_ih is the kernel transposed: [4u, in].
    assert_eq!(ih[(2 * u + 1) * input + 2], w.kernel[2 * 4 * u + 2 * u + 1]);
    assert!(LstmWeights::from_onnx(input, u, &ow, &or, &ob[..4 * u]).is_err());
}

#[test]
fn pytorch_and_keras_layers_agree_on_the_same_weights() {
    let dev = device();
    let (input, u, batch, steps) = (4, 6, 3, 5);
    manual_seed(9);
    let keras = Lstm::keras(&dev, input, u).unwrap().return_sequences(true);
    let torch = Lstm::pytorch(&dev, input, u)
        .unwrap()
        .return_sequences(true);
    torch.set_weights(&keras.weights().unwrap()).unwrap();
    let x = random(batch * steps * input, 4);
    let (h0, c0) = (random(batch * u, 5), random(batch * u, 6));
    let run = |layer: &Lstm| -> Vec<Vec<f32>> {
        let tape = Tape::new(Mode::Eval);
        let xv = tape.input("x", &[batch, steps, input]);
        let h = tape.input("h", &[batch, u]);
        let c = tape.input("c", &[batch, u]);
        let (seq, hn, cn) = layer.forward_with_state(&xv, Some((&h, &c))).unwrap();
        let graph = tape.graph();
        let mut plan = Plan::compile(&dev, &graph, &[seq.id(), hn.id(), cn.id()]).unwrap();
        plan.run(&[("x", &x), ("h", &h0), ("c", &c0)]).unwrap()
    };
    let (a, b) = (run(&keras), run(&torch));
    assert_eq!(a.len(), b.len(), "outputs");
    for (i, (p, q)) in a.iter().zip(&b).enumerate() {
        compare::assert_all_close(&format!("output {i}"), p, q, 1e-5, 0.0);
    }
    // The sequence's last step is the final h.
    let last = &a[0][(steps - 1) * u..steps * u];
    assert_eq!(last, &a[1][..u]);
}

#[test]
fn initialisation_and_names_follow_each_framework() {
    let dev = device();
    let keras = Lstm::keras(&dev, 3, 4).unwrap();
    let names: Vec<String> = keras.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "lstm_cell.kernel",
            "lstm_cell.recurrent_kernel",
            "lstm_cell.bias"
        ]
    );
    // Keras: forget-gate bias 1, the rest 0; the recurrent kernel [u, 4u]
    // has orthonormal rows.
    let bias = keras.bias.as_ref().unwrap().values().unwrap();
    assert_eq!(bias, [[0.0; 4], [1.0; 4], [0.0; 4], [0.0; 4]].concat());
    let r = keras.recurrent_kernel.values().unwrap();
    for i in 0..4 {
        for j in 0..4 {
            let dot: f32 = (0..16).map(|k| r[i * 16 + k] * r[j * 16 + k]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-5, "rows {i}, {j}: {dot}");
        }
    }
    let torch = Lstm::pytorch(&dev, 3, 4).unwrap();
    let names: Vec<String> = torch.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    );
    assert_eq!(torch.kernel.shape(), &[16, 3]);
    assert!(torch
        .kernel
        .values()
        .unwrap()
        .iter()
        .all(|v| v.abs() <= 0.5));
    assert!(Lstm::keras(&dev, 0, 4).is_err());
}
