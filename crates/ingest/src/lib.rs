//! Reads medical images the way the standards say and turns them into arrays with true
//! geometry, then into model input.
//!
//! - DICOM (Part 10 with or without preamble/meta, raw datasets, DICOMDIR), NIfTI-1/2, PNG,
//!   JPEG, TIFF.
//! - The PS3.3 pixel pipeline: stored values → Modality LUT → VOI LUT, colour conversion.
//! - Series assembly into [`Volume`]s with spacing, origin and direction cosines.
//! - Model-input steps (windows, resize, normalisation) recorded as provenance.

pub mod codec;
pub mod dicom;
pub mod error;
pub mod lut;
pub mod model_input;
pub mod nifti;
pub mod npy;
pub mod pipeline;
pub mod presets;
pub mod raster;
pub mod resample;
pub mod resize;
pub mod series;
pub mod volume;

pub use error::{IngestError, Result};
pub use volume::Volume;
