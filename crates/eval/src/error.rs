//! The eval crate's error type: every variant names the file (or the value) and the reason.

use std::path::PathBuf;

/// Anything that can go wrong while reading datasets, mappings or predictions, or while scoring.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file did not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// One line of a JSONL file is wrong (1-based line number).
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A file parsed but its content is not what the format requires.
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// One question could not be answered (an unreadable image, a prompt the model cannot take):
    /// `medvqa eval` records it in `errors.jsonl` and goes on with the others.
    #[error("question {id}: {reason}")]
    Unanswerable { id: String, reason: String },
    /// A value given by the user (dataset name, split, language, protocol…) is not known.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
}

impl EvalError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    /// A content error in `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EvalError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
