//! Sequential-DCT JPEG decoder for 8- and 12-bit samples (ITU-T T.81 | ISO/IEC 10918-1,
//! processes 1, 2 and 4: baseline SOF0 and extended sequential Huffman SOF1).
//!
//! It exists because the `jpeg-decoder` crate behind dicom-pixeldata refuses 12-bit
//! samples, which DICOM uses for JPEG Extended (Transfer Syntax 1.2.840.10008.1.2.4.51).
//!
//! ```no_run
//! # fn main() -> Result<(), medvqa_ingest::codec::jpeg_dct::JpegDctError> {
//! let bytes = std::fs::read("frame.jpg").expect("read");
//! let image = medvqa_ingest::codec::jpeg_dct::decode(&bytes)?;
//! assert_eq!(image.samples.len(), image.width as usize * image.height as usize * image.components as usize);
//! # Ok(()) }
//! ```
//!
//! Choices, and how they compare with libjpeg(-turbo), the reference decoder:
//! - **IDCT**: separable double-precision IDCT (T.81 A.3.3) with round-half-up, level shift
//!   2^(P-1) and clamping to [0, 2^P-1]. libjpeg's default `JDCT_ISLOW` integer IDCT rounds
//!   differently in its intermediate pass, so samples may differ by ±1 from libjpeg.
//! - **Upsampling**: the same filters libjpeg-turbo applies by default
//!   (`do_fancy_upsampling`): the triangle filter for 2:1 horizontal (h2v1), 2:1 vertical
//!   (h1v2) and 2:1 both ways (h2v2) with libjpeg's edge replication and rounding bias;
//!   replication for other integral ratios and for components at most 2 samples wide
//!   (libjpeg's own fallback). Non-integral ratios (e.g. 3:2), which libjpeg refuses, are
//!   filled by nearest-neighbour (output x takes input floor(x·h/h_max)).
//! - **No colour conversion**: components come out as stored; the DICOM photometric
//!   interpretation decides what they mean.
//! - **Tolerated deviations**, as libjpeg tolerates them with a warning: a sequential scan
//!   whose Ss/Se/Ah/Al are not 0/63/0/0 (NEMA's `NM1_JPLY`, pydicom's `JPEG-lossy.dcm`, has
//!   Se = 0) is decoded as a full sequential scan; 12-bit precision in a SOF0 frame; garbage
//!   bytes before a marker; a missing EOI after complete scan data.
//! - **Refused**: truncated entropy-coded data (instead of libjpeg's zero-fill warning, so a
//!   truncated DICOM frame is reported, not silently grey), wrong or missing restart markers,
//!   invalid Huffman codes, AC run beyond coefficient 63, DNL-defined height, progressive,
//!   lossless, hierarchical and arithmetic-coded frames (named in the error).
//! - **Bounds**: width × height × components above [`MAX_SAMPLES`] is refused before any
//!   sample buffer is allocated; component planes then grow one block row at a time as scan
//!   data is actually decoded, so a short input cannot make a large allocation.

use thiserror::Error;

/// Largest width × height × components accepted (2^27 samples = 256 MiB of `u16`): well
/// above a 4096 × 4096 RGB frame or a 5000 × 6000 mammogram, far below what would hurt.
pub const MAX_SAMPLES: u64 = 1 << 27;

/// A decoded JPEG frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedJpeg {
    /// Samples per line (X in the frame header).
    pub width: u16,
    /// Number of lines (Y in the frame header).
    pub height: u16,
    /// Number of image components (Nf), 1 to 4.
    pub components: u8,
    /// Sample precision P in bits: 8 or 12.
    pub precision: u8,
    /// Interleaved samples, row-major, components last (`[height, width, components]`),
    /// after upsampling any subsampled component to full resolution (no colour conversion).
    pub samples: Vec<u16>,
}

/// Why a codestream could not be decoded; each variant names the marker or segment and the
/// byte offset in the codestream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JpegDctError {
    /// The data does not start with the SOI marker.
    #[error("not a JPEG codestream: expected SOI marker FFD8 at offset 0")]
    MissingSoi,
    /// A marker segment is cut short by the end of the data.
    #[error("{marker} segment at offset {offset} is truncated: {reason}")]
    TruncatedSegment {
        marker: &'static str,
        offset: usize,
        reason: String,
    },
    /// A marker segment has a value the standard does not allow.
    #[error("invalid {marker} segment at offset {offset}: {reason}")]
    InvalidSegment {
        marker: &'static str,
        offset: usize,
        reason: String,
    },
    /// A frame type other than SOF0/SOF1.
    #[error(
        "unsupported JPEG frame type {marker} ({process}) at offset {offset}: this decoder \
         handles SOF0 (baseline) and SOF1 (extended sequential, Huffman) only"
    )]
    UnsupportedFrame {
        marker: &'static str,
        process: &'static str,
        offset: usize,
    },
    /// A marker that this decoder cannot honour (e.g. DNL, DAC) or that is out of place.
    #[error(
        "unexpected or unsupported marker {marker} (FF{code:02X}) at offset {offset}: {reason}"
    )]
    UnexpectedMarker {
        marker: &'static str,
        code: u8,
        offset: usize,
        reason: &'static str,
    },
    /// The frame declares more samples than [`MAX_SAMPLES`].
    #[error("SOF frame {width}x{height}x{components} has more samples than the limit of {limit}")]
    TooLarge {
        width: u16,
        height: u16,
        components: u8,
        limit: u64,
    },
    /// The entropy-coded data ended (end of data or a marker) before all MCUs were decoded.
    #[error(
        "scan (SOS at offset {sos_offset}) entropy-coded data is truncated: ran out of data \
         at offset {offset} while decoding MCU {mcu} of {total}"
    )]
    TruncatedScan {
        sos_offset: usize,
        offset: usize,
        mcu: u64,
        total: u64,
    },
    /// The entropy-coded data is not decodable.
    #[error("scan (SOS at offset {sos_offset}) has corrupt entropy-coded data near offset {offset}: {reason}")]
    CorruptScan {
        sos_offset: usize,
        offset: usize,
        reason: &'static str,
    },
    /// The restart marker expected after a restart interval is missing or out of sequence.
    #[error("scan (SOS at offset {sos_offset}): expected RST{expected} at offset {offset}, found {found}")]
    BadRestart {
        sos_offset: usize,
        offset: usize,
        expected: u8,
        found: String,
    },
    /// The codestream ended before a frame and all its scans were seen.
    #[error("codestream ends at offset {offset} before {missing}")]
    Incomplete { offset: usize, missing: String },
}

type Result<T> = std::result::Result<T, JpegDctError>;

/// Decodes a sequential-DCT JPEG codestream (SOI … EOI) of 8- or 12-bit precision.
///
/// Returns the stored components, upsampled to full resolution, interleaved as
/// `[height, width, components]`. See the module documentation for the exact behaviour.
pub fn decode(data: &[u8]) -> Result<DecodedJpeg> {
    Decoder::new(data).run()
}

/// Zig-zag index → natural (row-major) coefficient index (T.81 Figure A.6).
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Short name of a marker code, for error messages (T.81 Table B.1).
fn marker_name(code: u8) -> &'static str {
    match code {
        0xC0 => "SOF0",
        0xC1 => "SOF1",
        0xC2 => "SOF2",
        0xC3 => "SOF3",
        0xC4 => "DHT",
        0xC5 => "SOF5",
        0xC6 => "SOF6",
        0xC7 => "SOF7",
        0xC8 => "JPG",
        0xC9 => "SOF9",
        0xCA => "SOF10",
        0xCB => "SOF11",
        0xCC => "DAC",
        0xCD => "SOF13",
        0xCE => "SOF14",
        0xCF => "SOF15",
        0xD0..=0xD7 => "RSTn",
        0xD8 => "SOI",
        0xD9 => "EOI",
        0xDA => "SOS",
        0xDB => "DQT",
        0xDC => "DNL",
        0xDD => "DRI",
        0xDE => "DHP",
        0xDF => "EXP",
        0xE0..=0xEF => "APPn",
        0xF0..=0xFD => "JPGn",
        0xFE => "COM",
        0x01 => "TEM",
        _ => "reserved",
    }
}

/// The coding process of a frame marker other than SOF0/SOF1 (T.81 Table B.1).
fn unsupported_process(code: u8) -> Option<&'static str> {
    Some(match code {
        0xC2 => "progressive DCT, Huffman coding",
        0xC3 => "lossless, Huffman coding",
        0xC5 => "differential sequential DCT (hierarchical), Huffman coding",
        0xC6 => "differential progressive DCT (hierarchical), Huffman coding",
        0xC7 => "differential lossless (hierarchical), Huffman coding",
        0xC9 => "extended sequential DCT, arithmetic coding",
        0xCA => "progressive DCT, arithmetic coding",
        0xCB => "lossless, arithmetic coding",
        0xCD => "differential sequential DCT (hierarchical), arithmetic coding",
        0xCE => "differential progressive DCT (hierarchical), arithmetic coding",
        0xCF => "differential lossless (hierarchical), arithmetic coding",
        _ => return None,
    })
}

/// A Huffman table ready for decoding (T.81 Annex C and F.2.2.3).
#[derive(Debug, Clone)]
struct Huffman {
    /// Look-up on the next [`LUT_BITS`] bits: `(code length << 8) | symbol`, 0 when the code
    /// is longer than `LUT_BITS`.
    lut: Vec<u16>,
    /// Largest code of each length 1..=16, -1 when there is none (MAXCODE in F.2.2.3).
    maxcode: [i32; 17],
    /// Offset into `values` of the first code of each length minus that code (VALPTR −
    /// MINCODE in F.2.2.3).
    delta: [i32; 17],
    values: Vec<u8>,
}

const LUT_BITS: u32 = 9;

impl Huffman {
    /// Builds the table from the BITS counts and HUFFVAL symbols of a DHT segment (T.81
    /// C.2, Figures C.1–C.3). `None` when the counts describe an impossible code.
    fn new(counts: &[u8; 16], values: &[u8]) -> Option<Huffman> {
        let mut lut = vec![0u16; 1 << LUT_BITS];
        let mut maxcode = [-1i32; 17];
        let mut delta = [0i32; 17];
        let mut code: u32 = 0;
        let mut k: usize = 0;
        for len in 1..=16u32 {
            let n = usize::from(counts[(len - 1) as usize]);
            if n > 0 {
                // A code of `len` bits must fit in `len` bits (libjpeg's JERR_BAD_HUFF_TABLE).
                let last = code + n as u32 - 1;
                if last >= (1u32 << len) {
                    return None;
                }
                delta[len as usize] = k as i32 - code as i32;
                maxcode[len as usize] = last as i32;
                for i in 0..n {
                    let c = code + i as u32;
                    let sym = *values.get(k + i)?;
                    if len <= LUT_BITS {
                        let shift = LUT_BITS - len;
                        let start = (c << shift) as usize;
                        let end = ((c + 1) << shift) as usize;
                        for slot in lut.get_mut(start..end)? {
                            *slot = ((len as u16) << 8) | u16::from(sym);
                        }
                    }
                }
                k += n;
                code = last + 1;
            }
            code <<= 1;
        }
        Some(Huffman {
            lut,
            maxcode,
            delta,
            values: values.to_vec(),
        })
    }
}

/// Entropy-coded segment reader: removes stuffed zero bytes, stops at markers, and after
/// a marker or the end of data supplies zero bits while remembering that it did.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    /// Bits held in `buf` (left-aligned).
    nbits: u32,
    /// How many of the held bits came from the data (the rest are zero padding).
    real: u32,
    /// A marker or the end of data has been reached; `pos` is left at the marker.
    stopped: bool,
    /// A decode consumed padding bits: the scan data is truncated.
    overrun: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            buf: 0,
            nbits: 0,
            real: 0,
            stopped: false,
            overrun: false,
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        if self.stopped {
            return None;
        }
        let b = *self.data.get(self.pos)?;
        if b != 0xFF {
            self.pos += 1;
            return Some(b);
        }
        // 0xFF: skip fill bytes (T.81 B.1.1.2); FF 00 is a stuffed data byte (F.1.2.3),
        // anything else is a marker and ends the segment.
        let mut p = self.pos + 1;
        while self.data.get(p) == Some(&0xFF) {
            p += 1;
        }
        match self.data.get(p) {
            Some(0x00) => {
                self.pos = p + 1;
                Some(0xFF)
            }
            _ => None,
        }
    }

    fn fill(&mut self) {
        while self.nbits <= 56 {
            match self.next_byte() {
                Some(b) => {
                    self.buf |= u64::from(b) << (56 - self.nbits);
                    self.nbits += 8;
                    self.real += 8;
                }
                None => {
                    self.stopped = true;
                    // Zero padding, as libjpeg does; `real` tells us if we ever use it.
                    self.nbits += 8;
                }
            }
        }
    }

    fn peek(&mut self, n: u32) -> u32 {
        if self.nbits < n {
            self.fill();
        }
        (self.buf >> (64 - n)) as u32
    }

    fn consume(&mut self, n: u32) {
        if n > self.real {
            self.overrun = true;
        }
        self.real = self.real.saturating_sub(n);
        self.buf <<= n;
        self.nbits -= n;
    }

    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Decodes one Huffman symbol; `None` for a bit pattern that is no code of the table.
    fn decode(&mut self, table: &Huffman) -> Option<u8> {
        let look = self.peek(16);
        let entry = table.lut[(look >> (16 - LUT_BITS)) as usize];
        if entry != 0 {
            self.consume(u32::from(entry >> 8));
            return Some(entry as u8);
        }
        for len in (LUT_BITS + 1)..=16 {
            let code = (look >> (16 - len)) as i32;
            if code <= table.maxcode[len as usize] {
                self.consume(len);
                let idx = usize::try_from(code + table.delta[len as usize]).ok()?;
                return table.values.get(idx).copied();
            }
        }
        None
    }

    /// RECEIVE and EXTEND of T.81 F.2.2.1 / Figure F.12.
    fn receive_extend(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s) as i32;
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Drops the bits of the current restart interval and reads the marker that must
    /// follow. Returns the marker code (or `None` at end of data) and its offset.
    fn take_marker(&mut self) -> (Option<u8>, usize) {
        self.buf = 0;
        self.nbits = 0;
        self.real = 0;
        self.stopped = false;
        let (code, at, after) = find_marker(self.data, self.pos);
        self.pos = after;
        (code, at)
    }
}

/// Finds the next marker at or after `pos`, skipping any bytes before it (libjpeg skips
/// such garbage with a warning) and fill bytes. Returns (code, offset of its FF, offset
/// after the code); code `None` when the data ends first.
fn find_marker(data: &[u8], mut pos: usize) -> (Option<u8>, usize, usize) {
    loop {
        while pos < data.len() && data[pos] != 0xFF {
            pos += 1;
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        match data.get(pos) {
            None => return (None, data.len(), data.len()),
            Some(0x00) => pos += 1,
            Some(&c) => return (Some(c), pos - 1, pos + 1),
        }
    }
}

#[derive(Debug, Clone)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks per line of the MCU-padded plane.
    blocks_w: usize,
    /// Samples per line and lines of the component itself (T.81 A.1.1: ⌈X·H/Hmax⌉).
    width: usize,
    height: usize,
    /// Decoded samples, `blocks_w * 8` per line, grown one block row at a time.
    plane: Vec<u16>,
    /// Set once a scan has covered this component.
    scanned: bool,
}

impl Component {
    fn stride(&self) -> usize {
        self.blocks_w * 8
    }

    /// Makes sure block row `row` exists in the plane (zero-filled until decoded).
    fn ensure_block_row(&mut self, row: usize) {
        let needed = (row + 1) * 8 * self.stride();
        if self.plane.len() < needed {
            self.plane.resize(needed, 0);
        }
    }
}

#[derive(Debug, Clone)]
struct Frame {
    precision: u8,
    width: u16,
    height: u16,
    hmax: usize,
    vmax: usize,
    mcus_x: usize,
    mcus_y: usize,
    components: Vec<Component>,
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: u16,
    frame: Option<Frame>,
    idct: Idct,
}

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8]) -> Self {
        Decoder {
            data,
            pos: 0,
            quant: [None; 4],
            dc: [None, None, None, None],
            ac: [None, None, None, None],
            restart_interval: 0,
            frame: None,
            idct: Idct::new(),
        }
    }

    fn run(mut self) -> Result<DecodedJpeg> {
        if self.data.len() < 2 || self.data[0] != 0xFF || self.data[1] != 0xD8 {
            return Err(JpegDctError::MissingSoi);
        }
        self.pos = 2;
        loop {
            let (code, at, after) = find_marker(self.data, self.pos);
            let Some(code) = code else {
                return self.finish(at, false);
            };
            self.pos = after;
            match code {
                0xD9 => return self.finish(at, true),
                0xC0 | 0xC1 => {
                    let seg = self.segment(code, at)?;
                    self.read_sof(code, at, seg)?;
                }
                0xC4 => {
                    let seg = self.segment(code, at)?;
                    self.read_dht(at, seg)?;
                }
                0xDB => {
                    let seg = self.segment(code, at)?;
                    self.read_dqt(at, seg)?;
                }
                0xDD => {
                    let seg = self.segment(code, at)?;
                    if seg.len() != 2 {
                        return Err(invalid(
                            "DRI",
                            at,
                            format!("length {} instead of 4", seg.len() + 2),
                        ));
                    }
                    self.restart_interval = u16::from_be_bytes([seg[0], seg[1]]);
                }
                0xDA => {
                    let seg = self.segment(code, at)?;
                    self.read_scan(at, seg)?;
                }
                // APPn (E0–EF), the reserved JPGn (F0–FD) and COM (FE) carry nothing we need.
                0xE0..=0xFE => {
                    self.segment(code, at)?;
                }
                // Stray RSTn / TEM between segments: parameterless, ignored as libjpeg does.
                0xD0..=0xD7 | 0x01 => {}
                0xD8 => {
                    return Err(unexpected(code, at, "second SOI inside the codestream"));
                }
                0xDC => {
                    return Err(unexpected(
                        code,
                        at,
                        "frame height defined by DNL is not supported",
                    ));
                }
                0xCC => {
                    return Err(unexpected(
                        code,
                        at,
                        "arithmetic coding conditioning (DAC) is not supported",
                    ));
                }
                0xDE | 0xDF => {
                    return Err(JpegDctError::UnsupportedFrame {
                        marker: marker_name(code),
                        process: "hierarchical",
                        offset: at,
                    });
                }
                c => {
                    if let Some(process) = unsupported_process(c) {
                        return Err(JpegDctError::UnsupportedFrame {
                            marker: marker_name(c),
                            process,
                            offset: at,
                        });
                    }
                    return Err(unexpected(c, at, "not a marker this decoder knows"));
                }
            }
        }
    }

    /// Returns the payload of the marker segment whose marker is at `at`, after checking
    /// its length field, and moves past it.
    fn segment(&mut self, code: u8, at: usize) -> Result<&'a [u8]> {
        let name = marker_name(code);
        let len_bytes = self.data.get(self.pos..self.pos + 2).ok_or_else(|| {
            JpegDctError::TruncatedSegment {
                marker: name,
                offset: at,
                reason: "no length field".into(),
            }
        })?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(invalid(name, at, format!("length field {len} is below 2")));
        }
        let start = self.pos + 2;
        let end = self.pos + len;
        let seg = self
            .data
            .get(start..end)
            .ok_or_else(|| JpegDctError::TruncatedSegment {
                marker: name,
                offset: at,
                reason: format!(
                    "length field says {len} bytes, {} remain",
                    self.data.len() - self.pos
                ),
            })?;
        self.pos = end;
        Ok(seg)
    }

    /// Frame header (T.81 B.2.2).
    fn read_sof(&mut self, code: u8, at: usize, seg: &[u8]) -> Result<()> {
        let name = marker_name(code);
        if self.frame.is_some() {
            return Err(invalid(
                name,
                at,
                "second frame header in one codestream".into(),
            ));
        }
        if seg.len() < 6 {
            return Err(invalid(
                name,
                at,
                format!("length {} is below the minimum 8", seg.len() + 2),
            ));
        }
        let precision = seg[0];
        if precision != 8 && precision != 12 {
            return Err(invalid(
                name,
                at,
                format!(
                    "sample precision {precision} bits; sequential DCT allows 8 or 12 (T.81 B.2.2)"
                ),
            ));
        }
        let height = u16::from_be_bytes([seg[1], seg[2]]);
        let width = u16::from_be_bytes([seg[3], seg[4]]);
        let nf = seg[5];
        if height == 0 {
            return Err(invalid(
                name,
                at,
                "number of lines is 0 (height given by a DNL marker is not supported)".into(),
            ));
        }
        if width == 0 {
            return Err(invalid(name, at, "samples per line is 0".into()));
        }
        if !(1..=4).contains(&nf) {
            return Err(invalid(
                name,
                at,
                format!("{nf} components; 1 to 4 are supported"),
            ));
        }
        if seg.len() != 6 + 3 * usize::from(nf) {
            return Err(invalid(
                name,
                at,
                format!("length {} does not match {} components", seg.len() + 2, nf),
            ));
        }
        let total = u64::from(width) * u64::from(height) * u64::from(nf);
        if total > MAX_SAMPLES {
            return Err(JpegDctError::TooLarge {
                width,
                height,
                components: nf,
                limit: MAX_SAMPLES,
            });
        }
        let mut comps = Vec::with_capacity(usize::from(nf));
        for c in seg[6..].chunks_exact(3) {
            let (id, h, v, tq) = (
                c[0],
                usize::from(c[1] >> 4),
                usize::from(c[1] & 15),
                usize::from(c[2]),
            );
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(invalid(
                    name,
                    at,
                    format!("component {id} has sampling factors {h}x{v}; each must be 1 to 4"),
                ));
            }
            if tq > 3 {
                return Err(invalid(
                    name,
                    at,
                    format!("component {id} uses quantisation table {tq}; 0 to 3 exist"),
                ));
            }
            if comps.iter().any(|x: &Component| x.id == id) {
                return Err(invalid(
                    name,
                    at,
                    format!("component identifier {id} appears twice"),
                ));
            }
            comps.push(Component {
                id,
                h,
                v,
                tq,
                blocks_w: 0,
                width: 0,
                height: 0,
                plane: Vec::new(),
                scanned: false,
            });
        }
        let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
        let (w, h) = (usize::from(width), usize::from(height));
        let mcus_x = w.div_ceil(8 * hmax);
        let mcus_y = h.div_ceil(8 * vmax);
        for c in &mut comps {
            c.width = (w * c.h).div_ceil(hmax);
            c.height = (h * c.v).div_ceil(vmax);
            c.blocks_w = mcus_x * c.h;
        }
        self.frame = Some(Frame {
            precision,
            width,
            height,
            hmax,
            vmax,
            mcus_x,
            mcus_y,
            components: comps,
        });
        Ok(())
    }

    /// Huffman table specification (T.81 B.2.4.2); several tables may share a segment.
    fn read_dht(&mut self, at: usize, mut seg: &[u8]) -> Result<()> {
        while !seg.is_empty() {
            if seg.len() < 17 {
                return Err(invalid(
                    "DHT",
                    at,
                    "table header shorter than 17 bytes".into(),
                ));
            }
            let (tc, th) = (seg[0] >> 4, usize::from(seg[0] & 15));
            if tc > 1 || th > 3 {
                return Err(invalid(
                    "DHT",
                    at,
                    format!(
                        "table class {tc} / destination {th}; class 0-1 and destination 0-3 exist"
                    ),
                ));
            }
            let mut counts = [0u8; 16];
            counts.copy_from_slice(&seg[1..17]);
            let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
            if n > 256 {
                return Err(invalid("DHT", at, format!("{n} codes; at most 256 exist")));
            }
            let values = seg.get(17..17 + n).ok_or_else(|| {
                invalid(
                    "DHT",
                    at,
                    format!("{n} symbols announced, {} present", seg.len() - 17),
                )
            })?;
            let table = Huffman::new(&counts, values).ok_or_else(|| {
                invalid(
                    "DHT",
                    at,
                    format!("code lengths of table {tc}/{th} over-subscribe the code space"),
                )
            })?;
            if tc == 0 {
                self.dc[th] = Some(table);
            } else {
                self.ac[th] = Some(table);
            }
            seg = &seg[17 + n..];
        }
        Ok(())
    }

    /// Quantisation table specification (T.81 B.2.4.1), 8- or 16-bit entries.
    fn read_dqt(&mut self, at: usize, mut seg: &[u8]) -> Result<()> {
        while !seg.is_empty() {
            let (pq, tq) = (seg[0] >> 4, usize::from(seg[0] & 15));
            if pq > 1 || tq > 3 {
                return Err(invalid("DQT", at, format!("precision {pq} / destination {tq}; precision 0-1 and destination 0-3 exist")));
            }
            let size = if pq == 0 { 64 } else { 128 };
            let body = seg.get(1..1 + size).ok_or_else(|| {
                invalid(
                    "DQT",
                    at,
                    format!("table {tq} needs {size} bytes, {} present", seg.len() - 1),
                )
            })?;
            let mut table = [0u16; 64];
            for (k, q) in table.iter_mut().enumerate() {
                *q = if pq == 0 {
                    u16::from(body[k])
                } else {
                    u16::from_be_bytes([body[2 * k], body[2 * k + 1]])
                };
            }
            self.quant[tq] = Some(table);
            seg = &seg[1 + size..];
        }
        Ok(())
    }

    /// Scan header (T.81 B.2.3) followed by its entropy-coded data.
    fn read_scan(&mut self, at: usize, seg: &[u8]) -> Result<()> {
        let Some(mut frame) = self.frame.take() else {
            return Err(unexpected(0xDA, at, "scan before any frame header (SOF)"));
        };
        let result = self.decode_scan(&mut frame, at, seg);
        self.frame = Some(frame);
        result
    }

    fn decode_scan(&mut self, frame: &mut Frame, at: usize, seg: &[u8]) -> Result<()> {
        let ns = usize::from(
            *seg.first()
                .ok_or_else(|| invalid("SOS", at, "empty segment".into()))?,
        );
        if !(1..=4).contains(&ns) || seg.len() != 1 + 2 * ns + 3 {
            return Err(invalid(
                "SOS",
                at,
                format!("{ns} components in a segment of length {}", seg.len() + 2),
            ));
        }
        // Ss, Se, Ah/Al must be 0, 63, 0/0 for sequential DCT (T.81 B.2.3). libjpeg only
        // warns (JWRN_NOT_SEQUENTIAL) and decodes all 64 coefficients; so do we, because
        // real files (NEMA NM1_JPLY) carry Se = 0.
        let mut members: Vec<(usize, usize, usize)> = Vec::with_capacity(ns);
        for c in seg[1..1 + 2 * ns].chunks_exact(2) {
            let (cs, td, ta) = (c[0], usize::from(c[1] >> 4), usize::from(c[1] & 15));
            let idx = frame
                .components
                .iter()
                .position(|x| x.id == cs)
                .ok_or_else(|| invalid("SOS", at, format!("component {cs} is not in the frame")))?;
            if members.iter().any(|m| m.0 == idx) {
                return Err(invalid("SOS", at, format!("component {cs} listed twice")));
            }
            if frame.components[idx].scanned {
                return Err(invalid(
                    "SOS",
                    at,
                    format!("component {cs} already had its sequential scan"),
                ));
            }
            if td > 3 || self.dc[td].is_none() {
                return Err(invalid(
                    "SOS",
                    at,
                    format!(
                        "component {cs} uses DC Huffman table {td}, which was not defined by a DHT"
                    ),
                ));
            }
            if ta > 3 || self.ac[ta].is_none() {
                return Err(invalid(
                    "SOS",
                    at,
                    format!(
                        "component {cs} uses AC Huffman table {ta}, which was not defined by a DHT"
                    ),
                ));
            }
            let tq = frame.components[idx].tq;
            if self.quant[tq].is_none() {
                return Err(invalid("SOS", at, format!("component {cs} uses quantisation table {tq}, which was not defined by a DQT")));
            }
            members.push((idx, td, ta));
        }
        if ns > 1 {
            let blocks: usize = members
                .iter()
                .map(|m| frame.components[m.0].h * frame.components[m.0].v)
                .sum();
            if blocks > 10 {
                // T.81 B.2.3: at most 10 blocks in an interleaved MCU.
                return Err(invalid(
                    "SOS",
                    at,
                    format!("interleaved MCU of {blocks} blocks; at most 10 are allowed"),
                ));
            }
        }

        // Per-member state: tables, dequantisation, DC predictor.
        struct Member<'t> {
            idx: usize,
            dc: &'t Huffman,
            ac: &'t Huffman,
            quant: [f64; 64],
            pred: i32,
        }
        let mut ms: Vec<Member<'_>> = Vec::with_capacity(ns);
        for &(idx, td, ta) in &members {
            let (Some(dc), Some(ac), Some(q)) = (
                self.dc[td].as_ref(),
                self.ac[ta].as_ref(),
                self.quant[frame.components[idx].tq].as_ref(),
            ) else {
                return Err(invalid("SOS", at, "table vanished".into()));
            };
            let mut quant = [0f64; 64];
            for (k, &z) in ZIGZAG.iter().enumerate() {
                quant[z] = f64::from(q[k]);
            }
            ms.push(Member {
                idx,
                dc,
                ac,
                quant,
                pred: 0,
            });
        }

        // MCU geometry (T.81 A.2): interleaved scans follow the frame's MCU grid, a
        // single-component scan walks that component's own blocks one at a time.
        let (mcus_x, mcus_y) = if ns == 1 {
            let c = &frame.components[ms[0].idx];
            (c.width.div_ceil(8), c.height.div_ceil(8))
        } else {
            (frame.mcus_x, frame.mcus_y)
        };
        let total = (mcus_x as u64) * (mcus_y as u64);
        let interval = u64::from(self.restart_interval);
        let level = 1i32 << (frame.precision - 1);
        let maxval = (1i32 << frame.precision) - 1;
        let sos_offset = at;

        let mut reader = BitReader::new(self.data, self.pos);
        let mut coef = [0f64; 64];
        let mut next_rst: u8 = 0;
        let mut mcu: u64 = 0;
        for my in 0..mcus_y {
            for m in &ms {
                let comp = &mut frame.components[m.idx];
                let rows = if ns == 1 { 1 } else { comp.v };
                comp.ensure_block_row(my * rows + rows - 1);
            }
            for mx in 0..mcus_x {
                if interval > 0 && mcu > 0 && mcu % interval == 0 {
                    let (code, off) = reader.take_marker();
                    if code != Some(0xD0 + next_rst) {
                        return Err(JpegDctError::BadRestart {
                            sos_offset,
                            offset: off,
                            expected: next_rst,
                            found: match code {
                                Some(c) => format!("{} (FF{c:02X})", marker_name(c)),
                                None => "end of data".into(),
                            },
                        });
                    }
                    next_rst = (next_rst + 1) & 7;
                    for m in &mut ms {
                        m.pred = 0;
                    }
                }
                for m in &mut ms {
                    let comp = &mut frame.components[m.idx];
                    let (bh, bv) = if ns == 1 { (1, 1) } else { (comp.h, comp.v) };
                    for by in 0..bv {
                        for bx in 0..bh {
                            coef.fill(0.0);
                            decode_block(&mut reader, m.dc, m.ac, &m.quant, &mut m.pred, &mut coef)
                                .map_err(|reason| JpegDctError::CorruptScan {
                                    sos_offset,
                                    offset: reader.pos,
                                    reason,
                                })?;
                            if reader.overrun {
                                return Err(JpegDctError::TruncatedScan {
                                    sos_offset,
                                    offset: reader.pos,
                                    mcu,
                                    total,
                                });
                            }
                            let col = mx * bh + bx;
                            let row = my * bv + by;
                            let stride = comp.stride();
                            let base = row * 8 * stride + col * 8;
                            self.idct
                                .run(&coef, &mut comp.plane[base..], stride, level, maxval);
                        }
                    }
                }
                mcu += 1;
            }
        }
        for m in &ms {
            frame.components[m.idx].scanned = true;
        }
        // Continue marker parsing at the marker that ended the data (or after any padding).
        self.pos = if reader.stopped {
            reader.pos
        } else {
            find_marker(self.data, reader.pos).1
        };
        Ok(())
    }

    /// Assembles the output once EOI (or the end of data) is reached.
    fn finish(self, at: usize, saw_eoi: bool) -> Result<DecodedJpeg> {
        let Some(frame) = self.frame else {
            return Err(JpegDctError::Incomplete {
                offset: at,
                missing: "a frame header (SOF0/SOF1)".into(),
            });
        };
        if let Some(c) = frame.components.iter().find(|c| !c.scanned) {
            return Err(JpegDctError::Incomplete {
                offset: at,
                missing: format!(
                    "a scan for component {}{}",
                    c.id,
                    if saw_eoi {
                        " (EOI reached)"
                    } else {
                        " (no EOI)"
                    }
                ),
            });
        }
        let (w, h) = (usize::from(frame.width), usize::from(frame.height));
        let nc = frame.components.len();
        let mut samples = vec![0u16; w * h * nc];
        let mut full = vec![0u16; w * h];
        for (ci, comp) in frame.components.iter().enumerate() {
            upsample(comp, frame.hmax, frame.vmax, w, h, &mut full);
            for (dst, &src) in samples.iter_mut().skip(ci).step_by(nc).zip(full.iter()) {
                *dst = src;
            }
        }
        Ok(DecodedJpeg {
            width: frame.width,
            height: frame.height,
            components: nc as u8,
            precision: frame.precision,
            samples,
        })
    }
}

fn invalid(marker: &'static str, offset: usize, reason: String) -> JpegDctError {
    JpegDctError::InvalidSegment {
        marker,
        offset,
        reason,
    }
}

fn unexpected(code: u8, offset: usize, reason: &'static str) -> JpegDctError {
    JpegDctError::UnexpectedMarker {
        marker: marker_name(code),
        code,
        offset,
        reason,
    }
}

/// Decodes one 8×8 block's Huffman-coded coefficients (T.81 F.2.2) and dequantises them
/// into natural order.
fn decode_block(
    r: &mut BitReader<'_>,
    dc: &Huffman,
    ac: &Huffman,
    quant: &[f64; 64],
    pred: &mut i32,
    coef: &mut [f64; 64],
) -> std::result::Result<(), &'static str> {
    let t = u32::from(r.decode(dc).ok_or("invalid DC Huffman code")?);
    // DC difference categories go up to 11 (8-bit) or 15 (12-bit) (T.81 F.1.2.1, F.1.5.1).
    if t > 15 {
        return Err("DC difference category above 15");
    }
    // Wrapping: corrupt data can push the predictor anywhere; the value is clamped later.
    *pred = pred.wrapping_add(r.receive_extend(t));
    coef[0] = *pred as f64 * quant[0];
    let mut k = 1usize;
    while k < 64 {
        let rs = r.decode(ac).ok_or("invalid AC Huffman code")?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run == 15 {
                k += 16; // ZRL: sixteen zero coefficients (T.81 F.1.2.2.1)
                continue;
            }
            break; // EOB
        }
        k += run;
        if k > 63 {
            return Err("AC coefficient run goes past coefficient 63");
        }
        let z = ZIGZAG[k];
        coef[z] = r.receive_extend(size) as f64 * quant[z];
        k += 1;
    }
    Ok(())
}

/// Far above the f64 rounding error of an 8×8 IDCT of 16-bit-range coefficients (~1e-11),
/// far below the spacing of values that are not exact halves.
const HALF_UP_SLACK: f64 = 1e-6;

/// Floating-point 8×8 inverse DCT (T.81 A.3.3):
/// s(y,x) = 1/4 Σu Σv C(u) C(v) S(v,u) cos((2x+1)uπ/16) cos((2y+1)vπ/16).
struct Idct {
    /// basis[x][u] = C(u)/2 · cos((2x+1)uπ/16), C(0) = 1/√2.
    basis: [[f64; 8]; 8],
}

impl Idct {
    fn new() -> Self {
        let mut basis = [[0f64; 8]; 8];
        for (x, row) in basis.iter_mut().enumerate() {
            for (u, b) in row.iter_mut().enumerate() {
                let c = if u == 0 {
                    std::f64::consts::FRAC_1_SQRT_2
                } else {
                    1.0
                };
                let angle = ((2 * x + 1) * u) as f64 * std::f64::consts::PI / 16.0;
                *b = c / 2.0 * angle.cos();
            }
        }
        Idct { basis }
    }

    /// Transforms `coef` (natural order) and writes level-shifted, clamped samples into an
    /// 8×8 window of `out` with line stride `stride`.
    fn run(&self, coef: &[f64; 64], out: &mut [u16], stride: usize, level: i32, maxval: i32) {
        // Rows: tmp[v][x] = Σu S(v,u) basis[x][u]. Most rows of a quantised block are all
        // zero; they are skipped here and in the column pass.
        let mut tmp = [[0f64; 8]; 8];
        let mut rows = [0usize; 8];
        let mut nrows = 0;
        for (v, t) in tmp.iter_mut().enumerate() {
            let row = &coef[v * 8..v * 8 + 8];
            if row.iter().all(|&c| c == 0.0) {
                continue;
            }
            rows[nrows] = v;
            nrows += 1;
            if row[1..].iter().all(|&c| c == 0.0) {
                *t = [row[0] * self.basis[0][0]; 8];
                continue;
            }
            for (x, dst) in t.iter_mut().enumerate() {
                let b = &self.basis[x];
                let mut s = 0f64;
                for u in 0..8 {
                    s += row[u] * b[u];
                }
                *dst = s;
            }
        }
        // Columns: s[y][x] = Σv basis[y][v] tmp[v][x].
        for y in 0..8 {
            let b = &self.basis[y];
            let Some(line) = out.get_mut(y * stride..y * stride + 8) else {
                return;
            };
            let mut acc = [0f64; 8];
            for &v in &rows[..nrows] {
                let (w, t) = (b[v], &tmp[v]);
                for x in 0..8 {
                    acc[x] += w * t[x];
                }
            }
            for (dst, s) in line.iter_mut().zip(acc) {
                // Round half up like libjpeg's DESCALE. Blocks made of S00 and S04/S40/S44
                // give exact halves, which islow computes exactly (those terms need no
                // irrational constant) and rounds up; the basis products here are off by
                // ~1e-16 relative, so HALF_UP_SLACK keeps such halves from rounding down.
                // `as` saturates, so corrupt coefficients cannot overflow.
                let val = (s + 0.5 + HALF_UP_SLACK).floor() as i32;
                *dst = val.saturating_add(level).clamp(0, maxval) as u16;
            }
        }
    }
}

/// Brings one component to full resolution into `out` (`[h, w]`), the way libjpeg-turbo's
/// default ("fancy") upsampler does; see the module documentation.
fn upsample(comp: &Component, hmax: usize, vmax: usize, w: usize, h: usize, out: &mut [u16]) {
    let stride = comp.stride();
    let (cw, ch) = (comp.width, comp.height);
    let at = |x: usize, y: usize| -> i32 { i32::from(comp.plane[y * stride + x]) };
    let integral = hmax % comp.h == 0 && vmax % comp.v == 0;
    let (hr, vr) = (hmax / comp.h, vmax / comp.v);
    if integral && hr == 1 && vr == 1 {
        for y in 0..h {
            out[y * w..y * w + w].copy_from_slice(&comp.plane[y * stride..y * stride + w]);
        }
    } else if integral && hr == 2 && vr == 1 && cw > 2 {
        // libjpeg h2v1_fancy_upsample: 3/4 nearer + 1/4 further sample, biases 1 and 2.
        for y in 0..h {
            let line = &mut out[y * w..y * w + w];
            for (x, dst) in line.iter_mut().enumerate() {
                let i = x / 2;
                let v = if x % 2 == 0 {
                    if i == 0 {
                        at(0, y)
                    } else {
                        (3 * at(i, y) + at(i - 1, y) + 1) >> 2
                    }
                } else if i + 1 >= cw {
                    at(cw - 1, y)
                } else {
                    (3 * at(i, y) + at(i + 1, y) + 2) >> 2
                };
                *dst = v as u16;
            }
        }
    } else if integral && hr == 1 && vr == 2 {
        // libjpeg h1v2_fancy_upsample: nearer row ×3 + further row (edge rows replicated).
        for y in 0..h {
            let r = y / 2;
            let (far, bias) = if y % 2 == 0 {
                (r.saturating_sub(1), 1)
            } else {
                ((r + 1).min(ch - 1), 2)
            };
            for x in 0..w {
                out[y * w + x] = ((3 * at(x, r) + at(x, far) + bias) >> 2) as u16;
            }
        }
    } else if integral && hr == 2 && vr == 2 && cw > 2 {
        // libjpeg h2v2_fancy_upsample: vertical 3:1 column sums, then horizontal 3:1,
        // biases 8 and 7, first/last columns use the edge sum ×4.
        let mut sums = vec![0i32; cw];
        for y in 0..h {
            let r = y / 2;
            let far = if y % 2 == 0 {
                r.saturating_sub(1)
            } else {
                (r + 1).min(ch - 1)
            };
            for (x, s) in sums.iter_mut().enumerate() {
                *s = 3 * at(x, r) + at(x, far);
            }
            for x in 0..w {
                let i = x / 2;
                let v = if x % 2 == 0 {
                    if i == 0 {
                        (sums[0] * 4 + 8) >> 4
                    } else {
                        (3 * sums[i] + sums[i - 1] + 8) >> 4
                    }
                } else if i + 1 >= cw {
                    (sums[cw - 1] * 4 + 7) >> 4
                } else {
                    (3 * sums[i] + sums[i + 1] + 7) >> 4
                };
                out[y * w + x] = v as u16;
            }
        }
    } else {
        // Replication for other integral ratios (libjpeg int_upsample / h2v1 / h2v2 box);
        // for non-integral ratios the same mapping x·h/hmax picks the nearest sample to the left.
        for y in 0..h {
            let sy = (y * comp.v / vmax).min(ch - 1);
            for x in 0..w {
                let sx = (x * comp.h / hmax).min(cw - 1);
                out[y * w + x] = comp.plane[sy * stride + sx];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a 1-component codestream with one 8×8 block whose only coefficient is DC,
    /// coded with a one-symbol DC table and a one-symbol (EOB) AC table.
    fn one_block(precision: u8, sof: u8, dc_category: u8, dc_bits: &[bool], q0: u16) -> Vec<u8> {
        let mut d = vec![0xFF, 0xD8];
        // DQT, 16-bit entries so any q0 fits.
        d.extend_from_slice(&[0xFF, 0xDB, 0, 131, 0x10]);
        d.extend_from_slice(&q0.to_be_bytes());
        d.extend(std::iter::repeat_n([0u8, 1], 63).flatten());
        d.extend_from_slice(&[0xFF, sof, 0, 11, precision, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        // DC table: one code "0" of length 1 for `dc_category`; AC: one code "0" = EOB.
        let mut dht = vec![0xFF, 0xC4, 0, 2 + 2 * 18];
        for (class, sym) in [(0x00u8, dc_category), (0x10, 0x00)] {
            dht.push(class);
            dht.push(1);
            dht.extend_from_slice(&[0u8; 15]);
            dht.push(sym);
        }
        d.extend_from_slice(&dht);
        d.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);
        // Bits: DC code 0, the DC magnitude bits, AC code 0 (EOB); pad with 1s.
        let mut bits = vec![false];
        bits.extend_from_slice(dc_bits);
        bits.push(false);
        while bits.len() % 8 != 0 {
            bits.push(true);
        }
        for byte in bits.chunks(8) {
            let b = byte.iter().fold(0u8, |acc, &x| (acc << 1) | u8::from(x));
            d.push(b);
            if b == 0xFF {
                d.push(0);
            }
        }
        d.extend_from_slice(&[0xFF, 0xD9]);
        d
    }

    #[test]
    fn dc_only_block_is_flat_with_level_shift() {
        // DC diff +3 (category 2, bits "11"), q0 = 8: S00 = 24, sample = 24/8 + 2048 = 2051.
        let img = decode(&one_block(12, 0xC1, 2, &[true, true], 8)).expect("decode");
        assert_eq!(
            (img.width, img.height, img.components, img.precision),
            (8, 8, 1, 12)
        );
        assert!(
            img.samples.iter().all(|&s| s == 2051),
            "{:?}",
            &img.samples[..8]
        );
        // Negative: category 2, bits "00" → −3; 8-bit: 128 − 3 = 125.
        let img = decode(&one_block(8, 0xC0, 2, &[false, false], 8)).expect("decode");
        assert!(img.samples.iter().all(|&s| s == 125));
    }

    #[test]
    fn exact_halves_round_up_like_libjpeg() {
        // DC 94 × q 10 = 940: 940 / 8 = 117.5 → 118 (islow's DESCALE rounds halves up),
        // + 128 = 246 (an f32 IDCT gave 245 on pydicom's SC_jpeg_no_color_transform_2).
        let bits = [true, false, true, true, true, true, false]; // 94 in 7 bits
        let img = decode(&one_block(8, 0xC0, 7, &bits, 10)).expect("decode");
        assert!(
            img.samples.iter().all(|&s| s == 246),
            "{:?}",
            &img.samples[..8]
        );
        // S(0,4) = −60 alone: s(y,x) = ±60/8 exactly, −7.5 at x = 0, which must give −7;
        // the f64 basis products give −7.500000000000001 there.
        let idct = Idct::new();
        let mut coef = [0f64; 64];
        coef[4] = -60.0;
        let mut out = [0u16; 64];
        idct.run(&coef, &mut out, 8, 2048, 4095);
        for row in out.chunks_exact(8) {
            assert_eq!(row, &[2041, 2056, 2056, 2041, 2041, 2056, 2056, 2041]);
        }
    }

    #[test]
    fn samples_are_clamped_to_precision() {
        // DC = +255 × 255 / 8 far above 4095 → clamped; category 8, bits all ones.
        let img = decode(&one_block(12, 0xC1, 8, &[true; 8], 255)).expect("decode");
        assert!(img.samples.iter().all(|&s| s == 4095));
        let img = decode(&one_block(8, 0xC0, 8, &[false; 8], 255)).expect("decode");
        assert!(img.samples.iter().all(|&s| s == 0));
    }

    #[test]
    fn other_frame_types_are_named() {
        for (code, name) in [(0xC2u8, "SOF2"), (0xC3, "SOF3"), (0xC9, "SOF9")] {
            let err = decode(&one_block(12, code, 2, &[true, true], 8)).expect_err("must refuse");
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(matches!(err, JpegDctError::UnsupportedFrame { .. }));
        }
    }

    #[test]
    fn bad_precision_and_missing_soi() {
        let err = decode(&one_block(16, 0xC1, 2, &[true, true], 8)).expect_err("16-bit DCT");
        assert!(err.to_string().contains("precision 16"), "{err}");
        assert_eq!(decode(b"\x00\x01"), Err(JpegDctError::MissingSoi));
        assert_eq!(decode(&[]), Err(JpegDctError::MissingSoi));
    }

    #[test]
    fn truncation_is_an_error_at_every_cut() {
        let full = one_block(
            12,
            0xC1,
            8,
            &[true, false, true, true, false, true, false, true],
            3,
        );
        for cut in 0..full.len() - 2 {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut} decoded");
        }
        // Without EOI but with complete scan data, libjpeg-style acceptance.
        assert!(decode(&full[..full.len() - 2]).is_ok());
    }

    #[test]
    fn huffman_table_rejects_oversubscription() {
        let mut counts = [0u8; 16];
        counts[0] = 3; // three 1-bit codes cannot exist
        assert!(Huffman::new(&counts, &[0, 1, 2]).is_none());
        counts[0] = 2;
        assert!(Huffman::new(&counts, &[0, 1]).is_some());
    }

    #[test]
    fn idct_matches_direct_formula() {
        let idct = Idct::new();
        let mut coef = [0f64; 64];
        coef[1] = 400.0; // S(0,1): horizontal cosine
        coef[9] = -120.0;
        let mut out = [0u16; 64];
        idct.run(&coef, &mut out, 8, 2048, 4095);
        for y in 0..8 {
            for x in 0..8 {
                let mut s = 0.0f64;
                for v in 0..8 {
                    for u in 0..8 {
                        let cu = if u == 0 {
                            std::f64::consts::FRAC_1_SQRT_2
                        } else {
                            1.0
                        };
                        let cv = if v == 0 {
                            std::f64::consts::FRAC_1_SQRT_2
                        } else {
                            1.0
                        };
                        let a = ((2 * x + 1) * u) as f64 * std::f64::consts::PI / 16.0;
                        let b = ((2 * y + 1) * v) as f64 * std::f64::consts::PI / 16.0;
                        s += 0.25 * cu * cv * coef[v * 8 + u] * a.cos() * b.cos();
                    }
                }
                let expect = (s + 2048.0 + 0.5).floor() as i64;
                assert!((i64::from(out[y * 8 + x]) - expect).abs() <= 1, "({x},{y})");
            }
        }
    }

    fn comp(
        h: usize,
        v: usize,
        width: usize,
        height: usize,
        plane: Vec<u16>,
        blocks_w: usize,
    ) -> Component {
        Component {
            id: 1,
            h,
            v,
            tq: 0,
            blocks_w,
            width,
            height,
            plane,
            scanned: true,
        }
    }

    #[test]
    fn h2v1_fancy_matches_libjpeg_formula() {
        // One line of a 4-sample-wide chroma component, stride 8.
        let mut plane = vec![0u16; 64];
        plane[..4].copy_from_slice(&[100, 200, 40, 41]);
        let c = comp(1, 1, 4, 1, plane, 1);
        let mut out = vec![0u16; 8];
        upsample(&c, 2, 1, 8, 1, &mut out);
        // first: 100, (300+200+2)>>2 = 125; i=1: (600+100+1)>>2=175, (600+40+2)>>2=160;
        // i=2: (120+200+1)>>2=80, (120+41+2)>>2=40; last: (123+40+1)>>2=41, 41.
        assert_eq!(out, vec![100, 125, 175, 160, 80, 40, 41, 41]);
    }

    #[test]
    fn h2v2_fancy_matches_libjpeg_formula() {
        // 3×2 chroma → 6×4 output.
        let mut plane = vec![0u16; 64];
        plane[..3].copy_from_slice(&[16, 32, 48]);
        plane[8..11].copy_from_slice(&[80, 96, 112]);
        let c = comp(1, 1, 3, 2, plane, 1);
        let mut out = vec![0u16; 24];
        upsample(&c, 2, 2, 6, 4, &mut out);
        // Row 0: near row 0, far row 0 (top replicated): sums = 64, 128, 192.
        // x0 = (256+8)>>4 = 16; x1 = (192+128+7)>>4 = 20; x2 = (384+64+8)>>4 = 28;
        // x3 = (384+192+7)>>4 = 36; x4 = (576+128+8)>>4 = 44; x5 = (768+7)>>4 = 48.
        assert_eq!(&out[..6], &[16, 20, 28, 36, 44, 48]);
        // Row 1: near row 0, far row 1: sums = 128, 192, 256.
        // x0 = (512+8)>>4 = 32; x1 = (384+192+7)>>4 = 36.
        assert_eq!(&out[6..8], &[32, 36]);
    }
}
