//! Every optimizer variant, every learning-rate schedule and gradient
//! clipping, through the API training uses (`compile`, `clip_grad_norm`,
//! `fit`), over ten steps of a linear model, against an f64 host reference:
//! the model's gradient worked out by hand and the updates written from
//! PyTorch's published rules (the pseudo-code of `torch.optim`'s
//! documentation; Keras' for Adam with Keras' ε). Ten steps run bias
//! correction, momentum buffers, dampening, decay and the schedules past
//! their first step, where the first step alone would hide them.

use kiln::prelude::*;

const ROWS: usize = 16;
const INPUTS: usize = 5;
const OUTPUTS: usize = 3;
const STEPS: usize = 10;

/// Fixed, irregular data: features in [-1, 1], targets a noisy linear map.
fn data() -> (Vec<f32>, Vec<f32>) {
    let mut rng = kiln::data::SplitMix64::new(3);
    let mut u = || rng.next_f64() as f32 * 2.0 - 1.0;
    let x: Vec<f32> = (0..ROWS * INPUTS).map(|_| u()).collect();
    let t: Vec<f32> = (0..ROWS * OUTPUTS).map(|_| 2.0 * u()).collect();
    (x, t)
}

/// One parameter vector: the kernel `[INPUTS, OUTPUTS]` row-major, then the
/// bias. Every rule below is elementwise but clipping, which takes the norm
/// over all of it, as PyTorch's `clip_grad_norm_` over all parameters.
fn gradient(p: &[f64], x: &[f32], t: &[f32]) -> Vec<f64> {
    gradient_weighted(p, x, t, &[1.0; ROWS])
}

/// [`gradient`] of the loss with row `r`'s terms scaled by `rows[r]`
/// (Keras' sample weights: `Σ wᵣ·lᵣ / N`).
fn gradient_weighted(p: &[f64], x: &[f32], t: &[f32], rows: &[f64]) -> Vec<f64> {
    let (w, b) = p.split_at(INPUTS * OUTPUTS);
    let mut g = vec![0.0; p.len()];
    // MSE over every element: d/dy = 2(y − t)/(rows·outputs).
    let scale = 2.0 / (ROWS * OUTPUTS) as f64;
    for r in 0..ROWS {
        for o in 0..OUTPUTS {
            let y: f64 = b[o]
                + (0..INPUTS)
                    .map(|i| x[r * INPUTS + i] as f64 * w[i * OUTPUTS + o])
                    .sum::<f64>();
            let dy = rows[r] * scale * (y - t[r * OUTPUTS + o] as f64);
            for i in 0..INPUTS {
                g[i * OUTPUTS + o] += x[r * INPUTS + i] as f64 * dy;
            }
            g[INPUTS * OUTPUTS + o] += dy;
        }
    }
    g
}

/// The update rules, written from PyTorch's documentation.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    Adam {
        weight_decay: f64,
        decoupled: bool,
        /// Keras adds ε to √v, with the bias correction folded into the
        /// step size; PyTorch adds it to √v̂.
        keras_eps: bool,
        eps: f64,
    },
    Adagrad {
        lr_decay: f64,
        weight_decay: f64,
        eps: f64,
    },
}

#[derive(Default)]
struct State {
    t: i32,
    a: Vec<f64>,
    b: Vec<f64>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;

fn update(rule: Rule, lr: f64, p: &mut [f64], g: &[f64], s: &mut State) {
    s.t += 1;
    if s.a.is_empty() {
        s.a = vec![0.0; p.len()];
        s.b = vec![0.0; p.len()];
    }
    for i in 0..p.len() {
        match rule {
            Rule::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                let mut d = g[i] + weight_decay * p[i];
                if momentum != 0.0 {
                    s.a[i] = match s.t {
                        1 => d,
                        _ => momentum * s.a[i] + (1.0 - dampening) * d,
                    };
                    d = if nesterov {
                        d + momentum * s.a[i]
                    } else {
                        s.a[i]
                    };
                }
                p[i] -= lr * d;
            }
            Rule::Adam {
                weight_decay,
                decoupled,
                keras_eps,
                eps,
            } => {
                let mut d = g[i];
                if decoupled {
                    p[i] *= 1.0 - lr * weight_decay;
                } else {
                    d += weight_decay * p[i];
                }
                s.a[i] = BETA1 * s.a[i] + (1.0 - BETA1) * d;
                s.b[i] = BETA2 * s.b[i] + (1.0 - BETA2) * d * d;
                let (c1, c2) = (1.0 - BETA1.powi(s.t), 1.0 - BETA2.powi(s.t));
                p[i] -= match keras_eps {
                    true => lr * c2.sqrt() / c1 * s.a[i] / (s.b[i].sqrt() + eps),
                    false => lr * (s.a[i] / c1) / ((s.b[i] / c2).sqrt() + eps),
                };
            }
            Rule::Adagrad {
                lr_decay,
                weight_decay,
                eps,
            } => {
                let d = g[i] + weight_decay * p[i];
                let clr = lr / (1.0 + (s.t - 1) as f64 * lr_decay);
                s.a[i] += d * d;
                p[i] -= clr * d / (s.a[i].sqrt() + eps);
            }
        }
    }
}

/// PyTorch's `clip_grad_norm_`: scale by max_norm/(‖g‖ + 1e-6) where that
/// is below 1; true when it was.
fn clip(g: &mut [f64], max_norm: f64) -> bool {
    let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        g.iter_mut().for_each(|v| *v *= coef);
    }
    coef < 1.0
}

/// A learning rate per epoch: PyTorch's StepLR and the closed form of
/// CosineAnnealingLR; per step: Hugging Face's cosine with warm-up, and
/// PyTorch's OneCycleLR (one full-batch step per epoch here).
#[derive(Clone, Copy, Debug)]
enum Schedule {
    Constant,
    Step { every: usize, gamma: f64 },
    Cosine { epochs: usize, min: f64 },
    WarmupCosine { warmup: usize, total: usize },
    OneCycle { total: usize },
}

impl Schedule {
    fn lr(self, base: f64, epoch: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every) as i32),
            Schedule::Cosine { epochs, min } => {
                let p = (epoch as f64 / epochs as f64).min(1.0);
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * p).cos())
            }
            Schedule::WarmupCosine { warmup, .. } if epoch < warmup => {
                base * epoch as f64 / warmup as f64
            }
            Schedule::WarmupCosine { warmup, total } => {
                let p = (epoch - warmup) as f64 / (total - warmup) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
            Schedule::OneCycle { total } => {
                let cos = |a: f64, b: f64, pct: f64| {
                    b + (a - b) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
                };
                let (peak, end) = (0.3 * total as f64 - 1.0, total as f64 - 1.0);
                let s = epoch as f64;
                if s <= peak {
                    cos(base / 25.0, base, s / peak)
                } else {
                    cos(base, base / 25.0 / 1e4, (s - peak) / (end - peak))
                }
            }
        }
    }

    fn kiln(self) -> LrSchedule {
        match self {
            Schedule::Constant => LrSchedule::Constant,
            Schedule::Step { every, gamma } => LrSchedule::Step {
                every,
                factor: gamma as f32,
            },
            Schedule::Cosine { epochs, min } => LrSchedule::Cosine {
                epochs,
                min_lr: min as f32,
            },
            Schedule::WarmupCosine { warmup, total } => LrSchedule::WarmupCosine {
                warmup,
                total,
                min_lr: 0.0,
                every: Every::Step,
            },
            Schedule::OneCycle { total } => LrSchedule::one_cycle(total, Every::Step),
        }
    }
}

struct Case {
    name: &'static str,
    optimizer: Optimizer,
    rule: Rule,
    lr: f64,
    schedule: Schedule,
    clip: Option<f64>,
}

/// The dense layer's parameters as one vector, the layout of [`gradient`].
fn params(m: &Sequential) -> Vec<f64> {
    let w = m.weights().unwrap();
    let get = |suffix: &str| {
        let (_, v) = w.iter().find(|(n, _)| n.ends_with(suffix)).unwrap();
        v.iter().map(|&v| v as f64).collect::<Vec<_>>()
    };
    let mut p = get("kernel");
    p.extend(get("bias"));
    assert_eq!(p.len(), INPUTS * OUTPUTS + OUTPUTS, "{w:?}");
    p
}

/// Ten full-batch steps (one per epoch) through `fit`, and the reference's
/// ten; the largest error relative to the parameters' size.
fn run(device: &Device, case: &Case) -> f64 {
    let (x, t) = data();
    let mut model = Sequential::new(device, INPUTS)
        .seed(9)
        .dense(OUTPUTS, Activation::None);
    model
        .compile(case.optimizer, Loss::MeanSquaredError, &[])
        .unwrap();
    if let Some(c) = case.clip {
        model.clip_grad_norm(c as f32).unwrap();
    }
    let mut want = params(&model);
    let data = Dataset::new(x.clone(), t.clone(), INPUTS, OUTPUTS).unwrap();
    let fit = Fit::epochs(STEPS)
        .batch_size(ROWS)
        .shuffle(None)
        .schedule(case.schedule.kiln())
        .verbosity(Verbosity::Silent);
    model.fit(&data, fit).unwrap();
    let got = params(&model);

    let start = want.clone();
    let mut state = State::default();
    let mut clipped = 0;
    for epoch in 0..STEPS {
        let mut g = gradient(&want, &x, &t);
        if let Some(c) = case.clip {
            clipped += clip(&mut g, c) as usize;
        }
        update(
            case.rule,
            case.schedule.lr(case.lr, epoch),
            &mut want,
            &g,
            &mut state,
        );
    }
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let moved = want
        .iter()
        .zip(&start)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 1e-3 * scale,
        "{}: the reference barely moved ({moved:e}); the case tests nothing",
        case.name
    );
    if case.clip.is_some() {
        assert_eq!(
            clipped, STEPS,
            "{}: the clip must bind at every step",
            case.name
        );
    }
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0.0, f64::max)
}

fn sgd(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Rule {
    Rule::Sgd {
        momentum,
        dampening,
        nesterov,
        weight_decay,
    }
}

fn cases() -> Vec<Case> {
    let plain = |name, optimizer, rule, lr| Case {
        name,
        optimizer,
        rule,
        lr,
        schedule: Schedule::Constant,
        clip: None,
    };
    let torch_adam = |weight_decay, decoupled| Rule::Adam {
        weight_decay,
        decoupled,
        keras_eps: false,
        eps: 1e-8,
    };
    let with = |case: Case, schedule, clip| Case {
        schedule,
        clip,
        ..case
    };
    vec![
        plain("SGD", Optimizer::sgd(0.1), sgd(0.0, 0.0, false, 0.0), 0.1),
        plain(
            "SGD momentum",
            Optimizer::sgd(0.1).with_momentum(0.9, false),
            sgd(0.9, 0.0, false, 0.0),
            0.1,
        ),
        plain(
            "SGD momentum, dampening",
            Optimizer::sgd(0.1)
                .with_momentum(0.9, false)
                .with_dampening(0.3),
            sgd(0.9, 0.3, false, 0.0),
            0.1,
        ),
        plain(
            "SGD Nesterov",
            Optimizer::sgd(0.1).with_momentum(0.8, true),
            sgd(0.8, 0.0, true, 0.0),
            0.1,
        ),
        plain(
            "SGD weight decay",
            Optimizer::sgd(0.1).with_weight_decay(0.05),
            sgd(0.0, 0.0, false, 0.05),
            0.1,
        ),
        plain(
            "SGD momentum, weight decay",
            Optimizer::sgd(0.1)
                .with_momentum(0.9, false)
                .with_weight_decay(0.05),
            sgd(0.9, 0.0, false, 0.05),
            0.1,
        ),
        plain(
            "Adam (Keras' ε)",
            Optimizer::adam(0.02),
            Rule::Adam {
                weight_decay: 0.0,
                decoupled: false,
                keras_eps: true,
                eps: 1e-7,
            },
            0.02,
        ),
        plain(
            "Adam (PyTorch)",
            Optimizer::adam_torch(0.02),
            torch_adam(0.0, false),
            0.02,
        ),
        plain(
            "Adam, L2 weight decay",
            Optimizer::adam_torch(0.02).with_weight_decay(0.1),
            torch_adam(0.1, false),
            0.02,
        ),
        plain(
            "AdamW",
            Optimizer::adamw(0.02, 0.1),
            torch_adam(0.1, true),
            0.02,
        ),
        plain(
            "Adagrad",
            Optimizer::adagrad(0.1),
            Rule::Adagrad {
                lr_decay: 0.0,
                weight_decay: 0.0,
                eps: 1e-10,
            },
            0.1,
        ),
        plain(
            "Adagrad, lr decay, weight decay",
            Optimizer::adagrad(0.1)
                .with_lr_decay(0.2)
                .with_weight_decay(0.05),
            Rule::Adagrad {
                lr_decay: 0.2,
                weight_decay: 0.05,
                eps: 1e-10,
            },
            0.1,
        ),
        with(
            plain(
                "SGD, step schedule",
                Optimizer::sgd(0.1),
                sgd(0.0, 0.0, false, 0.0),
                0.1,
            ),
            Schedule::Step {
                every: 3,
                gamma: 0.5,
            },
            None,
        ),
        with(
            plain(
                "Adam, cosine schedule",
                Optimizer::adam_torch(0.02),
                torch_adam(0.0, false),
                0.02,
            ),
            Schedule::Cosine {
                epochs: 8,
                min: 0.001,
            },
            None,
        ),
        with(
            plain(
                "SGD momentum, warm-up cosine by step",
                Optimizer::sgd(0.1).with_momentum(0.9, false),
                sgd(0.9, 0.0, false, 0.0),
                0.1,
            ),
            Schedule::WarmupCosine {
                warmup: 3,
                total: 12,
            },
            None,
        ),
        with(
            plain(
                "Adam, one-cycle by step",
                Optimizer::adam_torch(0.02),
                torch_adam(0.0, false),
                0.02,
            ),
            Schedule::OneCycle { total: STEPS },
            None,
        ),
        with(
            plain(
                "SGD momentum, clipped",
                Optimizer::sgd(0.1).with_momentum(0.9, false),
                sgd(0.9, 0.0, false, 0.0),
                0.1,
            ),
            Schedule::Constant,
            Some(0.05),
        ),
    ]
}

#[test]
fn every_optimizer_schedule_and_clipping_follows_the_published_rules_over_ten_steps() {
    let device = kiln::device_from_flag(None).expect("an adapter");
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for case in cases() {
        let err = run(&device, &case);
        report.push(format!("{}: {err:.1e}", case.name));
        if err.is_nan() || err >= 1e-6 {
            wrong.push(case.name);
        }
    }
    // Errors are relative to the largest parameter; float32 lands near 1e-7.
    println!("{}", report.join("\n"));
    assert!(
        wrong.is_empty(),
        "{wrong:?} are off:\n{}",
        report.join("\n")
    );
}

/// Four batches of 8 with accumulated gradients step as one batch of 32:
/// the mean of four equal batches' mean gradients is the big batch's. Adam
/// checks that the step count (bias correction) advances once per four
/// batches; SGD, which unlike Adam is not scale-invariant, that the sum is
/// divided by four.
#[test]
fn gradient_accumulation_of_4_batches_of_8_matches_batch_32() {
    let device = kiln::device_from_flag(None).expect("an adapter");
    let rows = 64;
    let x: Vec<f32> = (0..rows * INPUTS)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let y: Vec<f32> = (0..rows * OUTPUTS)
        .map(|i| ((i * 40503) % 997) as f32 / 997.0)
        .collect();
    let data = Dataset::new(x, y, INPUTS, OUTPUTS).unwrap();
    for optimizer in [
        Optimizer::adam_torch(0.01),
        Optimizer::sgd(0.1).with_momentum(0.9, false),
    ] {
        accumulation_matches(&device, &data, optimizer);
    }
}

fn accumulation_matches(device: &Device, data: &Dataset, optimizer: Optimizer) {
    let train = |batch: usize, accumulate: usize| {
        let mut m = Sequential::new(device, INPUTS)
            .seed(4)
            .dense(8, Activation::Tanh)
            .dense(OUTPUTS, Activation::None);
        m.compile(optimizer, Loss::MeanSquaredError, &[]).unwrap();
        m.accumulate_gradients(accumulate).unwrap();
        let fit = Fit::epochs(3)
            .batch_size(batch)
            .shuffle(None)
            .verbosity(Verbosity::Silent);
        let history = m.fit(data, fit).unwrap();
        (m.weights().unwrap(), m.steps(), history.series("loss"))
    };
    let (whole, whole_steps, whole_loss) = train(32, 1);
    let (parts, parts_steps, parts_loss) = train(8, 4);
    assert_eq!((whole_steps, parts_steps), (6, 6));
    let start = {
        let m = Sequential::new(device, INPUTS)
            .seed(4)
            .dense(8, Activation::Tanh)
            .dense(OUTPUTS, Activation::None);
        m.weights().unwrap()
    };
    for (((name, a), (_, b)), (_, s)) in whole.iter().zip(&parts).zip(&start) {
        let scale = a.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        let err = a
            .iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        let moved = a
            .iter()
            .zip(s)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(
            err <= 1e-5 * scale,
            "{name}: off by {err:e} (scale {scale})"
        );
        assert!(
            moved > 1e-3,
            "{name} barely moved ({moved:e}); the case tests nothing"
        );
    }
    // The loss still counts every batch: the first epoch's mean is the same
    // data under the same weights.
    assert!(
        (whole_loss[0] - parts_loss[0]).abs() < 1e-5,
        "{whole_loss:?} vs {parts_loss:?}"
    );
}

/// Keras' `sample_weight` and `class_weight` scale each sample's loss term,
/// the loss staying a mean over the batch (`Σ wᵢ·lᵢ / N`): ten full-batch
/// SGD steps through `fit` against the f64 reference with the same
/// weights; and class weights train exactly as the sample weights they
/// stand for.
#[test]
fn sample_and_class_weights_scale_each_samples_loss() {
    let device = kiln::device_from_flag(None).expect("an adapter");
    let (x, t) = data();
    let weights: Vec<f32> = (0..ROWS).map(|r| [0.2, 1.0, 3.0][r % 3]).collect();
    let mut model = Sequential::new(&device, INPUTS)
        .seed(9)
        .dense(OUTPUTS, Activation::None);
    model
        .compile(Optimizer::sgd(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let mut want = params(&model);
    let data = Dataset::new(x.clone(), t.clone(), INPUTS, OUTPUTS).unwrap();
    let fit = Fit::epochs(STEPS)
        .batch_size(ROWS)
        .shuffle(None)
        .verbosity(Verbosity::Silent)
        .sample_weight(weights.clone());
    model.fit(&data, fit).unwrap();
    let rows: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
    let unweighted = {
        let mut p = want.clone();
        for _ in 0..STEPS {
            let g = gradient(&p, &x, &t);
            p.iter_mut().zip(&g).for_each(|(p, g)| *p -= 0.1 * g);
        }
        p
    };
    for _ in 0..STEPS {
        let g = gradient_weighted(&want, &x, &t, &rows);
        want.iter_mut().zip(&g).for_each(|(p, g)| *p -= 0.1 * g);
    }
    let got = params(&model);
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err <= 1e-6 * scale, "weighted SGD off by {err:e}");
    // Not vacuous: the weights change where training ends.
    let apart = unweighted
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        apart > 1e-3 * scale,
        "the weights changed nothing ({apart:e})"
    );

    // Class weights are the sample weights of each row's class.
    let labels: Vec<f32> = (0..ROWS).map(|r| (r % 3) as f32).collect();
    let classes = Dataset::new(x.clone(), labels, INPUTS, 1).unwrap();
    let train = |cfg: Fit| {
        let mut m = Sequential::new(&device, INPUTS)
            .seed(9)
            .dense(3, Activation::None);
        m.compile(
            Optimizer::sgd(0.1),
            Loss::SparseCategoricalCrossEntropyFromLogits,
            &[],
        )
        .unwrap();
        m.fit(
            &classes,
            cfg.batch_size(8)
                .shuffle(Some(1))
                .verbosity(Verbosity::Silent),
        )
        .unwrap();
        m.weights().unwrap()
    };
    let by_class = train(Fit::epochs(3).class_weight(vec![0.2, 1.0, 3.0]));
    let by_row = train(Fit::epochs(3).sample_weight(weights));
    assert_eq!(by_class, by_row);
    let plain = train(Fit::epochs(3));
    assert_ne!(by_class, plain);
}

#[test]
fn weights_that_do_not_fit_the_data_are_refused_by_name() {
    let device = kiln::device_from_flag(None).expect("an adapter");
    let (x, t) = data();
    let data = Dataset::new(x, t, INPUTS, OUTPUTS).unwrap();
    let mut m = Sequential::new(&device, INPUTS).dense(OUTPUTS, Activation::None);
    m.compile(Optimizer::sgd(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let quiet = || Fit::epochs(1).verbosity(Verbosity::Silent);
    let e = m
        .fit(&data, quiet().sample_weight(vec![1.0; 3]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 weights for 16 rows"), "{e}");
    let e = m
        .fit(&data, quiet().class_weight(vec![1.0, 2.0]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("one class index per row"), "{e}");
    let e = m
        .fit(&data, quiet().sample_weight(vec![-1.0; ROWS]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 0 has loss weight -1"), "{e}");
    assert_eq!(m.steps(), 0, "nothing trained");
}
