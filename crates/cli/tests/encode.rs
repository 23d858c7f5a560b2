//! `medvqa encode` run as a program on the tiny SigLIP checkpoint of the parity fixtures
//! (`crates/model/tests/fixtures/parity/siglip_vision`, 32 px, patch 8, hidden 32): PNGs and a
//! synthetic CT series give one row per image / slice in input order, the manifest describes
//! every row, a broken file is listed and the rest encoded, rows equal the library run on the
//! pixels of `medvqa debug preprocess`, and the batch size does not change the numbers.

#[path = "../../ingest/tests/support/mod.rs"]
mod support;
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::prelude::*;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use medvqa_model::device::{select_device, DeviceChoice};
use medvqa_model::tensor_io::TensorFile;
use medvqa_model::vision::VisionTransformer;
use common::*;
use support::*;


/// What the inputs of one scene are.
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    png_a: PathBuf,
    png_b: PathBuf,
    series: PathBuf,
    /// SOP Instance UIDs and files in slice order (along the normal, z ascending).
    slices: Vec<(String, PathBuf)>,
    series_uid: String,
}

/// Two PNGs (8-bit gray and RGB) and a 3-slice axial CT series written out of z order.
fn scene() -> Scene {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let model = tiny_siglip_model(&root);
    let png_a = root.join("a_gray.png");
    fs::copy(parity_fixtures().join("preprocess/gray_45x70.png"), &png_a).expect("copy png");
    let png_b = root.join("b_rgb.png");
    let rgb = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8])
    });
    rgb.save(&png_b).expect("save png");

    let series = root.join("ct");
    fs::create_dir(&series).expect("mkdir");
    let series_uid = uid();
    let zs = [10.0, -5.0, 2.5]; // file order; slice order is -5, 2.5, 10
    let mut slices = Vec::new();
    for (q, z) in zs.iter().enumerate() {
        let sop = uid();
        let stored: Vec<u16> = (0..12 * 16)
            .map(|i| {
                let (y, x) = (i / 16, i % 16);
                (900 + 40 * x + 25 * y + 150 * q) as u16
            })
            .collect();
        let path = series.join(format!("slice{q}.dcm"));
        pixels16(
            image(CT_IMAGE_STORAGE, "CT", 12, 16, 16, 12, false)
                .text(tags::SOP_INSTANCE_UID, VR::UI, &sop)
                .text(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid)
                .text(tags::BODY_PART_EXAMINED, VR::CS, "CHEST")
                .text(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL")
                .ds(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                )
                .ds(tags::IMAGE_POSITION_PATIENT, &[0.0, 0.0, *z])
                .ds(tags::PIXEL_SPACING, &[0.8, 0.8])
                .is(tags::INSTANCE_NUMBER, &[q as i64 + 1])
                .ds(tags::RESCALE_SLOPE, &[1.0])
                .ds(tags::RESCALE_INTERCEPT, &[-1024.0]),
            &stored,
        )
        .write(&path, EXPLICIT_LE);
        slices.push((*z, sop, path));
    }
    slices.sort_by(|a, b| a.0.total_cmp(&b.0));
    Scene {
        _tmp: tmp,
        root,
        model,
        png_a,
        png_b,
        series,
        slices: slices.into_iter().map(|(_, u, p)| (u, p)).collect(),
        series_uid,
    }
}

fn encode(model: &Path, inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "encode",
        "--model",
        s(model),
        "--out",
        s(out),
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(|p| s(p)));
    medvqa(&args)
}

fn tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    TensorFile::open(path)
        .and_then(|f| f.f32(name))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn images_and_a_series_become_rows_in_input_order_with_their_manifest() {
    let sc = scene();
    let out = sc.root.join("emb.safetensors");
    let run = encode(
        &sc.model,
        &[&sc.png_a, &sc.series, &sc.png_b],
        &out,
        &["--patch-tokens", "--batch", "2"],
    );
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(err.contains("images/s"), "progress / rate on stderr: {err}");

    let (shape, emb) = tensor(&out, "embeddings");
    assert_eq!(shape, [5, 32]);
    assert!(emb.iter().all(|v| v.is_finite()));
    // SigLIP 32 px, patch 8: 4 × 4 patch tokens of width 32.
    assert_eq!(tensor(&out, "patch_tokens").0, [5, 16, 32]);

    let file = TensorFile::open(&out).expect("open");
    let meta = file.metadata().expect("metadata");
    let sha = medvqa_model::checkpoint::Checkpoint::open(&sc.model)
        .expect("checkpoint")
        .weights_sha256();
    assert_eq!(meta.get("weights_sha256"), Some(&sha));
    assert_eq!(
        meta.get("pooling").map(String::as_str),
        Some("pooler_output")
    );
    assert_eq!(meta.get("model").map(String::as_str), Some(s(&sc.model)));

    let rows = jsonl(&sc.root.join("emb.jsonl"));
    assert_eq!(rows.len(), 5, "one manifest line per embedding row");
    assert_eq!(
        fs::read_to_string(sc.root.join("emb.errors.jsonl")).expect("errors file"),
        ""
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["row"], i);
        assert_eq!(r["model"]["path"], s(&sc.model));
        assert_eq!(r["model"]["model_type"], "siglip_vision_model");
        assert_eq!(r["pooling"], "pooler_output");
        assert_eq!(r["weights_sha256"], sha.as_str());
        let steps = r["preprocessing"]["steps"]
            .as_array()
            .expect("preprocessing steps");
        assert!(
            steps
                .iter()
                .any(|s| s["step"] == "resize" && s["height"] == 32),
            "{r}"
        );
        assert!(r["frame"].is_null());
    }
    assert_eq!(rows[0]["source"], serde_json::json!([s(&sc.png_a)]));
    assert!(rows[0]["slice"].is_null() && rows[0]["sop_instance_uid"].is_null());
    assert_eq!(rows[4]["source"], serde_json::json!([s(&sc.png_b)]));
    for (k, (sop, path)) in sc.slices.iter().enumerate() {
        let r = &rows[1 + k];
        assert_eq!(r["slice"], k, "{r}");
        assert_eq!(r["source"], serde_json::json!([s(path)]), "{r}");
        assert_eq!(r["sop_instance_uid"], sop.as_str(), "{r}");
        assert_eq!(r["series_instance_uid"], sc.series_uid.as_str());
        assert_eq!(r["modality"], "CT");
        assert_eq!(r["body_part"], "CHEST");
        // CT in HU without --window: MedGemma 1.5's three-window RGB.
        assert_eq!(
            r["preprocessing"]["steps"][0]["step"], "multi_window_rgb",
            "{r}"
        );
    }
    python_reads(&out, 5);
}

/// The library run directly (`VisionTransformer::load` + `embed`) on the pixels of
/// `medvqa debug preprocess` gives the row `encode` wrote, for a PNG and for one CT slice
/// (a slice of a series goes through the same model stage as the file alone).
#[test]
fn rows_equal_the_library_on_the_preprocessed_pixels() {
    let sc = scene();
    let out = sc.root.join("emb.safetensors");
    let run = encode(&sc.model, &[&sc.png_a, &sc.series], &out, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let (_, emb) = tensor(&out, "embeddings");

    let selected = select_device(DeviceChoice::Cpu).expect("cpu device");
    let loaded = VisionTransformer::load(&sc.model, &selected.device).expect("load");
    for (row, image) in [(0, sc.png_a.clone()), (2, sc.slices[1].1.clone())] {
        let pv = sc.root.join(format!("pv{row}.safetensors"));
        let pre = medvqa(&[
            "debug",
            "preprocess",
            "--model",
            s(&sc.model),
            "--image",
            s(&image),
            "--out",
            s(&pv),
        ]);
        assert_eq!(pre.status.code(), Some(0), "{}", stderr(&pre));
        let (shape, pixels) = tensor(&pv, "pixel_values");
        assert_eq!(shape, [1, 3, 32, 32]);
        let input =
            Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, 32, 32]), &selected.device);
        let (pooled, _) = loaded.model.embed(input).expect("embed");
        let want: Vec<f32> = pooled.into_data().try_into_vec().expect("f32");
        let got = &emb[row * 32..(row + 1) * 32];
        let diff = max_abs_diff(got, &want);
        eprintln!(
            "row {row} ({}): max abs diff vs library {diff:.2e}",
            image.display()
        );
        assert!(diff <= 1e-5, "row {row}: {diff}");
    }
}

#[test]
fn batch_size_does_not_change_the_embeddings() {
    let sc = scene();
    let mut got = Vec::new();
    for batch in ["1", "3"] {
        let out = sc.root.join(format!("b{batch}.safetensors"));
        let run = encode(
            &sc.model,
            &[&sc.png_a, &sc.series, &sc.png_b],
            &out,
            &["--batch", batch, "--patch-tokens"],
        );
        assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
        got.push((tensor(&out, "embeddings"), tensor(&out, "patch_tokens")));
    }
    let ((s1, e1), (_, t1)) = &got[0];
    let ((s3, e3), (_, t3)) = &got[1];
    assert_eq!(s1, s3);
    let (de, dt) = (max_abs_diff(e1, e3), max_abs_diff(t1, t3));
    eprintln!("batch 1 vs 3: embeddings max abs diff {de:.2e}, patch tokens {dt:.2e}");
    assert!(de <= 1e-5 && dt <= 1e-5, "{de} {dt}");
}

#[test]
fn a_broken_file_is_listed_and_the_others_encoded() {
    let sc = scene();
    let broken = sc.root.join("broken.png");
    let bytes = fs::read(&sc.png_a).expect("read");
    fs::write(&broken, &bytes[..bytes.len() / 2]).expect("write");
    let out = sc.root.join("emb.safetensors");
    let run = encode(&sc.model, &[&sc.png_a, &broken, &sc.png_b], &out, &[]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(tensor(&out, "embeddings").0, [2, 32]);
    let rows = jsonl(&sc.root.join("emb.jsonl"));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["source"][0], s(&sc.png_a));
    assert_eq!(rows[1]["source"][0], s(&sc.png_b));
    let errors = jsonl(&sc.root.join("emb.errors.jsonl"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["source"], s(&broken));
    assert!(
        errors[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("broken.png")),
        "{errors:?}"
    );
}

#[test]
fn usage_errors_exit_2_and_never_replace_outputs() {
    let sc = scene();
    let out = sc.root.join("emb.safetensors");
    fs::write(&out, b"keep me").expect("write");
    let run = encode(&sc.model, &[&sc.png_a], &out, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("--overwrite"));
    assert_eq!(fs::read(&out).expect("read"), b"keep me");
    assert!(!sc.root.join("emb.jsonl").exists());

    // A manifest left from another run also blocks.
    let out2 = sc.root.join("other.safetensors");
    fs::write(sc.root.join("other.jsonl"), b"{}\n").expect("write");
    let run = encode(&sc.model, &[&sc.png_a], &out2, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(!out2.exists());

    let fresh = sc.root.join("fresh.safetensors");
    let (nope, absent) = (sc.root.join("nope"), sc.root.join("absent.png"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "encode",
                "--model",
                s(&sc.model),
                "--out",
                s(&fresh),
                "--device",
                "cpu",
            ],
            "INPUT",
        ),
        (
            vec![
                "encode",
                "--model",
                s(&nope),
                "--out",
                s(&fresh),
                "--device",
                "cpu",
                s(&sc.png_a),
            ],
            "nope",
        ),
        (
            vec![
                "encode",
                "--model",
                s(&sc.model),
                "--out",
                s(&fresh),
                "--device",
                "cpu",
                s(&absent),
            ],
            "absent.png",
        ),
        (
            vec![
                "encode",
                "--model",
                s(&sc.model),
                "--out",
                s(&fresh),
                "--device",
                "cpu",
                "--batch",
                "0",
                s(&sc.png_a),
            ],
            "--batch",
        ),
    ];
    for (args, named) in cases {
        let run = medvqa(&args);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(2), "{named}: {err}");
        assert!(err.contains(named), "{named} not named: {err}");
        assert!(!fresh.exists());
    }

    let run = encode(&sc.model, &[&sc.png_a], &out, &["--overwrite"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(tensor(&out, "embeddings").0, [1, 32]);
    let mut left: Vec<String> = fs::read_dir(&sc.root)
        .expect("read_dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("emb") || n.starts_with(".emb"))
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["emb.errors.jsonl", "emb.jsonl", "emb.safetensors"],
        "no temporary file left"
    );
}

/// Reads the output with numpy + safetensors alone, when a Python that has them is available
/// (`MEDVQA_PYTHON`, else `python3`); skips visibly otherwise.
fn python_reads(out: &Path, rows: usize) {
    let python = std::env::var("MEDVQA_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import numpy, safetensors.numpy"])
        .output();
    if !has.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: Python check ({python} has no numpy + safetensors; set MEDVQA_PYTHON)");
        return;
    }
    let script = r#"
import json, sys
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
rows = [json.loads(l) for l in open(sys.argv[2])]
e = t["embeddings"]
assert e.dtype.name == "float32" and e.shape == (len(rows), 32), (e.dtype, e.shape)
assert [r["row"] for r in rows] == list(range(len(rows)))
print(len(rows))
"#;
    let manifest = out.with_extension("jsonl");
    let run = Command::new(&python)
        .args(["-c", script, s(out), s(&manifest)])
        .output()
        .expect("run python");
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        rows.to_string()
    );
}
