//! Every op's vector-Jacobian product against central finite differences in
//! f64. The differences are taken on an independent f64 interpreter of the
//! graph (below), so they check both kiln's autodiff and its kernels; every
//! gradient graph runs with fusion on and off.

use std::collections::HashMap;

use kiln_backend::ops::random::reference_dropout;
use kiln_backend::{contiguous_strides, BinaryOp, Device, ReduceOp, UnaryOp};
use kiln_graph::{ConvPass, Graph, NodeId, Op, ParamStore, Plan, PlanOptions, PoolKind, Window2d};

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

/// Mean and biased variance over `axes`, laid out over the kept axes.
fn moments(x: &[f64], shape: &[usize], axes: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &k)| if axes.contains(&d) { 1 } else { k })
        .collect();
    let slot = |i: usize| {
        let mut c = coords(i, shape);
        for &a in axes {
            c[a] = 0;
        }
        index(&c, &kept)
    };
    let outs: usize = kept.iter().product();
    let m = (x.len() / outs) as f64;
    let mut mean = vec![0.0; outs];
    for (i, &a) in x.iter().enumerate() {
        mean[slot(i)] += a / m;
    }
    let mut var = vec![0.0; outs];
    for (i, &a) in x.iter().enumerate() {
        var[slot(i)] += (a - mean[slot(i)]).powi(2) / m;
    }
    (mean, var)
}

/// The input pixel tap `(ky, kx)` of output pixel `(oy, ox)` reads, if it
/// lies inside an `h×w` input.
fn tap(
    window: &Window2d,
    [h, w]: [usize; 2],
    [oy, ox]: [usize; 2],
    [ky, kx]: [usize; 2],
) -> Option<usize> {
    let hh = (oy * window.stride[0] + ky * window.dilation[0]) as isize - window.pad[0] as isize;
    let ww = (ox * window.stride[1] + kx * window.dilation[1]) as isize - window.pad[1] as isize;
    (hh >= 0 && ww >= 0 && (hh as usize) < h && (ww as usize) < w)
        .then(|| hh as usize * w + ww as usize)
}

/// A direct 2-D convolution, NCHW by [Cout, Cin, KH, KW].
fn conv2d(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    window: &Window2d,
    ys: &[usize],
) -> Vec<f64> {
    let (plane, kplane) = (xs[2] * xs[3], ws[2] * ws[3]);
    let mut y = vec![0.0; ys.iter().product()];
    for (i, out) in y.iter_mut().enumerate() {
        let c = coords(i, ys);
        for ci in 0..xs[1] {
            for ky in 0..ws[2] {
                for kx in 0..ws[3] {
                    if let Some(p) = tap(window, [xs[2], xs[3]], [c[2], c[3]], [ky, kx]) {
                        *out += x[(c[0] * xs[1] + ci) * plane + p]
                            * w[(c[1] * ws[1] + ci) * kplane + ky * ws[3] + kx];
                    }
                }
            }
        }
    }
    y
}

/// Direct pooling: the first maximum and its plane index (values, then
/// indices), or the mean over the taps inside the padded (or the bare)
/// input.
fn pool2d(x: &[f64], xs: &[usize], kind: PoolKind, window: &Window2d, ys: &[usize]) -> Vec<f64> {
    let plane = xs[2] * xs[3];
    let mut values = Vec::new();
    let mut indices = Vec::new();
    for i in 0..ys.iter().product() {
        let c = coords(i, ys);
        let base = (c[0] * xs[1] + c[1]) * plane;
        let mut taps = Vec::new();
        let mut padded = 0;
        for ky in 0..window.kernel[0] {
            for kx in 0..window.kernel[1] {
                let hh = c[2] * window.stride[0] + ky * window.dilation[0];
                let ww = c[3] * window.stride[1] + kx * window.dilation[1];
                if hh < xs[2] + window.pad[0] + window.pad[2]
                    && ww < xs[3] + window.pad[1] + window.pad[3]
                {
                    padded += 1;
                }
                taps.extend(tap(window, [xs[2], xs[3]], [c[2], c[3]], [ky, kx]));
            }
        }
        match kind {
            PoolKind::Max => {
                let best = taps
                    .iter()
                    .copied()
                    .reduce(|a, b| if x[base + b] > x[base + a] { b } else { a })
                    .expect("every window holds a tap");
                values.push(x[base + best]);
                indices.push(best as f64);
            }
            PoolKind::Average { count_include_pad } => {
                let d = if count_include_pad {
                    padded
                } else {
                    taps.len()
                };
                values.push(taps.iter().map(|&p| x[base + p]).sum::<f64>() / d as f64);
            }
        }
    }
    values.extend(indices);
    values
}

/// Evaluates the nodes `0..=last` (the forward graph) in f64.
fn eval(g: &Graph, feeds: &HashMap<String, Vec<f64>>, last: usize) -> Vec<Vec<f64>> {
    let mut v: Vec<Vec<f64>> = Vec::new();
    for node in &g.nodes()[..=last] {
        let x = |i: usize| &v[node.inputs[i].index()];
        let xs = |i: usize| g.shape(node.inputs[i]);
        let n = node.numel();
        let out: Vec<f64> = match &node.op {
            Op::Input(name) => feeds[name].clone(),
            Op::Param { param, .. } => feeds[param.name()].clone(),
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
            Op::Dropout { rate, seed } => (0..n)
                .map(|i| {
                    let mask = reference_dropout(*seed, x(1)[0] as u32, i as u32, *rate);
                    x(0)[i] * mask as f64
                })
                .collect(),
            Op::Moments { axes } => {
                let (mean, var) = moments(x(0), xs(0), axes);
                mean.into_iter().chain(var).collect()
            }
            Op::Output(k) => {
                let both = x(0);
                let half = both.len() / 2;
                both[k * half..(k + 1) * half].to_vec()
            }
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
            Op::Conv2d {
                pass: ConvPass::Forward,
                window,
                ..
            } => conv2d(x(0), xs(0), x(1), xs(1), window, &node.shape),
            Op::Pool2d { kind, window, .. } => {
                // Max pooling's two results side by side, as Output reads them.
                let out = if node.results.is_empty() {
                    &node.shape
                } else {
                    &node.results[0]
                };
                pool2d(x(0), xs(0), *kind, window, out)
            }
            other => panic!("the f64 interpreter has no forward rule for {other:?}"),
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
    let mut rng = Rng(name
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
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

    let values: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| rng.vec(s.iter().product(), 0.3, 1.5, positive))
        .collect();
    let feeds: Vec<(&str, &[f32])> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(Vec::as_slice))
        .collect();
    let run = |fusion: bool| {
        Plan::compile_with(&device, &g, &grads, PlanOptions { fusion })
            .unwrap()
            .run(&feeds)
            .unwrap()
    };
    let (got, unfused) = (run(true), run(false));
    for (k, input) in names.iter().enumerate() {
        for (i, (&a, &b)) in got[k].iter().zip(&unfused[k]).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "{name}: d/d{input}[{i}] fused {a} vs unfused {b}"
            );
        }
    }

    let mut f64_feeds: HashMap<String, Vec<f64>> = names
        .iter()
        .cloned()
        .zip(values.iter().map(|v| v.iter().map(|&a| a as f64).collect()))
        .collect();
    let h = 1e-6;
    for (k, input) in names.iter().enumerate() {
        let fd: Vec<f64> = (0..values[k].len())
            .map(|i| {
                let base = f64_feeds[input][i];
                f64_feeds.get_mut(input).unwrap()[i] = base + h;
                let up = eval(&g, &f64_feeds, loss.index())[loss.index()][0];
                f64_feeds.get_mut(input).unwrap()[i] = base - h;
                let down = eval(&g, &f64_feeds, loss.index())[loss.index()][0];
                f64_feeds.get_mut(input).unwrap()[i] = base;
                (up - down) / (2.0 * h)
            })
            .collect();
        assert_matches_finite_differences(&format!("{name}: d/d{input}"), &got[k], &fd);
    }
}

/// kiln's gradient against central differences of the f64 interpreter,
/// element by element, within 5e-5 of the element's size plus 2e-6 of the
/// largest element's (float32's rounding of the sums behind it, about 16
/// ulps); both pass 2.5 times tighter under either kernel profile. The
/// differences are taken in f64 with step 1e-6, so their own error is near
/// 1e-10 and what is left is kiln's float32.
fn assert_matches_finite_differences(what: &str, kiln: &[f32], fd: &[f64]) {
    assert_eq!(kiln.len(), fd.len(), "{what}: length");
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&k, &f)) in kiln.iter().zip(fd).enumerate() {
        let k = k as f64;
        assert!(
            (k - f).abs() <= 5e-5 * f.abs() + 2e-6 * scale,
            "{what}[{i}]: kiln {k} vs finite difference {f} (largest {scale:e})"
        );
    }
}

#[test]
fn unary_ops() {
    // Piecewise-constant ops pass no gradient, and their finite difference
    // is a jump wherever a step straddles one.
    let ops = UnaryOp::EXAMPLES
        .iter()
        .filter(|op| !op.piecewise_constant());
    for &op in ops {
        let positive = op.sample_range().0 > 0.0;
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
    // Several slices of one tensor: disjoint with gaps, overlapping, and
    // along another axis, their gradients joined or summed.
    check("slices of one tensor", &[&[4, 7]], false, |g, x| {
        let a = g.slice(x[0], 1, 0, 2).unwrap();
        let b = g.slice(x[0], 1, 3, 6).unwrap();
        let d = g.slice(x[0], 1, 1, 4).unwrap();
        let d = g.unary(UnaryOp::Square, d).unwrap();
        let y = g.concat(&[a, b, d], 1).unwrap();
        let c = g.slice(x[0], 0, 1, 3).unwrap();
        let c = g.sum(c, &[0, 1], true).unwrap();
        g.add(y, c).unwrap()
    });
    check("gate slices", &[&[3, 8]], false, |g, x| {
        let parts: Vec<NodeId> = (0..4)
            .map(|k| {
                let s = g.slice(x[0], 1, 2 * k, 2 * k + 2).unwrap();
                g.unary(
                    if k == 2 {
                        UnaryOp::Tanh
                    } else {
                        UnaryOp::Sigmoid
                    },
                    s,
                )
                .unwrap()
            })
            .collect();
        let ig = g.mul(parts[0], parts[2]).unwrap();
        let fo = g.mul(parts[1], parts[3]).unwrap();
        g.add(ig, fo).unwrap()
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
        added.iter().all(|n| n.inputs.iter().all(|&i| i != x)),
        "the backward of w·x w.r.t. x never reads x"
    );
    let mut plan = Plan::compile(&device, &g, &[gx[0]]).unwrap();
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

#[test]
fn dense_layers_with_each_activation() {
    for act in [
        None,
        Some(UnaryOp::Relu),
        Some(UnaryOp::Sigmoid),
        Some(UnaryOp::Tanh),
    ] {
        check(
            &format!("dense {act:?}"),
            &[&[5, 7], &[7, 3], &[3]],
            false,
            |g, x| {
                let z = g.matmul(x[0], x[1], false, false).unwrap();
                let z = g.add(z, x[2]).unwrap();
                match act {
                    Some(a) => g.unary(a, z).unwrap(),
                    None => z,
                }
            },
        );
    }
    check(
        "dense transposed weight",
        &[&[5, 7], &[3, 7]],
        false,
        |g, x| {
            let z = g.matmul(x[0], x[1], false, true).unwrap();
            g.unary(UnaryOp::Tanh, z).unwrap()
        },
    );
}

#[test]
fn batch_norm_training_and_inference() {
    // Features ([N, F], Keras) and images ([N, C, H, W], PyTorch).
    for (shape, axes, eps) in [
        (&[6usize, 4][..], &[0i64][..], 1e-3f32),
        (&[2, 3, 2, 3][..], &[0, 2, 3][..], 1e-5),
    ] {
        let c = shape[1];
        check(
            &format!("batch norm {shape:?}"),
            &[shape, &[c], &[c]],
            false,
            |g, x| {
                let (mean, var) = g.moments(x[0], axes).unwrap();
                g.batch_norm(x[0], mean, var, Some(x[1]), Some(x[2]), 1, eps)
                    .unwrap()
            },
        );
    }
    // Fixed statistics (inference): parameters that are not differentiated.
    let device = Device::auto().expect("an adapter");
    let mut params = ParamStore::new(&device);
    params.insert("mean", &[0.1, -0.2, 0.3], &[3]).unwrap();
    params.insert("var", &[0.5, 1.5, 0.8], &[3]).unwrap();
    let mut g = Graph::new();
    let mean = g.frozen_param(&params, "mean").unwrap();
    let var = g.frozen_param(&params, "var").unwrap();
    let x = g.input("x", &[4, 3]);
    let gamma = g.input("gamma", &[3]);
    let beta = g.input("beta", &[3]);
    let y = g
        .batch_norm(x, mean, var, Some(gamma), Some(beta), 1, 1e-3)
        .unwrap();
    let loss = g.sum_all(y).unwrap();
    let grads = g.grad(loss, &[x, gamma, beta]).unwrap();
    let mut plan = Plan::compile(&device, &g, &grads).unwrap();
    let xv: Vec<f32> = (0..12).map(|i| 0.3 * i as f32 - 1.0).collect();
    let out = plan
        .run(&[
            ("x", &xv),
            ("gamma", &[2.0, -1.0, 0.5]),
            ("beta", &[0.0; 3]),
        ])
        .unwrap();
    let sv = [0.1f64, -0.2, 0.3, 0.5, 1.5, 0.8];
    for (i, &dx) in out[0].iter().enumerate() {
        let k = i % 3;
        let inv = 1.0 / (sv[3 + k] + 1e-3).sqrt();
        let gamma = [2.0, -1.0, 0.5][k];
        assert!((dx as f64 - gamma * inv).abs() < 1e-5, "dx[{i}]");
    }
    for k in 0..3 {
        let inv = 1.0 / (sv[3 + k] + 1e-3).sqrt();
        let want: f64 = (0..4).map(|r| (xv[r * 3 + k] as f64 - sv[k]) * inv).sum();
        assert!((out[1][k] as f64 - want).abs() < 1e-4, "dgamma[{k}]");
        assert_eq!(out[2][k], 4.0, "dbeta[{k}]");
    }
}

#[test]
fn moments_on_their_own() {
    for (shape, axes) in [
        (&[5usize, 3][..], &[0i64][..]),
        (&[2, 2, 3][..], &[0, 2][..]),
    ] {
        check(&format!("mean {shape:?}"), &[shape], false, |g, x| {
            g.moments(x[0], axes).unwrap().0
        });
        check(&format!("variance {shape:?}"), &[shape], false, |g, x| {
            g.moments(x[0], axes).unwrap().1
        });
        check(&format!("both {shape:?}"), &[shape], false, |g, x| {
            let (m, v) = g.moments(x[0], axes).unwrap();
            let m2 = g.unary(UnaryOp::Square, m).unwrap();
            g.add(m2, v).unwrap()
        });
    }
}

#[test]
fn binary_cross_entropy_terms() {
    check("bce on probabilities", &[&[4, 3]], true, |g, x| {
        // p in (0, 1): a sigmoid of the input; the target a constant.
        let p = g.unary(UnaryOp::Sigmoid, x[0]).unwrap();
        let t = g.constant(&[0.0, 1.0, 0.25], &[3]).unwrap();
        g.binary(BinaryOp::BceTerm, p, t).unwrap()
    });
    check("bce on logits", &[&[4, 3], &[3]], false, |g, x| {
        g.binary(BinaryOp::BceLogitsTerm, x[0], x[1]).unwrap()
    });
}

#[test]
fn dropout_backward_applies_the_same_mask() {
    for step in [0.0, 3.0] {
        check(
            &format!("dropout step {step}"),
            &[&[5, 7]],
            false,
            |g, x| {
                let s = g.constant(&[step], &[1]).unwrap();
                g.dropout(x[0], 0.4, 77, s).unwrap()
            },
        );
    }
}

#[test]
fn dense_relu_then_batch_norm_then_dropout() {
    // The MLP's chain: [N, C] with C a multiple of 4 (vec4 kernels) and not.
    for c in [4usize, 3] {
        check(
            &format!("dense relu → batch norm → dropout, {c} units"),
            &[&[6, 5], &[5, c], &[c]],
            false,
            |g, x| {
                let h = g.matmul(x[0], x[1], false, false).unwrap();
                let h = g.add(h, x[2]).unwrap();
                let h = g.unary(UnaryOp::Relu, h).unwrap();
                let (mean, var) = g.moments(h, &[0]).unwrap();
                let ones = g.constant(&vec![1.5; c], &[c]).unwrap();
                let beta = g.constant(&vec![0.1; c], &[c]).unwrap();
                let y = g
                    .batch_norm(h, mean, var, Some(ones), Some(beta), 1, 1e-3)
                    .unwrap();
                let step = g.constant(&[2.0], &[1]).unwrap();
                g.dropout(y, 0.25, 9, step).unwrap()
            },
        );
    }
}

#[test]
fn dense_sigmoid_then_cross_entropy() {
    check(
        "dense sigmoid → BCE",
        &[&[5, 3], &[3, 1], &[1]],
        false,
        |g, x| {
            let z = g.matmul(x[0], x[1], false, false).unwrap();
            let z = g.add(z, x[2]).unwrap();
            let p = g.unary(UnaryOp::Sigmoid, z).unwrap();
            let t = g.constant(&[0.0, 1.0, 1.0, 0.0, 1.0], &[5, 1]).unwrap();
            let terms = g.binary(BinaryOp::BceTerm, p, t).unwrap();
            g.mean_all(terms).unwrap()
        },
    );
}

#[test]
fn residual_block() {
    // y = relu(x + tanh(x·W1)·W2): a skip connection around two layers.
    check("residual", &[&[4, 6], &[6, 5], &[5, 6]], false, |g, x| {
        let h = g.matmul(x[0], x[1], false, false).unwrap();
        let h = g.unary(UnaryOp::Tanh, h).unwrap();
        let r = g.matmul(h, x[2], false, false).unwrap();
        let s = g.add(x[0], r).unwrap();
        g.unary(UnaryOp::Relu, s).unwrap()
    });
}

#[test]
fn convolutions_with_bias_and_activation() {
    check(
        "conv 3x3 same + bias + relu",
        &[&[2, 3, 5, 6], &[4, 3, 3, 3], &[4]],
        false,
        |g, x| {
            let y = g
                .conv2d(x[0], x[1], Window2d::new([3, 3]).padding([1, 1]))
                .unwrap();
            let b = g.reshape(x[2], &[1, 4, 1, 1]).unwrap();
            let y = g.add(y, b).unwrap();
            g.unary(UnaryOp::Relu, y).unwrap()
        },
    );
    check(
        "conv strided, dilated, padded unevenly",
        &[&[2, 2, 7, 6], &[3, 2, 2, 3]],
        false,
        |g, x| {
            let w = Window2d::new([2, 3])
                .stride([2, 1])
                .pads([1, 0, 0, 2])
                .dilation([1, 2]);
            g.conv2d(x[0], x[1], w).unwrap()
        },
    );
    check(
        "conv 1x1 stride 2",
        &[&[3, 4, 5, 5], &[2, 4, 1, 1]],
        false,
        |g, x| {
            g.conv2d(x[0], x[1], Window2d::new([1, 1]).stride([2, 2]))
                .unwrap()
        },
    );
}

#[test]
fn pooling() {
    let pools: [(&str, Window2d, bool); 3] = [
        ("2x2", Window2d::new([2, 2]).stride([2, 2]), false),
        (
            "3x3 s2 p1 ceil",
            Window2d::new([3, 3]).stride([2, 2]).padding([1, 1]),
            true,
        ),
        (
            "dilated uneven",
            Window2d::new([2, 3])
                .stride([1, 2])
                .pads([1, 1, 0, 2])
                .dilation([2, 1]),
            false,
        ),
    ];
    for (name, window, ceil) in pools {
        check(
            &format!("max pool {name}"),
            &[&[2, 3, 7, 6]],
            false,
            |g, x| g.max_pool2d(x[0], window, ceil).unwrap(),
        );
        for include in [true, false] {
            check(
                &format!("avg pool {name} {include}"),
                &[&[2, 3, 7, 6]],
                false,
                |g, x| g.avg_pool2d(x[0], window, ceil, include).unwrap(),
            );
        }
    }
}

#[test]
fn max_pooling_a_relu_pools_first_with_the_same_numbers() {
    // Graph::max_pool2d turns pool(relu(x)) into relu(pool(x)); the finite
    // differences of `check` read that rewritten graph, so the reference
    // here applies the two in PyTorch's order, relu first, on its own.
    let device = Device::auto().expect("an adapter");
    let windows = [
        (Window2d::new([2, 2]).stride([2, 2]), false),
        (Window2d::new([3, 3]).stride([2, 2]).padding([1, 1]), true),
    ];
    for (window, ceil) in windows {
        let xs = [2, 3, 6, 8];
        let mut rng = Rng(5);
        let xv = rng.vec(xs.iter().product(), 0.3, 1.5, false);
        let mut g = Graph::new();
        let x = g.input("x", &xs);
        let r = g.unary(UnaryOp::Relu, x).unwrap();
        let y = g.max_pool2d(r, window, ceil).unwrap();
        let ys = g.shape(y).to_vec();
        let n: usize = ys.iter().product();
        let weights = rng.vec(n, 0.5, 1.5, true);
        let w = g.constant(&weights, &ys).unwrap();
        let weighted = g.mul(y, w).unwrap();
        let loss = g.sum_all(weighted).unwrap();
        let dx = g.grad(loss, &[x]).unwrap()[0];
        let got = Plan::compile(&device, &g, &[y, dx])
            .unwrap()
            .run(&[("x", &xv)])
            .unwrap();

        let relu_then_pool = |x: &[f64]| -> Vec<f64> {
            let relu: Vec<f64> = x.iter().map(|&v| v.max(0.0)).collect();
            pool2d(&relu, &xs, PoolKind::Max, &window, &ys)[..n].to_vec()
        };
        let loss_of = |x: &[f64]| -> f64 {
            relu_then_pool(x)
                .iter()
                .zip(&weights)
                .map(|(a, &b)| a * b as f64)
                .sum()
        };
        let mut x64: Vec<f64> = xv.iter().map(|&v| v as f64).collect();
        for (i, want) in relu_then_pool(&x64).iter().enumerate() {
            let kiln = got[0][i] as f64;
            assert!(
                (kiln - want).abs() <= 1e-6,
                "{window:?}: y[{i}] kiln {kiln} vs {want}"
            );
        }
        let h = 1e-6;
        let fd: Vec<f64> = (0..x64.len())
            .map(|i| {
                let base = x64[i];
                x64[i] = base + h;
                let up = loss_of(&x64);
                x64[i] = base - h;
                let down = loss_of(&x64);
                x64[i] = base;
                (up - down) / (2.0 * h)
            })
            .collect();
        assert_matches_finite_differences(&format!("{window:?}: dx"), &got[1], &fd);
        assert!(
            matches!(g.node(y).op, Op::Unary(UnaryOp::Relu)),
            "{window:?}: the relu moves after the pooling"
        );
    }
}

#[test]
fn a_cnn_block() {
    // conv → bias → relu → max pool → conv → global average: the CNN's
    // layers back to back, so gradients flow through every pass.
    check(
        "cnn block",
        &[&[2, 2, 8, 8], &[3, 2, 3, 3], &[3], &[2, 3, 3, 3]],
        false,
        |g, x| {
            let same = Window2d::new([3, 3]).padding([1, 1]);
            let y = g.conv2d(x[0], x[1], same).unwrap();
            let b = g.reshape(x[2], &[1, 3, 1, 1]).unwrap();
            let y = g.add(y, b).unwrap();
            let y = g.unary(UnaryOp::Relu, y).unwrap();
            let y = g
                .max_pool2d(y, Window2d::new([2, 2]).stride([2, 2]), false)
                .unwrap();
            let y = g.conv2d(y, x[3], same).unwrap();
            g.reduce(ReduceOp::Mean, y, &[2, 3], false).unwrap()
        },
    );
}

fn weights(x: &[NodeId], transposed: bool, biases: usize) -> kiln_graph::RecurrentWeights {
    kiln_graph::RecurrentWeights {
        kernel: x[1],
        recurrent: x[2],
        transposed,
        input_bias: (biases > 0).then(|| x[3]),
        recurrent_bias: (biases > 1).then(|| x[4]),
    }
}

#[test]
fn lstm_through_time() {
    use kiln_graph::LstmOptions;
    // Keras layout, relu as in the tutorial, every step returned.
    check(
        "lstm relu sequence",
        &[&[2, 3, 3], &[3, 8], &[2, 8], &[8]],
        false,
        |g, x| {
            let opts = LstmOptions {
                activation: UnaryOp::Relu,
                return_sequences: true,
                ..LstmOptions::default()
            };
            g.lstm(x[0], &weights(x, false, 1), None, &opts)
                .unwrap()
                .sequence
                .unwrap()
        },
    );
    // PyTorch layout with both biases, an initial state, peepholes; the last
    // h and c both feed the loss.
    check(
        "lstm initial state peepholes",
        &[
            &[2, 4, 3],
            &[8, 3],
            &[8, 2],
            &[8],
            &[8],
            &[2, 2],
            &[2, 2],
            &[6],
        ],
        false,
        |g, x| {
            let opts = LstmOptions {
                peepholes: Some(x[7]),
                ..LstmOptions::default()
            };
            let out = g
                .lstm(x[0], &weights(x, true, 2), Some((x[5], x[6])), &opts)
                .unwrap();
            g.concat(&[out.h, out.c.unwrap()], 1).unwrap()
        },
    );
}

#[test]
fn gru_and_simple_rnn_through_time() {
    use kiln_graph::GruOptions;
    for reset_after in [true, false] {
        check(
            &format!("gru reset_after {reset_after}"),
            &[&[2, 3, 3], &[3, 6], &[2, 6], &[6], &[6], &[2, 2]],
            false,
            |g, x| {
                let opts = GruOptions {
                    reset_after,
                    return_sequences: true,
                    ..GruOptions::default()
                };
                let a = g.gru(x[0], &weights(x, false, 2), None, &opts).unwrap();
                let b = g
                    .gru(x[0], &weights(x, false, 2), Some(x[5]), &opts)
                    .unwrap();
                g.add(a.sequence.unwrap(), b.sequence.unwrap()).unwrap()
            },
        );
    }
    check(
        "simple rnn",
        &[&[2, 4, 3], &[2, 3], &[2, 2], &[2]],
        false,
        |g, x| {
            g.simple_rnn(x[0], &weights(x, true, 1), None, UnaryOp::Tanh, true)
                .unwrap()
                .sequence
                .unwrap()
        },
    );
}
