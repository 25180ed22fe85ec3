//! ResNet-50's training step at batch 8 on 3×64×64 images, 10 classes,
//! PyTorch's Adam: the tutorial's transfer learning (every backbone
//! parameter frozen, batch norm in train mode, only the new `fc` trained)
//! and full fine-tuning, on the default adapter.
//!
//! Reports each setting's cold first step (from the start of `main` for
//! the first, pipelines compiled), warm median by criterion, dispatches
//! per step and planned memory. Run: `cargo bench --bench resnet_step`.

use std::time::{Duration, Instant};

use kiln::prelude::*;

const BATCH: usize = 8;
const SIDE: usize = 64;
const CLASSES: usize = 10;

#[path = "common/timing.rs"]
mod timing;
use timing::{criterion, criterion_steps, SAMPLES};

fn main() -> anyhow::Result<()> {
    let start = Instant::now();
    let device = kiln::device_from_flag(None)?;
    let mut rng = kiln::data::SplitMix64::new(7);
    let x: Vec<f32> = (0..BATCH * 3 * SIDE * SIDE)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    let y: Vec<f32> = (0..BATCH).map(|i| (i % CLASSES) as f32).collect();
    println!("adapter: {}", device.name());
    // A full fine-tuning step takes seconds on a software adapter: criterion
    // then takes one step per sample and runs past this.
    let mut c = criterion(Duration::from_secs(10));
    for (setting, frozen) in [
        ("head only (backbone frozen)", true),
        ("full fine-tuning", false),
    ] {
        let cold_start = if frozen { start } else { Instant::now() };
        manual_seed(1);
        let mut net = ResNet::resnet50(&device, 1000)?;
        net.replace_fc(Linear::new(&device, 2048, CLASSES)?)?;
        if frozen {
            net.features.freeze();
        }
        let mut model = Model::new(&device, net, [3, SIDE, SIDE]);
        model.compile(
            Optimizer::adam_torch(1e-3),
            Loss::SparseCategoricalCrossEntropyFromLogits,
            &[],
        )?;
        model.train_on_batch(&x, &y)?;
        device.synchronize()?;
        let cold = cold_start.elapsed().as_secs_f64();
        if timing::cold_only() {
            println!("{setting}: cold first step {cold:.2} s");
            continue;
        }
        let timing = criterion_steps(&mut c, &device, &format!("ResNet-50 {setting}"), || {
            model.train_on_batch(&x, &y)?;
            Ok(())
        })?;
        let memory = model.train_memory(BATCH)?;
        println!("{setting}:");
        println!("  cold first step: {cold:.2} s");
        println!(
            "  warm step, batch {BATCH}, {SIDE}×{SIDE}: median {:.3} s over criterion's {SAMPLES} samples",
            timing.warm
        );
        println!(
            "  dispatches per step: {:.0}; submissions per step: {:.0}; planned device memory {:.0} MiB",
            timing.dispatches,
            timing.submissions,
            memory.total_bytes() as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
