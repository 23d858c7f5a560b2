//! Files → the images of one prompt, through the ingest crate's model stage (the checkpoint's
//! own `preprocessor_config.json`): a PNG/JPEG or a 2D DICOM is one image; a CT/MR series folder,
//! a 3D NIfTI or a multi-frame object becomes its sampled slices, each one image, in slice order,
//! with CT in MedGemma 1.5's three-window RGB unless a window is given (ingest's `presets`).

use std::path::PathBuf;

use medvqa_ingest::lut::Window;
use medvqa_ingest::pipeline::{self, ItemKind, Options};

use crate::error::VqaError;

/// One image of a prompt, preprocessed for the model.
#[derive(Clone, Debug)]
pub struct PromptImage {
    /// `[3, h, w]` row-major, normalised as the checkpoint's image processor does.
    pub pixels: Vec<f32>,
    /// `[3, h, w]`.
    pub shape: [usize; 3],
    /// The file(s) it came from.
    pub source: Vec<PathBuf>,
    /// For a slice of a volume (or a frame): its 1-based number among the slices kept, the
    /// number the prompt's `SLICE n` text carries.
    pub slice: Option<usize>,
    /// DICOM modality when known.
    pub modality: Option<String>,
}

/// How files become prompt images.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// The checkpoint's `preprocessor_config.json`.
    pub processor_config: PathBuf,
    /// VOI window overriding the file's (DICOM / deep images).
    pub window: Option<Window>,
    /// Slices kept of a volume, sampled uniformly as MedGemma 1.5's CT notebook does.
    pub max_slices: usize,
}

/// Reads `inputs` (files or folders, as `medvqa ingest` takes them) into prompt images, in the
/// order given. Any input that cannot be read is an error naming it: a question about images the
/// model did not see would be answered about the wrong evidence.
pub fn load_images(inputs: &[PathBuf], opts: &ImageOptions) -> Result<Vec<PromptImage>, VqaError> {
    if let Some(missing) = inputs.iter().find(|p| !p.exists()) {
        return Err(VqaError::Input { path: missing.clone(), reason: "does not exist".into() });
    }
    let mut ingest = Options::for_hf_processor(opts.processor_config.clone(), opts.window, false);
    if let Some(stage) = ingest.model.as_mut() {
        stage.slices = Some(opts.max_slices.max(1));
    }
    let plan = pipeline::plan(inputs);
    if let Some(f) = plan.failures.first() {
        return Err(VqaError::Input { path: f.source.clone(), reason: f.error.clone() });
    }
    let mut jobs = plan.jobs;
    pipeline::sort_in_input_order(&mut jobs, inputs);
    let names = pipeline::names(&jobs);
    let mut images = Vec::new();
    for (job, name) in jobs.iter().zip(&names) {
        let out = pipeline::run_job(job, name, &ingest);
        if let Some(f) = out.failures.first() {
            return Err(VqaError::Input { path: f.source.clone(), reason: f.error.clone() });
        }
        for item in out.items {
            let sc = &item.sidecar;
            let data = item.array.as_standard_layout();
            let values = data.as_slice().unwrap_or_default();
            match *item.array.shape() {
                [c, h, w] => images.push(PromptImage {
                    pixels: values.to_vec(),
                    shape: [c, h, w],
                    source: sc.source.clone(),
                    slice: None,
                    modality: sc.modality.clone(),
                }),
                [n, c, h, w] => {
                    let size = c * h * w;
                    for k in 0..n {
                        images.push(PromptImage {
                            pixels: values[k * size..(k + 1) * size].to_vec(),
                            shape: [c, h, w],
                            source: if sc.kind == ItemKind::Volume && sc.source.len() == n {
                                vec![sc.source[k].clone()]
                            } else {
                                sc.source.clone()
                            },
                            slice: Some(k + 1),
                            modality: sc.modality.clone(),
                        });
                    }
                }
                ref other => {
                    return Err(VqaError::Input {
                        path: sc.source.first().cloned().unwrap_or_default(),
                        reason: format!("model input of shape {other:?}, expected [3, H, W] or [S, 3, H, W]"),
                    })
                }
            }
        }
    }
    if images.is_empty() {
        let path = inputs.first().cloned().unwrap_or_default();
        return Err(VqaError::Input { path, reason: "no image found".into() });
    }
    Ok(images)
}
