//! Stored pixel values to the modality stage (PS3.4 N.2.1.1, PS3.3 C.7.6.3, C.11.1):
//! decompression, Bits Stored / High Bit masking, sign extension, Modality LUT per frame, colour
//! models to RGB, Palette Color lookup.

use std::path::Path;

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_encoding::TransferSyntaxIndex;

use super::attrs::{self, Ds, FrameAttrs};
use super::color::{self, Palette};
use super::encapsulated;
use super::open::{transfer_syntax_name, DicomSource};
use crate::error::{IngestError, Result};

/// Default cap on Rows × Columns × Frames × Samples per Pixel: 2^30 samples (4 GiB as f32).
/// A declared size past this is refused before any allocation.
pub const DEFAULT_MAX_SAMPLES: u64 = 1 << 30;

/// The image attributes of the Image Pixel Module (PS3.3 C.7.6.3) that decoding depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelAttrs {
    pub rows: usize,
    pub cols: usize,
    pub frames: usize,
    pub samples_per_pixel: usize,
    pub bits_allocated: u32,
    pub bits_stored: u32,
    pub high_bit: u32,
    /// Pixel Representation 1: two's complement stored values.
    pub signed: bool,
    pub photometric: String,
    /// Planar Configuration 1: colour planes one after the other (per frame).
    pub planar: bool,
    /// Float (7FE0,0008) or Double Float (7FE0,0009) Pixel Data.
    pub float_bits: Option<u32>,
}

impl PixelAttrs {
    pub fn read(path: &Path, ds: &Ds) -> Result<PixelAttrs> {
        let need = |tag, name: &'static str| -> Result<i64> {
            attrs::int(ds, tag).ok_or_else(|| IngestError::Attribute {
                path: path.to_path_buf(),
                attribute: name,
                reason: if attrs::has(ds, tag) {
                    "value is not a number".into()
                } else {
                    "missing".into()
                },
            })
        };
        let bad = |name: &'static str, reason: String| IngestError::Attribute {
            path: path.to_path_buf(),
            attribute: name,
            reason,
        };
        let rows = need(tags::ROWS, "Rows (0028,0010)")?;
        let cols = need(tags::COLUMNS, "Columns (0028,0011)")?;
        if rows <= 0 || cols <= 0 {
            return Err(bad("Rows/Columns", format!("{rows} x {cols}")));
        }
        let frames = if attrs::has(ds, tags::NUMBER_OF_FRAMES) {
            need(tags::NUMBER_OF_FRAMES, "Number of Frames (0028,0008)")?
        } else {
            1
        };
        if frames <= 0 {
            return Err(bad("Number of Frames (0028,0008)", format!("{frames}")));
        }
        let spp = attrs::int(ds, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        if spp != 1 && spp != 3 {
            return Err(bad("Samples per Pixel (0028,0002)", format!("{spp}, expected 1 or 3")));
        }
        let float_bits = if attrs::has(ds, tags::FLOAT_PIXEL_DATA) {
            Some(32)
        } else if attrs::has(ds, tags::DOUBLE_FLOAT_PIXEL_DATA) {
            Some(64)
        } else {
            None
        };
        let bits_allocated = match float_bits {
            Some(b) => b as i64,
            None => need(tags::BITS_ALLOCATED, "Bits Allocated (0028,0100)")?,
        };
        if ![1, 8, 16, 32, 64].contains(&bits_allocated) {
            return Err(bad(
                "Bits Allocated (0028,0100)",
                format!("{bits_allocated}, expected 1, 8, 16, 32 or 64"),
            ));
        }
        let bits_stored = attrs::int(ds, tags::BITS_STORED).unwrap_or(bits_allocated);
        if bits_stored < 1 || bits_stored > bits_allocated {
            return Err(bad(
                "Bits Stored (0028,0101)",
                format!("{bits_stored} with Bits Allocated {bits_allocated}"),
            ));
        }
        let mut high_bit = attrs::int(ds, tags::HIGH_BIT).unwrap_or(bits_stored - 1);
        if high_bit < bits_stored - 1 || high_bit >= bits_allocated {
            // PS3.5 8.1.1 requires High Bit = Bits Stored - 1 in practice; repair the common
            // mistake instead of refusing the image.
            high_bit = bits_stored - 1;
        }
        let photometric = attrs::string(ds, tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap_or_else(|| if spp == 3 { "RGB" } else { "MONOCHROME2" }.to_string());
        Ok(PixelAttrs {
            rows: rows as usize,
            cols: cols as usize,
            frames: frames as usize,
            samples_per_pixel: spp as usize,
            bits_allocated: bits_allocated as u32,
            bits_stored: bits_stored as u32,
            high_bit: high_bit as u32,
            signed: attrs::int(ds, tags::PIXEL_REPRESENTATION) == Some(1),
            photometric,
            planar: attrs::int(ds, tags::PLANAR_CONFIGURATION) == Some(1),
            float_bits,
        })
    }

    pub fn is_monochrome(&self) -> bool {
        self.photometric.starts_with("MONOCHROME")
    }

    /// Samples in the whole pixel data, as declared.
    pub fn declared_samples(&self) -> u64 {
        self.rows as u64 * self.cols as u64 * self.frames as u64 * self.samples_per_pixel as u64
    }
}

/// Pixel values after the modality stage.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedPixels {
    pub rows: usize,
    pub cols: usize,
    pub frames: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// `[frames, rows, cols, channels]`, C order. Grayscale: modality values (e.g. HU);
    /// colour: RGB in the stored range (0–255 for 8-bit).
    pub data: Vec<f32>,
    /// Largest value a colour sample can take (None for grayscale).
    pub color_max: Option<f64>,
    /// Photometric interpretation of the stored data before any conversion.
    pub photometric: String,
    /// Notes for the sidecar (e.g. a repaired attribute).
    pub warnings: Vec<String>,
}

impl DecodedPixels {
    pub fn frame(&self, f: usize) -> &[f32] {
        let n = self.rows * self.cols * self.channels;
        &self.data[f * n..(f + 1) * n]
    }
}

/// Decodes the pixel data of a fully read source to modality values.
/// `frame_attrs` holds one entry per frame (see [`attrs::frame_attrs`]).
pub fn decode(
    path: &Path,
    src: &DicomSource,
    pa: &PixelAttrs,
    frame_attrs: &[FrameAttrs],
    max_samples: u64,
) -> Result<DecodedPixels> {
    let ds = src.dataset();
    if pa.declared_samples() > max_samples {
        return Err(IngestError::TooLarge {
            path: path.to_path_buf(),
            voxels: pa.declared_samples(),
            limit: max_samples,
        });
    }
    let mut warnings = Vec::new();
    let frame_pixels = pa.rows * pa.cols;

    if let Some(fbits) = pa.float_bits {
        let tag = if fbits == 32 { tags::FLOAT_PIXEL_DATA } else { tags::DOUBLE_FLOAT_PIXEL_DATA };
        let e = ds.element(tag).map_err(|e| IngestError::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let bytes = e.to_bytes().map_err(|e| IngestError::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let n = pa.declared_samples() as usize;
        let width = (fbits / 8) as usize;
        check_len(path, bytes.len(), n * width)?;
        let data: Vec<f32> = if fbits == 32 {
            bytes[..n * 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            bytes[..n * 8]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect()
        };
        return Ok(DecodedPixels {
            rows: pa.rows,
            cols: pa.cols,
            frames: pa.frames,
            channels: pa.samples_per_pixel,
            data,
            color_max: (pa.samples_per_pixel == 3).then_some(1.0),
            photometric: pa.photometric.clone(),
            warnings,
        });
    }

    let pixel = ds
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| IngestError::NoPixelData {
            path: path.to_path_buf(),
            what: attrs::string(ds, tags::SOP_CLASS_UID)
                .map(|uid| format!("SOP Class {uid}"))
                .unwrap_or_else(|| "no SOP Class UID".into()),
        })?;

    // Raw sample containers of `bits_allocated` bits, and the photometric interpretation they
    // are in (decoders of colour JPEG / JPEG 2000 deliver RGB).
    let (raw, photometric, planar): (std::borrow::Cow<[u8]>, String, bool) = match pixel.value() {
        Value::Primitive(p) => {
            // Native-looking values in a syntax we do not know (e.g. GE's private
            // 1.2.840.113619.5.2, big endian pixels in an implicit VR data set) cannot be
            // trusted to be little-endian samples: refuse rather than guess.
            if TransferSyntaxRegistry.get(&src.transfer_syntax).is_none() {
                return Err(IngestError::UnsupportedTransferSyntax {
                    path: path.to_path_buf(),
                    uid: src.transfer_syntax.clone(),
                    name: transfer_syntax_name(&src.transfer_syntax),
                    reason: "its pixel data encoding is unknown".into(),
                });
            }
            (native_bytes(src, p, pa), pa.photometric.clone(), pa.planar)
        }
        Value::PixelSequence(_) => {
            let (bytes, pi) = decode_encapsulated(path, src, pa)?;
            (std::borrow::Cow::Owned(bytes), pi, false)
        }
        Value::Sequence(_) => {
            return Err(IngestError::Decode {
                path: path.to_path_buf(),
                reason: "Pixel Data is a sequence of items, not pixel values".into(),
            })
        }
    };

    // Stored samples per frame in the data: YBR_FULL_422 / YBR_PARTIAL_422 in native encoding
    // hold 2 samples per pixel (Y Y Cb Cr per pixel pair, PS3.3 C.7.6.3.1.2).
    let subsampled_422 = photometric.ends_with("_422") && matches!(pixel.value(), Value::Primitive(_));
    let samples_per_frame = if subsampled_422 {
        frame_pixels * 2
    } else {
        frame_pixels * pa.samples_per_pixel
    };
    // Native 1-bit data is one continuous bit stream (PS3.5 8.1.1), but frames decompressed one
    // by one (RLE, PS3.5 G.2) each start on a byte boundary.
    let frame_stride = if pa.bits_allocated == 1 && !matches!(pixel.value(), Value::Primitive(_)) {
        samples_per_frame.div_ceil(8) * 8
    } else {
        samples_per_frame
    };
    let total = frame_stride * pa.frames;
    let needed_bytes = (total as u64 * pa.bits_allocated as u64).div_ceil(8) as usize;
    check_len(path, raw.len(), needed_bytes)?;
    if raw.len() > needed_bytes + 1 && matches!(pixel.value(), Value::Primitive(_)) {
        warnings.push(format!(
            "Pixel Data holds {} bytes, {} expected; the excess is ignored",
            raw.len(),
            needed_bytes
        ));
    }

    let stored = StoredSamples::new(pa);
    let is_palette = photometric == "PALETTE COLOR";
    let palette = if is_palette {
        Some(color::read_palette(ds, pa.signed).map_err(|reason| IngestError::Attribute {
            path: path.to_path_buf(),
            attribute: "Palette Color Lookup Table",
            reason,
        })?)
    } else {
        None
    };

    let channels = if pa.samples_per_pixel == 3 || is_palette { 3 } else { 1 };
    let mut data = vec![0f32; frame_pixels * channels * pa.frames];
    let color_max;
    if channels == 1 {
        color_max = None;
        for f in 0..pa.frames {
            let lut = frame_attrs.get(f).and_then(|a| a.modality_lut.as_ref());
            let out = &mut data[f * frame_pixels..(f + 1) * frame_pixels];
            let base = f * frame_stride;
            if pa.bits_allocated == 16 && !matches!(lut, Some(crate::lut::ModalityLut::Lut(_))) {
                let words = &raw[2 * base..2 * (base + frame_pixels)];
                let rescale = match lut {
                    Some(crate::lut::ModalityLut::Rescale(r)) => Some(*r),
                    _ => None,
                };
                stored.frame16(words, rescale, out);
                continue;
            }
            match lut {
                Some(crate::lut::ModalityLut::Rescale(r)) => {
                    let (s, i) = (r.slope, r.intercept);
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = (s * stored.get(&raw, base + k) as f64 + i) as f32;
                    }
                }
                Some(l) => {
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = l.apply(stored.get(&raw, base + k) as f64) as f32;
                    }
                }
                None => {
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = stored.get(&raw, base + k) as f32;
                    }
                }
            }
        }
    } else if let Some(pal) = &palette {
        color_max = Some(pal.max_output());
        lookup_palette(&raw, &stored, pal, &mut data);
    } else {
        let bits = pa.bits_stored;
        color_max = Some(((1u64 << bits) - 1) as f64);
        for f in 0..pa.frames {
            let base = f * frame_stride;
            let out = &mut data[f * frame_pixels * 3..(f + 1) * frame_pixels * 3];
            for p in 0..frame_pixels {
                let (a, b, c) = if subsampled_422 {
                    // Pixel pair (2q, 2q+1) shares Cb, Cr: Y0 Y1 Cb Cr.
                    let q = base + (p / 2) * 4;
                    (stored.get(&raw, q + (p % 2)), stored.get(&raw, q + 2), stored.get(&raw, q + 3))
                } else if planar {
                    (
                        stored.get(&raw, base + p),
                        stored.get(&raw, base + frame_pixels + p),
                        stored.get(&raw, base + 2 * frame_pixels + p),
                    )
                } else {
                    (
                        stored.get(&raw, base + 3 * p),
                        stored.get(&raw, base + 3 * p + 1),
                        stored.get(&raw, base + 3 * p + 2),
                    )
                };
                let rgb = match photometric.as_str() {
                    "YBR_FULL" | "YBR_FULL_422" => ybr(a, b, c, bits, color::ybr_full_to_rgb),
                    "YBR_PARTIAL_422" | "YBR_PARTIAL_420" => {
                        ybr(a, b, c, bits, color::ybr_partial_to_rgb)
                    }
                    _ => [a as f32, b as f32, c as f32],
                };
                out[3 * p..3 * p + 3].copy_from_slice(&rgb);
            }
        }
        if photometric != "RGB" && !photometric.starts_with("YBR_") {
            warnings.push(format!(
                "3-sample photometric interpretation {photometric} kept as stored (no conversion defined)"
            ));
        }
    }

    Ok(DecodedPixels {
        rows: pa.rows,
        cols: pa.cols,
        frames: pa.frames,
        channels,
        data,
        color_max,
        photometric: pa.photometric.clone(),
        warnings,
    })
}

/// Native pixel data as little-endian containers. The parser has already turned OW words into
/// numbers; in big endian files with 32- or 64-bit samples (RT Dose) those OW words must be
/// regrouped, since each sample spans several words in big-endian order.
fn native_bytes<'a>(src: &DicomSource, p: &'a dicom_core::PrimitiveValue, pa: &PixelAttrs) -> std::borrow::Cow<'a, [u8]> {
    let bytes = p.to_bytes();
    let big_endian = src.transfer_syntax == "1.2.840.10008.1.2.2";
    let words_per_sample = (pa.bits_allocated / 16) as usize;
    if big_endian && words_per_sample >= 2 && matches!(p, dicom_core::PrimitiveValue::U16(_)) {
        let mut out = bytes.into_owned();
        for sample in out.chunks_exact_mut(2 * words_per_sample) {
            // Words are in big-endian order: reverse them to make the container little endian.
            let words: Vec<[u8; 2]> = sample.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
            for (i, w) in words.iter().rev().enumerate() {
                sample[2 * i..2 * i + 2].copy_from_slice(w);
            }
        }
        return std::borrow::Cow::Owned(out);
    }
    bytes
}

fn ybr(a: i64, b: i64, c: i64, bits: u32, f: fn(f64, f64, f64, u32) -> [f64; 3]) -> [f32; 3] {
    let [r, g, b] = f(a as f64, b as f64, c as f64, bits.max(8));
    [r as f32, g as f32, b as f32]
}

fn lookup_palette(raw: &[u8], stored: &StoredSamples, pal: &Palette, out: &mut [f32]) {
    for (p, px) in out.chunks_exact_mut(3).enumerate() {
        px.copy_from_slice(&pal.lookup(stored.get(raw, p)));
    }
}

fn check_len(path: &Path, got: usize, expected: usize) -> Result<()> {
    if got < expected {
        return Err(IngestError::Truncated {
            path: path.to_path_buf(),
            got,
            expected,
        });
    }
    Ok(())
}

/// Reads stored values out of sample containers: Bits Allocated wide little-endian words,
/// masked to Bits Stored below High Bit and sign-extended when Pixel Representation is 1
/// (PS3.5 8.1.1, PS3.3 C.7.6.3.1).
struct StoredSamples {
    bits_allocated: u32,
    shift: u32,
    mask: u64,
    sign_bit: Option<u64>,
}

impl StoredSamples {
    fn new(pa: &PixelAttrs) -> Self {
        let bs = pa.bits_stored;
        StoredSamples {
            bits_allocated: pa.bits_allocated,
            shift: pa.high_bit + 1 - bs,
            mask: if bs >= 64 { u64::MAX } else { (1u64 << bs) - 1 },
            sign_bit: (pa.signed && bs < 64).then(|| 1u64 << (bs - 1)),
        }
    }

    /// One frame of 16-bit containers (`words`: 2 bytes per sample, little endian) to
    /// modality values in `out`, through `rescale` if given. The same values as [`Self::get`]
    /// and the per-sample rescale in `decode`, computed in `i32` with a branch-free sign
    /// extension so the loop vectorises (16-bit CT is the common case, benches/README.md).
    fn frame16(&self, words: &[u8], rescale: Option<crate::lut::Rescale>, out: &mut [f32]) {
        debug_assert_eq!(self.bits_allocated, 16);
        let (shift, mask) = (self.shift, self.mask as u32);
        let sign = self.sign_bit.unwrap_or(0) as u32;
        // (v ^ s) - s sign-extends a Bits Stored wide value whose sign bit is s (0: unsigned).
        let value = move |c: &[u8]| {
            let v = (u32::from(u16::from_le_bytes([c[0], c[1]])) >> shift) & mask;
            (v ^ sign).wrapping_sub(sign) as i32
        };
        let pairs = words.chunks_exact(2);
        match rescale {
            Some(r) => {
                let (s, i) = (r.slope, r.intercept);
                for (o, c) in out.iter_mut().zip(pairs) {
                    *o = (s * value(c) as f64 + i) as f32;
                }
            }
            None => {
                for (o, c) in out.iter_mut().zip(pairs) {
                    *o = value(c) as f32;
                }
            }
        }
    }

    /// The `i`-th stored value. The caller has checked the buffer length.
    #[inline(always)]
    fn get(&self, raw: &[u8], i: usize) -> i64 {
        let word = match self.bits_allocated {
            8 => raw[i] as u64,
            16 => u16::from_le_bytes([raw[2 * i], raw[2 * i + 1]]) as u64,
            32 => u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]) as u64,
            // 1-bit data: a continuous bit stream, least significant bit first (PS3.5 8.1.1),
            // frames not byte aligned.
            1 => ((raw[i / 8] >> (i % 8)) & 1) as u64,
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&raw[8 * i..8 * i + 8]);
                u64::from_le_bytes(b)
            }
        };
        let v = (word >> self.shift) & self.mask;
        match self.sign_bit {
            Some(s) if v & s != 0 => v as i64 - ((s << 1) as i64),
            _ => v as i64,
        }
    }
}

/// Decompresses encapsulated pixel data to native little-endian containers of Bits Allocated
/// bits; returns them with the photometric interpretation they are now in.
fn decode_encapsulated(path: &Path, src: &DicomSource, pa: &PixelAttrs) -> Result<(Vec<u8>, String)> {
    let uid = src.transfer_syntax.as_str();
    let unsupported = |reason: String| IngestError::UnsupportedTransferSyntax {
        path: path.to_path_buf(),
        uid: uid.to_string(),
        name: transfer_syntax_name(uid),
        reason,
    };
    let decode_err = |reason: String| IngestError::Decode {
        path: path.to_path_buf(),
        reason: format!("{} ({uid}): {reason}", transfer_syntax_name(uid)),
    };
    let seq = match src.dataset().element(tags::PIXEL_DATA).map(|e| e.value()) {
        Ok(Value::PixelSequence(seq)) => seq,
        _ => return Err(decode_err("Pixel Data is not encapsulated".into())),
    };
    match uid {
        // RLE Lossless: our decoder handles 1- to 64-bit samples (dicom-rs stops at 16).
        "1.2.840.10008.1.2.5" => {
            let frames = encapsulated::frame_fragments(seq, pa.frames).map_err(decode_err)?;
            let mut out = Vec::new();
            for (k, frame) in frames.iter().enumerate() {
                encapsulated::decode_rle_frame(frame, pa.rows * pa.cols, pa.samples_per_pixel, pa.bits_allocated, &mut out)
                    .map_err(|e| decode_err(format!("frame {k}: {e}")))?;
            }
            Ok((out, pa.photometric.clone()))
        }
        // JPEG baseline, extended, lossless: the Photometric Interpretation decides colour.
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
            let frames = encapsulated::frame_fragments(seq, pa.frames).map_err(decode_err)?;
            let mut out = Vec::with_capacity(pa.declared_samples() as usize * (pa.bits_allocated as usize).div_ceil(8));
            for (k, frame) in frames.iter().enumerate() {
                decode_jpeg_into(frame, pa, &mut out).map_err(|e| decode_err(format!("frame {k}: {e}")))?;
            }
            let pi = if pa.samples_per_pixel == 3 { "RGB".to_string() } else { pa.photometric.clone() };
            Ok((out, pi))
        }
        _ => {
            let Some(file) = src.file() else {
                return Err(unsupported("encapsulated pixel data in a file without file meta".into()));
            };
            let ts = TransferSyntaxRegistry
                .get(uid)
                .ok_or_else(|| unsupported("not a transfer syntax this build knows".into()))?;
            if !ts.can_decode_all() {
                return Err(unsupported("no decoder for it is built into medvqa".into()));
            }
            // openjp2 allocates the image its codestream declares, whatever the DICOM header
            // says (fuzzing found 3.6 KB asking for > 2 GB): refuse one larger than a frame.
            if matches!(uid, "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" | "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203") {
                if let Some(reason) = j2k_larger_than_frame(seq.fragments(), pa) {
                    return Err(decode_err(reason));
                }
            }
            super::jls::check_frames(uid, seq.fragments(), pa).map_err(decode_err)?;
            // Third-party decoders may panic on malformed codestreams; contain it to this file.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| file.decode_pixel_data().map(|d| d.into_data())))
                .map_err(|_| decode_err("the decoder failed on malformed data".into()))?
                .map_err(|e| decode_err(e.to_string()))?;
            // The JPEG 2000 decoder applies the codestream's component transform (YBR_ICT /
            // YBR_RCT become RGB, PS3.5 8.2.4); JPEG-LS delivers samples as stored.
            let colour_converted = pa.samples_per_pixel == 3
                && !matches!(uid, "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81");
            let pi = if colour_converted { "RGB".to_string() } else { pa.photometric.clone() };
            Ok((decoded, pi))
        }
    }
}

/// A JPEG 2000 codestream among `fragments` whose image holds more samples than one frame of
/// the header: SIZ marker (ISO/IEC 15444-1 A.5.1) Xsiz − XOsiz by Ysiz − YOsiz, Csiz
/// components. SOC and SIZ open every codestream (A.5), so only each fragment's first 4 KiB
/// (room for JP2 boxes before the codestream) is searched.
fn j2k_larger_than_frame(fragments: &[Vec<u8>], pa: &PixelAttrs) -> Option<String> {
    let frame = pa.rows as u64 * pa.cols as u64 * pa.samples_per_pixel as u64;
    for frag in fragments {
        let head = &frag[..frag.len().min(4096)];
        let Some(at) = head.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) else {
            continue;
        };
        // Lsiz, Rsiz (2 bytes each), eight 4-byte sizes and offsets, Csiz (2 bytes).
        let Some(siz) = frag.get(at + 4..at + 4 + 38) else {
            continue;
        };
        let be = |i: usize| u64::from(u32::from_be_bytes([siz[i], siz[i + 1], siz[i + 2], siz[i + 3]]));
        let (width, height) = (be(4).saturating_sub(be(12)), be(8).saturating_sub(be(16)));
        let components = u64::from(u16::from_be_bytes([siz[36], siz[37]]));
        let samples = width.saturating_mul(height).saturating_mul(components);
        if samples > frame {
            return Some(format!(
                "JPEG 2000 codestream declares {width}×{height} pixels × {components} components, more than Rows × Columns × Samples per Pixel = {frame}"
            ));
        }
    }
    None
}

/// Decodes one JPEG frame and appends it as Bits Allocated containers. 12-bit DCT codestreams,
/// which jpeg-decoder does not implement, go to our own sequential DCT decoder.
fn decode_jpeg_into(frame: &[u8], pa: &PixelAttrs, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let start = out.len();
    let mut tmp = Vec::new();
    let ybr = pa.photometric.starts_with("YBR");
    let (w, h, comps, bits) = match encapsulated::decode_jpeg_frame(frame, ybr, &mut tmp) {
        Ok(info) => (info.width, info.height, info.components, info.bits),
        Err(encapsulated::JpegError::Unsupported(what)) => {
            let d = crate::codec::jpeg_dct::decode(frame)
                .map_err(|e| format!("{e} (jpeg-decoder: unsupported {what})"))?;
            if d.components == 3 && ybr {
                return Err("12-bit colour JPEG with YBR components is not supported".into());
            }
            tmp.clear();
            tmp.extend(d.samples.iter().flat_map(|v| v.to_le_bytes()));
            (d.width as usize, d.height as usize, d.components as usize, 16)
        }
        Err(encapsulated::JpegError::Corrupt(e)) => return Err(e),
    };
    if w != pa.cols || h != pa.rows || comps != pa.samples_per_pixel {
        return Err(format!(
            "codestream is {w}x{h} with {comps} component(s), the data set says {}x{} with {}",
            pa.cols, pa.rows, pa.samples_per_pixel
        ));
    }
    match (bits, pa.bits_allocated) {
        (8, 8) | (16, 16) => out.extend_from_slice(&tmp),
        (8, 16) => out.extend(tmp.iter().flat_map(|&b| [b, 0])),
        (16, 8) => out.extend(tmp.chunks_exact(2).map(|c| c[0])),
        (b, a) => return Err(format!("{b}-bit samples cannot fill {a}-bit containers")),
    }
    debug_assert!(out.len() > start);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lut::Rescale;

    fn attrs(bits_stored: u32, high_bit: u32, signed: bool) -> PixelAttrs {
        PixelAttrs {
            rows: 1,
            cols: 1,
            frames: 1,
            samples_per_pixel: 1,
            bits_allocated: 16,
            bits_stored,
            high_bit,
            signed,
            photometric: "MONOCHROME2".into(),
            planar: false,
            float_bits: None,
        }
    }

    #[test]
    fn sixteen_bit_frames_match_the_sample_path() {
        // Every container word, so every sign, mask and shift case is met.
        let raw: Vec<u8> = (0..=u16::MAX).flat_map(|w| w.to_le_bytes()).collect();
        let n = raw.len() / 2;
        for (bs, hb, signed) in [(16, 15, true), (16, 15, false), (12, 11, true), (12, 11, false), (12, 13, true), (1, 0, true)] {
            let st = StoredSamples::new(&attrs(bs, hb, signed));
            for rescale in [None, Some(Rescale { slope: 1.0, intercept: -1024.0 }), Some(Rescale { slope: 0.37, intercept: 3.1 })] {
                let mut got = vec![0f32; n];
                st.frame16(&raw, rescale, &mut got);
                for (i, g) in got.iter().enumerate() {
                    let v = st.get(&raw, i);
                    let want = match rescale {
                        Some(r) => (r.slope * v as f64 + r.intercept) as f32,
                        None => v as f32,
                    };
                    assert_eq!(g.to_bits(), want.to_bits(), "bs {bs} hb {hb} signed {signed} word {i}: {g} vs {want}");
                }
            }
        }
    }
}
