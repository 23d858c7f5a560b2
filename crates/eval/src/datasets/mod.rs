//! Dataset readers: each turns a dataset's own annotation files into [`Question`]s with every
//! label the breakdowns need (modality, native and common body system, question type,
//! answer type), so scoring never looks at a dataset's raw format again.
//!
//! ```no_run
//! use medvqa_eval::datasets::{load, Dataset, Lang};
//! let questions = load(Dataset::VqaRad, "VQA_RAD Dataset Public.json".as_ref(), "test", Lang::En)?;
//! assert_eq!(questions.len(), 451);
//! # Ok::<(), medvqa_eval::error::EvalError>(())
//! ```
//!
//! Every question carries `extra["dataset"]` = the dataset's name ([`Dataset::name`]): some
//! toolkits score the same answers differently per dataset (see `docs/protocols.md`).

mod jsonl;
mod omnimedvqa;
mod pathvqa;
mod slake;
mod vqa_rad;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::error::EvalError;
use crate::taxonomy::Taxonomy;
use crate::types::Question;

pub use vqa_rad::derive_modality as vqa_rad_derive_modality;

/// The key of `Question::extra` that names the dataset a question came from.
pub const DATASET_KEY: &str = "dataset";

/// The datasets medvqa reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// VQA-RAD (Lau et al. 2018), official JSON `VQA_RAD Dataset Public.json`.
    VqaRad,
    /// SLAKE 1.0 (Liu et al. 2021), `train.json` / `validate.json` / `test.json`.
    Slake,
    /// PathVQA (He et al. 2020), LXMERT-style `pvqa_{split}.json`.
    PathVqa,
    /// OmniMedVQA (Hu et al. 2024), `QA_information` JSON files.
    OmniMedVqa,
    /// The generic JSONL format of `datasets/jsonl-format.md`.
    Jsonl,
}

impl Dataset {
    /// Every dataset, in the order the CLI lists them.
    pub const ALL: [Dataset; 5] = [
        Dataset::VqaRad,
        Dataset::Slake,
        Dataset::PathVqa,
        Dataset::OmniMedVqa,
        Dataset::Jsonl,
    ];

    /// The name users pass to `--dataset` and that results carry.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::VqaRad => "vqa-rad",
            Dataset::Slake => "slake",
            Dataset::PathVqa => "pathvqa",
            Dataset::OmniMedVqa => "omnimedvqa",
            Dataset::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_lowercase();
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == wanted || d.name().replace('-', "_") == wanted)
            .ok_or_else(|| EvalError::Invalid {
                what: "dataset",
                value: s.to_owned(),
                reason: format!(
                    "expected one of {}",
                    Dataset::ALL.map(Dataset::name).join(", ")
                ),
            })
    }
}

/// Question language filter (SLAKE has English and Chinese rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Zh,
    All,
}

impl Lang {
    /// Whether a row in language `code` passes the filter.
    pub fn accepts(self, code: &str) -> bool {
        match self {
            Lang::All => true,
            Lang::En => code.eq_ignore_ascii_case("en"),
            Lang::Zh => code.eq_ignore_ascii_case("zh"),
        }
    }
}

impl FromStr for Lang {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "en" => Ok(Lang::En),
            "zh" => Ok(Lang::Zh),
            "all" => Ok(Lang::All),
            _ => Err(EvalError::Invalid {
                what: "language",
                value: s.to_owned(),
                reason: "expected en, zh or all".to_owned(),
            }),
        }
    }
}

/// Reads `split` of `dataset` from `annotations` (a file or the dataset's folder, see each
/// reader) and maps body systems with the bundled taxonomy.
///
/// `split` is `test`, `train`, `validate`/`val` or `all` as the dataset has them; `lang` filters
/// SLAKE rows (other datasets are English only and ignore it).
pub fn load(
    dataset: Dataset,
    annotations: &Path,
    split: &str,
    lang: Lang,
) -> Result<Vec<Question>, EvalError> {
    load_with_taxonomy(dataset, annotations, split, lang, &Taxonomy::builtin())
}

/// [`load`] with a user body-system mapping ([`Taxonomy::from_file`]).
pub fn load_with_taxonomy(
    dataset: Dataset,
    annotations: &Path,
    split: &str,
    lang: Lang,
    taxonomy: &Taxonomy,
) -> Result<Vec<Question>, EvalError> {
    let split = split.trim().to_lowercase();
    let mut questions = match dataset {
        Dataset::VqaRad => vqa_rad::load(annotations, &split)?,
        Dataset::Slake => slake::load(annotations, &split, lang)?,
        Dataset::PathVqa => pathvqa::load(annotations, &split)?,
        Dataset::OmniMedVqa => omnimedvqa::load(annotations, &split)?,
        Dataset::Jsonl => jsonl::load(annotations, &split, lang)?,
    };
    for q in &mut questions {
        q.extra
            .entry(DATASET_KEY.to_owned())
            .or_insert_with(|| dataset.name().to_owned());
    }
    taxonomy.apply(dataset.name(), &mut questions);
    Ok(questions)
}

/// Reads and parses a whole JSON file.
fn read_json(path: &Path) -> Result<Value, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// A file inside `path` when `path` is a folder, else `path` itself.
fn file_in(path: &Path, name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(name)
    } else {
        path.to_path_buf()
    }
}

/// A scalar JSON value as text: strings as they are, numbers and booleans printed (VQA-RAD
/// stores some ids and answers as integers).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A required scalar field of a JSON object, with an error naming the file, the row and the
/// field.
fn required_text(
    row: &serde_json::Map<String, Value>,
    field: &str,
    path: &Path,
    row_name: &str,
) -> Result<String, EvalError> {
    row.get(field).and_then(scalar_text).ok_or_else(|| {
        EvalError::format(
            path,
            format!("{row_name}: field {field:?} is missing or not a string/number"),
        )
    })
}

/// An optional scalar field, trimmed, `None` when missing, empty or not a scalar.
fn optional_text(row: &serde_json::Map<String, Value>, field: &str) -> Option<String> {
    row.get(field)
        .and_then(scalar_text)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Parses a dataset's OPEN/CLOSED answer type, tolerating case and surrounding spaces
/// (VQA-RAD has `"CLOSED "`).
fn open_closed(
    raw: &str,
    path: &Path,
    row_name: &str,
) -> Result<crate::types::AnswerType, EvalError> {
    match raw.trim().to_uppercase().as_str() {
        "OPEN" => Ok(crate::types::AnswerType::Open),
        "CLOSED" => Ok(crate::types::AnswerType::Closed),
        _ => Err(EvalError::format(
            path,
            format!("{row_name}: answer_type {raw:?} is neither OPEN nor CLOSED"),
        )),
    }
}

/// The error for a split a dataset does not have.
fn unknown_split(dataset: Dataset, split: &str, known: &str) -> EvalError {
    EvalError::Invalid {
        what: "split",
        value: split.to_owned(),
        reason: format!("{dataset} has {known}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Dataset::ALL {
            assert_eq!(d.name().parse::<Dataset>().expect("parses"), d);
        }
        assert_eq!(
            "VQA_RAD".parse::<Dataset>().expect("parses"),
            Dataset::VqaRad
        );
        let err = "vqa-med".parse::<Dataset>().unwrap_err().to_string();
        assert!(err.contains("vqa-med") && err.contains("slake"), "{err}");
    }

    #[test]
    fn lang_filter() {
        assert!(Lang::En.accepts("EN"));
        assert!(!Lang::En.accepts("zh"));
        assert!(Lang::All.accepts("zh"));
        assert!("fr".parse::<Lang>().is_err());
    }
}
