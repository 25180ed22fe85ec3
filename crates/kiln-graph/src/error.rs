//! Errors of graph building, differentiation, compilation and execution.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GraphError {
    #[error("{op}: {detail}")]
    Shape { op: String, detail: String },
    /// A call the graph cannot take: an output with several results, a
    /// parameter's values that do not fill its shape, optimizer state of
    /// the wrong count.
    #[error("{0}")]
    Usage(String),
    /// A node or variable from another graph (or tape) than the one used.
    #[error("{0}")]
    WrongGraph(String),
    /// An in-place update aimed at a node that is no parameter.
    #[error("{0}")]
    NotAParameter(String),
    /// A parameter made on another device than the plan's.
    #[error("{0}")]
    WrongDevice(String),
    /// A gradient autodiff cannot give (a frozen parameter, an op with no
    /// derivative, a value differentiated through several results).
    #[error("{0}")]
    Autodiff(String),
    /// A broken invariant of the compiler itself: a kiln bug, reported
    /// instead of a panic so the caller's process lives on.
    #[error("{0}")]
    Internal(String),
    #[error("no value fed for input {name:?} (expected {expected} values for shape {shape:?})")]
    MissingInput {
        name: String,
        expected: usize,
        shape: Vec<usize>,
    },
    #[error("input {name:?}: {got} values fed, shape {shape:?} needs {expected}")]
    InputSize {
        name: String,
        got: usize,
        expected: usize,
        shape: Vec<usize>,
    },
    #[error("unknown parameter {0:?}")]
    UnknownParam(String),
    #[error(transparent)]
    Backend(#[from] kiln_backend::BackendError),
}

pub type Result<T> = std::result::Result<T, GraphError>;

pub(crate) fn shape_err(op: &str, detail: impl Into<String>) -> GraphError {
    GraphError::Shape {
        op: op.to_string(),
        detail: detail.into(),
    }
}
