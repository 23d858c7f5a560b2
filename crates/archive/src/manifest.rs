//! Manifest rows: one per unit, in the shard's JSONL and in `manifest.parquet`.
//!
//! Privacy: rows hold no patient identifiers. Names, patient IDs, birth dates and accession
//! numbers are never read into a row; UIDs are kept (or keyed-hashed with `--hash-uids`); paths
//! are relative to the archive root.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_error, ArchiveError};
use crate::parquet_out::{write_table, Column, Values};

/// `status` of a row.
pub const OK: &str = "ok";
pub const ERROR: &str = "error";

/// One unit's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRow {
    /// Stable identifier of the unit (see `units`), UIDs hashed under `--hash-uids`.
    pub unit_id: String,
    /// The job (series, instance or file) the unit came from; resume works job by job.
    pub job_id: String,
    /// `image`, `frame` or `series`.
    pub unit: String,
    /// `ok` or `error`.
    pub status: String,
    pub error: Option<String>,
    /// The shard's safetensors file name (relative to the manifest's folder in a merged
    /// manifest), and the row in its `embeddings`; null for error rows.
    pub shard: Option<String>,
    pub row: Option<i64>,
    /// Source files relative to the archive root.
    pub source: Vec<String>,
    pub frame: Option<i64>,
    pub time_point: Option<i64>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    /// Acquisition shape: rows, columns, and frames / slices when more than one.
    pub rows: Option<i64>,
    pub cols: Option<i64>,
    pub depth: Option<i64>,
    /// Voxel spacing in mm: between slices, between rows, between columns.
    pub spacing_slice_mm: Option<f64>,
    pub spacing_row_mm: Option<f64>,
    pub spacing_col_mm: Option<f64>,
    /// Slices / frames encoded and mean-pooled into this row (0-based, in the stored order
    /// after sorting along the normal), or null for one image.
    pub pooled_indices: Option<Vec<i64>>,
    /// Preprocessing provenance as JSON text (VOI window, processor steps with parameters).
    pub preprocessing: Option<String>,
    pub warnings: Vec<String>,
    pub model: String,
    pub weights_sha256: String,
}

/// Reads a shard's JSONL manifest.
pub fn read_jsonl(path: &Path) -> Result<Vec<ManifestRow>, ArchiveError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ArchiveError::Manifest {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// Rows as JSON lines.
pub fn to_jsonl(rows: &[ManifestRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        // A row of strings, numbers and lists always serialises.
        out.extend(serde_json::to_vec(r).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// Writes rows as a Parquet table (column names = the JSON keys).
pub fn write_parquet(path: &Path, rows: &[ManifestRow], metadata: &[(&str, String)]) -> Result<(), ArchiveError> {
    let s = |f: fn(&ManifestRow) -> Option<String>| Values::Str(rows.iter().map(f).collect());
    let i = |f: fn(&ManifestRow) -> Option<i64>| Values::I64(rows.iter().map(f).collect());
    let d = |f: fn(&ManifestRow) -> Option<f64>| Values::F64(rows.iter().map(f).collect());
    let columns = vec![
        Column::new("unit_id", s(|r| Some(r.unit_id.clone()))),
        Column::new("job_id", s(|r| Some(r.job_id.clone()))),
        Column::new("unit", s(|r| Some(r.unit.clone()))),
        Column::new("status", s(|r| Some(r.status.clone()))),
        Column::new("error", s(|r| r.error.clone())),
        Column::new("shard", s(|r| r.shard.clone())),
        Column::new("row", i(|r| r.row)),
        Column::new("source", Values::StrList(rows.iter().map(|r| r.source.clone()).collect())),
        Column::new("frame", i(|r| r.frame)),
        Column::new("time_point", i(|r| r.time_point)),
        Column::new("study_instance_uid", s(|r| r.study_instance_uid.clone())),
        Column::new("series_instance_uid", s(|r| r.series_instance_uid.clone())),
        Column::new("sop_instance_uid", s(|r| r.sop_instance_uid.clone())),
        Column::new("modality", s(|r| r.modality.clone())),
        Column::new("body_part", s(|r| r.body_part.clone())),
        Column::new("rows", i(|r| r.rows)),
        Column::new("cols", i(|r| r.cols)),
        Column::new("depth", i(|r| r.depth)),
        Column::new("spacing_slice_mm", d(|r| r.spacing_slice_mm)),
        Column::new("spacing_row_mm", d(|r| r.spacing_row_mm)),
        Column::new("spacing_col_mm", d(|r| r.spacing_col_mm)),
        Column::new(
            "pooled_indices",
            s(|r| r.pooled_indices.as_ref().map(|v| serde_json::to_string(v).unwrap_or_default())),
        ),
        Column::new("preprocessing", s(|r| r.preprocessing.clone())),
        Column::new("warnings", Values::StrList(rows.iter().map(|r| r.warnings.clone()).collect())),
        Column::new("model", s(|r| Some(r.model.clone()))),
        Column::new("weights_sha256", s(|r| Some(r.weights_sha256.clone()))),
    ];
    write_table(path, &columns, metadata)
}

/// The complete shards' manifests of one task's output folder, in shard order, with the
/// manifest file each came from.
pub fn read_task_rows(layout: &crate::shards::Layout) -> Result<Vec<(PathBuf, Vec<ManifestRow>)>, ArchiveError> {
    layout
        .complete_shards()?
        .into_iter()
        .map(|n| {
            let p = layout.shard_manifest(n);
            if !p.is_file() {
                return Err(ArchiveError::Manifest {
                    path: p.clone(),
                    reason: format!(
                        "missing, although its shard {} is complete (was it deleted by hand?)",
                        layout.shard_tensors(n).display()
                    ),
                });
            }
            read_jsonl(&p).map(|rows| (p, rows))
        })
        .collect()
}
