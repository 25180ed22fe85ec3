//! One epoch of SGD logistic regression over 74 samples in batches of 32:
//! the last batch of 10 gets its own plan, both plans update the same
//! parameters, and the final weights match an f64 CPU run of the same steps.

use kiln_backend::{Device, UnaryOp};
use kiln_graph::{Graph, ParamStore, Plan, PlanCache, Result};

const FEATURES: usize = 5;
const LR: f32 = 0.3;

fn build(device: &Device, params: &ParamStore, batch: usize) -> Result<Plan> {
    let mut g = Graph::new();
    let x = g.input("x", &[batch, FEATURES]);
    let y = g.input("y", &[batch, 1]);
    let w = g.param(params, "w")?;
    let b = g.param(params, "b")?;
    let z = g.matmul(x, w, false, false)?;
    let z = g.add(z, b)?;
    let p = g.unary(UnaryOp::Sigmoid, z)?;
    // Mean squared error keeps the CPU reference short.
    let d = g.sub(p, y)?;
    let d2 = g.unary(UnaryOp::Square, d)?;
    let loss = g.mean_all(d2)?;
    let grads = g.grad(loss, &[w, b])?;
    for (param, grad) in [w, b].into_iter().zip(grads) {
        let step = g.scale(grad, -LR)?;
        let next = g.add(param, step)?;
        g.assign(param, next)?;
    }
    Plan::compile(device, &g, &[loss])
}

/// The same steps in f64 on the CPU.
fn reference(xs: &[f32], ys: &[f32], w0: &[f32], batch: usize) -> (Vec<f64>, f64) {
    let mut w: Vec<f64> = w0.iter().map(|&v| v as f64).collect();
    let mut b = 0.0;
    let n = ys.len();
    for start in (0..n).step_by(batch) {
        let rows = (start..(start + batch).min(n)).collect::<Vec<_>>();
        let mut gw = [0.0; FEATURES];
        let mut gb = 0.0;
        for &i in &rows {
            let x = &xs[i * FEATURES..(i + 1) * FEATURES];
            let z: f64 = x.iter().zip(&w).map(|(&a, &b)| a as f64 * b).sum::<f64>() + b;
            let p = 1.0 / (1.0 + (-z).exp());
            let dz = 2.0 * (p - ys[i] as f64) / rows.len() as f64 * p * (1.0 - p);
            for k in 0..FEATURES {
                gw[k] += dz * x[k] as f64;
            }
            gb += dz;
        }
        for k in 0..FEATURES {
            w[k] -= LR as f64 * gw[k];
        }
        b -= LR as f64 * gb;
    }
    (w, b)
}

#[test]
fn last_smaller_batch_gets_its_own_plan_and_shares_the_parameters() {
    let device = Device::auto().expect("an adapter");
    let n = 74;
    let batch = 32;
    let xs: Vec<f32> = (0..n * FEATURES)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let ys: Vec<f32> = (0..n)
        .map(|i| {
            if xs[i * FEATURES] + xs[i * FEATURES + 1] > 0.0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let w0: Vec<f32> = (0..FEATURES).map(|k| 0.1 * k as f32 - 0.2).collect();
    let mut params = ParamStore::new(&device);
    params.insert("w", &w0, &[FEATURES, 1]).unwrap();
    params.insert("b", &[0.0], &[1]).unwrap();

    let mut cache = PlanCache::new();
    for start in (0..n).step_by(batch) {
        let rows = batch.min(n - start);
        let x = &xs[start * FEATURES..(start + rows) * FEATURES];
        let y = &ys[start..start + rows];
        let plan = cache
            .get_or_compile(&[("x", &[rows, FEATURES]), ("y", &[rows, 1])], || {
                build(&device, &params, rows)
            })
            .unwrap();
        let loss = plan.run(&[("x", x), ("y", y)]).unwrap();
        assert!(loss[0][0].is_finite());
    }
    assert_eq!(
        cache.len(),
        2,
        "one plan for batches of 32, one for the last 10"
    );
    assert_eq!(cache.compilations(), 2);

    let (w_ref, b_ref) = reference(&xs, &ys, &w0, batch);
    let w = params.values("w").unwrap();
    let b = params.values("b").unwrap();
    for k in 0..FEATURES {
        assert!(
            (w[k] as f64 - w_ref[k]).abs() < 1e-5,
            "w[{k}] {} vs {}",
            w[k],
            w_ref[k]
        );
    }
    assert!((b[0] as f64 - b_ref).abs() < 1e-5, "b {} vs {b_ref}", b[0]);
    assert!(
        (w[0] as f64 - w0[0] as f64).abs() > 1e-3,
        "the weights moved"
    );
}

/// Plans build their kernels on several threads, and several threads may
/// compile plans on one device: each distinct kernel is still built once.
#[test]
fn plans_compiled_on_several_threads_build_each_pipeline_once() {
    let params_on = |device: &Device| {
        let mut params = ParamStore::new(device);
        params
            .insert("w", &[0.1; FEATURES], &[FEATURES, 1])
            .unwrap();
        params.insert("b", &[0.0], &[1]).unwrap();
        params
    };
    let alone = Device::auto().expect("an adapter");
    build(&alone, &params_on(&alone), 8).unwrap();
    let distinct = alone.pipeline_count();
    assert!(distinct > 3, "the step has several kernels: {distinct}");

    let shared = Device::auto().expect("an adapter");
    let params = params_on(&shared);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| build(&shared, &params, 8).unwrap());
        }
    });
    assert_eq!(shared.pipeline_count(), distinct);
}
