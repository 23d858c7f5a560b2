//! What the targets share: a scratch file for the path-based readers, one rayon thread, the
//! pipeline run at the display stage, and panic reporting that tells caught panics from
//! escaped ones.
//!
//! libfuzzer-sys installs a panic hook that aborts on *every* panic, even one that our code
//! catches on purpose (`catch_unwind` around third-party decoders in `dicom/pixels.rs`,
//! `dicom/encapsulated.rs`). That would report bugs we already contain, so the hook is
//! replaced by one that only remembers the last panic; a panic that escapes the pipeline is
//! caught here, printed with that record, and aborts — which libFuzzer reports as a crash.

// Each target uses only part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use medvqa_ingest::pipeline::{self, Options, Stage};

/// Small enough that the fuzzer explores headers instead of allocating (16 MiB of f32).
pub const MAX_SAMPLES: u64 = 1 << 22;

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
static SETUP: Once = Once::new();

fn setup() {
    SETUP.call_once(|| {
        // The fuzzer gets one core; the pipeline's rayon pools must not take the other.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
        std::panic::set_hook(Box::new(|info| {
            // `capture` is free unless RUST_BACKTRACE is set (used when reproducing a crash).
            let bt = std::backtrace::Backtrace::capture();
            let record = format!("{info}\n{bt}");
            if let Ok(mut g) = LAST_PANIC.lock() {
                *g = Some(record);
            }
        }));
    });
}

/// Writes `data` to a per-process scratch file named `name` (the name picks the reader).
pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("medvqa-fuzz-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create scratch folder {}: {e}", dir.display());
    }
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, data) {
        panic!("cannot write scratch file {}: {e}", path.display());
    }
    path
}

/// Runs `f`; a panic escaping it is printed with its message and location, then aborts.
pub fn run(f: impl FnOnce()) {
    setup();
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        let record = LAST_PANIC.lock().ok().and_then(|g| g.clone()).unwrap_or_default();
        eprintln!("panic escaped medvqa-ingest: {record}");
        std::process::abort();
    }
}

/// Plans `path` like `medvqa ingest path --stage display` and runs every job, checking the
/// display stage's promise: every value is in [0, 1]. NaN passes: float pixel data may carry
/// it as "no value", and the pipeline keeps it rather than inventing one.
pub fn ingest_display(path: &Path) {
    let opts = Options {
        stage: Stage::Display,
        max_samples: MAX_SAMPLES,
        ..Options::default()
    };
    let plan = pipeline::plan(&[path.to_path_buf()]);
    let names = pipeline::names(&plan.jobs);
    for (job, name) in plan.jobs.iter().zip(&names) {
        // Failures are the expected outcome of most inputs; the items are what is checked.
        for item in pipeline::run_job(job, name, &opts).items {
            let n = item.array.len() as u64;
            assert!(n <= 4 * MAX_SAMPLES, "item {} has {n} values, limit {MAX_SAMPLES}", item.name);
            if let Some(v) = item.array.iter().find(|v| !v.is_nan() && !(0.0..=1.0).contains(*v)) {
                panic!("display stage value {v} outside [0, 1] in item {} (shape {:?})", item.name, item.array.shape());
            }
        }
    }
}
