//! `medvqa encode`: images → the ingest pipeline's model stage (the checkpoint's own
//! preprocessor_config.json) → batches through a vision tower → `embeddings` `[N, D]` in a
//! safetensors file, with a JSONL manifest that says where each row came from and how it was
//! made.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::prelude::*;
use medvqa_ingest::lut::{Voi, Window};
use medvqa_ingest::model_input::{HfOptions, Pipeline};
use medvqa_ingest::pipeline::{self, Failure, Item, ItemKind, Job, Options};
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::tensor_io::{write_atomic, TensorWriter};
use medvqa_model::vision::VisionTransformer;
use rayon::prelude::*;
use serde::Serialize;

use crate::usage::{usage, window_arg, UsageError};

#[derive(clap::Args)]
pub struct EncodeArgs {
    /// Checkpoint folder: config.json, model.safetensors (or shards) and preprocessor_config.json
    /// (SigLIP, MedSigLIP or CLIP vision tower, vision-only or two-tower).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Files or folders, as `medvqa ingest` reads them: DICOM (series folders are grouped into
    /// volumes, DICOMDIR honoured), NIfTI, PNG, JPEG, TIFF. One embedding per 2D image, per frame
    /// of a multi-frame object and per slice of a volume; the manifest names the frame / slice.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output FILE.safetensors (`embeddings` [N, D] f32, `patch_tokens` [N, S, D] with
    /// --patch-tokens); FILE.jsonl (one row per embedding) and FILE.errors.jsonl beside it.
    #[arg(long, value_name = "FILE.safetensors")]
    pub out: PathBuf,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// auto | wgpu | vulkan | metal | dx12 | cpu (see `medvqa devices`).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Also write `patch_tokens` [N, S, D]: the tower's last_hidden_state for every row.
    #[arg(long)]
    pub patch_tokens: bool,
    /// VOI window for DICOM / deep images: "C,W" or a preset (lung, mediastinum, abdomen, liver,
    /// bone, brain, stroke, subdural). Default: the file's window, else min–max; CT without a
    /// window uses MedGemma 1.5's three-window RGB.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Zero-pad images to square before the processor, as MedSigLIP's serving code does (its
    /// preprocessor_config.json has no field for it).
    #[arg(long)]
    pub pad_to_square: bool,
    /// Replace FILE.safetensors, FILE.jsonl and FILE.errors.jsonl if they exist (refused by default).
    #[arg(long)]
    pub overwrite: bool,
}


/// Exit codes: 0 every input encoded; 1 some inputs failed (listed in FILE.errors.jsonl, the rest
/// encoded) or the outputs could not be written; 2 the run could not start (no inputs, a missing
/// input path, a missing or unloadable model, an unavailable device, an output that exists
/// without `--overwrite`). DICOM objects without pixel data met in folders (SR, RT plans…) are
/// counted on stderr and are not failures, as in `medvqa ingest`.
pub fn run(args: EncodeArgs) -> i32 {
    match encode(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medvqa encode: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// The three files of one run.
struct Outputs {
    tensors: PathBuf,
    manifest: PathBuf,
    errors: PathBuf,
}

impl Outputs {
    fn new(out: &Path) -> anyhow::Result<Outputs> {
        if out.extension().and_then(|e| e.to_str()) != Some("safetensors")
            || out.file_stem().is_none()
        {
            return Err(usage(format!(
                "--out {}: expected a FILE.safetensors path (the manifest FILE.jsonl goes beside it)",
                out.display()
            )));
        }
        Ok(Outputs {
            tensors: out.to_path_buf(),
            manifest: out.with_extension("jsonl"),
            errors: out.with_extension("errors.jsonl"),
        })
    }

    fn all(&self) -> [&Path; 3] {
        [&self.tensors, &self.manifest, &self.errors]
    }
}

/// Where one embedding row came from.
#[derive(Debug, Clone)]
struct RowMeta {
    source: Vec<PathBuf>,
    kind: ItemKind,
    frame: Option<usize>,
    slice: Option<usize>,
    /// Time point of a 4D series or NIfTI the slice belongs to.
    time_point: Option<usize>,
    sop_instance_uid: Option<String>,
    series_instance_uid: Option<String>,
    modality: Option<String>,
    body_part: Option<String>,
    window: Option<Window>,
    voi: Option<Voi>,
    preprocessing: Option<serde_json::Value>,
    warnings: Vec<String>,
}

/// The `model` field of a manifest row.
#[derive(Serialize)]
struct ModelRef<'a> {
    /// `--model` as given.
    path: String,
    model_type: &'a str,
}

/// One line of FILE.jsonl.
#[derive(Serialize)]
struct ManifestRow<'a> {
    row: usize,
    source: Vec<String>,
    kind: ItemKind,
    frame: Option<usize>,
    slice: Option<usize>,
    time_point: Option<usize>,
    sop_instance_uid: Option<&'a str>,
    series_instance_uid: Option<&'a str>,
    modality: Option<&'a str>,
    body_part: Option<&'a str>,
    /// The display-stage VOI applied before the processor (DICOM and deep images).
    window: Option<&'a Window>,
    voi: Option<&'a Voi>,
    preprocessing: Option<&'a serde_json::Value>,
    warnings: &'a [String],
    model: &'a ModelRef<'a>,
    pooling: &'a str,
    weights_sha256: &'a str,
}

/// Rows waiting for a forward pass: pixels `[rows, 3, H, W]` in C order.
#[derive(Default)]
struct Pending {
    pixels: Vec<f32>,
    /// `[3, H, W]` of every row (a batch has one size).
    shape: Option<[usize; 3]>,
    rows: Vec<RowMeta>,
}

/// What the run has produced so far.
struct Encoded {
    embeddings: Vec<f32>,
    patch_tokens: Vec<f32>,
    /// `[S, D]` of the patch tokens.
    token_shape: Option<[usize; 2]>,
    rows: Vec<RowMeta>,
    failures: Vec<Failure>,
    model_time: Duration,
}

fn encode(args: EncodeArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let outputs = Outputs::new(&args.out)?;
    if args.batch == 0 {
        return Err(usage("--batch must be at least 1"));
    }
    if !args.overwrite {
        let existing: Vec<String> = outputs
            .all()
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(usage(format!(
                "{} already exist(s); pass --overwrite to replace, or choose another --out",
                existing.join(", ")
            )));
        }
    }
    if let Some(missing) = args.inputs.iter().find(|p| !p.exists()) {
        return Err(usage(format!("input {} does not exist", missing.display())));
    }
    for file in ["config.json", "preprocessor_config.json"] {
        if !args.model.join(file).is_file() {
            return Err(usage(format!(
                "--model {}: no {file} (a checkpoint folder needs config.json, *.safetensors and preprocessor_config.json)",
                args.model.display()
            )));
        }
    }
    let window = window_arg(args.window.as_deref())?;
    let config = args.model.join("preprocessor_config.json");
    // Read the processor config before any image, so its errors come first and name the file.
    Pipeline::from_hf_config_file(&config, HfOptions::default())
        .map_err(|e| usage(e.to_string()))?;

    let selected = select_device(args.device).map_err(|e| usage(e.to_string()))?;
    if let Some(note) = &selected.note {
        eprintln!("medvqa encode: {note}");
    }
    let loaded =
        VisionTransformer::load(&args.model, &selected.device).map_err(|e| usage(e.to_string()))?;
    let model = &loaded.model;
    let sha = loaded.checkpoint.weights_sha256();
    let model_ref = ModelRef {
        path: args.model.display().to_string(),
        model_type: &model.config().model_type,
    };

    let opts = Options::for_hf_processor(config.clone(), window, args.pad_to_square);
    let plan = pipeline::plan(&args.inputs);
    let mut jobs = plan.jobs;
    pipeline::sort_in_input_order(&mut jobs, &args.inputs);
    let names = pipeline::names(&jobs);
    let total = jobs.len();
    eprintln!(
        "medvqa encode: {total} item(s) from {} input(s) on {} with {} ({}, {} pooling, D = {}){}",
        args.inputs.len(),
        selected.label,
        args.model.display(),
        model.config().model_type,
        model.pooling(),
        model.embedding_dim(),
        if plan.non_images.is_empty() {
            String::new()
        } else {
            format!(
                ", {} DICOM object(s) without pixel data passed over",
                plan.non_images.len()
            )
        }
    );

    let mut state = Encoded {
        embeddings: Vec::new(),
        patch_tokens: Vec::new(),
        token_shape: None,
        rows: Vec::new(),
        failures: plan.failures,
        model_time: Duration::ZERO,
    };
    let mut pending = Pending::default();
    let mut progress = Progress::new(total, started);
    // A chunk of jobs is preprocessed in parallel while at most one chunk is held, so memory is
    // bounded by a worker count of units, as in `medvqa ingest`.
    let chunk = rayon::current_num_threads().max(1);
    let job_list: Vec<(&Job, &String)> = jobs.iter().zip(names.iter()).collect();
    for part in job_list.chunks(chunk) {
        let outs: Vec<pipeline::JobOutput> = part
            .par_iter()
            .map(|(job, name)| {
                // A bug that panics on one unit must not take the run down.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline::run_job(job, name, &opts))).unwrap_or_else(|_| pipeline::JobOutput {
                    items: vec![],
                    failures: job
                        .sources()
                        .into_iter()
                        .map(|s| Failure {
                            error: format!("{}: internal error while reading (a bug: please report it with this file)", s.display()),
                            source: s,
                        })
                        .collect(),
                })
            })
            .collect();
        for out in outs {
            state.failures.extend(out.failures);
            for mut item in out.items {
                if !item.array.is_standard_layout() {
                    item.array = item.array.as_standard_layout().into_owned();
                }
                let rows = match rows_of(&item) {
                    Ok(rows) => rows,
                    Err(error) => {
                        let sources = item.sidecar.source.iter();
                        state.failures.extend(sources.map(|s| Failure {
                            source: s.clone(),
                            error: error.clone(),
                        }));
                        continue;
                    }
                };
                for (meta, pixels, shape) in rows {
                    if pending.shape.is_some_and(|s| s != shape) {
                        flush(
                            model,
                            &selected.device,
                            &mut pending,
                            &mut state,
                            args.patch_tokens,
                        );
                    }
                    pending.shape = Some(shape);
                    pending.pixels.extend_from_slice(pixels);
                    pending.rows.push(meta);
                    if pending.rows.len() >= args.batch {
                        flush(
                            model,
                            &selected.device,
                            &mut pending,
                            &mut state,
                            args.patch_tokens,
                        );
                        progress.update(None, state.rows.len());
                    }
                }
            }
            progress.update(Some(1), state.rows.len());
        }
    }
    flush(
        model,
        &selected.device,
        &mut pending,
        &mut state,
        args.patch_tokens,
    );
    progress.finish(state.rows.len());

    let n = state.rows.len();
    let d = model.embedding_dim();
    let mut manifest = Vec::new();
    for (i, m) in state.rows.iter().enumerate() {
        let row = ManifestRow {
            row: i,
            source: m
                .source
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            kind: m.kind,
            frame: m.frame,
            slice: m.slice,
            time_point: m.time_point,
            sop_instance_uid: m.sop_instance_uid.as_deref(),
            series_instance_uid: m.series_instance_uid.as_deref(),
            modality: m.modality.as_deref(),
            body_part: m.body_part.as_deref(),
            window: m.window.as_ref(),
            voi: m.voi.as_ref(),
            preprocessing: m.preprocessing.as_ref(),
            warnings: &m.warnings,
            model: &model_ref,
            pooling: model.pooling(),
            weights_sha256: &sha,
        };
        manifest.extend(serde_json::to_vec(&row)?);
        manifest.push(b'\n');
    }
    let mut failures = state.failures;
    failures.sort_by(|a, b| a.source.cmp(&b.source).then_with(|| a.error.cmp(&b.error)));
    failures.dedup_by(|a, b| a.source == b.source && a.error == b.error);
    let mut errors = Vec::new();
    for f in &failures {
        errors.extend(serde_json::to_vec(&serde_json::json!({
            "source": f.source.to_string_lossy(),
            "error": f.error,
        }))?);
        errors.push(b'\n');
    }

    let mut writer = TensorWriter::new();
    writer.f32("embeddings", &[n, d], state.embeddings)?;
    if args.patch_tokens {
        let [s, h] = state
            .token_shape
            .unwrap_or([model.config().num_positions(), model.config().hidden_size]);
        writer.f32("patch_tokens", &[n, s, h], state.patch_tokens)?;
    }
    let manifest_name = outputs
        .manifest
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    writer
        .metadata("model", &model_ref.path)
        .metadata("model_type", model_ref.model_type)
        .metadata("pooling", model.pooling())
        .metadata("weights_sha256", &sha)
        .metadata("preprocessor_config", &config.display().to_string())
        .metadata("device", &selected.label)
        .metadata("manifest", &manifest_name)
        .metadata("medvqa_version", env!("CARGO_PKG_VERSION"));
    if let Some(parent) = outputs
        .tensors
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Manifest and errors first, the tensors last: a complete FILE.safetensors always has its rows.
    write_atomic(&outputs.manifest, &manifest)?;
    write_atomic(&outputs.errors, &errors)?;
    writer.write(&outputs.tensors)?;

    let secs = started.elapsed().as_secs_f64();
    let model_secs = state.model_time.as_secs_f64();
    eprintln!(
        "medvqa encode: wrote embeddings [{n}, {d}]{} to {} and {} rows to {} in {secs:.1} s ({:.2} images/s; model {model_secs:.1} s, {:.2} images/s); {} source(s) failed{}",
        if args.patch_tokens { " and patch_tokens" } else { "" },
        outputs.tensors.display(),
        n,
        outputs.manifest.display(),
        rate(n, secs),
        rate(n, model_secs),
        failures.len(),
        if failures.is_empty() { String::new() } else { format!(" (see {})", outputs.errors.display()) }
    );
    Ok(if failures.is_empty() { 0 } else { 1 })
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Splits a model-stage item into rows: an image `[3, H, W]` is one row; frames and volume
/// slices `[S, 3, H, W]` one row each, with the file and SOP Instance UID of that slice when
/// the volume was assembled from one file per slice.
fn rows_of(item: &Item) -> Result<Vec<(RowMeta, &[f32], [usize; 3])>, String> {
    let sc = &item.sidecar;
    let data = item
        .array
        .as_slice()
        .ok_or_else(|| format!("{}: model input is not contiguous (a bug)", item.name))?;
    let (count, plane) = match item.array.shape() {
        &[c, h, w] => (None, [c, h, w]),
        &[s, c, h, w] => (Some(s), [c, h, w]),
        other => {
            return Err(format!(
                "{}: model input of shape {other:?}, expected [3, H, W] or [S, 3, H, W]",
                item.name
            ))
        }
    };
    let size = plane.iter().product::<usize>();
    let base = RowMeta {
        source: sc.source.clone(),
        kind: sc.kind,
        frame: None,
        slice: None,
        time_point: sc.time_point,
        sop_instance_uid: (sc.sop_instance_uids.len() == 1)
            .then(|| sc.sop_instance_uids[0].clone()),
        series_instance_uid: sc.series_instance_uid.clone(),
        modality: sc.modality.clone(),
        body_part: sc.body_part.clone(),
        window: sc.window,
        voi: sc.voi.clone(),
        preprocessing: sc.preprocessing.clone(),
        warnings: sc.warnings.clone(),
    };
    let Some(n) = count else {
        return Ok(vec![(base, data, plane)]);
    };
    Ok((0..n)
        .map(|k| {
            let mut m = base.clone();
            if sc.kind == ItemKind::Volume {
                m.slice = Some(k);
                // A series volume: one file (and SOP instance) per slice, in slice order.
                if sc.source.len() == n && n > 1 {
                    m.source = vec![sc.source[k].clone()];
                    m.sop_instance_uid =
                        (sc.sop_instance_uids.len() == n).then(|| sc.sop_instance_uids[k].clone());
                }
            } else {
                m.frame = Some(k);
            }
            (m, &data[k * size..(k + 1) * size], plane)
        })
        .collect())
}

/// Runs the pending rows through the model; on a model error every row's sources fail with it.
fn flush(
    model: &VisionTransformer,
    device: &Device,
    pending: &mut Pending,
    state: &mut Encoded,
    keep_tokens: bool,
) {
    let Some([c, h, w]) = pending.shape.take() else {
        return;
    };
    let rows = std::mem::take(&mut pending.rows);
    let pixels = std::mem::take(&mut pending.pixels);
    let b = rows.len();
    if b == 0 {
        return;
    }
    let t0 = Instant::now();
    let result = (|| -> anyhow::Result<(Vec<f32>, Vec<f32>, [usize; 2])> {
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [b, c, h, w]), device);
        let (pooled, last) = model.embed(input)?;
        let [_, s, d] = last.dims();
        let emb: Vec<f32> = read(pooled)?;
        let tokens = if keep_tokens { read(last)? } else { Vec::new() };
        Ok((emb, tokens, [s, d]))
    })();
    state.model_time += t0.elapsed();
    match result {
        Ok((emb, tokens, token_shape)) => {
            if keep_tokens && state.token_shape.is_some_and(|t| t != token_shape) {
                // Rows of one file must share the token grid; a different processor output size
                // would already have failed in the model (its position table is fixed).
                fail_rows(
                    &rows,
                    &format!(
                        "patch tokens {token_shape:?} differ from the earlier rows' {:?}",
                        state.token_shape
                    ),
                    state,
                );
                return;
            }
            state.token_shape = Some(token_shape);
            state.embeddings.extend(emb);
            state.patch_tokens.extend(tokens);
            state.rows.extend(rows);
        }
        Err(e) => fail_rows(&rows, &format!("{e:#}"), state),
    }
}

fn fail_rows(rows: &[RowMeta], error: &str, state: &mut Encoded) {
    for r in rows {
        for s in &r.source {
            state.failures.push(Failure {
                source: s.clone(),
                error: format!("{}: vision model: {error}", s.display()),
            });
        }
    }
}

/// Reads a tensor back from the device as f32 values.
fn read<const D: usize>(t: Tensor<D>) -> anyhow::Result<Vec<f32>> {
    let data = t
        .try_into_data()
        .map_err(|e| anyhow::anyhow!("reading results from the device: {e:?}"))?;
    data.try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading results from the device: {e:?}"))
}

/// Progress on stderr: a live line on a terminal, a line every few seconds otherwise.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    fn new(total: usize, started: Instant) -> Progress {
        Progress {
            total,
            done: 0,
            started,
            last: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, items: Option<usize>, rows: usize) {
        self.done += items.unwrap_or(0);
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.print(rows);
        }
    }

    fn print(&self, rows: usize) {
        let line = format!(
            "  {}/{} items, {rows} images encoded, {:.2} images/s",
            self.done,
            self.total,
            rate(rows, self.started.elapsed().as_secs_f64())
        );
        if self.tty {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the live line on a terminal (the summary that follows gives the totals).
    fn finish(&self, rows: usize) {
        if self.tty {
            self.print(rows);
            eprintln!();
        }
    }
}
