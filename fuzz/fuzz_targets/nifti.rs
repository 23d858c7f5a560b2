//! One NIfTI file (`.nii`, or `.nii.gz` when the input starts with the gzip magic) through the
//! reader and the display stage.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod harness;

fuzz_target!(|data: &[u8]| {
    let name = if data.starts_with(&[0x1f, 0x8b]) { "in.nii.gz" } else { "in.nii" };
    harness::run(|| harness::ingest_display(&harness::scratch(name, data)));
});
