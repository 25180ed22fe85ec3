//! The model layer: a custom module trains exactly as the Sequential builder
//! does, a residual model's gradients match finite differences of an f64
//! evaluation, freezing removes backward nodes and optimizer state, state
//! dicts report every mismatch, the hand-written loop runs as one
//! submission per step, and the custom-module example learns.

use clap::Parser;
use kiln::graph::Op;
use kiln::models::{Optim, StateDict, TrainStep};
use kiln::prelude::*;

#[path = "../examples/custom_module.rs"]
#[allow(dead_code)]
mod custom_module;

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

fn data() -> (Dataset, Dataset) {
    let data = CsvDataset::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv"),
        "target",
    )
    .unwrap();
    let (mut train, mut test) = data.split(0.8, 3).unwrap();
    let s = Standardizer::fit(&train);
    s.transform(&mut train).unwrap();
    s.transform(&mut test).unwrap();
    (train, test)
}

/// The tutorial's MLP written as a custom module.
struct Mlp {
    fc1: Dense,
    bn1: BatchNorm,
    drop1: Dropout,
    fc2: Dense,
    bn2: BatchNorm,
    drop2: Dropout,
    out: Dense,
}

impl Mlp {
    /// Built in the Sequential builder's order, so the same seed gives the
    /// same initial weights and dropout seeds.
    fn new(device: &Device) -> kiln::models::Result<Self> {
        Ok(Self {
            fc1: Dense::new(device, 30, 128, Activation::Relu)?,
            bn1: BatchNorm::keras(device, 128)?,
            drop1: Dropout::new(0.3)?,
            fc2: Dense::new(device, 128, 64, Activation::Relu)?,
            bn2: BatchNorm::keras(device, 64)?,
            drop2: Dropout::new(0.2)?,
            out: Dense::new(device, 64, 1, Activation::Sigmoid)?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Var) -> kiln::models::Result<Var> {
        let h = self
            .drop1
            .forward(&self.bn1.forward(&self.fc1.forward(x)?)?)?;
        let h = self
            .drop2
            .forward(&self.bn2.forward(&self.fc2.forward(&h)?)?)?;
        self.out.forward(&h)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.module("fc1", &self.fc1);
        v.module("bn1", &self.bn1);
        v.module("drop1", &self.drop1);
        v.module("fc2", &self.fc2);
        v.module("bn2", &self.bn2);
        v.module("drop2", &self.drop2);
        v.module("out", &self.out);
    }
}

#[test]
fn a_custom_module_trains_exactly_as_the_sequential_builder() {
    let device = device();
    let (train, _) = data();
    let seq_model = || tutorial_mlp(&device, 30, 11, TUTORIAL_DROPOUT);
    let mut a = seq_model();
    manual_seed(11);
    let mut b = Model::new(&device, Mlp::new(&device).unwrap(), [30]);
    a.compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[])
        .unwrap();
    b.compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[])
        .unwrap();
    let (mut sum_a, mut sum_b) = (0.0f32, 0.0f32);
    for step in 0..20 {
        let idx: Vec<usize> = (step * 16..step * 16 + 16).collect();
        let (x, y) = train.gather(&idx).unwrap();
        a.train_on_batch(&x, &y).unwrap();
        b.train_on_batch(&x, &y).unwrap();
        // The accumulated loss grows by this step's loss.
        let (na, nb) = (a.running_loss(1).unwrap(), b.running_loss(1).unwrap());
        let (la, lb) = (na - sum_a, nb - sum_b);
        assert!(la.is_finite() && la > 0.0, "step {step}: loss {la}");
        assert_eq!(la.to_bits(), lb.to_bits(), "step {step}: {la} vs {lb}");
        (sum_a, sum_b) = (na, nb);
    }
    // Same weights, by position (the names differ: dense.kernel vs fc1.kernel).
    let (wa, wb) = (a.weights().unwrap(), b.weights().unwrap());
    assert_eq!(wa.len(), wb.len());
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(va, vb, "{na} vs {nb}");
    }
}

/// x → relu(fc1) → fc2, added to x → relu → head: a skip connection.
struct Residual {
    fc1: Linear,
    fc2: Linear,
    head: Linear,
}

impl Module for Residual {
    fn forward(&self, x: &Var) -> kiln::models::Result<Var> {
        let h = self.fc1.forward(x)?.relu()?;
        let r = self.fc2.forward(&h)?;
        self.head.forward(&(x + &r)?.relu()?)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        v.module("fc1", &self.fc1);
        v.module("fc2", &self.fc2);
        v.module("head", &self.head);
    }
}

fn residual(device: &Device, seed: u64) -> Residual {
    manual_seed(seed);
    Residual {
        fc1: Linear::new(device, 5, 7).unwrap(),
        fc2: Linear::new(device, 7, 5).unwrap(),
        head: Linear::new(device, 5, 2).unwrap(),
    }
}

/// The residual model's mean squared error in f64, from its weights by name.
fn residual_loss_f64(w: &[(String, Vec<f64>)], x: &[f64], y: &[f64], rows: usize) -> f64 {
    let get = |n: &str| &w.iter().find(|(k, _)| k == n).unwrap().1;
    // y = x·Wᵀ + b for W [out, in].
    let linear = |input: &[f64], name: &str, inputs: usize, outputs: usize| -> Vec<f64> {
        let (wt, b) = (get(&format!("{name}.weight")), get(&format!("{name}.bias")));
        let mut out = vec![0.0; rows * outputs];
        for r in 0..rows {
            for o in 0..outputs {
                out[r * outputs + o] = b[o]
                    + (0..inputs)
                        .map(|i| input[r * inputs + i] * wt[o * inputs + i])
                        .sum::<f64>();
            }
        }
        out
    };
    let h: Vec<f64> = linear(x, "fc1", 5, 7).iter().map(|v| v.max(0.0)).collect();
    let r = linear(&h, "fc2", 7, 5);
    let s: Vec<f64> = x.iter().zip(&r).map(|(a, b)| (a + b).max(0.0)).collect();
    let p = linear(&s, "head", 5, 2);
    p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / p.len() as f64
}

#[test]
fn a_residual_models_gradients_match_finite_differences() {
    let device = device();
    let mut model = Model::new(&device, residual(&device, 4), [5]);
    model
        .compile(Optimizer::sgd(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let rows = 6;
    let x: Vec<f32> = (0..rows * 5)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 5.0)
        .collect();
    let y: Vec<f32> = (0..rows * 2)
        .map(|i| ((i * 11 % 7) as f32 - 3.0) / 3.0)
        .collect();
    let (loss, grads) = model.loss_and_gradients(&x, &y).unwrap();
    let mut w: Vec<(String, Vec<f64>)> = model
        .weights()
        .unwrap()
        .into_iter()
        .map(|(n, v)| (n, v.iter().map(|&a| a as f64).collect()))
        .collect();
    let (xf, yf): (Vec<f64>, Vec<f64>) = (
        x.iter().map(|&v| v as f64).collect(),
        y.iter().map(|&v| v as f64).collect(),
    );
    let want_loss = residual_loss_f64(&w, &xf, &yf, rows);
    assert!(
        ((loss as f64 - want_loss) / want_loss).abs() < 1e-5,
        "{loss} vs {want_loss}"
    );
    assert_eq!(grads.len(), 6, "every weight and bias");
    let h = 1e-6;
    for (name, g) in &grads {
        let k = w.iter().position(|(n, _)| n == name).unwrap();
        for (i, &gi) in g.iter().enumerate() {
            let base = w[k].1[i];
            w[k].1[i] = base + h;
            let up = residual_loss_f64(&w, &xf, &yf, rows);
            w[k].1[i] = base - h;
            let down = residual_loss_f64(&w, &xf, &yf, rows);
            w[k].1[i] = base;
            let fd = (up - down) / (2.0 * h);
            assert!(
                (gi as f64 - fd).abs() <= 1e-3 * fd.abs() + 1e-4,
                "d/d{name}[{i}]: kiln {gi} vs finite difference {fd}"
            );
        }
    }
}

#[test]
fn a_frozen_submodule_has_no_backward_nodes_no_optimizer_state_and_does_not_move() {
    let device = device();
    let count = |g: &kiln::graph::Graph, f: &dyn Fn(&Op) -> bool| {
        g.nodes().iter().filter(|n| f(&n.op)).count()
    };
    let is_matmul = |op: &Op| matches!(op, Op::MatMul { .. });
    let is_step = |op: &Op| matches!(op, Op::OptimizerStep { .. });

    let mut all = Model::new(&device, residual(&device, 5), [5]);
    all.compile(Optimizer::adam(1e-2), Loss::MeanSquaredError, &[])
        .unwrap();
    let g = all.training_graph(8).unwrap();
    // Forward: 3 products. Backward: the weight gradient of each layer, and
    // the input gradients of fc2 and head (fc1's input needs none).
    assert_eq!((count(&g, &is_matmul), count(&g, &is_step)), (8, 6));

    let mut model = Model::new(&device, residual(&device, 5), [5]);
    model.module().fc1.freeze();
    model
        .compile(Optimizer::adam(1e-2), Loss::MeanSquaredError, &[])
        .unwrap();
    let g = model.training_graph(8).unwrap();
    // fc1's weight gradient is gone, and so is fc2's input gradient, which
    // only fc1 would have used: backward stops above the frozen block.
    assert_eq!((count(&g, &is_matmul), count(&g, &is_step)), (6, 4));
    let frozen: Vec<(String, Vec<f32>)> = ["fc1.weight", "fc1.bias"]
        .iter()
        .map(|n| (n.to_string(), model.value(n).unwrap()))
        .collect();
    let moving = model.value("fc2.weight").unwrap();
    let x: Vec<f32> = (0..40 * 5).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
    let y: Vec<f32> = (0..40 * 2).map(|i| (i % 5) as f32 / 4.0).collect();
    let data = Dataset::new(x, y, 5, 2).unwrap();
    model
        .fit(
            &data,
            Fit::epochs(2).batch_size(8).verbosity(Verbosity::Silent),
        )
        .unwrap();
    for (name, before) in &frozen {
        let after = model.value(name).unwrap();
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name} moved"
        );
    }
    assert_ne!(model.value("fc2.weight").unwrap(), moving, "fc2 trains");
    let state = model.optimizer_state_names();
    assert_eq!(state.len(), 8, "{state:?}");
    assert!(state.iter().all(|n| !n.starts_with("fc1.")), "{state:?}");
}

#[test]
fn a_state_dict_reports_every_missing_unexpected_and_misshaped_tensor() {
    let device = device();
    let model = residual(&device, 6);
    let mut sd = StateDict::of(&model).unwrap();
    sd.tensors.remove("fc2.bias"); // missing
    sd.tensors
        .insert("fc3.weight".into(), (vec![2], vec![0.0, 1.0])); // unexpected
    sd.tensors
        .insert("head.bias".into(), (vec![3], vec![0.0; 3])); // mis-shaped
    let path = std::env::temp_dir().join(format!("kiln-sd-{}.safetensors", std::process::id()));
    std::fs::write(&path, sd.to_safetensors_bytes(&[]).unwrap()).unwrap();
    let before = model.fc1.weight.values().unwrap();
    let e = model.load_safetensors(&path, true).unwrap_err().to_string();
    for part in [
        "missing fc2.bias",
        "unexpected fc3.weight",
        "mis-shaped head.bias (file [3], model [2])",
    ] {
        assert!(e.contains(part), "{part:?} not in: {e}");
    }
    assert_eq!(
        model.fc1.weight.values().unwrap(),
        before,
        "nothing written"
    );
    // Not strict: missing and unexpected tensors pass, a wrong shape never does.
    let e = model
        .load_safetensors(&path, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("head.bias") && !e.contains("fc3"), "{e}");
    // A file that is no safetensors at all: an error naming the file.
    std::fs::write(&path, b"not a tensor file").unwrap();
    let e = model.load_safetensors(&path, true).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    std::fs::remove_file(&path).ok();
    // And a round trip restores every value.
    let other = residual(&device, 99);
    let sd = StateDict::of(&model).unwrap();
    other.load_state_dict(&sd, true).unwrap();
    assert_eq!(
        other.head.weight.values().unwrap(),
        model.head.weight.values().unwrap()
    );
}

#[test]
fn a_hand_written_loop_is_one_submission_per_step_and_learns() {
    let device = device();
    let net = residual(&device, 8);
    let opt = Optim::new(&device, Optimizer::adam(1e-2)).unwrap();
    let mut step = TrainStep::new(&device, |tape| {
        let x = tape.input("x", &[16, 5]);
        let y = tape.input("y", &[16, 2]);
        let loss = (&net.forward(&x)? - &y)?.square()?.mean_all()?;
        loss.backward()?;
        opt.step(&loss)?;
        Ok(vec![loss])
    })
    .unwrap();
    let x: Vec<f32> = (0..16 * 5).map(|i| (i % 9) as f32 / 4.0 - 1.0).collect();
    let y: Vec<f32> = (0..16 * 2).map(|i| ((i * 3) % 7) as f32 / 7.0).collect();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let submits = device.submissions();
        losses.push(step.run(&[("x", &x), ("y", &y)]).unwrap()[0][0]);
        assert_eq!(device.submissions() - submits, 1);
    }
    assert_eq!(opt.steps(), 30);
    assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
    // backward before step is required
    let e = TrainStep::new(&device, |tape| {
        let loss = net.forward(&tape.input("x", &[2, 5]))?.mean_all()?;
        opt.step(&loss)?;
        Ok(vec![loss])
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("backward"), "{e}");
}

#[test]
fn a_hand_written_loop_and_train_on_batch_take_the_same_steps() {
    // Both append their Adam updates through one path; from the same
    // weights, on the same batches, they end at the same weights.
    let device = device();
    let x: Vec<f32> = (0..16 * 5).map(|i| (i % 9) as f32 / 4.0 - 1.0).collect();
    let y: Vec<f32> = (0..16 * 2).map(|i| ((i * 3) % 7) as f32 / 7.0).collect();
    let net = residual(&device, 21);
    let opt = Optim::new(&device, Optimizer::adam(1e-2)).unwrap();
    let mut step = TrainStep::new(&device, |tape| {
        let (xv, yv) = (tape.input("x", &[16, 5]), tape.input("y", &[16, 2]));
        let loss = (&net.forward(&xv)? - &yv)?.square()?.mean_all()?;
        loss.backward()?;
        opt.step(&loss)?;
        Ok(vec![loss])
    })
    .unwrap();
    let mut model = Model::new(&device, residual(&device, 21), [5]);
    model
        .compile(Optimizer::adam(1e-2), Loss::MeanSquaredError, &[])
        .unwrap();
    for _ in 0..5 {
        step.run(&[("x", &x), ("y", &y)]).unwrap();
        model.train_on_batch(&x, &y).unwrap();
    }
    assert_eq!((opt.steps(), model.steps()), (5, 5));
    let by_hand = net.state_dict();
    let fitted = model.module().state_dict();
    assert_eq!(by_hand.len(), fitted.len());
    for ((name, a), (_, b)) in by_hand.iter().zip(&fitted) {
        let (a, b) = (a.values().unwrap(), b.values().unwrap());
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-5,
                "{name}[{i}]: {p} by hand, {q} fitted"
            );
        }
    }
    // Both moved the weights away from where they started.
    let start = residual(&device, 21).state_dict();
    let moved = start[0].1.values().unwrap();
    let now = by_hand[0].1.values().unwrap();
    assert!(moved.iter().zip(&now).any(|(p, q)| (p - q).abs() > 1e-3));
}

#[test]
fn the_custom_module_example_learns() {
    let args = custom_module::Args::parse_from(["custom_module", "--quiet", "--epochs", "30"]);
    let out = custom_module::run(&device(), &args.common).unwrap();
    assert!(
        out.test_accuracy >= 0.93,
        "test accuracy {}",
        out.test_accuracy
    );
    assert!(out.parameters > 10_000);
    // The summary lists every sub-module under its field name, with its
    // own parameter count (30 features, 64 units, one output).
    let rows = [
        ("stem (Linear)", 30 * 64 + 64),
        ("norm (BatchNorm)", 2 * 64),
        ("block1 (Linear)", 64 * 64 + 64),
        ("block2 (Linear)", 64 * 64 + 64),
        ("dropout (Dropout)", 0),
        ("head (Linear)", 64 + 1),
    ];
    for (name, count) in rows {
        let line = out
            .summary
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no row {name:?} in\n{}", out.summary));
        assert!(
            line.ends_with(&format!(" {count}")),
            "{line:?}: expected {count} parameters"
        );
    }
    let total: usize = rows.iter().map(|r| r.1).sum();
    assert_eq!(total, out.parameters);
    assert!(
        out.summary.contains("model (ResidualMlp)"),
        "{}",
        out.summary
    );
    // Columns sized to content: every table row's count ends in one column.
    let table: Vec<&str> = out
        .summary
        .lines()
        .take_while(|l| !l.starts_with("Total"))
        .collect();
    let width = table[0].chars().count();
    for l in &table {
        assert_eq!(l.chars().count(), width, "{l:?} in\n{}", out.summary);
    }
}
