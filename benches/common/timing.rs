//! Timing shared by the training-step benchmarks: warm steps (median of
//! runs), dispatches and submissions per step, and the same-process
//! baseline of one tiny kernel per submission.
#![allow(dead_code)] // each benchmark uses its own subset

use std::time::Instant;

use kiln::Device;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What `step` costs once warm.
pub struct StepTiming {
    /// Median over the runs of the mean step time, seconds.
    pub warm: f64,
    pub dispatches: f64,
    pub submissions: f64,
}

/// Runs `step` `warmup` times, then `runs` runs of `per_run` steps, each
/// run ended by a synchronisation.
pub fn time_steps(
    device: &Device,
    warmup: usize,
    runs: usize,
    per_run: usize,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<StepTiming> {
    for _ in 0..warmup {
        step()?;
    }
    device.synchronize()?;
    let (sub0, disp0) = (device.submissions(), device.dispatches());
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..per_run {
            step()?;
        }
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64() / per_run as f64);
    }
    let n = (runs * per_run) as f64;
    Ok(StepTiming {
        warm: median(times),
        dispatches: (device.dispatches() - disp0) as f64 / n,
        submissions: (device.submissions() - sub0) as f64 / n,
    })
}

/// The median cost of one submission of one 64-element kernel, seconds:
/// the floor under any step on this adapter, measured in this process.
pub fn one_kernel_baseline(device: &Device, runs: usize, per_run: usize) -> anyhow::Result<f64> {
    let a = kiln::Tensor::from_f32(device, &[1.0; 64], &[64])?;
    let timing = time_steps(device, 1, runs, per_run, || {
        device.unary(kiln::backend::UnaryOp::Relu, &a)?;
        Ok(())
    })?;
    Ok(timing.warm)
}

/// Steps per second with submissions queued ahead of the device (the
/// default) and with a wait after every submission, alternating the two
/// `rounds` times in this process: medians of each, in that order.
pub fn with_and_without_waiting(
    device: &Device,
    rounds: usize,
    per_run: usize,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    let (mut queued, mut waiting) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (limit, out) in [
            (kiln::backend::DEFAULT_MAX_IN_FLIGHT, &mut queued),
            (1, &mut waiting),
        ] {
            device.set_max_in_flight(limit);
            let t = time_steps(device, 2, 1, per_run, &mut step)?;
            out.push(1.0 / t.warm);
        }
    }
    device.set_max_in_flight(kiln::backend::default_max_in_flight(device.summary().kind));
    Ok((median(queued), median(waiting)))
}

/// The median cost of submitting an empty command buffer, seconds.
pub fn empty_submission_baseline(
    device: &Device,
    runs: usize,
    per_run: usize,
) -> anyhow::Result<f64> {
    let timing = time_steps(device, 1, runs, per_run, || {
        device.run(&[])?;
        Ok(())
    })?;
    Ok(timing.warm)
}

/// What a step bench measures of a warm step, in one process.
pub struct StepReport {
    pub timing: StepTiming,
    /// One submission of one tiny kernel, seconds.
    pub floor: f64,
    /// Steps per second queued ahead of the device, and waiting after each.
    pub queued: f64,
    pub waiting: f64,
}

/// Times `step` warm ([`time_steps`]), the one-kernel floor, and the step
/// queued and waited for ([`with_and_without_waiting`], 5 rounds).
pub fn measure_step(
    device: &Device,
    warmup: usize,
    runs: usize,
    per_run: usize,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<StepReport> {
    let timing = time_steps(device, warmup, runs, per_run, &mut step)?;
    let floor = one_kernel_baseline(device, runs, per_run)?;
    let (queued, waiting) = with_and_without_waiting(device, 5, per_run, &mut step)?;
    Ok(StepReport {
        timing,
        floor,
        queued,
        waiting,
    })
}

impl StepReport {
    /// The lines every step bench prints (scripts grep them).
    pub fn print(
        &self,
        device: &Device,
        batch: usize,
        runs: usize,
        per_run: usize,
        cold: f64,
        memory_bytes: u64,
    ) {
        let t = &self.timing;
        println!("adapter: {}", device.name());
        println!("cold first step (main start to first finished step): {cold:.3} s");
        println!(
            "warm step, batch {batch}: median {:.3} ms over {runs} runs of {per_run}",
            t.warm * 1e3
        );
        println!(
            "dispatches per step: {:.0}; submissions per step: {:.0}",
            t.dispatches, t.submissions
        );
        println!(
            "planned device memory of a step: {:.2} MiB",
            memory_bytes as f64 / (1 << 20) as f64
        );
        println!(
            "steps per second: {:.0} queued ahead (default), {:.0} waiting after each step; ratio {:.2}",
            self.queued,
            self.waiting,
            self.queued / self.waiting
        );
        println!(
            "one-kernel submission (same process): median {:.3} ms; step / baseline = {:.1}; per dispatch ≈ {:.1} µs",
            self.floor * 1e3,
            t.warm / self.floor,
            (t.warm - self.floor) / (t.dispatches - 1.0).max(1.0) * 1e6
        );
    }
}
