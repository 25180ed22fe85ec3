//! [`Model`]: any [`Module`] with Keras' training interface — `compile`,
//! `fit`, `evaluate`, `predict`, `summary` — over samples of any shape. Each
//! graph (training step, evaluation, prediction) is built once per batch
//! size, compiled into a plan and replayed.

use kiln_backend::Device;
use kiln_data::{Array, Dataset};
use kiln_graph::{
    MemoryPlan, Mode, NodeId, Param, Plan, PlanCache, PlanOptions, PlanStats, Tape, Var,
    HYPER_WORDS, STEP_INPUT,
};

use crate::error::{ModelError, Result};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::module::{Module, ModuleExt, Visitor};
use crate::optimizer::Optimizer;

/// Tensors by name, in a fixed order.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// The input naming the hyperparameters of an optimizer step.
const HYPER_INPUT: &str = "kiln.hyper";

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

/// Losses and metrics of one pass over data, as averages per sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Logs {
    pub loss: f32,
    /// (name, value) per compiled metric.
    pub metrics: Vec<(String, f32)>,
}

/// Device-side sums of a loss and metrics over an epoch.
struct Accumulators {
    loss: Param,
    metrics: Vec<Param>,
}

impl Accumulators {
    fn new(device: &Device, metrics: usize) -> Result<Self> {
        let sum = |name: String| -> Result<Param> {
            let p = Param::zeros(device, &name, &[1])?;
            p.set_trainable(false);
            Ok(p)
        };
        Ok(Self {
            loss: sum("kiln.acc.loss".into())?,
            metrics: (0..metrics)
                .map(|k| sum(format!("kiln.acc.metric{k}")))
                .collect::<Result<_>>()?,
        })
    }
}

/// The settings of `compile` plus the current learning rate, handed to a
/// model that trains on another's behalf (the feature cache's head).
pub(crate) struct TrainingConfig {
    pub optimizer: Optimizer,
    pub loss: Loss,
    pub metrics: Vec<Metric>,
    pub clip_norm: Option<f32>,
    pub lr: f32,
}

/// What `compile` fixed, and what training keeps.
struct Training {
    optimizer: Optimizer,
    loss: Loss,
    metrics: Vec<Metric>,
    clip_norm: Option<f32>,
    lr: f32,
    /// Optimizer state of each parameter trained so far, created on its
    /// first step: frozen parameters never get any.
    state: Vec<(Param, Vec<Param>)>,
    train: Accumulators,
    val: Accumulators,
    train_plans: PlanCache,
    eval_plans: PlanCache,
}

/// Which compiled graphs a plan cache holds.
#[derive(Clone, Copy)]
enum Graphs {
    Train,
    Eval,
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

    /// The shape of one output sample, found by tracing the module.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        let tape = Tape::new(Mode::Eval);
        let mut shape = vec![1];
        shape.extend(&self.input_shape);
        let y = self.module.forward(&tape.input("x", &shape))?;
        Ok(y.shape()[1..].to_vec())
    }

    fn drop_plans(&mut self) {
        self.predict_plans = PlanCache::new();
        if let Some(t) = self.training.as_mut() {
            t.train_plans = PlanCache::new();
            t.eval_plans = PlanCache::new();
        }
    }

    /// Fixes the optimizer, loss and metrics; training starts from step 0.
    pub fn compile(&mut self, optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Result<()> {
        optimizer.validate().map_err(ModelError::Invalid)?;
        // A model that does not build yet reports that when it is used.
        if let Ok(out) = self.output_shape() {
            loss.check_outputs(&out).map_err(ModelError::Invalid)?;
        }
        self.training = Some(Training {
            optimizer,
            loss,
            metrics: metrics.to_vec(),
            clip_norm: None,
            lr: optimizer.learning_rate(),
            state: Vec::new(),
            train: Accumulators::new(&self.device, metrics.len())?,
            val: Accumulators::new(&self.device, metrics.len())?,
            train_plans: PlanCache::new(),
            eval_plans: PlanCache::new(),
        });
        self.steps = 0;
        Ok(())
    }

    fn training_mut(&mut self) -> Result<&mut Training> {
        self.training.as_mut().ok_or_else(|| {
            ModelError::Invalid("call compile() before training or evaluating".into())
        })
    }

    /// What `compile` set and the current learning rate, for a model
    /// trained on this one's behalf.
    pub(crate) fn training_config(&self) -> Option<TrainingConfig> {
        self.training.as_ref().map(|t| TrainingConfig {
            optimizer: t.optimizer,
            loss: t.loss,
            metrics: t.metrics.clone(),
            clip_norm: t.clip_norm,
            lr: t.lr,
        })
    }

    /// Clips gradients to a global L2 norm of at most `max_norm` before each step.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> Result<()> {
        if max_norm.is_nan() || max_norm <= 0.0 {
            return Err(ModelError::Invalid(format!(
                "a clipping norm must be positive, got {max_norm}"
            )));
        }
        let t = self.training_mut()?;
        t.clip_norm = Some(max_norm);
        t.train_plans = PlanCache::new();
        Ok(())
    }

    /// The optimizer `compile` fixed.
    pub fn optimizer(&self) -> Option<Optimizer> {
        self.training.as_ref().map(|t| t.optimizer)
    }

    /// The loss `compile` fixed.
    pub fn loss(&self) -> Option<Loss> {
        self.training.as_ref().map(|t| t.loss)
    }

    /// Sets the learning rate of the next steps (no recompilation).
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if lr.is_nan() || lr <= 0.0 {
            return Err(ModelError::Invalid(format!(
                "learning rate {lr} must be positive"
            )));
        }
        self.training_mut()?.lr = lr;
        Ok(())
    }

    pub fn learning_rate(&self) -> Option<f32> {
        self.training.as_ref().map(|t| t.lr)
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The names of the parameters that have optimizer state, with the
    /// state's names (`dense.kernel/m`, …): only trained parameters have any.
    pub fn optimizer_state_names(&self) -> Vec<String> {
        let Some(t) = self.training.as_ref() else {
            return vec![];
        };
        let names = self.module.named_parameters();
        let mut out = Vec::new();
        for (p, _) in &t.state {
            if let Some((n, _)) = names.iter().find(|(_, q)| q == p) {
                for s in t.optimizer.state_names() {
                    out.push(format!("{n}/{s}"));
                }
            }
        }
        out
    }

    /// The optimizer state of `p`, created (zeros) on first use.
    fn state_of(&mut self, p: &Param) -> Result<Vec<Param>> {
        let device = self.device.clone();
        let t = self.training_mut()?;
        if let Some((_, s)) = t.state.iter().find(|(q, _)| q == p) {
            return Ok(s.clone());
        }
        let s: Vec<Param> = t
            .optimizer
            .state_names()
            .iter()
            .map(|name| Param::zeros(&device, name, p.shape()))
            .collect::<kiln_graph::Result<_>>()?;
        t.state.push((p.clone(), s.clone()));
        Ok(s)
    }

    /// The training graph of a batch of `batch` samples, uncompiled, to
    /// inspect (what is differentiated, which steps are taken).
    pub fn training_graph(&mut self, batch: usize) -> Result<kiln_graph::Graph> {
        self.training_mut()?;
        let tape = self.train_tape(batch)?;
        Ok(tape.graph())
    }

    /// The shape of a batch of `batch` inputs.
    fn batch_shape(&self, batch: usize) -> Vec<usize> {
        let mut s = vec![batch];
        s.extend(&self.input_shape);
        s
    }

    /// The forward graph of a batch, in `mode`.
    fn forward(&self, tape: &Tape, batch: usize) -> Result<Var> {
        let x = tape.input("x", &self.batch_shape(batch));
        self.module.forward(&x)
    }

    /// The loss's per-sample terms and this batch's accumulators of `split`.
    fn loss_and_metrics(&self, tape: &Tape, pred: &Var, split: Graphs) -> Result<NodeId> {
        let t = self.training.as_ref().expect("compiled");
        let batch = pred.shape().first().copied().unwrap_or(1);
        let mut y_shape = vec![batch];
        y_shape.extend(t.loss.target_shape(&pred.shape()[1..]));
        let y = tape.input("y", &y_shape);
        let acc = match split {
            Graphs::Train => &t.train,
            Graphs::Eval => &t.val,
        };
        tape.with_graph(|g| {
            let terms = t.loss.terms(g, pred.id(), y.id())?;
            let loss = g.mean_all(terms)?;
            let per_sample = |g: &kiln_graph::Graph, v: NodeId| (g.node(v).numel() / batch) as f32;
            let a = g.frozen(&acc.loss);
            let scale = 1.0 / per_sample(g, terms);
            g.accumulate(a, terms, 1.0, scale)?;
            for (m, p) in t.metrics.iter().zip(&acc.metrics) {
                let v = m.values(g, pred.id(), y.id())?;
                let a = g.frozen(p);
                let scale = 1.0 / per_sample(g, v);
                g.accumulate(a, v, 1.0, scale)?;
            }
            Ok::<_, kiln_graph::GraphError>(loss)
        })
        .map_err(ModelError::from)
    }

    /// The training step: forward, loss, metrics, backward, optimizer steps.
    fn train_graph(&mut self, batch: usize) -> Result<Plan> {
        let tape = self.train_tape(batch)?;
        Ok(Plan::compile_with(
            &self.device,
            &tape.graph(),
            &[],
            self.plan_options,
        )?)
    }

    fn train_tape(&mut self, batch: usize) -> Result<Tape> {
        let tape = Tape::new(Mode::Train { update_state: true });
        let pred = self.forward(&tape, batch)?;
        let loss = self.loss_and_metrics(&tape, &pred, Graphs::Train)?;
        let trainable = tape.trainable_params();
        let nodes: Vec<NodeId> = trainable.iter().map(|(_, n)| *n).collect();
        let (optimizer, clip) = {
            let t = self.training.as_ref().expect("compiled");
            (t.optimizer, t.clip_norm)
        };
        let mut grads = tape.with_graph(|g| g.grad(loss, &nodes))?;
        if let Some(max_norm) = clip {
            grads = tape.with_graph(|g| clip_by_global_norm(g, &grads, max_norm))?;
        }
        let hyper = tape.input(HYPER_INPUT, &[HYPER_WORDS]);
        for ((p, node), grad) in trainable.iter().zip(grads) {
            let state = self.state_of(p)?;
            tape.with_graph(|g| {
                let state: Vec<NodeId> = state.iter().map(|s| g.frozen(s)).collect();
                g.optimizer_step(optimizer.rule(), *node, grad, &state, hyper.id())
            })?;
        }
        Ok(tape)
    }

    fn eval_graph(&self, batch: usize) -> Result<Plan> {
        let tape = Tape::new(Mode::Eval);
        let pred = self.forward(&tape, batch)?;
        self.loss_and_metrics(&tape, &pred, Graphs::Eval)?;
        Ok(Plan::compile_with(
            &self.device,
            &tape.graph(),
            &[],
            self.plan_options,
        )?)
    }

    /// The current trainable flags; a change means the plans are stale.
    fn current_signature(&self) -> Vec<(u64, bool)> {
        self.module
            .named_parameters()
            .iter()
            .map(|(_, p)| (p.id(), p.is_trainable()))
            .collect()
    }

    /// Runs `use_plan` on the compiled training or evaluation plan for
    /// `batch` samples, compiling it on first use (or after a parameter was
    /// frozen or unfrozen). The cache is taken out of the model meanwhile,
    /// so compiling can read the model.
    fn with_plan<T>(
        &mut self,
        graphs: Graphs,
        batch: usize,
        use_plan: impl FnOnce(&mut Self, &mut Plan) -> Result<T>,
    ) -> Result<T> {
        self.training_mut()?;
        let signature = self.current_signature();
        if signature != self.signature {
            self.drop_plans();
            self.signature = signature;
        }
        let shape = self.batch_shape(batch);
        let key = [("x", &shape[..])];
        let t = self.training.as_mut().expect("compiled");
        let mut cache = std::mem::take(match graphs {
            Graphs::Train => &mut t.train_plans,
            Graphs::Eval => &mut t.eval_plans,
        });
        let mut failure = None;
        let result = cache
            .get_or_compile(&key, || {
                match graphs {
                    Graphs::Train => self.train_graph(batch),
                    Graphs::Eval => self.eval_graph(batch),
                }
                .map_err(|e| {
                    let msg = e.to_string();
                    failure = Some(e);
                    kiln_graph::GraphError::Invalid(msg)
                })
            })
            .map_err(|e| failure.take().unwrap_or(ModelError::Graph(e)))
            .and_then(|plan| use_plan(self, plan));
        let t = self.training.as_mut().expect("compiled");
        match graphs {
            Graphs::Train => t.train_plans = cache,
            Graphs::Eval => t.eval_plans = cache,
        }
        result
    }

    /// The number of samples in `x`, checking `x` and `y` sizes and targets.
    fn check_batch(&self, x: &[f32], y: Option<&[f32]>) -> Result<usize> {
        let f: usize = self.input_shape.iter().product();
        if x.is_empty() || !x.len().is_multiple_of(f) {
            return Err(ModelError::Invalid(format!(
                "a batch of {} input values is not a whole number of samples of shape {:?}",
                x.len(),
                self.input_shape
            )));
        }
        if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Invalid(format!(
                "input value {bad} of the batch is {}; inputs must be finite",
                x[bad]
            )));
        }
        let batch = x.len() / f;
        if let Some(y) = y {
            let t = self.training.as_ref().expect("checked by callers");
            let out = self.output_shape()?;
            let per: usize = t.loss.target_shape(&out).iter().product();
            if y.len() != batch * per {
                return Err(ModelError::Invalid(format!(
                    "{} target values for {batch} samples; the loss takes {per} per sample \
                     (outputs {out:?})",
                    y.len()
                )));
            }
            let classes = out.last().copied().unwrap_or(1);
            t.loss
                .validate_targets(y, classes)
                .map_err(|e| ModelError::Invalid(format!("{:?}: {e}", t.loss)))?;
        }
        Ok(batch)
    }

    /// Every feature of `data` is finite and every target one the loss can
    /// take, checked before any step: the error names the data set's row,
    /// not a position in a batch.
    pub(crate) fn check_rows(&self, data: &Dataset) -> Result<()> {
        let f = data.n_features().max(1);
        if let Some(i) = data.features().iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Invalid(format!(
                "row {} of the data has feature {} = {}; inputs must be finite",
                i / f,
                i % f,
                data.features()[i]
            )));
        }
        let t = self.training.as_ref().expect("checked by callers");
        let out = self.output_shape()?;
        let per: usize = t.loss.target_shape(&out).iter().product();
        if data.n_targets() != per {
            return Err(ModelError::Invalid(format!(
                "the data has {} target values per row; {:?} takes {per} for outputs {out:?}",
                data.n_targets(),
                t.loss
            )));
        }
        let classes = out.last().copied().unwrap_or(1);
        match t.loss.first_bad_target(data.targets(), classes) {
            Some((i, why)) => Err(ModelError::Invalid(format!(
                "{:?}: row {} of the data has target {}: it {why}",
                t.loss,
                i / per.max(1),
                data.targets()[i]
            ))),
            None => Ok(()),
        }
    }

    /// The data's samples have the shape (or at least the size) the model takes.
    pub(crate) fn check_data(&self, data: &Dataset) -> Result<()> {
        let want: usize = self.input_shape.iter().product();
        if data.n_features() != want {
            return Err(ModelError::Invalid(format!(
                "the data's samples have shape {:?} ({} values), the model takes {:?} ({want})",
                data.sample_shape(),
                data.n_features(),
                self.input_shape
            )));
        }
        Ok(())
    }

    /// One optimizer step on a batch (`x` row-major, samples of the input
    /// shape; `y` the loss's targets). The loss and metrics accumulate on
    /// the device, read once per epoch.
    pub fn train_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<()> {
        self.training_mut()?;
        let batch = self.check_batch(x, Some(y))?;
        self.with_plan(Graphs::Train, batch, |model, plan| {
            let t = model.training.as_ref().expect("compiled");
            let hyper = t.optimizer.hyper(t.lr, model.steps + 1);
            let step = [model.draws as f32];
            plan.run(&[
                ("x", x),
                ("y", y),
                (HYPER_INPUT, &hyper),
                (STEP_INPUT, &step),
            ])?;
            Ok(())
        })?;
        self.steps += 1;
        self.draws += 1;
        Ok(())
    }

    /// Runs the evaluation graph on a batch, accumulating the validation
    /// loss and metrics.
    fn eval_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<()> {
        let batch = self.check_batch(x, Some(y))?;
        self.with_plan(Graphs::Eval, batch, |_, plan| {
            plan.run(&[("x", x), ("y", y)])?;
            Ok(())
        })
    }

    /// Reads and resets the accumulated loss and metrics of a split, as
    /// averages over `samples`.
    fn take(&mut self, train: bool, samples: usize) -> Result<Logs> {
        let t = self.training_mut()?;
        let acc = if train { &t.train } else { &t.val };
        let read = |p: &Param| -> Result<f32> {
            let v = p.values()?[0];
            p.write(&[0.0])?;
            Ok(v / samples.max(1) as f32)
        };
        let loss = read(&acc.loss)?;
        let mut metrics = Vec::new();
        for (m, p) in t.metrics.iter().zip(&acc.metrics) {
            metrics.push((m.name(), read(p)?));
        }
        Ok(Logs { loss, metrics })
    }

    pub(crate) fn take_train_logs(&mut self, samples: usize) -> Result<Logs> {
        self.take(true, samples)
    }

    /// The training loss summed over the epoch so far (since `fit` began an
    /// epoch or `compile`), divided by `samples`, without resetting it. It
    /// reads the device back, so it waits for the steps in flight.
    pub fn running_loss(&mut self, samples: usize) -> Result<f32> {
        let v = self.training_mut()?.train.loss.values()?[0];
        Ok(v / samples.max(1) as f32)
    }

    /// Loss and metrics on `data` in evaluation mode.
    pub fn evaluate(&mut self, data: &Dataset, batch_size: usize) -> Result<Logs> {
        self.training_mut()?;
        if data.is_empty() || batch_size == 0 {
            return Err(ModelError::Invalid(format!(
                "evaluate needs samples and a positive batch size (got {} samples, batch {batch_size})",
                data.len()
            )));
        }
        self.check_data(data)?;
        self.check_rows(data)?;
        self.take(false, 1)?; // start from zero
        for idx in kiln_data::batch_order(data.len(), batch_size, None, 0) {
            let (x, y) = data.gather(&idx)?;
            self.eval_on_batch(&x, &y)?;
        }
        self.take(false, data.len())
    }

    /// Model outputs for row-major inputs `x` (samples of the input shape),
    /// in batches of `batch_size`, with their shape `[samples, outputs…]`.
    pub fn predict(&mut self, x: &[f32], batch_size: usize) -> Result<Array> {
        if batch_size == 0 {
            return Err(ModelError::Invalid(
                "predict needs a positive batch size (got 0)".into(),
            ));
        }
        let rows = self.check_batch(x, None)?;
        let f: usize = self.input_shape.iter().product();
        let out_shape = self.output_shape()?;
        let mut out = Vec::with_capacity(rows * out_shape.iter().product::<usize>());
        let mut cache = std::mem::take(&mut self.predict_plans);
        let mut result: Result<()> = Ok(());
        for idx in kiln_data::batch_order(rows, batch_size, None, 0) {
            let batch = idx.len();
            let xs = &x[idx[0] * f..(idx[0] + batch) * f];
            let shape = self.batch_shape(batch);
            let key = [("x", &shape[..])];
            let plan = cache.get_or_compile(&key, || {
                let tape = Tape::new(Mode::Eval);
                let pred = self
                    .forward(&tape, batch)
                    .map_err(|e| kiln_graph::GraphError::Invalid(e.to_string()))?;
                Plan::compile_with(&self.device, &tape.graph(), &[pred.id()], self.plan_options)
            });
            match plan.and_then(|p| p.run(&[("x", xs)])) {
                Ok(mut v) => out.append(&mut v[0]),
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        self.predict_plans = cache;
        result?;
        let mut shape = vec![rows];
        shape.extend(out_shape);
        Ok(Array::new(out, &shape)?)
    }

    /// The batch's loss and the gradient of every trainable parameter (by
    /// its dotted name), in training mode (batch statistics, dropout drawn)
    /// without updating anything, running statistics included.
    pub fn loss_and_gradients(&mut self, x: &[f32], y: &[f32]) -> Result<(f32, NamedTensors)> {
        let loss_kind = self.training_mut()?.loss;
        let batch = self.check_batch(x, Some(y))?;
        let tape = Tape::new(Mode::Train {
            update_state: false,
        });
        let pred = self.forward(&tape, batch)?;
        let mut y_shape = vec![batch];
        y_shape.extend(loss_kind.target_shape(&pred.shape()[1..]));
        let yv = tape.input("y", &y_shape);
        let loss = tape.with_graph(|g| {
            let terms = loss_kind.terms(g, pred.id(), yv.id())?;
            g.mean_all(terms)
        })?;
        let trainable = tape.trainable_params();
        let nodes: Vec<NodeId> = trainable.iter().map(|(_, n)| *n).collect();
        let grads = tape.with_graph(|g| g.grad(loss, &nodes))?;
        let mut outputs = vec![loss];
        outputs.extend(&grads);
        let mut plan =
            Plan::compile_with(&self.device, &tape.graph(), &outputs, self.plan_options)?;
        let step = [self.draws as f32];
        let mut out = plan.run(&[("x", x), ("y", y), (STEP_INPUT, &step)])?;
        let names = self.module.named_parameters();
        let name_of = |p: &Param| {
            names
                .iter()
                .find(|(_, q)| q == p)
                .map_or_else(|| p.name().to_string(), |(n, _)| n.clone())
        };
        let loss = out[0][0];
        let grads = trainable
            .iter()
            .map(|(p, _)| name_of(p))
            .zip(out.drain(1..))
            .collect();
        Ok((loss, grads))
    }

    /// Compiles (or reuses) the training plan for `batch` samples and returns
    /// its counters: dispatches per step and planned intermediate bytes.
    /// The device memory a training step at `batch` holds: parameters,
    /// buffers and optimizer state, intermediates (planned by liveness: the
    /// peak), inputs; computed from the plan's layout without allocating
    /// any of it.
    pub fn train_memory(&mut self, batch: usize) -> Result<MemoryPlan> {
        self.training_mut()?;
        let tape = self.train_tape(batch)?;
        Ok(Plan::memory(
            &self.device,
            &tape.graph(),
            &[],
            self.plan_options,
        )?)
    }

    pub fn train_plan_stats(&mut self, batch: usize) -> Result<PlanStats> {
        self.with_plan(Graphs::Train, batch, |_, plan| Ok(plan.stats()))
    }

    /// The training step's kernels at `batch`, in the order they run: each
    /// one's label (its fused ops and, for a product or a reduction, the
    /// shape the kernel profile gave it: `…/tiled`, `…/wg`) and its
    /// generated WGSL (`None` for a handwritten shader, named in the label).
    pub fn train_kernels(&mut self, batch: usize) -> Result<Vec<(String, Option<String>)>> {
        self.with_plan(Graphs::Train, batch, |_, plan| {
            Ok(plan
                .kernels()
                .iter()
                .map(|k| (k.label().to_string(), k.source().map(str::to_string)))
                .collect())
        })
    }

    /// Per-kernel median times of the training step at `batch` (see [`Plan::profile`]).
    pub fn profile_train_step(&mut self, batch: usize, reps: usize) -> Result<Vec<(String, f64)>> {
        self.with_plan(Graphs::Train, batch, |_, plan| Ok(plan.profile(reps)?))
    }

    /// Every parameter's and buffer's current values, by dotted name.
    pub fn weights(&self) -> Result<NamedTensors> {
        self.module
            .state_dict()
            .into_iter()
            .map(|(n, p)| Ok((n, p.values()?)))
            .collect()
    }

    /// The parameter or buffer `name`.
    pub fn tensor(&self, name: &str) -> Result<Param> {
        let all = self.module.state_dict();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| {
                ModelError::Invalid(format!("no tensor named {name:?}; the model has {names:?}"))
            })
    }

    /// Reads a parameter's or buffer's values by name.
    pub fn value(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.values()?)
    }

    /// Overwrites a parameter or buffer by name; the size must match.
    pub fn set_weight(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let p = self.tensor(name)?;
        if values.len() != p.numel() {
            return Err(ModelError::Invalid(format!(
                "{name}: {} values given, shape {:?} holds {}",
                values.len(),
                p.shape(),
                p.numel()
            )));
        }
        Ok(p.write(values)?)
    }

    /// Optimizer steps and dropout draws, for checkpoints.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (self.steps, self.draws)
    }

    pub(crate) fn set_counters(&mut self, steps: u64, draws: u64) {
        self.steps = steps;
        self.draws = draws;
    }

    /// Every optimizer state tensor, by `parameter name/state name`.
    pub(crate) fn optimizer_state(&self) -> Result<NamedTensors> {
        let Some(t) = self.training.as_ref() else {
            return Ok(vec![]);
        };
        let names = self.module.named_parameters();
        let mut out = Vec::new();
        for (p, states) in &t.state {
            let Some((n, _)) = names.iter().find(|(_, q)| q == p) else {
                continue;
            };
            for (s, name) in states.iter().zip(t.optimizer.state_names()) {
                out.push((format!("{n}/{name}"), s.values()?));
            }
        }
        Ok(out)
    }

    /// Restores optimizer state written by [`Model::optimizer_state`].
    pub(crate) fn set_optimizer_state(&mut self, state: &NamedTensors) -> Result<()> {
        let optimizer = self.training_mut()?.optimizer;
        let names = self.module.named_parameters();
        for (n, p) in &names {
            let values: Vec<Option<&Vec<f32>>> = optimizer
                .state_names()
                .iter()
                .map(|s| {
                    state
                        .iter()
                        .find(|(k, _)| *k == format!("{n}/{s}"))
                        .map(|(_, v)| v)
                })
                .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let params = self.state_of(p)?;
            for (param, v) in params.iter().zip(values) {
                match v {
                    Some(v) => param.write(v)?,
                    None => {
                        return Err(ModelError::Invalid(format!(
                            "optimizer state of {n:?} is incomplete"
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// A Keras-like table: each layer (for a stack; the whole module
    /// otherwise) with its output shape and parameter count, the totals, and
    /// the compiled training step's kernels and planned memory.
    pub fn summary(&mut self) -> Result<String> {
        let mut lines = vec![format!(
            "{:<36}{:<22}{:>12}",
            "Layer (type)", "Output Shape", "Param #"
        )];
        let tape = Tape::new(Mode::Eval);
        let x = tape.input("x", &self.batch_shape(1));
        let mut rows: Vec<(String, String, Vec<usize>, usize)> = Vec::new();
        let y = self.module.trace(&x, &mut |name, m, y| {
            let mut count = 0;
            crate::module::walk(m, "", &mut |e| {
                if let crate::module::Entry::Param(_, p) = e {
                    count += p.numel();
                }
            });
            rows.push((name.to_string(), m.kind(), y.shape().to_vec(), count));
        })?;
        if rows.is_empty() {
            rows.push((
                "model".into(),
                self.module.kind(),
                y.shape().to_vec(),
                self.module.num_parameters(),
            ));
        }
        for (name, kind, shape, count) in &rows {
            let dims: Vec<String> = shape[1..].iter().map(|d| d.to_string()).collect();
            lines.push(format!(
                "{:<36}{:<22}{count:>12}",
                format!("{name} ({kind})"),
                format!("(None, {})", dims.join(", "))
            ));
        }
        let (trainable, frozen): (Vec<_>, Vec<_>) = self
            .module
            .named_parameters()
            .into_iter()
            .partition(|(_, p)| p.is_trainable());
        let count = |v: &[(String, Param)]| v.iter().map(|(_, p)| p.numel()).sum::<usize>();
        lines.push(format!(
            "Total params: {} (trainable {}, frozen {})",
            count(&trainable) + count(&frozen),
            count(&trainable),
            count(&frozen)
        ));
        if self.training.is_some() {
            let m = self.train_memory(32)?;
            let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
            lines.push(format!(
                "Training step at batch 32: {} of device memory planned (parameters and optimizer state {}, intermediates {}, inputs {})",
                mib(m.total_bytes()),
                mib(m.param_bytes),
                mib(m.intermediate_bytes),
                mib(m.input_bytes)
            ));
        }
        Ok(lines.join("\n"))
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

/// Scales every gradient by `min(1, max_norm / ‖g‖)`, ‖g‖ over all of them.
fn clip_by_global_norm(
    g: &mut kiln_graph::Graph,
    grads: &[NodeId],
    max_norm: f32,
) -> kiln_graph::Result<Vec<NodeId>> {
    let mut total: Option<NodeId> = None;
    for &gr in grads {
        let sq = g.unary(kiln_graph::UnaryOp::Square, gr)?;
        let s = g.sum_all(sq)?;
        total = Some(match total {
            Some(t) => g.add(t, s)?,
            None => s,
        });
    }
    let Some(total) = total else {
        return Ok(vec![]);
    };
    let norm = g.unary(kiln_graph::UnaryOp::Sqrt, total)?;
    let norm = g.unary(kiln_graph::UnaryOp::AddScalar(1e-6), norm)?;
    let limit = g.scalar(max_norm);
    let ratio = g.div(limit, norm)?;
    let one = g.scalar(1.0);
    let factor = g.binary(kiln_graph::BinaryOp::Min, ratio, one)?;
    grads.iter().map(|&gr| g.mul(gr, factor)).collect()
}
