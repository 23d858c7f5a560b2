//! NIfTI reader against nibabel-written fixtures (tools/fixtures/make_nifti.py), broken
//! files, and dcm2niix outputs from ../shared/fixtures when present.

use std::path::{Path, PathBuf};

use medvqa_ingest::nifti::{
    read_nifti, read_nifti_with_limit, Endian, GeometrySource, NiftiVersion,
};
use medvqa_ingest::IngestError;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti")
}

fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    let v: Value = serde_json::from_str(&text).expect("expected.json parses");
    v["cases"].as_array().expect("cases").clone()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

#[test]
fn every_nibabel_fixture_matches_values_and_lps_geometry() {
    let cases = expected();
    assert_eq!(cases.len(), 15);
    for case in &cases {
        let name = case["file"].as_str().expect("file");
        let img = read_nifti(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &img.header;
        let version = if case["version"] == 2 {
            NiftiVersion::Two
        } else {
            NiftiVersion::One
        };
        assert_eq!(h.version, version, "{name}");
        let endian = if case["big_endian"] == true {
            Endian::Big
        } else {
            Endian::Little
        };
        assert_eq!(h.endian, endian, "{name}");
        assert_eq!(Value::from(h.datatype.code()), case["datatype"], "{name}");
        let mut want_dims: Vec<u64> = case["dims"]
            .as_array()
            .expect("dims")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect();
        // A 2D file reads as one slice.
        while want_dims.len() < 3 {
            want_dims.push(1);
        }
        assert_eq!(h.dims, want_dims, "{name}");
        assert_eq!(Value::from(h.sform_code), case["sform_code"], "{name}");
        assert_eq!(Value::from(h.qform_code), case["qform_code"], "{name}");
        assert_eq!(
            format!("{:?}", img.geometry_source),
            case["geometry_source"].as_str().expect("source"),
            "{name}"
        );
        assert!(img.warnings.is_empty(), "{name}: {:?}", img.warnings);

        // The affine, and every voxel's patient position through the Volume geometry.
        let want = &case["affine_lps"];
        for r in 0..4 {
            for c in 0..4 {
                let w = f(&want[r][c]);
                assert!(
                    (img.affine_lps[r][c] - w).abs() < 1e-6 * w.abs().max(1.0),
                    "{name}: affine[{r}][{c}] = {} want {w}",
                    img.affine_lps[r][c]
                );
            }
        }
        let dims = &h.dims;
        let (nx, ny, nz) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
        let n_vol: u64 = dims.iter().skip(3).product();
        assert_eq!(img.volumes.len() as u64, n_vol, "{name}");
        for v in &img.volumes {
            assert_eq!(v.shape(), [nz, ny, nx], "{name}");
            for (s, w) in v
                .spacing
                .iter()
                .zip(case["spacing"].as_array().expect("spacing"))
            {
                assert!((s - f(w)).abs() < 1e-6, "{name}: spacing {:?}", v.spacing);
            }
            for &(k, j, i) in &[(0, 0, 0), (nz - 1, 0, 0), (0, ny - 1, 3), (2, 5, nx - 1)] {
                let p = v.index_to_patient(k as f64, j as f64, i as f64);
                for (a, &got) in p.iter().enumerate() {
                    let w = f(&want[a][0]) * i as f64
                        + f(&want[a][1]) * j as f64
                        + f(&want[a][2]) * k as f64
                        + f(&want[a][3]);
                    assert!(
                        (got - w).abs() < 1e-6 * w.abs().max(1.0),
                        "{name}: position [{k},{j},{i}]"
                    );
                }
            }
        }

        // Values in file order (i fastest) = our [k][j][i] in C order.
        if let Some(rgb) = case["rgb"].as_array() {
            let colour = img.colour.as_ref().expect("colour data");
            assert_eq!(colour.len(), 1);
            assert_eq!(colour[0].shape(), &[nz, ny, nx, 3]);
            for (n, (px, want)) in colour[0]
                .as_slice()
                .expect("standard layout")
                .chunks_exact(3)
                .zip(rgb)
                .enumerate()
            {
                let want: Vec<f32> = want
                    .as_array()
                    .expect("rgb")
                    .iter()
                    .map(|x| f(x) as f32)
                    .collect();
                assert_eq!(px, &want[..], "{name}: voxel {n}");
                let luma = 0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2];
                let got = img.volumes[0].voxels.as_slice().expect("layout")[n];
                assert!((got - luma).abs() < 1e-3, "{name}: luma {n}");
            }
        } else {
            assert!(img.colour.is_none(), "{name}");
            let vols = case["volumes"].as_array().expect("volumes");
            assert_eq!(vols.len(), img.volumes.len(), "{name}");
            for (t, (v, want)) in img.volumes.iter().zip(vols).enumerate() {
                let got = v.voxels.as_slice().expect("standard layout");
                let want = want.as_array().expect("values");
                assert_eq!(got.len(), want.len(), "{name}");
                for (n, (g, w)) in got.iter().zip(want).enumerate() {
                    let w = f(w);
                    assert!(
                        (f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0),
                        "{name}: volume {t} voxel {n}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn scaled_fixture_really_is_scaled_and_pairs_open_from_either_file() {
    let img = read_nifti(fixtures().join("scaled.nii")).expect("scaled");
    assert_eq!((img.header.scl_slope, img.header.scl_inter), (0.5, -10.0));
    // Raw voxel [0,0,0] of the int16 ramp is -200 → 0.5·(−200) − 10.
    assert_eq!(img.volumes[0].voxels[[0, 0, 0]], -110.0);

    let from_hdr = read_nifti(fixtures().join("pair.hdr")).expect("pair.hdr");
    let from_img = read_nifti(fixtures().join("pair.img")).expect("pair.img");
    assert_eq!(from_hdr.header.magic, "ni1");
    assert_eq!(
        from_hdr.files,
        vec![fixtures().join("pair.hdr"), fixtures().join("pair.img")]
    );
    assert_eq!(from_hdr.volumes, from_img.volumes);

    let ext = read_nifti(fixtures().join("oblique_sform.nii")).expect("oblique");
    assert!(
        ext.header.vox_offset > 352,
        "the extension fixture must push vox_offset"
    );
}

fn copy_to(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = fixture_bytes("oblique_sform.nii");

    let p = copy_to(dir.path(), "cut_data.nii", &full[..full.len() - 100]);
    match read_nifti(&p) {
        Err(e @ IngestError::Truncated { .. }) => {
            assert!(e.to_string().contains("cut_data.nii"), "{e}")
        }
        other => panic!("expected Truncated, got {other:?}"),
    }

    let p = copy_to(dir.path(), "cut_header.nii", &full[..200]);
    let e = read_nifti(&p).expect_err("short header");
    assert!(matches!(e, IngestError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("cut_header.nii"), "{e}");

    // Compressed: the gzip stream itself ends early, at several cut points.
    let gz = fixture_bytes("fourd.nii.gz");
    for cut in [10, 100, gz.len() / 2, gz.len() - 9] {
        let p = copy_to(dir.path(), "cut.nii.gz", &gz[..cut]);
        let e = read_nifti(&p).expect_err("truncated gzip");
        assert!(e.to_string().contains("cut.nii.gz"), "cut {cut}: {e}");
    }

    let p = copy_to(dir.path(), "empty.nii", &[]);
    assert!(matches!(
        read_nifti(&p),
        Err(IngestError::UnknownFormat { .. })
    ));
}

#[test]
fn declared_sizes_beyond_the_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = fixture_bytes("method1.nii");
    // dim[1..=3] = 32767 (nifti1.h offset 40, int16 little endian).
    for d in 1..=3 {
        bytes[40 + 2 * d..42 + 2 * d].copy_from_slice(&32767i16.to_le_bytes());
    }
    let p = copy_to(dir.path(), "huge.nii", &bytes);
    match read_nifti(&p) {
        Err(IngestError::TooLarge { voxels, .. }) => assert_eq!(voxels, 32767u64.pow(3)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let e = read_nifti_with_limit(fixtures().join("fourd.nii.gz"), 1000).expect_err("limit");
    assert!(
        matches!(
            e,
            IngestError::TooLarge {
                voxels: 1440,
                limit: 1000,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn malformed_headers_give_clean_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = fixture_bytes("method1.nii");

    let mut complex = good.clone();
    complex[70..72].copy_from_slice(&32i16.to_le_bytes());
    let e = read_nifti(copy_to(dir.path(), "complex.nii", &complex)).expect_err("complex");
    assert!(e.to_string().contains("complex"), "{e}");

    let mut analyze = good.clone();
    analyze[344..348].copy_from_slice(&[0, 0, 0, 0]);
    let e = read_nifti(copy_to(dir.path(), "analyze.nii", &analyze)).expect_err("analyze");
    assert!(e.to_string().contains("Analyze"), "{e}");

    let mut bad_dim = good.clone();
    bad_dim[40..42].copy_from_slice(&9i16.to_le_bytes());
    let e = read_nifti(copy_to(dir.path(), "dim0.nii", &bad_dim)).expect_err("dim0");
    assert!(e.to_string().contains("dim[0]"), "{e}");

    let mut zero_dim = good.clone();
    zero_dim[44..46].copy_from_slice(&0i16.to_le_bytes());
    assert!(read_nifti(copy_to(dir.path(), "zero.nii", &zero_dim)).is_err());

    let mut v2 = fixture_bytes("nifti2.nii");
    v2[8] = b'\n'; // text-mode mangling of the "\r\n\x1a\n" check bytes
    let e = read_nifti(copy_to(dir.path(), "mangled.nii", &v2)).expect_err("mangled");
    assert!(e.to_string().contains("altered"), "{e}");

    let p = copy_to(dir.path(), "lonely.hdr", &fixture_bytes("pair.hdr"));
    let e = read_nifti(&p).expect_err("missing .img");
    assert!(
        e.to_string().contains("lonely.hdr") && e.to_string().contains(".img"),
        "{e}"
    );

    let p = copy_to(dir.path(), "noise.nii", &[7u8; 600]);
    assert!(matches!(
        read_nifti(&p),
        Err(IngestError::UnknownFormat { .. })
    ));
}

/// dcm2niix conversions in ../shared/fixtures: dims, datatype and voxel sums (from nibabel
/// 5.4.2 on the same files), and the sform and qform of each file must agree, which checks
/// our quaternion maths on real headers.
#[test]
fn dcm2niix_reference_outputs_read_sanely() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/dicom");
    let nih = root.join("dcm_qa_nih/Ref");
    let ts = root.join("dcm_qa_ts/Ref");
    if !nih.is_dir() || !ts.is_dir() {
        eprintln!("SKIP: {} or {} absent", nih.display(), ts.display());
        return;
    }
    let cases: &[(&Path, &str, [u64; 4], f64)] = &[
        (
            &nih,
            "DCM2NIIX_regression_test_4.nii",
            [64, 64, 15, 10],
            348072471.0,
        ),
        (
            &nih,
            "DCM2NIIX_regression_test_5.nii",
            [64, 64, 15, 10],
            338798030.0,
        ),
        (
            &nih,
            "DCM2NIIX_regression_test_6.nii",
            [64, 64, 15, 10],
            332521780.0,
        ),
        (
            &nih,
            "DCM2NIIX_regression_test_7.nii",
            [64, 64, 15, 10],
            333667756.0,
        ),
        (&nih, "EPI_PE=AP_3.nii", [72, 72, 5, 2], 10219069.0),
        (&nih, "EPI_PE=LR_6.nii", [72, 72, 5, 2], 10258863.0),
        (&nih, "EPI_PE=PA_4.nii", [72, 72, 5, 2], 10252365.0),
        (&nih, "EPI_PE=RL_5.nii", [72, 72, 5, 2], 10197099.0),
    ];
    let mut read = 0;
    for &(dir, name, dims, sum) in cases {
        let img = read_nifti(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(img.header.dims, dims.to_vec(), "{name}");
        assert_eq!(img.volumes.len() as u64, dims[3], "{name}");
        let total: f64 = img
            .volumes
            .iter()
            .flat_map(|v| v.voxels.iter())
            .map(|&x| f64::from(x))
            .sum();
        assert_eq!(total, sum, "{name}");
        check_sform_matches_qform(&img, name);
        // pixdim (nibabel get_zooms): GE EPI 3.75 × 3.75 × 5 mm, Siemens EPI 3 × 3 × 12 mm.
        let want = if dims[0] == 64 {
            [5.0, 3.75, 3.75]
        } else {
            [12.0, 3.0, 3.0]
        };
        for (got, want) in img.volumes[0].spacing.iter().zip(want) {
            assert!(
                (got - want).abs() < 1e-3,
                "{name}: {:?}",
                img.volumes[0].spacing
            );
        }
        read += 1;
    }
    let first = read_nifti(ts.join("1.nii")).expect("1.nii");
    for n in 1..=9 {
        let name = format!("{n}.nii");
        let img = read_nifti(ts.join(&name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(img.header.dims, vec![64, 64, 35], "{name}");
        let v = &img.volumes[0];
        let total: f64 = v.voxels.iter().map(|&x| f64::from(x)).sum();
        assert_eq!(total, 38036663.0, "{name}");
        assert!(
            (v.spacing[0] - 3.6).abs() < 1e-4 && (v.spacing[1] - 3.25).abs() < 1e-4,
            "{name}: {:?}",
            v.spacing
        );
        assert_eq!(img.volumes, first.volumes, "{name} differs from 1.nii");
        check_sform_matches_qform(&img, &name);
        read += 1;
    }
    eprintln!("read {read} dcm2niix NIfTI files");
}

fn check_sform_matches_qform(img: &medvqa_ingest::nifti::NiftiImage, name: &str) {
    assert_eq!(img.geometry_source, GeometrySource::Sform, "{name}");
    let s = img.header.affine_lps(GeometrySource::Sform);
    let q = img.header.affine_lps(GeometrySource::Qform);
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (s[r][c] - q[r][c]).abs() < 1e-3,
                "{name}: sform {s:?} vs qform {q:?}"
            );
        }
    }
}

/// Deterministic mutation smoke test: thousands of headers with random bytes overwritten
/// (and random cuts) must each give an image or an error, never a panic or a hang.
#[test]
fn mutated_files_never_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64 (Marsaglia 2003).
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut outcomes = [0usize; 2];
    for name in [
        "oblique_sform.nii",
        "nifti2_be.nii",
        "fourd.nii.gz",
        "rgb.nii",
        "qform_only.nii",
    ] {
        let original = fixture_bytes(name);
        for round in 0..400 {
            let mut bytes = original.clone();
            let header_len = 540.min(bytes.len());
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % header_len;
                bytes[at] = next() as u8;
            }
            if round % 5 == 0 {
                let cut = (next() as usize) % bytes.len();
                bytes.truncate(cut);
            }
            let p = copy_to(dir.path(), name, &bytes);
            let result = std::panic::catch_unwind(|| read_nifti_with_limit(&p, 1 << 20));
            match result {
                Ok(Ok(_)) => outcomes[0] += 1,
                Ok(Err(e)) => {
                    assert!(e.to_string().contains(name), "{e}");
                    outcomes[1] += 1
                }
                Err(_) => panic!("{name} round {round}: reader panicked"),
            }
        }
    }
    eprintln!("mutations: {} read, {} rejected", outcomes[0], outcomes[1]);
    assert!(outcomes[0] > 0 && outcomes[1] > 0);
}
