//! The crate's error type: every variant names the file or template and the reason.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model folder's prompt files or building inputs.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A file could not be read (missing, unreadable).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A file is valid JSON but a field has the wrong type or an impossible value.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// `tokenizer.json` could not be parsed by the `tokenizers` library.
    #[error("{}: cannot load tokenizer: {message}", path.display())]
    TokenizerLoad { path: PathBuf, message: String },
    /// Encoding or decoding failed inside the `tokenizers` library.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenize { path: PathBuf, message: String },
    /// A token the processor needs is not in the vocabulary.
    #[error("{}: token {token:?} ({role}) is not in the vocabulary", path.display())]
    UnknownToken {
        path: PathBuf,
        token: String,
        role: &'static str,
    },
    /// The model folder has no chat template in any of the places transformers looks.
    #[error("{}: no chat template (looked for chat_template.jinja, chat_template.json and tokenizer_config.json's \"chat_template\")", dir.display())]
    NoChatTemplate { dir: PathBuf },
    /// A named template was asked for but the folder does not have it.
    #[error("{source_name}: no chat template named {name:?} (available: {available})")]
    NoSuchTemplate {
        source_name: String,
        name: String,
        available: String,
    },
    /// The template source does not compile.
    #[error("chat template {source_name}: syntax error: {message}")]
    TemplateSyntax {
        source_name: String,
        message: String,
    },
    /// The template called `raise_exception(message)` (its own check of the conversation failed).
    #[error("chat template {source_name} raised: {message}")]
    TemplateRaised {
        source_name: String,
        message: String,
    },
    /// Rendering failed for another reason (unknown filter, wrong argument types …).
    #[error("chat template {source_name}: render error: {message}")]
    TemplateRender {
        source_name: String,
        message: String,
    },
    /// The number of image placeholders in a prompt differs from the number of images given.
    #[error("prompt {prompt_index}: {placeholders} image placeholder(s) {token:?} in the text but {images} image(s) given")]
    ImageCount {
        prompt_index: usize,
        token: String,
        placeholders: usize,
        images: usize,
    },
    /// A model without an image pathway (text-only config) was given images.
    #[error("{}: model type {model_type:?} takes no images but {images} were given", path.display())]
    NoImageSupport {
        path: PathBuf,
        model_type: String,
        images: usize,
    },
    /// A batch was asked for with mismatched lengths.
    #[error("batch: {texts} texts but {image_counts} image counts")]
    BatchShape { texts: usize, image_counts: usize },
}

/// Result alias of this crate.
pub type Result<T, E = PromptError> = std::result::Result<T, E>;
