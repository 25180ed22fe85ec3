//! kiln-graph: the computation graph. Model code adds nodes (shapes checked as
//! they are added), [`Graph::grad`] appends the backward nodes, and
//! [`Plan::compile`] fuses the graph into generated kernels over
//! liveness-planned buffers that [`Plan::run`] replays as one GPU submission.
//!
//! ```no_run
//! use kiln_graph::{Graph, ParamStore, Plan};
//! use kiln_backend::Device;
//! let device = Device::auto()?;
//! let mut params = ParamStore::new(&device);
//! params.insert("w", &[3.0], &[1, 1])?;
//! let mut g = Graph::new();
//! let x = g.input("x", &[2, 1]);
//! let w = g.param(&params, "w")?;
//! let y = g.matmul(x, w, false, false)?;
//! let loss = g.mean_all(y)?;
//! let grads = g.grad(loss, &[w])?;
//! let mut plan = Plan::compile(&device, &g, &[loss, grads[0]])?;
//! let out = plan.run(&[("x", &[1.0, 2.0])])?;
//! assert_eq!(out[0], vec![4.5]);
//! # Ok::<(), kiln_graph::GraphError>(())
//! ```

mod autodiff;
mod conv_ops;
mod error;
mod fusion;
mod graph;
mod kernels;
mod nn_ops;
mod params;
mod plan;
mod plan_cache;
mod recurrent;
mod reduce_ops;
mod tape;
mod updates;
mod var;
mod view_ops;
mod window;

pub use error::{GraphError, Result};
pub use graph::{Graph, Node, NodeId, Op};
pub use kiln_backend::codegen::{ConvPass, PoolKind};
pub use kiln_backend::ops::optim::{UpdateRule, HYPER_WORDS};
pub use kiln_backend::{BinaryOp, ReduceOp, UnaryOp};
pub use params::{Param, ParamStore};
pub use plan::{MemoryPlan, Plan, PlanOptions, PlanStats};
pub use plan_cache::{PlanCache, ShapeKey};
pub use recurrent::{GruOptions, LstmOptions, RecurrentOutput, RecurrentWeights};
pub use tape::{Feeder, Mode, Tape, STEP_INPUT};
pub use var::Var;
pub use window::Window2d;
