//! Resampling a [`Volume`] to a target spacing (trilinear) and reorienting it to a named
//! orientation (axis permutation and flips only).
//!
//! ```
//! use medvqa_ingest::{resample, Volume};
//! use ndarray::Array3;
//! let v = Volume {
//!     voxels: Array3::from_shape_fn((5, 4, 3), |(k, j, i)| (k + j + i) as f32),
//!     spacing: [2.0, 1.0, 1.0],
//!     origin: [0.0; 3],
//!     direction: [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
//! };
//! let iso = resample::resample_to_spacing(&v, [1.0, 1.0, 1.0])?;
//! assert_eq!(iso.shape(), [9, 4, 3]);
//! let lps = resample::reorient(&v, resample::CANONICAL)?;
//! assert_eq!(resample::orientation_code(&lps), "LPS");
//! # Ok::<(), medvqa_ingest::IngestError>(())
//! ```
//!
//! # Orientation codes
//! A code is three letters from {L, R}, {P, A}, {S, I} (one of each pair, any order,
//! upper or lower case). Letter 1 names the patient direction in which the **column**
//! index grows (our `direction[0]`, the row cosine), letter 2 the direction in which the
//! **row** index grows, letter 3 the direction in which the **slice** index grows. Letters
//! name where an index goes *to*, as in DICOM's LPS and nibabel's "RAS+" axis codes (ITK's
//! orientation enums name where it comes *from*, the opposite). The canonical code
//! [`CANONICAL`] is `"LPS"`: columns run to the patient's left, rows to posterior, slices to
//! superior, i.e. an axial stack seen from the feet with slice 0 lowest. This is the
//! orientation that DICOM axial CT normally has already.
//!
//! For an oblique volume each array axis is assigned to the patient axis it is closest to:
//! of the six possible assignments the one with the largest sum of |cosines| (ties go to
//! the first in the order x,y,z / x,z,y / y,x,z / y,z,x / z,x,y / z,y,x). The code then
//! only says which patient axis each array axis is nearest to; the directions stay
//! oblique.
//!
//! # Resampling extent
//! The output grid keeps origin (the centre of voxel `[0, 0, 0]`) and direction; along each
//! axis `n_out = floor((n_in − 1)·s_in / s_out) + 1`, so the output centres
//! `0, s_out, 2·s_out, …` all lie within the input's first-to-last centre span and nothing
//! is extrapolated (the last output centre may fall up to one output step short of the
//! last input centre). A tolerance of 1e-6 output voxels absorbs floating-point error in
//! the ratio.

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::error::{IngestError, Result};
use crate::volume::Volume;

/// The canonical orientation code: columns → Left, rows → Posterior, slices → Superior.
pub const CANONICAL: &str = "LPS";

/// Largest output [`resample_to_spacing`] will allocate, in voxels (2 GiB of f32).
pub const MAX_OUTPUT_VOXELS: u64 = 1 << 29;

/// Output shape `[slices, rows, cols]` for resampling a grid of `shape` and `spacing` to
/// `target` (all `[slice, row, col]`), by the extent rule in the module docs.
pub fn output_shape(shape: [usize; 3], spacing: [f64; 3], target: [f64; 3]) -> [usize; 3] {
    std::array::from_fn(|a| {
        if shape[a] == 0 {
            return 0;
        }
        let span = (shape[a] - 1) as f64 * spacing[a] / target[a];
        (span + 1e-6).floor() as usize + 1
    })
}

/// Trilinear resampling to `target` spacing (`[slice, row, col]`, mm).
///
/// # Shapes
/// `v.voxels`: `[slices, rows, cols]` → `[slices', rows', cols']` given by
/// [`output_shape`]. Origin and direction are kept; spacing becomes `target`.
///
/// A linear function of the voxel position is reproduced exactly (up to f32 rounding).
pub fn resample_to_spacing(v: &Volume, target: [f64; 3]) -> Result<Volume> {
    for (what, s) in [("target spacing", target), ("volume spacing", v.spacing)] {
        if s.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
            return Err(IngestError::Invalid {
                what: "resample".into(),
                reason: format!("{what} {s:?} must be finite and positive"),
            });
        }
    }
    let shape_in = v.shape();
    let shape_out = output_shape(shape_in, v.spacing, target);
    let total = shape_out
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64));
    match total {
        Some(n) if n <= MAX_OUTPUT_VOXELS => {}
        _ => {
            return Err(IngestError::Invalid {
                what: "resample".into(),
                reason: format!("output shape {shape_out:?} exceeds {MAX_OUTPUT_VOXELS} voxels"),
            })
        }
    }

    // Per axis, for every output index: (lower input index, upper input index, weight of
    // the upper one).
    let taps: [Vec<(usize, usize, f64)>; 3] = std::array::from_fn(|a| {
        let last = shape_in[a].saturating_sub(1);
        (0..shape_out[a])
            .map(|m| {
                let x = (m as f64 * target[a] / v.spacing[a]).clamp(0.0, last as f64);
                let i0 = (x.floor() as usize).min(last);
                let i1 = (i0 + 1).min(last);
                (i0, i1, x - i0 as f64)
            })
            .collect()
    });

    let [_, rows, cols] = shape_out;
    let src = &v.voxels;
    let mut out = vec![0f32; shape_out.iter().product()];
    if rows * cols > 0 {
        out.par_chunks_mut(rows * cols)
            .zip(taps[0].par_iter())
            .for_each(|(plane, &(k0, k1, wk))| {
                for (r, &(j0, j1, wj)) in taps[1].iter().enumerate() {
                    for (c, &(i0, i1, wi)) in taps[2].iter().enumerate() {
                        let at = |k, j, i| f64::from(src[[k, j, i]]);
                        let lerp = |a: f64, b: f64, w: f64| a + (b - a) * w;
                        let c00 = lerp(at(k0, j0, i0), at(k0, j0, i1), wi);
                        let c01 = lerp(at(k0, j1, i0), at(k0, j1, i1), wi);
                        let c10 = lerp(at(k1, j0, i0), at(k1, j0, i1), wi);
                        let c11 = lerp(at(k1, j1, i0), at(k1, j1, i1), wi);
                        let c0 = lerp(c00, c01, wj);
                        let c1 = lerp(c10, c11, wj);
                        plane[r * cols + c] = lerp(c0, c1, wk) as f32;
                    }
                }
            });
    }
    Ok(Volume {
        voxels: Array3::from_shape_vec(shape_out, out).map_err(|e| IngestError::Invalid {
            what: "resample".into(),
            reason: e.to_string(),
        })?,
        spacing: target,
        origin: v.origin,
        direction: v.direction,
    })
}

/// The six ways to assign direction slots 0, 1, 2 to patient axes x, y, z, in tie-break
/// order.
const PERMUTATIONS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// For direction slots (0 = columns, 1 = rows, 2 = slices): the patient axis each is
/// closest to (see the module docs).
fn closest_axes(direction: &[[f64; 3]; 3]) -> [usize; 3] {
    let score = |p: &[usize; 3]| (0..3).map(|d| direction[d][p[d]].abs()).sum::<f64>();
    let mut best = PERMUTATIONS[0];
    for p in &PERMUTATIONS[1..] {
        if score(p) > score(&best) {
            best = *p;
        }
    }
    best
}

/// The orientation code of a volume (module docs): e.g. `"LPS"` for a DICOM axial stack.
pub fn orientation_code(v: &Volume) -> String {
    const LETTERS: [[char; 2]; 3] = [['L', 'R'], ['P', 'A'], ['S', 'I']];
    let axes = closest_axes(&v.direction);
    (0..3)
        .map(|d| {
            let a = axes[d];
            LETTERS[a][usize::from(v.direction[d][a] < 0.0)]
        })
        .collect()
}

/// Parses a code into, per direction slot, (patient axis, sign).
fn parse_code(code: &str) -> Result<[(usize, f64); 3]> {
    let bad = |reason: String| IngestError::Invalid {
        what: format!("orientation code {code:?}"),
        reason,
    };
    let letters: Vec<char> = code.chars().map(|c| c.to_ascii_uppercase()).collect();
    if letters.len() != 3 {
        return Err(bad(
            "must be three letters, one each of L/R, P/A, S/I".into()
        ));
    }
    let mut out = [(0usize, 1.0f64); 3];
    let mut seen = [false; 3];
    for (slot, &c) in letters.iter().enumerate() {
        let (axis, sign) = match c {
            'L' => (0, 1.0),
            'R' => (0, -1.0),
            'P' => (1, 1.0),
            'A' => (1, -1.0),
            'S' => (2, 1.0),
            'I' => (2, -1.0),
            other => return Err(bad(format!("{other:?} is not one of L R P A S I"))),
        };
        if seen[axis] {
            return Err(bad("names the same patient axis twice".into()));
        }
        seen[axis] = true;
        out[slot] = (axis, sign);
    }
    Ok(out)
}

/// Permutes and flips the axes of `v` so that its orientation code becomes `code` (module
/// docs). No interpolation: every voxel keeps its value and its patient position; origin,
/// direction and spacing are updated accordingly.
///
/// # Shapes
/// `[slices, rows, cols]` → the same three lengths, permuted.
pub fn reorient(v: &Volume, code: &str) -> Result<Volume> {
    let wanted = parse_code(code)?;
    let current = closest_axes(&v.direction);
    // Array axis of a direction slot: slot 0 (columns) is array axis 2, slot 2 (slices) 0.
    let array_axis = |slot: usize| 2 - slot;

    let mut permutation = [0usize; 3]; // output array axis → input array axis
    let mut flips = [false; 3]; // per output array axis
    let mut direction = [[0.0; 3]; 3];
    let mut spacing = [0.0; 3];
    let mut start = [0usize; 3]; // input index [k, j, i] of the new voxel [0, 0, 0]
    let shape = v.shape();
    for (out_slot, &(axis, sign)) in wanted.iter().enumerate() {
        let in_slot = (0..3)
            .find(|&d| current[d] == axis)
            .expect("closest_axes returns a permutation, so every patient axis has a slot");
        let flip = v.direction[in_slot][axis] * sign < 0.0;
        let (oa, ia) = (array_axis(out_slot), array_axis(in_slot));
        permutation[oa] = ia;
        flips[oa] = flip;
        direction[out_slot] = v.direction[in_slot].map(|x| if flip { -x } else { x });
        spacing[oa] = v.spacing[ia];
        if flip {
            start[ia] = shape[ia].saturating_sub(1);
        }
    }
    let mut view = v.voxels.view().permuted_axes(permutation);
    for (axis, &flip) in flips.iter().enumerate() {
        if flip {
            view.invert_axis(Axis(axis));
        }
    }
    Ok(Volume {
        voxels: view.as_standard_layout().into_owned(),
        spacing,
        origin: v.index_to_patient(start[0] as f64, start[1] as f64, start[2] as f64),
        direction,
    })
}
