//! Helpers shared by the CLI's end-to-end tests: running the real binary and reading its output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `medvqa` binary built for these tests.
pub fn medvqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medvqa"))
        .args(args)
        .output()
        .expect("run medvqa")
}

/// The exit status (a signal is a test failure).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exit status, not a signal")
}

/// The program's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The model crate's parity fixtures (`tools/parity/make_vision_fixtures.py`).
pub fn parity_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/parity")
}

/// The shared VQA-RAD fixture (`../shared/fixtures/vqa/vqa_rad`), or `None` with a visible SKIP
/// line when it is absent (a fresh clone).
pub fn vqa_rad() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/vqa/vqa_rad");
    if dir.join("VQA_RAD Dataset Public.json").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} not found (VQA-RAD fixture absent)", dir.display());
        None
    }
}

/// The parity fixtures' tiny SigLIP tower (32 px, patch 8, hidden 32) copied into `root/siglip32`
/// with a SigLIP processor config at its 32 px, as `encode` and `encode-archive` need.
pub fn tiny_siglip_model(root: &Path) -> PathBuf {
    let dir = root.join("siglip32");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(parity_fixtures().join("siglip_vision").join(f), dir.join(f)).expect("copy checkpoint");
    }
    let cfg_path = parity_fixtures().join("preprocess/siglip_224like/preprocessor_config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cfg_path).expect("read")).expect("json");
    cfg["size"] = serde_json::json!({"height": 32, "width": 32});
    std::fs::write(dir.join("preprocessor_config.json"), cfg.to_string()).expect("write");
    dir
}

/// The JSON objects of a JSONL file (manifests, errors), panicking with the file and line.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// Largest |a − b| over two vectors of one length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
