//! Per-question results and the aggregated `summary.json`.
//!
//! A protocol judges every (question, prediction) pair into a [`QuestionResult`]; [`summarize`]
//! turns those into a [`Summary`]: overall, closed and open accuracy, the open-answer token
//! metrics, and the same accuracy broken down by modality, body system, question type and answer
//! type. Every number comes from the protocol's own [`Protocol::aggregate`] over the questions
//! concerned, so where a toolkit defines closed/open or accuracy differently the summary follows
//! it. Every accuracy carries a 95 % interval from a seeded percentile bootstrap
//! ([`Bootstrap`]) of that same aggregate, so two runs on the same results print the same
//! interval.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::types::{AnswerType, Judgement, OpenMetrics, Protocol, ProtocolAggregate, Question};

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
    /// The question's further label columns (dataset name, JSONL extra columns…), for custom
    /// breakdowns.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
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
                outcome: if missing {
                    Some(MISSING_OUTCOME.to_string())
                } else {
                    j.outcome
                },
                open: j.open,
                extra: q.extra.clone(),
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
        Self {
            resamples: 2000,
            seed: 0x6D65_6476_7161,
        }
    }
}

impl Bootstrap {
    /// 95 % percentile interval `[lo, hi]` of the mean of `values`; `None` when empty.
    /// Each resample draws `values.len()` items with replacement.
    pub fn ci95(&self, values: &[f64]) -> Option<[f64; 2]> {
        self.ci95_of(values.len(), |idx| {
            Some(idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64)
        })
    }

    /// 95 % percentile interval of any statistic of `n` items: each resample draws `n` indices
    /// in `0..n` with replacement and `stat` computes the statistic on them. A resample whose
    /// statistic is undefined (`None`, e.g. no closed question drawn) is left out. `None` when
    /// `n` is 0 or no resample is defined.
    pub fn ci95_of(
        &self,
        n: usize,
        mut stat: impl FnMut(&[usize]) -> Option<f64>,
    ) -> Option<[f64; 2]> {
        if n == 0 {
            return None;
        }
        let mut rng = SplitMix64::new(self.seed);
        let mut idx = vec![0usize; n];
        let mut stats = Vec::with_capacity(self.resamples.max(1));
        for _ in 0..self.resamples.max(1) {
            for slot in idx.iter_mut() {
                *slot = rng.index(n);
            }
            stats.extend(stat(&idx));
        }
        if stats.is_empty() {
            return None;
        }
        stats.sort_by(f64::total_cmp);
        Some([
            quantile_sorted(&stats, 0.025),
            quantile_sorted(&stats, 0.975),
        ])
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

/// Accuracy of a set of questions with its bootstrap interval (of the protocol's aggregate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracySummary {
    pub n: usize,
    /// Fraction correct in [0, 1]; null when `n` is 0.
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// Open-answer metrics as the protocol aggregates them (by default: accuracy and the mean of
/// each token metric over the open questions; the protocol decides which questions are open).
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
    /// Accuracy on the label's closed questions (as the protocol partitions them); null when it
    /// has none.
    pub closed_accuracy: Option<f64>,
    /// Open-answer recall on the label's open questions, as the protocol aggregates it; null
    /// when it has none.
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
    /// Toolkit-specific numbers of the protocol under the toolkit's own names (e.g. LLaVA-Med's
    /// candidate-matching open accuracy); empty for protocols that have none.
    #[serde(default)]
    pub protocol_extra: BTreeMap<String, f64>,
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

/// The protocol's view of one judged question, rebuilt from its result.
fn judgement_of(r: &QuestionResult) -> Judgement {
    Judgement {
        correct: r.correct,
        score: r.score,
        gold_normalized: r.gold_normalized.clone(),
        prediction_normalized: r.prediction_normalized.clone(),
        outcome: r.outcome.clone(),
        open: r.open,
    }
}

/// One question's share of an aggregate, read from the protocol's aggregate of that question
/// alone: counted, correct, closed, closed and correct (each 0 or 1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Share {
    n: f64,
    correct: f64,
    closed: f64,
    closed_correct: f64,
}

impl Share {
    fn of(a: &ProtocolAggregate) -> Share {
        Share {
            n: a.n as f64,
            correct: a.overall * a.n as f64,
            closed: a.closed_n as f64,
            closed_correct: a.closed_accuracy * a.closed_n as f64,
        }
    }

    fn add(&mut self, o: &Share) {
        self.n += o.n;
        self.correct += o.correct;
        self.closed += o.closed;
        self.closed_correct += o.closed_correct;
    }
}

/// The accuracies that get an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stat {
    Overall,
    Closed,
}

impl Stat {
    fn of_aggregate(self, a: &ProtocolAggregate) -> Option<f64> {
        match self {
            Stat::Overall => (a.n > 0).then_some(a.overall),
            Stat::Closed => (a.closed_n > 0).then_some(a.closed_accuracy),
        }
    }

    fn of_shares(self, s: &Share) -> Option<f64> {
        match self {
            Stat::Overall => (s.n > 0.0).then(|| s.correct / s.n),
            Stat::Closed => (s.closed > 0.0).then(|| s.closed_correct / s.closed),
        }
    }
}

/// Intervals by (question set, statistic).
type IntervalCache = RefCell<HashMap<(Vec<usize>, Stat), Option<[f64; 2]>>>;

/// Aggregates through the protocol: every number of the summary is the protocol's own.
struct Aggregator<'a> {
    protocol: &'a dyn Protocol,
    items: Vec<(&'a Question, Judgement)>,
    /// Each question's share, for the fast bootstrap of per-question-mean aggregates.
    shares: Vec<Share>,
    boot: Bootstrap,
    /// Intervals already computed: a breakdown with a single label (every question "unknown")
    /// is the whole set again, and the interval depends only on the set and the statistic.
    done: IntervalCache,
}

impl<'a> Aggregator<'a> {
    fn new(
        protocol: &'a dyn Protocol,
        items: Vec<(&'a Question, Judgement)>,
        boot: Bootstrap,
    ) -> Self {
        let shares = items
            .iter()
            .map(|(q, j)| Share::of(&protocol.aggregate(&[(q, j)])))
            .collect();
        Aggregator {
            protocol,
            items,
            shares,
            boot,
            done: RefCell::default(),
        }
    }

    fn aggregate(&self, members: impl Iterator<Item = usize>) -> ProtocolAggregate {
        let items: Vec<(&Question, &Judgement)> = members
            .map(|i| (self.items[i].0, &self.items[i].1))
            .collect();
        self.protocol.aggregate(&items)
    }

    /// Bootstrap interval of `stat` over the set `members` (indices into `items`), whose
    /// aggregate is `whole`.
    ///
    /// Every toolkit we reproduce aggregates closed and overall accuracy as per-question means
    /// over a per-question partition; then a resample's statistic is a ratio of sums of the
    /// questions' shares, computed without calling the protocol (OmniMedVQA's 127k questions
    /// would otherwise take minutes). That shortcut is taken only when the shares reproduce
    /// the protocol's own aggregate of `members` exactly; otherwise every resample is
    /// aggregated by the protocol itself. Both paths draw the same indices.
    fn ci95(&self, members: &[usize], whole: &ProtocolAggregate, stat: Stat) -> Option<[f64; 2]> {
        let key = (members.to_vec(), stat);
        if let Some(&ci) = self.done.borrow().get(&key) {
            return ci;
        }
        let ci = self.ci95_uncached(members, whole, stat);
        self.done.borrow_mut().insert(key, ci);
        ci
    }

    fn ci95_uncached(
        &self,
        members: &[usize],
        whole: &ProtocolAggregate,
        stat: Stat,
    ) -> Option<[f64; 2]> {
        let mut total = Share::default();
        for &i in members {
            total.add(&self.shares[i]);
        }
        let same = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12,
            (None, None) => true,
            _ => false,
        };
        let decomposes = total.n == whole.n as f64
            && total.closed == whole.closed_n as f64
            && [Stat::Overall, Stat::Closed]
                .iter()
                .all(|s| same(s.of_shares(&total), s.of_aggregate(whole)));
        if decomposes {
            self.boot.ci95_of(members.len(), |draw| {
                let mut t = Share::default();
                for &k in draw {
                    t.add(&self.shares[members[k]]);
                }
                stat.of_shares(&t)
            })
        } else {
            self.boot.ci95_of(members.len(), |draw| {
                stat.of_aggregate(&self.aggregate(draw.iter().map(|&k| members[k])))
            })
        }
    }

    fn group(&self, members: &[usize]) -> GroupSummary {
        let a = self.aggregate(members.iter().copied());
        GroupSummary {
            n: a.n,
            accuracy: Stat::Overall.of_aggregate(&a),
            ci95: self.ci95(members, &a, Stat::Overall),
            closed_accuracy: Stat::Closed.of_aggregate(&a),
            open_recall: (a.open_n > 0).then_some(a.open.recall),
        }
    }

    /// Groups by a label (missing labels under [`UNKNOWN_LABEL`]) and summarises each.
    fn breakdown(
        &self,
        results: &[QuestionResult],
        label: impl Fn(&QuestionResult) -> Option<String>,
    ) -> BTreeMap<String, GroupSummary> {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in results.iter().enumerate() {
            let key = label(r)
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| UNKNOWN_LABEL.into());
            groups.entry(key).or_default().push(i);
        }
        groups
            .into_iter()
            .map(|(k, members)| (k, self.group(&members)))
            .collect()
    }
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

/// Aggregates per-question results into the summary. `results[i]` is the judgement of
/// `questions[i]` (as [`judge_all`] returns them); `protocol` must be the one that judged them.
///
/// # Panics
/// If `questions` and `results` differ in length or order (a programming error, not input).
pub fn summarize(
    info: &RunInfo,
    questions: &[Question],
    results: &[QuestionResult],
    protocol: &dyn Protocol,
    boot: &Bootstrap,
) -> Summary {
    assert!(
        questions.len() == results.len()
            && questions.iter().zip(results).all(|(q, r)| q.id == r.id),
        "summarize: results must be the judgements of questions, in order"
    );
    let agg = Aggregator::new(
        protocol,
        questions
            .iter()
            .zip(results)
            .map(|(q, r)| (q, judgement_of(r)))
            .collect(),
        *boot,
    );
    let all: Vec<usize> = (0..results.len()).collect();
    let whole = agg.aggregate(all.iter().copied());
    let (closed_n, open_n) = (whole.closed_n, whole.open_n);
    Summary {
        dataset: info.dataset.clone(),
        split: info.split.clone(),
        lang: info.lang.clone(),
        protocol: info.protocol.clone(),
        model: info.model.clone(),
        n: results.len(),
        overall: AccuracySummary {
            n: whole.n,
            accuracy: Stat::Overall.of_aggregate(&whole),
            ci95: agg.ci95(&all, &whole, Stat::Overall),
        },
        closed: AccuracySummary {
            n: closed_n,
            accuracy: Stat::Closed.of_aggregate(&whole),
            ci95: if closed_n > 0 {
                agg.ci95(&all, &whole, Stat::Closed)
            } else {
                None
            },
        },
        open: {
            let some = |v: f64| (open_n > 0).then_some(v);
            OpenSummary {
                n: open_n,
                accuracy: some(whole.open_accuracy),
                exact_match: some(whole.open.exact_match),
                precision: some(whole.open.precision),
                recall: some(whole.open.recall),
                f1: some(whole.open.f1),
                bleu1: some(whole.open.bleu1),
            }
        },
        by_modality: agg.breakdown(results, |r| r.modality.clone()),
        by_body_system: agg.breakdown(results, |r| r.body_system.clone()),
        by_body_system_native: agg.breakdown(results, |r| r.body_system_native.clone()),
        by_question_type: agg.breakdown(results, |r| r.question_type.clone()),
        by_answer_type: agg.breakdown(results, |r| Some(answer_type_label(r.answer_type).into())),
        protocol_extra: whole.extra,
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

    /// The question a hand-built result belongs to.
    pub(crate) fn question_of(r: &QuestionResult) -> Question {
        Question {
            id: r.id.clone(),
            images: r.images.clone(),
            question: r.question.clone(),
            answer: r.gold.clone(),
            answer_type: r.answer_type,
            options: vec![],
            question_type: r.question_type.clone(),
            modality: r.modality.clone(),
            body_system_native: r.body_system_native.clone(),
            body_system: r.body_system.clone(),
            split: None,
            lang: None,
            extra: r.extra.clone(),
        }
    }

    /// A protocol with the default aggregate: case-folded exact match.
    pub(crate) struct Exact;

    impl Protocol for Exact {
        fn name(&self) -> &'static str {
            "exact"
        }
        fn judge(&self, q: &Question, prediction: &str) -> Judgement {
            let (g, p) = (
                q.answer.trim().to_lowercase(),
                prediction.trim().to_lowercase(),
            );
            Judgement {
                correct: g == p,
                score: f64::from(u8::from(g == p)),
                gold_normalized: g,
                prediction_normalized: p,
                outcome: None,
                open: None,
            }
        }
    }

    /// Summarises hand-built results with [`Exact`]'s default aggregate.
    pub(crate) fn summarize_results(info: &RunInfo, results: &[QuestionResult]) -> Summary {
        let questions: Vec<Question> = results.iter().map(question_of).collect();
        summarize(info, &questions, results, &Exact, &Bootstrap::default())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::tests_support::{question_of, summarize_results, Exact};
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
            extra: BTreeMap::new(),
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
        let r: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tools/eval_reference/stats_reference.json"
        ))
        .unwrap();
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
        let values: Vec<f64> = (0..200)
            .map(|i| if i % 3 == 0 { 0.0 } else { 1.0 })
            .collect();
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
        assert_eq!(
            b.paired_diff_ci95(&[1.0, 0.0], &[1.0, 0.0]),
            Some([0.0, 0.0])
        );
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
        let s = summarize_results(&info, &results);
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
        assert_eq!(
            (
                xray.n,
                xray.accuracy,
                xray.closed_accuracy,
                xray.open_recall
            ),
            (2, Some(0.5), Some(0.5), None)
        );
        let ct = &s.by_modality["CT"];
        assert_eq!(
            (ct.n, ct.closed_accuracy, ct.open_recall),
            (2, None, Some(0.625))
        );
        assert_eq!(
            s.by_modality[UNKNOWN_LABEL].n, 1,
            "an empty label counts as unknown"
        );
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
        let info = RunInfo {
            dataset: "d".into(),
            split: "test".into(),
            lang: None,
            protocol: "p".into(),
            model: None,
        };
        let v = serde_json::to_value(summarize_results(&info, &results)).unwrap();
        for key in [
            "dataset",
            "split",
            "protocol",
            "n",
            "overall",
            "closed",
            "open",
            "by_modality",
            "by_body_system",
            "by_question_type",
            "by_answer_type",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["n", "accuracy", "ci95"] {
            assert!(
                v["overall"].get(key).is_some() && v["closed"].get(key).is_some(),
                "{key}"
            );
        }
        for key in [
            "n",
            "accuracy",
            "exact_match",
            "precision",
            "recall",
            "f1",
            "bleu1",
        ] {
            assert!(v["open"].get(key).is_some(), "open.{key}");
        }
        for key in ["n", "accuracy", "ci95", "closed_accuracy", "open_recall"] {
            assert!(v["by_modality"]["CT"].get(key).is_some(), "group {key}");
        }
        assert!(
            v["open"]["accuracy"].is_null(),
            "no open questions → null, not 0"
        );
    }

    /// Counts a question as closed when its gold answer is yes/no (MedEvalKit's rule), whatever
    /// the dataset's answer type says.
    struct GoldDecidesClosed;

    impl Protocol for GoldDecidesClosed {
        fn name(&self) -> &'static str {
            "gold-decides"
        }
        fn judge(&self, q: &Question, prediction: &str) -> Judgement {
            Exact.judge(q, prediction)
        }
        fn aggregate(&self, items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
            let mut a = ProtocolAggregate::partitioned(items, |q, _| {
                !matches!(q.answer.as_str(), "yes" | "no")
            });
            a.extra.insert("marker".into(), 7.0);
            a
        }
    }

    #[test]
    fn the_protocols_aggregate_decides_closed_and_open() {
        let mut results = vec![
            result("1", AnswerType::Closed, true, "CT"),
            result("2", AnswerType::Open, false, "CT"),
            result("3", AnswerType::Open, true, "CT"),
        ];
        results[2].gold = "left lung".into();
        let questions: Vec<Question> = results.iter().map(question_of).collect();
        let info = RunInfo {
            dataset: "d".into(),
            split: "test".into(),
            lang: None,
            protocol: "gold-decides".into(),
            model: None,
        };
        let s = summarize(
            &info,
            &questions,
            &results,
            &GoldDecidesClosed,
            &Bootstrap::default(),
        );
        // Gold "yes" makes question 2 closed for this protocol although the dataset says open.
        assert_eq!((s.closed.n, s.closed.accuracy), (2, Some(0.5)));
        assert_eq!((s.open.n, s.open.accuracy), (1, Some(1.0)));
        assert_eq!(s.by_modality["CT"].closed_accuracy, Some(0.5));
        assert_eq!(s.protocol_extra["marker"], 7.0);
    }

    #[test]
    fn bootstrap_of_the_default_aggregate_equals_bootstrap_of_the_mean() {
        // Same seed, same draws: resampling the aggregate or the 0/1 vector must agree exactly.
        let results: Vec<QuestionResult> = (0..57)
            .map(|i| result(&i.to_string(), AnswerType::Closed, i % 4 != 0, "CT"))
            .collect();
        let info = RunInfo {
            dataset: "d".into(),
            split: "test".into(),
            lang: None,
            protocol: "exact".into(),
            model: None,
        };
        let s = summarize_results(&info, &results);
        let flags: Vec<f64> = results
            .iter()
            .map(|r| f64::from(u8::from(r.correct)))
            .collect();
        assert_eq!(s.overall.ci95, Bootstrap::default().ci95(&flags));
        assert_eq!(s.closed.ci95, s.overall.ci95);
    }

    /// Overall accuracy = share of *labels* (modalities) whose questions are all correct: not a
    /// per-question mean, so the shares cannot reproduce it and the protocol must be called.
    struct AllOfModality;

    impl Protocol for AllOfModality {
        fn name(&self) -> &'static str {
            "all-of-modality"
        }
        fn judge(&self, q: &Question, prediction: &str) -> Judgement {
            Exact.judge(q, prediction)
        }
        fn aggregate(&self, items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
            let mut a = ProtocolAggregate::by_answer_type(items);
            let mut by: BTreeMap<&str, bool> = BTreeMap::new();
            for (q, j) in items {
                let e = by
                    .entry(q.modality.as_deref().unwrap_or(""))
                    .or_insert(true);
                *e &= j.correct;
            }
            a.overall = by.values().filter(|&&v| v).count() as f64 / by.len().max(1) as f64;
            a
        }
    }

    #[test]
    fn a_non_mean_aggregate_is_bootstrapped_through_the_protocol() {
        let results: Vec<QuestionResult> = (0..40)
            .map(|i| {
                result(
                    &i.to_string(),
                    AnswerType::Closed,
                    i % 5 != 0,
                    ["CT", "MRI", "US", "PET"][i % 4],
                )
            })
            .collect();
        let questions: Vec<Question> = results.iter().map(question_of).collect();
        let info = RunInfo {
            dataset: "d".into(),
            split: "test".into(),
            lang: None,
            protocol: "x".into(),
            model: None,
        };
        let boot = Bootstrap {
            resamples: 300,
            seed: 3,
        };
        let s = summarize(&info, &questions, &results, &AllOfModality, &boot);
        // i % 5 == 0 hits every residue mod 4 within 0..40: no modality is all correct.
        assert_eq!(s.overall.accuracy, Some(0.0));
        // Computed the slow way by hand: the protocol's aggregate of every resample.
        let items: Vec<(&Question, Judgement)> = questions
            .iter()
            .zip(&results)
            .map(|(q, r)| (q, judgement_of(r)))
            .collect();
        let want = boot.ci95_of(40, |draw| {
            let v: Vec<(&Question, &Judgement)> =
                draw.iter().map(|&k| (items[k].0, &items[k].1)).collect();
            Some(AllOfModality.aggregate(&v).overall)
        });
        assert_eq!(s.overall.ci95, want);
        // Its closed accuracy is still a per-question mean: the fast path must give the same
        // interval as resampling through the protocol.
        let slow_closed = boot.ci95_of(40, |draw| {
            let v: Vec<(&Question, &Judgement)> =
                draw.iter().map(|&k| (items[k].0, &items[k].1)).collect();
            let a = AllOfModality.aggregate(&v);
            (a.closed_n > 0).then_some(a.closed_accuracy)
        });
        assert!(slow_closed.is_some());
        let Some([lo, hi]) = s.closed.ci95 else {
            panic!("closed ci")
        };
        let [slo, shi] = slow_closed.unwrap();
        assert!((lo - slo).abs() < 1e-12 && (hi - shi).abs() < 1e-12);
    }
}
