//! Batch normalisation kernels over a channel axis: per-channel moments, the
//! normalisation, and the two pieces of its backward pass.

use crate::error::{shape_error, Result};
use crate::kernel::{Kernel, KernelBinding};
use crate::ops::WG;
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// A tensor seen as `[outer, channels, inner]`: statistics are per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
}

impl ChannelLayout {
    /// The layout of `shape` with channels on `axis` (`[N, F]` with axis 1 is
    /// Keras' features; `[N, C, H, W]` with axis 1 is PyTorch's channels).
    pub fn of(shape: &[usize], axis: usize) -> Result<Self> {
        if axis >= shape.len() {
            return Err(shape_error(
                "BatchNorm",
                format!("channel axis {axis} out of range for shape {shape:?}"),
            ));
        }
        let layout = Self {
            outer: shape[..axis].iter().product(),
            channels: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        };
        if layout.per_channel() == 0 || layout.channels == 0 {
            return Err(crate::BackendError::Empty {
                op: "BatchNorm".into(),
                shape: shape.to_vec(),
            });
        }
        Ok(layout)
    }

    /// Elements per channel (M, the count the statistics average over).
    pub fn per_channel(&self) -> usize {
        self.outer * self.inner
    }

    pub fn numel(&self) -> usize {
        self.per_channel() * self.channels
    }

    fn meta(&self, eps: f32) -> [u32; 4] {
        [
            self.outer as u32,
            self.channels as u32,
            self.inner as u32,
            eps.to_bits(),
        ]
    }
}

fn bindings<'a>(list: &[(u32, &'a Buffer)]) -> Vec<KernelBinding<'a>> {
    list.iter()
        .map(|&(binding, buffer)| KernelBinding { binding, buffer })
        .collect()
}

/// `[N, C]` features with C a multiple of 4 go four channels per invocation
/// (`batchnorm_vec4.wgsl`).
fn vec4_layout(layout: ChannelLayout) -> bool {
    layout.inner == 1 && layout.channels.is_multiple_of(4)
}

/// How a batch-norm kernel covers its tensor: one invocation per channel
/// (looping over the channel's elements), or a 2-D grid whose x covers a row
/// of `channels · inner` and whose y strides over the outer index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cover {
    PerChannel,
    PerRow,
}

/// A batch-norm kernel: `batchnorm_vec4.wgsl` for `[N, C]` with C a multiple
/// of 4 (four channels per invocation), else `batchnorm.wgsl`. Parameter
/// words are the layout's and `eps`, then `extra` (entry-specific, from word 4).
fn channel_kernel(
    device: &Device,
    entry: &str,
    layout: ChannelLayout,
    eps: f32,
    extra: &[u32],
    list: &[(u32, &Buffer)],
    cover: Cover,
) -> Result<Kernel> {
    let vec4 = vec4_layout(layout);
    let (shader, mut words, channels, row) = if vec4 {
        let c4 = layout.channels / 4;
        let words = vec![layout.outer as u32, c4 as u32, 0, eps.to_bits()];
        (ShaderId::BatchNormVec4, words, c4, c4)
    } else {
        let row = layout.channels * layout.inner;
        (
            ShaderId::BatchNorm,
            layout.meta(eps).to_vec(),
            layout.channels,
            row,
        )
    };
    words.extend_from_slice(extra);
    let grid = match cover {
        Cover::PerChannel => device.linear_grid((channels as u64).div_ceil(WG as u64))?,
        Cover::PerRow => row_grid(device, layout, row)?,
    };
    device.kernel(
        shader,
        entry,
        &[("WG", WG as f64)],
        &bindings(list),
        5,
        &words,
        grid,
    )
}

fn per_channel_kernel(
    device: &Device,
    entry: &str,
    layout: ChannelLayout,
    eps: f32,
    list: &[(u32, &Buffer)],
) -> Result<Kernel> {
    channel_kernel(device, entry, layout, eps, &[], list, Cover::PerChannel)
}

fn per_element_kernel(
    device: &Device,
    entry: &str,
    layout: ChannelLayout,
    eps: f32,
    list: &[(u32, &Buffer)],
) -> Result<Kernel> {
    channel_kernel(device, entry, layout, eps, &[], list, Cover::PerRow)
}

/// x covers one row of `row` invocations; y strides over the outer index (up
/// to the adapter's limit; the shader loops past it).
fn row_grid(device: &Device, layout: ChannelLayout, row: usize) -> Result<[u32; 3]> {
    let x = (row as u64).div_ceil(WG as u64);
    let limit = device.max_workgroups() as u64;
    if x > limit {
        return Err(shape_error(
            "BatchNorm",
            format!(
                "{} channels × {} per row exceed the adapter's {limit} workgroups",
                layout.channels, layout.inner
            ),
        ));
    }
    Ok([x as u32, layout.outer.min(limit as usize) as u32, 1])
}

/// `out[0..C]` = per-channel mean of `x`, `out[C..2C]` = biased variance.
pub fn moments_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    layout: ChannelLayout,
) -> Result<Kernel> {
    per_channel_kernel(device, "moments", layout, 0.0, &[(0, out), (1, x)])
}

/// [`moments_kernel`] that also moves the running statistics `[mean; var]`
/// (`running`, shape `[2, C]`) toward the batch's: `keep·run + (1 − keep)·batch`,
/// the variance times `var_factor` — the training forward of batch norm in one
/// pass over x instead of two dispatches.
pub fn moments_update_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    layout: ChannelLayout,
    running: &Buffer,
    keep: f32,
    var_factor: f32,
) -> Result<Kernel> {
    channel_kernel(
        device,
        "moments_update",
        layout,
        0.0,
        &[keep.to_bits(), var_factor.to_bits()],
        &[(0, out), (1, x), (9, running)],
        Cover::PerChannel,
    )
}

/// `out = (x − mean)·rsqrt(var + eps)·gamma + beta`, with `stats` = `[mean; var]`.
#[allow(clippy::too_many_arguments)] // the buffers of one formula
pub fn normalize_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    stats: &Buffer,
    gamma: &Buffer,
    beta: &Buffer,
    layout: ChannelLayout,
    eps: f32,
) -> Result<Kernel> {
    per_element_kernel(
        device,
        "normalize",
        layout,
        eps,
        &[(0, out), (1, x), (2, stats), (3, gamma), (4, beta)],
    )
}

/// [`normalize_kernel`] followed by dropout of its result — the mask of
/// `random::dropout_kernel` for the same `seed`, `rate` and step — in one
/// pass (Keras' BatchNormalization → Dropout).
#[allow(clippy::too_many_arguments)] // the buffers of one formula
pub fn normalize_dropout_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    stats: &Buffer,
    gamma: &Buffer,
    beta: &Buffer,
    layout: ChannelLayout,
    eps: f32,
    step: &Buffer,
    seed: u64,
    rate: f32,
) -> Result<Kernel> {
    if !(0.0..1.0).contains(&rate) {
        return Err(crate::error::invalid(
            "Dropout",
            format!("rate {rate} must be in [0, 1)"),
        ));
    }
    let keep = 1.0 - rate;
    channel_kernel(
        device,
        "normalize_dropout",
        layout,
        eps,
        &[
            seed as u32,
            (seed >> 32) as u32,
            keep.to_bits(),
            (1.0 / keep).to_bits(),
        ],
        &[
            (0, out),
            (1, x),
            (2, stats),
            (3, gamma),
            (4, beta),
            (10, step),
        ],
        Cover::PerRow,
    )
}

/// `out[c] = Σ dy·x̂` over channel c: the gradient of gamma.
pub fn grad_gamma_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    stats: &Buffer,
    dy: &Buffer,
    layout: ChannelLayout,
    eps: f32,
) -> Result<Kernel> {
    per_channel_kernel(
        device,
        "grad_gamma",
        layout,
        eps,
        &[(0, out), (1, x), (2, stats), (6, dy)],
    )
}

/// [`grad_gamma_kernel`] that also writes `Σ dy` per channel (the gradient of
/// beta) to `out_beta`, from the same pass over dy.
#[allow(clippy::too_many_arguments)] // the buffers of one formula
pub fn grad_gamma_beta_kernel(
    device: &Device,
    out_gamma: &Buffer,
    out_beta: &Buffer,
    x: &Buffer,
    stats: &Buffer,
    dy: &Buffer,
    layout: ChannelLayout,
    eps: f32,
) -> Result<Kernel> {
    per_channel_kernel(
        device,
        "grad_gamma_beta",
        layout,
        eps,
        &[(0, out_gamma), (1, x), (2, stats), (6, dy), (11, out_beta)],
    )
}

/// The gradient of the input. With `batch` = `Some((dbeta, dgamma))` the
/// statistics are the batch's own (training); with `None` they are constants.
/// With `relu_input` the result is zeroed where `x ≤ 0` (x being a relu's
/// output, the gradient continues through it).
#[allow(clippy::too_many_arguments)] // the buffers of one formula
pub fn grad_input_kernel(
    device: &Device,
    out: &Buffer,
    x: &Buffer,
    stats: &Buffer,
    gamma: &Buffer,
    dy: &Buffer,
    batch: Option<(&Buffer, &Buffer)>,
    layout: ChannelLayout,
    eps: f32,
    relu_input: bool,
) -> Result<Kernel> {
    let mut list = vec![(0, out), (1, x), (2, stats), (3, gamma), (6, dy)];
    let entry = match (batch, relu_input) {
        (Some((dbeta, dgamma)), relu) => {
            list.extend([(7, dbeta), (8, dgamma)]);
            if relu {
                "grad_input_batch_relu"
            } else {
                "grad_input_batch"
            }
        }
        (None, true) => "grad_input_fixed_relu",
        (None, false) => "grad_input_fixed",
    };
    per_element_kernel(device, entry, layout, eps, &list)
}
