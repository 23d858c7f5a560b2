//! Batch-encoding of imaging archives: walk a folder of DICOM / NIfTI / PNG / JPEG, group it into
//! units (image, frame or series), encode them with a vision tower, and write sharded safetensors
//! files with JSONL manifests and a Parquet table, resumably and shardable across machines.
//!
//! Output folder of one task (suffix `-sIIIofNNN` on every name under `--shard I/N`):
//! - `embeddings-00000.safetensors`: `embeddings` `[n, D]` (F32, or F16), and with
//!   `--keep-slices` `slice_embeddings` `[Σk, D]` + `slice_offsets` `[n + 1]` (row i's slices
//!   are `slice_embeddings[off[i]:off[i+1]]`);
//! - `embeddings-00000.jsonl`: one [`manifest::ManifestRow`] per unit of that shard, failures
//!   included (status `error`, no row);
//! - `manifest.parquet`: every row of every shard; `errors.jsonl`; `skipped.jsonl` (files that
//!   are not images or duplicates); `run.json` (settings, device, completion).

pub mod error;
pub mod manifest;
pub mod merge;
pub mod parquet_out;
pub mod privacy;
pub mod run;
pub mod shards;
pub mod units;

pub use error::ArchiveError;
pub use merge::{merge_manifests, MergeSummary};
pub use privacy::UidPolicy;
pub use run::{encode_archive, ArchiveOptions, Encoder, Progress, RunSummary};
pub use shards::ShardSpec;
pub use units::UnitMode;
