//! The feature cache: a head trained on cached features of a frozen
//! eval-mode backbone ends exactly where training the whole model step by
//! step ends, and a backbone that is not a fixed function (batch
//! statistics in training mode, or trainable) is not cached.

#[path = "../../../tests/common/compare.rs"]
mod compare;

use kiln_backend::Device;
use kiln_data::Dataset;
use kiln_graph::Var;
use kiln_models::*;

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

/// A backbone (linear → batch norm → relu) and a head.
struct Net {
    body: Stack,
    head: Linear,
    cache: bool,
}

impl Net {
    fn new(device: &Device, seed: u64, cache: bool) -> Self {
        manual_seed(seed);
        let mut body = Stack::new();
        body.push("fc", Box::new(Linear::new(device, 6, 16).unwrap()))
            .unwrap();
        body.push("bn", Box::new(BatchNorm::pytorch(device, 16).unwrap()))
            .unwrap();
        body.push("act", Box::new(Activation::Relu)).unwrap();
        Self {
            body,
            head: Linear::new(device, 16, 3).unwrap(),
            cache,
        }
    }
}

impl Module for Net {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.head.forward(&self.body.forward(x)?)
    }
    fn visit(&self, v: &mut dyn Visitor) {
        v.module("body", &self.body);
        v.module("head", &self.head);
    }
    fn split_head(&self) -> Option<(&dyn Module, &dyn Module)> {
        self.cache
            .then_some((&self.body as &dyn Module, &self.head as &dyn Module))
    }
}

fn data() -> Dataset {
    let mut rng = kiln_data::SplitMix64::new(3);
    let x: Vec<f32> = (0..90 * 6)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    let y: Vec<f32> = (0..90).map(|i| (i % 3) as f32).collect();
    Dataset::with_shapes(x, &[6], y, &[]).unwrap()
}

/// Trains a fresh net (frozen, eval-mode backbone) and returns the head's
/// final weights and the training losses per epoch.
fn train(cache: bool, body_in_eval: bool) -> (Vec<f32>, Vec<f32>, u64) {
    train_accumulating(cache, body_in_eval, 1)
}

/// [`train`] with one optimizer step per `batches` batches.
fn train_accumulating(
    cache: bool,
    body_in_eval: bool,
    batches: usize,
) -> (Vec<f32>, Vec<f32>, u64) {
    let dev = device();
    let net = Net::new(&dev, 11, cache);
    net.body.freeze();
    if body_in_eval {
        net.body.eval();
    }
    let mut m = Model::new(&dev, net, [6]);
    m.compile(
        Optimizer::adam_torch(1e-2),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )
    .unwrap();
    m.accumulate_gradients(batches).unwrap();
    let h = m
        .fit(
            &data(),
            Fit::epochs(4).batch_size(16).verbosity(Verbosity::Silent),
        )
        .unwrap();
    let losses = h
        .epochs
        .iter()
        .map(|e| e.values.iter().find(|(n, _)| n == "loss").unwrap().1)
        .collect();
    // Steps the model took itself: none when a model of the head did them.
    (m.value("head.weight").unwrap(), losses, m.steps())
}

#[test]
fn cached_features_train_the_head_as_the_whole_model_would() {
    let (cached, cached_loss, cached_steps) = train(true, true);
    let (plain, plain_loss, plain_steps) = train(false, true);
    assert_eq!(
        (cached_steps, plain_steps),
        (0, 24),
        "the cache trained a model of the head"
    );
    compare::assert_all_close("head weights", &cached, &plain, 1e-5, 0.0);
    compare::assert_all_close("epoch losses", &cached_loss, &plain_loss, 1e-5, 0.0);
    // The head learned something.
    assert!(cached_loss[3] < cached_loss[0]);
}

/// The head trained on cached features keeps the model's gradient
/// accumulation: it steps as the whole model does.
#[test]
fn cached_features_keep_gradient_accumulation() {
    let (cached, cached_loss, _) = train_accumulating(true, true, 2);
    let (plain, plain_loss, plain_steps) = train_accumulating(false, true, 2);
    assert_eq!(plain_steps, 12, "one step per two batches");
    compare::assert_all_close("head weights", &cached, &plain, 1e-5, 0.0);
    compare::assert_all_close("epoch losses", &cached_loss, &plain_loss, 1e-5, 0.0);
}

#[test]
fn a_backbone_in_training_mode_is_not_cached() {
    // Batch norm in training mode normalises by the batch: its output for a
    // sample depends on the batch, so no cache; both paths agree.
    let (a, _, steps) = train(true, false);
    let (b, _, _) = train(false, false);
    assert_eq!(steps, 24);
    assert_eq!(a, b);
}

/// `evaluate` after `fit` reuses the features `fit` cached (the backbone is
/// not run again) and gives what the whole network gives; a data set not
/// seen is cached once; new backbone weights are never served old features.
#[test]
fn evaluate_reuses_cached_features_and_agrees_with_the_whole_network() {
    let dev = device();
    let make = |cache: bool| {
        let net = Net::new(&dev, 11, cache);
        net.body.freeze();
        net.body.eval();
        let mut m = Model::new(&dev, net, [6]);
        m.compile(
            Optimizer::adam_torch(1e-2),
            Loss::SparseCategoricalCrossEntropyFromLogits,
            &[Metric::SparseCategoricalAccuracy],
        )
        .unwrap();
        m
    };
    let all = data();
    let (train, val) = all.split_tail(0.3).unwrap();
    let mut cached = make(true);
    let fit = Fit::epochs(3)
        .batch_size(16)
        .validation_data(val.clone())
        .verbosity(Verbosity::Silent);
    cached.fit(&train, fit).unwrap();
    assert_eq!(cached.cached_feature_sets(), 2, "train and validation");
    let a = cached.evaluate(&val, 8).unwrap();
    assert_eq!(
        cached.cached_feature_sets(),
        2,
        "evaluate reused the validation features"
    );
    // The same weights through the whole network, no cache.
    let mut plain = make(false);
    for (name, values) in cached.weights().unwrap() {
        plain.set_weight(&name, &values).unwrap();
    }
    let b = plain.evaluate(&val, 8).unwrap();
    compare::assert_all_close("loss", &[a.loss], &[b.loss], 1e-5, 0.0);
    assert_eq!(a.metrics, b.metrics);
    // Unseen data is cached once.
    cached.evaluate(&all, 8).unwrap();
    cached.evaluate(&all, 8).unwrap();
    assert_eq!(cached.cached_feature_sets(), 3);
    // New backbone weights: a new entry, and the whole network's answer.
    let fc = cached.value("body.fc.weight").unwrap();
    let moved: Vec<f32> = fc.iter().map(|v| v * 0.5).collect();
    cached.set_weight("body.fc.weight", &moved).unwrap();
    plain.set_weight("body.fc.weight", &moved).unwrap();
    let a = cached.evaluate(&val, 8).unwrap();
    let b = plain.evaluate(&val, 8).unwrap();
    assert_eq!(cached.cached_feature_sets(), 4);
    compare::assert_all_close("loss after new weights", &[a.loss], &[b.loss], 1e-5, 0.0);
}
