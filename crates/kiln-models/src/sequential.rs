//! A Keras-style `Sequential` model: layers in order, compiled with an
//! optimizer, a loss and metrics into graphs that train, evaluate and predict.
//! Each graph is compiled once per batch size and replayed.

use kiln_backend::Device;
use kiln_data::Dataset;
use kiln_graph::{Activation, Graph, NodeId, ParamStore, Plan, PlanCache, HYPER_WORDS};

use crate::error::{ModelError, Result};
use crate::init::Init;
use crate::layer::{BatchNormConfig, BuildContext, Layer, Mode};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::optimizer::Optimizer;

/// Tensors by name, in a fixed order.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// Prefix of the device-side metric accumulators in the parameter store.
const ACC: &str = "kiln.acc";

/// Which compiled graphs a plan cache holds.
#[derive(Clone, Copy)]
enum Graphs {
    Train,
    Eval,
}

/// What `compile` fixed.
struct Training {
    optimizer: Optimizer,
    loss: Loss,
    metrics: Vec<Metric>,
    clip_norm: Option<f32>,
    lr: f32,
    train_plans: PlanCache,
    eval_plans: PlanCache,
}

/// Losses and metrics of one pass over data, as averages per sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Logs {
    pub loss: f32,
    /// (name, value) per compiled metric.
    pub metrics: Vec<(String, f32)>,
}

/// A stack of layers.
///
/// ```no_run
/// use kiln_models::{Sequential, Optimizer, Loss, Metric};
/// use kiln_graph::Activation;
/// let device = kiln_backend::Device::auto()?;
/// let mut model = Sequential::new(&device, 30)
///     .dense(128, Activation::Relu).batch_norm().dropout(0.3)
///     .dense(64, Activation::Relu).batch_norm().dropout(0.2)
///     .dense(1, Activation::Sigmoid);
/// model.compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[Metric::BinaryAccuracy])?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Sequential {
    device: Device,
    input_features: usize,
    layers: Vec<(String, Layer)>,
    seed: u64,
    params: Option<ParamStore>,
    training: Option<Training>,
    predict_plans: PlanCache,
    /// Optimizer steps taken (Adam's t).
    steps: u64,
    /// Training batches run: the dropout masks' counter.
    draws: u64,
}

impl Sequential {
    /// An empty model taking `input_features` features per sample.
    pub fn new(device: &Device, input_features: usize) -> Self {
        Self {
            device: device.clone(),
            input_features,
            layers: Vec::new(),
            seed: 0,
            params: None,
            training: None,
            predict_plans: PlanCache::new(),
            steps: 0,
            draws: 0,
        }
    }

    /// The seed of weight initialisation and dropout masks.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Appends a layer, named as Keras names it (`dense`, `dense_1`, …).
    pub fn layer(mut self, layer: Layer) -> Self {
        let kind = layer.kind();
        let count = self.layers.iter().filter(|(_, l)| l.kind() == kind).count();
        let name = if count == 0 {
            kind.to_string()
        } else {
            format!("{kind}_{count}")
        };
        self.layers.push((name, layer));
        self.params = None;
        self
    }

    /// A dense layer with Keras' Glorot-uniform kernel and zero bias.
    pub fn dense(self, units: usize, activation: Activation) -> Self {
        self.layer(Layer::Dense {
            units,
            activation,
            init: Init::GlorotUniform,
        })
    }

    /// Keras' `BatchNormalization()` (momentum 0.99, epsilon 1e-3).
    pub fn batch_norm(self) -> Self {
        self.layer(Layer::BatchNorm(BatchNormConfig::KERAS))
    }

    pub fn dropout(self, rate: f32) -> Self {
        self.layer(Layer::Dropout { rate })
    }

    pub fn input_features(&self) -> usize {
        self.input_features
    }

    /// The optimizer `compile` fixed.
    pub fn optimizer(&self) -> Option<Optimizer> {
        self.training.as_ref().map(|t| t.optimizer)
    }

    pub fn layers(&self) -> &[(String, Layer)] {
        &self.layers
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Output features per sample.
    pub fn output_features(&self) -> usize {
        self.layers
            .iter()
            .fold(self.input_features, |f, (_, l)| l.output_features(f))
    }

    /// Creates the parameters with their initial values (once).
    fn build(&mut self) -> Result<&ParamStore> {
        if self.params.is_none() {
            let mut store = ParamStore::new(&self.device);
            let mut features = self.input_features;
            for (i, (name, layer)) in self.layers.iter().enumerate() {
                layer.validate(name)?;
                let seed = self.seed ^ ((i as u64 + 1) << 32);
                for (suffix, shape, values, _) in layer.initial_params(features, seed) {
                    store.insert(&format!("{name}/{suffix}"), &values, &shape)?;
                }
                features = layer.output_features(features);
            }
            self.params = Some(store);
        }
        Ok(self.params.as_ref().expect("built above"))
    }

    pub(crate) fn params(&mut self) -> Result<&mut ParamStore> {
        self.build()?;
        Ok(self.params.as_mut().expect("built"))
    }

    /// Fixes the optimizer, loss and metrics, creating optimizer state.
    pub fn compile(&mut self, optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Result<()> {
        optimizer.validate().map_err(ModelError::Invalid)?;
        self.build()?;
        let trainable = self.trainable_names();
        let store = self.params.as_mut().expect("built");
        for name in &trainable {
            let shape = store.get(name)?.shape().to_vec();
            let n = shape.iter().product::<usize>();
            for state in optimizer.state_names() {
                store.insert(&format!("{name}/{state}"), &vec![0.0; n], &shape)?;
            }
        }
        for split in ["train", "val"] {
            store.insert(&format!("{ACC}/{split}/loss"), &[0.0], &[1])?;
            for k in 0..metrics.len() {
                store.insert(&format!("{ACC}/{split}/{k}"), &[0.0], &[1])?;
            }
        }
        self.training = Some(Training {
            optimizer,
            loss,
            metrics: metrics.to_vec(),
            clip_norm: None,
            lr: optimizer.learning_rate(),
            train_plans: PlanCache::new(),
            eval_plans: PlanCache::new(),
        });
        self.steps = 0;
        Ok(())
    }

    /// Clips gradients to a global L2 norm of at most `max_norm` before each step.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> Result<()> {
        let t = self.training_mut()?;
        if max_norm.is_nan() || max_norm <= 0.0 {
            return Err(ModelError::Invalid(format!(
                "a clipping norm must be positive, got {max_norm}"
            )));
        }
        t.clip_norm = Some(max_norm);
        t.train_plans = PlanCache::new();
        Ok(())
    }

    fn training_mut(&mut self) -> Result<&mut Training> {
        self.training.as_mut().ok_or_else(|| {
            ModelError::Invalid("call compile() before training or evaluating".into())
        })
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

    /// Names of the trainable parameters, in layer order.
    pub fn trainable_names(&self) -> Vec<String> {
        let mut f = self.input_features;
        let mut out = Vec::new();
        for (i, (name, layer)) in self.layers.iter().enumerate() {
            for (suffix, _, _, trainable) in layer.initial_params(f, i as u64) {
                if trainable {
                    out.push(format!("{name}/{suffix}"));
                }
            }
            f = layer.output_features(f);
        }
        out
    }

    /// Names of every model weight (trainable and not, no optimizer state).
    pub fn weight_names(&self) -> Vec<String> {
        let mut f = self.input_features;
        let mut out = Vec::new();
        for (i, (name, layer)) in self.layers.iter().enumerate() {
            for (suffix, _, _, _) in layer.initial_params(f, i as u64) {
                out.push(format!("{name}/{suffix}"));
            }
            f = layer.output_features(f);
        }
        out
    }

    /// Every model weight's current values, by name.
    pub fn weights(&mut self) -> Result<NamedTensors> {
        let names = self.weight_names();
        let store = self.build()?;
        names
            .into_iter()
            .map(|n| Ok((n.clone(), store.values(&n)?)))
            .collect()
    }

    /// Overwrites one weight (or optimizer state) by name; the size must match.
    pub fn set_weight(&mut self, name: &str, values: &[f32]) -> Result<()> {
        Ok(self.params()?.write(name, values)?)
    }

    /// Reads any stored tensor (weight, optimizer state) by name.
    pub fn value(&mut self, name: &str) -> Result<Vec<f32>> {
        Ok(self.build()?.values(name)?)
    }

    /// The forward graph for a batch of `batch` rows.
    fn forward(
        &mut self,
        g: &mut Graph,
        batch: usize,
        mode: Mode,
        update_stats: bool,
    ) -> Result<(NodeId, Vec<(String, NodeId)>)> {
        self.build()?;
        let params = self.params.as_ref().expect("built");
        let x = g.input("x", &[batch, self.input_features]);
        let step = (mode == Mode::Train).then(|| g.input("kiln.step", &[1]));
        let mut ctx = BuildContext {
            graph: g,
            params,
            mode,
            step,
            update_stats,
            trainable: Vec::new(),
        };
        let mut h = x;
        for (i, (name, layer)) in self.layers.iter().enumerate() {
            h = layer.build(name, i, self.seed, &mut ctx, h)?;
        }
        Ok((h, ctx.trainable))
    }

    fn target_input(&self, g: &mut Graph, pred: NodeId) -> Result<NodeId> {
        let shape = g.shape(pred).to_vec();
        Ok(g.input("y", &shape))
    }

    /// The loss node and per-sample terms for a batch.
    fn loss_nodes(
        &self,
        g: &mut Graph,
        pred: NodeId,
        y: NodeId,
        loss: Loss,
    ) -> Result<(NodeId, NodeId)> {
        let terms = loss.terms(g, pred, y)?;
        Ok((g.mean_all(terms)?, terms))
    }

    /// Adds this batch's sums of per-sample losses (`terms`) and metric
    /// values to the device-side accumulators of `split`.
    fn accumulate_metrics(
        &mut self,
        g: &mut Graph,
        split: &str,
        pred: NodeId,
        y: NodeId,
        terms: NodeId,
        batch: usize,
    ) -> Result<()> {
        let t = self.training.as_ref().expect("compiled");
        let metrics = t.metrics.clone();
        let params = self.params.as_ref().expect("built");
        let per_sample = |g: &Graph, v: NodeId| (g.node(v).numel() / batch) as f32;
        let acc = g.param(params, &format!("{ACC}/{split}/loss"))?;
        let scale = 1.0 / per_sample(g, terms);
        g.accumulate(acc, terms, 1.0, scale)?;
        for (k, m) in metrics.iter().enumerate() {
            let v = m.values(g, pred, y)?;
            let acc = g.param(params, &format!("{ACC}/{split}/{k}"))?;
            let scale = 1.0 / per_sample(g, v);
            g.accumulate(acc, v, 1.0, scale)?;
        }
        Ok(())
    }

    /// Builds the training step graph: forward, loss, backward, updates.
    fn train_graph(&mut self, batch: usize) -> Result<Plan> {
        let t = self.training.as_ref().expect("compiled");
        let (loss_kind, optimizer, clip) = (t.loss, t.optimizer, t.clip_norm);
        let mut g = Graph::new();
        let (pred, trainable) = self.forward(&mut g, batch, Mode::Train, true)?;
        let y = self.target_input(&mut g, pred)?;
        let (loss, terms) = self.loss_nodes(&mut g, pred, y, loss_kind)?;
        self.accumulate_metrics(&mut g, "train", pred, y, terms, batch)?;
        let nodes: Vec<NodeId> = trainable.iter().map(|(_, n)| *n).collect();
        let mut grads = g.grad(loss, &nodes)?;
        if let Some(max_norm) = clip {
            grads = clip_by_global_norm(&mut g, &grads, max_norm)?;
        }
        let hyper = g.input("kiln.hyper", &[HYPER_WORDS]);
        let params = self.params.as_ref().expect("built");
        for ((name, p), grad) in trainable.iter().zip(grads) {
            let state: Vec<NodeId> = optimizer
                .state_names()
                .iter()
                .map(|s| g.frozen_param(params, &format!("{name}/{s}")))
                .collect::<kiln_graph::Result<_>>()?;
            g.optimizer_step(optimizer.rule(), *p, grad, &state, hyper)?;
        }
        Ok(Plan::compile(&self.device, &g, params, &[])?)
    }

    fn eval_graph(&mut self, batch: usize) -> Result<Plan> {
        let loss_kind = self.training.as_ref().expect("compiled").loss;
        let mut g = Graph::new();
        let (pred, _) = self.forward(&mut g, batch, Mode::Infer, false)?;
        let y = self.target_input(&mut g, pred)?;
        let (_, terms) = self.loss_nodes(&mut g, pred, y, loss_kind)?;
        self.accumulate_metrics(&mut g, "val", pred, y, terms, batch)?;
        Ok(Plan::compile(
            &self.device,
            &g,
            self.params.as_ref().expect("built"),
            &[],
        )?)
    }

    /// The data's rows have the features the model takes.
    pub(crate) fn check_features(&self, data: &Dataset) -> Result<()> {
        if data.n_features() != self.input_features {
            return Err(ModelError::Invalid(format!(
                "the data has {} features, the model takes {}",
                data.n_features(),
                self.input_features
            )));
        }
        Ok(())
    }

    fn check_batch(&self, x: &[f32], y: Option<&[f32]>) -> Result<usize> {
        let f = self.input_features;
        if x.is_empty() || !x.len().is_multiple_of(f) {
            return Err(ModelError::Invalid(format!(
                "a batch of {} feature values is not a whole number of rows of {f} features",
                x.len()
            )));
        }
        let batch = x.len() / f;
        if let Some(y) = y {
            let want = batch * self.output_features();
            if y.len() != want {
                return Err(ModelError::Invalid(format!(
                    "{} target values for {batch} rows; the model outputs {} per row",
                    y.len(),
                    self.output_features()
                )));
            }
        }
        Ok(batch)
    }

    /// One optimizer step on a batch (`x` row-major `[batch, features]`).
    /// The loss and metrics accumulate on the device; read them with
    /// [`Sequential::take_logs`].
    pub fn train_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<()> {
        let batch = self.check_batch(x, Some(y))?;
        self.with_plan(Graphs::Train, batch, |model, plan| {
            let t = model.training.as_ref().expect("compiled");
            let hyper = t.optimizer.hyper(t.lr, model.steps + 1);
            let step = [model.draws as f32];
            plan.run(&[
                ("x", x),
                ("y", y),
                ("kiln.hyper", &hyper),
                ("kiln.step", &step),
            ])?;
            Ok(())
        })?;
        self.steps += 1;
        self.draws += 1;
        Ok(())
    }

    /// Runs the inference graph on a batch, accumulating validation loss and metrics.
    fn eval_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<()> {
        let batch = self.check_batch(x, Some(y))?;
        self.with_plan(Graphs::Eval, batch, |_, plan| {
            plan.run(&[("x", x), ("y", y)])?;
            Ok(())
        })
    }

    /// Runs `use_plan` on the compiled training or evaluation plan for
    /// `batch` rows, compiling it on first use. The cache is taken out of the
    /// model meanwhile, so compiling can read the model.
    fn with_plan<T>(
        &mut self,
        graphs: Graphs,
        batch: usize,
        use_plan: impl FnOnce(&mut Self, &mut Plan) -> Result<T>,
    ) -> Result<T> {
        let key = [("x", &[batch][..])];
        let t = self.training_mut()?;
        let mut cache = std::mem::take(match graphs {
            Graphs::Train => &mut t.train_plans,
            Graphs::Eval => &mut t.eval_plans,
        });
        let result = cache
            .get_or_compile(&key, || {
                match graphs {
                    Graphs::Train => self.train_graph(batch),
                    Graphs::Eval => self.eval_graph(batch),
                }
                .map_err(into_graph_error)
            })
            .map_err(ModelError::from)
            .and_then(|plan| use_plan(self, plan));
        let t = self.training.as_mut().expect("compiled");
        match graphs {
            Graphs::Train => t.train_plans = cache,
            Graphs::Eval => t.eval_plans = cache,
        }
        result
    }

    /// Reads and resets the accumulated loss and metrics of `split`
    /// ("train" or "val"), as averages over `samples`.
    pub(crate) fn take_logs(&mut self, split: &str, samples: usize) -> Result<Logs> {
        let metrics = self.training.as_ref().expect("compiled").metrics.clone();
        let store = self.params()?;
        let read = |name: String| -> Result<f32> {
            let v = store.values(&name)?[0];
            store.write(&name, &[0.0])?;
            Ok(v / samples.max(1) as f32)
        };
        let loss = read(format!("{ACC}/{split}/loss"))?;
        let mut out = Vec::new();
        for (k, m) in metrics.iter().enumerate() {
            out.push((m.name().to_string(), read(format!("{ACC}/{split}/{k}"))?));
        }
        Ok(Logs { loss, metrics: out })
    }

    /// Peeks at the running training loss without resetting it.
    pub(crate) fn running_loss(&mut self, samples: usize) -> Result<f32> {
        let v = self.params()?.values(&format!("{ACC}/train/loss"))?[0];
        Ok(v / samples.max(1) as f32)
    }

    /// Loss and metrics on `data` in inference mode.
    pub fn evaluate(&mut self, data: &Dataset, batch_size: usize) -> Result<Logs> {
        self.training_mut()?;
        if data.is_empty() || batch_size == 0 {
            return Err(ModelError::Invalid(format!(
                "evaluate needs rows and a positive batch size (got {} rows, batch {batch_size})",
                data.len()
            )));
        }
        self.check_features(data)?;
        self.take_logs("val", 1)?; // start from zero
        for idx in kiln_data::batch_order(data.len(), batch_size, None, 0) {
            let (x, y) = data.gather(&idx);
            self.eval_on_batch(&x, &y)?;
        }
        self.take_logs("val", data.len())
    }

    /// Model outputs for row-major features `x`, in batches of `batch_size`.
    pub fn predict(&mut self, x: &[f32], batch_size: usize) -> Result<Vec<f32>> {
        let rows = self.check_batch(x, None)?;
        let f = self.input_features;
        let mut out = Vec::with_capacity(rows * self.output_features());
        let mut cache = std::mem::take(&mut self.predict_plans);
        let mut result = Ok(());
        for idx in kiln_data::batch_order(rows, batch_size, None, 0) {
            let batch = idx.len();
            let xs = &x[idx[0] * f..(idx[0] + batch) * f];
            let key = [("x", &[batch][..])];
            let plan = cache.get_or_compile(&key, || {
                let mut g = Graph::new();
                let (pred, _) = self
                    .forward(&mut g, batch, Mode::Infer, false)
                    .map_err(into_graph_error)?;
                Plan::compile(
                    &self.device,
                    &g,
                    self.params.as_ref().expect("built"),
                    &[pred],
                )
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
        result.map(|_| out)
    }

    /// The batch's loss and the gradient of every trainable weight, computed
    /// in training mode (batch statistics, dropout drawn) without updating
    /// anything, running statistics included.
    pub fn loss_and_gradients(&mut self, x: &[f32], y: &[f32]) -> Result<(f32, NamedTensors)> {
        let batch = self.check_batch(x, Some(y))?;
        let loss_kind = self.training_mut()?.loss;
        let mut g = Graph::new();
        let (pred, trainable) = self.forward(&mut g, batch, Mode::Train, false)?;
        let y_node = self.target_input(&mut g, pred)?;
        let (loss, _) = self.loss_nodes(&mut g, pred, y_node, loss_kind)?;
        let nodes: Vec<NodeId> = trainable.iter().map(|(_, n)| *n).collect();
        let grads = g.grad(loss, &nodes)?;
        let mut outputs = vec![loss];
        outputs.extend(&grads);
        let mut plan = Plan::compile(
            &self.device,
            &g,
            self.params.as_ref().expect("built"),
            &outputs,
        )?;
        let step = [self.draws as f32];
        let mut out = plan.run(&[("x", x), ("y", y), ("kiln.step", &step)])?;
        let loss = out[0][0];
        let grads = trainable
            .into_iter()
            .map(|(n, _)| n)
            .zip(out.drain(1..))
            .collect();
        Ok((loss, grads))
    }

    /// Compiles (or reuses) the training plan for `batch` rows and returns its
    /// counters: dispatches per step and planned intermediate bytes.
    pub fn train_plan_stats(&mut self, batch: usize) -> Result<kiln_graph::PlanStats> {
        self.with_plan(Graphs::Train, batch, |_, plan| Ok(plan.stats()))
    }

    /// Per-kernel median times of the training step at `batch` (see [`Plan::profile`]).
    pub fn profile_train_step(&mut self, batch: usize, reps: usize) -> Result<Vec<(String, f64)>> {
        self.with_plan(Graphs::Train, batch, |_, plan| Ok(plan.profile(reps)?))
    }

    /// Optimizer steps and dropout draws, for checkpoints.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (self.steps, self.draws)
    }

    pub(crate) fn seed_value(&self) -> u64 {
        self.seed
    }

    /// Takes another seed for dropout masks; compiled plans bake the seed in,
    /// so they are dropped.
    pub(crate) fn reseed(&mut self, seed: u64) {
        if seed != self.seed {
            self.seed = seed;
            self.predict_plans = PlanCache::new();
            if let Some(t) = self.training.as_mut() {
                t.train_plans = PlanCache::new();
                t.eval_plans = PlanCache::new();
            }
        }
    }

    pub(crate) fn set_counters(&mut self, steps: u64, draws: u64) {
        self.steps = steps;
        self.draws = draws;
    }

    /// Names of every stored tensor a checkpoint holds: weights and optimizer state.
    pub(crate) fn checkpoint_names(&mut self) -> Result<Vec<String>> {
        let store = self.build()?;
        Ok(store
            .names()
            .filter(|n| !n.starts_with(ACC))
            .map(str::to_string)
            .collect())
    }

    /// A Keras-like table of layers, output shapes and parameter counts.
    pub fn summary(&mut self) -> Result<String> {
        let mut f = self.input_features;
        let mut lines = vec![format!(
            "{:<28}{:<18}{:>10}",
            "Layer (type)", "Output Shape", "Param #"
        )];
        let (mut trainable, mut frozen) = (0usize, 0usize);
        for (i, (name, layer)) in self.layers.iter().enumerate() {
            let mut count = 0;
            for (_, shape, _, train) in layer.initial_params(f, i as u64) {
                let n: usize = shape.iter().product();
                count += n;
                if train {
                    trainable += n;
                } else {
                    frozen += n;
                }
            }
            f = layer.output_features(f);
            let kind = format!("{name} ({:?})", layer_type(layer));
            lines.push(format!(
                "{kind:<28}{:<18}{count:>10}",
                format!("(None, {f})")
            ));
        }
        lines.push(format!(
            "Total params: {} (trainable {trainable}, non-trainable {frozen})",
            trainable + frozen
        ));
        if self.training.is_some() {
            let stats = self.train_plan_stats(32)?;
            lines.push(format!(
                "Training step at batch 32: {} kernels, {} KiB planned for intermediates ({} KiB without reuse)",
                stats.dispatches,
                stats.planned_bytes / 1024,
                stats.intermediate_bytes / 1024
            ));
        }
        Ok(lines.join("\n"))
    }
}

fn layer_type(layer: &Layer) -> &'static str {
    match layer {
        Layer::Dense { .. } => "Dense",
        Layer::BatchNorm(_) => "BatchNormalization",
        Layer::Dropout { .. } => "Dropout",
        Layer::Activation(_) => "Activation",
        Layer::Softmax => "Softmax",
    }
}

/// Plans are compiled inside closures that return graph errors; a model error
/// (a layer's name and cause) travels through as its message.
fn into_graph_error(e: ModelError) -> kiln_graph::GraphError {
    match e {
        ModelError::Graph(g) => g,
        other => kiln_graph::GraphError::Invalid(other.to_string()),
    }
}

/// Scales every gradient by `min(1, max_norm / ‖g‖)`, ‖g‖ over all of them.
fn clip_by_global_norm(g: &mut Graph, grads: &[NodeId], max_norm: f32) -> Result<Vec<NodeId>> {
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
    grads.iter().map(|&gr| Ok(g.mul(gr, factor)?)).collect()
}
