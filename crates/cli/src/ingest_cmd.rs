//! `medvqa ingest`: flags → `medvqa_ingest::pipeline`, progress on stderr, files in `--out`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::ValueEnum;
use medvqa_ingest::model_input::{ModelOptions, ModelTarget};
use medvqa_ingest::pipeline::{self, ModelStage, Options, Stage};
use rayon::prelude::*;

#[derive(Clone, Copy, ValueEnum)]
pub enum StageArg {
    Modality,
    Display,
    Model,
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Files or folders (walked recursively; DICOMDIR honoured): DICOM, NIfTI, PNG, JPEG, TIFF.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder for <name>.npy, <name>.json and errors.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// modality: stored values through the Modality LUT (HU for CT); display: through the VOI
    /// window to [0, 1]; model: encoder input [3, H, W] (volumes [slices, 3, H, W]).
    #[arg(long, value_enum, default_value = "modality")]
    pub stage: StageArg,
    /// VOI window for the display/model stages: "C,W" or a preset (lung, mediastinum, abdomen,
    /// liver, bone, brain, stroke, subdural).
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Model stage: a model folder (its preprocessor_config.json) ...
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// ... or a square size N (resize bicubic, mean/std 0.5).
    #[arg(long)]
    pub size: Option<usize>,
    /// Model stage: keep N uniformly sampled slices of each volume (MedGemma 1.5 recipe).
    #[arg(long)]
    pub slices: Option<usize>,
    /// Model stage: zero-pad images to square before resizing (MedSigLIP).
    #[arg(long)]
    pub pad_to_square: bool,
    /// Resample volumes to this spacing in mm, "SLICE,ROW,COL" (trilinear; output grid keeps the
    /// origin and covers the same extent).
    #[arg(long, value_name = "S,R,C")]
    pub resample: Option<String>,
    /// Reorient volumes by permuting/flipping axes to an orientation code: the directions the
    /// column, row and slice indices grow towards, e.g. LPS (DICOM axial) or RAS.
    #[arg(long, value_name = "CODE")]
    pub reorient: Option<String>,
    /// Replace outputs that already exist in --out (refused by default).
    #[arg(long)]
    pub overwrite: bool,
    /// Refuse images declaring more than this many samples (Rows x Columns x Frames x Samples).
    #[arg(long, default_value_t = medvqa_ingest::dicom::pixels::DEFAULT_MAX_SAMPLES)]
    pub max_samples: u64,
}

/// Exit codes: 0 every input ingested, 1 some failed, 2 usage error (including an input path
/// that does not exist). DICOM objects without pixel data met in folders (SR, RT plans…) are
/// listed in skipped.jsonl and do not count as failures.
pub fn run(args: IngestArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medvqa ingest: {e:#}");
            2
        }
    }
}

fn run_inner(args: IngestArgs) -> anyhow::Result<i32> {
    let window = args
        .window
        .as_deref()
        .map(medvqa_ingest::presets::parse_window)
        .transpose()?;
    let stage = match args.stage {
        StageArg::Modality => Stage::Modality,
        StageArg::Display => Stage::Display,
        StageArg::Model => Stage::Model,
    };
    let model = match (stage, &args.model, args.size) {
        (Stage::Model, Some(dir), None) => Some(ModelTarget::HfConfig(dir.clone())),
        (Stage::Model, None, Some(n)) if n > 0 => Some(ModelTarget::Size(n)),
        (Stage::Model, _, _) => anyhow::bail!("--stage model needs exactly one of --model DIR or --size N (N > 0)"),
        (_, None, None) => None,
        _ => anyhow::bail!("--model / --size only apply to --stage model"),
    };
    let resample = args
        .resample
        .as_deref()
        .map(|s| -> anyhow::Result<[f64; 3]> {
            let v: Vec<f64> = s.split(',').map(|x| x.trim().parse::<f64>()).collect::<Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("--resample {s:?}: expected three numbers S,R,C"))?;
            match v.as_slice() {
                [a, b, c] if v.iter().all(|x| x.is_finite() && *x > 0.0) => Ok([*a, *b, *c]),
                _ => anyhow::bail!("--resample {s:?}: expected three positive numbers S,R,C"),
            }
        })
        .transpose()?;
    let opts = Options {
        stage,
        window,
        resample,
        reorient: args.reorient.clone(),
        max_samples: args.max_samples,
        model: model.map(|target| ModelStage {
            target,
            options: ModelOptions {
                pad_to_square: args.pad_to_square,
                ..ModelOptions::default()
            },
            slices: args.slices,
        }),
    };
    if let Some(n) = args.jobs {
        // A pool per run keeps --jobs local; ignore the error of a pool already set.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global();
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create --out {}: {e}", args.out.display()))?;

    if let Some(missing) = args.inputs.iter().find(|p| !p.exists()) {
        anyhow::bail!("input {} does not exist", missing.display());
    }
    let plan = pipeline::plan(&args.inputs);
    let names = pipeline::names(&plan.jobs);
    if !args.overwrite {
        let mut clash: Vec<String> = names
            .iter()
            .flat_map(|n| [format!("{n}.npy"), format!("{n}.json")])
            .chain(["errors.jsonl".to_string(), "skipped.jsonl".to_string()])
            .filter(|f| args.out.join(f).exists())
            .collect();
        if !clash.is_empty() {
            clash.truncate(5);
            anyhow::bail!(
                "{} already holds {} (and maybe more); pass --overwrite to replace them or choose another --out",
                args.out.display(),
                clash.join(", ")
            );
        }
    }

    let mut skipped_log = Vec::new();
    for f in &plan.non_images {
        skipped_log.extend(serde_json::to_vec(f)?);
        skipped_log.push(b'\n');
    }
    if !skipped_log.is_empty() {
        std::fs::write(args.out.join("skipped.jsonl"), skipped_log)?;
    }
    let total = plan.jobs.len();
    let done = AtomicUsize::new(0);
    let failures = Mutex::new(plan.failures);
    let written = AtomicUsize::new(0);
    let tty = std::io::stderr().is_terminal();
    eprintln!(
        "medvqa ingest: {total} item(s) to build from {} input(s){}{}",
        args.inputs.len(),
        if plan.skipped > 0 { format!(", {} non-image file(s) passed over", plan.skipped) } else { String::new() },
        if plan.non_images.is_empty() {
            String::new()
        } else {
            format!(", {} DICOM object(s) without pixel data listed in skipped.jsonl", plan.non_images.len())
        }
    );
    plan.jobs.par_iter().zip(names.par_iter()).for_each(|(job, name)| {
        // Last line of defence: a bug that panics on one unit must not take the batch down.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline::run_job(job, name, &opts)))
            .unwrap_or_else(|_| pipeline::JobOutput {
                items: vec![],
                failures: job
                    .sources()
                    .into_iter()
                    .map(|s| pipeline::Failure { error: format!("{}: internal error while ingesting (a bug: please report it with this file)", s.display()), source: s })
                    .collect(),
            });
        // A job can give items and failures at once (a volume written without its unreadable
        // slices): both are reported.
        failures.lock().expect("lock").extend(result.failures);
        for item in result.items {
            match pipeline::write_item(&args.out, &item) {
                Ok(()) => {
                    written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => failures.lock().expect("lock").push(pipeline::Failure {
                    source: item.sidecar.source.first().cloned().unwrap_or_default(),
                    error: format!("cannot write {}: {e}", args.out.join(&item.name).display()),
                }),
            }
        }
        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
        if tty {
            eprint!("\r  {d}/{total} items");
            let _ = std::io::stderr().flush();
        } else if d % 100 == 0 || d == total {
            eprintln!("  {d}/{total} items");
        }
    });
    if tty {
        eprintln!();
    }
    let mut failures = failures.into_inner().expect("lock");
    failures.sort_by(|a, b| a.source.cmp(&b.source));
    let mut log = Vec::new();
    for f in &failures {
        log.extend(serde_json::to_vec(f)?);
        log.push(b'\n');
    }
    std::fs::write(args.out.join("errors.jsonl"), log)?;
    eprintln!(
        "medvqa ingest: wrote {} item(s) to {}; {} source(s) failed{}",
        written.load(Ordering::Relaxed),
        args.out.display(),
        failures.len(),
        if failures.is_empty() { String::new() } else { format!(" (see {})", args.out.join("errors.jsonl").display()) }
    );
    Ok(if failures.is_empty() { 0 } else { 1 })
}
