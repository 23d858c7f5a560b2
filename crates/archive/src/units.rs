//! From an archive folder to the ordered list of work: which files form which units, under
//! which stable identifiers, in which partition.
//!
//! Identifiers follow the DICOM information model: a series (`series:<SeriesInstanceUID>`, with
//! `/part<k>` when the ingest rules split it by orientation, size or image type and `/t<k>` for
//! a time point of a 4D series), an instance (`sop:<SOPInstanceUID>`) and a frame
//! (`…#frame=<k>`). Files that are not DICOM, and DICOM files without a SOP Instance UID, are
//! identified by their path relative to the archive root (`path:<relative path>`). The same
//! archive always gives the same identifiers, whatever the machine or the walk order, which is
//! what `--resume` and `--shard` rely on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use medvqa_ingest::pipeline::{self, Job};
use medvqa_ingest::series::{SliceHeader, Unit};

/// What one embedding row stands for (`--unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitMode {
    /// One row per stored image (DICOM instance, PNG/JPEG/TIFF file). A multi-frame instance or
    /// a NIfTI volume is one image: its sampled frames are encoded and mean-pooled. The slices
    /// of a CT/MR series are separate instances, so separate rows, each read on its own.
    Image,
    /// One row per frame: a multi-frame instance or NIfTI volume gives one row per frame or
    /// slice; single-frame images give one row each.
    Frame,
    /// One row per series: the series is assembled into a volume by the ingest rules, N slices
    /// are sampled uniformly (MedGemma 1.5's indices) and their embeddings mean-pooled. A 2D
    /// image that is alone in its series is a series of one.
    Series,
}

impl std::str::FromStr for UnitMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "image" => Ok(UnitMode::Image),
            "frame" => Ok(UnitMode::Frame),
            "series" => Ok(UnitMode::Series),
            other => Err(format!("--unit {other:?}: expected image, frame or series")),
        }
    }
}

impl UnitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitMode::Image => "image",
            UnitMode::Frame => "frame",
            UnitMode::Series => "series",
        }
    }
}

/// Header facts of a DICOM job, known before decoding (acquisition shape, study).
#[derive(Debug, Clone, Default)]
pub struct HeaderFacts {
    pub study_instance_uid: Option<String>,
    pub rows: Option<i64>,
    pub cols: Option<i64>,
    /// Frames of a single object, or slices of a series volume.
    pub depth: Option<i64>,
}

/// One piece of work: a job of the ingest pipeline, or a file that already failed while the
/// archive was planned (it is still a unit, with status `error`).
#[derive(Debug, Clone)]
pub enum WorkKind {
    Ingest(Job),
    Failed { source: PathBuf, error: String },
}

#[derive(Debug, Clone)]
pub struct WorkJob {
    /// Stable identifier with raw UIDs (hashed only when written).
    pub id: String,
    /// Key hashed for `--shard`: the series when known, so a series stays on one machine.
    pub partition: String,
    pub kind: WorkKind,
    pub facts: HeaderFacts,
}

/// Files found but not encoded, with the reason (not failures).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub source: PathBuf,
    pub reason: String,
    /// For a duplicate: the identifier it shares with the file that was kept (raw UIDs; the
    /// writer hashes them under `--hash-uids`).
    pub duplicate_of: Option<String>,
    /// Partition key, so that under `--shard` each file is listed by one task only.
    pub partition: String,
}

/// The archive's work, ordered by identifier.
#[derive(Debug, Default)]
pub struct WorkPlan {
    pub jobs: Vec<WorkJob>,
    pub skipped: Vec<Skipped>,
    /// Files other than images met while walking (text, spreadsheets…).
    pub other_files: usize,
    /// Files read for the plan (images, DICOM without pixels, and failures).
    pub files: usize,
}

/// `path` relative to `root` (or its file name when `root` is the file), `/`-separated.
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = if root.is_file() {
        path.file_name().map(PathBuf::from).unwrap_or_else(|| path.to_path_buf())
    } else {
        path.strip_prefix(root).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
    };
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn single_facts(h: &SliceHeader) -> HeaderFacts {
    HeaderFacts {
        study_instance_uid: h.study_uid.clone(),
        rows: h.rows,
        cols: h.cols,
        depth: (h.frames > 1).then_some(h.frames),
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn single_job(root: &Path, h: SliceHeader) -> WorkJob {
    let id = match nonempty(&h.sop_uid) {
        Some(uid) => format!("sop:{uid}"),
        None => format!("path:{}", relative(root, &h.path)),
    };
    let partition = nonempty(&h.series_uid).map(|s| format!("series:{s}")).unwrap_or_else(|| id.clone());
    WorkJob {
        facts: single_facts(&h),
        id,
        partition,
        kind: WorkKind::Ingest(Job::Dicom(Unit::Single(h))),
    }
}

fn path_job(root: &Path, p: PathBuf, make: fn(PathBuf) -> Job) -> WorkJob {
    let id = format!("path:{}", relative(root, &p));
    WorkJob {
        partition: id.clone(),
        id,
        kind: WorkKind::Ingest(make(p)),
        facts: HeaderFacts::default(),
    }
}

/// Walks `root` (a folder, a DICOMDIR or one file) with the ingest crate's planner and turns its
/// jobs into units of `mode`.
pub fn plan_archive(root: &Path, mode: UnitMode) -> WorkPlan {
    let plan = pipeline::plan(&[root.to_path_buf()]);
    let mut out = WorkPlan {
        other_files: plan.skipped,
        ..WorkPlan::default()
    };
    out.skipped.extend(plan.non_images.into_iter().map(|f| Skipped {
        partition: format!("path:{}", relative(root, &f.source)),
        source: f.source,
        reason: f.error,
        duplicate_of: None,
    }));
    for f in plan.failures {
        let id = format!("path:{}", relative(root, &f.source));
        out.jobs.push(WorkJob {
            partition: id.clone(),
            id,
            kind: WorkKind::Failed {
                source: f.source,
                error: f.error,
            },
            facts: HeaderFacts::default(),
        });
    }
    for job in plan.jobs {
        match job {
            Job::Dicom(Unit::Volume(p)) if mode != UnitMode::Series => {
                // Every slice is its own instance, read and windowed on its own.
                out.jobs.extend(p.slices.into_iter().map(|h| single_job(root, h)));
            }
            Job::Dicom(Unit::Volume(p)) => {
                let first = &p.slices[0];
                let mut id = match nonempty(&first.series_uid) {
                    Some(uid) => format!("series:{uid}"),
                    None => format!("path:{}", relative(root, &first.path)),
                };
                let partition = id.clone();
                if p.split > 0 {
                    id.push_str(&format!("/part{}", p.split + 1));
                }
                if let Some(t) = p.time_point {
                    id.push_str(&format!("/t{t}"));
                }
                let facts = HeaderFacts {
                    study_instance_uid: first.study_uid.clone(),
                    rows: first.rows,
                    cols: first.cols,
                    depth: Some(p.slices.len() as i64),
                };
                out.jobs.push(WorkJob {
                    id,
                    partition,
                    kind: WorkKind::Ingest(Job::Dicom(Unit::Volume(p))),
                    facts,
                });
            }
            Job::Dicom(Unit::Single(h)) => out.jobs.push(single_job(root, h)),
            Job::Nifti(p) => out.jobs.push(path_job(root, p, Job::Nifti)),
            Job::Raster(p) => out.jobs.push(path_job(root, p, Job::Raster)),
        }
    }
    // One job per identifier: a second file with the same SOP Instance UID (a copy in another
    // folder, a re-export) is the same image; the first path in byte order is encoded.
    let mut by_id: BTreeMap<String, WorkJob> = BTreeMap::new();
    let mut jobs = std::mem::take(&mut out.jobs);
    jobs.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| first_source(a).cmp(&first_source(b))));
    for job in jobs {
        if let Some(kept) = by_id.get(&job.id) {
            out.skipped.push(Skipped {
                source: first_source(&job),
                reason: format!("duplicate of {} (the same identifier)", first_source(kept).display()),
                duplicate_of: Some(job.id.clone()),
                partition: kept.partition.clone(),
            });
        } else {
            by_id.insert(job.id.clone(), job);
        }
    }
    out.jobs = by_id.into_values().collect();
    out.files = out.jobs.iter().map(|j| sources(j).len()).sum::<usize>() + out.skipped.len();
    out
}

/// Files a job reads.
pub fn sources(job: &WorkJob) -> Vec<PathBuf> {
    match &job.kind {
        WorkKind::Ingest(j) => j.sources(),
        WorkKind::Failed { source, .. } => vec![source.clone()],
    }
}

fn first_source(job: &WorkJob) -> PathBuf {
    sources(job).into_iter().min().unwrap_or_default()
}
