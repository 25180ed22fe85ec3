//! Training loops written by hand, PyTorch's way: build the step once from
//! a forward pass, `loss.backward()` and `optimizer.step(&loss)`, then run
//! it batch after batch. The step is one compiled plan, replayed as one
//! submission per run like `fit`'s.

use std::cell::RefCell;
use std::rc::Rc;

use kiln_backend::Device;
use kiln_graph::{Mode, Plan, PlanStats, Tape, Var, HYPER_WORDS, STEP_INPUT};

use crate::error::{ModelError, Result};
use crate::optimizer::Optimizer;
use crate::optimizer_state::OptimizerState;

struct OptimState {
    lr: f32,
    t: u64,
    state: OptimizerState,
}

/// An optimizer for hand-written loops: its state lives on the device,
/// created for each parameter it steps, and its step count advances every
/// run of the compiled step.
///
/// ```no_run
/// use kiln_models::{Linear, Module, Optim, Optimizer, TrainStep};
/// let device = kiln_backend::Device::auto()?;
/// let fc = Linear::new(&device, 3, 1)?;
/// let opt = Optim::new(&device, Optimizer::sgd(0.1))?;
/// let mut step = TrainStep::new(&device, |tape| {
///     let (x, y) = (tape.input("x", &[4, 3]), tape.input("y", &[4, 1]));
///     let loss = (&fc.forward(&x)? - &y)?.square()?.mean_all()?;
///     loss.backward()?;
///     opt.step(&loss)?;
///     Ok(vec![loss])
/// })?;
/// let out = step.run(&[("x", &[0.5; 12]), ("y", &[1.0; 4])])?;
/// println!("loss {}", out[0][0]);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Clone)]
pub struct Optim {
    device: Device,
    state: Rc<RefCell<OptimState>>,
    id: u64,
}

impl Optim {
    pub fn new(device: &Device, config: Optimizer) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            device: device.clone(),
            state: Rc::new(RefCell::new(OptimState {
                lr: config.learning_rate(),
                t: 0,
                state: OptimizerState::new(config),
            })),
            id: crate::rng::next_seed(),
        })
    }

    /// Changes the learning rate of the next runs (no recompilation).
    pub fn set_learning_rate(&self, lr: f32) -> Result<()> {
        crate::optimizer::check_learning_rate(lr)?;
        self.state.borrow_mut().lr = lr;
        Ok(())
    }

    /// Steps taken (runs of the compiled steps that use this optimizer).
    pub fn steps(&self) -> u64 {
        self.state.borrow().t
    }

    /// Appends an update of every parameter `loss.backward()` found a
    /// gradient for. Each run of the compiled step then takes one step.
    pub fn step(&self, loss: &Var) -> Result<()> {
        let tape = loss.tape();
        let grads = tape.grads();
        if grads.is_empty() {
            return Err(ModelError::Settings(
                "optimizer.step() found no gradients: call loss.backward() first".into(),
            ));
        }
        let state = self.state.clone();
        let hyper = tape.fed_input(
            &format!("kiln.hyper.{}", self.id),
            &[HYPER_WORDS],
            Rc::new(move || {
                let mut s = state.borrow_mut();
                s.t += 1;
                s.state.optimizer().hyper(s.lr, s.t).to_vec()
            }),
        );
        let mut s = self.state.borrow_mut();
        for (p, g) in grads {
            tape.with_graph(|graph| {
                let node = graph.param_node(&p);
                s.state
                    .append_step(&self.device, graph, (&p, node, g), hyper.id())
            })?;
        }
        Ok(())
    }
}

/// A training step built once by a closure and replayed.
pub struct TrainStep {
    plan: Plan,
    tape: Tape,
    draws: u64,
}

impl TrainStep {
    /// Builds the step in training mode: `build` adds the forward pass,
    /// calls `backward` and the optimizers' `step`, and returns the vars to
    /// read back after each run (the loss, say).
    pub fn new(device: &Device, build: impl FnOnce(&Tape) -> Result<Vec<Var>>) -> Result<Self> {
        let tape = Tape::new(Mode::Train { update_state: true });
        let outputs = build(&tape)?;
        let ids: Vec<_> = outputs.iter().map(Var::id).collect();
        let plan = Plan::compile(device, &tape.graph(), &ids)?;
        Ok(Self {
            plan,
            tape,
            draws: 0,
        })
    }

    /// Runs one step on `feeds` (the inputs by name) in one submission and
    /// returns the outputs' values.
    pub fn run(&mut self, feeds: &[(&str, &[f32])]) -> Result<Vec<Vec<f32>>> {
        let computed: Vec<(String, Vec<f32>)> = self
            .tape
            .feeders()
            .into_iter()
            .map(|(name, feed)| (name, feed()))
            .collect();
        let step = [self.draws as f32];
        let mut all: Vec<(&str, &[f32])> = feeds.to_vec();
        all.extend(computed.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        if self.plan.input_shapes().any(|(n, _)| n == STEP_INPUT) {
            all.push((STEP_INPUT, &step));
        }
        let out = self.plan.run(&all)?;
        self.draws += 1;
        Ok(out)
    }

    pub fn stats(&self) -> PlanStats {
        self.plan.stats()
    }
}
