//! A small DICOM writer for tests: builds data sets element by element with `dicom_object`
//! and writes them as Part 10 files (any transfer syntax dicom-object can encode), as raw data
//! sets without file meta, or with a file meta that declares a transfer syntax of our choosing.
//! Also a tiny RLE Lossless encoder (PS3.5 Annex G) so encapsulated data can be made here.
//!
//! Shared by `crates/ingest/tests/synthetic_dicom.rs` and `crates/cli/tests/ingest_cli.rs`
//! (included there with `#[path]`), so it only uses dicom-core, dicom-object and
//! dicom-dictionary-std.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use dicom_core::value::{DataSetSequence, PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const ENHANCED_CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2.1";
pub const SECONDARY_CAPTURE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// A fresh UID under the "2.25" root (PS3.5 B.2), unique within the test process.
pub fn uid() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("2.25.{}{:06}", std::process::id(), n)
}

/// A data set under construction.
#[derive(Debug, Clone)]
pub struct Obj(pub InMemDicomObject);

impl Default for Obj {
    fn default() -> Self {
        Obj(InMemDicomObject::new_empty())
    }
}

impl Obj {
    pub fn new() -> Self {
        Self::default()
    }

    /// A text element (CS, LO, UI, SH, ...).
    pub fn text(mut self, tag: Tag, vr: VR, s: &str) -> Self {
        self.0
            .put(DataElement::new(tag, vr, PrimitiveValue::from(s)));
        self
    }

    /// Decimal String values, `\`-separated (PS3.5 6.2: DS, at most 16 characters each).
    pub fn ds(self, tag: Tag, values: &[f64]) -> Self {
        let s: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        for v in &s {
            assert!(v.len() <= 16, "DS value {v} is longer than 16 characters");
        }
        self.text(tag, VR::DS, &s.join("\\"))
    }

    /// Integer String values.
    pub fn is(self, tag: Tag, values: &[i64]) -> Self {
        let s: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.text(tag, VR::IS, &s.join("\\"))
    }

    pub fn us(mut self, tag: Tag, values: &[u16]) -> Self {
        self.0.put(DataElement::new(
            tag,
            VR::US,
            PrimitiveValue::U16(values.iter().copied().collect()),
        ));
        self
    }

    /// Any element with a primitive value.
    pub fn elem(mut self, tag: Tag, vr: VR, value: PrimitiveValue) -> Self {
        self.0.put(DataElement::new(tag, vr, value));
        self
    }

    /// OW words (the writer encodes them in the transfer syntax's byte order).
    pub fn ow(self, tag: Tag, words: &[u16]) -> Self {
        self.elem(
            tag,
            VR::OW,
            PrimitiveValue::U16(words.iter().copied().collect()),
        )
    }

    /// A byte stream as OW: pairs of bytes become little-endian words, so in a little endian
    /// file the bytes land on disk exactly as given.
    pub fn ow_bytes(self, tag: Tag, bytes: &[u8]) -> Self {
        assert!(bytes.len() % 2 == 0, "OW needs an even number of bytes");
        let words: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        self.ow(tag, &words)
    }

    pub fn ob(self, tag: Tag, bytes: &[u8]) -> Self {
        self.elem(
            tag,
            VR::OB,
            PrimitiveValue::U8(bytes.iter().copied().collect()),
        )
    }

    pub fn seq(mut self, tag: Tag, items: Vec<Obj>) -> Self {
        let items: Vec<InMemDicomObject> = items.into_iter().map(|o| o.0).collect();
        self.0
            .put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
        self
    }

    /// Encapsulated Pixel Data (PS3.5 A.4): an empty Basic Offset Table and one fragment per
    /// frame.
    pub fn encapsulated(mut self, frames: Vec<Vec<u8>>) -> Self {
        let seq = PixelFragmentSequence::new(Vec::<u32>::new(), frames);
        self.0.put(DataElement::new(tags::PIXEL_DATA, VR::OB, seq));
        self
    }

    /// Part 10 file: preamble, "DICM", file meta, data set in `ts`.
    pub fn write(&self, path: &Path, ts: &str) {
        let file = self
            .0
            .clone()
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
            .expect("file meta");
        file.write_to_file(path)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The data set alone, encoded in `ts`, with no preamble and no file meta.
    pub fn dataset_bytes(&self, ts: &str) -> Vec<u8> {
        let file = self
            .0
            .clone()
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
            .expect("file meta");
        let mut buf = Vec::new();
        file.write_all(&mut buf).expect("encode");
        // 128-byte preamble, "DICM", then (0002,0000) File Meta Information Group Length:
        // tag 4 + VR 2 + length 2 + UL value 4 bytes; its value counts the rest of the group.
        assert_eq!(&buf[128..132], b"DICM");
        let group_len = u32::from_le_bytes([buf[140], buf[141], buf[142], buf[143]]) as usize;
        buf.split_off(144 + group_len)
    }

    /// A raw data set file (no preamble, no meta), encoded in `ts`.
    pub fn write_raw(&self, path: &Path, ts: &str) {
        std::fs::write(path, self.dataset_bytes(ts)).expect("write raw data set");
    }

    /// A Part 10 file whose meta declares `declared_ts` while the data set is encoded in
    /// `encoding_ts` (for transfer syntaxes dicom-object cannot write, e.g. unknown UIDs).
    pub fn write_declared(&self, path: &Path, declared_ts: &str, encoding_ts: &str) {
        let sop_class = self.string(tags::SOP_CLASS_UID);
        let sop_instance = self.string(tags::SOP_INSTANCE_UID);
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(declared_ts)
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_instance)
            .build()
            .expect("file meta");
        let mut buf = vec![0u8; 128];
        buf.extend_from_slice(b"DICM");
        meta.write(&mut buf).expect("write meta");
        buf.extend(self.dataset_bytes(encoding_ts));
        std::fs::write(path, buf).expect("write file");
    }

    /// A Part 10 file with the given Media Storage SOP Class / Instance in its meta (for
    /// objects without SOP Class UID in the data set, such as a DICOMDIR, PS3.10 8.2).
    pub fn write_with_meta(&self, path: &Path, ts: &str, sop_class: &str, sop_instance: &str) {
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_instance);
        let file = self.0.clone().with_meta(meta).expect("file meta");
        file.write_to_file(path)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A Part 10 file whose file meta group is written by hand (PS3.10 7.1, explicit VR little
    /// endian): with `ts` = None it has no Transfer Syntax UID (0002,0010) at all, as some
    /// writers produce. The data set is encoded in `encoding_ts`.
    pub fn write_hand_meta(&self, path: &Path, ts: Option<&str>, encoding_ts: &str) {
        fn short(element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
            let mut v = value.to_vec();
            if v.len() % 2 == 1 {
                v.push(0); // UI values are padded with NUL (PS3.5 9.1)
            }
            let mut out = vec![0x02, 0x00];
            out.extend(element.to_le_bytes());
            out.extend(vr);
            out.extend((v.len() as u16).to_le_bytes());
            out.extend(v);
            out
        }
        // (0002,0001) File Meta Information Version: OB, 4-byte length form.
        let mut group = vec![
            0x02, 0x00, 0x01, 0x00, b'O', b'B', 0, 0, 2, 0, 0, 0, 0x00, 0x01,
        ];
        group.extend(short(
            0x0002,
            b"UI",
            self.string(tags::SOP_CLASS_UID).as_bytes(),
        ));
        group.extend(short(
            0x0003,
            b"UI",
            self.string(tags::SOP_INSTANCE_UID).as_bytes(),
        ));
        if let Some(ts) = ts {
            group.extend(short(0x0010, b"UI", ts.as_bytes()));
        }
        let mut buf = vec![0u8; 128];
        buf.extend_from_slice(b"DICM");
        buf.extend(short(0x0000, b"UL", &(group.len() as u32).to_le_bytes()));
        buf.extend(group);
        buf.extend(self.dataset_bytes(encoding_ts));
        std::fs::write(path, buf).expect("write file");
    }

    fn string(&self, tag: Tag) -> String {
        self.0
            .element(tag)
            .ok()
            .and_then(|e| e.to_str().ok().map(|s| s.to_string()))
            .unwrap_or_default()
    }
}

/// The attributes every image here has: SOP class and instance, series, modality, and the
/// Image Pixel Module (PS3.3 C.7.6.3) for `rows` × `cols` grayscale samples.
pub fn image(
    sop_class: &str,
    modality: &str,
    rows: u16,
    cols: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
) -> Obj {
    Obj::new()
        .text(tags::SOP_CLASS_UID, VR::UI, sop_class)
        .text(tags::SOP_INSTANCE_UID, VR::UI, &uid())
        .text(tags::STUDY_INSTANCE_UID, VR::UI, &uid())
        .text(tags::SERIES_INSTANCE_UID, VR::UI, &uid())
        .text(tags::MODALITY, VR::CS, modality)
        .us(tags::SAMPLES_PER_PIXEL, &[1])
        .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
        .us(tags::ROWS, &[rows])
        .us(tags::COLUMNS, &[cols])
        .us(tags::BITS_ALLOCATED, &[bits_allocated])
        .us(tags::BITS_STORED, &[bits_stored])
        .us(tags::HIGH_BIT, &[bits_stored - 1])
        .us(tags::PIXEL_REPRESENTATION, &[signed as u16])
}

/// 16-bit pixel data words as OW.
pub fn pixels16(obj: Obj, words: &[u16]) -> Obj {
    obj.ow(tags::PIXEL_DATA, words)
}

/// 8-bit (or 1-bit packed) pixel data bytes as OB, padded to even length (PS3.5 7.1.1).
pub fn pixels8(obj: Obj, bytes: &[u8]) -> Obj {
    let mut b = bytes.to_vec();
    if b.len() % 2 == 1 {
        b.push(0);
    }
    obj.ob(tags::PIXEL_DATA, &b)
}

/// PackBits (PS3.5 G.3.1): runs of 3 or more equal bytes become replicate runs (header
/// 1 - count, count ≤ 128), everything else literal runs (header count - 1, count ≤ 128).
pub fn packbits(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut literal: Vec<u8> = Vec::new();
    let flush = |literal: &mut Vec<u8>, out: &mut Vec<u8>| {
        for chunk in literal.chunks(128) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
        literal.clear();
    };
    let mut i = 0;
    while i < src.len() {
        let mut run = 1;
        while i + run < src.len() && src[i + run] == src[i] && run < 128 {
            run += 1;
        }
        if run >= 3 {
            flush(&mut literal, &mut out);
            out.push((1i16 - run as i16) as i8 as u8);
            out.push(src[i]);
        } else {
            literal.extend_from_slice(&src[i..i + run]);
        }
        i += run;
    }
    flush(&mut literal, &mut out);
    out
}

/// One RLE Lossless frame (PS3.5 G.2): a 64-byte header (segment count, then up to 15
/// offsets) and one PackBits segment per byte of the composite pixel code, most significant
/// byte of the first sample first; each segment padded to even length.
/// `samples`: little-endian containers of `bytes_per_sample` bytes, pixel-interleaved with
/// `samples_per_pixel` samples per pixel.
pub fn rle_frame(samples: &[u8], samples_per_pixel: usize, bytes_per_sample: usize) -> Vec<u8> {
    let n_segments = samples_per_pixel * bytes_per_sample;
    assert!(n_segments <= 15);
    let pixels = samples.len() / n_segments;
    let mut segments = Vec::with_capacity(n_segments);
    for s in 0..n_segments {
        let sample = s / bytes_per_sample;
        let le_byte = bytes_per_sample - 1 - s % bytes_per_sample;
        let plane: Vec<u8> = (0..pixels)
            .map(|p| samples[(p * samples_per_pixel + sample) * bytes_per_sample + le_byte])
            .collect();
        let mut seg = packbits(&plane);
        if seg.len() % 2 == 1 {
            seg.push(0x80); // -128: a no-op byte (PS3.5 G.3.1)
        }
        segments.push(seg);
    }
    let mut header = vec![0u8; 64];
    header[0..4].copy_from_slice(&(n_segments as u32).to_le_bytes());
    let mut offset = 64u32;
    for (s, seg) in segments.iter().enumerate() {
        header[4 + 4 * s..8 + 4 * s].copy_from_slice(&offset.to_le_bytes());
        offset += seg.len() as u32;
    }
    let mut out = header;
    for seg in segments {
        out.extend(seg);
    }
    out
}
