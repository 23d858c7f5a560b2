//! The small JSON files of a HuggingFace model folder that decide how prompts are built and
//! when generation stops: `tokenizer_config.json`, `special_tokens_map.json`,
//! `generation_config.json` and the token ids of `config.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{PromptError, Result};

/// Reads and parses a JSON file; `Ok(None)` when the file does not exist.
pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| PromptError::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PromptError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a text file; `Ok(None)` when it does not exist.
pub(crate) fn read_text_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PromptError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn config_err(path: &Path, message: impl Into<String>) -> PromptError {
    PromptError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A special token as transformers writes it: a plain string or an `AddedToken` object
/// (`{"content": "<bos>", "lstrip": false, ...}`); `null` means "not set".
fn token_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The special-token attributes transformers' tokenizers always have
/// (`SpecialTokensMixin.SPECIAL_TOKENS_ATTRIBUTES`, transformers 4.57), in its order.
const STANDARD_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// Special tokens by their transformers attribute name (`bos_token`, `eos_token`, …, plus
/// model-specific ones such as Gemma 3's `boi_token`, `eoi_token`, `image_token`), and the list of
/// additional special tokens. These are also the variables a chat template sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialTokens {
    /// Attribute name → token text. Only tokens that are set (non-empty) are present.
    pub named: BTreeMap<String, String>,
    /// `additional_special_tokens` (transformers 4.x) or the list form of
    /// `extra_special_tokens` (transformers 5.x).
    pub additional: Vec<String>,
}

impl SpecialTokens {
    /// The token text of an attribute, e.g. `get("bos_token")`.
    pub fn get(&self, attribute: &str) -> Option<&str> {
        self.named.get(attribute).map(String::as_str)
    }
    /// `bos_token`.
    pub fn bos(&self) -> Option<&str> {
        self.get("bos_token")
    }
    /// `eos_token`.
    pub fn eos(&self) -> Option<&str> {
        self.get("eos_token")
    }
    /// `pad_token`.
    pub fn pad(&self) -> Option<&str> {
        self.get("pad_token")
    }
    /// `unk_token`.
    pub fn unk(&self) -> Option<&str> {
        self.get("unk_token")
    }

    /// Merges one JSON object of token attributes (`tokenizer_config.json` or
    /// `special_tokens_map.json`); later calls override earlier ones, as transformers lets
    /// `special_tokens_map.json` override the config.
    fn merge_from(&mut self, obj: &serde_json::Map<String, Value>) {
        for (key, value) in obj {
            let standard = STANDARD_TOKENS.contains(&key.as_str());
            // Model-specific tokens are written at the top level too (`boi_token`, `image_token`),
            // next to non-token fields like `model_max_length`; only `*_token` strings count.
            if standard || (key.ends_with("_token") && !key.starts_with("add_")) {
                match token_string(value) {
                    Some(t) if !t.is_empty() => {
                        self.named.insert(key.clone(), t);
                    }
                    _ if standard => {
                        self.named.remove(key);
                    }
                    _ => {}
                }
            }
        }
        if let Some(list) = obj
            .get("additional_special_tokens")
            .and_then(Value::as_array)
        {
            self.additional = list.iter().filter_map(token_string).collect();
        }
        match obj.get("extra_special_tokens") {
            Some(Value::Object(extra)) => {
                for (key, value) in extra {
                    if let Some(t) = token_string(value) {
                        self.named.insert(key.clone(), t);
                    }
                }
            }
            Some(Value::Array(list)) => {
                self.additional = list.iter().filter_map(token_string).collect();
            }
            _ => {}
        }
    }
}

/// What `tokenizer_config.json` (+ `special_tokens_map.json`) says about tokenisation.
#[derive(Debug, Clone, Default)]
pub struct TokenizerConfig {
    /// The file read (for error messages); `None` when the folder has no `tokenizer_config.json`.
    pub path: Option<PathBuf>,
    /// `tokenizer_class`, e.g. `GemmaTokenizer`, `LlamaTokenizerFast`.
    pub tokenizer_class: Option<String>,
    /// Special tokens after `special_tokens_map.json` has been applied.
    pub special: SpecialTokens,
    /// `add_bos_token` when written in the file.
    pub add_bos_token: Option<bool>,
    /// `add_eos_token` when written in the file.
    pub add_eos_token: Option<bool>,
    /// `clean_up_tokenization_spaces` (transformers' default when absent: false).
    pub clean_up_tokenization_spaces: bool,
    /// `padding_side` when written (`"left"` / `"right"`).
    pub padding_side: Option<String>,
    /// `chat_template`: one unnamed template (name `"default"`) or the named list form
    /// `[{"name": .., "template": ..}]`, in file order.
    pub chat_templates: Vec<(String, String)>,
}

impl TokenizerConfig {
    /// Reads `tokenizer_config.json` and `special_tokens_map.json` from `dir`; both are optional.
    pub fn load(dir: &Path) -> Result<TokenizerConfig> {
        let mut cfg = TokenizerConfig::default();
        let path = dir.join("tokenizer_config.json");
        if let Some(json) = read_json_opt(&path)? {
            let obj = json
                .as_object()
                .ok_or_else(|| config_err(&path, "expected a JSON object"))?;
            cfg.tokenizer_class = obj
                .get("tokenizer_class")
                .and_then(Value::as_str)
                .map(str::to_owned);
            cfg.special.merge_from(obj);
            cfg.add_bos_token = obj.get("add_bos_token").and_then(Value::as_bool);
            cfg.add_eos_token = obj.get("add_eos_token").and_then(Value::as_bool);
            cfg.clean_up_tokenization_spaces = obj
                .get("clean_up_tokenization_spaces")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            cfg.padding_side = obj
                .get("padding_side")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(t) = obj.get("chat_template") {
                cfg.chat_templates = parse_chat_template_field(t, &path)?;
            }
            cfg.path = Some(path);
        }
        let map_path = dir.join("special_tokens_map.json");
        if let Some(json) = read_json_opt(&map_path)? {
            let obj = json
                .as_object()
                .ok_or_else(|| config_err(&map_path, "expected a JSON object"))?;
            cfg.special.merge_from(obj);
        }
        Ok(cfg)
    }
}

/// `chat_template` as a string, a list of `{"name", "template"}`, or null.
pub(crate) fn parse_chat_template_field(v: &Value, path: &Path) -> Result<Vec<(String, String)>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![("default".to_owned(), s.clone())]),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let name = item.get("name").and_then(Value::as_str);
                let template = item.get("template").and_then(Value::as_str);
                match (name, template) {
                    (Some(n), Some(t)) => Ok((n.to_owned(), t.to_owned())),
                    _ => Err(config_err(
                        path,
                        "chat_template list items must be {\"name\": string, \"template\": string}",
                    )),
                }
            })
            .collect(),
        _ => Err(config_err(
            path,
            "chat_template must be a string or a list of {\"name\", \"template\"}",
        )),
    }
}

/// Token ids at which generation stops (`eos_token_id`, one or several).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopTokens(pub Vec<u32>);

impl StopTokens {
    /// Whether `id` ends generation.
    pub fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }
    /// The ids, in file order.
    pub fn ids(&self) -> &[u32] {
        &self.0
    }
}

/// Generation defaults of a checkpoint: `generation_config.json`, with the token ids of
/// `config.json` (top level, then `text_config`) filling any id the former does not set.
///
/// transformers itself uses `generation_config.json` when present and derives one from
/// `config.json` otherwise; filling missing ids field by field only differs when a
/// `generation_config.json` lacks an id that `config.json` has, where it gives a usable stop
/// token instead of none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    /// `bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (an int or a list in the files): the stop tokens.
    pub eos_token_ids: Vec<u32>,
    /// `pad_token_id`.
    pub pad_token_id: Option<u32>,
    /// `max_new_tokens`.
    pub max_new_tokens: Option<usize>,
    /// `max_length` (prompt + new tokens).
    pub max_length: Option<usize>,
    /// `do_sample` (false when absent, transformers' default).
    pub do_sample: bool,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `top_k`.
    pub top_k: Option<usize>,
}

impl GenerationDefaults {
    /// Reads `generation_config.json` and `config.json` from `dir` (both optional).
    pub fn load(dir: &Path) -> Result<GenerationDefaults> {
        let gen_path = dir.join("generation_config.json");
        let cfg_path = dir.join("config.json");
        let gen = read_json_opt(&gen_path)?;
        let cfg = read_json_opt(&cfg_path)?;
        let mut out = GenerationDefaults::default();
        // Sources for token ids, most specific first.
        let mut sources: Vec<(&Path, &Value)> = Vec::new();
        if let Some(g) = &gen {
            sources.push((&gen_path, g));
        }
        if let Some(c) = &cfg {
            sources.push((&cfg_path, c));
            if let Some(t) = c.get("text_config") {
                sources.push((&cfg_path, t));
            }
        }
        let first_ids = |key: &str| -> Result<Option<Vec<u32>>> {
            for (path, obj) in &sources {
                if let Some(v) = obj.get(key) {
                    if let Some(ids) = ids_of(v, path, key)? {
                        return Ok(Some(ids));
                    }
                }
            }
            Ok(None)
        };
        out.bos_token_id = first_ids("bos_token_id")?.and_then(|v| v.first().copied());
        out.eos_token_ids = first_ids("eos_token_id")?.unwrap_or_default();
        out.pad_token_id = first_ids("pad_token_id")?.and_then(|v| v.first().copied());
        if let Some(g) = &gen {
            let uint = |key: &str| -> Result<Option<usize>> {
                match g.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                        config_err(&gen_path, format!("{key} must be a non-negative integer"))
                    }),
                }
            };
            let float = |key: &str| -> Result<Option<f64>> {
                match g.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v
                        .as_f64()
                        .map(Some)
                        .ok_or_else(|| config_err(&gen_path, format!("{key} must be a number"))),
                }
            };
            out.max_new_tokens = uint("max_new_tokens")?;
            out.max_length = uint("max_length")?;
            out.top_k = uint("top_k")?;
            out.temperature = float("temperature")?;
            out.top_p = float("top_p")?;
            out.do_sample = g.get("do_sample").and_then(Value::as_bool).unwrap_or(false);
        }
        Ok(out)
    }

    /// The stop tokens (`eos_token_id`).
    pub fn stop_tokens(&self) -> StopTokens {
        StopTokens(self.eos_token_ids.clone())
    }
}

/// A token id field: an integer, a list of integers, or null (unset).
fn ids_of(v: &Value, path: &Path, key: &str) -> Result<Option<Vec<u32>>> {
    let one = |x: &Value| -> Result<u32> {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| config_err(path, format!("{key}: {x} is not a token id")))
    };
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => Ok(Some(items.iter().map(one).collect::<Result<_>>()?)),
        x => Ok(Some(vec![one(x)?])),
    }
}
