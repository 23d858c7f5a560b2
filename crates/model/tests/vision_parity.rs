//! Parity of the SigLIP / CLIP towers with transformers 4.57.6 on the committed fixtures
//! (tools/parity/make_vision_fixtures.py): every output tensor within 1e-4 (max abs) on the CPU
//! backend. The fixtures cover both key layouts, sharded weights, f16/bf16 storage, two-tower
//! configs, a tower without head, and bicubic position-embedding interpolation.

mod common;

use burn::prelude::*;
use common::{assert_close, fixtures_dir, read_tensors};
use medvqa_model::vision::{ForwardOptions, VisionTransformer};
use serde_json::Value;

/// Runs every fixture case on `device` and checks each reference output within `tol`.
fn check_all(device: &Device, tol: f32) {
    let root = fixtures_dir();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    let models = manifest["models"].as_array().unwrap();
    assert!(models.len() >= 10, "manifest lists {} models", models.len());
    let mut checked = 0;
    for m in models {
        let name = m["name"].as_str().unwrap();
        let dir = root.join(name);
        let loaded = VisionTransformer::load(&dir, device).unwrap_or_else(|e| panic!("{name}: {e}"));
        for case in m["cases"].as_array().unwrap() {
            let inputs = read_tensors(&dir.join(case["inputs"].as_str().unwrap()));
            let expected = read_tensors(&dir.join(case["expected"].as_str().unwrap()));
            let (shape, values) = &inputs["pixel_values"];
            let pixels = Tensor::<4>::from_data(TensorData::new(values.clone(), shape.clone()), device);
            let opts = ForwardOptions {
                interpolate_pos_encoding: case["interpolate_pos_encoding"].as_bool().unwrap_or(false),
                output_hidden_states: true,
            };
            let out = loaded.model.forward(pixels, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let what = format!("{name}/{}", case["expected"].as_str().unwrap());
            assert_close(&what, "last_hidden_state", out.last_hidden_state.clone(), &expected["last_hidden_state"], tol);
            match (&out.pooler_output, expected.get("pooler_output")) {
                (Some(p), Some(e)) => assert_close(&what, "pooler_output", p.clone(), e, tol),
                (None, None) => {}
                (got, want) => panic!("{what}: pooler_output present here {} vs reference {}", got.is_some(), want.is_some()),
            }
            if let Some(e) = expected.get("image_embeds") {
                assert_close(&what, "image_embeds", out.image_embeds.clone().expect("image_embeds"), e, tol);
            }
            let hidden = Tensor::stack::<4>(out.hidden_states.unwrap(), 0);
            assert_close(&what, "hidden_states", hidden, &expected["hidden_states"], tol);
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} cases checked");
}

#[test]
fn all_fixtures_match_transformers_on_cpu() {
    check_all(&Device::flex(), 1e-4);
}

#[test]
fn v4_and_v5_layouts_load_to_the_same_prefix_rules() {
    let root = fixtures_dir();
    let v4 = VisionTransformer::load(&root.join("siglip_vision"), &Device::flex()).unwrap();
    assert_eq!(v4.prefix, "vision_model.");
    let v5 = VisionTransformer::load(&root.join("siglip_vision_v5"), &Device::flex()).unwrap();
    assert_eq!(v5.prefix, "");
    let sharded = VisionTransformer::load(&root.join("siglip_vision_sharded"), &Device::flex()).unwrap();
    assert_eq!(sharded.checkpoint.files().len(), 2);
}

#[test]
fn a_grid_mismatch_without_interpolation_is_an_error() {
    let dir = fixtures_dir().join("siglip_vision");
    let loaded = VisionTransformer::load(&dir, &Device::flex()).unwrap();
    let pixels = Tensor::<4>::zeros([1, 3, 24, 40], &Device::flex());
    let err = loaded.model.forward(pixels, ForwardOptions::default()).unwrap_err().to_string();
    assert!(err.contains("interpolate"), "{err}");
}

/// The same cases on a WGPU adapter (lavapipe in CI: `tools/test.sh` installs it and sets
/// MEDVQA_REQUIRE_WGPU=1, so a missing adapter fails there and skips visibly elsewhere).
#[test]
fn all_fixtures_match_transformers_on_wgpu() {
    let Some(selected) = medvqa_model::device::wgpu_for_tests() else {
        return;
    };
    eprintln!("wgpu device: {}", selected.label);
    check_all(&selected.device, 1e-3);
}
