//! One error type for the crate. Every variant names the file and the reason, so a line in
//! `errors.jsonl` is enough for a user to find and understand the problem.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot read file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a DICOM, NIfTI or image file this reader understands ({reason})")]
    UnknownFormat { path: PathBuf, reason: String },
    #[error("{path}: DICOM parse error: {reason}")]
    DicomParse { path: PathBuf, reason: String },
    #[error("{path}: missing or invalid attribute {attribute}: {reason}")]
    Attribute {
        path: PathBuf,
        attribute: &'static str,
        reason: String,
    },
    #[error("{path}: unsupported transfer syntax {uid} ({name}): {reason}")]
    UnsupportedTransferSyntax {
        path: PathBuf,
        uid: String,
        name: String,
        reason: String,
    },
    #[error("{path}: pixel data could not be decoded: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: pixel data is truncated: {got} bytes present, {expected} expected")]
    Truncated {
        path: PathBuf,
        got: usize,
        expected: usize,
    },
    #[error("{path}: image of {voxels} samples exceeds the limit of {limit} (Rows x Columns x Frames x Samples)")]
    TooLarge {
        path: PathBuf,
        voxels: u64,
        limit: u64,
    },
    #[error("{path}: no pixel data (this object is not an image: {what})")]
    NoPixelData { path: PathBuf, what: String },
    #[error("{path}: NIfTI error: {reason}")]
    Nifti { path: PathBuf, reason: String },
    #[error("{path}: image error: {reason}")]
    Raster { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl IngestError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
