//! `Model::summary`: a Keras-like table of the module tree, with output
//! shapes and parameter counts, in columns sized to their content.

use kiln_graph::{Mode, Param, Tape};

use super::Model;
use crate::error::Result;
use crate::module::{walk, Entry, Module, ModuleExt};

/// `(None, 28, 28)`, Keras' way of writing a batch of samples' shape.
fn batch_shape_text(sample: &[usize]) -> String {
    let dims: Vec<String> = sample.iter().map(|d| d.to_string()).collect();
    format!("(None, {})", dims.join(", "))
}

/// The rows' cells in columns as wide as their widest cell, two spaces
/// apart; the last column (counts) right-aligned.
fn columns(rows: &[[String; 3]]) -> Vec<String> {
    let width = |k: usize| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    rows.iter()
        .map(|[a, b, c]| {
            format!("{a:<w0$}  {b:<w1$}  {c:>w2$}")
                .trim_end()
                .to_string()
        })
        .collect()
}

/// The number of parameter values in `m` and its children.
fn parameters_under(m: &dyn Module) -> usize {
    let mut count = 0;
    walk(m, "", &mut |e| {
        if let Entry::Param(_, p) = e {
            count += p.numel();
        }
    });
    count
}

impl<M: Module> Model<M> {
    /// A Keras-like table: the module tree as its names give it (children
    /// indented under their parent, as `named_modules` walks them), each
    /// with its output shape where the module reports it (the layers of a
    /// stack) and its parameter count; the totals; and, once compiled, the
    /// training step's planned memory.
    pub fn summary(&mut self) -> Result<String> {
        let tape = Tape::new(Mode::Eval);
        let x = tape.input("x", &self.batch_shape(1));
        let mut traced: Vec<(String, Vec<usize>)> = Vec::new();
        let y = self.module.trace(&x, &mut |name, _, y| {
            traced.push((name.to_string(), y.shape()[1..].to_vec()));
        })?;
        let mut rows = vec![
            [
                "Layer (type)".to_string(),
                "Output Shape".into(),
                "Param #".into(),
            ],
            [
                format!("model ({})", self.module.kind()),
                batch_shape_text(&y.shape()[1..]),
                self.module.num_parameters().to_string(),
            ],
        ];
        walk(&self.module, "", &mut |e| {
            let Entry::Module(name, m) = e else { return };
            let depth = name.matches('.').count() + 1;
            let shape = traced
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(String::new, |(_, s)| batch_shape_text(s));
            let leaf = name.rsplit('.').next().unwrap_or(&name);
            rows.push([
                format!("{}{leaf} ({})", "  ".repeat(depth), m.kind()),
                shape,
                parameters_under(m).to_string(),
            ]);
        });
        let mut lines = columns(&rows);
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
