//! `medvqa debug forward`: run a checkpoint on input tensors named as transformers names them
//! and write its outputs under transformers' names, so anyone can compare medvqa with the
//! reference implementation tensor by tensor.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Args;
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::tensor_io::{TensorFile, TensorWriter};
use medvqa_model::vision::{ForwardOptions, VisionTransformer};

/// Flags of `medvqa debug forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Checkpoint folder (config.json + *.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// safetensors file with the inputs: `pixel_values` `[B, 3, H, W]` for vision towers.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output safetensors file: `last_hidden_state`, `pooler_output`, `hidden_states`
    /// `[layers+1, B, S, D]`, and `image_embeds` for two-tower CLIP.
    #[arg(long)]
    pub out: PathBuf,
    /// auto | wgpu | vulkan | metal | dx12 | cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
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
        return Err(crate::debug_cmds::UsageError(msg).into());
    }
    let selected = select_device(args.device)?;
    if let Some(note) = &selected.note {
        eprintln!("{note}");
    }
    eprintln!("device: {}", selected.label);
    let device = &selected.device;
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

    let mut writer = TensorWriter::new();
    put(&mut writer, "last_hidden_state", out.last_hidden_state)?;
    if let Some(p) = out.pooler_output {
        put(&mut writer, "pooler_output", p)?;
    }
    if let Some(e) = out.image_embeds {
        put(&mut writer, "image_embeds", e)?;
    }
    if let Some(hidden) = out.hidden_states {
        put(&mut writer, "hidden_states", Tensor::stack::<4>(hidden, 0))?;
    }
    writer.metadata("medvqa_device", &selected.label).metadata("medvqa_model", &args.model.display().to_string());
    writer.write(&args.out)?;
    eprintln!("wrote {}", args.out.display());
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
