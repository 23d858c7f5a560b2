//! Per-question results and the aggregated `summary.json`.
//!
//! A protocol judges every (question, prediction) pair into a [`QuestionResult`]; [`summarize`]
//! turns those into a [`Summary`]: overall, closed and open accuracy, the open-answer token
//! metrics, and the same accuracy broken down by modality, body system, question type and answer
//! type. Every accuracy carries a 95 % interval from a seeded percentile bootstrap
//! ([`Bootstrap`]), so two runs on the same results print the same interval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{AnswerType, OpenMetrics, Protocol, Question};

/// Label used in breakdowns when a question has no value for that label.
pub const UNKNOWN_LABEL: &str = "unknown";

/// One question as scored: the gold answer, the prediction, both normalised forms, every label
/// and the protocol's verdict. One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    pub id: String,
    pub question: String,
    pub images: Vec<String>,
    pub gold: String,
    pub prediction: String,
    pub gold_normalized: String,
    pub prediction_normalized: String,
    pub answer_type: AnswerType,
    pub question_type: Option<String>,
    pub modality: Option<String>,
    /// Body system in the common taxonomy.
    pub body_system: Option<String>,
    /// Body system as the dataset names it.
    pub body_system_native: Option<String>,
    pub correct: bool,
    pub score: f64,
    /// Special outcome named by the protocol (e.g. `unparsed`), or `missing` when the
    /// predictions file had no answer for this question (scored as an empty answer).
    pub outcome: Option<String>,
    pub open: Option<OpenMetrics>,
}

/// Outcome recorded for a question the predictions file did not answer.
pub const MISSING_OUTCOME: &str = "missing";

/// Judges every question with `protocol`. A question absent from `predictions` is judged as an
/// empty answer (so it counts as wrong, never silently dropped) and marked [`MISSING_OUTCOME`].
pub fn judge_all(
    questions: &[Question],
    predictions: &BTreeMap<String, String>,
    protocol: &dyn Protocol,
) -> Vec<QuestionResult> {
    questions
        .iter()
        .map(|q| {
            let (prediction, missing) = match predictions.get(&q.id) {
                Some(p) => (p.as_str(), false),
                None => ("", true),
            };
            let j = protocol.judge(q, prediction);
            QuestionResult {
                id: q.id.clone(),
                question: q.question.clone(),
                images: q.images.clone(),
                gold: q.answer.clone(),
                prediction: prediction.to_string(),
                gold_normalized: j.gold_normalized,
                prediction_normalized: j.prediction_normalized,
                answer_type: q.answer_type,
                question_type: q.question_type.clone(),
                modality: q.modality.clone(),
                body_system: q.body_system.clone(),
                body_system_native: q.body_system_native.clone(),
                correct: j.correct,
                score: j.score,
                outcome: if missing { Some(MISSING_OUTCOME.to_string()) } else { j.outcome },
                open: j.open,
            }
        })
        .collect()
}

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): tiny, fast, and fully determined by its seed — all a bootstrap needs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` by multiply-shift (Lemire 2019); the bias is below 2^-40 for
    /// any dataset size we meet, far under bootstrap noise.
    pub fn index(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Seeded percentile bootstrap (Efron & Tibshirani 1993, ch. 13) of a mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Number of resamples.
    pub resamples: usize,
    pub seed: u64,
}

impl Default for Bootstrap {
    /// 2,000 resamples: the percentile endpoints of a proportion then vary by well under one
    /// percentage point between seeds (Efron & Tibshirani 1993, §19.3 recommend ≥ 1,000 for
    /// percentile intervals).
    fn default() -> Self {
        Self { resamples: 2000, seed: 0x6D65_6476_7161 }
    }
}

impl Bootstrap {
    /// 95 % percentile interval `[lo, hi]` of the mean of `values`; `None` when empty.
    /// Each resample draws `values.len()` items with replacement.
    pub fn ci95(&self, values: &[f64]) -> Option<[f64; 2]> {
        if values.is_empty() {
            return None;
        }
        let mut rng = SplitMix64::new(self.seed);
        let n = values.len();
        let mut means: Vec<f64> = (0..self.resamples.max(1))
            .map(|_| (0..n).map(|_| values[rng.index(n)]).sum::<f64>() / n as f64)
            .collect();
        means.sort_by(f64::total_cmp);
        Some([quantile_sorted(&means, 0.025), quantile_sorted(&means, 0.975)])
    }

    /// 95 % paired percentile interval of `mean(b) - mean(a)`: each resample draws the same
    /// question indices for both runs, so the pairing is kept. `None` when empty or unequal.
    pub fn paired_diff_ci95(&self, a: &[f64], b: &[f64]) -> Option<[f64; 2]> {
        if a.is_empty() || a.len() != b.len() {
            return None;
        }
        let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
        self.ci95(&diffs)
    }
}

/// Quantile of sorted data with linear interpolation between order statistics (Hyndman & Fan
/// 1996 definition 7, numpy's default), so our intervals match `np.percentile`.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn indicator(results: &[&QuestionResult]) -> Vec<f64> {
    results.iter().map(|r| if r.correct { 1.0 } else { 0.0 }).collect()
}

/// Accuracy of a set of questions with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracySummary {
    pub n: usize,
    /// Fraction correct in [0, 1]; null when `n` is 0.
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// Open-answer metrics: accuracy as the protocol decides correctness, and the mean of each
/// token metric over the open questions (each as the protocol defines it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSummary {
    pub n: usize,
    pub accuracy: Option<f64>,
    pub exact_match: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub bleu1: Option<f64>,
}

/// One label of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub n: usize,
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    /// Accuracy on the label's closed questions; null when it has none.
    pub closed_accuracy: Option<f64>,
    /// Mean open-answer recall on the label's open questions; null when it has none.
    pub open_recall: Option<f64>,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub dataset: String,
    pub split: String,
    /// Question language filter (`en`, `zh`, `all`), when the dataset has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub protocol: String,
    /// The model that produced the predictions, when `medvqa eval` ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub n: usize,
    pub overall: AccuracySummary,
    pub closed: AccuracySummary,
    pub open: OpenSummary,
    pub by_modality: BTreeMap<String, GroupSummary>,
    /// Keyed by the common-taxonomy body system.
    pub by_body_system: BTreeMap<String, GroupSummary>,
    /// Keyed by the dataset's own body-system label, so native and common labels both show.
    pub by_body_system_native: BTreeMap<String, GroupSummary>,
    pub by_question_type: BTreeMap<String, GroupSummary>,
    pub by_answer_type: BTreeMap<String, GroupSummary>,
    /// Questions the predictions did not answer (scored as empty answers).
    pub missing_predictions: usize,
    /// How every `ci95` was computed (percentile bootstrap of the mean of `correct`).
    pub bootstrap: Bootstrap,
}

/// The name an answer type has in breakdowns and reports.
pub fn answer_type_label(t: AnswerType) -> &'static str {
    match t {
        AnswerType::Closed => "closed",
        AnswerType::Open => "open",
        AnswerType::MultipleChoice => "multiple_choice",
    }
}

fn accuracy_summary(results: &[&QuestionResult], boot: &Bootstrap) -> AccuracySummary {
    let ind = indicator(results);
    AccuracySummary { n: ind.len(), accuracy: mean(ind.iter().copied()), ci95: boot.ci95(&ind) }
}

fn open_summary(results: &[&QuestionResult]) -> OpenSummary {
    let open: Vec<&OpenMetrics> = results.iter().filter_map(|r| r.open.as_ref()).collect();
    let m = |f: fn(&OpenMetrics) -> f64| mean(open.iter().map(|o| f(o)));
    OpenSummary {
        n: results.len(),
        accuracy: mean(indicator(results)),
        exact_match: m(|o| o.exact_match),
        precision: m(|o| o.precision),
        recall: m(|o| o.recall),
        f1: m(|o| o.f1),
        bleu1: m(|o| o.bleu1),
    }
}

fn group_summary(results: &[&QuestionResult], boot: &Bootstrap) -> GroupSummary {
    let acc = accuracy_summary(results, boot);
    let closed: Vec<&QuestionResult> =
        results.iter().copied().filter(|r| r.answer_type == AnswerType::Closed).collect();
    let open_recall = mean(
        results
            .iter()
            .filter(|r| r.answer_type == AnswerType::Open)
            .filter_map(|r| r.open.map(|o| o.recall)),
    );
    GroupSummary {
        n: acc.n,
        accuracy: acc.accuracy,
        ci95: acc.ci95,
        closed_accuracy: mean(indicator(&closed)),
        open_recall,
    }
}

/// Groups results by a label (missing labels under [`UNKNOWN_LABEL`]) and summarises each.
pub fn breakdown(
    results: &[QuestionResult],
    label: impl Fn(&QuestionResult) -> Option<String>,
    boot: &Bootstrap,
) -> BTreeMap<String, GroupSummary> {
    let mut groups: BTreeMap<String, Vec<&QuestionResult>> = BTreeMap::new();
    for r in results {
        let key = label(r).filter(|s| !s.trim().is_empty()).unwrap_or_else(|| UNKNOWN_LABEL.into());
        groups.entry(key).or_default().push(r);
    }
    groups.into_iter().map(|(k, v)| (k, group_summary(&v, boot))).collect()
}

/// Where the results came from, copied into the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub dataset: String,
    pub split: String,
    pub lang: Option<String>,
    pub protocol: String,
    pub model: Option<String>,
}

/// Aggregates per-question results into the summary.
pub fn summarize(info: &RunInfo, results: &[QuestionResult], boot: &Bootstrap) -> Summary {
    let all: Vec<&QuestionResult> = results.iter().collect();
    let of_type = |t: AnswerType| -> Vec<&QuestionResult> {
        results.iter().filter(|r| r.answer_type == t).collect()
    };
    Summary {
        dataset: info.dataset.clone(),
        split: info.split.clone(),
        lang: info.lang.clone(),
        protocol: info.protocol.clone(),
        model: info.model.clone(),
        n: results.len(),
        overall: accuracy_summary(&all, boot),
        closed: accuracy_summary(&of_type(AnswerType::Closed), boot),
        open: open_summary(&of_type(AnswerType::Open)),
        by_modality: breakdown(results, |r| r.modality.clone(), boot),
        by_body_system: breakdown(results, |r| r.body_system.clone(), boot),
        by_body_system_native: breakdown(results, |r| r.body_system_native.clone(), boot),
        by_question_type: breakdown(results, |r| r.question_type.clone(), boot),
        by_answer_type: breakdown(results, |r| Some(answer_type_label(r.answer_type).into()), boot),
        missing_predictions: results
            .iter()
            .filter(|r| r.outcome.as_deref() == Some(MISSING_OUTCOME))
            .count(),
        bootstrap: *boot,
    }
}

/// Hand-built results for unit tests of the modules that consume them.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A closed question about a chest X-ray, answered "yes" and judged `correct`.
    pub(crate) fn result(id: &str, correct: bool) -> QuestionResult {
        super::tests::result(id, AnswerType::Closed, correct, "X-Ray")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn result(id: &str, t: AnswerType, correct: bool, modality: &str) -> QuestionResult {
        QuestionResult {
            id: id.into(),
            question: format!("q{id}"),
            images: vec![],
            gold: "yes".into(),
            prediction: "yes".into(),
            gold_normalized: "yes".into(),
            prediction_normalized: "yes".into(),
            answer_type: t,
            question_type: Some("PRES".into()),
            modality: Some(modality.into()),
            body_system: None,
            body_system_native: Some("CHEST".into()),
            correct,
            score: if correct { 1.0 } else { 0.0 },
            outcome: None,
            open: (t == AnswerType::Open).then_some(OpenMetrics {
                exact_match: if correct { 1.0 } else { 0.0 },
                precision: 0.5,
                recall: if correct { 1.0 } else { 0.25 },
                f1: 0.4,
                bleu1: 0.3,
            }),
        }
    }

    #[test]
    fn splitmix64_matches_reference_sequence() {
        // Reference outputs for seed 1234567 (Rosetta Code, "Pseudo-random numbers/Splitmix64",
        // matching Vigna's splitmix64.c).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn quantile_is_numpy_linear() {
        // np.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) == [1.075, 2.5, 3.925]
        let s = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile_sorted(&s, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.975) - 3.925).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[7.0], 0.975), 7.0);
    }

    #[test]
    fn quantile_matches_numpy_reference() {
        // np.percentile from tools/eval_reference/make_reference.py (numpy 2.1.3).
        let r: serde_json::Value =
            serde_json::from_str(include_str!("../../../tools/eval_reference/stats_reference.json")).unwrap();
        let cases = r["percentile_linear"].as_array().unwrap();
        assert_eq!(cases.len(), 5);
        for c in cases {
            let n = c["n"].as_u64().unwrap() as usize;
            let mut x: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
            x.sort_by(f64::total_cmp);
            for (q, key) in [(0.025, "q2_5"), (0.5, "q50"), (0.975, "q97_5")] {
                let want = c[key].as_f64().unwrap();
                assert!((quantile_sorted(&x, q) - want).abs() < 1e-12, "n={n} {key}");
            }
        }
    }

    #[test]
    fn bootstrap_is_seeded_and_deterministic() {
        let values: Vec<f64> = (0..200).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
        let b = Bootstrap::default();
        let first = b.ci95(&values).unwrap();
        assert_eq!(first, b.ci95(&values).unwrap());
        let other = Bootstrap { seed: 7, ..b }.ci95(&values).unwrap();
        assert_ne!(first, other, "a different seed draws different resamples");
        // The interval brackets the point estimate and is about ±1.96·sqrt(p(1-p)/n) wide
        // (normal approximation: p = 0.665, n = 200 → half-width 0.0654).
        let p = 133.0 / 200.0;
        assert!(first[0] < p && p < first[1], "{first:?}");
        let half = (first[1] - first[0]) / 2.0;
        assert!((half - 0.0654).abs() < 0.01, "half-width {half}");
    }

    #[test]
    fn bootstrap_degenerate_cases() {
        let b = Bootstrap::default();
        assert_eq!(b.ci95(&[]), None);
        assert_eq!(b.ci95(&[1.0; 10]), Some([1.0, 1.0]));
        assert_eq!(b.ci95(&[0.0]), Some([0.0, 0.0]));
        assert_eq!(b.paired_diff_ci95(&[1.0], &[1.0, 0.0]), None);
        assert_eq!(b.paired_diff_ci95(&[1.0, 0.0], &[1.0, 0.0]), Some([0.0, 0.0]));
    }

    #[test]
    fn summary_counts_and_breakdowns() {
        let results = vec![
            result("1", AnswerType::Closed, true, "X-Ray"),
            result("2", AnswerType::Closed, false, "X-Ray"),
            result("3", AnswerType::Open, true, "CT"),
            result("4", AnswerType::Open, false, "CT"),
            result("5", AnswerType::Open, false, ""),
        ];
        let info = RunInfo {
            dataset: "vqa-rad".into(),
            split: "test".into(),
            lang: None,
            protocol: "medvqa".into(),
            model: None,
        };
        let s = summarize(&info, &results, &Bootstrap::default());
        assert_eq!(s.n, 5);
        assert_eq!(s.overall.n, 5);
        assert_eq!(s.overall.accuracy, Some(0.4));
        assert_eq!(s.closed.n, 2);
        assert_eq!(s.closed.accuracy, Some(0.5));
        assert_eq!(s.open.n, 3);
        assert_eq!(s.open.accuracy, Some(1.0 / 3.0));
        assert_eq!(s.open.recall, Some((1.0 + 0.25 + 0.25) / 3.0));
        assert_eq!(s.open.precision, Some(0.5));
        let xray = &s.by_modality["X-Ray"];
        assert_eq!((xray.n, xray.accuracy, xray.closed_accuracy, xray.open_recall), (2, Some(0.5), Some(0.5), None));
        let ct = &s.by_modality["CT"];
        assert_eq!((ct.n, ct.closed_accuracy, ct.open_recall), (2, None, Some(0.625)));
        assert_eq!(s.by_modality[UNKNOWN_LABEL].n, 1, "an empty label counts as unknown");
        assert_eq!(s.by_body_system[UNKNOWN_LABEL].n, 5);
        assert_eq!(s.by_body_system_native["CHEST"].n, 5);
        assert_eq!(s.by_answer_type["open"].n, 3);
        assert_eq!(s.by_question_type["PRES"].accuracy, Some(0.4));
        let ci = s.overall.ci95.unwrap();
        assert!(ci[0] <= 0.4 && 0.4 <= ci[1]);
    }

    #[test]
    fn summary_json_has_every_key_of_the_issue() {
        let results = vec![result("1", AnswerType::Closed, true, "CT")];
        let info = RunInfo { dataset: "d".into(), split: "test".into(), lang: None, protocol: "p".into(), model: None };
        let v = serde_json::to_value(summarize(&info, &results, &Bootstrap::default())).unwrap();
        for key in ["dataset", "split", "protocol", "n", "overall", "closed", "open", "by_modality",
            "by_body_system", "by_question_type", "by_answer_type"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["n", "accuracy", "ci95"] {
            assert!(v["overall"].get(key).is_some() && v["closed"].get(key).is_some(), "{key}");
        }
        for key in ["n", "accuracy", "exact_match", "precision", "recall", "f1", "bleu1"] {
            assert!(v["open"].get(key).is_some(), "open.{key}");
        }
        for key in ["n", "accuracy", "ci95", "closed_accuracy", "open_recall"] {
            assert!(v["by_modality"]["CT"].get(key).is_some(), "group {key}");
        }
        assert!(v["open"]["accuracy"].is_null(), "no open questions → null, not 0");
    }
}
