//! Model input: named, parameterised preprocessing steps composed into a [`Pipeline`] whose
//! steps serialise with their parameters, so the JSON written beside an output says exactly
//! how it was made (MONAI-style provenance).
//!
//! # Shapes
//!
//! Between steps an image is `[H, W, C]` (channels last, `C` = 1 or 3, `f32`). A pipeline
//! ends with [`Step::ToChannelsFirst`] and returns `[3, H, W]`; a stack (volume slices or
//! frames) `[S, H, W]` / `[S, H, W, C]` gives `[S', 3, H, W]`, `S'` after
//! [`Step::SampleSlices`].
//!
//! # Matching the HuggingFace image processors
//!
//! `SiglipImageProcessor`, `Gemma3ImageProcessor` and `CLIPImageProcessor` (transformers 4.56,
//! the "slow" NumPy/Pillow processors) work on 8-bit images: the image becomes a Pillow
//! "L"/"RGB" image, is resized in 8-bit (fixed-point, rounded, clipped), then multiplied by
//! `rescale_factor` (1/255, in `f64`, stored as `f32`) and normalised `(x - mean) / std` in
//! `f32`. For 8-bit inputs ([`InputRange::Levels8`]: PNG/JPEG, MedGemma's multi-window CT)
//! [`Pipeline::from_hf_config`] reproduces that order exactly.
//!
//! Medical data is usually deeper than 8 bits. We first window it to [0, 1] (the `display`
//! stage, [`InputRange::Unit`]) and then offer two resize modes:
//! - [`ResizeMode::Uint8`] (default): what the processor itself does with a float image in
//!   [0, 1] when called with `do_rescale=False` (as Google's MedSigLIP serving code calls it):
//!   `to_pil_image` multiplies by 255 and truncates to `uint8`, resizes in 8-bit, divides by
//!   255 — bit-for-bit the model's training-time input path;
//! - [`ResizeMode::Float`]: resize in Pillow's "F" mode with no quantisation, then clip to
//!   [0, 1], keeping the precision of the window. Not what the reference processors do: on
//!   the MedSigLIP fixture the median difference is 0.3 of an 8-bit level and the 99th
//!   percentile 1.5 levels, but at hard edges, where the 8-bit path clips bicubic overshoot
//!   between its two passes, up to 8 levels.

use std::path::Path;

use ndarray::{s, Array3, Array4, ArrayView3, ArrayViewD, Axis, Ix3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{IngestError, Result};
use crate::lut::Window;
use crate::presets::MultiWindow;
use crate::resize::{resample_into, resize_f32, resize_u8, sized, Filter, ResizeMode};

/// How [`Step::ToUint8`] turns scaled values into 8-bit levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Toward zero, as NumPy's `astype(np.uint8)` in transformers' `to_pil_image`.
    Truncate,
    /// To nearest, ties to even, as `np.round`.
    HalfEven,
}

/// One preprocessing step and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// VOI window (PS3.3 C.11.2.1.2) mapping modality values to [0, 1], every channel.
    Window { window: Window },
    /// One-channel HU image to three channels of 8-bit levels, one window each
    /// ([`MultiWindow`], MedGemma 1.5's CT recipe).
    MultiWindowRgb { windows: MultiWindow },
    /// `x · scale` (computed in `f64`, stored `f32`) rounded to a level and clipped to 0..=255.
    ToUint8 { scale: f64, rounding: Rounding },
    /// Zero-pads (with `fill`) the short side to make the image square, the image centred:
    /// `d = long - short` split as `d / 2` (floor) before and the rest after (MedSigLIP's
    /// `_zero_pad_image_to_square`, Google-Health/medsiglip `python/serving/predictor.py`).
    PadToSquare { fill: f32 },
    /// Pillow resize to `height × width`.
    Resize {
        height: usize,
        width: usize,
        filter: Filter,
        mode: ResizeMode,
    },
    /// CLIPImageProcessor's resize: the short side becomes `size`, the long side
    /// `int(size · long / short)` (truncated), then a Pillow resize.
    ResizeShortestEdge {
        size: usize,
        filter: Filter,
        mode: ResizeMode,
    },
    /// transformers' `center_crop`: top = floor((H - h) / 2), left likewise; where the crop
    /// is larger than the image the outside is zero.
    CenterCrop { height: usize, width: usize },
    /// `x · factor`, in `f64`, stored `f32` (transformers' `rescale`).
    Rescale { factor: f64 },
    /// Clamps to `[min, max]`: after a float-mode resize of [0, 1] data, removes the
    /// overshoot of bicubic/Lanczos lobes that the 8-bit path clips away.
    Clip { min: f32, max: f32 },
    /// `(x - mean[c]) / std[c]` in `f32`; one value applies to every channel.
    Normalize { mean: Vec<f64>, std: Vec<f64> },
    /// One channel copied to three (Pillow `convert("RGB")` of an "L" image); RGB unchanged.
    GrayToRgb,
    /// `[H, W, C]` → `[C, H, W]`; must be the last step.
    ToChannelsFirst,
    /// Volumes only, first step: keep `count` slices at indices
    /// `round_half_even(i / count · (n - 1))` for `i = 1..=count`, all slices when
    /// `n <= count` (MedGemma 1.5 CT notebook, see [`sample_slice_indices`]).
    SampleSlices { count: usize },
}

/// What the values given to a pipeline built by [`Pipeline::from_hf_config`] or
/// [`Pipeline::for_size`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRange {
    /// 8-bit levels 0..=255 (8-bit PNG/JPEG, multi-window CT).
    Levels8,
    /// [0, 1], e.g. the `display` stage after a VOI window.
    Unit,
}

/// Choices that a `preprocessor_config.json` does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HfOptions {
    pub input: InputRange,
    /// Resize mode for [`InputRange::Unit`] input ([`InputRange::Levels8`] is always 8-bit).
    pub unit_resize: ResizeMode,
    /// Zero-pad to square before resizing, as MedSigLIP's serving code does (its HF config
    /// has no field for it).
    pub pad_to_square: bool,
}

impl Default for HfOptions {
    fn default() -> Self {
        HfOptions {
            input: InputRange::Unit,
            unit_resize: ResizeMode::Uint8,
            pad_to_square: false,
        }
    }
}

/// A sequence of steps; serialises as `{"steps": [{"step": "resize", "height": ..}, ..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub steps: Vec<Step>,
}

/// The slice indices MedGemma 1.5's CT notebook keeps of `n` slices when asked for `count`:
/// `int(round(i / count * (n - 1)))` for `i = 1..=count` with Python's `round` (ties to even)
/// on `f64`, or every slice when `n <= count`. Index 0 is never chosen when sampling; that is
/// the reference's formula and we keep it.
pub fn sample_slice_indices(n: usize, count: usize) -> Vec<usize> {
    if n <= count || count == 0 {
        return (0..n).collect();
    }
    (1..=count)
        .map(|i| ((i as f64 / count as f64) * (n - 1) as f64).round_ties_even() as usize)
        .collect()
}

/// Largest image a step may produce (H × W): 2^26 samples per channel, far above any encoder
/// input (896² ≈ 2^19.6), so a malformed config cannot make us allocate without bound.
pub const MAX_OUTPUT_PIXELS: usize = 1 << 26;

fn check_output_size(what: &str, h: usize, w: usize) -> Result<()> {
    if h == 0 || w == 0 || h.saturating_mul(w) > MAX_OUTPUT_PIXELS {
        return Err(invalid(
            what,
            format!("output {h}x{w} is empty or exceeds {MAX_OUTPUT_PIXELS} pixels"),
        ));
    }
    Ok(())
}

fn invalid(what: &str, reason: impl Into<String>) -> IngestError {
    IngestError::Invalid {
        what: what.to_string(),
        reason: reason.into(),
    }
}

impl Step {
    /// Checks parameters that do not depend on the image.
    fn validate(&self) -> Result<()> {
        let what = "model-input step";
        match self {
            Step::Resize { height, width, .. } | Step::CenterCrop { height, width } => {
                check_output_size(what, *height, *width)?
            }
            Step::ResizeShortestEdge { size, .. } => check_output_size(what, *size, *size)?,
            Step::SampleSlices { count } => {
                if *count == 0 {
                    return Err(invalid(what, format!("{self:?}: count must be > 0")));
                }
            }
            Step::Normalize { mean, std } => {
                if mean.is_empty()
                    || std.is_empty()
                    || std.iter().any(|&s| s == 0.0 || !s.is_finite())
                {
                    return Err(invalid(
                        what,
                        format!("{self:?}: mean/std empty or std zero"),
                    ));
                }
            }
            Step::MultiWindowRgb { windows } => windows.validate()?,
            Step::Rescale { factor } | Step::ToUint8 { scale: factor, .. } => {
                if !factor.is_finite() {
                    return Err(invalid(what, format!("{self:?}: factor not finite")));
                }
            }
            Step::Clip { min, max } => {
                // NaN bounds fail too: clamp would panic on them.
                if min.is_nan() || max.is_nan() || min > max {
                    return Err(invalid(what, format!("{self:?}: needs min <= max")));
                }
            }
            Step::Window { .. }
            | Step::PadToSquare { .. }
            | Step::GrayToRgb
            | Step::ToChannelsFirst => {}
        }
        Ok(())
    }

    /// Applies an image step to `[H, W, C]`.
    fn apply(&self, img: Array3<f32>) -> Result<Array3<f32>> {
        let (h, w, c) = img.dim();
        Ok(match self {
            Step::Window { .. }
            | Step::ToUint8 { .. }
            | Step::Rescale { .. }
            | Step::Clip { .. } => {
                let op = self
                    .sample_op(0, 1)
                    .expect("value steps are per-sample maps")?;
                let mut img = if img.is_standard_layout() {
                    img
                } else {
                    img.as_standard_layout().into_owned()
                };
                op.map_in_place(img.as_slice_mut().expect("standard layout is contiguous"));
                img
            }
            Step::MultiWindowRgb { windows } => {
                if c != 1 {
                    return Err(invalid(
                        "multi_window_rgb",
                        format!("needs a one-channel (HU) image, got {c} channels"),
                    ));
                }
                let mut out = Array3::zeros((h, w, 3));
                for ((y, x, ch), o) in out.indexed_iter_mut() {
                    *o = windows.apply(ch, img[[y, x, 0]]);
                }
                out
            }
            Step::PadToSquare { fill } => {
                let n = h.max(w);
                check_output_size("pad_to_square", n, n)?;
                let (top, left) = ((n - h) / 2, (n - w) / 2);
                let mut out = Array3::from_elem((n, n, c), *fill);
                out.slice_mut(s![top..top + h, left..left + w, ..])
                    .assign(&img);
                out
            }
            Step::Resize {
                height,
                width,
                filter,
                mode,
            } => resize(img, *height, *width, *filter, *mode)?,
            Step::ResizeShortestEdge { size, filter, mode } => {
                let (oh, ow) = shortest_edge_size(h, w, *size);
                check_output_size("resize_shortest_edge", oh, ow)?;
                resize(img, oh, ow, *filter, *mode)?
            }
            Step::CenterCrop { height, width } => {
                let (ch_, cw) = (*height, *width);
                let top = (h as i64 - ch_ as i64).div_euclid(2);
                let left = (w as i64 - cw as i64).div_euclid(2);
                let mut out = Array3::zeros((ch_, cw, c));
                for y in 0..ch_ {
                    let sy = y as i64 + top;
                    if sy < 0 || sy >= h as i64 {
                        continue;
                    }
                    for x in 0..cw {
                        let sx = x as i64 + left;
                        if sx < 0 || sx >= w as i64 {
                            continue;
                        }
                        for k in 0..c {
                            out[[y, x, k]] = img[[sy as usize, sx as usize, k]];
                        }
                    }
                }
                out
            }
            Step::Normalize { .. } => {
                let ops = (0..c)
                    .map(|k| self.sample_op(k, c).expect("normalize is a per-sample map"))
                    .collect::<Result<Vec<_>>>()?;
                let mut img = img;
                for (op, mut plane) in ops.iter().zip(img.axis_iter_mut(Axis(2))) {
                    plane.mapv_inplace(|v| op.apply(v));
                }
                img
            }
            Step::GrayToRgb => match c {
                1 => {
                    // Straight from the sample slice: element-wise strided assignment was a
                    // measurable share of the benchmark (benches/README.md).
                    let src = img.as_standard_layout();
                    let src = src.as_slice().expect("standard layout is contiguous");
                    let mut rgb = vec![0f32; h * w * 3];
                    for (px, &v) in rgb.chunks_exact_mut(3).zip(src) {
                        px.fill(v);
                    }
                    Array3::from_shape_vec((h, w, 3), rgb).expect("3 samples per pixel")
                }
                3 => img,
                _ => {
                    return Err(invalid(
                        "gray_to_rgb",
                        format!("{c} channels, expected 1 or 3"),
                    ))
                }
            },
            Step::ToChannelsFirst => {
                // One output plane per channel gathered from the interleaved samples; the
                // generic permuted copy was several times slower (benches/README.md).
                let src = img.as_standard_layout();
                let src = src.as_slice().expect("standard layout is contiguous");
                let mut planes = vec![0f32; h * w * c];
                for (k, plane) in planes.chunks_exact_mut(h * w).enumerate() {
                    for (o, px) in plane.iter_mut().zip(src.chunks_exact(c)) {
                        *o = px[k];
                    }
                }
                Array3::from_shape_vec((c, h, w), planes).expect("c planes of h x w")
            }
            Step::SampleSlices { .. } => {
                return Err(invalid(
                    "sample_slices",
                    "applies to volumes, not to a single image",
                ))
            }
        })
    }
}

/// A step that maps every sample on its own (the value steps), with its parameters for one
/// channel. The arithmetic of these steps lives only here, so the step-by-step and the fused
/// execution ([`Pipeline::apply_image`]) compute the same `f32` values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SampleOp {
    Window(Window),
    ToUint8 { scale: f64, rounding: Rounding },
    Rescale(f64),
    Clip(f32, f32),
    Normalize { mean: f32, std: f32 },
}

impl SampleOp {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            SampleOp::Window(w) => w.apply(v as f64) as f32,
            SampleOp::ToUint8 { scale, rounding } => {
                let v = (v as f64 * scale) as f32;
                let v = match rounding {
                    Rounding::Truncate => v.trunc(),
                    Rounding::HalfEven => v.round_ties_even(),
                };
                // NaN compares false everywhere: map it to 0 like the clip of a cast would.
                if v.is_nan() {
                    0.0
                } else {
                    v.clamp(0.0, 255.0)
                }
            }
            SampleOp::Rescale(factor) => (v as f64 * factor) as f32,
            SampleOp::Clip(min, max) => v.clamp(min, max),
            SampleOp::Normalize { mean, std } => (v - mean) / std,
        }
    }

    /// `dst[i] = apply(src[i])`, with the choice of operation made once per slice so each
    /// arm is a loop the compiler can vectorise.
    fn map(self, src: &[f32], dst: &mut [f32]) {
        match self {
            SampleOp::Window(w) => w.apply_slice(src, dst),
            SampleOp::Rescale(f) => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = (v as f64 * f) as f32;
                }
            }
            SampleOp::Clip(lo, hi) => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v.clamp(lo, hi);
                }
            }
            SampleOp::Normalize { mean, std } => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = (v - mean) / std;
                }
            }
            SampleOp::ToUint8 { .. } => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = self.apply(v);
                }
            }
        }
    }

    /// Appends `apply(v)` for every `v` of `src` to `out`, without zero-filling first.
    fn extend_mapped(self, src: &[f32], out: &mut Vec<f32>) {
        match self {
            SampleOp::Window(w) => out.extend(src.iter().map(|&v| w.apply(v as f64) as f32)),
            SampleOp::Rescale(f) => out.extend(src.iter().map(|&v| (v as f64 * f) as f32)),
            SampleOp::Clip(lo, hi) => out.extend(src.iter().map(|&v| v.clamp(lo, hi))),
            SampleOp::Normalize { mean, std } => out.extend(src.iter().map(|&v| (v - mean) / std)),
            SampleOp::ToUint8 { .. } => out.extend(src.iter().map(|&v| self.apply(v))),
        }
    }

    fn map_in_place(self, buf: &mut [f32]) {
        match self {
            // Window::apply_slice reads and writes different slices.
            SampleOp::Window(w) => buf.iter_mut().for_each(|v| *v = w.apply(*v as f64) as f32),
            SampleOp::Rescale(f) => buf.iter_mut().for_each(|v| *v = (*v as f64 * f) as f32),
            SampleOp::Clip(lo, hi) => buf.iter_mut().for_each(|v| *v = v.clamp(lo, hi)),
            SampleOp::Normalize { mean, std } => {
                buf.iter_mut().for_each(|v| *v = (*v - mean) / std)
            }
            SampleOp::ToUint8 { .. } => buf.iter_mut().for_each(|v| *v = self.apply(*v)),
        }
    }
}

impl Step {
    /// This step as a per-sample map of channel `k` of an image with `c` channels; `None`
    /// for steps that are not one (resize, layout, padding, multi-window). Normalize with a
    /// mean/std count that is neither 1 nor `c` is an error.
    fn sample_op(&self, k: usize, c: usize) -> Option<Result<SampleOp>> {
        Some(Ok(match self {
            Step::Window { window } => SampleOp::Window(*window),
            Step::ToUint8 { scale, rounding } => SampleOp::ToUint8 {
                scale: *scale,
                rounding: *rounding,
            },
            Step::Rescale { factor } => SampleOp::Rescale(*factor),
            Step::Clip { min, max } => SampleOp::Clip(*min, *max),
            Step::Normalize { mean, std } => {
                let pick = |v: &Vec<f64>, name: &str| -> Result<f32> {
                    match v.len() {
                        1 => Ok(v[0] as f32),
                        n if n == c => Ok(v[k] as f32),
                        n => Err(invalid(
                            "normalize",
                            format!("{name} has {n} values, the image has {c} channels"),
                        )),
                    }
                };
                match (pick(mean, "mean"), pick(std, "std")) {
                    (Ok(mean), Ok(std)) => SampleOp::Normalize { mean, std },
                    (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
                }
            }
            _ => return None,
        }))
    }
}

/// `get_resize_output_image_size(default_to_square=False)` of transformers: `(height, width)`.
fn shortest_edge_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // Python `int(size * long / short)`: true division in f64, truncated.
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    if w <= h {
        (new_long, size)
    } else {
        (size, new_long)
    }
}

fn resize(
    img: Array3<f32>,
    oh: usize,
    ow: usize,
    filter: Filter,
    mode: ResizeMode,
) -> Result<Array3<f32>> {
    match mode {
        ResizeMode::Float => resize_f32(img.view(), oh, ow, filter),
        ResizeMode::Uint8 => {
            if let Some(v) = img
                .iter()
                .find(|v| !(**v >= 0.0 && **v <= 255.0 && v.fract() == 0.0))
            {
                return Err(invalid(
                    "resize",
                    format!(
                        "8-bit mode needs levels 0..=255, found {v}; quantise first (to_uint8)"
                    ),
                ));
            }
            let levels = img.mapv(|v| v as u8);
            Ok(resize_u8(levels.view(), oh, ow, filter)?.mapv(f32::from))
        }
    }
}

impl Pipeline {
    /// A pipeline of `steps`, checked: parameters valid, [`Step::SampleSlices`] only first,
    /// [`Step::ToChannelsFirst`] exactly once and last.
    pub fn new(steps: Vec<Step>) -> Result<Pipeline> {
        let p = Pipeline { steps };
        p.validate()?;
        Ok(p)
    }

    /// See [`Pipeline::new`]; deserialised pipelines are checked again before running.
    pub fn validate(&self) -> Result<()> {
        let what = "model-input pipeline";
        for (i, step) in self.steps.iter().enumerate() {
            step.validate()?;
            if matches!(step, Step::SampleSlices { .. }) && i != 0 {
                return Err(invalid(what, "sample_slices must be the first step"));
            }
            if matches!(step, Step::ToChannelsFirst) && i + 1 != self.steps.len() {
                return Err(invalid(what, "to_channels_first must be the last step"));
            }
        }
        if !matches!(self.steps.last(), Some(Step::ToChannelsFirst)) {
            return Err(invalid(what, "must end with to_channels_first"));
        }
        Ok(())
    }

    /// The steps as JSON, for the sidecar (`{"steps": [...]}`).
    pub fn provenance(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Runs the pipeline on one image.
    ///
    /// # Shapes
    /// `img`: `[H, W]` or `[H, W, C]` (C = 1 or 3) → `[3, H', W']`.
    pub fn apply_image(&self, img: ArrayViewD<f32>) -> Result<Array3<f32>> {
        self.validate()?;
        if matches!(self.steps.first(), Some(Step::SampleSlices { .. })) {
            return Err(invalid(
                "model-input pipeline",
                "sample_slices needs a volume, got one image",
            ));
        }
        self.run_view(img)
    }

    /// One image (`[H, W]` or `[H, W, C]`) through the pipeline: fused when it is a gray
    /// image and the steps allow it ([`GrayPlan`]), else step by step.
    fn run_view(&self, img: ArrayViewD<f32>) -> Result<Array3<f32>> {
        let gray = match img.shape() {
            [h, w] | [h, w, 1] => Some((*h, *w)),
            _ => None,
        };
        if let (Some((h, w)), Some(src)) = (gray, img.as_slice()) {
            if h > 0 && w > 0 {
                if let Some(plan) = GrayPlan::new(&self.steps, h, w) {
                    if let Some(out) = plan.run(src, h, w) {
                        return Ok(out);
                    }
                }
            }
        }
        self.run(as_hwc(img)?)
    }

    fn run(&self, img: Array3<f32>) -> Result<Array3<f32>> {
        let mut img = img;
        for step in &self.steps {
            if matches!(step, Step::SampleSlices { .. }) {
                continue;
            }
            img = step.apply(img)?;
        }
        if img.dim().0 != 3 {
            return Err(invalid(
                "model-input pipeline",
                format!(
                    "result has {} channels, the encoder needs 3 (add gray_to_rgb)",
                    img.dim().0
                ),
            ));
        }
        Ok(img)
    }

    /// Runs the pipeline on every kept slice of a stack, slices in parallel.
    ///
    /// # Shapes
    /// `stack`: `[S, H, W]` or `[S, H, W, C]` → `[S', 3, H', W']`.
    pub fn apply_stack(&self, stack: ArrayViewD<f32>) -> Result<Array4<f32>> {
        self.validate()?;
        if !(stack.ndim() == 3 || stack.ndim() == 4) || stack.shape()[0] == 0 {
            return Err(invalid(
                "model-input pipeline",
                format!(
                    "a stack is [S, H, W] or [S, H, W, C] with S > 0, got {:?}",
                    stack.shape()
                ),
            ));
        }
        let n = stack.shape()[0];
        let keep = match self.steps.first() {
            Some(Step::SampleSlices { count }) => sample_slice_indices(n, *count),
            _ => (0..n).collect(),
        };
        let slices: Vec<Array3<f32>> = keep
            .par_iter()
            .map(|&k| self.run_view(stack.index_axis(Axis(0), k)))
            .collect::<Result<_>>()?;
        let views: Vec<ArrayView3<f32>> = slices.iter().map(|a| a.view()).collect();
        ndarray::stack(Axis(0), &views).map_err(|e| invalid("model-input pipeline", e.to_string()))
    }

    /// The documented `--size N` default: resize to `N × N` with bicubic (clipped to [0, 1]
    /// for [0, 1] input), gray → RGB,
    /// rescale to [0, 1] and normalise with mean = std = 0.5 (SigLIP's values,
    /// transformers `IMAGENET_STANDARD_MEAN/STD`). 8-bit input resizes in 8-bit and is
    /// divided by 255; [0, 1] input resizes in Pillow's float mode.
    pub fn for_size(n: usize, input: InputRange) -> Result<Pipeline> {
        let mut steps = vec![Step::Resize {
            height: n,
            width: n,
            filter: Filter::Bicubic,
            mode: match input {
                InputRange::Levels8 => ResizeMode::Uint8,
                InputRange::Unit => ResizeMode::Float,
            },
        }];
        if input == InputRange::Unit {
            steps.push(Step::Clip { min: 0.0, max: 1.0 });
        }
        steps.push(Step::GrayToRgb);
        if input == InputRange::Levels8 {
            steps.push(Step::Rescale {
                factor: 1.0 / 255.0,
            });
        }
        steps.push(Step::Normalize {
            mean: vec![0.5],
            std: vec![0.5],
        });
        steps.push(Step::ToChannelsFirst);
        Pipeline::new(steps)
    }

    /// Reads `preprocessor_config.json` (or the directory holding it) and builds the
    /// pipeline with [`Pipeline::from_hf_config`].
    pub fn from_hf_config_file(path: &Path, opts: HfOptions) -> Result<Pipeline> {
        let file = if path.is_dir() {
            path.join("preprocessor_config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| IngestError::io(&file, e))?;
        Pipeline::from_hf_config(&text, opts).map_err(|e| match e {
            IngestError::Invalid { reason, .. } => invalid(&file.display().to_string(), reason),
            other => other,
        })
    }

    /// Builds the pipeline a HuggingFace image processor applies, from the text of its
    /// `preprocessor_config.json`. Understood: `SiglipImageProcessor`,
    /// `Gemma3ImageProcessor` (without pan-and-scan) and `CLIPImageProcessor`, with the
    /// defaults of their constructors (transformers 4.56) for absent keys.
    pub fn from_hf_config(json: &str, opts: HfOptions) -> Result<Pipeline> {
        let cfg: HfConfig = serde_json::from_str(json).map_err(|e| {
            invalid(
                "preprocessor_config.json",
                format!("not a valid config: {e}"),
            )
        })?;
        let bad = |r: String| invalid("preprocessor_config.json", r);
        let kind = cfg
            .image_processor_type
            .clone()
            .unwrap_or_else(|| "SiglipImageProcessor".into());
        let clip = match kind.trim_end_matches("Fast") {
            "SiglipImageProcessor" | "Gemma3ImageProcessor" => false,
            "CLIPImageProcessor" => true,
            other => return Err(bad(format!("image_processor_type {other:?} is not supported (SiglipImageProcessor, Gemma3ImageProcessor, CLIPImageProcessor)"))),
        };
        if cfg.do_pan_and_scan == Some(true) {
            return Err(bad("do_pan_and_scan = true is not supported".into()));
        }
        let gemma = kind.starts_with("Gemma3");
        // Constructor defaults: SigLIP/CLIP bicubic, Gemma 3 bilinear; SigLIP/Gemma 3 224×224
        // with mean/std 0.5; CLIP shortest edge 224, crop 224, OpenAI CLIP mean/std.
        let resample = cfg.resample.unwrap_or(if gemma { 2 } else { 3 });
        let filter = Filter::from_pil_code(resample).ok_or_else(|| {
            bad(format!(
                "resample {resample} is not a Pillow filter code (0..=5)"
            ))
        })?;
        let (def_mean, def_std) = if clip {
            (
                vec![0.48145466, 0.4578275, 0.40821073],
                vec![0.26862954, 0.26130258, 0.27577711],
            )
        } else {
            (vec![0.5], vec![0.5])
        };
        let unit = opts.input == InputRange::Unit;
        let mode = if unit {
            opts.unit_resize
        } else {
            ResizeMode::Uint8
        };
        let mut steps = Vec::new();
        if unit && mode == ResizeMode::Uint8 {
            // transformers `to_pil_image` on a float image in [0, 1]: rescale(x, 255) then
            // astype(uint8).
            steps.push(Step::ToUint8 {
                scale: 255.0,
                rounding: Rounding::Truncate,
            });
        }
        if opts.pad_to_square {
            steps.push(Step::PadToSquare { fill: 0.0 });
        }
        if cfg.do_resize.unwrap_or(true) {
            let size = cfg.size.clone().unwrap_or(if clip {
                HfSize::Dict(HfSizeDict {
                    shortest_edge: Some(224),
                    height: None,
                    width: None,
                })
            } else {
                HfSize::Int(224)
            });
            steps.push(match size.resolve(!clip).map_err(&bad)? {
                Resolved::Exact(height, width) => Step::Resize {
                    height,
                    width,
                    filter,
                    mode,
                },
                Resolved::Shortest(size) => Step::ResizeShortestEdge { size, filter, mode },
            });
            if unit && mode == ResizeMode::Float {
                steps.push(Step::Clip { min: 0.0, max: 1.0 });
            }
        }
        if clip && cfg.do_center_crop.unwrap_or(true) {
            let crop = cfg.crop_size.clone().unwrap_or(HfSize::Int(224));
            match crop.resolve(true).map_err(&bad)? {
                Resolved::Exact(height, width) => steps.push(Step::CenterCrop { height, width }),
                Resolved::Shortest(_) => {
                    return Err(bad("crop_size needs height and width".into()))
                }
            }
        }
        steps.push(Step::GrayToRgb);
        if unit && mode == ResizeMode::Uint8 {
            // transformers `resize` divides by 255 again after a rescaled PIL conversion; the
            // caller of the processor passes do_rescale=False for [0, 1] input.
            steps.push(Step::Rescale {
                factor: 1.0 / 255.0,
            });
        } else if !unit && cfg.do_rescale.unwrap_or(true) {
            steps.push(Step::Rescale {
                factor: cfg.rescale_factor.unwrap_or(1.0 / 255.0),
            });
        }
        if cfg.do_normalize.unwrap_or(true) {
            steps.push(Step::Normalize {
                mean: cfg.image_mean.map(|m| m.0).unwrap_or(def_mean),
                std: cfg.image_std.map(|m| m.0).unwrap_or(def_std),
            });
        }
        steps.push(Step::ToChannelsFirst);
        Pipeline::new(steps)
    }
}

/// Where the `model` stage takes its parameters from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelTarget {
    /// `--model DIR`: the model's `preprocessor_config.json` (the directory or the file).
    HfConfig(std::path::PathBuf),
    /// `--size N`: [`Pipeline::for_size`].
    Size(usize),
}

/// What an item's values are when they reach the `model` stage, which decides the first steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ItemValues {
    /// CT modality values in HU with no `--window`: MedGemma 1.5's multi-window RGB
    /// ([`MultiWindow::MEDGEMMA_CT`]), then the 8-bit processor path.
    Hounsfield,
    /// Modality values with a window chosen by the user (`--window`) or the file: the window
    /// maps them to [0, 1], then the [0, 1] path.
    Windowed(Window),
    /// Already in [0, 1] (the `display` stage's output).
    Unit,
    /// 8-bit levels 0..=255 (8-bit PNG/JPEG, grayscale or RGB).
    Levels8,
}

/// The choices of [`HfOptions`] that do not depend on the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    /// Resize mode for [0, 1] data; see the module documentation.
    pub unit_resize: ResizeMode,
    /// Zero-pad to square first (MedSigLIP).
    pub pad_to_square: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            unit_resize: ResizeMode::Uint8,
            pad_to_square: false,
        }
    }
}

/// The `model` stage's pipeline for one item: the value steps that [`ItemValues`] needs,
/// followed by the processor of `target`. Volumes get `sample_slices` prepended by the caller
/// when it wants MedGemma's slice sampling ([`Pipeline::with_slice_sampling`]).
pub fn model_pipeline(
    target: &ModelTarget,
    values: ItemValues,
    opts: ModelOptions,
) -> Result<Pipeline> {
    let (prefix, input) = match values {
        ItemValues::Hounsfield => (
            vec![Step::MultiWindowRgb {
                windows: MultiWindow::MEDGEMMA_CT,
            }],
            InputRange::Levels8,
        ),
        ItemValues::Windowed(window) => (vec![Step::Window { window }], InputRange::Unit),
        ItemValues::Unit => (vec![], InputRange::Unit),
        ItemValues::Levels8 => (vec![], InputRange::Levels8),
    };
    let tail = match target {
        ModelTarget::HfConfig(path) => Pipeline::from_hf_config_file(
            path,
            HfOptions {
                input,
                unit_resize: opts.unit_resize,
                pad_to_square: opts.pad_to_square,
            },
        )?,
        ModelTarget::Size(n) => {
            let mut p = Pipeline::for_size(*n, input)?;
            if opts.pad_to_square {
                p.steps.insert(0, Step::PadToSquare { fill: 0.0 });
            }
            p
        }
    };
    let mut steps = prefix;
    steps.extend(tail.steps);
    Pipeline::new(steps)
}

impl Pipeline {
    /// This pipeline with [`Step::SampleSlices`] first (replacing one already there).
    pub fn with_slice_sampling(mut self, count: usize) -> Result<Pipeline> {
        if matches!(self.steps.first(), Some(Step::SampleSlices { .. })) {
            self.steps.remove(0);
        }
        self.steps.insert(0, Step::SampleSlices { count });
        Pipeline::new(self.steps)
    }
}

/// A pipeline run on a one-channel image without its intermediate `[H, W, C]` arrays.
///
/// Every step but resize is a per-sample map until `gray_to_rgb`, and after it each channel
/// is the same gray sample mapped by that channel's steps. So the image is resized once, as
/// one channel, and each output plane `[c, :, :]` is written straight from the resized
/// samples through the steps that follow; planes whose steps are equal are copied. The
/// values are those of the step-by-step run (`Pipeline::run`): the same functions in the
/// same order on the same `f32` samples. Pipelines with other steps (padding, crop,
/// multi-window, a second resize) run step by step.
#[derive(Debug)]
struct GrayPlan {
    /// Value steps before the resize.
    pre: Vec<SampleOp>,
    /// Output size, filter and mode of the resize, if any.
    resize: Option<(usize, usize, Filter, ResizeMode)>,
    /// Value steps from the resize to the end, per output channel.
    post: [Vec<SampleOp>; 3],
}

/// Buffers a rayon worker reuses from image to image, so that a run over many files does not
/// ask the allocator (and the kernel) for fresh pages of the same sizes each time.
#[derive(Default)]
struct Scratch {
    values: Vec<f32>,
    resized: Vec<f32>,
    tmp: Vec<f32>,
    levels: Vec<u8>,
    levels_out: Vec<u8>,
    levels_tmp: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

impl GrayPlan {
    /// The plan for `steps` on an `h × w` gray image, or `None` when the steps need the
    /// step-by-step run (including every case where that run reports an error).
    fn new(steps: &[Step], h: usize, w: usize) -> Option<GrayPlan> {
        let mut plan = GrayPlan {
            pre: Vec::new(),
            resize: None,
            post: Default::default(),
        };
        let mut rgb = false;
        let mut done = false;
        for (i, step) in steps.iter().enumerate() {
            if done {
                return None;
            }
            match step {
                Step::SampleSlices { .. } if i == 0 => {}
                Step::Resize {
                    height,
                    width,
                    filter,
                    mode,
                } if plan.resize.is_none() && !rgb && plan.post[0].is_empty() => {
                    plan.resize = Some((*height, *width, *filter, *mode));
                }
                Step::ResizeShortestEdge { size, filter, mode }
                    if plan.resize.is_none() && !rgb && plan.post[0].is_empty() =>
                {
                    let (oh, ow) = shortest_edge_size(h, w, *size);
                    check_output_size("resize_shortest_edge", oh, ow).ok()?;
                    plan.resize = Some((oh, ow, *filter, *mode));
                }
                Step::GrayToRgb if !rgb => rgb = true,
                Step::ToChannelsFirst if rgb => done = true,
                _ => {
                    let c = if rgb { 3 } else { 1 };
                    for k in 0..3 {
                        let op = step.sample_op(if rgb { k } else { 0 }, c)?.ok()?;
                        if plan.resize.is_none() && !rgb {
                            if k == 0 {
                                plan.pre.push(op);
                            }
                        } else {
                            plan.post[k].push(op);
                        }
                    }
                }
            }
        }
        done.then_some(plan)
    }

    /// Runs the plan on `src` (`h × w` samples, row-major): `[3, H', W']`, or `None` when an
    /// 8-bit resize meets values that are not levels (the step-by-step run reports that).
    fn run(&self, src: &[f32], h: usize, w: usize) -> Option<Array3<f32>> {
        // Taken out of the thread-local rather than borrowed: a rayon worker waiting inside
        // the resize may start another image on this thread, which then finds the cell
        // empty and allocates its own.
        let mut scratch = SCRATCH.with(|s| s.take());
        let out = self.run_with(src, h, w, &mut scratch);
        SCRATCH.with(|s| s.set(scratch));
        out
    }

    fn run_with(&self, src: &[f32], h: usize, w: usize, sc: &mut Scratch) -> Option<Array3<f32>> {
        let n = h * w;
        let mut cur: &[f32] = src;
        if let Some((first, rest)) = self.pre.split_first() {
            let buf = sized(&mut sc.values, n);
            first.map(src, buf);
            for op in rest {
                op.map_in_place(buf);
            }
            cur = &sc.values;
        }
        let (oh, ow) = match self.resize {
            None => (h, w),
            Some((oh, ow, filter, ResizeMode::Float)) => {
                let out = sized(&mut sc.resized, oh * ow);
                resample_into(cur, (h, w, 1), (oh, ow), filter, &mut sc.tmp, out);
                cur = &sc.resized;
                (oh, ow)
            }
            Some((oh, ow, filter, ResizeMode::Uint8)) => {
                if !cur
                    .iter()
                    .all(|v| *v >= 0.0 && *v <= 255.0 && v.fract() == 0.0)
                {
                    return None;
                }
                sc.levels.clear();
                sc.levels.extend(cur.iter().map(|&v| v as u8));
                let out = sized(&mut sc.levels_out, oh * ow);
                resample_into(
                    &sc.levels,
                    (h, w, 1),
                    (oh, ow),
                    filter,
                    &mut sc.levels_tmp,
                    out,
                );
                let resized = sized(&mut sc.resized, oh * ow);
                for (r, &l) in resized.iter_mut().zip(sc.levels_out.iter()) {
                    *r = f32::from(l);
                }
                cur = &sc.resized;
                (oh, ow)
            }
        };
        let m = oh * ow;
        // Filled plane by plane without zeroing first: every sample is written once.
        let mut out: Vec<f32> = Vec::with_capacity(3 * m);
        for k in 0..3 {
            if let Some(j) = (0..k).find(|&j| self.post[j] == self.post[k]) {
                out.extend_from_within(j * m..(j + 1) * m);
                continue;
            }
            match self.post[k].split_first() {
                None => out.extend_from_slice(cur),
                Some((first, rest)) => {
                    first.extend_mapped(cur, &mut out);
                    for op in rest {
                        op.map_in_place(&mut out[k * m..]);
                    }
                }
            }
        }
        Some(Array3::from_shape_vec((3, oh, ow), out).expect("3 planes of oh x ow"))
    }
}

/// `[H, W]` → `[H, W, 1]`; `[H, W, C]` kept.
fn as_hwc(img: ArrayViewD<f32>) -> Result<Array3<f32>> {
    let shape = img.shape().to_vec();
    let img3 = match shape.len() {
        2 => img.insert_axis(Axis(2)),
        3 => img,
        _ => {
            return Err(invalid(
                "model-input image",
                format!("expected [H, W] or [H, W, C], got {shape:?}"),
            ))
        }
    };
    let img3 = img3
        .into_dimensionality::<Ix3>()
        .map_err(|e| invalid("model-input image", e.to_string()))?;
    if img3.is_empty() {
        return Err(invalid(
            "model-input image",
            format!("empty image {shape:?}"),
        ));
    }
    Ok(img3.as_standard_layout().into_owned())
}

/// The keys of a `preprocessor_config.json` that the pipeline uses.
#[derive(Debug, Deserialize)]
struct HfConfig {
    image_processor_type: Option<String>,
    do_resize: Option<bool>,
    size: Option<HfSize>,
    resample: Option<i64>,
    do_center_crop: Option<bool>,
    crop_size: Option<HfSize>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<PerChannel>,
    image_std: Option<PerChannel>,
    do_pan_and_scan: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum HfSize {
    Int(usize),
    Dict(HfSizeDict),
}

#[derive(Debug, Clone, Deserialize)]
struct HfSizeDict {
    shortest_edge: Option<usize>,
    height: Option<usize>,
    width: Option<usize>,
}

enum Resolved {
    Exact(usize, usize),
    Shortest(usize),
}

impl HfSize {
    /// transformers `get_size_dict`: an int is a square when `default_to_square`, else the
    /// shortest edge.
    fn resolve(&self, default_to_square: bool) -> std::result::Result<Resolved, String> {
        match self {
            HfSize::Int(n) if default_to_square => Ok(Resolved::Exact(*n, *n)),
            HfSize::Int(n) => Ok(Resolved::Shortest(*n)),
            HfSize::Dict(HfSizeDict {
                height: Some(h),
                width: Some(w),
                ..
            }) => Ok(Resolved::Exact(*h, *w)),
            HfSize::Dict(HfSizeDict {
                shortest_edge: Some(n),
                ..
            }) => Ok(Resolved::Shortest(*n)),
            HfSize::Dict(_) => Err("size needs height and width, or shortest_edge".into()),
        }
    }
}

/// `image_mean` / `image_std`: one number or one per channel.
#[derive(Debug, Clone)]
struct PerChannel(Vec<f64>);

impl<'de> Deserialize<'de> for PerChannel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(f64),
            Many(Vec<f64>),
        }
        Ok(PerChannel(match Raw::deserialize(d)? {
            Raw::One(v) => vec![v],
            Raw::Many(v) => v,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, Array2, IxDyn};

    fn img(h: usize, w: usize, c: usize, f: impl Fn(usize, usize, usize) -> f32) -> Array3<f32> {
        Array3::from_shape_fn((h, w, c), |(y, x, k)| f(y, x, k))
    }

    #[test]
    fn slice_sampling_follows_the_notebook_formula() {
        // n = 10, N = 4: i/N·9 = 2.25, 4.5, 6.75, 9 -> 2, 4 (tie to even), 7, 9.
        assert_eq!(sample_slice_indices(10, 4), vec![2, 4, 7, 9]);
        // n = 6, N = 4: 1.25, 2.5, 3.75, 5 -> 1, 2 (tie to even), 4, 5.
        assert_eq!(sample_slice_indices(6, 4), vec![1, 2, 4, 5]);
        // Fewer slices than asked: all of them.
        assert_eq!(sample_slice_indices(3, 85), vec![0, 1, 2]);
        assert_eq!(sample_slice_indices(85, 85).len(), 85);
        let idx = sample_slice_indices(300, 85);
        assert_eq!(idx.len(), 85);
        assert_eq!(*idx.last().unwrap(), 299);
        assert!(idx.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn window_step_uses_the_voi_function() {
        let s = Step::Window {
            window: Window::linear(40.0, 400.0),
        };
        let out = s
            .apply(img(1, 3, 1, |_, x, _| [-500.0, 39.5, 500.0][x]))
            .unwrap();
        assert_eq!(out.as_slice().unwrap(), &[0.0, 0.5, 1.0]);
    }

    #[test]
    fn multi_window_gives_three_level_channels() {
        let s = Step::MultiWindowRgb {
            windows: MultiWindow::MEDGEMMA_CT,
        };
        let out = s.apply(img(1, 1, 1, |_, _, _| 40.0)).unwrap();
        // R: 1064/2048·255 = 132.47 -> 132; G: 175/350·255 = 127.5 -> 128; B: 127.5 -> 128.
        assert_eq!(out.as_slice().unwrap(), &[132.0, 128.0, 128.0]);
        assert!(s.apply(img(1, 1, 3, |_, _, _| 0.0)).is_err());
    }

    #[test]
    fn to_uint8_truncates_or_rounds() {
        let t = Step::ToUint8 {
            scale: 255.0,
            rounding: Rounding::Truncate,
        };
        let r = Step::ToUint8 {
            scale: 255.0,
            rounding: Rounding::HalfEven,
        };
        let x = img(1, 4, 1, |_, i, _| [0.999, 0.5, -0.2, 1.5][i]);
        assert_eq!(
            t.apply(x.clone()).unwrap().as_slice().unwrap(),
            &[254.0, 127.0, 0.0, 255.0]
        );
        assert_eq!(
            r.apply(x).unwrap().as_slice().unwrap(),
            &[255.0, 128.0, 0.0, 255.0]
        );
    }

    #[test]
    fn pad_to_square_centres_with_floor_before() {
        let s = Step::PadToSquare { fill: 0.0 };
        let out = s.apply(img(1, 4, 1, |_, _, _| 1.0)).unwrap();
        assert_eq!(out.dim(), (4, 4, 1));
        // d = 3: 1 row before, 2 after.
        let rows: Vec<f32> = (0..4).map(|y| out[[y, 0, 0]]).collect();
        assert_eq!(rows, vec![0.0, 1.0, 0.0, 0.0]);
        let out = s.apply(img(3, 1, 2, |_, _, _| 7.0)).unwrap();
        assert_eq!(out.dim(), (3, 3, 2));
        assert_eq!(out[[0, 1, 1]], 7.0);
        assert_eq!(out[[0, 0, 0]], 0.0);
        assert_eq!(out[[0, 2, 0]], 0.0);
    }

    #[test]
    fn shortest_edge_and_center_crop_follow_transformers() {
        assert_eq!(shortest_edge_size(50, 70, 40), (40, 56));
        assert_eq!(shortest_edge_size(70, 50, 40), (56, 40));
        assert_eq!(shortest_edge_size(3, 10, 2), (2, 6)); // int(6.67) = 6
        let x = img(4, 5, 1, |y, x, _| (y * 10 + x) as f32);
        let c = Step::CenterCrop {
            height: 2,
            width: 2,
        }
        .apply(x.clone())
        .unwrap();
        // top = (4-2)//2 = 1, left = (5-2)//2 = 1.
        assert_eq!(c.as_slice().unwrap(), &[11.0, 12.0, 21.0, 22.0]);
        // Larger than the image: zero border, top = floor((4-6)/2) = -1.
        let c = Step::CenterCrop {
            height: 6,
            width: 5,
        }
        .apply(x)
        .unwrap();
        assert_eq!(c[[0, 0, 0]], 0.0);
        assert_eq!(c[[1, 0, 0]], 0.0);
        assert_eq!(c[[1, 1, 0]], 1.0);
        assert_eq!(c[[5, 4, 0]], 0.0);
    }

    #[test]
    fn rescale_normalize_gray_and_layout() {
        let x = img(1, 2, 1, |_, i, _| [0.0, 255.0][i]);
        let x = Step::Rescale {
            factor: 1.0 / 255.0,
        }
        .apply(x)
        .unwrap();
        assert_eq!(x.as_slice().unwrap(), &[0.0, 1.0]);
        let x = Step::GrayToRgb.apply(x).unwrap();
        assert_eq!(x.dim(), (1, 2, 3));
        let n = Step::Normalize {
            mean: vec![0.5, 0.0, 1.0],
            std: vec![0.5, 1.0, 2.0],
        };
        let x = n.apply(x).unwrap();
        assert_eq!(x.as_slice().unwrap(), &[-1.0, 0.0, -0.5, 1.0, 1.0, 0.0]);
        let x = Step::ToChannelsFirst.apply(x).unwrap();
        assert_eq!(x.dim(), (3, 1, 2));
        assert_eq!(x.as_slice().unwrap(), &[-1.0, 1.0, 0.0, 1.0, -0.5, 0.0]);
        let bad = Step::Normalize {
            mean: vec![0.5, 0.5],
            std: vec![0.5],
        };
        assert!(bad.apply(img(1, 1, 3, |_, _, _| 0.0)).is_err());
        assert!(Step::GrayToRgb.apply(img(1, 1, 2, |_, _, _| 0.0)).is_err());
    }

    #[test]
    fn eight_bit_resize_refuses_unquantised_values() {
        let s = Step::Resize {
            height: 2,
            width: 2,
            filter: Filter::Bilinear,
            mode: ResizeMode::Uint8,
        };
        assert!(s.apply(img(3, 3, 1, |_, _, _| 0.5)).is_err());
        assert!(s.apply(img(3, 3, 1, |_, _, _| 300.0)).is_err());
        assert_eq!(
            s.apply(img(3, 3, 1, |_, _, _| 9.0)).unwrap().dim(),
            (2, 2, 1)
        );
    }

    #[test]
    fn pipeline_validation_and_provenance() {
        assert!(Pipeline::new(vec![Step::GrayToRgb]).is_err());
        assert!(Pipeline::new(vec![Step::ToChannelsFirst, Step::GrayToRgb]).is_err());
        assert!(Pipeline::new(vec![
            Step::GrayToRgb,
            Step::SampleSlices { count: 3 },
            Step::ToChannelsFirst
        ])
        .is_err());
        assert!(Pipeline::new(vec![
            Step::Resize {
                height: 0,
                width: 2,
                filter: Filter::Box,
                mode: ResizeMode::Float
            },
            Step::ToChannelsFirst
        ])
        .is_err());
        let p = Pipeline::for_size(8, InputRange::Levels8).unwrap();
        let json = p.provenance();
        assert_eq!(json["steps"][0]["step"], "resize");
        assert_eq!(json["steps"][0]["filter"], "bicubic");
        assert_eq!(json["steps"][0]["mode"], "uint8");
        assert_eq!(json["steps"][2]["step"], "rescale");
        let back: Pipeline = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn images_and_stacks_come_out_channels_first() {
        let p = Pipeline::for_size(4, InputRange::Unit).unwrap();
        let gray = Array2::from_elem((6, 9), 0.25f32);
        let out = p.apply_image(gray.view().into_dyn()).unwrap();
        assert_eq!(out.dim(), (3, 4, 4));
        // (0.25 - 0.5) / 0.5
        assert!(out.iter().all(|&v| (v + 0.5).abs() < 1e-6));
        // A volume of 10 slices whose value is the slice index, sampled to 4.
        let vol = Array3::from_shape_fn((10, 5, 5), |(k, _, _)| k as f32 / 10.0);
        let mut steps = vec![Step::SampleSlices { count: 4 }];
        steps.extend(p.steps.clone());
        let pv = Pipeline::new(steps).unwrap();
        let out = pv.apply_stack(vol.view().into_dyn()).unwrap();
        assert_eq!(out.dim(), (4, 3, 4, 4));
        let firsts: Vec<f32> = (0..4).map(|k| out[[k, 0, 0, 0]] * 0.5 + 0.5).collect();
        for (got, want) in firsts.iter().zip([0.2, 0.4, 0.7, 0.9]) {
            assert!((got - want).abs() < 1e-6, "{firsts:?}");
        }
        assert!(pv.apply_image(arr2(&[[0.0f32]]).into_dyn().view()).is_err());
        assert!(p
            .apply_stack(ndarray::ArrayD::<f32>::zeros(IxDyn(&[0, 2, 2])).view())
            .is_err());
        assert!(p
            .apply_image(ndarray::ArrayD::<f32>::zeros(IxDyn(&[2])).view())
            .is_err());
    }

    #[test]
    fn fused_gray_run_equals_step_by_step() {
        // HU-like values with hard edges and a few exact 8-bit levels.
        let hu = Array2::from_shape_fn((37, 53), |(y, x)| {
            ((y * 131 + x * 71) % 97) as f32 * 13.0 - 400.0 + if x > 20 { 300.0 } else { 0.0 }
        });
        let levels = hu.mapv(|v| (v.rem_euclid(256.0)).floor());
        let win = Window::linear(40.0, 400.0);
        let resize = |height, width, filter, mode| Step::Resize {
            height,
            width,
            filter,
            mode,
        };
        let siglip = r#"{"image_processor_type": "SiglipImageProcessor", "size": {"height": 24, "width": 24}}"#;
        let mut hf_u8 = Pipeline::from_hf_config(siglip, HfOptions::default()).unwrap();
        hf_u8.steps.insert(0, Step::Window { window: win });
        let cases: Vec<(Pipeline, &Array2<f32>, bool)> = vec![
            (
                model_pipeline(
                    &ModelTarget::Size(16),
                    ItemValues::Windowed(win),
                    ModelOptions::default(),
                )
                .unwrap(),
                &hu,
                true,
            ),
            (hf_u8, &hu, true),
            (
                Pipeline::new(vec![
                    Step::Window { window: win },
                    resize(60, 70, Filter::Bilinear, ResizeMode::Float),
                    Step::GrayToRgb,
                    Step::Normalize {
                        mean: vec![0.48, 0.45, 0.4],
                        std: vec![0.26, 0.26, 0.27],
                    },
                    Step::ToChannelsFirst,
                ])
                .unwrap(),
                &hu,
                true,
            ),
            (
                // Height shrinks most: Pillow's vertical pass runs first.
                Pipeline::new(vec![
                    resize(5, 50, Filter::Lanczos, ResizeMode::Float),
                    Step::Clip {
                        min: -100.0,
                        max: 100.0,
                    },
                    Step::GrayToRgb,
                    Step::Rescale { factor: 0.01 },
                    Step::ToChannelsFirst,
                ])
                .unwrap(),
                &hu,
                true,
            ),
            (
                Pipeline::new(vec![
                    resize(11, 90, Filter::Nearest, ResizeMode::Uint8),
                    Step::GrayToRgb,
                    Step::ToChannelsFirst,
                ])
                .unwrap(),
                &levels,
                true,
            ),
            (
                Pipeline::new(vec![
                    Step::Window { window: win },
                    Step::GrayToRgb,
                    Step::Normalize {
                        mean: vec![0.5],
                        std: vec![0.5],
                    },
                    Step::ToChannelsFirst,
                ])
                .unwrap(),
                &hu,
                true,
            ),
            (
                Pipeline::from_hf_config(
                    r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 20}, "crop_size": 18}"#,
                    HfOptions {
                        input: InputRange::Levels8,
                        ..Default::default()
                    },
                )
                .unwrap(),
                &levels,
                false,
            ),
        ];
        for (p, img, fused) in cases {
            let (h, w) = img.dim();
            assert_eq!(GrayPlan::new(&p.steps, h, w).is_some(), fused, "{p:?}");
            let want = p.run(as_hwc(img.view().into_dyn()).unwrap()).unwrap();
            for view in [
                img.view().into_dyn(),
                img.view().insert_axis(Axis(2)).into_dyn(),
            ] {
                let got = p.apply_image(view).unwrap();
                assert_eq!(got.dim(), want.dim(), "{p:?}");
                let same = got
                    .iter()
                    .zip(want.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{p:?}");
            }
        }
        // An 8-bit resize of values that are not levels is still refused.
        let p = Pipeline::new(vec![
            resize(4, 4, Filter::Bilinear, ResizeMode::Uint8),
            Step::GrayToRgb,
            Step::ToChannelsFirst,
        ])
        .unwrap();
        let e = p.apply_image(hu.view().into_dyn()).unwrap_err().to_string();
        assert!(e.contains("8-bit mode needs levels"), "{e}");
    }

    /// The step names of a pipeline's provenance, in order.
    fn step_names(p: &Pipeline) -> Vec<String> {
        p.provenance()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn model_pipeline_prefixes_the_value_steps() {
        let names = step_names;
        let p = model_pipeline(
            &ModelTarget::Size(16),
            ItemValues::Hounsfield,
            ModelOptions::default(),
        )
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "multi_window_rgb",
                "resize",
                "gray_to_rgb",
                "rescale",
                "normalize",
                "to_channels_first"
            ]
        );
        let p = model_pipeline(
            &ModelTarget::Size(16),
            ItemValues::Windowed(Window::linear(40.0, 400.0)),
            ModelOptions {
                pad_to_square: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "window",
                "pad_to_square",
                "resize",
                "clip",
                "gray_to_rgb",
                "normalize",
                "to_channels_first"
            ]
        );
        assert_eq!(p.provenance()["steps"][0]["window"]["center"], 40.0);
        let p = p
            .with_slice_sampling(85)
            .unwrap()
            .with_slice_sampling(4)
            .unwrap();
        assert_eq!(p.steps[0], Step::SampleSlices { count: 4 });
        assert!(!matches!(p.steps[1], Step::SampleSlices { .. }));
        // A HU volume: 6 slices sampled to 4, each windowed and resized.
        let vol = Array3::from_shape_fn((6, 7, 9), |(k, y, x)| (k * 100 + y + x) as f32 - 300.0);
        let out = p.apply_stack(vol.view().into_dyn()).unwrap();
        assert_eq!(out.dim(), (4, 3, 16, 16));
        let missing = ModelTarget::HfConfig("/nonexistent/model".into());
        let e = model_pipeline(&missing, ItemValues::Unit, ModelOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/model"), "{e}");
    }

    #[test]
    fn hf_configs_build_the_processor_order() {
        let siglip = r#"{"image_processor_type": "SiglipImageProcessor", "size": {"height": 448, "width": 448},
            "resample": 3, "rescale_factor": 0.00392156862745098, "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5], "do_normalize": true, "do_rescale": true, "do_resize": true}"#;
        let p = Pipeline::from_hf_config(
            siglip,
            HfOptions {
                input: InputRange::Levels8,
                ..Default::default()
            },
        )
        .unwrap();
        let names = step_names(&p);
        assert_eq!(
            names,
            [
                "resize",
                "gray_to_rgb",
                "rescale",
                "normalize",
                "to_channels_first"
            ]
        );
        let p = Pipeline::from_hf_config(
            siglip,
            HfOptions {
                pad_to_square: true,
                ..Default::default()
            },
        )
        .unwrap();
        let names = step_names(&p);
        assert_eq!(
            names,
            [
                "to_uint8",
                "pad_to_square",
                "resize",
                "gray_to_rgb",
                "rescale",
                "normalize",
                "to_channels_first"
            ]
        );
        let clip = r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224}, "crop_size": 224}"#;
        let p = Pipeline::from_hf_config(
            clip,
            HfOptions {
                input: InputRange::Levels8,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            p.steps[0],
            Step::ResizeShortestEdge {
                size: 224,
                filter: Filter::Bicubic,
                mode: ResizeMode::Uint8
            }
        );
        assert_eq!(
            p.steps[1],
            Step::CenterCrop {
                height: 224,
                width: 224
            }
        );
        let gemma = r#"{"image_processor_type": "Gemma3ImageProcessor", "size": {"height": 896, "width": 896}}"#;
        let p = Pipeline::from_hf_config(
            gemma,
            HfOptions {
                input: InputRange::Levels8,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            p.steps[0],
            Step::Resize {
                height: 896,
                width: 896,
                filter: Filter::Bilinear,
                mode: ResizeMode::Uint8
            }
        );
        for bad in [
            "{",
            r#"{"image_processor_type": "LlavaImageProcessor"}"#,
            r#"{"resample": 9}"#,
            r#"{"size": {"height": 4}}"#,
            r#"{"image_processor_type": "Gemma3ImageProcessor", "do_pan_and_scan": true}"#,
            r#"{"size": {"height": 100000, "width": 100000}}"#,
            r#"{"image_std": [0.0]}"#,
        ] {
            let e = Pipeline::from_hf_config(bad, HfOptions::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("preprocessor_config.json") || e.contains("step"),
                "{bad}: {e}"
            );
        }
    }
}
