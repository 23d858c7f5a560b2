//! The key/value cache of a decoder: per layer, the rotated keys and the values of every token
//! seen so far, so a decoding step runs only the new token.
//!
//! Sliding-window layers keep only the last `sliding_window` keys: a query at index q attends
//! to keys with index > q − window (transformers `sliding_window_overlay`), and every later
//! query has a larger index, so older keys can never be attended again. Indices are absolute
//! (padding included, as transformers' `cache_position`), and each layer remembers the index
//! of its first kept key so the masks stay exact.

use burn::prelude::*;

/// Cached keys and values of one layer.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerCache {
    /// `[b, kv_heads, kept, head_dim]`, after RoPE.
    pub(crate) keys: Option<Tensor<4>>,
    /// `[b, kv_heads, kept, head_dim]`.
    pub(crate) values: Option<Tensor<4>>,
    /// Absolute index of the first kept key.
    pub(crate) start: usize,
}

/// Keys and values of every layer for a batch of sequences. Cloning is cheap (tensors are
/// shared) and the clone is independent: appending creates new tensors.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    /// `Some(window)` for sliding layers.
    pub(crate) windows: Vec<Option<usize>>,
    /// Tokens seen per row (the same for every row: rows are padded together).
    pub(crate) seen: usize,
    pub(crate) batch: usize,
}

impl KvCache {
    /// An empty cache for `batch` rows; `windows[i]` is layer i's sliding window, if any.
    pub(crate) fn new(batch: usize, windows: Vec<Option<usize>>) -> KvCache {
        KvCache { layers: vec![LayerCache::default(); windows.len()], windows, seen: 0, batch }
    }

    /// Tokens already in the cache (per row, padding included): the `past` of the next forward.
    pub fn seq_len(&self) -> usize {
        self.seen
    }

    /// Rows.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The same cache with every row repeated `times` times (row r becomes rows
    /// r·times … r·times + times − 1), e.g. to score several continuations of one prompt in one
    /// batch.
    pub fn repeat_rows(&self, times: usize) -> KvCache {
        let rep = |t: &Option<Tensor<4>>| {
            t.as_ref().map(|t| {
                let [b, h, s, d] = t.dims();
                t.clone().unsqueeze_dim::<5>(1).repeat_dim(1, times).reshape([b * times, h, s, d])
            })
        };
        KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| LayerCache { keys: rep(&l.keys), values: rep(&l.values), start: l.start })
                .collect(),
            windows: self.windows.clone(),
            seen: self.seen,
            batch: self.batch * times,
        }
    }

    /// Appends this step's keys/values to layer `i` and returns everything attended now
    /// (`[b, kv_heads, kept + s, hd]` each) with the absolute index of its first key. Sliding
    /// layers then drop what no later query can reach.
    pub(crate) fn update(&mut self, i: usize, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>, usize) {
        let layer = &mut self.layers[i];
        let (k, v) = match (layer.keys.take(), layer.values.take()) {
            (Some(pk), Some(pv)) => (Tensor::cat(vec![pk, keys], 2), Tensor::cat(vec![pv, values], 2)),
            _ => (keys, values),
        };
        let start = layer.start;
        let len = k.dims()[2];
        match self.windows[i] {
            Some(w) if len > w => {
                layer.keys = Some(k.clone().narrow(2, len - w, w));
                layer.values = Some(v.clone().narrow(2, len - w, w));
                layer.start = start + len - w;
            }
            _ => {
                layer.keys = Some(k.clone());
                layer.values = Some(v.clone());
            }
        }
        (k, v, start)
    }

    /// Records that a forward of `s` new tokens finished.
    pub(crate) fn advance(&mut self, s: usize) {
        self.seen += s;
    }
}
