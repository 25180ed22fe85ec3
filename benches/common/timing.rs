//! Timing shared by the training-step benchmarks: warm steps timed by
//! criterion, dispatches and submissions per step, steps queued against
//! steps waited for, and the same-process baseline of one tiny kernel per
//! submission.
#![allow(dead_code)] // each benchmark uses its own subset

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use kiln::Device;

/// Samples criterion takes of each warm step.
pub const SAMPLES: usize = 10;

/// The criterion every step bench times its warm steps with: `SAMPLES`
/// samples of equal length (a ResNet step takes seconds, so a sample may
/// be a single step), a second of warm-up, no plots.
pub fn criterion(measurement: Duration) -> Criterion {
    Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement)
        .without_plots()
}

/// Times `step` with criterion as benchmark `id`: each sample runs its
/// steps back to back, then waits for the device. Returns the median of
/// the samples' mean step times (criterion's median estimate) and the
/// dispatches and submissions per step over those samples.
pub fn criterion_steps(
    c: &mut Criterion,
    device: &Device,
    id: &str,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<StepTiming> {
    // Every call of the routine: (steps, time, submissions, dispatches).
    // Criterion's warm-up calls come first; its samples are the last SAMPLES.
    let mut calls: Vec<(u64, Duration, u64, u64)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut group = c.benchmark_group("step");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let (sub0, disp0) = (device.submissions(), device.dispatches());
            let t = Instant::now();
            for _ in 0..iters {
                if failure.is_none() {
                    failure = step().err();
                }
            }
            if let Err(e) = device.synchronize() {
                failure.get_or_insert(e.into());
            }
            let elapsed = t.elapsed();
            calls.push((
                iters,
                elapsed,
                device.submissions() - sub0,
                device.dispatches() - disp0,
            ));
            elapsed
        })
    });
    group.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    let samples = &calls[calls.len().saturating_sub(SAMPLES)..];
    let steps: u64 = samples.iter().map(|s| s.0).sum();
    if steps == 0 {
        anyhow::bail!("criterion took no samples of {id}");
    }
    Ok(StepTiming {
        warm: median(
            samples
                .iter()
                .map(|&(n, t, _, _)| t.as_secs_f64() / n as f64)
                .collect(),
        ),
        dispatches: samples.iter().map(|s| s.3).sum::<u64>() as f64 / steps as f64,
        submissions: samples.iter().map(|s| s.2).sum::<u64>() as f64 / steps as f64,
    })
}

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

/// True when `KILN_COLD_ONLY` is set: a bench then prints its cold first
/// step and skips the warm timing, so that cold starts can be compared
/// over many short processes.
pub fn cold_only() -> bool {
    std::env::var_os("KILN_COLD_ONLY").is_some()
}

/// The line every step bench prints for its cold first step (scripts grep it).
pub fn print_cold(cold: f64) {
    println!("cold first step (main start to first finished step): {cold:.3} s");
}

/// Under `KILN_COLD_ONLY`, prints the cold first step and returns true: the
/// bench stops there.
pub fn stop_after_cold(cold: f64) -> bool {
    if !cold_only() {
        return false;
    }
    print_cold(cold);
    true
}

/// Under `KILN_PROFILE`, prints each kernel of a step run alone (median of
/// `reps` runs, as `Plan::profile` gives them) and their sum.
pub fn print_profile_if_asked(
    profile: impl FnOnce() -> anyhow::Result<Vec<(String, f64)>>,
) -> anyhow::Result<()> {
    if std::env::var_os("KILN_PROFILE").is_none() {
        return Ok(());
    }
    let kernels = profile()?;
    let total: f64 = kernels.iter().map(|(_, t)| t).sum();
    for (label, t) in &kernels {
        println!("  {label:<32} {:8.1} µs", t * 1e6);
    }
    println!("  sum of kernels run alone: {:.3} ms", total * 1e3);
    Ok(())
}

/// The median cost of one submission of one 64-element kernel, seconds:
/// the floor under any step on this adapter, measured in this process.
pub fn one_kernel_baseline(c: &mut Criterion, device: &Device) -> anyhow::Result<f64> {
    let a = kiln::Tensor::from_f32(device, &[1.0; 64], &[64])?;
    let timing = criterion_steps(c, device, "one-kernel submission", || {
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
pub fn empty_submission_baseline(c: &mut Criterion, device: &Device) -> anyhow::Result<f64> {
    let timing = criterion_steps(c, device, "empty submission", || {
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

/// Times `step` warm with criterion as `id` ([`criterion_steps`]), the
/// one-kernel floor, and the step queued and waited for
/// ([`with_and_without_waiting`], 5 rounds of `per_round` steps).
pub fn measure_step(
    c: &mut Criterion,
    device: &Device,
    id: &str,
    per_round: usize,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<StepReport> {
    let timing = criterion_steps(c, device, id, &mut step)?;
    let floor = one_kernel_baseline(c, device)?;
    let (queued, waiting) = with_and_without_waiting(device, 5, per_round, &mut step)?;
    Ok(StepReport {
        timing,
        floor,
        queued,
        waiting,
    })
}

impl StepReport {
    /// The lines every step bench prints (scripts grep them).
    pub fn print(&self, device: &Device, batch: usize, cold: f64, memory_bytes: u64) {
        let t = &self.timing;
        println!("adapter: {}", device.name());
        print_cold(cold);
        println!(
            "warm step, batch {batch}: median {:.3} ms over criterion's {SAMPLES} samples",
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
