//! The [`Module`] trait, PyTorch's `nn.Module` in Rust: a `forward` from a
//! [`Var`] to a `Var`, and a `visit` that lists the module's parameters,
//! buffers and children under their names. Everything else — dotted names
//! as PyTorch's `state_dict()` prints them, loading and saving, freezing,
//! train/eval — is derived from those two by [`ModuleExt`], for every module.
//!
//! ```
//! use kiln_models::{Linear, Module, ModuleExt, Result, Visitor};
//! use kiln_graph::Var;
//!
//! /// y = relu(fc2(relu(fc1(x))) + x): a residual block.
//! struct Residual {
//!     fc1: Linear,
//!     fc2: Linear,
//! }
//!
//! impl Module for Residual {
//!     fn forward(&self, x: &Var) -> Result<Var> {
//!         let h = self.fc1.forward(x)?.relu()?;
//!         Ok((&self.fc2.forward(&h)? + x)?.relu()?)
//!     }
//!     fn visit(&self, v: &mut dyn Visitor) {
//!         v.module("fc1", &self.fc1);
//!         v.module("fc2", &self.fc2);
//!     }
//! }
//!
//! let device = kiln_backend::Device::auto()?;
//! let block = Residual { fc1: Linear::new(&device, 8, 8)?, fc2: Linear::new(&device, 8, 8)? };
//! let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
//! block.fc1.freeze();
//! assert!(!block.fc1.weight.is_trainable());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ModelError, Result};
use crate::state_dict::{load_err, StateDict};
use kiln_graph::{Param, Var};

/// A layer or a model: anything with a forward pass and named state.
/// Modules are `Send + Sync` (as Burn's are), so that a model can be moved
/// to another thread and trained there; state a module switches through
/// `&self` (its train or eval mode) is atomic.
pub trait Module: Send + Sync {
    /// Adds this module's nodes for input `x` to `x`'s graph.
    fn forward(&self, x: &Var) -> Result<Var>;

    /// Lists the parameters, buffers and children, in the order PyTorch's
    /// `state_dict()` lists them: own parameters, own buffers, then children.
    fn visit(&self, v: &mut dyn Visitor) {
        let _ = v;
    }

    /// Switches this module's own training behaviour (dropout, batch
    /// statistics); [`ModuleExt::train`] and [`ModuleExt::eval`] call it on
    /// every module of a tree.
    fn set_training(&self, on: bool) {
        let _ = on;
    }

    /// The module's type, for summaries (`Linear`, `Conv2d`).
    fn kind(&self) -> String {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base).to_string()
    }

    /// [`Module::forward`], reporting each direct child's output on the
    /// way (name, child, output) where the children run one after another:
    /// summaries use it to show every layer's output shape. By default
    /// nothing is reported.
    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        let _ = report;
        self.forward(x)
    }

    /// The two parts of a module computing `head(features(x))`, when it
    /// is one (a classifier on a backbone). `fit` computes the features
    /// once per sample and trains the head alone when the features are a
    /// fixed function of the input: nothing trainable, no dropout, no
    /// running statistics moving (a frozen backbone in eval mode).
    fn split_head(&self) -> Option<(&dyn Module, &dyn Module)> {
        None
    }
}

/// A module lent to a model for a while (the feature cache trains a model
/// of a borrowed head).
pub(crate) struct Lent<'a>(pub &'a dyn Module);

impl Module for Lent<'_> {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.0.forward(x)
    }
    fn visit(&self, v: &mut dyn Visitor) {
        self.0.visit(v)
    }
    fn set_training(&self, on: bool) {
        self.0.set_training(on)
    }
    fn kind(&self) -> String {
        self.0.kind()
    }
    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        self.0.trace(x, report)
    }
}

/// What [`Module::visit`] reports to.
pub trait Visitor {
    /// A learnable parameter.
    fn param(&mut self, name: &str, p: &Param);
    /// State that is saved but not learned (running statistics, counters).
    fn buffer(&mut self, name: &str, p: &Param);
    /// A child module.
    fn module(&mut self, name: &str, m: &dyn Module);
}

/// One named entry of a module tree.
pub enum Entry<'a> {
    Param(String, &'a Param),
    Buffer(String, &'a Param),
    Module(String, &'a dyn Module),
}

/// Calls `f` with every parameter, buffer and module of the tree under `m`
/// (children included, pre-order), with dotted names.
pub fn walk(m: &dyn Module, prefix: &str, f: &mut dyn FnMut(Entry<'_>)) {
    struct Walker<'f> {
        prefix: String,
        f: &'f mut dyn FnMut(Entry<'_>),
    }
    impl Walker<'_> {
        fn name(&self, n: &str) -> String {
            if self.prefix.is_empty() {
                n.to_string()
            } else {
                format!("{}.{n}", self.prefix)
            }
        }
    }
    impl Visitor for Walker<'_> {
        fn param(&mut self, name: &str, p: &Param) {
            let n = self.name(name);
            (self.f)(Entry::Param(n, p));
        }
        fn buffer(&mut self, name: &str, p: &Param) {
            let n = self.name(name);
            (self.f)(Entry::Buffer(n, p));
        }
        fn module(&mut self, name: &str, m: &dyn Module) {
            let n = self.name(name);
            (self.f)(Entry::Module(n.clone(), m));
            let mut inner = Walker {
                prefix: n,
                f: &mut *self.f,
            };
            m.visit(&mut inner);
        }
    }
    let mut w = Walker {
        prefix: prefix.to_string(),
        f,
    };
    m.visit(&mut w);
}

/// [`StateDict::of`] lives beside the module tree it walks, so that the
/// state dict's file formats need nothing of modules.
impl StateDict {
    /// The tensors of a module tree, as its `state_dict`.
    pub fn of(m: &dyn Module) -> Result<Self> {
        let mut entries = Vec::new();
        walk(m, "", &mut |e| match e {
            Entry::Param(n, p) | Entry::Buffer(n, p) => entries.push((n, p.clone())),
            Entry::Module(..) => {}
        });
        let mut tensors = BTreeMap::new();
        for (name, p) in entries {
            tensors.insert(name, (p.shape().to_vec(), p.values()?));
        }
        Ok(Self { tensors })
    }
}

/// Everything a module tree offers through [`Module::visit`].
pub trait ModuleExt: Module {
    /// Every parameter with its dotted name (trainable or frozen), in
    /// `state_dict` order.
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        walk(self.as_dyn(), "", &mut |e| {
            if let Entry::Param(n, p) = e {
                out.push((n, p.clone()));
            }
        });
        out
    }

    /// Every buffer (running statistics, counters) with its dotted name.
    fn named_buffers(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        walk(self.as_dyn(), "", &mut |e| {
            if let Entry::Buffer(n, p) = e {
                out.push((n, p.clone()));
            }
        });
        out
    }

    /// Parameters and buffers, as PyTorch's `state_dict()` names and orders them.
    fn state_dict(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        walk(self.as_dyn(), "", &mut |e| match e {
            Entry::Param(n, p) | Entry::Buffer(n, p) => out.push((n, p.clone())),
            Entry::Module(..) => {}
        });
        out
    }

    /// Every sub-module with its dotted name, pre-order.
    fn named_modules(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.as_dyn(), "", &mut |e| {
            if let Entry::Module(n, _) = e {
                out.push(n);
            }
        });
        out
    }

    /// Total element count of the parameters (trainable and frozen).
    fn num_parameters(&self) -> usize {
        self.named_parameters().iter().map(|(_, p)| p.numel()).sum()
    }

    /// Copies `source`'s tensors into the module's parameters and buffers.
    /// Every missing, unexpected or mis-shaped tensor is reported, by name,
    /// in one error; with `strict` false, missing and unexpected ones are
    /// allowed (mis-shaped ones never are). Nothing is written unless
    /// everything checks.
    fn load_state_dict(&self, source: &StateDict, strict: bool) -> Result<()> {
        let own = self.state_dict();
        let mut missing = Vec::new();
        let mut mismatched = Vec::new();
        let mut writes = Vec::new();
        for (name, p) in &own {
            match source.tensors.get(name) {
                None => missing.push(name.clone()),
                Some((shape, values)) => {
                    let same = shape == p.shape()
                        || (shape.iter().product::<usize>() == 1
                            && p.numel() == 1
                            && p.is_integer());
                    if !same {
                        mismatched.push(format!("{name} (file {shape:?}, model {:?})", p.shape()));
                    } else {
                        writes.push((p, values));
                    }
                }
            }
        }
        let unexpected: Vec<String> = source
            .tensors
            .keys()
            .filter(|k| !own.iter().any(|(n, _)| n == *k))
            .cloned()
            .collect();
        let fatal =
            !mismatched.is_empty() || (strict && (!missing.is_empty() || !unexpected.is_empty()));
        if fatal {
            return Err(ModelError::StateDict {
                missing: if strict { missing } else { vec![] },
                unexpected: if strict { unexpected } else { vec![] },
                mismatched,
            });
        }
        for (p, values) in writes {
            p.write(values)?;
        }
        Ok(())
    }

    /// [`ModuleExt::load_state_dict`] from a safetensors file.
    fn load_safetensors(&self, path: impl AsRef<Path>, strict: bool) -> Result<()>
    where
        Self: Sized,
    {
        let path = path.as_ref();
        let sd = StateDict::read_safetensors(path)?;
        self.load_state_dict(&sd, strict).map_err(|e| match e {
            ModelError::StateDict { .. } => load_err(path, e.to_string()),
            other => other,
        })
    }

    /// Loads a weights file, safetensors or PyTorch `.pth` (see
    /// [`StateDict::read`]), reporting missing, unexpected and mis-shaped
    /// tensors by name.
    fn load_weights(&self, path: impl AsRef<Path>, strict: bool) -> Result<()>
    where
        Self: Sized,
    {
        let path = path.as_ref();
        let sd = StateDict::read(path)?;
        self.load_state_dict(&sd, strict).map_err(|e| match e {
            ModelError::StateDict { .. } => load_err(path, e.to_string()),
            other => other,
        })
    }

    /// Writes the state dict to a safetensors file (counters as I64).
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()>
    where
        Self: Sized,
    {
        let path = path.as_ref();
        let integers: Vec<String> = self
            .state_dict()
            .into_iter()
            .filter(|(_, p)| p.is_integer())
            .map(|(n, _)| n)
            .collect();
        let bytes = StateDict::of(self.as_dyn())?.to_safetensors_bytes(&integers)?;
        crate::checkpoint::write_atomic(path, &bytes, None)
    }

    /// Training behaviour on (dropout, batch statistics), for the whole tree.
    fn train(&self) {
        self.set_training(true);
        walk(self.as_dyn(), "", &mut |e| {
            if let Entry::Module(_, m) = e {
                m.set_training(true);
            }
        });
    }

    /// Inference behaviour (no dropout, running statistics), for the whole tree.
    fn eval(&self) {
        self.set_training(false);
        walk(self.as_dyn(), "", &mut |e| {
            if let Entry::Module(_, m) = e {
                m.set_training(false);
            }
        });
    }

    /// Whether the tree's parameters are trained (PyTorch's
    /// `requires_grad_(on)`). Frozen parameters get no gradient, no backward
    /// nodes and no optimizer state.
    fn requires_grad(&self, on: bool) {
        for (_, p) in self.named_parameters() {
            p.set_trainable(on);
        }
    }

    /// `requires_grad(false)`.
    fn freeze(&self) {
        self.requires_grad(false);
    }

    /// `requires_grad(true)`.
    fn unfreeze(&self) {
        self.requires_grad(true);
    }

    #[doc(hidden)]
    fn as_dyn(&self) -> &dyn Module;
}

impl<M: Module> ModuleExt for M {
    fn as_dyn(&self) -> &dyn Module {
        self
    }
}

impl Module for Box<dyn Module> {
    fn forward(&self, x: &Var) -> Result<Var> {
        (**self).forward(x)
    }
    fn visit(&self, v: &mut dyn Visitor) {
        (**self).visit(v)
    }
    fn set_training(&self, on: bool) {
        (**self).set_training(on)
    }
    fn kind(&self) -> String {
        (**self).kind()
    }
    fn trace(&self, x: &Var, report: &mut dyn FnMut(&str, &dyn Module, &Var)) -> Result<Var> {
        (**self).trace(x, report)
    }
    fn split_head(&self) -> Option<(&dyn Module, &dyn Module)> {
        (**self).split_head()
    }
}
