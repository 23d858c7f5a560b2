//! DICOM: opening files of every layout, attributes, pixel decoding to modality values.

pub mod attrs;
pub mod color;
pub mod encapsulated;
pub mod jls;
pub mod open;
pub mod pixels;

pub use open::{open, DicomSource, FileLayout, ReadExtent};
pub use pixels::{decode, DecodedPixels, PixelAttrs};
