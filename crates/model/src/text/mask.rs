//! Attention masks, built on the host from the caller's per-row key mask and image groups,
//! exactly as transformers 4.57 composes them (`masking_utils.py`, `modeling_gemma3.py`):
//!
//! allowed(q, k) = key_mask[k] ∧ ( (k ≤ q ∧ [sliding ⇒ k > q − window]) ∨ same_image_group(q, k) )
//!
//! where q and k are absolute indices (padding included) and `same_image_group` is Gemma 3's
//! `token_type_ids_mask_function` (both tokens in the same image block). A query row that
//! would attend to nothing (a left-padding position) attends to itself instead, so softmax
//! never sees an empty row; its output is ignored by every caller.

use super::decoder::AttentionInput;

/// The keys of one layer kind for one forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySpan {
    /// Absolute index of the first key the layer still holds.
    pub(crate) start: usize,
    /// Sliding window, if the layer has one.
    pub(crate) window: Option<usize>,
}

/// `true` = masked (Burn's convention), row-major `[b, s, past + s − start]`.
pub(crate) fn build(attn: &AttentionInput, past: usize, s: usize, span: KeySpan) -> Vec<bool> {
    let b = attn.key_mask.len();
    let total = past + s;
    let sk = total - span.start;
    let mut masked = vec![true; b * s * sk];
    for r in 0..b {
        let groups = attn.bidirectional_groups.as_ref().map(|g| &g[r]);
        for i in 0..s {
            let q = past + i;
            let row = &mut masked[(r * s + i) * sk..(r * s + i + 1) * sk];
            let mut any = false;
            for (col, k) in (span.start..total).enumerate() {
                let causal = k <= q && span.window.is_none_or(|w| k + w > q);
                let group = groups.is_some_and(|g| k >= past && g[i] > 0 && g[k - past] == g[i]);
                let ok = attn.key_mask[r][k] && (causal || group);
                row[col] = !ok;
                any |= ok;
            }
            if !any {
                row[q - span.start] = false;
            }
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &[bool], s: usize, sk: usize) -> Vec<String> {
        (0..s).map(|i| m[i * sk..(i + 1) * sk].iter().map(|&x| if x { '.' } else { '1' }).collect()).collect()
    }

    fn input(mask: Vec<bool>, s: usize, groups: Option<Vec<u32>>) -> AttentionInput {
        AttentionInput { position_ids: vec![(0..s as i64).collect()], key_mask: vec![mask], bidirectional_groups: groups.map(|g| vec![g]) }
    }

    #[test]
    fn causal_with_left_padding_row_attends_to_itself() {
        let attn = input(vec![false, true, true, true], 4, None);
        let m = build(&attn, 0, 4, KeySpan { start: 0, window: None });
        assert_eq!(render(&m, 4, 4), ["1...", ".1..", ".11.", ".111"]);
    }

    #[test]
    fn sliding_window_is_exclusive_bound() {
        // kv_idx > q_idx − 2: each query sees itself and one earlier key.
        let attn = input(vec![true; 4], 4, None);
        let m = build(&attn, 0, 4, KeySpan { start: 0, window: Some(2) });
        assert_eq!(render(&m, 4, 4), ["1...", "11..", ".11.", "..11"]);
    }

    #[test]
    fn decode_step_against_a_trimmed_sliding_cache() {
        // 5 tokens seen, the layer kept the last 3 (indices 2..5), new query index 5, window 3.
        let attn = AttentionInput { position_ids: vec![vec![5]], key_mask: vec![vec![true; 6]], bidirectional_groups: None };
        let m = build(&attn, 5, 1, KeySpan { start: 2, window: Some(3) });
        assert_eq!(render(&m, 1, 4), [".111"]);
    }

    #[test]
    fn image_group_is_bidirectional_even_past_the_window() {
        let attn = input(vec![true; 5], 5, Some(vec![0, 1, 1, 1, 0]));
        let full = build(&attn, 0, 5, KeySpan { start: 0, window: None });
        assert_eq!(render(&full, 5, 5), ["1....", "1111.", "1111.", "1111.", "11111"]);
        let sliding = build(&attn, 0, 5, KeySpan { start: 0, window: Some(2) });
        assert_eq!(render(&sliding, 5, 5), ["1....", "1111.", ".111.", ".111.", "...11"]);
    }

    #[test]
    fn two_groups_do_not_see_each_other() {
        let attn = input(vec![true; 4], 4, Some(vec![1, 1, 2, 2]));
        let m = build(&attn, 0, 4, KeySpan { start: 0, window: None });
        assert_eq!(render(&m, 4, 4), ["11..", "11..", "1111", "1111"]);
    }
}
