//! Series assembly on real scanner data from `../shared/fixtures/dicom/` (skipped with a
//! message when absent):
//! - the four GE EPI series of dcm_qa_nih (150 single-slice files = 15 positions × 10 time
//!   points, four slice orders) against dcm2niix's NIfTI conversions, voxel for voxel;
//! - the nine transfer syntaxes of dcm_qa_ts decode to identical pixels;
//! - pydicom's dicomdirtests: descending z comes out ascending, a gap warns, a folder mixing
//!   MR series splits into its series.
//!
//! Axis mapping with dcm2niix: both sides become `Volume`s (ours from DICOM, theirs read from
//! the NIfTI with its sform converted to LPS) and are reoriented to the canonical LPS code
//! (columns → Left, rows → Posterior, slices → Superior) by `resample::reorient`, which only
//! permutes and flips axes. After that the arrays must be equal element for element and the
//! geometry must agree to 1e-3 mm. dcm2niix flips the row axis and may store slices in the
//! opposite order; the canonical reorientation undoes both, because it goes by geometry.

use std::path::{Path, PathBuf};

use medvqa_ingest::pipeline::{self, Item, Options};
use medvqa_ingest::resample::reorient;
use medvqa_ingest::Volume;

fn fixtures() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/dicom");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is absent; real-series tests not run", p.display());
        None
    }
}

fn ingest(inputs: &[PathBuf]) -> (Vec<Item>, Vec<pipeline::Failure>) {
    let plan = pipeline::plan(inputs);
    let names = pipeline::names(&plan.jobs);
    let mut items = Vec::new();
    let mut failures = plan.failures;
    for (job, name) in plan.jobs.iter().zip(&names) {
        let out = pipeline::run_job(job, name, &Options::default());
        items.extend(out.items);
        failures.extend(out.failures);
    }
    (items, failures)
}

fn as_volume(item: &Item) -> Volume {
    let s = item.array.shape();
    let sp = item.sidecar.spacing.as_ref().unwrap();
    Volume {
        voxels: item.array.clone().into_shape_with_order((s[0], s[1], s[2])).unwrap(),
        spacing: [sp[0].unwrap(), sp[1].unwrap(), sp[2].unwrap()],
        origin: item.sidecar.origin.unwrap(),
        direction: item.sidecar.direction.unwrap(),
    }
}

#[test]
fn ge_epi_series_match_dcm2niix_voxel_for_voxel() {
    let Some(root) = fixtures() else { return };
    let nih = root.join("dcm_qa_nih");
    for series in 4..=7 {
        let (items, failures) = ingest(&[nih.join(format!("In/20180918GE/mr_{series:04}"))]);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(items.len(), 10, "mr_{series:04}: 10 time points expected");
        let reference = medvqa_ingest::nifti::read_nifti(nih.join(format!("Ref/DCM2NIIX_regression_test_{series}.nii"))).unwrap();
        assert_eq!(reference.volumes.len(), 10);
        for (t, (item, theirs)) in items.iter().zip(&reference.volumes).enumerate() {
            assert_eq!(item.sidecar.time_point, Some(t));
            assert_eq!(item.array.shape(), &[15, 64, 64]);
            let ours = reorient(&as_volume(item), "LPS").unwrap();
            let theirs = reorient(theirs, "LPS").unwrap();
            assert_eq!(ours.voxels.shape(), theirs.voxels.shape());
            let diff = ours.voxels.iter().zip(theirs.voxels.iter()).filter(|(a, b)| a != b).count();
            assert_eq!(diff, 0, "mr_{series:04} t={t}: {diff} voxels differ from dcm2niix");
            for a in 0..3 {
                assert!((ours.origin[a] - theirs.origin[a]).abs() < 1e-3, "origin {:?} vs {:?}", ours.origin, theirs.origin);
                assert!((ours.spacing[a] - theirs.spacing[a]).abs() < 1e-3, "spacing {:?} vs {:?}", ours.spacing, theirs.spacing);
                for b in 0..3 {
                    assert!((ours.direction[a][b] - theirs.direction[a][b]).abs() < 1e-4);
                }
            }
        }
    }
}

#[test]
fn nine_transfer_syntaxes_decode_to_identical_pixels() {
    let Some(root) = fixtures() else { return };
    let files: Vec<PathBuf> = (1..=9).map(|i| root.join(format!("dcm_qa_ts/In/{i}.dcm"))).collect();
    let mut arrays = Vec::new();
    for f in &files {
        let (items, failures) = ingest(std::slice::from_ref(f));
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(items.len(), 1);
        arrays.push(items.into_iter().next().unwrap().array);
    }
    assert_eq!(arrays[0].shape(), &[384, 384]);
    for (i, a) in arrays.iter().enumerate().skip(1) {
        assert!(a == &arrays[0], "{} differs from {}", files[i].display(), files[0].display());
    }
    let max = arrays[0].iter().cloned().fold(f32::MIN, f32::max);
    assert_eq!(max, 2362.0); // the value pydicom reports for all nine
}

#[test]
fn dicomdir_series_sort_ascending_warn_on_gaps_and_split_mixed_folders() {
    let Some(root) = fixtures() else { return };
    let dd = root.join("pydicom_test_files/test_files/dicomdirtests");

    // 98892001/CT5N: files stored with z descending.
    let (items, failures) = ingest(&[dd.join("98892001/CT5N")]);
    assert!(failures.is_empty(), "{failures:?}");
    let vols: Vec<&Item> = items.iter().filter(|i| i.array.ndim() == 3).collect();
    assert_eq!(vols.len(), 1);
    let v = vols[0];
    let n = v.sidecar.direction.unwrap()[2];
    // Slice positions along the normal, from the sources in array order, must ascend.
    let positions: Vec<f64> = v
        .sidecar
        .source
        .iter()
        .map(|p| {
            let src = medvqa_ingest::dicom::open(p, medvqa_ingest::dicom::ReadExtent::Header).unwrap();
            let ipp = medvqa_ingest::dicom::attrs::floats(src.dataset(), dicom_dictionary_std::tags::IMAGE_POSITION_PATIENT).unwrap();
            ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2]
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[1] > w[0]), "{positions:?}");
    let mut by_name = v.sidecar.source.clone();
    by_name.sort();
    assert_ne!(by_name, v.sidecar.source, "file order already ascending: the fixture no longer tests sorting");

    // 77654033/CT2: a gap in z.
    let (items, _) = ingest(&[dd.join("77654033/CT2")]);
    let warned = items.iter().any(|i| i.sidecar.warnings.iter().any(|w| w.contains("missing slices")));
    assert!(warned, "{:?}", items.iter().map(|i| &i.sidecar.warnings).collect::<Vec<_>>());

    // 98892003/MR2: three series in one folder; nothing may mix series.
    let (items, failures) = ingest(&[dd.join("98892003/MR2")]);
    assert!(failures.is_empty(), "{failures:?}");
    let uids: std::collections::BTreeSet<_> = items.iter().filter_map(|i| i.sidecar.series_instance_uid.clone()).collect();
    assert_eq!(uids.len(), 3);
    let sources: usize = items.iter().map(|i| i.sidecar.source.len()).sum();
    assert_eq!(sources, 7, "every file in exactly one item");
}

#[test]
fn every_pydicom_test_file_ingests_or_fails_cleanly() {
    let Some(root) = fixtures() else { return };
    let (items, failures) = ingest(&[root.join("pydicom_test_files")]);
    assert!(items.len() > 80, "{} items", items.len());
    for f in &failures {
        // The message names the file it is about.
        let name = f.source.file_name().unwrap().to_string_lossy().to_string();
        assert!(f.error.contains(&name), "{} → {}", f.source.display(), f.error);
    }
    let failed: Vec<String> = failures.iter().map(|f| f.source.file_name().unwrap().to_string_lossy().to_string()).collect();
    assert!(failed.contains(&"badVR.dcm".to_string()), "badVR.dcm should fail: {failed:?}");
    // MR_truncated.dcm shares its series and position with the other MR_small copies, so in a
    // folder run it is a duplicate slice; alone it must fail on its truncated pixel data.
    let (_, alone) = ingest(&[root.join("pydicom_test_files/test_files/MR_truncated.dcm")]);
    assert!(alone.len() == 1 && alone[0].error.contains("truncated"), "{alone:?}");
    for fine in ["MR_small_bigendian.dcm", "rtdose_rle.dcm", "SC_rgb_rle_32bit.dcm", "JPGExtended.dcm", "SC_rgb_jpeg.dcm"] {
        assert!(!failed.contains(&fine.to_string()), "{fine} should ingest: {:?}", failures.iter().find(|f| f.source.ends_with(fine)));
    }
}
