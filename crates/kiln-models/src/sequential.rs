//! [`Sequential`]: the Keras-style builder. A [`Stack`] of layers named as
//! Keras names them (`dense`, `dense_1`, `batch_normalization`, …) inside a
//! [`Model`], so `compile`, `fit`, `evaluate` and `predict` are there too.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use kiln_backend::Device;
use kiln_graph::Var;

use crate::error::{ModelError, Result};
use crate::layers::{
    Activation, BatchNorm, BatchNormConfig, Dense, Dropout, Flatten, Gru, Lstm, SimpleRnn, Stack,
};
use crate::model::{IntoShape, Model};
use crate::module::{Module, Visitor};

/// A stack of layers with Keras' builder, names and defaults.
///
/// ```no_run
/// use kiln_models::{Sequential, Optimizer, Loss, Metric, Activation};
/// let device = kiln_backend::Device::auto()?;
/// let mut model = Sequential::new(&device, [30])
///     .dense(128, Activation::Relu).batch_norm().dropout(0.3)
///     .dense(64, Activation::Relu).batch_norm().dropout(0.2)
///     .dense(1, Activation::Sigmoid);
/// model.compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[Metric::BinaryAccuracy])?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Sequential {
    model: Model<Stack>,
    /// Keras' base name of each layer added, for `dense_1`-style names.
    kinds: Vec<&'static str>,
    /// The first error of the builder, reported by `compile`.
    error: Option<Arc<ModelError>>,
}

impl Sequential {
    /// An empty model taking samples of `input_shape` (`30`, `[1, 28, 28]`).
    pub fn new(device: &Device, input_shape: impl IntoShape) -> Self {
        Self {
            model: Model::new(device, Stack::new(), input_shape),
            kinds: Vec::new(),
            error: None,
        }
    }

    /// Reseeds the generator the layers added after this call draw their
    /// initial weights and dropout seeds from ([`crate::manual_seed`]): a
    /// model written as a custom module, built after the same seed with the
    /// same layers in the same order, starts identical.
    pub fn seed(self, seed: u64) -> Self {
        crate::manual_seed(seed);
        self
    }

    /// Appends `layer`, named as Keras names a layer of `kind`.
    pub fn layer(mut self, kind: &'static str, layer: impl Module + 'static) -> Self {
        let count = self.kinds.iter().filter(|&&k| k == kind).count();
        let name = if count == 0 {
            kind.to_string()
        } else {
            format!("{kind}_{count}")
        };
        self.kinds.push(kind);
        if let Err(e) = self.model.module_mut().push(&name, Box::new(layer)) {
            let index = self.kinds.len();
            self.error.get_or_insert(Arc::new(ModelError::Building {
                kind,
                index,
                error: Box::new(e),
            }));
        }
        self
    }

    /// Appends what `make` builds from the current output shape, or records
    /// its error.
    fn grow<L: Module + 'static>(
        self,
        kind: &'static str,
        make: impl FnOnce(&Device, &[usize]) -> Result<L>,
    ) -> Self {
        let index = self.kinds.len();
        // A layer before this one that fails names itself: the error is
        // not this layer's.
        let made = match self.model.output_shape() {
            Ok(shape) => make(self.model.device(), &shape).map_err(|e| ModelError::Building {
                kind,
                index: index + 1,
                error: Box::new(e),
            }),
            Err(e) => Err(e),
        };
        match made {
            Ok(layer) => self.layer(kind, layer),
            Err(e) => {
                let mut s = self;
                s.error.get_or_insert(Arc::new(e));
                s
            }
        }
    }

    /// A dense layer with Keras' Glorot-uniform kernel and zero bias.
    pub fn dense(self, units: usize, activation: Activation) -> Self {
        self.grow("dense", |device, shape| {
            let inputs = *shape.last().unwrap_or(&1);
            Dense::new(device, inputs, units, activation)
        })
    }

    /// Keras' `LSTM(units, activation=…, return_sequences=…)` over samples
    /// `[timesteps, features]` (sigmoid gates, Keras' initialisers).
    pub fn lstm(self, units: usize, activation: Activation, return_sequences: bool) -> Self {
        self.grow("lstm", |device, shape| {
            Ok(
                Lstm::keras(device, timestep_features("an LSTM", shape)?, units)?
                    .activation(activation)
                    .return_sequences(return_sequences),
            )
        })
    }

    /// Keras' `GRU(units, activation=…, return_sequences=…)` over samples
    /// `[timesteps, features]` (sigmoid gates, reset after the product,
    /// Keras' initialisers).
    pub fn gru(self, units: usize, activation: Activation, return_sequences: bool) -> Self {
        self.grow("gru", |device, shape| {
            Ok(
                Gru::keras(device, timestep_features("a GRU", shape)?, units)?
                    .activation(activation)
                    .return_sequences(return_sequences),
            )
        })
    }

    /// Keras' `SimpleRNN(units, activation=…, return_sequences=…)` over
    /// samples `[timesteps, features]`.
    pub fn simple_rnn(self, units: usize, activation: Activation, return_sequences: bool) -> Self {
        self.grow("simple_rnn", |device, shape| {
            Ok(
                SimpleRnn::keras(device, timestep_features("a simple RNN", shape)?, units)?
                    .activation(activation)
                    .return_sequences(return_sequences),
            )
        })
    }

    /// Keras' `BatchNormalization()` (momentum 0.99, epsilon 1e-3) over axis 1.
    pub fn batch_norm(self) -> Self {
        self.batch_norm_with(BatchNormConfig::KERAS)
    }

    /// Batch normalisation with the given conventions.
    pub fn batch_norm_with(self, config: BatchNormConfig) -> Self {
        self.grow("batch_normalization", |device, shape| {
            let channels = shape.first().copied().unwrap_or(1);
            BatchNorm::new(device, channels, config)
        })
    }

    pub fn dropout(self, rate: f32) -> Self {
        self.grow("dropout", |_, _| Dropout::new(rate))
    }

    /// An activation on its own.
    pub fn activation(self, a: Activation) -> Self {
        self.layer("activation", a)
    }

    /// Softmax over the last axis.
    pub fn softmax(self) -> Self {
        self.layer("softmax", Activation::Softmax)
    }

    /// Every axis after the batch axis collapsed into one.
    pub fn flatten(self) -> Self {
        self.layer("flatten", Flatten)
    }

    /// The builder's first error, if any layer could not be built.
    pub fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(ModelError::Builder(Arc::clone(e))),
            None => Ok(()),
        }
    }

    /// Fixes the optimizer, loss and metrics (see [`Model::compile`]);
    /// reports any error of the builder first.
    pub fn compile(
        &mut self,
        optimizer: crate::Optimizer,
        loss: crate::Loss,
        metrics: &[crate::Metric],
    ) -> Result<()> {
        self.check()?;
        self.model.compile(optimizer, loss, metrics)
    }

    /// The layer table (see [`Model::summary`]); reports any error of the
    /// builder first, instead of a table without the layer that failed.
    pub fn summary(&mut self) -> Result<String> {
        self.check()?;
        self.model.summary()
    }
}

impl Deref for Sequential {
    type Target = Model<Stack>;
    fn deref(&self) -> &Model<Stack> {
        &self.model
    }
}

impl DerefMut for Sequential {
    fn deref_mut(&mut self) -> &mut Model<Stack> {
        &mut self.model
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.check()?;
        self.model.forward(x)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.model.visit(v)
    }

    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        self.model.trace(x, report)
    }
}

/// The features per timestep of samples `[timesteps, features]`, which a
/// recurrent `layer` needs.
fn timestep_features(layer: &str, shape: &[usize]) -> Result<usize> {
    match shape {
        [_, features] => Ok(*features),
        _ => Err(ModelError::Shape(format!(
            "{layer} takes samples [timesteps, features]; the previous output is {shape:?}"
        ))),
    }
}
