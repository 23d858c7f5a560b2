//! Decoder-only language models from HuggingFace checkpoints: Gemma 3 (`Gemma3ForCausalLM`,
//! and the text half of `Gemma3ForConditionalGeneration`) and the Llama family (Llama 2/3,
//! Mistral, Qwen2; the text half of LLaVA), with a KV cache whose sliding-window layers keep
//! only the window.
//!
//! ```no_run
//! use burn::prelude::*;
//! use medvqa_model::text::{AttentionInput, TextDecoder};
//!
//! let device = Device::flex();
//! let lm = TextDecoder::load(std::path::Path::new("gemma3-folder"), &device)?.model;
//! let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 10, 11], [1, 3]), &device);
//! let attn = AttentionInput::from_attention_mask(&[vec![true; 3]]);
//! let mut cache = lm.new_cache(1);
//! let hidden = lm.forward(lm.embed(ids), &attn, &mut cache)?;
//! let logits = lm.logits(hidden); // [1, 3, vocab]
//! # Ok::<(), medvqa_model::ModelError>(())
//! ```

pub mod cache;
pub mod config;
pub mod decoder;
mod mask;
pub mod rope;

pub use cache::KvCache;
pub use config::{LayerType, Rope, RopeScaling, TextConfig, TextFamily};
pub use decoder::{AttentionInput, LoadedText, TextDecoder};
