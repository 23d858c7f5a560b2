//! HuggingFace checkpoint folders: `config.json` plus `*.safetensors` weights, single-file or
//! sharded (`model.safetensors.index.json`), memory-mapped.
//!
//! Modules load their parameters through [`Weights`], a scoped view whose paths mirror the
//! checkpoint's own names (`weights.pp("encoder").pp("layers").pp(i)`), as candle's VarBuilder
//! does. Every lookup is recorded, so that after a model is built the loader can say, all at
//! once, which tensors were missing, which had the wrong shape, and which were never used.
//! A model is only returned when all three lists are empty.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::prelude::*;
use burn::tensor::DType;
use safetensors::tensor::SafeTensors;

use crate::error::{ModelError, Result};
use crate::tensor_io::TensorFile;

/// Where one tensor lives: which shard, and its stored shape.
#[derive(Clone, Debug)]
struct Entry {
    shard: usize,
    shape: Vec<usize>,
}

/// How 16-bit (BF16 / F16) weight matrices are held once loaded.
///
/// Computation is f32 either way: a matrix kept in 16 bits is cast to f32 where it is used
/// (exact: every BF16 / F16 value is an f32 value), so results are identical and only memory
/// and speed differ. Norms, biases, embeddings tables and the vision patch embedding are always
/// f32 (small, or used every step where a cast would cost more than it saves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    /// Every weight converted to f32 at load: fastest, twice the memory of a bf16 checkpoint.
    F32,
    /// Linear-layer matrices kept in their stored 16-bit type when the device supports it:
    /// half the memory (a 4B bf16 model in ~9 GB instead of ~17 GB), a cast per use.
    Stored,
    /// `Stored` when the f32 copy would take more than half of the memory available now,
    /// else `F32`.
    Auto,
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(WeightDtype::F32),
            "stored" | "bf16" | "f16" => Ok(WeightDtype::Stored),
            "auto" => Ok(WeightDtype::Auto),
            other => Err(format!("{other:?}: expected auto, f32 or stored")),
        }
    }
}

/// The weights of one checkpoint folder, memory-mapped, with every tensor name indexed.
pub struct Checkpoint {
    dir: PathBuf,
    shards: Vec<TensorFile>,
    entries: BTreeMap<String, Entry>,
    dtype: WeightDtype,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("files", &self.files())
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl Checkpoint {
    /// Opens the weights in `dir`: `model.safetensors.index.json` when present (every shard it
    /// names), else `model.safetensors`, else every `*.safetensors` file in the folder.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let files = weight_files(dir)?;
        let mut shards = Vec::with_capacity(files.len());
        let mut entries = BTreeMap::new();
        for path in files {
            let shard = open_shard(&path)?;
            for name in shard.names() {
                let entry = Entry { shard: shards.len(), shape: shard.shape(name)? };
                if entries.insert(name.to_string(), entry).is_some() {
                    return Err(ModelError::Checkpoint {
                        path: path.clone(),
                        reason: format!("tensor `{name}` appears in more than one weight file"),
                    });
                }
            }
            shards.push(shard);
        }
        Ok(Checkpoint { dir: dir.to_path_buf(), shards, entries, dtype: WeightDtype::F32 })
    }

    /// Opens the weights in `dir` to be held as `dtype` asks (see [`WeightDtype`]).
    pub fn open_with(dir: &Path, dtype: WeightDtype) -> Result<Checkpoint> {
        let mut c = Checkpoint::open(dir)?;
        c.dtype = dtype;
        Ok(c)
    }

    /// Bytes the checkpoint's 16-bit tensors would take as f32.
    fn half_tensors_as_f32_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|(n, _)| matches!(self.dtype(n).as_deref(), Some("BF16" | "F16")))
            .map(|(_, e)| e.shape.iter().product::<usize>() as u64 * 4)
            .sum()
    }

    /// Whether 16-bit matrices are kept 16-bit on `device`: asked for (or `Auto` and short of
    /// memory), and the device computes with the stored types.
    fn keeps_half(&self, device: &Device) -> bool {
        let wanted = match self.dtype {
            WeightDtype::F32 => false,
            WeightDtype::Stored => true,
            WeightDtype::Auto => {
                let need = self.half_tensors_as_f32_bytes();
                need > 0 && available_memory().is_none_or(|avail| need > avail / 2)
            }
        };
        wanted && device.supports_dtype(burn::tensor::DType::BF16) && device.supports_dtype(burn::tensor::DType::F16)
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The weight files, in the order they were opened.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(TensorFile::path).collect()
    }

    /// Every tensor name in the checkpoint, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The stored shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The stored dtype name of a tensor (`F32`, `BF16` …), if present.
    pub fn dtype(&self, name: &str) -> Option<String> {
        let e = self.entries.get(name)?;
        self.shards[e.shard].dtype(name).ok()
    }

    /// Reads a tensor as f32, converting F16 / BF16 / F64 (the reference computes in the
    /// stored precision upcast to f32 when asked for float32, so this is exact for 16-bit types).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let entry = self.entries.get(name).ok_or_else(|| ModelError::Checkpoint {
            path: self.dir.clone(),
            reason: format!("tensor `{name}` not found"),
        })?;
        Ok(self.shards[entry.shard].f32(name)?.1)
    }

    /// SHA-256 over the weight files' bytes in file order, hex encoded: identifies the exact
    /// weights an output came from (equal to `cat files | sha256sum` for the same order).
    pub fn weights_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for shard in &self.shards {
            hasher.update(shard.bytes());
        }
        let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.release_pages();
        hex
    }

    /// Gives back the resident pages of one tensor's bytes once copied.
    fn release_tensor(&self, name: &str) {
        if let Some(e) = self.entries.get(name) {
            self.shards[e.shard].release_tensor(name);
        }
    }

    /// Gives the mapped files' resident pages back (see [`TensorFile::release_pages`]); called
    /// once a model is built from them.
    pub fn release_pages(&self) {
        self.shards.iter().for_each(TensorFile::release_pages);
    }

    /// Starts a tracked, scoped view of the weights for building a model on `device`.
    pub fn weights(&self, device: &Device) -> Weights<'_> {
        let keep_half = self.keeps_half(device);
        Weights { ckpt: self, prefix: String::new(), device: device.clone(), keep_half, log: Rc::new(RefCell::new(LoadLog::default())) }
    }
}

/// `MemAvailable` from /proc/meminfo in bytes (Linux); None elsewhere.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Checkpoint { path: index.clone(), reason: format!("invalid JSON: {e}") })?;
        let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| ModelError::Checkpoint {
            path: index.clone(),
            reason: "no `weight_map` object".into(),
        })?;
        let mut files = BTreeSet::new();
        for file in map.values() {
            let name = file.as_str().ok_or_else(|| ModelError::Checkpoint {
                path: index.clone(),
                reason: "a `weight_map` value is not a file name".into(),
            })?;
            // Shard names are plain file names in the same folder; refuse paths that escape it.
            if name.contains('/') || name.contains('\\') || name == ".." {
                return Err(ModelError::Checkpoint { path: index.clone(), reason: format!("shard name `{name}` is not a plain file name") });
            }
            files.insert(dir.join(name));
        }
        return Ok(files.into_iter().collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let read = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::Checkpoint {
            path: dir.to_path_buf(),
            reason: "no model.safetensors, model.safetensors.index.json or *.safetensors file".into(),
        });
    }
    Ok(files)
}

fn open_shard(path: &Path) -> Result<TensorFile> {
    let invalid = |e: &dyn std::fmt::Display| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    };
    let file = TensorFile::open(path).map_err(|e| match e {
        crate::tensor_io::TensorIoError::Format { reason, .. } => invalid(&reason),
        other => other.into(),
    })?;
    // `deserialize` also checks that every tensor lies inside the file (a truncated download),
    // so a bad shard is refused when opened, not half-way through a build.
    SafeTensors::deserialize(file.bytes()).map_err(|e| invalid(&e))?;
    Ok(file)
}

/// What a model build asked for, and what went wrong.
#[derive(Default, Debug)]
struct LoadLog {
    used: BTreeSet<String>,
    missing: Vec<String>,
    mis_shaped: Vec<String>,
    unreadable: Vec<String>,
}

/// A scoped, tracked view of a [`Checkpoint`] used while building a model.
#[derive(Clone)]
pub struct Weights<'a> {
    ckpt: &'a Checkpoint,
    prefix: String,
    device: Device,
    /// Linear-layer matrices stored as BF16 / F16 stay so on the device ([`WeightDtype`]).
    keep_half: bool,
    log: Rc<RefCell<LoadLog>>,
}

impl<'a> Weights<'a> {
    /// A view one level down: `pp("encoder")` turns `x` into `encoder.x`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Weights<'a> {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{}", self.prefix, name) };
        Weights { prefix, ..self.clone() }
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Full checkpoint name of `name` under this view.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// Whether the checkpoint has `name` under this view.
    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.entries.contains_key(&self.path(name))
    }

    /// Loads `name` with the expected `shape` (as stored in the checkpoint, PyTorch layout).
    /// A missing, mis-shaped or unreadable tensor is recorded and a zero tensor returned, so that
    /// one build reports every problem; [`Weights::finish`] turns the record into an error.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.values(name, &shape), shape), &self.device)
    }

    /// Like [`Weights::tensor`] but returns the f32 values on the host (row-major, stored layout),
    /// for parameters that are split or transposed before they go to the device.
    pub fn values(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        let full = self.path(name);
        let count = shape.iter().product();
        let mut log = self.log.borrow_mut();
        match self.ckpt.entries.get(&full) {
            None => log.missing.push(format!("{full} {shape:?}")),
            Some(e) if e.shape.as_slice() != shape => {
                log.used.insert(full.clone());
                log.mis_shaped.push(format!("{full}: expected {shape:?}, found {:?}", e.shape));
            }
            Some(_) => {
                log.used.insert(full.clone());
                match self.ckpt.read_f32(&full) {
                    Ok(values) => {
                        self.ckpt.release_tensor(&full);
                        return values;
                    }
                    Err(e) => log.unreadable.push(e.to_string()),
                }
            }
        }
        vec![0.0; count]
    }

    /// Whether 16-bit matrices are kept 16-bit by this build.
    pub fn keeps_half(&self) -> bool {
        self.keep_half
    }

    /// The device dtype a matrix stored as `name` is kept in: BF16 / F16 when this build keeps
    /// 16-bit matrices and the tensor is stored so, else None (f32).
    pub fn kept_dtype(&self, name: &str) -> Option<DType> {
        if !self.keep_half {
            return None;
        }
        match self.ckpt.dtype(&self.path(name)).as_deref() {
            Some("BF16") => Some(DType::BF16),
            Some("F16") => Some(DType::F16),
            _ => None,
        }
    }

    /// The dtype several matrices fused into one layer are kept in: their common kept dtype,
    /// or None (f32) when they differ.
    pub fn common_kept_dtype(&self, names: &[&str]) -> Option<DType> {
        let first = self.kept_dtype(names.first()?);
        names.iter().all(|n| self.kept_dtype(n) == first).then_some(first).flatten()
    }

    /// A linear layer's matrix: stored `[out, in]` (PyTorch), returned transposed `[in, out]`,
    /// as f32 or kept 16-bit ([`Weights::kept_dtype`]). Missing / mis-shaped tensors are
    /// recorded as by [`Weights::values`].
    pub fn matrix(&self, name: &str, d_out: usize, d_in: usize) -> Tensor<2> {
        let full = self.path(name);
        if let (Some(dtype), Some(e)) = (self.kept_dtype(name), self.ckpt.entries.get(&full)) {
            if e.shape.as_slice() == [d_out, d_in] {
                match self.ckpt.shards[e.shard].half_bits(&full) {
                    Ok((_, _, bits)) => {
                        self.ckpt.release_tensor(&full);
                        self.log.borrow_mut().used.insert(full);
                        let t = crate::nn::transpose(&bits, d_out, d_in);
                        let data = match dtype {
                            DType::BF16 => TensorData::new(t.into_iter().map(burn::tensor::bf16::from_bits).collect::<Vec<_>>(), [d_in, d_out]),
                            _ => TensorData::new(t.into_iter().map(burn::tensor::f16::from_bits).collect::<Vec<_>>(), [d_in, d_out]),
                        };
                        return Tensor::from_data(data, (&self.device, dtype));
                    }
                    Err(err) => self.log.borrow_mut().unreadable.push(err.to_string()),
                }
            }
        }
        let rows = self.values(name, &[d_out, d_in]);
        Tensor::from_data(TensorData::new(crate::nn::transpose(&rows, d_out, d_in), [d_in, d_out]), &self.device)
    }

    /// Marks `name` as known but not needed (e.g. CLIP's `position_ids` buffer).
    pub fn skip(&self, name: &str) {
        let full = self.path(name);
        if self.ckpt.entries.contains_key(&full) {
            self.log.borrow_mut().used.insert(full);
        }
    }

    /// Ends a build: an error listing every missing, mis-shaped and unexpected tensor when there
    /// is any. "Unexpected" means a tensor under `scope` (the model's own prefix) that the build
    /// never asked for; tensors outside it (another tower of a two-tower checkpoint) are ignored.
    pub fn finish(&self, scope: &str) -> Result<()> {
        let log = self.log.borrow();
        let unexpected: Vec<String> = self
            .ckpt
            .entries
            .keys()
            .filter(|k| scope.is_empty() || k.starts_with(scope))
            .filter(|k| !log.used.contains(*k))
            .cloned()
            .collect();
        if log.missing.is_empty() && log.mis_shaped.is_empty() && log.unreadable.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        Err(ModelError::WeightMismatch {
            dir: self.ckpt.dir.clone(),
            missing: log.missing.clone(),
            mis_shaped: log.mis_shaped.clone(),
            unexpected,
            unreadable: log.unreadable.clone(),
        })
    }
}

/// The prefix under which a checkpoint stores the tensor whose name ends in `suffix`,
/// e.g. `vision_model.` for `vision_model.embeddings.patch_embedding.weight`. `Ok(None)` when no
/// tensor ends so; an error when several do (ambiguous checkpoint).
pub fn find_prefix(ckpt: &Checkpoint, suffix: &str) -> Result<Option<String>> {
    let hits: Vec<&str> = ckpt.names().filter(|n| *n == suffix || n.ends_with(&format!(".{suffix}"))).collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one[..one.len() - suffix.len()].to_string())),
        many => Err(ModelError::Checkpoint {
            path: ckpt.dir.clone(),
            reason: format!("several tensors end in `{suffix}`: {}", many.join(", ")),
        }),
    }
}
