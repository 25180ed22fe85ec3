//! A whole training step as one graph: x·W1+b1 → relu → ·W2+b2 → sigmoid →
//! binary cross-entropy, its backward and an SGD update, compiled once and
//! replayed as exactly one queue submission per step.

use kiln_backend::{BinaryOp, Device, UnaryOp};
use kiln_graph::{Graph, NodeId, ParamStore, Plan};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// Binary cross-entropy of probabilities `p` against labels `y`, mean over the
/// batch, with p clipped to [1e-7, 1 - 1e-7] as Keras does.
fn bce(g: &mut Graph, p: NodeId, y: NodeId) -> NodeId {
    let lo = g.scalar(1e-7);
    let hi = g.scalar(1.0 - 1e-7);
    let p = g.binary(BinaryOp::Max, p, lo).unwrap();
    let p = g.binary(BinaryOp::Min, p, hi).unwrap();
    let log_p = g.unary(UnaryOp::Log, p).unwrap();
    let one_minus_p = g.scale(p, -1.0).unwrap();
    let one_minus_p = g.unary(UnaryOp::AddScalar(1.0), one_minus_p).unwrap();
    let log_q = g.unary(UnaryOp::Log, one_minus_p).unwrap();
    let one_minus_y = g.scale(y, -1.0).unwrap();
    let one_minus_y = g.unary(UnaryOp::AddScalar(1.0), one_minus_y).unwrap();
    let a = g.mul(y, log_p).unwrap();
    let b = g.mul(one_minus_y, log_q).unwrap();
    let s = g.add(a, b).unwrap();
    let m = g.mean_all(s).unwrap();
    g.scale(m, -1.0).unwrap()
}

#[test]
fn one_submission_per_step_and_the_loss_falls() {
    let device = Device::auto().expect("an adapter");
    let (batch, features, hidden) = (32, 30, 16);
    let mut rng = Rng(17);
    let mut params = ParamStore::new(&device);
    params
        .insert("w1", &rng.vec(features * hidden, 0.3), &[features, hidden])
        .unwrap();
    params.insert("b1", &vec![0.0; hidden], &[hidden]).unwrap();
    params
        .insert("w2", &rng.vec(hidden, 0.3), &[hidden, 1])
        .unwrap();
    params.insert("b2", &[0.0], &[1]).unwrap();

    let mut g = Graph::new();
    let x = g.input("x", &[batch, features]);
    let y = g.input("y", &[batch, 1]);
    let w1 = g.param(&params, "w1").unwrap();
    let b1 = g.param(&params, "b1").unwrap();
    let w2 = g.param(&params, "w2").unwrap();
    let b2 = g.param(&params, "b2").unwrap();
    let h = g.matmul(x, w1, false, false).unwrap();
    let h = g.add(h, b1).unwrap();
    let h = g.unary(UnaryOp::Relu, h).unwrap();
    let o = g.matmul(h, w2, false, false).unwrap();
    let o = g.add(o, b2).unwrap();
    let p = g.unary(UnaryOp::Sigmoid, o).unwrap();
    let loss = bce(&mut g, p, y);
    let ws = [w1, b1, w2, b2];
    let grads = g.grad(loss, &ws).unwrap();
    for (w, gw) in ws.iter().zip(grads) {
        let step = g.scale(gw, -0.5).unwrap();
        let updated = g.add(*w, step).unwrap();
        g.assign(*w, updated).unwrap();
    }
    let mut plan = Plan::compile(&device, &g, &[loss]).unwrap();

    // A fixed batch whose label is a linear rule of the features.
    let xs = rng.vec(batch * features, 1.0);
    let ys: Vec<f32> = (0..batch)
        .map(|i| {
            if xs[i * features..(i + 1) * features]
                .iter()
                .take(5)
                .sum::<f32>()
                > 0.0
            {
                1.0
            } else {
                0.0
            }
        })
        .collect();

    let mut losses = Vec::new();
    for _ in 0..50 {
        let (submits, dispatches) = (device.submissions(), device.dispatches());
        let out = plan.run(&[("x", &xs), ("y", &ys)]).unwrap();
        assert_eq!(
            device.submissions() - submits,
            1,
            "one queue.submit per step"
        );
        assert_eq!(
            device.dispatches() - dispatches,
            plan.stats().dispatches as u64,
            "every kernel, once"
        );
        losses.push(out[0][0]);
    }
    let first = losses[0];
    let last = *losses.last().unwrap();
    assert!(first > 0.5 && first.is_finite(), "initial loss {first}");
    assert!(last < first * 0.5, "loss should fall: {losses:?}");
    assert!(
        losses.windows(10).all(|w| w[9] <= w[0]),
        "loss falls over every 10 steps: {losses:?}"
    );

    let stats = plan.stats();
    assert!(
        stats.planned_bytes < stats.intermediate_bytes,
        "planned peak {} should be below the sum of intermediates {}",
        stats.planned_bytes,
        stats.intermediate_bytes
    );
    println!("losses {:.4} → {:.4}; {stats:?}", first, last);
}

#[test]
fn shape_mismatch_is_an_error_naming_both_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", &[3, 4]);
    let b = g.input("b", &[5, 6]);
    let e = g.matmul(a, b, false, false).unwrap_err().to_string();
    assert!(e.contains("[3, 4]") && e.contains("[5, 6]"), "{e}");
    let e = g.add(a, b).unwrap_err().to_string();
    assert!(e.contains("[3, 4]") && e.contains("[5, 6]"), "{e}");
}

#[test]
fn missing_or_wrong_sized_feed_is_an_error() {
    let device = Device::auto().expect("an adapter");
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3]);
    let y = g.unary(UnaryOp::Exp, x).unwrap();
    let mut plan = Plan::compile(&device, &g, &[y]).unwrap();
    assert!(plan.run(&[]).unwrap_err().to_string().contains("\"x\""));
    assert!(plan
        .run(&[("x", &[1.0; 5])])
        .unwrap_err()
        .to_string()
        .contains("6"));
    let out = plan.run(&[("x", &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])]).unwrap();
    assert!((out[0][2] - 2f32.exp()).abs() < 1e-5);
}
