//! The one error type of the backend: every variant says what was wrong and what
//! was expected.

use thiserror::Error;

/// Errors from device selection, buffer management and kernel launches.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error("no GPU or software adapter found: {hint}")]
    NoAdapter { hint: String },
    #[error("adapter {wanted:?} (asked for by name, through --device or KILN_DEVICE) matches no adapter; adapters present: {available}")]
    AdapterNotFound { wanted: String, available: String },
    #[error("could not open adapter {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: String, detail: String },
    #[error("{op}: tensor is empty (shape {shape:?}); expected at least one element")]
    Empty { op: String, shape: Vec<usize> },
    #[error("{what} needs {bytes} bytes but the adapter binds at most {limit} bytes per buffer")]
    BindingTooLarge {
        what: String,
        bytes: u64,
        limit: u64,
    },
    #[error("{op}: {detail}")]
    Invalid { op: String, detail: String },
    #[error("{op}: expected dtype {expected}, got {got}")]
    DType {
        op: String,
        expected: String,
        got: String,
    },
    #[error("wgpu reported: {0}")]
    Wgpu(String),
    #[error("the device ran out of memory {during}: {detail}")]
    OutOfMemory { during: String, detail: String },
    #[error("wgpu refused {during}: {detail}")]
    Validation { during: String, detail: String },
    #[error("the device was lost ({reason}); nothing more runs on it: open a new Device (a checkpoint resumes the run)")]
    DeviceLost { reason: String },
    #[error("reading a buffer back failed: {0}")]
    Readback(String),
}

/// Result with [`BackendError`].
pub type Result<T> = std::result::Result<T, BackendError>;

pub(crate) fn invalid(op: &str, detail: impl Into<String>) -> BackendError {
    BackendError::Invalid {
        op: op.to_string(),
        detail: detail.into(),
    }
}

pub(crate) fn shape_error(op: &str, detail: impl Into<String>) -> BackendError {
    BackendError::Shape {
        op: op.to_string(),
        detail: detail.into(),
    }
}
