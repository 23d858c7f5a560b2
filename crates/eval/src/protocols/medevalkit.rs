//! `medevalkit`: MedEvalKit's rule-based VQA scoring (alibaba-damo-academy/MedEvalKit,
//! `utils/utils.py` and `utils/{VQA_RAD,SLAKE}/*.py` `cal_metrics`, commit 9b12e3b), without
//! its optional LLM judge.
//!
//! Two flavours, chosen by the question's dataset (`extra["dataset"]`):
//! - **SLAKE**: open/closed from the dataset's answer type; a closed gold that is exactly
//!   "yes" or "no" (case-sensitive — SLAKE writes "Yes"/"No", so this never fires on SLAKE)
//!   goes to the yes/no judge, every other closed answer to exact match after removing
//!   newlines and periods. The prediction is not lower-cased or stripped first.
//! - **every other dataset** (VQA-RAD's): gold and prediction lower-cased and stripped; a
//!   question is closed when its gold is "yes"/"no", whatever the dataset's answer type.
//!
//! Rules shared by both:
//! - the prediction's last `\boxed{…}` or its `<answer>…</answer>` content is taken first;
//!   then (lower-cased) everything after the last of "**answer**:", "answer is", "answer:",
//!   "final answer", … (`parse_response`);
//! - yes/no judge: correct when exactly one of "yes", "no" occurs *as a substring* and the
//!   gold occurs as a substring ("abnormal" contains "no"; "yes and no" is wrong);
//! - open: `em` = string equality after parsing (the headline, `correct`); BLEU-1 over
//!   tokens made by `lower().replace(".", " .").split(" ")` (empty tokens count);
//!   token-set P/R/F1 — **returned in the wrong order**: the toolkit's "precision" is the F1,
//!   its "recall" the precision and its "f1" the recall. `OpenMetrics` carries the toolkit's
//!   labels, so `precision` here is the true F1, as the toolkit reports it;
//! - an open answer that is empty or made only of periods (ROUGE "Hypothesis is empty") or
//!   has no whitespace-separated token (`calculate_f1` returns a bare 0 that cannot be
//!   unpacked) makes the toolkit raise and abort the whole run: such a judgement has outcome
//!   `toolkit_error`, is wrong, and is left out of the aggregate (counted in
//!   `extra["toolkit_errors"]`);
//! - aggregate: accuracy = (closed right + open em) / total; the toolkit's open "acc" is
//!   divided by the total twice (`extra["open_acc_as_reported"]`). ROUGE is not reproduced.
//! - multiple choice (OmniMedVQA's `cal_metrics` and `judge_multi_choice`): choices are shown
//!   as "A. text", the gold becomes its letter; the `<answer>` content is taken; a lone letter
//!   (first paragraph, or the text before the first period of the last paragraph), the text
//!   before the first period and after the last colon, is compared with the gold letter or
//!   text; anything else is matched to the choice most similar to the whole answer by
//!   Python's `difflib.SequenceMatcher` ratio (first maximum, autojunk included). Multiple
//!   choice questions count as closed in the aggregate.

use std::collections::HashMap;

use super::normalize::{nltk_bleu1, py_split, py_strip};
use super::OUTCOME_TOOLKIT_ERROR;
use crate::datasets::DATASET_KEY;
use crate::types::{AnswerType, Judgement, OpenMetrics, Protocol, ProtocolAggregate, Question};

/// MedEvalKit's rule-based protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct MedEvalKit;

/// `parse_response` answer markers, in the toolkit's order.
const ANSWER_PATTERNS: [&str; 9] = [
    "**answer**:",
    "**answer**",
    "*answer*:",
    "**answer:**",
    "answer is",
    "answer:",
    "答案:",
    "final answer",
    "final answer is",
];

/// mathruler's `extract_boxed_content`: the content of the last `\boxed{…}` with balanced
/// braces, stripped; `None` (the toolkit's string "None") when there is none.
fn extract_boxed(text: &str) -> Option<String> {
    let start = text.rfind("\\boxed{")?;
    let content = &text[start + "\\boxed{".len()..];
    let mut depth = 0i32;
    for (i, c) in content.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == -1 {
            return Some(py_strip(&content[..i]).to_owned());
        }
    }
    None
}

/// `extract(text, "answer")`: the `<answer>` contents joined by spaces, or the text itself.
fn extract_answer_tag(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let (open, close) = ("<answer>", "</answer>");
    let mut found = String::new();
    let mut start = text.find(open);
    while let Some(s) = start {
        let from = s + open.len();
        match text[from..].find(close) {
            Some(e) => {
                found.push_str(&text[from..from + e]);
                found.push(' ');
                let next = from + e + close.len();
                start = text[next..].find(open).map(|i| i + next);
            }
            None => break,
        }
    }
    let found = py_strip(&found);
    if found.is_empty() {
        text.to_owned()
    } else {
        found.to_owned()
    }
}

/// The boxed / tagged extraction `cal_metrics` applies before judging.
fn pre_extract(response: &str) -> String {
    if let Some(b) = extract_boxed(response) {
        b
    } else if response.contains("<answer>") {
        extract_answer_tag(response)
    } else {
        response.to_owned()
    }
}

/// `parse_response`.
fn parse_response(response: &str) -> String {
    let mut r = response.to_lowercase();
    if r.contains("boxed") {
        r = extract_boxed(&r).unwrap_or_else(|| "None".to_owned());
    } else if r.contains("<answer>") {
        r = extract_answer_tag(&r);
    }
    for pattern in ANSWER_PATTERNS {
        if let Some(i) = r.rfind(pattern) {
            r = r[i + pattern.len()..].to_owned();
        }
    }
    r
}

fn judge_judgement(answer: &str, response: &str) -> bool {
    let answer = answer.to_lowercase();
    let r = parse_response(response).replace(['\n', '.'], "");
    (r.contains("yes") ^ r.contains("no")) && r.contains(&answer)
}

fn judge_close_end(answer: &str, response: &str) -> bool {
    parse_response(response).replace(['\n', '.'], "") == answer.to_lowercase()
}

/// `tokenize`: lower, " ." for ".", split on single spaces (empty tokens kept).
fn toolkit_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('.', " .")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// `judge_open_end_vqa`, or `None` where the toolkit raises.
fn judge_open(answer: &str, response: &str) -> Option<(bool, OpenMetrics)> {
    let answer = answer.to_lowercase();
    let r = parse_response(response);
    // rouge 1.0.1 splits on "." and drops empty pieces; nothing left raises.
    if r.split('.').all(str::is_empty) {
        return None;
    }
    let pred: std::collections::BTreeSet<&str> = py_split(&r).into_iter().collect();
    let gold: std::collections::BTreeSet<&str> = py_split(&answer).into_iter().collect();
    if pred.is_empty() || gold.is_empty() {
        return None;
    }
    let common = pred.intersection(&gold).count() as f64;
    let precision = common / pred.len() as f64;
    let recall = common / gold.len() as f64;
    let (f1, precision, recall) = if precision + recall == 0.0 {
        (0.0, 0.0, 0.0)
    } else {
        (
            2.0 * (precision * recall) / (precision + recall),
            precision,
            recall,
        )
    };
    let em = r == answer;
    Some((
        em,
        OpenMetrics {
            exact_match: if em { 1.0 } else { 0.0 },
            // The toolkit unpacks (f1, precision, recall) as (precision, recall, f1).
            precision: f1,
            recall: precision,
            f1: recall,
            bleu1: nltk_bleu1(&toolkit_tokens(&answer), &toolkit_tokens(&r)),
        },
    ))
}

/// Python `difflib.SequenceMatcher(None, a, b).ratio()` on characters: 2·M / (|a| + |b|)
/// with M the characters in matching blocks, found by recursive longest-match with the
/// "autojunk" rule (for |b| ≥ 200, characters of `b` occurring more than |b|/100 + 1 times
/// cannot start a match).
fn sequence_matcher_ratio(a: &[char], b: &[char]) -> f64 {
    let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
    for (j, &c) in b.iter().enumerate() {
        b2j.entry(c).or_default().push(j);
    }
    if b.len() >= 200 {
        let ntest = b.len() / 100 + 1;
        b2j.retain(|_, idxs| idxs.len() <= ntest);
    }
    let longest = |alo: usize, ahi: usize, blo: usize, bhi: usize| {
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        for (i, ai) in a.iter().enumerate().take(ahi).skip(alo) {
            let mut new_j2len = HashMap::new();
            if let Some(js) = b2j.get(ai) {
                for &j in js {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let k = j
                        .checked_sub(1)
                        .and_then(|p| j2len.get(&p))
                        .copied()
                        .unwrap_or(0)
                        + 1;
                    new_j2len.insert(j, k);
                    if k > bestsize {
                        (besti, bestj, bestsize) = (i + 1 - k, j + 1 - k, k);
                    }
                }
            }
            j2len = new_j2len;
        }
        // No junk function: every character may extend the match on both sides.
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            (besti, bestj, bestsize) = (besti - 1, bestj - 1, bestsize + 1);
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && a[besti + bestsize] == b[bestj + bestsize]
        {
            bestsize += 1;
        }
        (besti, bestj, bestsize)
    };
    let mut matches = 0usize;
    let mut queue = vec![(0, a.len(), 0, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest(alo, ahi, blo, bhi);
        if k > 0 {
            matches += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    let length = a.len() + b.len();
    if length == 0 {
        1.0
    } else {
        2.0 * matches as f64 / length as f64
    }
}

/// `judge_multi_choice(choices, answer, response)`.
fn judge_multi_choice(choices: &[String], answer: &str, response: &str) -> bool {
    let letters: Vec<String> = (0..choices.len())
        .map(|i| char::from(b'a' + (i as u8)).to_string())
        .collect();
    let mut response = response.to_lowercase();
    let first = response.split("\n\n").next().unwrap_or("").to_owned();
    let last_head = response
        .split("\n\n")
        .last()
        .unwrap_or("")
        .split('.')
        .next()
        .unwrap_or("")
        .to_owned();
    if letters.contains(&first) {
        response = first;
    } else if letters.contains(&last_head) {
        response = last_head;
    }
    let response = parse_response(&response);
    let choices: Vec<String> = choices.iter().map(|c| c.to_lowercase()).collect();
    let response = py_strip(&response).to_lowercase().replace('\n', "");
    let split = response.split('.').next().unwrap_or("");
    let split = split.split(':').next_back().unwrap_or("").to_owned();
    let answer = py_strip(answer).to_lowercase();
    let letter_index = |l: &str| {
        l.chars()
            .next()
            .map(|c| (c as usize).wrapping_sub('a' as usize))
    };
    if split == answer {
        true
    } else if letters.contains(&split) {
        letter_index(&split)
            .and_then(|i| choices.get(i))
            .is_some_and(|c| *c == answer)
    } else if choices.contains(&split) {
        letters.contains(&answer)
            && letter_index(&answer)
                .and_then(|i| choices.get(i))
                .is_some_and(|c| *c == split)
    } else {
        let target: Vec<char> = response.chars().collect();
        let mut best = (0usize, 0.0f64);
        for (i, c) in choices.iter().enumerate() {
            let r = sequence_matcher_ratio(&c.chars().collect::<Vec<_>>(), &target);
            if r > best.1 {
                best = (i, r);
            }
        }
        letters.get(best.0).is_some_and(|l| *l == answer)
            || choices.get(best.0).is_some_and(|c| *c == answer)
    }
}

/// OmniMedVQA's `construct_messages` + `cal_metrics` for one multiple-choice question.
fn judge_multiple_choice_question(question: &Question, prediction: &str) -> Judgement {
    let mut answer = question.answer.clone();
    let mut choices = Vec::with_capacity(question.options.len());
    for (i, option) in question.options.iter().enumerate() {
        let letter = char::from(b'A' + (i as u8));
        if *option == question.answer {
            answer = letter.to_string();
        }
        choices.push(format!("{letter}. {option}"));
    }
    let response = extract_answer_tag(prediction);
    let correct = judge_multi_choice(&choices, &answer, &response);
    Judgement {
        correct,
        score: if correct { 1.0 } else { 0.0 },
        gold_normalized: answer.to_lowercase(),
        prediction_normalized: parse_response(&response),
        outcome: None,
        open: None,
    }
}

fn is_slake(question: &Question) -> bool {
    question.extra.get(DATASET_KEY).map(String::as_str) == Some("slake")
}

/// Whether the toolkit scores this question as open.
fn toolkit_open(question: &Question) -> bool {
    if question.answer_type == AnswerType::MultipleChoice {
        false
    } else if is_slake(question) {
        question.answer_type == AnswerType::Open
    } else {
        let a = py_strip(&question.answer.to_lowercase()).to_owned();
        a != "yes" && a != "no"
    }
}

impl Protocol for MedEvalKit {
    fn name(&self) -> &'static str {
        "medevalkit"
    }

    fn judge(&self, question: &Question, prediction: &str) -> Judgement {
        if question.answer_type == AnswerType::MultipleChoice {
            return judge_multiple_choice_question(question, prediction);
        }
        let mut response = pre_extract(prediction);
        let mut answer = question.answer.clone();
        if !is_slake(question) {
            answer = py_strip(&answer.to_lowercase()).to_owned();
            response = py_strip(&response.to_lowercase()).to_owned();
        }
        let gold_normalized = answer.to_lowercase();
        let prediction_normalized = parse_response(&response);
        let closed = |correct: bool| Judgement {
            correct,
            score: if correct { 1.0 } else { 0.0 },
            gold_normalized: gold_normalized.clone(),
            prediction_normalized: prediction_normalized.clone(),
            outcome: None,
            open: None,
        };
        if !toolkit_open(question) {
            let yes_no = if is_slake(question) {
                answer == "yes" || answer == "no"
            } else {
                true
            };
            return closed(if yes_no {
                judge_judgement(&answer, &response)
            } else {
                judge_close_end(&answer, &response)
            });
        }
        match judge_open(&answer, &response) {
            Some((em, metrics)) => Judgement {
                correct: em,
                score: if em { 1.0 } else { 0.0 },
                gold_normalized,
                prediction_normalized,
                outcome: None,
                open: Some(metrics),
            },
            None => Judgement {
                outcome: Some(OUTCOME_TOOLKIT_ERROR.to_owned()),
                ..closed(false)
            },
        }
    }

    fn aggregate(&self, items: &[(&Question, &Judgement)]) -> ProtocolAggregate {
        let scored: Vec<(&Question, &Judgement)> = items
            .iter()
            .filter(|(_, j)| j.outcome.as_deref() != Some(OUTCOME_TOOLKIT_ERROR))
            .copied()
            .collect();
        let mut agg = ProtocolAggregate::partitioned(&scored, |q, _| toolkit_open(q));
        let errors = items.len() - scored.len();
        agg.extra.insert("toolkit_errors".to_owned(), errors as f64);
        let reported = if agg.open_n == 0 {
            0.0
        } else {
            agg.open_accuracy / agg.open_n as f64
        };
        agg.extra
            .insert("open_acc_as_reported".to_owned(), reported);
        agg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_parsing() {
        assert_eq!(
            extract_boxed("x \\boxed{a{b}c} y").as_deref(),
            Some("a{b}c")
        );
        assert_eq!(extract_boxed("\\boxed{open"), None);
        assert_eq!(extract_answer_tag("<answer> yes </answer>"), "yes");
        assert_eq!(extract_answer_tag("no tags"), "no tags");
        assert_eq!(parse_response("The answer is: Lung"), ": lung");
        assert_eq!(parse_response("Answer: yes"), " yes");
    }

    #[test]
    fn difflib_ratio() {
        let r = |a: &str, b: &str| {
            sequence_matcher_ratio(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        // Values from Python 3.11 difflib.SequenceMatcher(None, a, b).ratio().
        assert_eq!(r("abcd", "bcde"), 0.75);
        assert_eq!(r("", ""), 1.0);
        assert_eq!(r("a. ct", "the answer is ct"), 2.0 * 4.0 / 21.0);
    }

    #[test]
    fn multi_choice_paths() {
        let choices: Vec<String> = ["A. CT", "B. MR"].iter().map(|s| s.to_string()).collect();
        assert!(judge_multi_choice(&choices, "B", "B"));
        assert!(judge_multi_choice(&choices, "B", "b. MR is right"));
        assert!(judge_multi_choice(&choices, "B", "Answer: B"));
        assert!(!judge_multi_choice(&choices, "B", "A"));
        // No letter: the most similar choice text decides.
        assert!(judge_multi_choice(&choices, "B", "it is an mr image"));
    }

    #[test]
    fn yes_no_is_exclusive_substring() {
        assert!(judge_judgement("no", "abnormal"));
        assert!(!judge_judgement("no", "yes and no"));
        assert!(judge_judgement("yes", "Yes, there is a mass."));
        assert!(!judge_judgement("yes", "unknown"));
    }

    #[test]
    fn open_swaps_precision_and_f1_and_raises_on_empty() {
        let (em, m) = judge_open("left lung", "the left lung").expect("scored");
        assert!(!em);
        // True P = 2/3, R = 1, F1 = 0.8 — reported as precision 0.8, recall 2/3, f1 1.
        assert!((m.precision - 0.8).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.f1, 1.0);
        assert!(judge_open("lung", "").is_none());
        assert!(judge_open("lung", "...").is_none());
        assert!(judge_open("lung", "   ").is_none());
    }
}
