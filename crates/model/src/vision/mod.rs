//! SigLIP and CLIP vision transformers, built from a HuggingFace checkpoint folder.
//!
//! One [`VisionTransformer`] serves both families; they differ only where transformers' own
//! classes differ (see [`VisionFamily`]):
//!
//! | | SigLIP (`SiglipVisionTransformer`) | CLIP (`CLIPVisionTransformer`) |
//! |---|---|---|
//! | tokens | patches | class token + patches |
//! | before the encoder | – | `pre_layrnorm` |
//! | `last_hidden_state` | `post_layernorm(encoder output)` | encoder output (no norm) |
//! | `pooler_output` | attention-pooling head on `last_hidden_state` (when `vision_use_head`) | `post_layernorm(class token)` |
//!
//! Parameter names mirror the checkpoint (`embeddings.patch_embedding`, `encoder.layers.N.self_attn.q_proj` …)
//! under whatever prefix the checkpoint uses: `vision_model.` (transformers 4.x, as published),
//! none (5.x vision-only), `vision_tower.vision_model.` (VLMs) — found from the patch embedding's name.

pub mod config;

use std::path::Path;

use burn::prelude::*;
use burn::tensor::module::{attention, conv2d, interpolate};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions, InterpolateMode, InterpolateOptions};

use crate::checkpoint::{find_prefix, Checkpoint, WeightDtype, Weights};
use crate::error::{ModelError, Result};
use crate::nn::{LayerNorm, Linear, Mlp};
pub use config::{Activation, VisionConfig, VisionFamily};

/// Multi-head self-attention with the q/k/v projections fused into one matmul.
#[derive(Clone, Debug)]
struct SelfAttention {
    /// `[d, 3d]`: columns are q | k | v, each split into heads in order.
    qkv: Linear,
    out_proj: Linear,
    heads: usize,
}

impl SelfAttention {
    fn load(w: &Weights, d: usize, heads: usize) -> SelfAttention {
        let mut rows = Vec::with_capacity(3 * d * d);
        let mut bias = Vec::with_capacity(3 * d);
        for name in ["q_proj", "k_proj", "v_proj"] {
            rows.extend(w.pp(name).values("weight", &[d, d]));
            bias.extend(w.pp(name).values("bias", &[d]));
        }
        SelfAttention {
            qkv: Linear::from_rows(&rows, Some(bias), d, 3 * d, w.device(), w.common_kept_dtype(&["q_proj.weight", "k_proj.weight", "v_proj.weight"])),
            out_proj: Linear::load(&w.pp("out_proj"), d, d, true),
            heads,
        }
    }

    /// # Shapes
    /// `[b, s, d]` → `[b, s, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let head_dim = d / self.heads;
        // [b, s, 3, heads, hd] → three [b, heads, s, hd].
        let qkv = self.qkv.forward(x).reshape([b, s, 3, self.heads, head_dim]).permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([b, self.heads, s, head_dim]);
        // Scale 1/sqrt(head_dim), softmax over keys: what transformers' eager attention computes.
        let o = attention(part(0), part(1), part(2), None, None, AttentionModuleOptions::default());
        self.out_proj.forward(o.swap_dims(1, 2).reshape([b, s, d]))
    }
}

/// Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)).
#[derive(Clone, Debug)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: SelfAttention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn load(w: &Weights, cfg: &VisionConfig) -> EncoderLayer {
        let d = cfg.hidden_size;
        EncoderLayer {
            layer_norm1: LayerNorm::load(&w.pp("layer_norm1"), d, cfg.layer_norm_eps),
            self_attn: SelfAttention::load(&w.pp("self_attn"), d, cfg.num_attention_heads),
            layer_norm2: LayerNorm::load(&w.pp("layer_norm2"), d, cfg.layer_norm_eps),
            mlp: Mlp::load(&w.pp("mlp"), d, cfg.intermediate_size, cfg.hidden_act),
        }
    }

    /// # Shapes
    /// `[b, s, d]` → `[b, s, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x));
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

/// SigLIP's multi-head attention pooling (`SiglipMultiheadAttentionPoolingHead`): a learned
/// probe query attends over all tokens (PyTorch `nn.MultiheadAttention`), then a residual MLP.
#[derive(Clone, Debug)]
struct PoolingHead {
    /// `[1, 1, d]`.
    probe: Tensor<3>,
    q: Linear,
    kv: Linear,
    out_proj: Linear,
    layernorm: LayerNorm,
    mlp: Mlp,
    heads: usize,
}

impl PoolingHead {
    fn load(w: &Weights, cfg: &VisionConfig) -> PoolingHead {
        let d = cfg.hidden_size;
        let att = w.pp("attention");
        // nn.MultiheadAttention packs q, k, v as consecutive row blocks of in_proj_weight [3d, d].
        let rows = att.values("in_proj_weight", &[3 * d, d]);
        let bias = att.values("in_proj_bias", &[3 * d]);
        PoolingHead {
            probe: w.tensor("probe", [1, 1, d]),
            q: Linear::from_rows(&rows[..d * d], Some(bias[..d].to_vec()), d, d, w.device(), att.kept_dtype("in_proj_weight")),
            kv: Linear::from_rows(&rows[d * d..], Some(bias[d..].to_vec()), d, 2 * d, w.device(), att.kept_dtype("in_proj_weight")),
            out_proj: Linear::load(&att.pp("out_proj"), d, d, true),
            layernorm: LayerNorm::load(&w.pp("layernorm"), d, cfg.layer_norm_eps),
            mlp: Mlp::load(&w.pp("mlp"), d, cfg.intermediate_size, cfg.hidden_act),
            heads: cfg.num_attention_heads,
        }
    }

    /// # Shapes
    /// `[b, s, d]` → `[b, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, s, d] = x.dims();
        let hd = d / self.heads;
        let q = self.q.forward(self.probe.clone()).reshape([1, 1, self.heads, hd]).swap_dims(1, 2).repeat_dim(0, b);
        let kv = self.kv.forward(x).reshape([b, s, 2, self.heads, hd]).permute([2, 0, 3, 1, 4]);
        let k = kv.clone().narrow(0, 0, 1).reshape([b, self.heads, s, hd]);
        let v = kv.narrow(0, 1, 1).reshape([b, self.heads, s, hd]);
        let o = attention(q, k, v, None, None, AttentionModuleOptions::default());
        let h = self.out_proj.forward(o.swap_dims(1, 2).reshape([b, 1, d]));
        let h = h.clone() + self.mlp.forward(self.layernorm.forward(h));
        h.reshape([b, d])
    }
}

/// Options of one forward pass, named as transformers names them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardOptions {
    /// Resize the position table bicubically to the input's patch grid (transformers'
    /// `interpolate_pos_encoding`). Without it, an input whose grid differs from the trained one
    /// is an error, as in the reference.
    pub interpolate_pos_encoding: bool,
    /// Also return the input of the encoder and the output of every layer.
    pub output_hidden_states: bool,
}

/// What a forward pass returns (transformers' `BaseModelOutputWithPooling`, plus CLIP's
/// projected `image_embeds` when the checkpoint has `visual_projection`).
#[derive(Clone, Debug)]
pub struct VisionOutput {
    /// `[b, s, d]`.
    pub last_hidden_state: Tensor<3>,
    /// `[b, d]`; `None` for a SigLIP tower without head.
    pub pooler_output: Option<Tensor<2>>,
    /// `layers + 1` tensors `[b, s, d]`: entry 0 is the encoder input (after CLIP's
    /// `pre_layrnorm`), entry i the output of layer i (before SigLIP's `post_layernorm`).
    pub hidden_states: Option<Vec<Tensor<3>>>,
    /// `[b, projection_dim]`: two-tower CLIP only.
    pub image_embeds: Option<Tensor<2>>,
}

/// A SigLIP or CLIP vision tower with its weights.
#[derive(Clone, Debug)]
pub struct VisionTransformer {
    config: VisionConfig,
    /// `[d, c, p, p]` and `[d]` (CLIP has no bias).
    patch_weight: Tensor<4>,
    patch_bias: Option<Tensor<1>>,
    /// `[num_positions, d]`.
    position_embedding: Tensor<2>,
    /// CLIP: `[d]`.
    class_embedding: Option<Tensor<1>>,
    pre_layrnorm: Option<LayerNorm>,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
    head: Option<PoolingHead>,
    visual_projection: Option<Linear>,
}

/// A loaded tower and where it came from.
#[derive(Debug)]
pub struct LoadedVision {
    /// The model.
    pub model: VisionTransformer,
    /// The checkpoint it was read from (kept open for hashing and provenance).
    pub checkpoint: Checkpoint,
    /// Prefix of the tower's tensors in the checkpoint (`vision_model.`, `""` …).
    pub prefix: String,
}

impl VisionTransformer {
    /// Loads the vision tower of the checkpoint in `dir` (config.json + safetensors) onto `device`.
    /// Fails with the full list of missing, mis-shaped and unexpected tensors when the weights do
    /// not match the config.
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedVision> {
        VisionTransformer::load_with(dir, device, WeightDtype::F32)
    }

    /// [`VisionTransformer::load`] with 16-bit weight matrices held as `dtype` asks.
    pub fn load_with(dir: &Path, device: &Device, dtype: WeightDtype) -> Result<LoadedVision> {
        let config = VisionConfig::from_dir(dir)?;
        let checkpoint = Checkpoint::open_with(dir, dtype)?;
        let prefix = find_prefix(&checkpoint, "embeddings.patch_embedding.weight")?.ok_or_else(|| ModelError::Checkpoint {
            path: dir.to_path_buf(),
            reason: "no vision tower in the weights (no tensor named `…embeddings.patch_embedding.weight`)".into(),
        })?;
        let root = checkpoint.weights(device);
        let w = if prefix.is_empty() { root.clone() } else { root.pp(prefix.trim_end_matches('.')) };
        // Two-tower CLIP keeps `visual_projection` beside `vision_model`.
        let parent = prefix.strip_suffix("vision_model.").map(|p| p.trim_end_matches('.').to_string());
        let model = VisionTransformer::from_weights(&config, &w, parent.map(|p| if p.is_empty() { root.clone() } else { root.pp(p) }));
        w.finish(&prefix)?;
        checkpoint.release_pages();
        Ok(LoadedVision { model, checkpoint, prefix })
    }

    /// Builds the tower from weights scoped at its own prefix; `parent`, when given, is where
    /// a two-tower checkpoint keeps `visual_projection`.
    pub fn from_weights(cfg: &VisionConfig, w: &Weights, parent: Option<Weights>) -> VisionTransformer {
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let emb = w.pp("embeddings");
        let clip = cfg.family == VisionFamily::Clip;
        // Old CLIP checkpoints carry the `position_ids` buffer; it is arange(num_positions).
        emb.skip("position_ids");
        let layers_w = w.pp("encoder").pp("layers");
        VisionTransformer {
            patch_weight: emb.pp("patch_embedding").tensor("weight", [d, cfg.num_channels, p, p]),
            patch_bias: (!clip).then(|| emb.pp("patch_embedding").tensor("bias", [d])),
            position_embedding: emb.pp("position_embedding").tensor("weight", [cfg.num_positions(), d]),
            class_embedding: clip.then(|| emb.tensor("class_embedding", [d])),
            pre_layrnorm: clip.then(|| LayerNorm::load(&w.pp("pre_layrnorm"), d, cfg.layer_norm_eps)),
            layers: (0..cfg.num_hidden_layers).map(|i| EncoderLayer::load(&layers_w.pp(i), cfg)).collect(),
            post_layernorm: LayerNorm::load(&w.pp("post_layernorm"), d, cfg.layer_norm_eps),
            head: cfg.use_head.then(|| PoolingHead::load(&w.pp("head"), cfg)),
            visual_projection: match (cfg.projection_dim, parent) {
                (Some(dim), Some(parent)) if parent.contains("visual_projection.weight") => {
                    Some(Linear::load(&parent.pp("visual_projection"), d, dim, false))
                }
                _ => None,
            },
            config: cfg.clone(),
        }
    }

    /// The configuration the tower was built from.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Width of [`VisionTransformer::embed`]'s output.
    pub fn embedding_dim(&self) -> usize {
        match &self.visual_projection {
            Some(p) => p.weight.dims()[1],
            None => self.config.hidden_size,
        }
    }

    /// Patch embeddings plus positions (and CLIP's class token), before any norm.
    ///
    /// # Shapes
    /// `pixel_values` `[b, c, h, w]` → `[b, s, d]` with s = (h/p)·(w/p) (+1 for CLIP).
    fn embeddings(&self, pixel_values: Tensor<4>, interpolate_pos: bool) -> Result<Tensor<3>> {
        let cfg = &self.config;
        let [b, c, h, w] = pixel_values.dims();
        let p = cfg.patch_size;
        if c != cfg.num_channels || h < p || w < p {
            return Err(ModelError::Input(format!(
                "pixel_values [{b}, {c}, {h}, {w}]: the model needs {} channels and at least {p}×{p} pixels",
                cfg.num_channels
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let x = conv2d(pixel_values, self.patch_weight.clone(), self.patch_bias.clone(), ConvOptions::new([p, p], [0, 0], [1, 1], 1));
        let d = cfg.hidden_size;
        let x = x.reshape([b, d, gh * gw]).swap_dims(1, 2);
        let grid = cfg.grid();
        let clip = self.class_embedding.is_some();
        let table = self.position_embedding.clone();
        let patch_table = if clip { table.clone().narrow(0, 1, grid * grid) } else { table.clone() };
        let patch_pos = if gh == grid && gw == grid {
            patch_table
        } else if interpolate_pos {
            // transformers: reshape to [1, d, grid, grid], bicubic (a = -0.75, align_corners=False)
            // to the new grid, back to [gh·gw, d].
            let img = patch_table.reshape([1, grid, grid, d]).permute([0, 3, 1, 2]);
            let opts = InterpolateOptions::new(InterpolateMode::Bicubic).with_align_corners(false).with_output_size([gh, gw]);
            interpolate(img, opts).permute([0, 2, 3, 1]).reshape([gh * gw, d])
        } else {
            return Err(ModelError::Input(format!(
                "pixel_values {h}×{w} make a {gh}×{gw} patch grid but the model was trained at {0}×{0} ({grid}×{grid}); \
                 resize the input, or interpolate the position embeddings (interpolate_pos_encoding)",
                cfg.image_size
            )));
        };
        let x = x + patch_pos.unsqueeze::<3>();
        Ok(match &self.class_embedding {
            Some(cls) => {
                let cls = (cls.clone() + table.narrow(0, 0, 1).reshape([d])).reshape([1, 1, d]).repeat_dim(0, b);
                Tensor::cat(vec![cls, x], 1)
            }
            None => x,
        })
    }

    /// Runs the tower.
    ///
    /// # Shapes
    /// `pixel_values` `[b, c, h, w]` (normalised as the checkpoint's image processor does) →
    /// [`VisionOutput`] with s tokens of width d.
    pub fn forward(&self, pixel_values: Tensor<4>, opts: ForwardOptions) -> Result<VisionOutput> {
        let mut x = self.embeddings(pixel_values, opts.interpolate_pos_encoding)?;
        if let Some(norm) = &self.pre_layrnorm {
            x = norm.forward(x);
        }
        let mut hidden = opts.output_hidden_states.then(|| vec![x.clone()]);
        for layer in &self.layers {
            x = layer.forward(x);
            if let Some(h) = hidden.as_mut() {
                h.push(x.clone());
            }
        }
        let (last_hidden_state, pooler_output) = match self.config.family {
            VisionFamily::Siglip => {
                let last = self.post_layernorm.forward(x);
                let pooled = self.head.as_ref().map(|h| h.forward(last.clone()));
                (last, pooled)
            }
            VisionFamily::Clip => {
                let [b, _, d] = x.dims();
                let cls = x.clone().narrow(1, 0, 1).reshape([b, d]);
                (x, Some(self.post_layernorm.forward(cls)))
            }
        };
        let image_embeds = match (&self.visual_projection, &pooler_output) {
            (Some(proj), Some(pooled)) => Some(proj.forward(pooled.clone())),
            _ => None,
        };
        Ok(VisionOutput { last_hidden_state, pooler_output, hidden_states: hidden, image_embeds })
    }

    /// One embedding per image, the vector a retrieval or probing user wants: what transformers'
    /// `get_image_features` returns (CLIP two-tower: `image_embeds`; otherwise `pooler_output`),
    /// and for a SigLIP tower without head the mean of `last_hidden_state` over tokens.
    ///
    /// # Shapes
    /// `[b, c, h, w]` → (`[b, e]`, `[b, s, d]` = `last_hidden_state`).
    pub fn embed(&self, pixel_values: Tensor<4>) -> Result<(Tensor<2>, Tensor<3>)> {
        let out = self.forward(pixel_values, ForwardOptions::default())?;
        let pooled = match (out.image_embeds, out.pooler_output) {
            (Some(e), _) => e,
            (None, Some(p)) => p,
            (None, None) => {
                let [b, _, d] = out.last_hidden_state.dims();
                out.last_hidden_state.clone().mean_dim(1).reshape([b, d])
            }
        };
        Ok((pooled, out.last_hidden_state))
    }

    /// How [`VisionTransformer::embed`] pools, for provenance: `image_embeds`, `pooler_output`
    /// or `mean_last_hidden_state`.
    pub fn pooling(&self) -> &'static str {
        if self.visual_projection.is_some() {
            "image_embeds"
        } else if self.config.family == VisionFamily::Clip || self.head.is_some() {
            "pooler_output"
        } else {
            "mean_last_hidden_state"
        }
    }
}
