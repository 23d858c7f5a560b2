//! The two ways a vision tower's output becomes text-model input.
//!
//! - **Gemma 3** (`Gemma3MultiModalProjector`): the SigLIP tower's `last_hidden_state` (a
//!   `p × p` patch grid) is average-pooled to `√mm_tokens_per_image` tokens per side, normalised
//!   by Gemma's `(1 + w)` RMSNorm (`mm_soft_emb_norm`) and multiplied by
//!   `mm_input_projection_weight` `[vision_hidden, text_hidden]` (stored the way it is used, not
//!   transposed like `nn.Linear`).
//! - **LLaVA** (`LlavaMultiModalProjector`, `mlp2x_gelu`): one or several of the tower's
//!   `hidden_states` (`vision_feature_layer`), without the class token under the `default`
//!   strategy, concatenated on the feature axis, then `linear_1` → activation → `linear_2`.

use burn::prelude::*;

use crate::checkpoint::Weights;
use crate::nn::{activate, Linear};
use crate::vision::{Activation, ForwardOptions, VisionTransformer};
use crate::Result;

/// Which tokens of the tower LLaVA keeps (`vision_feature_select_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureSelect {
    /// Drop the first token (CLIP's class token): `default`.
    DropFirst,
    /// Keep every token: `full`.
    Full,
}

/// A projector with its weights.
#[derive(Clone, Debug)]
pub enum Projector {
    /// Gemma 3's pooled, normalised linear map.
    Gemma3 {
        /// `[vision_hidden]`, used as `1 + w`.
        norm_weight: Tensor<1>,
        /// `vision_config.layer_norm_eps`.
        norm_eps: f64,
        /// `[vision_hidden, text_hidden]`.
        projection: Tensor<2>,
        /// Tower patch grid side (`image_size / patch_size`).
        patches_per_side: usize,
        /// Output grid side (`√mm_tokens_per_image`).
        tokens_per_side: usize,
    },
    /// LLaVA's two-layer MLP.
    Llava {
        linear_1: Linear,
        linear_2: Linear,
        act: Activation,
        /// Indices into `hidden_states` (negative counts from the end, as in Python).
        feature_layers: Vec<i64>,
        select: FeatureSelect,
    },
}

impl Projector {
    /// Loads Gemma 3's projector from weights scoped at `multi_modal_projector`.
    pub fn load_gemma3(w: &Weights, vision_hidden: usize, text_hidden: usize, eps: f64, patches_per_side: usize, tokens_per_side: usize) -> Projector {
        Projector::Gemma3 {
            norm_weight: w.pp("mm_soft_emb_norm").tensor("weight", [vision_hidden]),
            norm_eps: eps,
            projection: w.tensor("mm_input_projection_weight", [vision_hidden, text_hidden]),
            patches_per_side,
            tokens_per_side,
        }
    }

    /// Loads LLaVA's projector from weights scoped at `multi_modal_projector`.
    pub fn load_llava(w: &Weights, d_in: usize, text_hidden: usize, bias: bool, act: Activation, feature_layers: Vec<i64>, select: FeatureSelect) -> Projector {
        Projector::Llava {
            linear_1: Linear::load(&w.pp("linear_1"), d_in, text_hidden, bias),
            linear_2: Linear::load(&w.pp("linear_2"), text_hidden, text_hidden, bias),
            act,
            feature_layers,
            select,
        }
    }

    /// Image tokens per image this projector produces for a tower of `vision_tokens` tokens
    /// (patches, plus CLIP's class token).
    pub fn tokens_per_image(&self, vision_tokens: usize) -> usize {
        match self {
            Projector::Gemma3 { tokens_per_side, .. } => tokens_per_side * tokens_per_side,
            Projector::Llava { select: FeatureSelect::DropFirst, .. } => vision_tokens - 1,
            Projector::Llava { select: FeatureSelect::Full, .. } => vision_tokens,
        }
    }

    /// Runs the tower and the projector: transformers' `get_image_features`.
    ///
    /// # Shapes
    /// `pixel_values` `[n, 3, h, w]` → `[n, tokens_per_image, text_hidden]`.
    pub fn image_features(&self, tower: &VisionTransformer, pixel_values: Tensor<4>) -> Result<Tensor<3>> {
        match self {
            Projector::Gemma3 { norm_weight, norm_eps, projection, patches_per_side, tokens_per_side } => {
                let out = tower.forward(pixel_values, ForwardOptions::default())?;
                let x = out.last_hidden_state;
                let [n, s, d] = x.dims();
                let (p, t) = (*patches_per_side, *tokens_per_side);
                if s != p * p || t == 0 || p % t != 0 {
                    return Err(crate::ModelError::Input(format!(
                        "the vision tower gives {s} tokens; the Gemma 3 projector pools a {p}×{p} grid to {t}×{t}"
                    )));
                }
                let k = p / t;
                // AvgPool2d(k, stride k) over the row-major patch grid: patch (r, c) with
                // r = ti·k + ki, c = tj·k + kj goes to pooled token (ti, tj).
                let pooled = x.reshape([n, t, k, t, k, d]).mean_dim(4).mean_dim(2).reshape([n, t * t, d]);
                let normed = rms_norm_one_plus(pooled, norm_weight.clone(), *norm_eps);
                let [_, tt, _] = normed.dims();
                let td = projection.dims()[1];
                Ok(normed.reshape([n * tt, d]).matmul(projection.clone()).reshape([n, tt, td]))
            }
            Projector::Llava { linear_1, linear_2, act, feature_layers, select } => {
                let out = tower.forward(pixel_values, ForwardOptions { output_hidden_states: true, ..Default::default() })?;
                let hidden = out.hidden_states.unwrap_or_default();
                let mut parts = Vec::with_capacity(feature_layers.len());
                for &layer in feature_layers {
                    let idx = if layer < 0 { hidden.len() as i64 + layer } else { layer };
                    let h = usize::try_from(idx).ok().and_then(|i| hidden.get(i)).ok_or_else(|| {
                        crate::ModelError::Input(format!(
                            "vision_feature_layer {layer} is outside the tower's {} hidden states",
                            hidden.len()
                        ))
                    })?;
                    let [_, s, _] = h.dims();
                    parts.push(match select {
                        FeatureSelect::DropFirst => h.clone().narrow(1, 1, s - 1),
                        FeatureSelect::Full => h.clone(),
                    });
                }
                let x = Tensor::cat(parts, 2);
                Ok(linear_2.forward(activate(*act, linear_1.forward(x))))
            }
        }
    }
}

/// Gemma's RMSNorm: `x / sqrt(mean(x²) + eps) · (1 + w)` (`Gemma3RMSNorm`; the `1 +` is why
/// Gemma checkpoints store norm weights around 0).
///
/// # Shapes
/// `[..., d]` → `[..., d]`.
fn rms_norm_one_plus<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let rms = (x.clone() * x.clone()).mean_dim(D - 1).add_scalar(eps).sqrt();
    (x / rms) * (weight.add_scalar(1.0)).unsqueeze::<D>()
}
