//! `llava-med`: LLaVA-Med's VQA scoring (microsoft/LLaVA-Med, `llava/eval/run_eval.py` and
//! `llava/eval/eval_metrics/`, commit b9a98a7 — the last before v1.5 removed them; the
//! numbers of the LLaVA-Med paper come from this code).
//!
//! Both answers are lower-cased and put through the VQA v2 processing
//! ([`vqa_v2_normalize`]); the metric functions then normalise them a second time.
//! - Closed (dataset answer type CLOSED): correct when the prediction contains "yes" or "no"
//!   *as a substring* and contains the gold *as a substring* — so "abnormal", "not seen",
//!   "unknown" and "none" all contain "no", and "abnormal" is right for a "no" gold.
//! - Open: `recall` = share of gold tokens found (counted with the prediction's
//!   multiplicity), the paper's headline open metric and this protocol's `score`;
//!   `precision`, `f1` alike; `exact_match` = distinct gold words found / prediction words
//!   (not an exact match at all); `bleu1` = nltk sentence BLEU with weights (1, 0, 0, 0).
//!   `correct` for an open question means recall = 1 (every gold token present).
//! - Aggregate extra `open_accuracy_candidates`: the toolkit's "open accuracy" maps each
//!   prediction to the candidate answer with the highest share of its words present and
//!   compares with the gold. The toolkit reads candidates from a `candidate.json` that was
//!   not published; here they are the evaluated questions' gold answers in first-seen order.

use std::collections::HashMap;

use super::normalize::{nltk_bleu1, py_split, py_strip, vqa_v2_normalize};
use crate::types::{AnswerType, Judgement, OpenMetrics, Protocol, ProtocolAggregate, Question};

/// LLaVA-Med's protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct LlavaMed;

/// `split_sentence(s, 1)`: lower, strip, whitespace tokens with counts, in first-seen order.
fn word_counts(s: &str) -> Vec<(String, usize)> {
    let lower = s.to_lowercase();
    let mut order: Vec<(String, usize)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for t in py_split(py_strip(&lower)) {
        match index.get(t) {
            Some(&i) => order[i].1 += 1,
            None => {
                index.insert(t.to_owned(), order.len());
                order.push((t.to_owned(), 1));
            }
        }
    }
    order
}

fn count_of(words: &[(String, usize)], w: &str) -> Option<usize> {
    words.iter().find(|(t, _)| t == w).map(|(_, c)| *c)
}

/// `calculate_exactmatch(candidate, reference)`.
fn exact_match(candidate: &str, reference: &str) -> f64 {
    let cand = word_counts(&vqa_v2_normalize(candidate));
    let refw = word_counts(&vqa_v2_normalize(reference));
    let count = refw
        .iter()
        .filter(|(w, _)| count_of(&cand, w).is_some())
        .count();
    let total: usize = cand.iter().map(|(_, c)| c).sum();
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// `calculate_f1score(candidate, reference)` → (f1, precision, recall).
fn f1_score(candidate: &str, reference: &str) -> (f64, f64, f64) {
    let cand = word_counts(&vqa_v2_normalize(candidate));
    let refw = word_counts(&vqa_v2_normalize(reference));
    if cand.is_empty() || refw.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (w, c) in &cand {
        if count_of(&refw, w).is_some() {
            tp += c;
        } else {
            fp += c;
        }
    }
    for (w, c) in &refw {
        if count_of(&cand, w).is_none() {
            fn_ += c;
        }
    }
    if tp == 0 {
        return (0.0, 0.0, 0.0);
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    (
        2.0 * precision * recall / (precision + recall),
        precision,
        recall,
    )
}

/// `calculate_appearance_with_normalization`: 1 when the candidate answer most similar to
/// the prediction (share of the candidate's distinct words found among the prediction's,
/// first maximum wins) equals the gold.
fn candidate_hit(prediction: &str, reference: &str, candidates: &[String]) -> f64 {
    let pred_words = word_counts(&vqa_v2_normalize(prediction));
    let reference = vqa_v2_normalize(reference);
    let mut best: Option<(f64, &String)> = None;
    for cand in candidates {
        let cand_words = word_counts(cand);
        let count = pred_words
            .iter()
            .filter(|(w, _)| count_of(&cand_words, w).is_some())
            .count();
        let sim = if cand_words.is_empty() {
            0.0
        } else {
            count as f64 / cand_words.len() as f64
        };
        if best.is_none_or(|(b, _)| sim > b) {
            best = Some((sim, cand));
        }
    }
    match best {
        Some((_, c)) if *c == reference => 1.0,
        _ => 0.0,
    }
}

impl Protocol for LlavaMed {
    fn name(&self) -> &'static str {
        "llava-med"
    }

    fn judge(&self, question: &Question, prediction: &str) -> Judgement {
        let gold = vqa_v2_normalize(&question.answer.to_lowercase());
        let pred = vqa_v2_normalize(&prediction.to_lowercase());
        if question.answer_type == AnswerType::Closed {
            let correct = (pred.contains("yes") || pred.contains("no")) && pred.contains(&gold);
            return Judgement {
                correct,
                score: if correct { 1.0 } else { 0.0 },
                gold_normalized: gold,
                prediction_normalized: pred,
                outcome: None,
                open: None,
            };
        }
        let (f1, precision, recall) = f1_score(&pred, &gold);
        let gold_tokens: Vec<&str> = py_split(&gold);
        let pred_tokens: Vec<&str> = py_split(&pred);
        let metrics = OpenMetrics {
            exact_match: exact_match(&pred, &gold),
            precision,
            recall,
            f1,
            bleu1: nltk_bleu1(&gold_tokens, &pred_tokens),
        };
        Judgement {
            correct: recall >= 1.0,
            score: recall,
            gold_normalized: gold,
            prediction_normalized: pred,
            outcome: None,
            open: Some(metrics),
        }
    }

    /// `closed_accuracy` is the toolkit's "yes/no accuracy", `open.*` its exact match, f1,
    /// precision, recall and bleu_score_1; `overall` is the mean `score` (closed hit, open
    /// recall), which the toolkit does not report; `extra["open_accuracy_candidates"]` as
    /// described in the module doc.
    fn aggregate(&self, items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
        let mut agg = ProtocolAggregate::by_answer_type(items);
        agg.overall = if items.is_empty() {
            0.0
        } else {
            items.iter().map(|(_, j)| j.score).sum::<f64>() / items.len() as f64
        };
        let mut candidates: Vec<String> = Vec::new();
        for (q, _) in items {
            let c = vqa_v2_normalize(&q.answer);
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
        // Candidates are the raw gold answers normalised once, as the toolkit does with its
        // candidate list; duplicates after normalisation never win a first-maximum argmax.
        let open: Vec<f64> = items
            .iter()
            .filter(|(q, _)| q.answer_type != AnswerType::Closed)
            .map(|(q, j)| {
                candidate_hit(
                    &j.prediction_normalized,
                    &vqa_v2_normalize(&q.answer.to_lowercase()),
                    &candidates,
                )
            })
            .collect();
        let hits = if open.is_empty() {
            0.0
        } else {
            open.iter().sum::<f64>() / open.len() as f64
        };
        agg.extra
            .insert("open_accuracy_candidates".to_owned(), hits);
        agg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_is_substring_matching() {
        let q = |a: &str| Question {
            id: "1".into(),
            images: vec![],
            question: "?".into(),
            answer: a.into(),
            answer_type: AnswerType::Closed,
            options: vec![],
            question_type: None,
            modality: None,
            body_system_native: None,
            body_system: None,
            split: None,
            lang: None,
            extra: Default::default(),
        };
        let p = LlavaMed;
        assert!(p.judge(&q("No"), "abnormal").correct);
        assert!(p.judge(&q("no"), "not seen").correct);
        assert!(p.judge(&q("yes"), "Yes, there is.").correct);
        assert!(!p.judge(&q("yes"), "").correct);
        assert!(p.judge(&q("no"), "yes and no").correct);
    }

    #[test]
    fn open_metrics_follow_toolkit() {
        assert_eq!(f1_score("left lung", "left lung"), (1.0, 1.0, 1.0));
        let (_, p, r) = f1_score("lung lung", "lung");
        assert_eq!((p, r), (1.0, 1.0));
        // "exact match" is distinct gold words found over prediction length.
        assert_eq!(exact_match("the left side lung", "left lung"), 2.0 / 3.0);
        assert_eq!(exact_match("", "lung"), 0.0);
    }

    #[test]
    fn candidate_matching_takes_first_best() {
        let c = vec![
            "left lung".to_owned(),
            "lung".to_owned(),
            "right lung".to_owned(),
        ];
        assert_eq!(candidate_hit("left lung", "left lung", &c), 1.0);
        assert_eq!(candidate_hit("lung", "left lung", &c), 0.0);
        // "lung" already scores 1.0 before "right lung" does, and ties keep the first.
        assert_eq!(candidate_hit("right lung", "right lung", &c), 0.0);
    }
}
