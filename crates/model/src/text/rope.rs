//! Rotary position embeddings (RoPE, Su et al. 2021, "RoFormer"), in the "rotate half" layout
//! transformers uses: the head vector is split in two halves that rotate together.
//!
//! cos/sin tables are computed on the host from the position ids (which the caller already
//! holds) and uploaded once per forward pass, as transformers computes them once per forward
//! and shares them across layers.

use burn::prelude::*;

use super::config::{Rope, RopeScaling};

/// Inverse frequencies `[head_dim / 2]`, rounded to f32 as transformers stores them.
///
/// `default`: θ^(-2i/d) (`_compute_default_rope_parameters`); `linear`: divided by the factor;
/// `llama3`: `_compute_llama3_parameters` (Llama 3.1): wavelengths longer than
/// `original_max / low_freq_factor` are divided by the factor, shorter than
/// `original_max / high_freq_factor` are kept, and a linear ramp in between.
pub fn inv_freq(rope: &Rope, head_dim: usize) -> Vec<f32> {
    let base = default_inv_freq(rope.theta as f32, head_dim);
    match rope.scaling {
        RopeScaling::Default | RopeScaling::Dynamic { .. } => base,
        RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: old } => {
            let (factor, low, high, old) = (factor as f32, low_freq_factor as f32, high_freq_factor as f32, old as f32);
            let low_wavelen = old / low;
            let high_wavelen = old / high;
            base.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_wavelen { f / factor } else { f };
                    if wavelen < high_wavelen || wavelen > low_wavelen {
                        scaled
                    } else {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    }
                })
                .collect()
        }
    }
}

/// transformers: 1 / (base ** (arange(0, dim, 2).float() / dim)) in float32.
fn default_inv_freq(theta: f32, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0 / theta.powf(exponent)
        })
        .collect()
}

/// Inverse frequencies for a forward pass whose largest position is `max_position`: differs
/// from [`inv_freq`] only for `dynamic` scaling past the trained length, where transformers
/// recomputes them with seq_len = max_position + 1 (`dynamic_frequency_update`) and
/// base' = base · (factor·seq_len/max_len − (factor − 1))^(d/(d−2)), in float32.
/// (transformers keeps a grown table until a pass falls back under the trained length; a
/// fresh pass per prompt, as generation makes, sees the same numbers.)
pub fn inv_freq_for(rope: &Rope, head_dim: usize, max_position: i64) -> Option<Vec<f32>> {
    let RopeScaling::Dynamic { factor, max_position_embeddings } = rope.scaling else {
        return None;
    };
    let seq_len = max_position + 1;
    if (seq_len as f64) <= max_position_embeddings {
        return None;
    }
    let (factor, max_len, d) = (factor as f32, max_position_embeddings as f32, head_dim as f32);
    let grown = (factor * seq_len as f32 / max_len - (factor - 1.0)).powf(d / (d - 2.0));
    Some(default_inv_freq(rope.theta as f32 * grown, head_dim))
}

/// cos and sin for every (row, new token), `[b, 1, s, head_dim]` each (the two halves repeat,
/// `cat(freqs, freqs)`), ready to broadcast over heads.
pub fn tables(inv_freq: &[f32], positions: &[Vec<i64>], device: &Device) -> (Tensor<4>, Tensor<4>) {
    let b = positions.len();
    let s = positions.first().map_or(0, Vec::len);
    let half = inv_freq.len();
    let d = 2 * half;
    let mut cos = vec![0.0f32; b * s * d];
    let mut sin = vec![0.0f32; b * s * d];
    for (r, row) in positions.iter().enumerate() {
        for (t, &p) in row.iter().enumerate() {
            let at = (r * s + t) * d;
            for (i, &f) in inv_freq.iter().enumerate() {
                // The product in f32 as in the reference (`inv_freq @ position_ids` in float32);
                // cos/sin of that f32 angle.
                let angle = (f * p as f32) as f64;
                let (sn, cs) = angle.sin_cos();
                cos[at + i] = cs as f32;
                cos[at + half + i] = cs as f32;
                sin[at + i] = sn as f32;
                sin[at + half + i] = sn as f32;
            }
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [b, 1, s, d]), device),
        Tensor::from_data(TensorData::new(sin, [b, 1, s, d]), device),
    )
}

/// `x·cos + rotate_half(x)·sin` with rotate_half(x) = cat(−x₂, x₁).
///
/// # Shapes
/// `x` `[b, heads, s, d]`, `cos`/`sin` `[b, 1, s, d]` → `[b, heads, s, d]`.
pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let half = d / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_frequencies() {
        let f = inv_freq(&Rope { theta: 10_000.0, scaling: RopeScaling::Default }, 8);
        let want = [1.0, 0.1, 0.01, 0.001];
        for (a, b) in f.iter().zip(want) {
            assert!((a - b).abs() < 1e-7 * b.max(1e-3) * 10.0, "{a} vs {b}");
        }
        let lin = inv_freq(&Rope { theta: 10_000.0, scaling: RopeScaling::Linear { factor: 4.0 } }, 8);
        assert_eq!(lin[1], f[1] / 4.0);
    }

    #[test]
    fn frequencies_equal_transformers() {
        // transformers 4.57 ROPE_INIT_FUNCTIONS (float32), head_dim 16.
        let default = inv_freq(&Rope { theta: 10_000.0, scaling: RopeScaling::Default }, 16);
        let want: [f64; 8] = [1.0, 0.316_227_76, 0.100_000_001_5, 0.031_622_779, 0.009_999_999_8, 0.003_162_277_9, 0.001_000_000_05, 0.000_316_227_79];
        for (a, b) in default.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() <= 1e-7 * b, "{a} vs {b}");
        }
        // llama3 with factor 8, low 1, high 4, original 64: index 0 kept, 1 on the ramp, the rest / 8.
        let rope = Rope {
            theta: 500_000.0,
            scaling: RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64.0 },
        };
        let want: [f64; 8] = [1.0, 0.079_403_013, 0.004_700_753_8, 0.000_911_583_13, 0.000_176_776_68, 3.428_102_4e-5, 6.647_869_7e-6, 1.289_173_2e-6];
        for (a, b) in inv_freq(&rope, 16).iter().zip(want) {
            assert!((f64::from(*a) - b).abs() <= 2e-7 * b, "{a} vs {b}");
        }
    }

    #[test]
    fn dynamic_grows_the_base_only_past_the_trained_length() {
        // transformers 4.57 `_compute_dynamic_ntk_parameters`, head_dim 8, factor 2, trained
        // length 8, seq_len 11 (largest position 10).
        let rope = Rope { theta: 10_000.0, scaling: RopeScaling::Dynamic { factor: 2.0, max_position_embeddings: 8.0 } };
        assert_eq!(inv_freq_for(&rope, 8, 7), None);
        assert_eq!(inv_freq(&rope, 8), inv_freq(&Rope { theta: 10_000.0, scaling: RopeScaling::Default }, 8));
        let want: [f64; 4] = [1.0, 0.082_982_651_889_324_19, 0.006_886_120_419_949_293, 0.000_571_428_507_100_790_7];
        for (a, b) in inv_freq_for(&rope, 8, 10).unwrap().iter().zip(want) {
            assert!((f64::from(*a) - b).abs() <= 2e-7 * b, "{a} vs {b}");
        }
    }

    #[test]
    fn rotation_preserves_norm_and_is_identity_at_zero() {
        let device = Device::flex();
        let inv = inv_freq(&Rope { theta: 10_000.0, scaling: RopeScaling::Default }, 4);
        let (cos, sin) = tables(&inv, &[vec![0, 3]], &device);
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0], [1, 1, 2, 4]), &device);
        let y: Vec<f32> = apply(x, &cos, &sin).into_data().try_into_vec().unwrap();
        assert_eq!(&y[..4], &[1.0, 2.0, 3.0, 4.0]);
        let n0: f32 = [1.0f32, 2.0, 3.0, 4.0].iter().map(|v| v * v).sum();
        let n1: f32 = y[4..].iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-5);
        // pair (x0, x2) rotates by angle 3·1: (1, 3) → (cos3 − 3 sin3, sin3 + 3 cos3).
        let (s3, c3) = 3.0f32.sin_cos();
        assert!((y[4] - (c3 - 3.0 * s3)).abs() < 1e-6);
        assert!((y[6] - (s3 + 3.0 * c3)).abs() < 1e-6);
    }
}
