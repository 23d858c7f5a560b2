//! `multimedeval`: MultiMedEval's VQA scoring (corentin-ryr/MultiMedEval,
//! `multimedeval/task_families.py` `VQA.evaluate` and `utils.clean_str`, commit d9ac283).
//!
//! - Both answers go through the VQA v2 processing ([`vqa_v2_normalize`]); the gold is first
//!   lower-cased and stripped.
//! - Tokens are *sets* of whitespace tokens: precision, recall over unique tokens; F1 =
//!   2PR / (P + R + 1e-8).
//! - BLEU-1: torchmetrics `BLEUScore(n_gram=1)` on the two cleaned strings (float32).
//! - Closed vs. open is decided by the cleaned gold text being "yes" or "no", not by the
//!   dataset's answer type. A "no" gold also accepts "not"; a closed answer is correct when
//!   it recalls at least 0.4 of the gold tokens (so any answer containing "no" or "not" is
//!   correct for a "no" gold, and "yes" anywhere for a "yes" gold).
//! - Open: score = token recall; counted accurate when recall ≥ 0.75.
//! - Aggregate: `bleu`, `F1`, `recall` are means over *all* questions, closed included.

use std::collections::BTreeSet;

use super::normalize::{py_split, py_strip, torchmetrics_bleu1, vqa_v2_normalize};
use crate::types::{Judgement, OpenMetrics, Protocol, ProtocolAggregate, Question};

/// MultiMedEval's closed-answer recall threshold (`closed_q_recall >= 0.4`).
const CLOSED_RECALL_THRESHOLD: f64 = 0.4;
/// MultiMedEval's open-answer accuracy threshold (`recall[idx] >= 0.75`).
const OPEN_RECALL_THRESHOLD: f64 = 0.75;

/// MultiMedEval's VQA protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct MultiMedEval;

fn is_closed_gold(clean_gold: &str) -> bool {
    clean_gold == "yes" || clean_gold == "no"
}

impl Protocol for MultiMedEval {
    fn name(&self) -> &'static str {
        "multimedeval"
    }

    fn judge(&self, question: &Question, prediction: &str) -> Judgement {
        let clean_gold = vqa_v2_normalize(py_strip(&question.answer.to_lowercase()));
        let clean_pred = vqa_v2_normalize(prediction);
        let pred_tokens: BTreeSet<&str> = py_split(&clean_pred).into_iter().collect();
        let mut gold_tokens: BTreeSet<&str> = py_split(&clean_gold).into_iter().collect();
        let shared = pred_tokens.intersection(&gold_tokens).count() as f64;
        let precision = if pred_tokens.is_empty() {
            0.0
        } else {
            shared / pred_tokens.len() as f64
        };
        let recall = if gold_tokens.is_empty() {
            0.0
        } else {
            shared / gold_tokens.len() as f64
        };
        let f1 = 2.0 * (precision * recall) / (precision + recall + 1e-8);
        let bleu1 = torchmetrics_bleu1(&clean_gold, &clean_pred);
        let (correct, score) = if is_closed_gold(&clean_gold) {
            if gold_tokens.len() == 1 && gold_tokens.contains("no") {
                gold_tokens.insert("not");
            }
            let closed_recall =
                pred_tokens.intersection(&gold_tokens).count() as f64 / gold_tokens.len() as f64;
            let ok = closed_recall >= CLOSED_RECALL_THRESHOLD;
            (ok, if ok { 1.0 } else { 0.0 })
        } else {
            (recall >= OPEN_RECALL_THRESHOLD, recall)
        };
        Judgement {
            correct,
            score,
            gold_normalized: clean_gold.clone(),
            prediction_normalized: clean_pred.clone(),
            outcome: None,
            // Every question carries the token metrics: the toolkit averages them over all.
            open: Some(OpenMetrics {
                exact_match: if clean_pred == clean_gold { 1.0 } else { 0.0 },
                precision,
                recall,
                f1,
                bleu1,
            }),
        }
    }

    /// `overall` is the mean of `correct`; `closed`/`open` split by the cleaned gold text;
    /// `open.recall` is `openQuestionsRecall`; `extra` holds the toolkit's all-question means
    /// `bleu`, `F1`, `recall` and `closedQuestionsAccuracy`, `openQuestionsRecall`,
    /// `openQuestionsAccuracy` under its own names.
    fn aggregate(&self, items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
        let mut agg =
            ProtocolAggregate::partitioned(items, |_, j| !is_closed_gold(&j.gold_normalized));
        let mean = |f: fn(&OpenMetrics) -> f64| {
            let v: Vec<f64> = items
                .iter()
                .filter_map(|(_, j)| j.open.as_ref().map(f))
                .collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        agg.extra.insert("bleu".to_owned(), mean(|m| m.bleu1));
        agg.extra.insert("F1".to_owned(), mean(|m| m.f1));
        agg.extra.insert("recall".to_owned(), mean(|m| m.recall));
        agg.extra
            .insert("closedQuestionsAccuracy".to_owned(), agg.closed_accuracy);
        agg.extra
            .insert("openQuestionsRecall".to_owned(), agg.open.recall);
        agg.extra
            .insert("openQuestionsAccuracy".to_owned(), agg.open_accuracy);
        agg
    }
}
