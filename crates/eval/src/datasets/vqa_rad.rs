//! VQA-RAD (Lau et al. 2018, "A dataset of clinically generated visual questions and answers
//! about radiology images"): the official `VQA_RAD Dataset Public.json`, one object per QA.
//!
//! - Official test split: rows whose `phrase_type` starts with `test_` (451 QA on 203 images);
//!   `train` is every other row. `trainset.json`/`testset.json` are a third-party re-split and
//!   are not read here.
//! - `qid` is an integer in every row but one, where it is a string; answers may be integers.
//! - `answer_type` is `CLOSED`/`OPEN`, twice as `"CLOSED "` with a trailing space.
//! - Body system (native): `image_organ` (HEAD / CHEST / ABD).
//! - Modality: the dataset has no field. Its Readme (§4.1 Image selection) says the images are
//!   "104 head axial CTs or MRIs, 107 chest x-rays, and 104 abdominal axial CTs", so CHEST →
//!   `X-Ray`, ABD → `CT`, HEAD → `CT or MRI`; then, for every image, the answers of its
//!   MODALITY questions (all splits) refine that label — see [`derive_modality`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

use super::{file_in, open_closed, optional_text, read_json, required_text, unknown_split};
use crate::error::EvalError;
use crate::types::Question;

/// The official file name, used when `--annotations` is the dataset folder.
const OFFICIAL_FILE: &str = "VQA_RAD Dataset Public.json";

struct Row {
    question: Question,
    organ: String,
    modality_evidence: Option<&'static str>,
}

pub(super) fn load(annotations: &Path, split: &str) -> Result<Vec<Question>, EvalError> {
    let path = file_in(annotations, OFFICIAL_FILE);
    let keep: fn(bool) -> bool = match split {
        "test" => |is_test| is_test,
        "train" => |is_test| !is_test,
        "all" => |_| true,
        _ => {
            return Err(unknown_split(
                super::Dataset::VqaRad,
                split,
                "test, train, all",
            ))
        }
    };
    let value = read_json(&path)?;
    let rows = value
        .as_array()
        .ok_or_else(|| EvalError::format(&path, "expected a JSON array of QA objects"))?;

    let mut parsed = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        parsed.push(parse_row(row, index, &path)?);
    }

    // Modality evidence is gathered over the whole file: an image's MODALITY question may sit
    // in the other split than the question being labelled.
    let mut evidence: HashMap<String, BTreeSet<&'static str>> = HashMap::new();
    for row in &parsed {
        if let (Some(image), Some(m)) = (row.question.images.first(), row.modality_evidence) {
            evidence.entry(image.clone()).or_default().insert(m);
        }
    }

    let mut out = Vec::new();
    for mut row in parsed {
        let is_test = row.question.split.as_deref() == Some("test");
        if !keep(is_test) {
            continue;
        }
        let image = row.question.images.first().cloned().unwrap_or_default();
        let (modality, source) = derive_modality(&row.organ, evidence.get(&image));
        row.question.modality = Some(modality.to_owned());
        row.question
            .extra
            .insert("modality_source".to_owned(), source.to_owned());
        out.push(row.question);
    }
    Ok(out)
}

fn parse_row(row: &Value, index: usize, path: &Path) -> Result<Row, EvalError> {
    let obj = row
        .as_object()
        .ok_or_else(|| EvalError::format(path, format!("row {index}: not a JSON object")))?;
    let name = format!("row {index}");
    let id = required_text(obj, "qid", path, &name)?.trim().to_owned();
    let name = format!("row {index} (qid {id})");
    let question = required_text(obj, "question", path, &name)?;
    let answer = required_text(obj, "answer", path, &name)?.trim().to_owned();
    let answer_type = open_closed(
        &required_text(obj, "answer_type", path, &name)?,
        path,
        &name,
    )?;
    let image = required_text(obj, "image_name", path, &name)?
        .trim()
        .to_owned();
    let organ = required_text(obj, "image_organ", path, &name)?
        .trim()
        .to_uppercase();
    let phrase_type = required_text(obj, "phrase_type", path, &name)?
        .trim()
        .to_owned();
    // Types are upper-cased so that `Other` and `OTHER` count together; combined labels such
    // as `POS, PRES` and the dataset's typos (`ATRIB`, `PRSE`) are kept as written.
    let question_type = optional_text(obj, "question_type").map(|t| t.to_uppercase());
    let is_test = phrase_type.starts_with("test_");

    let modality_evidence = if question_type
        .as_deref()
        .is_some_and(|t| t.contains("MODALITY"))
    {
        modality_evidence(&question, &answer)
    } else {
        None
    };

    let mut extra = BTreeMap::new();
    extra.insert("phrase_type".to_owned(), phrase_type);
    for field in ["evaluation", "qid_linked_id"] {
        if let Some(v) = optional_text(obj, field) {
            extra.insert(field.to_owned(), v);
        }
    }
    Ok(Row {
        question: Question {
            id,
            images: vec![image],
            question,
            answer,
            answer_type,
            options: Vec::new(),
            question_type,
            modality: None,
            body_system_native: Some(organ.clone()),
            body_system: None,
            split: Some(if is_test { "test" } else { "train" }.to_owned()),
            lang: Some("en".to_owned()),
            extra,
        },
        organ,
        modality_evidence,
    })
}

/// The modality one MODALITY question states about its image, if it states exactly one.
///
/// An answer that names a modality ("MR - FLAIR", "chest x-ray", "CT with contrast") is the
/// evidence; a yes/no answer makes the question the evidence when the answer is yes ("Is this
/// an MRI?" → yes → MRI) and gives none when it is no.
fn modality_evidence(question: &str, answer: &str) -> Option<&'static str> {
    let a = answer.trim().to_lowercase();
    match a.as_str() {
        "yes" => classify_modality(question),
        "no" => None,
        _ => classify_modality(answer),
    }
}

/// Names the single modality a text mentions, or `None` when it mentions none or several.
fn classify_modality(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let mut found = BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let class = match *t {
            "mri" | "mr" | "t1" | "t2" | "flair" | "dwi" | "adc" | "diffusion" | "gadolinium" => {
                Some("MRI")
            }
            "ct" | "cta" => Some("CT"),
            "xray" | "xr" | "cxr" | "radiograph" | "radiography" | "film" => Some("X-Ray"),
            "x" if tokens.get(i + 1) == Some(&"ray") => Some("X-Ray"),
            "ultrasound" | "sonography" => Some("Ultrasound"),
            _ => None,
        };
        found.extend(class);
    }
    if found.len() == 1 {
        found.into_iter().next()
    } else {
        None
    }
}

/// The modality of a VQA-RAD image and the rule that gave it (`"modality_question"` or
/// `"organ"`).
///
/// When the image's MODALITY questions agree on one modality, that is the label; otherwise
/// the organ rule of the dataset's Readme applies: CHEST → X-Ray, ABD → CT, HEAD → "CT or MRI"
/// (the Readme says head images are "axial CTs or MRIs" and does not say which).
pub fn derive_modality(
    organ: &str,
    evidence: Option<&BTreeSet<&'static str>>,
) -> (&'static str, &'static str) {
    if let Some(set) = evidence {
        if set.len() == 1 {
            if let Some(m) = set.iter().next() {
                return (m, "modality_question");
            }
        }
    }
    let by_organ = match organ.trim().to_uppercase().as_str() {
        "CHEST" => "X-Ray",
        "ABD" => "CT",
        "HEAD" => "CT or MRI",
        _ => "unknown",
    };
    (by_organ, "organ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modality_from_answers_and_questions() {
        assert_eq!(
            modality_evidence("What modality?", "MR - FLAIR"),
            Some("MRI")
        );
        assert_eq!(
            modality_evidence("How was it taken?", "chest x ray"),
            Some("X-Ray")
        );
        assert_eq!(modality_evidence("Is this an MRI?", "yes"), Some("MRI"));
        assert_eq!(modality_evidence("Is this an MRI?", "No"), None);
        assert_eq!(
            modality_evidence("Is this an MRI or a CT scan?", "MRI"),
            Some("MRI")
        );
        // Contrast says nothing about the modality; two modalities are no evidence.
        assert_eq!(
            modality_evidence("Was contrast used?", "with contrast"),
            None
        );
        assert_eq!(modality_evidence("Which?", "CT and MRI"), None);
    }

    #[test]
    fn organ_rule_and_refinement() {
        assert_eq!(derive_modality("CHEST", None), ("X-Ray", "organ"));
        assert_eq!(derive_modality("abd", None), ("CT", "organ"));
        assert_eq!(derive_modality("HEAD", None), ("CT or MRI", "organ"));
        let mri = BTreeSet::from(["MRI"]);
        assert_eq!(
            derive_modality("HEAD", Some(&mri)),
            ("MRI", "modality_question")
        );
        let both = BTreeSet::from(["MRI", "CT"]);
        assert_eq!(derive_modality("HEAD", Some(&both)), ("CT or MRI", "organ"));
    }
}
