//! [`Model`]: any [`Module`] with Keras' training interface — `compile`,
//! `fit`, `evaluate`, `predict`, `summary` — over samples of any shape. Each
//! graph (training step, evaluation, prediction) is built once per batch
//! size, compiled into a plan and replayed.

use std::sync::OnceLock;

use kiln_backend::Device;
use kiln_graph::{Mode, PlanCache, PlanOptions, Tape, Var};

use crate::error::{ModelError, Result};
use crate::module::{Module, Visitor};

mod checks;
mod confusion;
mod graphs;
mod logs;
mod plans;
mod run;
mod samples;
mod summary;
mod training;
mod weights;

pub use logs::Logs;
pub use samples::Samples;
use training::Training;
pub(crate) use training::TrainingConfig;

/// Tensors by name, in a fixed order.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// A shape given as a number of features, an array or a vector.
pub trait IntoShape {
    fn into_shape(self) -> Vec<usize>;
}

impl IntoShape for usize {
    fn into_shape(self) -> Vec<usize> {
        vec![self]
    }
}

impl<const N: usize> IntoShape for [usize; N] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}

impl IntoShape for Vec<usize> {
    fn into_shape(self) -> Vec<usize> {
        self
    }
}

impl IntoShape for &[usize] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}

/// A module and the training interface around it.
///
/// ```no_run
/// use kiln_models::{Model, Linear, Loss, Optimizer, Metric, Module, Result};
/// use kiln_graph::Var;
/// struct Net { fc: Linear }
/// impl Module for Net {
///     fn forward(&self, x: &Var) -> Result<Var> { Ok(self.fc.forward(x)?.sigmoid()?) }
///     fn visit(&self, v: &mut dyn kiln_models::Visitor) { v.module("fc", &self.fc) }
/// }
/// let device = kiln_backend::Device::auto()?;
/// let mut model = Model::new(&device, Net { fc: Linear::new(&device, 30, 1)? }, [30]);
/// model.compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[Metric::BinaryAccuracy])?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Model<M: Module> {
    module: M,
    device: Device,
    input_shape: Vec<usize>,
    training: Option<Training>,
    predict_plans: PlanCache,
    /// Which parameters were trainable when the cached plans were built.
    signature: Vec<(u64, bool)>,
    /// Optimizer steps taken (Adam's t).
    steps: u64,
    /// Training batches run: the dropout masks' counter.
    draws: u64,
    plan_options: PlanOptions,
    /// One sample's output shape, traced on first use: batch checks need it
    /// at every step.
    output_shape: OnceLock<Vec<usize>>,
    /// Backbone features of data sets, when the module caches them.
    pub(crate) feature_cache: crate::feature_cache::FeatureCache,
}

impl<M: Module> Model<M> {
    /// `module` taking samples of `input_shape` (`30`, `[1, 28, 28]`, `[10, 3]`).
    pub fn new(device: &Device, module: M, input_shape: impl IntoShape) -> Self {
        Self {
            module,
            device: device.clone(),
            input_shape: input_shape.into_shape(),
            training: None,
            predict_plans: PlanCache::new(),
            signature: Vec::new(),
            steps: 0,
            draws: 0,
            plan_options: PlanOptions::default(),
            output_shape: OnceLock::new(),
            feature_cache: Default::default(),
        }
    }

    /// How the model's graphs are compiled (fusion on or off); compiled
    /// plans are dropped.
    pub fn set_plan_options(&mut self, options: PlanOptions) {
        self.plan_options = options;
        self.drop_plans();
    }

    pub fn module(&self) -> &M {
        &self.module
    }

    /// The module, to change (replace a head, load weights): compiled plans
    /// are dropped and rebuilt on next use.
    pub fn module_mut(&mut self) -> &mut M {
        self.drop_plans();
        &mut self.module
    }

    pub fn into_module(self) -> M {
        self.module
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The shape of one input sample.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The shape of one output sample, found by tracing the module once
    /// (again after [`Model::module_mut`]).
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        if let Some(shape) = self.output_shape.get() {
            return Ok(shape.clone());
        }
        let tape = Tape::new(Mode::Eval);
        let y = self
            .module
            .forward(&tape.input("x", &self.batch_shape(1)))
            .map_err(|e| ModelError::Traced {
                input_shape: self.input_shape.clone(),
                error: Box::new(e),
            })?;
        let shape = y.shape()[1..].to_vec();
        Ok(self.output_shape.get_or_init(|| shape).clone())
    }

    fn drop_plans(&mut self) {
        self.output_shape = OnceLock::new();
        self.feature_cache = Default::default();
        self.predict_plans = PlanCache::new();
        if let Some(t) = self.training.as_mut() {
            t.train_plans = PlanCache::new();
            t.accumulate_plans = PlanCache::new();
            t.eval_plans = PlanCache::new();
        }
    }

    /// The shape of a batch of `batch` inputs.
    fn batch_shape(&self, batch: usize) -> Vec<usize> {
        let mut s = vec![batch];
        s.extend(&self.input_shape);
        s
    }
}

impl<M: Module> Module for Model<M> {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.module.forward(x)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        self.module.visit(v)
    }

    fn set_training(&self, on: bool) {
        self.module.set_training(on)
    }

    fn kind(&self) -> String {
        self.module.kind()
    }

    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        self.module.trace(x, report)
    }
}
