//! Decoder prefill and decode throughput through medvqa, the Rust side of
//! `benches/run_lm_bench.sh` (the reference side is `tools/parity/bench_torch_lm.py`).
//!
//!     lm_bench DIR [--device cpu|wgpu] [--runs 3] [--new-tokens 64] [--weights-dtype f32|stored|auto]
//!
//! DIR is a *ForCausalLM folder with `inputs.safetensors` (`input_ids`; row 0 is the prompt), or
//! a folder of such folders (`tools/parity/make_lm_fixtures.py --big DIR` writes `llama` and
//! `gemma3`, ~100M parameters each). The same work as the PyTorch side is timed:
//! - prefill: one forward pass over the prompt with the cache on, logits for every position;
//! - decode: greedy decoding, one token per forward pass with the KV cache, the first new token
//!   taken from the prefill (so `new_tokens - 1` timed steps). The greedy tokens are checked
//!   against the folder's `expected.safetensors` (`generated_ids`) before anything is reported.
//!
//! Prints one JSON line per model, in the form of `bench_torch_lm.py`'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use medvqa_model::checkpoint::WeightDtype;
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::tensor_io::TensorFile;
use medvqa_model::text::{AttentionInput, TextDecoder};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn run() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut device = "cpu".to_string();
    let mut runs = 3usize;
    let mut new_tokens = 64usize;
    let mut weights_dtype = WeightDtype::F32;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().ok_or("--device needs a value")?,
            "--runs" => runs = args.next().ok_or("--runs needs a value")?.parse()?,
            "--new-tokens" => new_tokens = args.next().ok_or("--new-tokens needs a value")?.parse()?,
            "--weights-dtype" => weights_dtype = args.next().ok_or("--weights-dtype needs a value")?.parse()?,
            "--bench" => {} // passed by `cargo bench`
            other if dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument {other}").into()),
        }
    }
    let dir = dir.ok_or("usage: lm_bench DIR [--device cpu|wgpu] [--runs N] [--new-tokens N] [--weights-dtype f32|stored|auto]")?;
    let selected = select_device(device.parse::<DeviceChoice>()?)?;
    let folders: Vec<PathBuf> = if dir.join("config.json").is_file() {
        vec![dir.clone()]
    } else {
        let mut f: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.json").is_file())
            .collect();
        f.sort();
        f
    };
    if folders.is_empty() {
        return Err(format!("{}: no config.json in it or in its subfolders", dir.display()).into());
    }
    for folder in folders {
        bench_one(&folder, &selected.device, &selected.label, runs.max(1), new_tokens.max(2), weights_dtype)?;
    }
    Ok(())
}

fn read<const D: usize>(t: Tensor<D>) -> Res<Vec<f32>> {
    Ok(t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn bench_one(folder: &Path, dev: &Device, label: &str, runs: usize, new_tokens: usize, weights_dtype: WeightDtype) -> Res<()> {
    let t0 = Instant::now();
    let loaded = TextDecoder::load_with(folder, dev, weights_dtype)?;
    let model = &loaded.model;
    eprintln!("{}: loaded in {:.2} s on {label}", folder.display(), t0.elapsed().as_secs_f64());
    let (shape, ids) = TensorFile::open(&folder.join("inputs.safetensors"))?.i64("input_ids")?;
    let prompt: Vec<i64> = ids[..shape[1]].to_vec();
    let s = prompt.len();
    let prompt_attn = AttentionInput {
        position_ids: vec![(0..s as i64).collect()],
        key_mask: vec![vec![true; s]],
        bidirectional_groups: None,
    };
    let prompt_ids = || Tensor::<2, Int>::from_data(TensorData::new(prompt.clone(), [1, s]), dev);

    // Prefill: the prompt through the model with the cache on, logits for every position.
    let prefill = || -> Res<(f64, medvqa_model::text::KvCache, u32)> {
        let t = Instant::now();
        let mut cache = model.new_cache(1);
        let hidden = model.forward(model.embed(prompt_ids()), &prompt_attn, &mut cache)?;
        let logits = model.logits(hidden);
        let vocab = logits.dims()[2];
        // Reading the last row back makes the clock include the work (GPU queues are lazy).
        let last = read(logits.narrow(1, s - 1, 1).reshape([vocab]))?;
        Ok((t.elapsed().as_secs_f64(), cache, argmax(&last)))
    };
    prefill()?; // warm-up: allocation, kernel compilation on WGPU
    let mut pre = Vec::new();
    for _ in 0..runs {
        pre.push(prefill()?.0);
    }

    // Decode: new_tokens - 1 single-token steps after the prefill, greedy.
    let mut dec = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..runs {
        let (_, mut cache, first) = prefill()?;
        tokens = vec![first];
        let t = Instant::now();
        for step in 0..new_tokens - 1 {
            let pos = (s + step) as i64;
            let attn = AttentionInput { position_ids: vec![vec![pos]], key_mask: vec![vec![true; s + step + 1]], bidirectional_groups: None };
            let last = *tokens.last().unwrap_or(&0);
            let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![i64::from(last)], [1, 1]), dev);
            let hidden = model.forward(model.embed(ids), &attn, &mut cache)?;
            let logits = model.logits(hidden);
            let vocab = logits.dims()[2];
            tokens.push(argmax(&read(logits.reshape([vocab]))?));
        }
        dec.push(t.elapsed().as_secs_f64());
    }

    let expected = folder.join("expected.safetensors");
    let matches = if expected.is_file() {
        let (gshape, want) = TensorFile::open(&expected)?.i64("generated_ids")?;
        let n = gshape[1].min(tokens.len());
        let ok = want[..n].iter().zip(&tokens).all(|(a, b)| *a == i64::from(*b));
        if !ok {
            return Err(format!("{}: greedy tokens differ from expected.safetensors: the timed work is not the reference's", folder.display()).into());
        }
        Some(true)
    } else {
        None
    };
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (p, d) = (median(&mut pre), median(&mut dec));
    println!(
        "{}",
        serde_json::json!({
            "engine": "medvqa", "model": folder.file_name().map(|n| n.to_string_lossy().into_owned()),
            "device": label, "threads": rayon::current_num_threads(),
            "prompt_tokens": s, "new_tokens": new_tokens, "runs": runs,
            "prefill_seconds": (p * 1e4).round() / 1e4,
            "prefill_tokens_per_second": ((s as f64 / p) * 100.0).round() / 100.0,
            "decode_seconds": (d * 1e4).round() / 1e4,
            "decode_tokens_per_second": (((new_tokens - 1) as f64 / d) * 100.0).round() / 100.0,
            "greedy_matches_expected": matches,
        })
    );
    Ok(())
}
