//! `medvqa encode-archive` and `medvqa merge-manifests`: flags in, the archive crate does the work.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use medvqa_archive::{
    encode_archive, merge_manifests, ArchiveError, ArchiveOptions, Encoder, Progress, ShardSpec,
    UidPolicy, UnitMode,
};
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::vision::VisionTransformer;

use crate::usage::window_arg;

#[derive(clap::Args)]
pub struct EncodeArchiveArgs {
    /// Archive folder (walked recursively; DICOMDIRs honoured), or one file.
    #[arg(value_name = "ROOT")]
    pub root: PathBuf,
    /// Checkpoint folder of a SigLIP / MedSigLIP / CLIP vision tower (config.json, *.safetensors,
    /// preprocessor_config.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Output folder: embeddings-NNNNN.safetensors + .jsonl shards, manifest.parquet,
    /// errors.jsonl, skipped.jsonl, run.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// One embedding per image (DICOM instance or image file; multi-frame objects pooled), per
    /// frame, or per series (sampled slices mean-pooled).
    #[arg(long, default_value = "image")]
    pub unit: UnitMode,
    /// Slices (or frames) sampled uniformly and mean-pooled per series / multi-frame image.
    #[arg(long, default_value_t = 16)]
    pub series_slices: usize,
    /// Also keep the per-slice vectors of pooled units (`slice_embeddings`, `slice_offsets`).
    #[arg(long)]
    pub keep_slices: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// auto | wgpu | vulkan | metal | dx12 | cpu (see `medvqa devices`).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// This task's part of a split run, I/N with 0 <= I < N (deterministic by series).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Continue the run in --out: complete shards are kept, the rest is encoded.
    #[arg(long)]
    pub resume: bool,
    /// Decoding threads (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Units per shard file.
    #[arg(long, default_value_t = 4096)]
    pub shard_size: usize,
    /// Write embeddings as float16 (half the size; ~3 significant digits).
    #[arg(long)]
    pub f16: bool,
    /// Replace Study/Series/SOP Instance UIDs by HMAC-SHA-256 keyed hashes (2.25.<decimal>)
    /// under the secret in KEYFILE.
    #[arg(long, value_name = "KEYFILE")]
    pub hash_uids: Option<PathBuf>,
    /// VOI window for DICOM / deep images: "C,W" or a preset (lung, mediastinum, abdomen, liver,
    /// bone, brain, stroke, subdural). Default: the file's window; CT without one uses
    /// MedGemma 1.5's three-window RGB.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Zero-pad images to square before the processor (MedSigLIP's serving code does).
    #[arg(long)]
    pub pad_to_square: bool,
}

#[derive(clap::Args)]
pub struct MergeManifestsArgs {
    /// Output folders of encode-archive tasks (each may hold several --shard tasks).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The merged Parquet file (shard paths inside are relative to its folder).
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Exit codes: 0 every unit encoded; 1 some units failed (errors.jsonl) or the run stopped on an
/// I/O error; 2 the run could not start (flags, model, device, an output folder holding another
/// run without --resume).
pub fn encode(args: EncodeArchiveArgs) -> i32 {
    match run_encode(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medvqa encode-archive: {e:#}");
            exit_code(&e)
        }
    }
}

fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<ArchiveError>() {
        Some(ArchiveError::Usage(_)) => 2,
        _ if e.downcast_ref::<crate::usage::UsageError>().is_some() => 2,
        _ => 1,
    }
}

fn usage(msg: String) -> anyhow::Error {
    ArchiveError::Usage(msg).into()
}

fn run_encode(args: EncodeArchiveArgs) -> anyhow::Result<i32> {
    if !args.root.exists() {
        return Err(usage(format!("archive {} does not exist", args.root.display())));
    }
    for file in ["config.json", "preprocessor_config.json"] {
        if !args.model.join(file).is_file() {
            return Err(usage(format!(
                "--model {}: no {file} (a checkpoint folder needs config.json, *.safetensors and preprocessor_config.json)",
                args.model.display()
            )));
        }
    }
    if args.out.is_file() {
        return Err(usage(format!("--out {} is a file; give a folder", args.out.display())));
    }
    let shard = args.shard.as_deref().map(ShardSpec::parse).transpose().map_err(usage)?;
    let uids = match &args.hash_uids {
        None => UidPolicy::keep(),
        Some(p) => {
            let key = std::fs::read(p).map_err(|e| usage(format!("--hash-uids {}: {e}", p.display())))?;
            if key.len() < 16 {
                return Err(usage(format!(
                    "--hash-uids {}: the key has {} bytes; use at least 16 random bytes (e.g. `head -c 32 /dev/urandom > key`)",
                    p.display(),
                    key.len()
                )));
            }
            UidPolicy::hashed(key)
        }
    };
    let window = window_arg(args.window.as_deref())?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let selected = select_device(args.device).map_err(|e| usage(e.to_string()))?;
    if let Some(note) = &selected.note {
        eprintln!("medvqa encode-archive: {note}");
    }
    let loaded = VisionTransformer::load(&args.model, &selected.device).map_err(|e| usage(e.to_string()))?;
    let weights_sha256 = loaded.checkpoint.weights_sha256();
    let encoder = Encoder {
        model: &loaded.model,
        device: &selected.device,
        device_label: selected.label.clone(),
        weights_sha256,
    };
    let opts = ArchiveOptions {
        root: args.root.clone(),
        model_dir: args.model.clone(),
        out: args.out.clone(),
        unit: args.unit,
        series_slices: args.series_slices,
        keep_slices: args.keep_slices,
        batch: args.batch,
        shard,
        resume: args.resume,
        jobs,
        shard_size: args.shard_size,
        f16: args.f16,
        uids,
        window,
        pad_to_square: args.pad_to_square,
    };
    eprintln!(
        "medvqa encode-archive: {} → {} with {} ({}, D = {}) on {}, unit {}{}",
        args.root.display(),
        args.out.display(),
        args.model.display(),
        loaded.model.config().model_type,
        loaded.model.embedding_dim(),
        selected.label,
        args.unit.as_str(),
        shard.map(|s| format!(", shard {}/{}", s.index, s.count)).unwrap_or_default()
    );
    let mut bar = ProgressLine::new();
    let summary = encode_archive(&opts, &encoder, &mut |p| bar.update(p))?;
    bar.finish(&summary.progress);
    for p in &summary.removed_leftovers {
        eprintln!("medvqa encode-archive: removed {} (left by an interrupted run)", p.display());
    }
    let p = &summary.progress;
    eprintln!(
        "medvqa encode-archive: {} unit(s) encoded, {} failed this run ({} job(s) already done, {} for other shards, {} file(s) skipped: see skipped{}.jsonl) in {:.1} s ({:.2} units/s, model {:.1} s); {} shard(s) written; {} row(s) in {} ({} failed, see {})",
        p.units_ok,
        p.units_failed,
        summary.jobs_resumed,
        summary.jobs_other_shards,
        summary.skipped,
        shard.map(|s| format!("-{}", s.tag())).unwrap_or_default(),
        p.elapsed_secs,
        rate(p.units_ok + p.units_failed, p.elapsed_secs),
        p.model_secs,
        summary.shards_written,
        summary.rows_total,
        summary.manifest.display(),
        summary.rows_failed,
        summary.errors.display(),
    );
    Ok(if summary.rows_failed == 0 { 0 } else { 1 })
}

pub fn merge(args: MergeManifestsArgs) -> i32 {
    let run = || -> anyhow::Result<i32> {
        if args.out.exists() && !args.overwrite {
            return Err(usage(format!("{} exists; pass --overwrite to replace it", args.out.display())));
        }
        let s = merge_manifests(&args.dirs, &args.out)?;
        for p in &s.incomplete {
            eprintln!("medvqa merge-manifests: warning: {} is not complete (running, or killed: resume it)", p.display());
        }
        if !s.missing_shards.is_empty() {
            eprintln!("medvqa merge-manifests: warning: no output for shard(s) {}", s.missing_shards.join(", "));
        }
        eprintln!(
            "medvqa merge-manifests: {} task(s), {} row(s) ({} failed) → {}",
            s.tasks,
            s.rows,
            s.rows_failed,
            args.out.display()
        );
        Ok(if s.incomplete.is_empty() && s.missing_shards.is_empty() { 0 } else { 1 })
    };
    run().unwrap_or_else(|e| {
        eprintln!("medvqa merge-manifests: {e:#}");
        exit_code(&e)
    })
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// A live line on a terminal (files/s, units/s, ETA, errors), a plain line every 10 s otherwise.
struct ProgressLine {
    tty: bool,
    last: Instant,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
            last: Instant::now() - Duration::from_secs(3600),
        }
    }

    fn line(p: &Progress) -> String {
        let t = p.elapsed_secs;
        let eta = if p.jobs_done > 0 && p.jobs_total > p.jobs_done {
            let secs = t / p.jobs_done as f64 * (p.jobs_total - p.jobs_done) as f64;
            format!(", ETA {}", hms(secs))
        } else {
            String::new()
        };
        format!(
            "  {}/{} files ({:.1}/s), {} units ({:.2}/s), {} error(s), {}{eta}",
            p.files_done,
            p.files_total,
            rate(p.files_done, t),
            p.units_ok + p.units_failed,
            rate(p.units_ok + p.units_failed, t),
            p.units_failed,
            hms(t)
        )
    }

    fn update(&mut self, p: &Progress) {
        let every = if self.tty { Duration::from_millis(200) } else { Duration::from_secs(10) };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        if self.tty {
            eprint!("\r{}\x1b[K", Self::line(p));
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}", Self::line(p));
        }
    }

    fn finish(&mut self, p: &Progress) {
        if self.tty {
            eprintln!("\r{}\x1b[K", Self::line(p));
        }
    }
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
