//! Errors of model definition, training and checkpoints.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// A layer could not be built: the layer's name and what was wrong.
    #[error("layer {layer:?}: {source}")]
    Layer {
        layer: String,
        source: kiln_graph::GraphError,
    },
    #[error(transparent)]
    Graph(#[from] kiln_graph::GraphError),
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    #[error("{0}")]
    Invalid(String),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: String, detail: String },
}

impl From<kiln_backend::BackendError> for ModelError {
    fn from(e: kiln_backend::BackendError) -> Self {
        ModelError::Graph(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
