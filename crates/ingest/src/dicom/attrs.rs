//! Typed access to the attributes ingest needs, from the top level of a data set or from the
//! functional groups of an enhanced multi-frame object (PS3.3 C.7.6.16).

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::lut::{Lut, ModalityLut, Rescale, Voi, VoiLutFunction, Window};

pub type Ds = InMemDicomObject;

pub fn string(ds: &Ds, tag: Tag) -> Option<String> {
    let e = ds.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// All values of a multi-valued string attribute (e.g. Image Type), trimmed.
pub fn strings(ds: &Ds, tag: Tag) -> Vec<String> {
    string(ds, tag)
        .map(|s| s.split('\\').map(|v| v.trim().to_string()).collect())
        .unwrap_or_default()
}

pub fn floats(ds: &Ds, tag: Tag) -> Option<Vec<f64>> {
    let e = ds.element_opt(tag).ok().flatten()?;
    let v = e.to_multi_float64().ok()?;
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

pub fn float(ds: &Ds, tag: Tag) -> Option<f64> {
    floats(ds, tag).map(|v| v[0])
}

pub fn int(ds: &Ds, tag: Tag) -> Option<i64> {
    let e = ds.element_opt(tag).ok().flatten()?;
    e.to_int::<i64>().ok()
}

pub fn ints(ds: &Ds, tag: Tag) -> Option<Vec<i64>> {
    let e = ds.element_opt(tag).ok().flatten()?;
    e.to_multi_int::<i64>().ok()
}

pub fn items(ds: &Ds, tag: Tag) -> &[Ds] {
    ds.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .unwrap_or(&[])
}

pub fn first_item(ds: &Ds, tag: Tag) -> Option<&Ds> {
    items(ds, tag).first()
}

pub fn has(ds: &Ds, tag: Tag) -> bool {
    ds.element_opt(tag).ok().flatten().is_some()
}

/// Raw words of an attribute whose value is a list of 16-bit numbers (LUT Data, which may be
/// encoded as OW, US or SS).
pub fn words(ds: &Ds, tag: Tag) -> Option<Vec<u16>> {
    let e = ds.element_opt(tag).ok().flatten()?;
    if let Ok(v) = e.to_multi_int::<i64>() {
        // US/SS/OW values come out as numbers; keep the 16-bit pattern.
        if !v.is_empty() && e.vr() != dicom_core::VR::OB {
            return Some(v.into_iter().map(|x| x as u16).collect());
        }
    }
    let b = e.to_bytes().ok()?;
    Some(
        b.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// Image Position/Orientation and Pixel Spacing of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FramePlane {
    /// Image Position (Patient): centre of the first transmitted pixel, mm, LPS.
    pub position: Option<[f64; 3]>,
    /// Image Orientation (Patient): row cosine then column cosine.
    pub orientation: Option<[f64; 6]>,
    /// Pixel Spacing: [between rows, between columns] in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
}

/// Everything per frame the pipeline needs: geometry, modality LUT, VOI, temporal position.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameAttrs {
    pub plane: FramePlane,
    pub modality_lut: Option<ModalityLut>,
    pub voi: Option<Voi>,
    pub temporal_index: Option<i64>,
    pub stack_position: Option<i64>,
}

/// The plane attributes of one data set or functional-group item; values that cannot be
/// geometry (too few numbers, not finite, a Pixel Spacing that is not positive) are None, and
/// each caller applies its own fallback. The one parser for series grouping and decoding.
pub fn plane_from(ds: &Ds) -> FramePlane {
    FramePlane {
        position: floats(ds, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() >= 3)
            .map(|v| [v[0], v[1], v[2]]),
        orientation: floats(ds, tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() >= 6)
            .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]),
        pixel_spacing: floats(ds, tags::PIXEL_SPACING)
            .filter(|v| v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0)
            .map(|v| [v[0], v[1]]),
        slice_thickness: float(ds, tags::SLICE_THICKNESS),
    }
}

/// Reads a LUT from an item holding LUT Descriptor (0028,3002) and LUT Data (0028,3006).
/// `signed_input`: the descriptor's first-mapped value is signed when the LUT input is
/// (PS3.3 C.11.1.1.1 / C.11.2.1.1).
pub fn lut_from(item: &Ds, signed_input: bool) -> Result<Lut, String> {
    let desc = ints(item, tags::LUT_DESCRIPTOR)
        .filter(|d| d.len() == 3)
        .ok_or("LUT Descriptor (0028,3002) missing or not 3 values")?;
    let entries = (desc[0] as u64 & 0xFFFF) as u32;
    let first = if signed_input {
        (desc[1] as u16) as i16 as i64
    } else {
        desc[1] as u16 as i64
    };
    let bits = desc[2] as u8;
    let data = words(item, tags::LUT_DATA).ok_or("LUT Data (0028,3006) missing")?;
    let mut lut = Lut::new(entries, first, bits.clamp(1, 16), data)?;
    // Some writers declare 16 bits for 8-bit LUT data stored in OB-packed words: if the
    // declared 8 bits are exceeded, widen so scaling to [0, 1] stays right.
    if lut.bits == 8 && lut.entries.iter().any(|&v| v > 255) {
        lut.bits = 16;
    }
    Ok(lut)
}

fn modality_lut_from(ds: &Ds, signed: bool, warnings: &mut Vec<String>) -> Option<ModalityLut> {
    if let Some(item) = first_item(ds, tags::MODALITY_LUT_SEQUENCE) {
        match lut_from(item, signed) {
            Ok(l) => return Some(ModalityLut::Lut(l)),
            Err(e) => warnings.push(format!("Modality LUT Sequence ignored: {e}")),
        }
    }
    let slope = float(ds, tags::RESCALE_SLOPE);
    let intercept = float(ds, tags::RESCALE_INTERCEPT);
    if slope.is_none() && intercept.is_none() {
        return None;
    }
    Some(ModalityLut::Rescale(Rescale {
        slope: slope.unwrap_or(1.0),
        intercept: intercept.unwrap_or(0.0),
    }))
}

fn voi_from(ds: &Ds, lut_signed: bool, warnings: &mut Vec<String>) -> Option<Voi> {
    let centers = floats(ds, tags::WINDOW_CENTER);
    let widths = floats(ds, tags::WINDOW_WIDTH);
    if let (Some(c), Some(w)) = (centers, widths) {
        let function = match string(ds, tags::VOILUT_FUNCTION) {
            None => VoiLutFunction::Linear,
            Some(code) => VoiLutFunction::from_code(&code).unwrap_or_else(|| {
                warnings.push(format!("unknown VOI LUT Function '{code}', LINEAR used"));
                VoiLutFunction::Linear
            }),
        };
        return Some(Voi::Window(Window {
            center: c[0],
            width: w[0],
            function,
        }));
    }
    if let Some(item) = first_item(ds, tags::VOILUT_SEQUENCE) {
        match lut_from(item, lut_signed) {
            Ok(l) => return Some(Voi::Lut(l)),
            Err(e) => warnings.push(format!("VOI LUT Sequence ignored: {e}")),
        }
    }
    None
}

/// Per-frame attributes for `frames` frames. For enhanced objects the Per-frame Functional
/// Groups override the Shared ones, which override the top level (PS3.3 C.7.6.16.1).
/// `signed`: Pixel Representation is 1 (signed stored values).
pub fn frame_attrs(ds: &Ds, frames: usize, signed: bool, warnings: &mut Vec<String>) -> Vec<FrameAttrs> {
    let top_plane = plane_from(ds);
    let top_mod = modality_lut_from(ds, signed, warnings);
    // The VOI LUT input is the Modality LUT output; it is signed when that can be negative.
    let voi_signed = signed
        || matches!(top_mod, Some(ModalityLut::Rescale(r)) if r.intercept < 0.0 || r.slope < 0.0);
    let top_voi = voi_from(ds, voi_signed, warnings);
    let shared = first_item(ds, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = items(ds, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if per_frame.is_empty() && shared.is_none() {
        return vec![
            FrameAttrs {
                plane: top_plane,
                modality_lut: top_mod,
                voi: top_voi,
                temporal_index: int(ds, tags::TEMPORAL_POSITION_IDENTIFIER),
                stack_position: None,
            };
            frames
        ];
    }
    if !per_frame.is_empty() && per_frame.len() != frames {
        warnings.push(format!(
            "Per-frame Functional Groups has {} items for {} frames",
            per_frame.len(),
            frames
        ));
    }
    let mut out = Vec::with_capacity(frames);
    for f in 0..frames {
        let groups: Vec<&Ds> = per_frame.get(f).into_iter().chain(shared).collect();
        let mut plane = top_plane;
        let mut modality_lut = top_mod.clone();
        let mut voi = top_voi.clone();
        let mut temporal_index = None;
        let mut stack_position = None;
        // Shared first, then per-frame, so per-frame values win.
        for g in groups.iter().rev() {
            if let Some(i) = first_item(g, tags::PLANE_POSITION_SEQUENCE) {
                if let Some(p) = plane_from(i).position {
                    plane.position = Some(p);
                }
            }
            if let Some(i) = first_item(g, tags::PLANE_ORIENTATION_SEQUENCE) {
                if let Some(o) = plane_from(i).orientation {
                    plane.orientation = Some(o);
                }
            }
            if let Some(i) = first_item(g, tags::PIXEL_MEASURES_SEQUENCE) {
                let p = plane_from(i);
                if p.pixel_spacing.is_some() {
                    plane.pixel_spacing = p.pixel_spacing;
                }
                if p.slice_thickness.is_some() {
                    plane.slice_thickness = p.slice_thickness;
                }
            }
            if let Some(i) = first_item(g, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
                if let Some(m) = modality_lut_from(i, signed, warnings) {
                    modality_lut = Some(m);
                }
            }
            if let Some(i) = first_item(g, tags::FRAME_VOILUT_SEQUENCE) {
                if let Some(v) = voi_from(i, true, warnings) {
                    voi = Some(v);
                }
            }
            if let Some(i) = first_item(g, tags::FRAME_CONTENT_SEQUENCE) {
                if let Some(t) = int(i, tags::TEMPORAL_POSITION_INDEX) {
                    temporal_index = Some(t);
                }
                if let Some(s) = int(i, tags::IN_STACK_POSITION_NUMBER) {
                    stack_position = Some(s);
                }
            }
        }
        out.push(FrameAttrs {
            plane,
            modality_lut,
            voi,
            temporal_index,
            stack_position,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};

    /// A data set of DS elements; `\` separates values, as in a file (PS3.5 6.4).
    pub(crate) fn ds(elements: &[(Tag, &str)]) -> Ds {
        let mut ds = Ds::new_empty();
        for &(tag, value) in elements {
            let values = PrimitiveValue::Strs(value.split('\\').map(str::to_string).collect());
            ds.put(DataElement::new(tag, VR::DS, values));
        }
        ds
    }

    #[test]
    fn plane_reads_position_orientation_spacing_thickness() {
        let p = plane_from(&ds(&[
            (tags::IMAGE_POSITION_PATIENT, "-5\\7.5\\12"),
            (tags::IMAGE_ORIENTATION_PATIENT, "1\\0\\0\\0\\0.8\\-0.6"),
            (tags::PIXEL_SPACING, "0.7\\0.9"),
            (tags::SLICE_THICKNESS, "2.5"),
        ]));
        assert_eq!(p.position, Some([-5.0, 7.5, 12.0]));
        assert_eq!(p.orientation, Some([1.0, 0.0, 0.0, 0.0, 0.8, -0.6]));
        assert_eq!(p.pixel_spacing, Some([0.7, 0.9]));
        assert_eq!(p.slice_thickness, Some(2.5));
    }

    #[test]
    fn plane_values_that_cannot_be_geometry_are_none() {
        for spacing in ["0\\0.9", "0.7\\-0.9", "0.7", "abc\\1"] {
            let p = plane_from(&ds(&[(tags::PIXEL_SPACING, spacing)]));
            assert_eq!(p.pixel_spacing, None, "Pixel Spacing {spacing:?}");
        }
        let p = plane_from(&ds(&[
            (tags::IMAGE_POSITION_PATIENT, "1\\2"),
            (tags::IMAGE_ORIENTATION_PATIENT, "1\\0\\0\\0\\1"),
        ]));
        assert_eq!((p.position, p.orientation), (None, None));
        assert_eq!(plane_from(&Ds::new_empty()), FramePlane::default());
    }
}
