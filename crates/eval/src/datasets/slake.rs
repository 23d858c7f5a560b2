//! SLAKE 1.0 (Liu et al. 2021, "SLAKE: a semantically-labeled knowledge-enhanced dataset for
//! medical visual question answering"): `train.json`, `validate.json`, `test.json`, each an
//! array of QA objects in English and Chinese (`q_lang`).
//!
//! Labels come from the dataset: `modality` (CT / X-Ray / MRI), `location` (native body
//! system: Lung, Abdomen, Brain_Tissue, …), `content_type` (question type), `answer_type`
//! (OPEN / CLOSED). English test: 1,061 QA on 96 images.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    file_in, open_closed, optional_text, read_json, required_text, unknown_split, Dataset, Lang,
};
use crate::error::EvalError;
use crate::types::Question;

pub(super) fn load(
    annotations: &Path,
    split: &str,
    lang: Lang,
) -> Result<Vec<Question>, EvalError> {
    let (file, split_label) = match split {
        "test" => ("test.json", "test"),
        "train" => ("train.json", "train"),
        "validate" | "validation" | "val" => ("validate.json", "validate"),
        _ => {
            return Err(unknown_split(
                Dataset::Slake,
                split,
                "test, train, validate",
            ))
        }
    };
    let path = file_in(annotations, file);
    let value = read_json(&path)?;
    let rows = value
        .as_array()
        .ok_or_else(|| EvalError::format(&path, "expected a JSON array of QA objects"))?;
    let mut out = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let obj = row
            .as_object()
            .ok_or_else(|| EvalError::format(&path, format!("row {index}: not a JSON object")))?;
        let id = required_text(obj, "qid", &path, &format!("row {index}"))?;
        let name = format!("row {index} (qid {id})");
        let q_lang = required_text(obj, "q_lang", &path, &name)?
            .trim()
            .to_lowercase();
        if !lang.accepts(&q_lang) {
            continue;
        }
        let mut extra = BTreeMap::new();
        for field in ["base_type", "img_id"] {
            if let Some(v) = optional_text(obj, field) {
                extra.insert(field.to_owned(), v);
            }
        }
        out.push(Question {
            id,
            images: vec![required_text(obj, "img_name", &path, &name)?
                .trim()
                .to_owned()],
            question: required_text(obj, "question", &path, &name)?,
            answer: required_text(obj, "answer", &path, &name)?
                .trim()
                .to_owned(),
            answer_type: open_closed(
                &required_text(obj, "answer_type", &path, &name)?,
                &path,
                &name,
            )?,
            options: Vec::new(),
            question_type: optional_text(obj, "content_type"),
            modality: optional_text(obj, "modality"),
            body_system_native: optional_text(obj, "location"),
            body_system: None,
            split: Some(split_label.to_owned()),
            lang: Some(q_lang),
            extra,
        });
    }
    Ok(out)
}
