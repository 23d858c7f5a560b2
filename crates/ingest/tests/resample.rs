//! Resampling and reorientation on analytic phantoms.

use medvqa_ingest::resample::{
    orientation_code, output_shape, reorient, resample_to_spacing, CANONICAL,
};
use medvqa_ingest::volume::{cross, dot};
use medvqa_ingest::{IngestError, Volume};
use ndarray::Array3;

/// An oblique, anisotropic volume whose value is a linear function of the patient
/// position: f(p) = 3 + 0.5·x − 0.25·y + 2·z.
fn linear_phantom(
    shape: [usize; 3],
    spacing: [f64; 3],
    direction: [[f64; 3]; 3],
) -> (Volume, impl Fn([f64; 3]) -> f64) {
    let f = |p: [f64; 3]| 3.0 + 0.5 * p[0] - 0.25 * p[1] + 2.0 * p[2];
    let mut v = Volume {
        voxels: Array3::zeros(shape),
        spacing,
        origin: [-12.5, 40.0, 7.0],
        direction,
    };
    let values = Array3::from_shape_fn(shape, |(k, j, i)| {
        f(v.index_to_patient(k as f64, j as f64, i as f64)) as f32
    });
    v.voxels = values;
    (v, f)
}

fn rotated_direction() -> [[f64; 3]; 3] {
    // Rows of a rotation (30° about z then 20° about x), so the axes are oblique.
    let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let (c2, s2) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
    let row = [c, s, 0.0];
    let col = [-s * c2, c * c2, s2];
    [row, col, cross(row, col)]
}

#[test]
fn output_extent_rule() {
    // n_out = floor((n-1)·s_in/s_out) + 1 on each axis.
    assert_eq!(
        output_shape([10, 20, 30], [2.0, 1.0, 0.5], [1.0, 1.0, 1.0]),
        [19, 20, 15]
    );
    assert_eq!(
        output_shape([5, 1, 7], [3.0, 1.0, 1.0], [2.0, 0.3, 3.0]),
        [7, 1, 3]
    );
    // 0.1·3 / 0.3 is 0.9999999999999999 in floating point; the tolerance keeps it 2.
    assert_eq!(
        output_shape([4, 4, 4], [0.1, 0.1, 0.1], [0.3, 0.3, 0.3]),
        [2, 2, 2]
    );
}

#[test]
fn trilinear_reproduces_a_linear_field_exactly() {
    let (v, f) = linear_phantom([7, 9, 11], [2.5, 0.8, 1.3], rotated_direction());
    for target in [[1.0, 1.0, 1.0], [0.7, 2.1, 0.45], [5.0, 0.8, 2.6]] {
        let out = resample_to_spacing(&v, target).expect("resample");
        assert_eq!(out.shape(), output_shape(v.shape(), v.spacing, target));
        assert_eq!(out.origin, v.origin);
        assert_eq!(out.direction, v.direction);
        assert_eq!(out.spacing, target);
        let mut worst = 0f64;
        for ((k, j, i), &got) in out.voxels.indexed_iter() {
            let want = f(out.index_to_patient(k as f64, j as f64, i as f64));
            worst = worst.max((f64::from(got) - want).abs());
        }
        assert!(worst < 1e-4, "target {target:?}: max error {worst}");
        // The grid never extrapolates: the last output centre lies within the input span.
        let [ns, nr, nc] = out.shape();
        let last_out = [
            (ns - 1) as f64 * target[0],
            (nr - 1) as f64 * target[1],
            (nc - 1) as f64 * target[2],
        ];
        let [ms, mr, mc] = v.shape();
        let last_in = [
            (ms - 1) as f64 * v.spacing[0],
            (mr - 1) as f64 * v.spacing[1],
            (mc - 1) as f64 * v.spacing[2],
        ];
        for a in 0..3 {
            assert!(last_out[a] <= last_in[a] + 1e-9 && last_out[a] > last_in[a] - target[a]);
        }
    }
}

#[test]
fn same_spacing_is_identity_and_interpolation_is_between_neighbours() {
    let (v, _) = linear_phantom([3, 4, 5], [1.0, 2.0, 3.0], rotated_direction());
    let same = resample_to_spacing(&v, v.spacing).expect("identity");
    assert_eq!(same, v);

    // A step edge: trilinear never overshoots.
    let mut step = v.clone();
    step.voxels = Array3::from_shape_fn([3, 4, 5], |(_, _, i)| if i < 2 { 0.0 } else { 100.0 });
    let out = resample_to_spacing(&step, [1.0, 2.0, 0.75]).expect("step");
    assert!(out.voxels.iter().all(|&x| (0.0..=100.0).contains(&x)));
    // Midway between columns 1 and 2 (at 4.5 mm = output column 6) is exactly 50.
    assert_eq!(out.voxels[[0, 0, 6]], 50.0);
}

#[test]
fn invalid_spacings_and_huge_outputs_are_errors() {
    let (v, _) = linear_phantom([3, 4, 5], [1.0, 1.0, 1.0], rotated_direction());
    for bad in [[0.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, f64::NAN]] {
        assert!(matches!(
            resample_to_spacing(&v, bad),
            Err(IngestError::Invalid { .. })
        ));
    }
    assert!(matches!(
        resample_to_spacing(&v, [1e-4, 1e-4, 1e-4]),
        Err(IngestError::Invalid { .. })
    ));
}

/// Every voxel of `out` must hold the value of the voxel of `v` at the same patient
/// position, found independently by inverting `v`'s geometry.
fn assert_same_voxels_same_positions(v: &Volume, out: &Volume) {
    assert_eq!(out.voxels.len(), v.voxels.len());
    let axes = [
        v.direction[2].map(|x| x * v.spacing[0]),
        v.direction[1].map(|x| x * v.spacing[1]),
        v.direction[0].map(|x| x * v.spacing[2]),
    ];
    // Inverse of the 3×3 [axes] matrix through the cofactors (triple products).
    let det = dot(axes[0], cross(axes[1], axes[2]));
    let inv_rows = [
        cross(axes[1], axes[2]),
        cross(axes[2], axes[0]),
        cross(axes[0], axes[1]),
    ];
    for ((k, j, i), &value) in out.voxels.indexed_iter() {
        let p = out.index_to_patient(k as f64, j as f64, i as f64);
        let d = [p[0] - v.origin[0], p[1] - v.origin[1], p[2] - v.origin[2]];
        let idx: Vec<f64> = inv_rows.iter().map(|r| dot(*r, d) / det).collect();
        let rounded: Vec<usize> = idx
            .iter()
            .map(|&x| {
                assert!(
                    (x - x.round()).abs() < 1e-9,
                    "position {p:?} is not on the input grid ({idx:?})"
                );
                x.round() as usize
            })
            .collect();
        assert_eq!(
            value,
            v.voxels[[rounded[0], rounded[1], rounded[2]]],
            "voxel [{k},{j},{i}]"
        );
    }
}

#[test]
fn reorient_keeps_every_voxel_at_its_patient_position() {
    let shape = [4, 5, 6];
    let unique = Array3::from_shape_fn(shape, |(k, j, i)| (100 * k + 10 * j + i) as f32);
    let directions: Vec<[[f64; 3]; 3]> = vec![
        // Axial LPS already.
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        // Sagittal: columns → posterior, rows → inferior, slices → right.
        [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]],
        // Coronal with a descending slice order: columns → right, rows → inferior, slices → anterior.
        [[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]],
        rotated_direction(),
    ];
    for direction in directions {
        let v = Volume {
            voxels: unique.clone(),
            spacing: [3.0, 0.7, 1.1],
            origin: [10.0, -20.0, 30.0],
            direction,
        };
        for code in ["LPS", "RAS", "lpi", "SAL", "PIR", "ASL"] {
            let out = reorient(&v, code).expect("reorient");
            assert_eq!(
                orientation_code(&out),
                code.to_uppercase(),
                "from {:?}",
                orientation_code(&v)
            );
            assert_same_voxels_same_positions(&v, &out);
            // Round trip back to the original code gives the original volume.
            let back = reorient(&out, &orientation_code(&v)).expect("back");
            assert_eq!(back.voxels, v.voxels);
            assert_eq!(back.spacing, v.spacing);
            for a in 0..3 {
                assert!((back.origin[a] - v.origin[a]).abs() < 1e-9);
            }
            assert_eq!(back.direction, v.direction);
        }
    }
}

#[test]
fn canonical_reorientation_of_a_sagittal_stack() {
    // Columns run posterior, rows inferior, slices right: code "PIR".
    let v = Volume {
        voxels: Array3::from_shape_fn([2, 3, 4], |(k, j, i)| (100 * k + 10 * j + i) as f32),
        spacing: [5.0, 2.0, 1.0],
        origin: [0.0, 0.0, 0.0],
        direction: [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]],
    };
    assert_eq!(orientation_code(&v), "PIR");
    let c = reorient(&v, CANONICAL).expect("canonical");
    // New columns (→ L) come from the flipped slice axis, rows (→ P) from columns, slices
    // (→ S) from the flipped row axis.
    assert_eq!(c.shape(), [3, 4, 2]);
    assert_eq!(c.spacing, [2.0, 1.0, 5.0]);
    assert_eq!(
        c.direction,
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    );
    // New voxel [0,0,0] is old [k=1, j=2, i=0]: x = −5, z = −4.
    assert_eq!(c.origin, [-5.0, 0.0, -4.0]);
    assert_eq!(c.voxels[[0, 0, 0]], 120.0);
}

#[test]
fn bad_codes_are_errors() {
    let v = Volume {
        voxels: Array3::zeros([1, 1, 1]),
        spacing: [1.0; 3],
        origin: [0.0; 3],
        direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };
    for code in ["", "LP", "LPSX", "LLS", "LRS", "XYZ"] {
        assert!(
            matches!(reorient(&v, code), Err(IngestError::Invalid { .. })),
            "{code}"
        );
    }
}

#[test]
fn nifti_fixtures_reorient_to_canonical_and_resample() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti");
    for name in [
        "qform_only.nii",
        "oblique_sform.nii",
        "method1.nii",
        "nifti2_be.nii",
    ] {
        let img = medvqa_ingest::nifti::read_nifti(dir.join(name)).expect("fixture");
        let v = &img.volumes[0];
        let c = reorient(v, CANONICAL).expect("canonical");
        assert_eq!(orientation_code(&c), "LPS", "{name}");
        assert_same_voxels_same_positions(v, &c);
        let iso = resample_to_spacing(&c, [1.0, 1.0, 1.0]).expect("resample");
        assert_eq!(
            iso.shape(),
            output_shape(c.shape(), c.spacing, [1.0; 3]),
            "{name}"
        );
    }
}

/// Our `reorient(v, "RAS")` against nibabel's `as_closest_canonical` (RAS+) on the NIfTI
/// fixtures (tools/fixtures/make_nifti.py): same voxel order, same values, same affine.
#[test]
fn reorient_ras_matches_nibabel_closest_canonical() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti");
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let num = |v: &serde_json::Value| v.as_f64().expect("number");
    let mut checked = 0;
    for case in doc["cases"].as_array().expect("cases") {
        let Some(canon) = case.get("canonical_ras") else {
            continue;
        };
        let name = case["file"].as_str().expect("file");
        let img = medvqa_ingest::nifti::read_nifti(dir.join(name)).expect("fixture");
        let out = reorient(&img.volumes[0], "RAS").expect("reorient");
        let dims: Vec<usize> = canon["dims"]
            .as_array()
            .expect("dims")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(out.shape(), [dims[2], dims[1], dims[0]], "{name}");
        let want: Vec<f32> = canon["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| num(v) as f32)
            .collect();
        let got: Vec<f32> = out.voxels.iter().copied().collect();
        assert_eq!(got, want, "{name}: voxel order differs from nibabel");
        let a = &canon["affine_lps"];
        for &(k, j, i) in &[
            (0usize, 0usize, 0usize),
            (dims[2] - 1, 1, 2),
            (3, dims[1] - 1, dims[0] - 1),
        ] {
            let p = out.index_to_patient(k as f64, j as f64, i as f64);
            for (r, &got) in p.iter().enumerate() {
                let w = num(&a[r][0]) * i as f64
                    + num(&a[r][1]) * j as f64
                    + num(&a[r][2]) * k as f64
                    + num(&a[r][3]);
                assert!(
                    (got - w).abs() < 1e-6 * w.abs().max(1.0),
                    "{name}: [{k},{j},{i}] {p:?}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
}

/// Against scipy.ndimage.map_coordinates(order=1) on a random volume
/// (tools/fixtures/make_resample.py).
#[test]
fn trilinear_matches_scipy_map_coordinates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/resample/trilinear.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("trilinear.json"))
            .expect("json");
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    let shape: Vec<usize> = floats(&doc["shape"]).iter().map(|&x| x as usize).collect();
    let spacing = floats(&doc["spacing"]);
    let values: Vec<f32> = floats(&doc["values"]).iter().map(|&x| x as f32).collect();
    let v = Volume {
        voxels: Array3::from_shape_vec((shape[0], shape[1], shape[2]), values).expect("shape"),
        spacing: [spacing[0], spacing[1], spacing[2]],
        origin: [1.0, 2.0, 3.0],
        direction: rotated_direction(),
    };
    for case in doc["cases"].as_array().expect("cases") {
        let t = floats(&case["target"]);
        let out = resample_to_spacing(&v, [t[0], t[1], t[2]]).expect("resample");
        let want_shape: Vec<usize> = floats(&case["shape"]).iter().map(|&x| x as usize).collect();
        assert_eq!(out.shape().to_vec(), want_shape, "target {t:?}");
        let want = floats(&case["values"]);
        let worst = out
            .voxels
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (f64::from(g) - w).abs())
            .fold(0.0, f64::max);
        eprintln!("target {t:?}: max |ours - scipy| = {worst:.2e}");
        // Values up to 3000 stored as f32: half an ulp is ~1.2e-4.
        assert!(worst < 1e-3, "target {t:?}: max difference {worst}");
    }
}
