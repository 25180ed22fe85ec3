//! Errors of loading and splitting data.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Csv { path: String, detail: String },
    /// A file that is not what it should be: truncated, a wrong magic
    /// number, an undecodable image.
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
    /// Values that do not make the shape asked for, or data of another
    /// shape than an operation takes (features, channels, images), or a
    /// row it does not have.
    #[error("{0}")]
    Shape(String),
    /// A setting out of its range: a split fraction, a size, a channel
    /// count, an empty file list.
    #[error("{0}")]
    Settings(String),
    /// A broken invariant (a worker thread that panicked): a kiln bug.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

/// A [`DataError::Format`] for the file at `path`.
pub(crate) fn format_error(path: &std::path::Path, detail: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// A [`DataError::Io`] for the file at `path`.
pub(crate) fn io_error(path: &std::path::Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        source,
    }
}
