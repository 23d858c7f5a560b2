//! Prompts for medical VQA models, from the files of a HuggingFace model folder, built the way
//! transformers builds them — without Burn, so this crate compiles and tests in seconds.
//!
//! - [`Tokenizer`]: `tokenizer.json` through HuggingFace's `tokenizers` library.
//! - [`ChatTemplate`]: the checkpoint's own Jinja chat template (`chat_template.jinja`,
//!   `chat_template.json` or `tokenizer_config.json`) rendered with minijinja like
//!   `apply_chat_template(tokenize=False)`.
//! - [`Processor`]: rendered text + number of images → `input_ids`, `attention_mask`,
//!   `token_type_ids` like `Gemma3Processor` / `LlavaProcessor`, and left-padded batches.
//! - [`GenerationDefaults`] / [`StopTokens`]: `generation_config.json` and `config.json` ids.
//! - [`vqa_user_message`] / [`ct_user_message`]: the user turn of a VQA question, for images or
//!   for a CT series in MedGemma 1.5's `SLICE n` layout.
//!
//! ```no_run
//! use medvqa_prompt::{vqa_user_message, Processor};
//!
//! let processor = Processor::load("models/medgemma-4b-it".as_ref())?;
//! let question = vqa_user_message(1, "Is there a pneumothorax?", &["yes".into(), "no".into()]);
//! let (text, inputs) = processor.encode_chat(&[question], true)?;
//! println!("{text}\n{} tokens, stop at {:?}", inputs.input_ids.len(), processor.stop_tokens());
//! # Ok::<(), medvqa_prompt::PromptError>(())
//! ```

mod config;
mod error;
mod processor;
mod pyfmt;
mod template;
mod tokenizer;
mod vqa;

pub use config::{GenerationDefaults, SpecialTokens, StopTokens, TokenizerConfig};
pub use error::{PromptError, Result};
pub use processor::{Batch, Encoded, ImageTokens, Processor};
pub use template::{ChatTemplate, Content, ContentPart, Message};
pub use tokenizer::{clean_up_tokenization, Tokenizer};
pub use vqa::{
    ct_user_message, format_question, option_letter, vqa_user_message, MULTIPLE_CHOICE_INSTRUCTION,
};
