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
