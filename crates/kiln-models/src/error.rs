//! Errors of model definition, training and checkpoints.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// A layer failed: its dotted name in the module tree and what was
    /// wrong. The text includes the error whole, so it is not also given as
    /// the source (anyhow would print it again under `Caused by:`).
    #[error("layer {layer:?}: {error}")]
    Layer {
        layer: String,
        error: Box<ModelError>,
    },
    /// Tracing the model on its declared input shape failed: the error,
    /// and that shape, which is often what was meant otherwise (`[784]`
    /// for `[1, 28, 28]` images).
    #[error("{error} (the model's input shape is declared as {input_shape:?})")]
    Traced {
        input_shape: Vec<usize>,
        error: Box<ModelError>,
    },
    #[error(transparent)]
    Graph(#[from] kiln_graph::GraphError),
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    #[error("{0}")]
    Invalid(String),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: String, detail: String },
    /// A state dict that does not fit the model: every problem, by name.
    #[error("{}", state_dict_message(missing, unexpected, mismatched))]
    StateDict {
        missing: Vec<String>,
        unexpected: Vec<String>,
        mismatched: Vec<String>,
    },
}

fn state_dict_message(missing: &[String], unexpected: &[String], mismatched: &[String]) -> String {
    let mut parts = vec!["the state dict does not fit the model:".to_string()];
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", unexpected.join(", ")));
    }
    if !mismatched.is_empty() {
        parts.push(format!("mis-shaped {}", mismatched.join(", ")));
    }
    // "…: missing a, b; unexpected c; mis-shaped d"
    let (head, rest) = parts.split_first().expect("the heading is there");
    format!("{head} {}", rest.join("; "))
}

impl From<kiln_backend::BackendError> for ModelError {
    fn from(e: kiln_backend::BackendError) -> Self {
        ModelError::Graph(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
