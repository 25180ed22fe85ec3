//! Convolution throughput at ResNet-50 layer shapes: each pass (forward,
//! input gradient, weight gradient) beside the matrix-product kernel at the
//! same FLOP count (the convolution's equivalent GEMM: M = output channels,
//! N = output pixels of the batch, K = Cin·KH·KW), timed alternately in one
//! process. Prints the median GFLOP/s of each and their ratio.
//!
//! `cargo bench --bench conv` (`-- --quick` for one small batch)

use std::time::Instant;

use kiln::backend::codegen::{
    Conv2dGeometry, ConvKernel, ConvPass, ConvSpec, Epilogue, GemmKernel, GemmLoad, GemmSpec,
};
use kiln::backend::{DType, Device, Kernel, MatmulVariant, Tensor};

/// A ResNet-50 layer: name, in and out channels, input side, kernel, stride,
/// padding.
type Layer = (&'static str, usize, usize, usize, usize, usize, usize);

const LAYERS: [Layer; 3] = [
    ("conv1 7x7/2 3->64 @224", 3, 64, 224, 7, 2, 3),
    ("layer1 3x3 64->64 @56", 64, 64, 56, 3, 1, 1),
    ("layer3 1x1 1024->256 @14", 1024, 256, 14, 1, 1, 0),
];

fn filled(device: &Device, n: usize) -> Tensor {
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    Tensor::from_f32(device, &v, &[n]).unwrap()
}

/// One timed run of `kernel` (after a warm-up run), in seconds.
fn time(device: &Device, kernel: &Kernel) -> f64 {
    device.run(&[kernel]).unwrap();
    device.synchronize().unwrap();
    let start = Instant::now();
    device.run(&[kernel]).unwrap();
    device.synchronize().unwrap();
    start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let device = Device::auto().expect("an adapter (install mesa-vulkan-drivers for lavapipe)");
    let software = device.name().contains("llvmpipe");
    let batch = if quick || software { 1 } else { 16 };
    let runs = if quick { 3 } else { 7 };
    println!(
        "device: {}; batch {batch}; median of {runs} alternating runs",
        device.name()
    );
    println!(
        "| layer | pass | GFLOP | conv GFLOP/s | matmul GFLOP/s (same M·N·K) | conv / matmul |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, cin, cout, side, k, s, p) in LAYERS {
        let g = Conv2dGeometry {
            batch,
            in_channels: cin,
            out_channels: cout,
            input: [side, side],
            kernel: [k, k],
            stride: [s, s],
            pad: [p; 4],
            dilation: [1, 1],
        };
        let [oh, ow] = g.output().unwrap();
        let x = filled(&device, batch * cin * side * side);
        let w = filled(&device, cout * cin * k * k);
        let dy = filled(&device, batch * cout * oh * ow);
        let (m, n, kk) = (cout, batch * oh * ow, cin * k * k);
        let flops = 2.0 * (m * n * kk) as f64;
        for pass in [ConvPass::Forward, ConvPass::InputGrad, ConvPass::WeightGrad] {
            let (a, b, splits) = match pass {
                ConvPass::Forward => (&x, &w, 1),
                ConvPass::InputGrad => (&dy, &w, 1),
                ConvPass::WeightGrad => (&dy, &x, g.weight_grad_splits()),
            };
            let spec = ConvSpec {
                pass,
                geometry: g,
                a: a.buffer().clone(),
                b: b.buffer().clone(),
                splits,
            };
            let (space, _) = spec.space();
            let out = Tensor::empty(&device, &space, DType::F32).unwrap();
            let conv = ConvKernel {
                label: "conv".into(),
                spec,
                epilogue: Epilogue::anchor_into(out.buffer(), &space),
            };
            let conv = device.build(&conv.into()).unwrap();
            // The GEMM of the same size: [M, K]·[K, N].
            let (ga, gb) = (filled(&device, m * kk), filled(&device, kk * n));
            let gout = Tensor::empty(&device, &[m, n], DType::F32).unwrap();
            let gspec = GemmSpec {
                m,
                n,
                k: kk,
                shape: vec![m, n],
                a: GemmLoad {
                    buffer: ga.buffer().clone(),
                    offset: 0,
                    row_stride: kk,
                    batch_stride: 0,
                    transposed: false,
                },
                b: GemmLoad {
                    buffer: gb.buffer().clone(),
                    offset: 0,
                    row_stride: n,
                    batch_stride: 0,
                    transposed: false,
                },
                variant: MatmulVariant::Auto,
            };
            let gemm = GemmKernel {
                label: "matmul".into(),
                spec: gspec,
                epilogue: Epilogue::anchor_into(gout.buffer(), &[m, n]),
            };
            let gemm = device.build(&gemm.into()).unwrap();
            let (mut tc, mut tg) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                tc.push(time(&device, &conv));
                tg.push(time(&device, &gemm));
            }
            let (c, gm) = (flops / median(tc) / 1e9, flops / median(tg) / 1e9);
            println!(
                "| {name} | {pass:?} | {:.2} | {c:.1} | {gm:.1} | {:.2} |",
                flops / 1e9,
                c / gm
            );
        }
    }
}
