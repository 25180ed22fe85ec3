//! The tutorial MLP's training step (30 → 128 → BN → dropout → 64 → BN →
//! dropout → 1, Adam, binary cross-entropy) at batch 64 on the default adapter.
//!
//! Reports the cold first step (from the start of `main`, so adapter start-up
//! and pipeline compilation count), the warm step's median by criterion,
//! dispatches and submissions per step, and, as same-process baselines,
//! criterion's medians of a one-kernel and of an empty submission (what a
//! step costs beyond its kernels).
//! Run: `cargo bench --bench train_step`.

use std::time::{Duration, Instant};

use kiln::prelude::*;

const BATCH: usize = 64;
/// Steps per round of the queued-against-waiting comparison.
const STEPS_PER_ROUND: usize = 50;

#[path = "common/timing.rs"]
mod timing;
use timing::{criterion, empty_submission_baseline, measure_step};

fn batch(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = kiln::data::SplitMix64::new(seed);
    let x = (0..BATCH * 30)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    let y = (0..BATCH).map(|i| (i % 2) as f32).collect();
    (x, y)
}

fn main() -> anyhow::Result<()> {
    let start = Instant::now();
    let device = kiln::device_from_flag(None)?;
    let mut model = tutorial_mlp(&device, 30, 1, TUTORIAL_DROPOUT);
    model.compile(
        Optimizer::adam(1e-3),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )?;
    let (x, y) = batch(7);
    model.train_on_batch(&x, &y)?;
    device.synchronize()?;
    let cold = start.elapsed().as_secs_f64();
    if timing::stop_after_cold(cold) {
        return Ok(());
    }

    let mut c = criterion(Duration::from_secs(5));
    let report = measure_step(&mut c, &device, "tutorial MLP", STEPS_PER_ROUND, || {
        model.train_on_batch(&x, &y)?;
        Ok(())
    })?;
    let empty = empty_submission_baseline(&mut c, &device)?;
    let memory = model.train_memory(BATCH)?;
    timing::print_profile_if_asked(|| Ok(model.profile_train_step(BATCH, 20)?))?;
    report.print(&device, BATCH, cold, memory.total_bytes());
    println!(
        "empty submission (same process): median {:.3} ms",
        empty * 1e3
    );
    Ok(())
}
