//! `medvqa debug preprocess` run as a program: its `pixel_values` against the ones transformers
//! 4.57.6's processors made (`tools/parity/make_vision_fixtures.py`, fixtures in
//! `crates/model/tests/fixtures/parity/preprocess/`) within one 8-bit level, DICOM through the
//! display stage equal to the 8-bit image a reference tool would see, and errors that name the
//! file without panicking.

#[path = "../../ingest/tests/support/mod.rs"]
mod support;
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use medvqa_model::tensor_io::TensorFile;
use common::*;
use support::*;

fn fixtures() -> PathBuf {
    parity_fixtures().join("preprocess")
}

fn preprocess(model: &Path, image: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "debug",
        "preprocess",
        "--model",
        s(model),
        "--image",
        s(image),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    medvqa(&args)
}

fn pixel_values(path: &Path) -> (Vec<usize>, Vec<f32>) {
    TensorFile::open(path)
        .and_then(|f| f.f32("pixel_values"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One 8-bit level per channel in normalised units: `rescale_factor / std[c]`.
fn level(config: &Path) -> Vec<f64> {
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(config).expect("config")).expect("json");
    let factor = cfg["rescale_factor"].as_f64().expect("rescale_factor");
    cfg["image_std"]
        .as_array()
        .expect("image_std")
        .iter()
        .map(|v| factor / v.as_f64().expect("std"))
        .collect()
}

#[test]
fn pixel_values_match_transformers_within_one_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut report = Vec::new();
    for proc in ["clip", "siglip_224like", "siglip_448like"] {
        let model = fixtures().join(proc);
        let level = level(&model.join("preprocessor_config.json"));
        for image in ["rgb_97x61", "gray_45x70"] {
            let out_path = dir.path().join(format!("{proc}_{image}.safetensors"));
            let png = fixtures().join(format!("{image}.png"));
            let out = preprocess(&model, &png, &out_path, &[]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{proc}/{image}: {}",
                stderr(&out)
            );
            let (shape, got) = pixel_values(&out_path);
            let (want_shape, want) = pixel_values(&model.join(format!("{image}.safetensors")));
            assert_eq!(shape, want_shape, "{proc}/{image}");
            let plane = shape[2] * shape[3];
            let mut worst = 0f64;
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let d = (f64::from(g) - f64::from(w)).abs();
                let c = i / plane;
                assert!(
                    d <= level[c] + 1e-5,
                    "{proc}/{image}: element {i} (channel {c}): ours {g}, transformers {w}"
                );
                worst = worst.max(d);
            }
            report.push(format!("{proc}/{image} {shape:?}: max |diff| {worst:.3e}"));
            // The steps applied travel with the tensor.
            let f = TensorFile::open(&out_path).expect("open");
            let meta = f.metadata().expect("metadata");
            assert!(meta["preprocessing"].contains("\"resize"), "{meta:?}");
            assert_eq!(meta["source"], s(&png));
        }
    }
    eprintln!("{}", report.join("\n"));
    // --model may also name the config file itself.
    let cfg = fixtures().join("clip/preprocessor_config.json");
    let out_path = dir.path().join("by_file.safetensors");
    let out = preprocess(&cfg, &fixtures().join("rgb_97x61.png"), &out_path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        pixel_values(&out_path),
        pixel_values(&dir.path().join("clip_rgb_97x61.safetensors"))
    );
}

#[test]
fn an_existing_output_is_kept_unless_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("pv.safetensors");
    fs::write(&out_path, b"keep me").expect("write");
    let model = fixtures().join("siglip_448like");
    let png = fixtures().join("gray_45x70.png");
    let out = preprocess(&model, &png, &out_path, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--overwrite") && stderr(&out).contains("pv.safetensors"));
    assert_eq!(fs::read(&out_path).expect("read"), b"keep me");
    let out = preprocess(&model, &png, &out_path, &["--overwrite"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(pixel_values(&out_path).0, [1, 3, 21, 21]);
    let left: Vec<_> = fs::read_dir(dir.path()).expect("read_dir").collect();
    assert_eq!(left.len(), 1, "no temporary file left behind");
}

#[test]
fn missing_config_and_unreadable_images_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("pv.safetensors");
    let png = fixtures().join("rgb_97x61.png");
    let no_processor = dir.path().join("model_without_processor");
    fs::create_dir(&no_processor).expect("mkdir");
    fs::write(no_processor.join("config.json"), "{}").expect("write");

    let junk = dir.path().join("junk.png");
    fs::write(&junk, b"this is not an image").expect("write");
    let cut = dir.path().join("cut.png");
    let bytes = fs::read(&png).expect("read");
    fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let bad_config = dir.path().join("bad_model");
    fs::create_dir(&bad_config).expect("mkdir");
    fs::write(
        bad_config.join("preprocessor_config.json"),
        r#"{"image_processor_type": "LlavaNextImageProcessor"}"#,
    )
    .expect("write");

    let model = fixtures().join("clip");
    let cases: [(&Path, &Path, &str, i32); 5] = [
        (
            &no_processor,
            &png,
            "model_without_processor/preprocessor_config.json",
            1,
        ),
        (&bad_config, &png, "bad_model/preprocessor_config.json", 1),
        (&model, &junk, "junk.png", 1),
        (&model, &cut, "cut.png", 1),
        (&model, &dir.path().join("absent.png"), "absent.png", 2),
    ];
    for (model, image, named, code) in cases {
        let out = preprocess(model, image, &out_path, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{named}: {err}");
        assert!(err.contains(named), "{named} not named: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out_path.exists(), "{named}: nothing written");
    }
}

/// A 16-bit MR image, 30 rows × 40 columns, with a VOI window in the file.
fn mr_image(path: &Path) {
    let words: Vec<u16> = (0..30 * 40)
        .map(|i| {
            let (y, x) = (i / 40, i % 40);
            let disc = (y as i32 - 15).pow(2) + (x as i32 - 22).pow(2) < 64;
            (x * 60 + y * 25 + if disc { 1500 } else { 0 }) as u16
        })
        .collect();
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "MR", 30, 40, 16, 12, false)
            .ds(tags::WINDOW_CENTER, &[1400.0])
            .ds(tags::WINDOW_WIDTH, &[2600.0])
            .text(tags::BODY_PART_EXAMINED, VR::CS, "BRAIN"),
        &words,
    )
    .write(path, EXPLICIT_LE);
}

/// `[rows, cols]` f32 of a .npy that `medvqa ingest` wrote (format 1.0, `<f4`, C order).
fn npy_2d(path: &Path) -> (usize, usize, Vec<f32>) {
    let bytes = fs::read(path).expect("npy");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).expect("header");
    assert!(
        header.contains("'<f4'") && header.contains("False"),
        "{header}"
    );
    let dims: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .expect("shape")
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let values = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (dims[0], dims[1], values)
}

/// The documented DICOM path: display stage to [0, 1], then the processor as transformers runs
/// it on a float image with `do_rescale=False`. An 8-bit reference tool fed the display image
/// quantised as `uint8(trunc(255 · x))` must get the same tensor, with and without padding.
#[test]
fn dicom_equals_its_display_image_saved_as_8_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dcm = dir.path().join("mr.dcm");
    mr_image(&dcm);
    let display = dir.path().join("display");
    let out = medvqa(&[
        "ingest",
        s(&dcm),
        "--stage",
        "display",
        "--out",
        s(&display),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (rows, cols, unit) = npy_2d(&display.join("mr.npy"));
    assert_eq!((rows, cols), (30, 40));
    let levels: Vec<u8> = unit.iter().map(|&x| (x * 255.0) as u8).collect();
    assert!(levels.iter().any(|&v| v == 0) && levels.iter().any(|&v| v == 255));
    let png = dir.path().join("mr_display.png");
    image::GrayImage::from_raw(cols as u32, rows as u32, levels)
        .expect("buffer")
        .save(&png)
        .expect("png");

    for model in ["siglip_224like", "clip"] {
        let model = fixtures().join(model);
        for extra in [&[][..], &["--pad-to-square"][..]] {
            let a = dir.path().join("from_dicom.safetensors");
            let b = dir.path().join("from_png.safetensors");
            for (input, path) in [(&dcm, &a), (&png, &b)] {
                let mut args = vec!["--overwrite"];
                args.extend_from_slice(extra);
                let out = preprocess(&model, input, path, &args);
                assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            }
            let (shape, from_dicom) = pixel_values(&a);
            assert_eq!(shape, [1, 3, 32, 32]);
            assert_eq!(
                (shape.clone(), from_dicom.clone()),
                pixel_values(&b),
                "{} {extra:?}",
                model.display()
            );
            // Padding changes the result (30 × 40 is not square): the flag is not ignored.
            if extra.is_empty() {
                fs::copy(&a, dir.path().join("unpadded.safetensors")).expect("copy");
            } else {
                assert_ne!(
                    pixel_values(&dir.path().join("unpadded.safetensors")).1,
                    from_dicom
                );
            }
        }
    }
}
