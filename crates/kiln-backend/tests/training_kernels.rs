//! The training kernels (batch norm, dropout masks, optimizer steps, running
//! statistics, accumulators) against f64 references written from the
//! formulas, at odd sizes, outputs poisoned with NaN first.

use kiln_backend::ops::batchnorm::*;
use kiln_backend::ops::optim::*;
use kiln_backend::ops::random::{dropout_kernel, reference_dropout};
use kiln_backend::*;

fn device() -> Device {
    Device::auto().expect("a Vulkan adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

struct Rng(u64);
impl Rng {
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect()
    }
}

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

#[test]
fn batch_norm_forward_for_features_and_images() {
    let dev = device();
    let mut rng = Rng(5);
    // [N, F] with channels on axis 1, and NCHW images.
    // [N, C] with C a multiple of 4 takes the vec4 kernels.
    for shape in [
        vec![7usize, 33],
        vec![3, 5, 7, 9],
        vec![1, 3],
        vec![9, 12],
        vec![5, 128],
    ] {
        let layout = ChannelLayout::of(&shape, 1).unwrap();
        let (c, n) = (layout.channels, layout.numel());
        let x = rng.vec(n, -2.0, 3.0);
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -0.5, 0.5);
        let (xt, gt, bt) = (t(&dev, &x), t(&dev, &gamma), t(&dev, &beta));
        let stats = dev.full(&[2 * c], f32::NAN).unwrap();
        let out = dev.full(&[n], f32::NAN).unwrap();
        let k1 = moments_kernel(&dev, stats.buffer(), xt.buffer(), layout).unwrap();
        let k2 = normalize_kernel(
            &dev,
            out.buffer(),
            xt.buffer(),
            stats.buffer(),
            gt.buffer(),
            bt.buffer(),
            layout,
            1e-3,
        )
        .unwrap();
        dev.run(&[&k1, &k2]).unwrap();
        // f64 reference
        let ch = |i: usize| (i / layout.inner) % c;
        let m = layout.per_channel() as f64;
        let mut mean = vec![0.0f64; c];
        for (i, &v) in x.iter().enumerate() {
            mean[ch(i)] += v as f64 / m;
        }
        let mut var = vec![0.0f64; c];
        for (i, &v) in x.iter().enumerate() {
            var[ch(i)] += (v as f64 - mean[ch(i)]).powi(2) / m;
        }
        let want_stats: Vec<f64> = mean.iter().chain(&var).copied().collect();
        close(
            &format!("moments {shape:?}"),
            &stats.to_vec_f32().unwrap(),
            &want_stats,
            1e-5,
        );
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let k = ch(i);
                (x[i] as f64 - mean[k]) / (var[k] + 1e-3).sqrt() * gamma[k] as f64 + beta[k] as f64
            })
            .collect();
        close(
            &format!("normalize {shape:?}"),
            &out.to_vec_f32().unwrap(),
            &want,
            1e-5,
        );
    }
}

#[test]
fn dropout_masks_match_the_reference_and_the_rate() {
    let dev = device();
    let n = 10_007;
    let out = dev.full(&[n], f32::NAN).unwrap();
    let ones = dev.full(&[n], 1.0).unwrap();
    for (step, rate) in [(0u32, 0.3f32), (5, 0.3), (5, 0.5)] {
        let s = t(&dev, &[step as f32]);
        let k =
            dropout_kernel(&dev, out.buffer(), ones.buffer(), n, 1234, rate, s.buffer()).unwrap();
        dev.run(&[&k]).unwrap();
        let got = out.to_vec_f32().unwrap();
        let want: Vec<f32> = (0..n as u32)
            .map(|i| reference_dropout(1234, step, i, rate))
            .collect();
        assert_eq!(got, want, "step {step} rate {rate}");
        let kept = got.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!(
            (kept - (1.0 - rate as f64)).abs() < 0.02,
            "kept fraction {kept}"
        );
        assert!(got
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / (1.0 - rate)).abs() < 1e-6));
    }
    let s = t(&dev, &[0.0]);
    assert!(dropout_kernel(&dev, out.buffer(), ones.buffer(), n, 1, 1.0, s.buffer()).is_err());
}

#[test]
fn adam_and_sgd_steps_follow_their_formulas() {
    // 256 takes the vec4 Adam kernel, 257 the scalar one.
    for n in [257, 256] {
        optimizer_steps(n);
    }
}

fn optimizer_steps(n: usize) {
    let dev = device();
    let mut rng = Rng(9);
    let w0 = rng.vec(n, -1.0, 1.0);
    let g = rng.vec(n, -0.5, 0.5);
    let m0 = rng.vec(n, -0.1, 0.1);
    let v0 = rng.vec(n, 0.0, 0.01);
    // Adam (Keras form) with L2 and decoupled decay both on, to see each term.
    let hyper = [0.01f32, 1e-7, 0.9, 0.999, 0.001, 0.01, 0.0, 0.0];
    let (w, gt, m, v, h) = (
        t(&dev, &w0),
        t(&dev, &g),
        t(&dev, &m0),
        t(&dev, &v0),
        t(&dev, &hyper),
    );
    let k = optimizer_step_kernel(
        &dev,
        UpdateRule::Adam,
        n,
        w.buffer(),
        gt.buffer(),
        (m.buffer(), Some(v.buffer())),
        h.buffer(),
    )
    .unwrap();
    dev.run(&[&k]).unwrap();
    let (mut ww, mut mm, mut vv) = (vec![], vec![], vec![]);
    for i in 0..n {
        let p = w0[i] as f64;
        let gi = g[i] as f64 + 0.01 * p;
        let mi = 0.9 * m0[i] as f64 + 0.1 * gi;
        let vi = 0.999 * v0[i] as f64 + 0.001 * gi * gi;
        mm.push(mi);
        vv.push(vi);
        ww.push(p - 0.001 * p - 0.01 * mi / (vi.sqrt() + 1e-7));
    }
    close("adam m", &m.to_vec_f32().unwrap(), &mm, 1e-6);
    close("adam v", &v.to_vec_f32().unwrap(), &vv, 1e-6);
    close("adam w", &w.to_vec_f32().unwrap(), &ww, 1e-5);
    // SGD with momentum, weight decay and Nesterov.
    let w = t(&dev, &w0);
    let b = t(&dev, &m0);
    let h = t(&dev, &[0.1, 0.9, 0.01, 1.0, 0.0, 0.0, 0.0, 0.0]);
    let k = optimizer_step_kernel(
        &dev,
        UpdateRule::Sgd,
        n,
        w.buffer(),
        gt.buffer(),
        (b.buffer(), None),
        h.buffer(),
    )
    .unwrap();
    dev.run(&[&k]).unwrap();
    let (mut ww, mut bb) = (vec![], vec![]);
    for i in 0..n {
        let gi = g[i] as f64 + 0.01 * w0[i] as f64;
        let bi = 0.9 * m0[i] as f64 + gi;
        bb.push(bi);
        ww.push(w0[i] as f64 - 0.1 * (gi + 0.9 * bi));
    }
    close("sgd buffer", &b.to_vec_f32().unwrap(), &bb, 1e-6);
    close("sgd w", &w.to_vec_f32().unwrap(), &ww, 1e-6);
    // A missing state buffer is an error, not a fault.
    assert!(optimizer_step_kernel(
        &dev,
        UpdateRule::Adam,
        n,
        w.buffer(),
        gt.buffer(),
        (b.buffer(), None),
        h.buffer()
    )
    .is_err());
}

#[test]
fn running_statistics_and_accumulators() {
    let dev = device();
    let running = t(&dev, &[0.0, 1.0, 1.0, 2.0]); // mean [0, 1], var [1, 2]
    let batch = t(&dev, &[1.0, 3.0, 4.0, 6.0]);
    let k = running_stats_kernel(&dev, 2, running.buffer(), batch.buffer(), 0.9, 2.0).unwrap();
    dev.run(&[&k]).unwrap();
    close(
        "running",
        &running.to_vec_f32().unwrap(),
        &[0.1, 1.2, 0.9 + 0.1 * 2.0 * 4.0, 1.8 + 0.1 * 2.0 * 6.0],
        1e-6,
    );
    let acc = t(&dev, &[1.5]);
    let v = t(&dev, &[2.0]);
    let k = axpby_kernel(&dev, 1, acc.buffer(), v.buffer(), 1.0, 32.0).unwrap();
    dev.run(&[&k, &k]).unwrap();
    assert_eq!(acc.to_vec_f32().unwrap(), vec![1.5 + 128.0]);
    // A one-element accumulator of a sum.
    let acc = t(&dev, &[0.5]);
    let values: Vec<f32> = (1..=37).map(|i| i as f32).collect();
    let v = t(&dev, &values);
    let k = accumulate_sum_kernel(&dev, 37, acc.buffer(), v.buffer(), 0.5, 0.1).unwrap();
    dev.run(&[&k]).unwrap();
    close(
        "accumulate sum",
        &acc.to_vec_f32().unwrap(),
        &[0.25 + 0.1 * 703.0],
        1e-6,
    );
    // A sum of a binary op straight into an accumulator.
    let p = t(&dev, &[0.2, 0.9, 0.6]);
    let y = t(&dev, &[0.0, 1.0, 0.0]);
    let acc = t(&dev, &[1.0]);
    let lay = StridedLayout::contiguous(&[3]);
    let k = kiln_backend::ops::elementwise::accumulate_binary_kernel(
        &dev,
        BinaryOp::BceTerm,
        acc.buffer(),
        kiln_backend::ops::elementwise::Operand {
            buffer: p.buffer(),
            layout: lay.clone(),
        },
        kiln_backend::ops::elementwise::Operand {
            buffer: y.buffer(),
            layout: lay,
        },
        0.5,
        2.0,
    )
    .unwrap();
    dev.run(&[&k]).unwrap();
    let want = 0.5 + 2.0 * -((0.8f64).ln() + (0.9f64).ln() + (0.4f64).ln());
    close(
        "accumulate binary",
        &acc.to_vec_f32().unwrap(),
        &[want],
        1e-6,
    );
    // Two accumulators from one pass: a loss and an accuracy.
    let (acc1, acc2) = (t(&dev, &[0.0]), t(&dev, &[2.0]));
    let lay = StridedLayout::contiguous(&[3]);
    let k = kiln_backend::ops::elementwise::accumulate_binary_pair_kernel(
        &dev,
        [BinaryOp::BceTerm, BinaryOp::BinaryAccuracy],
        [acc1.buffer(), acc2.buffer()],
        kiln_backend::ops::elementwise::Operand {
            buffer: p.buffer(),
            layout: lay.clone(),
        },
        kiln_backend::ops::elementwise::Operand {
            buffer: y.buffer(),
            layout: lay,
        },
        [1.0, 0.5],
        [1.0, 3.0],
    )
    .unwrap();
    dev.run(&[&k]).unwrap();
    let bce = -((0.8f64).ln() + (0.9f64).ln() + (0.4f64).ln());
    close("pair: loss", &acc1.to_vec_f32().unwrap(), &[bce], 1e-6);
    // accuracy of p = [0.2, 0.9, 0.6] against y = [0, 1, 0]: 2 hits
    close(
        "pair: accuracy",
        &acc2.to_vec_f32().unwrap(),
        &[1.0 + 3.0 * 2.0],
        1e-6,
    );
    // Pooled buffers are rounded up, so ask for far more than any bucket holds.
    assert!(axpby_kernel(&dev, 100_000, acc.buffer(), v.buffer(), 1.0, 1.0).is_err());
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
    let spare: Vec<Tensor> = (0..4).map(|_| dev.full(&[4], 0.0).unwrap()).collect();
    let slots: Vec<AdamSlot<'_>> = (0..3)
        .map(|k| AdamSlot {
            n: sizes[k],
            param: w[k].buffer(),
            grad: gt[k].buffer(),
            m: m[k].buffer(),
            v: v[k].buffer(),
        })
        .collect();
    let spares = [
        spare[0].buffer(),
        spare[1].buffer(),
        spare[2].buffer(),
        spare[3].buffer(),
    ];
    let k = adam_group_kernel(&dev, &slots, hyper.buffer(), spares).unwrap();
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
    assert_eq!(
        spare[0].to_vec_f32().unwrap(),
        vec![0.0; 4],
        "spare buffers untouched"
    );
    assert!(adam_group_kernel(&dev, &[], hyper.buffer(), spares).is_err());
}

#[test]
fn matmul_with_dropout_in_its_epilogue() {
    use kiln_backend::ops::matmul::*;
    use kiln_backend::ops::random::reference_dropout;
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
        let spec = MatmulSpec {
            m,
            n,
            k,
            batch: 1,
            a: MatmulOperand {
                buffer: at.buffer(),
                offset: 0,
                row_stride: if ta { m } else { k },
                batch_stride: 0,
            },
            b: MatmulOperand {
                buffer: bt.buffer(),
                offset: 0,
                row_stride: if tb { k } else { n },
                batch_stride: 0,
            },
            c: MatmulOperand {
                buffer: c.buffer(),
                offset: 0,
                row_stride: n,
                batch_stride: m * n,
            },
            trans_a: ta,
            trans_b: tb,
            bias: None,
            alpha: 1.0,
            beta: 0.0,
            activation: Activation::None,
            variant,
        };
        let drop = MatmulDropout {
            step: step.buffer(),
            seed: 5,
            rate: 0.25,
        };
        let kern = matmul_dropout_kernel(&dev, &spec, Some(drop)).unwrap();
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
