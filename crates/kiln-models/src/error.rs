//! Errors of model definition, training and checkpoints.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// A layer could not be built: the layer's name and what was wrong.
    /// The text includes the graph's error whole, so it is not also given
    /// as the source (anyhow would print it again under `Caused by:`).
    #[error("layer {layer:?}: {error}")]
    Layer {
        layer: String,
        error: kiln_graph::GraphError,
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
    parts.join(" ")
}

impl From<kiln_backend::BackendError> for ModelError {
    fn from(e: kiln_backend::BackendError) -> Self {
        ModelError::Graph(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
