//! One model folder, ready to answer: the generator (text-only or vision-language), its
//! processor (tokenizer, chat template, image placeholders, stop tokens) and its image
//! preprocessing.
//!
//! A question becomes the user turn of the checkpoint's own chat template (images first, or a
//! series as MedGemma 1.5's `SLICE n` layout), followed by the generation prompt. Then either:
//! - **generation**: greedy (or seeded sampling) until a stop token of `generation_config.json`
//!   or `max_new_tokens`; the answer is the decoded text without special tokens, trimmed; or
//! - **option scoring**: the log-likelihood of each candidate continuation after the prompt
//!   (sum of the tokens' log-probabilities, no length normalisation), the answer being the most
//!   likely candidate. For multiple choice the prompt lists the options lettered and the
//!   candidates are the letters; for yes/no questions the prompt is the question alone and the
//!   candidates are the words. Real Gemma 3 and Llama vocabularies hold `A`, `yes`, `no` as
//!   single tokens; a tokenizer that splits one candidate into more pieces than another favours
//!   the shorter (each candidate's token count is reported beside its score).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use medvqa_model::causal::CausalModel;
use medvqa_model::checkpoint::WeightDtype;
use medvqa_model::generate::{generate, score_continuations, GenerateOptions, Sampling};
use medvqa_model::vlm::{Positions, PromptBatch};
use medvqa_prompt::{ct_user_message, option_letter, vqa_user_message, Message, Processor};
use serde::Serialize;

use crate::error::VqaError;
use crate::images::{ImageOptions, PromptImage};

/// What kind of answer is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choices {
    /// Free text, generated.
    Open,
    /// Multiple choice: the options are listed lettered in the prompt; the letters are scored.
    Lettered(Vec<String>),
    /// The question alone in the prompt; these words are scored as continuations (yes / no).
    Words(Vec<String>),
}

/// Generation settings.
#[derive(Clone, Debug)]
pub struct AskOptions {
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Greedy or seeded sampling.
    pub sampling: Sampling,
    /// A system message put before the question (the template decides how it is rendered).
    pub system: Option<String>,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions { max_new_tokens: 64, sampling: Sampling::Greedy, system: None }
    }
}

/// The score of one candidate answer.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OptionScore {
    /// The candidate as given.
    pub option: String,
    /// The text that was scored after the prompt (the letter for multiple choice).
    pub continuation: String,
    /// Σ log p(token | prompt, earlier tokens), natural log.
    pub log_likelihood: f64,
    /// Tokens in the continuation.
    pub tokens: usize,
    /// exp(log_likelihood) renormalised over the candidates.
    pub probability: f64,
}

/// An answer and how it was produced.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The answer text (for scored choices: the winning option as given).
    pub answer: String,
    /// Generated token ids (stop token included when one ended the answer), or the winning
    /// continuation's tokens for scored choices.
    pub token_ids: Vec<u32>,
    /// Every candidate's score, in the order given; `None` for generated answers.
    pub option_scores: Option<Vec<OptionScore>>,
    /// Prompt length in tokens (images expanded).
    pub prompt_tokens: usize,
    /// The rendered prompt text (before image placeholder expansion).
    #[serde(skip)]
    pub prompt: String,
}

/// A loaded model folder that answers questions.
#[derive(Debug)]
pub struct Assistant {
    dir: PathBuf,
    model: CausalModel,
    processor: Processor,
    device: Device,
    weights_sha256: String,
}

impl Assistant {
    /// Loads the model, tokenizer, chat template and processor settings in `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Assistant, VqaError> {
        Assistant::load_with(dir, device, WeightDtype::Auto)
    }

    /// [`Assistant::load`] with 16-bit weight matrices held as `dtype` asks (`Auto`: kept 16-bit
    /// only when an f32 copy would not fit comfortably; results are identical either way).
    pub fn load_with(dir: &Path, device: &Device, dtype: WeightDtype) -> Result<Assistant, VqaError> {
        let processor = Processor::load(dir)?;
        let loaded = CausalModel::load_with(dir, device, dtype)?;
        if let Some(vlm) = loaded.model.vision_language() {
            if !dir.join("preprocessor_config.json").is_file() {
                return Err(VqaError::ModelFolder {
                    dir: dir.to_path_buf(),
                    reason: "no preprocessor_config.json: a vision-language model needs its image processor settings".into(),
                });
            }
            let model_tokens = vlm.tokens_per_image();
            let prompt_tokens = match processor.image_tokens() {
                medvqa_prompt::ImageTokens::Gemma3 { tokens_per_image, .. } | medvqa_prompt::ImageTokens::Llava { tokens_per_image, .. } => {
                    *tokens_per_image
                }
                medvqa_prompt::ImageTokens::None => 0,
            };
            if prompt_tokens != model_tokens {
                return Err(VqaError::ModelFolder {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "the processor expands each image to {prompt_tokens} tokens but the model makes {model_tokens} image features"
                    ),
                });
            }
        }
        Ok(Assistant {
            dir: dir.to_path_buf(),
            weights_sha256: loaded.checkpoint.weights_sha256(),
            model: loaded.model,
            processor,
            device: device.clone(),
        })
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SHA-256 of the weight files.
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// Whether the model reads images.
    pub fn accepts_images(&self) -> bool {
        self.model.vision_language().is_some()
    }

    /// The processor (tokenizer, template, stop tokens).
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// Image loading settings for this model: its own `preprocessor_config.json`.
    pub fn image_options(&self, window: Option<medvqa_ingest::lut::Window>, max_slices: usize) -> ImageOptions {
        ImageOptions { processor_config: self.dir.join("preprocessor_config.json"), window, max_slices }
    }

    /// The chat messages for a question about `images`.
    pub fn messages(&self, images: &[PromptImage], question: &str, choices: &Choices, system: Option<&str>) -> Vec<Message> {
        let listed: &[String] = match choices {
            Choices::Lettered(options) => options,
            Choices::Open | Choices::Words(_) => &[],
        };
        // A series (every image a numbered slice) takes MedGemma 1.5's SLICE n layout.
        let series = images.len() > 1 && images.iter().all(|i| i.slice.is_some());
        let user = if series {
            ct_user_message(images.len(), None, question, listed)
        } else {
            vqa_user_message(images.len(), question, listed)
        };
        let mut messages = Vec::with_capacity(2);
        if let Some(s) = system {
            messages.push(Message::text("system", s));
        }
        messages.push(user);
        messages
    }

    /// Answers `question` about `images` (from [`crate::load_images`]).
    pub fn ask(&self, images: &[PromptImage], question: &str, choices: &Choices, opts: &AskOptions) -> Result<Answer, VqaError> {
        if !images.is_empty() && !self.accepts_images() {
            return Err(VqaError::Request(format!("{} is a text-only model: it cannot read images", self.dir.display())));
        }
        let messages = self.messages(images, question, choices, opts.system.as_deref());
        let (prompt, encoded) = self.processor.encode_chat(&messages, true)?;
        let batch = PromptBatch {
            input_ids: vec![encoded.input_ids.iter().map(|&t| i64::from(t)).collect()],
            attention_mask: vec![encoded.attention_mask.iter().map(|&t| i64::from(t)).collect()],
            token_type_ids: encoded.token_type_ids.as_ref().map(|t| vec![t.iter().map(|&x| i64::from(x)).collect()]),
        };
        let pixels = self.pixels(images)?;
        let (embeds, attn, _) = self.model.prompt(&batch, pixels, Positions::FromMask)?;
        let decoder = self.model.decoder();
        let prompt_tokens = encoded.input_ids.len();

        let (options, continuations): (Vec<String>, Vec<String>) = match choices {
            Choices::Open => {
                let gen = GenerateOptions {
                    max_new_tokens: opts.max_new_tokens,
                    stop_token_ids: self.processor.stop_tokens().ids().to_vec(),
                    sampling: opts.sampling,
                };
                let tokens = generate(decoder, embeds, &attn, &gen)?.into_iter().next().unwrap_or_default();
                let answer = py_strip(&self.processor.tokenizer().decode(&tokens, true)?).to_string();
                return Ok(Answer { answer, token_ids: tokens, option_scores: None, prompt_tokens, prompt });
            }
            Choices::Lettered(options) => (options.clone(), (0..options.len()).map(option_letter).collect()),
            Choices::Words(words) => (words.clone(), words.clone()),
        };
        if options.is_empty() {
            return Err(VqaError::Request("no options to choose from".into()));
        }
        let tokenizer = self.processor.tokenizer();
        let token_lists = continuations.iter().map(|c| tokenizer.encode(c, false)).collect::<Result<Vec<_>, _>>()?;
        if let Some(i) = token_lists.iter().position(Vec::is_empty) {
            return Err(VqaError::Request(format!("option {:?} tokenizes to nothing", options[i])));
        }
        let scores = score_continuations(decoder, embeds, &attn, &token_lists)?;
        let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = scores.iter().map(|s| (s - best).exp()).sum();
        let option_scores: Vec<OptionScore> = options
            .iter()
            .zip(&continuations)
            .zip(&token_lists)
            .zip(&scores)
            .map(|(((option, continuation), tokens), &ll)| OptionScore {
                option: option.clone(),
                continuation: continuation.clone(),
                log_likelihood: ll,
                tokens: tokens.len(),
                probability: (ll - best).exp() / total,
            })
            .collect();
        // First of the best on ties, so the result does not depend on float noise ordering.
        let winner = scores.iter().position(|&s| s == best).unwrap_or(0);
        Ok(Answer {
            answer: options[winner].clone(),
            token_ids: token_lists[winner].clone(),
            option_scores: Some(option_scores),
            prompt_tokens,
            prompt,
        })
    }

    /// Stacks the images into `[n, 3, h, w]` on the model's device.
    fn pixels(&self, images: &[PromptImage]) -> Result<Option<Tensor<4>>, VqaError> {
        let Some(first) = images.first() else {
            return Ok(None);
        };
        let shape = first.shape;
        if let Some(odd) = images.iter().find(|i| i.shape != shape) {
            let path = odd.source.first().cloned().unwrap_or_default();
            return Err(VqaError::Input {
                path,
                reason: format!("preprocessed to {:?} but the first image is {:?}; the processor must give one size", odd.shape, shape),
            });
        }
        let mut values = Vec::with_capacity(images.len() * shape.iter().product::<usize>());
        for image in images {
            values.extend_from_slice(&image.pixels);
        }
        let data = TensorData::new(values, [images.len(), shape[0], shape[1], shape[2]]);
        Ok(Some(Tensor::<4>::from_data(data, &self.device)))
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the separators U+001C–U+001F, which
/// `str.isspace` counts and Rust's `char::is_whitespace` does not (so answers match the
/// reference's `decode(...).strip()` exactly).
fn py_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::py_strip;

    #[test]
    fn strip_matches_python() {
        assert_eq!(py_strip("\u{1c} yes\n\u{1f}"), "yes");
        assert_eq!(py_strip("\u{16}no"), "\u{16}no");
        assert_eq!(py_strip("\u{a0}a b\u{3000}"), "a b");
    }
}
