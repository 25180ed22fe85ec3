//! Optimizer settings. The update itself is one fused kernel per parameter
//! (`optim.wgsl`); this file turns settings and the step number into the
//! hyperparameter words that kernel reads, so a learning rate can change
//! between steps without recompiling anything.

use kiln_graph::{UpdateRule, HYPER_WORDS};

/// Where Adam's ε goes: Keras adds it to √v, PyTorch to √v̂.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsilonConvention {
    Keras,
    PyTorch,
}

/// An optimizer and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// PyTorch's SGD: `g += λ·w; b = μ·b + (1 − dampening)·g` (the first
    /// step takes `g` whole), step `lr·b` (or `lr·(g + μ·b)` with Nesterov).
    Sgd {
        lr: f32,
        momentum: f32,
        nesterov: bool,
        weight_decay: f32,
        dampening: f32,
    },
    /// Adam, or AdamW with `decoupled` weight decay.
    Adam {
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        decoupled: bool,
        convention: EpsilonConvention,
    },
    /// PyTorch's Adagrad: `g += λ·w; s += g²; w −= lr_t·g/(√s + ε)` with
    /// `lr_t = lr/(1 + (t − 1)·lr_decay)`.
    Adagrad {
        lr: f32,
        lr_decay: f32,
        eps: f32,
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Keras' `Adam(learning_rate)`: β 0.9/0.999, ε 1e-7 added to √v.
    ///
    /// ```
    /// let opt = kiln_models::Optimizer::adam(1e-3);
    /// let h = opt.hyper(1e-3, 1);
    /// // first step: lr·√(1 − β₂)/(1 − β₁), with the f32 betas Keras holds
    /// let want = 1e-3 * 0.001f64.sqrt() / 0.1;
    /// assert!(((h[0] as f64 - want) / want).abs() < 1e-5);
    /// ```
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
            decoupled: false,
            convention: EpsilonConvention::Keras,
        }
    }

    /// PyTorch's `torch.optim.Adam(lr)`: ε 1e-8 added to √v̂.
    pub fn adam_torch(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            convention: EpsilonConvention::PyTorch,
        }
    }

    /// PyTorch's `AdamW(lr, weight_decay)`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled: true,
            convention: EpsilonConvention::PyTorch,
        }
    }

    /// Plain SGD; add momentum with [`Optimizer::with_momentum`].
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            dampening: 0.0,
        }
    }

    /// PyTorch's `Adagrad(lr)`: no learning-rate decay, ε 1e-10.
    ///
    /// ```
    /// let opt = kiln_models::Optimizer::adagrad(0.1).with_lr_decay(0.5);
    /// // the third step's learning rate: 0.1 / (1 + 2·0.5)
    /// assert_eq!(opt.hyper(0.1, 3)[0], 0.05);
    /// ```
    pub fn adagrad(lr: f32) -> Self {
        Optimizer::Adagrad {
            lr,
            lr_decay: 0.0,
            eps: 1e-10,
            weight_decay: 0.0,
        }
    }

    /// SGD with momentum `m` (Nesterov if `nesterov`); other optimizers
    /// are returned as they are.
    pub fn with_momentum(mut self, m: f32, nesterov: bool) -> Self {
        if let Optimizer::Sgd {
            momentum,
            nesterov: n,
            ..
        } = &mut self
        {
            (*momentum, *n) = (m, nesterov);
        }
        self
    }

    /// SGD's dampening of the gradient entering the momentum buffer.
    pub fn with_dampening(mut self, d: f32) -> Self {
        if let Optimizer::Sgd { dampening, .. } = &mut self {
            *dampening = d;
        }
        self
    }

    /// Adagrad's learning-rate decay.
    pub fn with_lr_decay(mut self, decay: f32) -> Self {
        if let Optimizer::Adagrad { lr_decay, .. } = &mut self {
            *lr_decay = decay;
        }
        self
    }

    /// L2 weight decay (added to the gradient; decoupled for AdamW).
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        match &mut self {
            Optimizer::Sgd { weight_decay, .. }
            | Optimizer::Adam { weight_decay, .. }
            | Optimizer::Adagrad { weight_decay, .. } => *weight_decay = wd,
        }
        self
    }

    /// The base learning rate.
    pub fn learning_rate(&self) -> f32 {
        match self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::Adagrad { lr, .. } => *lr,
        }
    }

    /// The update kernel's rule, which reads [`Optimizer::hyper`]'s words.
    pub fn rule(&self) -> UpdateRule {
        match self {
            Optimizer::Sgd { .. } => UpdateRule::Sgd,
            Optimizer::Adam { .. } => UpdateRule::Adam,
            Optimizer::Adagrad { .. } => UpdateRule::Adagrad,
        }
    }

    /// Names of the per-parameter state tensors.
    pub(crate) fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { .. } => &["momentum"],
            Optimizer::Adam { .. } => &["m", "v"],
            Optimizer::Adagrad { .. } => &["sum"],
        }
    }

    /// An error naming the setting out of range, if one is.
    pub fn validate(&self) -> crate::error::Result<()> {
        let ok = match *self {
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
                dampening,
                ..
            } => {
                lr > 0.0
                    && momentum >= 0.0
                    && weight_decay >= 0.0
                    && (0.0..=1.0).contains(&dampening)
            }
            Optimizer::Adagrad {
                lr,
                lr_decay,
                eps,
                weight_decay,
            } => lr > 0.0 && lr_decay >= 0.0 && eps > 0.0 && weight_decay >= 0.0,
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                lr > 0.0
                    && (0.0..1.0).contains(&beta1)
                    && (0.0..1.0).contains(&beta2)
                    && eps > 0.0
                    && weight_decay >= 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(crate::error::ModelError::Settings(format!(
                "invalid optimizer settings {self:?}: the learning rate and ε must be positive, β in [0, 1), dampening in [0, 1], decay and momentum non-negative"
            )))
        }
    }

    /// The hyperparameter words of step `t` (1-based) at learning rate `lr`.
    pub fn hyper(&self, lr: f32, t: u64) -> [f32; HYPER_WORDS] {
        let mut h = [0.0f32; HYPER_WORDS];
        match *self {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
                dampening,
                ..
            } => {
                // PyTorch: the first step fills the buffer with the whole
                // gradient; without momentum there is no buffer to damp.
                let damp = if t > 1 && momentum != 0.0 {
                    dampening
                } else {
                    0.0
                };
                h[..5].copy_from_slice(&[lr, momentum, weight_decay, nesterov as u8 as f32, damp]);
            }
            Optimizer::Adagrad {
                lr_decay,
                eps,
                weight_decay,
                ..
            } => {
                let lr_t = lr / (1.0 + (t.max(1) - 1) as f32 * lr_decay);
                h[..3].copy_from_slice(&[lr_t, eps, weight_decay]);
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
                convention,
                ..
            } => {
                let t = t.max(1) as i32;
                let c1 = 1.0 - (beta1 as f64).powi(t);
                let c2 = 1.0 - (beta2 as f64).powi(t);
                let step = lr as f64 * c2.sqrt() / c1;
                // PyTorch's m̂/(√v̂ + ε) is the Keras form with ε·√(1 − β₂ᵗ).
                let eps_t = match convention {
                    EpsilonConvention::Keras => eps as f64,
                    EpsilonConvention::PyTorch => eps as f64 * c2.sqrt(),
                };
                let (decay, l2) = if decoupled {
                    (lr * weight_decay, 0.0)
                } else {
                    (0.0, weight_decay)
                };
                h[..6].copy_from_slice(&[step as f32, eps_t as f32, beta1, beta2, decay, l2]);
            }
        }
        h
    }
}

/// Fails unless `lr` is a learning rate a step can take: finite and above 0.
pub(crate) fn check_learning_rate(lr: f32) -> crate::error::Result<()> {
    if !lr.is_finite() || lr <= 0.0 {
        return Err(crate::error::ModelError::Settings(format!(
            "learning rate {lr}: expected a finite rate above 0"
        )));
    }
    Ok(())
}
