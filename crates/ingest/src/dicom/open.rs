//! Opening DICOM files the way they come: Part 10 files with the 128-byte preamble, files that
//! start at the "DICM" magic, files whose file meta lacks a transfer syntax, and raw data sets
//! with no file meta at all (PS3.10 7.1 requires the meta; real archives ignore that).
//!
//! Raw data sets are parsed in the transfer syntax their first bytes reveal: the byte order of
//! the first group number and whether a VR follows the tag. This is the implicit VR little
//! endian fallback the ingest issue asks for, generalised to the other two uncompressed syntaxes.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{entries, TransferSyntaxRegistry};
use dicom_encoding::TransferSyntaxIndex;

use crate::error::{IngestError, Result};

/// A parsed DICOM data set and the transfer syntax its pixel data is encoded in.
pub struct DicomSource {
    /// Transfer syntax UID of the data set.
    pub transfer_syntax: String,
    /// How the file was laid out, for the sidecar and for diagnosing odd files.
    pub layout: FileLayout,
    /// Repairs made while reading, for the sidecar's warnings.
    pub notes: Vec<String>,
    object: Parsed,
}

enum Parsed {
    /// With file meta: the encapsulated-pixel decoders need the file object.
    File(dicom_object::DefaultDicomObject),
    Raw(InMemDicomObject),
}

impl DicomSource {
    /// The data set (file meta not included).
    pub fn dataset(&self) -> &InMemDicomObject {
        match &self.object {
            Parsed::File(f) => f,
            Parsed::Raw(r) => r,
        }
    }

    /// Media Storage SOP Class UID (0002,0002) of the file meta, when there is one.
    pub fn media_storage_sop_class(&self) -> Option<&str> {
        self.file().map(|f| f.meta().media_storage_sop_class_uid().trim_end_matches(['\0', ' ']))
    }

    /// The file object, when the file had a usable file meta.
    pub fn file(&self) -> Option<&dicom_object::DefaultDicomObject> {
        match &self.object {
            Parsed::File(f) => Some(f),
            Parsed::Raw(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileLayout {
    /// 128-byte preamble, "DICM", file meta, data set.
    Part10,
    /// "DICM" and file meta without the preamble.
    NoPreamble,
    /// File meta present but without a usable transfer syntax; data set parsed by detection.
    MetaWithoutTransferSyntax,
    /// No file meta: a bare data set.
    RawDataset,
}

/// What to read of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadExtent {
    /// Everything up to (not including) Pixel Data: headers for grouping and geometry.
    Header,
    /// The whole data set, pixel data included.
    Full,
}

/// Is this file worth trying as DICOM? Checks the magic or a plausible raw data set start.
pub fn looks_like_dicom(path: &Path) -> bool {
    let mut head = [0u8; 132];
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let n = read_up_to(&mut f, &mut head).unwrap_or(0);
    if n >= 132 && &head[128..132] == b"DICM" {
        return true;
    }
    if n >= 4 && &head[0..4] == b"DICM" {
        return true;
    }
    n >= 8 && detect_raw_syntax(&head[..n], false).is_some()
}

/// Opens a DICOM file of any of the layouts in [`FileLayout`].
pub fn open(path: &Path, extent: ReadExtent) -> Result<DicomSource> {
    let mut f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let mut head = [0u8; 132];
    let n = read_up_to(&mut f, &mut head).map_err(|e| IngestError::io(path, e))?;
    let preamble = n >= 132 && &head[128..132] == b"DICM";
    let bare_magic = n >= 4 && &head[0..4] == b"DICM";

    if preamble || bare_magic {
        let meta_start = if preamble { 132 } else { 4 };
        // dicom-rs reserves and zero-fills each value's declared length before reading it:
        // parse in the declared syntax only when every declared length fits in the file.
        let (oversized_open, oversized_declared) =
            oversized_in_declared_syntax(&mut f, meta_start).map_err(|e| IngestError::io(path, e))?;
        let opts = OpenFileOptions::new().read_preamble(if preamble {
            ReadPreamble::Always
        } else {
            ReadPreamble::Never
        });
        let opts = match extent {
            ReadExtent::Header => opts.read_until(tags::PIXEL_DATA),
            ReadExtent::Full => opts,
        };
        let opened = match &oversized_open {
            Some(reason) => Err(reason.clone()),
            None => opts.open_file(path).map_err(|e| e.to_string()),
        };
        match opened {
            Ok(obj) => {
                let ts = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
                return Ok(DicomSource {
                    transfer_syntax: ts,
                    layout: if preamble {
                        FileLayout::Part10
                    } else {
                        FileLayout::NoPreamble
                    },
                    notes: Vec::new(),
                    object: Parsed::File(obj),
                });
            }
            Err(msg) => {
                // dicom-object refuses a meta group without (0002,0010) or with a wrong group
                // length; both are common in the wild (pydicom ships examples). Walk the group
                // ourselves, then parse the data set in the syntax it names, or detect it.
                let meta = walk_meta_group(&mut f, meta_start).map_err(|e| IngestError::io(path, e))?;
                if let Some(meta) = meta {
                    let declared = meta.transfer_syntax.as_deref().and_then(|uid| TransferSyntaxRegistry.get(uid));
                    if let Some(ts) = declared.filter(|_| oversized_declared.is_none()) {
                        f.seek(SeekFrom::Start(meta.end)).map_err(|e| IngestError::io(path, e))?;
                        let reader = BufReader::new(&mut f);
                        if let Ok(ds) = InMemDicomObject::read_dataset_with_ts(reader, ts) {
                            let builder = dicom_object::FileMetaTableBuilder::new().transfer_syntax(ts.uid());
                            if let Ok(obj) = ds.with_meta(builder) {
                                return Ok(DicomSource {
                                    transfer_syntax: ts.uid().to_string(),
                                    layout: if preamble { FileLayout::Part10 } else { FileLayout::NoPreamble },
                                    notes: Vec::new(),
                                    object: Parsed::File(obj),
                                });
                            }
                        }
                    }
                    // No usable syntax, or the data set is not in the one declared (pydicom's
                    // SC_rgb_jpeg.dcm declares JPEG Baseline over an implicit VR data set):
                    // detect the encoding, and keep a declared encapsulated syntax for the
                    // pixel data.
                    if let Ok(mut src) = read_raw(path, &mut f, meta.end, extent) {
                        src.layout = FileLayout::MetaWithoutTransferSyntax;
                        if let Some(declared) = meta.transfer_syntax {
                            src.notes.push(format!(
                                "data set is not encoded in its declared transfer syntax {declared}; parsed as {}",
                                src.transfer_syntax
                            ));
                            let encapsulated = TransferSyntaxRegistry
                                .get(&declared)
                                .map(|ts| ts.is_encapsulated_pixel_data())
                                .unwrap_or(true);
                            if encapsulated {
                                src.transfer_syntax = declared;
                            }
                        }
                        return Ok(src);
                    }
                }
                return Err(IngestError::DicomParse {
                    path: path.to_path_buf(),
                    reason: msg,
                });
            }
        }
    }
    read_raw(path, &mut f, 0, extent)
}

fn read_raw(path: &Path, f: &mut File, offset: u64, extent: ReadExtent) -> Result<DicomSource> {
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| IngestError::io(path, e))?;
    let mut head = [0u8; 8];
    let n = read_up_to(f, &mut head).map_err(|e| IngestError::io(path, e))?;
    // After a meta group the bytes are known to be DICOM: accept any group (private ones too).
    let ts_uid = detect_raw_syntax(&head[..n], offset > 0).ok_or_else(|| IngestError::UnknownFormat {
        path: path.to_path_buf(),
        reason: "no DICM magic and the first bytes are not a DICOM data element".into(),
    })?;
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .expect("the three uncompressed syntaxes are always registered");
    // Checked to the end whatever the extent: a raw data set is always read whole (below).
    if let Some(reason) = oversized_value(f, offset, syntax_encoding(ts))
        .map_err(|e| IngestError::io(path, e))?
    {
        return Err(IngestError::DicomParse {
            path: path.to_path_buf(),
            reason: format!("raw data set (no file meta, parsed as {ts_uid}): {reason}"),
        });
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| IngestError::io(path, e))?;
    let reader = BufReader::new(f.try_clone().map_err(|e| IngestError::io(path, e))?);
    let dataset = match extent {
        ReadExtent::Full => InMemDicomObject::read_dataset_with_ts(reader, ts),
        ReadExtent::Header => {
            // The raw reader has no "read until"; reading the full set is correct, just slower,
            // and raw data sets are rare.
            InMemDicomObject::read_dataset_with_ts(reader, ts)
        }
    }
    .map_err(|e| IngestError::DicomParse {
        path: path.to_path_buf(),
        reason: format!("raw data set (no file meta, parsed as {ts_uid}): {e}"),
    })?;
    // A data set with no elements is not DICOM, whatever its first bytes looked like.
    if dataset.iter().next().is_none() {
        return Err(IngestError::UnknownFormat {
            path: path.to_path_buf(),
            reason: "no data elements could be parsed".into(),
        });
    }
    Ok(DicomSource {
        transfer_syntax: ts_uid.to_string(),
        layout: FileLayout::RawDataset,
        notes: Vec::new(),
        object: Parsed::Raw(dataset),
    })
}

/// Guesses the uncompressed transfer syntax of a raw data set from its first element:
/// the group number's byte order and whether two VR letters follow the tag.
fn detect_raw_syntax(head: &[u8], known_dicom: bool) -> Option<&'static str> {
    if head.len() < 8 {
        return None;
    }
    let group_le = u16::from_le_bytes([head[0], head[1]]);
    let group_be = u16::from_be_bytes([head[0], head[1]]);
    let explicit = is_vr(&head[4..6]);
    // Data sets start with low, even groups (0008 usually; 0002 or 0004 at worst).
    let plausible = |g: u16| {
        if known_dicom {
            g != 0 && g <= 0x7FE0
        } else {
            g != 0 && g <= 0x0028 && g % 2 == 0
        }
    };
    if plausible(group_le) {
        Some(if explicit {
            entries::EXPLICIT_VR_LITTLE_ENDIAN.uid()
        } else {
            entries::IMPLICIT_VR_LITTLE_ENDIAN.uid()
        })
    } else if plausible(group_be) && explicit {
        Some(entries::EXPLICIT_VR_BIG_ENDIAN.uid())
    } else {
        None
    }
}

fn is_vr(b: &[u8]) -> bool {
    const VRS: [&[u8; 2]; 34] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
        b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
        b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
    ];
    VRS.iter().any(|v| &v[..] == b)
}

struct MetaGroup {
    /// Offset of the first byte after the group.
    end: u64,
    /// Transfer Syntax UID (0002,0010), when present.
    transfer_syntax: Option<String>,
}

/// Walks the explicit VR little endian file meta group (PS3.10 7.1) element by element,
/// ignoring its group length. None if the bytes there are not a meta group.
fn walk_meta_group(f: &mut File, start: u64) -> std::io::Result<Option<MetaGroup>> {
    let mut pos = start;
    let mut transfer_syntax = None;
    loop {
        f.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 8];
        if read_up_to(f, &mut h)? < 8 {
            return Ok(None);
        }
        let group = u16::from_le_bytes([h[0], h[1]]);
        let element = u16::from_le_bytes([h[2], h[3]]);
        if group != 0x0002 {
            return Ok((pos > start).then_some(MetaGroup { end: pos, transfer_syntax }));
        }
        if !is_vr(&h[4..6]) {
            return Ok(None);
        }
        let long = matches!(
            &h[4..6],
            b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"UC" | b"UN" | b"UR" | b"UT"
        );
        let (header_len, len) = if long {
            let mut l = [0u8; 4];
            if read_up_to(f, &mut l)? < 4 {
                return Ok(None);
            }
            (12u64, u32::from_le_bytes(l) as u64)
        } else {
            (8u64, u16::from_le_bytes([h[6], h[7]]) as u64)
        };
        if len == u32::MAX as u64 || len > 1 << 20 {
            return Ok(None);
        }
        if element == 0x0010 && len <= 64 {
            f.seek(SeekFrom::Start(pos + header_len))?;
            let mut v = vec![0u8; len as usize];
            if read_up_to(f, &mut v)? == v.len() {
                let uid = String::from_utf8_lossy(&v)
                    .trim_end_matches(['\0', ' '])
                    .to_string();
                transfer_syntax = (!uid.is_empty()).then_some(uid);
            }
        }
        pos += header_len + len;
    }
}

/// How a data set is encoded on disk.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
    /// A raw deflate stream of an explicit VR little endian data set (PS3.5 A.5).
    deflated: bool,
}

fn syntax_encoding(ts: &dicom_encoding::TransferSyntax) -> Encoding {
    Encoding {
        explicit: ts.uid() != entries::IMPLICIT_VR_LITTLE_ENDIAN.uid(),
        big_endian: ts.endianness() == dicom_encoding::Endianness::Big,
        deflated: matches!(ts.codec(), dicom_encoding::Codec::Dataset(_)),
    }
}

/// Why each parse of a Part 10 file in its declared syntax must be skipped, if it must
/// (see [`oversized_value`]): (dicom-object's `open_file`, our meta walk followed by
/// `read_dataset_with_ts`). The two start the data set at different offsets when the group
/// length is wrong. None where the declared syntax is unknown: the fallbacks check what they
/// parse. The whole file is checked even for a header read, which stops at the top-level Pixel
/// Data only: a (7FE0,0010) nested in an item does not stop it.
fn oversized_in_declared_syntax(f: &mut File, meta_start: u64) -> std::io::Result<(Option<String>, Option<String>)> {
    let data_set = |f: &File, end: u64, ts: Option<String>| match ts.as_deref().and_then(|uid| TransferSyntaxRegistry.get(uid)) {
        Some(ts) => oversized_value(f, end, syntax_encoding(ts)),
        None => Ok(None),
    };
    let for_open_file = match dicom_object_meta_end(f, meta_start)? {
        Err(reason) => Some(format!("file meta: {reason}")),
        Ok(Some((end, ts))) => data_set(f, end, ts)?,
        Ok(None) => None,
    };
    let for_walk = match walk_meta_group(f, meta_start)? {
        Some(meta) => data_set(f, meta.end, meta.transfer_syntax)?,
        None => None,
    };
    Ok((for_open_file, for_walk))
}

/// Where dicom-object's file meta reader (0.10) stops and the transfer syntax it finds: it
/// reads whole elements until their bytes reach (0002,0000) File Meta Information Group
/// Length, whatever their group, so a wrong group length moves the data set start. Err names
/// a meta UID value it would allocate that cannot fit; None when it would refuse the group.
fn dicom_object_meta_end(
    f: &mut File,
    meta_start: u64,
) -> std::io::Result<std::result::Result<Option<(u64, Option<String>)>, String>> {
    let file_len = f.metadata()?.len();
    f.seek(SeekFrom::Start(meta_start))?;
    let mut h = [0u8; 12];
    if read_up_to(f, &mut h)? < 12 || h[..8] != [0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0] {
        return Ok(Ok(None));
    }
    let group_length = u64::from(u32::from_le_bytes([h[8], h[9], h[10], h[11]]));
    let mut pos = meta_start + 12;
    let mut read = 0u64;
    let mut transfer_syntax = None;
    while read < group_length {
        f.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 8];
        if read_up_to(f, &mut h)? < 8 {
            return Ok(Ok(None));
        }
        let tag = Tag(u16::from_le_bytes([h[0], h[1]]), u16::from_le_bytes([h[2], h[3]]));
        let v = [h[4], h[5]];
        let (header_len, len) = if !is_vr(&v) || is_long_vr(&v) {
            let mut l = [0u8; 4];
            if read_up_to(f, &mut l)? < 4 {
                return Ok(Ok(None));
            }
            (12u64, u32::from_le_bytes(l))
        } else {
            (8u64, u32::from(u16::from_le_bytes([h[6], h[7]])))
        };
        if len == u32::MAX {
            return Ok(Ok(None));
        }
        let len = u64::from(len);
        let left = file_len.saturating_sub(pos + header_len);
        // The UIDs are read into a buffer of the declared size; other values are bounded or skipped.
        if tag.0 == 0x0002 && matches!(tag.1, 0x0002 | 0x0003 | 0x0010 | 0x0012) && len > left {
            return Ok(Err(format!(
                "element ({:04X},{:04X}) declares {len} value bytes but only {left} remain (truncated or corrupt)",
                tag.0, tag.1
            )));
        }
        if len > left {
            return Ok(Ok(None));
        }
        if tag == tags::TRANSFER_SYNTAX_UID && len <= 64 {
            let mut uid = vec![0u8; len as usize];
            read_up_to(f, &mut uid)?;
            let uid = String::from_utf8_lossy(&uid).trim_end_matches(['\0', ' ']).to_string();
            transfer_syntax = (!uid.is_empty()).then_some(uid);
        }
        pos += header_len + len;
        read += header_len + len;
    }
    Ok(Ok(Some((pos, transfer_syntax))))
}

fn is_long_vr(v: &[u8; 2]) -> bool {
    matches!(v, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV")
}

/// The first data element whose declared value length exceeds the bytes left in the file.
///
/// dicom-rs (0.10) reserves and zero-fills a value's declared length before reading it, so a
/// file of a few hundred bytes declaring 4 GiB values costs 4 GiB of memory and seconds per
/// value (found by fuzzing; fuzz/README.md). This walks element headers the way dicom-rs's
/// data set reader does (PS3.5 7.1, 7.5): sequences and items are entered, not skipped,
/// undefined lengths open a sequence, fragments of encapsulated Pixel Data are skipped; and
/// names the first value that cannot fit, so that dicom-rs never sees it. A deflated data
/// set is walked inflated.
fn oversized_value(f: &File, start: u64, encoding: Encoding) -> std::io::Result<Option<String>> {
    let mut r = BufReader::new(f);
    r.seek(SeekFrom::Start(start))?;
    if !encoding.deflated {
        let left = f.metadata()?.len().saturating_sub(start);
        return walk_lengths(&mut r, left, encoding, |r, n| r.seek_relative(n as i64));
    }
    // Declared lengths count inflated bytes: measure the stream, then walk it. A corrupt stream
    // ends both where it stops inflating, as it does for dicom-rs.
    let mut z = flate2::read::DeflateDecoder::new(r);
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n @ 1..) = z.read(&mut buf) {
        total += n as u64;
    }
    let mut r = z.into_inner();
    r.seek(SeekFrom::Start(start))?;
    let mut z = flate2::read::DeflateDecoder::new(r);
    let skip = |z: &mut flate2::read::DeflateDecoder<BufReader<&File>>, n: u64| {
        std::io::copy(&mut z.by_ref().take(n), &mut std::io::sink()).map(|_| ())
    };
    Ok(walk_lengths(&mut z, total, encoding, skip).unwrap_or(None))
}

/// [`oversized_value`] over a stream of `available` bytes; `skip` passes over a value.
fn walk_lengths<R: Read>(
    r: &mut R,
    available: u64,
    encoding: Encoding,
    mut skip: impl FnMut(&mut R, u64) -> std::io::Result<()>,
) -> std::io::Result<Option<String>> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    use dicom_core::VR;
    let (explicit, big) = (encoding.explicit || encoding.deflated, encoding.big_endian);
    let u16_of = |b: [u8; 2]| if big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) };
    let u32_of = |b: [u8; 4]| if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
    let mut pos = 0u64;
    let mut in_fragments = false;
    loop {
        let mut h = [0u8; 8];
        if read_up_to(r, &mut h)? < 8 {
            return Ok(None);
        }
        let tag = Tag(u16_of([h[0], h[1]]), u16_of([h[2], h[3]]));
        let mut header_len = 8u64;
        let mut vr = None;
        let len = if tag.0 == 0xFFFE || !explicit {
            u32_of([h[4], h[5], h[6], h[7]])
        } else {
            let v = [h[4], h[5]];
            // dicom-encoding reads an unknown VR as UN, which has the long form.
            let long = !is_vr(&v) || is_long_vr(&v);
            vr = Some(v);
            if long {
                let mut l = [0u8; 4];
                if read_up_to(r, &mut l)? < 4 {
                    return Ok(None);
                }
                header_len = 12;
                u32_of(l)
            } else {
                u16_of([h[6], h[7]]) as u32
            }
        };
        pos += header_len;
        let undefined = len == u32::MAX;
        // Every defined length of a well-formed file fits in what follows, containers too; so
        // it is checked before deciding whether dicom-rs enters the element or reads its value.
        let left = available.saturating_sub(pos);
        if !undefined && u64::from(len) > left {
            return Ok(Some(format!(
                "data element ({:04X},{:04X}) declares {len} value bytes but only {left} remain{} (truncated or corrupt)",
                tag.0,
                tag.1,
                if encoding.deflated { " after inflating" } else { "" }
            )));
        }
        let holds_elements = if tag.0 == 0xFFFE {
            if tag.1 == 0xE0DD {
                in_fragments = false;
            }
            // Items hold elements, except in encapsulated Pixel Data where they are fragments;
            // delimiters have no value; other (FFFE,xxxx) tags are read as UN values.
            match tag.1 {
                0xE000 => !in_fragments,
                0xE00D | 0xE0DD => true,
                _ => false,
            }
        } else if undefined {
            in_fragments = tag == tags::PIXEL_DATA;
            true
        } else {
            match vr {
                Some(v) => &v == b"SQ",
                None => {
                    tag != tags::PIXEL_DATA
                        && dicom_dictionary_std::StandardDataDictionary
                            .by_tag(tag)
                            .map(|e| e.vr().relaxed())
                            == Some(VR::SQ)
                }
            }
        };
        if holds_elements || undefined {
            continue;
        }
        // dicom-parser reads binary values as whole numbers: a length that is not a multiple
        // of the number size leaves the remainder unread, and the next header starts there.
        let vr = match vr {
            Some(v) => VR::from_binary(v).unwrap_or(VR::UN),
            None if tag.0 == 0xFFFE => VR::UN,
            None if tag == tags::PIXEL_DATA => VR::OW,
            None => dicom_dictionary_std::StandardDataDictionary
                .by_tag(tag)
                .map(|e| e.vr().relaxed())
                .unwrap_or(VR::UN),
        };
        let size = match vr {
            VR::US | VR::SS | VR::OW => 2,
            VR::UL | VR::SL | VR::FL | VR::OF | VR::OL | VR::AT => 4,
            VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
            _ => 1,
        };
        let consumed = u64::from(len) / size * size;
        skip(r, consumed)?;
        pos += consumed;
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The human name of a transfer syntax UID, for error messages.
pub fn transfer_syntax_name(uid: &str) -> String {
    TransferSyntaxRegistry
        .get(uid)
        .map(|ts| ts.name().to_string())
        .unwrap_or_else(|| match uid {
            "1.2.840.10008.1.2.4.201" => "High-Throughput JPEG 2000 Image Compression (Lossless Only)".into(),
            "1.2.840.10008.1.2.4.202" => "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)".into(),
            "1.2.840.10008.1.2.4.203" => "High-Throughput JPEG 2000 Image Compression".into(),
            _ => "unknown transfer syntax".into(),
        })
}

/// Tag of the Pixel Data element family present in a data set, if any.
pub fn pixel_data_tag(ds: &InMemDicomObject) -> Option<Tag> {
    [tags::PIXEL_DATA, tags::FLOAT_PIXEL_DATA, tags::DOUBLE_FLOAT_PIXEL_DATA]
        .into_iter()
        .find(|t| ds.element_opt(*t).ok().flatten().is_some())
}
