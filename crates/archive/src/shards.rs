//! Shard files in an output folder: names, atomic writes, and which shards are complete.
//!
//! A shard is `PREFIX-NNNNN.jsonl` (its manifest rows) plus `PREFIX-NNNNN.safetensors` (its
//! tensors). Both are written to a hidden temporary name and renamed; the manifest first, the
//! tensors last. The rename of the safetensors file is the commit: a shard whose safetensors
//! file exists is complete, and its manifest is already in place. Anything else (temporary
//! files, a manifest without tensors) is the leftover of a killed run and is removed by
//! `--resume` before it continues.

use std::path::{Path, PathBuf};

use crate::error::{io_error, ArchiveError};

/// `--shard I/N`: this task's part of a run split over N machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl ShardSpec {
    /// Parses `I/N` with 0 ≤ I < N (0-based, as Slurm's `SLURM_ARRAY_TASK_ID` from `--array=0-N-1`
    /// and Kubernetes' `JOB_COMPLETION_INDEX` are).
    pub fn parse(s: &str) -> Result<ShardSpec, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s:?}: expected I/N, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("--shard {s:?}: I is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("--shard {s:?}: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("--shard {s:?}: need 0 <= I < N (I is 0-based)"));
        }
        Ok(ShardSpec { index, count })
    }

    /// The file-name tag of this task, e.g. `s003of016`.
    pub fn tag(&self) -> String {
        let w = self.count.to_string().len().max(3);
        format!("s{:0w$}of{:0w$}", self.index, self.count)
    }

    /// Whether a unit with this partition key belongs to this task: the first 8 bytes of
    /// SHA-256 of the key, modulo N — the same on every machine, OS and release.
    pub fn owns(&self, partition_key: &str) -> bool {
        partition_of(partition_key, self.count) == self.index
    }
}

/// The partition (0..n) of a key.
pub fn partition_of(key: &str, n: usize) -> usize {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) % n as u64) as usize
}

/// File names of one task's outputs inside the output folder.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// `embeddings` or `embeddings-s003of016`.
    pub prefix: String,
    /// `""` or `-s003of016`, for run.json, errors.jsonl, manifest.parquet.
    pub suffix: String,
}

impl Layout {
    pub fn new(dir: &Path, shard: Option<ShardSpec>) -> Layout {
        let suffix = shard.map(|s| format!("-{}", s.tag())).unwrap_or_default();
        Layout {
            dir: dir.to_path_buf(),
            prefix: format!("embeddings{suffix}"),
            suffix,
        }
    }

    pub fn shard_tensors(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}-{n:05}.safetensors", self.prefix))
    }

    pub fn shard_manifest(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}-{n:05}.jsonl", self.prefix))
    }

    pub fn run_json(&self) -> PathBuf {
        self.dir.join(format!("run{}.json", self.suffix))
    }

    pub fn errors(&self) -> PathBuf {
        self.dir.join(format!("errors{}.jsonl", self.suffix))
    }

    pub fn skipped(&self) -> PathBuf {
        self.dir.join(format!("skipped{}.jsonl", self.suffix))
    }

    pub fn parquet(&self) -> PathBuf {
        self.dir.join(format!("manifest{}.parquet", self.suffix))
    }

    /// Shard numbers whose tensors file exists (complete shards), ascending.
    pub fn complete_shards(&self) -> Result<Vec<usize>, ArchiveError> {
        Ok(self
            .own_files()?
            .into_iter()
            .filter_map(|name| self.shard_number(&name, ".safetensors"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Removes what a killed run left: temporary files of this task and manifests whose shard
    /// never got its tensors. Returns the removed paths.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>, ArchiveError> {
        let complete = self.complete_shards()?;
        let mut removed = Vec::new();
        for name in self.own_files()? {
            let stale_partial = name.starts_with('.') && name.contains(".partial-");
            let orphan_manifest = self
                .shard_number(&name, ".jsonl")
                .is_some_and(|n| !complete.contains(&n));
            if stale_partial || orphan_manifest {
                let p = self.dir.join(&name);
                std::fs::remove_file(&p).map_err(|e| io_error(&p, e))?;
                removed.push(p);
            }
        }
        Ok(removed)
    }

    fn shard_number(&self, name: &str, ext: &str) -> Option<usize> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('-')?;
        let digits = rest.strip_suffix(ext)?;
        (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }

    /// File names in the folder that belong to this task (its prefix, or a temporary file of
    /// one of its outputs).
    fn own_files(&self) -> Result<Vec<String>, ArchiveError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_error(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_error(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let bare = name.strip_prefix('.').unwrap_or(&name);
            let ours = bare.starts_with(&format!("{}-", self.prefix))
                || [self.run_json(), self.errors(), self.skipped(), self.parquet()]
                    .iter()
                    .any(|p| p.file_name().is_some_and(|f| bare.starts_with(&*f.to_string_lossy())));
            if ours {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Atomic writes shared with `medvqa encode` and the tensor writer (temporary name, fsync,
/// rename), so every output of the project is committed the same way.
pub use medvqa_model::tensor_io::{partial_path, write_atomic};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_spec_parses_and_partitions_stably() {
        assert_eq!(ShardSpec::parse("2/4").unwrap(), ShardSpec { index: 2, count: 4 });
        assert!(ShardSpec::parse("4/4").is_err());
        assert!(ShardSpec::parse("1").is_err());
        assert!(ShardSpec::parse("a/2").is_err());
        assert_eq!(ShardSpec { index: 3, count: 16 }.tag(), "s003of016");
        // Pinned values (computed independently with Python's hashlib: first 8 bytes of
        // SHA-256, big-endian, mod N): a change would silently re-partition users' running arrays.
        assert_eq!(partition_of("series:1.2.3", 7), 0);
        assert_eq!(partition_of("sop:1.2.840.10008.5", 16), 13);
        assert_eq!(partition_of("path:a/b.png", 3), 2);
        let counts = (0..1000).fold([0usize; 4], |mut c, i| {
            c[partition_of(&format!("sop:1.2.{i}"), 4)] += 1;
            c
        });
        assert!(counts.iter().all(|&c| c > 200), "{counts:?}");
    }

    #[test]
    fn leftovers_are_found_and_complete_shards_kept() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path(), None);
        for n in ["embeddings-00000.jsonl", "embeddings-00000.safetensors", "embeddings-00001.jsonl", ".embeddings-00002.jsonl.partial-77", "notes.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(l.complete_shards().unwrap(), vec![0]);
        let removed = l.remove_leftovers().unwrap();
        assert_eq!(removed.len(), 2);
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("embeddings-00000.jsonl").exists());
    }
}
