//! Text decoders against transformers 4.57.6 (fixtures from `tools/parity/make_lm_fixtures.py`
//! in `tests/fixtures/lm/`): prompt logits within 1e-4 + 1e-5·|ref| at every non-padding
//! position, and the greedy tokens of `model.generate` identical, for every `*ForCausalLM`
//! folder (Llama with llama3 RoPE, Qwen2 with biases, Gemma 3 with sliding/global layers and
//! soft-capping, the 5.x key layout, sharded and bf16 weights), on the CPU backend and on
//! WGPU (looser bound). Plus loader errors, seeded sampling and option scoring.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::Int;
use medvqa_model::generate::{generate, score_continuations, GenerateOptions, Sampling};
use medvqa_model::tensor_io::{TensorFile, TensorWriter};
use medvqa_model::text::{AttentionInput, TextDecoder};
use medvqa_model::ModelError;

fn lm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm")
}

/// The `*ForCausalLM` folders the manifest lists.
fn causal_folders() -> Vec<String> {
    let path = lm_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<String> = manifest["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["class"].as_str().is_some_and(|c| c.ends_with("ForCausalLM")))
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    for required in ["llama_causal", "qwen2_causal", "gemma3_causal"] {
        assert!(names.iter().any(|n| n == required), "manifest lacks {required}");
    }
    names
}

struct Case {
    ids: Vec<i64>,
    mask: Vec<Vec<bool>>,
    b: usize,
    s: usize,
    logits: (Vec<usize>, Vec<f32>),
    generated: (Vec<usize>, Vec<i64>),
}

fn read_case(dir: &Path) -> Case {
    let inputs = TensorFile::open(&dir.join("inputs.safetensors")).unwrap();
    let expected = TensorFile::open(&dir.join("expected.safetensors")).unwrap();
    let (shape, ids) = inputs.i64("input_ids").unwrap();
    let (_, mask) = inputs.i64("attention_mask").unwrap();
    let (b, s) = (shape[0], shape[1]);
    let mask = (0..b).map(|r| mask[r * s..(r + 1) * s].iter().map(|&m| m != 0).collect()).collect();
    Case { ids, mask, b, s, logits: expected.f32("logits").unwrap(), generated: expected.i64("generated_ids").unwrap() }
}

fn ids_tensor(ids: &[i64], b: usize, s: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(ids.to_vec(), [b, s]), device)
}

/// Prompt logits as transformers' plain forward computes them (positions 0..S for every row).
fn prompt_logits(lm: &TextDecoder, case: &Case, device: &Device) -> Vec<f32> {
    let attn = AttentionInput {
        position_ids: vec![(0..case.s as i64).collect(); case.b],
        key_mask: case.mask.clone(),
        bidirectional_groups: None,
    };
    let mut cache = lm.new_cache(case.b);
    let hidden = lm.forward(lm.embed(ids_tensor(&case.ids, case.b, case.s, device)), &attn, &mut cache).unwrap();
    lm.logits(hidden).into_data().try_into_vec::<f32>().unwrap()
}

/// Largest |a − b| − rel·|b| over non-padding positions, and the max abs difference.
fn compare(name: &str, got: &[f32], case: &Case, abs: f32, rel: f32) {
    let vocab = case.logits.0[2];
    assert_eq!(got.len(), case.logits.1.len(), "{name}: logits size");
    // Padding queries attend to themselves (not to nothing), so even their outputs are finite.
    assert!(got.iter().all(|v| v.is_finite()), "{name}: non-finite logits (a fully masked query row?)");
    let (mut worst_abs, mut worst_excess) = (0.0f32, f32::NEG_INFINITY);
    for r in 0..case.b {
        for t in 0..case.s {
            if !case.mask[r][t] {
                continue;
            }
            let at = (r * case.s + t) * vocab;
            for (a, b) in got[at..at + vocab].iter().zip(&case.logits.1[at..at + vocab]) {
                assert!(a.is_finite(), "{name}: non-finite logit at row {r} position {t}");
                let d = (a - b).abs();
                worst_abs = worst_abs.max(d);
                worst_excess = worst_excess.max(d - (abs + rel * b.abs()));
            }
        }
    }
    eprintln!("{name}: logits max abs diff {worst_abs:.2e}");
    assert!(worst_excess <= 0.0, "{name}: a logit differs by more than {abs:e} + {rel:e}·|ref| (max abs diff {worst_abs:e})");
}

fn greedy(lm: &TextDecoder, case: &Case, device: &Device) -> Vec<Vec<u32>> {
    let n = case.generated.0[1];
    let attn = AttentionInput::from_attention_mask(&case.mask);
    let opts = GenerateOptions { max_new_tokens: n, stop_token_ids: Vec::new(), sampling: Sampling::Greedy };
    generate(lm, lm.embed(ids_tensor(&case.ids, case.b, case.s, device)), &attn, &opts).unwrap()
}

fn check_all(device: &Device, abs: f32, rel: f32) {
    for name in causal_folders() {
        let dir = lm_dir().join(&name);
        let lm = TextDecoder::load(&dir, device).unwrap_or_else(|e| panic!("{name}: {e}")).model;
        let case = read_case(&dir);
        compare(&name, &prompt_logits(&lm, &case, device), &case, abs, rel);
        let got = greedy(&lm, &case, device);
        let n = case.generated.0[1];
        assert_eq!(got.len(), case.b, "{name}: rows");
        for (r, row) in got.iter().enumerate() {
            let want: Vec<u32> = case.generated.1[r * n..(r + 1) * n].iter().map(|&t| t as u32).collect();
            assert_eq!(row, &want, "{name}: greedy tokens of row {r}");
        }
        eprintln!("{name}: greedy tokens identical ({} rows × {n})", case.b);
    }
}

#[test]
fn causal_lms_match_transformers_on_cpu() {
    check_all(&Device::flex(), 1e-4, 1e-5);
}

/// Same on WGPU (lavapipe here and in CI, which sets MEDVQA_REQUIRE_WGPU=1).
#[test]
fn causal_lms_match_transformers_on_wgpu() {
    let Some(selected) = medvqa_model::device::wgpu_for_tests() else {
        return;
    };
    eprintln!("wgpu device: {}", selected.label);
    check_all(&selected.device, 1e-3, 1e-4);
}

/// Top-p sampling (device sort, cumsum, gather) and option scoring also run on WGPU:
/// reproducible per seed, and the scores agree with the CPU backend's.
#[test]
fn sampling_and_scoring_run_on_wgpu() {
    let Some(selected) = medvqa_model::device::wgpu_for_tests() else {
        return;
    };
    let dir = lm_dir().join("gemma3_causal");
    let case = read_case(&dir);
    let attn = AttentionInput::from_attention_mask(&case.mask);
    let opts = GenerateOptions { max_new_tokens: 6, stop_token_ids: Vec::new(), sampling: Sampling::Sample { temperature: 1.5, top_p: 0.9, seed: 3 } };
    let prompt: Vec<i64> = case.ids[..9].to_vec();
    let one = AttentionInput::from_attention_mask(&[vec![true; 9]]);
    let options = [vec![5, 17, 40], vec![33], vec![9, 8]];
    let mut scores = Vec::new();
    for device in [selected.device.clone(), Device::flex()] {
        let lm = TextDecoder::load(&dir, &device).unwrap().model;
        let run = || generate(&lm, lm.embed(ids_tensor(&case.ids, case.b, case.s, &device)), &attn, &opts).unwrap();
        let first = run();
        assert_eq!(first, run(), "same seed, same tokens on {device:?}");
        assert!(first.iter().all(|row| row.len() == 6));
        scores.push(score_continuations(&lm, lm.embed(ids_tensor(&prompt, 1, 9, &device)), &one, &options).unwrap());
    }
    for (w, c) in scores[0].iter().zip(&scores[1]) {
        assert!((w - c).abs() <= 1e-3 * (1.0 + c.abs()), "WGPU score {w} vs CPU {c}");
    }
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let src = lm_dir().join("llama_causal");
    let tmp = tempfile::tempdir().unwrap();
    for file in ["config.json", "generation_config.json"] {
        std::fs::copy(src.join(file), tmp.path().join(file)).unwrap();
    }
    let weights = TensorFile::open(&src.join("model.safetensors")).unwrap();
    let mut writer = TensorWriter::new();
    for name in weights.names() {
        if name == "model.layers.1.mlp.up_proj.weight" {
            continue;
        }
        let (shape, values) = weights.f32(name).unwrap();
        writer.f32(name, &shape, values).unwrap();
    }
    writer.f32("model.layers.1.mlp.extra.weight", &[2], vec![0.0, 1.0]).unwrap();
    writer.write(&tmp.path().join("model.safetensors")).unwrap();
    let err = TextDecoder::load(tmp.path(), &Device::flex()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelError::WeightMismatch { .. }), "{text}");
    assert!(text.contains("model.layers.1.mlp.up_proj.weight"), "{text}");
    assert!(text.contains("model.layers.1.mlp.extra.weight"), "{text}");
    assert!(text.contains(&tmp.path().display().to_string()), "{text}");
}

#[test]
fn unsupported_config_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), r#"{"model_type":"llama","rope_scaling":{"rope_type":"yarn","factor":4.0}}"#).unwrap();
    let err = TextDecoder::load(tmp.path(), &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("yarn"), "{err}");
}

#[test]
fn seeded_sampling_is_reproducible_and_depends_on_the_seed() {
    let device = Device::flex();
    let dir = lm_dir().join("llama_causal");
    let lm = TextDecoder::load(&dir, &device).unwrap().model;
    let case = read_case(&dir);
    let attn = AttentionInput::from_attention_mask(&case.mask);
    let run = |seed: u64| {
        let opts = GenerateOptions { max_new_tokens: 12, stop_token_ids: Vec::new(), sampling: Sampling::Sample { temperature: 1.5, top_p: 0.95, seed } };
        generate(&lm, lm.embed(ids_tensor(&case.ids, case.b, case.s, &device)), &attn, &opts).unwrap()
    };
    let first = run(1);
    assert_eq!(first, run(1), "same seed, same tokens");
    assert!(first.iter().all(|row| row.len() == 12));
    let others: Vec<_> = (2..6).map(run).collect();
    assert!(others.iter().any(|o| *o != first), "five seeds gave identical samples");
    // Not greedy in disguise.
    let opts = GenerateOptions { max_new_tokens: 12, stop_token_ids: Vec::new(), sampling: Sampling::Greedy };
    let greedy12 = generate(&lm, lm.embed(ids_tensor(&case.ids, case.b, case.s, &device)), &attn, &opts).unwrap();
    assert!(std::iter::once(&first).chain(&others).any(|o| *o != greedy12), "sampling always gave the greedy tokens");
}

#[test]
fn rows_stop_independently_at_stop_tokens() {
    let device = Device::flex();
    let dir = lm_dir().join("gemma3_causal");
    let lm = TextDecoder::load(&dir, &device).unwrap().model;
    let case = read_case(&dir);
    let want = greedy(&lm, &case, &device);
    // Stop on row 0's third token: row 0 ends there, row 1 goes on unchanged (unless it meets it).
    let stop = want[0][2];
    let opts = GenerateOptions { max_new_tokens: want[0].len(), stop_token_ids: vec![stop], sampling: Sampling::Greedy };
    let attn = AttentionInput::from_attention_mask(&case.mask);
    let got = generate(&lm, lm.embed(ids_tensor(&case.ids, case.b, case.s, &device)), &attn, &opts).unwrap();
    for r in 0..case.b {
        let end = want[r].iter().position(|&t| t == stop).map_or(want[r].len(), |p| p + 1);
        assert_eq!(got[r], want[r][..end], "row {r}");
    }
    assert!(got[0].len() <= 3);
}

#[test]
fn option_scores_equal_log_softmax_of_full_sequences() {
    let device = Device::flex();
    for name in ["gemma3_causal", "llama_causal"] {
        let dir = lm_dir().join(name);
        let lm = TextDecoder::load(&dir, &device).unwrap().model;
        let case = read_case(&dir);
        // Row 0 is unpadded; a prompt of 9 tokens (past Gemma's window of 5).
        let prompt: Vec<i64> = case.ids[..9].to_vec();
        let options: Vec<Vec<u32>> = vec![vec![5, 17, 40], vec![33], vec![7, 7, 8, 9, 10, 11], vec![]];
        let attn = AttentionInput::from_attention_mask(&[vec![true; 9]]);
        let scores = score_continuations(&lm, lm.embed(ids_tensor(&prompt, 1, 9, &device)), &attn, &options).unwrap();
        for (option, score) in options.iter().zip(&scores) {
            let mut ids = prompt.clone();
            ids.extend(option.iter().map(|&t| i64::from(t)));
            let s = ids.len();
            let attn = AttentionInput::from_attention_mask(&[vec![true; s]]);
            let mut cache = lm.new_cache(1);
            let hidden = lm.forward(lm.embed(ids_tensor(&ids, 1, s, &device)), &attn, &mut cache).unwrap();
            let logits: Vec<f32> = lm.logits(hidden).into_data().try_into_vec().unwrap();
            let vocab = lm.config().vocab_size;
            let mut want = 0.0f64;
            for (j, &tok) in option.iter().enumerate() {
                let row = &logits[(8 + j) * vocab..(9 + j) * vocab];
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
                let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
                want += row[tok as usize] as f64 - lse;
            }
            eprintln!("{name}: option {option:?} score {score:.6} full-sequence {want:.6}");
            assert!((score - want).abs() <= 1e-4 * (1.0 + want.abs()), "{name}: {option:?}: {score} vs {want}");
        }
        assert_eq!(scores[3], 0.0);
    }
}

#[test]
fn bad_attention_input_is_an_error() {
    let device = Device::flex();
    let lm = TextDecoder::load(&lm_dir().join("qwen2_causal"), &device).unwrap().model;
    let attn = AttentionInput::from_attention_mask(&[vec![true; 2]]);
    let mut cache = lm.new_cache(1);
    let err = lm.forward(lm.embed(ids_tensor(&[1, 2, 3], 1, 3, &device)), &attn, &mut cache).unwrap_err();
    assert!(err.to_string().contains("position_ids"), "{err}");
}
