//! Grouping DICOM files into series and assembling cross-sectional slices into volumes.
//!
//! Rules (PS3.3 C.7.6.2 for the geometry; the splitting rules are what dcm2niix and
//! SimpleITK's series reader do in practice):
//! - files group by Series Instance UID, then split where Image Orientation (Patient), Rows /
//!   Columns, Pixel Spacing or Image Type differ, so a localizer or a reformat stored in the
//!   same series does not end up inside the volume;
//! - slices sort by their position along the slice normal n = row cosine × column cosine,
//!   ascending, whatever the Instance Number or file name;
//! - when every position occurs T > 1 times the series is 4D: it splits into T volumes, the
//!   files at each position ordered by Temporal Position Identifier, Acquisition Number,
//!   Trigger Time, Acquisition Time, then Instance Number;
//! - duplicated positions otherwise, gaps (a step over 1.5 × the median) and uneven spacing
//!   (steps differing by more than 1 % of the median) become warnings, and so does a gantry
//!   tilt (slice origins not moving along n).

use std::collections::BTreeMap;
use std::path::PathBuf;

use dicom_dictionary_std::tags;

use crate::dicom::attrs::{self, Ds};
use crate::volume::{dot, iop_axes, norm};

/// What grouping needs from one DICOM file's header.
#[derive(Debug, Clone)]
pub struct SliceHeader {
    pub path: PathBuf,
    pub series_uid: Option<String>,
    pub sop_uid: Option<String>,
    pub study_uid: Option<String>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub image_type: Vec<String>,
    pub rows: Option<i64>,
    pub cols: Option<i64>,
    pub frames: i64,
    pub position: Option<[f64; 3]>,
    pub orientation: Option<[f64; 6]>,
    pub pixel_spacing: Option<[f64; 2]>,
    pub instance_number: Option<i64>,
    pub temporal_position: Option<i64>,
    pub acquisition_number: Option<i64>,
    pub trigger_time: Option<f64>,
    pub acquisition_time: Option<f64>,
    /// True for enhanced multi-frame objects (functional groups present).
    pub enhanced: bool,
}

impl SliceHeader {
    pub fn from_dataset(path: PathBuf, ds: &Ds) -> SliceHeader {
        let time = |tag| {
            attrs::string(ds, tag).and_then(|t| {
                // TM: HHMMSS.FFFFFF → seconds since midnight, enough to order time points.
                let digits: String = t.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
                let (hms, frac) = digits.split_once('.').unwrap_or((&digits, ""));
                let h = hms.get(0..2)?.parse::<f64>().ok()?;
                let m = hms.get(2..4).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
                let s = hms.get(4..6).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
                let f = format!("0.{frac}").parse::<f64>().unwrap_or(0.0);
                Some(h * 3600.0 + m * 60.0 + s + f)
            })
        };
        // Parsed as decoding parses it, so grouping and the decoded geometry cannot disagree.
        let plane = attrs::plane_from(ds);
        SliceHeader {
            series_uid: attrs::string(ds, tags::SERIES_INSTANCE_UID),
            sop_uid: attrs::string(ds, tags::SOP_INSTANCE_UID),
            study_uid: attrs::string(ds, tags::STUDY_INSTANCE_UID),
            modality: attrs::string(ds, tags::MODALITY),
            body_part: attrs::string(ds, tags::BODY_PART_EXAMINED),
            image_type: attrs::strings(ds, tags::IMAGE_TYPE),
            rows: attrs::int(ds, tags::ROWS),
            cols: attrs::int(ds, tags::COLUMNS),
            frames: attrs::int(ds, tags::NUMBER_OF_FRAMES).unwrap_or(1),
            position: plane.position,
            orientation: plane.orientation,
            pixel_spacing: plane.pixel_spacing,
            instance_number: attrs::int(ds, tags::INSTANCE_NUMBER),
            temporal_position: attrs::int(ds, tags::TEMPORAL_POSITION_IDENTIFIER),
            acquisition_number: attrs::int(ds, tags::ACQUISITION_NUMBER),
            trigger_time: attrs::float(ds, tags::TRIGGER_TIME),
            acquisition_time: time(tags::ACQUISITION_TIME).or_else(|| time(tags::CONTENT_TIME)),
            enhanced: attrs::has(ds, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE),
            path,
        }
    }

    /// Single-frame, with the geometry needed to stack it.
    pub fn stackable(&self) -> bool {
        self.frames <= 1 && self.position.is_some() && self.orientation.is_some()
    }
}

/// A set of files that belong in one output item.
#[derive(Debug, Clone)]
pub enum Unit {
    /// One file (a 2D image, a multi-frame object, or a slice that could not be stacked).
    Single(SliceHeader),
    /// Slices of one volume, already in ascending order along the normal.
    Volume(VolumePlan),
}

#[derive(Debug, Clone)]
pub struct VolumePlan {
    pub slices: Vec<SliceHeader>,
    /// Row cosine, column cosine, slice normal.
    pub direction: [[f64; 3]; 3],
    /// Median step between slice positions, mm (0 for a single slice).
    pub slice_spacing: f64,
    /// 0-based time point for 4D series (None for 3D).
    pub time_point: Option<usize>,
    /// Index of the split within the series (orientation / size / image type), from 0.
    pub split: usize,
    /// How the slices were chosen (copies and shared positions left out, series split): true
    /// of the plan whichever of its slices are later dropped.
    pub grouping_warnings: Vec<String>,
    /// What the slice positions show (gaps, uneven spacing, tilt); recomputed with them.
    pub geometry_warnings: Vec<String>,
}

impl VolumePlan {
    /// Grouping warnings, then geometry warnings.
    pub fn warnings(&self) -> Vec<String> {
        [self.grouping_warnings.as_slice(), self.geometry_warnings.as_slice()].concat()
    }

    /// The plan with only the slices `keep` accepts, its spacing and geometry warnings
    /// recomputed from their positions (a dropped slice in the middle shows up as a gap);
    /// None when no slice is kept.
    pub fn retain(&self, keep: impl Fn(&SliceHeader) -> bool) -> Option<VolumePlan> {
        let slices: Vec<SliceHeader> = self.slices.iter().filter(|s| keep(s)).cloned().collect();
        if slices.is_empty() {
            return None;
        }
        let (slice_spacing, geometry_warnings) = stack_geometry(&slices, self.direction[2]);
        Some(VolumePlan {
            slices,
            slice_spacing,
            geometry_warnings,
            grouping_warnings: self.grouping_warnings.clone(),
            ..*self
        })
    }
}

/// Groups headers into units. Files without a Series Instance UID, multi-frame files and
/// files without geometry become single units; a group with one slice does too.
pub fn plan_units(headers: Vec<SliceHeader>) -> Vec<Unit> {
    let mut units = Vec::new();
    // series UID → split key → headers; BTreeMap keeps the output order stable.
    let mut series: BTreeMap<String, BTreeMap<String, Vec<SliceHeader>>> = BTreeMap::new();
    for h in headers {
        match (&h.series_uid, h.stackable()) {
            (Some(uid), true) => {
                let key = split_key(&h);
                series.entry(uid.clone()).or_default().entry(key).or_default().push(h);
            }
            _ => units.push(Unit::Single(h)),
        }
    }
    for (_uid, splits) in series {
        let n_splits = splits.len();
        for (split, (_key, mut group)) in splits.into_iter().enumerate() {
            if group.len() == 1 {
                units.push(Unit::Single(group.pop().expect("one element")));
                continue;
            }
            for mut plan in assemble(group) {
                plan.split = split;
                if n_splits > 1 {
                    plan.grouping_warnings.push(format!(
                        "series split into {n_splits} parts where orientation, size, pixel spacing or image type differ; this is part {}",
                        split + 1
                    ));
                }
                units.push(Unit::Volume(plan));
            }
        }
    }
    units
}

fn split_key(h: &SliceHeader) -> String {
    // Orientation to 1e-4 (direction cosines written with fewer digits still agree), spacing
    // to 1e-4 mm; Image Type values 3+ name the kind of image (AXIAL, LOCALIZER, …).
    let o = h.orientation.unwrap_or_default();
    let ps = h.pixel_spacing.unwrap_or_default();
    let kind = h.image_type.get(2..).map(|v| v.join("\\")).unwrap_or_default();
    format!(
        "{:?}|{}x{}|{:.4},{:.4}|{kind}",
        o.map(|c| (c * 1e4).round() as i64),
        h.rows.unwrap_or(0),
        h.cols.unwrap_or(0),
        ps[0],
        ps[1]
    )
}

/// Orders one split's slices and divides 4D series into time points.
fn assemble(group: Vec<SliceHeader>) -> Vec<VolumePlan> {
    let (row, col, normal) = iop_axes(group[0].orientation.expect("stackable"));
    let normal = normal.unwrap_or([0.0, 0.0, 1.0]);
    let pos = |h: &SliceHeader| dot(h.position.expect("stackable"), normal);

    // One SOP Instance UID is one instance (PS3.3 C.12.1.1.1): a second file with it is a copy
    // (a folder copied beside itself), kept out so copies never pose as time points.
    let before = group.len();
    let mut sops = std::collections::BTreeSet::new();
    let group: Vec<SliceHeader> = group
        .into_iter()
        .filter(|h| h.sop_uid.as_ref().is_none_or(|u| sops.insert(u.clone())))
        .collect();
    let copies = before - group.len();

    // Bucket by position along the normal; 1 µm tolerance absorbs decimal-string rounding.
    let mut buckets: BTreeMap<i64, Vec<SliceHeader>> = BTreeMap::new();
    for h in group {
        buckets.entry((pos(&h) * 1000.0).round() as i64).or_default().push(h);
    }
    let counts: Vec<usize> = buckets.values().map(|b| b.len()).collect();
    let t = counts[0];
    let mut warnings = Vec::new();
    if copies > 0 {
        warnings.push(format!(
            "{copies} file(s) repeat the SOP Instance UID of another file and were left out (copies of one instance)"
        ));
    }
    let time_key = |h: &SliceHeader| {
        (
            h.temporal_position.unwrap_or(i64::MIN),
            h.acquisition_number.unwrap_or(i64::MIN),
            h.trigger_time.map(|x| (x * 1000.0) as i64).unwrap_or(i64::MIN),
            h.acquisition_time.map(|x| (x * 1e6) as i64).unwrap_or(i64::MIN),
            h.instance_number.unwrap_or(i64::MIN),
            h.path.clone(),
        )
    };
    for b in buckets.values_mut() {
        b.sort_by_key(|h| time_key(h));
    }
    // One position repeated T times is a single-slice cine: T one-slice time points (copies of
    // one instance were removed above, so repeats here are distinct acquisitions).
    let time_points = if t > 1 && counts.iter().all(|&c| c == t) {
        t
    } else {
        let dropped: Vec<String> = buckets
            .values()
            .flat_map(|b| b.iter().skip(1).map(|h| h.path.display().to_string()))
            .collect();
        if !dropped.is_empty() {
            warnings.push(format!(
                "{} slice(s) share a position with another slice and were left out (the first by temporal position / instance number is kept): {}",
                dropped.len(),
                dropped.join(", ")
            ));
        }
        1
    };

    let mut plans = Vec::with_capacity(time_points);
    for tp in 0..time_points {
        let slices: Vec<SliceHeader> = buckets.values().map(|b| b[tp.min(b.len() - 1)].clone()).collect();
        let (spacing, geometry_warnings) = stack_geometry(&slices, normal);
        plans.push(VolumePlan {
            slices,
            direction: [row, col, normal],
            slice_spacing: spacing,
            time_point: (time_points > 1).then_some(tp),
            split: 0,
            grouping_warnings: warnings.clone(),
            geometry_warnings,
        });
    }
    plans
}

/// Median slice step and the warnings the positions of stackable `slices`, sorted along
/// `normal`, call for: gaps, uneven spacing, origins drifting off the normal (gantry tilt).
fn stack_geometry(slices: &[SliceHeader], normal: [f64; 3]) -> (f64, Vec<String>) {
    let pos = |h: &SliceHeader| dot(h.position.expect("stackable"), normal);
    let mut w = Vec::new();
    let positions: Vec<f64> = slices.iter().map(pos).collect();
    let spacing = spacing_warnings(&positions, &mut w);
    // Gantry tilt: the step between slice origins should be parallel to the normal.
    let first = slices[0].position.expect("stackable");
    let mut max_shear: f64 = 0.0;
    for s in &slices[1..] {
        let p = s.position.expect("stackable");
        let d = [p[0] - first[0], p[1] - first[1], p[2] - first[2]];
        let along = dot(d, normal);
        let off = [d[0] - along * normal[0], d[1] - along * normal[1], d[2] - along * normal[2]];
        max_shear = max_shear.max(norm(off));
    }
    if max_shear > 0.01 {
        w.push(format!(
            "slice origins drift {max_shear:.3} mm off the slice normal (gantry tilt or sheared acquisition); the volume geometry assumes orthogonal stacking"
        ));
    }
    (spacing, w)
}

/// Median step between sorted positions; records gaps and uneven spacing.
pub fn spacing_warnings(positions: &[f64], warnings: &mut Vec<String>) -> f64 {
    let steps: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return 0.0;
    }
    let mut sorted = steps.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    let gaps: Vec<String> = steps
        .iter()
        .enumerate()
        .filter(|(_, &s)| s > 1.5 * median)
        .map(|(i, &s)| format!("{s:.3} mm after slice {i}"))
        .collect();
    if !gaps.is_empty() {
        warnings.push(format!(
            "missing slices: gap(s) of {} where the median step is {median:.3} mm",
            gaps.join(", ")
        ));
    }
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    if hi - lo > 0.01 * median.abs().max(1e-6) && hi - lo > 1e-3 {
        warnings.push(format!(
            "uneven slice spacing: steps from {lo:.4} to {hi:.4} mm (median {median:.4}); the volume uses the median"
        ));
    }
    median
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_header_geometry_is_the_decoders_plane() {
        for (spacing, want) in [("0.7\\0.9", Some([0.7, 0.9])), ("0\\0", None), ("-0.5\\0.5", None), ("0.7", None)] {
            let ds = attrs::tests::ds(&[
                (tags::IMAGE_POSITION_PATIENT, "1\\2\\3"),
                (tags::IMAGE_ORIENTATION_PATIENT, "1\\0\\0\\0\\1\\0"),
                (tags::PIXEL_SPACING, spacing),
            ]);
            let h = SliceHeader::from_dataset(PathBuf::from("x.dcm"), &ds);
            assert_eq!(h.position, Some([1.0, 2.0, 3.0]));
            assert_eq!(h.orientation, Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
            assert_eq!(h.pixel_spacing, want, "{spacing}");
            let p = attrs::plane_from(&ds);
            assert_eq!((h.position, h.orientation, h.pixel_spacing), (p.position, p.orientation, p.pixel_spacing), "{spacing}");
        }
    }
}
