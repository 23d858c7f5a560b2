//! `medvqa`: our own protocol, the default. Its rules are chosen to be clean, not to match a
//! toolkit:
//!
//! - Normalisation ([`clean_tokens`]): VQA v2 in spirit (lower-case, punctuation, articles,
//!   number words, contractions) without its accidents (no "none" → "0", no 32-period limit,
//!   no spacing-dependent punctuation).
//! - Closed yes/no questions: the prediction's polarity at token level ([`yes_no_polarity`]),
//!   never substrings — "abnormal" is not "no"; "not seen" is no. An answer with no polarity
//!   word is `unparsed`, one with both polarities `ambiguous`; both are wrong. Chinese yes/no
//!   answers (SLAKE zh: 是的 / 不是, 包含 / 不包含, 有 / 没有, …) are read by their opening word.
//! - Other closed questions ("left or right?"): exact match of the normalised answers.
//! - Open questions: exact match of the normalised answers is `correct`; token precision,
//!   recall, F1 (with multiplicity) and BLEU-1 are reported; `score` is the F1.
//! - Multiple choice: the option letter is extracted MMMU-style ([`extract_option_letter`]);
//!   no letter is the outcome `unparsed` (never a random guess, as MMMU does). Scoring options
//!   by log-likelihood is for models run in-process and lives with the model runner.

use super::normalize::{clean_tokens, nltk_bleu1, token_prf};
use crate::types::{AnswerType, Judgement, OpenMetrics, Protocol, Question};

/// medvqa's protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct MedVqa;

/// Outcome of an answer whose yes/no polarity or option letter cannot be read.
pub const OUTCOME_UNPARSED: &str = "unparsed";
/// Outcome of an answer that says both yes and no.
pub const OUTCOME_AMBIGUOUS: &str = "ambiguous";

/// Tokens that say yes.
const YES_WORDS: [&str; 6] = ["yes", "yeah", "yep", "yup", "true", "affirmative"];
/// Tokens that say no (after [`clean_tokens`], so "isnt" is already "isn't").
const NO_WORDS: [&str; 10] = [
    "no", "not", "nope", "false", "none", "never", "neither", "nor", "cannot", "negative",
];

/// A yes/no answer's polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    Yes,
    No,
    /// Says both (e.g. "yes and no").
    Ambiguous,
    /// Says neither (e.g. "abnormal", "unknown", "").
    Unparsed,
}

fn is_yes(t: &str) -> bool {
    YES_WORDS.contains(&t)
}

fn is_no(t: &str) -> bool {
    NO_WORDS.contains(&t) || t.ends_with("n't")
}

/// The polarity of an answer, from whole tokens: a leading "yes"/"no" decides unless the
/// other bare word also occurs ("yes and no"); otherwise the polarity words anywhere decide
/// when they agree ("there is no mass", "not seen", "it isn't"). A Chinese answer is read by
/// its opening: 不…/没…/无…/否…/非…/异常 say no, 是…/有…/包含…/可以…/能…/会…/对…/正常 yes.
pub fn yes_no_polarity(answer: &str) -> Polarity {
    if let Some(core) = chinese_core(answer) {
        return if ZH_NO_OPENINGS.iter().any(|o| core.starts_with(o)) {
            Polarity::No
        } else if ZH_YES_OPENINGS.iter().any(|o| core.starts_with(o)) {
            Polarity::Yes
        } else {
            Polarity::Unparsed
        };
    }
    let tokens = clean_tokens(answer);
    let has = |w: &str| tokens.iter().any(|t| t == w);
    match tokens.first().map(String::as_str) {
        Some(first) if is_yes(first) && !has("no") => return Polarity::Yes,
        Some(first) if (first == "no" || first == "nope") && !has("yes") => return Polarity::No,
        _ => {}
    }
    let yes = tokens.iter().any(|t| is_yes(t));
    let no = tokens.iter().any(|t| is_no(t));
    match (yes, no) {
        (true, false) => Polarity::Yes,
        (false, true) => Polarity::No,
        (true, true) => Polarity::Ambiguous,
        (false, false) => Polarity::Unparsed,
    }
}

/// Whole Chinese answers that mean yes / no (SLAKE's closed answers; 正常 "normal" answers
/// "is it normal?", 异常 "abnormal" answers it in the negative).
const ZH_YES_ANSWERS: [&str; 9] = ["是", "是的", "有", "包含", "可以", "能", "会", "对", "正常"];
const ZH_NO_ANSWERS: [&str; 11] = [
    "否",
    "不是",
    "没有",
    "无",
    "不包含",
    "不可以",
    "不能",
    "不会",
    "不对",
    "不正常",
    "异常",
];
/// Openings of a Chinese answer that say no, tried before the yes openings (不是 starts
/// with 不, not 是).
const ZH_NO_OPENINGS: [&str; 6] = ["不", "没", "无", "否", "非", "异常"];
const ZH_YES_OPENINGS: [&str; 8] = ["是", "有", "包含", "可以", "能", "会", "对", "正常"];

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)
}

/// The answer without punctuation and spaces, when it is written in Chinese.
fn chinese_core(text: &str) -> Option<String> {
    if !text.chars().any(is_cjk) {
        return None;
    }
    Some(text.chars().filter(|c| c.is_alphanumeric()).collect())
}

/// The polarity of a gold answer: `Some` for yes/no golds (English "yes"/"no", or a Chinese
/// yes/no answer), `None` for any other answer.
fn gold_polarity(answer: &str) -> Option<Polarity> {
    if let Some(core) = chinese_core(answer) {
        return if ZH_YES_ANSWERS.contains(&core.as_str()) {
            Some(Polarity::Yes)
        } else if ZH_NO_ANSWERS.contains(&core.as_str()) {
            Some(Polarity::No)
        } else {
            None
        };
    }
    match clean_tokens(answer).as_slice() {
        [w] if w == "yes" => Some(Polarity::Yes),
        [w] if w == "no" => Some(Polarity::No),
        _ => None,
    }
}

/// MMMU's `parse_multi_choice_response` (Yue et al. 2024, MMMU `eval_utils.py`) without its
/// random fallback: strip `,.!?;:'` from both ends; a letter in parentheses "(B)" wins; else a
/// letter standing alone " B "; else, for answers longer than five words, an option text
/// contained in the answer; when several match, the one mentioned last. Also accepted: an
/// answer that is exactly one option's text. `None` = unparsed.
pub fn extract_option_letter(response: &str, options: &[String]) -> Option<usize> {
    let mut r = response.trim();
    r = r.trim_matches(|c: char| ",.!?;:'".contains(c));
    let padded = format!(" {r} ");
    let letters: Vec<char> = (0..options.len())
        .filter_map(|i| char::from_u32('A' as u32 + i as u32))
        .collect();
    let last_of = |found: Vec<(usize, usize)>| {
        found
            .into_iter()
            .max_by_key(|&(_, pos)| pos)
            .map(|(i, _)| i)
    };
    let bracketed: Vec<(usize, usize)> = letters
        .iter()
        .enumerate()
        .filter_map(|(i, l)| padded.rfind(&format!("({l})")).map(|p| (i, p)))
        .collect();
    if !bracketed.is_empty() {
        return last_of(bracketed);
    }
    let bare: Vec<(usize, usize)> = letters
        .iter()
        .enumerate()
        .filter_map(|(i, l)| padded.rfind(&format!(" {l} ")).map(|p| (i, p)))
        .collect();
    if !bare.is_empty() {
        return last_of(bare);
    }
    let lower = padded.to_lowercase();
    if padded.split_whitespace().count() > 5 {
        let texts: Vec<(usize, usize)> = options
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.trim().is_empty())
            .filter_map(|(i, o)| lower.rfind(&o.to_lowercase()).map(|p| (i, p)))
            .collect();
        if !texts.is_empty() {
            return last_of(texts);
        }
    }
    let answer = clean_tokens(r);
    options
        .iter()
        .position(|o| !answer.is_empty() && clean_tokens(o) == answer)
}

fn outcome_judgement(
    correct: bool,
    gold: String,
    pred: String,
    outcome: Option<&str>,
) -> Judgement {
    Judgement {
        correct,
        score: if correct { 1.0 } else { 0.0 },
        gold_normalized: gold,
        prediction_normalized: pred,
        outcome: outcome.map(str::to_owned),
        open: None,
    }
}

impl Protocol for MedVqa {
    fn name(&self) -> &'static str {
        "medvqa"
    }

    fn judge(&self, question: &Question, prediction: &str) -> Judgement {
        let gold_tokens = clean_tokens(&question.answer);
        let pred_tokens = clean_tokens(prediction);
        let gold = gold_tokens.join(" ");
        let pred = pred_tokens.join(" ");
        match question.answer_type {
            AnswerType::MultipleChoice => {
                let gold_index = question
                    .options
                    .iter()
                    .position(|o| clean_tokens(o) == gold_tokens)
                    .or_else(|| letter_index(&question.answer, question.options.len()));
                match extract_option_letter(prediction, &question.options) {
                    Some(i) => {
                        let letter = char::from(b'A' + i as u8).to_string();
                        let gold_letter = gold_index
                            .map(|g| char::from(b'A' + g as u8).to_string())
                            .unwrap_or(gold);
                        outcome_judgement(gold_index == Some(i), gold_letter, letter, None)
                    }
                    None => outcome_judgement(false, gold, pred, Some(OUTCOME_UNPARSED)),
                }
            }
            AnswerType::Closed if gold_polarity(&question.answer).is_some() => {
                let expected = if gold_polarity(&question.answer) == Some(Polarity::Yes) {
                    "yes"
                } else {
                    "no"
                };
                let (verdict, outcome) = match yes_no_polarity(prediction) {
                    Polarity::Yes => ("yes", None),
                    Polarity::No => ("no", None),
                    Polarity::Ambiguous => ("", Some(OUTCOME_AMBIGUOUS)),
                    Polarity::Unparsed => ("", Some(OUTCOME_UNPARSED)),
                };
                let shown = if verdict.is_empty() {
                    pred
                } else {
                    verdict.to_owned()
                };
                outcome_judgement(verdict == expected, expected.to_owned(), shown, outcome)
            }
            AnswerType::Closed => {
                let correct = !gold.is_empty() && pred == gold;
                outcome_judgement(correct, gold, pred, None)
            }
            AnswerType::Open => {
                let (precision, recall, f1) = token_prf(&pred_tokens, &gold_tokens);
                let exact = !gold.is_empty() && pred == gold;
                Judgement {
                    correct: exact,
                    score: f1,
                    gold_normalized: gold,
                    prediction_normalized: pred,
                    outcome: None,
                    open: Some(OpenMetrics {
                        exact_match: if exact { 1.0 } else { 0.0 },
                        precision,
                        recall,
                        f1,
                        bleu1: nltk_bleu1(&gold_tokens, &pred_tokens),
                    }),
                }
            }
        }
    }
}

/// A gold answer written as a bare option letter ("B").
fn letter_index(answer: &str, n: usize) -> Option<usize> {
    let a = answer.trim();
    let mut chars = a.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() || !c.is_ascii_uppercase() {
        return None;
    }
    let i = (c as u8 - b'A') as usize;
    (i < n).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(answer: &str, answer_type: AnswerType, options: &[&str]) -> Question {
        Question {
            id: "1".into(),
            images: vec![],
            question: "?".into(),
            answer: answer.into(),
            answer_type,
            options: options.iter().map(|s| s.to_string()).collect(),
            question_type: None,
            modality: None,
            body_system_native: None,
            body_system: None,
            split: None,
            lang: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn polarity_is_token_level() {
        assert_eq!(yes_no_polarity("Yes."), Polarity::Yes);
        assert_eq!(yes_no_polarity("No, it is not."), Polarity::No);
        assert_eq!(yes_no_polarity("abnormal"), Polarity::Unparsed);
        assert_eq!(yes_no_polarity("unknown"), Polarity::Unparsed);
        assert_eq!(yes_no_polarity("not seen"), Polarity::No);
        assert_eq!(yes_no_polarity("There is no evidence of it"), Polarity::No);
        assert_eq!(yes_no_polarity("It isnt present"), Polarity::No);
        assert_eq!(yes_no_polarity("yes and no"), Polarity::Ambiguous);
        assert_eq!(yes_no_polarity("Yes, it is not normal"), Polarity::Yes);
        assert_eq!(yes_no_polarity(""), Polarity::Unparsed);
        assert_eq!(yes_no_polarity("Nope"), Polarity::No);
    }

    #[test]
    fn chinese_yes_no() {
        assert_eq!(gold_polarity("不是"), Some(Polarity::No));
        assert_eq!(gold_polarity("是的"), Some(Polarity::Yes));
        assert_eq!(gold_polarity("不包含"), Some(Polarity::No));
        assert_eq!(gold_polarity("肺"), None);
        assert_eq!(gold_polarity("Yes"), Some(Polarity::Yes));
        assert_eq!(gold_polarity("Left"), None);
        assert_eq!(yes_no_polarity("不是。"), Polarity::No);
        assert_eq!(yes_no_polarity("是的，图中有肿块"), Polarity::Yes);
        assert_eq!(yes_no_polarity("没有"), Polarity::No);
        assert_eq!(yes_no_polarity("肝脏"), Polarity::Unparsed);
        let p = MedVqa;
        let q = question("包含", AnswerType::Closed, &[]);
        assert!(p.judge(&q, "是的").correct);
        assert!(!p.judge(&q, "不包含").correct);
        let organ = question("肺", AnswerType::Closed, &[]);
        assert!(p.judge(&organ, "肺").correct);
    }

    #[test]
    fn closed_judgements() {
        let p = MedVqa;
        let no = question("No", AnswerType::Closed, &[]);
        assert!(!p.judge(&no, "abnormal").correct);
        assert_eq!(
            p.judge(&no, "abnormal").outcome.as_deref(),
            Some("unparsed")
        );
        assert!(p.judge(&no, "not seen").correct);
        assert_eq!(
            p.judge(&no, "yes and no").outcome.as_deref(),
            Some("ambiguous")
        );
        let side = question("Left", AnswerType::Closed, &[]);
        assert!(p.judge(&side, "the left.").correct);
        assert!(!p.judge(&side, "right").correct);
    }

    #[test]
    fn open_judgements() {
        let p = MedVqa;
        let q = question("Two", AnswerType::Open, &[]);
        assert!(p.judge(&q, "2").correct);
        let q = question("Left lung", AnswerType::Open, &[]);
        let j = p.judge(&q, "The LEFT lung.");
        assert!(j.correct);
        let j = p.judge(&q, "I think it shows left lung in this image.");
        assert!(!j.correct);
        let m = j.open.expect("open metrics");
        assert_eq!(m.recall, 1.0);
        assert!(m.precision < 1.0 && m.f1 == j.score);
        let empty = p.judge(&q, "");
        assert_eq!(empty.score, 0.0);
        assert!(!empty.correct);
    }

    #[test]
    fn option_letters() {
        let opts: Vec<String> = ["CT", "MRI", "X-ray", "Ultrasound"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(extract_option_letter("B", &opts), Some(1));
        assert_eq!(extract_option_letter("(C)", &opts), Some(2));
        assert_eq!(extract_option_letter("The answer is (D).", &opts), Some(3));
        assert_eq!(extract_option_letter("A.", &opts), Some(0));
        assert_eq!(
            extract_option_letter("Answer: B, not A", &opts),
            Some(0),
            "the last mentioned wins"
        );
        assert_eq!(
            extract_option_letter("I believe this image was made with MRI here", &opts),
            Some(1)
        );
        assert_eq!(extract_option_letter("mri", &opts), Some(1));
        assert_eq!(extract_option_letter("no idea", &opts), None);
        assert_eq!(extract_option_letter("E", &opts), None);
        let p = MedVqa;
        let q = question(
            "MRI",
            AnswerType::MultipleChoice,
            &["CT", "MRI", "X-ray", "Ultrasound"],
        );
        assert!(p.judge(&q, "(B)").correct);
        let j = p.judge(&q, "no idea");
        assert_eq!(j.outcome.as_deref(), Some("unparsed"));
        let lettered = question("b", AnswerType::MultipleChoice, &["CT", "MRI"]);
        assert!(p.judge(&lettered, "B").correct);
    }
}
