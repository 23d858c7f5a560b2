//! Our JPEG DCT decoder (baseline / extended 12-bit) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(|| {
        let _ = medvqa_ingest::codec::jpeg_dct::decode(data);
    });
});
