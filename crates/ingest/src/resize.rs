//! Image resampling that reproduces Pillow's `Image.resize` value for value.
//!
//! The HuggingFace image processors (SigLIP, Gemma 3, CLIP) resize with Pillow, so a model's
//! input is only reproduced if our resize is Pillow's. What Pillow does (`src/libImaging/
//! Resample.c`, `Geometry.c`, `Image.resize` in `src/PIL/Image.py`, Pillow 13.0):
//!
//! - a separable convolution, one pass per axis; when downscaling by a factor `s > 1` the
//!   filter's support is stretched by `s` (antialiasing);
//! - the horizontal pass runs first unless the height shrinks by more than twice as many
//!   pixels as the width (Pillow 13.0). The order matters in 8-bit mode, where the
//!   intermediate image is rounded: Pillow ≤ 12.1 always went horizontal first, and 12.2–12.3
//!   went vertical first only for images taller than 100× their width, so results from those
//!   versions can differ from ours by a level where the rules disagree;
//! - per output sample, source taps `[xmin, xmin + n)` around `centre = (i + 0.5) · scale`,
//!   weights `filter((j - centre + 0.5) / filterscale)` normalised to sum 1, in `f64`;
//! - mode "F" (`f32` pixels): sums in `f64`, each pass stored as `f32`
//!   ([`ResizeMode::Float`]);
//! - modes "L" / "RGB" (8-bit): the weights are converted to fixed point with 22 fractional
//!   bits (`PRECISION_BITS = 32 - 8 - 2`), sums start at one half (rounding), and every pass
//!   is clipped to 0..=255 and stored as `u8` ([`ResizeMode::Uint8`]);
//! - NEAREST is not a convolution: Pillow maps output to input with an affine scale whose
//!   source coordinate accumulates `scale` per pixel in `f64` and is truncated.
//!
//! Channels are independent in every mode, so `[H, W, C]` is resampled per channel exactly as
//! Pillow's interleaved "RGB" does. Only the whole-image box is supported (no `box` /
//! `reducing_gap` arguments), which is what the image processors use.

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{IngestError, Result};

/// Resampling filter, named as Pillow's `Image.Resampling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Filter {
    /// The filter for a Pillow resampling code as found in HF `preprocessor_config.json`
    /// (`"resample": 3`): NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5
    /// (`PIL.Image.Resampling`).
    pub fn from_pil_code(code: i64) -> Option<Filter> {
        Some(match code {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    /// Half-width of the kernel at scale 1 (`struct filter` support in Resample.c).
    fn support(self) -> f64 {
        match self {
            Filter::Nearest => 0.0,
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    /// The kernel, written with the same operation order as Resample.c so the `f64` weights
    /// are bit-identical.
    fn kernel(self, x: f64) -> f64 {
        match self {
            Filter::Nearest => 0.0,
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes the constants as C floats (0.54f, 0.46f).
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Filter::Bicubic => {
                // Keys' cubic convolution with a = -0.5 (Resample.c `bicubic_filter`).
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                // Sinc windowed by sinc(x / 3) on [-3, 3).
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Which of Pillow's pixel types the resize reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Pillow mode "F": `f32` in and out, no rounding or clipping beyond `f32` storage.
    Float,
    /// Pillow modes "L" / "RGB": 8-bit levels, fixed-point weights, rounded and clipped.
    Uint8,
}

/// Fractional bits of Pillow's fixed-point weights: 32 bits minus 8 for the result minus 2
/// for overflow from negative lobes (Resample.c `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Convolution weights for one axis: for output `i`, taps start at `start[i]`, there are
/// `len[i]` of them, weights at `weights[i * ksize ..]`.
pub(crate) struct Coeffs {
    start: Vec<usize>,
    len: Vec<usize>,
    ksize: usize,
    weights: Vec<f64>,
}

impl Coeffs {
    /// Resample.c `precompute_coeffs` for the box `[0, in_size)`.
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
        // Pillow passes the box edges as C floats; whole-image sizes are exact in f32 up to
        // 2^24, far beyond any image we accept.
        let scale = (in_size as f32) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let mut start = Vec::with_capacity(out_size);
        let mut len = Vec::with_capacity(out_size);
        let mut weights = vec![0.0f64; out_size * ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C `(int)` truncates toward zero; negatives are clamped to 0 right after.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let k = &mut weights[xx * ksize..xx * ksize + n.min(ksize)];
            let mut ww = 0.0;
            for (x, w) in k.iter_mut().enumerate() {
                *w = filter.kernel(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
                ww += *w;
            }
            if ww != 0.0 {
                for w in k.iter_mut() {
                    *w /= ww;
                }
            }
            start.push(xmin as usize);
            len.push(n.min(ksize));
        }
        Coeffs {
            start,
            len,
            ksize,
            weights,
        }
    }

    /// The taps with one length `k` for every output: each output's taps are placed in a
    /// window of `k` source samples that stays inside `[0, in_size)`, the extra weights 0.
    /// A fixed-length loop has no mispredicted exit (the 2-or-3-tap pattern of a 512 → 448
    /// bilinear pass made it the largest cost, benches/README.md). Adding `0 · x` does not
    /// change a sum of finite values (the sum, which starts at +0, is never -0), so for
    /// finite samples the result is that of [`Coeffs::taps`]; callers use these only then.
    fn padded(&self, in_size: usize) -> Padded {
        let k = self
            .len
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1)
            .min(in_size);
        let mut start = Vec::with_capacity(self.len.len());
        let mut weights = vec![0.0f64; self.len.len() * k];
        for (i, w) in weights.chunks_exact_mut(k).enumerate() {
            let (s, taps) = self.taps(i);
            let s0 = s.min(in_size - k);
            w[s - s0..s - s0 + taps.len()].copy_from_slice(taps);
            start.push(s0);
        }
        Padded { k, start, weights }
    }

    fn taps(&self, i: usize) -> (usize, &[f64]) {
        let w = &self.weights[i * self.ksize..i * self.ksize + self.len[i]];
        (self.start[i], w)
    }

    /// Resample.c `normalize_coeffs_8bpc`: round half away from zero to 22 fractional bits.
    fn fixed_point(&self) -> Vec<i32> {
        let one = (1u32 << PRECISION_BITS) as f64;
        self.weights
            .iter()
            .map(|&k| {
                if k < 0.0 {
                    (-0.5 + k * one) as i32
                } else {
                    (0.5 + k * one) as i32
                }
            })
            .collect()
    }
}

/// [`Coeffs::padded`]: output `i` reads `src[start[i]..start[i] + k]` with
/// `weights[i * k..(i + 1) * k]`.
pub(crate) struct Padded {
    k: usize,
    start: Vec<usize>,
    weights: Vec<f64>,
}

/// One output row of a one-channel `f32` image with `K` taps per output (see
/// [`Coeffs::padded`]); `K` known at compile time lets the tap loop unroll.
fn row_fixed<const K: usize>(src: &[f32], p: &Padded, out: &mut [f32]) {
    for ((o, &s), w) in out.iter_mut().zip(&p.start).zip(p.weights.chunks_exact(K)) {
        let px = &src[s..s + K];
        let mut ss = 0.0f64;
        for j in 0..K {
            ss += px[j] as f64 * w[j];
        }
        *o = ss as f32;
    }
}

/// One output row of the vertical pass from `K` whole input rows starting at row `start`,
/// each sample's sum in registers (no accumulator row in memory); the same sums, in the
/// same order, as the accumulating loop of `convolve_rows`.
fn rows_fixed<const K: usize>(src: &[f32], row: usize, start: usize, k: &[f64], out: &mut [f32]) {
    let n = out.len();
    let rows: [&[f32]; K] = std::array::from_fn(|j| &src[(start + j) * row..(start + j) * row + n]);
    let w: [f64; K] = std::array::from_fn(|j| k[j]);
    for (i, o) in out.iter_mut().enumerate() {
        let mut ss = 0.0f64;
        for j in 0..K {
            ss += rows[j][i] as f64 * w[j];
        }
        *o = ss as f32;
    }
}

/// [`row_fixed`] with the tap count known only at run time.
fn row_padded(src: &[f32], p: &Padded, out: &mut [f32]) {
    let k = p.k;
    for ((o, &s), w) in out.iter_mut().zip(&p.start).zip(p.weights.chunks_exact(k)) {
        let mut ss = 0.0f64;
        for (&v, &w) in src[s..s + k].iter().zip(w) {
            ss += v as f64 * w;
        }
        *o = ss as f32;
    }
}

/// Resample.c `clip8`: the integer part of a fixed-point sum, clipped to 0..=255.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Output rows per rayon task: a row of a 448-wide image is a few microseconds of work, so
/// finer splitting costs more in scheduling than it gains (benches/README.md).
const ROWS_PER_TASK: usize = 16;

/// Columns accumulated at once by the vertical pass: the accumulators stay in L1 and on the
/// stack instead of a heap row per output row.
const COLUMN_BLOCK: usize = 256;

/// Pixel types with a Pillow resampling pass.
pub(crate) trait Sample: Copy + Send + Sync + Default {
    /// One output sample from taps `stride` apart (the horizontal pass).
    fn convolve_axis(src: &[Self], stride: usize, taps: (usize, &[f64]), fixed: &[i32]) -> Self;
    /// One output row of a one-channel image: `out[x]` from `src[start(x)..]` (the horizontal
    /// pass with stride 1, same sums as `convolve_axis`).
    fn convolve_row(src: &[Self], co: &Coeffs, padded: &Padded, fixed: &[i32], out: &mut [Self]);
    /// One output row from whole input rows (the vertical pass). Accumulating row by row
    /// adds the taps of every sample in the same order as `convolve_axis`, so the result is
    /// identical, and the inner loop runs over contiguous memory.
    fn convolve_rows(
        src: &[Self],
        row: usize,
        taps: (usize, &[f64]),
        fixed: &[i32],
        out: &mut [Self],
    );
}

impl Sample for f32 {
    #[inline]
    fn convolve_axis(src: &[f32], stride: usize, (start, k): (usize, &[f64]), _: &[i32]) -> f32 {
        let mut ss = 0.0f64;
        for (j, &w) in k.iter().enumerate() {
            ss += src[(start + j) * stride] as f64 * w;
        }
        ss as f32
    }

    fn convolve_row(src: &[f32], co: &Coeffs, padded: &Padded, _: &[i32], out: &mut [f32]) {
        // Pillow's exact tap counts where a sample is not finite (0 · inf is NaN).
        if src.iter().fold(true, |a, v| a & v.is_finite()) {
            match padded.k {
                1 => row_fixed::<1>(src, padded, out),
                2 => row_fixed::<2>(src, padded, out),
                3 => row_fixed::<3>(src, padded, out),
                4 => row_fixed::<4>(src, padded, out),
                5 => row_fixed::<5>(src, padded, out),
                6 => row_fixed::<6>(src, padded, out),
                _ => row_padded(src, padded, out),
            }
            return;
        }
        for (xx, o) in out.iter_mut().enumerate() {
            let (start, k) = co.taps(xx);
            // One bounds check per output sample, then a zip the compiler keeps unchecked.
            let px = &src[start..start + k.len()];
            let mut ss = 0.0f64;
            for (&p, &w) in px.iter().zip(k) {
                ss += p as f64 * w;
            }
            *o = ss as f32;
        }
    }

    fn convolve_rows(
        src: &[f32],
        row: usize,
        (start, k): (usize, &[f64]),
        _: &[i32],
        out: &mut [f32],
    ) {
        match k.len() {
            1 => return rows_fixed::<1>(src, row, start, k, out),
            2 => return rows_fixed::<2>(src, row, start, k, out),
            3 => return rows_fixed::<3>(src, row, start, k, out),
            4 => return rows_fixed::<4>(src, row, start, k, out),
            _ => {}
        }
        let mut acc = [0.0f64; COLUMN_BLOCK];
        for (b, ob) in out.chunks_mut(COLUMN_BLOCK).enumerate() {
            let c0 = b * COLUMN_BLOCK;
            let acc = &mut acc[..ob.len()];
            acc.fill(0.0);
            for (j, &w) in k.iter().enumerate() {
                let r = &src[(start + j) * row + c0..(start + j) * row + c0 + ob.len()];
                for (a, &v) in acc.iter_mut().zip(r) {
                    *a += v as f64 * w;
                }
            }
            for (o, &a) in ob.iter_mut().zip(acc.iter()) {
                *o = a as f32;
            }
        }
    }
}

impl Sample for u8 {
    #[inline]
    fn convolve_axis(src: &[u8], stride: usize, (start, _): (usize, &[f64]), fixed: &[i32]) -> u8 {
        // Wrapping arithmetic: Pillow's sums are C `int`; for 8-bit input and normalised
        // weights they stay far below 2^31, and wrapping keeps odd weights from panicking.
        let mut ss: i32 = 1 << (PRECISION_BITS - 1);
        for (j, &w) in fixed.iter().enumerate() {
            ss = ss.wrapping_add((src[(start + j) * stride] as i32).wrapping_mul(w));
        }
        clip8(ss)
    }

    fn convolve_row(src: &[u8], co: &Coeffs, _: &Padded, fixed: &[i32], out: &mut [u8]) {
        for (xx, o) in out.iter_mut().enumerate() {
            let (start, len) = (co.start[xx], co.len[xx]);
            let px = &src[start..start + len];
            let f = &fixed[xx * co.ksize..xx * co.ksize + len];
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (&p, &w) in px.iter().zip(f) {
                ss = ss.wrapping_add((p as i32).wrapping_mul(w));
            }
            *o = clip8(ss);
        }
    }

    fn convolve_rows(
        src: &[u8],
        row: usize,
        (start, _): (usize, &[f64]),
        fixed: &[i32],
        out: &mut [u8],
    ) {
        let mut acc = [0i32; COLUMN_BLOCK];
        for (b, ob) in out.chunks_mut(COLUMN_BLOCK).enumerate() {
            let c0 = b * COLUMN_BLOCK;
            let acc = &mut acc[..ob.len()];
            acc.fill(1 << (PRECISION_BITS - 1));
            for (j, &w) in fixed.iter().enumerate() {
                let r = &src[(start + j) * row + c0..(start + j) * row + c0 + ob.len()];
                for (a, &v) in acc.iter_mut().zip(r) {
                    *a = a.wrapping_add((v as i32).wrapping_mul(w));
                }
            }
            for (o, &a) in ob.iter_mut().zip(acc.iter()) {
                *o = clip8(a);
            }
        }
    }
}

/// One horizontal pass over `[h, w, c]` (row-major, channels interleaved) to width `out_w`,
/// into `out` (`h * out_w * c` samples).
fn horizontal<T: Sample>(
    src: &[T],
    (h, w, c): (usize, usize, usize),
    out_w: usize,
    filter: Filter,
    out: &mut [T],
) {
    debug_assert_eq!(out.len(), h * out_w * c);
    let co = Coeffs::new(w, out_w, filter);
    let fixed = co.fixed_point();
    let padded = co.padded(w);
    out.par_chunks_mut(out_w * c)
        .zip(src.par_chunks(w * c))
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(orow, irow)| {
            if c == 1 {
                T::convolve_row(irow, &co, &padded, &fixed, orow);
                return;
            }
            for xx in 0..out_w {
                let taps = co.taps(xx);
                let f = &fixed[xx * co.ksize..xx * co.ksize + taps.1.len()];
                for ch in 0..c {
                    orow[xx * c + ch] = T::convolve_axis(&irow[ch..], c, taps, f);
                }
            }
        });
}

/// One vertical pass over `[h, w, c]` to height `out_h`, into `out` (`out_h * w * c`).
fn vertical<T: Sample>(
    src: &[T],
    (h, w, c): (usize, usize, usize),
    out_h: usize,
    filter: Filter,
    out: &mut [T],
) {
    let co = Coeffs::new(h, out_h, filter);
    let fixed = co.fixed_point();
    let row = w * c;
    debug_assert_eq!(out.len(), out_h * row);
    out.par_chunks_mut(row)
        .enumerate()
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(yy, orow)| {
            let taps = co.taps(yy);
            let f = &fixed[yy * co.ksize..yy * co.ksize + taps.1.len()];
            T::convolve_rows(src, row, taps, f, orow);
        });
}

/// NEAREST: `ImagingScaleAffine` in Geometry.c. The source coordinate starts at half a
/// step and accumulates the step in `f64`; the index is its truncation.
fn nearest_indices(in_size: usize, out_size: usize) -> Vec<usize> {
    let a = (in_size as f32) as f64 / out_size as f64;
    let mut pos = a * 0.5;
    let mut idx = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        idx.push((pos as usize).min(in_size - 1));
        pos += a;
    }
    idx
}

fn nearest<T: Sample>(
    src: &[T],
    (h, w, c): (usize, usize, usize),
    (out_h, out_w): (usize, usize),
    out: &mut [T],
) {
    let xs = nearest_indices(w, out_w);
    let ys = nearest_indices(h, out_h);
    out.par_chunks_mut(out_w * c)
        .enumerate()
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(y, orow)| {
            let irow = &src[ys[y] * w * c..(ys[y] + 1) * w * c];
            for (x, &sx) in xs.iter().enumerate() {
                orow[x * c..(x + 1) * c].copy_from_slice(&irow[sx * c..(sx + 1) * c]);
            }
        });
}

/// `buf` holding `n` samples. Its old contents are overwritten by the pass that fills it, so
/// a reused buffer of the right size is not cleared again.
pub(crate) fn sized<T: Sample>(buf: &mut Vec<T>, n: usize) -> &mut [T] {
    if buf.len() != n {
        buf.clear();
        buf.resize(n, T::default());
    }
    buf
}

/// Pillow's resize of `src` (`[h, w, c]`, row-major) into `out` (`[out_h, out_w, c]`), the
/// intermediate pass in `tmp` (grown as needed, so a caller can reuse it across images).
pub(crate) fn resample_into<T: Sample>(
    src: &[T],
    (h, w, c): (usize, usize, usize),
    (out_h, out_w): (usize, usize),
    filter: Filter,
    tmp: &mut Vec<T>,
    out: &mut [T],
) {
    debug_assert_eq!(src.len(), h * w * c);
    debug_assert_eq!(out.len(), out_h * out_w * c);
    if (h, w) == (out_h, out_w) {
        out.copy_from_slice(src);
        return;
    }
    if filter == Filter::Nearest {
        nearest(src, (h, w, c), (out_h, out_w), out);
        return;
    }
    // Pillow 13 `ImagingResampleInner`: when the height shrinks by more than twice as many
    // pixels as the width does, the vertical pass runs first (C `int` arithmetic, so a
    // growing width counts negative).
    let (dh, dw) = (h as i64 - out_h as i64, w as i64 - out_w as i64);
    let horizontal_first = !(dh > 0 && dh > dw * 2);
    if out_w == w {
        vertical(src, (h, w, c), out_h, filter, out);
    } else if out_h == h {
        horizontal(src, (h, w, c), out_w, filter, out);
    } else if horizontal_first {
        let t = sized(tmp, h * out_w * c);
        horizontal(src, (h, w, c), out_w, filter, t);
        vertical(t, (h, out_w, c), out_h, filter, out);
    } else {
        let t = sized(tmp, out_h * w * c);
        vertical(src, (h, w, c), out_h, filter, t);
        horizontal(t, (out_h, w, c), out_w, filter, out);
    }
}

fn resample<T: Sample>(
    src: &[T],
    (h, w, c): (usize, usize, usize),
    (out_h, out_w): (usize, usize),
    filter: Filter,
) -> Vec<T> {
    let mut out = vec![T::default(); out_h * out_w * c];
    resample_into(
        src,
        (h, w, c),
        (out_h, out_w),
        filter,
        &mut Vec::new(),
        &mut out,
    );
    out
}

fn check_sizes(shape: &[usize], out_h: usize, out_w: usize) -> Result<()> {
    if shape.contains(&0) || out_h == 0 || out_w == 0 {
        return Err(IngestError::Invalid {
            what: "resize".into(),
            reason: format!("cannot resize {shape:?} to {out_h}x{out_w}: empty image or size"),
        });
    }
    Ok(())
}

/// The samples of `img` in row-major order: borrowed when the array is already laid out so
/// (the usual case), copied otherwise.
fn contiguous<'a, T: Copy>(img: &'a ArrayView3<T>) -> std::borrow::Cow<'a, [T]> {
    match img.to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(img.iter().copied().collect()),
    }
}

/// Resizes `[H, W, C]` `f32` samples as Pillow mode "F" does, to `[out_h, out_w, C]`.
pub fn resize_f32(
    img: ArrayView3<f32>,
    out_h: usize,
    out_w: usize,
    filter: Filter,
) -> Result<Array3<f32>> {
    let (h, w, c) = img.dim();
    check_sizes(img.shape(), out_h, out_w)?;
    let out = resample(&contiguous(&img), (h, w, c), (out_h, out_w), filter);
    Ok(Array3::from_shape_vec((out_h, out_w, c), out).expect("resample returns out_h*out_w*c"))
}

/// Resizes `[H, W, C]` 8-bit samples as Pillow modes "L" (C = 1) and "RGB" (C = 3) do.
pub fn resize_u8(
    img: ArrayView3<u8>,
    out_h: usize,
    out_w: usize,
    filter: Filter,
) -> Result<Array3<u8>> {
    let (h, w, c) = img.dim();
    check_sizes(img.shape(), out_h, out_w)?;
    let out = resample(&contiguous(&img), (h, w, c), (out_h, out_w), filter);
    Ok(Array3::from_shape_vec((out_h, out_w, c), out).expect("resample returns out_h*out_w*c"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn weights_sum_to_one_and_cover_the_support() {
        for f in [
            Filter::Box,
            Filter::Bilinear,
            Filter::Hamming,
            Filter::Bicubic,
            Filter::Lanczos,
        ] {
            for (i, o) in [(10, 3), (3, 10), (7, 7), (100, 33)] {
                let c = Coeffs::new(i, o, f);
                for x in 0..o {
                    let (s, k) = c.taps(x);
                    assert!(s + k.len() <= i);
                    let sum: f64 = k.iter().sum();
                    assert!(
                        (sum - 1.0).abs() < 1e-12,
                        "{f:?} {i}->{o} out {x}: sum {sum}"
                    );
                }
            }
        }
    }

    #[test]
    fn downscale_stretches_support() {
        // 2x downscale with the triangle filter: support 2 taps either side, weights
        // 1/8, 3/8, 3/8, 1/8 for an interior sample (centre at 2i + 1).
        let c = Coeffs::new(8, 4, Filter::Bilinear);
        let (s, k) = c.taps(1);
        assert_eq!(s, 1);
        let want = [0.125, 0.375, 0.375, 0.125];
        assert_eq!(k.len(), 4);
        for (a, b) in k.iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Array3::from_elem((9, 13, 3), 77u8);
        for f in [
            Filter::Nearest,
            Filter::Box,
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos,
        ] {
            let out = resize_u8(img.view(), 5, 20, f).unwrap();
            assert!(out.iter().all(|&v| v == 77), "{f:?}");
            let outf = resize_f32(img.mapv(|v| v as f32).view(), 20, 5, f).unwrap();
            assert!(outf.iter().all(|&v| (v - 77.0).abs() < 1e-4), "{f:?}");
        }
    }

    #[test]
    fn eight_bit_clips_bicubic_overshoot() {
        // A hard edge: bicubic's negative lobes overshoot below 0 and above 255; Pillow clips.
        let mut img = Array3::zeros((1, 8, 1));
        for x in 4..8 {
            img[[0, x, 0]] = 255u8;
        }
        let out = resize_u8(img.view(), 1, 16, Filter::Bicubic).unwrap();
        let f = resize_f32(img.mapv(|v| v as f32).view(), 1, 16, Filter::Bicubic).unwrap();
        assert!(f.iter().any(|&v| v < 0.0) && f.iter().any(|&v| v > 255.0));
        for (a, b) in out.iter().zip(f.iter()) {
            assert!((*a as f32 - b.clamp(0.0, 255.0)).abs() <= 1.0);
        }
    }

    #[test]
    fn padded_taps_give_the_exact_sums() {
        let row: Vec<f32> = (0..97)
            .map(|i| ((i * 37) % 23) as f32 * 0.731 - 5.0)
            .collect();
        for f in [
            Filter::Box,
            Filter::Bilinear,
            Filter::Hamming,
            Filter::Bicubic,
            Filter::Lanczos,
        ] {
            for out_w in [1, 13, 60, 96, 97, 150, 300] {
                let co = Coeffs::new(row.len(), out_w, f);
                let padded = co.padded(row.len());
                let mut got = vec![0f32; out_w];
                f32::convolve_row(&row, &co, &padded, &[], &mut got);
                for (x, g) in got.iter().enumerate() {
                    let want = f32::convolve_axis(&row, 1, co.taps(x), &[]);
                    assert_eq!(g.to_bits(), want.to_bits(), "{f:?} -> {out_w} at {x}");
                }
                // A non-finite sample: Pillow's own tap counts, so far outputs stay finite.
                let mut inf = row.clone();
                inf[0] = f32::INFINITY;
                f32::convolve_row(&inf, &co, &padded, &[], &mut got);
                for (x, g) in got.iter().enumerate() {
                    let want = f32::convolve_axis(&inf, 1, co.taps(x), &[]);
                    assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()));
                }
            }
        }
    }

    #[test]
    fn vertical_rows_give_the_per_sample_sums() {
        // 5 columns, 40 rows; every filter and scale gives tap counts from 1 to well past 4.
        let (h, row) = (40, 5);
        let src: Vec<f32> = (0..h * row)
            .map(|i| ((i * 53) % 31) as f32 * 0.917 - 9.0)
            .collect();
        for f in [
            Filter::Box,
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos,
        ] {
            for out_h in [1, 7, 19, 39, 80] {
                let co = Coeffs::new(h, out_h, f);
                let mut got = vec![0f32; row];
                for y in 0..out_h {
                    f32::convolve_rows(&src, row, co.taps(y), &[], &mut got);
                    for (x, g) in got.iter().enumerate() {
                        let want = f32::convolve_axis(&src[x..], row, co.taps(y), &[]);
                        assert_eq!(g.to_bits(), want.to_bits(), "{f:?} -> {out_h} at {y},{x}");
                    }
                }
            }
        }
    }

    #[test]
    fn nearest_picks_pillow_indices() {
        // 5 -> 3: step 5/3, positions 0.833, 2.5, 4.167 -> 0, 2, 4.
        assert_eq!(nearest_indices(5, 3), vec![0, 2, 4]);
        // 2 -> 5: step 0.4, positions 0.2, 0.6, 1.0, 1.4, 1.8 -> 0, 0, 1, 1, 1.
        assert_eq!(nearest_indices(2, 5), vec![0, 0, 1, 1, 1]);
    }

    #[test]
    fn empty_sizes_are_errors() {
        let img = Array3::<f32>::zeros((4, 4, 1));
        assert!(resize_f32(img.view(), 0, 4, Filter::Bilinear).is_err());
        let empty = Array3::<u8>::zeros((0, 4, 1));
        assert!(resize_u8(empty.view(), 2, 2, Filter::Bilinear).is_err());
    }
}
