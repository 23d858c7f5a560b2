//! A model folder as the answerer of `medvqa eval`.
//!
//! Multiple-choice questions are answered by scoring the option letters; closed questions in
//! yes/no form by scoring `yes` against `no`; everything else is generated. The yes/no decision
//! is made from the question's wording and the dataset's answer type, never from the gold
//! answer, so the scoring mode cannot leak the answer.

use std::path::PathBuf;

use medvqa_eval::run::Answerer;
use medvqa_eval::error::EvalError;
use medvqa_eval::{AnswerType, Question};

use crate::assistant::{AskOptions, Assistant, Choices};
use crate::error::VqaError;
use crate::images::{load_images, ImageOptions};

/// Answers dataset questions with an [`Assistant`].
pub struct ModelAnswerer {
    assistant: Assistant,
    ask: AskOptions,
    images: ImageOptions,
    /// Score yes/no for closed yes/no questions instead of generating.
    pub score_yes_no: bool,
}

impl ModelAnswerer {
    /// An answerer over `assistant`; `images` says how files become model input.
    pub fn new(assistant: Assistant, ask: AskOptions, images: ImageOptions) -> ModelAnswerer {
        ModelAnswerer { assistant, ask, images, score_yes_no: true }
    }

    /// How a question is answered.
    pub fn choices_for(&self, q: &Question) -> Choices {
        if q.answer_type == AnswerType::MultipleChoice && !q.options.is_empty() {
            Choices::Lettered(q.options.clone())
        } else if self.score_yes_no && q.answer_type == AnswerType::Closed && is_yes_no_question(&q.question) {
            Choices::Words(vec!["yes".into(), "no".into()])
        } else {
            Choices::Open
        }
    }
}

/// Whether a question asks for yes or no: it opens with an auxiliary verb ("is", "are", "does",
/// "can", "was", "has", …) and offers no alternatives ("… CT or MRI?" is closed but not yes/no).
pub fn is_yes_no_question(question: &str) -> bool {
    const OPENERS: [&str; 17] = [
        "is", "are", "was", "were", "does", "do", "did", "can", "could", "has", "have", "had", "will", "would", "should", "may", "might",
    ];
    let lower = question.trim().to_lowercase();
    let first = lower.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty()).unwrap_or("");
    OPENERS.contains(&first) && !lower.contains(" or ")
}

impl Answerer for ModelAnswerer {
    fn name(&self) -> String {
        let dir = self.assistant.dir();
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        format!("{name}@{}", &self.assistant.weights_sha256()[..12])
    }

    fn needs_images(&self) -> bool {
        self.assistant.accepts_images()
    }

    fn answer(&mut self, question: &Question, images: &[PathBuf]) -> Result<String, EvalError> {
        let prompt_images = if self.assistant.accepts_images() {
            load_images(images, &self.images).map_err(|e| unanswerable(question, e))?
        } else {
            Vec::new()
        };
        let choices = self.choices_for(question);
        let answer = self.assistant.ask(&prompt_images, &question.question, &choices, &self.ask).map_err(|e| match e {
            // A failing device fails every question alike: stop, keep the answers, resume later.
            VqaError::Model(medvqa_model::ModelError::Device(reason)) => {
                EvalError::format(self.assistant.dir(), format!("device error: {reason}"))
            }
            other => unanswerable(question, other),
        })?;
        Ok(answer.answer)
    }
}

/// This question only: logged to errors.jsonl by the eval loop, which goes on.
fn unanswerable(question: &Question, e: VqaError) -> EvalError {
    EvalError::Unanswerable { id: question.id.clone(), reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::is_yes_no_question;

    #[test]
    fn yes_no_questions_are_recognised_by_their_form() {
        assert!(is_yes_no_question("Is there a pneumothorax?"));
        assert!(is_yes_no_question("  are the kidneys enlarged"));
        assert!(is_yes_no_question("Does this image show a fracture?"));
        assert!(!is_yes_no_question("Is this a CT or an MRI?"));
        assert!(!is_yes_no_question("What organ is shown?"));
        assert!(!is_yes_no_question("Isolated finding?"));
    }
}
