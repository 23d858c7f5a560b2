//! Burn modules for medical visual question answering: vision encoders (SigLIP, CLIP ViT),
//! the projector that fuses image embeddings into a text decoder (Gemma 3, Llama families),
//! generation with a KV cache, and option scoring.
//!
//! Not built yet: this crate is the home of the model issues (vision encoders first). It stays
//! empty rather than half-built so the workspace compiles without the Burn stack until then.

pub mod device;
pub mod tensor_io;
