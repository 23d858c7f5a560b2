//! Vision-language models against transformers 4.57.6 / 5.23 (`tools/parity/make_lm_fixtures.py`):
//! `image_features` (projector output), prompt `logits` at every non-padding position, and the
//! greedy `generated_ids`, for `Gemma3ForConditionalGeneration` and
//! `LlavaForConditionalGeneration` in both key layouts, on the CPU backend and on WGPU.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use medvqa_model::causal::{folder_kind, CausalModel, FolderKind};
use medvqa_model::generate::{generate, GenerateOptions, Sampling};
use medvqa_model::tensor_io::TensorFile;
use medvqa_model::vlm::{Positions, PromptBatch, VisionLanguageModel};

const VLM_FIXTURES: [&str; 4] = ["gemma3_vlm", "gemma3_vlm_v5", "llava", "llava_v5"];

fn lm_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm")
}

struct Case {
    batch: PromptBatch,
    pixel_values: (Vec<usize>, Vec<f32>),
    expected: TensorFile,
}

fn rows(file: &TensorFile, name: &str) -> Option<Vec<Vec<i64>>> {
    if !file.names().contains(&name) {
        return None;
    }
    let (shape, values) = file.i64(name).unwrap();
    Some(values.chunks(shape[1]).map(<[i64]>::to_vec).collect())
}

fn read_case(dir: &Path) -> Case {
    let inputs = TensorFile::open(&dir.join("inputs.safetensors")).unwrap();
    Case {
        batch: PromptBatch {
            input_ids: rows(&inputs, "input_ids").unwrap(),
            attention_mask: rows(&inputs, "attention_mask").unwrap(),
            token_type_ids: rows(&inputs, "token_type_ids"),
        },
        pixel_values: inputs.f32("pixel_values").unwrap(),
        expected: TensorFile::open(&dir.join("expected.safetensors")).unwrap(),
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// Worst |got − want| − rel·|want| over the entries `keep` selects (a bound of abs + rel·|ref|).
fn worst_excess(got: &[f32], want: &[f32], rel: f32, keep: impl Fn(usize) -> bool) -> (f32, f32) {
    assert_eq!(got.len(), want.len());
    let mut worst_abs = 0.0f32;
    let mut worst_excess = f32::NEG_INFINITY;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        if !keep(i) {
            continue;
        }
        assert!(a.is_finite(), "non-finite value at {i}");
        let d = (a - b).abs();
        worst_abs = worst_abs.max(d);
        worst_excess = worst_excess.max(d - rel * b.abs());
    }
    (worst_abs, worst_excess)
}

fn check(name: &str, device: &Device, abs_tol: f32) {
    let dir = lm_fixtures().join(name);
    assert_eq!(folder_kind(&dir).unwrap(), FolderKind::VisionLanguage, "{name}");
    let loaded = VisionLanguageModel::load(&dir, device).unwrap_or_else(|e| panic!("{name}: {e}"));
    let model = CausalModel::Vision(loaded.model);
    let case = read_case(&dir);
    let (pshape, pvalues) = case.pixel_values.clone();
    let dims: [usize; 4] = pshape.as_slice().try_into().unwrap();
    let pixels = || Tensor::<4>::from_data(TensorData::new(pvalues.clone(), dims), device);

    // Prompt logits: positions 0..s as transformers' forward without position_ids.
    let (embeds, attn, features) = model.prompt(&case.batch, Some(pixels()), Positions::Arange).unwrap();
    let decoder = model.decoder();
    let mut cache = decoder.new_cache(case.batch.input_ids.len());
    let logits = decoder.logits(decoder.forward(embeds, &attn, &mut cache).unwrap());

    let (fshape, fwant) = case.expected.f32("image_features").unwrap();
    let features = features.expect("a VLM returns image features");
    assert_eq!(features.dims().to_vec(), fshape, "{name}: image_features shape");
    let (fa, fx) = worst_excess(&host(features), &fwant, 1e-5, |_| true);
    eprintln!("{name}: image_features {fshape:?} max abs diff {fa:.2e}");
    assert!(fx <= abs_tol, "{name}: image_features differ by {fa:e}");

    let (lshape, lwant) = case.expected.f32("logits").unwrap();
    assert_eq!(logits.dims().to_vec(), lshape, "{name}: logits shape");
    let (s, vocab) = (lshape[1], lshape[2]);
    let mask = case.batch.attention_mask.clone();
    let keep = |i: usize| mask[i / (s * vocab)][(i / vocab) % s] != 0;
    let (la, lx) = worst_excess(&host(logits), &lwant, 1e-5, keep);
    eprintln!("{name}: logits {lshape:?} max abs diff {la:.2e} (non-padding positions)");
    assert!(lx <= abs_tol, "{name}: logits differ by {la:e}");

    // Greedy generation: positions from the mask, as generate() computes them.
    let (gshape, gwant) = case.expected.i64("generated_ids").unwrap();
    let (embeds, attn, _) = model.prompt(&case.batch, Some(pixels()), Positions::FromMask).unwrap();
    let opts = GenerateOptions { max_new_tokens: gshape[1], stop_token_ids: Vec::new(), sampling: Sampling::Greedy };
    let got = generate(decoder, embeds, &attn, &opts).unwrap();
    let want: Vec<Vec<u32>> = gwant.chunks(gshape[1]).map(|r| r.iter().map(|&t| t as u32).collect()).collect();
    assert_eq!(got, want, "{name}: greedy tokens");
}

#[test]
fn vision_language_models_match_transformers_on_cpu() {
    for name in VLM_FIXTURES {
        check(name, &Device::flex(), 1e-4);
    }
}

/// On the software Vulkan adapter in CI (MEDVQA_REQUIRE_WGPU=1 there makes a missing adapter
/// fail; elsewhere it skips visibly). Looser bound: GPU reductions sum in another order.
#[test]
fn vision_language_models_match_transformers_on_wgpu() {
    let Some(selected) = medvqa_model::device::wgpu_for_tests() else {
        return;
    };
    eprintln!("wgpu device: {}", selected.label);
    for name in VLM_FIXTURES {
        check(name, &selected.device, 1e-3);
    }
}

#[test]
fn v4_and_v5_layouts_hold_the_same_weights() {
    let root = lm_fixtures();
    for (v4, v5) in [("gemma3_vlm", "gemma3_vlm_v5"), ("llava", "llava_v5")] {
        let a = VisionLanguageModel::load(&root.join(v4), &Device::flex()).unwrap();
        let b = VisionLanguageModel::load(&root.join(v5), &Device::flex()).unwrap();
        let names = |c: &medvqa_model::checkpoint::Checkpoint| c.names().map(str::to_string).collect::<Vec<_>>();
        assert_ne!(names(&a.checkpoint), names(&b.checkpoint), "{v4} and {v5} should use different key layouts");
        assert_eq!(a.model.tokens_per_image(), b.model.tokens_per_image());
    }
}

#[test]
fn image_token_count_mismatch_is_an_error_not_a_panic() {
    let dir = lm_fixtures().join("gemma3_vlm");
    let loaded = VisionLanguageModel::load(&dir, &Device::flex()).unwrap();
    let case = read_case(&dir);
    let (pshape, pvalues) = case.pixel_values.clone();
    // One image fewer than the prompt has placeholders for.
    let per = pshape[1..].iter().product::<usize>();
    let n = pshape[0] - 1;
    let pixels = Tensor::<4>::from_data(TensorData::new(pvalues[..n * per].to_vec(), [n, pshape[1], pshape[2], pshape[3]]), &Device::flex());
    let features = loaded.model.image_features(pixels).unwrap();
    let err = loaded.model.prompt_embeddings(&case.batch, Some(features), Positions::Arange).unwrap_err().to_string();
    assert!(err.contains("image features and image tokens do not match"), "{err}");
    let err = loaded.model.prompt_embeddings(&case.batch, None, Positions::Arange).unwrap_err().to_string();
    assert!(err.contains("no image was given"), "{err}");
}

#[test]
fn a_missing_projector_tensor_is_named() {
    let src = lm_fixtures().join("llava");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    // Rewrite the weights without the projector's second layer bias.
    let file = TensorFile::open(&src.join("model.safetensors")).unwrap();
    let mut writer = medvqa_model::tensor_io::TensorWriter::new();
    let mut dropped = String::new();
    for name in file.names() {
        if name.ends_with("multi_modal_projector.linear_2.bias") {
            dropped = name.to_string();
            continue;
        }
        let (shape, values) = file.f32(name).unwrap();
        writer.f32(name, &shape, values).unwrap();
    }
    assert!(!dropped.is_empty());
    writer.write(&tmp.path().join("model.safetensors")).unwrap();
    let err = VisionLanguageModel::load(tmp.path(), &Device::flex()).unwrap_err().to_string();
    assert!(err.contains(&dropped), "{err}");
    assert!(err.contains("missing"), "{err}");
}
