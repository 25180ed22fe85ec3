//! f32 matmul throughput on the default adapter against the `matrixmultiply`
//! crate's sgemm on the CPU, at the same sizes and in the same run.
//! Throughput is reported in elements/s where one element is one flop
//! (2·n³ per product), so `Gelem/s` reads as GFLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::backend::{
    ops::matmul::{matmul_kernel, MatmulOperand, MatmulSpec},
    Activation, Device, MatmulVariant, Tensor,
};

const SIZES: [usize; 4] = [256, 512, 1024, 2048];

fn inputs(n: usize) -> Vec<f32> {
    (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn gpu(c: &mut Criterion) {
    let device = Device::auto().expect("an adapter (install mesa-vulkan-drivers for lavapipe)");
    let mut group = c.benchmark_group(format!("matmul_gpu/{}", device.name()));
    group.sample_size(10);
    for n in SIZES {
        let data = inputs(n);
        let a = Tensor::from_f32(&device, &data, &[n, n]).unwrap();
        let b = Tensor::from_f32(&device, &data, &[n, n]).unwrap();
        let out = Tensor::empty(&device, &[n, n], kiln::backend::DType::F32).unwrap();
        fn op(t: &Tensor, n: usize) -> MatmulOperand<'_> {
            MatmulOperand {
                buffer: t.buffer(),
                offset: 0,
                row_stride: n,
                batch_stride: n * n,
            }
        }
        let spec = MatmulSpec {
            m: n,
            n,
            k: n,
            batch: 1,
            a: op(&a, n),
            b: op(&b, n),
            c: op(&out, n),
            trans_a: false,
            trans_b: false,
            bias: None,
            alpha: 1.0,
            beta: 0.0,
            activation: Activation::None,
            variant: MatmulVariant::Auto,
        };
        let kernel = matmul_kernel(&device, &spec).unwrap();
        device.run(&[&kernel]).unwrap();
        device.synchronize().unwrap();
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| {
                device.run(&[&kernel]).unwrap();
                device.synchronize().unwrap();
            })
        });
    }
    group.finish();
}

fn cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_cpu/matrixmultiply_sgemm");
    group.sample_size(10);
    for n in SIZES {
        let a = inputs(n);
        let b = inputs(n);
        let mut out = vec![0f32; n * n];
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
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

criterion_group!(benches, gpu, cpu);
criterion_main!(benches);
