//! Paired comparison of two runs on the same questions (`medvqa compare`).
//!
//! Both runs are read from their directories (`summary.json` + `results.jsonl`) and paired by
//! question id. For the whole set and for every label of every breakdown the comparison
//! reports both accuracies, their difference (B − A) with a paired bootstrap 95 % interval, the
//! discordant counts and the exact McNemar p-value. Runs scored under different protocols, or
//! on different datasets or splits, are refused: their numbers do not mean the same thing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::report::{self, html_escape, ChartRow};
use crate::summary::{answer_type_label, Bootstrap, QuestionResult, Summary, UNKNOWN_LABEL};
use crate::types::AnswerType;

/// Two-sided exact McNemar test (McNemar 1947; exact binomial form as in statsmodels'
/// `mcnemar(exact=True)`): under H0 the `b + c` discordant pairs split Binomial(b + c, ½), and
/// `p = min(1, 2 · P[X ≤ min(b, c)])`.
///
/// `b`: questions only run A got right; `c`: questions only run B got right.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    let cdf = if n <= 1000 {
        // 2^-n is exact in f64 here, and each step multiplies by an exact ratio: the sum is
        // accurate to a few ulps.
        let mut pmf = 0.5f64.powi(n as i32);
        let mut cdf = pmf;
        for i in 1..=k {
            pmf *= (n - i + 1) as f64 / i as f64;
            cdf += pmf;
        }
        cdf
    } else {
        // 2^-n underflows f64 beyond n ≈ 1074: sum the pmf in log space instead.
        let ln2n = n as f64 * std::f64::consts::LN_2;
        let mut ln_choose = 0.0;
        let mut terms = Vec::with_capacity(k as usize + 1);
        for i in 0..=k {
            if i > 0 {
                ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
            terms.push(ln_choose - ln2n);
        }
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>()
    };
    (2.0 * cdf).min(1.0)
}

/// A scored run read back from its directory.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub summary: Summary,
    pub results: Vec<QuestionResult>,
}

/// Reads `summary.json` and `results.jsonl` from a run directory.
pub fn read_run(dir: &Path) -> Result<Run, EvalError> {
    let summary_path = dir.join(report::SUMMARY_FILE);
    let text = fs::read_to_string(&summary_path).map_err(|e| EvalError::io(&summary_path, e))?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| EvalError::Json {
        path: summary_path.clone(),
        source: e,
    })?;
    let results_path = dir.join(report::RESULTS_JSONL_FILE);
    let text = fs::read_to_string(&results_path).map_err(|e| EvalError::io(&results_path, e))?;
    let mut results = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: QuestionResult = serde_json::from_str(line).map_err(|e| EvalError::Line {
            path: results_path.clone(),
            line: i + 1,
            reason: format!("not a medvqa result: {e}"),
        })?;
        results.push(r);
    }
    Ok(Run {
        dir: dir.to_path_buf(),
        summary,
        results,
    })
}

/// Which run a comparison side is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLabel {
    pub dir: String,
    pub model: Option<String>,
    pub accuracy: Option<f64>,
}

/// A and B on one set of paired questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedStat {
    pub n: usize,
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    /// accuracy_b − accuracy_a.
    pub difference: f64,
    /// Paired bootstrap 95 % interval of the difference.
    pub ci95: [f64; 2],
    pub both_correct: usize,
    /// Discordant: A right, B wrong (McNemar's b).
    pub only_a_correct: usize,
    /// Discordant: A wrong, B right (McNemar's c).
    pub only_b_correct: usize,
    pub both_wrong: usize,
    /// Exact two-sided McNemar p-value.
    pub mcnemar_p: f64,
}

/// Everything `compare.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub dataset: String,
    pub split: String,
    pub protocol: String,
    pub a: RunLabel,
    pub b: RunLabel,
    /// Questions present in both runs (the only ones compared).
    pub n_paired: usize,
    pub only_in_a: usize,
    pub only_in_b: usize,
    pub overall: PairedStat,
    pub closed: Option<PairedStat>,
    pub open: Option<PairedStat>,
    pub by_modality: BTreeMap<String, PairedStat>,
    pub by_body_system: BTreeMap<String, PairedStat>,
    pub by_question_type: BTreeMap<String, PairedStat>,
    pub by_answer_type: BTreeMap<String, PairedStat>,
    pub bootstrap: Bootstrap,
}

fn paired(pairs: &[(&QuestionResult, &QuestionResult)], boot: &Bootstrap) -> Option<PairedStat> {
    if pairs.is_empty() {
        return None;
    }
    let a: Vec<f64> = pairs
        .iter()
        .map(|(x, _)| f64::from(u8::from(x.correct)))
        .collect();
    let b: Vec<f64> = pairs
        .iter()
        .map(|(_, y)| f64::from(u8::from(y.correct)))
        .collect();
    let count = |fa: bool, fb: bool| {
        pairs
            .iter()
            .filter(|(x, y)| x.correct == fa && y.correct == fb)
            .count()
    };
    let (only_a, only_b) = (count(true, false), count(false, true));
    let n = pairs.len() as f64;
    let accuracy_a = a.iter().sum::<f64>() / n;
    let accuracy_b = b.iter().sum::<f64>() / n;
    Some(PairedStat {
        n: pairs.len(),
        accuracy_a,
        accuracy_b,
        difference: accuracy_b - accuracy_a,
        ci95: boot.paired_diff_ci95(&a, &b)?,
        both_correct: count(true, true),
        only_a_correct: only_a,
        only_b_correct: only_b,
        both_wrong: count(false, false),
        mcnemar_p: mcnemar_exact(only_a as u64, only_b as u64),
    })
}

fn paired_breakdown(
    pairs: &[(&QuestionResult, &QuestionResult)],
    label: impl Fn(&QuestionResult) -> Option<String>,
    boot: &Bootstrap,
) -> BTreeMap<String, PairedStat> {
    let mut groups: BTreeMap<String, Vec<(&QuestionResult, &QuestionResult)>> = BTreeMap::new();
    for &(x, y) in pairs {
        let key = label(x)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| UNKNOWN_LABEL.into());
        groups.entry(key).or_default().push((x, y));
    }
    groups
        .into_iter()
        .filter_map(|(k, v)| paired(&v, boot).map(|s| (k, s)))
        .collect()
}

/// Pairs two runs by question id and compares them. Labels come from run A (both runs read
/// the same dataset, so they agree).
pub fn compare(a: &Run, b: &Run, boot: &Bootstrap) -> Result<Comparison, EvalError> {
    let (sa, sb) = (&a.summary, &b.summary);
    let (la, lb) = (
        sa.lang.clone().unwrap_or_default(),
        sb.lang.clone().unwrap_or_default(),
    );
    for (what, x, y) in [
        ("dataset", &sa.dataset, &sb.dataset),
        ("split", &sa.split, &sb.split),
        ("language", &la, &lb),
        ("protocol", &sa.protocol, &sb.protocol),
    ] {
        if x != y {
            return Err(EvalError::format(
                &b.dir,
                format!(
                    "cannot compare runs with different {what}: {x:?} in {} vs {y:?}",
                    a.dir.display()
                ),
            ));
        }
    }
    let b_by_id: BTreeMap<&str, &QuestionResult> =
        b.results.iter().map(|r| (r.id.as_str(), r)).collect();
    let pairs: Vec<(&QuestionResult, &QuestionResult)> = a
        .results
        .iter()
        .filter_map(|r| b_by_id.get(r.id.as_str()).map(|&y| (r, y)))
        .collect();
    let overall = paired(&pairs, boot).ok_or_else(|| {
        EvalError::format(
            &b.dir,
            format!("no question id in common with {}", a.dir.display()),
        )
    })?;
    let of_type = |t: AnswerType| -> Vec<(&QuestionResult, &QuestionResult)> {
        pairs
            .iter()
            .copied()
            .filter(|(x, _)| x.answer_type == t)
            .collect()
    };
    let label = |run: &Run| RunLabel {
        dir: run.dir.display().to_string(),
        model: run.summary.model.clone(),
        accuracy: run.summary.overall.accuracy,
    };
    Ok(Comparison {
        dataset: sa.dataset.clone(),
        split: sa.split.clone(),
        protocol: sa.protocol.clone(),
        a: label(a),
        b: label(b),
        n_paired: pairs.len(),
        only_in_a: a.results.len() - pairs.len(),
        only_in_b: b.results.len() - pairs.len(),
        overall,
        closed: paired(&of_type(AnswerType::Closed), boot),
        open: paired(&of_type(AnswerType::Open), boot),
        by_modality: paired_breakdown(&pairs, |r| r.modality.clone(), boot),
        by_body_system: paired_breakdown(&pairs, |r| r.body_system.clone(), boot),
        by_question_type: paired_breakdown(&pairs, |r| r.question_type.clone(), boot),
        by_answer_type: paired_breakdown(
            &pairs,
            |r| Some(answer_type_label(r.answer_type).into()),
            boot,
        ),
        bootstrap: *boot,
    })
}

fn run_name(r: &RunLabel) -> String {
    match &r.model {
        Some(m) => format!("{m} ({})", r.dir),
        None => r.dir.clone(),
    }
}

fn rows(m: &BTreeMap<String, PairedStat>) -> Vec<(String, &PairedStat)> {
    m.iter().map(|(k, v)| (k.clone(), v)).collect()
}

fn sections(c: &Comparison) -> Vec<(&'static str, Vec<(String, &PairedStat)>)> {
    let mut totals = vec![("overall".to_string(), &c.overall)];
    totals.extend(c.closed.as_ref().map(|s| ("closed".to_string(), s)));
    totals.extend(c.open.as_ref().map(|s| ("open".to_string(), s)));
    vec![
        ("Totals", totals),
        ("By modality", rows(&c.by_modality)),
        ("By body system", rows(&c.by_body_system)),
        ("By question type", rows(&c.by_question_type)),
        ("By answer type", rows(&c.by_answer_type)),
    ]
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn signed_pct(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}

/// The comparison as Markdown.
pub fn render_markdown(c: &Comparison) -> String {
    let mut md =
        format!(
        "# Comparison: {} vs {}\n\nDataset `{}`, split `{}`, protocol `{}`. {} paired questions \
         ({} only in A, {} only in B). Difference = B − A in percentage points; 95 % CI from a \
         paired bootstrap ({} resamples, seed {}); p from the exact McNemar test.\n\n\
         - **A**: {}\n- **B**: {}\n",
        report::md_escape(&run_name(&c.a)),
        report::md_escape(&run_name(&c.b)),
        c.dataset, c.split, c.protocol, c.n_paired, c.only_in_a, c.only_in_b,
        c.bootstrap.resamples, c.bootstrap.seed,
        report::md_escape(&run_name(&c.a)),
        report::md_escape(&run_name(&c.b)),
    );
    for (title, rows) in sections(c) {
        if rows.is_empty() {
            continue;
        }
        md.push_str(&format!(
            "\n## {title}\n\n| label | n | A % | B % | B − A | 95 % CI | A only | B only | McNemar p |\n\
             |---|---:|---:|---:|---:|---|---:|---:|---:|\n"
        ));
        for (label, s) in rows {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | [{}, {}] | {} | {} | {} |\n",
                report::md_escape(&label),
                s.n,
                pct(s.accuracy_a),
                pct(s.accuracy_b),
                signed_pct(s.difference),
                signed_pct(s.ci95[0]),
                signed_pct(s.ci95[1]),
                s.only_a_correct,
                s.only_b_correct,
                format_p(s.mcnemar_p),
            ));
        }
    }
    md
}

/// p-values: four significant digits, scientific below 1e-4.
pub fn format_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// The comparison as a self-contained HTML page: one difference chart (B − A with its CI) per
/// breakdown, and the full tables.
pub fn render_html(c: &Comparison) -> String {
    let mut body =
        format!(
        "<h1>Comparison</h1><p><b>A</b>: {}<br><b>B</b>: {}</p><p>Dataset <code>{}</code>, split \
         <code>{}</code>, protocol <code>{}</code>; {} paired questions. Bars: B − A in percentage \
         points, whiskers: paired bootstrap 95 % CI; p: exact McNemar.</p>",
        html_escape(&run_name(&c.a)), html_escape(&run_name(&c.b)),
        html_escape(&c.dataset), html_escape(&c.split), html_escape(&c.protocol), c.n_paired,
    );
    for (title, rows) in sections(c) {
        if rows.is_empty() {
            continue;
        }
        body.push_str(&format!("<h2>{}</h2>", html_escape(title)));
        let chart: Vec<ChartRow> = rows
            .iter()
            .map(|(label, s)| ChartRow {
                label: format!("{label} (n={})", s.n),
                value: s.difference,
                ci95: Some(s.ci95),
                note: format!("p={}", format_p(s.mcnemar_p)),
            })
            .collect();
        body.push_str(&report::diff_chart_svg(
            &format!("{title}: B − A (percentage points)"),
            &chart,
        ));
        body.push_str(
            "<table><tr><th>label</th><th>n</th><th>A %</th><th>B %</th><th>B − A</th>\
             <th>95 % CI</th><th>A only</th><th>B only</th><th>McNemar p</th></tr>",
        );
        for (label, s) in rows {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(&label),
                s.n,
                pct(s.accuracy_a),
                pct(s.accuracy_b),
                signed_pct(s.difference),
                signed_pct(s.ci95[0]),
                signed_pct(s.ci95[1]),
                s.only_a_correct,
                s.only_b_correct,
                format_p(s.mcnemar_p),
            ));
        }
        body.push_str("</table>");
    }
    report::html_page("medvqa comparison", &body)
}

/// Writes `compare.json`, `compare.md` and `compare.html` into `out`.
pub fn write_comparison(out: &Path, c: &Comparison) -> Result<(), EvalError> {
    fs::create_dir_all(out).map_err(|e| EvalError::io(out, e))?;
    let json =
        serde_json::to_string_pretty(c).map_err(|e| EvalError::format(out, e.to_string()))?;
    report::write_file(&out.join("compare.json"), &json)?;
    report::write_file(&out.join("compare.md"), &render_markdown(c))?;
    report::write_file(&out.join("compare.html"), &render_html(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests_support::summarize_results;
    use crate::summary::RunInfo;

    #[derive(Deserialize)]
    struct Reference {
        mcnemar_exact: Vec<McNemarCase>,
    }

    #[derive(Deserialize)]
    struct McNemarCase {
        b: u64,
        c: u64,
        pvalue: f64,
    }

    #[test]
    fn mcnemar_matches_statsmodels() {
        // Numbers from tools/eval_reference/make_reference.py (statsmodels 0.14.4).
        let r: Reference = serde_json::from_str(include_str!(
            "../../../tools/eval_reference/stats_reference.json"
        ))
        .unwrap();
        assert!(r.mcnemar_exact.len() >= 10);
        for case in r.mcnemar_exact {
            let p = mcnemar_exact(case.b, case.c);
            let rel = (p - case.pvalue).abs() / case.pvalue.max(1e-300);
            assert!(
                rel < 1e-9,
                "b={} c={}: {p} vs {}",
                case.b,
                case.c,
                case.pvalue
            );
            assert_eq!(p, mcnemar_exact(case.c, case.b), "symmetric");
        }
    }

    #[test]
    fn mcnemar_known_small_values() {
        // b=0, c=6: 2 · 2^-6 = 0.03125 — the textbook smallest count reaching p < 0.05.
        assert_eq!(mcnemar_exact(0, 6), 0.03125);
        assert_eq!(mcnemar_exact(0, 5), 0.0625);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }

    fn res(id: &str, correct: bool, t: AnswerType, modality: &str) -> QuestionResult {
        QuestionResult {
            id: id.into(),
            question: String::new(),
            images: vec![],
            gold: "yes".into(),
            prediction: String::new(),
            gold_normalized: "yes".into(),
            prediction_normalized: String::new(),
            answer_type: t,
            question_type: None,
            modality: Some(modality.into()),
            body_system: None,
            body_system_native: None,
            correct,
            score: f64::from(u8::from(correct)),
            outcome: None,
            open: None,
            extra: BTreeMap::new(),
        }
    }

    fn run(dir: &str, results: Vec<QuestionResult>, protocol: &str) -> Run {
        let info = RunInfo {
            dataset: "d".into(),
            split: "test".into(),
            lang: Some("en".into()),
            protocol: protocol.into(),
            model: None,
        };
        Run {
            dir: dir.into(),
            summary: summarize_results(&info, &results),
            results,
        }
    }

    #[test]
    fn paired_counts_difference_and_pairing_by_id() {
        let a = run(
            "a",
            vec![
                res("1", true, AnswerType::Closed, "CT"),
                res("2", true, AnswerType::Closed, "CT"),
                res("3", false, AnswerType::Open, "MRI"),
                res("4", false, AnswerType::Open, "MRI"),
                res("5", true, AnswerType::Open, "MRI"),
            ],
            "medvqa",
        );
        // B in a different order and without question 5.
        let b = run(
            "b",
            vec![
                res("4", true, AnswerType::Open, "MRI"),
                res("3", true, AnswerType::Open, "MRI"),
                res("2", false, AnswerType::Closed, "CT"),
                res("1", true, AnswerType::Closed, "CT"),
            ],
            "medvqa",
        );
        let c = compare(&a, &b, &Bootstrap::default()).unwrap();
        assert_eq!((c.n_paired, c.only_in_a, c.only_in_b), (4, 1, 0));
        let o = &c.overall;
        assert_eq!(
            (
                o.both_correct,
                o.only_a_correct,
                o.only_b_correct,
                o.both_wrong
            ),
            (1, 1, 2, 0)
        );
        assert_eq!(
            (o.accuracy_a, o.accuracy_b, o.difference),
            (0.5, 0.75, 0.25)
        );
        assert_eq!(o.mcnemar_p, 1.0);
        assert!(o.ci95[0] <= 0.25 && 0.25 <= o.ci95[1]);
        assert_eq!(c.by_modality["MRI"].difference, 1.0);
        assert_eq!(c.by_modality["CT"].only_a_correct, 1);
        assert_eq!(c.closed.as_ref().unwrap().n, 2);
        let md = render_markdown(&c);
        assert!(md.contains("| MRI | 2 | 0.0 | 100.0 | +100.0 |"), "{md}");
    }

    #[test]
    fn refuses_different_protocols() {
        let a = run(
            "a",
            vec![res("1", true, AnswerType::Closed, "CT")],
            "medvqa",
        );
        let b = run(
            "b",
            vec![res("1", true, AnswerType::Closed, "CT")],
            "llava-med",
        );
        let err = compare(&a, &b, &Bootstrap::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("protocol"), "{err}");
    }
}
