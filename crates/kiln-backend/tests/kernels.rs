//! Every kernel against a naive f64 CPU reference: random inputs (never zeros),
//! sizes that are not multiples of any tile, outputs poisoned with NaN before
//! the run and checked fully written.

use kiln_backend::codegen::*;
use kiln_backend::ops::random::{random_kernel, reference_unit, Distribution};
use kiln_backend::ops::reduce::argmax_kernel;
use kiln_backend::*;

mod common;
use common::*;

/// Runs a one-output generated elementwise kernel over `shape`: `build`
/// adds the program's expressions and returns the one to store.
fn map_into(
    dev: &Device,
    out: &Tensor,
    shape: &[usize],
    operands: &[Operand],
    build: impl FnOnce(&mut Program) -> usize,
) {
    let mut p = Program::default();
    let r = build(&mut p);
    let k = dev
        .build(
            &MapKernel::over(
                "test",
                shape,
                Epilogue {
                    program: p.clone(),
                    operands: operands.to_vec(),
                    stores: vec![Store {
                        expr: r,
                        buffer: out.buffer().clone(),
                        layout: StridedLayout::contiguous(shape),
                    }],
                },
            )
            .into(),
        )
        .unwrap();
    dev.run(&[&k]).unwrap();
}

/// A contiguous operand broadcast to `shape`.
fn bcast(t: &Tensor, shape: &[usize]) -> Operand {
    Operand {
        buffer: t.buffer().clone(),
        layout: StridedLayout::contiguous(t.shape())
            .broadcast_to("test", shape)
            .unwrap(),
    }
}

const SIZES: [usize; 5] = [1, 7, 33, 257, 64];

#[test]
fn unary_ops_match_f64() {
    let dev = device();
    let mut rng = Rng(1);
    for &op in UnaryOp::EXAMPLES {
        let (lo, hi) = op.sample_range();
        for n in SIZES {
            let x = rng.vec(n, lo, hi);
            let xt = Tensor::from_f32(&dev, &x, &[n]).unwrap();
            let out = poisoned(&dev, &[n]);
            map_into(&dev, &out, &[n], &[bcast(&xt, &[n])], |p| {
                let a = p.push(Expr::Load(0));
                p.push(Expr::Unary(op, a))
            });
            let want: Vec<f64> = x.iter().map(|&v| op.reference(v as f64)).collect();
            assert_close(
                &format!("{op:?} n={n}"),
                &out.to_vec_f32().unwrap(),
                &want,
                1e-5,
                1e-7,
            );
        }
    }
}

#[test]
fn tanh_is_accurate_near_zero() {
    let dev = device();
    let x: Vec<f32> = vec![1e-6, -3e-4, 2e-3, 0.05, -0.3, 0.6, 0.7, -0.9];
    let y = dev
        .unary(
            UnaryOp::Tanh,
            &Tensor::from_f32(&dev, &x, &[x.len()]).unwrap(),
        )
        .unwrap();
    let want: Vec<f64> = x.iter().map(|&v| (v as f64).tanh()).collect();
    assert_close("tanh", &y.to_vec_f32().unwrap(), &want, 1e-5, 0.0);
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let dev = device();
    let mut rng = Rng(2);
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Pow,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::ReluGrad,
        BinaryOp::SigmoidGrad,
        BinaryOp::TanhGrad,
        BinaryOp::BceTerm,
        BinaryOp::BceGrad,
        BinaryOp::BceLogitsTerm,
        BinaryOp::BceLogitsGrad,
        BinaryOp::BinaryAccuracy,
        BinaryOp::HardSigmoidGrad,
    ];
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[257], &[257]),
        (&[4, 36], &[4, 36]), // contiguous and 4-aligned: the vec4 kernel
        (&[7, 33], &[33]),
        (&[7, 1, 5], &[1, 33, 1]),
        (&[1], &[3, 7]),
        (&[2, 3, 4, 5], &[3, 1, 5]),
    ];
    for op in ops {
        for (sa, sb) in shapes {
            // Probabilities and targets live in (0, 1).
            let unit = matches!(
                op,
                BinaryOp::SigmoidGrad
                    | BinaryOp::BceTerm
                    | BinaryOp::BceGrad
                    | BinaryOp::BinaryAccuracy
            );
            let (lo, hi) = if op == BinaryOp::Pow {
                (0.1, 3.0)
            } else if unit {
                (0.02, 0.98)
            } else {
                (-3.0, 3.0)
            };
            let a = rng.vec(sa.iter().product(), lo, hi);
            let mut b = rng.vec(sb.iter().product(), lo, hi);
            if matches!(
                op,
                BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Le | BinaryOp::Ge
            ) {
                b[0] = a[0]; // make equality happen at least once
            }
            let shape = broadcast_shapes("t", sa, sb).unwrap();
            let at = Tensor::from_f32(&dev, &a, sa).unwrap();
            let bt = Tensor::from_f32(&dev, &b, sb).unwrap();
            let out = poisoned(&dev, &shape);
            map_into(
                &dev,
                &out,
                &shape,
                &[bcast(&at, &shape), bcast(&bt, &shape)],
                |p| {
                    let (x, y) = (p.push(Expr::Load(0)), p.push(Expr::Load(1)));
                    p.push(Expr::Binary(op, x, y))
                },
            );
            let (la, lb) = (
                StridedLayout::contiguous(sa)
                    .broadcast_to("t", &shape)
                    .unwrap(),
                StridedLayout::contiguous(sb)
                    .broadcast_to("t", &shape)
                    .unwrap(),
            );
            let want: Vec<f64> = (0..shape.iter().product())
                .map(|i| {
                    op.reference(
                        a[offset_of(i, &shape, &la.strides)] as f64,
                        b[offset_of(i, &shape, &lb.strides)] as f64,
                    )
                })
                .collect();
            assert_close(
                &format!("{op:?} {sa:?}∘{sb:?}"),
                &out.to_vec_f32().unwrap(),
                &want,
                1e-5,
                1e-7,
            );
        }
    }
}

fn offset_of(mut i: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut off = 0;
    for d in (0..shape.len()).rev() {
        off += (i % shape[d]) * strides[d];
        i /= shape[d];
    }
    off
}

#[test]
fn pow_handles_negative_bases_with_integral_exponents() {
    let dev = device();
    let a = Tensor::from_f32(&dev, &[-2.0, -3.0, 0.0, 4.0], &[4]).unwrap();
    let b = Tensor::from_f32(&dev, &[3.0, 2.0, 2.0, 0.5], &[4]).unwrap();
    let y = dev
        .binary(BinaryOp::Pow, &a, &b)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_close("pow", &y, &[-8.0, 9.0, 0.0, 2.0], 1e-6, 0.0);
}

#[test]
fn select_picks_by_condition() {
    let dev = device();
    let mut rng = Rng(3);
    let (n, m) = (7, 33);
    let c: Vec<f32> = rng
        .vec(n * m, -1.0, 1.0)
        .iter()
        .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let a = rng.vec(n * m, -3.0, 3.0);
    let b = rng.vec(m, -3.0, 3.0);
    let (ct, at, bt) = (
        Tensor::from_f32(&dev, &c, &[n, m]).unwrap(),
        Tensor::from_f32(&dev, &a, &[n, m]).unwrap(),
        Tensor::from_f32(&dev, &b, &[m]).unwrap(),
    );
    let out = poisoned(&dev, &[n, m]);
    let shape = [n, m];
    map_into(
        &dev,
        &out,
        &shape,
        &[bcast(&ct, &shape), bcast(&at, &shape), bcast(&bt, &shape)],
        |p| {
            let (c, a, b) = (
                p.push(Expr::Load(0)),
                p.push(Expr::Load(1)),
                p.push(Expr::Load(2)),
            );
            p.push(Expr::Select(c, a, b))
        },
    );
    let want: Vec<f64> = (0..n * m)
        .map(|i| {
            if c[i] != 0.0 {
                a[i] as f64
            } else {
                b[i % m] as f64
            }
        })
        .collect();
    assert_close("select", &out.to_vec_f32().unwrap(), &want, 0.0, 0.0);
}

#[test]
fn permute_and_strided_copy_move_every_element() {
    let dev = device();
    let mut rng = Rng(4);
    let shape = [3, 7, 5, 2];
    let x = rng.vec(210, -1.0, 1.0);
    let xt = Tensor::from_f32(&dev, &x, &shape).unwrap();
    let perm = [2, 0, 3, 1];
    let y = dev.permute(&xt, &perm).unwrap();
    assert_eq!(y.shape(), &[5, 3, 2, 7]);
    let strides = contiguous_strides(&shape);
    let pstrides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let want: Vec<f64> = (0..210)
        .map(|i| x[offset_of(i, y.shape(), &pstrides)] as f64)
        .collect();
    assert_close("permute", &y.to_vec_f32().unwrap(), &want, 0.0, 0.0);
    // A strided slice: rows 1..3 of each [7, 5] plane, every other column.
    let layout = StridedLayout {
        offset: 5,
        shape: vec![3, 2, 3],
        strides: vec![35, 5, 2],
    };
    let z = dev
        .strided_copy(
            &xt.reshape(&[3, 7, 10])
                .unwrap()
                .reshape(&[3, 7, 5, 2])
                .unwrap(),
            layout.clone(),
        )
        .unwrap();
    let want: Vec<f64> = (0..18)
        .map(|i| x[layout.offset + offset_of(i, &layout.shape, &layout.strides)] as f64)
        .collect();
    assert_close("strided copy", &z.to_vec_f32().unwrap(), &want, 0.0, 0.0);
}

#[test]
fn reductions_over_any_axes() {
    for shape in [[7, 33, 5], [9, 4, 12], [64, 32, 9]] {
        reductions_of(shape);
    }
    // Column sums of a matrix with 4-aligned rows.
    let dev = device();
    let x = Rng(8).vec(13 * 36, -2.0, 2.0);
    let xt = Tensor::from_f32(&dev, &x, &[13, 36]).unwrap();
    for op in [ReduceOp::Sum, ReduceOp::Mean] {
        let out = dev.reduce(op, &xt, &[0], false).unwrap();
        let (want, _) = reference_reduce(&x, &[13, 36], &[0], op);
        assert_close(
            &format!("column {op:?}"),
            &out.to_vec_f32().unwrap(),
            &want,
            1e-5,
            1e-6,
        );
    }
}

fn reductions_of(shape: [usize; 3]) {
    let dev = device();
    let mut rng = Rng(5);
    let x = rng.vec(shape.iter().product(), -2.0, 2.0);
    let xt = nan_tailed(&dev, &x, &shape);
    let axes_sets: [&[usize]; 6] = [&[0], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2]];
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
        for axes in axes_sets {
            let out_shape = reduced_shape(&shape, axes, false);
            let n_out: usize = out_shape.iter().product();
            let out = dev.reduce(op, &xt, axes, false).unwrap();
            assert_eq!(out.shape(), out_shape.as_slice());
            let (want, scale) = reference_reduce(&x, &shape, axes, op);
            let got = out.to_vec_f32().unwrap();
            for i in 0..n_out {
                let err = (got[i] as f64 - want[i]).abs();
                assert!(
                    err <= 1e-5 * scale[i] + 1e-7,
                    "{op:?} over {axes:?}[{i}]: got {}, want {}",
                    got[i],
                    want[i]
                );
            }
        }
    }
}

/// Reference reduction; also returns the sum of magnitudes per output, the
/// scale against which a sum's rounding error is judged.
fn reference_reduce(
    x: &[f32],
    shape: &[usize],
    axes: &[usize],
    op: ReduceOp,
) -> (Vec<f64>, Vec<f64>) {
    let out_shape = reduced_shape(shape, axes, true);
    let n_out: usize = out_shape.iter().product();
    let count = x.len() / n_out;
    let out_strides = contiguous_strides(&out_shape);
    let mut acc = vec![
        match op {
            ReduceOp::Max => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
            _ => 0.0,
        };
        n_out
    ];
    let mut mag = vec![0.0; n_out];
    let strides = contiguous_strides(shape);
    for (i, &v) in x.iter().enumerate() {
        let mut o = 0;
        for d in 0..shape.len() {
            let c = (i / strides[d]) % shape[d];
            if !axes.contains(&d) {
                o += c * out_strides[d];
            }
        }
        let v = v as f64;
        acc[o] = match op {
            ReduceOp::Max => acc[o].max(v),
            ReduceOp::Min => acc[o].min(v),
            _ => acc[o] + v,
        };
        mag[o] += v.abs();
    }
    if op == ReduceOp::Mean {
        acc.iter_mut().for_each(|a| *a /= count as f64);
        mag.iter_mut().for_each(|a| *a /= count as f64);
    }
    (acc, mag)
}

#[test]
fn reduction_of_many_elements_into_one() {
    let dev = device();
    let mut rng = Rng(6);
    let n = 100_003;
    let x = rng.vec(n, 0.0, 1.0);
    let t = Tensor::from_f32(&dev, &x, &[n]).unwrap();
    let got = dev
        .reduce(ReduceOp::Sum, &t, &[0], false)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    assert!(
        (got[0] as f64 - want).abs() <= 1e-5 * want,
        "sum {} vs {want}",
        got[0]
    );
}

#[test]
fn argmax_returns_first_maximum() {
    let dev = device();
    let mut rng = Rng(7);
    let (rows, cols) = (33, 257);
    let mut x = rng.vec(rows * cols, -1.0, 1.0);
    x[5 * cols + 10] = 5.0;
    x[5 * cols + 200] = 5.0; // a tie: the first index wins
    let t = Tensor::from_f32(&dev, &x, &[rows, cols]).unwrap();
    let out = Tensor::from_i32(&dev, &vec![-1; rows], &[rows]).unwrap();
    let k = argmax_kernel(
        &dev,
        out.buffer(),
        0,
        Operand {
            buffer: t.buffer().clone(),
            layout: StridedLayout::contiguous(&[rows, cols]),
        },
        &[1],
    )
    .unwrap();
    dev.run(&[&k]).unwrap();
    let got = out.to_vec_i32().unwrap();
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let want = row.iter().position(|&v| v == best).unwrap() as i32;
        assert_eq!(got[r], want, "row {r}");
    }
    assert_eq!(got[5], 10);
    let cols_arg = dev.argmax(&t, 0, false).unwrap().to_vec_i32().unwrap();
    assert_eq!(cols_arg[10], 5);
}

#[test]
fn softmax_and_log_softmax_along_each_axis() {
    let dev = device();
    let mut rng = Rng(8);
    let shape = [7, 33, 5];
    // Large magnitudes: without max subtraction exp would overflow.
    let x = rng.vec(7 * 33 * 5, -80.0, 80.0);
    let xt = Tensor::from_f32(&dev, &x, &shape).unwrap();
    for axis in 0..3 {
        for log in [false, true] {
            let out = poisoned(&dev, &shape);
            let k = dev
                .build(
                    &SoftmaxKernel {
                        out: out.buffer().clone(),
                        x: xt.buffer().clone(),
                        shape: shape.to_vec(),
                        axis,
                        log,
                    }
                    .into(),
                )
                .unwrap();
            dev.run(&[&k]).unwrap();
            let want = reference_softmax(&x, &shape, axis, log);
            assert_close(
                &format!("softmax axis {axis} log {log}"),
                &out.to_vec_f32().unwrap(),
                &want,
                1e-5,
                1e-7,
            );
        }
    }
}

fn reference_softmax(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer = x.len() / (len * inner);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let idx = |j: usize| o * len * inner + j * inner + i;
            let m = (0..len)
                .map(|j| x[idx(j)] as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..len).map(|j| (x[idx(j)] as f64 - m).exp()).sum();
            for j in 0..len {
                let v = x[idx(j)] as f64 - m;
                y[idx(j)] = if log { v - s.ln() } else { v.exp() / s };
            }
        }
    }
    y
}

#[test]
fn random_numbers_are_reproducible_and_well_distributed() {
    let dev = device();
    let n = 100_001;
    let out = poisoned(&dev, &[n]);
    let k = random_kernel(
        &dev,
        out.buffer(),
        n,
        42,
        Distribution::Uniform {
            low: -1.0,
            high: 3.0,
        },
    )
    .unwrap();
    dev.run(&[&k]).unwrap();
    let u = out.to_vec_f32().unwrap();
    for (i, &v) in u.iter().enumerate() {
        let want = -1.0 + 4.0 * reference_unit(42, i as u32);
        assert!((v - want).abs() <= 1e-6, "uniform[{i}]: {v} vs {want}");
    }
    let mean = u.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.02, "uniform mean {mean}");
    assert!(u.iter().all(|&v| (-1.0..3.0).contains(&v)));

    let z = dev
        .rand_normal(&[n], 7, 2.0, 0.5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    for i in [0usize, 1, 999, 100_000] {
        let u1 = 1.0 - reference_unit(7, 2 * i as u32) as f64;
        let u2 = reference_unit(7, 2 * i as u32 + 1) as f64;
        let want = 2.0 + 0.5 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        assert!(
            (z[i] as f64 - want).abs() < 1e-4,
            "normal[{i}]: {} vs {want}",
            z[i]
        );
    }
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        (mean - 2.0).abs() < 0.01 && (var.sqrt() - 0.5).abs() < 0.01,
        "normal mean {mean} std {}",
        var.sqrt()
    );

    let again = dev
        .rand_normal(&[n], 7, 2.0, 0.5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(z, again, "same seed, same numbers");
    let other = dev
        .rand_normal(&[n], 8, 2.0, 0.5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(
        z.iter().zip(&other).filter(|(a, b)| a == b).count() < 10,
        "another seed, other numbers"
    );
}

#[allow(clippy::too_many_arguments)] // the matmul shape, spelled out as the kernel takes it
fn reference_matmul(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta {
                        a[bi * m * k + p * m + i]
                    } else {
                        a[bi * m * k + i * k + p]
                    };
                    let bv = if tb {
                        b[bi * k * n + j * k + p]
                    } else {
                        b[bi * k * n + p * n + j]
                    };
                    s += av as f64 * bv as f64;
                }
                c[bi * m * n + i * n + j] = s;
            }
        }
    }
    c
}

/// `op(A)·op(B)` through the generated GEMM with `variant`, stored plainly
/// into a poisoned output; `None` where the variant cannot read the operands.
#[allow(clippy::too_many_arguments)] // the matmul shape, spelled out
fn gemm(
    dev: &Device,
    a: &Tensor,
    b: &Tensor,
    (m, n, k, batch): (usize, usize, usize, usize),
    ta: bool,
    tb: bool,
    variant: MatmulVariant,
) -> Option<Vec<f32>> {
    let out = poisoned(dev, &[batch, m, n]);
    let spec = GemmSpec {
        m,
        n,
        k,
        shape: vec![batch, m, n],
        a: GemmLoad {
            buffer: a.buffer().clone(),
            offset: 0,
            row_stride: if ta { m } else { k },
            batch_stride: m * k,
            transposed: ta,
        },
        b: GemmLoad {
            buffer: b.buffer().clone(),
            offset: 0,
            row_stride: if tb { k } else { n },
            batch_stride: k * n,
            transposed: tb,
        },
        variant,
    };
    let mut p = Program::default();
    let v = p.push(Expr::Anchor);
    let store = Store {
        expr: v,
        buffer: out.buffer().clone(),
        layout: StridedLayout::contiguous(&[batch, m, n]),
    };
    let kern = dev
        .build(
            &GemmKernel {
                label: "matmul".into(),
                spec: spec.clone(),
                epilogue: Epilogue {
                    program: p.clone(),
                    operands: vec![],
                    stores: vec![store],
                },
            }
            .into(),
        )
        .ok()?;
    dev.run(&[&kern]).unwrap();
    Some(out.to_vec_f32().unwrap())
}

#[test]
fn matmul_every_variant_transpose_and_odd_size() {
    for dev in devices() {
        matmul_every_variant_transpose_and_odd_size_on(&dev);
    }
}

fn matmul_every_variant_transpose_and_odd_size_on(dev: &Device) {
    let dev = dev.clone();
    let mut rng = Rng(9);
    let sizes = [
        (1, 1, 1),
        (7, 33, 257),
        (33, 7, 1),
        (257, 33, 7),
        (64, 64, 64),
        (65, 129, 33),
        (9, 12, 8),
    ];
    for (m, n, k) in sizes {
        for batch in [1, 3] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for variant in [
                    MatmulVariant::Auto,
                    MatmulVariant::Blocked,
                    MatmulVariant::Tiled,
                    MatmulVariant::Small,
                ] {
                    let a = rng.vec(batch * m * k, -1.0, 1.0);
                    let b = rng.vec(batch * k * n, -1.0, 1.0);
                    let at = Tensor::from_f32(&dev, &a, &[batch * m * k]).unwrap();
                    let bt = Tensor::from_f32(&dev, &b, &[batch * k * n]).unwrap();
                    let got = gemm(&dev, &at, &bt, (m, n, k, batch), ta, tb, variant)
                        .expect("every scalar variant reads any operand");
                    let want = reference_matmul(&a, &b, m, n, k, batch, ta, tb);
                    let err = relative_norm_error(&got, &want);
                    assert!(
                        err <= 1e-4,
                        "{m}x{n}x{k} batch {batch} ta {ta} tb {tb} {variant:?}: error {err:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_vec4_paths_on_aligned_sizes() {
    for dev in devices() {
        matmul_vec4_paths_on_aligned_sizes_on(&dev);
    }
}

fn matmul_vec4_paths_on_aligned_sizes_on(dev: &Device) {
    let dev = dev.clone();
    let mut rng = Rng(10);
    let sizes = [
        (1, 4, 4),
        (7, 36, 260),
        (257, 132, 8),
        (64, 64, 64),
        (12, 20, 9),
        (8, 7, 12),
        (12, 8, 12),
    ];
    for (m, n, k) in sizes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = rng.vec(2 * m * k, -1.0, 1.0);
            let b = rng.vec(2 * k * n, -1.0, 1.0);
            let at = Tensor::from_f32(&dev, &a, &[2 * m * k]).unwrap();
            let bt = Tensor::from_f32(&dev, &b, &[2 * k * n]).unwrap();
            // Both operands must be read four at a time along a contiguous axis.
            let a4 = if ta { m % 4 == 0 } else { k % 4 == 0 };
            let b4 = if tb { k % 4 == 0 } else { n % 4 == 0 };
            match gemm(&dev, &at, &bt, (m, n, k, 2), ta, tb, MatmulVariant::Vec4) {
                Some(got) => {
                    assert!(
                        a4 && b4,
                        "{m}x{n}x{k} ta {ta} tb {tb} should have no vec4 kernel"
                    );
                    let want = reference_matmul(&a, &b, m, n, k, 2, ta, tb);
                    let err = relative_norm_error(&got, &want);
                    assert!(err <= 1e-4, "vec4 {m}x{n}x{k} ta {ta} tb {tb}: {err:e}");
                }
                None => assert!(!(a4 && b4), "{m}x{n}x{k} ta {ta} tb {tb}: no vec4 kernel"),
            }
        }
    }
}

#[test]
fn matmul_epilogue_adds_a_bias_activates_and_stores_twice() {
    let dev = device();
    let mut rng = Rng(11);
    let (m, n, k) = (33, 17, 29);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let row_bias = rng.vec(n, -1.0, 1.0);
    let col_bias = rng.vec(m, -1.0, 1.0);
    let at = Tensor::from_f32(&dev, &a, &[m, k]).unwrap();
    let bt = Tensor::from_f32(&dev, &b, &[k, n]).unwrap();
    let base = reference_matmul(&a, &b, m, n, k, 1, false, false);
    for (bias, bshape, act) in [
        (&row_bias, vec![n], UnaryOp::Relu),
        (&col_bias, vec![m, 1], UnaryOp::Sigmoid),
        (&row_bias, vec![1, n], UnaryOp::Tanh),
        (&row_bias, vec![n], UnaryOp::Identity),
    ] {
        for variant in [
            MatmulVariant::Blocked,
            MatmulVariant::Tiled,
            MatmulVariant::Small,
        ] {
            let biast = Tensor::from_f32(&dev, bias, &bshape).unwrap();
            let (raw, out) = (poisoned(&dev, &[m, n]), poisoned(&dev, &[m, n]));
            let spec = GemmSpec {
                m,
                n,
                k,
                shape: vec![m, n],
                a: GemmLoad {
                    buffer: at.buffer().clone(),
                    offset: 0,
                    row_stride: k,
                    batch_stride: 0,
                    transposed: false,
                },
                b: GemmLoad {
                    buffer: bt.buffer().clone(),
                    offset: 0,
                    row_stride: n,
                    batch_stride: 0,
                    transposed: false,
                },
                variant,
            };
            let mut p = Program::default();
            let prod = p.push(Expr::Anchor);
            let bv = p.push(Expr::Load(0));
            let sum = p.push(Expr::Binary(BinaryOp::Add, prod, bv));
            let r = p.push(Expr::Unary(act, sum));
            let contiguous = StridedLayout::contiguous(&[m, n]);
            let kern = dev
                .build(
                    &GemmKernel {
                        label: "matmul+bias".into(),
                        spec: spec.clone(),
                        epilogue: Epilogue {
                            program: p.clone(),
                            operands: vec![bcast(&biast, &[m, n])],
                            stores: vec![
                                Store {
                                    expr: r,
                                    buffer: out.buffer().clone(),
                                    layout: contiguous.clone(),
                                },
                                Store {
                                    expr: prod,
                                    buffer: raw.buffer().clone(),
                                    layout: contiguous,
                                },
                            ],
                        },
                    }
                    .into(),
                )
                .unwrap();
            dev.run(&[&kern]).unwrap();
            let want: Vec<f64> = (0..m * n)
                .map(|i| {
                    let bv = if bshape.len() == 2 && bshape[1] == 1 {
                        bias[i / n]
                    } else {
                        bias[i % n]
                    } as f64;
                    act.reference(base[i] + bv)
                })
                .collect();
            let err = relative_norm_error(&out.to_vec_f32().unwrap(), &want);
            assert!(err <= 1e-4, "{act:?} {bshape:?} {variant:?}: {err:e}");
            let err = relative_norm_error(&raw.to_vec_f32().unwrap(), &base);
            assert!(err <= 1e-4, "raw product {variant:?}: {err:e}");
        }
    }
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let dev = device();
    let a = Tensor::from_f32(&dev, &[1.0, 2.0, 3.0], &[3]).unwrap();
    let b = Tensor::from_f32(&dev, &[1.0, 2.0], &[2]).unwrap();
    let e = dev.binary(BinaryOp::Add, &a, &b).unwrap_err();
    assert!(
        e.to_string().contains("[3]") && e.to_string().contains("[2]"),
        "{e}"
    );

    let m1 = Tensor::from_f32(&dev, &[1.0; 6], &[2, 3]).unwrap();
    let e = dev.matmul(&m1, &m1, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("inner dimensions"), "{e}");

    assert!(matches!(
        Tensor::from_f32(&dev, &[], &[0]),
        Err(BackendError::Empty { .. })
    ));
    assert!(Tensor::from_f32(&dev, &[1.0, 2.0], &[3]).is_err());

    let too_many = (dev.max_binding_bytes() / 4) as usize + 1;
    let e = Tensor::empty(&dev, &[too_many], DType::F32).unwrap_err();
    assert!(matches!(e, BackendError::BindingTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("bytes"), "{e}");

    assert!(dev.reduce(ReduceOp::Sum, &m1, &[2], false).is_err());
    assert!(dev.reduce(ReduceOp::Sum, &m1, &[0, 0], false).is_err());
    assert!(dev.permute(&m1, &[0, 0]).is_err());
    assert!(dev.softmax(&m1, 2, false).is_err());
    assert!(a.to_vec_i32().is_err());
    // Generated kernels address any rank (axes are coalesced first).
    let deep = Tensor::from_f32(&dev, &[1.0, 2.0], &[1, 1, 1, 1, 1, 1, 1, 1, 2]).unwrap();
    let neg = dev.unary(UnaryOp::Neg, &deep).unwrap();
    assert_eq!(neg.to_vec_f32().unwrap(), vec![-1.0, -2.0]);

    // The device is still usable afterwards.
    let c = dev
        .binary(BinaryOp::Mul, &a, &a)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(c, vec![1.0, 4.0, 9.0]);
}

#[test]
fn pool_reuses_buffers_and_counts_bytes() {
    let dev = device();
    let before = dev.pool_counters();
    let t = Tensor::from_f32(&dev, &vec![1.0; 1000], &[1000]).unwrap();
    let live = dev.pool_counters().live_bytes;
    assert!(live >= before.live_bytes + 4000);
    drop(t);
    let after_drop = dev.pool_counters();
    assert_eq!(after_drop.live_bytes, live - 4096);
    let reuses = after_drop.reuses;
    let _t2 = Tensor::from_f32(&dev, &vec![2.0; 1000], &[1000]).unwrap();
    assert_eq!(
        dev.pool_counters().reuses,
        reuses + 1,
        "a freed bucket is reused"
    );
    assert!(dev.pool_counters().peak_live_bytes >= live);
}

#[test]
fn kernel_launches_are_counted() {
    let dev = device();
    let x = Tensor::from_f32(&dev, &[1.0, -2.0], &[2]).unwrap();
    let out = Tensor::empty(&dev, &[2], DType::F32).unwrap();
    let mut p = Program::default();
    let a = p.push(Expr::Load(0));
    let r = p.push(Expr::Unary(UnaryOp::Relu, a));
    let k = dev
        .build(
            &MapKernel::over(
                "relu",
                &[2],
                Epilogue {
                    program: p.clone(),
                    operands: vec![bcast(&x, &[2])],
                    stores: vec![Store {
                        expr: r,
                        buffer: out.buffer().clone(),
                        layout: StridedLayout::contiguous(&[2]),
                    }],
                },
            )
            .into(),
        )
        .unwrap();
    let (s0, d0) = (dev.submissions(), dev.dispatches());
    dev.run(&[&k, &k, &k]).unwrap();
    assert_eq!(dev.submissions() - s0, 1);
    assert_eq!(dev.dispatches() - d0, 3);
}

#[test]
fn nan_propagates_through_relu_and_cross_entropy() {
    // A diverged model must show NaN, not a finite loss (TerminateOnNaN relies on it).
    let dev = device();
    let x = Tensor::from_f32(&dev, &[f32::NAN, -1.0, 2.0], &[3]).unwrap();
    let r = dev.unary(UnaryOp::Relu, &x).unwrap().to_vec_f32().unwrap();
    assert!(r[0].is_nan() && r[1] == 0.0 && r[2] == 2.0, "{r:?}");
    let y = Tensor::from_f32(&dev, &[1.0, 1.0, 0.0], &[3]).unwrap();
    let l = dev
        .binary(BinaryOp::BceTerm, &x, &y)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!(l[0].is_nan() && l[1].is_finite(), "{l:?}");
}
