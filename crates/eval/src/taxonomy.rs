//! The common body-system taxonomy: coarse anatomical regions, and the mapping of each
//! dataset's native labels (VQA-RAD `image_organ`, SLAKE `location`, free JSONL labels) onto
//! them, so that accuracy per body system compares across datasets.
//!
//! The bundled mapping is `datasets/body_systems.json`; users pass their own file of the same
//! shape with [`Taxonomy::from_file`]. Shape:
//!
//! ```json
//! { "systems": { "chest": "Chest: lungs, heart" },
//!   "mappings": { "slake": { "Lung": "chest" }, "*": { "lung": "chest" } } }
//! ```
//!
//! Lookup of a native label for a dataset: that dataset's section, then the `*` section, each
//! matched case-insensitively after trimming; a native label that already is a common system
//! id maps to itself. Labels with no mapping stay unmapped (`None`), never guessed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::EvalError;
use crate::types::Question;

/// The mapping bundled with medvqa.
const BUILTIN: &str = include_str!("../../../datasets/body_systems.json");

/// Section of the mapping that applies to every dataset.
const ANY_DATASET: &str = "*";

#[derive(Deserialize)]
struct TaxonomyFile {
    systems: BTreeMap<String, String>,
    #[serde(default)]
    mappings: BTreeMap<String, BTreeMap<String, String>>,
}

/// A body-system taxonomy with its per-dataset label mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct Taxonomy {
    /// Common system id → human description.
    systems: BTreeMap<String, String>,
    /// Dataset name → (lowercased native label → common system id).
    mappings: BTreeMap<String, BTreeMap<String, String>>,
}

impl Taxonomy {
    /// The taxonomy bundled in `datasets/body_systems.json`.
    pub fn builtin() -> Taxonomy {
        // The bundled file is checked by the `builtin_taxonomy_is_valid` test, so a parse
        // failure here is a build defect, not a user error.
        Taxonomy::from_json_str(BUILTIN, Path::new("datasets/body_systems.json"))
            .expect("bundled datasets/body_systems.json is valid")
    }

    /// Reads a user mapping file of the same shape as `datasets/body_systems.json`.
    pub fn from_file(path: &Path) -> Result<Taxonomy, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        Taxonomy::from_json_str(&text, path)
    }

    /// Parses a mapping; `origin` names the file in errors. Every mapping target must be a
    /// declared system.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Taxonomy, EvalError> {
        let file: TaxonomyFile = serde_json::from_str(text).map_err(|e| EvalError::Json {
            path: origin.to_path_buf(),
            source: e,
        })?;
        if file.systems.is_empty() {
            return Err(EvalError::format(
                origin,
                "`systems` declares no body system",
            ));
        }
        let mut mappings = BTreeMap::new();
        for (dataset, labels) in file.mappings {
            let mut lowered = BTreeMap::new();
            for (native, common) in labels {
                if !file.systems.contains_key(&common) {
                    return Err(EvalError::format(
                        origin,
                        format!(
                            "mapping {dataset:?}: label {native:?} maps to {common:?}, which is not declared in `systems`"
                        ),
                    ));
                }
                lowered.insert(native.trim().to_lowercase(), common);
            }
            mappings.insert(dataset, lowered);
        }
        Ok(Taxonomy {
            systems: file.systems,
            mappings,
        })
    }

    /// The common systems, id → description.
    pub fn systems(&self) -> &BTreeMap<String, String> {
        &self.systems
    }

    /// The common system of `native` as labelled in `dataset`, if the taxonomy knows it.
    pub fn map(&self, dataset: &str, native: &str) -> Option<&str> {
        let key = native.trim().to_lowercase();
        if key.is_empty() {
            return None;
        }
        for section in [dataset, ANY_DATASET] {
            if let Some(common) = self.mappings.get(section).and_then(|m| m.get(&key)) {
                return Some(common.as_str());
            }
        }
        self.systems.get_key_value(&key).map(|(id, _)| id.as_str())
    }

    /// Sets `body_system` of every question from its `body_system_native` label.
    pub fn apply(&self, dataset: &str, questions: &mut [Question]) {
        for q in questions {
            q.body_system = q
                .body_system_native
                .as_deref()
                .and_then(|native| self.map(dataset, native))
                .map(str::to_owned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_taxonomy_is_valid() {
        let t = Taxonomy::from_json_str(BUILTIN, Path::new("body_systems.json"))
            .expect("bundled taxonomy parses");
        assert!(t.systems().contains_key("chest"));
    }

    #[test]
    fn dataset_section_then_generic_then_identity() {
        let t = Taxonomy::builtin();
        assert_eq!(t.map("vqa-rad", "ABD"), Some("abdomen"));
        assert_eq!(t.map("slake", " pelvic cavity "), Some("pelvis"));
        // Not in the JSONL section, found in the generic one.
        assert_eq!(t.map("jsonl", "Lung"), Some("chest"));
        // Already a common id.
        assert_eq!(t.map("jsonl", "head_and_neck"), Some("head_and_neck"));
        assert_eq!(t.map("slake", "Elbow of a robot"), None);
        assert_eq!(t.map("slake", ""), None);
    }

    #[test]
    fn user_file_with_unknown_target_is_rejected_with_its_name() {
        let text = r#"{"systems": {"chest": "Chest"}, "mappings": {"x": {"Lung": "thorax"}}}"#;
        let err = Taxonomy::from_json_str(text, Path::new("mine.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mine.json") && msg.contains("thorax"), "{msg}");
    }

    #[test]
    fn user_file_is_read_from_disk() {
        let dir = std::env::temp_dir().join(format!("medvqa-tax-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("map.json");
        std::fs::write(
            &path,
            r#"{"systems": {"thorax": "Thorax"}, "mappings": {"slake": {"Lung": "thorax"}}}"#,
        )
        .expect("write");
        let t = Taxonomy::from_file(&path).expect("loads");
        assert_eq!(t.map("slake", "lung"), Some("thorax"));
        assert!(Taxonomy::from_file(&dir.join("missing.json")).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
