//! `medvqa ask` and `medvqa eval --model DIR` end to end on the tiny random checkpoints of
//! `crates/model/tests/fixtures/lm`: answers, token ids and option log-likelihoods equal to
//! transformers' for the same image files (`tools/parity/make_ask_fixtures.py`), clear errors,
//! DICOM series as slices, and a real VQA-RAD run (skipped when the shared fixture is absent).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn lm(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/lm").join(model)
}

fn ask_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ask")
}

fn ask_json(args: &[&str]) -> Value {
    let mut full = vec!["ask", "--device", "cpu", "--json"];
    full.extend_from_slice(args);
    let out = medvqa(&full);
    assert!(out.status.success(), "medvqa {full:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

#[test]
fn ask_matches_transformers_end_to_end() {
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(ask_fixtures().join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 8, "expected the 8 reference cases");
    for case in &cases {
        let model = lm(case["model"].as_str().unwrap());
        let images: Vec<String> = case["images"].as_array().unwrap().iter().map(|i| s(&ask_fixtures().join(i.as_str().unwrap())).to_string()).collect();
        let question = case["question"].as_str().unwrap();
        let max_new = case["max_new_tokens"].as_u64().unwrap_or(8).to_string();
        let mut args: Vec<&str> = vec!["--model", s(&model), "--max-new-tokens", &max_new, question, "--image"];
        args.extend(images.iter().map(String::as_str));
        let joined;
        match case["mode"].as_str().unwrap() {
            "yes_no" => args.push("--yes-no"),
            "lettered" => {
                joined = case["options"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect::<Vec<_>>().join("|");
                args.extend(["--options", &joined]);
            }
            _ => {}
        }
        let got = ask_json(&args);
        let label = format!("{} / {} / {}", case["model"], case["mode"], question);
        assert_eq!(got["prompt_tokens"].as_u64().unwrap() as usize, case["input_ids"].as_array().unwrap().len(), "{label}: prompt length");
        assert_eq!(got["answer"], case["answer"], "{label}: answer");
        assert_eq!(got["token_ids"], case["token_ids"], "{label}: token ids");
        if let Some(want) = case["option_scores"].as_array() {
            let have = got["option_scores"].as_array().expect("option_scores for a scored question");
            assert_eq!(have.len(), want.len(), "{label}");
            let mut total = 0.0;
            for (h, w) in have.iter().zip(want) {
                assert_eq!(h["option"], w["option"], "{label}");
                assert_eq!(h["continuation"], w["continuation"], "{label}");
                assert_eq!(h["tokens"], w["tokens"], "{label}");
                let (a, b) = (h["log_likelihood"].as_f64().unwrap(), w["log_likelihood"].as_f64().unwrap());
                assert!((a - b).abs() <= 1e-4 + 1e-5 * b.abs(), "{label}: {} log-likelihood {a} vs {b}", h["option"]);
                total += h["probability"].as_f64().unwrap();
            }
            assert!((total - 1.0).abs() < 1e-9, "{label}: probabilities sum to {total}");
        } else {
            assert!(got["option_scores"].is_null(), "{label}");
        }
    }
}

#[test]
fn ask_takes_a_ct_series_as_numbered_slices() {
    let series = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample/ct");
    let got = ask_json(&["--model", s(&lm("gemma3_vlm")), "--image", s(&series), "--max-slices", "4", "--max-new-tokens", "3", "Is there a lesion?"]);
    // Four sampled slices, each expanded to the model's image tokens.
    assert_eq!(got["images"], 4, "{got}");
    let scored = ask_json(&["--model", s(&lm("gemma3_vlm")), "--image", s(&series), "--max-slices", "4", "--yes-no", "Is there a lesion?"]);
    let answer = scored["answer"].as_str().unwrap();
    assert!(answer == "yes" || answer == "no", "{scored}");
}

#[test]
fn ask_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let model = lm("gemma3_vlm");
    // A missing image: refused before the model loads (exit 2), naming it.
    let missing = tmp.path().join("nope.png");
    let out = medvqa(&["ask", "--device", "cpu", "--model", s(&model), "Is there a lesion?", "--image", s(&missing), "--max-new-tokens", "2"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.png"), "{}", stderr(&out));
    // A file that is not an image: exit 1, naming it.
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let out = medvqa(&["ask", "--device", "cpu", "--model", s(&model), "--image", s(&bad), "--max-new-tokens", "2", "What is shown?"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.png"), "{}", stderr(&out));
    // Images for a text-only model: exit 2.
    let png = ask_fixtures().join(first_png());
    let out = medvqa(&["ask", "--device", "cpu", "--model", s(&lm("llama_causal")), "--image", s(&png), "What is shown?"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("text-only"), "{}", stderr(&out));
    // One option is not a choice.
    let out = medvqa(&["ask", "--device", "cpu", "--model", s(&model), "--image", s(&png), "--options", "yes", "Is it?"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn text_only_model_answers_without_images() {
    let got = ask_json(&["--model", s(&lm("gemma3_causal")), "--max-new-tokens", "4", "What is a pneumothorax?"]);
    let ids = got["token_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 4, "{got}");
    assert!(got["option_scores"].is_null());
}

fn first_png() -> String {
    let mut names: Vec<String> = std::fs::read_dir(ask_fixtures())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    names.into_iter().next().expect("a PNG in tests/fixtures/ask")
}

/// The whole pipeline on real VQA-RAD images: JPEGs → Gemma 3 processor → tiny MedGemma-shaped
/// model → answers (closed yes/no questions by option scoring) → the scored report.
#[test]
fn eval_with_a_model_folder_on_real_vqa_rad_images() {
    let Some(dir) = vqa_rad() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let model = lm("gemma3_vlm");
    let (annotations, images) = (dir.join("VQA_RAD Dataset Public.json"), dir.join("images"));
    let args = [
        "eval", "--model", s(&model), "--device", "cpu", "--dataset", "vqa-rad", "--annotations",
        s(&annotations), "--images", s(&images), "--out", s(&out),
        "--limit", "12", "--max-new-tokens", "4",
    ];
    let run = medvqa(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let preds = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    assert_eq!(preds.lines().count(), 12, "{preds}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["overall"]["n"], 12, "{summary}");
    assert!(summary["model"].as_str().unwrap().starts_with("gemma3_vlm@"), "{summary}");
    // Closed yes/no questions were scored, so their answers are exactly yes or no.
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(dir.join("VQA_RAD Dataset Public.json")).unwrap()).unwrap();
    let mut scored = 0;
    for line in preds.lines() {
        let p: Value = serde_json::from_str(line).unwrap();
        let row = rows.iter().find(|r| r["qid"].to_string().trim_matches('"') == p["id"].as_str().unwrap()).unwrap();
        let q = row["question"].as_str().unwrap();
        if row["answer_type"] == "CLOSED" && medvqa_vqa::is_yes_no_question(q) {
            scored += 1;
            let a = p["prediction"].as_str().unwrap();
            assert!(a == "yes" || a == "no", "{q}: {a}");
        }
    }
    assert!(scored > 0, "the first 12 test questions include closed yes/no ones");
    // A second run refuses to mix into the same folder without --resume; with it, nothing is redone.
    let again = medvqa(&args);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let run = medvqa(&resumed);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("12 already answered"), "{}", stderr(&run));
}
