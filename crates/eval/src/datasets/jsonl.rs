//! The generic JSONL format (`datasets/jsonl-format.md`): one JSON object per line, so that
//! any VQA set can be evaluated, including several images per question (MedFrameQA-style).
//!
//! Known keys: `id` (required), `image` or `images`, `question` (required), `answer`
//! (required), `answer_type` (`closed` | `open` | `multiple_choice`; inferred when absent),
//! `options` (array in letter order, or an object keyed by letter), `question_type`,
//! `modality`, `body_system`, `split`, `lang`. Every other scalar key is kept in `extra`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::{scalar_text, Lang};
use crate::error::EvalError;
use crate::types::{AnswerType, Question};

/// Keys with a meaning of their own; the rest go to `extra`.
const KNOWN: [&str; 12] = [
    "id",
    "image",
    "images",
    "question",
    "answer",
    "answer_type",
    "options",
    "question_type",
    "modality",
    "body_system",
    "split",
    "lang",
];

pub(super) fn load(
    annotations: &Path,
    split: &str,
    lang: Lang,
) -> Result<Vec<Question>, EvalError> {
    let text = std::fs::read_to_string(annotations).map_err(|e| EvalError::io(annotations, e))?;
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| EvalError::Line {
            path: annotations.to_path_buf(),
            line: line_no,
            reason,
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| err("not a JSON object".to_owned()))?;
        let q = parse(obj).map_err(err)?;
        let split_ok = split == "all"
            || q.split
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(split));
        let lang_ok = q.lang.as_deref().is_none_or(|l| lang.accepts(l));
        if split_ok && lang_ok {
            out.push(q);
        }
    }
    Ok(out)
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(scalar_text)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn required(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    obj.get(key)
        .and_then(scalar_text)
        .ok_or_else(|| format!("field {key:?} is missing or not a string/number"))
}

fn parse(obj: &Map<String, Value>) -> Result<Question, String> {
    let id = required(obj, "id")?.trim().to_owned();
    let question = required(obj, "question")?;
    let answer = required(obj, "answer")?.trim().to_owned();
    let images = match (obj.get("images"), obj.get("image")) {
        (Some(Value::Array(list)), _) => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "`images` must be an array of strings".to_owned())?,
        (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => vec![s.clone()],
        (None, None) => Vec::new(),
        _ => return Err("`image` must be a string and `images` an array of strings".to_owned()),
    };
    let options = match obj.get("options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(scalar_text)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "`options` must hold strings".to_owned())?,
        // Object keyed by letter: serde_json keeps keys sorted, so A, B, C… come in order.
        Some(Value::Object(map)) => map
            .values()
            .map(scalar_text)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "`options` must hold strings".to_owned())?,
        Some(_) => return Err("`options` must be an array or an object".to_owned()),
    };
    let answer_type = match text(obj, "answer_type").map(|s| s.to_lowercase()) {
        Some(t) => match t.as_str() {
            "closed" => AnswerType::Closed,
            "open" => AnswerType::Open,
            "multiple_choice" | "multiple-choice" | "mc" => AnswerType::MultipleChoice,
            _ => {
                return Err(format!(
                    "answer_type {t:?} is not closed, open or multiple_choice"
                ))
            }
        },
        None if !options.is_empty() => AnswerType::MultipleChoice,
        None if matches!(answer.to_lowercase().as_str(), "yes" | "no") => AnswerType::Closed,
        None => AnswerType::Open,
    };
    if answer_type == AnswerType::MultipleChoice && options.is_empty() {
        return Err("multiple_choice question without `options`".to_owned());
    }
    let mut extra = BTreeMap::new();
    for (key, value) in obj {
        if KNOWN.contains(&key.as_str()) {
            continue;
        }
        if let Some(v) = scalar_text(value) {
            extra.insert(key.clone(), v);
        }
    }
    Ok(Question {
        id,
        images,
        question,
        answer,
        answer_type,
        options,
        question_type: text(obj, "question_type"),
        modality: text(obj, "modality"),
        body_system_native: text(obj, "body_system"),
        body_system: None,
        split: text(obj, "split"),
        lang: text(obj, "lang"),
        extra,
    })
}
