//! Any checkpoint that generates text: a text-only decoder (`Gemma3ForCausalLM`,
//! `LlamaForCausalLM`, Mistral, Qwen2) or a vision-language model (`Gemma3ForConditionalGeneration`,
//! `LlavaForConditionalGeneration`), chosen from config.json's `model_type`. Callers turn a
//! tokenized prompt batch (and images) into decoder input the same way for both.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::error::{ModelError, Result};
use crate::text::{AttentionInput, TextDecoder};
use crate::vlm::{Positions, PromptBatch, VisionLanguageModel};

/// A loaded generator.
#[derive(Debug)]
pub enum CausalModel {
    /// Text only.
    Text(TextDecoder),
    /// Vision tower + projector + text decoder.
    Vision(VisionLanguageModel),
}

/// What a folder's config.json says it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderKind {
    /// A SigLIP / CLIP vision tower or two-tower model (the `encode` path).
    VisionEncoder,
    /// A text-only causal LM.
    TextDecoder,
    /// A vision-language model.
    VisionLanguage,
}

/// Classifies a checkpoint folder by its config.json `model_type`.
pub fn folder_kind(dir: &Path) -> Result<FolderKind> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Config { path: path.clone(), reason: format!("invalid JSON: {e}") })?;
    let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
    Ok(match model_type {
        "gemma3" | "llava" => FolderKind::VisionLanguage,
        "gemma3_text" | "llama" | "mistral" | "qwen2" => FolderKind::TextDecoder,
        "siglip" | "siglip_vision_model" | "clip" | "clip_vision_model" => FolderKind::VisionEncoder,
        other => {
            return Err(ModelError::Config {
                path,
                reason: format!(
                    "model_type {other:?} is not supported (vision-language: gemma3, llava; text: gemma3_text, llama, \
                     mistral, qwen2; vision encoders: siglip, clip)"
                ),
            })
        }
    })
}

/// A loaded generator and its checkpoint.
#[derive(Debug)]
pub struct LoadedCausal {
    /// The model.
    pub model: CausalModel,
    /// Where the weights came from.
    pub checkpoint: Checkpoint,
}

impl CausalModel {
    /// Loads a text-only or vision-language folder onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedCausal> {
        CausalModel::load_with(dir, device, crate::checkpoint::WeightDtype::F32)
    }

    /// [`CausalModel::load`] with 16-bit weight matrices held as `dtype` asks.
    pub fn load_with(dir: &Path, device: &Device, dtype: crate::checkpoint::WeightDtype) -> Result<LoadedCausal> {
        match folder_kind(dir)? {
            FolderKind::VisionLanguage => {
                let l = VisionLanguageModel::load_with(dir, device, dtype)?;
                Ok(LoadedCausal { model: CausalModel::Vision(l.model), checkpoint: l.checkpoint })
            }
            FolderKind::TextDecoder => {
                let l = TextDecoder::load_with(dir, device, dtype)?;
                Ok(LoadedCausal { model: CausalModel::Text(l.model), checkpoint: l.checkpoint })
            }
            FolderKind::VisionEncoder => Err(ModelError::Config {
                path: dir.join("config.json"),
                reason: "this is a vision encoder, not a model that generates text (use `medvqa encode`)".into(),
            }),
        }
    }

    /// The language model that generates.
    pub fn decoder(&self) -> &TextDecoder {
        match self {
            CausalModel::Text(t) => t,
            CausalModel::Vision(v) => &v.text,
        }
    }

    /// The vision-language model, if this is one.
    pub fn vision_language(&self) -> Option<&VisionLanguageModel> {
        match self {
            CausalModel::Text(_) => None,
            CausalModel::Vision(v) => Some(v),
        }
    }

    /// Decoder input for a prompt batch: embeddings (image features in place of the
    /// placeholders), the attention description, and the image features themselves.
    ///
    /// # Shapes
    /// `pixel_values` `[n, 3, h, w]` → (`[b, s, d]`, attention, `[n, t, d]`).
    pub fn prompt(&self, batch: &PromptBatch, pixel_values: Option<Tensor<4>>, positions: Positions) -> Result<(Tensor<3>, AttentionInput, Option<Tensor<3>>)> {
        match self {
            CausalModel::Vision(vlm) => {
                let features = pixel_values.map(|p| vlm.image_features(p)).transpose()?;
                let (embeds, attn) = vlm.prompt_embeddings(batch, features.clone(), positions)?;
                Ok((embeds, attn, features))
            }
            CausalModel::Text(text) => {
                if pixel_values.is_some() {
                    return Err(ModelError::Input("this is a text-only model: it cannot take images".into()));
                }
                let (embeds, attn) = text_prompt(text, batch, positions)?;
                Ok((embeds, attn, None))
            }
        }
    }
}

/// Embeddings and attention description of a text-only prompt batch.
fn text_prompt(text: &TextDecoder, batch: &PromptBatch, positions: Positions) -> Result<(Tensor<3>, AttentionInput)> {
    let embeds = crate::vlm::embed_ids(text, batch, |_| false)?;
    Ok((embeds, crate::vlm::attention_for(batch, positions, None)))
}
