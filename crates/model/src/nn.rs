//! Small building blocks shared by the architectures: linear layers stored the way Burn's
//! matmul wants them, LayerNorm, activations. Parameters are plain tensors loaded from a
//! checkpoint (no random initialisation first: a 400M-parameter tower would spend seconds
//! filling tensors that are overwritten at once).

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::{gelu, relu, sigmoid, silu};
use burn::tensor::module::{layer_norm, linear};

use crate::checkpoint::Weights;
use crate::vision::config::Activation;

/// y = x·W + b with W stored `[in, out]` (transposed from PyTorch's `[out, in]` at load time, so
/// every forward multiplies by a contiguous matrix).
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    /// Loads `weight` `[out, in]` (and `bias` `[out]` when `bias`) under `w`.
    pub fn load(w: &Weights, d_in: usize, d_out: usize, bias: bool) -> Linear {
        Linear {
            weight: w.matrix("weight", d_out, d_in),
            bias: bias.then(|| w.tensor("bias", [d_out])),
        }
    }

    /// Builds a layer from PyTorch-layout rows `[out, in]` already read (e.g. q, k and v fused),
    /// held as `dtype` (None: f32). The rows must come from tensors stored in `dtype`, so the
    /// conversion back is exact.
    pub fn from_rows(rows: &[f32], bias: Option<Vec<f32>>, d_in: usize, d_out: usize, device: &Device, dtype: Option<DType>) -> Linear {
        let t = transpose(rows, d_out, d_in);
        let weight = match dtype {
            Some(DType::BF16) => Tensor::from_data(
                TensorData::new(t.into_iter().map(burn::tensor::bf16::from_f32).collect::<Vec<_>>(), [d_in, d_out]),
                (device, DType::BF16),
            ),
            Some(DType::F16) => Tensor::from_data(
                TensorData::new(t.into_iter().map(burn::tensor::f16::from_f32).collect::<Vec<_>>(), [d_in, d_out]),
                (device, DType::F16),
            ),
            _ => Tensor::from_data(TensorData::new(t, [d_in, d_out]), device),
        };
        Linear {
            weight,
            bias: bias.map(|b| Tensor::from_data(TensorData::new(b, [d_out]), device)),
        }
    }

    /// The weight in the dtype of `x`: a 16-bit matrix is cast where it is used.
    fn weight_as(&self, dtype: DType) -> Tensor<2> {
        let w = self.weight.clone();
        if w.dtype() == dtype {
            w
        } else {
            w.cast(dtype)
        }
    }

    /// # Shapes
    /// `[..., in]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let weight = self.weight_as(x.dtype());
        if D <= 2 {
            return linear(x, weight, self.bias.clone());
        }
        // Fold the leading axes into rows: one [rows, in] × [in, out] product instead of a
        // batched matmul against a broadcast weight (measured faster on the CPU backend).
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = linear(x.reshape([rows, d_in]), weight, self.bias.clone());
        let mut out = dims;
        out[D - 1] = self.weight.dims()[1];
        y.reshape(out)
    }
}

/// Transposes a row-major `[rows, cols]` matrix.
pub(crate) fn transpose<T: Copy + Default>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); values.len()];
    // Blocked so both sides stay in cache for the large (1152×4304) matrices of so400m.
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
        }
    }
    out
}

/// LayerNorm over the last axis with the checkpoint's epsilon.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// `[d]`.
    pub weight: Tensor<1>,
    /// `[d]`.
    pub bias: Tensor<1>,
    /// From `layer_norm_eps` (Burn's own default, 1e-5, is wrong for SigLIP).
    pub eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` `[d]` under `w`.
    pub fn load(w: &Weights, d: usize, eps: f64) -> LayerNorm {
        LayerNorm { weight: w.tensor("weight", [d]), bias: w.tensor("bias", [d]), eps }
    }

    /// # Shapes
    /// `[..., d]` → `[..., d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.clone(), Some(self.bias.clone()), self.eps)
    }
}

/// RMSNorm over the last axis: x / √(mean(x²) + ε) · w, in f32 (transformers' `LlamaRMSNorm`,
/// and `Gemma3RMSNorm` whose scale is `1 + w`: [`RmsNorm::load`] adds the one at load time).
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// `[d]`: the multiplier actually applied (Gemma: 1 + stored weight).
    pub scale: Tensor<1>,
    /// From `rms_norm_eps`.
    pub eps: f64,
}

impl RmsNorm {
    /// Loads `weight` `[d]` under `w`; `one_plus` for Gemma's `(1 + w)` form.
    pub fn load(w: &Weights, d: usize, eps: f64, one_plus: bool) -> RmsNorm {
        let mut values = w.values("weight", &[d]);
        if one_plus {
            values.iter_mut().for_each(|v| *v += 1.0);
        }
        RmsNorm { scale: Tensor::from_data(TensorData::new(values, [d]), w.device()), eps }
    }

    /// # Shapes
    /// `[..., d]` → `[..., d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mean_sq = x.clone().powi_scalar(2).mean_dim(D - 1);
        x * (mean_sq + self.eps).sqrt().recip() * self.scale.clone().unsqueeze::<D>()
    }
}

/// Applies a transformers `hidden_act`.
pub fn activate<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::GeluErf => gelu(x),
        Activation::GeluTanh => gelu_tanh(x),
        // transformers' QuickGELUActivation: x * sigmoid(1.702 * x).
        Activation::QuickGelu => x.clone() * sigmoid(x * 1.702),
        Activation::Relu => relu(x),
        Activation::Silu => silu(x),
    }
}

/// The tanh approximation of GELU, 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³),
/// computed as x·σ(2u) (the same function: 1 + tanh(u) = 2σ(2u)). Burn's `gelu_approximate`
/// spends most of its time in libm's `powf` (for x³) and `tanhf`: 13 % of a SigLIP-B forward on
/// the CPU backend went to libm with it, 2.4 % with this form (perf, benches/README.md), and agree with PyTorch's `gelu_pytorch_tanh` to
/// float rounding (parity tests).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let cube = x.clone() * x.clone() * x.clone();
    let u2 = (x.clone() + cube * 0.044715) * (2.0 * SQRT_2_OVER_PI);
    x * sigmoid(u2)
}

/// fc1 → activation → fc2.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// `[d, inner]`.
    pub fc1: Linear,
    /// `[inner, d]`.
    pub fc2: Linear,
    /// Between the two.
    pub act: Activation,
}

impl Mlp {
    /// Loads `fc1` and `fc2` under `w`.
    pub fn load(w: &Weights, d: usize, inner: usize, act: Activation) -> Mlp {
        Mlp { fc1: Linear::load(&w.pp("fc1"), d, inner, true), fc2: Linear::load(&w.pp("fc2"), inner, d, true), act }
    }

    /// # Shapes
    /// `[..., d]` → `[..., d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(activate(self.act, self.fc1.forward(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_non_square_across_blocks() {
        let (r, c) = (37, 70);
        let m: Vec<f32> = (0..r * c).map(|i| i as f32).collect();
        let t = transpose(&m, r, c);
        for i in 0..r {
            for j in 0..c {
                assert_eq!(t[j * r + i], m[i * c + j]);
            }
        }
    }
}
