//! Prompt text + images → model inputs, as transformers' `Gemma3Processor` and
//! `LlavaProcessor` build them: each image placeholder expanded to the number of tokens the
//! vision tower produces, then tokenised; left-padded batches.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{
    config_err, read_json_opt, GenerationDefaults, SpecialTokens, StopTokens, TokenizerConfig,
};
use crate::error::{PromptError, Result};
use crate::template::{ChatTemplate, Message};
use crate::tokenizer::Tokenizer;

/// How a model family marks images in the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTokens {
    /// Gemma 3 (`model_type` `gemma3`): the chat template writes `boi` once per image; the
    /// processor replaces it with `"\n\n" + boi + image_token × tokens_per_image + eoi + "\n\n"`
    /// (`Gemma3Processor.full_image_sequence`, transformers 4.57) and marks the image tokens
    /// with `token_type_ids` = 1.
    Gemma3 {
        /// `<start_of_image>`: the placeholder in the rendered text.
        boi: String,
        /// `<end_of_image>`.
        eoi: String,
        /// `<image_soft_token>`: one per image embedding.
        image_token: String,
        /// Id of `image_token`.
        image_token_id: u32,
        /// `image_seq_length` (processor_config.json) = `mm_tokens_per_image` (config.json).
        tokens_per_image: usize,
    },
    /// LLaVA (`model_type` `llava`): each `<image>` is repeated `tokens_per_image` times
    /// (`LlavaProcessor.__call__`).
    Llava {
        /// `<image>`.
        image_token: String,
        /// Id of `image_token`.
        image_token_id: u32,
        /// `(height / patch) · (width / patch) + num_additional_image_tokens`, minus 1 for the
        /// `default` feature-select strategy (which drops CLS).
        tokens_per_image: usize,
    },
    /// A text-only model: prompts may not carry images.
    None,
}

/// One tokenised prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids after placeholder expansion, `[seq]`.
    pub input_ids: Vec<u32>,
    /// 1 for every token (an unpadded prompt), `[seq]`.
    pub attention_mask: Vec<u32>,
    /// Gemma 3 only: 1 on image soft tokens, 0 elsewhere, `[seq]`.
    pub token_type_ids: Option<Vec<u32>>,
}

/// Several prompts, left-padded to one length (the layout `generate` expects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `[batch][seq]`; padding positions hold `pad_token_id`.
    pub input_ids: Vec<Vec<u32>>,
    /// `[batch][seq]`; 0 on padding.
    pub attention_mask: Vec<Vec<u32>>,
    /// `[batch][seq]`, Gemma 3 only; 0 on padding.
    pub token_type_ids: Option<Vec<Vec<u32>>>,
    /// The id used for padding.
    pub pad_token_id: u32,
}

/// Everything needed to turn a conversation into model inputs for one model folder.
#[derive(Debug)]
pub struct Processor {
    dir: PathBuf,
    model_type: String,
    tokenizer: Tokenizer,
    tokenizer_config: TokenizerConfig,
    template: Option<ChatTemplate>,
    generation: GenerationDefaults,
    images: ImageTokens,
    pad_token_id: Option<u32>,
}

impl Processor {
    /// Loads a HuggingFace model folder: `config.json` (model type, token ids),
    /// `tokenizer.json`, `tokenizer_config.json` / `special_tokens_map.json`, the chat
    /// template (optional: [`Processor::template`] is `None` without one),
    /// `processor_config.json` / `preprocessor_config.json` (image token counts) and
    /// `generation_config.json`.
    pub fn load(dir: &Path) -> Result<Processor> {
        let cfg_path = dir.join("config.json");
        let config = read_json_opt(&cfg_path)?.ok_or_else(|| PromptError::Io {
            path: cfg_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "config.json not found"),
        })?;
        let model_type = config
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| config_err(&cfg_path, "no string \"model_type\""))?
            .to_owned();
        let tokenizer_config = TokenizerConfig::load(dir)?;
        let tokenizer = Tokenizer::load_with_config(dir, &tokenizer_config)?;
        let template = match ChatTemplate::load(dir, tokenizer_config.special.clone(), None) {
            Ok(t) => Some(t),
            Err(PromptError::NoChatTemplate { .. }) => None,
            Err(e) => return Err(e),
        };
        let generation = GenerationDefaults::load(dir)?;
        let proc_path = dir.join("processor_config.json");
        let proc_cfg = read_json_opt(&proc_path)?.unwrap_or(Value::Null);
        let images = match model_type.as_str() {
            "gemma3" => gemma3_tokens(
                &tokenizer,
                &tokenizer_config.special,
                &config,
                &cfg_path,
                &proc_cfg,
            )?,
            "llava" => llava_tokens(
                dir,
                &tokenizer,
                &tokenizer_config.special,
                &config,
                &cfg_path,
                &proc_cfg,
            )?,
            _ => ImageTokens::None,
        };
        let pad_token_id = match tokenizer_config.special.pad() {
            Some(t) => Some(tokenizer.require_id(t, "pad_token")?),
            None => generation.pad_token_id,
        };
        Ok(Processor {
            dir: dir.to_path_buf(),
            model_type,
            tokenizer,
            tokenizer_config,
            template,
            generation,
            images,
            pad_token_id,
        })
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `config.json`'s `model_type`.
    pub fn model_type(&self) -> &str {
        &self.model_type
    }
    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    /// The special tokens (tokenizer_config.json + special_tokens_map.json).
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.tokenizer_config.special
    }
    /// The chat template, if the folder has one.
    pub fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }
    /// Generation defaults (stop tokens, sampling settings).
    pub fn generation(&self) -> &GenerationDefaults {
        &self.generation
    }
    /// Stop tokens from `generation_config.json` / `config.json`.
    pub fn stop_tokens(&self) -> StopTokens {
        self.generation.stop_tokens()
    }
    /// How images are marked.
    pub fn image_tokens(&self) -> &ImageTokens {
        &self.images
    }
    /// The id padding uses: the tokenizer's `pad_token`, else `pad_token_id` of
    /// generation_config.json / config.json.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token_id
    }

    /// Replaces each image placeholder of `text` by the model's image token sequence (see
    /// [`ImageTokens`]). The number of placeholders must equal `num_images`
    /// (`prompt_index` only labels the error). A text-only model accepts no images.
    pub fn expand_images(
        &self,
        text: &str,
        num_images: usize,
        prompt_index: usize,
    ) -> Result<String> {
        let (placeholder, replacement) = match &self.images {
            ImageTokens::Gemma3 {
                boi,
                eoi,
                image_token,
                tokens_per_image,
                ..
            } => (
                boi,
                format!(
                    "\n\n{boi}{}{eoi}\n\n",
                    image_token.repeat(*tokens_per_image)
                ),
            ),
            ImageTokens::Llava {
                image_token,
                tokens_per_image,
                ..
            } => (image_token, image_token.repeat(*tokens_per_image)),
            ImageTokens::None => {
                if num_images > 0 {
                    return Err(PromptError::NoImageSupport {
                        path: self.dir.join("config.json"),
                        model_type: self.model_type.clone(),
                        images: num_images,
                    });
                }
                return Ok(text.to_owned());
            }
        };
        let found = text.matches(placeholder.as_str()).count();
        if found != num_images {
            return Err(PromptError::ImageCount {
                prompt_index,
                token: placeholder.clone(),
                placeholders: found,
                images: num_images,
            });
        }
        Ok(text.replace(placeholder.as_str(), &replacement))
    }

    /// Tokenises one rendered prompt with `num_images` images, like
    /// `processor(text=text, images=[...])`: placeholders expanded, then
    /// `tokenizer(text, add_special_tokens=..)` (transformers' processors default to true,
    /// which puts a second `<bos>` before a template that already starts with one; see
    /// [`Processor::encode_chat`] for what `apply_chat_template(tokenize=True)` does).
    pub fn encode(
        &self,
        text: &str,
        num_images: usize,
        add_special_tokens: bool,
    ) -> Result<Encoded> {
        self.encode_indexed(text, num_images, add_special_tokens, 0)
    }

    fn encode_indexed(
        &self,
        text: &str,
        num_images: usize,
        add_special_tokens: bool,
        prompt_index: usize,
    ) -> Result<Encoded> {
        let expanded = self.expand_images(text, num_images, prompt_index)?;
        let input_ids = self.tokenizer.encode(&expanded, add_special_tokens)?;
        let (image_id, per_image) = match &self.images {
            ImageTokens::Gemma3 {
                image_token_id,
                tokens_per_image,
                ..
            }
            | ImageTokens::Llava {
                image_token_id,
                tokens_per_image,
                ..
            } => (Some(*image_token_id), *tokens_per_image),
            ImageTokens::None => (None, 0),
        };
        if let Some(id) = image_id {
            // transformers' `_check_special_mm_tokens`: the tokenizer must keep every image
            // token whole, or features and positions would not line up.
            let n = input_ids.iter().filter(|&&t| t == id).count();
            if n != num_images * per_image {
                return Err(PromptError::Tokenize {
                    path: self.tokenizer.path().to_path_buf(),
                    message: format!(
                        "prompt {prompt_index}: {n} image token ids ({id}) after tokenisation, expected {} ({num_images} image(s) × {per_image})",
                        num_images * per_image
                    ),
                });
            }
        }
        let token_type_ids = match &self.images {
            ImageTokens::Gemma3 { image_token_id, .. } => Some(
                input_ids
                    .iter()
                    .map(|&t| u32::from(t == *image_token_id))
                    .collect(),
            ),
            _ => None,
        };
        Ok(Encoded {
            attention_mask: vec![1; input_ids.len()],
            input_ids,
            token_type_ids,
        })
    }

    /// Renders `messages` with the folder's chat template and tokenises the result, counting
    /// the images from the messages' `{"type": "image"}` parts. As transformers'
    /// `apply_chat_template(..., tokenize=True)` does, special tokens are not added again when
    /// the rendered text already starts with the `bos_token`. Returns the rendered text too.
    pub fn encode_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<(String, Encoded)> {
        let template = self
            .template
            .as_ref()
            .ok_or_else(|| PromptError::NoChatTemplate {
                dir: self.dir.clone(),
            })?;
        let text = template.render(messages, add_generation_prompt)?;
        let num_images = messages.iter().map(Message::image_count).sum();
        let add_special = !self
            .special_tokens()
            .bos()
            .is_some_and(|bos| text.starts_with(bos));
        let encoded = self.encode(&text, num_images, add_special)?;
        Ok((text, encoded))
    }

    /// Tokenises several prompts (`image_counts[i]` images in `texts[i]`) and left-pads them
    /// into one [`Batch`].
    pub fn encode_batch(
        &self,
        texts: &[&str],
        image_counts: &[usize],
        add_special_tokens: bool,
    ) -> Result<Batch> {
        if texts.len() != image_counts.len() {
            return Err(PromptError::BatchShape {
                texts: texts.len(),
                image_counts: image_counts.len(),
            });
        }
        let rows = texts
            .iter()
            .zip(image_counts)
            .enumerate()
            .map(|(i, (t, &n))| self.encode_indexed(t, n, add_special_tokens, i))
            .collect::<Result<Vec<_>>>()?;
        self.pad_left(rows)
    }

    /// Left-pads encoded prompts to the longest one with [`Processor::pad_token_id`]
    /// (transformers' `padding_side="left"`): padding gets attention_mask 0 and
    /// token_type_ids 0.
    pub fn pad_left(&self, rows: Vec<Encoded>) -> Result<Batch> {
        let len = rows.iter().map(|r| r.input_ids.len()).max().unwrap_or(0);
        let needs_padding = rows.iter().any(|r| r.input_ids.len() < len);
        let pad = match self.pad_token_id {
            Some(p) => p,
            None if !needs_padding => 0,
            None => {
                return Err(config_err(
                    &self.dir.join("tokenizer_config.json"),
                    "prompts of different lengths need padding but no pad_token (tokenizer_config.json) or pad_token_id (generation_config.json, config.json) is set",
                ))
            }
        };
        let has_types = rows.iter().any(|r| r.token_type_ids.is_some());
        let mut batch = Batch {
            input_ids: Vec::with_capacity(rows.len()),
            attention_mask: Vec::with_capacity(rows.len()),
            token_type_ids: has_types.then(Vec::new),
            pad_token_id: pad,
        };
        for row in rows {
            let n = len - row.input_ids.len();
            let mut ids = vec![pad; n];
            ids.extend(&row.input_ids);
            let mut mask = vec![0; n];
            mask.extend(&row.attention_mask);
            batch.input_ids.push(ids);
            batch.attention_mask.push(mask);
            if let Some(types) = batch.token_type_ids.as_mut() {
                let mut t = vec![0; n];
                match &row.token_type_ids {
                    Some(tt) => t.extend(tt),
                    None => t.extend(std::iter::repeat_n(0, row.input_ids.len())),
                }
                types.push(t);
            }
        }
        Ok(batch)
    }
}

fn get_usize(v: &Value, key: &str) -> Option<usize> {
    v.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

fn gemma3_tokens(
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    config: &Value,
    cfg_path: &Path,
    proc_cfg: &Value,
) -> Result<ImageTokens> {
    // The published Gemma 3 tokenizer_config.json names these as extra special tokens; the
    // defaults are the same strings, for folders written without them.
    let boi = special
        .get("boi_token")
        .unwrap_or("<start_of_image>")
        .to_owned();
    let eoi = special
        .get("eoi_token")
        .unwrap_or("<end_of_image>")
        .to_owned();
    let image_token = special
        .get("image_token")
        .unwrap_or("<image_soft_token>")
        .to_owned();
    let image_token_id = tokenizer.require_id(&image_token, "image_token")?;
    tokenizer.require_id(&boi, "boi_token")?;
    tokenizer.require_id(&eoi, "eoi_token")?;
    if let Some(cfg_id) = config.get("image_token_index").and_then(Value::as_u64) {
        if cfg_id != u64::from(image_token_id) {
            return Err(config_err(
                cfg_path,
                format!("image_token_index {cfg_id} but the tokenizer maps {image_token:?} to {image_token_id}"),
            ));
        }
    }
    let tokens_per_image = get_usize(proc_cfg, "image_seq_length")
        .or_else(|| get_usize(config, "mm_tokens_per_image"))
        .ok_or_else(|| {
            config_err(
                cfg_path,
                "tokens per image unknown: neither processor_config.json \"image_seq_length\" nor config.json \"mm_tokens_per_image\"",
            )
        })?;
    Ok(ImageTokens::Gemma3 {
        boi,
        eoi,
        image_token,
        image_token_id,
        tokens_per_image,
    })
}

fn llava_tokens(
    dir: &Path,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    config: &Value,
    cfg_path: &Path,
    proc_cfg: &Value,
) -> Result<ImageTokens> {
    let proc_path = dir.join("processor_config.json");
    let image_token = proc_cfg
        .get("image_token")
        .and_then(Value::as_str)
        .or_else(|| special.get("image_token"))
        .unwrap_or("<image>")
        .to_owned();
    let image_token_id = tokenizer.require_id(&image_token, "image_token")?;
    if let Some(cfg_id) = config.get("image_token_index").and_then(Value::as_u64) {
        if cfg_id != u64::from(image_token_id) {
            return Err(config_err(
                cfg_path,
                format!("image_token_index {cfg_id} but the tokenizer maps {image_token:?} to {image_token_id}"),
            ));
        }
    }
    let vision = config.get("vision_config").unwrap_or(&Value::Null);
    let patch = get_usize(proc_cfg, "patch_size")
        .or_else(|| get_usize(vision, "patch_size"))
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            config_err(
                &proc_path,
                "patch_size unknown (processor_config.json or config.json vision_config)",
            )
        })?;
    let additional = get_usize(proc_cfg, "num_additional_image_tokens").unwrap_or(0);
    let strategy = proc_cfg
        .get("vision_feature_select_strategy")
        .and_then(Value::as_str)
        .or_else(|| {
            config
                .get("vision_feature_select_strategy")
                .and_then(Value::as_str)
        })
        .unwrap_or("default");
    let (h, w) = llava_image_size(dir, vision, cfg_path)?;
    let mut tokens = (h / patch) * (w / patch) + additional;
    if strategy == "default" {
        tokens = tokens.checked_sub(1).ok_or_else(|| {
            config_err(
                &proc_path,
                "strategy \"default\" drops one token but the image has none",
            )
        })?;
    }
    Ok(ImageTokens::Llava {
        image_token,
        image_token_id,
        tokens_per_image: tokens,
    })
}

/// The pixel size of a processed LLaVA image, which is what `LlavaProcessor` counts patches
/// of: `crop_size` when the image processor centre-crops (CLIPImageProcessor's default),
/// otherwise `size` (`{height, width}` or a square `shortest_edge`), otherwise
/// `vision_config.image_size`.
fn llava_image_size(dir: &Path, vision: &Value, cfg_path: &Path) -> Result<(usize, usize)> {
    let pre_path = dir.join("preprocessor_config.json");
    let hw = |v: &Value| -> Option<(usize, usize)> {
        if let Some(n) = v.as_u64() {
            return Some((n as usize, n as usize));
        }
        match (
            get_usize(v, "height"),
            get_usize(v, "width"),
            get_usize(v, "shortest_edge"),
        ) {
            (Some(h), Some(w), _) => Some((h, w)),
            (_, _, Some(s)) => Some((s, s)),
            _ => None,
        }
    };
    if let Some(pre) = read_json_opt(&pre_path)? {
        let crop = pre
            .get("do_center_crop")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if crop {
            if let Some(s) = pre.get("crop_size").and_then(hw) {
                return Ok(s);
            }
        }
        if let Some(s) = pre.get("size").and_then(hw) {
            return Ok(s);
        }
    }
    get_usize(vision, "image_size")
        .map(|s| (s, s))
        .ok_or_else(|| config_err(cfg_path, "LLaVA image size unknown (preprocessor_config.json crop_size/size or vision_config.image_size)"))
}
