//! Dataset readers on the real annotation files in `../shared/fixtures/vqa/` (skipped with a
//! message when absent) and on the small fixtures of `tests/fixtures/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use medvqa_eval::datasets::{load, load_with_taxonomy, Dataset, Lang};
use medvqa_eval::taxonomy::Taxonomy;
use medvqa_eval::AnswerType;

fn shared_vqa() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/vqa");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} is absent", dir.display());
        None
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn vqa_rad_official_test_split() {
    let Some(dir) = shared_vqa() else { return };
    let path = dir.join("vqa_rad/VQA_RAD Dataset Public.json");
    let qs = load(Dataset::VqaRad, &path, "test", Lang::En).expect("VQA-RAD loads");
    assert_eq!(qs.len(), 451);
    let images: BTreeSet<_> = qs.iter().map(|q| q.images[0].clone()).collect();
    assert_eq!(images.len(), 203);
    // The folder works as well as the file.
    let from_dir = load(Dataset::VqaRad, &dir.join("vqa_rad"), "test", Lang::En).expect("dir");
    assert_eq!(from_dir.len(), 451);
    let all = load(Dataset::VqaRad, &path, "all", Lang::En).expect("all");
    assert_eq!(all.len(), 2248);
    // The one string qid and the two "CLOSED " rows are read.
    assert!(all.iter().any(|q| q.id == "0"));
    let closed = all
        .iter()
        .filter(|q| q.answer_type == AnswerType::Closed)
        .count();
    assert_eq!(closed, 1297 + 2);
    for q in &qs {
        assert_eq!(q.split.as_deref(), Some("test"));
        let organ = q.body_system_native.as_deref().expect("organ");
        let modality = q.modality.as_deref().expect("modality");
        match organ {
            "CHEST" => assert_eq!(q.body_system.as_deref(), Some("chest")),
            "ABD" => assert_eq!(q.body_system.as_deref(), Some("abdomen")),
            "HEAD" => assert_eq!(q.body_system.as_deref(), Some("head_and_neck")),
            other => panic!("unexpected organ {other}"),
        }
        if q.extra.get("modality_source").map(String::as_str) == Some("organ") {
            let expected = match organ {
                "CHEST" => "X-Ray",
                "ABD" => "CT",
                _ => "CT or MRI",
            };
            assert_eq!(modality, expected, "{}", q.id);
        }
        assert_eq!(q.extra.get("dataset").map(String::as_str), Some("vqa-rad"));
    }
    // MODALITY questions resolve some head images to MRI.
    assert!(qs.iter().any(|q| q.modality.as_deref() == Some("MRI")));
    let mut by_modality: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for q in &qs {
        let key = (
            q.body_system_native.clone().unwrap_or_default(),
            q.modality.clone().unwrap_or_default(),
        );
        by_modality.entry(key).or_default().insert(q.images[0].clone());
    }
    for ((organ, modality), images) in &by_modality {
        eprintln!("VQA-RAD test: {organ} {modality}: {} images", images.len());
    }
}

#[test]
fn slake_english_test_and_languages() {
    let Some(dir) = shared_vqa() else { return };
    let slake = dir.join("slake");
    let en = load(Dataset::Slake, &slake, "test", Lang::En).expect("SLAKE loads");
    assert_eq!(en.len(), 1061);
    let images: BTreeSet<_> = en.iter().map(|q| q.images[0].clone()).collect();
    assert_eq!(images.len(), 96);
    let all = load(Dataset::Slake, &slake, "test", Lang::All).expect("all");
    let zh = load(Dataset::Slake, &slake, "test", Lang::Zh).expect("zh");
    assert_eq!(all.len(), en.len() + zh.len());
    assert!(zh.iter().all(|q| q.lang.as_deref() == Some("zh")));
    // Every SLAKE location maps into the common taxonomy.
    for q in &all {
        assert!(
            q.body_system.is_some(),
            "unmapped location {:?}",
            q.body_system_native
        );
        assert!(matches!(
            q.modality.as_deref(),
            Some("CT" | "MRI" | "X-Ray")
        ));
    }
    let val = load(Dataset::Slake, &slake, "validate", Lang::En).expect("validate");
    assert!(!val.is_empty());
    assert!(load(Dataset::Slake, &slake, "dev", Lang::En).is_err());
}

#[test]
fn pathvqa_test_questions() {
    let Some(dir) = shared_vqa() else { return };
    let qs = load(Dataset::PathVqa, &dir.join("pathvqa"), "test", Lang::En).expect("PathVQA");
    assert_eq!(qs.len(), 6761);
    let closed = qs
        .iter()
        .filter(|q| q.answer_type == AnswerType::Closed)
        .count();
    assert!(closed > 0 && closed < qs.len());
    let q = qs
        .iter()
        .find(|q| q.id == "test_0001_0")
        .expect("first question");
    assert_eq!(q.answer, "squamous cell carcinoma");
    assert_eq!(q.images, vec!["test_0001.jpg".to_owned()]);
    assert_eq!(q.modality.as_deref(), Some("Pathology"));
}

#[test]
fn omnimedvqa_fixture_from_documented_schema() {
    let qs = load(
        Dataset::OmniMedVqa,
        &fixture("omnimedvqa/omnimedvqa_sample.json"),
        "test",
        Lang::En,
    )
    .expect("OmniMedVQA fixture loads");
    assert_eq!(qs.len(), 2);
    assert_eq!(qs[0].answer_type, AnswerType::MultipleChoice);
    assert_eq!(qs[0].options.len(), 4);
    assert_eq!(
        qs[0].extra.get("answer_letter").map(String::as_str),
        Some("A")
    );
    assert_eq!(qs[1].id, "17");
    assert_eq!(qs[1].options, vec!["MR".to_owned(), "CT".to_owned()]);
    assert_eq!(
        qs[1].extra.get("answer_letter").map(String::as_str),
        Some("B")
    );
    // The release's one `modality` spelling is read too.
    assert_eq!(qs[1].modality.as_deref(), Some("CT(Computed Tomography)"));
    // A folder is read recursively.
    let dir = load(Dataset::OmniMedVqa, &fixture("omnimedvqa"), "all", Lang::En).expect("folder");
    assert_eq!(dir.len(), 2);
}

#[test]
fn jsonl_generic_format() {
    let path = fixture("sample.jsonl");
    let qs = load(Dataset::Jsonl, &path, "test", Lang::En).expect("JSONL loads");
    assert_eq!(qs.len(), 2, "the train row is filtered out");
    assert_eq!(qs[0].images.len(), 2);
    assert_eq!(qs[0].answer_type, AnswerType::MultipleChoice);
    assert_eq!(
        qs[0].extra.get("organ_detail").map(String::as_str),
        Some("colon")
    );
    assert_eq!(qs[0].body_system.as_deref(), Some("abdomen"));
    assert_eq!(qs[1].id, "2");
    assert_eq!(qs[1].answer_type, AnswerType::Closed);
    assert_eq!(qs[1].body_system.as_deref(), Some("lower_limb"));
    assert_eq!(
        load(Dataset::Jsonl, &path, "all", Lang::All)
            .expect("all")
            .len(),
        3
    );
}

#[test]
fn jsonl_errors_name_file_and_line() {
    let dir = std::env::temp_dir().join(format!("medvqa-jsonl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"id\": 1, \"question\": \"q\", \"answer\": \"a\"}\n{\"id\": 2}\n",
    )
    .expect("write");
    let err = load(Dataset::Jsonl, &path, "all", Lang::All)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl:2") && err.contains("question"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn user_taxonomy_overrides_builtin() {
    let Some(dir) = shared_vqa() else { return };
    let tax_path = std::env::temp_dir().join(format!("medvqa-tax-it-{}.json", std::process::id()));
    std::fs::write(
        &tax_path,
        r#"{"systems": {"neuro": "Neuro", "body": "Body"},
            "mappings": {"vqa-rad": {"HEAD": "neuro", "CHEST": "body", "ABD": "body"}}}"#,
    )
    .expect("write");
    let tax = Taxonomy::from_file(&tax_path).expect("user taxonomy");
    let qs = load_with_taxonomy(
        Dataset::VqaRad,
        &dir.join("vqa_rad"),
        "test",
        Lang::En,
        &tax,
    )
    .expect("loads");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for q in &qs {
        *counts
            .entry(q.body_system.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        vec!["body", "neuro"]
    );
    std::fs::remove_file(&tax_path).ok();
}

#[test]
fn missing_file_error_names_it() {
    let err = load(
        Dataset::Slake,
        Path::new("/nonexistent/slake"),
        "test",
        Lang::En,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/nonexistent/slake") && err.contains("No such file"),
        "{err}"
    );
}
