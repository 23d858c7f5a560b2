//! Errors of the VQA pipeline: each names the file, folder or stage that failed.

use std::path::PathBuf;

/// What can go wrong between the user's files and an answer.
#[derive(Debug, thiserror::Error)]
pub enum VqaError {
    /// An input image or folder could not be read into model input.
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
    /// The model folder is missing a file the pipeline needs, or holds the wrong kind of model.
    #[error("{}: {reason}", dir.display())]
    ModelFolder { dir: PathBuf, reason: String },
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] medvqa_model::ModelError),
    /// Building the prompt failed (tokenizer, chat template, placeholders).
    #[error(transparent)]
    Prompt(#[from] medvqa_prompt::PromptError),
    /// A request that cannot be answered as asked (e.g. images for a text-only model).
    #[error("{0}")]
    Request(String),
}
