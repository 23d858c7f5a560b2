//! Burn modules for medical visual question answering: vision encoders (SigLIP, CLIP ViT),
//! loaded from HuggingFace checkpoint folders, on any Burn device (WGPU or the CPU backend).
//!
//! Layout: [`checkpoint`] reads safetensors (single or sharded, memory-mapped) and tracks which
//! tensors a build used; [`vision`] holds the towers; [`nn`] the shared layers. The device is
//! chosen once by the caller and passed to `load`.

pub mod causal;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod generate;
pub mod nn;
pub mod tensor_io;
pub mod text;
pub mod vision;
pub mod vlm;

pub use error::{ModelError, Result};
