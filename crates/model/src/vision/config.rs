//! Vision-tower configuration read from the checkpoint's own `config.json`.
//!
//! Accepted layouts: a vision-only config (`model_type` `siglip_vision_model` /
//! `clip_vision_model`), or any config carrying the tower under `vision_config` (two-tower
//! `siglip` / `clip`, and the VLMs built on them: `gemma3`, `llava`, `paligemma`). Missing fields
//! take the defaults of transformers' `SiglipVisionConfig` / `CLIPVisionConfig`, as
//! `from_pretrained` would.

use std::path::Path;

use serde_json::Value;

use crate::error::{ModelError, Result};

/// Which vision transformer family: they differ in embeddings, norms and pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum VisionFamily {
    /// SigLIP: no class token, post-layernorm on every token, optional attention-pooling head.
    Siglip,
    /// CLIP ViT: class token, pre-layernorm, pooled output = post-layernorm of the class token.
    Clip,
}

/// The MLP activation named by `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Activation {
    /// `gelu`: exact, erf-based.
    GeluErf,
    /// `gelu_pytorch_tanh` / `gelu_new` / `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `quick_gelu`: x·σ(1.702·x) (original CLIP).
    QuickGelu,
    /// `relu`.
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    /// Parses a transformers `hidden_act` name.
    pub fn from_hf(name: &str) -> Option<Activation> {
        Some(match name {
            "gelu" => Activation::GeluErf,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            _ => return None,
        })
    }
}

/// Hyper-parameters of a SigLIP or CLIP vision transformer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VisionConfig {
    /// Architecture family.
    pub family: VisionFamily,
    /// Token width D.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (D must divide by it).
    pub num_attention_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Square input size the position table was trained for, in pixels.
    pub image_size: usize,
    /// Square patch size in pixels (kernel and stride of the patch embedding).
    pub patch_size: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Epsilon of every LayerNorm (SigLIP 1e-6, CLIP 1e-5).
    pub layer_norm_eps: f64,
    /// SigLIP only: whether the attention-pooling head exists (`vision_use_head`; true unless a
    /// config says otherwise, false in the towers of Gemma 3 / PaliGemma).
    pub use_head: bool,
    /// Two-tower CLIP: width of `visual_projection` (image_embeds), when the checkpoint has one.
    pub projection_dim: Option<usize>,
    /// Whether the whole config was a two-tower / VLM config (`vision_config` nested).
    pub nested: bool,
    /// The top-level `model_type`.
    pub model_type: String,
}

impl VisionConfig {
    /// Reads `DIR/config.json`.
    pub fn from_dir(dir: &Path) -> Result<VisionConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        VisionConfig::from_json_str(&text).map_err(|reason| ModelError::Config { path, reason })
    }

    /// Parses the text of a config.json.
    pub fn from_json_str(text: &str) -> std::result::Result<VisionConfig, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let model_type = root.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
        let (vision, nested) = match root.get("vision_config") {
            Some(v) if v.is_object() => (v, true),
            _ => (&root, false),
        };
        let vision_type = vision.get("model_type").and_then(Value::as_str).unwrap_or("");
        let family = match (vision_type, model_type.as_str()) {
            ("siglip_vision_model", _) | ("", "siglip" | "siglip_vision_model" | "gemma3" | "paligemma") => VisionFamily::Siglip,
            ("clip_vision_model", _) | ("", "clip" | "clip_vision_model" | "llava") => VisionFamily::Clip,
            _ => {
                return Err(format!(
                    "unsupported vision model_type `{}` (top level `{model_type}`); supported: siglip_vision_model, clip_vision_model",
                    if vision_type.is_empty() { "<none>" } else { vision_type }
                ))
            }
        };
        // transformers' defaults (SiglipVisionConfig / CLIPVisionConfig, 4.57).
        let (d_hidden, d_inter, d_patch, d_act, d_eps) = match family {
            VisionFamily::Siglip => (768, 3072, 16, "gelu_pytorch_tanh", 1e-6),
            VisionFamily::Clip => (768, 3072, 32, "quick_gelu", 1e-5),
        };
        let int = |key: &str, default: usize| -> std::result::Result<usize, String> {
            match vision.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n > 0 && n < 1 << 24)
                    .map(|n| n as usize)
                    .ok_or_else(|| format!("`{key}` must be a positive integer, found {v}")),
            }
        };
        let act_name = vision.get("hidden_act").and_then(Value::as_str).unwrap_or(d_act);
        let hidden_act = Activation::from_hf(act_name).ok_or_else(|| format!("unsupported hidden_act `{act_name}`"))?;
        let layer_norm_eps = match vision.get("layer_norm_eps") {
            None | Some(Value::Null) => d_eps,
            Some(v) => v.as_f64().filter(|e| *e > 0.0).ok_or_else(|| format!("`layer_norm_eps` must be a positive number, found {v}"))?,
        };
        let cfg = VisionConfig {
            family,
            hidden_size: int("hidden_size", d_hidden)?,
            intermediate_size: int("intermediate_size", d_inter)?,
            num_hidden_layers: int("num_hidden_layers", 12)?,
            num_attention_heads: int("num_attention_heads", 12)?,
            num_channels: int("num_channels", 3)?,
            image_size: int("image_size", 224)?,
            patch_size: int("patch_size", d_patch)?,
            hidden_act,
            layer_norm_eps,
            use_head: family == VisionFamily::Siglip && vision.get("vision_use_head").and_then(Value::as_bool).unwrap_or(true),
            // Two-tower CLIP keeps `projection_dim` at the top level; the tower's own is unused.
            projection_dim: if nested && family == VisionFamily::Clip && model_type == "clip" {
                Some(root.get("projection_dim").and_then(Value::as_u64).unwrap_or(512) as usize)
            } else {
                None
            },
            nested,
            model_type,
        };
        if cfg.hidden_size % cfg.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            ));
        }
        if cfg.image_size < cfg.patch_size {
            return Err(format!("image_size {} is smaller than patch_size {}", cfg.image_size, cfg.patch_size));
        }
        Ok(cfg)
    }

    /// Patches per side at the trained resolution.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Rows of the position table: patches, plus one for CLIP's class token.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + usize::from(self.family == VisionFamily::Clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vision_only_siglip_defaults_and_values() {
        let cfg = VisionConfig::from_json_str(r#"{"model_type":"siglip_vision_model","hidden_size":32,"patch_size":8,"image_size":32,"num_attention_heads":4}"#).unwrap();
        assert_eq!(cfg.family, VisionFamily::Siglip);
        assert_eq!(cfg.hidden_act, Activation::GeluTanh);
        assert_eq!(cfg.layer_norm_eps, 1e-6);
        assert!(cfg.use_head);
        assert_eq!(cfg.num_positions(), 16);
    }

    #[test]
    fn nested_gemma3_tower_has_no_head() {
        let cfg = VisionConfig::from_json_str(
            r#"{"model_type":"gemma3","vision_config":{"model_type":"siglip_vision_model","vision_use_head":false,"image_size":896,"patch_size":14,"hidden_size":1152,"num_attention_heads":16}}"#,
        )
        .unwrap();
        assert!(!cfg.use_head && cfg.nested);
        assert_eq!(cfg.grid(), 64);
    }

    #[test]
    fn clip_two_tower_projection_and_class_position() {
        let cfg = VisionConfig::from_json_str(r#"{"model_type":"clip","projection_dim":6,"vision_config":{"hidden_size":8,"num_attention_heads":2,"image_size":16,"patch_size":4}}"#).unwrap();
        assert_eq!(cfg.family, VisionFamily::Clip);
        assert_eq!(cfg.projection_dim, Some(6));
        assert_eq!(cfg.num_positions(), 17);
        assert_eq!(cfg.hidden_act, Activation::QuickGelu);
    }

    #[test]
    fn bad_configs_say_why() {
        assert!(VisionConfig::from_json_str(r#"{"model_type":"bert"}"#).unwrap_err().contains("unsupported"));
        assert!(VisionConfig::from_json_str(r#"{"model_type":"clip_vision_model","hidden_size":10,"num_attention_heads":3}"#).unwrap_err().contains("divisible"));
        assert!(VisionConfig::from_json_str(r#"{"model_type":"clip_vision_model","hidden_act":"mish"}"#).unwrap_err().contains("hidden_act"));
        assert!(VisionConfig::from_json_str("{").unwrap_err().contains("JSON"));
    }
}
