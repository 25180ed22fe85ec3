//! The tutorial's LSTM forecaster's training step (LSTM 50 relu, sequences
//! → LSTM 50 relu → Dense 1; MSE, Adam) at batch 32 on windows of 10 steps
//! × 3 features (the tutorial's input shape), on the default adapter.
//!
//! Reports the cold first step (adapter start-up and every pipeline
//! compiled), the warm step's median by criterion, dispatches and
//! submissions per step, and a same-process baseline: one submission of
//! one tiny kernel. Run: `cargo bench --bench lstm_step`.

use std::time::{Duration, Instant};

use kiln::prelude::*;

const BATCH: usize = 32;
const FEATURES: usize = 3;
/// Steps per round of the queued-against-waiting comparison.
const STEPS_PER_ROUND: usize = 20;

#[path = "common/timing.rs"]
mod timing;
use timing::{criterion, measure_step};

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
    if timing::stop_after_cold(cold) {
        return Ok(());
    }

    let mut c = criterion(Duration::from_secs(5));
    let report = measure_step(&mut c, &device, "LSTM forecaster", STEPS_PER_ROUND, || {
        model.train_on_batch(&x, &y)?;
        Ok(())
    })?;
    let memory = model.train_memory(BATCH)?;
    report.print(&device, BATCH, cold, memory.total_bytes());
    Ok(())
}
