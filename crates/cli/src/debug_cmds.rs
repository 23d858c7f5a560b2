//! `medvqa debug …`: commands that expose one stage of the model path as tensors named the
//! way transformers names them, so anyone can check medvqa against the reference implementation
//! tensor by tensor with numpy and safetensors alone.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use medvqa_ingest::model_input::{HfOptions, Pipeline};
use medvqa_ingest::pipeline::{self, Options};
use medvqa_model::tensor_io::TensorWriter;

use crate::usage::UsageError;

/// The `debug` subcommands.
#[derive(clap::Subcommand)]
pub enum DebugCommand {
    /// Write the `pixel_values` [1, 3, H, W] (f32) that the checkpoint's image processor makes
    /// from one image, from DIR/preprocessor_config.json alone.
    Preprocess(PreprocessArgs),
    /// Run a checkpoint on input tensors (`pixel_values`) and write its outputs under
    /// transformers' names: `last_hidden_state`, `pooler_output`, `hidden_states`
    /// [layers+1, B, S, D] (and `image_embeds` for two-tower CLIP).
    Forward(crate::debug_forward::ForwardArgs),
}

/// Runs a `debug` subcommand; returns the exit code.
pub fn run(cmd: DebugCommand) -> i32 {
    let (name, result) = match cmd {
        DebugCommand::Preprocess(args) => ("preprocess", preprocess(args)),
        DebugCommand::Forward(args) => ("forward", crate::debug_forward::forward(&args)),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("medvqa debug {name}: {}", message(&e));
            crate::usage::exit_code(&e)
        }
    }
}

/// The error and its causes, each cause left out when the message already says it (our
/// error types print their source in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[derive(clap::Args)]
pub struct PreprocessArgs {
    /// Model folder holding preprocessor_config.json (SiglipImageProcessor,
    /// Gemma3ImageProcessor or CLIPImageProcessor), or that file itself.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The image: PNG, JPEG, TIFF or a DICOM file.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Output safetensors file (`pixel_values`, plus the steps applied in its metadata).
    #[arg(long, value_name = "FILE.safetensors")]
    pub out: PathBuf,
    /// Zero-pad to square before the processor, as MedSigLIP's serving code does (its
    /// preprocessor_config.json has no field for it).
    #[arg(long)]
    pub pad_to_square: bool,
    /// VOI window for DICOM / 16-bit images: "C,W" or a preset (lung, mediastinum, abdomen,
    /// liver, bone, brain, stroke, subdural). Default: the file's window, else min–max; CT
    /// without a window uses MedGemma 1.5's three-window RGB.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Replace --out if it exists (refused by default).
    #[arg(long)]
    pub overwrite: bool,
}

/// What reaches the processor is the `model` stage of `medvqa ingest --stage model --model DIR`
/// (one code path, so `debug preprocess`, `ingest` and `encode` agree):
///
/// - 8-bit PNG / JPEG / TIFF: the stored levels go to the processor exactly as transformers
///   gets them from Pillow (resize in 8-bit, then rescale and normalise): the same tensor.
/// - DICOM (and 16-bit / float rasters): the display stage maps the values to [0, 1] (the
///   `--window`, else the file's VOI window or LUT, else min–max; MONOCHROME1 inverted), then
///   the processor runs as transformers does on a float image called with `do_rescale=False`
///   (how MedSigLIP's serving code calls it): `uint8(trunc(255 · x))`, resized in 8-bit,
///   divided by 255, normalised. So an 8-bit reference tool sees the display-stage image
///   quantised by truncation; saved as an 8-bit PNG that way and run through the processor,
///   it gives this same tensor (tested). Rounding instead of truncating differs by up to one
///   level.
/// - CT in HU without `--window`: MedGemma 1.5's three-window RGB (8-bit levels), then the
///   8-bit processor path.
fn preprocess(args: PreprocessArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.overwrite {
        return Err(UsageError(format!(
            "{} already exists; pass --overwrite to replace it",
            args.out.display()
        ))
        .into());
    }
    if !args.image.is_file() {
        return Err(UsageError(format!(
            "--image {}: no such file (a single image file is expected)",
            args.image.display()
        ))
        .into());
    }
    let window = args
        .window
        .as_deref()
        .map(medvqa_ingest::presets::parse_window)
        .transpose()?;
    // Read the processor config before decoding the image, so its errors come first and name
    // the file.
    let config = config_path(&args.model);
    Pipeline::from_hf_config_file(&config, HfOptions::default())?;

    let opts = Options::for_hf_processor(config.clone(), window, args.pad_to_square);
    let plan = pipeline::plan(std::slice::from_ref(&args.image));
    if let Some(f) = plan.failures.first().or(plan.non_images.first()) {
        bail!("{}", f.error);
    }
    let [job] = plan.jobs.as_slice() else {
        bail!(
            "{}: {} images found, expected one (debug preprocess takes a single image file, not \
             a DICOMDIR)",
            args.image.display(),
            plan.jobs.len()
        );
    };
    let out = pipeline::run_job(job, "image", &opts);
    if let Some(f) = out.failures.first() {
        bail!("{}", f.error);
    }
    let [item] = out.items.as_slice() else {
        bail!(
            "{}: gave {} model inputs, expected one",
            args.image.display(),
            out.items.len()
        );
    };
    // One image is [3, H, W] → [1, 3, H, W]; a multi-frame object is already [frames, 3, H, W],
    // as the processor returns for a list of frames.
    let mut shape = item.array.shape().to_vec();
    if shape.len() == 3 {
        shape.insert(0, 1);
    }
    let values: Vec<f32> = item.array.iter().copied().collect();
    let mut writer = TensorWriter::new();
    writer.f32("pixel_values", &shape, values)?;
    writer.metadata("source", &args.image.display().to_string());
    writer.metadata("preprocessor_config", &config.display().to_string());
    if let Some(steps) = &item.sidecar.preprocessing {
        writer.metadata("preprocessing", &steps.to_string());
    }
    writer.metadata("medvqa_version", env!("CARGO_PKG_VERSION"));
    writer
        .write(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    for w in &item.sidecar.warnings {
        eprintln!("medvqa debug preprocess: {}: {w}", args.image.display());
    }
    eprintln!(
        "medvqa debug preprocess: wrote pixel_values {shape:?} to {}",
        args.out.display()
    );
    Ok(())
}

/// `DIR/preprocessor_config.json`, or the path itself when it names a file.
fn config_path(model: &Path) -> PathBuf {
    if model.is_file() {
        model.to_path_buf()
    } else {
        model.join("preprocessor_config.json")
    }
}
