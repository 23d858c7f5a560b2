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

    /// The protocol's headline numbers over a set of judged questions.
    ///
    /// The default partitions by the dataset's answer type (open vs. everything else) and
    /// averages `correct` and the open metrics. Protocols whose toolkit defines the aggregate
    /// differently override it — e.g. MultiMedEval and MedEvalKit decide closed vs. open from
    /// the gold text, LLaVA-Med adds its candidate-matching "open accuracy" — and say so in
    /// `docs/protocols.md`. Summaries (`overall`, `closed`, `open`) should come from here, not
    /// from their own averages, so that a number means what its protocol says.
    fn aggregate(&self, items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
        ProtocolAggregate::by_answer_type(items)
    }
}

/// A protocol's aggregate numbers, each as that protocol defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolAggregate {
    /// Questions counted (items the toolkit could not score, see `extra["toolkit_errors"]`,
    /// are left out by protocols that document it).
    pub n: usize,
    /// Overall accuracy as the protocol defines it.
    pub overall: f64,
    /// Closed (and multiple-choice) questions: count and accuracy.
    pub closed_n: usize,
    pub closed_accuracy: f64,
    /// Open questions: count, accuracy and mean open metrics.
    pub open_n: usize,
    pub open_accuracy: f64,
    pub open: OpenMetrics,
    /// Further toolkit-specific numbers under the toolkit's own names.
    pub extra: BTreeMap<String, f64>,
}

impl ProtocolAggregate {
    /// The default aggregate: open = questions whose dataset answer type is open, closed =
    /// the rest; accuracies are means of `correct`, open metrics means of `Judgement::open`.
    pub fn by_answer_type(items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
        ProtocolAggregate::partitioned(items, |q, _| q.answer_type == AnswerType::Open)
    }

    /// Aggregates with a protocol's own open/closed partition; means over empty sets are 0
    /// (the toolkits' convention).
    pub fn partitioned(
        items: &[(&Question, &Judgement)],
        is_open: impl Fn(&Question, &Judgement) -> bool,
    ) -> ProtocolAggregate {
        let mean = |values: &[f64]| {
            if values.is_empty() {
                0.0
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            }
        };
        let flag = |j: &Judgement| if j.correct { 1.0 } else { 0.0 };
        let (open, closed): (Vec<_>, Vec<_>) = items.iter().partition(|(q, j)| is_open(q, j));
        let open_metrics: Vec<OpenMetrics> = open.iter().filter_map(|(_, j)| j.open).collect();
        let field =
            |f: fn(&OpenMetrics) -> f64| mean(&open_metrics.iter().map(f).collect::<Vec<_>>());
        ProtocolAggregate {
            n: items.len(),
            overall: mean(&items.iter().map(|(_, j)| flag(j)).collect::<Vec<_>>()),
            closed_n: closed.len(),
            closed_accuracy: mean(&closed.iter().map(|(_, j)| flag(j)).collect::<Vec<_>>()),
            open_n: open.len(),
            open_accuracy: mean(&open.iter().map(|(_, j)| flag(j)).collect::<Vec<_>>()),
            open: OpenMetrics {
                exact_match: field(|m| m.exact_match),
                precision: field(|m| m.precision),
                recall: field(|m| m.recall),
                f1: field(|m| m.f1),
                bleu1: field(|m| m.bleu1),
            },
            extra: BTreeMap::new(),
        }
    }
}
