//! The graph model code builds, with what layers need to know while they add
//! their nodes: whether the graph trains (dropout on, batch statistics), the
//! step counter dropout masks draw from, and the gradients `backward` found.
//! A [`Tape`] is a shared handle: every [`Var`](crate::Var) made from it
//! holds it, so an op on two vars of different tapes is an error, not a mix.

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{GraphError, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::params::Param;
use crate::var::Var;

/// The name of the per-run input holding the training step number, which
/// dropout masks are drawn from.
pub const STEP_INPUT: &str = "kiln.step";

/// How the graph under construction will be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout on, batch norm on batch statistics; with `update_state`,
    /// batch norm also moves its running statistics.
    Train { update_state: bool },
    /// Dropout off, batch norm on running statistics.
    Eval,
}

/// Computes an input's values before each run of a compiled step.
pub type Feeder = Rc<dyn Fn() -> Vec<f32>>;

pub(crate) struct TapeData {
    pub graph: Graph,
    pub mode: Mode,
    step: Option<NodeId>,
    /// Gradients from `backward`, by parameter.
    grads: Vec<(Param, NodeId)>,
    /// Inputs whose values are computed at each run (optimizer hyperparameters).
    feeders: Vec<(String, Feeder)>,
}

/// A graph under construction, shared by the vars made from it.
///
/// ```
/// # use kiln_graph::*;
/// let tape = Tape::new(Mode::Eval);
/// let x = tape.input("x", &[2, 3]);
/// let y = x.relu()?.sum(&[1], false)?;
/// assert_eq!(y.shape(), &[2]);
/// # Ok::<(), GraphError>(())
/// ```
#[derive(Clone)]
pub struct Tape {
    data: Rc<RefCell<TapeData>>,
}

impl Tape {
    pub fn new(mode: Mode) -> Self {
        Self {
            data: Rc::new(RefCell::new(TapeData {
                graph: Graph::new(),
                mode,
                step: None,
                grads: Vec::new(),
                feeders: Vec::new(),
            })),
        }
    }

    pub fn mode(&self) -> Mode {
        self.data.borrow().mode
    }

    /// True when the graph trains (dropout on, batch statistics).
    pub fn training(&self) -> bool {
        matches!(self.mode(), Mode::Train { .. })
    }

    /// True when training layers should move their state (running statistics).
    pub fn updates_state(&self) -> bool {
        self.mode() == Mode::Train { update_state: true }
    }

    /// Runs `f` on the graph.
    pub fn with_graph<T>(&self, f: impl FnOnce(&mut Graph) -> T) -> T {
        f(&mut self.data.borrow_mut().graph)
    }

    /// A copy of the graph built so far.
    pub fn graph(&self) -> Graph {
        self.data.borrow().graph.clone()
    }

    /// True when both handles are the same tape.
    pub fn same(&self, other: &Tape) -> bool {
        Rc::ptr_eq(&self.data, &other.data)
    }

    /// The var of node `id`.
    pub fn var(&self, id: NodeId) -> Result<Var> {
        let shape = self.with_graph(|g| {
            g.check("var", &[id])?;
            Ok::<_, GraphError>(g.shape(id).to_vec())
        })?;
        Ok(Var::new(self.clone(), id, shape))
    }

    /// A value fed at every run, by name.
    pub fn input(&self, name: &str, shape: &[usize]) -> Var {
        let id = self.with_graph(|g| g.input(name, shape));
        Var::new(self.clone(), id, shape.to_vec())
    }

    /// A parameter: differentiated when it is trainable.
    pub fn param(&self, p: &Param) -> Var {
        let id = self.with_graph(|g| g.param_node(p));
        Var::new(self.clone(), id, p.shape().to_vec())
    }

    /// A parameter read and never differentiated (buffers, optimizer state).
    pub fn frozen(&self, p: &Param) -> Var {
        let id = self.with_graph(|g| g.frozen(p));
        Var::new(self.clone(), id, p.shape().to_vec())
    }

    /// A constant tensor.
    pub fn constant(&self, values: &[f32], shape: &[usize]) -> Result<Var> {
        let id = self.with_graph(|g| g.constant(values, shape))?;
        Ok(Var::new(self.clone(), id, shape.to_vec()))
    }

    /// A scalar constant (shape `[]`).
    pub fn scalar(&self, value: f32) -> Var {
        let id = self.with_graph(|g| g.scalar(value));
        Var::new(self.clone(), id, vec![])
    }

    /// The per-run step counter dropout masks draw from (the input
    /// [`STEP_INPUT`], shape `[1]`).
    pub fn step(&self) -> Var {
        let mut data = self.data.borrow_mut();
        let id = match data.step {
            Some(id) => id,
            None => {
                let id = data.graph.input(STEP_INPUT, &[1]);
                data.step = Some(id);
                id
            }
        };
        drop(data);
        Var::new(self.clone(), id, vec![1])
    }

    /// An input whose values `feed` computes before every run of the
    /// compiled step (an optimizer's learning rate and step count).
    pub fn fed_input(&self, name: &str, shape: &[usize], feed: Feeder) -> Var {
        let v = self.input(name, shape);
        self.data
            .borrow_mut()
            .feeders
            .push((name.to_string(), feed));
        v
    }

    /// The inputs registered with [`Tape::fed_input`].
    pub fn feeders(&self) -> Vec<(String, Feeder)> {
        self.data.borrow().feeders.clone()
    }

    /// The trainable parameters the graph reads, in the order it first reads them.
    pub fn trainable_params(&self) -> Vec<(Param, NodeId)> {
        self.with_graph(|g| {
            let mut out: Vec<(Param, NodeId)> = Vec::new();
            for (i, node) in g.nodes().iter().enumerate() {
                if let Op::Param {
                    param,
                    trainable: true,
                } = &node.op
                {
                    if !out.iter().any(|(p, _)| p == param) {
                        out.push((param.clone(), g.id_at(i)));
                    }
                }
            }
            out
        })
    }

    pub(crate) fn set_grads(&self, grads: Vec<(Param, NodeId)>) {
        self.data.borrow_mut().grads = grads;
    }

    /// The gradients `backward` appended, by parameter.
    pub fn grads(&self) -> Vec<(Param, NodeId)> {
        self.data.borrow().grads.clone()
    }

    /// The gradient of `p`, once `backward` has run.
    pub fn grad(&self, p: &Param) -> Option<Var> {
        let id = self
            .data
            .borrow()
            .grads
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, id)| *id)?;
        self.var(id).ok()
    }
}
