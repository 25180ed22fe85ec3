//! The tutorial's LSTM forecaster's training step (LSTM 50 relu, sequences
//! → LSTM 50 relu → Dense 1; MSE, Adam) at batch 32 on windows of 10 steps
//! × 3 features (the tutorial's input shape), on the default adapter.
//!
//! Reports the cold first step (adapter start-up and every pipeline
//! compiled), the warm step's median over several runs, dispatches and
//! submissions per step, and a same-process baseline: one submission of
//! one tiny kernel. Run: `cargo bench --bench lstm_step`.

use std::time::Instant;

use kiln::prelude::*;

const BATCH: usize = 32;
const FEATURES: usize = 3;
const STEPS_PER_RUN: usize = 20;
const RUNS: usize = 7;

#[path = "common/timing.rs"]
mod timing;
use timing::{one_kernel_baseline, time_steps, with_and_without_waiting};

fn main() -> anyhow::Result<()> {
    let start = Instant::now();
    let device = kiln::device_from_flag(None)?;
    let mut model = Sequential::new(&device, [10, FEATURES])
        .seed(1)
        .lstm(50, Activation::Relu, true)
        .lstm(50, Activation::Relu, false)
        .dense(1, Activation::None);
    model.compile(Optimizer::adam(1e-3), Loss::MeanSquaredError, &[])?;
    let mut rng = kiln::data::SplitMix64::new(7);
    let x: Vec<f32> = (0..BATCH * 10 * FEATURES)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    let y: Vec<f32> = (0..BATCH).map(|_| rng.next_f64() as f32).collect();
    model.train_on_batch(&x, &y)?;
    device.synchronize()?;
    let cold = start.elapsed().as_secs_f64();

    let timing = time_steps(&device, 10, RUNS, STEPS_PER_RUN, || {
        model.train_on_batch(&x, &y)?;
        Ok(())
    })?;
    let (warm, dispatches, submissions) = (timing.warm, timing.dispatches, timing.submissions);
    let floor = one_kernel_baseline(&device, RUNS, STEPS_PER_RUN)?;
    let (queued, waiting) = with_and_without_waiting(&device, 5, STEPS_PER_RUN, || {
        model.train_on_batch(&x, &y)?;
        Ok(())
    })?;
    let memory = model.train_memory(BATCH)?;
    println!("adapter: {}", device.name());
    println!("cold first step (main start to first finished step): {cold:.3} s");
    println!(
        "warm step, batch {BATCH}: median {:.3} ms over {RUNS} runs of {STEPS_PER_RUN}",
        warm * 1e3
    );
    println!("dispatches per step: {dispatches:.0}; submissions per step: {submissions:.0}");
    println!(
        "planned device memory of a step: {:.2} MiB",
        memory.total_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "steps per second: {queued:.0} queued ahead (default), {waiting:.0} waiting after each step; ratio {:.2}",
        queued / waiting
    );
    println!(
        "one-kernel submission (same process): median {:.3} ms; step / baseline = {:.1}",
        floor * 1e3,
        warm / floor
    );
    Ok(())
}
