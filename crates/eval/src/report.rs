//! The files a scored run leaves in its output directory: `summary.json`, `results.jsonl`,
//! `results.csv`, `report.md` and a self-contained `report.html` whose charts are inline SVG
//! (no scripts, no fonts, no network), so the page renders the same offline and years later.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::error::EvalError;
use crate::summary::{answer_type_label, GroupSummary, QuestionResult, Summary, UNKNOWN_LABEL};

pub const SUMMARY_FILE: &str = "summary.json";
pub const RESULTS_JSONL_FILE: &str = "results.jsonl";
pub const RESULTS_CSV_FILE: &str = "results.csv";
pub const REPORT_MD_FILE: &str = "report.md";
pub const REPORT_HTML_FILE: &str = "report.html";

/// Writes `text` to `path`, naming the file in the error.
pub fn write_file(path: &Path, text: &str) -> Result<(), EvalError> {
    fs::write(path, text).map_err(|e| EvalError::io(path, e))
}

/// Writes every report file of a scored run into `out` (created if needed).
pub fn write_run_reports(
    out: &Path,
    summary: &Summary,
    results: &[QuestionResult],
) -> Result<(), EvalError> {
    fs::create_dir_all(out).map_err(|e| EvalError::io(out, e))?;
    let json =
        serde_json::to_string_pretty(summary).map_err(|e| EvalError::format(out, e.to_string()))?;
    write_file(&out.join(SUMMARY_FILE), &(json + "\n"))?;
    write_file(&out.join(RESULTS_JSONL_FILE), &results_jsonl(results, out)?)?;
    write_file(&out.join(RESULTS_CSV_FILE), &results_csv(results))?;
    write_file(
        &out.join(REPORT_MD_FILE),
        &render_markdown(summary, results),
    )?;
    write_file(&out.join(REPORT_HTML_FILE), &render_html(summary, results))
}

fn results_jsonl(results: &[QuestionResult], out: &Path) -> Result<String, EvalError> {
    let mut s = String::new();
    for r in results {
        s.push_str(&serde_json::to_string(r).map_err(|e| EvalError::format(out, e.to_string()))?);
        s.push('\n');
    }
    Ok(s)
}

/// One CSV field per RFC 4180 §2: quoted when it holds a comma, quote, CR or LF (or leading /
/// trailing spaces, which spreadsheet programs would otherwise trim), quotes doubled.
pub fn csv_field(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Column order of `results.csv`.
pub const CSV_COLUMNS: [&str; 20] = [
    "id",
    "question",
    "images",
    "gold",
    "prediction",
    "gold_normalized",
    "prediction_normalized",
    "answer_type",
    "question_type",
    "modality",
    "body_system",
    "body_system_native",
    "correct",
    "score",
    "outcome",
    "exact_match",
    "precision",
    "recall",
    "f1",
    "bleu1",
];

/// `results.csv`: one row per question, columns [`CSV_COLUMNS`], CRLF line ends (RFC 4180).
/// Several images are joined with `;`.
pub fn results_csv(results: &[QuestionResult]) -> String {
    let mut s = CSV_COLUMNS.join(",");
    s.push_str("\r\n");
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    for r in results {
        let metric = |f: fn(&crate::types::OpenMetrics) -> f64| {
            r.open
                .as_ref()
                .map(|o| f(o).to_string())
                .unwrap_or_default()
        };
        let row = [
            r.id.clone(),
            r.question.clone(),
            r.images.join(";"),
            r.gold.clone(),
            r.prediction.clone(),
            r.gold_normalized.clone(),
            r.prediction_normalized.clone(),
            answer_type_label(r.answer_type).to_string(),
            opt(&r.question_type),
            opt(&r.modality),
            opt(&r.body_system),
            opt(&r.body_system_native),
            r.correct.to_string(),
            r.score.to_string(),
            opt(&r.outcome),
            metric(|o| o.exact_match),
            metric(|o| o.precision),
            metric(|o| o.recall),
            metric(|o| o.f1),
            metric(|o| o.bleu1),
        ];
        s.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push_str("\r\n");
    }
    s
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell (pipes, backslashes, line breaks).
pub fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}", 100.0 * v))
        .unwrap_or_else(|| "–".into())
}

fn ci(x: Option<[f64; 2]>) -> String {
    x.map(|[lo, hi]| format!("[{:.1}, {:.1}]", 100.0 * lo, 100.0 * hi))
        .unwrap_or_else(|| "–".into())
}

fn breakdowns(s: &Summary) -> [(&'static str, &BTreeMap<String, GroupSummary>); 5] {
    [
        ("By modality", &s.by_modality),
        ("By body system (common taxonomy)", &s.by_body_system),
        (
            "By body system (dataset's own label)",
            &s.by_body_system_native,
        ),
        ("By question type", &s.by_question_type),
        ("By answer type", &s.by_answer_type),
    ]
}

/// Which common-taxonomy label each native body-system label became, with counts.
fn body_system_mapping(results: &[QuestionResult]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in results {
        let native = r
            .body_system_native
            .clone()
            .unwrap_or_else(|| UNKNOWN_LABEL.into());
        let common = r
            .body_system
            .clone()
            .unwrap_or_else(|| UNKNOWN_LABEL.into());
        *m.entry((native, common)).or_insert(0) += 1;
    }
    m
}

/// The one-paragraph description of a run; `code` wraps names (Markdown backticks or HTML
/// `<code>`), and must escape what it wraps.
fn headline(s: &Summary, code: impl Fn(&str) -> String) -> String {
    let model = s
        .model
        .as_deref()
        .map(|m| format!(", model {}", code(m)))
        .unwrap_or_default();
    let lang = s
        .lang
        .as_deref()
        .map(|l| format!(", language {}", code(l)))
        .unwrap_or_default();
    format!(
        "Dataset {}, split {}{lang}, protocol {}{model}; {} questions ({} without a prediction, \
         scored as empty answers). Accuracies in %; 95 % CI from a percentile bootstrap ({} \
         resamples, seed {}).",
        code(&s.dataset),
        code(&s.split),
        code(&s.protocol),
        s.n,
        s.missing_predictions,
        s.bootstrap.resamples,
        s.bootstrap.seed
    )
}

fn md_code(x: &str) -> String {
    format!("`{}`", md_escape(x).replace('`', "'"))
}

fn html_code(x: &str) -> String {
    format!("<code>{}</code>", html_escape(x))
}

/// `report.md`: headline numbers and every breakdown as tables.
pub fn render_markdown(s: &Summary, results: &[QuestionResult]) -> String {
    let mut md = format!("# medvqa evaluation report\n\n{}\n\n", headline(s, md_code));
    md.push_str("| set | n | accuracy | 95 % CI |\n|---|---:|---:|---|\n");
    let _ = writeln!(
        md,
        "| overall | {} | {} | {} |",
        s.overall.n,
        pct(s.overall.accuracy),
        ci(s.overall.ci95)
    );
    let _ = writeln!(
        md,
        "| closed | {} | {} | {} |",
        s.closed.n,
        pct(s.closed.accuracy),
        ci(s.closed.ci95)
    );
    let o = &s.open;
    let _ = write!(
        md,
        "\n## Open questions (n = {})\n\n| accuracy | exact match | precision | recall | F1 | BLEU-1 |\n\
         |---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} |\n",
        o.n, pct(o.accuracy), pct(o.exact_match), pct(o.precision), pct(o.recall), pct(o.f1), pct(o.bleu1)
    );
    if !s.protocol_extra.is_empty() {
        let _ = write!(
            md,
            "\n## Numbers specific to protocol `{}`\n\n| name | value |\n|---|---:|\n",
            s.protocol
        );
        for (name, v) in &s.protocol_extra {
            let _ = writeln!(md, "| {} | {v} |", md_escape(name));
        }
    }
    for (title, groups) in breakdowns(s) {
        let _ = write!(
            md,
            "\n## {title}\n\n| label | n | accuracy | 95 % CI | closed accuracy | open recall |\n\
             |---|---:|---:|---|---:|---:|\n"
        );
        for (label, g) in groups {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                md_escape(label),
                g.n,
                pct(g.accuracy),
                ci(g.ci95),
                pct(g.closed_accuracy),
                pct(g.open_recall)
            );
        }
    }
    md.push_str("\n## Body-system labels: dataset → common taxonomy\n\n| dataset label | common label | questions |\n|---|---|---:|\n");
    for ((native, common), n) in body_system_mapping(results) {
        let _ = writeln!(
            md,
            "| {} | {} | {n} |",
            md_escape(&native),
            md_escape(&common)
        );
    }
    md
}

/// One bar of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartRow {
    pub label: String,
    /// Accuracy (or difference) as a fraction.
    pub value: f64,
    pub ci95: Option<[f64; 2]>,
    /// Text right of the bar (e.g. `n=12`).
    pub note: String,
}

// Chart geometry in SVG user units (= CSS px at 100 % zoom).
const LABEL_W: f64 = 230.0;
const PLOT_W: f64 = 420.0;
const NOTE_W: f64 = 110.0;
const ROW_H: f64 = 24.0;
const TOP: f64 = 28.0;
const AXIS_H: f64 = 26.0;

fn svg_open(title: &str, rows: usize) -> (String, f64) {
    let width = LABEL_W + PLOT_W + NOTE_W;
    let height = TOP + rows as f64 * ROW_H + AXIS_H;
    let s = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>\
         <text class=\"chart-title\" x=\"0\" y=\"16\">{t}</text>",
        t = html_escape(title)
    );
    (s, height)
}

fn x_of(v: f64, lo: f64, hi: f64) -> f64 {
    LABEL_W + (v.clamp(lo, hi) - lo) / (hi - lo) * PLOT_W
}

fn axis(svg: &mut String, lo: f64, hi: f64, ticks: &[f64], rows: usize, signed: bool) {
    let bottom = TOP + rows as f64 * ROW_H;
    for &t in ticks {
        let x = x_of(t, lo, hi);
        let label = if signed {
            format!("{:+.0}", 100.0 * t)
        } else {
            format!("{:.0}", 100.0 * t)
        };
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            bottom + 16.0
        );
    }
}

fn bar_rows(svg: &mut String, rows: &[ChartRow], lo: f64, hi: f64, origin: f64) {
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let mid = y + ROW_H / 2.0;
        let (x0, x1) = (x_of(origin, lo, hi), x_of(r.value, lo, hi));
        let (bx, bw) = (x0.min(x1), (x1 - x0).abs());
        let sign = if r.value < origin { " negative" } else { "" };
        let ci_text = r
            .ci95
            .map(|[a, b]| format!(", 95 % CI {:.1}–{:.1}", 100.0 * a, 100.0 * b))
            .unwrap_or_default();
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar{sign}\" x=\"{bx:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\">\
             <title>{}: {:.1} %{ci_text}</title></rect>",
            LABEL_W - 8.0,
            mid + 4.0,
            html_escape(&r.label),
            y + 4.0,
            ROW_H - 8.0,
            html_escape(&r.label),
            100.0 * r.value,
        );
        if let Some([a, b]) = r.ci95 {
            let (xa, xb) = (x_of(a, lo, hi), x_of(b, lo, hi));
            let _ = write!(
                svg,
                "<g class=\"whisker\"><line x1=\"{xa:.1}\" y1=\"{mid:.1}\" x2=\"{xb:.1}\" y2=\"{mid:.1}\"/>\
                 <line x1=\"{xa:.1}\" y1=\"{:.1}\" x2=\"{xa:.1}\" y2=\"{:.1}\"/>\
                 <line x1=\"{xb:.1}\" y1=\"{:.1}\" x2=\"{xb:.1}\" y2=\"{:.1}\"/></g>",
                mid - 5.0, mid + 5.0, mid - 5.0, mid + 5.0
            );
        }
        let _ = write!(
            svg,
            "<text class=\"note\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LABEL_W + PLOT_W + 8.0,
            mid + 4.0,
            html_escape(&r.note)
        );
    }
}

/// Horizontal accuracy bars on a 0–100 % axis, each with its 95 % CI whisker.
pub fn accuracy_chart_svg(title: &str, rows: &[ChartRow]) -> String {
    let (mut svg, _) = svg_open(title, rows.len());
    axis(
        &mut svg,
        0.0,
        1.0,
        &[0.0, 0.25, 0.5, 0.75, 1.0],
        rows.len(),
        false,
    );
    bar_rows(&mut svg, rows, 0.0, 1.0, 0.0);
    svg.push_str("</svg>");
    svg
}

/// Horizontal difference bars around 0 on a symmetric axis (at least ±10 points), each with
/// its 95 % CI whisker.
pub fn diff_chart_svg(title: &str, rows: &[ChartRow]) -> String {
    let extent = rows
        .iter()
        .flat_map(|r| {
            [r.value.abs()]
                .into_iter()
                .chain(r.ci95.into_iter().flat_map(|[a, b]| [a.abs(), b.abs()]))
        })
        .fold(0.1_f64, f64::max);
    // Round the axis up to a multiple of 10 points so ticks are readable.
    let hi = ((extent * 10.0).ceil() / 10.0).min(1.0);
    let (mut svg, _) = svg_open(title, rows.len());
    axis(
        &mut svg,
        -hi,
        hi,
        &[-hi, -hi / 2.0, 0.0, hi / 2.0, hi],
        rows.len(),
        true,
    );
    bar_rows(&mut svg, rows, -hi, hi, 0.0);
    svg.push_str("</svg>");
    svg
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:2em auto;max-width:980px;color:#1a1a1a;padding:0 1em}h1{font-size:1.5em}\
h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}\
h3{font-size:1em;margin-top:1.4em}\
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}\
td:first-child,th:first-child{text-align:left}code{background:#f3f3f3;padding:0 .2em}\
.headline{font-size:1.05em}.big{font-size:2em;font-weight:600}\
svg.chart{display:block;margin:.8em 0;font-size:12px}\
svg.chart text{fill:#1a1a1a}svg.chart .chart-title{font-weight:600;font-size:13px}\
svg.chart .tick{fill:#666;font-size:11px}svg.chart .grid{stroke:#e4e4e4}\
svg.chart .bar{fill:#4c78a8}svg.chart .bar.negative{fill:#e45756}\
svg.chart .whisker line{stroke:#1a1a1a;stroke-width:1.4}svg.chart .note{fill:#555}";

/// A complete HTML document with the inline style sheet; `body` is trusted markup.
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>{body}</body></html>\n",
        html_escape(title)
    )
}

/// Text beside a bar: the value and the number of questions.
fn note(accuracy: f64, n: usize) -> String {
    format!("{:.1} % · n={n}", 100.0 * accuracy)
}

fn group_rows(groups: &BTreeMap<String, GroupSummary>) -> Vec<ChartRow> {
    groups
        .iter()
        .filter_map(|(label, g)| {
            g.accuracy.map(|a| ChartRow {
                label: label.clone(),
                value: a,
                ci95: g.ci95,
                note: note(a, g.n),
            })
        })
        .collect()
}

fn html_table(title: &str, groups: &BTreeMap<String, GroupSummary>) -> String {
    let mut t = format!(
        "<h3>{}</h3><table><tr><th>label</th><th>n</th><th>accuracy %</th><th>95 % CI</th>\
         <th>closed accuracy %</th><th>open recall %</th></tr>",
        html_escape(title)
    );
    for (label, g) in groups {
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(label),
            g.n,
            pct(g.accuracy),
            ci(g.ci95),
            pct(g.closed_accuracy),
            pct(g.open_recall)
        );
    }
    t.push_str("</table>");
    t
}

/// `report.html`: headline, charts (accuracy per modality and per body system with CI whiskers,
/// closed vs open, per question type) and every table, in one file.
pub fn render_html(s: &Summary, results: &[QuestionResult]) -> String {
    let mut b = format!(
        "<h1>medvqa evaluation report</h1><p class=\"headline\">{}</p>\
         <p><span class=\"big\">{} %</span> overall accuracy, 95 % CI {}</p>",
        headline(s, html_code),
        pct(s.overall.accuracy),
        ci(s.overall.ci95)
    );
    let mut closed_open = Vec::new();
    if let Some(a) = s.closed.accuracy {
        closed_open.push(ChartRow {
            label: "closed".into(),
            value: a,
            ci95: s.closed.ci95,
            note: note(a, s.closed.n),
        });
    }
    if let Some(a) = s.open.accuracy {
        let ci95 = s.by_answer_type.get("open").and_then(|g| g.ci95);
        closed_open.push(ChartRow {
            label: "open".into(),
            value: a,
            ci95,
            note: note(a, s.open.n),
        });
    }
    if let Some(g) = s
        .by_answer_type
        .get(answer_type_label(crate::types::AnswerType::MultipleChoice))
    {
        if let Some(a) = g.accuracy {
            closed_open.push(ChartRow {
                label: "multiple choice".into(),
                value: a,
                ci95: g.ci95,
                note: note(a, g.n),
            });
        }
    }
    b.push_str("<h2>Charts</h2>");
    b.push_str(&accuracy_chart_svg(
        "Accuracy: closed vs open (%)",
        &closed_open,
    ));
    b.push_str(&accuracy_chart_svg(
        "Accuracy per modality (%)",
        &group_rows(&s.by_modality),
    ));
    b.push_str(&accuracy_chart_svg(
        "Accuracy per body system (%)",
        &group_rows(&s.by_body_system),
    ));
    b.push_str(&accuracy_chart_svg(
        "Accuracy per question type (%)",
        &group_rows(&s.by_question_type),
    ));

    let o = &s.open;
    let _ = write!(
        b,
        "<h2>Totals</h2><table><tr><th>set</th><th>n</th><th>accuracy %</th><th>95 % CI</th></tr>\
         <tr><td>overall</td><td>{}</td><td>{}</td><td>{}</td></tr>\
         <tr><td>closed</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\
         <h3>Open questions (n = {})</h3><table><tr><th>accuracy %</th><th>exact match</th>\
         <th>precision</th><th>recall</th><th>F1</th><th>BLEU-1</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        s.overall.n,
        pct(s.overall.accuracy),
        ci(s.overall.ci95),
        s.closed.n,
        pct(s.closed.accuracy),
        ci(s.closed.ci95),
        o.n,
        pct(o.accuracy),
        pct(o.exact_match),
        pct(o.precision),
        pct(o.recall),
        pct(o.f1),
        pct(o.bleu1)
    );
    if !s.protocol_extra.is_empty() {
        let _ = write!(
            b,
            "<h3>Numbers specific to protocol {}</h3><table><tr><th>name</th><th>value</th></tr>",
            html_code(&s.protocol)
        );
        for (name, v) in &s.protocol_extra {
            let _ = write!(b, "<tr><td>{}</td><td>{v}</td></tr>", html_escape(name));
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Breakdowns</h2>");
    for (title, groups) in breakdowns(s) {
        b.push_str(&html_table(title, groups));
    }
    b.push_str("<h3>Body-system labels: dataset → common taxonomy</h3><table><tr><th>dataset label</th><th>common label</th><th>questions</th></tr>");
    for ((native, common), n) in body_system_mapping(results) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
            html_escape(&native),
            html_escape(&common)
        );
    }
    b.push_str("</table>");
    html_page(
        &format!("medvqa report: {} ({})", s.dataset, s.protocol),
        &b,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal RFC 4180 reader for the round-trip test.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = vec![];
        let mut row = vec![];
        let mut field = String::new();
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    #[test]
    fn csv_escaping_follows_rfc4180() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"no\""), "\"say \"\"no\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(csv_field(" padded "), "\" padded \"");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("肺"), "肺");
    }

    #[test]
    fn results_csv_round_trips() {
        let mut r = crate::summary::tests_support::result("q,1", true);
        r.prediction = "Yes, \"clearly\"\nsecond line".into();
        let csv = results_csv(&[r.clone()]);
        let rows = parse_csv(&csv);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            CSV_COLUMNS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(rows[1][0], "q,1");
        assert_eq!(rows[1][4], r.prediction);
        assert_eq!(rows[1].len(), CSV_COLUMNS.len());
    }

    #[test]
    fn html_escapes_markup_and_has_no_external_resources() {
        assert_eq!(
            html_escape("<b a=\"x\">&'</b>"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;"
        );
        let rows = [ChartRow {
            label: "<CT>".into(),
            value: 0.5,
            ci95: Some([0.4, 0.6]),
            note: "n=3".into(),
        }];
        let svg = accuracy_chart_svg("t", &rows);
        assert!(svg.contains("&lt;CT&gt;") && !svg.contains("<CT>"));
        let page = html_page("t", &svg);
        for external in ["<script", "http://", "https://", "@import", "url("] {
            let without_ns = page.replace("http://www.w3.org/2000/svg", "");
            assert!(!without_ns.contains(external), "{external}");
        }
    }

    #[test]
    fn bar_and_whisker_geometry() {
        let rows = [ChartRow {
            label: "CT".into(),
            value: 0.5,
            ci95: Some([0.25, 0.75]),
            note: String::new(),
        }];
        let svg = accuracy_chart_svg("t", &rows);
        // 50 % of a 420-unit plot starting at x = 230: width 210; whisker from 335 to 545.
        assert!(
            svg.contains("x=\"230.0\" y=\"32.0\" width=\"210.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("<line x1=\"335.0\" y1=\"40.0\" x2=\"545.0\" y2=\"40.0\"/>"),
            "{svg}"
        );
        let diff = diff_chart_svg(
            "d",
            &[ChartRow {
                label: "x".into(),
                value: -0.05,
                ci95: Some([-0.1, 0.0]),
                note: String::new(),
            }],
        );
        assert!(diff.contains("class=\"bar negative\""));
    }

    #[test]
    fn reports_show_protocol_specific_numbers() {
        use crate::summary::{tests_support::summarize_results, RunInfo};
        let results = [crate::summary::tests_support::result("1", true)];
        let info = RunInfo {
            dataset: "d".into(),
            split: "test".into(),
            lang: None,
            protocol: "llava-med".into(),
            model: None,
        };
        let mut s = summarize_results(&info, &results);
        assert!(!render_markdown(&s, &results).contains("specific to protocol"));
        s.protocol_extra.insert("open accuracy".into(), 59.5);
        assert!(render_markdown(&s, &results).contains("| open accuracy | 59.5 |"));
        assert!(render_html(&s, &results).contains("<tr><td>open accuracy</td><td>59.5</td></tr>"));
    }

    #[test]
    fn markdown_escapes_pipes() {
        assert_eq!(md_escape("a|b\nc"), "a\\|b c");
    }
}
