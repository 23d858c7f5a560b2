//! Inputs the fuzz targets (`fuzz/`, see fuzz/README.md) found to misbehave, reduced to small
//! files of our own under `tests/fixtures/fuzz/`, each with the behaviour it must keep.
//!
//! Oversized value lengths: dicom-rs 0.10 reserves and zero-fills a value's declared length
//! before reading it, so a file of a few hundred bytes declaring a 4 GiB value cost 4 GiB of
//! memory and seconds (the fuzzer's first finding, on pydicom's UN_sequence.dcm). The files:
//! - `oversized_ob_explicit.dcm`: Part 10, explicit VR LE; Rows, Columns, then a private
//!   (0029,1010) OB declaring 0xFFFFFFF0 bytes with 4 present.
//! - `oversized_in_sequence.dcm`: Part 10, explicit VR LE; an undefined-length SQ
//!   (0008,1115) holding an undefined-length item holding (0009,1010) OW declaring 0xFFFFFFF0.
//! - `oversized_raw_implicit.dcm`: no meta, implicit VR LE; (0008,0016) declaring 0xFFFFFFF0.
//! - `oversized_deflated.dcm`: Part 10, deflated explicit VR LE; once inflated, Rows then a
//!   private OB declaring 0xFFFFFFF0 (the declared lengths count inflated bytes).
//! - `oversized_after_nested_pixel_data.dcm`: Part 10, explicit VR LE; a sequence item holding
//!   a 2-byte (7FE0,0010), then a private OB declaring 0xFFFFFFF0 (a header read stops at the
//!   top-level Pixel Data only).
//!
//! JPEG 2000 image larger than the header: openjp2 allocates what the codestream's SIZ marker
//! declares (a 3.6 KB mutated file asked for > 2 GB). `j2k_siz_larger_than_header.dcm`: Part 10,
//! JPEG 2000 lossless, Rows = Columns = 2, one fragment holding SOC, a SIZ of 65536 × 65536 × 1,
//! EOC.

use std::path::{Path, PathBuf};

use medvqa_ingest::dicom::{self, ReadExtent};
use medvqa_ingest::pipeline::{self, Options, Stage};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(name)
}

/// The process's peak resident set (VmHWM) in MiB; None where /proc is absent.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

const OVERSIZED: [&str; 5] = [
    "oversized_ob_explicit.dcm",
    "oversized_in_sequence.dcm",
    "oversized_raw_implicit.dcm",
    "oversized_deflated.dcm",
    "oversized_after_nested_pixel_data.dcm",
];

#[test]
fn oversized_value_lengths_are_refused_before_allocation() {
    for name in OVERSIZED {
        let path = fixture(name);
        for extent in [ReadExtent::Header, ReadExtent::Full] {
            let err = match dicom::open(&path, extent) {
                Ok(_) => panic!("{name} ({extent:?}) opened although a value declares 4 GiB in a tiny file"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(name), "{name}: error does not name the file: {err}");
            assert!(err.contains("declares 4294967280 value bytes"), "{name}: error does not say why: {err}");
        }
    }
    // The bug's signature was memory, not the error: a zero-filled 4 GiB value per attempt.
    match peak_rss_mib() {
        Some(mib) => assert!(mib < 1024, "peak resident memory {mib} MiB after opening 13–208 byte files"),
        None => eprintln!("SKIP: peak memory check needs /proc/self/status"),
    }
}

#[test]
fn oversized_value_lengths_fail_cleanly_through_the_pipeline() {
    let opts = Options {
        stage: Stage::Display,
        ..Options::default()
    };
    for name in OVERSIZED {
        let path = fixture(name);
        let plan = pipeline::plan(std::slice::from_ref(&path));
        let mut failures = plan.failures;
        let names = pipeline::names(&plan.jobs);
        for (job, item_name) in plan.jobs.iter().zip(&names) {
            failures.extend(pipeline::run_job(job, item_name, &opts).failures);
        }
        assert_eq!(failures.len(), 1, "{name}: {failures:?}");
        assert!(failures[0].error.contains("declares"), "{name}: {}", failures[0].error);
    }
}

#[test]
fn jpeg2000_codestream_larger_than_the_header_is_refused_before_decoding() {
    let path = fixture("j2k_siz_larger_than_header.dcm");
    let opts = Options {
        stage: Stage::Modality,
        ..Options::default()
    };
    let plan = pipeline::plan(std::slice::from_ref(&path));
    assert!(plan.failures.is_empty(), "{:?}", plan.failures);
    assert_eq!(plan.jobs.len(), 1);
    let names = pipeline::names(&plan.jobs);
    let out = pipeline::run_job(&plan.jobs[0], &names[0], &opts);
    assert!(out.items.is_empty(), "decoded {} item(s) from a codestream that does not match its header", out.items.len());
    let failures = out.failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let err = &failures[0].error;
    assert!(err.contains("65536×65536 pixels × 1 components") && err.contains("= 4"), "{err}");
}
