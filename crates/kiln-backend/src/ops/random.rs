//! Seeded uniform and normal random numbers from a counter-based generator.

use crate::error::Result;
use crate::kernel::{Kernel, KernelBinding};
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// The distribution of a random kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Uniform on `[low, high)`.
    Uniform { low: f32, high: f32 },
    /// Normal with the given mean and standard deviation.
    Normal { mean: f32, std: f32 },
}

/// The parameter words of a random kernel; rewrite them with
/// [`Kernel::update_meta`] to draw with a new seed.
pub fn random_meta(n: usize, seed: u64, dist: Distribution) -> Vec<u32> {
    let (p0, p1) = match dist {
        Distribution::Uniform { low, high } => (low, high),
        Distribution::Normal { mean, std } => (mean, std),
    };
    vec![
        n as u32,
        seed as u32,
        (seed >> 32) as u32,
        0,
        p0.to_bits(),
        p1.to_bits(),
    ]
}

/// Fills `n` elements of `out` with draws from `dist` under `seed`.
pub fn random_kernel(
    device: &Device,
    out: &Buffer,
    n: usize,
    seed: u64,
    dist: Distribution,
) -> Result<Kernel> {
    let normal = matches!(dist, Distribution::Normal { .. });
    device.kernel(
        ShaderId::Random,
        "main",
        &[
            ("NORMAL", if normal { 1.0 } else { 0.0 }),
            ("WG", WG as f64),
        ],
        &[KernelBinding {
            binding: 0,
            buffer: out,
        }],
        1,
        &random_meta(n, seed, dist),
        device.linear_grid((n as u64).div_ceil(WG as u64))?,
    )
}

fn pcg(x: u32) -> u32 {
    let state = x.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The raw 32-bit draw number `counter` under `seed`, as the shader computes it.
pub fn reference_bits(seed: u64, counter: u32) -> u32 {
    let key = pcg((seed as u32) ^ pcg((seed >> 32) as u32));
    pcg(pcg(counter ^ key).wrapping_add(key))
}

/// The uniform draw in [0, 1) for `counter`, exactly as the shader computes it.
pub fn reference_unit(seed: u64, counter: u32) -> f32 {
    (reference_bits(seed, counter) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// The dropout mask value of element `i` at `step`, exactly as the shader draws it.
pub fn reference_dropout(seed: u64, step: u32, i: u32, rate: f32) -> f32 {
    let key = pcg((seed as u32) ^ pcg(((seed >> 32) as u32) ^ pcg(step.wrapping_add(0x9e37_79b9))));
    let u = (pcg(pcg(i ^ key).wrapping_add(key)) >> 8) as f32 * (1.0 / 16_777_216.0);
    let keep = 1.0 - rate;
    if u < keep {
        1.0 / keep
    } else {
        0.0
    }
}
