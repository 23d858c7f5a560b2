//! `medvqa debug forward`: run a checkpoint on input tensors named as transformers names them
//! and write its outputs under transformers' names, so anyone can compare medvqa with the
//! reference implementation tensor by tensor.
//!
//! Vision towers take `pixel_values` and write the tower outputs. Language and vision-language
//! models take `input_ids`, `attention_mask`, and (VLMs) `pixel_values` / `token_type_ids`, and
//! write `logits` `[batch, seq, vocab]` for the prompt (positions 0..seq in every row, as
//! transformers' `forward` without `position_ids`), `image_features` (the projector output), and
//! with `--generate N` the greedy `generated_ids` `[batch, N]` (positions from the attention mask,
//! as transformers' `generate`; no stop token ends a row early).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Args;
use medvqa_model::causal::{folder_kind, CausalModel, FolderKind};
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::generate::{generate, GenerateOptions, Sampling};
use medvqa_model::tensor_io::{TensorFile, TensorWriter};
use medvqa_model::vision::{ForwardOptions, VisionTransformer};
use medvqa_model::vlm::{attention_for, Positions, PromptBatch};

/// Flags of `medvqa debug forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Checkpoint folder (config.json + *.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// safetensors file with the inputs: `pixel_values` `[B, 3, H, W]` for vision towers;
    /// `input_ids` `[B, S]` (i64), optional `attention_mask` `[B, S]` (default all ones),
    /// `pixel_values` and `token_type_ids` for language and vision-language models.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output safetensors file. Vision towers: `last_hidden_state`, `pooler_output`,
    /// `hidden_states` `[layers+1, B, S, D]`, and `image_embeds` for two-tower CLIP. Language
    /// models: `logits` `[B, S, vocab]`, `image_features` (VLMs), `generated_ids` (--generate).
    #[arg(long)]
    pub out: PathBuf,
    /// Language models: also generate N tokens greedily and write them as `generated_ids`.
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,
    /// auto | wgpu | vulkan | metal | dx12 | cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// 16-bit (bf16 / f16) weight matrices: auto (kept 16-bit only when an f32 copy would take
    /// more than half the free memory), f32 (fastest), stored (half the memory). Same results.
    #[arg(long, default_value = "auto")]
    pub weights_dtype: medvqa_model::checkpoint::WeightDtype,
    /// Resize the position embeddings to the input's patch grid, as transformers'
    /// `interpolate_pos_encoding=True` does (bicubic).
    #[arg(long)]
    pub interpolate_pos_encoding: bool,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs the command.
pub fn forward(args: &ForwardArgs) -> Result<()> {
    if args.out.exists() && !args.overwrite {
        let msg = format!("{} exists; pass --overwrite to replace it", args.out.display());
        return Err(crate::usage::UsageError(msg).into());
    }
    let selected = select_device(args.device)?;
    if let Some(note) = &selected.note {
        eprintln!("{note}");
    }
    eprintln!("device: {}", selected.label);
    let device = &selected.device;
    let mut writer = TensorWriter::new();
    match folder_kind(&args.model)? {
        FolderKind::VisionEncoder => {
            if args.generate.is_some() {
                let msg = "--generate needs a language model; this folder holds a vision encoder".to_string();
                return Err(crate::usage::UsageError(msg).into());
            }
            vision_forward(args, device, &mut writer)?
        }
        FolderKind::TextDecoder | FolderKind::VisionLanguage => language_forward(args, device, &mut writer)?,
    }
    writer.metadata("medvqa_device", &selected.label).metadata("medvqa_model", &args.model.display().to_string());
    writer.write(&args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Vision towers: `pixel_values` in, the tower's outputs out.
fn vision_forward(args: &ForwardArgs, device: &Device, writer: &mut TensorWriter) -> Result<()> {
    let loaded = VisionTransformer::load(&args.model, device)?;
    let inputs = TensorFile::open(&args.inputs)?;
    let (shape, values) = inputs.f32("pixel_values")?;
    let [b, c, h, w]: [usize; 4] = shape
        .as_slice()
        .try_into()
        .with_context(|| format!("{}: pixel_values must be [B, C, H, W], found {shape:?}", args.inputs.display()))?;
    let pixels = Tensor::<4>::from_data(TensorData::new(values, [b, c, h, w]), device);
    let opts = ForwardOptions { interpolate_pos_encoding: args.interpolate_pos_encoding, output_hidden_states: true };
    let out = loaded.model.forward(pixels, opts).with_context(|| format!("{}", args.model.display()))?;
    put(writer, "last_hidden_state", out.last_hidden_state)?;
    if let Some(p) = out.pooler_output {
        put(writer, "pooler_output", p)?;
    }
    if let Some(e) = out.image_embeds {
        put(writer, "image_embeds", e)?;
    }
    if let Some(hidden) = out.hidden_states {
        put(writer, "hidden_states", Tensor::stack::<4>(hidden, 0))?;
    }
    Ok(())
}

/// Language and vision-language models: token ids (and images) in, logits, image features and
/// greedy tokens out.
fn language_forward(args: &ForwardArgs, device: &Device, writer: &mut TensorWriter) -> Result<()> {
    let loaded = CausalModel::load_with(&args.model, device, args.weights_dtype)?;
    let model = &loaded.model;
    let inputs = TensorFile::open(&args.inputs)?;
    let file = args.inputs.display();
    let (shape, ids) = inputs.i64("input_ids")?;
    let [b, s]: [usize; 2] =
        shape.as_slice().try_into().with_context(|| format!("{file}: input_ids must be [B, S], found {shape:?}"))?;
    let rows = |name: &str| -> Result<Option<Vec<Vec<i64>>>> {
        if !inputs.names().contains(&name) {
            return Ok(None);
        }
        let (shape, values) = inputs.i64(name)?;
        if shape != [b, s] {
            anyhow::bail!("{file}: {name} is {shape:?}, input_ids is [{b}, {s}]");
        }
        Ok(Some(values.chunks(s).map(<[i64]>::to_vec).collect()))
    };
    let batch = PromptBatch {
        input_ids: ids.chunks(s).map(<[i64]>::to_vec).collect(),
        attention_mask: rows("attention_mask")?.unwrap_or_else(|| vec![vec![1; s]; b]),
        token_type_ids: rows("token_type_ids")?,
    };
    let pixels = if inputs.names().contains(&"pixel_values") {
        let (shape, values) = inputs.f32("pixel_values")?;
        let dims: [usize; 4] = shape
            .as_slice()
            .try_into()
            .with_context(|| format!("{file}: pixel_values must be [N, C, H, W], found {shape:?}"))?;
        Some(Tensor::<4>::from_data(TensorData::new(values, dims), device))
    } else {
        None
    };
    let context = || format!("{}", args.model.display());
    let decoder = model.decoder();
    let (embeds, attn, features) = model.prompt(&batch, pixels, Positions::Arange).with_context(context)?;
    let mut cache = decoder.new_cache(b);
    let hidden = decoder.forward(embeds.clone(), &attn, &mut cache).with_context(context)?;
    put(writer, "logits", decoder.logits(hidden))?;
    if let Some(f) = features {
        put(writer, "image_features", f)?;
    }
    if let Some(n) = args.generate {
        // Same embeddings (the image tower runs once); only the positions differ.
        let attn = attention_for(&batch, Positions::FromMask, attn.bidirectional_groups);
        let opts = GenerateOptions { max_new_tokens: n, stop_token_ids: Vec::new(), sampling: Sampling::Greedy };
        let generated = generate(decoder, embeds, &attn, &opts).with_context(context)?;
        let mut flat = Vec::with_capacity(b * n);
        for row in &generated {
            if row.len() != n {
                anyhow::bail!("generation stopped after {} of {n} tokens", row.len());
            }
            flat.extend(row.iter().map(|&t| i64::from(t)));
        }
        writer.i64("generated_ids", &[b, n], flat)?;
    }
    Ok(())
}

/// Reads a tensor back from the device and adds it to the writer.
fn put<const D: usize>(writer: &mut TensorWriter, name: &str, t: Tensor<D>) -> Result<()> {
    let shape = t.dims().to_vec();
    let data = t.try_into_data().map_err(|e| anyhow::anyhow!("reading {name} from the device: {e:?}"))?;
    let values: Vec<f32> = data.try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
    writer.f32(name, &shape, values)?;
    Ok(())
}
