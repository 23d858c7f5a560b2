//! OmniMedVQA (Hu et al. 2024, "OmniMedVQA: a new large-scale comprehensive evaluation
//! benchmark for medical LVLM"): the `QA_information/{Open-access,Restricted-access}/*.json`
//! files, each an array of multiple-choice items:
//!
//! `dataset`, `question_id`, `question_type`, `question`, `gt_answer`, `image_path`,
//! `option_A` … `option_D` (fewer for some items), `modality_type` (one item of the release
//! spells it `modality`).
//!
//! `--annotations` is one such file or a folder, read recursively in sorted path order. The
//! benchmark has no splits: every item is a test item (`test` and `all` both read everything).
//! The source dataset name is kept in `extra["source_dataset"]`, the gold letter in
//! `extra["answer_letter"]`. The QA files carry no anatomical label, so `body_system_native`
//! is empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{optional_text, read_json, required_text, unknown_split, Dataset};
use crate::error::EvalError;
use crate::types::{AnswerType, Question};

pub(super) fn load(annotations: &Path, split: &str) -> Result<Vec<Question>, EvalError> {
    if split != "test" && split != "all" {
        return Err(unknown_split(
            Dataset::OmniMedVqa,
            split,
            "only test (= all)",
        ));
    }
    let mut files = Vec::new();
    collect_json(annotations, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let value = read_json(&file)?;
        let rows = value
            .as_array()
            .ok_or_else(|| EvalError::format(&file, "expected a JSON array of QA items"))?;
        for (index, row) in rows.iter().enumerate() {
            out.push(parse_item(row, index, &file)?);
        }
    }
    Ok(out)
}

fn collect_json(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), EvalError> {
    if !path.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|e| EvalError::io(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EvalError::io(path, e))?;
        let p = entry.path();
        if p.is_dir() {
            collect_json(&p, out)?;
        } else if p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn parse_item(row: &Value, index: usize, path: &Path) -> Result<Question, EvalError> {
    let obj = row
        .as_object()
        .ok_or_else(|| EvalError::format(path, format!("item {index}: not a JSON object")))?;
    let id = required_text(obj, "question_id", path, &format!("item {index}"))?;
    let name = format!("item {index} (question_id {id})");
    let answer = required_text(obj, "gt_answer", path, &name)?
        .trim()
        .to_owned();
    let mut options = Vec::new();
    for letter in 'A'..='Z' {
        match optional_text(obj, &format!("option_{letter}")) {
            Some(o) => options.push(o),
            None => break,
        }
    }
    if options.is_empty() {
        return Err(EvalError::format(path, format!("{name}: no option_A")));
    }
    let mut extra = BTreeMap::new();
    if let Some(i) = options.iter().position(|o| o == &answer) {
        extra.insert(
            "answer_letter".to_owned(),
            char::from(b'A' + i as u8).to_string(),
        );
    }
    if let Some(d) = optional_text(obj, "dataset") {
        extra.insert("source_dataset".to_owned(), d);
    }
    Ok(Question {
        id,
        images: vec![required_text(obj, "image_path", path, &name)?
            .trim()
            .to_owned()],
        question: required_text(obj, "question", path, &name)?,
        answer,
        answer_type: AnswerType::MultipleChoice,
        options,
        question_type: optional_text(obj, "question_type"),
        modality: optional_text(obj, "modality_type").or_else(|| optional_text(obj, "modality")),
        body_system_native: None,
        body_system: None,
        split: Some("test".to_owned()),
        lang: Some("en".to_owned()),
        extra,
    })
}
