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
use crate::model::{Logs, Model};
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
    let out = kiln_data::Array::new(values, &[&[data.len()][..], &shape].concat())?;
    Ok(Dataset::with_shapes(
        out.data().to_vec(),
        &out.shape()[1..],
        data.targets().to_vec(),
        data.target_shape(),
    )?)
}

/// A fingerprint of `data` (shapes, features, targets) and of every value
/// of `backbone`.
fn fingerprint(backbone: &dyn Module, data: &Dataset) -> Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (data.len(), data.sample_shape(), data.target_shape()).hash(&mut h);
    for v in data.features().iter().chain(data.targets()) {
        v.to_bits().hash(&mut h);
    }
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

impl<M: Module> Model<M> {
    /// Whether this model's features can be cached: a head on a backbone
    /// that is a fixed function of samples of `sample_shape`.
    pub(crate) fn caches_features(&self, sample_shape: &[usize]) -> Result<bool> {
        match self.module().split_head() {
            Some((features, _)) => fixed_function(features, sample_shape),
            None => Ok(false),
        }
    }

    /// `data`'s backbone features, computed on first use.
    pub(crate) fn cached_features(
        &mut self,
        data: &Dataset,
        batch: usize,
        show: bool,
    ) -> Result<Dataset> {
        let (features, _) = self
            .module()
            .split_head()
            .expect("checked by caches_features");
        let key = fingerprint(features, data)?;
        if let Some((_, d)) = self.feature_cache.entries.iter().find(|(k, _)| *k == key) {
            return Ok(d.clone());
        }
        let computed = extract(self.device(), features, data, batch, show)?;
        self.feature_cache.entries.push((key, computed.clone()));
        Ok(computed)
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
        let cached = self.cached_features(data, batch_size, show)?;
        let device = self.device().clone();
        let (_, head) = self
            .module()
            .split_head()
            .expect("caches_features checked it");
        let mut head_model = Model::new(&device, Lent(head), cached.sample_shape().to_vec());
        head_model.compile(config.optimizer, config.loss, &config.metrics)?;
        Ok(Some(head_model.evaluate(&cached, batch_size)?))
    }
}
