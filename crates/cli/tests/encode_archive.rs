//! `medvqa encode-archive` and `medvqa merge-manifests` run as programs on an archive the test
//! writes: 16 CT/MR series (192 slice files, some stored out of order), 40 radiographs
//! (MONOCHROME1 among them), 6 multi-frame objects, 30 PNGs, 4 broken files, a structured report
//! without pixels, 2 duplicate copies and stray text files — 280 files in nested folders, with
//! synthetic patient identifiers that must never reach an output.
//!
//! Proven here: every unit exactly once (image, frame and series units), errors listed and the
//! run finished, no identifiers leaked (and UIDs hashed on request), resume after a crash at the
//! worst moment and after `kill -9` equal to an uninterrupted run, `--shard I/N` partitions that
//! merge back into the whole, embeddings equal to `medvqa encode` of the same files, and the
//! Parquet manifest read by pyarrow, pandas, polars and DuckDB (when `MEDVQA_PYTHON` names a
//! Python with them, as `tools/test.sh` sets up; otherwise a visible SKIP).

#[path = "../../ingest/tests/support/mod.rs"]
mod support;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use medvqa_model::tensor_io::TensorFile;
use serde_json::Value;
use support::*;

const CR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
const MR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const MF_WORD_SC: &str = "1.2.840.10008.5.1.4.1.1.7.3";
const BASIC_TEXT_SR: &str = "1.2.840.10008.5.1.4.1.1.88.11";

/// Identifiers written into every DICOM file; none may appear in any output.
const PHI: [&str; 4] = ["Doe^Jane", "PID-7731-SECRET", "19520314", "ACC-99812-X"];

const SERIES: usize = 16;
const SLICES: usize = 12;
const RADIOGRAPHS: usize = 40;
const MULTIFRAME: usize = 6;
const FRAMES: usize = 5;
const PNGS: usize = 30;
const BROKEN: usize = 4;


fn phi(obj: Obj, k: usize) -> Obj {
    obj.text(tags::PATIENT_NAME, VR::PN, &format!("{}{k}", PHI[0]))
        .text(tags::PATIENT_ID, VR::LO, PHI[1])
        .text(tags::PATIENT_BIRTH_DATE, VR::DA, PHI[2])
        .text(tags::ACCESSION_NUMBER, VR::SH, PHI[3])
}

/// What the archive holds.
struct Archive {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    model: PathBuf,
    /// Every UID written (study, series, SOP).
    uids: Vec<String>,
    broken: Vec<String>,
}

fn archive() -> Archive {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let root = dir.join("archive");
    let model = tiny_siglip_model(&dir);
    let mut uids = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // SplitMix64: a fixed pseudo-random sequence, so the archive is the same every run.
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for s in 0..SERIES {
        let mr = s % 4 == 3;
        let series_dir = root.join(format!("patient{:02}/study/series{s:02}", s / 2));
        fs::create_dir_all(&series_dir).expect("mkdir");
        let (study, series) = (uid(), uid());
        uids.extend([study.clone(), series.clone()]);
        // Stored out of slice order: file k holds the slice at a shuffled position.
        let mut order: Vec<usize> = (0..SLICES).collect();
        for i in (1..SLICES).rev() {
            order.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        for (k, &pos) in order.iter().enumerate() {
            let sop = uid();
            uids.push(sop.clone());
            let words: Vec<u16> = (0..16 * 16).map(|i| (800 + (i * 7 + pos * 31 + s * 13) % 900) as u16).collect();
            let obj = image(if mr { MR_STORAGE } else { CT_IMAGE_STORAGE }, if mr { "MR" } else { "CT" }, 16, 16, 16, 12, false)
                .text(tags::SOP_INSTANCE_UID, VR::UI, &sop)
                .text(tags::STUDY_INSTANCE_UID, VR::UI, &study)
                .text(tags::SERIES_INSTANCE_UID, VR::UI, &series)
                .text(tags::BODY_PART_EXAMINED, VR::CS, if s % 2 == 0 { "CHEST" } else { "ABDOMEN" })
                .text(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL")
                .ds(tags::IMAGE_ORIENTATION_PATIENT, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
                .ds(tags::IMAGE_POSITION_PATIENT, &[0.0, 0.0, pos as f64 * 2.5])
                .ds(tags::PIXEL_SPACING, &[0.8, 0.8])
                .is(tags::INSTANCE_NUMBER, &[pos as i64 + 1]);
            let obj = if mr { obj } else { obj.ds(tags::RESCALE_SLOPE, &[1.0]).ds(tags::RESCALE_INTERCEPT, &[-1024.0]) };
            pixels16(phi(obj, s), &words).write(&series_dir.join(format!("IM{k:04}.dcm")), EXPLICIT_LE);
        }
    }
    let xr = root.join("radiographs");
    fs::create_dir_all(&xr).expect("mkdir");
    for r in 0..RADIOGRAPHS {
        let (study, series, sop) = (uid(), uid(), uid());
        uids.extend([study.clone(), series.clone(), sop.clone()]);
        let words: Vec<u16> = (0..24 * 20).map(|i| ((i * 5 + r * 37) % 4096) as u16).collect();
        let obj = image(CR_STORAGE, if r % 2 == 0 { "CR" } else { "DX" }, 24, 20, 16, 12, false)
            .text(tags::SOP_INSTANCE_UID, VR::UI, &sop)
            .text(tags::STUDY_INSTANCE_UID, VR::UI, &study)
            .text(tags::SERIES_INSTANCE_UID, VR::UI, &series)
            .text(tags::BODY_PART_EXAMINED, VR::CS, "CHEST")
            .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, if r % 3 == 0 { "MONOCHROME1" } else { "MONOCHROME2" })
            .ds(tags::PIXEL_SPACING, &[0.2, 0.2]);
        pixels16(phi(obj, r), &words).write(&xr.join(format!("xr{r:03}.dcm")), if r % 2 == 0 { EXPLICIT_LE } else { IMPLICIT_LE });
    }
    let mf = root.join("multiframe");
    fs::create_dir_all(&mf).expect("mkdir");
    for m in 0..MULTIFRAME {
        let (study, series, sop) = (uid(), uid(), uid());
        uids.extend([study.clone(), series.clone(), sop.clone()]);
        let words: Vec<u16> = (0..FRAMES * 12 * 10).map(|i| ((i * 11 + m * 101) % 1000) as u16).collect();
        let obj = image(MF_WORD_SC, "OT", 12, 10, 16, 10, false)
            .text(tags::SOP_INSTANCE_UID, VR::UI, &sop)
            .text(tags::STUDY_INSTANCE_UID, VR::UI, &study)
            .text(tags::SERIES_INSTANCE_UID, VR::UI, &series)
            .is(tags::NUMBER_OF_FRAMES, &[FRAMES as i64]);
        pixels16(phi(obj, m), &words).write(&mf.join(format!("cine{m}.dcm")), EXPLICIT_LE);
    }
    let png = root.join("photos/png");
    fs::create_dir_all(&png).expect("mkdir");
    for p in 0..PNGS {
        let img = image::RgbImage::from_fn(20 + p as u32, 18, |x, y| image::Rgb([(x * 9) as u8, (y * 13 + p as u32) as u8, ((x + y) * 5) as u8]));
        img.save(png.join(format!("photo{p:02}.png"))).expect("png");
    }
    // Broken: truncated pixel data, a DICM preamble followed by junk, a PNG cut short, pixel
    // data shorter than Rows × Columns.
    let bad = root.join("broken");
    fs::create_dir_all(&bad).expect("mkdir");
    let sop = uid();
    uids.push(sop.clone());
    let words: Vec<u16> = (0..24 * 20).map(|i| (i % 4096) as u16).collect();
    let whole = bad.join("whole.tmp");
    pixels16(phi(image(CR_STORAGE, "CR", 24, 20, 16, 12, false).text(tags::SOP_INSTANCE_UID, VR::UI, &sop), 0), &words).write(&whole, EXPLICIT_LE);
    let bytes = fs::read(&whole).expect("read");
    fs::remove_file(&whole).expect("rm");
    fs::write(bad.join("truncated.dcm"), &bytes[..bytes.len() - 300]).expect("write");
    let mut junk = vec![0u8; 128];
    junk.extend_from_slice(b"DICM");
    junk.extend((0..500).map(|i| (i * 37 % 251) as u8));
    fs::write(bad.join("junk.dcm"), junk).expect("write");
    let png_bytes = fs::read(png.join("photo00.png")).expect("read");
    fs::write(bad.join("cut.png"), &png_bytes[..png_bytes.len() / 2]).expect("write");
    let sop = uid();
    uids.push(sop.clone());
    pixels16(
        phi(image(CR_STORAGE, "CR", 30, 30, 16, 12, false).text(tags::SOP_INSTANCE_UID, VR::UI, &sop), 0),
        &[1u16; 10],
    )
    .write(&bad.join("short_pixels.dcm"), EXPLICIT_LE);
    let broken = ["broken/cut.png", "broken/junk.dcm", "broken/short_pixels.dcm", "broken/truncated.dcm"].map(String::from).to_vec();
    // Not images: a structured report, text; and two copies of a radiograph.
    phi(
        Obj::new()
            .text(tags::SOP_CLASS_UID, VR::UI, BASIC_TEXT_SR)
            .text(tags::SOP_INSTANCE_UID, VR::UI, &uid())
            .text(tags::MODALITY, VR::CS, "SR"),
        0,
    )
    .write(&root.join("report.dcm"), EXPLICIT_LE);
    fs::write(root.join("README.txt"), "export notes").expect("write");
    fs::create_dir_all(root.join("copies")).expect("mkdir");
    fs::copy(xr.join("xr005.dcm"), root.join("copies/xr005_copy.dcm")).expect("copy");
    fs::copy(xr.join("xr006.dcm"), root.join("copies/xr006_copy.dcm")).expect("copy");
    Archive { _tmp: tmp, dir, root, model, uids, broken }
}

fn encode_archive(a: &Archive, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["encode-archive", s(&a.root), "--model", s(&a.model), "--out", s(out), "--device", "cpu"];
    args.extend_from_slice(extra);
    medvqa(&args)
}

/// Every manifest row of an output folder (all tasks), from the shard JSONL files.
fn manifest_rows(out: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = fs::read_dir(out)
        .expect("read out")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("embeddings") && n.ends_with(".jsonl")
        })
        .collect();
    names.sort();
    names.iter().flat_map(|p| jsonl(p)).collect()
}

/// unit_id → embedding, read through the rows' shard / row references.
fn embeddings(out: &Path) -> BTreeMap<String, Vec<f32>> {
    let mut files: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut map = BTreeMap::new();
    for r in manifest_rows(out) {
        if r["status"] != "ok" {
            continue;
        }
        let shard = r["shard"].as_str().expect("shard").to_string();
        let (shape, data) = files.entry(shard.clone()).or_insert_with(|| {
            TensorFile::open(&out.join(&shard)).and_then(|f| f.f32("embeddings")).unwrap_or_else(|e| panic!("{e}"))
        });
        let d = shape[1];
        let i = r["row"].as_u64().expect("row") as usize;
        assert!(i < shape[0], "row {i} outside {shard} {shape:?}");
        let prev = map.insert(r["unit_id"].as_str().unwrap().to_string(), data[i * d..(i + 1) * d].to_vec());
        assert!(prev.is_none(), "unit twice: {}", r["unit_id"]);
    }
    map
}

fn same_embeddings(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>, what: &str) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: unit sets differ");
    for (k, v) in a {
        // The same pixels through the same weights; only the batch neighbours may differ.
        let d = max_abs_diff(v, &b[k]);
        assert!(d < 1e-5, "{what}: {k} differs by {d}");
    }
}

/// All bytes written under `out`, for leak checks.
fn all_output_text(out: &Path) -> String {
    let mut text = String::new();
    for e in fs::read_dir(out).expect("read out") {
        let p = e.expect("entry").path();
        text.push_str(&String::from_utf8_lossy(&fs::read(&p).expect("read")));
    }
    text
}

/// Checks the outputs with the Python readers users have (tools/archive/check_outputs.py) and
/// returns its summary, or None with a visible SKIP when no such Python is configured.
fn python_readers(out: &Path, parquet: &Path) -> Option<Value> {
    let Some(py) = std::env::var_os("MEDVQA_PYTHON") else {
        eprintln!("SKIP: MEDVQA_PYTHON not set (tools/test.sh sets it up): Parquet not read with pyarrow/pandas/polars/duckdb");
        return None;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/archive/check_outputs.py");
    let run = Command::new(py).arg(script).arg(out).arg(parquet).output().expect("run python");
    assert!(run.status.success(), "check_outputs.py: {}", String::from_utf8_lossy(&run.stderr));
    Some(serde_json::from_slice(&run.stdout).expect("summary json"))
}

#[test]
fn every_image_once_errors_listed_nothing_identifying_written() {
    let a = archive();
    let out = a.dir.join("out");
    let run = encode_archive(&a, &out, &["--batch", "8", "--shard-size", "50"]);
    let err = stderr(&run);
    assert_eq!(code(&run), 1, "some units failed → exit 1: {err}");
    assert!(err.contains("units/s"), "progress and rate on stderr: {err}");

    let rows = manifest_rows(&out);
    let images = SERIES * SLICES + RADIOGRAPHS + MULTIFRAME + PNGS;
    assert_eq!(rows.len(), images + BROKEN, "one row per image, failures included");
    let ids: BTreeSet<&str> = rows.iter().map(|r| r["unit_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "unit ids are unique");
    let failed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "error").collect();
    let mut failed_sources: Vec<&str> = failed.iter().map(|r| r["source"][0].as_str().unwrap()).collect();
    failed_sources.sort();
    assert_eq!(failed_sources, a.broken.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &failed {
        let e = r["error"].as_str().expect("error text");
        assert!(!e.is_empty() && r["row"].is_null() && r["shard"].is_null(), "{r}");
    }
    let errors = jsonl(&out.join("errors.jsonl"));
    assert_eq!(errors.len(), BROKEN, "errors.jsonl lists the broken files");

    // Every file is accounted for: in a row, skipped with a reason, or not an image at all.
    let skipped = jsonl(&out.join("skipped.jsonl"));
    let reasons: Vec<String> = skipped.iter().map(|s| format!("{} {}", s["source"], s["reason"])).collect();
    assert_eq!(skipped.len(), 3, "the SR and two duplicate copies: {reasons:?}");
    assert!(reasons.iter().filter(|r| r.contains("duplicate of")).count() == 2, "{reasons:?}");
    let mut seen: BTreeSet<String> = rows.iter().flat_map(|r| r["source"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string())).collect();
    seen.extend(skipped.iter().map(|s| s["source"].as_str().unwrap().to_string()));
    let on_disk: BTreeSet<String> = walk(&a.root).into_iter().filter(|p| !p.ends_with(".txt")).collect();
    assert_eq!(seen, on_disk);

    // Rows describe their image: slices of a series share it and keep their own SOP UID.
    let ct: Vec<&Value> = rows.iter().filter(|r| r["modality"] == "CT").collect();
    assert_eq!(ct.len(), 12 * SLICES);
    for r in &ct {
        assert!(r["unit_id"].as_str().unwrap().starts_with("sop:"));
        assert_eq!(r["sop_instance_uid"].as_str().unwrap(), &r["unit_id"].as_str().unwrap()[4..]);
        assert_eq!((r["rows"].as_i64(), r["cols"].as_i64()), (Some(16), Some(16)));
        assert_eq!(r["spacing_row_mm"].as_f64(), Some(0.8));
        assert!(r["study_instance_uid"].is_string() && r["series_instance_uid"].is_string());
        assert!(r["preprocessing"].as_str().unwrap().contains("multi_window_rgb"), "CT without a window: MedGemma's three windows");
    }
    let mf: Vec<&Value> = rows.iter().filter(|r| r["source"][0].as_str().unwrap().starts_with("multiframe/")).collect();
    assert!(mf.iter().all(|r| r["depth"] == FRAMES && r["pooled_indices"].as_array().is_some_and(|v| v.len() == FRAMES)), "{mf:?}");

    // Shards: whole, numbered, each with its manifest; embeddings finite.
    let emb = embeddings(&out);
    assert_eq!(emb.len(), images);
    assert!(emb.values().all(|v| v.len() == 32 && v.iter().all(|x| x.is_finite())));
    let run_json: Value = serde_json::from_str(&fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["complete"], true);
    assert_eq!(run_json["rows"], rows.len());

    // No patient identifier anywhere in the outputs.
    let text = all_output_text(&out);
    for p in PHI {
        assert!(!text.contains(p), "{p} leaked into the outputs");
    }

    // The Parquet manifest: same rows (parquet2's reader here; the Python readers below).
    let parquet = out.join("manifest.parquet");
    let meta = parquet2::read::read_metadata(&mut fs::File::open(&parquet).unwrap()).expect("parquet metadata");
    assert_eq!(meta.num_rows, rows.len());
    if let Some(py) = python_readers(&out, &parquet) {
        assert_eq!(py["rows"], rows.len());
        assert_eq!(py["ok"], images);
        let mut py_ids: Vec<String> = serde_json::from_value(py["unit_ids"].clone()).unwrap();
        py_ids.sort();
        assert_eq!(py_ids, ids.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn frames_and_series_are_units_too() {
    let a = archive();
    let out = a.dir.join("frames");
    let run = encode_archive(&a, &out, &["--unit", "frame", "--f16"]);
    assert_eq!(code(&run), 1, "{}", stderr(&run));
    let rows = manifest_rows(&out);
    assert_eq!(rows.len(), SERIES * SLICES + RADIOGRAPHS + MULTIFRAME * FRAMES + PNGS + BROKEN);
    let frames: Vec<i64> = rows.iter().filter(|r| r["source"][0].as_str().unwrap() == "multiframe/cine0.dcm").map(|r| r["frame"].as_i64().unwrap()).collect();
    assert_eq!(frames, (0..FRAMES as i64).collect::<Vec<_>>());
    let shard = TensorFile::open(&out.join("embeddings-00000.safetensors")).unwrap();
    assert_eq!(shard.dtype("embeddings").unwrap(), "F16");

    let out = a.dir.join("series");
    let run = encode_archive(&a, &out, &["--unit", "series", "--series-slices", "4", "--keep-slices"]);
    assert_eq!(code(&run), 1, "{}", stderr(&run));
    let rows = manifest_rows(&out);
    // Each radiograph, multi-frame object and PNG is a series of its own.
    assert_eq!(rows.len(), SERIES + RADIOGRAPHS + MULTIFRAME + PNGS + BROKEN);
    let series: Vec<&Value> = rows.iter().filter(|r| r["unit_id"].as_str().unwrap().starts_with("series:")).collect();
    assert_eq!(series.len(), SERIES);
    for r in &series {
        assert_eq!(r["source"].as_array().unwrap().len(), SLICES);
        assert_eq!(r["depth"], SLICES);
        // MedGemma 1.5's indices: round(i / 4 * 11) for i = 1..4.
        assert_eq!(r["pooled_indices"], serde_json::json!([3, 6, 8, 11]));
        assert_eq!(r["spacing_slice_mm"].as_f64(), Some(2.5));
    }
    // The pooled vector is the mean of the kept slice vectors.
    let file = TensorFile::open(&out.join("embeddings-00000.safetensors")).unwrap();
    let (_, emb) = file.f32("embeddings").unwrap();
    let (_, slices) = file.f32("slice_embeddings").unwrap();
    let (_, offsets) = file.i64("slice_offsets").unwrap();
    for r in &series {
        let i = r["row"].as_u64().unwrap() as usize;
        let (s0, s1) = (offsets[i] as usize, offsets[i + 1] as usize);
        assert_eq!(s1 - s0, 4);
        let mean: Vec<f32> = (0..32).map(|c| (s0..s1).map(|k| slices[k * 32 + c]).sum::<f32>() / 4.0).collect();
        assert!(max_abs_diff(&mean, &emb[i * 32..(i + 1) * 32]) < 1e-6);
    }
}

#[test]
fn resume_after_a_crash_or_kill_equals_an_uninterrupted_run() {
    let a = archive();
    let flags = ["--batch", "4", "--shard-size", "20", "--jobs", "1"];
    let whole = a.dir.join("whole");
    assert_eq!(code(&encode_archive(&a, &whole, &flags)), 1);
    let reference = embeddings(&whole);
    let reference_rows = manifest_rows(&whole).len();

    // Crash at the worst moment: shard 2's manifest written, its tensors not.
    let crashed = a.dir.join("crashed");
    let mut args = vec!["encode-archive", s(&a.root), "--model", s(&a.model), "--out", s(&crashed), "--device", "cpu"];
    args.extend_from_slice(&flags);
    let run = Command::new(env!("CARGO_BIN_EXE_medvqa"))
        .args(&args)
        .env("MEDVQA_ARCHIVE_ABORT_AFTER_MANIFEST", "2")
        .output()
        .expect("run");
    assert!(run.status.code().is_none(), "aborted by a signal: {}", stderr(&run));
    assert!(crashed.join("embeddings-00002.jsonl").exists() && !crashed.join("embeddings-00002.safetensors").exists());
    let again = encode_archive(&a, &crashed, &flags);
    assert_eq!(code(&again), 2, "a second run without --resume is refused: {}", stderr(&again));
    let mut resume_flags = flags.to_vec();
    resume_flags.push("--resume");
    let resumed = encode_archive(&a, &crashed, &resume_flags);
    let err = stderr(&resumed);
    assert_eq!(code(&resumed), 1, "{err}");
    assert!(err.contains("removed") && err.contains("embeddings-00002.jsonl"), "the orphan manifest is removed: {err}");
    assert_eq!(manifest_rows(&crashed).len(), reference_rows, "none lost, none duplicated");
    same_embeddings(&reference, &embeddings(&crashed), "resumed after a crash");

    // kill -9 while shards are being written.
    let killed = a.dir.join("killed");
    let args = vec!["encode-archive", s(&a.root), "--model", s(&a.model), "--out", s(&killed), "--device", "cpu", "--batch", "1", "--shard-size", "20", "--jobs", "1"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_medvqa")).args(&args).stderr(Stdio::null()).spawn().expect("spawn");
    let t0 = Instant::now();
    while !killed.join("embeddings-00001.safetensors").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no shard written in 2 minutes");
        assert!(child.try_wait().expect("wait").is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let run_json: Value = serde_json::from_str(&fs::read_to_string(killed.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["complete"], false, "killed before the end");
    let partial = manifest_rows(&killed).len();
    assert!(partial < reference_rows);
    let resumed = encode_archive(&a, &killed, &["--batch", "1", "--shard-size", "20", "--jobs", "1", "--resume"]);
    assert_eq!(code(&resumed), 1, "{}", stderr(&resumed));
    assert_eq!(manifest_rows(&killed).len(), reference_rows, "none lost, none duplicated after kill -9 (had {partial})");
    same_embeddings(&reference, &embeddings(&killed), "resumed after kill -9");
    // Resuming a finished run does nothing and changes nothing.
    let before = all_output_text(&killed).len();
    let noop = encode_archive(&a, &killed, &["--batch", "1", "--shard-size", "20", "--jobs", "1", "--resume"]);
    assert!(stderr(&noop).contains("0 unit(s) encoded"), "{}", stderr(&noop));
    assert_eq!(all_output_text(&killed).len(), before);

    // Other settings are refused on resume, naming what differs.
    let other = encode_archive(&a, &killed, &["--unit", "series", "--shard-size", "20", "--resume"]);
    assert_eq!(code(&other), 2);
    assert!(stderr(&other).contains("unit"), "{}", stderr(&other));
}

#[test]
fn shards_partition_the_archive_and_merge_back() {
    let a = archive();
    let whole = a.dir.join("whole");
    assert_eq!(code(&encode_archive(&a, &whole, &["--unit", "series", "--series-slices", "3"])), 1);
    let reference = embeddings(&whole);
    // Three tasks of an array job writing into one folder.
    let split = a.dir.join("split");
    let mut per_task = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let run = encode_archive(&a, &split, &["--unit", "series", "--series-slices", "3", "--shard", &shard]);
        assert!(matches!(code(&run), 0 | 1), "{}", stderr(&run));
        per_task.push(jsonl(&split.join(format!("embeddings-s00{i}of003-00000.jsonl"))).len());
    }
    assert!(per_task.iter().all(|&n| n > 10), "every task got a fair part: {per_task:?}");
    // Each skipped file is listed by exactly one task.
    let mut skipped: Vec<String> = (0..3)
        .flat_map(|i| jsonl(&split.join(format!("skipped-s00{i}of003.jsonl"))))
        .map(|v| v["source"].as_str().unwrap().to_string())
        .collect();
    skipped.sort();
    let mut whole_skipped: Vec<String> = jsonl(&whole.join("skipped.jsonl")).iter().map(|v| v["source"].as_str().unwrap().to_string()).collect();
    whole_skipped.sort();
    assert_eq!(skipped, whole_skipped);
    assert_eq!(per_task.iter().sum::<usize>(), manifest_rows(&whole).len());
    same_embeddings(&reference, &embeddings(&split), "three shards vs one run");

    let merged = a.dir.join("all.parquet");
    let run = medvqa(&["merge-manifests", s(&split), "--out", s(&merged)]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    let meta = parquet2::read::read_metadata(&mut fs::File::open(&merged).unwrap()).unwrap();
    assert_eq!(meta.num_rows, manifest_rows(&whole).len());
    if let Some(py) = python_readers(&split, &merged) {
        assert_eq!(py["rows"], manifest_rows(&whole).len());
    }
    // Refuses to write over its output, and to merge overlapping runs.
    assert_eq!(code(&medvqa(&["merge-manifests", s(&split), "--out", s(&merged)])), 2);
    let run = medvqa(&["merge-manifests", s(&split), s(&whole), "--out", s(&a.dir.join("dup.parquet"))]);
    assert_eq!(code(&run), 2);
    assert!(stderr(&run).contains("is in both"), "{}", stderr(&run));
    // A missing task is reported.
    let two = a.dir.join("two");
    fs::create_dir_all(&two).unwrap();
    for f in fs::read_dir(&split).unwrap() {
        let p = f.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().contains("s002of003") {
            fs::copy(&p, two.join(p.file_name().unwrap())).unwrap();
        }
    }
    let run = medvqa(&["merge-manifests", s(&two), "--out", s(&a.dir.join("two.parquet"))]);
    assert_eq!(code(&run), 1);
    assert!(stderr(&run).contains("2/3"), "{}", stderr(&run));
}

#[test]
fn uids_hashed_under_a_key_never_appear_raw() {
    let a = archive();
    let key = a.dir.join("key");
    fs::write(&key, b"0123456789abcdef-secret-key-material").unwrap();
    let out = a.dir.join("hashed");
    assert_eq!(code(&encode_archive(&a, &out, &["--hash-uids", s(&key)])), 1);
    let text = all_output_text(&out);
    for u in &a.uids {
        assert!(!text.contains(u.as_str()), "UID {u} written unhashed");
    }
    for p in PHI {
        assert!(!text.contains(p), "{p} leaked");
    }
    let rows = manifest_rows(&out);
    let sop: Vec<&str> = rows.iter().filter_map(|r| r["sop_instance_uid"].as_str()).collect();
    assert!(sop.len() > 200 && sop.iter().all(|u| u.starts_with("2.25.") && u.len() <= 64));
    // The same key gives the same hashes (joins across runs); resume keeps the key.
    let out2 = a.dir.join("hashed2");
    assert_eq!(code(&encode_archive(&a, &out2, &["--hash-uids", s(&key)])), 1);
    let ids = |o: &Path| manifest_rows(o).iter().map(|r| r["unit_id"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&out), ids(&out2));
    let other_key = a.dir.join("key2");
    fs::write(&other_key, b"another-key-of-enough-length").unwrap();
    let run = encode_archive(&a, &out, &["--hash-uids", s(&other_key), "--resume"]);
    assert_eq!(code(&run), 2, "resuming under another key is refused: {}", stderr(&run));
    let short = a.dir.join("short");
    fs::write(&short, b"tiny").unwrap();
    assert_eq!(code(&encode_archive(&a, &a.dir.join("x"), &["--hash-uids", s(&short)])), 2);
}

#[test]
fn rows_equal_medvqa_encode_of_the_same_files() {
    let a = archive();
    // A sub-archive: radiographs, multi-frame objects and PNGs (encode reads each file alone).
    let out = a.dir.join("frames");
    let sub = a.root.join("radiographs");
    let run = medvqa(&["encode-archive", s(&sub), "--model", s(&a.model), "--out", s(&out), "--device", "cpu", "--unit", "frame"]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    let file = a.dir.join("encode.safetensors");
    let run = medvqa(&["encode", "--model", s(&a.model), "--out", s(&file), "--device", "cpu", s(&sub)]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    let (shape, emb) = TensorFile::open(&file).unwrap().f32("embeddings").unwrap();
    let manifest = jsonl(&a.dir.join("encode.jsonl"));
    assert_eq!(shape[0], RADIOGRAPHS);
    let archive_rows = manifest_rows(&out);
    let archive_emb = embeddings(&out);
    for (i, m) in manifest.iter().enumerate() {
        let src = Path::new(m["source"][0].as_str().unwrap()).strip_prefix(&sub).unwrap().to_string_lossy().into_owned();
        let r = archive_rows.iter().find(|r| r["source"][0] == src.as_str()).unwrap_or_else(|| panic!("{src} not in the archive run"));
        let d = max_abs_diff(&archive_emb[r["unit_id"].as_str().unwrap()], &emb[i * 32..(i + 1) * 32]);
        assert!(d < 1e-5, "{src}: {d}");
    }
}

/// Real third-party DICOM (pydicom's test files, ~200 files of every kind and many broken ones):
/// every unit once, failures listed, the run finishes; resume after a crash gives the same.
#[test]
fn real_dicom_fixtures_every_unit_once() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/dicom/pydicom_test_files");
    if !dir.is_dir() {
        eprintln!("SKIP: {} not found (shared DICOM fixtures absent)", dir.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_siglip_model(tmp.path());
    let run_on = |out: &Path, extra: &[&str]| {
        let mut args = vec!["encode-archive", s(&dir), "--model", s(&model), "--out", s(out), "--device", "cpu", "--shard-size", "25"];
        args.extend_from_slice(extra);
        medvqa(&args)
    };
    let whole = tmp.path().join("whole");
    let run = run_on(&whole, &[]);
    let err = stderr(&run);
    assert!(matches!(code(&run), 0 | 1), "{err}");
    let all = manifest_rows(&whole);
    let ids: BTreeSet<&str> = all.iter().map(|r| r["unit_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len());
    let ok = all.iter().filter(|r| r["status"] == "ok").count();
    assert!(ok > 60, "most of pydicom's images encode: {ok} of {}", all.len());
    // In image units no file is in two rows, nor in a row and skipped.jsonl.
    let skipped = jsonl(&whole.join("skipped.jsonl"));
    let mut files: Vec<&str> = all.iter().flat_map(|r| r["source"].as_array().unwrap().iter().map(|s| s.as_str().unwrap())).collect();
    files.extend(skipped.iter().map(|s| s["source"].as_str().unwrap()));
    let distinct: BTreeSet<&str> = files.iter().copied().collect();
    assert_eq!(distinct.len(), files.len(), "a file counted twice");
    assert!(distinct.iter().all(|f| dir.join(f).is_file()));
    let failed = all.len() - ok;
    assert!(jsonl(&whole.join("errors.jsonl")).len() >= failed);
    eprintln!("pydicom test files: {} units, {ok} ok, {failed} failed", all.len());

    let crashed = tmp.path().join("crashed");
    let args = vec!["encode-archive", s(&dir), "--model", s(&model), "--out", s(&crashed), "--device", "cpu", "--shard-size", "25"];
    let status = Command::new(env!("CARGO_BIN_EXE_medvqa")).args(&args).env("MEDVQA_ARCHIVE_ABORT_AFTER_MANIFEST", "1").output().unwrap();
    assert!(status.status.code().is_none());
    let run = run_on(&crashed, &["--resume"]);
    assert!(matches!(code(&run), 0 | 1), "{}", stderr(&run));
    same_embeddings(&embeddings(&whole), &embeddings(&crashed), "pydicom files resumed");
    assert_eq!(manifest_rows(&crashed).len(), all.len());
}

/// Real 4D data (dcm_qa_nih: four GE EPI series, each 150 files = 15 slice positions × 10 time
/// points): in series units every time point of every series is one row of 15 slices.
#[test]
fn real_4d_series_become_one_unit_per_time_point() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/dicom/dcm_qa_nih/In/20180918GE");
    if !dir.is_dir() {
        eprintln!("SKIP: {} not found (shared DICOM fixtures absent)", dir.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_siglip_model(tmp.path());
    let out = tmp.path().join("out");
    let run = medvqa(&["encode-archive", s(&dir), "--model", s(&model), "--out", s(&out), "--device", "cpu", "--unit", "series", "--series-slices", "8"]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    let rows = manifest_rows(&out);
    assert_eq!(rows.len(), 4 * 10);
    let mut per_series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        let id = r["unit_id"].as_str().unwrap();
        let (series, t) = id.rsplit_once("/t").unwrap_or_else(|| panic!("{id}: no time point"));
        per_series.entry(series.to_string()).or_default().insert(t.to_string());
        assert_eq!(r["depth"], 15);
        assert_eq!(r["source"].as_array().unwrap().len(), 15);
        assert_eq!(r["pooled_indices"].as_array().unwrap().len(), 8);
    }
    assert_eq!(per_series.len(), 4);
    assert!(per_series.values().all(|ts| ts.len() == 10));
}

/// The same archive on a WGPU adapter (Mesa's lavapipe in CI) gives the same rows as on the CPU
/// backend: the archive path is backend-agnostic.
#[test]
fn wgpu_gives_the_rows_the_cpu_backend_gives() {
    if medvqa_model::device::wgpu_for_tests().is_none() {
        return;
    }
    let a = archive();
    let sub = a.root.join("multiframe");
    let run_on = |device: &str| {
        let out = a.dir.join(format!("out-{device}"));
        let run = medvqa(&["encode-archive", s(&sub), "--model", s(&a.model), "--out", s(&out), "--device", device, "--unit", "frame", "--batch", "4"]);
        assert_eq!(code(&run), 0, "{device}: {}", stderr(&run));
        embeddings(&out)
    };
    let cpu = run_on("cpu");
    let gpu = run_on("wgpu");
    assert_eq!(cpu.len(), MULTIFRAME * FRAMES);
    for (k, v) in &cpu {
        let d = max_abs_diff(v, &gpu[k]);
        assert!(d < 1e-4, "{k}: cpu vs wgpu differ by {d}");
    }
}
