//! Errors of graph building, differentiation, compilation and execution.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GraphError {
    #[error("{op}: {detail}")]
    Shape { op: String, detail: String },
    #[error("{0}")]
    Invalid(String),
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
