//! End-to-end tests of `medvqa score`, `medvqa eval` and `medvqa compare`, driving the real
//! binary: on a tiny dataset made here (always runs), on VQA-RAD from the shared fixtures
//! (skipped visibly when absent), and the HTML report rendered in headless Chromium (skipped
//! visibly when Chromium is not installed).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn ok(args: &[&str]) -> Output {
    let out = medvqa(args);
    assert!(
        out.status.success(),
        "medvqa {args:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).expect("read json")).expect("parse json")
}

fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .expect("read jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect()
}

/// Training rows teach baseline:majority: PRES → "yes" (3 of 4), POS → "left lung",
/// MODALITY → "ct".
const TINY_DATASET: &str = r#"{"id": "t1", "image": "a.png", "question": "Is there a mass?", "answer": "yes", "answer_type": "closed", "question_type": "PRES", "modality": "CT", "body_system": "Chest", "split": "train"}
{"id": "t2", "image": "a.png", "question": "Is there fluid?", "answer": "Yes", "answer_type": "closed", "question_type": "PRES", "modality": "CT", "body_system": "Chest", "split": "train"}
{"id": "t3", "image": "b.png", "question": "Is there a bleed?", "answer": "yes", "answer_type": "closed", "question_type": "PRES", "modality": "MRI", "body_system": "Brain", "split": "train"}
{"id": "t4", "image": "b.png", "question": "Is it enlarged?", "answer": "no", "answer_type": "closed", "question_type": "PRES", "modality": "MRI", "body_system": "Brain", "split": "train"}
{"id": "t5", "image": "a.png", "question": "Where is the mass?", "answer": "left lung", "answer_type": "open", "question_type": "POS", "modality": "CT", "body_system": "Chest", "split": "train"}
{"id": "t6", "image": "a.png", "question": "What modality?", "answer": "CT", "answer_type": "open", "question_type": "MODALITY", "modality": "CT", "body_system": "Chest", "split": "train"}
{"id": "q1", "image": "a.png", "question": "Is there a nodule?", "answer": "Yes", "answer_type": "closed", "question_type": "PRES", "modality": "CT", "body_system": "Chest", "split": "test"}
{"id": "q2", "image": "a.png", "question": "Is the heart enlarged?", "answer": "No", "answer_type": "closed", "question_type": "PRES", "modality": "CT", "body_system": "Chest", "split": "test"}
{"id": "q3", "image": "b.png", "question": "Is there a bleed?", "answer": "yes", "answer_type": "closed", "question_type": "PRES", "modality": "MRI", "body_system": "Brain", "split": "test"}
{"id": "q4", "image": "b.png", "question": "Is there edema?", "answer": "no", "answer_type": "closed", "question_type": "PRES", "modality": "MRI", "body_system": "Brain", "split": "test"}
{"id": "q5", "image": "a.png", "question": "Where is the nodule?", "answer": "Left lung", "answer_type": "open", "question_type": "POS", "modality": "CT", "body_system": "Chest", "split": "test"}
{"id": "q6", "image": "b.png", "question": "Which organ?", "answer": "brain", "answer_type": "open", "question_type": "ORGAN", "modality": "MRI", "body_system": "Brain", "split": "test"}
"#;

/// q1 right, q2 wrong, q3 right, q4 right, q5 right, q6 wrong → 4 / 6.
const TINY_PREDICTIONS: &str = r#"{"id": "q1", "prediction": "yes"}
{"id": "q2", "prediction": "yes"}
{"id": "q3", "prediction": "Yes"}
{"id": "q4", "prediction": "no"}
{"id": "q5", "prediction": "left lung"}
{"id": "q6", "prediction": "liver"}
"#;

struct Tiny {
    _dir: tempfile::TempDir,
    root: PathBuf,
    annotations: PathBuf,
}

fn tiny() -> Tiny {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let annotations = root.join("tiny.jsonl");
    fs::write(&annotations, TINY_DATASET).expect("write dataset");
    fs::create_dir_all(root.join("images")).expect("images dir");
    Tiny {
        _dir: dir,
        root,
        annotations,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn tiny_score_eval_compare() {
    let t = tiny();
    let preds = t.root.join("preds.jsonl");
    fs::write(&preds, TINY_PREDICTIONS).expect("write predictions");
    let scored = t.root.join("scored");
    let out = ok(&[
        "score",
        "--dataset",
        "jsonl",
        "--annotations",
        s(&t.annotations),
        "--predictions",
        s(&preds),
        "--out",
        s(&scored),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("66.7%"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let summary = json(&scored.join("summary.json"));
    assert_eq!(summary["dataset"], "jsonl");
    assert_eq!(summary["split"], "test");
    assert_eq!(summary["protocol"], "medvqa");
    assert_eq!(summary["n"], 6);
    assert_eq!(summary["overall"]["n"], 6);
    assert!(close(
        summary["overall"]["accuracy"].as_f64().unwrap(),
        4.0 / 6.0
    ));
    let ci = summary["overall"]["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < 4.0 / 6.0 && 4.0 / 6.0 < ci[1].as_f64().unwrap());
    assert_eq!(summary["closed"]["n"], 4);
    assert!(close(summary["closed"]["accuracy"].as_f64().unwrap(), 0.75));
    assert_eq!(summary["open"]["n"], 2);
    assert!(close(summary["open"]["accuracy"].as_f64().unwrap(), 0.5));
    for key in ["exact_match", "precision", "recall", "f1", "bleu1"] {
        assert!(summary["open"][key].is_number(), "open.{key}");
    }
    let ct = &summary["by_modality"]["CT"];
    assert_eq!(ct["n"], 3);
    assert!(close(ct["closed_accuracy"].as_f64().unwrap(), 0.5));
    assert!(ct["open_recall"].is_number());
    assert_eq!(summary["by_question_type"]["PRES"]["n"], 4);
    assert_eq!(summary["by_answer_type"]["open"]["n"], 2);
    assert!(summary["by_body_system"].as_object().unwrap().len() >= 2);
    for key in ["n", "accuracy", "ci95", "closed_accuracy", "open_recall"] {
        assert!(
            summary["by_body_system"]
                .as_object()
                .unwrap()
                .values()
                .all(|g| g.get(key).is_some()),
            "{key}"
        );
    }

    let results = lines(&scored.join("results.jsonl"));
    assert_eq!(results.len(), 6);
    let q6 = results.iter().find(|r| r["id"] == "q6").unwrap();
    assert_eq!(
        (
            q6["gold"].as_str(),
            q6["prediction"].as_str(),
            q6["correct"].as_bool()
        ),
        (Some("brain"), Some("liver"), Some(false))
    );
    assert!(q6["gold_normalized"].is_string() && q6["modality"] == "MRI");
    assert_eq!(
        q6["extra"]["dataset"], "jsonl",
        "label columns travel with the result"
    );
    let csv = fs::read_to_string(scored.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.starts_with("id,question,images,gold,prediction,"));
    let md = fs::read_to_string(scored.join("report.md")).unwrap();
    assert!(md.contains("| overall | 6 | 66.7 |"), "{md}");
    let html = fs::read_to_string(scored.join("report.html")).unwrap();
    assert!(html.matches("<svg class=\"chart\"").count() >= 4);
    assert!(!html.contains("<script") && !html.contains("https://"));

    // The majority baseline, killed halfway (--limit stands in for the kill), then resumed.
    let run = t.root.join("majority");
    let images = t.root.join("images");
    let base = [
        "eval",
        "--model",
        "baseline:majority",
        "--dataset",
        "jsonl",
        "--annotations",
        s(&t.annotations),
        "--images",
        s(&images),
        "--out",
        s(&run),
    ];
    let first = ok(&[&base[..], &["--limit", "3"]].concat());
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("eval: 3/3 (100%)"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(lines(&run.join("predictions.jsonl")).len(), 3);
    let refused = medvqa(&base);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));
    let resumed = ok(&[&base[..], &["--resume"]].concat());
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("3 already answered"),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let answers = lines(&run.join("predictions.jsonl"));
    let ids: Vec<&str> = answers.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["q1", "q2", "q3", "q4", "q5", "q6"],
        "each question answered exactly once, in order"
    );
    let predicted: Vec<&str> = answers
        .iter()
        .map(|a| a["prediction"].as_str().unwrap())
        .collect();
    // PRES → yes; POS → left lung; ORGAN unseen → most frequent open answer ("ct" and
    // "left lung" tie at 1: alphabetically first).
    assert_eq!(predicted, ["yes", "yes", "yes", "yes", "left lung", "ct"]);
    let msum = json(&run.join("summary.json"));
    assert_eq!(msum["model"], "baseline:majority");
    assert!(close(
        msum["overall"]["accuracy"].as_f64().unwrap(),
        3.0 / 6.0
    ));

    // Compare: A = majority, B = crafted predictions: q4 only B right, q5 both, q1/q3 both.
    let cmp = t.root.join("cmp");
    let out = ok(&["compare", s(&run), s(&scored), "--out", s(&cmp)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("McNemar"));
    let c = json(&cmp.join("compare.json"));
    assert_eq!(c["n_paired"], 6);
    assert_eq!(c["overall"]["only_a_correct"], 0);
    assert_eq!(c["overall"]["only_b_correct"], 1);
    assert!(close(
        c["overall"]["difference"].as_f64().unwrap(),
        1.0 / 6.0
    ));
    assert_eq!(c["overall"]["mcnemar_p"], 1.0);
    assert!(c["by_modality"]["MRI"].is_object());
    assert!(fs::read_to_string(cmp.join("compare.html"))
        .unwrap()
        .contains("<svg class=\"chart\""));
    assert!(cmp.join("compare.md").is_file());
}

#[test]
fn errors_name_the_file_and_exit_1() {
    let t = tiny();
    let missing = t.root.join("nope.jsonl");
    let out = medvqa(&[
        "score",
        "--dataset",
        "jsonl",
        "--annotations",
        s(&t.annotations),
        "--predictions",
        s(&missing),
        "--out",
        s(&t.root.join("o")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope.jsonl"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = medvqa(&[
        "score",
        "--dataset",
        "jsonl",
        "--annotations",
        s(&t.annotations),
        "--predictions",
        s(&t.annotations),
        "--protocol",
        "nonsense",
        "--out",
        s(&t.root.join("o")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
    let out = medvqa(&[
        "eval",
        "--model",
        "gpt-9",
        "--dataset",
        "jsonl",
        "--annotations",
        s(&t.annotations),
        "--images",
        s(&t.root),
        "--out",
        s(&t.root.join("o")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("baseline:majority"));
    let out = medvqa(&["compare", s(&t.root), s(&t.root)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary.json"));
}

/// Scores gold answers and the majority baseline on the official VQA-RAD test split, then
/// compares them; returns the run folder of the baseline for the browser test.
#[test]
fn vqa_rad_score_eval_compare_report() {
    let Some(dir) = vqa_rad() else { return };
    let annotations = dir.join("VQA_RAD Dataset Public.json");
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<Value> =
        serde_json::from_str(&fs::read_to_string(&annotations).unwrap()).unwrap();
    let test: Vec<&Value> = rows
        .iter()
        .filter(|r| r["phrase_type"].as_str().unwrap().starts_with("test_"))
        .collect();
    assert_eq!(test.len(), 451);
    // Gold answers as predictions, with `qid` as it is in the file (string or integer).
    let preds: String = test
        .iter()
        .map(|r| {
            format!(
                "{}\n",
                serde_json::json!({"id": r["qid"], "prediction": r["answer"]})
            )
        })
        .collect();
    let preds_path = tmp.path().join("gold.jsonl");
    fs::write(&preds_path, preds).unwrap();
    let gold = tmp.path().join("gold");
    ok(&[
        "score",
        "--dataset",
        "vqa-rad",
        "--annotations",
        s(&annotations),
        "--predictions",
        s(&preds_path),
        "--out",
        s(&gold),
    ]);
    let g = json(&gold.join("summary.json"));
    assert_eq!(g["n"], 451);
    assert_eq!(g["missing_predictions"], 0);
    assert_eq!(g["overall"]["accuracy"], 1.0, "gold answers score 100 %");
    assert_eq!(
        g["closed"]["n"].as_u64().unwrap() + g["open"]["n"].as_u64().unwrap(),
        451
    );
    let organs: Vec<&String> = g["by_body_system_native"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(organs, ["ABD", "CHEST", "HEAD"]);

    let majority = tmp.path().join("majority");
    ok(&[
        "eval",
        "--model",
        "baseline:majority",
        "--dataset",
        "vqa-rad",
        "--annotations",
        s(&annotations),
        "--images",
        s(&dir.join("images")),
        "--out",
        s(&majority),
    ]);
    let m = json(&majority.join("summary.json"));
    assert_eq!(m["n"], 451);
    let acc = m["overall"]["accuracy"].as_f64().unwrap();
    let closed = m["closed"]["accuracy"].as_f64().unwrap();
    eprintln!("VQA-RAD test, baseline:majority under medvqa: overall {acc:.4}, closed {closed:.4}, open {}", m["open"]["accuracy"]);
    // Checked independently in Python (majority per (answer type, question type) of the
    // non-test rows, case/whitespace-folded exact match): closed 135 / 272 right, open 26 / 179.
    assert_eq!(m["closed"]["n"], 272);
    assert!((closed - 135.0 / 272.0).abs() < 1e-12, "closed {closed}");
    assert!(m["open"]["accuracy"].as_f64().unwrap() >= 26.0 / 179.0 - 1e-12);
    assert!(acc < closed);
    let html = fs::read_to_string(majority.join("report.html")).unwrap();
    for title in [
        "Accuracy per modality",
        "Accuracy per body system",
        "closed vs open",
    ] {
        assert!(html.contains(title), "{title}");
    }

    let cmp = tmp.path().join("cmp");
    ok(&["compare", s(&majority), s(&gold), "--out", s(&cmp)]);
    let c = json(&cmp.join("compare.json"));
    assert_eq!(c["n_paired"], 451);
    assert_eq!(c["overall"]["only_a_correct"], 0, "gold is never wrong");
    assert!(c["overall"]["mcnemar_p"].as_f64().unwrap() < 1e-10);
    let [lo, hi] = [0, 1].map(|i| c["overall"]["ci95"][i].as_f64().unwrap());
    let diff = c["overall"]["difference"].as_f64().unwrap();
    assert!(lo < diff && diff < hi && lo > 0.0);
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Runs `cmd` with its output in files under `prefix` (a pipe could fill and stall the
/// browser) and kills it after 120 s, so a hung browser fails the test instead of hanging it.
fn within(cmd: &mut Command, prefix: &Path) -> Output {
    let (out_path, err_path) = (
        prefix.with_extension("stdout"),
        prefix.with_extension("stderr"),
    );
    let mut child = cmd
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start chromium");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed().as_secs() > 120 {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    }
}

/// Renders report.html in headless Chromium: the DOM must hold the charts, and the
/// screenshot must show the bar colour, i.e. the SVG really painted.
#[test]
fn report_html_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIP: chromium not installed (apt-get install chromium)");
        return;
    };
    let t = tiny();
    let run = t.root.join("run");
    // The VQA-RAD majority-baseline report when the fixture is there, the tiny set's otherwise.
    let on_vqa_rad = match vqa_rad() {
        Some(dir) => {
            let annotations = dir.join("VQA_RAD Dataset Public.json");
            ok(&[
                "eval",
                "--model",
                "baseline:majority",
                "--dataset",
                "vqa-rad",
                "--annotations",
                s(&annotations),
                "--images",
                s(&dir.join("images")),
                "--out",
                s(&run),
            ]);
            true
        }
        None => {
            let preds = t.root.join("preds.jsonl");
            fs::write(&preds, TINY_PREDICTIONS).unwrap();
            ok(&[
                "score",
                "--dataset",
                "jsonl",
                "--annotations",
                s(&t.annotations),
                "--predictions",
                s(&preds),
                "--out",
                s(&run),
            ]);
            false
        }
    };
    let page = run.join("report.html");
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let shot = t.root.join("report.png");
    let flags = |profile: &str| -> Vec<String> {
        [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ]
        .iter()
        .map(|f| f.to_string())
        .chain([format!(
            "--user-data-dir={}",
            t.root.join(profile).display()
        )])
        .collect()
    };
    let dom = within(
        Command::new(&browser)
            .args(flags("profile-dom"))
            .arg("--dump-dom")
            .arg(&url),
        &t.root.join("dom"),
    );
    assert!(
        dom.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<svg class=\"chart\"").count(),
        4,
        "four charts in the rendered DOM"
    );
    // One bar per label: closed + open, then every modality, body system and question type.
    let summary = json(&run.join("summary.json"));
    let labels = |k: &str| summary[k].as_object().unwrap().len();
    let bars = 2 + labels("by_modality") + labels("by_body_system") + labels("by_question_type");
    if on_vqa_rad {
        // Modalities X-Ray / CT / MRI and body systems chest / abdomen / head-and-neck at least.
        assert!(
            labels("by_modality") >= 3 && labels("by_body_system") == 3,
            "{summary}"
        );
    } else {
        assert_eq!(
            bars, 9,
            "2 answer types, 2 modalities, 2 body systems, 3 question types"
        );
    }
    assert_eq!(dom.matches("<rect class=\"bar").count(), bars);
    assert_eq!(dom.matches("class=\"whisker\"").count(), bars);

    let out = within(
        Command::new(&browser)
            .args(flags("profile-shot"))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1000,1800")
            .arg(&url),
        &t.root.join("shot"),
    );
    assert!(
        out.status.success() && shot.is_file(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&shot).expect("decode screenshot").to_rgb8();
    // Bars are filled #4c78a8; count pixels of that colour (anti-aliased edges excluded).
    let bar_pixels = img.pixels().filter(|p| p.0 == [0x4c, 0x78, 0xa8]).count();
    assert!(
        bar_pixels > 2000,
        "only {bar_pixels} bar-coloured pixels: the charts did not paint"
    );
    if let Ok(keep) = std::env::var("MEDVQA_KEEP_SCREENSHOT") {
        fs::copy(&shot, keep).unwrap();
    }
}

/// `eval` killed with SIGKILL in the middle of answering, then `--resume`d: every question
/// ends up answered exactly once.
#[test]
fn eval_resumes_after_sigkill() {
    // Enough questions that the answer loop is still running when the first line appears.
    const N: usize = 20_000;
    let t = tiny();
    let big = t.root.join("big.jsonl");
    let rows: String = (0..N)
        .map(|i| {
            let answer = if i % 3 == 0 { "no" } else { "yes" };
            format!("{{\"id\": \"b{i}\", \"image\": \"x.png\", \"question\": \"Is there finding {i}?\", \"answer\": \"{answer}\", \"answer_type\": \"closed\", \"modality\": \"CT\", \"split\": \"test\"}}\n")
        })
        .collect();
    fs::write(&big, rows).unwrap();
    let run = t.root.join("run");
    let images = t.root.join("images");
    let args = [
        "eval",
        "--model",
        "baseline:yes",
        "--dataset",
        "jsonl",
        "--annotations",
        s(&big),
        "--images",
        s(&images),
        "--out",
        s(&run),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_medvqa"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let preds = run.join("predictions.jsonl");
    let start = std::time::Instant::now();
    while fs::metadata(&preds).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(
            start.elapsed().as_secs() < 120,
            "no answer written within 120 s"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let content = fs::read_to_string(&preds).unwrap();
    let complete = content.matches('\n').count();
    assert!(
        complete < N,
        "the run finished before it could be killed ({complete} answers)"
    );

    let resumed = ok(&[&args[..], &["--resume"]].concat());
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains(&format!("{complete} already answered")),
        "{stderr}"
    );
    let answers = lines(&preds);
    assert_eq!(answers.len(), N, "nothing lost, nothing twice");
    let ids: std::collections::BTreeSet<&str> =
        answers.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), N);
    let summary = json(&run.join("summary.json"));
    assert_eq!(summary["n"], N);
    // "yes" is right on the two questions in three whose answer is yes.
    let yes = (0..N).filter(|i| i % 3 != 0).count() as f64;
    assert!(close(
        summary["overall"]["accuracy"].as_f64().unwrap(),
        yes / N as f64
    ));
}

/// A TSV field as pandas writes it (QUOTE_MINIMAL): quoted when it holds a tab, quote or line
/// break, quotes doubled.
fn tsv_field(s: &str) -> String {
    if s.contains(['\t', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Other toolkits' prediction files, re-scored by `medvqa score`, reproduce those toolkits'
/// own numbers: the crafted SLAKE-en answers of `crates/eval/tests/fixtures/reference` are
/// written as lmms-eval `--log_samples` JSONL (ids in `doc.qid`), as MedEvalKit `results.json`
/// (no ids: matched by question and answer) and as a VLMEvalKit TSV (row `index`, not the
/// dataset id), and scored under the lmms-eval and medevalkit protocols.
#[test]
fn toolkit_prediction_files_rescore_to_the_toolkits_numbers() {
    let slake = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/vqa/slake");
    if !slake.join("test.json").is_file() {
        eprintln!("SKIP: {} not found (SLAKE fixture absent)", slake.display());
        return;
    }
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/fixtures/reference");
    let preds: std::collections::HashMap<String, String> =
        lines(&reference.join("slake_en_test_predictions.jsonl"))
            .into_iter()
            .map(|l| {
                (
                    l["id"].as_str().unwrap().to_string(),
                    l["prediction"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    let rows: Vec<Value> =
        serde_json::from_str(&fs::read_to_string(slake.join("test.json")).unwrap()).unwrap();
    let en: Vec<&Value> = rows.iter().filter(|r| r["q_lang"] == "en").collect();
    assert_eq!(en.len(), 1061);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let (mut lmms, mut medevalkit, mut tsv) = (
        String::new(),
        Vec::new(),
        String::from("index\tquestion\tanswer\tprediction\n"),
    );
    for (i, r) in en.iter().enumerate() {
        let (qid, question, answer) = (text(&r["qid"]), text(&r["question"]), text(&r["answer"]));
        let p = &preds[&qid];
        lmms.push_str(&format!(
            "{}\n",
            serde_json::json!({"doc_id": i, "doc": {"qid": r["qid"], "question": question, "answer": answer},
                               "target": answer, "resps": [[p]], "filtered_resps": [p]})
        ));
        medevalkit.push(serde_json::json!({"question": question, "answer": answer, "answer_type": r["answer_type"], "lang": "en", "response": p}));
        tsv.push_str(
            &[
                (i + 100_000).to_string(),
                tsv_field(&question),
                tsv_field(&answer),
                tsv_field(p),
            ]
            .join("\t"),
        );
        tsv.push('\n');
    }
    let files = [
        ("samples_slake_en.jsonl", lmms),
        ("results.json", serde_json::to_string(&medevalkit).unwrap()),
        ("model_SLAKE.tsv", tsv),
    ];
    let num = |v: &Value, path: &[&str]| path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap();
    let lmms_ref = json(&reference.join("lmms-eval_slake_en_test.json"))["aggregate"].clone();
    let mek_ref = json(&reference.join("medevalkit_slake_en_test.json"))["aggregate"].clone();
    for (name, content) in &files {
        let path = tmp.path().join(name);
        fs::write(&path, content).unwrap();
        for (protocol, overall, closed) in [
            (
                "lmms-eval",
                num(&lmms_ref, &["slake_accuracy"]),
                num(&lmms_ref, &["slake_closed_accuracy"]),
            ),
            (
                "medevalkit",
                num(&mek_ref, &["total metrics", "acc"]),
                num(&mek_ref, &["close", "acc"]),
            ),
        ] {
            let out = tmp.path().join(format!("{name}-{protocol}"));
            let run = ok(&[
                "score",
                "--dataset",
                "slake",
                "--annotations",
                s(&slake),
                "--lang",
                "en",
                "--protocol",
                protocol,
                "--predictions",
                s(&path),
                "--out",
                s(&out),
            ]);
            assert!(
                !String::from_utf8_lossy(&run.stderr).contains("warning"),
                "{name}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            let summary = json(&out.join("summary.json"));
            assert_eq!(summary["missing_predictions"], 0, "{name}");
            assert_eq!(
                summary["overall"]["accuracy"].as_f64().unwrap(),
                overall,
                "{name} {protocol}"
            );
            assert_eq!(
                summary["closed"]["accuracy"].as_f64().unwrap(),
                closed,
                "{name} {protocol}"
            );
        }
    }
}
