//! The types every part of the eval crate shares: a question with its labels, and the
//! judgement a protocol makes of one prediction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an answer is judged: closed (yes/no and other two-way answers), open (free text), or
/// multiple choice (options lettered A, B, C, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    Closed,
    Open,
    MultipleChoice,
}

/// One question of a dataset, with its gold answer and every label the breakdowns use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// The dataset's own question id, as a string (VQA-RAD mixes ints and strings).
    pub id: String,
    /// Image paths relative to the dataset's image folder, in prompt order (several allowed).
    pub images: Vec<String>,
    pub question: String,
    /// The gold answer as the dataset states it (for multiple choice: the option text).
    pub answer: String,
    pub answer_type: AnswerType,
    /// Multiple-choice options in letter order (A first); empty otherwise.
    pub options: Vec<String>,
    /// The dataset's question type (VQA-RAD `PRES`, SLAKE `content_type`, …).
    pub question_type: Option<String>,
    /// Imaging modality (dataset field, or derived by a documented rule).
    pub modality: Option<String>,
    /// Body-system label as the dataset names it (SLAKE `location`, VQA-RAD `image_organ`, …).
    pub body_system_native: Option<String>,
    /// Body system in the common taxonomy (`datasets/body_systems.json`).
    pub body_system: Option<String>,
    /// Split the question belongs to (`train`, `test`, …), when the dataset says.
    pub split: Option<String>,
    /// Language code (`en`, `zh`) when the dataset says.
    pub lang: Option<String>,
    /// Any further label columns, kept for custom breakdowns.
    pub extra: BTreeMap<String, String>,
}

/// A protocol's verdict on one prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Counted as correct in accuracy.
    pub correct: bool,
    /// The protocol's per-question score in [0, 1] (equals `correct` for closed questions;
    /// for open questions the protocol's headline open metric, e.g. recall for LLaVA-Med).
    pub score: f64,
    pub gold_normalized: String,
    pub prediction_normalized: String,
    /// Special outcome names, e.g. `"unparsed"` when no option letter could be extracted.
    pub outcome: Option<String>,
    /// Open-question metrics (None for closed / multiple choice).
    pub open: Option<OpenMetrics>,
}

/// Token-level metrics of an open answer, each as the protocol defines it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenMetrics {
    pub exact_match: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub bleu1: f64,
}

/// A named set of answer-normalisation and correctness rules.
pub trait Protocol: Send + Sync {
    /// The name users pass to `--protocol` and that every score carries.
    fn name(&self) -> &'static str;
    /// Judges one prediction against the question's gold answer.
    fn judge(&self, question: &Question, prediction: &str) -> Judgement;
}
