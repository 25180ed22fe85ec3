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
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DataError>;
