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
    // A reader without the path, so the format comes from the content only (no fallback
    // to the extension, which would misname a non-image file's problem).
    let file = std::fs::File::open(path).map_err(|e| IngestError::io(path, e))?;
    let reader = ImageReader::new(std::io::BufReader::new(file))
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
        if step == keep {
            return raw.iter().map(|&v| v.into()).collect();
        }
        let mut out = Vec::with_capacity(raw.len() / step * keep);
        for p in raw.chunks_exact(step) {
            out.extend(p[..keep].iter().map(|&v| v.into()));
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/raster")
    }

    /// Files encoded by hand in tools/fixtures/make_raster.py; expected arrays beside them.
    #[test]
    fn hand_encoded_png_and_tiff_give_their_stored_values() {
        let text =
            std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        let cases = doc["cases"].as_array().expect("cases");
        assert_eq!(cases.len(), 9);
        for case in cases {
            let name = case["file"].as_str().expect("file");
            let img = read_raster(fixtures().join(name)).unwrap_or_else(|e| panic!("{e}"));
            let shape: Vec<usize> = case["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_u64().expect("dim") as usize)
                .collect();
            assert_eq!(img.pixels.shape(), &shape[..], "{name}");
            assert_eq!(Some(u64::from(img.bits)), case["bits"].as_u64(), "{name}");
            assert_eq!(Some(img.colour), case["colour"].as_bool(), "{name}");
            assert_eq!(Some(img.had_alpha), case["had_alpha"].as_bool(), "{name}");
            let want: Vec<f32> = case["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| v.as_f64().expect("value") as f32)
                .collect();
            let got: Vec<f32> = img.pixels.iter().copied().collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn jpeg_gray_and_colour_decode_close_to_what_was_encoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gray = image::GrayImage::from_fn(32, 24, |x, y| image::Luma([(x * 6 + y * 2) as u8]));
        let p = dir.path().join("g.jpg");
        gray.save(&p).expect("encode jpeg");
        let img = read_raster(&p).expect("decode jpeg");
        assert_eq!(
            (img.pixels.shape(), img.bits, img.colour),
            (&[24, 32][..], 8, false)
        );
        let worst = img
            .pixels
            .indexed_iter()
            .map(|(ix, &v)| (v - (ix[1] * 6 + ix[0] * 2) as f32).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 8.0, "gray JPEG error {worst}");

        let rgb = image::RgbImage::from_fn(16, 8, |x, y| {
            image::Rgb([200, (x * 10) as u8, (y * 20) as u8])
        });
        let p = dir.path().join("c.jpeg");
        rgb.save(&p).expect("encode jpeg");
        let img = read_raster(&p).expect("decode jpeg");
        assert_eq!((img.pixels.shape(), img.colour), (&[8, 16, 3][..], true));
        let mean_red = img
            .pixels
            .slice(ndarray::s![.., .., 0])
            .mean()
            .expect("mean");
        assert!((mean_red - 200.0).abs() < 6.0, "mean red {mean_red}");
    }

    /// The 315 VQA-RAD JPEGs in ../shared/fixtures: all decode, 8-bit, plausible sizes, not
    /// blank.
    #[test]
    fn every_vqa_rad_jpeg_decodes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/vqa/vqa_rad/images");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("SKIP: {} absent", dir.display());
            return;
        };
        use rayon::prelude::*;
        let paths: Vec<PathBuf> = entries.map(|e| e.expect("dir entry").path()).collect();
        let colour: usize = paths
            .par_iter()
            .map(|path| {
                let img = read_raster(path).unwrap_or_else(|e| panic!("{e}"));
                let s = img.pixels.shape();
                assert!(s[0] >= 64 && s[1] >= 64, "{}: {s:?}", path.display());
                assert_eq!(img.bits, 8);
                let (lo, hi) = img
                    .pixels
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                assert!(
                    lo >= 0.0 && hi <= 255.0 && hi - lo > 50.0,
                    "{}: range {lo}..{hi}",
                    path.display()
                );
                usize::from(img.colour)
            })
            .sum();
        let n = paths.len();
        assert_eq!(n, 315);
        eprintln!("decoded {n} VQA-RAD JPEGs ({colour} colour)");
    }

    /// Deterministic mutation smoke test over the fixtures: every mutated file gives an
    /// image or an error, never a panic.
    #[test]
    fn mutated_files_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            // xorshift64 (Marsaglia 2003).
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut errors = 0;
        for name in [
            "gray16.png",
            "palette2.png",
            "rgba16.png",
            "gray16_be.tif",
            "rgb8_le.tif",
        ] {
            let original = std::fs::read(fixtures().join(name)).expect("fixture");
            for round in 0..300 {
                let mut bytes = original.clone();
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
                let p = dir.path().join(name);
                std::fs::write(&p, &bytes).expect("write");
                match std::panic::catch_unwind(|| read_raster(&p)) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        assert!(e.to_string().contains(name), "{e}");
                        errors += 1;
                    }
                    Err(_) => panic!("{name} round {round}: reader panicked"),
                }
            }
        }
        assert!(errors > 0);
    }

    #[test]
    fn broken_unknown_and_oversized_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let png = std::fs::read(fixtures().join("rgb8.png")).expect("fixture");
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &png[..png.len() / 2]).expect("write");
        let e = read_raster(&cut).expect_err("truncated png");
        assert!(e.to_string().contains("cut.png"), "{e}");

        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"definitely not an image").expect("write");
        let e = read_raster(&junk).expect_err("junk");
        assert!(matches!(e, IngestError::UnknownFormat { .. }), "{e}");
        assert!(e.to_string().contains("junk.png"), "{e}");

        let e = read_raster(dir.path().join("absent.png")).expect_err("absent");
        assert!(
            matches!(e, IngestError::Io { .. }) && e.to_string().contains("absent.png"),
            "{e}"
        );

        // rgb8.png is 7×5×3 = 105 samples.
        let e = read_raster_with_limit(fixtures().join("rgb8.png"), 104).expect_err("limit");
        assert!(
            matches!(e, IngestError::TooLarge { voxels: 105, .. }),
            "{e}"
        );
        assert!(read_raster_with_limit(fixtures().join("rgb8.png"), 105).is_ok());
    }
}
