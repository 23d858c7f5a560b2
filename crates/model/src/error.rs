//! Errors of the model crate. Every variant names the file or folder it is about.

use std::path::{Path, PathBuf};

/// Result with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// config.json is missing a field, has a wrong value or names an unsupported model.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A weight file is unreadable or inconsistent.
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// Reading a safetensors file failed (the message names the file and the tensor).
    #[error(transparent)]
    Tensors(#[from] crate::tensor_io::TensorIoError),
    /// The checkpoint's tensors do not match the architecture its config describes.
    #[error("{}", mismatch_message(.dir, .missing, .mis_shaped, .unexpected, .unreadable))]
    WeightMismatch {
        dir: PathBuf,
        missing: Vec<String>,
        mis_shaped: Vec<String>,
        unexpected: Vec<String>,
        unreadable: Vec<String>,
    },
    /// An input tensor has the wrong shape or values for this model.
    #[error("{0}")]
    Input(String),
    /// The compute device failed (e.g. reading results back from the GPU).
    #[error("device error: {0}")]
    Device(String),
}

impl ModelError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ModelError {
        ModelError::Io { path: path.to_path_buf(), source }
    }
}

fn mismatch_message(dir: &Path, missing: &[String], mis: &[String], unexpected: &[String], unreadable: &[String]) -> String {
    let mut out = format!("{}: the weights do not match the architecture in config.json", dir.display());
    for (title, list) in [("missing", missing), ("mis-shaped", mis), ("unexpected", unexpected), ("unreadable", unreadable)] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n  {} {title}:", list.len()));
        for item in list.iter().take(20) {
            out.push_str(&format!("\n    {item}"));
        }
        if list.len() > 20 {
            out.push_str(&format!("\n    … and {} more", list.len() - 20));
        }
    }
    out
}
