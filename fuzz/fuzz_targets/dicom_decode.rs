//! One DICOM file through parse, pixel decode and the display stage (planning included:
//! format sniffing, header read, DICOMDIR, series grouping).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(|| harness::ingest_display(&harness::scratch("in.dcm", data)));
});
