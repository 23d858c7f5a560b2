//! Reference floors that need no model: a number a VLM must beat to mean anything.
//!
//! - `baseline:majority`: for each question type, the most frequent answer of the dataset's
//!   training split (answers compared with case and whitespace folded; ties broken by the
//!   alphabetically first answer so the baseline is deterministic). Question types are counted
//!   separately for closed and open questions: VQA-RAD's `MODALITY` type holds both "Is this an
//!   MRI?" (closed, mostly "yes") and "What modality is this?" (open, mostly "ct"), and a floor
//!   that answers "ct" to a yes/no question measures nothing. A question type absent from
//!   training falls back to the most frequent answer of its answer type, then of the whole
//!   split. A multiple-choice question is answered with the option given most often as a
//!   training answer (the first option when none was).
//! - `baseline:yes`: answers "yes" to everything — the closed-question floor.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::error::EvalError;
use crate::run::Answerer;
use crate::summary::UNKNOWN_LABEL;
use crate::types::{AnswerType, Question};

/// Names `--model` accepts for the built-in baselines.
pub const BASELINE_NAMES: [&str; 2] = ["baseline:majority", "baseline:yes"];

fn fold(answer: &str) -> String {
    answer
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Most frequent key; ties go to the smallest key (BTreeMap order).
fn most_frequent(counts: &BTreeMap<String, usize>) -> Option<String> {
    let mut best: Option<(&String, usize)> = None;
    for (k, &n) in counts {
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((k, n));
        }
    }
    best.map(|(k, _)| k.clone())
}

/// The majority answer of every group.
fn majority_per<K: std::hash::Hash + Eq>(
    groups: HashMap<K, BTreeMap<String, usize>>,
) -> HashMap<K, String> {
    groups
        .into_iter()
        .filter_map(|(k, c)| most_frequent(&c).map(|a| (k, a)))
        .collect()
}

/// Most frequent training answer per (answer type, question type).
#[derive(Debug, Clone, PartialEq)]
pub struct MajorityBaseline {
    by_question_type: HashMap<(AnswerType, String), String>,
    by_answer_type: HashMap<AnswerType, String>,
    overall: String,
    /// How often each folded answer occurs in training (for multiple choice).
    answer_counts: BTreeMap<String, usize>,
}

impl MajorityBaseline {
    /// Learns the majority answers from `train` (the dataset's training split).
    pub fn from_training(train: &[Question]) -> Result<Self, EvalError> {
        let mut per_type: HashMap<(AnswerType, String), BTreeMap<String, usize>> = HashMap::new();
        let mut per_answer_type: HashMap<AnswerType, BTreeMap<String, usize>> = HashMap::new();
        let mut all: BTreeMap<String, usize> = BTreeMap::new();
        for q in train {
            let a = fold(&q.answer);
            if a.is_empty() {
                continue;
            }
            let t = q
                .question_type
                .clone()
                .unwrap_or_else(|| UNKNOWN_LABEL.into());
            *per_type
                .entry((q.answer_type, t))
                .or_default()
                .entry(a.clone())
                .or_default() += 1;
            *per_answer_type
                .entry(q.answer_type)
                .or_default()
                .entry(a.clone())
                .or_default() += 1;
            *all.entry(a).or_default() += 1;
        }
        let overall = most_frequent(&all).ok_or_else(|| EvalError::Invalid {
            what: "training split",
            value: format!("{} questions", train.len()),
            reason: "baseline:majority needs a training split with at least one answer".into(),
        })?;
        Ok(Self {
            by_question_type: majority_per(per_type),
            by_answer_type: majority_per(per_answer_type),
            overall,
            answer_counts: all,
        })
    }

    /// The baseline's answer to `q`.
    pub fn predict(&self, q: &Question) -> String {
        if q.answer_type == AnswerType::MultipleChoice && !q.options.is_empty() {
            let count = |o: &String| self.answer_counts.get(&fold(o)).copied().unwrap_or(0);
            // max_by_key keeps the last maximum; iterate reversed so ties go to the first option.
            return q
                .options
                .iter()
                .rev()
                .max_by_key(|o| count(o))
                .cloned()
                .unwrap_or_default();
        }
        let t = q
            .question_type
            .clone()
            .unwrap_or_else(|| UNKNOWN_LABEL.into());
        self.by_question_type
            .get(&(q.answer_type, t))
            .or_else(|| self.by_answer_type.get(&q.answer_type))
            .unwrap_or(&self.overall)
            .clone()
    }
}

impl Answerer for MajorityBaseline {
    fn name(&self) -> String {
        "baseline:majority".into()
    }

    fn needs_images(&self) -> bool {
        false
    }

    fn answer(&mut self, question: &Question, _images: &[PathBuf]) -> Result<String, EvalError> {
        Ok(self.predict(question))
    }
}

/// Answers "yes" to every question.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct YesBaseline;

impl Answerer for YesBaseline {
    fn name(&self) -> String {
        "baseline:yes".into()
    }

    fn needs_images(&self) -> bool {
        false
    }

    fn answer(&mut self, _question: &Question, _images: &[PathBuf]) -> Result<String, EvalError> {
        Ok("yes".into())
    }
}

/// Drops from `train` every question that is also evaluated (same id): a JSONL set whose rows
/// carry no `split` puts every row in every split, and a majority learnt on the test answers
/// is no floor. Returns the remaining questions and how many were dropped.
pub fn disjoint_training(train: Vec<Question>, evaluated: &[Question]) -> (Vec<Question>, usize) {
    let ids: std::collections::HashSet<&str> = evaluated.iter().map(|q| q.id.as_str()).collect();
    let before = train.len();
    let kept: Vec<Question> = train
        .into_iter()
        .filter(|q| !ids.contains(q.id.as_str()))
        .collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// The baseline named `name`. `training` is called only for `baseline:majority`, to load the
/// dataset's training split.
pub fn baseline_by_name(
    name: &str,
    training: impl FnOnce() -> Result<Vec<Question>, EvalError>,
) -> Result<Box<dyn Answerer>, EvalError> {
    match name {
        "baseline:majority" => Ok(Box::new(MajorityBaseline::from_training(&training()?)?)),
        "baseline:yes" => Ok(Box::new(YesBaseline)),
        _ => Err(EvalError::Invalid {
            what: "model",
            value: name.into(),
            reason: format!("known models: {}", BASELINE_NAMES.join(", ")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(t: Option<&str>, at: AnswerType, answer: &str) -> Question {
        Question {
            id: String::new(),
            images: vec![],
            question: String::new(),
            answer: answer.into(),
            answer_type: at,
            options: vec![],
            question_type: t.map(Into::into),
            modality: None,
            body_system_native: None,
            body_system: None,
            split: Some("train".into()),
            lang: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn majority_per_question_type_with_fallbacks() {
        use AnswerType::*;
        let train = vec![
            q(Some("PRES"), Closed, "Yes"),
            q(Some("PRES"), Closed, "yes "),
            q(Some("PRES"), Closed, "No"),
            q(Some("POS"), Open, "Left  lung"),
            q(Some("POS"), Open, "right lung"),
            q(Some("MODALITY"), Open, "ct"),
            q(Some("MODALITY"), Open, "ct"),
            q(Some("MODALITY"), Closed, "no"),
        ];
        let m = MajorityBaseline::from_training(&train).unwrap();
        assert_eq!(m.predict(&q(Some("PRES"), Closed, "")), "yes");
        // Tie (1 vs 1): alphabetically first, deterministic.
        assert_eq!(m.predict(&q(Some("POS"), Open, "")), "left lung");
        assert_eq!(
            m.predict(&q(Some("MODALITY"), Closed, "")),
            "no",
            "closed and open types counted apart"
        );
        assert_eq!(m.predict(&q(Some("MODALITY"), Open, "")), "ct");
        // Unseen type: most frequent answer of the answer type (open: ct 2, left/right 1).
        assert_eq!(m.predict(&q(Some("SIZE"), Open, "")), "ct");
        // No type: closed answers tie 2–2 (yes, no): alphabetically first.
        assert_eq!(m.predict(&q(None, Closed, "")), "no");
        let mut mc = q(Some("X"), MultipleChoice, "");
        mc.options = vec!["MRI".into(), "CT".into(), "PET".into()];
        assert_eq!(m.predict(&mc), "CT");
        mc.options = vec!["A".into(), "B".into()];
        assert_eq!(
            m.predict(&mc),
            "A",
            "no option seen in training: first option"
        );
    }

    #[test]
    fn evaluated_questions_never_train_the_majority() {
        let mut a = q(None, AnswerType::Closed, "yes");
        a.id = "a".into();
        let mut b = a.clone();
        b.id = "b".into();
        let (kept, dropped) = disjoint_training(vec![a.clone(), b], &[a]);
        assert_eq!((kept.len(), dropped, kept[0].id.as_str()), (1, 1, "b"));
    }

    #[test]
    fn empty_training_is_an_error() {
        let e = MajorityBaseline::from_training(&[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("training split"), "{e}");
        assert!(baseline_by_name("gpt-5", || Ok(vec![])).is_err());
        let mut yes =
            baseline_by_name("baseline:yes", || unreachable!("no training needed")).unwrap();
        assert_eq!(
            yes.answer(&q(None, AnswerType::Open, "x"), &[]).unwrap(),
            "yes"
        );
    }
}
