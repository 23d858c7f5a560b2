//! JPEG-LS frame headers (ITU-T T.87 | ISO/IEC 14495-1, Annex C), read before the decoder runs.
//!
//! The CharLS decoder behind dicom-pixeldata allocates the image its codestream declares
//! (lines × columns × components), not the one the DICOM header describes, so a codestream of
//! a few bytes could ask for gigabytes. PS3.5 8.2.3 requires the two to agree; every frame's
//! declared size is compared with Rows, Columns and Samples per Pixel before decoding, as
//! `pixels.rs` does for JPEG 2000 with the SIZ marker. Rows × Columns × Samples per Pixel is
//! already within the sample limit, so an agreeing frame is too.

use std::borrow::Cow;

use super::pixels::PixelAttrs;

/// Transfer syntaxes whose frames are JPEG-LS codestreams: lossless and near-lossless
/// (PS3.5 A.4.3).
pub const JPEG_LS_TRANSFER_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

/// What a JPEG-LS codestream declares about its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// P, sample precision in bits.
    pub precision: u8,
    /// Y, number of lines (from SOF55, else the oversize LSE segment, else DNL).
    pub lines: u32,
    /// X, number of columns (from SOF55, else the oversize LSE segment).
    pub columns: u32,
    /// Nf, number of components.
    pub components: u8,
}

// Marker codes, the byte after 0xFF (T.87 Table C.1; T.81 Table B.1 for the shared ones).
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DNL: u8 = 0xDC;
const SOF55: u8 = 0xF7;
const LSE: u8 = 0xF8;
/// LSE parameter ID 4: oversize image dimension (T.87 C.2.4.1.4).
const LSE_OVERSIZE: u8 = 4;

/// Refuses a JPEG-LS frame among `fragments` whose codestream declares another size or number
/// of components than the data set (`pa`), naming the frame and both sizes. Does nothing for
/// other transfer syntaxes.
pub fn check_frames(uid: &str, fragments: &[Vec<u8>], pa: &PixelAttrs) -> Result<(), String> {
    if !JPEG_LS_TRANSFER_SYNTAXES.contains(&uid) {
        return Ok(());
    }
    let frames = codestreams(fragments);
    if frames.is_empty() {
        return Err("no JPEG-LS codestream: no fragment starts with an SOI marker (FFD8)".into());
    }
    for (k, data) in frames.iter().enumerate() {
        let h = read_frame_header(data).map_err(|e| format!("JPEG-LS frame {k}: {e}"))?;
        if (h.lines as usize, h.columns as usize, h.components as usize) != (pa.rows, pa.cols, pa.samples_per_pixel) {
            return Err(format!(
                "JPEG-LS frame {k} declares {} columns × {} lines × {} components, the data set Columns × Rows × Samples per Pixel = {} × {} × {}",
                h.columns, h.lines, h.components, pa.cols, pa.rows, pa.samples_per_pixel
            ));
        }
    }
    Ok(())
}

/// The codestreams among `fragments`: each starts at a fragment that opens with SOI, and runs
/// over the following fragments that do not. Inside JPEG-LS scan data 0xFF is always followed
/// by a byte below 0x80 (T.87 A.1), so a continuation fragment cannot pass for a start.
fn codestreams(fragments: &[Vec<u8>]) -> Vec<Cow<'_, [u8]>> {
    let mut groups: Vec<Vec<&[u8]>> = Vec::new();
    for f in fragments {
        if starts_with_soi(f) {
            groups.push(vec![f.as_slice()]);
        } else if let Some(g) = groups.last_mut() {
            g.push(f.as_slice());
        }
    }
    groups
        .into_iter()
        .map(|g| if g.len() == 1 { Cow::Borrowed(g[0]) } else { Cow::Owned(g.concat()) })
        .collect()
}

/// 0xFF, optional 0xFF fill bytes (T.81 B.1.1.2), then the SOI code.
fn starts_with_soi(data: &[u8]) -> bool {
    let fill = data.iter().take_while(|&&b| b == 0xFF).count();
    fill >= 1 && data.get(fill) == Some(&SOI)
}

/// Reads the frame header of the codestream `data`: SOI, then marker segments (SOF55, LSE,
/// DRI, COM, APPn…) up to the first SOS. A line count of 0 in SOF55 means a DNL segment
/// after the first scan gives it (T.87 C.2.2, C.2.6); it is looked for as the decoder does.
pub fn read_frame_header(data: &[u8]) -> Result<FrameHeader, String> {
    let mut r = Reader { data, at: 0 };
    if r.marker()? != SOI {
        return Err("does not start with an SOI marker (FFD8)".into());
    }
    let mut sof: Option<(u8, u8)> = None; // (P, Nf)
    let (mut lines, mut columns) = (0u32, 0u32);
    // A dimension is given once: in SOF55, or (when SOF55 says 0) in an oversize LSE segment.
    fn set(slot: &mut u32, v: u32, what: &str) -> Result<(), String> {
        match (*slot, v) {
            (_, 0) => Ok(()),
            (0, v) => {
                *slot = v;
                Ok(())
            }
            _ => Err(format!("{what} given twice (SOF55 and LSE oversize dimension)")),
        }
    }
    loop {
        let code = r.marker()?;
        match code {
            SOI | EOI => return Err(format!("marker FF{code:02X} before the first scan")),
            SOS => {
                r.segment()?;
                break;
            }
            SOF55 => {
                if sof.is_some() {
                    return Err("two SOF55 frame headers".into());
                }
                let s = r.segment()?;
                // P (1), Y (2), X (2), Nf (1), then 3 bytes per component (T.87 C.2.2).
                let [p, y0, y1, x0, x1, nf, ..] = *s else {
                    return Err(format!("SOF55 segment of {} bytes, at least 6 needed", s.len()));
                };
                if s.len() != 6 + 3 * nf as usize {
                    return Err(format!("SOF55 segment of {} bytes for {nf} components", s.len()));
                }
                set(&mut lines, u32::from(u16::from_be_bytes([y0, y1])), "number of lines")?;
                set(&mut columns, u32::from(u16::from_be_bytes([x0, x1])), "number of columns")?;
                sof = Some((p, nf));
            }
            LSE => {
                let s = r.segment()?;
                if s.first() == Some(&LSE_OVERSIZE) {
                    // ID, Wxy (bytes per dimension: 2, 3 or 4), Y, X (T.87 C.2.4.1.4).
                    let w = *s.get(1).ok_or("LSE oversize dimension segment without Wxy")? as usize;
                    if !(2..=4).contains(&w) || s.len() != 2 + 2 * w {
                        return Err(format!("LSE oversize dimension segment of {} bytes with Wxy = {w}", s.len()));
                    }
                    set(&mut lines, be(&s[2..2 + w]), "number of lines")?;
                    set(&mut columns, be(&s[2 + w..2 + 2 * w]), "number of columns")?;
                }
            }
            _ => {
                r.segment()?;
            }
        }
    }
    let (precision, components) = sof.ok_or("no SOF55 frame header before the first scan")?;
    if lines == 0 {
        lines = dnl_lines(&data[r.at..])?;
    }
    if columns == 0 {
        return Err("declares 0 columns".into());
    }
    Ok(FrameHeader {
        precision,
        lines,
        columns,
        components,
    })
}

/// The number of lines of a DNL segment ending the first scan of `scan` (scan data onwards):
/// the first marker there (0xFF then a byte of 0x80 or more, T.87 A.1) must be DNL, whose NL
/// takes 2, 3 or 4 bytes (T.87 C.2.6).
fn dnl_lines(scan: &[u8]) -> Result<u32, String> {
    let missing = || "declares 0 lines and no DNL segment follows the first scan".to_string();
    let at = scan
        .windows(2)
        .position(|w| w[0] == 0xFF && w[1] >= 0x80 && w[1] != 0xFF)
        .ok_or_else(missing)?;
    if scan[at + 1] != DNL {
        return Err(missing());
    }
    let mut r = Reader { data: scan, at: at + 2 };
    let s = r.segment()?;
    if !(2..=4).contains(&s.len()) {
        return Err(format!("DNL segment of {} bytes", s.len()));
    }
    match be(s) {
        0 => Err("DNL segment gives 0 lines".into()),
        n => Ok(n),
    }
}

/// Big-endian unsigned value of 1 to 4 bytes.
fn be(b: &[u8]) -> u32 {
    b.iter().fold(0, |v, &x| (v << 8) | u32::from(x))
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next marker's code, past 0xFF fill bytes.
    fn marker(&mut self) -> Result<u8, String> {
        if self.data.get(self.at) != Some(&0xFF) {
            return Err(match self.data.get(self.at) {
                None => format!("ends after {} bytes, before the first scan", self.data.len()),
                Some(b) => format!("byte {b:#04X} at offset {} where a marker should start", self.at),
            });
        }
        while self.data.get(self.at) == Some(&0xFF) {
            self.at += 1;
        }
        let code = *self.data.get(self.at).ok_or("ends inside a marker")?;
        self.at += 1;
        Ok(code)
    }

    /// The parameters of a marker segment: a 2-byte length that counts itself, then the rest.
    fn segment(&mut self) -> Result<&'a [u8], String> {
        let len = self
            .data
            .get(self.at..self.at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or("ends inside a segment length")?;
        if len < 2 {
            return Err(format!("segment length {len} at offset {}", self.at));
        }
        let body = self
            .data
            .get(self.at + 2..self.at + len)
            .ok_or_else(|| format!("segment of {len} bytes at offset {} runs past the end ({} bytes)", self.at, self.data.len()))?;
        self.at += len;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker segment: FF, code, 2-byte length counting itself, parameters.
    fn seg(code: u8, params: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, code];
        v.extend(((params.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(params);
        v
    }

    /// SOF55 for P bits, Y lines, X columns, Nf components (ids 1.., Hi/Vi 0x11, Tq 0).
    fn sof55(p: u8, y: u16, x: u16, nf: u8) -> Vec<u8> {
        let mut params = vec![p];
        params.extend(y.to_be_bytes());
        params.extend(x.to_be_bytes());
        params.push(nf);
        for c in 1..=nf {
            params.extend([c, 0x11, 0]);
        }
        seg(SOF55, &params)
    }

    /// SOS for one component, NEAR 0, ILV 0, then two bytes of scan data (FF 7F is stuffed
    /// data, not a marker, T.87 A.1).
    fn sos_and_scan() -> Vec<u8> {
        let mut v = seg(SOS, &[1, 1, 0, 0, 0, 0]);
        v.extend([0x12, 0xFF, 0x7F, 0x34]);
        v
    }

    fn stream(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![0xFF, SOI];
        for p in parts {
            v.extend(p);
        }
        v.extend([0xFF, EOI]);
        v
    }

    fn attrs(rows: usize, cols: usize, spp: usize, frames: usize) -> PixelAttrs {
        PixelAttrs {
            rows,
            cols,
            frames,
            samples_per_pixel: spp,
            bits_allocated: 16,
            bits_stored: 12,
            high_bit: 11,
            signed: false,
            photometric: if spp == 3 { "RGB" } else { "MONOCHROME2" }.into(),
            planar: false,
            float_bits: None,
        }
    }

    #[test]
    fn reads_sof55_past_other_segments_and_fill_bytes() {
        let mut s = stream(&[seg(0xE0, b"JFIF\0"), seg(0xFE, b"comment"), sof55(12, 512, 384, 3), sos_and_scan()]);
        // Fill bytes before the SOF55 marker (T.81 B.1.1.2).
        let at = s.windows(2).position(|w| w == [0xFF, SOF55]).unwrap();
        s.splice(at..at, [0xFF, 0xFF]);
        let h = read_frame_header(&s).unwrap();
        assert_eq!(h, FrameHeader { precision: 12, lines: 512, columns: 384, components: 3 });
    }

    #[test]
    fn oversize_dimensions_come_from_the_lse_segment() {
        // Y = X = 0 in SOF55; LSE ID 4 with Wxy = 3: 70000 lines, 65536 columns.
        let lse = seg(LSE, &[LSE_OVERSIZE, 3, 0x01, 0x11, 0x70, 0x01, 0x00, 0x00]);
        let h = read_frame_header(&stream(&[sof55(8, 0, 0, 1), lse, sos_and_scan()])).unwrap();
        assert_eq!((h.lines, h.columns), (70000, 65536));
        // Given in both places, as CharLS refuses it.
        let lse = seg(LSE, &[LSE_OVERSIZE, 2, 0, 4, 0, 4]);
        let e = read_frame_header(&stream(&[sof55(8, 4, 4, 1), lse, sos_and_scan()])).unwrap_err();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn zero_lines_are_read_from_the_dnl_after_the_scan() {
        let mut s = stream(&[sof55(8, 0, 16, 1), sos_and_scan()]);
        let eoi = s.len() - 2;
        s.splice(eoi..eoi, seg(DNL, &[0, 0, 0x01, 0x00])); // NL in 4 bytes: 256 lines
        assert_eq!(read_frame_header(&s).unwrap().lines, 256);
        let e = read_frame_header(&stream(&[sof55(8, 0, 16, 1), sos_and_scan()])).unwrap_err();
        assert!(e.contains("0 lines and no DNL"), "{e}");
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let good = stream(&[sof55(8, 4, 4, 1), sos_and_scan()]);
        // Every truncation of the header, and a few corruptions, end in an error.
        let sos_at = good.windows(2).position(|w| w == [0xFF, SOS]).unwrap();
        for n in 0..sos_at + 4 {
            assert!(read_frame_header(&good[..n]).is_err(), "truncated to {n} bytes");
        }
        let e = read_frame_header(&stream(&[sos_and_scan()])).unwrap_err();
        assert!(e.contains("no SOF55"), "{e}");
        let e = read_frame_header(&stream(&[seg(SOF55, &[8, 0, 4]), sos_and_scan()])).unwrap_err();
        assert!(e.contains("at least 6"), "{e}");
        let e = read_frame_header(&stream(&[sof55(8, 4, 4, 1), sof55(8, 4, 4, 1), sos_and_scan()])).unwrap_err();
        assert!(e.contains("two SOF55"), "{e}");
        let e = read_frame_header(&[0xFF, SOI, 0xFF, 0xFE, 0x00, 0x01]).unwrap_err();
        assert!(e.contains("segment length 1"), "{e}");
        let e = read_frame_header(&stream(&[sof55(8, 4, 0, 1), sos_and_scan()])).unwrap_err();
        assert!(e.contains("0 columns"), "{e}");
    }

    #[test]
    fn every_single_byte_corruption_returns_without_panicking() {
        // Each byte of three headers (plain, oversize LSE, DNL) set to values that matter to
        // the reader: 0, 0xFF (marker / fill), marker codes, lengths at the edges.
        let mut dnl = stream(&[sof55(8, 0, 16, 1), sos_and_scan()]);
        let eoi = dnl.len() - 2;
        dnl.splice(eoi..eoi, seg(DNL, &[0, 0x20]));
        let lse = seg(LSE, &[LSE_OVERSIZE, 2, 0, 4, 0, 4]);
        let streams = [stream(&[sof55(12, 4, 3, 3), sos_and_scan()]), stream(&[sof55(8, 0, 0, 1), lse, sos_and_scan()]), dnl];
        let pa = attrs(4, 3, 1, 1);
        let mut outcomes = [0usize; 2];
        for s in &streams {
            for i in 0..s.len() {
                for v in [0x00, 0x01, 0x02, 0x04, 0x7F, 0x80, SOI, EOI, SOS, DNL, SOF55, LSE, 0xFE, 0xFF] {
                    let mut m = s.clone();
                    m[i] = v;
                    outcomes[read_frame_header(&m).is_ok() as usize] += 1;
                    let _ = check_frames(JPEG_LS_TRANSFER_SYNTAXES[0], &[m], &pa);
                }
            }
        }
        // Both outcomes occur: the corruptions reach past the first checks.
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }

    #[test]
    fn frames_that_disagree_with_the_data_set_are_refused() {
        let lossless = JPEG_LS_TRANSFER_SYNTAXES[0];
        let frame = |y, x, nf| stream(&[sof55(12, y, x, nf), sos_and_scan()]);
        assert_eq!(check_frames(lossless, &[frame(4, 3, 1)], &attrs(4, 3, 1, 1)), Ok(()));
        let e = check_frames(lossless, &[frame(65535, 65535, 1)], &attrs(4, 3, 1, 1)).unwrap_err();
        assert_eq!(e, "JPEG-LS frame 0 declares 65535 columns × 65535 lines × 1 components, the data set Columns × Rows × Samples per Pixel = 3 × 4 × 1");
        let e = check_frames(lossless, &[frame(4, 3, 3)], &attrs(4, 3, 1, 1)).unwrap_err();
        assert!(e.contains("× 3 components"), "{e}");
        // Rows and Columns swapped is a disagreement too.
        assert!(check_frames(JPEG_LS_TRANSFER_SYNTAXES[1], &[frame(3, 4, 1)], &attrs(4, 3, 1, 1)).is_err());
        // Other transfer syntaxes are not this check's business.
        assert_eq!(check_frames("1.2.840.10008.1.2.4.90", &[frame(9, 9, 1)], &attrs(4, 3, 1, 1)), Ok(()));
        let e = check_frames(lossless, &[vec![0, 1, 2, 3]], &attrs(4, 3, 1, 1)).unwrap_err();
        assert!(e.contains("no JPEG-LS codestream"), "{e}");
    }

    #[test]
    fn every_frame_is_checked_and_split_codestreams_are_joined() {
        let lossless = JPEG_LS_TRANSFER_SYNTAXES[0];
        let good = stream(&[sof55(8, 2, 2, 1), sos_and_scan()]);
        let bad = stream(&[sof55(8, 2, 300, 1), sos_and_scan()]);
        let e = check_frames(lossless, &[good.clone(), good.clone(), bad.clone()], &attrs(2, 2, 1, 3)).unwrap_err();
        assert!(e.starts_with("JPEG-LS frame 2 declares 300 columns"), "{e}");
        // A codestream cut into fragments mid-header is read whole; the pieces after the first
        // do not start with SOI, so they are not taken for frames.
        let (a, b) = bad.split_at(7);
        let e = check_frames(lossless, &[good.clone(), a.to_vec(), b.to_vec()], &attrs(2, 2, 1, 2)).unwrap_err();
        assert!(e.starts_with("JPEG-LS frame 1 declares 300 columns"), "{e}");
        let (a, b) = good.split_at(5);
        assert_eq!(check_frames(lossless, &[a.to_vec(), b.to_vec()], &attrs(2, 2, 1, 1)), Ok(()));
    }
}
