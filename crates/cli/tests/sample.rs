//! The README's main command on the bundled sample study: what `tools/sample/make_sample.py`
//! put in must come out (geometry, HU, ordering, MONOCHROME1 handling).

use std::path::Path;
use std::process::Command;

use medvqa_ingest::npy::read_f32;

fn ingest(stage: &str, out: &Path) -> std::process::Output {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample");
    Command::new(env!("CARGO_BIN_EXE_medvqa"))
        .args(["ingest"])
        .arg(&sample)
        .arg("--out")
        .arg(out)
        .args(["--stage", stage])
        .output()
        .expect("run medvqa")
}

fn sidecar(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap()
}

const SERIES: &str = "series_1.2.826.0.1.3680043.10.1561.1.1";

#[test]
fn sample_ct_comes_out_in_hu_sorted_along_the_normal() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest("modality", dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = sidecar(dir.path(), SERIES);
    assert_eq!(s["kind"], "volume");
    assert_eq!(s["shape"], serde_json::json!([12, 64, 64]));
    assert_eq!(s["spacing"], serde_json::json!([2.5, 0.7, 0.7]));
    assert_eq!(s["origin"][2], -100.0, "first slice is the most inferior");
    assert_eq!(s["direction"][2], serde_json::json!([0.0, 0.0, 1.0]));
    let (shape, v) = read_f32(&dir.path().join(format!("{SERIES}.npy"))).unwrap();
    assert_eq!(shape, vec![12, 64, 64]);
    let at = |k: usize, j: usize, i: usize| v[(k * 64 + j) * 64 + i];
    // make_sample.py: nodule (30 HU) centred on slice 6 in the right lung (column 31.5 - 12),
    // lungs -850, air -1000 at the corner, spine 700.
    assert_eq!(at(6, 32, 20), 30.0);
    assert_eq!(at(0, 32, 20), -850.0);
    assert_eq!(at(6, 0, 0), -1000.0);
    assert_eq!(at(6, 47, 32), 700.0);
}

#[test]
fn sample_display_stage_uses_the_files_windows_and_inverts_monochrome1() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest("display", dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = sidecar(dir.path(), SERIES);
    assert_eq!(s["window"], serde_json::json!({"center": -600.0, "width": 1500.0, "function": "LINEAR"}));
    let cr = sidecar(dir.path(), "chest_cr");
    assert_eq!(cr["photometric"], "MONOCHROME1");
    let (shape, v) = read_f32(&dir.path().join("chest_cr.npy")).unwrap();
    assert_eq!(shape, vec![96, 64]);
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    // Air beside the body attenuates least: MONOCHROME1 stores it high, display shows it dark.
    let corner = v[0];
    let centre = v[48 * 64 + 32];
    assert!(corner < 0.1 && centre > corner + 0.3, "corner {corner} centre {centre}");
    // Running again into the same folder is refused rather than overwriting.
    let again = ingest("display", dir.path());
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn sample_ct_resamples_and_reorients_keeping_patient_positions() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample/ct");
    let out = Command::new(env!("CARGO_BIN_EXE_medvqa"))
        .arg("ingest")
        .arg(&sample)
        .arg("--out")
        .arg(dir.path())
        .args(["--resample", "1.25,1.4,1.4", "--reorient", "RAS"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = sidecar(dir.path(), SERIES);
    // (12-1)*2.5/1.25 + 1 = 23 slices; (64-1)*0.7/1.4 + 1 = 32.5 → 32 rows and columns.
    assert_eq!(s["shape"], serde_json::json!([23, 32, 32]));
    assert_eq!(s["spacing"], serde_json::json!([1.25, 1.4, 1.4]));
    // RAS: columns now grow towards the patient's right (-x), rows anterior (-y); the first
    // voxel is the old last column/row, at +22.05 mm.
    assert_eq!(s["direction"][0][0], -1.0);
    assert_eq!(s["direction"][1][1], -1.0);
    assert!((s["origin"][0].as_f64().unwrap() - 22.05).abs() < 1e-9);
    let (_, v) = read_f32(&dir.path().join(format!("{SERIES}.npy"))).unwrap();
    // Slice 12 of the new grid is z = -100 + 12 * 1.25 = -85 mm = original slice 6, the
    // nodule's centre slice. The nodule sits at x = -22.05 + 19.5 * 0.7 = -8.4 mm, y = 0: in the
    // RAS grid column i lies at x = 22.05 - 1.4 i → i = 21.75, row j at y = 22.05 - 1.4 j → 15.75.
    let at = |k: usize, j: usize, i: usize| v[(k * 32 + j) * 32 + i];
    assert_eq!(at(12, 16, 21), 30.0);
    assert_eq!(at(12, 16, 32 - 1 - 21), -850.0, "the mirror position is the other lung");
}

#[test]
fn non_image_dicom_in_a_folder_is_listed_not_failed_and_missing_inputs_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("study");
    std::fs::create_dir(&input).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample/chest_cr.dcm");
    std::fs::copy(&sample, input.join("cr.dcm")).unwrap();
    // A DICOM object without pixel data: the sample's header with Pixel Data cut off, so Rows
    // are gone too (header ends before (0028,0010)) — a stand-in for an SR beside the images.
    let bytes = std::fs::read(&sample).unwrap();
    let rows_tag = [0x28u8, 0x00, 0x10, 0x00];
    let cut = bytes.windows(4).position(|w| w == rows_tag).unwrap();
    std::fs::write(input.join("report.dcm"), &bytes[..cut]).unwrap();
    let out = dir.path().join("out");
    let run = |args: &[&std::ffi::OsStr]| Command::new(env!("CARGO_BIN_EXE_medvqa")).args(args).output().unwrap();
    let r = run(&["ingest".as_ref(), input.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let skipped = std::fs::read_to_string(out.join("skipped.jsonl")).unwrap();
    assert!(skipped.contains("report.dcm") && skipped.contains("no pixel data"), "{skipped}");
    assert_eq!(std::fs::read_to_string(out.join("errors.jsonl")).unwrap(), "");
    // Given explicitly, the same object is a failure (exit 1).
    let out2 = dir.path().join("out2");
    let r = run(&["ingest".as_ref(), input.join("report.dcm").as_os_str(), "--out".as_ref(), out2.as_os_str()]);
    assert_eq!(r.status.code(), Some(1));
    let r = run(&["ingest".as_ref(), dir.path().join("nope").as_os_str(), "--out".as_ref(), out2.as_os_str()]);
    assert_eq!(r.status.code(), Some(2));
}
