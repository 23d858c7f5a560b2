//! `lmms-eval`: the SLAKE task of lmms-eval (EvolvingLMMs-Lab/lmms-eval,
//! `lmms_eval/tasks/slake/utils.py`, commit 0a75d6b), applicable to any open/closed set.
//!
//! Both answers are normalised ([`lmms_normalize`]) and compared for equality; accuracy is
//! the mean, split by the dataset's answer type (`slake_open_accuracy`,
//! `slake_closed_accuracy`).

use super::normalize::py_is_space;
use crate::types::{Judgement, Protocol, Question};

/// lmms-eval's SLAKE protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct LmmsEval;

/// English and Chinese words lmms-eval reads as yes / no (`EN_YES`, `ZH_YES`, `EN_NO`,
/// `ZH_NO`). Note 正常 ("normal") counts as yes and 异常 ("abnormal") as no.
const YES: [&str; 12] = [
    "yes", "yeah", "yep", "true", "是", "是的", "有", "包含", "可以", "能", "会", "正常",
];
const NO: [&str; 13] = [
    "no",
    "nope",
    "false",
    "否",
    "不是",
    "没有",
    "无",
    "不包含",
    "不能",
    "不会",
    "不可以",
    "不正常",
    "异常",
];

/// Full-width and CJK punctuation lmms-eval adds to `string.punctuation` (`ZH_PUNCTUATION`).
const ZH_PUNCTUATION: &str =
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～、，。；：《》？【】（）";

/// Replaces every `open … close` span (no nested `close` inside) by a space, left to right —
/// Python's `re.sub(r"\([^)]*\)", " ", text)`.
fn drop_parenthesised(text: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len_utf8()..];
        match after.find(close) {
            Some(end) => {
                out.push_str(&rest[..start]);
                out.push(' ');
                rest = &after[end + close.len_utf8()..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// lmms-eval's `normalize_answer`: strip and lower-case; drop `(…)` and `（…）` asides;
/// ASCII and CJK punctuation to spaces; collapse whitespace; "x ray"/"xray" → "xray"; yes/no
/// synonyms (English and Chinese) → "yes"/"no". Only whole answers are mapped: "yes it is"
/// stays as it is.
pub fn lmms_normalize(answer: &str) -> String {
    let text = answer.trim_matches(py_is_space).to_lowercase();
    let text = drop_parenthesised(&text, '(', ')');
    let text = drop_parenthesised(&text, '（', '）');
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_punctuation() || ZH_PUNCTUATION.contains(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let text = text
        .split(py_is_space)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let text = if text == "x ray" || text == "xray" {
        "xray".to_owned()
    } else {
        text
    };
    if YES.contains(&text.as_str()) {
        "yes".to_owned()
    } else if NO.contains(&text.as_str()) {
        "no".to_owned()
    } else {
        text
    }
}

impl Protocol for LmmsEval {
    fn name(&self) -> &'static str {
        "lmms-eval"
    }

    fn judge(&self, question: &Question, prediction: &str) -> Judgement {
        let gold = lmms_normalize(&question.answer);
        let pred = lmms_normalize(prediction);
        let correct = gold == pred;
        Judgement {
            correct,
            score: if correct { 1.0 } else { 0.0 },
            gold_normalized: gold,
            prediction_normalized: pred,
            outcome: None,
            open: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_rules() {
        assert_eq!(lmms_normalize("  Yes. "), "yes");
        assert_eq!(lmms_normalize("Yep"), "yes");
        assert_eq!(lmms_normalize("Nope!"), "no");
        assert_eq!(lmms_normalize("yes, it is"), "yes it is");
        assert_eq!(lmms_normalize("Left lung (upper lobe)"), "left lung");
        assert_eq!(lmms_normalize("X-Ray"), "xray");
        assert_eq!(lmms_normalize("x ray"), "xray");
        assert_eq!(lmms_normalize("肺（左）"), "肺");
        assert_eq!(lmms_normalize("异常"), "no");
        assert_eq!(lmms_normalize("abnormal"), "abnormal");
        assert_eq!(lmms_normalize("a (b (c) d)"), "a d");
    }
}
