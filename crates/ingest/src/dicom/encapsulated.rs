//! Encapsulated pixel data (PS3.5 A.4): splitting fragments into frames, and the decoders we
//! run ourselves — RLE Lossless (PS3.5 Annex G) for every bit depth, and JPEG (DCT) where the
//! DICOM Photometric Interpretation must decide the colour transform.

use dicom_core::value::PixelFragmentSequence;

/// Groups fragments into frames (PS3.5 A.4): one fragment per frame when the counts agree,
/// everything for a single frame, else the Basic Offset Table, else JPEG end-of-image markers.
pub fn frame_fragments(seq: &PixelFragmentSequence<Vec<u8>>, frames: usize) -> Result<Vec<Vec<u8>>, String> {
    let frags = seq.fragments();
    if frags.is_empty() {
        return Err("encapsulated Pixel Data has no fragments".into());
    }
    if frags.len() == frames {
        return Ok(frags.iter().map(|f| f.clone()).collect());
    }
    if frames == 1 {
        return Ok(vec![frags.concat()]);
    }
    let bot = seq.offset_table();
    if bot.len() == frames {
        // Offsets count from the first fragment's item tag; each item adds an 8-byte header.
        let mut starts = Vec::with_capacity(frags.len());
        let mut pos = 0u64;
        for f in frags {
            starts.push(pos);
            pos += 8 + f.len() as u64;
        }
        let mut out = Vec::with_capacity(frames);
        for (k, &off) in bot.iter().enumerate() {
            let end = bot.get(k + 1).map(|&e| e as u64).unwrap_or(u64::MAX);
            let first = starts
                .iter()
                .position(|&s| s == off as u64)
                .ok_or_else(|| format!("Basic Offset Table entry {off} is not at a fragment"))?;
            let frame: Vec<u8> = frags[first..]
                .iter()
                .zip(&starts[first..])
                .take_while(|(_, &s)| s < end)
                .flat_map(|(f, _)| f.iter().copied())
                .collect();
            out.push(frame);
        }
        return Ok(out);
    }
    // No usable offset table: a JPEG frame ends with the EOI marker FFD9.
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for f in frags {
        cur.extend_from_slice(f);
        let trimmed = match cur.last() {
            Some(0) => &cur[..cur.len() - 1], // fragments are padded to even length
            _ => &cur[..],
        };
        if trimmed.ends_with(&[0xFF, 0xD9]) {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if out.len() != frames {
        return Err(format!(
            "{} fragments could not be assigned to {frames} frames (no Basic Offset Table)",
            frags.len()
        ));
    }
    Ok(out)
}

/// Decodes one RLE Lossless frame (PS3.5 Annex G) into little-endian sample containers of
/// `bits_allocated` bits, pixel-interleaved (`samples` per pixel).
pub fn decode_rle_frame(
    frame: &[u8],
    pixels: usize,
    samples: usize,
    bits_allocated: u32,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if frame.len() < 64 {
        return Err(format!("RLE header needs 64 bytes, frame has {}", frame.len()));
    }
    let word = |i: usize| u32::from_le_bytes([frame[4 * i], frame[4 * i + 1], frame[4 * i + 2], frame[4 * i + 3]]);
    let n_segments = word(0) as usize;
    let bytes_per_sample = (bits_allocated as usize).div_ceil(8);
    // 1-bit data is RLE-encoded as packed bytes: one segment of ceil(pixels / 8) bytes.
    let (expected_segments, segment_len) = if bits_allocated == 1 {
        (samples, pixels.div_ceil(8))
    } else {
        (samples * bytes_per_sample, pixels)
    };
    if n_segments != expected_segments || n_segments > 15 {
        return Err(format!(
            "RLE header declares {n_segments} segments, {expected_segments} expected for {samples} sample(s) of {bits_allocated} bits"
        ));
    }
    let offsets: Vec<usize> = (1..=n_segments).map(|i| word(i) as usize).collect();
    let start = out.len();
    let frame_bytes = if bits_allocated == 1 { segment_len * samples } else { pixels * samples * bytes_per_sample };
    out.resize(start + frame_bytes, 0);
    let dst = &mut out[start..];
    let mut segment = Vec::with_capacity(segment_len);
    for (s, &off) in offsets.iter().enumerate() {
        let end = offsets.get(s + 1).copied().unwrap_or(frame.len()).min(frame.len());
        if off < 64 || off > end {
            return Err(format!("RLE segment {s} offset {off} is outside the frame"));
        }
        segment.clear();
        unpack_bits(&frame[off..end], segment_len, &mut segment);
        if segment.len() < segment_len {
            return Err(format!(
                "RLE segment {s} decodes to {} bytes, {segment_len} expected",
                segment.len()
            ));
        }
        if bits_allocated == 1 {
            dst[s * segment_len..(s + 1) * segment_len].copy_from_slice(&segment[..segment_len]);
            continue;
        }
        // Segments run from the most significant byte of sample 0 to the least significant
        // byte of the last sample (PS3.5 G.2); containers are written little endian.
        let sample = s / bytes_per_sample;
        let byte_in_le = bytes_per_sample - 1 - (s % bytes_per_sample);
        for p in 0..pixels {
            dst[(p * samples + sample) * bytes_per_sample + byte_in_le] = segment[p];
        }
    }
    Ok(())
}

/// PackBits (PS3.5 G.3.1): n in 0..=127 copies n+1 literal bytes, n in -127..=-1 repeats the
/// next byte 1-n times, -128 is a no-op. Stops at `limit` output bytes.
fn unpack_bits(src: &[u8], limit: usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() && out.len() < limit {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let count = n as usize + 1;
            let end = (i + count).min(src.len());
            out.extend_from_slice(&src[i..end]);
            i = end;
        } else if n != -128 {
            let count = 1 - n as isize;
            if let Some(&b) = src.get(i) {
                out.extend(std::iter::repeat_n(b, count as usize));
            }
            i += 1;
        }
    }
    out.truncate(limit);
}

/// Decodes one JPEG (DCT or lossless) frame with jpeg-decoder. The DICOM Photometric
/// Interpretation, not the JPEG markers, says what three components are (PS3.5 8.2.1):
/// `ybr` = true converts YCbCr to RGB (libjpeg's fixed-point BT.601 equations), false keeps
/// the components as RGB. Output is always RGB for three components.
/// Returns little-endian containers: 8-bit samples as bytes, 16-bit as u16 LE.
pub fn decode_jpeg_frame(frame: &[u8], ybr: bool, out: &mut Vec<u8>) -> Result<JpegFrameInfo, JpegError> {
    let mut dec = jpeg_decoder::Decoder::new(frame);
    dec.set_color_transform(if ybr {
        jpeg_decoder::ColorTransform::YCbCr
    } else {
        jpeg_decoder::ColorTransform::RGB
    });
    // jpeg-decoder has panicking paths on malformed input; a bad file must not take the
    // process (or the rest of a batch) down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let r = dec.decode();
        (r, dec.info())
    }))
    .map_err(|_| JpegError::Corrupt("the JPEG decoder failed on malformed data".into()))?;
    let (result, info) = decoded;
    let pixels = result.map_err(|e| match e {
        jpeg_decoder::Error::Unsupported(u) => JpegError::Unsupported(format!("{u:?}")),
        other => JpegError::Corrupt(other.to_string()),
    })?;
    let info = info.ok_or_else(|| JpegError::Corrupt("no frame header".into()))?;
    use jpeg_decoder::PixelFormat;
    let (components, bits): (usize, u32) = match info.pixel_format {
        PixelFormat::L8 => (1, 8),
        PixelFormat::L16 => (1, 16),
        PixelFormat::RGB24 => (3, 8),
        PixelFormat::CMYK32 => (4, 8),
    };
    // 16-bit samples come out in native (little) endian order.
    out.extend_from_slice(&pixels);
    Ok(JpegFrameInfo {
        width: info.width as usize,
        height: info.height as usize,
        components,
        bits,
    })
}

#[derive(Debug, Clone, Copy)]
pub struct JpegFrameInfo {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub bits: u32,
}

#[derive(Debug)]
pub enum JpegError {
    /// A feature of the codestream jpeg-decoder does not implement (e.g. 12-bit DCT).
    Unsupported(String),
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_literal_and_repeat_runs() {
        let mut out = Vec::new();
        // 2 literals (n = 1), then 0xAA x 3 (n = -2), a no-op (-128), then 1 literal.
        unpack_bits(&[1, 5, 6, 0xFE, 0xAA, 0x80, 0, 9], 100, &mut out);
        assert_eq!(out, vec![5, 6, 0xAA, 0xAA, 0xAA, 9]);
        let mut capped = Vec::new();
        unpack_bits(&[0x81, 1], 10, &mut capped); // -127: 128 copies, capped at 10
        assert_eq!(capped.len(), 10);
    }

    #[test]
    fn rle_16bit_two_segments_are_msb_then_lsb() {
        // One 16-bit sample per pixel, 3 pixels: 0x0102, 0x0304, 0x0506.
        let mut frame = vec![0u8; 64];
        frame[0] = 2;
        frame[4] = 64;
        frame[8] = 68;
        frame.extend_from_slice(&[2, 1, 3, 5]); // literal MSBs
        frame.extend_from_slice(&[2, 2, 4, 6]); // literal LSBs
        let mut out = Vec::new();
        decode_rle_frame(&frame, 3, 1, 16, &mut out).unwrap();
        assert_eq!(out, vec![2, 1, 4, 3, 6, 5]);
        assert!(decode_rle_frame(&frame[..40], 3, 1, 16, &mut Vec::new()).is_err());
    }
}
