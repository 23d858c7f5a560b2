//! Answer normalisation and token metrics shared by the protocols.
//!
//! Two families live here:
//! - exact re-implementations of what the toolkits run (Python string semantics, the VQA v2
//!   answer processing as LLaVA-Med and MultiMedEval copy it, nltk's and torchmetrics' BLEU-1),
//!   quirks included, each documented where it differs from what one would expect;
//! - medvqa's own clean normalisation ([`clean_tokens`]) used by the `medvqa` protocol.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Python's `str.isspace` (Unicode White_Space plus the ASCII separators \x1c–\x1f, which
/// Python splits on and Rust's `char::is_whitespace` does not).
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: runs of whitespace separate, no empty pieces.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(py_is_space).filter(|t| !t.is_empty()).collect()
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Python's `\d` for `str` patterns: Unicode decimal digits. ASCII digits cover every answer
/// the toolkits meet; other scripts' digits are matched through `char::is_numeric` minus the
/// non-decimal numerals Python's `\d` excludes (fractions, Roman numerals).
fn py_digit(c: char) -> bool {
    c.is_ascii_digit() || (c.is_numeric() && c.to_digit(10).is_none() && !is_non_decimal_numeral(c))
}

fn is_non_decimal_numeral(c: char) -> bool {
    // Superscripts, vulgar fractions, Roman numerals and circled numbers are `is_numeric` but
    // not `\d`.
    matches!(c, '\u{b2}' | '\u{b3}' | '\u{b9}' | '\u{bc}'..='\u{be}' | '\u{2150}'..='\u{218b}' | '\u{2460}'..='\u{24ff}' | '\u{2070}'..='\u{209f}')
}

// --- VQA v2 answer processing (LLaVA-Med glossary.normalize_word, MultiMedEval clean_str) ---

/// The punctuation list of the VQA v2 evaluation (`punct` in vqaEval.py). `.`, `:`, `'`, `*`,
/// `%`, `&`, `#`, `$`, `^`, `|`, `~` are not in it.
const VQA_PUNCT: [&str; 21] = [
    ";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
    ",", "?", "!",
];

/// `manualMap` of the VQA v2 evaluation: number words to digits — and "none" to "0".
const VQA_MANUAL_MAP: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// The VQA v2 contraction table (`vqa_contractions.tsv`).
fn vqa_contractions() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("vqa_contractions.tsv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_once('\t'))
            .collect()
    })
}

/// The VQA v2 answer processing exactly as LLaVA-Med's `normalize_word` (applied to a
/// lower-cased answer) and MultiMedEval's `clean_str` run it:
///
/// 1. lower-case;
/// 2. for each character of [`VQA_PUNCT`] in order: if the *original* text has it followed or
///    preceded by a space, or contains a digit-comma-digit, it is deleted, else replaced by a
///    space;
/// 3. periods not followed by a digit are deleted — only the first 32, because the toolkits
///    pass `re.UNICODE` (= 32) as the `count` argument of `re.sub`; the `(?!<=\d)` meant as a
///    look-behind is a look-ahead that never fails on a period;
/// 4. split on whitespace, map number words (and "none") to digits, drop articles, restore
///    contractions ("isnt" → "isn't");
/// 5. join with single spaces and delete every remaining comma.
pub fn vqa_v2_normalize(text: &str) -> String {
    let token = text.to_lowercase();
    let chars: Vec<char> = token.chars().collect();
    let digit_comma_digit = chars
        .windows(3)
        .any(|w| py_digit(w[0]) && w[1] == ',' && py_digit(w[2]));
    let mut out = token.clone();
    for p in VQA_PUNCT {
        let spaced = token.contains(&format!("{p} ")) || token.contains(&format!(" {p}"));
        out = if spaced || digit_comma_digit {
            out.replace(p, "")
        } else {
            out.replace(p, " ")
        };
    }
    let chars: Vec<char> = out.chars().collect();
    let mut stripped = String::with_capacity(out.len());
    let mut removed = 0;
    for (i, &c) in chars.iter().enumerate() {
        let next_is_digit = chars.get(i + 1).is_some_and(|&n| py_digit(n));
        if c == '.' && !next_is_digit && removed < 32 {
            removed += 1;
            continue;
        }
        stripped.push(c);
    }
    let lowered = stripped.to_lowercase();
    let contractions = vqa_contractions();
    let words: Vec<&str> = py_split(&lowered)
        .into_iter()
        .map(|w| {
            VQA_MANUAL_MAP
                .iter()
                .find(|(from, _)| *from == w)
                .map_or(w, |(_, to)| *to)
        })
        .filter(|w| !ARTICLES.contains(w))
        .map(|w| contractions.get(w).copied().unwrap_or(w))
        .collect();
    words.join(" ").replace(',', "")
}

// --- BLEU-1 ---------------------------------------------------------------------------------

/// Clipped unigram matches of `hypothesis` against one `reference`.
fn clipped_unigram_matches<S: AsRef<str>>(reference: &[S], hypothesis: &[S]) -> usize {
    let mut ref_counts: HashMap<&str, usize> = HashMap::new();
    for t in reference {
        *ref_counts.entry(t.as_ref()).or_default() += 1;
    }
    let mut hyp_counts: HashMap<&str, usize> = HashMap::new();
    for t in hypothesis {
        *hyp_counts.entry(t.as_ref()).or_default() += 1;
    }
    hyp_counts
        .iter()
        .map(|(t, &c)| c.min(ref_counts.get(t).copied().unwrap_or(0)))
        .sum()
}

/// nltk 3.9.1 `sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0))` (or
/// `weights=[1.0]`), no smoothing: 0 without a unigram match, else `BP · exp(ln p1)` with
/// `p1` = clipped unigram matches / hypothesis length and `BP = exp(1 − r/c)` when the
/// hypothesis is not longer than the reference (Papineni et al. 2002, §2.2.2). The
/// `exp(ln p1)` round trip is kept: it changes the last bit of some values.
pub fn nltk_bleu1<S: AsRef<str>>(reference: &[S], hypothesis: &[S]) -> f64 {
    let matches = clipped_unigram_matches(reference, hypothesis);
    if matches == 0 {
        return 0.0;
    }
    let c = hypothesis.len();
    let r = reference.len();
    let p1 = matches as f64 / c.max(1) as f64;
    let bp = if c > r {
        1.0
    } else {
        (1.0 - r as f64 / c as f64).exp()
    };
    bp * p1.ln().exp()
}

/// torchmetrics 1.6 `BLEUScore(n_gram=1)` on one pair, as MultiMedEval calls it. The metric
/// computes in float32 tensors; this does the same operations in `f32`. torch's vectorised
/// `log`/`exp` can differ from the C library's in the last float32 bit, so results agree with
/// the toolkit to within one float32 ulp (documented in `docs/protocols.md`).
pub fn torchmetrics_bleu1(reference: &str, hypothesis: &str) -> f64 {
    let reference = py_split(reference);
    let hypothesis = py_split(hypothesis);
    let matches = clipped_unigram_matches(&reference, &hypothesis);
    if matches == 0 {
        return 0.0;
    }
    let preds_len = hypothesis.len() as f32;
    let target_len = reference.len() as f32;
    let precision = matches as f32 / hypothesis.len() as f32;
    let geometric_mean = (1.0f32 * precision.ln()).exp();
    let bp = if preds_len > target_len {
        1.0f32
    } else {
        (1.0f32 - target_len / preds_len).exp()
    };
    f64::from(bp * geometric_mean)
}

// --- medvqa's clean normalisation -------------------------------------------------------------

/// Number words our normalisation turns into digits (not "none": that is an answer, not a
/// number).
const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// medvqa's normalisation of an answer into tokens, VQA v2 in spirit without its accidents:
/// lower-case; curly apostrophes made straight; every punctuation character becomes a space
/// except an apostrophe inside a word, a period between digits (3.5) and a comma between
/// digits (1,000 → 1000); articles dropped; number words zero–twenty become digits;
/// apostrophe-less contractions restored with the VQA v2 table ("isnt" → "isn't").
pub fn clean_tokens(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let chars: Vec<char> = lower.chars().collect();
    let mut spaced = String::with_capacity(lower.len());
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let between = |f: fn(char) -> bool| prev.is_some_and(f) && next.is_some_and(f);
        let kept = c.is_alphanumeric()
            || c.is_whitespace()
            || (c == '.' && between(|x| x.is_ascii_digit()))
            || (c == '\'' && between(char::is_alphanumeric));
        if kept {
            spaced.push(c);
        } else if c == ',' && between(|x| x.is_ascii_digit()) {
            // Thousands separator: dropped.
        } else {
            spaced.push(' ');
        }
    }
    let contractions = vqa_contractions();
    spaced
        .split_whitespace()
        .filter(|w| !ARTICLES.contains(w))
        .map(|w| {
            if let Some(i) = NUMBER_WORDS.iter().position(|n| *n == w) {
                i.to_string()
            } else {
                contractions.get(w).copied().unwrap_or(w).to_owned()
            }
        })
        .collect()
}

/// Bag-of-tokens precision, recall and F1 (SQuAD-style: shared tokens counted with
/// multiplicity). All zero when either side is empty or nothing is shared.
pub fn token_prf(prediction: &[String], gold: &[String]) -> (f64, f64, f64) {
    if prediction.is_empty() || gold.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let common = clipped_unigram_matches(gold, prediction);
    if common == 0 {
        return (0.0, 0.0, 0.0);
    }
    let p = common as f64 / prediction.len() as f64;
    let r = common as f64 / gold.len() as f64;
    (p, r, 2.0 * p * r / (p + r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        assert_eq!(py_split("  a\tb\u{1f}c\u{a0}d "), vec!["a", "b", "c", "d"]);
        assert_eq!(py_strip("\u{1c} x \n"), "x");
        assert!(py_split("   ").is_empty());
    }

    #[test]
    fn vqa_v2_case_articles_numbers() {
        assert_eq!(vqa_v2_normalize("The Left Lung"), "left lung");
        assert_eq!(vqa_v2_normalize("an MRI"), "mri");
        assert_eq!(vqa_v2_normalize("Two"), "2");
        // The VQA v2 map turns "none" into a number.
        assert_eq!(vqa_v2_normalize("none"), "0");
        assert_eq!(vqa_v2_normalize("isnt"), "isn't");
    }

    #[test]
    fn vqa_v2_punctuation_depends_on_spacing() {
        // Hyphen with no space next to it becomes a space...
        assert_eq!(vqa_v2_normalize("x-ray"), "x ray");
        // ...but with a space somewhere next to a hyphen every hyphen is deleted.
        assert_eq!(vqa_v2_normalize("mr - t2-weighted"), "mr t2weighted");
        // A digit-comma-digit anywhere deletes all listed punctuation instead of spacing it.
        assert_eq!(vqa_v2_normalize("1,000 x-ray"), "1000 xray");
        assert_eq!(vqa_v2_normalize("yes, it is"), "yes it is");
        // Colons and apostrophes are not in the list.
        assert_eq!(vqa_v2_normalize("answer: yes"), "answer: yes");
    }

    #[test]
    fn vqa_v2_periods() {
        assert_eq!(vqa_v2_normalize("yes."), "yes");
        assert_eq!(vqa_v2_normalize("3.5 cm."), "3.5 cm");
        // Only the first 32 periods go (re.sub count = re.UNICODE = 32).
        assert_eq!(
            vqa_v2_normalize(&format!("a{}", ".".repeat(40))),
            "a........"
        );
        assert_eq!(
            vqa_v2_normalize(&format!("x{}", ".".repeat(40))),
            "x........"
        );
    }

    #[test]
    fn nltk_bleu1_rules() {
        let r = ["left", "lung"];
        assert_eq!(nltk_bleu1(&r, &["left", "lung"]), 1.0);
        assert_eq!(nltk_bleu1(&r, &["right"]), 0.0);
        assert_eq!(nltk_bleu1::<&str>(&r, &[]), 0.0);
        // Shorter hypothesis: brevity penalty exp(1 - 2/1).
        let v = nltk_bleu1(&r, &["lung"]);
        assert!((v - (-1.0f64).exp()).abs() < 1e-15, "{v}");
        // Clipping: "lung lung lung" matches once.
        let v = nltk_bleu1(&r, &["lung", "lung", "lung"]);
        assert!((v - 1.0 / 3.0).abs() < 1e-15, "{v}");
    }

    #[test]
    fn torchmetrics_bleu1_rules() {
        assert_eq!(torchmetrics_bleu1("left lung", ""), 0.0);
        assert_eq!(torchmetrics_bleu1("left lung", "left lung"), 1.0);
        let v = torchmetrics_bleu1("left lung", "lung");
        assert!((v - (-1.0f64).exp()).abs() < 1e-7, "{v}");
    }

    #[test]
    fn clean_tokens_rules() {
        assert_eq!(clean_tokens("The Left-Lung."), vec!["left", "lung"]);
        assert_eq!(
            clean_tokens("Two nodules, 3.5 cm"),
            vec!["2", "nodules", "3.5", "cm"]
        );
        assert_eq!(clean_tokens("1,000"), vec!["1000"]);
        assert_eq!(clean_tokens("It isn’t"), vec!["it", "isn't"]);
        assert_eq!(clean_tokens("isnt"), vec!["isn't"]);
        assert_eq!(clean_tokens("none"), vec!["none"]);
        assert_eq!(clean_tokens("x-ray"), vec!["x", "ray"]);
        assert!(clean_tokens(" ... ").is_empty());
    }

    #[test]
    fn token_prf_counts_multiplicity() {
        let t = |s: &str| clean_tokens(s);
        assert_eq!(token_prf(&t("left lung"), &t("left lung")), (1.0, 1.0, 1.0));
        let (p, r, f) = token_prf(&t("the left upper lung"), &t("left lung"));
        assert!((p - 2.0 / 3.0).abs() < 1e-12 && r == 1.0 && (f - 0.8).abs() < 1e-12);
        assert_eq!(token_prf(&t(""), &t("lung")), (0.0, 0.0, 0.0));
    }
}
