//! NIfTI-1 and NIfTI-2 reader: header, voxels and geometry, read the way `nifti1.h` /
//! `nifti2.h` say.
//!
//! ```no_run
//! let img = medvqa_ingest::nifti::read_nifti("brain.nii.gz")?;
//! let first = &img.volumes[0]; // [slices, rows, cols], DICOM LPS geometry
//! println!("{:?} {:?}", first.shape(), first.spacing);
//! # Ok::<(), medvqa_ingest::IngestError>(())
//! ```
//!
//! What is read:
//! - single files (`.nii`, magic `n+1` / `n+2`) and header/image pairs (`.hdr` + `.img`,
//!   magic `ni1` / `ni2`), each optionally gzip-compressed (detected from the gzip magic
//!   bytes, not the file name). Compressed data is streamed once, never inflated twice;
//! - both byte orders (detected from `sizeof_hdr`, which is 348 for NIfTI-1 and 540 for
//!   NIfTI-2);
//! - datatypes uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64
//!   and the colour types RGB24 / RGBA32 (alpha dropped). Complex, binary and float128 data
//!   are refused with an error naming the datatype.
//!
//! Values: `scl_slope` / `scl_inter` are applied as `y = scl_slope·x + scl_inter` whenever
//! `scl_slope` is non-zero (nifti1.h, "DATA SCALING"); a zero or non-finite slope means "no
//! scaling" (nibabel treats NaN/inf the same way). Scaling is not applied to colour data
//! (nifti1.h: "the scaling doesn't apply to RGB"). Values are computed in f64 and stored as
//! f32, so integers beyond 2^24 lose their lowest bits.
//!
//! Array layout: NIfTI stores `i` fastest, then `j`, `k`, `t`, `u`, `v`, `w`, so a volume
//! read in file order is `[k][j][i]`, which is our `[slices, rows, cols]` with no copy.
//! Every index of dimensions 4–7 gives one [`Volume`]: `volumes[t + nt·(u + nu·(v + nv·w))]`
//! (file order).
//!
//! Geometry, choosing the index→world affine as nifti1.h's "3 different methods" describe,
//! with the priority nibabel and FSL use when both are set:
//! 1. `sform_code > 0`: method 3, `x = srow_x · [i j k 1]` etc.;
//! 2. else `qform_code > 0`: method 2, rotation from the quaternion (b, c, d) with
//!    `a = sqrt(1 − b² − c² − d²)`, `qfac = pixdim[0]` (−1 or 1; 0 is read as 1, as
//!    nifti1_io does), `[x y z] = R·[pixdim1·i, pixdim2·j, qfac·pixdim3·k] + qoffset`;
//! 3. else method 1: `x = pixdim1·i`, `y = pixdim2·j`, `z = pixdim3·k`, no offset. This is
//!    the standard's rule; nibabel's `get_best_affine` instead centres the image here.
//!
//! An affine with non-finite entries is skipped for the next method (with a warning).
//! The affine is in the spatial unit of `xyzt_units`; metres and microns are converted to
//! millimetres (as ITK does; unknown units are taken as mm). NIfTI world space is RAS, ours
//! is DICOM LPS, so x and y are negated. Then for [`Volume`]: row cosine = direction of
//! `i` (column index), column cosine = direction of `j` (row index), slice normal =
//! direction of `k`; spacing is the norm of each affine column. The three directions are
//! kept as the affine has them (a sheared sform keeps its non-orthogonal axes), so
//! [`Volume::index_to_patient`] reproduces the file's affine exactly.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::{Array3, Array4};

use crate::error::{IngestError, Result};
use crate::volume::Volume;

/// Largest number of samples (voxels × channels, all volumes) read by [`read_nifti`]:
/// 2^29 samples = 2 GiB once stored as f32. Larger declared sizes are refused before any
/// voxel buffer is allocated.
pub const DEFAULT_MAX_SAMPLES: u64 = 1 << 29;

/// How far past the voxel data a compressed stream is read to reach its gzip trailer.
const GZIP_TRAILER_READ_LIMIT: u64 = 1 << 20;

/// NIfTI-1 header size (nifti1.h `sizeof_hdr`).
const NIFTI1_HEADER_BYTES: usize = 348;
/// NIfTI-2 header size (nifti2.h `sizeof_hdr`).
const NIFTI2_HEADER_BYTES: usize = 540;

/// Which NIfTI format version the header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum NiftiVersion {
    /// 348-byte header (`n+1` / `ni1`).
    One,
    /// 540-byte header (`n+2` / `ni2`).
    Two,
}

/// Byte order of header and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Endian {
    Little,
    Big,
}

/// Which of nifti1.h's three methods gave the geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum GeometrySource {
    /// Method 3: the `srow_*` affine (`sform_code > 0`).
    Sform,
    /// Method 2: quaternion + offset + pixdim (`qform_code > 0`).
    Qform,
    /// Method 1: pixdim scaling only, no rotation or offset.
    PixdimOnly,
}

/// The voxel datatypes this reader decodes (nifti1.h `NIFTI_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Datatype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// Three bytes R, G, B per voxel, interleaved.
    Rgb24,
    /// Four bytes R, G, B, A per voxel, interleaved.
    Rgba32,
}

impl Datatype {
    fn from_code(code: i32) -> std::result::Result<Self, String> {
        // nifti1.h, "Data type codes".
        Ok(match code {
            2 => Datatype::U8,
            4 => Datatype::I16,
            8 => Datatype::I32,
            16 => Datatype::F32,
            64 => Datatype::F64,
            128 => Datatype::Rgb24,
            256 => Datatype::I8,
            512 => Datatype::U16,
            768 => Datatype::U32,
            1024 => Datatype::I64,
            1280 => Datatype::U64,
            2304 => Datatype::Rgba32,
            1 => return Err("datatype 1 (binary, 1 bit per voxel) is not supported".into()),
            32 | 1792 | 2048 => return Err(format!("datatype {code} (complex) is not supported")),
            1536 => return Err("datatype 1536 (float128) is not supported".into()),
            other => return Err(format!("unknown datatype code {other}")),
        })
    }

    /// The nifti1.h code.
    pub fn code(self) -> i32 {
        match self {
            Datatype::U8 => 2,
            Datatype::I16 => 4,
            Datatype::I32 => 8,
            Datatype::F32 => 16,
            Datatype::F64 => 64,
            Datatype::Rgb24 => 128,
            Datatype::I8 => 256,
            Datatype::U16 => 512,
            Datatype::U32 => 768,
            Datatype::I64 => 1024,
            Datatype::U64 => 1280,
            Datatype::Rgba32 => 2304,
        }
    }

    /// The nifti1.h name, e.g. `NIFTI_TYPE_INT16`.
    pub fn name(self) -> &'static str {
        match self {
            Datatype::U8 => "NIFTI_TYPE_UINT8",
            Datatype::I8 => "NIFTI_TYPE_INT8",
            Datatype::I16 => "NIFTI_TYPE_INT16",
            Datatype::U16 => "NIFTI_TYPE_UINT16",
            Datatype::I32 => "NIFTI_TYPE_INT32",
            Datatype::U32 => "NIFTI_TYPE_UINT32",
            Datatype::I64 => "NIFTI_TYPE_INT64",
            Datatype::U64 => "NIFTI_TYPE_UINT64",
            Datatype::F32 => "NIFTI_TYPE_FLOAT32",
            Datatype::F64 => "NIFTI_TYPE_FLOAT64",
            Datatype::Rgb24 => "NIFTI_TYPE_RGB24",
            Datatype::Rgba32 => "NIFTI_TYPE_RGBA32",
        }
    }

    /// Bytes one voxel occupies in the file.
    pub fn bytes_per_voxel(self) -> usize {
        match self {
            Datatype::U8 | Datatype::I8 => 1,
            Datatype::I16 | Datatype::U16 => 2,
            Datatype::Rgb24 => 3,
            Datatype::I32 | Datatype::U32 | Datatype::F32 | Datatype::Rgba32 => 4,
            Datatype::I64 | Datatype::U64 | Datatype::F64 => 8,
        }
    }

    /// True for RGB24 / RGBA32.
    pub fn is_colour(self) -> bool {
        matches!(self, Datatype::Rgb24 | Datatype::Rgba32)
    }
}

/// The header fields a user of the image needs, decoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NiftiHeader {
    pub version: NiftiVersion,
    pub endian: Endian,
    /// `n+1`, `ni1`, `n+2` or `ni2`.
    pub magic: String,
    pub datatype: Datatype,
    pub bitpix: i32,
    /// `dim[1..=dim[0]]`: `[nx, ny, nz, nt, ...]`, padded with 1 to at least three
    /// entries (a 2D file has `nz = 1`).
    pub dims: Vec<u64>,
    /// `pixdim[0..8]` as stored (`pixdim[0]` is qfac; `pixdim[4]` is the time step).
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data in the data file.
    pub vox_offset: u64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    /// `xyzt_units & 0x07` as a word: `"unknown"`, `"m"`, `"mm"`, `"um"`.
    pub spatial_unit: &'static str,
    /// `xyzt_units & 0x38` as a word: `"unknown"`, `"s"`, `"ms"`, `"us"`, `"Hz"`, `"ppm"`,
    /// `"rad/s"`.
    pub time_unit: &'static str,
    pub description: String,
    pub intent_code: i32,
    pub intent_name: String,
    pub qform_code: i32,
    pub sform_code: i32,
    /// Quaternion (b, c, d).
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    /// `srow_x`, `srow_y`, `srow_z`.
    pub srow: [[f64; 4]; 3],
}

/// A NIfTI file read into volumes with geometry.
#[derive(Debug, Clone)]
pub struct NiftiImage {
    pub header: NiftiHeader,
    /// One volume per index of dimensions 4–7, in file order. For colour data the voxels
    /// are the ITU-R BT.601 luma `0.299R + 0.587G + 0.114B`, a grayscale view for callers
    /// that only handle scalars; the stored colour is in [`NiftiImage::colour`].
    pub volumes: Vec<Volume>,
    /// For RGB24/RGBA32 data: one `[slices, rows, cols, 3]` array (0–255) per volume, with
    /// the geometry of the volume of the same index.
    pub colour: Option<Vec<Array4<f32>>>,
    /// Which method of nifti1.h gave the geometry.
    pub geometry_source: GeometrySource,
    /// Voxel index `(i, j, k, 1)` → LPS millimetres, as used for every volume (row 4 is
    /// `[0, 0, 0, 1]`).
    pub affine_lps: [[f64; 4]; 4],
    /// Things a user should know that did not stop the read (e.g. a degenerate axis).
    pub warnings: Vec<String>,
    /// Files read: the header file, then the data file when it is separate.
    pub files: Vec<PathBuf>,
}

/// Reads a NIfTI-1/2 file (`.nii`, `.nii.gz`, or either file of a `.hdr`/`.img` pair)
/// with the default size limit [`DEFAULT_MAX_SAMPLES`].
pub fn read_nifti(path: impl AsRef<Path>) -> Result<NiftiImage> {
    read_nifti_with_limit(path, DEFAULT_MAX_SAMPLES)
}

/// Reads a NIfTI-1/2 file, refusing images that declare more than `max_samples` samples
/// (voxels × channels over all volumes) before allocating for them.
pub fn read_nifti_with_limit(path: impl AsRef<Path>, max_samples: u64) -> Result<NiftiImage> {
    let given = path.as_ref();
    let header_path = header_path_for(given)?;
    let mut header_stream = open_maybe_gz(&header_path)?;
    let (header, header_len) = read_header(&mut header_stream.reader, &header_path)?;

    let single_file = header.magic.starts_with("n+");
    let mut files = vec![header_path.clone()];
    let mut data_stream;
    let already_consumed;
    let data_path;
    if single_file {
        data_stream = header_stream;
        already_consumed = header_len as u64;
        data_path = header_path.clone();
        if header.vox_offset < header_len as u64 {
            return Err(nifti_err(
                &data_path,
                format!(
                    "vox_offset {} lies inside the {header_len}-byte header",
                    header.vox_offset
                ),
            ));
        }
    } else {
        drop(header_stream);
        data_path = image_path_for(&header_path)?;
        data_stream = open_maybe_gz(&data_path)?;
        already_consumed = 0;
        files.push(data_path.clone());
    }

    let channels: u64 = if header.datatype.is_colour() { 3 } else { 1 };
    let samples = header
        .dims
        .iter()
        .try_fold(channels, |acc, &d| acc.checked_mul(d))
        .unwrap_or(u64::MAX);
    if samples > max_samples {
        return Err(IngestError::TooLarge {
            path: header_path,
            voxels: samples,
            limit: max_samples,
        });
    }
    // Both products are at most `samples`, which is now known to be small.
    let voxels_per_volume = header.dims.iter().take(3).product::<u64>();
    let n_volumes = header.dims.iter().skip(3).product::<u64>();
    let bpv = header.datatype.bytes_per_voxel() as u64;
    let volume_bytes = voxels_per_volume * bpv;
    let data_bytes = volume_bytes * n_volumes;

    // An uncompressed file can be checked for truncation before anything is allocated.
    if let Some(len) = data_stream.file_len {
        let available = len.saturating_sub(header.vox_offset);
        if len < header.vox_offset || available < data_bytes {
            return Err(IngestError::Truncated {
                path: data_path,
                got: available as usize,
                expected: data_bytes as usize,
            });
        }
    }

    // Skip the extensions (NIfTI-1 extender + extensions) up to vox_offset, streaming.
    let skip = header.vox_offset - already_consumed;
    let skipped = std::io::copy(
        &mut (&mut data_stream.reader).take(skip),
        &mut std::io::sink(),
    )
    .map_err(|e| nifti_err(&data_path, format!("reading up to vox_offset: {e}")))?;
    if skipped < skip {
        return Err(nifti_err(
            &data_path,
            format!(
                "file ends before vox_offset {} (only {} bytes)",
                header.vox_offset,
                already_consumed + skipped
            ),
        ));
    }

    let mut warnings = Vec::new();
    let (affine_lps, geometry_source) = lps_affine(&header, &mut warnings);
    let (spacing, direction, origin) = geometry_from_affine(&affine_lps, &mut warnings);

    let [nx, ny, nz] = [header.dims[0], header.dims[1], header.dims[2]].map(|d| d as usize);
    let slope_inter = scaling(&header);
    let mut volumes = Vec::with_capacity(n_volumes as usize);
    let mut colour = header.datatype.is_colour().then(Vec::new);
    let mut buf = vec![0u8; volume_bytes as usize];
    let mut total_read: u64 = 0;
    for _ in 0..n_volumes {
        let got = read_full(&mut data_stream.reader, &mut buf)
            .map_err(|e| nifti_err(&data_path, format!("reading voxel data: {e}")))?;
        total_read += got as u64;
        if got < buf.len() {
            return Err(IngestError::Truncated {
                path: data_path,
                got: total_read as usize,
                expected: data_bytes as usize,
            });
        }
        let voxels = if let Some(colour) = colour.as_mut() {
            let rgb = decode_colour(&buf, header.datatype);
            let luma: Vec<f32> = rgb
                .chunks_exact(3)
                // ITU-R BT.601 luma weights.
                .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
                .collect();
            colour.push(shaped4(rgb, [nz, ny, nx, 3], &data_path)?);
            luma
        } else {
            decode_scalar(&buf, header.datatype, header.endian, slope_inter)
        };
        volumes.push(Volume {
            voxels: Array3::from_shape_vec((nz, ny, nx), voxels)
                .map_err(|e| nifti_err(&data_path, format!("shaping voxels: {e}")))?,
            spacing,
            origin,
            direction,
        });
    }

    if data_stream.file_len.is_none() {
        // Read on to the end of the gzip stream so the decoder checks its CRC-32 and length
        // trailer (RFC 1952 §2.3.1): corrupt or cut compressed data is an error, not
        // silently wrong voxels. Capped so trailing junk cannot make us read forever.
        std::io::copy(
            &mut (&mut data_stream.reader).take(GZIP_TRAILER_READ_LIMIT),
            &mut std::io::sink(),
        )
        .map_err(|e| {
            nifti_err(
                &data_path,
                format!("compressed stream after the voxel data: {e}"),
            )
        })?;
    }

    Ok(NiftiImage {
        header,
        volumes,
        colour,
        geometry_source,
        affine_lps,
        warnings,
        files,
    })
}

fn nifti_err(path: &Path, reason: impl Into<String>) -> IngestError {
    IngestError::Nifti {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn shaped4(v: Vec<f32>, shape: [usize; 4], path: &Path) -> Result<Array4<f32>> {
    Array4::from_shape_vec(shape, v).map_err(|e| nifti_err(path, format!("shaping colour: {e}")))
}

/// A reader over a file, transparently gunzipped when it starts with the gzip magic.
struct Stream {
    reader: Box<dyn Read>,
    /// Length of the file on disk when it is not compressed (so truncation can be checked
    /// before reading).
    file_len: Option<u64>,
}

fn open_maybe_gz(path: &Path) -> Result<Stream> {
    let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let len = file.metadata().map_err(|e| IngestError::io(path, e))?.len();
    let mut buffered = BufReader::with_capacity(1 << 16, file);
    let head = buffered.fill_buf().map_err(|e| IngestError::io(path, e))?;
    // RFC 1952: gzip members start with 0x1f 0x8b.
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        // MultiGzDecoder: bgzip and concatenated gzip files are several members.
        Ok(Stream {
            reader: Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(buffered),
            )),
            file_len: None,
        })
    } else {
        Ok(Stream {
            reader: Box::new(buffered),
            file_len: Some(len),
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// File name with any `.gz` removed, lower-cased, for extension checks.
fn lower_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Replaces the extension `from` (before an optional `.gz`) with `to`, trying the same
/// compression first and then the other one. Returns the first that exists.
fn sibling(path: &Path, from: &str, to: &str) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let lower = name.to_lowercase();
    let (stem_len, gz) = if lower.ends_with(&format!("{from}.gz")) {
        (name.len() - from.len() - 3, true)
    } else if lower.ends_with(from) {
        (name.len() - from.len(), false)
    } else {
        return None;
    };
    let stem = &name[..stem_len];
    // Keep the case style of the given extension (`.HDR` pairs with `.IMG`).
    let to = if name[stem_len..].chars().any(|c| c.is_ascii_uppercase()) {
        to.to_uppercase()
    } else {
        to.to_string()
    };
    let gz_ext = if to.chars().any(|c| c.is_ascii_uppercase()) {
        ".GZ"
    } else {
        ".gz"
    };
    let plain = path.with_file_name(format!("{stem}{to}"));
    let zipped = path.with_file_name(format!("{stem}{to}{gz_ext}"));
    let candidates = if gz { [zipped, plain] } else { [plain, zipped] };
    candidates.into_iter().find(|p| p.exists())
}

/// The file that holds the header: the path itself, or the `.hdr` of a given `.img`.
fn header_path_for(path: &Path) -> Result<PathBuf> {
    let name = lower_name(path);
    if name.ends_with(".img") || name.ends_with(".img.gz") {
        return sibling(path, ".img", ".hdr").ok_or_else(|| {
            nifti_err(
                path,
                "this is the image file of a pair but its .hdr is missing",
            )
        });
    }
    Ok(path.to_path_buf())
}

/// The `.img` beside a pair header.
fn image_path_for(header_path: &Path) -> Result<PathBuf> {
    sibling(header_path, ".hdr", ".img").ok_or_else(|| {
        nifti_err(
            header_path,
            "header says the data is in a separate .img file (magic ni1/ni2), which is missing",
        )
    })
}

/// Little helper over the raw header bytes in the file's byte order.
struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        a
    }
    fn i16(&self, at: usize) -> i16 {
        let a = self.arr(at);
        if self.big {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn i32(&self, at: usize) -> i32 {
        let a = self.arr(at);
        if self.big {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        }
    }
    fn i64(&self, at: usize) -> i64 {
        let a = self.arr(at);
        if self.big {
            i64::from_be_bytes(a)
        } else {
            i64::from_le_bytes(a)
        }
    }
    fn f32(&self, at: usize) -> f64 {
        let a = self.arr(at);
        f64::from(if self.big {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        })
    }
    fn f64(&self, at: usize) -> f64 {
        let a = self.arr(at);
        if self.big {
            f64::from_be_bytes(a)
        } else {
            f64::from_le_bytes(a)
        }
    }
    fn text(&self, at: usize, len: usize) -> String {
        let raw = &self.b[at..at + len];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).trim().to_string()
    }
}

/// Reads and decodes the header; returns it and its length in bytes.
fn read_header(r: &mut dyn Read, path: &Path) -> Result<(NiftiHeader, usize)> {
    let mut raw = [0u8; NIFTI2_HEADER_BYTES];
    let got = read_full(r, &mut raw[..4]).map_err(|e| IngestError::io(path, e))?;
    if got < 4 {
        return Err(unknown(path, "file shorter than a NIfTI header"));
    }
    let first = [raw[0], raw[1], raw[2], raw[3]];
    let (len, big) = match (i32::from_le_bytes(first), i32::from_be_bytes(first)) {
        (348, _) => (NIFTI1_HEADER_BYTES, false),
        (_, 348) => (NIFTI1_HEADER_BYTES, true),
        (540, _) => (NIFTI2_HEADER_BYTES, false),
        (_, 540) => (NIFTI2_HEADER_BYTES, true),
        (le, _) => {
            return Err(unknown(
                path,
                &format!("sizeof_hdr is {le}, neither 348 (NIfTI-1) nor 540 (NIfTI-2)"),
            ))
        }
    };
    let got = read_full(r, &mut raw[4..len]).map_err(|e| IngestError::io(path, e))?;
    if got < len - 4 {
        return Err(IngestError::Truncated {
            path: path.to_path_buf(),
            got: got + 4,
            expected: len,
        });
    }
    let f = Fields {
        b: &raw[..len],
        big,
    };
    let endian = if big { Endian::Big } else { Endian::Little };
    let header = if len == NIFTI1_HEADER_BYTES {
        parse_nifti1(&f, endian, path)?
    } else {
        parse_nifti2(&f, endian, path)?
    };
    Ok((header, len))
}

fn unknown(path: &Path, reason: &str) -> IngestError {
    IngestError::UnknownFormat {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// NIfTI-1 field offsets from nifti1.h `struct nifti_1_header`.
fn parse_nifti1(f: &Fields, endian: Endian, path: &Path) -> Result<NiftiHeader> {
    let magic_raw = &f.b[344..348];
    let magic = match magic_raw {
        b"n+1\0" => "n+1",
        b"ni1\0" => "ni1",
        _ => {
            return Err(unknown(
                path,
                "348-byte header without the NIfTI-1 magic (an Analyze 7.5 file, not read)",
            ))
        }
    };
    let dim: Vec<i64> = (0..8).map(|d| i64::from(f.i16(40 + 2 * d))).collect();
    let pixdim: [f64; 8] = std::array::from_fn(|d| f.f32(76 + 4 * d));
    let vox_offset = f.f32(108);
    let xyzt = f.b[123] as i32;
    finish_header(
        path,
        Raw {
            version: NiftiVersion::One,
            endian,
            magic,
            datatype: i32::from(f.i16(70)),
            bitpix: i32::from(f.i16(72)),
            dim,
            pixdim,
            vox_offset,
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            xyzt_units: xyzt,
            description: f.text(148, 80),
            intent_code: i32::from(f.i16(68)),
            intent_name: f.text(328, 16),
            qform_code: i32::from(f.i16(252)),
            sform_code: i32::from(f.i16(254)),
            quatern: [f.f32(256), f.f32(260), f.f32(264)],
            qoffset: [f.f32(268), f.f32(272), f.f32(276)],
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
        },
    )
}

/// NIfTI-2 field offsets from nifti2.h `struct nifti_2_header`.
fn parse_nifti2(f: &Fields, endian: Endian, path: &Path) -> Result<NiftiHeader> {
    let magic = match &f.b[4..12] {
        b"n+2\0\r\n\x1a\n" => "n+2",
        b"ni2\0\r\n\x1a\n" => "ni2",
        m if &m[..4] == b"n+2\0" || &m[..4] == b"ni2\0" => {
            // nifti2.h: bytes 4–7 of the magic catch files mangled by text-mode transfer.
            return Err(nifti_err(
                path,
                "NIfTI-2 magic is damaged (the \\r\\n\\x1a\\n check bytes differ): the file was altered in transfer",
            ));
        }
        _ => return Err(unknown(path, "540-byte header without the NIfTI-2 magic")),
    };
    let dim: Vec<i64> = (0..8).map(|d| f.i64(16 + 8 * d)).collect();
    let pixdim: [f64; 8] = std::array::from_fn(|d| f.f64(104 + 8 * d));
    finish_header(
        path,
        Raw {
            version: NiftiVersion::Two,
            endian,
            magic,
            datatype: i32::from(f.i16(12)),
            bitpix: i32::from(f.i16(14)),
            dim,
            pixdim,
            vox_offset: f.i64(168) as f64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            xyzt_units: f.i32(500),
            description: f.text(240, 80),
            intent_code: f.i32(504),
            intent_name: f.text(508, 16),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: [f.f64(352), f.f64(360), f.f64(368)],
            qoffset: [f.f64(376), f.f64(384), f.f64(392)],
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
        },
    )
}

/// Header fields as read, before validation.
struct Raw {
    version: NiftiVersion,
    endian: Endian,
    magic: &'static str,
    datatype: i32,
    bitpix: i32,
    dim: Vec<i64>,
    pixdim: [f64; 8],
    vox_offset: f64,
    scl_slope: f64,
    scl_inter: f64,
    xyzt_units: i32,
    description: String,
    intent_code: i32,
    intent_name: String,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    srow: [[f64; 4]; 3],
}

fn finish_header(path: &Path, r: Raw) -> Result<NiftiHeader> {
    let datatype = Datatype::from_code(r.datatype).map_err(|e| nifti_err(path, e))?;
    let ndim = r.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(nifti_err(path, format!("dim[0] = {ndim}, must be 1..7")));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for (axis, &d) in r.dim.iter().enumerate().skip(1).take(ndim as usize) {
        if d < 1 {
            return Err(nifti_err(
                path,
                format!("dim[{axis}] = {d}, must be at least 1"),
            ));
        }
        dims.push(d as u64);
    }
    // Dimensions beyond dim[0] are 1 (nifti1.h: "dim[i] for i > dim[0] are ignored").
    while dims.len() < 3 {
        dims.push(1);
    }
    if !r.vox_offset.is_finite() || r.vox_offset < 0.0 {
        return Err(nifti_err(
            path,
            format!("vox_offset {} is invalid", r.vox_offset),
        ));
    }
    Ok(NiftiHeader {
        version: r.version,
        endian: r.endian,
        magic: r.magic.to_string(),
        datatype,
        bitpix: r.bitpix,
        dims,
        pixdim: r.pixdim,
        vox_offset: r.vox_offset as u64,
        scl_slope: r.scl_slope,
        scl_inter: r.scl_inter,
        // nifti1.h XYZT_TO_SPACE / XYZT_TO_TIME and the NIFTI_UNITS_* codes.
        spatial_unit: match r.xyzt_units & 0x07 {
            1 => "m",
            2 => "mm",
            3 => "um",
            _ => "unknown",
        },
        time_unit: match r.xyzt_units & 0x38 {
            8 => "s",
            16 => "ms",
            24 => "us",
            32 => "Hz",
            40 => "ppm",
            48 => "rad/s",
            _ => "unknown",
        },
        description: r.description,
        intent_code: r.intent_code,
        intent_name: r.intent_name,
        qform_code: r.qform_code,
        sform_code: r.sform_code,
        quatern: r.quatern,
        qoffset: r.qoffset,
        srow: r.srow,
    })
}

/// `Some((slope, inter))` when scaling applies (nifti1.h: slope 0 means none).
fn scaling(h: &NiftiHeader) -> Option<(f64, f64)> {
    if h.datatype.is_colour() || h.scl_slope == 0.0 || !h.scl_slope.is_finite() {
        return None;
    }
    let inter = if h.scl_inter.is_finite() {
        h.scl_inter
    } else {
        0.0
    };
    Some((h.scl_slope, inter))
}

fn decode_scalar(buf: &[u8], dt: Datatype, endian: Endian, scale: Option<(f64, f64)>) -> Vec<f32> {
    let big = endian == Endian::Big;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            buf.chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    let v = if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    };
                    apply(v as f64, scale)
                })
                .collect()
        };
    }
    match dt {
        Datatype::U8 => buf.iter().map(|&v| apply(f64::from(v), scale)).collect(),
        Datatype::I8 => buf
            .iter()
            .map(|&v| apply(f64::from(v as i8), scale))
            .collect(),
        Datatype::I16 => conv!(i16, 2),
        Datatype::U16 => conv!(u16, 2),
        Datatype::I32 => conv!(i32, 4),
        Datatype::U32 => conv!(u32, 4),
        Datatype::I64 => conv!(i64, 8),
        Datatype::U64 => conv!(u64, 8),
        Datatype::F32 => conv!(f32, 4),
        Datatype::F64 => conv!(f64, 8),
        Datatype::Rgb24 | Datatype::Rgba32 => {
            unreachable!("colour data is decoded by decode_colour")
        }
    }
}

#[inline]
fn apply(v: f64, scale: Option<(f64, f64)>) -> f32 {
    match scale {
        Some((s, i)) => (s * v + i) as f32,
        None => v as f32,
    }
}

/// Interleaved RGB24 / RGBA32 bytes → RGB f32 (alpha dropped: NIfTI's alpha is a display
/// hint, not a measurement).
fn decode_colour(buf: &[u8], dt: Datatype) -> Vec<f32> {
    let step = dt.bytes_per_voxel();
    buf.chunks_exact(step)
        .flat_map(|p| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])])
        .collect()
}

/// The index → RAS affine of nifti1.h's method 3, 2 or 1, in the file's spatial unit.
fn ras_affine(h: &NiftiHeader, source: GeometrySource) -> [[f64; 4]; 3] {
    match source {
        GeometrySource::Sform => h.srow,
        GeometrySource::Qform => {
            let [b, c, d] = h.quatern;
            // nifti1.h method 2: a = sqrt(1 - b² - c² - d²); nifti1_io renormalises b, c, d
            // when rounding makes the argument negative (a 180° rotation, a = 0).
            let s = 1.0 - (b * b + c * c + d * d);
            let (a, b, c, d) = if s > 1e-7 {
                (s.sqrt(), b, c, d)
            } else {
                let n = (b * b + c * c + d * d).sqrt();
                (0.0, b / n, c / n, d / n)
            };
            let r = [
                [
                    a * a + b * b - c * c - d * d,
                    2.0 * (b * c - a * d),
                    2.0 * (b * d + a * c),
                ],
                [
                    2.0 * (b * c + a * d),
                    a * a + c * c - b * b - d * d,
                    2.0 * (c * d - a * b),
                ],
                [
                    2.0 * (b * d - a * c),
                    2.0 * (c * d + a * b),
                    a * a + d * d - c * c - b * b,
                ],
            ];
            // nifti1.h: qfac = pixdim[0], −1 or 1 (0 is treated as 1 by nifti1_io).
            let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
            // nifti1_io: non-positive pixdim in a qform is read as 1.
            let step = |p: f64| if p > 0.0 { p } else { 1.0 };
            let scale = [
                step(h.pixdim[1]),
                step(h.pixdim[2]),
                qfac * step(h.pixdim[3]),
            ];
            std::array::from_fn(|row| {
                [
                    r[row][0] * scale[0],
                    r[row][1] * scale[1],
                    r[row][2] * scale[2],
                    h.qoffset[row],
                ]
            })
        }
        GeometrySource::PixdimOnly => [
            [h.pixdim[1], 0.0, 0.0, 0.0],
            [0.0, h.pixdim[2], 0.0, 0.0],
            [0.0, 0.0, h.pixdim[3], 0.0],
        ],
    }
}

/// Chooses the method, converts units to mm and RAS to LPS.
fn lps_affine(h: &NiftiHeader, warnings: &mut Vec<String>) -> ([[f64; 4]; 4], GeometrySource) {
    let mut candidates = Vec::new();
    if h.sform_code > 0 {
        candidates.push(GeometrySource::Sform);
    }
    if h.qform_code > 0 {
        candidates.push(GeometrySource::Qform);
    }
    candidates.push(GeometrySource::PixdimOnly);
    let mut chosen = (
        ras_affine(h, GeometrySource::PixdimOnly),
        GeometrySource::PixdimOnly,
    );
    for source in candidates {
        let a = ras_affine(h, source);
        if a.iter().flatten().all(|v| v.is_finite()) {
            chosen = (a, source);
            break;
        }
        warnings.push(format!(
            "{source:?} affine has non-finite entries; not used"
        ));
    }
    let (ras, source) = chosen;
    (ras_to_lps_mm(h, &ras), source)
}

/// Scales a RAS affine in the header's spatial unit to mm and converts it to LPS.
fn ras_to_lps_mm(h: &NiftiHeader, ras: &[[f64; 4]; 3]) -> [[f64; 4]; 4] {
    let unit = match h.spatial_unit {
        "m" => 1000.0,
        "um" => 0.001,
        _ => 1.0,
    };
    // RAS → LPS: negate the x and y rows.
    let sign = [-1.0, -1.0, 1.0];
    let mut out = [[0.0; 4]; 4];
    for row in 0..3 {
        for col in 0..4 {
            let v = sign[row] * unit * ras[row][col];
            // Avoid -0.0 in outputs that are compared or printed.
            out[row][col] = if v == 0.0 { 0.0 } else { v };
        }
    }
    out[3][3] = 1.0;
    out
}

impl NiftiHeader {
    /// The index `(i, j, k, 1)` → LPS mm affine that `source` (one of nifti1.h's three
    /// methods) gives, whatever the codes say; lets a caller compare a file's sform with
    /// its qform.
    pub fn affine_lps(&self, source: GeometrySource) -> [[f64; 4]; 4] {
        ras_to_lps_mm(self, &ras_affine(self, source))
    }
}

/// `(spacing [slice,row,col], direction [row cos, col cos, normal], origin)` from an LPS
/// affine whose columns 0, 1, 2 step i (col), j (row), k (slice).
fn geometry_from_affine(
    a: &[[f64; 4]; 4],
    warnings: &mut Vec<String>,
) -> ([f64; 3], [[f64; 3]; 3], [f64; 3]) {
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    const NAMES: [&str; 3] = ["i (columns)", "j (rows)", "k (slices)"];
    for col in 0..3 {
        let v = [a[0][col], a[1][col], a[2][col]];
        let n = crate::volume::norm(v);
        if n > 0.0 && n.is_finite() {
            direction[col] = v.map(|x| x / n);
            spacing[2 - col] = n;
        } else {
            // A zero column (e.g. pixdim[3] = 0 in a 2D file): 1 mm along the method-1 axis
            // in LPS, so the volume stays usable and the user is told.
            let mut unit = [0.0; 3];
            unit[col] = if col < 2 { -1.0 } else { 1.0 };
            direction[col] = unit;
            spacing[2 - col] = 1.0;
            warnings.push(format!(
                "axis {} has zero length in the affine; 1 mm spacing assumed",
                NAMES[col]
            ));
        }
    }
    (spacing, direction, [a[0][3], a[1][3], a[2][3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_with_quaternion(b: f64, c: f64, d: f64, qfac: f64) -> NiftiHeader {
        NiftiHeader {
            version: NiftiVersion::One,
            endian: Endian::Little,
            magic: "n+1".into(),
            datatype: Datatype::F32,
            bitpix: 32,
            dims: vec![2, 2, 2],
            pixdim: [qfac, 2.0, 3.0, 4.0, 1.0, 0.0, 0.0, 0.0],
            vox_offset: 352,
            scl_slope: 0.0,
            scl_inter: 0.0,
            spatial_unit: "mm",
            time_unit: "s",
            description: String::new(),
            intent_code: 0,
            intent_name: String::new(),
            qform_code: 1,
            sform_code: 0,
            quatern: [b, c, d],
            qoffset: [10.0, 20.0, 30.0],
            srow: [[0.0; 4]; 3],
        }
    }

    #[test]
    fn identity_quaternion_gives_pixdim_diagonal_and_lps_sign_flip() {
        let h = header_with_quaternion(0.0, 0.0, 0.0, 1.0);
        let mut w = Vec::new();
        let (a, src) = lps_affine(&h, &mut w);
        assert_eq!(src, GeometrySource::Qform);
        assert_eq!(a[0], [-2.0, 0.0, 0.0, -10.0]);
        assert_eq!(a[1], [0.0, -3.0, 0.0, -20.0]);
        assert_eq!(a[2], [0.0, 0.0, 4.0, 30.0]);
        assert!(w.is_empty());
    }

    #[test]
    fn qfac_minus_one_flips_k() {
        let h = header_with_quaternion(0.0, 0.0, 0.0, -1.0);
        let (a, _) = lps_affine(&h, &mut Vec::new());
        assert_eq!(a[2][2], -4.0);
    }

    #[test]
    fn half_turn_about_z_quaternion() {
        // b=c=0, d=1: a = 0, rotation by 180° about z: x → −x, y → −y.
        let h = header_with_quaternion(0.0, 0.0, 1.0, 1.0);
        let (a, _) = lps_affine(&h, &mut Vec::new());
        // RAS diag(-2,-3,4) → LPS diag(2,3,4).
        assert!((a[0][0] - 2.0).abs() < 1e-12 && (a[1][1] - 3.0).abs() < 1e-12);
        assert!((a[2][2] - 4.0).abs() < 1e-12);
    }

    #[test]
    fn metres_are_converted_to_millimetres() {
        let mut h = header_with_quaternion(0.0, 0.0, 0.0, 1.0);
        h.spatial_unit = "m";
        let (a, _) = lps_affine(&h, &mut Vec::new());
        assert_eq!(a[2][2], 4000.0);
        assert_eq!(a[2][3], 30000.0);
    }

    #[test]
    fn zero_slice_axis_falls_back_to_one_mm_with_warning() {
        let mut h = header_with_quaternion(0.0, 0.0, 0.0, 1.0);
        h.qform_code = 0;
        h.pixdim[3] = 0.0;
        let mut w = Vec::new();
        let (a, src) = lps_affine(&h, &mut w);
        assert_eq!(src, GeometrySource::PixdimOnly);
        let (spacing, direction, _) = geometry_from_affine(&a, &mut w);
        assert_eq!(spacing, [1.0, 3.0, 2.0]);
        assert_eq!(direction[2], [0.0, 0.0, 1.0]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn zero_or_nan_slope_means_no_scaling() {
        let mut h = header_with_quaternion(0.0, 0.0, 0.0, 1.0);
        assert_eq!(scaling(&h), None);
        h.scl_slope = f64::NAN;
        assert_eq!(scaling(&h), None);
        h.scl_slope = 2.0;
        h.scl_inter = -1.0;
        assert_eq!(scaling(&h), Some((2.0, -1.0)));
    }
}
