//! End-to-end tests of `medvqa ingest`, driving the real binary on DICOM files written here
//! (see `crates/ingest/tests/support`): the command-line contract of issue #2 — outputs and
//! their names, the sidecar keys, the .npy layout, `errors.jsonl`, exit codes, `--overwrite`,
//! and that no input is ever modified.

#[path = "../../ingest/tests/support/mod.rs"]
mod support;
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use dicom_core::VR;
use dicom_dictionary_std::tags;
use serde_json::{json, Value};
use common::*;
use support::*;

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("json")
}

/// Reads a .npy the way NumPy's format spec (NEP 1) lays it out, checking it is little-endian
/// float32 in C order; returns shape and values.
fn npy(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00", "magic and version 1.0");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).expect("ascii header");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("shape")
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let data: Vec<f32> = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "data length matches the shape"
    );
    assert_eq!((b.len() - 10 - hlen) % 4, 0);
    (shape, data)
}

/// The keys of the sidecar contract (issue #2); extra keys are allowed.
const SIDECAR_KEYS: [&str; 14] = [
    "source",
    "kind",
    "shape",
    "stage",
    "modality",
    "body_part",
    "photometric",
    "spacing",
    "origin",
    "direction",
    "window",
    "series_instance_uid",
    "sop_instance_uids",
    "warnings",
];

fn check_sidecar_keys(j: &Value) {
    let o = j.as_object().expect("sidecar is an object");
    for k in SIDECAR_KEYS {
        assert!(o.contains_key(k), "sidecar lacks {k}: {j}");
    }
}

/// FNV-1a 64 of the bytes and the modification time of every file under `root`.
fn fingerprint(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.is_file() {
            let bytes = fs::read(&d).unwrap();
            let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
            out.insert(
                d.clone(),
                (h, fs::metadata(&d).unwrap().modified().unwrap()),
            );
            continue;
        }
        for e in fs::read_dir(&d).unwrap() {
            stack.push(e.unwrap().path());
        }
    }
    out
}

/// An axial CT slice, 2×2, HU = stored - 1024 (Rescale, PS3.3 C.11.1.1.2).
fn ct_slice(series: &str, z: f64, instance: i64, hu: [i16; 4]) -> Obj {
    let stored: Vec<u16> = hu.iter().map(|&v| (v + 1024) as u16).collect();
    pixels16(
        image(CT_IMAGE_STORAGE, "CT", 2, 2, 16, 12, false)
            .text(tags::SERIES_INSTANCE_UID, VR::UI, series)
            .text(tags::BODY_PART_EXAMINED, VR::CS, "HEAD")
            .ds(
                tags::IMAGE_ORIENTATION_PATIENT,
                &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            )
            .ds(tags::IMAGE_POSITION_PATIENT, &[-5.0, 7.0, z])
            .ds(tags::PIXEL_SPACING, &[0.5, 0.75])
            .is(tags::INSTANCE_NUMBER, &[instance])
            .ds(tags::RESCALE_SLOPE, &[1.0])
            .ds(tags::RESCALE_INTERCEPT, &[-1024.0])
            .ds(tags::WINDOW_CENTER, &[40.0])
            .ds(tags::WINDOW_WIDTH, &[80.0]),
        &stored,
    )
}

/// HU of slice k (ascending z) in the series below.
fn slice_hu(k: usize) -> [i16; 4] {
    let k = k as i16;
    [-1000 + k, -600 + k, 40 + k, 1000 + k]
}

/// Writes a 3-slice series, z descending with Instance Number and file name, in a nested
/// folder; returns the series UID and the paths in ascending z.
fn write_series(root: &Path) -> (String, Vec<PathBuf>) {
    let series = uid();
    let nested = root.join("study").join("ser");
    fs::create_dir_all(&nested).unwrap();
    let mut paths = Vec::new();
    for k in 0..3 {
        // File "a" holds the highest z, "c" the lowest.
        let p = nested.join(["c.dcm", "b.dcm", "a.dcm"][k]);
        ct_slice(&series, 10.0 + 3.0 * k as f64, 3 - k as i64, slice_hu(k)).write(&p, EXPLICIT_LE);
        paths.push(p);
    }
    (series, paths)
}

#[test]
fn a_folder_becomes_a_volume_and_an_image_with_the_sidecar_contract() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (series, paths) = write_series(&input);
    // A stand-alone 2D image (no geometry), given in the same folder tree.
    let xray = input.join("xray.dcm");
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "DX", 2, 3, 16, 16, false),
        &[0, 1, 2, 3, 4, 5],
    )
    .write(&xray, EXPLICIT_LE);
    // Non-image files met while walking a folder are passed over, not failures.
    fs::write(
        input.join("study").join("README.txt"),
        "acquisition notes\n",
    )
    .unwrap();
    let before = fingerprint(&input);
    let out_dir = dir.path().join("out");
    let out = medvqa(&["ingest", s(&input), "--out", s(&out_dir), "--jobs", "1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fingerprint(&input), before, "inputs are never modified");
    assert_eq!(
        fs::read_to_string(out_dir.join("errors.jsonl")).unwrap(),
        "",
        "no failures"
    );
    let mut written: Vec<String> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written.len(), 5, "two items and errors.jsonl: {written:?}");

    let name = format!("series_{series}");
    let j = json_file(&out_dir.join(format!("{name}.json")));
    check_sidecar_keys(&j);
    let sources: Vec<String> = paths.iter().map(|p| s(p).to_string()).collect();
    assert_eq!(
        j["source"],
        json!(sources),
        "sources ascending along the normal, paths as walked"
    );
    assert_eq!(j["kind"], "volume");
    assert_eq!(j["shape"], json!([3, 2, 2]));
    assert_eq!(j["stage"], "modality");
    assert_eq!(j["modality"], "CT");
    assert_eq!(j["body_part"], "HEAD");
    assert_eq!(j["photometric"], "MONOCHROME2");
    assert_eq!(j["spacing"], json!([3.0, 0.5, 0.75]));
    assert_eq!(j["origin"], json!([-5.0, 7.0, 10.0]));
    assert_eq!(
        j["direction"],
        json!([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    );
    assert_eq!(j["window"], Value::Null);
    assert_eq!(j["series_instance_uid"], json!(series));
    assert_eq!(j["sop_instance_uids"].as_array().unwrap().len(), 3);
    assert_eq!(j["warnings"], json!([]));
    let (shape, data) = npy(&out_dir.join(format!("{name}.npy")));
    assert_eq!(shape, vec![3, 2, 2]);
    let expected: Vec<f32> = (0..3).flat_map(|k| slice_hu(k).map(|v| v as f32)).collect();
    assert_eq!(data, expected);

    let j = json_file(&out_dir.join("xray.json"));
    check_sidecar_keys(&j);
    assert_eq!(j["source"], json!([s(&xray)]));
    assert_eq!(j["kind"], "image");
    assert_eq!(j["shape"], json!([2, 3]));
    assert_eq!(j["modality"], "DX");
    assert_eq!(j["body_part"], Value::Null);
    assert_eq!(j["spacing"], Value::Null);
    assert_eq!(j["origin"], Value::Null);
    assert_eq!(j["direction"], Value::Null);
    let (shape, data) = npy(&out_dir.join("xray.npy"));
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn display_stage_with_a_window_preset_and_with_the_file_window() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (series, _) = write_series(&input);
    let name = format!("series_{series}");
    // --window lung = c -600, w 1500 (presets.rs); LINEAR (PS3.3 C.11.2.1.2.1) band
    // (-1350, 149]: y = (x + 600.5) / 1499 + 0.5.
    let out_dir = dir.path().join("lung");
    let out = medvqa(&[
        "ingest",
        s(&input),
        "--out",
        s(&out_dir),
        "--stage",
        "display",
        "--window",
        "lung",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j = json_file(&out_dir.join(format!("{name}.json")));
    assert_eq!(j["stage"], "display");
    assert_eq!(
        j["window"],
        json!({"center": -600.0, "width": 1500.0, "function": "LINEAR"})
    );
    let lung = |x: f64| {
        if x <= -1350.0 {
            0.0
        } else if x > 149.0 {
            1.0
        } else {
            (x + 600.5) / 1499.0 + 0.5
        }
    };
    let (_, data) = npy(&out_dir.join(format!("{name}.npy")));
    for (k, chunk) in data.chunks(4).enumerate() {
        for (g, hu) in chunk.iter().zip(slice_hu(k)) {
            assert!(
                (*g as f64 - lung(hu as f64)).abs() < 1e-6,
                "slice {k}: {g} for {hu} HU"
            );
        }
    }
    // Without --window: the file's Window Center 40 / Width 80, band (0, 79].
    let out_dir = dir.path().join("file");
    let out = medvqa(&[
        "ingest",
        s(&input),
        "--out",
        s(&out_dir),
        "--stage",
        "display",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j = json_file(&out_dir.join(format!("{name}.json")));
    assert_eq!(
        j["window"],
        json!({"center": 40.0, "width": 80.0, "function": "LINEAR"})
    );
    let (_, data) = npy(&out_dir.join(format!("{name}.npy")));
    let brain = |x: f64| {
        if x <= 0.0 {
            0.0
        } else if x > 79.0 {
            1.0
        } else {
            (x - 39.5) / 79.0 + 0.5
        }
    };
    let expected: Vec<f64> = (0..3)
        .flat_map(|k| slice_hu(k).map(|v| brain(v as f64)))
        .collect();
    for (g, e) in data.iter().zip(&expected) {
        assert!((*g as f64 - e).abs() < 1e-6, "{g} vs {e}");
    }
}

#[test]
fn four_d_series_writes_one_volume_per_time_point() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let series = uid();
    for t in 0..4 {
        for k in 0..3 {
            let hu = [100 * t as i16 + k as i16; 4];
            ct_slice(&series, 2.0 * k as f64, (3 * t + k) as i64 + 1, hu)
                .is(tags::TEMPORAL_POSITION_IDENTIFIER, &[t as i64 + 1])
                .write(
                    &input.join(format!("{}.dcm", 11 - (3 * t + k))),
                    EXPLICIT_LE,
                );
        }
    }
    let out_dir = dir.path().join("out");
    let out = medvqa(&["ingest", s(&input), "--out", s(&out_dir)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for t in 0..4 {
        let name = format!("series_{series}_t{t:03}");
        let (shape, data) = npy(&out_dir.join(format!("{name}.npy")));
        assert_eq!(shape, vec![3, 2, 2]);
        let expected: Vec<f32> = (0..3).flat_map(|k| [(100 * t + k) as f32; 4]).collect();
        assert_eq!(data, expected, "{name}");
        assert_eq!(
            json_file(&out_dir.join(format!("{name}.json")))["kind"],
            "volume"
        );
    }
    assert!(!out_dir.join(format!("series_{series}_t004.npy")).exists());
}

#[test]
fn bad_inputs_are_logged_and_the_others_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir_all(&input).unwrap();
    let good = input.join("good.dcm");
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 16, 16, false),
        &[1, 2, 3, 4],
    )
    .write(&good, EXPLICIT_LE);
    let truncated = input.join("truncated.dcm");
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 4, 4, 16, 16, false),
        &[7; 10],
    )
    .write(&truncated, EXPLICIT_LE);
    let big = input.join("big.dcm");
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 16, 16, 16, 16, false),
        &[0; 256],
    )
    .write(&big, EXPLICIT_LE);
    let norows = input.join("norows.dcm");
    let mut o = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 16, 16, false),
        &[0; 4],
    );
    o.0.remove_element(tags::ROWS);
    o.write(&norows, EXPLICIT_LE);
    let text = input.join("notes.txt");
    fs::write(&text, "not an image at all\n").unwrap();
    let unknown = input.join("unknown_ts.dcm");
    let ts = "1.2.826.0.1.3680043.99.7";
    image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 16, 16, false)
        .encapsulated(vec![vec![1, 2, 3, 4]])
        .write_declared(&unknown, ts, EXPLICIT_LE);
    let before = fingerprint(&input);

    let out_dir = dir.path().join("out");
    let inputs = [&good, &truncated, &big, &norows, &text, &unknown];
    let mut args = vec!["ingest"];
    args.extend(inputs.iter().map(|p| s(p)));
    args.extend(["--out", s(&out_dir), "--max-samples", "100"]);
    let out = medvqa(&args);
    assert_eq!(code(&out), 1, "some inputs failed: {}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(fingerprint(&input), before, "inputs are never modified");

    let (shape, data) = npy(&out_dir.join("good.npy"));
    assert_eq!((shape, data), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
    let log = fs::read_to_string(out_dir.join("errors.jsonl")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect();
    let reason = |p: &Path| -> String {
        let hits: Vec<&Value> = lines
            .iter()
            .filter(|l| l["source"] == json!(s(p)))
            .collect();
        assert_eq!(hits.len(), 1, "one line for {}: {log}", p.display());
        let e = hits[0]["error"].as_str().expect("error text").to_string();
        assert!(e.contains(s(p)), "the error names the file: {e}");
        e
    };
    assert_eq!(lines.len(), 5, "{log}");
    assert!(reason(&truncated).contains("truncated"));
    assert!(reason(&big).contains("exceeds the limit of 100"));
    assert!(reason(&norows).contains("Rows"));
    assert!(reason(&text).contains("not DICOM"));
    assert!(reason(&unknown).contains(ts));
    assert!(!out_dir.join("truncated.npy").exists() && !out_dir.join("big.npy").exists());
}

#[test]
fn an_unreadable_slice_is_logged_and_the_rest_of_its_volume_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (series, paths) = write_series(&input);
    // The middle slice (z = 13) keeps its header but loses the end of its Pixel Data.
    let bad = &paths[1];
    let stored: Vec<u16> = slice_hu(1).iter().map(|&v| (v + 1024) as u16).collect();
    pixels16(ct_slice(&series, 13.0, 2, slice_hu(1)), &stored[..3]).write(bad, EXPLICIT_LE);

    let out_dir = dir.path().join("out");
    let out = medvqa(&["ingest", s(&input), "--out", s(&out_dir)]);
    assert_eq!(code(&out), 1, "one source failed: {}", stderr(&out));

    let log = fs::read_to_string(out_dir.join("errors.jsonl")).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).expect("jsonl line")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0]["source"], json!(s(bad)));
    let e = lines[0]["error"].as_str().unwrap();
    assert!(e.contains(s(bad)) && e.contains("truncated"), "{e}");

    let name = format!("series_{series}");
    let (shape, data) = npy(&out_dir.join(format!("{name}.npy")));
    assert_eq!(shape, vec![2, 2, 2]);
    let expected: Vec<f32> = [0, 2].iter().flat_map(|&k| slice_hu(k)).map(f32::from).collect();
    assert_eq!(data, expected);
    let j = json_file(&out_dir.join(format!("{name}.json")));
    check_sidecar_keys(&j);
    assert_eq!(j["kind"], json!("volume"));
    assert_eq!(j["source"], json!([s(&paths[0]), s(&paths[2])]));
    assert_eq!(j["spacing"][0], json!(6.0));
    let warnings = j["warnings"].to_string();
    assert!(warnings.contains("1 of 3 slice(s) left out") && warnings.contains(s(bad)), "{warnings}");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.dcm");
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 1, 1, 16, 16, false),
        &[1],
    )
    .write(&img, EXPLICIT_LE);
    let out_dir = dir.path().join("out");
    let o = s(&out_dir);
    let i = s(&img);
    for args in [
        vec!["ingest", "--out", o],
        vec!["ingest", i],
        vec!["ingest", i, "--out", o, "--stage", "bogus"],
        vec!["ingest", i, "--out", o, "--window", "nonsense"],
        vec!["ingest", i, "--out", o, "--window", "40,-5"],
        vec!["ingest", i, "--out", o, "--stage", "model"],
        vec!["ingest", i, "--out", o, "--size", "64"],
        vec!["ingest", i, "--out", o, "--jobs", "many"],
    ] {
        let out = medvqa(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?} explains itself");
        assert!(!out_dir.join("img.npy").exists(), "{args:?} wrote nothing");
    }
}

#[test]
fn existing_outputs_are_kept_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.dcm");
    pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 1, 2, 16, 16, false),
        &[5, 6],
    )
    .write(&img, EXPLICIT_LE);
    let out_dir = dir.path().join("out");
    let first = medvqa(&["ingest", s(&img), "--out", s(&out_dir)]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let outputs = fingerprint(&out_dir);
    assert_eq!(
        outputs.len(),
        3,
        "img.npy, img.json, errors.jsonl: {outputs:?}"
    );
    // Ask for a different stage, which would change the files, without --overwrite.
    let again = medvqa(&[
        "ingest",
        s(&img),
        "--out",
        s(&out_dir),
        "--stage",
        "display",
    ]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    assert_eq!(fingerprint(&out_dir), outputs, "outputs untouched");
    let forced = medvqa(&[
        "ingest",
        s(&img),
        "--out",
        s(&out_dir),
        "--stage",
        "display",
        "--overwrite",
    ]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert_eq!(json_file(&out_dir.join("img.json"))["stage"], "display");
    assert_eq!(
        npy(&out_dir.join("img.npy")).1,
        vec![0.0, 1.0],
        "min-max display of 5, 6"
    );
}

#[test]
fn outputs_do_not_depend_on_the_number_of_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_series(&input);
    for k in 0..4 {
        pixels16(
            image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 16, 16, false),
            &[k, k + 1, k + 2, k + 3],
        )
        .write(&input.join(format!("single{k}.dcm")), EXPLICIT_LE);
    }
    let mut runs = Vec::new();
    for jobs in ["1", "2"] {
        let out_dir = dir.path().join(format!("out{jobs}"));
        let out = medvqa(&["ingest", s(&input), "--out", s(&out_dir), "--jobs", jobs]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let files: BTreeMap<String, Vec<u8>> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        assert_eq!(files.len(), 11, "5 items × 2 files + errors.jsonl");
        runs.push(files);
    }
    assert_eq!(runs[0], runs[1], "byte-identical outputs with 1 and 2 jobs");
}
