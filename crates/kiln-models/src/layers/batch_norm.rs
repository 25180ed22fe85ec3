//! Batch normalisation over the channel axis (axis 1: `[N, C]` features and
//! `[N, C, H, W]` images alike), in Keras' or PyTorch's convention.

use std::sync::atomic::{AtomicBool, Ordering};

use kiln_backend::Device;
use kiln_graph::{Param, Var};

use crate::error::{ModelError, Result};
use crate::module::{Module, Visitor};

/// Whose names the parameters and buffers take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `gamma`, `beta`, `moving_mean`, `moving_variance`.
    Keras,
    /// `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
    PyTorch,
}

/// Batch-normalisation conventions, named because the two frameworks differ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Weight of the old running value: Keras' `momentum` (0.99), or
    /// `1 − momentum` for PyTorch (0.9).
    pub keep: f32,
    pub eps: f32,
    /// PyTorch moves the running variance toward the unbiased batch variance.
    pub unbiased_running_var: bool,
    pub naming: Naming,
}

impl BatchNormConfig {
    /// Keras `BatchNormalization()`: momentum 0.99, epsilon 1e-3.
    pub const KERAS: Self = Self {
        keep: 0.99,
        eps: 1e-3,
        unbiased_running_var: false,
        naming: Naming::Keras,
    };
    /// PyTorch `BatchNorm1d/2d`: momentum 0.1, eps 1e-5, unbiased running variance.
    pub const PYTORCH: Self = Self {
        keep: 0.9,
        eps: 1e-5,
        unbiased_running_var: true,
        naming: Naming::PyTorch,
    };
}

/// Batch normalisation of `channels` channels (on axis 1). In training it
/// normalises with the batch's mean and biased variance and moves its running
/// statistics toward them (even when its parameters are frozen, as PyTorch
/// does); in evaluation it uses the running statistics.
pub struct BatchNorm {
    /// γ (`weight` / `gamma`), initially ones.
    pub weight: Param,
    /// β (`bias` / `beta`), initially zeros.
    pub bias: Param,
    pub running_mean: Param,
    pub running_var: Param,
    /// PyTorch's batch counter (absent in Keras' convention).
    pub num_batches_tracked: Option<Param>,
    pub config: BatchNormConfig,
    /// Train or eval mode, set through `&self` (the module tree is shared
    /// while it is switched).
    training: AtomicBool,
}

impl BatchNorm {
    pub fn new(device: &Device, channels: usize, config: BatchNormConfig) -> Result<Self> {
        if channels == 0 || !(config.eps > 0.0 && (0.0..1.0).contains(&config.keep)) {
            return Err(ModelError::Settings(format!(
                "batch norm over {channels} channels with epsilon {} and momentum {}: \
                 needs channels, a positive epsilon and a momentum in [0, 1)",
                config.eps, config.keep
            )));
        }
        let ones = vec![1.0; channels];
        let zeros = vec![0.0; channels];
        Ok(Self {
            weight: Param::new(device, "weight", &ones, &[channels])?,
            bias: Param::new(device, "bias", &zeros, &[channels])?,
            running_mean: Param::new(device, "running_mean", &zeros, &[channels])?,
            running_var: Param::new(device, "running_var", &ones, &[channels])?,
            num_batches_tracked: match config.naming {
                Naming::PyTorch => Some(Param::counter(device, "num_batches_tracked", 0.0)?),
                Naming::Keras => None,
            },
            config,
            training: AtomicBool::new(true),
        })
    }

    /// PyTorch's `BatchNorm2d(channels)` (also `BatchNorm1d`).
    pub fn pytorch(device: &Device, channels: usize) -> Result<Self> {
        Self::new(device, channels, BatchNormConfig::PYTORCH)
    }

    /// Keras' `BatchNormalization()` over `channels` features.
    pub fn keras(device: &Device, channels: usize) -> Result<Self> {
        Self::new(device, channels, BatchNormConfig::KERAS)
    }

    pub fn channels(&self) -> usize {
        self.weight.numel()
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        let c = self.channels();
        if x.rank() < 2 || x.shape()[1] != c {
            return Err(ModelError::Shape(format!(
                "batch norm over {c} channels got input {:?}; channels go on axis 1",
                x.shape()
            )));
        }
        let tape = x.tape();
        let (gamma, beta) = (tape.param(&self.weight), tape.param(&self.bias));
        let eps = self.config.eps;
        if !(tape.training() && self.training.load(Ordering::Relaxed)) {
            let (m, v) = (
                tape.frozen(&self.running_mean),
                tape.frozen(&self.running_var),
            );
            return Ok(x.apply(|g, x| {
                g.batch_norm(x, m.id(), v.id(), Some(gamma.id()), Some(beta.id()), 1, eps)
            })?);
        }
        let axes: Vec<i64> = (0..x.rank() as i64).filter(|&d| d != 1).collect();
        let (mean, var) = x.moments(&axes)?;
        let y = x.apply(|g, x| {
            g.batch_norm(
                x,
                mean.id(),
                var.id(),
                Some(gamma.id()),
                Some(beta.id()),
                1,
                eps,
            )
        })?;
        if tape.updates_state() {
            let per_channel = (x.numel() / c) as f32;
            let factor = if self.config.unbiased_running_var && per_channel > 1.0 {
                per_channel / (per_channel - 1.0)
            } else {
                1.0
            };
            let (rm, rv) = (
                tape.frozen(&self.running_mean),
                tape.frozen(&self.running_var),
            );
            let count = self
                .num_batches_tracked
                .as_ref()
                .map(|p| tape.frozen(p).id());
            tape.with_graph(|g| {
                g.running_stats(
                    rm.id(),
                    rv.id(),
                    mean.id(),
                    var.id(),
                    count,
                    self.config.keep,
                    factor,
                )
            })?;
        }
        Ok(y)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        match self.config.naming {
            Naming::Keras => {
                v.param("gamma", &self.weight);
                v.param("beta", &self.bias);
                v.buffer("moving_mean", &self.running_mean);
                v.buffer("moving_variance", &self.running_var);
            }
            Naming::PyTorch => {
                v.param("weight", &self.weight);
                v.param("bias", &self.bias);
                v.buffer("running_mean", &self.running_mean);
                v.buffer("running_var", &self.running_var);
                if let Some(n) = &self.num_batches_tracked {
                    v.buffer("num_batches_tracked", n);
                }
            }
        }
    }

    fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }

    fn kind(&self) -> String {
        match self.config.naming {
            Naming::Keras => "BatchNormalization".into(),
            Naming::PyTorch => "BatchNorm".into(),
        }
    }
}
