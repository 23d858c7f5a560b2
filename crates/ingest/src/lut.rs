//! The value transforms of the DICOM grayscale pipeline (PS3.4 N.2.1, PS3.3 C.11):
//! stored value → Modality LUT (rescale or LUT) → VOI LUT (window or LUT) → display value.
//!
//! Each transform is a small value type named after the standard, so the parameters used can be
//! recorded next to the output and a result reproduced.

use serde::{Deserialize, Serialize};

/// VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3. Absent means LINEAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VoiLutFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

impl VoiLutFunction {
    /// Parses the attribute's code string; unknown values fall back to LINEAR as the standard's
    /// default (the caller records a warning).
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "LINEAR" => Some(Self::Linear),
            "LINEAR_EXACT" => Some(Self::LinearExact),
            "SIGMOID" => Some(Self::Sigmoid),
            _ => None,
        }
    }
}

/// A VOI window: Window Center (0028,1050), Window Width (0028,1051) and its function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiLutFunction,
}

impl Window {
    pub fn linear(center: f64, width: f64) -> Self {
        Window {
            center,
            width,
            function: VoiLutFunction::Linear,
        }
    }

    /// Maps a modality value to [0, 1].
    ///
    /// Formulas of PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT) and C.11.2.1.3.1
    /// (SIGMOID) with y_min = 0, y_max = 1. LINEAR requires width ≥ 1 and the others width > 0;
    /// a smaller width degenerates to a threshold at the centre, which is what the LINEAR
    /// formula tends to and what viewers show.
    #[inline]
    pub fn apply(&self, x: f64) -> f64 {
        let c = self.center;
        let w = self.width;
        match self.function {
            VoiLutFunction::Linear => {
                if w < 1.0 {
                    return if x <= c - 0.5 { 0.0 } else { 1.0 };
                }
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    1.0
                } else if w == 1.0 {
                    // The band holds a single value; the formula divides by zero there.
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiLutFunction::LinearExact => {
                if w <= 0.0 {
                    return if x <= c { 0.0 } else { 1.0 };
                }
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            VoiLutFunction::Sigmoid => {
                if w <= 0.0 {
                    return if x <= c { 0.0 } else { 1.0 };
                }
                1.0 / (1.0 + (-4.0 * (x - c) / w).exp())
            }
        }
    }
}

impl Window {
    /// `dst[i] = apply(src[i])` stored as `f32`, for whole images: the same values as
    /// [`Window::apply`] sample by sample, but the width checks are made once and LINEAR's
    /// band test is a select rather than a branch, so the loop vectorises.
    pub fn apply_slice(&self, src: &[f32], dst: &mut [f32]) {
        let (c, w) = (self.center, self.width);
        if self.function == VoiLutFunction::Linear && w > 1.0 {
            let (lo, hi) = (c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0);
            let (c5, wm1) = (c - 0.5, w - 1.0);
            for (d, &s) in dst.iter_mut().zip(src) {
                let x = s as f64;
                let y = (x - c5) / wm1 + 0.5;
                let y = if x > hi { 1.0 } else { y };
                *d = (if x <= lo { 0.0 } else { y }) as f32;
            }
        } else {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = self.apply(s as f64) as f32;
            }
        }
    }
}

/// Rescale Slope (0028,1053) and Rescale Intercept (0028,1052): the linear Modality LUT,
/// PS3.3 C.11.1.1.2. Output = slope · stored + intercept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Rescale {
    pub const IDENTITY: Rescale = Rescale {
        slope: 1.0,
        intercept: 0.0,
    };

    #[inline]
    pub fn apply(&self, stored: f64) -> f64 {
        self.slope * stored + self.intercept
    }
}

/// A lookup table as a Modality LUT Sequence (0028,3000) or VOI LUT Sequence (0028,3010) item
/// carries it: LUT Descriptor (0028,3002) = [entries, first mapped value, bits per entry] and
/// LUT Data (0028,3006).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lut {
    /// The input value mapped to `entries[0]` (signed when the pixels are signed, PS3.3
    /// C.11.1.1.1).
    pub first_mapped: i64,
    /// Bits per entry: 8 or 16 (descriptor's third value; some writers say 16 for 8-bit data,
    /// which [`Lut::new`] detects from the data range).
    pub bits: u8,
    pub entries: Vec<u16>,
}

impl Lut {
    /// Builds a LUT from its descriptor values and data; `entries_declared` = 0 means 65536
    /// (PS3.3 C.11.1.1.1). Data longer than declared is truncated, shorter is an error.
    pub fn new(
        entries_declared: u32,
        first_mapped: i64,
        bits: u8,
        data: Vec<u16>,
    ) -> Result<Lut, String> {
        let n = if entries_declared == 0 {
            65536
        } else {
            entries_declared as usize
        };
        if data.len() < n {
            return Err(format!(
                "LUT Data holds {} entries, the LUT Descriptor declares {}",
                data.len(),
                n
            ));
        }
        let mut entries = data;
        entries.truncate(n);
        if !(1..=16).contains(&bits) {
            return Err(format!("LUT Descriptor bits per entry {bits} is not in 1..=16"));
        }
        Ok(Lut {
            first_mapped,
            bits,
            entries,
        })
    }

    /// Looks up an input value: values below the first mapped value take the first entry,
    /// values past the end take the last (PS3.3 C.11.2.1.1). Returns the raw entry value.
    #[inline]
    pub fn lookup(&self, x: f64) -> f64 {
        let last = self.entries.len() - 1;
        let idx = x.round() as i64 - self.first_mapped;
        let idx = idx.clamp(0, last as i64) as usize;
        self.entries[idx] as f64
    }

    /// The largest value an entry can hold, for scaling a VOI LUT output to [0, 1].
    pub fn max_output(&self) -> f64 {
        ((1u32 << self.bits) - 1) as f64
    }
}

/// The Modality LUT stage (PS3.3 C.11.1): a rescale, or a LUT that replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModalityLut {
    Rescale(Rescale),
    Lut(Lut),
}

impl ModalityLut {
    #[inline]
    pub fn apply(&self, stored: f64) -> f64 {
        match self {
            ModalityLut::Rescale(r) => r.apply(stored),
            ModalityLut::Lut(l) => l.lookup(stored),
        }
    }
}

/// The VOI stage (PS3.3 C.11.2): a window or a LUT, output in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Voi {
    Window(Window),
    Lut(Lut),
    /// The item's own value range mapped linearly to [0, 1] (no VOI in the file).
    MinMax { min: f64, max: f64 },
}

impl Voi {
    #[inline]
    pub fn apply(&self, x: f64) -> f64 {
        match self {
            Voi::Window(w) => w.apply(x),
            Voi::Lut(l) => l.lookup(x) / l.max_output(),
            Voi::MinMax { min, max } => {
                if max > min {
                    ((x - min) / (max - min)).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_window_matches_ps33_worked_values() {
        // c = 40, w = 400 (a soft-tissue window): the band is (c - 0.5 - 199.5, c - 0.5 + 199.5].
        let w = Window::linear(40.0, 400.0);
        assert_eq!(w.apply(-160.0), 0.0); // c - 0.5 - (w-1)/2 = -160 → y_min
        assert_eq!(w.apply(240.0), 1.0);
        assert!((w.apply(39.5) - 0.5).abs() < 1e-12); // x = c - 0.5 is the midpoint
        let mid = w.apply(100.0);
        assert!((mid - ((100.0 - 39.5) / 399.0 + 0.5)).abs() < 1e-12);
    }

    #[test]
    fn slice_window_equals_sample_window() {
        let xs: Vec<f32> = (-3000..3000)
            .map(|i| i as f32 * 0.37)
            .chain([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0])
            .collect();
        for w in [
            Window::linear(40.0, 400.0),
            Window::linear(-600.0, 1500.0),
            Window::linear(10.0, 1.0),
            Window::linear(10.0, 0.5),
            Window {
                center: 3.0,
                width: 7.0,
                function: VoiLutFunction::Sigmoid,
            },
            Window {
                center: 3.0,
                width: 7.0,
                function: VoiLutFunction::LinearExact,
            },
        ] {
            let mut got = vec![0f32; xs.len()];
            w.apply_slice(&xs, &mut got);
            for (x, g) in xs.iter().zip(&got) {
                let want = w.apply(*x as f64) as f32;
                assert!(
                    want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan()),
                    "{w:?} at {x}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn linear_exact_is_centred_on_c() {
        let w = Window {
            center: 0.0,
            width: 100.0,
            function: VoiLutFunction::LinearExact,
        };
        assert_eq!(w.apply(-50.0), 0.0);
        assert_eq!(w.apply(0.0), 0.5);
        assert!((w.apply(25.0) - 0.75).abs() < 1e-12);
        assert_eq!(w.apply(50.1), 1.0);
    }

    #[test]
    fn sigmoid_is_half_at_centre_and_monotone() {
        let w = Window {
            center: 10.0,
            width: 20.0,
            function: VoiLutFunction::Sigmoid,
        };
        assert!((w.apply(10.0) - 0.5).abs() < 1e-12);
        // y = 1 / (1 + exp(-4 (x - c) / w)): at x = c + w/2 that is 1 / (1 + e^-2).
        assert!((w.apply(20.0) - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        assert!(w.apply(0.0) < w.apply(5.0));
    }

    #[test]
    fn lut_clamps_outside_its_range() {
        let lut = Lut::new(4, -2, 8, vec![10, 20, 30, 40]).unwrap();
        assert_eq!(lut.lookup(-100.0), 10.0);
        assert_eq!(lut.lookup(-2.0), 10.0);
        assert_eq!(lut.lookup(0.0), 30.0);
        assert_eq!(lut.lookup(1.0), 40.0);
        assert_eq!(lut.lookup(1000.0), 40.0);
        assert!(Lut::new(5, 0, 8, vec![1, 2, 3]).is_err());
    }
}
