//! Reading predictions: medvqa's own JSONL and the files other toolkits write, so their runs
//! can be re-scored under any protocol.
//!
//! | format | file | id | prediction |
//! |---|---|---|---|
//! | `medvqa` | JSONL, one `{"id": "...", "prediction": "..."}` per line | `id` (string or integer) | `prediction` |
//! | `lmms-eval` | `samples_<task>.jsonl` from `--log_samples` | `doc.qid` / `doc.id` / `doc.question_id`, or the `id` of a metric record | `filtered_resps[0]` (else `resps[0][0]`) |
//! | `vlmevalkit` | the `<model>_<dataset>` prediction table saved as `.tsv`/`.csv` (`PRED_FORMAT=tsv`) or `.json` records | `index` | `prediction` |
//! | `medevalkit` | `results.json`: the dataset rows with the model's `response` added | `id` / `qid` / `question_id` when present | `response` |
//!
//! Other toolkits often number questions their own way (lmms-eval's SLAKE fallback id, VLMEvalKit's
//! row `index`, MedEvalKit keeps no id for VQA-RAD). A record whose id is not a question id of the
//! dataset is therefore matched by its question text and gold answer (whitespace and case
//! folded); repeated (question, answer) pairs are matched in file order to dataset order, which
//! is the order those toolkits iterate. Records that match nothing are reported, never guessed.
//! VLMEvalKit's default `.xlsx` is refused with the hint to save it as TSV.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EvalError;
use crate::types::Question;

/// The tool that wrote a predictions file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PredictionFormat {
    Medvqa,
    LmmsEval,
    VlmEvalKit,
    MedEvalKit,
}

impl PredictionFormat {
    pub const ALL: [PredictionFormat; 4] = [
        PredictionFormat::Medvqa,
        PredictionFormat::LmmsEval,
        PredictionFormat::VlmEvalKit,
        PredictionFormat::MedEvalKit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PredictionFormat::Medvqa => "medvqa",
            PredictionFormat::LmmsEval => "lmms-eval",
            PredictionFormat::VlmEvalKit => "vlmevalkit",
            PredictionFormat::MedEvalKit => "medevalkit",
        }
    }
}

impl fmt::Display for PredictionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PredictionFormat {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, EvalError> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| EvalError::Invalid {
                what: "predictions format",
                value: s.to_string(),
                reason: "expected medvqa, lmms-eval, vlmevalkit or medevalkit".into(),
            })
    }
}

/// One line of medvqa's predictions JSONL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionLine {
    pub id: String,
    pub prediction: String,
}

/// Predictions keyed by dataset question id.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub format: PredictionFormat,
    pub by_id: BTreeMap<String, String>,
    /// Records that matched no question, described by their id or line.
    pub unmatched: Vec<String>,
}

/// A record as read from a file, before it is matched to a question.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    /// Where it came from (`line 3`, `row 7`), for messages.
    at: String,
    id: Option<String>,
    question: Option<String>,
    answer: Option<String>,
    prediction: String,
}

/// A JSON id as a string: strings as they are, integers without decimals (VQA-RAD mixes both).
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads medvqa's own predictions JSONL in file order. Blank lines are skipped; a duplicate id
/// is an error naming both lines. A null prediction reads as an empty answer.
pub fn read_medvqa_jsonl(path: &Path) -> Result<Vec<PredictionLine>, EvalError> {
    let content = fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse_medvqa_jsonl(path, &content)
}

fn parse_medvqa_jsonl(path: &Path, content: &str) -> Result<Vec<PredictionLine>, EvalError> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| EvalError::Line {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let id = v
            .get("id")
            .and_then(id_string)
            .ok_or_else(|| err("no \"id\" (string or integer)".into()))?;
        let prediction = match v.get("prediction") {
            Some(Value::Null) => String::new(),
            Some(p) => text(Some(p)).ok_or_else(|| err("\"prediction\" is not text".into()))?,
            None => return Err(err("no \"prediction\"".into())),
        };
        if let Some(first) = seen.insert(id.clone(), line_no) {
            return Err(err(format!("id {id:?} already answered on line {first}")));
        }
        out.push(PredictionLine { id, prediction });
    }
    Ok(out)
}

fn lmms_eval_records(path: &Path, content: &str) -> Result<Vec<Record>, EvalError> {
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: &str| EvalError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            reason: reason.into(),
        };
        let v: Value = serde_json::from_str(line).map_err(|_| err("invalid JSON"))?;
        let doc = v.get("doc");
        let doc_field = |k: &str| doc.and_then(|d| d.get(k));
        // lmms-eval task metrics (e.g. SLAKE's) log a per-sample record carrying the question id.
        let metric_id = v
            .as_object()
            .and_then(|o| o.values().find_map(|m| m.get("id").and_then(id_string)));
        let id = ["qid", "id", "question_id"]
            .iter()
            .find_map(|k| doc_field(k).and_then(id_string))
            .or(metric_id)
            .filter(|s| !s.is_empty());
        let first_text = |x: Option<&Value>| -> Option<String> {
            match x? {
                Value::Array(items) => items.iter().find_map(|i| match i {
                    Value::Array(inner) => {
                        inner.first().and_then(|s| s.as_str()).map(str::to_string)
                    }
                    other => other.as_str().map(str::to_string),
                }),
                other => other.as_str().map(str::to_string),
            }
        };
        let prediction = first_text(v.get("filtered_resps"))
            .or_else(|| first_text(v.get("resps")))
            .ok_or_else(|| err("no text in \"filtered_resps\" or \"resps\""))?;
        out.push(Record {
            at: format!("line {}", i + 1),
            id,
            question: text(doc_field("question")),
            answer: text(v.get("target")).or_else(|| text(doc_field("answer"))),
            prediction,
        });
    }
    Ok(out)
}

fn object_records(
    path: &Path,
    rows: &[Value],
    prediction_key: &str,
    id_keys: &[&str],
) -> Result<Vec<Record>, EvalError> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let prediction = match row.get(prediction_key) {
                Some(Value::Null) | None => None,
                p => text(p),
            }
            .ok_or_else(|| {
                EvalError::format(
                    path,
                    format!("record {}: no text in {prediction_key:?}", i + 1),
                )
            })?;
            Ok(Record {
                at: format!("record {}", i + 1),
                id: id_keys.iter().find_map(|k| row.get(*k).and_then(id_string)),
                question: text(row.get("question")),
                answer: text(row.get("answer")),
                prediction,
            })
        })
        .collect()
}

/// Splits delimited text (RFC 4180 quoting, as pandas writes it) into rows of fields.
pub fn parse_delimited(content: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = content.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else if c == '"' && field.is_empty() {
            quoted = true;
        } else if c == delimiter {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        } else if c != '\r' {
            field.push(c);
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn vlmevalkit_table_records(
    path: &Path,
    content: &str,
    delimiter: char,
) -> Result<Vec<Record>, EvalError> {
    let rows = parse_delimited(content.trim_start_matches('\u{feff}'), delimiter);
    let header = rows
        .first()
        .ok_or_else(|| EvalError::format(path, "empty table"))?;
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let pred =
        col("prediction").ok_or_else(|| EvalError::format(path, "no \"prediction\" column"))?;
    let (index, question, answer) = (col("index"), col("question"), col("answer"));
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate().skip(1) {
        if row.iter().all(|f| f.is_empty()) {
            continue;
        }
        let get = |c: Option<usize>| c.and_then(|c| row.get(c)).cloned();
        out.push(Record {
            at: format!("row {}", i + 1),
            id: get(index).map(|s| s.trim().to_string()),
            question: get(question),
            answer: get(answer),
            prediction: get(Some(pred)).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Guesses the writer of a predictions file from its name and first record.
pub fn detect_format(path: &Path, content: &str) -> Result<PredictionFormat, EvalError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "xlsx" | "xls" => return Err(xlsx_error(path)),
        "tsv" | "csv" => return Ok(PredictionFormat::VlmEvalKit),
        _ => {}
    }
    let trimmed = content.trim_start();
    if trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| EvalError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        let first = v.as_array().and_then(|a| a.first());
        return match first {
            Some(r) if r.get("response").is_some() => Ok(PredictionFormat::MedEvalKit),
            Some(r) if r.get("prediction").is_some() => Ok(PredictionFormat::VlmEvalKit),
            _ => Err(EvalError::format(path, "JSON array without \"response\" (MedEvalKit) or \"prediction\" (VLMEvalKit) records")),
        };
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    let v: Value = serde_json::from_str(first_line).map_err(|e| EvalError::Line {
        path: path.to_path_buf(),
        line: 1,
        reason: format!("invalid JSON: {e}"),
    })?;
    if v.get("doc_id").is_some() || v.get("filtered_resps").is_some() {
        Ok(PredictionFormat::LmmsEval)
    } else if v.get("id").is_some() && v.get("prediction").is_some() {
        Ok(PredictionFormat::Medvqa)
    } else {
        Err(EvalError::format(
            path,
            "unknown predictions format: expected medvqa JSONL {\"id\",\"prediction\"}, lmms-eval samples, \
             VLMEvalKit .tsv/.csv/.json or MedEvalKit results.json",
        ))
    }
}

fn xlsx_error(path: &Path) -> EvalError {
    EvalError::format(
        path,
        "VLMEvalKit .xlsx predictions are not read: save them as TSV (PRED_FORMAT=tsv) or CSV",
    )
}

fn records(path: &Path, content: &str, format: PredictionFormat) -> Result<Vec<Record>, EvalError> {
    let json_array = |content: &str| -> Result<Vec<Value>, EvalError> {
        let v: Value = serde_json::from_str(content).map_err(|e| EvalError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        match v {
            Value::Array(rows) => Ok(rows),
            _ => Err(EvalError::format(path, "expected a JSON array of records")),
        }
    };
    match format {
        PredictionFormat::Medvqa => Ok(parse_medvqa_jsonl(path, content)?
            .into_iter()
            .map(|p| Record {
                at: format!("id {}", p.id),
                id: Some(p.id),
                question: None,
                answer: None,
                prediction: p.prediction,
            })
            .collect()),
        PredictionFormat::LmmsEval => lmms_eval_records(path, content),
        PredictionFormat::MedEvalKit => object_records(
            path,
            &json_array(content)?,
            "response",
            &["id", "qid", "question_id"],
        ),
        PredictionFormat::VlmEvalKit => {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            match ext.as_str() {
                "xlsx" | "xls" => Err(xlsx_error(path)),
                "csv" => vlmevalkit_table_records(path, content, ','),
                "json" => object_records(path, &json_array(content)?, "prediction", &["index"]),
                _ => vlmevalkit_table_records(path, content, '\t'),
            }
        }
    }
}

fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Matches records to questions: by id when the id is a question id, otherwise by (question,
/// answer) text in order. A question answered twice is an error.
fn resolve(
    path: &Path,
    format: PredictionFormat,
    recs: Vec<Record>,
    questions: &[Question],
) -> Result<Predictions, EvalError> {
    let ids: HashSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
    let mut by_text: HashMap<(String, String), VecDeque<&str>> = HashMap::new();
    for q in questions {
        by_text
            .entry((fold(&q.question), fold(&q.answer)))
            .or_default()
            .push_back(&q.id);
    }
    let mut by_id = BTreeMap::new();
    let mut unmatched = Vec::new();
    for r in recs {
        let id = match r.id.as_deref().filter(|id| ids.contains(id)) {
            Some(id) => Some(id.to_string()),
            None => match (&r.question, &r.answer) {
                (Some(q), Some(a)) => by_text
                    .get_mut(&(fold(q), fold(a)))
                    .and_then(|ids| ids.pop_front())
                    .map(str::to_string),
                _ => None,
            },
        };
        match id {
            Some(id) => {
                if by_id.insert(id.clone(), r.prediction).is_some() {
                    return Err(EvalError::format(
                        path,
                        format!("{}: question {id:?} is answered twice", r.at),
                    ));
                }
            }
            None => unmatched.push(r.id.map(|id| format!("id {id}")).unwrap_or(r.at)),
        }
    }
    Ok(Predictions {
        format,
        by_id,
        unmatched,
    })
}

/// Reads a predictions file written by medvqa or another toolkit (`format`: `None` detects
/// it) and keys its answers by the ids of `questions`.
pub fn read_predictions(
    path: &Path,
    format: Option<PredictionFormat>,
    questions: &[Question],
) -> Result<Predictions, EvalError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "xlsx" || ext == "xls" {
        return Err(xlsx_error(path));
    }
    let content = fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let format = match format {
        Some(f) => f,
        None => detect_format(path, &content)?,
    };
    let recs = records(path, &content, format)?;
    resolve(path, format, recs, questions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AnswerType;
    use std::collections::BTreeMap as Map;

    fn q(id: &str, question: &str, answer: &str) -> Question {
        Question {
            id: id.into(),
            images: vec![],
            question: question.into(),
            answer: answer.into(),
            answer_type: AnswerType::Closed,
            options: vec![],
            question_type: None,
            modality: None,
            body_system_native: None,
            body_system: None,
            split: None,
            lang: None,
            extra: Map::new(),
        }
    }

    fn questions() -> Vec<Question> {
        vec![
            q("0", "Is this a CT?", "Yes"),
            q("1", "Is this a CT?", "Yes"),
            q("2", "Where is the lesion?", "left lung"),
        ]
    }

    fn read(
        name: &str,
        content: &str,
        format: Option<PredictionFormat>,
    ) -> Result<Predictions, EvalError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, content).unwrap();
        read_predictions(&path, format, &questions())
    }

    #[test]
    fn medvqa_jsonl_with_int_and_string_ids() {
        let p = read(
            "p.jsonl",
            "{\"id\": 0, \"prediction\": \"yes\"}\n\n{\"id\": \"2\", \"prediction\": null}\n",
            None,
        )
        .unwrap();
        assert_eq!(p.format, PredictionFormat::Medvqa);
        assert_eq!(p.by_id["0"], "yes");
        assert_eq!(p.by_id["2"], "");
        assert!(p.unmatched.is_empty());
    }

    #[test]
    fn medvqa_jsonl_errors_name_the_line() {
        let e = read(
            "p.jsonl",
            "{\"id\": 0, \"prediction\": \"yes\"}\n{\"id\": 0, \"prediction\": \"no\"}\n",
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: id \"0\" already answered on line 1"),
            "{e}"
        );
        let e = read(
            "p.jsonl",
            "{\"id\": 0, \"prediction\": \"yes\"}\n{\"id\": 1, \"prediction\"\n",
            Some(PredictionFormat::Medvqa),
        )
        .unwrap_err();
        assert!(e.to_string().contains(":2: invalid JSON"), "{e}");
        let e = read("p.jsonl", "{\"id\": 0}\n", Some(PredictionFormat::Medvqa)).unwrap_err();
        assert!(e.to_string().contains("no \"prediction\""), "{e}");
    }

    #[test]
    fn lmms_eval_samples() {
        // Shapes from lmms-eval's --log_samples output: doc with qid, target, nested resps.
        let content = concat!(
            "{\"doc_id\": 0, \"doc\": {\"qid\": 2, \"question\": \"Where is the lesion?\"}, \"target\": \"left lung\", ",
            "\"resps\": [[\"Left lung.\"]], \"filtered_resps\": [\"Left lung\"]}\n",
            // No doc: the SLAKE metric record carries the id.
            "{\"doc_id\": 1, \"target\": \"Yes\", \"resps\": [[\"yes\"]], \"slake_accuracy\": {\"id\": \"1\", \"prediction\": \"yes\"}}\n",
        );
        let p = read("samples_slake.jsonl", content, None).unwrap();
        assert_eq!(p.format, PredictionFormat::LmmsEval);
        assert_eq!(p.by_id["2"], "Left lung");
        assert_eq!(p.by_id["1"], "yes");
    }

    #[test]
    fn vlmevalkit_tsv_matches_foreign_index_by_text() {
        let content = "index\tquestion\tanswer\tprediction\n\
                       17\tIs this a CT?\tYes\tYes.\n\
                       18\tIs  this a ct?\tyes\t\"No, it is \"\"MRI\"\"\tsee\"\n\
                       19\tWhat organ?\tliver\tliver\n";
        let p = read("m_VQA_RAD.tsv", content, None).unwrap();
        assert_eq!(p.format, PredictionFormat::VlmEvalKit);
        // Repeated (question, answer) pairs map in file order to dataset order.
        assert_eq!(p.by_id["0"], "Yes.");
        assert_eq!(p.by_id["1"], "No, it is \"MRI\"\tsee");
        assert_eq!(p.unmatched, vec!["id 19".to_string()]);
        let e = read("m.xlsx", "", None).unwrap_err();
        assert!(e.to_string().contains("PRED_FORMAT=tsv"), "{e}");
    }

    #[test]
    fn medevalkit_results_json_without_ids() {
        let content = r#"[{"question": "Where is the lesion?", "answer": "left lung", "response": "\\boxed{left lung}"},
                          {"question": "Is this a CT?", "answer": "yes", "response": "yes", "lang": "en"}]"#;
        let p = read("results.json", content, None).unwrap();
        assert_eq!(p.format, PredictionFormat::MedEvalKit);
        assert_eq!(
            p.by_id["2"], "\\boxed{left lung}",
            "raw response kept: the protocol extracts"
        );
        assert_eq!(p.by_id["0"], "yes");
    }

    #[test]
    fn unknown_format_is_named() {
        let e = read("p.jsonl", "{\"foo\": 1}\n", None).unwrap_err();
        assert!(e.to_string().contains("unknown predictions format"), "{e}");
        assert!("nope".parse::<PredictionFormat>().is_err());
        assert_eq!(
            "lmms-eval".parse::<PredictionFormat>().unwrap(),
            PredictionFormat::LmmsEval
        );
    }
}
