//! The `model` stage against the `pixel_values` that transformers 4.57.6's processors made
//! from the vision-encoder parity images (`tools/parity/make_vision_fixtures.py`, fixtures in
//! `crates/model/tests/fixtures/parity/preprocess/`): 3 processor configs × 2 PNGs, each
//! within one 8-bit level, i.e. `rescale_factor / std[c]` in normalised units (+ 1e-5 for f32
//! rounding, as tools/parity/README.md states the tolerance).
//!
//! This runs the same path as `medvqa ingest --stage model --model DIR` and
//! `medvqa debug preprocess`: file → plan → job → model stage.

use std::path::{Path, PathBuf};

use medvqa_ingest::model_input::{ModelOptions, ModelTarget};
use medvqa_ingest::pipeline::{self, ModelStage, Options, Stage};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/parity/preprocess")
}

/// The one tensor of a safetensors file written by `safetensors.torch.save_file` (F32,
/// little-endian): its shape and values. Parsed by hand so this crate needs no safetensors
/// dependency; the format is an 8-byte little-endian header length, a JSON header, the data.
fn read_f32_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors header is JSON");
    let t = &header[name];
    assert_eq!(t["dtype"], "F32", "{}: {name}", path.display());
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|v| v.as_u64().expect("dim") as usize)
        .collect();
    let off: Vec<usize> = t["data_offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|v| v.as_u64().expect("offset") as usize)
        .collect();
    let data = &bytes[8 + n + off[0]..8 + n + off[1]];
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    (shape, values)
}

/// One 8-bit level per channel in normalised units: `rescale_factor / std[c]`.
fn level(config: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(config).expect("preprocessor_config.json");
    let cfg: serde_json::Value = serde_json::from_str(&text).expect("json");
    let factor = cfg["rescale_factor"].as_f64().expect("rescale_factor");
    cfg["image_std"]
        .as_array()
        .expect("image_std")
        .iter()
        .map(|s| factor / s.as_f64().expect("std"))
        .collect()
}

#[test]
fn model_stage_matches_transformers_processors_within_one_level() {
    let mut checked = 0;
    for proc in ["clip", "siglip_224like", "siglip_448like"] {
        let dir = fixtures().join(proc);
        let level = level(&dir.join("preprocessor_config.json"));
        for image in ["rgb_97x61", "gray_45x70"] {
            let png = fixtures().join(format!("{image}.png"));
            let opts = Options {
                stage: Stage::Model,
                model: Some(ModelStage {
                    target: ModelTarget::HfConfig(dir.clone()),
                    options: ModelOptions::default(),
                    slices: None,
                }),
                ..Options::default()
            };
            let plan = pipeline::plan(std::slice::from_ref(&png));
            assert!(plan.failures.is_empty(), "{:?}", plan.failures);
            assert_eq!(plan.jobs.len(), 1);
            let out = pipeline::run_job(&plan.jobs[0], image, &opts);
            assert!(
                out.failures.is_empty(),
                "{proc}/{image}: {:?}",
                out.failures
            );
            assert_eq!(out.items.len(), 1, "{proc}/{image}");
            let got = &out.items[0].array;
            let (shape, want) =
                read_f32_tensor(&dir.join(format!("{image}.safetensors")), "pixel_values");
            // Ours is [3, H, W]; the processor's [1, 3, H, W].
            assert_eq!(&shape[1..], got.shape(), "{proc}/{image}");
            let plane = shape[2] * shape[3];
            let (mut worst, mut worst_levels, mut exact) = (0f64, 0f64, 0usize);
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let d = (g as f64 - w as f64).abs();
                let c = i / plane;
                assert!(
                    d <= level[c] + 1e-5,
                    "{proc}/{image}: element {i} (channel {c}) ours {g} reference {w}: {d} > one level {}",
                    level[c]
                );
                worst = worst.max(d);
                worst_levels = worst_levels.max(d / level[c]);
                exact += usize::from(d <= 1e-5);
            }
            eprintln!(
                "{proc}/{image}: max |ours - transformers| = {worst:.3e} ({worst_levels:.3} levels), {exact}/{} within 1e-5",
                want.len()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}
