//! In-place update kernels: optimizer steps, running statistics, accumulators.
//! Each writes a parameter (and its state) where it lies.

use crate::error::{shape_error, Result};
use crate::kernel::{Kernel, KernelBinding};
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// Words the `hyper` buffer of an optimizer step holds (see `optim.wgsl`).
pub const HYPER_WORDS: usize = 8;

/// Which update rule a step applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateRule {
    /// Adam/AdamW: state 1 = first moment, state 2 = second moment.
    Adam,
    /// SGD with momentum (PyTorch's rule): state 1 = momentum buffer.
    Sgd,
}

fn check_len(op: &str, n: usize, buffers: &[&Buffer]) -> Result<()> {
    for b in buffers {
        if b.size() < (n as u64) * 4 {
            return Err(shape_error(
                op,
                format!(
                    "a buffer of {} bytes is smaller than the {n} elements updated",
                    b.size()
                ),
            ));
        }
    }
    Ok(())
}

fn update_kernel(
    device: &Device,
    entry: &str,
    n: usize,
    list: &[(u32, &Buffer)],
    meta: [u32; 4],
) -> Result<Kernel> {
    let bindings: Vec<KernelBinding<'_>> = list
        .iter()
        .map(|&(binding, buffer)| KernelBinding { binding, buffer })
        .collect();
    device.kernel(
        ShaderId::Optim,
        entry,
        &[("WG", WG as f64)],
        &bindings,
        5,
        &meta,
        device.linear_grid((n as u64).div_ceil(WG as u64))?,
    )
}

/// One optimizer step on `n` elements of `param`, with its gradient and state,
/// reading the step's hyperparameters from `hyper` (`HYPER_WORDS` f32 words).
pub fn optimizer_step_kernel(
    device: &Device,
    rule: UpdateRule,
    n: usize,
    param: &Buffer,
    grad: &Buffer,
    state: (&Buffer, Option<&Buffer>),
    hyper: &Buffer,
) -> Result<Kernel> {
    let meta = [n as u32, 0, 0, 0];
    match (rule, state.1) {
        (UpdateRule::Adam, Some(v)) => {
            check_len("Adam", n, &[param, grad, state.0, v])?;
            if n.is_multiple_of(4) {
                let bindings: Vec<KernelBinding<'_>> =
                    [(0, param), (1, state.0), (2, v), (3, grad), (4, hyper)]
                        .iter()
                        .map(|&(binding, buffer)| KernelBinding { binding, buffer })
                        .collect();
                return device.kernel(
                    ShaderId::OptimVec4,
                    "adam",
                    &[("WG", WG as f64)],
                    &bindings,
                    5,
                    &[(n / 4) as u32, 0, 0, 0],
                    device.linear_grid(((n / 4) as u64).div_ceil(WG as u64))?,
                );
            }
            update_kernel(
                device,
                "adam",
                n,
                &[(0, param), (1, state.0), (2, v), (3, grad), (4, hyper)],
                meta,
            )
        }
        (UpdateRule::Sgd, None) => {
            check_len("SGD", n, &[param, grad, state.0])?;
            update_kernel(
                device,
                "sgd",
                n,
                &[(0, param), (1, state.0), (3, grad), (4, hyper)],
                meta,
            )
        }
        (rule, _) => Err(crate::error::invalid(
            "optimizer step",
            format!(
                "{rule:?} takes {} state buffers",
                if rule == UpdateRule::Adam { 2 } else { 1 }
            ),
        )),
    }
}

/// One Adam parameter of a grouped step: its element count, the parameter,
/// its gradient and its two moment buffers.
pub struct AdamSlot<'a> {
    pub n: usize,
    pub param: &'a Buffer,
    pub grad: &'a Buffer,
    pub m: &'a Buffer,
    pub v: &'a Buffer,
}

/// Parameters one grouped Adam dispatch updates.
pub const ADAM_GROUP: usize = 4;

/// How many parameters `device` can update in one dispatch: four, or one
/// where the adapter binds too few storage buffers per stage (each slot takes
/// four, plus the hyperparameters and the counts).
pub fn adam_group_size(device: &Device) -> usize {
    if device.summary().max_storage_buffers_per_stage as usize >= 4 * ADAM_GROUP + 2 {
        ADAM_GROUP
    } else {
        1
    }
}

/// One Adam step on up to [`ADAM_GROUP`] parameters in a single dispatch,
/// four elements per invocation when every size is a multiple of 4. Unused
/// slots are bound to `spare` buffers (four distinct ones, of at least 16
/// bytes) with a count of 0.
pub fn adam_group_kernel(
    device: &Device,
    slots: &[AdamSlot<'_>],
    hyper: &Buffer,
    spare: [&Buffer; 4],
) -> Result<Kernel> {
    if slots.is_empty() || slots.len() > ADAM_GROUP {
        return Err(crate::error::invalid(
            "Adam",
            format!(
                "a grouped step takes 1 to {ADAM_GROUP} parameters, not {}",
                slots.len()
            ),
        ));
    }
    let mut bindings = Vec::new();
    let mut counts = [0u32; 4];
    for (k, count) in counts.iter_mut().enumerate() {
        let b = 4 * k as u32;
        match slots.get(k) {
            Some(s) => {
                check_len("Adam", s.n, &[s.param, s.grad, s.m, s.v])?;
                *count = s.n as u32;
                bindings.extend([(b, s.param), (b + 1, s.m), (b + 2, s.v), (b + 3, s.grad)]);
            }
            None => bindings.extend([
                (b, spare[0]),
                (b + 1, spare[1]),
                (b + 2, spare[2]),
                (b + 3, spare[3]),
            ]),
        }
    }
    bindings.push((16, hyper));
    let vec4 = slots.iter().all(|s| s.n.is_multiple_of(4));
    if vec4 {
        counts.iter_mut().for_each(|c| *c /= 4);
    }
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    let bindings: Vec<KernelBinding<'_>> = bindings
        .into_iter()
        .map(|(binding, buffer)| KernelBinding { binding, buffer })
        .collect();
    device.kernel(
        if vec4 {
            ShaderId::OptimMultiVec4
        } else {
            ShaderId::OptimMulti
        },
        "adam",
        &[("WG", WG as f64)],
        &bindings,
        17,
        &counts,
        device.linear_grid(total.div_ceil(WG as u64))?,
    )
}
