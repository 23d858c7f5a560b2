//! Decodes every image in `../shared/fixtures/dicom/` and checks shape, min and max of the
//! stored values against what pydicom 3.0.2 + pylibjpeg decoded (`_dicom_index.csv`, written by
//! the fixtures' curators). Files pydicom failed on must give a clean error here, never a panic.

use std::path::{Path, PathBuf};

use medvqa_ingest::dicom::{self, attrs, PixelAttrs, ReadExtent};

fn shared_dicom() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/dicom");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is absent; real-DICOM reference checks not run", p.display());
        None
    }
}

/// Splits one CSV line (the index quotes fields that contain commas or newlines).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            _ => field.push(c),
        }
    }
    rows
}

/// Stored values (modality LUT off) of every frame, `[frames, rows, cols, channels]`.
fn stored(path: &Path) -> Result<(Vec<usize>, f32, f32), String> {
    let src = dicom::open(path, ReadExtent::Full).map_err(|e| e.to_string())?;
    let pa = PixelAttrs::read(path, src.dataset()).map_err(|e| e.to_string())?;
    let mut w = Vec::new();
    let mut fa = attrs::frame_attrs(src.dataset(), pa.frames, pa.signed, &mut w);
    for f in &mut fa {
        f.modality_lut = None;
    }
    let px = dicom::decode(path, &src, &pa, &fa, dicom::pixels::DEFAULT_MAX_SAMPLES)
        .map_err(|e| e.to_string())?;
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in &px.data {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let mut shape = vec![];
    if px.frames > 1 {
        shape.push(px.frames);
    }
    shape.push(px.rows);
    shape.push(px.cols);
    if px.channels > 1 {
        shape.push(px.channels);
    }
    Ok((shape, lo, hi))
}

#[test]
fn decodes_like_pydicom_on_every_indexed_file() {
    let Some(root) = shared_dicom() else { return };
    let mut checked = 0;
    let mut failures = Vec::new();
    for set in ["pydicom_test_files", "dcm_qa_ts"] {
        let dir = root.join(set);
        let text = std::fs::read_to_string(dir.join("_dicom_index.csv")).unwrap();
        let rows = csv_rows(&text);
        let header = &rows[0];
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let (c_path, c_decode, c_pi) = (col("path"), col("decode"), col("photometric"));
        for row in &rows[1..] {
            let decode = &row[c_decode];
            if row[c_pi] == "PALETTE COLOR" {
                // pydicom's pixel_array leaves palette indices unmapped; the palette is tested
                // on its own fixtures.
                continue;
            }
            let path = dir.join(&row[c_path]);
            let ours = stored(&path);
            if let Some(rest) = decode.strip_prefix("ok ") {
                // "shape=512x512 dtype=int16 min=-2971 max=2836"
                let get = |k: &str| {
                    rest.split(' ')
                        .find_map(|t| t.strip_prefix(k))
                        .unwrap()
                        .to_string()
                };
                let shape: Vec<usize> = get("shape=").split('x').map(|s| s.parse().unwrap_or_else(|_| panic!("{rest}"))).collect();
                let (min, max): (f64, f64) = (get("min=").parse().unwrap(), get("max=").parse().unwrap());
                checked += 1;
                match ours {
                    // Our arrays are float32: compare at that precision (32-bit samples round).
                    Ok((s, lo, hi)) if s == shape && lo == min as f32 && hi == max as f32 => {}
                    Ok((s, lo, hi)) => failures.push(format!(
                        "{}: ours shape {s:?} min {lo} max {hi}; pydicom {shape:?} {min} {max}",
                        row[c_path]
                    )),
                    Err(e) => failures.push(format!("{}: ours failed: {e}", row[c_path])),
                }
            } else if decode.starts_with("FAIL") {
                // pydicom could not decode it either: we must not panic; an error or a
                // decode are both acceptable here, and the error must name the file.
                if let Err(e) = ours {
                    assert!(e.contains(&row[c_path].rsplit('/').next().unwrap().to_string()), "{e}");
                }
            }
        }
    }
    for f in &failures {
        eprintln!("MISMATCH {f}");
    }
    assert!(checked > 50, "only {checked} reference rows");
    assert!(failures.is_empty(), "{} of {checked} files differ from pydicom", failures.len());
}
