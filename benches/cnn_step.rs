//! The tutorial's SimpleCNN training step (Adam, sparse cross-entropy from
//! logits) at batch 64 on 3×32×32 images, on the default adapter.
//!
//! Reports the cold first step (adapter start-up and pipeline compilation
//! included), the warm step's median by criterion, dispatches per
//! step, and the step's useful work in GFLOP/s beside a same-process
//! baseline: the matrix-product kernel on a 1024³ product.
//! Run: `cargo bench --bench cnn_step`.

use std::time::{Duration, Instant};

use kiln::backend::codegen::{Epilogue, GemmKernel, GemmLoad, GemmSpec};
use kiln::backend::{DType, MatmulVariant, Tensor};
use kiln::prelude::*;

const BATCH: usize = 64;
/// Steps per round of the queued-against-waiting comparison.
const STEPS_PER_ROUND: usize = 5;
/// Runs of the matmul baseline.
const RUNS: usize = 5;

#[path = "common/timing.rs"]
mod timing;
use timing::{criterion, criterion_steps, median, with_and_without_waiting, SAMPLES};

/// Multiply-adds ×2 of one step: each convolution and linear layer runs
/// forward, input gradient (not for the first convolution) and weight
/// gradient, each costing the forward's FLOPs.
fn step_flops() -> f64 {
    let conv = |cin: f64, cout: f64, side: f64| 2.0 * cin * 9.0 * cout * side * side;
    let linear = |i: f64, o: f64| 2.0 * i * o;
    let per_image = conv(3.0, 32.0, 32.0) * 2.0
        + conv(32.0, 64.0, 16.0) * 3.0
        + linear(4096.0, 512.0) * 3.0
        + linear(512.0, 10.0) * 3.0;
    per_image * BATCH as f64
}

/// GFLOP/s of the matrix-product kernel on a 1024³ product.
fn matmul_gflops(device: &Device) -> anyhow::Result<f64> {
    let n = 1024;
    let data: Vec<f32> = (0..n * n).map(|i| (i % 97) as f32 / 97.0).collect();
    let a = Tensor::from_f32(device, &data, &[n, n])?;
    let c = Tensor::empty(device, &[n, n], DType::F32)?;
    let load = GemmLoad {
        buffer: a.buffer().clone(),
        offset: 0,
        row_stride: n,
        batch_stride: 0,
        transposed: false,
    };
    let spec = GemmSpec {
        m: n,
        n,
        k: n,
        shape: vec![n, n],
        a: load.clone(),
        b: load,
        variant: MatmulVariant::Auto,
    };
    let gemm = GemmKernel {
        label: "matmul".into(),
        spec,
        epilogue: Epilogue::anchor_into(c.buffer(), &[n, n]),
    };
    let kernel = device.build(&gemm.into())?;
    let mut times = Vec::new();
    for _ in 0..RUNS + 1 {
        let t = Instant::now();
        device.run(&[&kernel])?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0);
    Ok(2.0 * (n as f64).powi(3) / median(times) / 1e9)
}

fn main() -> anyhow::Result<()> {
    let start = Instant::now();
    let device = kiln::device_from_flag(None)?;
    manual_seed(1);
    let mut model = Model::new(&device, SimpleCnn::new(&device, 10)?, [3, 32, 32]);
    model.compile(
        Optimizer::adam_torch(1e-3),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )?;
    let mut rng = kiln::data::SplitMix64::new(7);
    let x: Vec<f32> = (0..BATCH * 3 * 32 * 32)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    let y: Vec<f32> = (0..BATCH).map(|i| (i % 10) as f32).collect();
    model.train_on_batch(&x, &y)?;
    device.synchronize()?;
    let cold = start.elapsed().as_secs_f64();
    if timing::stop_after_cold(cold) {
        return Ok(());
    }

    let mut c = criterion(Duration::from_secs(5));
    let timing = criterion_steps(&mut c, &device, "SimpleCNN", || {
        model.train_on_batch(&x, &y)?;
        Ok(())
    })?;
    let (step, dispatches) = (timing.warm, timing.dispatches);
    let gemm = median(
        (0..RUNS)
            .map(|_| matmul_gflops(&device))
            .collect::<anyhow::Result<_>>()?,
    );
    let (queued, waiting) = with_and_without_waiting(&device, 3, STEPS_PER_ROUND, || {
        model.train_on_batch(&x, &y)?;
        Ok(())
    })?;
    let memory = model.train_memory(BATCH)?;
    timing::print_profile_if_asked(|| Ok(model.profile_train_step(BATCH, 10)?))?;
    let step_gflops = step_flops() / step / 1e9;
    println!("device: {}", device.name());
    println!("SimpleCNN step, batch {BATCH}, 3x32x32, Adam:");
    println!("  cold first step      {cold:.2} s (from the start of main)");
    println!(
        "  warm step (median)   {:.1} ms over criterion's {SAMPLES} samples",
        step * 1e3
    );
    println!("  dispatches per step  {dispatches:.0}");
    println!(
        "  planned memory       {:.1} MiB",
        memory.total_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "  steps per second     {queued:.2} queued ahead, {waiting:.2} waiting after each (ratio {:.2})",
        queued / waiting
    );
    println!(
        "  step work            {:.2} GFLOP -> {step_gflops:.1} GFLOP/s",
        step_flops() / 1e9
    );
    println!("  matmul 1024^3        {gemm:.1} GFLOP/s (same process)");
    println!("  step / matmul        {:.2}", step_gflops / gemm);
    Ok(())
}
