//! Learning-rate schedules: the rate of each epoch or each optimizer step,
//! as a fraction of the base rate, following the formulas of PyTorch's
//! schedulers (StepLR, CosineAnnealingLR, OneCycleLR) and of Hugging Face's
//! `get_cosine_schedule_with_warmup`.

use std::f64::consts::PI;

/// What a schedule counts: epochs, or optimizer steps (batches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Every {
    #[default]
    Epoch,
    Step,
}

/// How the learning rate changes during `fit`.
///
/// ```
/// use kiln_models::{Every, LrSchedule};
/// let s = LrSchedule::WarmupCosine { warmup: 10, total: 110, min_lr: 0.0, every: Every::Step };
/// assert_eq!(s.rate(1e-3, 5), 5e-4); // halfway up the warm-up
/// assert_eq!(s.rate(1e-3, 10), 1e-3); // the peak
/// assert!(s.rate(1e-3, 110) < 1e-12); // the end of the cosine
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum LrSchedule {
    /// The rate stays what `compile` (or a callback) set.
    #[default]
    Constant,
    /// Multiply by `factor` every `every` epochs (PyTorch's StepLR).
    Step { every: usize, factor: f32 },
    /// Cosine from the base rate at epoch 0 to `min_lr` at epoch `epochs`
    /// (CosineAnnealingLR's closed form).
    Cosine { epochs: usize, min_lr: f32 },
    /// Linear warm-up from 0 to the base rate over `warmup` units, then a
    /// cosine down to `min_lr` at unit `total` (Hugging Face's
    /// `get_cosine_schedule_with_warmup`, with a floor).
    WarmupCosine {
        warmup: usize,
        total: usize,
        min_lr: f32,
        every: Every,
    },
    /// PyTorch's OneCycleLR (cosine annealing, two phases): from
    /// `max_lr / div_factor` up to the base rate, `max_lr`, over the first
    /// `pct_start` of `total` units, then down to
    /// `max_lr / (div_factor · final_div_factor)` at unit `total − 1`.
    /// Momentum is not cycled.
    OneCycle {
        total: usize,
        pct_start: f32,
        div_factor: f32,
        final_div_factor: f32,
        every: Every,
    },
}

/// PyTorch's `_annealing_cos`: from `start` at `pct` 0 to `end` at 1.
fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
}

/// The unit where one-cycle's rise ends (PyTorch's `pct_start·total − 1`).
fn one_cycle_peak(total: usize, pct_start: f32) -> f64 {
    pct_start as f64 * total as f64 - 1.0
}

impl LrSchedule {
    /// PyTorch's OneCycleLR defaults: 30 % rising, `div_factor` 25,
    /// `final_div_factor` 10⁴.
    pub fn one_cycle(total: usize, every: Every) -> Self {
        LrSchedule::OneCycle {
            total,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            every,
        }
    }

    /// What the schedule counts.
    pub fn every(&self) -> Every {
        match *self {
            LrSchedule::WarmupCosine { every, .. } | LrSchedule::OneCycle { every, .. } => every,
            _ => Every::Epoch,
        }
    }

    /// The rate at (0-based) unit `n` for base rate `lr`.
    pub fn rate(&self, lr: f32, n: usize) -> f32 {
        let (base, n) = (lr as f64, n as f64);
        let r = match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, factor } => {
                base * (factor as f64).powi((n as usize / every.max(1)) as i32)
            }
            LrSchedule::Cosine { epochs, min_lr } => {
                let p = (n / epochs.max(1) as f64).min(1.0);
                annealing_cos(base, min_lr as f64, p)
            }
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_lr,
                ..
            } => {
                if n < warmup as f64 {
                    base * n / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let p = ((n - warmup as f64) / span).min(1.0);
                    annealing_cos(base, min_lr as f64, p)
                }
            }
            LrSchedule::OneCycle {
                total,
                pct_start,
                div_factor,
                final_div_factor,
                ..
            } => {
                let initial = base / div_factor as f64;
                let last = initial / final_div_factor as f64;
                let peak = one_cycle_peak(total, pct_start);
                let end = total as f64 - 1.0;
                if n <= peak {
                    annealing_cos(initial, base, n / peak)
                } else {
                    annealing_cos(base, last, ((n - peak) / (end - peak)).min(1.0))
                }
            }
        };
        r as f32
    }

    /// The rate of (0-based) `epoch`, for schedules by epoch; kept for
    /// callers of the epoch-only schedules.
    pub fn at(&self, lr: f32, epoch: usize) -> f32 {
        self.rate(lr, epoch)
    }

    /// Settings that cannot make a rate: an error naming them.
    pub(crate) fn validate(&self) -> crate::error::Result<()> {
        let ok = match *self {
            LrSchedule::Constant => true,
            LrSchedule::Step { every, factor } => every > 0 && factor > 0.0,
            LrSchedule::Cosine { epochs, min_lr } => epochs > 0 && min_lr >= 0.0,
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_lr,
                ..
            } => total > warmup && min_lr >= 0.0,
            LrSchedule::OneCycle {
                total,
                pct_start,
                div_factor,
                final_div_factor,
                ..
            } => {
                let peak = one_cycle_peak(total, pct_start);
                peak > 0.0
                    && peak < total as f64 - 1.0
                    && div_factor > 0.0
                    && final_div_factor > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(crate::error::ModelError::Settings(format!(
                "learning-rate schedule {self:?}: expected positive lengths and factors, a warm-up shorter than the total, and for one-cycle a rising phase of at least one unit that ends before the last"
            )))
        }
    }
}
