//! `medvqa eval`: run a model over a dataset, write its answers as it goes, then score.
//!
//! Answers go to `OUT/predictions.jsonl`, one `{"id","prediction"}` line per question, each
//! written with a single `write` call and flushed before the next question starts. A run
//! killed at any moment therefore leaves every finished answer on disk and at most one torn
//! last line; `--resume` drops that torn line, skips every id already answered and appends
//! the rest — nothing is answered twice, nothing is lost. `OUT/run.json` records which model,
//! dataset and split the file belongs to, so a resume with a different model is refused
//! instead of mixing two models' answers.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::predictions::{read_medvqa_jsonl, PredictionLine};
use crate::report::write_run_reports;
use crate::summary::{judge_all, summarize, Bootstrap, RunInfo, Summary};
use crate::types::{Protocol, Question};

/// File the answers are written to.
pub const PREDICTIONS_FILE: &str = "predictions.jsonl";
/// File that names the model, dataset and split of a run directory.
pub const RUN_FILE: &str = "run.json";
/// Questions the answerer could not answer, one `{"id","error"}` line each (appended; a resumed
/// run tries them again).
pub const ERRORS_FILE: &str = "errors.jsonl";

/// Something that answers questions: the future VLM, and the baselines now.
pub trait Answerer {
    /// The name recorded with the results (`baseline:majority`, a checkpoint name, …).
    fn name(&self) -> String;
    /// Whether the answerer reads images (if so, every image must exist before the run starts).
    fn needs_images(&self) -> bool;
    /// Answers one question. `images` are the question's image files (resolved against the
    /// `--images` folder), in prompt order. [`EvalError::Unanswerable`] fails this question only
    /// (it is logged and the run goes on); any other error stops the run, keeping every answer
    /// written so far for `--resume`.
    fn answer(&mut self, question: &Question, images: &[PathBuf]) -> Result<String, EvalError>;
}

/// Progress on stderr: a redrawn bar on a terminal, a line every 10 % (or 30 s) otherwise so
/// logs stay readable.
pub struct Progress<W: Write> {
    out: W,
    terminal: bool,
    total: usize,
    done: usize,
    /// Answers produced in this process (rate excludes resumed ones).
    fresh: usize,
    start: Instant,
    last: Option<Instant>,
    last_decile: usize,
}

impl<W: Write> Progress<W> {
    /// Progress to `out`; `terminal` selects the redrawn bar.
    pub fn new(out: W, terminal: bool) -> Self {
        Self {
            out,
            terminal,
            total: 0,
            done: 0,
            fresh: 0,
            start: Instant::now(),
            last: None,
            last_decile: 0,
        }
    }

    /// Starts counting towards `total`, of which `already` were answered by an earlier run.
    pub fn begin(&mut self, total: usize, already: usize) {
        self.total = total;
        self.done = already;
        self.fresh = 0;
        self.start = Instant::now();
        self.last = None;
        self.last_decile = (10 * already).checked_div(total).unwrap_or(10);
    }

    fn status(&self) -> String {
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        };
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.fresh as f64 / secs
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            format!(
                ", ETA {}s",
                (self.total.saturating_sub(self.done) as f64 / rate).ceil()
            )
        } else {
            String::new()
        };
        format!(
            "{}/{} ({pct:.0}%), {rate:.1} q/s{eta}",
            self.done, self.total
        )
    }

    /// Records one more answered question and redraws when due. Progress output is best
    /// effort: a closed stderr must not stop an evaluation, so write errors are ignored.
    pub fn tick(&mut self) {
        self.done += 1;
        self.fresh += 1;
        let now = Instant::now();
        if self.terminal {
            if self
                .last
                .is_none_or(|t| now - t >= Duration::from_millis(100))
                || self.done == self.total
            {
                const WIDTH: usize = 30;
                let filled = (WIDTH * self.done)
                    .checked_div(self.total)
                    .unwrap_or(WIDTH)
                    .min(WIDTH);
                let bar = format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH - filled));
                let _ = write!(self.out, "\r[{bar}] {}\x1b[K", self.status());
                let _ = self.out.flush();
                self.last = Some(now);
            }
        } else {
            let decile = (10 * self.done).checked_div(self.total).unwrap_or(10);
            if decile > self.last_decile
                || self.last.is_none_or(|t| now - t >= Duration::from_secs(30))
            {
                let _ = writeln!(self.out, "eval: {}", self.status());
                self.last_decile = decile;
                self.last = Some(now);
            }
        }
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.terminal {
            let _ = writeln!(self.out);
        }
    }
}

/// What a run directory's predictions belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    pub model: String,
    pub dataset: String,
    pub split: String,
}

/// Reads the answers already in `path`, truncating a torn last line (a write cut by a kill).
/// Returns the lines kept.
fn recover(path: &Path, log: &mut dyn Write) -> Result<Vec<PredictionLine>, EvalError> {
    let content = fs::read(path).map_err(|e| EvalError::io(path, e))?;
    let complete = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if complete < content.len() {
        let _ = writeln!(
            log,
            "eval: {}: dropping an unfinished last line ({} bytes) left by an interrupted run",
            path.display(),
            content.len() - complete
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| EvalError::io(path, e))?;
        f.set_len(complete as u64)
            .map_err(|e| EvalError::io(path, e))?;
        f.sync_all().map_err(|e| EvalError::io(path, e))?;
    }
    read_medvqa_jsonl(path)
}

/// Where a run writes and how it behaves.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub out: PathBuf,
    pub images: PathBuf,
    pub resume: bool,
    pub dataset: String,
    pub split: String,
}

/// Answers every question not yet in `OUT/predictions.jsonl`, appending each answer as soon as
/// it exists, and returns all answers (earlier and new) by id.
pub fn answer_all<W: Write>(
    questions: &[Question],
    answerer: &mut dyn Answerer,
    opts: &EvalOptions,
    progress: &mut Progress<W>,
    log: &mut dyn Write,
) -> Result<BTreeMap<String, String>, EvalError> {
    fs::create_dir_all(&opts.out).map_err(|e| EvalError::io(&opts.out, e))?;
    let manifest = RunManifest {
        model: answerer.name(),
        dataset: opts.dataset.clone(),
        split: opts.split.clone(),
    };
    let manifest_path = opts.out.join(RUN_FILE);
    let path = opts.out.join(PREDICTIONS_FILE);
    let mut answers = BTreeMap::new();
    if path.exists()
        && fs::metadata(&path)
            .map_err(|e| EvalError::io(&path, e))?
            .len()
            > 0
    {
        if !opts.resume {
            return Err(EvalError::format(&path, "already holds answers: pass --resume to continue that run, or choose another --out"));
        }
        if manifest_path.exists() {
            let text =
                fs::read_to_string(&manifest_path).map_err(|e| EvalError::io(&manifest_path, e))?;
            let earlier: RunManifest =
                serde_json::from_str(&text).map_err(|e| EvalError::Json {
                    path: manifest_path.clone(),
                    source: e,
                })?;
            if earlier != manifest {
                return Err(EvalError::format(
                    &manifest_path,
                    format!("belongs to {earlier:?}, not {manifest:?}: resume with the same model, dataset and split"),
                ));
            }
        }
        for line in recover(&path, log)? {
            answers.insert(line.id, line.prediction);
        }
    }
    let manifest_json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| EvalError::format(&manifest_path, e.to_string()))?;
    fs::write(&manifest_path, manifest_json + "\n")
        .map_err(|e| EvalError::io(&manifest_path, e))?;

    let todo: Vec<&Question> = questions
        .iter()
        .filter(|q| !answers.contains_key(&q.id))
        .collect();
    let resolve =
        |q: &Question| -> Vec<PathBuf> { q.images.iter().map(|i| opts.images.join(i)).collect() };
    if answerer.needs_images() {
        let missing: Vec<PathBuf> = todo
            .iter()
            .flat_map(|q| resolve(q))
            .filter(|p| !p.is_file())
            .collect();
        if let Some(first) = missing.first() {
            return Err(EvalError::format(
                first,
                format!(
                    "image not found ({} missing images in all); check --images",
                    missing.len()
                ),
            ));
        }
    }
    let mut ids = HashSet::new();
    for q in questions {
        if !ids.insert(q.id.as_str()) {
            return Err(EvalError::Invalid {
                what: "dataset",
                value: q.id.clone(),
                reason: "question id occurs twice".into(),
            });
        }
    }
    let _ = writeln!(
        log,
        "eval: {} questions, {} already answered, model {}",
        questions.len(),
        questions.len() - todo.len(),
        manifest.model
    );
    progress.begin(questions.len(), questions.len() - todo.len());
    let mut file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| EvalError::io(&path, e))?;
    let mut unanswered = 0usize;
    let errors_path = opts.out.join(ERRORS_FILE);
    for q in todo {
        let prediction = match answerer.answer(q, &resolve(q)) {
            Ok(p) => p,
            Err(EvalError::Unanswerable { id, reason }) => {
                unanswered += 1;
                let _ = writeln!(log, "eval: question {id} not answered: {reason}");
                let line = serde_json::json!({ "id": id, "error": reason }).to_string() + "\n";
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&errors_path)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
                    .map_err(|e| EvalError::io(&errors_path, e))?;
                progress.tick();
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut line = serde_json::to_string(&PredictionLine {
            id: q.id.clone(),
            prediction: prediction.clone(),
        })
        .map_err(|e| EvalError::format(&path, e.to_string()))?;
        line.push('\n');
        // One write per answer, then flush: a kill leaves whole lines plus at most one torn line.
        file.write_all(line.as_bytes())
            .map_err(|e| EvalError::io(&path, e))?;
        file.flush().map_err(|e| EvalError::io(&path, e))?;
        answers.insert(q.id.clone(), prediction);
        progress.tick();
    }
    progress.finish();
    if unanswered > 0 {
        let _ = writeln!(
            log,
            "eval: {unanswered} question(s) could not be answered (listed in {}); they are scored as empty answers, and --resume tries them again",
            errors_path.display()
        );
    }
    Ok(answers)
}

/// Judges `questions` with `protocol`, aggregates, and writes every report file into `out`.
pub fn score_and_report(
    questions: &[Question],
    predictions: &BTreeMap<String, String>,
    protocol: &dyn Protocol,
    info: &RunInfo,
    out: &Path,
    boot: &Bootstrap,
) -> Result<Summary, EvalError> {
    let results = judge_all(questions, predictions, protocol);
    let summary = summarize(info, questions, &results, protocol, boot);
    write_run_reports(out, &summary, &results)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AnswerType;

    fn q(id: &str) -> Question {
        Question {
            id: id.into(),
            images: vec![format!("{id}.jpg")],
            question: format!("question {id}"),
            answer: "yes".into(),
            answer_type: AnswerType::Closed,
            options: vec![],
            question_type: None,
            modality: None,
            body_system_native: None,
            body_system: None,
            split: None,
            lang: None,
            extra: Default::default(),
        }
    }

    /// Answers with a counter, and fails (like a kill) after `fail_after` answers.
    struct Counting {
        calls: Vec<String>,
        fail_after: Option<usize>,
        name: &'static str,
    }

    impl Answerer for Counting {
        fn name(&self) -> String {
            self.name.into()
        }
        fn needs_images(&self) -> bool {
            false
        }
        fn answer(&mut self, q: &Question, images: &[PathBuf]) -> Result<String, EvalError> {
            if self.fail_after == Some(self.calls.len()) {
                return Err(EvalError::format("model", "simulated crash"));
            }
            assert!(images[0].ends_with(format!("{}.jpg", q.id)));
            self.calls.push(q.id.clone());
            Ok(format!("answer {}", q.id))
        }
    }

    fn opts(out: &Path, resume: bool) -> EvalOptions {
        EvalOptions {
            out: out.into(),
            images: "imgs".into(),
            resume,
            dataset: "d".into(),
            split: "test".into(),
        }
    }

    #[test]
    fn resume_after_crash_and_torn_line_answers_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let questions: Vec<Question> = (0..10).map(|i| q(&i.to_string())).collect();
        let mut first = Counting {
            calls: vec![],
            fail_after: Some(4),
            name: "m",
        };
        let mut sink = Vec::new();
        let mut p = Progress::new(Vec::new(), false);
        assert!(answer_all(
            &questions,
            &mut first,
            &opts(dir.path(), false),
            &mut p,
            &mut sink
        )
        .is_err());
        // A kill in the middle of a write leaves a torn last line.
        let path = dir.path().join(PREDICTIONS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\": \"4\", \"predi").unwrap();
        drop(f);

        let mut again = Counting {
            calls: vec![],
            fail_after: None,
            name: "m",
        };
        let e = answer_all(
            &questions,
            &mut again,
            &opts(dir.path(), false),
            &mut p,
            &mut sink,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--resume"), "{e}");
        let mut other = Counting {
            calls: vec![],
            fail_after: None,
            name: "other",
        };
        let e = answer_all(
            &questions,
            &mut other,
            &opts(dir.path(), true),
            &mut p,
            &mut sink,
        )
        .unwrap_err();
        assert!(e.to_string().contains("same model"), "{e}");

        let answers = answer_all(
            &questions,
            &mut again,
            &opts(dir.path(), true),
            &mut p,
            &mut sink,
        )
        .unwrap();
        assert_eq!(first.calls, ["0", "1", "2", "3"]);
        assert_eq!(
            again.calls,
            ["4", "5", "6", "7", "8", "9"],
            "nothing answered twice"
        );
        assert_eq!(answers.len(), 10);
        let lines = read_medvqa_jsonl(&path).unwrap();
        assert_eq!(lines.len(), 10, "nothing lost, no duplicates");
        assert!(String::from_utf8(sink)
            .unwrap()
            .contains("dropping an unfinished last line"));
    }

    #[test]
    fn progress_prints_deciles_off_terminal_and_a_bar_on_one() {
        let mut p = Progress::new(Vec::new(), false);
        p.begin(20, 0);
        for _ in 0..20 {
            p.tick();
        }
        let text = String::from_utf8(p.out.clone()).unwrap();
        // The first answer (to show the run is alive), then one line per 10 %.
        assert_eq!(text.lines().count(), 11, "{text}");
        assert!(text.starts_with("eval: 1/20 (5%)"), "{text}");
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("eval: 20/20 (100%)"),
            "{text}"
        );
        let mut bar = Progress::new(Vec::new(), true);
        bar.begin(4, 2);
        bar.tick();
        bar.tick();
        let text = String::from_utf8(bar.out.clone()).unwrap();
        assert!(
            text.contains("\r[##############################] 4/4 (100%)"),
            "{text}"
        );
    }

    #[test]
    fn missing_images_are_named_when_the_model_reads_images() {
        struct NeedsImages;
        impl Answerer for NeedsImages {
            fn name(&self) -> String {
                "vlm".into()
            }
            fn needs_images(&self) -> bool {
                true
            }
            fn answer(&mut self, _: &Question, _: &[PathBuf]) -> Result<String, EvalError> {
                Ok(String::new())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut p = Progress::new(Vec::new(), false);
        let e = answer_all(
            &[q("7")],
            &mut NeedsImages,
            &opts(dir.path(), false),
            &mut p,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("7.jpg") && e.to_string().contains("--images"),
            "{e}"
        );
    }

    #[test]
    fn an_unanswerable_question_is_logged_and_the_run_goes_on() {
        struct SkipsThree;
        impl Answerer for SkipsThree {
            fn name(&self) -> String {
                "m".into()
            }
            fn needs_images(&self) -> bool {
                false
            }
            fn answer(&mut self, q: &Question, _: &[PathBuf]) -> Result<String, EvalError> {
                if q.id == "3" {
                    return Err(EvalError::Unanswerable { id: q.id.clone(), reason: "image unreadable".into() });
                }
                Ok(format!("answer {}", q.id))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let questions: Vec<Question> = (0..6).map(|i| q(&i.to_string())).collect();
        let mut p = Progress::new(Vec::new(), false);
        let mut log = Vec::new();
        let answers = answer_all(&questions, &mut SkipsThree, &opts(dir.path(), false), &mut p, &mut log).unwrap();
        assert_eq!(answers.len(), 5);
        assert!(!answers.contains_key("3"));
        let errors = fs::read_to_string(dir.path().join(ERRORS_FILE)).unwrap();
        assert_eq!(errors.lines().count(), 1);
        assert!(errors.contains("\"id\":\"3\"") && errors.contains("image unreadable"), "{errors}");
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains("1 question(s) could not be answered"), "{log}");
        // A resumed run retries the unanswered question only.
        struct Records(Vec<String>);
        impl Answerer for Records {
            fn name(&self) -> String {
                "m".into()
            }
            fn needs_images(&self) -> bool {
                false
            }
            fn answer(&mut self, q: &Question, _: &[PathBuf]) -> Result<String, EvalError> {
                self.0.push(q.id.clone());
                Ok("late".into())
            }
        }
        let mut again = Records(vec![]);
        let answers = answer_all(&questions, &mut again, &opts(dir.path(), true), &mut p, &mut Vec::new()).unwrap();
        assert_eq!(again.0, vec!["3".to_string()]);
        assert_eq!(answers.len(), 6);
    }
}
