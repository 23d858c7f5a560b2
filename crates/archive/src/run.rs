//! The encoding run: planned jobs → a decoding pool → a bounded queue → batches on the device →
//! shards, resumably.
//!
//! Memory bound. Jobs are prepared (read, decoded, windowed, resized) in chunks of
//! `chunk_jobs` on a pool of `--jobs` threads; a chunk waits in a queue of one while the
//! previous one is encoded. So at most three chunks of model input are alive — the one being
//! encoded, one queued, one being prepared — i.e. `3 × chunk_jobs × images per job × 3·H·W·4`
//! bytes, plus the full-resolution decode of at most `--jobs` jobs in flight (one series
//! volume each in `--unit series`), plus the open shard's embeddings (`--shard-size × D × 4`).
//! None of it grows with the archive; the plan itself holds one header summary per file.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use burn::prelude::*;
use medvqa_ingest::lut::Window;
use medvqa_ingest::model_input::sample_slice_indices;
use medvqa_ingest::pipeline::{self, Item, ItemKind, Options};
use medvqa_model::tensor_io::TensorWriter;
use medvqa_model::vision::VisionTransformer;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{io_error, ArchiveError};
use crate::manifest::{self, ManifestRow, ERROR, OK};
use crate::privacy::UidPolicy;
use crate::shards::{write_atomic, Layout, ShardSpec};
use crate::units::{plan_archive, relative, sources, UnitMode, WorkJob, WorkKind};

/// Everything a run is asked to do.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Archive folder (or one file / DICOMDIR).
    pub root: PathBuf,
    /// Checkpoint folder (for `preprocessor_config.json` and provenance).
    pub model_dir: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    pub unit: UnitMode,
    /// Slices (frames) sampled and mean-pooled per pooled unit.
    pub series_slices: usize,
    /// Also write the per-slice vectors of pooled units (`slice_embeddings`, `slice_offsets`).
    pub keep_slices: bool,
    /// Images per forward pass.
    pub batch: usize,
    pub shard: Option<ShardSpec>,
    pub resume: bool,
    /// Decoding threads.
    pub jobs: usize,
    /// Units per shard file (a shard never splits a job, so it may hold a few more).
    pub shard_size: usize,
    /// Write `embeddings` as F16 instead of F32.
    pub f16: bool,
    pub uids: UidPolicy,
    /// VOI window applied before the processor, instead of the file's.
    pub window: Option<Window>,
    pub pad_to_square: bool,
}

/// The encoder a run uses.
pub struct Encoder<'a> {
    pub model: &'a VisionTransformer,
    pub device: &'a Device,
    /// What the device is, for run.json ("cpu (flex)", an adapter name…).
    pub device_label: String,
    pub weights_sha256: String,
}

/// What a run reports as it goes and at its end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// Files of the jobs handled so far (this run) and in all (after shard and resume filters).
    pub files_done: usize,
    pub files_total: usize,
    pub jobs_done: usize,
    pub jobs_total: usize,
    /// Units written by this run, and how many of them failed.
    pub units_ok: usize,
    pub units_failed: usize,
    pub elapsed_secs: f64,
    /// Time inside the model (forward + read back).
    pub model_secs: f64,
    /// Images through the model.
    pub images_encoded: usize,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub progress: Progress,
    /// Jobs already in the output before this run (`--resume`).
    pub jobs_resumed: usize,
    /// Jobs other tasks own (`--shard`).
    pub jobs_other_shards: usize,
    /// Files passed over with a reason (no pixel data, duplicates): `skipped.jsonl`.
    pub skipped: usize,
    /// Rows in this task's manifest (all runs), ok and failed.
    pub rows_total: usize,
    pub rows_failed: usize,
    pub shards_written: usize,
    pub manifest: PathBuf,
    pub errors: PathBuf,
    /// Leftovers of a killed run removed before resuming.
    pub removed_leftovers: Vec<PathBuf>,
}

/// The settings a resumed run must share with the run it continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    model: String,
    model_type: String,
    weights_sha256: String,
    unit: UnitMode,
    series_slices: usize,
    keep_slices: bool,
    dtype: String,
    shard: Option<String>,
    window: Option<[f64; 2]>,
    pad_to_square: bool,
    uid_key_fingerprint: Option<String>,
    embedding_dim: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct RunJson {
    tool: String,
    version: String,
    settings: Settings,
    complete: bool,
    device: String,
    jobs_total: usize,
    rows: usize,
    rows_failed: usize,
    shards: usize,
}

/// One prepared unit: its row (without shard/row) and its model input.
struct PreparedUnit {
    row: ManifestRow,
    /// `[count, 3, H, W]` in C order.
    pixels: Vec<f32>,
    plane: [usize; 3],
    count: usize,
}

/// One prepared job: units that can be encoded and rows that already failed.
struct PreparedJob {
    files: usize,
    units: Vec<PreparedUnit>,
    failed: Vec<ManifestRow>,
}

/// A finished unit waiting in the open shard.
struct Done {
    row: ManifestRow,
    embedding: Vec<f32>,
    slices: Vec<f32>,
}

/// Encodes the archive. `report` is called after every chunk with the progress so far.
pub fn encode_archive(
    opts: &ArchiveOptions,
    encoder: &Encoder<'_>,
    report: &mut dyn FnMut(&Progress),
) -> Result<RunSummary, ArchiveError> {
    let started = Instant::now();
    if opts.batch == 0 || opts.jobs == 0 || opts.shard_size == 0 || opts.series_slices == 0 {
        return Err(ArchiveError::Usage(
            "--batch, --jobs, --shard-size and --series-slices must be at least 1".into(),
        ));
    }
    let layout = Layout::new(&opts.out, opts.shard);
    let settings = Settings {
        model: opts.model_dir.display().to_string(),
        model_type: encoder.model.config().model_type.clone(),
        weights_sha256: encoder.weights_sha256.clone(),
        unit: opts.unit,
        series_slices: opts.series_slices,
        keep_slices: opts.keep_slices,
        dtype: if opts.f16 { "f16" } else { "f32" }.into(),
        shard: opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        window: opts.window.map(|w| [w.center, w.width]),
        pad_to_square: opts.pad_to_square,
        uid_key_fingerprint: opts.uids.fingerprint(),
        embedding_dim: encoder.model.embedding_dim(),
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| io_error(&opts.out, e))?;
    let removed_leftovers = check_previous(&layout, &settings, opts.resume)?;

    // What earlier runs finished: whole jobs, by their (possibly hashed) identifier.
    let mut done_jobs = std::collections::HashSet::new();
    let mut next_shard = 0;
    for (path, rows) in manifest::read_task_rows(&layout)? {
        for r in rows {
            done_jobs.insert(r.job_id);
        }
        next_shard = next_shard.max(shard_number(&path).map_or(0, |n| n + 1));
    }

    let plan = plan_archive(&opts.root, opts.unit);
    let skipped_lines: Vec<u8> = plan
        .skipped
        .iter()
        .filter(|s| opts.shard.is_none_or(|sh| sh.owns(&s.partition)))
        .flat_map(|s| {
            let mut l = serde_json::to_vec(&serde_json::json!({
                "source": relative(&opts.root, &s.source),
                "reason": strip_root(&s.reason, &opts.root),
                "unit_id": s.duplicate_of.as_deref().map(|id| hash_id(id, &opts.uids)),
            }))
            .unwrap_or_default();
            l.push(b'\n');
            l
        })
        .collect();
    let total_jobs = plan.jobs.len();
    let mut other_shards = 0;
    let mut resumed = 0;
    let jobs: Vec<WorkJob> = plan
        .jobs
        .into_iter()
        .filter(|j| {
            if opts.shard.is_some_and(|s| !s.owns(&j.partition)) {
                other_shards += 1;
                return false;
            }
            if done_jobs.contains(&hash_id(&j.id, &opts.uids)) {
                resumed += 1;
                return false;
            }
            true
        })
        .collect();
    write_atomic(&layout.skipped(), &skipped_lines)?;
    write_run_json(&layout, &settings, encoder, false, total_jobs - other_shards, (0, 0, next_shard))?;

    let mut progress = Progress {
        files_total: jobs.iter().map(|j| sources(j).len()).sum(),
        jobs_total: jobs.len(),
        ..Progress::default()
    };
    let config = opts.model_dir.join("preprocessor_config.json");
    let mut ingest = Options::for_hf_processor(config, opts.window, opts.pad_to_square);
    let pooled = opts.unit != UnitMode::Frame;
    if let (true, Some(ms)) = (pooled, ingest.model.as_mut()) {
        ms.slices = Some(opts.series_slices);
    }
    let per_job = if opts.unit == UnitMode::Series { opts.series_slices } else { 1 };
    let chunk_jobs = (2 * opts.jobs).max(opts.batch.div_ceil(per_job)).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .thread_name(|i| format!("medvqa-decode-{i}"))
        .build()
        .map_err(|e| ArchiveError::Internal(format!("cannot start the decoding pool: {e}")))?;
    let ctx = Ctx {
        opts,
        encoder,
        ingest: &ingest,
        model_name: opts.model_dir.display().to_string(),
    };
    let mut shard = ShardWriter {
        layout: &layout,
        next: next_shard,
        open: Vec::new(),
        written: 0,
        opts,
        encoder,
    };

    let mut model_time = Duration::ZERO;
    std::thread::scope(|scope| -> Result<(), ArchiveError> {
        // Capacity one: the producer prepares chunk k+1 while chunk k is encoded, and blocks
        // rather than running ahead.
        let (tx, rx) = sync_channel::<Vec<PreparedJob>>(1);
        let ctx_ref = &ctx;
        let jobs_ref = &jobs;
        let pool_ref = &pool;
        scope.spawn(move || {
            for chunk in jobs_ref.chunks(chunk_jobs) {
                let prepared: Vec<PreparedJob> = pool_ref.install(|| chunk.par_iter().map(|j| ctx_ref.prepare(j)).collect());
                if tx.send(prepared).is_err() {
                    break;
                }
            }
        });
        for chunk in rx {
            let t0 = Instant::now();
            let finished = ctx.encode_chunk(chunk, &mut progress);
            model_time += t0.elapsed();
            for job_rows in finished {
                for d in &job_rows {
                    if d.row.status == OK {
                        progress.units_ok += 1;
                    } else {
                        progress.units_failed += 1;
                    }
                }
                shard.push_job(job_rows)?;
            }
            progress.elapsed_secs = started.elapsed().as_secs_f64();
            progress.model_secs = model_time.as_secs_f64();
            report(&progress);
        }
        Ok(())
    })?;
    shard.flush()?;

    // The task's outputs over all its runs: errors and the Parquet manifest.
    let mut rows = Vec::new();
    for (_, r) in manifest::read_task_rows(&layout)? {
        rows.extend(r);
    }
    let mut errors = Vec::new();
    for r in &rows {
        let failed_sources = r.warnings.iter().filter(|w| w.starts_with(SOURCE_FAILED));
        if r.status == ERROR || failed_sources.clone().next().is_some() {
            let mut line = serde_json::to_vec(&serde_json::json!({
                "unit_id": r.unit_id,
                "status": r.status,
                "source": r.source,
                "error": r.error,
                "failed_sources": failed_sources.collect::<Vec<_>>(),
            }))
            .unwrap_or_default();
            line.push(b'\n');
            errors.extend(line);
        }
    }
    write_atomic(&layout.errors(), &errors)?;
    let failed = rows.iter().filter(|r| r.status == ERROR).count();
    manifest::write_parquet(
        &layout.parquet(),
        &rows,
        &[
            ("medvqa_version", env!("CARGO_PKG_VERSION").to_string()),
            ("model", settings.model.clone()),
            ("weights_sha256", settings.weights_sha256.clone()),
            ("unit", opts.unit.as_str().to_string()),
        ],
    )?;
    let shards_total = layout.complete_shards()?.len();
    write_run_json(&layout, &settings, encoder, true, total_jobs - other_shards, (rows.len(), failed, shards_total))?;
    progress.elapsed_secs = started.elapsed().as_secs_f64();
    progress.model_secs = model_time.as_secs_f64();
    Ok(RunSummary {
        progress,
        jobs_resumed: resumed,
        jobs_other_shards: other_shards,
        skipped: plan.skipped.len(),
        rows_total: rows.len(),
        rows_failed: failed,
        shards_written: shard.written,
        manifest: layout.parquet(),
        errors: layout.errors(),
        removed_leftovers,
    })
}

/// Warning prefix for a file of a unit that could not be read (the unit was encoded from the
/// others); such units are listed in errors.jsonl too.
const SOURCE_FAILED: &str = "source failed: ";

fn shard_number(manifest: &Path) -> Option<usize> {
    let stem = manifest.file_stem()?.to_str()?;
    stem.rsplit('-').next()?.parse().ok()
}

/// Refuses to mix runs: without `--resume` the folder must hold no run of this task; with it,
/// the settings must match. Returns leftovers removed before resuming.
fn check_previous(layout: &Layout, settings: &Settings, resume: bool) -> Result<Vec<PathBuf>, ArchiveError> {
    let run_json = layout.run_json();
    let has_shards = !layout.complete_shards()?.is_empty();
    if !resume {
        if run_json.exists() || has_shards {
            return Err(ArchiveError::Usage(format!(
                "{} already holds a run ({}); pass --resume to continue it, or choose another --out (nothing was changed)",
                layout.dir.display(),
                if run_json.exists() { run_json.display().to_string() } else { "shard files".into() }
            )));
        }
        return Ok(vec![]);
    }
    if run_json.exists() {
        let text = std::fs::read_to_string(&run_json).map_err(|e| io_error(&run_json, e))?;
        let old: RunJson = serde_json::from_str(&text).map_err(|e| ArchiveError::Manifest {
            path: run_json.clone(),
            reason: format!("not a medvqa encode-archive run file: {e}"),
        })?;
        let diffs = settings_diff(&old.settings, settings);
        if !diffs.is_empty() {
            return Err(ArchiveError::Usage(format!(
                "--resume: {} was made with other settings ({}); resume with the same ones, or choose another --out",
                run_json.display(),
                diffs.join("; ")
            )));
        }
    } else if has_shards {
        return Err(ArchiveError::Usage(format!(
            "--resume: {} has shard files but no {}; cannot tell how they were made",
            layout.dir.display(),
            run_json.display()
        )));
    }
    layout.remove_leftovers()
}

fn settings_diff(old: &Settings, new: &Settings) -> Vec<String> {
    let a = serde_json::to_value(old).unwrap_or_default();
    let b = serde_json::to_value(new).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["unreadable settings".into()];
    };
    // The model is compared by its weights' hash: the same folder may be reached by another
    // path on resume (another working directory, another node's mount).
    a.iter()
        .filter(|(k, v)| k.as_str() != "model" && b.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: was {v}, now {}", b.get(k).cloned().unwrap_or_default()))
        .collect()
}

fn write_run_json(
    layout: &Layout,
    settings: &Settings,
    encoder: &Encoder<'_>,
    complete: bool,
    jobs_total: usize,
    (rows, rows_failed, shards): (usize, usize, usize),
) -> Result<(), ArchiveError> {
    let run = RunJson {
        tool: "medvqa encode-archive".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        settings: settings.clone(),
        complete,
        device: encoder.device_label.clone(),
        jobs_total,
        rows,
        rows_failed,
        shards,
    };
    let bytes = serde_json::to_vec_pretty(&run).map_err(|e| ArchiveError::Internal(e.to_string()))?;
    Ok(write_atomic(&layout.run_json(), &bytes)?)
}

/// An identifier as written: the UIDs in it keyed-hashed under `--hash-uids`.
fn hash_id(id: &str, uids: &UidPolicy) -> String {
    if !uids.is_hashed() {
        return id.to_string();
    }
    let (head, rest) = match id.split_once(':') {
        Some((h, r)) if h == "sop" || h == "series" => (h, r),
        _ => return id.to_string(),
    };
    // `<uid>` then suffixes that start with '/' or '#'.
    let cut = rest.find(['/', '#']).unwrap_or(rest.len());
    format!("{head}:{}{}", uids.uid(&rest[..cut]), &rest[cut..])
}

fn strip_root(text: &str, root: &Path) -> String {
    let r = root.display().to_string();
    if r.is_empty() || root.is_file() {
        return text.to_string();
    }
    let with_sep = format!("{}/", r.trim_end_matches('/'));
    text.replace(&with_sep, "")
}

struct Ctx<'a> {
    opts: &'a ArchiveOptions,
    encoder: &'a Encoder<'a>,
    ingest: &'a Options,
    model_name: String,
}

impl Ctx<'_> {
    fn base_row(&self, job: &WorkJob) -> ManifestRow {
        let opts = self.opts;
        ManifestRow {
            unit_id: hash_id(&job.id, &opts.uids),
            job_id: hash_id(&job.id, &opts.uids),
            unit: opts.unit.as_str().into(),
            status: OK.into(),
            error: None,
            shard: None,
            row: None,
            source: sources(job).iter().map(|s| relative(&opts.root, s)).collect(),
            frame: None,
            time_point: None,
            study_instance_uid: job.facts.study_instance_uid.as_deref().map(|u| opts.uids.uid(u)),
            series_instance_uid: None,
            sop_instance_uid: None,
            modality: None,
            body_part: None,
            rows: job.facts.rows,
            cols: job.facts.cols,
            depth: job.facts.depth,
            spacing_slice_mm: None,
            spacing_row_mm: None,
            spacing_col_mm: None,
            pooled_indices: None,
            preprocessing: None,
            warnings: vec![],
            model: self.model_name.clone(),
            weights_sha256: self.encoder.weights_sha256.clone(),
        }
    }

    fn failed_row(&self, job: &WorkJob, error: &str) -> ManifestRow {
        let mut r = self.base_row(job);
        r.status = ERROR.into();
        r.error = Some(strip_root(error, &self.opts.root));
        r
    }

    /// Reads one job into model input (runs on the decoding pool).
    fn prepare(&self, job: &WorkJob) -> PreparedJob {
        let files = sources(job).len();
        let ingest_job = match &job.kind {
            WorkKind::Failed { error, .. } => {
                return PreparedJob {
                    files,
                    units: vec![],
                    failed: vec![self.failed_row(job, error)],
                }
            }
            WorkKind::Ingest(j) => j,
        };
        // A bug that panics on one file must not take the run down.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pipeline::run_job(ingest_job, "unit", self.ingest)
        }));
        let out = match out {
            Ok(o) => o,
            Err(_) => {
                return PreparedJob {
                    files,
                    units: vec![],
                    failed: vec![self.failed_row(job, "internal error while reading (a bug: please report it with this file)")],
                }
            }
        };
        let failures: Vec<String> = out
            .failures
            .iter()
            .map(|f| format!("{SOURCE_FAILED}{}", strip_root(&f.error, &self.opts.root)))
            .collect();
        if out.items.is_empty() {
            let error = failures
                .first()
                .map(|f| f.trim_start_matches(SOURCE_FAILED).to_string())
                .unwrap_or_else(|| "the reader produced no image".into());
            return PreparedJob {
                files,
                units: vec![],
                failed: vec![self.failed_row(job, &error)],
            };
        }
        let mut units = Vec::new();
        let mut failed = Vec::new();
        let several_items = out.items.len() > 1;
        for item in out.items {
            match self.units_of(job, item, several_items, &failures) {
                Ok(u) => units.extend(u),
                Err(e) => failed.push(self.failed_row(job, &e)),
            }
        }
        PreparedJob { files, units, failed }
    }

    /// Splits an item into units: one (pooled or a single image), or one per frame.
    fn units_of(&self, job: &WorkJob, item: Item, several_items: bool, failures: &[String]) -> Result<Vec<PreparedUnit>, String> {
        let sc = &item.sidecar;
        let array = item.array.as_standard_layout();
        let data = array.as_slice().ok_or("model input is not contiguous (a bug)")?;
        let (count, plane) = match *array.shape() {
            [c, h, w] => (None, [c, h, w]),
            [s, c, h, w] => (Some(s), [c, h, w]),
            ref other => return Err(format!("model input of shape {other:?}, expected [3, H, W] or [S, 3, H, W]")),
        };
        let uids = &self.opts.uids;
        let mut row = self.base_row(job);
        if several_items {
            if let Some(t) = sc.time_point {
                // A 4D NIfTI: each time point is its own unit.
                row.unit_id = format!("{}#t={t}", row.unit_id);
            }
        }
        row.source = sc.source.iter().map(|s| relative(&self.opts.root, s)).collect();
        row.time_point = sc.time_point.map(|t| t as i64);
        row.series_instance_uid = sc.series_instance_uid.as_deref().map(|u| uids.uid(u));
        row.sop_instance_uid = (sc.sop_instance_uids.len() == 1).then(|| uids.uid(&sc.sop_instance_uids[0]));
        row.modality = sc.modality.clone();
        row.body_part = sc.body_part.clone();
        if let Some(sp) = &sc.spacing {
            let get = |i: usize| sp.get(i).copied().flatten();
            if sp.len() == 3 {
                (row.spacing_slice_mm, row.spacing_row_mm, row.spacing_col_mm) = (get(0), get(1), get(2));
            } else if sp.len() == 2 {
                (row.spacing_row_mm, row.spacing_col_mm) = (get(0), get(1));
            }
        }
        row.preprocessing = Some(
            serde_json::json!({ "window": sc.window, "voi": sc.voi, "model_input": sc.preprocessing }).to_string(),
        );
        row.warnings = sc.warnings.iter().cloned().chain(failures.iter().cloned()).collect();
        let size: usize = plane.iter().product();
        let Some(n) = count else {
            return Ok(vec![PreparedUnit { row, pixels: data.to_vec(), plane, count: 1 }]);
        };
        if self.opts.unit != UnitMode::Frame {
            // Which stored slices were sampled: the pipeline applied the same indices to the
            // `depth` slices it had (files of a series that were read, or an object's frames).
            let depth = match sc.kind {
                ItemKind::Volume if sc.source.len() > 1 => Some(sc.source.len()),
                _ => job.facts.depth.map(|d| d as usize),
            };
            row.pooled_indices = depth
                .map(|d| sample_slice_indices(d, self.opts.series_slices))
                .filter(|indices| indices.len() == n)
                .map(|indices| indices.into_iter().map(|i| i as i64).collect());
            return Ok(vec![PreparedUnit { row, pixels: data.to_vec(), plane, count: n }]);
        }
        Ok((0..n)
            .map(|k| {
                let mut r = row.clone();
                r.unit_id = format!("{}#frame={k}", r.unit_id);
                r.frame = Some(k as i64);
                PreparedUnit {
                    row: r,
                    pixels: data[k * size..(k + 1) * size].to_vec(),
                    plane,
                    count: 1,
                }
            })
            .collect())
    }

    /// Runs a chunk's images through the model in batches; returns each job's finished units
    /// in job order.
    fn encode_chunk(&self, chunk: Vec<PreparedJob>, progress: &mut Progress) -> Vec<Vec<Done>> {
        // (job, unit, image) of every image, in order.
        let mut refs = Vec::new();
        for (j, pj) in chunk.iter().enumerate() {
            for (u, unit) in pj.units.iter().enumerate() {
                for i in 0..unit.count {
                    refs.push((j, u, i));
                }
            }
        }
        let d = self.encoder.model.embedding_dim();
        let mut vectors: Vec<Vec<Vec<Option<Result<Vec<f32>, String>>>>> = chunk
            .iter()
            .map(|pj| pj.units.iter().map(|u| vec![None; u.count]).collect())
            .collect();
        let mut start = 0;
        while start < refs.len() {
            // A batch: up to `batch` consecutive images of one input size.
            let plane = chunk[refs[start].0].units[refs[start].1].plane;
            let mut end = start;
            while end < refs.len() && end - start < self.opts.batch && chunk[refs[end].0].units[refs[end].1].plane == plane {
                end += 1;
            }
            let size: usize = plane.iter().product();
            let mut pixels = Vec::with_capacity((end - start) * size);
            for &(j, u, i) in &refs[start..end] {
                pixels.extend_from_slice(&chunk[j].units[u].pixels[i * size..(i + 1) * size]);
            }
            let result = self.forward(pixels, end - start, plane);
            progress.images_encoded += end - start;
            for (k, &(j, u, i)) in refs[start..end].iter().enumerate() {
                vectors[j][u][i] = Some(match &result {
                    Ok(all) => Ok(all[k * d..(k + 1) * d].to_vec()),
                    Err(e) => Err(e.clone()),
                });
            }
            start = end;
        }
        chunk
            .into_iter()
            .zip(vectors)
            .map(|(pj, job_vectors)| {
                progress.jobs_done += 1;
                progress.files_done += pj.files;
                let mut done: Vec<Done> = pj.failed.into_iter().map(|row| Done { row, embedding: vec![], slices: vec![] }).collect();
                for (unit, vs) in pj.units.into_iter().zip(job_vectors) {
                    let mut row = unit.row;
                    let collected: Result<Vec<Vec<f32>>, String> = vs
                        .into_iter()
                        .map(|v| v.unwrap_or_else(|| Err("image was not encoded (a bug)".into())))
                        .collect();
                    match collected {
                        Ok(per_image) => {
                            // Mean over the unit's images (one image: itself).
                            let mut mean = vec![0f32; d];
                            for v in &per_image {
                                mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
                            }
                            let k = per_image.len() as f32;
                            mean.iter_mut().for_each(|m| *m /= k);
                            let slices = if self.opts.keep_slices { per_image.concat() } else { vec![] };
                            done.push(Done { row, embedding: mean, slices });
                        }
                        Err(e) => {
                            row.status = ERROR.into();
                            row.error = Some(format!("vision model: {e}"));
                            done.push(Done { row, embedding: vec![], slices: vec![] });
                        }
                    }
                }
                done
            })
            .collect()
    }

    /// Pooled embeddings `[b, D]` of `b` images `[b, 3, H, W]`.
    fn forward(&self, pixels: Vec<f32>, b: usize, [c, h, w]: [usize; 3]) -> Result<Vec<f32>, String> {
        let run = || -> Result<Vec<f32>, String> {
            let input = Tensor::<4>::from_data(TensorData::new(pixels, [b, c, h, w]), self.encoder.device);
            let (pooled, _) = self.encoder.model.embed(input).map_err(|e| e.to_string())?;
            let data = pooled.try_into_data().map_err(|e| format!("reading results from the device: {e:?}"))?;
            data.try_into_vec::<f32>().map_err(|e| format!("reading results from the device: {e:?}"))
        };
        // A backend panic on one batch fails its units, not the run.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| Err("the backend panicked on this batch".into()))
    }
}

/// The open shard: whole jobs are appended; it is written once it holds `shard_size` units.
struct ShardWriter<'a> {
    layout: &'a Layout,
    next: usize,
    open: Vec<Done>,
    written: usize,
    opts: &'a ArchiveOptions,
    encoder: &'a Encoder<'a>,
}

impl ShardWriter<'_> {
    fn push_job(&mut self, rows: Vec<Done>) -> Result<(), ArchiveError> {
        self.open.extend(rows);
        if self.open.len() >= self.opts.shard_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        if self.open.is_empty() {
            return Ok(());
        }
        let n = self.next;
        let tensors_path = self.layout.shard_tensors(n);
        let shard_name = tensors_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let d = self.encoder.model.embedding_dim();
        let mut embeddings = Vec::new();
        let mut slices = Vec::new();
        let mut offsets = vec![0i64];
        let mut rows = Vec::with_capacity(self.open.len());
        let mut ok = 0;
        for done in std::mem::take(&mut self.open) {
            let mut row = done.row;
            if row.status == OK {
                row.shard = Some(shard_name.clone());
                row.row = Some(ok as i64);
                ok += 1;
                embeddings.extend(done.embedding);
                slices.extend(done.slices);
                offsets.push((slices.len() / d.max(1)) as i64);
            }
            rows.push(row);
        }
        // The manifest first, the tensors last: the tensors' rename commits the shard.
        write_atomic(&self.layout.shard_manifest(n), &manifest::to_jsonl(&rows))?;
        if std::env::var("MEDVQA_ARCHIVE_ABORT_AFTER_MANIFEST").ok().and_then(|v| v.parse::<usize>().ok()) == Some(n) {
            // Fault injection for the resume tests: die at the worst moment, as kill -9 would.
            std::process::abort();
        }
        let mut writer = TensorWriter::new();
        if self.opts.f16 {
            writer.f16_from_f32("embeddings", &[ok, d], &embeddings)?;
        } else {
            writer.f32("embeddings", &[ok, d], embeddings)?;
        }
        if self.opts.keep_slices && self.opts.unit != UnitMode::Frame {
            let total = slices.len() / d.max(1);
            writer.f32("slice_embeddings", &[total, d], slices)?;
            writer.i64("slice_offsets", &[ok + 1], offsets)?;
        }
        let manifest_name = self
            .layout
            .shard_manifest(n)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        writer
            .metadata("manifest", &manifest_name)
            .metadata("model", &self.opts.model_dir.display().to_string())
            .metadata("weights_sha256", &self.encoder.weights_sha256)
            .metadata("unit", self.opts.unit.as_str())
            .metadata("medvqa_version", env!("CARGO_PKG_VERSION"));
        writer.write(&tensors_path)?;
        self.next += 1;
        self.written += 1;
        Ok(())
    }
}
