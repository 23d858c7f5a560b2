//! `medvqa debug forward` end to end: the binary reads transformers-named inputs and writes
//! outputs equal to the reference within 1e-4 (CPU backend).

mod common;

use common::*;
use medvqa_model::tensor_io::TensorFile;

fn max_diff(out: &TensorFile, expected: &TensorFile, name: &str) -> f32 {
    let (gs, got) = out.f32(name).unwrap();
    let (ws, want) = expected.f32(name).unwrap();
    assert_eq!(gs, ws, "{name} shape");
    got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn forward_writes_reference_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    for (model, inputs, expected, interp) in [
        ("siglip_vision", "inputs.safetensors", "expected.safetensors", false),
        ("clip_vision", "inputs_interpolate.safetensors", "expected_interpolate.safetensors", true),
        ("clip_two_tower", "inputs.safetensors", "expected.safetensors", false),
    ] {
        let dir = parity_fixtures().join(model);
        let out = tmp.path().join(format!("{model}.safetensors"));
        let mut args = vec![
            "debug", "forward", "--device", "cpu", "--model", dir.to_str().unwrap(),
            "--inputs", dir.join(inputs).to_str().unwrap().to_owned().leak(), "--out", out.to_str().unwrap(),
        ];
        if interp {
            args.push("--interpolate-pos-encoding");
        }
        let run = medvqa(&args);
        assert!(run.status.success(), "{model}: {}", String::from_utf8_lossy(&run.stderr));
        let got = TensorFile::open(&out).unwrap();
        let want = TensorFile::open(&dir.join(expected)).unwrap();
        for name in want.names() {
            let d = max_diff(&got, &want, name);
            eprintln!("{model}: {name} max abs diff {d:.2e}");
            assert!(d <= 1e-4, "{model}: {name} differs by {d}");
        }
    }
}

#[test]
fn forward_refuses_to_overwrite_and_names_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = parity_fixtures().join("siglip_vision");
    let out = tmp.path().join("out.safetensors");
    std::fs::write(&out, b"keep me").unwrap();
    let inputs = dir.join("inputs.safetensors");
    let run = medvqa(&["debug", "forward", "--device", "cpu", "--model", dir.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    // A size the model was not trained for, without --interpolate-pos-encoding: a clear error.
    let interp = dir.join("inputs_interpolate.safetensors");
    let out2 = tmp.path().join("out2.safetensors");
    let run = medvqa(&["debug", "forward", "--device", "cpu", "--model", dir.to_str().unwrap(), "--inputs", interp.to_str().unwrap(), "--out", out2.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("interpolate"), "{err}");
    assert!(!out2.exists());

    // A folder without weights names itself.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::copy(dir.join("config.json"), empty.join("config.json")).unwrap();
    let run = medvqa(&["debug", "forward", "--device", "cpu", "--model", empty.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--out", out2.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("empty") && err.contains("safetensors"), "{err}");
}

/// The language-model contract: `input_ids` / `attention_mask` (/ `pixel_values`,
/// `token_type_ids`) in; `logits`, `image_features` and with `--generate N` the greedy
/// `generated_ids` out, equal to transformers' (`tools/parity/make_lm_fixtures.py`).
#[test]
fn forward_writes_language_model_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let lm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/lm");
    for model in ["llama_causal", "gemma3_causal", "gemma3_vlm", "llava_v5"] {
        let dir = lm.join(model);
        let out = tmp.path().join(format!("{model}.safetensors"));
        let inputs = dir.join("inputs.safetensors");
        let run = medvqa(&[
            "debug", "forward", "--device", "cpu", "--model", s(&dir), "--inputs", s(&inputs), "--out", s(&out), "--generate", "8",
        ]);
        assert!(run.status.success(), "{model}: {}", stderr(&run));
        let got = TensorFile::open(&out).unwrap();
        let want = TensorFile::open(&dir.join("expected.safetensors")).unwrap();
        // Logits compared where the attention mask is 1 (padding positions are undefined).
        let (shape, mask) = TensorFile::open(&inputs).unwrap().i64("attention_mask").unwrap();
        let (gs, g) = got.f32("logits").unwrap();
        let (ws, w) = want.f32("logits").unwrap();
        assert_eq!(gs, ws, "{model}: logits shape");
        let vocab = ws[2];
        let worst = g
            .iter()
            .zip(&w)
            .enumerate()
            .filter(|(i, _)| mask[i / vocab] != 0)
            .map(|(_, (a, b))| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{model}: logits {gs:?} max abs diff {worst:.2e} ({} of {} positions)", mask.iter().filter(|&&m| m != 0).count(), shape[0] * shape[1]);
        assert!(worst <= 1e-4, "{model}: logits differ by {worst}");
        if want.names().contains(&"image_features") {
            let d = max_diff(&got, &want, "image_features");
            assert!(d <= 1e-4, "{model}: image_features differ by {d}");
        }
        assert_eq!(got.i64("generated_ids").unwrap(), want.i64("generated_ids").unwrap(), "{model}: greedy tokens");
    }
}

/// `--weights-dtype stored` keeps a bf16 checkpoint's matrices in bf16 and gives exactly the
/// logits and tokens `--weights-dtype f32` gives; both match transformers.
#[test]
fn bf16_weights_kept_or_converted_give_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/lm/gemma3_causal_bf16");
    let inputs = dir.join("inputs.safetensors");
    let mut outs = Vec::new();
    for dtype in ["stored", "f32"] {
        let out = tmp.path().join(format!("{dtype}.safetensors"));
        let run = medvqa(&["debug", "forward", "--device", "cpu", "--weights-dtype", dtype, "--model", s(&dir), "--inputs", s(&inputs), "--out", s(&out), "--generate", "4"]);
        assert!(run.status.success(), "{dtype}: {}", stderr(&run));
        outs.push(TensorFile::open(&out).unwrap());
    }
    assert_eq!(outs[0].f32("logits").unwrap(), outs[1].f32("logits").unwrap());
    assert_eq!(outs[0].i64("generated_ids").unwrap(), outs[1].i64("generated_ids").unwrap());
    let bad = medvqa(&["debug", "forward", "--weights-dtype", "int4", "--model", s(&dir), "--inputs", s(&inputs), "--out", s(&tmp.path().join("x.safetensors"))]);
    assert_eq!(bad.status.code(), Some(2), "a bad --weights-dtype is a usage error");
}
