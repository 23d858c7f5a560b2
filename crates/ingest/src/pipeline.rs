//! The ingest pipeline: inputs (files, folders, DICOMDIRs) → units (a file, a series, a NIfTI)
//! → items (an array with its sidecar) at the requested stage.
//!
//! Every unit is processed on its own: a failure is reported for its source files and never
//! stops the others; inside a series volume, an unreadable slice is reported alone and the
//! volume is built from the remaining slices. Units run in parallel (rayon), the files of a series too; at most one
//! unit per worker is held in memory, so memory is bounded by the largest series, not by the
//! number of inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Axis, IxDyn};
use rayon::prelude::*;
use serde::Serialize;

use crate::dicom::{self, attrs, pixels::DEFAULT_MAX_SAMPLES, PixelAttrs, ReadExtent};
use crate::error::{IngestError, Result};
use crate::lut::{Voi, Window};
use crate::series::{plan_units, SliceHeader, Unit, VolumePlan};
use crate::volume::cross;

/// How far along the pixel pipeline the output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Stored values through the Modality LUT (HU for CT); colour as stored (0–255).
    Modality,
    /// Modality values through the VOI transform, in [0, 1], 1 brightest.
    Display,
    /// Encoder input `[3, H, W]` / `[slices, 3, H, W]`.
    Model,
}

/// Options of one ingest run.
#[derive(Debug, Clone)]
pub struct Options {
    pub stage: Stage,
    /// VOI window for the display stage, overriding the file's.
    pub window: Option<Window>,
    /// Refuse images that declare more samples than this.
    pub max_samples: u64,
    /// Where the model stage takes its parameters from, for [`Stage::Model`].
    pub model: Option<ModelStage>,
    /// Resample volumes to this spacing `[slice, row, col]` mm (trilinear) before the stage.
    pub resample: Option<[f64; 3]>,
    /// Reorient volumes to this orientation code (e.g. "LPS", see `resample::reorient`).
    pub reorient: Option<String>,
}

/// The model stage's settings: the target processor, options, and slice sampling for volumes.
#[derive(Debug, Clone)]
pub struct ModelStage {
    pub target: crate::model_input::ModelTarget,
    pub options: crate::model_input::ModelOptions,
    /// Keep this many uniformly sampled slices of a volume (MedGemma 1.5 recipe); all if None.
    pub slices: Option<usize>,
}

impl Options {
    /// The model stage driven by a checkpoint's `preprocessor_config.json` (what `encode` and
    /// `debug preprocess` run): every slice kept, `window` applied before the processor when given.
    pub fn for_hf_processor(config: std::path::PathBuf, window: Option<Window>, pad_to_square: bool) -> Options {
        Options {
            stage: Stage::Model,
            window,
            model: Some(ModelStage {
                target: crate::model_input::ModelTarget::HfConfig(config),
                options: crate::model_input::ModelOptions { pad_to_square, ..Default::default() },
                slices: None,
            }),
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stage: Stage::Modality,
            window: None,
            max_samples: DEFAULT_MAX_SAMPLES,
            model: None,
            resample: None,
            reorient: None,
        }
    }
}

/// What kind of array an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// `[rows, cols]` or `[rows, cols, 3]`.
    Image,
    /// `[frames, rows, cols]` (+ `, 3`).
    Frames,
    /// `[slices, rows, cols]` ordered along the slice normal.
    Volume,
}

/// The JSON written beside each array: where it came from and where it sits in the patient.
#[derive(Debug, Clone, Serialize)]
pub struct Sidecar {
    pub source: Vec<PathBuf>,
    pub kind: ItemKind,
    pub shape: Vec<usize>,
    pub stage: Stage,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub photometric: Option<String>,
    /// mm, array axis order (null for an axis without a physical spacing, e.g. frames).
    pub spacing: Option<Vec<Option<f64>>>,
    /// LPS position of the first voxel's centre, mm.
    pub origin: Option<[f64; 3]>,
    /// Row cosine, column cosine, slice normal.
    pub direction: Option<[[f64; 3]; 3]>,
    pub window: Option<Window>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uids: Vec<String>,
    pub warnings: Vec<String>,
    /// The source's format and encoding (e.g. the DICOM transfer syntax).
    pub format: String,
    /// The VOI applied by the display stage when it was not a window (LUT or min–max).
    pub voi: Option<Voi>,
    /// Model-stage steps with their parameters (provenance), when stage is `model`.
    pub preprocessing: Option<serde_json::Value>,
    pub time_point: Option<usize>,
}

impl Sidecar {
    /// A modality-stage sidecar with nothing known but its sources, kind and format; each
    /// reader fills in what its format carries.
    fn new(source: Vec<PathBuf>, kind: ItemKind, format: String) -> Sidecar {
        Sidecar {
            source,
            kind,
            shape: vec![],
            stage: Stage::Modality,
            modality: None,
            body_part: None,
            photometric: None,
            spacing: None,
            origin: None,
            direction: None,
            window: None,
            series_instance_uid: None,
            sop_instance_uids: vec![],
            warnings: vec![],
            format,
            voi: None,
            preprocessing: None,
            time_point: None,
        }
    }
}

/// An ingested array and its sidecar.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub array: ArrayD<f32>,
    pub sidecar: Sidecar,
}

/// A source that could not be ingested, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub source: PathBuf,
    pub error: String,
}

impl Failure {
    fn new(source: &Path, e: impl std::fmt::Display) -> Self {
        Failure {
            source: source.to_path_buf(),
            error: e.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Dicom,
    Nifti,
    Raster,
}

/// A unit of work: one output item or a few (4D NIfTI).
#[derive(Debug, Clone)]
pub enum Job {
    Dicom(Unit),
    Nifti(PathBuf),
    Raster(PathBuf),
}

impl Job {
    /// Files the job reads, for error reporting.
    pub fn sources(&self) -> Vec<PathBuf> {
        match self {
            Job::Dicom(Unit::Single(h)) => vec![h.path.clone()],
            Job::Dicom(Unit::Volume(p)) => p.slices.iter().map(|s| s.path.clone()).collect(),
            Job::Nifti(p) | Job::Raster(p) => vec![p.clone()],
        }
    }
}

/// Expands inputs into jobs: walks folders, honours DICOMDIRs, reads DICOM headers in parallel
/// and groups series. Unreadable inputs come back as failures. `skipped` counts files in
/// folders that are not images (text, spreadsheets…), which are passed over quietly.
pub struct Plan {
    pub jobs: Vec<Job>,
    pub failures: Vec<Failure>,
    pub skipped: usize,
    /// DICOM objects without pixel data found in folders or DICOMDIRs (structured reports,
    /// presentation states, RT plans…): not images, so not failures; listed with the reason.
    /// Given explicitly on the command line, the same objects are failures.
    pub non_images: Vec<Failure>,
}

pub fn plan(inputs: &[PathBuf]) -> Plan {
    let mut failures = Vec::new();
    let mut files: Vec<(PathBuf, bool)> = Vec::new(); // (path, given explicitly)
    for input in inputs {
        if input.is_dir() {
            for entry in walkdir::WalkDir::new(input).sort_by_file_name() {
                match entry {
                    Ok(e) if e.file_type().is_file() => files.push((e.path().to_path_buf(), false)),
                    Ok(_) => {}
                    Err(e) => failures.push(Failure::new(
                        e.path().unwrap_or(input),
                        format!("cannot walk folder: {e}"),
                    )),
                }
            }
        } else if input.is_file() {
            files.push((input.clone(), true));
        } else {
            failures.push(Failure::new(input, "no such file or folder"));
        }
    }
    // The same file reached twice (a folder and its DICOMDIR) is read once.
    let mut seen = BTreeSet::new();
    files.retain(|(p, _)| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));

    let classified: Vec<(PathBuf, bool, Option<Format>)> = files
        .into_par_iter()
        .map(|(p, explicit)| {
            let f = classify(&p);
            (p, explicit, f)
        })
        .collect();
    let mut skipped = 0;
    let mut jobs = Vec::new();
    let mut dicom_paths = Vec::new();
    for (p, explicit, f) in classified {
        match f {
            Some(Format::Dicom) => dicom_paths.push((p, explicit)),
            Some(Format::Nifti) => jobs.push(Job::Nifti(p)),
            Some(Format::Raster) => jobs.push(Job::Raster(p)),
            None if explicit => failures.push(Failure::new(
                &p,
                IngestError::UnknownFormat {
                    path: p.clone(),
                    reason: "not DICOM (no DICM magic, no data element), NIfTI (.nii, .nii.gz, .hdr) or PNG/JPEG/TIFF".into(),
                },
            )),
            None => skipped += 1,
        }
    }
    // DICOMDIRs are recognised by their SOP Class (1.2.840.10008.1.3.10), whatever their file
    // name; the files they reference join the plan (once), the DICOMDIR itself is no image.
    let mut ok = Vec::new();
    let mut non_images = Vec::new();
    let mut pending = dicom_paths;
    while !pending.is_empty() {
        let headers: Vec<(PathBuf, bool, Result<Header>)> = pending
            .into_par_iter()
            .map(|(p, explicit)| {
                let h = read_header(&p);
                (p, explicit, h)
            })
            .collect();
        pending = Vec::new();
        for (p, explicit, h) in headers {
            match h {
                Ok(Header::Image(h)) => ok.push(h),
                Ok(Header::Directory(refs)) => {
                    for r in refs {
                        if seen.insert(std::fs::canonicalize(&r).unwrap_or_else(|_| r.clone())) {
                            match classify(&r) {
                                Some(Format::Dicom) => pending.push((r, false)),
                                Some(Format::Nifti) => jobs.push(Job::Nifti(r)),
                                Some(Format::Raster) => jobs.push(Job::Raster(r)),
                                None => failures.push(Failure::new(
                                    &r,
                                    if r.is_file() {
                                        format!("referenced by DICOMDIR {} but not a readable image file", p.display())
                                    } else {
                                        format!("referenced by DICOMDIR {} but does not exist", p.display())
                                    },
                                )),
                            }
                        }
                    }
                }
                Err(e @ IngestError::NoPixelData { .. }) if !explicit => non_images.push(Failure::new(&p, e)),
                Err(e) => failures.push(Failure::new(&p, e)),
            }
        }
    }
    jobs.extend(plan_units(ok).into_iter().map(Job::Dicom));
    Plan {
        jobs,
        failures,
        skipped,
        non_images,
    }
}

fn classify(p: &Path) -> Option<Format> {
    let name = p.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") || name.ends_with(".hdr") {
        return Some(Format::Nifti);
    }
    let mut head = [0u8; 132];
    let n = std::fs::File::open(p)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..n];
    // DICOM first: a Part 10 preamble may itself be a TIFF header (PS3.10 7.5 allows dual-format
    // files, and pydicom's MR_small_bigendian.dcm is one).
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Some(Format::Dicom);
    }
    if head.starts_with(b"\x89PNG") || head.starts_with(&[0xFF, 0xD8, 0xFF]) || head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return Some(Format::Raster);
    }
    dicom::open::looks_like_dicom(p).then_some(Format::Dicom)
}

enum Header {
    Image(SliceHeader),
    /// A DICOMDIR: the files its records reference.
    Directory(Vec<PathBuf>),
}

const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

fn read_header(p: &Path) -> Result<Header> {
    let src = dicom::open(p, ReadExtent::Header)?;
    let ds = src.dataset();
    let sop_class = attrs::string(ds, dicom_dictionary_std::tags::SOP_CLASS_UID)
        .or_else(|| src.media_storage_sop_class().map(str::to_string));
    if sop_class.as_deref() == Some(MEDIA_STORAGE_DIRECTORY)
        || attrs::has(ds, dicom_dictionary_std::tags::DIRECTORY_RECORD_SEQUENCE)
    {
        return Ok(Header::Directory(dicomdir_references(p, ds)));
    }
    let h = SliceHeader::from_dataset(p.to_path_buf(), ds);
    if h.rows.is_none() || h.cols.is_none() {
        return Err(IngestError::NoPixelData {
            path: p.to_path_buf(),
            what: sop_class
                .filter(|u| !u.is_empty())
                .map(|u| format!("SOP Class {u}, no Rows/Columns"))
                .unwrap_or_else(|| "no Rows/Columns".into()),
        });
    }
    Ok(Header::Image(h))
}

/// Files a DICOMDIR references (Referenced File ID, PS3.3 F.3.2.2), resolved beside it.
/// Missing files are kept: each becomes its own failure, and the others are still read.
fn dicomdir_references(dd: &Path, ds: &attrs::Ds) -> Vec<PathBuf> {
    let base = dd.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for rec in attrs::items(ds, dicom_dictionary_std::tags::DIRECTORY_RECORD_SEQUENCE) {
        let parts = attrs::strings(rec, dicom_dictionary_std::tags::REFERENCED_FILE_ID);
        if parts.is_empty() {
            continue;
        }
        let mut p = base.to_path_buf();
        for c in &parts {
            p.push(c);
        }
        out.push(p);
    }
    out
}

/// Sorts jobs into the order of the inputs they came from (the planner lists rasters and NIfTI
/// before DICOM units), so outputs follow what the user gave: a job belongs to the first input
/// that is its first source, a folder holding it, or a file beside it (files a DICOMDIR
/// references count under the DICOMDIR's folder); then by first source, which within a folder
/// is the walk order.
pub fn sort_in_input_order(jobs: &mut [Job], inputs: &[PathBuf]) {
    jobs.sort_by_cached_key(|job| {
        let first = job.sources().into_iter().min().unwrap_or_default();
        let index = inputs
            .iter()
            .position(|i| first == *i || (i.is_dir() && first.starts_with(i)))
            .or_else(|| inputs.iter().position(|i| i.is_file() && i.parent().is_some_and(|p| first.starts_with(p))))
            .unwrap_or(inputs.len());
        (index, first)
    });
}

/// Stable, unique output names for the jobs, in job order.
pub fn names(jobs: &[Job]) -> Vec<String> {
    let mut used = std::collections::HashMap::<String, usize>::new();
    jobs.iter()
        .map(|j| {
            let base = match j {
                Job::Dicom(Unit::Volume(p)) => {
                    let uid = p.slices[0].series_uid.clone().unwrap_or_default();
                    let mut n = format!("series_{}", sanitize(&uid));
                    if p.split > 0 {
                        n.push_str(&format!("_part{}", p.split + 1));
                    }
                    if let Some(t) = p.time_point {
                        n.push_str(&format!("_t{t:03}"));
                    }
                    n
                }
                Job::Dicom(Unit::Single(h)) => stem(&h.path),
                Job::Nifti(p) | Job::Raster(p) => stem(p),
            };
            let count = used.entry(base.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                base
            } else {
                format!("{base}-{count}")
            }
        })
        .collect()
}

fn stem(p: &Path) -> String {
    let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let cut = [".nii.gz", ".nii", ".hdr", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff"]
        .iter()
        .find(|e| lower.ends_with(*e))
        .map(|e| name.len() - e.len())
        .unwrap_or(name.len());
    sanitize(&name[..cut])
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    if out.is_empty() { "item".into() } else { out }
}

/// What one job gave: its items and the sources that failed. Both can be non-empty: a series
/// volume with an unreadable slice is written from its other slices, and the unreadable one
/// is a failure of its own.
#[derive(Debug, Default)]
pub struct JobOutput {
    pub items: Vec<Item>,
    pub failures: Vec<Failure>,
}

impl JobOutput {
    fn failed(failures: Vec<Failure>) -> JobOutput {
        JobOutput {
            items: vec![],
            failures,
        }
    }
}

/// Runs one job to its items. Items of a 4D NIfTI get `_t000`… suffixes on `name`.
pub fn run_job(job: &Job, name: &str, opts: &Options) -> JobOutput {
    let one = |r: Result<Item>, src: &Path| match r {
        Ok(i) => JobOutput {
            items: vec![i],
            failures: vec![],
        },
        Err(e) => JobOutput::failed(vec![Failure::new(src, e)]),
    };
    let out = match job {
        Job::Dicom(Unit::Single(h)) => one(dicom_single(h, name, opts), &h.path),
        Job::Dicom(Unit::Volume(p)) => dicom_volume(p, name, opts),
        Job::Nifti(p) => match nifti_items(p, name, opts) {
            Ok(items) => JobOutput {
                items,
                failures: vec![],
            },
            Err(e) => JobOutput::failed(vec![Failure::new(p, e)]),
        },
        Job::Raster(p) => one(raster_item(p, name, opts), p),
    };
    let mut failures = out.failures;
    let mut items = Vec::with_capacity(out.items.len());
    for item in out.items {
        // The item's own sources: slices already reported as unreadable are not among them.
        let sources = item.sidecar.source.clone();
        match finish_stage(item, opts) {
            Ok(i) => items.push(i),
            Err(e) => {
                for f in sources.iter().map(|s| Failure::new(s, &e)) {
                    // The time points of a 4D NIfTI fail alike: one line per source and reason.
                    if !failures.iter().any(|g: &Failure| g.source == f.source && g.error == f.error) {
                        failures.push(f);
                    }
                }
            }
        }
    }
    JobOutput { items, failures }
}

/// Decoded DICOM file: modality values and what the display stage needs.
struct DicomDecoded {
    px: dicom::DecodedPixels,
    frame_attrs: Vec<attrs::FrameAttrs>,
    transfer_syntax: String,
    warnings: Vec<String>,
    sop_uid: Option<String>,
}

fn decode_file(path: &Path, opts: &Options) -> Result<DicomDecoded> {
    let src = dicom::open(path, ReadExtent::Full)?;
    let ds = src.dataset();
    let pa = PixelAttrs::read(path, ds)?;
    let mut warnings = src.notes.clone();
    let frame_attrs = attrs::frame_attrs(ds, pa.frames, pa.signed, &mut warnings);
    let px = dicom::decode(path, &src, &pa, &frame_attrs, opts.max_samples)?;
    warnings.extend(px.warnings.iter().cloned());
    Ok(DicomDecoded {
        transfer_syntax: format!("DICOM {} ({})", src.transfer_syntax, dicom::open::transfer_syntax_name(&src.transfer_syntax)),
        sop_uid: attrs::string(ds, dicom_dictionary_std::tags::SOP_INSTANCE_UID),
        px,
        frame_attrs,
        warnings,
    })
}

fn dicom_single(h: &SliceHeader, name: &str, opts: &Options) -> Result<Item> {
    let d = decode_file(&h.path, opts)?;
    let px = &d.px;
    let mut shape = Vec::new();
    if px.frames > 1 {
        shape.push(px.frames);
    }
    shape.extend([px.rows, px.cols]);
    if px.channels > 1 {
        shape.push(px.channels);
    }
    let array = ArrayD::from_shape_vec(IxDyn(&shape), px.data.clone()).map_err(|e| IngestError::Invalid {
        what: h.path.display().to_string(),
        reason: e.to_string(),
    })?;
    let fa0 = d.frame_attrs.first();
    let plane = fa0.map(|f| f.plane).unwrap_or_default();
    let mut warnings = d.warnings.clone();
    let mut kind = if px.frames > 1 { ItemKind::Frames } else { ItemKind::Image };
    let mut spacing: Option<Vec<Option<f64>>> = plane.pixel_spacing.map(|s| vec![Some(s[0]), Some(s[1])]);
    let mut origin = plane.position;
    let mut direction = plane.orientation.map(direction_from_iop);
    let mut array = array;
    if px.frames > 1 {
        // An enhanced multi-frame object whose frames are parallel planes at distinct
        // positions is a volume: order its frames along the normal.
        match frames_as_volume(&d.frame_attrs) {
            Some((order, step, dir, extra)) => {
                array = array.select(Axis(0), &order);
                kind = ItemKind::Volume;
                let ps = plane.pixel_spacing.unwrap_or([1.0, 1.0]);
                spacing = Some(vec![Some(step), Some(ps[0]), Some(ps[1])]);
                origin = d.frame_attrs[order[0]].plane.position;
                direction = Some(dir);
                warnings.extend(extra);
            }
            None => {
                spacing = spacing.map(|s| [vec![None], s].concat());
            }
        }
    }
    if plane.pixel_spacing.is_none() {
        warnings.push("no Pixel Spacing (0028,0030): physical spacing unknown".into());
    }
    let voi = fa0.and_then(|f| f.voi.clone());
    Ok(Item {
        name: name.to_string(),
        array,
        sidecar: Sidecar {
            modality: h.modality.clone(),
            body_part: h.body_part.clone(),
            photometric: Some(px.photometric.clone()),
            spacing,
            origin,
            direction,
            series_instance_uid: h.series_uid.clone(),
            sop_instance_uids: d.sop_uid.into_iter().collect(),
            warnings,
            voi: display_voi(voi, px.color_max),
            ..Sidecar::new(vec![h.path.clone()], kind, d.transfer_syntax)
        },
    })
}

/// The VOI the display stage will use unless `--window` overrides it: the file's for grayscale,
/// the stored range for colour.
fn display_voi(voi: Option<Voi>, color_max: Option<f64>) -> Option<Voi> {
    match color_max {
        Some(max) => Some(Voi::MinMax { min: 0.0, max }),
        None => voi,
    }
}

fn direction_from_iop(o: [f64; 6]) -> [[f64; 3]; 3] {
    let (row, col, normal) = crate::volume::iop_axes(o);
    // Degenerate cosines: the (zero) cross product is reported as it is.
    [row, col, normal.unwrap_or_else(|| cross(row, col))]
}

/// Frame order along the normal, the median step, the direction, and warnings, when the
/// frames of a multi-frame object form a stack of parallel planes at distinct positions.
fn frames_as_volume(fa: &[attrs::FrameAttrs]) -> Option<(Vec<usize>, f64, [[f64; 3]; 3], Vec<String>)> {
    let o = fa.first()?.plane.orientation?;
    if fa.iter().any(|f| f.plane.position.is_none() || f.plane.orientation.map(|x| x.iter().zip(o.iter()).any(|(a, b)| (a - b).abs() > 1e-4)).unwrap_or(true)) {
        return None;
    }
    let dir = direction_from_iop(o);
    let pos: Vec<f64> = fa.iter().map(|f| crate::volume::dot(f.plane.position.unwrap_or_default(), dir[2])).collect();
    let mut order: Vec<usize> = (0..fa.len()).collect();
    order.sort_by(|&a, &b| pos[a].total_cmp(&pos[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| pos[i]).collect();
    if sorted.windows(2).any(|w| (w[1] - w[0]).abs() < 1e-3) {
        return None; // repeated positions: a time series or several stacks, kept as frames
    }
    let mut warnings = Vec::new();
    let step = crate::series::spacing_warnings(&sorted, &mut warnings);
    Some((order, step, dir, warnings))
}

/// Assembles a series volume from its slices. A slice that cannot be read or decoded, or
/// whose decoded size or colour differs from most of the others, is a failure of its own and
/// the volume is built from the rest (its geometry recomputed, so a hole shows as a gap); a
/// single readable slice still makes a one-slice volume (slice spacing unknown), so the name
/// and kind of the output do not depend on how many slices were lost.
fn dicom_volume(p: &VolumePlan, name: &str, opts: &Options) -> JobOutput {
    let decoded: Vec<std::result::Result<DicomDecoded, Failure>> = p
        .slices
        .par_iter()
        .map(|s| decode_file(&s.path, opts).map_err(|e| Failure::new(&s.path, e)))
        .collect();
    let mut failures = Vec::new();
    let mut ok: Vec<(&SliceHeader, DicomDecoded)> = Vec::with_capacity(decoded.len());
    for (h, d) in p.slices.iter().zip(decoded) {
        match d {
            Ok(d) => ok.push((h, d)),
            Err(f) => failures.push(f),
        }
    }
    // Planning grouped by header Rows / Columns; the decoded size, colour or a frame count
    // can still disagree. The most common form wins (the first in slice order on a tie).
    let form = |d: &DicomDecoded| (d.px.rows, d.px.cols, d.px.channels, d.px.frames);
    let mut forms: Vec<((usize, usize, usize, usize), usize)> = Vec::new();
    for (_, d) in ok.iter().filter(|(_, d)| d.px.frames == 1) {
        match forms.iter_mut().find(|(f, _)| *f == form(d)) {
            Some((_, n)) => *n += 1,
            None => forms.push((form(d), 1)),
        }
    }
    let common = forms.iter().fold(None, |best: Option<((usize, usize, usize, usize), usize)>, &(f, n)| match best {
        Some((_, m)) if m >= n => best,
        _ => Some((f, n)),
    });
    ok.retain(|(h, d)| {
        let fits = common.is_some_and(|(f, _)| form(d) == f);
        if !fits {
            let (rows, cols, ch, frames) = form(d);
            failures.push(Failure::new(
                &h.path,
                format!(
                    "{}: decoded {rows}x{cols} with {ch} sample(s) per pixel and {frames} frame(s), unlike the other slices of its series volume",
                    h.path.display()
                ),
            ));
        }
        fits
    });
    if ok.is_empty() {
        return JobOutput::failed(failures);
    }
    let mut warnings = Vec::new();
    let plan_kept;
    let p = if failures.is_empty() {
        p
    } else {
        let mut dropped: Vec<&Path> = failures.iter().map(|f| f.source.as_path()).collect();
        dropped.sort();
        warnings.push(format!(
            "{} of {} slice(s) left out because they could not be read, decoded or stacked (see errors.jsonl): {}",
            dropped.len(),
            p.slices.len(),
            dropped.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
        let kept: BTreeSet<&Path> = ok.iter().map(|(h, _)| h.path.as_path()).collect();
        plan_kept = p.retain(|h| kept.contains(h.path.as_path())).expect("the slices in `ok` come from the plan");
        &plan_kept
    };
    let slices: Vec<DicomDecoded> = ok.into_iter().map(|(_, d)| d).collect();
    let first = &slices[0].px;
    let (rows, cols, ch) = (first.rows, first.cols, first.channels);
    let mut data = Vec::with_capacity(rows * cols * ch * slices.len());
    for d in &slices {
        data.extend_from_slice(&d.px.data);
    }
    let mut shape = vec![slices.len(), rows, cols];
    if ch > 1 {
        shape.push(ch);
    }
    let array = match ArrayD::from_shape_vec(IxDyn(&shape), data) {
        Ok(a) => a,
        Err(e) => {
            failures.extend(p.slices.iter().map(|s| Failure::new(&s.path, &e)));
            return JobOutput::failed(failures);
        }
    };
    let h0 = &p.slices[0];
    let ps = h0.pixel_spacing.unwrap_or([1.0, 1.0]);
    warnings.splice(0..0, p.warnings());
    for d in &slices {
        for w in &d.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
    }
    if h0.pixel_spacing.is_none() {
        warnings.push("no Pixel Spacing (0028,0030): in-plane spacing 1 mm assumed".into());
    }
    let voi0 = slices[0].frame_attrs.first().and_then(|f| f.voi.clone());
    if slices.iter().any(|d| d.frame_attrs.first().and_then(|f| f.voi.clone()) != voi0) {
        warnings.push("slices carry different VOI windows; the display stage uses the first slice's".into());
    }
    let item = Item {
        name: name.to_string(),
        array,
        sidecar: Sidecar {
            modality: h0.modality.clone(),
            body_part: h0.body_part.clone(),
            photometric: Some(first.photometric.clone()),
            // A one-slice volume (a time point of a single-position cine) has no slice step.
            spacing: Some(vec![(p.slices.len() > 1).then_some(p.slice_spacing), Some(ps[0]), Some(ps[1])]),
            origin: h0.position,
            direction: Some(p.direction),
            series_instance_uid: h0.series_uid.clone(),
            sop_instance_uids: slices.iter().filter_map(|d| d.sop_uid.clone()).collect(),
            warnings,
            voi: display_voi(voi0, first.color_max),
            time_point: p.time_point,
            ..Sidecar::new(p.slices.iter().map(|s| s.path.clone()).collect(), ItemKind::Volume, slices[0].transfer_syntax.clone())
        },
    };
    JobOutput {
        items: vec![item],
        failures,
    }
}

fn nifti_items(p: &Path, name: &str, opts: &Options) -> Result<Vec<Item>> {
    let img = crate::nifti::read_nifti_with_limit(p, opts.max_samples)?;
    let n = img.volumes.len();
    let mut items = Vec::with_capacity(n);
    for (t, v) in img.volumes.iter().enumerate() {
        let array = match &img.colour {
            Some(c) => c[t].clone().into_dyn(),
            None => v.voxels.clone().into_dyn(),
        };
        items.push(Item {
            name: if n > 1 { format!("{name}_t{t:03}") } else { name.to_string() },
            array,
            sidecar: Sidecar {
                photometric: Some(if img.colour.is_some() { "RGB" } else { "MONOCHROME2" }.into()),
                spacing: Some(v.spacing.iter().map(|s| Some(*s)).collect()),
                origin: Some(v.origin),
                direction: Some(v.direction),
                warnings: img.warnings.clone(),
                voi: img.colour.as_ref().map(|_| Voi::MinMax { min: 0.0, max: 255.0 }),
                time_point: (n > 1).then_some(t),
                ..Sidecar::new(img.files.clone(), ItemKind::Volume, format!("NIfTI {:?} ({:?}, geometry from {:?})", img.header.version, img.header.datatype, img.geometry_source))
            },
        });
    }
    Ok(items)
}

fn raster_item(p: &Path, name: &str, opts: &Options) -> Result<Item> {
    let r = crate::raster::read_raster_with_limit(p, opts.max_samples)?;
    let max = if r.bits >= 32 { 1.0 } else { ((1u64 << r.bits) - 1) as f64 };
    let mut warnings = Vec::new();
    if r.had_alpha {
        warnings.push("alpha channel dropped".into());
    }
    Ok(Item {
        name: name.to_string(),
        sidecar: Sidecar {
            photometric: Some(if r.colour { "RGB" } else { "MONOCHROME2" }.into()),
            warnings,
            // A PNG/JPEG/TIFF is display data already: its full stored range maps to [0, 1].
            voi: Some(Voi::MinMax { min: 0.0, max }),
            ..Sidecar::new(vec![p.to_path_buf()], ItemKind::Image, format!("{}-bit raster image", r.bits))
        },
        array: r.pixels,
    })
}

/// Applies the display or model stage to a modality-stage item, and fills the shape.
///
/// Model stage: CT in HU without `--window` goes straight to MedGemma 1.5's multi-window RGB;
/// 8-bit PNG/JPEG keep their levels (the HF processors work on 8-bit images); everything else
/// passes the display stage first and enters the processor as [0, 1].
fn finish_stage(mut item: Item, opts: &Options) -> Result<Item> {
    use crate::model_input::{model_pipeline, ItemValues};
    if item.sidecar.kind == ItemKind::Volume && (opts.resample.is_some() || opts.reorient.is_some()) {
        regrid(&mut item, opts.resample, opts.reorient.as_deref())?;
    }
    let stack = matches!(item.sidecar.kind, ItemKind::Volume | ItemKind::Frames);
    // Colour is a trailing axis of 3, whatever the stored photometric interpretation (YBR_*
    // and PALETTE COLOR arrive here converted to RGB but keep their name in the sidecar).
    let colour = item.array.ndim() == if stack { 4 } else { 3 };
    let model_values = match opts.stage {
        Stage::Model => Some(
            if item.sidecar.modality.as_deref() == Some("CT") && !colour && opts.window.is_none() {
                ItemValues::Hounsfield
            } else if item.sidecar.format.starts_with("8-bit raster") {
                ItemValues::Levels8
            } else {
                ItemValues::Unit
            },
        ),
        _ => None,
    };
    let display = opts.stage == Stage::Display || model_values == Some(ItemValues::Unit);
    let carried = item.sidecar.voi.take();
    if display {
        apply_display(&mut item, carried, colour, opts.window);
    } else {
        // The modality stage applies no VOI; the sidecar only names VOIs that were applied.
        drop(carried);
    }
    if let Some(values) = model_values {
        let ms = opts.model.as_ref().ok_or_else(|| IngestError::Invalid {
            what: "model stage".into(),
            reason: "needs --model DIR or --size N".into(),
        })?;
        let mut pipeline = model_pipeline(&ms.target, values, ms.options)?;
        if let (true, Some(n)) = (stack, ms.slices) {
            pipeline = pipeline.with_slice_sampling(n)?;
        }
        let view = item.array.view();
        item.array = if stack {
            pipeline.apply_stack(view)?.into_dyn()
        } else {
            pipeline.apply_image(view)?.into_dyn()
        };
        item.sidecar.preprocessing = Some(pipeline.provenance());
        item.sidecar.stage = Stage::Model;
    }
    item.sidecar.shape = item.array.shape().to_vec();
    Ok(item)
}

/// Resamples and/or reorients a grayscale volume item in place, updating its geometry.
fn regrid(item: &mut Item, spacing: Option<[f64; 3]>, code: Option<&str>) -> Result<()> {
    let invalid = |reason: String| IngestError::Invalid {
        what: item.name.clone(),
        reason,
    };
    if item.array.ndim() != 3 {
        return Err(invalid("resampling / reorienting handles grayscale volumes only".into()));
    }
    let sp = item.sidecar.spacing.clone().unwrap_or_default();
    let (Some(origin), Some(direction), [Some(s0), Some(s1), Some(s2)]) = (item.sidecar.origin, item.sidecar.direction, sp.as_slice()) else {
        return Err(invalid("volume has no complete geometry to resample or reorient".into()));
    };
    let shape = item.array.shape().to_vec();
    let mut v = crate::Volume {
        voxels: std::mem::take(&mut item.array)
            .into_shape_with_order((shape[0], shape[1], shape[2]))
            .map_err(|e| invalid(e.to_string()))?,
        spacing: [*s0, *s1, *s2],
        origin,
        direction,
    };
    if let Some(code) = code {
        v = crate::resample::reorient(&v, code)?;
    }
    if let Some(target) = spacing {
        v = crate::resample::resample_to_spacing(&v, target)?;
    }
    item.sidecar.spacing = Some(v.spacing.iter().map(|s| Some(*s)).collect());
    item.sidecar.origin = Some(v.origin);
    item.sidecar.direction = Some(v.direction);
    item.array = v.voxels.into_dyn();
    Ok(())
}

/// The display stage (issue #2): the `--window` given, else the file's first window or VOI LUT,
/// else the item's own min–max, to [0, 1]; MONOCHROME1 inverted so that 1 is brightest.
/// Colour has no VOI: its stored range maps to [0, 1].
fn apply_display(item: &mut Item, carried: Option<Voi>, colour: bool, window: Option<Window>) {
    let monochrome1 = item.sidecar.photometric.as_deref() == Some("MONOCHROME1");
    let voi = if colour {
        carried.unwrap_or(Voi::MinMax { min: 0.0, max: 255.0 })
    } else if let Some(w) = window {
        Voi::Window(w)
    } else {
        carried.unwrap_or_else(|| min_max(&item.array))
    };
    let invert = monochrome1 && !colour;
    let f = |x: f32| {
        let y = voi.apply(x as f64) as f32;
        if invert {
            1.0 - y
        } else {
            y
        }
    };
    match item.array.as_slice_mut() {
        Some(s) => s.par_iter_mut().for_each(|v| *v = f(*v)),
        None => item.array.mapv_inplace(f),
    }
    match &voi {
        Voi::Window(w) => item.sidecar.window = Some(*w),
        other => item.sidecar.voi = Some(other.clone()),
    }
    if invert {
        item.sidecar.warnings.push("MONOCHROME1: display values inverted so that 1 is brightest".into());
    }
    item.sidecar.stage = Stage::Display;
}

fn min_max(a: &ArrayD<f32>) -> Voi {
    let (lo, hi) = a.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
        if v.is_finite() { (lo.min(v), hi.max(v)) } else { (lo, hi) }
    });
    Voi::MinMax { min: lo as f64, max: hi as f64 }
}

/// Writes `<name>.npy` and `<name>.json` into `dir`.
pub fn write_item(dir: &Path, item: &Item) -> std::io::Result<()> {
    crate::npy::write_f32(&dir.join(format!("{}.npy", item.name)), item.array.view())?;
    let json = serde_json::to_vec_pretty(&item.sidecar).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{}.json.partial", item.name));
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, dir.join(format!("{}.json", item.name)))
}
