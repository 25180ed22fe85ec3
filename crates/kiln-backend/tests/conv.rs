//! The convolution and pooling kernels against direct f64 loops: the forward
//! pass as the textbook sum, the gradients as the adjoint (each output's
//! contribution scattered back), so that the gather the kernels do is
//! checked against an independent formulation. Odd sizes, asymmetric
//! padding, strides and dilations; outputs poisoned with NaN first.

use kiln_backend::codegen::*;
use kiln_backend::ops::elementwise::{BinaryOp, UnaryOp};
use kiln_backend::*;

mod common;
use common::*;

/// `(image, channel, row, column)` of an NCHW tensor, flattened.
fn at(shape: [usize; 4], n: usize, c: usize, h: usize, w: usize) -> usize {
    ((n * shape[1] + c) * shape[2] + h) * shape[3] + w
}

/// Every (output pixel, kernel tap, input pixel) triple of `g` whose input
/// pixel lies inside the input, for one image and channel pair.
fn taps(g: &Conv2dGeometry) -> Vec<([usize; 2], [usize; 2], [usize; 2])> {
    let [oh, ow] = g.output().unwrap();
    let mut out = Vec::new();
    for y in 0..oh {
        for x in 0..ow {
            for ky in 0..g.kernel[0] {
                for kx in 0..g.kernel[1] {
                    let hh = (y * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                    let ww = (x * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                    if hh >= 0
                        && ww >= 0
                        && (hh as usize) < g.input[0]
                        && (ww as usize) < g.input[1]
                    {
                        out.push(([y, x], [ky, kx], [hh as usize, ww as usize]));
                    }
                }
            }
        }
    }
    out
}

struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
}

/// The forward sum and, for an upstream gradient `dy`, both adjoints.
fn reference(g: &Conv2dGeometry, x: &[f32], w: &[f32], dy: &[f32]) -> Reference {
    let [oh, ow] = g.output().unwrap();
    let xs = [g.batch, g.in_channels, g.input[0], g.input[1]];
    let ws = [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]];
    let ys = [g.batch, g.out_channels, oh, ow];
    let mut r = Reference {
        y: vec![0.0; ys.iter().product()],
        dx: vec![0.0; xs.iter().product()],
        dw: vec![0.0; ws.iter().product()],
    };
    let taps = taps(g);
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            for ci in 0..g.in_channels {
                for &([y, xx], [ky, kx], [hh, ww]) in &taps {
                    let yi = at(ys, n, co, y, xx);
                    let xi = at(xs, n, ci, hh, ww);
                    let wi = at(ws, co, ci, ky, kx);
                    r.y[yi] += w[wi] as f64 * x[xi] as f64;
                    r.dx[xi] += w[wi] as f64 * dy[yi] as f64;
                    r.dw[wi] += x[xi] as f64 * dy[yi] as f64;
                }
            }
        }
    }
    r
}

fn geometries() -> Vec<Conv2dGeometry> {
    let g = |batch, cin, cout, input, kernel, stride, pad, dilation| Conv2dGeometry {
        batch,
        in_channels: cin,
        out_channels: cout,
        input,
        kernel,
        stride,
        pad,
        dilation,
    };
    vec![
        // 3×3 "same", the CNN's convolutions.
        g(2, 3, 5, [7, 9], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
        // ResNet's stem: 7×7, stride 2, padding 3.
        g(1, 3, 8, [20, 17], [7, 7], [2, 2], [3, 3, 3, 3], [1, 1]),
        // A 1×1 down-sampling projection.
        g(2, 16, 17, [9, 9], [1, 1], [2, 2], [0, 0, 0, 0], [1, 1]),
        // Everything uneven: rectangular kernel, strides, padding, dilation.
        g(3, 4, 9, [11, 10], [3, 2], [2, 3], [1, 0, 2, 1], [2, 1]),
        // The CNN's first layer: one input channel, so K of the weight
        // gradient's columns is 9, one block and a bit.
        g(8, 1, 32, [32, 32], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
        // More than one block of rows and columns, no padding.
        g(2, 10, 70, [12, 13], [2, 3], [1, 1], [0, 0, 0, 0], [1, 2]),
        // Output rows of 8: a lane's columns share a row and read one
        // window, here with stride 2 (forward only; the input gradient's
        // rows are 16 wide and strided, so it gathers).
        g(2, 3, 6, [16, 16], [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
        // Windows with dilation and uneven padding, both passes (rows of 8
        // in and out, 3 images side by side).
        g(3, 2, 5, [6, 8], [3, 3], [1, 1], [1, 2, 0, 2], [2, 2]),
        // A kernel 4 wide over rows of 12: the weight gradient's pairs of
        // channel and kernel row fill all four tap slots.
        g(2, 5, 9, [7, 12], [2, 4], [1, 1], [0, 1, 1, 2], [1, 1]),
        // Pointwise: run as a matrix product per image.
        g(3, 20, 17, [9, 7], [1, 1], [1, 1], [0, 0, 0, 0], [1, 1]),
    ]
}

fn upload(dev: &Device, v: &[f32]) -> Tensor {
    nan_tailed(dev, v, &[v.len()])
}

fn conv_spec(
    geometry: Conv2dGeometry,
    pass: ConvPass,
    a: &Tensor,
    b: &Tensor,
    splits: usize,
) -> ConvSpec {
    ConvSpec {
        pass,
        geometry,
        a: a.buffer().clone(),
        b: b.buffer().clone(),
        splits,
    }
}

/// The pass of `spec` storing the bare product (the anchor) contiguously
/// into `out` over `spec`'s iteration space.
fn bare_conv(spec: &ConvSpec, out: &Tensor) -> KernelDescription {
    let (space, _) = spec.space();
    conv(spec.clone(), Epilogue::anchor_into(out.buffer(), &space))
}

fn conv(spec: ConvSpec, epilogue: Epilogue) -> KernelDescription {
    ConvKernel {
        label: "conv".into(),
        spec,
        epilogue,
    }
    .into()
}

fn pool(kind: PoolKind, geometry: &Pool2dGeometry, io: PoolIo) -> KernelDescription {
    PoolKernel {
        label: "pool".into(),
        kind,
        geometry: *geometry,
        io,
    }
    .into()
}

/// Runs one pass storing the bare product to a poisoned tensor.
fn run_pass(dev: &Device, spec: &ConvSpec) -> Vec<f32> {
    let out = poisoned(dev, &spec.space().0);
    let k = dev.build(&bare_conv(spec, &out)).unwrap();
    dev.run(&[&k]).unwrap();
    out.to_vec_f32().unwrap()
}

#[test]
fn convolution_passes_match_direct_loops() {
    for dev in devices() {
        passes_match_direct_loops(&dev);
    }
}

fn passes_match_direct_loops(dev: &Device) {
    let dev = dev.clone();
    let mut rng = Rng(31);
    for g in geometries() {
        let [oh, ow] = g.output().unwrap();
        let x = rng.vec(g.batch * g.in_channels * g.input[0] * g.input[1], -1.0, 1.0);
        let w = rng.vec(
            g.out_channels * g.in_channels * g.kernel[0] * g.kernel[1],
            -1.0,
            1.0,
        );
        let dy = rng.vec(g.batch * g.out_channels * oh * ow, -1.0, 1.0);
        let want = reference(&g, &x, &w, &dy);
        let (xt, wt, dyt) = (upload(&dev, &x), upload(&dev, &w), upload(&dev, &dy));
        let spec = |pass, a, b, splits| conv_spec(g, pass, a, b, splits);
        let y = run_pass(&dev, &spec(ConvPass::Forward, &xt, &wt, 1));
        assert_close(&format!("{g:?} forward"), &y, &want.y, 1e-4, 1e-4);
        let dx = run_pass(&dev, &spec(ConvPass::InputGrad, &dyt, &wt, 1));
        assert_close(&format!("{g:?} input gradient"), &dx, &want.dx, 1e-4, 1e-4);
        for splits in [1, 2, g.batch] {
            let partial = run_pass(&dev, &spec(ConvPass::WeightGrad, &dyt, &xt, splits));
            let len = want.dw.len();
            assert_eq!(partial.len(), splits * len);
            let dw: Vec<f32> = (0..len)
                .map(|i| (0..splits).map(|s| partial[s * len + i]).sum())
                .collect();
            // Sums of thousands of terms: judged by the relative norm.
            let err = relative_norm_error(&dw, &want.dw);
            assert!(
                err < 1e-5,
                "{g:?} weight gradient in {splits} groups: error {err:e}"
            );
        }
    }
}

#[test]
fn convolution_epilogue_adds_a_channel_bias_and_activates() {
    for g in [geometries()[3], *geometries().last().unwrap()] {
        bias_relu_epilogue(g);
    }
}

fn bias_relu_epilogue(g: Conv2dGeometry) {
    let dev = device();
    let mut rng = Rng(5);
    let [oh, ow] = g.output().unwrap();
    let x = rng.vec(g.batch * g.in_channels * g.input[0] * g.input[1], -1.0, 1.0);
    let w = rng.vec(
        g.out_channels * g.in_channels * g.kernel[0] * g.kernel[1],
        -1.0,
        1.0,
    );
    let bias = rng.vec(g.out_channels, -1.0, 1.0);
    let want = reference(&g, &x, &w, &vec![0.0; g.batch * g.out_channels * oh * ow]);
    let (xt, wt, bt) = (upload(&dev, &x), upload(&dev, &w), upload(&dev, &bias));
    let spec = ConvSpec {
        pass: ConvPass::Forward,
        geometry: g,
        a: xt.buffer().clone(),
        b: wt.buffer().clone(),
        splits: 1,
    };
    let (space, _) = spec.space();
    let out = poisoned(&dev, &space);
    let mut p = Program::default();
    let anchor = p.push(Expr::Anchor);
    let b = p.push(Expr::Load(0));
    let sum = p.push(Expr::Binary(BinaryOp::Add, anchor, b));
    let relu = p.push(Expr::Unary(UnaryOp::Relu, sum));
    let per_channel = StridedLayout {
        shape: space.clone(),
        strides: vec![0, 1, 0, 0],
        offset: 0,
    };
    let epilogue = Epilogue {
        program: p,
        operands: vec![Operand {
            buffer: bt.buffer().clone(),
            layout: per_channel,
        }],
        stores: vec![Store {
            expr: relu,
            buffer: out.buffer().clone(),
            layout: StridedLayout::contiguous(&space),
        }],
    };
    let k = dev.build(&conv(spec, epilogue)).unwrap();
    dev.run(&[&k]).unwrap();
    let plane = oh * ow;
    let expect: Vec<f64> = want
        .y
        .iter()
        .enumerate()
        .map(|(i, v)| (v + bias[(i / plane) % g.out_channels] as f64).max(0.0))
        .collect();
    assert_close(
        "conv + bias + relu",
        &out.to_vec_f32().unwrap(),
        &expect,
        1e-4,
        1e-4,
    );
}

#[test]
fn convolution_rejects_what_does_not_fit() {
    let dev = device();
    let t = upload(&dev, &[1.0; 16]);
    let mut g = geometries()[0];
    g.kernel = [11, 11];
    let spec = ConvSpec {
        pass: ConvPass::Forward,
        geometry: g,
        a: t.buffer().clone(),
        b: t.buffer().clone(),
        splits: 1,
    };
    let mut p = Program::default();
    let v = p.push(Expr::Anchor);
    let store = Store {
        expr: v,
        buffer: t.buffer().clone(),
        layout: StridedLayout::contiguous(&[16]),
    };
    let epilogue = Epilogue {
        program: p,
        operands: vec![],
        stores: vec![store],
    };
    let err = dev
        .build(&conv(spec.clone(), epilogue.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
    // A kernel that fits, but buffers far too small for the geometry.
    let spec = ConvSpec {
        geometry: geometries()[0],
        ..spec
    };
    let err = dev.build(&conv(spec, epilogue)).unwrap_err();
    assert!(err.to_string().contains("iteration space"), "{err}");
}

/// Pooling by direct loops: per output window, its taps inside the input,
/// and the divisor of an average.
struct PoolReference {
    y: Vec<f64>,
    /// The first maximum's plane index per window (max pooling).
    index: Vec<usize>,
    /// `dx` for upstream `dy`, scattered window by window.
    dx: Vec<f64>,
}

fn pool_reference(kind: PoolKind, g: &Pool2dGeometry, x: &[f32], dy: &[f32]) -> PoolReference {
    let [oh, ow] = g.output().unwrap();
    let [h, w] = g.input;
    let mut r = PoolReference {
        y: vec![],
        index: vec![],
        dx: vec![0.0; x.len()],
    };
    for p in 0..g.planes {
        for y in 0..oh {
            for xx in 0..ow {
                let mut inside = Vec::new();
                let mut padded = 0usize;
                for ky in 0..g.kernel[0] {
                    for kx in 0..g.kernel[1] {
                        let hh =
                            (y * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                        let ww =
                            (xx * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                        let in_padded =
                            hh < (h + g.pad[2]) as isize && ww < (w + g.pad[3]) as isize;
                        padded += in_padded as usize;
                        if hh >= 0 && ww >= 0 && (hh as usize) < h && (ww as usize) < w {
                            inside.push(hh as usize * w + ww as usize);
                        }
                    }
                }
                let o = (p * oh + y) * ow + xx;
                match kind {
                    PoolKind::Max => {
                        let best = inside
                            .iter()
                            .copied()
                            .reduce(|a, b| {
                                if x[p * h * w + b] > x[p * h * w + a] {
                                    b
                                } else {
                                    a
                                }
                            })
                            .unwrap();
                        r.y.push(x[p * h * w + best] as f64);
                        r.index.push(best);
                        r.dx[p * h * w + best] += dy[o] as f64;
                    }
                    PoolKind::Average { count_include_pad } => {
                        let divisor = if count_include_pad {
                            padded
                        } else {
                            inside.len()
                        } as f64;
                        let sum: f64 = inside.iter().map(|&i| x[p * h * w + i] as f64).sum();
                        r.y.push(sum / divisor);
                        for &i in &inside {
                            r.dx[p * h * w + i] += dy[o] as f64 / divisor;
                        }
                    }
                }
            }
        }
    }
    r
}

fn pool_geometries() -> Vec<Pool2dGeometry> {
    let g = |planes, input, kernel, stride, pad, dilation, ceil_mode| Pool2dGeometry {
        planes,
        input,
        kernel,
        stride,
        pad,
        dilation,
        ceil_mode,
    };
    vec![
        // The CNN's 2×2 stride-2 pooling, on an odd size (last row dropped).
        g(6, [7, 9], [2, 2], [2, 2], [0; 4], [1, 1], false),
        // ResNet's 3×3 stride-2 pooling padded by 1.
        g(4, [16, 15], [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], false),
        // ceil_mode keeps a last, partial window.
        g(3, [7, 8], [3, 2], [2, 3], [1, 0, 1, 0], [1, 1], true),
        // Overlapping, dilated and asymmetric windows.
        g(2, [10, 11], [3, 3], [1, 2], [2, 1, 0, 2], [2, 1], false),
        // Dilated windows apart from each other, padded: an input pixel
        // falls in one window or between taps or windows.
        g(2, [11, 10], [2, 2], [4, 3], [1, 0, 0, 1], [2, 1], false),
    ]
}

#[test]
fn pooling_forward_and_backward_match_direct_loops() {
    let dev = device();
    let mut rng = Rng(77);
    for g in pool_geometries() {
        let [oh, ow] = g.output().unwrap();
        let x = rng.vec(g.planes * g.input[0] * g.input[1], -1.0, 1.0);
        let dy = rng.vec(g.planes * oh * ow, -1.0, 1.0);
        let (xt, dyt) = (upload(&dev, &x), upload(&dev, &dy));
        for kind in [
            PoolKind::Max,
            PoolKind::Average {
                count_include_pad: true,
            },
            PoolKind::Average {
                count_include_pad: false,
            },
        ] {
            let want = pool_reference(kind, &g, &x, &dy);
            let what = format!("{kind:?} {g:?}");
            let y = poisoned(&dev, &[g.planes, oh, ow]);
            let idx = poisoned(&dev, &[g.planes, oh, ow]);
            let is_max = kind == PoolKind::Max;
            let io = PoolIo::Forward {
                x: xt.buffer().clone(),
                y: Some(y.buffer().clone()),
                indices: is_max.then(|| idx.buffer().clone()),
            };
            dev.run(&[&dev.build(&pool(kind, &g, io)).unwrap()])
                .unwrap();
            assert_close(&what, &y.to_vec_f32().unwrap(), &want.y, 1e-5, 1e-6);
            if kind == PoolKind::Max {
                let got: Vec<usize> = idx
                    .to_vec_f32()
                    .unwrap()
                    .iter()
                    .map(|&v| v as usize)
                    .collect();
                assert_eq!(got, want.index, "{what}: indices");
            }
            let dx = poisoned(&dev, &[g.planes, g.input[0], g.input[1]]);
            let io = PoolIo::Backward {
                dy: dyt.buffer().clone(),
                indices: is_max.then(|| idx.buffer().clone()),
                dx: dx.buffer().clone(),
            };
            dev.run(&[&dev.build(&pool(kind, &g, io)).unwrap()])
                .unwrap();
            assert_close(
                &format!("{what} gradient"),
                &dx.to_vec_f32().unwrap(),
                &want.dx,
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn max_pooling_keeps_the_first_maximum_and_propagates_nan() {
    let dev = device();
    let g = Pool2dGeometry {
        planes: 2,
        input: [2, 2],
        kernel: [2, 2],
        stride: [2, 2],
        pad: [0; 4],
        dilation: [1, 1],
        ceil_mode: false,
    };
    let x = upload(&dev, &[3.0, 5.0, 5.0, 1.0, 2.0, f32::NAN, 9.0, 1.0]);
    let (y, idx) = (poisoned(&dev, &[2]), poisoned(&dev, &[2]));
    let io = PoolIo::Forward {
        x: x.buffer().clone(),
        y: Some(y.buffer().clone()),
        indices: Some(idx.buffer().clone()),
    };
    dev.run(&[&dev.build(&pool(PoolKind::Max, &g, io)).unwrap()])
        .unwrap();
    let y = y.to_vec_f32().unwrap();
    assert_eq!(y[0], 5.0);
    assert!(
        y[1].is_nan(),
        "a NaN in the window is the maximum, as in PyTorch"
    );
    assert_eq!(idx.to_vec_f32().unwrap(), vec![1.0, 1.0]);
}

#[test]
fn pooling_output_sizes_follow_pytorch() {
    // torch.nn.MaxPool2d(3, 2, padding=1, ceil_mode=…) on 7×7 and 8×8, and
    // the window that would start in the trailing padding dropped.
    let size = |input, kernel, stride, pad, ceil_mode| {
        Pool2dGeometry {
            planes: 1,
            input: [input, input],
            kernel: [kernel, kernel],
            stride: [stride, stride],
            pad: [pad; 4],
            dilation: [1, 1],
            ceil_mode,
        }
        .output()
        .map(|o| o[0])
    };
    assert_eq!(size(7, 3, 2, 1, false), Some(4));
    assert_eq!(size(8, 3, 2, 1, false), Some(4));
    assert_eq!(size(8, 3, 2, 1, true), Some(5));
    assert_eq!(size(5, 2, 2, 0, true), Some(3));
    assert_eq!(size(6, 3, 3, 1, true), Some(3));
    assert_eq!(size(3, 2, 2, 1, true), Some(2));
    assert_eq!(size(2, 3, 1, 0, false), None);
}

#[test]
fn every_conv_and_pool_source_validates_with_naga() {
    for dev in devices() {
        conv_and_pool_sources_validate(&dev);
    }
}

/// Every conv and pool source validates with the capabilities `dev` was
/// opened with (subgroups where it has them: lanes may share rows).
fn conv_and_pool_sources_validate(dev: &Device) {
    let capabilities = match dev.summary().subgroups {
        true => naga::valid::Capabilities::SUBGROUP,
        false => naga::valid::Capabilities::empty(),
    } | naga::valid::Capabilities::default();
    let big = upload(dev, &vec![0.0; 1 << 20]);
    let other = upload(dev, &vec![0.0; 1 << 20]);
    let out = upload(dev, &vec![0.0; 1 << 20]);
    let validate = |what: &str, source: String| {
        let source = format!("{}\n{source}", kiln_backend::shaders::prelude());
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{what} does not parse:\n{}", e.emit_to_string(&source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{what} does not validate:\n{}", e.emit_to_string(&source)));
    };
    for g in geometries() {
        for pass in [ConvPass::Forward, ConvPass::InputGrad, ConvPass::WeightGrad] {
            let spec = conv_spec(g, pass, &other, &big, 1);
            let source = bare_conv(&spec, &out).source(dev.kernel_profile());
            validate(&format!("{pass:?} {g:?}"), source.unwrap().unwrap());
        }
    }
    for g in pool_geometries() {
        for kind in [
            PoolKind::Max,
            PoolKind::Average {
                count_include_pad: false,
            },
        ] {
            let is_max = kind == PoolKind::Max;
            let indices = is_max.then(|| big.buffer().clone());
            for io in [
                PoolIo::Forward {
                    x: other.buffer().clone(),
                    y: Some(out.buffer().clone()),
                    indices: indices.clone(),
                },
                PoolIo::Backward {
                    dy: other.buffer().clone(),
                    indices: indices.clone(),
                    dx: out.buffer().clone(),
                },
            ] {
                let what = format!("{kind:?} {io:?}");
                let source = pool(kind, &g, io).source(dev.kernel_profile());
                validate(&what, source.unwrap().unwrap());
            }
        }
    }
}
