//! `medvqa ask`: one question about one or more images (or none, for a text-only model).

use std::path::PathBuf;

use anyhow::Context;
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::generate::Sampling;
use medvqa_vqa::{load_images, AskOptions, Assistant, Choices};

use crate::usage::{usage, window_arg};

#[derive(clap::Args)]
pub struct AskArgs {
    /// Model folder: config.json, *.safetensors, tokenizer.json, tokenizer_config.json (chat
    /// template), preprocessor_config.json (Gemma 3 / MedGemma, LLaVA, or a text-only Gemma 3 /
    /// Llama / Mistral / Qwen2).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Image inputs, in prompt order: DICOM files, series folders (a CT/MR volume becomes its
    /// sampled slices, each an image followed by "SLICE n"), NIfTI, PNG, JPEG. Written as
    /// `--image A B "question"`, the last value is the question.
    #[arg(long = "image", value_name = "PATH", num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// The question.
    pub question: Option<String>,
    /// Answer options separated by "|": the answer is the most likely option (log-likelihood of
    /// its letter after the lettered list), not generated text.
    #[arg(long, value_name = "A|B|C")]
    pub options: Option<String>,
    /// Score yes against no instead of generating (a closed yes/no question).
    #[arg(long, conflicts_with = "options")]
    pub yes_no: bool,
    /// Upper bound on generated tokens.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sample with this temperature instead of greedy decoding (with --top-p and --seed).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass (with --temperature).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler: the same seed gives the same answer.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A system message before the question.
    #[arg(long)]
    pub system: Option<String>,
    /// VOI window for DICOM / deep images: "C,W" or a preset (lung, mediastinum, abdomen,
    /// liver, bone, brain, stroke, subdural). CT without one uses MedGemma 1.5's 3-window RGB.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Slices kept of a volume, sampled uniformly (MedGemma 1.5's CT notebook uses 85).
    #[arg(long, default_value_t = 85)]
    pub max_slices: usize,
    /// auto | wgpu | vulkan | metal | dx12 | cpu (see `medvqa devices`).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// 16-bit (bf16 / f16) weight matrices: auto (kept 16-bit only when an f32 copy would take
    /// more than half the free memory), f32 (fastest), stored (half the memory). Same results.
    #[arg(long, default_value = "auto")]
    pub weights_dtype: medvqa_model::checkpoint::WeightDtype,
    /// Print {"answer", "token_ids", "option_scores", …} as JSON instead of the answer text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command: 0 answered, 1 the model or an input failed, 2 bad arguments.
pub fn run(args: AskArgs) -> i32 {
    match ask(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("medvqa ask: {e:#}");
            crate::usage::exit_code(&e)
        }
    }
}

fn ask(mut args: AskArgs) -> anyhow::Result<()> {
    // `--image A B "question"`: clap gives every value after --image to it; the question is the
    // last one.
    let question = match args.question.take() {
        Some(q) => q,
        None => match args.images.pop() {
            Some(q) if !q.exists() => q.to_string_lossy().into_owned(),
            _ => return Err(usage("no question given")),
        },
    };
    if question.trim().is_empty() {
        return Err(usage("the question is empty"));
    }
    let choices = match (&args.options, args.yes_no) {
        (Some(list), _) => {
            let options: Vec<String> = list.split('|').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
            if options.len() < 2 {
                return Err(usage(format!("--options {list:?}: give at least two options separated by \"|\"")));
            }
            Choices::Lettered(options)
        }
        (None, true) => Choices::Words(vec!["yes".into(), "no".into()]),
        (None, false) => Choices::Open,
    };
    let sampling = match args.temperature {
        None => Sampling::Greedy,
        Some(t) => Sampling::Sample { temperature: t, top_p: args.top_p, seed: args.seed },
    };
    let window = window_arg(args.window.as_deref())?;
    if let Some(missing) = args.images.iter().find(|p| !p.exists()) {
        return Err(usage(format!("--image {} does not exist", missing.display())));
    }
    let selected = select_device(args.device)?;
    if let Some(note) = &selected.note {
        eprintln!("medvqa ask: {note}");
    }
    let assistant = Assistant::load_with(&args.model, &selected.device, args.weights_dtype).with_context(|| format!("loading {}", args.model.display()))?;
    if !args.images.is_empty() && !assistant.accepts_images() {
        return Err(usage(format!("{} is a text-only model: it cannot take --image", args.model.display())));
    }
    let images = if args.images.is_empty() {
        Vec::new()
    } else {
        load_images(&args.images, &assistant.image_options(window, args.max_slices))?
    };
    let opts = AskOptions { max_new_tokens: args.max_new_tokens, sampling, system: args.system.clone() };
    let answer = assistant.ask(&images, &question, &choices, &opts)?;
    if args.json {
        let mut value = serde_json::to_value(&answer)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("model".into(), args.model.display().to_string().into());
            obj.insert("weights_sha256".into(), assistant.weights_sha256().into());
            obj.insert("device".into(), selected.label.clone().into());
            obj.insert("images".into(), images.len().into());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", answer.answer);
    }
    Ok(())
}
