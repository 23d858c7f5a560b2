//! Helpers shared by the model crate's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;

/// `crates/model/tests/fixtures/parity`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

/// Every tensor of a safetensors file as (shape, f32 values).
pub fn read_tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} in {}", path.display());
            let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// Asserts `got` has the reference's shape and every value within `tol` (max abs), printing the
/// worst difference so a test log shows how close the port is.
pub fn assert_close<const D: usize>(case: &str, name: &str, got: Tensor<D>, want: &(Vec<usize>, Vec<f32>), tol: f32) {
    let dims = got.dims().to_vec();
    assert_eq!(&dims, &want.0, "{case}: {name} shape");
    let values: Vec<f32> = got.into_data().try_into_vec::<f32>().unwrap();
    let worst = values.iter().zip(&want.1).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(values.iter().all(|v| v.is_finite()), "{case}: {name} has non-finite values");
    eprintln!("{case}: {name} {dims:?} max abs diff {worst:.2e}");
    assert!(worst <= tol, "{case}: {name} max abs diff {worst:e} > {tol:e}");
}
