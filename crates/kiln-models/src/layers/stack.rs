//! [`Stack`]: modules applied in order (PyTorch's `nn.Sequential`).

use kiln_graph::Var;

use crate::error::{ModelError, Result};
use crate::module::{Module, Visitor};

/// Named modules applied one after the other.
///
/// ```
/// use kiln_models::{Activation, Linear, Stack, ModuleExt};
/// let device = kiln_backend::Device::auto()?;
/// let net = Stack::new()
///     .append(Linear::new(&device, 4, 8)?)
///     .append(Activation::Relu)
///     .append(Linear::new(&device, 8, 2)?);
/// let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Default)]
pub struct Stack {
    layers: Vec<(String, Box<dyn Module>)>,
}

impl Stack {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module named by its position (`0`, `1`, …).
    pub fn append(mut self, m: impl Module + 'static) -> Self {
        let name = self.layers.len().to_string();
        self.layers.push((name, Box::new(m)));
        self
    }

    /// Appends a module under `name`; names must be unique.
    pub fn push(&mut self, name: &str, m: Box<dyn Module>) -> Result<()> {
        if name.is_empty() || name.contains('.') || self.layers.iter().any(|(n, _)| n == name) {
            return Err(ModelError::Settings(format!(
                "layer name {name:?} must be non-empty, without dots, and unique"
            )));
        }
        self.layers.push((name.to_string(), m));
        Ok(())
    }

    /// Replaces the module `name` (the transfer-learning head swap) and
    /// returns the old one.
    pub fn replace(&mut self, name: &str, m: Box<dyn Module>) -> Result<Box<dyn Module>> {
        match self.layers.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(std::mem::replace(&mut self.layers[i].1, m)),
            None => Err(ModelError::NotFound {
                kind: "layer",
                name: name.to_string(),
                available: self.layers.iter().map(|(n, _)| n.clone()).collect(),
            }),
        }
    }

    /// The module `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Module> {
        self.layers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_ref())
    }

    /// (name, module) in order.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &dyn Module)> {
        self.layers.iter().map(|(n, m)| (n.as_str(), m.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Stack {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.trace(x, &mut |_, _, _| {})
    }

    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        let mut h = x.clone();
        for (name, m) in &self.layers {
            h = m.forward(&h).map_err(|e| match e {
                // A nested stack's layer: one dotted name, as state dicts say it.
                ModelError::Layer { layer, error } => ModelError::Layer {
                    layer: format!("{name}.{layer}"),
                    error,
                },
                error => ModelError::Layer {
                    layer: name.clone(),
                    error: Box::new(error),
                },
            })?;
            report(name, m.as_ref(), &h);
        }
        Ok(h)
    }

    fn visit(&self, v: &mut dyn Visitor) {
        for (name, m) in &self.layers {
            v.module(name, m.as_ref());
        }
    }
}
