//! Errors of model definition, training and checkpoints.

use thiserror::Error;

/// Everything model code can refuse, by kind: match on the variant, print
/// it for the whole story (what was wrong and what was expected).
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
    /// [`Sequential`](crate::Sequential) could not add its `index`-th
    /// layer (1-based), a `kind` (`dense`, `lstm`, …).
    #[error("{kind} (layer {index}): {error}")]
    Building {
        kind: &'static str,
        index: usize,
        error: Box<ModelError>,
    },
    /// The first error of a [`Sequential`](crate::Sequential) builder
    /// (often [`ModelError::Building`]), which each later call reports
    /// again, so it is shared.
    #[error(transparent)]
    Builder(std::sync::Arc<ModelError>),
    /// `fit` checked every row before its first step and found this; `what`
    /// says which data (`""` for the training rows).
    #[error("{what}{error}; fit refused it before the first step")]
    FitRefused {
        what: &'static str,
        error: Box<ModelError>,
    },
    /// Training, evaluating or a callback needed `compile` first.
    #[error("call compile() before {call}")]
    NotCompiled { call: &'static str },
    /// A name that is not there: a layer, a tensor, a logged value, a model
    /// of the zoo.
    #[error("no {kind} named {name:?}; expected one of {available:?}")]
    NotFound {
        kind: &'static str,
        name: String,
        available: Vec<String>,
    },
    /// A setting out of its range: a layer's sizes or options, an
    /// optimizer's, a fit's, a schedule's or a callback's arguments.
    #[error("{0}")]
    Settings(String),
    /// Data, or a layer's input, whose shape does not fit.
    #[error("{0}")]
    Shape(String),
    /// Values that training refuses: non-finite inputs, targets outside
    /// the loss's range, loss weights that do not fit.
    #[error("{0}")]
    Values(String),
    /// Weights, a state dict's tensors or optimizer state that do not fit
    /// a layer or a model, or a weights file that does not parse.
    #[error("{0}")]
    Weights(String),
    /// A file kiln writes (a plot, the history, TensorBoard events, a
    /// CSV log) could not be written.
    #[error("{path}: {detail}")]
    Output { path: String, detail: String },
    #[error(transparent)]
    Graph(#[from] kiln_graph::GraphError),
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
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
