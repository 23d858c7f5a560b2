//! `Volume`: a 3D array that knows where it sits in the patient.
//!
//! Conventions (the ones every other module and the sidecar JSON use):
//! - voxels are `[slices, rows, cols]`, C order;
//! - patient coordinates are DICOM LPS in millimetres (x to the patient's Left, y Posterior,
//!   z Superior; PS3.3 C.7.6.2.1.1);
//! - `direction[0]` is the row cosine (the direction in which the column index grows, DICOM
//!   ImageOrientationPatient[0..3]), `direction[1]` the column cosine (row index grows,
//!   IOP[3..6]), `direction[2]` the slice normal, the direction in which the slice index grows;
//!   for DICOM series we sort so that it equals row × column cosine;
//! - `spacing` is `[slice, row, col]` in mm: slice = distance between slice centres,
//!   row = distance between rows (PixelSpacing[0]), col = between columns (PixelSpacing[1]);
//! - `origin` is the centre of voxel `[0, 0, 0]`.
//!
//! The patient position of voxel `[k, j, i]` is
//! `origin + i·spacing[2]·direction[0] + j·spacing[1]·direction[1] + k·spacing[0]·direction[2]`.

use ndarray::Array3;

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// `[slices, rows, cols]`
    pub voxels: Array3<f32>,
    /// `[slice, row, col]` in mm.
    pub spacing: [f64; 3],
    /// LPS position (mm) of the centre of voxel `[0, 0, 0]`.
    pub origin: [f64; 3],
    /// Row cosine, column cosine, slice normal (unit vectors, LPS).
    pub direction: [[f64; 3]; 3],
}

impl Volume {
    /// `[slices, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        let s = self.voxels.shape();
        [s[0], s[1], s[2]]
    }

    /// LPS position (mm) of the centre of voxel `[k, j, i]` (fractional indices allowed).
    pub fn index_to_patient(&self, k: f64, j: f64, i: f64) -> [f64; 3] {
        let mut p = self.origin;
        for a in 0..3 {
            p[a] += i * self.spacing[2] * self.direction[0][a]
                + j * self.spacing[1] * self.direction[1][a]
                + k * self.spacing[0] * self.direction[2][a];
        }
        p
    }
}

pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Row and column cosines of Image Orientation (Patient) and their unit normal
/// (row × column, PS3.3 C.7.6.2.1.1); the normal is None when the cosines are parallel or zero.
pub fn iop_axes(iop: [f64; 6]) -> ([f64; 3], [f64; 3], Option<[f64; 3]>) {
    let row = [iop[0], iop[1], iop[2]];
    let col = [iop[3], iop[4], iop[5]];
    let n = cross(row, col);
    let l = norm(n);
    (row, col, (l > 0.0).then(|| [n[0] / l, n[1] / l, n[2] / l]))
}
