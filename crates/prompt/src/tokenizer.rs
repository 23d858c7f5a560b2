//! `tokenizer.json` through HuggingFace's `tokenizers` library, with the few adjustments
//! transformers' Python tokenizer classes make on top of it.

use std::path::{Path, PathBuf};

use tokenizers::processors::template::TemplateProcessing;

use crate::config::TokenizerConfig;
use crate::error::{PromptError, Result};

/// A model folder's tokenizer: `tokenizer.json` plus what `tokenizer_config.json` changes.
///
/// Two behaviours of transformers' fast tokenizers are reproduced:
/// - Llama and Gemma tokenizer classes (`LlamaTokenizer[Fast]`, `GemmaTokenizer[Fast]`,
///   `CodeLlamaTokenizer[Fast]`) rebuild the post-processor from `add_bos_token` (default true)
///   and `add_eos_token` (default false) when loaded (`update_post_processor`, transformers
///   4.57), whatever `tokenizer.json` says; other classes keep `tokenizer.json`'s post-processor.
/// - `decode` applies `clean_up_tokenization_spaces` when the config sets it.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    clean_up_spaces: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// Tokenizer classes whose transformers implementation calls `update_post_processor()`.
const BOS_EOS_CLASSES: [&str; 3] = ["LlamaTokenizer", "GemmaTokenizer", "CodeLlamaTokenizer"];

impl Tokenizer {
    /// Loads `dir/tokenizer.json` and applies `dir/tokenizer_config.json` (optional).
    pub fn load(dir: &Path) -> Result<Tokenizer> {
        let config = TokenizerConfig::load(dir)?;
        Tokenizer::load_with_config(dir, &config)
    }

    /// Loads `dir/tokenizer.json` with an already-read [`TokenizerConfig`].
    pub fn load_with_config(dir: &Path, config: &TokenizerConfig) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(PromptError::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "tokenizer.json not found (a HuggingFace fast tokenizer file is required)",
                ),
            });
        }
        let mut inner =
            tokenizers::Tokenizer::from_file(&path).map_err(|e| PromptError::TokenizerLoad {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let class = config
            .tokenizer_class
            .as_deref()
            .map(|c| c.strip_suffix("Fast").unwrap_or(c));
        if class.is_some_and(|c| BOS_EOS_CLASSES.contains(&c)) {
            let add_bos = config.add_bos_token.unwrap_or(true);
            let add_eos = config.add_eos_token.unwrap_or(false);
            let post = bos_eos_template(&inner, config, add_bos, add_eos, &path)?;
            inner.with_post_processor(Some(post));
        }
        Ok(Tokenizer {
            inner,
            path,
            clean_up_spaces: config.clean_up_tokenization_spaces,
        })
    }

    /// The `tokenizer.json` this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token ids of `text`. `add_special_tokens` applies the post-processor (e.g. a leading
    /// `<bos>`), as `tokenizer(text, add_special_tokens=...)` does in transformers. Special
    /// tokens written in the text (`<start_of_image>`) are matched as single tokens.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| PromptError::Tokenize {
                path: self.path.clone(),
                message: format!("encode: {e}"),
            })
    }

    /// Text of `ids`; `skip_special_tokens` drops tokens marked special in `tokenizer.json`.
    /// Applies transformers' `clean_up_tokenization` when the config asks for it.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text =
            self.inner
                .decode(ids, skip_special_tokens)
                .map_err(|e| PromptError::Tokenize {
                    path: self.path.clone(),
                    message: format!("decode: {e}"),
                })?;
        Ok(if self.clean_up_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }

    /// The id of a token string (vocabulary or added token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids including added tokens (transformers' `len(tokenizer)`).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of `token`, or an error naming the role it plays (`"bos_token"`, `"image_token"` …).
    pub fn require_id(&self, token: &str, role: &'static str) -> Result<u32> {
        self.token_to_id(token)
            .ok_or_else(|| PromptError::UnknownToken {
                path: self.path.clone(),
                token: token.to_owned(),
                role,
            })
    }
}

/// The post-processor transformers' `update_post_processor` builds: `bos:0 $A:0 eos:0`.
fn bos_eos_template(
    inner: &tokenizers::Tokenizer,
    config: &TokenizerConfig,
    add_bos: bool,
    add_eos: bool,
    path: &Path,
) -> Result<TemplateProcessing> {
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials: Vec<(String, u32)> = Vec::new();
    let lookup = |tok: Option<&str>, role: &'static str| -> Result<(String, u32)> {
        let tok = tok.ok_or_else(|| PromptError::Config {
            path: path.with_file_name("tokenizer_config.json"),
            message: format!("add_{role} is true but no {role} is set"),
        })?;
        let id = inner
            .token_to_id(tok)
            .ok_or_else(|| PromptError::UnknownToken {
                path: path.to_path_buf(),
                token: tok.to_owned(),
                role,
            })?;
        Ok((tok.to_owned(), id))
    };
    let bos = if add_bos {
        Some(lookup(config.special.bos(), "bos_token")?)
    } else {
        None
    };
    let eos = if add_eos {
        Some(lookup(config.special.eos(), "eos_token")?)
    } else {
        None
    };
    if let Some((t, _)) = &bos {
        single.push(format!("{t}:0"));
    }
    single.push("$A:0".to_owned());
    if let Some((t, _)) = &eos {
        single.push(format!("{t}:0"));
    }
    pair.extend(single.iter().cloned());
    if let Some((t, _)) = &bos {
        pair.push(format!("{t}:1"));
    }
    pair.push("$B:1".to_owned());
    if let Some((t, _)) = &eos {
        pair.push(format!("{t}:1"));
    }
    specials.extend(bos);
    specials.extend(eos);
    let build = || -> std::result::Result<TemplateProcessing, String> {
        TemplateProcessing::builder()
            .try_single(single.join(" "))
            .map_err(|e| e.to_string())?
            .try_pair(pair.join(" "))
            .map_err(|e| e.to_string())?
            .special_tokens(specials.clone())
            .build()
            .map_err(|e| e.to_string())
    };
    build().map_err(|message| PromptError::TokenizerLoad {
        path: path.to_path_buf(),
        message: format!("bos/eos post-processor: {message}"),
    })
}

/// transformers' `PreTrainedTokenizerBase.clean_up_tokenization`: removes the space before
/// punctuation and English contractions, in this order.
pub fn clean_up_tokenization(text: &str) -> String {
    const RULES: [(&str, &str); 10] = [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ];
    let mut out = text.to_owned();
    for (from, to) in RULES {
        out = out.replace(from, to);
    }
    out
}
