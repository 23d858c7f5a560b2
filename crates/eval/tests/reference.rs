//! Our named protocols against the numbers the toolkits' own scoring code produced on the same
//! crafted predictions (`tools/eval_reference/`, fixtures in `tests/fixtures/reference/`).
//! Needs the real VQA-RAD and SLAKE annotations in `../shared/fixtures/vqa/` (skipped with a
//! message when absent). Every number is compared for exact `f64` equality except
//! MultiMedEval's BLEU, which the toolkit computes with torch's float32 `log`/`exp` (within one
//! float32 ulp per question, see `docs/protocols.md`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use medvqa_eval::datasets::{load, Dataset, Lang};
use medvqa_eval::protocols::{protocol_by_name, OUTCOME_TOOLKIT_ERROR};
use medvqa_eval::{Judgement, Question};
use serde_json::Value;

fn shared_vqa() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/vqa");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} is absent", dir.display());
        None
    }
}

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (questions, judgements, reference) for one toolkit on one dataset, or None when skipped.
fn run(toolkit: &str, key: &str) -> Option<(Vec<Question>, Vec<Judgement>, Value)> {
    let dir = shared_vqa()?;
    let questions = match key {
        "vqa_rad_test" => load(Dataset::VqaRad, &dir.join("vqa_rad"), "test", Lang::En),
        "slake_en_test" => load(Dataset::Slake, &dir.join("slake"), "test", Lang::En),
        _ => panic!("unknown dataset key {key}"),
    }
    .expect("dataset loads");
    let preds_path = reference_dir().join(format!("{key}_predictions.jsonl"));
    let preds_text = std::fs::read_to_string(&preds_path).expect("predictions fixture");
    let preds: HashMap<String, String> = preds_text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("prediction line");
            (
                v["id"].as_str().expect("id").to_owned(),
                v["prediction"].as_str().expect("prediction").to_owned(),
            )
        })
        .collect();
    let protocol = protocol_by_name(toolkit).expect("protocol exists");
    let judgements: Vec<Judgement> = questions
        .iter()
        .map(|q| {
            protocol.judge(
                q,
                preds
                    .get(&q.id)
                    .unwrap_or_else(|| panic!("no prediction for {}", q.id)),
            )
        })
        .collect();
    let reference = read_json(&reference_dir().join(format!("{toolkit}_{key}.json")));
    assert_eq!(reference["n"].as_u64(), Some(questions.len() as u64));
    Some((questions, judgements, reference))
}

/// The number at `path` (keys joined by " > ").
fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for part in path.split(" > ") {
        cur = &cur[part];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("reference has no number at {path}"))
}

fn pairs<'a>(qs: &'a [Question], js: &'a [Judgement]) -> Vec<(&'a Question, &'a Judgement)> {
    qs.iter().zip(js).collect()
}

fn llava_med(key: &str) {
    let Some((qs, js, reference)) = run("llava-med", key) else {
        return;
    };
    for (q, j) in qs.iter().zip(&js) {
        let item = &reference["items"][&q.id];
        match &j.open {
            Some(m) => {
                for (name, ours) in [
                    ("exact_match", m.exact_match),
                    ("f1", m.f1),
                    ("precision", m.precision),
                    ("recall", m.recall),
                    ("bleu1", m.bleu1),
                ] {
                    assert_eq!(
                        ours * 100.0,
                        num(item, name),
                        "{key} {} {name}: {:?}",
                        q.id,
                        j
                    );
                }
            }
            None => {
                let ours = if j.correct { 100.0 } else { 0.0 };
                assert_eq!(
                    ours,
                    num(item, "closed_hit"),
                    "{key} {} closed: {:?}",
                    q.id,
                    j
                );
            }
        }
    }
    let protocol = protocol_by_name("llava-med").expect("protocol");
    let agg = protocol.aggregate(&pairs(&qs, &js));
    let r = &reference["aggregate"];
    assert_eq!(agg.closed_accuracy * 100.0, num(r, "yes/no accuracy"));
    assert_eq!(agg.open.exact_match * 100.0, num(r, "exact match score"));
    assert_eq!(agg.open.f1 * 100.0, num(r, "f1 score"));
    assert_eq!(agg.open.precision * 100.0, num(r, "precision"));
    assert_eq!(agg.open.recall * 100.0, num(r, "recall"));
    assert_eq!(agg.open.bleu1 * 100.0, num(r, "bleu_score_1"));
    assert_eq!(
        agg.extra["open_accuracy_candidates"] * 100.0,
        num(r, "open accuracy")
    );
}

#[test]
fn llava_med_vqa_rad() {
    llava_med("vqa_rad_test");
}

#[test]
fn llava_med_slake_en() {
    llava_med("slake_en_test");
}

fn medevalkit(key: &str) {
    let Some((qs, js, reference)) = run("medevalkit", key) else {
        return;
    };
    let expected_errors: BTreeSet<String> = reference["toolkit_errors"]
        .as_object()
        .expect("toolkit_errors")
        .keys()
        .cloned()
        .collect();
    let our_errors: BTreeSet<String> = qs
        .iter()
        .zip(&js)
        .filter(|(_, j)| j.outcome.as_deref() == Some(OUTCOME_TOOLKIT_ERROR))
        .map(|(q, _)| q.id.clone())
        .collect();
    assert_eq!(
        our_errors, expected_errors,
        "{key}: questions the toolkit cannot score"
    );
    for (q, j) in qs.iter().zip(&js) {
        if our_errors.contains(&q.id) {
            continue;
        }
        let item = &reference["items"][&q.id];
        assert_eq!(
            Some(j.correct),
            item["correct"].as_bool(),
            "{key} {}: {:?}",
            q.id,
            j
        );
        if let Some(m) = &j.open {
            for (name, ours) in [
                ("bleu1", m.bleu1),
                ("precision", m.precision),
                ("recall", m.recall),
                ("f1", m.f1),
            ] {
                assert_eq!(ours, num(item, name), "{key} {} {name}: {:?}", q.id, j);
            }
        } else {
            assert!(
                item.get("bleu1").is_none(),
                "{key} {}: toolkit scored it as open",
                q.id
            );
        }
    }
    let protocol = protocol_by_name("medevalkit").expect("protocol");
    let agg = protocol.aggregate(&pairs(&qs, &js));
    let r = &reference["aggregate"];
    assert_eq!(agg.n as f64, num(r, "total metrics > total"));
    assert_eq!(agg.overall, num(r, "total metrics > acc"));
    assert_eq!(agg.closed_n as f64, num(r, "close > total"));
    assert_eq!(agg.closed_accuracy, num(r, "close > acc"));
    assert_eq!(agg.open_n as f64, num(r, "open > total"));
    assert_eq!(agg.open.exact_match, num(r, "open > em"));
    assert_eq!(agg.open.bleu1, num(r, "open > bleu1"));
    assert_eq!(agg.open.precision, num(r, "open > precision"));
    assert_eq!(agg.open.recall, num(r, "open > recall"));
    assert_eq!(agg.open.f1, num(r, "open > f1"));
    assert_eq!(agg.extra["open_acc_as_reported"], num(r, "open > acc"));
    assert_eq!(agg.extra["toolkit_errors"], expected_errors.len() as f64);
}

#[test]
fn medevalkit_vqa_rad() {
    medevalkit("vqa_rad_test");
}

#[test]
fn medevalkit_slake_en() {
    medevalkit("slake_en_test");
}

#[test]
fn lmms_eval_slake_en() {
    let Some((qs, js, reference)) = run("lmms-eval", "slake_en_test") else {
        return;
    };
    for (q, j) in qs.iter().zip(&js) {
        let item = &reference["items"][&q.id];
        assert_eq!(
            Some(j.correct),
            item["correct"].as_bool(),
            "{}: {:?}",
            q.id,
            j
        );
        assert_eq!(
            Some(j.prediction_normalized.as_str()),
            item["prediction_normalized"].as_str(),
            "{}",
            q.id
        );
        assert_eq!(
            Some(j.gold_normalized.as_str()),
            item["target_normalized"].as_str(),
            "{}",
            q.id
        );
    }
    let protocol = protocol_by_name("lmms-eval").expect("protocol");
    let agg = protocol.aggregate(&pairs(&qs, &js));
    let r = &reference["aggregate"];
    assert_eq!(agg.overall, num(r, "slake_accuracy"));
    assert_eq!(agg.open_accuracy, num(r, "slake_open_accuracy"));
    assert_eq!(agg.closed_accuracy, num(r, "slake_closed_accuracy"));
}

/// One float32 ulp at `x` (torch's float32 `log`/`exp` against the C library's).
fn f32_ulp(x: f64) -> f64 {
    let f = x as f32;
    f64::from(f32::from_bits(f.to_bits() + 1) - f)
}

fn multimedeval(key: &str) {
    let Some((qs, js, reference)) = run("multimedeval", key) else {
        return;
    };
    let mut bleu_diffs = 0;
    for (q, j) in qs.iter().zip(&js) {
        let item = &reference["items"][&q.id];
        let m = j.open.expect("multimedeval scores every question's tokens");
        assert_eq!(m.f1, num(item, "f1"), "{key} {} f1: {:?}", q.id, j);
        assert_eq!(
            m.recall,
            num(item, "recall"),
            "{key} {} recall: {:?}",
            q.id,
            j
        );
        let theirs = num(item, "bleu1");
        if m.bleu1 != theirs {
            bleu_diffs += 1;
            assert!(
                (m.bleu1 - theirs).abs() <= f32_ulp(theirs),
                "{key} {} bleu {} vs {theirs}",
                q.id,
                m.bleu1
            );
        }
    }
    eprintln!(
        "{key}: {bleu_diffs} of {} BLEU values differ by one float32 ulp",
        qs.len()
    );
    let protocol = protocol_by_name("multimedeval").expect("protocol");
    let agg = protocol.aggregate(&pairs(&qs, &js));
    let r = &reference["aggregate"];
    assert_eq!(agg.extra["F1"], num(r, "F1"));
    assert_eq!(agg.extra["recall"], num(r, "recall"));
    if bleu_diffs == 0 {
        assert_eq!(agg.extra["bleu"], num(r, "bleu"));
    } else {
        assert!((agg.extra["bleu"] - num(r, "bleu")).abs() < 1e-9);
    }
    assert_eq!(
        agg.extra["closedQuestionsAccuracy"],
        num(r, "closedQuestionsAccuracy")
    );
    assert_eq!(
        agg.extra["openQuestionsRecall"],
        num(r, "openQuestionsRecall")
    );
    assert_eq!(
        agg.extra["openQuestionsAccuracy"],
        num(r, "openQuestionsAccuracy")
    );
}

#[test]
fn multimedeval_vqa_rad() {
    multimedeval("vqa_rad_test");
}

#[test]
fn multimedeval_slake_en() {
    multimedeval("slake_en_test");
}

/// Our own protocol on the same crafted predictions: the variants that only change case,
/// punctuation or articles are right, the traps ("abnormal" for "no", empty answers) are not.
#[test]
fn medvqa_rules_on_crafted_predictions() {
    for key in ["vqa_rad_test", "slake_en_test"] {
        let Some(dir) = shared_vqa() else { return };
        let questions = match key {
            "vqa_rad_test" => load(Dataset::VqaRad, &dir.join("vqa_rad"), "test", Lang::En),
            _ => load(Dataset::Slake, &dir.join("slake"), "test", Lang::En),
        }
        .expect("dataset loads");
        let text =
            std::fs::read_to_string(reference_dir().join(format!("{key}_predictions.jsonl")))
                .expect("predictions");
        let rows: HashMap<String, (String, String)> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("line");
                let s = |k: &str| v[k].as_str().expect(k).to_owned();
                (s("id"), (s("prediction"), s("variant")))
            })
            .collect();
        let protocol = protocol_by_name("medvqa").expect("default protocol");
        let mut judged = Vec::new();
        for q in &questions {
            let (prediction, variant) = &rows[&q.id];
            let j = protocol.judge(q, prediction);
            let gold = q.answer.trim().to_lowercase();
            let yes_no = gold == "yes" || gold == "no";
            if [
                "exact",
                "upper",
                "period",
                "capital_period",
                "exclaim",
                "parenthesised",
            ]
            .contains(&variant.as_str())
                && !(variant == "parenthesised" && q.answer.contains('('))
            {
                assert!(
                    j.correct,
                    "{key} {} {variant}: {prediction:?} vs {:?}",
                    q.id, q.answer
                );
            }
            if ["abnormal", "unknown", "empty", "blank", "yes_and_no"].contains(&variant.as_str())
                && yes_no
            {
                assert!(!j.correct, "{key} {} {variant}: {prediction:?}", q.id);
                assert!(j.outcome.is_some(), "{key} {} {variant}: outcome", q.id);
            }
            if variant == "not_seen" && yes_no {
                assert_eq!(j.correct, gold == "no", "{key} {}", q.id);
            }
            if variant == "article" {
                assert!(j.correct, "{key} {}: {prediction:?}", q.id);
            }
            judged.push(j);
        }
        let agg = protocol.aggregate(&pairs(&questions, &judged));
        eprintln!(
            "{key} medvqa: overall {:.4}, closed {:.4} (n {}), open {:.4} (n {}), open F1 {:.4}",
            agg.overall,
            agg.closed_accuracy,
            agg.closed_n,
            agg.open_accuracy,
            agg.open_n,
            agg.open.f1
        );
    }
}

/// MedEvalKit's multiple-choice judge (OmniMedVQA `cal_metrics`) on crafted answers to the
/// OmniMedVQA fixture: every path of `judge_multi_choice`, including the difflib fallback.
#[test]
fn medevalkit_omnimedvqa_multiple_choice() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let questions = load(
        Dataset::OmniMedVqa,
        &fixtures.join("omnimedvqa/omnimedvqa_sample.json"),
        "test",
        Lang::En,
    )
    .expect("fixture loads");
    let by_id: HashMap<&str, &Question> = questions.iter().map(|q| (q.id.as_str(), q)).collect();
    let reference = read_json(&reference_dir().join("medevalkit_omnimedvqa_mc.json"));
    let cases = std::fs::read_to_string(reference_dir().join("omnimedvqa_mc_predictions.jsonl"))
        .expect("cases");
    let protocol = protocol_by_name("medevalkit").expect("protocol");
    let items = reference["items"].as_array().expect("items");
    let mut judged = Vec::new();
    for (line, expected) in cases.lines().zip(items) {
        let case: Value = serde_json::from_str(line).expect("case");
        let id = case["id"].as_str().expect("id");
        let prediction = case["prediction"].as_str().expect("prediction");
        let q = by_id[id];
        let j = protocol.judge(q, prediction);
        assert_eq!(
            Some(j.correct),
            expected["correct"].as_bool(),
            "{id} {}: {prediction:?}",
            case["variant"]
        );
        judged.push((q.clone(), j));
    }
    assert_eq!(judged.len(), items.len());
    let pairs: Vec<(&Question, &Judgement)> = judged.iter().map(|(q, j)| (q, j)).collect();
    let agg = protocol.aggregate(&pairs);
    assert_eq!(agg.overall, num(&reference, "aggregate > acc"));
    assert_eq!(agg.closed_n, items.len());
}
