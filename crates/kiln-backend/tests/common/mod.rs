//! Helpers shared by the backend's integration tests: the adapter,
//! reproducible inputs and comparisons against f64 references.
#![allow(dead_code)] // each test binary uses its own subset

use kiln_backend::{DType, Device, DeviceKind, KernelStrategy, Tensor};

pub fn device() -> Device {
    Device::auto().expect("a Vulkan adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

/// The default device and, on a software adapter, every other kernel
/// profile it can run: the hardware strategy (the shapes a GPU gets) and,
/// where it has subgroups, the software strategy without them (the block
/// kernels' portable shape).
pub fn devices() -> Vec<Device> {
    let dev = device();
    let mut all = vec![dev.clone()];
    if dev.kind() == DeviceKind::Software {
        let other = match dev.kernel_profile().strategy {
            KernelStrategy::Software => KernelStrategy::Hardware,
            KernelStrategy::Hardware => KernelStrategy::Software,
        };
        all.push(dev.with_kernel_strategy(other));
        if dev.summary().subgroups {
            let portable = Device::software_without_subgroups().unwrap();
            all.push(portable.with_kernel_strategy(KernelStrategy::Software));
        }
    }
    all
}

/// xorshift: reproducible inputs without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi), never exactly zero.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = (lo + (hi - lo) * self.next()) as f32;
                if v == 0.0 {
                    0.5
                } else {
                    v
                }
            })
            .collect()
    }
}

/// A tensor of NaNs, so that an element a kernel forgets to write shows.
pub fn poisoned(device: &Device, shape: &[usize]) -> Tensor {
    device.full(shape, f32::NAN).unwrap()
}

pub fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            !g.is_nan() || w.is_nan(),
            "{what}[{i}]: NaN left in the output (want {w})"
        );
        let err = (g as f64 - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w}, error {err:e}"
        );
    }
}

pub fn relative_norm_error(got: &[f32], want: &[f64]) -> f64 {
    assert!(got.iter().all(|g| !g.is_nan()), "NaN left in the output");
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den).sqrt()
}

/// `data` as a tensor of `shape` in a buffer whose every element past the
/// data (to the end of its pool bucket and beyond) is NaN, so a kernel that
/// reads out of bounds shows it.
pub fn nan_tailed(device: &Device, data: &[f32], shape: &[usize]) -> Tensor {
    let t = device.full(&[data.len() + 1024], f32::NAN).unwrap();
    // SAFETY: f32 has no padding and every byte pattern is a valid u8.
    let bytes =
        unsafe { std::slice::from_raw_parts(data.as_ptr().cast(), std::mem::size_of_val(data)) };
    device.write(t.buffer(), 0, bytes).unwrap();
    Tensor::from_buffer(device, t.buffer().clone(), shape, DType::F32).unwrap()
}
