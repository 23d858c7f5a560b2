//! Vision-language models: a vision tower, a projector and a text decoder, loaded from one
//! HuggingFace folder — `Gemma3ForConditionalGeneration` (MedGemma) and
//! `LlavaForConditionalGeneration` (llava-hf layout).
//!
//! The prompt's image placeholder tokens (Gemma 3 `<image_soft_token>`, LLaVA `<image>`), which
//! the processor has already expanded to one token per image feature, are replaced by the
//! projected image features in order — transformers' `masked_scatter` over (row, position) — and
//! the decoder then runs on the mixed sequence. Gemma 3 additionally lets the tokens of one image
//! attend to each other in both directions (`token_type_ids_mask_function`).
//!
//! Both key layouts load: transformers 4.x as published (`vision_tower.vision_model.…`,
//! `multi_modal_projector.…`, `language_model.model.…`, `language_model.lm_head`) and 5.x
//! (`model.vision_tower.…`, `model.multi_modal_projector.…`, `model.language_model.…`,
//! `lm_head`). The prefixes are found from the tensors' names, not guessed from the version.

pub mod projector;

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use crate::checkpoint::{find_prefix, Checkpoint, WeightDtype, Weights};
use crate::error::{ModelError, Result};
use crate::text::{AttentionInput, TextConfig, TextDecoder};
use crate::vision::{Activation, VisionConfig, VisionTransformer};
pub use projector::{FeatureSelect, Projector};

/// Which architecture a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VlmKind {
    /// `Gemma3ForConditionalGeneration` (`model_type` `gemma3`).
    Gemma3,
    /// `LlavaForConditionalGeneration` (`model_type` `llava`).
    Llava,
}

/// The multimodal part of config.json.
#[derive(Clone, Debug)]
pub struct VlmConfig {
    /// Architecture.
    pub kind: VlmKind,
    /// Id of the placeholder token each image feature replaces (`image_token_index` in 4.x,
    /// `image_token_id` in 5.x).
    pub image_token_id: u32,
    /// Gemma 3: image tokens per image after pooling (`mm_tokens_per_image`, default 256).
    pub mm_tokens_per_image: usize,
    /// LLaVA: which hidden states feed the projector (`vision_feature_layer`, default -2).
    pub vision_feature_layers: Vec<i64>,
    /// LLaVA: `vision_feature_select_strategy` (default `default`).
    pub feature_select: FeatureSelect,
    /// LLaVA: `projector_hidden_act` (default `gelu`).
    pub projector_act: Activation,
    /// LLaVA: `multimodal_projector_bias` (default true).
    pub projector_bias: bool,
}

impl VlmConfig {
    /// Reads the multimodal fields of a parsed config.json, with transformers' defaults.
    pub fn from_json(json: &Value) -> std::result::Result<VlmConfig, String> {
        let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
        let kind = match model_type {
            "gemma3" => VlmKind::Gemma3,
            "llava" => VlmKind::Llava,
            other => {
                return Err(format!(
                    "model_type {other:?} is not a supported vision-language model (gemma3, llava)"
                ))
            }
        };
        let int = |keys: &[&str]| keys.iter().find_map(|k| json.get(*k).and_then(Value::as_u64));
        let default_image_token = match kind {
            VlmKind::Gemma3 => 262_144,
            VlmKind::Llava => 32_000,
        };
        let image_token_id = int(&["image_token_id", "image_token_index"]).unwrap_or(default_image_token);
        let image_token_id = u32::try_from(image_token_id).map_err(|_| format!("image_token_index {image_token_id} is too large"))?;
        let vision_feature_layers = match json.get("vision_feature_layer") {
            None | Some(Value::Null) => vec![-2],
            Some(Value::Number(n)) => vec![n.as_i64().ok_or("vision_feature_layer is not an integer")?],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_i64().ok_or_else(|| "vision_feature_layer holds a non-integer".to_string()))
                .collect::<std::result::Result<_, _>>()?,
            Some(other) => return Err(format!("vision_feature_layer {other} is neither an integer nor a list")),
        };
        let feature_select = match json.get("vision_feature_select_strategy").and_then(Value::as_str).unwrap_or("default") {
            "default" => FeatureSelect::DropFirst,
            "full" => FeatureSelect::Full,
            other => return Err(format!("vision_feature_select_strategy {other:?} is neither \"default\" nor \"full\"")),
        };
        let act_name = json.get("projector_hidden_act").and_then(Value::as_str).unwrap_or("gelu");
        let projector_act = Activation::from_hf(act_name).ok_or_else(|| format!("projector_hidden_act {act_name:?} is not supported"))?;
        Ok(VlmConfig {
            kind,
            image_token_id,
            mm_tokens_per_image: int(&["mm_tokens_per_image"]).unwrap_or(256) as usize,
            vision_feature_layers,
            feature_select,
            projector_act,
            projector_bias: json.get("multimodal_projector_bias").and_then(Value::as_bool).unwrap_or(true),
        })
    }
}

/// A vision-language model with its weights.
#[derive(Debug)]
pub struct VisionLanguageModel {
    /// Multimodal settings.
    pub config: VlmConfig,
    /// The vision tower.
    pub vision: VisionTransformer,
    /// Tower output → text embeddings.
    pub projector: Projector,
    /// The language model.
    pub text: TextDecoder,
}

/// A loaded model and where it came from.
#[derive(Debug)]
pub struct LoadedVlm {
    /// The model.
    pub model: VisionLanguageModel,
    /// The checkpoint (kept for hashing and provenance).
    pub checkpoint: Checkpoint,
}

/// Inputs of one prompt batch, as the processor made them (host side).
#[derive(Clone, Debug)]
pub struct PromptBatch {
    /// `[b][s]`, image placeholders already expanded.
    pub input_ids: Vec<Vec<i64>>,
    /// `[b][s]`, 1 = token, 0 = (left) padding.
    pub attention_mask: Vec<Vec<i64>>,
    /// `[b][s]` Gemma 3: 1 on image tokens. Derived from the image token id when absent.
    pub token_type_ids: Option<Vec<Vec<i64>>>,
}

impl PromptBatch {
    /// `(batch, seq)`, after checking that every row of every field has the same length.
    pub fn dims(&self) -> Result<(usize, usize)> {
        let b = self.input_ids.len();
        let s = self.input_ids.first().map_or(0, Vec::len);
        if b == 0 || s == 0 {
            return Err(ModelError::Input("empty prompt batch".into()));
        }
        let square = |rows: &[Vec<i64>]| rows.len() == b && rows.iter().all(|r| r.len() == s);
        if !square(&self.input_ids) || !square(&self.attention_mask) || self.token_type_ids.as_deref().is_some_and(|t| !square(t)) {
            return Err(ModelError::Input(
                "input_ids, attention_mask and token_type_ids must all be [batch, seq] of one shape".into(),
            ));
        }
        Ok((b, s))
    }
}

/// How position ids are assigned to a prompt batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// 0..s in every row, padding included: transformers' `forward` without `position_ids`.
    Arange,
    /// `cumsum(attention_mask) - 1`: what `generate` uses, so a left-padded row sees the same
    /// positions as it would alone.
    FromMask,
}

impl VisionLanguageModel {
    /// Loads a `Gemma3ForConditionalGeneration` or `LlavaForConditionalGeneration` folder onto
    /// `device`. Fails listing every missing, mis-shaped and unexpected tensor.
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedVlm> {
        VisionLanguageModel::load_with(dir, device, WeightDtype::F32)
    }

    /// [`VisionLanguageModel::load`] with 16-bit weight matrices held as `dtype` asks.
    pub fn load_with(dir: &Path, device: &Device, dtype: WeightDtype) -> Result<LoadedVlm> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config { path: config_path.clone(), reason: format!("invalid JSON: {e}") })?;
        let bad = |reason: String| ModelError::Config { path: config_path.clone(), reason };
        let config = VlmConfig::from_json(&json).map_err(bad)?;
        let vision_cfg = VisionConfig::from_json_str(&text).map_err(bad)?;
        let text_cfg = TextConfig::from_config_json(&json).map_err(|e| with_path(e, &config_path))?;

        let checkpoint = Checkpoint::open_with(dir, dtype)?;
        let missing = |what: &str, name: &str| ModelError::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!("no {what} in the weights (no tensor named `…{name}`)"),
        };
        let vision_prefix = find_prefix(&checkpoint, "embeddings.patch_embedding.weight")?
            .ok_or_else(|| missing("vision tower", "embeddings.patch_embedding.weight"))?;
        let text_prefix =
            find_prefix(&checkpoint, "embed_tokens.weight")?.ok_or_else(|| missing("text model", "embed_tokens.weight"))?;
        let projector_probe = match config.kind {
            VlmKind::Gemma3 => "mm_input_projection_weight",
            VlmKind::Llava => "linear_1.weight",
        };
        let projector_prefix =
            find_prefix(&checkpoint, projector_probe)?.ok_or_else(|| missing("multimodal projector", projector_probe))?;
        let head_name = checkpoint.names().find(|n| *n == "lm_head.weight" || n.ends_with(".lm_head.weight")).map(str::to_string);

        let root = checkpoint.weights(device);
        let scope = |prefix: &str| scoped(&root, prefix);
        let vision = VisionTransformer::from_weights(&vision_cfg, &scope(&vision_prefix), None);
        let projector_w = scope(&projector_prefix);
        let projector = match config.kind {
            VlmKind::Gemma3 => {
                let tokens_per_side = (config.mm_tokens_per_image as f64).sqrt().round() as usize;
                if tokens_per_side * tokens_per_side != config.mm_tokens_per_image {
                    return Err(bad(format!("mm_tokens_per_image {} is not a square", config.mm_tokens_per_image)));
                }
                Projector::load_gemma3(
                    &projector_w,
                    vision_cfg.hidden_size,
                    text_cfg.hidden_size,
                    vision_cfg.layer_norm_eps,
                    vision_cfg.grid(),
                    tokens_per_side,
                )
            }
            VlmKind::Llava => Projector::load_llava(
                &projector_w,
                vision_cfg.hidden_size * config.vision_feature_layers.len(),
                text_cfg.hidden_size,
                config.projector_bias,
                config.projector_act,
                config.vision_feature_layers.clone(),
                config.feature_select,
            ),
        };
        let head_w = head_name.as_deref().map(|n| scope(n.trim_end_matches("weight")));
        let text_model = TextDecoder::from_weights(&text_cfg, &scope(&text_prefix), head_w.as_ref());
        // A tied checkpoint may still store `lm_head.weight` (a copy): the decoder reads it when
        // present, so nothing is left unexpected.
        root.finish("")?;
        checkpoint.release_pages();
        Ok(LoadedVlm { model: VisionLanguageModel { config, vision, projector, text: text_model }, checkpoint })
    }

    /// Image features per image, what the placeholder tokens are replaced with
    /// (transformers' `get_image_features`).
    ///
    /// # Shapes
    /// `pixel_values` `[n, 3, h, w]` → `[n, tokens_per_image, text_hidden]`.
    pub fn image_features(&self, pixel_values: Tensor<4>) -> Result<Tensor<3>> {
        self.projector.image_features(&self.vision, pixel_values)
    }

    /// Placeholder tokens each image takes in the prompt.
    pub fn tokens_per_image(&self) -> usize {
        let v = self.vision.config();
        let patches = v.grid() * v.grid();
        let tower_tokens = match v.family {
            crate::vision::VisionFamily::Clip => patches + 1,
            crate::vision::VisionFamily::Siglip => patches,
        };
        self.projector.tokens_per_image(tower_tokens)
    }

    /// Text embeddings with the image features put in place of the placeholders, and the
    /// attention description of the prompt.
    ///
    /// # Shapes
    /// `image_features` `[n, t, d]` (n images in row-major order over the batch) →
    /// (`[b, s, d]`, [`AttentionInput`] for s new tokens).
    pub fn prompt_embeddings(&self, batch: &PromptBatch, image_features: Option<Tensor<3>>, positions: Positions) -> Result<(Tensor<3>, AttentionInput)> {
        let (b, s) = batch.dims()?;
        let image_token = i64::from(self.config.image_token_id);
        let is_image: Vec<Vec<bool>> = batch.input_ids.iter().map(|r| r.iter().map(|&t| t == image_token).collect()).collect();
        let n_placeholders: usize = is_image.iter().flatten().filter(|&&x| x).count();
        let device = self.text.device();
        // Gemma 3's image token may sit past the vocabulary: placeholders are embedded as 0 and
        // then overwritten, as transformers does.
        let text_embeds = embed_ids(&self.text, batch, |t| t == image_token)?;
        let d = text_embeds.dims()[2];

        let embeds = match image_features {
            None if n_placeholders > 0 => {
                return Err(ModelError::Input(format!("the prompt has {n_placeholders} image tokens but no image was given")));
            }
            None => text_embeds,
            Some(features) => {
                let [n, t, fd] = features.dims();
                if fd != d || n * t != n_placeholders {
                    return Err(ModelError::Input(format!(
                        "image features and image tokens do not match: {n} images × {t} tokens of width {fd}, \
                         but the prompt has {n_placeholders} image tokens and the text model width is {d}"
                    )));
                }
                // One gather from [text rows; image rows]: the k-th placeholder in row-major
                // order takes image row k (transformers' masked_scatter).
                let table = Tensor::cat(vec![text_embeds.reshape([b * s, d]), features.reshape([n * t, d])], 0);
                let mut next = 0i64;
                let index: Vec<i64> = is_image
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(p, &img)| {
                        if img {
                            next += 1;
                            (b * s) as i64 + next - 1
                        } else {
                            p as i64
                        }
                    })
                    .collect();
                let index = Tensor::<1, Int>::from_data(TensorData::new(index, [b * s]), &device);
                table.select(0, index).reshape([b, s, d])
            }
        };

        let groups = (self.config.kind == VlmKind::Gemma3).then(|| {
            let types: Vec<Vec<bool>> = match &batch.token_type_ids {
                Some(t) => t.iter().map(|r| r.iter().map(|&x| x == 1).collect()).collect(),
                None => is_image.clone(),
            };
            image_groups(&types)
        });
        Ok((embeds, attention_for(batch, positions, groups)))
    }
}

/// The attention description of a prompt batch: positions as `positions` says, padding keys
/// from the attention mask, and the bidirectional groups (Gemma 3 images) when given.
pub fn attention_for(batch: &PromptBatch, positions: Positions, groups: Option<Vec<Vec<u32>>>) -> AttentionInput {
    let key_mask: Vec<Vec<bool>> = batch.attention_mask.iter().map(|r| r.iter().map(|&m| m != 0).collect()).collect();
    // FromMask is transformers' generate: cumsum(mask) - 1, padding positions set to 1.
    let mut attn = AttentionInput::from_attention_mask(&key_mask);
    if positions == Positions::Arange {
        attn.position_ids = key_mask.iter().map(|r| (0..r.len() as i64).collect()).collect();
    }
    attn.bidirectional_groups = groups;
    attn
}

/// Token embeddings of a prompt batch (`[b, s, d]`). Ids for which `placeholder` holds are
/// embedded as id 0 (their rows are replaced afterwards); any other id outside the vocabulary is
/// an error naming its position, never an out-of-range gather.
pub(crate) fn embed_ids(text: &TextDecoder, batch: &PromptBatch, placeholder: impl Fn(i64) -> bool) -> Result<Tensor<3>> {
    let (b, s) = batch.dims()?;
    let vocab = text.config().vocab_size as i64;
    let mut flat = Vec::with_capacity(b * s);
    for (r, row) in batch.input_ids.iter().enumerate() {
        for (c, &t) in row.iter().enumerate() {
            if placeholder(t) {
                flat.push(0);
            } else if t < 0 || t >= vocab {
                return Err(ModelError::Input(format!("token id {t} at [{r}, {c}] is outside the vocabulary (size {vocab})")));
            } else {
                flat.push(t);
            }
        }
    }
    Ok(text.embed(Tensor::<2, Int>::from_data(TensorData::new(flat, [b, s]), &text.device())))
}

/// Numbers each contiguous run of image tokens in a row 1, 2, … (0 = not an image token), the
/// `image_group_ids` of Gemma 3's bidirectional mask (+1, so that 0 can mean "none").
pub fn image_groups(is_image: &[Vec<bool>]) -> Vec<Vec<u32>> {
    is_image
        .iter()
        .map(|row| {
            let mut group = 0u32;
            let mut prev = false;
            row.iter()
                .map(|&img| {
                    if img && !prev {
                        group += 1;
                    }
                    prev = img;
                    if img {
                        group
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

fn scoped<'a>(root: &Weights<'a>, prefix: &str) -> Weights<'a> {
    let p = prefix.trim_end_matches('.');
    if p.is_empty() {
        root.clone()
    } else {
        root.pp(p)
    }
}

/// `TextConfig::from_config_json` names a bare `config.json`; say which folder's.
fn with_path(e: ModelError, path: &Path) -> ModelError {
    match e {
        ModelError::Config { reason, .. } => ModelError::Config { path: path.to_path_buf(), reason },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::image_groups;

    #[test]
    fn groups_number_each_contiguous_run() {
        let row = vec![false, true, true, false, false, true, false, true];
        assert_eq!(image_groups(&[row]), vec![vec![0, 1, 1, 0, 0, 2, 0, 3]]);
    }

    #[test]
    fn groups_restart_per_row() {
        let rows = vec![vec![true, false, true], vec![false, true, true]];
        assert_eq!(image_groups(&rows), vec![vec![1, 0, 2], vec![0, 1, 1]]);
    }
}
