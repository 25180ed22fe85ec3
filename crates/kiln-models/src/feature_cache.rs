//! The feature cache: when a module is a head on a backbone
//! ([`Module::split_head`]) whose features are a fixed function of the input
//! (nothing trainable, no dropout, no running statistics moving: a frozen
//! backbone in eval mode), `fit` and `evaluate` compute each data set's
//! features once, with a progress bar on a terminal, and run only the head
//! on them. Entries are keyed by the data and the backbone's values, so a
//! backbone given new weights is never served stale features.

use std::hash::{Hash, Hasher};

use indicatif::{ProgressBar, ProgressStyle};
use kiln_data::Dataset;
use kiln_graph::{Mode, Op, Tape};

use crate::error::Result;
use crate::model::{Logs, Model, TrainingConfig};
use crate::module::{walk, Entry, Lent, Module};

/// Data sets' backbone features, by fingerprint.
#[derive(Default)]
pub(crate) struct FeatureCache {
    entries: Vec<(u64, Dataset)>,
}

impl FeatureCache {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// True when `features` is a fixed function of its input in training: no
/// trainable parameter, no dropout, no running statistics to move. Found by
/// building it on a training tape and reading the graph.
fn fixed_function(features: &dyn Module, sample_shape: &[usize]) -> Result<bool> {
    let tape = Tape::new(Mode::Train { update_state: true });
    let mut shape = vec![2];
    shape.extend(sample_shape);
    let x = tape.input("x", &shape);
    features.forward(&x)?;
    let graph = tape.graph();
    Ok(graph.nodes().iter().all(|n| {
        !n.op.is_update()
            && !matches!(
                n.op,
                Op::Dropout { .. }
                    | Op::Param {
                        trainable: true,
                        ..
                    }
            )
    }))
}

/// Every sample of `data` through `features`, in batches, as a dataset of
/// features with the same targets; a progress bar when `show` (drawn only
/// on a terminal).
fn extract(
    device: &kiln_backend::Device,
    features: &dyn Module,
    data: &Dataset,
    batch: usize,
    show: bool,
) -> Result<Dataset> {
    let mut m = Model::new(device, Lent(features), data.sample_shape().to_vec());
    let bar = if show {
        ProgressBar::new(data.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("features {pos}/{len} images [{bar:30}] - ETA: {eta}")
            .expect("a valid template")
            .progress_chars("=>."),
    );
    // Chunks of a few batches: the bar moves, each chunk one predict.
    let chunk = batch * 8;
    let mut values = Vec::with_capacity(data.len());
    let mut shape = Vec::new();
    for start in (0..data.len()).step_by(chunk) {
        let rows: Vec<usize> = (start..(start + chunk).min(data.len())).collect();
        let part = data.subset(&rows)?;
        let out = m.predict(&part, batch)?;
        shape = out.shape()[1..].to_vec();
        values.extend_from_slice(out.data());
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Dataset::with_shapes(
        values,
        &shape,
        data.targets().to_vec(),
        data.target_shape(),
    )?)
}

/// A fingerprint of every value of `backbone`: read back once per `fit` or
/// `evaluate`, however many data sets it keys.
fn backbone_fingerprint(backbone: &dyn Module) -> Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut tensors = Vec::new();
    walk(backbone, "", &mut |e| match e {
        Entry::Param(n, p) | Entry::Buffer(n, p) => tensors.push((n, p.clone())),
        Entry::Module(..) => {}
    });
    for (name, p) in tensors {
        name.hash(&mut h);
        for v in p.values()? {
            v.to_bits().hash(&mut h);
        }
    }
    Ok(h.finish())
}

/// The cache key of `data` (shapes, features, targets) under the backbone
/// whose fingerprint is `backbone`.
fn key(backbone: u64, data: &Dataset) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    backbone.hash(&mut h);
    (data.len(), data.sample_shape(), data.target_shape()).hash(&mut h);
    for v in data.features().iter().chain(data.targets()) {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

/// Backbone features of a fit's or an evaluation's data sets, the backbone's
/// values read once for all of them.
pub(crate) struct Features {
    backbone: u64,
    batch: usize,
    show: bool,
}

impl<M: Module> Model<M> {
    /// Whether this model's features can be cached: a head on a backbone
    /// that is a fixed function of samples of `sample_shape`.
    pub(crate) fn caches_features(&self, sample_shape: &[usize]) -> Result<bool> {
        match self.module().split_head() {
            Some((features, _)) => fixed_function(features, sample_shape),
            None => Ok(false),
        }
    }

    /// The backbone as it is now, for [`Model::cached_features`]: extract
    /// in batches of `batch`, with a progress bar when `show`.
    pub(crate) fn features(&self, batch: usize, show: bool) -> Result<Features> {
        let (backbone, _) = self
            .module()
            .split_head()
            .expect("checked by caches_features");
        Ok(Features {
            backbone: backbone_fingerprint(backbone)?,
            batch,
            show,
        })
    }

    /// `data`'s backbone features, computed on first use.
    pub(crate) fn cached_features(&mut self, with: &Features, data: &Dataset) -> Result<Dataset> {
        let key = key(with.backbone, data);
        if let Some((_, d)) = self.feature_cache.entries.iter().find(|(k, _)| *k == key) {
            return Ok(d.clone());
        }
        let (backbone, _) = self
            .module()
            .split_head()
            .expect("checked by caches_features");
        let computed = extract(self.device(), backbone, data, with.batch, with.show)?;
        self.feature_cache.entries.push((key, computed.clone()));
        Ok(computed)
    }

    /// A model of the head alone, on features of `shape`, with this model's
    /// compiled settings (optimizer, loss, metrics, learning rate, clipping,
    /// gradient accumulation), to train or evaluate on cached features.
    pub(crate) fn head_model(
        &self,
        config: &TrainingConfig,
        shape: &[usize],
    ) -> Result<Model<Lent<'_>>> {
        let (_, head) = self
            .module()
            .split_head()
            .expect("checked by caches_features");
        let mut m = Model::new(self.device(), Lent(head), shape.to_vec());
        m.compile(config.optimizer, config.loss, &config.metrics)?;
        m.set_learning_rate(config.lr)?;
        if let Some(c) = config.clip_norm {
            m.clip_grad_norm(c)?;
        }
        m.accumulate_gradients(config.accumulate)?;
        Ok(m)
    }

    /// How many data sets' backbone features the model holds (see the
    /// feature cache: `fit` and `evaluate` with a frozen eval-mode backbone).
    pub fn cached_feature_sets(&self) -> usize {
        self.feature_cache.len()
    }

    /// [`Model::evaluate`] of the head on `data`'s cached features, when the
    /// model caches features; `None` otherwise.
    pub(crate) fn evaluate_on_cached_features(
        &mut self,
        data: &Dataset,
        batch_size: usize,
    ) -> Result<Option<Logs>> {
        let Some(config) = self.training_config() else {
            return Ok(None);
        };
        if !self.caches_features(data.sample_shape())? {
            return Ok(None);
        }
        let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let with = self.features(batch_size, show)?;
        let cached = self.cached_features(&with, data)?;
        let mut head = self.head_model(&config, cached.sample_shape())?;
        Ok(Some(head.evaluate(&cached, batch_size)?))
    }
}
