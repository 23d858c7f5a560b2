//! Files of named tensors in the safetensors format: what `medvqa debug` and `medvqa encode`
//! read and write, so that anyone can compare medvqa with transformers from Python using
//! numpy and safetensors alone.
//!
//! ```no_run
//! use medvqa_model::tensor_io::{TensorFile, TensorWriter};
//! let inputs = TensorFile::open("inputs.safetensors".as_ref())?;
//! let (shape, pixels) = inputs.f32("pixel_values")?; // F32, F16, BF16 or F64 on disk
//! let mut out = TensorWriter::new();
//! out.f32("pixel_values", &shape, pixels)?;
//! out.metadata("source", "inputs.safetensors");
//! out.write("copy.safetensors".as_ref())?;
//! # Ok::<(), medvqa_model::tensor_io::TensorIoError>(())
//! ```
//!
//! Reading memory-maps the file and checks the whole header once (offsets contiguous, sizes
//! equal to shape × dtype, data ending where the file ends); a tensor is converted only when
//! asked for. Writing goes to a temporary file in the target's directory, flushed to disk, then
//! renamed over the target, so a crash leaves either the old file or the new one, never half of
//! one.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorInfo, View};

/// What can go wrong reading or writing a tensor file. Every variant names the file, the tensor,
/// or both.
#[derive(Debug, thiserror::Error)]
pub enum TensorIoError {
    /// Opening, mapping, writing or renaming the file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, corrupt header, bad offsets).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format { path: PathBuf, reason: String },
    /// The file has no tensor of that name.
    #[error("{path}: no tensor {name:?} (the file holds: {available})")]
    Missing {
        path: PathBuf,
        name: String,
        available: String,
    },
    /// The tensor's stored dtype cannot be read as the type asked for.
    #[error("{path}: tensor {name:?} is stored as {dtype}, which cannot be read as {wanted}")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
        wanted: &'static str,
    },
    /// An integer tensor holds a value that does not fit in `i64` (a `U64` above `i64::MAX`).
    #[error("{path}: tensor {name:?} holds {value}, which does not fit in i64")]
    OutOfRange {
        path: PathBuf,
        name: String,
        value: u64,
    },
    /// A tensor given to [`TensorWriter`] whose data length does not match its shape, or whose
    /// name is empty or already used. It has not been added.
    #[error("tensor {name:?} not added to the output: {reason}")]
    Tensor { name: String, reason: String },
}

/// Result with [`TensorIoError`].
pub type Result<T, E = TensorIoError> = std::result::Result<T, E>;

/// A safetensors file opened for reading, memory-mapped.
///
/// The map is read-only; as with any memory-mapped file, another process truncating the file
/// while it is open makes later reads fault, so do not rewrite inputs while medvqa runs.
#[derive(Debug)]
pub struct TensorFile {
    path: PathBuf,
    mmap: Mmap,
    /// Header length in bytes; tensor data starts at `8 + header_len`.
    header_len: usize,
    metadata: Metadata,
    /// Tensor names, sorted (the header's order is by offset).
    names: Vec<String>,
}

impl TensorFile {
    /// Opens and validates `path` (the whole header; tensor data is read on demand).
    pub fn open(path: &Path) -> Result<TensorFile> {
        let io = |source| TensorIoError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives as long as `TensorFile`; the file's content
        // changing under us is the documented caveat above (it cannot cause a write through
        // the map, only wrong values or a fault on read).
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&mmap).map_err(|e| TensorIoError::Format {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut names = metadata.offset_keys();
        names.sort_unstable();
        Ok(TensorFile {
            path: path.to_path_buf(),
            mmap,
            header_len,
            metadata,
            names,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file as mapped (header and data), e.g. for hashing it.
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// The `__metadata__` map of the header (string keys and values), if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.metadata().as_ref()
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.info(name)?.shape.clone())
    }

    /// The stored dtype of tensor `name`, as safetensors names it (`F32`, `BF16`, `I64` …).
    pub fn dtype(&self, name: &str) -> Result<String> {
        Ok(format!("{:?}", self.info(name)?.dtype))
    }

    /// Tensor `name` as `f32` in C order with its shape; `F32`, `F16`, `BF16` and `F64` are
    /// accepted (`F64` is rounded to nearest, `F16` / `BF16` widen exactly).
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (info, bytes) = self.raw(name)?;
        let values = match info.dtype {
            Dtype::F32 => le(bytes, f32::from_le_bytes),
            Dtype::F16 => le(bytes, |b: [u8; 2]| {
                f16::from_bits(u16::from_le_bytes(b)).to_f32()
            }),
            Dtype::BF16 => le(bytes, |b: [u8; 2]| {
                bf16::from_bits(u16::from_le_bytes(b)).to_f32()
            }),
            Dtype::F64 => le(bytes, |b| f64::from_le_bytes(b) as f32),
            other => return Err(self.dtype_error(name, other, "f32 (F32, F16, BF16, F64)")),
        };
        Ok((info.shape.clone(), values))
    }

    /// Gives the file's pages back to the kernel once their values have been copied (to device
    /// tensors, or through a hash): a mapped page that was read counts in the process's resident
    /// memory until then, which for a 4B checkpoint is another 8 GB. Later reads fault the pages
    /// in again from the file, so this is only about memory, never about values.
    pub fn release_pages(&self) {
        #[cfg(unix)]
        // SAFETY: the mapping is a read-only, shared mapping of a file (`Mmap::map`). For such a
        // mapping MADV_DONTNEED only drops the resident pages; the next access reads them from
        // the file again, so no reference into the map observes different bytes (the file is
        // not modified while open, the same assumption every read of this map makes).
        unsafe {
            let _ = self.mmap.unchecked_advise(memmap2::UncheckedAdvice::DontNeed);
        }
    }

    /// [`TensorFile::release_pages`] for the pages wholly inside tensor `name`'s bytes, right after
    /// they were copied: a model build then holds at most one tensor's pages at a time instead
    /// of the whole file (MedGemma-4B-sized bf16 checkpoint, `--weights-dtype stored`: peak RSS
    /// 18.9 GB without this, 10.5 GB with it).
    pub fn release_tensor(&self, name: &str) {
        // 64 KiB covers every common page size (4 KiB x86/Linux, 16 KiB Apple silicon, 64 KiB
        // some ARM kernels); madvise needs an aligned start, and the few pages at the ends are
        // shared with the neighbouring tensors anyway.
        const ALIGN: usize = 64 * 1024;
        let Ok(info) = self.info(name) else { return };
        let base = 8 + self.header_len;
        let (a, b) = info.data_offsets;
        let start = (base + a).div_ceil(ALIGN) * ALIGN;
        let end = ((base + b) / ALIGN * ALIGN).min(self.mmap.len());
        if end > start {
            #[cfg(unix)]
            // SAFETY: as in `release_pages`: a read-only shared file mapping, whose dropped pages
            // are read again from the unchanged file on the next access.
            unsafe {
                let _ = self.mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
            }
        }
    }

    /// Tensor `name` as raw 16-bit floats (`BF16` or `F16` bit patterns) in C order with its
    /// shape and which of the two it is, for weights kept in their stored precision.
    pub fn half_bits(&self, name: &str) -> Result<(Vec<usize>, Dtype, Vec<u16>)> {
        let (info, bytes) = self.raw(name)?;
        match info.dtype {
            d @ (Dtype::BF16 | Dtype::F16) => Ok((info.shape.clone(), d, le(bytes, u16::from_le_bytes))),
            other => Err(self.dtype_error(name, other, "a 16-bit float (BF16, F16)")),
        }
    }

    /// Tensor `name` as `i64` in C order with its shape; `I64`, `I32`, `I16`, `I8`, `U64`,
    /// `U32`, `U16`, `U8` and `BOOL` (0 / 1) are accepted, every value exactly.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let (info, bytes) = self.raw(name)?;
        let values = match info.dtype {
            Dtype::I64 => le(bytes, i64::from_le_bytes),
            Dtype::I32 => le(bytes, |b| i64::from(i32::from_le_bytes(b))),
            Dtype::I16 => le(bytes, |b| i64::from(i16::from_le_bytes(b))),
            Dtype::I8 => le(bytes, |b| i64::from(i8::from_le_bytes(b))),
            Dtype::U32 => le(bytes, |b| i64::from(u32::from_le_bytes(b))),
            Dtype::U16 => le(bytes, |b| i64::from(u16::from_le_bytes(b))),
            Dtype::U8 => le(bytes, |b: [u8; 1]| i64::from(b[0])),
            Dtype::BOOL => le(bytes, |b: [u8; 1]| i64::from(b[0] != 0)),
            Dtype::U64 => {
                let wide = le(bytes, u64::from_le_bytes);
                let mut out = Vec::with_capacity(wide.len());
                for v in wide {
                    out.push(i64::try_from(v).map_err(|_| TensorIoError::OutOfRange {
                        path: self.path.clone(),
                        name: name.to_string(),
                        value: v,
                    })?);
                }
                out
            }
            other => return Err(self.dtype_error(name, other, "i64 (integer or BOOL)")),
        };
        Ok((info.shape.clone(), values))
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.metadata
            .info(name)
            .ok_or_else(|| TensorIoError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
                available: if self.names.is_empty() {
                    "no tensors".to_string()
                } else {
                    self.names.join(", ")
                },
            })
    }

    /// The header entry and the bytes of tensor `name`. `read_metadata` has checked that the
    /// offsets tile the data section exactly, so the slice is in bounds.
    fn raw(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let info = self.info(name)?;
        let start = 8 + self.header_len;
        let (a, b) = info.data_offsets;
        let bytes = self
            .mmap
            .get(start + a..start + b)
            .ok_or_else(|| TensorIoError::Format {
                path: self.path.clone(),
                reason: format!("tensor {name:?} lies outside the file"),
            })?;
        Ok((info, bytes))
    }

    fn dtype_error(&self, name: &str, dtype: Dtype, wanted: &'static str) -> TensorIoError {
        TensorIoError::Dtype {
            path: self.path.clone(),
            name: name.to_string(),
            dtype: format!("{dtype:?}"),
            wanted,
        }
    }
}

/// Little-endian elements of `N` bytes decoded with `f`. The caller has matched the dtype,
/// so `bytes.len()` is a multiple of `N`.
fn le<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// The hidden temporary name `path` is written under before it is renamed into place:
/// `.NAME.partial-PID` beside it, so a reader never sees half a file and a killed writer's
/// leftover is recognisable.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically: to [`partial_path`], synced, then renamed over `path`
/// (replacing a file already there; refusing to is the caller's decision).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        return Err(TensorIoError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        });
    }
    let tmp = partial_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(TensorIoError::Io { path: tmp, source });
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        TensorIoError::Io { path: path.to_path_buf(), source }
    })
}

/// A tensor held by [`TensorWriter`]: dtype, shape, little-endian bytes.
#[derive(Debug, Clone)]
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Collects named tensors and string metadata, then writes one safetensors file.
#[derive(Debug, Default, Clone)]
pub struct TensorWriter {
    tensors: BTreeMap<String, Owned>,
    metadata: BTreeMap<String, String>,
}

impl TensorWriter {
    /// An empty writer.
    pub fn new() -> TensorWriter {
        TensorWriter::default()
    }

    /// Adds an `F32` tensor; `data` is in C order and must have `shape`'s element count.
    pub fn f32(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<&mut Self> {
        self.check(name, shape, data.len())?;
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.insert(name, Dtype::F32, shape, bytes)
    }

    /// Adds an `F16` tensor from f32 values rounded to nearest (IEEE 754 binary16, as numpy's
    /// `astype(float16)`): half the bytes for embedding archives whose consumers accept 11-bit
    /// mantissas. `data` is in C order and must have `shape`'s element count.
    pub fn f16_from_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<&mut Self> {
        self.check(name, shape, data.len())?;
        let bytes = data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        self.insert(name, Dtype::F16, shape, bytes)
    }

    /// Adds an `I64` tensor; `data` is in C order and must have `shape`'s element count.
    pub fn i64(&mut self, name: &str, shape: &[usize], data: Vec<i64>) -> Result<&mut Self> {
        self.check(name, shape, data.len())?;
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.insert(name, Dtype::I64, shape, bytes)
    }

    /// Sets a `__metadata__` entry (safetensors allows string values only); a key set twice
    /// keeps the last value.
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }

    /// Writes the file: to a temporary file beside `path`, synced, then renamed over `path`
    /// (replacing a file already there; refusing to is the caller's decision).
    pub fn write(&self, path: &Path) -> Result<()> {
        let metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(
            self.tensors.iter().map(|(n, t)| (n.as_str(), t)),
            (!metadata.is_empty()).then_some(metadata),
        )
        .map_err(|e| TensorIoError::Format {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
        write_atomic(path, &bytes)
    }

    /// Names of the tensors added so far, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    fn check(&self, name: &str, shape: &[usize], len: usize) -> Result<()> {
        let bad = |reason: String| {
            Err(TensorIoError::Tensor {
                name: name.to_string(),
                reason,
            })
        };
        if name.is_empty() || name == "__metadata__" {
            return bad("a tensor needs a name other than \"\" and \"__metadata__\"".into());
        }
        if self.tensors.contains_key(name) {
            return bad("a tensor of that name was already added".into());
        }
        match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
            None => bad(format!("shape {shape:?} overflows")),
            Some(n) if n != len => bad(format!(
                "shape {shape:?} has {n} elements but {len} values were given"
            )),
            Some(_) => Ok(()),
        }
    }

    fn insert(
        &mut self,
        name: &str,
        dtype: Dtype,
        shape: &[usize],
        bytes: Vec<u8>,
    ) -> Result<&mut Self> {
        self.tensors.insert(
            name.to_string(),
            Owned {
                dtype,
                shape: shape.to_vec(),
                bytes,
            },
        );
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Owned {
        Owned {
            dtype,
            shape: shape.to_vec(),
            bytes,
        }
    }

    /// Writes tensors of any dtype with safetensors itself (the writer only makes F32 / I64).
    fn write_raw(path: &Path, tensors: &[(&str, Owned)]) {
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), None).expect("serialise");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn round_trip_keeps_names_shapes_values_and_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.safetensors");
        let pixels: Vec<f32> = (0..24).map(|i| i as f32 * 0.37 - 4.0).collect();
        let mut w = TensorWriter::new();
        w.f32("pixel_values", &[1, 2, 3, 4], pixels.clone())
            .expect("f32");
        w.i64("input_ids", &[2, 3], vec![i64::MIN, -1, 0, 1, 7, i64::MAX])
            .expect("i64");
        w.f32("scalar", &[], vec![2.5]).expect("scalar");
        w.metadata("model", "tiny").metadata("model", "tinier");
        assert_eq!(w.names(), ["input_ids", "pixel_values", "scalar"]);
        w.write(&path).expect("write");
        // Only the target is left in the directory: the temporary file was renamed.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["out.safetensors"]);

        let f = TensorFile::open(&path).expect("open");
        assert_eq!(f.names(), ["input_ids", "pixel_values", "scalar"]);
        assert_eq!(f.shape("pixel_values").expect("shape"), [1, 2, 3, 4]);
        assert_eq!(f.dtype("input_ids").expect("dtype"), "I64");
        assert_eq!(
            f.f32("pixel_values").expect("f32"),
            (vec![1, 2, 3, 4], pixels)
        );
        assert_eq!(
            f.i64("input_ids").expect("i64").1,
            [i64::MIN, -1, 0, 1, 7, i64::MAX]
        );
        assert_eq!(f.f32("scalar").expect("scalar"), (vec![], vec![2.5]));
        assert_eq!(
            f.metadata()
                .and_then(|m| m.get("model"))
                .map(String::as_str),
            Some("tinier")
        );
        // Writing again replaces the file.
        let mut w = TensorWriter::new();
        w.f32("x", &[0], vec![]).expect("empty tensor");
        w.write(&path).expect("rewrite");
        let f = TensorFile::open(&path).expect("open");
        assert_eq!(f.names(), ["x"]);
        assert_eq!(f.f32("x").expect("x"), (vec![0], vec![]));
        assert!(f.metadata().is_none());
    }

    #[test]
    fn half_precision_double_and_integer_dtypes_convert() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dtypes.safetensors");
        // f16: 1.5 (0x3E00), -0 (0x8000), smallest subnormal 2^-24 (0x0001), +inf (0x7C00).
        let f16_bits: Vec<u8> = [0x3E00u16, 0x8000, 0x0001, 0x7C00]
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect();
        // bf16: -2 (0xC000), 1/3 rounded to 8 bits of mantissa (0x3EAB = 0.333984375).
        let bf16_bits: Vec<u8> = [0xC000u16, 0x3EAB]
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect();
        let f64_bytes: Vec<u8> = [0.1f64, -1e300]
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect();
        let i32_bytes: Vec<u8> = [-5i32, 70000]
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect();
        let u64_bytes: Vec<u8> = [u64::MAX].iter().flat_map(|b| b.to_le_bytes()).collect();
        write_raw(
            &path,
            &[
                ("h", owned(Dtype::F16, &[2, 2], f16_bits)),
                ("b", owned(Dtype::BF16, &[2], bf16_bits)),
                ("d", owned(Dtype::F64, &[2], f64_bytes)),
                ("i", owned(Dtype::I32, &[2], i32_bytes)),
                ("u", owned(Dtype::U8, &[3], vec![0, 128, 255])),
                ("m", owned(Dtype::BOOL, &[2], vec![0, 1])),
                ("big", owned(Dtype::U64, &[1], u64_bytes)),
            ],
        );
        let f = TensorFile::open(&path).expect("open");
        let (shape, h) = f.f32("h").expect("f16");
        assert_eq!(shape, [2, 2]);
        assert_eq!(h[0], 1.5);
        assert!(h[1] == 0.0 && h[1].is_sign_negative());
        assert_eq!(h[2], 2f32.powi(-24));
        assert_eq!(h[3], f32::INFINITY);
        assert_eq!(f.f32("b").expect("bf16").1, [-2.0, 0.333984375]);
        let d = f.f32("d").expect("f64").1;
        assert_eq!(d[0], 0.1f32);
        assert_eq!(d[1], f32::NEG_INFINITY);
        assert_eq!(f.i64("i").expect("i32").1, [-5, 70000]);
        assert_eq!(f.i64("u").expect("u8").1, [0, 128, 255]);
        assert_eq!(f.i64("m").expect("bool").1, [0, 1]);
        let e = f.i64("big").expect_err("u64 max").to_string();
        assert!(
            e.contains("dtypes.safetensors") && e.contains("\"big\""),
            "{e}"
        );
        let e = f.i64("h").expect_err("float as int").to_string();
        assert!(
            e.contains("dtypes.safetensors") && e.contains("\"h\"") && e.contains("F16"),
            "{e}"
        );
        let e = f.f32("i").expect_err("int as float").to_string();
        assert!(e.contains("\"i\"") && e.contains("I32"), "{e}");
    }

    #[test]
    fn reads_the_transformers_fixture() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/parity/preprocess/clip/rgb_97x61.safetensors");
        let f = TensorFile::open(&path).expect("open fixture");
        assert_eq!(f.names(), ["pixel_values"]);
        let (shape, v) = f.f32("pixel_values").expect("pixel_values");
        assert_eq!(shape, [1, 3, 32, 32]);
        assert_eq!(v.len(), 3 * 32 * 32);
        // CLIP-normalised 8-bit levels lie within [-mean/std, (1-mean)/std] ≈ [-1.80, 2.15].
        assert!(v.iter().all(|x| (-1.8..=2.2).contains(x)), "{:?}", &v[..4]);
    }

    #[test]
    fn truncated_corrupt_and_missing_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.safetensors");
        let mut w = TensorWriter::new();
        w.f32("t", &[4], vec![1.0, 2.0, 3.0, 4.0]).expect("f32");
        w.write(&good).expect("write");
        let bytes = std::fs::read(&good).expect("read");

        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).expect("write");
        let e = TensorFile::open(&cut).expect_err("truncated");
        assert!(matches!(e, TensorIoError::Format { .. }), "{e}");
        assert!(e.to_string().contains("cut.safetensors"), "{e}");

        let longer = dir.path().join("longer.safetensors");
        std::fs::write(&longer, [&bytes[..], &[0u8; 4]].concat()).expect("write");
        assert!(matches!(
            TensorFile::open(&longer),
            Err(TensorIoError::Format { .. })
        ));

        let mut corrupt = bytes.clone();
        corrupt[9] = b'#'; // inside the JSON header
        let bad = dir.path().join("bad.safetensors");
        std::fs::write(&bad, &corrupt).expect("write");
        let e = TensorFile::open(&bad)
            .expect_err("corrupt header")
            .to_string();
        assert!(e.contains("bad.safetensors"), "{e}");

        let huge = dir.path().join("huge.safetensors");
        std::fs::write(&huge, u64::MAX.to_le_bytes()).expect("write");
        assert!(TensorFile::open(&huge).is_err());

        for short in [&[][..], &[1u8, 0, 0][..]] {
            let p = dir.path().join("short.safetensors");
            std::fs::write(&p, short).expect("write");
            let e = TensorFile::open(&p).expect_err("short").to_string();
            assert!(e.contains("short.safetensors"), "{e}");
        }

        let e = TensorFile::open(&dir.path().join("absent.safetensors"))
            .expect_err("absent")
            .to_string();
        assert!(e.contains("absent.safetensors"), "{e}");

        let f = TensorFile::open(&good).expect("open");
        let e = f.f32("pixel_values").expect_err("missing").to_string();
        assert!(
            e.contains("good.safetensors")
                && e.contains("\"pixel_values\"")
                && e.contains("holds: t)"),
            "{e}"
        );
        assert!(f.shape("nope").is_err());
    }

    #[test]
    fn writer_refuses_mismatched_shapes_and_duplicate_names() {
        let mut w = TensorWriter::new();
        let e = w
            .f32("x", &[2, 3], vec![0.0; 5])
            .expect_err("5 != 6")
            .to_string();
        assert!(
            e.contains("\"x\"") && e.contains("[2, 3]") && e.contains('5'),
            "{e}"
        );
        assert!(w.i64("ids", &[usize::MAX, 2], vec![]).is_err());
        assert!(w.f32("", &[1], vec![0.0]).is_err());
        assert!(w.f32("__metadata__", &[1], vec![0.0]).is_err());
        w.f32("x", &[2], vec![1.0, 2.0]).expect("ok");
        let e = w
            .i64("x", &[1], vec![1])
            .expect_err("duplicate")
            .to_string();
        assert!(e.contains("already"), "{e}");
        assert_eq!(w.names(), ["x"]);

        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("no/such/dir/out.safetensors");
        let e = w.write(&p).expect_err("missing directory").to_string();
        assert!(e.contains("out.safetensors"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
    }
}
