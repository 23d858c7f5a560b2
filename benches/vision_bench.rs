//! Vision-encoder throughput through medvqa, the Rust side of `benches/run_vision_bench.sh`.
//!
//!     vision_bench DIR [--device cpu|wgpu] [--batch 1 8] [--seconds 10]
//!
//! DIR is a SigLIP / CLIP checkpoint folder (the script uses the SigLIP-B/16-224-sized random
//! model from `tools/parity/make_vision_fixtures.py --big`). When DIR holds `inputs.safetensors`
//! and `expected.safetensors`, the outputs are first checked against the reference, so the timed
//! computation is the one PyTorch runs. Prints one JSON line per batch size, in the same form as
//! `tools/parity/bench_torch.py`.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::tensor_io::TensorFile;
use medvqa_model::vision::{ForwardOptions, VisionTransformer};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut device = "cpu".to_string();
    let mut batches = Vec::new();
    let mut seconds = 10.0f64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().ok_or("--device needs a value")?,
            "--seconds" => seconds = args.next().ok_or("--seconds needs a value")?.parse()?,
            "--batch" => {
                while let Some(b) = args.next() {
                    if b.starts_with("--") {
                        return Err("put --batch last".into());
                    }
                    batches.push(b.parse::<usize>()?);
                }
            }
            "--bench" => {} // passed by `cargo bench`
            other if dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument {other}").into()),
        }
    }
    let dir = dir.ok_or("usage: vision_bench DIR [--device cpu|wgpu] [--seconds S] [--batch N...]")?;
    if batches.is_empty() {
        batches = vec![1, 8];
    }
    let selected = select_device(device.parse::<DeviceChoice>()?)?;
    let dev = &selected.device;
    let t0 = Instant::now();
    let loaded = VisionTransformer::load(&dir, dev)?;
    let load_s = t0.elapsed().as_secs_f64();
    let cfg = loaded.model.config().clone();
    eprintln!("{}: loaded in {load_s:.2} s on {}", dir.display(), selected.label);

    // Same computation as the reference: check the committed-style case first.
    if dir.join("expected.safetensors").is_file() && dir.join("inputs.safetensors").is_file() {
        let (shape, values) = TensorFile::open(&dir.join("inputs.safetensors"))?.f32("pixel_values")?;
        let (_, want) = TensorFile::open(&dir.join("expected.safetensors"))?.f32("last_hidden_state")?;
        let dims: [usize; 4] = shape.as_slice().try_into()?;
        let out = loaded.model.forward(Tensor::from_data(TensorData::new(values, dims), dev), ForwardOptions::default())?;
        let got: Vec<f32> = out.last_hidden_state.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("parity with the reference: last_hidden_state max abs diff {worst:.2e}");
        if !(worst < 1e-3) {
            return Err(format!("outputs differ from the reference by {worst}").into());
        }
    }

    for batch in batches {
        let n = batch * 3 * cfg.image_size * cfg.image_size;
        // Deterministic values in [-1, 1], like the PyTorch side's rand * 2 - 1.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        let pixels = Tensor::<4>::from_data(TensorData::new(values, [batch, 3, cfg.image_size, cfg.image_size]), dev);
        let run_once = || -> Result<f64, Box<dyn std::error::Error>> {
            let t = Instant::now();
            let (pooled, _) = loaded.model.embed(pixels.clone())?;
            // Read the values back: on a GPU the clock must include the work, not its queueing.
            let v: Vec<f32> = pooled.into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
            std::hint::black_box(v);
            Ok(t.elapsed().as_secs_f64())
        };
        run_once()?; // warm-up: allocation, kernel compilation on WGPU
        let mut times = Vec::new();
        let start = Instant::now();
        // `--seconds 0`: one timed run (a ViT-B on a software adapter takes minutes per image).
        let min_runs = if seconds > 0.0 { 3 } else { 1 };
        while start.elapsed().as_secs_f64() < seconds || times.len() < min_runs {
            times.push(run_once()?);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let per_batch = times[times.len() / 2];
        println!(
            "{}",
            serde_json::json!({
                "engine": "medvqa", "device": selected.label, "threads": rayon::current_num_threads(),
                "batch": batch, "image_size": cfg.image_size, "runs": times.len(),
                "seconds_per_batch": (per_batch * 1e4).round() / 1e4,
                "images_per_second": ((batch as f64 / per_batch) * 1e3).round() / 1e3,
            })
        );
    }
    Ok(())
}
