//! Text generation and option scoring on a [`TextDecoder`].
//!
//! [`generate`] prefills the prompt once, then runs one token per step against the KV cache;
//! the only host read per step is the chosen token of each row (greedy arg-max and top-p
//! sampling both run on the device; the sampler gets one uniform number per row from our own
//! seeded generator). Rows stop independently at a stop token; a finished row is fed a padding
//! token until the batch ends, and its output is not extended.
//!
//! [`score_continuations`] gives each candidate answer its log-likelihood after one prompt: the
//! prompt is prefilled once, its cache repeated for all candidates, and every candidate runs
//! in one batched forward pass.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

use crate::error::{ModelError, Result};
use crate::text::{AttentionInput, KvCache, TextDecoder};

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// Arg-max (transformers `do_sample=False`).
    Greedy,
    /// Softmax of logits / `temperature`, restricted to the smallest set of most likely tokens
    /// whose probabilities sum to at least `top_p` (nucleus sampling, Holtzman et al. 2020),
    /// drawn with a generator seeded by `seed`: the same seed gives the same tokens.
    Sample { temperature: f32, top_p: f32, seed: u64 },
}

/// Options of [`generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Upper bound on new tokens per row (the stop token included).
    pub max_new_tokens: usize,
    /// A row ends after producing one of these (generation_config.json `eos_token_id`).
    pub stop_token_ids: Vec<u32>,
    /// Greedy or sampled.
    pub sampling: Sampling,
}

/// Generates up to `max_new_tokens` per row after a prompt.
///
/// `prefill_embeds` `[b, s, d]` are the prompt's embeddings ([`TextDecoder::embed`], or a VLM's
/// fused ones) and `prefill` their positions and masks (left padding: `key_mask` false and
/// positions `cumsum(mask) − 1`, see [`AttentionInput::from_attention_mask`]). Returns, per
/// row, the new token ids, ending with the stop token when one was produced.
pub fn generate(decoder: &TextDecoder, prefill_embeds: Tensor<3>, prefill: &AttentionInput, opts: &GenerateOptions) -> Result<Vec<Vec<u32>>> {
    let [b, s, _] = prefill_embeds.dims();
    let vocab = decoder.config().vocab_size;
    if let Sampling::Sample { temperature, top_p, .. } = opts.sampling {
        let valid = temperature.is_finite() && temperature >= 0.0 && top_p > 0.0 && top_p <= 1.0;
        if !valid {
            return Err(ModelError::Input(format!("sampling needs temperature ≥ 0 and 0 < top_p ≤ 1, got {temperature} and {top_p}")));
        }
    }
    let mut out = vec![Vec::new(); b];
    if opts.max_new_tokens == 0 {
        return Ok(out);
    }
    let device = prefill_embeds.device();
    let mut cache = decoder.new_cache(b);
    let hidden = decoder.forward(prefill_embeds, prefill, &mut cache)?;
    let mut logits = decoder.logits(hidden.narrow(1, s - 1, 1)).reshape([b, vocab]);
    let mut rng = match opts.sampling {
        Sampling::Sample { seed, .. } => Some(SplitMix64::new(seed)),
        Sampling::Greedy => None,
    };
    let mut key_mask = prefill.key_mask.clone();
    let mut next_pos: Vec<i64> = prefill.position_ids.iter().map(|r| r.last().map_or(0, |p| p + 1)).collect();
    let mut finished = vec![false; b];
    // Finished rows still run (the batch stays rectangular); they are fed the padding token.
    let pad = decoder.config().pad_token_id.unwrap_or(0);
    for step in 0..opts.max_new_tokens {
        let tokens = match (opts.sampling, rng.as_mut()) {
            (Sampling::Sample { temperature, top_p, .. }, Some(rng)) if temperature > 0.0 => {
                let u: Vec<f32> = (0..b).map(|_| rng.next_f32()).collect();
                sample(logits, temperature, top_p, u)?
            }
            _ => read_ids(logits.argmax(1))?,
        };
        for r in 0..b {
            if !finished[r] {
                out[r].push(tokens[r]);
                finished[r] = opts.stop_token_ids.contains(&tokens[r]);
            }
        }
        if step + 1 == opts.max_new_tokens || finished.iter().all(|&f| f) {
            break;
        }
        let feed: Vec<i64> = (0..b).map(|r| i64::from(if finished[r] { pad } else { tokens[r] })).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(feed, [b, 1]), &device);
        key_mask.iter_mut().for_each(|row| row.push(true));
        let attn = AttentionInput {
            position_ids: next_pos.iter().map(|&p| vec![p]).collect(),
            key_mask: key_mask.clone(),
            bidirectional_groups: None,
        };
        next_pos.iter_mut().for_each(|p| *p += 1);
        let hidden = decoder.forward(decoder.embed(ids), &attn, &mut cache)?;
        logits = decoder.logits(hidden).reshape([b, vocab]);
    }
    Ok(out)
}

/// Log-likelihood of each continuation after one prompt: Σⱼ log p(cⱼ | prompt, c₍<ⱼ₎), natural
/// log, summed in f64 from f32 log-softmax values (no length normalisation).
///
/// The prompt (`prefill_embeds` `[1, s, d]`, one row) is prefilled once; its cache is repeated
/// for every continuation and all continuations run in one forward pass, right-padded to the
/// longest (padding after a token cannot change it under the causal mask). An empty
/// continuation scores 0.
pub fn score_continuations(decoder: &TextDecoder, prefill_embeds: Tensor<3>, prefill: &AttentionInput, continuations: &[Vec<u32>]) -> Result<Vec<f64>> {
    let [b, s, _] = prefill_embeds.dims();
    if b != 1 {
        return Err(ModelError::Input(format!("score_continuations scores one prompt at a time, got {b} rows")));
    }
    let vocab = decoder.config().vocab_size;
    if let Some(bad) = continuations.iter().flatten().find(|&&t| t as usize >= vocab) {
        return Err(ModelError::Input(format!("continuation token {bad} is outside the vocabulary ({vocab})")));
    }
    let n = continuations.len();
    let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
    if longest == 0 {
        return Ok(vec![0.0; n]);
    }
    let device = prefill_embeds.device();
    let mut cache = decoder.new_cache(1);
    let hidden = decoder.forward(prefill_embeds, prefill, &mut cache)?;
    let first = log_softmax(decoder.logits(hidden.narrow(1, s - 1, 1)).reshape([1, vocab]), 1);
    let first_ids: Vec<i64> = continuations.iter().map(|c| c.first().map_or(0, |&t| i64::from(t))).collect();
    let first_lp = first.repeat_dim(0, n).gather(1, Tensor::from_data(TensorData::new(first_ids, [n, 1]), &device));
    let mut per_token = vec![read_f32(first_lp)?];
    if longest > 1 {
        let l = longest - 1;
        let token = |c: &Vec<u32>, j: usize| i64::from(c.get(j).copied().unwrap_or(0));
        let inputs: Vec<i64> = continuations.iter().flat_map(|c| (0..l).map(move |j| token(c, j))).collect();
        let targets: Vec<i64> = continuations.iter().flat_map(|c| (1..=l).map(move |j| token(c, j))).collect();
        let start = prefill.position_ids[0].last().map_or(0, |p| p + 1);
        let mut key_mask = prefill.key_mask[0].clone();
        key_mask.extend(std::iter::repeat_n(true, l));
        let attn = AttentionInput {
            position_ids: vec![(start..start + l as i64).collect(); n],
            key_mask: vec![key_mask; n],
            bidirectional_groups: None,
        };
        let mut options: KvCache = cache.repeat_rows(n);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(inputs, [n, l]), &device);
        let hidden = decoder.forward(decoder.embed(ids), &attn, &mut options)?;
        let lp = log_softmax(decoder.logits(hidden), 2);
        let picked = lp.gather(2, Tensor::from_data(TensorData::new(targets, [n, l, 1]), &device)).reshape([n, l]);
        per_token.push(read_f32(picked)?);
    }
    Ok(continuations
        .iter()
        .enumerate()
        .map(|(r, c)| {
            let mut sum = 0.0f64;
            for j in 0..c.len() {
                sum += f64::from(if j == 0 { per_token[0][r] } else { per_token[1][r * (longest - 1) + j - 1] });
            }
            sum
        })
        .collect())
}

/// Nucleus sampling on the device: one index per row. `u[r]` ∈ [0, 1) picks the token where
/// the cumulative kept probability first exceeds `u · total`.
///
/// # Shapes
/// `logits` `[b, vocab]` → b token ids.
fn sample(logits: Tensor<2>, temperature: f32, top_p: f32, u: Vec<f32>) -> Result<Vec<u32>> {
    let [b, vocab] = logits.dims();
    let device = logits.device();
    let probs = softmax(logits / temperature, 1);
    let (sorted, order) = probs.sort_descending_with_indices(1);
    let cum = sorted.clone().cumsum(1);
    // Keep a token while the mass before it is below top_p: the most likely token always stays.
    let kept = if top_p < 1.0 { sorted.clone() * (cum - sorted).lower_elem(top_p).float() } else { sorted };
    let kept_cum = kept.clone().cumsum(1);
    let total = kept_cum.clone().narrow(1, vocab - 1, 1);
    let threshold = total * Tensor::<2>::from_data(TensorData::new(u, [b, 1]), &device);
    let count = kept_cum.lower_equal(threshold).int().sum_dim(1);
    // Rounding can put the threshold at the very end: stay on the last kept token.
    let last_kept = kept.greater_elem(0.0).int().sum_dim(1) - 1;
    let pos = count.clone().mask_where(count.greater(last_kept.clone()), last_kept);
    read_ids(order.gather(1, pos))
}

fn read_ids(ids: Tensor<2, Int>) -> Result<Vec<u32>> {
    let data = ids.try_into_data().map_err(|e| ModelError::Device(format!("{e:?}")))?;
    let values = data.convert::<i64>().try_into_vec::<i64>().map_err(|e| ModelError::Device(format!("{e:?}")))?;
    Ok(values.into_iter().map(|v| v as u32).collect())
}

fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.try_into_data().map_err(|e| ModelError::Device(format!("{e:?}")))?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| ModelError::Device(format!("{e:?}")))
}

/// SplitMix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"):
/// small, fast, and fully determined by its seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable in f32).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_in_range() {
        let a: Vec<f32> = {
            let mut r = SplitMix64::new(7);
            (0..1000).map(|_| r.next_f32()).collect()
        };
        let mut r = SplitMix64::new(7);
        assert!(a.iter().all(|&x| x == r.next_f32()));
        assert!(a.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = a.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn sampler_picks_by_cumulative_mass_and_respects_top_p() {
        let device = Device::flex();
        // probabilities 0.5, 0.3, 0.2 at ids 2, 0, 1 (log-probs as logits, temperature 1).
        let logits = || Tensor::<2>::from_data(TensorData::new(vec![0.3f32.ln(), 0.2f32.ln(), 0.5f32.ln()], [1, 3]), &device);
        assert_eq!(sample(logits(), 1.0, 1.0, vec![0.1]).unwrap(), vec![2]);
        assert_eq!(sample(logits(), 1.0, 1.0, vec![0.6]).unwrap(), vec![0]);
        assert_eq!(sample(logits(), 1.0, 1.0, vec![0.95]).unwrap(), vec![1]);
        // top_p 0.6 keeps {2, 0} (mass before 0 is 0.5 < 0.6, before 1 is 0.8): u near 1 → id 0.
        assert_eq!(sample(logits(), 1.0, 0.6, vec![0.999]).unwrap(), vec![0]);
        // top_p 0.4 keeps only the most likely.
        assert_eq!(sample(logits(), 1.0, 0.4, vec![0.999]).unwrap(), vec![2]);
    }
}
