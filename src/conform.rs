//! The conformance runner: loads op cases in the format of
//! `tests/conformance/FORMAT.md` (ONNX operator semantics), builds each op as a
//! kiln graph, runs it forward and, where a case has `grads`, backward through
//! kiln's own autodiff, and compares with the stored tensors.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use kiln_backend::{BinaryOp, Device, ReduceOp, UnaryOp};
use kiln_graph::{
    Graph, GruOptions, LstmOptions, NodeId, Op, Param, Plan, PlanOptions, RecurrentWeights,
    Window2d, HYPER_WORDS,
};
use kiln_models::{losses, EpsilonConvention, LstmWeights, Optimizer, Reduction};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// What happened to one case.
#[derive(Debug)]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Totals of a run, and one line per failure and skip.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed,
            self.failed.len(),
            self.skipped.len()
        )
    }
}

/// Runs every `*.safetensors` case under `dir` (recursively), in name order,
/// with the default plan options.
pub fn run_dir(device: &Device, dir: &Path) -> Result<Report> {
    run_dir_with(device, dir, PlanOptions::default())
}

/// [`run_dir`] with explicit plan options (fusion on or off).
pub fn run_dir_with(device: &Device, dir: &Path, options: PlanOptions) -> Result<Report> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!("no *.safetensors cases under {}", dir.display());
    }
    let mut report = Report::default();
    for f in files {
        let name = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        match run_case(device, &f, options) {
            Ok(Outcome::Passed) => report.passed += 1,
            Ok(Outcome::Failed(why)) => report.failed.push((name, why)),
            Ok(Outcome::Skipped(why)) => report.skipped.push((name, why)),
            Err(e) => report.failed.push((name, format!("{e:#}"))),
        }
    }
    Ok(report)
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "safetensors") {
            out.push(p);
        }
    }
    Ok(())
}

/// A tensor of a case, as f32 values (integers converted exactly).
struct Data {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn load(st: &SafeTensors<'_>, name: &str) -> Result<Data> {
    let t = st
        .tensor(name)
        .with_context(|| format!("tensor {name:?} missing"))?;
    let b = t.data();
    let values = match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::BOOL => b.iter().map(|&v| v as f32).collect(),
        other => bail!("tensor {name:?} has dtype {other:?}; expected F32, I64 or BOOL"),
    };
    Ok(Data {
        shape: t.shape().to_vec(),
        values,
    })
}

fn json(meta: &HashMap<String, String>, key: &str) -> Result<Value> {
    match meta.get(key) {
        Some(s) => serde_json::from_str(s).with_context(|| format!("metadata {key:?} is not JSON")),
        None => Ok(Value::Null),
    }
}

/// Metadata `key` read as `T` (`what` says what it must be): an error when
/// it is there but is not one, or is missing where `required`; otherwise
/// empty when missing.
fn field<T: serde::de::DeserializeOwned + Default>(
    meta: &HashMap<String, String>,
    key: &str,
    what: &str,
    required: bool,
) -> Result<T> {
    match json(meta, key)? {
        Value::Null if required => bail!("metadata {key:?} is missing; expected {what}"),
        Value::Null => Ok(T::default()),
        v => serde_json::from_value(v).with_context(|| format!("metadata {key:?} is not {what}")),
    }
}

fn int_list(v: &Value) -> Option<Vec<i64>> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
}

/// The graph for one op: returns its output nodes (ONNX output slots), or a
/// skip reason.
type Built<T = Vec<NodeId>> = std::result::Result<T, String>;

fn build(
    device: &Device,
    g: &mut Graph,
    op: &str,
    attrs: &Value,
    ins: &[Option<NodeId>],
    consts: &[Option<Data>],
) -> Result<Built> {
    let x = |i: usize| {
        ins.get(i)
            .copied()
            .flatten()
            .ok_or_else(|| anyhow!("{op}: input {i} missing"))
    };
    // Input `k` as a parameter: state that kiln's kernels update in place,
    // read back after the run (see `run_case`).
    let param = |g: &mut Graph, k: usize| -> Result<NodeId> {
        let d = consts
            .get(k)
            .and_then(Option::as_ref)
            .ok_or_else(|| anyhow!("{op}: input {k} missing"))?;
        let p = Param::new(device, &format!("input{k}"), &d.values, &d.shape)?;
        Ok(g.param_node(&p))
    };
    let attr_f = |k: &str, d: f64| attrs.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
    let attr_i = |k: &str, d: i64| attrs.get(k).and_then(Value::as_i64).unwrap_or(d);
    let unary = |g: &mut Graph, u: UnaryOp| -> Result<Built> { Ok(Ok(vec![g.unary(u, x(0)?)?])) };
    let binary =
        |g: &mut Graph, b: BinaryOp| -> Result<Built> { Ok(Ok(vec![g.binary(b, x(0)?, x(1)?)?])) };
    Ok(match op {
        "Add" => return binary(g, BinaryOp::Add),
        "Sub" => return binary(g, BinaryOp::Sub),
        "Mul" => return binary(g, BinaryOp::Mul),
        "Div" => return binary(g, BinaryOp::Div),
        "Pow" => return binary(g, BinaryOp::Pow),
        "Neg" => return unary(g, UnaryOp::Neg),
        "Exp" => return unary(g, UnaryOp::Exp),
        "Log" => return unary(g, UnaryOp::Log),
        "Sqrt" => return unary(g, UnaryOp::Sqrt),
        "Relu" => return unary(g, UnaryOp::Relu),
        "Sigmoid" => return unary(g, UnaryOp::Sigmoid),
        "Tanh" => return unary(g, UnaryOp::Tanh),
        "Identity" => return unary(g, UnaryOp::Identity),
        "LeakyRelu" => return unary(g, UnaryOp::LeakyRelu(attr_f("alpha", 0.01))),
        "Clip" => {
            let mut y = x(0)?;
            if let Some(lo) = ins.get(1).copied().flatten() {
                y = g.binary(BinaryOp::Max, y, lo)?;
            }
            if let Some(hi) = ins.get(2).copied().flatten() {
                y = g.binary(BinaryOp::Min, y, hi)?;
            }
            Ok(vec![y])
        }
        "Softmax" | "LogSoftmax" => Ok(vec![g.softmax(
            x(0)?,
            attr_i("axis", -1),
            op == "LogSoftmax",
        )?]),
        "Flatten" => Ok(vec![g.flatten(x(0)?, attr_i("axis", 1))?]),
        "Reshape" => {
            let Some(shape) = consts.get(1).and_then(Option::as_ref) else {
                bail!("Reshape: no shape")
            };
            let target: Vec<i64> = shape.values.iter().map(|&v| v as i64).collect();
            if attr_i("allowzero", 0) != 0 && !target.contains(&-1) {
                // A 0 in the target is a literal zero-length axis.
                let exact: Vec<usize> = target.iter().map(|&d| d as usize).collect();
                return Ok(Ok(vec![g.reshape_to(x(0)?, &exact)?]));
            }
            Ok(vec![g.reshape(x(0)?, &target)?])
        }
        "Transpose" => {
            let perm: Vec<usize> = int_list(&attrs["perm"])
                .unwrap_or_default()
                .iter()
                .map(|&p| p as usize)
                .collect();
            Ok(vec![g.permute(x(0)?, &perm)?])
        }
        "Concat" => {
            let xs: Vec<NodeId> = ins.iter().flatten().copied().collect();
            Ok(vec![g.concat(&xs, attr_i("axis", 0))?])
        }
        "MatMul" => {
            let (a, b) = (x(0)?, x(1)?);
            Ok(vec![g.matmul(a, b, false, false)?])
        }
        "Gemm" => {
            let mut y = g.matmul(
                x(0)?,
                x(1)?,
                attr_i("transA", 0) != 0,
                attr_i("transB", 0) != 0,
            )?;
            let alpha = attr_f("alpha", 1.0);
            if alpha != 1.0 {
                y = g.scale(y, alpha)?;
            }
            if let Some(c) = ins.get(2).copied().flatten() {
                let beta = attr_f("beta", 1.0);
                let c = if beta != 1.0 { g.scale(c, beta)? } else { c };
                y = g.add(y, c)?;
            }
            Ok(vec![y])
        }
        "ReduceSum" | "ReduceMean" | "ReduceMax" => {
            let rop = match op {
                "ReduceSum" => ReduceOp::Sum,
                "ReduceMean" => ReduceOp::Mean,
                _ => ReduceOp::Max,
            };
            let keep = attr_i("keepdims", 1) != 0;
            let axes: Vec<i64> = match consts.get(1).and_then(Option::as_ref) {
                Some(a) => a.values.iter().map(|&v| v as i64).collect(),
                None => int_list(&attrs["axes"]).unwrap_or_default(),
            };
            let rank = g.shape(x(0)?).len() as i64;
            let axes = if axes.is_empty() {
                if attr_i("noop_with_empty_axes", 0) != 0 {
                    return Ok(Ok(vec![g.unary(UnaryOp::Identity, x(0)?)?]));
                }
                (0..rank).collect()
            } else {
                axes
            };
            Ok(vec![g.reduce(rop, x(0)?, &axes, keep)?])
        }
        "Dropout" => {
            let scalar = |i: usize| {
                consts
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|d| d.values.first().copied())
            };
            let training = scalar(2).unwrap_or(0.0) != 0.0;
            let ratio = scalar(1).unwrap_or(attr_f("ratio", 0.5));
            if training && ratio > 0.0 {
                return Ok(Err(
                    "training-mode Dropout with ratio > 0 is random: not a conformance case".into(),
                ));
            }
            // As the Dropout layer builds it: the dropout kernel in training
            // (its mask drawn from a seed and the step), nothing in inference.
            let y = if training {
                let step = g.scalar(0.0);
                g.dropout(x(0)?, ratio, attr_i("seed", 0) as u64, step)?
            } else {
                g.unary(UnaryOp::Identity, x(0)?)?
            };
            // The mask, read off the result: kept where y is not zero or x was.
            let zero = g.scalar(0.0);
            let kept = g.binary(BinaryOp::Ne, y, zero)?;
            let was_zero = g.binary(BinaryOp::Eq, x(0)?, zero)?;
            let mask = g.binary(BinaryOp::Max, kept, was_zero)?;
            Ok(vec![y, mask])
        }
        "SoftmaxCrossEntropyLoss" | "NegativeLogLikelihoodLoss" => {
            let reduction = Reduction::parse(
                attrs
                    .get("reduction")
                    .and_then(Value::as_str)
                    .unwrap_or("mean"),
            )?;
            let ignore = attrs.get("ignore_index").and_then(Value::as_i64);
            let weight = ins.get(2).copied().flatten();
            if op == "NegativeLogLikelihoodLoss" {
                Ok(vec![losses::nll_loss(
                    g,
                    x(0)?,
                    x(1)?,
                    weight,
                    ignore,
                    reduction,
                )?])
            } else {
                let (loss, log_prob) =
                    losses::softmax_cross_entropy(g, x(0)?, x(1)?, weight, ignore, reduction)?;
                Ok(vec![loss, log_prob])
            }
        }
        "Adam" | "Momentum" | "Adagrad" => {
            // Inputs: R, T, then the tensors X…, G…, and one or two state
            // lists. Each X and state becomes a parameter that the training
            // update kernel rewrites in place; the case's outputs are read
            // from them after the run.
            let scalar = |i: usize| {
                consts
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|d| d.values.first().copied())
                    .ok_or_else(|| anyhow!("{op}: input {i} (R or T) missing"))
            };
            let (r, t) = (scalar(0)?, scalar(1)?);
            let (opt, lr, step) = match onnx_optimizer(op, attrs, r, t)? {
                Ok(found) => found,
                Err(skip) => return Ok(Err(skip)),
            };
            if let Err(why) = opt.validate() {
                bail!("{op} with attributes {attrs}: {why}");
            }
            let (rule, hyper) = (opt.rule(), opt.hyper(lr, step));
            let lists = 2 + rule.states();
            let n = ins.len().saturating_sub(2) / lists;
            if n == 0 || ins.len() != 2 + n * lists {
                bail!(
                    "{op} takes R, T and {lists} lists of equal length, got {} inputs",
                    ins.len()
                );
            }
            let hyper = g.constant(&hyper, &[HYPER_WORDS])?;
            let mut outs: Vec<Vec<NodeId>> = vec![Vec::new(); lists - 1];
            for i in 0..n {
                let xi = param(g, 2 + i)?;
                let gi = x(2 + n + i)?;
                let states = (0..rule.states())
                    .map(|s| param(g, 2 + (2 + s) * n + i))
                    .collect::<Result<Vec<_>>>()?;
                g.optimizer_step(rule, xi, gi, &states, hyper)?;
                outs[0].push(xi);
                for (s, &node) in states.iter().enumerate() {
                    outs[1 + s].push(node);
                }
            }
            Ok(outs.concat())
        }
        "Conv" | "MaxPool" | "AveragePool" => {
            let xs = g.shape(x(0)?).to_vec();
            if xs.len() != 4 {
                return Ok(Err(format!(
                    "{op} over {} spatial axes is not implemented (kiln's convolutions and pooling are 2-D)",
                    xs.len().saturating_sub(2)
                )));
            }
            if op == "Conv" && attr_i("group", 1) != 1 {
                return Ok(Err("grouped convolutions are not implemented".into()));
            }
            let window = onnx_window(attrs, &xs)?;
            let ceil_mode = attr_i("ceil_mode", 0) != 0;
            match op {
                "Conv" => {
                    let y = g.conv2d(x(0)?, x(1)?, window)?;
                    let y = match ins.get(2).copied().flatten() {
                        Some(b) => {
                            let c = dim(g, b, 0, "Conv bias")? as i64;
                            let b = g.reshape(b, &[1, c, 1, 1])?;
                            g.add(y, b)?
                        }
                        None => y,
                    };
                    Ok(vec![y])
                }
                "MaxPool" => {
                    let (y, local) = g.max_pool2d_with_indices(x(0)?, window, ceil_mode)?;
                    let column_major = attr_i("storage_order", 0) != 0;
                    Ok(vec![y, onnx_indices(g, local, &xs, column_major)?])
                }
                _ => {
                    let include = attr_i("count_include_pad", 0) != 0;
                    Ok(vec![g.avg_pool2d(x(0)?, window, ceil_mode, include)?])
                }
            }
        }
        "GlobalAveragePool" => {
            let rank = g.shape(x(0)?).len() as i64;
            let axes: Vec<i64> = (2..rank).collect();
            Ok(vec![g.reduce(ReduceOp::Mean, x(0)?, &axes, true)?])
        }
        "BatchNormalization" => {
            let eps = attr_f("epsilon", 1e-5);
            let momentum = attr_f("momentum", 0.9);
            let (xx, scale, bias) = (x(0)?, x(1)?, x(2)?);
            if attr_i("training_mode", 0) == 0 {
                return Ok(Ok(vec![g.batch_norm(
                    xx,
                    x(3)?,
                    x(4)?,
                    Some(scale),
                    Some(bias),
                    1,
                    eps,
                )?]));
            }
            let rank = g.shape(xx).len() as i64;
            let axes: Vec<i64> = std::iter::once(0).chain(2..rank).collect();
            let (batch_mean, batch_var) = g.moments(xx, &axes)?;
            let y = g.batch_norm(xx, batch_mean, batch_var, Some(scale), Some(bias), 1, eps)?;
            // The running statistics are parameters moved in place by the
            // kernel batch norm layers train with; ONNX keeps `momentum` of
            // the old value and moves toward the biased batch variance.
            let (running_mean, running_var) = (param(g, 3)?, param(g, 4)?);
            g.running_stats(
                running_mean,
                running_var,
                batch_mean,
                batch_var,
                None,
                momentum,
                1.0,
            )?;
            Ok(vec![y, running_mean, running_var])
        }
        "LSTM" | "GRU" | "RNN" => return recurrent(g, op, attrs, ins, consts),
        other => Err(format!("op {other} is not implemented yet")),
    })
}

/// ONNX's LSTM, GRU and RNN (forward direction): inputs `X` `[T, B, in]`
/// (or `[B, T, in]` with `layout` 1), `W`, `R`, `B` of one direction, the
/// initial states, LSTM peepholes; outputs `Y` `[T, 1, B, u]`, `Y_h`,
/// `Y_c`. LSTM weights go through [`LstmWeights::from_onnx`] (see
/// [`lstm_weights_from_onnx`]); GRU (z, r, h) and RNN weights are in kiln's
/// order already.
fn recurrent(
    g: &mut Graph,
    op: &str,
    attrs: &Value,
    ins: &[Option<NodeId>],
    consts: &[Option<Data>],
) -> Result<Built> {
    let input = |i: usize| ins.get(i).copied().flatten();
    let (Some(x), Some(w), Some(r)) = (input(0), input(1), input(2)) else {
        bail!("{op}: X, W and R are required");
    };
    let direction = attrs
        .get("direction")
        .and_then(Value::as_str)
        .unwrap_or("forward");
    if direction != "forward" {
        return Ok(Err(format!(
            "{op} direction {direction:?}: kiln runs forward sequences"
        )));
    }
    for (key, what) in [
        ("clip", "cell clipping"),
        ("input_forget", "coupled input and forget gates"),
    ] {
        if attrs
            .get(key)
            .and_then(Value::as_f64)
            .is_some_and(|v| v != 0.0)
        {
            return Ok(Err(format!("{op} with {what} ({key}) is not implemented")));
        }
    }
    let names: Vec<String> = attrs
        .get("activations")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let activation = |name: &str| match name {
        "Sigmoid" => Some(UnaryOp::Sigmoid),
        "Tanh" => Some(UnaryOp::Tanh),
        "Relu" => Some(UnaryOp::Relu),
        _ => None,
    };
    let acts: Option<Vec<UnaryOp>> = names.iter().map(|n| activation(n)).collect();
    let Some(acts) = acts else {
        return Ok(Err(format!(
            "{op} activations {names:?}: kiln has Sigmoid, Tanh, Relu"
        )));
    };
    if op == "LSTM" && acts.len() == 3 && acts[1] != acts[2] {
        return Ok(Err("LSTM with different cell and output activations".into()));
    }
    let batch_first = attrs.get("layout").and_then(Value::as_i64) == Some(1);
    if let Some(lens) = consts.get(4).and_then(Option::as_ref) {
        let steps = dim(g, x, usize::from(batch_first), op)? as f32;
        if lens.values.iter().any(|&l| l != steps) {
            return Ok(Err(format!(
                "{op} with sequence_lens shorter than the sequence"
            )));
        }
    }
    // One direction's [G·u, …] matrix.
    let one_direction = |g: &mut Graph, m: NodeId| -> Result<NodeId> {
        let s = g.shape(m).to_vec();
        if s.len() < 2 {
            bail!("{op}: a weight of shape {s:?}; expected [directions, gates·units, …]");
        }
        Ok(g.reshape_to(m, &s[1..])?)
    };
    let u = dim(g, r, 2, "the recurrent weight R")?;
    let (w, r) = (one_direction(g, w)?, one_direction(g, r)?);
    let weights = if op == "LSTM" {
        lstm_weights_from_onnx(g, w, r, input(3), u)?
    } else {
        let gu = if op == "GRU" { 3 * u } else { u };
        let (input_bias, recurrent_bias) = match input(3) {
            Some(b) => {
                let halves = g.reshape_to(b, &[2, gu])?;
                let wb = g.slice(halves, 0, 0, 1)?;
                let rb = g.slice(halves, 0, 1, 2)?;
                (
                    Some(g.reshape_to(wb, &[gu])?),
                    Some(g.reshape_to(rb, &[gu])?),
                )
            }
            None => (None, None),
        };
        RecurrentWeights {
            kernel: w,
            recurrent: r,
            transposed: true,
            input_bias,
            recurrent_bias,
        }
    };
    let xb = if batch_first {
        x
    } else {
        g.permute(x, &[1, 0, 2])?
    };
    let batch = dim(g, xb, 0, "X")?;
    let state = |g: &mut Graph, i: usize| -> Result<Option<NodeId>> {
        match input(i) {
            Some(s) => {
                // [1, B, u] (or [B, 1, u] batch-first).
                Ok(Some(g.reshape_to(s, &[batch, u])?))
            }
            None => Ok(None),
        }
    };
    let (h0, c0) = (state(g, 5)?, state(g, 6)?);
    let out = match op {
        "LSTM" => {
            let peepholes = match input(7) {
                Some(p) => {
                    // i, o, f → i, f, o.
                    let p = g.reshape_to(p, &[3 * u])?;
                    let parts: Vec<NodeId> = [0, 2, 1]
                        .iter()
                        .map(|&k| g.slice(p, 0, k * u, (k + 1) * u))
                        .collect::<std::result::Result<_, _>>()?;
                    Some(g.concat(&parts, 0)?)
                }
                None => None,
            };
            let initial = match (h0, c0) {
                (None, None) => None,
                (h, c) => {
                    let zero = |g: &mut Graph| -> Result<NodeId> {
                        let z = g.scalar(0.0);
                        Ok(g.expand(z, &[batch, u])?)
                    };
                    let h = match h {
                        Some(h) => h,
                        None => zero(g)?,
                    };
                    let c = match c {
                        Some(c) => c,
                        None => zero(g)?,
                    };
                    Some((h, c))
                }
            };
            let opts = LstmOptions {
                activation: acts.get(1).copied().unwrap_or(UnaryOp::Tanh),
                recurrent_activation: acts.first().copied().unwrap_or(UnaryOp::Sigmoid),
                peepholes,
                return_sequences: true,
            };
            g.lstm(xb, &weights, initial, &opts)?
        }
        "GRU" => {
            let opts = GruOptions {
                activation: acts.get(1).copied().unwrap_or(UnaryOp::Tanh),
                recurrent_activation: acts.first().copied().unwrap_or(UnaryOp::Sigmoid),
                reset_after: attrs.get("linear_before_reset").and_then(Value::as_i64) == Some(1),
                return_sequences: true,
            };
            g.gru(xb, &weights, h0, &opts)?
        }
        _ => {
            let act = acts.first().copied().unwrap_or(UnaryOp::Tanh);
            g.simple_rnn(xb, &weights, h0, act, true)?
        }
    };
    let seq = out
        .sequence
        .ok_or_else(|| anyhow!("{op}: no sequence output"))?;
    let steps = dim(g, seq, 1, "the sequence output")?;
    // kiln's [B, T, u] as ONNX's Y, and the last states as Y_h, Y_c.
    let (y, last_shape) = if batch_first {
        (g.reshape_to(seq, &[batch, steps, 1, u])?, [batch, 1, u])
    } else {
        let s = g.reshape_to(seq, &[batch, steps, 1, u])?;
        (g.permute(s, &[1, 2, 0, 3])?, [1, batch, u])
    };
    let y_h = g.reshape_to(out.h, &last_shape)?;
    let mut outs = vec![y, y_h];
    if let Some(c) = out.c {
        outs.push(g.reshape_to(c, &last_shape)?);
    }
    Ok(Ok(outs))
}

/// [`LstmWeights::from_onnx`] as graph nodes over ONNX's `W` `[4u, in]`,
/// `R` `[4u, u]` and `B` `[1, 8u]`. The conversion is linear, so its
/// matrices are read off the library function itself (applied to the
/// identity, and to each unit bias) and applied as products: the runner
/// holds no copy of the gate order, and gradients flow back to ONNX's
/// layout.
fn lstm_weights_from_onnx(
    g: &mut Graph,
    w: NodeId,
    r: NodeId,
    b: Option<NodeId>,
    u: usize,
) -> Result<RecurrentWeights> {
    let gu = 4 * u;
    let unit = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| (i == k) as u8 as f32).collect() };
    let identity: Vec<f32> = (0..gu).flat_map(|k| unit(gu, k)).collect();
    // W = I as a [4u, 4u] input weight: the kernel is the gate map, [4u, 4u].
    let gate_map =
        LstmWeights::from_onnx(gu, u, &identity, &vec![0.0; gu * u], &vec![0.0; 2 * gu])?;
    let gate_map = g.constant(&gate_map.kernel, &[gu, gu])?;
    let kernel = g.matmul(w, gate_map, true, false)?;
    let recurrent = g.matmul(r, gate_map, true, false)?;
    let input_bias = match b {
        Some(b) => {
            // Row j: the bias that B's unit j becomes, [8u, 4u].
            let rows = (0..2 * gu)
                .map(|j| {
                    LstmWeights::from_onnx(
                        1,
                        u,
                        &vec![0.0; gu],
                        &vec![0.0; gu * u],
                        &unit(2 * gu, j),
                    )
                    .map(|l| l.bias)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
                .concat();
            let bias_map = g.constant(&rows, &[2 * gu, gu])?;
            let b = g.reshape_to(b, &[1, 2 * gu])?;
            let bias = g.matmul(b, bias_map, false, false)?;
            Some(g.reshape_to(bias, &[gu])?)
        }
        None => None,
    };
    Ok(RecurrentWeights {
        kernel,
        recurrent,
        transposed: false,
        input_bias,
        recurrent_bias: None,
    })
}

/// Axis `axis` of `node`'s shape, or an error naming `what` when the
/// case's tensor has fewer axes.
fn dim(g: &Graph, node: NodeId, axis: usize, what: &str) -> Result<usize> {
    g.shape(node).get(axis).copied().ok_or_else(|| {
        anyhow!(
            "{what} has shape {:?}; expected at least {} axes",
            g.shape(node),
            axis + 1
        )
    })
}

/// The window of an ONNX Conv or pooling on an NCHW input of shape `xs`:
/// `kernel_shape`, `strides`, `dilations`, and `pads` (begin, begin, end,
/// end, which is kiln's top, left, bottom, right) or the `auto_pad` rule.
fn onnx_window(attrs: &Value, xs: &[usize]) -> Result<Window2d> {
    let pair = |key: &str, default: usize| -> Result<[usize; 2]> {
        match attrs.get(key).and_then(int_list) {
            Some(v) if v.len() == 2 && v.iter().all(|&d| d >= 0) => {
                Ok([v[0] as usize, v[1] as usize])
            }
            Some(v) => bail!("attribute {key} = {v:?}: expected two non-negative sizes"),
            None => Ok([default; 2]),
        }
    };
    let kernel = match attrs.get("kernel_shape").and_then(int_list) {
        Some(_) => pair("kernel_shape", 1)?,
        None => bail!("kernel_shape is missing"),
    };
    let window = Window2d::new(kernel)
        .stride(pair("strides", 1)?)
        .dilation(pair("dilations", 1)?);
    let auto_pad = attrs
        .get("auto_pad")
        .and_then(Value::as_str)
        .unwrap_or("NOTSET");
    let pad = match auto_pad {
        "NOTSET" => match attrs.get("pads").and_then(int_list) {
            Some(p) if p.len() == 4 && p.iter().all(|&d| d >= 0) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => bail!("pads = {p:?}: expected four non-negative sizes"),
            None => [0; 4],
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            // Output ceil(in / stride); the padding that needs, the odd one
            // at the end (UPPER) or the beginning (LOWER).
            let mut pad = [0; 4];
            for axis in 0..2 {
                let input = xs[2 + axis];
                let out = input.div_ceil(window.stride[axis]);
                let span = (window.kernel[axis] - 1) * window.dilation[axis] + 1;
                let total = ((out - 1) * window.stride[axis] + span).saturating_sub(input);
                let small = total / 2;
                let (begin, end) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pad[axis] = begin;
                pad[axis + 2] = end;
            }
            pad
        }
        other => bail!("auto_pad {other:?}: expected NOTSET, VALID, SAME_UPPER or SAME_LOWER"),
    };
    Ok(window.pads(pad))
}

/// ONNX's max-pooling indices from kiln's plane-local ones (`h·W + w`):
/// flat over the whole NCHW tensor, the plane's `h` and `w` in row-major
/// (`storage_order` 0) or column-major (1) order.
fn onnx_indices(g: &mut Graph, local: NodeId, xs: &[usize], column_major: bool) -> Result<NodeId> {
    let (planes, h, w) = (xs[0] * xs[1], xs[2], xs[3]);
    let within = if column_major {
        // h = floor((l + ½) / W), w = l − h·W, index w·H + h.
        let half = g.unary(UnaryOp::AddScalar(0.5), local)?;
        let row = g.scale(half, 1.0 / w as f32)?;
        let row = g.unary(UnaryOp::Floor, row)?;
        let row_start = g.scale(row, w as f32)?;
        let col = g.sub(local, row_start)?;
        let col_start = g.scale(col, h as f32)?;
        g.add(col_start, row)?
    } else {
        local
    };
    let offsets: Vec<f32> = (0..planes).map(|p| (p * h * w) as f32).collect();
    let offsets = g.constant(&offsets, &[xs[0], xs[1], 1, 1])?;
    Ok(g.add(within, offsets)?)
}

/// The kiln optimizer, step and learning rate that make one update of an
/// ONNX training operator with learning rate `r` after `t` earlier updates;
/// the skip reason where no kiln optimizer makes it. The hyperparameter
/// words then come from [`Optimizer::hyper`], as in training.
///
/// ONNX counts updates from 0 and kiln's steps from 1, so Momentum and
/// Adagrad at `t` are kiln's step `t + 1`. Adam's bias correction uses `t`
/// itself, with none at `t = 0`: that is step 1 at a rate that cancels step
/// 1's correction.
fn onnx_optimizer(op: &str, attrs: &Value, r: f32, t: f32) -> Result<Built<(Optimizer, f32, u64)>> {
    if t < 0.0 || t.fract() != 0.0 {
        bail!("{op}: T is {t}; expected a whole number of earlier updates");
    }
    let t = t as u64;
    let attr = |k: &str, d: f64| attrs.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
    let l2 = attr("norm_coefficient", 0.0);
    let found = match op {
        "Adam" => {
            if attr("norm_coefficient_post", 0.0) != 0.0 {
                return Ok(Err("Adam with norm_coefficient_post: ONNX scales the updated X, step included, by (1 − post); kiln's decoupled decay (AdamW) shrinks X alone".into()));
            }
            let (alpha, beta) = (attr("alpha", 0.9), attr("beta", 0.999));
            let opt = Optimizer::Adam {
                lr: r,
                beta1: alpha,
                beta2: beta,
                eps: attr("epsilon", 1e-6),
                weight_decay: l2,
                decoupled: false,
                convention: EpsilonConvention::Keras,
            };
            let lr = match t {
                0 => (r as f64 * (1.0 - alpha as f64) / (1.0 - beta as f64).sqrt()) as f32,
                _ => r,
            };
            (opt, lr, t.max(1))
        }
        "Momentum" => {
            let nesterov = match attrs.get("mode").and_then(Value::as_str) {
                Some("nesterov") => true,
                Some("standard") | None => false,
                Some(m) => {
                    return Ok(Err(format!(
                        "Momentum mode {m:?}: kiln has standard and nesterov"
                    )))
                }
            };
            let opt = Optimizer::sgd(r)
                .with_momentum(attr("alpha", 0.9), nesterov)
                .with_dampening(1.0 - attr("beta", 1.0))
                .with_weight_decay(l2);
            (opt, r, t + 1)
        }
        "Adagrad" => {
            let opt = Optimizer::Adagrad {
                lr: r,
                lr_decay: attr("decay_factor", 0.0),
                eps: attr("epsilon", 1e-6),
                weight_decay: l2,
            };
            (opt, r, t + 1)
        }
        _ => return Ok(Err(format!("op {op} is not an optimizer"))),
    };
    Ok(Ok(found))
}

fn run_case(device: &Device, path: &Path, options: PlanOptions) -> Result<Outcome> {
    let bytes = std::fs::read(path)?;
    let (_, header) = SafeTensors::read_metadata(&bytes)?;
    let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes)?;
    let op = meta
        .get("op")
        .cloned()
        .ok_or_else(|| anyhow!("metadata \"op\" is missing; expected an ONNX op name"))?;
    let attrs = json(&meta, "attrs")?;
    const NAMES: &str = "a list of tensor names (or nulls for absent slots)";
    let input_names: Vec<Option<String>> = field(&meta, "inputs", NAMES, true)?;
    let output_names: Vec<Option<String>> = field(&meta, "outputs", NAMES, true)?;
    let grads: HashMap<String, String> = field(
        &meta,
        "grads",
        "an object of input names to gradient tensor names",
        false,
    )?;
    let seeds: Vec<Option<String>> = field(&meta, "seeds", NAMES, !grads.is_empty())?;
    let tol = |k: &str, d: f32| meta.get(k).and_then(|s| s.parse::<f32>().ok()).unwrap_or(d);
    let (rtol, atol) = (tol("rtol", 1e-4), tol("atol", 1e-5));
    let (grtol, gatol) = (tol("grad_rtol", rtol), tol("grad_atol", atol));

    let mut g = Graph::new();
    let mut feeds: Vec<(String, Vec<f32>)> = Vec::new();
    let mut ins = Vec::new();
    let mut consts = Vec::new();
    for name in &input_names {
        match name {
            None => {
                ins.push(None);
                consts.push(None);
            }
            Some(n) => {
                let d = load(&st, n)?;
                ins.push(Some(g.input(n, &d.shape)));
                feeds.push((n.clone(), d.values.clone()));
                consts.push(Some(d));
            }
        }
    }
    let outs = match build(device, &mut g, &op, &attrs, &ins, &consts) {
        Ok(Ok(o)) => o,
        Ok(Err(skip)) => return Ok(Outcome::Skipped(skip)),
        Err(e) => return Ok(Outcome::Failed(format!("building the op: {e:#}"))),
    };
    let mut targets: Vec<(String, NodeId, f32, f32)> = Vec::new();
    for (slot, name) in output_names.iter().enumerate() {
        let Some(name) = name else { continue };
        let Some(&node) = outs.get(slot) else {
            return Ok(Outcome::Failed(format!(
                "{name}: output {slot} of {op} is not produced (kiln builds {} outputs)",
                outs.len()
            )));
        };
        targets.push((name.clone(), node, rtol, atol));
    }
    if !grads.is_empty() {
        let mut seed_nodes = Vec::new();
        for (slot, s) in seeds.iter().enumerate() {
            let Some(s) = s else { continue };
            let Some(&out) = outs.get(slot) else {
                bail!("seed {s:?} is for output {slot}, which {op} does not produce");
            };
            let d = load(&st, s)?;
            seed_nodes.push((out, g.input(s, &d.shape)));
            feeds.push((s.clone(), d.values));
        }
        if seed_nodes.is_empty() {
            bail!("grads are asked for but no seed names an output to start from");
        }
        let mut wrt = Vec::new();
        let mut wanted = Vec::new();
        for (input, grad_name) in &grads {
            let pos = input_names
                .iter()
                .position(|n| n.as_deref() == Some(input.as_str()));
            let Some(node) = pos.and_then(|p| ins[p]) else {
                bail!("grads names unknown input {input:?}")
            };
            wrt.push(node);
            wanted.push(grad_name.clone());
        }
        let gnodes = g.backward(&seed_nodes, &wrt)?;
        for (name, node) in wanted.into_iter().zip(gnodes) {
            targets.push((name, node, grtol, gatol));
        }
    }
    if targets.is_empty() {
        return Ok(Outcome::Failed(
            "nothing to compare: the case names no output and no gradient".into(),
        ));
    }
    // A target that is a parameter is state an update rewrote in place: it
    // is read from the parameter after the run, every other from the plan.
    let param_of = |node: NodeId| match &g.node(node).op {
        Op::Param { param, .. } => Some(param.clone()),
        _ => None,
    };
    let nodes: Vec<NodeId> = targets
        .iter()
        .map(|t| t.1)
        .filter(|&n| param_of(n).is_none())
        .collect();
    let mut plan = Plan::compile_with(device, &g, &nodes, options)?;
    let feed_refs: Vec<(&str, &[f32])> = feeds
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let mut computed = plan.run(&feed_refs)?.into_iter();
    for (name, node, rt, at) in &targets {
        let values = match param_of(*node) {
            Some(p) => p.values()?,
            None => computed
                .next()
                .ok_or_else(|| anyhow!("the plan returned fewer outputs than asked for"))?,
        };
        let want = load(&st, name)?;
        if g.shape(*node) != want.shape.as_slice() {
            return Ok(Outcome::Failed(format!(
                "{name}: shape {:?}, expected {:?}",
                g.shape(*node),
                want.shape
            )));
        }
        if values.len() != want.values.len() {
            return Ok(Outcome::Failed(format!(
                "{name}: {} values computed, {} expected",
                values.len(),
                want.values.len()
            )));
        }
        let worst = values
            .iter()
            .zip(&want.values)
            .enumerate()
            .map(|(i, (&a, &b))| (i, (a - b).abs() - (at + rt * b.abs()), a, b))
            .fold((0, f32::NEG_INFINITY, 0.0, 0.0), |w, c| {
                if c.1 > w.1 || c.1.is_nan() {
                    c
                } else {
                    w
                }
            });
        if worst.1 > 0.0 || worst.1.is_nan() {
            return Ok(Outcome::Failed(format!(
                "{name}[{}]: got {}, want {}",
                worst.0, worst.2, worst.3
            )));
        }
    }
    if computed.next().is_some() {
        bail!("the plan returned more outputs than asked for");
    }
    Ok(Outcome::Passed)
}
