//! PNG, JPEG and TIFF images into arrays of their stored values, through the `image` crate.
//!
//! ```no_run
//! let img = medvqa_ingest::raster::read_raster("chest.png")?;
//! // [rows, cols] for gray, [rows, cols, 3] for colour; values 0–255 or 0–65535
//! println!("{:?} {}-bit colour={}", img.pixels.shape(), img.bits, img.colour);
//! # Ok::<(), medvqa_ingest::IngestError>(())
//! ```
//!
//! - Gray and gray+alpha give `[rows, cols]`; RGB and RGBA give `[rows, cols, 3]`.
//! - Values are the stored samples, not rescaled: 0–255 for 8-bit, 0–65535 for 16-bit
//!   (floating-point TIFF keeps its values and reports `bits = 32`).
//! - Alpha is dropped, not composited: in exported medical images it is either fully
//!   opaque or a rendering mask, and compositing would invent a background colour and change
//!   the measured values. This is also what the reference model preprocessors do (Pillow's
//!   `convert("RGB")` discards alpha).
//! - A palette PNG expands to RGB (its palette entries), and PNG gray of 1, 2 or 4 bits
//!   expands to 8 bits (the `png` decoder's EXPAND transformation).
//! - The EXIF orientation tag is not applied (Pillow's `open` does not apply it either, so
//!   the pixels match what the reference preprocessors see). A multi-page TIFF gives its
//!   first page.
//! - The declared size is checked against [`DEFAULT_MAX_SAMPLES`] before decoding.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};
use ndarray::{ArrayD, IxDyn};

use crate::error::{IngestError, Result};

/// Largest image read by [`read_raster`], in samples (pixels × stored channels): 2^28,
/// i.e. 1 GiB as f32 output.
pub const DEFAULT_MAX_SAMPLES: u64 = 1 << 28;

/// A decoded 2D image.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterImage {
    /// `[rows, cols]` (gray) or `[rows, cols, 3]` (RGB), stored values.
    pub pixels: ArrayD<f32>,
    /// Bits per stored sample: 8, 16, or 32 for floating-point TIFF.
    pub bits: u8,
    /// True when `pixels` is `[rows, cols, 3]`.
    pub colour: bool,
    /// True when the file had an alpha channel (dropped).
    pub had_alpha: bool,
}

/// Reads a PNG, JPEG or TIFF file (format from its content, not its name) with the default
/// size limit.
pub fn read_raster(path: impl AsRef<Path>) -> Result<RasterImage> {
    read_raster_with_limit(path, DEFAULT_MAX_SAMPLES)
}

/// Reads a PNG, JPEG or TIFF file, refusing images whose declared width × height ×
/// channels exceeds `max_samples` before decoding them.
pub fn read_raster_with_limit(path: impl AsRef<Path>, max_samples: u64) -> Result<RasterImage> {
    let path = path.as_ref();
    let err = |reason: String| IngestError::Raster {
        path: path.to_path_buf(),
        reason,
    };
    let reader = ImageReader::open(path)
        .map_err(|e| IngestError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| IngestError::io(path, e))?;
    if reader.format().is_none() {
        return Err(IngestError::UnknownFormat {
            path: path.to_path_buf(),
            reason: "content is not PNG, JPEG or TIFF".into(),
        });
    }
    let decoder = reader.into_decoder().map_err(|e| err(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let channels = u64::from(decoder.color_type().channel_count());
    let samples = u64::from(w) * u64::from(h) * channels;
    if samples > max_samples {
        return Err(IngestError::TooLarge {
            path: path.to_path_buf(),
            voxels: samples,
            limit: max_samples,
        });
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| err(e.to_string()))?;
    to_raster(img).map_err(err)
}

/// Converts a decoded image to stored-value arrays (alpha dropped).
fn to_raster(img: DynamicImage) -> std::result::Result<RasterImage, String> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let gray = |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(&[h, w]), v);
    let rgb = |v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(&[h, w, 3]), v);
    // Keep the first `keep` of every `step` samples: drops alpha from interleaved data.
    fn take<T: Copy + Into<f32>>(raw: &[T], step: usize, keep: usize) -> Vec<f32> {
        raw.chunks_exact(step)
            .flat_map(|p| p[..keep].iter().map(|&v| v.into()))
            .collect()
    }
    let (pixels, bits, colour, had_alpha) = match &img {
        DynamicImage::ImageLuma8(b) => (gray(take(b.as_raw(), 1, 1)), 8, false, false),
        DynamicImage::ImageLumaA8(b) => (gray(take(b.as_raw(), 2, 1)), 8, false, true),
        DynamicImage::ImageRgb8(b) => (rgb(take(b.as_raw(), 3, 3)), 8, true, false),
        DynamicImage::ImageRgba8(b) => (rgb(take(b.as_raw(), 4, 3)), 8, true, true),
        DynamicImage::ImageLuma16(b) => (gray(take(b.as_raw(), 1, 1)), 16, false, false),
        DynamicImage::ImageLumaA16(b) => (gray(take(b.as_raw(), 2, 1)), 16, false, true),
        DynamicImage::ImageRgb16(b) => (rgb(take(b.as_raw(), 3, 3)), 16, true, false),
        DynamicImage::ImageRgba16(b) => (rgb(take(b.as_raw(), 4, 3)), 16, true, true),
        DynamicImage::ImageRgb32F(b) => (rgb(take(b.as_raw(), 3, 3)), 32, true, false),
        DynamicImage::ImageRgba32F(b) => (rgb(take(b.as_raw(), 4, 3)), 32, true, true),
        other => return Err(format!("unsupported pixel layout {:?}", other.color())),
    };
    Ok(RasterImage {
        pixels: pixels.map_err(|e| e.to_string())?,
        bits,
        colour,
        had_alpha,
    })
}
