//! Colour models of PS3.3 C.7.6.3.1.2 converted to RGB, and Palette Color LUTs (C.7.6.3.1.5,
//! C.7.9: normal and segmented tables, 8- and 16-bit entries).

use dicom_core::Tag;
use dicom_dictionary_std::tags;

use super::attrs::{ints, words, Ds};

/// YBR_FULL → RGB (PS3.3 C.7.6.3.1.2, the JFIF/CCIR 601 full-range equations), for samples of
/// `bits` bits: the chroma offset is half the range (128 for 8-bit).
#[inline]
pub fn ybr_full_to_rgb(y: f64, cb: f64, cr: f64, bits: u32) -> [f64; 3] {
    let half = (1u64 << (bits - 1)) as f64;
    let max = ((1u64 << bits) - 1) as f64;
    let r = y + 1.402 * (cr - half);
    let g = y - 0.344136 * (cb - half) - 0.714136 * (cr - half);
    let b = y + 1.772 * (cb - half);
    [r.clamp(0.0, max), g.clamp(0.0, max), b.clamp(0.0, max)]
}

/// YBR_PARTIAL_* → RGB (CCIR 601 studio range: Y in 16..235, Cb/Cr in 16..240 for 8-bit).
#[inline]
pub fn ybr_partial_to_rgb(y: f64, cb: f64, cr: f64, bits: u32) -> [f64; 3] {
    let scale = (1u64 << (bits - 8)) as f64;
    let max = ((1u64 << bits) - 1) as f64;
    let (y, cb, cr) = (y / scale - 16.0, cb / scale - 128.0, cr / scale - 128.0);
    let r = 1.164383 * y + 1.596027 * cr;
    let g = 1.164383 * y - 0.391762 * cb - 0.812968 * cr;
    let b = 1.164383 * y + 2.017232 * cb;
    [
        (r * scale).clamp(0.0, max),
        (g * scale).clamp(0.0, max),
        (b * scale).clamp(0.0, max),
    ]
}

/// One channel of a Palette Color LUT, expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct PaletteChannel {
    pub first_mapped: i64,
    pub bits: u8,
    pub entries: Vec<u16>,
}

/// The three channels of a Palette Color LUT.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    pub channels: [PaletteChannel; 3],
}

impl Palette {
    /// Largest value an entry can take (for scaling to [0, 1] in the display stage).
    pub fn max_output(&self) -> f64 {
        ((1u32 << self.channels[0].bits) - 1) as f64
    }

    #[inline]
    pub fn lookup(&self, stored: i64) -> [f32; 3] {
        let mut out = [0f32; 3];
        for (c, ch) in self.channels.iter().enumerate() {
            let idx = (stored - ch.first_mapped).clamp(0, ch.entries.len() as i64 - 1) as usize;
            out[c] = ch.entries[idx] as f32;
        }
        out
    }
}

const DESCRIPTORS: [Tag; 3] = [
    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
];
const DATA: [Tag; 3] = [
    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
];
const SEGMENTED: [Tag; 3] = [
    tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
];

/// Reads the palette of a PALETTE COLOR image. `signed`: Pixel Representation 1, which makes
/// the descriptor's first mapped value signed (PS3.3 C.7.6.3.1.5).
pub fn read_palette(ds: &Ds, signed: bool) -> Result<Palette, String> {
    let mut chans = Vec::with_capacity(3);
    for c in 0..3 {
        let desc = ints(ds, DESCRIPTORS[c])
            .filter(|d| d.len() == 3)
            .ok_or_else(|| format!("Palette Color LUT Descriptor ({}) missing or not 3 values", DESCRIPTORS[c]))?;
        let n = match desc[0] as u16 {
            0 => 65536usize,
            n => n as usize,
        };
        let first = if signed {
            desc[1] as u16 as i16 as i64
        } else {
            desc[1] as u16 as i64
        };
        let bits = desc[2] as u8;
        if bits != 8 && bits != 16 {
            return Err(format!("Palette Color LUT bits per entry {bits}, expected 8 or 16"));
        }
        let mut entries = if let Some(seg) = words(ds, SEGMENTED[c]) {
            expand_segmented(&seg, n)?
        } else {
            let raw = ds
                .element_opt(DATA[c])
                .ok()
                .flatten()
                .ok_or_else(|| format!("Palette Color LUT Data ({}) missing", DATA[c]))?;
            let bytes = raw.to_bytes().map_err(|e| e.to_string())?;
            if bits == 8 && bytes.len() >= n && bytes.len() < 2 * n {
                // 8-bit entries packed one per byte (allowed for OB-encoded data).
                bytes[..n].iter().map(|&b| b as u16).collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|w| u16::from_le_bytes([w[0], w[1]]))
                    .collect()
            }
        };
        if entries.len() < n {
            return Err(format!(
                "Palette Color LUT Data has {} entries, descriptor declares {n}",
                entries.len()
            ));
        }
        entries.truncate(n);
        chans.push(PaletteChannel {
            first_mapped: first,
            bits,
            entries,
        });
    }
    let [r, g, b]: [PaletteChannel; 3] = chans.try_into().map_err(|_| "palette channels")?;
    Ok(Palette {
        channels: [r, g, b],
    })
}

/// Expands Segmented Palette Color LUT Data (PS3.3 C.7.9.2): discrete (opcode 0), linear (1)
/// and indirect (2) segments. `n` bounds the output so a hostile table cannot grow it without
/// limit.
pub fn expand_segmented(data: &[u16], n: usize) -> Result<Vec<u16>, String> {
    let mut out: Vec<u16> = Vec::with_capacity(n);
    // Start offsets (in words) of each segment in `data`, for indirect references.
    let mut segment_starts = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() && out.len() < n {
        segment_starts.push(pos);
        expand_one(data, &mut pos, &mut out, n, &segment_starts, 0)?;
    }
    Ok(out)
}

fn expand_one(
    data: &[u16],
    pos: &mut usize,
    out: &mut Vec<u16>,
    n: usize,
    segment_starts: &[usize],
    depth: u32,
) -> Result<(), String> {
    let word = |i: usize| data.get(i).copied().ok_or("segmented LUT data ends inside a segment");
    let opcode = word(*pos)?;
    let len = word(*pos + 1)? as usize;
    match opcode {
        0 => {
            for i in 0..len {
                if out.len() >= n {
                    break;
                }
                out.push(word(*pos + 2 + i)?);
            }
            *pos += 2 + len;
        }
        1 => {
            let y1 = word(*pos + 2)? as f64;
            let y0 = *out.last().ok_or("linear segment with no previous value")? as f64;
            for i in 1..=len {
                if out.len() >= n {
                    break;
                }
                out.push((y0 + (y1 - y0) * i as f64 / len as f64).round() as u16);
            }
            *pos += 3;
        }
        2 => {
            if depth > 0 {
                return Err("indirect segment refers to another indirect segment".into());
            }
            // Offset: least significant word first (PS3.3 C.7.9.2).
            let offset = word(*pos + 2)? as usize | (word(*pos + 3)? as usize) << 16;
            let mut p = offset;
            for _ in 0..len {
                if out.len() >= n || p >= data.len() {
                    break;
                }
                if !segment_starts.contains(&p) && p != 0 {
                    return Err(format!("indirect segment offset {p} is not a segment start"));
                }
                expand_one(data, &mut p, out, n, segment_starts, depth + 1)?;
            }
            *pos += 4;
        }
        op => return Err(format!("segmented LUT opcode {op} unknown")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ybr_full_grey_stays_grey_and_primaries_round_trip() {
        assert_eq!(ybr_full_to_rgb(100.0, 128.0, 128.0, 8), [100.0, 100.0, 100.0]);
        // Pure red in JFIF YCbCr: Y = 76.245, Cb = 84.972, Cr = 255.5 (clipped 255).
        let [r, g, b] = ybr_full_to_rgb(76.245, 84.972, 255.0, 8);
        assert!((r - 254.3).abs() < 1.0 && g < 1.5 && b < 1.0, "{r} {g} {b}");
    }

    #[test]
    fn segmented_lut_expands_all_three_opcodes() {
        // discrete [0, 10], linear to 40 over 3 entries, then indirect copy of segment 0.
        let data = [0, 2, 0, 10, 1, 3, 40, 2, 1, 0, 0];
        let lut = expand_segmented(&data, 100).unwrap();
        assert_eq!(lut, vec![0, 10, 20, 30, 40, 0, 10]);
        assert!(expand_segmented(&[7, 1, 0], 10).is_err());
        assert!(expand_segmented(&[1, 3, 40], 10).is_err());
    }
}
