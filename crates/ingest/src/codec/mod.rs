//! Image codecs we implement ourselves where the DICOM stack has none.

pub mod jpeg_dct;
