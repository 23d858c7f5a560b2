//! The DICOM pipeline on synthetic phantoms whose answers are known by construction: files are
//! written here with dicom-object (see `support/mod.rs`), ingested through the public
//! pipeline (`plan` → `names` → `run_job`), and every output value, name, geometry field and
//! warning is compared with what the standard says it must be.

mod support;

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use medvqa_ingest::lut::{VoiLutFunction, Window};
use medvqa_ingest::pipeline::{self, Failure, Item, ItemKind, Options, Stage};
use medvqa_ingest::presets::parse_window;
use support::*;

// ---------------------------------------------------------------------------------------------
// Harness

fn ingest(inputs: &[PathBuf], opts: &Options) -> (Vec<Item>, Vec<Failure>) {
    let plan = pipeline::plan(inputs);
    let names = pipeline::names(&plan.jobs);
    let mut items = Vec::new();
    let mut failures = plan.failures;
    for (job, name) in plan.jobs.iter().zip(&names) {
        let out = pipeline::run_job(job, name, opts);
        items.extend(out.items);
        failures.extend(out.failures);
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    (items, failures)
}

fn modality() -> Options {
    Options::default()
}

fn display() -> Options {
    Options {
        stage: Stage::Display,
        ..Options::default()
    }
}

/// Writes one object in `ts` and ingests it; it must give exactly one item.
fn single(obj: &Obj, ts: &str, opts: &Options) -> Item {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.dcm");
    obj.write(&p, ts);
    single_file(&p, opts)
}

fn single_file(p: &Path, opts: &Options) -> Item {
    let (mut items, failures) = ingest(&[p.to_path_buf()], opts);
    assert!(failures.is_empty(), "unexpected failures: {failures:?}");
    assert_eq!(items.len(), 1, "expected one item");
    items.pop().unwrap()
}

fn values(item: &Item) -> Vec<f32> {
    item.array.iter().copied().collect()
}

/// Every value equals the expected one (computed in f64, then rounded to f32 as the output
/// is) within `tol`.
fn assert_values(item: &Item, expected: &[f64], tol: f32) {
    let got = values(item);
    assert_eq!(got.len(), expected.len(), "{}: number of values", item.name);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - *e as f32).abs() <= tol,
            "{}: value {i} is {g}, expected {e}",
            item.name
        );
    }
}

fn has_warning(item: &Item, needle: &str) -> bool {
    item.sidecar.warnings.iter().any(|w| w.contains(needle))
}

fn assert_close3(got: [f64; 3], want: [f64; 3], what: &str) {
    for a in 0..3 {
        assert!(
            (got[a] - want[a]).abs() < 1e-9,
            "{what}: {got:?} != {want:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Series geometry (PS3.3 C.7.6.2: Image Plane Module)

const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

/// One CT slice: HU = slope · stored + intercept (PS3.3 C.11.1.1.2, Rescale).
#[allow(clippy::too_many_arguments)]
fn ct_slice(
    series: &str,
    rows: u16,
    cols: u16,
    iop: [f64; 6],
    pos: [f64; 3],
    instance: i64,
    slope: f64,
    intercept: f64,
    stored: &[u16],
) -> Obj {
    let o = image(CT_IMAGE_STORAGE, "CT", rows, cols, 16, 12, false)
        .text(tags::SERIES_INSTANCE_UID, VR::UI, series)
        .text(tags::BODY_PART_EXAMINED, VR::CS, "CHEST")
        .text(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL")
        .ds(tags::IMAGE_ORIENTATION_PATIENT, &iop)
        .ds(tags::IMAGE_POSITION_PATIENT, &pos)
        .ds(tags::PIXEL_SPACING, &[0.7, 0.9])
        .ds(tags::SLICE_THICKNESS, &[2.5])
        .is(tags::INSTANCE_NUMBER, &[instance])
        .ds(tags::RESCALE_SLOPE, &[slope])
        .ds(tags::RESCALE_INTERCEPT, &[intercept]);
    pixels16(o, stored)
}

/// Rounds a coordinate to 0.1 µm so its decimal string stays short (DS: 16 characters).
fn r4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

#[test]
fn oblique_ct_phantom_is_sorted_along_the_normal_with_exact_geometry_and_hu() {
    // An oblique plane with decimal-exact cosines: r · c = 0.6·-0.48 + 0.8·0.36 = 0, |r| = |c| = 1,
    // and n = r × c = (0.8·-0.8 - 0, 0 - 0.6·-0.8, 0.6·0.36 + 0.8·0.48) = (-0.64, 0.48, 0.6).
    let r = [0.6, 0.8, 0.0];
    let c = [-0.48, 0.36, -0.8];
    let n = [-0.64, 0.48, 0.6];
    let iop = [r[0], r[1], r[2], c[0], c[1], c[2]];
    let (rows, cols, slices) = (6usize, 8usize, 6usize);
    let step = 2.5;
    let p0 = [10.0, -20.0, 30.0];
    let series = uid();
    // HU(k, j, i) = -1000 + 200k + 20j + 2i; slice k has slope 2 and intercept -1000 - 10k (a
    // per-file rescale, so using another slice's would show), so stored = 105k + 10j + i.
    let hu = |k: usize, j: usize, i: usize| {
        -1000.0 + 200.0 * k as f64 + 20.0 * j as f64 + 2.0 * i as f64
    };
    let dir = tempfile::tempdir().unwrap();
    // File names and write order unrelated to position; Instance Number 1 is the slice
    // highest along n (and in z, n_z > 0): acquisition descending, output must ascend.
    let names = [
        "q7f2.dcm", "a91c.dcm", "m03e.dcm", "zz10.dcm", "b4d8.dcm", "k2aa.dcm",
    ];
    let write_order = [3usize, 0, 5, 1, 4, 2];
    let mut sops = vec![String::new(); slices];
    let mut paths = vec![PathBuf::new(); slices];
    for (f, &k) in write_order.iter().enumerate() {
        let pos = [
            r4(p0[0] + k as f64 * step * n[0]),
            r4(p0[1] + k as f64 * step * n[1]),
            r4(p0[2] + k as f64 * step * n[2]),
        ];
        let stored: Vec<u16> = (0..rows * cols)
            .map(|p| (105 * k + 10 * (p / cols) + p % cols) as u16)
            .collect();
        let obj = ct_slice(
            &series,
            rows as u16,
            cols as u16,
            iop,
            pos,
            (slices - k) as i64,
            2.0,
            -1000.0 - 10.0 * k as f64,
            &stored,
        );
        sops[k] = obj
            .0
            .element(tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        paths[k] = dir.path().join(names[f]);
        obj.write(&paths[k], EXPLICIT_LE);
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(items.len(), 1);
    let v = &items[0];
    assert_eq!(v.name, format!("series_{series}"));
    let s = &v.sidecar;
    assert_eq!(s.kind, ItemKind::Volume);
    assert_eq!(v.array.shape(), &[slices, rows, cols]);
    assert_eq!(s.shape, vec![slices, rows, cols]);
    assert_eq!(s.stage, Stage::Modality);
    assert_eq!(s.modality.as_deref(), Some("CT"));
    assert_eq!(s.body_part.as_deref(), Some("CHEST"));
    assert_eq!(s.photometric.as_deref(), Some("MONOCHROME2"));
    assert_eq!(s.series_instance_uid.as_deref(), Some(series.as_str()));
    assert_eq!(
        s.source, paths,
        "sources in array order (ascending along n)"
    );
    assert_eq!(s.sop_instance_uids, sops);
    assert!(s.window.is_none(), "the modality stage applies no window");
    // Spacing [slice, row, col]: the step along n, then Pixel Spacing (row spacing first).
    let sp = s.spacing.clone().unwrap();
    assert_eq!(sp.len(), 3);
    assert!((sp[0].unwrap() - step).abs() < 1e-9, "slice spacing {sp:?}");
    assert_eq!((sp[1], sp[2]), (Some(0.7), Some(0.9)));
    assert_close3(
        s.origin.unwrap(),
        p0,
        "origin = position of the slice lowest along n",
    );
    let d = s.direction.unwrap();
    assert_close3(d[0], r, "row cosine");
    assert_close3(d[1], c, "column cosine");
    assert_close3(d[2], n, "slice normal");
    assert!(
        s.warnings.is_empty(),
        "clean series, no warnings: {:?}",
        s.warnings
    );
    let expected: Vec<f64> = (0..slices)
        .flat_map(|k| (0..rows).flat_map(move |j| (0..cols).map(move |i| hu(k, j, i))))
        .collect();
    assert_values(v, &expected, 0.0);
}

/// Writes an axial series of 2×2 slices at the given z; slice at index q holds 10·q + pixel.
fn axial_series(dir: &Path, series: &str, iop: [f64; 6], positions: &[[f64; 3]]) -> Vec<PathBuf> {
    positions
        .iter()
        .enumerate()
        .map(|(q, &pos)| {
            let stored: Vec<u16> = (0..4).map(|p| (10 * q + p) as u16).collect();
            let p = dir.join(format!("s{q:02}.dcm"));
            ct_slice(series, 2, 2, iop, pos, q as i64 + 1, 1.0, 0.0, &stored)
                .write(&p, EXPLICIT_LE);
            p
        })
        .collect()
}

fn series_volume(positions: &[[f64; 3]], iop: [f64; 6]) -> Item {
    let dir = tempfile::tempdir().unwrap();
    axial_series(dir.path(), &uid(), iop, positions);
    single_file(dir.path(), &modality())
}

fn z(zs: &[f64]) -> Vec<[f64; 3]> {
    zs.iter().map(|&z| [0.0, 0.0, z]).collect()
}

#[test]
fn a_missing_slice_is_a_gap_warning() {
    // Steps 2, 2, 4, 2: the 4 mm step exceeds 1.5 × the 2 mm median.
    let v = single_vol(&z(&[0.0, 2.0, 4.0, 8.0, 10.0]));
    assert_eq!(v.array.shape(), &[5, 2, 2]);
    assert!(
        has_warning(&v, "missing slices: gap(s) of 4.000 mm after slice 2"),
        "{:?}",
        v.sidecar.warnings
    );
    assert_eq!(v.sidecar.spacing.as_ref().unwrap()[0], Some(2.0));
}

fn single_vol(positions: &[[f64; 3]]) -> Item {
    series_volume(positions, AXIAL)
}

#[test]
fn uneven_spacing_warns_without_calling_it_a_gap() {
    // Steps 2, 2, 2.5, 2: spread 0.5 mm > 1 % of the 2 mm median, but 2.5 < 1.5 × 2.
    let v = single_vol(&z(&[0.0, 2.0, 4.0, 6.5, 8.5]));
    assert!(
        has_warning(&v, "uneven slice spacing"),
        "{:?}",
        v.sidecar.warnings
    );
    assert!(
        !has_warning(&v, "missing slices"),
        "{:?}",
        v.sidecar.warnings
    );
}

#[test]
fn a_duplicate_position_warns_and_keeps_the_first_instance() {
    // Files s01 (instance 2) and s02 (instance 3) share z = 2; the lower Instance Number stays.
    let v = single_vol(&z(&[0.0, 2.0, 2.0, 4.0]));
    assert_eq!(v.array.shape(), &[3, 2, 2]);
    assert!(
        has_warning(&v, "1 slice(s) share a position"),
        "{:?}",
        v.sidecar.warnings
    );
    assert_values(
        &v,
        &[
            0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0, 30.0, 31.0, 32.0, 33.0,
        ],
        0.0,
    );
}

#[test]
fn positions_off_the_normal_are_a_tilt_warning() {
    // Axial plane (n = +z) but each slice origin moves 1 mm in y: a gantry tilt.
    let pos: Vec<[f64; 3]> = (0..4).map(|k| [0.0, -(k as f64), 2.0 * k as f64]).collect();
    let v = single_vol(&pos);
    assert!(
        has_warning(&v, "slice origins drift 3.000 mm off the slice normal"),
        "{:?}",
        v.sidecar.warnings
    );
    assert_eq!(v.sidecar.spacing.as_ref().unwrap()[0], Some(2.0));
}

#[test]
fn two_orientations_in_one_series_split_into_parts() {
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let axial = dir.path().join("axial");
    let coronal = dir.path().join("coronal");
    std::fs::create_dir_all(&axial).unwrap();
    std::fs::create_dir_all(&coronal).unwrap();
    axial_series(&axial, &series, AXIAL, &z(&[0.0, 3.0, 6.0]));
    // Coronal: row (1,0,0), column (0,0,-1), so n = r × c = (0, 1, 0); positions along y.
    let cor = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];
    let ys: Vec<[f64; 3]> = [0.0, 4.0, 8.0, 12.0]
        .iter()
        .map(|&y| [0.0, y, 0.0])
        .collect();
    axial_series(&coronal, &series, cor, &ys);
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(items.len(), 2, "one volume per orientation");
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        vec![format!("series_{series}"), format!("series_{series}_part2")]
    );
    let ax = items
        .iter()
        .find(|i| i.sidecar.direction.unwrap()[2] == [0.0, 0.0, 1.0])
        .expect("axial part");
    let co = items
        .iter()
        .find(|i| i.sidecar.direction.unwrap()[2] == [0.0, 1.0, 0.0])
        .expect("coronal part");
    assert_eq!(ax.array.shape(), &[3, 2, 2]);
    assert_eq!(co.array.shape(), &[4, 2, 2]);
    assert_eq!(ax.sidecar.spacing.as_ref().unwrap()[0], Some(3.0));
    assert_eq!(co.sidecar.spacing.as_ref().unwrap()[0], Some(4.0));
    for i in &items {
        assert!(
            has_warning(i, "series split into 2 parts"),
            "{:?}",
            i.sidecar.warnings
        );
    }
}

#[test]
fn temporal_positions_split_a_4d_series_into_volumes() {
    // 3 positions × 4 time points; Temporal Position Identifier (0020,0100) 1..4, files
    // written in an order that is neither by time nor by position.
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let mut order: Vec<(usize, usize)> = (0..4).flat_map(|t| (0..3).map(move |k| (t, k))).collect();
    order.reverse();
    order.rotate_left(5);
    for (f, &(t, k)) in order.iter().enumerate() {
        // Value at time t, slice k, pixel p: 100·t + 10·k + p.
        let stored: Vec<u16> = (0..4).map(|p| (100 * t + 10 * k + p) as u16).collect();
        let obj = ct_slice(
            &series,
            2,
            2,
            AXIAL,
            [1.0, 2.0, 5.0 * k as f64],
            (f + 1) as i64,
            1.0,
            0.0,
            &stored,
        )
        .is(tags::TEMPORAL_POSITION_IDENTIFIER, &[t as i64 + 1])
        .is(tags::NUMBER_OF_TEMPORAL_POSITIONS, &[4]);
        obj.write(&dir.path().join(format!("f{f:02}.dcm")), EXPLICIT_LE);
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(items.len(), 4);
    for (t, v) in items.iter().enumerate() {
        assert_eq!(v.name, format!("series_{series}_t{t:03}"));
        assert_eq!(v.sidecar.time_point, Some(t));
        assert_eq!(v.sidecar.kind, ItemKind::Volume);
        assert_eq!(v.array.shape(), &[3, 2, 2]);
        assert_eq!(v.sidecar.spacing.as_ref().unwrap()[0], Some(5.0));
        assert!(
            !has_warning(v, "share a position"),
            "{:?}",
            v.sidecar.warnings
        );
        let expected: Vec<f64> = (0..3)
            .flat_map(|k| (0..4).map(move |p| (100 * t + 10 * k + p) as f64))
            .collect();
        assert_values(v, &expected, 0.0);
    }
}

/// Overwrites slice `q` of an `axial_series` with one whose Pixel Data stops after 3 of its
/// 4 samples (6 of 8 bytes): its header still reads, its pixels cannot be decoded.
fn truncate_slice(dir: &Path, series: &str, q: usize, pos: [f64; 3]) -> PathBuf {
    let p = dir.join(format!("s{q:02}.dcm"));
    ct_slice(series, 2, 2, AXIAL, pos, q as i64 + 1, 1.0, 0.0, &[1, 2, 3]).write(&p, EXPLICIT_LE);
    p
}

#[test]
fn an_unreadable_slice_is_its_own_failure_and_the_others_make_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let zs = z(&[0.0, 2.0, 4.0, 6.0, 8.0]);
    let paths = axial_series(dir.path(), &series, AXIAL, &zs);
    let bad = truncate_slice(dir.path(), &series, 2, zs[2]);
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());

    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].source, bad);
    let e = &failures[0].error;
    assert!(e.contains(bad.to_str().unwrap()) && e.contains("truncated") && e.contains("6 bytes present, 8 expected"), "{e}");

    assert_eq!(items.len(), 1);
    let v = &items[0];
    assert_eq!(v.name, format!("series_{series}"));
    assert_eq!(v.sidecar.kind, ItemKind::Volume);
    assert_eq!(v.array.shape(), &[4, 2, 2]);
    // Slice q holds 10·q + pixel; slice 2 is gone.
    let expected: Vec<f64> = [0, 1, 3, 4].iter().flat_map(|&q| (0..4).map(move |p| (10 * q + p) as f64)).collect();
    assert_values(v, &expected, 0.0);
    let kept: Vec<PathBuf> = [0, 1, 3, 4].iter().map(|&q| paths[q].clone()).collect();
    assert_eq!(v.sidecar.source, kept, "sources in array order, without the unreadable slice");
    assert_eq!(v.sidecar.sop_instance_uids.len(), 4);
    let w = &v.sidecar.warnings;
    assert!(has_warning(v, &format!("1 of 5 slice(s) left out because they could not be read, decoded or stacked (see errors.jsonl): {}", bad.display())), "{w:?}");
    // The hole is seen by the spacing check on the positions that remain: 2, 4, 2.
    assert!(has_warning(v, "missing slices: gap(s) of 4.000 mm after slice 1"), "{w:?}");
    assert_eq!(v.sidecar.spacing.as_ref().unwrap()[0], Some(2.0));
    assert_eq!(v.sidecar.origin, Some([0.0, 0.0, 0.0]));
}

#[test]
fn a_series_whose_slices_are_all_unreadable_fails_once_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let zs = z(&[0.0, 2.0, 4.0]);
    axial_series(dir.path(), &series, AXIAL, &zs);
    let bad: Vec<PathBuf> = (0..3).map(|q| truncate_slice(dir.path(), &series, q, zs[q])).collect();
    let (items, mut failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(items.is_empty(), "{} item(s)", items.len());
    failures.sort_by(|a, b| a.source.cmp(&b.source));
    let sources: Vec<PathBuf> = failures.iter().map(|f| f.source.clone()).collect();
    assert_eq!(sources, bad);
    for f in &failures {
        assert!(f.error.contains(f.source.to_str().unwrap()) && f.error.contains("truncated"), "{}", f.error);
    }
}

#[test]
fn one_readable_slice_left_is_a_one_slice_volume() {
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let zs = z(&[0.0, 2.0, 4.0]);
    let paths = axial_series(dir.path(), &series, AXIAL, &zs);
    for q in [0, 2] {
        truncate_slice(dir.path(), &series, q, zs[q]);
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(items.len(), 1);
    let v = &items[0];
    // Same name and kind as the whole volume would have; no slice step is left to measure.
    assert_eq!(v.name, format!("series_{series}"));
    assert_eq!(v.sidecar.kind, ItemKind::Volume);
    assert_eq!(v.array.shape(), &[1, 2, 2]);
    assert_values(v, &[10.0, 11.0, 12.0, 13.0], 0.0);
    assert_eq!(v.sidecar.spacing, Some(vec![None, Some(0.7), Some(0.9)]));
    assert_eq!(v.sidecar.origin, Some(zs[1]));
    assert_eq!(v.sidecar.source, vec![paths[1].clone()]);
    assert!(has_warning(v, "2 of 3 slice(s) left out"), "{:?}", v.sidecar.warnings);
    assert!(!has_warning(v, "missing slices"), "{:?}", v.sidecar.warnings);
}

#[test]
fn a_slice_that_decodes_to_another_form_is_left_out_of_its_volume() {
    // Same Rows, Columns, orientation, spacing and Image Type, so planning stacks it; but it
    // is RGB (3 samples per pixel) among grayscale slices.
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let zs = z(&[0.0, 2.0, 4.0, 6.0]);
    let paths = axial_series(dir.path(), &series, AXIAL, &zs);
    let rgb = dir.path().join("s03.dcm");
    image(CT_IMAGE_STORAGE, "CT", 2, 2, 8, 8, false)
        .text(tags::SERIES_INSTANCE_UID, VR::UI, &series)
        .text(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL")
        .us(tags::SAMPLES_PER_PIXEL, &[3])
        .us(tags::PLANAR_CONFIGURATION, &[0])
        .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB")
        .ds(tags::IMAGE_ORIENTATION_PATIENT, &AXIAL)
        .ds(tags::IMAGE_POSITION_PATIENT, &zs[3])
        .ds(tags::PIXEL_SPACING, &[0.7, 0.9])
        .ob(tags::PIXEL_DATA, &[9; 12])
        .write(&rgb, EXPLICIT_LE);
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].source, rgb);
    assert!(failures[0].error.contains("3 sample(s) per pixel") && failures[0].error.contains("unlike the other slices"), "{}", failures[0].error);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].array.shape(), &[3, 2, 2]);
    assert_eq!(items[0].sidecar.source, paths[..3].to_vec());
}

#[test]
fn a_pixel_spacing_that_is_not_positive_counts_as_missing_for_volumes_and_images() {
    // Series: in-plane spacing 1 mm assumed, with a warning; the slice step is still measured.
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    for (q, z) in [0.0, 2.5, 5.0].into_iter().enumerate() {
        ct_slice(&series, 2, 2, AXIAL, [0.0, 0.0, z], q as i64 + 1, 1.0, 0.0, &[0; 4])
            .ds(tags::PIXEL_SPACING, &[0.0, -0.9])
            .write(&dir.path().join(format!("s{q}.dcm")), EXPLICIT_LE);
    }
    let v = single_file(dir.path(), &modality());
    assert_eq!(v.array.shape(), &[3, 2, 2]);
    assert_eq!(v.sidecar.spacing, Some(vec![Some(2.5), Some(1.0), Some(1.0)]));
    assert!(has_warning(&v, "no Pixel Spacing (0028,0030): in-plane spacing 1 mm assumed"), "{:?}", v.sidecar.warnings);

    // Single image: spacing unknown (null), with a warning.
    let img = single(&ct_slice(&uid(), 2, 2, AXIAL, [0.0; 3], 1, 1.0, 0.0, &[0; 4]).ds(tags::PIXEL_SPACING, &[0.0, 0.0]), EXPLICIT_LE, &modality());
    assert_eq!(img.sidecar.spacing, None);
    assert!(has_warning(&img, "no Pixel Spacing (0028,0030): physical spacing unknown"), "{:?}", img.sidecar.warnings);
}

// ---------------------------------------------------------------------------------------------
// Pixel pipeline on single images (PS3.3 C.7.6.3 Image Pixel Module, C.11 LUTs)

fn ct(rows: u16, cols: u16, bits_stored: u16, signed: bool) -> Obj {
    image(CT_IMAGE_STORAGE, "CT", rows, cols, 16, bits_stored, signed)
}

#[test]
fn bits_stored_12_masks_garbage_above_high_bit_11() {
    // PS3.5 8.1.1: only bits High Bit - Bits Stored + 1 ..= High Bit hold the value; the others
    // may hold anything (overlays in old files).
    let v = [0u16, 1, 2047, 2048, 4095, 1234];
    let garbage = [0xF000u16, 0x1000, 0xA000, 0x5000, 0xF000, 0x8000];
    let words: Vec<u16> = v.iter().zip(garbage).map(|(a, g)| a | g).collect();
    let item = single(
        &pixels16(ct(2, 3, 12, false), &words),
        EXPLICIT_LE,
        &modality(),
    );
    assert_eq!(item.array.shape(), &[2, 3]);
    assert_eq!(item.sidecar.kind, ItemKind::Image);
    assert_values(&item, &[0.0, 1.0, 2047.0, 2048.0, 4095.0, 1234.0], 0.0);
}

#[test]
fn bits_stored_12_in_high_bits_is_shifted_down() {
    // High Bit 15 with Bits Stored 12: the value sits in bits 4..=15 (PS3.5 8.1.1, Fig. D.1-x).
    let v = [0u16, 1, 4095, 100];
    let words: Vec<u16> = v.iter().map(|a| (a << 4) | 0x000F).collect();
    let obj = pixels16(ct(2, 2, 12, false).us(tags::HIGH_BIT, &[15]), &words);
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &[0.0, 1.0, 4095.0, 100.0], 0.0);
}

#[test]
fn signed_12_bit_values_are_sign_extended() {
    // Pixel Representation 1: two's complement in Bits Stored bits (PS3.3 C.7.6.3.1).
    let v = [-2048i16, -1, 0, 1, 2047, -5];
    let words: Vec<u16> = v.iter().map(|&a| (a as u16 & 0x0FFF) | 0xA000).collect();
    let item = single(
        &pixels16(ct(2, 3, 12, true), &words),
        EXPLICIT_LE,
        &modality(),
    );
    assert_values(&item, &[-2048.0, -1.0, 0.0, 1.0, 2047.0, -5.0], 0.0);
}

#[test]
fn rescale_slope_and_intercept_give_modality_values() {
    // PS3.3 C.11.1.1.2: output = Rescale Slope · stored + Rescale Intercept.
    let obj = pixels16(
        ct(1, 4, 16, false)
            .ds(tags::RESCALE_SLOPE, &[0.5])
            .ds(tags::RESCALE_INTERCEPT, &[-100.25]),
        &[0, 3, 1000, 65535],
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &[-100.25, -98.75, 399.75, 32667.25], 0.0);
}

fn lut_item(desc: [u16; 3], data: &[u16]) -> Obj {
    Obj::new()
        .us(tags::LUT_DESCRIPTOR, &desc)
        .ow(tags::LUT_DATA, data)
}

#[test]
fn modality_lut_sequence_maps_and_clamps() {
    // PS3.3 C.11.1.1.1: descriptor [entries, first mapped, bits]; inputs below the first mapped
    // value take the first entry, inputs past the table the last.
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 1, 6, 16, 16, false).seq(
            tags::MODALITY_LUT_SEQUENCE,
            vec![lut_item([4, 10, 16], &[100, 200, 300, 65535])],
        ),
        &[0, 10, 11, 12, 13, 50],
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &[100.0, 100.0, 200.0, 300.0, 65535.0, 65535.0], 0.0);
}

#[test]
fn modality_lut_first_mapped_value_is_signed_for_signed_pixels() {
    // Signed pixels make the descriptor's second value signed: 65534 means -2 (C.11.1.1.1).
    let words: Vec<u16> = [-3i16, -2, -1, 0, 5].iter().map(|&v| v as u16).collect();
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 1, 5, 16, 16, true).seq(
            tags::MODALITY_LUT_SEQUENCE,
            vec![lut_item([3, 65534, 16], &[10, 20, 30])],
        ),
        &words,
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &[10.0, 10.0, 20.0, 30.0, 30.0], 0.0);
}

/// A signed CT image whose stored values are the HU values (slope 1, intercept 0).
fn hu_image(hu: &[i16]) -> Obj {
    let words: Vec<u16> = hu.iter().map(|&v| v as u16).collect();
    pixels16(
        ct(1, hu.len() as u16, 16, true)
            .ds(tags::RESCALE_SLOPE, &[1.0])
            .ds(tags::RESCALE_INTERCEPT, &[0.0]),
        &words,
    )
}

#[test]
fn display_linear_window_uses_the_first_center_and_width() {
    // PS3.3 C.11.2.1.2.1 (LINEAR, y in [0, 1]): x ≤ c - 0.5 - (w-1)/2 → 0; x > c - 0.5 + (w-1)/2
    // → 1; else ((x - (c - 0.5)) / (w - 1) + 0.5). c = 40, w = 400: the band is (-160, 239].
    let obj = hu_image(&[-160, 240, 39, 40, 100, -1000, 239])
        .ds(tags::WINDOW_CENTER, &[40.0, 80.0])
        .ds(tags::WINDOW_WIDTH, &[400.0, 800.0]);
    let item = single(&obj, EXPLICIT_LE, &display());
    assert_eq!(item.sidecar.stage, Stage::Display);
    assert_eq!(item.sidecar.window, Some(Window::linear(40.0, 400.0)));
    let e = |x: f64| (x - 39.5) / 399.0 + 0.5;
    assert_values(
        &item,
        &[0.0, 1.0, e(39.0), e(40.0), e(100.0), 0.0, 1.0],
        1e-7,
    );
}

#[test]
fn display_linear_exact_window() {
    // PS3.3 C.11.2.1.3.2: x ≤ c - w/2 → 0; x > c + w/2 → 1; else (x - c)/w + 0.5.
    let obj = hu_image(&[-50, -25, 0, 25, 50, 51])
        .ds(tags::WINDOW_CENTER, &[0.0])
        .ds(tags::WINDOW_WIDTH, &[100.0])
        .text(tags::VOILUT_FUNCTION, VR::CS, "LINEAR_EXACT");
    let item = single(&obj, EXPLICIT_LE, &display());
    let w = item.sidecar.window.unwrap();
    assert_eq!(w.function, VoiLutFunction::LinearExact);
    assert_values(&item, &[0.0, 0.25, 0.5, 0.75, 1.0, 1.0], 1e-7);
}

#[test]
fn display_sigmoid_window() {
    // PS3.3 C.11.2.1.3.1: y = 1 / (1 + exp(-4 (x - c) / w)); c = 10, w = 20.
    let obj = hu_image(&[10, 20, 0, -30])
        .ds(tags::WINDOW_CENTER, &[10.0])
        .ds(tags::WINDOW_WIDTH, &[20.0])
        .text(tags::VOILUT_FUNCTION, VR::CS, "SIGMOID");
    let item = single(&obj, EXPLICIT_LE, &display());
    assert_eq!(
        item.sidecar.window.unwrap().function,
        VoiLutFunction::Sigmoid
    );
    // exp(-2) = 0.1353352832366127, exp(2) = 7.38905609893065, exp(8) = 2980.957987041728.
    let expected = [
        0.5,
        1.0 / (1.0 + 0.1353352832366127),
        1.0 / (1.0 + 7.38905609893065),
        1.0 / (1.0 + 2980.957987041728),
    ];
    assert_values(&item, &expected, 1e-7);
}

#[test]
fn display_voi_lut_sequence_scales_by_the_entry_range() {
    // PS3.3 C.11.2.1.1: a 16-bit VOI LUT; its output range 0..=65535 becomes [0, 1].
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 1, 5, 16, 16, false).seq(
            tags::VOILUT_SEQUENCE,
            vec![lut_item([4, 0, 16], &[0, 16384, 32768, 65535])],
        ),
        &[0, 1, 2, 3, 9],
    );
    let item = single(&obj, EXPLICIT_LE, &display());
    assert!(item.sidecar.window.is_none());
    assert_values(
        &item,
        &[0.0, 16384.0 / 65535.0, 32768.0 / 65535.0, 1.0, 1.0],
        1e-7,
    );
}

#[test]
fn window_option_and_presets_override_the_file() {
    let obj = hu_image(&[0, 40, 80, 100, 90])
        .ds(tags::WINDOW_CENTER, &[40.0])
        .ds(tags::WINDOW_WIDTH, &[400.0]);
    let given = Options {
        window: Some(parse_window("100,20").unwrap()),
        ..display()
    };
    let item = single(&obj, EXPLICIT_LE, &given);
    assert_eq!(item.sidecar.window, Some(Window::linear(100.0, 20.0)));
    // LINEAR c = 100, w = 20: 0 below 90 (x ≤ 99.5 - 9.5), 1 above 109.
    assert_values(&item, &[0.0, 0.0, 0.0, 0.5 / 19.0 + 0.5, 0.0], 1e-7);
    // The brain preset is c = 40, w = 80 (Radiopaedia, see presets.rs): band (0, 79].
    let brain = Options {
        window: Some(parse_window("brain").unwrap()),
        ..display()
    };
    let item = single(&obj, EXPLICIT_LE, &brain);
    assert_eq!(item.sidecar.window, Some(Window::linear(40.0, 80.0)));
    assert_values(&item, &[0.0, 0.5 / 79.0 + 0.5, 1.0, 1.0, 1.0], 1e-7);
}

#[test]
fn display_without_voi_falls_back_to_min_max() {
    let item = single(&hu_image(&[-10, 0, 30, 20]), EXPLICIT_LE, &display());
    assert!(item.sidecar.window.is_none());
    assert_eq!(
        item.sidecar.voi,
        Some(medvqa_ingest::lut::Voi::MinMax {
            min: -10.0,
            max: 30.0
        })
    );
    assert_values(&item, &[0.0, 0.25, 1.0, 0.75], 1e-7);
}

#[test]
fn monochrome1_is_inverted_so_that_one_is_brightest() {
    // MONOCHROME1: the minimum value is white (PS3.3 C.7.6.3.1.2).
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "CR", 1, 3, 16, 16, false).text(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME1",
        ),
        &[0, 50, 100],
    );
    let item = single(&obj, EXPLICIT_LE, &display());
    assert_values(&item, &[1.0, 0.5, 0.0], 1e-7);
    // The modality stage keeps the stored values as they are.
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &[0.0, 50.0, 100.0], 0.0);
}

fn colour(rows: u16, cols: u16, photometric: &str, planar: u16) -> Obj {
    image(SECONDARY_CAPTURE_STORAGE, "OT", rows, cols, 8, 8, false)
        .us(tags::SAMPLES_PER_PIXEL, &[3])
        .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric)
        .us(tags::PLANAR_CONFIGURATION, &[planar])
}

#[test]
fn rgb_planar_configuration_0_and_1_give_the_same_pixels() {
    // PS3.3 C.7.6.3.1.3: 0 = R1 G1 B1 R2 G2 B2 …; 1 = R1 R2 … G1 G2 … B1 B2 ….
    let (rows, cols) = (2usize, 3usize);
    let px = |p: usize, c: usize| (10 * p + c + 1) as u8;
    let interleaved: Vec<u8> = (0..rows * cols)
        .flat_map(|p| (0..3).map(move |c| px(p, c)))
        .collect();
    let planes: Vec<u8> = (0..3)
        .flat_map(|c| (0..rows * cols).map(move |p| px(p, c)))
        .collect();
    let expected: Vec<f64> = interleaved.iter().map(|&b| b as f64).collect();
    for (planar, data) in [(0, &interleaved), (1, &planes)] {
        let item = single(
            &pixels8(colour(2, 3, "RGB", planar), data),
            EXPLICIT_LE,
            &modality(),
        );
        assert_eq!(item.array.shape(), &[rows, cols, 3], "planar {planar}");
        assert_values(&item, &expected, 0.0);
    }
}

/// PS3.3 C.7.6.3.1.2, YBR_FULL: R = Y + 1.402 (Cr - 128), G = Y - 0.344136 (Cb - 128) -
/// 0.714136 (Cr - 128), B = Y + 1.772 (Cb - 128), 8-bit, limited to 0..=255.
fn ybr_expected(y: f64, cb: f64, cr: f64) -> [f64; 3] {
    let r = y + 1.402 * (cr - 128.0);
    let g = y - 0.344136 * (cb - 128.0) - 0.714136 * (cr - 128.0);
    let b = y + 1.772 * (cb - 128.0);
    [
        r.clamp(0.0, 255.0),
        g.clamp(0.0, 255.0),
        b.clamp(0.0, 255.0),
    ]
}

#[test]
fn ybr_full_becomes_rgb() {
    let data = [100u8, 128, 128, 100, 138, 118, 250, 128, 250, 0, 0, 255];
    let item = single(
        &pixels8(colour(2, 2, "YBR_FULL", 0), &data),
        EXPLICIT_LE,
        &modality(),
    );
    assert_eq!(item.array.shape(), &[2, 2, 3]);
    assert_eq!(item.sidecar.photometric.as_deref(), Some("YBR_FULL"));
    // Worked by hand: (100, 138, 118) → (85.98, 103.7, 117.72); (250, 128, 250) → R clipped to
    // 255, G = 250 - 0.714136·122 = 162.875408, B = 250; (0, 0, 255) → (178.054, 0, 0).
    let expected = [
        100.0, 100.0, 100.0, 85.98, 103.7, 117.72, 255.0, 162.875408, 250.0, 178.054, 0.0, 0.0,
    ];
    for (k, e) in expected.chunks(3).enumerate() {
        let d = &data[3 * k..3 * k + 3];
        let f = ybr_expected(d[0] as f64, d[1] as f64, d[2] as f64);
        for c in 0..3 {
            assert!((f[c] - e[c]).abs() < 1e-9, "hand value {k}/{c}");
        }
    }
    assert_values(&item, &expected, 1e-4);
}

#[test]
fn ybr_full_422_shares_chroma_between_pixel_pairs() {
    // PS3.3 C.7.6.3.1.2, YBR_FULL_422 uncompressed: each pair of pixels is Y1 Y2 Cb Cr.
    let data = [100u8, 110, 138, 118, 120, 130, 128, 128];
    let item = single(
        &pixels8(colour(1, 4, "YBR_FULL_422", 0), &data),
        EXPLICIT_LE,
        &modality(),
    );
    assert_eq!(item.array.shape(), &[1, 4, 3]);
    let expected: Vec<f64> = [
        ybr_expected(100.0, 138.0, 118.0),
        ybr_expected(110.0, 138.0, 118.0),
        ybr_expected(120.0, 128.0, 128.0),
        ybr_expected(130.0, 128.0, 128.0),
    ]
    .concat();
    for (a, b) in expected[..6]
        .iter()
        .zip([85.98, 103.7, 117.72, 95.98, 113.7, 127.72])
    {
        assert!((a - b).abs() < 1e-9);
    }
    assert_values(&item, &expected, 1e-4);
}

fn palette(rows: u16, cols: u16, bits_allocated: u16) -> Obj {
    image(
        SECONDARY_CAPTURE_STORAGE,
        "OT",
        rows,
        cols,
        bits_allocated,
        bits_allocated,
        false,
    )
    .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "PALETTE COLOR")
}

#[test]
fn palette_color_8_bit_tables() {
    // PS3.3 C.7.6.3.1.5: descriptor [entries, first mapped, 8]; 8-bit entries one per byte
    // (two per OW word, little endian), as pydicom and GDCM read them.
    let red = [0u8, 85, 170, 255];
    let green = [255u8, 0, 128, 7];
    let blue = [1u8, 2, 3, 4];
    let obj = pixels8(palette(1, 4, 8), &[0, 1, 2, 3])
        .us(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[4, 0, 8])
        .us(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[4, 0, 8],
        )
        .us(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[4, 0, 8])
        .ow_bytes(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, &red)
        .ow_bytes(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA, &green)
        .ow_bytes(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, &blue);
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_eq!(item.array.shape(), &[1, 4, 3]);
    let expected: Vec<f64> = (0..4)
        .flat_map(|p| [red[p], green[p], blue[p]].map(|v| v as f64))
        .collect();
    assert_values(&item, &expected, 0.0);
    // Display: the 8-bit entry range to [0, 1].
    let item = single(&obj, EXPLICIT_LE, &display());
    let scaled: Vec<f64> = expected.iter().map(|v| v / 255.0).collect();
    assert_values(&item, &scaled, 1e-7);
}

#[test]
fn palette_color_16_bit_tables_with_a_first_mapped_value() {
    // First mapped value 10: index 9 clamps to the first entry, 13 to the last.
    let obj = pixels16(palette(1, 5, 16), &[9, 10, 11, 12, 13])
        .us(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[3, 10, 16],
        )
        .us(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[3, 10, 16],
        )
        .us(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[3, 10, 16],
        )
        .ow(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &[0, 32768, 65535],
        )
        .ow(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &[1000, 2000, 3000],
        )
        .ow(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, &[7, 8, 9]);
    let item = single(&obj, EXPLICIT_LE, &modality());
    let rows = [
        [0.0, 1000.0, 7.0],
        [0.0, 1000.0, 7.0],
        [32768.0, 2000.0, 8.0],
        [65535.0, 3000.0, 9.0],
        [65535.0, 3000.0, 9.0],
    ];
    assert_values(&item, &rows.concat(), 0.0);
}

#[test]
fn segmented_palette_color_tables() {
    // PS3.3 C.7.9.2: opcode 0 = discrete (length, values), 1 = linear (length, end value, from
    // the previous value, excluding it).
    let red = [0u16, 2, 0, 100, 1, 6, 700]; // 0, 100, then 200 … 700
    let green = [0u16, 8, 0, 1000, 2000, 3000, 4000, 5000, 6000, 7000];
    let blue = [0u16, 1, 7000, 1, 7, 0]; // 7000, then 6000 … 0
    let obj = pixels8(palette(1, 8, 8), &[0, 1, 2, 3, 4, 5, 6, 7])
        .us(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[8, 0, 16])
        .us(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[8, 0, 16],
        )
        .us(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[8, 0, 16],
        )
        .ow(tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, &red)
        .ow(
            tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &green,
        )
        .ow(tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, &blue);
    let item = single(&obj, EXPLICIT_LE, &modality());
    let expected: Vec<f64> = (0..8)
        .flat_map(|p| {
            [
                100.0 * p as f64,
                1000.0 * p as f64,
                7000.0 - 1000.0 * p as f64,
            ]
        })
        .collect();
    assert_values(&item, &expected, 0.0);
}

#[test]
fn float_and_double_float_pixel_data() {
    // Float Pixel Data (7FE0,0008) OF and Double Float Pixel Data (7FE0,0009) OD carry the
    // values themselves (PS3.3 C.7.6.3.1.4 / C.7.6.24); no masking, no rescale.
    let base = |tag_bits: u16| {
        Obj::new()
            .text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.30")
            .text(tags::SOP_INSTANCE_UID, VR::UI, &uid())
            .text(tags::SERIES_INSTANCE_UID, VR::UI, &uid())
            .text(tags::MODALITY, VR::CS, "MR")
            .us(tags::SAMPLES_PER_PIXEL, &[1])
            .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
            .us(tags::ROWS, &[2])
            .us(tags::COLUMNS, &[2])
            .us(tags::BITS_ALLOCATED, &[tag_bits])
    };
    let f = [-1.5f32, 0.0, 2.25, 1.0e6];
    let obj = base(32).elem(
        tags::FLOAT_PIXEL_DATA,
        VR::OF,
        PrimitiveValue::F32(f.iter().copied().collect()),
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_eq!(item.array.shape(), &[2, 2]);
    assert_values(&item, &f.map(|v| v as f64), 0.0);
    let d = [-1.5f64, 1.0e-3, 3.0e10, 0.1];
    let obj = base(64).elem(
        tags::DOUBLE_FLOAT_PIXEL_DATA,
        VR::OD,
        PrimitiveValue::F64(d.iter().copied().collect()),
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &d, 0.0);
}

#[test]
fn one_bit_pixels_unpack_least_significant_bit_first() {
    // Bits Allocated 1: a continuous bit stream, first pixel in bit 0 (PS3.5 8.1.1, Annex D),
    // frames not padded to byte boundaries. Two 3×5 frames = 30 bits.
    let bits: Vec<u8> = vec![
        1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, /* frame 2 */ 0, 1, 1, 0, 0, 1, 0, 1, 0,
        1, 0, 0, 0, 1, 1,
    ];
    // Packed by hand: bits 0-7 = 1,0,0,1,1,0,1,0 → 0b0101_1001 = 0x59; bits 8-15 = 1,0,1,1,1,0,0,0 →
    // 0x1D; bits 16-23 = 1,1,0,0,1,0,1,0 → 0x53; bits 24-29 = 1,0,0,0,1,1 → 0x31.
    let packed = [0x59u8, 0x1D, 0x53, 0x31];
    for (byte, chunk) in packed.iter().zip(bits.chunks(8)) {
        let b = chunk
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &v)| acc | (v << i));
        assert_eq!(*byte, b, "hand packing");
    }
    let obj = pixels8(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 3, 5, 1, 1, false).is(tags::NUMBER_OF_FRAMES, &[2]),
        &packed,
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_eq!(item.sidecar.kind, ItemKind::Frames);
    assert_eq!(item.array.shape(), &[2, 3, 5]);
    assert_values(
        &item,
        &bits.iter().map(|&b| b as f64).collect::<Vec<_>>(),
        0.0,
    );
}

fn words32(v: &[u32]) -> Vec<u16> {
    v.iter()
        .flat_map(|&x| [x as u16, (x >> 16) as u16])
        .collect()
}

#[test]
fn thirty_two_bit_unsigned_and_signed_pixels() {
    // Values exactly representable in f32 (4e9 = 0xEE6B2800 has 21 significant bits).
    let u = [0u32, 1, 100_000, 4_000_000_000];
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 32, 32, false),
        &words32(&u),
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &u.map(|v| v as f64), 0.0);
    let s = [-70_000i32, -1, 65_536, 123_456];
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 32, 32, true),
        &words32(&s.map(|v| v as u32)),
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_values(&item, &s.map(|v| v as f64), 0.0);
}

#[test]
fn rle_lossless_16_bit_signed_ct() {
    let hu = [-1000i16, -1, 0, 1, 255, 1024];
    let le: Vec<u8> = hu.iter().flat_map(|v| v.to_le_bytes()).collect();
    // The encoder itself, checked on the 16-bit pair: MSB segment first (PS3.5 G.2).
    let frame = rle_frame(&le, 1, 2);
    assert_eq!(
        u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]),
        2
    );
    let obj = ct(2, 3, 16, true)
        .ds(tags::RESCALE_SLOPE, &[1.0])
        .ds(tags::RESCALE_INTERCEPT, &[0.0])
        .encapsulated(vec![frame]);
    let item = single(&obj, RLE_LOSSLESS, &modality());
    assert!(
        item.sidecar.format.contains(RLE_LOSSLESS),
        "{}",
        item.sidecar.format
    );
    assert_values(&item, &hu.map(|v| v as f64), 0.0);
}

#[test]
fn rle_lossless_rgb_with_literal_and_replicate_runs() {
    // 4 × 40 pixels: R constant (replicate runs over 128 bytes), G a ramp (literal runs over 128
    // bytes), B constant.
    let (rows, cols) = (4usize, 40usize);
    let px: Vec<u8> = (0..rows * cols)
        .flat_map(|p| [7u8, (p % 256) as u8, 200])
        .collect();
    let obj = colour(rows as u16, cols as u16, "RGB", 0).encapsulated(vec![rle_frame(&px, 3, 1)]);
    let item = single(&obj, RLE_LOSSLESS, &modality());
    assert_eq!(item.array.shape(), &[rows, cols, 3]);
    assert_values(
        &item,
        &px.iter().map(|&b| b as f64).collect::<Vec<_>>(),
        0.0,
    );
}

#[test]
fn rle_lossless_32_bit_and_multi_frame() {
    let u = [0u32, 1, 100_000, 4_000_000_000];
    let le: Vec<u8> = u.iter().flat_map(|v| v.to_le_bytes()).collect();
    let obj = image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 32, 32, false)
        .encapsulated(vec![rle_frame(&le, 1, 4)]);
    let item = single(&obj, RLE_LOSSLESS, &modality());
    assert_values(&item, &u.map(|v| v as f64), 0.0);
    // Two 8-bit frames, one fragment each.
    let f0 = [1u8, 2, 3, 4, 5, 6];
    let f1 = [9u8, 9, 9, 9, 8, 7];
    let obj = image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 3, 8, 8, false)
        .is(tags::NUMBER_OF_FRAMES, &[2])
        .encapsulated(vec![rle_frame(&f0, 1, 1), rle_frame(&f1, 1, 1)]);
    let item = single(&obj, RLE_LOSSLESS, &modality());
    assert_eq!(item.array.shape(), &[2, 2, 3]);
    assert_values(
        &item,
        &[f0, f1]
            .concat()
            .iter()
            .map(|&b| b as f64)
            .collect::<Vec<_>>(),
        0.0,
    );
}

#[test]
fn explicit_big_endian_16_and_32_bit() {
    // PS3.5 A.3 (retired but still met): OW words and multi-byte numbers most significant
    // byte first; a 32-bit sample is four bytes MSB first.
    let hu = [-1000i16, 0, 1, 3000];
    let obj = pixels16(
        ct(2, 2, 16, true)
            .ds(tags::RESCALE_SLOPE, &[1.0])
            .ds(tags::RESCALE_INTERCEPT, &[-1024.0]),
        &hu.map(|v| v as u16),
    );
    let item = single(&obj, EXPLICIT_BE, &modality());
    assert_values(&item, &hu.map(|v| v as f64 - 1024.0), 0.0);
    let u = [1u32, 65_536, 100_000, 4_000_000_000];
    // OW words of a 32-bit sample in big endian order: high word first.
    let words: Vec<u16> = u
        .iter()
        .flat_map(|&x| [(x >> 16) as u16, x as u16])
        .collect();
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 2, 2, 32, 32, false),
        &words,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("be32.dcm");
    obj.write(&p, EXPLICIT_BE);
    // The file must really hold the samples MSB first: 4e9 = EE 6B 28 00.
    let bytes = std::fs::read(&p).unwrap();
    assert!(bytes.windows(4).any(|w| w == [0xEE, 0x6B, 0x28, 0x00]));
    assert_values(&single_file(&p, &modality()), &u.map(|v| v as f64), 0.0);
}

#[test]
fn raw_data_sets_without_file_meta_and_files_without_preamble() {
    let hu = [-1024i16, -1, 0, 2000];
    let obj = pixels16(
        ct(2, 2, 16, true)
            .ds(tags::RESCALE_SLOPE, &[1.0])
            .ds(tags::RESCALE_INTERCEPT, &[0.0]),
        &hu.map(|v| v as u16),
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, ts) in [
        ("implicit_raw", IMPLICIT_LE),
        ("explicit_raw", EXPLICIT_LE),
        ("big_raw", EXPLICIT_BE),
    ] {
        let p = dir.path().join(name);
        obj.write_raw(&p, ts);
        let head = std::fs::read(&p).unwrap();
        assert_eq!(
            &head[..2],
            if ts == EXPLICIT_BE {
                &[0x00, 0x08]
            } else {
                &[0x08, 0x00]
            },
            "starts at group 0008"
        );
        let item = single_file(&p, &modality());
        assert!(
            item.sidecar.format.contains(ts),
            "{name}: {}",
            item.sidecar.format
        );
        assert_values(&item, &hu.map(|v| v as f64), 0.0);
    }
    // "DICM" and the meta at byte 0, no 128-byte preamble.
    let full = dir.path().join("full.dcm");
    obj.write(&full, EXPLICIT_LE);
    let bytes = std::fs::read(&full).unwrap();
    let bare = dir.path().join("nopreamble.dcm");
    std::fs::write(&bare, &bytes[128..]).unwrap();
    assert_values(&single_file(&bare, &modality()), &hu.map(|v| v as f64), 0.0);
}

#[test]
fn enhanced_multi_frame_with_per_frame_rescale_and_positions_is_a_volume() {
    // PS3.3 C.7.6.16: Per-frame Functional Groups (Plane Position, Pixel Value Transformation)
    // override the Shared ones (Plane Orientation, Pixel Measures). Frames stored at z = 4, 0, 2
    // with different rescales; the volume must come out at z = 0, 2, 4 with each frame's HU.
    let z = [4.0, 0.0, 2.0];
    let rescale = [(1.0, -1000.0), (2.0, -500.0), (0.5, 10.0)];
    let stored: Vec<u16> = (0..3)
        .flat_map(|f| (0..4).map(move |p| (10 * f + p + 100) as u16))
        .collect();
    let per_frame: Vec<Obj> = (0..3)
        .map(|f| {
            Obj::new()
                .seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![Obj::new().ds(tags::IMAGE_POSITION_PATIENT, &[-50.0, -60.0, z[f]])],
                )
                .seq(
                    tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                    vec![Obj::new()
                        .ds(tags::RESCALE_SLOPE, &[rescale[f].0])
                        .ds(tags::RESCALE_INTERCEPT, &[rescale[f].1])
                        .text(tags::RESCALE_TYPE, VR::LO, "HU")],
                )
                .seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![Obj::new().elem(
                        tags::IN_STACK_POSITION_NUMBER,
                        VR::UL,
                        PrimitiveValue::from(f as u32 + 1),
                    )],
                )
        })
        .collect();
    let shared = Obj::new()
        .seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![Obj::new().ds(tags::IMAGE_ORIENTATION_PATIENT, &AXIAL)],
        )
        .seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![Obj::new()
                .ds(tags::PIXEL_SPACING, &[0.5, 0.25])
                .ds(tags::SLICE_THICKNESS, &[2.0])],
        );
    let obj = pixels16(
        image(ENHANCED_CT_IMAGE_STORAGE, "CT", 2, 2, 16, 16, false)
            .is(tags::NUMBER_OF_FRAMES, &[3])
            .seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared])
            .seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        &stored,
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    let s = &item.sidecar;
    assert_eq!(s.kind, ItemKind::Volume);
    assert_eq!(item.array.shape(), &[3, 2, 2]);
    assert_eq!(s.spacing, Some(vec![Some(2.0), Some(0.5), Some(0.25)]));
    assert_eq!(s.origin, Some([-50.0, -60.0, 0.0]));
    assert_eq!(
        s.direction,
        Some([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    );
    let expected: Vec<f64> = [1usize, 2, 0]
        .iter()
        .flat_map(|&f| (0..4).map(move |p| rescale[f].0 * (10 * f + p + 100) as f64 + rescale[f].1))
        .collect();
    assert_values(&item, &expected, 0.0);
}

#[test]
fn multi_frame_without_positions_is_frames() {
    let stored: Vec<u16> = (0..18).collect();
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "XA", 2, 3, 16, 16, false)
            .is(tags::NUMBER_OF_FRAMES, &[3])
            .ds(tags::PIXEL_SPACING, &[0.25, 0.5])
            .ds(tags::RESCALE_SLOPE, &[1.0])
            .ds(tags::RESCALE_INTERCEPT, &[5.0]),
        &stored,
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_eq!(item.sidecar.kind, ItemKind::Frames);
    assert_eq!(item.array.shape(), &[3, 2, 3]);
    assert_eq!(
        item.sidecar.spacing,
        Some(vec![None, Some(0.25), Some(0.5)])
    );
    assert_values(
        &item,
        &stored.iter().map(|&v| v as f64 + 5.0).collect::<Vec<_>>(),
        0.0,
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness: every bad input is a failure naming the file and the reason, never a panic.

fn failure_for(p: &Path, opts: &Options) -> String {
    let (items, failures) = ingest(&[p.to_path_buf()], opts);
    assert!(items.is_empty(), "{} should fail", p.display());
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].source, p);
    let e = failures[0].error.clone();
    assert!(
        e.contains(&p.display().to_string()),
        "error names the file: {e}"
    );
    e
}

#[test]
fn bad_inputs_fail_cleanly_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // 4×4 16-bit needs 32 bytes; give 20.
    let p = dir.path().join("truncated.dcm");
    pixels16(ct(4, 4, 16, false), &[7; 10]).write(&p, EXPLICIT_LE);
    let e = failure_for(&p, &modality());
    assert!(
        e.contains("truncated") && e.contains("20 bytes present, 32 expected"),
        "{e}"
    );

    let p = dir.path().join("big.dcm");
    pixels16(ct(16, 16, 16, false), &[0; 256]).write(&p, EXPLICIT_LE);
    let limited = Options {
        max_samples: 255,
        ..modality()
    };
    let e = failure_for(&p, &limited);
    assert!(e.contains("256 samples exceeds the limit of 255"), "{e}");

    let p = dir.path().join("norows.dcm");
    let mut obj = pixels16(ct(2, 2, 16, false), &[0; 4]);
    obj.0.remove_element(tags::ROWS);
    obj.write(&p, EXPLICIT_LE);
    let e = failure_for(&p, &modality());
    assert!(e.contains("Rows"), "{e}");

    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "hello, this is not an image\n").unwrap();
    let e = failure_for(&p, &modality());
    assert!(e.contains("not DICOM"), "{e}");

    // A compressed syntax nobody knows, and one known by name but not decodable here.
    for (name, uid, what) in [
        (
            "unknown_ts.dcm",
            "1.2.826.0.1.3680043.99.1",
            "unknown transfer syntax",
        ),
        (
            "htj2k.dcm",
            "1.2.840.10008.1.2.4.201",
            "High-Throughput JPEG 2000",
        ),
    ] {
        let p = dir.path().join(name);
        ct(2, 2, 16, false)
            .encapsulated(vec![vec![1, 2, 3, 4]])
            .write_declared(&p, uid, EXPLICIT_LE);
        let e = failure_for(&p, &modality());
        assert!(e.contains(uid) && e.contains(what), "{e}");
    }
}

#[test]
fn a_jpeg_ls_frame_larger_than_the_header_is_refused_before_decoding() {
    // CharLS sizes its output from the codestream: this 29-byte codestream (SOI, SOF55 with
    // P 16, Y = X = 65535, Nf 1; SOS; EOI) would ask it for 8 GiB, where the data set says 2×2.
    let mut frame = vec![0xFF, 0xD8, 0xFF, 0xF7, 0x00, 0x0B, 16, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0];
    frame.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 0, 0, 0x00, 0x00, 0xFF, 0xD9]);
    let dir = tempfile::tempdir().unwrap();
    for uid in ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"] {
        let p = dir.path().join(format!("jls_{uid}.dcm"));
        ct(2, 2, 16, false)
            .encapsulated(vec![frame.clone()])
            .write_declared(&p, uid, EXPLICIT_LE);
        let e = failure_for(&p, &modality());
        assert!(
            e.contains(uid) && e.contains("JPEG-LS frame 0 declares 65535 columns × 65535 lines × 1 components") && e.contains("= 2 × 2 × 1"),
            "{e}"
        );
    }
}

#[test]
fn written_npy_reads_back_with_the_sidecar_shape() {
    let item = single(&hu_image(&[-1000, 0, 1000]), EXPLICIT_LE, &modality());
    let dir = tempfile::tempdir().unwrap();
    pipeline::write_item(dir.path(), &item).unwrap();
    let (shape, data) =
        medvqa_ingest::npy::read_f32(&dir.path().join(format!("{}.npy", item.name))).unwrap();
    assert_eq!(shape, item.sidecar.shape);
    assert_eq!(data, vec![-1000.0, 0.0, 1000.0]);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("{}.json", item.name))).unwrap(),
    )
    .unwrap();
    assert_eq!(json["shape"], serde_json::json!([1, 3]));
    assert_eq!(json["kind"], "image");
}

// ---------------------------------------------------------------------------------------------
// More orientations and encodings

#[test]
fn feet_first_normal_orders_slices_by_decreasing_z() {
    // Row (1,0,0), column (0,-1,0): n = r × c = (0, 0, -1). "Ascending along n" is descending
    // z, and the origin is the slice with the highest z.
    let flipped = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0];
    let v = series_volume(&z(&[0.0, 2.0, 4.0]), flipped);
    assert_eq!(v.sidecar.direction.unwrap()[2], [0.0, 0.0, -1.0]);
    assert_eq!(v.sidecar.origin, Some([0.0, 0.0, 4.0]));
    assert_eq!(v.sidecar.spacing.as_ref().unwrap()[0], Some(2.0));
    // Slice q (file order, z = 2q) holds 10q + pixel: output is q = 2, 1, 0.
    assert_values(
        &v,
        &[
            20.0, 21.0, 22.0, 23.0, 10.0, 11.0, 12.0, 13.0, 0.0, 1.0, 2.0, 3.0,
        ],
        0.0,
    );
}

#[test]
fn voi_lut_first_mapped_value_is_signed_after_a_negative_intercept() {
    // The VOI LUT input is the Modality LUT output (PS3.3 C.11.2.1.1); with intercept -1024 it
    // is signed, so the descriptor's 64512 means -1024.
    let obj = pixels16(
        ct(1, 4, 16, false)
            .ds(tags::RESCALE_SLOPE, &[1.0])
            .ds(tags::RESCALE_INTERCEPT, &[-1024.0])
            .seq(
                tags::VOILUT_SEQUENCE,
                vec![lut_item([3, 64512, 16], &[0, 30000, 65535])],
            ),
        &[0, 1, 2, 500],
    );
    let item = single(&obj, EXPLICIT_LE, &display());
    assert_values(&item, &[0.0, 30000.0 / 65535.0, 1.0, 1.0], 1e-7);
}

#[test]
fn monochrome1_with_the_file_window() {
    // c = 50, w = 101 (LINEAR): band (-0.5, 99.5], y = (x - 49.5) / 100 + 0.5, then 1 - y:
    // 0 → 1 - 0.005, 25 → 1 - 0.255, 75 → 1 - 0.755, 200 → 1 - 1.
    let obj = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "CR", 1, 4, 16, 16, false)
            .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME1")
            .ds(tags::WINDOW_CENTER, &[50.0])
            .ds(tags::WINDOW_WIDTH, &[101.0]),
        &[0, 25, 75, 200],
    );
    let item = single(&obj, EXPLICIT_LE, &display());
    assert_values(&item, &[0.995, 0.745, 0.245, 0.0], 1e-7);
}

#[test]
fn float_pixel_data_in_big_endian_and_implicit_raw() {
    let f = [-1.5f32, 0.0, 2.25, 1.0e6];
    let obj = Obj::new()
        .text(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.30")
        .text(tags::SOP_INSTANCE_UID, VR::UI, &uid())
        .text(tags::SERIES_INSTANCE_UID, VR::UI, &uid())
        .us(tags::SAMPLES_PER_PIXEL, &[1])
        .text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
        .us(tags::ROWS, &[2])
        .us(tags::COLUMNS, &[2])
        .us(tags::BITS_ALLOCATED, &[32])
        .elem(
            tags::FLOAT_PIXEL_DATA,
            VR::OF,
            PrimitiveValue::F32(f.iter().copied().collect()),
        );
    assert_values(
        &single(&obj, EXPLICIT_BE, &modality()),
        &f.map(|v| v as f64),
        0.0,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("float_raw");
    obj.write_raw(&p, IMPLICIT_LE);
    assert_values(&single_file(&p, &modality()), &f.map(|v| v as f64), 0.0);
}

#[test]
fn deflated_explicit_little_endian() {
    // 1.2.840.10008.1.2.1.99: the data set after the meta is zlib-deflated (PS3.5 A.5).
    let hu = [-1000i16, 0, 1, 3000];
    let obj = hu_image(&hu);
    let item = single(&obj, "1.2.840.10008.1.2.1.99", &modality());
    assert_values(&item, &hu.map(|v| v as f64), 0.0);
}

#[test]
fn a_window_never_applies_to_colour_images() {
    // VOI windows are for grayscale (PS3.3 C.11.2 applies to MONOCHROME1/2 only; colour images
    // bypass the Modality and VOI LUTs, PS3.4 N.2 / Figure N.2-1). A colour image in display
    // stage maps its stored range to [0, 1] whatever --window says.
    let windowed = Options {
        window: Some(parse_window("100,20").unwrap()),
        ..display()
    };
    let data = [100u8, 128, 128, 100, 138, 118, 250, 128, 250, 0, 0, 255];
    let ybr = single(
        &pixels8(colour(2, 2, "YBR_FULL", 0), &data),
        EXPLICIT_LE,
        &windowed,
    );
    let modality_values = single(
        &pixels8(colour(2, 2, "YBR_FULL", 0), &data),
        EXPLICIT_LE,
        &modality(),
    );
    assert!(
        ybr.sidecar.window.is_none(),
        "no window recorded for colour: {:?}",
        ybr.sidecar.window
    );
    let expected: Vec<f64> = values(&modality_values)
        .iter()
        .map(|&v| v as f64 / 255.0)
        .collect();
    assert_values(&ybr, &expected, 1e-6);

    let pal = pixels8(palette(1, 2, 8), &[0, 1])
        .us(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[2, 0, 8])
        .us(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[2, 0, 8],
        )
        .us(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[2, 0, 8])
        .ow_bytes(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, &[0, 255])
        .ow_bytes(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA, &[51, 102])
        .ow_bytes(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, &[255, 0]);
    let item = single(&pal, EXPLICIT_LE, &windowed);
    assert!(
        item.sidecar.window.is_none(),
        "no window recorded for colour: {:?}",
        item.sidecar.window
    );
    assert_values(&item, &[0.0, 0.2, 1.0, 1.0, 0.4, 0.0], 1e-6);
}

#[test]
fn rle_one_bit_frames_start_on_byte_boundaries() {
    // RLE Lossless compresses each frame on its own (PS3.5 A.4.2, G.2), so a decoded 1-bit
    // frame of 15 pixels is 2 bytes and the next frame starts at a byte boundary, unlike the
    // continuous bit stream of native 1-bit data (PS3.5 8.1.1).
    let f0 = [1u8, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0];
    let f1 = [0u8, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1];
    let pack = |bits: &[u8]| -> Vec<u8> {
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, &v)| acc | (v << i))
            })
            .collect()
    };
    let obj = image(SECONDARY_CAPTURE_STORAGE, "OT", 3, 5, 1, 1, false)
        .is(tags::NUMBER_OF_FRAMES, &[2])
        .encapsulated(vec![
            rle_frame(&pack(&f0), 1, 1),
            rle_frame(&pack(&f1), 1, 1),
        ]);
    let item = single(&obj, RLE_LOSSLESS, &modality());
    assert_eq!(item.array.shape(), &[2, 3, 5]);
    let expected: Vec<f64> = f0.iter().chain(&f1).map(|&b| b as f64).collect();
    assert_values(&item, &expected, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Inputs: DICOMDIR, names, time ordering

#[test]
fn a_dicomdir_brings_in_the_files_it_references_and_only_those() {
    // PS3.3 F.3.2.2: Referenced File ID (0004,1500) is the path from the DICOMDIR's folder,
    // one component per value. Media Storage Directory Storage = 1.2.840.10008.1.3.10.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("IMAGES");
    std::fs::create_dir_all(&images).unwrap();
    let series = uid();
    let mut records = Vec::new();
    for k in 0..3 {
        let stored: Vec<u16> = (0..4).map(|p| (10 * k + p) as u16).collect();
        let name = format!("IM{}", 3 - k); // no extension, as on media
        ct_slice(
            &series,
            2,
            2,
            AXIAL,
            [0.0, 0.0, 1.5 * k as f64],
            k as i64 + 1,
            1.0,
            0.0,
            &stored,
        )
        .write(&images.join(&name), EXPLICIT_LE);
        records.push(
            Obj::new()
                .text(tags::DIRECTORY_RECORD_TYPE, VR::CS, "IMAGE")
                .text(tags::REFERENCED_FILE_ID, VR::CS, &format!("IMAGES\\{name}")),
        );
    }
    // A file in the same folder the DICOMDIR does not reference.
    let stray: Vec<u16> = vec![9; 4];
    ct_slice(&uid(), 2, 2, AXIAL, [0.0, 0.0, 0.0], 1, 1.0, 0.0, &stray)
        .write(&images.join("STRAY"), EXPLICIT_LE);
    let dicomdir = dir.path().join("DICOMDIR");
    Obj::new()
        .text(tags::FILE_SET_ID, VR::CS, "PHANTOM")
        .seq(tags::DIRECTORY_RECORD_SEQUENCE, records)
        .write_with_meta(&dicomdir, EXPLICIT_LE, "1.2.840.10008.1.3.10", &uid());
    let (items, failures) = ingest(&[dicomdir], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(items.len(), 1, "one volume, the stray file left out");
    assert_eq!(items[0].name, format!("series_{series}"));
    assert_eq!(items[0].array.shape(), &[3, 2, 2]);
    let expected: Vec<f64> = (0..3)
        .flat_map(|k| (0..4).map(move |p| (10 * k + p) as f64))
        .collect();
    assert_values(&items[0], &expected, 0.0);
}

#[test]
fn same_file_stems_get_unique_names() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        hu_image(&[1, 2]).write(&dir.path().join(sub).join("img.dcm"), EXPLICIT_LE);
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["img", "img-2"]);
}

#[test]
fn time_points_without_temporal_position_order_by_trigger_time() {
    // No Temporal Position Identifier: Trigger Time (0018,1060) orders the repeats at each
    // position (Instance Numbers deliberately reversed).
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    for t in 0..3 {
        for k in 0..2 {
            let stored: Vec<u16> = vec![(100 * t + k) as u16; 4];
            ct_slice(
                &series,
                2,
                2,
                AXIAL,
                [0.0, 0.0, 4.0 * k as f64],
                100 - (2 * t + k) as i64,
                1.0,
                0.0,
                &stored,
            )
            .ds(tags::TRIGGER_TIME, &[250.0 * t as f64])
            .write(&dir.path().join(format!("x{t}{k}.dcm")), EXPLICIT_LE);
        }
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(items.len(), 3);
    for (t, v) in items.iter().enumerate() {
        assert_eq!(v.name, format!("series_{series}_t{t:03}"));
        let expected: Vec<f64> = (0..2).flat_map(|k| [(100 * t + k) as f64; 4]).collect();
        assert_values(v, &expected, 0.0);
    }
}

#[test]
fn file_meta_without_or_with_a_wrong_transfer_syntax_is_read_by_detection() {
    let hu = [-1000i16, -1, 0, 2000];
    let obj = hu_image(&hu);
    let dir = tempfile::tempdir().unwrap();
    // No (0002,0010): the data set's encoding is detected from its first element.
    for (name, encoding) in [
        ("no_ts_implicit.dcm", IMPLICIT_LE),
        ("no_ts_explicit.dcm", EXPLICIT_LE),
    ] {
        let p = dir.path().join(name);
        obj.write_hand_meta(&p, None, encoding);
        let item = single_file(&p, &modality());
        assert!(
            item.sidecar.format.contains(encoding),
            "{name}: {}",
            item.sidecar.format
        );
        assert_values(&item, &hu.map(|v| v as f64), 0.0);
    }
    // The meta says explicit VR, the data set is implicit VR (a common writer bug).
    let p = dir.path().join("wrong_ts.dcm");
    obj.write_hand_meta(&p, Some(EXPLICIT_LE), IMPLICIT_LE);
    let item = single_file(&p, &modality());
    assert_values(&item, &hu.map(|v| v as f64), 0.0);
    assert!(
        has_warning(&item, "not encoded in its declared transfer syntax"),
        "{:?}",
        item.sidecar.warnings
    );
}

#[test]
fn the_same_instances_copied_twice_are_duplicates_not_time_points() {
    // Two copies of one 3-slice series (same SOP Instance UIDs, PS3.3 C.12.1.1.1: one UID, one
    // instance) in two folders: one volume, and a warning, never a 4D series of copies.
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    let a = dir.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    let paths = axial_series(&a, &series, AXIAL, &z(&[0.0, 2.0, 4.0]));
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    for p in &paths {
        std::fs::copy(p, b.join(p.file_name().unwrap())).unwrap();
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec![format!("series_{series}")]);
    assert_eq!(items[0].array.shape(), &[3, 2, 2]);
    assert!(items[0].sidecar.time_point.is_none());
    assert!(
        has_warning(&items[0], "3 file(s) repeat the SOP Instance UID"),
        "{:?}",
        items[0].sidecar.warnings
    );
}

#[test]
fn a_file_reached_twice_is_read_once() {
    // Given explicitly and through its folder: one item, no duplicate-position warning.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.dcm");
    hu_image(&[3, 4]).write(&p, EXPLICIT_LE);
    let (items, failures) = ingest(&[p.clone(), dir.path().to_path_buf(), p], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].name, "one");
}

#[test]
fn luts_and_palettes_survive_every_uncompressed_encoding() {
    // LUT Data (0028,3006) and palette data are OW (words swapped in big endian, VR taken
    // from the dictionary in implicit VR): the same tables must come out of every syntax.
    let lut_image = pixels16(
        image(SECONDARY_CAPTURE_STORAGE, "OT", 1, 4, 16, 16, false).seq(
            tags::MODALITY_LUT_SEQUENCE,
            vec![lut_item([3, 1, 16], &[1000, 2000, 60000])],
        ),
        &[0, 1, 2, 3],
    );
    let pal16 = pixels8(palette(1, 4, 8), &[0, 1, 2, 3])
        .us(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[4, 0, 16])
        .us(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[4, 0, 16],
        )
        .us(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[4, 0, 16],
        )
        .ow(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &[0x0102, 0x0304, 0xFF00, 0x00FF],
        )
        .ow(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &[10, 20, 30, 40],
        )
        .ow(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, &[1, 2, 3, 4]);
    let pal8 = pixels8(palette(1, 4, 8), &[3, 2, 1, 0])
        .us(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[4, 0, 8])
        .us(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            &[4, 0, 8],
        )
        .us(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, &[4, 0, 8])
        .ow_bytes(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, &[1, 2, 3, 4])
        .ow_bytes(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &[10, 20, 30, 40],
        )
        .ow_bytes(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            &[200, 150, 100, 50],
        );
    let dir = tempfile::tempdir().unwrap();
    for ts in [EXPLICIT_LE, EXPLICIT_BE, IMPLICIT_LE] {
        let p = dir.path().join(format!("lut_{ts}"));
        lut_image.write(&p, ts);
        assert_values(
            &single_file(&p, &modality()),
            &[1000.0, 1000.0, 2000.0, 60000.0],
            0.0,
        );
        let p = dir.path().join(format!("pal16_{ts}"));
        pal16.write(&p, ts);
        let expected = [
            258.0, 10.0, 1.0, 772.0, 20.0, 2.0, 65280.0, 30.0, 3.0, 255.0, 40.0, 4.0,
        ];
        assert_values(&single_file(&p, &modality()), &expected, 0.0);
        let p = dir.path().join(format!("pal8_{ts}"));
        pal8.write(&p, ts);
        let expected = [
            4.0, 40.0, 50.0, 3.0, 30.0, 100.0, 2.0, 20.0, 150.0, 1.0, 10.0, 200.0,
        ];
        assert_values(&single_file(&p, &modality()), &expected, 0.0);
    }
}

#[test]
fn rgb_planar_configuration_1_is_per_frame() {
    // PS3.3 C.7.6.3.1.3: with several frames, each frame holds its own three colour planes.
    let frames = [[[1u8, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]];
    let mut planes = Vec::new();
    for f in &frames {
        for c in 0..3 {
            planes.extend(f.iter().map(|px| px[c]));
        }
    }
    let obj = pixels8(
        colour(1, 2, "RGB", 1).is(tags::NUMBER_OF_FRAMES, &[2]),
        &planes,
    );
    let item = single(&obj, EXPLICIT_LE, &modality());
    assert_eq!(item.array.shape(), &[2, 1, 2, 3]);
    let expected: Vec<f64> = frames
        .iter()
        .flatten()
        .flatten()
        .map(|&v| v as f64)
        .collect();
    assert_values(&item, &expected, 0.0);
}

#[test]
fn native_looking_pixel_data_in_an_unknown_transfer_syntax_is_refused() {
    // GE's private 1.2.840.113619.5.2 is implicit VR little endian with big endian pixel data:
    // read as if it were a standard syntax, the pixels would come out byte-swapped without a
    // word. An unknown syntax must be an error naming it, whatever the pixel data looks like.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ge_private.dcm");
    let uid = "1.2.840.113619.5.2";
    hu_image(&[1, 2, 3, 4]).write_declared(&p, uid, IMPLICIT_LE);
    let e = failure_for(&p, &modality());
    assert!(
        e.contains(uid) && e.contains("unsupported transfer syntax"),
        "{e}"
    );
}

#[test]
fn a_dicomdir_record_whose_file_is_missing_fails_alone() {
    // A stale record (a file deleted from the media) is that file's failure; the files the
    // other records reference are still ingested.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("IMAGES");
    std::fs::create_dir_all(&images).unwrap();
    let series = uid();
    let mut records = Vec::new();
    for k in 0..3 {
        let name = format!("IM{k}");
        if k != 1 {
            let stored: Vec<u16> = vec![k as u16; 4];
            ct_slice(
                &series,
                2,
                2,
                AXIAL,
                [0.0, 0.0, 2.0 * k as f64],
                k as i64 + 1,
                1.0,
                0.0,
                &stored,
            )
            .write(&images.join(&name), EXPLICIT_LE);
        }
        records.push(
            Obj::new()
                .text(tags::DIRECTORY_RECORD_TYPE, VR::CS, "IMAGE")
                .text(tags::REFERENCED_FILE_ID, VR::CS, &format!("IMAGES\\{name}")),
        );
    }
    let dicomdir = dir.path().join("DICOMDIR");
    Obj::new()
        .seq(tags::DIRECTORY_RECORD_SEQUENCE, records)
        .write_with_meta(&dicomdir, EXPLICIT_LE, "1.2.840.10008.1.3.10", &uid());
    let (items, failures) = ingest(&[dicomdir], &modality());
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].source, images.join("IM1"));
    assert!(
        failures[0].error.contains("does not exist"),
        "{}",
        failures[0].error
    );
    assert_eq!(items.len(), 1, "the two files present form the series");
    assert_eq!(items[0].array.shape(), &[2, 2, 2]);
    assert_values(&items[0], &[0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0], 0.0);
}

#[test]
fn a_single_position_cine_keeps_every_time_point() {
    // A one-slice cine (MR cardiac cine, CT perfusion at one table position): 5 files at one
    // position, Trigger Time 0..400 ms. Each is a time point; none may be dropped as a
    // "duplicate position".
    let dir = tempfile::tempdir().unwrap();
    let series = uid();
    for t in 0..5 {
        ct_slice(
            &series,
            2,
            2,
            AXIAL,
            [0.0, 0.0, 7.0],
            10 - t as i64,
            1.0,
            0.0,
            &[t as u16; 4],
        )
        .ds(tags::TRIGGER_TIME, &[100.0 * t as f64])
        .write(&dir.path().join(format!("c{t}.dcm")), EXPLICIT_LE);
    }
    let (items, failures) = ingest(&[dir.path().to_path_buf()], &modality());
    assert!(failures.is_empty(), "{failures:?}");
    let all: Vec<f32> = items.iter().flat_map(values).collect();
    for (t, i) in items.iter().enumerate() {
        assert_eq!(i.name, format!("series_{series}_t{t:03}"));
        assert_eq!(
            i.sidecar.spacing,
            Some(vec![None, Some(0.7), Some(0.9)]),
            "no slice step in a one-slice volume"
        );
    }
    assert_eq!(
        all.len(),
        20,
        "every frame of the cine is kept: {:?}",
        items.iter().map(|i| &i.name).collect::<Vec<_>>()
    );
    let expected: Vec<f32> = (0..5).flat_map(|t| [t as f32; 4]).collect();
    assert_eq!(all, expected, "in trigger-time order");
    for i in &items {
        assert!(
            !has_warning(i, "share a position"),
            "{:?}",
            i.sidecar.warnings
        );
    }
}

#[test]
fn rle_ybr_full_is_converted_after_decompression() {
    // RLE keeps YBR_FULL samples as they are (PS3.5 8.2.2); the colour conversion of
    // C.7.6.3.1.2 follows decompression.
    let data = [100u8, 138, 118, 250, 128, 250];
    let obj = colour(1, 2, "YBR_FULL", 0).encapsulated(vec![rle_frame(&data, 3, 1)]);
    let item = single(&obj, RLE_LOSSLESS, &modality());
    let expected = [
        ybr_expected(100.0, 138.0, 118.0),
        ybr_expected(250.0, 128.0, 250.0),
    ]
    .concat();
    assert_values(&item, &expected, 1e-4);
}
