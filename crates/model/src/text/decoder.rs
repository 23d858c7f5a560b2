//! The decoder stack: Gemma 3 (`Gemma3TextModel`) and the Llama family (`LlamaModel`,
//! `MistralModel`, `Qwen2Model`), one set of layers with the family differences named where
//! they occur. Parameter names mirror the checkpoint (`layers.N.self_attn.q_proj` …).

use std::path::Path;

use burn::prelude::*;
use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Bool;

use super::cache::KvCache;
use super::config::{TextConfig, TextFamily};
use super::mask::{self, KeySpan};
use super::rope;
use crate::checkpoint::{find_prefix, Checkpoint, WeightDtype, Weights};
use crate::error::{ModelError, Result};
use crate::nn::{activate, Linear, RmsNorm};

/// What a forward pass needs besides the embeddings: positions and who may attend to whom.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionInput {
    /// `[b][s]`: RoPE positions of the new tokens.
    pub position_ids: Vec<Vec<i64>>,
    /// `[b][past + s]`: `false` = a padding key, never attended. Covers the cached tokens too.
    pub key_mask: Vec<Vec<bool>>,
    /// `[b][s]`: 0 = none; new tokens of one group > 0 see each other fully (Gemma 3 image
    /// tokens). Groups only join tokens of the same forward pass.
    pub bidirectional_groups: Option<Vec<Vec<u32>>>,
}

impl AttentionInput {
    /// A prompt batch as a tokenizer gives it: `attention_mask[b][s]` (1 = token, 0 = padding),
    /// positions `cumsum(mask) − 1` as transformers' `generate` computes them (padding
    /// positions set to 1, as it does; they are never attended).
    pub fn from_attention_mask(attention_mask: &[Vec<bool>]) -> AttentionInput {
        let position_ids = attention_mask
            .iter()
            .map(|row| {
                let mut seen = 0i64;
                row.iter()
                    .map(|&m| {
                        seen += i64::from(m);
                        if m {
                            seen - 1
                        } else {
                            1
                        }
                    })
                    .collect()
            })
            .collect();
        AttentionInput { position_ids, key_mask: attention_mask.to_vec(), bidirectional_groups: None }
    }

    fn check(&self, b: usize, s: usize, past: usize) -> Result<()> {
        let bad = |what: String| Err(ModelError::Input(format!("attention input: {what}")));
        if self.position_ids.len() != b || self.position_ids.iter().any(|r| r.len() != s) {
            return bad(format!("position_ids must be [{b}][{s}]"));
        }
        if self.key_mask.len() != b || self.key_mask.iter().any(|r| r.len() != past + s) {
            return bad(format!("key_mask must be [{b}][{}] (cached {past} + new {s})", past + s));
        }
        if let Some(g) = &self.bidirectional_groups {
            if g.len() != b || g.iter().any(|r| r.len() != s) {
                return bad(format!("bidirectional_groups must be [{b}][{s}]"));
            }
        }
        if self.position_ids.iter().flatten().any(|&p| p < 0) {
            return bad("negative position id".into());
        }
        Ok(())
    }
}

/// Self-attention with q/k/v fused into one product, grouped-query heads, RoPE and optional
/// QK-norm (Gemma 3).
#[derive(Clone, Debug)]
struct SelfAttention {
    /// `[d, (heads + 2·kv_heads)·head_dim]`: columns q | k | v.
    qkv: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    options: AttentionModuleOptions,
}

impl SelfAttention {
    fn load(w: &Weights, cfg: &TextConfig) -> SelfAttention {
        let (d, hd, h, kvh) = (cfg.hidden_size, cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads);
        let mut rows = Vec::with_capacity((h + 2 * kvh) * hd * d);
        let mut bias = Vec::with_capacity((h + 2 * kvh) * hd);
        for (name, out) in [("q_proj", h * hd), ("k_proj", kvh * hd), ("v_proj", kvh * hd)] {
            rows.extend(w.pp(name).values("weight", &[out, d]));
            if cfg.qkv_bias {
                bias.extend(w.pp(name).values("bias", &[out]));
            }
        }
        // Checkpoints written by old transformers carry the RoPE buffer; it is recomputed.
        w.pp("rotary_emb").skip("inv_freq");
        let gemma = cfg.family == TextFamily::Gemma3;
        SelfAttention {
            qkv: Linear::from_rows(&rows, cfg.qkv_bias.then_some(bias), d, (h + 2 * kvh) * hd, w.device(), w.common_kept_dtype(&["q_proj.weight", "k_proj.weight", "v_proj.weight"])),
            o_proj: Linear::load(&w.pp("o_proj"), h * hd, d, cfg.o_bias),
            q_norm: gemma.then(|| RmsNorm::load(&w.pp("q_norm"), hd, cfg.rms_norm_eps, true)),
            k_norm: gemma.then(|| RmsNorm::load(&w.pp("k_norm"), hd, cfg.rms_norm_eps, true)),
            heads: h,
            kv_heads: kvh,
            head_dim: hd,
            options: AttentionModuleOptions {
                scale: Some(cfg.attention_scale),
                // transformers' Gemma3Attention (4.57 and 5.x) never passes
                // `attn_logit_softcapping` to its attention function, so the reference does not
                // cap attention scores whatever the config says; neither do we.
                softcap: None,
                is_causal: false,
            },
        }
    }

    /// # Shapes
    /// `x` `[b, s, d]`, `cos`/`sin` `[b, 1, s, hd]`, `mask` `[b, kv_heads, groups·s, keys]`
    /// (true = masked) → `[b, s, d]`. Appends this step's keys/values to layer `index` of `cache`.
    fn forward(&self, x: Tensor<3>, cos: &Tensor<4>, sin: &Tensor<4>, mask: &Tensor<4, Bool>, cache: &mut KvCache, index: usize) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x);
        let heads = |start: usize, n: usize| qkv.clone().narrow(2, start * hd, n * hd).reshape([b, s, n, hd]).swap_dims(1, 2);
        let mut q = heads(0, h);
        let mut k = heads(h, kvh);
        let v = heads(h + kvh, kvh);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(q);
            k = kn.forward(k);
        }
        let q = rope::apply(q, cos, sin);
        let k = rope::apply(k, cos, sin);
        let (k, v, _) = cache.update(index, k, v);
        // Grouped-query attention without repeating K/V: the `groups` query heads that share
        // one K/V head are stacked along the sequence axis (heads are ordered kv-major, as
        // transformers' `repeat_kv` assumes), so every backend sees equal head counts.
        let groups = h / kvh;
        let q = q.reshape([b, kvh, groups * s, hd]);
        let o = attention(q, k, v, Some(mask.clone()), None, self.options);
        let o = o.reshape([b, h, s, hd]).swap_dims(1, 2).reshape([b, s, h * hd]);
        self.o_proj.forward(o)
    }
}

/// gate/up fused: down(act(gate(x)) · up(x)) (SwiGLU for Llama, GeGLU for Gemma).
#[derive(Clone, Debug)]
struct GatedMlp {
    /// `[d, 2·inner]`: columns gate | up.
    gate_up: Linear,
    down: Linear,
    inner: usize,
    act: crate::vision::config::Activation,
}

impl GatedMlp {
    fn load(w: &Weights, cfg: &TextConfig) -> GatedMlp {
        let (d, inner) = (cfg.hidden_size, cfg.intermediate_size);
        let mut rows = w.pp("gate_proj").values("weight", &[inner, d]);
        rows.extend(w.pp("up_proj").values("weight", &[inner, d]));
        let bias = cfg.mlp_bias.then(|| {
            let mut b = w.pp("gate_proj").values("bias", &[inner]);
            b.extend(w.pp("up_proj").values("bias", &[inner]));
            b
        });
        GatedMlp {
            gate_up: Linear::from_rows(&rows, bias, d, 2 * inner, w.device(), w.common_kept_dtype(&["gate_proj.weight", "up_proj.weight"])),
            down: Linear::load(&w.pp("down_proj"), inner, d, cfg.mlp_bias),
            inner,
            act: cfg.hidden_act,
        }
    }

    /// # Shapes
    /// `[b, s, d]` → `[b, s, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gu = self.gate_up.forward(x);
        let gate = gu.clone().narrow(2, 0, self.inner);
        let up = gu.narrow(2, self.inner, self.inner);
        self.down.forward(activate(self.act, gate) * up)
    }
}

/// One pre-norm decoder layer. Gemma 3 also norms each branch's output
/// (`post_attention_layernorm`, `post_feedforward_layernorm`); Llama's
/// `post_attention_layernorm` is the norm *before* its MLP.
#[derive(Clone, Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: SelfAttention,
    /// Gemma: after attention; Llama: before the MLP.
    post_attention_layernorm: RmsNorm,
    /// Gemma only.
    pre_feedforward_layernorm: Option<RmsNorm>,
    /// Gemma only.
    post_feedforward_layernorm: Option<RmsNorm>,
    mlp: GatedMlp,
    sliding: bool,
}

impl DecoderLayer {
    fn load(w: &Weights, cfg: &TextConfig, index: usize) -> DecoderLayer {
        let (d, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let gemma = cfg.family == TextFamily::Gemma3;
        let norm = |name: &str| RmsNorm::load(&w.pp(name), d, eps, gemma);
        DecoderLayer {
            input_layernorm: norm("input_layernorm"),
            self_attn: SelfAttention::load(&w.pp("self_attn"), cfg),
            post_attention_layernorm: norm("post_attention_layernorm"),
            pre_feedforward_layernorm: gemma.then(|| norm("pre_feedforward_layernorm")),
            post_feedforward_layernorm: gemma.then(|| norm("post_feedforward_layernorm")),
            mlp: GatedMlp::load(&w.pp("mlp"), cfg),
            sliding: cfg.is_sliding(index),
        }
    }

    fn forward(&self, x: Tensor<3>, rope: &RopeTables, masks: &Masks, cache: &mut KvCache, index: usize) -> Tensor<3> {
        let (cos, sin, mask) = if self.sliding { (&rope.local_cos, &rope.local_sin, &masks.sliding) } else { (&rope.cos, &rope.sin, &masks.full) };
        let mask = mask.as_ref().expect("a mask is built for every layer kind present");
        let attn = self.self_attn.forward(self.input_layernorm.forward(x.clone()), cos, sin, mask, cache, index);
        match (&self.pre_feedforward_layernorm, &self.post_feedforward_layernorm) {
            (Some(pre), Some(post)) => {
                let x = x + self.post_attention_layernorm.forward(attn);
                x.clone() + post.forward(self.mlp.forward(pre.forward(x)))
            }
            _ => {
                let x = x + attn;
                x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
            }
        }
    }
}

/// cos/sin of the new tokens for global and local layers.
struct RopeTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
    local_cos: Tensor<4>,
    local_sin: Tensor<4>,
}

/// One mask per layer kind present, `[b, kv_heads, groups·s, keys]`.
struct Masks {
    full: Option<Tensor<4, Bool>>,
    sliding: Option<Tensor<4, Bool>>,
}

/// A decoder-only language model: token embeddings, decoder layers, final norm, LM head.
#[derive(Clone, Debug)]
pub struct TextDecoder {
    config: TextConfig,
    /// `[vocab, d]`.
    embed_tokens: Tensor<2>,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// `None` = tied: logits use `embed_tokens` transposed (no second copy of the table).
    lm_head: Option<Linear>,
    inv_freq_global: Vec<f32>,
    inv_freq_local: Vec<f32>,
}

/// A loaded decoder and where it came from.
#[derive(Debug)]
pub struct LoadedText {
    /// The model.
    pub model: TextDecoder,
    /// The checkpoint it was read from.
    pub checkpoint: Checkpoint,
    /// Prefix of `embed_tokens`, `layers`, `norm` in the checkpoint (`model.` for *ForCausalLM).
    pub prefix: String,
}

impl TextDecoder {
    /// Loads a `*ForCausalLM` folder (config.json + safetensors, either transformers key
    /// layout) onto `device`. Fails listing every missing, mis-shaped and unexpected tensor.
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedText> {
        TextDecoder::load_with(dir, device, WeightDtype::F32)
    }

    /// [`TextDecoder::load`] with 16-bit weight matrices held as `dtype` asks.
    pub fn load_with(dir: &Path, device: &Device, dtype: WeightDtype) -> Result<LoadedText> {
        let config = TextConfig::from_dir(dir)?;
        let checkpoint = Checkpoint::open_with(dir, dtype)?;
        let prefix = find_prefix(&checkpoint, "embed_tokens.weight")?.ok_or_else(|| ModelError::Checkpoint {
            path: dir.to_path_buf(),
            reason: "no text decoder in the weights (no tensor named `…embed_tokens.weight`)".into(),
        })?;
        let root = checkpoint.weights(device);
        let scoped = |p: &str| {
            let p = p.trim_end_matches('.');
            if p.is_empty() {
                root.clone()
            } else {
                root.pp(p)
            }
        };
        let w = scoped(&prefix);
        let head_prefix = find_prefix(&checkpoint, "lm_head.weight")?;
        let head = if config.tie_word_embeddings {
            // transformers ties the head to the table and ignores a stored copy.
            if let Some(p) = &head_prefix {
                scoped(p).pp("lm_head").skip("weight");
            }
            None
        } else {
            // Absent → recorded as missing `lm_head.weight` by the build.
            Some(scoped(head_prefix.as_deref().unwrap_or("")).pp("lm_head"))
        };
        let model = TextDecoder::from_weights(&config, &w, head.as_ref());
        root.finish("")?;
        checkpoint.release_pages();
        Ok(LoadedText { model, checkpoint, prefix })
    }

    /// Builds the decoder from weights scoped where `embed_tokens`, `layers` and `norm` live;
    /// `lm_head` scoped at the head module (its `weight` `[vocab, d]`), `None` = tied.
    pub fn from_weights(cfg: &TextConfig, model: &Weights, lm_head: Option<&Weights>) -> TextDecoder {
        let d = cfg.hidden_size;
        let gemma = cfg.family == TextFamily::Gemma3;
        let layers_w = model.pp("layers");
        TextDecoder {
            embed_tokens: model.pp("embed_tokens").tensor("weight", [cfg.vocab_size, d]),
            layers: (0..cfg.num_hidden_layers).map(|i| DecoderLayer::load(&layers_w.pp(i), cfg, i)).collect(),
            norm: RmsNorm::load(&model.pp("norm"), d, cfg.rms_norm_eps, gemma),
            lm_head: lm_head.map(|w| Linear::load(w, d, cfg.vocab_size, false)),
            inv_freq_global: rope::inv_freq(&cfg.rope_global, cfg.head_dim),
            inv_freq_local: rope::inv_freq(&cfg.rope_local, cfg.head_dim),
            config: cfg.clone(),
        }
    }

    /// The configuration the decoder was built from.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.device()
    }

    /// Token embeddings, with Gemma's √hidden scale.
    ///
    /// # Shapes
    /// `input_ids` `[b, s]` (every id < vocab_size) → `[b, s, d]`.
    pub fn embed(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let x = embedding(self.embed_tokens.clone(), input_ids);
        match self.config.family {
            // Gemma3TextScaledWordEmbedding: the scale is a float32 buffer √hidden_size.
            TextFamily::Gemma3 => x * ((self.config.hidden_size as f64).sqrt() as f32),
            TextFamily::Llama => x,
        }
    }

    /// An empty cache for `batch` rows.
    pub fn new_cache(&self, batch: usize) -> KvCache {
        let windows = (0..self.config.num_hidden_layers)
            .map(|i| if self.config.is_sliding(i) { self.config.sliding_window } else { None })
            .collect();
        KvCache::new(batch, windows)
    }

    /// Runs the decoder on new tokens after what `cache` holds, appending their keys/values.
    ///
    /// # Shapes
    /// `embeds` `[b, s, d]` (from [`TextDecoder::embed`] or a VLM's fused embeddings), `attn`
    /// for those s tokens with `key_mask` over `past + s` → final-normed hidden `[b, s, d]`.
    pub fn forward(&self, embeds: Tensor<3>, attn: &AttentionInput, cache: &mut KvCache) -> Result<Tensor<3>> {
        let [b, s, d] = embeds.dims();
        let cfg = &self.config;
        if d != cfg.hidden_size || s == 0 {
            return Err(ModelError::Input(format!("decoder input [{b}, {s}, {d}]: expected [batch, ≥1, {}]", cfg.hidden_size)));
        }
        if b != cache.batch() || cache.layers.len() != self.layers.len() {
            return Err(ModelError::Input(format!("decoder input has {b} rows but the cache was made for {}", cache.batch())));
        }
        let past = cache.seq_len();
        attn.check(b, s, past)?;
        let device = embeds.device();
        let max_position = attn.position_ids.iter().flatten().copied().max().unwrap_or(0);
        let global = rope::inv_freq_for(&cfg.rope_global, cfg.head_dim, max_position);
        let local = rope::inv_freq_for(&cfg.rope_local, cfg.head_dim, max_position);
        let global = global.as_deref().unwrap_or(&self.inv_freq_global);
        let local = local.as_deref().unwrap_or(&self.inv_freq_local);
        let (cos, sin) = rope::tables(global, &attn.position_ids, &device);
        let (local_cos, local_sin) = if local == global { (cos.clone(), sin.clone()) } else { rope::tables(local, &attn.position_ids, &device) };
        let tables = RopeTables { cos, sin, local_cos, local_sin };
        let mut masks = Masks { full: None, sliding: None };
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = if layer.sliding { &mut masks.sliding } else { &mut masks.full };
            if slot.is_none() {
                let span = KeySpan { start: cache.layers[i].start, window: cache.windows[i] };
                *slot = Some(self.mask_tensor(attn, past, s, span, &device));
            }
        }
        let mut x = embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &tables, &masks, cache, i);
        }
        cache.advance(s);
        Ok(self.norm.forward(x))
    }

    /// The host mask as a device tensor laid out for the grouped-query trick.
    fn mask_tensor(&self, attn: &AttentionInput, past: usize, s: usize, span: KeySpan, device: &Device) -> Tensor<4, Bool> {
        let b = attn.key_mask.len();
        let sk = past + s - span.start;
        let m = Tensor::<3, Bool>::from_data(TensorData::new(mask::build(attn, past, s, span), [b, s, sk]), device).reshape([b, 1, s, sk]);
        let groups = self.config.num_attention_heads / self.config.num_key_value_heads;
        let m = if groups > 1 { m.repeat_dim(2, groups) } else { m };
        let kvh = self.config.num_key_value_heads;
        if kvh > 1 {
            m.repeat_dim(1, kvh)
        } else {
            m
        }
    }

    /// LM head on final hidden states, with Gemma's final soft-capping when configured.
    ///
    /// # Shapes
    /// `[b, s, d]` → `[b, s, vocab]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = hidden.dims();
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => hidden.reshape([b * s, d]).matmul(self.embed_tokens.clone().transpose()).reshape([b, s, self.config.vocab_size]),
        };
        match self.config.final_logit_softcapping {
            Some(cap) => (logits / cap).tanh() * cap,
            None => logits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::DType;

    /// A bf16 checkpoint held as bf16 computes exactly what its f32 copy computes (the cast to
    /// f32 at use is exact), with its linear matrices stored in half the bytes.
    #[test]
    fn bf16_matrices_kept_in_bf16_give_identical_logits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gemma3_causal_bf16");
        let device = Device::flex();
        let f32_model = TextDecoder::load_with(&dir, &device, WeightDtype::F32).unwrap().model;
        let kept = TextDecoder::load_with(&dir, &device, WeightDtype::Stored).unwrap().model;
        let layer = &kept.layers[0];
        assert_eq!(layer.self_attn.qkv.weight.dtype(), DType::BF16);
        assert_eq!(layer.self_attn.o_proj.weight.dtype(), DType::BF16);
        assert_eq!(f32_model.layers[0].self_attn.qkv.weight.dtype(), DType::F32);
        // Tables and norms stay f32.
        assert_eq!(kept.embed_tokens.dtype(), DType::F32);

        let ids: Vec<i64> = vec![2, 17, 33, 5, 9, 41, 3, 8];
        let run = |m: &TextDecoder| {
            let attn = AttentionInput { position_ids: vec![(0..8).collect()], key_mask: vec![vec![true; 8]], bidirectional_groups: None };
            let mut cache = m.new_cache(1);
            let x = m.embed(Tensor::from_data(TensorData::new(ids.clone(), [1, 8]), &device));
            let h = m.forward(x, &attn, &mut cache).unwrap();
            m.logits(h).into_data().try_into_vec::<f32>().unwrap()
        };
        assert_eq!(run(&f32_model), run(&kept));
    }
}
