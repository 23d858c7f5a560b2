//! CT window presets and the multi-window RGB encoding of CT used by MedGemma 1.5.
//!
//! # Presets
//!
//! Centre / width in Hounsfield units, from Radiopaedia's "Windowing (CT)" article
//! (radiopaedia.org/articles/windowing-ct), which lists typical values per region:
//!
//! | name        | centre | width | Radiopaedia entry                                   |
//! |-------------|-------:|------:|-----------------------------------------------------|
//! | lung        |   -600 |  1500 | chest: lungs W:1500 L:-600                          |
//! | mediastinum |     50 |   350 | chest: mediastinum W:350 L:50                       |
//! | abdomen     |     50 |   400 | abdomen: soft tissues W:400 L:50                    |
//! | liver       |     30 |   150 | abdomen: liver W:150 L:30                           |
//! | bone        |    400 |  1800 | spine: bone W:1800 L:400                            |
//! | brain       |     40 |    80 | head and neck: brain W:80 L:40                      |
//! | stroke      |     32 |     8 | head and neck: stroke W:8 L:32 (see also Radiopaedia case 19148) |
//! | subdural    |     75 |   215 | head and neck: subdural W:130–300 L:50–100, midpoints |
//!
//! Radiopaedia gives a range for subdural; we take the midpoint of both ranges. The windows
//! are LINEAR (PS3.3 C.11.2.1.2.1), as a DICOM Window Center/Width without a VOI LUT Function.
//!
//! # Multi-window RGB (MedGemma 1.5)
//!
//! MedGemma 1.5 was trained on CT slices whose three channels are three windows, given as
//! HU ranges: R [-1024, 1024] (wide), G [-135, 215] (soft tissue), B [0, 80] (brain). The
//! reference (Google-Health/medgemma, `notebooks/high_dimensional_ct_hugging_face.ipynb`,
//! cells "Define windowing for CT images" / "Visualize CT slice windowing") maps each channel
//! as: clip HU to `[lo, hi]`, cast to `float32`, subtract `lo`, divide by `hi - lo`, multiply
//! by 255, then `np.round` (half to even) and cast to `uint8`. [`MultiWindow::apply`] does those
//! operations in the same order and precision, so the 8-bit levels are identical.

use serde::{Deserialize, Serialize};

use crate::error::{IngestError, Result};
use crate::lut::Window;

/// A named CT window preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    /// Window centre (level), HU.
    pub center: f64,
    /// Window width, HU.
    pub width: f64,
}

/// The presets of the table in the module documentation (Radiopaedia "Windowing (CT)").
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "lung",
        center: -600.0,
        width: 1500.0,
    },
    Preset {
        name: "mediastinum",
        center: 50.0,
        width: 350.0,
    },
    Preset {
        name: "abdomen",
        center: 50.0,
        width: 400.0,
    },
    Preset {
        name: "liver",
        center: 30.0,
        width: 150.0,
    },
    Preset {
        name: "bone",
        center: 400.0,
        width: 1800.0,
    },
    Preset {
        name: "brain",
        center: 40.0,
        width: 80.0,
    },
    Preset {
        name: "stroke",
        center: 32.0,
        width: 8.0,
    },
    Preset {
        name: "subdural",
        center: 75.0,
        width: 215.0,
    },
];

impl Preset {
    /// The preset as a LINEAR VOI window.
    pub fn window(&self) -> Window {
        Window::linear(self.center, self.width)
    }
}

/// Looks a preset up by name (case-insensitive).
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
}

/// Parses a `--window` argument: `C,W` (centre, width; width > 0) or a preset name.
pub fn parse_window(arg: &str) -> Result<Window> {
    let bad = |reason: String| IngestError::Invalid {
        what: format!("--window {arg:?}"),
        reason,
    };
    if let Some((c, w)) = arg.split_once(',') {
        let c: f64 = c
            .trim()
            .parse()
            .map_err(|_| bad(format!("centre {:?} is not a number", c.trim())))?;
        let w: f64 = w
            .trim()
            .parse()
            .map_err(|_| bad(format!("width {:?} is not a number", w.trim())))?;
        if !c.is_finite() || !w.is_finite() || w <= 0.0 {
            return Err(bad("centre must be finite and width finite and > 0".into()));
        }
        return Ok(Window::linear(c, w));
    }
    match preset(arg) {
        Some(p) => Ok(p.window()),
        None => {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            Err(bad(format!(
                "expected C,W or one of the presets {}",
                names.join(", ")
            )))
        }
    }
}

/// One channel of a multi-window encoding: the HU range `[lo, hi]` mapped onto 0..=255.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HuRange {
    pub lo: f64,
    pub hi: f64,
}

/// Three HU ranges, one per output channel (R, G, B), each mapped to 8-bit levels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MultiWindow {
    pub channels: [HuRange; 3],
}

impl MultiWindow {
    /// MedGemma 1.5's CT encoding: R [-1024, 1024] wide, G [-135, 215] soft tissue,
    /// B [0, 80] brain (Google-Health/medgemma high_dimensional_ct_hugging_face.ipynb).
    pub const MEDGEMMA_CT: MultiWindow = MultiWindow {
        channels: [
            HuRange {
                lo: -1024.0,
                hi: 1024.0,
            },
            HuRange {
                lo: -135.0,
                hi: 215.0,
            },
            HuRange { lo: 0.0, hi: 80.0 },
        ],
    };

    /// Checks that every range is finite with `hi > lo`.
    pub fn validate(&self) -> Result<()> {
        for (i, r) in self.channels.iter().enumerate() {
            if !(r.lo.is_finite() && r.hi.is_finite() && r.hi > r.lo) {
                return Err(IngestError::Invalid {
                    what: format!("multi-window channel {i}"),
                    reason: format!("range [{}, {}] must be finite with hi > lo", r.lo, r.hi),
                });
            }
        }
        Ok(())
    }

    /// The 8-bit level (0..=255, returned as `f32`) of `hu` in channel `c`:
    /// `round_half_even(((clip(hu, lo, hi) as f32) - lo) / (hi - lo) * 255)` in `f32`, the
    /// order and precision of the reference notebook.
    #[inline]
    pub fn apply(&self, c: usize, hu: f32) -> f32 {
        let r = self.channels[c];
        // np.clip on the float64 HU array, then astype(float32).
        let v = (hu as f64).clamp(r.lo, r.hi) as f32;
        // float32 array op Python scalar stays float32 (NumPy 2 promotion rules).
        let v = (v - r.lo as f32) / (r.hi - r.lo) as f32 * 255.0f32;
        v.round_ties_even()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_by_name_and_numbers() {
        let w = parse_window("lung").unwrap();
        assert_eq!((w.center, w.width), (-600.0, 1500.0));
        let w = parse_window("Brain").unwrap();
        assert_eq!((w.center, w.width), (40.0, 80.0));
        let w = parse_window("40, 400").unwrap();
        assert_eq!((w.center, w.width), (40.0, 400.0));
        let w = parse_window("-600,1500").unwrap();
        assert_eq!((w.center, w.width), (-600.0, 1500.0));
        assert_eq!(PRESETS.len(), 8);
        for name in [
            "lung",
            "mediastinum",
            "abdomen",
            "liver",
            "bone",
            "brain",
            "stroke",
            "subdural",
        ] {
            assert!(preset(name).is_some(), "{name}");
        }
    }

    #[test]
    fn bad_windows_name_the_problem() {
        for bad in [
            "", "pelvis", "40", "40,0", "40,-3", "a,400", "40,b", "nan,4",
        ] {
            let e = parse_window(bad).unwrap_err().to_string();
            assert!(e.contains("--window"), "{bad}: {e}");
        }
    }

    #[test]
    fn medgemma_channels_match_hand_computed_levels() {
        let m = MultiWindow::MEDGEMMA_CT;
        m.validate().unwrap();
        // R: -1024 -> 0, 0 -> 127.5 -> 128 (ties to even), 1024 -> 255, clipped beyond.
        assert_eq!(m.apply(0, -2000.0), 0.0);
        assert_eq!(m.apply(0, 0.0), 128.0);
        assert_eq!(m.apply(0, 1024.0), 255.0);
        assert_eq!(m.apply(0, 3000.0), 255.0);
        // G: (40 + 135) / 350 * 255 = 127.5 -> 128; (-135) -> 0; 215 -> 255.
        assert_eq!(m.apply(1, 40.0), 128.0);
        assert_eq!(m.apply(1, -135.0), 0.0);
        assert_eq!(m.apply(1, 215.0), 255.0);
        // B: 40 / 80 * 255 = 127.5 -> 128; 10 / 80 * 255 = 31.875 -> 32; -50 -> 0.
        assert_eq!(m.apply(2, 40.0), 128.0);
        assert_eq!(m.apply(2, 10.0), 32.0);
        assert_eq!(m.apply(2, -50.0), 0.0);
        // Within [0, 1] the only exact tie of r·255 is r = 0.5 (127.5), checked above; off-tie
        // values round to nearest: (100 + 135) / 350 · 255 = 171.21 -> 171.
        assert_eq!(m.apply(1, 100.0), 171.0);
        assert!(MultiWindow {
            channels: [HuRange { lo: 1.0, hi: 1.0 }; 3]
        }
        .validate()
        .is_err());
    }
}
