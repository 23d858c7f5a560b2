//! Errors of an archive run. Per-unit failures are not errors of the run: they become manifest
//! rows with status `error` and lines of `errors.jsonl`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The run cannot start as asked (bad flags, an output folder holding another run…).
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parquet { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(transparent)]
    Model(#[from] medvqa_model::error::ModelError),
    #[error(transparent)]
    TensorIo(#[from] medvqa_model::tensor_io::TensorIoError),
    #[error("internal error: {0} (a bug: please report it)")]
    Internal(String),
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}
