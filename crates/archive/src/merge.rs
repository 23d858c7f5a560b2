//! `medvqa merge-manifests`: the outputs of several tasks (a Slurm array, a Kubernetes indexed
//! Job, or runs on different archives) joined into one `manifest.parquet`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{io_error, ArchiveError};
use crate::manifest::{self, ManifestRow, ERROR};
use crate::shards::{Layout, ShardSpec};

/// What a merge found.
#[derive(Debug, Clone, Default)]
pub struct MergeSummary {
    /// Tasks (run files) read.
    pub tasks: usize,
    /// Tasks whose run.json does not say `complete` (still running, or killed).
    pub incomplete: Vec<PathBuf>,
    pub rows: usize,
    pub rows_failed: usize,
    /// Shards (I/N) of a split run that have no output yet.
    pub missing_shards: Vec<String>,
}

/// The tasks in an output folder: `run.json` and `run-sIIIofNNN.json`.
fn tasks_in(dir: &Path) -> Result<Vec<(Layout, PathBuf)>, ArchiveError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let shard = if name == "run.json" {
            None
        } else if let Some(tag) = name.strip_prefix("run-").and_then(|r| r.strip_suffix(".json")) {
            // `sIIIofNNN`, as `ShardSpec::tag` writes it.
            let Some((i, n)) = tag.strip_prefix('s').and_then(|t| t.split_once("of")) else { continue };
            match ShardSpec::parse(&format!("{i}/{n}")) {
                Ok(s) => Some(s),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        out.push((Layout::new(dir, shard), entry.path()));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Joins the tasks found in `dirs` into `out` (Parquet). Shard paths in the result are relative
/// to `out`'s folder. Refuses tasks made with different weights or unit kinds, and units that
/// two tasks both encoded.
pub fn merge_manifests(dirs: &[PathBuf], out: &Path) -> Result<MergeSummary, ArchiveError> {
    let out_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut summary = MergeSummary::default();
    let mut rows: Vec<ManifestRow> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut reference: Option<(String, String, PathBuf)> = None;
    let mut shard_counts: HashMap<usize, Vec<usize>> = HashMap::new();
    for dir in dirs {
        let tasks = tasks_in(dir)?;
        if tasks.is_empty() {
            return Err(ArchiveError::Usage(format!("{}: no run.json or run-s*.json (not an encode-archive output folder)", dir.display())));
        }
        for (layout, run_json) in tasks {
            summary.tasks += 1;
            let text = std::fs::read_to_string(&run_json).map_err(|e| io_error(&run_json, e))?;
            let run: serde_json::Value = serde_json::from_str(&text).map_err(|e| ArchiveError::Manifest {
                path: run_json.clone(),
                reason: e.to_string(),
            })?;
            if run["complete"] != serde_json::Value::Bool(true) {
                summary.incomplete.push(run_json.clone());
            }
            if let Some((i, n)) = run["settings"]["shard"].as_str().and_then(|s| s.split_once('/')) {
                if let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>()) {
                    shard_counts.entry(n).or_default().push(i);
                }
            }
            let weights = run["settings"]["weights_sha256"].as_str().unwrap_or_default().to_string();
            let unit = run["settings"]["unit"].as_str().unwrap_or_default().to_string();
            match &reference {
                None => reference = Some((weights, unit, run_json.clone())),
                Some((w, u, first)) if *w != weights || *u != unit => {
                    return Err(ArchiveError::Usage(format!(
                        "{} (weights {}, unit {unit}) and {} (weights {}, unit {u}) were made differently; their embeddings do not belong in one table",
                        run_json.display(),
                        short(&weights),
                        first.display(),
                        short(w)
                    )))
                }
                Some(_) => {}
            }
            for (manifest_path, task_rows) in manifest::read_task_rows(&layout)? {
                for mut r in task_rows {
                    if let Some(other) = seen.insert(r.unit_id.clone(), manifest_path.clone()) {
                        return Err(ArchiveError::Usage(format!(
                            "unit {} is in both {} and {} (the same archive encoded twice with overlapping shards?)",
                            r.unit_id,
                            other.display(),
                            manifest_path.display()
                        )));
                    }
                    if let Some(s) = &r.shard {
                        r.shard = Some(relative_to(&dir.join(s), out_dir));
                    }
                    rows.push(r);
                }
            }
        }
    }
    for (n, mut got) in shard_counts {
        got.sort_unstable();
        got.dedup();
        summary.missing_shards.extend((0..n).filter(|i| !got.contains(i)).map(|i| format!("{i}/{n}")));
    }
    summary.missing_shards.sort();
    summary.rows = rows.len();
    summary.rows_failed = rows.iter().filter(|r| r.status == ERROR).count();
    let (weights, unit, _) = reference.unwrap_or_default();
    manifest::write_parquet(
        out,
        &rows,
        &[
            ("medvqa_version", env!("CARGO_PKG_VERSION").to_string()),
            ("weights_sha256", weights),
            ("unit", unit),
            ("merged_tasks", summary.tasks.to_string()),
        ],
    )?;
    Ok(summary)
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// `path` relative to `base` when both are absolute or both relative, `/`-separated;
/// otherwise `path` as given.
fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    let pc: Vec<_> = p.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); bc.len() - common];
    parts.extend(pc[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}
