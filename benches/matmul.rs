//! f32 matmul throughput on the default adapter against the `matrixmultiply`
//! crate's sgemm on the CPU, at the same sizes and in the same run, plus the
//! transposed layouts that backward passes use.
//! Throughput is reported in elements/s where one element is one flop
//! (2·n³ per product), so `Gelem/s` reads as GFLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::backend::codegen::{Epilogue, GemmKernel, GemmLoad, GemmSpec};
use kiln::backend::{DType, Device, Kernel, MatmulVariant, Tensor};

const SIZES: [usize; 4] = [256, 512, 1024, 2048];

/// The sizes to time: `KILN_MATMUL_SIZES=4096` (a comma list) replaces the
/// default ones, as scripts/gpu-check.sh does on a GPU.
fn sizes() -> Vec<usize> {
    std::env::var("KILN_MATMUL_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| SIZES.to_vec())
}

fn inputs(n: usize) -> Vec<f32> {
    (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn operand(t: &Tensor, n: usize, transposed: bool) -> GemmLoad {
    GemmLoad {
        buffer: t.buffer().clone(),
        offset: 0,
        row_stride: n,
        batch_stride: n * n,
        transposed,
    }
}

/// An n×n·n×n product with the given transposes, and the tensors it binds.
fn square_kernel(
    device: &Device,
    n: usize,
    trans: (bool, bool),
    variant: MatmulVariant,
) -> (Kernel, [Tensor; 3]) {
    let data = inputs(n);
    let a = Tensor::from_f32(device, &data, &[n, n]).unwrap();
    let b = Tensor::from_f32(device, &data, &[n, n]).unwrap();
    let c = Tensor::empty(device, &[n, n], DType::F32).unwrap();
    let spec = GemmSpec {
        m: n,
        n,
        k: n,
        shape: vec![n, n],
        a: operand(&a, n, trans.0),
        b: operand(&b, n, trans.1),
        variant,
    };
    let gemm = GemmKernel {
        label: "matmul".into(),
        spec,
        epilogue: Epilogue::anchor_into(c.buffer(), &[n, n]),
    };
    let kernel = device.build(&gemm.into()).unwrap();
    (kernel, [a, b, c])
}

fn time_kernel(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    device: &Device,
    id: BenchmarkId,
    kernel: &Kernel,
) {
    device.run(&[kernel]).unwrap();
    device.synchronize().unwrap();
    group.bench_function(id, |bench| {
        bench.iter(|| {
            device.run(&[kernel]).unwrap();
            device.synchronize().unwrap();
        })
    });
}

fn gpu(c: &mut Criterion) {
    let device = Device::auto().expect("an adapter (install mesa-vulkan-drivers for lavapipe)");
    let mut group = c.benchmark_group(format!("matmul_gpu/{}", device.name()));
    group.sample_size(10);
    for n in sizes() {
        let (kernel, _keep) = square_kernel(&device, n, (false, false), MatmulVariant::Auto);
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        time_kernel(&mut group, &device, BenchmarkId::from_parameter(n), &kernel);
    }
    group.finish();
}

fn gpu_layouts(c: &mut Criterion) {
    let device = Device::auto().expect("an adapter");
    let n = 1024;
    let mut group = c.benchmark_group(format!("matmul_gpu_layouts_1024/{}", device.name()));
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
    let cases = [
        ("A·B auto", (false, false), MatmulVariant::Auto),
        ("A·Bt auto", (false, true), MatmulVariant::Auto),
        ("At·B auto", (true, false), MatmulVariant::Auto),
        ("At·B vec4", (true, false), MatmulVariant::Vec4),
        ("A·Bt scalar-blocked", (false, true), MatmulVariant::Blocked),
        ("At·Bt auto", (true, true), MatmulVariant::Auto),
        ("A·B scalar-blocked", (false, false), MatmulVariant::Blocked),
        ("A·B tiled", (false, false), MatmulVariant::Tiled),
    ];
    for (name, trans, variant) in cases {
        let (kernel, _keep) = square_kernel(&device, n, trans, variant);
        time_kernel(
            &mut group,
            &device,
            BenchmarkId::from_parameter(name),
            &kernel,
        );
    }
    group.finish();
}

fn cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_cpu/matrixmultiply_sgemm");
    group.sample_size(10);
    for n in sizes() {
        let a = inputs(n);
        let b = inputs(n);
        let mut out = vec![0f32; n * n];
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            // SAFETY: the pointers address n×n matrices with the strides given.
            bench.iter(|| unsafe {
                matrixmultiply::sgemm(
                    n,
                    n,
                    n,
                    1.0,
                    a.as_ptr(),
                    n as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    out.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gpu, gpu_layouts, cpu);
criterion_main!(benches);
