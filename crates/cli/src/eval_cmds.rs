//! `medvqa score`, `medvqa eval` and `medvqa compare`: flags in, library calls out.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use medvqa_eval::baselines::{baseline_by_name, disjoint_training, BASELINE_NAMES};
use medvqa_eval::compare::{compare, read_run, render_markdown, write_comparison};
use medvqa_eval::datasets::{load_with_taxonomy, Dataset, Lang};
use medvqa_eval::predictions::{read_predictions, PredictionFormat};
use medvqa_eval::protocols::protocol_by_name;
use medvqa_eval::run::{answer_all, score_and_report, EvalOptions, Progress};
use medvqa_eval::summary::{Bootstrap, RunInfo, Summary};
use medvqa_eval::taxonomy::Taxonomy;
use medvqa_eval::{Protocol, Question};

/// Which questions to read: shared by `score` and `eval`.
#[derive(clap::Args)]
pub struct DatasetArgs {
    /// vqa-rad | slake | pathvqa | omnimedvqa | jsonl
    #[arg(long)]
    pub dataset: String,
    /// The dataset's annotation file or folder.
    #[arg(long)]
    pub annotations: PathBuf,
    /// Split to score (test, train, validate, all — as the dataset has them).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Question language: en | zh | all (SLAKE and JSONL sets).
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// Your own body-system mapping file (default: the bundled datasets/body_systems.json).
    #[arg(long)]
    pub body_systems: Option<PathBuf>,
    /// Answer-normalisation protocol: medvqa, llava-med, medevalkit, lmms-eval, multimedeval.
    #[arg(long, default_value = "medvqa")]
    pub protocol: String,
}

#[derive(clap::Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Predictions: medvqa JSONL {"id","prediction"}, lmms-eval samples JSONL, VLMEvalKit
    /// .tsv/.csv/.json, or MedEvalKit results.json.
    #[arg(long)]
    pub predictions: PathBuf,
    /// Force the predictions format (medvqa, lmms-eval, vlmevalkit, medevalkit) instead of
    /// detecting it.
    #[arg(long)]
    pub predictions_format: Option<String>,
    /// Output folder for summary.json, results.jsonl, results.csv, report.md, report.html.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The model: a model folder (Gemma 3 / MedGemma, LLaVA, or a text-only decoder; see
    /// `medvqa ask`), or a built-in baseline: baseline:majority | baseline:yes.
    #[arg(long)]
    pub model: String,
    /// auto | wgpu | vulkan | metal | dx12 | cpu (model folders).
    #[arg(long, default_value = "auto")]
    pub device: medvqa_model::device::DeviceChoice,
    /// 16-bit (bf16 / f16) weight matrices: auto (kept 16-bit only when an f32 copy would take
    /// more than half the free memory), f32 (fastest), stored (half the memory). Same results.
    #[arg(long, default_value = "auto")]
    pub weights_dtype: medvqa_model::checkpoint::WeightDtype,
    /// Upper bound on generated tokens per open question (model folders).
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Generate answers to closed yes/no questions too, instead of scoring "yes" against "no".
    #[arg(long)]
    pub generate_closed: bool,
    /// Slices kept of a volume (MedGemma 1.5 recipe).
    #[arg(long, default_value_t = 85)]
    pub max_slices: usize,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Folder the dataset's image paths are relative to.
    #[arg(long)]
    pub images: PathBuf,
    /// Output folder: predictions.jsonl (written as the run goes), then the score files.
    #[arg(long)]
    pub out: PathBuf,
    /// Answer only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Continue an interrupted run in --out: keeps its answers, answers only the rest.
    #[arg(long)]
    pub resume: bool,
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Run folder A (the reference).
    pub run_a: PathBuf,
    /// Run folder B (differences are B − A).
    pub run_b: PathBuf,
    /// Also write compare.json, compare.md and compare.html here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn exit_code(result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

struct Loaded {
    dataset: Dataset,
    lang: Lang,
    taxonomy: Taxonomy,
    questions: Vec<Question>,
    protocol: Box<dyn Protocol>,
}

fn load(args: &DatasetArgs) -> Result<Loaded> {
    let dataset: Dataset = args.dataset.parse()?;
    let lang: Lang = args.lang.parse()?;
    let protocol = protocol_by_name(&args.protocol).ok_or_else(|| {
        anyhow!(
            "unknown protocol {:?} (medvqa, llava-med, medevalkit, lmms-eval, multimedeval)",
            args.protocol
        )
    })?;
    let taxonomy = match &args.body_systems {
        Some(path) => Taxonomy::from_file(path)?,
        None => Taxonomy::builtin(),
    };
    let questions = load_with_taxonomy(dataset, &args.annotations, &args.split, lang, &taxonomy)?;
    if questions.is_empty() {
        return Err(anyhow!(
            "{}: no questions in split {:?}",
            args.annotations.display(),
            args.split
        ));
    }
    Ok(Loaded {
        dataset,
        lang,
        taxonomy,
        questions,
        protocol,
    })
}

fn info(args: &DatasetArgs, loaded: &Loaded, model: Option<String>) -> RunInfo {
    RunInfo {
        dataset: loaded.dataset.name().to_string(),
        split: args.split.trim().to_lowercase(),
        lang: Some(args.lang.trim().to_lowercase()),
        protocol: loaded.protocol.name().to_string(),
        model,
    }
}

fn print_summary(s: &Summary, out: &Path) {
    let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
    println!(
        "{} {} [{}]: overall {} (n={}), closed {} (n={}), open {} (n={}) → {}",
        s.dataset,
        s.split,
        s.protocol,
        pct(s.overall.accuracy),
        s.overall.n,
        pct(s.closed.accuracy),
        s.closed.n,
        pct(s.open.accuracy),
        s.open.n,
        out.display()
    );
}

/// `medvqa score`.
pub fn score(args: ScoreArgs) -> i32 {
    exit_code((|| {
        let loaded = load(&args.data)?;
        let format = args
            .predictions_format
            .as_deref()
            .map(str::parse::<PredictionFormat>)
            .transpose()?;
        let preds = read_predictions(&args.predictions, format, &loaded.questions)?;
        if !preds.unmatched.is_empty() {
            eprintln!(
                "warning: {}: {} predictions match no question of {} {} (first: {})",
                args.predictions.display(),
                preds.unmatched.len(),
                loaded.dataset,
                args.data.split,
                preds.unmatched[0]
            );
        }
        let missing = loaded.questions.len() - preds.by_id.len();
        if missing > 0 {
            eprintln!(
                "warning: {missing} questions have no prediction and are scored as empty answers"
            );
        }
        let summary = score_and_report(
            &loaded.questions,
            &preds.by_id,
            loaded.protocol.as_ref(),
            &info(&args.data, &loaded, None),
            &args.out,
            &Bootstrap::default(),
        )?;
        print_summary(&summary, &args.out);
        Ok(())
    })())
}

/// A built-in baseline, trained on the dataset's train split (minus evaluated questions).
fn baseline(
    args: &EvalArgs,
    dataset: Dataset,
    lang: Lang,
    annotations: &Path,
    taxonomy: &Taxonomy,
    evaluated: &[Question],
) -> Result<Box<dyn medvqa_eval::run::Answerer>> {
    baseline_by_name(&args.model, || {
        let train = load_with_taxonomy(dataset, annotations, "train", lang, taxonomy)?;
        let (train, dropped) = disjoint_training(train, evaluated);
        if dropped > 0 {
            eprintln!("warning: {dropped} evaluated questions are also in the training split; left out of training");
        }
        Ok(train)
    })
    .with_context(|| format!("model {:?} (built-in: {})", args.model, BASELINE_NAMES.join(", ")))
}

/// A model folder answering through medvqa-vqa: option scoring for multiple choice and yes/no,
/// generation otherwise.
fn model_answerer(args: &EvalArgs) -> Result<Box<dyn medvqa_eval::run::Answerer>> {
    let dir = PathBuf::from(&args.model);
    if !dir.join("config.json").is_file() {
        return Err(anyhow!(
            "--model {}: not a model folder (no config.json) and not a built-in baseline ({})",
            dir.display(),
            BASELINE_NAMES.join(", ")
        ));
    }
    let selected = medvqa_model::device::select_device(args.device)?;
    if let Some(note) = &selected.note {
        eprintln!("medvqa eval: {note}");
    }
    eprintln!("medvqa eval: loading {} on {}", dir.display(), selected.label);
    let assistant = medvqa_vqa::Assistant::load_with(&dir, &selected.device, args.weights_dtype).with_context(|| format!("loading {}", dir.display()))?;
    let images = assistant.image_options(None, args.max_slices);
    let ask = medvqa_vqa::AskOptions { max_new_tokens: args.max_new_tokens, ..Default::default() };
    let mut answerer = medvqa_vqa::ModelAnswerer::new(assistant, ask, images);
    answerer.score_yes_no = !args.generate_closed;
    Ok(Box::new(answerer))
}

/// `medvqa eval`.
pub fn eval(args: EvalArgs) -> i32 {
    exit_code((|| {
        let mut loaded = load(&args.data)?;
        if let Some(n) = args.limit {
            loaded.questions.truncate(n);
        }
        let (dataset, lang, annotations) =
            (loaded.dataset, loaded.lang, args.data.annotations.clone());
        let taxonomy = &loaded.taxonomy;
        let evaluated = &loaded.questions;
        let mut answerer: Box<dyn medvqa_eval::run::Answerer> = if args.model.starts_with("baseline:") {
            baseline(&args, dataset, lang, &annotations, taxonomy, evaluated)?
        } else {
            model_answerer(&args)?
        };
        let opts = EvalOptions {
            out: args.out.clone(),
            images: args.images.clone(),
            resume: args.resume,
            dataset: dataset.name().to_string(),
            split: args.data.split.trim().to_lowercase(),
        };
        let stderr = std::io::stderr();
        let mut progress = Progress::new(stderr.lock(), stderr.is_terminal());
        let answers = answer_all(
            &loaded.questions,
            answerer.as_mut(),
            &opts,
            &mut progress,
            &mut std::io::stderr(),
        )?;
        drop(progress);
        let summary = score_and_report(
            &loaded.questions,
            &answers,
            loaded.protocol.as_ref(),
            &info(&args.data, &loaded, Some(answerer.name())),
            &args.out,
            &Bootstrap::default(),
        )?;
        print_summary(&summary, &args.out);
        Ok(())
    })())
}

/// `medvqa compare`.
pub fn compare_runs(args: CompareArgs) -> i32 {
    exit_code((|| {
        let a = read_run(&args.run_a)?;
        let b = read_run(&args.run_b)?;
        let c = compare(&a, &b, &Bootstrap::default())?;
        print!("{}", render_markdown(&c));
        if let Some(out) = &args.out {
            write_comparison(out, &c)?;
            eprintln!(
                "wrote compare.json, compare.md, compare.html to {}",
                out.display()
            );
        }
        Ok(())
    })())
}
