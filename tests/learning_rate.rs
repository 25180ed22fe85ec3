//! Callbacks and schedules that steer the learning rate, through `fit`:
//! ReduceLrOnPlateau against Keras' rule replayed on the logged values,
//! LearningRateScheduler, and the per-step and per-epoch schedules against
//! their published formulas (Hugging Face's cosine with warm-up, PyTorch's
//! OneCycleLR) at every step. That the rate set is the rate a step uses is
//! tests/optimizers.rs's part (its cases run the schedules through the
//! update kernels against an f64 reference).

use std::cell::RefCell;
use std::f64::consts::PI;
use std::rc::Rc;

use kiln::models::{BatchLogs, Callback, Control};
use kiln::prelude::*;

const ROWS: usize = 40;
const FEATURES: usize = 4;

fn device() -> Device {
    kiln::device_from_flag(None).expect("an adapter")
}

/// A noisy linear target: the loss falls, then flattens.
fn data() -> Dataset {
    let x: Vec<f32> = (0..ROWS * FEATURES)
        .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let y: Vec<f32> = (0..ROWS)
        .map(|r| {
            let row = &x[r * FEATURES..(r + 1) * FEATURES];
            row[0] - 2.0 * row[1] + 0.5 * row[3] + (((r * 31) % 11) as f32 / 11.0 - 0.5)
        })
        .collect();
    Dataset::new(x, y, FEATURES, 1).unwrap()
}

fn regression(device: &Device, lr: f32) -> Sequential {
    let mut m = Sequential::new(device, FEATURES)
        .seed(5)
        .dense(1, Activation::None);
    m.compile(Optimizer::sgd(lr), Loss::MeanSquaredError, &[])
        .unwrap();
    m
}

/// Records the learning rate every step trains at.
struct RateAtEachStep(Rc<RefCell<Vec<f32>>>);

impl Callback for RateAtEachStep {
    fn on_batch_begin(
        &mut self,
        _: &BatchLogs,
        model: &mut dyn Trainable,
    ) -> kiln::models::Result<()> {
        self.0.borrow_mut().push(model.learning_rate().unwrap());
        Ok(())
    }
}

/// Keras' ReduceLROnPlateau (keras/src/callbacks/reduce_lr_on_plateau.py)
/// replayed on a logged series, in f64: the rate each epoch trained at.
fn keras_plateau_rates(
    series: &[f32],
    lr: f64,
    factor: f64,
    patience: usize,
    min_delta: f64,
    cooldown: usize,
    min_lr: f64,
) -> Vec<f64> {
    let (mut best, mut wait, mut cool, mut lr) = (f64::INFINITY, 0, 0, lr);
    let mut rates = Vec::new();
    for &current in series {
        rates.push(lr);
        let current = current as f64;
        if cool > 0 {
            cool -= 1;
            wait = 0;
        }
        if current < best - min_delta {
            best = current;
            wait = 0;
        } else if cool == 0 {
            wait += 1;
            if wait >= patience && lr > min_lr {
                lr = (lr * factor).max(min_lr);
                cool = cooldown;
                wait = 0;
            }
        }
    }
    rates
}

#[test]
fn reduce_lr_on_plateau_follows_keras_rule_down_to_min_lr() {
    let device = device();
    let mut m = regression(&device, 0.2);
    let (factor, patience, min_delta, cooldown, min_lr) = (0.5, 2, 0.01, 2, 0.02);
    let history = m
        .fit(
            &data(),
            Fit::epochs(30)
                .batch_size(8)
                .shuffle(Some(3))
                .verbosity(Verbosity::Silent)
                .callback(
                    ReduceLrOnPlateau::monitor("loss")
                        .factor(factor)
                        .patience(patience)
                        .min_delta(min_delta)
                        .cooldown(cooldown)
                        .min_lr(min_lr),
                ),
        )
        .unwrap();
    let loss = history.series("loss");
    let want = keras_plateau_rates(
        &loss,
        0.2,
        factor as f64,
        patience,
        min_delta as f64,
        cooldown,
        min_lr as f64,
    );
    assert_eq!(history.learning_rates.len(), 30);
    for (epoch, (&got, &want)) in history.learning_rates.iter().zip(&want).enumerate() {
        assert!(
            (got as f64 - want).abs() <= 1e-7 * want,
            "epoch {}: rate {got}, Keras' rule gives {want} (losses {loss:?})",
            epoch + 1
        );
    }
    // Not vacuous: the rate fell, more than once, and stopped at min_lr.
    let drops = want.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(drops >= 2, "the plateau rule never acted twice: {want:?}");
    assert!(history.learning_rates.iter().all(|&r| r >= min_lr));
    assert_eq!(*history.learning_rates.last().unwrap(), min_lr, "{want:?}");
    // The rate holds after fit, as Keras' optimizer keeps it.
    assert_eq!(m.learning_rate(), Some(min_lr));
}

#[test]
fn a_plateau_callback_on_a_name_that_is_not_logged_is_an_error() {
    let device = device();
    let mut m = regression(&device, 0.1);
    let e = m
        .fit(
            &data(),
            Fit::epochs(2)
                .verbosity(Verbosity::Silent)
                .callback(ReduceLrOnPlateau::monitor("val_loss")),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no logged value named \"val_loss\"") && e.contains("\"loss\""),
        "{e}"
    );
    let e = m
        .fit(
            &data(),
            Fit::epochs(2)
                .verbosity(Verbosity::Silent)
                .callback(ReduceLrOnPlateau::monitor("loss").factor(1.5)),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("factor in (0, 1)"), "{e}");
}

/// The rate of every step of a fit of `epochs` epochs of 5 batches.
fn rates_of(schedule: LrSchedule, epochs: usize, extra: Option<LearningRateScheduler>) -> Vec<f32> {
    let device = device();
    let mut m = regression(&device, 0.05);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut fit = Fit::epochs(epochs)
        .batch_size(8)
        .schedule(schedule)
        .verbosity(Verbosity::Silent)
        .callback(RateAtEachStep(seen.clone()));
    if let Some(cb) = extra {
        fit = fit.callback(cb);
    }
    let history = m.fit(&data(), fit).unwrap();
    assert_eq!(history.learning_rates.len(), epochs);
    let rates = seen.borrow().clone();
    assert_eq!(rates.len(), epochs * ROWS / 8);
    rates
}

fn assert_rates(what: &str, got: &[f32], want: impl Fn(usize) -> f64) {
    for (step, &g) in got.iter().enumerate() {
        let w = want(step);
        assert!(
            (g as f64 - w).abs() <= 1e-6 * w.abs().max(1e-3),
            "{what}, step {step}: rate {g}, the formula gives {w}"
        );
    }
}

#[test]
fn warm_up_then_cosine_matches_its_formula_at_every_step() {
    let (base, warmup, total, min_lr) = (0.05f64, 6, 30, 1e-3f64);
    let got = rates_of(
        LrSchedule::WarmupCosine {
            warmup,
            total,
            min_lr: min_lr as f32,
            every: Every::Step,
        },
        6,
        None,
    );
    // transformers.get_cosine_schedule_with_warmup, with a floor.
    assert_rates("warm-up cosine", &got, |s| {
        if s < warmup {
            base * s as f64 / warmup as f64
        } else {
            let p = (s - warmup) as f64 / (total - warmup) as f64;
            min_lr + (base - min_lr) * 0.5 * (1.0 + (PI * p).cos())
        }
    });
    assert_eq!(got[0], 0.0);
    assert!((got[warmup] as f64 - base).abs() < 1e-9);
}

#[test]
fn one_cycle_matches_pytorch_at_every_step() {
    let (max_lr, total) = (0.05f64, 30usize);
    let got = rates_of(LrSchedule::one_cycle(total, Every::Step), 6, None);
    // torch.optim.lr_scheduler.OneCycleLR, anneal_strategy "cos", two phases.
    let cos = |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0);
    let (initial, last) = (max_lr / 25.0, max_lr / 25.0 / 1e4);
    let peak = 0.3 * total as f64 - 1.0;
    let end = total as f64 - 1.0;
    assert_rates("one-cycle", &got, |s| {
        let s = s as f64;
        if s <= peak {
            cos(initial, max_lr, s / peak)
        } else {
            cos(max_lr, last, (s - peak) / (end - peak))
        }
    });
}

#[test]
fn epoch_schedules_hold_within_an_epoch_and_a_scheduler_callback_acts_after_them() {
    let got = rates_of(
        LrSchedule::WarmupCosine {
            warmup: 2,
            total: 6,
            min_lr: 0.0,
            every: Every::Epoch,
        },
        6,
        None,
    );
    let want = |epoch: usize| {
        if epoch < 2 {
            0.05 * epoch as f64 / 2.0
        } else {
            0.05 * 0.5 * (1.0 + (PI * (epoch - 2) as f64 / 4.0).cos())
        }
    };
    assert_rates("per-epoch warm-up cosine", &got, |s| want(s / 5));
    // A LearningRateScheduler sees the current rate and replaces it.
    let halving = LearningRateScheduler::new(|epoch, lr| if epoch == 0 { lr } else { lr * 0.5 });
    let got = rates_of(LrSchedule::Constant, 4, Some(halving));
    assert_rates("halving", &got, |s| 0.05 * 0.5f64.powi((s / 5) as i32));
}

/// Stops after `after` batches.
struct StopAfter(usize);

impl Callback for StopAfter {
    fn on_batch_end(
        &mut self,
        b: &BatchLogs,
        _: &mut dyn Trainable,
    ) -> kiln::models::Result<Control> {
        assert!(b.loss.is_some_and(f32::is_finite), "{b:?}");
        Ok(if b.step + 1 >= self.0 as u64 {
            Control::Stop
        } else {
            Control::Continue
        })
    }
    fn wants_batch_loss(&self) -> bool {
        true
    }
}

#[test]
fn a_batch_hook_sees_the_running_loss_and_can_stop_training() {
    let device = device();
    let mut m = regression(&device, 0.05);
    let history = m
        .fit(
            &data(),
            Fit::epochs(10)
                .batch_size(8)
                .verbosity(Verbosity::Silent)
                .callback(StopAfter(7)),
        )
        .unwrap();
    assert_eq!(m.steps(), 7);
    assert_eq!(history.epochs.len(), 2, "stopped in the second epoch");
}
