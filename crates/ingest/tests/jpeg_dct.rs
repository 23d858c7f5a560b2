//! The sequential-DCT JPEG decoder against libjpeg-turbo (fixtures made by
//! `tools/fixtures/make_jpeg12.py`), against pydicom + pylibjpeg on the real 12-bit
//! JPEG Extended DICOM files, and under mutated input.

use std::io::Read;
use std::path::{Path, PathBuf};

use medvqa_ingest::codec::jpeg_dct::{decode, DecodedJpeg, JpegDctError, MAX_SAMPLES};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg12")
}

fn manifest() -> Value {
    let path = fixtures().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_u16_le(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Max and mean absolute difference.
fn diff(ours: &[u16], reference: &[u16]) -> (u16, f64) {
    assert_eq!(ours.len(), reference.len(), "sample count");
    let mut max = 0u16;
    let mut sum = 0u64;
    for (&a, &b) in ours.iter().zip(reference) {
        let d = a.abs_diff(b);
        max = max.max(d);
        sum += u64::from(d);
    }
    (max, sum as f64 / ours.len().max(1) as f64)
}

fn shared_dicom(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/dicom/pydicom_test_files/test_files")
        .join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("SKIP: {} is absent", path.display());
        None
    }
}

/// Frame 1's JPEG codestream: the encapsulated Pixel Data fragments from the first one up
/// to the next fragment that starts a new codestream with SOI (PS3.5 A.4: a frame may
/// span several fragments, a fragment never holds two frames).
///
/// `SC_rgb_jpeg.dcm` declares explicit VR but is encoded implicit, which dicom-object
/// refuses; for such a file the codestream is taken from the first SOI in the raw bytes
/// (single-fragment files only; the decoder stops at EOI).
fn dicom_codestream(path: &Path) -> Vec<u8> {
    let obj = match dicom_object::open_file(path) {
        Ok(obj) => obj,
        Err(e) => {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let soi = bytes
                .windows(3)
                .position(|w| w == [0xFF, 0xD8, 0xFF])
                .unwrap_or_else(|| panic!("{}: {e}; no SOI in the file either", path.display()));
            eprintln!(
                "{}: dicom-object: {e}; using the raw codestream",
                path.display()
            );
            return bytes[soi..].to_vec();
        }
    };
    let pixel = obj
        .element(dicom_dictionary_std::tags::PIXEL_DATA)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fragments = pixel
        .fragments()
        .unwrap_or_else(|| panic!("{}: pixel data is not encapsulated", path.display()));
    let mut out: Vec<u8> = Vec::new();
    for f in fragments {
        if !out.is_empty() && f.starts_with(&[0xFF, 0xD8]) {
            break;
        }
        out.extend_from_slice(f);
    }
    out
}

fn pydicom_reference(stem: &str) -> (Vec<u16>, Value) {
    let entry = manifest()["dicom"]["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|f| f["file"] == format!("{stem}.dcm"))
                .cloned()
        })
        .unwrap_or_else(|| panic!("{stem} not in manifest"));
    let path = fixtures().join(entry["reference"].as_str().expect("reference"));
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .expect("gunzip reference");
    (read_u16_le(&raw), entry)
}

#[test]
fn jpeg_dct_matches_libjpeg_turbo_on_fixtures() {
    let m = manifest();
    let images = m["images"].as_array().expect("images");
    assert!(images.len() >= 12, "manifest lists {} images", images.len());
    let mut worst = 0u16;
    for img in images {
        let name = img["name"].as_str().expect("name");
        let jpg =
            std::fs::read(fixtures().join(img["jpeg"].as_str().expect("jpeg"))).expect("read jpeg");
        let reference = read_u16_le(
            &std::fs::read(fixtures().join(img["reference"].as_str().expect("ref")))
                .expect("read ref"),
        );
        let shape: Vec<u64> = img["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        let got = decode(&jpg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            [
                u64::from(got.height),
                u64::from(got.width),
                u64::from(got.components)
            ],
            [shape[0], shape[1], shape[2]],
            "{name}: shape"
        );
        assert_eq!(
            Some(u64::from(got.precision)),
            img["precision"].as_u64(),
            "{name}: precision"
        );
        let (max, mean) = diff(&got.samples, &reference);
        eprintln!(
            "{name}: {}x{}x{} P={} sampling={} rst={} max|diff|={max} mean|diff|={mean:.5}",
            got.height,
            got.width,
            got.components,
            got.precision,
            img["sampling"],
            img["restart_interval"]
        );
        assert!(
            max <= 1,
            "{name}: max abs difference {max} > 1 vs libjpeg-turbo"
        );
        worst = worst.max(max);
    }
    eprintln!("worst max|diff| over all fixtures: {worst}");
}

#[test]
fn jpeg_dct_restart_and_separate_scans_decode_like_their_sources() {
    // The re-encoded files carry the same quantised coefficients as their sources, so our
    // decoder must give bit-identical output for both (restart and scan handling only).
    for (rewritten, source) in [
        ("gray12_rst5_64x48", "gray12_64x48"),
        ("gray12_q10_dqt16_64x48", "gray12_q10_64x48"),
        ("ycc420_12_rst3_64x48", "ycc420_12_64x48"),
        ("ycc420_8_rst2_scans_37x29", "ycc420_8_37x29"),
    ] {
        let a = decode(&std::fs::read(fixtures().join(format!("{rewritten}.jpg"))).expect("read"))
            .expect(rewritten);
        let b = decode(&std::fs::read(fixtures().join(format!("{source}.jpg"))).expect("read"))
            .expect(source);
        assert_eq!(a, b, "{rewritten} vs {source}");
    }
}

#[test]
fn jpeg_dct_decodes_jpgextended_dcm_like_pylibjpeg() {
    let Some(path) = shared_dicom("JPGExtended.dcm") else {
        return;
    };
    let stream = dicom_codestream(&path);
    let got = decode(&stream).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (reference, entry) = pydicom_reference("JPGExtended");
    assert_eq!(
        (got.height, got.width, got.components, got.precision),
        (1024, 256, 1, 12)
    );
    let (max, mean) = diff(&got.samples, &reference);
    let (lo, hi) = (
        got.samples.iter().min().copied(),
        got.samples.iter().max().copied(),
    );
    eprintln!(
        "JPGExtended.dcm: min={lo:?} max={hi:?} (pydicom+pylibjpeg: min={} max={}) max|diff|={max} mean|diff|={mean:.5}",
        entry["min"], entry["max"]
    );
    assert!(
        max <= 1,
        "max abs difference {max} > 1 vs pydicom + pylibjpeg"
    );
}

#[test]
fn jpeg_dct_decodes_jpeg_lossy_dcm_despite_se_zero() {
    // NEMA's NM1_JPLY: identical to JPGExtended.dcm except that its SOS says Se = 0.
    // libjpeg(-turbo) and GDCM warn and decode it as a full sequential scan, pylibjpeg's
    // libjpeg refuses it; we decode it like libjpeg.
    let (Some(lossy), Some(fixed)) = (
        shared_dicom("JPEG-lossy.dcm"),
        shared_dicom("JPGExtended.dcm"),
    ) else {
        return;
    };
    let stream = dicom_codestream(&lossy);
    let sos = stream
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("SOS");
    assert_eq!(
        &stream[sos + 4..sos + 10],
        &[1, 1, 0, 0, 0, 0],
        "Ns, Cs, Td/Ta, Ss, Se=0, Ah/Al"
    );
    let got = decode(&stream).unwrap_or_else(|e| panic!("{}: {e}", lossy.display()));
    let expect = decode(&dicom_codestream(&fixed)).expect("JPGExtended");
    assert_eq!(got, expect);
    let (reference, _) = pydicom_reference("JPGExtended");
    let (max, mean) = diff(&got.samples, &reference);
    eprintln!(
        "JPEG-lossy.dcm vs pylibjpeg's JPGExtended.dcm: max|diff|={max} mean|diff|={mean:.5}"
    );
    assert!(max <= 1);
}

fn all_fixture_jpegs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for img in manifest()["images"].as_array().expect("images") {
        out.push(
            std::fs::read(fixtures().join(img["jpeg"].as_str().expect("jpeg"))).expect("read"),
        );
    }
    out
}

#[test]
fn jpeg_dct_every_truncation_errors_without_panic() {
    for name in ["gray12_rst5_64x48", "ycc420_8_rst2_scans_37x29"] {
        let full = std::fs::read(fixtures().join(format!("{name}.jpg"))).expect("read");
        // Everything short of the final EOI misses scan data or a segment.
        for cut in 0..full.len() - 2 {
            if let Ok(img) = decode(&full[..cut]) {
                panic!(
                    "{name}: prefix of {cut} bytes decoded to {}x{}",
                    img.width, img.height
                );
            }
        }
    }
}

/// xorshift64*: a deterministic stream for the mutation test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn jpeg_dct_mutated_inputs_never_panic() {
    let seeds = all_fixture_jpegs();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut err) = (0u32, 0u32);
    for i in 0..6000 {
        let mut data = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(data.len());
            match rng.below(4) {
                0 => data[at] ^= 1 << rng.below(8),
                1 => data[at] = rng.next() as u8,
                2 => data.insert(at, [0xFF, 0x00, 0xD0, 0xD9, 0xC4][rng.below(5)]),
                _ => {
                    data.remove(at);
                }
            }
        }
        match decode(&data) {
            Ok(img) => {
                assert_eq!(
                    img.samples.len(),
                    usize::from(img.width) * usize::from(img.height) * usize::from(img.components)
                );
                let max = (1u32 << img.precision) - 1;
                assert!(img.samples.iter().all(|&s| u32::from(s) <= max));
                ok += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                err += 1;
            }
        }
    }
    eprintln!("mutations: {ok} decoded, {err} refused, none panicked");
}

#[test]
fn jpeg_dct_refuses_huge_frames_before_allocating() {
    // SOI, SOF1 65535 x 65535 x 3 (12 × 2^32 bytes if allocated), then nothing.
    let mut data = vec![0xFF, 0xD8, 0xFF, 0xC1, 0, 17, 12, 0xFF, 0xFF, 0xFF, 0xFF, 3];
    for id in 1..=3u8 {
        data.extend_from_slice(&[id, 0x11, 0]);
    }
    let err = decode(&data).expect_err("too large");
    assert!(
        matches!(
            err,
            JpegDctError::TooLarge {
                width: 65535,
                height: 65535,
                components: 3,
                limit: MAX_SAMPLES
            }
        ),
        "{err}"
    );
}

#[test]
fn jpeg_dct_names_the_unsupported_process() {
    // Turn the 12-bit extended file into a progressive (SOF2) and an arithmetic (SOF9) one.
    let jpg = std::fs::read(fixtures().join("gray12_64x48.jpg")).expect("read");
    let sof = jpg
        .windows(2)
        .position(|w| w == [0xFF, 0xC1])
        .expect("SOF1");
    for (code, name) in [(0xC2u8, "SOF2"), (0xC9, "SOF9"), (0xC3, "SOF3")] {
        let mut data = jpg.clone();
        data[sof + 1] = code;
        let err = decode(&data).expect_err("unsupported");
        assert!(err.to_string().contains(name), "{err}");
        assert!(matches!(err, JpegDctError::UnsupportedFrame { .. }));
    }
    // A damaged restart marker is named.
    let rst = std::fs::read(fixtures().join("gray12_rst5_64x48.jpg")).expect("read");
    let at = rst
        .windows(2)
        .position(|w| w == [0xFF, 0xD1])
        .expect("RST1");
    let mut data = rst.clone();
    data[at + 1] = 0xD3;
    let err = decode(&data).expect_err("bad restart");
    assert!(err.to_string().contains("expected RST1"), "{err}");
}

/// Decoded output layout: components last, and grayscale is one sample per pixel.
#[test]
fn jpeg_dct_layout_is_components_last() {
    let jpg = std::fs::read(fixtures().join("ycc422_8_64x48.jpg")).expect("read");
    let DecodedJpeg {
        width,
        height,
        components,
        samples,
        ..
    } = decode(&jpg).expect("decode");
    assert_eq!(
        samples.len(),
        usize::from(width) * usize::from(height) * usize::from(components)
    );
    let reference =
        read_u16_le(&std::fs::read(fixtures().join("ycc422_8_64x48.u16")).expect("read"));
    // Pixel (row 10, col 20), component 2 (Cr) sits at (10*64 + 20)*3 + 2.
    let i = (10 * 64 + 20) * 3 + 2;
    assert!(samples[i].abs_diff(reference[i]) <= 1);
}

#[test]
fn jpeg_dct_fill_bytes_and_comments_change_nothing() {
    // T.81 B.1.1.2: any marker may be preceded by fill bytes 0xFF.
    let jpg = std::fs::read(fixtures().join("gray12_rst5_64x48.jpg")).expect("read");
    let sos = jpg.windows(2).position(|w| w == [0xFF, 0xDA]).expect("SOS");
    let scan_start = sos + 2 + usize::from(u16::from_be_bytes([jpg[sos + 2], jpg[sos + 3]]));
    // Byte stuffing (FF 00) is exercised by this fixture's entropy-coded data.
    assert!(
        jpg[scan_start..].windows(2).any(|w| w == [0xFF, 0x00]),
        "fixture has no stuffed byte"
    );
    // SOI, a COM segment (skipped like APPn), fill bytes before the next marker.
    let mut filled = vec![
        0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x06, b'm', b'v', b'q', b'a', 0xFF, 0xFF, 0xFF,
    ];
    filled.extend_from_slice(&jpg[2..scan_start]);
    let mut restarts = 0;
    let mut i = scan_start;
    while i < jpg.len() {
        if jpg[i] == 0xFF && i + 1 < jpg.len() && (0xD0..=0xD9).contains(&jpg[i + 1]) {
            filled.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
            restarts += usize::from(jpg[i + 1] != 0xD9);
        }
        filled.push(jpg[i]);
        i += 1;
    }
    assert!(restarts >= 8, "only {restarts} RST markers");
    assert_eq!(
        decode(&filled).expect("with fill bytes"),
        decode(&jpg).expect("plain")
    );
}

#[test]
fn jpeg_dct_decodes_8bit_baseline_dicom_like_libjpeg_turbo() {
    // Frame 1 of pydicom's 8-bit JPEG Baseline files (dcmtk, GDCM and other encoders);
    // reference: libjpeg-turbo, stored components, sparse grid + per-component means.
    let path = fixtures().join("dicom_baseline8.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let refs: Value = serde_json::from_str(&text).expect("dicom_baseline8.json");
    let step = refs["grid_step"].as_u64().expect("grid_step") as usize;
    let offset = refs["grid_offset"].as_u64().expect("grid_offset") as usize;
    for entry in refs["files"].as_array().expect("files") {
        let name = entry["file"].as_str().expect("file");
        let Some(path) = shared_dicom(name) else {
            continue;
        };
        let got = decode(&dicom_codestream(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as usize))
            .collect();
        let (h, w, c) = (
            usize::from(got.height),
            usize::from(got.width),
            usize::from(got.components),
        );
        assert_eq!(vec![h, w, c], shape, "{name}: shape");
        assert_eq!(got.precision, 8, "{name}");
        let grid: Vec<u16> = entry["grid"]
            .as_array()
            .expect("grid")
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u16))
            .collect();
        let mut ours = Vec::with_capacity(grid.len());
        for y in (offset..h).step_by(step) {
            for x in (offset..w).step_by(step) {
                ours.extend_from_slice(&got.samples[(y * w + x) * c..(y * w + x + 1) * c]);
            }
        }
        let (max, _) = diff(&ours, &grid);
        let means: Vec<f64> = (0..c)
            .map(|k| {
                got.samples
                    .iter()
                    .skip(k)
                    .step_by(c)
                    .map(|&s| f64::from(s))
                    .sum::<f64>()
                    / (h * w) as f64
            })
            .collect();
        let worst_mean = means
            .iter()
            .zip(entry["mean"].as_array().expect("mean"))
            .map(|(a, b)| (a - b.as_f64().expect("mean")).abs())
            .fold(0.0, f64::max);
        eprintln!("{name}: {h}x{w}x{c} grid max|diff|={max} mean shift={worst_mean:.4}");
        assert!(max <= 1, "{name}: grid max abs difference {max}");
        assert!(
            worst_mean < 0.05,
            "{name}: component mean differs by {worst_mean}"
        );
    }
}
