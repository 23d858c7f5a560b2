//! PathVQA (He et al. 2020, "PathVQA: 30000+ questions for medical visual question
//! answering") in the LXMERT-style layout its authors distribute: `pvqa_{train,val,test}.json`,
//! one object per image with `img_id`, `sentf.pvqa` (questions) and `labelf.pvqa` (one
//! `{answer: score}` object per question, same order).
//!
//! - Question id: `{img_id}_{index}` (the files have no question ids).
//! - Image: `{img_id}.jpg` (the images are distributed as `images/{split}/{img_id}.jpg`).
//! - Answer: the label with the highest score (ties: the lexicographically first).
//! - Answer type: closed when the answer is yes/no (the dataset's yes/no questions), else open.
//! - Modality: `Pathology` for every image; no body-system label exists.
//! - Question type: the opening wh-word (what, where, how, …) for open questions and `yes/no`
//!   for closed ones, the categories of the PathVQA paper.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{file_in, read_json, unknown_split, Dataset};
use crate::error::EvalError;
use crate::types::{AnswerType, Question};

/// The wh-words the PathVQA paper uses as open question categories.
const WH_WORDS: [&str; 8] = [
    "what", "where", "when", "whose", "how", "which", "who", "why",
];

pub(super) fn load(annotations: &Path, split: &str) -> Result<Vec<Question>, EvalError> {
    let split_label = match split {
        "test" => "test",
        "train" => "train",
        "val" | "validate" | "validation" => "val",
        _ => return Err(unknown_split(Dataset::PathVqa, split, "test, train, val")),
    };
    let path = file_in(annotations, &format!("pvqa_{split_label}.json"));
    let value = read_json(&path)?;
    let images = value
        .as_array()
        .ok_or_else(|| EvalError::format(&path, "expected a JSON array of image objects"))?;
    let mut out = Vec::new();
    for (index, image) in images.iter().enumerate() {
        let img_id = image
            .get("img_id")
            .and_then(super::scalar_text)
            .ok_or_else(|| EvalError::format(&path, format!("image {index}: no `img_id`")))?;
        let questions = nested_array(image, "sentf", &path, &img_id)?;
        let labels = nested_array(image, "labelf", &path, &img_id)?;
        if questions.len() != labels.len() {
            return Err(EvalError::format(
                &path,
                format!(
                    "image {img_id}: {} questions but {} labels",
                    questions.len(),
                    labels.len()
                ),
            ));
        }
        for (i, (q, label)) in questions.iter().zip(labels).enumerate() {
            let id = format!("{img_id}_{i}");
            let question = q
                .as_str()
                .ok_or_else(|| EvalError::format(&path, format!("question {id}: not a string")))?;
            let answer = best_label(label)
                .ok_or_else(|| EvalError::format(&path, format!("question {id}: empty label")))?;
            let closed = matches!(answer.trim().to_lowercase().as_str(), "yes" | "no");
            out.push(Question {
                id,
                images: vec![format!("{img_id}.jpg")],
                question: question.to_owned(),
                answer: answer.trim().to_owned(),
                answer_type: if closed {
                    AnswerType::Closed
                } else {
                    AnswerType::Open
                },
                options: Vec::new(),
                question_type: Some(question_type(question, closed)),
                modality: Some("Pathology".to_owned()),
                body_system_native: None,
                body_system: None,
                split: Some(split_label.to_owned()),
                lang: Some("en".to_owned()),
                extra: BTreeMap::new(),
            });
        }
    }
    Ok(out)
}

/// `image[outer]["pvqa"]` as an array.
fn nested_array<'a>(
    image: &'a Value,
    outer: &str,
    path: &Path,
    img_id: &str,
) -> Result<&'a Vec<Value>, EvalError> {
    image
        .get(outer)
        .and_then(|v| v.get("pvqa"))
        .and_then(Value::as_array)
        .ok_or_else(|| EvalError::format(path, format!("image {img_id}: no `{outer}.pvqa` array")))
}

/// The answer with the highest score in a `{answer: score}` object.
fn best_label(label: &Value) -> Option<String> {
    let mut best: Option<(&String, f64)> = None;
    for (answer, score) in label.as_object()? {
        let score = score.as_f64().unwrap_or(0.0);
        let better = match best {
            None => true,
            Some((a, s)) => score > s || (score == s && answer < a),
        };
        if better {
            best = Some((answer, score));
        }
    }
    best.map(|(a, _)| a.clone())
}

fn question_type(question: &str, closed: bool) -> String {
    if closed {
        return "yes/no".to_owned();
    }
    let first = question
        .split(|c: char| !c.is_alphanumeric())
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .to_lowercase();
    if WH_WORDS.contains(&first.as_str()) {
        first
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_label_takes_highest_score() {
        let v: Value = serde_json::json!({"b": 0.3, "a": 0.9});
        assert_eq!(best_label(&v).as_deref(), Some("a"));
        assert_eq!(best_label(&serde_json::json!({})), None);
    }

    #[test]
    fn question_types() {
        assert_eq!(question_type("What does this show?", false), "what");
        assert_eq!(question_type("Does it?", true), "yes/no");
        assert_eq!(question_type("In which organ?", false), "other");
    }
}
