//! The training kernels (batch moments and running statistics, dropout
//! masks, optimizer steps, accumulators, reductions with a prologue) against
//! f64 references written from the formulas, at odd sizes, outputs poisoned
//! with NaN first.

use kiln_backend::codegen::*;
use kiln_backend::ops::optim::*;
use kiln_backend::ops::random::reference_dropout;
use kiln_backend::*;

mod common;
use common::{device, Rng};

fn t(dev: &Device, v: &[f32]) -> Tensor {
    Tensor::from_f32(dev, v, &[v.len()]).unwrap()
}

fn close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn contiguous(t: &Tensor, shape: &[usize]) -> Operand {
    Operand {
        buffer: t.buffer().clone(),
        layout: StridedLayout::contiguous(t.shape())
            .broadcast_to("test", shape)
            .unwrap(),
    }
}

/// Per-channel mean and biased variance of `x` (`shape`, channels on axis 1).
fn reference_moments(x: &[f32], shape: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let c = shape[1];
    let inner: usize = shape[2..].iter().product();
    let m = (x.len() / c) as f64;
    let ch = |i: usize| (i / inner) % c;
    let mut mean = vec![0.0f64; c];
    for (i, &v) in x.iter().enumerate() {
        mean[ch(i)] += v as f64 / m;
    }
    let mut var = vec![0.0f64; c];
    for (i, &v) in x.iter().enumerate() {
        var[ch(i)] += (v as f64 - mean[ch(i)]).powi(2) / m;
    }
    (mean, var)
}

#[test]
fn batch_moments_with_running_statistics_and_a_prologue() {
    let dev = device();
    let mut rng = Rng(5);
    // Features [N, C], images [N, C, H, W]; [2, 3, 40, 40] has few outputs over
    // many elements each, the workgroup-per-output strategy.
    for shape in [
        vec![7usize, 33],
        vec![3, 5, 7, 9],
        vec![1, 3],
        vec![5, 128],
        vec![2, 3, 40, 40],
    ] {
        let c = shape[1];
        let n: usize = shape.iter().product();
        let x = rng.vec(n, -2.0, 3.0);
        let xt = Tensor::from_f32(&dev, &x, &shape).unwrap();
        let (mean, var) = (
            dev.full(&[c], f32::NAN).unwrap(),
            dev.full(&[c], f32::NAN).unwrap(),
        );
        let running_mean = t(&dev, &vec![0.5; c]);
        let running_var = t(&dev, &vec![2.0; c]);
        let count = t(&dev, &[3.0]);
        let relu = dev.full(&shape, f32::NAN).unwrap();
        // Moments of relu(x), with relu(x) stored on the way.
        let mut p = Program::default();
        let l = p.push(Expr::Load(0));
        let r = p.push(Expr::Unary(UnaryOp::Relu, l));
        let axes: Vec<usize> = (0..shape.len()).filter(|&d| d != 1).collect();
        let k = dev
            .build(
                &ReduceKernel {
                    label: "moments".into(),
                    shape: shape.to_vec(),
                    axes: axes.to_vec(),
                    reductions: vec![Reduction {
                        kind: ReduceKind::Moments,
                        expr: r,
                        output: ReduceOutput::Moments {
                            mean: (mean.buffer().clone(), 0),
                            var: (var.buffer().clone(), 0),
                            running: Some(RunningUpdate {
                                mean: running_mean.buffer().clone(),
                                var: running_var.buffer().clone(),
                                keep: 0.9,
                                var_factor: 1.5,
                                count: Some(count.buffer().clone()),
                            }),
                        },
                    }],
                    epilogue: Epilogue {
                        program: p.clone(),
                        operands: vec![contiguous(&xt, &shape)],
                        stores: vec![Store {
                            expr: r,
                            buffer: relu.buffer().clone(),
                            layout: StridedLayout::contiguous(&shape),
                        }],
                    },
                }
                .into(),
            )
            .unwrap();
        dev.run(&[&k]).unwrap();
        let xr: Vec<f32> = x.iter().map(|&v| v.max(0.0)).collect();
        let (wm, wv) = reference_moments(&xr, &shape);
        close(
            &format!("mean {shape:?}"),
            &mean.to_vec_f32().unwrap(),
            &wm,
            1e-5,
        );
        close(
            &format!("var {shape:?}"),
            &var.to_vec_f32().unwrap(),
            &wv,
            1e-5,
        );
        let rm: Vec<f64> = wm.iter().map(|m| 0.9 * 0.5 + 0.1 * m).collect();
        let rv: Vec<f64> = wv.iter().map(|v| 0.9 * 2.0 + 0.1 * 1.5 * v).collect();
        close(
            "running mean",
            &running_mean.to_vec_f32().unwrap(),
            &rm,
            1e-5,
        );
        close("running var", &running_var.to_vec_f32().unwrap(), &rv, 1e-5);
        assert_eq!(
            count.to_vec_f32().unwrap(),
            vec![4.0],
            "one more batch tracked"
        );
        let stored: Vec<f64> = xr.iter().map(|&v| v as f64).collect();
        close("stored relu", &relu.to_vec_f32().unwrap(), &stored, 0.0);
    }
}

#[test]
fn sibling_sums_with_a_prologue_and_accumulators() {
    let dev = device();
    let mut rng = Rng(6);
    for (rows, cols) in [(64usize, 128usize), (7, 33), (3000, 2)] {
        let a = rng.vec(rows * cols, -1.0, 1.0);
        let b = rng.vec(cols, -1.0, 1.0);
        let at = Tensor::from_f32(&dev, &a, &[rows, cols]).unwrap();
        let bt = t(&dev, &b);
        let shape = [rows, cols];
        // Column sums of a·b and of a, and a running total of Σ (a·b)².
        let s1 = dev.full(&[cols], f32::NAN).unwrap();
        let s2 = dev.full(&[cols], f32::NAN).unwrap();
        let mut p = Program::default();
        let (la, lb) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
        let prod = p.push(Expr::Binary(BinaryOp::Mul, la, lb));
        let k = dev
            .build(
                &ReduceKernel {
                    label: "sums".into(),
                    shape: shape.to_vec(),
                    axes: vec![0],
                    reductions: vec![
                        Reduction {
                            kind: ReduceKind::Sum,
                            expr: prod,
                            output: ReduceOutput::Write {
                                buffer: s1.buffer().clone(),
                                offset: 0,
                            },
                        },
                        Reduction {
                            kind: ReduceKind::Mean,
                            expr: la,
                            output: ReduceOutput::Write {
                                buffer: s2.buffer().clone(),
                                offset: 0,
                            },
                        },
                    ],
                    epilogue: Epilogue {
                        program: p.clone(),
                        operands: vec![contiguous(&at, &shape), contiguous(&bt, &shape)],
                        stores: vec![],
                    },
                }
                .into(),
            )
            .unwrap();
        dev.run(&[&k]).unwrap();
        let col = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
            (0..cols)
                .map(|j| (0..rows).map(|i| f(i, j)).sum())
                .collect()
        };
        close(
            "sum of a·b",
            &s1.to_vec_f32().unwrap(),
            &col(&|i, j| a[i * cols + j] as f64 * b[j] as f64),
            1e-5,
        );
        close(
            "mean of a",
            &s2.to_vec_f32().unwrap(),
            &col(&|i, j| a[i * cols + j] as f64 / rows as f64),
            1e-5,
        );
        // Into a one-element accumulator: acc = 0.5·acc + 2·Σ (a·b)², twice.
        let acc = t(&dev, &[1.0]);
        let mut p = Program::default();
        let (la, lb) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
        let prod = p.push(Expr::Binary(BinaryOp::Mul, la, lb));
        let sq = p.push(Expr::Unary(UnaryOp::Square, prod));
        let k = dev
            .build(
                &ReduceKernel {
                    label: "accumulate".into(),
                    shape: shape.to_vec(),
                    axes: vec![0, 1],
                    reductions: vec![Reduction {
                        kind: ReduceKind::Sum,
                        expr: sq,
                        output: ReduceOutput::Accumulate {
                            buffer: acc.buffer().clone(),
                            offset: 0,
                            keep: 0.5,
                            scale: 2.0,
                        },
                    }],
                    epilogue: Epilogue {
                        program: p.clone(),
                        operands: vec![contiguous(&at, &shape), contiguous(&bt, &shape)],
                        stores: vec![],
                    },
                }
                .into(),
            )
            .unwrap();
        dev.run(&[&k, &k]).unwrap();
        let total: f64 = (0..rows * cols)
            .map(|i| (a[i] as f64 * b[i % cols] as f64).powi(2))
            .sum();
        let want = 0.5 * (0.5 * 1.0 + 2.0 * total) + 2.0 * total;
        close("accumulator", &acc.to_vec_f32().unwrap(), &[want], 1e-5);
    }
}

#[test]
fn dropout_masks_match_the_reference_and_the_rate() {
    let dev = device();
    // 10 007 elements take the scalar kernel, 10 008 the vec4 one.
    for n in [10_007usize, 10_008] {
        let out = dev.full(&[n], f32::NAN).unwrap();
        let ones = dev.full(&[n], 1.0).unwrap();
        for (step, rate) in [(0u32, 0.3f32), (5, 0.3), (5, 0.5)] {
            let s = t(&dev, &[step as f32]);
            let mut p = Program::default();
            let x = p.push(Expr::Load(0));
            let d = p.push(Expr::Dropout {
                x,
                rate,
                seed: 1234,
                step: 1,
            });
            let k = dev
                .build(
                    &MapKernel::over(
                        "dropout",
                        &[n],
                        Epilogue {
                            program: p.clone(),
                            operands: vec![contiguous(&ones, &[n]), contiguous(&s, &[n])],
                            stores: vec![Store {
                                expr: d,
                                buffer: out.buffer().clone(),
                                layout: StridedLayout::contiguous(&[n]),
                            }],
                        },
                    )
                    .into(),
                )
                .unwrap();
            dev.run(&[&k]).unwrap();
            let got = out.to_vec_f32().unwrap();
            let want: Vec<f32> = (0..n as u32)
                .map(|i| reference_dropout(1234, step, i, rate))
                .collect();
            assert_eq!(got, want, "n {n} step {step} rate {rate}");
            let kept = got.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            assert!(
                (kept - (1.0 - rate as f64)).abs() < 0.02,
                "kept fraction {kept}"
            );
        }
    }
    // A rate of 1 keeps nothing and divides by zero: refused.
    let mut p = Program::default();
    let x = p.push(Expr::Load(0));
    let d = p.push(Expr::Dropout {
        x,
        rate: 1.0,
        seed: 1,
        step: 0,
    });
    let one = t(&dev, &[1.0]);
    let e = dev
        .build(
            &MapKernel::over(
                "dropout",
                &[1],
                Epilogue {
                    program: p.clone(),
                    operands: vec![contiguous(&one, &[1])],
                    stores: vec![Store {
                        expr: d,
                        buffer: one.buffer().clone(),
                        layout: StridedLayout::contiguous(&[1]),
                    }],
                },
            )
            .into(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("rate"), "{e}");
}

#[test]
fn elementwise_programs_with_several_results_and_every_access() {
    let dev = device();
    let mut rng = Rng(8);
    // [N, C] rows with per-column parameters: vec4 when C is a multiple of 4,
    // and a transposed (strided) operand that forbids it.
    for (rows, cols) in [(64usize, 128usize), (5, 7), (3, 12)] {
        let shape = [rows, cols];
        let x = rng.vec(rows * cols, -1.0, 1.0);
        let xt_data = rng.vec(rows * cols, -1.0, 1.0);
        let g = rng.vec(cols, 0.5, 1.5);
        let (xt, tt, gt) = (
            Tensor::from_f32(&dev, &x, &shape).unwrap(),
            Tensor::from_f32(&dev, &xt_data, &[cols, rows]).unwrap(),
            t(&dev, &g),
        );
        for transposed in [false, true] {
            let (o1, o2) = (
                dev.full(&shape, f32::NAN).unwrap(),
                dev.full(&shape, f32::NAN).unwrap(),
            );
            let other = if transposed {
                Operand {
                    buffer: tt.buffer().clone(),
                    layout: StridedLayout::contiguous(&[cols, rows])
                        .permuted("t", &[1, 0])
                        .unwrap(),
                }
            } else {
                contiguous(&xt, &shape)
            };
            // o1 = relu(x·g + other), o2 = tanh(x)
            let mut p = Program::default();
            let (lx, lg, lo) = (
                p.push(Expr::Load(0)),
                p.push(Expr::Load(1)),
                p.push(Expr::Load(2)),
            );
            let m = p.push(Expr::Binary(BinaryOp::Mul, lx, lg));
            let s = p.push(Expr::Binary(BinaryOp::Add, m, lo));
            let r = p.push(Expr::Unary(UnaryOp::Relu, s));
            let th = p.push(Expr::Unary(UnaryOp::Tanh, lx));
            let k = dev
                .build(
                    &MapKernel::over(
                        "two",
                        &shape,
                        Epilogue {
                            program: p.clone(),
                            operands: vec![contiguous(&xt, &shape), contiguous(&gt, &shape), other],
                            stores: vec![
                                Store {
                                    expr: r,
                                    buffer: o1.buffer().clone(),
                                    layout: StridedLayout::contiguous(&shape),
                                },
                                Store {
                                    expr: th,
                                    buffer: o2.buffer().clone(),
                                    layout: StridedLayout::contiguous(&shape),
                                },
                            ],
                        },
                    )
                    .into(),
                )
                .unwrap();
            dev.run(&[&k]).unwrap();
            let want1: Vec<f64> = (0..rows * cols)
                .map(|i| {
                    let (r_, c_) = (i / cols, i % cols);
                    let o = if transposed {
                        xt_data[c_ * rows + r_]
                    } else {
                        x[i]
                    };
                    (x[i] as f64 * g[c_] as f64 + o as f64).max(0.0)
                })
                .collect();
            let want2: Vec<f64> = x.iter().map(|&v| (v as f64).tanh()).collect();
            close("relu result", &o1.to_vec_f32().unwrap(), &want1, 1e-6);
            close("tanh result", &o2.to_vec_f32().unwrap(), &want2, 1e-6);
        }
    }
}

#[test]
fn adam_sgd_and_adagrad_steps_follow_their_formulas() {
    // 256 takes the vec4 Adam kernel, 257 the scalar one.
    for n in [257, 256] {
        optimizer_steps(n);
    }
}

/// One step of `rule` from parameter `w0`, gradient `g` and `states`, with
/// the hyperparameter words `hyper`: the parameter and states after it.
fn update(
    dev: &Device,
    rule: UpdateRule,
    hyper: [f32; 8],
    w0: &[f32],
    g: &[f32],
    states: &[&[f32]],
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let (w, gt, h) = (t(dev, w0), t(dev, g), t(dev, &hyper));
    let st: Vec<Tensor> = states.iter().map(|s| t(dev, s)).collect();
    let slot = UpdateSlot {
        n: w0.len(),
        param: w.buffer().clone(),
        grad: gt.buffer().clone(),
        states: st.iter().map(|t| t.buffer().clone()).collect(),
    };
    let k = dev
        .build(
            &UpdateKernel {
                rule,
                slots: vec![slot],
                hyper: h.buffer().clone(),
            }
            .into(),
        )
        .unwrap();
    dev.run(&[&k]).unwrap();
    let states = st.iter().map(|s| s.to_vec_f32().unwrap()).collect();
    (w.to_vec_f32().unwrap(), states)
}

fn optimizer_steps(n: usize) {
    let dev = device();
    let mut rng = Rng(9);
    let w0 = rng.vec(n, -1.0, 1.0);
    let g = rng.vec(n, -0.5, 0.5);
    let m0 = rng.vec(n, -0.1, 0.1);
    let v0 = rng.vec(n, 0.0, 0.01);
    // The reference: the regularised gradient, per element, in f64.
    let gr = |i: usize| g[i] as f64 + 0.01 * w0[i] as f64;
    let each = |f: &dyn Fn(usize) -> f64| -> Vec<f64> { (0..n).map(f).collect() };

    // Adam (Keras form) with L2 and decoupled decay both on, to see each term.
    let hyper = [0.01f32, 1e-7, 0.9, 0.999, 0.001, 0.01, 0.0, 0.0];
    let (w, s) = update(&dev, UpdateRule::Adam, hyper, &w0, &g, &[&m0, &v0]);
    let m = |i: usize| 0.9 * m0[i] as f64 + 0.1 * gr(i);
    let v = |i: usize| 0.999 * v0[i] as f64 + 0.001 * gr(i) * gr(i);
    close("adam m", &s[0], &each(&m), 1e-6);
    close("adam v", &s[1], &each(&v), 1e-6);
    let p = |i: usize| w0[i] as f64;
    let want = each(&|i| p(i) - 0.001 * p(i) - 0.01 * m(i) / (v(i).sqrt() + 1e-7));
    close("adam w", &w, &want, 1e-5);

    // SGD with momentum, weight decay and Nesterov.
    let hyper = [0.1, 0.9, 0.01, 1.0, 0.0, 0.0, 0.0, 0.0];
    let (w, s) = update(&dev, UpdateRule::Sgd, hyper, &w0, &g, &[&m0]);
    let b = |i: usize| 0.9 * m0[i] as f64 + gr(i);
    close("sgd buffer", &s[0], &each(&b), 1e-6);
    close(
        "sgd w",
        &w,
        &each(&|i| p(i) - 0.1 * (gr(i) + 0.9 * b(i))),
        1e-6,
    );

    // SGD with dampening 0.25, no Nesterov.
    let hyper = [0.1, 0.9, 0.01, 0.0, 0.25, 0.0, 0.0, 0.0];
    let (w, s) = update(&dev, UpdateRule::Sgd, hyper, &w0, &g, &[&m0]);
    let b = |i: usize| 0.9 * m0[i] as f64 + 0.75 * gr(i);
    close("damped sgd buffer", &s[0], &each(&b), 1e-6);
    close("damped sgd w", &w, &each(&|i| p(i) - 0.1 * b(i)), 1e-6);

    // Adagrad with weight decay.
    let hyper = [0.05, 1e-6, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0];
    let (w, s) = update(&dev, UpdateRule::Adagrad, hyper, &w0, &g, &[&v0]);
    let sum = |i: usize| v0[i] as f64 + gr(i) * gr(i);
    close("adagrad sum", &s[0], &each(&sum), 1e-6);
    let want = each(&|i| p(i) - 0.05 * gr(i) / (sum(i).sqrt() + 1e-6));
    close("adagrad w", &w, &want, 1e-5);

    // A missing state buffer is an error, not a fault.
    let (w, gt, h) = (t(&dev, &w0), t(&dev, &g), t(&dev, &hyper));
    let slot = UpdateSlot {
        n,
        param: w.buffer().clone(),
        grad: gt.buffer().clone(),
        states: vec![w.buffer().clone()],
    };
    let e = dev
        .build(
            &UpdateKernel {
                rule: UpdateRule::Adam,
                slots: vec![slot],
                hyper: h.buffer().clone(),
            }
            .into(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("2 state tensors"), "{e}");
}

#[test]
fn grouped_adam_updates_each_parameter_as_alone() {
    // Sizes with a remainder (scalar kernel) and all multiples of 4 (vec4).
    grouped_adam([7, 33, 1]);
    grouped_adam([8, 36, 4]);
}

fn grouped_adam(sizes: [usize; 3]) {
    let dev = device();
    let mut rng = Rng(21);
    let hyper = t(&dev, &[0.01, 1e-7, 0.9, 0.999, 0.0, 0.0, 0.0, 0.0]);
    let w0: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n, -1.0, 1.0)).collect();
    let g: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n, -0.5, 0.5)).collect();
    let (w, gt, m, v): (Vec<Tensor>, Vec<Tensor>, Vec<Tensor>, Vec<Tensor>) = (
        w0.iter().map(|x| t(&dev, x)).collect(),
        g.iter().map(|x| t(&dev, x)).collect(),
        sizes
            .iter()
            .map(|&n| dev.full(&[n], 0.0).unwrap())
            .collect(),
        sizes
            .iter()
            .map(|&n| dev.full(&[n], 0.0).unwrap())
            .collect(),
    );
    let slots: Vec<UpdateSlot> = (0..3)
        .map(|k| UpdateSlot {
            n: sizes[k],
            param: w[k].buffer().clone(),
            grad: gt[k].buffer().clone(),
            states: vec![m[k].buffer().clone(), v[k].buffer().clone()],
        })
        .collect();
    let k = dev
        .build(
            &UpdateKernel {
                rule: UpdateRule::Adam,
                slots: slots.to_vec(),
                hyper: hyper.buffer().clone(),
            }
            .into(),
        )
        .unwrap();
    dev.run(&[&k]).unwrap();
    for i in 0..3 {
        let want: Vec<f64> = w0[i]
            .iter()
            .zip(&g[i])
            .map(|(&p, &g)| {
                let (mm, vv) = (0.1 * g as f64, 0.001 * (g as f64).powi(2));
                p as f64 - 0.01 * mm / (vv.sqrt() + 1e-7)
            })
            .collect();
        close(
            &format!("slot {i}"),
            &w[i].to_vec_f32().unwrap(),
            &want,
            1e-5,
        );
    }
    assert!(dev
        .build(
            &UpdateKernel {
                rule: UpdateRule::Adam,
                slots: vec![],
                hyper: hyper.buffer().clone()
            }
            .into()
        )
        .is_err());
}

#[test]
fn matmul_with_dropout_in_its_epilogue() {
    let dev = device();
    let mut rng = Rng(31);
    let step = t(&dev, &[7.0]);
    for (m, k, n, ta, tb, variant) in [
        (9usize, 12usize, 8usize, false, false, MatmulVariant::Vec4),
        (9, 7, 13, false, false, MatmulVariant::Blocked),
        (16, 8, 12, false, true, MatmulVariant::Vec4),
        (12, 8, 16, true, false, MatmulVariant::Vec4),
        (5, 6, 3, false, false, MatmulVariant::Small),
        (33, 9, 65, true, true, MatmulVariant::Tiled),
    ] {
        let a = rng.vec(m * k, -1.0, 1.0);
        let b = rng.vec(k * n, -1.0, 1.0);
        let (at, bt) = (t(&dev, &a), t(&dev, &b));
        let c = dev.full(&[m * n], f32::NAN).unwrap();
        let spec = GemmSpec {
            m,
            n,
            k,
            shape: vec![m, n],
            a: GemmLoad {
                buffer: at.buffer().clone(),
                offset: 0,
                row_stride: if ta { m } else { k },
                batch_stride: 0,
                transposed: ta,
            },
            b: GemmLoad {
                buffer: bt.buffer().clone(),
                offset: 0,
                row_stride: if tb { k } else { n },
                batch_stride: 0,
                transposed: tb,
            },
            variant,
        };
        let mut p = Program::default();
        let prod = p.push(Expr::Anchor);
        let d = p.push(Expr::Dropout {
            x: prod,
            rate: 0.25,
            seed: 5,
            step: 0,
        });
        let kern = dev
            .build(
                &GemmKernel {
                    label: "matmul+dropout".into(),
                    spec: spec.clone(),
                    epilogue: Epilogue {
                        program: p.clone(),
                        operands: vec![contiguous(&step, &[m, n])],
                        stores: vec![Store {
                            expr: d,
                            buffer: c.buffer().clone(),
                            layout: StridedLayout::contiguous(&[m, n]),
                        }],
                    },
                }
                .into(),
            )
            .unwrap();
        dev.run(&[&kern]).unwrap();
        let want: Vec<f64> = (0..m * n)
            .map(|i| {
                let (r, col) = (i / n, i % n);
                let dot: f64 = (0..k)
                    .map(|p| {
                        let av = if ta { a[p * m + r] } else { a[r * k + p] };
                        let bv = if tb { b[col * k + p] } else { b[p * n + col] };
                        av as f64 * bv as f64
                    })
                    .sum();
                dot * reference_dropout(5, 7, i as u32, 0.25) as f64
            })
            .collect();
        close(
            &format!("{variant:?} {m}x{k}x{n} {ta} {tb}"),
            &c.to_vec_f32().unwrap(),
            &want,
            1e-5,
        );
    }
}

#[test]
fn channel_sums_store_every_element_on_the_way() {
    // A convolution's bias gradient: Σ over (N, H, W) of relu'·g, storing
    // relu'·g itself for the weight and input gradients. 65 536 elements
    // per output is past what lavapipe lets one invocation loop over, so
    // the kernel must share each output among a workgroup.
    let dev = device();
    for shape in [
        [3usize, 5, 7, 9],
        [64, 32, 32, 32],
        [16, 32, 64, 64],
        [64, 64, 16, 16],
    ] {
        let n: usize = shape.iter().product();
        let mut rng = Rng(11);
        let (x, g) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let xt = Tensor::from_f32(&dev, &x, &shape).unwrap();
        let gt = Tensor::from_f32(&dev, &g, &shape).unwrap();
        let stored = dev.full(&[n], f32::NAN).unwrap();
        let sums = dev.full(&[shape[1]], f32::NAN).unwrap();
        let mut p = Program::default();
        let (lx, lg) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
        let step = p.push(Expr::Unary(UnaryOp::Step, lx));
        let prod = p.push(Expr::Binary(BinaryOp::Mul, lg, step));
        let k = dev
            .build(
                &ReduceKernel {
                    label: "bias_grad".into(),
                    shape: shape.to_vec(),
                    axes: vec![0, 2, 3],
                    reductions: vec![Reduction {
                        kind: ReduceKind::Sum,
                        expr: prod,
                        output: ReduceOutput::Write {
                            buffer: sums.buffer().clone(),
                            offset: 0,
                        },
                    }],
                    epilogue: Epilogue {
                        program: p.clone(),
                        operands: vec![contiguous(&xt, &shape), contiguous(&gt, &shape)],
                        stores: vec![Store {
                            expr: prod,
                            buffer: stored.buffer().clone(),
                            layout: StridedLayout::contiguous(&shape),
                        }],
                    },
                }
                .into(),
            )
            .unwrap();
        dev.run(&[&k]).unwrap();
        let want: Vec<f64> = x
            .iter()
            .zip(&g)
            .map(|(&a, &b)| if a > 0.0 { b as f64 } else { 0.0 })
            .collect();
        close(
            &format!("{shape:?} stored"),
            &stored.to_vec_f32().unwrap(),
            &want,
            0.0,
        );
        let plane = shape[2] * shape[3];
        let sum: Vec<f64> = (0..shape[1])
            .map(|c| {
                (0..n)
                    .filter(|i| (i / plane) % shape[1] == c)
                    .map(|i| want[i])
                    .sum()
            })
            .collect();
        close(
            &format!("{shape:?} sums"),
            &sums.to_vec_f32().unwrap(),
            &sum,
            1e-4,
        );
    }
}

/// One kernel can reduce only so many elements per output on an adapter
/// that stops long loops (lavapipe): there it is an error, never a
/// truncated sum; elsewhere the sum is exact.
#[test]
fn a_reduction_too_long_for_one_kernel_is_an_error_not_a_truncation() {
    let dev = device();
    let n = MAX_LOOP_TRIPS * 64 + 1;
    let x = dev.full(&[n], 1.0).unwrap();
    let out = dev.full(&[1], f32::NAN).unwrap();
    let mut p = Program::default();
    let l = p.push(Expr::Load(0));
    let kernel = dev.build(
        &ReduceKernel {
            label: "sum".into(),
            shape: vec![n],
            axes: vec![0],
            reductions: vec![Reduction {
                kind: ReduceKind::Sum,
                expr: l,
                output: ReduceOutput::Write {
                    buffer: out.buffer().clone(),
                    offset: 0,
                },
            }],
            epilogue: Epilogue {
                program: p.clone(),
                operands: vec![contiguous(&x, &[n])],
                stores: vec![],
            },
        }
        .into(),
    );
    match dev.kernel_profile().loop_trip_limit {
        Some(_) => {
            let e = kernel.unwrap_err();
            assert!(
                e.to_string().contains("loop iterations per invocation"),
                "{e}"
            );
        }
        None => {
            dev.run(&[&kernel.unwrap()]).unwrap();
            // Every partial sum of ones below 2^24 is exact in f32.
            assert_eq!(out.to_vec_f32().unwrap(), vec![n as f32]);
        }
    }
}
