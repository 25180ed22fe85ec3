//! Every op's vector-Jacobian product against central finite differences in
//! f64. The differences are taken on an independent f64 interpreter of the
//! graph (below), so they check both kiln's autodiff and its kernels.

use std::collections::HashMap;

use kiln_backend::{contiguous_strides, BinaryOp, Device, ReduceOp, UnaryOp};
use kiln_graph::{Graph, NodeId, Op, ParamStore, Plan};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Values in ±[lo, hi] (never near zero), rounded to f32.
    fn vec(&mut self, n: usize, lo: f64, hi: f64, positive: bool) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = lo + (hi - lo) * self.next();
                let s = if positive || self.next() < 0.5 {
                    1.0
                } else {
                    -1.0
                };
                (s * v) as f32
            })
            .collect()
    }
}

fn coords(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = i % shape[d];
        i /= shape[d];
    }
    c
}

fn index(c: &[usize], shape: &[usize]) -> usize {
    c.iter()
        .zip(contiguous_strides(shape))
        .map(|(a, s)| a * s)
        .sum()
}

/// Reads `data` of `shape` at output coordinate `c` of a broadcast.
fn bcast_read(data: &[f64], shape: &[usize], c: &[usize]) -> f64 {
    let lead = c.len() - shape.len();
    let cc: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &s)| if s == 1 { 0 } else { c[lead + d] })
        .collect();
    data[index(&cc, shape)]
}

/// Evaluates every node in f64.
fn eval(g: &Graph, feeds: &HashMap<String, Vec<f64>>) -> Vec<Vec<f64>> {
    let mut v: Vec<Vec<f64>> = Vec::new();
    for node in g.nodes() {
        let x = |i: usize| &v[node.inputs[i].0];
        let xs = |i: usize| g.shape(node.inputs[i]);
        let n = node.numel();
        let out: Vec<f64> = match &node.op {
            Op::Input(name) | Op::Param { name, .. } => feeds[name].clone(),
            Op::Const(c) => c.iter().map(|&a| a as f64).collect(),
            Op::Unary(op) => x(0).iter().map(|&a| op.reference(a)).collect(),
            Op::Binary(op) => (0..n)
                .map(|i| {
                    let c = coords(i, &node.shape);
                    op.reference(bcast_read(x(0), xs(0), &c), bcast_read(x(1), xs(1), &c))
                })
                .collect(),
            Op::Select => (0..n)
                .map(|i| {
                    let c = coords(i, &node.shape);
                    if bcast_read(x(0), xs(0), &c) != 0.0 {
                        bcast_read(x(1), xs(1), &c)
                    } else {
                        bcast_read(x(2), xs(2), &c)
                    }
                })
                .collect(),
            Op::Reduce { op, axes } => {
                let s = xs(0);
                let kept: Vec<usize> = s
                    .iter()
                    .enumerate()
                    .map(|(d, &k)| if axes.contains(&d) { 1 } else { k })
                    .collect();
                let init = match op {
                    ReduceOp::Max => f64::NEG_INFINITY,
                    ReduceOp::Min => f64::INFINITY,
                    _ => 0.0,
                };
                let mut acc = vec![init; n];
                for (i, &a) in x(0).iter().enumerate() {
                    let mut c = coords(i, s);
                    for &ax in axes {
                        c[ax] = 0;
                    }
                    let o = index(&c, &kept);
                    acc[o] = match op {
                        ReduceOp::Max => acc[o].max(a),
                        ReduceOp::Min => acc[o].min(a),
                        _ => acc[o] + a,
                    };
                }
                if *op == ReduceOp::Mean {
                    let count: usize = axes.iter().map(|&a| s[a]).product();
                    acc.iter_mut().for_each(|a| *a /= count as f64);
                }
                acc
            }
            Op::Softmax { axis, log } => {
                let s = &node.shape;
                let (len, inner) = (s[*axis], s[axis + 1..].iter().product::<usize>());
                let mut y = vec![0.0; n];
                for o in 0..n / (len * inner) {
                    for i in 0..inner {
                        let at = |j: usize| o * len * inner + j * inner + i;
                        let m = (0..len)
                            .map(|j| x(0)[at(j)])
                            .fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = (0..len).map(|j| (x(0)[at(j)] - m).exp()).sum();
                        for j in 0..len {
                            y[at(j)] = if *log {
                                x(0)[at(j)] - m - z.ln()
                            } else {
                                (x(0)[at(j)] - m).exp() / z
                            };
                        }
                    }
                }
                y
            }
            Op::MatMul { trans_a, trans_b } => {
                let (sa, sb) = (xs(0), xs(1));
                let r = node.shape.len();
                let (m, nn) = (node.shape[r - 2], node.shape[r - 1]);
                let k = if *trans_a {
                    sa[sa.len() - 2]
                } else {
                    sa[sa.len() - 1]
                };
                let batch = n / (m * nn);
                let (bsa, bsb) = (
                    if sa.len() == 2 {
                        0
                    } else {
                        sa[sa.len() - 2] * sa[sa.len() - 1]
                    },
                    if sb.len() == 2 {
                        0
                    } else {
                        sb[sb.len() - 2] * sb[sb.len() - 1]
                    },
                );
                let (lda, ldb) = (sa[sa.len() - 1], sb[sb.len() - 1]);
                let mut y = vec![0.0; n];
                for b in 0..batch {
                    for i in 0..m {
                        for j in 0..nn {
                            y[b * m * nn + i * nn + j] = (0..k)
                                .map(|p| {
                                    let a = if *trans_a {
                                        x(0)[b * bsa + p * lda + i]
                                    } else {
                                        x(0)[b * bsa + i * lda + p]
                                    };
                                    let bb = if *trans_b {
                                        x(1)[b * bsb + j * ldb + p]
                                    } else {
                                        x(1)[b * bsb + p * ldb + j]
                                    };
                                    a * bb
                                })
                                .sum();
                        }
                    }
                }
                y
            }
            Op::Reshape | Op::Assign => x(node.inputs.len() - 1).clone(),
            Op::Permute(perm) => (0..n)
                .map(|i| {
                    let c = coords(i, &node.shape);
                    let mut src = vec![0; c.len()];
                    for (d, &p) in perm.iter().enumerate() {
                        src[p] = c[d];
                    }
                    x(0)[index(&src, xs(0))]
                })
                .collect(),
            Op::Expand => (0..n)
                .map(|i| bcast_read(x(0), xs(0), &coords(i, &node.shape)))
                .collect(),
            Op::Slice { axis, start, .. } => (0..n)
                .map(|i| {
                    let mut c = coords(i, &node.shape);
                    c[*axis] += start;
                    x(0)[index(&c, xs(0))]
                })
                .collect(),
            Op::Concat { axis } => (0..n)
                .map(|i| {
                    let mut c = coords(i, &node.shape);
                    let mut k = 0;
                    while c[*axis] >= xs(k)[*axis] {
                        c[*axis] -= xs(k)[*axis];
                        k += 1;
                    }
                    x(k)[index(&c, xs(k))]
                })
                .collect(),
        };
        v.push(out);
    }
    v
}

/// Builds `f` on fresh inputs of `shapes`, forms L = Σ f(x)·r with a random
/// `r`, and compares kiln's gradients with central differences of the f64
/// interpreter.
fn check(
    name: &str,
    shapes: &[&[usize]],
    positive: bool,
    f: impl Fn(&mut Graph, &[NodeId]) -> NodeId,
) {
    let device = Device::auto().expect("an adapter");
    let params = ParamStore::new(&device);
    let mut rng = Rng(name.bytes().fold(7, |h, b| h * 31 + b as u64));
    let mut g = Graph::new();
    let names: Vec<String> = (0..shapes.len()).map(|i| format!("x{i}")).collect();
    let xs: Vec<NodeId> = shapes
        .iter()
        .zip(&names)
        .map(|(s, n)| g.input(n, s))
        .collect();
    let y = f(&mut g, &xs);
    let r_vals = rng.vec(g.node(y).numel(), 0.5, 1.5, false);
    let y_shape = g.shape(y).to_vec();
    let r = g.constant(&r_vals, &y_shape).unwrap();
    let prod = g.mul(y, r).unwrap();
    let loss = g.sum_all(prod).unwrap();
    let grads = g.grad(loss, &xs).unwrap();
    let mut plan = Plan::compile(&device, &g, &params, &grads).unwrap();

    let values: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| rng.vec(s.iter().product(), 0.3, 1.5, positive))
        .collect();
    let feeds: Vec<(&str, &[f32])> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(Vec::as_slice))
        .collect();
    let got = plan.run(&feeds).unwrap();

    let mut f64_feeds: HashMap<String, Vec<f64>> = names
        .iter()
        .cloned()
        .zip(values.iter().map(|v| v.iter().map(|&a| a as f64).collect()))
        .collect();
    let h = 1e-6;
    for (k, input) in names.iter().enumerate() {
        for i in 0..values[k].len() {
            let base = f64_feeds[input][i];
            f64_feeds.get_mut(input).unwrap()[i] = base + h;
            let up = eval(&g, &f64_feeds)[loss.0][0];
            f64_feeds.get_mut(input).unwrap()[i] = base - h;
            let down = eval(&g, &f64_feeds)[loss.0][0];
            f64_feeds.get_mut(input).unwrap()[i] = base;
            let fd = (up - down) / (2.0 * h);
            let kiln = got[k][i] as f64;
            assert!(
                (kiln - fd).abs() <= 1e-3 * fd.abs() + 1e-3,
                "{name}: d/d{input}[{i}] kiln {kiln} vs finite difference {fd}"
            );
        }
    }
}

#[test]
fn unary_ops() {
    let ops = [
        (UnaryOp::Identity, false),
        (UnaryOp::Neg, false),
        (UnaryOp::Exp, false),
        (UnaryOp::Log, true),
        (UnaryOp::Sqrt, true),
        (UnaryOp::Abs, false),
        (UnaryOp::Relu, false),
        (UnaryOp::LeakyRelu(0.1), false),
        (UnaryOp::Sigmoid, false),
        (UnaryOp::Tanh, false),
        (UnaryOp::Recip, true),
        (UnaryOp::Square, false),
        (UnaryOp::Scale(-1.5), false),
        (UnaryOp::AddScalar(2.0), false),
        (UnaryOp::PowScalar(3.0), false),
        (UnaryOp::PowScalar(0.5), true),
        (UnaryOp::Rsqrt, true),
    ];
    for (op, positive) in ops {
        check(&format!("{op:?}"), &[&[3, 7]], positive, |g, x| {
            g.unary(op, x[0]).unwrap()
        });
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Pow,
    ] {
        let positive = op == BinaryOp::Pow || op == BinaryOp::Div;
        check(
            &format!("{op:?}"),
            &[&[3, 1, 5], &[4, 1]],
            positive,
            |g, x| g.binary(op, x[0], x[1]).unwrap(),
        );
        check(
            &format!("{op:?} same"),
            &[&[2, 5], &[2, 5]],
            positive,
            |g, x| g.binary(op, x[0], x[1]).unwrap(),
        );
    }
}

#[test]
fn select_routes_gradients() {
    check("select", &[&[4, 5], &[5]], false, |g, x| {
        let zero = g.scalar(0.0);
        let cond = g.binary(BinaryOp::Gt, x[0], zero).unwrap();
        g.select(cond, x[0], x[1]).unwrap()
    });
}

#[test]
fn reductions() {
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
        for (axes, keep) in [
            (vec![0i64], false),
            (vec![1, 2], true),
            (vec![-1], false),
            (vec![0, 1, 2], false),
        ] {
            check(&format!("{op:?} {axes:?}"), &[&[3, 4, 5]], false, |g, x| {
                g.reduce(op, x[0], &axes, keep).unwrap()
            });
        }
    }
}

#[test]
fn softmax_and_log_softmax() {
    for log in [false, true] {
        for axis in [0i64, 1, -1] {
            check(
                &format!("softmax {axis} {log}"),
                &[&[3, 4, 5]],
                false,
                |g, x| g.softmax(x[0], axis, log).unwrap(),
            );
        }
    }
}

#[test]
fn matmul_every_transpose_and_batching() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let sa: &[usize] = if ta { &[5, 3] } else { &[3, 5] };
        let sb: &[usize] = if tb { &[4, 5] } else { &[5, 4] };
        check(&format!("matmul {ta} {tb}"), &[sa, sb], false, |g, x| {
            g.matmul(x[0], x[1], ta, tb).unwrap()
        });
    }
    check(
        "matmul batched",
        &[&[2, 3, 5], &[2, 5, 4]],
        false,
        |g, x| g.matmul(x[0], x[1], false, false).unwrap(),
    );
    check(
        "matmul shared weight",
        &[&[2, 3, 5], &[5, 4]],
        false,
        |g, x| g.matmul(x[0], x[1], false, false).unwrap(),
    );
}

#[test]
fn shape_ops() {
    check("reshape", &[&[3, 4]], false, |g, x| {
        g.reshape(x[0], &[2, -1, 3]).unwrap()
    });
    check("flatten", &[&[2, 3, 4]], false, |g, x| {
        g.flatten(x[0], 1).unwrap()
    });
    check("permute", &[&[2, 3, 4]], false, |g, x| {
        g.permute(x[0], &[2, 0, 1]).unwrap()
    });
    check("expand", &[&[3, 1]], false, |g, x| {
        g.expand(x[0], &[2, 3, 4]).unwrap()
    });
    check("slice", &[&[3, 7]], false, |g, x| {
        g.slice(x[0], 1, 2, 5).unwrap()
    });
    check("concat", &[&[2, 3], &[2, 4], &[2, 1]], false, |g, x| {
        g.concat(&[x[0], x[1], x[2]], 1).unwrap()
    });
    check("concat axis 0", &[&[2, 3], &[1, 3]], false, |g, x| {
        g.concat(&[x[0], x[1]], 0).unwrap()
    });
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let device = Device::auto().expect("an adapter");
    let mut params = ParamStore::new(&device);
    params.insert("w", &[1.0, 2.0], &[2]).unwrap();
    let mut g = Graph::new();
    let w = g.frozen_param(&params, "w").unwrap();
    let x = g.input("x", &[2]);
    let y = g.mul(w, x).unwrap();
    let l = g.sum_all(y).unwrap();
    let before = g.nodes().len();
    assert!(
        g.grad(l, &[w]).is_err(),
        "asking for a frozen parameter's gradient is an error"
    );
    let gx = g.grad(l, &[x]).unwrap();
    // d/dx of Σ w·x is w: no node computes anything for w's side.
    let added = &g.nodes()[before..];
    assert!(
        added.iter().all(|n| n.inputs.iter().all(|i| i.0 != x.0)),
        "the backward of w·x w.r.t. x never reads x"
    );
    let mut plan = Plan::compile(&device, &g, &params, &[gx[0]]).unwrap();
    assert_eq!(plan.run(&[("x", &[5.0, 6.0])]).unwrap()[0], vec![1.0, 2.0]);
}

#[test]
fn matmul_broadcasting_and_vectors() {
    check(
        "matmul batch broadcast",
        &[&[3, 1, 2, 4], &[1, 2, 4, 2]],
        false,
        |g, x| g.matmul(x[0], x[1], false, false).unwrap(),
    );
    check("matmul vector right", &[&[2, 3, 4], &[4]], false, |g, x| {
        g.matmul(x[0], x[1], false, false).unwrap()
    });
    check("matmul vector left", &[&[4], &[4, 3]], false, |g, x| {
        g.matmul(x[0], x[1], false, false).unwrap()
    });
}
