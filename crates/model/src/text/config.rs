//! Text-decoder configuration read from the checkpoint's own `config.json`.
//!
//! Accepted: a causal-LM config (`model_type` `gemma3_text`, `llama`, `mistral`, `qwen2`) or a
//! VLM config carrying the decoder under `text_config` (`gemma3`, `llava`). A missing key takes
//! the default of transformers' own config class (4.57: `Gemma3TextConfig`, `LlamaConfig`,
//! `MistralConfig`, `Qwen2Config`), as `from_pretrained` would. Both RoPE spellings are read:
//! 4.x `rope_theta` + `rope_scaling` (+ Gemma's `rope_local_base_freq`) and 5.x
//! `rope_parameters` (flat, or nested per layer type).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::vision::config::Activation;

/// Which decoder architecture: they differ in norms, MLP, scaling and soft-capping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TextFamily {
    /// Gemma 3: `(1 + w)` RMSNorm, four norms per layer, QK-norm, √hidden embedding scale,
    /// `query_pre_attn_scalar`, local/global RoPE, optional soft-capping.
    Gemma3,
    /// Llama 2/3, Mistral, Qwen2: plain RMSNorm, SwiGLU, 1/√head_dim scaling.
    Llama,
}

/// The attention span of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LayerType {
    /// Causal over the whole sequence (`full_attention`).
    Full,
    /// Causal over the last `sliding_window` positions (`sliding_attention`).
    Sliding,
}

/// How RoPE frequencies are derived (transformers `modeling_rope_utils.py`, `rope_type`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum RopeScaling {
    /// `default`: inv_freq = θ^(-2i/d).
    Default,
    /// `linear`: inv_freq / factor (positions interpolated).
    Linear { factor: f64 },
    /// `llama3`: low frequencies divided by `factor`, high ones kept, a smooth ramp between
    /// (Llama 3.1 `_compute_llama3_parameters`).
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
    /// `dynamic` (NTK-aware): beyond `max_position_embeddings` the base grows with the longest
    /// position of the forward pass (`_compute_dynamic_ntk_parameters`); within it, `default`.
    Dynamic { factor: f64, max_position_embeddings: f64 },
}

/// RoPE of one layer type.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rope {
    /// Base θ.
    pub theta: f64,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// Hyper-parameters of a decoder-only text model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TextConfig {
    /// Architecture family.
    pub family: TextFamily,
    /// `model_type` of the text config (`gemma3_text`, `llama`, `qwen2` …).
    pub model_type: String,
    /// Token table rows.
    pub vocab_size: usize,
    /// Residual width d.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// MLP activation (`hidden_activation` for Gemma, `hidden_act` otherwise).
    pub hidden_act: Activation,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Biases on q/k/v (Qwen2 always; Llama/Gemma when `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama/Gemma `attention_bias`; never Qwen2 or Mistral).
    pub o_bias: bool,
    /// Biases on the MLP projections (Llama `mlp_bias`).
    pub mlp_bias: bool,
    /// LM head shares the embedding table.
    pub tie_word_embeddings: bool,
    /// One entry per layer.
    pub layer_types: Vec<LayerType>,
    /// Window of sliding layers, in positions (`kv_idx > q_idx - sliding_window`).
    pub sliding_window: Option<usize>,
    /// RoPE of full-attention layers.
    pub rope_global: Rope,
    /// RoPE of sliding layers (Gemma 3: `rope_local_base_freq`, no scaling; others: = global).
    pub rope_local: Rope,
    /// Attention scores are multiplied by this (Gemma: `query_pre_attn_scalar`^-½; others
    /// head_dim^-½).
    pub attention_scale: f64,
    /// Gemma's `attn_logit_softcapping`, as configured. Not applied: transformers'
    /// `Gemma3Attention` (4.57 and 5.x) never passes it to its attention function (Gemma 3
    /// replaced Gemma 2's score capping with QK-norm), and the decoder follows the reference.
    pub attn_logit_softcapping: Option<f64>,
    /// `c·tanh(l/c)` on the output logits.
    pub final_logit_softcapping: Option<f64>,
    /// Longest trained context (informational; RoPE `llama3` default original length).
    pub max_position_embeddings: usize,
    /// `bos_token_id`, when set.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (an int or a list in config.json).
    pub eos_token_ids: Vec<u32>,
    /// `pad_token_id`, when set.
    pub pad_token_id: Option<u32>,
}

impl TextConfig {
    /// Reads `DIR/config.json`; errors name that file.
    pub fn from_dir(dir: &Path) -> Result<TextConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let root: Value =
            serde_json::from_str(&text).map_err(|e| ModelError::Config { path: path.clone(), reason: format!("invalid JSON: {e}") })?;
        parse(&root).map_err(|reason| ModelError::Config { path, reason })
    }

    /// Parses a parsed config.json (top level, or its `text_config` for a VLM). Errors carry the
    /// path `config.json`; [`TextConfig::from_dir`] names the real file.
    pub fn from_config_json(root: &Value) -> Result<TextConfig> {
        parse(root).map_err(|reason| ModelError::Config { path: PathBuf::from("config.json"), reason })
    }

    /// Whether layer `i` is a sliding-window layer.
    pub fn is_sliding(&self, i: usize) -> bool {
        self.layer_types[i] == LayerType::Sliding && self.sliding_window.is_some()
    }
}

/// The parts of config.json the decoder reads, with "absent" and "null" kept apart (Mistral's
/// `sliding_window: null` means no window, an absent key means 4096).
struct Obj<'a>(&'a Value);

impl Obj<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    fn usize(&self, key: &str, default: usize) -> std::result::Result<usize, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0 && n < 1 << 32)
                .map(|n| n as usize)
                .ok_or_else(|| format!("`{key}` must be a positive integer, found {v}")),
        }
    }

    fn f64(&self, key: &str, default: f64) -> std::result::Result<f64, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("`{key}` must be a number, found {v}")),
        }
    }

    fn opt_f64(&self, key: &str) -> std::result::Result<Option<f64>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a positive number or null, found {v}")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> std::result::Result<bool, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| format!("`{key}` must be true or false, found {v}")),
        }
    }

    fn token(&self, key: &str, default: Option<u32>) -> std::result::Result<Vec<u32>, String> {
        let one = |v: &Value| v.as_u64().filter(|&n| n < 1 << 31).map(|n| n as u32);
        match self.get(key) {
            None => Ok(default.into_iter().collect()),
            Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                items.iter().map(|v| one(v).ok_or_else(|| format!("`{key}` must hold token ids, found {v}"))).collect()
            }
            Some(v) => one(v).map(|n| vec![n]).ok_or_else(|| format!("`{key}` must be a token id, found {v}")),
        }
    }
}

fn parse(root: &Value) -> std::result::Result<TextConfig, String> {
    if !root.is_object() {
        return Err("config.json is not a JSON object".into());
    }
    let top_type = root.get("model_type").and_then(Value::as_str).unwrap_or("");
    let (text, nested) = match root.get("text_config") {
        Some(v) if v.is_object() => (v, true),
        _ => (root, false),
    };
    let text_type = match text.get("model_type").and_then(Value::as_str) {
        Some(t) => t,
        // transformers fills the nested type from the VLM class: LlavaConfig → llama,
        // Gemma3Config → gemma3_text.
        None if nested && top_type == "gemma3" => "gemma3_text",
        None if nested && top_type == "llava" => "llama",
        None => top_type,
    };
    let o = Obj(text);
    let family = match text_type {
        "gemma3_text" | "gemma3" => TextFamily::Gemma3,
        "llama" | "mistral" | "qwen2" => TextFamily::Llama,
        other => {
            return Err(format!(
                "unsupported text model_type `{}`; supported: gemma3_text, llama, mistral, qwen2",
                if other.is_empty() { "<none>" } else { other }
            ))
        }
    };
    let gemma = family == TextFamily::Gemma3;
    // Class defaults: Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config (transformers 4.57).
    let (d_vocab, d_hidden, d_inter, d_layers, d_heads, d_max_pos, d_theta) = match text_type {
        "gemma3_text" | "gemma3" => (262_208, 2304, 9216, 26, 8, 131_072, 1_000_000.0),
        "mistral" => (32_000, 4096, 14_336, 32, 32, 4096 * 32, 10_000.0),
        "qwen2" => (151_936, 4096, 22_016, 32, 32, 32_768, 10_000.0),
        _ => (32_000, 4096, 11_008, 32, 32, 2048, 10_000.0),
    };
    let hidden_size = o.usize("hidden_size", d_hidden)?;
    let num_attention_heads = o.usize("num_attention_heads", d_heads)?;
    let d_kv = match text_type {
        "gemma3_text" | "gemma3" => 4,
        "mistral" => 8,
        _ => num_attention_heads,
    };
    let num_key_value_heads = o.usize("num_key_value_heads", d_kv)?;
    let d_head_dim = if gemma { 256 } else { hidden_size / num_attention_heads };
    let head_dim = o.usize("head_dim", d_head_dim)?;
    let num_hidden_layers = o.usize("num_hidden_layers", d_layers)?;
    let max_position_embeddings = o.usize("max_position_embeddings", d_max_pos)?;

    let act_key = if gemma { "hidden_activation" } else { "hidden_act" };
    let act_name = o
        .get(act_key)
        .or_else(|| o.get("hidden_act"))
        .and_then(Value::as_str)
        .unwrap_or(if gemma { "gelu_pytorch_tanh" } else { "silu" });
    let hidden_act = Activation::from_hf(act_name).ok_or_else(|| format!("unsupported {act_key} `{act_name}`"))?;

    // Window and layer types.
    let sliding_window = match (text_type, o.get("sliding_window")) {
        (_, Some(Value::Null)) => None,
        ("qwen2", _) if !o.bool("use_sliding_window", false)? => None,
        (_, None) => match text_type {
            "gemma3_text" | "gemma3" | "mistral" | "qwen2" => Some(4096),
            _ => None,
        },
        (_, Some(_)) => Some(o.usize("sliding_window", 4096)?),
    };
    if gemma && o.bool("use_bidirectional_attention", false)? {
        return Err("`use_bidirectional_attention` (Gemma 3 embedding models) is not supported".into());
    }
    let layer_types = match o.get("layer_types") {
        Some(Value::Array(items)) => {
            let types = items
                .iter()
                .map(|v| match v.as_str() {
                    Some("full_attention") => Ok(LayerType::Full),
                    Some("sliding_attention") => Ok(LayerType::Sliding),
                    _ => Err(format!("`layer_types` entry {v} is neither full_attention nor sliding_attention")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if types.len() != num_hidden_layers {
                return Err(format!("`layer_types` has {} entries for {num_hidden_layers} layers", types.len()));
            }
            types
        }
        Some(Value::Null) | None => (0..num_hidden_layers)
            .map(|i| match text_type {
                // Legacy `sliding_window_pattern` (default 6): every pattern-th layer is global.
                "gemma3_text" | "gemma3" => {
                    let pattern = o.usize("sliding_window_pattern", 6).unwrap_or(6);
                    if (i + 1) % pattern != 0 {
                        LayerType::Sliding
                    } else {
                        LayerType::Full
                    }
                }
                // MistralModel applies its window to every layer.
                "mistral" if sliding_window.is_some() => LayerType::Sliding,
                "qwen2" if sliding_window.is_some() && i >= o.usize("max_window_layers", 28).unwrap_or(28) => LayerType::Sliding,
                _ => LayerType::Full,
            })
            .collect(),
        Some(v) => return Err(format!("`layer_types` must be a list, found {v}")),
    };
    if let Some(0) = sliding_window {
        return Err("`sliding_window` must be positive".into());
    }

    let (rope_global, rope_local) = ropes(&o, text_type, d_theta, max_position_embeddings)?;

    let attention_scale = if gemma {
        let scalar = o.f64("query_pre_attn_scalar", 256.0)?;
        if scalar <= 0.0 {
            return Err(format!("`query_pre_attn_scalar` must be positive, found {scalar}"));
        }
        scalar.powf(-0.5)
    } else {
        (head_dim as f64).powf(-0.5)
    };
    let attention_bias = o.bool("attention_bias", false)?;
    let (qkv_bias, o_bias) = match text_type {
        "qwen2" => (true, false),
        "mistral" => (false, false),
        _ => (attention_bias, attention_bias),
    };
    // transformers ties by `get_text_config(decoder=True).tie_word_embeddings`: the text
    // config's own key, else its class default (true for Gemma 3 only), never the VLM's.
    let tie_word_embeddings = o.bool("tie_word_embeddings", gemma)?;
    let (d_bos, d_eos, d_pad) = match text_type {
        "gemma3_text" | "gemma3" => (Some(2), Some(1), Some(0)),
        "qwen2" => (None, None, None),
        _ => (Some(1), Some(2), None),
    };
    let first = |v: Vec<u32>| v.first().copied();
    let cfg = TextConfig {
        family,
        model_type: text_type.to_string(),
        vocab_size: o.usize("vocab_size", d_vocab)?,
        hidden_size,
        intermediate_size: o.usize("intermediate_size", d_inter)?,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        hidden_act,
        rms_norm_eps: o.f64("rms_norm_eps", 1e-6)?,
        qkv_bias,
        o_bias,
        mlp_bias: text_type == "llama" && o.bool("mlp_bias", false)?,
        tie_word_embeddings,
        layer_types,
        sliding_window,
        rope_global,
        rope_local,
        attention_scale,
        attn_logit_softcapping: if gemma { o.opt_f64("attn_logit_softcapping")? } else { None },
        final_logit_softcapping: if gemma { o.opt_f64("final_logit_softcapping")? } else { None },
        max_position_embeddings,
        bos_token_id: first(o.token("bos_token_id", d_bos)?),
        eos_token_ids: o.token("eos_token_id", d_eos)?,
        pad_token_id: first(o.token("pad_token_id", d_pad)?),
    };
    if cfg.num_attention_heads % cfg.num_key_value_heads != 0 {
        return Err(format!(
            "num_attention_heads {} is not a multiple of num_key_value_heads {}",
            cfg.num_attention_heads, cfg.num_key_value_heads
        ));
    }
    if cfg.head_dim % 2 != 0 {
        return Err(format!("head_dim {} must be even for RoPE", cfg.head_dim));
    }
    if cfg.rms_norm_eps <= 0.0 {
        return Err(format!("`rms_norm_eps` must be positive, found {}", cfg.rms_norm_eps));
    }
    Ok(cfg)
}

/// Global and local RoPE from either spelling.
fn ropes(o: &Obj, text_type: &str, d_theta: f64, max_pos: usize) -> std::result::Result<(Rope, Rope), String> {
    let gemma = matches!(text_type, "gemma3_text" | "gemma3");
    let theta = o.f64("rope_theta", d_theta)?;
    let local_theta = o.f64("rope_local_base_freq", 10_000.0)?;
    let params = match o.get("rope_parameters") {
        Some(v @ Value::Object(_)) => Some(v),
        _ => None,
    };
    // 5.x nested per layer type.
    if let Some(p) = params.filter(|p| p.get("full_attention").is_some() || p.get("sliding_attention").is_some()) {
        let global = match p.get("full_attention") {
            Some(v @ Value::Object(_)) => rope_from(v, theta, max_pos, "rope_parameters.full_attention")?,
            _ => Rope { theta, scaling: RopeScaling::Default },
        };
        let local = match p.get("sliding_attention") {
            Some(v @ Value::Object(_)) => rope_from(v, if gemma { local_theta } else { theta }, max_pos, "rope_parameters.sliding_attention")?,
            _ if gemma => Rope { theta: local_theta, scaling: RopeScaling::Default },
            _ => global,
        };
        return Ok((global, local));
    }
    // 4.x `rope_scaling` (or 5.x flat `rope_parameters`) next to `rope_theta`.
    let (scaling_src, name) = match o.get("rope_scaling") {
        Some(v @ Value::Object(_)) => (Some(v), "rope_scaling"),
        _ => (params, "rope_parameters"),
    };
    let global = match scaling_src {
        Some(v) => rope_from(v, theta, max_pos, name)?,
        None => Rope { theta, scaling: RopeScaling::Default },
    };
    // Gemma3TextModel builds its local rotary embedding with rope_local_base_freq and
    // `rope_type: default`, whatever the global scaling.
    let local = if gemma { Rope { theta: local_theta, scaling: RopeScaling::Default } } else { global };
    Ok((global, local))
}

fn rope_from(v: &Value, theta: f64, max_pos: usize, name: &str) -> std::result::Result<Rope, String> {
    let o = Obj(v);
    let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or("default");
    let theta = o.f64("rope_theta", theta)?;
    let factor = || -> std::result::Result<f64, String> {
        let f = o.f64("factor", f64::NAN)?;
        if f.is_nan() || f < 1.0 {
            return Err(format!("`{name}.factor` must be a number ≥ 1 for rope_type `{kind}`"));
        }
        Ok(f)
    };
    let scaling = match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear { factor: factor()? },
        "dynamic" => RopeScaling::Dynamic { factor: factor()?, max_position_embeddings: max_pos as f64 },
        "llama3" => RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: o.f64("low_freq_factor", 1.0)?,
            high_freq_factor: o.f64("high_freq_factor", 4.0)?,
            original_max_position_embeddings: o.f64("original_max_position_embeddings", max_pos as f64)?,
        },
        other => {
            return Err(format!("`{name}`: rope_type `{other}` is not supported (supported: default, linear, llama3, dynamic)"));
        }
    };
    if let RopeScaling::Llama3 { low_freq_factor, high_freq_factor, .. } = scaling {
        if high_freq_factor <= low_freq_factor {
            return Err(format!("`{name}`: high_freq_factor must exceed low_freq_factor"));
        }
    }
    if theta <= 0.0 {
        return Err(format!("rope theta must be positive, found {theta}"));
    }
    Ok(Rope { theta, scaling })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> std::result::Result<TextConfig, String> {
        parse(&serde_json::from_str(s).unwrap())
    }

    #[test]
    fn gemma3_defaults_and_legacy_pattern() {
        let cfg = parse_str(r#"{"model_type":"gemma3_text","num_hidden_layers":12,"sliding_window_pattern":6,"query_pre_attn_scalar":144}"#).unwrap();
        assert_eq!(cfg.family, TextFamily::Gemma3);
        assert_eq!(cfg.head_dim, 256);
        assert_eq!(cfg.num_key_value_heads, 4);
        assert!(cfg.tie_word_embeddings);
        assert_eq!(cfg.hidden_act, Activation::GeluTanh);
        assert_eq!(cfg.sliding_window, Some(4096));
        let full: Vec<usize> = (0..12).filter(|&i| cfg.layer_types[i] == LayerType::Full).collect();
        assert_eq!(full, vec![5, 11]);
        assert_eq!(cfg.rope_global, Rope { theta: 1e6, scaling: RopeScaling::Default });
        assert_eq!(cfg.rope_local, Rope { theta: 1e4, scaling: RopeScaling::Default });
        assert!((cfg.attention_scale - 1.0 / 12.0).abs() < 1e-15);
        assert_eq!((cfg.bos_token_id, cfg.eos_token_ids.clone(), cfg.pad_token_id), (Some(2), vec![1], Some(0)));
    }

    #[test]
    fn gemma3_vlm_nested_with_linear_global_scaling() {
        let cfg = parse_str(
            r#"{"model_type":"gemma3","text_config":{"hidden_size":64,"num_hidden_layers":2,"layer_types":["sliding_attention","full_attention"],
                "rope_scaling":{"rope_type":"linear","factor":8.0},"rope_local_base_freq":100.0,"final_logit_softcapping":5.0}}"#,
        )
        .unwrap();
        assert_eq!(cfg.model_type, "gemma3_text");
        assert_eq!(cfg.rope_global.scaling, RopeScaling::Linear { factor: 8.0 });
        assert_eq!(cfg.rope_local, Rope { theta: 100.0, scaling: RopeScaling::Default });
        assert_eq!(cfg.final_logit_softcapping, Some(5.0));
        assert!(cfg.is_sliding(0) && !cfg.is_sliding(1));
    }

    #[test]
    fn gemma3_v5_nested_rope_parameters() {
        let cfg = parse_str(
            r#"{"model_type":"gemma3_text","num_hidden_layers":2,"rope_parameters":{
                "full_attention":{"rope_type":"linear","factor":4.0,"rope_theta":5000.0},
                "sliding_attention":{"rope_type":"default","rope_theta":50.0}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.rope_global, Rope { theta: 5000.0, scaling: RopeScaling::Linear { factor: 4.0 } });
        assert_eq!(cfg.rope_local, Rope { theta: 50.0, scaling: RopeScaling::Default });
    }

    #[test]
    fn llama3_scaling_both_spellings() {
        let v4 = parse_str(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":500000.0,
                "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        )
        .unwrap();
        let v5 = parse_str(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
                "rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        )
        .unwrap();
        assert_eq!(v4.rope_global, v5.rope_global);
        assert_eq!(v4.rope_global.theta, 500000.0);
        assert_eq!(v4.head_dim, 16);
        assert!(!v4.tie_word_embeddings && !v4.qkv_bias);
        assert!(v4.layer_types.iter().all(|t| *t == LayerType::Full));
        assert_eq!(v4.sliding_window, None);
    }

    #[test]
    fn dynamic_scaling_records_the_trained_length() {
        let cfg = parse_str(r#"{"model_type":"llama","max_position_embeddings":8,"rope_scaling":{"type":"dynamic","factor":2.0}}"#).unwrap();
        assert_eq!(cfg.rope_global.scaling, RopeScaling::Dynamic { factor: 2.0, max_position_embeddings: 8.0 });
    }

    #[test]
    fn qwen2_biases_and_window_off_by_default() {
        let cfg = parse_str(r#"{"model_type":"qwen2","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"sliding_window":4096,"tie_word_embeddings":true}"#).unwrap();
        assert!(cfg.qkv_bias && !cfg.o_bias && cfg.tie_word_embeddings);
        assert_eq!(cfg.sliding_window, None);
    }

    #[test]
    fn mistral_null_window_vs_absent() {
        let none = parse_str(r#"{"model_type":"mistral","sliding_window":null}"#).unwrap();
        assert_eq!(none.sliding_window, None);
        let absent = parse_str(r#"{"model_type":"mistral","num_hidden_layers":2}"#).unwrap();
        assert_eq!(absent.sliding_window, Some(4096));
        assert!(absent.is_sliding(0) && absent.is_sliding(1));
        assert_eq!(absent.num_key_value_heads, 8);
    }

    #[test]
    fn llava_text_config_defaults_to_llama() {
        let cfg = parse_str(r#"{"model_type":"llava","text_config":{"hidden_size":64,"num_attention_heads":4,"eos_token_id":[2,7]}}"#).unwrap();
        assert_eq!(cfg.model_type, "llama");
        assert_eq!(cfg.eos_token_ids, vec![2, 7]);
        // The VLM's own key does not tie the text model's head.
        let cfg = parse_str(r#"{"model_type":"llava","tie_word_embeddings":true,"text_config":{"hidden_size":64,"num_attention_heads":4}}"#).unwrap();
        assert!(!cfg.tie_word_embeddings);
    }

    #[test]
    fn bad_configs_say_why() {
        assert!(parse_str(r#"{"model_type":"bert"}"#).unwrap_err().contains("unsupported"));
        assert!(parse_str(r#"{"model_type":"llama","num_attention_heads":6,"num_key_value_heads":4}"#).unwrap_err().contains("multiple"));
        assert!(parse_str(r#"{"model_type":"llama","rope_scaling":{"rope_type":"yarn","factor":2.0}}"#).unwrap_err().contains("yarn"));
        assert!(parse_str(r#"{"model_type":"gemma3_text","num_hidden_layers":2,"layer_types":["full_attention"]}"#).unwrap_err().contains("layer_types"));
        assert!(parse_str(r#"{"model_type":"llama","rope_scaling":{"rope_type":"linear"}}"#).unwrap_err().contains("factor"));
    }
}
