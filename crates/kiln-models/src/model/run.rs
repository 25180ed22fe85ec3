//! Running the compiled plans on data: a training step, evaluation,
//! prediction, and one batch's gradients.

use kiln_data::{Array, Dataset};
use kiln_graph::{Mode, NodeId, Param, Plan, Tape, STEP_INPUT};

use super::graphs::{Graphs, HYPER_INPUT, WEIGHT_INPUT};
use super::{Logs, Model, NamedTensors, Samples};
use crate::error::{ModelError, Result};
use crate::module::{Module, ModuleExt};

impl<M: Module> Model<M> {
    /// One optimizer step on a batch (`x` row-major, samples of the input
    /// shape; `y` the loss's targets), or, when accumulating gradients
    /// ([`Model::accumulate_gradients`]), one batch's share of a step. The loss and metrics accumulate on
    /// the device, read once per epoch.
    pub fn train_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<()> {
        self.train_weighted(x, y, None)
    }

    /// [`Model::train_on_batch`] with per-sample loss weights, which a
    /// weighted `fit` gives.
    pub(crate) fn train_weighted(&mut self, x: &[f32], y: &[f32], w: Option<&[f32]>) -> Result<()> {
        let weighted = self.training_mut()?.weighted;
        let batch = self.check_batch(x, Some(y))?;
        // Weights are fed only to a weighted plan (ones where a batch has
        // none): an unweighted step allocates nothing for them.
        let ones: Vec<f32>;
        let w = match (w, weighted) {
            (Some(w), _) if w.len() != batch => {
                return Err(ModelError::Shape(format!(
                    "{} loss weights for a batch of {batch}",
                    w.len()
                )))
            }
            (Some(w), true) => Some(w),
            (None, true) => {
                ones = vec![1.0; batch];
                Some(&ones[..])
            }
            (_, false) => None,
        };
        let t = self.training.as_ref().expect("compiled");
        let steps = t.pending + 1 == t.accumulate;
        let graphs = if steps {
            Graphs::Train
        } else {
            Graphs::Accumulate
        };
        self.with_plan(graphs, batch, |model, plan| {
            let t = model.training.as_ref().expect("compiled");
            let hyper = t.state.optimizer().hyper(t.lr, model.steps + 1);
            let step = [model.draws as f32];
            let mut feeds = vec![
                ("x", x),
                ("y", y),
                (HYPER_INPUT, &hyper[..]),
                (STEP_INPUT, &step[..]),
            ];
            if let Some(w) = w {
                feeds.push((WEIGHT_INPUT, w));
            }
            plan.run(&feeds)?;
            Ok(())
        })?;
        let t = self.training.as_mut().expect("compiled");
        if steps {
            t.pending = 0;
            self.steps += 1;
        } else {
            t.pending += 1;
        }
        self.draws += 1;
        Ok(())
    }

    /// Runs the evaluation graph on a batch, accumulating the validation
    /// loss and metrics.
    pub(super) fn eval_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<()> {
        let batch = self.check_batch(x, Some(y))?;
        self.with_plan(Graphs::Eval, batch, |_, plan| {
            plan.run(&[("x", x), ("y", y)])?;
            Ok(())
        })
    }

    /// Loss and metrics on `data` in evaluation mode.
    pub fn evaluate(&mut self, data: &Dataset, batch_size: usize) -> Result<Logs> {
        self.training_mut()?;
        if data.is_empty() || batch_size == 0 {
            return Err(ModelError::Settings(format!(
                "evaluate needs samples and a positive batch size (got {} samples, batch {batch_size})",
                data.len()
            )));
        }
        self.check_data(data)?;
        self.check_rows(data)?;
        if let Some(logs) = self.evaluate_on_cached_features(data, batch_size)? {
            return Ok(logs);
        }
        self.take(false, 1)?; // start from zero
        for idx in kiln_data::batch_order(data.len(), batch_size, None, 0) {
            let (x, y) = data.gather(&idx)?;
            self.eval_on_batch(&x, &y)?;
        }
        self.take(false, data.len())
    }

    /// Model outputs for the samples in `x` (an [`Array`] of shape
    /// `[rows, sample…]`, a [`Dataset`]'s features, or values beside their
    /// shape), in batches of `batch_size`, with their shape `[rows,
    /// outputs…]`. Samples of another shape than the model's input are an
    /// error, never reinterpreted.
    ///
    /// ```no_run
    /// # use kiln_models::{Model, Linear};
    /// # let device = kiln_backend::Device::auto()?;
    /// let mut model = Model::new(&device, Linear::new(&device, 30, 1)?, [30]);
    /// let x = kiln_data::Array::new(vec![0.5; 6 * 30], &[6, 30])?;
    /// assert_eq!(model.predict(&x, 32)?.shape(), &[6, 1]);
    /// // 150 values as 6 rows of 25 features: refused, not read as 5 rows.
    /// let wrong: (&[f32], &[usize]) = (&[0.5; 150], &[6, 25]);
    /// assert!(model.predict(&wrong, 32).is_err());
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn predict(&mut self, x: &(impl Samples + ?Sized), batch_size: usize) -> Result<Array> {
        let (values, shape) = x.values_and_shape();
        let rows = self.check_samples(values, &shape)?;
        self.predict_rows(values, rows, batch_size)
    }

    /// [`Model::predict`] over `rows` samples of the input shape, `x`
    /// row-major, checked by the caller.
    pub(crate) fn predict_rows(
        &mut self,
        x: &[f32],
        rows: usize,
        batch_size: usize,
    ) -> Result<Array> {
        if batch_size == 0 {
            return Err(ModelError::Settings(
                "predict needs a positive batch size (got 0)".into(),
            ));
        }
        self.check_batch(x, None)?;
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
            let outputs = cache
                .get_or_compile(&key, || self.predict_graph(batch))
                .and_then(|plan| Ok(plan.run(&[("x", xs)])?));
            match outputs {
                Ok(mut v) => out.append(&mut v[0]),
                Err(e) => {
                    result = Err(e);
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
}
