//! Ask a vision-language model about medical images: files (DICOM, series folders, NIfTI,
//! PNG/JPEG) → the ingest crate's model stage → the checkpoint's chat template and processor
//! (medvqa-prompt) → the model (medvqa-model) → an answer, generated or chosen among options by
//! log-likelihood. The same path answers dataset questions for `medvqa eval`
//! ([`ModelAnswerer`]).
//!
//! ```no_run
//! use medvqa_vqa::{load_images, AskOptions, Assistant, Choices};
//! # fn main() -> Result<(), medvqa_vqa::VqaError> {
//! let device = burn::prelude::Device::flex();
//! let assistant = Assistant::load("models/medgemma-4b-it".as_ref(), &device)?;
//! let images = load_images(&["chest.dcm".into()], &assistant.image_options(None, 85))?;
//! let choices = Choices::Words(vec!["yes".into(), "no".into()]);
//! let answer = assistant.ask(&images, "Is there a pneumothorax?", &choices, &AskOptions::default())?;
//! println!("{} {:?}", answer.answer, answer.option_scores);
//! # Ok(()) }
//! ```

mod answerer;
mod assistant;
mod error;
mod images;

pub use answerer::{is_yes_no_question, ModelAnswerer};
pub use assistant::{Answer, AskOptions, Assistant, Choices, OptionScore};
pub use error::VqaError;
pub use images::{load_images, ImageOptions, PromptImage};
